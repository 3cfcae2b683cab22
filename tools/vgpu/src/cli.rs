//! The command line: `vgpu [--verbose] <command> [options]`.
//!
//! Options take their value as the next word or after `=`
//! (`--devid 1`, `--devid=1`). Numbers are decimal or `0x` hexadecimal.
//! Anything wrong is an [`Error::Usage`] (exit status 2) that says what.

use std::time::Duration;

use crate::attach::{AttachArgs, MAX_CONTEXTS};
use crate::detach::DetachArgs;
use crate::error::Error;
use crate::restore::RestoreArgs;
use crate::supervise::SuperviseArgs;

/// A command to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `vgpu attach`.
    Attach(AttachArgs),
    /// `vgpu detach`.
    Detach(DetachArgs),
    /// `vgpu list`.
    List {
        /// The backend, by name or domid.
        backend: String,
    },
    /// `vgpu restore`.
    Restore(RestoreArgs),
    /// `vgpu supervise`.
    Supervise(SuperviseArgs),
}

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// Run this command.
    Run {
        /// `--verbose`.
        verbose: bool,
        /// The command.
        command: Command,
    },
    /// Print this help and exit 0.
    Help(&'static str),
    /// Print the version and exit 0.
    Version,
}

/// The top-level help.
pub const HELP: &str = "\
vgpu - give guests a vgpu device served by gpu-dom, the GPU driver domain (run in dom0)

Usage: vgpu [-v|--verbose] <command> [options]

Commands:
  attach <guest>   create the guest's vgpu device, with its GGTT slice and limits
  detach <guest>   remove it (gpu-dom revokes every GPU mapping of the guest first)
  list             show a backend's devices, their states, slices and statistics
  restore          move the devices of a gpu-dom that died to the new gpu-dom
  supervise <dom>  keep gpu-dom alive: re-create it when it dies and restore its devices

Options:
  -v, --verbose    say more about what is done
  -h, --help       this help; `vgpu <command> --help` for one command
  -V, --version    print the version

<guest> and --backend are domain names or domids, as `xl list` shows them.
Exit status: 0 done, 1 failed (the message says why and what to do next), 2 usage error.
";

/// Help of `vgpu attach`.
pub const ATTACH_HELP: &str = "\
Usage: vgpu attach <guest> [options]

Creates /local/domain/<backend>/backend/vgpu/<guest>/<devid> and
/local/domain/<guest>/device/vgpu/<devid> in one xenstore transaction. The
guest's limits go to a limits/ directory that dom0 owns: the guest and the
backend can read them, not change them. The limits are reserved from the
backend's pools (data/vgpu-pool/, `vgpu list` shows them): limits that do not
fit in what is left are refused before anything is written. The defaults are
a sixteenth of a default gpu-dom, which serves 16 default guests.

Options:
  --backend DOM          the backend domain (default gpu-dom)
  --devid N              device id (default 0)
  --ggtt-base N          first GGTT entry of the guest's slice (default: the lowest
                         base where the slice overlaps no other guest's slice)
  --ggtt-entries N       GGTT entries in the slice (default 4096)
  --contexts N           PPGTT contexts, 1 to 16 (default 4)
  --max-pages N          guest pages mapped at once (default 1024)
  --max-table-pages N    PPGTT table pages at once (default 64)
  --wait [SECS]          then wait until both ends are Connected (default 10 s)
  -v, --verbose          say more
";

/// Help of `vgpu detach`.
pub const DETACH_HELP: &str = "\
Usage: vgpu detach <guest> [options]

Sets the backend's online = 0 and state = 5 (Closing), waits until gpu-dom
says Closed (it revokes every GPU mapping of the guest and releases its grants
first), then removes the backend and frontend directories. <guest> may be the
domid of a domain that no longer exists, to clean up after it.

Options:
  --devid N              device id (default 0)
  --backend DOM          the backend domain (default: the one that has the device)
  --timeout SECS         how long to wait for Closed (default 10)
  --force                remove the directories without waiting; gpu-dom
                         revokes everything on its own when they disappear
  -v, --verbose          say more
";

/// Help of `vgpu list`.
pub const LIST_HELP: &str = "\
Usage: vgpu list [options]

One line per device: guest, domid, devid, frontend and backend states, GGTT
slice (base+entries), and the statistics gpu-dom publishes under stats/
(pages, entries, contexts, refused; - when absent). Devices of guests that no
longer exist are reported as stale.

Options:
  --backend DOM          the backend domain (default gpu-dom)
";

