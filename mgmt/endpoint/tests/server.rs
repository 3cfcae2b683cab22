//! The endpoint on the host: the real server on one smoltcp interface, and
//! clients on another, joined by an in-memory Ethernet wire. Simulated time.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use mgmt_endpoint::metrics::{GuestFigures, MAX_GUESTS};
use mgmt_endpoint::{Limits, Server, Snapshot};
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::socket::{icmp, tcp};
use smoltcp::time::Instant;
use smoltcp::wire::{
    EthernetAddress, HardwareAddress, Icmpv4Packet, Icmpv4Repr, IpAddress, IpCidr, Ipv4Address,
};

type Queue = Rc<RefCell<VecDeque<Vec<u8>>>>;

/// One end of the wire.
struct End {
    rx: Queue,
    tx: Queue,
}

struct Rx(Vec<u8>);
struct Tx(Queue);

impl phy::RxToken for Rx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for Tx {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut buf = vec![0; len];
        let r = f(&mut buf);
        self.0.borrow_mut().push_back(buf);
        r
    }
}

impl Device for End {
    type RxToken<'a> = Rx;
    type TxToken<'a> = Tx;
    fn receive(&mut self, _: Instant) -> Option<(Rx, Tx)> {
        let f = self.rx.borrow_mut().pop_front()?;
        Some((Rx(f), Tx(self.tx.clone())))
    }
    fn transmit(&mut self, _: Instant) -> Option<Tx> {
        Some(Tx(self.tx.clone()))
    }
    fn capabilities(&self) -> DeviceCapabilities {
        let mut c = DeviceCapabilities::default();
        c.medium = Medium::Ethernet;
        c.max_transmission_unit = 1514;
        c
    }
}

const SERVER_IP: [u8; 4] = [192, 0, 2, 2];
const CLIENT_IP: Ipv4Address = Ipv4Address::new(192, 0, 2, 1);

struct Net {
    server: Server,
    sdev: End,
    client: Interface,
    cdev: End,
    sockets: SocketSet<'static>,
    now: u64,
    serving: bool,
    snapshot: Snapshot,
    fills: usize,
}

impl Net {
    fn new(limits: Limits) -> Net {
        let (a, b): (Queue, Queue) = Default::default();
        let mut sdev = End { rx: a.clone(), tx: b.clone() };
        let mut cdev = End { rx: b, tx: a };
        let server = Server::new(&mut sdev, [0, 0x16, 0x3e, 0, 0, 2], SERVER_IP, 24, limits, 0, 7);
        let mut cfg = Config::new(HardwareAddress::Ethernet(EthernetAddress([2, 0, 0, 0, 0, 1])));
        cfg.random_seed = 3;
        let mut client = Interface::new(cfg, &mut cdev, Instant::from_millis(0));
        client.update_ip_addrs(|a| {
            a.push(IpCidr::new(IpAddress::Ipv4(CLIENT_IP), 24)).unwrap();
        });
        Net {
            server,
            sdev,
            client,
            cdev,
            sockets: SocketSet::new(vec![]),
            now: 0,
            serving: true,
            snapshot: Snapshot::default(),
            fills: 0,
        }
    }

    /// Runs both sides for `ms` of simulated time, 1 ms per step.
    fn run(&mut self, ms: u64) {
        for _ in 0..ms {
            self.now += 1;
            let t = Instant::from_millis(self.now as i64);
            self.client.poll(t, &mut self.cdev, &mut self.sockets);
            let (snap, fills) = (&self.snapshot, &mut self.fills);
            self.server.round(self.now, &mut self.sdev, self.serving, &mut |s| {
                *fills += 1;
                *s = snap.clone();
            });
            self.client.poll(t, &mut self.cdev, &mut self.sockets);
        }
    }

    fn connect(&mut self, port: u16) -> SocketHandle {
        let rx = tcp::SocketBuffer::new(vec![0; 256 * 1024]);
        let tx = tcp::SocketBuffer::new(vec![0; 8192]);
        let h = self.sockets.add(tcp::Socket::new(rx, tx));
        let local = 40000 + self.sockets.iter().count() as u16;
        let cx = self.client.context();
        let ip = Ipv4Address::new(SERVER_IP[0], SERVER_IP[1], SERVER_IP[2], SERVER_IP[3]);
        self.sockets
            .get_mut::<tcp::Socket>(h)
            .connect(cx, (IpAddress::Ipv4(ip), port), local)
            .unwrap();
        h
    }

