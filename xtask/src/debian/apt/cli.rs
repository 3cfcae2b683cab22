//! [`AptCli`]: [`AptRunner`] on apt's own programs. Every command runs with
//! `LC_ALL=C` (the parsers read apt's English), with a time bound, and
//! leaves its command line and complaints in one log.
//!
//! Debian's container images turn apt's binary cache off (`Dir::Cache::pkgcache
//! ""`), so each `apt-cache` call would parse every list again (1 s here); the
//! xtask keeps its own (`Dir::Cache::pkgcache`, which apt rebuilds whenever
//! a list or dpkg's status changes): 30 ms a call.

use super::fetch::AptRunner;
use crate::error::{Error, Result};
use crate::harness::host;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

const QUERY_TIMEOUT: Duration = Duration::from_secs(120);
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(900);

/// apt on this host, with its output going to `log`.
pub struct AptCli {
    log: PathBuf,
    /// `-o Dir::Cache::pkgcache=<file>`.
    pkgcache: String,
}

impl AptCli {
    /// apt logging to `log`, keeping its binary cache in `cache_dir`.
    pub fn new(log: PathBuf, cache_dir: &Path) -> Result<Self> {
        host::mkdirs(cache_dir)?;
        let pkgcache = format!("Dir::Cache::pkgcache={}", cache_dir.join("pkgcache.bin").display());
        Ok(AptCli { log, pkgcache })
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("LC_ALL", "C").args(["-o", &self.pkgcache]);
        cmd
    }

    /// Runs an `apt-cache` query; its (long) output is returned, not logged.
    fn query(&self, args: &[&str], names: &[String]) -> Result<String> {
        let mut cmd = self.command("apt-cache");
        cmd.args(args).args(names);
        let c = host::capture_logged(&mut cmd, &self.log, QUERY_TIMEOUT, false)?;
        if !c.status.success() {
            return Err(Error::CommandFailed {
                command: host::describe(&cmd),
                status: c.status.to_string(),
                log: Some(self.log.clone()),
            });
        }
        Ok(c.stdout)
    }
}

impl AptRunner for AptCli {
    fn lists_age(&mut self) -> Result<Option<Duration>> {
        let c = host::capture(
            self.command("apt-config").args(["shell", "LISTS", "Dir::State::Lists/d"]),
            QUERY_TIMEOUT,
        )?;
        let dir = parse_apt_config_shell(&c.stdout, "LISTS")
            .unwrap_or_else(|| "/var/lib/apt/lists".into());
        Ok(lists_age_in(Path::new(&dir), SystemTime::now()))
    }

    fn update(&mut self) -> Result<()> {
        host::apt_update(&self.log, &["-o", &self.pkgcache])
    }

    fn policy(&mut self, names: &[String]) -> Result<String> {
        self.query(&["policy"], names)
    }

    fn show(&mut self, specs: &[String]) -> Result<String> {
        self.query(&["show"], specs)
    }

    fn download(&mut self, specs: &[String], dir: &Path) -> Result<Result<(), String>> {
        let mut cmd = self.command("apt-get");
        cmd.current_dir(dir).args(["download", "-q", "-o", "APT::Sandbox::User=root"]).args(specs);
        let c = host::capture_logged(&mut cmd, &self.log, DOWNLOAD_TIMEOUT, true)?;
        if c.status.success() {
            return Ok(Ok(()));
        }
        let complaints: Vec<&str> =
            c.stderr.lines().filter(|l| l.starts_with("E:") || l.starts_with("W:")).collect();
        Ok(Err(if complaints.is_empty() {
            format!("apt-get download: {}", c.status)
        } else {
            complaints.join("\n")
        }))
    }

    fn log(&self) -> PathBuf {
        self.log.clone()
    }
}

/// The value `apt-config shell VAR key` printed (`VAR='/var/lib/apt/lists/'`).
fn parse_apt_config_shell(text: &str, var: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let v = l.strip_prefix(var)?.strip_prefix("=")?;
        let v = v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')).unwrap_or(v);
        (!v.is_empty()).then(|| v.to_string())
    })
}

/// How long ago apt last updated the lists in `dir`; `None` when it holds
/// no `Packages` index. apt stamps a downloaded index with the server's
/// `Last-Modified` time, so the age is taken from the newest of those and
/// of `partial/`, which every `apt-get update` writes into.
pub fn lists_age_in(dir: &Path, now: SystemTime) -> Option<Duration> {
    let entries = fs::read_dir(dir).ok()?;
    let mut newest: Option<SystemTime> = None;
    let mut any_index = false;
    let mut consider = |t: SystemTime| newest = Some(newest.map_or(t, |n| n.max(t)));
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Ok(modified) = e.metadata().and_then(|m| m.modified()) else { continue };
        if name.contains("_Packages") {
            any_index = true;
            consider(modified);
        } else if name == "partial" || name.ends_with("Release") {
            consider(modified);
        }
    }
    if !any_index {
        return None;
    }
    Some(now.duration_since(newest?).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdir::TestDir;
    use std::fs::File;

    fn touch(path: &Path, at: SystemTime) {
        File::options().write(true).open(path).unwrap().set_modified(at).unwrap();
    }

    #[test]
    fn lists_age_is_that_of_the_last_update_and_none_without_an_index() {
        let t = TestDir::new("lists");
        let now = SystemTime::now();
        let hours = |h: u64| now - Duration::from_secs(h * 3600);
        t.file("lock", b"");
        t.mkdir("partial");
        assert_eq!(lists_age_in(t.root(), now), None, "a fresh machine: no index yet");

        t.file("deb.debian.org_debian_dists_bookworm_InRelease", b"");
        t.file("deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages.lz4", b"");
        // Server times, from the archive's Last-Modified.
        touch(&t.path("deb.debian.org_debian_dists_bookworm_InRelease"), hours(30));
        touch(
            &t.path("deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages.lz4"),
            hours(900),
        );
        File::open(t.path("partial")).unwrap().set_modified(hours(2)).unwrap();
        assert_eq!(lists_age_in(t.root(), now), Some(Duration::from_secs(2 * 3600)));
        assert_eq!(lists_age_in(&t.path("missing"), now), None);
    }

    #[test]
    fn apt_config_shell_output_gives_the_lists_directory() {
        assert_eq!(
            parse_apt_config_shell("LISTS='/var/lib/apt/lists/'\n", "LISTS").as_deref(),
            Some("/var/lib/apt/lists/")
        );
        assert_eq!(parse_apt_config_shell("", "LISTS"), None);
    }
}
