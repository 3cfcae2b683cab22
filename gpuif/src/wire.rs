//! Request and response slots, and the 16-byte entries they carry.
//!
//! Views in the style of smoltcp's `wire`: a [`Request`] is parsed from a slot
//! that was copied out of the ring, validated once in [`Request::parse`];
//! nothing after that can panic. Field offsets live in `mod field`.
//!
//! ```text
//! request slot (112 bytes)              response slot (same slot, 112 bytes)
//!  0 id      u64  echoed back            0 id            u64
//!  8 op      u8   Op                     8 op            u8
//!  9 flags   u8   bit 0: INDIRECT        9 (zero)        u8
//! 10 nr      u16  entries                10 status       i16  Status
//! 12 ctx     u16  PPGTT context          12 done          u32  entries applied
//! 14 (zero)  u16                         16 first_failure u32  or NO_FAILURE
//! 16 payload 96 bytes:                   20 detail        i32  e.g. GNTST code
//!    inline: up to 6 entries             24 value         u64  new ctx / bad value
//!    indirect: up to 8 u32 grefs of      32 info (ATTACH_INFO only)
//!    directory pages, 256 entries each
//!
//! entry (16 bytes, inline or in a directory page)
//!  0 addr  u64  GGTT: slice index; PPGTT: GPU virtual address
//!  8 gref  u32  grant of the page (map ops; zero for unmap ops)
//! 12 flags u32  bit 0: READ_ONLY (map ops; zero for unmap ops)
//! ```
//! All integers little-endian (x86).

use crate::ring::{Slot, SLOT_SIZE};
use crate::PAGE_SIZE;

mod field {
    use core::ops::Range;
    pub const ID: Range<usize> = 0..8;
    pub const OP: usize = 8;
    pub const FLAGS: usize = 9;
    pub const NR: Range<usize> = 10..12;
    pub const CTX: Range<usize> = 12..14;
    pub const RESERVED: Range<usize> = 14..16;
    pub const PAYLOAD: Range<usize> = 16..112;

    pub const RSP_ID: Range<usize> = 0..8;
    pub const RSP_OP: usize = 8;
    pub const RSP_STATUS: Range<usize> = 10..12;
    pub const RSP_DONE: Range<usize> = 12..16;
    pub const RSP_FIRST_FAILURE: Range<usize> = 16..20;
    pub const RSP_DETAIL: Range<usize> = 20..24;
    pub const RSP_VALUE: Range<usize> = 24..32;
    pub const RSP_INFO: Range<usize> = 32..56;

    pub const E_ADDR: Range<usize> = 0..8;
    pub const E_GREF: Range<usize> = 8..12;
    pub const E_FLAGS: Range<usize> = 12..16;
}

/// Bytes of one entry.
pub const ENTRY_SIZE: usize = 16;
/// Entries that fit inline in a request.
pub const INLINE_ENTRIES: usize = (field::PAYLOAD.end - field::PAYLOAD.start) / ENTRY_SIZE;
/// Entries in one directory page.
pub const ENTRIES_PER_DIR_PAGE: usize = PAGE_SIZE / ENTRY_SIZE;
/// Directory pages one request may name.
pub const MAX_DIR_PAGES: usize = 8;
/// Entries one request may carry (a whole 512-entry page table fits 4 times).
pub const MAX_ENTRIES: usize = MAX_DIR_PAGES * ENTRIES_PER_DIR_PAGE;
/// `ctx` of a `DebugReadback` that names a GGTT entry.
pub const GGTT_CONTEXT: u16 = 0xffff;

/// FNV-1a, 64-bit: the page hash `DebugReadback` answers with.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// `first_failure` when every entry was applied.
pub const NO_FAILURE: u32 = u32::MAX;

const FLAG_INDIRECT: u8 = 1;
const ENTRY_READ_ONLY: u32 = 1;

const _: () = assert!(INLINE_ENTRIES == 6);
const _: () = assert!(MAX_ENTRIES == 2048);
const _: () = assert!(field::PAYLOAD.end == SLOT_SIZE);

