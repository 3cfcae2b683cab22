//! The boot self-test, run when gpu-dom starts as PVH dom0 (no other domain
//! needed): one `SELFTEST <name> ok` or `SELFTEST <name> FAIL <reason>` line
//! per check, then `SELFTEST done passed=<n> failed=<m>`. The harness
//! (`cargo xtask boot`) reads exactly these lines.
#![forbid(unsafe_code)]

extern crate alloc;

use crate::arch::x86_64::{alloc as heap, paging};
use crate::executor::Wake;
use crate::xen::foreign::{MapRequest, Mapped};
use crate::xen::{events, hcall, params, sched, timer};
use crate::Kernel;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use xen_abi::xen::DOMID_SELF;

type Check = Result<String, String>;

/// QEMU's `isa-debug-exit` port (see the end of [`run`]).
pub const QEMU_DEBUG_EXIT_PORT: u16 = 0xf4;

struct Report {
    passed: u32,
    failed: u32,
}

impl Report {
    fn record(&mut self, name: &str, r: Check) {
        match r {
            Ok(detail) => {
                self.passed += 1;
                if !detail.is_empty() {
                    log::info!("{name}: {detail}");
                }
                crate::println!("SELFTEST {name} ok");
            }
            Err(reason) => {
                self.failed += 1;
                crate::println!("SELFTEST {name} FAIL {reason}");
            }
        }
    }
}

fn hypercall_page(k: &Kernel) -> Check {
    if !hcall::ready() {
        return Err("page not installed".into());
    }
    let (maj, min) = params::version().map_err(|e| format!("{e}"))?;
    if (maj, min) != k.xen_version {
        return Err(format!(
            "XENVER_version {maj}.{min} != CPUID {}.{}",
            k.xen_version.0, k.xen_version.1
        ));
    }
    Ok(format!("Xen {maj}.{min}"))
}

fn console() -> Check {
    crate::xen::console::console_io_write(b"gpu-dom: console_io reachable\n")
        .map_err(|e| format!("{e}"))?;
    Ok(String::new())
}

fn memory(k: &Kernel) -> Check {
    let m = &k.memmap;
    let in_ram = |r: &crate::memmap::Range| {
        m.regions().iter().any(|e| e.is_ram() && e.range.start <= r.start && r.end <= e.range.end)
    };
    if m.ram_bytes() == 0 {
        return Err("no RAM in the memory map".into());
    }
    if !in_ram(&k.image) {
        return Err(format!(
            "image {:#x}..{:#x} is not inside one RAM entry",
            k.image.start, k.image.end
        ));
    }
    if !in_ram(&k.heap) || k.heap.overlaps(&k.image) {
        return Err(format!("heap {:#x}..{:#x} is not free RAM", k.heap.start, k.heap.end));
    }
    Ok(format!(
        "{:?} map, {} entries, {} MiB RAM, heap {} MiB",
        m.source,
        m.regions().len(),
        m.ram_bytes() >> 20,
        k.heap.len() >> 20
    ))
}

fn heap_alloc() -> Check {
    let v: Vec<u64> = (0..1000).collect();
    let page = alloc::boxed::Box::new([0x5au8; 4096]);
    if v.iter().sum::<u64>() != 499_500 || page.iter().any(|b| *b != 0x5a) {
        return Err("allocated memory does not read back".into());
    }
    let (used, left, n) = heap::stats();
    Ok(format!("{n} allocations, {used} bytes used, {left} left"))
}

fn guard_page() -> Check {
    let g = paging::stack_guard();
    if !paging::is_unmapped(g) {
        return Err(format!("guard page {g:#x} is mapped"));
    }
    if paging::is_unmapped(g + 4096) {
        return Err("the stack's lowest page is unmapped".into());
    }
    Ok(format!("guard page {g:#x} unmapped"))
}

/// What delivers exceptions, the code and the page tables are read-only;
/// the stack is not.
fn read_only() -> Check {
    let (tables, _) = crate::arch::x86_64::traps::descriptor_tables();
    let code = read_only as fn() -> Check as usize as u64;
    let hypercall_page = xen_abi::hypercall::HYPERCALL_PAGE.addr();
    let (pml4, _) = x86_64::registers::control::Cr3::read();
    let pml4 = pml4.start_address().as_u64();
    for (what, addr) in [
        ("the descriptor tables", tables),
        ("the code", code),
        ("the hypercall page", hypercall_page),
        ("the PML4", pml4),
    ] {
        if !paging::is_read_only(addr) {
            return Err(format!("{what} at {addr:#x}: writable"));
        }
    }
    let local = 0u8;
    let stack = core::ptr::addr_of!(local) as u64;
    if paging::is_read_only(stack) {
        return Err(format!("the stack at {stack:#x}: read-only"));
    }
    Ok(format!("tables {tables:#x}, code {code:#x}, hypercall page, PML4 {pml4:#x} read-only"))
}

