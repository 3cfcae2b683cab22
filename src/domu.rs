//! The domU path: bring the Xen interface up, then serve.

use unikernel::Kernel;

/// Runs gpu-dom as a domU.
pub fn run(mut k: Kernel) -> ! {
    log::info!("started as domU");
    if let Err(e) = k.bring_up() {
        panic!("bring-up failed: {e}");
    }
    log::info!("xenstore client not wired yet: idling");
    loop {
        let _ = k.executor.wait(None);
    }
}
