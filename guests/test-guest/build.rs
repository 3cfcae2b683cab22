//! Links the image with the unikernel's linker script (the same layout as
//! gpu-dom: loaded at 16 MiB, non-PIE) when built for
//! `x86_64-unknown-none`; does nothing for host builds.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os != "none" {
        return;
    }
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let script = format!("{dir}/../../unikernel/src/arch/x86_64/link.ld");
    println!("cargo:rerun-if-changed={script}");
    println!("cargo:rustc-link-arg-bins=-T{script}");
    println!("cargo:rustc-link-arg-bins=--no-pie");
    println!("cargo:rustc-link-arg-bins=--no-dynamic-linker");
    println!("cargo:rustc-link-arg-bins=-znorelro");
    println!("cargo:rustc-link-arg-bins=-zmax-page-size=0x1000");
}
