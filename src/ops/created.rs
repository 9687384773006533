//! The server-wide record of the targets server rules created (`create_missing`), and
//! `propagate_deletion`: `sweep` deletes such a target once its repository is gone.
//!
//! The record cannot live in the repository (its `pushmirror/` goes with it), so it is kept
//! under the server file's `state_dir:`, one file per created target:
//! `<state_dir>/created/<rule>--<hex of ${name}>.json` (mode 0600; a symlinked directory or
//! file is refused). Nothing is ever deleted that is not recorded there, whose rule does not
//! still say `propagate_deletion: true` and still maps the name to the recorded URL, or whose
//! repository still exists under the root.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::ServerConfig;

/// One created target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// The rule that created it.
    pub rule: String,
    /// `${name}` of its repository (its path under the server's root, without `.git`).
    pub name: String,
    /// The target's URL without credentials.
    pub url: String,
    pub created_at: u64,
    /// What the creation did.
    pub how: String,
}

fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join("created")
}

fn file_of(state_dir: &Path, rule: &str, name: &str) -> PathBuf {
    let hex: String = name.bytes().map(|b| format!("{b:02x}")).collect();
    dir(state_dir).join(format!("{rule}--{hex}.json"))
}

/// Records that `rec.rule` created `rec.url` for the repository `rec.name`.
pub fn record(state_dir: &Path, rec: &Record) -> std::io::Result<()> {
    crate::paths::refuse_symlink(state_dir)?;
    std::fs::create_dir_all(state_dir)?;
    crate::paths::ensure_dir(&dir(state_dir))?;
    let path = file_of(state_dir, &rec.rule, &rec.name);
    crate::paths::refuse_symlink(&path)?;
    let text = serde_json::to_vec_pretty(rec).map_err(std::io::Error::other)?;
    crate::paths::write_atomic(&path, &text, 0o600)
}

/// Every record, with its file; unreadable ones are reported in `bad` and kept.
pub fn list(state_dir: &Path) -> (Vec<(PathBuf, Record)>, Vec<String>) {
    let (mut out, mut bad) = (Vec::new(), Vec::new());
    let d = dir(state_dir);
    if std::fs::symlink_metadata(&d).is_ok_and(|m| m.file_type().is_symlink()) {
        bad.push(format!(
            "{} is a symlink; refusing to follow it",
            d.display()
        ));
        return (out, bad);
    }
    for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
        let p = e.path();
        if p.extension().is_none_or(|x| x != "json") {
            continue;
        }
        if e.file_type().is_ok_and(|t| t.is_symlink()) {
            bad.push(format!("{} is a symlink; ignored", p.display()));
            continue;
        }
        match std::fs::read(&p)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<Record>(&b).map_err(|e| e.to_string()))
        {
            Ok(r) => out.push((p, r)),
            Err(e) => bad.push(format!("{}: {e}; ignored", p.display())),
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    (out, bad)
}

/// What `propagate` decided for one record (pure; see `decide`).
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// The repository still exists, or its rule no longer asks for deletions: nothing to do.
    Keep,
    /// Kept, and why (said once per sweep).
    KeepBecause(String),
    Delete,
}

/// Whether the target of `rec` is to be deleted: its rule still exists with
/// `propagate_deletion`, still maps the name to the recorded URL, and the repository is gone.
///
/// `live` holds the target URLs (without credentials) of every repository still under the
/// root, under every rule: a target one of them still uses (two names mapped to one target by
/// `name_style`, a repository moved to a name that maps to the same target) is kept. A record
/// whose name is not a plain relative path (edited by hand: `..`, `/x`) is never acted on.
pub fn decide(
    server: &ServerConfig,
    rec: &Record,
    repo_exists: bool,
    live: &std::collections::BTreeSet<String>,
) -> Decision {
    let Some(rule) = server.rules.iter().find(|r| r.name == rec.rule) else {
        return Decision::KeepBecause(format!("rule `{}` no longer exists", rec.rule));
    };
    if !rule.propagate_deletion || repo_exists {
        return Decision::Keep;
    }
    if !plain_name(&rec.name) {
        return Decision::KeepBecause(format!(
            "the record's name {:?} is not a plain path under the root (edited by hand?)",
            rec.name
        ));
    }
    let now = rule
        .for_repo(&rec.name)
        .map(|m| crate::url::split_credentials(&m.url).0);
    if now.as_deref() != Some(rec.url.as_str()) {
        return Decision::KeepBecause(format!(
            "rule `{}` no longer maps `{}` to {}",
            rec.rule,
            rec.name,
            crate::url::mask(&rec.url)
        ));
    }
    if live.contains(&rec.url) {
        return Decision::KeepBecause(format!(
            "{} is still the target of a repository under the root",
            crate::url::mask(&rec.url)
        ));
    }
    Decision::Delete
}

