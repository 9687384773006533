//! Installing the hook, git-lfs style; idempotent; upgrades its own older wrapper; never
//! overwrites a hook it did not write unless asked to chain it; uninstall removes only what it
//! installed and puts a chained hook back byte for byte.
//!
//! Two forms (templates in `hooks/` of this source tree). Normally the hook is a `#!` file whose
//! interpreter is our binary (`hooks/post-receive.direct`): the kernel starts the binary directly,
//! which saves a shell start (about 1.5 ms) on every push. When a foreign hook is chained, or the
//! binary's path cannot go on a `#!` line (whitespace, too long), it is the `sh` wrapper
//! (`hooks/post-receive`), which also names the fix itself when the binary is missing; with the
//! direct form git reports "cannot exec", and `status` names the missing binary.
//!
//! `install.sh` calls `git-pushmirror install`, so there is one implementation of all this.

use std::fs;
use std::path::{Path, PathBuf};

const TEMPLATE: &str = include_str!("../hooks/post-receive");
const DIRECT_TEMPLATE: &str = include_str!("../hooks/post-receive.direct");
/// Linux reads at most 256 bytes of a `#!` line since 5.1, 128 before: stay within the older.
const MAX_SHEBANG: usize = 127;
/// Marks a file as ours, whatever its version.
const MARKER: &str = "# git-pushmirror post-receive wrapper";
const CHAINED_SUFFIX: &str = ".pushmirror-chained";
/// Our file's name inside a `post-receive.d/` directory.
const DROP_IN: &str = "git-pushmirror";

#[derive(Debug, PartialEq, Eq)]
pub enum Installed {
    Fresh(PathBuf),
    /// Already installed, byte for byte: nothing written.
    Unchanged(PathBuf),
    /// An older or different wrapper of ours was replaced.
    Upgraded(PathBuf),
    Chained {
        hook: PathBuf,
        chained: PathBuf,
    },
}

/// The directory git runs this repository's hooks from: `core.hooksPath` if set (relative to
/// the repository, as git takes it for a bare repository), else `$GIT_DIR/hooks`.
pub fn hooks_dir(git_dir: &Path) -> PathBuf {
    std::process::Command::new("git")
        .arg("--git-dir")
        .arg(git_dir)
        .args(["config", "--type=path", "--get", "core.hooksPath"])
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
        .unwrap_or_else(|| git_dir.join("hooks"))
}

/// Where our hook goes in a hooks directory: `git-pushmirror` inside a `post-receive.d/`
/// directory; in a plain hooks directory, `post-receive.d/git-pushmirror` when a foreign
/// `post-receive` sits next to a `post-receive.d/` (a dispatcher, as Gitea writes), else
/// `post-receive` itself.
pub fn hook_in_dir(dir: &Path) -> PathBuf {
    if dir.file_name().is_some_and(|n| n == "post-receive.d") {
        return dir.join(DROP_IN);
    }
    let main = dir.join("post-receive");
    let drop_ins = dir.join("post-receive.d");
    if drop_ins.is_dir() && fs::symlink_metadata(&main).is_ok() && !is_ours(&main) {
        return drop_ins.join(DROP_IN);
    }
    main
}

/// Where post-receive lives for this repository: GitLab's `custom_hooks/post-receive.d/` when
/// the repository has a `custom_hooks/` directory (Gitaly runs those, not `hooks/`); else in
/// the hooks directory git uses (see `hook_in_dir`).
pub fn hook_path(git_dir: &Path) -> PathBuf {
    let custom = git_dir.join("custom_hooks");
    if custom.is_dir() {
        return custom.join("post-receive.d").join(DROP_IN);
    }
    hook_in_dir(&hooks_dir(git_dir))
}

/// Every place an earlier install may have put our hook for this repository (the layout can
/// change after installing, e.g. a `post-receive.d/` created later), for `uninstall`.
fn candidates(git_dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![hook_path(git_dir)];
    for dir in [hooks_dir(git_dir), git_dir.join("hooks")] {
        out.push(dir.join("post-receive"));
        out.push(dir.join("post-receive.d").join(DROP_IN));
    }
    out.push(git_dir.join("custom_hooks/post-receive.d").join(DROP_IN));
    let mut seen = Vec::new();
    out.retain(|p| {
        let new = !seen.contains(p);
        seen.push(p.clone());
        new
    });
    out
}

fn chained_of(hook: &Path) -> PathBuf {
    PathBuf::from(format!("{}{CHAINED_SUFFIX}", hook.display()))
}

