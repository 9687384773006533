//! Server-wide concurrency slots: N lock files in the runtime directory, shared by every
//! repository's flusher. A slot is a held flock, so a holder killed with SIGKILL frees it.

use std::fs::File;
use std::path::Path;
use std::time::Duration;

use fs2::FileExt;

pub struct Slot {
    file: File,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let _ = FileExt::unlock(&self.file);
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
            let file = crate::paths::open_private(&dir.join(format!("{kind}-{n}.lock")), false)?;
            if file.try_lock_exclusive().is_ok() {
                return Ok(Slot { file });
            }
        }
        std::thread::sleep(wait + Duration::from_millis(crate::time::jitter_ms(20)));
        wait = (wait * 2).min(Duration::from_millis(200));
    }
}
