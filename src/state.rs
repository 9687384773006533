//! Per-mirror state, `pushmirror/state/<name>.json`: the spool cursor and everything `status`
//! reports. Only the flusher writes it (atomically), so readers never see a half-written file.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

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
    /// LFS objects and bytes the last sync sent.
    pub lfs_objects_last: u64,
    pub lfs_bytes_last: u64,
    /// LFS objects the mirror needs that the upstream lacks too (capped list, and the count).
    pub lfs_missing: Vec<String>,
    pub lfs_missing_count: u64,
    /// The last error of the LFS step (masked), until a sync succeeds.
    pub lfs_last_error: Option<String>,
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

pub fn path(state_dir: &Path, mirror: &str) -> PathBuf {
    state_dir.join(format!("{mirror}.json"))
}

/// A missing file is a mirror that never synced.
pub fn load(state_dir: &Path, mirror: &str) -> Result<MirrorState, StateError> {
    let p = path(state_dir, mirror);
    match read_nofollow(&p) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| StateError::Corrupt {
            path: p,
            msg: e.to_string(),
        }),
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
    match std::fs::symlink_metadata(state_dir) {
        Ok(m) if m.file_type().is_symlink() => {
            return Err(io(std::io::Error::other(
                "state directory is a symlink; refusing to follow it",
            )))
        }
        Ok(_) => {}
        Err(_) => {
            std::fs::create_dir(state_dir)
                .or_else(|e| {
                    if e.kind() == std::io::ErrorKind::AlreadyExists {
                        Ok(())
                    } else {
                        Err(e)
                    }
                })
                .map_err(io)?;
        }
    }
    let bytes = serde_json::to_vec_pretty(state).map_err(|e| io(std::io::Error::other(e)))?;
    crate::paths::write_atomic(&p, &bytes, 0o600).map_err(io)
}

pub fn remove(state_dir: &Path, mirror: &str) {
    let _ = std::fs::remove_file(path(state_dir, mirror));
}
