//! Which kernel modules dom0 must `insmod`, in which order.
//!
//! Debian's kernel package ships `modules.order` and `modules.builtin` but no
//! `modules.dep` (depmod runs in its postinst, which we never run), so a
//! module's dependencies come from its own `.modinfo` section (`depends=`).
//!
//! Invariants: a built-in module is never loaded; every module in the plan
//! comes after all the modules it depends on; a dependency cycle or a module
//! that is neither built in nor shipped is an error naming it.

use crate::error::{Error, Result};
use crate::formats::elf::Elf;
use std::collections::BTreeSet;
use std::path::Path;

/// The kernel's `modules.order` and `modules.builtin`.
#[derive(Debug, Default)]
pub struct ModuleIndex {
    /// Module files relative to `/lib/modules/<release>/`.
    shipped: Vec<String>,
    builtin: BTreeSet<String>,
}

/// The canonical name of a module path: `kernel/drivers/xen/xen-evtchn.ko` -> `xen_evtchn`.
pub fn module_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    let stem = file.split(".ko").next().unwrap_or(file);
    stem.replace('-', "_")
}

impl ModuleIndex {
    pub fn parse(modules_order: &str, modules_builtin: &str) -> Self {
        let lines = |s: &str| {
            s.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect::<Vec<_>>()
        };
        ModuleIndex {
            shipped: lines(modules_order),
            builtin: lines(modules_builtin).iter().map(|p| module_name(p)).collect(),
        }
    }

    fn find(&self, name: &str) -> Option<&str> {
        let want = module_name(name);
        self.shipped.iter().map(String::as_str).find(|p| module_name(p) == want)
    }
}

/// A module file to load.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Load {
    pub name: String,
    /// Relative to `/lib/modules/<release>/`.
    pub path: String,
}

/// What to do for the wanted modules.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// In load order.
    pub load: Vec<Load>,
    /// Wanted modules that are built into the kernel.
    pub builtin: Vec<String>,
}

/// The `depends=` list of a module's `.modinfo` bytes.
pub fn modinfo_depends(modinfo: &[u8]) -> Vec<String> {
    modinfo
        .split(|&b| b == 0)
        .filter_map(|kv| kv.strip_prefix(b"depends="))
        .flat_map(|v| String::from_utf8_lossy(v).split(',').map(str::to_string).collect::<Vec<_>>())
        .filter(|d| !d.is_empty())
        .collect()
}

/// Reads a module file's dependencies from its `.modinfo` section.
pub fn depends_of_file(path: &Path) -> Result<Vec<String>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io("reading", path, e))?;
    let elf = Elf::parse(&bytes).map_err(|source| Error::Elf { path: path.into(), source })?;
    let info = elf
        .section_by_name(".modinfo")
        .map_err(|source| Error::Elf { path: path.into(), source })?;
    Ok(info.map(modinfo_depends).unwrap_or_default())
}

