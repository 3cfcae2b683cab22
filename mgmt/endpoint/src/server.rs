//! The management endpoint's HTTP server over smoltcp.
//!
//! A fixed set of TCP sockets listens on the management address and port;
//! each serves one connection at a time, one request per connection:
//! read the head (`mgmt_http::parse`), answer, close. A socket comes back
//! to listening as soon as its connection ends, so a Prometheus scraping
//! every few seconds never waits for TCP's `TIME-WAIT`.
//!
//! A `/metrics` answer is not buffered: the connection keeps its own copy
//! of the [`Snapshot`] taken when the request arrived, and each round
//! renders it again straight into the free part of the socket's send
//! buffer, skipping what was sent (rendering is deterministic). Memory per
//! connection is one snapshot, whatever the exposition's size.
//!
//! # Invariants (what a slow or garbage client can do)
//! - At most [`Limits::connections`] connections exist; a client beyond them
//!   is refused by TCP (reset), never queued.
//! - A head must arrive within [`Limits::request_ms`] and be at most
//!   [`mgmt_http::MAX_HEAD`] bytes; garbage is answered 400 as soon as it
//!   is seen; the whole exchange is aborted after [`Limits::connection_ms`].
//! - [`Server::round`] does bounded work: the caller bounds the frames the
//!   device hands in per round; each connection is looked at once, reading
//!   at most one head and writing at most its free send buffer.
//! - No request changes anything outside this server: `/metrics` reads a
//!   [`Snapshot`] the caller fills, `/healthz` reads one flag.
//! - Buffers are allocated in [`Server::new`]; rounds do not allocate.

use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt::{self, Write};

use mgmt_http::{Resource, Route, Sink, Status, MAX_HEAD};
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::Device;
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::{
    EthernetAddress, HardwareAddress, IpAddress, IpCidr, IpListenEndpoint, Ipv4Address,
};

use crate::metrics::{self, Snapshot};

/// The endpoint's bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// TCP port on the management address.
    pub port: u16,
    /// Connections at once (one socket each).
    pub connections: usize,
    /// Time from accept to a complete request head.
    pub request_ms: u64,
    /// Time from accept to the last byte sent.
    pub connection_ms: u64,
    /// Each socket's TCP send buffer.
    pub tcp_tx_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            port: 80,
            connections: 4,
            request_ms: 5_000,
            connection_ms: 10_000,
            tcp_tx_bytes: 16 * 1024,
        }
    }
}

/// What the server did, for `/metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Responses by status, indexed like `mgmt_http::Status::ALL`.
    pub by_status: [u64; Status::ALL.len()],
    /// Connections aborted because a deadline passed.
    pub timeouts: u64,
    /// Connections the client reset or abandoned before the answer.
    pub resets: u64,
}

impl ServerStats {
    /// `(code, responses)` for every status the server can answer.
    pub fn responses(&self) -> impl Iterator<Item = (u16, u64)> + '_ {
        Status::ALL.iter().zip(self.by_status.iter()).map(|(s, n)| (s.code(), *n))
    }

    fn count(&mut self, s: Status) {
        if let Some(i) = Status::ALL.iter().position(|x| *x == s) {
            self.by_status[i] += 1;
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Listening,
    Reading,
    Writing,
    Closing,
}

/// What follows the head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Body {
    None,
    /// The connection's snapshot, rendered.
    Metrics,
    /// A short fixed text.
    Text(&'static str),
    /// An error status's reason phrase and a newline.
    Reason(Status),
}

struct Conn {
    handle: SocketHandle,
    phase: Phase,
    since_ms: u64,
    request: Vec<u8>,
    /// The response head (a fixed buffer; `head_len` bytes used).
    head: Vec<u8>,
    head_len: usize,
    body: Body,
    snapshot: Box<Snapshot>,
    /// Bytes of head + body.
    total: usize,
    sent: usize,
}

/// The endpoint: an interface, its sockets, and what each connection holds.
pub struct Server {
    iface: Interface,
    sockets: SocketSet<'static>,
    conns: Vec<Conn>,
    endpoint: IpListenEndpoint,
    limits: Limits,
    pub stats: ServerStats,
}

fn at(ms: u64) -> Instant {
    Instant::from_millis(ms as i64)
}

/// Counts what is written.
struct Count(usize);

impl Write for Count {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0 += s.len();
        Ok(())
    }
}

/// Copies the bytes from `skip` on into `out`, then stops the writer.
struct Window<'a> {
    skip: usize,
    out: &'a mut [u8],
    len: usize,
}

impl Write for Window<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut b = s.as_bytes();
        let drop = self.skip.min(b.len());
        self.skip -= drop;
        b = &b[drop..];
        let n = b.len().min(self.out.len() - self.len);
        self.out[self.len..self.len + n].copy_from_slice(&b[..n]);
        self.len += n;
        if self.len == self.out.len() {
            return Err(fmt::Error); // full: stop rendering
        }
        Ok(())
    }
}

