//! Row groups 2 and 2b: from `git push` returning to the commit in the mirror (local, SSH).

use std::path::Path;
use std::time::{Duration, Instant};

use super::*;

/// How long after `since` the mirror's main held `want`, polled every 5 ms; None if it did not
/// within a minute.
pub(crate) fn arrival(b: &Bench, mirror: &Path, want: &str, since: Instant) -> Option<Duration> {
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
/// share one SSH connection, which (`ssh_persist`, default 60 s) outlives the sync for the next
/// ones. In one loop, sample after sample: a local mirror (the reference), the SSH mirror with
/// default settings (its connection master warm from the sample before), the SSH mirror with
/// `ssh_persist: 0` (a new connection per sync, as before `ssh_persist`), and one `git ls-remote`
/// over a new connection.
pub(crate) fn push_to_ssh_mirror(b: &Bench, ssh: Result<&SshServer, &String>, table: &mut Table) {
    const LABEL: &str = "push → idle SSH mirror on loopback has the commit (default settings: \
                         connection kept, ssh_persist 60s)";
    const COLD: &str =
        "push → idle SSH mirror on loopback has the commit, ssh_persist: 0 (new connection per sync)";
    const LOCAL: &str = "push → idle local mirror has the commit (same loop as the SSH rows)";
    let ssh = match ssh {
        Ok(s) => s,
        Err(why) => {
            table.row(LABEL, 0, why.clone(), "—".into(), "—".into());
            return;
        }
    };
    eprintln!("bench: push-to-SSH-mirror latency, {P2M_SSH_RUNS} pushes each to local, warm SSH, cold SSH");
    let target = b.ssh_target(ssh, "p2m-ssh-mirror.git");
    let cold_target = b.ssh_target(ssh, "p2m-ssh-cold-mirror.git");
    let local_target = b.local_target("p2m-ssh-local-mirror.git");
    let setups = [
        ("p2m-ssh", &target, None),
        ("p2m-ssh-cold", &cold_target, Some("ssh_persist=0")),
        ("p2m-ssh-local", &local_target, None),
    ];
    let mut repos = Vec::new();
    for (name, t, set) in setups {
        let up = b.upstream(&format!("{name}.git"));
        b.add_mirror(&up, "m", t, &[]);
        if let Some(kv) = set {
            b.pm_ok(&up, &["set", "m", kv]);
        }
        let wc = b.worktree(&format!("wc-{name}"));
        b.git(&wc, &["remote", "add", "origin", path_str(&up)]);
        b.commit(&wc, 0);
        b.git(&wc, &["push", "-q", "origin", "main"]);
        repos.push((up, wc, t.dir.clone()));
    }
    b.wait_flushers(Duration::from_secs(60));
    let mut lat = [Vec::new(), Vec::new(), Vec::new()];
    let (mut ls, mut missed, mut session) = (Vec::new(), [0; 3], Vec::new());
    for i in 0..P2M_SSH_RUNS {
        for (k, (_, wc, mirror)) in repos.iter().enumerate() {
            b.wait_flushers(Duration::from_secs(30));
            std::thread::sleep(IDLE_GAP);
            if k == 0 {
                ls.push(timed(&mut b.git_to(&repos[0].0, &["ls-remote"], &target)));
            }
            let want = b.commit(wc, i + 1);
            b.git(wc, &["push", "-q", "origin", "main"]);
            let pushed = Instant::now();
            match arrival(b, mirror, &want, pushed) {
                Some(d) => lat[k].push(d),
                None => missed[k] += 1,
            }
            if k == 0 {
                if let Some(d) = bare_session(b, ssh) {
                    session.push(d);
                }
            }
        }
    }
    b.wait_flushers(Duration::from_secs(60));
    let ls = Stats::of(ls);
    let session = (!session.is_empty()).then(|| Stats::of(session));
    let never = |k: usize| {
        if missed[k] > 0 {
            format!("; {} pushes NEVER reached the mirror", missed[k])
        } else {
            String::new()
        }
    };
    let [warm, cold, local] = lat.map(|l| (!l.is_empty()).then(|| Stats::of(l)));
    let Some(local) = local else {
        table.row(LOCAL, 0, "never".into(), "never".into(), never(2));
        return;
    };
    table.stats(
        LOCAL,
        &local,
        format!("the reference for the SSH rows{}", never(2)),
    );
    match warm {
        Some(s) => {
            let ratio = s.median / local.median;
            table.stats(
                LABEL,
                &s,
                format!(
                    "no handshake: the connection master of the sample before; {ratio:.2}× the \
                     local mirror in the same loop, goal ≤ 2×: {}; one `git ls-remote` over a new \
                     SSH connection here: {} / {}{}{}",
                    if ratio <= 2.0 { "met" } else { "MISSED" },
                    ms(ls.median),
                    ms(ls.p99),
                    session.as_ref().map_or(String::new(), |x| format!(
                        "; a bare SSH session on that master (`ssh host true`, the remote \
                         login shell included) here: {} / {}, so the sync beyond one session \
                         {:.2}× the local mirror",
                        ms(x.median),
                        ms(x.p99),
                        (s.median - x.median).max(0.0) / local.median
                    )),
                    never(0)
                ),
            )
        }
        None => table.row(LABEL, 0, "never".into(), "never".into(), never(0)),
    }
    match cold {
        Some(s) => table.stats(
            COLD,
            &s,
            format!(
                "one SSH handshake per sync; {:.2}× the local mirror{}",
                s.median / local.median,
                never(1)
            ),
        ),
        None => table.row(COLD, 0, "never".into(), "never".into(), never(1)),
    }
}

/// Row group 2: default settings, one local mirror: from `git push` returning to the mirror's
/// `refs/heads/main` holding the pushed commit, polled every 5 ms. Each sample starts with no
/// flusher running and no sync within the minimum interval (the usual case: pushes are seconds
/// or minutes apart; the mirror is idle and syncs at once), so the same
/// loop also gives the push latency of a push whose hook has to start the flusher, next to a push
/// of the same commit to an upstream without hook made just before it.
pub(crate) fn push_to_mirror(b: &Bench, table: &mut Table) {
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

/// One bare session (`ssh host true`) on the lasting connection master the SSH mirror's syncs
/// left in the runtime dir: what any session costs on that server (sshd starts the user's login
/// shell for it), the floor under a sync over a warm connection.
fn bare_session(b: &Bench, ssh: &SshServer) -> Option<Duration> {
    let socket = std::fs::read_dir(&b.runtime)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("mux-"))
        })?;
    let mut c = b.cmd("ssh");
    c.args(["-F", "/dev/null", "-o", "BatchMode=yes", "-o"])
        .arg(format!("ControlPath={}", socket.display()))
        .args(["-p", &ssh.port.to_string()])
        .arg(format!("{}@127.0.0.1", ssh.user))
        .arg("true")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let t = Instant::now();
    // Without a live master ssh would try a connection of its own (and fail: no key here).
    let ok = c.status().is_ok_and(|s| s.success());
    ok.then(|| t.elapsed())
}
