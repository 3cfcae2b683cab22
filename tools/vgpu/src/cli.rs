//! The command line: `vgpu [--verbose] <command> [options]`, parsed by clap.
//!
//! Options take their value as the next word or after `=`
//! (`--devid 1`, `--devid=1`); given twice, the last one counts. Numbers
//! are decimal or `0x` hexadecimal. Anything wrong is an [`Error::Usage`]
//! (exit status 2) that says what, in this tool's words (see
//! [`usage_error`]).

use std::path::PathBuf;
use std::time::Duration;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Args, ColorChoice, Parser, Subcommand};
use gpuif::keys::default_limits;

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
    Help(String),
    /// Print the version and exit 0.
    Version,
}

/// The commands, as usage errors name them.
const COMMANDS: &str = "attach, detach, list, restore, supervise";

/// A command's help: usage first, then what it does in a line and in a
/// paragraph, then its arguments and options.
const COMMAND_HELP: &str =
    "{usage-heading} {usage}\n\n{about-with-newline}\n{before-help}{all-args}{after-help}";

/// vgpu - give guests a vgpu device served by gpu-dom, the GPU driver domain (run in dom0)
#[derive(Parser, Debug)]
#[command(
    name = "vgpu",
    version,
    override_usage = "vgpu [-v|--verbose] <command> [options]",
    after_help = "<guest> and --backend are domain names or domids, as `xl list` shows them.\n\
                  Exit status: 0 done, 1 failed (the message says why and what to do next), 2 usage error.",
    args_override_self = true,
    arg_required_else_help = false,
    color = ColorChoice::Never
)]
struct Line {
    /// Say more about what is done.
    #[arg(short, long, global = true, display_order = 100)]
    verbose: bool,
    #[command(subcommand)]
    command: Verb,
}

/// What `vgpu attach` does, in its help.
const ATTACH_TEXT: &str = "\
Creates /local/domain/<backend>/backend/vgpu/<guest>/<devid> and
/local/domain/<guest>/device/vgpu/<devid> in one xenstore transaction. The
guest's limits go to a limits/ directory that dom0 owns: the guest and the
backend can read them, not change them. The limits are reserved from the
backend's pools (data/vgpu-pool/, `vgpu list` shows them): limits that do not
fit in what is left are refused before anything is written. The defaults are
a sixteenth of a default gpu-dom, which serves 16 default guests.";

/// What `vgpu detach` does, in its help.
const DETACH_TEXT: &str = "\
Sets the backend's online = 0 and state = 5 (Closing), waits until gpu-dom
says Closed (it revokes every GPU mapping of the guest and releases its grants
first), then removes the backend and frontend directories. <guest> may be the
domid of a domain that no longer exists, to clean up after it.";

/// What `vgpu list` does, in its help.
const LIST_TEXT: &str = "\
One line per device: guest, domid, devid, frontend and backend states, GGTT
slice (base+entries), and the statistics gpu-dom publishes under stats/
(pages, entries, contexts, refused; - when absent). Devices of guests that no
longer exist are reported as stale.";

/// What `vgpu restore` does, in its help.
const RESTORE_TEXT: &str = "\
Moves every device whose backend died to the backend named by --backend (a
re-created gpu-dom), in one xenstore transaction: for each device, the new
backend directory with the guest's limits, GGTT slice and device id (from
the dom0-only record /vgpu/<guest>/<devid> that `vgpu attach` wrote), and
the guest's backend and backend-id rewritten to name it. The guests'
frontends then reconnect and replay their mappings. Records of guests that
no longer exist are dropped.";

/// What `vgpu supervise` does, in its help.
const SUPERVISE_TEXT: &str = "\
Runs until stopped (systemd: vgpu-supervise@<name>.service). Watches
@releaseDomain; whenever no domain is named <name>, runs `xl create PATH`,
runs `vgpu restore --backend <name>` at once (gpu-dom serves the devices it
finds when it starts), waits until the domain wrote data/<name>-ready = 1,
and waits until every moved guest is Connected again, one line per step. If
the domain dies (or `xl create` fails) --boot-deaths times in a row, each
within --boot-window of its creation, it stops and says why (exit status
1), waiting 1, 2, 4 ... s (at most 30 s) between such attempts. To stop
gpu-dom for good, stop the supervisor first.";

