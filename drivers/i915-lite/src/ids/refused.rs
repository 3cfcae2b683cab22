//! Intel GPUs this driver knows and refuses, each with the reason: the probe
//! names the family and says why (a typed [`IdError::Refused`]) instead of
//! calling the device unknown, and never drives it.
//!
//! # Source
//! The IDs are those of Linux `include/drm/intel/pciids.h` at commit
//! `0755a4e3e809` of torvalds/linux (`INTEL_BXT_IDS`, `INTEL_GLK_IDS`,
//! `INTEL_CHV_IDS`, `INTEL_CNL_IDS`, `INTEL_ICL_IDS`, `INTEL_EHL_IDS`,
//! `INTEL_JSL_IDS`, `INTEL_DG1_IDS`, `INTEL_DG2_IDS`, `INTEL_ATS_M_IDS`,
//! `INTEL_MTL_IDS`, `INTEL_ARL_IDS`, `INTEL_LNL_IDS`, `INTEL_BMG_IDS`,
//! `INTEL_PTL_IDS`). Newer lists of that file (WCL, NVL, CRI) are not here:
//! those IDs are refused as unknown.
//!
//! [`IdError::Refused`]: super::IdError::Refused

/// Why a known Intel GPU is not driven.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RefusalReason {
    /// Gen9 LP (Broxton/Apollo Lake, Gemini Lake).
    Gen9Lp,
    /// Cherryview (Gen8 LP).
    Cherryview,
    /// Gen10 (Cannon Lake).
    Gen10,
    /// Gen11 (Ice Lake, Elkhart Lake, Jasper Lake).
    Gen11,
    /// A discrete GPU with local memory (DG1, DG2/Arc, ATS-M, Battlemage).
    Discrete,
    /// Meteor Lake and later integrated parts (Xe-LPG, Xe2, Xe3).
    MeteorLakeOrLater,
}

impl RefusalReason {
    /// What stands in the way, for the log.
    pub const fn explain(self) -> &'static str {
        match self {
            RefusalReason::Gen9Lp => {
                "Gen9 LP updates its GGTT only with the GPU quiesced under VT-d \
                 (i915 bxt_vtd_ggtt_wa), which i915-lite does not do"
            }
            RefusalReason::Cherryview => {
                "Cherryview encodes GGC differently (i915 chv_get_total_gtt_size), \
                 which i915-lite does not decode"
            }
            RefusalReason::Gen10 => "Gen10 is not implemented (i915 itself dropped it)",
            RefusalReason::Gen11 => {
                "Gen11 is not implemented: its engines and TLB invalidation are \
                 neither the Gen9 nor the Gen12 ones this driver follows"
            }
            RefusalReason::Discrete => {
                "a discrete GPU with local memory: its tables name VRAM (the LM bit) \
                 and i915-lite manages none, so it is not driven rather than driven wrong"
            }
            RefusalReason::MeteorLakeOrLater => {
                "Meteor Lake and later move the PAT index into PTE bits 52-53 (GGTT) \
                 and 62 (PPGTT) and invalidate TLBs through MCR registers or the GuC, \
                 none of which i915-lite implements"
            }
        }
    }
}

/// One refused family: a name for the log, the reason, its IDs.
#[derive(Debug)]
pub struct Family {
    /// The family as the log names it.
    pub name: &'static str,
    /// Why it is refused.
    pub reason: RefusalReason,
    /// Its PCI device IDs.
    pub ids: &'static [u16],
}

use RefusalReason::{Cherryview, Discrete, Gen10, Gen11, Gen9Lp, MeteorLakeOrLater};

