//! Surviving the backend's death: release what the dead backend held, wait
//! for the toolstack to give the device a new backend, reconnect, and replay
//! every mapping from the frontend's own record.
//!
//! How the loss is seen: the frontend watches the backend's `state` node;
//! it goes Closing/Closed when gpu-dom closes the device, and vanishes when
//! the toolstack removes the dead domain's home (`xl destroy`, or
//! `on_crash = "destroy"`); `@releaseDomain` is watched too (xenstored
//! delivers it to a guest only if dom0 allowed it, XSA-115), and a state
//! node we may no longer read counts as gone. Any request waiting for a
//! response then ends with [`Error::BackendClosed`] instead of waiting out
//! its timeout.
//!
//! What follows (blkfront's way with a backend that changed):
//! 1. [`Frontend::release`]: close the event channel; end the grants of
//!    the ring and the directory pool (freeing those pages) and of every
//!    data page, keeping the data pages and their contents. Xen releases a
//!    dead domain's grant mappings, so each grant becomes endable; one the
//!    backend still maps (a crashed gpu-dom kept with `on_crash =
//!    "preserve"`) is reported and retried later. Our state goes to Closed.
//! 2. [`Frontend::reconnect`]: watch our own `backend`/`backend-id`; when
//!    they name another backend (`vgpu restore`), or the same directory
//!    comes back after it vanished, grant every data page to the new
//!    backend, go back to Initialising, and run the handshake again: new
//!    ring, new event channel.
//! 3. Replay: the contexts (created in id order, fillers destroyed again,
//!    so every context keeps its id), then every GGTT entry in one batch
//!    and every context's PPGTT entries in one batch each, from the record
//!    of what the old backend had confirmed. gpu-dom kept nothing.
//!
//! # Invariants
//! - No data page is freed or granted again while a grant of it may still
//!   be mapped: a page is granted to the new backend only after its old
//!   grant ended, and reconnecting waits until every old grant ended.
//! - The record after a reconnect holds exactly what the new backend
//!   confirmed: it is rebuilt from the replay's responses.
//! - Every wait is bounded by the caller's deadline; a failed attempt at a
//!   backend is retried no sooner than [`RETRY_MS`] later.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use gpuif::keys;
use gpuif::wire::{Entry, Op};
use gpuif::Status;
use xenbus::{Transport, TxId, XenbusState};

use crate::device::{Device, Frontend, Res};
use crate::platform::{DomId, EndAccessError, Platform};
use crate::Error;

/// Least time between two attempts at the same backend.
pub const RETRY_MS: u64 = 1_000;
/// The watch that tells a privileged watcher some domain died.
const RELEASE_DOMAIN: &str = "@releaseDomain";

/// The backend that went away.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lost {
    /// Its domain.
    pub backend_id: DomId,
    /// Its device directory.
    pub backend_dir: String,
    /// When [`Frontend::release`] first saw it gone (platform clock, ms).
    pub at_ms: u64,
    /// Its state when it was lost (`None`: its directory was gone).
    pub state: Option<XenbusState>,
    /// Its directory was seen gone since (so its coming back is a new backend).
    saw_gone: bool,
    /// No attempt at this backend before this time (after a failed one).
    retry_at: u64,
}

/// What one [`Frontend::release`] call did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Released {
    /// Grants ended by this call (data pages kept; ring and directory
    /// pages freed).
    pub grants_ended: u32,
    /// Grants the dead backend still maps (retried by the next call).
    pub still_mapped: Vec<u32>,
    /// Data pages kept, to be granted to the next backend.
    pub pages_kept: u32,
}

/// What [`Frontend::reconnect`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reconnected {
    /// The new backend's domain.
    pub backend_id: DomId,
    /// From the loss to the replay's end (platform clock, ms).
    pub outage_ms: u64,
    /// Pages granted again.
    pub regranted: u32,
    /// Contexts created again.
    pub contexts: u32,
    /// GGTT entries mapped again.
    pub ggtt: u32,
    /// PPGTT entries mapped again (all contexts).
    pub ppgtt: u32,
    /// Requests the replay took.
    pub requests: u32,
}

