//! The host world for the frontend's tests: the one world of
//! `gpu-dom-tests` (the real backend service, the model xenstored and Xen's
//! event channels on the platform model), re-exported.
#![allow(dead_code)]

use std::cell::RefCell;
use std::rc::Rc;

pub use gpu_dom_tests::world;
pub use world::{frontend, World};

/// Console lines collected by a test.
#[derive(Clone, Default)]
pub struct Lines(pub Rc<RefCell<Vec<String>>>);

impl Lines {
    pub fn console(&self) -> impl FnMut(&str) {
        let lines = self.0.clone();
        move |l: &str| lines.borrow_mut().push(l.to_string())
    }
    pub fn all(&self) -> Vec<String> {
        self.0.borrow().clone()
    }
    pub fn has(&self, line: &str) -> bool {
        self.0.borrow().iter().any(|l| l == line)
    }
}
