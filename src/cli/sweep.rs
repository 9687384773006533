//! `sweep`: retry and catch up every repository under a root, within the concurrency limit.

use super::*;

/// What `sweep` found to do for one repository.
#[derive(Default)]
pub(super) struct SweepWork {
    /// Mirrors to sync now: a failed sync whose retry is due, or no sync yet.
    pub(crate) forces: Vec<String>,
    /// Some enabled mirror has updates it has not confirmed and is not waiting for a retry
    /// backoff (that one is left to a later sweep).
    pub(crate) pending: bool,
    pub(crate) why: Vec<&'static str>,
}

pub(super) fn sweep_work(
    paths: &RepoPaths,
    loaded: &config::Loaded,
    now: u64,
) -> Result<SweepWork, Fail> {
    let mut w = SweepWork::default();
    let enabled: Vec<&config::Effective> =
        loaded.mirrors.iter().filter(|e| e.mirror.enabled).collect();
    if enabled.is_empty() {
        return Ok(w);
    }
    // A repository only a server rule reaches may not have pushmirror/ yet, nor a spool:
    // nothing is pending. (Without a spool no lock file is made either: sweep run as root
    // must not leave a root-owned spool.lock in a repository it then skips.)
    let spool_path = Spool::new(&paths.dir).path();
    let contents = if spool_path.symlink_metadata().is_ok() {
        let spool = Spool::new(&paths.dir);
        spool.lock().and_then(|l| spool.read(&l))?
    } else {
        Default::default()
    };
    let mut top_cursor = 0;
    for e in enabled {
        let name = &e.mirror.name;
        let st = state::load(&paths.state_dir(), name)?;
        top_cursor = top_cursor.max(st.cursor);
        let pending = crate::flusher::pending_for(&contents, name, st.cursor);
        // A sync that ran to the end with divergent or refused refs is `failed` without pending
        // work: retrying cannot help, so it is left alone.
        let retry_due = st.update_status == UpdateStatus::Failed
            && (st.gave_up_at_seq.is_some()
                || (pending.is_some() && st.next_retry_at.is_none_or(|t| t <= now)));
        // A mirror added by a server rule after the repository's last push has never synced.
        let never = st.last_update_started_at.is_none();
        if retry_due {
            w.why.push("retry");
        }
        if never {
            w.why.push("first sync");
        }
        // LFS objects the last sync found missing upstream are looked for again: a flusher
        // does so on its backoff while it runs; once those re-checks ran out (or the flusher
        // is gone), every sweep looks once.
        let lfs_recheck = !st.lfs_missing_objects.is_empty()
            && st.lfs_recheck_at.is_none_or(|t| t <= now)
            && crate::mirror::lfs::enabled(&paths.git_dir, &e.lfs);
        if lfs_recheck {
            w.why.push("lfs objects missing");
        }
        if retry_due || never || lfs_recheck {
            w.forces.push(name.clone());
        }
        // A failed mirror still in its backoff has nothing to do yet: a later sweep (or push)
        // retries it once the backoff is over.
        let in_backoff = st.consecutive_failures > 0 && st.next_retry_at.is_some_and(|t| t > now);
        // Except a refusal a moment cures (the mirror could not lock a ref, typically because
        // the orphaned push of a killed flusher still held it): the flusher that would have
        // retried it in milliseconds may be gone, so it is not left for a later sweep.
        let transient = !st.rejected_refs.is_empty()
            && st
                .rejected_refs
                .iter()
                .all(|r| crate::flusher::is_transient_rejection(r));
        let waiting =
            !retry_due && in_backoff && !transient && st.update_status == UpdateStatus::Failed;
        let pending = pending.is_some() && !waiting;
        if pending && !retry_due && !never {
            w.why.push("pending");
            // A retry that was started and never recorded (its flusher was killed): the
            // backoff it was under belongs to a flusher that is gone, so it gets its one
            // attempt now.
            if in_backoff {
                w.forces.push(name.clone());
            }
        }
        w.pending |= pending;
    }
    // The spool ends below a cursor (lost, cut back, or numbered from a stale `cursor-floor`):
    // nothing looks pending, but the flusher repairs the numbering and syncs every mirror in
    // full.
    if contents.last_seq() < top_cursor {
        w.why.push("spool lost");
        w.pending = true;
    }
    w.why.sort_unstable();
    w.why.dedup();
    Ok(w)
}

