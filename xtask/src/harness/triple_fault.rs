//! Telling a triple fault that QEMU's emulation caused from one this
//! project's code caused, from the serial log alone.
//!
//! Every run boots Xen under QEMU's TCG, which emulates AMD SVM for Xen's
//! HVM and PVH domains. That emulation triple-faults a domain now and then
//! right after a VM exit, with the domain's tables valid in Xen's dump (see
//! `asid=0` in `commands::boot`, which made it rarer, not rare enough). Two
//! shapes are recognised here; a run that ended in one gave no verdict on
//! this project and is run again, at most twice (`dom0_run`). Every other
//! triple fault fails the run.
//!
//! 1. [`firmware_triple_fault`]: the domain had not reached this project's
//!    code (hvmloader, SeaBIOS, a Linux guest's kernel).
//! 2. [`resume_triple_fault`]: the domain runs this project's image, which
//!    maps its code, hypercall page, descriptor tables and page tables
//!    read-only before anything else (`unikernel::arch::x86_64::paging`,
//!    the image's `read-only:` boot line), and Xen's dump puts the vCPU at
//!    an instruction of that code or of that hypercall page. The image
//!    reports every exception it can take itself (every vector has a
//!    handler on its own stack); what it cannot report is an exception
//!    whose delivery fails, and with the GDT, TSS, IDT and page tables
//!    read-only its own code cannot make delivery fail, nor can it have
//!    jumped astray (that faults at the stray address, reported). Seen in
//!    this project's runs: at the `ret` after `vmmcall` in the `sched_op`
//!    stub (the busy guest, twice) and right after an `rdtsc` in gpu-dom's
//!    `timer::now_ns` (Xen emulates the TSC under QEMU, so `rdtsc` exits),
//!    and once in CI without the dump at hand. Each dump shows the vCPU
//!    right after a VM exit, the shape `asid=0` made rarer. Also counted
//!    here, for any domain: a dump that shows Xen's own code segment
//!    (`e008`) and text, i.e. no guest instruction at all (seen for a Linux
//!    guest, and for a restarted gpu-dom in `restart`). A fault of the
//!    image's own that happens three runs in a row still fails.

use crate::harness::markers::IMAGE_ENTRY_LINE;

use unikernel::layout::READ_ONLY_LINE;

/// A domain that triple-faulted before the image in it printed its first
/// line, i.e. in the domain's firmware (hvmloader, SeaBIOS, QEMU's PVH
/// option ROM for an HVM domU): `Some("dN")`. Measured once in ~50 `iommu`
/// runs, in hvmloader's PCI setup; no code of this project had run there.
/// A Linux guest (`cargo xtask linux-guest`) never prints that line: its
/// kernel is not this project's code either (`vgpu-front` runs in its user
/// space, which cannot triple-fault it); seen once in nine of its boots,
/// with Xen's own code in the dump (QEMU's emulation of SVM).
pub fn firmware_triple_fault(serial: &str) -> Option<String> {
    let mut started: Vec<String> = Vec::new();
    for line in serial.lines() {
        if let Some((dom, text)) = domain_line(line) {
            if text.trim_end() == IMAGE_ENTRY_LINE {
                started.push(dom.to_string());
            }
        }
        if let Some(dom) = triple_fault_domain(line) {
            if !started.iter().any(|d| d == dom) {
                return Some(dom.to_string());
            }
        }
    }
    None
}

/// A domain running this project's image that triple-faulted at one of its
/// own instructions (module documentation, shape 2): `Some("dN at RIP
/// <rip>, in its code <a>..<b>")` or `"... in its hypercall page <p>"`.
pub fn resume_triple_fault(serial: &str) -> Option<String> {
    let mut images: Vec<(String, ReadOnly)> = Vec::new();
    let mut faulted: Option<String> = None;
    for line in serial.lines() {
        if let Some((dom, text)) = domain_line(line) {
            if let Some(ro) = read_only(text) {
                images.retain(|(d, _)| d != dom);
                images.push((dom.to_string(), ro));
            }
        }
        if let Some(dom) = triple_fault_domain(line) {
            faulted = Some(dom.to_string());
            continue;
        }
        // Xen's dump of the faulted vCPU follows its "Triple fault" line.
        let (Some(dom), Some((cs, rip))) = (faulted.as_deref(), dump_rip(line)) else { continue };
        if cs == XEN_CS {
            // Xen's own code segment and text: no guest instruction at all.
            return Some(format!(
                "{dom} with Xen's own code in the dump (cs {cs:x}, RIP {rip:#x})"
            ));
        }
        let ro = images.iter().find(|(d, _)| d == dom).map(|(_, r)| r)?;
        let (page, (a, b)) = (ro.hypercall_page, ro.code);
        return if (page..page + 4096).contains(&rip) {
            Some(format!("{dom} at RIP {rip:#x}, in its hypercall page {page:#x}"))
        } else if (a..b).contains(&rip) {
            Some(format!("{dom} at RIP {rip:#x}, in its code {a:#x}..{b:#x}"))
        } else {
            None
        };
    }
    None
}

