//! Shared test harness: real bare repositories with the hook installed, real `git` clients, and
//! the loopback servers of `servers.rs`. Every test gets its own temp dir, server-wide config and
//! runtime dir; dropping the `Env` kills any flusher still running from it.
#![allow(dead_code)]

pub mod fixtures;
pub mod servers;

#[allow(unused_imports)]
pub use fixtures::*;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_git-pushmirror"))
}

/// Runs `c` with `input` on its stdin (and its stdout and stderr captured).
pub fn output_with_stdin(mut c: Command, input: &[u8]) -> Output {
    use std::io::Write;
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("write stdin");
    child.wait_with_output().expect("wait")
}

pub struct Env {
    pub dir: tempfile::TempDir,
    pub server_config: PathBuf,
    pub runtime: PathBuf,
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::Builder::new()
            .prefix("pm-test-")
            .tempdir()
            .expect("tempdir");
        let server_config = dir.path().join("server.yaml");
        let runtime = dir.path().join("run");
        std::fs::write(&server_config, "").unwrap();
        Env {
            dir,
            server_config,
            runtime,
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Applies the isolation every child needs: our server config, our runtime dir, no user or
    /// system git config, fixed identity.
    pub fn cmd(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(program);
        c.env("GIT_PUSHMIRROR_CONFIG", &self.server_config)
            .env("GIT_PUSHMIRROR_RUNTIME_DIR", &self.runtime)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "Test")
            .env("GIT_AUTHOR_EMAIL", "test@example.com")
            .env("GIT_COMMITTER_NAME", "Test")
            .env("GIT_COMMITTER_EMAIL", "test@example.com")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env_remove("GIT_DIR")
            .stdin(Stdio::null());
        c
    }

