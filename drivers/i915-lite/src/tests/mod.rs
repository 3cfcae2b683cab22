//! Host tests of the driver against the register-level model.

mod driver;
mod engine;
mod probe;
mod selftest;

use crate::model::{ModelBar, ModelGpu, ModelMemory};
use crate::{probe, Config, I915};

/// The model driver type.
pub(crate) type ModelDriver = I915<ModelBar, ModelMemory>;

/// A Skylake GT2 model, probed and set up with `ggtt_limit` managed entries;
/// the model's logs are cleared after init.
pub(crate) fn setup(ggtt_limit: u32) -> (ModelDriver, ModelBar, ModelMemory) {
    setup_on(ModelGpu::skylake_gt2(), ggtt_limit)
}

pub(crate) fn setup_on(mut m: ModelGpu, ggtt_limit: u32) -> (ModelDriver, ModelBar, ModelMemory) {
    let info = probe(&mut m.pci).unwrap();
    let cfg = Config { ggtt_limit, ..Config::default() };
    let d = I915::new(info, m.bar.clone(), m.mem.clone(), cfg).unwrap();
    m.bar.state_mut().clear_logs();
    (d, m.bar, m.mem)
}
