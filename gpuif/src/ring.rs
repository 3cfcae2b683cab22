//! The shared ring, with Xen's `xen/include/public/io/ring.h` layout and rules.
//!
//! ```text
//! offset  0  req_prod   (u32, written by the frontend)
//!         4  req_event  (u32, written by the backend: "notify me at this req_prod")
//!         8  rsp_prod   (u32, written by the backend)
//!        12  rsp_event  (u32, written by the frontend)
//!        16  pvt + __pad (48 bytes)
//!        64  slot[RING_SIZE], SLOT_SIZE bytes each (a request or a response)
//! ```
//! A ring's size is `__RD32((PAGE_SIZE - 64) / slot)` ([`ring_size`]): the
//! largest power of two that fits. Indexes are free-running `u32`s; slot =
//! index & (size - 1). gpu-dom's ring has [`SLOT_SIZE`]-byte slots
//! ([`RING_SIZE`] of them); the frontend half is generic over the slot size
//! ([`FrontRingOf`]), so other `io/ring.h` rings (netfront's `io/netif.h`
//! rings, 12- and 8-byte slots) use the same arithmetic.
//!
//! # Invariants (backend side)
//! - The other side's producer index is untrusted: if it claims more
//!   unconsumed entries than the ring holds, that is a [`RingError`] (the
//!   caller disconnects that frontend), never a panic or a wrap.
//! - Each request slot is copied out of shared memory exactly once, by
//!   [`BackRing::take_request`]; decoding works on the private copy.
//! - A request is taken only when a response slot is free for it
//!   (`RING_REQUEST_CONS_OVERFLOW`), so responses never overwrite requests.
//!
//! # Invariants (frontend side)
//! - The backend's `rsp_prod` is untrusted: one that claims more responses
//!   than requests in flight is a [`RingError`], never a panic or a wrap.
//! - Each response slot is copied out of shared memory exactly once.
//! - No request is queued without a free slot (`RING_FULL`).

use crate::PAGE_SIZE;

/// Size of the shared header (`sring` up to `ring[]`).
pub const HEADER_SIZE: usize = 64;
/// Size of one slot (the `union { req; rsp; }`): 112 bytes gives 32 slots.
pub const SLOT_SIZE: usize = 112;
/// Slots in gpu-dom's ring.
pub const RING_SIZE: u32 = ring_size(SLOT_SIZE);

const REQ_PROD: usize = 0;
const REQ_EVENT: usize = 4;
const RSP_PROD: usize = 8;
const RSP_EVENT: usize = 12;

/// Slots in a one-page ring of `slot`-byte slots (`__RD32((PAGE_SIZE -
/// 64) / slot)`: the largest power of two that fits; 0 if none does).
pub const fn ring_size(slot: usize) -> u32 {
    let n = ((PAGE_SIZE - HEADER_SIZE) / slot) as u32;
    if n == 0 {
        0
    } else {
        1 << (31 - n.leading_zeros())
    }
}

const _: () = assert!(RING_SIZE == 32);
const _: () = assert!(HEADER_SIZE + RING_SIZE as usize * SLOT_SIZE <= PAGE_SIZE);

/// Access to the one shared ring page. The backend implements it over its
/// grant mapping of the frontend's page, the frontend over its own page, tests
/// over model memory. Offsets are always inside the page and `u32`s aligned.
pub trait SharedPage {
    /// Reads a `u32` index (one access, as `ACCESS_ONCE`).
    fn read_u32(&self, offset: usize) -> u32;
    /// Writes a `u32` index.
    fn write_u32(&mut self, offset: usize, value: u32);
    /// Copies `buf.len()` bytes out of the page.
    fn read(&self, offset: usize, buf: &mut [u8]);
    /// Copies `data` into the page.
    fn write(&mut self, offset: usize, data: &[u8]);
    /// A full memory barrier (`xen_mb`): orders earlier accesses before later.
    fn fence(&self);
}

/// A slot's bytes, copied out of (or to be copied into) the ring.
pub type Slot = [u8; SLOT_SIZE];

/// The other side broke the ring protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingError {
    /// The producer index claims `unconsumed` entries, more than the `most`
    /// it may: the ring's size (requests), or the requests in flight
    /// (responses).
    ProducerOverrun { prod: u32, cons: u32, unconsumed: u32, most: u32 },
    /// A response whose id is not the one answered next: the backend
    /// answers requests in ring order, so this is an unknown id, an id
    /// answered before (a duplicate) or a later request's id (out of
    /// order). `expected`: the oldest request in flight (`None`: none was).
    UnexpectedResponse { got: u64, expected: Option<u64> },
}

