//! The PVH entry: the ELF note that names it, and the 32-bit code that gets
//! to long mode.
//!
//! Xen (or QEMU's PVH option ROM, for an HVM domU) enters `pvh_start32` in
//! 32-bit protected mode, paging off, flat segments, `%ebx` = physical
//! address of `struct hvm_start_info` (`docs/misc/pvh.pandoc`). This code:
//! 1. zeroes `.bss` (loaders should, but the page tables below live there);
//! 2. identity-maps the first 4 GiB with 2 MiB pages (PML4 -> PDPT -> 4 PDs);
//! 3. enables PAE, sets `EFER.LME`, turns paging on (and `CR0.WP`);
//! 4. loads a boot GDT, far-jumps to 64-bit code, loads the data segments;
//! 5. switches to the main stack and calls `unikernel_start64(start_info)`.
//!
//! The start-info magic is checked in Rust, where a failure can be reported.
//! Nothing here depends on where the loader put the start info or modules;
//! the image itself must be loaded at its link address (PVH loaders place
//! segments at their physical addresses).

use core::arch::global_asm;

global_asm!(
    r#"
    .pushsection .note.Xen, "a", @note
    .p2align 2
    .long 4                     /* namesz: "Xen\0" */
    .long 4                     /* descsz */
    .long 18                    /* XEN_ELFNOTE_PHYS32_ENTRY (elfnote.h) */
    .asciz "Xen"
    .long pvh_start32
    .p2align 2
    .popsection

    .pushsection .text.pvh32, "ax"
    .code32
    .globl pvh_start32
pvh_start32:
    cli
    cld
    mov %ebx, %esi              /* keep the start-info address */

    /* 1. zero .bss */
    mov $__bss_start, %edi
    mov $__bss_end, %ecx
    sub %edi, %ecx
    xor %eax, %eax
    rep stosb

    /* 2. identity map 0..4 GiB with 2 MiB pages */
    mov $boot_pdpt, %eax
    or $0x3, %eax               /* present | writable */
    mov %eax, boot_pml4

    mov $boot_pd, %eax
    or $0x3, %eax
    xor %ecx, %ecx
1:  mov %eax, boot_pdpt(,%ecx,8)
    add $4096, %eax
    inc %ecx
    cmp $4, %ecx
    jb 1b

    xor %ecx, %ecx
2:  mov %ecx, %eax
    shl $21, %eax
    or $0x83, %eax              /* present | writable | 2 MiB */
    mov %eax, boot_pd(,%ecx,8)  /* high half stays 0 (below 4 GiB) */
    inc %ecx
    cmp $2048, %ecx
    jb 2b

    /* 3. PAE, long mode, paging */
    mov %cr4, %eax
    or $0x20, %eax              /* CR4.PAE */
    mov %eax, %cr4
    mov $boot_pml4, %eax
    mov %eax, %cr3
    mov $0xC0000080, %ecx       /* IA32_EFER */
    rdmsr
    or $0x100, %eax             /* LME */
    wrmsr
    mov %cr0, %eax
    or $0x80010001, %eax        /* PG | WP | PE */
    mov %eax, %cr0

    /* 4. 64-bit code segment */
    lgdt boot_gdt_ptr
    ljmp $0x08, $3f

    .code64
3:  mov $0x10, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    xor %eax, %eax
    mov %eax, %fs
    mov %eax, %gs

    /* 5. main stack, then Rust */
    mov $__stack_top, %rsp
    xor %ebp, %ebp
    mov %esi, %edi              /* zero-extends: start-info paddr */
    call unikernel_start64
4:  cli
    hlt
    jmp 4b
    .popsection

    .pushsection .rodata
    .p2align 3
boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff    /* 0x08: 64-bit code */
    .quad 0x00cf92000000ffff    /* 0x10: data */
boot_gdt_ptr:
    .word boot_gdt_ptr - boot_gdt - 1
    .long boot_gdt
    .popsection

    .pushsection .bss
    .p2align 12
    .globl boot_pml4
boot_pml4: .skip 4096
    .globl boot_pdpt
boot_pdpt: .skip 4096
    .globl boot_pd
boot_pd:   .skip 4096 * 4
    .popsection
"#,
    options(att_syntax)
);
