use gtt::types::{Access, BusAddr, PAGE_SIZE};

use super::{rig, A, B};
use crate::{Gfn, IommuFault};

#[test]
fn iommu_resolves_backend_ram_and_mapped_grants_only() {
    let mut r = rig();
    let (_, m) = r.grant_and_map(A, 0, 0x5a, Access::ReadWrite);
    let frame = r.p.iommu_translate(m.bus, true).unwrap();
    assert_eq!(frame, r.a.frame(Gfn(0)).unwrap());
    assert_eq!(r.p.frame_owner(frame), Some(A));
    // The backend's own RAM resolves.
    assert!(r.p.iommu_translate(BusAddr(0x3000), true).is_ok());
    // An empty window slot, the gap between RAM and window, and far away don't.
    let cfg = r.p.config();
    let empty = BusAddr((cfg.window_base_gfn + 5) << 12);
    let gap = BusAddr(u64::from(cfg.backend_ram_pages) << 12);
    for bus in [empty, gap, BusAddr(1 << 38)] {
        assert_eq!(r.p.iommu_translate(bus, false), Err(IommuFault::NotMapped { bus }));
    }
    // Guest B's frames are never reachable: no bus address maps them.
    let b_frame = r.b.frame(Gfn(0)).unwrap();
    let all =
        (0..cfg.backend_ram_pages as u64).chain(cfg.window_base_gfn..cfg.window_base_gfn + 16);
    for gfn in all {
        assert_ne!(r.p.iommu_translate(BusAddr(gfn << 12), false), Ok(b_frame));
    }
}

#[test]
fn read_only_mapping_refuses_writes_from_gpu_and_backend_cpu() {
    let mut r = rig();
    let (_, m) = r.grant_and_map(A, 1, 0x42, Access::ReadOnly);
    assert!(r.p.iommu_translate(m.bus, false).is_ok());
    assert_eq!(r.p.iommu_translate(m.bus, true), Err(IommuFault::ReadOnly { bus: m.bus }));
    assert_eq!(
        r.p.bus_write(BusAddr(m.bus.0 + 8), &[1, 2]),
        Err(IommuFault::ReadOnly { bus: m.bus })
    );
    let mut b = [0; 2];
    r.p.bus_read(BusAddr(m.bus.0 + 8), &mut b).unwrap();
    assert_eq!(b, [0x42, 0x42]);
}

#[test]
fn unmapped_window_slot_faults_and_is_reused_lowest_first() {
    let mut r = rig();
    let (_, m1) = r.grant_and_map(A, 0, 1, Access::ReadWrite);
    let (_, m2) = r.grant_and_map(A, 1, 2, Access::ReadWrite);
    assert_eq!(m2.bus.0, m1.bus.0 + PAGE_SIZE);
    r.unmap(m1);
    assert_eq!(r.p.iommu_translate(m1.bus, false), Err(IommuFault::NotMapped { bus: m1.bus }));
    // The next map takes the freed slot: a stale GPU translation to m1.bus
    // would now reach B's page. That is why unmap-before-invalidate is a violation.
    let (_, m3) = r.grant_and_map(B, 0, 3, Access::ReadWrite);
    assert_eq!(m3.bus, m1.bus);
    assert_eq!(r.p.window_mapping(m3.bus).unwrap().dom, B);
}

#[test]
fn backend_cpu_reads_and_writes_a_granted_ring_page() {
    let mut r = rig();
    let (_, m) = r.grant_and_map(A, 2, 0, Access::ReadWrite);
    r.p.bus_write(BusAddr(m.bus.0 + 100), b"response").unwrap();
    let mut buf = [0; 8];
    r.a.read(Gfn(2), 100, &mut buf).unwrap();
    assert_eq!(&buf, b"response");
    r.a.write(Gfn(2), 0, b"req!").unwrap();
    let mut req = [0; 4];
    r.p.bus_read(m.bus, &mut req).unwrap();
    assert_eq!(&req, b"req!");
}

#[test]
fn backend_cpu_access_spanning_pages_needs_every_page_mapped() {
    let mut r = rig();
    let (_, m1) = r.grant_and_map(A, 0, 0, Access::ReadWrite);
    let (_, m2) = r.grant_and_map(A, 1, 0, Access::ReadWrite);
    assert_eq!(m2.bus.0, m1.bus.0 + PAGE_SIZE);
    let at = BusAddr(m2.bus.0 - 2);
    r.p.bus_write(at, &[9, 8, 7, 6]).unwrap();
    let mut tail = [0; 2];
    r.a.read(Gfn(0), PAGE_SIZE as usize - 2, &mut tail).unwrap();
    let mut head = [0; 2];
    r.a.read(Gfn(1), 0, &mut head).unwrap();
    assert_eq!((tail, head), ([9, 8], [7, 6]));
    // Past the last mapped slot: refused, and nothing is written.
    let (_, m3) = r.grant_and_map(A, 2, 0, Access::ReadWrite);
    let beyond = BusAddr(m3.bus.0 + PAGE_SIZE - 1);
    let next = BusAddr(m3.bus.0 + PAGE_SIZE);
    assert_eq!(r.p.bus_write(beyond, &[1, 1]), Err(IommuFault::NotMapped { bus: next }));
    let mut last = [0];
    r.a.read(Gfn(2), PAGE_SIZE as usize - 1, &mut last).unwrap();
    assert_eq!(last, [0]);
}

#[test]
fn backend_pages_are_fresh_ram_outside_scratch_and_tables() {
    let r = rig();
    let cfg = r.p.config();
    let first = r.p.alloc_backend_page().unwrap();
    assert_eq!(first.frame(), 5 + u64::from(cfg.table_pool_pages));
    assert_ne!(first, r.gpu.scratch_page());
    let mut n = 1;
    while r.p.alloc_backend_page().is_some() {
        n += 1;
    }
    assert_eq!(n, cfg.backend_ram_pages - 5 - cfg.table_pool_pages);
}

#[test]
fn default_platform_is_valid_and_overlapping_or_too_wide_windows_are_refused() {
    let p = crate::Platform::default();
    assert_eq!(p.config(), crate::PlatformConfig::default());
    let small = super::small_config();
    let overlap = crate::PlatformConfig { window_base_gfn: 10, ..small };
    assert_eq!(
        crate::Platform::new(overlap).err(),
        Some(crate::ConfigError::BadWindow { base: 10, pages: 16 })
    );
    let too_wide = crate::PlatformConfig { window_base_gfn: 1 << 27, ..small };
    assert!(crate::Platform::new(too_wide).is_err());
    let tiny = crate::PlatformConfig { backend_ram_pages: 8, ..small };
    assert_eq!(
        crate::Platform::new(tiny).err(),
        Some(crate::ConfigError::RamTooSmall { need: 37, have: 8 })
    );
}
