//! The performance figures of spec §8, measured against the real release binary with real `git`
//! processes, and printed as one markdown table side by side with the references they are judged
//! against (no hook, the naive `git push --mirror` hook, the spec's targets).
//!
//! Run with `cargo bench --bench push_latency`. Progress goes to stderr; only the table goes to
//! stdout. `BENCH_PUSHES` sets the number of pushes per push-latency scenario (default 200);
//! `GIT_PUSHMIRROR_BIN` names a binary to measure instead of building `target/release`.
//!
//! Nothing here asserts on a timing: the numbers depend on the machine, and a benchmark that
//! fails on a slow CI runner teaches nobody anything. Correctness problems it runs into (a mirror
//! that never gets the commit) are reported in the table and on stderr.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

// The test harness's real sshd (the SSH mirror on loopback), shared rather than copied.
#[path = "../tests/common/servers.rs"]
mod servers;

// Server-wide `status --root` and `metrics` over large fleets.
#[path = "push_latency/fleet.rs"]
mod fleet;

use servers::SshServer;

#[path = "push_latency/lfs.rs"]
mod lfs;
#[path = "push_latency/throttle.rs"]
mod throttle;

const HOOK_RUNS: usize = 500;
const COLD_HOOK_RUNS: usize = 50;
const P2M_RUNS: usize = 20;
const P2M_SSH_RUNS: usize = 10;
const BURST: usize = 100;
const STARTUP_RUNS: usize = 200;
const MANY_MIRRORS: usize = 10;
const NOOP_RUNS: usize = 20;
const MANY_REFS_RUNS: usize = 10;
/// First full copies of [`MANY_REFS`] refs, ours and naive each.
const FIRST_COPY_RUNS: usize = 3;
/// Branches and tags of the many-refs upstream (half each).
const MANY_REFS: usize = 10_000;
/// The upstream holding [`MANY_REFS`] refs; its flusher's memory is reported on its own.
const MANY_REFS_REPO: &str = "refs10k.git";
/// Bound on our first full copy of [`MANY_REFS`] refs (the `--timeout` of that mirror).
const FIRST_COPY_TIMEOUT: &str = "30s";
/// The default minimum interval between two syncs of one mirror (`debounce`), plus a margin: a
/// push-to-mirror sample waits this long after the previous one so the mirror is idle.
const IDLE_GAP: Duration = Duration::from_millis(1100);

fn main() {
    let pushes: usize = std::env::var("BENCH_PUSHES")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(200);
    let bin = binary();
    let b = Bench::new(bin);
    let ssh = start_sshd(&b);
    let mut table = Table::default();
    let started = Instant::now();
    if std::env::var_os("BENCH_ONLY_FLEET").is_some() {
        fleet::fleet(&b, &mut table);
        drop(b);
        table.print();
        return;
    }

    // BENCH_ONLY=throttle: just the rows of issue 12 (push → mirror, coalescing, sweep).
    if std::env::var("BENCH_ONLY").as_deref() == Ok("throttle") {
        throttle::only(&b, ssh.as_ref(), &mut table);
        drop(b);
        drop(ssh);
        table.print();
        return;
    }
    // BENCH_ONLY=lfs runs only the Git LFS rows.
    if std::env::var("BENCH_ONLY").as_deref() == Ok("lfs") {
        lfs::rows(&b, &mut table);
        drop(b);
        table.print();
        return;
    }
    push_latency(&b, ssh.as_ref(), pushes, &mut table);
    hook_alone(&b, &mut table);
    push_to_mirror(&b, &mut table);
    push_to_ssh_mirror(&b, ssh.as_ref(), &mut table);
    coalescing(&b, &mut table);
    noop_sync(&b, ssh.as_ref(), &mut table);
    many_refs_sync(&b, &mut table);
    binary_and_startup(&b, &mut table);
    flusher_memory(&b, &mut table);
    fleet::fleet(&b, &mut table);
    lfs::rows(&b, &mut table);
    throttle::sweep_rows(&b, &mut table);

    eprintln!("bench: done in {:.1} s", started.elapsed().as_secs_f64());
    drop(b); // waits for (or kills) our flushers and removes the temp dir before we print
    drop(ssh); // after the flushers, which may still be talking to it
    table.print();
}

/// The sshd serving the SSH mirrors, its repositories under `<temp dir>/ssh`; or why there is
/// none (the SSH rows then say "skipped: ..." instead of failing the run).
fn start_sshd(b: &Bench) -> Result<SshServer, String> {
    // `have_in(.., false)`: warn and skip even under CI=true, where the tests' `have` panics.
    let missing: Vec<&str> = SshServer::REQUIRES
        .iter()
        .copied()
        .filter(|p| !servers::have_in(p, false))
        .collect();
    if !missing.is_empty() {
        return Err(format!("skipped: {} not installed", missing.join(", ")));
    }
    let root = b.path("ssh");
    // Its panic message (with sshd's log) goes to stderr; the bench goes on without SSH rows.
    std::panic::catch_unwind(|| SshServer::start(&root)).map_err(|_| {
        eprintln!("bench: WARNING: sshd did not start; the SSH rows are skipped");
        "skipped: sshd did not start (see stderr)".to_string()
    })
}

/// The binary to measure: `GIT_PUSHMIRROR_BIN`, or the static release binary exactly as
/// `install.sh` builds and ships it (crt-static, explicit `--target`), so the figures are for what
/// servers run, whatever profile this bench program itself was built with.
fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("GIT_PUSHMIRROR_BIN").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "GIT_PUSHMIRROR_BIN={} is not a file",
            p.display()
        );
        return std::fs::canonicalize(&p).unwrap_or(p);
    }
    const TARGET: &str = "x86_64-unknown-linux-gnu";
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!(
        "bench: static release build (as install.sh) in {}",
        root.display()
    );
    // Cargo's own output stays on stderr: stdout is for the table only.
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--bin",
            "git-pushmirror",
            "--target",
            TARGET,
        ])
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(Stdio::from(std::io::stderr()))
        .status()
        .expect("run cargo build --release");
    assert!(status.success(), "cargo build --release failed");
    // CARGO_TARGET_DIR moves the target directory; honour it like cargo does.
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let target = if target.is_absolute() {
        target
    } else {
        root.join(target)
    };
    let p = target.join(TARGET).join("release").join("git-pushmirror");
    assert!(
        p.is_file(),
        "{} missing after cargo build --release",
        p.display()
    );
    p
}

// ---------------------------------------------------------------------------------------------
// Scenarios

