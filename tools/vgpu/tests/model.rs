//! The model xenstored keeps xenstored's rules; the other tests rely on it.

mod common;

use common::{system, Xenstored};
use xenbus::{Access, Client, Perm, TxId, TxOutcome, XsError};

fn client(xs: &Xenstored, dom: u16) -> Client<common::Conn, 16> {
    Client::new(xs.connect(dom))
}

#[test]
fn children_inherit_permissions_and_unprivileged_domains_own_what_they_create() {
    let xs = system();
    let mut dom0 = client(&xs, 0);
    dom0.mkdir(TxId::NONE, "/a").unwrap();
    dom0.set_perms(TxId::NONE, "/a", &[Perm::new(0, Access::Read), Perm::new(5, Access::Both)])
        .unwrap();
    dom0.write(TxId::NONE, "/a/b/c", b"1").unwrap();
    assert_eq!(xs.dump("/a/b"), ["/a/b = \"\" (r0 b5)", "/a/b/c = \"1\" (r0 b5)"]);
    let mut guest = client(&xs, 5);
    guest.write(TxId::NONE, "/a/mine/x", b"2").unwrap();
    assert_eq!(xs.dump("/a/mine/x"), ["/a/mine/x = \"2\" (r5 b5)"]);
    let mut other = client(&xs, 7);
    assert_eq!(other.read(TxId::NONE, "/a/b/c").unwrap(), b"1", "default letter r");
    assert!(other.write(TxId::NONE, "/a/b/c", b"3").unwrap_err().is_xs(&XsError::AccessDenied));
    assert!(other.write(TxId::NONE, "/a/new", b"3").unwrap_err().is_xs(&XsError::AccessDenied));
    assert!(other.set_perms(TxId::NONE, "/a/mine", &[Perm::new(7, Access::None)]).is_err());
    assert!(other
        .read(TxId::NONE, "/local/domain/5/name")
        .unwrap_err()
        .is_xs(&XsError::AccessDenied));
}

#[test]
fn a_transaction_whose_reads_changed_fails_with_eagain_and_changes_nothing() {
    let xs = system();
    let mut a = client(&xs, 0);
    let mut b = client(&xs, 0);
    let tx = a.transaction_start().unwrap();
    assert!(a.read(tx, "/local/domain/5/name").is_ok());
    a.write(tx, "/t/x", b"1").unwrap();
    b.write(TxId::NONE, "/local/domain/5/name", b"renamed").unwrap();
    assert_eq!(a.transaction_end(tx, true).unwrap(), TxOutcome::Retry);
    assert!(xs.read("/t/x").is_none());
    // Writes elsewhere do not conflict; reads see the snapshot.
    let tx = a.transaction_start().unwrap();
    assert_eq!(a.read(tx, "/local/domain/5/name").unwrap(), b"renamed");
    a.write(tx, "/t/x", b"2").unwrap();
    b.write(TxId::NONE, "/local/domain/7/name", b"other").unwrap();
    assert_eq!(a.read(tx, "/t/x").unwrap(), b"2");
    assert!(b.read(TxId::NONE, "/t/x").unwrap_err().is_not_found(), "invisible until commit");
    assert_eq!(a.transaction_end(tx, true).unwrap(), TxOutcome::Committed);
    assert_eq!(xs.read("/t/x").as_deref(), Some("2"));
    // A new child of a listed directory conflicts too.
    let tx = a.transaction_start().unwrap();
    assert!(a.directory(tx, "/t").is_ok());
    b.write(TxId::NONE, "/t/y", b"1").unwrap();
    a.write(tx, "/u", b"1").unwrap();
    assert_eq!(a.transaction_end(tx, true).unwrap(), TxOutcome::Retry);
}

#[test]
fn watches_fire_on_registration_on_changes_below_and_on_removal_above() {
    let xs = system();
    let mut w = client(&xs, 0);
    w.watch("/local/domain/5/device", "t").unwrap();
    assert_eq!(w.poll_event().unwrap().unwrap().path(), "/local/domain/5/device");
    xs.write(0, "/local/domain/5/device/vgpu/0/state", "1");
    assert_eq!(w.poll_event().unwrap().unwrap().path(), "/local/domain/5/device/vgpu/0/state");
    xs.write(0, "/local/domain/7/device/x", "1");
    assert!(w.poll_event().unwrap().is_none(), "not below the watch");
    xs.with(|m| m.rm(0, "/local/domain/5")).unwrap();
    assert_eq!(w.poll_event().unwrap().unwrap().path(), "/local/domain/5/device", "removed above");
    w.unwatch("/local/domain/5/device", "t").unwrap();
    xs.write(0, "/local/domain/5/device/again", "1");
    assert!(w.poll_event().unwrap().is_none());
}

#[test]
fn relative_paths_are_under_the_connections_home() {
    let xs = system();
    let mut guest = client(&xs, 5);
    assert_eq!(guest.read(TxId::NONE, "name").unwrap(), b"guest1");
    assert_eq!(guest.get_domain_path(5).unwrap(), "/local/domain/5");
    guest.watch("device", "d").unwrap();
    assert_eq!(guest.poll_event().unwrap().unwrap().path(), "device");
}
