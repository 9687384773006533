//! Reliability promises (spec §3, §4, §9) under injected faults: full and read-only disks, corrupt
//! config and state, SIGKILLed flushers, concurrency slots, load, hostile hook input, symlinks.
//! Real git, real bare repositories; timing is never asserted, everything polls with a generous
//! deadline, and every test ends with the mirror equal to upstream where that applies.

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::*;

// ---------------------------------------------------------------------------------------------
// Helpers

/// A tiny xorshift64* PRNG: reproducible "random" without a crate.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
    fn hex(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from_digit(self.below(16) as u32, 16).unwrap())
            .collect()
    }
}

fn seed() -> u64 {
    std::env::var("PM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        })
}

const FAST: &str =
    "defaults:\n  debounce: 100ms\n  backoff_initial: 100ms\n  backoff_max: 1s\n  timeout: 60s\n";

/// A bare mirror whose pre-receive hook runs `body` (after draining its stdin).
fn hooked_mirror(env: &Env, name: &str, body: &str) -> PathBuf {
    let m = env.bare(name, &[]);
    let hook = m.join("hooks/pre-receive");
    std::fs::write(
        &hook,
        format!("#!/bin/sh\ncat >/dev/null\n{body}\nexit 0\n"),
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    m
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn pm_lines(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter(|l| l.contains("git-pushmirror:"))
        .map(str::to_string)
        .collect()
}

fn sweep(env: &Env) {
    let out = env
        .cmd(bin())
        .arg("sweep")
        .arg("--root")
        .arg(env.dir.path())
        .output()
        .expect("run sweep");
    assert!(
        out.status.success(),
        "sweep failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        stderr_of(&out)
    );
}

/// Waits until every enabled mirror of `up` reports nothing pending and a finished sync.
fn wait_settled(env: &Env, up: &Path) {
    let ok = wait_until(Duration::from_secs(90), || {
        env.status_json(up)["mirrors"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["pending_updates"] == 0 && m["update_status"] == "finished")
    });
    assert!(
        ok,
        "mirrors of {} never settled: {}\nlog:\n{}",
        up.display(),
        env.status_json(up),
        env.log(up)
    );
}

fn kill_flushers(env: &Env) -> usize {
    let pids = flusher_pids(env.dir.path());
    for p in &pids {
        unsafe_kill(*p);
    }
    // Until each is really gone: a killed process still inside a slow system call (an fsync on
    // a loaded machine) holds its flusher lock for a moment, and a sweep started then would
    // take it for a live flusher that will pick up its work.
    let gone = |p: &u32| match std::fs::read_to_string(format!("/proc/{p}/stat")) {
        Err(_) => true,
        Ok(s) => s
            .rsplit(')')
            .next()
            .is_some_and(|r| r.trim_start().starts_with('Z')),
    };
    assert!(
        wait_until(Duration::from_secs(60), || pids.iter().all(gone)),
        "killed flushers {pids:?} did not exit"
    );
    pids.len()
}

/// A mount point unmounted (lazily, so a lingering process cannot keep it) on drop.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    let src = format!("{}/.", from.display());
    assert!(run_quiet("cp", &["-a", &src, to.to_str().unwrap()]));
}

/// Every file under `dir`, with contents: to prove nothing was written there.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let t = e.file_type().unwrap();
            if t.is_dir() {
                stack.push(p.clone());
                out.push((p, Vec::new()));
            } else {
                let bytes = std::fs::read(&p).unwrap_or_default();
                out.push((p, bytes));
            }
        }
    }
    out.sort();
    out
}

// ---------------------------------------------------------------------------------------------
// 1. Full disk

