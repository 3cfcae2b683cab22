//! The command streamers ("engines") a device has: the units whose TLBs
//! cache PPGTT translations and must be invalidated after PPGTT writes.
//!
//! # Sources
//! - Linux `i915_pci.c`, `platform_engine_mask` of
//!   `bdw/skl/kbl/cfl_gt3_info` (RCS0, VCS0, BCS0, VECS0, VCS1), the other
//!   Gen8/Gen9 infos (RCS0, VCS0, BCS0 from `GEN6_FEATURES`, VECS0 from
//!   `G75_FEATURES`), `tgl_info`, `adl_s_info`, `adl_p_info` (RCS0, BCS0,
//!   VECS0, VCS0, VCS2) and `rkl_info` (RCS0, BCS0, VECS0, VCS0).
//! - Linux `gt/intel_engine_cs.c` `init_engine_mask`: from Gen11 on, the
//!   media engines a SKU really has are the platform's minus those fused
//!   off in `GEN11_GT_VEBOX_VDBOX_DISABLE` (bits 7:0: VDBOX *i* disabled,
//!   bits 19:16: VEBOX *i* disabled; disable semantics below IP 12.50).
//!
//! # Invariants
//! - An [`Engines`] set holds each engine at most once, in i915's engine-id
//!   order (RCS0, BCS0, VCS0.., VECS0..).

use core::fmt;

use crate::ids::{Device, Gen, Platform};
use crate::regs::{GEN11_GT_VDBOX_DISABLE_MASK, GEN11_GT_VEBOX_DISABLE_SHIFT};

/// An engine class (i915's `RENDER_CLASS` and so on).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EngineClass {
    /// The render (3D and GPGPU) command streamer, RCS.
    Render,
    /// The blitter, BCS (i915 `COPY_ENGINE_CLASS`).
    Copy,
    /// Video decode (MFX), VCS.
    VideoDecode,
    /// Video enhancement, VECS.
    VideoEnhance,
}

/// One engine: its class and instance (VCS2 is `VideoDecode` instance 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Engine {
    /// The class.
    pub class: EngineClass,
    /// The instance within the class (i915's `engine->instance`).
    pub instance: u8,
}

impl Engine {
    /// RCS0.
    pub const RCS0: Engine = Engine { class: EngineClass::Render, instance: 0 };
    /// BCS0.
    pub const BCS0: Engine = Engine { class: EngineClass::Copy, instance: 0 };
    /// VCS0.
    pub const VCS0: Engine = Engine { class: EngineClass::VideoDecode, instance: 0 };
    /// VCS1 (Gen8/Gen9 GT3 and GT4).
    pub const VCS1: Engine = Engine { class: EngineClass::VideoDecode, instance: 1 };
    /// VCS2 (the second VDBOX of Gen11+ parts).
    pub const VCS2: Engine = Engine { class: EngineClass::VideoDecode, instance: 2 };
    /// VECS0.
    pub const VECS0: Engine = Engine { class: EngineClass::VideoEnhance, instance: 0 };
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let class = match self.class {
            EngineClass::Render => "rcs",
            EngineClass::Copy => "bcs",
            EngineClass::VideoDecode => "vcs",
            EngineClass::VideoEnhance => "vecs",
        };
        write!(f, "{class}{}", self.instance)
    }
}

/// Most engines any supported device has.
pub const MAX_ENGINES: usize = 6;

/// A set of engines (fixed capacity, no allocation).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Engines {
    list: [Engine; MAX_ENGINES],
    len: usize,
}

impl Engines {
    /// No engine.
    pub const EMPTY: Engines = Engines { list: [Engine::RCS0; MAX_ENGINES], len: 0 };

    /// A set of `engines` (duplicates dropped, sorted in engine-id order).
    pub fn new(engines: &[Engine]) -> Engines {
        let mut set = Engines::EMPTY;
        for &e in engines {
            if !set.contains(e) && set.len < MAX_ENGINES {
                set.list[set.len] = e;
                set.len += 1;
            }
        }
        set.list[..set.len].sort_unstable();
        set
    }

