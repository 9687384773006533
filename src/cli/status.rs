//! `status`: per-mirror health, as text or `--json`.

use super::*;

/// Per-mirror status as JSON; also tells whether the mirror is unhealthy.
pub(super) fn mirror_status(
    paths: &RepoPaths,
    e: &config::Effective,
    contents: &crate::spool::Contents,
    now: u64,
) -> (Value, bool) {
    let m = &e.mirror;
    let (st, state_err) = match state::load(&paths.state_dir(), &m.name) {
        Ok(s) => (s, None),
        Err(err) => (Default::default(), Some(err.to_string())),
    };
    let pending = crate::flusher::pending_for(contents, &m.name, st.cursor);
    let oldest_ms = pending.as_ref().map(|p| now.saturating_sub(p.first_ms));
    let behind = m.enabled && oldest_ms.is_some_and(|a| a > e.max_delay.as_millis() as u64);
    // A mirror whose last attempt failed stays unhealthy until an attempt succeeds, also
    // while the retry runs (`started`) or waits (`scheduled`): only success clears last_error.
    let failed = m.enabled
        && (st.update_status == UpdateStatus::Failed
            || st.last_error.is_some()
            || st.consecutive_failures > 0
            || state_err.is_some());
    let ts = |t: Option<u64>| t.map(crate::time::rfc3339);
    let mut v = mirror_json(m);
    let extra = json!({
        "update_status": st.update_status.as_str(),
        "last_update_started_at": ts(st.last_update_started_at),
        "last_update_at": ts(st.last_update_at),
        "last_successful_update_at": ts(st.last_successful_update_at),
        "last_error": state_err.or(st.last_error.clone()),
        "divergent_refs": st.divergent_refs,
        "rejected_refs": st.rejected_refs,
        "pending_updates": pending.as_ref().map_or(0, |p| p.count),
        "oldest_pending_age_seconds": oldest_ms.map(|a| a / 1000),
        "behind_max_delay": behind,
        "consecutive_failures": st.consecutive_failures,
        "next_retry_at": ts(st.next_retry_at),
        "gave_up": st.gave_up_at_seq.is_some(),
        "syncs": st.syncs,
        "pushes": st.pushes,
        "refs_pushed_last": st.refs_pushed_last,
        "refs_pushed_total": st.refs_pushed_total,
        "bytes_pushed_last": st.bytes_pushed_last,
        "bytes_pushed_total": st.bytes_pushed_total,
        "kept_because_of_dangling_head": st.kept_by_dangling_head,
        "lfs": e.lfs.mode_name(),
        "lfs_objects_sent_last": st.lfs_objects_last,
        "lfs_bytes_sent_last": st.lfs_bytes_last,
        "lfs_missing": st.lfs_missing,
        "lfs_missing_count": st.lfs_missing_count,
        "lfs_missing_recheck_at": ts(st.lfs_recheck_at),
        "lfs_last_error": st.lfs_last_error,
        "created": st.created,
        "created_at": ts(st.created_at),
        "created_in_last_sync": st.created_at.is_some() && st.created_at == st.last_update_at,
        "healthy": !(failed || behind),
    });
    if let (Value::Object(a), Value::Object(b)) = (&mut v, extra) {
        a.extend(b);
    }
    if let (Value::Object(a), Value::Object(b)) = (&mut v, ssh_json(e)) {
        a.extend(b);
    }
    (v, failed || behind)
}

pub(super) fn status(paths: &RepoPaths, name: Option<&str>, json_out: bool) -> Result<i32, Fail> {
    let loaded = config::load(paths)?;
    let spool = Spool::new(&paths.dir);
    let contents = if paths.dir.is_dir() {
        spool.lock().and_then(|l| spool.read(&l))?
    } else {
        Default::default()
    };
    let now = crate::time::now_ms();
    let mut mirrors = Vec::new();
    let mut unhealthy = false;
    for e in loaded
        .mirrors
        .iter()
        .filter(|e| name.is_none_or(|n| e.mirror.name == n))
    {
        let (mut v, bad) = mirror_status(paths, e, &contents, now);
        v["from_rule"] = json!(from_rule(&loaded, e));
        unhealthy |= bad;
        mirrors.push(v);
    }
    if let Some(n) = name {
        if mirrors.is_empty() {
            return Err(no_such_mirror(paths, n));
        }
    }
    let hook = crate::install::check(&paths.git_dir);
    let write_error = crate::health::write_error(&paths.dir);
    unhealthy |= write_error.is_some();
    let spool_lost = crate::health::spool_lost(paths, &contents);
    unhealthy |= spool_lost.is_some();
    let head = crate::health::dangling_head(&paths.git_dir);
    let doc = json!({
        "repository": crate::text::path_text(&paths.git_dir),
        "silent_mode": loaded.server.silent,
        "hook_installed": hook.is_ok(),
        "hook_problem": hook.err(),
        "flusher_running": crate::locks::held(&paths.flusher_alive()),
        "spool_damaged_records": contents.damage.len(),
        "write_error": write_error,
        "spool_lost": spool_lost,
        "upstream_head": head.as_ref().map(|h| h.to_json()),
        "upstream_head_problem": head.as_ref().map(|h| h.message()),
        "mirrors": mirrors,
    });
    if json_out {
        print_json(&doc)?;
    } else {
        print_status(&doc);
    }
    Ok(if unhealthy { 1 } else { 0 })
}

