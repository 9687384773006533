//! Real transports and credentials (spec §6.4, §9), end to end: real servers from
//! `common/servers.rs` (nginx + git-http-backend over TLS with basic auth, sshd, git daemon),
//! real `git`, the hook installed in a real upstream, mirrors added through the CLI.
//!
//! Timing is never asserted: everything polls with a generous deadline. Under `CI=true` a
//! missing server program fails the test (`have_all` panics); elsewhere the test is skipped
//! with a loud message.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use common::servers::*;
use common::*;

/// Retries that give up quickly, so the "no retry storm" checks finish in seconds.
const FAST_RETRIES: &str =
    "defaults:\n  max_attempts: 3\n  backoff_initial: 200ms\n  backoff_max: 1s\n";

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// `git push -q origin <refs>` from `wc` with extra environment variables (the hook, and so
/// the flusher it starts, inherit them).
fn push_with(env: &Env, wc: &Path, refs: &[&str], vars: &[(&str, &str)]) {
    let mut c = env.cmd("git");
    c.arg("-C")
        .arg(wc)
        .args(["push", "-q", "origin"])
        .args(refs);
    for (k, v) in vars {
        c.env(k, v);
    }
    let out = c.output().expect("run git push");
    assert!(out.status.success(), "push {refs:?} failed: {}", text(&out));
}

/// The checks every failure shown to an operator must pass: one line, no secret, no
/// unmasked userinfo.
fn assert_clean_error(err: &str, secrets: &[&str]) {
    assert!(!err.is_empty(), "empty error");
    assert!(
        !err.contains('\n') && !err.contains('\r'),
        "not one line: {err:?}"
    );
    for secret in secrets {
        assert!(!err.contains(secret), "secret in error: {err}");
    }
}

fn assert_no_secret(what: &str, haystack: &str, secret: &str) {
    assert!(
        !haystack.contains(secret),
        "the secret appears in {what}:\n{haystack}"
    );
}

/// Every read command's output, the log, the state files and the runtime dir: none may hold
/// `secret`. (The config itself may, for an inline secret; it is checked by the caller.)
fn assert_secret_nowhere(env: &Env, up: &Path, names: &[&str], secret: &str) {
    let mut outputs = vec![
        ("status", env.pm(up, &["status"])),
        ("status --json", env.pm(up, &["status", "--json"])),
        ("list", env.pm(up, &["list"])),
        ("list --json", env.pm(up, &["list", "--json"])),
    ];
    for name in names {
        outputs.push(("show", env.pm(up, &["show", name])));
        outputs.push(("show --json", env.pm(up, &["show", name, "--json"])));
        outputs.push((
            "status NAME --json",
            env.pm(up, &["status", name, "--json"]),
        ));
    }
    for (what, out) in &outputs {
        assert_no_secret(what, &text(out), secret);
    }
    for dir in [up.join("pushmirror"), env.runtime.clone()] {
        for file in files_under(&dir) {
            if file.file_name().is_some_and(|n| n == "config.yaml") {
                continue;
            }
            let bytes = fs::read(&file).unwrap_or_default();
            assert_no_secret(
                &file.display().to_string(),
                &String::from_utf8_lossy(&bytes),
                secret,
            );
        }
    }
}

