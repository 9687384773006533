//! The flusher: one detached process per repository that drains the spool into the mirrors.
//!
//! Life: take `flusher.lock` (or leave: another flusher owns the repo), then loop — read the
//! spool, start a sync thread for every mirror whose wait is over, record results, compact —
//! until no mirror has work it can do. The exit decision is taken under the spool lock and the
//! flusher lock is released before the spool lock, which is what lets the hook know for sure
//! whether its records will be seen (see `hook::spool_and_wake`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use fs2::FileExt;
use log::{error, info, warn};

use crate::config::{self, Effective, Loaded};
use crate::mirror;
use crate::paths::RepoPaths;
use crate::spool::{Contents, Floors, Kind, Spool};
use crate::state::{self, MirrorState, UpdateStatus};
use crate::time::now_ms;

use crate::time::jitter_ms;

/// Backoff before retry `n` (1-based): exponential from `initial`, capped, with jitter in the
/// upper half so many failing repos do not retry in lockstep.
pub fn backoff(n: u32, initial: Duration, cap: Duration) -> Duration {
    let base = initial.as_millis() as u64;
    let exp = base.saturating_mul(1u64 << n.saturating_sub(1).min(30));
    let capped = exp.min(cap.as_millis() as u64).max(1);
    Duration::from_millis(capped / 2 + jitter_ms(capped / 2 + 1))
}

/// The wait before retrying a failed sync: what the server asked for (`Retry-After`, bounded
/// by the mirror's `max_delay` and at least 1 s), otherwise the usual `backoff`.
pub fn retry_delay(
    retry_after: Option<Duration>,
    max_delay: Option<Duration>,
    backoff: Duration,
) -> Duration {
    match (retry_after, max_delay) {
        (Some(asked), Some(max)) => asked.max(Duration::from_secs(1)).min(max),
        _ => backoff,
    }
}

/// A mirror's `max_attempts`, `backoff_initial` and `backoff_max`; the defaults for a mirror
/// no longer in the config.
fn retry_policy(m: Option<&Effective>) -> (u32, Duration, Duration) {
    m.map_or((8, Duration::from_secs(2), Duration::from_secs(300)), |m| {
        (m.max_attempts, m.backoff_initial, m.backoff_max)
    })
}

/// Remembers the LFS objects a sync found missing upstream and when the flusher looks for them
/// again: on the mirror's retry backoff (`backoff_initial` doubling up to `backoff_max`), at
/// most `max_attempts` times in a row. A sync that finds a new missing object starts the count
/// again; one that finds none clears it all.
fn lfs_schedule_recheck(
    st: &mut MirrorState,
    missing: &[state::LfsObject],
    m: Option<&Effective>,
    now: u64,
) {
    if missing.is_empty() {
        st.lfs_missing_objects.clear();
        st.lfs_rechecks = 0;
        st.lfs_recheck_at = None;
        return;
    }
    let known: BTreeSet<&state::LfsObject> = st.lfs_missing_objects.iter().collect();
    if missing.iter().any(|o| !known.contains(o)) {
        st.lfs_rechecks = 0;
    }
    st.lfs_missing_objects = missing.to_vec();
    st.lfs_rechecks = st.lfs_rechecks.saturating_add(1);
    let (max, init, cap) = retry_policy(m);
    st.lfs_recheck_at = (st.lfs_rechecks < max)
        .then(|| now + backoff(st.lfs_rechecks, init, cap).as_millis() as u64);
}

/// Whether a mirror's refusal of a ref is one a retry can cure (a ref lock held by a concurrent
/// push, a transient write failure) rather than a policy decision (a hook, a protected branch).
pub fn is_transient_rejection(reason: &str) -> bool {
    let r = reason.to_ascii_lowercase();
    r.contains("failed to update ref")
        || r.contains("cannot lock ref")
        || r.contains("failed to lock")
        // The mirror moved under the lease after several re-plans: the next sync re-plans again.
        || r.contains("stale info")
        || r.contains("fetch first")
}

/// What is pending for one mirror.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pending {
    pub count: usize,
    pub first_ms: u64,
    pub last_ms: u64,
    pub force: bool,
    /// When the newest force request was made: one made after the last attempt skips the backoff.
    pub force_ms: u64,
    pub max_seq: u64,
    /// Refs whose newest pending record is a deletion.
    pub deleted: BTreeSet<String>,
    /// When the oldest pending ref update (not a sync request) was spooled.
    pub first_update_ms: Option<u64>,
}

pub fn pending_for(contents: &Contents, mirror: &str, cursor: u64) -> Option<Pending> {
    let mut p = Pending {
        first_ms: u64::MAX,
        ..Pending::default()
    };
    let mut latest: BTreeMap<&str, (u64, bool)> = BTreeMap::new();
    for r in contents
        .records
        .iter()
        .filter(|r| r.seq > cursor && r.applies_to(mirror))
    {
        p.count += 1;
        p.first_ms = p.first_ms.min(r.first_ms);
        p.last_ms = p.last_ms.max(r.last_ms);
        p.max_seq = p.max_seq.max(r.seq);
        match &r.kind {
            Kind::Force { .. } => {
                p.force = true;
                p.force_ms = p.force_ms.max(r.last_ms);
            }
            Kind::Update { new, refname, .. } => {
                p.first_update_ms =
                    Some(p.first_update_ms.map_or(r.first_ms, |t| t.min(r.first_ms)));
                let e = latest.entry(refname).or_insert((0, false));
                if r.seq >= e.0 {
                    *e = (r.seq, crate::update::is_null(new));
                }
            }
            Kind::Mark => {}
        }
    }
    p.deleted = latest
        .into_iter()
        .filter(|(_, (_, d))| *d)
        .map(|(r, _)| r.to_string())
        .collect();
    (p.count > 0).then_some(p)
}

/// When a mirror with `pending` should sync: a leading-edge throttle. An idle mirror (no sync
/// started within `debounce`, the interval between two syncs) syncs at once; updates that
/// arrive during a sync or within the interval after one started wait for the interval to end
/// (see `interval_end`: it may end early) and then go out together in one follow-up sync. Never
/// later than `max_delay` after the first pending update; at once when forced. A retry waits
/// for its backoff unless forced.
pub fn due_at(p: &Pending, m: &Effective, st: &MirrorState) -> u64 {
    let due = if p.force {
        0
    } else {
        let window_end = interval_end(st, m.debounce.as_millis() as u64, m.debounce_adaptive);
        window_end.min(p.first_ms.saturating_add(m.max_delay.as_millis() as u64))
    };
    retry_due_at(p, st).map_or(due, |r| due.max(r))
}

