//! The pack size a `git push --progress` reports, and keeping its progress meters out of what
//! we store of a git child's stderr.
//!
//! `git push --porcelain` says nothing about bytes; with `--progress` (and `LC_ALL=C`, so the
//! words are git's English ones) pack-objects ends its meter with
//! `Writing objects: 100% (3/3), 1.00 MiB | 2.00 MiB/s, done.` on the pushing side, over every
//! transport (a local mirror's receive-pack speaks through `remote: ` lines, which are not
//! counted). The size is git's rounded display: to 1/100 of its unit (under 1% off), exact
//! below 1 KiB. Measuring the pack a second time would double the work of every push.

use std::io::Read;

/// Bytes of the pack one push sent: the size on its (first) final `Writing objects: ..., done.` line,
/// or 0 when it sent none (nothing to send, or it failed before the pack was complete).
pub fn pack_bytes(stderr: &str) -> u64 {
    stderr
        .split(['\n', '\r'])
        .filter_map(|l| l.strip_prefix("Writing objects: "))
        .filter(|l| l.ends_with(", done."))
        .filter_map(size_of_meter)
        // The first: pack-objects ends its meter before the mirror's report is read, and a
        // mirror's error text shown after it (not prefixed with `remote: `) may imitate it.
        .next()
        .unwrap_or(0)
}

/// `100% (3/3), 1.00 MiB | 2.00 MiB/s, done.` -> 1 MiB.
fn size_of_meter(meter: &str) -> Option<u64> {
    let (_, after) = meter.split_once("), ")?;
    let size = after.split([',', '|']).next()?.trim();
    let (num, unit) = size.split_once(' ')?;
    let shift = match unit {
        "byte" | "bytes" => 0,
        "KiB" => 10,
        "MiB" => 20,
        "GiB" => 30,
        _ => return None,
    };
    // "%u.%2.2u": an integer part and hundredths of the unit.
    let (int, frac) = match num.split_once('.') {
        Some((i, f)) if f.len() == 2 => (i.parse::<u64>().ok()?, f.parse::<u64>().ok()?),
        None => (num.parse::<u64>().ok()?, 0),
        _ => return None,
    };
    Some((int << shift) + ((frac << shift) / 100))
}

/// A progress meter line (git's `Title: 45% (9/20)` / `Title: 1234` / `..., done.`, and
/// pack-objects' `Total 3 (delta 0), ...` summary), with or without a `remote: ` prefix.
pub fn is_meter(line: &str) -> bool {
    let l = line.trim();
    let l = l.strip_prefix("remote:").map_or(l, str::trim_start);
    if l.starts_with("Total ") && l.contains("(delta ") {
        return true;
    }
    let Some((title, rest)) = l.split_once(": ") else {
        return false;
    };
    !title.is_empty()
        && title.chars().all(|c| c.is_ascii_alphabetic() || c == ' ')
        && rest.trim_start().starts_with(|c: char| c.is_ascii_digit())
        && (rest.contains("% (") || rest.ends_with(", done.") || rest.trim().parse::<u64>().is_ok())
}