/// `git ls-remote` of an HTTPS mirror with plain git: the server's CA through GIT_SSL_CAINFO
/// (this machine exports another one) and an askpass script (no secret in argv).
fn https_heads(env: &Env, https: &HttpsServer, rel: &str) -> String {
    let askpass = env.path("plain-askpass");
    write_askpass(&askpass, &https.user, &https.password);
    let out = env
        .cmd("git")
        .args(["ls-remote", "--heads", "--tags", &https.url(rel)])
        .env("GIT_SSL_CAINFO", &https.ca_file)
        .env("GIT_ASKPASS", &askpass)
        .output()
        .unwrap();
    assert!(out.status.success(), "plain ls-remote: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

// ---------------------------------------------------------------------------
// 1-4: each transport mirrors a push
// ---------------------------------------------------------------------------

#[test]
fn https_with_password_file_and_ca_file() {
    if no_https() {
        return;
    }
    const PASSWORD: &str = "pw-file-Secret-1111";
    let env = Env::new();
    let up = env.upstream("up.git");
    let dst = env.bare("srv/dst.git", &[]);
    let https = HttpsServer::start(&env.path("srv"), "mirror", PASSWORD);
    let pwfile = env.path("mirror.password");
    // `echo token > file` style: the trailing newline is not part of the password.
    write_mode(&pwfile, &format!("{PASSWORD}\n"), 0o600);
    let added = env.pm_ok(
        &up,
        &[
            "add",
            "https",
            &https.url("dst.git"),
            "--username",
            "mirror",
            "--password-file",
            s(&pwfile),
            "--ca-file",
            s(&https.ca_file),
            "--debounce",
            "100ms",
            "--timeout",
            "30s",
        ],
    );
    assert_no_secret("add", &added, PASSWORD);

    let wc = env.clone(&up, "wc");
    env.commit(&wc, "one");
    env.git(&wc, &["tag", "-a", "-m", "release", "v1"]);
    env.git(&wc, &["branch", "feature"]);
    env.push(&wc, &["main", "feature", "v1"]);
    env.wait_mirrored(&up, &dst);
    wait_finished(&env, &up, "https");

    // A second push goes the same way, and "Update now" works and exits 0.
    let head = env.commit(&wc, "two");
    env.push(&wc, &["main"]);
    env.wait_mirrored(&up, &dst);
    let out = env.pm(&up, &["sync", "https", "--wait"]);
    assert!(out.status.success(), "sync --wait: {}", text(&out));
    let m = wait_finished(&env, &up, "https");
    assert_eq!(m["url"], https.url("dst.git"), "{m:#}");
    assert_eq!(m["auth"]["method"], "password", "{m:#}");

    // What the server holds, seen by a plain git client through TLS and basic auth.
    let heads = https_heads(&env, &https, "dst.git");
    assert!(
        heads.contains(&format!("{head}\trefs/heads/main")),
        "{heads}"
    );
    assert!(heads.contains("refs/tags/v1"), "{heads}");
    assert_secret_nowhere(&env, &up, &["https"], PASSWORD);
    assert!(env.wait_flushers_gone(), "flusher did not exit when idle");

    // A relative ca_file (set by hand or with `set`) is relative to the config's directory,
    // like the auth files: `set` checks it there and the sync uses it from there.
    fs::copy(&https.ca_file, up.join("pushmirror/ca.pem")).unwrap();
    env.pm_ok(&up, &["set", "https", "ca_file=ca.pem"]);
    let head = env.commit(&wc, "three");
    env.push(&wc, &["main"]);
    env.wait_mirrored(&up, &dst);
    let m = wait_finished(&env, &up, "https");
    assert_eq!(m["ca_file"], "ca.pem", "{m:#}");
    assert!(https_heads(&env, &https, "dst.git").contains(&head));
}

#[test]
fn https_tokens_from_the_flushers_environment() {
    if no_https() {
        return;
    }
    const GH_TOKEN: &str = "ghp_Tok3nFromEnv0000000000000000000000";
    const GL_TOKEN: &str = "glpat-Tok3nFromEnv-1234";
    let env = Env::new();
    env.write_server_config(FAST_RETRIES);
    let up = env.upstream("up.git");
    let gh_dst = env.bare("gh/acme/app.git", &[]);
    let gl_dst = env.bare("gl/group/app.git", &[]);
    // GitHub: any user name with a PAT, "x-access-token" by convention; GitLab: "oauth2".
    let gh = HttpsServer::start(&env.path("gh"), "x-access-token", GH_TOKEN);
    let gl = HttpsServer::start(&env.path("gl"), "oauth2", GL_TOKEN);
    let vars = [("MIRROR_GH_TOKEN", GH_TOKEN), ("MIRROR_GL_TOKEN", GL_TOKEN)];
    for (name, server, user, var) in [
        ("github", &gh, "x-access-token", "MIRROR_GH_TOKEN"),
        ("gitlab", &gl, "oauth2", "MIRROR_GL_TOKEN"),
    ] {
        // Added disabled, so that no flusher starts from the `add` (whose environment has no
        // token); `set enabled=true` syncs at once, as `enable` does, so it gets the token.
        env.pm_ok(
            &up,
            &[
                "add",
                name,
                &server.url(if name == "github" {
                    "acme/app.git"
                } else {
                    "group/app.git"
                }),
                "--username",
                "someone-else",
                "--password-env",
                var,
                "--ca-file",
                s(&server.ca_file),
                "--debounce",
                "100ms",
                "--timeout",
                "30s",
                "--disabled",
            ],
        );
        // Dotted keys reach into auth. Changing auth resets the mirror and syncs it at once
        // when enabled, so it is changed while disabled and enabled in a second `set`.
        env.pm_ok(&up, &["set", name, &format!("auth.username={user}")]);
        let out = pm_with(&env, &up, &["set", name, "enabled=true"], &vars);
        assert!(out.status.success(), "set enabled=true: {}", text(&out));
        let shown: serde_json::Value =
            serde_json::from_str(&env.pm_ok(&up, &["show", name, "--json"])).unwrap();
        assert_eq!(shown["auth"]["username"], user, "{shown:#}");
        assert_eq!(shown["auth"]["password_env"], var, "{shown:#}");
        assert_eq!(shown["enabled"], true, "{shown:#}");
    }
    // The flushers `set` started are done: the push's flusher is a new one.
    assert!(env.wait_flushers_gone());

    // A local push: the hook, and the flusher it starts, inherit the pusher's environment.
    let wc = env.clone(&up, "wc");
    env.commit(&wc, "one");
    push_with(&env, &wc, &["main"], &vars);
    env.wait_mirrored(&up, &gh_dst);
    env.wait_mirrored(&up, &gl_dst);
    wait_finished(&env, &up, "github");
    wait_finished(&env, &up, "gitlab");
    assert!(env.wait_flushers_gone(), "flusher did not exit when idle");

    // A change that reached upstream without the hook (a fetch into the bare repository):
    // `sync --wait` starts a flusher with the CLI's environment.
    env.commit(&wc, "two");
    env.git(&up, &["fetch", "-q", s(&wc), "+main:main"]);
    let out = pm_with(&env, &up, &["sync", "--wait"], &vars);
    assert!(out.status.success(), "sync --wait: {}", text(&out));
    env.wait_mirrored(&up, &gh_dst);
    env.wait_mirrored(&up, &gl_dst);
    assert!(env.wait_flushers_gone(), "flusher did not exit when idle");

    // Without the variable the failure names it, and shows no token.
    env.commit(&wc, "three");
    env.git(&up, &["fetch", "-q", s(&wc), "+main:main"]);
    let out = pm_with(&env, &up, &["sync", "github", "--wait"], &[]);
    assert!(!out.status.success(), "sync without the token succeeded");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        err.contains("MIRROR_GH_TOKEN") && err.contains("not set"),
        "{err}"
    );
    let m = env.mirror_status(&up, "github");
    let last = m["last_error"].as_str().unwrap_or_default().to_string();
    assert!(last.contains("MIRROR_GH_TOKEN"), "{m:#}");
    assert_clean_error(&last, &[GH_TOKEN, GL_TOKEN]);
    assert!(
        env.wait_flushers_gone(),
        "flusher did not exit after failing"
    );
    for token in [GH_TOKEN, GL_TOKEN] {
        assert_secret_nowhere(&env, &up, &["github", "gitlab"], token);
        assert_no_secret(
            "config.yaml",
            &fs::read_to_string(up.join("pushmirror/config.yaml")).unwrap(),
            token,
        );
    }
}

#[test]
fn ssh_with_known_hosts_and_with_pinned_host_key() {
    if no_ssh() {
        return;
    }
    let env = Env::new();
    let up = env.upstream("up.git");
    let kh_dst = env.bare("srv/kh.git", &[]);
    let pin_dst = env.bare("srv/pin.git", &[]);
    let ssh = SshServer::start(&env.path("srv"));
    // The server's known_hosts is 0600; the product only needs it not writable by others.
    env.pm_ok(
        &up,
        &[
            "add",
            "known-hosts",
            &ssh.url("kh.git"),
            "--ssh-key",
            s(&ssh.client_key),
            "--known-hosts",
            s(&ssh.known_hosts),
            "--debounce",
            "100ms",
            "--timeout",
            "30s",
        ],
    );
    env.pm_ok(
        &up,
        &[
            "add",
            "pinned",
            &ssh.url("pin.git"),
            "--ssh-key",
            s(&ssh.client_key),
            "--host-key",
            &ssh.host_pubkey,
            "--debounce",
            "100ms",
            "--timeout",
            "30s",
        ],
    );
    let wc = env.clone(&up, "wc");
    env.commit(&wc, "one");
    env.git(&wc, &["tag", "v1"]);
    env.git(&wc, &["branch", "feature"]);
    env.push(&wc, &["main", "feature", "v1"]);
    env.wait_mirrored(&up, &kh_dst);
    env.wait_mirrored(&up, &pin_dst);
    wait_finished(&env, &up, "known-hosts");
    wait_finished(&env, &up, "pinned");

    // Deletion over ssh too (feature is merged into main).
    env.push(&wc, &[":refs/heads/feature"]);
    env.wait_mirrored(&up, &kh_dst);
    env.wait_mirrored(&up, &pin_dst);
    assert!(env.wait_flushers_gone(), "flusher did not exit when idle");
    // The pinned key's temporary known_hosts files are gone with the syncs.
    let left: Vec<_> = files_under(&env.runtime)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("known_hosts"))
        .collect();
    assert!(left.is_empty(), "temporary known_hosts left: {left:?}");

    // The syncs above left a connection master per mirror (`ssh_persist`, 60s by default):
    // a burst of pushes, each its own sync, pays no new SSH handshake.
    let before = ssh.logins();
    for n in 0..3 {
        env.commit(&wc, &format!("burst {n}"));
        env.push(&wc, &["main"]);
        env.wait_mirrored(&up, &kh_dst);
        env.wait_mirrored(&up, &pin_dst);
        wait_finished(&env, &up, "known-hosts");
        wait_finished(&env, &up, "pinned");
    }
    assert!(env.wait_flushers_gone(), "flusher did not exit when idle");
    assert_eq!(
        ssh.logins() - before,
        0,
        "SSH logins for a burst of syncs over warm masters:\n{}",
        ssh.log()
    );
    let kh_socket = the_one(mux_sockets(&env, &up, "known-hosts"));
    let pin_socket = the_one(mux_sockets(&env, &up, "pinned"));
    assert_ne!(kh_socket, pin_socket, "two mirrors share a master");
    assert!(mux_alive(&kh_socket) && mux_alive(&pin_socket));

    // A master killed without its cleanup (its socket left behind) is replaced by the next
    // sync: ssh finds the socket stale and becomes the master itself.
    for pid in mux_pids_of(&pin_socket) {
        unsafe_kill(pid);
    }
    assert!(wait_until(Duration::from_secs(30), || !mux_alive(
        &pin_socket
    )));
    assert!(pin_socket.exists(), "the killed master's socket is gone");
    let before = ssh.logins();
    env.commit(&wc, "after a killed master");
    env.push(&wc, &["main"]);
    env.wait_mirrored(&up, &kh_dst);
    env.wait_mirrored(&up, &pin_dst);
    wait_finished(&env, &up, "known-hosts");
    wait_finished(&env, &up, "pinned");
    assert!(env.wait_flushers_gone(), "flusher did not exit when idle");
    assert_eq!(
        ssh.logins() - before,
        1,
        "one new login (the killed master's mirror) expected:\n{}",
        ssh.log()
    );
    assert!(mux_alive(&pin_socket) && mux_alive(&kh_socket));

    // `set url=` closes the mirror's master (socket and process gone), not the other's.
    let moved_dst = env.bare("srv/moved.git", &[]);
    env.pm_ok(
        &up,
        &[
            "set",
            "known-hosts",
            &format!("url={}", ssh.url("moved.git")),
        ],
    );
    assert!(!kh_socket.exists(), "set url= left the socket");
    assert!(wait_until(Duration::from_secs(30), || !mux_alive(
        &kh_socket
    )));
    assert!(pin_socket.exists() && mux_alive(&pin_socket));
    env.wait_mirrored(&up, &moved_dst);
    wait_finished(&env, &up, "known-hosts");
    // `remove` closes it too.
    env.pm_ok(&up, &["remove", "pinned"]);
    assert!(!pin_socket.exists(), "remove left the socket");
    assert!(wait_until(Duration::from_secs(30), || !mux_alive(
        &pin_socket
    )));

    // `ssh_persist: 0`: one SSH connection per sync, ls-remote and push sharing it, and the
    // master is gone with the sync (no socket, no `ssh: ... [mux]` process left behind). The
    // URL changes back with it, which closes the master of the syncs to moved.git.
    let moved_socket = the_one(mux_sockets(&env, &up, "known-hosts"));
    env.pm_ok(
        &up,
        &[
            "set",
            "known-hosts",
            &format!("url={}", ssh.url("kh.git")),
            "ssh_persist=0",
        ],
    );
    assert!(!moved_socket.exists(), "set url= left the socket");
    env.wait_mirrored(&up, &kh_dst);
    wait_finished(&env, &up, "known-hosts");
    assert!(env.wait_flushers_gone(), "flusher did not exit when idle");
    let before = ssh.logins();
    env.commit(&wc, "two");
    env.push(&wc, &["main"]);
    env.wait_mirrored(&up, &kh_dst);
    assert!(env.wait_flushers_gone(), "flusher did not exit when idle");
    assert_eq!(
        ssh.logins() - before,
        1,
        "SSH logins for one sync (ls-remote + push) without ssh_persist:\n{}",
        ssh.log()
    );
    let sockets: Vec<_> = fs::read_dir(&env.runtime)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name().is_some_and(|n| {
                        let n = n.to_string_lossy();
                        n.starts_with("ssh-") || n.starts_with("mux-")
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    assert!(sockets.is_empty(), "SSH control sockets left: {sockets:?}");
    let runtime = env.runtime.to_string_lossy().into_owned();
    assert!(
        wait_until(Duration::from_secs(30), || mux_processes(&runtime)
            .is_empty()),
        "SSH masters left running: {:?}",
        mux_processes(&runtime)
    );
}

/// The sockets of the lasting SSH connection masters of mirror `name` of repository `repo`:
/// `mux-<owner>-<connection>` in the runtime dir, `owner` being the first 12 hex digits of
/// SHA-256(canonical repository path, NUL, mirror name) (see src/mirror/mux.rs).
fn mux_sockets(env: &Env, repo: &Path, name: &str) -> Vec<PathBuf> {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(
        fs::canonicalize(repo)
            .unwrap()
            .as_os_str()
            .as_encoded_bytes(),
    );
    h.update(b"\0");
    h.update(name.as_bytes());
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    let prefix = format!("mux-{}-", &hex[..12]);
    let Ok(rd) = fs::read_dir(&env.runtime) else {
        return Vec::new();
    };
    rd.flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&prefix))
        })
        .collect()
}

