//! gpu-dom's IOMMU test mode (`gpu-dom.iommu-test` on the command line; CI
//! only, never in production): proof under real Xen that a device passed
//! through to gpu-dom reaches, by DMA, exactly the pages gpu-dom
//! grant-mapped for a guest and nothing else.
//!
//! The device is QEMU's `edu` test device (`drivers/edu`), passed through to
//! gpu-dom running as an HVM domU (`xl-configs/gpu-dom-hvm.cfg`). Its DMA
//! engine is aimed at bus addresses **taken from the shadow entries** that
//! `gtt` built for a real guest (`Engine::ggtt_lookup`/`ppgtt_lookup`), i.e.
//! exactly what a GPU would be told to use.
//!
//! The toolstack side (`cargo xtask iommu`) drives the phases by writing
//! `data/iommu-test` in gpu-dom's xenstore directory; gpu-dom answers each
//! in `data/iommu-test-done` (`<phase> PASS|FAIL`):
//! - `mapped <dom> <ppgtt-base> <guest-gfn> <far-gfn>` (the guest ran mode
//!   `good` with `dma-check`): `ro-write`, `ggtt-read`, `ppgtt-read`,
//!   `ggtt-write`, `window-hole`, `past-window`, `guest-gfn` (a granted
//!   page's frame number, inside gpu-dom's RAM range), `far-gfn` (a
//!   never-granted guest page's frame number above gpu-dom's RAM: no data,
//!   a DMAR fault);
//! - `revoked <dom>` (after the toolstack detached the guest): `revoked-read`
//!   at every bus address remembered from `mapped`.
//!
//! Every result is one console line `IOMMU-TEST <check> ... PASS|FAIL`; a
//! check that expects the IOMMU to block an access first prints
//! `IOMMU-TEST expect-fault read|write addr=<hex>`, which the xtask matches
//! against Xen's `DMAR:[DMA Read|Write] ... fault addr <hex>` lines.
//!
//! Facts of the emulated platform this relies on: a blocked DMA read
//! leaves the device buffer unchanged or fills it with zeros (or ones); a
//! blocked write changes nothing; QEMU's VT-d records no fault for a write
//! blocked after an IOTLB hit from a read, so the read-only page is written
//! before anything reads it; every edu transfer takes ~100 ms of virtual
//! time, so the checks sample entries rather than walk all of them.
//!
//! # Invariants
//! - Nothing here runs unless the boot option is present; the production
//!   path never constructs an [`IommuTest`].
//! - DMA *writes* go only to gpu-dom's own scratch page, to a shadow entry
//!   `gtt` produced (one writable, one read-only), and nowhere else.
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use edu::{Direction, Edu, MAX_TRANSFER};
use gtt::{Access, BusAddr, ContextId, DomId, MAX_CONTEXTS_PER_GUEST};
use unikernel::arch::x86_64::{mmio, pci_io::PortConfig};
use unikernel::layout::WINDOW_FRAMES;
use unikernel::pci::{self, Bar, CMD_BUS_MASTER, CMD_MEMORY};
use unikernel::xen::page::OwnPage;
use unikernel::Kernel;
use xenbus::{Client, ClientError, Transport, TxId};

use crate::vgpu::VgpuService;

/// The watch token of the request node.
pub const TOKEN: &str = "iommu-test";
/// Where the toolstack writes requests (relative to our domain path).
const REQUEST: &str = "data/iommu-test";
/// Where gpu-dom answers.
const DONE: &str = "data/iommu-test-done";
/// Bound on status polls per transfer (each ~1 µs of MMIO; a transfer
/// takes ~100 ms).
const MAX_POLLS: u32 = 50_000_000;
/// Entries of each table checked per phase.
const SAMPLE: usize = 6;
const XFER: usize = MAX_TRANSFER as usize;

/// Whether the command line asks for the mode (`boot_options::IOMMU_TEST`).
pub fn requested(k: &Kernel) -> bool {
    k.options().iommu_test
}

/// BAR0 of the device, uncached.
struct Bar0(mmio::Mmio);

