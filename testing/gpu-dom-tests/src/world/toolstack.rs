//! The toolstack's side of the world: what `vgpu attach`, `detach` and
//! `restore` write (by hand, so a test can set any value), dom0's writes
//! and removals, a concurrent writer, and the real `vgpu` command.

use xenbus::{Access as XsAccess, Client, Perm};

use super::World;

impl World {
    /// What `vgpu detach --force` does for guest `fe`'s device 0.
    pub fn detach(&self, fe: u16) {
        self.toolstack_rm(&format!("/local/domain/{fe}/device/vgpu/0"));
        self.toolstack_rm(&format!("/local/domain/{}/backend/vgpu/{fe}/0", self.backend));
    }

    /// dom0 writes `path` and sets its permissions (`xenstore-write` then
    /// `xenstore-chmod`, as libxl does for a device's nodes).
    pub fn toolstack_write(&self, path: &str, value: &str, perms: &[Perm]) {
        self.xenstored.with(|m| {
            m.write(0, path, value).expect("dom0 may write anywhere");
            m.set_perms(0, path, perms).expect("dom0 may set any node's permissions");
        });
    }

    /// dom0 removes `path` and everything below it (nothing if absent).
    pub fn toolstack_rm(&self, path: &str) {
        let _ = self.xenstored.with(|m| m.rm(0, path));
    }

    /// The next `n` commits of any transaction fail with `EAGAIN`, as when
    /// another writer changes a node the transaction touched: each is
    /// preceded by dom0 rewriting guest `fe`'s device `state` with its
    /// own value (a modification all the same, as in C xenstored).
    pub fn conflict_next_commits(&self, fe: u16, n: u32) {
        let path = format!("/local/domain/{fe}/device/vgpu/0/state");
        for _ in 0..n {
            let path = path.clone();
            self.xenstored.before_commit(move |m| {
                if let Some(v) = m.read(&path) {
                    m.write(0, &path, &v).expect("dom0 rewrites the frontend's state");
                }
            });
        }
    }

    /// What `vgpu restore` does for guest `fe`: the device directory of the
    /// current backend, with the limits the guest was attached with, and
    /// the frontend's `backend`/`backend-id` pointing at it (one write each).
    pub fn restore(&self, fe: u16) {
        let [base, len, pages] = self.limits[&fe];
        self.write_device(fe, base, len, pages, false);
        // The nodes the guest wrote (state, ring-ref, ...): readable by the
        // new backend, as `vgpu restore` moves them.
        let fd = format!("/local/domain/{fe}/device/vgpu/0");
        let perms = [
            Perm { dom: fe, access: XsAccess::None },
            Perm { dom: self.backend, access: XsAccess::Read },
        ];
        self.xenstored.with(|m| {
            let children = m.tree.children(&fd).into_iter().map(|c| format!("{fd}/{c}"));
            for node in std::iter::once(fd.clone()).chain(children) {
                let _ = m.set_perms(0, &node, &perms);
            }
        });
    }

    /// Domain `dom`'s home as libxl makes it, unless it exists already.
    pub fn ensure_domain(&self, dom: u16) {
        if self.xenstored.read(&format!("/local/domain/{dom}")).is_none() {
            self.xenstored.add_domain(dom, &format!("guest{dom}"));
        }
    }

    /// What `vgpu attach` writes for guest `fe`, device 0.
    pub fn attach(&mut self, fe: u16, ggtt_base: u32, ggtt_len: u32, max_pages: u32) {
        self.ensure_domain(fe);
        self.limits.insert(fe, [ggtt_base, ggtt_len, max_pages]);
        self.write_device(fe, ggtt_base, ggtt_len, max_pages, true);
    }

    fn write_device(&self, fe: u16, ggtt_base: u32, ggtt_len: u32, max_pages: u32, new: bool) {
        let b = self.backend;
        let be = format!("/local/domain/{b}/backend/vgpu/{fe}/0");
        let fd = format!("/local/domain/{fe}/device/vgpu/0");
        let xs = |path: &str, value: &str, perms: &[Perm]| self.toolstack_write(path, value, perms);
        let be_perms =
            [Perm { dom: b, access: XsAccess::None }, Perm { dom: fe, access: XsAccess::Read }];
        let fe_perms =
            [Perm { dom: fe, access: XsAccess::None }, Perm { dom: b, access: XsAccess::Read }];
        let dom0 = [
            Perm { dom: 0, access: XsAccess::None },
            Perm { dom: b, access: XsAccess::Read },
            Perm { dom: fe, access: XsAccess::Read },
        ];
        if new {
            xs(&format!("/local/domain/{fe}/domid"), &fe.to_string(), &fe_perms);
            xs(&fd, "", &fe_perms);
        }
        // The backend's directory first, then the pointers to it (`vgpu
        // restore` writes all of it in one transaction).
        xs(&format!("{be}/limits"), "", &dom0);
        for (k, v) in [
            ("ggtt-base", ggtt_base),
            ("ggtt-entries", ggtt_len),
            ("max-contexts", 4),
            ("max-pages", max_pages),
            ("max-table-pages", 64),
        ] {
            xs(&format!("{be}/limits/{k}"), &v.to_string(), &dom0);
        }
        xs(&be, "", &be_perms);
        xs(&format!("{be}/frontend"), &fd, &be_perms);
        xs(&format!("{be}/frontend-id"), &fe.to_string(), &be_perms);
        xs(&format!("{be}/online"), "1", &be_perms);
        xs(&format!("{be}/state"), "1", &be_perms);
        xs(&format!("{fd}/backend"), &be, &fe_perms);
        xs(&format!("{fd}/backend-id"), &b.to_string(), &fe_perms);
        if new {
            xs(&format!("{fd}/state"), "1", &fe_perms);
        }
    }

    /// `vgpu <line>` as dom0 (the real toolstack, as a library): exit
    /// code, standard output, standard error.
    pub fn vgpu(&self, line: &str) -> (u8, String, String) {
        let args: Vec<String> = line.split_whitespace().map(str::to_string).collect();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let xs = self.xenstored.clone();
        let code = vgpu::main_with(
            &args,
            move || Ok(vgpu::Store::new(Client::new(xs.connect(0)))),
            &mut out,
            &mut err,
        );
        (code, String::from_utf8_lossy(&out).into(), String::from_utf8_lossy(&err).into())
    }

    /// gpu-dom's `state` for guest `fe`'s device 0.
    pub fn be_state(&self, fe: u16) -> Option<String> {
        self.xenstored.read(&format!("/local/domain/{}/backend/vgpu/{fe}/0/state", self.backend))
    }
}
