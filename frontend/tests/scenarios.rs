//! The test guest's modes, run by the frontend core against the real
//! backend service on the platform model.

mod support;

use frontend::scenario::{self, GoodConfig, Reporter};
use frontend::{Options, Platform};
use gtt::DomId;
use platform_model::DomainState;
use support::{frontend, Lines, World};

const DOM: u16 = 5;

#[test]
fn good_mode_maps_and_every_entry_reads_back_as_its_own_bytes() {
    let world = World::new(true);
    world.borrow_mut().attach(DOM, 0, 1024, 1000);
    let mut fe = frontend(&world, DOM, 2048, Options::default());
    let lines = Lines::default();
    let mut console = lines.console();
    let mut rep = Reporter::new("TESTGUEST", DOM, &mut console);
    let mapped = scenario::run_good(&mut fe, &mut rep, &GoodConfig::default()).expect("good");
    assert_eq!(mapped.ggtt.len(), 300);
    assert_eq!(mapped.ppgtt.len(), 512);
    for want in [
        "TESTGUEST dom=5 ggtt mapped=300 verified=300 mismatches=0",
        "TESTGUEST dom=5 ppgtt mapped=512 verified=512 mismatches=0",
        "TESTGUEST dom=5 good PASS",
    ] {
        assert!(lines.has(want), "missing {want:?} in {:#?}", lines.all());
    }
}

#[test]
fn after_good_the_guest_stays_through_a_backend_shutdown_until_the_device_is_detached() {
    let world = World::new(true);
    world.borrow_mut().attach(DOM, 0, 1024, 1000);
    let mut fe = frontend(&world, DOM, 2048, Options::default());
    let lines = Lines::default();
    let mut console = lines.console();
    let mut rep = Reporter::new("TESTGUEST", DOM, &mut console);
    let mapped = scenario::run_good(&mut fe, &mut rep, &GoodConfig::default()).unwrap();
    world.borrow_mut().shutdown_at = Some(12_000);
    // Nobody brings a backend back; the toolstack detaches the device.
    world.borrow_mut().later.push((30_000, Box::new(|w| w.detach(DOM))));
    let end = scenario::steady(&mut fe, &mut rep, &mapped, 5_000, |_, ev| {
        panic!("no other watch was set, got {ev:?}")
    });
    assert_eq!(end, scenario::SteadyEnd::BackendClosed, "{:#?}", lines.all());
    for want in [
        "TESTGUEST dom=5 backend closed",
        // 300 + 64 pages kept, 8 directory pages and the ring freed.
        "TESTGUEST dom=5 backend gone (it closed the device): grants_ended=373 still_mapped=0 pages_kept=364",
        "TESTGUEST dom=5 detached while the backend was gone",
        "TESTGUEST dom=5 cleanup grants_ended=364 still_mapped=0",
    ] {
        assert!(lines.has(want), "missing {want:?} in {:#?}", lines.all());
    }
    assert!(!lines.all().iter().any(|l| l.contains("reverify")), "re-verification stayed clean");
    assert!(fe.platform().waits > 0);
    let w = world.borrow();
    assert_eq!(w.model.destroy_domain(DomId(DOM)), Some(DomainState::Dead), "no zombie");
}