fn shared_info(k: &mut Kernel) -> Check {
    k.map_shared_info().map_err(|e| format!("{e}"))?;
    let t0 = timer::now_ns();
    let t1 = timer::now_ns();
    if t0 == 0 || t1 < t0 {
        return Err(format!("system time not advancing: {t0} then {t1}"));
    }
    Ok(format!("at gfn {:#x}, system time {} ms", k.layout.shared_info_gfn, t0 / 1_000_000))
}

fn event_upcall(k: &mut Kernel) -> Check {
    k.enable_events().map_err(|e| format!("{e}"))?;
    let (x2, svr, isr, irr) =
        crate::arch::x86_64::lapic::describe(crate::arch::x86_64::traps::UPCALL_VECTOR);
    Ok(format!(
        "{} upcalls so far; LAPIC x2apic={x2} svr={svr:#x} isr={isr} irr={irr}",
        events::upcalls()
    ))
}

fn event_channel_loopback(k: &mut Kernel) -> Check {
    let a = events::alloc_unbound(DOMID_SELF).map_err(|e| format!("{e}"))?;
    let b = events::bind_interdomain(DOMID_SELF, a).map_err(|e| format!("{e}"))?;
    let result = (|| {
        events::unmask(a).map_err(|e| format!("{e}"))?;
        events::unmask(b).map_err(|e| format!("{e}"))?;
        k.executor.watch(a).map_err(|_| String::from("executor full"))?;
        k.executor.collect();
        let before = events::upcalls();
        events::send(b).map_err(|e| format!("{e}"))?;
        let deadline = timer::now_ns() + 1_000_000_000;
        let woke = k.executor.wait(Some(deadline)).map_err(|e| format!("{e}"))?;
        // The pending bit can be visible before Xen injects the vector (it
        // does so on the next VM entry): give it a few scheduler round trips.
        let mut yields = 0;
        while events::upcalls() == before && yields < 100 {
            sched::yield_now();
            yields += 1;
        }
        let upcalls = events::upcalls() - before;
        if woke != Wake::Event || !k.executor.take(a) {
            return Err(format!("port {a} not seen pending within 1 s ({upcalls} upcalls)"));
        }
        if upcalls == 0 {
            let (x2, svr, isr, irr) =
                crate::arch::x86_64::lapic::describe(crate::arch::x86_64::traps::UPCALL_VECTOR);
            return Err(format!("port {a} fired but no upcall arrived (total {}; x2apic={x2} svr={svr:#x} isr={isr} irr={irr})", events::upcalls()));
        }
        Ok(format!("ports {a}<->{b}, {upcalls} upcall(s) after {yields} yield(s)"))
    })();
    k.executor.unwatch(a);
    let closed = events::close(b).and_then(|_| events::close(a));
    let detail = result?;
    closed.map_err(|e| format!("{e}"))?;
    Ok(detail)
}

fn timer_oneshot(k: &mut Kernel) -> Check {
    let port = k.init_timer().map_err(|e| format!("{e}"))?;
    let start = timer::now_ns();
    let sleeps = k.executor.sleeps();
    let woke = k.executor.wait(Some(start + 10_000_000)).map_err(|e| format!("{e}"))?;
    let elapsed = timer::now_ns() - start;
    if woke != Wake::Timeout || elapsed < 10_000_000 {
        return Err(format!("woke {woke:?} after {elapsed} ns"));
    }
    if k.executor.sleeps() == sleeps {
        return Err("the executor never slept".into());
    }
    Ok(format!("VIRQ_TIMER port {port}, slept {} us for 10000", elapsed / 1000))
}

fn sched_block() -> Check {
    let deadline = timer::now_ns() + 2_000_000;
    timer::set_oneshot(deadline).map_err(|e| format!("{e}"))?;
    // A stale event (e.g. the previous timer) may end one block early; the
    // armed timer must end it within a few.
    for blocks in 1..=8 {
        sched::block();
        if timer::now_ns() >= deadline {
            return Ok(format!("woke by the timer after {blocks} block(s)"));
        }
    }
    Err("8 SCHEDOP_block calls returned before the timer".into())
}

