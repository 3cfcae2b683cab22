//! Where the xtask keeps things: always under the workspace's own `target/`
//! (whatever `CARGO_TARGET_DIR` says), so caches and logs are found in one place.

use std::path::{Path, PathBuf};

use crate::debian::dom0::Cache;

#[derive(Clone, Debug)]
pub struct Paths {
    /// The workspace root.
    pub root: PathBuf,
    /// `<root>/target`
    pub target: PathBuf,
    /// `<root>/target/xen-cache`: Debian packages, unpacked, by version.
    pub cache: Cache,
    /// `<root>/target/boot`: one directory per boot stage, plus `logs/`.
    pub boot: PathBuf,
}

impl Paths {
    pub fn from_root(root: &Path) -> Self {
        let target = root.join("target");
        Paths {
            root: root.into(),
            cache: Cache { root: target.join("xen-cache") },
            boot: target.join("boot"),
            target,
        }
    }

    /// The workspace this xtask was built from.
    pub fn workspace() -> Self {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        Self::from_root(manifest.parent().unwrap_or(manifest))
    }

    pub fn boot_logs(&self) -> PathBuf {
        self.boot.join("logs")
    }

    pub fn stage(&self, name: &str) -> PathBuf {
        self.boot.join(name)
    }

    /// `path` relative to the workspace root when it is inside it (for messages).
    pub fn show(&self, path: &Path) -> String {
        path.strip_prefix(&self.root).unwrap_or(path).display().to_string()
    }
}
