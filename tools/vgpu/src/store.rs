//! [`Store`]: the xenstore calls `vgpu` makes, over a [`xenbus::Client`], with
//! owned results, typed errors that name the path, bounded transactions and
//! bounded waits.
//!
//! ## Invariants
//!
//! - Every blocking read of the transport is bounded: requests by
//!   [`Store::request_timeout`], waits by their own deadline. A transport
//!   that cannot bound a read ([`Bounded::set_timeout`] returns `false`, the
//!   `/dev/xen/xenbus` device) is never asked to block on a watch: waits
//!   poll instead.
//! - A transaction is retried on `EAGAIN` at most [`MAX_TRIES`] times, and an
//!   error inside it aborts it: nothing half-written is committed.

use std::time::{Duration, Instant};

use xenbus::{Client, ClientError, Perm, TxId, TxOutcome, XsError};

use crate::error::Error;

/// Attempts of one transaction before giving up with [`Error::Contention`].
pub const MAX_TRIES: u32 = 16;

/// How long one request may take by default.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Interval of the polling fallback for transports without read timeouts.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

pub use xenbus::std_io::Bounded;

/// A measured duration for a person: `38 ms` below a second, else `1.2 s`.
pub fn took(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// How a bounded wait ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Waited<R> {
    /// The condition held, after this long.
    Done(R, Duration),
    /// The deadline passed first.
    TimedOut(Duration),
}

/// The xenstore, as `vgpu` uses it.
pub struct Store<T: Bounded> {
    xs: Client<T>,
    /// Bound of one request.
    pub request_timeout: Duration,
    bounded: bool,
}

impl<T: Bounded> Store<T> {
    /// Wraps a connected client and bounds its requests.
    pub fn new(mut xs: Client<T>) -> Self {
        let bounded = xs.transport_mut().set_timeout(Some(REQUEST_TIMEOUT));
        Store { xs, request_timeout: REQUEST_TIMEOUT, bounded }
    }

    /// The client, for what this wrapper does not cover.
    pub fn client(&mut self) -> &mut Client<T> {
        &mut self.xs
    }

    fn fail(&self, what: String, e: ClientError<T::Error>) -> Error {
        match e {
            ClientError::Transport(ref t) if T::is_timeout(t) => {
                Error::NoAnswer { what, waited: self.request_timeout }
            }
            ClientError::Transport(ref t) => {
                Error::Xenstore { what, cause: T::describe(t), again: false, denied: false }
            }
            ClientError::Xenstored(ref x) => Error::Xenstore {
                what,
                cause: x.to_string(),
                again: *x == XsError::Again,
                denied: *x == XsError::AccessDenied,
            },
            other => {
                Error::Xenstore { what, cause: other.to_string(), again: false, denied: false }
            }
        }
    }

    /// The value at `path`, `None` if the node does not exist.
    pub fn read(&mut self, tx: TxId, path: &str) -> Result<Option<String>, Error> {
        match self.xs.read(tx, path) {
            Ok(v) => Ok(Some(String::from_utf8_lossy(v).into_owned())),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(self.fail(format!("reading {path}"), e)),
        }
    }

    /// The decimal number at `path`; `None` if absent, [`Error::BadValue`] if not a number.
    pub fn read_u32(&mut self, tx: TxId, path: &str) -> Result<Option<u32>, Error> {
        match self.read(tx, path)? {
            None => Ok(None),
            Some(v) => match gpuif::keys::parse_u32(&v) {
                Some(n) => Ok(Some(n)),
                None => Err(Error::BadValue { path: path.to_string(), value: v }),
            },
        }
    }

    /// The children of `path`; empty if it does not exist.
    pub fn dir(&mut self, tx: TxId, path: &str) -> Result<Vec<String>, Error> {
        match self.xs.directory(tx, path) {
            Ok(list) => Ok(list.iter().map(str::to_string).collect()),
            Err(e) if e.is_not_found() => Ok(Vec::new()),
            Err(e) => Err(self.fail(format!("listing {path}"), e)),
        }
    }

    /// Whether `path` exists.
    pub fn exists(&mut self, tx: TxId, path: &str) -> Result<bool, Error> {
        match self.xs.directory(tx, path) {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(self.fail(format!("looking up {path}"), e)),
        }
    }

    /// Writes `value` at `path`.
    pub fn write(&mut self, tx: TxId, path: &str, value: &str) -> Result<(), Error> {
        self.xs
            .write(tx, path, value.as_bytes())
            .map_err(|e| self.fail(format!("writing {path}"), e))
    }

    /// Makes `path` exist.
    pub fn mkdir(&mut self, tx: TxId, path: &str) -> Result<(), Error> {
        self.xs.mkdir(tx, path).map_err(|e| self.fail(format!("creating {path}"), e))
    }

