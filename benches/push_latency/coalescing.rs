//! Row group 3: a burst of pushes coalesced into few syncs.

use std::time::{Duration, Instant};

use super::*;

/// Row group 3: 100 pushes to one branch back to back (the commits are made beforehand, so the
/// burst is as dense as local `git push` allows), then: how many syncs the mirror got for them, and
/// how long after the last push the mirror had the final value.
pub(crate) fn coalescing(b: &Bench, table: &mut Table) {
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
