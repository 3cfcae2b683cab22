//! The netif ring slots (`xen/include/public/io/netif.h`), as views over
//! bytes copied out of the ring: parse a response once, every field after
//! that is plain data. Field offsets live in `mod field`.
//!
//! ```text
//! tx request (12 bytes)           tx response (4 bytes used of 12)
//!  0 gref   u32                    0 id      u16
//!  4 offset u16                    2 status  i16  NETIF_RSP_*
//!  6 flags  u16  NETTXF_*
//!  8 id     u16  echoed back
//! 10 size   u16  packet bytes
//!
//! rx request (8 bytes)            rx response (8 bytes)
//!  0 id     u16  echoed back       0 id      u16
//!  2 pad    u16                    2 offset  u16  where the packet starts
//!  4 gref   u32                    4 flags   u16  NETRXF_*
//!                                  6 status  i16  > 0: packet bytes; < 0: NETIF_RSP_*
//! ```
//! All integers little-endian (x86). A slot is the `union` of request and
//! response: 12 bytes on the tx ring, 8 on the rx ring (`DEFINE_RING_TYPES`).

/// Bytes of one tx ring slot.
#[doc(alias = "netif_tx_sring")]
pub const TX_SLOT: usize = 12;
/// Bytes of one rx ring slot.
#[doc(alias = "netif_rx_sring")]
pub const RX_SLOT: usize = 8;

mod field {
    use core::ops::Range;
    pub const TX_GREF: Range<usize> = 0..4;
    pub const TX_OFFSET: Range<usize> = 4..6;
    pub const TX_FLAGS: Range<usize> = 6..8;
    pub const TX_ID: Range<usize> = 8..10;
    pub const TX_SIZE: Range<usize> = 10..12;
    pub const TXR_ID: Range<usize> = 0..2;
    pub const TXR_STATUS: Range<usize> = 2..4;

    pub const RX_ID: Range<usize> = 0..2;
    pub const RX_GREF: Range<usize> = 4..8;
    pub const RXR_ID: Range<usize> = 0..2;
    pub const RXR_OFFSET: Range<usize> = 2..4;
    pub const RXR_FLAGS: Range<usize> = 4..6;
    pub const RXR_STATUS: Range<usize> = 6..8;
}

/// `NETIF_RSP_DROPPED`: the backend dropped the packet.
#[doc(alias = "NETIF_RSP_DROPPED")]
pub const RSP_DROPPED: i16 = -2;
/// `NETIF_RSP_ERROR`.
#[doc(alias = "NETIF_RSP_ERROR")]
pub const RSP_ERROR: i16 = -1;
/// `NETIF_RSP_OKAY`.
#[doc(alias = "NETIF_RSP_OKAY")]
pub const RSP_OKAY: i16 = 0;
/// `NETIF_RSP_NULL`: the answer to an extra-info slot (this frontend sends none).
#[doc(alias = "NETIF_RSP_NULL")]
pub const RSP_NULL: i16 = 1;

/// `NETTXF_csum_blank`: the checksum is left to the backend (never set here).
#[doc(alias = "NETTXF_csum_blank")]
pub const NETTXF_CSUM_BLANK: u16 = 1 << 0;
/// `NETTXF_data_validated` (never set here).
#[doc(alias = "NETTXF_data_validated")]
pub const NETTXF_DATA_VALIDATED: u16 = 1 << 1;
/// `NETTXF_more_data`: the packet goes on in the next slot (never set: no `feature-sg`).
#[doc(alias = "NETTXF_more_data")]
pub const NETTXF_MORE_DATA: u16 = 1 << 2;
/// `NETTXF_extra_info` (never set: no GSO, no multicast control).
#[doc(alias = "NETTXF_extra_info")]
pub const NETTXF_EXTRA_INFO: u16 = 1 << 3;

