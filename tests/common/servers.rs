//! Real git servers for the integration tests, started on 127.0.0.1 with free
//! ports and all state in temp dirs (see tests/README.md):
//!
//! * [`GitDaemon`]: `git daemon` with receive-pack enabled (git://).
//! * [`HttpsServer`]: nginx (TLS, basic auth) + fcgiwrap + `git http-backend`,
//!   with a CA and server certificate made by the `openssl` CLI for this server.
//! * [`SshServer`]: OpenSSH `sshd` with generated ed25519 host and client keys,
//!   logging in as the current user.
//!
//! Every server runs in its own process group and is killed (group and all)
//! when its value is dropped, so also when a test panics. A small watchdog
//! process per server kills the group too if the test process dies without
//! unwinding (abort, SIGKILL, Ctrl-C).
//!
//! Only std and `tempfile` are used, so the module compiles in any test crate.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::env;
use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long a server may take to become ready (generous: CI has 2 cores).
pub const STARTUP_DEADLINE: Duration = Duration::from_secs(60);
/// Attempts with a fresh port when a server finds its port taken.
const START_ATTEMPTS: usize = 5;

// ---------------------------------------------------------------------------
// Ports, programs, CI
// ---------------------------------------------------------------------------

/// A currently free TCP port on 127.0.0.1: binds port 0, reads it, drops the
/// listener. Never hands out the same port twice within one test process.
pub fn free_port() -> u16 {
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    for _ in 0..1000 {
        let listener =
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("cannot bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local_addr").port();
        drop(listener);
        if HANDED_OUT
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(port)
        {
            return port;
        }
    }
    panic!("free_port: no unused port found");
}