/// Operations a frontend can request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Op {
    /// What this guest may do: slice length, limits, capabilities.
    AttachInfo = 0x01,
    /// Map entries (slice index -> grant).
    GgttMap = 0x10,
    /// Clear entries (slice index).
    GgttUnmap = 0x11,
    /// Create a PPGTT context; its id comes back in `value`.
    ContextCreate = 0x20,
    /// Destroy context `ctx` and everything mapped in it.
    ContextDestroy = 0x21,
    /// Map entries (GPU virtual address -> grant) in context `ctx`.
    PpgttMap = 0x30,
    /// Clear entries (GPU virtual address) in context `ctx`.
    PpgttUnmap = 0x31,
    /// Completes when every earlier request is done and the GPU TLBs are clean.
    Barrier = 0x40,
    /// Debug only (off unless the backend enables it): read back, through the
    /// CPU, the page one entry maps. One inline entry; `ctx` is the PPGTT
    /// context or [`GGTT_CONTEXT`] for the GGTT; the response's `value` is the
    /// FNV-1a 64 hash of the 4096 bytes ([`fnv1a64`]), `detail` their first 4.
    DebugReadback = 0xf0,
}

impl Op {
    /// Decodes an op byte.
    pub fn from_u8(b: u8) -> Option<Op> {
        Some(match b {
            0x01 => Op::AttachInfo,
            0x10 => Op::GgttMap,
            0x11 => Op::GgttUnmap,
            0x20 => Op::ContextCreate,
            0x21 => Op::ContextDestroy,
            0x30 => Op::PpgttMap,
            0x31 => Op::PpgttUnmap,
            0x40 => Op::Barrier,
            0xf0 => Op::DebugReadback,
            _ => return None,
        })
    }

    /// Whether this op carries entries.
    pub const fn has_entries(self) -> bool {
        matches!(
            self,
            Op::GgttMap | Op::GgttUnmap | Op::PpgttMap | Op::PpgttUnmap | Op::DebugReadback
        )
    }

    /// Whether this op names a PPGTT context in `ctx`.
    pub const fn has_context(self) -> bool {
        matches!(self, Op::ContextDestroy | Op::PpgttMap | Op::PpgttUnmap | Op::DebugReadback)
    }

    /// Whether entries carry a grant and flags (map ops) or only an address.
    pub const fn maps(self) -> bool {
        matches!(self, Op::GgttMap | Op::PpgttMap)
    }
}

/// Why a request slot or an entry was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Unknown op byte.
    UnknownOp(u8),
    /// Unknown bits in `flags`.
    BadFlags(u8),
    /// Reserved field not zero, or `ctx` set for an op without a context.
    ReservedNotZero,
    /// `nr` is zero for an op with entries, nonzero for one without, or over
    /// the inline or indirect capacity.
    BadCount { nr: u16, max: u16 },
    /// A directory gref slot past the ones `nr` needs is not zero.
    StrayDirectoryRef,
    /// Entry `index` has unknown flag bits or a nonzero field its op does not use.
    BadEntry { index: u32 },
}

/// Where a request's entries are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entries<'a> {
    /// No entries.
    None,
    /// `nr` entries inline in the slot (`nr * 16` bytes).
    Inline(&'a [u8]),
    /// `nr` entries in the listed directory pages (grants from the frontend).
    Indirect(&'a [u8]),
}

impl Entries<'_> {
    /// The directory page grants of an indirect request, in order.
    pub fn directory_refs(&self) -> impl Iterator<Item = u32> + '_ {
        let b: &[u8] = match self {
            Entries::Indirect(b) => b,
            _ => &[],
        };
        b.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
    }
}

/// A request slot, validated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    pub id: u64,
    pub op: Op,
    pub ctx: u16,
    pub nr: u16,
    pub entries: Entries<'a>,
}

