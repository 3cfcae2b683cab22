//! `vgpu attach --wait`: a bounded wait for both ends to connect.

mod common;

use common::{simulate_frontend, simulate_gpu_dom, system, vgpu};

#[test]
fn attach_wait_reports_how_long_the_connection_took() {
    let xs = system();
    simulate_gpu_dom(&xs, 1);
    simulate_frontend(&xs, 5);
    let r = vgpu(&xs, "attach guest1 --wait 5");
    assert_eq!(r.code, 0, "{r:?}");
    let lines: Vec<&str> = r.out.lines().collect();
    assert!(
        lines[0].starts_with("attached guest1 (domid 5) to gpu-dom (domid 1) as vgpu 0"),
        "{}",
        r.out
    );
    assert!(lines[1].starts_with("connected in "), "{}", r.out);
    assert!(lines[1].ends_with(" ms (frontend Connected, backend Connected)"), "{}", r.out);
    assert_eq!(xs.read("/local/domain/1/backend/vgpu/5/0/state").as_deref(), Some("4"));
}

#[test]
fn attach_wait_timeout_names_a_frontend_that_never_started() {
    let xs = system();
    simulate_gpu_dom(&xs, 1);
    let r = vgpu(&xs, "attach guest1 --wait 0.2");
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.out.starts_with("attached guest1"), "the device stays: {}", r.out);
    assert!(
        r.err.starts_with(
            "vgpu: vgpu 0 of guest1 (domid 5) did not connect: still frontend Initialising, backend InitWait after 0.2 s; \
             the vgpu frontend in guest1 (domid 5) has not connected: is its driver started in the guest?"
        ),
        "{}",
        r.err
    );
}

#[test]
fn attach_wait_timeout_names_a_backend_that_never_took_the_device_up() {
    let xs = system();
    let r = vgpu(&xs, "attach guest1 --wait=0.1");
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.err.contains("still frontend Initialising, backend Initialising after 0.1 s; gpu-dom (domid 1) has not taken the device up: is gpu-dom running and watching backend/vgpu? (`xl console gpu-dom`)"), "{}", r.err);
}

#[test]
fn attach_wait_stops_early_when_the_backend_refuses_the_device() {
    let xs = system();
    xs.on_idle(|m| {
        let state = "/local/domain/1/backend/vgpu/5/0/state";
        if m.read(state).as_deref() == Some("1") {
            m.write(1, state, "6").unwrap();
        }
    });
    let start = std::time::Instant::now();
    let r = vgpu(&xs, "attach guest1 --wait 30");
    assert!(start.elapsed().as_secs() < 5, "did not wait for the full timeout");
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(
        r.err,
        "vgpu: vgpu 0 of guest1 (domid 5) is being closed instead of connecting: frontend Initialising, \
         backend Closed; gpu-dom (domid 1) refused or closed it; its console says why (`xl console gpu-dom`)\n"
    );
}
