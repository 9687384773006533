//! The decision of what one sync of one mirror sends (spec §5).
//!
//! Everything here is a pure function of the two ref lists, the mirror's options and an ancestry
//! oracle, so that every mirroring rule can be pinned down by a table-driven test without a
//! repository or a network. Listing refs, answering ancestry questions and running `git push`
//! belong to the caller.

use std::collections::{BTreeMap, BTreeSet};

use crate::pattern::wildmatch;

/// Options of one mirror that affect the plan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanOptions {
    /// Leave mirror refs alone when upstream's value would rewrite history there, instead of
    /// overwriting them (GitLab's "Keep divergent refs").
    pub keep_divergent_refs: bool,
    /// Mirror only the branches matching `protected` (all tags are still mirrored).
    pub only_protected_branches: bool,
    /// git wildcard patterns matched against the branch name without `refs/heads/` (e.g. `main`, `release/*`, `v[0-9]*`).
    pub protected: Vec<String>,
    /// extra ref prefixes in scope besides refs/heads/ and refs/tags/, each ending in '/', e.g. "refs/notes/".
    pub extra_prefixes: Vec<String>,
    /// GitLab's `mirror_branch_regex`: only branches whose name (without `refs/heads/`) the
    /// regex matches are mirrored (unanchored, like GitLab); tags are always mirrored, and
    /// mirror-only branches are never deleted while it is set.
    pub branch_regex: Option<BranchRegex>,
}

use crate::pattern::BranchRegex;
#[cfg(test)]
use crate::pattern::BRANCH_REGEX_MAX;

/// Answers "is `ancestor` reachable from `descendant`" for hex object ids; an id unknown upstream is never an ancestor.
///
/// Implementations should peel tags to commits like `git merge-base --is-ancestor` does, so that
/// annotated tags can be fast-forwarded under `keep_divergent_refs`; answering `false` whenever in
/// doubt is always safe, as it only ever keeps a ref on the mirror.
pub trait Ancestry {
    /// Whether `ancestor` is `descendant` or reachable from it through parent links.
    fn is_ancestor(&self, ancestor: &str, descendant: &str) -> bool;
}

/// Everything one sync knows about both sides, borrowed so that a sync over many refs copies
/// nothing it does not send.
pub struct PlanInput<'a> {
    /// upstream refs, full name -> hex oid (may contain out-of-scope refs; the plan filters)
    pub local: &'a BTreeMap<String, String>,
    /// mirror refs from ls-remote, full name -> hex oid (may contain HEAD, ^{} peeled entries, refs/pull/... — filter them)
    pub remote: &'a BTreeMap<String, String>,
    /// upstream default branch full name, e.g. "refs/heads/main" (None if HEAD is unborn/detached)
    pub default_branch: Option<&'a str>,
    /// refs whose latest pending update in the spool was a deletion upstream
    pub deleted_upstream: &'a BTreeSet<String>,
    /// The mirror's options.
    pub options: &'a PlanOptions,
}

/// One ref to (force-)update on the mirror.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefPush {
    /// Full ref name.
    pub name: String,
    /// Upstream's value, the one the mirror gets.
    pub new: String,
    /// The mirror's value as listed, `None` if absent, kept so the pusher can use it as a lease
    /// and the status can show what was overwritten.
    pub old: Option<String>,
}

/// One ref to delete from the mirror.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefDelete {
    /// Full ref name.
    pub name: String,
    /// The mirror's value as listed, for a lease and for the log.
    pub old: String,
}

/// Why a ref that differs between upstream and the mirror is deliberately left alone, so that
/// status and logs can explain the difference instead of looking like a failed sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// A branch outside the `protected` patterns of an `only_protected_branches` mirror.
    NotProtected,
    /// A mirror-only branch that is not known to be merged into upstream's default branch.
    UnmergedOnMirror,
    /// A mirror-only tag that upstream did not delete, so it may be the mirror's own.
    MirrorOnlyTag,
    /// `keep_divergent_refs`: mirror-only refs untouched; also mirror-only refs under extra prefixes
    /// that upstream did not delete; and mirror-only branches of a mirror with `branch_regex`.
    MirrorOnlyKept,
    /// A branch that `branch_regex` does not match.
    NotMatchingRegex,
}

/// The outcome of planning one sync.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// in push order: sorted by name, except that when the mirror has no branch at all yet
    /// (an empty repository, or one holding only tags or hidden refs) the default branch comes first
    pub pushes: Vec<RefPush>,
    /// Sorted by name.
    pub deletions: Vec<RefDelete>,
    /// refs not touched because the mirror value is not an ancestor of upstream's (`keep_divergent_refs` only)
    pub divergent: Vec<String>,
    /// Sorted by name; every name at most once.
    pub skipped: Vec<(String, SkipReason)>,
    /// The first push is upstream's default branch, put first because the mirror has no branch
    /// yet: hosts such as GitHub make the first branch pushed into an empty repository the default.
    pub default_first: bool,
}

impl Plan {
    /// Whether the sync sends nothing: divergent and skipped refs alone make no push. Then
    /// `push_batches` is empty too, and no `git push` is started for nothing (spec §5.7).
    pub fn is_empty(&self) -> bool {
        self.pushes.is_empty() && self.deletions.is_empty()
    }

    /// The `git push` runs that carry out the plan, in order. A batch's leases and deletions go
    /// on the command line, so a batch holds at most `max_bytes` of them (the kernel limits a
    /// command line; a sync that moves or deletes tens of thousands of refs would not fit in
    /// one), and at most `max_refs` ref updates of any kind (`push_batch_refs`: hosts refuse
    /// pushes that update more). Pushes come first, in plan order, then deletions. When the plan leads with the
    /// default branch (the mirror has no branch yet), that branch goes alone in the first batch,
    /// so that it reaches the mirror before any other.
    ///
    /// Every update and deletion is leased on the mirror's value as listed
    /// (`--force-with-lease=<ref>:<old>`): it is forced only while the mirror still holds what the
    /// plan saw, so work pushed to the mirror meanwhile is never overwritten or deleted. Nothing is
    /// pushed with `+`, which would override the lease. A creation needs no lease: unforced, it
    /// can only fast-forward a ref that appeared meanwhile, which loses nothing.
    pub fn push_batches(&self, max_bytes: usize, max_refs: usize) -> Vec<PushBatch> {
        let lease = |name: &str, old: &str| format!("--force-with-lease={name}:{old}");
        let mut batches: Vec<PushBatch> = Vec::new();
        let mut used = 0usize;
        // The batch for an item costing `cost` bytes of arguments (each argument also costs its
        // NUL and a pointer in argv): the current one, or a new one if that is full or `fresh`.
        let mut slot = |batches: &mut Vec<PushBatch>, cost: usize, fresh: bool| {
            let full = batches.last().is_none_or(|b| {
                used + cost > max_bytes || b.updates.len() + b.deletions.len() >= max_refs
            });
            if fresh || full {
                batches.push(PushBatch::default());
                used = 0;
            }
            used += cost;
            batches.len() - 1
        };
        for (i, p) in self.pushes.iter().enumerate() {
            let l = p.old.as_deref().map(|old| lease(&p.name, old));
            // A leading default branch goes alone: the next push opens the second batch.
            let at = slot(
                &mut batches,
                l.as_ref().map_or(0, |l| l.len() + 9),
                self.default_first && i == 1,
            );
            batches[at].leases.extend(l);
            batches[at].updates.push((p.name.clone(), p.new.clone()));
        }
        for d in &self.deletions {
            let l = lease(&d.name, &d.old);
            let cost = l.len() + 9 + d.name.len() + 10;
            let at = slot(&mut batches, cost, false);
            batches[at].leases.push(l);
            batches[at].deletions.push(d.name.clone());
        }
        batches
    }
}

