//! Regression tests for issue 20, items 18-20 (data safety).

mod common;

use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;

/// A mount point unmounted (lazily) on drop.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

const FAST: &str =
    "defaults:\n  debounce: 100ms\n  backoff_initial: 100ms\n  backoff_max: 1s\n  timeout: 10s\n";

// ---------------------------------------------------------------------------------------------
// 18. A stale cursor-floor cache (a state file restored in place)

/// The mirror's cursor as its state file holds it.
fn cursor_of(up: &Path) -> u64 {
    let doc: serde_json::Value =
        serde_json::from_slice(&fs::read(up.join("pushmirror/state/m.json")).unwrap()).unwrap();
    doc["cursor"].as_u64().unwrap()
}

/// The highest sequence number in the spool.
fn spool_last(up: &Path) -> u64 {
    fs::read_to_string(up.join("pushmirror/spool"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(1)?.parse().ok())
        .max()
        .unwrap_or(0)
}

/// `state/`'s identity and change time, as `cursor-floor` records them.
fn state_stamp(up: &Path) -> String {
    let m = fs::symlink_metadata(up.join("pushmirror/state")).unwrap();
    format!("{} {} {} {}", m.dev(), m.ino(), m.ctime(), m.ctime_nsec())
}

/// Whether `cursor-floor` holds `floor` for `state/` as it is now (the hook trusts it then).
fn floor_cached(up: &Path, floor: u64) -> bool {
    let line = fs::read_to_string(up.join("pushmirror/cursor-floor")).unwrap_or_default();
    line.starts_with(&format!("cursor-floor v1 {floor} {} ", state_stamp(up)))
}

/// Pushes in silent mode (spooled, nothing sent, no state written) until the hook has cached
/// the floor for the current `state/`, then restores the mirror's state file in place with
/// `cp` from a copy whose cursor is above everything spooled: the cache's stamp cannot tell.
/// Returns the restored cursor.
fn restore_state_in_place(env: &Env, up: &Path, wc: &Path, round: &str) -> u64 {
    env.write_server_config(&format!("{FAST}silent: true\n"));
    let cursor = cursor_of(up);
    let mut i = 0;
    let cached = wait_until(Duration::from_secs(120), || {
        i += 1;
        env.commit(wc, &format!("{round}: silent {i}"));
        env.push(wc, &["main"]);
        std::thread::sleep(Duration::from_millis(200));
        floor_cached(up, cursor)
    });
    assert!(cached, "the hook never cached the floor {cursor}");
    assert!(env.wait_flushers_gone());
    let restored = spool_last(up) + 5;
    let mut doc: serde_json::Value =
        serde_json::from_slice(&fs::read(up.join("pushmirror/state/m.json")).unwrap()).unwrap();
    doc["cursor"] = restored.into();
    let backup = env.path(&format!("m.json.{round}"));
    fs::write(&backup, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    assert!(run_quiet(
        "cp",
        &[s(&backup), s(&up.join("pushmirror/state/m.json"))]
    ));
    assert!(
        floor_cached(up, cursor),
        "cp changed state/'s stamp: the scenario is not reproduced"
    );
    env.write_server_config(FAST);
    restored
}

/// A state file overwritten in place (restored with `cp`) leaves `cursor-floor` stale but
/// trusted: every push and `sync` was numbered below the cursor and thrown away, the flusher
/// logged "spool ends below a mirror's cursor" and exited, `sync --wait` restarted flushers
/// until its deadline, `sweep` saw nothing pending. The flusher and `sync`, which read the
/// state files, must number above the real cursor and sync in full.
#[test]
fn stale_cursor_floor_after_a_state_file_restored_in_place_recovers_on_push_sync_and_sweep() {
    let env = Env::new();
    env.write_server_config(FAST);
    let (up, mirror, wc) = synced_pair(&env, env.bare("mirror.git", &[]));

    // The next push.
    let restored = restore_state_in_place(&env, &up, &wc, "push");
    env.commit(&wc, "after the restore");
    env.push(&wc, &["main"]);
    env.wait_mirrored(&up, &mirror);
    assert!(env.wait_flushers_gone());
    assert!(cursor_of(&up) > restored, "{}", env.log(&up));
    assert!(
        env.log(&up).contains("lost or truncated"),
        "{}",
        env.log(&up)
    );
    assert!(env.status_json(&up)["spool_lost"].is_null());

    // `sync`, with what was pushed meanwhile spooled below the restored cursor.
    let restored = restore_state_in_place(&env, &up, &wc, "sync");
    let st = env.status_json(&up);
    assert!(st["spool_lost"].is_string(), "{st}");
    let out = env.pm(&up, &["sync", "--wait"]);
    assert!(out.status.success(), "{}\n{}", text(&out), env.log(&up));
    env.wait_mirrored(&up, &mirror);
    assert!(env.wait_flushers_gone());
    assert!(cursor_of(&up) > restored, "{}", env.log(&up));
    let st = env.status_json(&up);
    assert!(st["spool_lost"].is_null(), "{st}");
    assert_eq!(env.mirror_status(&up, "m")["pending_updates"], 0);

    // `sweep`: nothing looks pending (every record is below the cursor), yet it must flush.
    let restored = restore_state_in_place(&env, &up, &wc, "sweep");
    let out = env
        .cmd(bin())
        .args(["sweep", "--root", s(&env.path(""))])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    env.wait_mirrored(&up, &mirror);
    assert!(env.wait_flushers_gone());
    assert!(cursor_of(&up) > restored, "{}", env.log(&up));
    assert!(env.status_json(&up)["spool_lost"].is_null());
}

// ---------------------------------------------------------------------------------------------
// 19. Failures that could not be saved on a full disk

/// `pushmirror/` on a 1 MiB tmpfs holding a copy of what was there, then filled up: a small
/// spool record still fits in the spool's last page (and log lines in the log's); a state
/// file does not. Returns the mount (unmounted on drop) and the filler file.
fn fill_pushmirror(env: &Env, up: &Path) -> Option<(Mount, PathBuf)> {
    let pm = up.join("pushmirror");
    let saved = env.path("saved");
    fs::create_dir_all(&saved).unwrap();
    assert!(run_quiet(
        "cp",
        &["-a", &format!("{}/.", s(&pm)), s(&saved)]
    ));
    if !run_quiet("mount", &["-t", "tmpfs", "-o", "size=1m", "tmpfs", s(&pm)]) {
        unavailable("mount -t tmpfs");
        return None;
    }
    let mount = Mount(pm.clone());
    assert!(run_quiet(
        "cp",
        &["-a", &format!("{}/.", s(&saved)), s(&pm)]
    ));
    let filler = pm.join("filler");
    let mut f = fs::File::create(&filler).unwrap();
    while f.write_all(&[0u8; 4096]).is_ok() {}
    while f.write_all(&[0u8]).is_ok() {}
    Some((mount, filler))
}

/// With `pushmirror/` full, a sync failed max_attempts times and gave up with its state kept
/// in memory only; the flusher exited and the failures were lost: once space came back the
/// mirror showed the last state that could be saved (finished, healthy, updates pending, no
/// error, no retry). The flusher must save them when writes work again.
#[test]
fn failures_kept_in_memory_on_a_full_disk_are_saved_once_space_is_back() {
    let env = Env::new();
    env.write_server_config(
        "defaults:\n  debounce: 100ms\n  backoff_initial: 100ms\n  backoff_max: 400ms\n  max_attempts: 3\n",
    );
    let (up, mirror, wc) = synced_pair(&env, env.bare("mirror.git", &[]));
    let Some((_mount, filler)) = fill_pushmirror(&env, &up) else {
        return;
    };
    env.commit(&wc, "while full");
    env.push(&wc, &["main"]);
    assert!(
        wait_until(Duration::from_secs(120), || env
            .log(&up)
            .contains("giving up until the next push or sync")),
        "{}",
        env.log(&up)
    );
    fs::remove_file(&filler).unwrap();
    // No push, no sync: what the flusher kept in memory reaches the state file.
    let m = wait_mirror(&env, &up, "m", "the failure saved", |m| {
        m["update_status"] == "failed"
    });
    assert!(
        m["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("No space left")),
        "{m:#}"
    );
    assert_eq!(m["gave_up"], true, "{m:#}");
    assert_eq!(m["healthy"], false, "{m:#}");
    assert!(env.log(&up).contains("is saved"), "{}", env.log(&up));
    assert!(env.wait_flushers_gone(), "{}", env.log(&up));
    // While it waited for space it tried nothing more: max_attempts syncs, no retry storm.
    let log = env.log(&up);
    assert_eq!(log.matches("sync m failed").count(), 3, "{log}");
    // And `sync` mirrors it.
    env.pm_ok(&up, &["sync", "--wait"]);
    env.wait_mirrored(&up, &mirror);
    wait_finished(&env, &up, "m");
    assert!(env.wait_flushers_gone());
}

// ---------------------------------------------------------------------------------------------
// 20. last_error names the cause

/// A sha256 upstream pushing to a sha1 mirror: git's last line is "fatal: the remote end hung
/// up unexpectedly" (or the cause, as the two processes' lines interleave); `last_error` must
/// be the cause, the hash algorithm, whatever the order.
#[test]
fn a_sha256_upstream_pushing_to_a_sha1_mirror_names_the_hash_algorithm() {
    let env = Env::new();
    env.write_server_config(
        "defaults:\n  debounce: 100ms\n  backoff_initial: 100ms\n  backoff_max: 200ms\n  max_attempts: 4\n",
    );
    let up = env.bare("up.git", &["--object-format=sha256"]);
    env.pm_ok(&up, &["install"]);
    let mirror = env.bare("mirror.git", &[]);
    add_mirror(&env, &up, "m", &mirror);
    let wc = env.clone(&up, "wc");
    env.commit(&wc, "first");
    env.push(&wc, &["main"]);
    let m = wait_gave_up(&env, &up, "m");
    let e = m["last_error"].as_str().unwrap_or_default();
    assert!(
        e.contains("does not support this repository's hash algorithm"),
        "{m:#}\n{}",
        env.log(&up)
    );
    // Every attempt said so, not only the last.
    let log = env.log(&up);
    let failed: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("sync m failed"))
        .collect();
    assert_eq!(failed.len(), 4, "{log}");
    assert!(failed.iter().all(|l| l.contains("hash algorithm")), "{log}");
}

/// The pids of the `git push` processes (not receive-pack) whose arguments name `target`.
fn git_push_pids(target: &Path) -> Vec<u32> {
    let needle = target.to_string_lossy().into_owned();
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmd) = fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmd
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args
            .first()
            .is_some_and(|a| a == "git" || a.ends_with("/git"))
            && args.iter().any(|a| a == "push")
            && args.iter().any(|a| a.contains(&needle))
        {
            out.push(pid);
        }
    }
    out
}