#[test]
fn full_disk_push_succeeds_reports_and_delivers_after_space_is_freed() {
    let env = Env::new();
    env.write_server_config(FAST);
    let mirror = env.bare("mirror.git", &[]);
    let (up, mirror, wc) = synced_pair(&env, mirror);
    let pm = up.join("pushmirror");
    let saved = env.path("saved");
    copy_dir(&pm, &saved);
    if !run_quiet(
        "mount",
        &[
            "-t",
            "tmpfs",
            "-o",
            "size=256k",
            "tmpfs",
            pm.to_str().unwrap(),
        ],
    ) {
        return unavailable("mount -t tmpfs");
    }
    let _mount = Mount(pm.clone());
    copy_dir(&saved, &pm);

    // Fill every byte of it.
    let filler = pm.join("filler");
    {
        let mut f = std::fs::File::create(&filler).unwrap();
        while f.write_all(&[0u8; 4096]).is_ok() {}
        while f.write_all(&[0u8]).is_ok() {}
    }
    // Enough refs that the records cannot fit in the spool's last partial page.
    env.commit(&wc, "while full");
    let mut args = vec!["main".to_string()];
    for i in 0..60 {
        env.git(&wc, &["tag", &format!("full-{i:02}")]);
        args.push(format!("full-{i:02}"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = env.push(&wc, &args);
    let err = stderr_of(&out);
    assert!(
        err.contains("remote: git-pushmirror:") && err.contains("No space left on device"),
        "the pusher was not told about the full disk: {err}"
    );

    // Space is back: the next push (and sync) delivers everything, including the lost updates.
    std::fs::remove_file(&filler).unwrap();
    env.commit(&wc, "after");
    env.push(&wc, &["main"]);
    env.pm_ok(&up, &["sync", "--wait"]);
    env.wait_mirrored(&up, &mirror);
    assert_eq!(env.heads_and_tags(&mirror).len(), 61);
    wait_settled(&env, &up);
    assert!(env.wait_flushers_gone());
}

// ---------------------------------------------------------------------------------------------
// 2. Read-only pushmirror/

#[test]
fn read_only_pushmirror_dir_push_succeeds_reports_and_delivers_after_restore() {
    let env = Env::new();
    env.write_server_config(FAST);
    let mirror = env.bare("mirror.git", &[]);
    let (up, mirror, wc) = synced_pair(&env, mirror);
    let pm = up.join("pushmirror");
    let p = pm.to_str().unwrap();
    // Root ignores permission bits, so a read-only bind mount it is.
    if !run_quiet("mount", &["--bind", p, p]) {
        return unavailable("mount --bind");
    }
    let mount = Mount(pm.clone());
    if !run_quiet("mount", &["-o", "remount,ro,bind", p]) {
        drop(mount);
        return unavailable("mount -o remount,ro,bind");
    }
    env.commit(&wc, "while read-only");
    env.git(&wc, &["branch", "ro-branch"]);
    let out = env.push(&wc, &["main", "ro-branch"]);
    let err = stderr_of(&out);
    let lines = pm_lines(&err);
    assert!(
        !lines.is_empty() && lines.iter().any(|l| l.contains("Read-only file system")),
        "the pusher was not told about the read-only directory: {err}"
    );
    assert!(lines
        .iter()
        .all(|l| l.starts_with("remote: git-pushmirror:")));

    drop(mount);
    env.pm_ok(&up, &["sync", "--wait"]);
    env.wait_mirrored(&up, &mirror);
    assert!(env.refs(&mirror).contains_key("refs/heads/ro-branch"));
    wait_settled(&env, &up);
    assert!(env.wait_flushers_gone());
}

// ---------------------------------------------------------------------------------------------
// 3. Corrupt config and state

#[test]
fn corrupt_config_is_reported_to_pusher_and_status_then_recovers() {
    let env = Env::new();
    env.write_server_config(FAST);
    let mirror = env.bare("mirror.git", &[]);
    let (up, mirror, wc) = synced_pair(&env, mirror);
    let cfg = up.join("pushmirror/config.yaml");
    let good = std::fs::read(&cfg).unwrap();
    std::fs::write(&cfg, "mirrors: [ {{{ : garbage\n\t- ]: :\n\0\u{1}").unwrap();

    env.commit(&wc, "with broken config");
    let out = env.push(&wc, &["main"]);
    let err = stderr_of(&out);
    let lines = pm_lines(&err);
    assert_eq!(lines.len(), 1, "want one clear line, got: {err}");
    assert!(
        lines[0].starts_with("remote: git-pushmirror:") && lines[0].contains("config.yaml"),
        "{err}"
    );

    let st = env.pm(&up, &["status"]);
    assert_ne!(st.status.code(), Some(0));
    let e = stderr_of(&st);
    assert_eq!(
        e.trim().lines().count(),
        1,
        "status error not one line: {e}"
    );
    assert!(e.contains("config.yaml"), "{e}");

    // Nothing was lost meanwhile: fixing the file delivers the push made while it was broken.
    std::fs::write(&cfg, good).unwrap();
    env.pm_ok(&up, &["sync", "--wait"]);
    env.wait_mirrored(&up, &mirror);
    wait_settled(&env, &up);
    assert!(env.wait_flushers_gone());
}

#[test]
fn corrupt_state_file_is_reported_other_mirror_still_syncs_and_delete_resyncs() {
    let env = Env::new();
    env.write_server_config(FAST);
    let up = env.upstream("up.git");
    let a = env.bare("a.git", &[]);
    let b = env.bare("b.git", &[]);
    add_mirror(&env, &up, "a", &a);
    add_mirror(&env, &up, "b", &b);
    let wc = env.clone(&up, "wc");
    env.commit(&wc, "one");
    env.push(&wc, &["main"]);
    env.wait_mirrored(&up, &a);
    env.wait_mirrored(&up, &b);
    assert!(env.wait_flushers_gone());

    let state_a = up.join("pushmirror/state/a.json");
    std::fs::write(&state_a, b"{\"cursor\": 12, garbage\0\xff").unwrap();
    env.commit(&wc, "two");
    env.git(&wc, &["branch", "side"]);
    env.push(&wc, &["main", "side"]);
    env.wait_mirrored(&up, &b);

    let out = env.pm(&up, &["status"]);
    assert_ne!(
        out.status.code(),
        Some(0),
        "status must flag the corrupt state"
    );
    let ma = env.mirror_status(&up, "a");
    let e = ma["last_error"].as_str().unwrap_or_default().to_string();
    assert!(
        e.contains("a.json"),
        "status does not name the state file: {ma}"
    );
    let mb = env.mirror_status(&up, "b");
    assert!(mb["last_error"].is_null(), "{mb}");
    // The flusher neither spins nor lingers on a state file it cannot read.
    assert!(
        env.wait_flushers_gone(),
        "flusher never exited with a corrupt state file; log:\n{}",
        env.log(&up)
    );

    std::fs::remove_file(&state_a).unwrap();
    env.commit(&wc, "three");
    env.push(&wc, &["main"]);
    env.wait_mirrored(&up, &a);
    env.wait_mirrored(&up, &b);
    wait_settled(&env, &up);
    assert!(env.wait_flushers_gone());
}

// ---------------------------------------------------------------------------------------------
// 4. SIGKILL of the flusher

fn state_says(up: &Path, mirror: &str, status: &str) -> bool {
    std::fs::read_to_string(up.join(format!("pushmirror/state/{mirror}.json")))
        .is_ok_and(|s| s.contains(&format!("\"update_status\": \"{status}\"")))
}

#[test]
fn sigkill_right_after_the_spool_was_read_loses_nothing() {
    let env = Env::new();
    env.write_server_config(FAST);
    let mirror = hooked_mirror(&env, "mirror.git", "sleep 2");
    let (up, mirror, wc) = synced_pair(&env, mirror);
    env.commit(&wc, "to be killed");
    env.git(&wc, &["tag", "k1"]);
    env.push(&wc, &["main", "k1"]);
    assert!(wait_until(Duration::from_secs(60), || state_says(
        &up, "m", "started"
    )));
    assert!(kill_flushers(&env) > 0, "no flusher to kill");
    assert!(env.wait_flushers_gone());
    sweep(&env);
    env.wait_mirrored(&up, &mirror);
    wait_settled(&env, &up);
    assert!(env.wait_flushers_gone());
}

#[test]
fn sigkill_during_git_push_loses_nothing() {
    let env = Env::new();
    env.write_server_config(FAST);
    let mark = env.path("receiving");
    let mirror = hooked_mirror(
        &env,
        "mirror.git",
        &format!("touch '{}'\nsleep 1", mark.display()),
    );
    let (up, mirror, wc) = synced_pair(&env, mirror);
    let _ = std::fs::remove_file(&mark);
    env.commit(&wc, "to be killed mid-push");
    env.git(&wc, &["branch", "k2"]);
    env.push(&wc, &["main", "k2"]);
    assert!(wait_until(Duration::from_secs(60), || mark.exists()));
    assert!(kill_flushers(&env) > 0, "no flusher to kill");
    // More work lands while nobody flushes.
    env.commit(&wc, "after the kill");
    env.push(&wc, &["main"]);
    sweep(&env);
    env.wait_mirrored(&up, &mirror);
    wait_settled(&env, &up);
    assert!(env.wait_flushers_gone());
}

#[test]
fn sigkill_at_random_moments_loses_nothing() {
    let env = Env::new();
    env.write_server_config(FAST);
    let mirror = hooked_mirror(&env, "mirror.git", "sleep 0.1");
    let (up, mirror, wc) = synced_pair(&env, mirror);
    let s = seed();
    eprintln!("sigkill_at_random_moments: PM_SEED={s}");
    let mut rng = Rng::new(s);
    let mut killed = 0;
    for i in 0..10 {
        env.commit(&wc, &format!("round {i}"));
        env.git(&wc, &["branch", "-f", &format!("r{i}")]);
        env.push(&wc, &["main", &format!("r{i}")]);
        if i % 3 == 2 {
            env.push(&wc, &[&format!(":refs/heads/r{}", i - 1)]);
        }
        std::thread::sleep(Duration::from_millis(rng.below(301)));
        killed += kill_flushers(&env);
    }
    eprintln!("killed {killed} flusher(s)");
    sweep(&env);
    // A final push as well: whichever comes first, nothing is lost.
    env.wait_mirrored(&up, &mirror);
    wait_settled(&env, &up);
    assert!(env.wait_flushers_gone());
    env.wait_mirrored(&up, &mirror);
}

// ---------------------------------------------------------------------------------------------
// 5. Concurrency slots

/// Max number of overlapping [S, E] intervals in an events file of `S <ns> <repo>` / `E ...`.
fn max_overlap(events: &str) -> (usize, usize) {
    let mut ev: Vec<(u128, i32)> = events
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let kind = it.next()?;
            let t: u128 = it.next()?.parse().ok()?;
            // Ends sort before starts at the same instant: never over-count.
            Some((t, if kind == "S" { 1 } else { -1 }))
        })
        .collect();
    ev.sort();
    let (mut cur, mut max, mut starts) = (0i32, 0i32, 0usize);
    for (_, d) in ev {
        cur += d;
        max = max.max(cur);
        if d > 0 {
            starts += 1;
        }
    }
    (max as usize, starts)
}

/// Repo names whose pre-receive is running now (an S without its E).
fn receiving(events: &str) -> Vec<String> {
    let mut open: std::collections::BTreeMap<String, i32> = Default::default();
    for l in events.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() == 3 {
            *open.entry(f[2].to_string()).or_default() += if f[0] == "S" { 1 } else { -1 };
        }
    }
    open.into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(r, _)| r)
        .collect()
}

