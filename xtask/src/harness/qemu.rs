//! One bounded QEMU run of Xen (as a multiboot kernel) with multiboot modules:
//! software emulation only, serial port into a log file that is read while
//! QEMU runs, QEMU killed by PID when the watcher says so or time is up.
//!
//! Facts this relies on (measured on these machines): Debian's Xen has no
//! shadow paging, so a PVH guest needs HAP: `-cpu qemu64,+svm,+npt`; a PVH dom0
//! needs an IOMMU: `-machine q35 -device intel-iommu,intremap=on`; the KVM here
//! lacks nested SVM, so `-accel kvm` is never used; QEMU's `-initrd` splits
//! multiboot modules on commas.

use crate::error::{Error, Result};
use crate::harness::host;
use crate::harness::markers::{Next, Watcher};
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A multiboot module: a file and its command line.
#[derive(Clone, Debug)]
pub struct Module {
    pub path: PathBuf,
    pub args: String,
}

/// The machine to boot.
#[derive(Clone, Debug)]
pub struct Machine {
    /// Xen as a 32-bit multiboot ELF (QEMU's `-kernel` does not take the .gz).
    pub xen: PathBuf,
    pub xen_cmdline: String,
    /// Module 1 is dom0's kernel; the rest follow in order.
    pub modules: Vec<Module>,
    pub memory_mib: u32,
    pub smp: u32,
    /// Extra `-device` arguments (e.g. `edu,dma_mask=...` for `cargo xtask iommu`).
    pub devices: Vec<String>,
}

impl Machine {
    /// The QEMU command line, with the serial port going to `serial`.
    pub fn command(&self, serial: &Path) -> Result<Command> {
        let mut mods = Vec::new();
        for m in &self.modules {
            let text = if m.args.is_empty() {
                m.path.display().to_string()
            } else {
                format!("{} {}", m.path.display(), m.args)
            };
            if text.contains(',') {
                return Err(Error::CommaInModule { module: text });
            }
            mods.push(text);
        }
        let mut c = Command::new(host::QEMU.program);
        c.args(["-machine", "q35", "-accel", "tcg"])
            .args(["-cpu", "qemu64,+svm,+npt"])
            .args(["-device", "intel-iommu,intremap=on,aw-bits=48"])
            .args(["-m", &self.memory_mib.to_string(), "-smp", &self.smp.to_string()])
            .args(["-nographic", "-monitor", "none", "-no-reboot"])
            .arg("-serial")
            .arg(format!("file:{}", serial.display()))
            .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]);
        for d in &self.devices {
            c.args(["-device", d]);
        }
        c.arg("-kernel")
            .arg(&self.xen)
            .args(["-append", &self.xen_cmdline])
            .args(["-initrd", &mods.join(",")]);
        Ok(c)
    }
}

/// Why a run ended.
#[derive(Debug)]
pub enum Ended {
    /// The watcher saw what it waited for (success or failure) and we killed QEMU.
    Watcher,
    /// QEMU exited on its own.
    QemuExited(ExitStatus),
    /// The timeout expired and we killed QEMU.
    Timeout,
    /// The serial log did not grow for [`STALL_AFTER`] and we killed QEMU:
    /// the emulated machine stopped (in the dom0 runs not even dom0's
    /// heartbeat came), which no domain under test can cause.
    Stalled,
}

/// Silence on the serial log after which a run counts as stalled: three
/// missed dom0 heartbeats (`scenario::HEARTBEAT_SECS`) and then some.
pub const STALL_AFTER: Duration = Duration::from_secs(75);

/// What a run produced.
#[derive(Debug)]
pub struct Run {
    pub ended: Ended,
    pub wall: Duration,
    /// The whole serial log.
    pub serial: String,
    pub serial_path: PathBuf,
    pub qemu_log: PathBuf,
}

