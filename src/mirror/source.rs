//! Where `git push` takes the planned refs from: a ref-less shadow of the upstream repository
//! holding exactly one batch's refs, pushed with one pattern refspec.
//!
//! Why not explicit `<oid>:<ref>` refspecs on the upstream itself: git matches every explicit
//! refspec against every local ref and every mirror ref, formatting each candidate name with
//! printf (`count_refspec_match`, `refname_match`). That is O(refspecs × refs): on a repository
//! with 6,000 refs, pushing 2,000 of them took 20 s of CPU before the first byte went out, and a
//! first sync of 10,000 refs would take minutes. A pattern refspec is matched once per ref, and
//! the mirror's refs are looked up in a hash, so the push costs what `git push --mirror` does.
//!
//! The shadow (`pushmirror/push/<mirror>/`) is a bare repository with no loose ref: its objects
//! come from the upstream through `objects/info/alternates`, its config includes the upstream's
//! (so `http.*`, `core.sshCommand` and the like still apply), and its `packed-refs` lists the
//! batch's refs at the planned object ids. It is rebuilt for every batch and removed after the
//! sync; only the one flusher of the repository ever uses it.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::update::ObjectFormat;

pub struct PushSource {
    dir: PathBuf,
}

impl PushSource {
    /// Prepares an empty shadow of `upstream` at `dir` (`pushmirror/push/<mirror>`), replacing
    /// anything there (a shadow left by a killed flusher). A symlinked `push/` is refused before
    /// anything is removed: `remove_dir_all` through it would delete a subtree wherever it
    /// points. Directories are made 0700 (or shared like `pushmirror/`).
    pub fn create(dir: &Path, upstream: &Path) -> io::Result<PushSource> {
        let upstream = fs::canonicalize(upstream)?;
        let parent = dir.parent().unwrap_or(Path::new("."));
        crate::paths::ensure_dir(parent)?;
        // remove_dir_all does not follow a symlink at `dir` itself; only its parent matters.
        match fs::remove_dir_all(dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                if fs::symlink_metadata(dir).is_ok_and(|m| m.file_type().is_symlink()) {
                    fs::remove_file(dir)?;
                } else {
                    return Err(e);
                }
            }
            _ => {}
        }
        crate::paths::ensure_dir(dir)?;
        crate::paths::ensure_dir(&dir.join("refs"))?;
        crate::paths::ensure_dir(&dir.join("objects"))?;
        crate::paths::ensure_dir(&dir.join("objects/info"))?;
        let source = PushSource {
            dir: dir.to_path_buf(),
        };
        let (version, format) = match crate::update::object_format(&upstream) {
            ObjectFormat::Sha1 => (0, ""),
            ObjectFormat::Sha256 => (1, "[extensions]\n\tobjectformat = sha256\n"),
        };
        let mut config = format!(
            "[core]\n\trepositoryformatversion = {version}\n\tbare = true\n{format}[include]\n\tpath = "
        )
        .into_bytes();
        config.extend(quote(&upstream.join("config")));
        config.push(b'\n');
        write_private(&dir.join("config"), &config)?;
        write_private(&dir.join("HEAD"), b"ref: refs/heads/pushmirror-source\n")?;
        let objects = upstream.join("objects");
        let mut alternates = alternate(objects.as_os_str().as_encoded_bytes());
        alternates.push(b'\n');
        write_private(&dir.join("objects/info/alternates"), &alternates)?;
        Ok(source)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Makes the shadow hold exactly `refs` (`(name, oid)`), replacing the previous batch's.
    pub fn set_refs(&self, refs: &[(String, String)]) -> io::Result<()> {
        let mut sorted: Vec<&(String, String)> = refs.iter().collect();
        sorted.sort();
        let mut text = String::from("# pack-refs with: sorted \n");
        for (name, oid) in sorted {
            text.push_str(oid);
            text.push(' ');
            text.push_str(name);
            text.push('\n');
        }
        write_private(&self.dir.join("packed-refs"), text.as_bytes())
    }
}

