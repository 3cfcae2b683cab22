//! Node permissions: `<perm-as-string>` of `GET_PERMS` / `SET_PERMS`.
//!
//! From `docs/misc/xenstore.txt`: each entry is a letter and a decimal domid,
//! `w<domid>` write only, `r<domid>` read only, `b<domid>` both, `n<domid>` none.
//! The **first** entry names the node's owner (who always has full access) and
//! its letter is the access of every domain without an entry of its own.

use super::reply::{NulList, NulListIter};
use super::{parse_decimal, Error, MsgType};
use crate::DomId;
use core::fmt;

/// What a permission entry grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// `n`: no access.
    None,
    /// `r`: read only.
    Read,
    /// `w`: write only.
    Write,
    /// `b`: read and write.
    Both,
}

impl Access {
    /// The wire letter.
    pub const fn letter(self) -> u8 {
        match self {
            Access::None => b'n',
            Access::Read => b'r',
            Access::Write => b'w',
            Access::Both => b'b',
        }
    }

    /// Parses a wire letter.
    pub const fn from_letter(letter: u8) -> Result<Access, Error> {
        match letter {
            b'n' => Ok(Access::None),
            b'r' => Ok(Access::Read),
            b'w' => Ok(Access::Write),
            b'b' => Ok(Access::Both),
            _ => Err(Error::BadAccess { letter }),
        }
    }

    /// Whether this access includes reading.
    pub const fn can_read(self) -> bool {
        matches!(self, Access::Read | Access::Both)
    }

    /// Whether this access includes writing.
    pub const fn can_write(self) -> bool {
        matches!(self, Access::Write | Access::Both)
    }
}

/// One permission entry: `dom` gets `access`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Perm {
    /// The domain the entry is about (the owner, for the first entry).
    pub dom: DomId,
    /// What it grants.
    pub access: Access,
}

/// Longest `<perm-as-string>`: a letter and five digits.
pub const PERM_STR_MAX: usize = 6;

impl Perm {
    /// A permission entry.
    pub const fn new(dom: DomId, access: Access) -> Perm {
        Perm { dom, access }
    }

    /// Parses `<letter><domid>`, e.g. `b0`, `r5`, `n0`. The domid must be
    /// decimal 0..=65535.
    pub fn parse(text: &str) -> Result<Perm, Error> {
        let bytes = text.as_bytes();
        let access = Access::from_letter(bytes.first().copied().unwrap_or(0))?;
        let dom = parse_decimal(&bytes[1..], 5)
            .and_then(|d| DomId::try_from(d).ok())
            .ok_or(Error::BadNumber { ty: MsgType::GetPerms })?;
        Ok(Perm { dom, access })
    }

    /// The wire form, e.g. `"r5"`.
    pub fn to_wire(&self) -> heapless::String<PERM_STR_MAX> {
        let mut s = heapless::String::new();
        // A letter and at most five digits always fit in PERM_STR_MAX.
        let _ = fmt::write(&mut s, format_args!("{self}"));
        s
    }
}

impl fmt::Display for Perm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.access.letter() as char, self.dom)
    }
}

/// A validated `GET_PERMS` reply: one or more permission entries, owner first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PermList<'a> {
    list: NulList<'a>,
}

impl<'a> PermList<'a> {
    /// Validates a `<perm-as-string>|+` payload: at least one entry, each well-formed.
    pub fn parse(payload: &'a [u8]) -> Result<PermList<'a>, Error> {
        let list = NulList::parse(payload, MsgType::GetPerms)?;
        for item in list.iter() {
            Perm::parse(item)?;
        }
        if list.is_empty() {
            return Err(Error::NoPerms);
        }
        Ok(PermList { list })
    }

    /// The first entry: the node's owner, and the default for unlisted domains.
    pub fn owner(&self) -> Perm {
        self.iter().next().unwrap_or(Perm::new(0, Access::None))
    }

    /// Number of entries (at least 1).
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Always `false`: a parsed list has the owner entry.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The entries, owner first.
    pub fn iter(&self) -> PermIter<'a> {
        PermIter { inner: self.list.iter() }
    }

    /// The access xenstored's rules give `dom` on this node: full for the owner,
    /// its own entry if listed, else the owner entry's letter.
    ///
    /// (This ignores dom0's implicit privilege and `SET_TARGET`.)
    pub fn access_of(&self, dom: DomId) -> Access {
        let owner = self.owner();
        if owner.dom == dom {
            return Access::Both;
        }
        self.iter().skip(1).find(|p| p.dom == dom).map_or(owner.access, |p| p.access)
    }
}

impl<'a> IntoIterator for PermList<'a> {
    type Item = Perm;
    type IntoIter = PermIter<'a>;
    fn into_iter(self) -> PermIter<'a> {
        self.iter()
    }
}

/// Iterator over a [`PermList`].
#[derive(Debug, Clone)]
pub struct PermIter<'a> {
    inner: NulListIter<'a>,
}

impl Iterator for PermIter<'_> {
    type Item = Perm;
    fn next(&mut self) -> Option<Perm> {
        // Every entry was validated by `PermList::parse`.
        self.inner.by_ref().find_map(|s| Perm::parse(s).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perm_strings_of_the_spec_parse() {
        assert_eq!(Perm::parse("b0"), Ok(Perm::new(0, Access::Both)));
        assert_eq!(Perm::parse("r5"), Ok(Perm::new(5, Access::Read)));
        assert_eq!(Perm::parse("w65535"), Ok(Perm::new(65535, Access::Write)));
        assert_eq!(Perm::parse("n0"), Ok(Perm::new(0, Access::None)));
    }

    #[test]
    fn malformed_perm_strings_are_typed_errors() {
        assert_eq!(Perm::parse("x0"), Err(Error::BadAccess { letter: b'x' }));
        assert_eq!(Perm::parse(""), Err(Error::BadAccess { letter: 0 }));
        let bad_number = Err(Error::BadNumber { ty: MsgType::GetPerms });
        assert_eq!(Perm::parse("b"), bad_number);
        assert_eq!(Perm::parse("b65536"), bad_number);
        assert_eq!(Perm::parse("b-1"), bad_number);
        assert_eq!(Perm::parse("b+1"), bad_number);
        assert_eq!(Perm::parse("b 1"), bad_number);
        assert_eq!(Perm::parse("b0000001"), bad_number);
    }

    #[test]
    fn perm_wire_form_round_trips() {
        for p in [
            Perm::new(0, Access::Both),
            Perm::new(65535, Access::None),
            Perm::new(12, Access::Write),
        ] {
            assert_eq!(Perm::parse(p.to_wire().as_str()), Ok(p));
        }
    }

    #[test]
    fn first_entry_is_owner_and_default_for_unlisted_domains() {
        let list = PermList::parse(b"n0\0r5\0").unwrap();
        assert_eq!(list.owner(), Perm::new(0, Access::None));
        assert_eq!(list.len(), 2);
        assert_eq!(list.access_of(0), Access::Both);
        assert_eq!(list.access_of(5), Access::Read);
        assert_eq!(list.access_of(7), Access::None);
    }

    #[test]
    fn perm_list_without_entries_or_with_bad_entry_is_rejected() {
        assert_eq!(PermList::parse(b""), Err(Error::NoPerms));
        assert_eq!(PermList::parse(b"b0\0q1\0"), Err(Error::BadAccess { letter: b'q' }));
        assert_eq!(PermList::parse(b"b0"), Err(Error::Unterminated { ty: MsgType::GetPerms }));
    }
}
