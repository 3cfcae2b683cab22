//! `vgpu`: see `vgpu --help` and the library's documentation.
#![forbid(unsafe_code)]

use std::io::Write;
use std::process::ExitCode;

use xenbus::std_io::StdTransport;
use xenbus::Client;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let connect =
        || Client::<StdTransport>::open_default().map(vgpu::Store::new).map_err(|e| e.to_string());
    let mut out = std::io::stdout().lock();
    let code = vgpu::main_with(&args, connect, &mut out, &mut std::io::stderr());
    let _ = out.flush();
    ExitCode::from(code)
}
