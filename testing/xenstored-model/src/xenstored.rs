//! A small xenstored for tests: the wire protocol of `xs_wire.h` over
//! [`xenbus::Transport`], so the real `xenbus::Client` code path of `vgpu`
//! runs against it.
//!
//! What it implements: READ, WRITE, MKDIR, RM, DIRECTORY, GET_PERMS,
//! SET_PERMS, WATCH, UNWATCH, TRANSACTION_START/END, GET_DOMAIN_PATH, with
//! permissions as in [`crate::tree`]. Transactions work on a snapshot and
//! record the generation of every node they touch; the commit fails with
//! EAGAIN if any of them changed meanwhile (as C xenstored does), else the
//! transaction's operations are replayed and watches fire. Watches fire on
//! registration and on every change at or below their path (and, for a
//! removal, on paths below the removed node).
//!
//! Simulated domains (gpu-dom, a frontend) are closures run whenever a
//! client would block ([`Xenstored::on_idle`]); concurrent writers are
//! closures run just before the next commit ([`Xenstored::before_commit`]).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use xenbus::wire::{Header, MsgType, HEADER_LEN};
use xenbus::{DomId, Framer, Perm, Transport};

use crate::tree::{is_under, Change, Op, Tree};

type Hook = Box<dyn FnMut(&mut Model) + Send>;
type OnceHook = Box<dyn FnOnce(&mut Model) + Send>;

#[derive(Clone)]
struct ConnState {
    domid: DomId,
    watches: Vec<(String, String)>,
    out: VecDeque<u8>,
}

#[derive(Clone)]
struct Tx {
    conn: usize,
    snapshot: Tree,
    /// Generation of each node at first access (`None`: absent).
    accessed: BTreeMap<String, Option<u64>>,
    ops: Vec<Op>,
}

/// Per-connection counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub commits: u32,
    pub conflicts: u32,
    pub aborts: u32,
    /// Modifications made outside any transaction.
    pub ops_outside_tx: u32,
    /// Requests of every kind (reads, writes, directories, watches, ...).
    pub requests: u32,
}

/// The store, as hooks see it: read and write as any domain, outside transactions.
#[derive(Clone)]
pub struct Model {
    pub tree: Tree,
    conns: Vec<ConnState>,
    txs: HashMap<u32, Tx>,
    next_tx: u32,
    counters: Vec<Counters>,
}

impl Model {
    pub fn read(&self, path: &str) -> Option<String> {
        self.tree.get(path).map(|n| String::from_utf8_lossy(&n.value).into_owned())
    }

    /// Applies `op` as `dom` outside any transaction and fires watches.
    pub fn apply(&mut self, dom: DomId, op: Op) -> Result<(), &'static str> {
        let change = self.tree.apply(dom, &op)?;
        self.fire(change);
        Ok(())
    }

    pub fn write(&mut self, dom: DomId, path: &str, value: &str) -> Result<(), &'static str> {
        self.apply(dom, Op::Write(path.into(), value.as_bytes().to_vec()))
    }

    pub fn rm(&mut self, dom: DomId, path: &str) -> Result<(), &'static str> {
        self.apply(dom, Op::Rm(path.into()))
    }

    pub fn set_perms(
        &mut self,
        dom: DomId,
        path: &str,
        perms: &[Perm],
    ) -> Result<(), &'static str> {
        self.apply(dom, Op::SetPerms(path.into(), perms.to_vec()))
    }

    fn fire(&mut self, change: Option<Change>) {
        let Some(change) = change else { return };
        // The toolstack removing a dead domain's home: xenstored has
        // released the domain too, and says so on `@releaseDomain`.
        let released = change.recursive && is_domain_home(&change.path);
        for conn in &mut self.conns {
            for (wpath, token) in &conn.watches {
                if released && wpath == "@releaseDomain" {
                    let payload = [wpath.as_bytes(), b"\0", token.as_bytes(), b"\0"].concat();
                    conn.out.extend(message(MsgType::WatchEvent, 0, 0, &payload));
                    continue;
                }
                let abs = absolute(conn.domid, wpath);
                let fired = if is_under(&change.path, &abs) {
                    Some(change.path.clone())
                } else if change.recursive && is_under(&abs, &change.path) {
                    Some(abs.clone())
                } else {
                    None
                };
                if let Some(p) = fired {
                    let shown = relative_if(conn.domid, wpath, &p);
                    let payload = [shown.as_bytes(), b"\0", token.as_bytes(), b"\0"].concat();
                    conn.out.extend(message(MsgType::WatchEvent, 0, 0, &payload));
                }
            }
        }
    }
}