/// When the interval after a mirror's last sync ends. A configured `debounce` is a strict
/// minimum interval between two sync starts. The built-in one (1 s) is adaptive: once the last
/// sync has finished and as long again has passed (a local mirror's 40 ms sync allows the next
/// 40 ms after it ended), the next may start before the interval is over, as far as a budget
/// allows that keeps the coalescing bound (a generic cell rate algorithm, one sync per interval
/// with a burst of one more): over any span T, at most 2 + T / interval syncs start, however
/// the pushes come. So a push that follows a short sync goes at once, while a storm still
/// costs about one sync per interval.
pub fn interval_end(st: &MirrorState, interval_ms: u64, adaptive: bool) -> u64 {
    let Some(started) = st.last_update_started_at else {
        return 0;
    };
    let fixed = started.saturating_add(interval_ms);
    let early = match st.last_update_at {
        // The last sync has finished (a running one has started after the last end).
        Some(end) if adaptive && end >= started => end.saturating_add(end - started),
        _ => return fixed,
    };
    let budget = st
        .throttle_budget_at
        .map_or(0, |b| b.saturating_sub(interval_ms));
    fixed.min(early.max(budget))
}

/// Spends the throttle's budget on a sync starting at `now` (see `interval_end`).
pub fn spend_budget(st: &mut MirrorState, interval_ms: u64, now: u64) {
    let from = st.throttle_budget_at.unwrap_or(0).max(now);
    st.throttle_budget_at = Some(from.saturating_add(interval_ms));
}

/// When a failed mirror's backoff ends, if it is waiting for one (a fresh force request skips
/// the backoff).
fn retry_due_at(p: &Pending, st: &MirrorState) -> Option<u64> {
    let fresh_request = p.force && st.last_update_at.is_none_or(|t| p.force_ms > t);
    match st.next_retry_at {
        Some(r) if st.consecutive_failures > 0 && !fresh_request => Some(r),
        _ => None,
    }
}

/// A mirror that failed `max_attempts` times waits for newer work (a push, `sync`, `sweep`).
fn parked(p: &Pending, st: &MirrorState) -> bool {
    st.gave_up_at_seq.is_some_and(|g| p.max_seq <= g)
}

struct Done {
    name: String,
    /// The mirror as configured when the sync started (to tell a retargeted mirror).
    mirror: crate::config::MirrorConfig,
    seq: u64,
    started: u64,
    /// When the oldest ref update the sync carries was spooled (for the delay histogram).
    first_update_ms: Option<u64>,
    report: mirror::SyncReport,
}

/// When `m` comes from a server rule with a `name_style` other than `slash`, and another
/// repository under the root maps to the same target under that rule (`team/app` and
/// `team-app` under `dash`, `a/app` and `b/app` under `basename`): one line saying so.
fn shared_target(server: &config::ServerConfig, m: &Effective) -> Option<String> {
    let name = m.rule_name.as_deref()?;
    let style = m.mirror.name_style.unwrap_or_default();
    if style == config::NameStyle::Slash {
        return None;
    }
    let rule = server.rules.iter().find(|r| r.name == m.mirror.name)?;
    let root = std::fs::canonicalize(server.root.as_ref()?).ok()?;
    let is_repo = |n: &str| {
        [root.join(format!("{n}.git")), root.join(n)]
            .iter()
            .any(|d| d.join("HEAD").is_file() && d.join("objects").is_dir())
    };
    let other = match style {
        // The names `dash`/`underscore` map to this target are few: each separator either was
        // one or was a `/` (looked up directly, not by walking the whole root every sync).
        config::NameStyle::Dash | config::NameStyle::Underscore
            if style.apply(name).matches(['-', '_']).count() <= 12 =>
        {
            let sep = if style == config::NameStyle::Dash {
                '-'
            } else {
                '_'
            };
            let names = unmapped(&style.apply(name), sep);
            let plain = |n: &String| n.split('/').all(|c| !c.is_empty() && c != "." && c != "..");
            first_sharing(
                rule,
                name,
                names.into_iter().filter(|n| plain(n) && is_repo(n)),
            )?
        }
        _ => {
            let (repos, _) = crate::ops::fleet::find_all(&root);
            let names = repos.iter().filter_map(|r| {
                let rel = r.strip_prefix(&root).ok()?.to_str()?;
                Some(rel.strip_suffix(".git").unwrap_or(rel).to_string())
            });
            first_sharing(rule, name, names)?
        }
    };
    Some(format!(
        "rule `{}`: name_style {} maps both `{name}` and `{other}` to {}; nothing pushed (their syncs would overwrite each other's refs): exclude one of them, or use another name_style",
        rule.name,
        serde_json::to_value(style)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        crate::url::mask(&m.mirror.url)
    ))
}

/// Every name `dash`/`underscore` (`sep`) could have mapped to `target`: each `sep` in it was
/// itself or a `/`. Pure.
fn unmapped(target: &str, sep: char) -> Vec<String> {
    let mut out = vec![String::new()];
    for c in target.chars() {
        if c == sep {
            out = out
                .into_iter()
                .flat_map(|p| [format!("{p}{sep}"), format!("{p}/")])
                .collect();
        } else {
            for p in &mut out {
                p.push(c);
            }
        }
    }
    out
}

/// The first of `others` (not `name`) that `rule` maps to the same URL as `name`. Pure.
fn first_sharing(
    rule: &config::MirrorConfig,
    name: &str,
    others: impl Iterator<Item = String>,
) -> Option<String> {
    let url = rule.for_repo(name)?.url;
    let mut others = others;
    others.find(|o| o != name && rule.for_repo(o).is_some_and(|m| m.url == url))
}

/// Records, under the server's `state_dir`, a target a server rule's mirror created (what
/// `propagate_deletion` may delete later; see `ops::created`).
fn record_creation(state_dir: Option<&Path>, m: &Effective, report: &mirror::SyncReport) {
    let (Some(dir), Some(name), Some(how)) = (state_dir, &m.rule_name, &report.created) else {
        return;
    };
    let rec = crate::ops::created::Record {
        rule: m.mirror.name.clone(),
        name: name.clone(),
        url: crate::url::split_credentials(&m.mirror.url).0,
        created_at: now_ms(),
        how: how.clone(),
    };
    match crate::ops::created::record(dir, &rec) {
        Ok(()) => info!(
            "sync {}: recorded the creation in {}",
            m.mirror.name,
            dir.display()
        ),
        Err(e) => error!(
            "sync {}: could not record the creation in {}: {e}; propagate_deletion will not delete it",
            m.mirror.name,
            dir.display()
        ),
    }
}

/// Leaves the pusher's session and closes every inherited descriptor above stderr (the hook gave
/// us /dev/null for 0-2), so nothing of the push that started us is held open by us.
pub fn detach() {
    unsafe {
        libc::setsid();
        if libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) != 0 {
            let max = libc::sysconf(libc::_SC_OPEN_MAX);
            let max = if max <= 0 {
                65_536
            } else {
                max.min(1 << 20) as i32
            };
            for fd in 3..max {
                libc::close(fd);
            }
        }
    }
}

