//! A failed hypercall.

use core::fmt;

/// A hypercall's negative return value (`-XEN_E*`, `xen/include/public/errno.h`),
/// with the operation that returned it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XenError {
    /// What was called (e.g. `"EVTCHNOP_send"`).
    pub op: &'static str,
    /// The return value (negative).
    pub rc: i64,
}

impl XenError {
    /// `Ok(rc)` for `rc >= 0`, else the error.
    pub fn check(op: &'static str, rc: i64) -> Result<i64, XenError> {
        if rc < 0 {
            Err(XenError { op, rc })
        } else {
            Ok(rc)
        }
    }
}

fn errno_name(e: i64) -> &'static str {
    use xen_abi::xen::errno::*;
    match e {
        EPERM => "EPERM",
        ENOENT => "ENOENT",
        ENOMEM => "ENOMEM",
        EFAULT => "EFAULT",
        EBUSY => "EBUSY",
        EEXIST => "EEXIST",
        EINVAL => "EINVAL",
        ENOSYS => "ENOSYS",
        ETIMEDOUT => "ETIMEDOUT",
        _ => "errno",
    }
}

impl fmt::Display for XenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} returned {} ({})", self.op, self.rc, errno_name(-self.rc))
    }
}