fn the_one(mut sockets: Vec<PathBuf>) -> PathBuf {
    assert_eq!(sockets.len(), 1, "one master socket expected: {sockets:?}");
    sockets.remove(0)
}

/// Command lines of running `ssh: <socket> [mux]` masters that mention `text`.
fn mux_processes(text: &str) -> Vec<String> {
    fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| fs::read(e.ok()?.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(text) && c.contains("[mux]"))
        .collect()
}

fn mux_alive(socket: &Path) -> bool {
    !mux_processes(&socket.to_string_lossy()).is_empty()
}

/// The process ids of the `ssh: <socket> [mux]` master on `socket`.
fn mux_pids_of(socket: &Path) -> Vec<u32> {
    let needle = socket.to_string_lossy().into_owned();
    fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            let pid = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let c = String::from_utf8_lossy(&fs::read(e.path().join("cmdline")).ok()?)
                .replace('\0', " ");
            (c.contains(&needle) && c.contains("[mux]")).then_some(pid)
        })
        .collect()
}

#[test]
fn git_daemon_mirror() {
    if !have_all(GitDaemon::REQUIRES) && skip("git") {
        return;
    }
    let env = Env::new();
    let up = env.upstream("up.git");
    let dst = env.bare("daemon/dst.git", &[]);
    let daemon = GitDaemon::start(&env.path("daemon"));
    env.pm_ok(
        &up,
        &[
            "add",
            "daemon",
            &daemon.url("dst.git"),
            "--debounce",
            "100ms",
            "--timeout",
            "30s",
        ],
    );
    let wc = env.clone(&up, "wc");
    env.commit(&wc, "one");
    env.git(&wc, &["tag", "-a", "-m", "r", "v1"]);
    env.push(&wc, &["main", "v1"]);
    env.wait_mirrored(&up, &dst);
    wait_finished(&env, &up, "daemon");
    let out = env.pm(&up, &["sync", "daemon", "--wait"]);
    assert!(out.status.success(), "sync --wait: {}", text(&out));
    assert!(env.wait_flushers_gone(), "flusher did not exit when idle");
}

