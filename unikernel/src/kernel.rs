//! What the application gets: a [`Kernel`] with the boot facts, and the
//! steps that bring up the rest of the Xen interface (each a separate,
//! fallible call, so that a self-test can report them one by one).
//!
//! Order (the one Mini-OS uses for a PVH guest): hypercall page (done at
//! boot), console, shared info, event upcall, timer, grant table, then
//! xenstore (by the application).
// One `unsafe` block (`take_spare_page`), allowed where it stands.
#![deny(unsafe_code)]

use crate::arch::x86_64::{alloc as heap, cpu, paging, traps};
use crate::boot_options::{BootOptions, Cmdline};
use crate::executor::Executor;
use crate::layout::{self, Layout};
use crate::memmap::{MemoryMap, Range};
use crate::window::WindowToken;
use crate::xen::foreign::{CpuPages, GrantWindow};
use crate::xen::gnttab::GrantTable;
use crate::xen::page::OwnPage;
use crate::xen::{console, events, logger, params, shared, timer, XenError};
use x86_64::instructions::interrupts;
use xen_abi::hvm::{
    HVM_PARAM_CONSOLE_EVTCHN, HVM_PARAM_CONSOLE_PFN, HVM_PARAM_STORE_EVTCHN, HVM_PARAM_STORE_PFN,
};
use xen_abi::start_info::HvmStartInfo;
use xen_abi::version::XENFEAT_DOM0;
use xen_abi::xen::{SIF_INITDOMAIN, VIRQ_TIMER};

/// Most heap handed to the allocator.
pub const HEAP_MAX: u64 = 64 << 20;

/// The running domain, as the application sees it.
pub struct Kernel {
    /// The start info Xen passed.
    pub start_info: HvmStartInfo,
    /// The memory map in use.
    pub memmap: MemoryMap,
    /// Where the image is.
    pub image: Range,
    /// The heap's RAM.
    pub heap: Range,
    /// Xen's version (major, minor), from CPUID.
    pub xen_version: (u16, u16),
    /// Started as the initial domain (dom0).
    pub dom0: bool,
    /// The reserved physmap region and its parts.
    pub layout: Layout,
    /// The event loop.
    pub executor: Executor,
    /// Our grant table, once [`Kernel::init_grant_table`] ran.
    pub grant_table: Option<GrantTable>,
    /// The GPU-reachable foreign-grant window and its one token, once
    /// [`Kernel::init_grant_table`] ran, until [`Kernel::take_grant_window`].
    pub(crate) grant_window: Option<(GrantWindow, WindowToken)>,
    /// Foreign pages mapped for the CPU (rings), once
    /// [`Kernel::init_grant_table`] ran.
    pub cpu_pages: Option<CpuPages>,
    /// The `VIRQ_TIMER` port, once [`Kernel::init_timer`] ran.
    pub timer_port: Option<events::Port>,
    /// The PV console (ring GFN, port), for a domU that has one.
    pub console_ring: Option<(u64, events::Port)>,
    cmdline: &'static str,
    /// What RAM outside the heap is in use: image, boot data, console and
    /// xenstore pages, spare pages handed out.
    in_use: [Range; 24],
    in_use_len: usize,
}

fn phys_limit() -> u64 {
    let max_ext = cpu::cpuid(0x8000_0000, 0).eax;
    let bits = if max_ext >= 0x8000_0008 { cpu::cpuid(0x8000_0008, 0).eax & 0xff } else { 36 };
    (1u64 << bits.clamp(32, 52)).min(1 << 39)
}

/// A domU's PV console and xenstore pages (Xen put them in its RAM): the
/// console ring is used at once, and both pages are added to `reserved`
/// (`n` of them so far) so that no heap covers them. Returns the console
/// ring, if the domain has one.
fn domu_pages(reserved: &mut [Range; 16], n: &mut usize) -> Option<(u64, events::Port)> {
    let mut console_ring = None;
    if let (Ok(gfn), Ok(port)) =
        (params::get(HVM_PARAM_CONSOLE_PFN), params::get(HVM_PARAM_CONSOLE_EVTCHN))
    {
        if gfn != 0 && gfn < 1 << 20 {
            console::use_ring(gfn, port as u32);
            console_ring = Some((gfn, port as u32));
            reserved[*n] = Range::new(gfn << 12, 4096);
            *n += 1;
        }
    }
    if let Ok(gfn) = params::get(HVM_PARAM_STORE_PFN) {
        reserved[*n] = Range::new(gfn << 12, 4096);
        *n += 1;
    }
    console_ring
}