/// Polls until something accepts TCP connections on 127.0.0.1:`port`.
/// Returns false if nothing did before `deadline` elapsed.
pub fn wait_for_port(port: u16, deadline: Duration) -> bool {
    let end = Instant::now() + deadline;
    loop {
        if port_open(port) {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// True when a TCP connect to 127.0.0.1:`port` succeeds right now.
pub fn port_open(port: u16) -> bool {
    TcpStream::connect_timeout(
        &SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        Duration::from_secs(2),
    )
    .is_ok()
}

/// True when running under CI (`CI=true`, as `.ci/run` is run).
pub fn running_in_ci() -> bool {
    matches!(env::var("CI").as_deref(), Ok(v) if v.eq_ignore_ascii_case("true") || v == "1")
}

/// Looks `program` up in PATH, then in /usr/local/sbin, /usr/sbin and /sbin
/// (sshd, nginx and fcgiwrap live there and a non-root PATH may lack them).
pub fn find_program(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        let p = PathBuf::from(program);
        return is_executable(&p).then_some(p);
    }
    let path = env::var_os("PATH").unwrap_or_default();
    env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Whether `program` is installed. When it is missing: under `CI=true` this
/// panics (CI must never silently skip a server test); otherwise it prints a
/// loud warning and returns false, and the caller skips its test.
pub fn have(program: &str) -> bool {
    have_in(program, running_in_ci())
}

/// [`have`] with the CI decision made by the caller (for testing `have`).
pub fn have_in(program: &str, ci: bool) -> bool {
    if find_program(program).is_some() {
        return true;
    }
    if ci {
        panic!(
            "CI=true but `{program}` is not installed: tests/install-deps.sh must install it \
             (CI never skips a server test)"
        );
    }
    eprintln!(
        "\n*** WARNING: `{program}` not found (PATH, /usr/sbin, /sbin); run `tests/install-deps.sh` \
         as root. The test that needs it is SKIPPED. ***\n"
    );
    false
}

/// [`have`] for several programs; reports every missing one.
pub fn have_all(programs: &[&str]) -> bool {
    let missing = programs.iter().filter(|p| !have(p)).count();
    missing == 0
}

fn program(name: &str) -> PathBuf {
    find_program(name)
        .unwrap_or_else(|| panic!("`{name}` is not installed: run tests/install-deps.sh as root"))
}

fn cached_id(flag: &'static str, cell: &'static OnceLock<String>) -> &'static str {
    cell.get_or_init(|| {
        let out = run(Command::new("id").arg(flag), "id");
        out.trim().to_string()
    })
}

/// Name of the user the tests (and so every server) run as.
pub fn current_user() -> &'static str {
    static USER: OnceLock<String> = OnceLock::new();
    cached_id("-un", &USER)
}

fn is_root() -> bool {
    static UID: OnceLock<String> = OnceLock::new();
    cached_id("-u", &UID) == "0"
}

/// `git --exec-path` of the first git in PATH.
pub fn git_exec_path() -> PathBuf {
    static EXEC_PATH: OnceLock<PathBuf> = OnceLock::new();
    EXEC_PATH
        .get_or_init(|| {
            let out = run(
                Command::new(program("git")).arg("--exec-path"),
                "git --exec-path",
            );
            PathBuf::from(out.trim())
        })
        .clone()
}

// ---------------------------------------------------------------------------
// Small process helpers
// ---------------------------------------------------------------------------

/// Runs a command to completion; panics with its output unless it succeeds.
/// Returns stdout.
fn run(cmd: &mut Command, what: &str) -> String {
    run_with_input(cmd, what, None)
}

fn run_with_input(cmd: &mut Command, what: &str, input: Option<&[u8]>) -> String {
    let out = output_with_timeout(cmd, input, Duration::from_secs(120))
        .unwrap_or_else(|| panic!("{what}: could not run or timed out: {cmd:?}"));
    if !out.status.success() {
        panic!(
            "{what} failed ({}): {cmd:?}\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a command with piped stdio, feeding `input` (then closing stdin), and
/// kills it after `timeout`. None when it could not be started or timed out.
fn output_with_timeout(
    cmd: &mut Command,
    input: Option<&[u8]>,
    timeout: Duration,
) -> Option<Output> {
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().ok()?;
    let writer = child.stdin.take().map(|mut stdin| {
        let data = input.unwrap_or_default().to_vec();
        thread::spawn(move || {
            let _ = stdin.write_all(&data);
        })
    });
    let reader = |r: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out_t = reader(
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let err_t = reader(
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let end = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < end => thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    if let Some(w) = writer {
        let _ = w.join();
    }
    let stdout = out_t.join().unwrap_or_default();
    let stderr = err_t.join().unwrap_or_default();
    status.map(|status| Output {
        status,
        stdout,
        stderr,
    })
}

fn tempdir(prefix: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("cannot create temp dir")
}

fn write_file(path: &Path, contents: &str, mode: u32) {
    fs::write(path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

fn absolute_dir(root: &Path) -> PathBuf {
    fs::create_dir_all(root).unwrap_or_else(|e| panic!("create {}: {e}", root.display()));
    fs::canonicalize(root).unwrap_or_else(|e| panic!("canonicalize {}: {e}", root.display()))
}

pub fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for c in data.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                s.push(T[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// Writes an executable GIT_ASKPASS script (mode 0700) answering git's
/// "Username for ..." and "Password for ..." prompts.
pub fn write_askpass(path: &Path, user: &str, password: &str) {
    let q = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let script = format!(
        "#!/bin/sh\ncase \"$1\" in\n  Username*) printf '%s\\n' {} ;;\n  *) printf '%s\\n' {} ;;\nesac\n",
        q(user),
        q(password)
    );
    write_file(path, &script, 0o700);
}

// ---------------------------------------------------------------------------
// A server process: own process group, logs to files, killed on drop
// ---------------------------------------------------------------------------

/// Kills the server's process group when the test process goes away without
/// dropping the server: its stdin is a pipe only the test process holds.
const WATCHDOG: &str = r#"trap '' HUP INT TERM; read _eof; kill -9 "-$1" 2>/dev/null"#;

struct Proc {
    name: String,
    child: Child,
    reaped: Option<ExitStatus>,
    watchdog: Option<Child>,
    logs: Vec<PathBuf>,
}

impl Proc {
    /// Spawns `cmd` as the leader of a new process group with stdin from
    /// /dev/null and stdout+stderr appended to `logs[0]`. The other `logs` are
    /// files the server writes itself; all are shown when startup fails.
    fn spawn(name: &str, mut cmd: Command, logs: Vec<PathBuf>) -> Proc {
        let out = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&logs[0])
            .unwrap_or_else(|e| panic!("open {}: {e}", logs[0].display()));
        let err = out.try_clone().expect("dup log fd");
        cmd.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        // Servers must not see a repository or config injected into the test's env.
        for (k, _) in env::vars_os() {
            let k = k.to_string_lossy();
            if k.starts_with("GIT_") && !k.starts_with("GIT_TRACE") {
                cmd.env_remove(&*k);
            }
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({:?}): {e}", cmd.get_program()));
        let watchdog = Command::new("/bin/sh")
            .arg("-c")
            .arg(WATCHDOG)
            .arg("pushmirror-test-watchdog")
            .arg(child.id().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .ok();
        Proc {
            name: name.to_string(),
            child,
            reaped: None,
            watchdog,
            logs,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn alive(&mut self) -> bool {
        if self.reaped.is_none() {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.reaped = Some(status);
            }
        }
        self.reaped.is_none()
    }

    /// The last lines of every log file.
    fn log(&self) -> String {
        const TAIL: usize = 60;
        let mut s = String::new();
        for p in &self.logs {
            let text = fs::read_to_string(p).unwrap_or_else(|e| format!("<unreadable: {e}>"));
            let lines: Vec<&str> = text.lines().collect();
            let skip = lines.len().saturating_sub(TAIL);
            s.push_str(&format!("----- {} -----\n", p.display()));
            if skip > 0 {
                s.push_str(&format!("[... {skip} earlier lines]\n"));
            }
            for l in &lines[skip..] {
                s.push_str(l);
                s.push('\n');
            }
        }
        s
    }

    /// How often `needle` occurs in the whole of the log files.
    fn log_count(&self, needle: &str) -> usize {
        self.logs
            .iter()
            .map(|p| {
                fs::read_to_string(p)
                    .map(|t| t.matches(needle).count())
                    .unwrap_or(0)
            })
            .sum()
    }

    fn log_contains(&self, needle: &str) -> bool {
        self.logs.iter().any(|p| {
            fs::read_to_string(p)
                .map(|t| t.contains(needle))
                .unwrap_or(false)
        })
    }

    /// Polls until the server is alive, accepts connections on `port` and
    /// `ready` says it is really this server answering. Err carries the logs.
    fn wait_ready(
        &mut self,
        port: u16,
        mut ready: impl FnMut(&Proc) -> bool,
    ) -> Result<(), String> {
        let start = Instant::now();
        loop {
            if !self.alive() {
                return Err(format!(
                    "{} exited during startup ({}); logs:\n{}",
                    self.name,
                    self.reaped.expect("reaped"),
                    self.log()
                ));
            }
            if port_open(port) && ready(self) {
                return Ok(());
            }
            if start.elapsed() >= STARTUP_DEADLINE {
                return Err(format!(
                    "{} not ready on 127.0.0.1:{port} after {:?}; logs:\n{}",
                    self.name,
                    STARTUP_DEADLINE,
                    self.log()
                ));
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    fn stop(&mut self) {
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
        // Kill the whole group only while the leader is unreaped: then its pid,
        // hence the group id, cannot have been reused by anything else.
        if self.reaped.is_none() {
            let _ = Command::new("/bin/sh")
                .arg("-c")
                .arg(r#"kill -9 "-$1" 2>/dev/null"#)
                .arg("sh")
                .arg(self.child.id().to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let _ = self.child.kill();
            if let Ok(status) = self.child.wait() {
                self.reaped = Some(status);
            }
            // SIGKILL is asynchronous: children that inherited the listening
            // socket (git daemon's, sshd's) may still be exiting. Wait until
            // no live process is left in the group, so the port is closed
            // when drop returns.
            let end = Instant::now() + Duration::from_secs(30);
            while group_has_live_process(self.child.id()) && Instant::now() < end {
                thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// True while some process that is not a zombie has process group `pgid`.
fn group_has_live_process(pgid: u32) -> bool {
    let Ok(entries) = fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|e| {
        if !e
            .file_name()
            .to_string_lossy()
            .bytes()
            .all(|b| b.is_ascii_digit())
        {
            return false;
        }
        let Ok(stat) = fs::read_to_string(e.path().join("stat")) else {
            return false;
        };
        // "<pid> (<comm>) <state> <ppid> <pgrp> ..."; comm may contain spaces.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            return false;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next();
        let pgrp = fields.nth(1);
        state != Some("Z") && state != Some("X") && pgrp == Some(&pgid.to_string())
    })
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Calls `attempt` with fresh ports until it succeeds; retries only when the
/// failure was a port already in use (another process took it meanwhile).
fn start_with_retries<T>(what: &str, mut attempt: impl FnMut(u16) -> Result<T, String>) -> T {
    let mut errors = String::new();
    for _ in 0..START_ATTEMPTS {
        let port = free_port();
        match attempt(port) {
            Ok(server) => return server,
            Err(e) if e.contains("in use") => {
                errors.push_str(&format!("port {port}:\n{e}\n"));
            }
            Err(e) => panic!("{what} failed to start on 127.0.0.1:{port}:\n{e}"),
        }
    }
    panic!("{what}: every port was already in use:\n{errors}");
}

// ---------------------------------------------------------------------------
// git daemon
// ---------------------------------------------------------------------------

/// `git daemon --reuseaddr --export-all --enable=receive-pack
/// --base-path=<root> --listen=127.0.0.1 --port=<port> <root>` (plus
/// `--verbose`, for its log), serving and accepting pushes to every
/// repository under `root`.
pub struct GitDaemon {
    pub port: u16,
    pub root: PathBuf,
    proc: Proc,
    dir: TempDir,
}

impl GitDaemon {
    pub const REQUIRES: &'static [&'static str] = &["git"];

    pub fn start(root: &Path) -> GitDaemon {
        let root = absolute_dir(root);
        let dir = tempdir("pm-git-daemon-");
        let git = program("git");
        let (port, proc) = start_with_retries("git daemon", |port| {
            let log = dir.path().join(format!("daemon-{port}.log"));
            let mut cmd = Command::new(&git);
            cmd.args([
                "daemon",
                "--reuseaddr",
                "--export-all",
                "--enable=receive-pack",
                "--verbose",
            ])
            .arg(format!("--base-path={}", root.display()))
            .arg("--listen=127.0.0.1")
            .arg(format!("--port={port}"))
            .arg(&root)
            .current_dir(dir.path());
            let mut proc = Proc::spawn("git daemon", cmd, vec![log]);
            // "Ready to rumble" is logged once it listens: proves it is ours.
            proc.wait_ready(port, |p| p.log_contains("Ready to rumble"))?;
            Ok((port, proc))
        });
        GitDaemon {
            port,
            root,
            proc,
            dir,
        }
    }

    /// `git://127.0.0.1:<port>/<rel>` (`rel` relative to the root).
    pub fn url(&self, rel: &str) -> String {
        format!(
            "git://127.0.0.1:{}/{}",
            self.port,
            rel.trim_start_matches('/')
        )
    }

    pub fn log(&self) -> String {
        self.proc.log()
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }
}

// ---------------------------------------------------------------------------
// HTTPS: nginx + fcgiwrap + git http-backend
// ---------------------------------------------------------------------------

/// `git http-backend` (of the first git in PATH) behind nginx over TLS with
/// basic auth, at `https://127.0.0.1:<port>/git/<repo path under root>`.
///
/// nginx runs in the foreground as a single process (`master_process off`) as
/// the current user, with its own config, pid, logs and temp dirs in a temp
/// dir; fcgiwrap runs the CGI as the current user too. A CA made for this
/// server (`ca_file`) signs its certificate for IP:127.0.0.1 and DNS:localhost.
/// Receive-pack is enabled (`http.receivepack=true` via GIT_CONFIG_*).
pub struct HttpsServer {
    pub port: u16,
    pub ca_file: PathBuf,
    pub root: PathBuf,
    pub user: String,
    pub password: String,
    nginx: Proc,
    fcgiwrap: Proc,
    dir: TempDir,
}

const OPENSSL_CNF: &str = "\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = git-pushmirror test
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[v3_server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid,issuer
";

impl HttpsServer {
    pub const REQUIRES: &'static [&'static str] = &["git", "openssl", "nginx", "fcgiwrap"];

    pub fn start(root: &Path, user: &str, password: &str) -> HttpsServer {
        Self::start_with(root, user, password, "")
    }

    /// `start`, with `extra` (nginx directives, e.g. a `location` that redirects) added to
    /// the server block.
    pub fn start_with(root: &Path, user: &str, password: &str, extra: &str) -> HttpsServer {
        assert!(
            !user.contains(':') && !user.contains('\n') && !password.contains('\n'),
            "user must not contain ':' or newlines"
        );
        let root = absolute_dir(root);
        let dir = tempdir("pm-https-");
        let d = dir.path().to_path_buf();
        let openssl = program("openssl");

        // CA and server certificate.
        let cnf = d.join("openssl.cnf");
        write_file(&cnf, OPENSSL_CNF, 0o600);
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        run(
            Command::new(&openssl)
                .args(["req", "-config"])
                .arg(&cnf)
                .args(["-x509", "-new"])
                .args(ec)
                .args(["-keyout", "ca.key", "-out", "ca.crt", "-days", "3650"])
                .args([
                    "-subj",
                    "/CN=git-pushmirror test CA",
                    "-extensions",
                    "v3_ca",
                ])
                .current_dir(&d),
            "openssl req (CA)",
        );
        run(
            Command::new(&openssl)
                .args(["req", "-config"])
                .arg(&cnf)
                .arg("-new")
                .args(ec)
                .args([
                    "-keyout",
                    "server.key",
                    "-out",
                    "server.csr",
                    "-subj",
                    "/CN=127.0.0.1",
                ])
                .current_dir(&d),
            "openssl req (server)",
        );
        run(
            Command::new(&openssl)
                .args([
                    "x509",
                    "-req",
                    "-in",
                    "server.csr",
                    "-CA",
                    "ca.crt",
                    "-CAkey",
                    "ca.key",
                ])
                .args(["-CAcreateserial", "-CAserial", "ca.srl", "-days", "3650"])
                .args(["-out", "server.crt", "-extfile"])
                .arg(&cnf)
                .args(["-extensions", "v3_server"])
                .current_dir(&d),
            "openssl x509 (sign server cert)",
        );

        // htpasswd; the password goes through stdin, not argv.
        let hash = run_with_input(
            Command::new(&openssl).args(["passwd", "-apr1", "-stdin"]),
            "openssl passwd",
            Some(format!("{password}\n").as_bytes()),
        );
        write_file(
            &d.join("htpasswd"),
            &format!("{user}:{}\n", hash.trim()),
            0o600,
        );

        // fcgiwrap on a unix socket in the temp dir.
        let sock = d.join("fcgiwrap.sock");
        assert!(
            sock.as_os_str().len() < 100,
            "socket path too long for a unix socket: {} (set TMPDIR shorter)",
            sock.display()
        );
        let mut cmd = Command::new(program("fcgiwrap"));
        cmd.args(["-c", "4", "-s"])
            .arg(format!("unix:{}", sock.display()))
            .current_dir(&d);
        let mut fcgiwrap = Proc::spawn("fcgiwrap", cmd, vec![d.join("fcgiwrap.log")]);
        let start = Instant::now();
        while !sock.exists() {
            if !fcgiwrap.alive() || start.elapsed() > STARTUP_DEADLINE {
                panic!(
                    "fcgiwrap did not create {}; logs:\n{}",
                    sock.display(),
                    fcgiwrap.log()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }

        for sub in ["body", "proxy", "fastcgi", "uwsgi", "scgi"] {
            fs::create_dir_all(d.join("tmp").join(sub)).expect("create nginx temp dir");
        }
        let backend = git_exec_path().join("git-http-backend");
        assert!(is_executable(&backend), "{} missing", backend.display());
        let nginx_bin = program("nginx");
        let auth = base64(format!("{user}:{password}").as_bytes());

        let (port, nginx) = start_with_retries("nginx", |port| {
            let conf = d.join("nginx.conf");
            let error_log = d.join("error.log");
            let _ = fs::remove_file(&error_log);
            write_file(
                &conf,
                &nginx_conf(&d, &root, &backend, &sock, port).replace(
                    "#EXTRA#",
                    // `{htpasswd}` in `extra` names this server's htpasswd file.
                    &extra.replace("{htpasswd}", &d.join("htpasswd").display().to_string()),
                ),
                0o600,
            );
            let mut cmd = Command::new(&nginx_bin);
            cmd.arg("-e")
                .arg(&error_log)
                .arg("-p")
                .arg(&d)
                .arg("-c")
                .arg(&conf)
                .current_dir(&d);
            let mut proc = Proc::spawn("nginx", cmd, vec![d.join("nginx.out"), error_log]);
            // A real request through TLS (verified against our own CA, so it is
            // this nginx), basic auth and fcgiwrap to git-http-backend.
            proc.wait_ready(port, |_| {
                https_probe(&openssl, &d.join("ca.crt"), port, &auth)
            })?;
            Ok((port, proc))
        });

        HttpsServer {
            port,
            ca_file: d.join("ca.crt"),
            root,
            user: user.to_string(),
            password: password.to_string(),
            nginx,
            fcgiwrap,
            dir,
        }
    }

    /// `https://127.0.0.1:<port>/git/<rel>` (`rel` relative to the root).
    pub fn url(&self, rel: &str) -> String {
        format!(
            "https://127.0.0.1:{}/git/{}",
            self.port,
            rel.trim_start_matches('/')
        )
    }

    /// nginx's and fcgiwrap's logs (git-http-backend's stderr lands in
    /// nginx's error.log).
    pub fn log(&self) -> String {
        format!("{}{}", self.nginx.log(), self.fcgiwrap.log())
    }

    /// nginx's access log (combined format: the basic-auth user is the third field).
    pub fn access_log(&self) -> String {
        fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }

    /// Pids of nginx and fcgiwrap.
    pub fn pids(&self) -> Vec<u32> {
        vec![self.nginx.pid(), self.fcgiwrap.pid()]
    }
}

fn nginx_conf(d: &Path, root: &Path, backend: &Path, sock: &Path, port: u16) -> String {
    let p = |x: &Path| x.display().to_string();
    let t = |sub: &str| p(&d.join("tmp").join(sub));
    format!(
        r#"daemon off;
master_process off;
worker_processes 1;
pid "{pid}";
error_log "{error_log}" info;
events {{ worker_connections 256; }}
http {{
    access_log "{access_log}";
    client_body_temp_path "{body}";
    proxy_temp_path "{proxy}";
    fastcgi_temp_path "{fastcgi}";
    uwsgi_temp_path "{uwsgi}";
    scgi_temp_path "{scgi}";
    client_max_body_size 0;
    server {{
        listen 127.0.0.1:{port} ssl;
        server_name 127.0.0.1 localhost;
        ssl_certificate "{crt}";
        ssl_certificate_key "{key}";
        location /git/ {{
            auth_basic "git-pushmirror test";
            auth_basic_user_file "{htpasswd}";
            fastcgi_split_path_info ^(/git)(/.*)$;
            fastcgi_param SCRIPT_FILENAME "{backend}";
            fastcgi_param SCRIPT_NAME /git;
            fastcgi_param PATH_INFO $fastcgi_path_info;
            fastcgi_param QUERY_STRING $query_string;
            fastcgi_param REQUEST_METHOD $request_method;
            fastcgi_param CONTENT_TYPE $content_type;
            fastcgi_param CONTENT_LENGTH $content_length;
            fastcgi_param REQUEST_URI $request_uri;
            fastcgi_param SERVER_PROTOCOL $server_protocol;
            fastcgi_param GATEWAY_INTERFACE CGI/1.1;
            fastcgi_param SERVER_SOFTWARE nginx;
            fastcgi_param REMOTE_ADDR $remote_addr;
            fastcgi_param REMOTE_PORT $remote_port;
            fastcgi_param SERVER_ADDR $server_addr;
            fastcgi_param SERVER_PORT $server_port;
            fastcgi_param SERVER_NAME $server_name;
            fastcgi_param HTTPS on;
            fastcgi_param REMOTE_USER $remote_user;
            fastcgi_param GIT_PROJECT_ROOT "{root}";
            fastcgi_param GIT_HTTP_EXPORT_ALL 1;
            fastcgi_param GIT_CONFIG_COUNT 1;
            fastcgi_param GIT_CONFIG_KEY_0 http.receivepack;
            fastcgi_param GIT_CONFIG_VALUE_0 true;
            fastcgi_read_timeout 600s;
            fastcgi_send_timeout 600s;
            fastcgi_pass "unix:{sock}";
        }}
        #EXTRA#
    }}
}}
"#,
        pid = p(&d.join("nginx.pid")),
        error_log = p(&d.join("error.log")),
        access_log = p(&d.join("access.log")),
        body = t("body"),
        proxy = t("proxy"),
        fastcgi = t("fastcgi"),
        uwsgi = t("uwsgi"),
        scgi = t("scgi"),
        crt = p(&d.join("server.crt")),
        key = p(&d.join("server.key")),
        htpasswd = p(&d.join("htpasswd")),
        backend = p(backend),
        root = p(root),
        sock = p(sock),
    )
}

/// One authenticated GET through `openssl s_client`, verifying the server
/// certificate against `ca` for IP 127.0.0.1. True when the answer came from
/// git-http-backend (not a TLS failure, 401 or a gateway error).
fn https_probe(openssl: &Path, ca: &Path, port: u16, auth: &str) -> bool {
    let request = format!(
        "GET /git/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Basic {auth}\r\n\
         Connection: close\r\n\r\n"
    );
    let out = output_with_timeout(
        Command::new(openssl)
            .args([
                "s_client",
                "-quiet",
                "-verify_return_error",
                "-verify_ip",
                "127.0.0.1",
            ])
            .args(["-servername", "localhost", "-CAfile"])
            .arg(ca)
            .arg("-connect")
            .arg(format!("127.0.0.1:{port}")),
        Some(request.as_bytes()),
        Duration::from_secs(20),
    );
    let Some(out) = out else { return false };
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(status) = text
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("HTTP/1.1 "))
    else {
        return false;
    };
    !["401", "500", "502", "503", "504"]
        .iter()
        .any(|c| status.starts_with(c))
}

// ---------------------------------------------------------------------------
// OpenSSH sshd
// ---------------------------------------------------------------------------

/// OpenSSH `sshd -D -e -f <config>` on 127.0.0.1:<port>, with a generated
/// ed25519 host key and a generated ed25519 client key, accepting only that
/// key for the current user (root in CI: `PermitRootLogin prohibit-password`).
/// `StrictModes no`, `UsePAM no`, `AuthorizedKeysFile` and `PidFile` in the
/// temp dir; /etc/ssh and the system sshd are not used.
pub struct SshServer {
    pub port: u16,
    /// Private key accepted by the server (mode 0600).
    pub client_key: PathBuf,
    /// A known_hosts file with exactly `[127.0.0.1]:<port> ssh-ed25519 ...`.
    pub known_hosts: PathBuf,
    /// `ssh-ed25519 AAAA...` (the host key, without comment).
    pub host_pubkey: String,
    pub user: String,
    pub root: PathBuf,
    proc: Proc,
    dir: TempDir,
}

impl SshServer {
    pub const REQUIRES: &'static [&'static str] = &["sshd", "ssh", "ssh-keygen", "ssh-keyscan"];

    pub fn start(root: &Path) -> SshServer {
        SshServer::start_with(root, "")
    }

    /// `start`, with `extra` appended to sshd_config (e.g. `SetEnv PATH=...`).
    pub fn start_with(root: &Path, extra: &str) -> SshServer {
        let root = absolute_dir(root);
        let dir = tempdir("pm-sshd-");
        let d = dir.path().to_path_buf();
        let keygen = program("ssh-keygen");
        let host_key = d.join("ssh_host_ed25519_key");
        let client_key = d.join("client_ed25519");
        for (key, comment) in [
            (&host_key, "pushmirror-test-host"),
            (&client_key, "pushmirror-test-client"),
        ] {
            run(
                Command::new(&keygen)
                    .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
                    .arg(key),
                "ssh-keygen",
            );
        }
        let pub_of = |key: &Path| {
            let text = fs::read_to_string(key.with_extension("pub")).expect("read .pub");
            text.split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" ")
        };
        let host_pubkey = pub_of(&host_key);
        let authorized_keys = d.join("authorized_keys");
        write_file(
            &authorized_keys,
            &format!("{}\n", pub_of(&client_key)),
            0o600,
        );
        let user = current_user().to_string();
        if is_root() {
            ensure_privsep_dir();
        }
        let sshd = program("sshd");
        let keyscan = program("ssh-keyscan");
        let known_hosts = d.join("known_hosts");
        let host_blob = host_pubkey
            .split_whitespace()
            .nth(1)
            .expect("host key blob")
            .to_string();

        let (port, proc) = start_with_retries("sshd", |port| {
            let conf = d.join("sshd_config");
            write_file(
                &conf,
                &format!(
                    "ListenAddress 127.0.0.1:{port}\n\
                     HostKey {host_key}\n\
                     PidFile {pid}\n\
                     AuthorizedKeysFile {authorized_keys}\n\
                     AllowUsers {user}\n\
                     PermitRootLogin prohibit-password\n\
                     StrictModes no\n\
                     UsePAM no\n\
                     PubkeyAuthentication yes\n\
                     PasswordAuthentication no\n\
                     KbdInteractiveAuthentication no\n\
                     HostbasedAuthentication no\n\
                     AuthorizedKeysCommand none\n\
                     AuthorizedPrincipalsFile none\n\
                     AllowTcpForwarding no\n\
                     AllowAgentForwarding no\n\
                     X11Forwarding no\n\
                     PermitTTY no\n\
                     PrintMotd no\n\
                     PrintLastLog no\n\
                     UseDNS no\n\
                     AcceptEnv GIT_PROTOCOL\n\
                     MaxStartups 100:30:200\n\
                     MaxSessions 64\n\
                     LogLevel VERBOSE\n{extra}",
                    host_key = host_key.display(),
                    pid = d.join("sshd.pid").display(),
                    authorized_keys = authorized_keys.display(),
                ),
                0o600,
            );
            write_file(
                &known_hosts,
                &format!("[127.0.0.1]:{port} {host_pubkey}\n"),
                0o600,
            );
            let mut cmd = Command::new(&sshd);
            cmd.args(["-D", "-e", "-f"]).arg(&conf).current_dir(&d);
            let mut proc = Proc::spawn("sshd", cmd, vec![d.join(format!("sshd-{port}.log"))]);
            // The host key it presents proves it is this sshd.
            proc.wait_ready(port, |_| {
                output_with_timeout(
                    Command::new(&keyscan).args([
                        "-T",
                        "10",
                        "-t",
                        "ed25519",
                        "-p",
                        &port.to_string(),
                        "127.0.0.1",
                    ]),
                    None,
                    Duration::from_secs(20),
                )
                .map(|o| String::from_utf8_lossy(&o.stdout).contains(&host_blob))
                .unwrap_or(false)
            })?;
            Ok((port, proc))
        });

        let server = SshServer {
            port,
            client_key,
            known_hosts,
            host_pubkey,
            user,
            root,
            proc,
            dir,
        };
        // A real login, so that an account sshd refuses (e.g. a non-root user
        // whose password is locked, with UsePAM no) fails here, clearly.
        let mut ssh = Command::new(program("ssh"));
        ssh.args(["-F", "/dev/null", "-i"])
            .arg(&server.client_key)
            .args(["-o", "IdentitiesOnly=yes", "-o"])
            .arg(format!(
                "UserKnownHostsFile={}",
                server.known_hosts.display()
            ))
            .args([
                "-o",
                "GlobalKnownHostsFile=/dev/null",
                "-o",
                "StrictHostKeyChecking=yes",
            ])
            .args([
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=30",
                "-p",
                &port.to_string(),
            ])
            .arg(format!("{}@127.0.0.1", server.user))
            .arg("true");
        match output_with_timeout(&mut ssh, None, Duration::from_secs(60)) {
            Some(out) if out.status.success() => server,
            out => panic!(
                "sshd on 127.0.0.1:{port} refuses a login as {} with the generated key: {}\n{}",
                server.user,
                out.map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
                    .unwrap_or_else(|| "ssh timed out".into()),
                server.log()
            ),
        }
    }

    /// `ssh://<user>@127.0.0.1:<port>/<absolute path>`; a relative path is
    /// taken relative to the root.
    pub fn url(&self, rel_or_abs_path: &str) -> String {
        let path = if rel_or_abs_path.starts_with('/') {
            PathBuf::from(rel_or_abs_path)
        } else {
            self.root.join(rel_or_abs_path)
        };
        format!(
            "ssh://{}@127.0.0.1:{}{}",
            self.user,
            self.port,
            path.display()
        )
    }

    /// A GIT_SSH_COMMAND that logs in with `client_key` and accepts only the
    /// host key in `known_hosts` (no user or system ssh config is read).
    pub fn ssh_command(&self) -> String {
        ssh_command_with(&self.client_key, &self.known_hosts)
    }

    pub fn log(&self) -> String {
        self.proc.log()
    }

    /// Appends a public key line (`ssh-ed25519 AAAA... comment`) to the server's
    /// authorized_keys: sshd reads the file at each login, so it works at once.
    pub fn authorize(&self, public_key: &str) {
        use std::io::Write;
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(self.dir.path().join("authorized_keys"))
            .expect("open authorized_keys");
        writeln!(f, "{}", public_key.trim()).expect("append to authorized_keys");
    }

    /// SSH connections sshd has authenticated so far (one per connection, however many
    /// sessions a connection master carries).
    pub fn logins(&self) -> usize {
        self.proc.log_count("Accepted publickey")
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }
}

/// A GIT_SSH_COMMAND with an explicit identity and known_hosts file and strict
/// host key checking.
pub fn ssh_command_with(key: &Path, known_hosts: &Path) -> String {
    let q = |p: &Path| format!("'{}'", p.display().to_string().replace('\'', r"'\''"));
    format!(
        "ssh -F /dev/null -i {} -o IdentitiesOnly=yes -o UserKnownHostsFile={} \
         -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes -o BatchMode=yes",
        q(key),
        q(known_hosts)
    )
}

/// sshd started as root insists on its privilege-separation directory
/// (/run/sshd on Debian), which only the system service normally creates.
fn ensure_privsep_dir() {
    let dir = Path::new("/run/sshd");
    if !dir.is_dir() {
        fs::create_dir_all(dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).expect("chmod /run/sshd");
    }
}

/// A stand-in forge API (GitHub, GitLab, Gitea endpoints) behind HttpsServer's TLS.
#[path = "servers/forge.rs"]
pub mod forge;
#[path = "servers/hostile_lfs.rs"]
pub mod hostile_lfs;
/// A Git LFS server (giftless) behind HttpsServer's TLS and basic auth.
#[path = "servers/lfs.rs"]
pub mod lfs;
