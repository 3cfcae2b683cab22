//! One request, from a private slot copy to a response.

use gpuif::wire::{dir_pages_for, Entries, Entry, Op, Request, ENTRY_SIZE, GGTT_CONTEXT};
use gpuif::{fnv1a64, AttachInfo, Response, Slot, Status, MAX_ENTRIES, PAGE_SIZE};
use gtt::{Access, BatchOutcome, BusAddr, ContextId, DomId, GgttEntry, GpuTables, GrantMapper};
use gtt::{GrantRef, PpgttEntry, Refusal};

use crate::{refusal_status, Backend};

/// What the backend CPU needs of the platform besides `gtt`'s traits.
pub trait CpuAccess {
    /// Copies the pages `dom` granted as `grefs` into `out` (`grefs.len()`
    /// pages), read-only, by `GNTTABOP_copy`: nothing is mapped, so nothing
    /// becomes GPU-reachable. `Err((i, gntst))` names the first failure.
    fn copy_granted(
        &mut self,
        dom: DomId,
        grefs: &[u32],
        out: &mut [u8],
    ) -> Result<(), (usize, i16)>;

    /// Reads the page at backend bus address `bus` through the CPU (for
    /// `DebugReadback`). `false` if the address is not readable.
    fn read_bus(&mut self, bus: BusAddr, out: &mut [u8; PAGE_SIZE]) -> bool;
}

/// Protocol-level counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BackendStats {
    /// Requests answered.
    pub requests: u64,
    /// Requests rejected before reaching `gtt` (malformed, bad directory).
    pub malformed: u64,
    /// Ring protocol violations (each one disconnects a frontend).
    pub ring_errors: u64,
    /// Frontends disconnected (by request, death or error).
    pub disconnects: u64,
}

fn with_outcome(mut rsp: Response, out: BatchOutcome) -> Response {
    rsp.done = out.done;
    if let Some((i, r)) = out.refusal {
        let (status, value, detail) = refusal_status(&r);
        rsp.status = status;
        rsp.first_failure = i;
        rsp.value = value;
        rsp.detail = detail;
    }
    rsp
}

/// Decodes the entries in `bytes` into `out` with `convert`, stopping at the
/// first entry that does not decode; returns how many were decoded and, if it
/// stopped, the bad entry's index, status and value.
#[inline(always)]
fn decode<T>(
    bytes: &[u8],
    op: Op,
    out: &mut [T],
    convert: impl Fn(&Entry) -> Result<T, Status>,
) -> (usize, Option<(u32, Status, u64)>) {
    for (i, (b, slot)) in bytes.chunks_exact(ENTRY_SIZE).zip(out.iter_mut()).enumerate() {
        let e = match Entry::parse(b, op, i as u32) {
            Ok(e) => e,
            Err(_) => return (i, Some((i as u32, Status::BAD_ENTRY, 0))),
        };
        match convert(&e) {
            Ok(t) => *slot = t,
            Err(status) => return (i, Some((i as u32, status, e.addr))),
        }
    }
    (bytes.len() / ENTRY_SIZE, None)
}

fn access(read_only: bool) -> Access {
    if read_only {
        Access::ReadOnly
    } else {
        Access::ReadWrite
    }
}

impl<M: GrantMapper, W: GpuTables, D: CpuAccess> Backend<M, W, D> {
    /// Answers one request slot (a private copy) from `dom`.
    pub fn handle(&mut self, dom: DomId, slot: &Slot) -> Response {
        self.stats.requests += 1;
        let req = match Request::parse(slot) {
            Ok(r) => r,
            Err(e) => {
                self.stats.malformed += 1;
                let status = match e {
                    gpuif::DecodeError::UnknownOp(_) => Status::BAD_OP,
                    _ => Status::BAD_REQUEST,
                };
                log::debug!("vgpu dom{}: malformed request: {e:?}", dom.0);
                return Response::new(Request::raw_id(slot), Request::raw_op(slot), status);
            }
        };
        let rsp = Response::new(req.id, req.op as u8, Status::OK);
        match req.op {
            Op::AttachInfo => self.attach_info(dom, rsp),
            Op::ContextCreate => match self.engine.context_create(dom) {
                Ok(ctx) => Response { value: ctx.0 as u64, done: 1, ..rsp },
                Err(r) => with_outcome(rsp, BatchOutcome { done: 0, refusal: Some((0, r)) }),
            },
            Op::ContextDestroy => match self.engine.context_destroy(dom, ContextId(req.ctx)) {
                Ok(rel) => Response { done: 1, value: rel.grants_unmapped as u64, ..rsp },
                Err(r) => with_outcome(rsp, BatchOutcome { done: 0, refusal: Some((0, r)) }),
            },
            // Every batch ends with its own invalidation, so when this request
            // is taken every earlier one is complete and visible.
            Op::Barrier => {
                if self.engine.guest_stats(dom).is_none() {
                    let r = Refusal::NotAttached { dom };
                    return with_outcome(rsp, BatchOutcome { done: 0, refusal: Some((0, r)) });
                }
                rsp
            }
            Op::GgttMap | Op::GgttUnmap | Op::PpgttMap | Op::PpgttUnmap => {
                self.batch(dom, &req, rsp)
            }
            Op::DebugReadback => self.readback(dom, &req, rsp),
        }
    }

