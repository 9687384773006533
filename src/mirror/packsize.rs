//! Pack sizes and first-parent history of the upstream, for `push_batch_bytes` (see
//! `plan::Plan::split_by_size`), from `git rev-list` run on the upstream repository.
//!
//! A pack's size is estimated as the bytes the objects it would carry take in the upstream's
//! own object store (`--disk-usage`): packed objects count as stored (deltas included), loose
//! ones compressed one by one, so the estimate is close for a packed repository and high for
//! loose objects. The pack `git push` builds may differ by a few percent either way (it can
//! delta against objects the mirror has), which is why the documented advice is a limit with
//! some room below the host's.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use super::plan::PackSizes;

/// The bytes of the upstream's whole object store (its packs and loose objects): no push from
/// it can send a pack much bigger, so a limit above it needs no estimate at all (the usual
/// case: most repositories are far smaller than a host's limit). None when that cannot be told
/// from the directory alone (objects borrowed through `objects/info/alternates`, or an
/// unreadable store).
pub fn store_bytes(git_dir: &Path) -> Option<u64> {
    let objects = git_dir.join("objects");
    let alternates = std::fs::metadata(objects.join("info/alternates"));
    if alternates.is_ok_and(|m| m.len() > 0) {
        return None;
    }
    let files = |dir: &Path, keep: &dyn Fn(&str) -> bool| -> Option<u64> {
        let mut total = 0u64;
        for e in std::fs::read_dir(dir).ok()? {
            let e = e.ok()?;
            if keep(&e.file_name().to_string_lossy()) {
                total = total.saturating_add(e.metadata().ok()?.len());
            }
        }
        Some(total)
    };
    let mut total = files(&objects.join("pack"), &|n| n.ends_with(".pack"))?;
    for e in std::fs::read_dir(&objects).ok()? {
        let name = e.ok()?.file_name();
        let name = name.to_string_lossy();
        if name.len() == 2 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
            total = total.saturating_add(files(&objects.join(&*name), &|_| true)?);
        }
    }
    Some(total)
}

/// `rev-list` over the upstream repository at `git_dir`.
pub struct RevList<'a> {
    pub git_dir: &'a Path,
}

impl RevList<'_> {
    /// `git rev-list <args> --stdin` fed `tips`, `--not`, `haves` (ids it does not know in
    /// `haves` are ignored: the mirror may hold what upstream never had).
    fn run(&self, args: &[&str], tips: &[&str], haves: &[&str]) -> Result<String, String> {
        let mut cmd = Command::new("git");
        cmd.arg("-C")
            .arg(self.git_dir)
            .arg("rev-list")
            .args(args)
            .args(["--ignore-missing", "--stdin"]);
        crate::paths::drop_git_env(&mut cmd);
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("estimating the pack size: could not run git: {e}"))?;
        let mut input = String::new();
        for t in tips {
            input.push_str(t);
            input.push('\n');
        }
        input.push_str("--not\n");
        for h in haves {
            input.push_str(h);
            input.push('\n');
        }
        // Written from a thread: git may start to answer before it has read everything.
        let stdin = child.stdin.take();
        let writer = std::thread::spawn(move || {
            if let Some(mut s) = stdin {
                let _ = s.write_all(input.as_bytes());
            }
        });
        let out = child
            .wait_with_output()
            .map_err(|e| format!("estimating the pack size: {e}"))?;
        let _ = writer.join();
        if !out.status.success() {
            return Err(format!(
                "estimating the pack size: git rev-list: {}",
                super::git::last_line(&String::from_utf8_lossy(&out.stderr))
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl PackSizes for RevList<'_> {
    fn size(&self, tips: &[&str], haves: &[&str]) -> Result<u64, String> {
        let out = self.run(&["--objects", "--disk-usage"], tips, haves)?;
        out.trim().parse().map_err(|_| {
            format!(
                "estimating the pack size: git rev-list said `{}`",
                out.trim()
            )
        })
    }

    fn first_parents(&self, tip: &str, haves: &[&str]) -> Result<Vec<String>, String> {
        let out = self.run(&["--first-parent", "--reverse"], &[tip], haves)?;
        Ok(out.lines().map(str::to_string).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_bytes_counts_packs_and_loose_objects() {
        let dir = tempfile::tempdir().unwrap();
        let objects = dir.path().join("objects");
        for d in ["pack", "info", "ab", "cd"] {
            std::fs::create_dir_all(objects.join(d)).unwrap();
        }
        let write = |p: &str, n: usize| std::fs::write(objects.join(p), vec![0u8; n]).unwrap();
        write("pack/pack-1.pack", 1000);
        write("pack/pack-1.idx", 300);
        write("pack/pack-2.pack", 500);
        write("ab/0123", 40);
        write("cd/4567", 2);
        write("info/packs", 50);
        assert_eq!(store_bytes(dir.path()), Some(1542));
        // Objects borrowed from another repository: unknown.
        write("info/alternates", 20);
        assert_eq!(store_bytes(dir.path()), None);
        write("info/alternates", 0);
        assert_eq!(store_bytes(dir.path()), Some(1542));
        // No store at all.
        assert_eq!(store_bytes(&dir.path().join("nothing")), None);
    }
}
