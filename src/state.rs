//! Per-mirror state, `pushmirror/state/<name>.json`: the spool cursor and everything `status`
//! reports. Only the flusher writes it (atomically), so readers never see a half-written file.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

mod histogram;
pub use histogram::{Histogram, DELAY_BOUNDS_MS, SYNC_BOUNDS_MS};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateStatus {
    #[default]
    None,
    Scheduled,
    Started,
    Finished,
    Failed,
}

impl UpdateStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateStatus::None => "none",
            UpdateStatus::Scheduled => "scheduled",
            UpdateStatus::Started => "started",
            UpdateStatus::Finished => "finished",
            UpdateStatus::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MirrorState {
    /// Highest spool sequence number this mirror has confirmed.
    pub cursor: u64,
    pub update_status: UpdateStatus,
    pub last_update_started_at: Option<u64>,
    pub last_update_at: Option<u64>,
    pub last_successful_update_at: Option<u64>,
    /// One line, already masked and scrubbed of secrets.
    pub last_error: Option<String>,
    pub divergent_refs: Vec<String>,
    /// Refs the mirror refused in the last sync, with its reason.
    pub rejected_refs: Vec<String>,
    pub consecutive_failures: u32,
    pub next_retry_at: Option<u64>,
    /// Set when the flusher gave up after its bounded attempts: the spool sequence it gave up at.
    /// A newer record (a push, `sync`) retries; until then the mirror stays `failed`.
    pub gave_up_at_seq: Option<u64>,
    /// Counters for operators and the benchmark: syncs run, and how many of them sent a push.
    pub syncs: u64,
    pub pushes: u64,
    pub refs_pushed_last: u64,
    /// Refs pushed or deleted over the mirror's life (for metrics).
    pub refs_pushed_total: u64,
    /// Bytes of the packs pushed to the mirror: by the last sync that ran, and over the
    /// mirror's life (counted since this version recorded it). LFS objects are not in these.
    pub bytes_pushed_last: u64,
    pub bytes_pushed_total: u64,
    /// Branches the last sync kept on the mirror only because upstream's HEAD names no
    /// existing branch (deletions held back).
    pub kept_by_dangling_head: Vec<String>,
    /// LFS objects and bytes the last sync sent.
    pub lfs_objects_last: u64,
    pub lfs_bytes_last: u64,
    /// LFS objects the mirror needs that the upstream lacks too (capped list, and the count).
    pub lfs_missing: Vec<String>,
    pub lfs_missing_count: u64,
    /// The last error of the LFS step (masked), until a sync succeeds.
    pub lfs_last_error: Option<String>,
    /// The LFS objects the last LFS step found missing upstream (or corrupt there), remembered
    /// (up to `mirror::lfs::REMEMBER_CAP`) so that later syncs look for them again and send
    /// those that have arrived. See docs/lfs.md.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub lfs_missing_objects: Vec<LfsObject>,
    /// Syncs in a row that ended with the same objects still missing (the backoff of their
    /// re-checks), and when the flusher looks for them again without a push (None: not
    /// scheduled; a push, `sync` or `sweep` still looks).
    #[serde(skip_serializing_if = "is_zero")]
    pub lfs_rechecks: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lfs_recheck_at: Option<u64>,
    /// The adaptive throttle's budget (see `flusher::interval_end`): every sync start moves it
    /// one interval past the later of itself and that start; a sync may start early only from
    /// one interval before it on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub throttle_budget_at: Option<u64>,
    /// Push→mirror delay: per sync that brought spooled updates to the mirror, how long the
    /// oldest of them had waited since it was spooled (buckets `DELAY_BOUNDS_MS`).
    #[serde(skip_serializing_if = "Histogram::is_empty")]
    pub replication_delay: Histogram,
    /// How long syncs took, from start to end, whatever their outcome (`SYNC_BOUNDS_MS`).
    #[serde(skip_serializing_if = "Histogram::is_empty")]
    pub sync_duration: Histogram,
    /// What `create_missing` did when a sync last created this mirror's target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// When that was (the record that we made it; equal to `last_update_at` when the last
    /// sync created it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<u64>,
}