    fn send(&mut self, h: SocketHandle, data: &[u8]) {
        let s = self.sockets.get_mut::<tcp::Socket>(h);
        assert_eq!(s.send_slice(data).unwrap(), data.len());
    }

    fn received(&mut self, h: SocketHandle) -> Vec<u8> {
        let s = self.sockets.get_mut::<tcp::Socket>(h);
        let mut out = vec![];
        while let Ok(n) = s.recv(|b| (b.len(), b.to_vec())) {
            if n.is_empty() {
                break;
            }
            out.extend(n);
        }
        out
    }

    fn state(&self, h: SocketHandle) -> tcp::State {
        self.sockets.get::<tcp::Socket>(h).state()
    }

    /// A whole exchange: connect, send `request`, collect until the server closes.
    fn exchange(&mut self, request: &[u8]) -> String {
        let h = self.connect(80);
        self.run(5);
        self.send(h, request);
        let mut got = vec![];
        for _ in 0..2000 {
            self.run(1);
            got.extend(self.received(h));
            if !self.sockets.get::<tcp::Socket>(h).may_recv() {
                break;
            }
        }
        self.sockets.get_mut::<tcp::Socket>(h).close();
        self.run(5);
        self.sockets.remove(h);
        String::from_utf8(got).unwrap()
    }
}

fn big_snapshot() -> Snapshot {
    let mut s = Snapshot { serving: true, ..Default::default() };
    for d in 0..MAX_GUESTS as u16 {
        let mut g =
            GuestFigures { domid: d + 2, grants_mapped: 1000 + d as u64, ..Default::default() };
        g.name = heapless::String::try_from("a-guest-with-a-long-name-for-labels").unwrap();
        g.results.push(("OK", 5)).unwrap();
        g.limits.push(("pages", 1024, 12)).unwrap();
        s.guests.push(g).unwrap();
    }
    s
}

fn body(response: &str) -> &str {
    response.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("")
}

fn content_length(response: &str) -> usize {
    let head = response.split_once("\r\n\r\n").unwrap().0;
    let line = head.lines().find(|l| l.starts_with("Content-Length: ")).unwrap();
    line["Content-Length: ".len()..].parse().unwrap()
}