#[test]
fn hostile_mode_gets_every_refusal_then_is_disconnected_for_the_runaway_ring() {
    let world = World::new(true);
    world.borrow_mut().attach(DOM, 64, 64, 100);
    // A well-behaved neighbour, to show it keeps being served.
    world.borrow_mut().attach(6, 0, 64, 100);
    let mut good = frontend(&world, 6, 256, Options::default());
    good.connect().unwrap();
    let page = good.grant_page(false).unwrap();
    let e = gpuif::Entry { addr: 0, gref: page.gref, read_only: false };
    assert_eq!(good.call(gpuif::Op::GgttMap, 0, &[e]).unwrap().status, gpuif::Status::OK);

    let mut fe = frontend(&world, DOM, 256, Options::default());
    let lines = Lines::default();
    let mut console = lines.console();
    let mut rep = Reporter::new("TESTGUEST", DOM, &mut console);
    assert!(scenario::run_hostile(&mut fe, &mut rep), "{:#?}", lines.all());
    for want in [
        "TESTGUEST dom=5 hostile foreign-gref -> GRANT_MAP_FAILED PASS",
        "TESTGUEST dom=5 hostile revoked-gref -> GRANT_MAP_FAILED PASS",
        "TESTGUEST dom=5 hostile readonly-as-writable -> GRANT_MAP_FAILED PASS",
        "TESTGUEST dom=5 hostile out-of-slice -> INDEX_OUT_OF_SLICE PASS",
        "TESTGUEST dom=5 hostile garbage-directory -> BAD_ENTRY PASS",
        "TESTGUEST dom=5 hostile unknown-context -> UNKNOWN_CONTEXT PASS",
        "TESTGUEST dom=5 hostile runaway -> disconnected PASS",
        "TESTGUEST dom=5 hostile PASS",
    ] {
        assert!(lines.has(want), "missing {want:?} in {:#?}", lines.all());
    }
    assert!(
        lines
            .all()
            .iter()
            .any(|l| l.starts_with("TESTGUEST dom=5 cleanup") && l.contains("still_mapped=0")),
        "{:#?}",
        lines.all()
    );
    assert!(world.borrow().changes.iter().any(|c| matches!(
        c,
        backend::Change::Closed { fe, why: "ring protocol violation", .. } if fe.0 == DOM
    )));
    assert_eq!(world.borrow().model.destroy_domain(DomId(DOM)), Some(DomainState::Dead));
    // The neighbour is still served.
    let rsp = good.readback_ggtt(0).unwrap();
    assert_eq!(rsp.status, gpuif::Status::OK);
}

#[test]
fn unattached_without_a_device_says_no_device() {
    let world = World::new(true);
    let mut fe = frontend(&world, DOM, 64, Options::default());
    let lines = Lines::default();
    let mut console = lines.console();
    let mut rep = Reporter::new("TESTGUEST", DOM, &mut console);
    assert_eq!(scenario::run_unattached(&mut fe, &mut rep), scenario::Unattached::NoDevice);
    assert_eq!(lines.all(), ["TESTGUEST dom=5 unattached: no device"]);
}

#[test]
fn unattached_with_a_device_nobody_serves_times_out_cleanly() {
    let world = World::new(false); // gpu-dom is not running
    world.borrow_mut().attach(DOM, 0, 64, 100);
    let opts = Options { handshake_timeout_ms: 10_000, ..Options::default() };
    let mut fe = frontend(&world, DOM, 64, opts);
    let lines = Lines::default();
    let mut console = lines.console();
    let mut rep = Reporter::new("TESTGUEST", DOM, &mut console);
    assert_eq!(scenario::run_unattached(&mut fe, &mut rep), scenario::Unattached::NotServed);
    assert_eq!(lines.all(), ["TESTGUEST dom=5 unattached: backend did not serve"]);
    assert_eq!(world.borrow().clock.get(), 10_000, "the wait is bounded by the handshake timeout");
    // Nothing was granted and our state was left alone.
    assert_eq!(world.borrow().xenstored.read("/local/domain/5/device/vgpu/0/state").unwrap(), "1");
}

#[test]
fn good_mode_without_a_serving_backend_fails_with_the_reason() {
    let world = World::new(false);
    world.borrow_mut().attach(DOM, 0, 1024, 1000);
    let mut fe = frontend(&world, DOM, 2048, Options::default());
    let lines = Lines::default();
    let mut console = lines.console();
    let mut rep = Reporter::new("TESTGUEST", DOM, &mut console);
    assert!(scenario::run_good(&mut fe, &mut rep, &GoodConfig::default()).is_err());
    assert_eq!(
        lines.all(),
        [
            "TESTGUEST dom=5 good FAIL connect: the backend did not reach InitWait within 30000 ms (state Initialising)"
        ]
    );
}

#[test]
fn busy_mode_floods_map_and_unmap_until_the_backend_goes_away_mid_flood() {
    let world = World::new(true);
    world.borrow_mut().attach(DOM, 0, 512, 600);
    let mut fe = frontend(&world, DOM, 1024, Options::default());
    let lines = Lines::default();
    let mut console = lines.console();
    let mut rep = Reporter::new("TESTGUEST", DOM, &mut console);
    let w = world.clone();
    let mut checks = 0;
    let batches = scenario::run_busy(&mut fe, &mut rep, 40, |_| {
        checks += 1;
        if checks == 12 {
            // gpu-dom goes away in the middle of the flood.
            w.borrow_mut().shutdown_backend();
        }
        scenario::Control::Continue
    });
    // The ring is kept full: every look at the backend finds a ring's worth answered.
    assert!(batches >= 8 * gpuif::RING_SIZE as u64, "{batches} responses");
    for want in [
        "TESTGUEST dom=5 busy connected pages=40",
        "TESTGUEST dom=5 busy batches=100",
        "TESTGUEST dom=5 busy batches=200",
    ] {
        assert!(lines.has(want), "missing {want:?} in {:#?}", lines.all());
    }
    let last = lines.all();
    let stopped =
        format!("TESTGUEST dom=5 busy stopped batches={batches} (flood: the backend closed");
    assert!(last.iter().any(|l| l.starts_with(&stopped)), "{last:#?}");
    assert!(
        last.iter().any(|l| l.contains("cleanup") && l.contains("still_mapped=0")),
        "{last:#?}"
    );
    let w = world.borrow();
    assert_eq!(w.model.destroy_domain(DomId(DOM)), Some(DomainState::Dead), "no zombie");
}

