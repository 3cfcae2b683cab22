//! A xenstore transport that measures itself: how many sends the client
//! made and how long it waited for xenstored, so that a slow xenstore turn
//! of the main loop can say where its time went.
#![forbid(unsafe_code)]

use unikernel::xen::timer;
use xenbus::Transport;

/// `T`, counted.
pub struct Metered<T> {
    inner: T,
    sends: u64,
    wait_ns: u64,
}

/// What a [`Metered`] transport counted since it was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Meter {
    /// Calls to `send` (one per request unless the ring was full).
    pub sends: u64,
    /// Time spent blocked in `wait` (for xenstored's replies, or ring room).
    pub wait_ns: u64,
}

impl Meter {
    /// What happened between `earlier` and `self`.
    pub fn since(self, earlier: Meter) -> Meter {
        Meter {
            sends: self.sends.saturating_sub(earlier.sends),
            wait_ns: self.wait_ns.saturating_sub(earlier.wait_ns),
        }
    }
}

impl<T> Metered<T> {
    pub fn new(inner: T) -> Self {
        Metered { inner, sends: 0, wait_ns: 0 }
    }

    /// The wrapped transport.
    pub fn inner(&self) -> &T {
        &self.inner
    }

    /// The counts so far.
    pub fn meter(&self) -> Meter {
        Meter { sends: self.sends, wait_ns: self.wait_ns }
    }
}

impl<T: Transport> Transport for Metered<T> {
    type Error = T::Error;

    fn send(&mut self, data: &[u8]) -> Result<usize, T::Error> {
        self.sends += 1;
        self.inner.send(data)
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, T::Error> {
        self.inner.recv(buf)
    }

    fn wait(&mut self) -> Result<(), T::Error> {
        let t0 = timer::now_ns();
        let r = self.inner.wait();
        self.wait_ns += timer::now_ns().saturating_sub(t0);
        r
    }
}
