//! Resolve, then download: the one path by which the xtask gets Debian
//! packages ([`fetch`]). apt itself sits behind [`AptRunner`], so the logic
//! here is tested with a fake archive that moves on between two calls.
//!
//! Invariants:
//! - every version given to `apt-get download` was read from apt's lists
//!   during this call, never kept from an earlier run;
//! - lists that are missing, or older than [`LISTS_MAX_AGE`], are updated
//!   before anything is resolved;
//! - a version only dpkg's status file knows (installed here, offered by no
//!   source) is never asked for ([`Policy::choice`]);
//! - when `apt-get download` fails, the lists are updated and *everything* is
//!   resolved again (a new kernel ABI brings a new package name), then
//!   downloaded once more; the same pins are never retried;
//! - a cached `.deb` is known by the name of the file `apt-get download`
//!   produced, and a [`Deb`]'s version is the one in that name.

use super::control::{parse_deb_file_name, parse_show, Package};
use super::policy::{parse_policy, Choice};
use crate::error::{Error, Result};
use crate::harness::host;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Lists older than this are updated before resolving: Debian's archive
/// moves four times a day, its security archive at any time.
pub const LISTS_MAX_AGE: Duration = Duration::from_secs(6 * 3600);

/// What [`fetch`] needs from apt. [`super::AptCli`] runs apt's programs.
pub trait AptRunner {
    /// How old the package lists are; `None` when there are none.
    fn lists_age(&mut self) -> Result<Option<Duration>>;
    /// `apt-get update`.
    fn update(&mut self) -> Result<()>;
    /// What `apt-cache policy <names>` prints.
    fn policy(&mut self, names: &[String]) -> Result<String>;
    /// What `apt-cache show <name=version>...` prints.
    fn show(&mut self, specs: &[String]) -> Result<String>;
    /// `apt-get download <name=version>...` in `dir`. The inner error is
    /// apt's own complaint (`E: ...` lines), for a download apt refused or
    /// could not complete; the outer one is for apt not running at all.
    fn download(&mut self, specs: &[String], dir: &Path) -> Result<Result<(), String>>;
    /// Where apt's output goes.
    fn log(&self) -> PathBuf;
}

/// Answers "which version of these packages to download" from apt's lists
/// as they are now. Handed to the caller's resolve function by [`fetch`].
pub struct Resolver<'a> {
    apt: &'a mut dyn AptRunner,
    notes: Vec<String>,
}

impl Resolver<'_> {
    /// The version to download of each of `names` that a source offers
    /// (the others are left out), with its control data.
    pub fn find(&mut self, names: &[String]) -> Result<Vec<Package>> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let policies = parse_policy(&self.apt.policy(names)?);
        let mut chosen: Vec<(String, String)> = Vec::new();
        for p in policies.iter().filter(|p| names.contains(&p.name)) {
            match p.choice() {
                Choice::Candidate(v) => chosen.push((p.name.clone(), v.into())),
                Choice::InsteadOf { chosen: v, candidate } => {
                    self.notes.push(format!(
                        "{}: {candidate} (installed here) is offered by no source; taking {v}",
                        p.name
                    ));
                    chosen.push((p.name.clone(), v.into()));
                }
                Choice::Nothing => {}
            }
        }
        if chosen.is_empty() {
            return Ok(Vec::new());
        }
        let specs: Vec<String> = chosen.iter().map(|(n, v)| format!("{n}={v}")).collect();
        let stanzas = parse_show(&self.apt.show(&specs)?);
        chosen
            .iter()
            .map(|(n, v)| {
                stanzas.iter().find(|s| &s.name == n && &s.version == v).cloned().ok_or_else(|| {
                    Error::PackageContent {
                        package: n.clone(),
                        what: format!(
                            "apt-cache policy offers {v} but apt-cache show has no such version"
                        ),
                    }
                })
            })
            .collect()
    }

    /// Like [`Resolver::find`], but every name must be offered; in `names`' order.
    pub fn require(&mut self, names: &[&str]) -> Result<Vec<Package>> {
        let owned: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let found = self.find(&owned)?;
        names
            .iter()
            .map(|n| {
                found
                    .iter()
                    .find(|p| p.name == *n)
                    .cloned()
                    .ok_or_else(|| Error::PackageUnknown { package: n.to_string() })
            })
            .collect()
    }
}

