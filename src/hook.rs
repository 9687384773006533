//! The post-receive face: the hot path of every push. It validates stdin, appends the valid
//! updates to the spool in one locked, durable write, makes sure a flusher runs, and returns.
//! It loads neither gix nor the network code, and nothing it does depends on the mirrors' state.

use std::io::{self, BufRead, Read, Write};
use std::path::Path;

use fs2::FileExt;

use crate::paths::RepoPaths;
use crate::spool::Spool;
use crate::update::{self, RefUpdate};

/// What one post-receive run saw, for the caller to report.
#[derive(Debug, Default)]
pub struct Outcome {
    pub spooled: usize,
    pub warnings: Vec<String>,
}

/// Runs the hook against `git_dir` reading `input`. Never fails the push: every problem becomes a
/// warning line, and the exit status stays 0 because the push has already happened.
pub fn post_receive(git_dir: &Path, input: &mut dyn Read) -> Outcome {
    let mut out = Outcome::default();
    // git's config is read once, for the object format and for `core.sharedRepository`.
    let git_config = std::fs::read_to_string(git_dir.join("config")).ok();
    let format = git_config
        .as_deref()
        .map_or(ObjectFormat::Sha1, object_format_in);
    let options = push_options();
    let mut updates: Vec<RefUpdate> = Vec::new();
    let mut reader = io::BufReader::new(input);
    let mut line = Vec::new();
    let mut lineno = 0usize;
    let mut bad = 0usize;
    loop {
        line.clear();
        // Bounded lines: a hostile or broken caller cannot make us buffer without end.
        match (&mut reader).take(8192).read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                out.warnings.push(format!("reading stdin: {e}"));
                break;
            }
        }
        lineno += 1;
        if line.last() != Some(&b'\n') && line.len() >= 8192 {
            // Swallow the rest of an over-long line without buffering it: memory stays bounded
            // however long the line is.
            skip_line(&mut reader);
        }
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        if text.is_empty() || text == b"\r" {
            continue;
        }
        match update::parse_line(text, format) {
            Ok(u) => updates.push(u),
            Err(e) => {
                bad += 1;
                if bad <= 10 {
                    out.warnings
                        .push(format!("stdin line {lineno} ignored: {e}"));
                }
            }
        }
    }
    if bad > 10 {
        out.warnings
            .push(format!("{} more invalid stdin lines ignored", bad - 10));
    }
    if options.iter().any(|o| o == "pushmirror.skip") {
        out.warnings.push(format!(
            "push option pushmirror.skip: {} update(s) not mirrored",
            updates.len()
        ));
        return out;
    }
    let force = options.iter().any(|o| o == "pushmirror.sync");
    if updates.is_empty() && !force {
        return out;
    }
    let paths = RepoPaths::new(git_dir);
    // A broken config is the pusher's to hear about (they may be the admin); the updates are
    // still spooled and go out once it is fixed.
    let config_err = crate::config::load(&paths).err();
    let mode = crate::paths::shared_dir_mode_in(git_config.as_deref());
    let spooled = spool_and_wake(&paths, mode, &updates, force);
    if let Some(e) = config_err {
        out.warnings.push(if spooled.is_ok() {
            format!("{e}; this push is spooled and will be mirrored once that is fixed")
        } else {
            e.to_string()
        });
    }
    match spooled {
        Ok(warns) => {
            out.spooled = updates.len();
            out.warnings.extend(warns);
        }
        Err(e) => out.warnings.push(format!(
            "{e}; {} update(s) NOT spooled: run `git-pushmirror sync` once fixed{}",
            updates.len(),
            if e.contains("Permission denied") {
                ownership_hint(&paths)
            } else {
                String::new()
            }
        )),
    }
    out
}

/// When `pushmirror/` belongs to another user than the one pushing (typically root, after an
/// admin command run with sudo), the chown that repairs it.
fn ownership_hint(paths: &RepoPaths) -> String {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(&paths.dir) else {
        return String::new();
    };
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if meta.uid() == me {
        return String::new();
    }
    format!(
        " ({} belongs to uid {}, this push runs as uid {me}: run git-pushmirror commands as the repository's owner; repair: chown -R {me} {})",
        paths.dir.display(),
        meta.uid(),
        paths.dir.display()
    )
}

/// Consumes input up to and including the next newline (or the end), chunk by chunk.
fn skip_line(reader: &mut dyn BufRead) {
    loop {
        let (done, n) = match reader.fill_buf() {
            Ok([]) => return,
            Ok(buf) => match buf.iter().position(|b| *b == b'\n') {
                Some(p) => (true, p + 1),
                None => (false, buf.len()),
            },
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        };
        reader.consume(n);
        if done {
            return;
        }
    }
}

