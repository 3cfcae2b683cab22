//! `vgpu detach`: remove a device the way libxl removes one
//! (`libxl__initiate_device_generic_remove`, then `libxl__device_destroy`).
//!
//! 1. In one transaction: backend `online = 0`, and `state = 5` (Closing)
//!    unless it is already Closed.
//! 2. Wait (watch, bounded) for the backend's `state = 6` (Closed): gpu-dom
//!    writes it only after it revoked every GPU mapping of the guest and
//!    released every grant.
//! 3. In one transaction: remove the frontend and backend directories, and
//!    their parents `device/vgpu` and `backend/vgpu/<guest>` if now empty.
//!
//! `--force` does only step 3.
//!
//! ## Invariants
//!
//! - The paths removed are computed from domids and the devid, never read
//!   from the guest-writable frontend directory (its `backend` node could
//!   name anything).
//! - Without `--force`, nothing is removed unless the backend said Closed
//!   (or removed its directory itself).

use std::time::Duration;

use xenbus::{DomId, TxId, XenbusState};

use crate::attach::state_name;
use crate::domains::{self, Domain, Gone};
use crate::error::Error;
use crate::layout::{self, Device};
use crate::record;
use crate::store::{Bounded, Store, Waited};

/// What `vgpu detach` was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetachArgs {
    /// The guest, by name or domid (a domid may name a domain already destroyed).
    pub guest: String,
    /// The backend; `None`: whichever domain has the device.
    pub backend: Option<String>,
    /// The device id.
    pub devid: u32,
    /// Remove the directories without waiting for the backend.
    pub force: bool,
    /// How long to wait for Closed.
    pub timeout: Duration,
}

impl DetachArgs {
    /// The defaults of the command line, for `guest`.
    pub fn new(guest: &str) -> DetachArgs {
        DetachArgs {
            guest: guest.to_string(),
            backend: None,
            devid: 0,
            force: false,
            timeout: Duration::from_secs(10),
        }
    }
}

/// How the device went away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    /// The backend reached Closed after this long; both directories removed.
    Closed(Duration),
    /// Removed without waiting.
    Forced,
    /// The backend directory was already gone; the frontend one was removed.
    FrontendOnly,
}

/// What `vgpu detach` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detached {
    /// The guest.
    pub guest: Domain,
    /// The backend, if a backend directory was found.
    pub backend: Option<Domain>,
    /// The device id.
    pub devid: u32,
    /// How.
    pub how: How,
}

impl Detached {
    /// The line `vgpu detach` prints.
    pub fn summary(&self) -> String {
        let (g, d) = (&self.guest, self.devid);
        let b = self.backend.as_ref().map_or_else(|| "its backend".to_string(), |b| b.to_string());
        match self.how {
            How::Closed(took) => format!(
                "detached vgpu {d} of {g} from {b}: backend Closed after {}; removed both directories",
                crate::store::took(took)
            ),
            How::Forced => format!(
                "removed vgpu {d} of {g} from {b} without waiting (--force); \
                 gpu-dom revokes every GPU mapping of the guest on its own when the directory disappears"
            ),
            How::FrontendOnly => format!(
                "vgpu {d} of {g} had no backend directory left; removed its frontend directory"
            ),
        }
    }
}

/// Finds the backend domain holding `guest`'s `devid`.
fn find_backend<T: Bounded>(
    xs: &mut Store<T>,
    args: &DetachArgs,
    guest: DomId,
) -> Result<Option<Domain>, Error> {
    if let Some(spec) = &args.backend {
        return domains::resolve(xs, spec, "backend", Gone::Accept).map(Some);
    }
    let mut found = Vec::new();
    for dom in domains::list(xs)? {
        let dev = Device { backend: dom.id, frontend: guest, devid: args.devid };
        if xs.exists(TxId::NONE, &dev.backend_dir())? {
            found.push(dom);
        }
    }
    match found.len() {
        0 => Ok(None),
        1 => Ok(found.pop()),
        _ => {
            Err(Error::SeveralBackends { backends: found.iter().map(|d| d.to_string()).collect() })
        }
    }
}