#[test]
fn busy_mode_notifies_on_every_round_and_posts_without_waiting_for_responses() {
    let world = World::new(true);
    world.borrow_mut().attach(DOM, 0, 4096, 2000);
    let mut fe = frontend(&world, DOM, 4096, Options::default());
    fe.connect().unwrap();
    let lines = Lines::default();
    let mut console = lines.console();
    let mut rep = Reporter::new("TESTGUEST", DOM, &mut console);
    let before = (fe.platform().notifies, fe.platform().waits);
    let mut seen = Vec::new();
    let batches = scenario::run_busy(&mut fe, &mut rep, 5000, |fe| {
        let p = fe.platform();
        seen.push((p.notifies, p.waits));
        if seen.len() == 2 {
            scenario::Control::Stop
        } else {
            scenario::Control::Continue
        }
    });
    // First look: two rounds, a ring's worth posted in the first, nothing
    // in the second (the ring is full, nothing answered: the backend has
    // not run), one notification each all the same, and no wait yet.
    assert_eq!(seen[0], (before.0 + 2, before.1), "{seen:?}");
    assert!(batches >= gpuif::RING_SIZE as u64, "{batches}");
    // Capped at half the directory pool per request.
    assert!(
        lines.has(&format!("TESTGUEST dom=5 busy connected pages={}", scenario::BUSY_MAX_ENTRIES))
    );
    assert!(batches > 0);
    assert!(lines
        .all()
        .iter()
        .any(|l| l.contains("busy stopped") && l.contains("(asked to stop)")));
}

#[test]
fn badfe_mode_is_refused_once_per_bad_value_and_then_connects_with_good_ones() {
    let world = World::new(true);
    world.borrow_mut().attach(DOM, 0, 64, 100);
    let mut fe = frontend(&world, DOM, 256, Options::default());
    let lines = Lines::default();
    let mut console = lines.console();
    let mut rep = Reporter::new("TESTGUEST", DOM, &mut console);
    let w = world.clone();
    let refusals = move || {
        w.borrow().changes.iter().filter(|c| matches!(c, backend::Change::Refused { .. })).count()
    };
    let mut seen = Vec::new();
    let passed = scenario::run_badfe(&mut fe, &mut rep, |fe, k, bad| {
        // Time passes with the frontend idle: the backend must stay quiet.
        let until = fe.platform().now_ms() + 5_000;
        fe.platform().wait(until).map_err(|e| e.to_string())?;
        seen.push((bad, refusals()));
        assert_eq!(refusals(), k, "refusals after {} (k = {k})", bad.name());
        Ok(())
    });
    assert!(passed, "{:#?}", lines.all());
    assert_eq!(seen.len(), scenario::Bad::ALL.len());
    for bad in scenario::Bad::ALL {
        let want = format!("TESTGUEST dom=5 badfe {} -> refused: ", bad.name());
        assert!(lines.all().iter().any(|l| l.starts_with(&want)), "{want:?} in {:#?}", lines.all());
    }
    assert!(lines.has("TESTGUEST dom=5 badfe good values -> connected"), "{:#?}", lines.all());
    assert!(lines.has("TESTGUEST dom=5 badfe PASS"));
}

