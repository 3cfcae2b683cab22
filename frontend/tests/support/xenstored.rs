//! A minimal in-memory xenstored for the host tests: several connections
//! (one per domain), relative paths, watches (fired on registration and on
//! every change at or below the watched path), buffered transactions with
//! injectable `EAGAIN`, and stored permissions (not enforced: the tests'
//! toolstack writes them, the backend checks them).

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;

use xenbus::wire::{Header, MsgType, HEADER_LEN};
use xenbus::{Access, Framer, Perm, Transport};

#[derive(Clone, Debug)]
struct Node {
    value: Vec<u8>,
    perms: Vec<Perm>,
}

enum TxOp {
    Write(String, Vec<u8>),
    Rm(String),
}

struct Conn {
    dom: u16,
    inbox: VecDeque<u8>,
}

/// The store and every connection's pending output.
#[derive(Default)]
pub struct Store {
    nodes: BTreeMap<String, Node>,
    watches: Vec<(usize, String, String)>, // (conn, path as registered, token)
    conns: Vec<Conn>,
    txs: BTreeMap<u32, (usize, Vec<TxOp>)>,
    next_tx: u32,
    /// Commits to refuse with `EAGAIN` before accepting one.
    pub fail_commits: u32,
    /// Commits refused so far.
    pub refused_commits: u32,
}

/// A shared store.
#[derive(Clone, Default)]
pub struct Xenstored(pub Rc<RefCell<Store>>);

/// One domain's connection: a [`Transport`].
pub struct XsConn {
    store: Xenstored,
    id: usize,
    framer: Framer,
}

fn absolute(dom: u16, path: &str) -> String {
    if path.starts_with('/') || path.starts_with('@') {
        path.to_string()
    } else {
        format!("/local/domain/{dom}/{path}")
    }
}

fn below(path: &str, dir: &str) -> bool {
    path == dir || (path.starts_with(dir) && path.as_bytes().get(dir.len()) == Some(&b'/'))
}

fn message(ty: MsgType, req_id: u32, tx_id: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; HEADER_LEN + payload.len()];
    Header { msg_type: ty, req_id, tx_id, payload_len: payload.len() }
        .emit(&mut out)
        .expect("message fits")
        .payload_mut()
        .copy_from_slice(payload);
    out
}

fn parent(path: &str) -> Option<&str> {
    path.rfind('/').filter(|&i| i > 0).map(|i| &path[..i])
}

impl Xenstored {
    /// A new connection for domain `dom`.
    pub fn connect(&self, dom: u16) -> XsConn {
        let mut s = self.0.borrow_mut();
        s.conns.push(Conn { dom, inbox: VecDeque::new() });
        XsConn { store: self.clone(), id: s.conns.len() - 1, framer: Framer::new() }
    }

    /// Reads a node directly (absolute path).
    pub fn read(&self, path: &str) -> Option<String> {
        let s = self.0.borrow();
        s.nodes.get(path).map(|n| String::from_utf8_lossy(&n.value).into_owned())
    }

    /// Writes a node directly, as dom0 would, with `perms` (firing watches).
    pub fn write(&self, path: &str, value: &str, perms: &[Perm]) {
        let mut s = self.0.borrow_mut();
        s.set(path, value.as_bytes().to_vec(), 0);
        s.nodes.get_mut(path).expect("just written").perms = perms.to_vec();
    }

    /// Removes a node and its children directly (firing watches).
    pub fn rm(&self, path: &str) {
        self.0.borrow_mut().remove(path);
    }

    /// Fires the watches on a special path (`@releaseDomain`).
    pub fn fire_special(&self, name: &str) {
        self.0.borrow_mut().fire(name, false);
    }

    /// A probe telling whether `conn` has output waiting (for the
    /// platform's `wait`, which does not own the connection).
    pub fn connect_probe(&self, conn: &XsConn) -> Rc<dyn Fn() -> bool> {
        let store = self.clone();
        let id = conn.id;
        Rc::new(move || !store.0.borrow().conns[id].inbox.is_empty())
    }
}