/// `/local/domain/<number>`.
fn is_domain_home(path: &str) -> bool {
    path.strip_prefix("/local/domain/")
        .is_some_and(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
}

fn absolute(domid: DomId, path: &str) -> String {
    if path.starts_with('/') || path.starts_with('@') {
        path.to_string()
    } else {
        format!("/local/domain/{domid}/{path}")
    }
}

/// An event path as the watcher set it: relative if the watch was relative.
fn relative_if(domid: DomId, wpath: &str, path: &str) -> String {
    if wpath.starts_with('/') {
        return path.to_string();
    }
    let home = format!("/local/domain/{domid}/");
    path.strip_prefix(&home).unwrap_or(path).to_string()
}

fn message(ty: MsgType, req_id: u32, tx_id: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; HEADER_LEN + payload.len()];
    if let Ok(mut m) =
        (Header { msg_type: ty, req_id, tx_id, payload_len: payload.len() }).emit(&mut out)
    {
        m.payload_mut().copy_from_slice(payload);
    }
    out
}

struct Shared {
    model: Model,
    idle: Vec<Hook>,
    before_commit: VecDeque<OnceHook>,
}

/// A copy of the store ([`Xenstored::snapshot`]).
pub struct Snapshot(Model);

/// The daemon; clone it to share it between connections and tests.
#[derive(Clone)]
pub struct Xenstored {
    shared: Arc<Mutex<Shared>>,
}

impl Default for Xenstored {
    fn default() -> Self {
        Xenstored::new()
    }
}

