//! `sweep`: retry and catch up every repository under a root, within the concurrency limit.

use super::*;

/// What `sweep` found to do for one repository.
#[derive(Default)]
pub(super) struct SweepWork {
    /// Mirrors to sync now: a failed sync whose retry is due, or no sync yet.
    pub(crate) forces: Vec<String>,
    /// Some enabled mirror has updates it has not confirmed.
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
    // A repository only a server rule reaches may not have pushmirror/ yet: nothing is pending.
    let contents = if paths.dir.is_dir() {
        let spool = Spool::new(&paths.dir);
        spool.lock().and_then(|l| spool.read(&l))?
    } else {
        Default::default()
    };
    for e in enabled {
        let name = &e.mirror.name;
        let st = state::load(&paths.state_dir(), name)?;
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
        if retry_due || never {
            w.forces.push(name.clone());
        }
        if pending.is_some() && !retry_due && !never {
            w.why.push("pending");
        }
        w.pending |= pending.is_some();
    }
    w.why.sort_unstable();
    w.why.dedup();
    Ok(w)
}

/// `sweep`: every repository under the root (`--root`, else `root` of the server config) with
/// an enabled mirror that has pending updates, a failed sync whose retry is due, or no sync yet
/// gets a flusher; at most `concurrency` run at once (and they share the server-wide push
/// slots). It waits for them, so a systemd oneshot service or a cron job ends when the work
/// does. Exit 1 when some repository could not be examined (it is named; the rest still run).
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
    let mut repos = Vec::new();
    find_repos(&root, 0, &mut repos);
    let exe = std::env::current_exe()?;
    let mut running: Vec<std::process::Child> = Vec::new();
    let mut started = 0usize;
    let mut errors = 0usize;
    for git_dir in repos {
        let paths = RepoPaths::new(&git_dir);
        let work = config::load(&paths)
            .map_err(Fail::from)
            .and_then(|loaded| sweep_work(&paths, &loaded, crate::time::now_ms()));
        let work = match work {
            Ok(w) => w,
            Err(Fail(_, e)) => {
                eprintln!("git-pushmirror: {}: {e}; skipped", git_dir.display());
                errors += 1;
                continue;
            }
        };
        if work.forces.is_empty() && !work.pending {
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
            running.retain_mut(|c| !matches!(c.try_wait(), Ok(Some(_))));
            std::thread::sleep(Duration::from_millis(50));
        }
        // A flusher already running for the repository keeps it (this one exits at once) and
        // picks up the force records on its next pass.
        let child = std::process::Command::new(&exe)
            .arg("--repo")
            .arg(&git_dir)
            .arg("flush")
            .env_remove("GIT_DIR")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        running.push(child);
        started += 1;
        println!("{}: flushing ({})", git_dir.display(), work.why.join(", "));
    }
    for mut c in running {
        let _ = c.wait();
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

/// Every repository under `dir` (not descending into one, nor following symlinks), sorted.
pub(super) fn find_repos(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    if depth > 8 {
        return;
    }
    if dir.join("HEAD").is_file() && dir.join("objects").is_dir() && dir.join("refs").is_dir() {
        out.push(dir.to_path_buf());
        return;
    }
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = rd
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    entries.sort();
    for e in entries {
        find_repos(&e, depth + 1, out);
    }
}
