//! Every refusal `gtt` can give, with the offending value.

use crate::pools::Pool;
use crate::types::{ContextId, DomId, GrantRef};

/// Why `gtt` refused an operation or one entry of a batch.
///
/// Each variant carries the value that was wrong, so a log line or an error
/// response can say exactly what to fix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The domain was not attached by the toolstack.
    NotAttached { dom: DomId },
    /// `attach` for a domain that is already attached.
    AlreadyAttached { dom: DomId },
    /// `attach` when the engine already serves its maximum number of guests.
    TooManyGuests { max: u16 },
    /// The requested GGTT slice does not fit in the GGTT the driver manages.
    SliceOutOfRange { base: u32, len: u32, ggtt_entries: u32 },
    /// The requested GGTT slice overlaps the slice of another guest.
    SliceOverlaps { base: u32, len: u32, other: DomId },
    /// `max_contexts` larger than the engine supports per guest.
    ContextLimitTooHigh { requested: u16, max: u16 },
    /// `attach`: the limits ask more of `pool` than is left unreserved.
    DoesNotFit { pool: Pool, requested: u64, free: u64, capacity: u64 },
    /// A batch longer than the engine's batch capacity.
    BatchTooLarge { len: usize, max: usize },
    /// A GGTT index outside the guest's slice (indexes are slice-relative).
    GgttIndexOutOfSlice { index: u32, slice_len: u32 },
    /// A PPGTT address that is not 4 KiB aligned or not below 2^48.
    BadGpuAddress { addr: u64 },
    /// A context id the guest does not have.
    UnknownContext { ctx: ContextId },
    /// The guest already has its maximum number of contexts.
    ContextLimit { max: u16 },
    /// The guest already has its maximum number of grant-mapped pages.
    PageLimit { max: u32 },
    /// The guest already uses its maximum number of PPGTT table pages.
    TablePageLimit { max: u32 },
    /// A read-only mapping asked of a table that has no read-only entries
    /// (the Gen8/Gen9 GGTT).
    ReadOnlyUnsupported,
    /// A writable entry for a grant that the backend mapped read-only.
    GrantMappedReadOnly { gref: GrantRef },
    /// Xen refused to map the grant; `status` is the `GNTST_*` code.
    GrantMapFailed { gref: GrantRef, status: i16 },
    /// The backend's physmap window for grant mappings is full.
    GrantWindowFull,
    /// The backend has no more table pages (engine or driver pool).
    TablePoolExhausted,
    /// The backend has no more context slots.
    ContextPoolExhausted,
}

/// The refusal reasons as counter indexes (see [`crate::Counters::refused`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum RefusalKind {
    NotAttached,
    AlreadyAttached,
    TooManyGuests,
    SliceOutOfRange,
    SliceOverlaps,
    ContextLimitTooHigh,
    DoesNotFit,
    BatchTooLarge,
    GgttIndexOutOfSlice,
    BadGpuAddress,
    UnknownContext,
    ContextLimit,
    PageLimit,
    TablePageLimit,
    ReadOnlyUnsupported,
    GrantMappedReadOnly,
    GrantMapFailed,
    GrantWindowFull,
    TablePoolExhausted,
    ContextPoolExhausted,
}

impl RefusalKind {
    /// Number of kinds (length of the counter array).
    pub const COUNT: usize = RefusalKind::ContextPoolExhausted as usize + 1;
}

