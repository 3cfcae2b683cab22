//! Running a test system: host programs with bounded waits (`host`), one
//! QEMU run (`qemu`), a dom0 scenario's init script and markers
//! (`scenario`), and reading the serial log to a verdict (`markers`).

pub mod dom0_run;
pub mod guests;
pub mod host;
pub mod markers;
pub mod qemu;
pub mod scenario;
pub mod system;
pub mod triple_fault;
