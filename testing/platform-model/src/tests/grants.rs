use gtt::platform::GrantMapError;
use gtt::types::{Access, DomId, GrantRef};

use super::{rig, A, B, BACKEND};
use crate::grants::abi::*;
use crate::{DomainState, Event, Gfn, GrantEntryV1, Violation};

#[test]
fn gnttab_status_values_are_xens() {
    // xen/include/public/grant_table.h
    assert_eq!(GNTST_okay, 0);
    assert_eq!(GNTST_general_error, -1);
    assert_eq!(GNTST_bad_domain, -2);
    assert_eq!(GNTST_bad_gntref, -3);
    assert_eq!(GNTST_bad_handle, -4);
    assert_eq!(GNTST_no_device_space, -7);
    assert_eq!(GNTST_permission_denied, -8);
    assert_eq!(GNTST_bad_page, -9);
}

#[test]
fn grefs_are_allocated_after_the_reserved_entries() {
    let r = rig();
    let g1 = r.a.grant(Gfn(0), BACKEND, false).unwrap();
    let g2 = r.a.grant(Gfn(1), BACKEND, true).unwrap();
    assert_eq!(g1, GrantRef(GNTTAB_NR_RESERVED_ENTRIES));
    assert_eq!(g2, GrantRef(GNTTAB_NR_RESERVED_ENTRIES + 1));
    let e = r.a.grant_entry(g2).unwrap();
    assert_eq!(
        e,
        GrantEntryV1 { flags: GTF_permit_access | GTF_readonly, domid: BACKEND.0, frame: 1 }
    );
}

#[test]
fn grant_can_be_mapped_only_by_the_domain_it_names() {
    let mut r = rig();
    // A grants to B, not to the backend: Xen's _set_status_v1 refuses the
    // backend with GNTST_general_error ("Bad flags or dom").
    let gref = r.a.grant(Gfn(0), B, false).unwrap();
    assert_eq!(r.map(A, gref, Access::ReadWrite), Err(GrantMapError::Xen(GNTST_general_error)));
    assert_eq!(r.a.map_count(gref), 0);
    assert!(r.p.window_mappings().is_empty());
    let error = GrantMapError::Xen(GNTST_general_error);
    assert!(r.p.trace().contains(&Event::GrantMapFailed { dom: A, gref, error }));
}

#[test]
fn gref_beyond_the_table_is_bad_gntref() {
    let mut r = rig();
    r.a.grant(Gfn(0), BACKEND, false).unwrap();
    assert_eq!(
        r.map(A, GrantRef(100_000), Access::ReadOnly),
        Err(GrantMapError::Xen(GNTST_bad_gntref))
    );
}

#[test]
fn unused_entry_inside_the_table_is_general_error() {
    let mut r = rig();
    assert_eq!(
        r.map(A, GrantRef(20), Access::ReadOnly),
        Err(GrantMapError::Xen(GNTST_general_error))
    );
}

#[test]
fn map_of_an_unknown_domain_is_bad_domain() {
    let mut r = rig();
    assert_eq!(
        r.map(DomId(77), GrantRef(8), Access::ReadOnly),
        Err(GrantMapError::Xen(GNTST_bad_domain))
    );
}

#[test]
fn grant_of_a_frame_the_guest_does_not_have_is_bad_page() {
    let mut r = rig();
    let gref = r.a.grant(Gfn(4000), BACKEND, false).unwrap();
    assert_eq!(r.map(A, gref, Access::ReadWrite), Err(GrantMapError::Xen(GNTST_bad_page)));
}

#[test]
fn writable_map_of_a_read_only_grant_is_refused() {
    let mut r = rig();
    let gref = r.a.grant(Gfn(0), BACKEND, true).unwrap();
    assert_eq!(r.map(A, gref, Access::ReadWrite), Err(GrantMapError::Xen(GNTST_general_error)));
    let m = r.map(A, gref, Access::ReadOnly).unwrap();
    let wm = r.p.window_mapping(m.bus).unwrap();
    assert_eq!(wm.access, Access::ReadOnly);
    assert_eq!(wm.gref, gref);
}