/// Reads a child's stderr to its end (a pipe closed early would fail the child's next write
/// with EPIPE, and a push has a lot of progress to say), keeping at most `cap` bytes of it.
/// Updates of a progress meter (segments ending in a lone `\r`, the next update overwriting
/// them) are not kept: only the meter's final line is.
pub fn read_stderr(mut pipe: impl Read, cap: usize) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut segment: Vec<u8> = Vec::new();
    let mut cr = false;
    let mut buf = [0u8; 8192];
    let keep = |kept: &mut Vec<u8>, seg: &[u8]| {
        let room = cap.saturating_sub(kept.len());
        kept.extend_from_slice(&seg[..seg.len().min(room)]);
    };
    loop {
        let n = match pipe.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        for &b in &buf[..n] {
            if cr {
                cr = false;
                if b == b'\n' {
                    // "\r\n" (ssh says this): an ordinary line end.
                    segment.extend_from_slice(b"\r\n");
                    keep(&mut kept, &segment);
                    segment.clear();
                    continue;
                }
                // A lone "\r": the segment is overwritten on a terminal. Only a meter's update
                // is dropped; anything else that ends so (a hook's CRLF output relayed as
                // "remote: msg\r") is kept.
                segment.push(b'\r');
                if !is_meter(&String::from_utf8_lossy(&segment)) {
                    keep(&mut kept, &segment);
                }
                segment.clear();
            }
            match b {
                b'\r' => cr = true,
                b'\n' => {
                    segment.push(b'\n');
                    keep(&mut kept, &segment);
                    segment.clear();
                }
                _ => {
                    // A line longer than the cap is cut; the rest of it is read and dropped.
                    if segment.len() < cap {
                        segment.push(b);
                    }
                }
            }
        }
    }
    if cr {
        segment.push(b'\r');
    }
    keep(&mut kept, &segment);
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_size_of_the_pack() {
        let table: &[(&str, u64)] = &[
            ("Writing objects: 100% (3/3), 230 bytes | 230.00 KiB/s, done.\n", 230),
            ("Writing objects: 100% (1/1), 1 byte | 1.00 KiB/s, done.\n", 1),
            ("Writing objects: 100% (3/3), 1.00 MiB | 2.00 MiB/s, done.\n", 1 << 20),
            ("Writing objects: 100% (3/3), 1.50 KiB | 1.50 MiB/s, done.\n", 1536),
            ("Writing objects: 100% (9/9), 2.25 GiB | 80.00 MiB/s, done.\n", 9 << 28),
            // No throughput after the size.
            ("Writing objects: 100% (3/3), 12.00 KiB, done.\n", 12 << 10),
            // Only the final line counts; updates before it are overwritten.
            (
                "Writing objects:  50% (1/2)\rWriting objects: 100% (2/2), 3.10 KiB | 1 KiB/s, done.\nTotal 2 (delta 0), reused 0 (delta 0), pack-reused 0\n",
                3174,
            ),
            // The receiving side's meters are not what we sent.
            ("remote: Writing objects: 100% (3/3), 9.00 MiB, done.\n", 0),
            // No pack, or one that did not finish.
            ("Everything up-to-date\n", 0),
            ("Writing objects:  45% (9/20), 1.00 MiB | 1.00 MiB/s\rfatal: the remote end hung up unexpectedly\n", 0),
            ("Writing objects: 100% (3/3), 1.00 parsecs | 2.00 MiB/s, done.\n", 0),
            // A mirror's error text after the real meter does not replace it.
            (
                "Writing objects: 100% (3/3), 230 bytes | 1 KiB/s, done.\nfatal: remote error: x\nWriting objects: 100% (3/3), 1000.00 GiB, done.\n",
                230,
            ),
            ("", 0),
        ];
        for (stderr, want) in table {
            assert_eq!(pack_bytes(stderr), *want, "{stderr:?}");
        }
    }

    #[test]
    fn tells_meters_from_messages() {
        for meter in [
            "Enumerating objects: 5, done.",
            "Enumerating objects: 4000",
            "Counting objects: 100% (5/5), done.",
            "Delta compression using up to 2 threads",
            "Compressing objects:  40% (2/5)",
            "Writing objects: 100% (3/3), 230 bytes | 230.00 KiB/s, done.",
            "Total 3 (delta 0), reused 0 (delta 0), pack-reused 0 (from 0)",
            "remote: Resolving deltas: 100% (2/2), done.",
            "remote: Resolving deltas:  50% (1/2)        ",
        ] {
            if meter.starts_with("Delta compression") {
                assert!(!is_meter(meter), "{meter}");
            } else {
                assert!(is_meter(meter), "{meter}");
            }
        }
        for message in [
            "error: failed to push some refs to '/tmp/m.git'",
            "remote: error: hook declined to update refs/heads/x",
            "fatal: unable to access 'https://127.0.0.1:1/': Failed to connect",
            "remote: Note: 5 refs updated today",
            "To /tmp/m.git",
        ] {
            assert!(!is_meter(message), "{message}");
        }
    }

    #[test]
    fn stderr_keeps_lines_and_final_meters_drops_updates() {
        let raw = "Enumerating objects: 1\rEnumerating objects: 5, done.\n\
                   Writing objects:  50% (1/2)\rWriting objects: 100% (2/2), 230 bytes | 230.00 KiB/s, done.\n\
                   remote: Resolving deltas:  50% (1/2)        \rremote: Resolving deltas: 100% (2/2), done.        \n\
                   remote: frozen by policy        \rremote: \n\
                   Host key verification failed.\r\n\
                   fatal: the end\n";
        let got = String::from_utf8(read_stderr(raw.as_bytes(), 1 << 20)).unwrap();
        assert_eq!(
            got,
            "Enumerating objects: 5, done.\n\
             Writing objects: 100% (2/2), 230 bytes | 230.00 KiB/s, done.\n\
             remote: Resolving deltas: 100% (2/2), done.        \n\
             remote: frozen by policy        \rremote: \n\
             Host key verification failed.\r\n\
             fatal: the end\n"
        );
        assert_eq!(pack_bytes(&got), 230);
        // The cap bounds what is kept, not what is read.
        let long = "x".repeat(100_000) + "\n";
        let mut reader = long.as_bytes();
        assert_eq!(read_stderr(&mut reader, 1000).len(), 1000);
        assert!(reader.is_empty());
        // A trailing lone "\r" at the end is kept with its segment when it is no meter.
        assert_eq!(read_stderr("abc\r".as_bytes(), 100), b"abc\r");
    }
}
