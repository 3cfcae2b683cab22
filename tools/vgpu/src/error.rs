//! What `vgpu` reports when it cannot do what it was asked: each error says
//! what was wrong, with which value, and what to do next.

use std::fmt;
use std::time::Duration;

use crate::slice::Slice;

/// A failed command. [`Error::exit_code`] is 2 for usage errors, else 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The command line was wrong; the text says how.
    Usage(String),
    /// xenstored refused or failed a request (`what` names the request and path).
    Xenstore {
        /// The request and its path, e.g. `writing /local/domain/1/...`.
        what: String,
        /// What xenstored or the transport said.
        cause: String,
        /// `EAGAIN`: the transaction must be redone.
        again: bool,
        /// `EACCES`: not enough privilege.
        denied: bool,
    },
    /// xenstored did not answer a request in time.
    NoAnswer {
        /// The request and its path.
        what: String,
        /// How long we waited.
        waited: Duration,
    },
    /// No domain matches `spec`.
    NoSuchDomain {
        /// `guest` or `backend`.
        role: &'static str,
        /// What the user gave.
        spec: String,
        /// The running domains, `name (domid N)`.
        known: Vec<String>,
    },
    /// More than one domain has this name.
    AmbiguousName {
        /// The name.
        name: String,
        /// The domids carrying it.
        domids: Vec<u16>,
    },
    /// Guest and backend are the same domain.
    SelfAttach {
        /// The domain.
        domain: String,
    },
    /// The device exists already (`path` is the directory found).
    DeviceExists {
        /// `name (domid N)` of the guest.
        guest: String,
        /// The guest as given on the command line.
        spec: String,
        /// The device id.
        devid: u32,
        /// The directory that exists.
        path: String,
    },
    /// No such device to detach.
    NoDevice {
        /// `name (domid N)` of the guest.
        guest: String,
        /// The device id.
        devid: u32,
        /// Where we looked.
        looked: String,
    },
    /// The device is attached to several backends and none was named.
    SeveralBackends {
        /// `name (domid N)` of each backend.
        backends: Vec<String>,
    },
    /// The explicit slice overlaps a slice already attached.
    Overlap {
        /// The slice asked for.
        wanted: Slice,
        /// The other device, `guest1 (domid 5) vgpu 0`.
        other: String,
        /// Its slice.
        theirs: Slice,
    },
    /// The slice does not fit in the GGTT the backend manages.
    OutOfRange {
        /// The slice asked for.
        wanted: Slice,
        /// The GGTT size.
        total: u32,
    },
    /// No free range of the asked length is left.
    NoRoom {
        /// Entries asked for.
        len: u32,
        /// The GGTT size.
        total: u32,
        /// The largest free range.
        largest_free: u32,
    },
    /// The limits do not fit in what the backend has left.
    DoesNotFit {
        /// The pool (`gpuif::keys::POOLS`).
        pool: &'static str,
        /// What the limits take from it.
        requested: u64,
        /// What is left.
        free: u64,
        /// The backend's capacity.
        capacity: u64,
        /// Devices holding the rest.
        holders: u32,
        /// The backend, `gpu-dom (domid 1)`.
        backend: String,
    },
    /// A node that must hold a number holds something else.
    BadValue {
        /// The node.
        path: String,
        /// What it holds.
        value: String,
    },
    /// The transaction kept conflicting with other writers.
    Contention {
        /// Attempts made.
        tries: u32,
    },
    /// A bounded wait ran out.
    Timeout {
        /// What we waited for.
        what: String,
        /// The bound that ran out.
        waited: Duration,
        /// Where the device is stuck, e.g. `frontend Initialising, backend InitWait`.
        stuck: String,
        /// What to do next.
        hint: String,
    },
    /// An end moved to Closing or Closed while we waited for Connected.
    Closed {
        /// What we waited for.
        what: String,
        /// The states, e.g. `frontend Initialised, backend Closed`.
        stuck: String,
        /// What to do next.
        hint: String,
    },
    /// The device disappeared while we waited for it.
    Vanished {
        /// What we waited for.
        what: String,
    },
    /// `vgpu supervise` stopped re-creating a domain that keeps dying at boot.
    GaveUp {
        /// The domain's name.
        name: String,
        /// Deaths (or failed creations) in a row.
        deaths: u32,
        /// Each within this long of its creation.
        window: Duration,
        /// The last one, said.
        last: String,
    },
}