#[test]
fn ending_a_grant_is_refused_while_mapped_and_allowed_after_unmap() {
    let mut r = rig();
    let (gref, m) = r.grant_and_map(A, 0, 0xaa, Access::ReadWrite);
    assert!(!r.a.end_access(gref));
    assert_eq!(r.a.grant_entry(gref).unwrap().flags & GTF_permit_access, 1);
    assert_eq!(r.unmap(m), 0);
    assert!(r.a.end_access(gref));
    assert_eq!(r.a.grant_entry(gref).unwrap().flags, 0);
    // Ended: the backend can no longer map it.
    assert_eq!(r.map(A, gref, Access::ReadOnly), Err(GrantMapError::Xen(GNTST_general_error)));
    let t = r.p.trace();
    assert!(t.contains(&Event::GrantEndRefused { dom: A, gref }));
    assert!(t.contains(&Event::GrantEnded { dom: A, gref }));
}

#[test]
fn map_counts_and_gtf_flags_follow_each_mapping() {
    let mut r = rig();
    let gref = r.a.grant(Gfn(2), BACKEND, false).unwrap();
    let m1 = r.map(A, gref, Access::ReadWrite).unwrap();
    let m2 = r.map(A, gref, Access::ReadOnly).unwrap();
    assert_ne!(m1.bus, m2.bus);
    assert_ne!(m1.handle, m2.handle);
    assert_eq!(r.a.map_count(gref), 2);
    let flags = r.a.grant_entry(gref).unwrap().flags;
    assert_eq!(flags & (GTF_reading | GTF_writing), GTF_reading | GTF_writing);

    r.unmap(m1);
    let flags = r.a.grant_entry(gref).unwrap().flags;
    assert_eq!(flags & (GTF_reading | GTF_writing), GTF_reading);
    assert_eq!(r.a.map_count(gref), 1);
    assert!(!r.a.end_access(gref));

    r.unmap(m2);
    assert_eq!(r.a.grant_entry(gref).unwrap().flags & GTF_reading, 0);
    assert_eq!(r.a.map_count(gref), 0);
    assert_eq!(r.a.active_grant(gref), None);
}

#[test]
fn pinned_grant_keeps_its_frame_when_the_guest_rewrites_the_entry() {
    let mut r = rig();
    let (gref, m) = r.grant_and_map(A, 0, 0x11, Access::ReadWrite);
    r.a.fill(Gfn(1), 0x22).unwrap();
    // A malicious guest points the entry at another frame and another domain.
    let evil = GrantEntryV1 { flags: GTF_permit_access, domid: B.0, frame: 1 };
    r.a.set_grant_entry(gref, evil).unwrap();
    let mut byte = [0];
    r.p.bus_read(m.bus, &mut byte).unwrap();
    assert_eq!(byte, [0x11]);
    // A second map by the backend still uses the pinned frame.
    let m2 = r.map(A, gref, Access::ReadOnly).unwrap();
    r.p.bus_read(m2.bus, &mut byte).unwrap();
    assert_eq!(byte, [0x11]);
}

#[test]
fn full_window_is_reported_and_maps_nothing() {
    let mut r = rig();
    let window = r.p.config().window_pages;
    for _ in 0..window {
        let gref = r.a.grant(Gfn(0), BACKEND, true).unwrap();
        r.map(A, gref, Access::ReadOnly).unwrap();
    }
    let gref = r.a.grant(Gfn(1), BACKEND, true).unwrap();
    assert_eq!(r.map(A, gref, Access::ReadOnly), Err(GrantMapError::WindowFull));
    assert_eq!(r.a.map_count(gref), 0);
    assert_eq!(r.p.counters().grant_map_failures, 1);
}