/// Whether `name` is what `rule_name` gives: a relative path of plain components (no `.`,
/// `..` or empty component, no control character).
fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && !name.chars().any(char::is_control)
        && name
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..")
}

/// The target URLs (without credentials) of every repository in `repos` under every rule.
fn live_targets(
    server: &ServerConfig,
    root: &Path,
    repos: &[PathBuf],
) -> std::collections::BTreeSet<String> {
    let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    let mut out = std::collections::BTreeSet::new();
    for repo in repos {
        let dir = std::fs::canonicalize(repo).unwrap_or_else(|_| repo.clone());
        let Some(rel) = dir.strip_prefix(&root).ok().and_then(|r| r.to_str()) else {
            continue;
        };
        let name = rel
            .strip_suffix(".git")
            .unwrap_or(rel)
            .trim_end_matches('/');
        for rule in &server.rules {
            if let Some(m) = rule.for_repo(name) {
                out.insert(crate::url::split_credentials(&m.url).0);
            }
        }
    }
    out
}

/// A local target is deleted only where its rule's URL puts it: no symlink among the
/// directories `${name}` contributes (a symlink swapped in would take the deletion elsewhere).
/// `template` is the rule's URL, `path` the target's.
fn local_target_is_in_place(template: &str, path: &str) -> Result<(), String> {
    let template = crate::url::split_credentials(template).0;
    let template = template.strip_prefix("file://").unwrap_or(&template);
    let fixed = template.split("${name}").next().unwrap_or("");
    // The directory the template fixes (`/srv/mirrors/` of `/srv/mirrors/${name}.git`).
    let base = match fixed.rfind('/') {
        Some(i) => &fixed[..=i],
        None => return Err(format!("{path}: not under a fixed directory")),
    };
    let path = path.strip_prefix("file://").unwrap_or(path);
    let rest = path
        .strip_prefix(base)
        .ok_or_else(|| format!("{path}: not under {base}"))?;
    let mut p = PathBuf::from(base);
    for c in rest.split('/').filter(|c| !c.is_empty()) {
        if c == "." || c == ".." {
            return Err(format!("{path}: has a `{c}` component"));
        }
        p.push(c);
        if std::fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(format!("{} is a symlink", p.display()));
        }
    }
    Ok(())
}