#[test]
fn concurrency_slots_bound_mirror_pushes_and_are_not_leaked_by_sigkill() {
    let env = Env::new();
    env.write_server_config(&format!("concurrency: 2\n{FAST}"));
    let events = env.path("events");
    std::fs::write(&events, "").unwrap();
    let n = 12;
    let mut repos = Vec::new();
    for i in 0..n {
        let name = format!("r{i:02}");
        let up = env.upstream(&format!("{name}.git"));
        let ev = events.display();
        let m = hooked_mirror(
            &env,
            &format!("{name}-mirror.git"),
            &format!(
                "echo \"S $(date +%s%N) {name}\" >> '{ev}'\nsleep 1\necho \"E $(date +%s%N) {name}\" >> '{ev}'"
            ),
        );
        add_mirror(&env, &up, "m", &m);
        let wc = env.clone(&up, &format!("{name}-wc"));
        repos.push((name, up, m, wc));
    }
    assert!(env.wait_flushers_gone());
    for (_, _, _, wc) in &repos {
        env.commit(wc, "one");
        env.push(wc, &["main"]);
    }
    for (_, up, m, _) in &repos {
        env.wait_mirrored(up, m);
    }
    let text = std::fs::read_to_string(&events).unwrap();
    let (max, starts) = max_overlap(&text);
    eprintln!("phase 1: {starts} mirror receives, at most {max} at once");
    assert!(starts >= n, "only {starts} receives for {n} repos");
    assert!(
        max <= 2,
        "{max} mirror receives ran at once with concurrency 2"
    );
    assert!(env.wait_flushers_gone());

    // Phase 2: SIGKILL the flushers holding both slots; a leaked slot would starve the rest.
    let before = text.len();
    for (_, _, _, wc) in &repos {
        env.commit(wc, "two");
        env.push(wc, &["main"]);
    }
    let mut victims = Vec::new();
    assert!(wait_until(Duration::from_secs(60), || {
        let t = std::fs::read_to_string(&events).unwrap();
        victims = receiving(&t[before..]);
        victims.len() >= 2
    }));
    for v in &victims {
        let up = &repos.iter().find(|r| &r.0 == v).unwrap().1;
        for pid in flusher_pids(up) {
            unsafe_kill(pid);
        }
    }
    eprintln!("killed the flushers of {victims:?} while they held a slot");
    for (name, up, m, _) in &repos {
        if !victims.contains(name) {
            env.wait_mirrored(up, m);
        }
    }
    // The killed repositories are picked up by the sweep.
    sweep(&env);
    for (_, up, m, _) in &repos {
        env.wait_mirrored(up, m);
        wait_settled(&env, up);
    }
    assert!(env.wait_flushers_gone());
}