    pub fn git(&self, dir: &Path, args: &[&str]) -> String {
        let out = self
            .cmd("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .expect("run git");
        assert!(
            out.status.success(),
            "git {args:?} in {} failed: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn git_out(&self, dir: &Path, args: &[&str]) -> Output {
        self.cmd("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .expect("run git")
    }

    /// `git-pushmirror --repo <repo> <args>`.
    pub fn pm(&self, repo: &Path, args: &[&str]) -> Output {
        self.cmd(bin())
            .arg("--repo")
            .arg(repo)
            .args(args)
            .output()
            .expect("run git-pushmirror")
    }

    pub fn pm_ok(&self, repo: &Path, args: &[&str]) -> String {
        let out = self.pm(repo, args);
        assert!(
            out.status.success(),
            "git-pushmirror {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn write_server_config(&self, yaml: &str) {
        std::fs::write(&self.server_config, yaml).unwrap();
    }

    /// A bare repository (`extra` are `git init` options such as `--object-format=sha256`).
    pub fn bare(&self, name: &str, extra: &[&str]) -> PathBuf {
        let p = self.path(name);
        let mut args = vec!["init", "-q", "--bare", "-b", "main"];
        args.extend_from_slice(extra);
        args.push(p.to_str().unwrap());
        self.git(self.dir.path(), &args);
        p
    }

    /// A bare upstream with the hook installed.
    pub fn upstream(&self, name: &str) -> PathBuf {
        let p = self.bare(name, &[]);
        self.pm_ok(&p, &["install"]);
        p
    }

    /// A working clone of `repo` to commit and push from.
    pub fn clone(&self, repo: &Path, name: &str) -> PathBuf {
        let p = self.path(name);
        self.git(
            self.dir.path(),
            &["clone", "-q", repo.to_str().unwrap(), p.to_str().unwrap()],
        );
        self.git(&p, &["checkout", "-q", "-B", "main"]);
        p
    }

    /// An empty commit on the current branch of `wc`; returns its id.
    pub fn commit(&self, wc: &Path, msg: &str) -> String {
        self.git(wc, &["commit", "-q", "--allow-empty", "-m", msg]);
        self.git(wc, &["rev-parse", "HEAD"])
    }

    /// `git push` from `wc` to origin; returns the output (stderr holds `remote:` lines).
    pub fn push(&self, wc: &Path, args: &[&str]) -> Output {
        let mut a = vec!["push", "-q", "origin"];
        a.extend_from_slice(args);
        let out = self.git_out(wc, &a);
        assert!(
            out.status.success(),
            "push {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Like `push`, but retries the "cannot lock ref" refusal real servers give concurrent
    /// pushers to one ref, as a real client's user would.
    pub fn push_retrying(&self, wc: &Path, args: &[&str]) {
        let mut a = vec!["push", "-q", "origin"];
        a.extend_from_slice(args);
        // Eight clients racing for one ref can lose many rounds in a row on a loaded machine:
        // back off with jitter (so the losers do not retry in lockstep) until a generous
        // deadline, as a user retrying by hand would.
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut attempt: u64 = 0;
        loop {
            let out = self.git_out(wc, &a);
            if out.status.success() {
                return;
            }
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.contains("cannot lock ref") || err.contains("failed to update ref"),
                "push {args:?} failed: {err}"
            );
            assert!(
                Instant::now() < deadline,
                "push {args:?} kept failing on ref locks for 120 s: {err}"
            );
            attempt += 1;
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos() as u64)
                .unwrap_or(0);
            let cap = 10 * attempt.min(20);
            std::thread::sleep(Duration::from_millis(5 + nanos % cap.max(1)));
        }
    }

    pub fn refs(&self, repo: &Path) -> BTreeMap<String, String> {
        self.git(repo, &["for-each-ref", "--format=%(refname) %(objectname)"])
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(r, o)| (r.to_string(), o.to_string()))
            .collect()
    }

    /// Branches and tags only: what a mirror should end up with.
    pub fn heads_and_tags(&self, repo: &Path) -> BTreeMap<String, String> {
        self.refs(repo)
            .into_iter()
            .filter(|(r, _)| r.starts_with("refs/heads/") || r.starts_with("refs/tags/"))
            .collect()
    }

    pub fn status_json(&self, repo: &Path) -> serde_json::Value {
        let out = self.pm(repo, &["status", "--json"]);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "status --json: {e}: {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    pub fn mirror_status(&self, repo: &Path, name: &str) -> serde_json::Value {
        let doc = self.status_json(repo);
        doc["mirrors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no mirror {name} in {doc}"))
    }

    pub fn log(&self, repo: &Path) -> String {
        std::fs::read_to_string(repo.join("pushmirror/log")).unwrap_or_default()
    }

    /// Waits (polling, generous deadline) until `mirror`'s branches and tags equal `upstream`'s.
    pub fn wait_mirrored(&self, upstream: &Path, mirror: &Path) {
        let want = self.heads_and_tags(upstream);
        let ok = wait_until(Duration::from_secs(180), || {
            self.heads_and_tags(mirror) == want
        });
        assert!(
            ok,
            "mirror {} never matched upstream\nwant {want:?}\ngot  {:?}\nlog:\n{}",
            mirror.display(),
            self.heads_and_tags(mirror),
            self.log(upstream)
        );
    }

    /// Waits until no flusher of this test is running.
    pub fn wait_flushers_gone(&self) -> bool {
        wait_until(Duration::from_secs(180), || {
            flusher_pids(self.dir.path()).is_empty()
        })
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for pid in flusher_pids(self.dir.path()) {
            unsafe_kill(pid);
        }
        // SSH connection masters kept for later syncs (`ssh_persist`) end after idling; the
        // test's are ended now (their sockets are in the runtime dir: `ssh: <socket> [mux]`).
        for pid in mux_pids(&self.runtime) {
            unsafe_kill(pid);
        }
    }
}

/// Polls `f` every 50 ms until it holds or `limit` passes.
pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Flusher processes whose command line mentions `under` (our temp dir).
pub fn flusher_pids(under: &Path) -> Vec<u32> {
    let needle = under.to_string_lossy().into_owned();
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmd
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args.iter().any(|a| a == "flush") && args.iter().any(|a| a.contains(&needle)) {
            // Zombies have an empty cmdline, so anything here is alive.
            out.push(pid);
        }
    }
    out
}

/// SSH connection masters whose socket is under `runtime` (`ssh: <socket> [mux]`).
pub fn mux_pids(runtime: &Path) -> Vec<u32> {
    let needle = runtime.to_string_lossy().into_owned();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&cmd);
            (cmd.contains(&needle) && cmd.contains("[mux]")).then_some(pid)
        })
        .collect()
}

pub fn unsafe_kill(pid: u32) {
    let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
}

// ---------------------------------------------------------------------------------------------
// Helpers the test files share: output text, files, skipping, waiting for a mirror to settle,
// a hooked upstream with a mirror.

/// How long a mirror may take to reach a state (generous: CI has 2 cores).
const SETTLE_DEADLINE: Duration = Duration::from_secs(180);

