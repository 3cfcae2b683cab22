//! Host tests of the driver against the register-level model.
//!
//! The tests that prove the driver's behaviour are written once, as a
//! function of the device generation ([`Kind`]), and run for each through
//! [`per_gen!`]: a test `foo` becomes `foo::gen9` (a Skylake GT2) and
//! `foo::gen12` (a Tiger Lake GT2). `mutation` runs the same checks on
//! deliberately broken drivers and shows each break is caught.

use crate::ggc::Ggc;
use crate::ids::Gen;
use crate::model::{ModelBar, ModelGpu, ModelMemory};
use crate::{probe, Config, I915};

/// Writes `fn $name($kind: Kind) { .. }` as a module `$name` with one
/// `#[test]` per generation (`gen9`, `gen12`).
macro_rules! per_gen {
    ($($(#[doc = $doc:expr])* fn $name:ident($k:ident: Kind) $body:block)*) => {$(
        $(#[doc = $doc])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            fn run($k: $crate::tests::Kind) $body
            #[test]
            fn gen9() {
                run($crate::tests::Kind::Gen9)
            }
            #[test]
            fn gen12() {
                run($crate::tests::Kind::Gen12)
            }
        }
    )*};
}

mod driver;
mod engine;
mod gen12;
mod mutation;
mod probe;
mod selftest;

/// The device generation a shared test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A Skylake GT2 desktop (0x1912): Gen9 entries, `GFX_FLSH_CNTL`,
    /// `GEN8_*TCR`.
    Gen9,
    /// A Tiger Lake UY GT2 (0x9A49): Gen12 entries, posting-read GGTT sync,
    /// `GEN12_*_TLB_INV_CR`, VCS2.
    Gen12,
}

impl Kind {
    /// The PCI device ID of the model.
    pub(crate) const fn device(self) -> u16 {
        match self {
            Kind::Gen9 => 0x1912,
            Kind::Gen12 => 0x9A49,
        }
    }

    /// The generation.
    pub(crate) const fn gen(self) -> Gen {
        match self {
            Kind::Gen9 => Gen::Gen9,
            Kind::Gen12 => Gen::Gen12,
        }
    }

    /// The model: 2 MiB of GGTT (256 Ki entries), 64 MiB stolen, GGC
    /// locked, `table_pages` pages of table memory.
    pub(crate) fn model(self, table_pages: u32) -> ModelGpu {
        ModelGpu::new(self.device(), Ggc::from_fields(1, 2, true), table_pages)
    }
}

/// The model driver type.
pub(crate) type ModelDriver = I915<ModelBar, ModelMemory>;

/// A `kind` model with 64 table pages, probed and set up with `ggtt_limit`
/// managed entries; the model's logs are cleared after init.
pub(crate) fn setup(kind: Kind, ggtt_limit: u32) -> (ModelDriver, ModelBar, ModelMemory) {
    setup_on(kind.model(64), ggtt_limit)
}

pub(crate) fn setup_on(mut m: ModelGpu, ggtt_limit: u32) -> (ModelDriver, ModelBar, ModelMemory) {
    let info = probe(&mut m.pci).unwrap();
    let cfg = Config { ggtt_limit, ..Config::default() };
    let d = I915::new(info, m.bar.clone(), m.mem.clone(), cfg).unwrap();
    m.bar.state_mut().clear_logs();
    (d, m.bar, m.mem)
}