/// Where our device points now.
enum Pointing {
    /// Our device directory is gone: the toolstack detached us.
    Detached,
    /// Still the lost backend.
    Lost,
    /// A backend to connect to.
    New(Device),
}

impl<P: Platform, T: Transport> Frontend<P, T> {
    /// The backend that went away, until [`Frontend::reconnect`] succeeds.
    pub fn lost(&self) -> Option<&Lost> {
        self.lost.as_ref()
    }

    /// While the backend is lost: grants of ours it may still map (not
    /// ended yet; [`Frontend::reconnect`] waits for them).
    pub fn grants_held(&self) -> usize {
        let data = self.pages.len().saturating_sub(self.released.len());
        if self.lost.is_some() {
            data + self.limbo.len()
        } else {
            self.limbo.len()
        }
    }

    /// What the backend confirmed it mapped for us.
    pub fn record(&self) -> &crate::record::Record {
        &self.record
    }

    /// The backend went away (closed, or its domain died): stops using the
    /// connection and ends every grant the dead backend could hold, keeping
    /// the data pages (see the module documentation, step 1). Call it again
    /// while [`Released::still_mapped`] is not empty; [`Frontend::reconnect`]
    /// does so too.
    pub fn release(&mut self) -> Res<P, T, Released> {
        if self.lost.is_none() {
            self.mark_lost()?;
        }
        let mut out = Released::default();
        let platform = &mut self.platform;
        self.limbo.retain(|g| match platform.end_access(g.id) {
            Ok(()) => {
                out.grants_ended += 1;
                false
            }
            Err(EndAccessError::StillMapped { gref }) => {
                out.still_mapped.push(gref);
                true
            }
            Err(EndAccessError::UnknownPage(_)) => false,
        });
        for g in &self.pages {
            if self.released.contains(&g.id) {
                continue;
            }
            match self.platform.end_grant(g.id) {
                Ok(()) => {
                    out.grants_ended += 1;
                    self.released.push(g.id);
                }
                Err(EndAccessError::StillMapped { gref }) => out.still_mapped.push(gref),
                Err(EndAccessError::UnknownPage(id)) => {
                    log::warn!("vgpu: page {} vanished from the platform", id.0)
                }
            }
        }
        out.pages_kept = self.released.len() as u32;
        Ok(out)
    }

    /// Step 1's bookkeeping: the connection is over; our state says Closed.
    fn mark_lost(&mut self) -> Res<P, T, ()> {
        let dev = self.dev()?.clone();
        let now = self.platform.now_ms();
        self.lost = Some(Lost {
            backend_id: dev.backend_id,
            backend_dir: dev.backend_dir.clone(),
            at_ms: now,
            state: self.be_state,
            saw_gone: self.be_state.is_none(),
            retry_at: now,
        });
        self.abandon_connection();
        if self.wrote_state && self.device_present() {
            let path = self.fe_path(keys::STATE)?;
            if let Err(e) = self.xs.write_state(TxId::NONE, &path, XenbusState::Closed) {
                log::warn!("vgpu: cannot write {path}: {e}");
            }
        }
        // See the toolstack move the device, and (if dom0 lets us) domains die.
        let token = self.token().to_string();
        for key in [xenbus::state::keys::BACKEND, xenbus::state::keys::BACKEND_ID] {
            let path = self.fe_path(key)?;
            if let Err(e) = self.xs.watch(&path, &token) {
                log::warn!("vgpu: cannot watch {path}: {e}");
            }
        }
        if let Err(e) = self.xs.watch(RELEASE_DOMAIN, &token) {
            log::debug!("vgpu: cannot watch {RELEASE_DOMAIN}: {e}");
        }
        Ok(())
    }

    /// Removes the watches [`Frontend::release`] set.
    pub(crate) fn unwatch_for_reconnect(&mut self) {
        let token = self.token().to_string();
        for key in [xenbus::state::keys::BACKEND, xenbus::state::keys::BACKEND_ID] {
            if let Ok(path) = self.fe_path(key) {
                let _ = self.xs.unwatch(&path, &token);
            }
        }
        let _ = self.xs.unwatch(RELEASE_DOMAIN, &token);
    }