impl core::fmt::Display for RingError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            RingError::ProducerOverrun { prod, cons, unconsumed, most } => write!(
                f,
                "producer index {prod} is {unconsumed} entries past consumer {cons} (at most {most} may be)"
            ),
            RingError::UnexpectedResponse { got, expected: Some(want) } => write!(
                f,
                "response for request {got} where request {want} was answered next (unknown, duplicate or out of order)"
            ),
            RingError::UnexpectedResponse { got, expected: None } => {
                write!(f, "response for request {got} with no request in flight")
            }
        }
    }
}

/// Where slot `index` of a ring of `SLOT`-byte slots is.
fn slot_offset<const SLOT: usize>(index: u32) -> usize {
    HEADER_SIZE + (index & (ring_size(SLOT) - 1)) as usize * SLOT
}

/// Checks the untrusted producer `prod` against our consumer `cons`: at
/// most `most` entries may be unconsumed.
fn unconsumed(prod: u32, cons: u32, most: u32) -> Result<u32, RingError> {
    let n = prod.wrapping_sub(cons);
    if n > most {
        return Err(RingError::ProducerOverrun { prod, cons, unconsumed: n, most });
    }
    Ok(n)
}

/// Initialises a fresh shared page (`SHARED_RING_INIT`): indexes 0, events 1.
pub fn init_shared<P: SharedPage>(page: &mut P) {
    page.write(0, &[0; HEADER_SIZE]);
    page.write_u32(REQ_EVENT, 1);
    page.write_u32(RSP_EVENT, 1);
    page.fence();
}

/// The backend's private ring state (`BACK_RING`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BackRing {
    req_cons: u32,
    rsp_prod_pvt: u32,
}

impl BackRing {
    /// Attaches to a ring the frontend initialised (`BACK_RING_ATTACH`):
    /// starts from the shared `rsp_prod`, which a fresh ring has at 0.
    pub fn attach<P: SharedPage>(page: &P) -> Self {
        let rsp = page.read_u32(RSP_PROD);
        BackRing { req_cons: rsp, rsp_prod_pvt: rsp }
    }

    /// Requests consumed so far.
    pub fn req_cons(&self) -> u32 {
        self.req_cons
    }

    /// Copies the next request out of the ring, if there is one and a
    /// response slot is free for it.
    pub fn take_request<P: SharedPage>(&mut self, page: &P) -> Result<Option<Slot>, RingError> {
        let prod = page.read_u32(REQ_PROD);
        let n = unconsumed(prod, self.req_cons, RING_SIZE)?;
        if n == 0 || self.req_cons.wrapping_sub(self.rsp_prod_pvt) >= RING_SIZE {
            return Ok(None);
        }
        page.fence(); // read the slot only after seeing req_prod (rmb)
        let mut slot = [0u8; SLOT_SIZE];
        page.read(slot_offset::<SLOT_SIZE>(self.req_cons), &mut slot);
        self.req_cons = self.req_cons.wrapping_add(1);
        Ok(Some(slot))
    }

    /// Queues a response in the next response slot (not yet visible).
    pub fn put_response<P: SharedPage>(&mut self, page: &mut P, rsp: &Slot) {
        page.write(slot_offset::<SLOT_SIZE>(self.rsp_prod_pvt), rsp);
        self.rsp_prod_pvt = self.rsp_prod_pvt.wrapping_add(1);
    }

    /// Publishes queued responses; true if the frontend asked to be notified
    /// (`RING_PUSH_RESPONSES_AND_CHECK_NOTIFY`).
    pub fn push_responses<P: SharedPage>(&mut self, page: &mut P) -> bool {
        let old = page.read_u32(RSP_PROD);
        let new = self.rsp_prod_pvt;
        page.fence();
        page.write_u32(RSP_PROD, new);
        page.fence();
        let event = page.read_u32(RSP_EVENT);
        new.wrapping_sub(event) < new.wrapping_sub(old)
    }

    /// Before sleeping: asks for a notification at the next request and
    /// re-checks; true if requests are waiting (`RING_FINAL_CHECK_FOR_REQUESTS`).
    pub fn final_check_for_requests<P: SharedPage>(
        &mut self,
        page: &mut P,
    ) -> Result<bool, RingError> {
        if self.has_requests(page)? {
            return Ok(true);
        }
        page.write_u32(REQ_EVENT, self.req_cons.wrapping_add(1));
        page.fence();
        self.has_requests(page)
    }

