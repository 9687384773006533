//! Row groups 1 and 1b: push latency with and without hooks, and the hook's own run time.

use std::time::{Duration, Instant};

use super::*;

/// Row group 1: wall time of `git push` of one new commit to one branch, for upstreams that
/// differ only in their post-receive hook: none, a trivial one (the floor any hook pays: git's
/// hook plumbing plus one `sh`), the naive `git push --mirror`, ours with 1 and with 10 mirrors;
/// and, with sshd, the naive hook and ours with one SSH mirror on loopback (the naive hook's cost
/// grows with the mirror's distance, here a new SSH connection per push; ours must not).
/// They are measured interleaved (each round makes one commit and pushes it to all of them, in
/// rotating order), so drift in machine load over the run hits every scenario alike, and every
/// push carries exactly one new commit. The flushers of our upstreams stay alive through the loop
/// (pushes come faster than the 1 s debounce) and sync once at the end.
pub(crate) fn push_latency(
    b: &Bench,
    ssh: Result<&SshServer, &String>,
    pushes: usize,
    table: &mut Table,
) {
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
pub(crate) fn hook_alone(b: &Bench, table: &mut Table) {
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
