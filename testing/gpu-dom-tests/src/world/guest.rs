//! A guest running the real `frontend` crate: its platform (pages and
//! grants in the guest's model memory, its event channels) steps the world
//! whenever the frontend waits.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use frontend::{EndAccessError, Frontend, Granted, Options, PageId, Platform};
use gtt::{DomId, GrantRef};
use platform_model::{Gfn, Guest};
use xenbus::Client;
use xenstored_model::Conn;

use super::World;

/// The frontend's platform: the guest's pages and grants on the model, its
/// ports, and the world to step when it waits.
pub struct TestPlatform {
    pub world: Rc<RefCell<World>>,
    pub guest: Guest,
    /// Our pages: the frame, and the grant while there is one.
    pages: BTreeMap<usize, (Gfn, Option<GrantRef>)>,
    next_page: usize,
    next_port: u32,
    xs_output: Rc<dyn Fn() -> bool>,
    /// Calls to `wait`.
    pub waits: u64,
    /// Calls to `notify`.
    pub notifies: u64,
}

impl Platform for TestPlatform {
    type Error = String;

    fn grant_page(&mut self, to: u16, read_only: bool) -> Result<Granted, String> {
        let gfn = self.guest.alloc_pages(1).map_err(|e| format!("{e:?}"))?[0];
        let gref = self.guest.grant(gfn, DomId(to), read_only).map_err(|e| format!("{e:?}"))?;
        self.next_page += 1;
        self.pages.insert(self.next_page, (gfn, Some(gref)));
        Ok(Granted { id: PageId(self.next_page), gref: gref.0, read_only })
    }

    fn end_access(&mut self, page: PageId) -> Result<(), EndAccessError> {
        self.end_grant(page)?;
        self.pages.remove(&page.0);
        Ok(())
    }

    fn end_grant(&mut self, page: PageId) -> Result<(), EndAccessError> {
        let entry = self.pages.get_mut(&page.0).ok_or(EndAccessError::UnknownPage(page))?;
        if let Some(gref) = entry.1 {
            if !self.guest.end_access(gref) {
                return Err(EndAccessError::StillMapped { gref: gref.0 });
            }
            entry.1 = None;
        }
        Ok(())
    }

    fn regrant(&mut self, page: PageId, to: u16, read_only: bool) -> Result<Granted, String> {
        self.end_grant(page).map_err(|e| e.to_string())?;
        let entry = self.pages.get_mut(&page.0).ok_or("not our page")?;
        let gref = self.guest.grant(entry.0, DomId(to), read_only).map_err(|e| format!("{e:?}"))?;
        entry.1 = Some(gref);
        Ok(Granted { id: page, gref: gref.0, read_only })
    }

    fn read(&self, page: PageId, offset: usize, buf: &mut [u8]) {
        let (gfn, _) = self.pages[&page.0];
        self.guest.read(gfn, offset, buf).expect("our page");
    }

    fn write(&mut self, page: PageId, offset: usize, data: &[u8]) {
        let (gfn, _) = self.pages[&page.0];
        self.guest.write(gfn, offset, data).expect("our page");
    }

    fn fence(&self) {}

    fn alloc_unbound(&mut self, remote: u16) -> Result<u32, String> {
        self.next_port += 1;
        let w = self.world.borrow();
        w.channels.borrow_mut().alloc_unbound(self.guest.dom(), self.next_port, DomId(remote));
        Ok(self.next_port)
    }

    fn notify(&mut self, port: u32) -> Result<(), String> {
        self.notifies += 1;
        let w = self.world.borrow();
        let mut ch = w.channels.borrow_mut();
        if !ch.is_open(self.guest.dom(), port) {
            return Err(format!("notify: port {port} is not open"));
        }
        ch.notify_from_guest(self.guest.dom(), port);
        Ok(())
    }

    fn close_port(&mut self, port: u32) -> Result<(), String> {
        let w = self.world.borrow();
        let mut ch = w.channels.borrow_mut();
        if !ch.is_open(self.guest.dom(), port) {
            return Err(format!("close: port {port} is not open"));
        }
        ch.close_guest(self.guest.dom(), port);
        Ok(())
    }

    fn now_ms(&mut self) -> u64 {
        self.world.borrow().clock.get()
    }

    fn wait(&mut self, deadline_ms: u64) -> Result<(), String> {
        self.waits += 1;
        assert!(self.waits < 200_000, "the frontend waits forever (clock {deadline_ms} ms)");
        let progressed = self.world.borrow_mut().step();
        let w = self.world.borrow();
        let fired = w.channels.borrow_mut().take_guest_pending(self.guest.dom());
        if !progressed && !fired && !(self.xs_output)() {
            // Nothing will happen by itself: time passes, up to the deadline
            // or the next thing scheduled, whichever comes first.
            let next = w.later.iter().map(|(t, _)| *t).min().unwrap_or(u64::MAX);
            w.clock.set(w.clock.get().max(deadline_ms.min(next)));
        }
        Ok(())
    }
}

/// The test frontend type.
pub type TestFrontend = Frontend<TestPlatform, Conn>;

/// A guest `dom` with `pages` pages of RAM and a frontend (not connected).
pub fn frontend(world: &Rc<RefCell<World>>, dom: u16, pages: u32, opts: Options) -> TestFrontend {
    let (guest, conn) = {
        let w = world.borrow();
        w.ensure_domain(dom);
        (w.model.create_guest(DomId(dom), pages).expect("guest"), w.xenstored.connect(dom))
    };
    let (store, id) = (world.borrow().xenstored.clone(), conn.id());
    let probe: Rc<dyn Fn() -> bool> = Rc::new(move || store.has_output(id));
    let platform = TestPlatform {
        world: world.clone(),
        guest,
        pages: BTreeMap::new(),
        next_page: 0,
        next_port: 0,
        xs_output: probe,
        waits: 0,
        notifies: 0,
    };
    Frontend::new(platform, Box::new(Client::new(conn)), opts)
}