/// What an image's `read-only:` line says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ReadOnly {
    code: (u64, u64),
    hypercall_page: u64,
}

/// `("dN", text)` of a domain's console line as Xen prints it: `(dN) text`.
fn domain_line(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix("(d")?;
    let (id, text) = rest.split_once(") ")?;
    id.bytes().all(|b| b.is_ascii_digit()).then_some((&line[1..2 + id.len()], text))
}

/// The domain (`"dN"`) of Xen's `dNvM Triple fault` line.
fn triple_fault_domain(line: &str) -> Option<&str> {
    let i = line.find(" Triple fault")?;
    // "(XEN) d1v0 Triple fault ...": the domain is "d1".
    let vcpu = line[..i].rsplit(' ').next().unwrap_or("");
    let dom = vcpu.split('v').next().unwrap_or("");
    dom.starts_with('d').then_some(dom)
}

/// The code range and the hypercall page of an image's `read-only:` line
/// (`read-only: code 0x..0x.., hypercall page 0x.., ...`).
fn read_only(text: &str) -> Option<ReadOnly> {
    // The image's logger prefixes its lines with "gpu-dom: ".
    let rest = text.strip_prefix("gpu-dom: ")?.strip_prefix(READ_ONLY_LINE)?;
    let hex_after = |key: &str| -> Option<u64> {
        let at = rest.find(key)? + key.len();
        let hex: String = rest[at..].chars().take_while(char::is_ascii_hexdigit).collect();
        u64::from_str_radix(&hex, 16).ok()
    };
    Some(ReadOnly {
        code: (hex_after("code 0x")?, hex_after("..0x")?),
        hypercall_page: hex_after("hypercall page 0x")?,
    })
}

/// Xen's own 64-bit code selector (`__HYPERVISOR_CS`, `xen/arch/x86/include/
/// asm/desc.h`), which no guest uses.
const XEN_CS: u16 = 0xe008;

