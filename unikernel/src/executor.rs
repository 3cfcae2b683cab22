//! The executor: the domain's only loop. Code registers the event-channel
//! ports it waits on; [`Executor::wait`] takes fired ports from the shared
//! pending bits and, when none of the watched ones fired, sleeps in
//! `SCHEDOP_poll` on exactly those ports (plus the timer's) until one is
//! pending or the deadline passes. No busy loop: the vCPU is descheduled.
//!
//! `SCHEDOP_poll` rather than `SCHEDOP_block`: both sleep until an event,
//! but `block` on an HVM vCPU only looks at the LAPIC, so an upcall taken
//! between our last check and the hypercall would leave it asleep; `poll`
//! re-checks the ports' pending bits after marking the vCPU blocked, and only
//! the executor clears those bits, so no wakeup is lost.
//!
//! # Invariants
//! - At most [`MAX_WATCHED`] ports are watched (Xen's poll limit, minus the timer).
//! - `wait` returns only when a watched port fired or the deadline passed.
#![forbid(unsafe_code)]

use crate::evtchn_demux::PortSet;
use crate::xen::{events, sched, timer, XenError};

/// Ports one executor can watch.
pub const MAX_WATCHED: usize = xen_abi::sched::SCHED_POLL_MAX_PORTS - 1;

/// Why [`Executor::wait`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wake {
    /// At least one watched port fired (see [`Executor::take`]).
    Event,
    /// The deadline passed.
    Timeout,
}

/// Why a port cannot be watched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooManyPorts;

/// The event loop's state.
pub struct Executor {
    watched: [events::Port; MAX_WATCHED + 1],
    n: usize,
    fired: PortSet,
    timer_port: Option<events::Port>,
    sleeps: u64,
}

impl Executor {
    pub(crate) const fn new() -> Self {
        Executor {
            watched: [0; MAX_WATCHED + 1],
            n: 0,
            fired: PortSet::new(),
            timer_port: None,
            sleeps: 0,
        }
    }

    pub(crate) fn set_timer_port(&mut self, port: events::Port) {
        self.timer_port = Some(port);
    }

    /// Adds `port` to the ports `wait` sleeps on.
    pub fn watch(&mut self, port: events::Port) -> Result<(), TooManyPorts> {
        if self.watched[..self.n].contains(&port) {
            return Ok(());
        }
        if self.n == MAX_WATCHED {
            return Err(TooManyPorts);
        }
        self.watched[self.n] = port;
        self.n += 1;
        Ok(())
    }

    /// Stops watching `port` (and forgets it fired).
    pub fn unwatch(&mut self, port: events::Port) {
        if let Some(i) = self.watched[..self.n].iter().position(|p| *p == port) {
            self.watched.copy_within(i + 1..self.n, i);
            self.n -= 1;
        }
        self.fired.take(port);
    }

    /// True (once) if `port` fired since the last `take`.
    pub fn take(&mut self, port: events::Port) -> bool {
        self.fired.take(port)
    }

    /// Times the executor went to sleep in Xen.
    pub fn sleeps(&self) -> u64 {
        self.sleeps
    }

    /// Takes every pending port now (without sleeping). Xen raises a new
    /// upcall for a port only if its selector word was not already flagged,
    /// so draining re-arms the upcall for every word.
    pub fn collect(&mut self) {
        let fired = &mut self.fired;
        events::scan(|p| fired.insert(p));
        // A watched port whose selector bit was already consumed (by a
        // transport's own wait) is still pending: take it directly, so that
        // `SCHEDOP_poll` never returns at once for a bit nobody clears.
        for &p in &self.watched[..self.n] {
            if events::clear_pending(p) {
                fired.insert(p);
            }
        }
        if let Some(t) = self.timer_port {
            fired.take(t);
        }
    }

    fn watched_fired(&self) -> bool {
        self.watched[..self.n].iter().any(|p| self.fired.contains(*p))
    }

    /// Sleeps until a watched port fires or Xen system time reaches
    /// `deadline_ns` (absolute; `None`: no deadline).
    pub fn wait(&mut self, deadline_ns: Option<u64>) -> Result<Wake, XenError> {
        loop {
            self.collect();
            if self.watched_fired() {
                return Ok(Wake::Event);
            }
            let mut n = self.n;
            if let Some(d) = deadline_ns {
                if timer::now_ns() >= d {
                    return Ok(Wake::Timeout);
                }
                if let Some(t) = self.timer_port {
                    timer::set_oneshot(d)?;
                    self.watched[n] = t;
                    n += 1;
                }
            }
            let poll_timeout = if self.timer_port.is_none() { deadline_ns.unwrap_or(0) } else { 0 };
            self.sleeps += 1;
            if n == 0 && deadline_ns.is_none() {
                // Nothing can wake us but an arbitrary event: block.
                sched::block();
            } else {
                sched::poll(&self.watched[..n], poll_timeout)?;
            }
        }
    }
}
