//! `vgpu-front`: the vGPU frontend from Linux user space (dom0 or a domU
//! with `/dev/xen/{gntalloc,evtchn}`), for end-to-end tests.
//!
//! ```text
//! vgpu-front attach-test [--backend-id B] [--devid D] [--pages N] [--timeout SECS]
//! ```
//! Connects to `device/vgpu/<D>` of this domain, runs the test guest's
//! `good` mode (N pages through the GGTT, 512 PPGTT entries, every entry
//! verified by `DebugReadback`), prints one `VGPU-FRONT dom=<id> ...` line
//! per check (and `connected in <ms> ms`, `verified in <ms> ms`, counted
//! from its start), disconnects, and exits 0 on PASS, 1 on FAIL, 2 on bad
//! usage.

use std::process::ExitCode;
use std::time::Instant;

use frontend::scenario::{self, GoodConfig, Reporter};
use frontend::{linux, Options};
use xenbus::TxId;

const USAGE: &str =
    "usage: vgpu-front attach-test [--backend-id B] [--devid D] [--pages N] [--timeout SECS]

Connects this domain's vgpu device (created in dom0 by `vgpu attach`), maps N pages
(default 300) through the GGTT and 512 entries through a PPGTT context, verifies each
entry with DebugReadback, prints the results and disconnects. --timeout bounds each
wait: each handshake step and each response (default 30 s).";

struct Args {
    backend_id: Option<u16>,
    devid: u32,
    pages: u32,
    timeout_s: u64,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let mut a = Args { backend_id: None, devid: 0, pages: 300, timeout_s: 30 };
    let mut it = args.iter();
    match it.next().map(String::as_str) {
        Some("attach-test") => {}
        Some(other) => return Err(format!("unknown command {other:?}")),
        None => return Err("no command".into()),
    }
    while let Some(flag) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .ok_or_else(|| format!("{name} needs a value"))
                .and_then(|v| v.parse::<u64>().map_err(|_| format!("{name} {v:?} is not a number")))
        };
        match flag.as_str() {
            "--backend-id" => {
                let v = value(flag)?;
                a.backend_id = Some(u16::try_from(v).map_err(|_| format!("no domain {v}"))?);
            }
            "--devid" => a.devid = value(flag)? as u32,
            "--pages" => a.pages = value(flag)? as u32,
            "--timeout" => a.timeout_s = value(flag)?,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    Ok(a)
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let args = match parse(&argv) {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("vgpu-front: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let opts = Options {
        devid: args.devid,
        handshake_timeout_ms: args.timeout_s * 1000,
        // A loaded backend (other guests' turns, TCG) may take more than the
        // library's 10 s default to answer; one bound for every wait.
        response_timeout_ms: args.timeout_s * 1000,
        ..Options::default()
    };
    let t0 = Instant::now();
    let mut fe = match linux::open(opts) {
        Ok(fe) => fe,
        Err(e) => {
            eprintln!("vgpu-front: {e}");
            return ExitCode::from(1);
        }
    };
    let dom = match fe.xs().read_str(TxId::NONE, "domid") {
        Ok(s) => s.trim().parse::<u16>().unwrap_or(0),
        Err(_) => 0,
    };
    let mut console = |line: &str| println!("{line}");
    let mut rep = Reporter::new("VGPU-FRONT", dom, &mut console);
    match fe.discover() {
        Ok(dev) => {
            if let Some(b) = args.backend_id.filter(|&b| b != dev.backend_id) {
                rep.say(format_args!(
                    "good FAIL device {} is served by domain {}, not {b}",
                    dev.frontend_dir, dev.backend_id
                ));
                return ExitCode::from(1);
            }
        }
        Err(e) => {
            rep.say(format_args!("good FAIL {e}"));
            return ExitCode::from(1);
        }
    }
    // Connected first (run_good would), so that the handshake is timed alone.
    if let Err(e) = fe.connect() {
        rep.say(format_args!("good FAIL connect: {e}"));
        scenario::cleanup(&mut fe, &mut rep);
        return ExitCode::from(1);
    }
    rep.say(format_args!("connected in {} ms", t0.elapsed().as_millis()));
    let cfg = GoodConfig { pages: args.pages, ..GoodConfig::default() };
    let passed = scenario::run_good(&mut fe, &mut rep, &cfg).is_ok();
    if passed {
        rep.say(format_args!("verified in {} ms", t0.elapsed().as_millis()));
    }
    scenario::cleanup(&mut fe, &mut rep);
    if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn attach_test_takes_its_options() {
        let a = parse(&strings(&["attach-test", "--backend-id", "3", "--pages", "40"])).unwrap();
        assert_eq!((a.backend_id, a.devid, a.pages, a.timeout_s), (Some(3), 0, 40, 30));
    }

    #[test]
    fn bad_usage_says_what_was_wrong() {
        assert_eq!(parse(&strings(&["attach"])).err().unwrap(), "unknown command \"attach\"");
        assert_eq!(
            parse(&strings(&["attach-test", "--pages"])).err().unwrap(),
            "--pages needs a value"
        );
        assert_eq!(
            parse(&strings(&["attach-test", "--devid", "x"])).err().unwrap(),
            "--devid \"x\" is not a number"
        );
        assert!(parse(&strings(&["attach-test", "--backend-id", "70000"])).is_err());
    }
}