/// `NETRXF_data_validated`: the backend checked the protocol checksum.
#[doc(alias = "NETRXF_data_validated")]
pub const NETRXF_DATA_VALIDATED: u16 = 1 << 0;
/// `NETRXF_csum_blank`: the checksum field is blank (offload; not negotiated).
#[doc(alias = "NETRXF_csum_blank")]
pub const NETRXF_CSUM_BLANK: u16 = 1 << 1;
/// `NETRXF_more_data`: the packet goes on in the next slot (not negotiated).
#[doc(alias = "NETRXF_more_data")]
pub const NETRXF_MORE_DATA: u16 = 1 << 2;
/// `NETRXF_extra_info`: extra-info slots follow (not negotiated).
#[doc(alias = "NETRXF_extra_info")]
pub const NETRXF_EXTRA_INFO: u16 = 1 << 3;
/// `NETRXF_gso_prefix` (deprecated; not negotiated).
#[doc(alias = "NETRXF_gso_prefix")]
pub const NETRXF_GSO_PREFIX: u16 = 1 << 4;
/// `XEN_NETIF_EXTRA_FLAG_MORE`: another extra-info slot follows this one.
#[doc(alias = "XEN_NETIF_EXTRA_FLAG_MORE")]
pub const EXTRA_FLAG_MORE: u8 = 1 << 0;

fn u16_at(b: &[u8], r: core::ops::Range<usize>) -> u16 {
    u16::from_le_bytes([b[r.start], b[r.start + 1]])
}

/// `netif_tx_request`.
#[doc(alias = "netif_tx_request")]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxRequest {
    pub gref: u32,
    pub offset: u16,
    pub flags: u16,
    pub id: u16,
    pub size: u16,
}

impl TxRequest {
    /// The slot bytes.
    pub fn emit(&self) -> [u8; TX_SLOT] {
        let mut s = [0u8; TX_SLOT];
        s[field::TX_GREF].copy_from_slice(&self.gref.to_le_bytes());
        s[field::TX_OFFSET].copy_from_slice(&self.offset.to_le_bytes());
        s[field::TX_FLAGS].copy_from_slice(&self.flags.to_le_bytes());
        s[field::TX_ID].copy_from_slice(&self.id.to_le_bytes());
        s[field::TX_SIZE].copy_from_slice(&self.size.to_le_bytes());
        s
    }
}

/// `netif_tx_response`.
#[doc(alias = "netif_tx_response")]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxResponse {
    pub id: u16,
    pub status: i16,
}

impl TxResponse {
    /// Reads a response from a slot copied out of the ring.
    pub fn parse(s: &[u8; TX_SLOT]) -> Self {
        TxResponse { id: u16_at(s, field::TXR_ID), status: u16_at(s, field::TXR_STATUS) as i16 }
    }

    /// The slot bytes (the backend's side; for models and tests).
    pub fn emit(&self) -> [u8; TX_SLOT] {
        let mut s = [0u8; TX_SLOT];
        s[field::TXR_ID].copy_from_slice(&self.id.to_le_bytes());
        s[field::TXR_STATUS].copy_from_slice(&self.status.to_le_bytes());
        s
    }
}

/// `netif_rx_request`.
#[doc(alias = "netif_rx_request")]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxRequest {
    pub id: u16,
    pub gref: u32,
}

impl RxRequest {
    /// The slot bytes.
    pub fn emit(&self) -> [u8; RX_SLOT] {
        let mut s = [0u8; RX_SLOT];
        s[field::RX_ID].copy_from_slice(&self.id.to_le_bytes());
        s[field::RX_GREF].copy_from_slice(&self.gref.to_le_bytes());
        s
    }

    /// Reads a request (the backend's side; for models and tests).
    pub fn parse(s: &[u8; RX_SLOT]) -> Self {
        let g = field::RX_GREF;
        RxRequest {
            id: u16_at(s, field::RX_ID),
            gref: u32::from_le_bytes([s[g.start], s[g.start + 1], s[g.start + 2], s[g.start + 3]]),
        }
    }
}

