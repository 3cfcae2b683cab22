//! `vgpu restore`: move every device of a backend that died to the new
//! backend of the same name (a re-created gpu-dom), keeping each guest's
//! device id, GGTT slice and limits, in one transaction.
//!
//! A device is moved when its record (`/vgpu/<guest>/<devid>`, see
//! [`crate::record`]) names the backend by name and by a domid that no
//! longer exists. For each, in one transaction:
//!
//! 1. the new backend directory, libxl style, with the recorded limits
//!    (checked against the slices and pools the new backend already has);
//! 2. the guest's `backend` and `backend-id` rewritten to name it, and the
//!    read permission on the guest's device nodes moved from the dead
//!    backend to the new one (the guest keeps writing the nodes it has;
//!    their permissions would otherwise still name the dead domid);
//! 3. the record's `backend-id` updated.
//!
//! The guest's own state is left alone: its frontend noticed the death
//! (Closed) and starts over (Initialising) when it sees its `backend` change
//! (see `frontend::reconnect`). Records of guests that are gone are dropped.
//!
//! ## Invariants
//!
//! - Limits come only from the dom0-only record, never from anything the
//!   guest could have written.
//! - Nothing is written for a device whose slice would overlap one the new
//!   backend already serves, or whose limits do not fit its pools; such a
//!   device is reported and left pointing at the dead backend.

use std::time::Duration;

use xenbus::{DomId, TxId};

use crate::attach::{attached_slices, ggtt_total};
use crate::domains::{self, Domain, Gone};
use crate::error::Error;
use crate::layout::Device;
use crate::pools;
use crate::record::{self, Record};
use crate::slice;
use crate::store::{Bounded, Store};

/// What `vgpu restore` was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreArgs {
    /// The new backend, by name or domid.
    pub backend: String,
    /// Then wait this long for every moved device to be Connected again.
    pub wait: Option<Duration>,
}

/// One device moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    /// The guest.
    pub guest: Domain,
    /// The device id.
    pub devid: u32,
    /// The dead backend's domid.
    pub from: DomId,
    /// The record it was restored from.
    pub record: Record,
}

/// What `vgpu restore` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    /// The new backend.
    pub backend: Domain,
    /// Devices moved to it.
    pub moved: Vec<Moved>,
    /// Devices already served by it.
    pub already: u32,
    /// Records dropped (their guest is gone), said.
    pub dropped: Vec<String>,
    /// Devices not moved, and why.
    pub skipped: Vec<String>,
}

impl Restored {
    /// The lines `vgpu restore` prints.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        for m in &self.moved {
            let l = &m.record.limits;
            out.push_str(&format!(
                "restored vgpu {} of {} from domain {} (gone) to {}: GGTT slice {}, {} contexts, {} pages, {} table pages\n",
                m.devid, m.guest, m.from, self.backend, l.slice, l.max_contexts, l.max_pages, l.max_table_pages
            ));
        }
        for d in &self.dropped {
            out.push_str(&format!("dropped {d}\n"));
        }
        for s in &self.skipped {
            out.push_str(&format!("not restored: {s}\n"));
        }
        out.push_str(&format!(
            "{} device(s) moved to {}, {} already there",
            self.moved.len(),
            self.backend,
            self.already
        ));
        out
    }
}

/// What to do with one recorded device.
enum Plan {
    Move(Record, Domain),
    Already,
    NotOurs,
    Drop(String),
    Skip(String),
}

fn plan<T: Bounded>(
    xs: &mut Store<T>,
    tx: TxId,
    backend: &Domain,
    guest: DomId,
    devid: u32,
) -> Result<Plan, Error> {
    let r = match record::read(xs, tx, guest, devid)? {
        Ok(r) => r,
        Err(why) => return Ok(Plan::Skip(format!("vgpu {devid} of domain {guest}: {why}"))),
    };
    if r.backend_id == backend.id {
        return Ok(Plan::Already);
    }
    if r.backend_name != backend.label() {
        return Ok(Plan::NotOurs);
    }
    if !xs.exists(tx, &domains::home(guest))? {
        return Ok(Plan::Drop(format!(
            "the record of vgpu {devid} of domain {guest}: the guest no longer exists"
        )));
    }
    let name = xs.read(tx, &format!("{}/name", domains::home(guest)))?;
    let g = Domain { id: guest, name, exists: true };
    if xs.exists(tx, &domains::home(r.backend_id))? {
        return Ok(Plan::Skip(format!(
            "vgpu {devid} of {g}: its backend, domain {}, still exists",
            r.backend_id
        )));
    }
    Ok(Plan::Move(r, g))
}

