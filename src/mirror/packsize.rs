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
