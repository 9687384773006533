//! Installing the hook into a repository, git-lfs style: a small wrapper script that says what to
//! do when the binary is missing; idempotent; upgrades its own older wrapper; never overwrites a
//! hook it did not write unless asked to chain it; uninstall removes only what it installed.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

const TEMPLATE: &str = include_str!("../hooks/post-receive");
/// Marks a file as ours, whatever its version.
const MARKER: &str = "# git-pushmirror post-receive wrapper";
const CHAINED_SUFFIX: &str = ".pushmirror-chained";

#[derive(Debug, PartialEq, Eq)]
pub enum Installed {
    Fresh(PathBuf),
    Upgraded(PathBuf),
    Chained { hook: PathBuf, chained: PathBuf },
}

/// Where post-receive lives for this repository: `core.hooksPath` if set; a `post-receive.d/`
/// directory (Gitea, GitLab custom hooks) if one exists; else `hooks/post-receive`.
pub fn hook_path(git_dir: &Path) -> PathBuf {
    let hooks_dir = std::process::Command::new("git")
        .arg("--git-dir")
        .arg(git_dir)
        .args(["config", "--get", "core.hooksPath"])
        .env_remove("GIT_DIR")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
        .map(|s| {
            let p = PathBuf::from(s);
            if p.is_absolute() {
                p
            } else {
                git_dir.join(p)
            }
        })
        .unwrap_or_else(|| git_dir.join("hooks"));
    for d in [
        git_dir.join("custom_hooks/post-receive.d"),
        hooks_dir.join("post-receive.d"),
    ] {
        if d.is_dir() {
            return d.join("git-pushmirror");
        }
    }
    hooks_dir.join("post-receive")
}

fn render(bin: &Path, chained: Option<&Path>) -> String {
    let q = |p: &Path| p.display().to_string().replace('\'', "'\\''");
    TEMPLATE
        .replace("@BIN@", &q(bin))
        .replace("@CHAINED@", &chained.map(q).unwrap_or_default())
}

fn is_ours(path: &Path) -> bool {
    fs::read_to_string(path)
        .map(|t| t.contains(MARKER))
        .unwrap_or(false)
}

fn write_hook(path: &Path, text: &str) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    crate::paths::write_atomic(path, text.as_bytes(), 0o755)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Installs the wrapper for `bin` into `git_dir`. With `chain`, a foreign post-receive is kept
/// (renamed next to it) and run first with the same stdin.
pub fn install(git_dir: &Path, bin: &Path, chain: bool) -> Result<Installed, String> {
    let hook = hook_path(git_dir);
    let chained = PathBuf::from(format!("{}{CHAINED_SUFFIX}", hook.display()));
    let existing_chain = chained.exists().then_some(chained.as_path());
    if !hook.exists() && fs::symlink_metadata(&hook).is_err() {
        write_hook(&hook, &render(bin, existing_chain))?;
        return Ok(Installed::Fresh(hook));
    }
    if is_ours(&hook) {
        write_hook(&hook, &render(bin, existing_chain))?;
        return Ok(Installed::Upgraded(hook));
    }
    if !chain {
        return Err(format!(
            "{} exists and was not written by git-pushmirror; rerun with --chain to keep it (it will run first, with the same input)",
            hook.display()
        ));
    }
    if existing_chain.is_some() {
        return Err(format!(
            "{} already exists; move it away first",
            chained.display()
        ));
    }
    fs::rename(&hook, &chained).map_err(|e| format!("{}: {e}", hook.display()))?;
    if let Err(e) = write_hook(&hook, &render(bin, Some(&chained))) {
        let _ = fs::rename(&chained, &hook);
        return Err(e);
    }
    Ok(Installed::Chained { hook, chained })
}

/// Removes our wrapper and puts a chained hook back where it was, byte for byte.
pub fn uninstall(git_dir: &Path) -> Result<Option<PathBuf>, String> {
    let hook = hook_path(git_dir);
    if !is_ours(&hook) {
        return Ok(None);
    }
    let chained = PathBuf::from(format!("{}{CHAINED_SUFFIX}", hook.display()));
    if chained.exists() {
        fs::rename(&chained, &hook).map_err(|e| format!("{}: {e}", chained.display()))?;
    } else {
        fs::remove_file(&hook).map_err(|e| format!("{}: {e}", hook.display()))?;
    }
    Ok(Some(hook))
}

/// For status: whether the hook is installed and points at an existing binary.
pub fn installed(git_dir: &Path) -> bool {
    let hook = hook_path(git_dir);
    is_ours(&hook)
        && fs::metadata(&hook)
            .map(|m| m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
}
