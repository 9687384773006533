//! Notifications: the administrator's `notify` command, run when a mirror changes state.
//!
//! Events (decided from the mirror's state before and after a sync is recorded):
//! `failed` (healthy → failed), `gave_up` (the flusher stopped retrying after max_attempts),
//! `recovered` (failed → a successful sync) and `divergent` (refs diverged on the mirror that
//! had not before). One JSON document goes to the command's stdin; nothing of it is put in argv
//! or the environment, and the environment is cleared down to PATH, HOME, USER, LOGNAME, LANG
//! and TZ (the flusher's own may hold a mirror's password_env). The command runs in its own
//! process group under `/bin/sh -c`, in the repository's directory, on a thread of its own, so
//! syncs go on meanwhile; it is bounded by `timeout` (default 30s: SIGTERM to the group, then
//! SIGKILL 2 s later). Its outcome is logged; a failed notification is not retried (the next
//! state change sends a new one).
//!
//! At most `concurrency` (the server file's, default the number of CPUs) notify commands run at
//! once on the server, each holding a `notify-N.lock` slot in the runtime directory (the push
//! slots' mechanism, slots of their own): 40 repositories failing together queue instead of
//! forking 40 commands. One mirror's notifications run one after the other, in the order of
//! its state changes (`failed` is delivered before the `gave_up` that follows it), also across
//! flushers: a flusher does not leave (and release the repository to the next one, whose
//! notifications could overtake its own) while one of its notifications has not finished.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use log::{info, warn};
use serde_json::json;

use crate::paths::RepoPaths;
use crate::state::MirrorState;

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The events between two states of a mirror, most important first.
pub fn events(before: &MirrorState, after: &MirrorState) -> Vec<&'static str> {
    let mut out = Vec::new();
    if before.gave_up_at_seq.is_none() && after.gave_up_at_seq.is_some() {
        out.push("gave_up");
    }
    // `last_error` is set and cleared only when a sync is recorded, so it tells the state before
    // this sync (`update_status` is `started` by then).
    if before.last_error.is_none() && after.last_error.is_some() {
        out.push("failed");
    }
    if !new_divergent(before, after).is_empty() {
        out.push("divergent");
    }
    if before.last_error.is_some() && after.last_error.is_none() {
        out.push("recovered");
    }
    out
}

fn new_divergent<'a>(before: &MirrorState, after: &'a MirrorState) -> Vec<&'a String> {
    after
        .divergent_refs
        .iter()
        .filter(|r| !before.divergent_refs.contains(r))
        .collect()
}

/// The latest notification of each mirror (repository, name): the next one of the same mirror
/// waits for it, so they run in order; `wait_all` joins them (each joined its predecessor).
static LATEST: Mutex<BTreeMap<(PathBuf, String), JoinHandle<()>>> = Mutex::new(BTreeMap::new());

/// Called by the flusher after it saved a mirror's new state: runs the `notify` command when
/// the state changed in a way worth telling (see `events`). Returns at once.
pub fn transition(paths: &RepoPaths, mirror: &str, before: &MirrorState, after: &MirrorState) {
    let evs = events(before, after);
    if evs.is_empty() {
        return;
    }
    let Ok(loaded) = crate::config::load(paths) else {
        return;
    };
    let Some(cfg) = loaded.notify.filter(|n| !n.command.trim().is_empty()) else {
        return;
    };
    let url = loaded
        .mirrors
        .iter()
        .find(|e| e.mirror.name == mirror)
        .map(|e| crate::url::mask(&e.mirror.url));
    let doc = document(paths, mirror, url, &evs, before, after);
    let git_dir = paths.git_dir.clone();
    let name = mirror.to_string();
    let runtime = crate::paths::runtime_dir(loaded.server.runtime_dir.as_deref());
    let limit = loaded.server.concurrency();
    let mut latest = LATEST.lock().unwrap_or_else(|e| e.into_inner());
    latest.retain(|_, h| !h.is_finished());
    let key = (git_dir.clone(), name.clone());
    let before_this = latest.remove(&key);
    let handle = std::thread::spawn(move || {
        if let Some(h) = before_this {
            let _ = h.join();
        }
        let what = format!("notify {name} ({})", evs.join(", "));
        // A runtime directory we cannot use must not cost the notification: it runs unbounded.
        let _slot = crate::slots::acquire_kind(&runtime, "notify", limit)
            .map_err(|e| warn!("{what}: no notify slot ({e}); run without one"))
            .ok();
        let timeout = cfg.timeout.map_or(DEFAULT_TIMEOUT, |d| d.0);
        match run(&cfg.command, &doc, &git_dir, timeout) {
            Ok(ms) => info!("{what}: done in {ms} ms"),
            Err(e) => warn!("{what}: {e} (not retried)"),
        }
    });
    latest.insert(key, handle);
}

/// Whether a notification of this process has not finished yet (running, or waiting for its
/// slot or for the one before it).
pub fn pending() -> bool {
    let mut latest = LATEST.lock().unwrap_or_else(|e| e.into_inner());
    latest.retain(|_, h| !h.is_finished());
    !latest.is_empty()
}

/// Waits for the notifications still running (each is bounded by its timeout): the flusher
/// calls this before it exits.
pub fn wait_all() {
    let handles = std::mem::take(&mut *LATEST.lock().unwrap_or_else(|e| e.into_inner()));
    for h in handles.into_values() {
        let _ = h.join();
    }
}