impl Store {
    fn fire(&mut self, changed: &str, recursive: bool) {
        let mut events = Vec::new();
        for (conn, wpath, token) in &self.watches {
            let dom = self.conns[*conn].dom;
            let wabs = absolute(dom, wpath);
            if below(changed, &wabs) || (recursive && below(&wabs, changed)) {
                let shown = if wpath.starts_with('/') || wpath.starts_with('@') {
                    changed.to_string()
                } else {
                    changed.strip_prefix(&format!("/local/domain/{dom}/")).unwrap_or(changed).into()
                };
                events.push((*conn, shown, token.clone()));
            }
        }
        for (conn, path, token) in events {
            let payload = [path.as_bytes(), b"\0", token.as_bytes(), b"\0"].concat();
            let msg = message(MsgType::WatchEvent, 0, 0, &payload);
            self.conns[conn].inbox.extend(msg);
        }
    }

    fn set(&mut self, path: &str, value: Vec<u8>, creator: u16) {
        // Missing parents are created, inheriting the nearest ancestor's perms.
        let mut missing = Vec::new();
        let mut p = Some(path);
        let mut inherited = vec![Perm { dom: creator, access: Access::None }];
        while let Some(q) = p {
            match self.nodes.get(q) {
                Some(n) => {
                    inherited = n.perms.clone();
                    break;
                }
                None => missing.push(q.to_string()),
            }
            p = parent(q);
        }
        if creator != 0 && !inherited.is_empty() {
            inherited[0].dom = creator;
        }
        for q in missing.iter().rev() {
            let perms = inherited.clone();
            self.nodes.insert(q.clone(), Node { value: Vec::new(), perms });
        }
        self.nodes.get_mut(path).expect("created").value = value;
        self.fire(path, false);
    }

    fn remove(&mut self, path: &str) {
        let gone: Vec<String> = self.nodes.keys().filter(|k| below(k, path)).cloned().collect();
        for k in &gone {
            self.nodes.remove(k);
        }
        if !gone.is_empty() {
            self.fire(path, true);
        }
    }

