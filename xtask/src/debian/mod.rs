//! The test system's parts from Debian 12: resolving and fetching packages
//! (`apt`), the dom0 and its initramfs (`dom0`), shared libraries (`libs`),
//! kernel modules (`kmod`), the busybox root both initramfs images share
//! (`rootfs`), and the Linux guest's initramfs (`guest_initramfs`).

pub mod apt;
pub mod dom0;
pub mod guest_initramfs;
pub mod kmod;
pub mod libs;
pub mod rootfs;
