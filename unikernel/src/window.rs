//! Slot bookkeeping for the foreign-grant window: which GFNs of the window
//! hold a mapped grant; and the token that mapping into the window needs.
//!
//! # Invariants
//! - A slot is handed out at most once until it is released.
//! - A GFN converts back to a slot only if it lies inside the window.
//! - One [`WindowToken`] exists per domain: the unikernel makes it once
//!   with the window (`Kernel::take_grant_window`); no other code can.
#![forbid(unsafe_code)]

extern crate alloc;
use alloc::vec;
use alloc::vec::Vec;

/// The right to make a guest page GPU-reachable: `GrantWindow::map` and
/// `unmap` (the foreign-grant window is what the IOMMU lets the GPU reach)
/// take one. Only the unikernel can construct it, once, and it is neither
/// `Clone` nor `Copy`: gpu-dom's platform edge keeps it inside its one
/// `gtt::GrantMapper`, whose methods in turn need `gtt`'s `MappingCap`. So
/// no code but `gtt` can create a window mapping.
///
/// ```compile_fail
/// // Outside the unikernel a token cannot be made...
/// let token = unikernel::window::WindowToken(());
/// ```
/// ```compile_fail
/// // ...nor by its constructor...
/// let token = unikernel::window::WindowToken::new();
/// ```
/// ```compile_fail
/// // ...nor copied from the one that exists.
/// fn copy(t: &unikernel::window::WindowToken) -> unikernel::window::WindowToken { t.clone() }
/// ```
#[derive(Debug)]
pub struct WindowToken(());

impl WindowToken {
    /// The one token (see `Kernel::init_grant_table`).
    #[cfg_attr(not(target_os = "none"), allow(dead_code))]
    pub(crate) const fn new() -> Self {
        WindowToken(())
    }
}

/// The window `[base_gfn, base_gfn + frames)` and its free/used bitmap.
#[derive(Clone, Debug)]
pub struct Window {
    base_gfn: u64,
    frames: u64,
    used: Vec<u64>,
    in_use: u64,
    hint: u64,
}

impl Window {
    /// A window of `frames` GFNs starting at `base_gfn` (allocates the bitmap).
    pub fn new(base_gfn: u64, frames: u64) -> Self {
        Window { base_gfn, frames, used: vec![0; frames.div_ceil(64) as usize], in_use: 0, hint: 0 }
    }

    /// Takes a free GFN.
    pub fn take(&mut self) -> Option<u64> {
        for i in 0..self.frames {
            let s = (self.hint + i) % self.frames;
            let (w, b) = ((s / 64) as usize, s % 64);
            if self.used[w] & (1 << b) == 0 {
                self.used[w] |= 1 << b;
                self.in_use += 1;
                self.hint = (s + 1) % self.frames;
                return Some(self.base_gfn + s);
            }
        }
        None
    }

    /// Returns `gfn` to the pool; false if it was not a used window GFN.
    pub fn release(&mut self, gfn: u64) -> bool {
        let Some(s) = gfn.checked_sub(self.base_gfn).filter(|s| *s < self.frames) else {
            return false;
        };
        let (w, b) = ((s / 64) as usize, s % 64);
        if self.used[w] & (1 << b) == 0 {
            return false;
        }
        self.used[w] &= !(1 << b);
        self.in_use -= 1;
        true
    }

    /// True when `gfn` is inside the window.
    pub fn contains(&self, gfn: u64) -> bool {
        gfn.checked_sub(self.base_gfn).is_some_and(|s| s < self.frames)
    }

    /// The first GFN and the number of frames.
    pub fn range(&self) -> (u64, u64) {
        (self.base_gfn, self.frames)
    }

    /// GFNs currently handed out.
    pub fn in_use(&self) -> u64 {
        self.in_use
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_slot_is_handed_out_once_then_the_window_is_full() {
        let mut w = Window::new(0x100, 70);
        let mut got: Vec<u64> = core::iter::from_fn(|| w.take()).collect();
        got.sort();
        assert_eq!(got, (0x100..0x100 + 70).collect::<Vec<_>>());
        assert_eq!(w.take(), None);
        assert_eq!(w.in_use(), 70);
    }

    #[test]
    fn release_refuses_foreign_and_free_gfns() {
        let mut w = Window::new(0x100, 8);
        let g = w.take().unwrap();
        assert!(!w.release(0x99));
        assert!(!w.release(0x108));
        assert!(!w.release(g + 1));
        assert!(w.release(g));
        assert!(!w.release(g), "double release");
        assert_eq!(w.in_use(), 0);
        assert!(w.contains(0x107) && !w.contains(0x108));
    }
}
