//! The `log` backend: one console line per record, prefixed `gpu-dom:`
//! (and the level, unless it is `Info`).

use super::console::LineWriter;
use core::fmt::Write as _;
use log::{Level, LevelFilter, Log, Metadata, Record};

struct Logger;

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let mut w = LineWriter::new();
        let _ = match record.level() {
            Level::Info => writeln!(w, "gpu-dom: {}", record.args()),
            l => writeln!(w, "gpu-dom: {l}: {}", record.args()),
        };
    }

    fn flush(&self) {}
}

static LOGGER: Logger = Logger;

/// Installs the logger (idempotent).
pub fn init(level: LevelFilter) {
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}
