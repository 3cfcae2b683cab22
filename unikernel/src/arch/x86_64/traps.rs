//! GDT (with a TSS for the exception stack), IDT, exception stubs and the
//! exception report.
//!
//! # Invariants
//! - Every exception vector (0..32) has a handler; each runs on the IST1
//!   stack (so a stack overflow into the guard page still gets reported),
//!   prints `EXCEPTION <name> ...` and a register dump, and shuts the domain
//!   down with `SHUTDOWN_crash`. None returns.
//! - Vector [`UPCALL_VECTOR`] is the Xen event upcall; it runs on the current
//!   stack, saves every register the C ABI lets Rust clobber, and returns.
//! - Any other vector is reported like an exception.

use core::arch::{asm, global_asm};
use core::cell::UnsafeCell;
use core::mem::size_of;

/// The vector Xen raises for this vCPU's event-channel upcall.
pub const UPCALL_VECTOR: u8 = 0xf3;
/// The LAPIC spurious-interrupt vector.
pub const SPURIOUS_VECTOR: u8 = 0xff;

const KERNEL_CS: u16 = 0x08;
const KERNEL_DS: u16 = 0x10;
const TSS_SEL: u16 = 0x18;

/// The 64-bit TSS (Intel SDM vol. 3, "Task-State Segment in 64-bit mode").
#[repr(C, packed(4))]
struct Tss {
    _reserved0: u32,
    rsp: [u64; 3],
    _reserved1: u64,
    ist: [u64; 7],
    _reserved2: u64,
    _reserved3: u16,
    iomap_base: u16,
}
const _: () = assert!(size_of::<Tss>() == 104);

/// An IDT gate descriptor (interrupt gate, 64-bit).
#[repr(C)]
#[derive(Clone, Copy)]
struct Gate {
    offset_lo: u16,
    selector: u16,
    ist: u8,
    type_attr: u8,
    offset_mid: u16,
    offset_hi: u32,
    _reserved: u32,
}
const _: () = assert!(size_of::<Gate>() == 16);

impl Gate {
    const MISSING: Gate = Gate {
        offset_lo: 0,
        selector: 0,
        ist: 0,
        type_attr: 0,
        offset_mid: 0,
        offset_hi: 0,
        _reserved: 0,
    };

    fn interrupt(handler: u64, ist: u8) -> Gate {
        Gate {
            offset_lo: handler as u16,
            selector: KERNEL_CS,
            ist,
            type_attr: 0x8e, // present, DPL 0, 64-bit interrupt gate
            offset_mid: (handler >> 16) as u16,
            offset_hi: (handler >> 32) as u32,
            _reserved: 0,
        }
    }
}

#[repr(C, align(16))]
struct Tables {
    gdt: [u64; 5],
    tss: Tss,
    idt: [Gate; 256],
}

/// Written once by [`init`] on the boot vCPU before interrupts are enabled.
struct TablesCell(UnsafeCell<Tables>);
// SAFETY: only `init` writes, once, on the single vCPU, before any reader
// (the CPU itself, through GDTR/IDTR/TR) exists.
unsafe impl Sync for TablesCell {}

static TABLES: TablesCell = TablesCell(UnsafeCell::new(Tables {
    gdt: [0; 5],
    tss: Tss {
        _reserved0: 0,
        rsp: [0; 3],
        _reserved1: 0,
        ist: [0; 7],
        _reserved2: 0,
        _reserved3: 0,
        iomap_base: 104,
    },
    idt: [Gate::MISSING; 256],
}));

#[repr(C, packed)]
struct DescPtr {
    limit: u16,
    base: u64,
}

extern "C" {
    static exception_stubs: [u64; 32];
    static other_vector_stub: u8;
    static upcall_stub: u8;
    static spurious_stub: u8;
    static __ist_top: u8;
}

/// Loads the GDT (code, data, TSS), the TSS with the exception stack in
/// IST1, and the IDT.
pub fn init() {
    // SAFETY: single vCPU, interrupts off, called once at boot: nothing else
    // reads or writes TABLES yet. The descriptors built here follow the SDM
    // formats; the segment reload keeps CS/DS equivalent to the boot GDT's.
    unsafe {
        let t = &mut *TABLES.0.get();
        let ist_top = core::ptr::addr_of!(__ist_top) as u64;
        t.tss.ist[0] = ist_top;
        let tss = core::ptr::addr_of!(t.tss) as u64;
        let limit = (size_of::<Tss>() - 1) as u64;
        t.gdt = [
            0,
            0x00af_9a00_0000_ffff, // 64-bit code
            0x00cf_9200_0000_ffff, // data
            (limit & 0xffff)
                | (tss & 0xff_ffff) << 16
                | 0x89 << 40
                | ((limit >> 16) & 0xf) << 48
                | ((tss >> 24) & 0xff) << 56,
            tss >> 32,
        ];
        for (v, stub) in exception_stubs.iter().enumerate() {
            t.idt[v] = Gate::interrupt(*stub, 1);
        }
        let other = core::ptr::addr_of!(other_vector_stub) as u64;
        for g in t.idt[32..].iter_mut() {
            *g = Gate::interrupt(other, 1);
        }
        t.idt[SPURIOUS_VECTOR as usize] =
            Gate::interrupt(core::ptr::addr_of!(spurious_stub) as u64, 0);
        t.idt[UPCALL_VECTOR as usize] = Gate::interrupt(core::ptr::addr_of!(upcall_stub) as u64, 0);

        let gdtp = DescPtr {
            limit: (size_of::<[u64; 5]>() - 1) as u16,
            base: core::ptr::addr_of!(t.gdt) as u64,
        };
        let idtp = DescPtr {
            limit: (size_of::<[Gate; 256]>() - 1) as u16,
            base: core::ptr::addr_of!(t.idt) as u64,
        };
        asm!(
            "lgdt [{gdtp}]",
            "push {cs}",
            "lea {tmp}, [rip + 2f]",
            "push {tmp}",
            "retfq",
            "2:",
            "mov ds, {ds:x}",
            "mov es, {ds:x}",
            "mov ss, {ds:x}",
            "ltr {tr:x}",
            "lidt [{idtp}]",
            gdtp = in(reg) &gdtp,
            idtp = in(reg) &idtp,
            cs = const KERNEL_CS as u64,
            ds = in(reg) KERNEL_DS as u64,
            tr = in(reg) TSS_SEL as u64,
            tmp = out(reg) _,
        );
    }
}