// ---------------------------------------------------------------------------------------------
// 6. Load

/// Upstream, mirror, and the working clones of its clients.
type LoadRepo = (PathBuf, PathBuf, Vec<PathBuf>);

fn vm_hwm_kb(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[test]
fn load_many_repos_concurrent_clients_slow_mirror() {
    let n: usize = std::env::var("PM_LOAD_REPOS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let clients = 3;
    let env = Env::new();
    env.write_server_config(&format!("concurrency: 4\n{FAST}"));
    let t0 = std::time::Instant::now();
    let make = |i: usize| {
        let name = format!("l{i:03}");
        let up = env.upstream(&format!("{name}.git"));
        let m = hooked_mirror(&env, &format!("{name}-mirror.git"), "sleep 0.2");
        add_mirror(&env, &up, "m", &m);
        let wcs: Vec<PathBuf> = (0..clients)
            .map(|c| env.clone(&up, &format!("{name}-wc{c}")))
            .collect();
        (up, m, wcs)
    };
    let next = AtomicU64::new(0);
    let mut repos: Vec<(usize, LoadRepo)> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst) as usize;
                        if i >= n {
                            return out;
                        }
                        out.push((i, make(i)));
                    }
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    repos.sort_by_key(|r| r.0);
    eprintln!("load: set up {n} repos in {:?}", t0.elapsed());

    let stop = AtomicBool::new(false);
    let peak_kb = AtomicU64::new(0);
    let peak_count = AtomicU64::new(0);
    let t1 = std::time::Instant::now();
    let next = AtomicU64::new(0);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::SeqCst) {
                let pids = flusher_pids(env.dir.path());
                peak_count.fetch_max(pids.len() as u64, Ordering::SeqCst);
                for p in pids {
                    if let Some(kb) = vm_hwm_kb(p) {
                        peak_kb.fetch_max(kb, Ordering::SeqCst);
                    }
                }
                std::thread::sleep(Duration::from_millis(25));
            }
        });
        let workers: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::SeqCst) as usize;
                    if i >= repos.len() {
                        return;
                    }
                    let (_, (_, _, wcs)) = &repos[i];
                    // Every client of the repo pushes at the same time, twice.
                    std::thread::scope(|s2| {
                        for (c, wc) in wcs.iter().enumerate() {
                            let env = &env;
                            s2.spawn(move || {
                                for round in 0..2 {
                                    env.commit(wc, &format!("c{c} r{round}"));
                                    let b = format!("HEAD:refs/heads/client{c}");
                                    env.push_retrying(wc, &[&b]);
                                }
                            });
                        }
                    });
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        for (_, (up, m, _)) in &repos {
            env.wait_mirrored(up, m);
        }
        stop.store(true, Ordering::SeqCst);
    });
    for (_, (up, m, _)) in &repos {
        assert_eq!(env.heads_and_tags(m).len(), clients, "{}", m.display());
        assert_eq!(env.heads_and_tags(up), env.heads_and_tags(m));
    }
    assert!(env.wait_flushers_gone(), "flushers left behind");
    let kb = peak_kb.load(Ordering::SeqCst);
    eprintln!(
        "load: {n} repos x {clients} clients mirrored in {:?}; peak flusher VmHWM {} KiB ({:.1} MiB); at most {} flushers at once",
        t1.elapsed(),
        kb,
        kb as f64 / 1024.0,
        peak_count.load(Ordering::SeqCst)
    );
    assert!(kb < 200 * 1024, "flusher peak RSS {kb} KiB");
}

