//! Credentials go to the mirror and nowhere else (issue 17, and issue 14's host pinning), end to
//! end against real servers on 127.0.0.1: a real HTTP CONNECT proxy that logs what it is sent,
//! a real nginx redirect to another port, a real sshd with an ssh_config of the flusher's user
//! that must not be read, a real host-key change, a passphrase-protected key, a black-holed
//! mirror for `status`, and `add`/`set` refusing auth files a sync would refuse.
//!
//! Timing is never asserted: everything polls with a generous deadline.

mod common;

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::servers::*;
use common::*;

const DEADLINE: Duration = Duration::from_secs(90);

/// Retries that give up quickly.
const FAST_RETRIES: &str =
    "defaults:\n  max_attempts: 3\n  backoff_initial: 200ms\n  backoff_max: 1s\n";

fn last_error(m: &serde_json::Value) -> String {
    let err = m["last_error"].as_str().unwrap_or_default().to_string();
    assert!(!err.is_empty() && !err.contains('\n'), "{m:#}");
    err
}

// ---------------------------------------------------------------------------
// A real HTTP CONNECT proxy on 127.0.0.1 that logs every request head
// ---------------------------------------------------------------------------

/// A forward proxy on 127.0.0.1. For `https` (CONNECT) it logs each request line and its
/// `Proxy-Authorization` header as sent (so a test can look for a password, base64 or not),
/// answers 407 without that header, and otherwise tunnels to the requested 127.0.0.1 port.
/// A plain `http://127.0.0.1:<port>/...` request is relayed to that port as it is, and all
/// the client sends on that connection is logged: what a proxy reads of an `http://` mirror.
struct ConnectProxy {
    port: u16,
    log: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    accept: Option<std::thread::JoinHandle<()>>,
}

