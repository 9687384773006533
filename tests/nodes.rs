//! Several nodes on one shared storage (issue 22 part 2), on one machine: each "node" has its own
//! runtime directory, and a node's `status` runs in its own pid namespace (where `/proc/locks`
//! shows none of the other node's locks, as on another machine). Mirrors are local bare
//! repositories whose pre-receive hook records every push and any overlap of two pushes.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::*;

/// A bare mirror whose pre-receive hook logs each push to `<mirror>/pushes`, notes in
/// `<shared>/overlaps` a push that starts while another holds `<shared>/busy.lock`, marks
/// `<shared>/started`, and then waits for `<shared>/release` (at most 30 s) before a short sleep.
fn recording_mirror(env: &Env, name: &str, shared: &Path) -> PathBuf {
    let m = env.bare(name, &[]);
    let sh = s(shared);
    write_exec(
        &m.join("hooks/pre-receive"),
        &format!(
            r#"#!/bin/sh
cat >/dev/null
echo push >> "$(pwd)/pushes"
exec 9>>"{sh}/busy.lock"
if ! flock -n 9; then echo "$(pwd)" >> "{sh}/overlaps"; flock 9; fi
touch "{sh}/started"
i=0
while [ ! -e "{sh}/release" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
sleep 0.3
"#
        ),
    );
    m
}

/// `git-pushmirror ARGS` as node `run` (its own runtime directory) would run it.
fn node_cmd(env: &Env, run: &Path, args: &[&str]) -> Command {
    let mut c = env.cmd(bin());
    c.env("GIT_PUSHMIRROR_RUNTIME_DIR", run).args(args);
    c
}

/// The same in a new pid namespace with its own /proc: another node's flushers are invisible
/// there except through the locks themselves.
fn other_node_output(env: &Env, run: &Path, args: &[&str]) -> Option<Output> {
    let mut c = env.cmd("unshare");
    c.env("GIT_PUSHMIRROR_RUNTIME_DIR", run)
        .args(["--pid", "--fork", "--mount-proc"])
        .arg(bin())
        .args(args);
    let out = c.output().ok()?;
    // Not root, or no namespaces in this container: the caller checks locally instead.
    (!String::from_utf8_lossy(&out.stderr).contains("unshare failed")).then_some(out)
}

fn pushes(mirror: &Path) -> usize {
    std::fs::read_to_string(mirror.join("pushes"))
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

#[test]
fn two_nodes_pushing_share_one_slots_dir() {
    let env = Env::new();
    let shared = env.path("shared");
    std::fs::create_dir_all(&shared).unwrap();
    env.write_server_config(&format!(
        "concurrency: 1\nslots_dir: {}\n",
        s(&shared.join("slots"))
    ));
    let (run_a, run_b) = (env.path("run-a"), env.path("run-b"));
    let mut repos = Vec::new();
    for i in 0..4 {
        let up = env.upstream(&format!("srv/r{i}.git"));
        let m = recording_mirror(&env, &format!("mirrors/r{i}.git"), &shared);
        env.pm_ok(&up, &["add", "m", s(&m)]);
        wait_finished(&env, &up, "m");
        let wc = env.clone(&up, &format!("wc{i}"));
        env.commit(&wc, "one");
        repos.push((up, m, wc));
    }
    // Pushes from both nodes at once: each node's hook starts its flushers with its own
    // runtime directory; only the shared slots_dir keeps them to one push at a time.
    let children: Vec<_> = repos
        .iter()
        .enumerate()
        .map(|(i, (_, _, wc))| {
            let run = if i % 2 == 0 { &run_a } else { &run_b };
            env.cmd("git")
                .env("GIT_PUSHMIRROR_RUNTIME_DIR", run)
                .arg("-C")
                .arg(wc)
                .args(["push", "-q", "origin", "main"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    // One push holds its slot in a mirror's hook while all four flushers run: a flusher of the
    // other node with a slot of its own would enter a hook at once and be seen overlapping.
    assert!(
        wait_until(Duration::from_secs(60), || shared.join("started").exists()
            && flusher_pids(env.dir.path()).len() == 4),
        "the four flushers never ran at once"
    );
    std::thread::sleep(Duration::from_secs(1));
    std::fs::write(shared.join("release"), "").unwrap();
    for (up, m, _) in &repos {
        env.wait_mirrored(up, m);
        wait_finished(&env, up, "m");
    }
    assert!(env.wait_flushers_gone());
    let overlaps = std::fs::read_to_string(shared.join("overlaps")).unwrap_or_default();
    assert_eq!(overlaps, "", "two pushes ran at once with concurrency 1");
    assert!(
        shared.join("slots/slot-0.lock").exists(),
        "slot files live in slots_dir"
    );
    assert!(!run_a.join("slot-0.lock").exists() && !run_b.join("slot-0.lock").exists());

    // A relative slots_dir is refused with the key named.
    env.write_server_config("slots_dir: slots\n");
    let out = env.pm(&repos[0].0, &["status"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("slots_dir") && stderr(&out).contains("absolute"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn one_sweep_per_root_and_either_node_sees_the_flushers() {
    let env = Env::new();
    let shared = env.path("shared");
    std::fs::create_dir_all(&shared).unwrap();
    let root = env.path("srv");
    let (run_a, run_b) = (env.path("run-a"), env.path("run-b"));
    // Three repositories pushed to before any mirror exists: a server rule added afterwards
    // gives each a mirror that has never synced, which is work for a sweep.
    let mut repos = Vec::new();
    for i in 0..3 {
        let up = env.upstream(&format!("srv/r{i}.git"));
        let m = recording_mirror(&env, &format!("mirrors/r{i}.git"), &shared);
        let wc = env.clone(&up, &format!("wc{i}"));
        env.commit(&wc, "one");
        env.push(&wc, &["main"]);
        repos.push((up, m));
    }
    assert!(env.wait_flushers_gone());
    env.write_server_config(&format!(
        "root: {}\nconcurrency: 4\nslots_dir: {}\nrules:\n  - name: m\n    url: {}/${{name}}\n",
        s(&root),
        s(&shared.join("slots")),
        s(&env.path("mirrors"))
    ));
    // Node A's sweep starts the flushers; their pushes wait in the mirrors' hooks.
    let sweep_a = node_cmd(&env, &run_a, &["sweep"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(60), || shared.join("started").exists()),
        "no sync started"
    );
    // Node B's timer fires meanwhile: it leaves the root to the running sweep.
    let out = node_cmd(&env, &run_b, &["sweep"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stdout(&out).contains("another sweep is running"),
        "{}",
        text(&out)
    );
    // Node B sees the flushers node A runs, from its own pid namespace.
    let status = other_node_output(&env, &run_b, &["status", "--root", s(&root), "--json"])
        .unwrap_or_else(|| {
            node_cmd(&env, &run_b, &["status", "--root", s(&root), "--json"])
                .output()
                .unwrap()
        });
    let doc: serde_json::Value =
        serde_json::from_slice(&status.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&status)));
    let running = doc["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["flusher_running"] == true)
        .count();
    assert!(running >= 1, "no flusher seen from node B: {doc:#}");
    std::fs::write(shared.join("release"), "").unwrap();
    let out = sweep_a.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    for (up, m) in &repos {
        env.wait_mirrored(up, m);
        wait_finished(&env, up, "m");
    }
    assert!(env.wait_flushers_gone());
    // No double push: each mirror got its one first sync; and a sweep now finds nothing to do.
    for (_, m) in &repos {
        assert_eq!(pushes(m), 1, "{}", m.display());
    }
    let out = node_cmd(&env, &run_b, &["sweep"]).output().unwrap();
    assert!(
        stdout(&out).contains("sweep: 0 repositories flushed"),
        "{}",
        text(&out)
    );
    // Status from either node: nobody runs now.
    for run in [&run_a, &run_b] {
        let out = node_cmd(&env, run, &["status", "--root", s(&root), "--json"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        for r in doc["repositories"].as_array().unwrap() {
            assert_eq!(r["flusher_running"], false, "{r:#}");
        }
    }
}

/// `sync --all` (issue 22 part 3): a destination comes back after its mirrors gave up; one
/// command catches up every mirror pointing at it, one push at a time with `concurrency: 1`,
/// leaves the mirrors elsewhere alone, shows progress on a terminal only, and fails naming the
/// mirror that still cannot be reached.
#[test]
fn sync_all_catches_up_every_mirror_of_a_destination() {
    let env = Env::new();
    let shared = env.path("shared");
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::write(shared.join("release"), "").unwrap();
    let root = env.path("srv");
    let down = env.path("down");
    env.write_server_config(&format!(
        "root: {}\nconcurrency: 1\ndefaults:\n  max_attempts: 1\n",
        s(&root)
    ));
    let mut ups = Vec::new();
    for i in 0..3 {
        let up = env.upstream(&format!("srv/r{i}.git"));
        env.pm_ok(&up, &["add", "m", s(&down.join(format!("r{i}.git")))]);
        let wc = env.clone(&up, &format!("wc{i}"));
        env.commit(&wc, "one");
        env.push(&wc, &["main"]);
        wait_gave_up(&env, &up, "m");
        ups.push(up);
    }
    // A mirror elsewhere, also given up: --url leaves it alone.
    env.pm_ok(&ups[0], &["add", "elsewhere", s(&env.path("gone/x.git"))]);
    wait_gave_up(&env, &ups[0], "elsewhere");
    let before = env.mirror_status(&ups[0], "elsewhere");

    // The destination is back, except for r2.
    let mirrors: Vec<PathBuf> = (0..2)
        .map(|i| recording_mirror(&env, &format!("down/r{i}.git"), &shared))
        .collect();
    let pattern = format!("{}/*", s(&down));
    let out = pm_root(&env, &["sync", "--all", "--url", &pattern, "--wait"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(stderr(&out).contains("r2.git: m ("), "{}", text(&out));
    assert!(
        stdout(&out).contains("sync --all: 2 mirror(s) synced, 1 failed"),
        "{}",
        text(&out)
    );
    assert!(
        !stderr(&out).contains("repositories\r"),
        "progress without a terminal"
    );
    for (up, m) in ups.iter().zip(&mirrors) {
        assert_eq!(env.heads_and_tags(up), env.heads_and_tags(m));
        assert_eq!(pushes(m), 1);
    }
    let overlaps = std::fs::read_to_string(shared.join("overlaps")).unwrap_or_default();
    assert_eq!(overlaps, "", "two pushes ran at once with concurrency 1");
    let after = env.mirror_status(&ups[0], "elsewhere");
    assert_eq!(
        before["last_update_started_at"], after["last_update_started_at"],
        "a mirror --url does not match was synced"
    );

    // All of it back: every mirror of the destination synced, progress on a terminal.
    let m2 = recording_mirror(&env, "down/r2.git", &shared);
    let cmd = format!(
        "{} sync --all --root {} --url '{pattern}' --wait",
        s(&bin()),
        s(&root)
    );
    let out = env
        .cmd("script")
        .args(["-qec", &cmd, "/dev/null"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let all = text(&out);
    assert!(all.contains("3/3 repositories"), "{all}");
    assert!(all.contains("3 mirror(s) synced, 0 failed"), "{all}");
    assert_eq!(env.heads_and_tags(&ups[2]), env.heads_and_tags(&m2));
    assert!(env.wait_flushers_gone());

    // A pattern nothing matches is an error, not a silent success.
    let out = pm_root(&env, &["sync", "--all", "--url", "https://nowhere/*"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(stderr(&out).contains("no enabled mirror"), "{}", text(&out));
}

fn pm_root(env: &Env, args: &[&str]) -> Output {
    env.cmd(bin()).args(args).output().unwrap()
}

/// A mirror's first sync pushes at once as if the mirror were empty and reads its real refs from
/// the push's advertisement (no `git ls-remote` first: the sweep and `sync --all` CPU work of
/// issue 22). A mirror that already has refs still ends as a listed one would: its diverged
/// main overwritten, a mirror-only branch merged upstream deleted, an unmerged one and a
/// mirror-only tag kept.
#[test]
fn a_first_sync_to_a_populated_mirror_ends_as_a_listed_one_would() {
    let env = Env::new();
    let up = env.upstream("up.git");
    let mirror = env.bare("mirror.git", &[]);
    let wc = env.clone(&up, "wc");
    let c1 = env.commit(&wc, "one");
    env.git(&wc, &["checkout", "-q", "-b", "rogue"]);
    env.commit(&wc, "only on the mirror");
    env.git(&wc, &["checkout", "-q", "main"]);
    let old_main = format!("{}:refs/heads/main", env.commit(&wc, "old main"));
    env.git(&wc, &["reset", "-q", "--hard", &c1]);
    env.git(
        &wc,
        &[
            "push",
            "-q",
            s(&mirror),
            &old_main,
            &format!("{c1}:refs/heads/merged-topic"),
            "rogue:refs/heads/mirror-work",
            &format!("{c1}:refs/tags/mirror-tag"),
        ],
    );
    env.commit(&wc, "two");
    env.git(&wc, &["tag", "v1"]);
    env.git(&wc, &["checkout", "-q", "-b", "feature"]);
    env.commit(&wc, "feature");
    env.git(&wc, &["checkout", "-q", "main"]);
    env.push(&wc, &["main", "feature", "v1"]);
    assert!(env.wait_flushers_gone());

    add_mirror(&env, &up, "m", &mirror);
    wait_finished(&env, &up, "m");
    let log = env.log(&up);
    assert!(log.contains("mirror listed by the push"), "{log}");
    assert!(
        !log.contains("ls-remote 1") && log.contains("ls-remote 0 ms"),
        "{log}"
    );
    let got = env.heads_and_tags(&mirror);
    let want = env.heads_and_tags(&up);
    for (r, v) in &want {
        assert_eq!(got.get(r), Some(v), "{r}: {got:?}");
    }
    assert!(!got.contains_key("refs/heads/merged-topic"), "{got:?}");
    assert!(got.contains_key("refs/heads/mirror-work"), "{got:?}");
    assert!(got.contains_key("refs/tags/mirror-tag"), "{got:?}");
}

/// `sync --all` in a repository whose flusher is busy: the request goes to that flusher (its own
/// `flush --once` leaves at once); without --wait it is reported as handed over, with --wait the
/// command waits for that flusher's sync of it.
#[test]
fn sync_all_hands_a_busy_repository_to_its_flusher_and_waits_for_it() {
    let env = Env::new();
    let shared = env.path("shared");
    std::fs::create_dir_all(&shared).unwrap();
    let root = env.path("srv");
    env.write_server_config(&format!("root: {}\n", s(&root)));
    let up = env.upstream("srv/a.git");
    let m = recording_mirror(&env, "mirrors/a.git", &shared);
    env.pm_ok(&up, &["add", "m", s(&m)]);
    let wc = env.clone(&up, "wc");
    env.commit(&wc, "one");
    env.push(&wc, &["main"]);
    assert!(
        wait_until(Duration::from_secs(60), || shared.join("started").exists()),
        "the flusher never reached the mirror"
    );
    let out = pm_root(&env, &["sync", "--all"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stdout(&out).contains("0 mirror(s) synced, 0 failed, 1 handed to running flushers"),
        "{}",
        text(&out)
    );
    let waiting = env
        .cmd(bin())
        .args(["sync", "--all", "--wait"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::fs::write(shared.join("release"), "").unwrap();
    let out = waiting.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stdout(&out).contains("1 mirror(s) synced, 0 failed"),
        "{}",
        text(&out)
    );
    env.wait_mirrored(&up, &m);
}