#[test]
fn metrics_larger_than_the_send_buffer_arrive_whole_and_parse() {
    let mut n = Net::new(Limits::default());
    n.snapshot = big_snapshot();
    let r = n.exchange(b"GET /metrics HTTP/1.1\r\nHost: 192.0.2.2\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r:.200}");
    assert!(r.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
    let b = body(&r);
    assert!(b.len() > 16 * 1024, "{} bytes: more than one send buffer", b.len());
    assert_eq!(b.len(), content_length(&r));
    let exp = openmetrics_parser::prometheus::parse_prometheus(b).unwrap();
    assert_eq!(exp.families["gpu_dom_guest_grants_mapped"].iter_samples().count(), MAX_GUESTS);
    assert!(b.contains("gpu_dom_mgmt_http_responses_total{code=\"200\"} 1\n"), "counts itself");
    assert_eq!(n.fills, 1);
}

#[test]
fn healthz_says_whether_gpu_dom_serves_and_head_sends_no_body() {
    let mut n = Net::new(Limits::default());
    let r = n.exchange(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 200 OK\r\n") && r.ends_with("\r\n\r\nok\n"), "{r}");
    n.serving = false;
    let r = n.exchange(b"GET /healthz HTTP/1.0\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{r}");
    let r = n.exchange(b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 200 OK\r\n") && r.ends_with("\r\n\r\n"), "{r}");
    assert!(content_length(&r) > 0);
}

#[test]
fn errors_get_their_status_and_the_connection_closes() {
    let mut n = Net::new(Limits::default());
    for (req, status) in [
        (&b"\x16\x03\x01garbage"[..], "400 Bad Request"),
        (
            b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
            "405 Method Not Allowed",
        ),
        (b"GET /admin HTTP/1.1\r\nHost: x\r\n\r\n", "404 Not Found"),
        (b"GET / HTTP/3.0\r\n\r\n", "505 HTTP Version Not Supported"),
    ] {
        let r = n.exchange(req);
        assert!(r.starts_with(&format!("HTTP/1.1 {status}\r\n")), "{r}");
        assert_eq!(body(&r).len(), content_length(&r));
    }
    let mut big = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Pad: ".to_vec();
    big.resize(3000, b'a');
    let r = n.exchange(&big);
    assert!(r.starts_with("HTTP/1.1 431 "), "{r}");
    assert_eq!(n.server.active(), 0);
}

#[test]
fn a_slow_client_is_dropped_at_its_deadline_while_others_are_served() {
    let limits = Limits::default();
    let mut n = Net::new(limits);
    let slow = n.connect(80);
    n.run(5);
    n.send(slow, b"GET /metr");
    n.run(100);
    assert_eq!(n.server.active(), 1);
    let r = n.exchange(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 200 OK"), "served beside the slow one");
    n.run(limits.request_ms);
    assert_eq!(n.server.stats.timeouts, 1);
    assert!(matches!(n.state(slow), tcp::State::Closed), "reset by the server: {}", n.state(slow));
    assert_eq!(n.server.active(), 0);
}

#[test]
fn clients_beyond_the_connection_limit_are_refused_not_queued() {
    let limits = Limits { connections: 2, ..Limits::default() };
    let mut n = Net::new(limits);
    let a = n.connect(80);
    let b = n.connect(80);
    n.run(10);
    let c = n.connect(80);
    n.run(10);
    assert_eq!(n.state(a), tcp::State::Established);
    assert_eq!(n.state(b), tcp::State::Established);
    assert_eq!(n.state(c), tcp::State::Closed, "reset: no socket listens");
    assert_eq!(n.server.active(), 2);
}

#[test]
fn a_garbage_client_that_keeps_sending_is_answered_and_its_slot_freed() {
    let mut n = Net::new(Limits::default());
    let h = n.connect(80);
    n.run(5);
    let garbage: Vec<u8> = (0..6000u32).map(|i| (i * 7 + 3) as u8).collect();
    n.send(h, &garbage[..4000]);
    n.run(50);
    let s = n.sockets.get_mut::<tcp::Socket>(h);
    let _ = s.send_slice(&garbage[4000..]);
    n.run(50);
    let got = String::from_utf8_lossy(&n.received(h)).into_owned();
    assert!(got.starts_with("HTTP/1.1 400 Bad Request"), "{got}");
    assert_eq!(n.sockets.get::<tcp::Socket>(h).send_queue(), 0, "everything it sent was taken");
    n.sockets.get_mut::<tcp::Socket>(h).close();
    n.run(50);
    assert_eq!(n.server.active(), 0, "the slot listens again long before any deadline");
}

#[test]
fn nothing_listens_on_other_ports() {
    let mut n = Net::new(Limits::default());
    let h = n.connect(22);
    n.run(10);
    assert_eq!(n.state(h), tcp::State::Closed);
}

#[test]
fn ping_gets_an_echo_reply() {
    let mut n = Net::new(Limits::default());
    let rx = icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 4], vec![0; 512]);
    let tx = icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 4], vec![0; 512]);
    let h = n.sockets.add(icmp::Socket::new(rx, tx));
    n.sockets.get_mut::<icmp::Socket>(h).bind(icmp::Endpoint::Ident(0x22)).unwrap();
    let echo = Icmpv4Repr::EchoRequest { ident: 0x22, seq_no: 1, data: b"gpu-dom" };
    let mut bytes = vec![0; echo.buffer_len()];
    echo.emit(&mut Icmpv4Packet::new_unchecked(&mut bytes), &Default::default());
    let server = IpAddress::Ipv4(Ipv4Address::new(192, 0, 2, 2));
    n.sockets.get_mut::<icmp::Socket>(h).send_slice(&bytes, server).unwrap();
    n.run(20);
    let (reply, from) =
        n.sockets.get_mut::<icmp::Socket>(h).recv().map(|(d, a)| (d.to_vec(), a)).unwrap();
    assert_eq!(from, server);
    let p = Icmpv4Packet::new_checked(&reply).unwrap();
    let r = Icmpv4Repr::parse(&p, &Default::default()).unwrap();
    assert_eq!(r, Icmpv4Repr::EchoReply { ident: 0x22, seq_no: 1, data: b"gpu-dom" });
}