/// Row group 1: wall time of `git push` of one new commit to one branch, for upstreams that
/// differ only in their post-receive hook: none, a trivial one (the floor any hook pays: git's
/// hook plumbing plus one `sh`), the naive `git push --mirror`, ours with 1 and with 10 mirrors;
/// and, with sshd, the naive hook and ours with one SSH mirror on loopback (the naive hook's cost
/// grows with the mirror's distance, here a new SSH connection per push; ours must not).
/// They are measured interleaved (each round makes one commit and pushes it to all of them, in
/// rotating order), so drift in machine load over the run hits every scenario alike, and every
/// push carries exactly one new commit. The flushers of our upstreams stay alive through the loop
/// (pushes come faster than the 1 s debounce) and sync once at the end.
fn push_latency(b: &Bench, ssh: Result<&SshServer, &String>, pushes: usize, table: &mut Table) {
    let nohook = b.bare("nohook.git");
    let trivial = b.bare("trivial.git");
    write_hook(&trivial, "#!/bin/sh\nexit 0\n");
    let naive = b.bare("naive.git");
    let naive_mirror = b.local_target("naive-mirror.git");
    write_naive_hook(&naive, &naive_mirror);
    let hook1 = b.upstream("hook1.git");
    let hook1_mirror = b.local_target("hook1-mirror.git");
    b.add_mirror(&hook1, "m0", &hook1_mirror, &[]);
    let hook10 = b.upstream("hook10.git");
    let mut hook10_mirrors = Vec::new();
    for i in 0..MANY_MIRRORS {
        let m = b.local_target(&format!("hook10-mirror{i}.git"));
        b.add_mirror(&hook10, &format!("m{i}"), &m, &[]);
        hook10_mirrors.push(m);
    }
    let mut names = vec!["nohook", "trivial", "naive", "hook1", "hook10"];
    let mut repos = vec![nohook, trivial, naive, hook1, hook10];
    // The SSH scenarios: their mirrors, the naive one's first.
    let mut ssh_mirrors = Vec::new();
    if let Ok(ssh) = ssh {
        let naive_ssh = b.bare("naive-ssh.git");
        let naive_ssh_mirror = b.ssh_target(ssh, "naive-ssh-mirror.git");
        write_naive_hook(&naive_ssh, &naive_ssh_mirror);
        let hook_ssh = b.upstream("hook-ssh.git");
        let hook_ssh_mirror = b.ssh_target(ssh, "hook-ssh-mirror.git");
        b.add_mirror(&hook_ssh, "ssh", &hook_ssh_mirror, &[]);
        names.extend(["naive-ssh", "hook-ssh"]);
        repos.extend([naive_ssh, hook_ssh]);
        ssh_mirrors = vec![naive_ssh_mirror, hook_ssh_mirror];
    }
    eprintln!(
        "bench: push latency, {pushes} pushes x {} scenarios",
        names.len()
    );

    let wc = b.worktree("wc-latency");
    for (n, r) in names.iter().zip(&repos) {
        b.git(&wc, &["remote", "add", n, path_str(r)]);
    }
    b.commit(&wc, 0);
    for n in &names {
        b.git(&wc, &["push", "-q", n, "main"]);
    }
    // Start measuring from a quiet machine: the seed push and `add` started flushers.
    b.wait_flushers(Duration::from_secs(60));

    let mut samples: Vec<Vec<Duration>> = vec![Vec::with_capacity(pushes); names.len()];
    for round in 0..pushes {
        b.commit(&wc, round + 1);
        for k in 0..names.len() {
            let i = (round + k) % names.len();
            let t = Instant::now();
            let out = b.git_out(&wc, &["push", "-q", names[i], "main"]);
            let d = t.elapsed();
            if !out.status.success() {
                panic!(
                    "push to {} failed: {}",
                    names[i],
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            samples[i].push(d);
        }
    }
    let want = b.git(&wc, &["rev-parse", "HEAD"]);
    eprintln!("bench: push latency measured; waiting for the mirrors to catch up");
    // The naive hooks' mirrors are up to date when the push returns; ours within a debounce.
    let caught_up = |naive: &Target, ours: &[&Target]| {
        let mut ok = rev(b, &naive.dir) == want;
        let deadline = Instant::now() + Duration::from_secs(60);
        for m in ours {
            while rev(b, &m.dir) != want && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            ok &= rev(b, &m.dir) == want;
        }
        ok
    };
    let ours: Vec<&Target> = std::iter::once(&hook1_mirror)
        .chain(&hook10_mirrors)
        .collect();
    let mirrors_ok = caught_up(&naive_mirror, &ours);
    if !mirrors_ok {
        eprintln!(
            "bench: WARNING: a mirror of the push-latency scenarios never got the last commit"
        );
    }
    let ssh_ok = match &ssh_mirrors[..] {
        [naive, ours] => caught_up(naive, &[ours]),
        _ => true,
    };
    if !ssh_ok {
        eprintln!(
            "bench: WARNING: an SSH mirror of the push-latency scenarios never got the last commit"
        );
    }
    b.wait_flushers(Duration::from_secs(60));

    // Added latency is paired: every round pushes the same commit to every scenario, so a
    // scenario's cost over another is taken round by round, and its median and p99 are those of
    // the per-round differences (a difference of two p99s mixes unrelated noise spikes).
    let paired = |i: usize, base: usize| {
        Stats::of_values(
            samples[i]
                .iter()
                .zip(&samples[base])
                .map(|(a, b)| (a.as_secs_f64() - b.as_secs_f64()) * 1000.0)
                .collect(),
        )
    };
    let (nohook, trivial) = (0, 1);
    let added = |i: usize| {
        let p = paired(i, nohook);
        (p.median, p.p99)
    };
    let vs = |i: usize| {
        let a = added(i);
        format!("{} / {} vs no hook", signed_ms(a.0), signed_ms(a.1))
    };
    let vs2 = |i: usize| {
        let p = paired(i, trivial);
        format!(
            "{}; {} / {} vs trivial hook",
            vs(i),
            signed_ms(p.median),
            signed_ms(p.p99)
        )
    };
    let mut stats = samples.iter().cloned().map(Stats::of);
    let mut next = || stats.next().expect("one sample per scenario");
    let (s_nohook, s_trivial, s_naive, s_hook1, s_hook10) =
        (next(), next(), next(), next(), next());
    let ssh_stats = ssh.map(|_| (next(), next()));
    table.stats("push, no hook", &s_nohook, "reference".into());
    table.stats(
        "push, trivial hook (`#!/bin/sh` + `exit 0`): what any post-receive costs",
        &s_trivial,
        vs(trivial),
    );
    table.stats(
        "push, naive hook (sync `git push --mirror`, 1 local mirror)",
        &s_naive,
        vs(2),
    );
    table.stats("push, our hook, 1 mirror", &s_hook1, vs2(3));
    table.stats(
        &format!("push, our hook, {MANY_MIRRORS} mirrors"),
        &s_hook10,
        vs2(4),
    );
    if let Ok((s_naive_ssh, s_hook_ssh)) = &ssh_stats {
        table.stats(
            "push, naive hook (sync `git push --mirror`, 1 SSH mirror on loopback)",
            s_naive_ssh,
            vs(5),
        );
        table.stats(
            "push, our hook, 1 SSH mirror on loopback",
            s_hook_ssh,
            vs2(6),
        );
    }
    let naive_added = added(2);
    table.row(
        "added latency, naive hook",
        s_naive.n,
        signed_ms(naive_added.0),
        signed_ms(naive_added.1),
        "a whole `git push` on every push".into(),
    );
    let naive_ssh_added = ssh_stats.as_ref().map(|_| added(5));
    if let (Ok(a), Ok((s, _))) = (naive_ssh_added, &ssh_stats) {
        table.row(
            "added latency, naive hook, SSH mirror",
            s.n,
            signed_ms(a.0),
            signed_ms(a.1),
            format!(
                "a whole `git push` over a new SSH connection on every push; {} / {} more than \
                 to a local mirror{}",
                signed_ms(a.0 - naive_added.0),
                signed_ms(a.1 - naive_added.1),
                if ssh_ok {
                    ""
                } else {
                    "; MIRRORS NOT UP TO DATE"
                }
            ),
        );
    } else if let Err(why) = ssh {
        table.row(
            "added latency, naive hook, SSH mirror",
            0,
            why.clone(),
            "—".into(),
            "—".into(),
        );
    }
    // What the machine's noise alone gives a hook that does nothing: the floor to judge by.
    let floor = added(trivial);
    let target = |a: (f64, f64), naive: (f64, f64), ok: bool| {
        format!(
            "target p50 < 2 ms, p99 < 10 ms ({}); an `exit 0` hook {} / {}; naive {} / {}{}",
            verdict(a.0 < 2.0, a.1 < 10.0),
            signed_ms(floor.0),
            signed_ms(floor.1),
            signed_ms(naive.0),
            signed_ms(naive.1),
            if ok { "" } else { "; MIRRORS NOT UP TO DATE" }
        )
    };
    for (label, s, i) in [
        ("added latency, our hook, 1 mirror", &s_hook1, 3),
        (
            &*format!("added latency, our hook, {MANY_MIRRORS} mirrors"),
            &s_hook10,
            4,
        ),
    ] {
        let a = added(i);
        table.row(
            label,
            s.n,
            signed_ms(a.0),
            signed_ms(a.1),
            target(a, naive_added, mirrors_ok),
        );
    }
    match (&ssh_stats, naive_ssh_added) {
        (Ok((_, s)), Ok(naive)) => {
            let a = added(6);
            table.row(
                "added latency, our hook, SSH mirror",
                s.n,
                signed_ms(a.0),
                signed_ms(a.1),
                format!(
                    "{}; our hook with a local mirror {} / {}",
                    target(a, naive, ssh_ok),
                    signed_ms(added(3).0),
                    signed_ms(added(3).1)
                ),
            );
        }
        _ => table.row(
            "added latency, our hook, SSH mirror",
            0,
            ssh.err().cloned().unwrap_or_default(),
            "—".into(),
            "—".into(),
        ),
    }
}

/// Row group 1b: the hook's own run time, without git around it: `git-pushmirror hook
/// post-receive` with GIT_DIR set and one ref update on stdin, as receive-pack runs it; then the
/// installed hook file itself, in both forms `install` writes. "Warm": a flusher is already running, so the hook appends and returns — the
/// common case inside a burst. "Cold": no flusher runs, so the hook also starts one (fork, setsid,
/// exec) — the first push after a quiet spell; the mirror there has debounce 0s so its flusher
/// syncs and exits at once and the next run is cold again.
fn hook_alone(b: &Bench, table: &mut Table) {
    eprintln!("bench: hook run time, {HOOK_RUNS} warm runs, {COLD_HOOK_RUNS} cold runs");
    let (warm, warm_mirror, line) = b.upstream_with_commits("hook-warm", &[]);
    // `install` writes `#!<binary> post-receive` (no shell), as here; it falls back to an sh
    // wrapper when another hook is chained or the binary's path cannot stand in a `#!` line (a
    // blank in it, say): that form is measured on a second upstream, installed by a copy of the
    // binary under a directory with a blank in its name.
    let direct = warm.join("hooks").join("post-receive");
    let (warm_sh, warm_sh_mirror, line_sh) = b.upstream_with_commits("hook-warm-sh", &[]);
    let blank_dir = b.path("bin dir");
    std::fs::create_dir_all(&blank_dir).expect("mkdir");
    let copy = blank_dir.join("git-pushmirror");
    std::fs::copy(&b.bin, &copy).expect("copy the binary");
    let out = b
        .cmd(&copy)
        .args(["install", "--repo", path_str(&warm_sh)])
        .output()
        .expect("run install");
    assert!(out.status.success(), "install: {out:?}");
    let wrapper = warm_sh.join("hooks").join("post-receive");
    for (hook, direct_form) in [(&direct, true), (&wrapper, false)] {
        let text = std::fs::read_to_string(hook).expect("read the installed hook");
        let first = text.lines().next().unwrap_or_default();
        assert_eq!(
            first.ends_with(" post-receive"),
            direct_form,
            "{}: {text}",
            hook.display()
        );
    }
    let mut s = Vec::with_capacity(HOOK_RUNS);
    let mut d = Vec::with_capacity(HOOK_RUNS);
    let mut w = Vec::with_capacity(HOOK_RUNS);
    for _ in 0..HOOK_RUNS {
        s.push(b.run_hook(b.cmd(&b.bin).args(["hook", "post-receive"]), &warm, &line));
        d.push(b.run_hook(&mut b.cmd(&direct), &warm, &line));
        w.push(b.run_hook(&mut b.cmd(&wrapper), &warm_sh, &line_sh));
    }
    let warm_stats = Stats::of(s);
    let direct_stats = Stats::of(d);
    let wrapper_stats = Stats::of(w);

    let (cold, cold_mirror, line) = b.upstream_with_commits("hook-cold", &["--debounce", "0s"]);
    let mut s = Vec::with_capacity(COLD_HOOK_RUNS);
    let mut stuck = 0;
    for _ in 0..COLD_HOOK_RUNS {
        if !b.wait_flushers(Duration::from_secs(10)) {
            stuck += 1;
        }
        s.push(b.run_hook(b.cmd(&b.bin).args(["hook", "post-receive"]), &cold, &line));
    }
    let cold_stats = Stats::of(s);
    b.wait_flushers(Duration::from_secs(60));
    for (up, m) in [
        (&warm, &warm_mirror),
        (&warm_sh, &warm_sh_mirror),
        (&cold, &cold_mirror),
    ] {
        if rev(b, m) != rev(b, up) {
            eprintln!(
                "bench: WARNING: mirror {} did not end equal to its upstream",
                m.display()
            );
        }
    }
    table.stats(
        "our hook alone: `hook post-receive`, flusher already running",
        &warm_stats,
        format!(
            "target p50 < 2 ms, p99 < 10 ms ({})",
            verdict(warm_stats.median < 2.0, warm_stats.p99 < 10.0)
        ),
    );
    table.stats(
        "our hook alone, as installed: `hooks/post-receive` = `#!<binary> post-receive`, \
         flusher running",
        &direct_stats,
        format!(
            "{} / {} vs the row above; target p50 < 2 ms, p99 < 10 ms ({})",
            plus(direct_stats.median, warm_stats.median),
            plus(direct_stats.p99, warm_stats.p99),
            verdict(direct_stats.median < 2.0, direct_stats.p99 < 10.0)
        ),
    );
    table.stats(
        "our hook alone, sh wrapper form (chained hook, or a binary path with a blank), flusher \
         running",
        &wrapper_stats,
        format!(
            "{} / {} for the wrapper's `sh` vs `#!` form",
            plus(wrapper_stats.median, direct_stats.median),
            plus(wrapper_stats.p99, direct_stats.p99)
        ),
    );
    table.stats(
        "our hook alone: no flusher running (hook starts one)",
        &cold_stats,
        format!(
            "target p50 < 2 ms, p99 < 10 ms ({}){}",
            verdict(cold_stats.median < 2.0, cold_stats.p99 < 10.0),
            if stuck > 0 {
                format!("; {stuck} runs found a flusher still alive after 10 s")
            } else {
                String::new()
            }
        ),
    );
}

/// How long after `since` the mirror's main held `want`, polled every 5 ms; None if it did not
/// within a minute.
fn arrival(b: &Bench, mirror: &Path, want: &str, since: Instant) -> Option<Duration> {
    let deadline = since + Duration::from_secs(60);
    loop {
        if rev(b, mirror) == want {
            return Some(since.elapsed());
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Row group 2b: the same with an SSH mirror on loopback, where a sync's `ls-remote` and `push`
/// share one SSH connection; next to it, what one `git ls-remote` (one connection) costs here.
fn push_to_ssh_mirror(b: &Bench, ssh: Result<&SshServer, &String>, table: &mut Table) {
    const LABEL: &str = "push → idle SSH mirror on loopback has the commit (default settings)";
    let ssh = match ssh {
        Ok(s) => s,
        Err(why) => {
            table.row(LABEL, 0, why.clone(), "—".into(), "—".into());
            return;
        }
    };
    eprintln!("bench: push-to-SSH-mirror latency, {P2M_SSH_RUNS} pushes");
    let up = b.upstream("p2m-ssh.git");
    let target = b.ssh_target(ssh, "p2m-ssh-mirror.git");
    b.add_mirror(&up, "m", &target, &[]);
    let wc = b.worktree("wc-p2m-ssh");
    b.git(&wc, &["remote", "add", "origin", path_str(&up)]);
    b.commit(&wc, 0);
    b.git(&wc, &["push", "-q", "origin", "main"]);
    b.wait_flushers(Duration::from_secs(60));
    let (mut lat, mut ls, mut missed) = (Vec::new(), Vec::new(), 0);
    for i in 0..P2M_SSH_RUNS {
        b.wait_flushers(Duration::from_secs(30));
        std::thread::sleep(IDLE_GAP);
        ls.push(timed(&mut b.git_to(&up, &["ls-remote"], &target)));
        let want = b.commit(&wc, i + 1);
        b.git(&wc, &["push", "-q", "origin", "main"]);
        let pushed = Instant::now();
        match arrival(b, &target.dir, &want, pushed) {
            Some(d) => lat.push(d),
            None => missed += 1,
        }
    }
    b.wait_flushers(Duration::from_secs(60));
    let ls = Stats::of(ls);
    if lat.is_empty() {
        table.row(
            LABEL,
            0,
            "never".into(),
            "never".into(),
            "no push reached the mirror".into(),
        );
        return;
    }
    let s = Stats::of(lat);
    table.stats(
        LABEL,
        &s,
        format!(
            "one SSH connection for listing and push; one `git ls-remote` over SSH here: {} / \
             {}; target median ≤ that + 100 ms: {}{}",
            ms(ls.median),
            ms(ls.p99),
            if s.median <= ls.median + 100.0 {
                "met"
            } else {
                "MISSED"
            },
            if missed > 0 {
                format!("; {missed} pushes NEVER reached the mirror")
            } else {
                String::new()
            }
        ),
    );
}

/// Row group 2: default settings, one local mirror: from `git push` returning to the mirror's
/// `refs/heads/main` holding the pushed commit, polled every 5 ms. Each sample starts with no
/// flusher running and no sync within the minimum interval (the usual case: pushes are seconds
/// or minutes apart; the mirror is idle and syncs at once), so the same
/// loop also gives the push latency of a push whose hook has to start the flusher, next to a push
/// of the same commit to an upstream without hook made just before it.
fn push_to_mirror(b: &Bench, table: &mut Table) {
    eprintln!("bench: push-to-mirror latency, {P2M_RUNS} pushes (about 1.2 s each)");
    let up = b.upstream("p2m.git");
    let mirror = b.bare("p2m-mirror.git");
    b.pm_ok(&up, &["add", "m", path_str(&mirror)]);
    let reference = b.bare("p2m-nohook.git");
    let wc = b.worktree("wc-p2m");
    b.git(&wc, &["remote", "add", "origin", path_str(&up)]);
    b.git(&wc, &["remote", "add", "nohook", path_str(&reference)]);
    b.commit(&wc, 0);
    b.git(&wc, &["push", "-q", "origin", "main"]);
    b.git(&wc, &["push", "-q", "nohook", "main"]);
    b.wait_flushers(Duration::from_secs(60));
    let status0 = b.mirror_status(&up, "m");

    let mut lat = Vec::new();
    let mut push = Vec::new();
    let mut plain = Vec::new();
    let mut missed = 0;
    for i in 0..P2M_RUNS {
        b.wait_flushers(Duration::from_secs(30));
        std::thread::sleep(IDLE_GAP);
        let want = b.commit(&wc, i + 1);
        // The same commit to an upstream without hook, just before: the reference for this loop.
        let t = Instant::now();
        let out = b.git_out(&wc, &["push", "-q", "nohook", "main"]);
        plain.push(t.elapsed());
        assert!(
            out.status.success(),
            "push failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let t = Instant::now();
        let out = b.git_out(&wc, &["push", "-q", "origin", "main"]);
        let pushed = Instant::now();
        push.push(pushed - t);
        assert!(
            out.status.success(),
            "push failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        match arrival(b, &mirror, &want, pushed) {
            Some(d) => lat.push(d),
            None => missed += 1,
        }
    }
    b.wait_flushers(Duration::from_secs(60));
    let status1 = b.mirror_status(&up, "m");
    let syncs = counter(&status1, "syncs") - counter(&status0, "syncs");
    let (push_stats, plain_stats) = (Stats::of(push), Stats::of(plain));
    table.stats(
        "push, our hook, 1 mirror, no flusher running (first push after a quiet spell)",
        &push_stats,
        format!(
            "{} / {} vs no hook in the same loop ({} / {})",
            plus(push_stats.median, plain_stats.median),
            plus(push_stats.p99, plain_stats.p99),
            ms(plain_stats.median),
            ms(plain_stats.p99)
        ),
    );
    if lat.is_empty() {
        table.row(
            "push → idle mirror has the commit (default settings, local mirror)",
            0,
            "never".into(),
            "never".into(),
            format!("{missed} pushes never reached the mirror"),
        );
        return;
    }
    let s = Stats::of(lat);
    table.stats(
        "push → idle mirror has the commit (default settings, local mirror)",
        &s,
        format!(
            "one sync (leading-edge throttle); target median ≤ 100 ms: {}; GitLab 1–5 min, \
             Gerrit 15 s; {syncs} syncs for {} pushes{}",
            if s.median <= 100.0 { "met" } else { "MISSED" },
            s.n + missed,
            if missed > 0 {
                format!("; {missed} pushes NEVER reached the mirror")
            } else {
                String::new()
            }
        ),
    );
}

/// Row group 3: 100 pushes to one branch back to back (the commits are made beforehand, so the
/// burst is as dense as local `git push` allows), then: how many syncs the mirror got for them, and
/// how long after the last push the mirror had the final value.
fn coalescing(b: &Bench, table: &mut Table) {
    eprintln!("bench: coalescing, {BURST} pushes to one branch");
    let up = b.upstream("coalesce.git");
    let mirror = b.bare("coalesce-mirror.git");
    b.pm_ok(&up, &["add", "m", path_str(&mirror)]);
    let wc = b.worktree("wc-coalesce");
    b.git(&wc, &["remote", "add", "origin", path_str(&up)]);
    b.commit(&wc, 0);
    b.git(&wc, &["push", "-q", "origin", "main"]);
    b.wait_flushers(Duration::from_secs(60));
    let status0 = b.mirror_status(&up, "m");
    let commits: Vec<String> = (0..BURST).map(|i| b.commit(&wc, i + 1)).collect();

    let t0 = Instant::now();
    let mut push = Vec::new();
    for c in &commits {
        let t = Instant::now();
        let out = b.git_out(
            &wc,
            &["push", "-q", "origin", &format!("{c}:refs/heads/main")],
        );
        push.push(t.elapsed());
        assert!(
            out.status.success(),
            "push failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let last = Instant::now();
    let burst = last - t0;
    let want = commits.last().unwrap();
    let mut reached = None;
    while last.elapsed() < Duration::from_secs(60) {
        if rev(b, &mirror) == *want {
            reached = Some(last.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    b.wait_flushers(Duration::from_secs(60));
    let status1 = b.mirror_status(&up, "m");
    let syncs = counter(&status1, "syncs") - counter(&status0, "syncs");
    let pushes = counter(&status1, "pushes") - counter(&status0, "pushes");
    let final_ok = rev(b, &mirror) == *want;
    // Leading-edge throttle, default interval 1 s: the burst's first sync, one per interval
    // during it, and one for what landed after the last of those started.
    let bound = 2 + burst.as_millis().div_ceil(1000) as i64;
    let ps = Stats::of(push);
    table.row(
        &format!(
            "coalescing: {BURST} back-to-back pushes to main, whole burst (per push: median/p99)"
        ),
        BURST,
        format!("{} ({} / push)", secs(burst), ms(ps.median)),
        ms(ps.p99),
        "spec: 100 pushes within a second (local `git push` alone cannot go that fast)".into(),
    );
    table.row(
        &format!("coalescing: syncs of the mirror for {BURST} pushes"),
        BURST,
        format!(
            "{syncs} sync{} ({pushes} with a push)",
            if syncs == 1 { "" } else { "s" }
        ),
        "—".into(),
        format!(
            "target ≤ 1 + ⌈burst / 1 s⌉ + 1 = {bound} syncs ({}); final value on mirror: {}",
            if syncs <= bound { "met" } else { "MISSED" },
            if final_ok { "yes" } else { "NO" }
        ),
    );
    table.row(
        "coalescing: last push → mirror has the final value",
        1,
        reached.map_or("never".into(), secs),
        "—".into(),
        "at most the 1 s minimum interval + one `git push`".into(),
    );
}

/// Row group 5: the cost of a sync with nothing to send (spec §8), for a local mirror and an SSH
/// mirror on loopback that are already up to date. Measured two ways: what the user waits for,
/// the wall time of `git-pushmirror sync NAME --wait` (request spooled, flusher started, sync,
/// state polled); and the sync itself as the flusher recorded it in the mirror's state file
/// (started → finished: `git ls-remote` of the mirror, the upstream's refs, the plan, and no
/// `git push` at all). The references, in the same loop: `git ls-remote` of the mirror (the
/// floor: a no-op sync must at least list the mirror) and a no-op `git push --mirror` from the
/// upstream (what the naive hook would pay). Every sample waits for the flushers first, so each
/// sync is a cold request (the usual case for "Update now"), and no flusher winds down during a
/// reference measurement; the three measurements rotate their order per sample.
fn noop_sync(b: &Bench, ssh: Result<&SshServer, &String>, table: &mut Table) {
    eprintln!("bench: no-op sync, {NOOP_RUNS} runs per mirror");
    let up = b.upstream("noop.git");
    let mut mirrors = vec![("local mirror", "local", b.local_target("noop-local.git"))];
    if let Ok(ssh) = ssh {
        mirrors.push(("SSH mirror", "ssh", b.ssh_target(ssh, "noop-ssh.git")));
    }
    for (_, name, t) in &mirrors {
        b.add_mirror(&up, name, t, &[]);
    }
    let wc = b.worktree("wc-noop");
    b.git(&wc, &["remote", "add", "origin", path_str(&up)]);
    let want = b.commit(&wc, 0);
    b.git(&wc, &["push", "-q", "origin", "main"]);
    for (_, name, _) in &mirrors {
        b.sync_wait(&up, name);
    }
    b.wait_flushers(Duration::from_secs(60));

    for (label, name, t) in &mirrors {
        let (mut wall, mut recorded, mut ls, mut push) = (vec![], vec![], vec![], vec![]);
        let mut sent = 0;
        for i in 0..NOOP_RUNS {
            for k in 0..3 {
                b.wait_flushers(Duration::from_secs(30));
                match (i + k) % 3 {
                    0 => {
                        let (w, r, refs) = b.sync_wait(&up, name);
                        wall.push(w);
                        recorded.push(r);
                        sent += refs;
                    }
                    1 => ls.push(timed(&mut b.git_to(&up, &["ls-remote"], t))),
                    _ => push.push(timed(&mut b.git_to(
                        &up,
                        &["push", "--quiet", "--mirror"],
                        t,
                    ))),
                }
            }
        }
        let ok = rev(b, &t.dir) == want && sent == 0;
        if !ok {
            eprintln!(
                "bench: WARNING: no-op sync, {label}: mirror main is not {want}, or a sync sent \
                 {sent} refs"
            );
        }
        let (wall, recorded) = (Stats::of(wall), Stats::of(recorded));
        let (ls, push) = (Stats::of(ls), Stats::of(push));
        let refs = format!(
            "vs `git ls-remote` {} / {}, vs no-op `git push --mirror` {} / {}{}",
            plus(recorded.median, ls.median),
            plus(recorded.p99, ls.p99),
            plus(recorded.median, push.median),
            plus(recorded.p99, push.p99),
            if ok { "" } else { "; NOT A NO-OP (see stderr)" }
        );
        // The target cannot be met where one `git ls-remote` alone takes longer (an SSH
        // connection here): the row then says so instead of a bare MISSED.
        let floor = ls.median >= 50.0;
        let target = |s: &Stats| {
            format!(
                "target < 50 ms on loopback ({}{})",
                verdict(s.median < 50.0, s.p99 < 50.0),
                if floor {
                    format!(
                        "; below the floor: the `git ls-remote` any sync needs takes {} here",
                        ms(ls.median)
                    )
                } else {
                    String::new()
                }
            )
        };
        table.stats(
            &format!(
                "no-op sync, {label}: `sync {name} --wait` wall time (cold: starts a flusher)"
            ),
            &wall,
            format!(
                "{}; {} / {} vs the sync as recorded",
                target(&wall),
                plus(wall.median, recorded.median),
                plus(wall.p99, recorded.p99)
            ),
        );
        table.stats(
            &format!("no-op sync, {label}: the sync as the flusher recorded it (ms resolution)"),
            &recorded,
            format!("{}; {refs}", target(&recorded)),
        );
        table.stats(
            &format!("no-op sync, {label}: reference `git ls-remote`"),
            &ls,
            "the listing every sync starts with".into(),
        );
        table.stats(
            &format!("no-op sync, {label}: reference no-op `git push --mirror`"),
            &push,
            "what the naive hook pays when nothing changed".into(),
        );
    }
    if let Err(why) = ssh {
        table.row(
            "no-op sync, SSH mirror",
            0,
            why.clone(),
            "—".into(),
            "—".into(),
        );
    }
}

/// Row group 6: an upstream holding 10,000 refs (5,000 branches, 5,000 lightweight tags, all
/// packed, pointing at a handful of commits), against the naive `git push --mirror`.
///
/// First the full copy to an empty mirror: our first sync after `add` (with a
/// [`FIRST_COPY_TIMEOUT`] bound, so a sync that cannot finish costs the run that much and no
/// more; the mirror is removed afterwards) against the first `git push --mirror` to another empty
/// mirror. Our mirror for the rest is then seeded by `git push --mirror` and added, so its first
/// sync is a full comparison with nothing to send.
///
/// Then per sample the upstream's main moves to a new commit by plumbing (`commit-tree` +
/// `update-ref`, which runs no hook, so no flusher starts behind our back); our `sync m --wait`
/// (wall time, and the sync as recorded in the state file) and the naive push run, alternating
/// which goes first, each with no flusher running; then one `git ls-remote` of our mirror, the
/// cost of listing its 10,000 refs once. Our sync lists the mirror, reads the upstream's refs,
/// plans, and pushes one ref; `git push --mirror` lists the mirror too (the ref advertisement)
/// and sends one ref, so the gap between them should be about one listing.
fn many_refs_sync(b: &Bench, table: &mut Table) {
    eprintln!("bench: sync with {MANY_REFS} refs, {MANY_REFS_RUNS} runs");
    let up = b.upstream(MANY_REFS_REPO);
    let tree = b.git(&up, &["mktree"]);
    let mut commits = vec![b.git(&up, &["commit-tree", &tree, "-m", "commit 0"])];
    for i in 1..5 {
        let (msg, parent) = (format!("commit {i}"), &commits[i - 1]);
        let c = b.git(&up, &["commit-tree", &tree, "-p", parent, "-m", &msg]);
        commits.push(c);
    }
    let mut input = String::with_capacity(MANY_REFS * 64);
    for i in 0..MANY_REFS / 2 {
        let branch = if i == 0 {
            "main".to_string()
        } else {
            format!("branch-{i:04}")
        };
        let c = &commits[i % commits.len()];
        input.push_str(&format!("create refs/heads/{branch} {c}\n"));
        input.push_str(&format!("create refs/tags/v{i:04} {c}\n"));
    }
    b.git_stdin(&up, &["update-ref", "--stdin"], &input);
    b.git(&up, &["pack-refs", "--all", "--prune"]);
    let count = |t: &Target| {
        b.git(&t.dir, &["for-each-ref", "--format=x"])
            .lines()
            .count()
    };

    // The first full copy, ours and naive, alternating (which one goes first flips every run):
    // the mirror's side (10,000 new loose refs) dominates and varies a lot with the disk.
    eprintln!(
        "bench: {MANY_REFS} refs: first full copy, {FIRST_COPY_RUNS} runs each (ours bounded by \
         {FIRST_COPY_TIMEOUT})"
    );
    let (mut ours_first, mut naive_first) = (Vec::new(), Vec::new());
    let mut first_problem: Option<String> = None;
    let mut first_counts = (0u64, 0usize);
    // The last naive copy is the naive mirror of the one-branch-moved samples below.
    let mut naive_copy: Option<Target> = None;
    for run in 0..FIRST_COPY_RUNS {
        for k in 0..2 {
            if (run + k) % 2 == 0 {
                let fresh = b.local_target(&format!("refs10k-fresh{run}.git"));
                let t = Instant::now();
                b.add_mirror(&up, "fresh", &fresh, &["--timeout", FIRST_COPY_TIMEOUT]);
                let first = b.first_sync(&up, "fresh", Duration::from_secs(120));
                let wall = t.elapsed();
                // Before its retry starts (the first backoff is about a second).
                b.pm_ok(&up, &["remove", "fresh"]);
                match &first {
                    Some(st) if st["update_status"] == "finished" => {
                        let (d, n) = b.last_sync_of(st);
                        ours_first.push(d);
                        first_counts = (n, count(&fresh));
                    }
                    Some(st) => {
                        first_problem = Some(format!(
                            "FAILED after {}: {}; {} refs reached the mirror",
                            secs(wall),
                            st["last_error"].as_str().unwrap_or("?"),
                            count(&fresh)
                        ))
                    }
                    None => first_problem = Some(format!("no result after {}", secs(wall))),
                }
                b.wait_flushers(Duration::from_secs(120));
            } else {
                let naive = b.local_target(&format!("refs10k-naive{run}.git"));
                naive_first.push(timed(&mut b.git_to(
                    &up,
                    &["push", "--quiet", "--mirror"],
                    &naive,
                )));
                naive_copy = Some(naive);
            }
        }
    }
    let naive_first = Stats::of(naive_first);
    let naive = naive_copy.expect("FIRST_COPY_RUNS > 0");
    match (&first_problem, ours_first.is_empty()) {
        (Some(p), _) => table.row(
            &format!(
                "{MANY_REFS} refs, first full copy to an empty mirror: our first sync after `add`"
            ),
            FIRST_COPY_RUNS,
            "did not finish".into(),
            "—".into(),
            format!("timeout {FIRST_COPY_TIMEOUT}: {p}"),
        ),
        (None, false) => {
            let ours = Stats::of(ours_first);
            table.stats(
                &format!(
                    "{MANY_REFS} refs, first full copy to an empty mirror: our first sync after \
                     `add`, as recorded (median / max)"
                ),
                &ours,
                format!(
                    "{:.2}× naive; {} refs sent, {} on the mirror",
                    ours.median / naive_first.median,
                    first_counts.0,
                    first_counts.1
                ),
            );
        }
        (None, true) => {}
    }
    table.stats(
        &format!("{MANY_REFS} refs, first full copy to an empty mirror: `git push --mirror`"),
        &naive_first,
        "reference".into(),
    );

    // Our mirror for the samples: seeded, then added (a first sync with nothing to send).
    let mirror = b.local_target("refs10k-mirror.git");
    b.git(&up, &["push", "--quiet", "--mirror", &mirror.url]);
    b.add_mirror(&up, "m", &mirror, &[]);
    let seeded = b.first_sync(&up, "m", Duration::from_secs(120));
    b.wait_flushers(Duration::from_secs(120));
    let (n_ours, n_naive) = (count(&mirror), count(&naive));
    if n_ours != MANY_REFS || n_naive != MANY_REFS {
        eprintln!(
            "bench: WARNING: our mirror holds {n_ours} refs and the naive one {n_naive}, not \
             {MANY_REFS}"
        );
    }
    if let Some(st) = seeded.filter(|st| st["update_status"] == "finished") {
        let (d, n) = b.last_sync_of(&st);
        table.row(
            &format!(
                "{MANY_REFS} refs, first sync after `add` to a mirror already holding them, as \
                 recorded"
            ),
            1,
            ms(d.as_secs_f64() * 1000.0),
            "—".into(),
            format!("a full comparison; {n} refs sent"),
        );
    } else {
        eprintln!(
            "bench: WARNING: {MANY_REFS} refs: the seeded mirror's first sync did not finish"
        );
    }

    let (mut wall, mut recorded, mut push, mut ls) = (vec![], vec![], vec![], vec![]);
    let mut sent = Vec::new();
    let mut head = commits.last().cloned().unwrap_or_default();
    for i in 0..MANY_REFS_RUNS {
        let msg = format!("move {i}");
        head = b.git(&up, &["commit-tree", &tree, "-p", &head, "-m", &msg]);
        b.git(&up, &["update-ref", "refs/heads/main", &head]);
        for k in 0..2 {
            b.wait_flushers(Duration::from_secs(60));
            if (i + k) % 2 == 0 {
                let (w, r, refs) = b.sync_wait(&up, "m");
                wall.push(w);
                recorded.push(r);
                sent.push(refs);
            } else {
                push.push(timed(&mut b.git_to(
                    &up,
                    &["push", "--quiet", "--mirror"],
                    &naive,
                )));
            }
        }
        b.wait_flushers(Duration::from_secs(60));
        ls.push(timed(&mut b.git_to(&up, &["ls-remote"], &mirror)));
    }
    let ok = rev(b, &mirror.dir) == head && rev(b, &naive.dir) == head;
    if !ok || sent.iter().any(|n| *n != 1) {
        eprintln!(
            "bench: WARNING: {MANY_REFS} refs: a mirror's main is not {head}, or a sync did not \
             send exactly one ref (refs sent per sync: {sent:?})"
        );
    }
    let (wall, recorded) = (Stats::of(wall), Stats::of(recorded));
    let (push, ls) = (Stats::of(push), Stats::of(ls));
    let flag = if ok { "" } else { "; MIRRORS NOT UP TO DATE" };
    table.stats(
        &format!("{MANY_REFS} refs, one branch moved: `sync m --wait` wall time"),
        &wall,
        format!(
            "{} / {} vs naive `git push --mirror`{flag}",
            plus(wall.median, push.median),
            plus(wall.p99, push.p99)
        ),
    );
    table.stats(
        &format!("{MANY_REFS} refs, one branch moved: our sync as the flusher recorded it"),
        &recorded,
        format!(
            "{} / {} vs naive `git push --mirror`",
            plus(recorded.median, push.median),
            plus(recorded.p99, push.p99)
        ),
    );
    table.stats(
        &format!("{MANY_REFS} refs, one branch moved: naive `git push --mirror`"),
        &push,
        "reference".into(),
    );
    table.stats(
        &format!("{MANY_REFS} refs: `git ls-remote` of the mirror"),
        &ls,
        "reference: listing the mirror once".into(),
    );
    let ratio = (recorded.median / push.median, recorded.p99 / push.p99);
    table.row(
        &format!("{MANY_REFS} refs: ours (as recorded) / naive"),
        recorded.n,
        format!("{:.2}×", ratio.0),
        format!("{:.2}×", ratio.1),
        format!(
            "target within 1.5× ({}); wall time / naive {:.2}× / {:.2}×",
            verdict(ratio.0 <= 1.5, ratio.1 <= 1.5),
            wall.median / push.median,
            wall.p99 / push.p99
        ),
    );
    let gap = (
        diff(recorded.median, push.median),
        diff(recorded.p99, push.p99),
    );
    table.row(
        &format!("{MANY_REFS} refs: ours (as recorded) − naive"),
        recorded.n,
        signed_ms(gap.0),
        signed_ms(gap.1),
        format!(
            "target ≤ one `git ls-remote` ({} / {}): {}",
            ms(ls.median),
            ms(ls.p99),
            verdict(gap.0 <= ls.median, gap.1 <= ls.p99)
        ),
    );
}

/// Row group 7: the flusher's own peak resident set size (`ru_maxrss`, the git processes it runs
/// not counted), from the `flusher exiting; peak RSS N KiB` line every flusher logs into its
/// repository's `pushmirror/log` when it exits. Read once every flusher of the run has exited:
/// every upstream but the 10,000-ref one together, and that one on its own.
fn flusher_memory(b: &Bench, table: &mut Table) {
    if !b.wait_flushers(Duration::from_secs(60)) {
        eprintln!("bench: WARNING: flushers still running; their peak RSS is not counted");
    }
    let (mut plain, mut many) = (Vec::new(), Vec::new());
    let mut repos = (0, 0);
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(b.dir.path())
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    dirs.sort();
    for dir in dirs {
        let mut peaks = Vec::new();
        for log in ["log.1", "log"] {
            let text =
                std::fs::read_to_string(dir.join("pushmirror").join(log)).unwrap_or_default();
            peaks.extend(text.lines().filter_map(|l| {
                let rest = l.split("flusher exiting; peak RSS ").nth(1)?;
                rest.strip_suffix(" KiB")?.trim().parse::<u64>().ok()
            }));
        }
        if peaks.is_empty() {
            continue;
        }
        if dir.file_name().is_some_and(|n| n == MANY_REFS_REPO) {
            repos.1 += 1;
            many.extend(peaks);
        } else {
            repos.0 += 1;
            plain.extend(peaks);
        }
    }
    for (label, peaks, n_repos) in [
        ("flusher peak RSS, every other scenario", plain, repos.0),
        (
            &*format!("flusher peak RSS, the {MANY_REFS}-ref upstream"),
            many,
            repos.1,
        ),
    ] {
        let Some(max) = peaks.iter().max().copied() else {
            table.row(
                label,
                0,
                "no `peak RSS` line in any log".into(),
                "—".into(),
                "is the binary older than the peak RSS log line?".into(),
            );
            continue;
        };
        let s = Stats::of_values(peaks.iter().map(|k| *k as f64).collect());
        table.row(
            label,
            s.n,
            kib(s.median as u64),
            kib(s.p99 as u64),
            format!(
                "max {} over {} flusher runs in {n_repos} repositories; the flusher alone, \
                 git children not counted",
                kib(max),
                s.n
            ),
        );
    }
}

/// Row group 4: the release binary's size, and its start-up time (`--version`, which parses the
/// command line and exits) against `git --version` measured alongside.
fn binary_and_startup(b: &Bench, table: &mut Table) {
    eprintln!("bench: binary size and start-up, {STARTUP_RUNS} runs each");
    let size = std::fs::metadata(&b.bin).map(|m| m.len()).unwrap_or(0);
    let linking = match elf_interpreter(&b.bin) {
        Some(true) => "dynamically linked (ELF interpreter present)",
        Some(false) => "statically linked",
        None => "not an ELF file?",
    };
    let mut ours = Vec::new();
    let mut git = Vec::new();
    let mut floor = Vec::new();
    for _ in 0..STARTUP_RUNS {
        ours.push(timed(b.cmd(&b.bin).arg("--version")));
        git.push(timed(b.cmd("git").arg("--version")));
        floor.push(timed(&mut b.cmd("true")));
    }
    let (ours, git, floor) = (Stats::of(ours), Stats::of(git), Stats::of(floor));
    table.row(
        &format!("release binary size ({linking})"),
        1,
        format!("{size} bytes ({:.2} MiB)", size as f64 / (1024.0 * 1024.0)),
        "—".into(),
        "—".into(),
    );
    table.stats(
        "start-up: `git-pushmirror --version`",
        &ours,
        format!(
            "`git --version`: {} / {}; spawning `true` (the floor): {} / {}",
            ms(git.median),
            ms(git.p99),
            ms(floor.median),
            ms(floor.p99)
        ),
    );
}

// ---------------------------------------------------------------------------------------------
// The world the scenarios run in

/// A temp dir with its own server config and runtime dir, and the isolation every child gets.
/// Dropping it waits for the flushers it started (up to 30 s), kills any left, then removes the
/// temp dir.
struct Bench {
    bin: PathBuf,
    server_config: PathBuf,
    runtime: PathBuf,
    dir: tempfile::TempDir,
}

impl Bench {
    fn new(bin: PathBuf) -> Bench {
        let dir = tempfile::Builder::new()
            .prefix("pm-bench-")
            .tempdir()
            .expect("temp dir");
        let server_config = dir.path().join("server.yaml");
        std::fs::write(&server_config, "").expect("write server config");
        let runtime = dir.path().join("run");
        std::fs::create_dir(&runtime).expect("runtime dir");
        eprintln!(
            "bench: binary {}, temp dir {}",
            bin.display(),
            dir.path().display()
        );
        Bench {
            bin,
            server_config,
            runtime,
            dir,
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn cmd(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(program);
        for k in [
            "GIT_DIR",
            "GIT_WORK_TREE",
            "GIT_INDEX_FILE",
            "GIT_OBJECT_DIRECTORY",
            "GIT_NAMESPACE",
        ] {
            c.env_remove(k);
        }
        c.env("GIT_PUSHMIRROR_CONFIG", &self.server_config)
            .env("GIT_PUSHMIRROR_RUNTIME_DIR", &self.runtime)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "Bench")
            .env("GIT_AUTHOR_EMAIL", "bench@example.com")
            .env("GIT_COMMITTER_NAME", "Bench")
            .env("GIT_COMMITTER_EMAIL", "bench@example.com")
            .env("GIT_TERMINAL_PROMPT", "0")
            .stdin(Stdio::null());
        c
    }

    fn git_out(&self, dir: &Path, args: &[&str]) -> std::process::Output {
        self.cmd("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .expect("run git")
    }

    fn git(&self, dir: &Path, args: &[&str]) -> String {
        let out = self.git_out(dir, args);
        assert!(
            out.status.success(),
            "git {args:?} in {} failed: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn pm_ok(&self, repo: &Path, args: &[&str]) -> String {
        let out = self
            .cmd(&self.bin)
            .arg("--repo")
            .arg(repo)
            .args(args)
            .output()
            .expect("run git-pushmirror");
        assert!(
            out.status.success(),
            "git-pushmirror {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn mirror_status(&self, repo: &Path, name: &str) -> serde_json::Value {
        let out = self
            .cmd(&self.bin)
            .arg("--repo")
            .arg(repo)
            .args(["status", "--json"])
            .output()
            .expect("run status");
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "status --json: {e}: {}",
                String::from_utf8_lossy(&out.stdout)
            )
        });
        doc["mirrors"]
            .as_array()
            .and_then(|ms| ms.iter().find(|m| m["name"] == name).cloned())
            .unwrap_or_else(|| panic!("no mirror {name} in status: {doc}"))
    }

    fn bare(&self, name: &str) -> PathBuf {
        let p = self.path(name);
        self.init_bare(&p);
        p
    }

    fn init_bare(&self, p: &Path) {
        self.git(
            self.dir.path(),
            &["init", "-q", "--bare", "-b", "main", path_str(p)],
        );
    }

    /// A bare mirror repository reached by its local path.
    fn local_target(&self, name: &str) -> Target {
        let dir = self.bare(name);
        Target {
            url: path_str(&dir).to_string(),
            dir,
            add_opts: Vec::new(),
            ssh_command: None,
        }
    }

    /// A bare mirror repository under the sshd's root, reached as `ssh://...@127.0.0.1:PORT/...`
    /// with the server's client key and known_hosts.
    fn ssh_target(&self, ssh: &SshServer, name: &str) -> Target {
        let dir = ssh.root.join(name);
        self.init_bare(&dir);
        Target {
            dir,
            url: ssh.url(name),
            add_opts: vec![
                "--ssh-key".into(),
                path_str(&ssh.client_key).into(),
                "--known-hosts".into(),
                path_str(&ssh.known_hosts).into(),
            ],
            ssh_command: Some(ssh.ssh_command()),
        }
    }

    /// `git-pushmirror add NAME URL` for the target, with its auth options and `opts`.
    fn add_mirror(&self, up: &Path, name: &str, t: &Target, opts: &[&str]) {
        let mut args = vec!["add", name, &t.url];
        args.extend(t.add_opts.iter().map(String::as_str));
        args.extend_from_slice(opts);
        self.pm_ok(up, &args);
    }

    /// `git -C DIR ARGS... URL` against a mirror, with its SSH command when it has one.
    fn git_to(&self, dir: &Path, args: &[&str], t: &Target) -> Command {
        let mut c = self.cmd("git");
        c.arg("-C").arg(dir).args(args).arg(&t.url);
        if let Some(ssh) = &t.ssh_command {
            c.env("GIT_SSH_COMMAND", ssh);
        }
        c
    }

    /// `git ARGS` in `dir` with `input` on stdin; returns stdout.
    fn git_stdin(&self, dir: &Path, args: &[&str], input: &str) -> String {
        let mut child = self
            .cmd("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run git");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write git stdin");
        let out = child.wait_with_output().expect("wait git");
        assert!(
            out.status.success(),
            "git {args:?} in {} failed: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// `sync NAME --wait` as a user runs it (a cold request when no flusher runs). Returns its
    /// wall time, and [`Bench::last_sync`].
    fn sync_wait(&self, up: &Path, name: &str) -> (Duration, Duration, u64) {
        let t = Instant::now();
        self.pm_ok(up, &["sync", name, "--wait"]);
        let wall = t.elapsed();
        let (recorded, refs) = self.last_sync(up, name);
        (wall, recorded, refs)
    }

    /// The mirror's state file `pushmirror/state/NAME.json`, as the flusher last wrote it; None
    /// while there is none.
    fn state(&self, up: &Path, name: &str) -> Option<serde_json::Value> {
        let p = up
            .join("pushmirror")
            .join("state")
            .join(format!("{name}.json"));
        let text = std::fs::read(&p).ok()?;
        Some(serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
    }

    /// The mirror's last sync as the flusher recorded it in its state file:
    /// `last_update_started_at` → `last_update_at` (whole milliseconds), and how many refs it
    /// sent.
    fn last_sync(&self, up: &Path, name: &str) -> (Duration, u64) {
        let st = self
            .state(up, name)
            .unwrap_or_else(|| panic!("{}: no state for mirror {name}", up.display()));
        self.last_sync_of(&st)
    }

    /// [`Bench::last_sync`] of a state already read.
    fn last_sync_of(&self, st: &serde_json::Value) -> (Duration, u64) {
        let at = |k: &str| {
            st[k]
                .as_u64()
                .unwrap_or_else(|| panic!("no {k} in a mirror state after a sync: {st}"))
        };
        let recorded = at("last_update_at").saturating_sub(at("last_update_started_at"));
        (Duration::from_millis(recorded), at("refs_pushed_last"))
    }

    /// Waits until the mirror's first sync ever has ended (finished or failed) and returns its
    /// state; None if it had not after `limit`.
    fn first_sync(&self, up: &Path, name: &str, limit: Duration) -> Option<serde_json::Value> {
        let end = Instant::now() + limit;
        loop {
            let st = self.state(up, name);
            if st.as_ref().is_some_and(|st| st["last_update_at"].is_u64()) {
                return st;
            }
            if Instant::now() > end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// A bare upstream with our hook installed.
    fn upstream(&self, name: &str) -> PathBuf {
        let p = self.bare(name);
        self.pm_ok(&p, &["install"]);
        p
    }

    /// A fresh working repository to commit and push from (no remotes yet).
    fn worktree(&self, name: &str) -> PathBuf {
        let p = self.path(name);
        self.git(self.dir.path(), &["init", "-q", "-b", "main", path_str(&p)]);
        p
    }

    /// A commit changing one small file; returns its id.
    fn commit(&self, wc: &Path, i: usize) -> String {
        std::fs::write(wc.join("counter.txt"), format!("{i}\n")).expect("write file");
        self.git(wc, &["add", "counter.txt"]);
        self.git(wc, &["commit", "-q", "-m", &format!("commit {i}")]);
        self.git(wc, &["rev-parse", "HEAD"])
    }

    /// An upstream with one mirror (extra `add` options) and two commits on main, the flusher
    /// done with them; returns the upstream, the mirror and a realistic stdin line for the hook.
    fn upstream_with_commits(&self, name: &str, add_opts: &[&str]) -> (PathBuf, PathBuf, String) {
        let up = self.upstream(&format!("{name}.git"));
        let mirror = self.local_target(&format!("{name}-mirror.git"));
        self.add_mirror(&up, "m", &mirror, add_opts);
        let wc = self.worktree(&format!("wc-{name}"));
        self.git(&wc, &["remote", "add", "origin", path_str(&up)]);
        let old = self.commit(&wc, 0);
        let new = self.commit(&wc, 1);
        self.git(&wc, &["push", "-q", "origin", "main"]);
        self.wait_flushers(Duration::from_secs(60));
        (up, mirror.dir, format!("{old} {new} refs/heads/main\n"))
    }

    /// One run of a hook command `c` as receive-pack would start it: GIT_DIR set, working directory
    /// the repository, the ref updates on stdin. Returns the wall time from spawn to exit.
    fn run_hook(&self, c: &mut Command, git_dir: &Path, stdin_line: &str) -> Duration {
        c.env("GIT_DIR", git_dir).current_dir(git_dir);
        c.stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let t = Instant::now();
        let mut child = c.spawn().expect("spawn hook");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin_line.as_bytes())
            .expect("write hook stdin");
        let out = child.wait_with_output().expect("wait hook");
        let d = t.elapsed();
        if !out.status.success() || !out.stderr.is_empty() {
            eprintln!(
                "bench: hook said ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        d
    }

    /// Flushers started from this bench (their command line names our temp dir).
    fn flushers(&self) -> Vec<u32> {
        let needle = self.dir.path().to_string_lossy().into_owned();
        let mut out = Vec::new();
        let Ok(rd) = std::fs::read_dir("/proc") else {
            return out;
        };
        for e in rd.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
                continue;
            };
            let args: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
            if args.iter().any(|a| *a == b"flush")
                && args
                    .iter()
                    .any(|a| String::from_utf8_lossy(a).contains(&needle))
            {
                out.push(pid);
            }
        }
        out
    }

    /// Waits until no flusher of ours runs; false if some still did after `limit`.
    fn wait_flushers(&self, limit: Duration) -> bool {
        let end = Instant::now() + limit;
        loop {
            if self.flushers().is_empty() {
                return true;
            }
            if Instant::now() > end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        if !self.wait_flushers(Duration::from_secs(30)) {
            let left = self.flushers();
            eprintln!("bench: flushers still running after 30 s, killing {left:?}");
            for pid in left {
                let _ = Command::new("kill")
                    .arg("-9")
                    .arg(pid.to_string())
                    .stderr(Stdio::null())
                    .status();
            }
            self.wait_flushers(Duration::from_secs(5));
        }
    }
}

/// A mirror repository as the scenarios reach it: by its local path, or over SSH on loopback.
struct Target {
    /// The bare repository on disk, to check what it holds.
    dir: PathBuf,
    /// What `git push`, `git ls-remote` and `git-pushmirror add` are given.
    url: String,
    /// Options `add` needs for it (the SSH key and known_hosts).
    add_opts: Vec<String>,
    /// GIT_SSH_COMMAND for a plain `git` talking to it (SSH only).
    ssh_command: Option<String>,
}

/// The naive hook: a synchronous `git push --mirror` to the mirror on every push (over SSH with
/// the key and known_hosts the mirror needs, as an admin would write it).
fn write_naive_hook(upstream: &Path, mirror: &Target) {
    let env = mirror
        .ssh_command
        .as_ref()
        .map(|c| format!("export GIT_SSH_COMMAND={}\n", sh_quote(c)))
        .unwrap_or_default();
    write_hook(
        upstream,
        &format!(
            "#!/bin/sh\n{env}exec git push --quiet --mirror {}\n",
            sh_quote(&mirror.url)
        ),
    );
}

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn write_hook(upstream: &Path, script: &str) {
    use std::os::unix::fs::PermissionsExt;
    let hook = upstream.join("hooks").join("post-receive");
    std::fs::write(&hook, script).expect("write hook");
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).expect("chmod hook");
}

/// Whether the ELF file has a PT_INTERP program header (is dynamically linked); None if it is not
/// a 64-bit little-endian ELF file we can read.
fn elf_interpreter(path: &Path) -> Option<bool> {
    let data = std::fs::read(path).ok()?;
    if data.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let u16_at = |o: usize| {
        data.get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
    };
    let phoff = u64::from_le_bytes(data.get(0x20..0x28)?.try_into().ok()?) as usize;
    let (phentsize, phnum) = (u16_at(0x36)?, u16_at(0x38)?);
    for i in 0..phnum {
        let o = phoff + i * phentsize;
        let p_type = u32::from_le_bytes(data.get(o..o + 4)?.try_into().ok()?);
        if p_type == 3 {
            return Some(true);
        }
    }
    Some(false)
}

/// The mirror's main, or "" when it has none yet.
fn rev(b: &Bench, git_dir: &Path) -> String {
    let out = b
        .cmd("git")
        .arg("--git-dir")
        .arg(git_dir)
        .args(["rev-parse", "-q", "--verify", "refs/heads/main"])
        .output()
        .expect("run git rev-parse");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn counter(status: &serde_json::Value, key: &str) -> i64 {
    status[key].as_i64().unwrap_or(0)
}

fn timed(c: &mut Command) -> Duration {
    c.stdout(Stdio::null()).stderr(Stdio::null());
    let t = Instant::now();
    let st = c.status().expect("spawn");
    let d = t.elapsed();
    assert!(st.success(), "{c:?} failed");
    d
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

// ---------------------------------------------------------------------------------------------
// Statistics and the table

/// Median and p99 (nearest rank) of a sample, in milliseconds ([`Stats::of`]).
struct Stats {
    n: usize,
    median: f64,
    p99: f64,
}

impl Stats {
    fn of(v: Vec<Duration>) -> Stats {
        Stats::of_values(v.iter().map(|d| d.as_secs_f64() * 1000.0).collect())
    }

    /// The same for plain values (in whatever unit they come).
    fn of_values(mut v: Vec<f64>) -> Stats {
        assert!(!v.is_empty());
        v.sort_by(f64::total_cmp);
        let rank = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
        Stats {
            n: v.len(),
            median: rank(0.50),
            p99: rank(0.99),
        }
    }
}

fn diff(a: f64, b: f64) -> f64 {
    a - b
}

fn ms(v: f64) -> String {
    if v >= 1000.0 {
        format!("{:.3} s", v / 1000.0)
    } else {
        format!("{v:.2} ms")
    }
}

fn signed_ms(v: f64) -> String {
    if v < 0.0 {
        format!("−{}", ms(-v))
    } else {
        format!("+{}", ms(v))
    }
}

fn plus(a: f64, reference: f64) -> String {
    signed_ms(a - reference)
}

fn kib(k: u64) -> String {
    format!("{k} KiB ({:.1} MiB)", k as f64 / 1024.0)
}

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

fn verdict(p50_ok: bool, p99_ok: bool) -> &'static str {
    match (p50_ok, p99_ok) {
        (true, true) => "met",
        (false, false) => "MISSED both",
        (false, true) => "p50 MISSED",
        (true, false) => "p99 MISSED",
    }
}

#[derive(Default)]
struct Table {
    rows: Vec<[String; 5]>,
}

impl Table {
    /// A row of a measured distribution: its n, median and p99 in milliseconds.
    fn stats(&mut self, scenario: &str, s: &Stats, reference: String) {
        self.row(scenario, s.n, ms(s.median), ms(s.p99), reference);
    }

    fn row(&mut self, scenario: &str, n: usize, median: String, p99: String, reference: String) {
        self.rows
            .push([scenario.to_string(), n.to_string(), median, p99, reference]);
    }

    fn print(&self) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "| scenario | n | median | p99 | vs reference |");
        let _ = writeln!(out, "|---|---:|---:|---:|---|");
        for r in &self.rows {
            let cells: Vec<String> = r.iter().map(|c| c.replace('|', "\\|")).collect();
            let _ = writeln!(out, "| {} |", cells.join(" | "));
        }
    }
}
