//! The upstream repository, read in-process with gix: its refs, its default branch, and ancestry.
//! Only the flusher and the CLI use this; the hook never loads it.

use std::collections::BTreeMap;
use std::path::Path;

use crate::mirror::plan::Ancestry;

pub struct Upstream {
    repo: gix::Repository,
}

#[derive(Debug, thiserror::Error)]
#[error("{path}: cannot read the repository: {msg}")]
pub struct RepoError {
    pub path: String,
    pub msg: String,
}

impl Upstream {
    pub fn open(git_dir: &Path) -> Result<Upstream, RepoError> {
        let err = |msg: String| RepoError {
            path: git_dir.display().to_string(),
            msg,
        };
        // Isolated: the user's and system's git config must not change what we read.
        let mut repo = gix::open_opts(git_dir, gix::open::Options::isolated())
            .map_err(|e| err(e.to_string()))?;
        repo.object_cache_size_if_unset(8 << 20);
        Ok(Upstream { repo })
    }

    /// Every direct ref under `refs/` as name → hex id. Symbolic refs are left out: a mirror gets
    /// what they point at under its own name.
    pub fn refs(&self) -> Result<BTreeMap<String, String>, RepoError> {
        let err = |msg: String| RepoError {
            path: self.repo.git_dir().display().to_string(),
            msg,
        };
        let platform = self.repo.references().map_err(|e| err(e.to_string()))?;
        let mut out = BTreeMap::new();
        for r in platform.all().map_err(|e| err(e.to_string()))? {
            let r = r.map_err(|e| err(e.to_string()))?;
            if let gix::refs::TargetRef::Object(oid) = r.target() {
                out.insert(r.name().as_bstr().to_string(), oid.to_string());
            }
        }
        Ok(out)
    }

    /// Where HEAD points, e.g. `refs/heads/main`; None when HEAD is detached.
    pub fn default_branch(&self) -> Option<String> {
        self.repo
            .head_name()
            .ok()
            .flatten()
            .map(|n| n.as_bstr().to_string())
    }

    /// Whether `name` exists as a ref.
    pub fn has_ref(&self, name: &str) -> bool {
        self.repo.try_find_reference(name).ok().flatten().is_some()
    }

    /// Up to `max` branch names (`refs/heads/...`).
    pub fn branches(&self, max: usize) -> Vec<String> {
        let Ok(platform) = self.repo.references() else {
            return Vec::new();
        };
        let Ok(iter) = platform.local_branches() else {
            return Vec::new();
        };
        iter.flatten()
            .take(max)
            .map(|r| r.name().as_bstr().to_string())
            .collect()
    }

    fn commit_of(&self, hex: &str) -> Option<gix::ObjectId> {
        let id = gix::ObjectId::from_hex(hex.as_bytes()).ok()?;
        let obj = self.repo.try_find_object(id).ok()??;
        Some(obj.peel_to_commit().ok()?.id)
    }
}

impl Ancestry for Upstream {
    /// A mirror commit upstream does not have is never an ancestor: it would be lost by a push.
    fn is_ancestor(&self, ancestor: &str, descendant: &str) -> bool {
        if ancestor == descendant {
            return true;
        }
        let (Some(a), Some(d)) = (self.commit_of(ancestor), self.commit_of(descendant)) else {
            return false;
        };
        if a == d {
            // Two tag objects on the same commit are still different refs values.
            return false;
        }
        matches!(self.repo.merge_base(a, d), Ok(Some(base)) if base.detach() == a)
    }
}
