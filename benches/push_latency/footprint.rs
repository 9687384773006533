//! Row groups 4 and 7: the release binary's size and start-up time, the flusher's peak RSS.

use std::path::PathBuf;
use std::time::Duration;

use super::*;

/// Row group 7: the flusher's own peak resident set size (`ru_maxrss`, the git processes it runs
/// not counted), from the `flusher exiting; peak RSS N KiB` line every flusher logs into its
/// repository's `pushmirror/log` when it exits. Read once every flusher of the run has exited:
/// every upstream but the 10,000-ref one together, and that one on its own.
pub(crate) fn flusher_memory(b: &Bench, table: &mut Table) {
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
pub(crate) fn binary_and_startup(b: &Bench, table: &mut Table) {
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