fn grant_table(k: &mut Kernel) -> Check {
    let (frames, max) = k.init_grant_table().map_err(|e| format!("{e}"))?;
    Ok(format!("{frames} frames at gfn {:#x} (max {max})", k.layout.grant_frames_gfn))
}

/// Grants a page to ourselves, maps the grant into the window, reads it back
/// there, unmaps. The page is then abandoned: Xen may drop its original GFN
/// when its frame is grant-mapped by the same domain.
fn grant_self_map(k: &mut Kernel) -> Check {
    let (Some(gt), Some((window, token))) = (k.grant_table.as_ref(), k.grant_window.as_mut())
    else {
        return Err("grant table not set up".into());
    };
    // Abandoned, never freed: its GFN may be gone after the self-map.
    let (_, gfn) = pattern_page(0xa5);
    let gref = gt.grant(0, gfn, false).map_err(|e| format!("grant: {e:?}"))?;
    let mut out = [Err(crate::xen::foreign::MapError::WindowFull)];
    window.map(token, &[MapRequest { dom: 0, gref, readonly: false }], &mut out);
    let m: Mapped = match out[0] {
        Ok(m) => m,
        Err(e) => {
            let _ = gt.end_grant(gref);
            return Err(format!("map of gref {gref}: {e:?}"));
        }
    };
    let mut seen = [0u8; 4096];
    window.reader().read(m.gfn, &mut seen);
    let bad = seen.iter().enumerate().filter(|(i, b)| **b != (*i as u8) ^ 0xa5).count();
    let refused = window.unmap(token, &[m]);
    let ended = gt.end_grant(gref);
    if bad != 0 {
        return Err(format!("{bad} bytes differ through window gfn {:#x}", m.gfn));
    }
    if refused != 0 {
        return Err("unmap refused".into());
    }
    ended.map_err(|e| format!("end grant: {e:?}"))?;
    Ok(format!(
        "gref {gref} of gfn {gfn:#x} mapped at window gfn {:#x} (handle {}), read back, unmapped",
        m.gfn, m.handle
    ))
}

#[repr(C, align(4096))]
struct Page([u8; 4096]);

/// A leaked page filled with `(i as u8) ^ seed`, and its GFN.
fn pattern_page(seed: u8) -> (&'static Page, u64) {
    let mut page = alloc::boxed::Box::new(Page([0; 4096]));
    for (i, b) in page.0.iter_mut().enumerate() {
        *b = (i as u8) ^ seed;
    }
    let page: &'static Page = alloc::boxed::Box::leak(page);
    (page, page as *const Page as u64 >> 12)
}

/// Grants a page to ourselves and copies it with `GNTTABOP_copy` (batched,
/// into an unaligned buffer: split segments); a bad ref is refused by name.
fn grant_copy(k: &mut Kernel) -> Check {
    use crate::xen::grant_copy::{copy_in, CopyError};
    let gt = k.grant_table.as_ref().ok_or("grant table not set up")?;
    let (a, gfn_a) = pattern_page(0x3c);
    let (b, gfn_b) = pattern_page(0xc3);
    let ra = gt.grant(0, gfn_a, true).map_err(|e| format!("grant: {e:?}"))?;
    let rb = gt.grant(0, gfn_b, true).map_err(|e| format!("grant: {e:?}"))?;
    let mut buf = alloc::vec![0u8; 3 * 4096 + 8];
    let res = copy_in(0, &[ra, rb], &mut buf[8..8 + 2 * 4096]);
    let bad = copy_in(0, &[ra, 4000], &mut buf[8..8 + 2 * 4096]);
    let (ea, eb) = (gt.end_grant(ra), gt.end_grant(rb));
    res.map_err(|e| format!("copy of grefs {ra}, {rb}: {e:?}"))?;
    if buf[8..8 + 4096] != a.0 || buf[8 + 4096..8 + 2 * 4096] != b.0 {
        return Err("copied bytes differ from the granted pages".into());
    }
    if buf[..8].iter().chain(&buf[8 + 2 * 4096..]).any(|x| *x != 0) {
        return Err("bytes outside the destination were written".into());
    }
    let status = match bad {
        Err(CopyError::Xen { index: 1, status }) => status,
        other => return Err(format!("copy of unused gref 4000: {other:?}, want page 1 refused")),
    };
    ea.and(eb).map_err(|e| format!("end grant: {e:?}"))?;
    Ok(format!(
        "2 granted pages copied into an unaligned buffer; unused gref refused (GNTST {status})"
    ))
}