#[test]
fn rtt_is_measured_on_the_callers_clock_with_entries_that_stay_mapped() {
    let world = World::new(true);
    world.borrow_mut().attach(DOM, 0, 1024, 1000);
    let mut fe = frontend(&world, DOM, 2048, Options::default());
    let lines = Lines::default();
    let mut console = lines.console();
    let mut rep = Reporter::new("TESTGUEST", DOM, &mut console);
    let cfg = GoodConfig { pages: 16, ..GoodConfig::default() };
    let mapped = scenario::run_good(&mut fe, &mut rep, &cfg).expect("good");
    let mut t = 0u64;
    let mut clock = || {
        t += 7;
        t
    };
    let rtt = scenario::measure_rtt(&mut fe, 20, 1_000_000, &mut clock).expect("rtt");
    // Each round trip reads the clock twice: 7 us apart.
    assert_eq!(rtt, scenario::Rtt { n: 20, median_us: 7, mean_us: 7, max_us: 7 });
    assert_eq!(scenario::reverify(&mut fe, &mapped, 0).unwrap(), 0, "entries unchanged");
    let mut slow = || {
        t += 400_000;
        t
    };
    let rtt = scenario::measure_rtt(&mut fe, 20, 1_000_000, &mut slow).expect("rtt");
    assert!(rtt.n < 20, "stopped at the time limit: {rtt:?}");
}

#[test]
fn unattached_with_a_device_the_backend_refused_says_it_was_not_served() {
    let world = World::new(true);
    world.borrow_mut().attach(DOM, 0, 64, 100);
    // A toolstack mistake: the guest may write its own limits; gpu-dom refuses.
    let limit = "/local/domain/1/backend/vgpu/5/0/limits/max-pages";
    let perms = [
        xenbus::Perm { dom: 0, access: xenbus::Access::None },
        xenbus::Perm { dom: DOM, access: xenbus::Access::Both },
    ];
    world.borrow().toolstack_write(limit, "100", &perms);
    world.borrow_mut().step();
    let mut fe = frontend(&world, DOM, 64, Options::default());
    let lines = Lines::default();
    let mut console = lines.console();
    let mut rep = Reporter::new("TESTGUEST", DOM, &mut console);
    assert_eq!(scenario::run_unattached(&mut fe, &mut rep), scenario::Unattached::NotServed);
    assert_eq!(lines.all(), ["TESTGUEST dom=5 unattached: backend did not serve"]);
}

#[test]
fn batches_mode_one_at_a_time_rides_out_a_backend_that_dies_mid_batch_and_resumes() {
    let world = World::new(true);
    world.borrow_mut().attach(DOM, 0, 512, 600);
    // gpu-dom dies with request 551 (an unmap batch: AttachInfo, the first
    // map and its 300 readbacks came first) in the ring, unanswered: the
    // 300 entries request 550 mapped are what the guest's record holds,
    // and what comes back.
    world.borrow_mut().kill_if =
        Some(Box::new(|w| w.service.as_ref().is_some_and(|s| s.backend.stats().requests >= 550)));
    let mut fe = frontend(&world, DOM, 1024, Options::default());
    let lines = Lines::default();
    let mut console = lines.console();
    let mut rep = Reporter::new("TESTGUEST", DOM, &mut console);
    let w = world.clone();
    let mut checks = 0;
    let mut restarting = false;
    let batches = scenario::run_batches(&mut fe, &mut rep, 300, 1, |fe| {
        checks += 1;
        let mut w = w.borrow_mut();
        if w.service.is_none() && !restarting {
            // The supervisor brings gpu-dom back 3 s later, as domain 9.
            restarting = true;
            let at = w.clock.get() + 3_000;
            w.later.push((
                at,
                Box::new(|w| {
                    w.start_backend(9);
                    w.restore(DOM);
                }),
            ));
        }
        let _ = fe;
        if checks >= 400 {
            scenario::Control::Stop
        } else {
            scenario::Control::Continue
        }
    });
    let all = lines.all();
    assert!(batches >= 300, "{batches} {all:#?}");
    for want in [
        "TESTGUEST dom=5 batches connected pages=300 depth=1",
        "TESTGUEST dom=5 batches verified entries=300 mismatches=0",
        "TESTGUEST dom=5 batches sent=200",
        "TESTGUEST dom=5 batches failed: the backend directory is gone",
        "TESTGUEST dom=5 backend gone (its directory is gone): grants_ended=309 still_mapped=0 pages_kept=300",
        "TESTGUEST dom=5 reverified entries=300 mismatches=0",
        "TESTGUEST dom=5 batches resumed",
        "TESTGUEST dom=5 batches sent=300",
    ] {
        assert!(lines.has(want), "missing {want:?} in {all:#?}");
    }
    assert!(
        all.iter().any(|l| l.starts_with(
            "TESTGUEST dom=5 reconnected to backend 9 after 3000 ms: regranted=300 contexts=0 ggtt=300"
        )),
        "{all:#?}"
    );
    assert!(all.iter().any(|l| l.contains("cleanup") && l.contains("still_mapped=0")), "{all:#?}");
    assert_eq!(world.borrow().model.destroy_domain(DomId(DOM)), Some(DomainState::Dead));
}