    fn has_requests<P: SharedPage>(&self, page: &P) -> Result<bool, RingError> {
        let n = unconsumed(page.read_u32(REQ_PROD), self.req_cons, RING_SIZE)?;
        let room = RING_SIZE - self.req_cons.wrapping_sub(self.rsp_prod_pvt).min(RING_SIZE);
        Ok(n.min(room) > 0)
    }
}

/// The frontend's private state of a ring of `SLOT`-byte slots
/// (`FRONT_RING`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FrontRingOf<const SLOT: usize> {
    req_prod_pvt: u32,
    rsp_cons: u32,
}

/// The frontend's half of gpu-dom's ring.
pub type FrontRing = FrontRingOf<SLOT_SIZE>;

/// The ring has no free request slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingFull;

impl<const SLOT: usize> FrontRingOf<SLOT> {
    /// Slots in the ring (a slot size that leaves none does not compile).
    pub const SIZE: u32 = {
        assert!(ring_size(SLOT) > 0, "no slot of this size fits in a ring page");
        ring_size(SLOT)
    };

    /// Initialises `page` and returns the frontend's state (`FRONT_RING_INIT`).
    pub fn init<P: SharedPage>(page: &mut P) -> Self {
        init_shared(page);
        FrontRingOf::default()
    }

    /// The index the next request gets.
    pub fn req_prod_pvt(&self) -> u32 {
        self.req_prod_pvt
    }

    /// The index of the next response to consume.
    pub fn rsp_cons(&self) -> u32 {
        self.rsp_cons
    }

    /// Request slots free (`RING_FREE_REQUESTS`).
    pub fn free_requests(&self) -> u32 {
        Self::SIZE - self.in_flight()
    }

    /// Requests sent whose responses have not been consumed.
    pub fn in_flight(&self) -> u32 {
        self.req_prod_pvt.wrapping_sub(self.rsp_cons)
    }

    /// Queues a request (not yet visible to the backend).
    pub fn put_request<P: SharedPage>(
        &mut self,
        page: &mut P,
        req: &[u8; SLOT],
    ) -> Result<(), RingFull> {
        if self.free_requests() == 0 {
            return Err(RingFull);
        }
        page.write(slot_offset::<SLOT>(self.req_prod_pvt), req);
        self.req_prod_pvt = self.req_prod_pvt.wrapping_add(1);
        Ok(())
    }

    /// Publishes queued requests; true if the backend asked to be notified
    /// (`RING_PUSH_REQUESTS_AND_CHECK_NOTIFY`).
    pub fn push_requests<P: SharedPage>(&mut self, page: &mut P) -> bool {
        let old = page.read_u32(REQ_PROD);
        let new = self.req_prod_pvt;
        page.fence();
        page.write_u32(REQ_PROD, new);
        page.fence();
        let event = page.read_u32(REQ_EVENT);
        new.wrapping_sub(event) < new.wrapping_sub(old)
    }

    /// Copies the next response out of the ring, if any. A backend whose
    /// `rsp_prod` runs past what was requested is an error.
    pub fn take_response<P: SharedPage>(
        &mut self,
        page: &P,
    ) -> Result<Option<[u8; SLOT]>, RingError> {
        let prod = page.read_u32(RSP_PROD);
        if unconsumed(prod, self.rsp_cons, self.in_flight())? == 0 {
            return Ok(None);
        }
        page.fence(); // read the slot only after seeing rsp_prod (rmb)
        let mut slot = [0u8; SLOT];
        page.read(slot_offset::<SLOT>(self.rsp_cons), &mut slot);
        self.rsp_cons = self.rsp_cons.wrapping_add(1);
        Ok(Some(slot))
    }

    /// Before sleeping: asks for a notification at the next response and
    /// re-checks (`RING_FINAL_CHECK_FOR_RESPONSES`); true if responses wait.
    pub fn final_check_for_responses<P: SharedPage>(&mut self, page: &mut P) -> bool {
        if page.read_u32(RSP_PROD) != self.rsp_cons {
            return true;
        }
        page.write_u32(RSP_EVENT, self.rsp_cons.wrapping_add(1));
        page.fence();
        page.read_u32(RSP_PROD) != self.rsp_cons
    }
}