#[test]
fn unmap_of_an_unknown_or_released_handle_is_refused_and_recorded() {
    let mut r = rig();
    let (_, m) = r.grant_and_map(A, 0, 0, Access::ReadOnly);
    assert_eq!(r.unmap(m), 0);
    assert_eq!(r.unmap(m), 1);
    assert_eq!(r.p.violations(), vec![Violation::BadUnmap { bus: m.bus, handle: m.handle }]);
    assert_eq!(r.p.counters().grant_unmap_failures, 1);
}

#[test]
fn destroyed_guest_with_mapped_grants_is_a_zombie_until_unmapped() {
    let mut r = rig();
    let (_, m) = r.grant_and_map(A, 3, 0x33, Access::ReadWrite);
    assert_eq!(r.p.destroy_domain(A), Some(DomainState::Dying));
    // The page stays reachable through the existing mapping...
    let mut byte = [0];
    r.p.bus_read(m.bus, &mut byte).unwrap();
    assert_eq!(byte, [0x33]);
    // ...but nothing new can be mapped or granted.
    assert!(r.a.grant(Gfn(0), BACKEND, false).is_err());
    r.unmap(m);
    assert_eq!(r.p.domain_state(A), Some(DomainState::Dead));
    assert!(r.p.trace().contains(&Event::DomainReleased { dom: A }));
    assert_eq!(r.p.destroy_domain(B), Some(DomainState::Dead));
}

#[test]
fn dead_domain_grants_are_bad_domain() {
    let mut r = rig();
    let gref = r.a.grant(Gfn(0), BACKEND, false).unwrap();
    r.p.destroy_domain(A);
    assert_eq!(r.map(A, gref, Access::ReadWrite), Err(GrantMapError::Xen(GNTST_bad_domain)));
}

#[test]
fn grant_copy_reads_a_granted_page_without_mapping_it() {
    let r = rig();
    r.a.write(Gfn(4), 10, b"directory").unwrap();
    let gref = r.a.grant(Gfn(4), BACKEND, true).unwrap();
    let mut out = [0; 9];
    r.p.copy_from_grant(A, gref, 10, &mut out).unwrap();
    assert_eq!(&out, b"directory");
    assert!(r.p.window_mappings().is_empty());
    assert_eq!(r.a.map_count(gref), 0);
    assert!(r.a.end_access(gref));
    assert!(r.p.trace().contains(&Event::GrantCopied { dom: A, gref, into_grant: false }));
}

#[test]
fn grant_copy_follows_the_same_checks_as_map() {
    let r = rig();
    let to_b = r.a.grant(Gfn(0), B, false).unwrap();
    let ro = r.a.grant(Gfn(1), BACKEND, true).unwrap();
    let mut page = [0; 4096];
    assert_eq!(r.p.copy_from_grant(A, to_b, 0, &mut page), Err(GNTST_general_error));
    assert_eq!(r.p.copy_from_grant(A, GrantRef(1 << 20), 0, &mut page), Err(GNTST_bad_gntref));
    assert_eq!(r.p.copy_from_grant(DomId(99), ro, 0, &mut page), Err(GNTST_bad_domain));
    assert_eq!(r.p.copy_from_grant(A, ro, 1, &mut page), Err(GNTST_bad_copy_arg));
    assert_eq!(r.p.copy_to_grant(A, ro, 0, &[1]), Err(GNTST_general_error));
    assert_eq!(r.p.copy_from_grant(A, ro, 0, &mut page), Ok(()));
    let rw = r.a.grant(Gfn(2), BACKEND, false).unwrap();
    r.p.copy_to_grant(A, rw, 4094, &[7, 7]).unwrap();
    let mut b = [0; 2];
    r.a.read(Gfn(2), 4094, &mut b).unwrap();
    assert_eq!(b, [7, 7]);
    assert_eq!(r.p.counters().grant_copies, 2);
}