/// `sweep`: every repository under the root (`--root`, else `root` of the server config) with
/// an enabled mirror that has pending updates, a failed sync whose retry is due, or no sync yet
/// gets a flusher (`flush --once`: one attempt per due mirror; a failure's backoff is left to
/// the next sweep or push); a repository with nothing to do gets no process. At most
/// `concurrency` run at once (and they share the server-wide push slots); a new one starts as
/// soon as one exits. It waits for them, so a systemd oneshot service or a cron job ends when the
/// work does. Exit 1 when some repository could not be examined (it is named; the rest still run).
pub(super) fn sweep(root: Option<&Path>) -> Result<i32, Fail> {
    let (server, server_path) = config::ServerConfig::load()?;
    let Some(root) = root.map(Path::to_path_buf).or_else(|| server.root.clone()) else {
        return Err(usage(format!(
            "sweep needs --root DIR (or `root:` in {})",
            server_path.display()
        )));
    };
    if !root.is_dir() {
        return Err(usage(format!("--root {}: not a directory", root.display())));
    }
    if server.silent {
        println!(
            "sweep: silent mode is on in {}: no mirror is contacted",
            server_path.display()
        );
        return Ok(0);
    }
    // One sweep per root at a time, whichever node runs it: every node's timer may fire, the
    // first takes the lock and the others leave it the work.
    let _leader = match sweep_lock(&root) {
        Ok(Some(lock)) => Some(lock),
        Ok(None) => {
            println!(
                "sweep: another sweep is running over {}; leaving the work to it",
                root.display()
            );
            return Ok(0);
        }
        Err(e) => {
            eprintln!(
                "git-pushmirror: warning: {e}; sweeps on several nodes sharing this root may overlap"
            );
            None
        }
    };
    for w in crate::locks::warnings(&root) {
        eprintln!("git-pushmirror: warning: {w}");
    }
    let (repos, unreadable) = crate::ops::fleet::find_all(&root);
    let exe = std::env::current_exe()?;
    // Targets server rules created for repositories that are gone (`propagate_deletion`);
    // their names are relative to the server's root.
    let mut errors = unreadable.len();
    for e in &unreadable {
        eprintln!("git-pushmirror: {}; not swept", crate::text::one_line(e));
    }
    errors += match &server.root {
        Some(server_root) => {
            crate::ops::created::propagate(&server, &server_path, server_root, &exe)
        }
        None => 0,
    };
    let mut running = Children::default();
    let mut started = 0usize;
    for git_dir in repos {
        let paths = RepoPaths::new(&git_dir);
        let work = config::load(&paths)
            .map_err(Fail::from)
            .and_then(|loaded| sweep_work(&paths, &loaded, crate::time::now_ms()));
        let work = match work {
            Ok(w) => w,
            Err(Fail(_, e)) => {
                eprintln!(
                    "git-pushmirror: {}: {}; skipped",
                    crate::text::path_text(&git_dir),
                    crate::text::one_line(&e)
                );
                errors += 1;
                continue;
            }
        };
        if work.forces.is_empty() && !work.pending {
            continue;
        }
        // Root would make the force records, the flusher's state and its log root's, and the
        // owner's next push could not spool: such a repository is named and skipped, as
        // `add` and the other writing commands refuse it.
        if let Err(Fail(_, e)) = refuse_root_on_anothers_repo(&git_dir, "sweep") {
            eprintln!("git-pushmirror: {}; skipped", crate::text::one_line(&e));
            errors += 1;
            continue;
        }
        if !work.forces.is_empty() {
            paths
                .ensure()
                .map_err(|e| Fail(1, format!("{}: {e}", paths.dir.display())))?;
            let spool = Spool::new(&paths.dir);
            let lock = spool.lock()?;
            spool.append(&lock, &[], &work.forces, crate::time::now_ms())?;
        }
        while running.len() >= server.concurrency() {
            running.wait_one();
        }
        // A flusher already running for the repository keeps it (this one exits at once) and
        // picks up the force records on its next pass.
        running.add(flush_once(&exe, &git_dir)?);
        started += 1;
        println!(
            "{}: flushing ({})",
            crate::text::one_line(&crate::text::path_text(&git_dir)),
            work.why.join(", ")
        );
    }
    while !running.is_empty() {
        running.wait_one();
    }
    println!(
        "sweep: {started} repositor{} flushed{}",
        if started == 1 { "y" } else { "ies" },
        if errors > 0 {
            format!(", {errors} skipped")
        } else {
            String::new()
        }
    );
    Ok(if errors > 0 { 1 } else { 0 })
}

/// `flush --once` for one repository, detached from our output.
pub(super) fn flush_once(exe: &Path, git_dir: &Path) -> std::io::Result<std::process::Child> {
    std::process::Command::new(exe)
        .arg("--repo")
        .arg(git_dir)
        .arg("flush")
        .arg("--once")
        .env_remove("GIT_DIR")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
}

/// The sweep lock of `root` (`.pushmirror-sweep.lock` in it), or None when another sweep holds
/// it. Held by the returned file until it is dropped (or the process dies).
fn sweep_lock(root: &Path) -> Result<Option<std::fs::File>, String> {
    use fs2::FileExt;
    let path = root.join(SWEEP_LOCK);
    let file = crate::paths::open_private(&path, false)
        .map_err(|e| format!("cannot take the sweep lock {}: {e}", path.display()))?;
    match file.try_lock_exclusive() {
        Ok(()) => Ok(Some(file)),
        Err(e) if e.raw_os_error() == fs2::lock_contended_error().raw_os_error() => Ok(None),
        Err(e) => Err(format!(
            "cannot take the sweep lock {}: {e}",
            path.display()
        )),
    }
}

/// The file in a root whose lock makes one sweep the leader.
pub(super) const SWEEP_LOCK: &str = ".pushmirror-sweep.lock";

/// The flushers a sweep started, reaped as they exit (a blocking wait for any of them: no
/// polling).
#[derive(Default)]
pub(super) struct Children(std::collections::HashSet<i32>);

impl Children {
    pub(super) fn add(&mut self, child: std::process::Child) {
        // Reaped below with waitpid, not through `Child` (dropping it neither kills nor waits).
        self.0.insert(child.id() as i32);
    }

    pub(super) fn len(&self) -> usize {
        self.0.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Blocks until one of our children exits.
    pub(super) fn wait_one(&mut self) {
        loop {
            let mut status = 0;
            // SAFETY: waitpid only writes the status we pass. The sweep starts no other
            // children, so any child reaped here is one of ours.
            let pid = unsafe { libc::waitpid(-1, &mut status, 0) };
            if pid > 0 {
                if self.0.remove(&pid) {
                    return;
                }
                continue;
            }
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            // ECHILD: nothing left to wait for.
            self.0.clear();
            return;
        }
    }
}
