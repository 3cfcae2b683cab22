//! # vgpu — the toolstack's command for gpu-dom devices (dom0)
//!
//! gpu-dom serves only the guests the toolstack attached: a device is a pair
//! of xenstore directories, the backend one holding the guest's limits in a
//! dom0-owned `limits/` directory (see [`layout`]). This crate creates
//! ([`attach`]), removes ([`detach`]) and shows ([`list`]) such devices the
//! way libxl does for split drivers, over [`xenbus::Client`].
//!
//! | module | what |
//! |---|---|
//! | [`cli`] | the command line and its help |
//! | [`store`] | xenstore calls with typed errors, bounded transactions and waits |
//! | [`domains`] | domains by name or domid |
//! | [`layout`] | the paths, values and permissions of a device |
//! | [`slice`](mod@slice) | GGTT slice placement |
//! | [`attach`], [`detach`], [`list`] | the commands |
//! | [`record`] | the dom0-only copy of each device's limits (`/vgpu/<guest>/<devid>`) |
//! | [`restore`], [`supervise`] | moving devices to a re-created gpu-dom; keeping gpu-dom alive |
//! | [`error`] | what goes wrong, and what to do next |
//!
//! Everything runs against any [`store::Bounded`] transport, so the tests
//! drive the real client code against an in-memory xenstored.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod attach;
pub mod cli;
pub mod detach;
pub mod domains;
pub mod error;
pub mod layout;
pub mod list;
pub mod pools;
pub mod record;
pub mod restore;
pub mod slice;
pub mod store;
pub mod supervise;

use std::io::Write;

pub use cli::{Command, Parsed};
pub use error::Error;
pub use store::{Bounded, Store};

/// Runs `command`; the result goes to `out`, notes (with `verbose`) and
/// warnings to `err`.
pub fn run<T: Bounded>(
    xs: &mut Store<T>,
    command: &Command,
    verbose: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), Error> {
    match command {
        Command::Attach(args) => {
            let done = attach::attach(xs, args)?;
            for w in &done.warnings {
                let _ = writeln!(err, "vgpu: warning: {w}");
            }
            if verbose {
                for n in &done.notes {
                    let _ = writeln!(err, "vgpu: {n}");
                }
            }
            let _ = writeln!(out, "{}", done.summary());
            if let Some(timeout) = args.wait {
                let took = attach::wait_connected(xs, &done, timeout)?;
                let _ = writeln!(
                    out,
                    "connected in {} (frontend Connected, backend Connected)",
                    store::took(took)
                );
            }
        }
        Command::Detach(args) => {
            let done = detach::detach(xs, args)?;
            let _ = writeln!(out, "{}", done.summary());
        }
        Command::List { backend } => {
            let listing = list::list(xs, backend)?;
            let _ = write!(out, "{}", listing.render());
        }
        Command::Restore(args) => {
            let done = restore::restore(xs, args)?;
            let _ = writeln!(out, "{}", done.summary());
            if let Some(timeout) = args.wait {
                for m in &done.moved {
                    let attached = attach::Attached {
                        guest: m.guest.clone(),
                        backend: done.backend.clone(),
                        device: layout::Device {
                            backend: done.backend.id,
                            frontend: m.guest.id,
                            devid: m.devid,
                        },
                        limits: m.record.limits,
                        attempts: 1,
                        notes: Vec::new(),
                        warnings: Vec::new(),
                    };
                    let took = attach::wait_connected(xs, &attached, timeout)?;
                    let _ = writeln!(
                        out,
                        "vgpu {} of {} connected again in {}",
                        m.devid,
                        m.guest,
                        store::took(took)
                    );
                }
            }
        }
        Command::Supervise(args) => {
            let mut xl = supervise::XlCreate { xl: args.xl.clone() };
            supervise::supervise(xs, args, &mut xl, out)?;
        }
    }
    Ok(())
}

/// The whole program after the arguments are split: parses `args`, connects
/// with `connect` only if a command is to run, runs it, prints the result to
/// `out` and problems to `err`. Returns the exit status: 0 done, 1 failed,
/// 2 usage error.
pub fn main_with<T: Bounded>(
    args: &[String],
    connect: impl FnOnce() -> Result<Store<T>, String>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    let (verbose, command) = match cli::parse(args) {
        Ok(Parsed::Run { verbose, command }) => (verbose, command),
        Ok(Parsed::Help(text)) => {
            let _ = write!(out, "{text}");
            return 0;
        }
        Ok(Parsed::Version) => {
            let _ = writeln!(out, "vgpu {}", env!("CARGO_PKG_VERSION"));
            return 0;
        }
        Err(e) => {
            let _ = writeln!(err, "vgpu: {e}\nTry `vgpu --help`.");
            return e.exit_code();
        }
    };
    let mut xs = match connect() {
        Ok(xs) => xs,
        Err(text) => {
            let _ = writeln!(err, "vgpu: {text}");
            return 1;
        }
    };
    match run(&mut xs, &command, verbose, out, err) {
        Ok(()) => 0,
        Err(e) => {
            let _ = writeln!(err, "vgpu: {e}");
            e.exit_code()
        }
    }
}
