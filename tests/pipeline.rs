//! The core pipeline, end to end with the real git client: hook → spool → detached flusher →
//! mirror. Timing is never asserted; everything polls with a generous deadline.

mod common;

use std::io::Write;
use std::net::TcpListener;
use std::time::Duration;

use common::*;

#[test]
fn push_is_mirrored_branches_tags_and_deletions_local_and_git_daemon() {
    let env = Env::new();
    let up = env.upstream("up.git");
    let local = env.bare("local-mirror.git", &[]);
    let root = env.path("daemon");
    std::fs::create_dir_all(&root).unwrap();
    let remote = env.bare("daemon/remote.git", &[]);
    let daemon = servers::GitDaemon::start(&root);
    env.pm_ok(
        &up,
        &[
            "add",
            "local",
            local.to_str().unwrap(),
            "--debounce",
            "100ms",
        ],
    );
    env.pm_ok(
        &up,
        &[
            "add",
            "daemon",
            &daemon.url("remote.git"),
            "--debounce",
            "100ms",
            "--timeout",
            "30s",
        ],
    );

    let wc = env.clone(&up, "wc");
    env.commit(&wc, "one");
    env.git(&wc, &["tag", "-a", "-m", "release", "v1"]);
    env.git(&wc, &["tag", "light"]);
    env.git(&wc, &["branch", "feature"]);
    env.push(&wc, &["main", "feature", "v1", "light"]);
    env.wait_mirrored(&up, &local);
    env.wait_mirrored(&up, &remote);

    // A deletion pushed upstream reaches both mirrors.
    env.push(&wc, &[":refs/heads/feature", ":refs/tags/light"]);
    env.wait_mirrored(&up, &local);
    env.wait_mirrored(&up, &remote);
    assert!(!env.refs(&local).contains_key("refs/heads/feature"));
    assert!(!env.refs(&remote).contains_key("refs/tags/light"));
    assert!(env.refs(&remote).contains_key("refs/tags/v1"));

    assert!(wait_until(Duration::from_secs(120), || {
        let s = env.status_json(&up);
        s["mirrors"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["update_status"] == "finished" && m["pending_updates"] == 0)
    }));
    let out = env.pm(&up, &["status"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let m = env.mirror_status(&up, "daemon");
    assert!(m["last_successful_update_at"].is_string(), "{m}");
    assert!(m["last_error"].is_null(), "{m}");
    assert!(env.wait_flushers_gone(), "flusher did not exit when idle");

    // The log tells where each sync's time went, and what the flusher cost in memory.
    let log = env.log(&up);
    for name in ["local", "daemon"] {
        let line = log
            .lines()
            .find(|l| l.contains(&format!("sync {name} finished: ")))
            .unwrap_or_else(|| panic!("no finished sync of {name}:\n{log}"));
        let timings = line
            .rsplit_once(" deleted (")
            .and_then(|(_, t)| t.strip_suffix(')'))
            .unwrap_or_else(|| panic!("no timings: {line}"));
        let phases: Vec<&str> = timings
            .split(", ")
            .map(|p| {
                let (phase, ms) = p.split_once(' ').unwrap_or_else(|| panic!("{line}"));
                let n = ms.strip_suffix(" ms").unwrap_or_else(|| panic!("{line}"));
                assert!(n.parse::<u64>().is_ok(), "{line}");
                phase
            })
            .collect();
        assert_eq!(phases, ["ls-remote", "plan", "push"], "{line}");
    }
    let rss = log
        .lines()
        .filter_map(|l| {
            l.split_once("flusher exiting; peak RSS ")?
                .1
                .strip_suffix(" KiB")
        })
        .map(|n| n.parse::<u64>().unwrap_or(0))
        .collect::<Vec<_>>();
    assert!(!rss.is_empty() && rss.iter().all(|n| *n > 0), "{log}");
}

#[test]
fn concurrent_clients_coalesce_and_mirror_ends_equal() {
    let env = Env::new();
    let up = env.upstream("up.git");
    let mirror = env.bare("mirror.git", &[]);
    env.pm_ok(
        &up,
        &["add", "m", mirror.to_str().unwrap(), "--debounce", "300ms"],
    );
    let seed = env.clone(&up, "seed");
    env.commit(&seed, "root");
    env.push(&seed, &["main"]);

    let clients = 8;
    let rounds = 25;
    let t0 = std::time::Instant::now();
    let wcs: Vec<_> = (0..clients)
        .map(|i| env.clone(&up, &format!("wc{i}")))
        .collect();
    std::thread::scope(|s| {
        for (i, wc) in wcs.iter().enumerate() {
            let env = &env;
            s.spawn(move || {
                for r in 0..rounds {
                    env.commit(wc, &format!("c{i} r{r}"));
                    // Own branch, plus a shared one everybody force-pushes: last writer wins.
                    let refspec = if r % 2 == 0 {
                        format!("HEAD:refs/heads/client{i}")
                    } else {
                        "+HEAD:refs/heads/shared".to_string()
                    };
                    env.push_retrying(wc, &[&refspec]);
                }
            });
        }
    });
    env.wait_mirrored(&up, &mirror);
    assert!(env.wait_flushers_gone());
    env.wait_mirrored(&up, &mirror);
    let m = env.mirror_status(&up, "m");
    let syncs = m["syncs"].as_u64().unwrap();
    let pushes = (clients * rounds) as u64;
    // A leading-edge throttle starts at most one sync per 300 ms interval (plus the seed's own
    // sync and the one starting the burst), however the pushes are spread.
    let intervals = t0.elapsed().as_millis() as u64 / 300 + 1;
    assert!(
        syncs < pushes && syncs <= intervals + 2,
        "{syncs} syncs for {pushes} pushes in {intervals} intervals: not coalesced ({m})"
    );
    assert_eq!(m["update_status"], "finished");
}

/// A git:// endpoint that accepts connections and never answers: the worst kind of dead mirror.
fn black_hole() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let l2 = l.try_clone().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in l2.incoming().flatten() {
            held.push(s);
        }
    });
    (l, port)
}