/// Plans loading `wanted`: built-ins are skipped, dependencies come first.
/// `depends_of` gets a module path (relative to the modules directory).
pub fn plan(
    wanted: &[&str],
    index: &ModuleIndex,
    mut depends_of: impl FnMut(&str) -> Result<Vec<String>>,
) -> Result<Plan> {
    fn visit(
        name: &str,
        index: &ModuleIndex,
        depends_of: &mut dyn FnMut(&str) -> Result<Vec<String>>,
        stack: &mut Vec<String>,
        plan: &mut Plan,
        wanted_directly: bool,
    ) -> Result<()> {
        let canon = module_name(name);
        if index.builtin.contains(&canon) {
            if wanted_directly && !plan.builtin.contains(&canon) {
                plan.builtin.push(canon);
            }
            return Ok(());
        }
        if plan.load.iter().any(|l| l.name == canon) {
            return Ok(());
        }
        if stack.contains(&canon) {
            return Err(Error::KernelModule {
                module: canon,
                reason: format!("dependency cycle: {}", stack.join(" -> ")),
            });
        }
        let path = index.find(&canon).ok_or_else(|| Error::KernelModule {
            module: canon.clone(),
            reason: "neither in modules.order nor in modules.builtin".into(),
        })?;
        if !path.ends_with(".ko") {
            return Err(Error::KernelModule {
                module: canon,
                reason: format!("{path} is compressed; busybox insmod loads plain .ko files only"),
            });
        }
        let path = path.to_string();
        stack.push(canon.clone());
        for dep in depends_of(&path)? {
            visit(&dep, index, depends_of, stack, plan, false)?;
        }
        stack.pop();
        plan.load.push(Load { name: canon, path });
        Ok(())
    }
    let mut out = Plan::default();
    for w in wanted {
        visit(w, index, &mut depends_of, &mut Vec::new(), &mut out, true)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORDER: &str = "kernel/drivers/xen/xen-evtchn.ko
kernel/drivers/xen/xen-privcmd.ko
kernel/drivers/xen/xenfs/xenfs.ko
kernel/drivers/xen/xen-gntdev.ko
";
    const BUILTIN: &str =
        "kernel/drivers/xen/xenbus/xenbus.ko\nkernel/drivers/xen/xen-balloon.ko\n";

    fn deps(path: &str) -> Result<Vec<String>> {
        Ok(match path {
            "kernel/drivers/xen/xenfs/xenfs.ko" => vec!["xen-privcmd".into()],
            "kernel/drivers/xen/xen-gntdev.ko" => vec!["xenbus".into()],
            _ => vec![],
        })
    }

    #[test]
    fn module_names_ignore_directories_suffixes_and_dashes() {
        assert_eq!(module_name("kernel/drivers/xen/xen-evtchn.ko"), "xen_evtchn");
        assert_eq!(module_name("kernel/fs/foo.ko.xz"), "foo");
        assert_eq!(module_name("xen-privcmd"), "xen_privcmd");
    }

    #[test]
    fn dependencies_load_before_the_modules_that_need_them() {
        let idx = ModuleIndex::parse(ORDER, BUILTIN);
        let p = plan(&["xenfs", "xen-evtchn"], &idx, deps).unwrap();
        let names: Vec<_> = p.load.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["xen_privcmd", "xenfs", "xen_evtchn"]);
        assert_eq!(p.load[1].path, "kernel/drivers/xen/xenfs/xenfs.ko");
    }

    #[test]
    fn builtin_modules_are_reported_not_loaded() {
        let idx = ModuleIndex::parse(ORDER, BUILTIN);
        let p = plan(&["xen-gntdev", "xen-balloon"], &idx, deps).unwrap();
        assert_eq!(
            p.load,
            [Load { name: "xen_gntdev".into(), path: "kernel/drivers/xen/xen-gntdev.ko".into() }]
        );
        assert_eq!(p.builtin, ["xen_balloon"]);
    }

    #[test]
    fn a_module_wanted_twice_loads_once() {
        let idx = ModuleIndex::parse(ORDER, BUILTIN);
        let p = plan(&["xen-privcmd", "xenfs", "xen_privcmd"], &idx, deps).unwrap();
        assert_eq!(p.load.len(), 2);
    }

    #[test]
    fn unknown_modules_and_cycles_are_errors_naming_the_module() {
        let idx = ModuleIndex::parse("a.ko\nb.ko\n", "");
        let e = plan(&["nope"], &idx, |_| Ok(vec![])).unwrap_err();
        assert!(e.to_string().contains("nope"), "{e}");
        let cyc = plan(&["a"], &idx, |p| Ok(vec![if p == "a.ko" { "b" } else { "a" }.into()]))
            .unwrap_err();
        assert!(cyc.to_string().contains("cycle"), "{cyc}");
    }

    #[test]
    fn compressed_modules_are_refused_with_a_reason() {
        let idx = ModuleIndex::parse("kernel/x/xenfs.ko.xz\n", "");
        let e = plan(&["xenfs"], &idx, |_| Ok(vec![])).unwrap_err();
        assert!(e.to_string().contains("compressed"), "{e}");
    }

    #[test]
    fn modinfo_depends_reads_the_comma_list() {
        assert_eq!(
            modinfo_depends(b"license=GPL\0depends=xen-privcmd,xenbus\0name=xenfs\0"),
            ["xen-privcmd", "xenbus"]
        );
        assert!(modinfo_depends(b"depends=\0").is_empty());
    }

    #[test]
    fn depends_are_read_from_a_module_file() {
        let t = crate::testdir::TestDir::new("kmod");
        t.file(
            "xenfs.ko",
            &crate::formats::elf::testing::module_elf(&["depends=xen-privcmd", "name=xenfs"]),
        );
        assert_eq!(depends_of_file(&t.path("xenfs.ko")).unwrap(), ["xen-privcmd"]);
    }
}