/// A downloaded package: its `.deb` in the cache, and the package as that
/// file's name says (its version is the one really fetched).
#[derive(Clone, Debug)]
pub struct Deb {
    pub package: Package,
    /// The file name `apt-get download` produced.
    pub file: String,
}

impl Deb {
    /// The file name without `.deb`: the key of its unpacked tree.
    pub fn stem(&self) -> &str {
        self.file.strip_suffix(".deb").unwrap_or(&self.file)
    }
}

/// What [`fetch`] did.
#[derive(Debug)]
pub struct Fetched {
    /// One per resolved package, in the resolver's order.
    pub debs: Vec<Deb>,
    /// How many of them were downloaded now (the rest were cached).
    pub downloaded: usize,
    /// Their size in bytes.
    pub bytes: u64,
}

/// Resolves the packages with `resolve` from apt's current lists and
/// downloads those not yet in `dir` (see the module's invariants for when
/// the lists are updated). `note` gets one line for everything out of the
/// ordinary: an update and why, a version taken instead of apt's candidate.
pub fn fetch(
    apt: &mut dyn AptRunner,
    dir: &Path,
    resolve: &mut dyn FnMut(&mut Resolver) -> Result<Vec<Package>>,
    note: &mut dyn FnMut(String),
) -> Result<Fetched> {
    let mut updated = false;
    match apt.lists_age()? {
        None => {
            note("apt has no package lists: apt-get update".into());
            apt.update()?;
            updated = true;
        }
        Some(age) if age > LISTS_MAX_AGE => {
            let hours = age.as_secs() / 3600;
            note(format!("apt's package lists are {hours} h old: apt-get update"));
            match apt.update() {
                Ok(()) => updated = true,
                Err(e) => note(format!(
                    "apt-get update failed ({e}); going on with the lists as they are"
                )),
            }
        }
        Some(_) => {}
    }
    let mut pkgs = match resolve_now(apt, resolve, note) {
        Err(Error::PackageUnknown { package }) if !updated => {
            note(format!("apt's lists offer no `{package}`: apt-get update, then resolving again"));
            apt.update()?;
            resolve_now(apt, resolve, note)?
        }
        r => r?,
    };
    match download_missing(apt, dir, &pkgs, note)? {
        Ok(fetched) => Ok(fetched),
        Err(said) => {
            note(format!(
                "apt-get download failed ({}): apt-get update, then resolving again",
                said.lines().next().unwrap_or("no message")
            ));
            apt.update()?;
            pkgs = resolve_now(apt, resolve, note)?;
            download_missing(apt, dir, &pkgs, note)?.map_err(|said| Error::AptDownload {
                asked: missing(dir, &pkgs).iter().map(|p| spec(p)).collect(),
                said,
                log: apt.log(),
            })
        }
    }
}

fn resolve_now(
    apt: &mut dyn AptRunner,
    resolve: &mut dyn FnMut(&mut Resolver) -> Result<Vec<Package>>,
    note: &mut dyn FnMut(String),
) -> Result<Vec<Package>> {
    let mut r = Resolver { apt, notes: Vec::new() };
    let pkgs = resolve(&mut r);
    let mut seen = BTreeSet::new();
    for n in r.notes {
        if seen.insert(n.clone()) {
            note(n);
        }
    }
    let mut pkgs = pkgs?;
    let mut names = BTreeSet::new();
    pkgs.retain(|p| names.insert(p.name.clone()));
    Ok(pkgs)
}

fn spec(p: &Package) -> String {
    format!("{}={}", p.name, p.version)
}

/// The `.deb`s in `dir`, by what their names say: `(name, version, arch)` -> file.
fn cache_index(dir: &Path) -> BTreeMap<(String, String, String), String> {
    let Ok(entries) = fs::read_dir(dir) else { return BTreeMap::new() };
    entries
        .flatten()
        .filter_map(|e| {
            let file = e.file_name().to_string_lossy().into_owned();
            parse_deb_file_name(&file).map(|key| (key, file))
        })
        .collect()
}

fn key(p: &Package) -> (String, String, String) {
    (p.name.clone(), p.version.clone(), p.arch.clone())
}

fn missing<'a>(dir: &Path, pkgs: &'a [Package]) -> Vec<&'a Package> {
    let index = cache_index(dir);
    pkgs.iter().filter(|p| !index.contains_key(&key(p))).collect()
}