// ---------------------------------------------------------------------------
// 5-6: failures are clear, masked, and retried a bounded number of times
// ---------------------------------------------------------------------------

#[test]
fn wrong_password_fails_clearly_without_a_retry_storm() {
    if no_https() {
        return;
    }
    const RIGHT: &str = "Right-Pa55w0rd-123";
    const WRONG: &str = "Wr0ng-Pa55w0rd-777";
    let env = Env::new();
    env.write_server_config(FAST_RETRIES);
    let up = env.upstream("up.git");
    let dst = env.bare("srv/dst.git", &[]);
    let https = HttpsServer::start(&env.path("srv"), "mirror", RIGHT);
    let wc = env.clone(&up, "wc");
    env.commit(&wc, "one");
    env.git(&up, &["fetch", "-q", s(&wc), "main:main"]);
    let wrong = env.path("wrong.password");
    write_mode(&wrong, WRONG, 0o600);
    // `add` asks for the first sync at once; it fails, is retried, then given up.
    env.pm_ok(
        &up,
        &[
            "add",
            "https",
            &https.url("dst.git"),
            "--username",
            "mirror",
            "--password-file",
            s(&wrong),
            "--ca-file",
            s(&https.ca_file),
            "--timeout",
            "30s",
        ],
    );
    let m = wait_gave_up(&env, &up, "https");
    let syncs = m["syncs"].as_u64().unwrap();
    assert!(
        (1..=3).contains(&syncs),
        "{syncs} syncs for 3 attempts: {m:#}"
    );
    let err = m["last_error"].as_str().unwrap().to_string();
    assert_clean_error(&err, &[WRONG, RIGHT]);
    assert!(err.to_lowercase().contains("authentication"), "{err}");
    assert!(
        err.contains(&https.url("dst.git")),
        "names the mirror: {err}"
    );
    // `status` is for monitoring: a failed mirror is exit 1.
    assert_eq!(env.pm(&up, &["status"]).status.code(), Some(1));

    // "Update now" tries once more, fails, and says why; the flusher gives up again.
    let out = env.pm(&up, &["sync", "https", "--wait"]);
    assert!(
        !out.status.success(),
        "sync --wait with a wrong password succeeded"
    );
    let shown = text(&out);
    assert_no_secret("sync --wait", &shown, WRONG);
    assert!(shown.to_lowercase().contains("authentication"), "{shown}");
    let m = wait_gave_up(&env, &up, "https");
    let after = m["syncs"].as_u64().unwrap();
    assert!(
        after > syncs && after <= 4,
        "{after} syncs for 3 attempts and one sync request: {m:#}"
    );
    assert_clean_error(m["last_error"].as_str().unwrap(), &[WRONG, RIGHT]);
    // Nothing runs on by itself once given up.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(env.mirror_status(&up, "https")["syncs"], after);
    assert!(flusher_pids(env.dir.path()).is_empty());
    assert!(env.heads_and_tags(&dst).is_empty());
    assert_secret_nowhere(&env, &up, &["https"], WRONG);

    // Fixed with `set` (a dotted key) and "Update now": mirrored.
    let right = env.path("right.password");
    write_mode(&right, RIGHT, 0o600);
    env.pm_ok(
        &up,
        &["set", "https", &format!("auth.password_file={}", s(&right))],
    );
    let out = env.pm(&up, &["sync", "https", "--wait"]);
    assert!(out.status.success(), "sync --wait: {}", text(&out));
    env.wait_mirrored(&up, &dst);
    wait_finished(&env, &up, "https");
}