/// Help of `vgpu restore`.
pub const RESTORE_HELP: &str = "\
Usage: vgpu restore [options]

Moves every device whose backend died to the backend named by --backend (a
re-created gpu-dom), in one xenstore transaction: for each device, the new
backend directory with the guest's limits, GGTT slice and device id (from
the dom0-only record /vgpu/<guest>/<devid> that `vgpu attach` wrote), and
the guest's backend and backend-id rewritten to name it. The guests'
frontends then reconnect and replay their mappings. Records of guests that
no longer exist are dropped.

Options:
  --backend DOM          the new backend (default gpu-dom)
  --wait [SECS]          then wait until every moved device is Connected (default 10 s)
  -v, --verbose          say more
";

/// Help of `vgpu supervise`.
pub const SUPERVISE_HELP: &str = "\
Usage: vgpu supervise <name> --config PATH [options]

Runs until stopped (systemd: vgpu-supervise@<name>.service). Watches
@releaseDomain; whenever no domain is named <name>, runs `xl create PATH`,
runs `vgpu restore --backend <name>` at once (gpu-dom serves the devices it
finds when it starts), waits until the domain wrote data/<name>-ready = 1,
and waits until every moved guest is Connected again, one line per step. If the domain dies (or `xl create` fails) --boot-deaths times
in a row, each within --boot-window of its creation, it stops and says why
(exit status 1), waiting 1, 2, 4 ... s (at most 30 s) between such attempts.
To stop gpu-dom for good, stop the supervisor first.

Options:
  --config PATH          the domain's xl config (required)
  --boot-deaths N        deaths at boot in a row before giving up (default 3)
  --boot-window SECS     what counts as dying at boot (default 60)
  --ready-timeout SECS   longest wait for data/<name>-ready (default 60)
  --xl PATH              the xl program (default xl)
";

fn usage(text: String) -> Error {
    Error::Usage(text)
}

/// Parses a number: decimal or `0x` hexadecimal.
fn number(opt: &str, value: &str) -> Result<u32, Error> {
    let parsed = match value.strip_prefix("0x").or_else(|| value.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => value.parse::<u32>().ok().filter(|_| value.bytes().all(|b| b.is_ascii_digit())),
    };
    parsed.ok_or_else(|| {
        usage(format!("{opt}: '{value}' is not a number (decimal or 0x hex, up to {})", u32::MAX))
    })
}

/// Parses seconds: `10`, `2.5`; more than 0, at most a day.
fn seconds(opt: &str, value: &str) -> Result<Duration, Error> {
    match value.parse::<f64>() {
        Ok(s) if s > 0.0 && s <= 86400.0 => Ok(Duration::from_secs_f64(s)),
        _ => Err(usage(format!("{opt}: '{value}' is not a number of seconds between 0 and 86400"))),
    }
}

fn positive(opt: &str, value: &str) -> Result<u32, Error> {
    match number(opt, value)? {
        0 => Err(usage(format!("{opt}: must be at least 1"))),
        n => Ok(n),
    }
}

/// The words after the command, split into options and positionals.
struct Words<'a> {
    words: std::iter::Peekable<std::slice::Iter<'a, String>>,
}

