//! Problems `status` (and `add`) report that no sync can show by failing: a `pushmirror/`
//! that cannot be written (a full or read-only disk: the flusher then keeps its state in memory
//! only), and an upstream HEAD naming a branch that does not exist (which holds back every
//! deletion of a merged branch, see `mirror::plan`).

use std::io::Write;
use std::path::Path;

use serde_json::{json, Value};

/// Tries a small write in `dir` (removed again). Reports the errors that mean the disk, not
/// our permissions, is the problem: a user who may not write there is not told about it.
pub fn write_error(dir: &Path) -> Option<String> {
    if !dir.is_dir() {
        return None;
    }
    let probe = dir.join(format!(".status-probe.tmp.{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&probe)?;
        // No fsync: a full file system refuses the write itself (block reservation), and
        // `status --root` over many repositories must stay cheap.
        let r = f.write_all(&[0u8; 4096]);
        let _ = std::fs::remove_file(&probe);
        r
    })();
    let e = result.err()?;
    let disk = matches!(
        e.raw_os_error(),
        Some(libc::ENOSPC | libc::EDQUOT | libc::EROFS | libc::EIO | libc::EFBIG)
    );
    disk.then(|| {
        format!(
            "cannot write in {}: {e}; mirror state cannot be saved (a flusher keeps it in memory, gives up after max_attempts, and saves it once writes work again)",
            dir.display()
        )
    })
}

/// Upstream's HEAD when it names a branch that does not exist while other branches do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DanglingHead {
    /// What HEAD names, e.g. `refs/heads/master`.
    pub target: String,
    /// The branch to point it at: main, else master, else the only branch (None: several).
    pub suggestion: Option<String>,
    pub git_dir: String,
}

impl DanglingHead {
    pub fn fix(&self) -> String {
        format!(
            "git -C {} symbolic-ref HEAD {}",
            self.git_dir,
            self.suggestion
                .as_deref()
                .unwrap_or("refs/heads/<default branch>")
        )
    }

    pub fn message(&self) -> String {
        format!(
            "upstream HEAD names {}, which does not exist: no branch counts as merged, so deletions of branches are held back on every mirror; fix: {}",
            self.target,
            self.fix()
        )
    }

    pub fn to_json(&self) -> Value {
        json!({
            "ref": self.target,
            "dangling": true,
            "deletions_held_back": true,
            "fix": self.fix(),
        })
    }
}

pub fn dangling_head(git_dir: &Path) -> Option<DanglingHead> {
    let up = crate::repo::Upstream::open(git_dir).ok()?;
    let target = up.default_branch()?;
    let branches = up.branches(3);
    if branches.is_empty() || branches.contains(&target) || up.has_ref(&target) {
        return None;
    }
    let suggestion = ["refs/heads/main", "refs/heads/master"]
        .into_iter()
        .find(|b| up.has_ref(b))
        .map(str::to_string)
        .or_else(|| (branches.len() == 1).then(|| branches[0].clone()));
    Some(DanglingHead {
        target,
        suggestion,
        git_dir: git_dir.display().to_string(),
    })
}

/// The spool ends below a mirror's cursor: it was deleted, emptied or cut back, and updates it
/// held may never have been mirrored. The next push, `sync` or flusher repairs the numbering and
/// syncs every mirror in full (see `spool::Spool::append_checked`).
pub fn spool_lost(
    paths: &crate::paths::RepoPaths,
    contents: &crate::spool::Contents,
) -> Option<String> {
    let top = crate::state::max_cursor(&paths.state_dir());
    (contents.last_seq() < top).then(|| {
        format!(
            "{}/spool ends at sequence number {} but a mirror has confirmed up to {}: it was lost or truncated; `git-pushmirror sync` (or the next push) syncs every mirror in full",
            paths.dir.display(),
            contents.last_seq(),
            top
        )
    })
}
