//! Bytes pushed (issue 13): the size of the packs each sync sent, counted per mirror over every
//! transport (local path, git daemon, HTTPS with basic auth, SSH), shown by `status` and
//! exported by `metrics` (checked by promtool).
//!
//! Nothing here assumes a sync succeeds at its first attempt: a retried attempt may send its
//! pack again, so upper bounds scale with the number of syncs the mirror ran.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::servers::*;
use common::*;
use serde_json::Value;

const MIB: u64 = 1 << 20;

fn u(m: &Value, key: &str) -> u64 {
    m[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no number {key} in {m:#}"))
}

/// The value of one metrics series, by its exact labels.
fn series(text: &str, name: &str, labels: &str) -> Option<u64> {
    let head = format!("{name}{{{labels}}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&head))
        .and_then(|v| v.trim().parse().ok())
}

#[test]
fn bytes_pushed_grow_by_the_pack_over_every_transport() {
    let env = Env::new();
    // Generous timeouts: a slow machine must not turn a sync into a retry (which would send
    // its pack twice; the bounds below allow for it anyway).
    env.write_server_config("defaults:\n  timeout: 120s\n");
    let root = env.path("repos");
    std::fs::create_dir_all(&root).unwrap();
    let up = env.upstream("repos/up.git");
    let mut names: Vec<&str> = Vec::new();
    let mut mirrors: Vec<PathBuf> = Vec::new();

    let local = env.bare("mirrors/local.git", &[]);
    env.pm_ok(&up, &["add", "local", s(&local), "--debounce", "100ms"]);
    names.push("local");
    mirrors.push(local);

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
    names.push("daemon");
    mirrors.push(daemon_dst);

    let https = (!no_https()).then(|| {
        let dst = env.bare("srv/https.git", &[]);
        let https = HttpsServer::start(&env.path("srv"), "mirror", "bytes-Secret-77");
        let pwfile = env.path("mirror.password");
        write_mode(&pwfile, "bytes-Secret-77\n", 0o600);
        env.pm_ok(
            &up,
            &[
                "add",
                "https",
                &https.url("https.git"),
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
        names.push("https");
        mirrors.push(dst);
        https
    });

    let ssh = (!no_ssh()).then(|| {
        let dst = env.bare("sshsrv/ssh.git", &[]);
        let ssh = SshServer::start(&env.path("sshsrv"));
        env.pm_ok(
            &up,
            &[
                "add",
                "ssh",
                &ssh.url(s(&dst)),
                "--ssh-key",
                s(&ssh.client_key),
                "--known-hosts",
                s(&ssh.known_hosts),
                "--debounce",
                "100ms",
            ],
        );
        names.push("ssh");
        mirrors.push(dst);
        ssh
    });

    // One commit carrying 1 MiB of incompressible bytes.
    let wc = env.clone(&up, "wc");
    std::fs::write(wc.join("blob.bin"), random_bytes(MIB as usize, 13)).unwrap();
    env.git(&wc, &["add", "blob.bin"]);
    env.git(&wc, &["commit", "-q", "-m", "one MiB"]);
    env.push(&wc, &["main"]);
    let mut before = Vec::new();
    for (name, mirror) in names.iter().zip(&mirrors) {
        env.wait_mirrored(&up, mirror);
        let m = wait_finished(&env, &up, name);
        let total = u(&m, "bytes_pushed_total");
        let syncs = u(&m, "syncs").max(1);
        // The pack holds the blob (1 MiB, stored as is), a tree and a commit.
        assert!(
            total >= MIB && total < 2 * MIB * syncs,
            "{name}: {total} bytes pushed in {syncs} sync(s) for a 1 MiB blob: {m:#}\nlog:\n{}",
            env.log(&up)
        );
        assert!(u(&m, "bytes_pushed_last") <= total, "{m:#}");
        assert!(u(&m, "refs_pushed_total") >= 1, "{m:#}");
        before.push((total, u(&m, "syncs")));
    }

    // An empty commit: a pack of a few hundred bytes.
    env.commit(&wc, "small");
    env.push(&wc, &["main"]);
    for ((name, mirror), (total0, syncs0)) in names.iter().zip(&mirrors).zip(&before) {
        env.wait_mirrored(&up, mirror);
        let m = wait_finished(&env, &up, name);
        let grew = u(&m, "bytes_pushed_total") - total0;
        let syncs = (u(&m, "syncs") - syncs0).max(1);
        assert!(
            grew > 0 && grew < 64 * 1024 * syncs,
            "{name}: a commit-only push counted {grew} bytes in {syncs} sync(s): {m:#}"
        );
    }

    // The text status says it too.
    let shown = env.pm_ok(&up, &["status"]);
    assert!(shown.contains("  pushed:         "), "{shown}");
    assert!(shown.contains(" MiB in all "), "{shown}");

    // The metric, per mirror, equals what status shows, and the exposition still passes
    // promtool.
    assert!(env.wait_flushers_gone());
    let out = env
        .cmd(bin())
        .args(["metrics", "--root", s(&root)])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let metrics = String::from_utf8(out.stdout).unwrap();
    assert!(
        metrics.contains("# TYPE git_pushmirror_mirror_pushed_bytes_total counter"),
        "{metrics}"
    );
    for name in &names {
        let labels = format!("repository=\"up.git\",mirror=\"{name}\"");
        let m = env.mirror_status(&up, name);
        assert_eq!(
            series(
                &metrics,
                "git_pushmirror_mirror_pushed_bytes_total",
                &labels
            ),
            Some(u(&m, "bytes_pushed_total")),
            "{name}:\n{metrics}"
        );
        assert_eq!(
            series(
                &metrics,
                "git_pushmirror_mirror_last_sync_pushed_bytes",
                &labels
            ),
            Some(u(&m, "bytes_pushed_last")),
            "{name}:\n{metrics}"
        );
    }
    if have("promtool") {
        let prom = env.path("metrics.prom");
        std::fs::write(&prom, &metrics).unwrap();
        let check = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(std::fs::File::open(&prom).unwrap())
            .output()
            .unwrap();
        assert!(
            check.status.success() && check.stdout.is_empty() && check.stderr.is_empty(),
            "promtool: {}",
            text(&check)
        );
    } else {
        eprintln!("SKIPPED: promtool check (promtool missing)");
    }
    drop(https);
    drop(ssh);
}