/// Downloads what `dir` lacks into a staging directory, then moves what
/// apt-get produced into `dir`. The inner error is apt's complaint.
fn download_missing(
    apt: &mut dyn AptRunner,
    dir: &Path,
    pkgs: &[Package],
    note: &mut dyn FnMut(String),
) -> Result<Result<Fetched, String>> {
    host::mkdirs(dir)?;
    let index = cache_index(dir);
    let want: Vec<&Package> = pkgs.iter().filter(|p| !index.contains_key(&key(p))).collect();
    let mut produced: BTreeMap<String, (String, String, String)> = BTreeMap::new();
    let mut bytes = 0;
    if !want.is_empty() {
        let staging = super::partial(dir);
        if staging.exists() {
            fs::remove_dir_all(&staging).map_err(|e| Error::io("removing", &staging, e))?;
        }
        host::mkdirs(&staging)?;
        let specs: Vec<String> = want.iter().map(|p| spec(p)).collect();
        if let Err(said) = apt.download(&specs, &staging)? {
            let _ = fs::remove_dir_all(&staging);
            return Ok(Err(said));
        }
        let entries = fs::read_dir(&staging).map_err(|e| Error::io("listing", &staging, e))?;
        for e in entries.flatten() {
            let file = e.file_name().to_string_lossy().into_owned();
            let Some(what) = parse_deb_file_name(&file) else { continue };
            bytes += e.metadata().map(|m| m.len()).unwrap_or(0);
            let to = dir.join(&file);
            fs::rename(e.path(), &to).map_err(|err| Error::io("moving into", &to, err))?;
            produced.insert(file, what);
        }
        fs::remove_dir_all(&staging).map_err(|e| Error::io("removing", &staging, e))?;
    }
    let mut debs = Vec::with_capacity(pkgs.len());
    for p in pkgs {
        if let Some(file) = index.get(&key(p)) {
            debs.push(Deb { package: p.clone(), file: file.clone() });
            continue;
        }
        let Some((file, (_, version, arch))) = produced
            .iter()
            .find(|(_, (n, _, a))| *n == p.name && (*a == p.arch || p.arch.is_empty()))
        else {
            return Err(Error::DownloadMissing {
                package: spec(p),
                expected: dir.join(p.deb_file_name()),
                log: apt.log(),
            });
        };
        if *version != p.version {
            note(format!(
                "{}: asked for {}, apt-get download fetched {version}",
                p.name, p.version
            ));
        }
        let package = Package { version: version.clone(), arch: arch.clone(), ..p.clone() };
        debs.push(Deb { package, file: file.clone() });
    }
    Ok(Ok(Fetched { debs, downloaded: want.len(), bytes }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::debian::apt::control::deb_file_name;
    use crate::testdir::TestDir;

    /// What `apt-cache` sees: policy blocks by name, show stanzas by `name=version`.
    #[derive(Clone, Default)]
    struct Lists {
        policy: BTreeMap<String, String>,
        show: BTreeMap<String, String>,
    }

    impl Lists {
        /// A package whose versions (newest first) come from `sources`
        /// (`dpkg` means the status file only); `installed` marks one.
        fn with(
            mut self,
            name: &str,
            candidate: &str,
            installed: Option<&str>,
            versions: &[(&str, &str)],
        ) -> Self {
            let mut block = format!(
                "{name}:\n  Installed: {}\n  Candidate: {candidate}\n  Version table:\n",
                installed.unwrap_or("(none)")
            );
            for (v, source) in versions {
                let mark = if Some(*v) == installed { " *** " } else { "     " };
                if *source == "dpkg" {
                    block.push_str(&format!("{mark}{v} 100\n        100 /var/lib/dpkg/status\n"));
                } else {
                    block.push_str(&format!(
                        "{mark}{v} 500\n        500 http://deb.debian.org/debian {source}/main amd64 Packages\n"
                    ));
                }
                self.show.insert(
                    format!("{name}={v}"),
                    format!(
                        "Package: {name}\nVersion: {v}\nArchitecture: amd64\nSection: libs\n\n"
                    ),
                );
            }
            self.policy.insert(name.into(), block);
            self
        }
    }

    /// An archive that can move on: `lists` is what apt-cache sees until
    /// `update` replaces it with `next`; `mirror` is what can be downloaded.
    struct FakeApt {
        age: Option<Duration>,
        lists: Lists,
        next: Lists,
        mirror: BTreeSet<String>,
        update_fails: bool,
        /// `name=asked` -> the version whose file apt-get produces instead.
        produces: BTreeMap<String, String>,
        calls: Vec<String>,
    }

    impl FakeApt {
        fn new(lists: Lists, next: Lists, mirror: &[&str]) -> Self {
            FakeApt {
                age: Some(Duration::from_secs(60)),
                lists,
                next,
                mirror: mirror.iter().map(|s| s.to_string()).collect(),
                update_fails: false,
                produces: BTreeMap::new(),
                calls: Vec::new(),
            }
        }

        fn downloads(&self) -> Vec<&str> {
            self.calls.iter().filter_map(|c| c.strip_prefix("download ")).collect()
        }
    }

    impl AptRunner for FakeApt {
        fn lists_age(&mut self) -> Result<Option<Duration>> {
            Ok(self.age)
        }
        fn update(&mut self) -> Result<()> {
            self.calls.push("update".into());
            if self.update_fails {
                return Err(Error::CommandFailed {
                    command: "apt-get update".into(),
                    status: "exit status: 100".into(),
                    log: Some(self.log()),
                });
            }
            self.lists = self.next.clone();
            self.age = Some(Duration::ZERO);
            Ok(())
        }
        fn policy(&mut self, names: &[String]) -> Result<String> {
            self.calls.push(format!("policy {}", names.join(" ")));
            Ok(names.iter().filter_map(|n| self.lists.policy.get(n).cloned()).collect())
        }
        fn show(&mut self, specs: &[String]) -> Result<String> {
            Ok(specs.iter().filter_map(|s| self.lists.show.get(s).cloned()).collect())
        }
        fn download(&mut self, specs: &[String], dir: &Path) -> Result<Result<(), String>> {
            self.calls.push(format!("download {}", specs.join(" ")));
            // Like apt-get: an unknown version fails the whole command first.
            if let Some(s) = specs.iter().find(|s| !self.mirror.contains(*s)) {
                let (n, v) = s.split_once('=').unwrap();
                return Ok(Err(format!(
                    "E: Can't find a source to download version '{v}' of '{n}:amd64'"
                )));
            }
            for s in specs {
                let (n, v) = s.split_once('=').unwrap();
                let v = self.produces.get(s).map_or(v, String::as_str);
                fs::write(dir.join(deb_file_name(n, v, "amd64")), s.as_bytes()).unwrap();
            }
            Ok(Ok(()))
        }
        fn log(&self) -> PathBuf {
            PathBuf::from("target/xen-cache/logs/apt.log")
        }
    }

    fn run(apt: &mut FakeApt, dir: &Path, names: &[&str]) -> (Result<Fetched>, Vec<String>) {
        let mut notes = Vec::new();
        let r = fetch(apt, dir, &mut |r| r.require(names), &mut |n| notes.push(n));
        (r, notes)
    }

    fn versions(f: &Fetched) -> Vec<String> {
        f.debs.iter().map(|d| format!("{}={}", d.package.name, d.package.version)).collect()
    }

    /// The archive on the day of the bug report: lists say `+b2` and
    /// `3.0.20`; the mirror has moved on to `+b3` and `3.0.22`.
    fn moved_archive() -> FakeApt {
        let old = Lists::default()
            .with(
                "qemu-system-xen",
                "1:7.2+dfsg-7+deb12u18+b2",
                None,
                &[("1:7.2+dfsg-7+deb12u18+b2", "bookworm")],
            )
            .with(
                "libssl3",
                "3.0.20-1~deb12u1",
                None,
                &[("3.0.20-1~deb12u1", "bookworm-security")],
            );
        let new = Lists::default()
            .with(
                "qemu-system-xen",
                "1:7.2+dfsg-7+deb12u18+b3",
                None,
                &[("1:7.2+dfsg-7+deb12u18+b3", "bookworm")],
            )
            .with(
                "libssl3",
                "3.0.22-1~deb12u2",
                None,
                &[("3.0.22-1~deb12u2", "bookworm-security")],
            );
        FakeApt::new(
            old,
            new,
            &["qemu-system-xen=1:7.2+dfsg-7+deb12u18+b3", "libssl3=3.0.22-1~deb12u2"],
        )
    }

    #[test]
    fn a_vanished_pin_is_resolved_again_after_update_and_the_new_version_downloaded() {
        let t = TestDir::new("vanished");
        let mut apt = moved_archive();
        let (r, notes) = run(&mut apt, &t.path("debs"), &["qemu-system-xen", "libssl3"]);
        let f = r.unwrap();
        assert_eq!(
            versions(&f),
            ["qemu-system-xen=1:7.2+dfsg-7+deb12u18+b3", "libssl3=3.0.22-1~deb12u2"]
        );
        assert_eq!(f.downloaded, 2);
        assert_eq!(
            apt.calls,
            [
                "policy qemu-system-xen libssl3",
                "download qemu-system-xen=1:7.2+dfsg-7+deb12u18+b2 libssl3=3.0.20-1~deb12u1",
                "update",
                "policy qemu-system-xen libssl3",
                "download qemu-system-xen=1:7.2+dfsg-7+deb12u18+b3 libssl3=3.0.22-1~deb12u2",
            ]
        );
        assert!(t.path("debs/qemu-system-xen_1%3a7.2+dfsg-7+deb12u18+b3_amd64.deb").is_file());
        assert!(
            notes.iter().any(|n| n.contains("Can't find a source") && n.contains("apt-get update")),
            "{notes:?}"
        );
        assert!(!t.path("debs.partial").exists(), "the staging directory is gone");
    }

    #[test]
    fn a_download_failing_again_after_update_names_the_packages_and_the_log() {
        let t = TestDir::new("gone");
        let mut apt = moved_archive();
        apt.mirror.clear();
        let (r, _) = run(&mut apt, &t.path("debs"), &["qemu-system-xen", "libssl3"]);
        let e = r.unwrap_err();
        let Error::AptDownload { asked, said, log } = &e else { panic!("{e}") };
        assert_eq!(
            asked,
            &["qemu-system-xen=1:7.2+dfsg-7+deb12u18+b3", "libssl3=3.0.22-1~deb12u2"]
        );
        assert!(said.contains("Can't find a source"), "{said}");
        assert!(log.ends_with("apt.log"));
        assert_eq!(apt.calls.iter().filter(|c| *c == "update").count(), 1, "{:?}", apt.calls);
        assert_eq!(apt.downloads().len(), 2);
        assert!(e.hint().contains("apt-get update"), "{}", e.hint());
    }

    #[test]
    fn an_installed_version_offered_by_no_source_is_never_pinned() {
        // The lists predate the host's libpcre2-8-0 10.42-1+deb12u1, so apt's
        // candidate is that installed version; only 10.42-1 can be downloaded.
        let lists = Lists::default().with(
            "libpcre2-8-0",
            "10.42-1+deb12u1",
            Some("10.42-1+deb12u1"),
            &[("10.42-1+deb12u1", "dpkg"), ("10.42-1", "bookworm")],
        );
        let t = TestDir::new("installed");
        let mut apt = FakeApt::new(lists.clone(), lists, &["libpcre2-8-0=10.42-1"]);
        let (r, notes) = run(&mut apt, &t.path("debs"), &["libpcre2-8-0"]);
        assert_eq!(versions(&r.unwrap()), ["libpcre2-8-0=10.42-1"]);
        assert_eq!(apt.downloads(), ["libpcre2-8-0=10.42-1"]);
        assert!(
            notes.iter().any(|n| n.contains("offered by no source; taking 10.42-1")),
            "{notes:?}"
        );
    }

    #[test]
    fn missing_lists_are_updated_before_anything_is_resolved() {
        // A fresh machine: apt knows only what is installed.
        let before = Lists::default().with(
            "libpcre2-8-0",
            "10.42-1+deb12u1",
            Some("10.42-1+deb12u1"),
            &[("10.42-1+deb12u1", "dpkg")],
        );
        let after = Lists::default().with(
            "libpcre2-8-0",
            "10.42-1+deb12u2",
            Some("10.42-1+deb12u1"),
            &[("10.42-1+deb12u2", "bookworm-security"), ("10.42-1+deb12u1", "dpkg")],
        );
        let t = TestDir::new("nolists");
        let mut apt = FakeApt::new(before, after, &["libpcre2-8-0=10.42-1+deb12u2"]);
        apt.age = None;
        let (r, _) = run(&mut apt, &t.path("debs"), &["libpcre2-8-0"]);
        assert_eq!(versions(&r.unwrap()), ["libpcre2-8-0=10.42-1+deb12u2"]);
        assert_eq!(apt.calls[0], "update");
    }

    #[test]
    fn old_lists_are_updated_first_and_a_failed_update_only_leaves_a_note() {
        let t = TestDir::new("old");
        let mut apt = moved_archive();
        apt.age = Some(LISTS_MAX_AGE * 2);
        let (r, _) = run(&mut apt, &t.path("debs"), &["qemu-system-xen", "libssl3"]);
        assert_eq!(apt.calls[0], "update");
        assert_eq!(apt.downloads().len(), 1, "fresh lists: the first download works");
        assert_eq!(r.unwrap().downloaded, 2);

        let t = TestDir::new("old-offline");
        let mut apt = moved_archive();
        apt.age = Some(LISTS_MAX_AGE * 2);
        apt.update_fails = true;
        apt.mirror.insert("qemu-system-xen=1:7.2+dfsg-7+deb12u18+b2".into());
        apt.mirror.insert("libssl3=3.0.20-1~deb12u1".into());
        let (r, notes) = run(&mut apt, &t.path("debs"), &["qemu-system-xen"]);
        assert_eq!(versions(&r.unwrap()), ["qemu-system-xen=1:7.2+dfsg-7+deb12u18+b2"]);
        assert!(
            notes.iter().any(|n| n.contains("going on with the lists as they are")),
            "{notes:?}"
        );
    }

    #[test]
    fn a_package_the_lists_do_not_offer_is_looked_up_again_after_update() {
        let t = TestDir::new("unknown");
        let mut apt = moved_archive();
        apt.lists = Lists::default();
        let (r, _) = run(&mut apt, &t.path("debs"), &["qemu-system-xen"]);
        assert_eq!(versions(&r.unwrap()), ["qemu-system-xen=1:7.2+dfsg-7+deb12u18+b3"]);
        assert_eq!(apt.calls[..2], ["policy qemu-system-xen", "update"]);
    }

    #[test]
    fn the_cache_is_keyed_by_the_file_apt_get_produced_not_by_the_version_asked() {
        let t = TestDir::new("keyed");
        let lists = Lists::default().with("seabios", "1.16.2-1", None, &[("1.16.2-1", "bookworm")]);
        let mut apt = FakeApt::new(lists, Lists::default(), &["seabios=1.16.2-1"]);
        apt.produces.insert("seabios=1.16.2-1".into(), "1.16.2-1+b1".into());
        let (r, notes) = run(&mut apt, &t.path("debs"), &["seabios"]);
        let f = r.unwrap();
        assert_eq!(f.debs[0].file, "seabios_1.16.2-1+b1_amd64.deb");
        assert_eq!(f.debs[0].package.version, "1.16.2-1+b1");
        assert!(notes.iter().any(|n| n.contains("fetched 1.16.2-1+b1")), "{notes:?}");

        // The next run's lists name the version that file holds: nothing to download.
        apt.lists =
            Lists::default().with("seabios", "1.16.2-1+b1", None, &[("1.16.2-1+b1", "bookworm")]);
        apt.calls.clear();
        let (r, _) = run(&mut apt, &t.path("debs"), &["seabios"]);
        let f = r.unwrap();
        assert_eq!((f.downloaded, f.debs[0].file.as_str()), (0, "seabios_1.16.2-1+b1_amd64.deb"));
        assert!(apt.downloads().is_empty());
    }

    #[test]
    fn a_second_run_with_the_same_lists_downloads_nothing() {
        let t = TestDir::new("warm");
        let mut apt = moved_archive();
        let _ = run(&mut apt, &t.path("debs"), &["qemu-system-xen", "libssl3"]).0.unwrap();
        apt.calls.clear();
        let f = run(&mut apt, &t.path("debs"), &["qemu-system-xen", "libssl3"]).0.unwrap();
        assert_eq!((f.downloaded, f.bytes), (0, 0));
        assert_eq!(apt.calls, ["policy qemu-system-xen libssl3"]);
    }
}
