//! `vgpu restore` and `vgpu supervise` against the model xenstored: gpu-dom
//! dies, a new one (another domid) takes every device over with the same
//! limits, slices and device ids.

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{simulate_frontend, simulate_gpu_dom, store, system, vgpu, Xenstored};
use vgpu::supervise::{supervise, SuperviseArgs};
use vgpu::Error;
use xenbus::{Client, TxId};

const NEW: u16 = 9;

fn exists(xs: &Xenstored, path: &str) -> bool {
    xs.with(|m| m.tree.get(path).is_some())
}

/// guest1 (5) and guest2 (7) attached to gpu-dom (1), then gpu-dom dies
/// (`xl destroy`: libxl removes its home) and is created again as `NEW`.
fn died_and_recreated() -> Xenstored {
    let xs = system();
    for g in ["guest1", "guest2 --ggtt-entries 1024 --max-pages 77"] {
        let r = vgpu(&xs, &format!("attach {g}"));
        assert_eq!(r.code, 0, "{r:?}");
    }
    // The guests had connected: their frontends wrote their own nodes.
    xs.write(5, "/local/domain/5/device/vgpu/0/ring-ref", "8");
    xs.write(5, "/local/domain/5/device/vgpu/0/state", "4");
    xs.with(|m| m.rm(0, "/local/domain/1")).unwrap();
    xs.add_domain(NEW, "gpu-dom");
    xs
}

#[test]
fn attach_keeps_a_dom0_only_record_of_the_limits_that_the_guest_cannot_touch() {
    let xs = system();
    assert_eq!(vgpu(&xs, "attach guest1 --max-pages 300").code, 0);
    assert_eq!(
        xs.dump("/vgpu/5"),
        [
            r#"/vgpu/5 = "" (n0)"#,
            r#"/vgpu/5/0 = "" (n0)"#,
            r#"/vgpu/5/0/backend-id = "1" (n0)"#,
            r#"/vgpu/5/0/backend-name = "gpu-dom" (n0)"#,
            r#"/vgpu/5/0/limits = "" (n0)"#,
            r#"/vgpu/5/0/limits/ggtt-base = "0" (n0)"#,
            r#"/vgpu/5/0/limits/ggtt-entries = "4096" (n0)"#,
            r#"/vgpu/5/0/limits/max-contexts = "4" (n0)"#,
            r#"/vgpu/5/0/limits/max-pages = "300" (n0)"#,
            r#"/vgpu/5/0/limits/max-table-pages = "64" (n0)"#,
        ]
    );
    let mut guest = Client::<_>::new(xs.connect(5));
    assert!(guest.read(TxId::NONE, "/vgpu/5/0/limits/max-pages").is_err());
    assert!(guest.write(TxId::NONE, "/vgpu/5/0/limits/max-pages", b"9999").is_err());
    assert!(guest.rm(TxId::NONE, "/vgpu/5").is_err());
    // detach removes the record with the device.
    simulate_gpu_dom(&xs, 1);
    assert_eq!(vgpu(&xs, "detach guest1").code, 0);
    assert!(!exists(&xs, "/vgpu/5"));
}

