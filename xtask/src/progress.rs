//! One line per step: `[boot] step 3/7: unpacking xen-hypervisor-4.17-amd64 ... ok (1.2 s)`.
//!
//! A step that prints lines of its own (through [`Progress::note`]) gets its
//! result on a line of its own. Failures are wrapped in [`Error::Step`] so the
//! message names the step.

use crate::error::{Error, Result};
use std::io::Write;
use std::time::{Duration, Instant};

pub struct Progress {
    tag: &'static str,
    total: usize,
    index: usize,
    line_open: bool,
    times: Vec<(String, Duration)>,
}

impl Progress {
    pub fn new(tag: &'static str, total: usize) -> Self {
        Progress { tag, total, index: 0, line_open: false, times: Vec::new() }
    }

    /// Runs one step; its wall time is printed and kept for [`Progress::summary`].
    pub fn step<T>(
        &mut self,
        what: impl Into<String>,
        f: impl FnOnce(&mut Self) -> Result<T>,
    ) -> Result<T> {
        let what = what.into();
        self.index += 1;
        self.total = self.total.max(self.index);
        print!("[{}] step {}/{}: {what} ... ", self.tag, self.index, self.total);
        let _ = std::io::stdout().flush();
        self.line_open = true;
        let t0 = Instant::now();
        let r = f(self);
        let took = t0.elapsed();
        let outcome = if r.is_ok() { "ok" } else { "FAILED" };
        if self.line_open {
            println!("{outcome} ({:.1} s)", took.as_secs_f64());
        } else {
            println!(
                "[{}] step {}/{}: {outcome} ({:.1} s)",
                self.tag,
                self.index,
                self.total,
                took.as_secs_f64()
            );
        }
        self.line_open = false;
        self.times.push((what.clone(), took));
        r.map_err(|source| Error::Step {
            tag: self.tag,
            index: self.index,
            total: self.total,
            what,
            source: Box::new(source),
        })
    }

    /// Prints a line inside the current step (e.g. a SELFTEST line).
    pub fn note(&mut self, line: impl AsRef<str>) {
        if self.line_open {
            println!();
            self.line_open = false;
        }
        println!("[{}]   {}", self.tag, line.as_ref());
    }

    /// The wall time of every step so far.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let total: Duration = self.times.iter().map(|(_, d)| *d).sum();
        for (what, d) in &self.times {
            s.push_str(&format!("[{}]   {:>7.1} s  {what}\n", self.tag, d.as_secs_f64()));
        }
        s.push_str(&format!("[{}]   {:>7.1} s  total", self.tag, total.as_secs_f64()));
        s
    }
}