impl Server {
    /// The interface on `device` with `mac` and `addr/prefix`, and the
    /// listening sockets. `seed` varies TCP's initial sequence numbers.
    pub fn new<D: Device>(
        device: &mut D,
        mac: [u8; 6],
        addr: [u8; 4],
        prefix: u8,
        limits: Limits,
        now_ms: u64,
        seed: u64,
    ) -> Server {
        let mut config = Config::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
        config.random_seed = seed;
        let mut iface = Interface::new(config, device, at(now_ms));
        let ip = Ipv4Address::new(addr[0], addr[1], addr[2], addr[3]);
        iface.update_ip_addrs(|a| {
            let _ = a.push(IpCidr::new(IpAddress::Ipv4(ip), prefix));
        });
        let mut sockets = SocketSet::new(Vec::with_capacity(limits.connections));
        let endpoint = IpListenEndpoint { addr: Some(IpAddress::Ipv4(ip)), port: limits.port };
        let mut conns = Vec::with_capacity(limits.connections);
        for _ in 0..limits.connections {
            let rx = tcp::SocketBuffer::new(vec![0u8; MAX_HEAD]);
            let tx = tcp::SocketBuffer::new(vec![0u8; limits.tcp_tx_bytes]);
            let mut s = tcp::Socket::new(rx, tx);
            let _ = s.listen(endpoint);
            conns.push(Conn {
                handle: sockets.add(s),
                phase: Phase::Listening,
                since_ms: now_ms,
                request: Vec::with_capacity(MAX_HEAD),
                head: vec![0; 256],
                head_len: 0,
                body: Body::None,
                snapshot: Box::default(),
                total: 0,
                sent: 0,
            });
        }
        Server { iface, sockets, conns, endpoint, limits, stats: ServerStats::default() }
    }

