//! The harness of the benchmark: the static release binary it measures, the temp world the
//! scenarios run in ([`Bench`]), timing, statistics and the [`Table`] they print.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::servers::{self, SshServer};

/// The sshd serving the SSH mirrors, its repositories under `<temp dir>/ssh`; or why there is
/// none (the SSH rows then say "skipped: ..." instead of failing the run).
pub(crate) fn start_sshd(b: &Bench) -> Result<SshServer, String> {
    // `have_in(.., false)`: warn and skip even under CI=true, where the tests' `have` panics.
    let missing: Vec<&str> = SshServer::REQUIRES
        .iter()
        .copied()
        .filter(|p| !servers::have_in(p, false))
        .collect();
    if !missing.is_empty() {
        return Err(format!("skipped: {} not installed", missing.join(", ")));
    }
    let root = b.path("ssh");
    // Its panic message (with sshd's log) goes to stderr; the bench goes on without SSH rows.
    std::panic::catch_unwind(|| SshServer::start(&root)).map_err(|_| {
        eprintln!("bench: WARNING: sshd did not start; the SSH rows are skipped");
        "skipped: sshd did not start (see stderr)".to_string()
    })
}

/// The binary to measure: `GIT_PUSHMIRROR_BIN`, or the static release binary exactly as
/// `install.sh` builds and ships it (crt-static, explicit `--target`), so the figures are for what
/// servers run, whatever profile this bench program itself was built with.
pub(crate) fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("GIT_PUSHMIRROR_BIN").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "GIT_PUSHMIRROR_BIN={} is not a file",
            p.display()
        );
        return std::fs::canonicalize(&p).unwrap_or(p);
    }
    const TARGET: &str = "x86_64-unknown-linux-gnu";
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!(
        "bench: static release build (as install.sh) in {}",
        root.display()
    );
    // Cargo's own output stays on stderr: stdout is for the table only.
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--bin",
            "git-pushmirror",
            "--target",
            TARGET,
        ])
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(Stdio::from(std::io::stderr()))
        .status()
        .expect("run cargo build --release");
    assert!(status.success(), "cargo build --release failed");
    // CARGO_TARGET_DIR moves the target directory; honour it like cargo does.
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let target = if target.is_absolute() {
        target
    } else {
        root.join(target)
    };
    let p = target.join(TARGET).join("release").join("git-pushmirror");
    assert!(
        p.is_file(),
        "{} missing after cargo build --release",
        p.display()
    );
    p
}

// ---------------------------------------------------------------------------------------------
// The world the scenarios run in

/// A temp dir with its own server config and runtime dir, and the isolation every child gets.
/// Dropping it waits for the flushers it started (up to 30 s), kills any left, then removes the
/// temp dir.
pub(crate) struct Bench {
    pub(crate) bin: PathBuf,
    pub(crate) server_config: PathBuf,
    pub(crate) runtime: PathBuf,
    pub(crate) dir: tempfile::TempDir,
}

impl Bench {
    pub(crate) fn new(bin: PathBuf) -> Bench {
        let dir = tempfile::Builder::new()
            .prefix("pm-bench-")
            .tempdir()
            .expect("temp dir");
        let server_config = dir.path().join("server.yaml");
        std::fs::write(&server_config, "").expect("write server config");
        let runtime = dir.path().join("run");
        std::fs::create_dir(&runtime).expect("runtime dir");
        eprintln!(
            "bench: binary {}, temp dir {}",
            bin.display(),
            dir.path().display()
        );
        Bench {
            bin,
            server_config,
            runtime,
            dir,
        }
    }