/// Appends and starts a flusher if none holds the flusher lock. The check happens while the
/// spool lock is held: a flusher decides to exit under that same lock and releases its own lock
/// before the spool lock, so either it sees our records or we see it gone (no stranded update).
/// `mode` is what `paths::shared_dir_mode` says for `pushmirror/`.
fn spool_and_wake(
    paths: &RepoPaths,
    mode: u32,
    updates: &[RefUpdate],
    force: bool,
) -> Result<Vec<String>, String> {
    let forces = if force {
        vec!["*".to_string()]
    } else {
        Vec::new()
    };
    append_and_wake(paths, mode, updates, &forces, 0)
}

/// For the CLI: force records for the named mirrors (`*` for all), and a flusher to act on them.
/// Off the push's hot path, so numbered above the cursors as the state files hold them, not
/// only as `cursor-floor` remembers them (see `Spool::append_above`).
pub fn spool_and_wake_forced(paths: &RepoPaths, mirrors: &[String]) -> Result<(), String> {
    let mode = crate::paths::shared_dir_mode(&paths.git_dir);
    let known = crate::state::max_cursor(&paths.state_dir());
    append_and_wake(paths, mode, &[], mirrors, known).map(|_| ())
}

fn append_and_wake(
    paths: &RepoPaths,
    mode: u32,
    updates: &[RefUpdate],
    forces: &[String],
    known: u64,
) -> Result<Vec<String>, String> {
    paths
        .ensure_mode(mode)
        .map_err(|e| format!("{}: {e}", paths.dir.display()))?;
    let spool = Spool::new(&paths.dir);
    let lock = spool.lock().map_err(|e| e.to_string())?;
    let appended = spool
        .append_above(&lock, updates, forces, crate::time::now_ms(), known)
        .map_err(|e| e.to_string())?;
    let damage = appended.damage;
    let mut warns = Vec::new();
    if let Some(r) = appended.rewind {
        let msg = format!("{}: {r}", spool.path().display());
        crate::logging::append_line(&paths.log(), "WARN", &msg);
        warns.push(msg);
    }
    if let Some(d) = damage {
        warns.push(format!(
            "{}: torn record of {} bytes at offset {} (a crash?) skipped; new updates are safe",
            spool.path().display(),
            d.len,
            d.offset
        ));
    }
    if !flusher_running(paths) {
        if let Err(e) = spawn_flusher(&paths.git_dir) {
            warns.push(format!(
                "could not start the flusher: {e}; run `git-pushmirror sync`"
            ));
        }
    }
    drop(lock);
    Ok(warns)
}

/// Tries `flusher.lock` itself: for the start-a-flusher protocol only (under the spool lock,
/// followed by a spawn when it was free). Whoever wins an instant of this lock is either a
/// flusher or a caller that starts one, so a starting flusher turned away by it strands nothing.
/// A probe that starts nothing (`status`, `sync --wait`) must use `locks::held` on
/// `flusher.alive` instead.
fn flusher_running(paths: &RepoPaths) -> bool {
    let Ok(f) = crate::paths::open_private(&paths.flusher_lock(), false) else {
        return false;
    };
    match f.try_lock_exclusive() {
        Ok(()) => {
            let _ = FileExt::unlock(&f);
            false
        }
        Err(_) => true,
    }
}

/// Starts `git-pushmirror flush --repo DIR` detached: stdin/stdout/stderr on /dev/null, because
/// git's receive-pack waits for the hook's output pipes to close and the pusher's `git push` would
/// hang until the flusher exits. Git's own environment for the hook (GIT_DIR, push options,
/// quarantine) is dropped. The flusher makes itself a session leader and closes any other
/// inherited descriptor as its first act (`flusher::detach`); doing that here in a `pre_exec`
/// would force a full fork instead of posix_spawn on the push's hot path. The child is not
/// waited for: it outlives us and is re-parented to init.
pub fn spawn_flusher(git_dir: &Path) -> io::Result<()> {
    let exe = crate::paths::self_exe()?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("flush").arg("--repo").arg(git_dir);
    crate::paths::drop_git_env(&mut cmd);
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    cmd.spawn().map(drop)
}

/// Push options as receive-pack hands them to hooks (`GIT_PUSH_OPTION_<n>`).
fn push_options() -> Vec<String> {
    let n: usize = std::env::var("GIT_PUSH_OPTION_COUNT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    (0..n.min(1000))
        .filter_map(|i| std::env::var(format!("GIT_PUSH_OPTION_{i}")).ok())
        .collect()
}

use crate::update::{object_format_in, ObjectFormat};

/// The hook face as a process: warnings go to stderr, which receive-pack relays to the pusher
/// as `remote: git-pushmirror: ...`.
pub fn run(git_dir: &Path) -> i32 {
    let stdin = io::stdin();
    let out = post_receive(git_dir, &mut stdin.lock());
    let mut err = io::stderr().lock();
    for w in &out.warnings {
        let _ = writeln!(err, "git-pushmirror: {}", crate::text::one_line(w));
    }
    0
}