impl ConnectProxy {
    fn start() -> ConnectProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (log2, stop2) = (log.clone(), stop.clone());
        let accept = std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let log = log2.clone();
                        std::thread::spawn(move || {
                            let _ = Self::serve(conn, log);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        ConnectProxy {
            port,
            log,
            stop,
            accept: Some(accept),
        }
    }

    fn serve(conn: TcpStream, log: Arc<Mutex<Vec<String>>>) -> std::io::Result<()> {
        conn.set_nonblocking(false)?;
        let mut client = conn.try_clone()?;
        let mut reader = BufReader::new(conn);
        // One connection may carry several requests: curl asks without credentials first
        // and, after the 407, again on the same connection with them.
        loop {
            let mut head = Vec::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line)? == 0 {
                    return Ok(());
                }
                let line = line.trim_end().to_string();
                if line.is_empty() {
                    break;
                }
                head.push(line);
            }
            let request = head.first().cloned().unwrap_or_default();
            let auth = head
                .iter()
                .find(|l| l.to_ascii_lowercase().starts_with("proxy-authorization:"))
                .cloned();
            log.lock().unwrap().push(format!(
                "{request} | {}",
                auth.clone()
                    .unwrap_or_else(|| "no Proxy-Authorization".into())
            ));
            // A plain `http://` request (absolute form): no tunnel, the proxy reads it and
            // relays it, as any forward proxy does. Everything the client sends on this
            // connection from here on is logged as the proxy sees it.
            let plain = request
                .split_whitespace()
                .nth(1)
                .and_then(|u| u.strip_prefix("http://"))
                .and_then(|r| r.split('/').next())
                .filter(|t| t.starts_with("127.0.0.1:"))
                .map(str::to_string);
            if let Some(target) = plain {
                let upstream = TcpStream::connect(&target)?;
                let raw = format!("{}\r\n\r\n", head.join("\r\n"));
                let mut up_w = upstream.try_clone()?;
                up_w.write_all(raw.as_bytes())?;
                up_w.write_all(reader.buffer())?;
                log.lock()
                    .unwrap()
                    .push(format!("{raw}{}", String::from_utf8_lossy(reader.buffer())));
                let mut client_r = reader.into_inner();
                let log = log.clone();
                let there = std::thread::spawn(move || {
                    let mut buf = [0u8; 8192];
                    while let Ok(n) = client_r.read(&mut buf) {
                        if n == 0 || up_w.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        log.lock()
                            .unwrap()
                            .push(String::from_utf8_lossy(&buf[..n]).into_owned());
                    }
                    let _ = up_w.shutdown(Shutdown::Write);
                });
                let mut up_r = upstream;
                let _ = std::io::copy(&mut up_r, &mut client);
                let _ = client.shutdown(Shutdown::Write);
                let _ = there.join();
                return Ok(());
            }
            let target = request
                .strip_prefix("CONNECT ")
                .and_then(|r| r.split_whitespace().next())
                .map(str::to_string);
            let Some(target) = target.filter(|t| t.starts_with("127.0.0.1:")) else {
                client.write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")?;
                return Ok(());
            };
            if auth.is_none() {
                client.write_all(
                    b"HTTP/1.1 407 Proxy Authentication Required\r\n\
                      Proxy-Authenticate: Basic realm=\"test proxy\"\r\n\
                      Content-Length: 0\r\n\r\n",
                )?;
                continue;
            }
            let upstream = TcpStream::connect(&target)?;
            client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")?;
            // Whatever the reader buffered past the head belongs to the tunnel.
            let mut up_w = upstream.try_clone()?;
            up_w.write_all(reader.buffer())?;
            let mut client_r = reader.into_inner();
            let there = std::thread::spawn(move || {
                let _ = std::io::copy(&mut client_r, &mut up_w);
                let _ = up_w.shutdown(Shutdown::Write);
            });
            let mut up_r = upstream;
            let _ = std::io::copy(&mut up_r, &mut client);
            let _ = client.shutdown(Shutdown::Write);
            let _ = there.join();
            return Ok(());
        }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for ConnectProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

fn assert_secret_not_in(what: &str, haystack: &str, user: &str, secret: &str) {
    let encoded = base64(format!("{user}:{secret}").as_bytes());
    assert!(
        !haystack.contains(secret) && !haystack.contains(&encoded),
        "the mirror's password reached {what}:\n{haystack}"
    );
}

#[test]
fn a_proxy_never_gets_the_mirrors_password() {
    if no_https() {
        return;
    }
    const SECRET: &str = "Mirr0r-Secret-For-Proxy-Test";
    let env = Env::new();
    env.write_server_config(FAST_RETRIES);
    let up = upstream_with_commit(&env);
    let (dst, https) = https_target(&env, "srv", "mirror", SECRET);
    let proxy = ConnectProxy::start();
    let url = https.url("dst.git");
    add_password_mirror(
        &env,
        &up,
        "m",
        &url,
        "mirror",
        SECRET,
        &https.ca_file,
        &["--disabled"],
    );
    let proxy_user_only = format!("http://proxyuser@127.0.0.1:{}", proxy.port);

    // 1. A proxy in the environment of whoever started the flusher is not used at all: the
    //    sync goes straight to the mirror, and the proxy sees nothing.
    let vars = [
        ("https_proxy", proxy_user_only.as_str()),
        ("HTTPS_PROXY", proxy_user_only.as_str()),
        ("all_proxy", proxy_user_only.as_str()),
    ];
    let out = pm_with(&env, &up, &["enable", "m"], &vars);
    assert!(out.status.success(), "enable: {}", text(&out));
    let out = pm_with(&env, &up, &["sync", "m", "--wait"], &vars);
    assert!(out.status.success(), "sync via env proxy: {}", text(&out));
    env.wait_mirrored(&up, &dst);
    assert!(env.wait_flushers_gone());
    assert_eq!(proxy.log(), "", "the environment's proxy was used");

    // 2. git's own http.proxy (here the upstream's config) is the proxy a sync uses. With a
    //    user but no password, git asks for the proxy's password: the askpass refuses (it
    //    answers only for the mirror's scheme, host and port), so the sync fails, saying why,
    //    and the proxy never sees the mirror's password.
    env.git(&up, &["config", "http.proxy", &proxy_user_only]);
    let wc = env.path("wc");
    env.commit(&wc, "two");
    env.git(&up, &["fetch", "-q", s(&wc), "main:main"]);
    let out = env.pm(&up, &["sync", "m", "--wait"]);
    assert!(!out.status.success(), "sync: {}", text(&out));
    let m = wait_gave_up(&env, &up, "m");
    let err = last_error(&m);
    assert!(
        err.contains("refused to give the mirror's credentials")
            && err.contains(&format!("127.0.0.1:{}", proxy.port)),
        "{err}"
    );
    assert_secret_not_in("the error", &err, "proxyuser", SECRET);
    assert_secret_not_in("the proxy", &proxy.log(), "proxyuser", SECRET);
    assert_secret_not_in("the log", &env.log(&up), "proxyuser", SECRET);
    assert_ne!(env.heads_and_tags(&dst), env.heads_and_tags(&up));

    // 3. A proxy whose password is in http.proxy itself works, for the listing and for the
    //    push (which runs in a shadow repository without the upstream's config): the proxy
    //    sees its own credentials and a tunnel to the mirror, never the mirror's password.
    let with_password = format!("http://proxyuser:pr0xy-pass@127.0.0.1:{}", proxy.port);
    env.git(&up, &["config", "http.proxy", &with_password]);
    // Without the record of the mirror's refs that the first sync left, this sync lists the
    // mirror with `git ls-remote` and then pushes (with it, the push alone would list it).
    let _ = std::fs::remove_file(up.join("pushmirror/state/m.listing"));
    let out = env.pm(&up, &["sync", "m", "--wait"]);
    assert!(out.status.success(), "sync via proxy: {}", text(&out));
    env.wait_mirrored(&up, &dst);
    let log = proxy.log();
    let proxy_auth = base64(b"proxyuser:pr0xy-pass");
    let tunnels = log
        .lines()
        .filter(|l| {
            l.starts_with(&format!("CONNECT 127.0.0.1:{} ", https.port)) && l.contains(&proxy_auth)
        })
        .count();
    assert!(
        tunnels >= 2,
        "listing and push did not both go through the proxy:\n{log}"
    );
    assert_secret_not_in("the proxy", &log, "proxyuser", SECRET);
    assert_secret_not_in("the proxy", &log, "mirror", SECRET);
    assert!(env.wait_flushers_gone());
}

// ---------------------------------------------------------------------------
// A redirect to another host:port
// ---------------------------------------------------------------------------

#[test]
fn a_redirect_to_another_port_gets_no_credentials() {
    if no_https() {
        return;
    }
    const SECRET: &str = "Redirect-Target-Never-Gets-This";
    let env = Env::new();
    env.write_server_config(FAST_RETRIES);
    let up = upstream_with_commit(&env);
    // The real repository, on its own port, with the same user and password.
    let (dst, target) = https_target(&env, "target", "mirror", SECRET);
    // The mirror's host answers every /moved/ URL with a permanent redirect to the other port.
    env.bare("front/unused.git", &[]);
    let front = HttpsServer::start_with(
        &env.path("front"),
        "front",
        "front-pass",
        &format!(
            "location /moved/ {{ rewrite ^/moved/(.*)$ https://127.0.0.1:{}/git/$1 permanent; }}",
            target.port
        ),
    );
    // One CA file trusting both servers, so TLS is not what stops the redirect.
    let bundle = env.path("cas.pem");
    let cas = format!(
        "{}{}",
        fs::read_to_string(&front.ca_file).unwrap(),
        fs::read_to_string(&target.ca_file).unwrap()
    );
    write_mode(&bundle, &cas, 0o644);
    let url = format!("https://127.0.0.1:{}/moved/dst.git", front.port);
    add_password_mirror(&env, &up, "moved", &url, "mirror", SECRET, &bundle, &[]);
    let m = wait_gave_up(&env, &up, "moved");
    let err = last_error(&m);
    assert!(
        err.contains("refused to give the mirror's credentials")
            && err.contains(&format!("127.0.0.1:{}", target.port))
            && err.contains(&format!("127.0.0.1:{}", front.port)),
        "{err}"
    );
    assert_secret_not_in("the error", &err, "mirror", SECRET);
    // The redirect was followed (the target saw the request) but never with credentials.
    let front_log = front.access_log();
    assert!(
        front_log.contains(" 301 "),
        "no redirect served:\n{front_log}"
    );
    let target_log = target.access_log();
    assert!(
        target_log.contains(" 401 "),
        "redirect not followed:\n{target_log}"
    );
    // (The harness's readiness probe logs in as "mirror" on GET /git/; git never does.)
    assert!(
        !target_log
            .lines()
            .any(|l| l.contains(" - mirror [") && l.contains("dst.git")),
        "the redirect target got the mirror's credentials:\n{target_log}"
    );
    assert!(
        env.heads_and_tags(&dst).is_empty(),
        "pushed to the redirect target"
    );
    // The same mirror at its real URL works: the credentials were right, the host was not.
    env.pm_ok(
        &up,
        &["set", "moved", &format!("url={}", target.url("dst.git"))],
    );
    let out = env.pm(&up, &["sync", "moved", "--wait"]);
    assert!(out.status.success(), "sync at the real URL: {}", text(&out));
    env.wait_mirrored(&up, &dst);
    assert!(env.wait_flushers_gone());
}

// ---------------------------------------------------------------------------
// ssh: the flusher user's ~/.ssh/config is not read
// ---------------------------------------------------------------------------

/// Runs git-pushmirror (and any flusher it starts) in a private mount namespace in which the
/// `.ssh` directory of the user's home (ssh finds it through the password database, not
/// $HOME) is `fake_ssh_dir`. None when this machine cannot make such a namespace.
fn pm_with_ssh_dir(env: &Env, fake_ssh_dir: &Path, repo: &Path, args: &[&str]) -> Option<Output> {
    let root = unsafe { libc::geteuid() } == 0;
    let mut c = env.cmd("unshare");
    // As root a mount namespace is enough; otherwise a user namespace maps us to root, whose
    // home is /root.
    c.arg(if root { "-m" } else { "-rm" });
    c.args([
        "sh",
        "-c",
        "mkdir -p /root/.ssh && mount --bind \"$0\" /root/.ssh && exec \"$@\"",
    ]);
    c.arg(fake_ssh_dir)
        .arg(bin())
        .arg("--repo")
        .arg(repo)
        .args(args);
    let out = c.output().ok()?;
    let err = String::from_utf8_lossy(&out.stderr);
    if err.contains("unshare:") || err.contains("mount:") {
        return None;
    }
    Some(out)
}

fn pub_key(key: &Path) -> String {
    fs::read_to_string(key.with_extension("pub"))
        .unwrap()
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn ssh_reads_no_ssh_config_of_the_flushers_user() {
    if no_ssh() || (!have("unshare") && skip("unshare")) {
        return;
    }
    let env = Env::new();
    env.write_server_config(FAST_RETRIES);
    let up = upstream_with_commit(&env);
    let (dst, ssh) = ssh_target(&env);
    let url = ssh.url("dst.git");
    // A key the server does not accept.
    let stranger = env.path("stranger");
    ssh_keygen(&stranger, "");
    let fake_ssh = env.path("fake-ssh");
    fs::create_dir(&fake_ssh).unwrap();
    fs::set_permissions(&fake_ssh, fs::Permissions::from_mode(0o700)).unwrap();

    // 1. An IdentityFile in ~/.ssh/config (the server's accepted key) is not offered next to
    //    the mirror's own, rejected key: the mirror fails as its key deserves.
    write_mode(
        &fake_ssh.join("config"),
        &format!(
            "Host *\n  IdentityFile {}\n  UserKnownHostsFile {}\n",
            ssh.client_key.display(),
            ssh.known_hosts.display()
        ),
        0o600,
    );
    let Some(out) = pm_with_ssh_dir(
        &env,
        &fake_ssh,
        &up,
        &ssh_add_args(
            "stranger",
            &url,
            &stranger,
            ["--known-hosts", s(&ssh.known_hosts)],
        ),
    ) else {
        assert!(
            !running_in_ci(),
            "CI cannot make a mount namespace (unshare -m)"
        );
        skip("a mount namespace (unshare)");
        return;
    };
    assert!(out.status.success(), "add: {}", text(&out));
    let m = wait_gave_up(&env, &up, "stranger");
    let err = last_error(&m);
    assert!(err.contains("Permission denied (publickey)"), "{err}");
    assert!(
        env.heads_and_tags(&dst).is_empty(),
        "~/.ssh/config's key was used"
    );
    env.pm_ok(&up, &["remove", "stranger"]);

    // 2. A ProxyCommand there is not run: the mirror with the right key connects directly.
    let marker = env.path("proxycommand-ran");
    write_mode(
        &fake_ssh.join("config"),
        &format!(
            "Host *\n  ProxyCommand /bin/sh -c 'touch {}'\n",
            marker.display()
        ),
        0o600,
    );
    let out = pm_with_ssh_dir(
        &env,
        &fake_ssh,
        &up,
        &ssh_add_args(
            "good",
            &url,
            &ssh.client_key,
            ["--host-key", &ssh.host_pubkey],
        ),
    )
    .unwrap();
    assert!(out.status.success(), "add: {}", text(&out));
    wait_finished(&env, &up, "good");
    env.wait_mirrored(&up, &dst);
    assert!(!marker.exists(), "the ProxyCommand of ~/.ssh/config ran");
    assert!(env.wait_flushers_gone());
}

// ---------------------------------------------------------------------------
// ssh errors that matter: a changed host key, a key with a passphrase
// ---------------------------------------------------------------------------

#[test]
fn changed_host_key_and_passphrase_key_are_named() {
    if no_ssh() {
        return;
    }
    let env = Env::new();
    env.write_server_config(FAST_RETRIES);
    let up = upstream_with_commit(&env);
    let (dst, ssh) = ssh_target(&env);
    let url = ssh.url("dst.git");
    let other = env.path("other_host_key");
    ssh_keygen(&other, "");

    // The server presents another key than the pinned one: a possible man-in-the-middle,
    // which must not read like an unknown host.
    let other_key = pub_key(&other);
    env.pm_ok(
        &up,
        &ssh_add_args("changed", &url, &ssh.client_key, ["--host-key", &other_key]),
    );
    let m = wait_gave_up(&env, &up, "changed");
    let err = last_error(&m);
    for want in [
        "REMOTE HOST IDENTIFICATION HAS CHANGED",
        &format!("Host key for [127.0.0.1]:{} has changed", ssh.port),
        "SHA256:",
        "Host key verification failed.",
    ] {
        assert!(err.contains(want), "{want:?} missing from: {err}");
    }

    // The server's own key, behind a passphrase the flusher cannot type: `add` refuses it,
    // and a key that gets a passphrase after `add` is named at the sync, not reported as
    // "Permission denied (publickey)".
    let key = env.path("with_passphrase");
    fs::copy(&ssh.client_key, &key).unwrap();
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
    let args = ssh_add_args("locked", &url, &key, ["--host-key", &ssh.host_pubkey]);
    env.pm_ok(&up, &["remove", "changed"]);
    let mut disabled = args.to_vec();
    disabled.push("--disabled");
    env.pm_ok(&up, &disabled);
    let out = std::process::Command::new("ssh-keygen")
        .args(["-q", "-p", "-P", "", "-N", "a passphrase", "-f", s(&key)])
        .output()
        .unwrap();
    assert!(out.status.success(), "ssh-keygen -p: {}", text(&out));
    env.pm_ok(&up, &["enable", "locked"]);
    let m = wait_gave_up(&env, &up, "locked");
    let err = last_error(&m);
    assert!(err.contains("passphrase") && err.contains(s(&key)), "{err}");
    assert!(env.heads_and_tags(&dst).is_empty());
    env.pm_ok(&up, &["remove", "locked"]);
    let out = env.pm(&up, &args);
    assert_eq!(out.status.code(), Some(1), "add: {}", text(&out));
    assert!(text(&out).contains("passphrase"), "{}", text(&out));
}

// ---------------------------------------------------------------------------
// add/set check auth files before writing
// ---------------------------------------------------------------------------

#[test]
fn add_and_set_refuse_auth_files_a_sync_would_refuse() {
    if !have("ssh-keygen") && skip("ssh-keygen") {
        return;
    }
    let env = Env::new();
    let up = env.upstream("up.git");
    let d = env.path("auth");
    fs::create_dir(&d).unwrap();
    let key = d.join("id");
    ssh_keygen(&key, "");
    let open_key = d.join("open_id");
    fs::copy(&key, &open_key).unwrap();
    fs::set_permissions(&open_key, fs::Permissions::from_mode(0o644)).unwrap();
    // The admin gives the `.pub` by mistake: as ssh-keygen left it (0644), and chmod 600'd
    // after a mode complaint; ssh would only say "Permission denied (publickey)".
    let public = key.with_extension("pub");
    let private_pub = d.join("id600.pub");
    fs::copy(&public, &private_pub).unwrap();
    fs::set_permissions(&private_pub, fs::Permissions::from_mode(0o600)).unwrap();
    let kh = d.join("known_hosts");
    write_mode(
        &kh,
        "[127.0.0.1]:22 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMq\n",
        0o644,
    );
    let writable_kh = d.join("known_hosts_rw");
    write_mode(&writable_kh, "", 0o666);
    let pw = d.join("pw");
    write_mode(&pw, "s3cret\n", 0o600);
    let open_pw = d.join("open_pw");
    write_mode(&open_pw, "s3cret\n", 0o644);
    let empty_pw = d.join("empty_pw");
    write_mode(&empty_pw, "", 0o600);
    let missing = d.join("missing");
    let ssh_url = "ssh://git@127.0.0.1:22/x.git";
    let https_url = "https://127.0.0.1:1/x.git";
    let config = up.join("pushmirror/config.yaml");
    let before = fs::read(&config).ok();

    let two_lines = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMq\nssh-rsa AAAAB3Nza";
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec![ssh_url, "--ssh-key", s(&missing)], "missing"),
        (vec![ssh_url, "--ssh-key", s(&open_key)], "0644"),
        (vec![https_url, "--ca-file", s(&missing)], "ca_file"),
        (vec![ssh_url, "--ssh-key", s(&public)], "is a public key"),
        (
            vec![ssh_url, "--ssh-key", s(&private_pub)],
            "is a public key",
        ),
        (
            vec![ssh_url, "--ssh-key", s(&key), "--known-hosts", s(&missing)],
            "known_hosts",
        ),
        (
            vec![
                ssh_url,
                "--ssh-key",
                s(&key),
                "--known-hosts",
                s(&writable_kh),
            ],
            "0666",
        ),
        (
            vec![ssh_url, "--ssh-key", s(&key), "--host-key", "garbage"],
            "host_key",
        ),
        (
            vec![ssh_url, "--ssh-key", s(&key), "--host-key", two_lines],
            "host_key",
        ),
        (
            vec![https_url, "--username", "u", "--password-file", s(&missing)],
            "missing",
        ),
        (
            vec![https_url, "--username", "u", "--password-file", s(&open_pw)],
            "0644",
        ),
        (
            vec![
                https_url,
                "--username",
                "u",
                "--password-file",
                s(&empty_pw),
            ],
            "empty",
        ),
    ];
    for (extra, want) in &cases {
        let mut args = vec!["add", "m"];
        args.extend(extra.iter().copied());
        args.push("--disabled");
        let out = env.pm(&up, &args);
        let said = text(&out);
        assert_eq!(out.status.code(), Some(1), "{extra:?}: {said}");
        assert!(said.contains(want), "{extra:?}: {said}");
        assert_eq!(said.trim().lines().count(), 1, "{extra:?}: {said}");
        assert!(!said.contains("s3cret"), "{said}");
        assert_eq!(
            fs::read(&config).ok(),
            before,
            "{extra:?}: a refused add wrote the config"
        );
    }

