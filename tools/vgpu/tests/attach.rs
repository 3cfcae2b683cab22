//! `vgpu attach` against the model xenstored.

mod common;

use common::{store, system, vgpu, Xenstored};
use vgpu::attach::{attach, AttachArgs};
use vgpu::Error;
use xenbus::{Client, Perm, TxId};

const BE: &str = "/local/domain/1/backend/vgpu/5/0";
const FE: &str = "/local/domain/5/device/vgpu/0";

#[test]
fn attach_writes_exactly_the_libxl_style_layout_with_those_permissions_in_one_transaction() {
    let xs = system();
    let conn = xs.connect(0);
    let mut st = vgpu::Store::new(Client::new(conn));
    let done = attach(&mut st, &AttachArgs::new("guest1")).unwrap();
    assert_eq!(
        done.summary(),
        "attached guest1 (domid 5) to gpu-dom (domid 1) as vgpu 0: GGTT slice 0+4096, \
         4 contexts, 1024 pages, 64 table pages"
    );
    assert_eq!(
        xs.dump(BE),
        [
            r#"/local/domain/1/backend/vgpu/5/0 = "" (n1 r5)"#,
            r#"/local/domain/1/backend/vgpu/5/0/frontend = "/local/domain/5/device/vgpu/0" (n1 r5)"#,
            r#"/local/domain/1/backend/vgpu/5/0/frontend-id = "5" (n1 r5)"#,
            r#"/local/domain/1/backend/vgpu/5/0/guest-name = "guest1" (n1 r5)"#,
            r#"/local/domain/1/backend/vgpu/5/0/limits = "" (n0 r1 r5)"#,
            r#"/local/domain/1/backend/vgpu/5/0/limits/ggtt-base = "0" (n0 r1 r5)"#,
            r#"/local/domain/1/backend/vgpu/5/0/limits/ggtt-entries = "4096" (n0 r1 r5)"#,
            r#"/local/domain/1/backend/vgpu/5/0/limits/max-contexts = "4" (n0 r1 r5)"#,
            r#"/local/domain/1/backend/vgpu/5/0/limits/max-pages = "1024" (n0 r1 r5)"#,
            r#"/local/domain/1/backend/vgpu/5/0/limits/max-table-pages = "64" (n0 r1 r5)"#,
            r#"/local/domain/1/backend/vgpu/5/0/online = "1" (n1 r5)"#,
            r#"/local/domain/1/backend/vgpu/5/0/state = "1" (n1 r5)"#,
        ]
    );
    assert_eq!(
        xs.dump(FE),
        [
            r#"/local/domain/5/device/vgpu/0 = "" (n5 r1)"#,
            r#"/local/domain/5/device/vgpu/0/backend = "/local/domain/1/backend/vgpu/5/0" (n5 r1)"#,
            r#"/local/domain/5/device/vgpu/0/backend-id = "1" (n5 r1)"#,
            r#"/local/domain/5/device/vgpu/0/state = "1" (n5 r1)"#,
        ]
    );
    let c = xs.counters(st.client().transport());
    assert_eq!((c.commits, c.conflicts, c.ops_outside_tx), (1, 0, 0), "{c:?}");
}

#[test]
fn a_watcher_sees_the_whole_device_at_once() {
    let xs = system();
    let mut watcher = Client::<_, 64>::new(xs.connect(1));
    watcher.watch("/local/domain/1/backend/vgpu", "gpu-dom").unwrap();
    assert_eq!(watcher.poll_event().unwrap().unwrap().path(), "/local/domain/1/backend/vgpu");
    assert!(watcher.poll_event().unwrap().is_none());
    // Every event arrives after the commit, when every node already exists.
    xs.with(|m| assert!(m.tree.get(BE).is_none()));
    let mut st = store(&xs);
    attach(&mut st, &AttachArgs::new("guest1")).unwrap();
    let mut events = 0;
    while let Some(ev) = watcher.poll_event().unwrap() {
        assert!(ev.path().starts_with(BE), "{ev:?}");
        events += 1;
    }
    assert!(events >= 11, "{events}");
    assert_eq!(watcher.read(TxId::NONE, &format!("{BE}/limits/max-table-pages")).unwrap(), b"64");
}

