//! Row group: CPU time of `sweep` and `sync --all` (issue 22) against the plain `git push
//! --mirror` loop over the same N repositories (default 1,000; `BENCH_SWEEP_REPOS`), each to
//! fresh local mirrors. CPU is user + system time of every process the command ran: the bench
//! waits for the command, which waits for its flushers, which wait for their git children, so
//! `getrusage(RUSAGE_CHILDREN)` around it counts them all. `BENCH_ONLY=nodes` runs only these.

use std::path::Path;
use std::time::{Duration, Instant};

use super::throttle::{empty_bare, env_count, fleet, mirrors_for, read_ref, write_config};
use super::*;

/// User + system CPU of our waited-for descendants so far.
fn children_cpu() -> Duration {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage only writes the struct we pass.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Runs `f`; its wall time and the CPU time of the processes it waited for.
fn measure(f: impl FnOnce()) -> (Duration, Duration) {
    let (c0, t0) = (children_cpu(), Instant::now());
    f();
    (t0.elapsed(), children_cpu() - c0)
}

pub(super) fn rows(b: &Bench, table: &mut Table) {
    let n = env_count("BENCH_SWEEP_REPOS", 1000);
    eprintln!("bench: CPU of sweep and sync --all over {n} repositories");
    let root = b.path("cpu-fleet");
    let repos = fleet(b, &root, n);
    let empty = empty_bare(b, "cpu-empty-mirror.git");
    let equal = |tag: &str| {
        let mirrors = (0..n).map(|i| b.path(&format!("mirrors-{tag}/team/r{i:04}.git")));
        repos
            .iter()
            .zip(mirrors)
            .enumerate()
            .filter(|(k, (up, m))| {
                let r = format!("refs/heads/b{k}");
                let want = read_ref(up, &r);
                want.is_some() && read_ref(m, &r) == want
            })
            .count()
    };

    let naive_mirrors = mirrors_for(b, &empty, "cpu-naive", n);
    let (wall, naive) = measure(|| {
        for (up, m) in repos.iter().zip(&naive_mirrors) {
            let out = b
                .cmd("git")
                .arg("--git-dir")
                .arg(up)
                .args(["push", "--quiet", "--mirror", path_str(m)])
                .output()
                .expect("run git push");
            assert!(out.status.success(), "git push --mirror failed");
        }
    });
    table.row(
        &format!("CPU reference: sequential `git push --mirror` loop, {n} repositories"),
        n,
        secs(naive),
        "—".into(),
        format!(
            "user+sys of every process; {} / repository, wall {}",
            ms(naive.as_secs_f64() * 1000.0 / n as f64),
            secs(wall)
        ),
    );

    for (what, tag, args) in [
        ("sweep (new rule)", "cpu-sweep", vec!["sweep"]),
        (
            "sync --all --wait",
            "cpu-sync",
            vec!["sync", "--all", "--wait"],
        ),
    ] {
        let _ = mirrors_for(b, &empty, tag, n);
        write_config(b, &root, tag, "");
        let mut last = String::new();
        let (wall, cpu) = measure(|| {
            let out = b.cmd(&b.bin).args(&args).output().expect("run");
            last = String::from_utf8_lossy(&out.stdout)
                .lines()
                .last()
                .unwrap_or_default()
                .to_string();
        });
        b.wait_flushers(Duration::from_secs(60));
        let ratio = cpu.as_secs_f64() / naive.as_secs_f64();
        table.row(
            &format!("CPU of `{what}`, {n} repositories → local mirrors"),
            n,
            secs(cpu),
            "—".into(),
            format!(
                "{ratio:.2}× the loop's CPU (target ≤ 1.1×: {}); wall {}; {}/{n} mirrors equal; {last}",
                if ratio <= 1.1 { "met" } else { "MISSED" },
                secs(wall),
                equal(tag)
            ),
        );
    }
    let _ = std::fs::remove_dir_all(Path::new(&root));
}
