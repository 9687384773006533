//! `BENCH_ONLY=hotpath`: the hook's rows (push latency with and without hooks, the hook alone)
//! and push → idle SSH mirror, optionally side by side with a baseline binary in the same run:
//! `BENCH_BASELINE_BIN=/path/to/old/git-pushmirror`. Each row group runs for the baseline and
//! then for this build before the next group starts, so a change in machine load over the run
//! hits both alike. Baseline rows are labelled `baseline:`, this build's `this build:`.
//! `BENCH_PUSHES` (default 200) sizes the push-latency group; `BENCH_SKIP_PUSH_LATENCY` skips it.
//!
//! First comes the hook's CPU time (user + system, from `getrusage` of the waited child),
//! baseline and this build interleaved run by run: unlike wall time it hardly moves when the
//! machine is busy with other work.

use std::path::PathBuf;

use super::*;

type Group<'a> = Box<dyn Fn(&Bench, Result<&SshServer, &String>, &mut Table) + 'a>;

pub(crate) fn only(b: &Bench, ssh: Result<&SshServer, &String>, pushes: usize, table: &mut Table) {
    let baseline = std::env::var_os("BENCH_BASELINE_BIN")
        .filter(|p| !p.is_empty())
        .map(|p| {
            let p = PathBuf::from(p);
            assert!(
                p.is_file(),
                "BENCH_BASELINE_BIN={} is not a file",
                p.display()
            );
            Bench::new(std::fs::canonicalize(&p).unwrap_or(p))
        });
    // The baseline gets its own sshd (its mirrors live under its own temp dir).
    let base_ssh = baseline.as_ref().map(start_sshd);
    cpu_rows(b, baseline.as_ref(), table);
    let mut groups: Vec<Group> = vec![
        Box::new(|b, _, t| hook::hook_alone(b, t)),
        Box::new(mirror::push_to_ssh_mirror),
    ];
    if std::env::var_os("BENCH_SKIP_PUSH_LATENCY").is_none() {
        groups.push(Box::new(move |b, ssh, t| {
            hook::push_latency(b, ssh, pushes, t)
        }));
    }
    for g in &groups {
        if let (Some(bb), Some(bs)) = (&baseline, &base_ssh) {
            let mut t = Table::default();
            g(bb, bs.as_ref(), &mut t);
            bb.wait_flushers(Duration::from_secs(60));
            relabel(t, "baseline", table);
        }
        let mut t = Table::default();
        g(b, ssh, &mut t);
        b.wait_flushers(Duration::from_secs(60));
        relabel(t, if baseline.is_some() { "this build" } else { "" }, table);
    }
}

fn relabel(from: Table, prefix: &str, to: &mut Table) {
    for mut r in from.rows {
        if !prefix.is_empty() {
            r[0] = format!("{prefix}: {}", r[0]);
        }
        to.rows.push(r);
    }
}

/// Runs of the CPU-time rows per binary and case.
const CPU_RUNS: usize = 1000;

/// CPU time of `hook post-receive` with a flusher running (a lock held here stands for it, so
/// every run only appends), with 1 and with 10 mirrors, baseline and this build interleaved.
fn cpu_rows(b: &Bench, baseline: Option<&Bench>, table: &mut Table) {
    use fs2::FileExt;
    struct Case<'a> {
        label: String,
        bench: &'a Bench,
        up: PathBuf,
        line: String,
        _flusher: std::fs::File,
        cpu: Vec<f64>,
        wall: Vec<Duration>,
    }
    let mut cases = Vec::new();
    for (who, bench) in baseline
        .map(|bb| ("baseline", bb))
        .into_iter()
        .chain([("this build", b)])
    {
        for mirrors in [1usize, 10] {
            let (up, _, line) = bench.upstream_with_commits(&format!("cpu{mirrors}"), &[]);
            for i in 1..mirrors {
                let t = bench.local_target(&format!("cpu{mirrors}-extra{i}.git"));
                bench.add_mirror(&up, &format!("m{i}"), &t, &[]);
            }
            bench.wait_flushers(Duration::from_secs(60));
            let lock = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(up.join("pushmirror/flusher.lock"))
                .expect("open flusher.lock");
            lock.lock_exclusive().expect("lock flusher.lock");
            let label = if baseline.is_some() {
                format!("{who}: ")
            } else {
                String::new()
            };
            cases.push(Case {
                label: format!(
                    "{label}our hook alone, CPU time (user + system), flusher running, {mirrors} mirror(s)"
                ),
                bench,
                up,
                line,
                _flusher: lock,
                cpu: Vec::with_capacity(CPU_RUNS),
                wall: Vec::with_capacity(CPU_RUNS),
            });
        }
    }
    eprintln!(
        "bench: hook CPU time, {CPU_RUNS} runs x {} cases",
        cases.len()
    );
    let children_cpu = || {
        // SAFETY: getrusage only writes the struct it is given.
        let mut u: libc::rusage = unsafe { std::mem::zeroed() };
        unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut u) };
        let t = |v: libc::timeval| v.tv_sec as f64 * 1000.0 + v.tv_usec as f64 / 1000.0;
        t(u.ru_utime) + t(u.ru_stime)
    };
    let n = cases.len();
    for round in 0..CPU_RUNS {
        for k in 0..n {
            let c = &mut cases[(round + k) % n];
            let before = children_cpu();
            let d = c.bench.run_hook(
                c.bench.cmd(&c.bench.bin).args(["hook", "post-receive"]),
                &c.up,
                &c.line,
            );
            c.cpu.push(children_cpu() - before);
            c.wall.push(d);
        }
    }
    for c in cases {
        let mean = c.cpu.iter().sum::<f64>() / c.cpu.len() as f64;
        let wall = Stats::of(c.wall);
        table.row(
            &c.label,
            c.cpu.len(),
            format!("{mean:.3} ms"),
            "—".into(),
            format!(
                "mean CPU time per run (the kernel samples it: only the mean is meaningful); wall \
                 median {} / p99 {} in the same runs",
                ms(wall.median),
                ms(wall.p99)
            ),
        );
    }
}