impl edu::Mmio for Bar0 {
    fn read32(&mut self, offset: u64) -> u32 {
        self.0.read32(offset)
    }
    fn write32(&mut self, offset: u64, value: u32) {
        self.0.write32(offset, value)
    }
    fn read64(&mut self, offset: u64) -> u64 {
        self.0.read64(offset)
    }
    fn write64(&mut self, offset: u64, value: u64) {
        self.0.write64(offset, value)
    }
}

/// A bus address checked in `mapped`, checked again after revocation.
struct Remembered {
    what: String,
    bus: BusAddr,
    /// The first `XFER` bytes the page held.
    bytes: Vec<u8>,
}

/// The test mode's state.
pub struct IommuTest {
    edu: Edu<Bar0>,
    /// Scratch pages in gpu-dom's own RAM (bus address == GFN << 12).
    src: OwnPage,
    dst: OwnPage,
    window_gfn: u64,
    ram_top: u64,
    fill_seed: u8,
    remembered: Vec<Remembered>,
}

fn say(line: core::fmt::Arguments<'_>) {
    log::info!("IOMMU-TEST {line}");
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "FAIL"
    }
}

/// What a DMA read at an address delivered.
struct Read {
    data: Vec<u8>,
    /// The buffer stayed as loaded, or reads all zeros / all ones: what a
    /// blocked read leaves.
    nothing: bool,
}

impl IommuTest {
    /// Finds the edu device on bus 0, maps BAR0 uncached, enables memory
    /// decoding and bus mastering, and runs the own-RAM round trip.
    pub fn start(k: &Kernel) -> Option<IommuTest> {
        say(format_args!(
            "mode ON ({}): test device edu, never in production",
            unikernel::boot_options::IOMMU_TEST
        ));
        let mut cfg = PortConfig;
        let mut found = None;
        pci::scan_bus0(&mut cfg, |f| {
            say(format_args!(
                "pci {} {:04x}:{:04x} class {:06x}",
                f.bdf, f.vendor, f.device, f.class
            ));
            if f.vendor == edu::VENDOR_ID && f.device == edu::DEVICE_ID {
                found = Some(f.bdf);
            }
        });
        let Some(bdf) = found else {
            say(format_args!("probe: no edu device (1234:11e8) on bus 0 FAIL"));
            return None;
        };
        let (base, size) = match pci::bar(&mut cfg, bdf, 0) {
            Bar::Memory { base, size, .. } => (base, size),
            other => {
                say(format_args!("probe: edu {bdf} BAR0 is {other:?} FAIL"));
                return None;
            }
        };
        let cmd = pci::enable(&mut cfg, bdf, CMD_MEMORY | CMD_BUS_MASTER);
        let bar = match mmio::map_uncached(base, size) {
            Ok(m) => m,
            Err(e) => {
                say(format_args!("probe: cannot map BAR0 {base:#x}+{size:#x}: {e:?} FAIL"));
                return None;
            }
        };
        let edu = match Edu::probe(Bar0(bar), MAX_POLLS) {
            Ok(e) => e,
            Err(e) => {
                say(format_args!("probe: edu {bdf}: {e} FAIL"));
                return None;
            }
        };
        say(format_args!(
            "probe: edu {bdf} BAR0 {base:#x} ({} KiB, uncached) command {cmd:#06x} PASS",
            size / 1024
        ));
        let (Some(src), Some(dst)) = (OwnPage::alloc(), OwnPage::alloc()) else {
            say(format_args!("probe: no heap for scratch pages FAIL"));
            return None;
        };
        let mut t = IommuTest {
            edu,
            src,
            dst,
            window_gfn: k.layout.window_gfn,
            ram_top: k.memmap.ram_top(),
            fill_seed: 0,
            remembered: Vec::new(),
        };
        t.own_ram();
        Some(t)
    }

    /// Sets the watch on the request node.
    pub fn watch<T: Transport>(&self, xs: &mut Client<T>) -> Result<(), ClientError<T::Error>> {
        xs.watch(REQUEST, TOKEN)
    }

    fn dma(&mut self, dir: Direction, bus: u64) -> bool {
        match self.edu.dma(dir, bus, MAX_TRANSFER) {
            Ok(_) => true,
            Err(e) => {
                say(format_args!("dma {dir:?} {bus:#x}: {e}"));
                false
            }
        }
    }

