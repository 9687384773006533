//! What the mirror held after our last sync (`pushmirror/state/<mirror>.listing`): a guess that
//! lets the next sync push at once, while `git ls-remote` runs alongside it.
//!
//! The guess is only ever a hint. Every update and deletion planned from it is leased on the
//! guessed value (`--force-with-lease=<ref>:<guess>`), so a wrong guess costs a refused ref and
//! nothing else; and the sync still lists the mirror and plans again from that real listing
//! (with what the first push did applied), so every sync stays a full comparison that repairs a
//! hand-edited mirror. Only the flusher (under its lock) reads and writes the file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::git::RefResult;
use super::plan::Plan;

const HEADER: &str = "# git-pushmirror listing v1 ";

pub fn path(state_dir: &Path, mirror: &str) -> PathBuf {
    crate::state::listing_path(state_dir, mirror)
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
    // Collected first: a sorted list becomes a map in one pass.
    let mut refs = Vec::with_capacity(text.len() / 80);
    for l in lines {
        let (oid, name) = l.split_once(' ')?;
        // A full object id, as `git push` takes it for a lease: anything shorter is looked up
        // as an abbreviation and, when nothing matches, fails the whole push.
        if !matches!(oid.len(), 40 | 64)
            || !oid.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            || !name.starts_with("refs/")
            || name.contains(' ')
        {
            return None;
        }
        refs.push((name.to_string(), oid.to_string()));
    }
    Some(refs.into_iter().collect())
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
    crate::state::remove_listing(state_dir, mirror)
}

/// `remote` with what a push did applied: every ref it updated (`updates`: name → new id) or
/// deleted (`deletions`) and that `results` reports as done. A ref without a result counts as
/// done only when the whole push succeeded (`all_ok`), as the sync's report counts it.
pub fn apply(
    remote: &mut BTreeMap<String, String>,
    pushed: &Plan,
    results: &BTreeMap<String, RefResult>,
    all_ok: bool,
) {
    let done = |name: &str| results.get(name).map_or(all_ok, RefResult::ok);
    for p in &pushed.pushes {
        if done(&p.name) {
            remote.insert(p.name.clone(), p.new.clone());
        }
    }
    for d in &pushed.deletions {
        if done(&d.name) {
            remote.remove(&d.name);
        }
    }
}

/// The mirror's refs as the `git push` saw them: its ref advertisement, read back from the
/// push's `GIT_TRACE_PACKET` file (`... packet:         push< <oid> <ref>[\0caps]`, ended by
/// `0000`). The push connects to the mirror anyway; reading what it was told there saves a
/// second connection and a second listing of every ref (`git ls-remote`), and is as full a
/// comparison. Lines written by the other side of a local push (`receive-pack>`), and anything
/// after the first advertisement, are not it. None when no complete advertisement is found (the
/// caller then lists the mirror with `git ls-remote`).
pub fn parse_advertisement(trace: &str) -> Option<BTreeMap<String, String>> {
    // Collected first: the advertisement is sorted, and a sorted list becomes a map in one pass.
    let mut refs = Vec::new();
    let mut started = false;
    for line in trace.lines() {
        let Some((_, pkt)) = line.split_once("packet: ") else {
            continue;
        };
        // "%12s%c ": the speaker, right-aligned, then '<' (read) or '>' (written).
        let Some(i) = pkt.find(['<', '>']) else {
            continue;
        };
        let who = pkt[..i].trim();
        let Some(payload) = pkt[i..].strip_prefix("< ") else {
            continue;
        };
        if matches!(who, "receive-pack" | "upload-pack" | "sideband") {
            continue;
        }
        if payload == "0000" {
            if started {
                return Some(refs.into_iter().collect());
            }
            // remote-curl's "# service=git-receive-pack" block ends so, before the refs.
            continue;
        }
        let payload = payload.split("\\0").next().unwrap_or(payload);
        let Some((oid, name)) = payload.split_once(' ') else {
            if started {
                return None;
            }
            continue;
        };
        if oid.len() < 40 || !oid.bytes().all(|b| b.is_ascii_hexdigit()) {
            if started {
                return None;
            }
            continue;
        }
        started = true;
        // ".have" (an alternate's tips) and "capabilities^{}" (an empty repository) are no refs.
        if name.starts_with("refs/") {
            refs.push((unescape(name)?, oid.to_string()));
        }
    }
    None
}

