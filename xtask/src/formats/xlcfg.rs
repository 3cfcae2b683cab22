//! Reading and adjusting an `xl` domain config (xl.cfg(5)) without a full
//! parser: top-level `key = "string"` settings, one per line.

/// The top-level string setting `key` (`name = "gpu-dom"` -> `gpu-dom`).
pub fn get_string(cfg: &str, key: &str) -> Option<String> {
    cfg.lines().find_map(|l| setting(l, key)).map(|(_, v)| v)
}

/// `Some((indent, value))` when `line` sets `key` to a quoted string.
fn setting(line: &str, key: &str) -> Option<(usize, String)> {
    let code = line.split('#').next().unwrap_or("");
    let trimmed = code.trim_start();
    let rest = trimmed.strip_prefix(key)?.trim_start().strip_prefix('=')?.trim();
    let quote = rest.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let value = rest[1..].split(quote).next()?;
    Some((code.len() - trimmed.len(), value.to_string()))
}

/// `cfg` with its one top-level `kernel = "..."` pointing at `kernel`.
pub fn with_kernel(cfg: &str, kernel: &str) -> Result<String, String> {
    let hits = cfg.lines().filter(|l| setting(l, "kernel").is_some()).count();
    if hits != 1 {
        return Err(format!("expected exactly one `kernel = \"...\"` setting, found {hits}"));
    }
    let mut out = String::with_capacity(cfg.len() + kernel.len());
    for line in cfg.lines() {
        match setting(line, "kernel") {
            Some((indent, _)) => {
                out.push_str(&format!("{}kernel = \"{kernel}\"", " ".repeat(indent)))
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    Ok(out)
}

/// `cfg` with `key = "value"`: the existing setting replaced, or appended.
pub fn with_string(cfg: &str, key: &str, value: &str) -> String {
    let mut out = String::with_capacity(cfg.len() + value.len() + key.len() + 8);
    let mut found = false;
    for line in cfg.lines() {
        match setting(line, key) {
            Some((indent, _)) => {
                found = true;
                out.push_str(&format!("{}{key} = \"{value}\"", " ".repeat(indent)));
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    if !found {
        out.push_str(&format!("{key} = \"{value}\"\n"));
    }
    out
}

/// `cfg` with `key = value` (a number): an existing `key = ...` line
/// replaced, or the setting appended.
pub fn with_number(cfg: &str, key: &str, value: u64) -> String {
    let sets_key = |line: &str| {
        let code = line.split('#').next().unwrap_or("").trim_start();
        code.strip_prefix(key).is_some_and(|r| r.trim_start().starts_with('='))
    };
    let mut out = String::with_capacity(cfg.len() + key.len() + 24);
    let mut found = false;
    for line in cfg.lines() {
        if sets_key(line) {
            found = true;
            out.push_str(&format!("{key} = {value}"));
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    if !found {
        out.push_str(&format!("{key} = {value}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_number_replaces_the_setting_or_appends_it() {
        let cfg = "name = \"g\"\nmemory = 32   # MiB\n# memory = 8\nmemory_extra = 1\n";
        let out = with_number(cfg, "memory", 256);
        assert_eq!(out, "name = \"g\"\nmemory = 256\n# memory = 8\nmemory_extra = 1\n");
        assert_eq!(with_number("name = \"g\"\n", "vcpus", 2), "name = \"g\"\nvcpus = 2\n");
    }

    const CFG: &str = "# gpu-dom\n# kernel = \"/not/this\"\nname = \"gpu-dom\"\ntype = \"pvh\"\nkernel = \"target/x86_64-unknown-none/release/gpu-dom\"   # built by cargo xtask build\nmemory = 64\n";

    #[test]
    fn kernel_path_is_rewritten_and_comments_are_left_alone() {
        let out = with_kernel(CFG, "/usr/lib/gpu-dom/gpu-dom").unwrap();
        assert!(out.contains("\nkernel = \"/usr/lib/gpu-dom/gpu-dom\"\n"), "{out}");
        assert!(out.contains("# kernel = \"/not/this\""));
        assert!(!out.contains("target/x86_64"));
        assert_eq!(get_string(&out, "kernel").unwrap(), "/usr/lib/gpu-dom/gpu-dom");
        assert!(out.contains("memory = 64"));
    }

    #[test]
    fn with_string_replaces_a_setting_or_appends_it() {
        let out = with_string(CFG, "name", "guest1");
        assert_eq!(get_string(&out, "name").as_deref(), Some("guest1"));
        assert_eq!(out.matches("name = ").count(), 1);
        let out = with_string(&out, "cmdline", "mode=good pages=300");
        assert!(out.ends_with("cmdline = \"mode=good pages=300\"\n"), "{out}");
    }

    #[test]
    fn string_settings_are_read_ignoring_comments() {
        assert_eq!(get_string(CFG, "name").as_deref(), Some("gpu-dom"));
        assert_eq!(get_string(CFG, "type").as_deref(), Some("pvh"));
        assert_eq!(get_string("name='x' # c", "name").as_deref(), Some("x"));
        assert_eq!(get_string(CFG, "memory"), None);
        assert_eq!(get_string("# name = \"no\"", "name"), None);
    }

    #[test]
    fn a_config_without_or_with_two_kernel_lines_is_refused() {
        assert!(with_kernel("name = \"a\"\n", "/k").is_err());
        assert!(with_kernel("kernel = \"a\"\nkernel = \"b\"\n", "/k").is_err());
    }
}