impl Error {
    /// The process exit code: 2 for usage errors, 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => 2,
            _ => 1,
        }
    }
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(text) => write!(f, "{text}"),
            Error::Xenstore { what, cause, denied, .. } => {
                write!(f, "{what}: {cause}")?;
                if *denied {
                    write!(f, "; run vgpu as root in dom0 (the toolstack domain)")?;
                }
                Ok(())
            }
            Error::NoAnswer { what, waited } => write!(
                f,
                "{what}: xenstored did not answer within {}; is it running? (`systemctl status xenstored`)",
                secs(*waited)
            ),
            Error::NoSuchDomain { role, spec, known } => {
                write!(f, "no domain '{spec}' to use as {role}")?;
                if known.is_empty() {
                    write!(f, " (no domain found under /local/domain)")?;
                } else {
                    write!(f, " (running: {})", known.join(", "))?;
                }
                match *role {
                    "backend" => write!(
                        f,
                        "; start gpu-dom first (`xl create gpu-dom.cfg`) or name it with --backend"
                    ),
                    _ => write!(f, "; `xl list` shows the domains, by name and domid"),
                }
            }
            Error::AmbiguousName { name, domids } => {
                let ids: Vec<String> = domids.iter().map(|d| d.to_string()).collect();
                write!(
                    f,
                    "domain name '{name}' is ambiguous (domids {}); give the domid instead",
                    ids.join(", ")
                )
            }
            Error::SelfAttach { domain } => write!(
                f,
                "{domain} cannot be its own vgpu frontend: the guest and the backend must be different domains"
            ),
            Error::DeviceExists { guest, spec, devid, path } => write!(
                f,
                "{guest} already has vgpu {devid} ({path} exists); run `vgpu detach {spec} --devid {devid}` first, or pick another --devid"
            ),
            Error::NoDevice { guest, devid, looked } => write!(
                f,
                "{guest} has no vgpu {devid} (looked at {looked}); `vgpu list` shows the attached devices"
            ),
            Error::SeveralBackends { backends } => write!(
                f,
                "the device is attached to several backends ({}); name one with --backend",
                backends.join(", ")
            ),
            Error::Overlap { wanted, other, theirs } => write!(
                f,
                "GGTT slice {wanted} overlaps {theirs} of {other}; choose another --ggtt-base, or omit it to place the slice automatically"
            ),
            Error::OutOfRange { wanted, total } => write!(
                f,
                "GGTT slice {wanted} ends past the {total} entries the backend manages; lower --ggtt-base or --ggtt-entries"
            ),
            Error::NoRoom { len, total, largest_free } => write!(
                f,
                "no free GGTT range of {len} entries is left (the backend manages {total}; the largest free range has {largest_free}); \
                 detach a guest or lower --ggtt-entries"
            ),
            Error::DoesNotFit { pool, requested, free, capacity, holders, backend } => {
                write!(
                    f,
                    "does not fit: {requested} {pool} asked, but {backend} has {free} of {capacity} free \
                     ({holders} device(s) hold the rest); "
                )?;
                match (crate::pools::option_of(pool), *free) {
                    ("", _) | (_, 0) => write!(f, "detach a guest first (`vgpu list` shows the pools)"),
                    (opt, n) => write!(f, "ask for less ({opt} {n}) or detach a guest (`vgpu list` shows the pools)"),
                }
            }
            Error::BadValue { path, value } => write!(
                f,
                "{path} holds '{value}', not a decimal number; fix it or detach that device"
            ),
            Error::Contention { tries } => write!(
                f,
                "xenstore kept changing under the transaction ({tries} attempts ended in EAGAIN); try again"
            ),
            Error::Timeout { what, waited, stuck, hint } => {
                write!(f, "{what}: still {stuck} after {}; {hint}", secs(*waited))
            }
            Error::Closed { what, stuck, hint } => write!(f, "{what}: {stuck}; {hint}"),
            Error::Vanished { what } => {
                write!(f, "{what}: the device directory was removed meanwhile (by gpu-dom or another toolstack command)")
            }
            Error::GaveUp { name, deaths, window, last } => write!(
                f,
                "{name} died {deaths} times in a row within {} of being created (last: {last}); not re-creating it again: read why in its console log (/var/log/xen/console/guest-{name}.log) and `xl dmesg`, fix it, then restart the supervisor (`systemctl restart vgpu-supervise@{name}`)",
                secs(*window)
            ),
        }
    }
}

impl std::error::Error for Error {}
