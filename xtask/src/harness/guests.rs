//! What every scenario that serves guests needs: the test guest image and
//! the `vgpu` command (built, and where they land in dom0), gpu-dom's
//! command line with debug readback, and one xl config per test domain.

use std::path::PathBuf;

use crate::commands::image;
use crate::error::Result;
use crate::formats::xlcfg;
use crate::paths::Paths;
use crate::progress::Progress;

/// Where the test guest image and `vgpu` land in the dom0 initramfs.
pub const GUEST_IMAGE_IN_DOM0: &str = "/usr/lib/gpu-dom/test-guest";
pub const VGPU_IN_DOM0: &str = "/usr/bin/vgpu";
pub const VGPU_FRONT_IN_DOM0: &str = "/usr/bin/vgpu-front";
/// The example config every test domain's config is derived from.
pub const GUEST_XL_CONFIG: &str = "xl-configs/test-guest.cfg";

/// gpu-dom's command line in the e2e run: lets guests verify entries.
pub fn gpu_dom_cmdline() -> String {
    use unikernel::boot_options::{DEBUG, DEBUG_READBACK};
    format!("{DEBUG}={DEBUG_READBACK}")
}

/// Builds the test guest image (checked to be a PVH ELF) and the `vgpu`
/// command, as steps of `p`: what every guest-serving scenario needs.
pub fn build_guest_and_vgpu(paths: &Paths, p: &mut Progress) -> Result<(PathBuf, PathBuf)> {
    let guest =
        p.step("cargo build --release --target x86_64-unknown-none -p test-guest", |_| {
            let log = paths.boot_logs().join("build-test-guest.log");
            let elf =
                image::cargo_build_package(paths, "test-guest", Some(image::TARGET), Some(&log))?;
            image::check_pvh(&elf)?;
            Ok(elf)
        })?;
    let vgpu = p.step("cargo build --release -p vgpu (the dom0 command)", |_| {
        let log = paths.boot_logs().join("build-vgpu.log");
        image::cargo_build_package(paths, "vgpu", None, Some(&log))
    })?;
    Ok((guest, vgpu))
}

/// The template with this domain's name, the image's place and its mode.
pub fn guest_config(
    template: &str,
    name: &str,
    cmdline: &str,
) -> std::result::Result<String, String> {
    let cfg = xlcfg::with_kernel(template, GUEST_IMAGE_IN_DOM0)?;
    let cfg = xlcfg::with_string(&cfg, "name", name);
    Ok(xlcfg::with_string(&cfg, "cmdline", cmdline))
}

/// Builds `vgpu-front` (the Linux frontend: `frontend` with its `std`
/// platform), as a step of `p`.
pub fn build_vgpu_front(paths: &Paths, p: &mut Progress) -> Result<PathBuf> {
    p.step("cargo build --release -p frontend --features std (vgpu-front)", |_| {
        image::cargo_build_with(
            paths,
            "frontend",
            "vgpu-front",
            &["--features", "std", "--bin", "vgpu-front"],
            None,
            Some(&paths.boot_logs().join("build-vgpu-front.log")),
        )
    })
}