    /// Puts `bytes` into the device buffer (from our scratch page).
    fn load(&mut self, bytes: &[u8]) -> bool {
        self.src.write(0, bytes);
        self.dma(Direction::ToDevice, self.src.gfn() << 12)
    }

    /// DMA read of `XFER` bytes at `bus`, seen through a second DMA.
    fn read_at(&mut self, bus: u64) -> Read {
        self.fill_seed = self.fill_seed.wrapping_add(1);
        let fill: Vec<u8> = (0..XFER).map(|i| (i as u8) ^ 0xc3 ^ self.fill_seed).collect();
        let ok = self.load(&fill) && self.dma(Direction::ToDevice, bus);
        self.dst.write(0, &[0xee; XFER]);
        let ok = ok && self.dma(Direction::ToRam, self.dst.gfn() << 12);
        let mut data = alloc::vec![0u8; XFER];
        self.dst.read(0, &mut data);
        let nothing =
            !ok || data == fill || data.iter().all(|&b| b == 0) || data.iter().all(|&b| b == 0xff);
        Read { data, nothing }
    }

    /// DMA write of `bytes` at `bus`.
    fn write_at(&mut self, bus: u64, bytes: &[u8]) -> bool {
        self.load(bytes) && self.dma(Direction::ToRam, bus)
    }

    fn own_ram(&mut self) {
        let pattern: Vec<u8> = (0..XFER).map(|i| (i as u8).wrapping_mul(13) ^ 0x5a).collect();
        let scratch = OwnPage::alloc();
        let Some(mut page) = scratch else { return };
        page.write(0, &pattern);
        let bus = page.gfn() << 12;
        let r = self.read_at(bus);
        say(format_args!(
            "own-ram bus={bus:#x}: device read gpu-dom's own page exactly {}",
            verdict(r.data == pattern)
        ));
    }

    /// Reads `XFER` bytes of a window frame through the CPU mapping.
    fn cpu_read(svc: &VgpuService, bus: BusAddr) -> Option<Vec<u8>> {
        let mut page = [0u8; 4096];
        let window = svc.cpu_access().window;
        window.read(bus.frame(), &mut page).then(|| page[..XFER].to_vec())
    }

    /// Handles a watch event on the request node.
    pub fn on_request<T: Transport>(&mut self, xs: &mut Client<T>, svc: &VgpuService) {
        let req = match xs.read_str(TxId::NONE, REQUEST) {
            Ok(s) => String::from(s.trim()),
            Err(_) => return,
        };
        if req.is_empty() {
            return;
        }
        let words: Vec<&str> = req.split_ascii_whitespace().collect();
        let num = |i: usize| -> Option<u64> {
            let w = *words.get(i)?;
            match w.strip_prefix("0x") {
                Some(h) => u64::from_str_radix(h, 16).ok(),
                None => w.parse().ok(),
            }
        };
        let (phase, ok) = match (words.first().copied(), num(1)) {
            (Some("mapped"), Some(dom)) => {
                let gfns = (num(3), num(4));
                ("mapped", self.mapped(svc, DomId(dom as u16), num(2).unwrap_or(0), gfns))
            }
            (Some("revoked"), Some(dom)) => ("revoked", self.revoked(svc, DomId(dom as u16))),
            _ => {
                say(format_args!("request {req:?} not understood FAIL"));
                ("request", false)
            }
        };
        say(format_args!("phase {phase} {}", verdict(ok)));
        let _ = xs.write(TxId::NONE, REQUEST, b"");
        let answer = format!("{phase} {}", verdict(ok));
        if let Err(e) = xs.write(TxId::NONE, DONE, answer.as_bytes()) {
            log::warn!("cannot write {DONE}: {e}");
        }
    }