/// Writes a raw producer index: test support for hostile frontends.
pub fn poke_req_prod<P: SharedPage>(page: &mut P, value: u32) {
    page.write_u32(REQ_PROD, value);
}

/// A page in ordinary memory, for tests and for one-process use.
#[derive(Clone)]
pub struct LocalPage(pub [u8; PAGE_SIZE]);

impl Default for LocalPage {
    fn default() -> Self {
        LocalPage([0; PAGE_SIZE])
    }
}

impl SharedPage for LocalPage {
    fn read_u32(&self, offset: usize) -> u32 {
        let mut b = [0; 4];
        b.copy_from_slice(&self.0[offset..offset + 4]);
        u32::from_le_bytes(b)
    }
    fn write_u32(&mut self, offset: usize, value: u32) {
        self.0[offset..offset + 4].copy_from_slice(&value.to_le_bytes());
    }
    fn read(&self, offset: usize, buf: &mut [u8]) {
        buf.copy_from_slice(&self.0[offset..offset + buf.len()]);
    }
    fn write(&mut self, offset: usize, data: &[u8]) {
        self.0[offset..offset + data.len()].copy_from_slice(data);
    }
    fn fence(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(b: u8) -> Slot {
        [b; SLOT_SIZE]
    }

    #[test]
    fn ring_geometry_matches_io_ring_h() {
        assert_eq!(RING_SIZE, 32);
        assert_eq!(slot_offset::<SLOT_SIZE>(0), 64);
        assert_eq!(slot_offset::<SLOT_SIZE>(33), 64 + SLOT_SIZE);
        // io/netif.h: 12-byte tx and 8-byte rx slots, 256 of each.
        assert_eq!((FrontRingOf::<12>::SIZE, FrontRingOf::<8>::SIZE), (256, 256));
        assert_eq!(slot_offset::<12>(257), 64 + 12);
        assert_eq!(ring_size(PAGE_SIZE), 0);
    }

    #[test]
    fn requests_and_responses_flow_with_notifications_as_ring_h_says() {
        let mut page = LocalPage::default();
        let mut front = FrontRing::init(&mut page);
        let mut back = BackRing::attach(&page);
        front.put_request(&mut page, &slot(1)).unwrap();
        // Fresh ring: req_event = 1, so the first push notifies.
        assert!(front.push_requests(&mut page));
        front.put_request(&mut page, &slot(2)).unwrap();
        // The backend has not re-armed req_event: no second notification.
        assert!(!front.push_requests(&mut page));
        assert_eq!(back.take_request(&page).unwrap(), Some(slot(1)));
        assert_eq!(back.take_request(&page).unwrap(), Some(slot(2)));
        assert_eq!(back.take_request(&page).unwrap(), None);
        assert!(!back.final_check_for_requests(&mut page).unwrap());
        back.put_response(&mut page, &slot(9));
        assert!(back.push_responses(&mut page));
        assert_eq!(front.take_response(&page).unwrap(), Some(slot(9)));
        // Re-armed by final_check: the next request notifies again.
        front.put_request(&mut page, &slot(3)).unwrap();
        assert!(front.push_requests(&mut page));
    }

    #[test]
    fn indexes_wrap_around_u32() {
        let mut page = LocalPage::default();
        init_shared(&mut page);
        let start = u32::MAX - 3;
        page.write_u32(REQ_PROD, start);
        page.write_u32(RSP_PROD, start);
        let mut front = FrontRing { req_prod_pvt: start, rsp_cons: start };
        let mut back = BackRing::attach(&page);
        for i in 0..100u32 {
            front.put_request(&mut page, &slot(i as u8)).unwrap();
            front.push_requests(&mut page);
            assert_eq!(back.take_request(&page).unwrap(), Some(slot(i as u8)));
            back.put_response(&mut page, &slot(!(i as u8)));
            back.push_responses(&mut page);
            assert_eq!(front.take_response(&page).unwrap(), Some(slot(!(i as u8))));
        }
    }

    #[test]
    fn a_runaway_req_prod_is_an_error_not_a_panic() {
        let mut page = LocalPage::default();
        init_shared(&mut page);
        let mut back = BackRing::attach(&page);
        poke_req_prod(&mut page, RING_SIZE + 1);
        assert_eq!(
            back.take_request(&page),
            Err(RingError::ProducerOverrun { prod: 33, cons: 0, unconsumed: 33, most: RING_SIZE })
        );
        poke_req_prod(&mut page, u32::MAX);
        assert!(back.take_request(&page).is_err());
        assert!(back.final_check_for_requests(&mut page).is_err());
    }

    #[test]
    fn the_backend_takes_no_request_without_a_free_response_slot() {
        let mut page = LocalPage::default();
        let mut front = FrontRing::init(&mut page);
        let mut back = BackRing::attach(&page);
        for i in 0..RING_SIZE {
            front.put_request(&mut page, &slot(i as u8)).unwrap();
        }
        assert_eq!(front.put_request(&mut page, &slot(0)), Err(RingFull));
        front.push_requests(&mut page);
        for _ in 0..RING_SIZE {
            assert!(back.take_request(&page).unwrap().is_some());
        }
        // A hostile frontend pretends RING_SIZE more requests were queued
        // before any response was pushed: the backend must not take them.
        poke_req_prod(&mut page, 2 * RING_SIZE);
        assert_eq!(back.take_request(&page).unwrap(), None);
    }

    #[test]
    fn a_backend_producing_unrequested_responses_is_an_error_for_the_frontend() {
        let mut page = LocalPage::default();
        let mut front = FrontRing::init(&mut page);
        page.write_u32(RSP_PROD, 1);
        assert!(front.take_response(&page).is_err());
        // Any slot size: one request in flight, two responses claimed.
        let mut front = FrontRingOf::<12>::init(&mut page);
        front.put_request(&mut page, &[0; 12]).unwrap();
        front.push_requests(&mut page);
        page.write_u32(RSP_PROD, 2);
        assert_eq!(
            front.take_response(&page),
            Err(RingError::ProducerOverrun { prod: 2, cons: 0, unconsumed: 2, most: 1 })
        );
        page.write_u32(RSP_PROD, u32::MAX);
        assert!(front.take_response(&page).is_err());
    }

    /// Fills a ring of `SLOT`-byte slots, then frees one slot by a response.
    fn fill_then_free_one<const SLOT: usize>() {
        let mut page = LocalPage::default();
        let mut front = FrontRingOf::<SLOT>::init(&mut page);
        for i in 0..FrontRingOf::<SLOT>::SIZE {
            front.put_request(&mut page, &[i as u8; SLOT]).unwrap();
        }
        assert_eq!(front.put_request(&mut page, &[0; SLOT]), Err(RingFull));
        assert!(front.push_requests(&mut page), "fresh ring: req_event is 1");
        page.write_u32(RSP_PROD, 1);
        assert_eq!(front.take_response(&page).unwrap(), Some([0; SLOT]));
        assert_eq!(front.free_requests(), 1);
        assert!(front.put_request(&mut page, &[1; SLOT]).is_ok());
    }

    #[test]
    fn a_full_ring_of_any_slot_size_refuses_requests_until_a_response_frees_a_slot() {
        fill_then_free_one::<SLOT_SIZE>();
        fill_then_free_one::<12>();
        fill_then_free_one::<8>();
    }

    #[test]
    fn final_check_rearms_rsp_event_after_the_last_consumed_response() {
        let mut page = LocalPage::default();
        let mut r = FrontRingOf::<12>::init(&mut page);
        for _ in 0..3 {
            r.put_request(&mut page, &[0; 12]).unwrap();
        }
        r.push_requests(&mut page);
        page.write_u32(RSP_PROD, 2);
        assert!(r.final_check_for_responses(&mut page));
        r.take_response(&page).unwrap();
        r.take_response(&page).unwrap();
        assert!(!r.final_check_for_responses(&mut page));
        assert_eq!(page.read_u32(RSP_EVENT), 3);
    }

    #[test]
    fn small_slot_indexes_wrap_around_u32() {
        let mut page = LocalPage::default();
        let mut r = FrontRingOf::<8>::init(&mut page);
        r.req_prod_pvt = u32::MAX - 1;
        r.rsp_cons = u32::MAX - 1;
        page.write_u32(RSP_PROD, u32::MAX - 1);
        for i in 0..4u32 {
            r.put_request(&mut page, &[i as u8; 8]).unwrap();
            r.push_requests(&mut page);
            page.write_u32(RSP_PROD, (u32::MAX - 1).wrapping_add(i + 1));
            assert_eq!(r.take_response(&page).unwrap(), Some([i as u8; 8]));
        }
        assert_eq!(r.in_flight(), 0);
    }
}
