//! The administration CLI (the "remote mirrors API"): add/list/show/set/remove/enable/disable,
//! sync, status, sweep, install/uninstall, plus the hook and flusher entry points.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use serde_json::{json, Value};

use crate::config::Auth;
use crate::config::{self, Dur, MirrorConfig, RepoConfig};
use crate::paths::RepoPaths;
use crate::spool::Spool;
use crate::state::{self, UpdateStatus};
use crate::url;

mod args;
#[cfg(test)]
mod generated;
mod install;
mod mirrors;
mod ops;
mod sshsetup;
mod status;
mod sweep;
mod sync;

use args::*;
use install::*;
use mirrors::*;
use ops::*;
use sshsetup::*;
use status::*;
use sweep::*;
use sync::*;

/// A command failure: one line for stderr and an exit code.
struct Fail(i32, String);

impl<E: std::fmt::Display> From<E> for Fail {
    fn from(e: E) -> Fail {
        Fail(1, e.to_string())
    }
}

fn usage(msg: impl Into<String>) -> Fail {
    Fail(2, msg.into())
}

pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if !e.use_stderr() || e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                // --help, --version, or no command at all: the full text is what was asked for.
                let _ = e.print();
                return if e.use_stderr() { 2 } else { 0 };
            }
            eprintln!("git-pushmirror: {}", one_line(&e.render().to_string()));
            return 2;
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(Fail(code, msg)) => {
            // Every error leaves here as one line, whatever a name, URL or file put in it.
            eprintln!("git-pushmirror: {}", crate::text::one_line(&msg));
            code
        }
    }
}

/// Folds clap's multi-line usage error into one line: the message, its tip, and which `--help`
/// to read (scripts and logs keep one line per error).
fn one_line(rendered: &str) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut help = "git-pushmirror --help".to_string();
    for line in rendered.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(u) = line.strip_prefix("Usage:") {
            let cmd: Vec<&str> = u
                .split_whitespace()
                .take_while(|w| !w.starts_with(['[', '<', '-']))
                .collect();
            if !cmd.is_empty() {
                help = format!("{} --help", cmd.join(" "));
            }
            break;
        }
        let line = line.strip_prefix("error: ").unwrap_or(line);
        match line.strip_prefix("tip: ") {
            Some(tip) => parts.push(format!("({tip})")),
            None => parts.push(line.to_string()),
        }
    }
    format!("{} (see `{help}`)", parts.join(" "))
}

fn run(cli: Cli) -> Result<i32, Fail> {
    match &cli.cmd {
        Cmd::Sweep { root } => return sweep(root.as_deref()),
        Cmd::Sync {
            all: true,
            root,
            url_pattern,
            wait,
            ..
        } => return sync_all(root.as_deref(), url_pattern.as_deref(), *wait),
        Cmd::Status {
            name,
            json,
            root: Some(root),
        } => return status_root(root.as_deref(), name.as_deref(), *json),
        Cmd::Metrics { root, output } => return metrics(root.as_deref(), output.as_deref()),
        Cmd::Install {
            chain,
            hooks_dir: Some(dir),
        } => {
            let hook = crate::install::hook_in_dir(&crate::absolute(dir));
            return install_report(crate::install::install_at(
                &hook,
                &std::env::current_exe()?,
                *chain,
            ));
        }
        Cmd::Uninstall {
            hooks_dir: Some(dir),
        } => {
            let hook = crate::install::hook_in_dir(&crate::absolute(dir));
            let removed = crate::install::uninstall_at(&hook).map_err(|e| Fail(1, e))?;
            return uninstall_report(removed.into_iter().collect(), dir);
        }
        _ => {}
    }
    if let Cmd::Keygen { name, rule: true } = &cli.cmd {
        return keygen(None, name, true);
    }
    if let Cmd::DetectHostKey {
        name,
        rule: true,
        fingerprints,
    } = &cli.cmd
    {
        return detect_rule_host_key(name, fingerprints);
    }
    if let Cmd::Hook { kind } = &cli.cmd {
        if kind != "post-receive" {
            return Err(usage(format!(
                "unknown hook `{kind}` (only post-receive is supported)"
            )));
        }
        let dir = cli
            .repo
            .as_deref()
            .map(crate::absolute)
            .unwrap_or_else(crate::hook_git_dir);
        return Ok(crate::hook::run(&dir));
    }
    let git_dir = resolve_repo(cli.repo.as_deref())?;
    let paths = RepoPaths::new(&git_dir);
    if matches!(
        cli.cmd,
        Cmd::Add(_)
            | Cmd::Set { .. }
            | Cmd::Remove { .. }
            | Cmd::Keygen { .. }
            | Cmd::DetectHostKey { .. }
            | Cmd::Enable { .. }
            | Cmd::Disable { .. }
            | Cmd::Sync { .. }
    ) {
        refuse_root_on_anothers_repo(&git_dir, "...")?;
    }
    if matches!(
        cli.cmd,
        Cmd::List { .. } | Cmd::Show { .. } | Cmd::Status { .. }
    ) {
        // Reports only read: piped into `head` or a pager that quits, they end quietly on
        // SIGPIPE as git's own commands do, instead of panicking on a failed print.
        // SAFETY: restores the default disposition of one signal; no handler is involved.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    match cli.cmd {
        Cmd::Flush { once } => Ok(crate::flusher::run(&git_dir, once)),
        Cmd::Add(a) => add(&paths, *a),
        Cmd::List { json } => list(&paths, json),
        Cmd::Show { name, json } => show(&paths, &name, json),
        Cmd::Set { name, assignments } => set(&paths, &name, &assignments),
        Cmd::Remove { name } => remove(&paths, &name),
        Cmd::Keygen { name, rule } => keygen(Some(&paths), &name, rule),
        Cmd::DetectHostKey {
            name, fingerprints, ..
        } => detect_host_key(&paths, &name, &fingerprints),
        Cmd::Enable { name } => toggle(&paths, &name, true),
        Cmd::Disable { name } => toggle(&paths, &name, false),
        Cmd::Sync { name, wait, .. } => sync(&paths, name.as_deref(), wait),
        Cmd::Status { name, json, .. } => status(&paths, name.as_deref(), json),
        Cmd::Install { chain, .. } => {
            let exe = std::env::current_exe()?;
            install_report(crate::install::install(&git_dir, &exe, chain))
        }
        Cmd::Uninstall { .. } => uninstall_report(
            crate::install::uninstall(&git_dir).map_err(|e| Fail(1, e))?,
            &git_dir,
        ),
        Cmd::Sweep { .. } | Cmd::Hook { .. } | Cmd::Metrics { .. } => {
            unreachable!("handled above")
        }
    }
}

