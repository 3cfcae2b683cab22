//! `vgpu attach`: create a device in one transaction, libxl style, and
//! optionally wait for both ends to connect.

use std::time::Duration;

use gpuif::keys::default_limits;
use xenbus::{DomId, TxId, XenbusState};

use crate::domains::{self, Domain, Gone};
use crate::error::Error;
use crate::layout::{self, Device, Limits, DEFAULT_GGTT_TOTAL};
use crate::pools;
use crate::record::Record;
use crate::slice::{self, Refused, Slice};
use crate::store::{Bounded, Store, Waited};

/// Most PPGTT contexts one guest may have (gtt's `MAX_CONTEXTS_PER_GUEST`).
pub const MAX_CONTEXTS: u32 = 16;

/// What `vgpu attach` was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachArgs {
    /// The guest, by name or domid.
    pub guest: String,
    /// The backend domain, by name or domid.
    pub backend: String,
    /// The device id.
    pub devid: u32,
    /// An explicit slice base; `None` places the slice automatically.
    pub ggtt_base: Option<u32>,
    /// Entries in the slice.
    pub ggtt_entries: u32,
    /// PPGTT contexts (at most [`MAX_CONTEXTS`]).
    pub contexts: u32,
    /// Grant-mapped pages at once.
    pub max_pages: u32,
    /// PPGTT table pages at once.
    pub max_table_pages: u32,
    /// Wait this long for both ends to connect.
    pub wait: Option<Duration>,
}

impl AttachArgs {
    /// The defaults of the command line, for `guest`.
    pub fn new(guest: &str) -> AttachArgs {
        AttachArgs {
            guest: guest.to_string(),
            backend: "gpu-dom".to_string(),
            devid: 0,
            ggtt_base: None,
            ggtt_entries: default_limits::GGTT_ENTRIES,
            contexts: default_limits::CONTEXTS,
            max_pages: default_limits::MAX_PAGES,
            max_table_pages: default_limits::MAX_TABLE_PAGES,
            wait: None,
        }
    }
}

/// What `vgpu attach` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attached {
    /// The guest.
    pub guest: Domain,
    /// The backend domain.
    pub backend: Domain,
    /// The device created.
    pub device: Device,
    /// The limits written.
    pub limits: Limits,
    /// Transaction attempts (more than 1: EAGAIN was retried).
    pub attempts: u32,
    /// Details for `--verbose`.
    pub notes: Vec<String>,
    /// What the user must know in any case.
    pub warnings: Vec<String>,
}

impl Attached {
    /// The line `vgpu attach` prints.
    pub fn summary(&self) -> String {
        let l = &self.limits;
        format!(
            "attached {} to {} as vgpu {}: GGTT slice {}, {} contexts, {} pages, {} table pages",
            self.guest,
            self.backend,
            self.device.devid,
            l.slice,
            l.max_contexts,
            l.max_pages,
            l.max_table_pages
        )
    }
}

/// The device a slice belongs to: guest domid and devid.
pub type Owner = (DomId, u32);

/// The slices attached to `backend`, with their owners (guest domid, devid).
/// Devices without both slice limits are skipped (gpu-dom refuses them).
pub fn attached_slices<T: Bounded>(
    xs: &mut Store<T>,
    tx: TxId,
    backend: DomId,
) -> Result<Vec<(Slice, Owner)>, Error> {
    let mut out = Vec::new();
    let root = layout::backend_root(backend);
    for fe in xs.dir(tx, &root)?.iter().filter_map(|c| domains::parse_domid(c)) {
        for devid in
            xs.dir(tx, &format!("{root}/{fe}"))?.iter().filter_map(|d| gpuif::keys::parse_u32(d))
        {
            let dev = Device { backend, frontend: fe, devid };
            let lim = dev.limits_dir();
            let base = xs.read_u32(tx, &format!("{lim}/{}", gpuif::keys::LIMIT_GGTT_BASE))?;
            let len = xs.read_u32(tx, &format!("{lim}/{}", gpuif::keys::LIMIT_GGTT_ENTRIES))?;
            if let (Some(base), Some(len)) = (base, len) {
                out.push((Slice { base, len }, (fe, devid)));
            }
        }
    }
    Ok(out)
}

/// The GGTT size gpu-dom published, and whether it did.
pub fn ggtt_total<T: Bounded>(
    xs: &mut Store<T>,
    tx: TxId,
    backend: DomId,
) -> Result<(u32, bool), Error> {
    let path = layout::ggtt_total_path(backend);
    Ok(match xs.read_u32(tx, &path)? {
        Some(n) => (n, true),
        None => (DEFAULT_GGTT_TOTAL, false),
    })
}

fn owner_label<T: Bounded>(xs: &mut Store<T>, (dom, devid): (DomId, u32)) -> String {
    match xs.read(TxId::NONE, &format!("{}/name", domains::home(dom))) {
        Ok(Some(name)) => format!("{name} (domid {dom}) vgpu {devid}"),
        _ => format!("domain {dom} vgpu {devid}"),
    }
}

