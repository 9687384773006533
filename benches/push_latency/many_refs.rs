//! Row group 6: an upstream holding 10,000 refs.

use std::time::{Duration, Instant};

use super::*;

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
pub(crate) fn many_refs_sync(b: &Bench, table: &mut Table) {
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
