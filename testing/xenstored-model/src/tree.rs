//! The node tree of the model xenstored, with xenstored's permission rules
//! (`docs/misc/xenstore.txt`, C xenstored's `construct_node` and `perm_for_conn`):
//!
//! - the first permission entry is the owner, and its letter is what every
//!   unlisted domain gets; the owner has full access; dom0 is privileged;
//! - a node created implicitly or explicitly inherits its parent's
//!   permissions, except that an unprivileged domain owns what it creates;
//! - writing an existing node needs write access to it; creating one needs
//!   write access to its nearest existing ancestor; removing needs write
//!   access to the node; setting permissions needs ownership;
//! - every modification gives the node a new generation (and its parent, when
//!   its children change): transactions compare generations to detect conflicts.

use std::collections::BTreeMap;

use xenbus::{Access, DomId, Perm};

/// One node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub value: Vec<u8>,
    pub perms: Vec<Perm>,
    pub gen: u64,
}

/// A modification, as a transaction records it for replay at commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Write(String, Vec<u8>),
    Mkdir(String),
    Rm(String),
    SetPerms(String, Vec<Perm>),
}

impl Op {
    pub fn path(&self) -> &str {
        match self {
            Op::Write(p, _) | Op::Mkdir(p) | Op::Rm(p) | Op::SetPerms(p, _) => p,
        }
    }
}

/// What a watch must hear about a modification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub path: String,
    /// A removal: watches below the path fire too.
    pub recursive: bool,
}

#[derive(Debug, Clone)]
pub struct Tree {
    nodes: BTreeMap<String, Node>,
    next_gen: u64,
}

pub fn parent(path: &str) -> Option<&str> {
    match path.rfind('/') {
        _ if path == "/" => None,
        Some(0) => Some("/"),
        Some(i) => Some(&path[..i]),
        None => None,
    }
}

/// Whether `path` is `ancestor` or below it.
pub fn is_under(path: &str, ancestor: &str) -> bool {
    ancestor == "/"
        || path == ancestor
        || (path.starts_with(ancestor) && path.as_bytes().get(ancestor.len()) == Some(&b'/'))
}

impl Default for Tree {
    fn default() -> Self {
        Tree::new()
    }
}

impl Tree {
    /// Only the root, owned by dom0, no access for others.
    pub fn new() -> Tree {
        let mut nodes = BTreeMap::new();
        nodes.insert(
            "/".to_string(),
            Node { value: Vec::new(), perms: vec![Perm::new(0, Access::None)], gen: 0 },
        );
        Tree { nodes, next_gen: 1 }
    }

    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }

    /// The generation of `path`, `None` if absent.
    pub fn gen(&self, path: &str) -> Option<u64> {
        self.nodes.get(path).map(|n| n.gen)
    }

    /// Leaf names of the children of `path`, sorted.
    pub fn children(&self, path: &str) -> Vec<String> {
        let prefix = if path == "/" { "/".to_string() } else { format!("{path}/") };
        self.nodes
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter_map(|(k, _)| {
                let rest = &k[prefix.len()..];
                (!rest.is_empty() && !rest.contains('/')).then(|| rest.to_string())
            })
            .collect()
    }

    /// Every path at or below `path`, sorted.
    pub fn subtree(&self, path: &str) -> Vec<String> {
        self.nodes.keys().filter(|k| is_under(k, path)).cloned().collect()
    }

    /// The access `dom` has to the node at `path` (which must exist).
    pub fn access(&self, dom: DomId, path: &str) -> Access {
        let Some(node) = self.nodes.get(path) else { return Access::None };
        let owner = node.perms[0];
        if dom == 0 || owner.dom == dom {
            return Access::Both;
        }
        node.perms.iter().skip(1).find(|p| p.dom == dom).map_or(owner.access, |p| p.access)
    }

    fn nearest_existing<'a>(&self, mut path: &'a str) -> &'a str {
        while !self.nodes.contains_key(path) {
            path = parent(path).unwrap_or("/");
        }
        path
    }

    fn bump(&mut self, path: &str) {
        let gen = self.next_gen;
        self.next_gen += 1;
        if let Some(n) = self.nodes.get_mut(path) {
            n.gen = gen;
        }
    }

    /// Creates `path` and its missing ancestors, inheriting permissions.
    fn create(&mut self, dom: DomId, path: &str) {
        let mut missing = vec![path.to_string()];
        let mut p = path;
        while let Some(up) = parent(p) {
            if self.nodes.contains_key(up) {
                break;
            }
            missing.push(up.to_string());
            p = up;
        }
        for p in missing.iter().rev() {
            let up = parent(p).unwrap_or("/");
            let mut perms = self.nodes[up].perms.clone();
            if dom != 0 {
                perms[0].dom = dom;
            }
            self.nodes.insert(p.clone(), Node { value: Vec::new(), perms, gen: 0 });
            self.bump(p);
            self.bump(up);
        }
    }

    /// Applies `op` as `dom`. Errors are errno names, as xenstored sends them.
    pub fn apply(&mut self, dom: DomId, op: &Op) -> Result<Option<Change>, &'static str> {
        let path = op.path();
        let exists = self.nodes.contains_key(path);
        let change = |recursive| Some(Change { path: path.to_string(), recursive });
        match op {
            Op::Write(_, value) => {
                if exists {
                    if !self.access(dom, path).can_write() {
                        return Err("EACCES");
                    }
                } else {
                    if !self.access(dom, self.nearest_existing(path)).can_write() {
                        return Err("EACCES");
                    }
                    self.create(dom, path);
                }
                if let Some(n) = self.nodes.get_mut(path) {
                    n.value = value.clone();
                }
                self.bump(path);
                Ok(change(false))
            }
            Op::Mkdir(_) if exists => Ok(None),
            Op::Mkdir(_) => {
                if !self.access(dom, self.nearest_existing(path)).can_write() {
                    return Err("EACCES");
                }
                self.create(dom, path);
                Ok(change(false))
            }
            Op::Rm(_) if path == "/" => Err("EINVAL"),
            Op::Rm(_) if !exists => match parent(path).map(|p| self.nodes.contains_key(p)) {
                Some(true) => Ok(None),
                _ => Err("ENOENT"),
            },
            Op::Rm(_) => {
                if !self.access(dom, path).can_write() {
                    return Err("EACCES");
                }
                for p in self.subtree(path) {
                    self.nodes.remove(&p);
                }
                self.bump(parent(path).unwrap_or("/"));
                Ok(change(true))
            }
            Op::SetPerms(_, _) if !exists => Err("ENOENT"),
            Op::SetPerms(_, perms) => {
                let owner = self.nodes[path].perms[0].dom;
                if dom != 0 && dom != owner {
                    return Err("EACCES");
                }
                if perms.is_empty() {
                    return Err("EINVAL");
                }
                if let Some(n) = self.nodes.get_mut(path) {
                    n.perms = perms.clone();
                }
                self.bump(path);
                Ok(change(false))
            }
        }
    }
}