    // Good files are accepted, and `set` checks a changed auth the same way.
    env.pm_ok(
        &up,
        &[
            "add",
            "m",
            ssh_url,
            "--ssh-key",
            s(&key),
            "--known-hosts",
            s(&kh),
            "--disabled",
        ],
    );
    env.pm_ok(
        &up,
        &[
            "add",
            "h",
            https_url,
            "--username",
            "u",
            "--password-file",
            s(&pw),
            "--disabled",
        ],
    );
    let written = fs::read(&config).unwrap();
    for (name, assignment, want) in [
        ("m", format!("auth.key_file={}", s(&missing)), "missing"),
        ("m", format!("auth.key_file={}", s(&open_key)), "0644"),
        ("m", format!("auth.known_hosts={}", s(&writable_kh)), "0666"),
        ("h", format!("auth.password_file={}", s(&open_pw)), "0644"),
    ] {
        let out = env.pm(&up, &["set", name, &assignment]);
        let said = text(&out);
        assert_eq!(out.status.code(), Some(1), "{assignment}: {said}");
        assert!(said.contains(want), "{assignment}: {said}");
        assert_eq!(
            fs::read(&config).unwrap(),
            written,
            "{assignment} was written"
        );
    }
    let out = env.pm(
        &up,
        &["set", "m", "auth.known_hosts=", "auth.host_key=garbage"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    // A change that leaves auth alone is not blocked by a file that went bad since.
    fs::set_permissions(&kh, fs::Permissions::from_mode(0o666)).unwrap();
    env.pm_ok(&up, &["set", "m", "timeout=10s"]);
}

// ---------------------------------------------------------------------------
// status: not healthy while a failed mirror retries
// ---------------------------------------------------------------------------

/// Accepts connections and never answers.
struct BlackHole {
    port: u16,
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl BlackHole {
    fn start() -> BlackHole {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut held = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut conn, _)) => {
                        // Read and drop whatever comes, answer nothing.
                        let _ = conn.set_nonblocking(true);
                        let mut buf = [0u8; 1024];
                        let _ = conn.read(&mut buf);
                        held.push(conn);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        BlackHole {
            port,
            stop,
            handle: Some(handle),
        }
    }
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

#[test]
fn a_failing_mirror_is_not_healthy_while_it_retries() {
    let env = Env::new();
    env.write_server_config(
        "defaults:\n  max_attempts: 6\n  backoff_initial: 100ms\n  backoff_max: 200ms\n",
    );
    let up = upstream_with_commit(&env);
    let hole = BlackHole::start();
    let url = format!("https://127.0.0.1:{}/x.git", hole.port);
    env.pm_ok(&up, &["add", "hole", &url, "--timeout", "3s"]);
    // Catch the mirror while a retry runs after a failure: it must not be called healthy,
    // and `status` must exit 1.
    let mut seen_retrying = false;
    let ok = wait_until(DEADLINE, || {
        let out = env.pm(&up, &["status", "hole", "--json"]);
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let m = &doc["mirrors"][0];
        if m["consecutive_failures"].as_u64().unwrap_or(0) > 0 {
            assert_eq!(m["healthy"], false, "{m:#}");
            assert_eq!(out.status.code(), Some(1), "{m:#}");
            seen_retrying |= m["update_status"] == "started";
        }
        seen_retrying || m["gave_up"] == true
    });
    assert!(
        ok && seen_retrying,
        "never saw the retry run: {:#}",
        env.mirror_status(&up, "hole")
    );
    env.pm_ok(&up, &["disable", "hole"]);
    assert!(env.wait_flushers_gone());
}

/// An inline password YAML reads as a number or a boolean (`password: 987654321`) is a type
/// error; the error names the line and the key, but never the value: it goes to every pusher
/// (`remote:` lines), the log, `status` and `list`.
#[test]
fn a_config_error_on_an_inline_password_does_not_show_it() {
    let env = Env::new();
    let up = env.upstream("up.git");
    let secret = "987654321";
    let dir = up.join("pushmirror");
    fs::create_dir_all(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
    write_mode(
        &dir.join("config.yaml"),
        &format!(
            "mirrors:\n- name: h\n  url: https://127.0.0.1:1/x.git\n  auth:\n    method: password\n    username: bob\n    password: {secret}\n"
        ),
        0o600,
    );
    let wc = env.clone(&up, "wc");
    env.commit(&wc, "one");
    let pushed = env.push(&wc, &["main"]);
    let remote = text(&pushed);
    assert!(remote.contains("line 7"), "{remote}");
    assert!(!remote.contains(secret), "{remote}");
    for args in [&["status"][..], &["list"], &["status", "--json"]] {
        let said = text(&env.pm(&up, args));
        assert!(said.contains("password"), "{args:?}: {said}");
        assert!(!said.contains(secret), "{args:?}: {said}");
    }
    assert!(env.wait_flushers_gone());
    let log = env.log(&up);
    assert!(!log.contains(secret), "{log}");
}

/// `set NAME auth.password=...` is refused because argv shows in `ps`; the same password given
/// as a mapping (`auth={method: password, ..., password: ...}`) is refused the same way, and
/// no error about such an assignment repeats the password.
#[test]
fn set_refuses_an_inline_password_in_an_auth_mapping_and_never_echoes_it() {
    let env = Env::new();
    let up = env.upstream("up.git");
    env.pm_ok(
        &up,
        &["add", "h", "https://127.0.0.1:1/x.git", "--disabled"],
    );
    let config = up.join("pushmirror/config.yaml");
    let before = fs::read(&config).unwrap();
    let secret = "s3cretZ9";
    for value in [
        format!("auth={{method: password, username: u, password: {secret}}}"),
        format!("auth={{method: password, usrname: u, password: {secret}}}"),
        "auth={method: password, username: u, password: 987654321}".to_string(),
    ] {
        let out = env.pm(&up, &["set", "h", &value]);
        let said = text(&out);
        assert_eq!(out.status.code(), Some(2), "{value}: {said}");
        assert!(
            !said.contains(secret) && !said.contains("987654321"),
            "{value}: {said}"
        );
        assert_eq!(said.trim().lines().count(), 1, "{said}");
        assert_eq!(fs::read(&config).unwrap(), before, "{value}");
    }
}

/// `user:pass@host:path` is scp-like ssh to a host called `user` with the password as the path:
/// `add`, `set` and a hand-edited file refuse it in one line, and nothing ever shows the
/// password. URL credentials next to `auth.method: password` (silently ignored before) and a
/// scheme-less `github.com/acme/app.git` (a local directory for git) are refused by `add`.
#[test]
fn scp_like_passwords_and_ignored_url_credentials_are_refused() {
    let env = Env::new();
    let up = env.upstream("up.git");
    let secret = "hunter2Zq";
    let scp = format!("deploy:{secret}@127.0.0.1:x.git");
    let out = env.pm(&up, &["add", "h", &scp, "--disabled"]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(
        said.contains("scp-like") && !said.contains(secret),
        "{said}"
    );
    assert_eq!(said.trim().lines().count(), 1, "{said}");
    assert!(!up.join("pushmirror/config.yaml").exists());

    env.pm_ok(
        &up,
        &["add", "h", "https://127.0.0.1:1/x.git", "--disabled"],
    );
    let config = up.join("pushmirror/config.yaml");
    let before = fs::read(&config).unwrap();
    let out = env.pm(&up, &["set", "h", &format!("url={scp}")]);
    let said = text(&out);
    assert_ne!(out.status.code(), Some(0), "{said}");
    assert!(
        said.contains("scp-like") && !said.contains(secret),
        "{said}"
    );
    assert_eq!(fs::read(&config).unwrap(), before);

    // URL credentials and a password auth: one of them would be ignored.
    let pw = up.join("pw");
    write_mode(&pw, "x\n", 0o600);
    let out = env.pm(
        &up,
        &[
            "add",
            "both",
            &format!("https://bob:{secret}@127.0.0.1:1/x.git"),
            "--username",
            "bob",
            "--password-file",
            s(&pw),
            "--disabled",
        ],
    );
    let said = text(&out);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(
        said.contains("credentials") && !said.contains(secret),
        "{said}"
    );

    // A host name without a scheme is not a path git can push to.
    let out = env.pm(&up, &["add", "gh", "github.com/acme/app.git", "--disabled"]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(said.contains("https://github.com/acme/app.git"), "{said}");
    assert_eq!(fs::read(&config).unwrap(), before);

    // Edited by hand: every command refuses the file, and nothing shows the password.
    let edited = String::from_utf8(before)
        .unwrap()
        .replace("https://127.0.0.1:1/x.git", &scp);
    fs::write(&config, edited).unwrap();
    let wc = env.clone(&up, "wc");
    env.commit(&wc, "one");
    let pushed = text(&env.push(&wc, &["main"]));
    assert!(!pushed.contains(secret), "{pushed}");
    for args in [&["status"][..], &["list"], &["status", "--json"]] {
        let said = text(&env.pm(&up, args));
        assert!(said.contains("scp-like"), "{args:?}: {said}");
        assert!(!said.contains(secret), "{args:?}: {said}");
    }
    assert!(env.wait_flushers_gone());
    assert!(!env.log(&up).contains(secret));
}

/// `https://good.example?@evil.test/x`: git ends the host at the '?', other readers take the
/// last '@' and see evil.test. `add` and `set` refuse it in one line (exit 2) and write
/// nothing; escaped (`%3F`) it is an ordinary user name.
#[test]
fn a_query_mark_before_the_userinfo_at_is_refused_as_ambiguous() {
    let env = Env::new();
    let up = env.upstream("up.git");
    for url in [
        "https://good.example?@evil.test/x.git",
        "https://good.example#@evil.test/x.git",
    ] {
        let out = env.pm(&up, &["add", "g", url, "--disabled"]);
        let said = text(&out);
        assert_eq!(out.status.code(), Some(2), "{url}: {said}");
        assert!(said.contains("ambiguous") && said.contains("%3F"), "{said}");
        assert_eq!(said.trim().lines().count(), 1, "{said}");
        assert!(!up.join("pushmirror/config.yaml").exists());
    }
    env.pm_ok(
        &up,
        &["add", "g", "https://good.example/x.git", "--disabled"],
    );
    let config = up.join("pushmirror/config.yaml");
    let before = fs::read(&config).unwrap();
    let out = env.pm(
        &up,
        &["set", "g", "url=https://good.example?@evil.test/x.git"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert_eq!(fs::read(&config).unwrap(), before);
    env.pm_ok(
        &up,
        &["set", "g", "url=https://good.example%3F@evil.test/x.git"],
    );
}

// ---------------------------------------------------------------------------
// Issue 20: a secret goes to its own mirror's origin and nowhere else
// ---------------------------------------------------------------------------

/// The flusher inherits the environment of whoever pushed, `password_env` tokens included.
/// None of the configured ones (this repository's mirrors, every server rule) reaches a git
/// child: not the hooks of a local mirror, and not even the owning mirror's git, whose askpass
/// gets the password another way. The owning mirror still authenticates with it, and a
/// variable the configuration does not name is left alone.
#[test]
fn password_env_tokens_reach_no_git_child_and_no_local_mirrors_hooks() {
    if no_https() {
        return;
    }
    const SECRET: &str = "Https-Mirror-Token-31";
    const RULE_SECRET: &str = "Rule-Token-Of-Another-Repo-47";
    let env = Env::new();
    env.write_server_config(&format!(
        "{FAST_RETRIES}rules:\n  - name: elsewhere\n    url: https://127.0.0.1:1/${{name}}.git\n    repos: [no-such-repo]\n    auth:\n      method: password\n      username: bot\n      password_env: PM_RULE_TOKEN\n"
    ));
    let up = upstream_with_commit(&env);
    let (dst, https) = https_target(&env, "srv", "mirror", SECRET);
    env.pm_ok(
        &up,
        &[
            "add",
            "h",
            &https.url("dst.git"),
            "--username",
            "mirror",
            "--password-env",
            "PM_HTTPS_TOKEN",
            "--ca-file",
            s(&https.ca_file),
            "--timeout",
            "30s",
            "--disabled",
        ],
    );
    // A local mirror whose repository records the environment its hooks get.
    let local = env.bare("local.git", &[]);
    let recorded = env.path("hook.env");
    write_exec(
        &local.join("hooks/post-receive"),
        &format!("#!/bin/sh\nenv > '{}'\n", recorded.display()),
    );
    env.pm_ok(&up, &["add", "l", s(&local), "--disabled"]);
    let vars = [
        ("PM_HTTPS_TOKEN", SECRET),
        ("PM_RULE_TOKEN", RULE_SECRET),
        ("PM_UNRELATED", "still-here"),
    ];
    for args in [&["enable", "h"][..], &["enable", "l"], &["sync", "--wait"]] {
        let out = pm_with(&env, &up, args, &vars);
        assert!(out.status.success(), "{args:?}: {}", text(&out));
    }
    env.wait_mirrored(&up, &dst);
    env.wait_mirrored(&up, &local);
    assert!(env.wait_flushers_gone());
    let hook_env = fs::read_to_string(&recorded).expect("the local mirror's hook ran");
    assert!(
        hook_env.contains("PM_UNRELATED=still-here"),
        "the hook did not record the flusher's environment:\n{hook_env}"
    );
    for leaked in [
        "PM_HTTPS_TOKEN",
        "PM_RULE_TOKEN",
        SECRET,
        RULE_SECRET,
        "GIT_PUSHMIRROR_PASSWORD",
    ] {
        assert!(
            !hook_env.contains(leaked),
            "{leaked} reached the local mirror's hook:\n{hook_env}"
        );
    }
    // The HTTPS mirror authenticated with its token (the harness's probe is "mirror" on GET
    // /git/; a sync's requests name dst.git).
    assert!(
        https
            .access_log()
            .lines()
            .any(|l| l.contains(" - mirror [") && l.contains("dst.git")),
        "{}",
        https.access_log()
    );
}

/// `auth.method: password` on a mirror git never asks a password of (local, ssh://, scp-like,
/// git://) is refused by `add`, `set` and the loader (repository file and server rule), in one
/// line naming what to change; before, the password then sat in the environment of a local
/// mirror's hooks.
#[test]
fn password_auth_is_refused_for_mirrors_that_never_ask_for_a_password() {
    let env = Env::new();
    let up = env.upstream("up.git");
    let local = env.bare("local.git", &[]);
    let config = up.join("pushmirror/config.yaml");
    for url in [
        s(&local),
        "file:///srv/m.git",
        "ssh://git@127.0.0.1:22/m.git",
        "git@127.0.0.1:m.git",
        "git://127.0.0.1/m.git",
    ] {
        let out = env.pm(
            &up,
            &[
                "add",
                "p",
                url,
                "--username",
                "u",
                "--password-env",
                "PM_TOKEN",
                "--disabled",
            ],
        );
        let said = text(&out);
        assert_eq!(out.status.code(), Some(2), "{url}: {said}");
        assert!(
            said.contains("auth.method password") && said.contains("https://"),
            "{url}: {said}"
        );
        assert_eq!(said.trim().lines().count(), 1, "{said}");
        assert!(!config.exists(), "{url}: a refused add wrote the config");
    }

    env.pm_ok(&up, &["add", "l", s(&local), "--disabled"]);
    let before = fs::read(&config).unwrap();
    let out = env.pm(
        &up,
        &[
            "set",
            "l",
            "auth.method=password",
            "auth.username=u",
            "auth.password_env=PM_TOKEN",
        ],
    );
    let said = text(&out);
    assert_ne!(out.status.code(), Some(0), "{said}");
    assert!(said.contains("auth.method password"), "{said}");
    assert_eq!(fs::read(&config).unwrap(), before);

    // Written by hand: the pusher, `status` and `list` are told, naming file and line.
    let edited = format!(
        "{}  auth:\n    method: password\n    username: u\n    password_env: PM_TOKEN\n",
        String::from_utf8(before.clone()).unwrap()
    );
    fs::write(&config, edited).unwrap();
    let wc = env.clone(&up, "wc");
    env.commit(&wc, "one");
    let pushed = text(&env.push(&wc, &["main"]));
    assert!(pushed.contains("auth.method password"), "{pushed}");
    for args in [&["status"][..], &["list"]] {
        let said = text(&env.pm(&up, args));
        assert!(
            said.contains("config.yaml") && said.contains("auth.method password"),
            "{args:?}: {said}"
        );
    }
    assert!(env.wait_flushers_gone());
    fs::write(&config, &before).unwrap();

    // A server rule: the server file is refused when it loads.
    env.write_server_config(
        "rules:\n  - name: r\n    url: /srv/mirrors/${name}.git\n    auth:\n      method: password\n      username: u\n      password_file: /etc/pw\n",
    );
    let said = text(&env.pm(&up, &["status"]));
    assert!(
        said.contains("server.yaml")
            && said.contains("`r`")
            && said.contains("auth.method password"),
        "{said}"
    );
}

/// An `http://` mirror (allow_insecure_http) behind git's `http.proxy` is no tunnel: the
/// proxy reads every request, Basic auth included. Such a sync is refused before anything is
/// sent, saying why and how to exempt the mirror; exempted, it goes straight to the mirror.
#[test]
fn an_http_mirror_behind_a_proxy_never_sends_its_password() {
    if no_https() {
        return;
    }
    const SECRET: &str = "Cleartext-Mirror-Secret-9";
    let env = Env::new();
    env.write_server_config(FAST_RETRIES);
    let up = upstream_with_commit(&env);
    // The suite's nginx, also listening on a plain-http port.
    let http_port = free_port();
    let dst = env.bare("srv/dst.git", &[]);
    let server = HttpsServer::start_with(
        &env.path("srv"),
        "mirror",
        SECRET,
        &format!("listen 127.0.0.1:{http_port};"),
    );
    let url = format!("http://127.0.0.1:{http_port}/git/dst.git");
    let proxy = ConnectProxy::start();
    env.git(
        &up,
        &[
            "config",
            "http.proxy",
            &format!("http://127.0.0.1:{}", proxy.port),
        ],
    );
    add_password_mirror(
        &env,
        &up,
        "m",
        &url,
        "mirror",
        SECRET,
        &server.ca_file,
        &["--allow-insecure-http"],
    );
    // Whichever way the sync ends, the proxy must not have read the password.
    wait_mirror(&env, &up, "m", "a finished or abandoned sync", |m| {
        m["update_status"] == "finished" || m["gave_up"] == true
    });
    assert!(env.wait_flushers_gone());
    assert_secret_not_in("the proxy", &proxy.log(), "mirror", SECRET);
    let err = last_error(&env.mirror_status(&up, "m"));
    assert!(
        err.contains("clear text") && err.contains(&format!("127.0.0.1:{}", proxy.port)),
        "{err}"
    );
    assert_secret_not_in("the error", &err, "mirror", SECRET);
    assert_secret_not_in("the log", &env.log(&up), "mirror", SECRET);
    assert!(env.heads_and_tags(&dst).is_empty());

    // Exempted from the proxy as the message says, the mirror is reached directly.
    env.git(&up, &["config", &format!("http.{url}.proxy"), ""]);
    let out = env.pm(&up, &["sync", "m", "--wait"]);
    assert!(out.status.success(), "sync without proxy: {}", text(&out));
    env.wait_mirrored(&up, &dst);
    assert!(env.wait_flushers_gone());
    assert_secret_not_in("the proxy", &proxy.log(), "mirror", SECRET);
}

/// git's bracketed scp-like form `[user:password@host:port]:path` hands
/// `user:password@host:port` to ssh on its command line. `add`, `set` and the loader refuse it
/// like the other forms, and nothing shows the password.
#[test]
fn bracketed_scp_like_passwords_are_refused_and_never_shown() {
    let env = Env::new();
    let up = env.upstream("up.git");
    let secret = "brack3tSecretQ";
    let url = format!("[deploy:{secret}@127.0.0.1:2222]:x.git");
    let config = up.join("pushmirror/config.yaml");
    let out = env.pm(&up, &["add", "b", &url, "--disabled"]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(
        said.contains("scp-like") && !said.contains(secret),
        "{said}"
    );
    assert_eq!(said.trim().lines().count(), 1, "{said}");
    assert!(!config.exists());

    env.pm_ok(
        &up,
        &["add", "b", "[git@127.0.0.1:2222]:x.git", "--disabled"],
    );
    let before = fs::read(&config).unwrap();
    let out = env.pm(&up, &["set", "b", &format!("url={url}")]);
    let said = text(&out);
    assert_ne!(out.status.code(), Some(0), "{said}");
    assert!(
        said.contains("scp-like") && !said.contains(secret),
        "{said}"
    );
    assert_eq!(fs::read(&config).unwrap(), before);

    // Edited by hand: every command refuses the file, and nothing shows the password.
    let edited = String::from_utf8(before)
        .unwrap()
        .replace("[git@127.0.0.1:2222]:x.git", &url);
    assert!(edited.contains(&url), "{edited}");
    fs::write(&config, edited).unwrap();
    let wc = env.clone(&up, "wc");
    env.commit(&wc, "one");
    let pushed = text(&env.push(&wc, &["main"]));
    assert!(!pushed.contains(secret), "{pushed}");
    for args in [
        &["status"][..],
        &["list"],
        &["status", "--json"],
        &["show", "b"],
    ] {
        let said = text(&env.pm(&up, args));
        assert!(said.contains("scp-like"), "{args:?}: {said}");
        assert!(!said.contains(secret), "{args:?}: {said}");
    }
    assert!(env.wait_flushers_gone());
    assert!(!env.log(&up).contains(secret));
}