impl TxRequest {
    /// Reads a request (the backend's side; for models and tests).
    pub fn parse(s: &[u8; TX_SLOT]) -> Self {
        let g = field::TX_GREF;
        TxRequest {
            gref: u32::from_le_bytes([s[g.start], s[g.start + 1], s[g.start + 2], s[g.start + 3]]),
            offset: u16_at(s, field::TX_OFFSET),
            flags: u16_at(s, field::TX_FLAGS),
            id: u16_at(s, field::TX_ID),
            size: u16_at(s, field::TX_SIZE),
        }
    }
}

/// `netif_rx_response`.
#[doc(alias = "netif_rx_response")]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxResponse {
    pub id: u16,
    pub offset: u16,
    pub flags: u16,
    /// Packet bytes when positive, `NETIF_RSP_*` when negative.
    pub status: i16,
}

impl RxResponse {
    /// Reads a response from a slot copied out of the ring.
    pub fn parse(s: &[u8; RX_SLOT]) -> Self {
        RxResponse {
            id: u16_at(s, field::RXR_ID),
            offset: u16_at(s, field::RXR_OFFSET),
            flags: u16_at(s, field::RXR_FLAGS),
            status: u16_at(s, field::RXR_STATUS) as i16,
        }
    }

    /// The slot bytes (the backend's side; for models and tests).
    pub fn emit(&self) -> [u8; RX_SLOT] {
        let mut s = [0u8; RX_SLOT];
        s[field::RXR_ID].copy_from_slice(&self.id.to_le_bytes());
        s[field::RXR_OFFSET].copy_from_slice(&self.offset.to_le_bytes());
        s[field::RXR_FLAGS].copy_from_slice(&self.flags.to_le_bytes());
        s[field::RXR_STATUS].copy_from_slice(&self.status.to_le_bytes());
        s
    }

    /// An extra-info slot read as a response: `(type, flags)` are its first
    /// two bytes (`netif_extra_info`), which overlay `id`.
    pub fn extra_flags(s: &[u8; RX_SLOT]) -> u8 {
        s[1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tx_request_bytes_follow_netif_h() {
        let r = TxRequest { gref: 0x0102_0304, offset: 0x10, flags: 0, id: 7, size: 1514 };
        assert_eq!(r.emit(), [4, 3, 2, 1, 0x10, 0, 0, 0, 7, 0, 0xea, 0x05]);
        assert_eq!(TxRequest::parse(&r.emit()), r);
    }

    #[test]
    fn tx_response_status_is_signed() {
        let s = [3, 0, 0xfe, 0xff, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa];
        assert_eq!(TxResponse::parse(&s), TxResponse { id: 3, status: RSP_DROPPED });
        let r = TxResponse { id: 9, status: RSP_OKAY };
        assert_eq!(TxResponse::parse(&r.emit()), r);
    }

    #[test]
    fn rx_request_puts_the_gref_after_the_pad() {
        let r = RxRequest { id: 0x0201, gref: 0x0a0b_0c0d };
        assert_eq!(r.emit(), [1, 2, 0, 0, 0x0d, 0x0c, 0x0b, 0x0a]);
        assert_eq!(RxRequest::parse(&r.emit()), r);
    }

    #[test]
    fn rx_response_status_is_a_size_or_an_error() {
        let ok = [5, 0, 0x40, 0, 1, 0, 0x2a, 0];
        assert_eq!(
            RxResponse::parse(&ok),
            RxResponse { id: 5, offset: 64, flags: NETRXF_DATA_VALIDATED, status: 42 }
        );
        let err = [5, 0, 0, 0, 0, 0, 0xff, 0xff];
        assert_eq!(RxResponse::parse(&err).status, RSP_ERROR);
        let r = RxResponse { id: 1, offset: 2, flags: 3, status: -2 };
        assert_eq!(RxResponse::parse(&r.emit()), r);
    }
}
