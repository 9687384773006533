//! Setups several test files share: an upstream with a commit, a mirror target behind a real
//! sshd or HTTPS server, a password mirror's `add`, and ssh key pairs.

use std::path::{Path, PathBuf};

use super::servers::{HttpsServer, SshServer};
use super::{s, text, write_mode, Env};

/// An upstream `up.git` with one commit on main (the hook installed, no push made).
pub fn upstream_with_commit(env: &Env) -> PathBuf {
    let up = env.upstream("up.git");
    let wc = env.clone(&up, "wc");
    env.commit(&wc, "one");
    env.git(&up, &["fetch", "-q", s(&wc), "main:main"]);
    up
}

/// An empty bare `srv/dst.git` and a real sshd serving `srv/`: (target, server).
pub fn ssh_target(env: &Env) -> (PathBuf, SshServer) {
    let dst = env.bare("srv/dst.git", &[]);
    let ssh = SshServer::start(&env.path("srv"));
    (dst, ssh)
}

/// Unless this machine has no sshd (then the test is skipped, as `no_ssh` says): a new `Env`,
/// its upstream `up.git` (no commit), and `ssh_target`: (env, upstream, target, server).
pub fn ssh_upstream_and_target() -> Option<(Env, PathBuf, PathBuf, SshServer)> {
    if super::no_ssh() {
        return None;
    }
    let env = Env::new();
    let up = env.upstream("up.git");
    let (dst, ssh) = ssh_target(&env);
    Some((env, up, dst, ssh))
}

/// An empty bare `DIR/dst.git` and a real HTTPS server serving `DIR/` with basic auth
/// `user`/`password`: (target, server).
pub fn https_target(env: &Env, dir: &str, user: &str, password: &str) -> (PathBuf, HttpsServer) {
    let dst = env.bare(&format!("{dir}/dst.git"), &[]);
    let https = HttpsServer::start(&env.path(dir), user, password);
    (dst, https)
}

/// `add NAME URL --username USER --password-file FILE --ca-file CA --timeout 30s EXTRA...` on
/// `up`, the password in a 0600 `mirror.password` of the test's dir; returns add's stdout.
#[allow(clippy::too_many_arguments)]
pub fn add_password_mirror(
    env: &Env,
    up: &Path,
    name: &str,
    url: &str,
    user: &str,
    password: &str,
    ca_file: &Path,
    extra: &[&str],
) -> String {
    let pwfile = env.path("mirror.password");
    write_mode(&pwfile, password, 0o600);
    let mut args = vec![
        "add",
        name,
        url,
        "--username",
        user,
        "--password-file",
        s(&pwfile),
        "--ca-file",
        s(ca_file),
        "--timeout",
        "30s",
    ];
    args.extend_from_slice(extra);
    env.pm_ok(up, &args)
}

/// `add NAME URL --ssh-key KEY HOST_KEY_ARGS... --timeout 30s` (HOST_KEY_ARGS: `--host-key
/// LINE` or `--known-hosts FILE`), as the arguments, for a caller that runs them its own way.
pub fn ssh_add_args<'a>(
    name: &'a str,
    url: &'a str,
    key: &'a Path,
    host_key: [&'a str; 2],
) -> Vec<&'a str> {
    vec![
        "add",
        name,
        url,
        "--ssh-key",
        s(key),
        host_key[0],
        host_key[1],
        "--timeout",
        "30s",
    ]
}

/// An ed25519 key pair at `path` (and `path.pub`) with `passphrase` ("" for none).
pub fn ssh_keygen(path: &Path, passphrase: &str) {
    let out = std::process::Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            passphrase,
            "-C",
            "test",
            "-f",
            s(path),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "ssh-keygen: {}", text(&out));
}

/// True (after saying so) when the test is not run as root, which it needs (CI runs as root).
pub fn skip_unless_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: needs root (CI runs as root)");
        return true;
    }
    false
}

/// `chown -R OWNER PATH`.
pub fn chown_r(owner: &str, path: &Path) {
    let o = std::process::Command::new("chown")
        .args(["-R", owner])
        .arg(path)
        .output()
        .unwrap();
    assert!(o.status.success(), "chown: {}", text(&o));
}