/// Maps a self-granted page writable for the CPU, writes and reads it there.
fn foreign_page(k: &mut Kernel) -> Check {
    let (Some(gt), Some(fm)) = (k.grant_table.as_ref(), k.cpu_pages.as_mut()) else {
        return Err("grant table not set up".into());
    };
    let (_, gfn) = pattern_page(0x5a);
    let gref = gt.grant(0, gfn, false).map_err(|e| format!("grant: {e:?}"))?;
    let mut p = match fm.map_page(0, gref) {
        Ok(p) => p,
        Err(e) => {
            let _ = gt.end_grant(gref);
            return Err(format!("map of gref {gref}: {e:?}"));
        }
    };
    let before = p.read_u32(8);
    p.write_u32(8, 0xfeed_f00d);
    p.write(16, b"ring");
    p.fence();
    let (after, mut word) = (p.read_u32(8), [0u8; 4]);
    p.read(16, &mut word);
    let outside = p.read_u32(4096) == 0 && p.read_u32(2) == 0;
    let gfn_w = p.mapped().gfn;
    let unmapped = fm.unmap_page(p);
    let ended = gt.end_grant(gref);
    if before != u32::from_le_bytes([8 ^ 0x5a, 9 ^ 0x5a, 10 ^ 0x5a, 11 ^ 0x5a]) {
        return Err(format!("read {before:#x} at offset 8 before writing"));
    }
    if after != 0xfeed_f00d || &word != b"ring" || !outside {
        return Err(format!("read back {after:#x} {word:?} (outside-page reads 0: {outside})"));
    }
    if !unmapped {
        return Err("unmap refused".into());
    }
    ended.map_err(|e| format!("end grant: {e:?}"))?;
    Ok(format!(
        "gref {gref} mapped writable at window gfn {gfn_w:#x}, written, read back, unmapped"
    ))
}

/// Runs every check, prints the summary, and powers the domain off.
pub fn run(mut k: Kernel) -> ! {
    let mut r = Report { passed: 0, failed: 0 };
    log::info!("started as PVH dom0 (cmdline {:?}): running the self-test", k.cmdline());
    if let Some(f) = k.options().fault.filter(|f| f.after_requests.is_none()) {
        log::info!("injecting fault {:?}", f.kind);
        crate::arch::x86_64::fault::inject(f.kind);
    }
    r.record("hypercall_page", hypercall_page(&k));
    r.record("console", console());
    r.record("memory_map", memory(&k));
    r.record("heap", heap_alloc());
    r.record("guard_page", guard_page());
    r.record("read_only", read_only());
    let si = shared_info(&mut k);
    let si_ok = si.is_ok();
    r.record("shared_info", si);
    if si_ok {
        let up = event_upcall(&mut k);
        let up_ok = up.is_ok();
        r.record("event_upcall", up);
        if up_ok {
            r.record("event_channel", event_channel_loopback(&mut k));
            let t = timer_oneshot(&mut k);
            let t_ok = t.is_ok();
            r.record("timer", t);
            if t_ok {
                r.record("sched_block", sched_block());
            }
        }
    }
    let gt = grant_table(&mut k);
    let gt_ok = gt.is_ok();
    r.record("grant_table", gt);
    if gt_ok {
        r.record("grant_self_map", grant_self_map(&mut k));
        r.record("grant_copy", grant_copy(&mut k));
        r.record("foreign_page", foreign_page(&mut k));
    }
    crate::println!("SELFTEST done passed={} failed={}", r.passed, r.failed);
    log::info!("self-test finished; powering off");
    // Under QEMU with `-device isa-debug-exit,iobase=0xf4`, this ends QEMU
    // with status 1 (all passed) or 3 (failures): Xen only halts the machine
    // when dom0 powers off. Elsewhere port 0xf4 is unassigned.
    crate::arch::x86_64::cpu::outb(QEMU_DEBUG_EXIT_PORT, (r.failed != 0) as u8);
    k.shutdown(xen_abi::sched::SHUTDOWN_POWEROFF)
}
