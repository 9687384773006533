//! Row group 8: `sweep` at fleet scale (issue 12). A new server rule backfills N repositories
//! (default 1,000; `BENCH_SWEEP_REPOS`) to local mirrors, timed against a sequential
//! `git push --mirror` loop over the same repositories, at concurrency 1, 2 and 4 (and the
//! default, the number of CPUs, when that is none of those); then a sweep of M repositories
//! (default 10,000; `BENCH_IDLE_REPOS`) that are all up to date, where it has nothing to do.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::*;

const IDLE_RUNS: usize = 3;

pub(super) fn env_count(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(default)
}

/// `BENCH_ONLY=throttle`: the rows issue 12 set targets for, without the rest of the table.
pub(super) fn only(b: &Bench, ssh: Result<&SshServer, &String>, table: &mut Table) {
    if std::env::var_os("BENCH_SKIP_SWEEP").is_none() {
        sweep_rows(b, table);
    }
    super::mirror::push_to_mirror(b, table);
    super::mirror::push_to_ssh_mirror(b, ssh, table);
    super::coalescing::coalescing(b, table);
}

pub(super) fn sweep_rows(b: &Bench, table: &mut Table) {
    let n = env_count("BENCH_SWEEP_REPOS", 1000);
    let idle = env_count("BENCH_IDLE_REPOS", 10_000);
    eprintln!("bench: sweep backfill of {n} repositories, then a sweep of {idle} idle ones");
    let root = b.path("fleet");
    let repos = fleet(b, &root, n);
    let empty = empty_bare(b, "empty-mirror.git");

    // The reference: one `git push --mirror` after the other.
    let naive_mirrors = mirrors_for(b, &empty, "naive", n);
    let t = Instant::now();
    for (up, m) in repos.iter().zip(&naive_mirrors) {
        let out = b
            .cmd("git")
            .arg("--git-dir")
            .arg(up)
            .args(["push", "--quiet", "--mirror", path_str(m)])
            .output()
            .expect("run git push");
        assert!(
            out.status.success(),
            "git push --mirror failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let naive = t.elapsed();
    table.row(
        &format!("sweep backfill reference: sequential `git push --mirror` loop, {n} repositories"),
        n,
        secs(naive),
        "—".into(),
        format!(
            "{} / repository",
            ms(naive.as_secs_f64() * 1000.0 / n as f64)
        ),
    );

    let cpus = std::thread::available_parallelism().map_or(1, |p| p.get());
    let mut levels: Vec<(String, Option<usize>)> = [1, 2, 4]
        .into_iter()
        .map(|c| {
            let label = if c == cpus {
                format!("concurrency {c} (the default here: CPUs)")
            } else {
                format!("concurrency {c}")
            };
            (label, Some(c))
        })
        .collect();
    if ![1, 2, 4].contains(&cpus) {
        levels.push((format!("default concurrency ({cpus} CPUs)"), None));
    }
    let mut last_rule = None;
    for (i, (label, conc)) in levels.iter().enumerate() {
        let rule = format!("r{i}");
        let mirrors = mirrors_for(b, &empty, &rule, n);
        let conc_line = conc.map_or(String::new(), |c| format!("concurrency: {c}\n"));
        write_config(b, &root, &rule, &conc_line);
        let t = Instant::now();
        let out = b.cmd(&b.bin).arg("sweep").output().expect("run sweep");
        let took = t.elapsed();
        let text = String::from_utf8_lossy(&out.stdout);
        let flushed = text
            .lines()
            .last()
            .unwrap_or_default()
            .contains(&format!("sweep: {n} repositories flushed"));
        let equal = repos
            .iter()
            .zip(&mirrors)
            .enumerate()
            .filter(|(k, (up, m))| {
                let r = format!("refs/heads/b{k}");
                let want = read_ref(up, &r);
                want.is_some() && read_ref(m, &r) == want
            })
            .count();
        let ratio = took.as_secs_f64() / naive.as_secs_f64();
        let target = if conc.is_none() || *conc == Some(cpus) {
            format!(
                "; target ≤ 1.0×: {}",
                if ratio <= 1.0 { "met" } else { "MISSED" }
            )
        } else {
            String::new()
        };
        table.row(
            &format!("sweep backfill, new rule, {n} repositories → local mirrors, {label}"),
            n,
            secs(took),
            "—".into(),
            format!(
                "{ratio:.2}× the `git push --mirror` loop{target}; {equal}/{n} mirrors equal to \
                 upstream{}",
                if out.status.success() && flushed {
                    String::new()
                } else {
                    format!(
                        "; sweep exit {:?}, last line {:?}",
                        out.status.code(),
                        text.lines().last()
                    )
                }
            ),
        );
        last_rule = Some(rule);
    }
    b.wait_flushers(Duration::from_secs(60));

    // Nothing to do: `idle` copies of a repository the last backfill left up to date (its
    // pushmirror/ state included), under a root of their own.
    let Some(rule) = last_rule else { return };
    let idle_root = b.path("idle");
    eprintln!("bench: copying {idle} up-to-date repositories");
    for k in 0..idle {
        copy_dir(
            &repos[0],
            &idle_root.join(format!("{:02}/i{k:05}.git", k % 100)),
        );
    }
    write_config(b, &idle_root, &rule, "");
    let mut runs = Vec::new();
    let mut wrong = None;
    for _ in 0..IDLE_RUNS {
        let t = Instant::now();
        let out = b.cmd(&b.bin).arg("sweep").output().expect("run sweep");
        runs.push(t.elapsed());
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() || !text.contains("sweep: 0 repositories flushed") {
            wrong = Some(text.lines().last().unwrap_or_default().to_string());
        }
    }
    let s = Stats::of(runs);
    table.stats(
        &format!("sweep of {idle} repositories with nothing to do"),
        &s,
        format!(
            "target < 2 s: {}{}",
            if s.median < 2000.0 { "met" } else { "MISSED" },
            wrong.map_or(String::new(), |w| format!("; UNEXPECTED: {w}"))
        ),
    );
}

/// `n` bare repositories `<root>/team/rNNNN.git`, each with its own commit on its own branch
/// `bN`: one fast-import makes them all in a source repository, and each is a single-branch bare
/// clone of it (without hook samples).
pub(super) fn fleet(b: &Bench, root: &Path, n: usize) -> Vec<PathBuf> {
    let src = b.bare("fleet-src.git");
    let mut stream = String::new();
    for i in 0..n {
        let msg = format!("repository {i}\n");
        let blob = format!("content of repository {i}\n");
        stream.push_str(&format!(
            "blob\nmark :{m}\ndata {bl}\n{blob}\ncommit refs/heads/b{i}\ncommitter B <b@example.com> 1700000000 +0000\ndata {ml}\n{msg}M 100644 :{m} file\n\n",
            m = i + 1,
            bl = blob.len(),
            ml = msg.len(),
        ));
    }
    b.git_stdin(&src, &["fast-import", "--quiet"], &stream);
    let template = b.path("empty-template");
    std::fs::create_dir_all(&template).expect("template dir");
    let team = root.join("team");
    std::fs::create_dir_all(&team).expect("fleet dir");
    (0..n)
        .map(|i| {
            let dir = team.join(format!("r{i:04}.git"));
            b.git(
                b.dir.path(),
                &[
                    "clone",
                    "-q",
                    "--bare",
                    "--single-branch",
                    "--branch",
                    &format!("b{i}"),
                    &format!("--template={}", path_str(&template)),
                    path_str(&src),
                    path_str(&dir),
                ],
            );
            dir
        })
        .collect()
}

/// An empty bare repository `<tmp>/<name>` on `main`, without hook samples (the source of
/// `mirrors_for`'s copies).
pub(super) fn empty_bare(b: &Bench, name: &str) -> PathBuf {
    let template = b.path("empty-template");
    std::fs::create_dir_all(&template).expect("template dir");
    let empty = b.path(name);
    b.git(
        b.dir.path(),
        &[
            "init",
            "-q",
            "--bare",
            "-b",
            "main",
            &format!("--template={}", path_str(&template)),
            path_str(&empty),
        ],
    );
    empty
}

/// Empty mirrors `<tmp>/mirrors-<tag>/team/rNNNN.git`, copies of one empty bare repository.
pub(super) fn mirrors_for(b: &Bench, empty: &Path, tag: &str, n: usize) -> Vec<PathBuf> {
    (0..n)
        .map(|i| {
            let dir = b.path(&format!("mirrors-{tag}/team/r{i:04}.git"));
            copy_dir(empty, &dir);
            dir
        })
        .collect()
}

pub(super) fn write_config(b: &Bench, root: &Path, rule: &str, extra: &str) {
    std::fs::write(
        &b.server_config,
        format!(
            "root: {}\n{extra}rules:\n  - name: {rule}\n    url: {}/${{name}}.git\n",
            path_str(root),
            path_str(&b.path(&format!("mirrors-{rule}"))),
        ),
    )
    .expect("write server config");
}

/// A copy of `from` at `to` (regular files and directories; a flusher's log is left out).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for e in std::fs::read_dir(from).expect("read dir").flatten() {
        let (src, dst) = (e.path(), to.join(e.file_name()));
        let ft = e.file_type().expect("file type");
        if ft.is_dir() {
            copy_dir(&src, &dst);
        } else if ft.is_file() && e.file_name() != "log" {
            std::fs::copy(&src, &dst).expect("copy file");
        }
    }
}

/// A ref's value read from the repository's files (loose, else packed-refs).
pub(super) fn read_ref(git_dir: &Path, name: &str) -> Option<String> {
    if let Ok(s) = std::fs::read_to_string(git_dir.join(name)) {
        return Some(s.trim().to_string());
    }
    let packed = std::fs::read_to_string(git_dir.join("packed-refs")).ok()?;
    packed.lines().find_map(|l| {
        let (id, r) = l.split_once(' ')?;
        (r == name).then(|| id.to_string())
    })
}
