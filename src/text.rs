//! Text shown to people and to monitoring: error lines that stay one line, and paths (which are
//! bytes on Unix) written so that no two repositories look the same.

use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// `bytes` as text that names them exactly: printable UTF-8 as it is, a backslash doubled, and
/// every other byte (control characters, bytes that are not UTF-8) as `\xNN`. Two different
/// byte strings never give the same text.
pub fn escape_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                c if c.is_control() => {
                    for b in c.encode_utf8(&mut [0; 4]).bytes() {
                        let _ = write!(out, "\\x{b:02x}");
                    }
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

/// A path for a JSON document or a report: the path itself when it is UTF-8, else its
/// `escape_bytes` form (JSON strings cannot hold other bytes; `not_utf8` tells which).
pub fn path_text(p: &Path) -> String {
    match p.to_str() {
        Some(s) => s.to_string(),
        None => escape_bytes(p.as_os_str().as_bytes()),
    }
}

/// Why a repository's path is shown escaped, or None when it is UTF-8.
pub fn not_utf8(p: &Path) -> Option<String> {
    p.to_str().is_none().then(|| {
        format!(
            "repository path is not UTF-8 (shown with \\xNN escapes): {}",
            escape_bytes(p.as_os_str().as_bytes())
        )
    })
}

/// A message as one line: line breaks and other control characters are written as escapes
/// (`\n`, `\r`, `\t`, `\xNN`), so a name or a URL given on the command line, or a file's
/// content, can never start a line of its own in a terminal, a log or `remote:` output.
pub fn one_line(msg: &str) -> String {
    if !msg.chars().any(char::is_control) {
        return msg.to_string();
    }
    let mut out = String::with_capacity(msg.len() + 8);
    for c in msg.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                for b in c.encode_utf8(&mut [0; 4]).bytes() {
                    let _ = write!(out, "\\x{b:02x}");
                }
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_bytes_name_each_path_exactly() {
        for (bytes, want) in [
            (&b"srv/a.git"[..], "srv/a.git"),
            (b"caf\xc3\xa9.git", "café.git"),
            (b"\xff.git", "\\xff.git"),
            (b"\xfe.git", "\\xfe.git"),
            (b"a\\xff.git", "a\\\\xff.git"),
            (b"a\nb", "a\\x0ab"),
            (b"\xc2\x85", "\\xc2\\x85"),
        ] {
            assert_eq!(escape_bytes(bytes), want, "{bytes:?}");
        }
        // The cases that collapse into one `\u{FFFD}` under a lossy conversion stay apart.
        let texts: std::collections::HashSet<String> =
            [&b"\xff"[..], b"\xfe", b"\\xff", b"\xef\xbf\xbd"]
                .iter()
                .map(|b| escape_bytes(b))
                .collect();
        assert_eq!(texts.len(), 4);
    }

    #[test]
    fn paths_for_json() {
        use std::os::unix::ffi::OsStrExt;
        let bad = Path::new(std::ffi::OsStr::from_bytes(b"/srv/\xff.git"));
        assert_eq!(path_text(bad), "/srv/\\xff.git");
        assert!(not_utf8(bad).is_some_and(|m| m.ends_with("/srv/\\xff.git")));
        assert_eq!(path_text(Path::new("/srv/a\\b.git")), "/srv/a\\b.git");
        assert_eq!(not_utf8(Path::new("/srv/a.git")), None);
    }

    #[test]
    fn messages_become_one_line() {
        for (msg, want) in [
            ("plain", "plain"),
            ("mirror name `a\nb` bad", "mirror name `a\\nb` bad"),
            ("a\r\n\tb\x1b[31m", "a\\r\\n\\tb\\x1b[31m"),
            ("caf\u{e9} \\ ok", "caf\u{e9} \\ ok"),
        ] {
            assert_eq!(one_line(msg), want);
        }
    }
}
