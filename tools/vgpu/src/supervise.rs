//! `vgpu supervise`: keep gpu-dom alive. A dom0 process (run by systemd,
//! `tools/vgpu/vgpu-supervise@.service`) that watches `@releaseDomain`;
//! whenever the domain named `<name>` is gone, it re-creates it from its xl
//! config, moves every device of the dead one to it ([`crate::restore`]) as
//! soon as the new domain exists, waits until it is ready
//! (`data/<name>-ready = 1`), and waits until each guest is served again.
//! One line per step, with how long it took.
//!
//! The devices are moved before gpu-dom is ready, not after: gpu-dom serves
//! the devices it finds when it starts, and the guests see their `backend`
//! change and start over while it boots, so the handshakes overlap its
//! boot instead of following it (measured under Xen in QEMU, moving them
//! after `ready` added 2-4 s of round trips before the first InitWait).
//!
//! A domain that keeps dying right after it was created is not re-created
//! for ever: after `boot_deaths` deaths (or failed `xl create`s) in a row,
//! each within `boot_window` of its creation, the supervisor stops and
//! says why. Between such attempts it waits, doubling from `backoff` up to
//! `backoff_max`.
//!
//! ## Invariants
//!
//! - Every wait is bounded; the watch on `@releaseDomain` is re-checked at
//!   least every `poll` (events can be lost, and unprivileged xenstoreds
//!   may not send them), by reading whether a domain has the name.
//! - The supervisor re-creates the domain only when no domain of that name
//!   exists (a crashed domain kept by `on_crash = "preserve"` still exists:
//!   nothing happens until someone destroys it).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use xenbus::{TxId, XenbusState};

use crate::attach;
use crate::domains::{self, Domain};
use crate::error::Error;
use crate::layout::Device;
use crate::restore::{self, RestoreArgs};
use crate::store::{took, Bounded, Store, Waited};

/// What `vgpu supervise` was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuperviseArgs {
    /// The domain's name (`gpu-dom`).
    pub name: String,
    /// Its xl config.
    pub config: PathBuf,
    /// Deaths within `boot_window` of creation, in a row, before giving up.
    pub boot_deaths: u32,
    /// What counts as dying at boot.
    pub boot_window: Duration,
    /// Longest wait for `data/<name>-ready` after `xl create`.
    pub ready_timeout: Duration,
    /// Longest wait for the moved devices to be Connected again.
    pub serve_timeout: Duration,
    /// First wait before re-creating a domain that died at boot.
    pub backoff: Duration,
    /// Longest such wait.
    pub backoff_max: Duration,
    /// Re-check interval when no `@releaseDomain` event comes.
    pub poll: Duration,
    /// The xl program.
    pub xl: String,
    /// Stop after this many re-creations (`None`: never; for tests).
    pub restarts: Option<u32>,
}

impl SuperviseArgs {
    /// The command line's defaults for `name` and `config`.
    pub fn new(name: &str, config: &Path) -> SuperviseArgs {
        SuperviseArgs {
            name: name.to_string(),
            config: config.to_path_buf(),
            boot_deaths: 3,
            boot_window: Duration::from_secs(60),
            ready_timeout: Duration::from_secs(60),
            serve_timeout: Duration::from_secs(60),
            backoff: Duration::from_secs(1),
            backoff_max: Duration::from_secs(30),
            poll: Duration::from_secs(5),
            xl: "xl".to_string(),
            restarts: None,
        }
    }
}

/// Creates a domain from an xl config.
pub trait Creator {
    /// `xl create <config>`; `Err` carries what it printed.
    fn create(&mut self, config: &Path) -> Result<(), String>;
}

/// The real one: runs `<xl> create <config>`.
pub struct XlCreate {
    /// The program.
    pub xl: String,
}

impl Creator for XlCreate {
    fn create(&mut self, config: &Path) -> Result<(), String> {
        let out = std::process::Command::new(&self.xl)
            .arg("create")
            .arg(config)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {} create: {e}", self.xl))?;
        if out.status.success() {
            Ok(())
        } else {
            let text = String::from_utf8_lossy(&out.stderr).trim().replace('\n', " | ");
            Err(format!("{} create exited with {}: {text}", self.xl, out.status))
        }
    }
}

impl<F: FnMut(&Path) -> Result<(), String>> Creator for F {
    fn create(&mut self, config: &Path) -> Result<(), String> {
        self(config)
    }
}