/// Removes both directories and their parents if empty, in transaction `tx`.
fn remove<T: Bounded>(
    xs: &mut Store<T>,
    tx: TxId,
    dev: &Device,
    backend: bool,
) -> Result<(), Error> {
    let fe = dev.frontend_dir();
    xs.rm(tx, &fe)?;
    xs.rm_if_empty(
        tx,
        &format!("/local/domain/{}/device/{}", dev.frontend, gpuif::keys::DEVICE_TYPE),
    )?;
    if backend {
        xs.rm(tx, &dev.backend_dir())?;
        xs.rm_if_empty(tx, &format!("{}/{}", layout::backend_root(dev.backend), dev.frontend))?;
    }
    record::remove(xs, tx, dev.frontend, dev.devid)
}

/// Detaches the device described by `args`.
pub fn detach<T: Bounded>(xs: &mut Store<T>, args: &DetachArgs) -> Result<Detached, Error> {
    let guest = domains::resolve(xs, &args.guest, "guest", Gone::Accept)?;
    let backend = find_backend(xs, args, guest.id)?;
    let done = |backend: Option<Domain>, how| Detached {
        guest: guest.clone(),
        backend,
        devid: args.devid,
        how,
    };
    let Some(backend) = backend else {
        // No backend directory anywhere: clean up a frontend directory left behind.
        let dev = Device { backend: 0, frontend: guest.id, devid: args.devid };
        let recorded = xs.exists(TxId::NONE, &record::dir(guest.id, args.devid))?;
        if !xs.exists(TxId::NONE, &dev.frontend_dir())? && !recorded {
            return Err(Error::NoDevice {
                guest: guest.to_string(),
                devid: args.devid,
                looked: format!("backend/vgpu/{}/{} of every domain", guest.id, args.devid),
            });
        }
        xs.transact(|xs, tx| remove(xs, tx, &dev, false))?;
        return Ok(done(None, How::FrontendOnly));
    };
    let dev = Device { backend: backend.id, frontend: guest.id, devid: args.devid };
    if args.force {
        xs.transact(|xs, tx| remove(xs, tx, &dev, true))?;
        return Ok(done(Some(backend), How::Forced));
    }
    let (present, _) = xs.transact(|xs, tx| {
        let state = xs.read(tx, &dev.backend_state())?;
        if state.is_none() && !xs.exists(tx, &dev.backend_dir())? {
            remove(xs, tx, &dev, false)?;
            return Ok(false);
        }
        xs.write(tx, &format!("{}/{}", dev.backend_dir(), xenbus::state::keys::ONLINE), "0")?;
        if !is_closed(&state) {
            xs.write(tx, &dev.backend_state(), XenbusState::Closing.as_str())?;
        }
        Ok(true)
    })?;
    if !present {
        return Ok(done(Some(backend), How::FrontendOnly));
    }
    let state_path = dev.backend_state();
    let waited = xs.wait_for(&[&state_path], args.timeout, |xs| {
        let state = xs.read(TxId::NONE, &state_path)?;
        Ok((is_closed(&state)
            || (state.is_none() && !xs.exists(TxId::NONE, &dev.backend_dir())?))
        .then_some(()))
    })?;
    match waited {
        Waited::Done((), took) => {
            xs.transact(|xs, tx| remove(xs, tx, &dev, true))?;
            Ok(done(Some(backend), How::Closed(took)))
        }
        Waited::TimedOut(_) => {
            let state = xs.read(TxId::NONE, &state_path)?;
            Err(Error::Timeout {
                what: format!("vgpu {} of {} was not closed by {}", args.devid, guest, backend),
                waited: args.timeout,
                stuck: format!("backend {} (waiting for Closed)", state_name(state.as_deref())),
                hint: format!(
                    "gpu-dom may still be revoking the guest's mappings (`xl console {}`); \
                     the directories are kept: run `vgpu detach {} --devid {} --force` to remove them anyway",
                    backend.label(),
                    args.guest,
                    args.devid
                ),
            })
        }
    }
}

fn is_closed(state: &Option<String>) -> bool {
    state.as_deref().and_then(|v| XenbusState::parse(v.as_bytes()).ok())
        == Some(XenbusState::Closed)
}
