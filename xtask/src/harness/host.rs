//! Running host programs: every wait is bounded, output goes to a log file the
//! error can point at, and missing host tools are installed from Debian.

use crate::error::{Error, Result};
use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// `program arg arg` as a person would type it (for messages and logs).
pub fn describe(cmd: &Command) -> String {
    let mut parts = vec![cmd.get_program().to_string_lossy().into_owned()];
    for a in cmd.get_args() {
        let a = a.to_string_lossy();
        if a.is_empty() || a.contains(|c: char| c.is_whitespace() || "\"'$|&;<>()".contains(c)) {
            parts.push(format!("'{}'", a.replace('\'', r"'\''")));
        } else {
            parts.push(a.into_owned());
        }
    }
    parts.join(" ")
}

fn spawn(cmd: &mut Command) -> Result<Child> {
    cmd.spawn().map_err(|source| Error::Spawn {
        program: cmd.get_program().to_string_lossy().into_owned(),
        source,
    })
}

/// Waits for `child` at most `timeout`; kills it (by its PID) when time is up.
pub fn wait_bounded(child: &mut Child, timeout: Duration) -> std::io::Result<Option<ExitStatus>> {
    let t0 = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if t0.elapsed() >= timeout {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `cmd` with stdout and stderr appended to `log`.
pub fn run_logged(cmd: &mut Command, log: &Path, timeout: Duration) -> Result<()> {
    let command = describe(cmd);
    if let Some(dir) = log.parent() {
        fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
    }
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| Error::io("opening", log, e))?;
    let _ = writeln!(file, "$ {command}");
    let out = file.try_clone().map_err(|e| Error::io("opening", log, e))?;
    cmd.stdin(Stdio::null()).stdout(out).stderr(file);
    let mut child = spawn(cmd)?;
    let status =
        wait_bounded(&mut child, timeout).map_err(|e| Error::io("waiting for", &command, e))?;
    let log = Some(log.to_path_buf());
    match status {
        None => Err(Error::CommandTimeout { command, after: timeout, log }),
        Some(s) if s.success() => Ok(()),
        Some(s) => Err(Error::CommandFailed { command, status: s.to_string(), log }),
    }
}

/// Runs `cmd` with its stdout and stderr inherited (the user sees them).
pub fn run_visible(cmd: &mut Command, timeout: Duration) -> Result<()> {
    let command = describe(cmd);
    cmd.stdin(Stdio::null());
    let mut child = spawn(cmd)?;
    match wait_bounded(&mut child, timeout).map_err(|e| Error::io("waiting for", &command, e))? {
        None => Err(Error::CommandTimeout { command, after: timeout, log: None }),
        Some(s) if s.success() => Ok(()),
        Some(s) => Err(Error::CommandFailed { command, status: s.to_string(), log: None }),
    }
}

/// What a captured command printed.
pub struct Captured {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `cmd` and returns what it printed, whatever its exit status.
pub fn capture(cmd: &mut Command, timeout: Duration) -> Result<Captured> {
    let command = describe(cmd);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = spawn(cmd)?;
    let mut out = child.stdout.take().expect("stdout was piped");
    let mut err = child.stderr.take().expect("stderr was piped");
    let out_thread = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let mut stderr = Vec::new();
    let err_thread = std::thread::spawn(move || {
        let _ = err.read_to_end(&mut stderr);
        stderr
    });
    let status =
        wait_bounded(&mut child, timeout).map_err(|e| Error::io("waiting for", &command, e))?;
    let Some(status) = status else {
        return Err(Error::CommandTimeout { command, after: timeout, log: None });
    };
    let stdout = String::from_utf8_lossy(&out_thread.join().unwrap_or_default()).into_owned();
    let stderr = String::from_utf8_lossy(&err_thread.join().unwrap_or_default()).into_owned();
    Ok(Captured { status, stdout, stderr })
}

/// [`capture`], then appends the command line, its stderr and (with
/// `with_stdout`) its stdout to `log`.
pub fn capture_logged(
    cmd: &mut Command,
    log: &Path,
    timeout: Duration,
    with_stdout: bool,
) -> Result<Captured> {
    let command = describe(cmd);
    let r = capture(cmd, timeout);
    if let Some(dir) = log.parent() {
        fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
    }
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| Error::io("opening", log, e))?;
    let _ = writeln!(file, "$ {command}");
    match &r {
        Ok(c) => {
            if with_stdout {
                let _ = file.write_all(c.stdout.as_bytes());
            }
            let _ = file.write_all(c.stderr.as_bytes());
            if !c.status.success() {
                let _ = writeln!(file, "({command}: {})", c.status);
            }
        }
        Err(e) => {
            let _ = writeln!(file, "({e})");
        }
    }
    r.map_err(|e| match e {
        Error::CommandTimeout { command, after, .. } => {
            Error::CommandTimeout { command, after, log: Some(log.to_path_buf()) }
        }
        e => e,
    })
}

/// The first `program` on PATH.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| fs::metadata(p).map(|m| m.is_file() && m.mode() & 0o111 != 0).unwrap_or(false))
}

