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
    let limit = limit.max(1);
    let start = (std::process::id() as usize) % limit;
    let mut wait = Duration::from_millis(10);
    loop {
        for i in 0..limit {
            let n = (start + i) % limit;
            let file =
                crate::paths::open_private(&runtime_dir.join(format!("{kind}-{n}.lock")), false)?;
            if file.try_lock_exclusive().is_ok() {
                return Ok(Slot { file });
            }
        }
        std::thread::sleep(wait + Duration::from_millis(crate::time::jitter_ms(20)));
        wait = (wait * 2).min(Duration::from_millis(200));
    }
}