    /// The checks on a guest's live entries.
    fn mapped(
        &mut self,
        svc: &VgpuService,
        dom: DomId,
        ppgtt_base: u64,
        (gfn, far_gfn): (Option<u64>, Option<u64>),
    ) -> bool {
        let Some(e) = Entries::of(svc, dom, ppgtt_base) else {
            say(format_args!("mapped dom={}: not attached FAIL", dom.0));
            return false;
        };
        let mut all = !e.ggtt.is_empty() && !e.ppgtt.is_empty();
        // 1. Read-only entry: write first (see the module docs), then read.
        match e.ppgtt.iter().find(|e| e.2 == Access::ReadOnly) {
            Some(&(addr, bus, _)) => all &= self.ro_write(svc, dom, addr, bus),
            None => {
                say(format_args!("ro-write dom={}: no read-only PPGTT entry FAIL", dom.0));
                all = false;
            }
        }
        // 2. Reads through GGTT and PPGTT entries; 3. a write through GGTT.
        all &= self.sampled_reads(svc, dom, &e);
        all &= self.ggtt_write(svc, dom, &e);
        // 4. Addresses gtt never produced.
        all &= self.never_produced(&e);
        if let Some(gfn) = gfn {
            all &= self.guest_gfn(svc, dom, gfn, &e.ggtt);
        }
        match far_gfn {
            Some(far) => all &= self.far_gfn(dom, far),
            None => {
                say(format_args!("far-gfn dom={}: no far frame number in the request FAIL", dom.0));
                all = false;
            }
        }
        all
    }

    /// DMA reads at sampled GGTT and PPGTT entries (one read-only) give
    /// exactly the guest's bytes.
    fn sampled_reads(&mut self, svc: &VgpuService, dom: DomId, e: &Entries) -> bool {
        let pick = |n: usize| -> Vec<usize> {
            let mut v: Vec<usize> = (0..SAMPLE).map(|k| k * n.max(1) / SAMPLE).collect();
            v.push(n.saturating_sub(1));
            v.dedup();
            v.retain(|&i| i < n);
            v
        };
        let mut ok = 0;
        let idx = pick(e.ggtt.len());
        for &i in &idx {
            let (index, bus, _) = e.ggtt[i];
            ok += self.read_check(svc, dom, format!("ggtt={index}"), bus) as usize;
        }
        say(format_args!(
            "ggtt-read dom={}: {ok}/{} sampled entries: DMA at the entry's bus address read exactly the guest's bytes {}",
            dom.0,
            idx.len(),
            verdict(ok == idx.len() && ok > 0)
        ));
        let ggtt_ok = ok == idx.len() && ok > 0;
        let mut idx = pick(e.ppgtt.len());
        if let Some(ro) = e.ppgtt.iter().position(|e| e.2 == Access::ReadOnly) {
            idx.push(ro);
        }
        let mut ok = 0;
        for &i in &idx {
            let (addr, bus, access) = e.ppgtt[i];
            let what =
                format!("ppgtt={addr:#x}{}", if access == Access::ReadOnly { " (ro)" } else { "" });
            ok += self.read_check(svc, dom, what, bus) as usize;
        }
        say(format_args!(
            "ppgtt-read dom={}: {ok}/{} sampled entries (one read-only): DMA read exactly the guest's bytes {}",
            dom.0,
            idx.len(),
            verdict(ok == idx.len() && ok > 0)
        ));
        ggtt_ok && ok == idx.len() && ok > 0
    }

    /// A DMA write through the last writable GGTT entry lands in the guest's page.
    fn ggtt_write(&mut self, svc: &VgpuService, dom: DomId, e: &Entries) -> bool {
        let Some(&(index, bus, _)) = e.ggtt.iter().rev().find(|e| e.2 == Access::ReadWrite) else {
            say(format_args!("ggtt-write dom={}: no writable GGTT entry FAIL", dom.0));
            return false;
        };
        let mut sig = [0u8; XFER];
        edu::test_signature(dom.0, index, &mut sig);
        let done = self.write_at(bus.0, &sig);
        let seen = Self::cpu_read(svc, bus).is_some_and(|b| b[..] == sig[..]);
        say(format_args!(
            "ggtt-write dom={} index={index} bus={:#x}: the device wrote the guest's page (gpu-dom's CPU mapping sees it; the guest checks its own view) {}",
            dom.0,
            bus.0,
            verdict(done && seen)
        ));
        done && seen
    }

    /// Bus addresses `gtt` never produced deliver nothing: a hole in the
    /// window, the first frame past it.
    fn never_produced(&mut self, e: &Entries) -> bool {
        let used: Vec<u64> =
            e.ggtt.iter().map(|e| e.1 .0).chain(e.ppgtt.iter().map(|e| e.1 .0)).collect();
        let mut all = true;
        let hole = (self.window_gfn + WINDOW_FRAMES - 1) << 12;
        if !used.contains(&hole) {
            all &= self.blocked_read("window-hole", "an unmapped frame of the grant window", hole);
        }
        let past = (self.window_gfn + WINDOW_FRAMES) << 12;
        all & self.blocked_read("past-window", "the first frame past the grant window", past)
    }