/// Runs the flusher for `git_dir` until there is nothing left it can do. Returns the exit code.
///
/// `once` (what `sweep` runs): every mirror that is due gets one attempt, and a mirror whose
/// attempt fails is left waiting for its backoff, to the next sweep or push, instead of this
/// process running the whole retry schedule.
pub fn run(git_dir: &Path, once: bool) -> i32 {
    detach();
    let paths = RepoPaths::new(git_dir);
    if paths.ensure().is_err() {
        return 1;
    }
    let Ok(lock_file) = crate::paths::open_private(&paths.flusher_lock(), false) else {
        return 1;
    };
    if lock_file.try_lock_exclusive().is_err() {
        return 0; // another flusher owns this repository
    }
    // Liveness for `status` from any node (see `locks::held`): taken after winning the lock
    // above, so probes of `flusher.alive` never decide who runs.
    let alive = crate::paths::open_private(&paths.flusher_alive(), false)
        .and_then(|f| crate::locks::hold(&f).map(|()| f));
    let loaded = config::load(&paths);
    let (level, max_bytes) = match &loaded {
        Ok(l) => (
            l.server.log_level.clone(),
            l.server
                .log_max_bytes
                .unwrap_or(crate::logging::DEFAULT_MAX_BYTES),
        ),
        Err(_) => (None, crate::logging::DEFAULT_MAX_BYTES),
    };
    crate::logging::init(&paths.log(), level.as_deref(), max_bytes);
    let alive = alive
        .map_err(|e| {
            warn!(
                "{}: {e}; status cannot see this flusher",
                paths.flusher_alive().display()
            )
        })
        .ok();
    info!(
        "flusher started for {}{}",
        git_dir.display(),
        if once {
            " (one attempt per due mirror)"
        } else {
            ""
        }
    );
    let exe = match crate::paths::self_exe() {
        Ok(e) => e,
        Err(e) => {
            error!("cannot find our own executable: {e}");
            return 1;
        }
    };
    clean_temp_files(&paths);
    let code = Flusher {
        paths,
        exe,
        lock_file,
        alive,
        in_flight: HashMap::new(),
        reported_damage: BTreeSet::new(),
        once,
        attempted: BTreeSet::new(),
        spool_len: 0,
        reported_state_errors: BTreeSet::new(),
        unsaved: HashMap::new(),
        unsaved_retry_at: 0,
        unsaved_tries: 0,
    }
    .main_loop();
    crate::ops::notify::wait_all();
    info!("flusher exiting; peak RSS {} KiB", peak_rss_kib());
    code
}

/// The flusher's own peak resident set size (the git children it ran are not counted), from
/// `getrusage`: reported in the log at exit for operators sizing a server, and for the benchmark.
fn peak_rss_kib() -> i64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage only writes the struct we pass.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return -1;
    }
    ru.ru_maxrss
}

/// How soon a flusher tries again to write the states it could not save, and how long it
/// waits between tries at most.
const UNSAVED_RETRY: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(30));

struct Flusher {
    paths: RepoPaths,
    exe: PathBuf,
    lock_file: std::fs::File,
    /// `flusher.alive`, held for the flusher's life (None: it could not be opened).
    alive: Option<std::fs::File>,
    /// Mirror name → the spool sequence its running sync covers.
    in_flight: HashMap<String, u64>,
    reported_damage: BTreeSet<u64>,
    /// One attempt per due mirror (`flush --once`): a failed mirror's backoff is not waited for.
    once: bool,
    /// `once` mode: the mirrors this run has started a sync for.
    attempted: BTreeSet<String>,
    /// The spool's length when the loop last read it: a change while waiting means a push
    /// came in, and an idle mirror should not wait for the next poll to see it.
    spool_len: u64,
    /// State files already reported as unreadable (logged once per flusher, not at every pass;
    /// `status` shows the error for as long as it lasts).
    reported_state_errors: BTreeSet<String>,
    /// States that could not be written (a full or read-only disk): kept here so the backoff,
    /// the attempt count and the cursor still hold for this flusher's life, instead of every
    /// pass finding the old state on disk and retrying at once. Written once writes work
    /// again (`retry_unsaved`); until then the flusher does not exit, or what its failures
    /// were would be lost and the mirror would show the last state that could be saved.
    unsaved: HashMap<String, MirrorState>,
    /// When to try writing the unsaved states again, and how many tries have failed.
    unsaved_retry_at: u64,
    unsaved_tries: u32,
}

/// Removes the temporary files a flusher killed mid-write left (`.spool.tmp.<pid>`,
/// `state/.NAME.json.tmp.<pid>`). Called with the flusher lock held: only a flusher writes those.
fn clean_temp_files(paths: &RepoPaths) {
    let spool = Spool::new(&paths.dir);
    let Ok(_lock) = spool.lock() else {
        return;
    };
    let n = crate::paths::remove_temp_files(&paths.dir, |n| n.starts_with(".spool.tmp."))
        + state::clean_temp_files(&paths.state_dir());
    if n > 0 {
        info!("removed {n} temporary file(s) left by a killed flusher");
    }
}

impl Flusher {
    /// A mirror's state: the one this flusher could not save if any, else the file's.
    fn load_state(&self, name: &str) -> Result<MirrorState, state::StateError> {
        match self.unsaved.get(name) {
            Some(st) => Ok(st.clone()),
            None => state::load(&self.paths.state_dir(), name),
        }
    }

    /// The highest cursor of any mirror, or None when the spool is consistent with them all.
    fn rewound(&self, cfg: &Loaded, contents: &Contents) -> Option<u64> {
        let top = cfg
            .mirrors
            .iter()
            .filter_map(|m| self.load_state(&m.mirror.name).ok())
            .map(|s| s.cursor)
            .max()
            .unwrap_or(0);
        (contents.last_seq() < top).then_some(top)
    }