/// A `git push` killed from outside (the OOM killer, an operator) said nothing but progress:
/// `last_error` was "Delta compression using up to 2 threads". It must say it was killed.
#[test]
fn a_push_killed_from_outside_is_reported_as_killed_not_by_its_progress() {
    let env = Env::new();
    env.write_server_config(
        "defaults:\n  debounce: 100ms\n  backoff_initial: 100ms\n  max_attempts: 1\n  timeout: 120s\n",
    );
    let (up, mirror, wc) = synced_pair(&env, env.bare("mirror.git", &[]));
    // The mirror holds the push open in its pre-receive hook until the push is killed.
    write_exec(&mirror.join("hooks/pre-receive"), "#!/bin/sh\nsleep 60\n");
    fs::write(wc.join("data"), random_bytes(200_000, 7)).unwrap();
    env.git(&wc, &["add", "data"]);
    env.commit(&wc, "with a pack to send");
    env.push(&wc, &["main"]);
    let mut pids = Vec::new();
    assert!(
        wait_until(Duration::from_secs(60), || {
            pids = git_push_pids(&mirror);
            !pids.is_empty()
        }),
        "no git push ever ran\n{}",
        env.log(&up)
    );
    for pid in pids {
        unsafe_kill(pid);
    }
    let m = wait_gave_up(&env, &up, "m");
    let e = m["last_error"].as_str().unwrap_or_default();
    assert!(
        e.ends_with("killed by signal 9 (SIGKILL)"),
        "{m:#}\n{}",
        env.log(&up)
    );
}