/// Undoes packet_trace's escaping: a byte outside printable ASCII is `\<octal>` of a char,
/// with no separator before the next character. A ref name holds no control character and no
/// backslash of its own, so every escape is of a byte >= 0x80: `\37777777ooo` where char is
/// signed (sign-extended, as on x86), `\ooo` (200..377) where it is unsigned. The digits are
/// read by that width, never greedily: a digit after an escape (`Ð1` is
/// `\37777777703\377777776201`) is the name's own. Anything else is no name.
fn unescape(s: &str) -> Option<String> {
    if !s.contains('\\') {
        return Some(s.to_string());
    }
    let b = s.as_bytes();
    let mut bytes = Vec::with_capacity(b.len());
    let mut i = 0;
    let octal = |d: &[u8]| -> Option<u32> {
        d.iter().try_fold(0u32, |v, &c| {
            (b'0'..=b'7')
                .contains(&c)
                .then(|| v * 8 + u32::from(c - b'0'))
        })
    };
    while i < b.len() {
        if b[i] != b'\\' {
            bytes.push(b[i]);
            i += 1;
            continue;
        }
        let rest = &b[i + 1..];
        // (width, where its last three digits start, their range): 0x80..=0xff either way.
        let (width, skip, range) = if rest.starts_with(b"37777777") && rest.len() >= 11 {
            (11, 8, 0o600..=0o777)
        } else {
            (3, 0, 0o200..=0o377)
        };
        let v = octal(rest.get(skip..width)?)?;
        if !range.contains(&v) {
            return None;
        }
        bytes.push((v & 0xff) as u8);
        i += 1 + width;
    }
    String::from_utf8(bytes).ok()
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
            let push = |name: &str, new: &str| crate::mirror::plan::RefPush {
                name: name.into(),
                new: new.into(),
                old: None,
            };
            let pushed = Plan {
                pushes: vec![push(MAIN, "b"), push(TAG, "t")],
                deletions: vec![crate::mirror::plan::RefDelete {
                    name: TOPIC.into(),
                    old: "c".into(),
                }],
                ..Plan::default()
            };
            let results: BTreeMap<String, RefResult> = c.results.into_iter().collect();
            apply(&mut remote, &pushed, &results, c.all_ok);
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
        for bad in [
            "not a line".to_string(),
            format!("{} refs/heads/main", "1".repeat(39)),
            format!("{} refs/heads/main", "A".repeat(40)),
            " refs/heads/main".to_string(),
            format!("{} heads/main", "1".repeat(40)),
        ] {
            std::fs::write(path(&dir, "m"), format!("{HEADER}https://h/x.git\n{bad}\n")).unwrap();
            assert_eq!(load(&dir, "m", "https://h/x.git"), None, "{bad}");
        }
        let sha256 = map(&[("refs/heads/main", &"3".repeat(64))]);
        save(&dir, "m", "https://h/x.git", &sha256).unwrap();
        assert_eq!(load(&dir, "m", "https://h/x.git"), Some(sha256));
        save(&dir, "m", "https://h/x.git", &BTreeMap::new()).unwrap();
        assert_eq!(load(&dir, "m", "https://h/x.git"), Some(BTreeMap::new()));
        remove(&dir, "m");
        assert_eq!(load(&dir, "m", "https://h/x.git"), None);
    }

    #[test]
    fn reads_the_advertisement_the_push_got() {
        let a = "230b85a38f5f43950cf24b8532afcb15c01aa744";
        let b = "00782a259d848dbbee4629625ae4b24a8543a6f2";
        let local = format!(
            "01:08:42.312350 pkt-line.c:86           packet: receive-pack> {a} refs/heads/master\\0report-status delete-refs\n\
             01:08:42.312409 pkt-line.c:86           packet: receive-pack> {a} refs/heads/\\37777777703\\37777777651-x\n\
             01:08:42.312430 pkt-line.c:86           packet: receive-pack> 0000\n\
             01:08:42.312462 pkt-line.c:86           packet:         push< {a} refs/heads/master\\0report-status delete-refs\n\
             01:08:42.312515 pkt-line.c:86           packet:         push< {a} refs/heads/\\37777777703\\37777777651-x\n\
             01:08:42.312515 pkt-line.c:86           packet:         push< {a} .have\n\
             01:08:42.312519 pkt-line.c:86           packet:         push< {b} refs/tags/t1\n\
             01:08:42.312522 pkt-line.c:86           packet:         push< 0000\n\
             01:08:42.312732 pkt-line.c:86           packet:         push> {a} {b} refs/heads/master\\0 report-status-v2\n\
             01:08:42.313062 pkt-line.c:86           packet: receive-pack< {a} {b} refs/heads/master\n\
             01:08:42.326643 pkt-line.c:86           packet:         push< unpack ok\n\
             01:08:42.326646 pkt-line.c:86           packet:         push< ok refs/heads/master\n\
             01:08:42.326649 pkt-line.c:86           packet:         push< 0000\n"
        );
        let want = map(&[
            ("refs/heads/master", a),
            ("refs/heads/é-x", a),
            ("refs/tags/t1", b),
        ]);
        assert_eq!(parse_advertisement(&local), Some(want.clone()));
        // Over HTTPS the helper reads a service line and a flush first.
        let http = format!(
            "t packet:          git< # service=git-receive-pack\n\
             t packet:          git< 0000\n\
             t packet:          git< {a} refs/heads/master\\0report-status\n\
             t packet:          git< {a} refs/heads/\\303\\251-x\n\
             t packet:          git< {b} refs/tags/t1\n\
             t packet:          git< 0000\n"
        );
        assert_eq!(parse_advertisement(&http), Some(want));
        // A digit right after an escaped byte is the name's own (git 2.47 on x86: signed char).
        let digit = format!(
            "t packet:         push< {a} refs/heads/\\37777777703\\377777776201\\0report-status\n\
             t packet:         push< {b} refs/heads/\\303\\2207\n\
             t packet:         push< 0000\n"
        );
        assert_eq!(
            parse_advertisement(&digit),
            Some(map(&[("refs/heads/Ð1", a), ("refs/heads/Ð7", b)]))
        );
        // An empty mirror advertises only its capabilities.
        let zero = "0".repeat(40);
        let empty = format!(
            "t packet:         push< {zero} capabilities^{{}}\\0report-status\nt packet:         push< 0000\n"
        );
        assert_eq!(parse_advertisement(&empty), Some(BTreeMap::new()));
        // No complete advertisement: no listing.
        for bad in [
            String::new(),
            format!("t packet:         push< {a} refs/heads/master\n"),
            "t packet:         push< 0000\n".to_string(),
            format!("t packet:         push< {a} refs/heads/master\nt packet:         push< ERR access denied\n"),
            format!("t packet:         push< {a} refs/heads/bad\\\nt packet:         push< 0000\n"),
        ] {
            assert_eq!(parse_advertisement(&bad), None, "{bad:?}");
        }
    }
}