#[test]
fn restore_moves_every_device_of_the_dead_backend_with_its_limits_in_one_transaction() {
    let xs = died_and_recreated();
    // A guest cannot raise its limits through what it owns.
    xs.write(5, "/local/domain/5/device/vgpu/0/limits", "");
    xs.write(5, "/local/domain/5/device/vgpu/0/limits/max-pages", "16384");
    let mut st = store(&xs);
    let done = vgpu::restore::restore(
        &mut st,
        &vgpu::restore::RestoreArgs { backend: "gpu-dom".into(), wait: None },
    )
    .unwrap();
    assert_eq!(
        done.summary(),
        "restored vgpu 0 of guest1 (domid 5) from domain 1 (gone) to gpu-dom (domid 9): GGTT slice 0+4096, 4 contexts, 1024 pages, 64 table pages\n\
         restored vgpu 0 of guest2 (domid 7) from domain 1 (gone) to gpu-dom (domid 9): GGTT slice 4096+1024, 4 contexts, 77 pages, 64 table pages\n\
         2 device(s) moved to gpu-dom (domid 9), 0 already there"
    );
    let c = xs.counters(st.client().transport());
    assert_eq!((c.commits, c.ops_outside_tx), (1, 0), "{c:?}");
    let be = "/local/domain/9/backend/vgpu/5/0";
    assert_eq!(
        xs.dump(&format!("{be}/limits")),
        [
            r#"/local/domain/9/backend/vgpu/5/0/limits = "" (n0 r9 r5)"#,
            r#"/local/domain/9/backend/vgpu/5/0/limits/ggtt-base = "0" (n0 r9 r5)"#,
            r#"/local/domain/9/backend/vgpu/5/0/limits/ggtt-entries = "4096" (n0 r9 r5)"#,
            r#"/local/domain/9/backend/vgpu/5/0/limits/max-contexts = "4" (n0 r9 r5)"#,
            r#"/local/domain/9/backend/vgpu/5/0/limits/max-pages = "1024" (n0 r9 r5)"#,
            r#"/local/domain/9/backend/vgpu/5/0/limits/max-table-pages = "64" (n0 r9 r5)"#,
        ]
    );
    assert_eq!(xs.read(&format!("{be}/state")).as_deref(), Some("1"));
    assert_eq!(xs.read(&format!("{be}/frontend-id")).as_deref(), Some("5"));
    let fe = "/local/domain/5/device/vgpu/0";
    let dump = xs.dump(fe);
    assert!(dump.contains(&format!(r#"{fe}/backend = "{be}" (n5 r9)"#)), "{dump:#?}");
    assert!(dump.contains(&format!(r#"{fe}/backend-id = "9" (n5 r9)"#)), "{dump:#?}");
    // The guest's own nodes: untouched, now readable by the new backend.
    assert!(dump.contains(&format!(r#"{fe}/state = "4" (n5 r9)"#)), "{dump:#?}");
    assert!(dump.contains(&format!(r#"{fe}/ring-ref = "8" (n5 r9)"#)), "{dump:#?}");
    assert_eq!(xs.read("/vgpu/7/0/backend-id").as_deref(), Some("9"));
    assert_eq!(xs.read("/local/domain/9/backend/vgpu/7/0/limits/max-pages").as_deref(), Some("77"));
    // Once more: nothing left to move.
    let r = vgpu(&xs, "restore --backend gpu-dom");
    assert_eq!(r.out, "0 device(s) moved to gpu-dom (domid 9), 2 already there\n");
}

#[test]
fn restore_drops_records_of_gone_guests_and_leaves_devices_of_living_backends() {
    let xs = died_and_recreated();
    xs.with(|m| m.rm(0, "/local/domain/7")).unwrap();
    let r = vgpu(&xs, "restore");
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.out.contains("dropped the record of vgpu 0 of domain 7: the guest no longer exists"),
        "{}",
        r.out
    );
    assert!(!exists(&xs, "/vgpu/7"));
    assert!(exists(&xs, "/local/domain/9/backend/vgpu/5/0"));
    // A record whose backend still exists is not this restore's business.
    let xs = system();
    assert_eq!(vgpu(&xs, "attach guest1").code, 0);
    xs.add_domain(NEW, "gpu-dom2");
    let r = vgpu(&xs, "restore --backend gpu-dom2");
    assert_eq!(r.out, "0 device(s) moved to gpu-dom2 (domid 9), 0 already there\n");
    assert_eq!(xs.read("/local/domain/5/device/vgpu/0/backend-id").as_deref(), Some("1"));
}

/// A frontend that notices its backend's directory vanish (Closed) and
/// starts over (Initialising) when its `backend` names another one.
fn simulate_reconnecting_frontend(xs: &Xenstored, guest: u16) {
    simulate_frontend(xs, guest);
    xs.on_idle(move |m| {
        let dir = format!("/local/domain/{guest}/device/vgpu/0");
        let Some(be) = m.read(&format!("{dir}/backend")) else { return };
        let fe = m.read(&format!("{dir}/state"));
        let be_state = m.read(&format!("{be}/state"));
        let next = match (fe.as_deref(), be_state.as_deref()) {
            // Its watch on the old backend's state fired: gone.
            (Some("4"), None | Some("1") | Some("2")) => "6",
            (Some("6"), Some(s)) if s != "6" => "1",
            _ => return,
        };
        m.write(guest, &format!("{dir}/state"), next).expect("guest owns its state");
    });
}

fn args(restarts: u32) -> SuperviseArgs {
    let mut a = SuperviseArgs::new("gpu-dom", Path::new("/etc/xen/gpu-dom.cfg"));
    a.restarts = Some(restarts);
    a.poll = Duration::from_millis(50);
    a.backoff = Duration::from_millis(10);
    a.ready_timeout = Duration::from_secs(5);
    a.serve_timeout = Duration::from_secs(5);
    a
}

#[test]
fn supervise_recreates_gpu_dom_restores_its_guests_and_waits_until_they_are_served() {
    let xs = system();
    simulate_gpu_dom(&xs, 1);
    simulate_gpu_dom(&xs, NEW);
    simulate_reconnecting_frontend(&xs, 5);
    let r = vgpu(&xs, "attach guest1 --wait 5");
    assert_eq!(r.code, 0, "{r:?}");
    // gpu-dom crashes a little later (on_crash = "destroy": its home goes).
    let mut rounds = 0;
    xs.on_idle(move |m| {
        rounds += 1;
        if rounds == 20 {
            m.rm(0, "/local/domain/1").unwrap();
        }
    });
    let created = Arc::new(Mutex::new(Vec::new()));
    let seen = created.clone();
    let xs2 = xs.clone();
    let mut creator = move |cfg: &Path| -> Result<(), String> {
        seen.lock().unwrap().push(cfg.display().to_string());
        xs2.add_domain(NEW, "gpu-dom");
        xs2.write(NEW, "/local/domain/9/data/gpu-dom-ready", "1");
        Ok(())
    };
    let mut log = Vec::new();
    supervise(&mut store(&xs), &args(1), &mut creator, &mut log).unwrap();
    let log = String::from_utf8(log).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    let starts = [
        "vgpu supervise: supervising gpu-dom (config /etc/xen/gpu-dom.cfg;",
        "vgpu supervise: gpu-dom (domid 1) is running; watching @releaseDomain",
        "vgpu supervise: gpu-dom (domid 1) is gone",
        "vgpu supervise: creating gpu-dom: xl create /etc/xen/gpu-dom.cfg",
        "vgpu supervise: created gpu-dom (domid 9) in ",
        "vgpu supervise: restored vgpu 0 of guest1 (domid 5) from domain 1 (gone) to gpu-dom (domid 9)",
        "vgpu supervise: 1 device(s) moved to gpu-dom (domid 9), 0 already there",
        "vgpu supervise: gpu-dom (domid 9) ready ",
        "vgpu supervise: vgpu 0 of guest1 (domid 5) served again ",
        "vgpu supervise: 1 of 1 device(s) served again, ",
    ];
    assert_eq!(lines.len(), starts.len(), "{log}");
    for (l, s) in lines.iter().zip(starts) {
        assert!(l.starts_with(s), "{l:?} does not start with {s:?}\n{log}");
    }
    assert_eq!(*created.lock().unwrap(), ["/etc/xen/gpu-dom.cfg"]);
    assert_eq!(xs.read("/local/domain/9/backend/vgpu/5/0/state").as_deref(), Some("4"));
    assert_eq!(xs.read("/local/domain/5/device/vgpu/0/state").as_deref(), Some("4"));
    let r = vgpu(&xs, "list");
    assert!(r.out.contains("guest1      5      0  Connected  Connected  0+4096"), "{}", r.out);
}

#[test]
fn supervise_gives_up_on_a_gpu_dom_that_dies_at_boot_again_and_again_and_says_why() {
    let xs = system();
    xs.with(|m| m.rm(0, "/local/domain/1")).unwrap();
    let next = Arc::new(Mutex::new(20u16));
    let xs2 = xs.clone();
    let mut creator = move |_: &Path| -> Result<(), String> {
        let mut id = next.lock().unwrap();
        *id += 1;
        xs2.add_domain(*id, "gpu-dom");
        // It panics while starting: on_crash = "destroy" takes it away.
        let home = format!("/local/domain/{id}");
        xs2.on_idle(move |m| {
            let _ = m.rm(0, &home);
        });
        Ok(())
    };
    let mut log = Vec::new();
    let err = supervise(&mut store(&xs), &args(10), &mut creator, &mut log).unwrap_err();
    let log = String::from_utf8(log).unwrap();
    assert!(matches!(err, Error::GaveUp { deaths: 3, .. }), "{err:?}\n{log}");
    let text = err.to_string();
    assert!(text.contains("gpu-dom died 3 times in a row within 60.0 s"), "{text}");
    assert!(text.contains("guest-gpu-dom.log"), "says where to look: {text}");
    assert_eq!(log.matches("vgpu supervise: creating gpu-dom").count(), 3, "{log}");
    assert!(log.contains("waiting 10 ms before re-creating gpu-dom"), "{log}");
    assert!(log.contains("waiting 20 ms before re-creating gpu-dom"), "{log}");
    assert!(log.contains("vgpu supervise: giving up: gpu-dom died 3 times in a row"), "{log}");
}

#[test]
fn restore_and_supervise_command_lines() {
    let xs = system();
    let r = vgpu(&xs, "supervise gpu-dom");
    assert_eq!(r.code, 2);
    assert!(r.err.contains("needs --config PATH"), "{}", r.err);
    let r = vgpu(&xs, "supervise --help");
    assert!(r.out.contains("Usage: vgpu supervise <name> --config PATH"), "{}", r.out);
    let r = vgpu(&xs, "restore --help");
    assert!(r.out.contains("/vgpu/<guest>/<devid>"), "{}", r.out);
    let r = vgpu(&xs, "restore --backend nosuch");
    assert_eq!(r.code, 1);
}
