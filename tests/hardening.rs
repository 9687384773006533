//! Regression tests for the faults of issue 16, each reproduced as it was found: a lost spool,
//! a full disk, symlinked directories, `set` changing the target, a push killed at its timeout,
//! a tag deleted while a mirror was disabled, silent mode, stale temp files, a dangling
//! upstream HEAD and shared (multi-user) repositories. Real git, real bare repositories; no
//! timing is asserted, everything polls with a generous deadline.

mod common;

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

const FAST: &str =
    "defaults:\n  debounce: 100ms\n  backoff_initial: 100ms\n  backoff_max: 1s\n  timeout: 60s\n";

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `common::synced_pair` with the mirror at `mirror.git`.
fn synced_pair(env: &Env) -> (PathBuf, PathBuf, PathBuf) {
    common::synced_pair(env, env.bare("mirror.git", &[]))
}

// ---------------------------------------------------------------------------------------------
// 1. A lost or truncated spool

#[test]
fn lost_spool_the_next_push_is_still_mirrored_and_the_loss_is_logged() {
    let env = Env::new();
    env.write_server_config(FAST);
    let (up, mirror, wc) = synced_pair(&env);
    for i in 0..5 {
        env.commit(&wc, &format!("c{i}"));
        env.push(&wc, &["main"]);
        env.wait_mirrored(&up, &mirror);
    }
    assert!(env.wait_flushers_gone());
    std::fs::remove_file(up.join("pushmirror/spool")).unwrap();
    // `status` no longer says all is well.
    let out = env.pm(&up, &["status", "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        doc["spool_lost"]
            .as_str()
            .is_some_and(|s| s.contains("lost or truncated")),
        "{doc}"
    );
    assert_eq!(out.status.code(), Some(1), "{doc}");

    env.commit(&wc, "after the spool was lost");
    let out = env.push(&wc, &["main"]);
    assert!(
        text(&out.stderr).contains("lost or truncated"),
        "the pusher was not told: {}",
        text(&out.stderr)
    );
    env.wait_mirrored(&up, &mirror);
    assert!(
        env.log(&up).contains("lost or truncated"),
        "{}",
        env.log(&up)
    );

    // Emptied rather than deleted, and the next thing to come is `sync`, not a push: the update
    // pushed with the hook told to skip it still reaches the mirror.
    assert!(env.wait_flushers_gone());
    env.commit(&wc, "not spooled");
    env.git(&up, &["config", "receive.advertisePushOptions", "true"]);
    env.push(&wc, &["-o", "pushmirror.skip", "main"]);
    std::fs::write(up.join("pushmirror/spool"), b"").unwrap();
    let out = env.pm(&up, &["status"]);
    assert!(
        text(&out.stdout).contains("SPOOL LOST"),
        "{}",
        text(&out.stdout)
    );
    env.pm_ok(&up, &["sync", "--wait"]);
    env.wait_mirrored(&up, &mirror);
    let m = env.mirror_status(&up, "m");
    assert_eq!(m["pending_updates"], 0, "{m}");
    assert!(env.status_json(&up)["spool_lost"].is_null());
}

/// The mirror's cursor as its state file holds it.
fn cursor_of(up: &Path) -> u64 {
    let doc: serde_json::Value =
        serde_json::from_slice(&fs::read(up.join("pushmirror/state/m.json")).unwrap()).unwrap();
    doc["cursor"].as_u64().unwrap()
}

/// The hook caches the highest cursor in `pushmirror/cursor-floor` (so a push does not read
/// every state file). A cache that is stale (an older copy put back), deleted or corrupt must
/// never let new sequence numbers fall at or below a cursor when the spool is lost as well: the
/// pusher's warning names the floor the hook used, which must be the real cursor.
#[test]
fn lost_spool_with_a_stale_missing_or_corrupt_cursor_floor_is_still_mirrored() {
    let env = Env::new();
    env.write_server_config(FAST);
    let (up, mirror, wc) = synced_pair(&env);
    let floor_file = up.join("pushmirror/cursor-floor");
    let push_synced = |msg: &str| {
        env.commit(&wc, msg);
        env.push(&wc, &["main"]);
        env.wait_mirrored(&up, &mirror);
        assert!(env.wait_flushers_gone());
    };
    // The hook writes the cache once state/ has been quiet for a moment after a sync: push
    // (slowly) until it has.
    let mut i = 0;
    let written = wait_until(Duration::from_secs(180), || {
        i += 1;
        push_synced(&format!("seed {i}"));
        std::thread::sleep(Duration::from_millis(300));
        floor_file.exists()
    });
    assert!(written, "no push ever wrote {}", floor_file.display());
    let stale = fs::read(&floor_file).unwrap();

    for (round, damage) in ["stale", "missing", "corrupt"].into_iter().enumerate() {
        // Move the cursor well past the cached value: 3 pushes, 3 records at least.
        for k in 0..3 {
            push_synced(&format!("{damage} {k}"));
        }
        let cursor = cursor_of(&up);
        match damage {
            "stale" => fs::write(&floor_file, &stale).unwrap(),
            "missing" => {
                let _ = fs::remove_file(&floor_file);
            }
            _ => {
                // The current stamp of state/ and a low floor, under a checksum that does not
                // match: only the checksum stands between the hook and the wrong floor.
                use std::os::unix::fs::MetadataExt;
                let m = fs::symlink_metadata(up.join("pushmirror/state")).unwrap();
                let text = format!(
                    "cursor-floor v1 1 {} {} {} {} 00000000\n",
                    m.dev(),
                    m.ino(),
                    m.ctime(),
                    m.ctime_nsec()
                );
                fs::write(&floor_file, text).unwrap();
            }
        }
        fs::remove_file(up.join("pushmirror/spool")).unwrap();
        env.commit(&wc, &format!("after losing the spool ({damage})"));
        let out = env.push(&wc, &["main"]);
        let said = text(&out.stderr);
        assert!(
            said.contains(&format!("a mirror has confirmed up to {cursor}:")),
            "round {round} ({damage} floor): the hook did not resume above cursor {cursor}: {said}"
        );
        env.wait_mirrored(&up, &mirror);
        assert!(env.wait_flushers_gone());
        assert!(cursor_of(&up) > cursor, "{}", env.log(&up));
    }
}

/// A directory where the spool file belongs (made or moved there by hand): the push says in
/// one line that it is a directory, not the spool file, and to move it away, instead of the
/// OS's bare "Is a directory"; once it is moved away, `sync` mirrors the push.
#[test]
fn a_directory_in_place_of_the_spool_is_named_with_the_fix() {
    let env = Env::new();
    env.write_server_config(FAST);
    let (up, mirror, wc) = synced_pair(&env);
    assert!(env.wait_flushers_gone());
    let spool = up.join("pushmirror/spool");
    std::fs::remove_file(&spool).unwrap();
    std::fs::create_dir(&spool).unwrap();
    env.commit(&wc, "while the spool is a directory");
    let out = env.push(&wc, &["main"]);
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    let said: Vec<&str> = err.lines().filter(|l| l.contains("spool")).collect();
    assert_eq!(said.len(), 1, "{err}");
    assert!(
        said[0].contains(&format!("{} is a directory", spool.display()))
            && said[0].contains("move it away")
            && !said[0].contains("os error"),
        "{err}"
    );
    for args in [&["status"][..], &["sync"]] {
        let o = env.pm(&up, args);
        let e = text(&o.stderr);
        assert!(
            e.contains("move it away") && !e.contains("os error"),
            "{args:?}: {e}"
        );
    }
    std::fs::remove_dir(&spool).unwrap();
    // Not `--wait`: a first attempt that loses a race under load is retried by the flusher.
    env.pm_ok(&up, &["sync"]);
    env.wait_mirrored(&up, &mirror);
    assert!(env.wait_flushers_gone());
}

// ---------------------------------------------------------------------------------------------
// 2. Full disk under pushmirror/: no busy loop, status says why

/// A mount point unmounted (lazily) on drop.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn full_disk_flusher_backs_off_gives_up_and_status_shows_the_write_error() {
    let env = Env::new();
    env.write_server_config(
        "defaults:\n  debounce: 100ms\n  backoff_initial: 100ms\n  backoff_max: 400ms\n  max_attempts: 3\n",
    );
    let (up, mirror, wc) = synced_pair(&env);
    let pm = up.join("pushmirror");
    let saved = env.path("saved");
    std::fs::create_dir_all(&saved).unwrap();
    assert!(run_quiet(
        "cp",
        &[
            "-a",
            &format!("{}/.", pm.display()),
            saved.to_str().unwrap()
        ]
    ));
    if !run_quiet(
        "mount",
        &[
            "-t",
            "tmpfs",
            "-o",
            "size=1m",
            "tmpfs",
            pm.to_str().unwrap(),
        ],
    ) {
        return unavailable("mount -t tmpfs");
    }
    let _mount = Mount(pm.clone());
    assert!(run_quiet(
        "cp",
        &[
            "-a",
            &format!("{}/.", saved.display()),
            pm.to_str().unwrap()
        ]
    ));
    let filler = pm.join("filler");
    {
        let mut f = std::fs::File::create(&filler).unwrap();
        while f.write_all(&[0u8; 4096]).is_ok() {}
        while f.write_all(&[0u8]).is_ok() {}
    }
    // One small record still fits in the spool's last page; the state files do not.
    env.commit(&wc, "while full");
    env.push(&wc, &["main"]);
    // It gives up after max_attempts instead of retrying for ever (and stays, idle, to save
    // what it could not write once space is back: see tests/safety.rs).
    assert!(
        wait_until(Duration::from_secs(120), || env
            .log(&up)
            .contains("giving up until the next push or sync")),
        "the flusher never gave up on a full disk\n{}",
        env.log(&up)
    );
    let out = env.pm(&up, &["status", "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        doc["write_error"]
            .as_str()
            .is_some_and(|e| e.contains("No space left")),
        "{doc}"
    );
    assert_eq!(out.status.code(), Some(1), "{doc}");
    let out = env.pm(&up, &["status"]);
    assert!(
        text(&out.stdout).contains("WRITE ERROR"),
        "{}",
        text(&out.stdout)
    );

    std::fs::remove_file(&filler).unwrap();
    env.commit(&wc, "space is back");
    env.push(&wc, &["main"]);
    env.wait_mirrored(&up, &mirror);
    assert!(env.status_json(&up)["write_error"].is_null());
    assert!(env.wait_flushers_gone());
}

// ---------------------------------------------------------------------------------------------
// 3. Symlinks and modes

#[test]
fn symlinked_push_dir_is_refused_and_nothing_is_deleted_where_it_points() {
    let env = Env::new();
    env.write_server_config(FAST);
    let (up, mirror, wc) = synced_pair(&env);
    let victim = env.path("victim");
    std::fs::create_dir_all(victim.join("m/sub")).unwrap();
    std::fs::write(victim.join("m/sub/precious"), b"precious").unwrap();
    let push = up.join("pushmirror/push");
    std::fs::remove_dir_all(&push).unwrap();
    std::os::unix::fs::symlink(&victim, &push).unwrap();

    env.commit(&wc, "through a symlinked push/");
    env.push(&wc, &["main"]);
    let refused = wait_until(Duration::from_secs(60), || {
        env.mirror_status(&up, "m")["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("symlink"))
    });
    assert!(refused, "{}", env.mirror_status(&up, "m"));
    assert_eq!(
        std::fs::read(victim.join("m/sub/precious")).unwrap(),
        b"precious"
    );
    assert!(env.wait_flushers_gone());
    assert_eq!(
        std::fs::read(victim.join("m/sub/precious")).unwrap(),
        b"precious"
    );

    std::fs::remove_file(&push).unwrap();
    env.pm_ok(&up, &["sync", "--wait"]);
    env.wait_mirrored(&up, &mirror);
    // Private modes, as documented (they followed the umask: 0755).
    assert_eq!(mode(&up.join("pushmirror")), 0o700);
    assert_eq!(mode(&up.join("pushmirror/state")), 0o700);
    assert_eq!(mode(&up.join("pushmirror/push")), 0o700);
}

#[test]
fn symlinked_state_dir_and_config_are_refused_by_remove_and_set() {
    let env = Env::new();
    env.write_server_config(FAST);
    let (up, _mirror, _wc) = synced_pair(&env);
    let outside = env.path("outside-state");
    let state = up.join("pushmirror/state");
    std::fs::rename(&state, &outside).unwrap();
    std::os::unix::fs::symlink(&outside, &state).unwrap();
    assert!(outside.join("m.json").exists());

    let out = env.pm(&up, &["remove", "m"]);
    assert!(
        !out.status.success(),
        "remove went through a symlinked state/"
    );
    assert!(
        text(&out.stderr).contains("symlink"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        outside.join("m.json").exists(),
        "m.json deleted through the link"
    );
    assert!(env.pm_ok(&up, &["list"]).contains("m\t"));
    std::fs::remove_file(&state).unwrap();
    std::fs::rename(&outside, &state).unwrap();

    // `set` through a symlinked config.yaml: refused, the link stays a link, the target as it was.
    let config = up.join("pushmirror/config.yaml");
    let real = env.path("real-config.yaml");
    std::fs::rename(&config, &real).unwrap();
    std::os::unix::fs::symlink(&real, &config).unwrap();
    let before = std::fs::read(&real).unwrap();
    let out = env.pm(&up, &["set", "m", "debounce=5s"]);
    assert!(
        !out.status.success(),
        "set replaced a symlinked config.yaml"
    );
    assert!(
        text(&out.stderr).contains("symlink"),
        "{}",
        text(&out.stderr)
    );
    assert!(std::fs::symlink_metadata(&config)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(std::fs::read(&real).unwrap(), before);
}

// ---------------------------------------------------------------------------------------------
// 4. `set` url= starts a full sync to the new target

#[test]
fn set_url_resets_status_and_syncs_the_new_target_without_a_push() {
    let env = Env::new();
    env.write_server_config(FAST);
    let (up, _old, wc) = synced_pair(&env);
    env.git(&wc, &["tag", "v1"]);
    env.push(&wc, &["v1"]);
    assert!(env.wait_flushers_gone());
    let before = env.mirror_status(&up, "m");
    assert!(before["syncs"].as_u64().unwrap() >= 1);
    let new = env.bare("new-target.git", &[]);
    let out = env.pm_ok(&up, &["set", "m", &format!("url={}", new.display())]);
    assert!(out.contains("full sync"), "{out}");
    env.wait_mirrored(&up, &new);
    assert!(env.wait_flushers_gone());
    let after = env.mirror_status(&up, "m");
    assert_eq!(after["url"], new.display().to_string());
    // A fresh status: counted from the new target's first sync on.
    assert!(
        after["syncs"].as_u64().unwrap() <= before["syncs"].as_u64().unwrap(),
        "{after}"
    );
    // A change that does not retarget does not reset.
    let syncs = after["syncs"].as_u64().unwrap();
    let out = env.pm_ok(&up, &["set", "m", "debounce=1s"]);
    assert!(!out.contains("reset"), "{out}");
    assert_eq!(
        env.mirror_status(&up, "m")["syncs"].as_u64().unwrap(),
        syncs
    );
}

/// `set NAME enabled=true` is `enable NAME` spelled as a setting: what was pushed while the mirror
/// was disabled reaches it now, not at some later push (status said finished, pending 0,
/// meanwhile). Widening the branch filter with `set` likewise sends the branches it now
/// selects.
#[test]
fn set_enabled_true_and_a_wider_branch_filter_sync_without_a_push() {
    let env = Env::new();
    env.write_server_config(FAST);
    let (up, mirror, wc) = synced_pair(&env);
    env.pm_ok(&up, &["set", "m", "enabled=false"]);
    env.git(&wc, &["checkout", "-q", "-b", "while-disabled"]);
    env.commit(&wc, "while disabled");
    env.push(&wc, &["while-disabled"]);
    assert!(env.wait_flushers_gone());
    assert!(!env.refs(&mirror).contains_key("refs/heads/while-disabled"));
    env.pm_ok(&up, &["set", "m", "enabled=true"]);
    env.wait_mirrored(&up, &mirror);

    env.pm_ok(&up, &["set", "m", "branch_regex=^main$"]);
    env.git(&wc, &["checkout", "-q", "-b", "feature"]);
    env.commit(&wc, "feature");
    env.push(&wc, &["feature"]);
    assert!(env.wait_flushers_gone());
    assert!(!env.refs(&mirror).contains_key("refs/heads/feature"));
    env.pm_ok(&up, &["set", "m", "branch_regex="]);
    env.wait_mirrored(&up, &mirror);
}

/// A corrupt state file is an error worth one log line per flusher, not one per pass of its loop
/// (five a second, for as long as another mirror keeps the flusher busy: a retry schedule, a long
/// debounce), which fills the disk the log is on.
#[test]
fn a_corrupt_state_file_is_logged_once_not_at_every_pass() {
    let env = Env::new();
    env.write_server_config(&format!("{FAST}  max_attempts: 5\n"));
    let (up, _mirror, _wc) = synced_pair(&env);
    let state = up.join("pushmirror/state/m.json");
    fs::write(&state, "{\"cursor\": 3,").unwrap();
    // A mirror that fails keeps the flusher running through its retries, then gives up.
    let absent = env.path("absent.git");
    env.pm_ok(
        &up,
        &[
            "add",
            "bad",
            absent.to_str().unwrap(),
            "--debounce",
            "100ms",
        ],
    );
    assert!(wait_until(Duration::from_secs(120), || env
        .log(&up)
        .contains("sync bad failed 5 times, giving up")));
    assert!(env.wait_flushers_gone());
    let log = env.log(&up);
    let n = log.matches("corrupt state file").count();
    assert_eq!(n, 1, "{log}");
    // Still reported by status, with the fix.
    let st = env.mirror_status(&up, "m");
    assert!(
        st["last_error"]
            .as_str()
            .unwrap_or("")
            .contains("delete it"),
        "{st}"
    );
}

// ---------------------------------------------------------------------------------------------
// 6. A push killed at its timeout leaves no ref locks behind

/// Lock files of refs (`refs/**.lock`, `packed-refs.lock`, `HEAD.lock`): git's own object
/// maintenance (`objects/maintenance.lock`) comes and goes on its own.
fn lock_files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = ["packed-refs.lock", "HEAD.lock"]
        .iter()
        .map(|f| dir.join(f))
        .filter(|p| p.exists())
        .collect();
    let mut stack = vec![dir.join("refs")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "lock") {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn push_timed_out_while_the_mirror_holds_ref_locks_leaves_no_lock_files() {
    let env = Env::new();
    env.write_server_config(
        // One attempt: no retry starts a new hanging push while the test looks for the old one.
        "defaults:\n  backoff_initial: 200ms\n  backoff_max: 1s\n  max_attempts: 1\n",
    );
    let up = env.upstream("up.git");
    let mirror = env.bare("mirror.git", &[]);
    // Each hanging hook records its pid (`exec` keeps it for the sleep), so the test checks
    // exactly the processes it caused, not any `sleep` elsewhere on the machine.
    let pids = env.path("hook-pids");
    // The mirror hangs with its ref locks taken (the transaction is prepared) while `hang`
    // exists: what a slow disk or a stuck hook on a real server looks like.
    let flag = env.path("hang");
    std::fs::write(&flag, b"").unwrap();
    let hook = mirror.join("hooks/reference-transaction");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\ncat >/dev/null\nif [ \"$1\" = prepared ] && [ -e '{}' ]; then echo $$ >>'{}'; exec sleep 617; fi\nexit 0\n",
            flag.display(),
            pids.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    env.pm_ok(
        &up,
        &[
            "add",
            "m",
            mirror.to_str().unwrap(),
            "--debounce",
            "0s",
            "--timeout",
            "2s",
        ],
    );
    let wc = env.clone(&up, "wc");
    env.commit(&wc, "one");
    env.push(&wc, &["main"]);
    let timed_out = wait_until(Duration::from_secs(60), || {
        env.mirror_status(&up, "m")["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("timed out"))
    });
    assert!(timed_out, "{}", env.log(&up));
    // The group got SIGTERM first: receive-pack removed its locks, the hook is gone.
    let hook_pids: Vec<String> = std::fs::read_to_string(&pids)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert!(!hook_pids.is_empty());
    assert!(
        wait_until(Duration::from_secs(30), || hook_pids
            .iter()
            .all(|p| !Path::new("/proc").join(p).exists())),
        "hook still running: {hook_pids:?}"
    );
    assert_eq!(lock_files(&mirror), Vec::<PathBuf>::new());
    std::fs::remove_file(&flag).unwrap();
    env.pm_ok(&up, &["sync", "m"]);
    env.wait_mirrored(&up, &mirror);
    assert_eq!(lock_files(&mirror), Vec::<PathBuf>::new());
}

// ---------------------------------------------------------------------------------------------
// 7. A tag deleted upstream while a mirror is disabled

#[test]
fn tag_deleted_while_a_mirror_is_disabled_is_deleted_there_when_enabled() {
    let env = Env::new();
    env.write_server_config(FAST);
    let (up, m1, wc) = synced_pair(&env);
    let m2 = env.bare("m2.git", &[]);
    add_mirror(&env, &up, "d", &m2);
    env.git(&wc, &["tag", "v1"]);
    env.push(&wc, &["v1"]);
    env.wait_mirrored(&up, &m1);
    env.wait_mirrored(&up, &m2);
    assert!(env.wait_flushers_gone());

    env.pm_ok(&up, &["disable", "d"]);
    env.push(&wc, &[":refs/tags/v1"]);
    env.wait_mirrored(&up, &m1);
    // More pushes, so that the enabled mirror confirms and compaction runs several times.
    for i in 0..3 {
        env.commit(&wc, &format!("more {i}"));
        env.push(&wc, &["main"]);
        env.wait_mirrored(&up, &m1);
    }
    assert!(env.wait_flushers_gone());
    assert!(env.refs(&m2).contains_key("refs/tags/v1"));

    env.pm_ok(&up, &["enable", "d"]);
    env.wait_mirrored(&up, &m2);
    assert!(!env.refs(&m2).contains_key("refs/tags/v1"));
}

// ---------------------------------------------------------------------------------------------
// 8. Silent mode compacts

#[test]
fn silent_mode_keeps_the_spool_at_about_one_record_per_ref() {
    let env = Env::new();
    env.write_server_config(FAST);
    let (up, _mirror, wc) = synced_pair(&env);
    env.write_server_config(&format!("{FAST}silent: true\n"));
    for i in 0..40 {
        env.commit(&wc, &format!("silent {i}"));
        env.push(&wc, &["main"]);
    }
    assert!(env.wait_flushers_gone());
    // Compaction runs once the journal holds more than 2 records per ref + 16.
    let lines = std::fs::read_to_string(up.join("pushmirror/spool"))
        .unwrap()
        .lines()
        .count();
    assert!(lines <= 19, "{lines} spool lines for one branch");
}

// ---------------------------------------------------------------------------------------------
// 11. Stale temp files

#[test]
fn temp_files_of_a_killed_flusher_are_removed_on_start() {
    let env = Env::new();
    env.write_server_config(FAST);
    let (up, mirror, wc) = synced_pair(&env);
    let spool_tmp = up.join("pushmirror/.spool.tmp.4242");
    let state_tmp = up.join("pushmirror/state/.m.json.tmp.4243");
    std::fs::write(&spool_tmp, b"half").unwrap();
    std::fs::write(&state_tmp, b"{").unwrap();
    env.commit(&wc, "two");
    env.push(&wc, &["main"]);
    env.wait_mirrored(&up, &mirror);
    assert!(env.wait_flushers_gone());
    assert!(!spool_tmp.exists());
    assert!(!state_tmp.exists());
}

// ---------------------------------------------------------------------------------------------
// 9. Dangling upstream HEAD

#[test]
fn dangling_upstream_head_is_reported_and_fixing_it_lets_deletions_through() {
    let env = Env::new();
    env.write_server_config(FAST);
    let up = env.upstream("up.git");
    // What `git init --bare` gives on most servers: HEAD names master, users push main.
    env.git(&up, &["symbolic-ref", "HEAD", "refs/heads/master"]);
    let wc = env.path("wc");
    env.git(
        env.dir.path(),
        &["init", "-q", "-b", "main", wc.to_str().unwrap()],
    );
    env.git(&wc, &["remote", "add", "origin", up.to_str().unwrap()]);
    env.commit(&wc, "first");
    env.git(&wc, &["branch", "feature"]);
    env.push(&wc, &["main", "feature"]);

    let mirror = env.bare("mirror.git", &[]);
    let out = env.pm(
        &up,
        &["add", "m", mirror.to_str().unwrap(), "--debounce", "100ms"],
    );
    assert!(out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("refs/heads/master") && err.contains("symbolic-ref HEAD refs/heads/main"),
        "add did not warn: {err}"
    );
    env.wait_mirrored(&up, &mirror);

    // feature is merged (it is main's commit) and deleted upstream: kept, and status says why.
    env.push(&wc, &[":feature"]);
    let held = wait_until(Duration::from_secs(60), || {
        env.mirror_status(&up, "m")["kept_because_of_dangling_head"]
            .as_array()
            .is_some_and(|a| a.iter().any(|b| b == "refs/heads/feature"))
    });
    assert!(held, "{}", env.status_json(&up));
    let doc = env.status_json(&up);
    assert_eq!(doc["upstream_head"]["ref"], "refs/heads/master", "{doc}");
    assert_eq!(doc["upstream_head"]["deletions_held_back"], true, "{doc}");
    assert!(doc["upstream_head"]["fix"]
        .as_str()
        .unwrap()
        .ends_with("symbolic-ref HEAD refs/heads/main"));
    let out = env.pm_ok(&up, &["status"]);
    assert!(
        out.contains("does not exist") && out.contains("refs/heads/feature"),
        "{out}"
    );
    assert!(env.refs(&mirror).contains_key("refs/heads/feature"));

    env.git(&up, &["symbolic-ref", "HEAD", "refs/heads/main"]);
    env.pm_ok(&up, &["sync", "--wait"]);
    env.wait_mirrored(&up, &mirror);
    assert!(env.status_json(&up)["upstream_head"].is_null());
    assert_eq!(
        env.mirror_status(&up, "m")["kept_because_of_dangling_head"],
        serde_json::json!([])
    );
}

// ---------------------------------------------------------------------------------------------
// 10. Shared repositories: two Unix users of one group push in turn

struct Users(Vec<String>, String);

impl Drop for Users {
    fn drop(&mut self) {
        for u in &self.0 {
            let _ = Command::new("userdel")
                .arg(u)
                .stderr(Stdio::null())
                .status();
        }
        let _ = Command::new("groupdel")
            .arg(&self.1)
            .stderr(Stdio::null())
            .status();
    }
}

fn id_of(flag: &str, name: &str) -> u32 {
    let out = Command::new("id").arg(flag).arg(name).output().unwrap();
    text(&out.stdout).trim().parse().unwrap()
}

#[test]
fn shared_group_repository_two_users_push_in_turn_and_both_are_mirrored() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: creating two Unix users needs root (CI runs as root)");
        return;
    }
    let tag = std::process::id();
    let group = format!("pmshare{tag}");
    let users = [format!("pmalice{tag}"), format!("pmbob{tag}")];
    assert!(run_quiet("groupadd", &[&group]), "groupadd {group}");
    let _cleanup = Users(users.to_vec(), group.clone());
    for u in &users {
        assert!(
            run_quiet("useradd", &["-M", "-N", "-g", &group, "-s", "/bin/sh", u]),
            "useradd {u}"
        );
    }
    let gid = id_of("-g", &users[0]);

    let env = Env::new();
    env.write_server_config(FAST);
    // Everyone may walk to the repositories; the binary must be reachable for the hook.
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let up = env.bare("up.git", &["--shared=group"]);
    env.pm_ok(&up, &["install"]);
    let mirror = env.bare("mirror.git", &["--shared=group"]);
    env.pm_ok(
        &up,
        &["add", "m", mirror.to_str().unwrap(), "--debounce", "100ms"],
    );
    assert!(env.wait_flushers_gone());
    // The admin's setup is done: the repositories belong to the group, like a real shared one.
    for r in [&up, &mirror] {
        assert!(run_quiet("chgrp", &["-R", &group, r.to_str().unwrap()]));
        assert!(run_quiet("chmod", &["-R", "g+rwX", r.to_str().unwrap()]));
    }
    let config = up.join("pushmirror/config.yaml");
    assert!(run_quiet("chmod", &["0640", config.to_str().unwrap()]));
    // Nothing root made in pushmirror/ yet but the config: the users make the rest.
    for e in std::fs::read_dir(up.join("pushmirror")).unwrap().flatten() {
        if e.file_name() != "config.yaml" {
            let p = e.path();
            if p.is_dir() {
                std::fs::remove_dir_all(&p).unwrap();
            } else {
                std::fs::remove_file(&p).unwrap();
            }
        }
    }
    assert!(run_quiet(
        "chgrp",
        &[&group, up.join("pushmirror").to_str().unwrap()]
    ));

    let as_user = |u: &str, dir: &Path, args: &[&str]| -> std::process::Output {
        let uid = id_of("-u", u);
        let mut c = env.cmd("setpriv");
        c.arg(format!("--reuid={uid}"))
            .arg(format!("--regid={gid}"))
            .arg("--init-groups")
            .arg("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            // The user's own ~/.gitconfig, as on a real server: git refuses repositories owned
            // by somebody else unless safe.directory says otherwise (the flusher's git runs
            // see it too, GIT_CONFIG_GLOBAL being dropped from their environment).
            .env("HOME", env.path(u))
            .env_remove("GIT_CONFIG_GLOBAL")
            .env("GIT_PUSHMIRROR_RUNTIME_DIR", env.path(u).join("run"));
        c.output().unwrap()
    };
    for (i, u) in users.iter().enumerate() {
        let wc = env.path(u).join("wc");
        std::fs::create_dir_all(env.path(u)).unwrap();
        std::fs::write(env.path(u).join(".gitconfig"), "[safe]\n\tdirectory = *\n").unwrap();
        assert!(run_quiet(
            "chown",
            &[&format!("{u}:{group}"), env.path(u).to_str().unwrap()]
        ));
        let o = as_user(
            u,
            env.dir.path(),
            &["clone", "-q", up.to_str().unwrap(), wc.to_str().unwrap()],
        );
        assert!(o.status.success(), "clone as {u}: {}", text(&o.stderr));
        let _ = as_user(u, &wc, &["checkout", "-q", "-B", "main"]);
        if i > 0 {
            let o = as_user(u, &wc, &["pull", "-q", "origin", "main"]);
            assert!(o.status.success(), "pull as {u}: {}", text(&o.stderr));
        }
        let o = as_user(
            u,
            &wc,
            &["commit", "-q", "--allow-empty", "-m", &format!("by {u}")],
        );
        assert!(o.status.success(), "commit as {u}: {}", text(&o.stderr));
        let o = as_user(u, &wc, &["push", "origin", "main"]);
        let err = text(&o.stderr);
        assert!(o.status.success(), "push as {u}: {err}");
        assert!(
            !err.contains("NOT spooled") && !err.contains("Permission denied"),
            "push as {u}: {err}"
        );
        env.wait_mirrored(&up, &mirror);
        assert!(env.wait_flushers_gone());
    }
    // Git's own rules for the group: directories setgid and group-writable, files group rw.
    let pm = up.join("pushmirror");
    assert_eq!(mode(&pm) & 0o2070, 0o2070, "{:o}", mode(&pm));
    assert_eq!(mode(&pm.join("spool")) & 0o060, 0o060);
    assert_eq!(mode(&pm.join("state/m.json")) & 0o060, 0o060);
    assert_eq!(mode(&pm.join("state/m.json")) & 0o007, 0);
    let m = env.mirror_status(&up, "m");
    assert_eq!(m["update_status"], "finished", "{m}");
}

/// `pushmirror/` made by root (an admin command run with sudo before the guard, a cron job as
/// root) in a repository another user pushes to: the push's "Permission denied ... NOT spooled"
/// names who owns it, who pushes, and the chown that repairs it.
#[test]
fn a_push_denied_by_pushmirror_owned_by_another_user_names_the_repair() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: needs root (CI runs as root)");
        return;
    }
    let env = Env::new();
    env.write_server_config(FAST);
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let (up, _mirror, _wc) = synced_pair(&env);
    let nobody = "65534";
    let home = env.path("nobody-home");
    fs::create_dir_all(&home).unwrap();
    fs::write(home.join("gitconfig"), "[safe]\n\tdirectory = *\n").unwrap();
    let wc = home.join("wc");
    env.git(
        env.dir.path(),
        &["clone", "-q", up.to_str().unwrap(), wc.to_str().unwrap()],
    );
    env.git(&wc, &["checkout", "-q", "-B", "main"]);
    env.commit(&wc, "by nobody");
    assert!(run_quiet("chown", &["-R", nobody, home.to_str().unwrap()]));
    // Everything is the pushing user's but pushmirror/, which stays root's (0700).
    assert!(run_quiet("chown", &["-R", nobody, up.to_str().unwrap()]));
    assert!(run_quiet(
        "chown",
        &["-R", "0", up.join("pushmirror").to_str().unwrap()]
    ));
    let o = env
        .cmd("setpriv")
        .args([
            &format!("--reuid={nobody}"),
            &format!("--regid={nobody}"),
            "--clear-groups",
            "git",
            "-C",
        ])
        .arg(&wc)
        .args(["push", "origin", "main"])
        .env("HOME", &home)
        .env("GIT_CONFIG_GLOBAL", home.join("gitconfig"))
        .env("GIT_PUSHMIRROR_RUNTIME_DIR", home.join("run"))
        .output()
        .unwrap();
    let err = text(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("NOT spooled"), "{err}");
    assert!(
        err.contains("belongs to uid 0") && err.contains(&format!("chown -R {nobody} ")),
        "{err}"
    );
}
