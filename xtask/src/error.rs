//! The xtask's typed errors. Each says what went wrong and with which value;
//! [`Error::hint`] says what to do next and [`Error::log`] where to look.

use crate::formats::elf::ElfError;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug)]
pub enum Error {
    /// A file-system operation failed.
    Io { action: String, path: PathBuf, source: io::Error },
    /// A program could not be started at all.
    Spawn { program: String, source: io::Error },
    /// A program ran and failed.
    CommandFailed { command: String, status: String, log: Option<PathBuf> },
    /// A program did not finish in time and was killed.
    CommandTimeout { command: String, after: Duration, log: Option<PathBuf> },
    /// Host packages are missing and we may not install them.
    NotRoot { packages: Vec<String> },
    /// apt knows no package of that name (even after `apt-get update`).
    PackageUnknown { package: String },
    /// A package is missing something the xtask relies on.
    PackageContent { package: String, what: String },
    /// `apt-get download` failed again after `apt-get update` and resolving
    /// again from the new lists.
    AptDownload { asked: Vec<String>, said: String, log: PathBuf },
    /// `apt-get download` succeeded but the expected `.deb` is not there.
    DownloadMissing { package: String, expected: PathBuf, log: PathBuf },
    /// An ELF file could not be read.
    Elf { path: PathBuf, source: ElfError },
    /// The built image cannot be booted by Xen as a PVH kernel.
    NotPvhImage { path: PathBuf, reason: String },
    /// A shared library needed by a dom0 program was found nowhere.
    MissingLibrary { soname: String, needed_by: String, searched: Vec<PathBuf> },
    /// A kernel module could not be found or read.
    KernelModule { module: String, reason: String },
    /// A QEMU multiboot module argument contains a comma (QEMU splits on commas).
    CommaInModule { module: String },
    /// The xl config could not be turned into the one used in the initramfs.
    XlConfig { path: PathBuf, reason: String },
    /// A boot stage did not pass.
    Boot { stage: String, reason: String, log: PathBuf, hint: String },
    /// A failure inside a numbered step.
    Step { tag: &'static str, index: usize, total: usize, what: String, source: Box<Error> },
}

impl Error {
    pub fn io(action: impl Into<String>, path: impl AsRef<Path>, source: io::Error) -> Self {
        Error::Io { action: action.into(), path: path.as_ref().to_path_buf(), source }
    }

    /// The log file that shows more, if any.
    pub fn log(&self) -> Option<&Path> {
        match self {
            Error::CommandFailed { log, .. } | Error::CommandTimeout { log, .. } => log.as_deref(),
            Error::DownloadMissing { log, .. }
            | Error::AptDownload { log, .. }
            | Error::Boot { log, .. } => Some(log),
            Error::Step { source, .. } => source.log(),
            _ => None,
        }
    }

    /// Whether the end of [`Error::log`] says more than the message (a
    /// command's own output, rather than a serial log already summarised).
    pub fn log_tail_helps(&self) -> bool {
        match self {
            Error::CommandFailed { .. } | Error::CommandTimeout { .. } => true,
            Error::AptDownload { .. } => true,
            Error::Step { source, .. } => source.log_tail_helps(),
            _ => false,
        }
    }