#[test]
fn hanging_mirror_neither_slows_the_push_nor_blocks_other_mirrors() {
    let env = Env::new();
    let up = env.upstream("up.git");
    let good = env.bare("good.git", &[]);
    let (_hole, port) = black_hole();
    env.pm_ok(
        &up,
        &[
            "add",
            "hang",
            &format!("git://127.0.0.1:{port}/x.git"),
            "--debounce",
            "0s",
            "--timeout",
            "20s",
        ],
    );
    env.pm_ok(
        &up,
        &["add", "good", good.to_str().unwrap(), "--debounce", "100ms"],
    );
    let wc = env.clone(&up, "wc");
    env.commit(&wc, "one");
    env.push(&wc, &["main"]);
    // The push has returned; the hung mirror's sync is still running...
    let hang = env.mirror_status(&up, "hang");
    assert_ne!(hang["update_status"], "finished", "{hang}");
    // The stuck flusher is fully detached from the push that started it: its own session, and
    // its standard descriptors on /dev/null rather than the pusher's pipes.
    let pids = flusher_pids(env.dir.path());
    assert!(
        !pids.is_empty(),
        "no flusher running while the mirror hangs"
    );
    for pid in pids {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
        let session: u32 = after_comm.split(' ').nth(3).unwrap().parse().unwrap();
        assert_eq!(
            session, pid,
            "flusher {pid} is not a session leader: {stat}"
        );
        for fd in 0..3 {
            let target = std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).unwrap();
            assert_eq!(target, std::path::Path::new("/dev/null"), "flusher fd {fd}");
        }
    }
    // ...and the other mirror is updated all the same, long before the hang times out.
    env.wait_mirrored(&up, &good);
    let hang = env.mirror_status(&up, "hang");
    assert!(
        matches!(
            hang["update_status"].as_str(),
            Some("started") | Some("scheduled")
        ),
        "{hang}"
    );
    // A second push while the first sync hangs still returns and still reaches the good mirror.
    env.commit(&wc, "two");
    env.push(&wc, &["main"]);
    env.wait_mirrored(&up, &good);
    // The hang ends in a timeout, reported as an error, and retried with backoff.
    let timed_out = || {
        env.mirror_status(&up, "hang")["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("timed out"))
    };
    assert!(
        wait_until(Duration::from_secs(90), timed_out),
        "{}",
        env.log(&up)
    );
    let m = env.mirror_status(&up, "hang");
    assert!(m["consecutive_failures"].as_u64().unwrap() >= 1, "{m}");
    assert!(
        m["next_retry_at"].is_string() || m["gave_up"] == true,
        "{m}"
    );
}