    fn main_loop(mut self) -> i32 {
        let spool = Spool::new(&self.paths.dir);
        let (tx, rx) = mpsc::channel::<Done>();
        loop {
            // The config, the spool and the status saves below are read and written under one
            // spool lock: `remove` deletes a mirror's config and state under it, so a mirror
            // removed meanwhile is either not seen here or its state is not written back.
            let lock = match spool.lock() {
                Ok(l) => l,
                Err(e) => {
                    error!("{e}");
                    return 1;
                }
            };
            let cfg = match config::load(&self.paths) {
                Ok(c) => c,
                Err(e) => {
                    drop(lock);
                    // The hook reports a broken config to the next pusher; we keep the spool.
                    error!("{e}");
                    if self.in_flight.is_empty() {
                        return 1;
                    }
                    self.collect(&rx, Duration::from_millis(500), None);
                    continue;
                }
            };
            self.retry_unsaved(&cfg);
            let mut contents = match spool.read(&lock) {
                Ok(c) => c,
                Err(e) => {
                    error!("{e}");
                    return 1;
                }
            };
            if cfg.server.silent && self.in_flight.is_empty() {
                // Nothing is sent, but the journal still keeps one record per ref.
                let floors = self.floors(&cfg, &contents);
                if worth_compacting(&contents, floors) {
                    if let Err(e) = spool.compact(&lock, &contents, floors) {
                        warn!("spool compaction: {e}");
                    }
                }
                info!("silent mode is on: no mirror contacted; updates stay in the spool");
                return 0;
            }
            if let Some(top) = self.rewound(&cfg, &contents) {
                // The spool was lost or cut back under the cursors (a push would have fixed the
                // numbering itself; `sync`, `sweep` or a restart may come first). What the lost
                // records said is unknown: every mirror gets a full sync, never silence.
                // Numbered above `top` as read here, not only above `cursor-floor`: a state
                // file restored in place leaves that cache stale, and every record the hook
                // numbers from it below the cursor (see floor.rs).
                match spool.append_above(&lock, &[], &[], now_ms(), top) {
                    Ok(a) => {
                        let r = a.rewind.map_or_else(
                            || format!("the spool ends below a mirror's cursor ({top})"),
                            |r| r.to_string(),
                        );
                        warn!("{}: {r}", spool.path().display());
                    }
                    Err(e) => error!("spool below the mirrors' cursors ({top}), cannot fix: {e}"),
                }
                contents = match spool.read(&lock) {
                    Ok(c) => c,
                    Err(e) => {
                        error!("{e}");
                        return 1;
                    }
                };
            }
            self.report_damage(&contents);
            self.spool_len = spool_len(&spool);
            let now = now_ms();
            let mut next_due: Option<u64> = None;
            let mut actionable = false;
            for m in cfg.mirrors.iter().filter(|m| m.mirror.enabled) {
                let name = &m.mirror.name;
                let mut st = match self.load_state(name) {
                    Ok(s) => s,
                    Err(e) => {
                        let e = e.to_string();
                        if self.reported_state_errors.insert(e.clone()) {
                            error!("{e}");
                        }
                        continue;
                    }
                };
                let Some(p) = pending_for(&contents, name, st.cursor) else {
                    // LFS objects missing upstream at the last sync are looked for again on
                    // their own backoff, without a push (docs/lfs.md).
                    let Some(at) = self.lfs_recheck_at(m, &st) else {
                        continue;
                    };
                    actionable = true;
                    if self.in_flight.contains_key(name) || cfg.server.silent {
                        continue;
                    }
                    if at > now {
                        next_due = Some(next_due.map_or(at, |d: u64| d.min(at)));
                        continue;
                    }
                    info!(
                        "sync {name}: looking again for {} LFS object(s) missing upstream (re-check {})",
                        st.lfs_missing_objects.len(),
                        st.lfs_rechecks
                    );
                    st.update_status = UpdateStatus::Started;
                    st.last_update_started_at = Some(now);
                    self.save(name, &st);
                    self.in_flight.insert(name.clone(), st.cursor);
                    let p = Pending {
                        first_ms: now,
                        last_ms: now,
                        max_seq: st.cursor,
                        ..Pending::default()
                    };
                    let recheck = st.lfs_missing_objects.clone();
                    self.start_sync(&cfg, m.clone(), p, now, tx.clone(), recheck);
                    continue;
                };
                if parked(&p, &st) || self.left_for_later(name, &p, &st, now) {
                    continue;
                }
                actionable = true;
                if self.in_flight.contains_key(name) || cfg.server.silent {
                    continue;
                }
                let due = due_at(&p, m, &st);
                if due > now {
                    next_due = Some(next_due.map_or(due, |d: u64| d.min(due)));
                    if st.update_status != UpdateStatus::Scheduled
                        && st.update_status != UpdateStatus::Failed
                    {
                        st.update_status = UpdateStatus::Scheduled;
                        self.save(name, &st);
                    }
                    continue;
                }
                let interval = m.debounce.as_millis() as u64;
                if let Some(last) = st.last_update_started_at.filter(|_| !p.force) {
                    let end = last.saturating_add(interval);
                    if now < end && interval_end(&st, interval, m.debounce_adaptive) < end {
                        info!(
                            "sync {name}: early, {} ms after the last sync started (it took {} ms)",
                            now.saturating_sub(last),
                            st.last_update_at.unwrap_or(last).saturating_sub(last)
                        );
                    }
                }
                spend_budget(&mut st, interval, now);
                st.update_status = UpdateStatus::Started;
                st.last_update_started_at = Some(now);
                self.in_flight.insert(name.clone(), p.max_seq);
                if self.once {
                    self.attempted.insert(name.clone());
                }
                let recheck = if m.lfs.mode == crate::config::LfsMode::Off {
                    Vec::new()
                } else {
                    st.lfs_missing_objects.clone()
                };
                // The sync starts first: saving `started` (an fsynced atomic rewrite) is off
                // the push → mirror path. Its outcome is recorded by this thread, after this
                // save, so the `finished`/`failed` state always lands last.
                self.start_sync(&cfg, m.clone(), p, now, tx.clone(), recheck);
                self.save(name, &st);
            }
            drop(lock);
            if !actionable && self.in_flight.is_empty() && !self.once && !self.unsaved.is_empty() {
                // Nothing to do but keep what could not be written: wait for writes to work
                // again (a push coming in meanwhile wakes us as usual).
                let wait = self
                    .unsaved_retry_at
                    .saturating_sub(now_ms())
                    .clamp(5, 30_000);
                self.collect(&rx, Duration::from_millis(wait), Some(&cfg));
                continue;
            }
            if !actionable && self.in_flight.is_empty() && crate::ops::notify::pending() {
                // Not leaving while a notification runs: the next push's flusher would send the
                // mirror's next one (`recovered` after a slow `gave_up`) beside it, out of
                // order. Pushes meanwhile are taken as usual.
                self.collect(&rx, Duration::from_millis(500), Some(&cfg));
                continue;
            }
            if !actionable && self.in_flight.is_empty() {
                match self.try_exit(&spool, &cfg) {
                    Some(code) => return code,
                    None => continue,
                }
            }
            self.compact(&spool, &cfg, &contents);
            let wait = next_due.map_or(200, |d| d.saturating_sub(now_ms()).clamp(5, 200));
            self.collect(&rx, Duration::from_millis(wait), Some(&cfg));
        }
    }