    /// One round: takes the frames the device hands in, works each
    /// connection once, sends what is ready. `serving` is what `/healthz`
    /// reports; `fill` is called (once per `/metrics` request) to fill the
    /// request's snapshot. Returns when the server next needs a round even
    /// without traffic (a TCP timer or a connection deadline), in ms.
    pub fn round<D: Device>(
        &mut self,
        now_ms: u64,
        device: &mut D,
        serving: bool,
        fill: &mut dyn FnMut(&mut Snapshot),
    ) -> Option<u64> {
        let now = at(now_ms);
        self.iface.poll(now, device, &mut self.sockets);
        for i in 0..self.conns.len() {
            self.work(i, now_ms, serving, fill);
        }
        self.iface.poll_egress(now, device, &mut self.sockets);
        let tcp = self.iface.poll_delay(now, &self.sockets).map(|d| now_ms + d.total_millis());
        let deadline = self
            .conns
            .iter()
            .filter(|c| c.phase != Phase::Listening)
            .map(|c| {
                let limit = if c.phase == Phase::Reading {
                    self.limits.request_ms
                } else {
                    self.limits.connection_ms
                };
                c.since_ms + limit
            })
            .min();
        match (tcp, deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Connections being served now.
    pub fn active(&self) -> usize {
        self.conns.iter().filter(|c| c.phase != Phase::Listening).count()
    }

    /// Ends connection `i` (a reset goes out with the next egress poll, if
    /// the connection was still open); the socket listens again next round.
    fn end(&mut self, i: usize) {
        let c = &mut self.conns[i];
        let s = self.sockets.get_mut::<tcp::Socket>(c.handle);
        if s.state() != tcp::State::Closed {
            s.abort();
        }
        c.phase = Phase::Listening;
        c.request.clear();
        c.body = Body::None;
        c.total = 0;
        c.sent = 0;
    }

    fn work(&mut self, i: usize, now_ms: u64, serving: bool, fill: &mut dyn FnMut(&mut Snapshot)) {
        let state = self.sockets.get::<tcp::Socket>(self.conns[i].handle).state();
        if self.conns[i].phase == Phase::Listening {
            match state {
                tcp::State::Listen => return,
                tcp::State::Closed => {
                    let _ = self
                        .sockets
                        .get_mut::<tcp::Socket>(self.conns[i].handle)
                        .listen(self.endpoint);
                    return;
                }
                _ => {
                    self.conns[i].phase = Phase::Reading;
                    self.conns[i].since_ms = now_ms;
                }
            }
        }
        let age = now_ms.saturating_sub(self.conns[i].since_ms);
        match self.conns[i].phase {
            Phase::Reading if age >= self.limits.request_ms => {
                self.stats.timeouts += 1;
                self.end(i)
            }
            Phase::Reading => self.read(i, serving, fill),
            Phase::Writing if age >= self.limits.connection_ms => {
                self.stats.timeouts += 1;
                self.end(i)
            }
            Phase::Writing => {
                self.discard_input(i);
                self.write(i)
            }
            Phase::Closing => {
                self.discard_input(i);
                // Our FIN is out: done once the peer closed too (or gave up).
                let done = matches!(state, tcp::State::TimeWait | tcp::State::Closed);
                if done || age >= self.limits.connection_ms {
                    self.end(i);
                }
            }
            Phase::Listening => {}
        }
    }

    /// Drops what the client still sends after its head (the rest of a
    /// garbage request): a client blocked on a full window would otherwise
    /// hold its connection until the deadline. At most one receive buffer
    /// per round.
    fn discard_input(&mut self, i: usize) {
        let s = self.sockets.get_mut::<tcp::Socket>(self.conns[i].handle);
        let _ = s.recv(|data| (data.len(), ()));
    }

    fn read(&mut self, i: usize, serving: bool, fill: &mut dyn FnMut(&mut Snapshot)) {
        let c = &mut self.conns[i];
        let s = self.sockets.get_mut::<tcp::Socket>(c.handle);
        if !s.is_active() {
            self.stats.resets += 1;
            return self.end(i);
        }
        let room = MAX_HEAD - c.request.len();
        let request = &mut c.request;
        let _ = s.recv(|data| {
            let n = data.len().min(room);
            request.extend_from_slice(&data[..n]);
            (n, ())
        });
        // The client sent its FIN (half-close): no more of the head will come.
        let peer_done = matches!(
            s.state(),
            tcp::State::CloseWait
                | tcp::State::LastAck
                | tcp::State::Closing
                | tcp::State::TimeWait
        );
        let route = match mgmt_http::parse(&c.request) {
            Ok(None) if peer_done => {
                self.stats.resets += 1;
                return self.end(i);
            }
            Ok(None) => return,
            Ok(Some(req)) => mgmt_http::route(&req),
            Err(e) => Route::Error(e.status()),
        };
        self.respond(i, route, serving, fill);
    }

    fn respond(
        &mut self,
        i: usize,
        route: Route,
        serving: bool,
        fill: &mut dyn FnMut(&mut Snapshot),
    ) {
        let c = &mut self.conns[i];
        let (status, content_type, body, head_only) = match route {
            Route::Serve { resource: Resource::Health, head_only } if serving => {
                (Status::Ok, mgmt_http::TEXT_CONTENT_TYPE, Body::Text("ok\n"), head_only)
            }
            Route::Serve { resource: Resource::Health, head_only } => {
                let text = Body::Text("unavailable\n");
                (Status::Unavailable, mgmt_http::TEXT_CONTENT_TYPE, text, head_only)
            }
            Route::Serve { resource: Resource::Metrics, head_only } => {
                fill(&mut c.snapshot);
                c.snapshot.serving = serving;
                c.snapshot.http = self.stats;
                c.snapshot.http.count(Status::Ok);
                (Status::Ok, mgmt_http::METRICS_CONTENT_TYPE, Body::Metrics, head_only)
            }
            Route::Error(st) => (st, mgmt_http::TEXT_CONTENT_TYPE, Body::Reason(st), false),
        };
        let body_len = match body {
            Body::None => 0,
            Body::Text(t) => t.len(),
            Body::Reason(st) => st.reason().len() + 1,
            Body::Metrics => {
                let mut n = Count(0);
                let _ = metrics::render(&c.snapshot, &mut n);
                n.0
            }
        };
        self.stats.count(status);
        let mut out = Sink::new(&mut c.head);
        mgmt_http::write_head(&mut out, status, content_type, body_len);
        let head_len = out.len();
        c.head_len = head_len;
        c.body = if head_only { Body::None } else { body };
        c.total = head_len + if head_only { 0 } else { body_len };
        c.sent = 0;
        c.phase = Phase::Writing;
        self.write(i);
    }

    fn write(&mut self, i: usize) {
        let c = &mut self.conns[i];
        let s = self.sockets.get_mut::<tcp::Socket>(c.handle);
        if !s.may_send() {
            self.stats.resets += 1;
            return self.end(i);
        }
        let head = &c.head[..c.head_len];
        let (body, snapshot, sent, total) = (c.body, &c.snapshot, c.sent, c.total);
        let n = s
            .send(|buf| {
                let mut w = Window { skip: sent, out: buf, len: 0 };
                // The head is ASCII (`write_head`).
                let _ = w.write_str(core::str::from_utf8(head).unwrap_or(""));
                match body {
                    Body::None => {}
                    Body::Text(t) => {
                        let _ = w.write_str(t);
                    }
                    Body::Reason(st) => {
                        let _ = w.write_str(st.reason()).and_then(|()| w.write_str("\n"));
                    }
                    Body::Metrics => {
                        let _ = metrics::render(snapshot, &mut w);
                    }
                }
                let n = w.len.min(total - sent);
                (n, n)
            })
            .unwrap_or(0);
        c.sent += n;
        if c.sent >= c.total {
            s.close();
            c.phase = Phase::Closing;
        }
    }
}
