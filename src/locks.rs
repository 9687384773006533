//! Locks that must hold across the nodes sharing one storage: a liveness probe that asks the
//! lock itself (where `flock` reaches the file server, it sees a holder on any node, unlike the
//! local `/proc/locks`), and the checks that warn when locks on a directory do not work across
//! nodes (an NFS mount with `local_lock=flock|all`) or do not work at all.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use fs2::FileExt;

/// Whether some process (on this node or, where `flock` works across nodes, on another one)
/// holds `path` locked exclusively. Nothing is created; the file is opened read-only, and the
/// probe takes a *shared* lock for an instant: it never conflicts with another probe, and the
/// holder of the exclusive lock takes it with a blocking call (see `hold`), so a probe can
/// delay it by an instant but never turn it away.
pub fn held(path: &Path) -> bool {
    let Ok(f) = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path)
    else {
        return false;
    };
    match FileExt::try_lock_shared(&f) {
        Ok(()) => {
            let _ = FileExt::unlock(&f);
            false
        }
        Err(e) => e.raw_os_error() == fs2::lock_contended_error().raw_os_error(),
    }
}

/// Takes the exclusive lock `held` looks for on an open file, waiting out probes (they hold it
/// for an instant). Only the process that already won the single-instance lock calls this, so
/// no other holder can keep it waiting.
pub fn hold(file: &File) -> io::Result<()> {
    file.lock_exclusive()
}

/// A directory where locks do not exclude each other: two open files of one lock file in this
/// process must conflict. (It only proves local semantics; `nfs_local_lock` covers the mount
/// option that makes NFS locks local to each node.) None when they conflict or the directory
/// cannot be written (no file is left behind either way).
pub fn broken_in(dir: &Path) -> Option<String> {
    let path = dir.join(format!(".pushmirror-lockcheck.{}", std::process::id()));
    let a = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&path)
        .ok()?;
    let result = (|| {
        let b = OpenOptions::new().read(true).write(true).open(&path).ok()?;
        a.try_lock_exclusive().ok()?;
        let conflict = b.try_lock_exclusive().is_err();
        let _ = FileExt::unlock(&a);
        Some(conflict)
    })();
    let _ = std::fs::remove_file(&path);
    match result {
        Some(false) => Some(format!(
            "{}: file locks do not exclude each other on this file system: two nodes (or two flushers) may work on one repository at once",
            dir.display()
        )),
        _ => None,
    }
}

/// One line of `/proc/self/mountinfo` as far as locks care.
#[derive(Debug, PartialEq, Eq)]
struct Mount {
    point: PathBuf,
    fstype: String,
    options: String,
}

/// Decodes the octal escapes (`\040` for a space) mountinfo uses in paths.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|l| {
            // "36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - nfs4 srv:/x rw,vers=4.2,local_lock=none"
            let (left, right) = l.split_once(" - ")?;
            let point = left.split(' ').nth(4)?;
            let mut r = right.split(' ');
            let fstype = r.next()?.to_string();
            let options = r.nth(1).unwrap_or("").to_string();
            Some(Mount {
                point: PathBuf::from(unescape(point)),
                fstype,
                options,
            })
        })
        .collect()
}

/// The warning for the mount holding `path` (the longest mount point above it, the last one
/// mounted winning), when it is NFS with node-local `flock` locks.
fn local_lock_warning(mounts: &[Mount], path: &Path) -> Option<String> {
    let m = mounts
        .iter()
        .enumerate()
        .filter(|(_, m)| path.starts_with(&m.point))
        .max_by_key(|(i, m)| (m.point.components().count(), *i))?
        .1;
    if !m.fstype.starts_with("nfs") {
        return None;
    }
    let local = m
        .options
        .split(',')
        .find_map(|o| o.strip_prefix("local_lock="))?;
    matches!(local, "flock" | "all").then(|| {
        format!(
            "{} is on NFS mounted with local_lock={local} ({}): flock locks are local to each node, so nodes sharing it can run two flushers on one repository; mount with local_lock=none",
            path.display(),
            m.point.display()
        )
    })
}

/// `local_lock_warning` for `path` from this process's mount table.
pub fn nfs_local_lock(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    local_lock_warning(&parse_mountinfo(&text), &path)
}

/// Every warning about locks in `dir`: node-local NFS locks, or locks that do not work.
pub fn warnings(dir: &Path) -> Vec<String> {
    nfs_local_lock(dir)
        .into_iter()
        .chain(broken_in(dir))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
40 22 0:50 / /srv/git rw,relatime shared:20 - nfs4 nas:/git rw,vers=4.2,local_lock=none,addr=10.0.0.2
41 22 0:51 / /srv/old rw,relatime shared:21 - nfs nas:/old rw,vers=3,local_lock=flock
42 22 0:52 / /srv/all rw,relatime shared:22 - nfs nas:/all rw,vers=3,local_lock=all
43 22 0:53 / /srv/with\\040space rw - nfs nas:/s rw,local_lock=posix
44 40 0:54 / /srv/git/sub rw - nfs4 nas:/sub rw,local_lock=flock
";

    #[test]
    fn local_lock_is_found_for_the_mount_holding_the_path() {
        let mounts = parse_mountinfo(INFO);
        assert_eq!(mounts.len(), 6);
        assert_eq!(mounts[4].point, PathBuf::from("/srv/with space"));
        let table: &[(&str, Option<&str>)] = &[
            ("/home/git", None),
            ("/srv/git/repos", None),
            ("/srv/old/repos", Some("local_lock=flock")),
            ("/srv/all", Some("local_lock=all")),
            ("/srv/with space/x", None),
            ("/srv/git/sub/a.git", Some("local_lock=flock")),
            ("/srv/gitx", None),
        ];
        for (path, want) in table {
            let got = local_lock_warning(&mounts, Path::new(path));
            match want {
                None => assert_eq!(got, None, "{path}"),
                Some(w) => assert!(
                    got.as_deref().is_some_and(|g| g.contains(w)),
                    "{path}: {got:?}"
                ),
            }
        }
    }

    #[test]
    fn a_lock_held_elsewhere_is_seen_and_a_probe_never_turns_the_holder_away() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alive");
        assert!(!held(&path), "missing file: nobody holds it");
        assert!(!path.exists(), "the probe creates nothing");
        let holder = File::create(&path).unwrap();
        assert!(!held(&path));
        // A probe's shared lock in place: the holder waits for it instead of failing.
        let probe = File::open(&path).unwrap();
        FileExt::try_lock_shared(&probe).unwrap();
        let t = std::thread::spawn(move || {
            hold(&holder).unwrap();
            holder
        });
        std::thread::sleep(std::time::Duration::from_millis(50));
        FileExt::unlock(&probe).unwrap();
        let holder = t.join().unwrap();
        assert!(held(&path));
        assert!(held(&path), "probes do not exclude each other");
        drop(holder);
        assert!(!held(&path));
    }

    #[test]
    fn working_locks_give_no_warning() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(broken_in(dir.path()), None);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
