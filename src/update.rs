//! One ref update as post-receive reads it, and the validation shared by the hook and the spool.

use std::fmt;
use std::path::Path;

/// `<old-oid> SP <new-oid> SP <refname>`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefUpdate {
    pub old: String,
    pub new: String,
    pub refname: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UpdateError {
    #[error("expected `<old-oid> <new-oid> <refname>`, got {0} field(s)")]
    Fields(usize),
    #[error("object id `{0}` is not {1} hex digits")]
    BadOid(String, usize),
    #[error("ref name `{0}` is not valid (git check-ref-format)")]
    BadRef(String),
    #[error("line is not valid UTF-8")]
    NotUtf8,
}

/// The object format of a repository, which fixes the length of every object id in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectFormat {
    Sha1,
    Sha256,
}

impl ObjectFormat {
    pub fn hex_len(self) -> usize {
        match self {
            ObjectFormat::Sha1 => 40,
            ObjectFormat::Sha256 => 64,
        }
    }
}

/// Reads `extensions.objectFormat` with a plain scan of the repository's config: cheap, and keeps
/// gix off the hook's hot path.
pub fn object_format(git_dir: &Path) -> ObjectFormat {
    let Ok(text) = std::fs::read_to_string(git_dir.join("config")) else {
        return ObjectFormat::Sha1;
    };
    object_format_in(&text)
}

/// `object_format` from the text of the repository's `config` (the hook reads it once).
pub fn object_format_in(text: &str) -> ObjectFormat {
    let mut in_ext = false;
    for line in text.lines() {
        let l = line.trim().to_ascii_lowercase();
        if l.starts_with('[') {
            in_ext = l.starts_with("[extensions]");
        } else if in_ext {
            if let Some((k, v)) = l.split_once('=') {
                if k.trim() == "objectformat" && v.trim() == "sha256" {
                    return ObjectFormat::Sha256;
                }
            }
        }
    }
    ObjectFormat::Sha1
}

impl fmt::Display for ObjectFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ObjectFormat::Sha1 => "sha1",
            ObjectFormat::Sha256 => "sha256",
        })
    }
}

pub fn is_null(oid: &str) -> bool {
    !oid.is_empty() && oid.bytes().all(|b| b == b'0')
}

pub fn is_hex_oid(oid: &str, len: usize) -> bool {
    oid.len() == len
        && oid
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Parses one stdin line (without its line terminator; a trailing CR is tolerated because some
/// wrappers on other systems add it).
pub fn parse_line(line: &[u8], format: ObjectFormat) -> Result<RefUpdate, UpdateError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let line = std::str::from_utf8(line).map_err(|_| UpdateError::NotUtf8)?;
    let fields: Vec<&str> = line.split(' ').collect();
    if fields.len() != 3 {
        return Err(UpdateError::Fields(fields.len()));
    }
    let len = format.hex_len();
    for oid in &fields[..2] {
        if !is_hex_oid(oid, len) {
            return Err(UpdateError::BadOid(truncate(oid, 80), len));
        }
    }
    if !check_ref_format(fields[2]) {
        return Err(UpdateError::BadRef(truncate(fields[2], 200)));
    }
    Ok(RefUpdate {
        old: fields[0].to_string(),
        new: fields[1].to_string(),
        refname: fields[2].to_string(),
    })
}

/// Keeps hostile input from flooding the pusher's terminal through an error message.
fn truncate(s: &str, max: usize) -> String {
    let clean: String = s
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if clean.chars().count() <= max {
        clean
    } else {
        let mut t: String = clean.chars().take(max).collect();
        t.push('…');
        t
    }
}

/// The rules of `git check-ref-format` for a full ref name (it must live under `refs/`).
pub fn check_ref_format(name: &str) -> bool {
    if !name.starts_with("refs/") || name.len() > 4096 {
        return false;
    }
    if name.ends_with('/') || name.ends_with('.') || name.contains("//") {
        return false;
    }
    if name.contains("..") || name.contains("@{") || name == "@" {
        return false;
    }
    if name.bytes().any(|b| {
        b < 0x20 || b == 0x7f || matches!(b, b' ' | b'~' | b'^' | b':' | b'?' | b'*' | b'[' | b'\\')
    }) {
        return false;
    }
    name.split('/')
        .all(|c| !c.is_empty() && !c.starts_with('.') && !c.ends_with(".lock"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "1111111111111111111111111111111111111111";
    const Z: &str = "0000000000000000000000000000000000000000";

    #[test]
    fn parses_valid_lines() {
        let u = parse_line(
            format!("{Z} {A} refs/heads/main").as_bytes(),
            ObjectFormat::Sha1,
        )
        .unwrap();
        assert_eq!(u.refname, "refs/heads/main");
        assert!(!is_null(&u.new));
        let d = parse_line(
            format!("{A} {Z} refs/tags/v1\r").as_bytes(),
            ObjectFormat::Sha1,
        )
        .unwrap();
        assert!(is_null(&d.new));
        let long = "a".repeat(64);
        assert!(parse_line(
            format!("{long} {long} refs/heads/x").as_bytes(),
            ObjectFormat::Sha256
        )
        .is_ok());
    }

    #[test]
    fn rejects_bad_lines() {
        let cases: &[(&str, ObjectFormat)] = &[
            ("", ObjectFormat::Sha1),
            ("garbage", ObjectFormat::Sha1),
            (&format!("{A} {A}"), ObjectFormat::Sha1),
            (&format!("{A} {A} refs/heads/x extra"), ObjectFormat::Sha1),
            (&format!("{A} {A}  refs/heads/x"), ObjectFormat::Sha1),
            (
                &format!("{A} {} refs/heads/x", "g".repeat(40)),
                ObjectFormat::Sha1,
            ),
            (
                &format!("{A} {} refs/heads/x", "A".repeat(40)),
                ObjectFormat::Sha1,
            ),
            (&format!("{A} {A} refs/heads/x"), ObjectFormat::Sha256),
            (&format!("{A} {A} HEAD"), ObjectFormat::Sha1),
            (&format!("{A} {A} refs/heads/a..b"), ObjectFormat::Sha1),
            (&format!("{A} {A} refs/heads/x\0y"), ObjectFormat::Sha1),
        ];
        for (line, f) in cases {
            assert!(
                parse_line(line.as_bytes(), *f).is_err(),
                "accepted {line:?}"
            );
        }
        assert_eq!(
            parse_line(&[0xff, 0xfe], ObjectFormat::Sha1),
            Err(UpdateError::NotUtf8)
        );
    }

    #[test]
    fn ref_format_rules() {
        for ok in [
            "refs/heads/main",
            "refs/heads/feature/x-1",
            "refs/tags/v1.0",
            "refs/heads/ünï",
            "refs/heads/a@b",
            "refs/notes/commits",
        ] {
            assert!(check_ref_format(ok), "{ok}");
        }
        for bad in [
            "refs/heads/",
            "refs/heads//x",
            "refs/heads/.x",
            "refs/heads/x.lock",
            "refs/heads/x.",
            "refs/heads/a b",
            "refs/heads/a~b",
            "refs/heads/a^b",
            "refs/heads/a:b",
            "refs/heads/a?b",
            "refs/heads/a*b",
            "refs/heads/a[b",
            "refs/heads/a\\b",
            "refs/heads/a@{b",
            "refs/heads/a\x7f",
            "heads/main",
            "main",
        ] {
            assert!(!check_ref_format(bad), "{bad}");
        }
    }
}