#[inline]
fn u16_at(b: &[u8], r: core::ops::Range<usize>) -> u16 {
    u16::from_le_bytes([b[r.start], b[r.start + 1]])
}
#[inline]
fn u32_at(b: &[u8], r: core::ops::Range<usize>) -> u32 {
    u32::from_le_bytes([b[r.start], b[r.start + 1], b[r.start + 2], b[r.start + 3]])
}
#[inline]
fn u64_at(b: &[u8], r: core::ops::Range<usize>) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[r]);
    u64::from_le_bytes(x)
}

impl<'a> Request<'a> {
    /// Validates a slot copied out of the ring. The slot must not be shared
    /// memory: the caller copies it once (`BackRing::take_request` does).
    pub fn parse(slot: &'a Slot) -> Result<Request<'a>, DecodeError> {
        let op = Op::from_u8(slot[field::OP]).ok_or(DecodeError::UnknownOp(slot[field::OP]))?;
        let flags = slot[field::FLAGS];
        if flags & !FLAG_INDIRECT != 0 {
            return Err(DecodeError::BadFlags(flags));
        }
        let nr = u16_at(slot, field::NR);
        let ctx = u16_at(slot, field::CTX);
        if u16_at(slot, field::RESERVED) != 0 || (!op.has_context() && ctx != 0) {
            return Err(DecodeError::ReservedNotZero);
        }
        let payload = &slot[field::PAYLOAD];
        let entries = if !op.has_entries() {
            if nr != 0 || flags != 0 {
                return Err(DecodeError::BadCount { nr, max: 0 });
            }
            if payload.iter().any(|&b| b != 0) {
                return Err(DecodeError::ReservedNotZero);
            }
            Entries::None
        } else if flags & FLAG_INDIRECT == 0 {
            if nr == 0 || nr as usize > INLINE_ENTRIES {
                return Err(DecodeError::BadCount { nr, max: INLINE_ENTRIES as u16 });
            }
            let (used, rest) = payload.split_at(nr as usize * ENTRY_SIZE);
            if rest.iter().any(|&b| b != 0) {
                return Err(DecodeError::ReservedNotZero);
            }
            Entries::Inline(used)
        } else {
            if nr == 0 || nr as usize > MAX_ENTRIES {
                return Err(DecodeError::BadCount { nr, max: MAX_ENTRIES as u16 });
            }
            let pages = dir_pages_for(nr as usize);
            let (used, rest) = payload.split_at(pages * 4);
            if rest.iter().any(|&b| b != 0) {
                return Err(DecodeError::StrayDirectoryRef);
            }
            Entries::Indirect(used)
        };
        Ok(Request { id: u64_at(slot, field::ID), op, ctx, nr, entries })
    }

    /// The id of a slot that may not parse (to answer it anyway).
    pub fn raw_id(slot: &Slot) -> u64 {
        u64_at(slot, field::ID)
    }

    /// The op byte of a slot that may not parse.
    pub fn raw_op(slot: &Slot) -> u8 {
        slot[field::OP]
    }

    /// The entry count a slot that may not parse claims (unchecked: for
    /// charging the work a request asked for, not for reading entries).
    pub fn raw_nr(slot: &Slot) -> u16 {
        u16_at(slot, field::NR)
    }
}

/// Directory pages needed for `nr` entries.
pub const fn dir_pages_for(nr: usize) -> usize {
    nr.div_ceil(ENTRIES_PER_DIR_PAGE)
}

/// One entry, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// GGTT: slice index; PPGTT: GPU virtual address.
    pub addr: u64,
    /// Grant of the page (map ops).
    pub gref: u32,
    /// Map read-only (map ops).
    pub read_only: bool,
}

impl Entry {
    /// Decodes entry `index` (for the error) from its 16 bytes, checking the
    /// fields `op` does not use are zero.
    #[inline]
    pub fn parse(b: &[u8], op: Op, index: u32) -> Result<Entry, DecodeError> {
        if b.len() != ENTRY_SIZE {
            return Err(DecodeError::BadEntry { index });
        }
        let addr = u64_at(b, field::E_ADDR);
        let gref = u32_at(b, field::E_GREF);
        let flags = u32_at(b, field::E_FLAGS);
        if flags & !ENTRY_READ_ONLY != 0 || (!op.maps() && (gref != 0 || flags != 0)) {
            return Err(DecodeError::BadEntry { index });
        }
        Ok(Entry { addr, gref, read_only: flags & ENTRY_READ_ONLY != 0 })
    }