impl Xenstored {
    pub fn new() -> Xenstored {
        let model = Model {
            tree: Tree::new(),
            conns: Vec::new(),
            txs: HashMap::new(),
            next_tx: 1,
            counters: Vec::new(),
        };
        Xenstored {
            shared: Arc::new(Mutex::new(Shared {
                model,
                idle: Vec::new(),
                before_commit: VecDeque::new(),
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the store.
    pub fn with<R>(&self, f: impl FnOnce(&mut Model) -> R) -> R {
        f(&mut self.lock().model)
    }

    /// The whole store as it is now: nodes, connections (their watches and
    /// unread replies and events), open transactions, counters. Hooks are
    /// not part of it.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot(self.lock().model.clone())
    }

    /// Puts the store back as it was at `snap`. Connections made since are
    /// forgotten (their `Conn`s must not be used again); the next
    /// [`Xenstored::connect`] gets the id it would have got then.
    pub fn restore(&self, snap: &Snapshot) {
        self.lock().model.clone_from(&snap.0);
    }

    /// A new connection of domain `domid`.
    pub fn connect(&self, domid: DomId) -> Conn {
        let mut s = self.lock();
        s.model.conns.push(ConnState { domid, watches: Vec::new(), out: VecDeque::new() });
        s.model.counters.push(Counters::default());
        Conn {
            xs: self.clone(),
            id: s.model.conns.len() - 1,
            framer: Box::new(Framer::new()),
            deadline: None,
            bounded: true,
        }
    }

    /// Runs `hook` whenever a client waits for something to arrive.
    pub fn on_idle(&self, hook: impl FnMut(&mut Model) + Send + 'static) {
        self.lock().idle.push(Box::new(hook));
    }

    /// Runs `hook` once, just before the next commit is checked for conflicts.
    pub fn before_commit(&self, hook: impl FnOnce(&mut Model) + Send + 'static) {
        self.lock().before_commit.push_back(Box::new(hook));
    }

    /// Whether connection `conn` (a [`Conn::id`]) has replies or events
    /// unread: for a test's event loop that does not own the connection.
    pub fn has_output(&self, conn: usize) -> bool {
        self.lock().model.conns.get(conn).is_some_and(|c| !c.out.is_empty())
    }

    pub fn counters(&self, conn: &Conn) -> Counters {
        self.lock().model.counters[conn.id]
    }

    pub fn read(&self, path: &str) -> Option<String> {
        self.with(|m| m.read(path))
    }

    pub fn write(&self, dom: DomId, path: &str, value: &str) {
        self.with(|m| m.write(dom, path, value)).expect("model write");
    }

    /// Every node at or below `path`: `path = "value" (perms)`.
    pub fn dump(&self, path: &str) -> Vec<String> {
        self.with(|m| {
            m.tree
                .subtree(path)
                .iter()
                .map(|p| {
                    let n = m.tree.get(p).expect("listed");
                    let perms: Vec<String> = n.perms.iter().map(|p| p.to_string()).collect();
                    format!("{p} = {:?} ({})", String::from_utf8_lossy(&n.value), perms.join(" "))
                })
                .collect()
        })
    }

    /// A domain as libxl creates it (`libxl__domain_make`): home readable by
    /// the domain, `name`, `device/`, and `data/` owned by the domain.
    pub fn add_domain(&self, id: DomId, name: &str) {
        self.with(|m| {
            let home = format!("/local/domain/{id}");
            let ro = [Perm::new(0, xenbus::Access::None), Perm::new(id, xenbus::Access::Read)];
            m.apply(0, Op::Mkdir(home.clone())).expect("mkdir");
            m.set_perms(0, &home, &ro).expect("perms");
            m.write(0, &format!("{home}/name"), name).expect("name");
            m.apply(0, Op::Mkdir(format!("{home}/device"))).expect("device");
            let data = format!("{home}/data");
            m.apply(0, Op::Mkdir(data.clone())).expect("data");
            m.set_perms(0, &data, &[Perm::new(id, xenbus::Access::None)]).expect("data perms");
        });
    }

    /// Runs the idle hooks once.
    pub fn run_idle(&self) {
        let mut s = self.lock();
        let mut hooks = std::mem::take(&mut s.idle);
        for h in hooks.iter_mut() {
            h(&mut s.model);
        }
        hooks.append(&mut s.idle);
        s.idle = hooks;
    }

    /// Handles one request of connection `conn`; queues the reply.
    fn handle(&self, conn: usize, ty: u32, req_id: u32, tx_id: u32, payload: &[u8]) {
        let mut s = self.lock();
        s.model.counters[conn].requests += 1;
        let reply = match MsgType::try_from(ty) {
            Ok(MsgType::TransactionEnd) => {
                let commit = payload.first() == Some(&b'T');
                if let Some(hook) = if commit { s.before_commit.pop_front() } else { None } {
                    hook(&mut s.model);
                }
                end_tx(&mut s.model, conn, tx_id, commit)
            }
            Ok(t) => request(&mut s.model, conn, t, tx_id, payload),
            Err(_) => Err("ENOSYS"),
        };
        let (rty, body) = match reply {
            Ok((t, body)) => (t, body),
            Err(e) => (MsgType::Error, [e.as_bytes(), b"\0"].concat()),
        };
        let bytes = message(rty, req_id, tx_id, &body);
        s.model.conns[conn].out.extend(bytes);
        if rty == MsgType::Watch {
            // xenstored fires a new watch once, right after acknowledging it.
            let event = message(MsgType::WatchEvent, 0, 0, payload);
            s.model.conns[conn].out.extend(event);
        }
    }
}

type Reply = Result<(MsgType, Vec<u8>), &'static str>;

fn strings(payload: &[u8]) -> Vec<String> {
    let body = payload.strip_suffix(b"\0").unwrap_or(payload);
    body.split(|&b| b == 0).map(|s| String::from_utf8_lossy(s).into_owned()).collect()
}

fn request(m: &mut Model, conn: usize, ty: MsgType, tx_id: u32, payload: &[u8]) -> Reply {
    let domid = m.conns[conn].domid;
    let ok = |t| Ok((t, b"OK\0".to_vec()));
    let first = strings(payload).into_iter().next().unwrap_or_default();
    let path = absolute(domid, &first);
    if tx_id != 0 && m.txs.get(&tx_id).is_none_or(|t| t.conn != conn) {
        return Err("ENOENT");
    }
    let op = match ty {
        MsgType::Read | MsgType::Directory | MsgType::GetPerms => {
            let tree = match m.txs.get_mut(&tx_id) {
                Some(tx) => {
                    tx.accessed.entry(path.clone()).or_insert_with(|| tx.snapshot.gen(&path));
                    &tx.snapshot
                }
                None => &m.tree,
            };
            let Some(node) = tree.get(&path) else {
                // As C xenstored's errno_from_parents: a missing node is
                // ENOENT only to a reader of its nearest existing ancestor.
                let mut up = crate::tree::parent(&path);
                while let Some(p) = up.filter(|p| tree.get(p).is_none()) {
                    up = crate::tree::parent(p);
                }
                let readable = up.is_none_or(|p| tree.access(domid, p).can_read());
                return Err(if readable { "ENOENT" } else { "EACCES" });
            };
            if !tree.access(domid, &path).can_read() {
                return Err("EACCES");
            }
            return Ok(match ty {
                MsgType::Read => (ty, node.value.clone()),
                MsgType::Directory => (
                    ty,
                    tree.children(&path)
                        .iter()
                        .flat_map(|c| [c.as_bytes(), b"\0"].concat())
                        .collect(),
                ),
                _ => (
                    ty,
                    node.perms
                        .iter()
                        .flat_map(|p| [p.to_string().as_bytes(), b"\0"].concat())
                        .collect(),
                ),
            });
        }
        MsgType::Write => {
            let at = payload.iter().position(|&b| b == 0).ok_or("EINVAL")?;
            Op::Write(path, payload[at + 1..].to_vec())
        }
        MsgType::Mkdir => Op::Mkdir(path),
        MsgType::Rm => Op::Rm(path),
        MsgType::SetPerms => {
            let perms: Result<Vec<Perm>, _> =
                strings(payload).iter().skip(1).map(|p| Perm::parse(p)).collect();
            Op::SetPerms(path, perms.map_err(|_| "EINVAL")?)
        }
        MsgType::Watch => {
            let token = strings(payload).get(1).cloned().ok_or("EINVAL")?;
            let c = &mut m.conns[conn];
            if c.watches.iter().any(|(p, t)| *p == first && *t == token) {
                return Err("EEXIST");
            }
            c.watches.push((first.clone(), token));
            return ok(ty);
        }
        MsgType::Unwatch => {
            let token = strings(payload).get(1).cloned().ok_or("EINVAL")?;
            let c = &mut m.conns[conn];
            let before = c.watches.len();
            c.watches.retain(|(p, t)| !(*p == first && *t == token));
            return if c.watches.len() < before { ok(ty) } else { Err("ENOENT") };
        }
        MsgType::TransactionStart => {
            let id = m.next_tx;
            m.next_tx += 1;
            m.txs.insert(
                id,
                Tx { conn, snapshot: m.tree.clone(), accessed: BTreeMap::new(), ops: Vec::new() },
            );
            return Ok((ty, format!("{id}\0").into_bytes()));
        }
        MsgType::GetDomainPath => return Ok((ty, format!("/local/domain/{first}\0").into_bytes())),
        _ => return Err("ENOSYS"),
    };
    match m.txs.get_mut(&tx_id) {
        Some(tx) => {
            for p in [Some(op.path()), crate::tree::parent(op.path())].into_iter().flatten() {
                tx.accessed.entry(p.to_string()).or_insert_with(|| tx.snapshot.gen(p));
            }
            tx.snapshot.apply(domid, &op)?;
            tx.ops.push(op);
        }
        None => {
            m.apply(domid, op)?;
            m.counters[conn].ops_outside_tx += 1;
        }
    }
    ok(ty)
}

fn end_tx(m: &mut Model, conn: usize, tx_id: u32, commit: bool) -> Reply {
    let tx = match m.txs.remove(&tx_id) {
        Some(tx) if tx.conn == conn => tx,
        _ => return Err("ENOENT"),
    };
    if !commit {
        m.counters[conn].aborts += 1;
        return Ok((MsgType::TransactionEnd, b"OK\0".to_vec()));
    }
    if tx.accessed.iter().any(|(p, g)| m.tree.gen(p) != *g) {
        m.counters[conn].conflicts += 1;
        return Err("EAGAIN");
    }
    let domid = m.conns[conn].domid;
    for op in tx.ops {
        m.apply(domid, op).map_err(|_| "EIO")?;
    }
    m.counters[conn].commits += 1;
    Ok((MsgType::TransactionEnd, b"OK\0".to_vec()))
}

/// A client connection: a [`Transport`] whose requests are answered at once.
pub struct Conn {
    xs: Xenstored,
    id: usize,
    framer: Box<Framer>,
    deadline: Option<Instant>,
    /// Whether `set_timeout` works (false models `/dev/xen/xenbus`: callers poll).
    pub bounded: bool,
}

impl Conn {
    pub fn id(&self) -> usize {
        self.id
    }
}

impl Transport for Conn {
    type Error = io::Error;

    fn send(&mut self, data: &[u8]) -> io::Result<usize> {
        let mut input = data;
        while !input.is_empty() {
            let msg = self.framer.feed(&mut input).map_err(|e| io::Error::other(e.to_string()))?;
            if let Some(m) = msg {
                let (ty, req, tx, payload) =
                    (m.msg_type_raw(), m.req_id(), m.tx_id(), m.payload().to_vec());
                self.xs.handle(self.id, ty, req, tx, &payload);
            }
        }
        if !self.bounded {
            // A polling client never waits: let the simulated domains act now.
            self.xs.run_idle();
        }
        Ok(data.len())
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut s = self.xs.lock();
        let out = &mut s.model.conns[self.id].out;
        let n = buf.len().min(out.len());
        for (slot, byte) in buf.iter_mut().zip(out.drain(..n)) {
            *slot = byte;
        }
        Ok(n)
    }

    fn wait(&mut self) -> io::Result<()> {
        loop {
            self.xs.run_idle();
            if !self.xs.lock().model.conns[self.id].out.is_empty() {
                return Ok(());
            }
            match self.deadline {
                Some(d) if Instant::now() >= d => {
                    return Err(io::Error::new(io::ErrorKind::WouldBlock, "model: read timed out"))
                }
                Some(_) => std::thread::sleep(Duration::from_millis(1)),
                None => return Err(io::Error::other("model: would block forever")),
            }
        }
    }
}

impl xenbus::std_io::Bounded for Conn {
    /// A read past the deadline fails with `WouldBlock`; `false` when this
    /// connection models a transport that cannot bound reads ([`Conn::bounded`]).
    fn set_timeout(&mut self, timeout: Option<Duration>) -> bool {
        if self.bounded {
            self.deadline = timeout.map(|t| Instant::now() + t);
        }
        self.bounded
    }
    fn is_timeout(err: &io::Error) -> bool {
        err.kind() == io::ErrorKind::WouldBlock
    }
    fn describe(err: &io::Error) -> String {
        err.to_string()
    }
}

#[cfg(test)]
mod tests {
    use xenbus::wire::TxId;
    use xenbus::Client;

    use super::{Conn, Xenstored};

    #[test]
    fn restore_brings_back_nodes_watches_pending_output_and_connection_ids() {
        let xs = Xenstored::new();
        xs.add_domain(1, "gpu-dom");
        let mut watcher: Client<Conn> = Client::new(xs.connect(0));
        watcher.watch("/local/domain/1/data", "tok").unwrap();
        assert!(watcher.poll_event().unwrap().is_some(), "a new watch fires once");
        let snap = xs.snapshot();

        let mut late: Client<Conn> = Client::new(xs.connect(1));
        late.write(TxId::NONE, "data/x", b"1").unwrap();
        let late_id = late.transport().id();
        xs.restore(&snap);
        assert_eq!(xs.read("/local/domain/1/data/x"), None);
        let mut again: Client<Conn> = Client::new(xs.connect(1));
        assert_eq!(again.transport().id(), late_id, "the id it got after the snapshot");
        // The event of the forgotten write is gone; the watch still fires.
        again.write(TxId::NONE, "data/y", b"2").unwrap();
        let ev = watcher.poll_event().unwrap().expect("the restored watch fires");
        assert_eq!((ev.path(), ev.token()), ("/local/domain/1/data/y", "tok"));
        assert!(watcher.poll_event().unwrap().is_none());
    }
}
