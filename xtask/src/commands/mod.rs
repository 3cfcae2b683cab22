//! The xtask's commands, one file each: `build` (`image`), `boot`, `e2e`,
//! `linux-guest`, `restart`, `net`, `iommu`, `scale` (its figures in
//! `scale_figures`), `bench --xen` (`bench_xen`), and the host-side checks
//! (`fuzz`, `bench`, `test`).

pub mod bench_xen;
pub mod boot;
pub mod checks;
pub mod e2e;
pub mod image;
pub mod iommu;
pub mod linux_guest;
pub mod net;
pub mod restart;
pub mod scale;
pub mod scale_figures;