/// True when this process runs as root (the owner of `/proc/self` is our euid).
pub fn is_root() -> bool {
    fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

/// A host program and the Debian package that provides it.
#[derive(Clone, Copy, Debug)]
pub struct Tool {
    pub program: &'static str,
    pub package: &'static str,
}

pub const QEMU: Tool = Tool { program: "qemu-system-x86_64", package: "qemu-system-x86" };
pub const OBJCOPY: Tool = Tool { program: "objcopy", package: "binutils" };
pub const DPKG_DEB: Tool = Tool { program: "dpkg-deb", package: "dpkg" };
pub const GZIP: Tool = Tool { program: "gzip", package: "gzip" };

/// How long `apt-get update` waits for another apt that holds the lists'
/// lock (apt itself gives up at once).
const APT_LOCK_WAIT: Duration = Duration::from_secs(300);

/// `apt-get update` with `options`; waits (bounded) while another apt holds
/// its lock.
pub fn apt_update(log: &Path, options: &[&str]) -> Result<()> {
    let t0 = Instant::now();
    loop {
        let mut cmd = Command::new("apt-get");
        cmd.env("LC_ALL", "C").args(options).args(["update", "-q"]);
        let c = capture_logged(&mut cmd, log, Duration::from_secs(300), true)?;
        if c.status.success() {
            return Ok(());
        }
        if c.stderr.contains("Could not get lock") && t0.elapsed() < APT_LOCK_WAIT {
            std::thread::sleep(Duration::from_secs(3));
            continue;
        }
        return Err(Error::CommandFailed {
            command: describe(&cmd),
            status: c.status.to_string(),
            log: Some(log.to_path_buf()),
        });
    }
}

/// Installs the Debian packages of the tools that are not on PATH; returns them.
pub fn ensure_tools(tools: &[Tool], log: &Path) -> Result<Vec<&'static str>> {
    let mut missing: Vec<&'static str> =
        tools.iter().filter(|t| which(t.program).is_none()).map(|t| t.package).collect();
    missing.dedup();
    if missing.is_empty() {
        return Ok(missing);
    }
    if !is_root() {
        return Err(Error::NotRoot { packages: missing.iter().map(|s| s.to_string()).collect() });
    }
    let install = |log: &Path| {
        let mut cmd = Command::new("apt-get");
        cmd.env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(["-o", "DPkg::Lock::Timeout=300"])
            .args(&missing);
        run_logged(&mut cmd, log, Duration::from_secs(900))
    };
    if install(log).is_err() {
        apt_update(log, &[])?;
        install(log)?;
    }
    Ok(missing)
}

/// Creates `dir` and its parents.
pub fn mkdirs(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))
}

/// Reads a whole file.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|e| Error::io("reading", path, e))
}

/// Writes a whole file (creating its directory).
pub fn write(path: &Path, data: impl AsRef<[u8]>) -> Result<()> {
    if let Some(dir) = path.parent() {
        mkdirs(dir)?;
    }
    fs::write(path, data).map_err(|e| Error::io("writing", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_quotes_arguments_with_spaces() {
        let mut c = Command::new("qemu-system-x86_64");
        c.args(["-append", "dom0=pvh console=com1", "-m", "1024"]);
        assert_eq!(describe(&c), "qemu-system-x86_64 -append 'dom0=pvh console=com1' -m 1024");
    }

    #[test]
    fn capture_returns_output_and_status() {
        let c = capture(
            Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]),
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(c.stdout, "out\n");
        assert_eq!(c.stderr, "err\n");
        assert_eq!(c.status.code(), Some(3));
    }

    #[test]
    fn a_command_past_its_timeout_is_killed_and_reported() {
        let t0 = Instant::now();
        let e = capture(Command::new("sleep").arg("30"), Duration::from_millis(200)).err().unwrap();
        assert!(matches!(e, Error::CommandTimeout { .. }), "{e}");
        assert!(t0.elapsed() < Duration::from_secs(5));
    }
}