fn render(bin: &Path, chained: Option<&Path>) -> String {
    if chained.is_none() {
        if let Some(b) = shebang_safe(bin) {
            return DIRECT_TEMPLATE.replace("@BIN@", b);
        }
    }
    let q = |p: &Path| p.display().to_string().replace('\'', "'\\''");
    TEMPLATE
        .replace("@BIN@", &q(bin))
        .replace("@CHAINED@", &chained.map(q).unwrap_or_default())
}

/// `bin` as it can stand on a `#!` line: absolute, UTF-8, no whitespace or control character
/// (the kernel splits the line at the first blank), and short enough for every kernel.
fn shebang_safe(bin: &Path) -> Option<&str> {
    let s = bin.to_str()?;
    let ok = bin.is_absolute()
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
        && format!("#!{s} post-receive").len() <= MAX_SHEBANG;
    ok.then_some(s)
}

/// The binary one of our hook files runs: the `#!` interpreter of the direct form, or the
/// `bin='...'` of the sh wrapper.
fn hook_binary(text: &str) -> Option<PathBuf> {
    let first = text.lines().next()?;
    if let Some(b) = first
        .strip_prefix("#!")
        .and_then(|l| l.strip_suffix(" post-receive"))
    {
        return Some(PathBuf::from(b));
    }
    let quoted = text.lines().find_map(|l| l.strip_prefix("bin='"))?;
    let quoted = quoted.strip_suffix('\'')?;
    Some(PathBuf::from(quoted.replace("'\\''", "'")))
}

fn is_ours(path: &Path) -> bool {
    fs::read_to_string(path)
        .map(|t| t.contains(MARKER))
        .unwrap_or(false)
}

fn is_symlink(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
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
    install_at(&hook_path(git_dir), bin, chain)
}