#[derive(Subcommand, Debug)]
enum Verb {
    /// Create the guest's vgpu device, with its GGTT slice and limits.
    #[command(
        override_usage = "vgpu attach <guest> [options]",
        help_template = COMMAND_HELP,
        before_help = ATTACH_TEXT,
        allow_negative_numbers = true
    )]
    Attach(Attach),
    /// Remove the guest's device (gpu-dom revokes every GPU mapping of the guest first).
    #[command(
        override_usage = "vgpu detach <guest> [options]",
        help_template = COMMAND_HELP,
        before_help = DETACH_TEXT,
        allow_negative_numbers = true
    )]
    Detach(Detach),
    /// Show a backend's devices, their states, slices and statistics, and its pools.
    #[command(override_usage = "vgpu list [options]", help_template = COMMAND_HELP,
        before_help = LIST_TEXT)]
    List(List),
    /// Move the devices of a gpu-dom that died to the new gpu-dom.
    #[command(
        override_usage = "vgpu restore [options]",
        help_template = COMMAND_HELP,
        before_help = RESTORE_TEXT,
        allow_negative_numbers = true
    )]
    Restore(Restore),
    /// Keep gpu-dom alive: re-create it when it dies and restore its devices.
    #[command(
        override_usage = "vgpu supervise <name> --config PATH [options]",
        help_template = COMMAND_HELP,
        before_help = SUPERVISE_TEXT,
        allow_negative_numbers = true
    )]
    Supervise(Supervise),
}

#[derive(Args, Debug)]
struct Attach {
    /// The guest, by name or domid.
    #[arg(value_name = "guest")]
    guest: String,
    /// The backend domain.
    #[arg(long, value_name = "DOM", default_value = "gpu-dom")]
    backend: String,
    /// Device id.
    #[arg(long, value_name = "N", default_value = "0", value_parser = number)]
    devid: u32,
    /// First GGTT entry of the guest's slice [default: the lowest base where
    /// the slice overlaps no other guest's slice].
    #[arg(long, value_name = "N", value_parser = number)]
    ggtt_base: Option<u32>,
    /// GGTT entries in the slice.
    #[arg(long, value_name = "N", default_value_t = default_limits::GGTT_ENTRIES, value_parser = positive)]
    ggtt_entries: u32,
    /// PPGTT contexts, 1 to 16.
    #[arg(long, value_name = "N", default_value_t = default_limits::CONTEXTS, value_parser = contexts)]
    contexts: u32,
    /// Guest pages mapped at once.
    #[arg(long, value_name = "N", default_value_t = default_limits::MAX_PAGES, value_parser = positive)]
    max_pages: u32,
    /// PPGTT table pages at once.
    #[arg(long, value_name = "N", default_value_t = default_limits::MAX_TABLE_PAGES, value_parser = positive)]
    max_table_pages: u32,
    /// Then wait until both ends are Connected (10 s without SECS).
    #[arg(long, value_name = "SECS", num_args = 0..=1, default_missing_value = "10", value_parser = seconds)]
    wait: Option<Duration>,
}

#[derive(Args, Debug)]
struct Detach {
    /// The guest, by name or domid (a domid may name a domain already destroyed).
    #[arg(value_name = "guest")]
    guest: String,
    /// Device id.
    #[arg(long, value_name = "N", default_value = "0", value_parser = number)]
    devid: u32,
    /// The backend domain [default: the one that has the device].
    #[arg(long, value_name = "DOM")]
    backend: Option<String>,
    /// How long to wait for Closed, in seconds.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = seconds)]
    timeout: Duration,
    /// Remove the directories without waiting; gpu-dom revokes everything on
    /// its own when they disappear.
    #[arg(long)]
    force: bool,
}

#[derive(Args, Debug)]
struct List {
    /// The backend domain.
    #[arg(long, value_name = "DOM", default_value = "gpu-dom")]
    backend: String,
}

#[derive(Args, Debug)]
struct Restore {
    /// The new backend.
    #[arg(long, value_name = "DOM", default_value = "gpu-dom")]
    backend: String,
    /// Then wait until every moved device is Connected (10 s without SECS).
    #[arg(long, value_name = "SECS", num_args = 0..=1, default_missing_value = "10", value_parser = seconds)]
    wait: Option<Duration>,
}