#[test]
fn scale_mode_maps_verifies_a_sample_and_times_its_round_trips_on_one_line() {
    let world = World::new(true);
    world.borrow_mut().attach(DOM, 0, 1024, 256);
    let mut fe = frontend(&world, DOM, 2048, Options::default());
    let lines = Lines::default();
    let mut console = lines.console();
    let mut rep = Reporter::new("TESTGUEST", DOM, &mut console);
    let mut t = 0u64;
    let mut clock = || {
        t += 3;
        t
    };
    let cfg = scenario::ScaleConfig { pages: 256, verify: 32, rounds: 10, ..Default::default() };
    let r = scenario::run_scale(&mut fe, &mut rep, &cfg, &mut clock).expect("scale");
    assert_eq!((r.pages, r.verified, r.mismatches), (256, 32, 0));
    assert_eq!(r.rtt, scenario::Rtt { n: 10, median_us: 3, mean_us: 3, max_us: 3 });
    let result = lines.all().into_iter().find(|l| l.contains("scale result")).expect("result line");
    assert!(
        result.starts_with("TESTGUEST dom=5 scale result connect_us=")
            && result.contains(" pages=256 verified=32 mismatches=0 rtt_n=10 rtt_median_us=3 "),
        "{result}"
    );
    assert!(lines.has("TESTGUEST dom=5 scale PASS"), "{:#?}", lines.all());
    // The pages stay mapped: the run adds up what every guest holds at once.
    assert!(fe.is_connected());
    let w = world.borrow();
    let stats = w.service.as_ref().unwrap().engine().guest_stats(DomId(DOM)).unwrap();
    assert_eq!(stats.pages, 256);
}

#[test]
fn scale_mode_asking_more_pages_than_its_limit_fails_with_the_reason() {
    let world = World::new(true);
    world.borrow_mut().attach(DOM, 0, 1024, 64);
    let mut fe = frontend(&world, DOM, 2048, Options::default());
    let lines = Lines::default();
    let mut console = lines.console();
    let mut rep = Reporter::new("TESTGUEST", DOM, &mut console);
    let mut clock = || 0;
    let cfg = scenario::ScaleConfig { pages: 65, ..Default::default() };
    let e = scenario::run_scale(&mut fe, &mut rep, &cfg, &mut clock).unwrap_err();
    assert!(e.contains("GGTT map of 65 pages"), "{e}");
    assert!(lines.all().iter().any(|l| l.starts_with("TESTGUEST dom=5 scale FAIL GGTT map")));
    assert!(!lines.all().iter().any(|l| l.contains("scale PASS")));
}

#[test]
fn bench_mode_times_every_kind_and_size_marks_the_counted_batches_and_detaches_clean() {
    let world = World::new(true);
    world.borrow_mut().attach(DOM, 0, 4096, 4200);
    let mut fe = frontend(&world, DOM, 8192, Options::default());
    let lines = Lines::default();
    let mut console = lines.console();
    let mut rep = Reporter::new("TESTGUEST", DOM, &mut console);
    let mut t = 0u64;
    let mut clock = || {
        t += 1_000;
        t
    };
    let mut marks: Vec<String> = Vec::new();
    let mut mark = |fe: &mut support::world::TestFrontend, m: &str| {
        assert!(fe.is_connected());
        marks.push(m.to_string());
        Ok(())
    };
    let cfg = scenario::BenchConfig { detach_grants: 600, ..Default::default() };
    let mut hooks = scenario::Hooks { now_ns: &mut clock, mark: &mut mark };
    scenario::run_bench(&mut fe, &mut rep, &cfg, &mut hooks)
        .unwrap_or_else(|e| panic!("{e}: {:#?}", lines.all()));
    // Each timed request reads the clock twice: 1000 ns apart.
    for want in [
        "TESTGUEST dom=5 bench: kind=rtt batch=0 n=16 median_ns=1000 mean_ns=1000 per_entry_ns=1000",
        "TESTGUEST dom=5 bench: kind=ggtt-cold batch=1 n=16 median_ns=1000",
        "TESTGUEST dom=5 bench: kind=ggtt-warm batch=8 n=16 median_ns=1000 mean_ns=1000 per_entry_ns=125",
        "TESTGUEST dom=5 bench: kind=ppgtt-unmap batch=64 n=4 ",
        "TESTGUEST dom=5 bench: kind=ggtt-cold batch=2048 n=1 median_ns=1000 mean_ns=1000 per_entry_ns=0",
        "TESTGUEST dom=5 bench: kind=ppgtt-cold batch=512 n=3 ",
        "TESTGUEST dom=5 bench: kind=detach batch=1200 n=1 ",
        "TESTGUEST dom=5 bench PASS",
    ] {
        assert!(lines.all().iter().any(|l| l.starts_with(want)), "missing {want:?} in {:#?}", lines.all());
    }
    let want = [
        "ggtt-cold begin",
        "ggtt-cold end",
        "ggtt-warm end",
        "ggtt-unmap end",
        "ppgtt-cold begin",
        "ppgtt-cold end",
        "ppgtt-warm end",
        "ppgtt-unmap end",
    ];
    assert_eq!(marks, want, "a begin before each table's counted batches, an end after each");
    assert!(!fe.is_connected(), "detach disconnected");
    assert_eq!(fe.granted_pages(), 0, "every grant ended");
}

