//! Small readers and writers of the formats the xtask handles: ELF (`elf`),
//! newc cpio (`cpio`), an initramfs tree (`initramfs`) and `xl` configs
//! (`xlcfg`).

pub mod cpio;
pub mod elf;
pub mod initramfs;
pub mod xlcfg;
