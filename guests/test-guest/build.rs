//! Links the test guest with the unikernel's linker script (the same layout as
//! gpu-dom, non-PIE) when built for `x86_64-unknown-none`, but loaded at
//! 1 MiB, not 16: the test guest is PVH only, and at 1 MiB it boots in a few
//! MiB of RAM (why gpu-dom stays at 16 MiB: the linker script). Does nothing
//! for host builds (see `unikernel/link_image.rs`).

include!("../../unikernel/link_image.rs");

fn main() {
    link_pvh_image_at("../../unikernel", Some(0x10_0000));
}