fn write_as(xs: &Xenstored, dom: u16, path: &str, value: &str) -> Result<(), String> {
    let mut c = Client::<_>::new(xs.connect(dom));
    c.write(TxId::NONE, path, value.as_bytes()).map_err(|e| e.to_string())
}

#[test]
fn limits_are_dom0_owned_and_not_writable_by_the_guest_or_the_backend() {
    let xs = system();
    attach(&mut store(&xs), &AttachArgs::new("guest1")).unwrap();
    let lim = format!("{BE}/limits");
    for dom in [5, 1] {
        let mut c = Client::<_>::new(xs.connect(dom));
        assert_eq!(
            c.read(TxId::NONE, &format!("{lim}/ggtt-entries")).unwrap(),
            b"4096",
            "dom {dom} reads"
        );
        assert_eq!(c.get_perms(TxId::NONE, &lim).unwrap().owner().dom, 0);
        for (what, err) in [
            ("change a limit", c.write(TxId::NONE, &format!("{lim}/ggtt-entries"), b"65536").err()),
            ("add a key", c.write(TxId::NONE, &format!("{lim}/extra"), b"1").err()),
            ("remove a limit", c.rm(TxId::NONE, &format!("{lim}/max-pages")).err()),
            (
                "take the limits over",
                c.set_perms(TxId::NONE, &lim, &[Perm::new(dom, xenbus::Access::None)]).err(),
            ),
        ] {
            let err = err.unwrap_or_else(|| panic!("dom {dom} could {what}"));
            assert!(err.is_xs(&xenbus::XsError::AccessDenied), "dom {dom} {what}: {err}");
        }
    }
    assert_eq!(xs.read(&format!("{lim}/ggtt-entries")).as_deref(), Some("4096"));
    // The guest cannot touch the backend directory; the backend can write its state.
    assert!(write_as(&xs, 5, &format!("{BE}/state"), "4").is_err());
    assert!(write_as(&xs, 5, &format!("{BE}/frontend"), "/local/domain/0").is_err());
    write_as(&xs, 1, &format!("{BE}/state"), "2").unwrap();
    // The frontend directory is the guest's; the backend only reads it.
    write_as(&xs, 5, &format!("{FE}/state"), "3").unwrap();
    assert!(write_as(&xs, 1, &format!("{FE}/state"), "6").is_err());
}

fn attach_line(xs: &Xenstored, line: &str) -> common::Run {
    vgpu(xs, &format!("attach {line}"))
}

#[test]
fn automatic_slice_placement_avoids_existing_slices() {
    let xs = system();
    xs.add_domain(9, "guest3");
    assert_eq!(attach_line(&xs, "guest1 --ggtt-base 0 --ggtt-entries 1024").code, 0);
    assert_eq!(attach_line(&xs, "guest2 --ggtt-base 3072 --ggtt-entries 4096").code, 0);
    // The gap 1024..3072 is too small for 4096 entries; the next free base is 7168.
    let r = attach_line(&xs, "guest3");
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.out.contains("GGTT slice 7168+4096"), "{}", r.out);
    // A small slice fills the gap; a second device of the same guest counts too.
    let r = attach_line(&xs, "guest3 --devid 1 --ggtt-entries 2048");
    assert!(r.out.contains("as vgpu 1: GGTT slice 1024+2048"), "{r:?}");
    let r = attach_line(&xs, "guest1 --devid 1 --ggtt-entries 1");
    assert!(r.out.contains("GGTT slice 11264+1"), "{r:?}");
}

