use super::*;

fn ok(s: &str) -> Request<'_> {
    parse(s.as_bytes()).unwrap().unwrap()
}

#[test]
fn a_prometheus_scrape_and_a_busybox_wget_parse() {
    let r = ok("GET /metrics HTTP/1.1\r\nHost: 192.0.2.2:9100\r\nUser-Agent: Prometheus/2.45\r\n\
                Accept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5\r\n\
                Accept-Encoding: gzip\r\nX-Prometheus-Scrape-Timeout-Seconds: 10\r\n\r\n");
    assert_eq!((r.method, r.path, r.version), (Method::Get, "/metrics", Version::Http11));
    let w =
        "GET /healthz HTTP/1.1\r\nHost: 192.0.2.2\r\nUser-Agent: Wget\r\nConnection: close\r\n\r\n";
    assert_eq!(ok(w).head_len, w.len());
    assert_eq!(ok("HEAD /metrics?x=1 HTTP/1.0\r\n\r\n").path, "/metrics");
}

#[test]
fn an_incomplete_head_asks_for_more_until_the_limit() {
    assert_eq!(parse(b""), Ok(None));
    assert_eq!(parse(b"GET /metrics HTTP/1.1\r\nHost: a\r\n"), Ok(None));
    let mut long = b"GET /".to_vec();
    long.resize(MAX_HEAD - 1, b'a');
    assert_eq!(parse(&long), Ok(None));
    long.push(b'a');
    assert_eq!(parse(&long), Err(HttpError::HeadTooLarge));
    long.extend_from_slice(b" HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(parse(&long), Err(HttpError::HeadTooLarge), "the end is past the limit");
}

#[test]
fn garbage_is_refused_as_soon_as_it_is_seen() {
    for (input, why) in [
        (&b"\x16\x03\x01\x02\x00\x01\x00"[..], "TLS client hello"),
        (b"GET / HTTP/1.1\n", "bare LF"),
        (b"GET / HTTP/1.1\rX", "bare CR"),
        (b"GET /\x00 HTTP/1.1", "NUL"),
        (b"\x1b[2J", "escape"),
    ] {
        assert!(matches!(parse(input), Err(HttpError::BadRequest(_))), "{why}");
    }
}

#[test]
fn malformed_request_lines_are_400_and_other_versions_505() {
    for bad in [
        "GET /metrics\r\n\r\n",
        "GET  /metrics HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET /metrics HTTP/1.1 x\r\nHost: a\r\n\r\n",
        "G(T /metrics HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET metrics HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET http://a/metrics HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET * HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET /metrics HTTP/1.1.1\r\nHost: a\r\n\r\n",
        "GET /metrics http/1.1\r\nHost: a\r\n\r\n",
        "GET /m\u{e9}trics HTTP/1.1\r\nHost: a\r\n\r\n",
        "\r\n\r\n",
    ] {
        assert!(matches!(parse(bad.as_bytes()), Err(HttpError::BadRequest(_))), "{bad:?}");
    }
    assert_eq!(parse(b"GET / HTTP/2.0\r\n\r\n"), Err(HttpError::VersionNotSupported));
    assert_eq!(HttpError::VersionNotSupported.status().code(), 505);
}

#[test]
fn header_fields_follow_rfc_9112() {
    for bad in [
        "GET / HTTP/1.1\r\nHost a\r\n\r\n",
        "GET / HTTP/1.1\r\nHost : a\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
        "GET / HTTP/1.1\r\n: a\r\nHost: a\r\n\r\n",
        "GET / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
        "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ] {
        assert!(matches!(parse(bad.as_bytes()), Err(HttpError::BadRequest(_))), "{bad:?}");
    }
    assert!(parse(b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n").unwrap().is_some());
    let mut many = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
    for i in 0..MAX_HEADERS {
        many.push_str(&format!("X-{i}: y\r\n"));
    }
    many.push_str("\r\n");
    assert_eq!(parse(many.as_bytes()), Err(HttpError::HeadTooLarge));
}

#[test]
fn only_get_and_head_of_the_two_resources_are_served() {
    let r = |s: &str| route(&ok(s));
    let metrics = Route::Serve { resource: Resource::Metrics, head_only: false };
    assert_eq!(r("GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n"), metrics);
    assert_eq!(
        r("HEAD /healthz HTTP/1.1\r\nHost: a\r\n\r\n"),
        Route::Serve { resource: Resource::Health, head_only: true }
    );
    for m in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT", "get"] {
        assert_eq!(
            r(&format!("{m} /metrics HTTP/1.1\r\nHost: a\r\n\r\n")),
            Route::Error(Status::MethodNotAllowed),
            "{m}"
        );
    }
    for p in ["/", "/metrics/", "/Metrics", "/metrics/../healthz", "/healthz%00", "//metrics"] {
        assert_eq!(
            r(&format!("GET {p} HTTP/1.1\r\nHost: a\r\n\r\n")),
            Route::Error(Status::NotFound)
        );
    }
}

#[test]
fn response_heads_close_the_connection_and_405_says_what_is_allowed() {
    let mut buf = [0u8; 256];
    let mut s = Sink::new(&mut buf);
    write_head(&mut s, Status::MethodNotAllowed, TEXT_CONTENT_TYPE, 19);
    assert_eq!(
        core::str::from_utf8(s.bytes()).unwrap(),
        "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: 19\r\nConnection: close\r\nCache-Control: no-store\r\n\
         Allow: GET, HEAD\r\n\r\n"
    );
    let mut small = [0u8; 8];
    let mut s = Sink::new(&mut small);
    write_head(&mut s, Status::Ok, METRICS_CONTENT_TYPE, 1);
    assert!(s.overflowed());
}

/// xorshift64*.
fn next(x: &mut u64) -> u64 {
    *x ^= *x >> 12;
    *x ^= *x << 25;
    *x ^= *x >> 27;
    x.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

#[test]
fn hostile_input_never_panics_and_every_prefix_of_a_good_request_is_incomplete() {
    let good = b"GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n";
    for n in 0..good.len() {
        assert_eq!(parse(&good[..n]), Ok(None), "prefix of {n} bytes");
    }
    let alphabet = b"GET /metrics HTTP/1.1\r\nHost: a:\t\x00\xff?";
    let mut x = 0x1234_5678_9abc_def0u64;
    for _ in 0..20_000 {
        let len = (next(&mut x) % 300) as usize;
        let input: Vec<u8> =
            (0..len).map(|_| alphabet[(next(&mut x) % alphabet.len() as u64) as usize]).collect();
        if let Ok(Some(r)) = parse(&input) {
            assert!(r.head_len <= input.len() && r.path.starts_with('/'));
            let _ = route(&r);
        }
        let raw: Vec<u8> = (0..len).map(|_| next(&mut x) as u8).collect();
        let _ = parse(&raw);
    }
}
