//! Gen12 (Xe-LP) integrated device IDs: Tiger Lake, Rocket Lake, Alder Lake
//! (S, P, N) and Raptor Lake (S, P, U).
//!
//! # Source
//! Linux `include/drm/intel/pciids.h` (older trees:
//! `include/drm/i915_pciids.h`, where the TGL lists were
//! `INTEL_TGL_12_GT1/GT2_IDS`): `INTEL_TGL_GT1_IDS` (the TGL-H parts),
//! `INTEL_TGL_GT2_IDS` (TGL-U/Y, i915's `subplatform_uy_ids`),
//! `INTEL_RKL_IDS`, `INTEL_ADLS_IDS`, `INTEL_ADLP_IDS`, `INTEL_ADLN_IDS`,
//! `INTEL_RPLS_IDS`, `INTEL_RPLU_IDS`, `INTEL_RPLP_IDS`, read at commit
//! `0755a4e3e809` of torvalds/linux. Which `intel_device_info` each list
//! gets is `i915_pci.c` `pciidlist`: TGL `tgl_info`, RKL `rkl_info`, ADL-S
//! and RPL-S `adl_s_info`, ADL-P, ADL-N, RPL-P and RPL-U `adl_p_info` (so
//! RPL-S is an ADL-S and the others ADL-P for every rule keyed on the
//! platform, e.g. Wa_2207587034 in `intel_tlb.c`).
//!
//! `pciids.h` gives a GT level only for Tiger Lake; the others are
//! [`Gt::Unlisted`](super::Gt::Unlisted).

use super::Gt::{Gt1, Gt2, Unlisted};
use super::Platform::{AlderLakeN as AdlN, AlderLakeP as AdlP, AlderLakeS as AdlS};
use super::Platform::{RaptorLakeP as RplP, RaptorLakeS as RplS, RaptorLakeU as RplU};
use super::Platform::{RocketLake as Rkl, TigerLake as Tgl};
use super::{d, Device};

/// The Gen12 devices this driver accepts (66 IDs).
pub(super) static GEN12: &[Device] = &[
    // Tiger Lake: INTEL_TGL_GT1_IDS (TGL-H), INTEL_TGL_GT2_IDS (TGL-U/Y).
    d(0x9A60, Tgl, Gt1, "TGL-H GT1"),
    d(0x9A68, Tgl, Gt1, "TGL-H GT1"),
    d(0x9A70, Tgl, Gt1, "TGL-H GT1"),
    d(0x9A40, Tgl, Gt2, "TGL-UY GT2"),
    d(0x9A49, Tgl, Gt2, "TGL-UY GT2"),
    d(0x9A59, Tgl, Gt2, "TGL-UY GT2"),
    d(0x9A78, Tgl, Gt2, "TGL-UY GT2"),
    d(0x9AC0, Tgl, Gt2, "TGL-UY GT2"),
    d(0x9AC9, Tgl, Gt2, "TGL-UY GT2"),
    d(0x9AD9, Tgl, Gt2, "TGL-UY GT2"),
    d(0x9AF8, Tgl, Gt2, "TGL-UY GT2"),
    // Rocket Lake: INTEL_RKL_IDS.
    d(0x4C80, Rkl, Unlisted, "RKL"),
    d(0x4C8A, Rkl, Unlisted, "RKL"),
    d(0x4C8B, Rkl, Unlisted, "RKL"),
    d(0x4C8C, Rkl, Unlisted, "RKL"),
    d(0x4C90, Rkl, Unlisted, "RKL"),
    d(0x4C9A, Rkl, Unlisted, "RKL"),
    // Alder Lake-S: INTEL_ADLS_IDS.
    d(0x4680, AdlS, Unlisted, "ADL-S"),
    d(0x4682, AdlS, Unlisted, "ADL-S"),
    d(0x4688, AdlS, Unlisted, "ADL-S"),
    d(0x468A, AdlS, Unlisted, "ADL-S"),
    d(0x468B, AdlS, Unlisted, "ADL-S"),
    d(0x4690, AdlS, Unlisted, "ADL-S"),
    d(0x4692, AdlS, Unlisted, "ADL-S"),
    d(0x4693, AdlS, Unlisted, "ADL-S"),
    // Alder Lake-P: INTEL_ADLP_IDS.
    d(0x46A0, AdlP, Unlisted, "ADL-P"),
    d(0x46A1, AdlP, Unlisted, "ADL-P"),
    d(0x46A2, AdlP, Unlisted, "ADL-P"),
    d(0x46A3, AdlP, Unlisted, "ADL-P"),
    d(0x46A6, AdlP, Unlisted, "ADL-P"),
    d(0x46A8, AdlP, Unlisted, "ADL-P"),
    d(0x46AA, AdlP, Unlisted, "ADL-P"),
    d(0x462A, AdlP, Unlisted, "ADL-P"),
    d(0x4626, AdlP, Unlisted, "ADL-P"),
    d(0x4628, AdlP, Unlisted, "ADL-P"),
    d(0x46B0, AdlP, Unlisted, "ADL-P"),
    d(0x46B1, AdlP, Unlisted, "ADL-P"),
    d(0x46B2, AdlP, Unlisted, "ADL-P"),
    d(0x46B3, AdlP, Unlisted, "ADL-P"),
    d(0x46C0, AdlP, Unlisted, "ADL-P"),
    d(0x46C1, AdlP, Unlisted, "ADL-P"),
    d(0x46C2, AdlP, Unlisted, "ADL-P"),
    d(0x46C3, AdlP, Unlisted, "ADL-P"),
    // Alder Lake-N: INTEL_ADLN_IDS.
    d(0x46D0, AdlN, Unlisted, "ADL-N"),
    d(0x46D1, AdlN, Unlisted, "ADL-N"),
    d(0x46D2, AdlN, Unlisted, "ADL-N"),
    d(0x46D3, AdlN, Unlisted, "ADL-N"),
    d(0x46D4, AdlN, Unlisted, "ADL-N"),
    // Raptor Lake-S: INTEL_RPLS_IDS.
    d(0xA780, RplS, Unlisted, "RPL-S"),
    d(0xA781, RplS, Unlisted, "RPL-S"),
    d(0xA782, RplS, Unlisted, "RPL-S"),
    d(0xA783, RplS, Unlisted, "RPL-S"),
    d(0xA788, RplS, Unlisted, "RPL-S"),
    d(0xA789, RplS, Unlisted, "RPL-S"),
    d(0xA78A, RplS, Unlisted, "RPL-S"),
    d(0xA78B, RplS, Unlisted, "RPL-S"),
    // Raptor Lake-U: INTEL_RPLU_IDS.
    d(0xA721, RplU, Unlisted, "RPL-U"),
    d(0xA7A1, RplU, Unlisted, "RPL-U"),
    d(0xA7A9, RplU, Unlisted, "RPL-U"),
    d(0xA7AC, RplU, Unlisted, "RPL-U"),
    d(0xA7AD, RplU, Unlisted, "RPL-U"),
    // Raptor Lake-P: INTEL_RPLP_IDS.
    d(0xA720, RplP, Unlisted, "RPL-P"),
    d(0xA7A0, RplP, Unlisted, "RPL-P"),
    d(0xA7A8, RplP, Unlisted, "RPL-P"),
    d(0xA7AA, RplP, Unlisted, "RPL-P"),
    d(0xA7AB, RplP, Unlisted, "RPL-P"),
];