#[test]
fn automatic_placement_uses_the_published_ggtt_size_and_says_when_it_assumes_one() {
    let xs = system();
    let r = attach_line(&xs, "guest1 -v");
    assert!(r.err.contains("has not published /local/domain/1/data/vgpu-ggtt-entries; assumed a GGTT of 65536 entries"), "{r:?}");
    xs.write(0, "/local/domain/1/data/vgpu-ggtt-entries", "8192");
    let r = attach_line(&xs, "guest2 --ggtt-entries 4097");
    assert_eq!(r.code, 1);
    assert!(
        r.err.contains("no free GGTT range of 4097 entries is left (the backend manages 8192; the largest free range has 4096)"),
        "{r:?}"
    );
    let r = attach_line(&xs, "guest2 --ggtt-entries 4096 -v");
    assert!(r.out.contains("GGTT slice 4096+4096"), "{r:?}");
    assert!(!r.err.contains("assumed"), "{r:?}");
}

#[test]
fn explicit_overlap_is_refused_naming_the_other_device() {
    let xs = system();
    assert_eq!(attach_line(&xs, "guest1 --ggtt-base 4096").code, 0);
    let r = attach_line(&xs, "guest2 --ggtt-base 8000 --ggtt-entries 200");
    assert_eq!(r.code, 1);
    assert_eq!(
        r.err,
        "vgpu: GGTT slice 8000+200 overlaps 4096+4096 of guest1 (domid 5) vgpu 0; choose another \
         --ggtt-base, or omit it to place the slice automatically\n"
    );
    assert!(xs.read("/local/domain/1/backend/vgpu/7/0/state").is_none(), "nothing written");
    let r = attach_line(&xs, "guest2 --ggtt-base 65000 --ggtt-entries 1000");
    assert!(
        r.err.contains("GGTT slice 65000+1000 ends past the 65536 entries the backend manages"),
        "{r:?}"
    );
    assert_eq!(attach_line(&xs, "guest2 --ggtt-base 8192 --ggtt-entries 100").code, 0);
}

#[test]
fn duplicate_attach_is_refused_and_says_detach_first() {
    let xs = system();
    assert_eq!(attach_line(&xs, "guest1").code, 0);
    let before = xs.dump("/local/domain");
    let r = attach_line(&xs, "5");
    assert_eq!(r.code, 1);
    assert_eq!(
        r.err,
        "vgpu: guest1 (domid 5) already has vgpu 0 (/local/domain/1/backend/vgpu/5/0 exists); \
         run `vgpu detach 5 --devid 0` first, or pick another --devid\n"
    );
    assert_eq!(xs.dump("/local/domain"), before, "nothing changed");
    // A frontend directory left behind counts as existing too.
    xs.with(|m| m.write(0, "/local/domain/7/device/vgpu/0/state", "6")).unwrap();
    let r = attach_line(&xs, "guest2");
    assert!(r.err.contains("(/local/domain/7/device/vgpu/0 exists)"), "{r:?}");
}

#[test]
fn eagain_is_retried_and_the_slice_is_placed_again() {
    let xs = system();
    // Another toolstack attaches guest2 at 0+4096 while our transaction runs.
    xs.before_commit(|m| {
        m.write(0, "/local/domain/1/backend/vgpu/7/0/limits/ggtt-base", "0").unwrap();
        m.write(0, "/local/domain/1/backend/vgpu/7/0/limits/ggtt-entries", "4096").unwrap();
    });
    let mut st = store(&xs);
    let done = attach(&mut st, &AttachArgs::new("guest1")).unwrap();
    assert_eq!(done.attempts, 2);
    assert_eq!(done.limits.slice.base, 4096, "placed after the concurrent slice");
    let c = xs.counters(st.client().transport());
    assert_eq!((c.conflicts, c.commits), (1, 1));
    assert!(done.notes.iter().any(|n| n.contains("redone 1 times (EAGAIN)")), "{:?}", done.notes);
}

