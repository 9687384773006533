//! `pushmirror/cursor-floor`: a one-line cache of the highest cursor in `state/*.json`, so that
//! the hook does not read and parse every mirror's state file on every push.
//!
//! The spool must never number a record at or below a mirror's cursor (see
//! `Spool::append_checked`); the highest cursor is that floor. Reading it from the state files
//! costs a directory scan plus an open, read and JSON parse per mirror on the push's hot path.
//! This file remembers the answer together with the identity and change time (ctime) of the
//! `state/` directory it was computed from. Every state write is an atomic rename into `state/`
//! (and a removal is an unlink there), both of which change the directory's ctime, so a cursor
//! cannot move without the stamp changing. The hook trusts the cached floor only while the stamp
//! is the same; anything else (file missing, unreadable, corrupt, another stamp, `state/` a
//! symlink or gone) falls back to reading every state file, as before. Never to 0.
//!
//! The cache is (re)written by the hook itself after such a slow read, under the spool lock,
//! and only once `state/` has been quiet for longer than the file system's timestamp
//! granularity: a rename in the same clock tick as the one recorded could otherwise leave the
//! ctime unchanged. Written in place, without fsync: a torn or lost write is caught by the CRC
//! or by the stamp, and costs one slow read.
//!
//! What the stamp cannot see is a state file written in place rather than renamed (restored
//! with `cp` over the old one): the cache then says less than the real highest cursor, and
//! new records would be numbered at or below it. Whoever reads the state files themselves and
//! finds the spool ending below a cursor (the flusher at every pass, `sync`) numbers above
//! the real cursor with `Spool::append_above`, which drops the stale cache (`forget`).

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const FILE: &str = "cursor-floor";

/// How long `state/` must have been unchanged before its ctime can stand for its contents, on
/// a file system with sub-second timestamps (the kernel's coarse clock ticks every 1-10 ms)...
const SETTLED_FINE: Duration = Duration::from_millis(100);
/// ...and on one that keeps whole seconds only (a ctime with 0 ns).
const SETTLED_COARSE: Duration = Duration::from_millis(2100);

/// What identifies one content of `state/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    dev: u64,
    ino: u64,
    ctime_s: i64,
    ctime_ns: i64,
}

impl Stamp {
    fn of(m: &fs::Metadata) -> Stamp {
        Stamp {
            dev: m.dev(),
            ino: m.ino(),
            ctime_s: m.ctime(),
            ctime_ns: m.ctime_nsec(),
        }
    }

    /// Whether no rename into `state/` can still share this ctime: `now` is past it by more
    /// than a timestamp tick. A ctime in the future (clock stepped back) is not settled.
    fn settled(&self, now: SystemTime) -> bool {
        let Ok(now) = now.duration_since(UNIX_EPOCH) else {
            return false;
        };
        let (Ok(s), Ok(ns)) = (u64::try_from(self.ctime_s), u32::try_from(self.ctime_ns)) else {
            return false;
        };
        let margin = if ns == 0 {
            SETTLED_COARSE
        } else {
            SETTLED_FINE
        };
        now.checked_sub(Duration::new(s, ns))
            .is_some_and(|age| age >= margin)
    }
}

fn encode(floor: u64, st: &Stamp) -> String {
    let body = format!(
        "cursor-floor v1 {floor} {} {} {} {}",
        st.dev, st.ino, st.ctime_s, st.ctime_ns
    );
    let crc = crc32fast::hash(body.as_bytes());
    format!("{body} {crc:08x}\n")
}

fn decode(bytes: &[u8]) -> Option<(u64, Stamp)> {
    let line = std::str::from_utf8(bytes.strip_suffix(b"\n")?).ok()?;
    let (body, crc) = line.rsplit_once(' ')?;
    if crc.len() != 8 || u32::from_str_radix(crc, 16).ok()? != crc32fast::hash(body.as_bytes()) {
        return None;
    }
    let mut f = body.split(' ');
    if (f.next()?, f.next()?) != ("cursor-floor", "v1") {
        return None;
    }
    let floor = f.next()?.parse().ok()?;
    let stamp = Stamp {
        dev: f.next()?.parse().ok()?,
        ino: f.next()?.parse().ok()?,
        ctime_s: f.next()?.parse().ok()?,
        ctime_ns: f.next()?.parse().ok()?,
    };
    f.next().is_none().then_some((floor, stamp))
}