// ---------------------------------------------------------------------------------------------
// 7. Hostile input

struct HookRun {
    code: Option<i32>,
    stderr: String,
    /// The hook's own VmHWM once it has consumed all its input (sampled before EOF, since a
    /// child's rusage after exec also counts the parent's memory it was forked from).
    max_rss_kb: u64,
}

/// Runs `git-pushmirror hook post-receive` in `repo` on `input`; measures its peak RSS.
fn run_hook(env: &Env, repo: &Path, input: Vec<u8>) -> HookRun {
    let mut child = env
        .cmd(bin())
        .arg("hook")
        .arg("post-receive")
        .env("GIT_DIR", repo)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    let mut stdin = child.stdin.take().unwrap();
    let _ = stdin.write_all(&input);
    drop(input);
    // All but a pipe's worth is consumed: what it holds now is what the input cost it.
    let mut max_rss_kb = 0;
    for _ in 0..10 {
        max_rss_kb = max_rss_kb.max(vm_hwm_kb(child.id()).unwrap_or(0));
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(stdin);
    let status = child.wait().unwrap();
    let stderr = String::from_utf8_lossy(&reader.join().unwrap()).into_owned();
    assert!(!stderr.contains("panicked"), "the hook panicked: {stderr}");
    HookRun {
        code: status.code(),
        stderr,
        max_rss_kb,
    }
}

/// Ref names of the valid update records in the spool.
fn spooled_refs(repo: &Path) -> Vec<String> {
    let bytes = std::fs::read(repo.join("pushmirror/spool")).unwrap_or_default();
    bytes
        .split(|b| *b == b'\n')
        .filter_map(|l| std::str::from_utf8(l).ok())
        .filter(|l| l.starts_with("v1 "))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f.len() == 9 && f[4] == "u").then(|| f[7].to_string())
        })
        .collect()
}

