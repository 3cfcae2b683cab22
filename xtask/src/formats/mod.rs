//! Small readers and writers of the formats the xtask handles: ELF (`elf`),
//! newc cpio (`cpio`), an initramfs tree (`initramfs`), `xl` configs
//! (`xlcfg`) and the lines of `bench --xen` (`bench_lines`).

pub mod bench_lines;
pub mod cpio;
pub mod elf;
pub mod initramfs;
pub mod xlcfg;