#[test]
fn unknown_host_key_fails_clearly_without_a_retry_storm() {
    if no_ssh() {
        return;
    }
    let env = Env::new();
    env.write_server_config(FAST_RETRIES);
    let up = env.upstream("up.git");
    env.bare("srv/dst.git", &[]);
    let ssh = SshServer::start(&env.path("srv"));
    let wc = env.clone(&up, "wc");
    env.commit(&wc, "one");
    env.git(&up, &["fetch", "-q", s(&wc), "main:main"]);

    // Some other host's key, listed for this server's address.
    let other = env.path("other_host_key");
    let out = std::process::Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "other",
            "-f",
            s(&other),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "ssh-keygen: {}", text(&out));
    let other_pub = fs::read_to_string(other.with_extension("pub")).unwrap();
    let other_pub: String = other_pub
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    assert_ne!(other_pub, ssh.host_pubkey);
    let wrong_kh = env.path("wrong_known_hosts");
    write_mode(
        &wrong_kh,
        &format!("[127.0.0.1]:{} {other_pub}\n", ssh.port),
        0o644,
    );
    let empty_kh = env.path("empty_known_hosts");
    write_mode(&empty_kh, "", 0o644);

    let key = s(&ssh.client_key);
    let url = ssh.url("dst.git");
    let mirrors: [(&str, Vec<&str>); 3] = [
        ("other-key", vec!["--known-hosts", s(&wrong_kh)]),
        ("empty", vec!["--known-hosts", s(&empty_kh)]),
        ("pinned-other", vec!["--host-key", &other_pub]),
    ];
    for (name, extra) in &mirrors {
        let mut args = vec!["add", name, &url, "--ssh-key", key, "--timeout", "30s"];
        args.extend(extra.iter().copied());
        env.pm_ok(&up, &args);
    }
    for (name, _) in &mirrors {
        let m = wait_gave_up(&env, &up, name);
        let syncs = m["syncs"].as_u64().unwrap();
        assert!((1..=3).contains(&syncs), "{name}: {syncs} syncs: {m:#}");
        let err = m["last_error"].as_str().unwrap();
        assert_clean_error(err, &[]);
        assert!(
            err.to_lowercase().contains("host key verification failed"),
            "{name}: {err}"
        );
        // Another key than the one listed is a possible man-in-the-middle, not an unknown host.
        assert_eq!(
            err.contains("REMOTE HOST IDENTIFICATION HAS CHANGED"),
            *name != "empty",
            "{name}: {err}"
        );
    }
    let out = env.pm(&up, &["sync", "--wait"]);
    assert!(
        !out.status.success(),
        "sync --wait succeeded: {}",
        text(&out)
    );
    assert!(
        text(&out).to_lowercase().contains("host key"),
        "{}",
        text(&out)
    );
    assert!(env.wait_flushers_gone(), "flusher kept running");
    for (name, _) in &mirrors {
        let m = env.mirror_status(&up, name);
        let syncs = m["syncs"].as_u64().unwrap();
        assert!(syncs <= 4, "{name}: {syncs} syncs: {m:#}");
        assert_eq!(m["update_status"], "failed", "{m:#}");
    }
    assert!(
        !fs::read_to_string(&empty_kh)
            .unwrap()
            .contains("ssh-ed25519"),
        "ssh added the unknown key to the known_hosts file"
    );
    let left: Vec<_> = files_under(&env.runtime)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("known_hosts"))
        .collect();
    assert!(left.is_empty(), "temporary known_hosts left: {left:?}");
}

// ---------------------------------------------------------------------------
// 7-9: secrets never shown; where they may live
// ---------------------------------------------------------------------------