    /// Encodes into 16 bytes.
    pub fn emit(&self, b: &mut [u8]) {
        b[field::E_ADDR].copy_from_slice(&self.addr.to_le_bytes());
        b[field::E_GREF].copy_from_slice(&self.gref.to_le_bytes());
        let flags = if self.read_only { ENTRY_READ_ONLY } else { 0 };
        b[field::E_FLAGS].copy_from_slice(&flags.to_le_bytes());
    }
}

/// Builds request slots (the frontend side).
pub struct RequestBuilder;

/// A request that cannot be built as asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuildError {
    /// Too many entries for inline (6) or for the directory pages given.
    TooManyEntries,
    /// More directory pages than `MAX_DIR_PAGES`, or fewer than `nr` needs.
    BadDirectory,
}

impl RequestBuilder {
    fn header(id: u64, op: Op, ctx: u16, nr: u16, flags: u8) -> Slot {
        let mut s = [0u8; SLOT_SIZE];
        s[field::ID].copy_from_slice(&id.to_le_bytes());
        s[field::OP] = op as u8;
        s[field::FLAGS] = flags;
        s[field::NR].copy_from_slice(&nr.to_le_bytes());
        s[field::CTX].copy_from_slice(&ctx.to_le_bytes());
        s
    }

    /// A request without entries (`AttachInfo`, `ContextCreate`,
    /// `ContextDestroy`, `Barrier`).
    pub fn simple(id: u64, op: Op, ctx: u16) -> Slot {
        Self::header(id, op, if op.has_context() { ctx } else { 0 }, 0, 0)
    }

    /// A request with up to [`INLINE_ENTRIES`] entries in the slot.
    pub fn inline(id: u64, op: Op, ctx: u16, entries: &[Entry]) -> Result<Slot, BuildError> {
        if entries.len() > INLINE_ENTRIES {
            return Err(BuildError::TooManyEntries);
        }
        let mut s = Self::header(id, op, ctx, entries.len() as u16, 0);
        for (i, e) in entries.iter().enumerate() {
            let at = field::PAYLOAD.start + i * ENTRY_SIZE;
            e.emit(&mut s[at..at + ENTRY_SIZE]);
        }
        Ok(s)
    }

    /// A request whose `nr` entries are in the directory pages granted as `dir_refs`.
    pub fn indirect(
        id: u64,
        op: Op,
        ctx: u16,
        nr: u16,
        dir_refs: &[u32],
    ) -> Result<Slot, BuildError> {
        if nr as usize > MAX_ENTRIES {
            return Err(BuildError::TooManyEntries);
        }
        if dir_refs.len() > MAX_DIR_PAGES || dir_refs.len() != dir_pages_for(nr as usize) {
            return Err(BuildError::BadDirectory);
        }
        let mut s = Self::header(id, op, ctx, nr, FLAG_INDIRECT);
        for (i, r) in dir_refs.iter().enumerate() {
            let at = field::PAYLOAD.start + i * 4;
            s[at..at + 4].copy_from_slice(&r.to_le_bytes());
        }
        Ok(s)
    }

    /// Fills directory page bytes with `entries` (at most 256), zeroing the rest.
    pub fn dir_page(entries: &[Entry], page: &mut [u8; PAGE_SIZE]) -> Result<(), BuildError> {
        if entries.len() > ENTRIES_PER_DIR_PAGE {
            return Err(BuildError::TooManyEntries);
        }
        page.fill(0);
        for (e, b) in entries.iter().zip(page.chunks_exact_mut(ENTRY_SIZE)) {
            e.emit(b);
        }
        Ok(())
    }
}

/// A response's status: 0 or a negative code. Unknown codes from a newer
/// backend decode as themselves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Status(pub i16);