fn valid_line(rng: &mut Rng, refname: &str) -> Vec<u8> {
    format!("{} {} {refname}\n", rng.hex(40), rng.hex(40)).into_bytes()
}

#[test]
fn hostile_hook_input_never_panics_and_spools_the_valid_lines() {
    let env = Env::new();
    let repo = env.upstream("up.git");
    // The flusher lock held here: the hook sees a flusher running and starts none, so nothing
    // compacts the spool we inspect (silent mode compacts too).
    let pm = repo.join("pushmirror");
    std::fs::create_dir_all(&pm).unwrap();
    std::fs::set_permissions(&pm, std::fs::Permissions::from_mode(0o700)).unwrap();
    let flusher_lock = std::fs::File::create(pm.join("flusher.lock")).unwrap();
    fs2::FileExt::lock_exclusive(&flusher_lock).unwrap();
    let s = seed();
    eprintln!("hostile_hook_input: PM_SEED={s}");
    let mut rng = Rng::new(s);
    let mut want: Vec<String> = Vec::new();
    for iter in 0..60 {
        let mut input = Vec::new();
        let mut expect = Vec::new();
        for n in 0..rng.below(30) {
            let refname = format!("refs/heads/p{iter}-{n}");
            match rng.below(10) {
                0 | 1 => {
                    input.extend(valid_line(&mut rng, &refname));
                    expect.push(refname);
                }
                2 => {
                    // CRLF line endings: the line is still valid.
                    let mut l = valid_line(&mut rng, &refname);
                    l.pop();
                    l.extend(b"\r\n");
                    input.extend(l);
                    expect.push(refname);
                }
                3 => {
                    let len = rng.below(300) as usize;
                    input.extend(rng.bytes(len));
                    input.push(b'\n');
                }
                4 => {
                    let mut l = valid_line(&mut rng, &refname);
                    let at = rng.below(l.len() as u64 - 1) as usize;
                    l[at] = 0;
                    input.extend(l);
                }
                5 => {
                    // A huge line, then a valid one that must survive it.
                    input.extend(std::iter::repeat_n(b'x', 1 << 20));
                    input.push(b'\n');
                    input.extend(valid_line(&mut rng, &refname));
                    expect.push(refname);
                }
                6 => {
                    let bad = [
                        "refs/heads/a..b",
                        "refs/heads/x.lock",
                        "-x",
                        "HEAD",
                        "refs/heads/a b",
                    ];
                    let r = bad[rng.below(bad.len() as u64) as usize];
                    input.extend(format!("{} {} {r}\n", rng.hex(40), rng.hex(40)).into_bytes());
                }
                7 => input
                    .extend(format!("{} {} {refname}\n", rng.hex(64), rng.hex(64)).into_bytes()),
                8 => input.extend(b"\n\r\n \n\0\n"),
                _ => {
                    input.extend(valid_line(&mut rng, &refname));
                    expect.push(refname);
                }
            }
        }
        // Sometimes the input ends without a newline, in the middle of garbage.
        if rng.below(4) == 0 {
            let len = rng.below(100) as usize;
            input.extend(rng.bytes(len).into_iter().filter(|b| *b != b'\n'));
        }
        let r = run_hook(&env, &repo, input);
        assert_eq!(r.code, Some(0), "iteration {iter}: {}", r.stderr);
        assert!(
            r.stderr.lines().count() <= 12,
            "iteration {iter}: the pusher was flooded: {} lines",
            r.stderr.lines().count()
        );
        want.extend(expect);
    }
    let got = spooled_refs(&repo);
    for w in &want {
        assert!(got.contains(w), "valid update of {w} was not spooled");
    }
    assert!(
        got.iter().all(|r| want.contains(r)),
        "something invalid was spooled: {:?}",
        got.iter().filter(|r| !want.contains(r)).collect::<Vec<_>>()
    );
    assert!(env.wait_flushers_gone());
}