impl Refusal {
    /// This refusal's kind.
    pub const fn kind(&self) -> RefusalKind {
        match self {
            Refusal::NotAttached { .. } => RefusalKind::NotAttached,
            Refusal::AlreadyAttached { .. } => RefusalKind::AlreadyAttached,
            Refusal::TooManyGuests { .. } => RefusalKind::TooManyGuests,
            Refusal::SliceOutOfRange { .. } => RefusalKind::SliceOutOfRange,
            Refusal::SliceOverlaps { .. } => RefusalKind::SliceOverlaps,
            Refusal::ContextLimitTooHigh { .. } => RefusalKind::ContextLimitTooHigh,
            Refusal::DoesNotFit { .. } => RefusalKind::DoesNotFit,
            Refusal::BatchTooLarge { .. } => RefusalKind::BatchTooLarge,
            Refusal::GgttIndexOutOfSlice { .. } => RefusalKind::GgttIndexOutOfSlice,
            Refusal::BadGpuAddress { .. } => RefusalKind::BadGpuAddress,
            Refusal::UnknownContext { .. } => RefusalKind::UnknownContext,
            Refusal::ContextLimit { .. } => RefusalKind::ContextLimit,
            Refusal::PageLimit { .. } => RefusalKind::PageLimit,
            Refusal::TablePageLimit { .. } => RefusalKind::TablePageLimit,
            Refusal::ReadOnlyUnsupported => RefusalKind::ReadOnlyUnsupported,
            Refusal::GrantMappedReadOnly { .. } => RefusalKind::GrantMappedReadOnly,
            Refusal::GrantMapFailed { .. } => RefusalKind::GrantMapFailed,
            Refusal::GrantWindowFull => RefusalKind::GrantWindowFull,
            Refusal::TablePoolExhausted => RefusalKind::TablePoolExhausted,
            Refusal::ContextPoolExhausted => RefusalKind::ContextPoolExhausted,
        }
    }
}

impl core::fmt::Display for Refusal {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Refusal::NotAttached { dom } => write!(f, "domain {} is not attached", dom.0),
            Refusal::AlreadyAttached { dom } => write!(f, "domain {} is already attached", dom.0),
            Refusal::TooManyGuests { max } => write!(f, "already serving {max} guests"),
            Refusal::SliceOutOfRange { base, len, ggtt_entries } => write!(
                f,
                "GGTT slice {base}+{len} does not fit in the {ggtt_entries} managed entries"
            ),
            Refusal::SliceOverlaps { base, len, other } => {
                write!(f, "GGTT slice {base}+{len} overlaps domain {}'s", other.0)
            }
            Refusal::ContextLimitTooHigh { requested, max } => {
                write!(f, "{requested} contexts requested, at most {max} per guest")
            }
            Refusal::DoesNotFit { pool, requested, free, capacity } => write!(
                f,
                "does not fit: {requested} {pool} asked, {free} of {capacity} free \
                 (the rest is reserved by attached guests)"
            ),
            Refusal::BatchTooLarge { len, max } => {
                write!(f, "batch of {len} entries, at most {max}")
            }
            Refusal::GgttIndexOutOfSlice { index, slice_len } => {
                write!(f, "GGTT index {index} outside the guest's {slice_len}-entry slice")
            }
            Refusal::BadGpuAddress { addr } => {
                write!(f, "GPU address {addr:#x} is not 4 KiB aligned below 2^48")
            }
            Refusal::UnknownContext { ctx } => write!(f, "no context {}", ctx.0),
            Refusal::ContextLimit { max } => write!(f, "context limit {max} reached"),
            Refusal::PageLimit { max } => write!(f, "mapped-page limit {max} reached"),
            Refusal::TablePageLimit { max } => write!(f, "table-page limit {max} reached"),
            Refusal::ReadOnlyUnsupported => {
                write!(f, "this table cannot hold read-only entries (use PPGTT)")
            }
            Refusal::GrantMappedReadOnly { gref } => {
                write!(f, "grant {} is mapped read-only; cannot map it writable", gref.0)
            }
            Refusal::GrantMapFailed { gref, status } => {
                write!(f, "Xen refused to map grant {} (GNTST {status})", gref.0)
            }
            Refusal::GrantWindowFull => write!(f, "the backend's grant window is full"),
            Refusal::TablePoolExhausted => write!(f, "the backend has no free table pages"),
            Refusal::ContextPoolExhausted => write!(f, "the backend has no free context slots"),
        }
    }
}