/// The CS and RIP of Xen's register dump line `(XEN) RIP:    0008:[<...>]`.
fn dump_rip(line: &str) -> Option<(u16, u64)> {
    let rest = line.strip_prefix("(XEN) RIP:")?;
    let (cs, rest) = rest.trim_start().split_once(":[<")?;
    let hex = rest.split_once(">]")?.0;
    Some((u16::from_str_radix(cs, 16).ok()?, u64::from_str_radix(hex, 16).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_triple_fault_before_the_image_started_is_the_firmwares() {
        let hvmloader = "(d1) HVM Loader\n(d1) PCI-ISA link 2 routed to IRQ11\n\
                         (XEN) d1v0 Triple fault - invoking HVM shutdown action 1\n";
        assert_eq!(firmware_triple_fault(hvmloader).as_deref(), Some("d1"));
        let in_image = "(d1) gpu-dom: PVH entry reached long mode\n(d1) gpu-dom: ready\n\
                        (XEN) d1v0 Triple fault - invoking HVM shutdown action 1\n";
        assert_eq!(firmware_triple_fault(in_image), None);
        // Another domain's entry line does not count for d12.
        let other = "(d1) gpu-dom: PVH entry reached long mode\n\
                     (XEN) d12v0 Triple fault - invoking HVM shutdown action 1\n";
        assert_eq!(firmware_triple_fault(other).as_deref(), Some("d12"));
        assert_eq!(firmware_triple_fault("(XEN) all fine\n"), None);
    }

    /// The shape of run 8 of this session's e2e loop (RIP at the `ret` of
    /// stub 29, `sched_op`).
    fn log(read_only_dom: &str, rip: &str) -> String {
        format!(
            "(d6) gpu-dom: PVH entry reached long mode\n\
             ({read_only_dom}) gpu-dom: read-only: code 0x100000..0x148000, hypercall page \
             0x152000, descriptor tables 0x14f000..0x151000, page tables\n\
             (d6) TESTGUEST dom=6 busy batches=200\n\
             (XEN) d6v0 Triple fault - invoking HVM shutdown action 1\n\
             (XEN) *** Dumping Dom6 vcpu#0 state: ***\n\
             (XEN) ----[ Xen-4.17.7  x86_64  debug=n  Not tainted ]----\n\
             (XEN) CPU:    0\n\
             (XEN) RIP:    0008:[<{rip}>]\n\
             (XEN) RFLAGS: 0000000000000246   CONTEXT: hvm guest (d6v0)\n"
        )
    }

    #[test]
    fn a_fault_on_the_return_from_a_hypercall_is_the_emulations() {
        let why = resume_triple_fault(&log("d6", "00000000001523a8"));
        assert_eq!(why.as_deref(), Some("d6 at RIP 0x1523a8, in its hypercall page 0x152000"));
    }

    #[test]
    fn a_fault_right_after_an_exiting_instruction_in_the_code_is_the_emulations() {
        // gpu-dom's shape: RIP right after the `rdtsc` of `timer::now_ns`.
        let why = resume_triple_fault(&log("d6", "0000000000104a10"));
        assert_eq!(why.as_deref(), Some("d6 at RIP 0x104a10, in its code 0x100000..0x148000"));
    }

    #[test]
    fn a_dump_with_xens_own_code_segment_is_the_emulations() {
        // The restarted gpu-dom in a CI-like run: Xen's text, cs e008.
        let why = resume_triple_fault(&log("d6", "ffff82d0402044a5").replace("0008:[<", "e008:[<"));
        assert_eq!(
            why.as_deref(),
            Some("d6 with Xen's own code in the dump (cs e008, RIP 0xffff82d0402044a5)")
        );
    }

    #[test]
    fn a_fault_outside_the_images_code_and_hypercall_page_fails_the_run() {
        assert_eq!(resume_triple_fault(&log("d6", "0000000000153000")), None, "one past the page");
        assert_eq!(resume_triple_fault(&log("d6", "0000000000148000")), None, "past the code");
        assert_eq!(resume_triple_fault(&log("d6", "00000000000ff000")), None, "below the image");
        assert_eq!(resume_triple_fault(&log("d6", "0000000000700000")), None, "the heap");
    }

    #[test]
    fn without_the_domains_read_only_line_nothing_is_excused() {
        // Another domain's line does not vouch for d6 (an image without the
        // read-only tables, or a Linux guest, is not covered by shape 2).
        assert_eq!(resume_triple_fault(&log("d7", "00000000001523a8")), None);
        assert_eq!(resume_triple_fault("(XEN) d6v0 Triple fault - invoking\n"), None);
    }

    #[test]
    fn console_lines_are_split_into_domain_and_text() {
        assert_eq!(domain_line("(d12) gpu-dom: ready"), Some(("d12", "gpu-dom: ready")));
        assert_eq!(domain_line("(XEN) d1v0 x"), None);
        assert_eq!(dump_rip("(XEN) RIP:    0008:[<0000000001044f88>] x"), Some((8, 0x104_4f88)));
        assert_eq!(
            dump_rip("(XEN) RIP:    e008:[<ffff82d0402044a5>]"),
            Some((0xe008, 0xffff_82d0_4020_44a5))
        );
        assert_eq!(triple_fault_domain("(XEN) d3v1 Triple fault - x"), Some("d3"));
        let line = "gpu-dom: read-only: code 0x1000000..0x105e000, hypercall page 0x1066000, \
                    descriptor tables 0x1062000..0x1064000, page tables";
        let ro = ReadOnly { code: (0x100_0000, 0x105_e000), hypercall_page: 0x106_6000 };
        assert_eq!(read_only(line), Some(ro));
        assert_eq!(read_only("gpu-dom: read-only: code 0x1000000"), None);
    }
}
