//! Prometheus metrics in the text exposition format (version 0.0.4), for node_exporter's
//! textfile collector: one family per metric, `_seconds`/`_total` suffixes, base units, no
//! timestamps (the textfile collector refuses them). Labels are the repository's path relative
//! to the root and the mirror's name: never a URL, so no credential can reach a label.

use std::fmt::Write as _;

use crate::config::Effective;
use crate::flusher::{pending_for, Pending};
use crate::ops::fleet::{Fleet, RepoScan};
use crate::state::{self, MirrorState};

/// One mirror as the metrics see it.
struct Sample {
    labels: String,
    enabled: bool,
    healthy: bool,
    state: MirrorState,
    state_ok: bool,
    pending: Option<Pending>,
}

/// Escapes a label value (backslash, double quote, newline).
pub fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Renders the whole exposition. `healthy` decides a mirror's health exactly as `status` does.
pub fn render(
    fleet: &Fleet,
    now_ms: u64,
    healthy: &dyn Fn(&RepoScan, &Effective) -> bool,
) -> String {
    let started = std::time::Instant::now();
    let mut samples = Vec::new();
    let mut config_errors = 0u64;
    let mut spool_errors = 0u64;
    let mut flushers = 0u64;
    let mut hooks: Vec<String> = Vec::new();
    fleet.each(|repo| {
        flushers += repo.flusher_running as u64;
        spool_errors += repo.spool_error.is_some() as u64;
        let Ok(loaded) = &repo.loaded else {
            config_errors += 1;
            return;
        };
        let rl = escape(&fleet.relative(&repo.paths.git_dir));
        if let Some(h) = &repo.hook {
            hooks.push(format!("{{repository=\"{rl}\"}} {}", h.is_ok() as u8));
        }
        for e in &loaded.mirrors {
            let name = &e.mirror.name;
            let (st, state_ok) = match state::load(&repo.paths.state_dir(), name) {
                Ok(s) => (s, true),
                Err(_) => (MirrorState::default(), false),
            };
            let pending = pending_for(&repo.contents, name, st.cursor);
            samples.push(Sample {
                labels: format!("repository=\"{rl}\",mirror=\"{}\"", escape(name)),
                enabled: e.mirror.enabled,
                healthy: healthy(&repo, e),
                state: st,
                state_ok,
                pending,
            });
        }
    });
    let scan_seconds = started.elapsed().as_secs_f64();
    let mut out = String::with_capacity(samples.len() * 1200 + 4096);
    let mut family =
        |name: &str, kind: &str, help: &str, rows: &mut dyn Iterator<Item = String>| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for r in rows {
                let _ = writeln!(out, "{name}{r}");
            }
        };
    let one = |v: f64| format!(" {v}");
    // Server-wide.
    family(
        "git_pushmirror_repositories",
        "gauge",
        "Repositories found under the root.",
        &mut std::iter::once(one(fleet.dirs.len() as f64)),
    );
    family(
        "git_pushmirror_mirrors",
        "gauge",
        "Mirrors configured (by the repository or a server rule), enabled or not.",
        &mut std::iter::once(one(samples.len() as f64)),
    );
    family(
        "git_pushmirror_mirrors_unhealthy",
        "gauge",
        "Enabled mirrors that are unhealthy (failed, or behind their max_delay).",
        &mut std::iter::once(one(
            samples.iter().filter(|s| s.enabled && !s.healthy).count() as f64,
        )),
    );
    family(
        "git_pushmirror_flushers_running",
        "gauge",
        "Repositories with a flusher running.",
        &mut std::iter::once(one(flushers as f64)),
    );
    family(
        "git_pushmirror_repository_errors",
        "gauge",
        "Repositories whose mirroring configuration or spool could not be read.",
        &mut [
            format!("{{kind=\"config\"}} {config_errors}"),
            format!("{{kind=\"spool\"}} {spool_errors}"),
        ]
        .into_iter(),
    );
    family(
        "git_pushmirror_unreadable_directories",
        "gauge",
        "Directories under the root that could not be read: the repositories in them are missing from every other metric.",
        &mut std::iter::once(one(fleet.unreadable.len() as f64)),
    );
    family(
        "git_pushmirror_repository_hook_installed",
        "gauge",
        "Per repository with a mirror: 1 when its post-receive hook is ours and runnable, 0 when pushes are not seen (absent when a core.hooksPath makes it unknown here).",
        &mut hooks.into_iter(),
    );
    family(
        "git_pushmirror_silent_mode",
        "gauge",
        "1 when silent mode is on in the server file (no mirror is contacted).",
        &mut std::iter::once(one(fleet.server.silent as u8 as f64)),
    );
    family(
        "git_pushmirror_scan_duration_seconds",
        "gauge",
        "How long reading every repository's state took.",
        &mut std::iter::once(one(scan_seconds)),
    );
    // Per mirror.
    let secs = |ms: u64| format!("{}", ms as f64 / 1000.0);
    let per = |f: &dyn Fn(&Sample) -> Option<String>| -> Vec<String> {
        samples
            .iter()
            .filter_map(|s| f(s).map(|v| format!("{{{}}} {v}", s.labels)))
            .collect()
    };
    let rows: Vec<(&str, &str, &str, Vec<String>)> = vec![
        (
            "git_pushmirror_mirror_enabled",
            "gauge",
            "1 when the mirror is enabled.",
            per(&|s| Some((s.enabled as u8).to_string())),
        ),
        (
            "git_pushmirror_mirror_healthy",
            "gauge",
            "1 when the mirror is healthy as `status` reports it (a disabled mirror counts as healthy).",
            per(&|s| Some((s.healthy as u8).to_string())),
        ),
        (
            "git_pushmirror_mirror_state_readable",
            "gauge",
            "0 when the mirror's state file could not be read (status names the file).",
            per(&|s| Some((s.state_ok as u8).to_string())),
        ),
        (
            "git_pushmirror_mirror_gave_up",
            "gauge",
            "1 when the flusher gave up after max_attempts failures (until the next push or sync).",
            per(&|s| Some((s.state.gave_up_at_seq.is_some() as u8).to_string())),
        ),
        (
            "git_pushmirror_mirror_last_success_timestamp_seconds",
            "gauge",
            "When the mirror last synced successfully (Unix time); absent if never.",
            per(&|s| s.state.last_successful_update_at.map(secs)),
        ),
        (
            "git_pushmirror_mirror_last_attempt_timestamp_seconds",
            "gauge",
            "When the last sync of the mirror started (Unix time); absent if never.",
            per(&|s| s.state.last_update_started_at.map(secs)),
        ),
        (
            "git_pushmirror_mirror_last_sync_duration_seconds",
            "gauge",
            "How long the last finished sync took; absent if none finished.",
            per(&|s| match (s.state.last_update_started_at, s.state.last_update_at) {
                (Some(a), Some(b)) if b >= a => Some(secs(b - a)),
                _ => None,
            }),
        ),
        (
            "git_pushmirror_mirror_pending_updates",
            "gauge",
            "Spooled updates the mirror has not confirmed yet.",
            per(&|s| Some(s.pending.as_ref().map_or(0, |p| p.count).to_string())),
        ),
        (
            "git_pushmirror_mirror_oldest_pending_age_seconds",
            "gauge",
            "Age of the oldest update the mirror has not confirmed (0 when none is pending).",
            per(&|s| {
                Some(secs(s.pending.as_ref().map_or(0, |p| now_ms.saturating_sub(p.first_ms))))
            }),
        ),
        (
            "git_pushmirror_mirror_consecutive_failures",
            "gauge",
            "Failed sync attempts in a row (0 after a success).",
            per(&|s| Some(s.state.consecutive_failures.to_string())),
        ),
        (
            "git_pushmirror_mirror_divergent_refs",
            "gauge",
            "Refs left alone because the mirror's copy diverged (keep_divergent_refs).",
            per(&|s| Some(s.state.divergent_refs.len().to_string())),
        ),
        (
            "git_pushmirror_mirror_rejected_refs",
            "gauge",
            "Refs the mirror refused in its last sync.",
            per(&|s| Some(s.state.rejected_refs.len().to_string())),
        ),
        (
            "git_pushmirror_mirror_syncs_total",
            "counter",
            "Syncs run for the mirror.",
            per(&|s| Some(s.state.syncs.to_string())),
        ),
        (
            "git_pushmirror_mirror_pushes_total",
            "counter",
            "Syncs that pushed or deleted at least one ref.",
            per(&|s| Some(s.state.pushes.to_string())),
        ),
        (
            "git_pushmirror_mirror_refs_pushed_total",
            "counter",
            "Refs pushed or deleted on the mirror (counted since this version recorded it).",
            per(&|s| Some(s.state.refs_pushed_total.to_string())),
        ),
        (
            "git_pushmirror_mirror_pushed_bytes_total",
            "counter",
            "Bytes of the git packs pushed to the mirror, as git push reports them (LFS objects not included; counted since this version recorded it).",
            per(&|s| Some(s.state.bytes_pushed_total.to_string())),
        ),
        (
            "git_pushmirror_mirror_last_sync_pushed_bytes",
            "gauge",
            "Bytes of the git packs the last sync pushed.",
            per(&|s| Some(s.state.bytes_pushed_last.to_string())),
        ),
    ];
    for (name, kind, help, lines) in rows {
        family(name, kind, help, &mut lines.into_iter());
    }
    // Histograms, only for mirrors with observations (a sync recorded since this version).
    let histogram = |h: &dyn Fn(&MirrorState) -> &state::Histogram, bounds: &[u64]| {
        let mut rows = Vec::new();
        for s in &samples {
            let h = h(&s.state);
            let cumulative = h.cumulative(bounds);
            if h.is_empty() || cumulative.is_empty() {
                continue;
            }
            for (le, n) in cumulative {
                let le = le.map_or_else(|| "+Inf".to_string(), &secs);
                rows.push(format!("_bucket{{{},le=\"{le}\"}} {n}", s.labels));
            }
            rows.push(format!("_sum{{{}}} {}", s.labels, secs(h.sum_ms)));
            rows.push(format!("_count{{{}}} {}", s.labels, h.count()));
        }
        rows
    };
    family(
        "git_pushmirror_mirror_replication_delay_seconds",
        "histogram",
        "Push to mirror delay: per sync that brought spooled ref updates to the mirror, the time from the oldest of them being spooled to the sync confirming it.",
        &mut histogram(&|s| &s.replication_delay, &state::DELAY_BOUNDS_MS).into_iter(),
    );
    family(
        "git_pushmirror_mirror_sync_duration_seconds",
        "histogram",
        "How long the mirror's syncs took (start to end, waiting for a concurrency slot included), whatever their outcome.",
        &mut histogram(&|s| &s.sync_duration, &state::SYNC_BOUNDS_MS).into_iter(),
    );
    // Only the current status is a series (value 1): the four others as zeros would be a
    // quarter of the file at 10,000 mirrors for nothing PromQL needs.
    let mut status_rows = samples.iter().map(|s| {
        format!(
            "{{{},status=\"{}\"}} 1",
            s.labels,
            s.state.update_status.as_str()
        )
    });
    family(
        "git_pushmirror_mirror_update_status",
        "gauge",
        "The mirror's update status as `status` shows it (none, scheduled, started, finished, failed): one series, value 1.",
        &mut status_rows,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape("a\nb"), "a\\nb");
    }
}
