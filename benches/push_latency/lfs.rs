//! Bench rows of Git LFS mirroring (docs/lfs.md): a sync whose new commits carry no LFS pointer
//! (LFS on vs off, same repository), 100 × 1 MiB objects to an empty LFS server, and 1 new object
//! on a repository with 10,000 objects already mirrored, each against `git lfs push --all` from
//! the upstream. The LFS server is the test suite's (giftless behind nginx with TLS and basic
//! auth). LFS content is made with plumbing (sha256sum, hash-object, mktree), not `git lfs
//! track`, so that setting up 10,000 objects takes seconds.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::servers::lfs::LfsServer;
use super::{ms, path_str, timed, Bench, Stats, Table};

const USER: &str = "bench";
const PASSWORD: &str = "bench-lfs-pw";
/// Rounds of the no-pointer sync (each: LFS on, LFS off).
const NO_POINTER_RUNS: usize = 10;
/// Runs of 100 × 1 MiB to an empty server (ours and git-lfs each).
const FIRST_RUNS: usize = 2;
/// Rounds of "1 new object on 10,000" (ours and git-lfs each).
const ONE_NEW_RUNS: usize = 3;
const MANY_OBJECTS: usize = 10_000;

pub(super) fn rows(b: &Bench, table: &mut Table) {
    let available = ["git-lfs", "nginx", "fcgiwrap", "python3"]
        .iter()
        .all(|p| super::servers::have(p))
        && std::process::Command::new("python3")
            .args(["-c", "import giftless.app"])
            .output()
            .is_ok_and(|o| o.status.success());
    if !available {
        table.row(
            "LFS rows",
            0,
            "-".into(),
            "-".into(),
            "SKIPPED: git-lfs or giftless not installed (tests/install-deps.sh)".into(),
        );
        return;
    }
    let srv = b.path("lfs-srv");
    std::fs::create_dir_all(&srv).expect("lfs server root");
    let server = LfsServer::start(&srv, USER, PASSWORD, None);
    let pwfile = b.path("lfs.password");
    std::fs::write(&pwfile, PASSWORD).expect("password file");
    set_mode(&pwfile, 0o600);
    let askpass = b.path("lfs-askpass.sh");
    super::servers::write_askpass(&askpass, USER, PASSWORD);
    let ctx = Ctx {
        b,
        server: &server,
        pwfile,
        askpass,
        srv,
    };
    no_pointer_sync(&ctx, table);
    hundred_mib(&ctx, table);
    one_new_of_many(&ctx, table);
    b.wait_flushers(Duration::from_secs(120));
}

struct Ctx<'a> {
    b: &'a Bench,
    server: &'a LfsServer,
    pwfile: PathBuf,
    askpass: PathBuf,
    srv: PathBuf,
}

fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

impl Ctx<'_> {
    /// An empty bare repository behind the LFS server, and its HTTPS URL.
    fn target(&self, name: &str) -> String {
        self.b.init_bare(&self.srv.join(name));
        self.server.https.url(name)
    }

    fn add(&self, up: &Path, name: &str, url: &str) {
        self.b.pm_ok(
            up,
            &[
                "add",
                name,
                url,
                "--username",
                USER,
                "--password-file",
                path_str(&self.pwfile),
                "--ca-file",
                path_str(&self.server.https.ca_file),
                "--timeout",
                "10m",
            ],
        );
    }

    /// `git lfs push --all <url>` from the upstream itself (it has every object).
    fn lfs_push_all(&self, up: &Path, url: &str) -> Duration {
        timed(
            self.b
                .cmd("git")
                .arg("-C")
                .arg(up)
                .args(["lfs", "push", "--all", url])
                .env("GIT_ASKPASS", &self.askpass)
                .env("GIT_SSL_CAINFO", &self.server.https.ca_file),
        )
    }

    /// Waits for the mirror's first sync and returns its recorded duration, or why not.
    fn first_sync(&self, up: &Path, name: &str) -> Result<Duration, String> {
        match self.b.first_sync(up, name, Duration::from_secs(900)) {
            Some(st) if st["update_status"] == "finished" => Ok(self.b.last_sync_of(&st).0),
            Some(st) => Err(format!(
                "FAILED: {}",
                st["last_error"].as_str().unwrap_or("?")
            )),
            None => Err("no result after 900 s".into()),
        }
    }

    /// `sync NAME --wait`, timed; Err when it failed.
    fn sync_wait(&self, up: &Path, name: &str) -> Result<Duration, String> {
        let t = Instant::now();
        let out = self
            .b
            .cmd(&self.b.bin)
            .arg("--repo")
            .arg(up)
            .args(["sync", name, "--wait"])
            .output()
            .expect("run sync");
        let d = t.elapsed();
        if out.status.success() {
            Ok(d)
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    }
}

