//! `gtt` refusals as wire statuses.

use gpuif::Status;
use gtt::Refusal;

/// The wire status for a refusal, with the value and detail fields the
/// response carries (see `gpuif::wire::Status` for what each means).
pub fn refusal_status(r: &Refusal) -> (Status, u64, i32) {
    match *r {
        Refusal::NotAttached { dom } => (Status::NOT_ATTACHED, dom.0 as u64, 0),
        Refusal::AlreadyAttached { .. }
        | Refusal::TooManyGuests { .. }
        | Refusal::SliceOutOfRange { .. }
        | Refusal::SliceOverlaps { .. }
        | Refusal::ContextLimitTooHigh { .. }
        | Refusal::DoesNotFit { .. } => (Status::NOT_ATTACHED, 0, 0),
        Refusal::BatchTooLarge { len, .. } => (Status::TOO_LARGE, len as u64, 0),
        Refusal::GgttIndexOutOfSlice { index, slice_len } => {
            (Status::INDEX_OUT_OF_SLICE, index as u64, slice_len as i32)
        }
        Refusal::BadGpuAddress { addr } => (Status::BAD_GPU_ADDRESS, addr, 0),
        Refusal::UnknownContext { ctx } => (Status::UNKNOWN_CONTEXT, ctx.0 as u64, 0),
        Refusal::ContextLimit { max } => (Status::CONTEXT_LIMIT, max as u64, 0),
        Refusal::PageLimit { max } => (Status::PAGE_LIMIT, max as u64, 0),
        Refusal::TablePageLimit { max } => (Status::TABLE_PAGE_LIMIT, max as u64, 0),
        Refusal::ReadOnlyUnsupported => (Status::READ_ONLY_UNSUPPORTED, 0, 0),
        Refusal::GrantMappedReadOnly { gref } => (Status::GRANT_MAPPED_READ_ONLY, gref.0 as u64, 0),
        Refusal::GrantMapFailed { gref, status } => {
            (Status::GRANT_MAP_FAILED, gref.0 as u64, status as i32)
        }
        Refusal::GrantWindowFull | Refusal::TablePoolExhausted | Refusal::ContextPoolExhausted => {
            (Status::BACKEND_FULL, 0, 0)
        }
    }
}
