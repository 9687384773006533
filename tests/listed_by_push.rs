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
        wait_finished(&env, &up, name);
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
        let m = wait_finished(&env, &up, name);
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

/// A damaged record of the mirror's refs is no guess: an object id in it that git cannot parse
/// as a lease (a short hex string) must not make every later sync fail (the record is kept when
/// a sync breaks off, so it would never heal).
#[test]
fn a_record_with_an_unparsable_object_id_does_not_stop_syncs() {
    let env = Env::new();
    env.write_server_config("defaults:\n  timeout: 120s\n");
    let up = env.upstream("up.git");
    let dst = env.bare("dst.git", &[]);
    env.pm_ok(&up, &["add", "m", s(&dst), "--debounce", "100ms"]);
    let wc = env.clone(&up, "wc");
    env.commit(&wc, "one");
    env.git(&wc, &["branch", "feature"]);
    env.push(&wc, &["main", "feature"]);
    env.wait_mirrored(&up, &dst);
    wait_finished(&env, &up, "m");
    assert!(env.wait_flushers_gone());
    let record = up.join("pushmirror/state/m.listing");
    let text = std::fs::read_to_string(&record).expect("no record after a clean sync");
    // Every object id cut short and zeroed (as a bad edit or a damaged disk might leave it): no
    // object has that prefix.
    let damaged: String = text
        .lines()
        .map(|l| match l.split_once(' ') {
            Some((oid, name)) if !l.starts_with('#') => {
                assert_eq!(oid.len(), 40, "{l}");
                format!("{} {name}\n", "0".repeat(39))
            }
            _ => format!("{l}\n"),
        })
        .collect();
    assert_ne!(damaged, text);
    std::fs::write(&record, damaged).unwrap();

    env.commit(&wc, "two");
    env.git(&wc, &["branch", "-f", "feature"]);
    env.push(&wc, &["main", "feature"]);
    env.wait_mirrored(&up, &dst);
    let m = wait_finished(&env, &up, "m");
    assert!(m["rejected_refs"].as_array().unwrap().is_empty(), "{m:#}");
}

/// keep_divergent_refs with a sync pushed from the record: a branch moved by hand on the mirror
/// (diverged) makes the guessed push's lease refuse it; the sync must then keep it as divergent
/// (GitLab's rule), push the rest, and report only the divergence, not the lease refusal.
#[test]
fn keep_divergent_refs_holds_when_pushed_from_the_record() {
    let env = Env::new();
    env.write_server_config("defaults:\n  timeout: 120s\n");
    let up = env.upstream("up.git");
    let dst = env.bare("dst.git", &[]);
    env.pm_ok(
        &up,
        &[
            "add",
            "m",
            s(&dst),
            "--debounce",
            "100ms",
            "--keep-divergent-refs",
        ],
    );
    let wc = env.clone(&up, "wc");
    let c1 = env.commit(&wc, "one");
    env.git(&wc, &["branch", "feature"]);
    env.push(&wc, &["main", "feature"]);
    env.wait_mirrored(&up, &dst);
    wait_finished(&env, &up, "m");
    assert!(env.wait_flushers_gone());
    assert!(up.join("pushmirror/state/m.listing").is_file());

    // By hand on the mirror: feature diverges from upstream.
    env.git(&wc, &["checkout", "-q", "-b", "rogue", &c1]);
    let rogue = env.commit(&wc, "only on the mirror");
    env.git(&wc, &["checkout", "-q", "main"]);
    push_to(
        &env,
        &wc,
        s(&dst),
        &["rogue:refs/heads/feature"],
        &By::Plain,
    );

    // Upstream moves both branches forward.
    env.git(&wc, &["checkout", "-q", "feature"]);
    env.commit(&wc, "feature two");
    env.git(&wc, &["checkout", "-q", "main"]);
    let main2 = env.commit(&wc, "main two");
    env.push(&wc, &["main", "feature"]);

    let done = wait_until(Duration::from_secs(180), || {
        let m = env.mirror_status(&up, "m");
        // A kept divergent ref is reported as the sync's problem ("failed").
        m["update_status"] != "started"
            && m["pending_updates"] == 0
            && env.git(&dst, &["rev-parse", "refs/heads/main"]) == main2
    });
    let m = env.mirror_status(&up, "m");
    assert!(done, "never synced: {m:#}\n{}", env.log(&up));
    assert_eq!(env.git(&dst, &["rev-parse", "refs/heads/feature"]), rogue);
    assert_eq!(
        m["divergent_refs"],
        serde_json::json!(["refs/heads/feature"]),
        "{m:#}"
    );
    assert!(m["rejected_refs"].as_array().unwrap().is_empty(), "{m:#}");
    let err = m["last_error"].as_str().unwrap_or_default();
    assert!(!err.contains("stale") && !err.contains("rejected"), "{m:#}");
}