/// Writes `contents` as LFS objects into `up`'s store and returns the tree entries of their
/// pointers (`100644 blob <id>\t<name>`), made with one sha256sum and one hash-object.
fn lfs_files(b: &Bench, up: &Path, prefix: &str, contents: &[Vec<u8>]) -> Vec<String> {
    let scratch = b.path(&format!("lfs-scratch-{prefix}"));
    std::fs::create_dir_all(&scratch).expect("scratch");
    let mut names = Vec::new();
    for (i, c) in contents.iter().enumerate() {
        let p = scratch.join(format!("{prefix}{i:05}.bin"));
        std::fs::write(&p, c).expect("write content");
        names.push(p);
    }
    let mut sums = String::new();
    for chunk in names.chunks(1000) {
        let out = std::process::Command::new("sha256sum")
            .args(chunk)
            .output()
            .expect("sha256sum");
        sums.push_str(&String::from_utf8_lossy(&out.stdout));
    }
    let store = up.join("lfs").join("objects");
    let mut pointer_paths = String::new();
    let mut entries = Vec::new();
    for (line, (path, c)) in sums.lines().zip(names.iter().zip(contents)) {
        let oid = line.split_whitespace().next().expect("sum");
        let dir = store.join(&oid[0..2]).join(&oid[2..4]);
        std::fs::create_dir_all(&dir).expect("store dir");
        std::fs::rename(path, dir.join(oid)).expect("move object");
        let pointer = path.with_extension("pointer");
        std::fs::write(
            &pointer,
            format!(
                "version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {}\n",
                c.len()
            ),
        )
        .expect("pointer");
        pointer_paths.push_str(&format!("{}\n", pointer.display()));
        entries.push(
            path.file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned(),
        );
    }
    // In chunks: git_stdin writes all input before it reads, so the output must fit a pipe.
    let mut ids = String::new();
    let lines: Vec<&str> = pointer_paths.lines().collect();
    for chunk in lines.chunks(1000) {
        let input = format!("{}\n", chunk.join("\n"));
        ids.push_str(&b.git_stdin(up, &["hash-object", "-w", "--stdin-paths"], &input));
        ids.push('\n');
    }
    let _ = std::fs::remove_dir_all(&scratch);
    ids.lines()
        .zip(entries)
        .map(|(id, name)| format!("100644 blob {id}\t{name}"))
        .collect()
}

/// A commit on `up`'s main with `entries` (plus the previous tree's) as its tree; no hook runs.
fn commit(b: &Bench, up: &Path, entries: &mut [String], msg: &str) {
    entries.sort_by(|a, b| a.split('\t').nth(1).cmp(&b.split('\t').nth(1)));
    let tree = b.git_stdin(up, &["mktree"], &format!("{}\n", entries.join("\n")));
    let parent = b
        .git_out(up, &["rev-parse", "-q", "--verify", "refs/heads/main"])
        .stdout;
    let parent = String::from_utf8_lossy(&parent).trim().to_string();
    let mut args = vec!["commit-tree", tree.trim(), "-m", msg];
    if !parent.is_empty() {
        args.extend(["-p", &parent]);
    }
    let c = b.git(up, &args);
    b.git(up, &["update-ref", "refs/heads/main", &c]);
}

