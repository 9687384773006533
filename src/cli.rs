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
  git -C /srv/git/app.git pushmirror status
  git-pushmirror --repo /srv/git/app.git sync github --wait
  git-pushmirror sweep --root /srv/git";

#[derive(Parser, Debug)]
#[command(name = "git-pushmirror", version, about = "GitLab-style push mirroring for any git server", after_help = EXAMPLES)]
struct Cli {
    /// The bare repository (default: $GIT_DIR or the current directory)
    #[arg(long, global = true, value_name = "PATH")]
    repo: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Add a mirror (validated before it is written)
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
    /// Retry every repository under DIR with pending work or a failed mirror (for cron/systemd)
    Sweep {
        #[arg(long, value_name = "DIR")]
        root: PathBuf,
    },
    /// Install the post-receive hook into the repository
    Install {
        /// Keep an existing foreign post-receive hook and run it first
        #[arg(long)]
        chain: bool,
    },
    /// Remove the hook installed by `install` (a chained hook is put back)
    Uninstall,
    /// Run as a hook: `hook post-receive` (what the installed wrapper calls)
    Hook { kind: String },
    /// Run the flusher in the foreground (normally started detached by the hook)
    #[command(hide = true)]
    Flush,
}

#[derive(Args, Debug)]
struct AddArgs {
    name: String,
    url: String,
    #[arg(long, value_parser = Dur::parse)]
    debounce: Option<Dur>,
    #[arg(long, value_parser = Dur::parse)]
    max_delay: Option<Dur>,
    #[arg(long, value_parser = Dur::parse)]
    timeout: Option<Dur>,
    #[arg(long)]
    keep_divergent_refs: bool,
    #[arg(long)]
    only_protected_branches: bool,
    /// Protected branch pattern (repeatable), e.g. main, release/*
    #[arg(long = "protected", value_name = "PATTERN")]
    protected: Vec<String>,
    /// Extra ref prefix to mirror (repeatable), e.g. refs/notes/
    #[arg(long = "refs", value_name = "PREFIX")]
    refs: Vec<String>,
    #[arg(long)]
    allow_insecure_http: bool,
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,
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
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
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

fn run(cli: Cli) -> Result<i32, Fail> {
    if let Cmd::Sweep { root } = &cli.cmd {
        return sweep(root);
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
        Cmd::Remove { name } => {
            edit(&paths, &name, |cfg| {
                cfg.mirrors.retain(|m| m.name != name);
                Ok(())
            })?;
            state::remove(&paths.state_dir(), &name);
            println!("removed mirror {name}");
            Ok(0)
        }
        Cmd::Enable { name } => toggle(&paths, &name, true),
        Cmd::Disable { name } => toggle(&paths, &name, false),
        Cmd::Sync { name, wait } => sync(&paths, name.as_deref(), wait),
        Cmd::Status { name, json } => status(&paths, name.as_deref(), json),
        Cmd::Install { chain } => {
            let exe = std::env::current_exe()?;
            match crate::install::install(&git_dir, &exe, chain).map_err(|e| Fail(1, e))? {
                crate::install::Installed::Fresh(p) => println!("installed {}", p.display()),
                crate::install::Installed::Upgraded(p) => println!("updated {}", p.display()),
                crate::install::Installed::Chained { hook, chained } => {
                    println!(
                        "installed {} (runs {} first)",
                        hook.display(),
                        chained.display()
                    )
                }
            }
            Ok(0)
        }
        Cmd::Uninstall => {
            match crate::install::uninstall(&git_dir).map_err(|e| Fail(1, e))? {
                Some(p) => println!("removed git-pushmirror from {}", p.display()),
                None => println!("git-pushmirror hook not installed in {}", git_dir.display()),
            }
            Ok(0)
        }
        Cmd::Sweep { .. } | Cmd::Hook { .. } => unreachable!("handled above"),
    }
}

/// `--repo`, else `$GIT_DIR` (set when git runs us as `git pushmirror`), else the current directory.
fn resolve_repo(given: Option<&Path>) -> Result<PathBuf, Fail> {
    let candidate = given
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("GIT_DIR").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("."));
    let dir = if candidate.join(".git").is_dir() {
        candidate.join(".git")
    } else {
        candidate.clone()
    };
    if !(dir.join("HEAD").is_file() && dir.join("objects").is_dir()) {
        return Err(usage(format!(
            "{} is not a git repository (use --repo PATH to a bare repository)",
            candidate.display()
        )));
    }
    Ok(crate::absolute(&dir))
}

