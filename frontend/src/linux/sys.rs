//! The only `unsafe` of the frontend: Linux ioctls on `/dev/xen/gntalloc` and
//! `/dev/xen/evtchn`, `mmap` of granted pages, and `poll`.
//!
//! The ioctl numbers and argument structs are written from Linux's
//! `include/uapi/xen/gntalloc.h` and `include/uapi/xen/evtchn.h` (both
//! `_IOC(_IOC_NONE, type, nr, sizeof(struct))`); the sizes are checked at
//! compile time.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, RawFd};

const PAGE: usize = 4096;

/// `_IOC(_IOC_NONE, ty, nr, size)` on x86 and arm: dir 0 in bits 30..32,
/// size in bits 16..30, type in bits 8..16, number in bits 0..8.
const fn ioc_none(ty: u8, nr: u8, size: usize) -> libc::c_ulong {
    ((size as libc::c_ulong) << 16) | ((ty as libc::c_ulong) << 8) | nr as libc::c_ulong
}

/// `struct ioctl_gntalloc_alloc_gref` with room for one grant ref.
#[repr(C)]
#[derive(Default)]
struct GntallocAllocGref {
    domid: u16,
    flags: u16,
    count: u32,
    index: u64,
    gref_ids: [u32; 1],
}

/// `struct ioctl_gntalloc_dealloc_gref`.
#[repr(C)]
struct GntallocDeallocGref {
    index: u64,
    count: u32,
}

/// `struct ioctl_evtchn_bind_unbound_port`, `ioctl_evtchn_unbind` and
/// `ioctl_evtchn_notify`: one `unsigned int` each.
#[repr(C)]
struct EvtchnArg {
    value: libc::c_uint,
}

const _: () = assert!(core::mem::size_of::<GntallocAllocGref>() == 24);
const _: () = assert!(core::mem::size_of::<GntallocDeallocGref>() == 16);
const _: () = assert!(core::mem::size_of::<EvtchnArg>() == 4);

/// `IOCTL_GNTALLOC_ALLOC_GREF` (`gntalloc.h`).
const IOCTL_GNTALLOC_ALLOC_GREF: libc::c_ulong =
    ioc_none(b'G', 5, core::mem::size_of::<GntallocAllocGref>());
/// `IOCTL_GNTALLOC_DEALLOC_GREF` (`gntalloc.h`).
const IOCTL_GNTALLOC_DEALLOC_GREF: libc::c_ulong =
    ioc_none(b'G', 6, core::mem::size_of::<GntallocDeallocGref>());
/// `GNTALLOC_FLAG_WRITABLE`.
const GNTALLOC_FLAG_WRITABLE: u16 = 1;
/// `IOCTL_EVTCHN_BIND_UNBOUND_PORT` (`evtchn.h`).
const IOCTL_EVTCHN_BIND_UNBOUND_PORT: libc::c_ulong =
    ioc_none(b'E', 2, core::mem::size_of::<EvtchnArg>());
/// `IOCTL_EVTCHN_UNBIND` (`evtchn.h`).
const IOCTL_EVTCHN_UNBIND: libc::c_ulong = ioc_none(b'E', 3, core::mem::size_of::<EvtchnArg>());
/// `IOCTL_EVTCHN_NOTIFY` (`evtchn.h`).
const IOCTL_EVTCHN_NOTIFY: libc::c_ulong = ioc_none(b'E', 4, core::mem::size_of::<EvtchnArg>());

const _: () = assert!(IOCTL_GNTALLOC_ALLOC_GREF == 0x0018_4705);
const _: () = assert!(IOCTL_EVTCHN_NOTIFY == 0x0004_4504);

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// `IOCTL_GNTALLOC_ALLOC_GREF` for one page: (mmap offset, grant ref).
pub fn gntalloc_alloc(fd: &impl AsRawFd, domid: u16, writable: bool) -> io::Result<(u64, u32)> {
    let flags = if writable { GNTALLOC_FLAG_WRITABLE } else { 0 };
    let mut arg = GntallocAllocGref { domid, flags, count: 1, ..Default::default() };
    // SAFETY: `arg` is the ioctl's struct with room for `count` = 1 grant ref,
    // alive across the call; the kernel writes only `index` and `gref_ids`.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), IOCTL_GNTALLOC_ALLOC_GREF, &mut arg) })?;
    Ok((arg.index, arg.gref_ids[0]))
}

/// `IOCTL_GNTALLOC_DEALLOC_GREF` for one page. The kernel ends the grant
/// when the page is also unmapped; if the grantee still maps it, the kernel
/// defers that (user space cannot see it).
pub fn gntalloc_dealloc(fd: &impl AsRawFd, index: u64) -> io::Result<()> {
    let mut arg = GntallocDeallocGref { index, count: 1 };
    // SAFETY: `arg` is the ioctl's struct, alive across the call; read only.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), IOCTL_GNTALLOC_DEALLOC_GREF, &mut arg) })?;
    Ok(())
}

/// One page of a `gntalloc` file mapped into our address space.
pub struct MappedPage {
    ptr: *mut u8,
}