/// The document on the command's stdin.
pub fn document(
    paths: &RepoPaths,
    mirror: &str,
    masked_url: Option<String>,
    evs: &[&str],
    before: &MirrorState,
    after: &MirrorState,
) -> Vec<u8> {
    let ts = |t: Option<u64>| t.map(crate::time::rfc3339);
    let v = json!({
        "event": evs.first(),
        "events": evs,
        "time": crate::time::rfc3339(crate::time::now_ms()),
        "host": hostname(),
        "repository": crate::text::path_text(&paths.git_dir),
        "mirror": mirror,
        "url": masked_url,
        "update_status": after.update_status.as_str(),
        "healthy": after.last_error.is_none(),
        "last_error": after.last_error,
        "previous_error": before.last_error,
        "consecutive_failures": after.consecutive_failures,
        "gave_up": after.gave_up_at_seq.is_some(),
        "next_retry_at": ts(after.next_retry_at),
        "last_update_started_at": ts(after.last_update_started_at),
        "last_update_at": ts(after.last_update_at),
        "last_successful_update_at": ts(after.last_successful_update_at),
        "divergent_refs": after.divergent_refs,
        "new_divergent_refs": new_divergent(before, after),
        "rejected_refs": after.rejected_refs,
    });
    let mut bytes = serde_json::to_vec_pretty(&v).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Runs `command` with `input` on stdin; Ok(milliseconds) when it exits 0 in time, else one
/// line saying what went wrong (with the first line of what it wrote, if anything).
pub fn run(command: &str, input: &[u8], dir: &Path, timeout: Duration) -> Result<u128, String> {
    use std::os::unix::process::CommandExt;
    let start = Instant::now();
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(command)
        .current_dir(dir)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    cmd.env(
        "PATH",
        std::env::var_os("PATH").unwrap_or_else(|| {
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()
        }),
    );
    for k in ["HOME", "USER", "LOGNAME", "LANG", "TZ"] {
        if let Some(v) = std::env::var_os(k) {
            cmd.env(k, v);
        }
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run /bin/sh: {e}"))?;
    let pgid = child.id() as i32;
    // stdin, stdout and stderr on their own threads: a command that does not read its input, or
    // writes much, cannot block us; the deadline below bounds everything.
    let mut stdin = child.stdin.take();
    let input = input.to_vec();
    std::thread::spawn(move || {
        if let Some(s) = stdin.as_mut() {
            let _ = s.write_all(&input);
        }
    });
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    for stream in [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = stream.take(64 * 1024).read_to_end(&mut buf);
            let _ = tx.send(buf);
        });
    }
    drop(tx);
    let deadline = start + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if Instant::now() >= deadline => break None,
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("waiting for it: {e}")),
        }
    };
    let status = match status {
        Some(s) => s,
        None => {
            unsafe { libc::kill(-pgid, libc::SIGTERM) };
            let grace = Instant::now() + Duration::from_secs(2);
            while Instant::now() < grace && matches!(child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
            let _ = child.wait();
            return Err(format!(
                "timed out after {}; killed",
                crate::time::human(timeout.as_millis() as u64)
            ));
        }
    };
    // What it wrote, for the log (a process it left behind may hold the pipes: wait briefly).
    let mut said = Vec::new();
    while let Ok(b) = rx.recv_timeout(Duration::from_millis(500)) {
        said.extend(b);
    }
    let first = String::from_utf8_lossy(&said)
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        // What a webhook answered may hold terminal escapes: never raw in the log.
        .map(|l| crate::text::one_line(&l.chars().take(200).collect::<String>()));
    if status.success() {
        return Ok(start.elapsed().as_millis());
    }
    let how = match status.code() {
        Some(c) => format!("exited with {c}"),
        None => "killed by a signal".to_string(),
    };
    Err(match first {
        Some(l) => format!("{how}: {l}"),
        None => how,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(err: Option<&str>, gave_up: bool, div: &[&str]) -> MirrorState {
        MirrorState {
            last_error: err.map(String::from),
            gave_up_at_seq: gave_up.then_some(3),
            divergent_refs: div.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn transitions_make_events() {
        let ok = st(None, false, &[]);
        let bad = st(Some("x"), false, &[]);
        assert!(events(&ok, &ok).is_empty());
        assert_eq!(events(&ok, &bad), ["failed"]);
        assert!(
            events(&bad, &bad).is_empty(),
            "a retry failing again says nothing"
        );
        assert_eq!(events(&bad, &st(Some("x"), true, &[])), ["gave_up"]);
        assert_eq!(events(&bad, &ok), ["recovered"]);
        let div = st(Some("d"), false, &["refs/heads/a"]);
        assert_eq!(events(&ok, &div), ["failed", "divergent"]);
        assert!(events(&div, &div).is_empty());
        assert_eq!(
            events(
                &div,
                &st(Some("d"), false, &["refs/heads/a", "refs/heads/b"])
            ),
            ["divergent"]
        );
    }

    #[test]
    fn run_bounds_and_reports() {
        let dir = std::env::temp_dir();
        assert!(run("cat >/dev/null", b"{}", &dir, Duration::from_secs(10)).is_ok());
        let e = run(
            "echo nope >&2; exit 3",
            b"{}",
            &dir,
            Duration::from_secs(10),
        )
        .unwrap_err();
        assert_eq!(e, "exited with 3: nope");
        let e = run(
            "printf 'a \\033[2J\\007b\\rc\\n' >&2; exit 4",
            b"{}",
            &dir,
            Duration::from_secs(10),
        )
        .unwrap_err();
        assert_eq!(e, "exited with 4: a \\x1b[2J\\x07b\\rc");
        let e = run("sleep 30", b"{}", &dir, Duration::from_millis(200)).unwrap_err();
        assert!(e.starts_with("timed out"), "{e}");
    }
}
