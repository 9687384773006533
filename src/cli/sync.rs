//! `sync [NAME] [--wait]`: force a full sync now, optionally waiting for its outcome.

use super::*;

/// Asks the flusher for a full sync now; with `wait`, blocks until every requested mirror has
/// run a sync that started after the request, and fails if any failed.
pub(super) fn sync(paths: &RepoPaths, name: Option<&str>, wait: bool) -> Result<i32, Fail> {
    let loaded = config::load(paths)?;
    let targets: Vec<&config::Effective> = loaded
        .mirrors
        .iter()
        .filter(|e| e.mirror.enabled && name.is_none_or(|n| e.mirror.name == n))
        .collect();
    if let Some(n) = name {
        find_mirror(paths, &loaded, n)?;
        if targets.is_empty() {
            return Err(Fail(
                1,
                format!("mirror `{n}` is disabled (git-pushmirror enable {n})"),
            ));
        }
    }
    if targets.is_empty() {
        return Err(Fail(1, "no enabled mirror to sync".into()));
    }
    if loaded.server.silent {
        return Err(Fail(
            1,
            format!(
                "silent mode is on in {}: no mirror is contacted",
                loaded.server_path.display()
            ),
        ));
    }
    let t0 = crate::time::now_ms();
    let forces = vec![name.unwrap_or("*").to_string()];
    crate::hook::spool_and_wake_forced(paths, &forces).map_err(|e| Fail(1, e))?;
    if !wait {
        println!("sync requested");
        return Ok(0);
    }
    let longest = targets
        .iter()
        .map(|e| e.timeout)
        .max()
        .unwrap_or(Duration::from_secs(120));
    let deadline = Instant::now() + longest * 3 + Duration::from_secs(30);
    let mut failed = false;
    let mut idle_since: Option<Instant> = None;
    for e in targets {
        loop {
            let st = state::load(&paths.state_dir(), &e.mirror.name)?;
            let done = st.last_update_started_at.is_some_and(|s| s >= t0)
                && matches!(
                    st.update_status,
                    UpdateStatus::Finished | UpdateStatus::Failed
                );
            if done {
                match st.update_status {
                    UpdateStatus::Failed => {
                        failed = true;
                        eprintln!(
                            "git-pushmirror: {}: failed: {}",
                            e.mirror.name,
                            crate::text::one_line(&st.last_error.unwrap_or_default())
                        );
                    }
                    _ => println!("{}: synced", e.mirror.name),
                }
                break;
            }
            if Instant::now() > deadline {
                return Err(Fail(
                    1,
                    format!(
                        "{}: no sync finished in time (see {})",
                        e.mirror.name,
                        paths.log().display()
                    ),
                ));
            }
            // A flusher that exited between our request and its start would leave us waiting:
            // when none has run for a while and our sync has not started, wake one again. (Just
            // after the request, the flusher we started may not hold its lock yet.)
            if crate::locks::held(&paths.flusher_alive()) {
                idle_since = None;
            } else if idle_since.get_or_insert_with(Instant::now).elapsed()
                >= Duration::from_millis(300)
            {
                idle_since = None;
                let st = state::load(&paths.state_dir(), &e.mirror.name)?;
                if st.last_update_started_at.is_none_or(|s| s < t0) {
                    crate::hook::spool_and_wake_forced(paths, &[]).map_err(|e| Fail(1, e))?;
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    Ok(if failed { 1 } else { 0 })
}

/// One mirror `sync --all` asked for: its repository and name, its masked URL (for messages)
/// and the bound on waiting for it.
struct Target {
    paths: RepoPaths,
    name: String,
    url: String,
    timeout: Duration,
}

/// The mirrors `sync --all` syncs: every enabled one under the root whose masked URL matches
/// `url_pattern` (all when None). Repositories that cannot be read are named on stderr and
/// counted.
fn all_targets(
    root: &Path,
    server: &config::ServerConfig,
    server_path: &Path,
    url_pattern: Option<&str>,
) -> (Vec<Target>, usize) {
    let (repos, unreadable) = crate::ops::fleet::find_all(root);
    let mut targets = Vec::new();
    // A directory that cannot be read hides its repositories: named, and counted as failed.
    let mut errors = unreadable.len();
    for e in &unreadable {
        eprintln!("git-pushmirror: {}; not synced", crate::text::one_line(e));
    }
    for git_dir in repos {
        let paths = RepoPaths::new(&git_dir);
        let loaded = match config::load_with(server.clone(), server_path.to_path_buf(), &paths) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("git-pushmirror: {}: {e}; skipped", git_dir.display());
                errors += 1;
                continue;
            }
        };
        let mine: Vec<Target> = loaded
            .mirrors
            .iter()
            .filter(|e| e.mirror.enabled)
            .map(|e| Target {
                paths: paths.clone(),
                name: e.mirror.name.clone(),
                url: url::mask(&e.mirror.url),
                timeout: e.timeout,
            })
            .filter(|t| url_pattern.is_none_or(|p| crate::pattern::wildmatch(p, &t.url)))
            .collect();
        if mine.is_empty() {
            continue;
        }
        if let Err(Fail(_, e)) = refuse_root_on_anothers_repo(&git_dir, "sync --all") {
            eprintln!("git-pushmirror: {e}; skipped");
            errors += 1;
            continue;
        }
        targets.extend(mine);
    }
    (targets, errors)
}

/// How a mirror's sync requested at `t0` ended: None while it has not run yet. A state file
/// that cannot be read is that mirror's failure (named with the others), not the command's.
fn outcome(t: &Target, t0: u64) -> Option<Result<(), String>> {
    let st = match state::load(&t.paths.state_dir(), &t.name) {
        Ok(st) => st,
        Err(e) => return Some(Err(e.to_string())),
    };
    let ran = st.last_update_started_at.is_some_and(|s| s >= t0);
    match st.update_status {
        UpdateStatus::Finished if ran => Some(Ok(())),
        UpdateStatus::Failed if ran => Some(Err(st.last_error.unwrap_or_default())),
        _ => None,
    }
}

/// `sync --all`: a full sync of every matching mirror under the root, one attempt each (the
/// `flush --once` a sweep runs), at most `concurrency` repositories at a time. A repository
/// whose flusher already runs hands the request to that flusher (our child exits at once);
/// `wait` waits for those syncs as well. Exit 1 if any sync failed or a repository was skipped.
pub(super) fn sync_all(
    root: Option<&Path>,
    url_pattern: Option<&str>,
    wait: bool,
) -> Result<i32, Fail> {
    let (server, server_path) = config::ServerConfig::load()?;
    let root = crate::ops::fleet::resolve_root(root, &server, &server_path, "sync --all")
        .map_err(usage)?;
    if server.silent {
        return Err(Fail(
            1,
            format!(
                "silent mode is on in {}: no mirror is contacted",
                server_path.display()
            ),
        ));
    }
    let (targets, errors) = all_targets(&root, &server, &server_path, url_pattern);
    if targets.is_empty() {
        return Err(Fail(
            1,
            match url_pattern {
                Some(p) => format!(
                    "no enabled mirror under {} has a URL matching `{p}` (URLs as `status` shows them; `*` stops at `/`, `**` crosses it)",
                    root.display()
                ),
                None => format!("no enabled mirror under {}", root.display()),
            },
        ));
    }
    // The repositories in path order, each with the names of its mirrors to sync.
    let mut repos: Vec<(&RepoPaths, Vec<String>)> = Vec::new();
    for t in &targets {
        match repos.last_mut() {
            Some((p, names)) if p.git_dir == t.paths.git_dir => names.push(t.name.clone()),
            _ => repos.push((&t.paths, vec![t.name.clone()])),
        }
    }
    let t0 = crate::time::now_ms();
    let exe = std::env::current_exe()?;
    let progress = Progress::new(repos.len());
    let mut running = super::sweep::Children::default();
    let mut skipped = errors;
    for (done, (paths, names)) in repos.iter().enumerate() {
        let requested = paths.ensure().map_err(|e| e.to_string()).and_then(|()| {
            let spool = Spool::new(&paths.dir);
            let lock = spool.lock().map_err(|e| e.to_string())?;
            spool
                .append(&lock, &[], names, crate::time::now_ms())
                .map_err(|e| e.to_string())
        });
        if let Err(e) = requested {
            eprintln!("git-pushmirror: {}: {e}; skipped", paths.dir.display());
            skipped += 1;
            continue;
        }
        while running.len() >= server.concurrency() {
            running.wait_one();
        }
        running.add(super::sweep::flush_once(&exe, &paths.git_dir)?);
        progress.show(done + 1 - running.len());
    }
    while !running.is_empty() {
        running.wait_one();
        progress.show(repos.len() - running.len());
    }
    progress.end();
    let say_failed = |t: &Target, e: &str| {
        eprintln!(
            "git-pushmirror: {}: {} ({}): failed: {e}",
            t.paths.git_dir.display(),
            t.name,
            t.url
        )
    };
    let (mut synced, mut failed, mut handed) = (0usize, 0usize, 0usize);
    let mut pending: Vec<&Target> = Vec::new();
    for t in &targets {
        match outcome(t, t0) {
            Some(Ok(())) => synced += 1,
            Some(Err(e)) => {
                failed += 1;
                say_failed(t, &e);
            }
            None => pending.push(t),
        }
    }
    if wait {
        let longest = pending.iter().map(|t| t.timeout).max().unwrap_or_default();
        let deadline = Instant::now() + longest * 3 + Duration::from_secs(30);
        while let Some(t) = pending.first().copied() {
            match outcome(t, t0) {
                Some(Ok(())) => synced += 1,
                Some(Err(e)) => {
                    failed += 1;
                    say_failed(t, &e);
                }
                None if Instant::now() > deadline => {
                    eprintln!(
                        "git-pushmirror: {}: {}: no sync finished in time (see {})",
                        t.paths.git_dir.display(),
                        t.name,
                        t.paths.log().display()
                    );
                    failed += 1;
                }
                None => {
                    // The flusher that took the request may have exited without seeing it:
                    // the force record is in the spool, a new one acts on it.
                    if !crate::locks::held(&t.paths.flusher_alive()) {
                        crate::hook::spool_and_wake_forced(&t.paths, &[])
                            .map_err(|e| Fail(1, e))?;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
            }
            pending.remove(0);
        }
    } else {
        handed = pending.len();
    }
    println!(
        "sync --all: {synced} mirror(s) synced, {failed} failed{}{}",
        if handed > 0 {
            format!(", {handed} handed to running flushers")
        } else {
            String::new()
        },
        if skipped > 0 {
            format!(
                ", {skipped} repositor{} skipped",
                if skipped == 1 { "y" } else { "ies" }
            )
        } else {
            String::new()
        }
    );
    Ok(if failed > 0 || skipped > 0 { 1 } else { 0 })
}

/// The `done/total` line `sync --all` keeps up to date on stderr, only when that is a terminal.
struct Progress {
    total: usize,
    tty: bool,
}

impl Progress {
    fn new(total: usize) -> Progress {
        // SAFETY: isatty only inspects the descriptor.
        let tty = unsafe { libc::isatty(2) } == 1;
        Progress { total, tty }
    }

    fn show(&self, done: usize) {
        if self.tty {
            eprint!("\rsync --all: {done}/{} repositories", self.total);
        }
    }

    fn end(&self) {
        if self.tty {
            eprintln!("\rsync --all: {}/{} repositories", self.total, self.total);
        }
    }
}