    /// A guest frame number above gpu-dom's RAM, of a page the guest never
    /// granted (holding `edu::far_page_signature`), used as a bus address:
    /// gpu-dom's IOMMU context has nothing there, so no data and a fault.
    fn far_gfn(&mut self, dom: DomId, gfn: u64) -> bool {
        let bus = gfn << 12;
        if bus < self.ram_top {
            say(format_args!(
                "far-gfn dom={} gfn={gfn:#x}: inside gpu-dom's RAM (below {:#x}); give the guest more memory than gpu-dom FAIL",
                dom.0, self.ram_top
            ));
            return false;
        }
        let mut sig = [0u8; XFER];
        edu::far_page_signature(dom.0, &mut sig);
        say(format_args!("expect-fault read addr={bus:x}"));
        let r = self.read_at(bus);
        let leaked = !r.nothing && r.data[..] == sig[..];
        say(format_args!(
            "far-gfn dom={} gfn={gfn:#x}: a never-granted guest page's frame number as a bus address {} {}",
            dom.0,
            if leaked {
                "DELIVERED THE GUEST'S PAGE"
            } else if r.nothing {
                "delivered no data"
            } else {
                "DELIVERED DATA"
            },
            verdict(r.nothing)
        ));
        r.nothing
    }

    fn ro_write(&mut self, svc: &VgpuService, dom: DomId, addr: u64, bus: BusAddr) -> bool {
        let before = Self::cpu_read(svc, bus);
        let mut sig = [0u8; XFER];
        edu::test_signature(dom.0, u32::MAX, &mut sig);
        say(format_args!("expect-fault write addr={:x}", bus.0));
        let done = self.write_at(bus.0, &sig);
        let after = Self::cpu_read(svc, bus);
        let unchanged = before.is_some() && before == after;
        say(format_args!(
            "ro-write dom={} ppgtt={addr:#x} bus={:#x}: DMA write to a read-only grant {} {}",
            dom.0,
            bus.0,
            if unchanged { "was blocked, page unchanged" } else { "CHANGED the page" },
            verdict(done && unchanged)
        ));
        done && unchanged
    }

    /// DMA read at a live entry: must equal the CPU view of the mapping and
    /// carry the guest's page header; remembered for `revoked`.
    fn read_check(&mut self, svc: &VgpuService, dom: DomId, what: String, bus: BusAddr) -> bool {
        let r = self.read_at(bus.0);
        let cpu = Self::cpu_read(svc, bus).unwrap_or_default();
        let header_ok = cpu.len() >= 10
            && (&cpu[..8] == b"VGPUPAGE" || &cpu[..8] == b"IOMMUDMA")
            && cpu[8..10] == dom.0.to_le_bytes();
        let ok = !r.nothing && r.data == cpu && header_ok;
        if !ok {
            say(format_args!(
                "read dom={} {what} bus={:#x}: DMA {} the guest's bytes (header ok: {header_ok}) FAIL",
                dom.0,
                bus.0,
                if r.nothing { "delivered nothing instead of" } else { "differs from" }
            ));
        }
        self.remembered.push(Remembered { what, bus, bytes: cpu });
        ok
    }

    /// A read that the IOMMU must block.
    fn blocked_read(&mut self, name: &str, what: &str, bus: u64) -> bool {
        say(format_args!("expect-fault read addr={bus:x}"));
        let r = self.read_at(bus);
        say(format_args!(
            "{name} bus={bus:#x} ({what}): {} {}",
            if r.nothing { "no data" } else { "DATA DELIVERED" },
            verdict(r.nothing)
        ));
        r.nothing
    }

