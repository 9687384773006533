//! Issue 23: pushes a fixed time apart (0.3 s, 0.7 s) to one local mirror, with the built-in
//! interval (adaptive: a push after a short sync goes at once, within the coalescing budget) and
//! with `debounce: 1s` configured (a strict minimum interval, the throttle as it was before).
//! Lag: from a push returning to the mirror's main holding that commit or a later one.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::*;

/// Pushes per row.
const SPACED_PUSHES: usize = 15;

pub(crate) fn spacing(b: &Bench, table: &mut Table) {
    for gap_ms in [300u64, 700] {
        for (tag, timing) in [("adaptive", ""), ("fixed", "    debounce: 1s\n")] {
            eprintln!("bench: {SPACED_PUSHES} pushes {gap_ms} ms apart, {tag} interval");
            let (lags, syncs, span) = run(b, &format!("spaced-{gap_ms}-{tag}"), timing, gap_ms);
            let label = format!(
                "pushes {:.1} s apart → local mirror has each, {}",
                gap_ms as f64 / 1000.0,
                if timing.is_empty() {
                    "default settings (adaptive interval)"
                } else {
                    "`debounce: 1s` (strict minimum interval, as before)"
                }
            );
            if lags.is_empty() {
                table.row(&label, 0, "never".into(), "never".into(), "—".into());
                continue;
            }
            let bound = 2 + span.as_millis().div_ceil(1000) as i64;
            let missed = SPACED_PUSHES - lags.len();
            table.stats(
                &label,
                &Stats::of(lags),
                format!(
                    "{syncs} syncs for {SPACED_PUSHES} pushes over {}; coalescing bound 2 + \
                     ⌈span / 1 s⌉ = {bound}: {}{}",
                    secs(span),
                    if syncs <= bound { "met" } else { "MISSED" },
                    if missed > 0 {
                        format!("; {missed} pushes NEVER reached the mirror")
                    } else {
                        String::new()
                    }
                ),
            );
        }
    }
}

/// One row's pushes: returns each push's lag, the mirror's syncs and the span of the pushes.
fn run(b: &Bench, name: &str, timing: &str, gap_ms: u64) -> (Vec<Duration>, i64, Duration) {
    let up = b.upstream(&format!("{name}.git"));
    let mirror = b.bare(&format!("{name}-mirror.git"));
    std::fs::create_dir_all(up.join("pushmirror")).expect("create pushmirror/");
    std::fs::write(
        up.join("pushmirror/config.yaml"),
        format!(
            "mirrors:\n  - name: m\n    url: {}\n{timing}",
            path_str(&mirror)
        ),
    )
    .expect("write config");
    let wc = b.worktree(&format!("wc-{name}"));
    b.git(&wc, &["remote", "add", "origin", path_str(&up)]);
    b.commit(&wc, 0);
    b.git(&wc, &["push", "-q", "origin", "main"]);
    b.wait_flushers(Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(1100));
    let status0 = b.mirror_status(&up, "m");
    let commits: Vec<String> = (1..=SPACED_PUSHES).map(|i| b.commit(&wc, i)).collect();
    let index = |rev: &str| commits.iter().position(|c| c == rev);
    // When the mirror's main was first seen at (or past) each commit.
    let seen: Mutex<Vec<Option<Instant>>> = Mutex::new(vec![None; SPACED_PUSHES]);
    let done = AtomicBool::new(false);
    let mut pushed = Vec::new();
    let t0 = Instant::now();
    std::thread::scope(|scope| {
        scope.spawn(|| watch(b, &mirror, &index, &seen, &done));
        for (i, c) in commits.iter().enumerate() {
            let at = t0 + Duration::from_millis(gap_ms * i as u64);
            std::thread::sleep(at.saturating_duration_since(Instant::now()));
            b.git(
                &wc,
                &["push", "-q", "origin", &format!("{c}:refs/heads/main")],
            );
            pushed.push(Instant::now());
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while seen.lock().unwrap()[SPACED_PUSHES - 1].is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        done.store(true, Ordering::Relaxed);
    });
    let span = pushed.last().map_or(Duration::ZERO, |l| *l - t0);
    b.wait_flushers(Duration::from_secs(60));
    let status1 = b.mirror_status(&up, "m");
    let syncs = counter(&status1, "syncs") - counter(&status0, "syncs");
    let seen = seen.into_inner().unwrap();
    let lags = pushed
        .iter()
        .enumerate()
        .filter_map(|(i, p)| seen[i].map(|s| s.saturating_duration_since(*p)))
        .collect();
    (lags, syncs, span)
}

/// Polls the mirror's main every 5 ms until `done`, marking every commit up to the one seen.
fn watch(
    b: &Bench,
    mirror: &Path,
    index: &dyn Fn(&str) -> Option<usize>,
    seen: &Mutex<Vec<Option<Instant>>>,
    done: &AtomicBool,
) {
    while !done.load(Ordering::Relaxed) {
        if let Some(k) = index(&rev(b, mirror)) {
            let now = Instant::now();
            let mut s = seen.lock().unwrap();
            for slot in s.iter_mut().take(k + 1) {
                slot.get_or_insert(now);
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