#[test]
fn hook_takes_100k_lines_and_endless_lines_in_bounded_memory() {
    let env = Env::new();
    env.write_server_config("silent: true\n");
    let repo = env.upstream("up.git");
    let mut rng = Rng::new(seed());

    let mut input = Vec::new();
    for i in 0..100_000 {
        input.extend(valid_line(&mut rng, &format!("refs/heads/bulk/{i}")));
    }
    let r = run_hook(&env, &repo, input);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let got = spooled_refs(&repo);
    assert_eq!(got.len(), 100_000);
    eprintln!("100k lines: hook peak RSS {} KiB", r.max_rss_kb);
    assert!(r.max_rss_kb < 300 * 1024, "hook RSS {} KiB", r.max_rss_kb);

    // 256 MiB without a newline, then a valid line: memory must not follow the line length.
    let mut input = vec![b'z'; 256 << 20];
    input.push(b'\n');
    input.extend(valid_line(&mut rng, "refs/heads/after-the-flood"));
    let r = run_hook(&env, &repo, input);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    eprintln!("256 MiB line: hook peak RSS {} KiB", r.max_rss_kb);
    assert!(
        r.max_rss_kb < 64 * 1024,
        "an endless line made the hook buffer it: peak RSS {} KiB",
        r.max_rss_kb
    );
    assert!(spooled_refs(&repo).contains(&"refs/heads/after-the-flood".to_string()));
    assert!(env.wait_flushers_gone());
}

#[test]
fn random_garbage_between_spool_records_is_skipped_and_valid_updates_delivered() {
    let env = Env::new();
    env.write_server_config(FAST);
    let mirror = env.bare("mirror.git", &[]);
    let (up, mirror, wc) = synced_pair(&env, mirror);
    let s = seed();
    eprintln!("spool garbage: PM_SEED={s}");
    let mut rng = Rng::new(s);
    // Silent mode holds the updates in the spool while we damage it.
    env.write_server_config(&format!("silent: true\n{FAST}"));
    let spool = up.join("pushmirror/spool");
    for i in 0..6 {
        env.commit(&wc, &format!("g{i}"));
        env.git(&wc, &["branch", "-f", &format!("g{i}")]);
        env.push(&wc, &["main", &format!("g{i}")]);
        assert!(env.wait_flushers_gone());
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&spool)
            .unwrap();
        let len = 1 + rng.below(500) as usize;
        let mut junk = rng.bytes(len);
        if rng.below(2) == 0 {
            junk.push(b'\n');
        }
        f.write_all(&junk).unwrap();
    }
    env.write_server_config(FAST);
    env.commit(&wc, "final");
    env.push(&wc, &["main"]);
    env.wait_mirrored(&up, &mirror);
    for i in 0..6 {
        assert!(env.refs(&mirror).contains_key(&format!("refs/heads/g{i}")));
    }
    wait_settled(&env, &up);
    assert!(env.wait_flushers_gone());
    let log = env.log(&up);
    assert!(
        log.contains("damaged"),
        "the log does not mention the damage:\n{log}"
    );
    assert!(!log.contains("panicked"), "{log}");
}

// ---------------------------------------------------------------------------------------------
// 8. Symlinks

#[test]
fn symlinked_pushmirror_dir_is_refused_and_nothing_written_outside() {
    let env = Env::new();
    env.write_server_config(FAST);
    let mirror = env.bare("mirror.git", &[]);
    let (up, mirror, wc) = synced_pair(&env, mirror);
    let pm = up.join("pushmirror");
    let outside = env.path("outside");
    std::fs::rename(&pm, &outside).unwrap();
    std::os::unix::fs::symlink(&outside, &pm).unwrap();
    let before = snapshot(&outside);

    env.commit(&wc, "through a symlink");
    let out = env.push(&wc, &["main"]);
    let err = stderr_of(&out);
    let lines = pm_lines(&err);
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("remote: git-pushmirror:") && l.contains("symlink")),
        "no remote: line about the symlink: {err}"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(env.wait_flushers_gone());
    assert_eq!(
        snapshot(&outside),
        before,
        "something was written outside the repository"
    );
    // The CLI refuses it as well rather than writing through it.
    let _ = env.pm(&up, &["sync"]);
    assert_eq!(
        snapshot(&outside),
        before,
        "the CLI wrote through the symlink"
    );

    std::fs::remove_file(&pm).unwrap();
    std::fs::rename(&outside, &pm).unwrap();
    env.pm_ok(&up, &["sync", "--wait"]);
    env.wait_mirrored(&up, &mirror);
    assert!(env.wait_flushers_gone());
}