#[derive(Args, Debug)]
struct Supervise {
    /// The domain's name (gpu-dom).
    #[arg(value_name = "name")]
    name: String,
    /// The domain's xl config (required).
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Deaths at boot in a row before giving up.
    #[arg(long, value_name = "N", default_value = "3", value_parser = positive)]
    boot_deaths: u32,
    /// What counts as dying at boot, in seconds.
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = seconds)]
    boot_window: Duration,
    /// Longest wait for data/<name>-ready, in seconds.
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = seconds)]
    ready_timeout: Duration,
    /// The xl program.
    #[arg(long, value_name = "PATH", default_value = "xl")]
    xl: String,
}

/// Parses a number: decimal or `0x` hexadecimal.
fn number(value: &str) -> Result<u32, String> {
    let parsed = match value.strip_prefix("0x").or_else(|| value.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => value.parse::<u32>().ok().filter(|_| value.bytes().all(|b| b.is_ascii_digit())),
    };
    parsed
        .ok_or_else(|| format!("'{value}' is not a number (decimal or 0x hex, up to {})", u32::MAX))
}

/// A number, at least 1.
fn positive(value: &str) -> Result<u32, String> {
    match number(value)? {
        0 => Err("must be at least 1".into()),
        n => Ok(n),
    }
}

/// PPGTT contexts: 1 to [`MAX_CONTEXTS`].
fn contexts(value: &str) -> Result<u32, String> {
    match positive(value)? {
        n if n > MAX_CONTEXTS => {
            Err(format!("{n}: at most {MAX_CONTEXTS} (gpu-dom's PPGTT contexts per guest)"))
        }
        n => Ok(n),
    }
}

/// Parses seconds: `10`, `2.5`; more than 0, at most a day.
fn seconds(value: &str) -> Result<Duration, String> {
    match value.parse::<f64>() {
        Ok(s) if s > 0.0 && s <= 86400.0 => Ok(Duration::from_secs_f64(s)),
        _ => Err(format!("'{value}' is not a number of seconds between 0 and 86400")),
    }
}

/// Parses the arguments after the program name.
pub fn parse(args: &[String]) -> Result<Parsed, Error> {
    let words = std::iter::once("vgpu").chain(args.iter().map(String::as_str));
    let line = match Line::try_parse_from(words) {
        Ok(line) => line,
        Err(e) => {
            return match e.kind() {
                ErrorKind::DisplayHelp => Ok(Parsed::Help(e.render().to_string())),
                ErrorKind::DisplayVersion => Ok(Parsed::Version),
                _ => Err(usage_error(&e, args)),
            }
        }
    };
    let command = match line.command {
        Verb::Attach(a) => Command::Attach(AttachArgs {
            guest: a.guest,
            backend: a.backend,
            devid: a.devid,
            ggtt_base: a.ggtt_base,
            ggtt_entries: a.ggtt_entries,
            contexts: a.contexts,
            max_pages: a.max_pages,
            max_table_pages: a.max_table_pages,
            wait: a.wait,
        }),
        Verb::Detach(d) => Command::Detach(DetachArgs {
            backend: d.backend,
            devid: d.devid,
            force: d.force,
            timeout: d.timeout,
            ..DetachArgs::new(&d.guest)
        }),
        Verb::List(l) => Command::List { backend: l.backend },
        Verb::Restore(r) => Command::Restore(RestoreArgs { backend: r.backend, wait: r.wait }),
        Verb::Supervise(s) => {
            let Some(config) = s.config else {
                let g = &s.name;
                return Err(Error::Usage(format!(
                    "vgpu supervise {g} needs --config PATH (the xl config that creates {g})"
                )));
            };
            Command::Supervise(SuperviseArgs {
                boot_deaths: s.boot_deaths,
                boot_window: s.boot_window,
                ready_timeout: s.ready_timeout,
                xl: s.xl,
                ..SuperviseArgs::new(&s.name, &config)
            })
        }
    };
    Ok(Parsed::Run { verbose: line.verbose, command })
}

