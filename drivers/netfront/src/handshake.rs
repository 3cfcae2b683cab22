//! The xenbus side of a vif: the frontend's configuration from xenstore and
//! the handshake with dom0's `xen-netback`, as a state machine the caller
//! steps on watch events (no waiting in here).
//!
//! ```text
//! device/vif/<devid>/  (ours)         backend dir (netback's, readable by us)
//!   backend, backend-id, mac            state, feature-rx-copy, ip (libxl's `ip=`)
//!   tx-ring-ref, rx-ring-ref, event-channel, request-rx-copy = 1,
//!   feature-rx-notify = 1, feature-no-csum-offload = 1, feature-sg = 0,
//!   feature-gso-tcpv4 = 0, feature-gso-tcpv6 = 0,
//!   feature-ipv6-csum-offload = 0, state
//! ```
//! 1. [`read_config`]: where the backend is, our MAC, our address;
//! 2. [`Handshake::start`]: watch the backend's `state`;
//! 3. backend `InitWait` (and `feature-rx-copy = 1`): [`Next::Publish`]: the
//!    caller grants the rings and buffers, allocates an unbound port, and
//!    calls [`Handshake::publish`]: one transaction with [`FEATURES`], the
//!    ring refs, the port and `state = Connected`;
//! 4. backend `Connected`: [`Next::Up`];
//! 5. backend leaving `Connected` (or its directory vanishing): [`Next::Down`].
//!
//! Negotiated: one queue (no `multi-queue-num-queues`), one event channel
//! (no split channels), receive by copy, rx notifications, and no offload:
//! no checksum offload either way, no scatter-gather, no GSO, no multicast
//! control.
//!
//! # Invariants
//! - Values read from xenstore are parsed strictly; a bad one is a typed
//!   error naming the key and the value, never a panic.
//! - The MAC handed out is unicast (smoltcp refuses anything else).

use alloc::format;
use alloc::string::{String, ToString};

use xenbus::{Client, ClientError, Transport, TxId, TxOutcome, XenbusState, XsError};

/// What the frontend writes besides the ring refs and the port: the
/// features it asks for (`1`) and those it declines (`0`).
pub const FEATURES: [(&str, &str); 7] = [
    ("request-rx-copy", "1"),
    ("feature-rx-notify", "1"),
    ("feature-no-csum-offload", "1"),
    ("feature-sg", "0"),
    ("feature-gso-tcpv4", "0"),
    ("feature-gso-tcpv6", "0"),
    ("feature-ipv6-csum-offload", "0"),
];

/// Attempts at the handshake transaction.
const TX_ATTEMPTS: u32 = 16;

/// An IPv4 address with its prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Cidr {
    pub addr: [u8; 4],
    pub prefix: u8,
}

/// The prefix assumed when `ip` has none.
pub const DEFAULT_PREFIX: u8 = 24;

/// The vif as the toolstack configured it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VifConfig {
    /// Our directory, relative: `device/vif/<devid>`.
    pub frontend: String,
    /// The backend's directory (absolute).
    pub backend: String,
    pub backend_id: u16,
    pub mac: [u8; 6],
    /// The backend directory's `ip` (libxl writes the vif's `ip=`), if any.
    pub ip: Option<Ipv4Cidr>,
}

/// What went wrong in the handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HandshakeError<E> {
    /// A xenstore request failed.
    Xenstore { op: &'static str, path: String, error: ClientError<E> },
    /// A node holds something that is not what netif.h says it should.
    BadValue { key: &'static str, value: String },
    /// The backend cannot copy into our buffers (`feature-rx-copy` is not 1).
    NoRxCopy,
    /// The handshake transaction kept conflicting.
    TransactionConflict { attempts: u32 },
}

impl<E: core::fmt::Debug> core::fmt::Display for HandshakeError<E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            HandshakeError::Xenstore { op, path, error } => {
                write!(f, "xenstore {op} {path}: {error:?}")
            }
            HandshakeError::BadValue { key, value } => {
                write!(f, "{key} = {value:?} is not valid")
            }
            HandshakeError::NoRxCopy => {
                write!(f, "the backend does not offer feature-rx-copy (needed: receive by copy)")
            }
            HandshakeError::TransactionConflict { attempts } => {
                write!(f, "the handshake transaction conflicted {attempts} times")
            }
        }
    }
}

type Res<T, X> = Result<X, HandshakeError<<T as Transport>::Error>>;

fn xs_err<'a, E>(
    op: &'static str,
    path: &'a str,
) -> impl FnOnce(ClientError<E>) -> HandshakeError<E> + 'a {
    move |error| HandshakeError::Xenstore { op, path: path.to_string(), error }
}

