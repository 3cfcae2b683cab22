//! Domains by name or domid.

mod common;

use common::{store, system, vgpu};
use vgpu::domains::{resolve, Gone};
use vgpu::Error;

#[test]
fn names_and_domids_resolve_to_the_same_domain() {
    let xs = system();
    let mut st = store(&xs);
    let by_name = resolve(&mut st, "guest2", "guest", Gone::Refuse).unwrap();
    let by_id = resolve(&mut st, "7", "guest", Gone::Refuse).unwrap();
    assert_eq!(by_name, by_id);
    assert_eq!(by_name.to_string(), "guest2 (domid 7)");
    let r = vgpu(&xs, "attach 7 --backend 1");
    assert!(r.out.starts_with("attached guest2 (domid 7) to gpu-dom (domid 1)"), "{r:?}");
}

#[test]
fn an_ambiguous_name_is_refused_with_the_domids() {
    let xs = system();
    xs.add_domain(11, "twin");
    xs.add_domain(12, "twin");
    let r = vgpu(&xs, "attach twin");
    assert_eq!(r.code, 1);
    assert_eq!(
        r.err,
        "vgpu: domain name 'twin' is ambiguous (domids 11, 12); give the domid instead\n"
    );
    assert_eq!(vgpu(&xs, "attach 12").code, 0);
}

#[test]
fn a_missing_domain_lists_the_running_ones() {
    let xs = system();
    let err = resolve(&mut store(&xs), "99", "guest", Gone::Refuse).unwrap_err();
    let Error::NoSuchDomain { known, .. } = &err else { panic!("{err:?}") };
    assert_eq!(
        known,
        &["Domain-0 (domid 0)", "gpu-dom (domid 1)", "guest1 (domid 5)", "guest2 (domid 7)"]
    );
    // A domid of a destroyed domain is accepted where cleaning up needs it.
    let gone = resolve(&mut store(&xs), "99", "guest", Gone::Accept).unwrap();
    assert_eq!((gone.id, gone.exists, gone.to_string()), (99, false, "domain 99".to_string()));
    assert!(resolve(&mut store(&xs), "guest9", "guest", Gone::Accept).is_err(), "names must exist");
    assert!(resolve(&mut store(&xs), "65536", "guest", Gone::Accept).is_err(), "not a domid");
}