/// Watches every process's command line (as `ps` shows it) until stopped.
struct ArgvWatch {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<(Vec<String>, usize, usize)>,
}

impl ArgvWatch {
    /// `secret` must never appear; `marker` (e.g. the server's port) identifies the processes
    /// that prove the watch saw the syncs.
    fn start(secret: &str, marker: &str) -> ArgvWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let (secret, marker) = (secret.to_string(), marker.to_string());
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut leaks = Vec::new();
            let mut seen = 0usize;
            let mut rounds = 0usize;
            while !flag.load(Ordering::Relaxed) {
                rounds += 1;
                let Ok(rd) = fs::read_dir("/proc") else { break };
                for e in rd.flatten() {
                    let name = e.file_name();
                    if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
                        continue;
                    }
                    let Ok(raw) = fs::read(e.path().join("cmdline")) else {
                        continue;
                    };
                    let args = String::from_utf8_lossy(&raw).replace('\0', " ");
                    if args.contains(&secret) {
                        leaks.push(args.clone());
                    }
                    if args.contains(&marker) {
                        seen += 1;
                    }
                }
                if rounds.is_multiple_of(50) {
                    if let Ok(out) = std::process::Command::new("ps")
                        .args(["-eo", "args"])
                        .output()
                    {
                        let listing = String::from_utf8_lossy(&out.stdout);
                        leaks.extend(
                            listing
                                .lines()
                                .filter(|l| l.contains(&secret))
                                .map(|l| format!("ps: {l}")),
                        );
                    }
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            (leaks, seen, rounds)
        });
        ArgvWatch { stop, handle }
    }

    fn finish(self) -> (Vec<String>, usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap()
    }
}

#[test]
fn secret_never_in_argv_logs_or_outputs_while_syncing() {
    if no_https() {
        return;
    }
    const SECRET: &str = "S3cr3t-Tok3n-4242";
    let env = Env::new();
    // The most verbose log the product writes.
    env.write_server_config("log_level: trace\n");
    let up = env.upstream("up.git");
    let file_dst = env.bare("srv/file.git", &[]);
    let url_dst = env.bare("srv/inline.git", &[]);
    let https = HttpsServer::start(&env.path("srv"), "mirror", SECRET);
    let pwfile = env.path("token");
    write_mode(&pwfile, SECRET, 0o600);
    let common = [
        "--ca-file",
        s(&https.ca_file),
        "--debounce",
        "100ms",
        "--timeout",
        "60s",
    ];
    let file_url = https.url("file.git");
    let mut args = vec![
        "add",
        "from-file",
        &file_url,
        "--username",
        "mirror",
        "--password-file",
        s(&pwfile),
    ];
    args.extend(common);
    let added = env.pm_ok(&up, &args);
    // The same secret written into the URL: git must never get it on its command line.
    let inline_url = https
        .url("inline.git")
        .replace("https://", &format!("https://mirror:{SECRET}@"));
    let mut args = vec!["add", "in-url", &inline_url];
    args.extend(common);
    let added = added + &env.pm_ok(&up, &args);
    assert_no_secret("add", &added, SECRET);
    env.wait_mirrored(&up, &file_dst);
    assert!(env.wait_flushers_gone());

    // The `add` above had the secret on its own command line (the admin typed it); from here
    // on, nothing may.
    let watch = ArgvWatch::start(SECRET, &format!("127.0.0.1:{}", https.port));
    let wc = env.clone(&up, "wc");
    for round in 0..4u64 {
        let name = format!("blob-{round}.bin");
        fs::write(wc.join(&name), random_bytes(3 << 20, 0x9E37 + round)).unwrap();
        env.git(&wc, &["add", &name]);
        env.git(&wc, &["commit", "-q", "-m", &name]);
        env.push(&wc, &["main"]);
        env.wait_mirrored(&up, &file_dst);
        env.wait_mirrored(&up, &url_dst);
        let out = env.pm(&up, &["sync", "--wait"]);
        assert!(out.status.success(), "sync --wait: {}", text(&out));
        assert_no_secret("sync --wait", &text(&out), SECRET);
    }
    assert!(env.wait_flushers_gone());
    let (leaks, seen, rounds) = watch.finish();
    eprintln!(
        "argv watch: {rounds} rounds, {seen} sightings, {} leaks",
        leaks.len()
    );
    assert!(
        leaks.is_empty(),
        "secret visible in process listings: {leaks:#?}"
    );
    assert!(
        seen > 0,
        "the watch ({rounds} rounds) never saw a git process talking to the server"
    );
    wait_finished(&env, &up, "from-file");
    wait_finished(&env, &up, "in-url");
    assert_secret_nowhere(&env, &up, &["from-file", "in-url"], SECRET);
    let log = env.log(&up);
    assert!(log.contains("in-url"), "the log is written: {log}");
    let list = env.pm_ok(&up, &["list"]);
    assert!(
        list.contains(&format!(
            "https://*****:*****@127.0.0.1:{}/git/inline.git",
            https.port
        )),
        "{list}"
    );
}