pub(super) fn print_status(doc: &Value) {
    // Every text from a state file or a server (an error, a path) is shown as one line with
    // control characters escaped: nothing reaches the terminal raw.
    let s = |v: &Value| match v {
        Value::Null => "-".to_string(),
        Value::String(s) => crate::text::one_line(s),
        other => crate::text::one_line(&other.to_string()),
    };
    println!("repository: {}", s(&doc["repository"]));
    if let Some(problem) = doc["error"].as_str() {
        println!("ERROR: {problem}", problem = crate::text::one_line(problem));
    }
    if doc["silent_mode"] == json!(true) {
        println!("SILENT MODE: no mirror is contacted; updates accumulate in the spool");
    }
    if let Some(problem) = doc["hook_problem"].as_str() {
        println!(
            "warning: {problem}",
            problem = crate::text::one_line(problem)
        );
    }
    if let Some(problem) = doc["write_error"].as_str() {
        println!(
            "WRITE ERROR: {problem}",
            problem = crate::text::one_line(problem)
        );
    }
    if let Some(problem) = doc["spool_lost"].as_str() {
        println!(
            "SPOOL LOST: {problem}",
            problem = crate::text::one_line(problem)
        );
    }
    if let Some(problem) = doc["upstream_head_problem"].as_str() {
        println!(
            "warning: {problem}",
            problem = crate::text::one_line(problem)
        );
    }
    println!(
        "flusher: {}",
        if doc["flusher_running"] == json!(true) {
            "running"
        } else {
            "idle"
        }
    );
    let mirrors = doc["mirrors"].as_array().cloned().unwrap_or_default();
    if mirrors.is_empty() {
        println!("no mirrors");
    }
    for m in mirrors {
        println!();
        println!(
            "{}  {}  [{}]{}",
            s(&m["name"]),
            s(&m["url"]),
            s(&m["update_status"]),
            if m["enabled"] == json!(false) {
                " (disabled)"
            } else {
                ""
            }
        );
        println!("  last attempt:   {}", s(&m["last_update_started_at"]));
        println!("  last update:    {}", s(&m["last_update_at"]));
        println!("  last success:   {}", s(&m["last_successful_update_at"]));
        let oldest = &m["oldest_pending_age_seconds"];
        if oldest.is_null() {
            println!("  pending:        {}", s(&m["pending_updates"]));
        } else {
            println!(
                "  pending:        {} (oldest {}s)",
                s(&m["pending_updates"]),
                s(oldest)
            );
        }
        println!("  syncs/pushes:   {}/{}", s(&m["syncs"]), s(&m["pushes"]));
        if m["pushes"].as_u64().is_some_and(|n| n > 0) {
            println!(
                "  pushed:         {} refs, {} in all (last sync: {} refs, {})",
                s(&m["refs_pushed_total"]),
                human_bytes(m["bytes_pushed_total"].as_u64().unwrap_or(0)),
                s(&m["refs_pushed_last"]),
                human_bytes(m["bytes_pushed_last"].as_u64().unwrap_or(0)),
            );
        }
        if !m["last_error"].is_null() {
            println!("  last error:     {}", s(&m["last_error"]));
        }
        if m["lfs_objects_sent_last"].as_u64().is_some_and(|n| n > 0) {
            println!(
                "  lfs last sync:  {} objects, {} bytes",
                s(&m["lfs_objects_sent_last"]),
                s(&m["lfs_bytes_sent_last"])
            );
        }
        if m["lfs_missing_count"].as_u64().is_some_and(|n| n > 0) {
            println!(
                "  LFS MISSING:    {} object(s) upstream has only pointers for: {}",
                s(&m["lfs_missing_count"]),
                m["lfs_missing"]
                    .as_array()
                    .map(|a| a.iter().map(s).collect::<Vec<_>>().join(", "))
                    .unwrap_or_default()
            );
        }
        if !m["lfs_last_error"].is_null() {
            println!("  lfs error:      {}", s(&m["lfs_last_error"]));
        }
        if !m["created"].is_null() {
            println!(
                "  created:        {} at {}{}",
                s(&m["created"]),
                s(&m["created_at"]),
                if m["created_in_last_sync"] == true {
                    " (last sync)"
                } else {
                    ""
                }
            );
        }
        if m["divergent_refs"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
        {
            println!("  divergent:      {}", s(&m["divergent_refs"]));
        }
        if m["kept_because_of_dangling_head"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
        {
            println!(
                "  kept (HEAD):    {} (deletion held back: upstream HEAD names no branch)",
                s(&m["kept_because_of_dangling_head"])
            );
        }
        if m["behind_max_delay"] == json!(true) {
            println!("  BEHIND: pending longer than max_delay");
        }
    }
}

/// `1234567` -> `1.2 MiB` (binary units, one decimal; plain bytes below 1 KiB).
fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} bytes");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::human_bytes;

    #[test]
    fn bytes_read_like_a_human_wrote_them() {
        for (n, want) in [
            (0, "0 bytes"),
            (1023, "1023 bytes"),
            (1024, "1.0 KiB"),
            (1_572_864, "1.5 MiB"),
            (5 << 30, "5.0 GiB"),
        ] {
            assert_eq!(human_bytes(n), want);
        }
    }
}
