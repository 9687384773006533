//! Which LFS objects a sync must send: the pointer files in the commits it pushes, that is,
//! reachable from the refs being pushed and not from what the mirror already has. Read in-process
//! with gix; every commit is compared with its first parent only, so a blob is looked at only
//! where it appears, never once per commit that carries it.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;

use gix::ObjectId;

/// An LFS pointer: the object's sha256 (64 lowercase hex digits) and its size (the same type
/// the mirror's state remembers missing objects as).
pub type Pointer = crate::state::LfsObject;

/// git-lfs never writes a pointer of 1024 bytes or more (spec v1).
pub const MAX_POINTER: u64 = 1024;

/// Parses a git-lfs spec v1 pointer file (`version ...`, `oid sha256:<hex>`, `size <n>`).
pub fn parse_pointer(data: &[u8]) -> Option<Pointer> {
    if data.len() as u64 >= MAX_POINTER {
        return None;
    }
    let text = std::str::from_utf8(data).ok()?;
    let mut lines = text.lines();
    let version = lines.next()?.strip_prefix("version ")?;
    if version != "https://git-lfs.github.com/spec/v1"
        && version != "https://hawser.github.com/spec/v1"
    {
        return None;
    }
    let (mut oid, mut size) = (None, None);
    for line in lines {
        if let Some(o) = line.strip_prefix("oid sha256:") {
            if o.len() == 64 && o.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
                oid = Some(o.to_string());
            } else {
                return None;
            }
        } else if let Some(s) = line.strip_prefix("size ") {
            size = Some(s.parse::<u64>().ok()?);
        }
    }
    Some(Pointer {
        oid: oid?,
        size: size?,
    })
}

/// The pointers in commits reachable from `tips` (ids of commits or tags being pushed) and not
/// from `have` (ids the mirror listed; those we do not have are ignored), in oid order.
pub fn pointers(git_dir: &Path, tips: &[String], have: &[String]) -> Result<Vec<Pointer>, String> {
    let err = |e: &dyn std::fmt::Display| format!("reading {}: {e}", git_dir.display());
    let mut repo = gix::open_opts(git_dir, gix::open::Options::isolated()).map_err(|e| err(&e))?;
    repo.object_cache_size_if_unset(8 << 20);
    let peel = |hex: &String| -> Option<ObjectId> {
        let id = ObjectId::from_hex(hex.as_bytes()).ok()?;
        let obj = repo.try_find_object(id).ok()??;
        Some(obj.peel_to_commit().ok()?.id)
    };
    let tips: HashSet<ObjectId> = tips.iter().filter_map(peel).collect();
    if tips.is_empty() {
        return Ok(Vec::new());
    }
    let hidden: HashSet<ObjectId> = have.iter().filter_map(peel).collect();
    let walk = repo
        .rev_walk(tips)
        .with_hidden(hidden)
        .all()
        .map_err(|e| err(&e))?;
    // Keyed by (oid, size): a second pointer with the same oid and another size (hand-made,
    // or wrong) must not hide the real one.
    let mut found: BTreeSet<Pointer> = BTreeSet::new();
    let mut seen_trees: HashSet<ObjectId> = HashSet::new();
    let mut seen_blobs: HashSet<ObjectId> = HashSet::new();
    let mut scan = Scan {
        repo: &repo,
        seen_trees: &mut seen_trees,
        seen_blobs: &mut seen_blobs,
        found: &mut found,
    };
    for info in walk {
        let info = info.map_err(|e| err(&e))?;
        let commit = repo.find_commit(info.id).map_err(|e| err(&e))?;
        let tree = commit.tree_id().map_err(|e| err(&e))?.detach();
        let base = match info.parent_ids.first() {
            Some(p) => Some(
                repo.find_commit(*p)
                    .map_err(|e| err(&e))?
                    .tree_id()
                    .map_err(|e| err(&e))?
                    .detach(),
            ),
            None => None,
        };
        scan.tree(tree, base).map_err(|e| err(&e))?;
    }
    Ok(found.into_iter().collect())
}

struct Scan<'a> {
    repo: &'a gix::Repository,
    seen_trees: &'a mut HashSet<ObjectId>,
    seen_blobs: &'a mut HashSet<ObjectId>,
    found: &'a mut BTreeSet<Pointer>,
}