macro_rules! statuses {
    ($($name:ident = $v:expr, $text:expr;)*) => {
        impl Status {
            $(#[doc = $text] pub const $name: Status = Status($v);)*
            /// A short name for logs.
            pub fn name(self) -> &'static str {
                match self.0 { $($v => stringify!($name),)* _ => "UNKNOWN" }
            }
            /// Every defined status.
            pub const ALL: &'static [Status] = &[$(Status($v)),*];
        }
    };
}

statuses! {
    OK = 0, "Every entry was applied.";
    BAD_OP = -1, "Unknown op.";
    BAD_REQUEST = -2, "Malformed header: flags, reserved fields, counts.";
    BAD_ENTRY = -3, "An entry has unknown flags or stray fields; `first_failure` names it.";
    BAD_DIRECTORY = -4, "A directory page grant could not be mapped; `detail` is the GNTST code.";
    NOT_ATTACHED = -10, "This frontend is not attached by the toolstack.";
    INDEX_OUT_OF_SLICE = -11, "A GGTT index outside the guest's slice; `value` is the index.";
    BAD_GPU_ADDRESS = -12, "A PPGTT address not 4 KiB aligned below 2^48; `value` is it.";
    UNKNOWN_CONTEXT = -13, "No such context for this guest; `value` is the id.";
    CONTEXT_LIMIT = -14, "The guest's context limit is reached.";
    PAGE_LIMIT = -15, "The guest's mapped-page limit is reached.";
    TABLE_PAGE_LIMIT = -16, "The guest's table-page limit is reached.";
    READ_ONLY_UNSUPPORTED = -17, "Read-only entries are not possible in this table (use PPGTT).";
    GRANT_MAPPED_READ_ONLY = -18, "The grant is mapped read-only; `value` is the gref.";
    GRANT_MAP_FAILED = -19, "Xen refused the grant; `value` is the gref, `detail` the GNTST code.";
    BACKEND_FULL = -20, "The backend is out of grant window, table pages or contexts.";
    TOO_LARGE = -21, "More entries than the backend accepts in one request.";
    DEBUG_DISABLED = -30, "Debug requests are not enabled in this backend.";
}

/// What a guest may do, returned by [`Op::AttachInfo`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AttachInfo {
    pub ggtt_len: u32,
    pub max_contexts: u16,
    /// Bit 0: GGTT read-only entries; bit 1: PPGTT read-only entries.
    pub caps: u16,
    pub max_pages: u32,
    pub max_table_pages: u32,
    pub max_entries: u32,
    pub protocol_version: u32,
}

/// A response slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Response {
    pub id: u64,
    /// The op byte of the request (raw: the request may not have parsed).
    pub op: u8,
    pub status: Status,
    pub done: u32,
    /// Index of the first entry not applied, or `NO_FAILURE`.
    pub first_failure: u32,
    pub detail: i32,
    pub value: u64,
    pub info: AttachInfo,
}

impl Response {
    /// A response to request `id`/`op` with everything else zero.
    pub fn new(id: u64, op: u8, status: Status) -> Response {
        Response {
            id,
            op,
            status,
            done: 0,
            first_failure: NO_FAILURE,
            detail: 0,
            value: 0,
            info: AttachInfo::default(),
        }
    }

    /// Encodes into a slot.
    pub fn emit(&self) -> Slot {
        let mut s = [0u8; SLOT_SIZE];
        s[field::RSP_ID].copy_from_slice(&self.id.to_le_bytes());
        s[field::RSP_OP] = self.op;
        s[field::RSP_STATUS].copy_from_slice(&self.status.0.to_le_bytes());
        s[field::RSP_DONE].copy_from_slice(&self.done.to_le_bytes());
        s[field::RSP_FIRST_FAILURE].copy_from_slice(&self.first_failure.to_le_bytes());
        s[field::RSP_DETAIL].copy_from_slice(&self.detail.to_le_bytes());
        s[field::RSP_VALUE].copy_from_slice(&self.value.to_le_bytes());
        let i = &self.info;
        let info = &mut s[field::RSP_INFO];
        info[0..4].copy_from_slice(&i.ggtt_len.to_le_bytes());
        info[4..6].copy_from_slice(&i.max_contexts.to_le_bytes());
        info[6..8].copy_from_slice(&i.caps.to_le_bytes());
        info[8..12].copy_from_slice(&i.max_pages.to_le_bytes());
        info[12..16].copy_from_slice(&i.max_table_pages.to_le_bytes());
        info[16..20].copy_from_slice(&i.max_entries.to_le_bytes());
        info[20..24].copy_from_slice(&i.protocol_version.to_le_bytes());
        s
    }

