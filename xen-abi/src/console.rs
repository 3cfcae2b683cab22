//! The PV console ring: `xen/include/public/io/console.h`.

use core::mem::size_of;

/// `XENCONS_RING_IDX` (`io/console.h`): free-running ring index.
pub type XenconsRingIdx = u32;

/// `struct xencons_interface` (`io/console.h`, Xen 4.17 layout: later
/// versions append a `connection` byte, which this guest does not use).
/// `out` is guest -> console daemon, `in` the reverse; an index is masked with
/// the ring size to address a byte.
#[doc(alias = "xencons_interface")]
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct XenconsInterface {
    /// Console daemon -> guest bytes.
    pub in_: [u8; 1024],
    /// Guest -> console daemon bytes.
    pub out: [u8; 2048],
    /// Guest's read index into `in_`.
    pub in_cons: XenconsRingIdx,
    /// Daemon's write index into `in_`.
    pub in_prod: XenconsRingIdx,
    /// Daemon's read index into `out`.
    pub out_cons: XenconsRingIdx,
    /// Guest's write index into `out`.
    pub out_prod: XenconsRingIdx,
}
const _: () = assert!(size_of::<XenconsInterface>() == 3088);
const _: () = assert!(core::mem::offset_of!(XenconsInterface, out_prod) == 3084);
