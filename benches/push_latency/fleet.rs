//! Server-wide rows (issue 13): `status --root --json` and `metrics` over fleets of 1,000 and
//! 10,000 repositories, wall time and the command's peak RSS (from `wait4`).
//!
//! The fleets are written directly as files (what `git init --bare`, `install` and a flusher
//! leave: HEAD, config, objects/, refs/, hooks/post-receive, pushmirror/config.yaml, a state
//! file, and for one repository in 100 a failing mirror with a pending update in the spool): making 10,000 repositories with git
//! would take minutes and measure nothing of ours.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::*;

const FLEETS: [usize; 2] = [1_000, 10_000];
const RUNS: usize = 5;

pub fn fleet(b: &Bench, table: &mut Table) {
    for n in FLEETS {
        let root = b.path(&format!("fleet{n}"));
        eprintln!("bench: writing a fleet of {n} repositories");
        if let Err(e) = write_fleet(&root, n, &b.bin) {
            table.row(
                &format!("status --root, {n} repositories"),
                0,
                format!("skipped: {e}"),
                "—".into(),
                String::new(),
            );
            continue;
        }
        for (what, args) in [
            ("status --root --json", vec!["status", "--json", "--root"]),
            ("metrics", vec!["metrics", "--root"]),
        ] {
            let mut times = Vec::new();
            let mut rss = Vec::new();
            for _ in 0..RUNS {
                let mut c = b.cmd(&b.bin);
                c.args(&args)
                    .arg(&root)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null());
                match timed_rss(&mut c) {
                    Some((t, k)) => {
                        times.push(t);
                        rss.push(k);
                    }
                    None => break,
                }
            }
            if times.is_empty() {
                table.row(
                    &format!("{what}, {n} repositories"),
                    0,
                    "failed to run".into(),
                    "—".into(),
                    String::new(),
                );
                continue;
            }
            let s = Stats::of(times);
            table.stats(
                &format!("`{what}`, {n} repositories (1% failing)"),
                &s,
                format!(
                    "target < 2 s for 10,000; peak RSS {} (max of {} runs)",
                    kib(rss.iter().copied().max().unwrap_or(0)),
                    s.n
                ),
            );
        }
        // The size of the textfile node_exporter serves (every mirror with both histograms).
        if let Ok(out) = b
            .cmd(&b.bin)
            .args(["metrics", "--root"])
            .arg(&root)
            .output()
        {
            let lines = out.stdout.iter().filter(|c| **c == b'\n').count();
            table.row(
                &format!("`metrics` output, {n} repositories (with latency histograms)"),
                1,
                format!("{:.1} MiB", out.stdout.len() as f64 / (1 << 20) as f64),
                "—".into(),
                format!(
                    "{lines} lines, {:.0} bytes per mirror",
                    out.stdout.len() as f64 / n as f64
                ),
            );
        }
        let _ = std::fs::remove_dir_all(&root);
    }
}

/// Runs `c` to the end; its wall time and peak RSS in KiB (`wait4` on that child alone).
fn timed_rss(c: &mut Command) -> Option<(Duration, u64)> {
    let start = Instant::now();
    let child = c.spawn().ok()?;
    let mut status = 0;
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 writes only the status and rusage we pass; the pid is our child's.
    let r = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut ru) };
    let t = start.elapsed();
    // Exit 1 is fine: the fleet has failing mirrors on purpose.
    (r > 0 && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) <= 1)
        .then_some((t, ru.ru_maxrss as u64))
}

fn write_fleet(root: &Path, n: usize, bin: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let hook_text = include_str!("../../hooks/post-receive.direct");
    for i in 0..n {
        let repo = root.join(format!("group{:03}/repo{i:05}.git", i / 100));
        std::fs::create_dir_all(repo.join("objects"))?;
        std::fs::create_dir_all(repo.join("refs/heads"))?;
        std::fs::write(repo.join("HEAD"), "ref: refs/heads/main\n")?;
        std::fs::write(
            repo.join("config"),
            "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = true\n",
        )?;
        std::fs::create_dir_all(repo.join("hooks"))?;
        let hook = repo.join("hooks/post-receive");
        std::fs::write(
            &hook,
            hook_text.replace("@BIN@", &bin.display().to_string()),
        )?;
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755))?;
        let pm = repo.join("pushmirror");
        std::fs::create_dir_all(pm.join("state"))?;
        std::fs::set_permissions(&pm, std::fs::Permissions::from_mode(0o700))?;
        let failing = i % 100 == 7;
        let url = if failing {
            "https://git.example.com/gone.git".to_string()
        } else {
            format!("/srv/mirrors/repo{i:05}.git")
        };
        std::fs::write(
            pm.join("config.yaml"),
            format!("mirrors:\n- name: backup\n  url: {url}\n"),
        )?;
        let state = if failing {
            format!(
                r#"{{"cursor": 3, "update_status": "failed", "last_update_started_at": {t0},
                "last_update_at": {t1}, "last_successful_update_at": {old},
                "last_error": "git push: fatal: unable to access: Could not resolve host",
                "consecutive_failures": 8, "gave_up_at_seq": 4, "syncs": 40, "pushes": 30}}"#,
                t0 = now - 60_000,
                t1 = now - 59_000,
                old = now - 86_400_000
            )
        } else {
            format!(
                r#"{{"cursor": 4, "update_status": "finished", "last_update_started_at": {t0},
                "last_update_at": {t1}, "last_successful_update_at": {t1},
                "syncs": 40, "pushes": 30, "refs_pushed_last": 1, "refs_pushed_total": 55,
                "replication_delay": {{"counts": [20, 8, 5, 3, 2, 1, 1, 0, 0, 0, 0], "sum_ms": 96000}},
                "sync_duration": {{"counts": [25, 8, 4, 2, 1, 0, 0, 0, 0, 0], "sum_ms": 21000}}}}"#,
                t0 = now - 60_000,
                t1 = now - 59_500
            )
        };
        std::fs::write(pm.join("state/backup.json"), state)?;
        let body = if failing {
            format!(
                "v1 4 {t} {t} u {z} {o} refs/heads/main",
                t = now - 120_000,
                z = "0".repeat(40),
                o = "1".repeat(40)
            )
        } else {
            format!("v1 4 {now} {now} m - - -")
        };
        let crc = crc32fast::hash(body.as_bytes());
        std::fs::write(pm.join("spool"), format!("{body} {crc:08x}\n"))?;
    }
    Ok(())
}