/// The cached floor and the stamp it was computed for; `None` for a missing, unreadable,
/// symlinked or corrupt file.
fn read(path: &Path) -> Option<(u64, Stamp)> {
    let mut f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    // One read: the line is far shorter than the buffer, and anything longer is not ours.
    let mut buf = [0u8; 256];
    let mut n = 0;
    loop {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => {
                n += k;
                if n == buf.len() {
                    return None;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    decode(&buf[..n])
}

fn write(path: &Path, floor: u64, stamp: &Stamp) -> std::io::Result<()> {
    let line = encode(floor, stamp);
    let mut f: File = crate::paths::open_private(path, false)?;
    f.write_all(line.as_bytes())?;
    f.set_len(line.len() as u64)
}

/// The highest cursor in `dir/state/*.json` (`dir` is `pushmirror/`), from the cache when it
/// is valid for the current `state/`, else from the state files themselves (then cached for the
/// next push when `state/` has settled). The caller holds the spool lock, which serialises the
/// writers of the cache.
pub fn max_cursor(dir: &Path) -> u64 {
    let state_dir = dir.join("state");
    let stamp = match fs::symlink_metadata(&state_dir) {
        Ok(m) if m.is_dir() => Stamp::of(&m),
        // Missing (no mirror ever synced), a symlink (refused) or not a directory: the slow
        // path knows what each means, and is cheap for all of them.
        _ => return crate::state::max_cursor(&state_dir),
    };
    let path = dir.join(FILE);
    if let Some((floor, at)) = read(&path) {
        if at == stamp {
            return floor;
        }
    }
    let floor = crate::state::max_cursor(&state_dir);
    // Cache it only if `state/` did not change while we read it, and no later rename into it
    // could keep this ctime.
    let unchanged = fs::symlink_metadata(&state_dir).is_ok_and(|m| Stamp::of(&m) == stamp);
    if unchanged && stamp.settled(SystemTime::now()) {
        // Best effort: without the cache the next push just reads the state files again.
        let _ = write(&path, floor, &stamp);
    }
    floor
}

/// Drops the cache (best effort): someone who read the state files found a cursor above it,
/// so it no longer stands for them (a state file overwritten in place keeps the stamp). The
/// next `max_cursor` reads the state files and caches the answer again.
pub fn forget(dir: &Path) {
    let _ = fs::remove_file(dir.join(FILE));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(ns: i64) -> Stamp {
        Stamp {
            dev: 1,
            ino: 2,
            ctime_s: 1_700_000_000,
            ctime_ns: ns,
        }
    }

    #[test]
    fn encode_decode_roundtrip_and_corruption_is_refused() {
        let st = stamp(5);
        let line = encode(42, &st);
        assert_eq!(decode(line.as_bytes()), Some((42, st)));
        // One changed digit, a truncation, a missing newline, trailing junk: all refused.
        let bad = line.replacen("42", "43", 1);
        assert_eq!(decode(bad.as_bytes()), None);
        assert_eq!(decode(&line.as_bytes()[..line.len() - 3]), None);
        assert_eq!(decode(line.trim_end().as_bytes()), None);
        assert_eq!(decode(format!("{line}x").as_bytes()), None);
        assert_eq!(decode(b""), None);
    }

    #[test]
    fn settled_needs_a_margin_past_the_ctime() {
        let base = UNIX_EPOCH + Duration::new(1_700_000_000, 5);
        let st = stamp(5);
        assert!(!st.settled(base));
        assert!(!st.settled(base + Duration::from_millis(50)));
        assert!(st.settled(base + Duration::from_millis(150)));
        // A ctime ahead of the clock is never settled.
        assert!(!st.settled(base - Duration::from_secs(1)));
        // Whole-second timestamps need whole seconds of quiet.
        let coarse = stamp(0);
        let base = UNIX_EPOCH + Duration::new(1_700_000_000, 0);
        assert!(!coarse.settled(base + Duration::from_millis(1500)));
        assert!(coarse.settled(base + Duration::from_secs(3)));
    }

    fn write_state(dir: &Path, name: &str, cursor: u64) {
        let st = crate::state::MirrorState {
            cursor,
            ..Default::default()
        };
        crate::state::save(&dir.join("state"), name, &st).unwrap();
    }

    /// Ages `state/`'s ctime past the settling margin by waiting (no clock can be faked for a
    /// ctime); polls so a slow machine only waits longer.
    fn wait_settled(dir: &Path) {
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        loop {
            let m = fs::symlink_metadata(dir.join("state")).unwrap();
            if Stamp::of(&m).settled(SystemTime::now()) {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "state/ never settled");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn cached_floor_is_used_only_for_the_state_dir_it_was_computed_from() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        assert_eq!(max_cursor(dir), 0, "no state/ at all");
        write_state(dir, "a", 7);
        write_state(dir, "b", 3);
        wait_settled(dir);
        assert_eq!(max_cursor(dir), 7);
        let cached = fs::read(dir.join(FILE)).expect("cache written once settled");
        let (floor, _) = decode(&cached).unwrap();
        assert_eq!(floor, 7);
        // Trusted while state/ is unchanged: a cache saying more proves it is read (a state
        // file edited in place, which the product never does, would not be noticed).
        let m = fs::symlink_metadata(dir.join("state")).unwrap();
        fs::write(dir.join(FILE), encode(9, &Stamp::of(&m))).unwrap();
        assert_eq!(max_cursor(dir), 9);
        // A cursor saved since: the stamp moved, the state files are read again.
        write_state(dir, "b", 12);
        assert_eq!(max_cursor(dir), 12);
        // A stale cache (an older content of state/, say restored from a backup) is ignored.
        fs::write(dir.join(FILE), &cached).unwrap();
        assert_eq!(max_cursor(dir), 12);
        wait_settled(dir);
        assert_eq!(max_cursor(dir), 12);
        assert_eq!(decode(&fs::read(dir.join(FILE)).unwrap()).unwrap().0, 12);
        // Corrupt (a flipped digit under the right stamp), truncated, empty or missing: the
        // slow path, never the damaged value.
        let m = fs::symlink_metadata(dir.join("state")).unwrap();
        let forged = encode(99, &Stamp::of(&m));
        let flipped = forged.replacen(" 99 ", " 98 ", 1);
        fs::write(dir.join(FILE), &flipped).unwrap();
        assert_eq!(max_cursor(dir), 12);
        fs::write(dir.join(FILE), &forged[..forged.len() - 4]).unwrap();
        assert_eq!(max_cursor(dir), 12);
        fs::write(dir.join(FILE), b"").unwrap();
        assert_eq!(max_cursor(dir), 12);
        fs::remove_file(dir.join(FILE)).unwrap();
        assert_eq!(max_cursor(dir), 12);
        assert!(dir.join(FILE).exists(), "rewritten after the slow read");
        // A removed mirror is a change too.
        crate::state::remove(&dir.join("state"), "b").unwrap();
        assert_eq!(max_cursor(dir), 7);
    }

    #[test]
    fn a_symlinked_cache_is_not_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        write_state(dir, "a", 4);
        let elsewhere = dir.join("elsewhere");
        let m = fs::symlink_metadata(dir.join("state")).unwrap();
        fs::write(&elsewhere, encode(99, &Stamp::of(&m))).unwrap();
        std::os::unix::fs::symlink(&elsewhere, dir.join(FILE)).unwrap();
        wait_settled(dir);
        assert_eq!(max_cursor(dir), 4);
        // Nor written through.
        assert_eq!(decode(&fs::read(&elsewhere).unwrap()).unwrap().0, 99);
    }
}