impl Scan<'_> {
    /// Looks at what `tree` has that `base` (its first parent's tree) has not. A tree seen before
    /// is skipped: its blobs were looked at then, or were in a base that is pushed too (and so
    /// looked at itself) or that the mirror has.
    fn tree(&mut self, tree: ObjectId, base: Option<ObjectId>) -> Result<(), String> {
        if Some(tree) == base || !self.seen_trees.insert(tree) {
            return Ok(());
        }
        let entries = self.entries(tree)?;
        let base_entries: BTreeMap<Vec<u8>, (ObjectId, bool)> = match base {
            Some(b) => self
                .entries(b)?
                .into_iter()
                .map(|(name, id, is_tree)| (name, (id, is_tree)))
                .collect(),
            None => BTreeMap::new(),
        };
        for (name, id, is_tree) in entries {
            let old = base_entries.get(&name);
            if old.is_some_and(|(o, _)| *o == id) {
                continue;
            }
            if is_tree {
                let old_tree = old.filter(|(_, t)| *t).map(|(o, _)| *o);
                self.tree(id, old_tree)?;
            } else {
                self.blob(id)?;
            }
        }
        Ok(())
    }

    fn blob(&mut self, id: ObjectId) -> Result<(), String> {
        if !self.seen_blobs.insert(id) {
            return Ok(());
        }
        let header = self.repo.find_header(id).map_err(|e| e.to_string())?;
        if header.size() >= MAX_POINTER {
            return Ok(());
        }
        let obj = self.repo.find_object(id).map_err(|e| e.to_string())?;
        if let Some(p) = parse_pointer(&obj.data) {
            self.found.insert(p);
        }
        Ok(())
    }

    /// (name, id, is a tree) of a tree's entries; submodules (commits) are left out.
    fn entries(&self, tree: ObjectId) -> Result<Vec<(Vec<u8>, ObjectId, bool)>, String> {
        let t = self.repo.find_tree(tree).map_err(|e| e.to_string())?;
        let decoded = t.decode().map_err(|e| e.to_string())?;
        Ok(decoded
            .entries
            .iter()
            .filter(|e| !e.mode.is_commit())
            .map(|e| (e.filename.to_vec(), e.oid.to_owned(), e.mode.is_tree()))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_parse_as_git_lfs_writes_them() {
        let oid = "4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393";
        let text =
            format!("version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize 12345\n");
        assert_eq!(
            parse_pointer(text.as_bytes()),
            Some(Pointer {
                oid: oid.into(),
                size: 12345
            })
        );
        for bad in [
            "version https://example.com/spec\noid sha256:{oid}\nsize 1\n".to_string(),
            format!(
                "version https://git-lfs.github.com/spec/v1\noid sha256:{}\nsize 1\n",
                &oid[1..]
            ),
            format!("version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\n"),
            format!("version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize x\n"),
            "just a small file\n".to_string(),
        ] {
            assert_eq!(parse_pointer(bad.as_bytes()), None, "{bad}");
        }
        let big = format!("{text}{}", "x".repeat(1024));
        assert_eq!(parse_pointer(big.as_bytes()), None);
    }

    #[test]
    fn odd_but_valid_pointers_parse_and_invalid_ones_are_ignored() {
        let oid = "4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393";
        let v = "version https://git-lfs.github.com/spec/v1";
        let p = |size| {
            Some(Pointer {
                oid: oid.into(),
                size,
            })
        };
        // CRLF (a checkout with autocrlf committed), extra keys, size 0 and u64::MAX.
        let crlf = format!("{v}\r\noid sha256:{oid}\r\nsize 7\r\n");
        assert_eq!(parse_pointer(crlf.as_bytes()), p(7));
        let extra = format!("{v}\next-0-foo sha256:{oid}\noid sha256:{oid}\nsize 7\nx-extra y\n");
        assert_eq!(parse_pointer(extra.as_bytes()), p(7));
        let zero = format!("{v}\noid sha256:{oid}\nsize 0\n");
        assert_eq!(parse_pointer(zero.as_bytes()), p(0));
        let huge = format!("{v}\noid sha256:{oid}\nsize {}\n", u64::MAX);
        assert_eq!(parse_pointer(huge.as_bytes()), p(u64::MAX));
        for bad in [
            format!("{v}\noid sha256:{}\nsize 7\n", oid.to_uppercase()),
            format!("{v}\noid sha256:{oid}\nsize -1\n"),
            format!("{v}\noid sha256:{oid}\nsize 99999999999999999999999\n"),
            format!("{v}\noid sha256:../../../../etc/passwd\nsize 7\n"),
            format!("{v}\noid sha1:{}\nsize 7\n", &oid[..40]),
            format!("{v}\noid sha256:{oid}é\nsize 7\n"),
            "version https://git-lfs.github.com/spec/v1".to_string(),
            String::new(),
        ] {
            assert_eq!(parse_pointer(bad.as_bytes()), None, "{bad:?}");
        }
        assert_eq!(parse_pointer(&[0xff, 0xfe, 0x00]), None);
    }
}
