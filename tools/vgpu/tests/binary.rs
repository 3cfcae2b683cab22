//! The `vgpu` binary itself: exit codes, the message without xenstored, and
//! a whole attach / list / detach cycle over a xenstored socket (the real
//! `StdTransport` with read timeouts and watches).

mod common;

use std::process::{Command, Output};

use common::socket::serve;
use common::{simulate_frontend, simulate_gpu_dom, system};

fn vgpu(socket: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vgpu"))
        .args(args)
        .env("XENSTORED_PATH", socket)
        .output()
        .expect("run vgpu")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn help_and_usage_errors_exit_0_and_2_without_touching_xenstore() {
    let out = vgpu("/nonexistent/xenstored.sock", &["--help"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).starts_with("vgpu - give guests a vgpu device"), "{out:?}");
    let out = vgpu("/nonexistent/xenstored.sock", &["attach", "--help"]);
    assert!(text(&out.stdout).starts_with("Usage: vgpu attach <guest> [options]"), "{out:?}");
    let out = vgpu("/nonexistent/xenstored.sock", &["attach"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "vgpu: vgpu attach needs a <guest> (a domain name or domid)\nTry `vgpu --help`.\n"
    );
}

#[test]
fn without_xenstored_it_names_the_paths_it_tried_and_where_to_run() {
    let defaults = ["/run/xenstored/socket", "/var/run/xenstored/socket", "/dev/xen/xenbus"];
    if defaults.iter().any(|p| std::path::Path::new(p).exists()) {
        eprintln!("skipped: this machine has a xenstore");
        return;
    }
    let out = vgpu("/nonexistent/xenstored.sock", &["list"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    for want in [
        "vgpu: cannot reach xenstored; tried:",
        "socket /nonexistent/xenstored.sock: No such file or directory",
        "socket /run/xenstored/socket",
        "socket /var/run/xenstored/socket",
        "device /dev/xen/xenbus",
        "Run this in dom0",
        "with xenstored running",
    ] {
        assert!(err.contains(want), "{want:?} in\n{err}");
    }
}

#[test]
fn attach_list_and_detach_over_the_xenstored_socket() {
    let xs = system();
    simulate_gpu_dom(&xs, 1);
    simulate_frontend(&xs, 5);
    let server = serve(&xs, "cycle");
    let sock = server.path.to_str().expect("utf-8 temp dir");

    let out = vgpu(sock, &["attach", "guest1", "--wait", "10"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(
            "attached guest1 (domid 5) to gpu-dom (domid 1) as vgpu 0: GGTT slice 0+4096"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("connected in "), "{stdout}");

    let out = vgpu(sock, &["list"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let listing = text(&out.stdout);
    assert!(listing.contains("guest1      5      0  Connected  Connected  0+4096"), "{listing}");

    let out = vgpu(sock, &["detach", "guest1", "--timeout", "10"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        text(&out.stdout).starts_with("detached vgpu 0 of guest1 (domid 5) from gpu-dom (domid 1)"),
        "{out:?}"
    );
    assert!(xs.read("/local/domain/1/backend/vgpu/5/0/state").is_none());

    let out = vgpu(sock, &["detach", "guest1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("has no vgpu 0"), "{out:?}");
}
