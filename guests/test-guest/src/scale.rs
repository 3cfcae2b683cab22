//! Mode `scale` (`cargo xtask scale`): `frontend::scenario::run_scale` on
//! Xen's system time, then the guest stays connected and quiet (its pages
//! stay mapped) until the toolstack shuts it down.
//!
//! Command line: `mode=scale pages=N verify=V rounds=R` (defaults: those
//! of `ScaleConfig`; `pages` defaults to 256 here, not to mode good's 300).

use frontend::scenario::{self, Reporter, ScaleConfig};
use unikernel::boot_options::Cmdline;
use unikernel::xen::timer;

use crate::guest::Fe;

/// The mode's configuration from the command line (`pages` already parsed,
/// present only when given).
pub fn config(args: &Cmdline<'_>, pages: u32) -> ScaleConfig {
    let d = ScaleConfig::default();
    let num = |key: &str, default: u32| {
        args.value(key).and_then(|v| v.parse::<u32>().ok()).unwrap_or(default)
    };
    ScaleConfig {
        pages: if args.value("pages").is_some() { pages } else { d.pages },
        verify: num("verify", d.verify),
        rounds: num("rounds", d.rounds),
        ..d
    }
}

/// Runs the scenario; the caller then idles (connected) until shut down.
pub fn run(fe: &mut Fe, rep: &mut Reporter<'_>, cfg: ScaleConfig) {
    let mut now_us = || timer::now_ns() / 1_000;
    if scenario::run_scale(fe, rep, &cfg, &mut now_us).is_err() && fe.is_connected() {
        scenario::cleanup(fe, rep);
    }
}
