//! Domains by name or domid, as the toolstack sees them in xenstore:
//! `/local/domain/<domid>` with the domain's `name`.

use std::fmt;

use xenbus::{DomId, TxId};

use crate::error::Error;
use crate::store::{Bounded, Store};

/// A domain: its domid and, if it still exists, its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain {
    /// The domid.
    pub id: DomId,
    /// `/local/domain/<id>/name`; `None` if absent or the domain is gone.
    pub name: Option<String>,
    /// Whether `/local/domain/<id>` exists.
    pub exists: bool,
}

impl Domain {
    /// The name, or `domain <id>` when it has none.
    pub fn label(&self) -> String {
        match &self.name {
            Some(n) => n.clone(),
            None => format!("domain {}", self.id),
        }
    }
}

/// `name (domid N)`.
impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(n) => write!(f, "{n} (domid {})", self.id),
            None => write!(f, "domain {}", self.id),
        }
    }
}

/// `/local/domain/<id>`.
pub fn home(id: DomId) -> String {
    format!("/local/domain/{id}")
}

/// Every domain under `/local/domain`, by domid.
pub fn list<T: Bounded>(xs: &mut Store<T>) -> Result<Vec<Domain>, Error> {
    let mut ids: Vec<DomId> =
        xs.dir(TxId::NONE, "/local/domain")?.iter().filter_map(|c| parse_domid(c)).collect();
    ids.sort_unstable();
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let name = xs.read(TxId::NONE, &format!("{}/name", home(id)))?;
        out.push(Domain { id, name, exists: true });
    }
    Ok(out)
}

/// A domid as xenstore spells it: decimal, no sign, at most 65535.
pub fn parse_domid(text: &str) -> Option<DomId> {
    gpuif::keys::parse_u32(text).and_then(|v| DomId::try_from(v).ok())
}

/// How [`resolve`] treats a domid of a domain that no longer exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gone {
    /// Refused: the domain must exist.
    Refuse,
    /// Accepted (to clean up after a guest that was destroyed).
    Accept,
}

/// Resolves `spec` (a domid or a domain name) to a domain. `role` (`guest`,
/// `backend`) names it in errors. Names must match exactly one domain.
pub fn resolve<T: Bounded>(
    xs: &mut Store<T>,
    spec: &str,
    role: &'static str,
    gone: Gone,
) -> Result<Domain, Error> {
    let all = list(xs)?;
    let no_such = |all: &[Domain]| Error::NoSuchDomain {
        role,
        spec: spec.to_string(),
        known: all.iter().map(|d| d.to_string()).collect(),
    };
    if let Some(id) = parse_domid(spec) {
        if let Some(d) = all.iter().find(|d| d.id == id) {
            return Ok(d.clone());
        }
        return match gone {
            Gone::Accept => Ok(Domain { id, name: None, exists: false }),
            Gone::Refuse => Err(no_such(&all)),
        };
    }
    let mut matches: Vec<&Domain> =
        all.iter().filter(|d| d.name.as_deref() == Some(spec)).collect();
    match matches.len() {
        0 => Err(no_such(&all)),
        1 => Ok(matches.remove(0).clone()),
        _ => Err(Error::AmbiguousName {
            name: spec.to_string(),
            domids: matches.iter().map(|d| d.id).collect(),
        }),
    }
}