    /// What to do next.
    pub fn hint(&self) -> String {
        match self {
            Error::Io { .. } => "check that the path exists, its permissions, and free space under target/".into(),
            Error::Spawn { program, .. } => format!("install `{program}` or put it on PATH"),
            Error::CommandFailed { log: Some(_), .. } => "read the log (its end is shown above), fix the cause and rerun".into(),
            Error::CommandFailed { log: None, .. } => "fix the cause printed above and rerun".into(),
            Error::CommandTimeout { .. } => {
                "rerun; if it hangs again, run the command by hand to see where it stops".into()
            }
            Error::NotRoot { packages } => {
                format!("run as root, or install them first: apt-get install -y {}", packages.join(" "))
            }
            Error::PackageUnknown { .. } => {
                "the xtask expects Debian 12 (bookworm) apt sources; check /etc/apt/sources.list* and run `apt-get update`".into()
            }
            Error::PackageContent { .. } => {
                "the Debian package layout changed: update xtask/src/dom0.rs (or delete target/xen-cache and retry)".into()
            }
            Error::AptDownload { .. } => {
                "check that the apt sources (/etc/apt/sources.list, /etc/apt/sources.list.d/) are reachable: run `apt-get update` and `apt-cache policy <package>` by hand, then rerun".into()
            }
            Error::DownloadMissing { .. } => "delete target/xen-cache/debs and retry".into(),
            Error::Elf { .. } => "delete target/xen-cache/unpacked (a truncated unpack?) and retry".into(),
            Error::NotPvhImage { .. } => {
                "the image must carry the Xen PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY); see unikernel/ boot code".into()
            }
            Error::MissingLibrary { .. } => {
                "add the Debian package that ships it to the dom0 package list in xtask/src/dom0.rs".into()
            }
            Error::KernelModule { .. } => {
                "check the Debian kernel's modules.order / modules.builtin; update the module list in xtask/src/dom0.rs".into()
            }
            Error::CommaInModule { .. } => "remove the comma from the module's arguments".into(),
            Error::XlConfig { .. } => "fix xl-configs/gpu-dom.cfg: it needs one top-level `kernel = \"...\"` line".into(),
            Error::Boot { hint, .. } => hint.clone(),
            Error::Step { source, .. } => source.hint(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { action, path, source } => {
                write!(f, "{action} {}: {source}", path.display())
            }
            Error::Spawn { program, source } => write!(f, "cannot run `{program}`: {source}"),
            Error::CommandFailed { command, status, .. } => {
                write!(f, "`{command}` failed: {status}")
            }
            Error::CommandTimeout { command, after, .. } => {
                write!(f, "`{command}` did not finish within {} s and was killed", after.as_secs())
            }
            Error::NotRoot { packages } => {
                write!(f, "host packages missing ({}) and not running as root", packages.join(", "))
            }
            Error::PackageUnknown { package } => write!(f, "apt knows no package `{package}`"),
            Error::PackageContent { package, what } => write!(f, "package {package}: {what}"),
            Error::AptDownload { asked, said, .. } => write!(
                f,
                "`apt-get download {}` failed even after `apt-get update` and resolving again: {}",
                asked.join(" "),
                said.replace('\n', "; ")
            ),
            Error::DownloadMissing { package, expected, .. } => {
                write!(f, "downloaded {package} but {} is missing", expected.display())
            }
            Error::Elf { path, source } => write!(f, "{}: {source}", path.display()),
            Error::NotPvhImage { path, reason } => {
                write!(f, "{} is not a PVH image: {reason}", path.display())
            }
            Error::MissingLibrary { soname, needed_by, searched } => {
                let dirs: Vec<_> = searched.iter().map(|d| d.display().to_string()).collect();
                write!(f, "{soname} (needed by {needed_by}) not found in {}", dirs.join(", "))
            }
            Error::KernelModule { module, reason } => write!(f, "kernel module {module}: {reason}"),
            Error::CommaInModule { module } => {
                write!(
                    f,
                    "QEMU splits -initrd on commas, so this module cannot be passed: `{module}`"
                )
            }
            Error::XlConfig { path, reason } => write!(f, "{}: {reason}", path.display()),
            Error::Boot { stage, reason, .. } => write!(f, "{stage}: {reason}"),
            Error::Step { tag, index, total, what, source } => {
                write!(f, "[{tag}] step {index}/{total} ({what}) failed: {source}")
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } | Error::Spawn { source, .. } => Some(source),
            Error::Elf { source, .. } => Some(source),
            Error::Step { source, .. } => Some(source.as_ref()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_error_names_the_step_and_forwards_log_and_hint() {
        let inner = Error::CommandFailed {
            command: "dpkg -x a.deb out".into(),
            status: "exit status 2".into(),
            log: Some(PathBuf::from("target/xen-cache/logs/unpack.log")),
        };
        let e = Error::Step {
            tag: "boot",
            index: 4,
            total: 7,
            what: "unpacking".into(),
            source: Box::new(inner),
        };
        let text = e.to_string();
        assert!(text.contains("step 4/7 (unpacking)"), "{text}");
        assert!(text.contains("dpkg -x a.deb out"), "{text}");
        assert_eq!(e.log(), Some(Path::new("target/xen-cache/logs/unpack.log")));
        assert!(e.hint().contains("log"));
    }
}