    /// When the flusher should look again for the LFS objects the last sync found missing
    /// upstream, if it should: not in `once` mode (the next sweep does), not once the re-checks
    /// ran out (a push, `sync` or `sweep` still looks), not with LFS off.
    fn lfs_recheck_at(&self, m: &Effective, st: &MirrorState) -> Option<u64> {
        if self.once
            || st.lfs_missing_objects.is_empty()
            || !mirror::lfs::enabled(&self.paths.git_dir, &m.lfs)
        {
            return None;
        }
        st.lfs_recheck_at
    }

    fn start_sync(
        &self,
        cfg: &Loaded,
        m: Effective,
        p: Pending,
        now: u64,
        tx: mpsc::Sender<Done>,
        lfs_recheck: Vec<state::LfsObject>,
    ) {
        let mut m = m;
        if self.once {
            // One attempt per mirror (`sweep`): no SSH connection kept for a next sync that is
            // not coming (a sweep over many repositories would leave one per mirror).
            m.ssh_persist = Duration::ZERO;
        }
        let git_dir = self.paths.git_dir.clone();
        let exe = self.exe.clone();
        let runtime = crate::paths::runtime_dir(cfg.server.runtime_dir.as_deref());
        let limit = cfg.server.concurrency();
        let password_env_names = cfg.password_env_names();
        let state_dir = cfg.server.state_dir.clone();
        // A rule whose name_style maps another repository to this target too: its syncs would
        // overwrite each other's refs there, so neither pushes.
        let collision = shared_target(&cfg.server, &m);
        // `slots_dir` on storage the nodes share makes `concurrency` one limit for all of them.
        let shared_slots = cfg.server.slots_dir.clone();
        let slots = shared_slots.clone().unwrap_or_else(|| runtime.clone());
        info!(
            "sync {}: {} pending update(s), up to seq {}",
            m.mirror.name, p.count, p.max_seq
        );
        std::thread::spawn(move || {
            // A sync refused before it starts (two repositories mapped to one target) takes
            // no slot.
            let slot = match &shared_slots {
                _ if collision.is_some() => Err(std::io::Error::other("not needed")),
                Some(dir) => crate::slots::acquire_shared(dir, limit),
                None => crate::slots::acquire(&slots, limit),
            };
            let report = match slot {
                _ if collision.is_some() => mirror::SyncReport {
                    error: collision,
                    ..Default::default()
                },
                Ok(_slot) => {
                    let ctx = mirror::SyncContext {
                        git_dir: &git_dir,
                        runtime_dir: &runtime,
                        exe: &exe,
                        lfs_recheck: &lfs_recheck,
                        password_env_names: &password_env_names,
                    };
                    let report = mirror::sync(&ctx, &m, &p.deleted);
                    record_creation(state_dir.as_deref(), &m, &report);
                    report
                }
                Err(e) => mirror::SyncReport {
                    error: Some(format!("concurrency slot in {}: {e}", slots.display())),
                    ..Default::default()
                },
            };
            let _ = tx.send(Done {
                name: m.mirror.name.clone(),
                mirror: m.mirror.clone(),
                seq: p.max_seq,
                started: now,
                first_update_ms: p.first_update_ms,
                report,
            });
        });
    }

    /// In `once` mode, a mirror waiting for a retry backoff, or whose attempt in this run
    /// failed, is left to the next sweep or push.
    ///
    /// The exception: a sync refused only because the mirror could not lock a ref (another push
    /// running there, such as the orphaned `git push` of a killed flusher) clears in moments, so
    /// it gets a few quick retries (its first backoffs) within this run.
    fn left_for_later(&self, name: &str, p: &Pending, st: &MirrorState, now: u64) -> bool {
        const ONCE_TRANSIENT_RETRIES: u32 = 3;
        if !self.once {
            return false;
        }
        let transient = st.consecutive_failures <= ONCE_TRANSIENT_RETRIES
            && !st.rejected_refs.is_empty()
            && st.rejected_refs.iter().all(|r| is_transient_rejection(r));
        !transient
            && (retry_due_at(p, st).is_some_and(|r| r > now)
                || (st.consecutive_failures > 0 && self.attempted.contains(name)))
    }

    /// Waits up to `wait` for finished syncs and records them; returns early when the spool
    /// grows (a push came in: an idle mirror syncs at once).
    fn collect(&mut self, rx: &mpsc::Receiver<Done>, wait: Duration, cfg: Option<&Loaded>) {
        const SLICE: Duration = Duration::from_millis(20);
        let spool = Spool::new(&self.paths.dir);
        let deadline = std::time::Instant::now() + wait;
        let mut first = None;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left.min(SLICE)) {
                Ok(d) => {
                    first = Some(d);
                    break;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            if left <= SLICE || spool_len(&spool) != self.spool_len {
                break;
            }
        }
        while let Some(done) = first.take().or_else(|| rx.try_recv().ok()) {
            self.in_flight.remove(&done.name);
            let m = cfg.and_then(|c| c.mirrors.iter().find(|m| m.mirror.name == done.name));
            self.record(done, m);
        }
    }

