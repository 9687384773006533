//! The administration CLI (the "remote mirrors API"): add/list/show/set/remove/enable/disable,
//! sync, status, sweep, install/uninstall, plus the hook and flusher entry points.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use serde_json::{json, Value};

use crate::config::{self, Dur, MirrorConfig, RepoConfig};
use crate::mirror::auth::Auth;
use crate::mirror::url;
use crate::paths::RepoPaths;
use crate::spool::Spool;
use crate::state::{self, UpdateStatus};

const EXAMPLES: &str = "Examples:
  git-pushmirror --repo /srv/git/app.git install
  git-pushmirror --repo /srv/git/app.git add github https://github.com/acme/app.git \\
      --username octocat --password-file /etc/git-pushmirror/github.token
  git-pushmirror --repo /srv/git/app.git add backup /srv/backup/app.git --debounce 5s
  git-pushmirror --repo /srv/git/app.git set github debounce=5s protected=main,release/*
  git-pushmirror --repo /srv/git/app.git disable backup
  git -C /srv/git/app.git pushmirror status
  git-pushmirror --repo /srv/git/app.git status --json
  git-pushmirror --repo /srv/git/app.git sync github --wait
  git-pushmirror install --hooks-dir ~/.gitolite/hooks/common     # Gitolite: every repository
  git-pushmirror sweep --root /srv/git                            # from a systemd timer or cron

Exit status: 0 success, 1 failure (or, for status, an unhealthy mirror), 2 usage error
(unknown command, option, mirror or key; bad value; duplicate name; not a repository).
Server-wide settings and mirror rules: /etc/git-pushmirror/config.yaml (GIT_PUSHMIRROR_CONFIG).";

const SET_HELP: &str = "Keys: url, enabled, only_protected_branches, protected (comma-separated \
patterns), keep_divergent_refs, debounce, max_delay, timeout (durations: 500ms, 1s, 5m, 1h), \
refs (comma-separated prefixes, e.g. refs/notes/), allow_insecure_http, ca_file, \
auth.method (none|password|ssh_key), auth.username, auth.password_file, auth.password_env, \
auth.key_file, auth.known_hosts, auth.host_key. An empty value (key=) removes a setting.
A mirror that comes from a server rule gets its own copy in this repository first (an override;
`remove` it to follow the rule again).

Examples:
  git-pushmirror set github debounce=5s keep_divergent_refs=true
  git-pushmirror set github only_protected_branches=true protected=main,release/*
  git-pushmirror set github auth.method=password auth.username=bot auth.password_env=GH_TOKEN";

const INSTALL_HELP: &str = "Where the hook goes (the first that applies):
  --hooks-dir DIR           DIR/post-receive, or DIR/git-pushmirror if DIR is a post-receive.d/
                            (Gitolite: ~/.gitolite/hooks/common, then `gitolite setup --hooks-only`)
  custom_hooks/ exists      custom_hooks/post-receive.d/git-pushmirror (GitLab server hooks)
  core.hooksPath            that directory, as below
  hooks/post-receive.d/     hooks/post-receive.d/git-pushmirror when a foreign hooks/post-receive
    + a foreign dispatcher  runs that directory (Gitea)
  otherwise                 hooks/post-receive
Idempotent; upgrades an older git-pushmirror wrapper; never overwrites a foreign post-receive
unless --chain (it is kept, runs first with the same stdin, and `uninstall` puts it back).

Examples:
  git-pushmirror --repo /srv/git/app.git install
  git-pushmirror --repo /srv/git/app.git install --chain
  git-pushmirror install --hooks-dir /home/git/.gitolite/hooks/common";

#[derive(Parser, Debug)]
#[command(name = "git-pushmirror", version, about = "GitLab-style push mirroring for any git server", after_help = EXAMPLES)]
struct Cli {
    /// The bare repository (default: $GIT_DIR, else the repository of the current directory)
    #[arg(long, global = true, value_name = "PATH")]
    repo: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Add a mirror (validated before it is written; the first full sync starts at once)
    #[command(after_help = "Examples:
  git-pushmirror add github https://github.com/acme/app.git --username x-access-token \\
      --password-file /etc/git-pushmirror/secrets/github.token
  git-pushmirror add gitlab https://gitlab.example.com/acme/app.git --username oauth2 \\
      --password-env GITLAB_TOKEN --only-protected-branches --protected main --protected 'release/*'
  git-pushmirror add backup ssh://git@backup.example.com/srv/git/app.git \\
      --ssh-key /etc/git-pushmirror/secrets/backup_ed25519 --known-hosts /etc/git-pushmirror/known_hosts
  git-pushmirror add local /srv/backup/app.git --debounce 5s --keep-divergent-refs")]
    Add(Box<AddArgs>),
    /// List the mirrors of the repository
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one mirror's configuration
    Show {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Change mirror settings: `set NAME key=value...` (e.g. debounce=5s keep_divergent_refs=true auth.username=bot)
    #[command(after_help = SET_HELP)]
    Set {
        name: String,
        #[arg(required = true, value_name = "KEY=VALUE")]
        assignments: Vec<String>,
    },
    /// Remove a mirror and its state
    Remove { name: String },
    /// Enable a mirror (it gets a full sync)
    Enable { name: String },
    /// Disable a mirror (nothing is pushed to it; compaction no longer waits for it)
    Disable { name: String },
    /// Force a full sync now, bypassing the debounce ("Update now")
    Sync {
        name: Option<String>,
        /// Wait for the sync and exit non-zero if it failed
        #[arg(long)]
        wait: bool,
    },
    /// Mirror health: exit 0 healthy, 1 when a mirror failed or is behind its max_delay
    Status {
        name: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Flush every repository under DIR with pending work, a due retry or a mirror never synced
    /// yet, within the concurrency limit (for a systemd timer or cron)
    #[command(
        after_help = "DIR defaults to `root` of the server-wide config. Exits 1 when a repository's \
config could not be read (it is skipped; the others are still flushed).\n\nExample:\n  \
git-pushmirror sweep --root /srv/git"
    )]
    Sweep {
        #[arg(long, value_name = "DIR")]
        root: Option<PathBuf>,
    },
    /// Install the post-receive hook into the repository (or a shared hooks directory)
    #[command(after_help = INSTALL_HELP)]
    Install {
        /// Keep an existing foreign post-receive hook and run it first
        #[arg(long)]
        chain: bool,
        /// Install into this hooks directory instead of one repository's (shared by many)
        #[arg(long, value_name = "DIR")]
        hooks_dir: Option<PathBuf>,
    },
    /// Remove the hook installed by `install` (a chained hook is put back)
    Uninstall {
        /// Remove it from this hooks directory instead of one repository's
        #[arg(long, value_name = "DIR")]
        hooks_dir: Option<PathBuf>,
    },
    /// Run as a hook: `hook post-receive` (what the installed wrapper calls)
    Hook { kind: String },
    /// Run the flusher in the foreground (normally started detached by the hook)
    #[command(hide = true)]
    Flush,
}

#[derive(Args, Debug)]
struct AddArgs {
    /// Mirror name: 1-100 of [A-Za-z0-9._-]; a server rule of the same name is overridden
    name: String,
    /// https://, ssh:// or user@host:path, git://, or a local path (http:// needs
    /// --allow-insecure-http)
    url: String,
    /// Wait this long after the last push before syncing (default 1s), e.g. 500ms, 5s
    #[arg(long, value_parser = Dur::parse)]
    debounce: Option<Dur>,
    /// Sync at most this long after the first pending push (default 5m; 1m protected-only)
    #[arg(long, value_parser = Dur::parse)]
    max_delay: Option<Dur>,
    /// Bound on each ls-remote and push (default 2m)
    #[arg(long, value_parser = Dur::parse)]
    timeout: Option<Dur>,
    /// Leave mirror refs that diverged from upstream alone (and report them)
    #[arg(long)]
    keep_divergent_refs: bool,
    /// Mirror only branches matching --protected (and all tags)
    #[arg(long)]
    only_protected_branches: bool,
    /// Protected branch pattern (repeatable), e.g. main, release/*
    #[arg(long = "protected", value_name = "PATTERN")]
    protected: Vec<String>,
    /// Extra ref prefix to mirror (repeatable), e.g. refs/notes/
    #[arg(long = "refs", value_name = "PREFIX")]
    refs: Vec<String>,
    /// Accept an http:// URL (credentials would travel in clear)
    #[arg(long)]
    allow_insecure_http: bool,
    /// CA bundle for a mirror behind a private CA
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,
    /// Add it disabled (no sync until `enable`)
    #[arg(long)]
    disabled: bool,
    /// Username for password/token auth
    #[arg(long)]
    username: Option<String>,
    /// File holding the password or token (must not be group/world readable)
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// Environment variable holding the password or token
    #[arg(long, value_name = "VAR")]
    password_env: Option<String>,
    /// SSH private key for ssh:// mirrors
    #[arg(long, value_name = "FILE")]
    ssh_key: Option<PathBuf>,
    /// known_hosts file for the mirror's host (strict host key checking is always on)
    #[arg(long, value_name = "FILE")]
    known_hosts: Option<PathBuf>,
    /// Pinned host key, e.g. "ssh-ed25519 AAAA..."
    #[arg(long, value_name = "KEY")]
    host_key: Option<String>,
}

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
            eprintln!("git-pushmirror: {msg}");
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
    match cli.cmd {
        Cmd::Flush => Ok(crate::flusher::run(&git_dir)),
        Cmd::Add(a) => add(&paths, *a),
        Cmd::List { json } => list(&paths, json),
        Cmd::Show { name, json } => show(&paths, &name, json),
        Cmd::Set { name, assignments } => set(&paths, &name, &assignments),
        Cmd::Remove { name } => remove(&paths, &name),
        Cmd::Enable { name } => toggle(&paths, &name, true),
        Cmd::Disable { name } => toggle(&paths, &name, false),
        Cmd::Sync { name, wait } => sync(&paths, name.as_deref(), wait),
        Cmd::Status { name, json } => status(&paths, name.as_deref(), json),
        Cmd::Install { chain, .. } => {
            let exe = std::env::current_exe()?;
            install_report(crate::install::install(&git_dir, &exe, chain))
        }
        Cmd::Uninstall { .. } => uninstall_report(
            crate::install::uninstall(&git_dir).map_err(|e| Fail(1, e))?,
            &git_dir,
        ),
        Cmd::Sweep { .. } | Cmd::Hook { .. } => unreachable!("handled above"),
    }
}

fn install_report(r: Result<crate::install::Installed, String>) -> Result<i32, Fail> {
    use crate::install::Installed;
    match r.map_err(|e| Fail(1, e))? {
        Installed::Fresh(p) => println!("installed {}", p.display()),
        Installed::Unchanged(p) => println!("already installed: {}", p.display()),
        Installed::Upgraded(p) => println!("updated {}", p.display()),
        Installed::Chained { hook, chained } => println!(
            "installed {} (runs {} first, with the same input)",
            hook.display(),
            chained.display()
        ),
    }
    Ok(0)
}

fn uninstall_report(removed: Vec<PathBuf>, place: &Path) -> Result<i32, Fail> {
    if removed.is_empty() {
        println!("git-pushmirror hook not installed in {}", place.display());
    }
    for p in removed {
        println!("removed git-pushmirror from {}", p.display());
    }
    Ok(0)
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

/// A mirror named on the command line that does not exist is a usage error (exit 2), like an
/// unknown option: the caller has to change the command, not the server.
fn no_such_mirror(paths: &RepoPaths, name: &str) -> Fail {
    usage(format!(
        "no mirror named `{name}` in {} (see `git-pushmirror list`)",
        paths.git_dir.display()
    ))
}

/// The mirror `name` as this repository sees it (its own, or a server rule's).
fn find_mirror<'a>(
    paths: &RepoPaths,
    loaded: &'a config::Loaded,
    name: &str,
) -> Result<&'a config::Effective, Fail> {
    loaded
        .mirrors
        .iter()
        .find(|e| e.mirror.name == name)
        .ok_or_else(|| no_such_mirror(paths, name))
}

fn from_rule(loaded: &config::Loaded, e: &config::Effective) -> bool {
    e.source == loaded.server_path
}

/// Read-modify-write of the repository config under the spool lock, so two admins editing at
/// once do not lose each other's change. A mirror that comes from a server rule is first
/// copied into the repository config (`${name}` resolved): that copy overrides the rule here.
fn edit(
    paths: &RepoPaths,
    name: &str,
    f: impl FnOnce(&mut RepoConfig) -> Result<(), Fail>,
) -> Result<(), Fail> {
    let loaded = config::load(paths)?;
    let rule = loaded
        .mirrors
        .iter()
        .find(|e| e.mirror.name == name && from_rule(&loaded, e))
        .map(|e| e.mirror.clone());
    paths
        .ensure()
        .map_err(|e| Fail(1, format!("{}: {e}", paths.dir.display())))?;
    let _lock = Spool::new(&paths.dir).lock()?;
    let mut cfg = load_repo_config(paths)?;
    let mut copied = false;
    if cfg.find(name).is_none() {
        let Some(mut m) = rule else {
            return Err(no_such_mirror(paths, name));
        };
        if matches!(
            m.auth,
            Auth::Password {
                password: Some(_),
                ..
            }
        ) {
            return Err(Fail(
                1,
                format!(
                    "mirror `{name}` comes from a server rule with an inline password, which is not copied into {}; add an override there by hand",
                    paths.config().display()
                ),
            ));
        }
        m.repos.clear();
        cfg.mirrors.push(m);
        copied = true;
    }
    f(&mut cfg)?;
    cfg.save(&paths.config())?;
    if copied {
        eprintln!(
            "git-pushmirror: note: mirror `{name}` came from a server rule in {}; {} now holds this repository's own copy (`git-pushmirror remove {name}` follows the rule again)",
            loaded.server_path.display(),
            paths.config().display()
        );
    }
    Ok(())
}

/// Removes a repository's mirror and its state. A server rule's mirror cannot be removed from
/// one repository (disable it there instead); removing a repository's override of a rule
/// brings the rule back, with a full sync.
fn remove(paths: &RepoPaths, name: &str) -> Result<i32, Fail> {
    let loaded = config::load(paths)?;
    let e = find_mirror(paths, &loaded, name)?;
    if from_rule(&loaded, e) {
        return Err(usage(format!(
            "mirror `{name}` comes from a server rule in {}: it cannot be removed from one repository; `git-pushmirror disable {name}` stops it here",
            loaded.server_path.display()
        )));
    }
    // The state goes under the same lock as the config, so an in-flight sync cannot write it
    // back (see `Flusher::record`).
    edit(paths, name, |cfg| {
        cfg.mirrors.retain(|m| m.name != name);
        state::remove(&paths.state_dir(), name);
        Ok(())
    })?;
    let rule_back = config::load(paths)
        .ok()
        .and_then(|l| l.mirrors.into_iter().find(|e| e.mirror.name == name))
        .map(|e| e.mirror.enabled);
    match rule_back {
        Some(enabled) => {
            println!("removed mirror {name}; the server rule `{name}` applies again");
            if enabled {
                crate::hook::spool_and_wake_forced(paths, &[name.to_string()])
                    .map_err(|e| Fail(1, e))?;
            }
        }
        None => println!("removed mirror {name}"),
    }
    Ok(0)
}

fn add(paths: &RepoPaths, a: AddArgs) -> Result<i32, Fail> {
    let mut m = MirrorConfig::new(&a.name, &absolutize_local(&a.url));
    m.enabled = !a.disabled;
    m.debounce = a.debounce;
    m.max_delay = a.max_delay;
    m.timeout = a.timeout;
    m.keep_divergent_refs = a.keep_divergent_refs;
    m.only_protected_branches = a.only_protected_branches;
    m.protected = a.protected;
    m.refs = a.refs;
    m.allow_insecure_http = a.allow_insecure_http;
    m.ca_file = a.ca_file.map(|p| crate::absolute(&p));
    m.auth = match (a.username, a.ssh_key) {
        (Some(_), Some(_)) => return Err(usage("--username and --ssh-key are exclusive")),
        (Some(username), None) => {
            let given = [a.password_file.is_some(), a.password_env.is_some()]
                .iter()
                .filter(|x| **x)
                .count();
            if given != 1 {
                return Err(usage(
                    "--username needs exactly one of --password-file FILE or --password-env VAR",
                ));
            }
            Auth::Password {
                username,
                password: None,
                password_file: a.password_file.map(|p| crate::absolute(&p)),
                password_env: a.password_env,
            }
        }
        (None, Some(key)) => Auth::SshKey {
            key_file: crate::absolute(&key),
            known_hosts: a.known_hosts.map(|p| crate::absolute(&p)),
            host_key: a.host_key,
        },
        (None, None) => {
            if a.password_file.is_some() || a.password_env.is_some() {
                return Err(usage("--password-file/--password-env need --username"));
            }
            Auth::None
        }
    };
    m.validate().map_err(usage)?;
    // A rule's mirror of the same name is replaced here, not refused: that is the override.
    let overrides = config::load(paths).is_ok_and(|l| {
        l.mirrors
            .iter()
            .any(|e| e.mirror.name == a.name && e.source != paths.config())
    });
    paths
        .ensure()
        .map_err(|e| Fail(1, format!("{}: {e}", paths.dir.display())))?;
    {
        let _lock = Spool::new(&paths.dir).lock()?;
        let mut cfg = load_repo_config(paths)?;
        if cfg.find(&a.name).is_some() {
            return Err(usage(format!(
                "a mirror named `{}` already exists (use `set` to change it)",
                a.name
            )));
        }
        cfg.mirrors.push(m.clone());
        cfg.save(&paths.config())?;
        // A fresh state: a mirror re-added under an old name (or replacing a rule's) must not
        // inherit the old cursor. Under the lock, like `remove`.
        state::remove(&paths.state_dir(), &a.name);
    }
    println!(
        "added mirror {} -> {}{}",
        a.name,
        url::mask(&m.url),
        if overrides {
            " (overrides the server rule of the same name here)"
        } else {
            ""
        }
    );
    if m.enabled {
        // The first sync sends everything; it goes out now rather than at the next push.
        crate::hook::spool_and_wake_forced(paths, std::slice::from_ref(&a.name))
            .map_err(|e| Fail(1, e))?;
    }
    Ok(0)
}

/// A relative local path means relative to where the admin stands, not to the repository the
/// flusher runs git in.
fn absolutize_local(u: &str) -> String {
    if url::validate(u, true) == Ok(url::Scheme::Local)
        && !u.starts_with('/')
        && !u.starts_with("file:")
    {
        return crate::absolute(Path::new(u)).display().to_string();
    }
    u.to_string()
}

fn toggle(paths: &RepoPaths, name: &str, on: bool) -> Result<i32, Fail> {
    let loaded = config::load(paths)?;
    let e = find_mirror(paths, &loaded, name)?;
    let word = if on { "enabled" } else { "disabled" };
    if from_rule(&loaded, e) && e.mirror.enabled == on {
        // Nothing to override: the rule already says so.
        println!("mirror {name} is already {word}");
    } else {
        edit(paths, name, |cfg| {
            for m in cfg.mirrors.iter_mut().filter(|m| m.name == name) {
                m.enabled = on;
            }
            Ok(())
        })?;
        println!("{word} mirror {name}");
    }
    if on {
        crate::hook::spool_and_wake_forced(paths, &[name.to_string()]).map_err(|e| Fail(1, e))?;
    }
    Ok(0)
}

/// `set NAME key=value...`: each value is read as YAML and the result goes through the same
/// strict deserialisation and validation as the file, so `set` cannot write what `load` refuses.
fn set(paths: &RepoPaths, name: &str, assignments: &[String]) -> Result<i32, Fail> {
    edit(paths, name, |cfg| {
        let idx = cfg
            .mirrors
            .iter()
            .position(|m| m.name == name)
            .ok_or_else(|| Fail(1, "vanished".into()))?;
        let mut value = serde_yaml::to_value(&cfg.mirrors[idx])?;
        for a in assignments {
            let (key, raw) = a
                .split_once('=')
                .ok_or_else(|| usage(format!("`{a}` is not KEY=VALUE")))?;
            if key == "name" {
                return Err(usage(
                    "a mirror cannot be renamed with set; remove and add it",
                ));
            }
            if key == "auth.password" {
                return Err(usage(
                    "an inline password on the command line is visible in `ps` and shell history; use auth.password_file=FILE or auth.password_env=VAR",
                ));
            }
            if key == "repos" {
                return Err(usage(
                    "`repos` belongs in server-wide rules only (it picks the repositories a rule applies to)",
                ));
            }
            let v: serde_yaml::Value = if raw.is_empty() {
                serde_yaml::Value::Null
            } else {
                serde_yaml::from_str(raw).unwrap_or(serde_yaml::Value::String(raw.into()))
            };
            let v = match (key, v) {
                (k, serde_yaml::Value::Number(n)) if !matches!(k, "auth.method") => {
                    serde_yaml::Value::String(n.to_string())
                }
                (_, v) => v,
            };
            let v = if key == "url" {
                serde_yaml::Value::String(absolutize_local(raw))
            } else {
                v
            };
            set_path(&mut value, key, v).map_err(usage)?;
        }
        let m: MirrorConfig = serde_yaml::from_value(value).map_err(|e| {
            // serde names the field it missed, which may not be one the admin typed (e.g.
            // `auth.colour=red` is reported as a missing `method`): name the assignments too.
            let e = e.to_string();
            let named = assignments.iter().any(|a| {
                let key = a.split_once('=').map_or(a.as_str(), |(k, _)| k);
                key.rsplit('.')
                    .next()
                    .is_some_and(|k| e.contains(&format!("`{k}`")))
            });
            if named {
                usage(format!("mirror `{name}`: {e}"))
            } else {
                usage(format!(
                    "mirror `{name}`: {e} (in `{}`)",
                    assignments.join(" ")
                ))
            }
        })?;
        m.validate().map_err(usage)?;
        cfg.mirrors[idx] = m;
        Ok(())
    })?;
    println!("updated mirror {name}");
    Ok(0)
}

fn set_path(root: &mut serde_yaml::Value, key: &str, v: serde_yaml::Value) -> Result<(), String> {
    let mut cur = root;
    let parts: Vec<&str> = key.split('.').collect();
    for (i, p) in parts.iter().enumerate() {
        if !cur.is_mapping() {
            *cur = serde_yaml::Value::Mapping(Default::default());
        }
        let map = cur
            .as_mapping_mut()
            .ok_or_else(|| format!("bad key `{key}`"))?;
        let k = serde_yaml::Value::String(p.to_string());
        if i + 1 == parts.len() {
            if v.is_null() {
                map.remove(&k);
            } else if matches!(*p, "protected" | "refs") && !v.is_sequence() {
                let items = v
                    .as_str()
                    .unwrap_or("")
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(|s| serde_yaml::Value::String(s.trim().into()))
                    .collect();
                map.insert(k, serde_yaml::Value::Sequence(items));
            } else {
                map.insert(k, v);
            }
            return Ok(());
        }
        cur = map
            .entry(k)
            .or_insert(serde_yaml::Value::Mapping(Default::default()));
    }
    Ok(())
}

fn mirror_json(m: &MirrorConfig) -> Value {
    let auth = match &m.auth {
        Auth::None => json!({"method": "none"}),
        Auth::Password {
            username,
            password_file,
            password_env,
            password,
        } => json!({
            "method": "password", "username": username,
            "password_file": password_file, "password_env": password_env,
            "inline_password": password.is_some(),
        }),
        Auth::SshKey {
            key_file,
            known_hosts,
            host_key,
        } => json!({
            "method": "ssh_key", "key_file": key_file, "known_hosts": known_hosts, "host_key": host_key,
        }),
    };
    json!({
        "name": m.name,
        "url": url::mask(&m.url),
        "enabled": m.enabled,
        "auth": auth,
        "only_protected_branches": m.only_protected_branches,
        "protected": m.protected,
        "keep_divergent_refs": m.keep_divergent_refs,
        "debounce": m.debounce.map(|d| d.to_string()),
        "max_delay": m.max_delay.map(|d| d.to_string()),
        "timeout": m.timeout.map(|d| d.to_string()),
        "refs": m.refs,
        "allow_insecure_http": m.allow_insecure_http,
        "ca_file": m.ca_file,
    })
}

fn print_json(v: &Value) -> Result<i32, Fail> {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", serde_json::to_string_pretty(v)?);
    Ok(0)
}

fn list(paths: &RepoPaths, json_out: bool) -> Result<i32, Fail> {
    let loaded = config::load(paths)?;
    if json_out {
        let v: Vec<Value> = loaded
            .mirrors
            .iter()
            .map(|e| {
                let mut v = mirror_json(&e.mirror);
                v["from_rule"] = json!(from_rule(&loaded, e));
                v
            })
            .collect();
        return print_json(&json!({ "mirrors": v }));
    }
    if loaded.mirrors.is_empty() {
        println!("no mirrors (add one with `git-pushmirror add NAME URL`)");
    }
    for e in &loaded.mirrors {
        let m = &e.mirror;
        println!(
            "{}\t{}\t{}{}",
            m.name,
            url::mask(&m.url),
            if m.enabled { "enabled" } else { "disabled" },
            if from_rule(&loaded, e) {
                "\t(server rule)"
            } else {
                ""
            }
        );
    }
    Ok(0)
}

fn show(paths: &RepoPaths, name: &str, json_out: bool) -> Result<i32, Fail> {
    let loaded = config::load(paths)?;
    let e = find_mirror(paths, &loaded, name)?;
    let mut v = mirror_json(&e.mirror);
    v["from_rule"] = json!(from_rule(&loaded, e));
    v["effective"] = json!({
        "debounce": Dur(e.debounce).to_string(), "max_delay": Dur(e.max_delay).to_string(),
        "timeout": Dur(e.timeout).to_string(), "source": e.source,
    });
    if json_out {
        return print_json(&v);
    }
    if let Value::Object(map) = &v {
        for (k, val) in map {
            println!(
                "{k}: {}",
                if let Value::String(s) = val {
                    s.clone()
                } else {
                    val.to_string()
                }
            );
        }
    }
    Ok(0)
}

/// Per-mirror status as JSON; also tells whether the mirror is unhealthy.
fn mirror_status(
    paths: &RepoPaths,
    e: &config::Effective,
    contents: &crate::spool::Contents,
    now: u64,
) -> (Value, bool) {
    let m = &e.mirror;
    let (st, state_err) = match state::load(&paths.state_dir(), &m.name) {
        Ok(s) => (s, None),
        Err(err) => (Default::default(), Some(err.to_string())),
    };
    let pending = crate::flusher::pending_for(contents, &m.name, st.cursor);
    let oldest_ms = pending.as_ref().map(|p| now.saturating_sub(p.first_ms));
    let behind = m.enabled && oldest_ms.is_some_and(|a| a > e.max_delay.as_millis() as u64);
    let failed = m.enabled && (st.update_status == UpdateStatus::Failed || state_err.is_some());
    let ts = |t: Option<u64>| t.map(crate::time::rfc3339);
    let mut v = mirror_json(m);
    let extra = json!({
        "update_status": st.update_status.as_str(),
        "last_update_started_at": ts(st.last_update_started_at),
        "last_update_at": ts(st.last_update_at),
        "last_successful_update_at": ts(st.last_successful_update_at),
        "last_error": state_err.or(st.last_error.clone()),
        "divergent_refs": st.divergent_refs,
        "rejected_refs": st.rejected_refs,
        "pending_updates": pending.as_ref().map_or(0, |p| p.count),
        "oldest_pending_age_seconds": oldest_ms.map(|a| a / 1000),
        "behind_max_delay": behind,
        "consecutive_failures": st.consecutive_failures,
        "next_retry_at": ts(st.next_retry_at),
        "gave_up": st.gave_up_at_seq.is_some(),
        "syncs": st.syncs,
        "pushes": st.pushes,
        "healthy": !(failed || behind),
    });
    if let (Value::Object(a), Value::Object(b)) = (&mut v, extra) {
        a.extend(b);
    }
    (v, failed || behind)
}

fn status(paths: &RepoPaths, name: Option<&str>, json_out: bool) -> Result<i32, Fail> {
    let loaded = config::load(paths)?;
    let spool = Spool::new(&paths.dir);
    let contents = if paths.dir.is_dir() {
        spool.lock().and_then(|l| spool.read(&l))?
    } else {
        Default::default()
    };
    let now = crate::time::now_ms();
    let mut mirrors = Vec::new();
    let mut unhealthy = false;
    for e in loaded
        .mirrors
        .iter()
        .filter(|e| name.is_none_or(|n| e.mirror.name == n))
    {
        let (mut v, bad) = mirror_status(paths, e, &contents, now);
        v["from_rule"] = json!(from_rule(&loaded, e));
        unhealthy |= bad;
        mirrors.push(v);
    }
    if let Some(n) = name {
        if mirrors.is_empty() {
            return Err(no_such_mirror(paths, n));
        }
    }
    let hook = crate::install::check(&paths.git_dir);
    let doc = json!({
        "repository": paths.git_dir,
        "silent_mode": loaded.server.silent,
        "hook_installed": hook.is_ok(),
        "hook_problem": hook.err(),
        "flusher_running": crate::hook::flusher_running(paths),
        "spool_damaged_records": contents.damage.len(),
        "mirrors": mirrors,
    });
    if json_out {
        print_json(&doc)?;
    } else {
        print_status(&doc);
    }
    Ok(if unhealthy { 1 } else { 0 })
}

fn print_status(doc: &Value) {
    let s = |v: &Value| match v {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    println!("repository: {}", s(&doc["repository"]));
    if doc["silent_mode"] == json!(true) {
        println!("SILENT MODE: no mirror is contacted; updates accumulate in the spool");
    }
    if let Some(problem) = doc["hook_problem"].as_str() {
        println!("warning: {problem}");
    }
    println!(
        "flusher: {}",
        if doc["flusher_running"] == json!(true) {
            "running"
        } else {
            "idle"
        }
    );
    let mirrors = doc["mirrors"].as_array().cloned().unwrap_or_default();
    if mirrors.is_empty() {
        println!("no mirrors");
    }
    for m in mirrors {
        println!();
        println!(
            "{}  {}  [{}]{}",
            s(&m["name"]),
            s(&m["url"]),
            s(&m["update_status"]),
            if m["enabled"] == json!(false) {
                " (disabled)"
            } else {
                ""
            }
        );
        println!("  last attempt:   {}", s(&m["last_update_started_at"]));
        println!("  last update:    {}", s(&m["last_update_at"]));
        println!("  last success:   {}", s(&m["last_successful_update_at"]));
        let oldest = &m["oldest_pending_age_seconds"];
        if oldest.is_null() {
            println!("  pending:        {}", s(&m["pending_updates"]));
        } else {
            println!(
                "  pending:        {} (oldest {}s)",
                s(&m["pending_updates"]),
                s(oldest)
            );
        }
        println!("  syncs/pushes:   {}/{}", s(&m["syncs"]), s(&m["pushes"]));
        if !m["last_error"].is_null() {
            println!("  last error:     {}", s(&m["last_error"]));
        }
        if m["divergent_refs"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
        {
            println!("  divergent:      {}", s(&m["divergent_refs"]));
        }
        if m["behind_max_delay"] == json!(true) {
            println!("  BEHIND: pending longer than max_delay");
        }
    }
}

/// Asks the flusher for a full sync now; with `wait`, blocks until every requested mirror has
/// run a sync that started after the request, and fails if any failed.
fn sync(paths: &RepoPaths, name: Option<&str>, wait: bool) -> Result<i32, Fail> {
    let loaded = config::load(paths)?;
    let targets: Vec<&config::Effective> = loaded
        .mirrors
        .iter()
        .filter(|e| e.mirror.enabled && name.is_none_or(|n| e.mirror.name == n))
        .collect();
    if let Some(n) = name {
        find_mirror(paths, &loaded, n)?;
        if targets.is_empty() {
            return Err(Fail(
                1,
                format!("mirror `{n}` is disabled (git-pushmirror enable {n})"),
            ));
        }
    }
    if targets.is_empty() {
        return Err(Fail(1, "no enabled mirror to sync".into()));
    }
    if loaded.server.silent {
        return Err(Fail(
            1,
            format!(
                "silent mode is on in {}: no mirror is contacted",
                loaded.server_path.display()
            ),
        ));
    }
    let t0 = crate::time::now_ms();
    let forces = vec![name.unwrap_or("*").to_string()];
    crate::hook::spool_and_wake_forced(paths, &forces).map_err(|e| Fail(1, e))?;
    if !wait {
        println!("sync requested");
        return Ok(0);
    }
    let longest = targets
        .iter()
        .map(|e| e.timeout)
        .max()
        .unwrap_or(Duration::from_secs(120));
    let deadline = Instant::now() + longest * 3 + Duration::from_secs(30);
    let mut failed = false;
    let mut idle_since: Option<Instant> = None;
    for e in targets {
        loop {
            let st = state::load(&paths.state_dir(), &e.mirror.name)?;
            let done = st.last_update_started_at.is_some_and(|s| s >= t0)
                && matches!(
                    st.update_status,
                    UpdateStatus::Finished | UpdateStatus::Failed
                );
            if done {
                match st.update_status {
                    UpdateStatus::Failed => {
                        failed = true;
                        eprintln!(
                            "git-pushmirror: {}: failed: {}",
                            e.mirror.name,
                            st.last_error.unwrap_or_default()
                        );
                    }
                    _ => println!("{}: synced", e.mirror.name),
                }
                break;
            }
            if Instant::now() > deadline {
                return Err(Fail(
                    1,
                    format!(
                        "{}: no sync finished in time (see {})",
                        e.mirror.name,
                        paths.log().display()
                    ),
                ));
            }
            // A flusher that exited between our request and its start would leave us waiting:
            // when none has run for a while and our sync has not started, wake one again. (Just
            // after the request, the flusher we started may not hold its lock yet.)
            if crate::hook::flusher_running(paths) {
                idle_since = None;
            } else if idle_since.get_or_insert_with(Instant::now).elapsed()
                >= Duration::from_millis(300)
            {
                idle_since = None;
                let st = state::load(&paths.state_dir(), &e.mirror.name)?;
                if st.last_update_started_at.is_none_or(|s| s < t0) {
                    crate::hook::spool_and_wake_forced(paths, &[]).map_err(|e| Fail(1, e))?;
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    Ok(if failed { 1 } else { 0 })
}

/// What `sweep` found to do for one repository.
#[derive(Default)]
struct SweepWork {
    /// Mirrors to sync now: a failed sync whose retry is due, or no sync yet.
    forces: Vec<String>,
    /// Some enabled mirror has updates it has not confirmed.
    pending: bool,
    why: Vec<&'static str>,
}

fn sweep_work(paths: &RepoPaths, loaded: &config::Loaded, now: u64) -> Result<SweepWork, Fail> {
    let mut w = SweepWork::default();
    let enabled: Vec<&config::Effective> =
        loaded.mirrors.iter().filter(|e| e.mirror.enabled).collect();
    if enabled.is_empty() {
        return Ok(w);
    }
    // A repository only a server rule reaches may not have pushmirror/ yet: nothing is pending.
    let contents = if paths.dir.is_dir() {
        let spool = Spool::new(&paths.dir);
        spool.lock().and_then(|l| spool.read(&l))?
    } else {
        Default::default()
    };
    for e in enabled {
        let name = &e.mirror.name;
        let st = state::load(&paths.state_dir(), name)?;
        let pending = crate::flusher::pending_for(&contents, name, st.cursor);
        // A sync that ran to the end with divergent or refused refs is `failed` without pending
        // work: retrying cannot help, so it is left alone.
        let retry_due = st.update_status == UpdateStatus::Failed
            && (st.gave_up_at_seq.is_some()
                || (pending.is_some() && st.next_retry_at.is_none_or(|t| t <= now)));
        // A mirror added by a server rule after the repository's last push has never synced.
        let never = st.last_update_started_at.is_none();
        if retry_due {
            w.why.push("retry");
        }
        if never {
            w.why.push("first sync");
        }
        if retry_due || never {
            w.forces.push(name.clone());
        }
        if pending.is_some() && !retry_due && !never {
            w.why.push("pending");
        }
        w.pending |= pending.is_some();
    }
    w.why.sort_unstable();
    w.why.dedup();
    Ok(w)
}

/// `sweep`: every repository under the root (`--root`, else `root` of the server config) with
/// an enabled mirror that has pending updates, a failed sync whose retry is due, or no sync yet
/// gets a flusher; at most `concurrency` run at once (and they share the server-wide push
/// slots). It waits for them, so a systemd oneshot service or a cron job ends when the work
/// does. Exit 1 when some repository could not be examined (it is named; the rest still run).
fn sweep(root: Option<&Path>) -> Result<i32, Fail> {
    let (server, server_path) = config::ServerConfig::load()?;
    let Some(root) = root.map(Path::to_path_buf).or_else(|| server.root.clone()) else {
        return Err(usage(format!(
            "sweep needs --root DIR (or `root:` in {})",
            server_path.display()
        )));
    };
    if !root.is_dir() {
        return Err(usage(format!("--root {}: not a directory", root.display())));
    }
    if server.silent {
        println!(
            "sweep: silent mode is on in {}: no mirror is contacted",
            server_path.display()
        );
        return Ok(0);
    }
    let mut repos = Vec::new();
    find_repos(&root, 0, &mut repos);
    let exe = std::env::current_exe()?;
    let mut running: Vec<std::process::Child> = Vec::new();
    let mut started = 0usize;
    let mut errors = 0usize;
    for git_dir in repos {
        let paths = RepoPaths::new(&git_dir);
        let work = config::load(&paths)
            .map_err(Fail::from)
            .and_then(|loaded| sweep_work(&paths, &loaded, crate::time::now_ms()));
        let work = match work {
            Ok(w) => w,
            Err(Fail(_, e)) => {
                eprintln!("git-pushmirror: {}: {e}; skipped", git_dir.display());
                errors += 1;
                continue;
            }
        };
        if work.forces.is_empty() && !work.pending {
            continue;
        }
        if !work.forces.is_empty() {
            paths
                .ensure()
                .map_err(|e| Fail(1, format!("{}: {e}", paths.dir.display())))?;
            let spool = Spool::new(&paths.dir);
            let lock = spool.lock()?;
            spool.append(&lock, &[], &work.forces, crate::time::now_ms())?;
        }
        while running.len() >= server.concurrency() {
            running.retain_mut(|c| !matches!(c.try_wait(), Ok(Some(_))));
            std::thread::sleep(Duration::from_millis(50));
        }
        // A flusher already running for the repository keeps it (this one exits at once) and
        // picks up the force records on its next pass.
        let child = std::process::Command::new(&exe)
            .arg("--repo")
            .arg(&git_dir)
            .arg("flush")
            .env_remove("GIT_DIR")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        running.push(child);
        started += 1;
        println!("{}: flushing ({})", git_dir.display(), work.why.join(", "));
    }
    for mut c in running {
        let _ = c.wait();
    }
    println!(
        "sweep: {started} repositor{} flushed{}",
        if started == 1 { "y" } else { "ies" },
        if errors > 0 {
            format!(", {errors} skipped")
        } else {
            String::new()
        }
    );
    Ok(if errors > 0 { 1 } else { 0 })
}

/// Every repository under `dir` (not descending into one, nor following symlinks), sorted.
fn find_repos(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    if depth > 8 {
        return;
    }
    if dir.join("HEAD").is_file() && dir.join("objects").is_dir() && dir.join("refs").is_dir() {
        out.push(dir.to_path_buf());
        return;
    }
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = rd
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    entries.sort();
    for e in entries {
        find_repos(&e, depth + 1, out);
    }
}