    /// The guest's own frame number used as a gpu-dom bus address: it names
    /// gpu-dom's own physmap there (RAM or nothing), never the guest's page.
    fn guest_gfn(
        &mut self,
        svc: &VgpuService,
        dom: DomId,
        gfn: u64,
        ggtt: &[(u32, BusAddr, Access)],
    ) -> bool {
        let bus = gfn << 12;
        let in_ram = bus < self.ram_top;
        if !in_ram {
            say(format_args!("expect-fault read addr={bus:x}"));
        }
        let r = self.read_at(bus);
        let guest_pages: Vec<Vec<u8>> =
            ggtt.iter().filter_map(|e| Self::cpu_read(svc, e.1)).collect();
        let leaked = !r.nothing && guest_pages.contains(&r.data);
        say(format_args!(
            "guest-gfn dom={} gfn={gfn:#x}: the guest's own frame number as a bus address {} {}",
            dom.0,
            match (leaked, in_ram, r.nothing) {
                (true, _, _) => "DELIVERED THE GUEST'S PAGE",
                (false, true, _) => "names gpu-dom's own RAM there, not the guest's page",
                (false, false, true) => "delivered no data",
                (false, false, false) => "delivered data that is not the guest's",
            },
            verdict(!leaked && (in_ram || r.nothing))
        ));
        !leaked && (in_ram || r.nothing)
    }

    /// After the guest was detached: no shadow entry left, and every
    /// remembered bus address delivers nothing.
    fn revoked(&mut self, svc: &VgpuService, dom: DomId) -> bool {
        let eng = svc.engine();
        let gone = eng.guest_limits(dom).is_none() && eng.ggtt_lookup(dom, 0).is_none();
        say(format_args!(
            "revoked dom={}: no shadow entry of the guest left {}",
            dom.0,
            verdict(gone)
        ));
        let remembered = core::mem::take(&mut self.remembered);
        if remembered.is_empty() {
            say(format_args!("revoked-read dom={}: nothing remembered from `mapped` FAIL", dom.0));
            return false;
        }
        let mut ok = 0;
        for m in &remembered {
            say(format_args!("expect-fault read addr={:x}", m.bus.0));
            let r = self.read_at(m.bus.0);
            let stale = !r.nothing && r.data == m.bytes;
            say(format_args!(
                "revoked-read dom={} {} bus={:#x}: {} {}",
                dom.0,
                m.what,
                m.bus.0,
                if stale {
                    "the revoked grant is STILL DMA-READABLE (share_pt regression?)"
                } else if r.nothing {
                    "no data"
                } else {
                    "DATA DELIVERED"
                },
                verdict(r.nothing)
            ));
            ok += r.nothing as usize;
        }
        say(format_args!(
            "revoked-read dom={}: {ok}/{} revoked bus addresses deliver nothing {}",
            dom.0,
            remembered.len(),
            verdict(ok == remembered.len())
        ));
        gone && ok == remembered.len()
    }
}

/// A guest's live shadow entries, as `gtt` resolves them: the GGTT slice
/// from index 0 and the PPGTT context that maps `ppgtt_base`, from there,
/// each up to the first hole.
struct Entries {
    ggtt: Vec<(u32, BusAddr, Access)>,
    ppgtt: Vec<(u64, BusAddr, Access)>,
}

impl Entries {
    fn of(svc: &VgpuService, dom: DomId, ppgtt_base: u64) -> Option<Entries> {
        let eng = svc.engine();
        let limits = eng.guest_limits(dom)?;
        let ggtt: Vec<(u32, BusAddr, Access)> = (0..limits.ggtt_len)
            .map_while(|i| eng.ggtt_lookup(dom, i).map(|(b, a)| (i, b, a)))
            .collect();
        let ctx = (0..MAX_CONTEXTS_PER_GUEST)
            .map(ContextId)
            .find(|c| eng.ppgtt_lookup(dom, *c, ppgtt_base).is_some());
        let ppgtt: Vec<(u64, BusAddr, Access)> = match ctx {
            Some(c) => (0..4096u64)
                .map(|i| ppgtt_base + i * 4096)
                .map_while(|a| eng.ppgtt_lookup(dom, c, a).map(|(b, x)| (a, b, x)))
                .collect(),
            None => Vec::new(),
        };
        say(format_args!(
            "mapped dom={}: {} GGTT entries from index 0, {} PPGTT entries from {ppgtt_base:#x} (context {:?})",
            dom.0,
            ggtt.len(),
            ppgtt.len(),
            ctx.map(|c| c.0)
        ));
        Some(Entries { ggtt, ppgtt })
    }
}