    /// Waits, until `deadline_ms`, for a new backend; connects to it and
    /// replays every recorded mapping (module documentation, steps 2 and
    /// 3). `Ok(None)`: none yet (or old grants still mapped); call again.
    /// [`Error::NoDevice`]: the toolstack removed our device (detach);
    /// [`Frontend::disconnect`] then frees the pages.
    /// [`Error::Replay`], [`Error::ReplayContext`]: connected, but the new
    /// backend did not take everything back (the record holds what it
    /// did). Any other error: this attempt failed; we are still lost and
    /// may call again (the same backend is tried again after [`RETRY_MS`]).
    pub fn reconnect(&mut self, deadline_ms: u64) -> Res<P, T, Option<Reconnected>> {
        if self.lost.is_none() {
            if self.conn.is_some() {
                return Ok(None);
            }
            self.release()?;
        }
        loop {
            self.pump()?;
            let gone = self.be_state.is_none();
            if let Some(l) = self.lost.as_mut() {
                l.saw_gone |= gone;
            }
            let held = !self.limbo.is_empty() || self.released.len() < self.pages.len();
            if held {
                self.release()?;
            }
            let all_ended = self.limbo.is_empty() && self.released.len() == self.pages.len();
            let now = self.platform.now_ms();
            let may_try = self.lost.as_ref().is_some_and(|l| now >= l.retry_at);
            if all_ended {
                match self.pointing()? {
                    Pointing::Detached => {
                        let path = self.dev()?.frontend_dir.clone();
                        return Err(Error::NoDevice { path });
                    }
                    Pointing::New(dev) if may_try => return self.reconnect_to(dev).map(Some),
                    Pointing::New(_) | Pointing::Lost => {}
                }
            }
            if now >= deadline_ms {
                return Ok(None);
            }
            let retry = self.lost.as_ref().map_or(deadline_ms, |l| l.retry_at);
            let until = if may_try || retry <= now { deadline_ms } else { retry.min(deadline_ms) };
            self.platform.wait(until).map_err(Self::platform_err("wait"))?;
        }
    }

    /// Reads where our device points now.
    fn pointing(&mut self) -> Res<P, T, Pointing> {
        let lost = self.lost.clone().ok_or(Error::NotConnected)?;
        let be_key = self.fe_path(xenbus::state::keys::BACKEND)?;
        let Some(dir) = self.read_opt(&be_key)? else {
            return Ok(Pointing::Detached);
        };
        let dir = dir.trim_end_matches('\0').to_string();
        let id_key = self.fe_path(xenbus::state::keys::BACKEND_ID)?;
        let id = self.read_opt(&id_key)?.unwrap_or_default();
        let Some(backend_id) = keys::parse_u32(&id).and_then(|v| DomId::try_from(v).ok()) else {
            return Ok(Pointing::Lost); // being rewritten, or garbage: wait for a change
        };
        if !dir.starts_with('/') {
            return Ok(Pointing::Lost);
        }
        let same = backend_id == lost.backend_id && dir == lost.backend_dir;
        if same && !(lost.saw_gone && self.be_state.is_some()) {
            return Ok(Pointing::Lost);
        }
        let frontend_dir = self.dev()?.frontend_dir.clone();
        Ok(Pointing::New(Device { frontend_dir, backend_dir: dir, backend_id }))
    }

    /// Connects to `dev` and replays; on failure we stay lost (retried later).
    fn reconnect_to(&mut self, dev: Device) -> Res<P, T, Reconnected> {
        let lost = self.lost.clone().ok_or(Error::NotConnected)?;
        let old_state = format!("{}/{}", lost.backend_dir, keys::STATE);
        let token = self.token().to_string();
        let _ = self.xs.unwatch(&old_state, &token);
        self.dev = Some(dev.clone());
        self.be_state = None;
        let result = self.regrant_all(dev.backend_id).and_then(|regranted| {
            let path = self.fe_path(keys::STATE)?;
            self.xs
                .write_state(TxId::NONE, &path, XenbusState::Initialising)
                .map_err(Self::xs_err("write", &path))?;
            self.wrote_state = true;
            self.handshake_with(true)?;
            Ok(regranted)
        });
        let regranted = match result {
            Ok(n) => n,
            Err(e) => {
                self.failed_attempt(&dev, lost.at_ms);
                return Err(e);
            }
        };
        self.lost = None;
        self.unwatch_for_reconnect();
        // An error here leaves us connected: the record holds what the new
        // backend took back.
        let mut done = self.replay()?;
        done.regranted = regranted;
        done.backend_id = dev.backend_id;
        done.outage_ms = self.platform.now_ms().saturating_sub(lost.at_ms);
        Ok(done)
    }