impl Drop for PushSource {
    fn drop(&mut self) {
        let parent = self.dir.parent().unwrap_or(Path::new("."));
        if crate::paths::refuse_symlink(parent).is_ok() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// A path as a git config string value: quoted, with `"` and `\` escaped and a line break,
/// tab or backspace written as git's `\n`, `\t`, `\b`; its bytes as they are (a path need
/// not be UTF-8).
fn quote(p: &Path) -> Vec<u8> {
    let mut out = vec![b'"'];
    for &b in p.as_os_str().as_encoded_bytes() {
        match b {
            b'\\' | b'"' => out.extend([b'\\', b]),
            b'\n' => out.extend(b"\\n"),
            b'\t' => out.extend(b"\\t"),
            8 => out.extend(b"\\b"),
            b => out.push(b),
        }
    }
    out.push(b'"');
    out
}

/// An `objects/info/alternates` line for `path`: as it is, unless it holds a line break or
/// starts with `"`; then C-quoted, as git reads such a line (`\\`, `\"`, `\n`, octal escapes).
fn alternate(path: &[u8]) -> Vec<u8> {
    if !path.contains(&b'\n') && path.first() != Some(&b'"') {
        return path.to_vec();
    }
    let mut out = vec![b'"'];
    for &b in path {
        match b {
            b'\\' | b'"' => out.extend([b'\\', b]),
            b'\n' => out.extend(b"\\n"),
            b if b < 0x20 || b == 0x7f => out.extend(format!("\\{b:03o}").into_bytes()),
            b => out.push(b),
        }
    }
    out.push(b'"');
    out
}

fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = crate::paths::open_private(path, false)?;
    f.set_len(0)?;
    f.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_written_as_git_reads_them_back() {
        use std::os::unix::ffi::OsStrExt;
        let p = Path::new(std::ffi::OsStr::from_bytes(b"/s/a\\b\"c\nd\te\xff/config"));
        assert_eq!(quote(p), b"\"/s/a\\\\b\\\"c\\nd\\te\xff/config\"".to_vec());
        assert_eq!(
            alternate(b"/s/plain\xff/objects"),
            b"/s/plain\xff/objects".to_vec()
        );
        assert_eq!(
            alternate(b"/s/a\"b\nc\x1b/objects"),
            b"\"/s/a\\\"b\\nc\\033/objects\"".to_vec()
        );
    }

    #[test]
    fn shadow_is_a_repository_git_reads_with_exactly_the_given_refs() {
        let t = tempfile::tempdir().unwrap();
        let up = t.path().join("up.git");
        let git = |args: &[&str]| {
            let o = std::process::Command::new("git")
                .args(args)
                .env("GIT_CONFIG_GLOBAL", "/dev/null")
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .env_remove("GIT_DIR")
                .output()
                .unwrap();
            assert!(o.status.success(), "{args:?}: {o:?}");
            String::from_utf8(o.stdout).unwrap().trim().to_string()
        };
        git(&["init", "-q", "--bare", up.to_str().unwrap()]);
        let u = up.to_str().unwrap();
        let tree = git(&[
            "--git-dir",
            u,
            "hash-object",
            "-t",
            "tree",
            "-w",
            "/dev/null",
        ]);
        let c = git(&[
            "-c",
            "user.name=a",
            "-c",
            "user.email=a@b",
            "--git-dir",
            u,
            "commit-tree",
            "-m",
            "x",
            &tree,
        ]);
        git(&["--git-dir", u, "update-ref", "refs/heads/upstream-only", &c]);
        let dir = t.path().join("shadow");
        let src = PushSource::create(&dir, &up).unwrap();
        src.set_refs(&[
            ("refs/tags/v1".into(), c.clone()),
            ("refs/heads/main".into(), c.clone()),
        ])
        .unwrap();
        let d = dir.to_str().unwrap();
        assert_eq!(
            git(&[
                "--git-dir",
                d,
                "for-each-ref",
                "--format=%(refname) %(objectname)"
            ]),
            format!("refs/heads/main {c}\nrefs/tags/v1 {c}")
        );
        // Objects come from the upstream.
        assert_eq!(git(&["--git-dir", d, "cat-file", "-t", &c]), "commit");
        src.set_refs(&[]).unwrap();
        assert_eq!(git(&["--git-dir", d, "for-each-ref"]), "");
        drop(src);
        assert!(!dir.exists());
    }
}