/// Installs the wrapper as the file `hook` (see `hook_in_dir` for a hooks directory shared by
/// many repositories, such as Gitolite's `~/.gitolite/hooks/common`).
pub fn install_at(hook: &Path, bin: &Path, chain: bool) -> Result<Installed, String> {
    // A symlink to our wrapper (Gitolite links its common hooks into every repository) is
    // upgraded where it points, so the link and every repository sharing it stay intact.
    let hook = if is_symlink(hook) && is_ours(hook) {
        fs::canonicalize(hook).map_err(|e| format!("{}: {e}", hook.display()))?
    } else {
        hook.to_path_buf()
    };
    let chained = chained_of(&hook);
    let existing_chain = fs::symlink_metadata(&chained)
        .is_ok()
        .then_some(chained.as_path());
    if fs::symlink_metadata(&hook).is_err() {
        write_hook(&hook, &render(bin, existing_chain))?;
        return Ok(Installed::Fresh(hook));
    }
    if is_ours(&hook) {
        let text = render(bin, existing_chain);
        if fs::read_to_string(&hook).is_ok_and(|t| t == text)
            && crate::paths::mode_of(&hook).is_some_and(|m| m & 0o111 != 0)
        {
            return Ok(Installed::Unchanged(hook));
        }
        write_hook(&hook, &text)?;
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

/// Removes our wrapper from every place an install may have put it for `git_dir`, putting a
/// chained hook back. Returns what was removed (empty: nothing of ours was there).
pub fn uninstall(git_dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut removed = Vec::new();
    for hook in candidates(git_dir) {
        if let Some(p) = uninstall_at(&hook)? {
            removed.push(p);
        }
    }
    Ok(removed)
}

/// Removes our wrapper at `hook` and puts a chained hook back where it was, byte for byte (it is
/// renamed, not copied). A foreign hook is never touched. A symlink to our wrapper is removed as a
/// link: the shared file it points to is left to its own `uninstall --hooks-dir`.
pub fn uninstall_at(hook: &Path) -> Result<Option<PathBuf>, String> {
    if !is_ours(hook) {
        return Ok(None);
    }
    let chained = chained_of(hook);
    if !is_symlink(hook) && fs::symlink_metadata(&chained).is_ok() {
        fs::rename(&chained, hook).map_err(|e| format!("{}: {e}", chained.display()))?;
    } else {
        fs::remove_file(hook).map_err(|e| format!("{}: {e}", hook.display()))?;
    }
    Ok(Some(hook.to_path_buf()))
}

/// For status: whether the hook is installed where git will run it, is executable, and the
/// binary it runs is there; the problem otherwise, as a one-line fix.
pub fn check(git_dir: &Path) -> Result<(), String> {
    check_at(&hook_path(git_dir))
}

/// `check` for a hook file whose place is already known.
pub fn check_at(hook: &Path) -> Result<(), String> {
    let hook = hook.to_path_buf();
    let text = fs::read_to_string(&hook).unwrap_or_default();
    if !text.contains(MARKER) {
        return Err(
            "the post-receive hook is not installed: pushes are not mirrored (git-pushmirror install)"
                .into(),
        );
    }
    if crate::paths::mode_of(&hook).is_none_or(|m| m & 0o111 == 0) {
        return Err(format!(
            "{} is not executable: git skips it (git-pushmirror install)",
            hook.display()
        ));
    }
    match hook_binary(&text) {
        Some(bin) if crate::paths::mode_of(&bin).is_some_and(|m| m & 0o111 != 0) => Ok(()),
        Some(bin) => Err(format!(
            "{} runs {}, which is missing: pushes are not mirrored (reinstall, then git-pushmirror install and sync)",
            hook.display(),
            bin.display()
        )),
        None => Err(format!(
            "{} is an unreadable git-pushmirror hook (git-pushmirror install)",
            hook.display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_in_directory_only_behind_a_foreign_dispatcher() {
        let t = tempfile::tempdir().unwrap();
        let hooks = t.path().join("hooks");
        fs::create_dir_all(hooks.join("post-receive.d")).unwrap();
        // No dispatcher: git runs hooks/post-receive itself.
        assert_eq!(hook_in_dir(&hooks), hooks.join("post-receive"));
        fs::write(
            hooks.join("post-receive"),
            "#!/bin/sh\nfor h in post-receive.d/*; do :; done\n",
        )
        .unwrap();
        assert_eq!(
            hook_in_dir(&hooks),
            hooks.join("post-receive.d/git-pushmirror")
        );
        assert_eq!(
            hook_in_dir(&hooks.join("post-receive.d")),
            hooks.join("post-receive.d/git-pushmirror")
        );
    }

    #[test]
    fn direct_form_when_the_path_fits_a_shebang_line_else_the_sh_wrapper() {
        let direct = render(Path::new("/usr/local/bin/git-pushmirror"), None);
        assert!(direct.starts_with("#!/usr/local/bin/git-pushmirror post-receive\n"));
        assert!(direct.contains(MARKER) && !direct.contains("@BIN@"));
        let long = format!("/{}/git-pushmirror", "d".repeat(120));
        for bin in [
            "relative/git-pushmirror",
            "/opt/my tools/git-pushmirror",
            &long,
        ] {
            let text = render(Path::new(bin), None);
            assert!(text.starts_with("#!/bin/sh\n"), "{bin}: {text}");
            assert_eq!(hook_binary(&text), Some(PathBuf::from(bin)), "{bin}");
        }
        // A chained hook always goes through sh, which runs it first.
        let chained = render(
            Path::new("/usr/local/bin/git-pushmirror"),
            Some(Path::new("/r/hooks/post-receive.pushmirror-chained")),
        );
        assert!(chained.starts_with("#!/bin/sh\n"));
        assert_eq!(
            hook_binary(&direct),
            Some(PathBuf::from("/usr/local/bin/git-pushmirror"))
        );
        assert_eq!(
            hook_binary(&render(Path::new("/o'dd/git-pushmirror"), None)),
            Some(PathBuf::from("/o'dd/git-pushmirror"))
        );
    }

    #[test]
    fn install_upgrade_chain_uninstall_roundtrip() {
        let t = tempfile::tempdir().unwrap();
        let hook = t.path().join("hooks/post-receive");
        let bin = Path::new("/opt/pm/bin/git-pushmirror");
        assert_eq!(
            install_at(&hook, bin, false),
            Ok(Installed::Fresh(hook.clone()))
        );
        assert_eq!(
            install_at(&hook, bin, false),
            Ok(Installed::Unchanged(hook.clone()))
        );
        let other = Path::new("/usr/bin/git-pushmirror");
        assert_eq!(
            install_at(&hook, other, false),
            Ok(Installed::Upgraded(hook.clone()))
        );
        assert!(fs::read_to_string(&hook)
            .unwrap()
            .contains("/usr/bin/git-pushmirror"));
        assert_eq!(uninstall_at(&hook), Ok(Some(hook.clone())));
        assert!(!hook.exists());

        let foreign = "#!/bin/sh\necho foreign\n";
        fs::write(&hook, foreign).unwrap();
        assert!(install_at(&hook, bin, false)
            .unwrap_err()
            .contains("--chain"));
        assert_eq!(fs::read_to_string(&hook).unwrap(), foreign);
        assert!(matches!(
            install_at(&hook, bin, true),
            Ok(Installed::Chained { .. })
        ));
        assert_eq!(
            install_at(&hook, bin, true),
            Ok(Installed::Unchanged(hook.clone()))
        );
        assert_eq!(uninstall_at(&hook), Ok(Some(hook.clone())));
        assert_eq!(fs::read_to_string(&hook).unwrap(), foreign);
        assert_eq!(uninstall_at(&hook), Ok(None));
        assert_eq!(fs::read_to_string(&hook).unwrap(), foreign);
    }
}
