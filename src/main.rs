//! gpu-dom: the driver-domain image.
//!
//! Built for `x86_64-unknown-none` by `cargo xtask build`; entered by Xen through
//! the PVH entry point. On the host this file compiles to a small program that
//! says how to build the real image, so that `cargo test --workspace` works
//! without the bare-metal target.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("gpu-dom is a Xen PVH image, not a host program: build it with `cargo xtask build`");
    std::process::exit(2);
}

#[cfg(target_os = "none")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {
        core::hint::spin_loop();
    }
}
