//! test-guest: a PVH unikernel that exercises gpu-dom through the vgpu
//! frontend (see `xl-configs/test-guest.cfg`). On the host this compiles to
//! a stub that says how to build the image.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "test-guest is a Xen PVH image: cargo build --release --target x86_64-unknown-none -p test-guest"
    );
    std::process::exit(2);
}