/// A ref name with a non-ASCII letter followed by a digit (`Ð1`): git's packet trace writes
/// the letter's bytes as octal escapes with nothing between the last one and the digit. The
/// listing read from the push must be the mirror's real refs (it becomes the next record).
#[test]
fn a_non_ascii_ref_name_followed_by_a_digit_is_listed_as_it_is() {
    let env = Env::new();
    env.write_server_config("defaults:\n  timeout: 120s\n");
    let up = env.upstream("up.git");
    let dst = env.bare("dst.git", &[]);
    env.pm_ok(&up, &["add", "m", s(&dst), "--debounce", "100ms"]);
    let wc = env.clone(&up, "wc");
    env.commit(&wc, "one");
    env.push(&wc, &["main"]);
    env.wait_mirrored(&up, &dst);
    wait_finished(&env, &up, "m");
    // An unmerged side branch named Ð1 (not deleted by anything, whatever is misread).
    env.git(&wc, &["checkout", "-q", "-b", "Ð1"]);
    env.commit(&wc, "side");
    env.git(&wc, &["checkout", "-q", "main"]);
    env.push(&wc, &["Ð1"]);
    env.wait_mirrored(&up, &dst);
    wait_finished(&env, &up, "m");
    assert!(env.wait_flushers_gone());
    // The next sync pushes from the record and lists the mirror by that push.
    env.commit(&wc, "two");
    env.push(&wc, &["main"]);
    env.wait_mirrored(&up, &dst);
    wait_finished(&env, &up, "m");
    assert!(env.wait_flushers_gone());
    let record = std::fs::read_to_string(up.join("pushmirror/state/m.listing")).unwrap();
    let names: Vec<&str> = record
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(' ').map(|(_, n)| n))
        .collect();
    assert_eq!(
        names,
        ["refs/heads/main", "refs/heads/Ð1"],
        "{record}\n{}",
        env.log(&up)
    );
}

/// A ref the mirror already has at upstream's new value (someone pushed the same commit there)
/// is reported "up to date" by the push from the record: it was not pushed, and status does not
/// count it as pushed.
#[test]
fn a_ref_the_mirror_already_had_is_not_counted_as_pushed() {
    let env = Env::new();
    let up = env.upstream("up.git");
    let mirror = env.bare("mirror.git", &[]);
    env.pm_ok(&up, &["add", "m", s(&mirror), "--debounce", "100ms"]);
    let wc = env.clone(&up, "wc");
    env.commit(&wc, "one");
    env.push(&wc, &["main"]);
    env.wait_mirrored(&up, &mirror);
    let m = wait_finished(&env, &up, "m");
    assert_eq!(m["refs_pushed_last"], 1, "{m:#}");
    assert!(env.wait_flushers_gone());
    assert!(up.join("pushmirror/state/m.listing").is_file());

    // The same commit reaches the mirror by hand first, then upstream.
    env.commit(&wc, "two");
    push_to(&env, &wc, s(&mirror), &["main"], &By::Plain);
    env.push(&wc, &["main"]);
    let before = m["syncs"].as_u64().unwrap();
    let ok = wait_until(Duration::from_secs(180), || {
        let m = env.mirror_status(&up, "m");
        m["syncs"].as_u64().unwrap() > before && m["pending_updates"] == 0
    });
    assert!(ok, "no second sync\n{}", env.log(&up));
    let m = wait_finished(&env, &up, "m");
    assert_eq!(m["refs_pushed_last"], 0, "{m:#}\n{}", env.log(&up));
    assert_eq!(m["refs_pushed_total"], 1, "{m:#}");
    assert!(m["rejected_refs"].as_array().unwrap().is_empty(), "{m:#}");
    env.wait_mirrored(&up, &mirror);
}
