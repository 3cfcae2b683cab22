//! The typed layer over `xen-abi`: each submodule owns one Xen facility and
//! is the only code that calls its hypercalls or touches its shared pages.

pub mod console;
pub mod crash;
pub mod error;
pub mod events;
pub mod foreign;
pub mod gnttab;
pub mod grant_copy;
pub mod hcall;
pub mod logger;
pub mod memory;
pub mod page;
pub mod params;
pub mod sched;
pub mod shared;
pub mod timer;
pub mod xenstore;

pub use error::XenError;