#[test]
fn endless_eagain_gives_up_after_bounded_attempts() {
    let xs = system();
    for i in 0..vgpu::store::MAX_TRIES {
        xs.before_commit(move |m| {
            m.write(0, "/local/domain/1/data/vgpu-ggtt-entries", &format!("{}", 60000 + i)).unwrap()
        });
    }
    let r = attach_line(&xs, "guest1");
    assert_eq!(r.code, 1);
    assert!(
        r.err.contains(
            "xenstore kept changing under the transaction (16 attempts ended in EAGAIN); try again"
        ),
        "{r:?}"
    );
    assert!(xs.read(&format!("{BE}/state")).is_none());
}

#[test]
fn missing_guest_or_backend_and_self_attach_are_refused() {
    let xs = system();
    let r = attach_line(&xs, "nosuch");
    assert_eq!(r.code, 1);
    assert_eq!(
        r.err,
        "vgpu: no domain 'nosuch' to use as guest (running: Domain-0 (domid 0), gpu-dom (domid 1), \
         guest1 (domid 5), guest2 (domid 7)); `xl list` shows the domains, by name and domid\n"
    );
    let r = attach_line(&xs, "guest1 --backend 42");
    assert!(r.err.starts_with("vgpu: no domain '42' to use as backend"), "{r:?}");
    assert!(r.err.contains("start gpu-dom first"), "{r:?}");
    let r = attach_line(&xs, "gpu-dom");
    assert_eq!(
        r.err,
        "vgpu: gpu-dom (domid 1) cannot be its own vgpu frontend: the guest and the backend must be different domains\n"
    );
    assert!(xs.dump("/local/domain/1").iter().all(|l| !l.contains("backend")));
}

#[test]
fn dom0_may_be_a_guest_with_a_warning() {
    let xs = system();
    let r = attach_line(&xs, "Domain-0");
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.out.starts_with("attached Domain-0 (domid 0) to gpu-dom (domid 1) as vgpu 0"),
        "{r:?}"
    );
    assert!(r.err.contains("warning: the guest is dom0"), "{r:?}");
    assert_eq!(
        xs.dump("/local/domain/1/backend/vgpu/0/0/limits")[0],
        r#"/local/domain/1/backend/vgpu/0/0/limits = "" (n0 r1)"#
    );
}

#[test]
fn a_malformed_limit_of_another_device_stops_placement() {
    let xs = system();
    xs.write(0, "/local/domain/1/backend/vgpu/7/0/limits/ggtt-base", "12abc");
    xs.write(0, "/local/domain/1/backend/vgpu/7/0/limits/ggtt-entries", "10");
    let err = attach(&mut store(&xs), &AttachArgs::new("guest1")).unwrap_err();
    assert_eq!(
        err,
        Error::BadValue {
            path: "/local/domain/1/backend/vgpu/7/0/limits/ggtt-base".into(),
            value: "12abc".into()
        }
    );
}

#[test]
fn limits_that_do_not_fit_what_gpu_dom_has_left_are_refused_before_anything_is_written() {
    let xs = system();
    for (pool, capacity) in [("devices", "16"), ("pages", "3000"), ("table-pages", "1024")] {
        xs.write(1, &format!("/local/domain/1/data/vgpu-pool/{pool}/capacity"), capacity);
    }
    assert_eq!(attach_line(&xs, "guest1 --max-pages 2000").code, 0);
    // 1000 left: the toolstack's own promise counts even before gpu-dom
    // served (and reserved) the first device.
    let r = attach_line(&xs, "guest2");
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(
        r.err,
        "vgpu: does not fit: 1024 pages asked, but gpu-dom (domid 1) has 1000 of 3000 free \
         (1 device(s) hold the rest); ask for less (--max-pages 1000) or detach a guest \
         (`vgpu list` shows the pools)\n"
    );
    assert!(xs.read("/local/domain/1/backend/vgpu/7").is_none(), "nothing written");
    assert!(xs.read("/local/domain/7/device/vgpu").is_none(), "nothing written");
    assert_eq!(attach_line(&xs, "guest2 --max-pages 1000").code, 0, "what is left still fits");
}