/// Creates the device described by `args`, in one transaction.
pub fn attach<T: Bounded>(xs: &mut Store<T>, args: &AttachArgs) -> Result<Attached, Error> {
    if args.contexts == 0 || args.contexts > MAX_CONTEXTS {
        return Err(Error::Usage(format!(
            "--contexts {}: must be 1..={MAX_CONTEXTS} (gpu-dom's contexts per guest)",
            args.contexts
        )));
    }
    let guest = domains::resolve(xs, &args.guest, "guest", Gone::Refuse)?;
    let backend = domains::resolve(xs, &args.backend, "backend", Gone::Refuse)?;
    if guest.id == backend.id {
        return Err(Error::SelfAttach { domain: guest.to_string() });
    }
    let device = Device { backend: backend.id, frontend: guest.id, devid: args.devid };
    let plan = Plan { args, guest, backend, device };
    let ((limits, total_note), attempts) = xs.transact(|xs, tx| {
        plan.check_free(xs, tx)?;
        let (limits, total_note) = plan.admit(xs, tx)?;
        plan.write(xs, tx, limits)?;
        Ok((limits, total_note))
    })?;
    let mut notes: Vec<String> = total_note.into_iter().collect();
    if args.ggtt_base.is_none() {
        notes.push(format!("placed the slice at the lowest free base: {}", limits.slice));
    }
    if attempts > 1 {
        notes.push(format!("the transaction was redone {} times (EAGAIN)", attempts - 1));
    }
    let mut warnings = Vec::new();
    if plan.guest.id == 0 {
        warnings.push(
            "the guest is dom0: dom0 is the toolstack and owns the limits, so this guest can \
             change its own limits; gpu-dom must trust a dom0 frontend for that"
                .to_string(),
        );
    }
    let Plan { guest, backend, device, .. } = plan;
    Ok(Attached { guest, backend, device, limits, attempts, notes, warnings })
}

/// One attach, inside its transaction (which may run more than once).
struct Plan<'a> {
    args: &'a AttachArgs,
    guest: Domain,
    backend: Domain,
    device: Device,
}

impl Plan<'_> {
    /// Both domains still exist and the device does not, yet.
    fn check_free<T: Bounded>(&self, xs: &mut Store<T>, tx: TxId) -> Result<(), Error> {
        for dom in [&self.guest, &self.backend] {
            if !xs.exists(tx, &domains::home(dom.id))? {
                let role = if dom.id == self.guest.id { "guest" } else { "backend" };
                return Err(Error::NoSuchDomain { role, spec: dom.to_string(), known: vec![] });
            }
        }
        for path in [self.device.backend_dir(), self.device.frontend_dir()] {
            if xs.exists(tx, &path)? {
                return Err(Error::DeviceExists {
                    guest: self.guest.to_string(),
                    spec: self.args.guest.clone(),
                    devid: self.args.devid,
                    path,
                });
            }
        }
        Ok(())
    }

    /// The guest's limits, with its slice placed, if they fit in what the
    /// backend has left (admission, before anything is written); and a note
    /// when the backend has not published its GGTT size.
    fn admit<T: Bounded>(
        &self,
        xs: &mut Store<T>,
        tx: TxId,
    ) -> Result<(Limits, Option<String>), Error> {
        let (args, backend) = (self.args, &self.backend);
        let (total, published) = ggtt_total(xs, tx, backend.id)?;
        let attached = attached_slices(xs, tx, backend.id)?;
        let slice = place(xs, args, total, &attached)?;
        let limits = Limits {
            slice,
            max_contexts: args.contexts,
            max_pages: args.max_pages,
            max_table_pages: args.max_table_pages,
        };
        pools::check(&pools::read(xs, tx, backend.id)?, &limits, &backend.to_string())?;
        let note = (!published).then(|| {
            format!(
                "{backend} has not published {}; assumed a GGTT of {total} entries",
                layout::ggtt_total_path(backend.id)
            )
        });
        Ok((limits, note))
    }

    /// Writes the device's nodes, the guest's name and the toolstack's record.
    fn write<T: Bounded>(&self, xs: &mut Store<T>, tx: TxId, limits: Limits) -> Result<(), Error> {
        for node in self.device.nodes(&limits) {
            match &node.value {
                None => xs.mkdir(tx, &node.path)?,
                Some(v) => xs.write(tx, &node.path, v)?,
            }
            xs.set_perms(tx, &node.path, &node.perms)?;
        }
        // The guest's name, for gpu-dom's metrics (it cannot read the
        // guest's own `name`).
        if let Some(name) = &self.guest.name {
            let path = format!("{}/{}", self.device.backend_dir(), gpuif::keys::GUEST_NAME);
            xs.write(tx, &path, name)?;
            xs.set_perms(tx, &path, &self.device.backend_perms())?;
        }
        // The toolstack's own copy, for `vgpu restore` after gpu-dom died.
        let record = Record {
            guest: self.guest.id,
            devid: self.args.devid,
            backend_name: self.backend.label(),
            backend_id: self.backend.id,
            limits,
        };
        record.write(xs, tx)
    }
}

