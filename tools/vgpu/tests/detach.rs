//! `vgpu detach` against the model xenstored.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{simulate_gpu_dom, store, system, vgpu, Xenstored};
use vgpu::detach::{detach, DetachArgs, How};
use xenbus::Client;

const BE: &str = "/local/domain/1/backend/vgpu/5/0";
const FE: &str = "/local/domain/5/device/vgpu/0";

fn attached() -> Xenstored {
    let xs = system();
    let r = vgpu(&xs, "attach guest1");
    assert_eq!(r.code, 0, "{r:?}");
    xs
}

fn exists(xs: &Xenstored, path: &str) -> bool {
    xs.with(|m| m.tree.get(path).is_some())
}

#[test]
fn detach_waits_for_closed_then_removes_both_dirs() {
    let xs = attached();
    // gpu-dom takes a while to revoke; it records what it saw when it closed.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let mut idle_rounds = 0;
    xs.on_idle(move |m| {
        if m.read(&format!("{BE}/state")).as_deref() != Some("5") {
            return;
        }
        idle_rounds += 1;
        if idle_rounds == 30 {
            let both = m.tree.get(BE).is_some() && m.tree.get(FE).is_some();
            log.lock()
                .unwrap()
                .push(format!("online={:?} both-dirs={both}", m.read(&format!("{BE}/online"))));
            m.write(1, &format!("{BE}/state"), "6").unwrap();
        }
    });
    let r = vgpu(&xs, "detach guest1");
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.out.starts_with(
            "detached vgpu 0 of guest1 (domid 5) from gpu-dom (domid 1): backend Closed after "
        ),
        "{}",
        r.out
    );
    assert!(r.out.ends_with(" ms; removed both directories\n"), "{}", r.out);
    assert_eq!(*seen.lock().unwrap(), ["online=Some(\"0\") both-dirs=true"]);
    assert!(!exists(&xs, BE) && !exists(&xs, FE));
    // Empty parents go too (as libxl's path cleanup); the backend's root and `device/` stay.
    assert!(!exists(&xs, "/local/domain/1/backend/vgpu/5"));
    assert!(!exists(&xs, "/local/domain/5/device/vgpu"));
    assert!(exists(&xs, "/local/domain/1/backend/vgpu") && exists(&xs, "/local/domain/5/device"));
}

#[test]
fn detach_timeout_names_the_stuck_state_and_keeps_the_directories() {
    let xs = attached();
    let r = vgpu(&xs, "detach guest1 --timeout 0.2");
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.err.starts_with(
            "vgpu: vgpu 0 of guest1 (domid 5) was not closed by gpu-dom (domid 1): \
             still backend Closing (waiting for Closed) after 0.2 s; gpu-dom may still be revoking \
             the guest's mappings (`xl console gpu-dom`); the directories are kept: run \
             `vgpu detach guest1 --devid 0 --force` to remove them anyway"
        ),
        "{}",
        r.err
    );
    assert!(exists(&xs, BE) && exists(&xs, FE));
    assert_eq!(xs.read(&format!("{BE}/online")).as_deref(), Some("0"));
    assert_eq!(xs.read(&format!("{BE}/state")).as_deref(), Some("5"));
}

#[test]
fn detach_force_removes_without_waiting() {
    let xs = attached();
    let r = vgpu(&xs, "detach guest1 --force");
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        r.out,
        "removed vgpu 0 of guest1 (domid 5) from gpu-dom (domid 1) without waiting (--force); gpu-dom \
         revokes every GPU mapping of the guest on its own when the directory disappears\n"
    );
    assert!(!exists(&xs, BE) && !exists(&xs, FE));
}

#[test]
fn an_already_closed_backend_is_not_reopened_and_detach_does_not_wait() {
    let xs = attached();
    xs.write(1, &format!("{BE}/state"), "6");
    let r = vgpu(&xs, "detach guest1 --timeout 5");
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!exists(&xs, BE));
}

#[test]
fn a_frontend_left_behind_is_cleaned_when_the_backend_directory_is_gone() {
    let xs = attached();
    xs.with(|m| m.rm(1, BE)).unwrap();
    let r = vgpu(&xs, "detach guest1");
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.out, "vgpu 0 of guest1 (domid 5) had no backend directory left; removed its frontend directory\n");
    assert!(!exists(&xs, FE));
    let r = vgpu(&xs, "detach guest1");
    assert_eq!(r.code, 1);
    assert_eq!(
        r.err,
        "vgpu: guest1 (domid 5) has no vgpu 0 (looked at backend/vgpu/5/0 of every domain); \
         `vgpu list` shows the attached devices\n"
    );
}

#[test]
fn a_destroyed_guest_is_detached_by_domid() {
    let xs = attached();
    simulate_gpu_dom(&xs, 1);
    xs.with(|m| m.rm(0, "/local/domain/5")).unwrap();
    let r = vgpu(&xs, "detach guest1");
    assert_eq!(r.code, 1);
    assert!(r.err.starts_with("vgpu: no domain 'guest1' to use as guest"), "{}", r.err);
    let r = vgpu(&xs, "detach 5");
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.out.starts_with("detached vgpu 0 of domain 5 from gpu-dom (domid 1)"), "{}", r.out);
    assert!(!exists(&xs, BE) && !exists(&xs, "/local/domain/1/backend/vgpu/5"));
}

#[test]
fn detach_never_follows_the_backend_path_the_guest_wrote() {
    let xs = attached();
    xs.write(0, "/local/domain/0/precious", "keep");
    // The frontend directory is the guest's: it may point `backend` anywhere.
    xs.with(|m| m.write(5, &format!("{FE}/backend"), "/local/domain/0/precious")).unwrap();
    let r = vgpu(&xs, "detach guest1 --force");
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(xs.read("/local/domain/0/precious").as_deref(), Some("keep"));
    assert!(!exists(&xs, BE) && !exists(&xs, FE));
}

#[test]
fn detach_polls_when_the_transport_cannot_bound_its_reads() {
    let xs = attached();
    simulate_gpu_dom(&xs, 1);
    let mut conn = xs.connect(0);
    conn.bounded = false; // as /dev/xen/xenbus
    let mut st = vgpu::Store::new(Client::new(conn));
    let mut args = DetachArgs::new("guest1");
    args.timeout = Duration::from_secs(5);
    let done = detach(&mut st, &args).unwrap();
    assert!(matches!(done.how, How::Closed(_)), "{done:?}");
    assert!(!exists(&xs, BE));
}

#[test]
fn a_device_on_two_backends_needs_backend_named() {
    let xs = attached();
    xs.add_domain(2, "gpu-dom2");
    assert_eq!(vgpu(&xs, "attach guest1 --backend gpu-dom2").code, 1, "frontend dir exists");
    xs.write(0, "/local/domain/2/backend/vgpu/5/0/state", "1");
    let err = detach(&mut store(&xs), &DetachArgs::new("guest1")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the device is attached to several backends (gpu-dom (domid 1), gpu-dom2 (domid 2)); name one with --backend"
    );
    let r = vgpu(&xs, "detach guest1 --backend gpu-dom2 --force");
    assert_eq!(r.code, 0, "{r:?}");
    assert!(exists(&xs, BE), "the other backend's device is untouched");
}