/// Boots `machine`, writing `dir/serial.log`, `dir/serial.timed.log` (each
/// line with the wall time at which it was read), `dir/qemu.log` and
/// `dir/command.txt` (to rerun by hand); `on_line` sees every serial line
/// as it appears.
pub fn run(
    machine: &Machine,
    dir: &Path,
    watcher: &mut Watcher,
    timeout: Duration,
    mut on_line: impl FnMut(&str),
) -> Result<Run> {
    host::mkdirs(dir)?;
    let serial_path = dir.join("serial.log");
    let qemu_log = dir.join("qemu.log");
    host::write(&serial_path, b"")?;
    let mut cmd = machine.command(&serial_path)?;
    host::write(&dir.join("command.txt"), format!("{}\n", host::describe(&cmd)))?;
    let out = File::create(&qemu_log).map_err(|e| Error::io("creating", &qemu_log, e))?;
    let err = out.try_clone().map_err(|e| Error::io("creating", &qemu_log, e))?;
    cmd.stdin(Stdio::null()).stdout(out).stderr(err);
    let t0 = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|source| Error::Spawn { program: host::QEMU.program.into(), source })?;
    let mut reader = File::open(&serial_path).map_err(|e| Error::io("opening", &serial_path, e))?;
    let timed_path = dir.join("serial.timed.log");
    let timed = File::create(&timed_path).map_err(|e| Error::io("creating", &timed_path, e))?;
    let mut timed = BufWriter::new(timed);
    let mut serial = Vec::new();
    let mut consumed = 0usize;
    let mut stop_at: Option<Instant> = None;
    let mut last_growth = (Instant::now(), 0usize);
    let ended = loop {
        let _ = reader.read_to_end(&mut serial);
        if serial.len() != last_growth.1 {
            last_growth = (Instant::now(), serial.len());
        }
        while let Some(nl) = serial[consumed..].iter().position(|&b| b == b'\n') {
            let line = String::from_utf8_lossy(&serial[consumed..consumed + nl]);
            let line = line.trim_end_matches('\r');
            consumed += nl + 1;
            let _ = writeln!(timed, "[{:8.3}] {line}", t0.elapsed().as_secs_f64());
            on_line(line);
            if let Next::StopAfter(grace) = watcher.feed(line) {
                let at = Instant::now() + grace;
                stop_at = Some(stop_at.map_or(at, |s| s.min(at)));
            }
        }
        if let Some(status) = child.try_wait().map_err(|e| Error::io("waiting for", "qemu", e))? {
            let _ = reader.read_to_end(&mut serial);
            break Ended::QemuExited(status);
        }
        let now = Instant::now();
        if stop_at.is_some_and(|s| now >= s) {
            break Ended::Watcher;
        }
        if now - t0 >= timeout {
            break Ended::Timeout;
        }
        if now - last_growth.0 >= STALL_AFTER {
            break Ended::Stalled;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let wall = t0.elapsed();
    if !matches!(ended, Ended::QemuExited(_)) {
        let _ = child.kill();
        let _ = host::wait_bounded(&mut child, Duration::from_secs(10));
        let _ = reader.read_to_end(&mut serial);
    }
    let serial = String::from_utf8_lossy(&serial).into_owned();
    // Process a last line without newline, so markers in it are not lost.
    if let Some(rest) = serial.get(consumed..).filter(|r| !r.trim().is_empty()) {
        on_line(rest.trim_end());
        watcher.feed(rest);
    }
    Ok(Run { ended, wall, serial, serial_path, qemu_log })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine(args: &str) -> Machine {
        Machine {
            xen: "/c/xen-4.17".into(),
            xen_cmdline: "dom0=pvh console=com1".into(),
            modules: vec![
                Module { path: "/c/vmlinuz".into(), args: args.into() },
                Module { path: "/c/initrd.cpio".into(), args: String::new() },
            ],
            memory_mib: 2048,
            smp: 2,
            devices: vec![],
        }
    }

    fn args(c: &Command) -> Vec<String> {
        c.get_args().map(|a| a.to_string_lossy().into_owned()).collect()
    }

    #[test]
    fn command_uses_tcg_with_svm_npt_and_an_iommu_never_kvm() {
        let c = machine("console=hvc0").command(Path::new("/l/serial.log")).unwrap();
        let a = args(&c);
        let after = |flag: &str| a[a.iter().position(|x| x == flag).unwrap() + 1].clone();
        assert_eq!(after("-accel"), "tcg");
        assert_eq!(after("-cpu"), "qemu64,+svm,+npt");
        assert_eq!(after("-machine"), "q35");
        assert!(a.iter().any(|x| x.starts_with("intel-iommu,intremap=on")));
        assert!(!a.iter().any(|x| x.contains("kvm")));
        assert_eq!(after("-serial"), "file:/l/serial.log");
        assert_eq!(after("-kernel"), "/c/xen-4.17");
        assert_eq!(after("-append"), "dom0=pvh console=com1");
        assert_eq!(after("-initrd"), "/c/vmlinuz console=hvc0,/c/initrd.cpio");
    }

    #[test]
    fn a_comma_in_module_arguments_is_refused() {
        let e = machine("console=hvc0,115200").command(Path::new("s")).unwrap_err();
        assert!(matches!(e, Error::CommaInModule { .. }), "{e}");
    }
}
