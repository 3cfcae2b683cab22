use super::*;
use openmetrics_parser::prometheus::parse_prometheus;
use openmetrics_parser::PrometheusValue;
use std::string::String;

fn guest(name: &str, domid: u16) -> GuestFigures {
    let mut g = GuestFigures {
        name: heapless::String::try_from(name).unwrap(),
        domid,
        devid: 0,
        connected: true,
        ggtt_entries: 300,
        ppgtt_entries: 512,
        grants_mapped: 364,
        batches: 7,
        ring_errors: 0,
        connects: 1,
        disconnects: 0,
        refusals: 2,
        ..Default::default()
    };
    g.results.push(("OK", 9)).unwrap();
    g.results.push(("GRANT_MAP_FAILED", 2)).unwrap();
    for (pool, limit, used) in [
        ("devices", 1, 1),
        ("ggtt-entries", 4096, 300),
        ("pages", 1024, 364),
        ("table-pages", 64, 4),
        ("contexts", 4, 1),
    ] {
        g.limits.push((pool, limit, used)).unwrap();
    }
    g
}

fn snapshot() -> Snapshot {
    let mut s = Snapshot { uptime_ns: 12_345_678_901, serving: true, ..Default::default() };
    for (name, capacity, reserved, used) in
        [("devices", 16, 2, 2), ("ggtt-entries", 65536, 8192, 600), ("pages", 16384, 2048, 728)]
    {
        s.pools.push(PoolFigures { name, capacity, reserved, used }).unwrap();
    }
    s.hypercalls.push(("map_grant_ref", 12)).unwrap();
    s.hypercalls.push(("unmap_grant_ref", 3)).unwrap();
    s.guests.push(guest("guest1", 2)).unwrap();
    s.guests.push(guest("guest2", 3)).unwrap();
    s.net.rx_packets = 40;
    s.http.by_status[0] = 5;
    s
}

fn text(s: &Snapshot) -> String {
    let mut out = String::new();
    render(s, &mut out).unwrap();
    out
}

fn value(v: &PrometheusValue) -> f64 {
    match v {
        PrometheusValue::Gauge(g) => g.as_f64(),
        PrometheusValue::Counter(c) => c.value.as_f64(),
        PrometheusValue::Unknown(u) => u.as_f64(),
        other => panic!("unexpected {other:?}"),
    }
}

/// The value of `family{labels}` in a parsed exposition.
fn sample(text: &str, family: &str, labels: &[(&str, &str)]) -> f64 {
    let exp = parse_prometheus(text).unwrap();
    let f = exp.families.get(family).unwrap_or_else(|| panic!("no family {family}"));
    let s = f
        .iter_samples()
        .find(|s| {
            let ls = s.get_labelset().unwrap();
            labels.iter().all(|(k, v)| ls.get_label_value(k) == Some(*v))
        })
        .unwrap_or_else(|| panic!("no {family}{labels:?}"));
    value(&s.value)
}

#[test]
fn the_exposition_parses_with_a_prometheus_text_parser_and_says_what_the_snapshot_says() {
    let t = text(&snapshot());
    let exp = parse_prometheus(&t).unwrap_or_else(|e| panic!("{e}\n{t}"));
    assert!(exp.families.len() >= 25, "{} families", exp.families.len());
    assert_eq!(sample(&t, "gpu_dom_uptime_seconds", &[]), 12.345678901);
    assert_eq!(sample(&t, "gpu_dom_pool_capacity", &[("pool", "ggtt-entries")]), 65536.0);
    assert_eq!(sample(&t, "gpu_dom_pool_used", &[("pool", "pages")]), 728.0);
    assert_eq!(sample(&t, "gpu_dom_hypercalls_total", &[("kind", "map_grant_ref")]), 12.0);
    let g2 = [("guest", "guest2"), ("domid", "3"), ("devid", "0")];
    assert_eq!(sample(&t, "gpu_dom_guest_grants_mapped", &g2), 364.0);
    let ppgtt = [("guest", "guest2"), ("domid", "3"), ("table", "ppgtt")];
    assert_eq!(sample(&t, "gpu_dom_guest_entries_mapped", &ppgtt), 512.0);
    let failed = [("domid", "2"), ("result", "grant_map_failed")];
    assert_eq!(sample(&t, "gpu_dom_guest_requests_total", &failed), 2.0);
    assert_eq!(sample(&t, "gpu_dom_guest_limit", &[("domid", "2"), ("pool", "pages")]), 1024.0);
    assert_eq!(
        sample(&t, "gpu_dom_guest_used", &[("domid", "2"), ("pool", "ggtt-entries")]),
        300.0
    );
    assert_eq!(sample(&t, "gpu_dom_mgmt_http_responses_total", &[("code", "200")]), 5.0);
    assert_eq!(sample(&t, "gpu_dom_serving", &[]), 1.0);
}

#[test]
fn names_follow_prometheus_conventions() {
    let t = text(&snapshot());
    for line in t.lines().filter(|l| l.starts_with("# TYPE ")) {
        let mut w = line.split(' ').skip(2);
        let (name, kind) = (w.next().unwrap(), w.next().unwrap());
        assert!(name.starts_with("gpu_dom_"), "{name}");
        assert!(
            name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "{name}"
        );
        assert_eq!(kind == "counter", name.ends_with("_total"), "{name} is a {kind}");
        assert_eq!(t.matches(&format!("# HELP {name} ")).count(), 1, "{name}");
    }
}

#[test]
fn hostile_guest_names_are_escaped_and_read_back_intact() {
    let mut s = snapshot();
    s.guests[0].name = heapless::String::try_from("a\"b\\c\nd} 9 #").unwrap();
    let t = text(&s);
    let exp = parse_prometheus(&t).unwrap_or_else(|e| panic!("{e}\n{t}"));
    let f = &exp.families["gpu_dom_guest_batches_total"];
    let names: Vec<String> = f
        .iter_samples()
        .map(|x| x.get_labelset().unwrap().get_label_value("guest").unwrap().to_string())
        .collect();
    assert_eq!(names, ["a\"b\\c\nd} 9 #", "guest2"]);
}

#[test]
fn sixty_four_guests_with_every_number_at_its_largest_fit_the_response_buffer() {
    let mut s = snapshot();
    s.uptime_ns = u64::MAX;
    s.guests.clear();
    let name: String = "\\\"".repeat(32);
    for d in 0..MAX_GUESTS as u16 {
        let mut g = guest(&name, u16::MAX - d);
        g.devid = u32::MAX;
        g.results.clear();
        for _ in 0..MAX_RESULTS {
            g.results.push(("TABLE_PAGE_LIMIT", u64::MAX)).unwrap();
        }
        for l in g.limits.iter_mut() {
            *l = ("ggtt-entries", u64::MAX, u64::MAX);
        }
        while g.limits.push(("ggtt-entries", u64::MAX, u64::MAX)).is_ok() {}
        g.ggtt_entries = u64::MAX;
        s.guests.push(g).unwrap();
    }
    while s
        .pools
        .push(PoolFigures {
            name: "table-pages",
            capacity: u64::MAX,
            reserved: u64::MAX,
            used: u64::MAX,
        })
        .is_ok()
    {}
    let t = text(&s);
    assert!(t.len() <= MAX_EXPOSITION, "{} bytes", t.len());
    assert_eq!(text(&s), t, "rendering is deterministic");
}