/// The domain named `name`, if one exists.
fn find<T: Bounded>(xs: &mut Store<T>, name: &str) -> Result<Option<Domain>, Error> {
    Ok(domains::list(xs)?.into_iter().find(|d| d.name.as_deref() == Some(name)))
}

/// Waits, in slices of `poll`, until `name` is gone; returns when.
fn wait_gone<T: Bounded>(xs: &mut Store<T>, name: &str, poll: Duration) -> Result<Instant, Error> {
    loop {
        let waited = xs.wait_for(&["@releaseDomain"], poll, |xs| {
            Ok(find(xs, name)?.is_none().then_some(()))
        })?;
        if let Waited::Done((), _) = waited {
            return Ok(Instant::now());
        }
    }
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

/// The supervisor's memory between deaths.
struct Supervisor<'a> {
    args: &'a SuperviseArgs,
    log: &'a mut dyn Write,
    /// When the domain was last created.
    created_at: Option<Instant>,
    /// Deaths at boot (or failed creations) in a row.
    early: u32,
    /// The last of them, said.
    last_error: String,
}

impl Supervisor<'_> {
    fn say(&mut self, line: String) {
        let _ = writeln!(self.log, "vgpu supervise: {line}");
        let _ = self.log.flush();
    }

    /// Waits until no domain has the name; counts a death at boot.
    /// Returns when it died (or was found missing).
    fn until_gone<T: Bounded>(&mut self, xs: &mut Store<T>) -> Result<Instant, Error> {
        let name = self.args.name.as_str();
        let died = match find(xs, name)? {
            Some(d) => {
                self.say(format!("{d} is running; watching @releaseDomain"));
                let at = wait_gone(xs, name, self.args.poll)?;
                match self.created_at {
                    Some(c) => self.say(format!(
                        "{d} is gone, {} s after it was created",
                        at.duration_since(c).as_secs()
                    )),
                    None => self.say(format!("{d} is gone")),
                }
                at
            }
            None => {
                self.say(format!("{name} is not running"));
                Instant::now()
            }
        };
        match self.created_at.take().map(|c| died.duration_since(c)) {
            Some(l) if l < self.args.boot_window => {
                self.early += 1;
                self.last_error = format!("it died {} s after xl create", l.as_secs());
            }
            Some(_) => self.early = 0,
            None => {}
        }
        Ok(died)
    }

    /// Gives up after too many deaths at boot; else waits the backoff.
    fn back_off(&mut self) -> Result<(), Error> {
        let (name, early, window) = (&self.args.name, self.early, self.args.boot_window);
        if early >= self.args.boot_deaths {
            let line = format!(
                "giving up: {name} died {early} times in a row within {} s of being created",
                window.as_secs()
            );
            self.say(line);
            return Err(Error::GaveUp {
                name: name.clone(),
                deaths: early,
                window,
                last: self.last_error.clone(),
            });
        }
        if early > 0 {
            let doubled = self.args.backoff.saturating_mul(1 << (early - 1).min(16));
            let wait = doubled.min(self.args.backoff_max);
            let line = format!(
                "waiting {} before re-creating {name} (it died at boot {early} time(s) in a row)",
                took(wait)
            );
            self.say(line);
            std::thread::sleep(wait);
        }
        Ok(())
    }

    /// `xl create`; the new domain and when its creation began, or `None`
    /// (counted as a death at boot).
    fn create<T: Bounded>(
        &mut self,
        xs: &mut Store<T>,
        creator: &mut dyn Creator,
    ) -> Result<Option<(Domain, Instant)>, Error> {
        let (name, cfg) = (&self.args.name, self.args.config.display());
        self.say(format!("creating {name}: {} create {cfg}", self.args.xl));
        let t0 = Instant::now();
        let failure = match creator.create(&self.args.config) {
            Err(out) => format!("xl create failed: {out}"),
            Ok(()) => match find(xs, name)? {
                Some(dom) => {
                    self.created_at = Some(t0);
                    self.say(format!("created {dom} in {} ms", ms(t0.elapsed())));
                    return Ok(Some((dom, t0)));
                }
                None => format!("{name} was gone right after xl create"),
            },
        };
        self.say(failure.clone());
        self.early += 1;
        self.last_error = failure;
        Ok(None)
    }

    /// Waits (bounded) for `data/<name>-ready = 1`; false if it died first.
    fn until_ready<T: Bounded>(
        &mut self,
        xs: &mut Store<T>,
        dom: &Domain,
        t0: Instant,
    ) -> Result<bool, Error> {
        let ready_path = format!("{}/data/{}-ready", domains::home(dom.id), self.args.name);
        let home = domains::home(dom.id);
        let waited =
            xs.wait_for(&[&ready_path, "@releaseDomain"], self.args.ready_timeout, |xs| {
                if !xs.exists(TxId::NONE, &home)? {
                    return Ok(Some(false));
                }
                Ok((xs.read(TxId::NONE, &ready_path)?.as_deref() == Some("1")).then_some(true))
            })?;
        let (line, alive) = match waited {
            Waited::Done(true, _) => {
                (format!("{dom} ready {} ms after xl create", ms(t0.elapsed())), true)
            }
            Waited::Done(false, _) => (format!("{dom} died before it was ready"), false),
            Waited::TimedOut(t) => (
                format!(
                    "{dom} not ready {} s after xl create ({ready_path} is not 1)",
                    t.as_secs()
                ),
                true,
            ),
        };
        self.say(line);
        Ok(alive)
    }
}