impl Plan {
    /// The plan as a sequence of plans whose packs each stay within about `max_pack` bytes
    /// (`push_batch_bytes`), to be pushed in order, each then split by `push_batches`; the
    /// mirror ends as the whole plan would leave it. `haves` are the mirror's values (what a
    /// push does not send again); `sizes` estimates packs and walks history.
    ///
    /// A plan whose whole pack fits is returned as it is (one estimate: the usual incremental
    /// sync pays only that). Otherwise pushes are taken in plan order: the next `max_refs`
    /// together when they fit (one estimate), else one by one, as many together as fit. A
    /// branch too big alone is pushed in steps up its first-parent history: the newest commit
    /// whose pack fits, and again from there, each step leased on the previous one, then its
    /// own value. A leading default branch (a mirror with no branch yet)
    /// goes alone, its first step first, so that it is still the first branch the mirror gets.
    /// What cannot be split (one commit, a tag) is pushed as it is: the host may refuse it, and
    /// the sync reports what it said. Deletions send no objects; they go with the last part.
    pub fn split_by_size(
        &self,
        max_pack: u64,
        max_refs: usize,
        sizes: &dyn PackSizes,
        haves: &[String],
    ) -> Result<Vec<Plan>, String> {
        let mut haves: Vec<String> = haves.to_vec();
        let size = |tips: &[&str], haves: &[String]| -> Result<u64, String> {
            let haves: Vec<&str> = haves.iter().map(String::as_str).collect();
            sizes.size(tips, &haves)
        };
        let all: Vec<&str> = self.pushes.iter().map(|p| p.new.as_str()).collect();
        if all.is_empty() || size(&all, &haves)? <= max_pack {
            return Ok(vec![self.clone()]);
        }
        let mut out: Vec<Plan> = Vec::new();
        let mut cur: Vec<RefPush> = Vec::new();
        let close = |out: &mut Vec<Plan>, cur: &mut Vec<RefPush>, haves: &mut Vec<String>| {
            if !cur.is_empty() {
                haves.extend(cur.iter().map(|p| p.new.clone()));
                out.push(Plan {
                    pushes: std::mem::take(cur),
                    ..Plan::default()
                });
            }
        };
        let mut next = 0;
        while next < self.pushes.len() {
            let at = next;
            next += 1;
            let p = &self.pushes[at];
            let leading = self.default_first && at == 0;
            // A whole part at once when it fits: one estimate for up to `max_refs` refs.
            let end = at.saturating_add(max_refs).min(self.pushes.len());
            if !leading && cur.is_empty() && end - at > 1 {
                let group = &self.pushes[at..end];
                let tips: Vec<&str> = group.iter().map(|g| g.new.as_str()).collect();
                if size(&tips, &haves)? <= max_pack {
                    cur.extend(group.iter().cloned());
                    close(&mut out, &mut cur, &mut haves);
                    next = end;
                    continue;
                }
            }
            // Whether `p` alone fits, when already known.
            let mut fits_alone = None;
            if !leading && cur.len() < max_refs {
                let mut tips: Vec<&str> = cur.iter().map(|c| c.new.as_str()).collect();
                tips.push(&p.new);
                if size(&tips, &haves)? <= max_pack {
                    cur.push(p.clone());
                    continue;
                }
                if cur.is_empty() {
                    fits_alone = Some(false);
                }
            }
            close(&mut out, &mut cur, &mut haves);
            let mut p = p.clone();
            let fits = match fits_alone {
                Some(f) => f,
                None => size(&[&p.new], &haves)? <= max_pack,
            };
            if !fits && p.name.starts_with(HEADS) {
                let mut chain = sizes.first_parents(&p.new, &{
                    haves.iter().map(String::as_str).collect::<Vec<_>>()
                })?;
                if chain.last() == Some(&p.new) {
                    chain.pop();
                }
                while !chain.is_empty() {
                    // The newest commit of the chain whose pack fits (sizes grow along it), or
                    // the oldest when none does.
                    let (mut lo, mut hi) = (0usize, chain.len());
                    while hi - lo > 1 {
                        let mid = lo + (hi - lo) / 2;
                        if size(&[&chain[mid]], &haves)? <= max_pack {
                            lo = mid;
                        } else {
                            hi = mid;
                        }
                    }
                    let step = chain[lo].clone();
                    chain.drain(..=lo);
                    out.push(Plan {
                        pushes: vec![RefPush {
                            name: p.name.clone(),
                            new: step.clone(),
                            old: p.old.replace(step.clone()),
                        }],
                        ..Plan::default()
                    });
                    haves.push(step);
                    if size(&[&p.new], &haves)? <= max_pack {
                        break;
                    }
                }
            }
            cur.push(p);
            if leading {
                close(&mut out, &mut cur, &mut haves);
            }
        }
        close(&mut out, &mut cur, &mut haves);
        if let Some(first) = out.first_mut() {
            first.default_first = self.default_first;
        }
        if let Some(last) = out.last_mut() {
            last.deletions = self.deletions.clone();
        }
        Ok(out)
    }
}

/// What `Plan::split_by_size` asks of the upstream repository.
pub trait PackSizes {
    /// About the bytes a pack of the objects reachable from `tips` but not from `haves` takes
    /// (ids unknown upstream in `haves` are ignored).
    fn size(&self, tips: &[&str], haves: &[&str]) -> Result<u64, String>;
    /// The commits on `tip`'s first-parent line that `haves` do not reach, oldest first.
    fn first_parents(&self, tip: &str, haves: &[&str]) -> Result<Vec<String>, String>;
}

/// One `git push` of a plan: see `Plan::push_batches`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushBatch {
    /// `--force-with-lease=<ref>:<old>` for every update and deletion in the batch.
    pub leases: Vec<String>,
    /// `(ref, oid)`: the mirror's ref gets exactly this object, even if upstream moves meanwhile.
    pub updates: Vec<(String, String)>,
    /// Refs to delete from the mirror.
    pub deletions: Vec<String>,
}

const HEADS: &str = "refs/heads/";
const TAGS: &str = "refs/tags/";

/// The three families of in-scope refs, which differ only in how mirror-only refs are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Branch,
    Tag,
    Extra,
}

/// Keeps "not mirrored at all" apart from "a branch a filter holds back", because only the
/// latter is worth reporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Out,
    NotProtected,
    NotMatchingRegex,
    In(Kind),
}

fn classify(name: &str, options: &PlanOptions) -> Class {
    // `HEAD` and ls-remote's peeled `^{}` lines are not refs one could push; remote-tracking
    // refs are another repository's state and must never leak to a mirror, whatever the
    // configured prefixes say.
    if name.ends_with("^{}") || !name.starts_with("refs/") || name.starts_with("refs/remotes/") {
        return Class::Out;
    }
    if let Some(branch) = name.strip_prefix(HEADS) {
        if branch.is_empty() {
            Class::Out
        } else if options.only_protected_branches
            && !options.protected.iter().any(|p| wildmatch(p, branch))
        {
            Class::NotProtected
        } else if options
            .branch_regex
            .as_ref()
            .is_some_and(|r| !r.is_match(branch))
        {
            Class::NotMatchingRegex
        } else {
            Class::In(Kind::Branch)
        }
    } else if let Some(tag) = name.strip_prefix(TAGS) {
        if tag.is_empty() {
            Class::Out
        } else {
            Class::In(Kind::Tag)
        }
    } else if options
        .extra_prefixes
        .iter()
        .any(|prefix| is_under(name, prefix))
    {
        Class::In(Kind::Extra)
    } else {
        Class::Out
    }
}

/// Prefix match on whole path components, so that a configured `refs/notes` without its
/// trailing slash cannot pull in `refs/notes-private/...`, and an empty prefix matches nothing.
fn is_under(name: &str, prefix: &str) -> bool {
    let dir = prefix.trim_end_matches('/');
    !dir.is_empty()
        && name
            .strip_prefix(dir)
            .and_then(|rest| rest.strip_prefix('/'))
            .is_some_and(|rest| !rest.is_empty())
}

/// refs/heads/*, refs/tags/*, extra prefixes; never HEAD, refs/remotes/*, names ending ^{};
/// with `only_protected_branches`, branches must match `protected`. The plan itself classifies;
/// this is the same answer as a yes/no for the table tests.
#[cfg(test)]
pub fn in_scope(name: &str, options: &PlanOptions) -> bool {
    matches!(classify(name, options), Class::In(_))
}

