//! `GNTTABOP_copy`: Xen copies granted pages into our own frames. Nothing is
//! mapped into our physmap, so nothing the copy touches becomes reachable
//! by a device we own (the backend fetches directory pages this way).
//!
//! # Invariants
//! - Only the destination buffer given is written (segments planned by
//!   [`crate::copy_plan`], each inside one page of the buffer).
//! - The source is always named by grant ref (`GNTCOPY_source_gref`): Xen
//!   checks the grant was made to us; a page the guest did not grant is
//!   never read.

use crate::copy_plan::{page_segments, PAGE};
use xen_abi::grant_table::*;
use xen_abi::xen::{DomId, DOMID_SELF};

/// Pages copied per hypercall.
pub const PAGES_PER_CALL: usize = 8;

/// Why a copy failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CopyError {
    /// `out` is shorter than the pages asked for, or not identity-mapped RAM.
    Buffer,
    /// Xen refused page `index` of the request with `GNTST_*` `status`.
    Xen { index: usize, status: i16 },
}

/// Copies the whole pages `dom` granted as `grefs` into `out` (at least
/// `grefs.len()` pages long), batched. On error the content of `out` is
/// unspecified; the first failing page is named.
pub fn copy_in(dom: DomId, grefs: &[GrantRef], out: &mut [u8]) -> Result<(), CopyError> {
    let need = grefs.len() * PAGE as usize;
    if out.len() < need {
        return Err(CopyError::Buffer);
    }
    let base = out.as_mut_ptr() as u64;
    // Everything we allocate (heap, stack, .bss) is identity-mapped RAM
    // below 4 GiB: its address is its guest-physical address.
    match base.checked_add(need as u64) {
        Some(end) if end <= 1 << 32 => {}
        _ => return Err(CopyError::Buffer),
    }
    for (c, chunk) in grefs.chunks(PAGES_PER_CALL).enumerate() {
        let mut ops = [GnttabCopy::default(); 2 * PAGES_PER_CALL];
        let mut page_of = [0usize; 2 * PAGES_PER_CALL];
        let mut n = 0;
        for (i, &gref) in chunk.iter().enumerate() {
            let page = c * PAGES_PER_CALL + i;
            let (segs, k) = page_segments(base + page as u64 * PAGE);
            for s in &segs[..k] {
                ops[n] = GnttabCopy {
                    source: GnttabCopyPtr { u: gref as u64, domid: dom, offset: s.src_offset },
                    dest: GnttabCopyPtr { u: s.dest_gfn, domid: DOMID_SELF, offset: s.dest_offset },
                    len: s.len,
                    flags: GNTCOPY_SOURCE_GREF,
                    status: 0,
                };
                page_of[n] = page;
                n += 1;
            }
        }
        // SAFETY: `ops[..n]` are initialised copy requests, alive across the
        // call; Xen writes their `status` fields, and writes data only into
        // the destination frames, which are pages of `out` (exclusively
        // borrowed here; planned by `page_segments` within `out[..need]`).
        let rc = unsafe {
            xen_abi::hypercall::grant_table_op(GNTTABOP_COPY, ops.as_mut_ptr().cast(), n as u32)
        };
        if rc < 0 {
            return Err(CopyError::Xen { index: page_of[0], status: GNTST_GENERAL_ERROR });
        }
        if let Some(k) = ops[..n].iter().position(|op| op.status != GNTST_OKAY) {
            return Err(CopyError::Xen { index: page_of[k], status: ops[k].status });
        }
    }
    Ok(())
}