    fn record(&mut self, done: Done, m: Option<&Effective>) {
        // `remove` deletes a mirror's config and state under the spool lock; checking and saving
        // under that lock keeps a sync that was in flight from writing a removed mirror's state
        // back (a mirror re-added under the name would inherit it).
        let spool = Spool::new(&self.paths.dir);
        let _lock = spool.lock().ok();
        let current = config::load(&self.paths)
            .map(|c| c.mirrors.into_iter().find(|x| x.mirror.name == done.name));
        let removed = matches!(current, Ok(None));
        if let Ok(Some(now)) = &current {
            if !same_target(&now.mirror, &done.mirror) {
                // `set` changed where or how it pushes while this sync ran, and reset its
                // state: what the old target said must not land in the new target's status.
                info!(
                    "sync {} ended after its url or credentials changed; its result is not kept",
                    done.name
                );
                return;
            }
        }
        if removed {
            info!(
                "sync {} ended after the mirror was removed; its state is not kept",
                done.name
            );
            self.unsaved.remove(&done.name);
            if let Err(e) = state::remove(&self.paths.state_dir(), &done.name) {
                error!("{e}");
            }
            return;
        }
        let mut st = self.load_state(&done.name).unwrap_or_default();
        let before = st.clone();
        let now = now_ms();
        let r = &done.report;
        st.syncs += 1;
        st.last_update_at = Some(now);
        st.last_update_started_at = Some(done.started);
        st.divergent_refs = r.divergent.clone();
        st.rejected_refs = r.rejected.clone();
        if r.pushed + r.deleted > 0 {
            st.pushes += 1;
        }
        st.refs_pushed_last = (r.pushed + r.deleted) as u64;
        st.refs_pushed_total += st.refs_pushed_last;
        st.bytes_pushed_last = r.pack_bytes;
        if r.created.is_some() {
            st.created = r.created.clone();
            st.created_at = Some(now);
        }
        st.bytes_pushed_total = st.bytes_pushed_total.saturating_add(r.pack_bytes);
        if r.error.as_deref().is_some_and(|e| e.starts_with("lfs:")) {
            st.lfs_last_error = r.error.clone();
        } else {
            // What the last sync that ran the LFS step (one that pushed commits, or looked
            // again for missing objects) sent and found missing; a sync with nothing to push
            // leaves it as it was.
            if r.timings.lfs.is_some() {
                st.lfs_objects_last = r.lfs.objects;
                st.lfs_bytes_last = r.lfs.bytes;
                st.lfs_missing = r.lfs.missing.clone();
                st.lfs_missing_count = r.lfs.missing_count as u64;
                lfs_schedule_recheck(&mut st, &r.lfs.missing_objects, m, now);
            }
            if r.error.is_none() {
                st.lfs_last_error = None;
            }
        }
        if r.timings.lfs.is_none()
            && !st.lfs_missing_objects.is_empty()
            && st.lfs_recheck_at.is_some_and(|t| t <= now)
        {
            // A re-check that could not get as far as the end of the LFS step (the mirror
            // unreachable, an LFS error) counts as one, so a failing mirror is not asked again
            // at once.
            let same = st.lfs_missing_objects.clone();
            lfs_schedule_recheck(&mut st, &same, m, now);
        }
        if m.is_some_and(|m| m.lfs.mode == crate::config::LfsMode::Off) {
            // Nothing is looked for any more; what was missing is not listed either.
            lfs_schedule_recheck(&mut st, &[], m, now);
            st.lfs_missing.clear();
            st.lfs_missing_count = 0;
        }
        // A sync that ran to the end (even with refused or divergent refs) has done what retrying
        // could do; only one that could not run keeps its work pending for a retry.
        // A ref the mirror could not lock or write ("failed to update ref", "cannot lock ref":
        // typically another push still running there, such as the orphaned `git push` of a
        // flusher killed mid-sync) is transient: retrying can help, so the work stays pending.
        let transient = r.rejected.iter().any(|x| is_transient_rejection(x));
        let ran =
            !transient && (r.error.is_none() || !r.rejected.is_empty() || !r.divergent.is_empty());
        if ran {
            st.cursor = st.cursor.max(done.seq);
            st.kept_by_dangling_head = r.kept_by_dangling_head.clone();
        }
        st.sync_duration
            .observe(&state::SYNC_BOUNDS_MS, now.saturating_sub(done.started));
        if let (None, Some(t)) = (&r.error, done.first_update_ms) {
            st.replication_delay
                .observe(&state::DELAY_BOUNDS_MS, now.saturating_sub(t));
        }
        match &r.error {
            None => {
                st.update_status = UpdateStatus::Finished;
                st.last_successful_update_at = Some(now);
                st.last_error = None;
                st.consecutive_failures = 0;
                st.next_retry_at = None;
                st.gave_up_at_seq = None;
                info!(
                    "sync {} finished: {} ref(s) pushed, {} deleted ({})",
                    done.name, r.pushed, r.deleted, r.timings
                );
            }
            Some(e) => {
                st.update_status = UpdateStatus::Failed;
                st.last_error = Some(e.clone());
                if ran {
                    st.consecutive_failures = 0;
                    st.next_retry_at = None;
                    warn!("sync {} finished with problems: {e}", done.name);
                } else {
                    st.consecutive_failures += 1;
                    let (max, init, cap) = retry_policy(m);
                    if st.consecutive_failures >= max {
                        st.gave_up_at_seq = Some(done.seq);
                        st.next_retry_at = None;
                        error!(
                            "sync {} failed {} times, giving up until the next push or sync: {e}",
                            done.name, st.consecutive_failures
                        );
                    } else {
                        let d = retry_delay(
                            r.retry_after,
                            m.map(|m| m.max_delay),
                            backoff(st.consecutive_failures, init, cap),
                        );
                        st.next_retry_at = Some(now + d.as_millis() as u64);
                        warn!(
                            "sync {} failed (attempt {}), retry in {}: {e}",
                            done.name,
                            st.consecutive_failures,
                            crate::time::human(d.as_millis() as u64)
                        );
                    }
                }
            }
        }
        self.save(&done.name, &st);
        crate::ops::notify::transition(&self.paths, &done.name, &before, &st);
    }

    fn save(&mut self, name: &str, st: &MirrorState) {
        match state::save(&self.paths.state_dir(), name, st) {
            Ok(()) => {
                self.unsaved.remove(name);
            }
            Err(e) => {
                if !self.unsaved.contains_key(name) {
                    error!("{e}; the state is kept in memory, and saved once writes work again");
                }
                if self.unsaved.is_empty() {
                    self.unsaved_tries = 0;
                    self.unsaved_retry_at = now_ms() + UNSAVED_RETRY.0.as_millis() as u64;
                }
                self.unsaved.insert(name.to_string(), st.clone());
            }
        }
    }

    /// Writes the states kept in memory since a write error, when their retry is due (the
    /// first after `UNSAVED_RETRY.0`, doubling up to `UNSAVED_RETRY.1`: a full disk is not
    /// hammered). Called under the spool lock with the config just read: the state of a
    /// mirror removed meanwhile is dropped, not written back.
    fn retry_unsaved(&mut self, cfg: &Loaded) {
        if self.unsaved.is_empty() || now_ms() < self.unsaved_retry_at {
            return;
        }
        self.unsaved
            .retain(|name, _| cfg.mirrors.iter().any(|m| m.mirror.name == *name));
        let names: Vec<String> = self.unsaved.keys().cloned().collect();
        for name in names {
            let Some(st) = self.unsaved.get(&name) else {
                continue;
            };
            if state::save(&self.paths.state_dir(), &name, st).is_err() {
                break;
            }
            info!("{name}: the state kept in memory since a write error is saved");
            self.unsaved.remove(&name);
        }
        if !self.unsaved.is_empty() {
            self.unsaved_tries = self.unsaved_tries.saturating_add(1);
            let d = backoff(self.unsaved_tries, UNSAVED_RETRY.0, UNSAVED_RETRY.1);
            self.unsaved_retry_at = now_ms() + d.as_millis() as u64;
        }
    }

    fn report_damage(&mut self, contents: &Contents) {
        for d in &contents.damage {
            if self.reported_damage.insert(d.offset) {
                warn!(
                    "spool: skipped a damaged record of {} bytes at offset {} (torn write?)",
                    d.len, d.offset
                );
            }
        }
    }

