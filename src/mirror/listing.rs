//! What the mirror held after our last sync (`pushmirror/state/<mirror>.listing`): a guess that
//! lets the next sync push at once, while `git ls-remote` runs alongside it.
//!
//! The guess is only ever a hint. Every update and deletion planned from it is leased on the
//! guessed value (`--force-with-lease=<ref>:<guess>`), so a wrong guess costs a refused ref and
//! nothing else; and the sync still lists the mirror and plans again from that real listing
//! (with what the first push did applied), so every sync stays a full comparison that repairs a
//! hand-edited mirror. Only the flusher (under its lock) reads and writes the file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::git::RefResult;

const HEADER: &str = "# git-pushmirror listing v1 ";

pub fn path(state_dir: &Path, mirror: &str) -> PathBuf {
    state_dir.join(format!("{mirror}.listing"))
}

/// The mirror's refs as the last sync left them, if they were recorded for this `url` (the
/// mirror's URL without credentials). Anything unreadable is no guess.
pub fn load(state_dir: &Path, mirror: &str, url: &str) -> Option<BTreeMap<String, String>> {
    crate::paths::refuse_symlink(state_dir).ok()?;
    let text = std::fs::read_to_string(path(state_dir, mirror)).ok()?;
    let mut lines = text.lines();
    if lines.next()? != format!("{HEADER}{url}") {
        return None;
    }
    let mut refs = BTreeMap::new();
    for l in lines {
        let (oid, name) = l.split_once(' ')?;
        if !oid.bytes().all(|b| b.is_ascii_hexdigit()) || !name.starts_with("refs/") {
            return None;
        }
        refs.insert(name.to_string(), oid.to_string());
    }
    Some(refs)
}

/// Records `refs` as the mirror's state (atomically, mode as the state files).
pub fn save(
    state_dir: &Path,
    mirror: &str,
    url: &str,
    refs: &BTreeMap<String, String>,
) -> std::io::Result<()> {
    let mut text = String::with_capacity(refs.len() * 80 + 128);
    text.push_str(HEADER);
    text.push_str(url);
    text.push('\n');
    for (name, oid) in refs {
        text.push_str(oid);
        text.push(' ');
        text.push_str(name);
        text.push('\n');
    }
    crate::paths::ensure_dir(state_dir)?;
    let mode = crate::paths::file_mode_in(state_dir);
    // Renamed into place, but not fsynced: a guess lost or cut short by a crash is no guess
    // (or a wrong one, which the leases refuse), and two fsyncs of a 10,000-ref file would
    // cost a sync more than it saves.
    let p = path(state_dir, mirror);
    let tmp = state_dir.join(format!(".{mirror}.listing.tmp.{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        std::fs::rename(&tmp, &p)
    };
    let r = write();
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

/// Forgets the guess (a missing file is fine).
pub fn remove(state_dir: &Path, mirror: &str) {
    if crate::paths::refuse_symlink(state_dir).is_ok() {
        let _ = std::fs::remove_file(path(state_dir, mirror));
    }
}

/// `remote` with what a push did applied: every ref it updated (`updates`: name → new id) or
/// deleted (`deletions`) and that `results` reports as done. A ref without a result counts as
/// done only when the whole push succeeded (`all_ok`), as the sync's report counts it.
pub fn apply(
    remote: &mut BTreeMap<String, String>,
    updates: &BTreeMap<String, String>,
    deletions: &BTreeSet<String>,
    results: &BTreeMap<String, RefResult>,
    all_ok: bool,
) {
    let done = |name: &str| results.get(name).map_or(all_ok, RefResult::ok);
    for (name, new) in updates {
        if done(name) {
            remote.insert(name.clone(), new.clone());
        }
    }
    for name in deletions {
        if done(name) {
            remote.remove(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn res(flag: char, to: &str) -> (String, RefResult) {
        (
            to.to_string(),
            RefResult {
                flag,
                to: to.to_string(),
                summary: String::new(),
            },
        )
    }

    #[test]
    fn apply_takes_only_what_was_done() {
        struct Case {
            what: &'static str,
            results: Vec<(String, RefResult)>,
            all_ok: bool,
            want: &'static [(&'static str, &'static str)],
        }
        const MAIN: &str = "refs/heads/main";
        const TOPIC: &str = "refs/heads/TOPIC";
        const TAG: &str = "refs/tags/v1";
        let cases = [
            Case {
                what: "everything reported done",
                results: vec![res(' ', MAIN), res('*', TAG), res('-', TOPIC)],
                all_ok: true,
                want: &[(MAIN, "b"), ("refs/heads/x", "x"), (TAG, "t")],
            },
            Case {
                what: "a refused update and a refused deletion leave the listed values",
                results: vec![res('!', MAIN), res('*', TAG), res('!', TOPIC)],
                all_ok: false,
                want: &[(MAIN, "a"), ("refs/heads/x", "x"), (TAG, "t"), (TOPIC, "c")],
            },
            Case {
                what: "no per-ref result: done only when the push succeeded",
                results: vec![],
                all_ok: true,
                want: &[(MAIN, "b"), ("refs/heads/x", "x"), (TAG, "t")],
            },
            Case {
                what: "no per-ref result from a failed push: nothing done",
                results: vec![],
                all_ok: false,
                want: &[(MAIN, "a"), ("refs/heads/x", "x"), (TOPIC, "c")],
            },
            Case {
                what: "up to date (=) counts as done",
                results: vec![res('=', MAIN), res('*', TAG), res('-', TOPIC)],
                all_ok: true,
                want: &[(MAIN, "b"), ("refs/heads/x", "x"), (TAG, "t")],
            },
        ];
        for c in cases {
            let mut remote = map(&[(MAIN, "a"), (TOPIC, "c"), ("refs/heads/x", "x")]);
            let updates = map(&[(MAIN, "b"), (TAG, "t")]);
            let deletions: BTreeSet<String> = [TOPIC.to_string()].into();
            let results: BTreeMap<String, RefResult> = c.results.into_iter().collect();
            apply(&mut remote, &updates, &deletions, &results, c.all_ok);
            assert_eq!(remote, map(c.want), "{}", c.what);
        }
    }

    #[test]
    fn saved_listing_loads_for_its_url_only() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("state");
        let refs = map(&[
            (
                "refs/heads/main",
                "1111111111111111111111111111111111111111",
            ),
            (
                "refs/tags/ünïcode",
                "2222222222222222222222222222222222222222",
            ),
        ]);
        save(&dir, "m", "https://h/x.git", &refs).unwrap();
        assert_eq!(load(&dir, "m", "https://h/x.git"), Some(refs.clone()));
        assert_eq!(load(&dir, "m", "https://h/y.git"), None);
        assert_eq!(load(&dir, "other", "https://h/x.git"), None);
        // Damaged: no guess at all.
        std::fs::write(
            path(&dir, "m"),
            format!("{HEADER}https://h/x.git\nnot a line\n"),
        )
        .unwrap();
        assert_eq!(load(&dir, "m", "https://h/x.git"), None);
        save(&dir, "m", "https://h/x.git", &BTreeMap::new()).unwrap();
        assert_eq!(load(&dir, "m", "https://h/x.git"), Some(BTreeMap::new()));
        remove(&dir, "m");
        assert_eq!(load(&dir, "m", "https://h/x.git"), None);
    }
}