/// Says what was wrong with the command line, in this tool's words: the
/// option or word at fault, and what to do next.
fn usage_error(e: &clap::Error, args: &[String]) -> Error {
    let context = |kind| match e.get(kind) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        Some(ContextValue::Strings(v)) => v.first().cloned(),
        _ => None,
    };
    // The option as written in the help (`--devid <N>` -> `--devid`).
    let arg = context(ContextKind::InvalidArg).unwrap_or_default();
    let opt = arg.split([' ', '=']).next().unwrap_or_default().to_string();
    let command = command_word(args);
    // clap lists its guesses from the least to the most likely.
    let suggestion =
        match e.get(ContextKind::SuggestedSubcommand).or(e.get(ContextKind::SuggestedArg)) {
            Some(ContextValue::String(s)) => format!("; did you mean '{s}'?"),
            Some(ContextValue::Strings(v)) if !v.is_empty() => {
                let guesses: Vec<String> = v.iter().rev().map(|s| format!("'{s}'")).collect();
                format!("; did you mean {}?", guesses.join(" or "))
            }
            _ => String::new(),
        };
    let text = match (e.kind(), command) {
        (ErrorKind::MissingSubcommand | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand, _) => {
            format!("no command given; the commands are {COMMANDS}")
        }
        (ErrorKind::InvalidSubcommand, _) => format!(
            "unknown command '{}'; the commands are {COMMANDS}{suggestion}",
            context(ContextKind::InvalidSubcommand).unwrap_or_default()
        ),
        (ErrorKind::UnknownArgument, _) if !opt.starts_with('-') || opt == "-" => {
            format!("unexpected argument '{arg}'")
        }
        (ErrorKind::UnknownArgument, Some((at, cmd)))
            if args.iter().position(|w| w.starts_with(&opt)) > Some(at) =>
        {
            format!("vgpu {cmd} has no option {opt}; `vgpu {cmd} --help` lists them{suggestion}")
        }
        (ErrorKind::UnknownArgument, _) => format!("unknown option {opt} before the command"),
        (ErrorKind::MissingRequiredArgument, Some((_, "supervise"))) => {
            "vgpu supervise needs the domain's name (gpu-dom)".into()
        }
        (ErrorKind::MissingRequiredArgument, Some((_, cmd))) => {
            format!("vgpu {cmd} needs a <guest> (a domain name or domid)")
        }
        (ErrorKind::InvalidValue, _)
            if context(ContextKind::InvalidValue).is_some_and(|v| v.is_empty()) =>
        {
            format!("{opt} needs a value")
        }
        (ErrorKind::ValueValidation, _) => match std::error::Error::source(e) {
            Some(why) => format!("{opt}: {why}"),
            None => clap_first_line(e),
        },
        _ => clap_first_line(e),
    };
    Error::Usage(text)
}

/// The command word (the first word that is not an option), and where it is.
fn command_word(args: &[String]) -> Option<(usize, &str)> {
    let (at, word) = args.iter().enumerate().find(|(_, w)| !w.starts_with('-'))?;
    ["attach", "detach", "list", "restore", "supervise"]
        .contains(&word.as_str())
        .then_some((at, word.as_str()))
}

