//! Fuzz the xenstore decoders with what a hostile or broken xenstored could send:
//! arbitrary bytes are framed into messages, and each message is decoded and
//! its lists walked. Nothing may panic, allocate per input length, or read out
//! of bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xenbus::{Framer, Reply};

fuzz_target!(|data: &[u8]| {
    // Split the input at a point chosen by its first byte, so chunk boundaries vary.
    let split = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    let (head, tail) = data.split_at(split);
    let mut framer = Framer::new();
    for chunk in [head, tail] {
        let mut input = chunk;
        loop {
            match framer.feed(&mut input) {
                Ok(Some(msg)) => {
                    assert!(msg.payload_len() <= xenbus::XENSTORE_PAYLOAD_MAX);
                    match Reply::parse(&msg) {
                        Ok(Reply::Directory(list)) => {
                            assert_eq!(list.iter().count(), list.len());
                        }
                        Ok(Reply::Perms(perms)) => {
                            let owner = perms.owner();
                            let _ = perms.access_of(owner.dom.wrapping_add(1));
                            assert_eq!(perms.iter().count(), perms.len());
                        }
                        Ok(Reply::WatchEvent(event)) => {
                            let owned = xenbus::OwnedWatchEvent::new(event);
                            assert_eq!(owned.map(|o| o.path().len()), Some(event.path.len()));
                        }
                        Ok(_) | Err(_) => {}
                    }
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});
