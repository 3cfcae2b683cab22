//! The kernel command line, parsed once at boot: one rule for every option
//! (`Cmdline`), and gpu-dom's own `gpu-dom.*` options (`BootOptions`).
//!
//! The rule: options are whitespace-separated words; `key=value` gives a
//! value (the first `=` splits), a bare `key` is a flag; a flag is on when
//! the word is `key` or `key=` one of `1`, `on`, `yes`, `true`; a list value
//! is comma-separated. The last occurrence of a key wins.
//!
//! Option names live here only: the image reads them from [`BootOptions`],
//! the test guest from [`Cmdline`], and `cargo xtask` builds command lines
//! from the same constants.
#![forbid(unsafe_code)]

/// `gpu-dom.debug=readback`: guests may ask gpu-dom to checksum, through its
/// CPU, the page at any of their entries (tests only, never production).
pub const DEBUG: &str = "gpu-dom.debug";
/// The value of [`DEBUG`] that turns `DebugReadback` on.
pub const DEBUG_READBACK: &str = "readback";
/// `gpu-dom.iommu-test`: the IOMMU test mode of `cargo xtask iommu` (CI only).
pub const IOMMU_TEST: &str = "gpu-dom.iommu-test";
/// `gpu-dom.fault=<kind>`: a deliberate fault, to test crash handling
/// (kinds: [`FAULT_KINDS`]): at boot in the dom0 self-test; with
/// `<kind>-after=<N>` (`gpu-dom.fault=panic-after=2000`), in a domU gpu-dom
/// once it has answered N requests (see [`Fault`]).
pub const FAULT: &str = "gpu-dom.fault";
/// Separates the kind from the request count in [`FAULT`]'s value.
pub const FAULT_AFTER: &str = "-after=";
/// The faults [`FAULT`] knows.
pub const FAULT_KINDS: [&str; 5] =
    ["panic", "page_fault", "stack_overflow", "invalid_opcode", "write_tables"];
/// Every `gpu-dom.*` option.
pub const KNOWN: [&str; 3] = [DEBUG, IOMMU_TEST, FAULT];

/// A command line, read with the rule of the module documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cmdline<'a>(pub &'a str);

impl<'a> Cmdline<'a> {
    /// Each word as `(key, value)`; `value` is `None` for a bare word.
    pub fn words(&self) -> impl Iterator<Item = (&'a str, Option<&'a str>)> {
        self.0.split_ascii_whitespace().map(|w| match w.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (w, None),
        })
    }

    /// The last value given to `key` (`Some("")` for `key=`; `None` if
    /// absent or bare).
    pub fn value(&self, key: &str) -> Option<&'a str> {
        self.words().filter(|(k, _)| *k == key).last().and_then(|(_, v)| v)
    }

    /// Whether flag `key` is on (see the module documentation).
    pub fn flag(&self, key: &str) -> bool {
        match self.words().filter(|(k, _)| *k == key).last() {
            None => false,
            Some((_, None)) => true,
            Some((_, Some(v))) => matches!(v, "1" | "on" | "yes" | "true"),
        }
    }

    /// Whether the comma-separated list value of `key` contains `item`.
    pub fn list_has(&self, key: &str, item: &str) -> bool {
        self.value(key).is_some_and(|v| v.split(',').any(|w| w == item))
    }
}

/// A deliberate fault ([`FAULT`]): `<kind>` or `<kind>-after=<N>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault<'a> {
    /// One of [`FAULT_KINDS`] (checked by whoever injects it; an unknown
    /// kind is logged and ignored there).
    pub kind: &'a str,
    /// Inject after this many answered requests (domU); `None`: at boot
    /// (the dom0 self-test).
    pub after_requests: Option<u64>,
}

impl<'a> Fault<'a> {
    /// Reads [`FAULT`]'s value. A count that is not a number leaves the
    /// whole value as the kind (unknown, so reported, never injected).
    pub fn parse(value: &'a str) -> Self {
        match value.split_once(FAULT_AFTER) {
            Some((kind, n)) => match n.parse::<u64>() {
                Ok(n) => Fault { kind, after_requests: Some(n) },
                Err(_) => Fault { kind: value, after_requests: None },
            },
            None => Fault { kind: value, after_requests: None },
        }
    }
}

