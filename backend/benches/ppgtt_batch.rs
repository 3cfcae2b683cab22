//! Time of one 512-entry PPGTT map batch: decode -> validate -> grant map
//! (no-op mapper) -> shadow write, starting from fresh grants each time.
//! Instruction counts per entry come from `cargo xtask bench` (callgrind on
//! `examples/ppgtt_batch_count.rs`), which is the figure the README reports.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

mod common;

fn ppgtt_map_512(c: &mut Criterion) {
    let mut g = c.benchmark_group("ppgtt_map_batch");
    g.throughput(Throughput::Elements(common::ENTRIES as u64));
    for (name, tables) in
        [("existing_tables", common::Tables::Existing), ("fresh_tables", common::Tables::Fresh)]
    {
        let mut b = common::setup(tables);
        g.bench_function(format!("512_new_grants_{name}"), |bench| {
            bench.iter_custom(|iters| {
                let mut t = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    let rsp = b.map_batch();
                    t += start.elapsed();
                    assert_eq!(rsp.done, common::ENTRIES as u32);
                    b.unmap_all();
                }
                t
            })
        });
    }
    let mut b = common::setup(common::Tables::Existing);
    g.bench_function("512_unmap", |bench| {
        bench.iter_custom(|iters| {
            let mut t = Duration::ZERO;
            for _ in 0..iters {
                assert_eq!(b.map_batch().done, common::ENTRIES as u32);
                let start = Instant::now();
                let rsp = b.unmap_request();
                t += start.elapsed();
                assert_eq!(rsp.done, common::ENTRIES as u32);
            }
            t
        })
    });
    g.bench_function("revoke_guest_with_512_entries", |bench| {
        bench.iter_custom(|iters| {
            let mut t = Duration::ZERO;
            for _ in 0..iters {
                assert_eq!(b.map_batch().done, common::ENTRIES as u32);
                let start = Instant::now();
                b.revoke_guest();
                t += start.elapsed();
                b.reattach();
            }
            t
        })
    });
    let mut b = common::setup(common::Tables::Existing);
    g.bench_function("512_remap_same_grants", |bench| {
        b.map_batch();
        bench.iter(|| b.map_batch());
        b.unmap_all();
    });
    g.finish();
}

criterion_group!(benches, ppgtt_map_512);
criterion_main!(benches);