fn load_repo_config(paths: &RepoPaths) -> Result<RepoConfig, Fail> {
    Ok(RepoConfig::load(&paths.config())?)
}

/// Read-modify-write of the repository config under the spool lock, so two admins editing at
/// once do not lose each other's change.
fn edit(
    paths: &RepoPaths,
    name: &str,
    f: impl FnOnce(&mut RepoConfig) -> Result<(), Fail>,
) -> Result<(), Fail> {
    paths
        .ensure()
        .map_err(|e| Fail(1, format!("{}: {e}", paths.dir.display())))?;
    let _lock = Spool::new(&paths.dir).lock()?;
    let mut cfg = load_repo_config(paths)?;
    if cfg.find(name).is_none() {
        return Err(Fail(
            1,
            format!(
                "no mirror named `{name}` in {} (see `git-pushmirror list`)",
                paths.config().display()
            ),
        ));
    }
    f(&mut cfg)?;
    cfg.save(&paths.config())?;
    Ok(())
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
    paths
        .ensure()
        .map_err(|e| Fail(1, format!("{}: {e}", paths.dir.display())))?;
    {
        let _lock = Spool::new(&paths.dir).lock()?;
        let mut cfg = load_repo_config(paths)?;
        if cfg.find(&a.name).is_some() {
            return Err(Fail(
                1,
                format!(
                    "a mirror named `{}` already exists (use `set` to change it)",
                    a.name
                ),
            ));
        }
        cfg.mirrors.push(m.clone());
        cfg.save(&paths.config())?;
    }
    // A fresh state: a mirror re-added under an old name must not inherit the old cursor.
    state::remove(&paths.state_dir(), &a.name);
    println!("added mirror {} -> {}", a.name, url::mask(&m.url));
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
    edit(paths, name, |cfg| {
        for m in cfg.mirrors.iter_mut().filter(|m| m.name == name) {
            m.enabled = on;
        }
        Ok(())
    })?;
    println!("{} mirror {name}", if on { "enabled" } else { "disabled" });
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
        let m: MirrorConfig =
            serde_yaml::from_value(value).map_err(|e| usage(format!("mirror `{name}`: {e}")))?;
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
            .map(|e| mirror_json(&e.mirror))
            .collect();
        return print_json(&json!({ "mirrors": v }));
    }
    if loaded.mirrors.is_empty() {
        println!("no mirrors (add one with `git-pushmirror add NAME URL`)");
    }
    for e in &loaded.mirrors {
        let m = &e.mirror;
        println!(
            "{}\t{}\t{}",
            m.name,
            url::mask(&m.url),
            if m.enabled { "enabled" } else { "disabled" }
        );
    }
    Ok(0)
}

