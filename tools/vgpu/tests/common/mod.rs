//! Shared by the integration tests: the model xenstored, a standard system
//! of domains, simulated gpu-dom and frontends, and a way to run `vgpu`.
#![allow(dead_code)]

#[allow(unused_imports)]
pub use xenstored_model::{socket, tree, xenstored};

use vgpu::Store;
use xenbus::{Client, DomId};

pub use xenstored::{Conn, Model, Xenstored};

/// dom0 `Domain-0`, backend `gpu-dom` (1), guests `guest1` (5) and `guest2` (7).
pub fn system() -> Xenstored {
    let xs = Xenstored::new();
    for (id, name) in [(0, "Domain-0"), (1, "gpu-dom"), (5, "guest1"), (7, "guest2")] {
        xs.add_domain(id, name);
    }
    xs
}

/// A dom0 store over a fresh connection.
pub fn store(xs: &Xenstored) -> Store<Conn> {
    Store::new(Client::new(xs.connect(0)))
}

/// What one run of `vgpu` printed, and its exit status.
#[derive(Debug)]
pub struct Run {
    pub code: u8,
    pub out: String,
    pub err: String,
}

/// Runs `vgpu <line>` as dom0 against `xs`, as the binary does.
pub fn vgpu(xs: &Xenstored, line: &str) -> Run {
    let args: Vec<String> = line.split_whitespace().map(str::to_string).collect();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = vgpu::main_with(&args, || Ok(store(xs)), &mut out, &mut err);
    Run {
        code,
        out: String::from_utf8_lossy(&out).into_owned(),
        err: String::from_utf8_lossy(&err).into_owned(),
    }
}

fn device_dirs(m: &Model, root: &str, depth2: bool) -> Vec<String> {
    let mut dirs = Vec::new();
    for a in m.tree.children(root) {
        if depth2 {
            for b in m.tree.children(&format!("{root}/{a}")) {
                dirs.push(format!("{root}/{a}/{b}"));
            }
        } else {
            dirs.push(format!("{root}/{a}"));
        }
    }
    dirs.retain(|d| m.tree.get(&format!("{d}/state")).is_some());
    dirs
}

/// gpu-dom's half of the handshake, as domain `backend` writes it:
/// InitWait when a device appears, Connected when the frontend is
/// Initialised, Closed when the toolstack sets Closing.
pub fn simulate_gpu_dom(xs: &Xenstored, backend: DomId) {
    xs.on_idle(move |m| {
        for dir in device_dirs(m, &format!("/local/domain/{backend}/backend/vgpu"), true) {
            let be = m.read(&format!("{dir}/state"));
            let fe_dir = m.read(&format!("{dir}/frontend")).unwrap_or_default();
            let fe = m.read(&format!("{fe_dir}/state"));
            let next = match (be.as_deref(), fe.as_deref()) {
                (Some("1"), _) => "2",
                (Some("2"), Some("3")) => "4",
                (Some("5"), _) => "6",
                _ => continue,
            };
            m.write(backend, &format!("{dir}/state"), next).expect("backend owns its state");
        }
    });
}

/// A guest's vgpu frontend: Initialised once the backend waits, Connected
/// once the backend is.
pub fn simulate_frontend(xs: &Xenstored, guest: DomId) {
    xs.on_idle(move |m| {
        for dir in device_dirs(m, &format!("/local/domain/{guest}/device/vgpu"), false) {
            let fe = m.read(&format!("{dir}/state"));
            let be_dir = m.read(&format!("{dir}/backend")).unwrap_or_default();
            let be = m.read(&format!("{be_dir}/state"));
            let next = match (fe.as_deref(), be.as_deref()) {
                (Some("1"), Some("2")) => "3",
                (Some("3"), Some("4")) => "4",
                _ => continue,
            };
            if fe.as_deref() != Some(next) {
                m.write(guest, &format!("{dir}/state"), next).expect("guest owns its state");
            }
        }
    });
}