fn bytes(seed: usize, len: usize) -> Vec<u8> {
    let mut x = (seed as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A sync whose new commit has no pointer, in a repository with LFS history: LFS on (the scan of
/// the new commits runs) vs off, alternating, same upstream, both to HTTPS mirrors.
fn no_pointer_sync(c: &Ctx<'_>, table: &mut Table) {
    eprintln!("bench: lfs: sync without new pointers, {NO_POINTER_RUNS} rounds");
    let b = c.b;
    let up = b.bare("lfs-nopointer.git");
    let mut entries = lfs_files(
        b,
        &up,
        "h",
        &(0..20).map(|i| bytes(i, 1000)).collect::<Vec<_>>(),
    );
    commit(b, &up, &mut entries, "lfs history");
    for (name, lfs) in [("on", "on"), ("off", "off")] {
        let url = c.target(&format!("nopointer-{name}.git"));
        c.add(&up, name, &url);
        b.pm_ok(&up, &["set", name, &format!("lfs={lfs}")]);
        let _ = c.sync_wait(&up, name);
    }
    b.wait_flushers(Duration::from_secs(60));
    let (mut on, mut off) = (Vec::new(), Vec::new());
    let mut problem = None;
    for round in 0..NO_POINTER_RUNS {
        let blob = b.git_stdin(
            &up,
            &["hash-object", "-w", "--stdin"],
            &format!("round {round}\n"),
        );
        entries.retain(|e| !e.ends_with("\tplain.txt"));
        entries.push(format!("100644 blob {}\tplain.txt", blob.trim()));
        commit(b, &up, &mut entries, &format!("plain {round}"));
        for k in 0..2 {
            let (name, v) = if (round + k) % 2 == 0 {
                ("on", &mut on)
            } else {
                ("off", &mut off)
            };
            match c.sync_wait(&up, name) {
                Ok(d) => v.push(d),
                Err(e) => problem = Some(format!("{name}: {e}")),
            }
        }
    }
    let scenario = "LFS: sync of a new commit without pointers (repository with LFS history, HTTPS mirror, `sync --wait`), LFS on";
    match problem {
        Some(p) => table.row(scenario, 0, "-".into(), "-".into(), format!("FAILED: {p}")),
        None => {
            let (on, off) = (Stats::of(on), Stats::of(off));
            table.row(
                scenario,
                on.n,
                ms(on.median),
                ms(on.p99),
                format!(
                    "lfs: off on the same repository: median {} ({:.3}x; goal within 5%)",
                    ms(off.median),
                    on.median / off.median
                ),
            );
        }
    }
}

/// 100 objects of 1 MiB to an empty LFS server: our first sync after `add` vs `git lfs push
/// --all` from the upstream to another empty repository on the same server.
fn hundred_mib(c: &Ctx<'_>, table: &mut Table) {
    eprintln!("bench: lfs: 100 x 1 MiB to an empty server, {FIRST_RUNS} runs each");
    let b = c.b;
    let up = b.upstream("lfs-100.git");
    let mut entries = lfs_files(
        b,
        &up,
        "m",
        &(0..100)
            .map(|i| bytes(1000 + i, 1 << 20))
            .collect::<Vec<_>>(),
    );
    commit(b, &up, &mut entries, "100 objects");
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    let mut problem = None;
    for run in 0..FIRST_RUNS {
        for k in 0..2 {
            if (run + k) % 2 == 0 {
                let name = format!("first{run}");
                let url = c.target(&format!("hundred-ours{run}.git"));
                c.add(&up, &name, &url);
                match c.first_sync(&up, &name) {
                    Ok(d) => ours.push(d),
                    Err(e) => problem = Some(e),
                }
                b.pm_ok(&up, &["remove", &name]);
                b.wait_flushers(Duration::from_secs(120));
            } else {
                let url = c.target(&format!("hundred-lfs{run}.git"));
                theirs.push(c.lfs_push_all(&up, &url));
            }
        }
    }
    let scenario = "LFS: 100 objects x 1 MiB to an empty LFS server: our first sync (refs too)";
    let theirs = Stats::of(theirs);
    match problem {
        Some(p) => table.row(scenario, 0, "-".into(), "-".into(), p),
        None => {
            let ours = Stats::of(ours);
            table.row(
                scenario,
                ours.n,
                ms(ours.median),
                ms(ours.p99),
                format!(
                    "`git lfs push --all`: median {} → {:.2}x (goal ≤ 1.0x)",
                    ms(theirs.median),
                    ours.median / theirs.median
                ),
            );
        }
    }
}

/// 1 new object on a repository whose 10,000 objects are already on the mirror: our sync vs
/// `git lfs push --all` (which asks the server about all 10,001).
fn one_new_of_many(c: &Ctx<'_>, table: &mut Table) {
    eprintln!("bench: lfs: {MANY_OBJECTS} objects mirrored, then 1 new, {ONE_NEW_RUNS} rounds");
    let b = c.b;
    let up = b.upstream("lfs-10k.git");
    let mut entries = lfs_files(
        b,
        &up,
        "k",
        &(0..MANY_OBJECTS)
            .map(|i| format!("small object {i}\n").into_bytes())
            .collect::<Vec<_>>(),
    );
    commit(b, &up, &mut entries, "10,000 objects");
    let ours_url = c.target("many-ours.git");
    let lfs_url = c.target("many-lfs.git");
    c.add(&up, "many", &ours_url);
    let first = c.first_sync(&up, "many");
    let lfs_first = c.lfs_push_all(&up, &lfs_url);
    b.wait_flushers(Duration::from_secs(120));
    match &first {
        Ok(d) => table.row(
            &format!("LFS: first sync of {MANY_OBJECTS} small objects to an empty LFS server"),
            1,
            ms(d.as_secs_f64() * 1000.0),
            "-".into(),
            format!(
                "`git lfs push --all`: {}",
                ms(lfs_first.as_secs_f64() * 1000.0)
            ),
        ),
        Err(e) => {
            table.row(
                &format!("LFS: first sync of {MANY_OBJECTS} small objects"),
                0,
                "-".into(),
                "-".into(),
                e.clone(),
            );
            return;
        }
    }
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    let mut problem = None;
    for round in 0..ONE_NEW_RUNS {
        let mut new = lfs_files(
            b,
            &up,
            &format!("n{round}-"),
            &[bytes(5000 + round, 100_000)],
        );
        entries.append(&mut new);
        commit(b, &up, &mut entries, &format!("one more {round}"));
        for k in 0..2 {
            if (round + k) % 2 == 0 {
                match c.sync_wait(&up, "many") {
                    Ok(d) => ours.push(d),
                    Err(e) => problem = Some(e),
                }
            } else {
                theirs.push(c.lfs_push_all(&up, &lfs_url));
            }
        }
    }
    let sent = b.mirror_status(&up, "many")["lfs_objects_sent_last"].clone();
    let scenario = format!(
        "LFS: 1 new object on {MANY_OBJECTS} already mirrored: our sync (`sync --wait`; sent {sent} object)"
    );
    let theirs = Stats::of(theirs);
    match problem {
        Some(p) => table.row(&scenario, 0, "-".into(), "-".into(), format!("FAILED: {p}")),
        None => {
            let ours = Stats::of(ours);
            table.row(
                &scenario,
                ours.n,
                ms(ours.median),
                ms(ours.p99),
                format!(
                    "`git lfs push --all`: median {} → {:.2}x (goal ≤ 0.2x)",
                    ms(theirs.median),
                    ours.median / theirs.median
                ),
            );
        }
    }
}
