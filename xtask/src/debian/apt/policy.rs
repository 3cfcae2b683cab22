//! `apt-cache policy`: which versions of a package apt knows, from which
//! sources, with which priority; and the one version to download.
//!
//! A version whose only source is dpkg's status file (`100
//! /var/lib/dpkg/status`) is installed on this host but offered by no
//! archive: `apt-get download` cannot fetch it. On a machine whose lists are
//! missing or older than its installed packages, apt's own candidate is such a
//! version; [`Policy::choice`] never picks one.

/// One version in a package's version table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Offer {
    pub version: String,
    /// The version's pin priority (the number on its own line).
    pub priority: i32,
    /// Where it comes from: `http://deb.debian.org/debian bookworm/main amd64
    /// Packages`, or `/var/lib/dpkg/status` for the installed version.
    pub sources: Vec<String>,
}

impl Offer {
    /// Whether a source offers this version for download. The dpkg status
    /// file is printed as a plain path; archives (even `file:` ones) as a URI.
    pub fn downloadable(&self) -> bool {
        self.sources.iter().any(|s| !s.starts_with('/'))
    }
}

/// One package as `apt-cache policy` prints it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    pub name: String,
    pub installed: Option<String>,
    /// apt's candidate (`None` for `(none)`, e.g. a purely virtual package).
    pub candidate: Option<String>,
    /// Newest first, as apt prints it.
    pub table: Vec<Offer>,
}

/// Why [`Policy::choice`] did not take apt's candidate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Choice<'a> {
    /// apt's candidate, which a source offers.
    Candidate(&'a str),
    /// apt's candidate is offered by no source (only installed here): the
    /// offered version of the highest priority, the newest among equals.
    InsteadOf { chosen: &'a str, candidate: &'a str },
    /// No source offers any version.
    Nothing,
}

impl Policy {
    /// The version to download (see [`Choice`]).
    pub fn choice(&self) -> Choice<'_> {
        let offered = |v: &str| self.table.iter().any(|o| o.version == v && o.downloadable());
        if let Some(c) = self.candidate.as_deref().filter(|c| offered(c)) {
            return Choice::Candidate(c);
        }
        // The table is newest first, so the first of the highest priority wins.
        let mut best: Option<&Offer> = None;
        for o in self.table.iter().filter(|o| o.downloadable()) {
            if best.is_none_or(|b| o.priority > b.priority) {
                best = Some(o);
            }
        }
        match (best, self.candidate.as_deref()) {
            (None, _) => Choice::Nothing,
            (Some(b), Some(c)) => Choice::InsteadOf { chosen: &b.version, candidate: c },
            (Some(b), None) => Choice::Candidate(&b.version),
        }
    }

    /// The version [`Policy::choice`] picks, if any.
    #[cfg(test)]
    pub fn chosen(&self) -> Option<&str> {
        match self.choice() {
            Choice::Candidate(v) | Choice::InsteadOf { chosen: v, .. } => Some(v),
            Choice::Nothing => None,
        }
    }
}

fn none_or(v: &str) -> Option<String> {
    (v != "(none)").then(|| v.to_string())
}

