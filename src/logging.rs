//! The flusher's log, `pushmirror/log`: RUST_LOG-style levels, timestamps, size-capped by
//! rotating to `log.1`. Never the pusher's terminal, and messages are masked before they get here.

use std::io::Write;
use std::path::Path;

pub const DEFAULT_MAX_BYTES: u64 = 1 << 20;

pub fn init(log: &Path, level: Option<&str>, max_bytes: u64) {
    if std::fs::metadata(log)
        .map(|m| m.len() > max_bytes)
        .unwrap_or(false)
    {
        let _ = std::fs::rename(log, log.with_extension("1"));
    }
    let Ok(file) = crate::paths::open_private(log, true) else {
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
                rec.args()
            )
        })
        .target(env_logger::Target::Pipe(Box::new(file)))
        .try_init();
}