    fn handle(&mut self, conn: usize, h: Header, payload: &[u8]) -> Result<Vec<u8>, &'static str> {
        let dom = self.conns[conn].dom;
        let fields: Vec<&[u8]> = payload.split(|&b| b == 0).collect();
        let text = |i: usize| -> Result<String, &'static str> {
            let f = fields.get(i).ok_or("EINVAL")?;
            Ok(String::from_utf8_lossy(f).into_owned())
        };
        let ok = b"OK\0".to_vec();
        match h.msg_type {
            MsgType::Read => {
                let p = absolute(dom, &text(0)?);
                if let Some((_, ops)) = self.txs.get(&h.tx_id) {
                    for op in ops.iter().rev() {
                        match op {
                            TxOp::Write(q, v) if *q == p => return Ok(v.clone()),
                            TxOp::Rm(q) if below(&p, q) => return Err("ENOENT"),
                            _ => {}
                        }
                    }
                }
                self.nodes.get(&p).map(|n| n.value.clone()).ok_or("ENOENT")
            }
            MsgType::Write | MsgType::Mkdir => {
                let path = text(0)?;
                let p = absolute(dom, &path);
                let value = if h.msg_type == MsgType::Write {
                    payload[path.len() + 1..].to_vec()
                } else {
                    self.nodes.get(&p).map(|n| n.value.clone()).unwrap_or_default()
                };
                match self.txs.get_mut(&h.tx_id) {
                    Some((_, ops)) if h.tx_id != 0 => ops.push(TxOp::Write(p, value)),
                    _ => self.set(&p, value, dom),
                }
                Ok(ok)
            }
            MsgType::Rm => {
                let p = absolute(dom, &text(0)?);
                match self.txs.get_mut(&h.tx_id) {
                    Some((_, ops)) if h.tx_id != 0 => ops.push(TxOp::Rm(p)),
                    _ => self.remove(&p),
                }
                Ok(ok)
            }
            MsgType::Directory => {
                let p = absolute(dom, &text(0)?);
                if !self.nodes.contains_key(&p) {
                    return Err("ENOENT");
                }
                let mut out = Vec::new();
                for k in self.nodes.keys() {
                    if let Some(rest) = k.strip_prefix(&p).and_then(|r| r.strip_prefix('/')) {
                        if !rest.is_empty() && !rest.contains('/') {
                            out.extend_from_slice(rest.as_bytes());
                            out.push(0);
                        }
                    }
                }
                Ok(out)
            }
            MsgType::GetPerms => {
                let p = absolute(dom, &text(0)?);
                let n = self.nodes.get(&p).ok_or("ENOENT")?;
                let mut out = Vec::new();
                for perm in &n.perms {
                    out.extend_from_slice(perm.to_wire().as_bytes());
                    out.push(0);
                }
                Ok(out)
            }
            MsgType::SetPerms => {
                let p = absolute(dom, &text(0)?);
                let mut perms = Vec::new();
                for f in fields.iter().skip(1).filter(|f| !f.is_empty()) {
                    let s = std::str::from_utf8(f).map_err(|_| "EINVAL")?;
                    perms.push(Perm::parse(s).map_err(|_| "EINVAL")?);
                }
                self.nodes.get_mut(&p).ok_or("ENOENT")?.perms = perms;
                self.fire(&p, false);
                Ok(ok)
            }
            MsgType::Watch => {
                let (path, token) = (text(0)?, text(1)?);
                self.watches.push((conn, path.clone(), token.clone()));
                let payload = [path.as_bytes(), b"\0", token.as_bytes(), b"\0"].concat();
                let ev = message(MsgType::WatchEvent, 0, 0, &payload);
                // The ack goes first, then the initial event.
                let mut reply = message(MsgType::Watch, h.req_id, 0, &ok);
                reply.extend(ev);
                self.conns[conn].inbox.extend(reply);
                Err("")
            }
            MsgType::Unwatch => {
                let (path, token) = (text(0)?, text(1)?);
                self.watches.retain(|(c, p, t)| !(*c == conn && *p == path && *t == token));
                Ok(ok)
            }
            MsgType::TransactionStart => {
                self.next_tx += 1;
                let id = self.next_tx;
                self.txs.insert(id, (conn, Vec::new()));
                Ok(format!("{id}\0").into_bytes())
            }
            MsgType::TransactionEnd => {
                let (_, ops) = self.txs.remove(&h.tx_id).ok_or("ENOENT")?;
                if text(0)? != "T" {
                    return Ok(ok);
                }
                if self.fail_commits > 0 {
                    self.fail_commits -= 1;
                    self.refused_commits += 1;
                    return Err("EAGAIN");
                }
                for op in ops {
                    match op {
                        TxOp::Write(p, v) => self.set(&p, v, dom),
                        TxOp::Rm(p) => self.remove(&p),
                    }
                }
                Ok(ok)
            }
            MsgType::GetDomainPath => Ok(format!("/local/domain/{}\0", text(0)?).into_bytes()),
            _ => Err("ENOSYS"),
        }
    }
}

impl Transport for XsConn {
    type Error = &'static str;

    fn send(&mut self, data: &[u8]) -> Result<usize, Self::Error> {
        let mut input = data;
        while let Some(m) = self.framer.feed(&mut input).map_err(|_| "bad framing")? {
            let h = Header::parse(&m).map_err(|_| "bad header")?;
            let payload = m.payload().to_vec();
            let mut s = self.store.0.borrow_mut();
            let reply = match s.handle(self.id, h, &payload) {
                Ok(p) => message(h.msg_type, h.req_id, h.tx_id, &p),
                Err("") => continue, // already queued
                Err(errno) => {
                    message(MsgType::Error, h.req_id, h.tx_id, format!("{errno}\0").as_bytes())
                }
            };
            s.conns[self.id].inbox.extend(reply);
        }
        Ok(data.len())
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        let mut s = self.store.0.borrow_mut();
        let inbox = &mut s.conns[self.id].inbox;
        let n = buf.len().min(inbox.len());
        for b in &mut buf[..n] {
            *b = inbox.pop_front().expect("counted");
        }
        Ok(n)
    }

    fn wait(&mut self) -> Result<(), Self::Error> {
        Err("the in-memory xenstored answers at once; nothing more will come")
    }
}
