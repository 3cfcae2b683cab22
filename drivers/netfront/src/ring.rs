//! The frontend half of an `io/ring.h` ring with `SLOT`-byte slots: the
//! same header and index rules as `gpuif::ring` (whose [`SharedPage`] it
//! uses), for netif's 12-byte tx and 8-byte rx slots.
//!
//! ```text
//! offset  0  req_prod, 4 req_event, 8 rsp_prod, 12 rsp_event (u32 each)
//!        16  pvt + __pad (48 bytes)
//!        64  slot[size]: size = __RD32((4096 - 64) / SLOT) = 256 for netif
//! ```
//!
//! # Invariants
//! - The backend's `rsp_prod` is untrusted: one that claims more responses
//!   than requests in flight is a [`RingError`], never a panic or a wrap.
//! - Each response slot is copied out of shared memory exactly once.
//! - No request is queued without a free slot (`RING_FULL`).

use gpuif::ring::{RingError, SharedPage};
use gpuif::PAGE_SIZE;

const HEADER: usize = 64;
const REQ_PROD: usize = 0;
const REQ_EVENT: usize = 4;
const RSP_PROD: usize = 8;
const RSP_EVENT: usize = 12;

/// `__RD32((PAGE_SIZE - header) / slot)`: the largest power of two that fits.
pub const fn ring_size(slot: usize) -> u32 {
    let n = ((PAGE_SIZE - HEADER) / slot) as u32;
    if n == 0 {
        0
    } else {
        1 << (31 - n.leading_zeros())
    }
}

/// The frontend's private state of one ring (`FRONT_RING`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FrontRing<const SLOT: usize> {
    req_prod_pvt: u32,
    rsp_cons: u32,
}

/// The ring has no free request slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingFull;

impl<const SLOT: usize> FrontRing<SLOT> {
    /// Slots in the ring.
    pub const SIZE: u32 = ring_size(SLOT);

    fn offset(index: u32) -> usize {
        HEADER + (index & (Self::SIZE - 1)) as usize * SLOT
    }

    /// Initialises `page` (`SHARED_RING_INIT`) and returns the state
    /// (`FRONT_RING_INIT`).
    pub fn init<P: SharedPage>(page: &mut P) -> Self {
        page.write(0, &[0; HEADER]);
        page.write_u32(REQ_EVENT, 1);
        page.write_u32(RSP_EVENT, 1);
        page.fence();
        FrontRing::default()
    }

    /// The index the next request gets.
    pub fn req_prod_pvt(&self) -> u32 {
        self.req_prod_pvt
    }

    /// The index of the next response to consume.
    pub fn rsp_cons(&self) -> u32 {
        self.rsp_cons
    }

    /// Requests queued whose responses were not consumed.
    pub fn in_flight(&self) -> u32 {
        self.req_prod_pvt.wrapping_sub(self.rsp_cons)
    }

    /// Queues a request (not yet visible to the backend).
    pub fn put_request<P: SharedPage>(
        &mut self,
        page: &mut P,
        req: &[u8; SLOT],
    ) -> Result<(), RingFull> {
        if self.in_flight() >= Self::SIZE {
            return Err(RingFull);
        }
        page.write(Self::offset(self.req_prod_pvt), req);
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

    /// Copies the next response out of the ring, if there is one. A
    /// `rsp_prod` past the requests in flight is an error.
    pub fn take_response<P: SharedPage>(
        &mut self,
        page: &P,
    ) -> Result<Option<[u8; SLOT]>, RingError> {
        let prod = page.read_u32(RSP_PROD);
        let n = prod.wrapping_sub(self.rsp_cons);
        if n == 0 {
            return Ok(None);
        }
        if n > self.in_flight() {
            return Err(RingError::ProducerOverrun { prod, cons: self.rsp_cons, unconsumed: n });
        }
        page.fence(); // read the slot only after seeing rsp_prod (rmb)
        let mut slot = [0u8; SLOT];
        page.read(Self::offset(self.rsp_cons), &mut slot);
        self.rsp_cons = self.rsp_cons.wrapping_add(1);
        Ok(Some(slot))
    }

    /// Before sleeping: asks to be notified at the next response and
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{RX_SLOT, TX_SLOT};
    use gpuif::LocalPage;

    #[test]
    fn netif_rings_have_256_slots_after_a_64_byte_header() {
        assert_eq!(FrontRing::<TX_SLOT>::SIZE, 256);
        assert_eq!(FrontRing::<RX_SLOT>::SIZE, 256);
        assert_eq!(FrontRing::<TX_SLOT>::offset(0), 64);
        assert_eq!(FrontRing::<TX_SLOT>::offset(257), 64 + 12);
        const { assert!(64 + 256 * TX_SLOT <= PAGE_SIZE) };
    }

    #[test]
    fn a_full_ring_refuses_requests_and_a_response_frees_a_slot() {
        let mut page = LocalPage::default();
        let mut r = FrontRing::<RX_SLOT>::init(&mut page);
        for i in 0..256u32 {
            r.put_request(&mut page, &[i as u8; RX_SLOT]).unwrap();
        }
        assert_eq!(r.put_request(&mut page, &[0; RX_SLOT]), Err(RingFull));
        assert!(r.push_requests(&mut page), "fresh ring: req_event is 1");
        page.write_u32(RSP_PROD, 1);
        assert_eq!(r.take_response(&page).unwrap(), Some([0; RX_SLOT]));
        assert!(r.put_request(&mut page, &[1; RX_SLOT]).is_ok());
    }

    #[test]
    fn a_backend_answering_more_than_was_asked_is_an_error() {
        let mut page = LocalPage::default();
        let mut r = FrontRing::<TX_SLOT>::init(&mut page);
        r.put_request(&mut page, &[0; TX_SLOT]).unwrap();
        r.push_requests(&mut page);
        page.write_u32(RSP_PROD, 2);
        assert_eq!(
            r.take_response(&page),
            Err(RingError::ProducerOverrun { prod: 2, cons: 0, unconsumed: 2 })
        );
        page.write_u32(RSP_PROD, u32::MAX);
        assert!(r.take_response(&page).is_err());
    }

    #[test]
    fn final_check_rearms_rsp_event_after_the_last_consumed_response() {
        let mut page = LocalPage::default();
        let mut r = FrontRing::<TX_SLOT>::init(&mut page);
        for _ in 0..3 {
            r.put_request(&mut page, &[0; TX_SLOT]).unwrap();
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
    fn indexes_wrap_around_u32() {
        let mut page = LocalPage::default();
        let mut r = FrontRing::<RX_SLOT>::init(&mut page);
        r.req_prod_pvt = u32::MAX - 1;
        r.rsp_cons = u32::MAX - 1;
        page.write_u32(RSP_PROD, u32::MAX - 1);
        for i in 0..4u32 {
            r.put_request(&mut page, &[0; RX_SLOT]).unwrap();
            r.push_requests(&mut page);
            page.write_u32(RSP_PROD, (u32::MAX - 1).wrapping_add(i + 1));
            assert!(r.take_response(&page).unwrap().is_some());
        }
        assert_eq!(r.in_flight(), 0);
    }
}