/// Parses `apt-cache policy <names>` output (run with `LC_ALL=C`).
///
/// ```text
/// libpcre2-8-0:
///   Installed: 10.42-1+deb12u1
///   Candidate: 10.42-1+deb12u2
///   Version table:
///      10.42-1+deb12u2 500
///         500 http://deb.debian.org/debian-security bookworm-security/main amd64 Packages
///  *** 10.42-1+deb12u1 100
///         100 /var/lib/dpkg/status
/// ```
///
/// A version line is indented less than a source line (5 columns, or ` *** `
/// for the installed one, against 8).
pub fn parse_policy(text: &str) -> Vec<Policy> {
    let mut out: Vec<Policy> = Vec::new();
    let mut in_table = false;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        if !line.starts_with(' ') {
            if let Some(name) = line.strip_suffix(':') {
                let name = name.split(':').next().unwrap_or(name);
                out.push(Policy { name: name.to_string(), ..Policy::default() });
                in_table = false;
            }
            continue;
        }
        let Some(p) = out.last_mut() else { continue };
        let indent = line.len() - line.trim_start().len();
        if !in_table {
            if let Some(v) = trimmed.strip_prefix("Installed:") {
                p.installed = none_or(v.trim());
            } else if let Some(v) = trimmed.strip_prefix("Candidate:") {
                p.candidate = none_or(v.trim());
            } else if trimmed == "Version table:" {
                in_table = true;
            }
            continue;
        }
        let words: Vec<&str> = trimmed.split_whitespace().collect();
        if trimmed.starts_with("***") || indent < 8 {
            let words = if words.first() == Some(&"***") { &words[1..] } else { &words[..] };
            if let [version, priority, ..] = words {
                p.table.push(Offer {
                    version: version.to_string(),
                    priority: priority.parse().unwrap_or(0),
                    sources: Vec::new(),
                });
            }
        } else if let (Some(o), [_priority, source @ ..]) = (p.table.last_mut(), &words[..]) {
            o.sources.push(source.join(" "));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Taken from this machine (Debian 12, lists of 2026-12-04).
    const POLICY: &str = "\
libpcre2-8-0:
  Installed: 10.42-1+deb12u1
  Candidate: 10.42-1+deb12u2
  Version table:
     10.42-1+deb12u2 500
        500 http://deb.debian.org/debian-security bookworm-security/main amd64 Packages
 *** 10.42-1+deb12u1 100
        100 /var/lib/dpkg/status
     10.42-1 500
        500 http://deb.debian.org/debian bookworm/main amd64 Packages
qemu-system-xen:
  Installed: (none)
  Candidate: 1:7.2+dfsg-7+deb12u18+b3
  Version table:
     1:7.2+dfsg-7+deb12u18+b3 500
        500 http://deb.debian.org/debian bookworm/main amd64 Packages
     1:7.2+dfsg-7+deb12u15 500
        500 http://deb.debian.org/debian-security bookworm-security/main amd64 Packages
mail-transport-agent:
  Installed: (none)
  Candidate: (none)
  Version table:
";

    #[test]
    fn policy_output_parses_into_candidates_and_sources_per_version() {
        let p = parse_policy(POLICY);
        assert_eq!(p.len(), 3);
        assert_eq!(p[0].name, "libpcre2-8-0");
        assert_eq!(p[0].installed.as_deref(), Some("10.42-1+deb12u1"));
        assert_eq!(p[0].candidate.as_deref(), Some("10.42-1+deb12u2"));
        let versions: Vec<_> = p[0].table.iter().map(|o| o.version.as_str()).collect();
        assert_eq!(versions, ["10.42-1+deb12u2", "10.42-1+deb12u1", "10.42-1"]);
        assert_eq!(p[0].table[1].sources, ["/var/lib/dpkg/status"]);
        assert_eq!(p[0].table[1].priority, 100);
        assert!(!p[0].table[1].downloadable());
        assert!(p[0].table[2].downloadable());
        assert_eq!(p[1].chosen(), Some("1:7.2+dfsg-7+deb12u18+b3"));
        assert_eq!(p[2].candidate, None);
        assert_eq!(p[2].choice(), Choice::Nothing);
    }

    #[test]
    fn installed_version_offered_by_no_source_is_never_chosen() {
        // Lists older than the host's packages: apt's candidate is the
        // installed version, which only dpkg's status file knows.
        let text = "\
libpcre2-8-0:
  Installed: 10.42-1+deb12u1
  Candidate: 10.42-1+deb12u1
  Version table:
 *** 10.42-1+deb12u1 100
        100 /var/lib/dpkg/status
     10.42-1 500
        500 http://deb.debian.org/debian bookworm/main amd64 Packages
";
        let p = &parse_policy(text)[0];
        assert_eq!(
            p.choice(),
            Choice::InsteadOf { chosen: "10.42-1", candidate: "10.42-1+deb12u1" }
        );
    }

    #[test]
    fn installed_version_that_an_archive_also_offers_is_the_candidate() {
        let text = "\
libc6:
  Installed: 2.36-9+deb12u10
  Candidate: 2.36-9+deb12u10
  Version table:
 *** 2.36-9+deb12u10 500
        500 http://deb.debian.org/debian bookworm/main amd64 Packages
        100 /var/lib/dpkg/status
";
        assert_eq!(parse_policy(text)[0].choice(), Choice::Candidate("2.36-9+deb12u10"));
    }

    #[test]
    fn without_lists_an_installed_package_has_nothing_to_download() {
        let text = "\
libssl3:
  Installed: 3.0.19-1~deb12u2
  Candidate: 3.0.19-1~deb12u2
  Version table:
 *** 3.0.19-1~deb12u2 100
        100 /var/lib/dpkg/status
";
        assert_eq!(parse_policy(text)[0].choice(), Choice::Nothing);
    }

    #[test]
    fn a_pinned_down_source_loses_to_the_higher_priority_one() {
        // The candidate is only installed; backports (100) offer a newer
        // version than bookworm (500): the higher priority wins, not the newer.
        let text = "\
qemu-system-xen:
  Installed: 1:7.2+dfsg-7+deb12u99
  Candidate: 1:7.2+dfsg-7+deb12u99
  Version table:
     1:9.2+ds-1~bpo12+1 100
        100 http://deb.debian.org/debian bookworm-backports/main amd64 Packages
 *** 1:7.2+dfsg-7+deb12u99 100
        100 /var/lib/dpkg/status
     1:7.2+dfsg-7+deb12u18+b3 500
        500 http://deb.debian.org/debian bookworm/main amd64 Packages
";
        assert_eq!(parse_policy(text)[0].chosen(), Some("1:7.2+dfsg-7+deb12u18+b3"));
    }
}