#[test]
fn batches_mode_pipelined_rides_out_a_backend_that_dies_with_batches_in_flight() {
    let world = World::new(true);
    world.borrow_mut().attach(DOM, 0, 512, 600);
    // As above, with 8 batches in flight: gpu-dom dies once it answered 550
    // requests, with the next ones on the ring, unanswered.
    world.borrow_mut().kill_if =
        Some(Box::new(|w| w.service.as_ref().is_some_and(|s| s.backend.stats().requests >= 550)));
    let mut fe = frontend(&world, DOM, 1024, Options::default());
    let lines = Lines::default();
    let mut console = lines.console();
    let mut rep = Reporter::new("TESTGUEST", DOM, &mut console);
    let w = world.clone();
    let (mut checks, mut restarting) = (0, false);
    let seen = lines.clone();
    let mut in_flight_at_death = None;
    let batches = scenario::run_batches(&mut fe, &mut rep, 300, 8, |fe| {
        checks += 1;
        let mut w = w.borrow_mut();
        if w.service.is_some() {
            assert!(fe.ring_in_flight() <= 8);
        } else if !restarting {
            restarting = true;
            in_flight_at_death = Some(fe.ring_in_flight());
            let at = w.clock.get() + 3_000;
            w.later.push((
                at,
                Box::new(|w| {
                    w.start_backend(9);
                    w.restore(DOM);
                }),
            ));
        }
        if seen.has("TESTGUEST dom=5 batches sent=400") || checks >= 5_000 {
            scenario::Control::Stop
        } else {
            scenario::Control::Continue
        }
    });
    let all = lines.all();
    assert!(batches >= 400, "{batches} {all:#?}");
    for want in [
        "TESTGUEST dom=5 batches connected pages=300 depth=8",
        "TESTGUEST dom=5 batches verified entries=300 mismatches=0",
        "TESTGUEST dom=5 batches failed: the backend directory is gone",
        "TESTGUEST dom=5 batches resumed",
        "TESTGUEST dom=5 batches sent=300",
    ] {
        assert!(lines.has(want), "missing {want:?} in {all:#?}");
    }
    // Every grant ended: 300 pages, the 16-page directory pool, the ring.
    assert!(lines.has(
        "TESTGUEST dom=5 backend gone (its directory is gone): grants_ended=317 still_mapped=0 pages_kept=300"
    ), "{all:#?}");
    // What the backend answered last before dying decides what comes back:
    // all 300 entries (a map) or none (an unmap); either is read back whole.
    let back = all.iter().find(|l| l.contains("reconnected to backend 9")).expect("reconnected");
    assert!(back.contains("ggtt=300") || back.contains("ggtt=0 "), "{back}");
    assert!(
        all.iter()
            .any(|l| l.starts_with("TESTGUEST dom=5 reverified entries=")
                && l.ends_with("mismatches=0")),
        "{all:#?}"
    );
    assert!(in_flight_at_death.is_some(), "gpu-dom died while batches ran");
    assert!(all.iter().any(|l| l.contains("cleanup") && l.contains("still_mapped=0")), "{all:#?}");
    assert_eq!(world.borrow().model.destroy_domain(DomId(DOM)), Some(DomainState::Dead));
}
