//! The 2-level event channel scan (`xen.h`, "event channels"): which ports
//! fired, given the vCPU's selector word and the shared pending/mask bitmaps.
//!
//! Xen sets a port's pending bit, then (if the port is unmasked and the bit
//! went 0 -> 1) the selector bit for its 64-port word, then
//! `evtchn_upcall_pending`. The guest clears `evtchn_upcall_pending`, then
//! takes the selector (atomic exchange with 0), and for each selected word
//! takes the pending-and-unmasked bits (atomic clear of exactly those bits).
//!
//! The bit logic is here, over the [`EventWords`] trait, so it can be tested
//! on the host; the implementation over the real shared-info page lives in the
//! runtime (`xen::events`).
//!
//! # Invariants
//! - Every port reported was pending and unmasked, and its pending bit has
//!   been cleared exactly once (by this scan).
//! - Masked pending ports stay pending (they are reported after unmask).
//! - Ports are reported in ascending order within one scan.
#![forbid(unsafe_code)]

use xen_abi::shared_info::XEN_ULONG_BITS;

/// Number of 64-bit words in the 2-level bitmaps.
pub const WORDS: usize = XEN_ULONG_BITS;

/// Access to the words the scan reads and clears.
pub trait EventWords {
    /// Atomically takes the selector word (returns it, leaves 0).
    fn take_selector(&self) -> u64;
    /// Reads pending word `w`.
    fn pending(&self, w: usize) -> u64;
    /// Reads mask word `w`.
    fn mask(&self, w: usize) -> u64;
    /// Atomically clears `bits` in pending word `w`; returns the bits that
    /// were set among them.
    fn clear_pending(&self, w: usize, bits: u64) -> u64;
}

/// Scans once and calls `fired(port)` for every port taken. Returns how many.
pub fn scan(words: &impl EventWords, mut fired: impl FnMut(u32)) -> usize {
    let mut n = 0;
    let mut sel = words.take_selector();
    while sel != 0 {
        let w = sel.trailing_zeros() as usize;
        sel &= sel - 1;
        if w >= WORDS {
            continue;
        }
        let ready = words.pending(w) & !words.mask(w);
        let mut taken = words.clear_pending(w, ready);
        while taken != 0 {
            let b = taken.trailing_zeros();
            taken &= taken - 1;
            fired((w * 64) as u32 + b);
            n += 1;
        }
    }
    n
}

/// A set of ports (one bit each, 4096 ports: the 2-level ABI's limit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortSet([u64; WORDS]);

impl Default for PortSet {
    fn default() -> Self {
        PortSet([0; WORDS])
    }
}

impl PortSet {
    /// The empty set.
    pub const fn new() -> Self {
        PortSet([0; WORDS])
    }
    /// Adds `port` (ignored if out of range).
    pub fn insert(&mut self, port: u32) {
        if let Some(w) = self.0.get_mut(port as usize / 64) {
            *w |= 1 << (port % 64);
        }
    }
    /// True when `port` is in the set.
    pub fn contains(&self, port: u32) -> bool {
        self.0.get(port as usize / 64).is_some_and(|w| w & (1 << (port % 64)) != 0)
    }
    /// Removes `port`; returns whether it was there.
    pub fn take(&mut self, port: u32) -> bool {
        let was = self.contains(port);
        if let Some(w) = self.0.get_mut(port as usize / 64) {
            *w &= !(1 << (port % 64));
        }
        was
    }
    /// True when no port is in the set.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::cell::RefCell;

    struct Model {
        sel: RefCell<u64>,
        pending: RefCell<[u64; WORDS]>,
        mask: [u64; WORDS],
    }

    impl Model {
        fn new() -> Self {
            Model { sel: RefCell::new(0), pending: RefCell::new([0; WORDS]), mask: [0; WORDS] }
        }
        /// What Xen does in `evtchn_2l_set_pending`.
        fn xen_set_pending(&self, port: u32) {
            let (w, b) = (port as usize / 64, port % 64);
            let was = self.pending.borrow()[w] & (1 << b) != 0;
            self.pending.borrow_mut()[w] |= 1 << b;
            if !was && self.mask[w] & (1 << b) == 0 {
                *self.sel.borrow_mut() |= 1 << w;
            }
        }
    }

    impl EventWords for Model {
        fn take_selector(&self) -> u64 {
            core::mem::take(&mut *self.sel.borrow_mut())
        }
        fn pending(&self, w: usize) -> u64 {
            self.pending.borrow()[w]
        }
        fn mask(&self, w: usize) -> u64 {
            self.mask[w]
        }
        fn clear_pending(&self, w: usize, bits: u64) -> u64 {
            let mut p = self.pending.borrow_mut();
            let had = p[w] & bits;
            p[w] &= !bits;
            had
        }
    }

    fn collect(m: &Model) -> Vec<u32> {
        let mut v = Vec::new();
        scan(m, |p| v.push(p));
        v
    }

    #[test]
    fn pending_unmasked_ports_are_reported_once_in_order() {
        let m = Model::new();
        for p in [3, 1, 64, 4095, 130] {
            m.xen_set_pending(p);
        }
        assert_eq!(collect(&m), vec![1, 3, 64, 130, 4095]);
        assert_eq!(collect(&m), Vec::<u32>::new(), "second scan finds nothing");
        assert!(m.pending.borrow().iter().all(|w| *w == 0));
    }

    #[test]
    fn masked_ports_stay_pending_and_are_not_reported() {
        let mut m = Model::new();
        m.mask[0] = 1 << 5;
        m.xen_set_pending(5);
        m.xen_set_pending(6);
        assert_eq!(collect(&m), vec![6]);
        assert_eq!(m.pending.borrow()[0], 1 << 5);
    }

    #[test]
    fn a_port_set_again_after_the_scan_fires_again() {
        let m = Model::new();
        m.xen_set_pending(7);
        assert_eq!(collect(&m), vec![7]);
        m.xen_set_pending(7);
        assert_eq!(collect(&m), vec![7]);
    }

    #[test]
    fn selector_bit_without_pending_bits_reports_nothing() {
        let m = Model::new();
        *m.sel.borrow_mut() = 1 << 9;
        assert_eq!(collect(&m), Vec::<u32>::new());
    }

    #[test]
    fn port_set_insert_take_and_bounds() {
        let mut s = PortSet::default();
        assert!(s.is_empty());
        s.insert(0);
        s.insert(4095);
        s.insert(4096); // out of range: ignored
        assert!(s.contains(4095) && s.contains(0) && !s.contains(4096));
        assert!(s.take(0));
        assert!(!s.take(0));
        assert!(s.take(4095));
        assert!(s.is_empty());
    }
}
