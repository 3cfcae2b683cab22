//! Links the test guest with the unikernel's linker script (the same layout as
//! gpu-dom: loaded at 16 MiB, non-PIE) when built for `x86_64-unknown-none`;
//! does nothing for host builds (see `unikernel/link_image.rs`).

include!("../../unikernel/link_image.rs");

fn main() {
    link_pvh_image("../../unikernel");
}
