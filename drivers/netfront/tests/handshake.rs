//! The vif handshake against an in-memory xenstored with libxl's layout and
//! permissions, netback's side played by the test.

use netfront::handshake::{self, Next, FEATURES};
use netfront::{HandshakeError, Ipv4Cidr};
use xenbus::{Access, Client, Perm, XenbusState};
use xenstored_model::Xenstored;

const ME: u16 = 5;
const BE: &str = "/local/domain/0/backend/vif/5/0";
const FE: &str = "/local/domain/5/device/vif/0";

/// xenstored with the vif as `xl create` leaves it (`libxl__device_nic_add`).
fn store(ip: Option<&str>) -> Xenstored {
    let xs = Xenstored::new();
    xs.add_domain(0, "Domain-0");
    xs.add_domain(ME, "gpu-dom");
    xs.with(|m| {
        // As libxl: each directory first, with its permissions; the nodes
        // written into it inherit them.
        m.apply(0, xenstored_model::tree::Op::Mkdir(BE.into())).unwrap();
        m.set_perms(0, BE, &[Perm::new(0, Access::None), Perm::new(ME, Access::Read)]).unwrap();
        for (k, v) in
            [("frontend", FE), ("frontend-id", "5"), ("mac", "00:16:3e:00:00:05"), ("state", "1")]
        {
            m.write(0, &format!("{BE}/{k}"), v).unwrap();
        }
        if let Some(ip) = ip {
            m.write(0, &format!("{BE}/ip"), ip).unwrap();
        }
        m.apply(0, xenstored_model::tree::Op::Mkdir(FE.into())).unwrap();
        m.set_perms(0, FE, &[Perm::new(ME, Access::None), Perm::new(0, Access::Read)]).unwrap();
        for (k, v) in [
            ("backend", BE),
            ("backend-id", "0"),
            ("mac", "00:16:3e:00:00:05"),
            ("handle", "0"),
            ("state", "1"),
        ] {
            m.write(0, &format!("{FE}/{k}"), v).unwrap();
        }
    });
    xs
}

fn netback(xs: &Xenstored, key: &str, value: &str) {
    xs.write(0, &format!("{BE}/{key}"), value);
}

#[test]
fn the_frontend_reads_its_mac_backend_and_address_from_libxls_nodes() {
    let xs = store(Some("192.0.2.2/28"));
    let mut c = Client::new(xs.connect(ME));
    let cfg = handshake::read_config(&mut c, 0).unwrap().expect("a vif");
    assert_eq!(cfg.backend, BE);
    assert_eq!(cfg.backend_id, 0);
    assert_eq!(cfg.mac, [0, 0x16, 0x3e, 0, 0, 5]);
    assert_eq!(cfg.ip, Some(Ipv4Cidr { addr: [192, 0, 2, 2], prefix: 28 }));
    assert_eq!(handshake::read_config(&mut c, 1).unwrap(), None, "no vif 1: endpoint off");
}

#[test]
fn bad_configuration_values_are_errors_naming_the_key() {
    let xs = store(Some("300.1.1.1"));
    let mut c = Client::new(xs.connect(ME));
    assert!(matches!(
        handshake::read_config(&mut c, 0),
        Err(HandshakeError::BadValue { key: "ip", value }) if value == "300.1.1.1"
    ));
    let xs = store(None);
    xs.write(ME, &format!("{FE}/mac"), "ff:ff:ff:ff:ff:ff");
    let mut c = Client::new(xs.connect(ME));
    assert!(matches!(
        handshake::read_config(&mut c, 0),
        Err(HandshakeError::BadValue { key: "mac", .. })
    ));
}

#[test]
fn the_handshake_publishes_rings_and_features_then_comes_up_with_netback() {
    let xs = store(None);
    let mut c = Client::new(xs.connect(ME));
    let cfg = handshake::read_config(&mut c, 0).unwrap().unwrap();
    let mut hs = handshake::Handshake::start(cfg, &mut c, "vif").unwrap();
    assert_eq!(hs.poll(&mut c).unwrap(), Next::Wait, "netback has not probed yet");
    netback(&xs, "feature-rx-copy", "1");
    netback(&xs, "state", "2");
    assert!(c.poll_event().unwrap().is_some(), "the state watch fired");
    assert_eq!(hs.poll(&mut c).unwrap(), Next::Publish);
    hs.publish(&mut c, 11, 12, 7).unwrap();
    assert_eq!(xs.read(&format!("{FE}/tx-ring-ref")).as_deref(), Some("11"));
    assert_eq!(xs.read(&format!("{FE}/rx-ring-ref")).as_deref(), Some("12"));
    assert_eq!(xs.read(&format!("{FE}/event-channel")).as_deref(), Some("7"));
    for (k, v) in FEATURES {
        assert_eq!(xs.read(&format!("{FE}/{k}")).as_deref(), Some(v), "{k}");
    }
    assert_eq!(xs.read(&format!("{FE}/state")).as_deref(), Some("4"));
    assert_eq!(xs.read(&format!("{FE}/multi-queue-num-queues")), None, "one queue");
    assert_eq!(hs.poll(&mut c).unwrap(), Next::Wait, "netback waits for its hotplug script");
    netback(&xs, "state", "4");
    assert_eq!(hs.poll(&mut c).unwrap(), Next::Up);
    assert!(hs.is_connected());
    netback(&xs, "state", "5");
    assert_eq!(hs.poll(&mut c).unwrap(), Next::Down(Some(XenbusState::Closing)));
    hs.close(&mut c).unwrap();
    assert_eq!(xs.read(&format!("{FE}/state")).as_deref(), Some("6"));
}

#[test]
fn a_backend_without_rx_copy_is_refused() {
    let xs = store(None);
    let mut c = Client::new(xs.connect(ME));
    let cfg = handshake::read_config(&mut c, 0).unwrap().unwrap();
    let mut hs = handshake::Handshake::start(cfg, &mut c, "vif").unwrap();
    netback(&xs, "state", "2");
    assert!(matches!(hs.poll(&mut c), Err(HandshakeError::NoRxCopy)));
}

#[test]
fn a_backend_directory_that_vanishes_brings_the_link_down() {
    let xs = store(None);
    let mut c = Client::new(xs.connect(ME));
    let cfg = handshake::read_config(&mut c, 0).unwrap().unwrap();
    let mut hs = handshake::Handshake::start(cfg, &mut c, "vif").unwrap();
    netback(&xs, "feature-rx-copy", "1");
    netback(&xs, "state", "2");
    assert_eq!(hs.poll(&mut c).unwrap(), Next::Publish);
    hs.publish(&mut c, 1, 2, 3).unwrap();
    netback(&xs, "state", "4");
    assert_eq!(hs.poll(&mut c).unwrap(), Next::Up);
    xs.with(|m| m.rm(0, BE)).unwrap();
    assert_eq!(hs.poll(&mut c).unwrap(), Next::Down(None));
}