/// What the exception stubs push, lowest address first.
#[repr(C)]
#[derive(Debug)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    pub vector: u64,
    pub error: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

/// Exception names (Intel SDM vol. 3, table "Protected-Mode Exceptions and Interrupts").
pub fn exception_name(vector: u64) -> &'static str {
    const NAMES: [&str; 32] = [
        "DIVIDE_ERROR",
        "DEBUG",
        "NMI",
        "BREAKPOINT",
        "OVERFLOW",
        "BOUND_RANGE",
        "INVALID_OPCODE",
        "DEVICE_NOT_AVAILABLE",
        "DOUBLE_FAULT",
        "COPROCESSOR_SEGMENT_OVERRUN",
        "INVALID_TSS",
        "SEGMENT_NOT_PRESENT",
        "STACK_SEGMENT_FAULT",
        "GENERAL_PROTECTION",
        "PAGE_FAULT",
        "RESERVED_15",
        "X87_FLOATING_POINT",
        "ALIGNMENT_CHECK",
        "MACHINE_CHECK",
        "SIMD_FLOATING_POINT",
        "VIRTUALIZATION",
        "CONTROL_PROTECTION",
        "RESERVED_22",
        "RESERVED_23",
        "RESERVED_24",
        "RESERVED_25",
        "RESERVED_26",
        "RESERVED_27",
        "HYPERVISOR_INJECTION",
        "VMM_COMMUNICATION",
        "SECURITY",
        "RESERVED_31",
    ];
    NAMES.get(vector as usize).copied().unwrap_or("UNEXPECTED_INTERRUPT")
}

#[no_mangle]
extern "C" fn unikernel_exception(frame: &TrapFrame) -> ! {
    crate::xen::crash::exception(frame)
}

#[no_mangle]
extern "C" fn unikernel_upcall() {
    crate::xen::events::upcall();
}

// Exception stubs: vectors with a CPU-pushed error code (8, 10-14, 17, 21,
// 29, 30) push only the vector; the others push a 0 first, so every frame
// has the same layout. The common path saves all GPRs and calls Rust with
// the frame. IST1 is 16-byte aligned and 5 + 2 + 15 words are pushed, so
// the call sees an aligned stack.
global_asm!(
    r#"
    .macro EXC_NOERR v
    .p2align 4
exc_stub_\v:
    push $0
    push $\v
    jmp exc_common
    .endm
    .macro EXC_ERR v
    .p2align 4
exc_stub_\v:
    push $\v
    jmp exc_common
    .endm

    .pushsection .text.traps, "ax"
    EXC_NOERR 0
    EXC_NOERR 1
    EXC_NOERR 2
    EXC_NOERR 3
    EXC_NOERR 4
    EXC_NOERR 5
    EXC_NOERR 6
    EXC_NOERR 7
    EXC_ERR   8
    EXC_NOERR 9
    EXC_ERR   10
    EXC_ERR   11
    EXC_ERR   12
    EXC_ERR   13
    EXC_ERR   14
    EXC_NOERR 15
    EXC_NOERR 16
    EXC_ERR   17
    EXC_NOERR 18
    EXC_NOERR 19
    EXC_NOERR 20
    EXC_ERR   21
    EXC_NOERR 22
    EXC_NOERR 23
    EXC_NOERR 24
    EXC_NOERR 25
    EXC_NOERR 26
    EXC_NOERR 27
    EXC_NOERR 28
    EXC_ERR   29
    EXC_ERR   30
    EXC_NOERR 31

    .p2align 4
    .globl other_vector_stub
other_vector_stub:
    push $0
    push $256
    jmp exc_common

exc_common:
    cld
    push %rax
    push %rbx
    push %rcx
    push %rdx
    push %rsi
    push %rdi
    push %rbp
    push %r8
    push %r9
    push %r10
    push %r11
    push %r12
    push %r13
    push %r14
    push %r15
    mov %rsp, %rdi
    call unikernel_exception
    ud2

    /* LAPIC spurious interrupt: no EOI, nothing to do. */
    .p2align 4
    .globl spurious_stub
spurious_stub:
    iretq

    /* Event upcall: CPU frame (5 words, from a 16-byte aligned RSP) plus 9
       saved registers leaves RSP aligned for the call. */
    .p2align 4
    .globl upcall_stub
upcall_stub:
    cld
    push %rax
    push %rcx
    push %rdx
    push %rsi
    push %rdi
    push %r8
    push %r9
    push %r10
    push %r11
    call unikernel_upcall
    pop %r11
    pop %r10
    pop %r9
    pop %r8
    pop %rdi
    pop %rsi
    pop %rdx
    pop %rcx
    pop %rax
    iretq
    .popsection

    .pushsection .rodata
    .p2align 3
    .globl exception_stubs
exception_stubs:
    .irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    .quad exc_stub_\v
    .endr
    .popsection
"#,
    options(att_syntax)
);