    /// The engines i915's `platform_engine_mask` gives `device` (before fusing).
    pub fn of(device: &Device) -> Engines {
        use Engine as E;
        match device.platform {
            Platform::RocketLake => Engines::new(&[E::RCS0, E::BCS0, E::VCS0, E::VECS0]),
            _ if device.gen() == Gen::Gen12 => {
                Engines::new(&[E::RCS0, E::BCS0, E::VCS0, E::VCS2, E::VECS0])
            }
            _ if device.gt.has_vcs1() => {
                Engines::new(&[E::RCS0, E::BCS0, E::VCS0, E::VCS1, E::VECS0])
            }
            _ => Engines::new(&[E::RCS0, E::BCS0, E::VCS0, E::VECS0]),
        }
    }

    /// These engines minus the media engines `fuse` (the value of
    /// `GEN11_GT_VEBOX_VDBOX_DISABLE`) disables.
    pub fn without_fused_off(self, fuse: u32) -> Engines {
        let vdbox_off = fuse & GEN11_GT_VDBOX_DISABLE_MASK;
        let vebox_off = (fuse >> GEN11_GT_VEBOX_DISABLE_SHIFT) & 0xf;
        let mut kept = Engines::EMPTY;
        for e in self.iter() {
            let off = match e.class {
                EngineClass::VideoDecode => vdbox_off & (1 << e.instance) != 0,
                EngineClass::VideoEnhance => vebox_off & (1 << e.instance) != 0,
                EngineClass::Render | EngineClass::Copy => false,
            };
            if !off {
                kept.list[kept.len] = e;
                kept.len += 1;
            }
        }
        kept
    }

    /// The engines, in engine-id order.
    pub fn iter(&self) -> impl Iterator<Item = Engine> + '_ {
        self.list[..self.len].iter().copied()
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether `e` is one of them.
    pub fn contains(&self, e: Engine) -> bool {
        self.list[..self.len].contains(&e)
    }
}

impl fmt::Debug for Engines {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// Space-separated names, as the log prints them ("rcs0 bcs0 vcs0 vecs0").
impl fmt::Display for Engines {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::lookup;

    fn of(id: u16) -> Engines {
        Engines::of(lookup(0x8086, id).unwrap())
    }

    #[test]
    fn platform_engines_follow_i915s_engine_masks() {
        assert_eq!(std::format!("{}", of(0x1912)), "rcs0 bcs0 vcs0 vecs0", "SKL GT2");
        assert_eq!(std::format!("{}", of(0x1926)), "rcs0 bcs0 vcs0 vcs1 vecs0", "SKL GT3");
        assert_eq!(std::format!("{}", of(0x9A49)), "rcs0 bcs0 vcs0 vcs2 vecs0", "TGL");
        assert_eq!(std::format!("{}", of(0x4C8A)), "rcs0 bcs0 vcs0 vecs0", "RKL");
        for id in [0x4680, 0x46A6, 0x46D1, 0xA780, 0xA7A0, 0xA7A9] {
            assert_eq!(of(id), of(0x9A49), "{id:#06x} has TGL's engines");
        }
    }

    #[test]
    fn fused_off_media_engines_are_dropped() {
        let tgl = of(0x9A49);
        assert_eq!(tgl.without_fused_off(0), tgl);
        let no_vcs2 = tgl.without_fused_off(1 << 2);
        assert_eq!(std::format!("{no_vcs2}"), "rcs0 bcs0 vcs0 vecs0");
        let no_vecs0 = tgl.without_fused_off(1 << 16);
        assert!(!no_vecs0.contains(Engine::VECS0) && no_vecs0.len() == 4);
        // Bits of engines the platform does not have change nothing.
        assert_eq!(tgl.without_fused_off(0b1000_0010 | (0b1110 << 16)), tgl);
    }

    #[test]
    fn a_set_keeps_engine_id_order_and_no_duplicates() {
        let e = Engines::new(&[Engine::VECS0, Engine::RCS0, Engine::VECS0, Engine::VCS0]);
        assert_eq!(std::format!("{e}"), "rcs0 vcs0 vecs0");
        assert!(Engines::EMPTY.is_empty());
    }
}