fn read_opt<T: Transport>(xs: &mut Client<T>, path: &str) -> Res<T, Option<String>> {
    match xs.read_str(TxId::NONE, path) {
        Ok(s) => Ok(Some(s.trim_end_matches('\0').to_string())),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(xs_err("read", path)(e)),
    }
}

/// Parses `aa:bb:cc:dd:ee:ff`; `None` unless six hex pairs of a unicast MAC.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in mac.iter_mut() {
        let p = parts.next()?;
        if p.len() != 2 || !p.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    if parts.next().is_some() || mac[0] & 1 != 0 || mac == [0; 6] {
        return None;
    }
    Some(mac)
}

/// Parses the first address of libxl's `ip` (space-separated):
/// `a.b.c.d` or `a.b.c.d/prefix` (1..=32; [`DEFAULT_PREFIX`] when absent).
/// Unspecified, broadcast, multicast and loopback addresses are refused.
pub fn parse_ip(s: &str) -> Option<Ipv4Cidr> {
    let first = s.split_ascii_whitespace().next()?;
    let (addr, prefix) = match first.split_once('/') {
        Some((a, p)) => {
            if p.is_empty() || p.len() > 2 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            (a, p.parse::<u8>().ok()?)
        }
        None => (first, DEFAULT_PREFIX),
    };
    if !(1..=32).contains(&prefix) {
        return None;
    }
    let mut out = [0u8; 4];
    let mut parts = addr.split('.');
    for o in out.iter_mut() {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *o = p.parse::<u8>().ok()?;
    }
    if parts.next().is_some() || out == [0; 4] || out == [255; 4] || out[0] >= 224 || out[0] == 127
    {
        return None;
    }
    Some(Ipv4Cidr { addr: out, prefix })
}

/// Reads vif `devid`'s configuration; `Ok(None)` when the domain has no
/// such vif (the management endpoint is then off).
pub fn read_config<T: Transport>(xs: &mut Client<T>, devid: u32) -> Res<T, Option<VifConfig>> {
    let frontend = format!("device/vif/{devid}");
    let Some(backend) = read_opt(xs, &format!("{frontend}/backend"))? else {
        return Ok(None);
    };
    let bad = |key, value: &str| HandshakeError::BadValue { key, value: value.to_string() };
    if !backend.starts_with('/') {
        return Err(bad("backend", &backend));
    }
    let id = read_opt(xs, &format!("{frontend}/backend-id"))?.unwrap_or_default();
    let backend_id = gpuif::keys::parse_u32(&id)
        .and_then(|v| u16::try_from(v).ok())
        .ok_or_else(|| bad("backend-id", &id))?;
    let mac_s = read_opt(xs, &format!("{frontend}/mac"))?.unwrap_or_default();
    let mac = parse_mac(&mac_s).ok_or_else(|| bad("mac", &mac_s))?;
    let ip = match read_opt(xs, &format!("{backend}/ip"))? {
        None => None,
        Some(s) => Some(parse_ip(&s).ok_or_else(|| bad("ip", &s))?),
    };
    Ok(Some(VifConfig { frontend, backend, backend_id, mac, ip }))
}

/// What the caller does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Nothing yet: wait for the next watch event.
    Wait,
    /// The backend is in `InitWait`: make the rings and call [`Handshake::publish`].
    Publish,
    /// Both sides are `Connected`: the rings carry packets.
    Up,
    /// The backend went away (its state, or `None` if its directory vanished).
    Down(Option<XenbusState>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    WaitInitWait,
    Publishing,
    WaitConnected,
    Connected,
    Closed,
}

/// One vif's handshake (see the module documentation).
#[derive(Debug)]
pub struct Handshake {
    pub cfg: VifConfig,
    phase: Phase,
}

impl Handshake {
    /// Watches the backend's `state` with `token`.
    pub fn start<T: Transport>(cfg: VifConfig, xs: &mut Client<T>, token: &str) -> Res<T, Self> {
        let path = format!("{}/state", cfg.backend);
        xs.watch(&path, token).map_err(xs_err("watch", &path))?;
        Ok(Handshake { cfg, phase: Phase::WaitInitWait })
    }

    /// Whether the rings are up.
    pub fn is_connected(&self) -> bool {
        self.phase == Phase::Connected
    }

    fn backend_state<T: Transport>(&self, xs: &mut Client<T>) -> Res<T, Option<XenbusState>> {
        let path = format!("{}/state", self.cfg.backend);
        match xs.read_state(TxId::NONE, &path) {
            Ok(s) => Ok(Some(s)),
            // A removed backend directory reads as absent, or as denied when
            // what is left above it is dom0's alone (C xenstored).
            Err(e) if e.is_not_found() || e.is_xs(&XsError::AccessDenied) => Ok(None),
            Err(ClientError::State(_)) => Ok(Some(XenbusState::Unknown)),
            Err(e) => Err(xs_err("read", &path)(e)),
        }
    }