    /// Removes `path` and its children; absent is fine.
    pub fn rm(&mut self, tx: TxId, path: &str) -> Result<(), Error> {
        match self.xs.rm(tx, path) {
            Ok(()) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(self.fail(format!("removing {path}"), e)),
        }
    }

    /// Removes `path` if it has no children (as libxl's path cleanup does for parents).
    pub fn rm_if_empty(&mut self, tx: TxId, path: &str) -> Result<(), Error> {
        if self.exists(tx, path)? && self.dir(tx, path)?.is_empty() {
            self.rm(tx, path)?;
        }
        Ok(())
    }

    /// Sets the permissions of `path`, owner first.
    pub fn set_perms(&mut self, tx: TxId, path: &str, perms: &[Perm]) -> Result<(), Error> {
        self.xs
            .set_perms(tx, path, perms)
            .map_err(|e| self.fail(format!("setting the permissions of {path}"), e))
    }

    /// Runs `body` in a transaction and commits it, redoing everything on
    /// `EAGAIN` (at most [`MAX_TRIES`] attempts). An error aborts the
    /// transaction. Returns the body's result and the attempts made.
    pub fn transact<R>(
        &mut self,
        mut body: impl FnMut(&mut Self, TxId) -> Result<R, Error>,
    ) -> Result<(R, u32), Error> {
        for attempt in 1..=MAX_TRIES {
            let tx = self
                .xs
                .transaction_start()
                .map_err(|e| self.fail("starting a transaction".to_string(), e))?;
            let result = body(self, tx);
            let value = match result {
                Ok(v) => v,
                Err(Error::Xenstore { again: true, .. }) => {
                    let _ = self.xs.transaction_end(tx, false);
                    continue;
                }
                Err(e) => {
                    let _ = self.xs.transaction_end(tx, false);
                    return Err(e);
                }
            };
            match self.xs.transaction_end(tx, true) {
                Ok(TxOutcome::Committed) => return Ok((value, attempt)),
                Ok(TxOutcome::Retry) => continue,
                Ok(TxOutcome::Aborted) => {
                    return Err(Error::Xenstore {
                        what: "committing the transaction".into(),
                        cause: "xenstored reported it aborted".into(),
                        again: false,
                        denied: false,
                    })
                }
                Err(e) => return Err(self.fail("committing the transaction".to_string(), e)),
            }
        }
        Err(Error::Contention { tries: MAX_TRIES })
    }

    /// Waits until `check` returns `Some`, at most `timeout`: re-checks each
    /// time a watch on one of `watch` fires (or every 100 ms on a transport
    /// that cannot bound its reads). Watches fire spuriously and may be lost
    /// when the queue is full; `check` reads the state, so neither matters.
    pub fn wait_for<R>(
        &mut self,
        watch: &[&str],
        timeout: Duration,
        mut check: impl FnMut(&mut Self) -> Result<Option<R>, Error>,
    ) -> Result<Waited<R>, Error> {
        let start = Instant::now();
        let deadline = start + timeout;
        let token = format!("vgpu-{}", std::process::id());
        if self.bounded {
            for path in watch {
                self.xs
                    .watch(path, &token)
                    .map_err(|e| self.fail(format!("watching {path}"), e))?;
            }
        }
        let result = self.wait_loop(deadline, &mut check);
        if self.bounded {
            self.xs.transport_mut().set_timeout(Some(self.request_timeout));
            for path in watch {
                let _ = self.xs.unwatch(path, &token);
            }
            self.xs.forget_events(&token);
        }
        Ok(match result? {
            Some(r) => Waited::Done(r, start.elapsed()),
            None => Waited::TimedOut(start.elapsed()),
        })
    }

    fn wait_loop<R>(
        &mut self,
        deadline: Instant,
        check: &mut impl FnMut(&mut Self) -> Result<Option<R>, Error>,
    ) -> Result<Option<R>, Error> {
        loop {
            self.xs.transport_mut().set_timeout(Some(self.request_timeout));
            if let Some(r) = check(self)? {
                return Ok(Some(r));
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let left = deadline - now;
            if !self.bounded {
                std::thread::sleep(left.min(POLL_INTERVAL));
                continue;
            }
            self.xs.transport_mut().set_timeout(Some(left));
            match self.xs.wait_event() {
                Ok(_) => {
                    // Drain what is queued: one check covers all of it.
                    while self.xs.pending_event().is_some() {}
                }
                Err(ClientError::Transport(ref e)) if T::is_timeout(e) => {}
                Err(e) => return Err(self.fail("waiting for a watch event".to_string(), e)),
            }
        }
    }
}
