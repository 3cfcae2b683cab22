//! The domain's own memory map from Xen (`XENMEM_memory_map`, `memory.h`):
//! the fallback when the start info carries none (version 0, or no entries).

use super::XenError;
use crate::memmap::MemoryMap;
use xen_abi::memory::{XenMemoryMap, XENMEM_MEMORY_MAP};
use xen_abi::start_info::E820_ENTRY_SIZE;

const MAX_ENTRIES: usize = 128;

/// Asks Xen for our E820 map and parses it.
pub fn memory_map() -> Result<MemoryMap, XenError> {
    static BUF: spin::Mutex<[u8; MAX_ENTRIES * E820_ENTRY_SIZE]> =
        spin::Mutex::new([0; MAX_ENTRIES * E820_ENTRY_SIZE]);
    let mut buf = BUF.lock();
    let mut arg = XenMemoryMap { nr_entries: MAX_ENTRIES as u32, buffer: buf.as_mut_ptr() };
    // SAFETY: `arg` and the buffer it points at (room for `nr_entries`
    // entries) live across the call; Xen writes at most `nr_entries` entries.
    let rc = unsafe {
        xen_abi::hypercall::memory_op(XENMEM_MEMORY_MAP, (&mut arg as *mut XenMemoryMap).cast())
    };
    XenError::check("XENMEM_memory_map", rc)?;
    let n = (arg.nr_entries as usize).min(MAX_ENTRIES);
    Ok(MemoryMap::from_e820_bytes(&buf[..n * E820_ENTRY_SIZE]))
}