/// `sweep`'s deletion step: for every recorded target whose repository is gone from `root`,
/// deletes it (see `decide`), forgets the record, prints a line and runs the server's
/// `notify` command with a `target_deleted` event. Returns the number of failures (each
/// printed; its record is kept for the next sweep).
pub fn propagate(server: &ServerConfig, server_path: &Path, root: &Path, exe: &Path) -> usize {
    let Some(state_dir) = &server.state_dir else {
        return 0;
    };
    if !server.rules.iter().any(|r| r.propagate_deletion) {
        return 0;
    }
    // A root that is not there, or holds no repository at all (an unmounted file system),
    // says nothing about any repository being removed.
    let (repos, unreadable) = crate::ops::fleet::find_all(root);
    // A directory that cannot be read may hide a repository that is still there.
    if !unreadable.is_empty() {
        eprintln!(
            "git-pushmirror: sweep: {} director{} under {} could not be read; deletions are not propagated",
            unreadable.len(),
            if unreadable.len() == 1 { "y" } else { "ies" },
            root.display()
        );
        return 0;
    }
    if repos.is_empty() {
        eprintln!(
            "git-pushmirror: sweep: no repository under {}; deletions are not propagated",
            root.display()
        );
        return 0;
    }
    let (records, bad) = list(state_dir);
    let mut failures = 0;
    for b in bad {
        eprintln!("git-pushmirror: sweep: {b}");
    }
    let runtime = crate::paths::runtime_dir(server.runtime_dir.as_deref());
    let live = live_targets(server, root, &repos);
    for (file, rec) in records {
        let exists = !repository_gone(root, &rec.name);
        let rule = match decide(server, &rec, exists, &live) {
            Decision::Keep => continue,
            Decision::KeepBecause(why) => {
                if !exists {
                    println!(
                        "sweep: kept {} of removed repository {}: {why}",
                        crate::url::mask(&rec.url),
                        rec.name
                    );
                }
                continue;
            }
            Decision::Delete => server.rules.iter().find(|r| r.name == rec.rule),
        };
        let Some((rule, m)) = rule.and_then(|r| r.for_repo(&rec.name).map(|m| (r, m))) else {
            continue;
        };
        if crate::url::validate(&m.url, m.allow_insecure_http).ok()
            == Some(crate::url::Scheme::Local)
        {
            if let Err(e) = local_target_is_in_place(&rule.url, &rec.url) {
                println!(
                    "sweep: kept {} of removed repository {}: {e}; nothing deleted",
                    crate::url::mask(&rec.url),
                    rec.name
                );
                continue;
            }
        }
        let timeout = m
            .timeout
            .map_or(std::time::Duration::from_secs(120), |d| d.0);
        match crate::mirror::create::delete_target(&m, server_path, exe, &runtime, timeout) {
            Ok(how) => {
                let _ = std::fs::remove_file(&file);
                println!(
                    "sweep: deleted {} ({how}): repository {} is gone (rule {}, propagate_deletion)",
                    crate::url::mask(&rec.url),
                    rec.name,
                    rec.rule
                );
                notify(server, root, &rec, &how);
            }
            Err(e) => {
                failures += 1;
                eprintln!(
                    "git-pushmirror: sweep: could not delete {} of removed repository {}: {e}",
                    crate::url::mask(&rec.url),
                    rec.name
                );
            }
        }
    }
    failures
}

fn notify(server: &ServerConfig, root: &Path, rec: &Record, how: &str) {
    let Some(cfg) = server
        .notify
        .as_ref()
        .filter(|n| !n.command.trim().is_empty())
    else {
        return;
    };
    let doc = serde_json::json!({
        "event": "target_deleted",
        "events": ["target_deleted"],
        "time": crate::time::rfc3339(crate::time::now_ms()),
        "repository": root.join(format!("{}.git", rec.name)),
        "mirror": rec.rule,
        "url": crate::url::mask(&rec.url),
        "deleted": how,
        "created_at": crate::time::rfc3339(rec.created_at),
    });
    let mut bytes = serde_json::to_vec_pretty(&doc).unwrap_or_default();
    bytes.push(b'\n');
    let timeout = cfg
        .timeout
        .map_or(std::time::Duration::from_secs(30), |d| d.0);
    if let Err(e) = crate::ops::notify::run(&cfg.command, &bytes, root, timeout) {
        eprintln!("git-pushmirror: sweep: notify target_deleted: {e}");
    }
}