/// clap's own message, for the errors this tool does not word itself.
fn clap_first_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let line = text.lines().next().unwrap_or_default();
    line.strip_prefix("error: ").unwrap_or(line).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

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

    fn help(line: &str) -> String {
        match p(line) {
            Ok(Parsed::Help(text)) => text,
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        Line::command().debug_assert();
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
        let Command::Attach(a) = run("attach g --wait --devid 3 --devid 4") else { panic!() };
        assert_eq!(
            (a.wait, a.devid),
            (Some(Duration::from_secs(10)), 4),
            "the last --devid counts"
        );
    }

    #[test]
    fn bad_command_lines_are_usage_errors_with_exit_status_2() {
        for (line, says) in [
            ("", "no command given; the commands are attach"),
            ("-v", "no command given"),
            ("frobnicate", "unknown command 'frobnicate'; the commands are attach"),
            ("atach g", "did you mean 'attach' or 'detach'?"),
            ("attach", "vgpu attach needs a <guest> (a domain name or domid)"),
            ("detach --devid 1", "vgpu detach needs a <guest>"),
            ("supervise", "vgpu supervise needs the domain's name"),
            ("supervise gpu-dom", "vgpu supervise gpu-dom needs --config PATH"),
            ("attach g --contexts 17", "--contexts: 17: at most 16"),
            ("attach g --contexts 0", "--contexts: must be at least 1"),
            ("attach g --ggtt-entries lots", "--ggtt-entries: 'lots' is not a number"),
            ("attach g --ggtt-base 4294967296", "not a number"),
            ("attach g --devid", "--devid needs a value"),
            ("attach g --devid=", "--devid"),
            (
                "attach g --force",
                "vgpu attach has no option --force; `vgpu attach --help` lists them",
            ),
            ("detach g --forse", "did you mean '--force'?"),
            ("--devid 1 attach g", "unknown option --devid before the command"),
            ("detach g --timeout 0", "between 0 and 86400"),
            ("detach g --timeout -1", "between 0 and 86400"),
            ("list extra", "unexpected argument 'extra'"),
            ("attach a b", "unexpected argument 'b'"),
        ] {
            let err = p(line).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{line}");
            assert!(err.to_string().contains(says), "{line}: {err}");
            assert!(!err.to_string().contains("error:"), "{line}: in this tool's words: {err}");
        }
    }

    #[test]
    fn help_is_per_command_and_wins_over_missing_arguments() {
        let top = help("--help");
        assert!(top.starts_with("vgpu - give guests a vgpu device"), "{top}");
        for (command, does) in [
            ("attach", "Create the guest's vgpu device"),
            ("detach", "Remove the guest's device"),
            ("list", "Show a backend's devices"),
            ("restore", "Move the devices of a gpu-dom that died"),
            ("supervise", "Keep gpu-dom alive"),
        ] {
            assert!(
                top.contains(&format!("  {command}")) && top.contains(does),
                "{command}: {top}"
            );
        }
        assert!(top.contains("Exit status: 0 done, 1 failed"), "{top}");
        assert_eq!(help("help"), help("-h"));
        let attach = help("attach --help");
        assert!(attach.starts_with("Usage: vgpu attach <guest> [options]\n"), "{attach}");
        for option in ["--backend <DOM>", "--ggtt-base <N>", "--contexts <N>", "--wait [<SECS>]"] {
            assert!(attach.contains(option), "{option}: {attach}");
        }
        assert!(attach.contains("[default: 4096]"), "defaults shown: {attach}");
        assert_eq!(help("help attach"), attach);
        assert!(help("detach -h").starts_with("Usage: vgpu detach <guest> [options]"));
        assert!(help("-v list --help").starts_with("Usage: vgpu list [options]"));
        assert!(help("supervise --help").contains("--boot-deaths <N>"));
        assert_eq!(p("--version").unwrap(), Parsed::Version);
    }

    #[test]
    fn detach_list_restore_and_supervise_options() {
        let Command::Detach(d) = run("detach guest1 --devid 3 --force --timeout 2") else {
            panic!()
        };
        assert_eq!(
            (d.devid, d.force, d.timeout, d.backend),
            (3, true, Duration::from_secs(2), None)
        );
        assert_eq!(run("detach g"), Command::Detach(DetachArgs::new("g")));
        assert_eq!(run("list --backend 1"), Command::List { backend: "1".into() });
        assert_eq!(run("list"), Command::List { backend: "gpu-dom".into() });
        assert!(matches!(p("-v list"), Ok(Parsed::Run { verbose: true, .. })));
        assert!(matches!(p("list -v"), Ok(Parsed::Run { verbose: true, .. })));
        assert_eq!(
            run("restore --wait=3"),
            Command::Restore(RestoreArgs {
                backend: "gpu-dom".into(),
                wait: Some(Duration::from_secs(3))
            })
        );
        let cfg = std::path::Path::new("/etc/xen/gpu-dom.cfg");
        assert_eq!(
            run("supervise gpu-dom --config /etc/xen/gpu-dom.cfg"),
            Command::Supervise(SuperviseArgs::new("gpu-dom", cfg))
        );
        let Command::Supervise(s) = run(
            "supervise gd --config c --boot-deaths 5 --boot-window 9 --ready-timeout 7 --xl /x",
        ) else {
            panic!()
        };
        assert_eq!((s.boot_deaths, s.boot_window.as_secs(), s.ready_timeout.as_secs()), (5, 9, 7));
        assert_eq!((s.name.as_str(), s.xl.as_str()), ("gd", "/x"));
    }
}
