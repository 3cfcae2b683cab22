//! The `log` backend: one console line per record, prefixed with the
//! image's name (`gpu-dom:` unless [`set_prefix`] changed it) and the level,
//! unless it is `Info`.

use super::console::LineWriter;
use core::fmt::Write as _;
use log::{Level, LevelFilter, Log, Metadata, Record};

static PREFIX: spin::Mutex<&'static str> = spin::Mutex::new("gpu-dom");

/// Names the image in every later log line (e.g. `"test-guest"`).
pub fn set_prefix(name: &'static str) {
    *PREFIX.lock() = name;
}

struct Logger;

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let prefix = PREFIX.try_lock().map_or("gpu-dom", |p| *p);
        let mut w = LineWriter::new();
        let _ = match record.level() {
            Level::Info => writeln!(w, "{prefix}: {}", record.args()),
            l => writeln!(w, "{prefix}: {l}: {}", record.args()),
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