/// Every refused family.
pub static REFUSED: &[Family] = &[
    Family {
        name: "Broxton/Apollo Lake (Gen9 LP)",
        reason: Gen9Lp,
        ids: &[0x0A84, 0x1A84, 0x1A85, 0x5A84, 0x5A85],
    },
    Family { name: "Gemini Lake (Gen9 LP)", reason: Gen9Lp, ids: &[0x3184, 0x3185] },
    Family {
        name: "Cherryview (Gen8 LP)",
        reason: Cherryview,
        ids: &[0x22B0, 0x22B1, 0x22B2, 0x22B3],
    },
    Family {
        name: "Cannon Lake (Gen10)",
        reason: Gen10,
        ids: &[
            0x5A44, 0x5A4C, 0x5A54, 0x5A5C, 0x5A40, 0x5A41, 0x5A42, 0x5A49, 0x5A4A, 0x5A50, 0x5A51,
            0x5A52, 0x5A59, 0x5A5A,
        ],
    },
    Family {
        name: "Ice Lake (Gen11)",
        reason: Gen11,
        ids: &[
            0x8A50, 0x8A52, 0x8A53, 0x8A54, 0x8A56, 0x8A57, 0x8A58, 0x8A59, 0x8A5A, 0x8A5B, 0x8A5C,
            0x8A70, 0x8A71, 0x8A51, 0x8A5D,
        ],
    },
    Family {
        name: "Elkhart Lake (Gen11)",
        reason: Gen11,
        ids: &[0x4541, 0x4551, 0x4555, 0x4557, 0x4570, 0x4571],
    },
    Family {
        name: "Jasper Lake (Gen11)",
        reason: Gen11,
        ids: &[0x4E51, 0x4E55, 0x4E57, 0x4E61, 0x4E71],
    },
    Family {
        name: "DG1 (Iris Xe MAX, discrete Gen12)",
        reason: Discrete,
        ids: &[0x4905, 0x4906, 0x4907, 0x4908, 0x4909],
    },
    Family {
        name: "DG2 (Arc A-series, discrete Xe-HPG)",
        reason: Discrete,
        ids: &[
            // G10: INTEL_DG2_G10_D/E/M_IDS.
            0x56A0, 0x56A1, 0x56A2, 0x56BE, 0x56BF, 0x5690, 0x5691, 0x5692,
            // G11: INTEL_DG2_G11_D/E/M_IDS.
            0x56A5, 0x56A6, 0x56B0, 0x56B1, 0x56BA, 0x56BB, 0x56BC, 0x56BD, 0x5693, 0x5694, 0x5695,
            // G12: INTEL_DG2_G12_D/M_IDS.
            0x56A3, 0x56A4, 0x56B2, 0x56B3, 0x5696, 0x5697,
        ],
    },
    Family {
        name: "ATS-M (Flex series, discrete Xe-HPG)",
        reason: Discrete,
        ids: &[0x56C0, 0x56C2, 0x56C1],
    },
    Family {
        name: "Battlemage (Arc B-series, discrete Xe2)",
        reason: Discrete,
        ids: &[
            0xE202, 0xE209, 0xE20B, 0xE20C, 0xE20D, 0xE210, 0xE211, 0xE212, 0xE216, 0xE220, 0xE221,
            0xE222, 0xE223,
        ],
    },
    Family {
        name: "Meteor Lake (Xe-LPG)",
        reason: MeteorLakeOrLater,
        ids: &[0x7D40, 0x7D45, 0x7D55, 0x7D60, 0x7DD5],
    },
    Family {
        name: "Arrow Lake (Xe-LPG)",
        reason: MeteorLakeOrLater,
        ids: &[0x7D51, 0x7DD1, 0x7D41, 0x7D67, 0xB640],
    },
    Family { name: "Lunar Lake (Xe2)", reason: MeteorLakeOrLater, ids: &[0x6420, 0x64A0, 0x64B0] },
    Family {
        name: "Panther Lake (Xe3)",
        reason: MeteorLakeOrLater,
        ids: &[
            0xB080, 0xB081, 0xB082, 0xB083, 0xB084, 0xB085, 0xB086, 0xB087, 0xB08F, 0xB090, 0xB0A0,
            0xB0B0,
        ],
    },
];

/// The refused family of `device`, if it is one.
pub fn family(device: u16) -> Option<&'static Family> {
    REFUSED.iter().find(|f| f.ids.contains(&device))
}