/// Moves every device whose backend is gone to `args.backend`.
pub fn restore<T: Bounded>(xs: &mut Store<T>, args: &RestoreArgs) -> Result<Restored, Error> {
    let backend = domains::resolve(xs, &args.backend, "backend", Gone::Refuse)?;
    let (done, _attempts) = xs.transact(|xs, tx| {
        let mut out = Restored {
            backend: backend.clone(),
            moved: Vec::new(),
            already: 0,
            dropped: Vec::new(),
            skipped: Vec::new(),
        };
        let (total, _) = ggtt_total(xs, tx, backend.id)?;
        for (guest, devid) in record::list(xs, tx)? {
            match plan(xs, tx, &backend, guest, devid)? {
                Plan::Already => out.already += 1,
                Plan::NotOurs => {}
                Plan::Drop(what) => {
                    record::remove(xs, tx, guest, devid)?;
                    out.dropped.push(what);
                }
                Plan::Skip(why) => out.skipped.push(why),
                Plan::Move(r, g) => {
                    let dev = Device { backend: backend.id, frontend: guest, devid };
                    if let Err(why) = admit(xs, tx, &backend, &r, total)? {
                        out.skipped.push(format!("vgpu {devid} of {g}: {why}"));
                        continue;
                    }
                    if xs.exists(tx, &dev.backend_dir())? {
                        out.skipped.push(format!(
                            "vgpu {devid} of {g}: {} already exists",
                            dev.backend_dir()
                        ));
                        continue;
                    }
                    write_device(xs, tx, &dev, &r)?;
                    let from = r.backend_id;
                    let moved = Record { backend_id: backend.id, ..r.clone() };
                    moved.write(xs, tx)?;
                    out.moved.push(Moved { guest: g, devid, from, record: r });
                }
            }
        }
        Ok(out)
    })?;
    Ok(done)
}

/// Whether the recorded limits fit the new backend (slice and pools), as
/// the reason they do not.
fn admit<T: Bounded>(
    xs: &mut Store<T>,
    tx: TxId,
    backend: &Domain,
    r: &Record,
    total: u32,
) -> Result<Result<(), String>, Error> {
    let attached = attached_slices(xs, tx, backend.id)?;
    if let Err(refused) = slice::check(r.limits.slice, total, &attached) {
        return Ok(Err(format!("its GGTT slice {} does not fit: {refused:?}", r.limits.slice)));
    }
    let pools = pools::read(xs, tx, backend.id)?;
    Ok(pools::check(&pools, &r.limits, &backend.to_string()).map_err(|e| e.to_string()))
}

/// Steps 1 and 2 of the module documentation for one device.
fn write_device<T: Bounded>(
    xs: &mut Store<T>,
    tx: TxId,
    dev: &Device,
    r: &Record,
) -> Result<(), Error> {
    let fe = dev.frontend_dir();
    let fe_present = xs.exists(tx, &fe)?;
    for node in dev.nodes(&r.limits) {
        // The guest's directory: only where it points, unless it is gone.
        let in_fe = node.path == fe || node.path.starts_with(&format!("{fe}/"));
        let pointer = node.path.ends_with("/backend") || node.path.ends_with("/backend-id");
        if in_fe && fe_present && !pointer && node.path != fe {
            continue;
        }
        match &node.value {
            None => xs.mkdir(tx, &node.path)?,
            Some(v) => xs.write(tx, &node.path, v)?,
        }
        xs.set_perms(tx, &node.path, &node.perms)?;
    }
    // The nodes the guest wrote (state, ring-ref, ...): readable by the new backend.
    let perms = dev.frontend_perms();
    for child in xs.dir(tx, &fe)? {
        xs.set_perms(tx, &format!("{fe}/{child}"), &perms)?;
    }
    Ok(())
}