/// Runs the supervisor (see the module documentation); returns only when
/// `args.restarts` re-creations are done, or with [`Error::GaveUp`].
pub fn supervise<T: Bounded>(
    xs: &mut Store<T>,
    args: &SuperviseArgs,
    creator: &mut dyn Creator,
    log: &mut dyn Write,
) -> Result<(), Error> {
    let mut s = Supervisor { args, log, created_at: None, early: 0, last_error: String::new() };
    s.say(format!(
        "supervising {} (config {}; gives up after {} deaths within {} s of creation)",
        args.name,
        args.config.display(),
        args.boot_deaths,
        args.boot_window.as_secs()
    ));
    let mut restarts = 0u32;
    loop {
        let died = s.until_gone(xs)?;
        s.back_off()?;
        let Some((dom, t0)) = s.create(xs, creator)? else { continue };
        // The devices go to it at once: gpu-dom serves what is under its
        // backend/vgpu when it starts, and the guests start over while it
        // boots.
        let r = restore::restore(xs, &RestoreArgs { backend: dom.id.to_string(), wait: None })?;
        for line in r.summary().lines() {
            s.say(line.to_string());
        }
        if !s.until_ready(xs, &dom, t0)? {
            continue;
        }
        wait_served(xs, &dom, &r.moved, died, args.serve_timeout, &mut |l| s.say(l))?;
        restarts += 1;
        if args.restarts.is_some_and(|n| restarts >= n) {
            return Ok(());
        }
    }
}

/// Waits until every moved device is Connected at both ends, one line each.
fn wait_served<T: Bounded>(
    xs: &mut Store<T>,
    backend: &Domain,
    moved: &[restore::Moved],
    died: Instant,
    timeout: Duration,
    say: &mut dyn FnMut(String),
) -> Result<(), Error> {
    let deadline = Instant::now() + timeout;
    let mut served = 0;
    for m in moved {
        let dev = Device { backend: backend.id, frontend: m.guest.id, devid: m.devid };
        let (fe, be) = (dev.frontend_state(), dev.backend_state());
        let left = deadline.saturating_duration_since(Instant::now());
        // The frontend passes through Closed (it noticed) and Initialising
        // (it starts over): only Connected at both ends ends the wait.
        let waited = xs.wait_for(&[&fe, &be], left, |xs| {
            let f = xs.read(TxId::NONE, &fe)?;
            let b = xs.read(TxId::NONE, &be)?;
            let c = XenbusState::Connected.as_str();
            Ok((f.as_deref() == Some(c) && b.as_deref() == Some(c)).then_some(()))
        })?;
        match waited {
            Waited::Done((), _) => {
                served += 1;
                say(format!(
                    "vgpu {} of {} served again {} ms after {} died",
                    m.devid,
                    m.guest,
                    ms(died.elapsed()),
                    backend.name.as_deref().unwrap_or("the backend")
                ));
            }
            Waited::TimedOut(t) => {
                let f = xs.read(TxId::NONE, &fe)?;
                let b = xs.read(TxId::NONE, &be)?;
                say(format!(
                    "vgpu {} of {} not served again after {}: {}",
                    m.devid,
                    m.guest,
                    took(t),
                    attach::describe(&f, &b)
                ));
            }
        }
    }
    say(format!(
        "{served} of {} device(s) served again, {} ms after the old backend died",
        moved.len(),
        ms(died.elapsed())
    ));
    Ok(())
}