#[test]
fn inline_url_credentials_need_a_private_config() {
    if no_https() {
        return;
    }
    const SECRET: &str = "Inl1ne-S3cr3t-9876";
    let env = Env::new();
    env.write_server_config(FAST_RETRIES);
    let up = env.upstream("up.git");
    let dst = env.bare("srv/x.git", &[]);
    let https = HttpsServer::start(&env.path("srv"), "user", SECRET);
    let url = format!("https://user:{SECRET}@127.0.0.1:{}/git/x.git", https.port);
    let masked = format!("https://*****:*****@127.0.0.1:{}/git/x.git", https.port);
    let added = env.pm_ok(
        &up,
        &[
            "add",
            "inline",
            &url,
            "--ca-file",
            s(&https.ca_file),
            "--debounce",
            "100ms",
            "--timeout",
            "30s",
        ],
    );
    assert_no_secret("add", &added, SECRET);
    assert!(added.contains(&masked), "{added}");
    let config = up.join("pushmirror/config.yaml");
    let mode = fs::metadata(&config).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "a config holding a secret is created private");
    let list = env.pm_ok(&up, &["list"]);
    assert!(list.contains(&masked), "{list}");
    let m = env.mirror_status(&up, "inline");
    assert_eq!(m["url"], masked, "{m:#}");

    let wc = env.clone(&up, "wc");
    env.commit(&wc, "one");
    env.push(&wc, &["main"]);
    env.wait_mirrored(&up, &dst);
    wait_finished(&env, &up, "inline");
    assert!(env.wait_flushers_gone());

    // Opened to the group and others, the config's secret is refused at the next sync.
    chmod(&config, 0o644);
    env.commit(&wc, "two");
    env.push(&wc, &["main"]);
    let m = wait_gave_up(&env, &up, "inline");
    let err = m["last_error"].as_str().unwrap();
    assert_clean_error(err, &[SECRET]);
    assert!(
        err.contains(s(&config)) && err.contains("chmod 600") && err.contains("0644"),
        "{err}"
    );
    let out = env.pm(&up, &["sync", "inline", "--wait"]);
    assert!(!out.status.success(), "sync with a 0644 config succeeded");
    assert!(text(&out).contains("chmod 600"), "{}", text(&out));
    assert_no_secret("sync --wait", &text(&out), SECRET);
    assert!(env.wait_flushers_gone());
    assert_ne!(env.heads_and_tags(&dst), env.heads_and_tags(&up));
    assert_secret_nowhere(&env, &up, &["inline"], SECRET);
    // The mode is kept by CLI writes, not silently "fixed".
    env.pm_ok(&up, &["set", "inline", "debounce=200ms"]);
    assert_eq!(
        fs::metadata(&config).unwrap().permissions().mode() & 0o777,
        0o644
    );

    // Made private again, it works.
    chmod(&config, 0o600);
    let out = env.pm(&up, &["sync", "inline", "--wait"]);
    assert!(out.status.success(), "sync --wait: {}", text(&out));
    env.wait_mirrored(&up, &dst);
}