impl<'a> Words<'a> {
    /// The value of `opt`: inline (`--opt=v`) or the next word.
    fn value(&mut self, opt: &str, inline: Option<&'a str>) -> Result<&'a str, Error> {
        if let Some(v) = inline {
            return Ok(v);
        }
        match self.words.next() {
            Some(v) if !v.starts_with("--") => Ok(v.as_str()),
            _ => Err(usage(format!("{opt} needs a value"))),
        }
    }

    /// An optional value: inline, or the next word if it is a number.
    fn optional_seconds(
        &mut self,
        opt: &str,
        inline: Option<&str>,
        default: Duration,
    ) -> Result<Duration, Error> {
        if let Some(v) = inline {
            return seconds(opt, v);
        }
        match self.words.peek() {
            Some(v) if v.parse::<f64>().is_ok() => {
                let v = self.words.next().map(String::as_str).unwrap_or("");
                seconds(opt, v)
            }
            _ => Ok(default),
        }
    }
}

/// Parses the arguments after the program name.
pub fn parse(args: &[String]) -> Result<Parsed, Error> {
    let mut verbose = false;
    let mut help = false;
    let mut command: Option<&str> = None;
    let mut guest: Option<&str> = None;
    let mut words = Words { words: args.iter().peekable() };
    let mut attach = AttachArgs::new("");
    let mut detach = DetachArgs::new("");
    let mut list_backend = "gpu-dom".to_string();
    let mut restore = RestoreArgs { backend: "gpu-dom".to_string(), wait: None };
    let mut supervise = SuperviseArgs::new("", std::path::Path::new(""));
    let mut config_given = false;
    while let Some(word) = words.words.next() {
        let (name, inline) = match word.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v)),
            _ => (word.as_str(), None),
        };
        match name {
            "-v" | "--verbose" => verbose = true,
            "-h" | "--help" => help = true,
            "-V" | "--version" => return Ok(Parsed::Version),
            "help" if command.is_none() => help = true,
            n if n.starts_with('-') && n.len() > 1 => {
                let Some(cmd) = command else {
                    return Err(usage(format!("unknown option {n} before the command")));
                };
                match (cmd, n) {
                    ("attach", "--backend") => attach.backend = words.value(n, inline)?.to_string(),
                    ("detach", "--backend") => {
                        detach.backend = Some(words.value(n, inline)?.to_string())
                    }
                    ("list", "--backend") => list_backend = words.value(n, inline)?.to_string(),
                    ("attach", "--devid") => attach.devid = number(n, words.value(n, inline)?)?,
                    ("detach", "--devid") => detach.devid = number(n, words.value(n, inline)?)?,
                    ("attach", "--ggtt-base") => {
                        attach.ggtt_base = Some(number(n, words.value(n, inline)?)?)
                    }
                    ("attach", "--ggtt-entries") => {
                        attach.ggtt_entries = positive(n, words.value(n, inline)?)?
                    }
                    ("attach", "--contexts") => {
                        attach.contexts = positive(n, words.value(n, inline)?)?;
                        if attach.contexts > MAX_CONTEXTS {
                            return Err(usage(format!(
                                "--contexts {}: at most {MAX_CONTEXTS} (gpu-dom's PPGTT contexts per guest)",
                                attach.contexts
                            )));
                        }
                    }
                    ("attach", "--max-pages") => {
                        attach.max_pages = positive(n, words.value(n, inline)?)?
                    }
                    ("attach", "--max-table-pages") => {
                        attach.max_table_pages = positive(n, words.value(n, inline)?)?
                    }
                    ("attach", "--wait") => {
                        attach.wait =
                            Some(words.optional_seconds(n, inline, Duration::from_secs(10))?)
                    }
                    ("detach", "--timeout") => {
                        detach.timeout = seconds(n, words.value(n, inline)?)?
                    }
                    ("detach", "--force") => detach.force = true,
                    ("restore", "--backend") => {
                        restore.backend = words.value(n, inline)?.to_string()
                    }
                    ("restore", "--wait") => {
                        restore.wait =
                            Some(words.optional_seconds(n, inline, Duration::from_secs(10))?)
                    }
                    ("supervise", "--config") => {
                        supervise.config = words.value(n, inline)?.into();
                        config_given = true;
                    }
                    ("supervise", "--boot-deaths") => {
                        supervise.boot_deaths = positive(n, words.value(n, inline)?)?
                    }
                    ("supervise", "--boot-window") => {
                        supervise.boot_window = seconds(n, words.value(n, inline)?)?
                    }
                    ("supervise", "--ready-timeout") => {
                        supervise.ready_timeout = seconds(n, words.value(n, inline)?)?
                    }
                    ("supervise", "--xl") => supervise.xl = words.value(n, inline)?.to_string(),
                    _ => {
                        return Err(usage(format!(
                            "vgpu {cmd} has no option {n}; `vgpu {cmd} --help` lists them"
                        )))
                    }
                }
            }
            w if command.is_none() => match w {
                "attach" | "detach" | "list" | "restore" | "supervise" => command = Some(w),
                _ => {
                    return Err(usage(format!(
                        "unknown command '{w}'; the commands are attach, detach, list, restore, supervise"
                    )))
                }
            },
            w if guest.is_none() && !matches!(command, Some("list" | "restore")) => guest = Some(w),
            w => return Err(usage(format!("unexpected argument '{w}'"))),
        }
    }
    if help {
        return Ok(Parsed::Help(match command {
            Some("attach") => ATTACH_HELP,
            Some("detach") => DETACH_HELP,
            Some("list") => LIST_HELP,
            Some("restore") => RESTORE_HELP,
            Some("supervise") => SUPERVISE_HELP,
            _ => HELP,
        }));
    }
    let command = match command {
        None => {
            return Err(usage(
                "no command given; the commands are attach, detach, list, restore, supervise"
                    .into(),
            ))
        }
        Some("list") => Command::List { backend: list_backend },
        Some("restore") => Command::Restore(restore),
        Some("supervise") => {
            let Some(g) = guest else {
                return Err(usage("vgpu supervise needs the domain's name (gpu-dom)".into()));
            };
            if !config_given {
                return Err(usage(format!(
                    "vgpu supervise {g} needs --config PATH (the xl config that creates {g})"
                )));
            }
            supervise.name = g.to_string();
            Command::Supervise(supervise)
        }
        Some(cmd) => {
            let Some(g) = guest else {
                return Err(usage(format!("vgpu {cmd} needs a <guest> (a domain name or domid)")));
            };
            if cmd == "attach" {
                attach.guest = g.to_string();
                Command::Attach(attach)
            } else {
                detach.guest = g.to_string();
                Command::Detach(detach)
            }
        }
    };
    Ok(Parsed::Run { verbose, command })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(line: &str) -> Result<Parsed, Error> {
        let args: Vec<String> = line.split_whitespace().map(str::to_string).collect();
        parse(&args)
    }

    fn run(line: &str) -> Command {
        match p(line) {
            Ok(Parsed::Run { command, .. }) => command,
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn attach_defaults_follow_the_documented_values() {
        let Command::Attach(a) = run("attach guest1") else { panic!() };
        assert_eq!(a, AttachArgs::new("guest1"));
        assert_eq!(
            (a.ggtt_entries, a.contexts, a.max_pages, a.max_table_pages),
            (4096, 4, 1024, 64)
        );
        assert_eq!(a.backend, "gpu-dom");
    }

    #[test]
    fn attach_options_take_separate_or_inline_values_and_hex() {
        let Command::Attach(a) =
            run("attach 5 --backend=1 --devid 2 --ggtt-base 0x1000 --ggtt-entries=512 --contexts 16 --wait")
        else {
            panic!()
        };
        assert_eq!((a.guest.as_str(), a.backend.as_str(), a.devid), ("5", "1", 2));
        assert_eq!((a.ggtt_base, a.ggtt_entries, a.contexts), (Some(4096), 512, 16));
        assert_eq!(a.wait, Some(Duration::from_secs(10)));
        let Command::Attach(a) = run("attach g --wait 2.5") else { panic!() };
        assert_eq!(a.wait, Some(Duration::from_millis(2500)));
    }

    #[test]
    fn bad_command_lines_are_usage_errors_with_exit_status_2() {
        for (line, says) in [
            ("", "no command"),
            ("frobnicate", "unknown command 'frobnicate'"),
            ("attach", "needs a <guest>"),
            ("attach g --contexts 17", "at most 16"),
            ("attach g --contexts 0", "at least 1"),
            ("attach g --ggtt-entries lots", "'lots' is not a number"),
            ("attach g --ggtt-base 4294967296", "not a number"),
            ("attach g --devid", "--devid needs a value"),
            ("attach g --force", "vgpu attach has no option --force"),
            ("detach g --timeout 0", "between 0 and 86400"),
            ("list extra", "unexpected argument 'extra'"),
            ("attach a b", "unexpected argument 'b'"),
        ] {
            let err = p(line).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{line}");
            assert!(err.to_string().contains(says), "{line}: {err}");
        }
    }

    #[test]
    fn help_is_per_command_and_wins_over_missing_arguments() {
        assert_eq!(p("--help").unwrap(), Parsed::Help(HELP));
        assert_eq!(p("help").unwrap(), Parsed::Help(HELP));
        assert_eq!(p("attach --help").unwrap(), Parsed::Help(ATTACH_HELP));
        assert_eq!(p("detach -h").unwrap(), Parsed::Help(DETACH_HELP));
        assert_eq!(p("-v list --help").unwrap(), Parsed::Help(LIST_HELP));
        assert_eq!(p("--version").unwrap(), Parsed::Version);
    }

    #[test]
    fn detach_and_list_options() {
        let Command::Detach(d) = run("detach guest1 --devid 3 --force --timeout 2") else {
            panic!()
        };
        assert_eq!(
            (d.devid, d.force, d.timeout, d.backend),
            (3, true, Duration::from_secs(2), None)
        );
        assert_eq!(run("list --backend 1"), Command::List { backend: "1".into() });
        assert_eq!(run("list"), Command::List { backend: "gpu-dom".into() });
        assert!(matches!(p("-v list"), Ok(Parsed::Run { verbose: true, .. })));
    }
}