    /// An attempt at `dev` failed: release again, and try it no sooner
    /// than [`RETRY_MS`] from now (or when it changes).
    fn failed_attempt(&mut self, dev: &Device, lost_at: u64) {
        self.drop_connection();
        let now = self.platform.now_ms();
        self.lost = Some(Lost {
            backend_id: dev.backend_id,
            backend_dir: dev.backend_dir.clone(),
            at_ms: lost_at,
            state: self.be_state,
            saw_gone: true, // the same directory may be tried again
            retry_at: now.saturating_add(RETRY_MS),
        });
        // Pages granted to it are ended again (it may hold none yet).
        let _ = self.release();
    }

    /// Grants every kept page to `backend`; returns how many.
    fn regrant_all(&mut self, backend: DomId) -> Res<P, T, u32> {
        let mut n = 0;
        while let Some(&id) = self.released.first() {
            let Some(i) = self.pages.iter().position(|g| g.id == id) else {
                self.released.remove(0);
                continue;
            };
            let ro = self.pages[i].read_only;
            let g = self
                .platform
                .regrant(id, backend, ro)
                .map_err(Self::platform_err("grant again to the new backend"))?;
            self.pages[i] = g;
            self.released.remove(0);
            n += 1;
        }
        Ok(n)
    }

    /// Step 3: everything in the record, again; the record is rebuilt from
    /// what the new backend confirms.
    fn replay(&mut self) -> Res<P, T, Reconnected> {
        let old = core::mem::take(&mut self.record);
        let mut out = Reconnected {
            backend_id: 0,
            outage_ms: 0,
            regranted: 0,
            contexts: 0,
            ggtt: 0,
            ppgtt: 0,
            requests: 0,
        };
        let ids: Vec<u16> = old.contexts().collect();
        if let Some(&last) = ids.last() {
            for wanted in 0..=last {
                let got = self.context_create()?;
                out.requests += 1;
                if got != wanted {
                    return Err(Error::ReplayContext { wanted, got });
                }
            }
            for filler in (0..=last).filter(|c| !ids.contains(c)) {
                self.context_destroy(filler)?;
                out.requests += 1;
            }
            out.contexts = ids.len() as u32;
        }
        let ggtt: Vec<Entry> =
            old.ggtt().filter_map(|(i, m)| self.entry(u64::from(i), m)).collect();
        out.ggtt = self.replay_batch(Op::GgttMap, 0, &ggtt, &mut out.requests)?;
        for ctx in ids {
            let entries: Vec<Entry> =
                old.ppgtt(ctx).filter_map(|(a, m)| self.entry(a, m)).collect();
            out.ppgtt += self.replay_batch(Op::PpgttMap, ctx, &entries, &mut out.requests)?;
        }
        Ok(out)
    }

    fn entry(&self, addr: u64, m: crate::record::Mapped) -> Option<Entry> {
        let g = self.pages.iter().find(|g| g.id == m.page)?;
        Some(Entry { addr, gref: g.gref, read_only: m.read_only })
    }

    fn replay_batch(
        &mut self,
        op: Op,
        ctx: u16,
        entries: &[Entry],
        requests: &mut u32,
    ) -> Res<P, T, u32> {
        if entries.is_empty() {
            return Ok(0);
        }
        let r = self.batch(op, ctx, entries)?;
        *requests += r.requests;
        if r.status != Status::OK {
            return Err(Error::Replay {
                op,
                status: r.status,
                done: r.done,
                wanted: entries.len() as u32,
            });
        }
        Ok(r.done)
    }
}
