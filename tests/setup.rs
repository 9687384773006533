//! Setting a mirror up (spec §12), end to end with the suite's real sshd: generated key pairs,
//! host-key detection with fingerprints, SCP-style URLs, and config edits that keep the
//! admin's comments.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use common::servers::*;
use common::*;

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// The SHA256 fingerprint of the sshd's host key, as `ssh-keygen -lf` prints it: the value an
/// admin would compare against.
fn host_fingerprint(ssh: &SshServer) -> String {
    let o = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(&ssh.known_hosts)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", err(&o));
    out(&o)
        .split_whitespace()
        .find(|w| w.starts_with("SHA256:"))
        .expect("fingerprint")
        .to_string()
}

/// The `ssh-ed25519 AAAA... comment` line printed by `add --generate-ssh-key` / `keygen`.
fn printed_public_key(stdout: &str) -> String {
    stdout
        .lines()
        .find(|l| l.starts_with("ssh-ed25519 "))
        .unwrap_or_else(|| panic!("no public key printed:\n{stdout}"))
        .to_string()
}

#[test]
fn generated_key_and_detected_host_key_are_all_an_ssh_mirror_needs() {
    let Some((env, up, dst, ssh)) = ssh_upstream_and_target() else {
        return;
    };
    let fp = host_fingerprint(&ssh);

    let o = env.pm(
        &up,
        &[
            "add",
            "backup",
            &ssh.url("dst.git"),
            "--generate-ssh-key",
            "--detect-host-key",
            "--debounce",
            "100ms",
        ],
    );
    assert!(o.status.success(), "{}{}", out(&o), err(&o));
    let stdout = out(&o);
    let public = printed_public_key(&stdout);
    assert!(stdout.contains("deploy key with write access"), "{stdout}");
    assert!(
        stdout.contains(&fp),
        "fingerprint {fp} not printed:\n{stdout}"
    );
    assert!(stdout.contains(&format!("port {}", ssh.port)), "{stdout}");
    let all = format!("{stdout}{}", err(&o));
    assert!(!all.contains("PRIVATE KEY"), "private key printed:\n{all}");

    let keys = up.join("pushmirror/keys");
    assert_eq!(mode(&keys), 0o700);
    assert_eq!(mode(&keys.join("backup")), 0o600);
    assert!(fs::read_to_string(keys.join("backup"))
        .unwrap()
        .contains("OPENSSH PRIVATE KEY"));
    assert_eq!(
        fs::read_to_string(keys.join("backup.pub")).unwrap().trim(),
        public
    );
    let pinned = fs::read_to_string(keys.join("backup.known_hosts")).unwrap();
    assert_eq!(
        pinned.trim(),
        format!("[127.0.0.1]:{} {}", ssh.port, ssh.host_pubkey),
        "the pin names the non-22 port as ssh looks it up"
    );
    let config = fs::read_to_string(up.join("pushmirror/config.yaml")).unwrap();
    assert!(!config.contains("PRIVATE"), "{config}");

    // show prints the public key and the pinned fingerprints; status --json lists them too.
    let shown = env.pm_ok(&up, &["show", "backup"]);
    assert!(shown.contains(&public), "{shown}");
    assert!(shown.contains(&fp), "{shown}");
    let doc: serde_json::Value =
        serde_json::from_str(&env.pm_ok(&up, &["show", "backup", "--json"])).unwrap();
    assert_eq!(doc["public_key"], public.as_str(), "{doc:#}");
    assert_eq!(
        doc["pinned_host_keys"][0]["fingerprint"],
        fp.as_str(),
        "{doc:#}"
    );
    let st = env.mirror_status(&up, "backup");
    assert_eq!(
        st["pinned_host_keys"][0]["fingerprint"],
        fp.as_str(),
        "{st:#}"
    );
    assert_eq!(st["pinned_host_keys"][0]["type"], "ssh-ed25519", "{st:#}");

    // The deploy key goes on the server; nothing else is set up: no client key, no known_hosts
    // of the test's, no ssh config.
    ssh.authorize(&public);
    let wc = env.clone(&up, "wc");
    env.commit(&wc, "one");
    env.git(&wc, &["tag", "v1"]);
    env.push(&wc, &["main", "v1"]);
    env.wait_mirrored(&up, &dst);
    wait_finished(&env, &up, "backup");

    // remove deletes the pair and the pin.
    env.pm_ok(&up, &["remove", "backup"]);
    for f in ["backup", "backup.pub", "backup.known_hosts"] {
        assert!(!keys.join(f).exists(), "{f} left after remove");
    }
}