fn place<T: Bounded>(
    xs: &mut Store<T>,
    args: &AttachArgs,
    total: u32,
    attached: &[(Slice, Owner)],
) -> Result<Slice, Error> {
    let result = match args.ggtt_base {
        Some(base) => {
            let wanted = Slice { base, len: args.ggtt_entries };
            slice::check(wanted, total, attached).map(|()| wanted)
        }
        None => slice::place_lowest(args.ggtt_entries, total, attached),
    };
    let wanted = Slice { base: args.ggtt_base.unwrap_or(0), len: args.ggtt_entries };
    result.map_err(|refused| match refused {
        Refused::OutOfRange => Error::OutOfRange { wanted, total },
        Refused::Overlaps(theirs, owner) => {
            Error::Overlap { wanted, other: owner_label(xs, *owner), theirs }
        }
        Refused::NoRoom { largest_free } => {
            Error::NoRoom { len: args.ggtt_entries, total, largest_free }
        }
    })
}

/// A state node's value for a person: the state's name, `absent`, or the raw value.
pub fn state_name(value: Option<&str>) -> String {
    match value {
        None => "absent".to_string(),
        Some(v) => match XenbusState::parse(v.as_bytes()) {
            Ok(s) => s.to_string(),
            Err(_) => format!("'{v}'"),
        },
    }
}

/// Both ends' states, read now: `(frontend, backend)`; `None` for absent.
fn states<T: Bounded>(
    xs: &mut Store<T>,
    dev: &Device,
) -> Result<(Option<String>, Option<String>), Error> {
    Ok((xs.read(TxId::NONE, &dev.frontend_state())?, xs.read(TxId::NONE, &dev.backend_state())?))
}

fn is(value: &Option<String>, state: XenbusState) -> bool {
    value.as_deref().and_then(|v| XenbusState::parse(v.as_bytes()).ok()) == Some(state)
}

/// Waits until both ends are Connected; returns how long that took.
pub fn wait_connected<T: Bounded>(
    xs: &mut Store<T>,
    done: &Attached,
    timeout: Duration,
) -> Result<Duration, Error> {
    let dev = done.device;
    let what = format!("vgpu {} of {} did not connect", dev.devid, done.guest);
    let (fe, be) = (dev.frontend_state(), dev.backend_state());
    let waited = xs.wait_for(&[&fe, &be], timeout, |xs| {
        if !xs.exists(TxId::NONE, &dev.backend_dir())? {
            return Ok(Some(Err(Error::Vanished { what: what.clone() })));
        }
        let (f, b) = states(xs, &dev)?;
        if is(&f, XenbusState::Connected) && is(&b, XenbusState::Connected) {
            return Ok(Some(Ok(())));
        }
        let closing =
            |s: &Option<String>| is(s, XenbusState::Closing) || is(s, XenbusState::Closed);
        if closing(&b) || closing(&f) {
            return Ok(Some(Err(Error::Closed {
                what: format!(
                    "vgpu {} of {} is being closed instead of connecting",
                    dev.devid, done.guest
                ),
                stuck: describe(&f, &b),
                hint: format!(
                    "{} refused or closed it; its console says why (`xl console {}`)",
                    done.backend,
                    done.backend.label()
                ),
            })));
        }
        Ok(None)
    })?;
    match waited {
        Waited::Done(Ok(()), took) => Ok(took),
        Waited::Done(Err(e), _) => Err(e),
        Waited::TimedOut(_) => {
            let (f, b) = states(xs, &dev)?;
            let hint = if is(&b, XenbusState::Initialising) || b.is_none() {
                format!(
                    "{} has not taken the device up: is gpu-dom running and watching backend/vgpu? (`xl console {}`)",
                    done.backend,
                    done.backend.label()
                )
            } else if !is(&f, XenbusState::Connected) {
                format!(
                    "the vgpu frontend in {} has not connected: is its driver started in the guest?",
                    done.guest
                )
            } else {
                format!(
                    "see `xl console {}` for why the backend did not connect",
                    done.backend.label()
                )
            };
            Err(Error::Timeout { what, waited: timeout, stuck: describe(&f, &b), hint })
        }
    }
}

/// `frontend Initialising, backend InitWait`.
pub fn describe(frontend: &Option<String>, backend: &Option<String>) -> String {
    format!(
        "frontend {}, backend {}",
        state_name(frontend.as_deref()),
        state_name(backend.as_deref())
    )
}
