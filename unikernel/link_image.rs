// Shared by the build scripts of the images built on the unikernel (gpu-dom,
// the test guest) through `include!`: a build script cannot depend on a
// workspace crate without building it for the host first.
//
// Links the package's binaries as a PVH image with the unikernel's linker
// script when built for `x86_64-unknown-none`; does nothing for host builds.
// The image is linked non-PIE at the fixed address the script gives (PVH
// loaders put PT_LOAD segments at their physical addresses and apply no
// relocations; the 32-bit entry uses absolute addresses). The target's
// default code is position independent, which links fine at a fixed address,
// so no extra rustflags are needed.

/// `unikernel` is the unikernel crate's directory relative to the package.
/// Linked at 16 MiB (see the linker script for why).
#[allow(dead_code)]
fn link_pvh_image(unikernel: &str) {
    link_pvh_image_at(unikernel, None)
}

/// [`link_pvh_image`] at `base` (a physical address, page aligned) instead
/// of the linker script's 16 MiB; PVH-only images may go as low as 1 MiB.
fn link_pvh_image_at(unikernel: &str, base: Option<u64>) {
    println!("cargo:rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os != "none" {
        return;
    }
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let script = format!("{dir}/{unikernel}/src/arch/x86_64/link.ld");
    println!("cargo:rerun-if-changed={script}");
    println!("cargo:rerun-if-changed={dir}/{unikernel}/link_image.rs");
    println!("cargo:rustc-link-arg-bins=-T{script}");
    println!("cargo:rustc-link-arg-bins=--no-pie");
    println!("cargo:rustc-link-arg-bins=--no-dynamic-linker");
    println!("cargo:rustc-link-arg-bins=-znorelro");
    println!("cargo:rustc-link-arg-bins=-zmax-page-size=0x1000");
    if let Some(base) = base {
        println!("cargo:rustc-link-arg-bins=--defsym=IMAGE_BASE={base:#x}");
    }
}