    /// Looks at the backend's state (call on every watch event of the token).
    pub fn poll<T: Transport>(&mut self, xs: &mut Client<T>) -> Res<T, Next> {
        let be = self.backend_state(xs)?;
        let gone = matches!(be, None | Some(XenbusState::Closing | XenbusState::Closed));
        Ok(match self.phase {
            Phase::WaitInitWait if be == Some(XenbusState::InitWait) => {
                let path = format!("{}/feature-rx-copy", self.cfg.backend);
                if read_opt(xs, &path)?.as_deref() != Some("1") {
                    return Err(HandshakeError::NoRxCopy);
                }
                self.phase = Phase::Publishing;
                Next::Publish
            }
            Phase::Publishing => Next::Publish,
            Phase::WaitConnected if be == Some(XenbusState::Connected) => {
                self.phase = Phase::Connected;
                Next::Up
            }
            Phase::WaitConnected | Phase::Connected if gone => {
                self.phase = Phase::Closed;
                Next::Down(be)
            }
            _ => Next::Wait,
        })
    }

    /// Writes the rings, the port, [`FEATURES`] and `state = Connected` in
    /// one transaction (retried on conflict).
    pub fn publish<T: Transport>(
        &mut self,
        xs: &mut Client<T>,
        tx_ring_ref: u32,
        rx_ring_ref: u32,
        port: u32,
    ) -> Res<T, ()> {
        let fe = &self.cfg.frontend;
        let numbers =
            [("tx-ring-ref", tx_ring_ref), ("rx-ring-ref", rx_ring_ref), ("event-channel", port)];
        for _ in 0..TX_ATTEMPTS {
            let tx = xs.transaction_start().map_err(xs_err("transaction_start", fe))?;
            let mut write = |key: &str, value: &str| {
                let path = format!("{fe}/{key}");
                xs.write(tx, &path, value.as_bytes()).map_err(xs_err("write", &path))
            };
            let mut result = Ok(());
            for (k, v) in numbers {
                result = result.and_then(|()| write(k, &v.to_string()));
            }
            for (k, v) in FEATURES {
                result = result.and_then(|()| write(k, v));
            }
            result = result.and_then(|()| write("state", XenbusState::Connected.as_str()));
            if let Err(e) = result {
                let _ = xs.transaction_end(tx, false);
                return Err(e);
            }
            match xs.transaction_end(tx, true) {
                Ok(TxOutcome::Committed) => {
                    self.phase = Phase::WaitConnected;
                    return Ok(());
                }
                Ok(_) => continue,
                Err(e) => return Err(xs_err("transaction_end", fe)(e)),
            }
        }
        Err(HandshakeError::TransactionConflict { attempts: TX_ATTEMPTS })
    }

    /// Writes `state = Closed` (the backend left, or gpu-dom stops).
    pub fn close<T: Transport>(&mut self, xs: &mut Client<T>) -> Res<T, ()> {
        self.phase = Phase::Closed;
        let path = format!("{}/state", self.cfg.frontend);
        xs.write(TxId::NONE, &path, XenbusState::Closed.as_str().as_bytes())
            .map_err(xs_err("write", &path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_are_six_hex_pairs_of_a_unicast_address() {
        assert_eq!(parse_mac("00:16:3e:01:02:0a"), Some([0, 0x16, 0x3e, 1, 2, 10]));
        for bad in [
            "",
            "00:16:3e:01:02",
            "00:16:3e:01:02:0a:0b",
            "01:16:3e:01:02:0a",
            "00:00:00:00:00:00",
            "0:16:3e:01:02:0a",
            "00:16:3e:01:02:zz",
            "00-16-3e-01-02-0a",
            "+0:16:3e:01:02:0a",
        ] {
            assert_eq!(parse_mac(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn ip_is_an_address_with_an_optional_prefix() {
        assert_eq!(parse_ip("192.0.2.7/28"), Some(Ipv4Cidr { addr: [192, 0, 2, 7], prefix: 28 }));
        assert_eq!(parse_ip("192.0.2.7"), Some(Ipv4Cidr { addr: [192, 0, 2, 7], prefix: 24 }));
        assert_eq!(parse_ip("192.0.2.7 192.0.2.8").map(|c| c.addr), Some([192, 0, 2, 7]));
        for bad in [
            "",
            "192.0.2",
            "192.0.2.7.1",
            "192.0.2.256",
            "192.0.2.7/0",
            "192.0.2.7/33",
            "192.0.2.7/",
            "192.0.2.7/+8",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "127.0.0.1",
            "1.2.3.-4",
            "1..2.3",
        ] {
            assert_eq!(parse_ip(bad), None, "{bad:?}");
        }
    }
}
