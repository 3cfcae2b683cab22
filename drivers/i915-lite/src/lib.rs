//! (crate under construction)
#![cfg_attr(not(test), no_std)]