/// Whether the repository `name` (with or without `.git`) is known to be gone from `root`:
/// only "not found" says so. Any other error (no permission on a directory on the way, a
/// symlink loop) leaves its fate unknown, and its target is kept.
fn repository_gone(root: &Path, name: &str) -> bool {
    [root.join(format!("{name}.git")), root.join(name)]
        .iter()
        .all(|p| {
            matches!(std::fs::symlink_metadata(p), Err(e) if e.kind() == std::io::ErrorKind::NotFound)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_repository_not_found_is_gone() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir_all(r.join("team/app.git")).unwrap();
        std::fs::create_dir_all(r.join("team/plain")).unwrap();
        assert!(!repository_gone(r, "team/app"));
        assert!(!repository_gone(r, "team/plain"));
        assert!(repository_gone(r, "team/old"));
        // A symlink loop on the way: the path cannot be checked, so it is not gone.
        std::os::unix::fs::symlink("loop", r.join("loop")).unwrap();
        assert!(!repository_gone(r, "loop/app"));
    }
    use crate::config::MirrorConfig;

    #[test]
    fn only_recorded_targets_of_gone_repositories_under_the_same_rule_are_deleted() {
        let mut rule = MirrorConfig::new("backup", "/srv/mirrors/${name}.git");
        rule.propagate_deletion = true;
        rule.create_missing = Some(true);
        let server = ServerConfig {
            rules: vec![rule.clone()],
            ..ServerConfig::default()
        };
        let rec = Record {
            rule: "backup".into(),
            name: "team/app".into(),
            url: "/srv/mirrors/team/app.git".into(),
            created_at: 0,
            how: "x".into(),
        };
        let none = std::collections::BTreeSet::new();
        assert_eq!(decide(&server, &rec, false, &none), Decision::Delete);
        // Still the target of another repository (two names mapped to one target, a move).
        let live = std::collections::BTreeSet::from([rec.url.clone()]);
        assert!(matches!(
            decide(&server, &rec, false, &live),
            Decision::KeepBecause(_)
        ));
        // A record edited by hand to reach outside the targets' directory.
        for name in [
            "team/../../etc/x",
            "../x",
            "/etc/x",
            "team//app",
            "./x",
            "a\nb",
            "",
        ] {
            let name = name.to_string();
            let hostile = Record {
                url: format!("/srv/mirrors/{name}.git"),
                name,
                ..rec.clone()
            };
            assert!(
                matches!(
                    decide(&server, &hostile, false, &none),
                    Decision::KeepBecause(_)
                ),
                "{hostile:?}"
            );
        }
        assert_eq!(decide(&server, &rec, true, &none), Decision::Keep);
        let mut off = server.clone();
        off.rules[0].propagate_deletion = false;
        assert_eq!(decide(&off, &rec, false, &none), Decision::Keep);
        let mut moved = server.clone();
        moved.rules[0].url = "/srv/other/${name}.git".into();
        assert!(matches!(
            decide(&moved, &rec, false, &none),
            Decision::KeepBecause(_)
        ));
        let mut excluded = server.clone();
        excluded.rules[0].exclude = vec!["team/*".into()];
        assert!(matches!(
            decide(&excluded, &rec, false, &none),
            Decision::KeepBecause(_)
        ));
        let gone = ServerConfig::default();
        assert!(matches!(
            decide(&gone, &rec, false, &none),
            Decision::KeepBecause(_)
        ));
    }

    #[test]
    fn local_targets_are_deleted_only_in_place() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("m");
        std::fs::create_dir_all(base.join("team/app.git")).unwrap();
        std::fs::create_dir_all(tmp.path().join("elsewhere/app.git")).unwrap();
        std::os::unix::fs::symlink(tmp.path().join("elsewhere"), base.join("swapped")).unwrap();
        let b = base.display();
        let tpl = format!("{b}/${{name}}.git");
        assert!(local_target_is_in_place(&tpl, &format!("{b}/team/app.git")).is_ok());
        assert!(local_target_is_in_place(
            &format!("file://{tpl}"),
            &format!("file://{b}/team/app.git")
        )
        .is_ok());
        assert!(local_target_is_in_place(&tpl, &format!("{b}/swapped/app.git")).is_err());
        assert!(local_target_is_in_place(&tpl, &format!("{b}/team/../../x.git")).is_err());
        assert!(local_target_is_in_place(&tpl, "/etc/x.git").is_err());
        // The fixed part may itself be a symlink (an admin's choice, not ours to judge).
        let via = tmp.path().join("via");
        std::os::unix::fs::symlink(&base, &via).unwrap();
        let v = via.display();
        assert!(local_target_is_in_place(
            &format!("{v}/${{name}}.git"),
            &format!("{v}/team/app.git")
        )
        .is_ok());
    }

    #[test]
    fn records_are_private_files_and_symlinks_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let sd = tmp.path().join("state");
        let rec = Record {
            rule: "backup".into(),
            name: "a/b c".into(),
            url: "/m/a/b c.git".into(),
            created_at: 1,
            how: "x".into(),
        };
        record(&sd, &rec).unwrap();
        let (all, bad) = list(&sd);
        assert!(bad.is_empty());
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].1, rec);
        let mode = std::fs::metadata(&all[0].0).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&sd, &link).unwrap();
        assert!(record(&link, &rec).is_err());
    }
}
