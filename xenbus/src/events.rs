//! Watch events kept until the caller asks for them.
//!
//! xenstored sends `WATCH_EVENT` messages whenever a watched node changes, so
//! they interleave with replies. The client copies each event out of the
//! receive buffer into an [`EventQueue`] of fixed depth and goes on waiting for
//! its reply.
//!
//! ## Invariants
//!
//! - Every queued event was validated as `<path>|<token>|` before it was queued,
//!   so [`OwnedWatchEvent::event`] cannot fail.
//! - When the queue is full, the *new* event is dropped and counted
//!   ([`EventQueue::take_lost`]). Watches may fire spuriously and events carry
//!   no state, so a caller that lost events rescans the nodes it watches.

use crate::wire::{WatchEvent, HEADER_LEN, MAX_MESSAGE_LEN};
use crate::XENSTORE_PAYLOAD_MAX;

/// A watch event copied out of the receive buffer.
#[derive(Clone, PartialEq, Eq)]
pub struct OwnedWatchEvent {
    payload: heapless::Vec<u8, XENSTORE_PAYLOAD_MAX>,
    /// Offset of the token (just after the path's NUL).
    token_at: usize,
}

const _: () = assert!(MAX_MESSAGE_LEN == HEADER_LEN + XENSTORE_PAYLOAD_MAX);

impl OwnedWatchEvent {
    /// Copies a validated event.
    pub fn new(event: WatchEvent<'_>) -> Option<OwnedWatchEvent> {
        let mut payload = heapless::Vec::new();
        payload.extend_from_slice(event.path.as_bytes()).ok()?;
        payload.push(0).ok()?;
        payload.extend_from_slice(event.token.as_bytes()).ok()?;
        payload.push(0).ok()?;
        Some(OwnedWatchEvent { payload, token_at: event.path.len() + 1 })
    }

    fn text(&self, range: core::ops::Range<usize>) -> &str {
        // Built from two `&str`s in `new`, split on char boundaries.
        self.payload.get(range).and_then(|b| core::str::from_utf8(b).ok()).unwrap_or("")
    }

    /// The changed path.
    pub fn path(&self) -> &str {
        self.text(0..self.token_at - 1)
    }

    /// The watch's token.
    pub fn token(&self) -> &str {
        self.text(self.token_at..self.payload.len() - 1)
    }

    /// A borrowed view.
    pub fn event(&self) -> WatchEvent<'_> {
        WatchEvent { path: self.path(), token: self.token() }
    }
}

impl core::fmt::Debug for OwnedWatchEvent {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("OwnedWatchEvent")
            .field("path", &self.path())
            .field("token", &self.token())
            .finish()
    }
}

/// A bounded FIFO of watch events.
pub struct EventQueue<const N: usize> {
    queue: heapless::Deque<OwnedWatchEvent, N>,
    lost: u32,
}

impl<const N: usize> Default for EventQueue<N> {
    fn default() -> Self {
        EventQueue::new()
    }
}

impl<const N: usize> EventQueue<N> {
    /// An empty queue.
    pub const fn new() -> Self {
        EventQueue { queue: heapless::Deque::new(), lost: 0 }
    }

    /// Queues an event, or counts it as lost if the queue is full.
    pub fn push(&mut self, event: WatchEvent<'_>) {
        let queued = match OwnedWatchEvent::new(event) {
            Some(owned) => self.queue.push_back(owned).is_ok(),
            None => false,
        };
        if !queued {
            self.count_lost();
            log::warn!(
                "xenbus: watch event queue full ({N}), dropped event for {} (token {})",
                event.path,
                event.token
            );
        }
    }

    /// Counts an event that could not be queued (e.g. malformed).
    pub fn count_lost(&mut self) {
        self.lost = self.lost.saturating_add(1);
    }

    /// The oldest event.
    pub fn pop(&mut self) -> Option<OwnedWatchEvent> {
        self.queue.pop_front()
    }

    /// Events queued.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether no event is queued.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Events dropped since the last call because the queue was full.
    pub fn take_lost(&mut self) -> u32 {
        core::mem::take(&mut self.lost)
    }

    /// Drops queued events whose token is `token` (after `UNWATCH`).
    pub fn forget_token(&mut self, token: &str) {
        // Rotate once through the queue in place (no second queue on the stack).
        for _ in 0..self.queue.len() {
            if let Some(ev) = self.queue.pop_front() {
                if ev.token() != token {
                    // Cannot fail: one slot was just freed.
                    let _ = self.queue.push_back(ev);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev<'a>(path: &'a str, token: &'a str) -> WatchEvent<'a> {
        WatchEvent { path, token }
    }

    #[test]
    fn owned_event_keeps_path_and_token() {
        let e = OwnedWatchEvent::new(ev("/a/b", "tok")).unwrap();
        assert_eq!(e.path(), "/a/b");
        assert_eq!(e.token(), "tok");
        let empty = OwnedWatchEvent::new(ev("", "")).unwrap();
        assert_eq!((empty.path(), empty.token()), ("", ""));
    }

    #[test]
    fn full_queue_drops_new_events_and_counts_them() {
        let mut q = EventQueue::<2>::new();
        q.push(ev("/1", "t"));
        q.push(ev("/2", "t"));
        q.push(ev("/3", "t"));
        assert_eq!(q.take_lost(), 1);
        assert_eq!(q.take_lost(), 0);
        assert_eq!(q.pop().unwrap().path(), "/1");
        assert_eq!(q.pop().unwrap().path(), "/2");
        assert!(q.pop().is_none());
    }

    #[test]
    fn forget_token_drops_only_that_watch() {
        let mut q = EventQueue::<4>::new();
        q.push(ev("/1", "a"));
        q.push(ev("/2", "b"));
        q.push(ev("/3", "a"));
        q.forget_token("a");
        assert_eq!(q.len(), 1);
        assert_eq!(q.pop().unwrap().token(), "b");
    }
}