/// An LFS object by its pointer: sha256 oid (64 lowercase hex) and size.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LfsObject {
    pub oid: String,
    pub size: u64,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{path}: corrupt state file ({msg}); delete it to resync this mirror from scratch")]
    Corrupt { path: PathBuf, msg: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The highest cursor a state file can hold (2^53, a billion pushes a day for 25,000 years):
/// one above it was damaged or edited by hand, and numbering the spool above it would run out
/// of sequence numbers. `load` refuses such a file as corrupt (delete it: a full sync), and
/// `max_cursor` leaves it out as it does a file it cannot read.
pub const MAX_CURSOR: u64 = 1 << 53;

pub fn path(state_dir: &Path, mirror: &str) -> PathBuf {
    state_dir.join(format!("{mirror}.json"))
}

/// Where the flusher keeps its record of what the mirror held after the last sync
/// (`mirror::listing` reads and writes it; the state owns the name so that `remove` takes it
/// along without reaching up into `mirror/`).
pub fn listing_path(state_dir: &Path, mirror: &str) -> PathBuf {
    state_dir.join(format!("{mirror}.listing"))
}

/// Forgets the record of the mirror's refs (a missing file is fine; a symlinked `state/` is
/// left alone).
pub fn remove_listing(state_dir: &Path, mirror: &str) {
    if crate::paths::refuse_symlink(state_dir).is_ok() {
        let _ = std::fs::remove_file(listing_path(state_dir, mirror));
    }
}

/// A missing file is a mirror that never synced.
pub fn load(state_dir: &Path, mirror: &str) -> Result<MirrorState, StateError> {
    let p = path(state_dir, mirror);
    crate::paths::refuse_symlink(state_dir).map_err(|source| StateError::Io {
        path: p.clone(),
        source,
    })?;
    match read_nofollow(&p) {
        Ok(bytes) => match serde_json::from_slice::<MirrorState>(&bytes) {
            Ok(st) if st.cursor > MAX_CURSOR => Err(StateError::Corrupt {
                path: p,
                msg: format!(
                    "cursor {} is beyond any sequence number the spool can reach",
                    st.cursor
                ),
            }),
            Ok(st) => Ok(st),
            Err(e) => Err(StateError::Corrupt {
                path: p,
                msg: e.to_string(),
            }),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(MirrorState::default()),
        Err(source) => Err(StateError::Io { path: p, source }),
    }
}

/// Reads a file without following a symlink planted in its place (spec §9).
fn read_nofollow(p: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(p)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                std::io::Error::other("is a symlink; refusing to follow it (remove it)")
            } else {
                e
            }
        })?;
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes)?;
    Ok(bytes)
}

pub fn save(state_dir: &Path, mirror: &str, state: &MirrorState) -> Result<(), StateError> {
    let p = path(state_dir, mirror);
    let io = |source| StateError::Io {
        path: p.clone(),
        source,
    };
    // Never through a symlinked state/ (it would write wherever the link points), and created
    // 0700 (or shared, see paths::ensure_dir) when missing.
    crate::paths::ensure_dir(state_dir).map_err(io)?;
    let bytes = serde_json::to_vec_pretty(state).map_err(|e| io(std::io::Error::other(e)))?;
    let mode = crate::paths::file_mode_in(state_dir);
    crate::paths::write_atomic(&p, &bytes, mode).map_err(io)
}

/// Deletes a mirror's state (a missing one is fine). A symlinked `state/` is refused: removing
/// `NAME.json` through it would delete a file wherever the link points.
pub fn remove(state_dir: &Path, mirror: &str) -> Result<(), StateError> {
    let p = path(state_dir, mirror);
    let io = |source| StateError::Io {
        path: p.clone(),
        source,
    };
    crate::paths::refuse_symlink(state_dir).map_err(io)?;
    // The guess of the mirror's refs goes with it (a re-added mirror lists first).
    remove_listing(state_dir, mirror);
    match std::fs::remove_file(&p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(e)),
        _ => Ok(()),
    }
}

/// The highest cursor any mirror's state holds (0 when none can be read): the floor below
/// which the spool's sequence numbers must never restart, or the records would count as
/// already confirmed and never be mirrored.
pub fn max_cursor(state_dir: &Path) -> u64 {
    #[derive(Deserialize)]
    struct Cursor {
        #[serde(default)]
        cursor: u64,
    }
    if crate::paths::refuse_symlink(state_dir).is_err() {
        return 0;
    }
    let Ok(rd) = std::fs::read_dir(state_dir) else {
        return 0;
    };
    rd.flatten()
        .filter(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            n.ends_with(".json") && !n.starts_with('.')
        })
        .filter_map(|e| read_nofollow(&e.path()).ok())
        .filter_map(|b| serde_json::from_slice::<Cursor>(&b).ok())
        .map(|c| c.cursor)
        .filter(|c| *c <= MAX_CURSOR)
        .max()
        .unwrap_or(0)
}

/// Removes temporary files a killed writer left in `state/` (`.NAME.json.tmp.<pid>`). Only the
/// flusher, which holds the repository's flusher lock, writes state files.
pub fn clean_temp_files(state_dir: &Path) -> usize {
    if crate::paths::refuse_symlink(state_dir).is_err() {
        return 0;
    }
    crate::paths::remove_temp_files(state_dir, |n| {
        n.contains(".json.tmp.") || n.contains(".listing.tmp.")
    })
}
