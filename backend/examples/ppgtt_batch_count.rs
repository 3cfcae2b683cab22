//! Runs N 512-entry PPGTT requests for callgrind to count. Only the
//! measured call is counted (`--toggle-collect` on its function name):
//! `existing`/`fresh` count `Bench::map_batch` (new grants into existing
//! leaf tables / into a fresh 2 MiB region), `unmap` counts
//! `Bench::unmap_request` (the same 512 entries unmapped), `revoke` counts
//! `Bench::revoke_guest` (detach of a guest holding the 512 entries). The
//! set-up between counted calls is not counted. `cargo xtask bench` runs
//! this and prints instructions per entry.

#[path = "../benches/common/mod.rs"]
mod common;

/// Usage: ppgtt_batch_count [existing|fresh|unmap|revoke] [N]
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let variant = args.get(1).map(String::as_str).unwrap_or("existing");
    let tables = match variant {
        "fresh" => common::Tables::Fresh,
        _ => common::Tables::Existing,
    };
    let n: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(20);
    let mut b = common::setup(tables);
    for _ in 0..n {
        let rsp = b.map_batch();
        assert_eq!(rsp.done, common::ENTRIES as u32, "{rsp:?}");
        match variant {
            "unmap" => {
                let rsp = b.unmap_request();
                assert_eq!(rsp.done, common::ENTRIES as u32, "{rsp:?}");
            }
            "revoke" => {
                let rel = b.revoke_guest();
                assert!(rel.grants_unmapped as usize >= common::ENTRIES, "{rel:?}");
                b.reattach();
            }
            _ => b.unmap_all(),
        }
    }
    println!("variant={variant} batches={n} entries_per_batch={}", common::ENTRIES);
}
