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
                            st.last_error.unwrap_or_default()
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
