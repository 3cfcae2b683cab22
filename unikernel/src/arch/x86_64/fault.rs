//! Deliberate faults, to check the crash reports end to end
//! (`gpu-dom.fault=<kind>` on the dom0 command line; see `selftest`).

/// Triggers fault `kind` (`boot_options::FAULT_KINDS`): `panic`,
/// `page_fault` (read of the stack guard page), `stack_overflow` (unbounded
/// recursion into the guard page), `invalid_opcode`, `write_tables` (a
/// stray write to the read-only descriptor tables: reported as a page
/// fault, where writable tables would be corrupted and the next interrupt
/// would triple-fault the domain without a word). Returns only for an
/// unknown kind.
#[inline(never)]
pub fn inject(kind: &str) {
    match kind {
        "panic" => panic!("deliberate panic (gpu-dom.fault=panic)"),
        "page_fault" => {
            // SAFETY: deliberately faulting: the stack guard page is unmapped.
            unsafe { core::ptr::read_volatile(super::paging::stack_guard() as *const u8) };
        }
        "stack_overflow" => {
            #[inline(never)]
            #[allow(unconditional_recursion)]
            fn recurse(n: u64) -> u64 {
                let buf = [n; 64];
                core::hint::black_box(&buf);
                recurse(n + 1) + buf[3]
            }
            core::hint::black_box(recurse(0));
        }
        "write_tables" => {
            let (tables, _) = super::traps::descriptor_tables();
            // SAFETY: deliberately faulting: the tables are mapped read-only
            // (`paging::protect_boot_state`); were they not, this would
            // write 0 over the GDT's null descriptor, which is 0 already.
            unsafe { core::ptr::write_volatile(tables as *mut u64, 0) };
        }
        // SAFETY: deliberately faulting with an invalid opcode.
        "invalid_opcode" => unsafe { core::arch::asm!("ud2") },
        other => log::warn!("unknown gpu-dom.fault={other}"),
    }
}
