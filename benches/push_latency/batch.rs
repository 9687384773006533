//! Issue 22 part 1 (`BENCH_ONLY=batch`): what `push_batch_bytes` costs an ordinary sync (its
//! one pack estimate, `git rev-list --objects --disk-usage`), and a first sync of a big history
//! split to fit a host's limits (`push_batch_refs: 5`, `push_batch_bytes`) against one push.

use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use super::*;

/// Main's commits, each adding a file of [`BLOB`] incompressible bytes (16 MiB in all).
const COMMITS: usize = 2_000;
const BLOB: usize = 8 << 10;
/// Branches, each one small commit on a commit of main.
const BRANCHES: usize = 200;
/// Ordinary syncs measured per mirror.
const SYNC_RUNS: usize = 20;
/// First syncs measured per way.
const FIRST_RUNS: usize = 3;
const SPLIT_BYTES: &str = "2MiB";

pub(crate) fn rows(b: &Bench, table: &mut Table) {
    eprintln!("bench: push_batch_bytes / push_batch_refs rows");
    let up = b.upstream("batch.git");
    history(b, &up);

    // A first sync of the whole history into an empty mirror: one push, or split.
    let mut first: Vec<(String, Vec<Duration>, u64)> = Vec::new();
    for (label, opts) in [
        ("one push", vec![]),
        (
            "split: push_batch_refs=5, push_batch_bytes=2MiB",
            vec![
                "push_batch_refs=5".to_string(),
                format!("push_batch_bytes={SPLIT_BYTES}"),
            ],
        ),
    ] {
        let (mut took, mut bytes) = (Vec::new(), 0);
        for run in 0..FIRST_RUNS {
            let name = format!("first{}-{run}", first.len());
            let t = b.local_target(&format!("{name}.git"));
            b.add_mirror(&up, &name, &t, &["--disabled"]);
            if !opts.is_empty() {
                let mut args = vec!["set", name.as_str()];
                args.extend(opts.iter().map(String::as_str));
                b.pm_ok(&up, &args);
            }
            b.pm_ok(&up, &["enable", &name]);
            match b.first_sync(&up, &name, Duration::from_secs(600)) {
                Some(st) if st["last_error"].is_null() && rev(b, &t.dir) == rev(b, &up) => {
                    took.push(b.last_sync_of(&st).0);
                    bytes = st["bytes_pushed_last"].as_u64().unwrap_or(0);
                }
                other => eprintln!("bench: WARNING: first sync {name} ({label}) failed: {other:?}"),
            }
            b.pm_ok(&up, &["remove", &name]);
            b.wait_flushers(Duration::from_secs(60));
        }
        first.push((label.to_string(), took, bytes));
    }
    let one = first
        .first()
        .filter(|f| !f.1.is_empty())
        .map(|f| Stats::of(f.1.clone()).median);
    for (label, took, bytes) in first {
        if took.is_empty() {
            table.row(
                &format!("first sync of 16 MiB / {COMMITS} commits / {BRANCHES} branches, {label}"),
                0,
                "failed (see stderr)".into(),
                "—".into(),
                String::new(),
            );
            continue;
        }
        let s = Stats::of(took);
        table.stats(
            &format!("first sync of 16 MiB / {COMMITS} commits / {BRANCHES} branches, {label}"),
            &s,
            format!(
                "packs sent {:.1} MiB{}",
                bytes as f64 / (1 << 20) as f64,
                one.map_or(String::new(), |o| format!(
                    "; {} vs one push",
                    plus(s.median, o)
                ))
            ),
        );
    }

    // Ordinary syncs of one new commit: without push_batch_bytes; with one above the size of
    // the whole repository (no estimate: the store's size bounds every pack); with one below it
    // (one estimate, then one push).
    let mirrors = [
        ("plain", None),
        ("above", Some("1GiB")),
        ("below", Some("8MiB")),
    ];
    for (name, limit) in mirrors {
        let t = b.local_target(&format!("sync-{name}.git"));
        b.add_mirror(&up, name, &t, &[]);
        if let Some(l) = limit {
            b.pm_ok(&up, &["set", name, &format!("push_batch_bytes={l}")]);
        }
        b.sync_wait(&up, name);
    }
    b.wait_flushers(Duration::from_secs(60));
    let mut took: Vec<Vec<Duration>> = vec![Vec::new(); mirrors.len()];
    for i in 0..SYNC_RUNS {
        let tree = b.git(&up, &["rev-parse", "main^{tree}"]);
        let c = b.git(
            &up,
            &[
                "commit-tree",
                &tree,
                "-p",
                "main",
                "-m",
                &format!("sync {i}"),
            ],
        );
        b.git(&up, &["update-ref", "refs/heads/main", &c]);
        for k in 0..mirrors.len() {
            let at = (i + k) % mirrors.len();
            b.wait_flushers(Duration::from_secs(30));
            let (_, recorded, refs) = b.sync_wait(&up, mirrors[at].0);
            if refs == 1 {
                took[at].push(recorded);
            }
        }
    }
    if took.iter().any(Vec::is_empty) {
        table.row(
            "sync of one commit, push_batch_bytes set",
            0,
            "failed (see stderr)".into(),
            "—".into(),
            String::new(),
        );
        return;
    }
    let stats: Vec<Stats> = took.into_iter().map(Stats::of).collect();
    let plain = &stats[0];
    for ((name, limit), s) in mirrors.iter().zip(&stats) {
        let what = match limit {
            None => "without push_batch_bytes".to_string(),
            Some(l) => format!("push_batch_bytes={l} ({name} the 16 MiB repository)"),
        };
        table.stats(
            &format!(
                "sync of one commit ({COMMITS} commits, {} refs), {what}: the sync as recorded (ms resolution)",
                BRANCHES + 1
            ),
            s,
            if limit.is_none() {
                "reference".into()
            } else {
                format!(
                    "{} / {} vs without",
                    plus(s.median, plain.median),
                    plus(s.p99, plain.p99)
                )
            },
        );
    }
}

/// Main of [`COMMITS`] commits and [`BRANCHES`] branches on it, written with `git fast-import`.
fn history(b: &Bench, up: &Path) {
    let mut s: Vec<u8> = Vec::new();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 1..=COMMITS {
        s.extend_from_slice(
            format!(
                "commit refs/heads/main\nmark :{i}\ncommitter B <b@e> {} +0000\ndata 2\nc\n",
                1_700_000_000 + i * 60
            )
            .as_bytes(),
        );
        if i > 1 {
            s.extend_from_slice(format!("from :{}\n", i - 1).as_bytes());
        }
        s.extend_from_slice(format!("M 100644 inline f{i}.bin\ndata {BLOB}\n").as_bytes());
        for _ in 0..BLOB / 8 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            s.extend_from_slice(&x.to_le_bytes());
        }
        s.push(b'\n');
    }
    for br in 0..BRANCHES {
        s.extend_from_slice(
            format!(
                "commit refs/heads/b{br:03}\ncommitter B <b@e> 1800000000 +0000\ndata 2\nb\n\
                 from :{}\nM 100644 inline b.txt\ndata 4\nb{br:02}\n\n",
                1 + br * (COMMITS - 1) / BRANCHES
            )
            .as_bytes(),
        );
    }
    let mut child = b
        .cmd("git")
        .arg("-C")
        .arg(up)
        .args(["fast-import", "--quiet"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("run git fast-import");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&s)
        .expect("write fast-import stream");
    assert!(child.wait().expect("wait fast-import").success());
}
