//! Server-wide concurrency slots: N lock files in the runtime directory, shared by every
//! repository's flusher. A slot is a held flock, so a holder killed with SIGKILL frees it.

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use fs2::FileExt;

pub struct Slot {
    file: File,
    path: PathBuf,
}

/// The slot files this process holds. On NFS, flock is emulated with POSIX record locks,
/// which belong to the whole process: a second thread of the same flusher would "take" a slot
/// file the first holds, and the first one's unlock would free both. So a slot file this
/// process holds is never tried again until it is given back.
static HELD: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

impl Drop for Slot {
    fn drop(&mut self) {
        let _ = FileExt::unlock(&self.file);
        if let Ok(mut held) = HELD.lock() {
            held.remove(&self.path);
        }
    }
}

/// Blocks until one of `limit` slots is free.
pub fn acquire(runtime_dir: &Path, limit: usize) -> std::io::Result<Slot> {
    acquire_kind(runtime_dir, "slot", limit)
}

/// Blocks until one of `limit` slots of `kind` is free (`{kind}-{n}.lock`: the pushes use
/// `slot`, the notify commands `notify`, each kind bounded on its own).
pub fn acquire_kind(runtime_dir: &Path, kind: &str, limit: usize) -> std::io::Result<Slot> {
    crate::paths::ensure_runtime_dir(runtime_dir)?;
    wait_for(runtime_dir, kind, limit)
}

/// Blocks until one of `limit` push slots in `slots_dir:` (the server config; storage several
/// nodes share) is free. Unlike the runtime directory, the admin names this one: a symlink to
/// a directory (a mount elsewhere) is followed, and its mode is left as the admin set it.
pub fn acquire_shared(slots_dir: &Path, limit: usize) -> std::io::Result<Slot> {
    ensure_slots_dir(slots_dir)?;
    wait_for(slots_dir, "slot", limit)
}

/// `slots_dir`, made (mode 0700) when missing: a directory, possibly through a symlink, owned
/// by this service's user (who else could hold or remove its lock files).
fn ensure_slots_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    if let Err(e) = std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
    {
        if e.kind() != std::io::ErrorKind::AlreadyExists {
            return Err(e);
        }
    }
    let m = std::fs::metadata(dir)?;
    if !m.is_dir() {
        return Err(std::io::Error::other("slots_dir is not a directory"));
    }
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if m.uid() != me {
        return Err(std::io::Error::other(format!(
            "slots_dir is owned by uid {}, not by this service's user (uid {me})",
            m.uid()
        )));
    }
    Ok(())
}

/// Blocks until one of the `limit` lock files `{kind}-{n}.lock` in `dir` is free.
fn wait_for(dir: &Path, kind: &str, limit: usize) -> std::io::Result<Slot> {
    let limit = limit.max(1);
    let start = (std::process::id() as usize) % limit;
    let mut wait = Duration::from_millis(10);
    loop {
        for i in 0..limit {
            let n = (start + i) % limit;
            let path = dir.join(format!("{kind}-{n}.lock"));
            let mut held = HELD.lock().unwrap_or_else(|e| e.into_inner());
            if held.contains(&path) {
                continue;
            }
            let file = crate::paths::open_private(&path, false)?;
            if file.try_lock_exclusive().is_ok() {
                held.insert(path.clone());
                return Ok(Slot { file, path });
            }
        }
        std::thread::sleep(wait + Duration::from_millis(crate::time::jitter_ms(20)));
        wait = (wait * 2).min(Duration::from_millis(200));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What NFS's process-wide locks would not stop: the process's own bookkeeping keeps a
    /// second thread off a slot file the first holds, and gives it back on drop.
    #[test]
    fn a_held_slot_file_is_not_taken_again_by_the_same_process() {
        let dir = tempfile::tempdir().unwrap();
        let a = acquire_kind(dir.path(), "t", 2).unwrap();
        let b = acquire_kind(dir.path(), "t", 2).unwrap();
        assert_ne!(a.path, b.path);
        assert!(HELD.lock().unwrap().contains(&a.path));
        let pa = a.path.clone();
        drop(a);
        assert!(!HELD.lock().unwrap().contains(&pa));
        let c = acquire_kind(dir.path(), "t", 2).unwrap();
        assert_eq!(c.path, pa);
        drop((b, c));
    }
}