fn show(paths: &RepoPaths, name: &str, json_out: bool) -> Result<i32, Fail> {
    let loaded = config::load(paths)?;
    let e = loaded
        .mirrors
        .iter()
        .find(|e| e.mirror.name == name)
        .ok_or_else(|| Fail(1, format!("no mirror named `{name}`")))?;
    let mut v = mirror_json(&e.mirror);
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
        let (v, bad) = mirror_status(paths, e, &contents, now);
        unhealthy |= bad;
        mirrors.push(v);
    }
    if let Some(n) = name {
        if mirrors.is_empty() {
            return Err(Fail(1, format!("no mirror named `{n}`")));
        }
    }
    let doc = json!({
        "repository": paths.git_dir,
        "silent_mode": loaded.server.silent,
        "hook_installed": crate::install::installed(&paths.git_dir),
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
    if doc["hook_installed"] != json!(true) {
        println!("warning: the post-receive hook is not installed (git-pushmirror install)");
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
        println!(
            "  pending:        {} (oldest {}s)",
            s(&m["pending_updates"]),
            s(&m["oldest_pending_age_seconds"])
        );
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
        if !loaded.mirrors.iter().any(|e| e.mirror.name == n) {
            return Err(Fail(1, format!("no mirror named `{n}`")));
        }
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
            if !crate::hook::flusher_running(paths) {
                // The flusher may have exited between our request and its start; ask again.
                std::thread::sleep(Duration::from_millis(200));
                let st = state::load(&paths.state_dir(), &e.mirror.name)?;
                if st.last_update_started_at.is_none_or(|s| s < t0)
                    && !crate::hook::flusher_running(paths)
                {
                    crate::hook::spool_and_wake_forced(paths, &[]).map_err(|e| Fail(1, e))?;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Ok(if failed { 1 } else { 0 })
}

/// Every repository under `root` with pending work or a failed mirror gets a flusher, at most
/// `concurrency` at a time (the flushers also share the server-wide push slots).
fn sweep(root: &Path) -> Result<i32, Fail> {
    if !root.is_dir() {
        return Err(usage(format!("--root {}: not a directory", root.display())));
    }
    let (server, _) = config::ServerConfig::load()?;
    let mut repos = Vec::new();
    find_repos(root, 0, &mut repos);
    let exe = std::env::current_exe()?;
    let mut running: Vec<std::process::Child> = Vec::new();
    let mut started = 0usize;
    for git_dir in repos {
        let paths = RepoPaths::new(&git_dir);
        let Ok(loaded) = config::load(&paths) else {
            eprintln!(
                "git-pushmirror: {}: config error, skipped (run status there)",
                git_dir.display()
            );
            continue;
        };
        let spool = Spool::new(&paths.dir);
        let Ok(contents) = spool.lock().and_then(|l| spool.read(&l)) else {
            continue;
        };
        let mut forces = Vec::new();
        let mut work = false;
        for e in loaded.mirrors.iter().filter(|e| e.mirror.enabled) {
            let st = state::load(&paths.state_dir(), &e.mirror.name).unwrap_or_default();
            let pending = crate::flusher::pending_for(&contents, &e.mirror.name, st.cursor);
            if st.update_status == UpdateStatus::Failed
                && (pending.is_some() || st.gave_up_at_seq.is_some())
            {
                forces.push(e.mirror.name.clone());
            }
            work |= pending.is_some();
        }
        if forces.is_empty() && !work {
            continue;
        }
        if !forces.is_empty() {
            let _lock = spool.lock()?;
            spool.append(&_lock, &[], &forces, crate::time::now_ms())?;
        }
        while running.len() >= server.concurrency() {
            running.retain_mut(|c| !matches!(c.try_wait(), Ok(Some(_))));
            std::thread::sleep(Duration::from_millis(50));
        }
        let child = std::process::Command::new(&exe)
            .arg("--repo")
            .arg(&git_dir)
            .arg("flush")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        running.push(child);
        started += 1;
        println!("{}: flushing", git_dir.display());
    }
    for mut c in running {
        let _ = c.wait();
    }
    println!(
        "sweep: {started} repositor{} flushed",
        if started == 1 { "y" } else { "ies" }
    );
    Ok(0)
}

fn find_repos(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    if depth > 8 {
        return;
    }
    if dir.join("HEAD").is_file() && dir.join("objects").is_dir() {
        if dir.join("pushmirror").is_dir() {
            out.push(dir.to_path_buf());
        }
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