#[test]
fn flusher_killed_mid_sync_loses_nothing() {
    let env = Env::new();
    let up = env.upstream("up.git");
    let mirror = env.bare("mirror.git", &[]);
    // The mirror's receive takes a while and then refuses, so the killed sync cannot have
    // delivered anything itself.
    let hook = mirror.join("hooks/pre-receive");
    std::fs::write(&hook, "#!/bin/sh\ncat >/dev/null\nsleep 4\nexit 1\n").unwrap();
    std::os::unix::fs::PermissionsExt::set_mode(
        &mut std::fs::metadata(&hook).unwrap().permissions(),
        0o755,
    );
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    env.pm_ok(
        &up,
        &["add", "m", mirror.to_str().unwrap(), "--debounce", "0s"],
    );
    let wc = env.clone(&up, "wc");
    env.commit(&wc, "one");
    env.git(&wc, &["tag", "v1"]);
    env.push(&wc, &["main", "v1"]);
    assert!(wait_until(Duration::from_secs(120), || env
        .mirror_status(&up, "m")["update_status"]
        == "started"));
    std::thread::sleep(Duration::from_millis(500));
    let pids = flusher_pids(env.dir.path());
    assert!(!pids.is_empty(), "no flusher to kill");
    for p in pids {
        unsafe_kill(p);
    }
    assert!(env.wait_flushers_gone());
    std::fs::remove_file(&hook).unwrap();
    std::thread::sleep(Duration::from_secs(5)); // let the orphaned, refused push finish
    assert!(
        env.heads_and_tags(&mirror).is_empty(),
        "the killed sync delivered: test is moot"
    );
    // The work is still pending, and a sweep (or the next push) delivers it.
    assert!(
        env.mirror_status(&up, "m")["pending_updates"]
            .as_u64()
            .unwrap()
            > 0
    );
    let out = env
        .cmd(bin())
        .args(["sweep", "--root"])
        .arg(env.dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    env.wait_mirrored(&up, &mirror);
    assert_eq!(env.mirror_status(&up, "m")["update_status"], "finished");
}

#[test]
fn torn_spool_tail_and_malformed_stdin_are_reported_and_valid_updates_delivered() {
    let env = Env::new();
    let up = env.upstream("up.git");
    let mirror = env.bare("mirror.git", &[]);
    env.pm_ok(
        &up,
        &["add", "m", mirror.to_str().unwrap(), "--debounce", "100ms"],
    );
    let wc = env.clone(&up, "wc");
    env.commit(&wc, "one");
    env.push(&wc, &["main"]);
    env.wait_mirrored(&up, &mirror);
    assert!(env.wait_flushers_gone());

    // A crash mid-append leaves half a record behind.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(up.join("pushmirror/spool"))
        .unwrap();
    f.write_all(b"v1 999 1 1 u 00000000000000000000000000000000000")
        .unwrap();
    drop(f);
    env.commit(&wc, "two");
    let out = env.push(&wc, &["main"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("remote: git-pushmirror:") && stderr.contains("torn record"),
        "{stderr}"
    );
    env.wait_mirrored(&up, &mirror);

    // Malformed stdin: every bad line is named, the good one is still spooled and mirrored.
    let head = env.git(&wc, &["rev-parse", "HEAD"]);
    env.git(&up, &["update-ref", "refs/heads/direct", &head]);
    let input = format!(
        "garbage\n{z} {head}\n{z} {bad} refs/heads/x\n{z} {head} refs/heads/a..b\n\0\0\r\n{z} {head} refs/heads/direct\r\n",
        z = "0".repeat(40),
        bad = "g".repeat(40)
    );
    let mut hook = env.cmd(bin());
    hook.args(["hook", "post-receive"]).env("GIT_DIR", &up);
    let out = output_with_stdin(hook, input.as_bytes());
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for n in 1..=5 {
        assert!(
            err.contains(&format!("stdin line {n} ignored")),
            "line {n} not reported: {err}"
        );
    }
    assert!(!err.contains("stdin line 6"), "{err}");
    assert!(
        err.lines().all(|l| l.starts_with("git-pushmirror: ")),
        "{err}"
    );
    env.wait_mirrored(&up, &mirror);
    assert_eq!(env.refs(&mirror).get("refs/heads/direct"), Some(&head));
    assert!(env.log(&up).contains("damaged record"), "{}", env.log(&up));
}

#[test]
fn pushes_landing_while_the_flusher_exits_are_all_delivered() {
    let env = Env::new();
    let up = env.upstream("up.git");
    let mirror = env.bare("mirror.git", &[]);
    env.pm_ok(
        &up,
        &["add", "m", mirror.to_str().unwrap(), "--debounce", "0s"],
    );
    let wc = env.clone(&up, "wc");
    for i in 0..30u64 {
        let c = env.commit(&wc, &format!("c{i}"));
        env.push(&wc, &["main"]);
        // Each push lands right as the previous sync finished and its flusher is deciding to
        // exit; a stranded update would never arrive.
        let ok = wait_until(Duration::from_secs(120), || {
            env.refs(&mirror).get("refs/heads/main") == Some(&c)
        });
        assert!(ok, "push {i} stranded\n{}", env.log(&up));
        std::thread::sleep(Duration::from_millis(i % 7));
    }
    assert!(env.wait_flushers_gone());
}

#[test]
fn broken_config_is_reported_to_the_pusher_and_nothing_is_lost() {
    let env = Env::new();
    let up = env.upstream("up.git");
    let mirror = env.bare("mirror.git", &[]);
    env.pm_ok(
        &up,
        &["add", "m", mirror.to_str().unwrap(), "--debounce", "100ms"],
    );
    let good = std::fs::read_to_string(up.join("pushmirror/config.yaml")).unwrap();
    std::fs::write(
        up.join("pushmirror/config.yaml"),
        format!("{good}    debounse: 1s\n"),
    )
    .unwrap();
    let wc = env.clone(&up, "wc");
    env.commit(&wc, "one");
    let out = env.push(&wc, &["main"]);
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err
        .lines()
        .find(|l| l.contains("remote: git-pushmirror:"))
        .unwrap_or_else(|| panic!("no report: {err}"));
    assert!(
        line.contains("config.yaml") && line.contains("debounse"),
        "{line}"
    );
    assert!(env.pm(&up, &["status"]).status.code() != Some(0));
    std::fs::write(up.join("pushmirror/config.yaml"), good).unwrap();
    env.pm_ok(&up, &["sync", "--wait"]);
    env.wait_mirrored(&up, &mirror);
}