/// Sets the heap up in the largest free RAM between 1 MiB and 4 GiB that
/// `reserved` leaves (at most `HEAP_MAX` of it).
fn place_heap(memmap: &MemoryMap, reserved: &[Range]) -> Range {
    let free = memmap
        .largest_free(1 << 20, 1 << 32, reserved)
        .unwrap_or_else(|| panic!("no free RAM below 4 GiB for the heap"));
    let heap_range = Range { start: free.start, end: free.start + free.len().min(HEAP_MAX) };
    heap::init(heap_range.start, heap_range.end);
    heap_range
}

pub(crate) fn init(
    si: HvmStartInfo,
    cmdline: &'static str,
    memmap: MemoryMap,
    reserved: &mut [Range; 16],
    mut n: usize,
    xen_version: (u16, u16),
    image: Range,
) -> Kernel {
    logger::init(log::LevelFilter::Info);
    let features = params::features(0).unwrap_or(0);
    let dom0 = si.flags & SIF_INITDOMAIN != 0 || features & (1 << XENFEAT_DOM0) != 0;

    let console_ring = if dom0 {
        // Xen forwards dom0's console_io to its serial console directly;
        // port 0xe9 would print every line twice there.
        console::use_console_io(false);
        None
    } else {
        domu_pages(reserved, &mut n)
    };
    log::info!(
        "Xen {}.{}, start info v{} flags {:#x}, memory map from {:?}: {} entries, {} MiB RAM",
        xen_version.0,
        xen_version.1,
        si.version,
        si.flags,
        memmap.source,
        memmap.regions().len(),
        memmap.ram_bytes() >> 20
    );

    let heap_range = place_heap(&memmap, &reserved[..n]);

    let layout = layout::plan(&memmap, phys_limit())
        .unwrap_or_else(|e| panic!("no room for the reserved physmap region: {e:?}"));
    if let Err(e) = paging::map_gigabyte(layout.region.start) {
        panic!("cannot map the reserved region at {:#x}: {e:?}", layout.region.start);
    }
    log::info!(
        "image {:#x}..{:#x}, heap {:#x}..{:#x}, reserved region {:#x}..{:#x}",
        image.start,
        image.end,
        heap_range.start,
        heap_range.end,
        layout.region.start,
        layout.region.end
    );

    let (code, tables) = (paging::code_range(), traps::descriptor_tables());
    log::info!(
        "{} code {:#x}..{:#x}, hypercall page {:#x}, descriptor tables {:#x}..{:#x}, page tables",
        layout::READ_ONLY_LINE,
        code.0,
        code.1,
        xen_abi::hypercall::HYPERCALL_PAGE.addr(),
        tables.0,
        tables.1
    );
    let mut in_use = [Range::default(); 24];
    in_use[..n].copy_from_slice(&reserved[..n]);
    in_use[n] = heap_range;
    Kernel {
        in_use,
        in_use_len: n + 1,
        start_info: si,
        memmap,
        image,
        heap: heap_range,
        xen_version,
        dom0,
        layout,
        executor: Executor::new(),
        grant_table: None,
        grant_window: None,
        cpu_pages: None,
        timer_port: None,
        console_ring,
        cmdline,
    }
}

/// A bring-up step that failed.
#[derive(Clone, Copy, Debug)]
pub struct StepError {
    /// Which step.
    pub step: &'static str,
    /// The hypercall that failed.
    pub error: XenError,
}

impl core::fmt::Display for StepError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}: {}", self.step, self.error)
    }
}

impl Kernel {
    /// Places the shared-info page in the reserved region.
    pub fn map_shared_info(&mut self) -> Result<(), XenError> {
        shared::map(self.layout.shared_info_gfn)
    }

    /// Registers the upcall vector and enables interrupts.
    pub fn enable_events(&mut self) -> Result<(), XenError> {
        if !self.dom0 {
            // dom0's PIC belongs to Xen; a domU's (HVM) is ours to silence.
            cpu::mask_legacy_pic();
        }
        events::init_upcall(traps::UPCALL_VECTOR, traps::SPURIOUS_VECTOR)?;
        self.executor.collect();
        interrupts::enable();
        Ok(())
    }