    fn attach_info(&mut self, dom: DomId, rsp: Response) -> Response {
        let Some(l) = self.engine.guest_limits(dom) else {
            let r = Refusal::NotAttached { dom };
            return with_outcome(rsp, BatchOutcome { done: 0, refusal: Some((0, r)) });
        };
        let caps = self.engine.caps();
        let info = AttachInfo {
            ggtt_len: l.ggtt_len,
            max_contexts: l.max_contexts,
            caps: caps.ggtt_read_only as u16 | (caps.ppgtt_read_only as u16) << 1,
            max_pages: l.max_pages,
            max_table_pages: l.max_table_pages,
            max_entries: self.engine.config().max_batch.min(MAX_ENTRIES) as u32,
            protocol_version: gpuif::keys::PROTOCOL_VERSION,
        };
        Response { info, done: 1, ..rsp }
    }

    /// The entry bytes of `req`: the inline payload, or the directory pages
    /// copied into `dir_buf`. Returns the byte length, or an error response.
    fn entry_bytes(&mut self, dom: DomId, req: &Request, rsp: Response) -> Result<usize, Response> {
        let n = req.nr as usize * ENTRY_SIZE;
        match req.entries {
            Entries::Inline(b) => {
                self.dir_buf[..n].copy_from_slice(b);
                Ok(n)
            }
            Entries::Indirect(_) => {
                let mut refs = [0u32; gpuif::wire::MAX_DIR_PAGES];
                let pages = dir_pages_for(req.nr as usize);
                for (r, g) in refs.iter_mut().zip(req.entries.directory_refs()) {
                    *r = g;
                }
                let out = &mut self.dir_buf[..pages * PAGE_SIZE];
                match self.dir.copy_granted(dom, &refs[..pages], out) {
                    Ok(()) => Ok(n),
                    Err((i, gntst)) => {
                        self.stats.malformed += 1;
                        Err(Response {
                            status: Status::BAD_DIRECTORY,
                            value: refs[i] as u64,
                            detail: gntst as i32,
                            first_failure: (i * gpuif::wire::ENTRIES_PER_DIR_PAGE) as u32,
                            ..rsp
                        })
                    }
                }
            }
            Entries::None => Ok(0),
        }
    }

    fn batch(&mut self, dom: DomId, req: &Request, rsp: Response) -> Response {
        if self.engine.guest_stats(dom).is_none() {
            // Not attached: touch nothing of the guest's (no grant copy either).
            let r = Refusal::NotAttached { dom };
            return with_outcome(rsp, BatchOutcome { done: 0, refusal: Some((0, r)) });
        }
        let len = match self.entry_bytes(dom, req, rsp) {
            Ok(len) => len,
            Err(rsp) => return rsp,
        };
        // Decode the private copy; a bad entry ends the batch there, like a refusal.
        let bytes = &self.dir_buf[..len];
        let (op, ctx) = (req.op, ContextId(req.ctx));
        let ggtt_index = |e: &Entry| u32::try_from(e.addr).map_err(|_| Status::INDEX_OUT_OF_SLICE);
        let (out, bad) = match op {
            Op::GgttMap => {
                let (n, bad) = decode(bytes, op, &mut self.ggtt_buf, |e| {
                    let index = ggtt_index(e)?;
                    Ok(GgttEntry { index, gref: GrantRef(e.gref), access: access(e.read_only) })
                });
                (self.engine.ggtt_map(dom, &self.ggtt_buf[..n]), bad)
            }
            Op::GgttUnmap => {
                let (n, bad) = decode(bytes, op, &mut self.index_buf, ggtt_index);
                (self.engine.ggtt_unmap(dom, &self.index_buf[..n]), bad)
            }
            Op::PpgttMap => {
                let (n, bad) = decode(bytes, op, &mut self.ppgtt_buf, |e| {
                    Ok(PpgttEntry {
                        addr: e.addr,
                        gref: GrantRef(e.gref),
                        access: access(e.read_only),
                    })
                });
                (self.engine.ppgtt_map(dom, ctx, &self.ppgtt_buf[..n]), bad)
            }
            _ => {
                let (n, bad) = decode(bytes, op, &mut self.addr_buf, |e| Ok(e.addr));
                (self.engine.ppgtt_unmap(dom, ctx, &self.addr_buf[..n]), bad)
            }
        };
        let rsp = with_outcome(rsp, out);
        match (out.refusal, bad) {
            // The decoded prefix went through; report the undecodable entry.
            (None, Some((i, status, value))) => {
                self.stats.malformed += 1;
                Response { status, first_failure: i, value, ..rsp }
            }
            _ => rsp,
        }
    }

    fn readback(&mut self, dom: DomId, req: &Request, rsp: Response) -> Response {
        if !self.debug_readback {
            return Response { status: Status::DEBUG_DISABLED, ..rsp };
        }
        let Entries::Inline(b) = req.entries else {
            return Response { status: Status::BAD_REQUEST, ..rsp };
        };
        let (Some(first), 1) = (b.get(..ENTRY_SIZE), req.nr) else {
            return Response { status: Status::BAD_REQUEST, ..rsp };
        };
        let Ok(e) = Entry::parse(first, req.op, 0) else {
            return Response { status: Status::BAD_ENTRY, first_failure: 0, ..rsp };
        };
        let target = if req.ctx == GGTT_CONTEXT {
            u32::try_from(e.addr).ok().and_then(|i| self.engine.ggtt_lookup(dom, i))
        } else {
            self.engine.ppgtt_lookup(dom, ContextId(req.ctx), e.addr)
        };
        let Some((bus, _)) = target else {
            return Response { status: Status::INDEX_OUT_OF_SLICE, value: e.addr, ..rsp };
        };
        let mut page = [0u8; PAGE_SIZE];
        if !self.dir.read_bus(bus, &mut page) {
            return Response { status: Status::BAD_GPU_ADDRESS, value: bus.0, ..rsp };
        }
        Response {
            done: 1,
            value: fnv1a64(&page),
            detail: i32::from_le_bytes([page[0], page[1], page[2], page[3]]),
            ..rsp
        }
    }
}
