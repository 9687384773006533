//! The flusher's log, `pushmirror/log`: RUST_LOG-style levels, timestamps, size-capped by
//! rotating to `log.1` whenever it passes the cap (also in the middle of a long-lived flusher's
//! life). Never the pusher's terminal, and messages are masked before they get here.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub const DEFAULT_MAX_BYTES: u64 = 1 << 20;

/// Appends to the log and rotates it to `log.1` once it holds more than `max` bytes, so the log
/// and its one predecessor never exceed twice the cap together.
struct Rotating {
    path: PathBuf,
    file: File,
    size: u64,
    max: u64,
}

impl Rotating {
    fn open(path: &Path, max: u64) -> io::Result<Rotating> {
        let file = crate::paths::open_private(path, true)?;
        let size = file.metadata()?.len();
        let mut r = Rotating {
            path: path.to_path_buf(),
            file,
            size,
            max,
        };
        if r.size > r.max {
            r.rotate()?;
        }
        Ok(r)
    }

    fn rotate(&mut self) -> io::Result<()> {
        std::fs::rename(&self.path, self.path.with_extension("1"))?;
        self.file = crate::paths::open_private(&self.path, true)?;
        self.size = 0;
        Ok(())
    }
}

impl Write for Rotating {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.size > self.max {
            // A failed rotation (read-only dir) must not stop logging into the current file.
            let _ = self.rotate();
        }
        let n = self.file.write(buf)?;
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// One line in the log's format from a process that has no logger (the hook): best effort.
pub fn append_line(log: &Path, level: &str, msg: &str) {
    if let Ok(mut f) = crate::paths::open_private(log, true) {
        let _ = writeln!(
            f,
            "{} {level:5} [{}] {}",
            crate::time::rfc3339(crate::time::now_ms()),
            std::process::id(),
            crate::text::one_line(msg)
        );
    }
}

pub fn init(log: &Path, level: Option<&str>, max_bytes: u64) {
    let Ok(target) = Rotating::open(log, max_bytes.max(4096)) else {
        return;
    };
    let filter = std::env::var("GIT_PUSHMIRROR_LOG")
        .ok()
        .or_else(|| level.map(str::to_string))
        .unwrap_or_else(|| "info".into());
    let pid = std::process::id();
    let _ = env_logger::Builder::new()
        .parse_filters(&filter)
        .format(move |buf, rec| {
            writeln!(
                buf,
                "{} {:5} [{pid}] {}",
                crate::time::rfc3339(crate::time::now_ms()),
                rec.level(),
                // One line each, whatever a path, a name or a server put in the message.
                crate::text::one_line(&rec.args().to_string())
            )
        })
        .target(env_logger::Target::Pipe(Box::new(target)))
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_past_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log");
        let mut r = Rotating::open(&p, 100).unwrap();
        for i in 0..50 {
            writeln!(r, "line {i} with some padding").unwrap();
        }
        let cur = std::fs::metadata(&p).unwrap().len();
        let old = std::fs::metadata(p.with_extension("1")).unwrap().len();
        assert!(cur <= 100 + 40 && old <= 100 + 40, "{cur} {old}");
        assert!(std::fs::read_to_string(&p).unwrap().contains("line 49"));
    }
}