#[test]
fn password_file_readable_by_others_is_refused() {
    if no_https() {
        return;
    }
    const SECRET: &str = "0pen-Pa55w0rd-File-55";
    let env = Env::new();
    env.write_server_config(FAST_RETRIES);
    let up = env.upstream("up.git");
    let dst = env.bare("srv/dst.git", &[]);
    let https = HttpsServer::start(&env.path("srv"), "mirror", SECRET);
    let wc = env.clone(&up, "wc");
    env.commit(&wc, "one");
    env.git(&up, &["fetch", "-q", s(&wc), "main:main"]);
    let pwfile = env.path("open.password");
    write_mode(&pwfile, SECRET, 0o644);
    let out = env.pm(
        &up,
        &[
            "add",
            "https",
            &https.url("dst.git"),
            "--username",
            "mirror",
            "--password-file",
            s(&pwfile),
            "--ca-file",
            s(&https.ca_file),
            "--timeout",
            "30s",
        ],
    );
    // `add` refuses a file every sync would refuse, before writing anything, and says what to
    // do.
    assert_eq!(out.status.code(), Some(1), "add: {}", text(&out));
    assert!(
        text(&out).contains("0644") && text(&out).contains("chmod 600"),
        "{}",
        text(&out)
    );
    assert_no_secret("add", &text(&out), SECRET);
    assert!(
        !env.pm(&up, &["show", "https"]).status.success(),
        "a refused add wrote the mirror"
    );
    // A file whose mode changes after `add` is refused by the sync the same way.
    chmod(&pwfile, 0o600);
    let mut args = vec!["add", "https"];
    let url = https.url("dst.git");
    args.extend([
        url.as_str(),
        "--username",
        "mirror",
        "--password-file",
        s(&pwfile),
        "--ca-file",
        s(&https.ca_file),
        "--timeout",
        "30s",
        "--disabled",
    ]);
    env.pm_ok(&up, &args);
    chmod(&pwfile, 0o644);
    env.pm_ok(&up, &["enable", "https"]);
    let m = wait_gave_up(&env, &up, "https");
    let err = m["last_error"].as_str().unwrap();
    assert_clean_error(err, &[SECRET]);
    assert!(
        err.contains(s(&pwfile))
            && err.contains("0644")
            && err.contains("group/other")
            && err.contains("chmod 600"),
        "{err}"
    );
    let out = env.pm(&up, &["sync", "https", "--wait"]);
    assert!(
        !out.status.success(),
        "sync with a 0644 password file succeeded"
    );
    assert!(text(&out).contains(s(&pwfile)), "{}", text(&out));
    assert!(env.wait_flushers_gone());
    assert!(
        env.heads_and_tags(&dst).is_empty(),
        "pushed with a refused secret"
    );
    assert_secret_nowhere(&env, &up, &["https"], SECRET);

    // Group-readable is refused the same way; private works.
    chmod(&pwfile, 0o640);
    let out = env.pm(&up, &["sync", "https", "--wait"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("0640"), "{}", text(&out));
    assert!(env.wait_flushers_gone());
    chmod(&pwfile, 0o600);
    let out = env.pm(&up, &["sync", "https", "--wait"]);
    assert!(out.status.success(), "sync --wait: {}", text(&out));
    env.wait_mirrored(&up, &dst);
}

// ---------------------------------------------------------------------------
// 10: hostile URLs
// ---------------------------------------------------------------------------

/// Hostile URLs with a marker file (inside the test's temp dir) that exists only if a command
/// ran. Returns (url, marker).
fn hostile_urls(env: &Env) -> Vec<(String, PathBuf)> {
    let m = |n: &str| env.path(&format!("pwned-{n}"));
    let enc = |p: &Path| s(p).replace('/', "%2F");
    vec![
        (format!("ext::sh -c touch% {}", s(&m("ext"))), m("ext")),
        (format!("--upload-pack=touch {}", s(&m("up"))), m("up")),
        (
            format!("ssh://-oProxyCommand=touch%20{}/y", enc(&m("ssh"))),
            m("ssh"),
        ),
        (
            format!("-oProxyCommand=touch%20{}:y", enc(&m("scp"))),
            m("scp"),
        ),
        ("fd::3".to_string(), m("fd")),
        ("fd::3,4/x".to_string(), m("fd")),
        ("http://127.0.0.1/x.git".to_string(), m("http")),
    ]
}

#[test]
fn hostile_urls_are_refused_at_add_and_at_sync() {
    let env = Env::new();
    let up = env.upstream("up.git");
    let config = up.join("pushmirror/config.yaml");
    let before = fs::read(&config).ok();
    for (url, _) in hostile_urls(&env) {
        // `--` so that a URL starting with '-' reaches the URL policy, not the option parser.
        let out = env.pm(&up, &["add", "evil", "--", &url]);
        assert_eq!(out.status.code(), Some(2), "add {url:?}: {}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(err.contains("mirror URL refused"), "add {url:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
        assert_eq!(fs::read(&config).ok(), before, "config written for {url:?}");
        if url.starts_with('-') {
            // Without `--` the option parser refuses it, also with a usage error.
            let out = env.pm(&up, &["add", "evil", &url]);
            assert_eq!(out.status.code(), Some(2), "add {url:?}: {}", text(&out));
            assert_eq!(fs::read(&config).ok(), before);
        }
    }
    let err = text(&env.pm(&up, &["add", "evil", "http://127.0.0.1/x.git"]));
    assert!(err.contains("allow_insecure_http"), "{err}");
    // http is accepted only when asked for.
    env.pm_ok(
        &up,
        &[
            "add",
            "plain",
            "http://127.0.0.1/x.git",
            "--allow-insecure-http",
            "--disabled",
        ],
    );
    // `set url=` goes through the same policy.
    let before = fs::read(&config).ok();
    for (url, _) in hostile_urls(&env) {
        if url.starts_with("http:") {
            continue; // allowed for this mirror
        }
        let out = env.pm(&up, &["set", "plain", &format!("url={url}")]);
        assert_eq!(
            out.status.code(),
            Some(2),
            "set url={url:?}: {}",
            text(&out)
        );
        assert!(text(&out).contains("mirror URL refused"), "{}", text(&out));
        assert_eq!(fs::read(&config).ok(), before, "config written for {url:?}");
    }
    env.pm_ok(&up, &["remove", "plain"]);
    assert!(env.pm_ok(&up, &["list"]).contains("no mirrors"));

    // Written into the config by hand, the same URLs are refused when read: nothing is
    // contacted, every command names the file and the reason, a push still succeeds.
    let wc = env.clone(&up, "wc");
    for (i, (url, _)) in hostile_urls(&env).into_iter().enumerate() {
        let yaml = format!(
            "mirrors:\n  - name: evil\n    url: '{}'\n    debounce: 100ms\n",
            url.replace('\'', "''")
        );
        write_mode(&config, &yaml, 0o600);
        for args in [&["status"][..], &["sync", "--wait"], &["list"]] {
            let out = env.pm(&up, args);
            assert!(
                !out.status.success(),
                "{args:?} with {url:?}: {}",
                text(&out)
            );
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            assert!(
                err.contains("mirror URL refused") && err.contains(s(&config)),
                "{args:?} with {url:?}: {err}"
            );
        }
        env.commit(&wc, &format!("c{i}"));
        env.push(&wc, &["main"]);
        assert!(
            env.wait_flushers_gone(),
            "flusher kept running with {url:?}"
        );
    }
    assert!(
        env.log(&up).contains("mirror URL refused"),
        "the flusher logs why it did nothing:\n{}",
        env.log(&up)
    );
    for (url, marker) in hostile_urls(&env) {
        assert!(!marker.exists(), "{url:?} ran a command");
    }
}

/// A server-wide rule whose URL template is fine but whose `${name}` makes it hostile: only the
/// sync-time check can catch that one, and it must, with a clear status.
#[test]
fn hostile_url_from_a_rule_is_refused_at_sync_time() {
    let env = Env::new();
    let marker = env.path("pwned-rule");
    let host = format!("-oProxyCommand=touch%20{}", s(&marker).replace('/', "%2F"));
    let up = env.upstream(&format!("{host}.git"));
    env.write_server_config(&format!(
        "root: '{}'\ndefaults:\n  max_attempts: 2\n  backoff_initial: 200ms\n  backoff_max: 1s\n\
         rules:\n  - name: by-host\n    url: 'ssh://${{name}}/repo.git'\n    debounce: 100ms\n",
        s(env.dir.path())
    ));
    let wc = env.clone(&up, "wc");
    env.commit(&wc, "one");
    env.push(&wc, &["main"]);
    let m = wait_gave_up(&env, &up, "by-host");
    let err = m["last_error"].as_str().unwrap();
    assert_clean_error(err, &[]);
    assert!(
        err.contains("mirror URL refused") && err.contains("host starts with '-'"),
        "{err}"
    );
    let out = env.pm(&up, &["sync", "--wait"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("mirror URL refused"), "{}", text(&out));
    assert!(env.wait_flushers_gone());
    assert!(!marker.exists(), "the ProxyCommand ran");
}