    pub(crate) fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub(crate) fn cmd(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(program);
        for k in [
            "GIT_DIR",
            "GIT_WORK_TREE",
            "GIT_INDEX_FILE",
            "GIT_OBJECT_DIRECTORY",
            "GIT_NAMESPACE",
        ] {
            c.env_remove(k);
        }
        c.env("GIT_PUSHMIRROR_CONFIG", &self.server_config)
            .env("GIT_PUSHMIRROR_RUNTIME_DIR", &self.runtime)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "Bench")
            .env("GIT_AUTHOR_EMAIL", "bench@example.com")
            .env("GIT_COMMITTER_NAME", "Bench")
            .env("GIT_COMMITTER_EMAIL", "bench@example.com")
            .env("GIT_TERMINAL_PROMPT", "0")
            .stdin(Stdio::null());
        c
    }

    pub(crate) fn git_out(&self, dir: &Path, args: &[&str]) -> std::process::Output {
        self.cmd("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .expect("run git")
    }

    pub(crate) fn git(&self, dir: &Path, args: &[&str]) -> String {
        let out = self.git_out(dir, args);
        assert!(
            out.status.success(),
            "git {args:?} in {} failed: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub(crate) fn pm_ok(&self, repo: &Path, args: &[&str]) -> String {
        let out = self
            .cmd(&self.bin)
            .arg("--repo")
            .arg(repo)
            .args(args)
            .output()
            .expect("run git-pushmirror");
        assert!(
            out.status.success(),
            "git-pushmirror {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub(crate) fn mirror_status(&self, repo: &Path, name: &str) -> serde_json::Value {
        let out = self
            .cmd(&self.bin)
            .arg("--repo")
            .arg(repo)
            .args(["status", "--json"])
            .output()
            .expect("run status");
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "status --json: {e}: {}",
                String::from_utf8_lossy(&out.stdout)
            )
        });
        doc["mirrors"]
            .as_array()
            .and_then(|ms| ms.iter().find(|m| m["name"] == name).cloned())
            .unwrap_or_else(|| panic!("no mirror {name} in status: {doc}"))
    }

    pub(crate) fn bare(&self, name: &str) -> PathBuf {
        let p = self.path(name);
        self.init_bare(&p);
        p
    }

    pub(crate) fn init_bare(&self, p: &Path) {
        self.git(
            self.dir.path(),
            &["init", "-q", "--bare", "-b", "main", path_str(p)],
        );
    }

    /// A bare mirror repository reached by its local path.
    pub(crate) fn local_target(&self, name: &str) -> Target {
        let dir = self.bare(name);
        Target {
            url: path_str(&dir).to_string(),
            dir,
            add_opts: Vec::new(),
            ssh_command: None,
        }
    }

    /// A bare mirror repository under the sshd's root, reached as `ssh://...@127.0.0.1:PORT/...`
    /// with the server's client key and known_hosts.
    pub(crate) fn ssh_target(&self, ssh: &SshServer, name: &str) -> Target {
        let dir = ssh.root.join(name);
        self.init_bare(&dir);
        Target {
            dir,
            url: ssh.url(name),
            add_opts: vec![
                "--ssh-key".into(),
                path_str(&ssh.client_key).into(),
                "--known-hosts".into(),
                path_str(&ssh.known_hosts).into(),
            ],
            ssh_command: Some(ssh.ssh_command()),
        }
    }

    /// `git-pushmirror add NAME URL` for the target, with its auth options and `opts`.
    pub(crate) fn add_mirror(&self, up: &Path, name: &str, t: &Target, opts: &[&str]) {
        let mut args = vec!["add", name, &t.url];
        args.extend(t.add_opts.iter().map(String::as_str));
        args.extend_from_slice(opts);
        self.pm_ok(up, &args);
    }

    /// `git -C DIR ARGS... URL` against a mirror, with its SSH command when it has one.
    pub(crate) fn git_to(&self, dir: &Path, args: &[&str], t: &Target) -> Command {
        let mut c = self.cmd("git");
        c.arg("-C").arg(dir).args(args).arg(&t.url);
        if let Some(ssh) = &t.ssh_command {
            c.env("GIT_SSH_COMMAND", ssh);
        }
        c
    }

    /// `git ARGS` in `dir` with `input` on stdin; returns stdout.
    pub(crate) fn git_stdin(&self, dir: &Path, args: &[&str], input: &str) -> String {
        let mut child = self
            .cmd("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run git");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write git stdin");
        let out = child.wait_with_output().expect("wait git");
        assert!(
            out.status.success(),
            "git {args:?} in {} failed: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// `sync NAME --wait` as a user runs it (a cold request when no flusher runs). Returns its
    /// wall time, and [`Bench::last_sync`].
    pub(crate) fn sync_wait(&self, up: &Path, name: &str) -> (Duration, Duration, u64) {
        let t = Instant::now();
        self.pm_ok(up, &["sync", name, "--wait"]);
        let wall = t.elapsed();
        let (recorded, refs) = self.last_sync(up, name);
        (wall, recorded, refs)
    }

    /// The mirror's state file `pushmirror/state/NAME.json`, as the flusher last wrote it; None
    /// while there is none.
    pub(crate) fn state(&self, up: &Path, name: &str) -> Option<serde_json::Value> {
        let p = up
            .join("pushmirror")
            .join("state")
            .join(format!("{name}.json"));
        let text = std::fs::read(&p).ok()?;
        Some(serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
    }

    /// The mirror's last sync as the flusher recorded it in its state file:
    /// `last_update_started_at` → `last_update_at` (whole milliseconds), and how many refs it
    /// sent.
    pub(crate) fn last_sync(&self, up: &Path, name: &str) -> (Duration, u64) {
        let st = self
            .state(up, name)
            .unwrap_or_else(|| panic!("{}: no state for mirror {name}", up.display()));
        self.last_sync_of(&st)
    }

    /// [`Bench::last_sync`] of a state already read.
    pub(crate) fn last_sync_of(&self, st: &serde_json::Value) -> (Duration, u64) {
        let at = |k: &str| {
            st[k]
                .as_u64()
                .unwrap_or_else(|| panic!("no {k} in a mirror state after a sync: {st}"))
        };
        let recorded = at("last_update_at").saturating_sub(at("last_update_started_at"));
        (Duration::from_millis(recorded), at("refs_pushed_last"))
    }

    /// Waits until the mirror's first sync ever has ended (finished or failed) and returns its
    /// state; None if it had not after `limit`.
    pub(crate) fn first_sync(
        &self,
        up: &Path,
        name: &str,
        limit: Duration,
    ) -> Option<serde_json::Value> {
        let end = Instant::now() + limit;
        loop {
            let st = self.state(up, name);
            if st.as_ref().is_some_and(|st| st["last_update_at"].is_u64()) {
                return st;
            }
            if Instant::now() > end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// A bare upstream with our hook installed.
    pub(crate) fn upstream(&self, name: &str) -> PathBuf {
        let p = self.bare(name);
        self.pm_ok(&p, &["install"]);
        p
    }

    /// A fresh working repository to commit and push from (no remotes yet).
    pub(crate) fn worktree(&self, name: &str) -> PathBuf {
        let p = self.path(name);
        self.git(self.dir.path(), &["init", "-q", "-b", "main", path_str(&p)]);
        p
    }

    /// A commit changing one small file; returns its id.
    pub(crate) fn commit(&self, wc: &Path, i: usize) -> String {
        std::fs::write(wc.join("counter.txt"), format!("{i}\n")).expect("write file");
        self.git(wc, &["add", "counter.txt"]);
        self.git(wc, &["commit", "-q", "-m", &format!("commit {i}")]);
        self.git(wc, &["rev-parse", "HEAD"])
    }

    /// An upstream with one mirror (extra `add` options) and two commits on main, the flusher
    /// done with them; returns the upstream, the mirror and a realistic stdin line for the hook.
    pub(crate) fn upstream_with_commits(
        &self,
        name: &str,
        add_opts: &[&str],
    ) -> (PathBuf, PathBuf, String) {
        let up = self.upstream(&format!("{name}.git"));
        let mirror = self.local_target(&format!("{name}-mirror.git"));
        self.add_mirror(&up, "m", &mirror, add_opts);
        let wc = self.worktree(&format!("wc-{name}"));
        self.git(&wc, &["remote", "add", "origin", path_str(&up)]);
        let old = self.commit(&wc, 0);
        let new = self.commit(&wc, 1);
        self.git(&wc, &["push", "-q", "origin", "main"]);
        self.wait_flushers(Duration::from_secs(60));
        (up, mirror.dir, format!("{old} {new} refs/heads/main\n"))
    }

    /// One run of a hook command `c` as receive-pack would start it: GIT_DIR set, working directory
    /// the repository, the ref updates on stdin. Returns the wall time from spawn to exit.
    pub(crate) fn run_hook(&self, c: &mut Command, git_dir: &Path, stdin_line: &str) -> Duration {
        c.env("GIT_DIR", git_dir).current_dir(git_dir);
        c.stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let t = Instant::now();
        let mut child = c.spawn().expect("spawn hook");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin_line.as_bytes())
            .expect("write hook stdin");
        let out = child.wait_with_output().expect("wait hook");
        let d = t.elapsed();
        if !out.status.success() || !out.stderr.is_empty() {
            eprintln!(
                "bench: hook said ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        d
    }

    /// Flushers started from this bench (their command line names our temp dir).
    pub(crate) fn flushers(&self) -> Vec<u32> {
        let needle = self.dir.path().to_string_lossy().into_owned();
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
            let args: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
            if args.iter().any(|a| *a == b"flush")
                && args
                    .iter()
                    .any(|a| String::from_utf8_lossy(a).contains(&needle))
            {
                out.push(pid);
            }
        }
        out
    }

    /// Waits until no flusher of ours runs; false if some still did after `limit`.
    pub(crate) fn wait_flushers(&self, limit: Duration) -> bool {
        let end = Instant::now() + limit;
        loop {
            if self.flushers().is_empty() {
                return true;
            }
            if Instant::now() > end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        if !self.wait_flushers(Duration::from_secs(30)) {
            let left = self.flushers();
            eprintln!("bench: flushers still running after 30 s, killing {left:?}");
            for pid in left {
                let _ = Command::new("kill")
                    .arg("-9")
                    .arg(pid.to_string())
                    .stderr(Stdio::null())
                    .status();
            }
            self.wait_flushers(Duration::from_secs(5));
        }
    }
}

/// A mirror repository as the scenarios reach it: by its local path, or over SSH on loopback.
pub(crate) struct Target {
    /// The bare repository on disk, to check what it holds.
    pub(crate) dir: PathBuf,
    /// What `git push`, `git ls-remote` and `git-pushmirror add` are given.
    pub(crate) url: String,
    /// Options `add` needs for it (the SSH key and known_hosts).
    pub(crate) add_opts: Vec<String>,
    /// GIT_SSH_COMMAND for a plain `git` talking to it (SSH only).
    pub(crate) ssh_command: Option<String>,
}

/// The naive hook: a synchronous `git push --mirror` to the mirror on every push (over SSH with
/// the key and known_hosts the mirror needs, as an admin would write it).
pub(crate) fn write_naive_hook(upstream: &Path, mirror: &Target) {
    let env = mirror
        .ssh_command
        .as_ref()
        .map(|c| format!("export GIT_SSH_COMMAND={}\n", sh_quote(c)))
        .unwrap_or_default();
    write_hook(
        upstream,
        &format!(
            "#!/bin/sh\n{env}exec git push --quiet --mirror {}\n",
            sh_quote(&mirror.url)
        ),
    );
}

pub(crate) fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

pub(crate) fn write_hook(upstream: &Path, script: &str) {
    use std::os::unix::fs::PermissionsExt;
    let hook = upstream.join("hooks").join("post-receive");
    std::fs::write(&hook, script).expect("write hook");
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).expect("chmod hook");
}

/// Whether the ELF file has a PT_INTERP program header (is dynamically linked); None if it is not
/// a 64-bit little-endian ELF file we can read.
pub(crate) fn elf_interpreter(path: &Path) -> Option<bool> {
    let data = std::fs::read(path).ok()?;
    if data.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let u16_at = |o: usize| {
        data.get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
    };
    let phoff = u64::from_le_bytes(data.get(0x20..0x28)?.try_into().ok()?) as usize;
    let (phentsize, phnum) = (u16_at(0x36)?, u16_at(0x38)?);
    for i in 0..phnum {
        let o = phoff + i * phentsize;
        let p_type = u32::from_le_bytes(data.get(o..o + 4)?.try_into().ok()?);
        if p_type == 3 {
            return Some(true);
        }
    }
    Some(false)
}

/// The mirror's main, or "" when it has none yet.
pub(crate) fn rev(b: &Bench, git_dir: &Path) -> String {
    let out = b
        .cmd("git")
        .arg("--git-dir")
        .arg(git_dir)
        .args(["rev-parse", "-q", "--verify", "refs/heads/main"])
        .output()
        .expect("run git rev-parse");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

pub(crate) fn counter(status: &serde_json::Value, key: &str) -> i64 {
    status[key].as_i64().unwrap_or(0)
}

pub(crate) fn timed(c: &mut Command) -> Duration {
    c.stdout(Stdio::null()).stderr(Stdio::null());
    let t = Instant::now();
    let st = c.status().expect("spawn");
    let d = t.elapsed();
    assert!(st.success(), "{c:?} failed");
    d
}

pub(crate) fn path_str(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

// ---------------------------------------------------------------------------------------------
// Statistics and the table

/// Median and p99 (nearest rank) of a sample, in milliseconds ([`Stats::of`]).
pub(crate) struct Stats {
    pub(crate) n: usize,
    pub(crate) median: f64,
    pub(crate) p99: f64,
}

impl Stats {
    pub(crate) fn of(v: Vec<Duration>) -> Stats {
        Stats::of_values(v.iter().map(|d| d.as_secs_f64() * 1000.0).collect())
    }

    /// The same for plain values (in whatever unit they come).
    pub(crate) fn of_values(mut v: Vec<f64>) -> Stats {
        assert!(!v.is_empty());
        v.sort_by(f64::total_cmp);
        let rank = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
        Stats {
            n: v.len(),
            median: rank(0.50),
            p99: rank(0.99),
        }
    }
}

pub(crate) fn diff(a: f64, b: f64) -> f64 {
    a - b
}

pub(crate) fn ms(v: f64) -> String {
    if v >= 1000.0 {
        format!("{:.3} s", v / 1000.0)
    } else {
        format!("{v:.2} ms")
    }
}

pub(crate) fn signed_ms(v: f64) -> String {
    if v < 0.0 {
        format!("−{}", ms(-v))
    } else {
        format!("+{}", ms(v))
    }
}

pub(crate) fn plus(a: f64, reference: f64) -> String {
    signed_ms(a - reference)
}

pub(crate) fn kib(k: u64) -> String {
    format!("{k} KiB ({:.1} MiB)", k as f64 / 1024.0)
}

pub(crate) fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

pub(crate) fn verdict(p50_ok: bool, p99_ok: bool) -> &'static str {
    match (p50_ok, p99_ok) {
        (true, true) => "met",
        (false, false) => "MISSED both",
        (false, true) => "p50 MISSED",
        (true, false) => "p99 MISSED",
    }
}

#[derive(Default)]
pub(crate) struct Table {
    pub(crate) rows: Vec<[String; 5]>,
}

impl Table {
    /// A row of a measured distribution: its n, median and p99 in milliseconds.
    pub(crate) fn stats(&mut self, scenario: &str, s: &Stats, reference: String) {
        self.row(scenario, s.n, ms(s.median), ms(s.p99), reference);
    }

    pub(crate) fn row(
        &mut self,
        scenario: &str,
        n: usize,
        median: String,
        p99: String,
        reference: String,
    ) {
        self.rows
            .push([scenario.to_string(), n.to_string(), median, p99, reference]);
    }

    pub(crate) fn print(&self) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "| scenario | n | median | p99 | vs reference |");
        let _ = writeln!(out, "|---|---:|---:|---:|---|");
        for r in &self.rows {
            let cells: Vec<String> = r.iter().map(|c| c.replace('|', "\\|")).collect();
            let _ = writeln!(out, "| {} |", cells.join(" | "));
        }
    }
}