/// Hex ids may come from different tools; letter case must not turn equal values into a push.
fn same_oid(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// An empty source in a refspec means deletion (`+:refs/heads/main` deletes `main`), and the
/// all-zero id means "no object" in hook input; neither may ever reach a push.
fn is_pushable_oid(oid: &str) -> bool {
    !oid.is_empty() && oid.bytes().all(|b| b.is_ascii_hexdigit()) && !oid.bytes().all(|b| b == b'0')
}

/// Plans one sync of one mirror, following spec §5.
///
/// An upstream ref whose value is not a usable object id is left alone on both sides rather
/// than being treated as deleted upstream, so that a caller bug can never delete mirror refs.
pub fn plan(input: &PlanInput<'_>, ancestry: &dyn Ancestry) -> Plan {
    let options = input.options;
    let keep_divergent = options.keep_divergent_refs;
    let default_tip = input
        .default_branch
        .and_then(|branch| input.local.get(branch))
        .map(String::as_str)
        .filter(|oid| is_pushable_oid(oid));

    let names: BTreeSet<&str> = input
        .local
        .keys()
        .chain(input.remote.keys())
        .map(String::as_str)
        .collect();

    let mut out = Plan::default();
    for name in names {
        let upstream = input.local.get(name).map(String::as_str);
        if upstream.is_some_and(|oid| !is_pushable_oid(oid)) {
            continue;
        }
        let mirror = input.remote.get(name).map(String::as_str);
        let kind = match classify(name, options) {
            Class::Out => continue,
            class @ (Class::NotProtected | Class::NotMatchingRegex) => {
                let equal = matches!((upstream, mirror), (Some(a), Some(b)) if same_oid(a, b));
                if !equal {
                    let reason = if class == Class::NotProtected {
                        SkipReason::NotProtected
                    } else {
                        SkipReason::NotMatchingRegex
                    };
                    out.skipped.push((name.to_owned(), reason));
                }
                continue;
            }
            Class::In(kind) => kind,
        };
        match (upstream, mirror) {
            (None, None) => {}
            (Some(new), Some(old)) if same_oid(new, old) => {}
            (Some(new), old) => {
                // Under keep_divergent_refs only fast-forwards are allowed: anything else would
                // drop commits the mirror has and upstream does not know to be its own.
                if keep_divergent && old.is_some_and(|old| !ancestry.is_ancestor(old, new)) {
                    out.divergent.push(name.to_owned());
                    continue;
                }
                out.pushes.push(RefPush {
                    name: name.to_owned(),
                    new: new.to_owned(),
                    old: old.map(str::to_owned),
                });
            }
            (None, Some(old)) => {
                // GitLab never deletes a branch from a mirror with a branch filter: the mirror
                // may hold branches of its own outside what the filter was written for.
                let delete = if keep_divergent
                    || (kind == Kind::Branch && options.branch_regex.is_some())
                {
                    Err(SkipReason::MirrorOnlyKept)
                } else {
                    match kind {
                        // Deleting a merged branch loses nothing; an unmerged one may carry the
                        // only copy of someone's work, and without a default branch nothing can
                        // be shown to be merged.
                        Kind::Branch => match default_tip {
                            Some(tip) if same_oid(old, tip) || ancestry.is_ancestor(old, tip) => {
                                Ok(())
                            }
                            _ => Err(SkipReason::UnmergedOnMirror),
                        },
                        // Tags have no "merged" notion; only an observed upstream deletion
                        // proves the mirror's copy came from upstream.
                        Kind::Tag | Kind::Extra if input.deleted_upstream.contains(name) => Ok(()),
                        Kind::Tag => Err(SkipReason::MirrorOnlyTag),
                        Kind::Extra => Err(SkipReason::MirrorOnlyKept),
                    }
                };
                match delete {
                    Ok(()) => out.deletions.push(RefDelete {
                        name: name.to_owned(),
                        old: old.to_owned(),
                    }),
                    Err(reason) => out.skipped.push((name.to_owned(), reason)),
                }
            }
        }
    }

    // Hosts such as GitHub make the first branch pushed into an empty repository its default
    // branch, so upstream's default must lead whenever the mirror has no branch yet; tags or
    // hidden refs already there do not change that.
    let mirror_has_branch = input
        .remote
        .keys()
        .any(|name| name.len() > HEADS.len() && name.starts_with(HEADS));
    let default_pos = input
        .default_branch
        .filter(|_| !mirror_has_branch)
        .and_then(|default| out.pushes.iter().position(|push| push.name == default));
    if let Some(pos) = default_pos {
        let first = out.pushes.remove(pos);
        out.pushes.insert(0, first);
        out.default_first = true;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// A commit graph given as child -> parents; ids missing from it are unknown upstream.
    struct Graph(BTreeMap<&'static str, &'static [&'static str]>);

    impl Ancestry for Graph {
        fn is_ancestor(&self, ancestor: &str, descendant: &str) -> bool {
            if !self.0.contains_key(ancestor) {
                return false;
            }
            let mut todo = vec![descendant];
            let mut seen = BTreeSet::new();
            while let Some(id) = todo.pop() {
                if id == ancestor {
                    return true;
                }
                if seen.insert(id) {
                    todo.extend(self.0.get(id).copied().unwrap_or_default());
                }
            }
            false
        }
    }

    /// ```text
    /// a1 - a2 - a3 - d1 - d2     main line; upstream main is at a3
    ///   \
    ///    b1 - b2                 an unmerged side branch
    /// ```
    /// `ee` is a commit only the mirror has.
    fn graph() -> Graph {
        Graph(BTreeMap::from([
            ("a1", &[][..]),
            ("a2", &["a1"][..]),
            ("a3", &["a2"][..]),
            ("d1", &["a3"][..]),
            ("d2", &["d1"][..]),
            ("b1", &["a1"][..]),
            ("b2", &["b1"][..]),
        ]))
    }

    struct Counting<'a> {
        inner: &'a dyn Ancestry,
        calls: Cell<usize>,
    }

    impl Ancestry for Counting<'_> {
        fn is_ancestor(&self, ancestor: &str, descendant: &str) -> bool {
            self.calls.set(self.calls.get() + 1);
            self.inner.is_ancestor(ancestor, descendant)
        }
    }

    #[test]
    fn fake_graph_answers_like_git() {
        let g = graph();
        for (anc, desc, expected) in [
            ("a1", "a3", true),
            ("a3", "a3", true),
            ("a3", "a1", false),
            ("b2", "a3", false),
            ("a1", "b2", true),
            ("ee", "a3", false),
            ("ee", "ee", false),
            ("a3", "ee", false),
        ] {
            assert_eq!(g.is_ancestor(anc, desc), expected, "{anc} -> {desc}");
        }
    }

    const MAIN: &str = "refs/heads/main";
    const FEATURE: &str = "refs/heads/feature";
    const TOPIC: &str = "refs/heads/topic";
    const V0: &str = "refs/tags/v0";
    const V1: &str = "refs/tags/v1";
    const V9: &str = "refs/tags/v9";
    const NOTES: &str = "refs/notes/commits";
    const ZERO: &str = "0000000000000000000000000000000000000000";

    use SkipReason::*;

    #[derive(Clone, Copy)]
    struct Opts {
        keep: bool,
        only_protected: bool,
        protected: &'static [&'static str],
        extra: &'static [&'static str],
        regex: Option<&'static str>,
    }

    impl Opts {
        fn build(self) -> PlanOptions {
            PlanOptions {
                keep_divergent_refs: self.keep,
                only_protected_branches: self.only_protected,
                protected: self.protected.iter().map(|p| p.to_string()).collect(),
                extra_prefixes: self.extra.iter().map(|p| p.to_string()).collect(),
                branch_regex: self.regex.map(|r| BranchRegex::new(r).unwrap()),
            }
        }
    }

    const OVERWRITE: Opts = Opts {
        keep: false,
        only_protected: false,
        protected: &[],
        extra: &[],
        regex: None,
    };
    const KEEP: Opts = Opts {
        keep: true,
        ..OVERWRITE
    };
    const NOTES_TOO: Opts = Opts {
        extra: &["refs/notes/"],
        ..OVERWRITE
    };

    type Refs = &'static [(&'static str, &'static str)];

    struct Case {
        what: &'static str,
        local: Refs,
        remote: Refs,
        default_branch: Option<&'static str>,
        deleted: &'static [&'static str],
        opts: Opts,
        pushes: &'static [(&'static str, &'static str, Option<&'static str>)],
        deletions: Refs,
        divergent: &'static [&'static str],
        skipped: &'static [(&'static str, SkipReason)],
    }

    const BASE: Case = Case {
        what: "",
        local: &[],
        remote: &[],
        default_branch: Some(MAIN),
        deleted: &[],
        opts: OVERWRITE,
        pushes: &[],
        deletions: &[],
        divergent: &[],
        skipped: &[],
    };

    fn map(refs: Refs) -> BTreeMap<String, String> {
        refs.iter()
            .map(|(name, oid)| (name.to_string(), oid.to_string()))
            .collect()
    }

    fn run(case: &Case, ancestry: &dyn Ancestry) -> Plan {
        let local = map(case.local);
        let remote = map(case.remote);
        let deleted = case.deleted.iter().map(|s| s.to_string()).collect();
        let options = case.opts.build();
        plan(
            &PlanInput {
                local: &local,
                remote: &remote,
                default_branch: case.default_branch,
                deleted_upstream: &deleted,
                options: &options,
            },
            ancestry,
        )
    }

    fn expected(case: &Case) -> Plan {
        Plan {
            pushes: case
                .pushes
                .iter()
                .map(|(name, new, old)| RefPush {
                    name: name.to_string(),
                    new: new.to_string(),
                    old: old.map(str::to_string),
                })
                .collect(),
            deletions: case
                .deletions
                .iter()
                .map(|(name, old)| RefDelete {
                    name: name.to_string(),
                    old: old.to_string(),
                })
                .collect(),
            divergent: case.divergent.iter().map(|s| s.to_string()).collect(),
            skipped: case
                .skipped
                .iter()
                .map(|(name, reason)| (name.to_string(), *reason))
                .collect(),
            // The oracle: an expected first push of the default branch to a branchless mirror.
            default_first: !case
                .remote
                .iter()
                .any(|(n, _)| n.len() > HEADS.len() && n.starts_with(HEADS))
                && case.default_branch.is_some()
                && case.pushes.first().map(|p| p.0) == case.default_branch,
        }
    }

    const CASES: &[Case] = &[
        // Overwrite mode: pushes.
        Case {
            what: "identical refs send nothing",
            local: &[(MAIN, "a3"), (V1, "a1"), (NOTES, "a1")],
            remote: &[(MAIN, "a3"), (V1, "a1"), (NOTES, "a1")],
            opts: NOTES_TOO,
            ..BASE
        },
        Case {
            what: "oids differing only in case are equal",
            local: &[(MAIN, "A3"), (V1, "a1")],
            remote: &[(MAIN, "a3"), (V1, "A1")],
            ..BASE
        },
        Case {
            what: "new branch and tag are created",
            local: &[(MAIN, "a3"), (FEATURE, "b2"), (V1, "a1")],
            remote: &[(MAIN, "a3")],
            pushes: &[(FEATURE, "b2", None), (V1, "a1", None)],
            ..BASE
        },
        Case {
            what: "a rewound branch is force-pushed",
            local: &[(MAIN, "a2")],
            remote: &[(MAIN, "a3")],
            pushes: &[(MAIN, "a2", Some("a3"))],
            ..BASE
        },
        Case {
            what: "a mirror commit upstream does not have is overwritten",
            local: &[(MAIN, "a3"), (FEATURE, "b1")],
            remote: &[(MAIN, "ee"), (FEATURE, "b2")],
            pushes: &[(FEATURE, "b1", Some("b2")), (MAIN, "a3", Some("ee"))],
            ..BASE
        },
        Case {
            what: "a moved tag is force-pushed",
            local: &[(MAIN, "a3"), (V1, "a2")],
            remote: &[(MAIN, "a3"), (V1, "b1")],
            pushes: &[(V1, "a2", Some("b1"))],
            ..BASE
        },
        Case {
            what: "out-of-scope refs on either side are ignored",
            local: &[
                ("HEAD", "a3"),
                (MAIN, "a3"),
                ("refs/remotes/origin/main", "b1"),
                ("refs/pipelines/1", "b2"),
                (NOTES, "a1"),
                ("refs/merge-requests/1/head", "b1"),
                (V1, "aa"),
            ],
            remote: &[
                ("HEAD", "a3"),
                (MAIN, "a3"),
                ("refs/pull/1/head", "b2"),
                (V1, "aa"),
                ("refs/tags/v1^{}", "a1"),
                ("refs/tags/v2^{}", "a1"),
                ("refs/remotes/origin/topic", "a2"),
                ("refs/notes/theirs", "b1"),
                ("refs/heads/", "a1"),
            ],
            ..BASE
        },
        // Overwrite mode: mirror-only branches.
        Case {
            what: "a merged mirror-only branch is deleted",
            local: &[(MAIN, "a3")],
            remote: &[(MAIN, "a3"), (TOPIC, "a2")],
            deletions: &[(TOPIC, "a2")],
            ..BASE
        },
        Case {
            what: "a mirror-only branch at the default tip is deleted",
            local: &[(MAIN, "a3")],
            remote: &[(MAIN, "a3"), (TOPIC, "a3")],
            deletions: &[(TOPIC, "a3")],
            ..BASE
        },
        Case {
            what: "merged means merged into upstream's default, not the mirror's",
            local: &[(MAIN, "a2")],
            remote: &[(MAIN, "a3"), (TOPIC, "a3")],
            pushes: &[(MAIN, "a2", Some("a3"))],
            skipped: &[(TOPIC, UnmergedOnMirror)],
            ..BASE
        },
        Case {
            what: "an unmerged mirror-only branch is kept",
            local: &[(MAIN, "a3")],
            remote: &[(MAIN, "a3"), (TOPIC, "b2")],
            skipped: &[(TOPIC, UnmergedOnMirror)],
            ..BASE
        },
        Case {
            what: "a mirror-only branch on a commit unknown upstream is kept",
            local: &[(MAIN, "a3")],
            remote: &[(MAIN, "a3"), (TOPIC, "ee")],
            skipped: &[(TOPIC, UnmergedOnMirror)],
            ..BASE
        },
        Case {
            what: "an upstream deletion does not override the merge check for branches",
            local: &[(MAIN, "a3")],
            remote: &[(MAIN, "a3"), (FEATURE, "a1"), (TOPIC, "b2")],
            deleted: &[FEATURE, TOPIC],
            deletions: &[(FEATURE, "a1")],
            skipped: &[(TOPIC, UnmergedOnMirror)],
            ..BASE
        },
        Case {
            what: "the default branch itself deleted upstream is kept unless merged",
            local: &[(FEATURE, "a3")],
            remote: &[(MAIN, "a3")],
            default_branch: Some(FEATURE),
            deleted: &[MAIN],
            pushes: &[(FEATURE, "a3", None)],
            deletions: &[(MAIN, "a3")],
            ..BASE
        },
        Case {
            what: "without a default branch no mirror-only branch is deleted",
            local: &[(MAIN, "a3")],
            remote: &[(MAIN, "a3"), (TOPIC, "a1")],
            default_branch: None,
            skipped: &[(TOPIC, UnmergedOnMirror)],
            ..BASE
        },
        Case {
            what: "a default branch missing upstream deletes nothing",
            local: &[(FEATURE, "a3")],
            remote: &[(FEATURE, "a3"), (TOPIC, "a1")],
            default_branch: Some("refs/heads/master"),
            skipped: &[(TOPIC, UnmergedOnMirror)],
            ..BASE
        },
        // Overwrite mode: mirror-only tags and extra refs.
        Case {
            what: "a mirror-only tag is deleted only when upstream deleted it",
            local: &[(MAIN, "a3")],
            remote: &[(MAIN, "a3"), (V0, "a1"), (V9, "a2")],
            deleted: &[V0],
            deletions: &[(V0, "a1")],
            skipped: &[(V9, MirrorOnlyTag)],
            ..BASE
        },
        Case {
            what: "a tag deleted then re-created upstream is pushed, not deleted",
            local: &[(MAIN, "a3"), (V0, "a3")],
            remote: &[(MAIN, "a3"), (V0, "a1")],
            deleted: &[V0],
            pushes: &[(V0, "a3", Some("a1"))],
            ..BASE
        },
        Case {
            what: "deleted_upstream for refs the mirror lacks is harmless",
            local: &[(MAIN, "a3")],
            remote: &[(MAIN, "a3")],
            deleted: &[V0, TOPIC, "refs/notes/gone"],
            opts: NOTES_TOO,
            ..BASE
        },
        Case {
            what: "extra prefixes are pushed, and deleted only after an upstream deletion",
            local: &[(MAIN, "a3"), (NOTES, "a2")],
            remote: &[
                (MAIN, "a3"),
                (NOTES, "a1"),
                ("refs/notes/gone", "b1"),
                ("refs/notes/theirs", "b2"),
                ("refs/pipelines/7", "b2"),
            ],
            deleted: &["refs/notes/gone", "refs/pipelines/7"],
            opts: NOTES_TOO,
            pushes: &[(NOTES, "a2", Some("a1"))],
            deletions: &[("refs/notes/gone", "b1")],
            skipped: &[("refs/notes/theirs", MirrorOnlyKept)],
            ..BASE
        },
        Case {
            what: "an extra prefix without its slash matches whole components only",
            local: &[(MAIN, "a3"), (NOTES, "a1"), ("refs/notes-private/x", "b1")],
            remote: &[(MAIN, "a3")],
            opts: Opts {
                extra: &["refs/notes"],
                ..OVERWRITE
            },
            pushes: &[(NOTES, "a1", None)],
            ..BASE
        },
        Case {
            what: "a refs/ prefix never brings in remote-tracking refs",
            local: &[
                (MAIN, "a3"),
                ("refs/remotes/origin/main", "a3"),
                ("refs/pipelines/1", "a2"),
            ],
            remote: &[(MAIN, "a3"), ("refs/remotes/origin/x", "a1")],
            opts: Opts {
                extra: &["refs/", ""],
                ..OVERWRITE
            },
            pushes: &[("refs/pipelines/1", "a2", None)],
            ..BASE
        },
        Case {
            what: "heads and tags listed as extra prefixes keep their own rules",
            local: &[(MAIN, "a3"), (FEATURE, "b1")],
            remote: &[(MAIN, "a2"), (V9, "a1")],
            opts: Opts {
                only_protected: true,
                protected: &["main"],
                extra: &["refs/heads/", "refs/tags/"],
                ..OVERWRITE
            },
            pushes: &[(MAIN, "a3", Some("a2"))],
            skipped: &[(FEATURE, NotProtected), (V9, MirrorOnlyTag)],
            ..BASE
        },
        // Push order.
        Case {
            what: "an empty mirror receives the default branch first",
            local: &[
                ("refs/heads/alpha", "a1"),
                (MAIN, "a3"),
                ("refs/heads/zeta", "b1"),
                (V1, "a1"),
            ],
            pushes: &[
                (MAIN, "a3", None),
                ("refs/heads/alpha", "a1", None),
                ("refs/heads/zeta", "b1", None),
                (V1, "a1", None),
            ],
            ..BASE
        },
        Case {
            what: "a mirror with only tags and hidden refs has no default branch yet",
            local: &[("refs/heads/alpha", "a1"), (MAIN, "a3")],
            remote: &[("HEAD", "a1"), ("refs/pull/1/head", "a1"), (V0, "a1")],
            pushes: &[(MAIN, "a3", None), ("refs/heads/alpha", "a1", None)],
            skipped: &[(V0, MirrorOnlyTag)],
            ..BASE
        },
        Case {
            what: "a mirror with branches gets plain name order",
            local: &[("refs/heads/alpha", "a2"), (MAIN, "a3")],
            remote: &[("refs/heads/alpha", "a1")],
            pushes: &[("refs/heads/alpha", "a2", Some("a1")), (MAIN, "a3", None)],
            ..BASE
        },
        Case {
            what: "an unprotected branch on the mirror still makes it non-empty",
            local: &[("refs/heads/release/1", "a2"), ("refs/heads/trunk", "a3")],
            remote: &[(FEATURE, "b1")],
            default_branch: Some("refs/heads/trunk"),
            opts: Opts {
                only_protected: true,
                protected: &["trunk", "release/*"],
                ..OVERWRITE
            },
            pushes: &[
                ("refs/heads/release/1", "a2", None),
                ("refs/heads/trunk", "a3", None),
            ],
            skipped: &[(FEATURE, NotProtected)],
            ..BASE
        },
        Case {
            what: "an unprotected default branch is not pushed first or at all",
            local: &[("refs/heads/release/1", "a2"), ("refs/heads/zmain", "a3")],
            default_branch: Some("refs/heads/zmain"),
            opts: Opts {
                only_protected: true,
                protected: &["release/*"],
                ..OVERWRITE
            },
            pushes: &[("refs/heads/release/1", "a2", None)],
            skipped: &[("refs/heads/zmain", NotProtected)],
            ..BASE
        },
        // keep_divergent_refs.
        Case {
            what: "keep divergent: fast-forwards go, rewinds and forks stay",
            local: &[
                (MAIN, "d1"),
                (FEATURE, "b1"),
                ("refs/heads/hotfix", "a3"),
                ("refs/heads/new", "a1"),
                ("refs/heads/same", "a2"),
                ("refs/heads/stray", "a3"),
            ],
            remote: &[
                (MAIN, "a3"),
                (FEATURE, "b2"),
                ("refs/heads/hotfix", "b2"),
                ("refs/heads/same", "a2"),
                ("refs/heads/stray", "ee"),
            ],
            opts: KEEP,
            pushes: &[(MAIN, "d1", Some("a3")), ("refs/heads/new", "a1", None)],
            divergent: &[FEATURE, "refs/heads/hotfix", "refs/heads/stray"],
            ..BASE
        },
        Case {
            what: "keep divergent: mirror-only refs are untouched, deleted upstream or not",
            local: &[(MAIN, "a3")],
            remote: &[
                (MAIN, "a3"),
                (TOPIC, "a2"),
                ("refs/notes/gone", "a1"),
                (V0, "a1"),
                (V9, "a1"),
            ],
            deleted: &[TOPIC, V0, "refs/notes/gone"],
            opts: Opts {
                extra: &["refs/notes/"],
                ..KEEP
            },
            skipped: &[
                (TOPIC, MirrorOnlyKept),
                ("refs/notes/gone", MirrorOnlyKept),
                (V0, MirrorOnlyKept),
                (V9, MirrorOnlyKept),
            ],
            ..BASE
        },
        Case {
            what: "keep divergent: tags and extra refs follow the same ancestry rule",
            local: &[
                (MAIN, "a3"),
                (NOTES, "d2"),
                ("refs/notes/other", "a1"),
                (V1, "a3"),
                ("refs/tags/v2", "a2"),
                ("refs/tags/v3", "a1"),
            ],
            remote: &[
                (MAIN, "a3"),
                (NOTES, "a3"),
                ("refs/notes/other", "a2"),
                (V1, "a2"),
                ("refs/tags/v2", "a3"),
                ("refs/tags/v3", "b1"),
            ],
            opts: Opts {
                extra: &["refs/notes/"],
                ..KEEP
            },
            pushes: &[(NOTES, "d2", Some("a3")), (V1, "a3", Some("a2"))],
            divergent: &["refs/notes/other", "refs/tags/v2", "refs/tags/v3"],
            ..BASE
        },
        Case {
            what: "keep divergent: an empty mirror still gets the default branch first",
            local: &[("refs/heads/alpha", "a1"), (MAIN, "a3")],
            opts: KEEP,
            pushes: &[(MAIN, "a3", None), ("refs/heads/alpha", "a1", None)],
            ..BASE
        },
        // only_protected_branches.
        Case {
            what: "only protected branches are mirrored, and all tags",
            local: &[
                (MAIN, "a3"),
                ("refs/heads/release/1", "a2"),
                ("refs/heads/release/1/rc", "a1"),
                ("refs/heads/v2", "b1"),
                ("refs/heads/vx", "b2"),
                (FEATURE, "b1"),
                ("refs/tags/anything", "a1"),
            ],
            remote: &[
                (MAIN, "a2"),
                (FEATURE, "b1"),
                ("refs/heads/old", "a1"),
                (V0, "a1"),
                (V9, "a1"),
            ],
            deleted: &["refs/heads/old", V0],
            opts: Opts {
                only_protected: true,
                protected: &["main", "release/*", "v[0-9]*"],
                ..OVERWRITE
            },
            pushes: &[
                (MAIN, "a3", Some("a2")),
                ("refs/heads/release/1", "a2", None),
                ("refs/heads/v2", "b1", None),
                ("refs/tags/anything", "a1", None),
            ],
            deletions: &[(V0, "a1")],
            skipped: &[
                ("refs/heads/old", NotProtected),
                ("refs/heads/release/1/rc", NotProtected),
                ("refs/heads/vx", NotProtected),
                (V9, MirrorOnlyTag),
            ],
            ..BASE
        },
        Case {
            what: "a protected mirror-only branch follows the merge rule",
            local: &[(MAIN, "a3")],
            remote: &[
                (MAIN, "a3"),
                ("refs/heads/release/1", "a2"),
                ("refs/heads/release/2", "b1"),
            ],
            opts: Opts {
                only_protected: true,
                protected: &["main", "release/*"],
                ..OVERWRITE
            },
            deletions: &[("refs/heads/release/1", "a2")],
            skipped: &[("refs/heads/release/2", UnmergedOnMirror)],
            ..BASE
        },
        Case {
            what: "release/** covers nested branches",
            local: &[(MAIN, "a3"), ("refs/heads/release/1/rc", "a1")],
            remote: &[(MAIN, "a3")],
            opts: Opts {
                only_protected: true,
                protected: &["release/**"],
                ..OVERWRITE
            },
            pushes: &[("refs/heads/release/1/rc", "a1", None)],
            ..BASE
        },
        Case {
            what: "no protected patterns means tags only",
            local: &[(MAIN, "a3"), (V1, "a1")],
            opts: Opts {
                only_protected: true,
                ..OVERWRITE
            },
            pushes: &[(V1, "a1", None)],
            skipped: &[(MAIN, NotProtected)],
            ..BASE
        },
        Case {
            what: "protected patterns are ignored unless only_protected_branches is set",
            local: &[(MAIN, "a3"), (FEATURE, "b1")],
            remote: &[(MAIN, "a3")],
            opts: Opts {
                protected: &["main"],
                ..OVERWRITE
            },
            pushes: &[(FEATURE, "b1", None)],
            ..BASE
        },
        Case {
            what: "protected and keep divergent combine",
            local: &[(MAIN, "a3"), (FEATURE, "b2"), (V1, "a3")],
            remote: &[(MAIN, "b2"), (FEATURE, "b1"), (V1, "a1"), (TOPIC, "a1")],
            opts: Opts {
                keep: true,
                only_protected: true,
                protected: &["main"],
                extra: &[],
                regex: None,
            },
            pushes: &[(V1, "a3", Some("a1"))],
            divergent: &[MAIN],
            skipped: &[(FEATURE, NotProtected), (TOPIC, NotProtected)],
            ..BASE
        },
        // branch_regex (GitLab's mirror_branch_regex).
        Case {
            what: "branch_regex mirrors matching branches only, and every tag",
            local: &[
                (MAIN, "a3"),
                ("refs/heads/release/1", "a2"),
                ("refs/heads/prerelease/1", "a2"),
                (FEATURE, "b1"),
                (V1, "a1"),
            ],
            remote: &[(MAIN, "a2"), (FEATURE, "b2")],
            opts: Opts {
                regex: Some("^(main|release/.*)$"),
                ..OVERWRITE
            },
            pushes: &[
                (MAIN, "a3", Some("a2")),
                ("refs/heads/release/1", "a2", None),
                (V1, "a1", None),
            ],
            skipped: &[
                (FEATURE, NotMatchingRegex),
                ("refs/heads/prerelease/1", NotMatchingRegex),
            ],
            ..BASE
        },
        Case {
            what: "branch_regex is unanchored, as in GitLab",
            local: &[
                (MAIN, "a3"),
                ("refs/heads/team/release-2", "a2"),
                (TOPIC, "a1"),
            ],
            remote: &[(MAIN, "a3")],
            opts: Opts {
                regex: Some("release"),
                ..OVERWRITE
            },
            pushes: &[("refs/heads/team/release-2", "a2", None)],
            // main is equal on both sides: nothing to report.
            skipped: &[(TOPIC, NotMatchingRegex)],
            ..BASE
        },
        Case {
            what:
                "branch_regex never deletes mirror-only branches, even merged or deleted upstream",
            local: &[(MAIN, "a3")],
            remote: &[
                (MAIN, "a3"),
                ("refs/heads/merged", "a2"),
                ("refs/heads/gone", "a1"),
                ("refs/heads/other", "a1"),
            ],
            deleted: &["refs/heads/gone"],
            opts: Opts {
                regex: Some("^(main|merged|gone)$"),
                ..OVERWRITE
            },
            skipped: &[
                ("refs/heads/gone", MirrorOnlyKept),
                ("refs/heads/merged", MirrorOnlyKept),
                ("refs/heads/other", NotMatchingRegex),
            ],
            ..BASE
        },
        Case {
            what: "branch_regex still deletes tags deleted upstream",
            local: &[(MAIN, "a3")],
            remote: &[(MAIN, "a3"), (V0, "a1"), (V9, "a1")],
            deleted: &[V0],
            opts: Opts {
                regex: Some("^main$"),
                ..OVERWRITE
            },
            deletions: &[(V0, "a1")],
            skipped: &[(V9, MirrorOnlyTag)],
            ..BASE
        },
        // Defensive cases.
        Case {
            what: "unusable upstream ids leave the ref alone on both sides",
            local: &[
                (MAIN, "a3"),
                ("refs/heads/empty", ""),
                ("refs/heads/null", ZERO),
                ("refs/heads/junk", "zz"),
            ],
            remote: &[
                (MAIN, "a3"),
                ("refs/heads/empty", "a1"),
                ("refs/heads/null", "a2"),
            ],
            ..BASE
        },
        Case {
            what: "a null default tip deletes nothing",
            local: &[(MAIN, ZERO), (FEATURE, "a3")],
            remote: &[(FEATURE, "a3"), (TOPIC, "a1")],
            skipped: &[(TOPIC, UnmergedOnMirror)],
            ..BASE
        },
    ];

    #[test]
    fn plan_table() {
        let g = graph();
        let mut failures = Vec::new();
        for case in CASES {
            let actual = run(case, &g);
            let expected = expected(case);
            if actual != expected {
                failures.push(format!(
                    "{}:\n  expected {expected:?}\n  actual   {actual:?}",
                    case.what
                ));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn overwrite_pushes_do_not_ask_about_ancestry() {
        let g = graph();
        let counting = Counting {
            inner: &g,
            calls: Cell::new(0),
        };
        let case = Case {
            local: &[(MAIN, "a3"), (FEATURE, "b1"), (V1, "a2")],
            remote: &[(MAIN, "ee"), (FEATURE, "b1"), (V1, "a1"), (V9, "a1")],
            ..BASE
        };
        let plan = run(&case, &counting);
        assert_eq!(plan.pushes.len(), 2);
        assert_eq!(counting.calls.get(), 0);
    }

    #[test]
    fn every_ref_gets_at_most_one_verdict_and_the_mirror_converges() {
        // Every combination of upstream/mirror values for a branch, a tag and a note, in
        // every mode, checked against invariants rather than spelled-out answers.
        let g = graph();
        let values = [None, Some("a1"), Some("a3"), Some("b2"), Some("ee")];
        let names = [TOPIC, V1, NOTES];
        let modes = [
            NOTES_TOO,
            Opts {
                keep: true,
                ..NOTES_TOO
            },
            Opts {
                only_protected: true,
                protected: &["main"],
                ..NOTES_TOO
            },
        ];
        for opts in modes {
            let options = opts.build();
            for &ours in &values {
                for &theirs in &values {
                    let mut local = BTreeMap::from([(MAIN.to_owned(), "a3".to_owned())]);
                    let mut remote = local.clone();
                    for name in names {
                        if let Some(v) = ours.filter(|v| *v != "ee") {
                            local.insert(name.to_owned(), v.to_owned());
                        }
                        if let Some(v) = theirs {
                            remote.insert(name.to_owned(), v.to_owned());
                        }
                    }
                    let deleted = names.iter().map(|n| n.to_string()).collect();
                    let input = PlanInput {
                        local: &local,
                        remote: &remote,
                        default_branch: Some(MAIN),
                        deleted_upstream: &deleted,
                        options: &options,
                    };
                    let plan = plan(&input, &g);
                    let ctx = format!("{ours:?} -> {theirs:?} with {options:?}: {plan:?}");

                    let mut seen = BTreeSet::new();
                    let verdicts = plan
                        .pushes
                        .iter()
                        .map(|p| &p.name)
                        .chain(plan.deletions.iter().map(|d| &d.name))
                        .chain(plan.divergent.iter())
                        .chain(plan.skipped.iter().map(|(n, _)| n));
                    for name in verdicts {
                        assert!(seen.insert(name.clone()), "{name} twice in {ctx}");
                    }

                    let mut mirror = remote.clone();
                    for push in &plan.pushes {
                        assert_ne!(Some(&push.new), push.old.as_ref(), "{ctx}");
                        assert_eq!(push.old.as_ref(), remote.get(&push.name), "{ctx}");
                        mirror.insert(push.name.clone(), push.new.clone());
                    }
                    for del in &plan.deletions {
                        assert_eq!(Some(&del.old), remote.get(&del.name), "{ctx}");
                        assert!(!local.contains_key(&del.name), "{ctx}");
                        mirror.remove(&del.name);
                    }
                    for (name, value) in &local {
                        if in_scope(name, &options) && !plan.divergent.contains(name) {
                            assert_eq!(mirror.get(name), Some(value), "{name} in {ctx}");
                        }
                    }
                    if options.keep_divergent_refs {
                        assert!(plan.deletions.is_empty(), "{ctx}");
                    } else {
                        assert!(plan.divergent.is_empty(), "{ctx}");
                    }
                    // Running the plan and planning again must find nothing more to do.
                    let again = PlanInput {
                        remote: &mirror,
                        ..input
                    };
                    let second = super::plan(&again, &g);
                    assert!(second.is_empty(), "not idempotent: {second:?} after {ctx}");
                }
            }
        }
    }

    #[test]
    fn push_batches_and_emptiness() {
        let plan = Plan {
            pushes: vec![
                RefPush {
                    name: MAIN.into(),
                    new: "a3".into(),
                    old: None,
                },
                RefPush {
                    name: V1.into(),
                    new: "a1".into(),
                    old: Some("b1".into()),
                },
            ],
            deletions: vec![RefDelete {
                name: TOPIC.into(),
                old: "a2".into(),
            }],
            divergent: vec![FEATURE.into()],
            skipped: vec![(V9.into(), MirrorOnlyTag)],
            default_first: false,
        };
        let lease = |r: &str, old: &str| format!("--force-with-lease={r}:{old}");
        let update = |r: &str, oid: &str| (r.to_string(), oid.to_string());
        let whole = PushBatch {
            leases: vec![lease(V1, "b1"), lease(TOPIC, "a2")],
            updates: vec![update(MAIN, "a3"), update(V1, "a1")],
            deletions: vec![TOPIC.into()],
        };
        assert_eq!(
            plan.push_batches(usize::MAX, usize::MAX),
            std::slice::from_ref(&whole)
        );
        assert!(!plan.is_empty());
        // A budget too small for two leases: one batch per lease, order kept, every lease with
        // its ref; an item larger than the budget still goes (alone). Creations cost no argument.
        assert_eq!(
            plan.push_batches(40, usize::MAX),
            [
                PushBatch {
                    updates: vec![update(MAIN, "a3")],
                    ..PushBatch::default()
                },
                PushBatch {
                    leases: vec![lease(V1, "b1")],
                    updates: vec![update(V1, "a1")],
                    ..PushBatch::default()
                },
                PushBatch {
                    leases: vec![lease(TOPIC, "a2")],
                    deletions: vec![TOPIC.into()],
                    ..PushBatch::default()
                },
            ]
        );
        // The default branch leading into a branchless mirror goes alone, then the rest.
        let leading = Plan {
            default_first: true,
            ..plan.clone()
        };
        assert_eq!(
            leading.push_batches(usize::MAX, usize::MAX),
            [
                PushBatch {
                    updates: vec![update(MAIN, "a3")],
                    ..PushBatch::default()
                },
                PushBatch {
                    updates: vec![update(V1, "a1")],
                    ..whole.clone()
                },
            ]
        );
        // 10,000 leased updates in 256 KiB batches: nothing lost, nothing repeated, order kept,
        // every batch within budget. 10,000 creations need no argument at all: one batch.
        let many = |leased: bool| Plan {
            pushes: (0..10_000)
                .map(|i| RefPush {
                    name: format!("refs/heads/branch-{i:05}"),
                    new: format!("{i:040x}"),
                    old: leased.then(|| format!("{:040x}", i + 1)),
                })
                .collect(),
            ..Plan::default()
        };
        let batches = many(true).push_batches(256 << 10, usize::MAX);
        assert!(batches.len() > 1, "{}", batches.len());
        for b in &batches {
            assert!(b.leases.iter().map(|a| a.len() + 9).sum::<usize>() <= 256 << 10);
            assert_eq!(b.leases.len(), b.updates.len());
        }
        let names: Vec<&String> = batches
            .iter()
            .flat_map(|b| &b.updates)
            .map(|u| &u.0)
            .collect();
        assert_eq!(names.len(), 10_000);
        assert!(names.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(many(false).push_batches(256 << 10, usize::MAX).len(), 1);

        let only_deletion = Plan {
            pushes: Vec::new(),
            ..plan.clone()
        };
        assert!(!only_deletion.is_empty());
        assert_eq!(
            only_deletion.push_batches(usize::MAX, usize::MAX),
            [PushBatch {
                leases: vec![lease(TOPIC, "a2")],
                deletions: vec![TOPIC.into()],
                ..PushBatch::default()
            }]
        );

        let nothing_to_send = Plan {
            pushes: Vec::new(),
            deletions: Vec::new(),
            ..plan
        };
        assert!(nothing_to_send.is_empty());
        assert!(nothing_to_send
            .push_batches(usize::MAX, usize::MAX)
            .is_empty());
        assert!(Plan::default().is_empty());
    }

    #[test]
    fn scope() {
        let plain = PlanOptions::default();
        let notes = PlanOptions {
            extra_prefixes: vec!["refs/notes/".into()],
            ..PlanOptions::default()
        };
        let protected = PlanOptions {
            only_protected_branches: true,
            protected: vec!["main".into(), "release/*".into()],
            ..PlanOptions::default()
        };
        let everything = PlanOptions {
            extra_prefixes: vec!["refs/".into()],
            ..PlanOptions::default()
        };
        let regex = PlanOptions {
            branch_regex: Some(BranchRegex::new(r"^(main|release/\d+)$").unwrap()),
            ..PlanOptions::default()
        };
        for (name, options, expected) in [
            (MAIN, &plain, true),
            ("refs/heads/a/b/c", &plain, true),
            (V1, &plain, true),
            ("HEAD", &plain, false),
            ("refs/heads/", &plain, false),
            ("refs/tags/", &plain, false),
            ("refs/tags/v1^{}", &plain, false),
            ("refs/remotes/origin/main", &plain, false),
            ("refs/pull/1/head", &plain, false),
            ("refs/merge-requests/1/head", &plain, false),
            ("refs/pipelines/1", &plain, false),
            ("refs/keep-around/a1", &plain, false),
            ("refs/stash", &plain, false),
            ("refs/headsx/main", &plain, false),
            ("heads/main", &plain, false),
            (NOTES, &plain, false),
            (NOTES, &notes, true),
            ("refs/notes/", &notes, false),
            ("refs/notesx/commits", &notes, false),
            (MAIN, &notes, true),
            (MAIN, &protected, true),
            ("refs/heads/release/1", &protected, true),
            ("refs/heads/release/1/rc", &protected, false),
            (FEATURE, &protected, false),
            (V1, &protected, true),
            ("refs/pipelines/1", &everything, true),
            ("refs/remotes/origin/main", &everything, false),
            ("refs/tags/v1^{}", &everything, false),
            ("HEAD", &everything, false),
            (MAIN, &regex, true),
            ("refs/heads/release/12", &regex, true),
            ("refs/heads/release/1/rc", &regex, false),
            ("refs/heads/xmain", &regex, false),
            (FEATURE, &regex, false),
            (V1, &regex, true),
            ("HEAD", &regex, false),
        ] {
            assert_eq!(in_scope(name, options), expected, "{name} with {options:?}");
        }
    }

    #[test]
    fn branch_regex_limits() {
        assert!(BranchRegex::new(&"a".repeat(BRANCH_REGEX_MAX)).is_ok());
        let e = BranchRegex::new(&"a".repeat(BRANCH_REGEX_MAX + 1)).unwrap_err();
        assert!(e.contains("255"), "{e}");
        assert!(BranchRegex::new("").is_err());
        let e = BranchRegex::new("release/(").unwrap_err();
        assert!(e.contains("release/(") && !e.contains('\n'), "{e}");
        // RE2 has no backreferences or look-around; neither does the regex crate.
        assert!(BranchRegex::new(r"(a)\1").is_err());
        assert!(BranchRegex::new("(?=main)").is_err());
        // Linear time: a pattern that backtracking engines take exponential time on.
        let r = BranchRegex::new("^(a+)+$").unwrap();
        assert!(!r.is_match(&format!("{}b", "a".repeat(10_000))));
    }

    #[test]
    fn push_batches_by_ref_count() {
        let push = |name: &str, leased: bool| RefPush {
            name: name.into(),
            new: format!("n-{name}"),
            old: leased.then(|| format!("o-{name}")),
        };
        let plan = Plan {
            pushes: [MAIN, "refs/heads/a", "refs/heads/b", "refs/heads/c", V1]
                .iter()
                .enumerate()
                .map(|(i, n)| push(n, i % 2 == 1))
                .collect(),
            deletions: ["refs/heads/x", "refs/heads/y"]
                .iter()
                .map(|n| RefDelete {
                    name: n.to_string(),
                    old: format!("o-{n}"),
                })
                .collect(),
            default_first: true,
            ..Plan::default()
        };
        // (max refs, refs per batch): the leading default branch alone, then full batches, the
        // deletions filling the last one and counting like updates.
        for (max, sizes) in [
            (1, vec![1, 1, 1, 1, 1, 1, 1]),
            (2, vec![1, 2, 2, 2]),
            (3, vec![1, 3, 3]),
            (5, vec![1, 5, 1]),
            (6, vec![1, 6]),
            (usize::MAX, vec![1, 6]),
        ] {
            let batches = plan.push_batches(usize::MAX, max);
            let got: Vec<usize> = batches
                .iter()
                .map(|b| b.updates.len() + b.deletions.len())
                .collect();
            assert_eq!(got, sizes, "max {max}");
            // Nothing lost, nothing repeated, order kept, every lease with its ref.
            let names: Vec<&str> = batches
                .iter()
                .flat_map(|b| {
                    b.updates
                        .iter()
                        .map(|u| u.0.as_str())
                        .chain(b.deletions.iter().map(String::as_str))
                })
                .collect();
            let want: Vec<&str> = plan
                .pushes
                .iter()
                .map(|p| p.name.as_str())
                .chain(plan.deletions.iter().map(|d| d.name.as_str()))
                .collect();
            assert_eq!(names, want, "max {max}");
            for b in &batches {
                let leased = b
                    .updates
                    .iter()
                    .filter(|u| plan.pushes.iter().any(|p| p.name == u.0 && p.old.is_some()))
                    .count();
                assert_eq!(b.leases.len(), leased + b.deletions.len(), "max {max}");
            }
        }
        // Both limits at once: the tighter one wins per batch.
        let batches = plan.push_batches(60, 3);
        assert!(batches
            .iter()
            .all(|b| b.updates.len() + b.deletions.len() <= 3));
        assert!(batches.iter().all(
            |b| b.leases.iter().map(|l| l.len() + 9).sum::<usize>() <= 60 || b.leases.len() == 1
        ));
    }

    /// A history for `split_by_size`: commits with their parents (first parent first) and the
    /// bytes of the objects each adds.
    struct History(BTreeMap<String, (Vec<String>, u64)>);

    impl History {
        fn new() -> History {
            History(BTreeMap::new())
        }
        fn add(&mut self, id: &str, parents: &[&str], bytes: u64) {
            let parents = parents.iter().map(|p| p.to_string()).collect();
            self.0.insert(id.into(), (parents, bytes));
        }
        /// A line of `n` commits `<prefix>1..<prefix>n` of `bytes` each on top of `base`.
        fn line(&mut self, prefix: &str, base: Option<&str>, n: usize, bytes: u64) {
            for i in 1..=n {
                let parent = if i == 1 {
                    base.map(str::to_string)
                } else {
                    Some(format!("{prefix}{}", i - 1))
                };
                let parents: Vec<&str> = parent.iter().map(String::as_str).collect();
                self.add(&format!("{prefix}{i}"), &parents, bytes);
            }
        }
        fn reach(&self, tips: &[&str]) -> BTreeSet<String> {
            let mut seen = BTreeSet::new();
            let mut todo: Vec<String> = tips.iter().map(|t| t.to_string()).collect();
            while let Some(c) = todo.pop() {
                if let Some((parents, _)) = self.0.get(&c) {
                    if seen.insert(c) {
                        todo.extend(parents.iter().cloned());
                    }
                }
            }
            seen
        }
    }

    impl PackSizes for History {
        fn size(&self, tips: &[&str], haves: &[&str]) -> Result<u64, String> {
            let have = self.reach(haves);
            Ok(self
                .reach(tips)
                .difference(&have)
                .map(|c| self.0[c].1)
                .sum())
        }
        fn first_parents(&self, tip: &str, haves: &[&str]) -> Result<Vec<String>, String> {
            let have = self.reach(haves);
            let mut chain = Vec::new();
            let mut at = Some(tip.to_string());
            while let Some(c) = at.filter(|c| self.0.contains_key(c) && !have.contains(c)) {
                at = self.0[&c].0.first().cloned();
                chain.push(c);
            }
            chain.reverse();
            Ok(chain)
        }
    }

    #[test]
    fn split_by_size() {
        // main: m1..m10 of 100 bytes; a, b, c: one 50-byte commit each on m10; t: a tag (10
        // bytes) on m5; side: an orphan line s1..s4 of 100 bytes; big: one 500-byte commit on m10.
        let mut h = History::new();
        h.line("m", None, 10, 100);
        for b in ["a", "b", "c"] {
            h.add(b, &["m10"], 50);
        }
        h.add("t", &["m5"], 10);
        h.line("s", None, 4, 100);
        h.add("big", &["m10"], 500);
        let push = |name: &str, new: &str, old: Option<&str>| RefPush {
            name: name.into(),
            new: new.into(),
            old: old.map(str::to_string),
        };
        let plan_of = |pushes: Vec<RefPush>, default_first: bool| Plan {
            pushes,
            default_first,
            ..Plan::default()
        };
        let gone = RefDelete {
            name: "refs/heads/gone".into(),
            old: "m3".into(),
        };
        let (a, b, c) = ("refs/heads/a", "refs/heads/b", "refs/heads/c");
        let (side, big, t) = ("refs/heads/side", "refs/heads/big", "refs/tags/t");
        let first_sync = Plan {
            deletions: vec![gone.clone()],
            ..plan_of(
                vec![
                    push(MAIN, "m10", None),
                    push(a, "a", None),
                    push(b, "b", None),
                    push(c, "c", None),
                    push(t, "t", None),
                ],
                true,
            )
        };
        struct Case<'a> {
            what: &'a str,
            plan: Plan,
            haves: Vec<&'a str>,
            max_pack: u64,
            max_refs: usize,
            want: Vec<Plan>,
        }
        let cases = vec![
            Case {
                what: "everything fits: the plan as it is",
                plan: first_sync.clone(),
                haves: vec![],
                max_pack: 1500,
                max_refs: usize::MAX,
                want: vec![first_sync.clone()],
            },
            Case {
                what: "empty mirror, main in steps of at most 350 bytes, then the rest together",
                plan: first_sync.clone(),
                haves: vec![],
                max_pack: 350,
                max_refs: usize::MAX,
                want: vec![
                    plan_of(vec![push(MAIN, "m3", None)], true),
                    plan_of(vec![push(MAIN, "m6", Some("m3"))], false),
                    plan_of(vec![push(MAIN, "m9", Some("m6"))], false),
                    plan_of(vec![push(MAIN, "m10", Some("m9"))], false),
                    Plan {
                        deletions: vec![gone.clone()],
                        ..plan_of(
                            vec![
                                push(a, "a", None),
                                push(b, "b", None),
                                push(c, "c", None),
                                push(t, "t", None),
                            ],
                            false,
                        )
                    },
                ],
            },
            Case {
                what: "the same with at most 2 refs per part",
                plan: first_sync.clone(),
                haves: vec![],
                max_pack: 350,
                max_refs: 2,
                want: vec![
                    plan_of(vec![push(MAIN, "m3", None)], true),
                    plan_of(vec![push(MAIN, "m6", Some("m3"))], false),
                    plan_of(vec![push(MAIN, "m9", Some("m6"))], false),
                    plan_of(vec![push(MAIN, "m10", Some("m9"))], false),
                    plan_of(vec![push(a, "a", None), push(b, "b", None)], false),
                    Plan {
                        deletions: vec![gone.clone()],
                        ..plan_of(vec![push(c, "c", None), push(t, "t", None)], false)
                    },
                ],
            },
            Case {
                what: "the mirror has history up to m4: steps lease on its value and start there",
                plan: plan_of(
                    vec![push(MAIN, "m10", Some("m4")), push(a, "a", None)],
                    false,
                ),
                haves: vec!["m4"],
                max_pack: 250,
                max_refs: usize::MAX,
                want: vec![
                    plan_of(vec![push(MAIN, "m6", Some("m4"))], false),
                    plan_of(vec![push(MAIN, "m8", Some("m6"))], false),
                    plan_of(
                        vec![push(MAIN, "m10", Some("m8")), push(a, "a", None)],
                        false,
                    ),
                ],
            },
            Case {
                what: "refs that fit alone but not together go in several parts",
                plan: plan_of(
                    vec![
                        push(a, "a", None),
                        push(b, "b", None),
                        push(c, "c", None),
                        push(side, "s4", None),
                    ],
                    false,
                ),
                haves: vec!["m10"],
                max_pack: 120,
                max_refs: usize::MAX,
                want: vec![
                    plan_of(vec![push(a, "a", None), push(b, "b", None)], false),
                    plan_of(vec![push(c, "c", None)], false),
                    plan_of(vec![push(side, "s1", None)], false),
                    plan_of(vec![push(side, "s2", Some("s1"))], false),
                    plan_of(vec![push(side, "s3", Some("s2"))], false),
                    plan_of(vec![push(side, "s4", Some("s3"))], false),
                ],
            },
            Case {
                what: "one commit too big goes as it is; a tag is never stepped",
                plan: plan_of(
                    vec![push(big, "big", Some("m10")), push(t, "t", None)],
                    false,
                ),
                haves: vec!["m10"],
                max_pack: 100,
                max_refs: usize::MAX,
                want: vec![
                    plan_of(vec![push(big, "big", Some("m10"))], false),
                    plan_of(vec![push(t, "t", None)], false),
                ],
            },
        ];
        for case in &cases {
            let haves: Vec<String> = case.haves.iter().map(|h| h.to_string()).collect();
            let got = case
                .plan
                .split_by_size(case.max_pack, case.max_refs, &h, &haves)
                .unwrap();
            assert_eq!(got, case.want, "{}", case.what);
            // Every part fits when a split was possible, and the parts end where the plan does.
            let mut have = haves.clone();
            let mut last: BTreeMap<&str, &str> = BTreeMap::new();
            for part in &got {
                let tips: Vec<&str> = part.pushes.iter().map(|p| p.new.as_str()).collect();
                let hv: Vec<&str> = have.iter().map(String::as_str).collect();
                let bytes = h.size(&tips, &hv).unwrap();
                assert!(
                    bytes <= case.max_pack || tips.len() == 1,
                    "{}: {bytes}",
                    case.what
                );
                assert!(part.pushes.len() <= case.max_refs, "{}", case.what);
                have.extend(tips.iter().map(|t| t.to_string()));
                for p in &part.pushes {
                    last.insert(&p.name, &p.new);
                }
            }
            let want: BTreeMap<&str, &str> = case
                .plan
                .pushes
                .iter()
                .map(|p| (p.name.as_str(), p.new.as_str()))
                .collect();
            assert_eq!(last, want, "{}", case.what);
        }

        // Estimates: one for a plan that fits; one per part of `max_refs` refs that fit together.
        struct Counting<'a>(&'a History, std::cell::Cell<usize>);
        impl PackSizes for Counting<'_> {
            fn size(&self, tips: &[&str], haves: &[&str]) -> Result<u64, String> {
                self.1.set(self.1.get() + 1);
                self.0.size(tips, haves)
            }
            fn first_parents(&self, tip: &str, haves: &[&str]) -> Result<Vec<String>, String> {
                self.0.first_parents(tip, haves)
            }
        }
        let mut h = History::new();
        h.line("m", None, 10, 100);
        let branches: Vec<RefPush> = (0..40)
            .map(|i| {
                h.add(&format!("b{i}"), &["m10"], 10);
                push(&format!("refs/heads/b{i:02}"), &format!("b{i}"), None)
            })
            .collect();
        let plan = plan_of(branches, false);
        let haves = vec!["m10".to_string()];
        for (max_pack, max_refs, parts, estimates) in [
            (1000, 5, 1, 1),
            (60, 5, 8, 9),
            // No ref limit: the whole rest does not fit, so refs go one by one (about one
            // estimate per ref).
            (60, usize::MAX, 7, 48),
        ] {
            let counting = Counting(&h, std::cell::Cell::new(0));
            let got = plan
                .split_by_size(max_pack, max_refs, &counting, &haves)
                .unwrap();
            assert_eq!(
                (got.len(), counting.1.get()),
                (parts, estimates),
                "{max_pack} {max_refs}"
            );
        }
    }
}
