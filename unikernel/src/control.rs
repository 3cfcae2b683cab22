//! The toolstack's power request: `control/shutdown` in the domain's home,
//! which libxl writes for `xl shutdown`/`xl reboot` and a PV-aware domain
//! acknowledges by clearing (as Linux's `drivers/xen/manage.c` does).
#![forbid(unsafe_code)]

use xen_abi::sched::{SHUTDOWN_POWEROFF, SHUTDOWN_REBOOT};
use xenbus::{Client, ClientError, Transport, TxId};

/// The node, relative to the domain's home.
pub const SHUTDOWN_PATH: &str = "control/shutdown";

/// A request the domain acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    /// The `SHUTDOWN_*` reason to pass to `SCHEDOP_shutdown`.
    pub reason: u32,
    /// The word libxl wrote.
    pub name: &'static str,
}

/// What a value of the node asks for: `Ok(None)` for none (empty),
/// `Err(value)` for a request this domain does not support (`suspend`).
pub fn parse(value: &str) -> Result<Option<Request>, &str> {
    let (reason, name) = match value {
        "" => return Ok(None),
        "poweroff" => (SHUTDOWN_POWEROFF, "poweroff"),
        "halt" => (SHUTDOWN_POWEROFF, "halt"),
        "reboot" => (SHUTDOWN_REBOOT, "reboot"),
        other => return Err(other),
    };
    Ok(Some(Request { reason, name }))
}

/// Reads the node and, if it holds a supported request, acknowledges it by
/// clearing the node and returns it. An absent node is no request; an
/// unsupported one is logged and left alone; a failed acknowledgement is
/// logged (the request still stands). Read errors are the caller's.
pub fn take_request<T: Transport>(
    xs: &mut Client<T>,
) -> Result<Option<Request>, ClientError<T::Error>> {
    let value = match xs.read_str(TxId::NONE, SHUTDOWN_PATH) {
        Ok(v) => v,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e),
    };
    let req = match parse(value) {
        Ok(Some(r)) => r,
        Ok(None) => return Ok(None),
        Err(other) => {
            log::warn!("unsupported shutdown request {other:?}: ignored");
            return Ok(None);
        }
    };
    if let Err(e) = xs.write(TxId::NONE, SHUTDOWN_PATH, b"") {
        log::warn!("cannot acknowledge the shutdown request: {e}");
    }
    Ok(Some(req))
}

#[cfg(test)]
mod tests {
    use super::*;
    use xenbus::{Access, Perm};
    use xenstored_model::Xenstored;

    const DOM: u16 = 5;

    /// A domain with `control/shutdown` as libxl makes it: owned by the
    /// domain (`libxl__domain_make`), written by dom0's toolstack.
    fn store() -> Xenstored {
        let xs = Xenstored::new();
        xs.add_domain(DOM, "guest");
        xs.with(|m| {
            m.write(0, "/local/domain/5/control/shutdown", "").unwrap();
            m.set_perms(0, "/local/domain/5/control/shutdown", &[Perm::new(DOM, Access::None)])
                .unwrap();
        });
        xs
    }

    #[test]
    fn each_libxl_word_maps_to_its_shutdown_reason() {
        assert_eq!(
            parse("poweroff"),
            Ok(Some(Request { reason: SHUTDOWN_POWEROFF, name: "poweroff" }))
        );
        assert_eq!(parse("halt").unwrap().unwrap().reason, SHUTDOWN_POWEROFF);
        assert_eq!(parse("reboot").unwrap().unwrap().reason, SHUTDOWN_REBOOT);
        assert_eq!(parse(""), Ok(None));
        assert_eq!(parse("suspend"), Err("suspend"));
    }

    #[test]
    fn a_request_is_taken_once_and_the_node_cleared() {
        let xs = store();
        xs.write(0, "/local/domain/5/control/shutdown", "reboot");
        let mut c = Client::new(xs.connect(DOM));
        let r = take_request(&mut c).unwrap().unwrap();
        assert_eq!((r.reason, r.name), (SHUTDOWN_REBOOT, "reboot"));
        assert_eq!(xs.read("/local/domain/5/control/shutdown").as_deref(), Some(""));
        assert_eq!(take_request(&mut c).unwrap(), None);
    }

    #[test]
    fn no_node_or_an_unsupported_word_is_no_request_and_is_left_alone() {
        let xs = store();
        let mut c = Client::new(xs.connect(DOM));
        assert_eq!(take_request(&mut c).unwrap(), None);
        xs.with(|m| m.rm(0, "/local/domain/5/control/shutdown")).unwrap();
        assert_eq!(take_request(&mut c).unwrap(), None);
        xs.write(0, "/local/domain/5/control/shutdown", "suspend");
        assert_eq!(take_request(&mut c).unwrap(), None);
        assert_eq!(xs.read("/local/domain/5/control/shutdown").as_deref(), Some("suspend"));
    }
}