impl MappedPage {
    /// Maps the page allocated at `index` (shared, read-write).
    pub fn map(fd: &impl AsRawFd, index: u64) -> io::Result<MappedPage> {
        let offset = libc::off_t::try_from(index)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "mmap offset too large"))?;
        // SAFETY: a fresh shared mapping of one page of the gntalloc file at
        // the offset the kernel gave us; no existing memory is affected.
        let ptr = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                PAGE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                offset,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(MappedPage { ptr: ptr.cast() })
    }

    /// Copies bytes out (volatile: the grantee may write concurrently).
    pub fn read(&self, offset: usize, buf: &mut [u8]) {
        assert!(offset.checked_add(buf.len()).is_some_and(|e| e <= PAGE), "inside the page");
        for (i, b) in buf.iter_mut().enumerate() {
            // SAFETY: inside the mapped page (asserted), which lives until drop.
            *b = unsafe { self.ptr.add(offset + i).read_volatile() };
        }
    }

    /// Copies bytes in.
    pub fn write(&mut self, offset: usize, data: &[u8]) {
        assert!(offset.checked_add(data.len()).is_some_and(|e| e <= PAGE), "inside the page");
        for (i, b) in data.iter().enumerate() {
            // SAFETY: inside the mapped page (asserted), which lives until drop.
            unsafe { self.ptr.add(offset + i).write_volatile(*b) };
        }
    }

    /// Reads an aligned `u32` in one access.
    pub fn read_u32(&self, offset: usize) -> u32 {
        assert!(offset % 4 == 0 && offset + 4 <= PAGE, "aligned, inside the page");
        // SAFETY: aligned (the page is page-aligned, the offset checked) and inside it.
        unsafe { self.ptr.add(offset).cast::<u32>().read_volatile() }
    }

    /// Writes an aligned `u32` in one access.
    pub fn write_u32(&mut self, offset: usize, value: u32) {
        assert!(offset % 4 == 0 && offset + 4 <= PAGE, "aligned, inside the page");
        // SAFETY: aligned (the page is page-aligned, the offset checked) and inside it.
        unsafe { self.ptr.add(offset).cast::<u32>().write_volatile(value) }
    }
}

impl Drop for MappedPage {
    fn drop(&mut self) {
        // SAFETY: `ptr` is our one-page mapping from `map`; nothing refers to
        // it after drop.
        unsafe { libc::munmap(self.ptr.cast(), PAGE) };
    }
}

fn evtchn_ioctl(fd: &impl AsRawFd, cmd: libc::c_ulong, value: u32) -> io::Result<libc::c_int> {
    let mut arg = EvtchnArg { value };
    // SAFETY: `arg` is the one-`unsigned int` struct each of these ioctls
    // takes, alive across the call; the kernel only reads it.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), cmd, &mut arg) })
}

/// `IOCTL_EVTCHN_BIND_UNBOUND_PORT`: a port `remote` may bind; returns it.
pub fn evtchn_alloc_unbound(fd: &impl AsRawFd, remote: u16) -> io::Result<u32> {
    evtchn_ioctl(fd, IOCTL_EVTCHN_BIND_UNBOUND_PORT, remote as u32).map(|p| p as u32)
}

/// `IOCTL_EVTCHN_NOTIFY`.
pub fn evtchn_notify(fd: &impl AsRawFd, port: u32) -> io::Result<()> {
    evtchn_ioctl(fd, IOCTL_EVTCHN_NOTIFY, port).map(|_| ())
}

/// `IOCTL_EVTCHN_UNBIND`.
pub fn evtchn_unbind(fd: &impl AsRawFd, port: u32) -> io::Result<()> {
    evtchn_ioctl(fd, IOCTL_EVTCHN_UNBIND, port).map(|_| ())
}

/// Makes `fd` non-blocking.
pub fn set_nonblocking(fd: &impl AsRawFd) -> io::Result<()> {
    let fd = fd.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own; no memory is involved.
    let flags = check(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    // SAFETY: as above.
    check(unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) })?;
    Ok(())
}

/// Waits until one of `fds` is readable or `timeout_ms` passed; returns
/// how many are ready (0: the timeout passed, or a signal interrupted).
pub fn poll_readable(fds: &[RawFd], timeout_ms: i32) -> io::Result<usize> {
    poll(fds, libc::POLLIN, timeout_ms)
}

/// Waits until `fd` is writable or `timeout_ms` passed; returns whether it is.
pub fn poll_writable(fd: RawFd, timeout_ms: i32) -> io::Result<bool> {
    poll(&[fd], libc::POLLOUT, timeout_ms).map(|n| n > 0)
}

fn poll(fds: &[RawFd], events: libc::c_short, timeout_ms: i32) -> io::Result<usize> {
    let mut p: Vec<libc::pollfd> =
        fds.iter().map(|&fd| libc::pollfd { fd, events, revents: 0 }).collect();
    // SAFETY: `p` holds `p.len()` initialised pollfds, alive across the call.
    let rc = unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, timeout_ms) };
    match check(rc) {
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
        other => other.map(|n| n as usize),
    }
}