    /// Decodes a slot (the frontend side; any bytes decode).
    pub fn parse(s: &Slot) -> Response {
        let info = &s[field::RSP_INFO];
        Response {
            id: u64_at(s, field::RSP_ID),
            op: s[field::RSP_OP],
            status: Status(u16_at(s, field::RSP_STATUS) as i16),
            done: u32_at(s, field::RSP_DONE),
            first_failure: u32_at(s, field::RSP_FIRST_FAILURE),
            detail: u32_at(s, field::RSP_DETAIL) as i32,
            value: u64_at(s, field::RSP_VALUE),
            info: AttachInfo {
                ggtt_len: u32_at(info, 0..4),
                max_contexts: u16_at(info, 4..6),
                caps: u16_at(info, 6..8),
                max_pages: u32_at(info, 8..12),
                max_table_pages: u32_at(info, 12..16),
                max_entries: u32_at(info, 16..20),
                protocol_version: u32_at(info, 20..24),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PPGTT map of two inline entries, written out by hand from the layout.
    const PPGTT_MAP_TWO: [u8; 48] = [
        0x2a, 0, 0, 0, 0, 0, 0, 0, // id 42
        0x30, 0x00, 0x02, 0x00, 0x03, 0x00, 0x00, 0x00, // op, flags, nr 2, ctx 3, reserved
        0x00, 0x10, 0, 0, 0, 0, 0, 0, 0x07, 0, 0, 0, 0x00, 0, 0, 0, // 0x1000 -> gref 7 rw
        0x00, 0x20, 0, 0, 0x01, 0, 0, 0, 0x08, 0, 0, 0, 0x01, 0, 0,
        0, // 0x1_0000_2000 -> gref 8 ro
    ];

    fn slot_from(prefix: &[u8]) -> Slot {
        let mut s = [0u8; SLOT_SIZE];
        s[..prefix.len()].copy_from_slice(prefix);
        s
    }

    #[test]
    fn decodes_a_literal_inline_ppgtt_map() {
        let s = slot_from(&PPGTT_MAP_TWO);
        let r = Request::parse(&s).unwrap();
        assert_eq!((r.id, r.op, r.nr, r.ctx), (42, Op::PpgttMap, 2, 3));
        let Entries::Inline(b) = r.entries else { panic!("inline") };
        let e: Vec<_> = b
            .chunks_exact(16)
            .enumerate()
            .map(|(i, c)| Entry::parse(c, r.op, i as u32).unwrap())
            .collect();
        assert_eq!(e[0], Entry { addr: 0x1000, gref: 7, read_only: false });
        assert_eq!(e[1], Entry { addr: 0x1_0000_2000, gref: 8, read_only: true });
    }

    #[test]
    fn the_builder_emits_the_documented_bytes() {
        let e = [
            Entry { addr: 0x1000, gref: 7, read_only: false },
            Entry { addr: 0x1_0000_2000, gref: 8, read_only: true },
        ];
        let s = RequestBuilder::inline(42, Op::PpgttMap, 3, &e).unwrap();
        assert_eq!(s, slot_from(&PPGTT_MAP_TWO));
    }

    #[test]
    fn rejects_unknown_ops_flags_reserved_and_counts() {
        let mut s = slot_from(&PPGTT_MAP_TWO);
        s[8] = 0x99;
        assert_eq!(Request::parse(&s), Err(DecodeError::UnknownOp(0x99)));
        let mut s = slot_from(&PPGTT_MAP_TWO);
        s[9] = 0x80;
        assert_eq!(Request::parse(&s), Err(DecodeError::BadFlags(0x80)));
        let mut s = slot_from(&PPGTT_MAP_TWO);
        s[14] = 1;
        assert_eq!(Request::parse(&s), Err(DecodeError::ReservedNotZero));
        let mut s = slot_from(&PPGTT_MAP_TWO);
        s[10] = 7;
        assert_eq!(Request::parse(&s), Err(DecodeError::BadCount { nr: 7, max: 6 }));
        let mut s = slot_from(&PPGTT_MAP_TWO);
        s[10] = 1; // second entry's bytes now stray
        assert_eq!(Request::parse(&s), Err(DecodeError::ReservedNotZero));
        let s = RequestBuilder::simple(1, Op::GgttMap, 0);
        assert_eq!(Request::parse(&s), Err(DecodeError::BadCount { nr: 0, max: 6 }));
        let mut s = RequestBuilder::simple(1, Op::Barrier, 0);
        s[12] = 1; // ctx on an op without one
        assert_eq!(Request::parse(&s), Err(DecodeError::ReservedNotZero));
    }

    #[test]
    fn raw_nr_reads_the_claimed_entry_count_even_of_a_slot_that_does_not_parse() {
        let s = RequestBuilder::indirect(5, Op::GgttMap, 0, 512, &[11, 12]).unwrap();
        assert_eq!(Request::raw_nr(&s), 512);
        let mut garbage = [0u8; SLOT_SIZE];
        garbage[10..12].copy_from_slice(&0xffffu16.to_le_bytes());
        assert!(Request::parse(&garbage).is_err());
        assert_eq!(Request::raw_nr(&garbage), 0xffff);
    }

    #[test]
    fn indirect_requests_name_exactly_the_directory_pages_they_need() {
        let s = RequestBuilder::indirect(5, Op::GgttMap, 0, 512, &[11, 12]).unwrap();
        let r = Request::parse(&s).unwrap();
        assert_eq!(r.entries.directory_refs().collect::<Vec<_>>(), vec![11, 12]);
        assert_eq!(
            RequestBuilder::indirect(5, Op::GgttMap, 0, 513, &[11, 12]),
            Err(BuildError::BadDirectory)
        );
        let mut s = s;
        s[16 + 8] = 9; // a third gref where none belongs
        assert_eq!(Request::parse(&s), Err(DecodeError::StrayDirectoryRef));
        let mut s = RequestBuilder::indirect(5, Op::GgttMap, 0, 1, &[11]).unwrap();
        s[10..12].copy_from_slice(&(MAX_ENTRIES as u16 + 1).to_le_bytes());
        assert!(matches!(Request::parse(&s), Err(DecodeError::BadCount { .. })));
    }

    #[test]
    fn unmap_entries_must_not_carry_a_grant_or_flags() {
        let mut b = [0u8; 16];
        Entry { addr: 5, gref: 1, read_only: false }.emit(&mut b);
        assert_eq!(Entry::parse(&b, Op::GgttUnmap, 3), Err(DecodeError::BadEntry { index: 3 }));
        Entry { addr: 5, gref: 0, read_only: false }.emit(&mut b);
        assert!(Entry::parse(&b, Op::GgttUnmap, 3).is_ok());
        b[12] = 2;
        assert_eq!(Entry::parse(&b, Op::GgttMap, 0), Err(DecodeError::BadEntry { index: 0 }));
    }

    #[test]
    fn responses_round_trip() {
        let mut r = Response::new(77, Op::AttachInfo as u8, Status::GRANT_MAP_FAILED);
        r.done = 3;
        r.first_failure = 3;
        r.detail = -8;
        r.value = 0xdead;
        r.info = AttachInfo {
            ggtt_len: 1,
            max_contexts: 2,
            caps: 3,
            max_pages: 4,
            max_table_pages: 5,
            max_entries: 6,
            protocol_version: 1,
        };
        assert_eq!(Response::parse(&r.emit()), r);
        assert_eq!(Status::GRANT_MAP_FAILED.name(), "GRANT_MAP_FAILED");
        assert_eq!(Status(-999).name(), "UNKNOWN");
    }
}