#[test]
fn host_key_fingerprint_pins_only_a_matching_key_and_keygen_rotates() {
    let Some((env, up, dst, ssh)) = ssh_upstream_and_target() else {
        return;
    };
    let fp = host_fingerprint(&ssh);
    let wrong = "SHA256:+DiY3wvvV6TuJJhbpZisF/zLDA0zPMSvHdkr4UvCOqU"; // github.com's
                                                                      // An SCP-style URL with a port: `[user@host:port]:path`.
    let scp = format!("[{}@127.0.0.1:{}]:{}", ssh.user, ssh.port, s(&dst));

    let o = env.pm(
        &up,
        &[
            "add",
            "m",
            &scp,
            "--ssh-key",
            s(&ssh.client_key),
            "--detect-host-key",
            "--host-key-fingerprint",
            wrong,
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}{}", out(&o), err(&o));
    assert!(
        err(&o).contains("no host key of 127.0.0.1 port") && err(&o).contains(wrong),
        "{}",
        err(&o)
    );
    assert!(
        out(&o).contains(&fp),
        "the fetched keys are still shown:\n{}",
        out(&o)
    );
    assert!(
        !up.join("pushmirror/keys/m.known_hosts").exists(),
        "a mismatch must pin nothing"
    );
    assert!(
        env.pm_ok(&up, &["list"]).contains("no mirrors"),
        "a mismatch must add nothing"
    );
    let o = env.pm(&up, &["add", "m", &scp, "--detect-host-key"]);
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    let o = env.pm(
        &up,
        &[
            "add",
            "m",
            &scp,
            "--ssh-key",
            s(&ssh.client_key),
            "--host-key-fingerprint",
            "MD5:ab:cd",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));

    env.pm_ok(
        &up,
        &[
            "add",
            "m",
            &scp,
            "--ssh-key",
            s(&ssh.client_key),
            "--host-key-fingerprint",
            &fp,
            "--debounce",
            "100ms",
        ],
    );
    let list = env.pm_ok(&up, &["list"]);
    assert!(
        list.contains(&scp),
        "the SCP-style URL is shown unchanged:\n{list}"
    );
    let wc = env.clone(&up, "wc");
    env.commit(&wc, "one");
    env.push(&wc, &["main"]);
    env.wait_mirrored(&up, &dst);
    wait_finished(&env, &up, "m");

    // keygen: a fresh pair replaces the given key; the pin stays; the old key's access is
    // irrelevant once the new one is authorized.
    let o = env.pm(&up, &["keygen", "m"]);
    assert!(o.status.success(), "{}", err(&o));
    let public = printed_public_key(&out(&o));
    assert!(out(&o).contains("deploy key"), "{}", out(&o));
    let shown: serde_json::Value =
        serde_json::from_str(&env.pm_ok(&up, &["show", "m", "--json"])).unwrap();
    assert_eq!(shown["auth"]["key_file"], "keys/m", "{shown:#}");
    assert_eq!(
        shown["auth"]["known_hosts"], "keys/m.known_hosts",
        "{shown:#}"
    );
    assert_eq!(shown["public_key"], public.as_str());
    ssh.authorize(&public);
    env.commit(&wc, "two");
    env.push(&wc, &["main"]);
    env.wait_mirrored(&up, &dst);

    // Refresh: a wrong fingerprint changes nothing; detect-host-key without one re-pins.
    let before = fs::read_to_string(up.join("pushmirror/keys/m.known_hosts")).unwrap();
    let o = env.pm(
        &up,
        &["detect-host-key", "m", "--host-key-fingerprint", wrong],
    );
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert_eq!(
        fs::read_to_string(up.join("pushmirror/keys/m.known_hosts")).unwrap(),
        before
    );
    let o = env.pm(&up, &["detect-host-key", "m"]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(
        out(&o).contains(&format!("pinned {fp} ssh-ed25519")),
        "{}",
        out(&o)
    );
    env.pm_ok(&up, &["sync", "m", "--wait"]);
}

/// A config file the admin wrote by hand, with comments, blank lines, its own key order and
/// quoting.
const HAND_WRITTEN: &str = "\
# Mirrors of app.git -- ask #infra before touching the GitHub one.

defaults:
  debounce: 2s   # CI pushes in bursts

mirrors:
  # The public copy.
  - name: public
    url: MIRROR_A
    protected:
      - main
      - 'release/*'
    debounce: 5s # slow down for GitHub

  # Backup on the NAS; people push there by hand, so keep divergent refs.
  - name: nas
    url: MIRROR_B
    keep_divergent_refs: true

# end of file
";

#[test]
fn config_edits_keep_comments_order_and_blank_lines() {
    let env = Env::new();
    let up = env.upstream("up.git");
    let a = env.bare("a.git", &[]);
    let b = env.bare("b.git", &[]);
    let c = env.bare("c.git", &[]);
    let cfg = up.join("pushmirror/config.yaml");
    fs::create_dir_all(cfg.parent().unwrap()).unwrap();
    let original = HAND_WRITTEN
        .replace("MIRROR_A", s(&a))
        .replace("MIRROR_B", s(&b));
    fs::write(&cfg, &original).unwrap();
    let read = || fs::read_to_string(&cfg).unwrap();

    // set: the same file with one key changed.
    let o = env.pm(&up, &["set", "public", "debounce=10s"]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(!err(&o).contains("rewritten in full"), "{}", err(&o));
    assert_eq!(
        read(),
        original.replace(
            "    debounce: 5s # slow down for GitHub",
            "    debounce: 10s # slow down for GitHub"
        )
    );
    env.pm_ok(&up, &["set", "public", "debounce=5s"]);
    assert_eq!(read(), original);

    // disable adds one line to that mirror; enable takes it out again.
    env.pm_ok(&up, &["disable", "nas"]);
    assert_eq!(
        read(),
        original.replace(
            "    keep_divergent_refs: true\n",
            "    keep_divergent_refs: true\n    enabled: false\n"
        )
    );
    env.pm_ok(&up, &["enable", "nas"]);
    assert_eq!(read(), original);

    // add appends a mirror at the end of the list; remove cuts it (and only it).
    env.pm_ok(&up, &["add", "third", s(&c), "--disabled"]);
    let added = read();
    assert!(
        added.starts_with(original.trim_end_matches("\n# end of file\n").trim_end()),
        "{added}"
    );
    assert!(
        added.contains(&format!(
            "  - name: third\n    url: {}\n    enabled: false\n",
            s(&c)
        )),
        "{added}"
    );
    assert!(added.ends_with("\n# end of file\n"), "{added}");
    env.pm_ok(&up, &["remove", "third"]);
    assert_eq!(read(), original);

    // remove of a commented mirror takes its comment block with it, nothing else.
    env.pm_ok(&up, &["remove", "nas"]);
    assert_eq!(
        read(),
        original.replace(
            &format!(
                "  # Backup on the NAS; people push there by hand, so keep divergent refs.\n  - name: nas\n    url: {}\n    keep_divergent_refs: true\n",
                s(&b)
            ),
            ""
        )
    );

    // A layout the editor does not know is rewritten in full, and it says so.
    fs::write(
        &cfg,
        format!("# flow style\nmirrors: [{{name: a, url: {}}}]\n", s(&a)),
    )
    .unwrap();
    let o = env.pm(&up, &["set", "a", "debounce=3s"]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(err(&o).contains("rewritten in full"), "{}", err(&o));
    let shown: serde_json::Value =
        serde_json::from_str(&env.pm_ok(&up, &["show", "a", "--json"])).unwrap();
    assert_eq!(shown["debounce"], "3s");
}

/// A server rule's mirrors share one generated key and one host-key pin, next to the
/// server-wide config; every repository of the rule uses them with no per-repository setup.
#[test]
fn a_rule_shares_one_generated_key_and_pin() {
    if no_ssh() {
        return;
    }
    let env = Env::new();
    let up = env.upstream("up.git");
    let other = env.upstream("other.git");
    let srv = env.path("srv");
    let dst = env.bare("srv/up.git", &[]);
    let dst_other = env.bare("srv/other.git", &[]);
    let ssh = SshServer::start(&srv);
    let fp = host_fingerprint(&ssh);
    let rule = |auth: &str| {
        format!(
            "root: {}\nrules:\n  - name: backup\n    url: ssh://{}@127.0.0.1:{}{}/${{name}}.git\n    debounce: 100ms\n{auth}",
            s(env.dir.path()),
            ssh.user,
            ssh.port,
            s(&srv)
        )
    };
    env.write_server_config(&rule(""));

    let o = env
        .cmd(bin())
        .args(["keygen", "--rule", "backup"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", err(&o));
    let public = printed_public_key(&out(&o));
    assert!(err(&o).contains("key_file: keys/backup"), "{}", err(&o));
    let key = env.path("keys/backup");
    assert_eq!(mode(&key), 0o600);
    let o = env
        .cmd(bin())
        .args([
            "detect-host-key",
            "--rule",
            "backup",
            "--host-key-fingerprint",
            &fp,
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", err(&o));
    assert!(out(&o).contains(&format!("pinned {fp}")), "{}", out(&o));
    assert!(
        err(&o).contains("known_hosts: keys/backup.known_hosts"),
        "{}",
        err(&o)
    );
    env.write_server_config(&rule(
        "    auth: {method: ssh_key, key_file: keys/backup, known_hosts: keys/backup.known_hosts}\n",
    ));
    ssh.authorize(&public);

    // `keygen NAME` in one repository points at the rule's shared key instead.
    let o = env.pm(&up, &["keygen", "backup"]);
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    assert!(err(&o).contains("keygen --rule backup"), "{}", err(&o));

    for (repo, dst) in [(&up, &dst), (&other, &dst_other)] {
        let st = env.mirror_status(repo, "backup");
        assert_eq!(
            st["pinned_host_keys"][0]["fingerprint"],
            fp.as_str(),
            "{st:#}"
        );
        assert_eq!(st["public_key"], public.as_str(), "{st:#}");
        env.pm_ok(repo, &["sync", "backup", "--wait"]);
        let wc = env.clone(
            repo,
            &format!("wc-{}", repo.file_name().unwrap().to_string_lossy()),
        );
        env.commit(&wc, "one");
        env.push(&wc, &["main"]);
        env.wait_mirrored(repo, dst);
    }
}

/// SCP-style SSH URLs (`git@host:group/repo.git`) are accepted and shown as written.
#[test]
fn scp_style_urls_are_accepted_and_listed_unchanged() {
    let env = Env::new();
    let up = env.upstream("up.git");
    for (name, u) in [
        ("gitlab", "git@gitlab.example.com:group/sub/repo.git"),
        ("plain", "gitlab.example.com:repo.git"),
        ("ported", "[git@gitlab.example.com:2222]:group/repo.git"),
        // An '@' in the path is not a password: git takes the user from before the ':' only.
        ("at-path", "git@gitlab.example.com:team@x.git"),
        ("at-plain", "gitlab.example.com:a@b.git"),
    ] {
        env.pm_ok(&up, &["add", name, u, "--disabled"]);
        let list = env.pm_ok(&up, &["list"]);
        assert!(list.contains(&format!("{name}\t{u}\t")), "{list}");
        let shown: serde_json::Value =
            serde_json::from_str(&env.pm_ok(&up, &["show", name, "--json"])).unwrap();
        assert_eq!(shown["url"], u);
    }
    let config = fs::read_to_string(up.join("pushmirror/config.yaml")).unwrap();
    assert!(
        config.contains("git@gitlab.example.com:group/sub/repo.git"),
        "{config}"
    );
    // A scheme typo is not taken for an SCP-style host called "https".
    let o = env.pm(&up, &["add", "typo", "https:gitlab.example.com/x.git"]);
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
}

/// A pin that does not cover the mirror's host and port (the URL was changed with `set`, or
/// the wrong known_hosts was given) fails with ssh's "No ... host key is known for HOST" and the
/// command that pins it, not with a bare "Host key verification failed." that reads the same as
/// a changed key; `detect-host-key` then makes the mirror work.
#[test]
fn an_unpinned_host_is_named_with_the_command_that_pins_it() {
    let Some((env, up, dst, ssh)) = ssh_upstream_and_target() else {
        return;
    };
    // The right key, but for another port: the mirror's host:port is not in the file.
    let kh = env.path("other.known_hosts");
    fs::write(&kh, format!("[127.0.0.1]:1 {}\n", ssh.host_pubkey)).unwrap();
    fs::set_permissions(&kh, fs::Permissions::from_mode(0o600)).unwrap();
    let url = ssh.url(s(&dst));
    env.pm_ok(
        &up,
        &[
            "add",
            "m",
            &url,
            "--ssh-key",
            s(&ssh.client_key),
            "--known-hosts",
            s(&kh),
            "--debounce",
            "1h",
        ],
    );
    let wc = env.clone(&up, "wc");
    env.commit(&wc, "one");
    env.push(&wc, &["main"]);
    let o = env.pm(&up, &["sync", "m", "--wait"]);
    assert_eq!(o.status.code(), Some(1), "{}{}", out(&o), err(&o));
    let e = err(&o);
    assert!(
        e.contains(&format!("host key is known for [127.0.0.1]:{}", ssh.port))
            && e.contains("git-pushmirror detect-host-key m"),
        "{e}"
    );
    assert_eq!(e.trim().lines().count(), 1, "{e}");
    let last = env.mirror_status(&up, "m")["last_error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(last.contains("detect-host-key m"), "{last}");
    env.pm_ok(&up, &["detect-host-key", "m"]);
    env.pm_ok(&up, &["sync", "m", "--wait"]);
    assert_eq!(env.heads_and_tags(&dst), env.heads_and_tags(&up));
}

/// Generated files are `keys/NAME`, `keys/NAME.pub` and `keys/NAME.known_hosts`: a mirror named
/// `a.pub` would write its private key over mirror `a`'s public key (and `remove a` would delete
/// it). Such names get no generated key or pin, and `remove` of one touches no other mirror's
/// files.
#[test]
fn generated_files_of_two_mirrors_never_collide() {
    if no_ssh() {
        return;
    }
    let env = Env::new();
    let up = env.upstream("up.git");
    let url = "ssh://git@127.0.0.1:1/x.git";
    let o = env.pm(&up, &["add", "a", url, "--generate-ssh-key"]);
    assert!(o.status.success(), "{}", err(&o));
    let public = fs::read_to_string(up.join("pushmirror/keys/a.pub")).unwrap();
    for name in ["a.pub", "a.known_hosts"] {
        let o = env.pm(&up, &["add", name, url, "--generate-ssh-key"]);
        assert_eq!(o.status.code(), Some(2), "{name}: {}{}", out(&o), err(&o));
        assert!(err(&o).contains("rename it"), "{}", err(&o));
        assert_eq!(err(&o).trim().lines().count(), 1, "{}", err(&o));
    }
    // Added with an ordinary key, then removed: mirror a's files stay.
    env.pm_ok(
        &up,
        &[
            "add",
            "a.pub",
            url,
            "--ssh-key",
            s(&up.join("pushmirror/keys/a")),
            "--disabled",
        ],
    );
    let o = env.pm(&up, &["keygen", "a.pub"]);
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    env.pm_ok(&up, &["remove", "a.pub"]);
    assert_eq!(
        fs::read_to_string(up.join("pushmirror/keys/a.pub")).unwrap(),
        public
    );
    assert!(up.join("pushmirror/keys/a").exists());
}

/// ssh-keyscan prints nothing when it cannot connect: host-key detection against a port where
/// nothing listens says the connection was refused and names the port to check, in one line,
/// and pins nothing.
#[test]
fn host_key_detection_on_a_closed_port_says_connection_refused() {
    if !have("ssh-keyscan") || !have("ssh-keygen") {
        eprintln!("SKIPPED: no ssh-keyscan/ssh-keygen");
        return;
    }
    let env = Env::new();
    let up = env.upstream("up.git");
    // Bound but not listening: connections are refused, and no other test can take the port.
    let (_socket, port) = bound_not_listening();
    let url = format!("ssh://git@127.0.0.1:{port}/srv/x.git");
    env.pm_ok(&up, &["add", "m", &url, "--generate-ssh-key", "--disabled"]);
    let o = env.pm(&up, &["detect-host-key", "m"]);
    let e = err(&o);
    assert_eq!(o.status.code(), Some(1), "{}{e}", out(&o));
    assert!(
        e.contains("connection refused") && e.contains(&format!("port {port}")),
        "{e}"
    );
    assert_eq!(e.trim().lines().count(), 1, "{e}");
    assert!(!up.join("pushmirror/keys/m.known_hosts").exists());
}

/// A TCP socket bound to a free port of 127.0.0.1 that does not listen, and its port.
fn bound_not_listening() -> (std::os::fd::OwnedFd, u16) {
    use std::os::fd::FromRawFd;
    // SAFETY: plain socket calls on a descriptor we own; the address structs are initialised.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let owned = std::os::fd::OwnedFd::from_raw_fd(fd);
        let mut addr: libc::sockaddr_in = std::mem::zeroed();
        addr.sin_family = libc::AF_INET as libc::sa_family_t;
        addr.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let rc = libc::bind(fd, &addr as *const _ as *const libc::sockaddr, len);
        assert_eq!(rc, 0, "bind: {}", std::io::Error::last_os_error());
        let mut got: libc::sockaddr_in = std::mem::zeroed();
        let mut got_len = len;
        let rc = libc::getsockname(fd, &mut got as *mut _ as *mut libc::sockaddr, &mut got_len);
        assert_eq!(rc, 0, "getsockname: {}", std::io::Error::last_os_error());
        (owned, u16::from_be(got.sin_port))
    }
}

/// `detect-host-key` re-pins in place (the config does not change: the same known_hosts file,
/// new contents): the mirror's kept SSH connection master, made under the old pin, is closed
/// as on any host-key change, not left running for `ssh_persist`.
#[test]
fn detect_host_key_closes_the_mirrors_kept_ssh_connection() {
    let Some((env, up, dst, ssh)) = ssh_upstream_and_target() else {
        return;
    };
    let scp = format!("[{}@127.0.0.1:{}]:{}", ssh.user, ssh.port, s(&dst));
    env.pm_ok(
        &up,
        &[
            "add",
            "m",
            &scp,
            "--ssh-key",
            s(&ssh.client_key),
            "--detect-host-key",
            "--debounce",
            "100ms",
        ],
    );
    let wc = env.clone(&up, "wc");
    env.commit(&wc, "one");
    env.push(&wc, &["main"]);
    env.wait_mirrored(&up, &dst);
    wait_finished(&env, &up, "m");
    let masters = || -> Vec<std::path::PathBuf> {
        fs::read_dir(&env.runtime)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.path())
                    .filter(|p| {
                        p.file_name()
                            .is_some_and(|n| n.to_string_lossy().starts_with("mux-"))
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(masters().len(), 1, "a kept master: {:?}", masters());
    let o = env.pm(&up, &["detect-host-key", "m"]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(
        masters().is_empty(),
        "detect-host-key left the master: {:?}",
        masters()
    );
    // The next sync connects afresh and goes through.
    env.commit(&wc, "two");
    env.push(&wc, &["main"]);
    env.wait_mirrored(&up, &dst);
}