#[test]
fn symlinked_state_log_and_spool_files_are_not_followed_or_overwritten() {
    let env = Env::new();
    env.write_server_config(FAST);
    let mirror = env.bare("mirror.git", &[]);
    let (up, mirror, wc) = synced_pair(&env, mirror);
    let victim_state = env.path("victim-state.json");
    let victim_log = env.path("victim.log");
    let victim_json = b"{\"cursor\": 0, \"update_status\": \"finished\"}".to_vec();
    std::fs::write(&victim_state, &victim_json).unwrap();
    std::fs::write(&victim_log, b"precious\n").unwrap();
    let victim_spool = env.path("victim-spool");
    std::fs::write(&victim_spool, b"precious spool\n").unwrap();

    let state = up.join("pushmirror/state/m.json");
    let log = up.join("pushmirror/log");
    let spool = up.join("pushmirror/spool");
    std::fs::remove_file(&state).unwrap();
    std::fs::remove_file(&log).unwrap();
    let _ = std::fs::remove_file(&spool);
    std::os::unix::fs::symlink(&victim_spool, &spool).unwrap();
    std::os::unix::fs::symlink(&victim_state, &state).unwrap();
    std::os::unix::fs::symlink(&victim_log, &log).unwrap();

    env.commit(&wc, "with planted links");
    env.git(&wc, &["branch", "planted"]);
    env.push(&wc, &["main", "planted"]);
    // Whatever the flusher makes of it, it ends and writes nothing through the links.
    assert!(env.wait_flushers_gone());
    let _ = env.pm(&up, &["status", "--json"]);
    assert_eq!(std::fs::read(&victim_state).unwrap(), victim_json);
    assert_eq!(std::fs::read(&victim_log).unwrap(), b"precious\n");
    assert_eq!(std::fs::read(&victim_spool).unwrap(), b"precious spool\n");

    // Removing the planted links lets the mirror catch up.
    for p in [&state, &log, &spool] {
        if std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink()) {
            std::fs::remove_file(p).unwrap();
        }
    }
    env.pm_ok(&up, &["sync", "--wait"]);
    env.wait_mirrored(&up, &mirror);
    wait_settled(&env, &up);
    assert!(env.wait_flushers_gone());
    assert_eq!(std::fs::read(&victim_state).unwrap(), victim_json);
    assert_eq!(std::fs::read(&victim_log).unwrap(), b"precious\n");
    assert_eq!(std::fs::read(&victim_spool).unwrap(), b"precious spool\n");
}

#[test]
fn mirror_hanging_mid_push_times_out_and_the_retry_delivers() {
    let env = Env::new();
    env.write_server_config(
        "defaults:\n  backoff_initial: 200ms\n  backoff_max: 1s\n  max_attempts: 50\n",
    );
    let up = env.upstream("up.git");
    // The mirror accepts the connection and the pack, then never finishes the receive.
    let mirror = hooked_mirror(&env, "mirror.git", "sleep 613");
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
    let timed_out = || {
        env.mirror_status(&up, "m")["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("push") && e.contains("timed out"))
    };
    assert!(
        wait_until(Duration::from_secs(60), timed_out),
        "{}",
        env.log(&up)
    );
    // The whole process group of the timed-out push is gone, the mirror's hook included.
    assert!(wait_until(Duration::from_secs(10), || !run_quiet(
        "pgrep",
        &["-f", "sleep 613"]
    )));
    // Once the mirror answers again, the backoff retry delivers without any new push.
    std::fs::remove_file(mirror.join("hooks/pre-receive")).unwrap();
    env.wait_mirrored(&up, &mirror);
    wait_settled(&env, &up);
}

#[test]
fn ref_names_with_every_character_git_allows_are_mirrored() {
    let env = Env::new();
    let up = env.upstream("up.git");
    let mirror = env.bare("mirror.git", &[]);
    add_mirror(&env, &up, "m", &mirror);
    let wc = env.clone(&up, "wc");
    env.commit(&wc, "one");
    let names = [
        "ünï/çødé",
        "x@y",
        "q!r#s$t%u&v'w(x)y+z,=;",
        "br{a}ces",
        "quo\"te",
        "back`tick",
        "pi|pe",
        "lt<gt>",
        "emoji-🚀",
        "deep/er/than/you/think",
    ];
    let mut specs = vec!["main".to_string()];
    for n in names {
        env.git(&wc, &["branch", n]);
        env.git(&wc, &["tag", &format!("t-{n}")]);
        specs.push(format!("refs/heads/{n}"));
        specs.push(format!("refs/tags/t-{n}"));
    }
    let specs: Vec<&str> = specs.iter().map(String::as_str).collect();
    env.push(&wc, &specs);
    env.wait_mirrored(&up, &mirror);
    assert_eq!(env.heads_and_tags(&mirror).len(), 1 + 2 * names.len());
    // And their deletion.
    let dels: Vec<String> = names.iter().map(|n| format!(":refs/heads/{n}")).collect();
    let dels: Vec<&str> = dels.iter().map(String::as_str).collect();
    env.push(&wc, &dels);
    env.wait_mirrored(&up, &mirror);
    wait_settled(&env, &up);
}