    /// The lowest cursor among the enabled mirrors (records at or below it are confirmed by all
    /// of them), and among all mirrors, disabled ones included (see `Floors`).
    fn floors(&self, cfg: &Loaded, contents: &Contents) -> Floors {
        let cursors: Vec<(bool, u64)> = cfg
            .mirrors
            .iter()
            .map(|m| {
                let c = self
                    .load_state(&m.mirror.name)
                    .map(|s| s.cursor)
                    .unwrap_or(0);
                (m.mirror.enabled, c)
            })
            .collect();
        let enabled = cursors
            .iter()
            .filter(|(e, _)| *e)
            .map(|(_, c)| *c)
            .min()
            .unwrap_or(contents.last_seq());
        let all = cursors
            .iter()
            .map(|(_, c)| *c)
            .min()
            .unwrap_or(contents.last_seq());
        Floors { enabled, all }
    }

    /// Drops what every mirror has confirmed and coalesces the rest, when that would shrink the
    /// journal (decided on what the loop already read, to keep the lock off the idle path).
    fn compact(&mut self, spool: &Spool, cfg: &Loaded, seen: &Contents) {
        let floors = self.floors(cfg, seen);
        if !worth_compacting(seen, floors) {
            return;
        }
        let result = spool.lock().and_then(|l| {
            let fresh = spool.read(&l)?;
            spool.compact(&l, &fresh, floors)
        });
        match result {
            Ok(()) => self.reported_damage.clear(),
            Err(e) => warn!("spool compaction: {e}"),
        }
    }

    /// The exit protocol: under the spool lock, check once more that nothing is actionable; if so
    /// release the flusher lock first, then the spool lock. Returns None to keep running.
    fn try_exit(&mut self, spool: &Spool, cfg: &Loaded) -> Option<i32> {
        let lock = match spool.lock() {
            Ok(l) => l,
            Err(e) => {
                error!("{e}");
                return Some(1);
            }
        };
        let contents = spool.read(&lock).unwrap_or_default();
        let now = now_ms();
        let mut hand_off = false;
        for m in cfg.mirrors.iter().filter(|m| m.mirror.enabled) {
            // An unreadable state file is reported by the main loop and by `status`; it must not
            // keep the flusher spinning here (the main loop skips that mirror too).
            let Ok(st) = self.load_state(&m.mirror.name) else {
                continue;
            };
            let Some(p) = pending_for(&contents, &m.mirror.name, st.cursor) else {
                continue;
            };
            if parked(&p, &st) {
                continue;
            }
            if !self.left_for_later(&m.mirror.name, &p, &st, now) {
                return None;
            }
            // An update that came in after the mirror's last attempt started was appended by a
            // hook that saw us running and so started no flusher: a regular one takes it over
            // (with the usual backoff), so leaving early strands nothing.
            hand_off |= p.last_ms >= st.last_update_started_at.unwrap_or(0);
        }
        let floors = self.floors(cfg, &contents);
        if worth_compacting(&contents, floors) {
            if let Err(e) = spool.compact(&lock, &contents, floors) {
                warn!("spool compaction: {e}");
            }
        }
        if let Some(f) = &self.alive {
            let _ = FileExt::unlock(f);
        }
        let _ = FileExt::unlock(&self.lock_file);
        drop(lock);
        if hand_off {
            info!("updates came in for a mirror waiting for its retry: a flusher takes them over");
            if let Err(e) = crate::hook::spawn_flusher(&self.paths.git_dir) {
                error!("could not start the flusher: {e}");
            }
        }
        Some(0)
    }
}

fn spool_len(spool: &Spool) -> u64 {
    std::fs::metadata(spool.path()).map_or(0, |m| m.len())
}

/// Whether two configurations of a mirror push to the same place the same way (`set` resets the
/// status when they do not).
pub fn same_target(a: &crate::config::MirrorConfig, b: &crate::config::MirrorConfig) -> bool {
    a.url == b.url
        && a.auth == b.auth
        && a.ca_file == b.ca_file
        && a.allow_insecure_http == b.allow_insecure_http
}