/// gpu-dom's options, parsed once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BootOptions<'a> {
    /// [`DEBUG`] has [`DEBUG_READBACK`].
    pub debug_readback: bool,
    /// [`IOMMU_TEST`] is on.
    pub iommu_test: bool,
    /// [`FAULT`], if given.
    pub fault: Option<Fault<'a>>,
    /// The first `gpu-dom.*` word that is none of [`KNOWN`] (a typo the
    /// boot log should name).
    pub unknown: Option<&'a str>,
}

impl<'a> BootOptions<'a> {
    /// Parses `cmdline`.
    pub fn parse(cmdline: &'a str) -> Self {
        let c = Cmdline(cmdline);
        BootOptions {
            debug_readback: c.list_has(DEBUG, DEBUG_READBACK),
            iommu_test: c.flag(IOMMU_TEST),
            fault: c.value(FAULT).map(Fault::parse),
            unknown: c
                .words()
                .map(|(k, _)| k)
                .find(|k| k.starts_with("gpu-dom.") && !KNOWN.contains(k)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_gpu_dom_option_is_read_with_one_rule() {
        let o = BootOptions::parse("console=hvc0 gpu-dom.debug=x,readback gpu-dom.iommu-test");
        assert_eq!(
            o,
            BootOptions { debug_readback: true, iommu_test: true, fault: None, unknown: None }
        );
        let o = BootOptions::parse("gpu-dom.iommu-test=1 gpu-dom.fault=panic");
        assert!(o.iommu_test && !o.debug_readback);
        assert_eq!(o.fault, Some(Fault { kind: "panic", after_requests: None }));
        assert!(!BootOptions::parse("gpu-dom.iommu-test=0").iommu_test);
        assert!(!BootOptions::parse("gpu-dom.debug=readbacks").debug_readback);
        assert_eq!(BootOptions::parse(""), BootOptions::default());
    }

    #[test]
    fn a_fault_after_n_requests_is_its_kind_and_count_and_a_bad_count_is_not_a_fault() {
        let f = |cmdline| BootOptions::parse(cmdline).fault;
        assert_eq!(
            f("gpu-dom.debug=readback gpu-dom.fault=panic-after=2000"),
            Some(Fault { kind: "panic", after_requests: Some(2000) })
        );
        assert_eq!(
            f("gpu-dom.fault=page_fault-after=0"),
            Some(Fault { kind: "page_fault", after_requests: Some(0) })
        );
        // The first `=` splits the word; the rest is the value, read by one rule.
        assert_eq!(
            f("gpu-dom.fault=panic-after=lots"),
            Some(Fault { kind: "panic-after=lots", after_requests: None })
        );
        assert!(!FAULT_KINDS.contains(&"panic-after=lots"), "so it is reported, never injected");
        assert_eq!(f("gpu-dom.fault=panic-after=-1").map(|x| x.after_requests), Some(None));
        assert_eq!(
            f("gpu-dom.fault=panic gpu-dom.fault=panic-after=5").unwrap().after_requests,
            Some(5)
        );
        assert_eq!(f("console=hvc0"), None);
    }

    #[test]
    fn a_misspelt_gpu_dom_option_is_reported_not_ignored() {
        let o = BootOptions::parse("gpu-dom.debgu=readback gpu-dom.iommu-test");
        assert_eq!(o.unknown, Some("gpu-dom.debgu"));
        assert!(!o.debug_readback && o.iommu_test);
    }

    #[test]
    fn values_flags_and_lists_follow_the_rule_and_the_last_word_wins() {
        let c = Cmdline("mode=busy pages=64 dma-check pages=32 empty= quiet=off");
        assert_eq!(c.value("mode"), Some("busy"));
        assert_eq!(c.value("pages"), Some("32"));
        assert_eq!(c.value("empty"), Some(""));
        assert_eq!(c.value("dma-check"), None);
        assert!(c.flag("dma-check") && !c.flag("quiet") && !c.flag("absent"));
        assert!(!c.list_has("mode", "bus"));
    }
}
