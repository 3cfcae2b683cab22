//! gpu-dom: the driver-domain image.
//!
//! Built for `x86_64-unknown-none` by `cargo xtask build`; entered by Xen through
//! the PVH entry point. On the host this file compiles to a small program that
//! says how to build the real image, so that `cargo test --workspace` works
//! without the bare-metal target.
//!
//! Started as PVH dom0, the image runs the unikernel's self-test and powers
//! off; started as a domU, it connects to xenstore and runs the vgpu backend
//! service (see `domu`, `vgpu`) over the unikernel's Xen layer (`platform`)
//! and drives the GPU chosen at boot (`gpu`: an Intel GPU, or the software GPU).
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("gpu-dom is a Xen PVH image, not a host program: build it with `cargo xtask build`");
    std::process::exit(2);
}

#[cfg(target_os = "none")]
mod domu;
#[cfg(any(test, target_os = "none"))]
mod gpu;
#[cfg(any(test, target_os = "none"))]
mod hypercall_pub;
#[cfg(target_os = "none")]
mod iommu_test;
#[cfg(target_os = "none")]
mod mgmt;
#[cfg(target_os = "none")]
mod platform;
#[cfg(target_os = "none")]
mod vgpu;
#[cfg(target_os = "none")]
mod xs_meter;

#[cfg(target_os = "none")]
unikernel::entry!(gpu_dom_main);

#[cfg(target_os = "none")]
fn gpu_dom_main(k: unikernel::Kernel) -> ! {
    if k.dom0 {
        unikernel::selftest::run(k)
    } else {
        domu::run(k)
    }
}