/// Root writing under `pushmirror/` of a repository another user owns makes the files root's
/// (0700/0600, or a root flusher's state and log): every later push by the owner then fails
/// with "Permission denied". Unless the repository is shared (its files then get the group's
/// access, as git gives its own), root is told to run the command as the owner: `sudo -u
/// OWNER git-pushmirror {command}`.
fn refuse_root_on_anothers_repo(git_dir: &Path, command: &str) -> Result<(), Fail> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(());
    }
    let Ok(meta) = std::fs::metadata(git_dir) else {
        return Ok(());
    };
    let owner = meta.uid();
    if owner == 0 || crate::paths::shared_dir_mode(git_dir) != 0o700 {
        return Ok(());
    }
    let name = user_name(owner).unwrap_or_else(|| owner.to_string());
    Err(Fail(
        1,
        format!(
            "{} belongs to {name} (uid {owner}) and you are root: what this command writes would be root's and {name}'s pushes could not use it; run it as {name} (sudo -u {name} git-pushmirror {command})",
            git_dir.display()
        ),
    ))
}

/// The login name of `uid` from the passwd database.
fn user_name(uid: u32) -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 4096];
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; `buf` outlives the use of `pwd.pw_name`.
    let rc = unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
    if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
        return None;
    }
    // SAFETY: getpwuid_r succeeded, so pw_name is a NUL-terminated string inside `buf`.
    let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
    Some(name.to_string_lossy().into_owned())
}

/// `--repo`, else `$GIT_DIR` (set when git runs us as `git pushmirror` with `--git-dir`), else
/// the repository the current directory is in (git does not set `$GIT_DIR` for `git -C
/// repo.git pushmirror`, and one may stand in a subdirectory of it).
fn resolve_repo(given: Option<&Path>) -> Result<PathBuf, Fail> {
    let explicit = given
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("GIT_DIR").map(PathBuf::from));
    let candidate = explicit.clone().unwrap_or_else(|| PathBuf::from("."));
    let dir = if candidate.join(".git").is_dir() {
        candidate.join(".git")
    } else {
        candidate.clone()
    };
    if dir.join("HEAD").is_file() && dir.join("objects").is_dir() {
        return Ok(crate::absolute(&dir));
    }
    if explicit.is_none() {
        let found = std::process::Command::new("git")
            .args(["rev-parse", "--absolute-git-dir"])
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
        if let Some(d) = found.filter(|d| d.join("HEAD").is_file()) {
            return Ok(crate::absolute(&d));
        }
    }
    Err(usage(format!(
        "{} is not a git repository (use --repo PATH to a bare repository)",
        crate::absolute(&candidate).display()
    )))
}

fn load_repo_config(paths: &RepoPaths) -> Result<RepoConfig, Fail> {
    Ok(RepoConfig::load(&paths.config())?)
}

fn print_json(v: &Value) -> Result<i32, Fail> {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", serde_json::to_string_pretty(v)?);
    Ok(0)
}
