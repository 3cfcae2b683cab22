//! Runs N 512-entry PPGTT map batches for callgrind to count. Only
//! `Bench::map_batch` is counted (`--toggle-collect`); the unmaps between
//! batches are not. `cargo xtask bench` runs this and prints instructions per
//! entry.

#[path = "../benches/common/mod.rs"]
mod common;

/// Usage: ppgtt_batch_count [fresh|existing] [N]
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let tables = match args.get(1).map(String::as_str) {
        Some("fresh") => common::Tables::Fresh,
        _ => common::Tables::Existing,
    };
    let n: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(20);
    let mut b = common::setup(tables);
    for _ in 0..n {
        let rsp = b.map_batch();
        assert_eq!(rsp.done, common::ENTRIES as u32, "{rsp:?}");
        b.unmap_all();
    }
    println!("tables={tables:?} batches={n} entries_per_batch={}", common::ENTRIES);
}