/// Whether rewriting the journal would drop anything: confirmed records, damage, or updates
/// coalescing would merge.
fn worth_compacting(contents: &Contents, floors: Floors) -> bool {
    let droppable = contents
        .records
        .iter()
        .any(|r| !floors.keeps(r) && r.kind != Kind::Mark);
    let refs: BTreeSet<&str> = contents
        .records
        .iter()
        .filter_map(|r| r.refname())
        .collect();
    droppable || !contents.damage.is_empty() || contents.records.len() > 2 * refs.len() + 16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_a_style_maps_to_one_target_are_found() {
        let mut rule = config::MirrorConfig::new("flat", "/m/${name}.git");
        let names = |v: &[&str]| {
            v.iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .into_iter()
        };
        rule.name_style = Some(config::NameStyle::Dash);
        let all = ["team/app", "team-app", "team/other", "x/y/z"];
        assert_eq!(
            first_sharing(&rule, "team/app", names(&all)).as_deref(),
            Some("team-app")
        );
        assert_eq!(first_sharing(&rule, "team/other", names(&all)), None);
        assert_eq!(
            first_sharing(&rule, "x/y/z", names(&["x-y/z", "x/y-z"])).as_deref(),
            Some("x-y/z")
        );
        let mut all = unmapped("a-b-c", '-');
        all.sort();
        assert_eq!(all, ["a-b-c", "a-b/c", "a/b-c", "a/b/c"]);
        assert_eq!(unmapped("a_b", '_'), ["a_b", "a/b"]);
        rule.name_style = Some(config::NameStyle::Underscore);
        assert_eq!(
            first_sharing(&rule, "a/b", names(&["a_b"])).as_deref(),
            Some("a_b")
        );
        assert_eq!(first_sharing(&rule, "a/b", names(&["a-b"])), None);
        rule.name_style = Some(config::NameStyle::Basename);
        assert_eq!(
            first_sharing(&rule, "a/app", names(&["b/app", "a/app"])).as_deref(),
            Some("b/app")
        );
        // An excluded repository maps to nothing.
        rule.exclude = vec!["b/*".into()];
        assert_eq!(first_sharing(&rule, "a/app", names(&["b/app"])), None);
    }

    #[test]
    fn transient_rejections_are_told_from_policy_ones() {
        for t in [
            "[remote rejected] (failed to update ref)",
            "[rejected] (stale info)",
            "[rejected] (fetch first)",
            "cannot lock ref 'refs/heads/x'",
        ] {
            assert!(is_transient_rejection(t), "{t}");
        }
        for p in [
            "[remote rejected] (pre-receive hook declined)",
            "[remote rejected] (protected branch hook declined)",
            "[rejected] (non-fast-forward)",
        ] {
            assert!(!is_transient_rejection(p), "{p}");
        }
    }

    #[test]
    fn missing_lfs_objects_are_looked_for_again_a_bounded_number_of_times() {
        let obj = |c: char| state::LfsObject {
            oid: c.to_string().repeat(64),
            size: 7,
        };
        let mut st = MirrorState::default();
        // Defaults without a mirror: 8 re-checks, 2 s doubling.
        lfs_schedule_recheck(&mut st, &[obj('a')], None, 1_000);
        assert_eq!(st.lfs_rechecks, 1);
        assert!(st.lfs_recheck_at.is_some_and(|t| t > 1_000 && t <= 3_000));
        for n in 2..8 {
            lfs_schedule_recheck(&mut st, &[obj('a')], None, 1_000);
            assert_eq!(st.lfs_rechecks, n);
            assert!(st.lfs_recheck_at.is_some());
        }
        lfs_schedule_recheck(&mut st, &[obj('a')], None, 1_000);
        assert_eq!(st.lfs_recheck_at, None, "re-checks ran out");
        // A new missing object starts the count again.
        lfs_schedule_recheck(&mut st, &[obj('a'), obj('b')], None, 1_000);
        assert_eq!(st.lfs_rechecks, 1);
        assert!(st.lfs_recheck_at.is_some());
        // One that has arrived (fewer missing) does not.
        lfs_schedule_recheck(&mut st, &[obj('b')], None, 1_000);
        assert_eq!(st.lfs_rechecks, 2);
        // None missing: nothing left to look for.
        lfs_schedule_recheck(&mut st, &[], None, 1_000);
        assert_eq!(st.lfs_missing_objects, Vec::new());
        assert_eq!((st.lfs_rechecks, st.lfs_recheck_at), (0, None));
    }

    #[test]
    fn retry_after_replaces_the_backoff_within_max_delay() {
        let s = Duration::from_secs;
        let max = Some(s(60));
        assert_eq!(retry_delay(Some(s(30)), max, s(2)), s(30));
        assert_eq!(retry_delay(Some(s(3600)), max, s(2)), s(60));
        assert_eq!(retry_delay(Some(s(0)), max, s(2)), s(1));
        assert_eq!(retry_delay(None, max, s(2)), s(2));
        // A mirror no longer configured: the usual backoff.
        assert_eq!(retry_delay(Some(s(30)), None, s(2)), s(2));
    }

    #[test]
    fn the_interval_ends_early_only_after_a_short_finished_sync_within_the_budget() {
        let st = |started: Option<u64>, end: Option<u64>, budget: Option<u64>| MirrorState {
            last_update_started_at: started,
            last_update_at: end,
            throttle_budget_at: budget,
            ..MirrorState::default()
        };
        for (state, adaptive, want) in [
            // Never synced: at once.
            (st(None, None, None), true, 0),
            (st(None, None, None), false, 0),
            // A configured debounce is strict: from the start of the last sync.
            (st(Some(10_000), Some(10_040), None), false, 11_000),
            // Adaptive: a 40 ms sync allows the next 40 ms after its end...
            (st(Some(10_000), Some(10_040), Some(11_000)), true, 10_080),
            // ... but not while one runs (it started after the last end)...
            (st(Some(10_000), Some(9_000), Some(11_000)), true, 11_000),
            // ... nor beyond the budget (two syncs already in this interval)...
            (st(Some(10_000), Some(10_040), Some(11_600)), true, 10_600),
            // ... and never later than the fixed interval (a 700 ms sync).
            (st(Some(10_000), Some(10_700), Some(11_000)), true, 11_000),
            // No budget recorded yet (an older state file): the early end alone.
            (st(Some(10_000), Some(10_040), None), true, 10_080),
        ] {
            assert_eq!(interval_end(&state, 1000, adaptive), want, "{state:?}");
        }
        let mut s = MirrorState::default();
        spend_budget(&mut s, 1000, 5_000);
        assert_eq!(s.throttle_budget_at, Some(6_000));
        spend_budget(&mut s, 1000, 5_100);
        assert_eq!(s.throttle_budget_at, Some(7_000));
        spend_budget(&mut s, 1000, 9_000);
        assert_eq!(s.throttle_budget_at, Some(10_000));
    }

    /// The flusher's throttle, simulated in 1 ms steps: pushes every `gap` ms (`n` of them),
    /// syncs taking `took` ms. Returns the sync count and each push's lag until a sync that
    /// carries it starts.
    fn simulate(adaptive: bool, gap: u64, n: u64, took: u64) -> (u64, Vec<u64>) {
        let interval = 1000;
        let mut st = MirrorState::default();
        let (mut pending, mut running_until, mut syncs) = (Vec::new(), None, 0);
        let mut lags = Vec::new();
        for now in 0..(gap * n + 10_000) {
            if now % gap == 0 && now / gap < n {
                pending.push(now);
            }
            if running_until == Some(now) {
                st.last_update_at = Some(now);
                running_until = None;
            }
            if running_until.is_none() && !pending.is_empty() {
                let max_delay_end = pending[0] + 300_000;
                if now >= interval_end(&st, interval, adaptive).min(max_delay_end) {
                    spend_budget(&mut st, interval, now);
                    st.last_update_started_at = Some(now);
                    running_until = Some(now + took);
                    syncs += 1;
                    lags.extend(pending.drain(..).map(|t| now - t));
                }
            }
        }
        (syncs, lags)
    }

    #[test]
    fn the_adaptive_interval_keeps_the_coalescing_bound_and_shortens_the_lag() {
        let median = |mut v: Vec<u64>| {
            v.sort();
            v[v.len() / 2]
        };
        for took in [40, 400, 1500] {
            for gap in [30, 300, 700, 1200] {
                for n in [2, 5, 100] {
                    let (fixed, fixed_lags) = simulate(false, gap, n, took);
                    let (adaptive, lags) = simulate(true, gap, n, took);
                    // Over the burst's span T: at most 2 + ⌈T / interval⌉ syncs, the bound the
                    // benchmark holds the fixed interval to as well.
                    let span = gap * (n - 1);
                    let bound = 2 + span.div_ceil(1000);
                    assert!(
                        adaptive <= bound,
                        "{adaptive} > {bound}: {gap} ms x {n}, {took} ms"
                    );
                    assert!(fixed <= bound);
                    assert!(
                        median(lags.clone()) <= median(fixed_lags.clone()),
                        "{gap} ms x {n}, {took} ms: {lags:?} vs {fixed_lags:?}"
                    );
                }
            }
        }
        // Pushes 0.7 s apart after 40 ms syncs: a few go at once instead of waiting.
        let (_, lags) = simulate(true, 700, 5, 40);
        let (_, fixed_lags) = simulate(false, 700, 5, 40);
        assert_eq!(lags, [0, 0, 0, 0, 200]);
        assert_eq!(fixed_lags, [0, 300, 600, 900, 200]);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let (i, cap) = (Duration::from_millis(100), Duration::from_millis(1000));
        assert!(backoff(1, i, cap) <= Duration::from_millis(100));
        assert!(backoff(3, i, cap) >= Duration::from_millis(200));
        for n in 1..40 {
            assert!(backoff(n, i, cap) <= cap);
        }
    }
}
