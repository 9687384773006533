//! `BENCH_ONLY=hotpath`: the hook's rows (push latency with and without hooks, the hook alone)
//! and push → idle SSH mirror, optionally side by side with a baseline binary in the same run:
//! `BENCH_BASELINE_BIN=/path/to/old/git-pushmirror`. Each row group runs for the baseline and
//! then for this build before the next group starts, so a change in machine load over the run
//! hits both alike. Baseline rows are labelled `baseline:`, this build's `this build:`.
//! `BENCH_PUSHES` (default 200) sizes the push-latency group; `BENCH_SKIP_PUSH_LATENCY` skips it.

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
    let mut groups: Vec<Group> = vec![
        Box::new(|b, _, t| hook::hook_alone(b, t)),
        Box::new(|b, ssh, t| mirror::push_to_ssh_mirror(b, ssh, t)),
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
