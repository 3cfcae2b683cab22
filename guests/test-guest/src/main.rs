//! test-guest: a PVH unikernel that exercises gpu-dom through the vgpu
//! frontend (`frontend::scenario`, the same code the host tests run). The
//! mode comes from the kernel command line (`cmdline=` in the xl config):
//! `mode=good pages=N` (default), `mode=hostile`, `mode=unattached`,
//! `mode=busy pages=N`, `mode=badfe`, `mode=scale pages=N verify=V rounds=R`,
//! `mode=bench` (see `bench`); `dma-check` (with mode good, for
//! `cargo xtask iommu`: see `dma_check`). See `xl-configs/test-guest.cfg`.
//! Modes `badfe` and `good` follow dom0's e2e script through `data/` nodes
//! (see `sync`).
//!
//! Console markers (besides the scenario's `TESTGUEST dom=<id> ...` lines,
//! listed in `frontend::scenario`):
//! - `test-guest: domid=<id> up mode=<mode>`
//! - `test-guest: shutdown requested (<reason>)`, then `test-guest: bye`
//!
//! On the host this compiles to a stub that says how to build the image.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "test-guest is a Xen PVH image: cargo build --release --target x86_64-unknown-none -p test-guest"
    );
    std::process::exit(2);
}

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
mod bench;
#[cfg(target_os = "none")]
mod dma_check;
#[cfg(target_os = "none")]
mod guest;
#[cfg(target_os = "none")]
mod platform;
#[cfg(target_os = "none")]
mod scale;
#[cfg(target_os = "none")]
mod sync;

#[cfg(target_os = "none")]
unikernel::entry!(guest::run);
