//! `vgpu list` against the model xenstored.

mod common;

use common::{system, vgpu};

#[test]
fn list_shows_states_slices_statistics_and_stale_devices() {
    let xs = system();
    xs.add_domain(9, "doomed");
    for line in [
        "guest1",
        "guest2 --ggtt-entries 8192",
        "guest2 --devid 1 --ggtt-entries 16",
        "doomed --contexts 2",
    ] {
        let r = vgpu(&xs, &format!("attach {line}"));
        assert_eq!(r.code, 0, "{r:?}");
    }
    let be = "/local/domain/1/backend/vgpu";
    xs.write(0, "/local/domain/1/data/vgpu-ggtt-entries", "262144");
    // gpu-dom's pools: it reserved guest1's and guest2's first device so far.
    for (pool, figures) in [
        ("devices", ["16", "2", "2"]),
        ("ggtt-entries", ["262144", "12288", "4096"]),
        ("pages", ["16384", "2048", "12"]),
        ("table-pages", ["1024", "128", "5"]),
        ("contexts", ["64", "8", "2"]),
    ] {
        for (key, value) in ["capacity", "reserved", "used"].into_iter().zip(figures) {
            xs.write(1, &format!("/local/domain/1/data/vgpu-pool/{pool}/{key}"), value);
        }
    }
    // guest1 is connected and gpu-dom published its statistics.
    xs.write(1, &format!("{be}/5/0/state"), "4");
    xs.write(5, "/local/domain/5/device/vgpu/0/state", "4");
    for (key, value) in [("pages", "12"), ("entries", "4096"), ("contexts", "2"), ("refused", "0")]
    {
        xs.write(1, &format!("/local/domain/1/data/vgpu/5/0/{key}"), value);
    }
    // guest2's first device waits for its frontend; a statistic is malformed.
    xs.write(1, &format!("{be}/7/0/state"), "2");
    xs.write(1, "/local/domain/1/data/vgpu/7/0/refused", "many");
    // doomed was destroyed without detaching its device.
    xs.with(|m| m.rm(0, "/local/domain/9")).unwrap();
    xs.write(1, &format!("{be}/9/0/state"), "6");
    let r = vgpu(&xs, "list");
    assert_eq!(r.code, 0, "{r:?}");
    let expected = "\
gpu-dom (domid 1): GGTT of 262144 entries, 4 vgpu device(s)
GUEST   DOMID  DEVID  FRONTEND      BACKEND       GGTT-SLICE  PAGES  ENTRIES  CONTEXTS  REFUSED
guest1      5      0  Connected     Connected     0+4096         12     4096         2        0
guest2      7      0  Initialising  InitWait      4096+8192       -        -         -        ?
guest2      7      1  Initialising  Initialising  12288+16        -        -         -        -
-           9      0  -             Closed        12304+4096      -        -         -        -
stale: domain 9 no longer exists but its vgpu 0 is still attached to gpu-dom; run `vgpu detach 9 --devid 0`
POOL          CAPACITY  RESERVED  USED    FREE
devices             16         2     2      12
ggtt-entries    262144     12288  4096  245744
pages            16384      2048    12   12288
table-pages       1024       128     5     768
contexts            64         8     2      50
";
    assert_eq!(r.out, expected, "\n{}", r.out);
}

#[test]
fn an_empty_backend_says_so_and_an_unknown_one_is_an_error() {
    let xs = system();
    let r = vgpu(&xs, "list");
    assert_eq!(
        (r.code, r.out.as_str()),
        (0, "gpu-dom (domid 1): GGTT of 65536 entries (assumed: not published by the backend), no vgpu devices attached\n\
                pools: not published by gpu-dom (domid 1) (is it running this version of gpu-dom?)\n")
    );
    let r = vgpu(&xs, "list --backend gpu-dom2");
    assert_eq!(r.code, 1);
    assert!(r.err.starts_with("vgpu: no domain 'gpu-dom2' to use as backend"), "{r:?}");
}