/// A path as the `&str` argv wants.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// stdout and stderr of a command, one after the other.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Permission bits of `p` itself (a symlink is not followed).
pub fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

pub fn write_mode(path: &Path, contents: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, contents).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// An executable script at `path` (its directory created if needed).
pub fn write_exec(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    write_mode(path, text, 0o755);
}

/// Whether `program args` ran and succeeded, its output discarded.
pub fn run_quiet(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Says that a test is skipped because `what` is not installed; true, for `no_x() -> bool`.
pub fn skip(what: &str) -> bool {
    eprintln!("\n*** SKIPPED: {what} is not installed (run tests/install-deps.sh) ***\n");
    true
}

pub fn no_https() -> bool {
    !servers::have_all(servers::HttpsServer::REQUIRES) && skip("nginx/fcgiwrap/openssl")
}

pub fn no_ssh() -> bool {
    !servers::have_all(servers::SshServer::REQUIRES) && skip("sshd/ssh")
}

/// A test that needs something this machine does not permit (root, a mount): skipped, or a
/// failure under CI.
pub fn unavailable(what: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("{what} is required under CI but not permitted here");
    }
    eprintln!("SKIPPED: {what} is not permitted here (run as root, or set CI=true to fail)");
}

/// `git-pushmirror --repo <repo> <args>` with extra environment variables.
pub fn pm_with(env: &Env, repo: &Path, args: &[&str], vars: &[(&str, &str)]) -> Output {
    let mut c = env.cmd(bin());
    c.arg("--repo").arg(repo).args(args);
    for (k, v) in vars {
        c.env(k, v);
    }
    c.output().expect("run git-pushmirror")
}

/// Waits until mirror `name`'s status satisfies `pred` (`what` names that state in the failure
/// message), and returns that status.
pub fn wait_mirror(
    env: &Env,
    up: &Path,
    name: &str,
    what: &str,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let ok = wait_until(SETTLE_DEADLINE, || pred(&env.mirror_status(up, name)));
    let m = env.mirror_status(up, name);
    assert!(
        ok,
        "mirror {name} never got {what}: {m:#}\nlog:\n{}",
        env.log(up)
    );
    m
}

/// Waits until mirror `name` has finished an update with nothing pending, and checks it succeeded.
pub fn wait_finished(env: &Env, up: &Path, name: &str) -> serde_json::Value {
    let m = wait_mirror(env, up, name, "finished", |m| {
        m["update_status"] == "finished" && m["pending_updates"] == 0
    });
    assert!(m["last_error"].is_null(), "{m:#}");
    assert!(m["last_successful_update_at"].is_string(), "{m:#}");
    m
}

/// Waits until mirror `name` failed and gave up, and its flusher exited.
pub fn wait_gave_up(env: &Env, up: &Path, name: &str) -> serde_json::Value {
    wait_mirror(env, up, name, "failed and given up", |m| {
        m["update_status"] == "failed" && m["gave_up"] == true
    });
    assert!(
        env.wait_flushers_gone(),
        "flusher kept running after giving up on {name}\nlog:\n{}",
        env.log(up)
    );
    env.mirror_status(up, name)
}

/// `add NAME MIRROR --debounce 100ms` on `up`.
pub fn add_mirror(env: &Env, up: &Path, name: &str, mirror: &Path) {
    env.pm_ok(
        up,
        &["add", name, mirror.to_str().unwrap(), "--debounce", "100ms"],
    );
}

/// A hooked upstream `up.git` with mirror `m` at `mirror`, a clone `wc` of it, one commit pushed
/// and mirrored, and no flusher left running: (upstream, mirror, clone).
pub fn synced_pair(env: &Env, mirror: PathBuf) -> (PathBuf, PathBuf, PathBuf) {
    let up = env.upstream("up.git");
    add_mirror(env, &up, "m", &mirror);
    let wc = env.clone(&up, "wc");
    env.commit(&wc, "first");
    env.push(&wc, &["main"]);
    env.wait_mirrored(&up, &mirror);
    assert!(env.wait_flushers_gone());
    (up, mirror, wc)
}

/// Every entry under `dir` that is not a directory (files, symlinks, sockets), recursing into
/// subdirectories without following symlinks; empty when `dir` cannot be read.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// `len` incompressible bytes (xorshift from `seed`), so a push carries a pack that big.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}