    /// Binds `VIRQ_TIMER` and stops the periodic timer.
    pub fn init_timer(&mut self) -> Result<events::Port, XenError> {
        let _ = timer::stop_periodic();
        let port = events::bind_virq(VIRQ_TIMER)?;
        self.executor.set_timer_port(port);
        self.timer_port = Some(port);
        Ok(port)
    }

    /// Sets up our grant table, the grant window (with the one
    /// [`WindowToken`]) and the CPU pages.
    pub fn init_grant_table(&mut self) -> Result<(u32, u32), XenError> {
        let gt = GrantTable::setup(self.layout.grant_frames_gfn, layout::GRANT_FRAMES_MAX)?;
        let frames = gt.frames();
        self.grant_table = Some(gt);
        let l = &self.layout;
        self.grant_window =
            Some(GrantWindow::new(l.window_gfn, layout::WINDOW_FRAMES, layout::MAX_MAP_BATCH));
        self.cpu_pages = Some(CpuPages::new(l.cpu_pages_gfn, layout::CPU_PAGE_FRAMES));
        Ok(frames)
    }

    /// The grant window and its token, once: whoever takes them is the one
    /// place that can make guest pages GPU-reachable (gpu-dom: its
    /// `gtt::GrantMapper`). `None` before [`Kernel::init_grant_table`] or
    /// after the first call.
    pub fn take_grant_window(&mut self) -> Option<(GrantWindow, WindowToken)> {
        self.grant_window.take()
    }

    /// Every step, in order.
    pub fn bring_up(&mut self) -> Result<(), StepError> {
        let step = |step: &'static str| move |error| StepError { step, error };
        self.map_shared_info().map_err(step("shared_info"))?;
        self.enable_events().map_err(step("events"))?;
        self.init_timer().map_err(step("timer"))?;
        self.init_grant_table().map_err(step("grant_table"))?;
        Ok(())
    }

    /// The xenstore ring (GFN, port) from the HVM params (a domU's).
    pub fn xenstore(&self) -> Result<(u64, events::Port), XenError> {
        Ok((
            params::get(HVM_PARAM_STORE_PFN)?,
            params::get(HVM_PARAM_STORE_EVTCHN)? as events::Port,
        ))
    }

    /// The highest page of RAM below 4 GiB that nothing uses (outside the
    /// heap, the image, boot data and pages handed out before), zeroed and
    /// never reused; `None` when none is left or the bookkeeping is full.
    /// For a domain that needs a page at a high frame number (the test
    /// guest's `dma-check`: a frame above gpu-dom's RAM).
    pub fn take_spare_page(&mut self) -> Option<OwnPage> {
        if self.in_use_len == self.in_use.len() {
            return None;
        }
        let addr = self.memmap.highest_free_page(1 << 32, &self.in_use[..self.in_use_len])?;
        self.in_use[self.in_use_len] = Range::new(addr, 4096);
        self.in_use_len += 1;
        #[allow(unsafe_code)]
        // SAFETY: `addr` is a page of RAM below 4 GiB (identity-mapped by the
        // boot tables) that overlaps no non-RAM entry, the heap, the image,
        // boot data or any page handed out before; it is now recorded as in
        // use, so it is handed out once.
        Some(unsafe { OwnPage::spare(addr) })
    }

    /// The command line from the start info ("" if none).
    pub fn cmdline(&self) -> &'static str {
        self.cmdline
    }

    /// The command line, to read with its one rule (`boot_options`).
    pub fn args(&self) -> Cmdline<'static> {
        Cmdline(self.cmdline)
    }

    /// gpu-dom's `gpu-dom.*` options.
    pub fn options(&self) -> BootOptions<'static> {
        BootOptions::parse(self.cmdline)
    }

    /// Xen system time (ns); needs the shared-info page.
    pub fn now_ns(&self) -> u64 {
        timer::now_ns()
    }

    /// Shuts the domain down with `reason` (`SHUTDOWN_*`).
    pub fn shutdown(&self, reason: u32) -> ! {
        crate::xen::crash::shutdown(reason)
    }
}

/// Names the image's main function: `unikernel::entry!(main)` with
/// `fn main(k: unikernel::Kernel) -> !`.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        #[no_mangle]
        fn __unikernel_main(k: $crate::Kernel) -> ! {
            $main(k)
        }
    };
}
