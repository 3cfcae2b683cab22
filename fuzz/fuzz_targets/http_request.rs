//! Fuzz the management endpoint's HTTP parser with what any client on the
//! management network could send: the head is parsed as it would arrive,
//! in two pieces, and routed. Nothing may panic; a parsed request must lie
//! inside the input and name an absolute path.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    for input in [&data[..split], data] {
        match mgmt_http::parse(input) {
            Ok(Some(req)) => {
                assert!(req.head_len <= input.len() && req.head_len <= mgmt_http::MAX_HEAD);
                assert!(req.path.starts_with('/'));
                let _ = mgmt_http::route(&req);
            }
            Ok(None) => assert!(input.len() < mgmt_http::MAX_HEAD),
            Err(e) => assert!(e.status().code() >= 400),
        }
    }
});
