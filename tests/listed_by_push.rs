//! A sync after the first one pushes at once from the last sync's record of the mirror's refs
//! and reads the mirror's real refs from that push's ref advertisement (no `git ls-remote`;
//! issue 12's 10,000-ref stretch goal). It must still be a full comparison: a mirror edited by
//! hand is repaired by that same sync, whatever the record said. Real git, a local mirror, a
//! git daemon, HTTPS (nginx + git-http-backend) and SSH (OpenSSH sshd); no timing is
//! asserted.

mod common;

use std::path::Path;
use std::time::Duration;

use common::servers::*;
use common::*;

fn settled(env: &Env, up: &Path, name: &str) -> serde_json::Value {
    let ok = wait_until(Duration::from_secs(180), || {
        let m = env.mirror_status(up, name);
        m["update_status"] == "finished" && m["pending_updates"] == 0 && m["last_error"].is_null()
    });
    let m = env.mirror_status(up, name);
    assert!(
        ok,
        "mirror {name} never settled: {m:#}\nlog:\n{}",
        env.log(up)
    );
    m
}

/// How a test pushes to a mirror by hand: as itself (local, git daemon), or with the HTTPS
/// server's CA and password, or with the SSH server's key.
enum By<'a> {
    Plain,
    Https(&'a HttpsServer),
    Ssh(&'a SshServer),
}

/// `git push --force <url> <specs>` from `wc`, with the credentials `by` needs.
fn push_to(env: &Env, wc: &Path, url: &str, specs: &[&str], by: &By) {
    let mut c = env.cmd("git");
    c.arg("-C")
        .arg(wc)
        .args(["push", "-q", "--force", url])
        .args(specs);
    match by {
        By::Plain => {}
        By::Https(h) => {
            let askpass = env.path("askpass");
            write_askpass(&askpass, &h.user, &h.password);
            c.env("GIT_ASKPASS", &askpass)
                .env("GIT_SSL_CAINFO", &h.ca_file);
        }
        By::Ssh(ssh) => {
            c.env("GIT_SSH_COMMAND", ssh.ssh_command());
        }
    }
    let out = c.output().unwrap();
    assert!(out.status.success(), "push to {url}: {}", text(&out));
}

#[test]
fn a_hand_edited_mirror_is_repaired_by_a_sync_listed_by_its_push() {
    let env = Env::new();
    env.write_server_config("defaults:\n  timeout: 120s\n");
    let up = env.upstream("up.git");
    // (name, url for our pushes by hand, bare repository on disk, how to push there by hand)
    let mut mirrors: Vec<(&str, String, std::path::PathBuf, By)> = Vec::new();

    let local = env.bare("local.git", &[]);
    env.pm_ok(&up, &["add", "local", s(&local), "--debounce", "100ms"]);
    mirrors.push(("local", s(&local).to_string(), local.clone(), By::Plain));

    let daemon_dst = env.bare("daemon/dst.git", &[]);
    let daemon = GitDaemon::start(&env.path("daemon"));
    env.pm_ok(
        &up,
        &[
            "add",
            "daemon",
            &daemon.url("dst.git"),
            "--debounce",
            "100ms",
        ],
    );
    mirrors.push(("daemon", daemon.url("dst.git"), daemon_dst, By::Plain));

    let https = (!no_https()).then(|| {
        env.bare("srv/dst.git", &[]);
        let https = HttpsServer::start(&env.path("srv"), "mirror", "listed-Secret-5");
        let pwfile = env.path("mirror.password");
        write_mode(&pwfile, "listed-Secret-5\n", 0o600);
        env.pm_ok(
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
            ],
        );
        https
    });
    if let Some(h) = &https {
        mirrors.push((
            "https",
            h.url("dst.git"),
            env.path("srv/dst.git"),
            By::Https(h),
        ));
    }

    // Over SSH the push opens the connection master; a repair push rides on it.
    let ssh = (!no_ssh()).then(|| {
        env.bare("sshsrv/dst.git", &[]);
        let ssh = SshServer::start(&env.path("sshsrv"));
        env.pm_ok(
            &up,
            &[
                "add",
                "ssh",
                &ssh.url("dst.git"),
                "--ssh-key",
                s(&ssh.client_key),
                "--host-key",
                &ssh.host_pubkey,
                "--debounce",
                "100ms",
            ],
        );
        ssh
    });
    if let Some(ssh) = &ssh {
        mirrors.push((
            "ssh",
            ssh.url("dst.git"),
            env.path("sshsrv/dst.git"),
            By::Ssh(ssh),
        ));
    }

    // First sync: the mirror is listed, and its refs are recorded.
    let wc = env.clone(&up, "wc");
    let c1 = env.commit(&wc, "one");
    env.git(&wc, &["branch", "feature"]);
    env.git(&wc, &["tag", "v1"]);
    env.commit(&wc, "two");
    env.push(&wc, &["main", "feature", "v1"]);
    for (name, _, dir, _) in &mirrors {
        env.wait_mirrored(&up, dir);
        settled(&env, &up, name);
        assert!(
            up.join(format!("pushmirror/state/{name}.listing"))
                .is_file(),
            "{name}: no record of the mirror's refs after a clean sync"
        );
    }
    assert!(env.wait_flushers_gone());

    // Behind our back, on every mirror: main moved to a commit upstream never had, feature
    // deleted, and a branch at an old main commit (merged: default mode deletes it).
    env.git(&wc, &["checkout", "-q", "-b", "rogue", &c1]);
    env.commit(&wc, "only on the mirror");
    env.git(&wc, &["checkout", "-q", "main"]);
    let merged = format!("{c1}:refs/heads/old-topic");
    for (_, url, _, by) in &mirrors {
        push_to(
            &env,
            &wc,
            url,
            &["rogue:refs/heads/main", ":refs/heads/feature", &merged],
            by,
        );
    }

    // The next push: pushed from the (now wrong) record, listed by that push, repaired.
    env.commit(&wc, "three");
    env.push(&wc, &["main"]);
    for (name, _, dir, _) in &mirrors {
        env.wait_mirrored(&up, dir);
        let m = settled(&env, &up, name);
        assert!(m["divergent_refs"].as_array().unwrap().is_empty(), "{m:#}");
        assert!(m["rejected_refs"].as_array().unwrap().is_empty(), "{m:#}");
    }
    let log = env.log(&up);
    for (name, _, _, _) in &mirrors {
        let last = log
            .lines()
            .rfind(|l| l.contains(&format!("sync {name} finished")))
            .unwrap_or_default();
        assert!(
            last.contains("mirror listed by the push"),
            "{name}: the last sync did not take the mirror's refs from its push: {last}\n{log}"
        );
    }
    drop(https);
    drop(ssh);
}
