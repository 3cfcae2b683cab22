//! The model xenstored on a Unix socket, as xenstored serves
//! `/run/xenstored/socket`: lets the `vgpu` binary run against it.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use xenbus::Transport;

use crate::xenstored::Xenstored;

/// A listening socket; stops and removes itself when dropped.
pub struct Server {
    pub path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Serves `xs` (as dom0 connections) on a fresh socket named after `name`.
pub fn serve(xs: &Xenstored, name: &str) -> Server {
    let path = std::env::temp_dir().join(format!("vgpu-{}-{name}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).expect("bind the test socket");
    listener.set_nonblocking(true).expect("nonblocking listener");
    let stop = Arc::new(AtomicBool::new(false));
    let (xs, flag) = (xs.clone(), stop.clone());
    let thread = std::thread::spawn(move || {
        let mut conns = Vec::new();
        while !flag.load(Ordering::SeqCst) {
            match listener.accept() {
                Ok((stream, _)) => {
                    let (xs, flag) = (xs.clone(), flag.clone());
                    conns.push(std::thread::spawn(move || connection(&xs, stream, &flag)));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(2)),
            }
        }
        for c in conns {
            let _ = c.join();
        }
    });
    Server { path, stop, thread: Some(thread) }
}

fn connection(xs: &Xenstored, mut stream: UnixStream, stop: &AtomicBool) {
    let mut conn = xs.connect(0);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(2)));
    let mut buf = vec![0u8; 4096];
    while !stop.load(Ordering::SeqCst) {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if conn.send(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                xs.run_idle()
            }
            Err(_) => return,
        }
        loop {
            match conn.recv(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if stream.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            }
        }
    }
}
