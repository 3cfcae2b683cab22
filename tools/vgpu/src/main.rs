//! `vgpu`: see `vgpu --help` and the library's documentation.
#![forbid(unsafe_code)]

use std::io::Write;
use std::process::ExitCode;

use vgpu::{cli, Parsed, Store};
use xenbus::std_io::StdTransport;
use xenbus::Client;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (verbose, command) = match cli::parse(&args) {
        Ok(Parsed::Run { verbose, command }) => (verbose, command),
        Ok(Parsed::Help(text)) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Ok(Parsed::Version) => {
            println!("vgpu {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("vgpu: {e}\nTry `vgpu --help`.");
            return ExitCode::from(e.exit_code());
        }
    };
    let client = match Client::<StdTransport>::open_default() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("vgpu: {e}");
            return ExitCode::from(1);
        }
    };
    let mut xs = Store::new(client);
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr());
    let result = vgpu::run(&mut xs, &command, verbose, &mut out, &mut err);
    let _ = out.flush();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vgpu: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
