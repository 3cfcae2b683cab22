//! GDT (with a TSS for the exception stack), IDT, exception stubs and the
//! exception report.
//!
//! The descriptors, the TSS, the gate format, the CPU's interrupt frame and
//! the `lgdt`/`lidt`/`ltr`/segment loads are the `x86_64` crate's. The entry
//! stubs stay assembly: the crate's typed handlers need the `x86-interrupt`
//! ABI (nightly only), and the stubs give every vector one frame layout
//! ([`TrapFrame`]) and keep the upcall path to a plain C-ABI call.
//!
//! # Invariants
//! - Every exception vector (0..32) has a handler; each runs on the IST1
//!   stack (so a stack overflow into the guard page still gets reported),
//!   prints `EXCEPTION <name> ...` and a register dump, and shuts the domain
//!   down with `SHUTDOWN_crash`. None returns.
//! - Vector [`UPCALL_VECTOR`] is the Xen event upcall; it runs on the current
//!   stack, saves every register the C ABI lets Rust clobber, and returns.
//! - Any other vector is reported like an exception.

use core::arch::global_asm;
use core::cell::UnsafeCell;
use core::mem::size_of;

use x86_64::instructions::segmentation::{Segment, CS, DS, ES, SS};
use x86_64::instructions::tables::{lidt, load_tss};
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable};
use x86_64::structures::idt::{Entry, HandlerFunc, InterruptStackFrameValue};
use x86_64::structures::tss::TaskStateSegment;
use x86_64::structures::DescriptorTablePointer;
use x86_64::VirtAddr;

/// The vector Xen raises for this vCPU's event-channel upcall.
pub const UPCALL_VECTOR: u8 = 0xf3;
/// The LAPIC spurious-interrupt vector.
pub const SPURIOUS_VECTOR: u8 = 0xff;

/// The TSS's interrupt-stack slot for the exception stack, counted from 0
/// as the `x86_64` crate does (the CPU's IST1).
const EXCEPTION_IST: u16 = 0;

/// An IDT gate whose handler is one of the assembly stubs below, set by
/// address: the crate's handler-function types need the nightly
/// `x86-interrupt` ABI. The IDT is 256 of these rather than the crate's
/// `InterruptDescriptorTable`, which keeps the reserved vectors (15, 22-27,
/// 31) private: here every vector has a handler.
type Gate = Entry<HandlerFunc>;

/// The GDT (null, 64-bit code, data, the TSS's two slots), the TSS and the
/// IDT, laid out by the `x86_64` crate's types. Page-aligned, and a whole
/// number of pages (the alignment rounds the size up), so that mapping them
/// read-only (`paging::protect_boot_state`) covers nothing else.
#[repr(C, align(4096))]
struct Tables {
    gdt: GlobalDescriptorTable<5>,
    tss: TaskStateSegment,
    idt: [Gate; 256],
}
const _: () = assert!(size_of::<Gate>() == 16 && size_of::<TaskStateSegment>() == 104);

/// Written once by [`init`] on the boot vCPU before interrupts are enabled.
struct TablesCell(UnsafeCell<Tables>);
// SAFETY: only `init` writes, once, on the single vCPU, before any reader
// (the CPU itself, through GDTR/IDTR/TR) exists.
unsafe impl Sync for TablesCell {}

static TABLES: TablesCell = TablesCell(UnsafeCell::new(Tables {
    gdt: GlobalDescriptorTable::empty(),
    tss: TaskStateSegment::new(),
    idt: [const { Gate::missing() }; 256],
}));

extern "C" {
    static exception_stubs: [u64; 32];
    static other_vector_stub: u8;
    static upcall_stub: u8;
    static spurious_stub: u8;
    static __ist_top: u8;
}

/// Points `gate` at the stub at `addr`: present, ring 0, interrupts off on
/// entry (an interrupt gate), in the current code segment, on the exception
/// stack when `ist` is set.
///
/// # Safety
/// `addr` is one of this file's stubs and CS is the final kernel code
/// segment (the GDT is loaded).
unsafe fn set_gate(gate: &mut Gate, addr: u64, ist: bool) {
    // SAFETY: forwarded: `addr` is an entry stub that expects the frame the
    // CPU pushes; the IST slot is filled by `init` before the IDT is loaded.
    unsafe {
        let options = gate.set_handler_addr(VirtAddr::new(addr));
        if ist {
            options.set_stack_index(EXCEPTION_IST);
        }
    }
}

/// Loads the GDT (code, data, TSS), the TSS with the exception stack in
/// IST1, and the IDT.
pub fn init() {
    // SAFETY: single vCPU, interrupts off, called once at boot: nothing else
    // reads or writes TABLES yet.
    let t = unsafe { &mut *TABLES.0.get() };
    t.tss.interrupt_stack_table[EXCEPTION_IST as usize] =
        VirtAddr::new(core::ptr::addr_of!(__ist_top) as u64);
    let code = t.gdt.append(Descriptor::kernel_code_segment());
    let data = t.gdt.append(Descriptor::kernel_data_segment());
    // SAFETY: the TSS is in a static: it never moves and lives as long as
    // the descriptor is loaded.
    let tss = t.gdt.append(unsafe { Descriptor::tss_segment_unchecked(&t.tss) });
    // SAFETY: the GDT is in a static, complete and never written again; its
    // code and data segments are flat ring-0 segments like `boot.rs`'s (the
    // same selectors, 0x08 and 0x10), so reloading CS/SS/DS/ES keeps every
    // address meaning the same; the TSS selector names the TSS above.
    unsafe {
        t.gdt.load_unsafe();
        CS::set_reg(code);
        SS::set_reg(data);
        DS::set_reg(data);
        ES::set_reg(data);
        load_tss(tss);
    }
    let other = core::ptr::addr_of!(other_vector_stub) as u64;
    let spurious = core::ptr::addr_of!(spurious_stub) as u64;
    let upcall = core::ptr::addr_of!(upcall_stub) as u64;
    // SAFETY: every address is one of the stubs below (`exception_stubs` is
    // their table); the GDT and CS are final (above). Exceptions and
    // unexpected vectors run on the exception stack, the spurious and upcall
    // vectors (which return) on the current one.
    unsafe {
        for (v, stub) in exception_stubs.iter().enumerate() {
            set_gate(&mut t.idt[v], *stub, true);
        }
        for gate in t.idt[32..].iter_mut() {
            set_gate(gate, other, true);
        }
        set_gate(&mut t.idt[SPURIOUS_VECTOR as usize], spurious, false);
        set_gate(&mut t.idt[UPCALL_VECTOR as usize], upcall, false);
    }
    let idt = DescriptorTablePointer {
        limit: (size_of::<[Gate; 256]>() - 1) as u16,
        base: VirtAddr::new(core::ptr::addr_of!(t.idt) as u64),
    };
    // SAFETY: the IDT is in a static, complete, and never written again;
    // every gate names a stub of this file.
    unsafe { lidt(&idt) };
}

/// Where the GDT, TSS and IDT are: `[start, end)`, whole pages. Nothing
/// writes them after [`init`] (the CPU does not either: the segment
/// descriptors are created with their accessed bit set, and the TSS's busy
/// bit is set by `ltr` in `init`).
pub fn descriptor_tables() -> (u64, u64) {
    let start = TABLES.0.get() as u64;
    (start, start + size_of::<Tables>() as u64)
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
    /// What the CPU pushed: RIP, CS, RFLAGS, RSP, SS.
    pub cpu: InterruptStackFrameValue,
}
const _: () = assert!(size_of::<TrapFrame>() == 22 * 8);

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
