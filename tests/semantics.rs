mod common;
use common::*;

// Mirroring semantics (spec §5) and the CLI contract around them (spec §7), end to end: real
// `git` clients, real bare repositories as upstream and mirrors, the hook and the detached
// flusher. Nothing here asserts wall-clock times; everything polls with generous deadlines.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

const LONG: Duration = Duration::from_secs(180);

/// `add NAME URL --debounce 100ms <extra>`.
fn add(env: &Env, up: &Path, name: &str, url: &str, extra: &[&str]) {
    let mut args = vec!["add", name, url, "--debounce", "100ms"];
    args.extend_from_slice(extra);
    env.pm_ok(up, &args);
}

/// The value of one ref, if it exists.
fn ref_of(env: &Env, repo: &Path, name: &str) -> Option<String> {
    env.refs(repo).get(name).cloned()
}

/// `git push <dest> <refspecs>` from a working copy straight to some repository (e.g. a mirror,
/// behind upstream's back).
fn push_to(env: &Env, wc: &Path, dest: &Path, refspecs: &[&str]) {
    let mut args = vec!["push", "-q", "--force", s(dest)];
    args.extend_from_slice(refspecs);
    env.git(wc, &args);
}

/// Waits until nothing is left to do: every enabled mirror has confirmed everything and no
/// flusher of this test runs any more. Returns the final status document.
fn settle(env: &Env, up: &Path) -> serde_json::Value {
    let quiet = wait_until(LONG, || {
        let doc = env.status_json(up);
        doc["mirrors"].as_array().unwrap().iter().all(|m| {
            m["enabled"] == false
                || (m["pending_updates"] == 0
                    && (m["update_status"] == "finished" || m["update_status"] == "failed"))
        })
    });
    assert!(
        quiet,
        "mirrors never settled: {}\nlog:\n{}",
        env.status_json(up),
        env.log(up)
    );
    assert!(
        env.wait_flushers_gone(),
        "a flusher is still running\nlog:\n{}",
        env.log(up)
    );
    env.status_json(up)
}

/// Waits until `f(mirror refs)` holds, with the mirror's refs and upstream's log in the failure.
fn wait_refs(
    env: &Env,
    up: &Path,
    mirror: &Path,
    what: &str,
    mut f: impl FnMut(&BTreeMap<String, String>) -> bool,
) {
    let ok = wait_until(LONG, || f(&env.heads_and_tags(mirror)));
    assert!(
        ok,
        "{what}: mirror {} never got there\nmirror: {:?}\nupstream: {:?}\nstatus: {}\nlog:\n{}",
        mirror.display(),
        env.heads_and_tags(mirror),
        env.heads_and_tags(up),
        env.status_json(up),
        env.log(up)
    );
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect()
}

fn is_ancestor(env: &Env, repo: &Path, a: &str, b: &str) -> bool {
    env.git_out(repo, &["merge-base", "--is-ancestor", a, b])
        .status
        .success()
}

/// A TCP port nothing listens on (bound, read, released).
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Spec §5.3: in default (overwrite) mode a commit that exists only on the mirror is lost there;
/// the mirror ends equal to upstream.
#[test]
fn default_mode_overwrites_a_commit_pushed_directly_into_the_mirror() {
    let env = Env::new();
    let up = env.upstream("up.git");
    let mirror = env.bare("mirror.git", &[]);
    add(&env, &up, "m", s(&mirror), &[]);

    let wc = env.clone(&up, "wc");
    let c1 = env.commit(&wc, "one");
    env.git(&wc, &["tag", "light"]);
    env.git(&wc, &["tag", "-a", "-m", "annotated", "annotated"]);
    env.push(&wc, &["main", "light", "annotated"]);
    env.wait_mirrored(&up, &mirror);
    settle(&env, &up);

    // Someone pushes a commit straight into the mirror's main.
    env.git(&wc, &["checkout", "-q", "-b", "rogue"]);
    let rogue = env.commit(&wc, "only on the mirror");
    push_to(&env, &wc, &mirror, &["rogue:refs/heads/main"]);
    assert_eq!(
        ref_of(&env, &mirror, "refs/heads/main"),
        Some(rogue.clone())
    );

    // Upstream moves on without it.
    env.git(&wc, &["checkout", "-q", "main"]);
    let c2 = env.commit(&wc, "two");
    assert!(is_ancestor(&env, &wc, &c1, &c2));
    assert!(!is_ancestor(&env, &wc, &rogue, &c2));
    // Upstream also moves both tags (tags need a forced update on the mirror too).
    env.git(&wc, &["tag", "-f", "light"]);
    env.git(&wc, &["tag", "-f", "-a", "-m", "moved", "annotated"]);
    env.push(&wc, &["--force", "main", "light", "annotated"]);

    env.wait_mirrored(&up, &mirror);
    let doc = settle(&env, &up);
    assert_eq!(ref_of(&env, &mirror, "refs/heads/main"), Some(c2.clone()));
    assert_eq!(ref_of(&env, &mirror, "refs/tags/light"), Some(c2.clone()));
    assert_eq!(env.heads_and_tags(&mirror), env.heads_and_tags(&up));
    assert!(
        !is_ancestor(&env, &mirror, &rogue, "refs/heads/main"),
        "the mirror-only commit should be gone from main"
    );
    let m = &doc["mirrors"][0];
    assert_eq!(m["update_status"], "finished", "{doc}");
    assert!(m["last_error"].is_null(), "{doc}");
    assert!(strings(&m["divergent_refs"]).is_empty(), "{doc}");
    assert_eq!(env.pm(&up, &["status"]).status.code(), Some(0));
}

/// Spec §5.5: with keep_divergent_refs a branch that diverged on the mirror is left alone and
/// reported (status failed, divergent_refs, exit 1) while every other ref still updates.
#[test]
fn keep_divergent_refs_keeps_and_reports_a_diverged_branch_and_updates_the_rest() {
    let env = Env::new();
    let up = env.upstream("up.git");
    let mirror = env.bare("mirror.git", &[]);
    add(&env, &up, "keep", s(&mirror), &["--keep-divergent-refs"]);

    let wc = env.clone(&up, "wc");
    env.commit(&wc, "one");
    env.git(&wc, &["branch", "feature"]);
    env.push(&wc, &["main", "feature"]);
    env.wait_mirrored(&up, &mirror);
    let doc = settle(&env, &up);
    assert_eq!(doc["mirrors"][0]["update_status"], "finished", "{doc}");

    // The mirror's feature gets a commit upstream does not have.
    env.git(&wc, &["checkout", "-q", "-b", "rogue", "feature"]);
    let rogue = env.commit(&wc, "only on the mirror");
    push_to(&env, &wc, &mirror, &["rogue:refs/heads/feature"]);

    // Upstream moves feature elsewhere, and main, and adds a branch and a tag.
    env.git(&wc, &["checkout", "-q", "feature"]);
    let feature2 = env.commit(&wc, "feature upstream");
    env.git(&wc, &["checkout", "-q", "main"]);
    let main2 = env.commit(&wc, "two");
    env.git(&wc, &["branch", "other"]);
    env.git(&wc, &["tag", "-a", "-m", "v2", "v2"]);
    env.push(&wc, &["main", "feature", "other", "v2"]);

    wait_refs(&env, &up, &mirror, "main, other and v2 updated", |r| {
        r.get("refs/heads/main") == Some(&main2)
            && r.get("refs/heads/other") == Some(&main2)
            && r.contains_key("refs/tags/v2")
    });
    let doc = settle(&env, &up);
    let m = &doc["mirrors"][0];
    assert_eq!(m["update_status"], "failed", "{doc}");
    assert_eq!(
        strings(&m["divergent_refs"]),
        vec!["refs/heads/feature"],
        "{doc}"
    );
    let err = m["last_error"].as_str().unwrap_or_else(|| panic!("{doc}"));
    assert!(err.contains("refs/heads/feature"), "{err}");
    assert_eq!(m["healthy"], false, "{doc}");

    // The diverged branch is untouched; everything else equals upstream.
    assert_eq!(ref_of(&env, &mirror, "refs/heads/feature"), Some(rogue));
    assert_ne!(
        ref_of(&env, &up, "refs/heads/feature"),
        ref_of(&env, &mirror, "refs/heads/feature")
    );
    assert_eq!(ref_of(&env, &up, "refs/heads/feature"), Some(feature2));
    let mut want = env.heads_and_tags(&up);
    let mut got = env.heads_and_tags(&mirror);
    want.remove("refs/heads/feature");
    got.remove("refs/heads/feature");
    assert_eq!(got, want);

    let out = env.pm(&up, &["status"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("refs/heads/feature"),
        "{}",
        stdout(&out)
    );
}

/// Spec §5.4: a branch deleted upstream goes from the mirror when it was merged into the
/// default branch; an unmerged one stays (it may be the only copy of someone's work).
#[test]
fn deleted_branch_goes_from_the_mirror_only_when_merged_into_default() {
    let env = Env::new();
    let up = env.upstream("up.git");
    let mirror = env.bare("mirror.git", &[]);
    add(&env, &up, "m", s(&mirror), &[]);

    let wc = env.clone(&up, "wc");
    env.commit(&wc, "base");
    env.git(&wc, &["checkout", "-q", "-b", "merged"]);
    env.commit(&wc, "merged work");
    env.git(&wc, &["checkout", "-q", "-b", "unmerged", "main"]);
    let unmerged = env.commit(&wc, "unmerged work");
    env.git(&wc, &["checkout", "-q", "main"]);
    env.push(&wc, &["main", "merged", "unmerged"]);
    env.wait_mirrored(&up, &mirror);
    settle(&env, &up);

    env.git(&wc, &["merge", "-q", "--no-ff", "-m", "merge", "merged"]);
    let main2 = env.git(&wc, &["rev-parse", "HEAD"]);
    env.push(&wc, &["main", ":refs/heads/merged", ":refs/heads/unmerged"]);
    assert!(!env.refs(&up).contains_key("refs/heads/merged"));
    assert!(!env.refs(&up).contains_key("refs/heads/unmerged"));

    wait_refs(&env, &up, &mirror, "main updated and merged deleted", |r| {
        r.get("refs/heads/main") == Some(&main2) && !r.contains_key("refs/heads/merged")
    });
    let doc = settle(&env, &up);
    assert_eq!(
        ref_of(&env, &mirror, "refs/heads/unmerged"),
        Some(unmerged),
        "an unmerged branch must be kept on the mirror"
    );
    let refs: Vec<String> = env.heads_and_tags(&mirror).into_keys().collect();
    assert_eq!(refs, vec!["refs/heads/main", "refs/heads/unmerged"]);
    // Keeping an unmerged branch is the rule working, not a failure.
    assert_eq!(doc["mirrors"][0]["update_status"], "finished", "{doc}");
    assert_eq!(env.pm(&up, &["status"]).status.code(), Some(0), "{doc}");
}

/// Spec §5.4/§5.5: a branch that exists only on the mirror and is merged into upstream's
/// default branch is deleted in default mode, and left alone under keep_divergent_refs. An
/// unmerged mirror-only branch is kept by both.
#[test]
fn mirror_only_merged_branch_deleted_in_default_mode_kept_with_keep_divergent() {
    let env = Env::new();
    let up = env.upstream("up.git");
    let plain = env.bare("plain.git", &[]);
    let keep = env.bare("keep.git", &[]);
    add(&env, &up, "plain", s(&plain), &[]);
    add(&env, &up, "keep", s(&keep), &["--keep-divergent-refs"]);

    let wc = env.clone(&up, "wc");
    let c1 = env.commit(&wc, "one");
    env.commit(&wc, "two");
    env.push(&wc, &["main"]);
    env.wait_mirrored(&up, &plain);
    env.wait_mirrored(&up, &keep);
    settle(&env, &up);

    // Behind upstream's back, both mirrors get a branch at an old main commit (merged) and
    // one at a commit upstream never saw (unmerged).
    env.git(&wc, &["checkout", "-q", "-b", "rogue", &c1]);
    let rogue = env.commit(&wc, "only on the mirrors");
    env.git(&wc, &["checkout", "-q", "main"]);
    let merged_spec = format!("{c1}:refs/heads/old-topic");
    for m in [&plain, &keep] {
        push_to(
            &env,
            &wc,
            m,
            &[&merged_spec, "rogue:refs/heads/mirror-work"],
        );
    }

    let c3 = env.commit(&wc, "three");
    env.push(&wc, &["main"]);
    wait_refs(
        &env,
        &up,
        &plain,
        "plain: main updated, old-topic deleted",
        |r| r.get("refs/heads/main") == Some(&c3) && !r.contains_key("refs/heads/old-topic"),
    );
    wait_refs(&env, &up, &keep, "keep: main updated", |r| {
        r.get("refs/heads/main") == Some(&c3)
    });
    let doc = settle(&env, &up);

    assert_eq!(ref_of(&env, &plain, "refs/heads/old-topic"), None);
    assert_eq!(
        ref_of(&env, &plain, "refs/heads/mirror-work"),
        Some(rogue.clone())
    );
    assert_eq!(
        ref_of(&env, &keep, "refs/heads/old-topic"),
        Some(c1.clone())
    );
    assert_eq!(
        ref_of(&env, &keep, "refs/heads/mirror-work"),
        Some(rogue.clone())
    );

    // Mirror-only refs are neither divergent nor a failure in either mode (§5.5 last sentence).
    for m in doc["mirrors"].as_array().unwrap() {
        assert_eq!(m["update_status"], "finished", "{doc}");
        assert!(strings(&m["divergent_refs"]).is_empty(), "{doc}");
    }

    // A forced full sync changes nothing: the rules are stable, and a sync with nothing to
    // send runs no push (§5.7).
    let pushes_before: Vec<u64> = doc["mirrors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["pushes"].as_u64().unwrap())
        .collect();
    let out = env.pm(&up, &["sync", "--wait"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let doc = settle(&env, &up);
    let pushes_after: Vec<u64> = doc["mirrors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["pushes"].as_u64().unwrap())
        .collect();
    assert_eq!(pushes_after, pushes_before, "{doc}");
    assert_eq!(ref_of(&env, &plain, "refs/heads/old-topic"), None);
    assert_eq!(ref_of(&env, &keep, "refs/heads/old-topic"), Some(c1));
    assert_eq!(ref_of(&env, &keep, "refs/heads/mirror-work"), Some(rogue));
}

/// Spec §5.2: only_protected_branches mirrors the protected branches and all tags; any other
/// branch is neither pushed nor deleted.
#[test]
fn only_protected_branches_pushes_protected_and_tags_and_never_touches_the_rest() {
    let env = Env::new();
    let up = env.upstream("up.git");
    let mirror = env.bare("mirror.git", &[]);
    add(
        &env,
        &up,
        "prot",
        s(&mirror),
        &[
            "--only-protected-branches",
            "--protected",
            "main",
            "--protected",
            "release/*",
        ],
    );

    let wc = env.clone(&up, "wc");
    let c1 = env.commit(&wc, "one");
    env.git(&wc, &["branch", "feature"]);
    env.git(&wc, &["branch", "release/1"]);
    env.git(&wc, &["branch", "release/2/rc"]);
    env.git(&wc, &["branch", "releases"]);
    env.git(&wc, &["tag", "-a", "-m", "v1", "v1"]);
    env.git(&wc, &["tag", "light"]);
    env.push(
        &wc,
        &[
            "main",
            "feature",
            "release/1",
            "release/2/rc",
            "releases",
            "v1",
            "light",
        ],
    );

    wait_refs(&env, &up, &mirror, "protected branches and tags", |r| {
        r.contains_key("refs/heads/main")
            && r.contains_key("refs/heads/release/1")
            && r.contains_key("refs/tags/v1")
            && r.contains_key("refs/tags/light")
    });
    let doc = settle(&env, &up);
    let got: Vec<String> = env.heads_and_tags(&mirror).into_keys().collect();
    assert_eq!(
        got,
        vec![
            "refs/heads/main",
            "refs/heads/release/1",
            "refs/tags/light",
            "refs/tags/v1"
        ]
    );
    let up_refs = env.refs(&up);
    for (r, v) in env.heads_and_tags(&mirror) {
        assert_eq!(up_refs.get(&r), Some(&v), "{r}");
    }
    assert_eq!(doc["mirrors"][0]["update_status"], "finished", "{doc}");

    // The mirror has its own feature branch, merged into main (an in-scope branch like that
    // would be deleted). Upstream deletes its feature and moves main and release/1.
    push_to(&env, &wc, &mirror, &[&format!("{c1}:refs/heads/feature")]);
    let c2 = env.commit(&wc, "two");
    env.git(&wc, &["branch", "-f", "release/1", "main"]);
    env.git(&wc, &["tag", "v2"]);
    env.push(
        &wc,
        &[
            "main",
            "release/1",
            "v2",
            ":refs/heads/feature",
            ":refs/tags/light",
        ],
    );
    wait_refs(
        &env,
        &up,
        &mirror,
        "main, release/1, v2, light deleted",
        |r| {
            r.get("refs/heads/main") == Some(&c2)
                && r.get("refs/heads/release/1") == Some(&c2)
                && r.get("refs/tags/v2") == Some(&c2)
                && !r.contains_key("refs/tags/light")
        },
    );
    let doc = settle(&env, &up);
    assert_eq!(
        ref_of(&env, &mirror, "refs/heads/feature"),
        Some(c1.clone()),
        "an unprotected branch must not be deleted"
    );
    assert_eq!(ref_of(&env, &mirror, "refs/heads/releases"), None);
    assert_eq!(ref_of(&env, &mirror, "refs/heads/release/2/rc"), None);
    assert_eq!(doc["mirrors"][0]["update_status"], "finished", "{doc}");
    assert_eq!(env.pm(&up, &["status"]).status.code(), Some(0), "{doc}");
}

/// A mirror whose `update` hook refuses one ref: every other ref arrives, and status names the
/// refused ref with the server's reason.
#[test]
fn a_ref_the_mirror_refuses_is_reported_and_every_other_ref_arrives() {
    let env = Env::new();
    let up = env.upstream("up.git");
    let mirror = env.bare("mirror.git", &[]);
    // `update` runs once per ref, so only refs/heads/locked is refused (a pre-receive refusal
    // would reject the whole push).
    write_exec(
        &mirror.join("hooks/update"),
        "#!/bin/sh\n\
         if [ \"$1\" = refs/heads/locked ]; then\n\
         \techo \"locked is frozen by policy FRZ-42\" >&2\n\
         \texit 1\n\
         fi\n\
         exit 0\n",
    );
    add(&env, &up, "picky", s(&mirror), &[]);

    let wc = env.clone(&up, "wc");
    env.commit(&wc, "one");
    env.git(&wc, &["branch", "locked"]);
    env.git(&wc, &["branch", "other"]);
    env.git(&wc, &["tag", "-a", "-m", "v1", "v1"]);
    env.push(&wc, &["main", "locked", "other", "v1"]);

    let mut want = env.heads_and_tags(&up);
    want.remove("refs/heads/locked");
    wait_refs(&env, &up, &mirror, "everything but locked", |r| *r == want);
    let ok = wait_until(LONG, || {
        let m = env.mirror_status(&up, "picky");
        m["update_status"] == "failed"
            && strings(&m["rejected_refs"])
                .iter()
                .any(|r| r.starts_with("refs/heads/locked"))
    });
    let doc = settle(&env, &up);
    assert!(ok, "status never reported the refusal: {doc}");
    assert_eq!(env.heads_and_tags(&mirror), want);

    let m = &doc["mirrors"][0];
    let rejected = strings(&m["rejected_refs"]);
    assert_eq!(rejected.len(), 1, "{doc}");
    assert!(rejected[0].starts_with("refs/heads/locked"), "{doc}");
    // What git reports for a hook refusal.
    assert!(rejected[0].contains("hook declined"), "{doc}");
    let err = m["last_error"].as_str().unwrap_or_else(|| panic!("{doc}"));
    assert!(err.contains("refs/heads/locked"), "{err}");
    // The server's own words, which say what to do about it.
    assert!(
        err.contains("locked is frozen by policy FRZ-42"),
        "the mirror's message is not in the status: {doc}"
    );
    assert!(strings(&m["divergent_refs"]).is_empty(), "{doc}");
    assert_eq!(m["healthy"], false, "{doc}");
    assert_eq!(env.pm(&up, &["status"]).status.code(), Some(1));

    // A refused ref does not hold back later updates of the others.
    let c2 = env.commit(&wc, "two");
    env.push(&wc, &["main"]);
    wait_refs(&env, &up, &mirror, "main moved on", |r| {
        r.get("refs/heads/main") == Some(&c2)
    });
    settle(&env, &up);
    assert_eq!(ref_of(&env, &mirror, "refs/heads/locked"), None);
}

/// Spec §5.9: in silent mode no mirror is contacted and updates accumulate; lifting it delivers
/// everything.
#[test]
fn silent_mode_holds_everything_back_until_it_is_lifted() {
    let env = Env::new();
    let up = env.upstream("up.git");
    let mirror = env.bare("mirror.git", &[]);
    add(&env, &up, "m", s(&mirror), &[]);

    let wc = env.clone(&up, "wc");
    let c1 = env.commit(&wc, "one");
    env.push(&wc, &["main"]);
    env.wait_mirrored(&up, &mirror);
    settle(&env, &up);

    env.write_server_config("silent: true\n");
    let c2 = env.commit(&wc, "two");
    env.git(&wc, &["branch", "topic"]);
    env.git(&wc, &["tag", "v2"]);
    env.push(&wc, &["main", "topic", "v2"]);
    // Not a timing assertion: give a (wrongly) running flusher ample occasion to push.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        env.heads_and_tags(&mirror),
        BTreeMap::from([("refs/heads/main".to_string(), c1.clone())]),
        "silent mode contacted the mirror\nlog:\n{}",
        env.log(&up)
    );
    let doc = env.status_json(&up);
    assert_eq!(doc["silent_mode"], true, "{doc}");
    let pending = doc["mirrors"][0]["pending_updates"].as_u64().unwrap();
    assert!(pending > 0, "{doc}");
    assert!(
        doc["mirrors"][0]["oldest_pending_age_seconds"].is_u64(),
        "{doc}"
    );
    let text = env.pm(&up, &["status"]);
    assert!(stdout(&text).contains("SILENT"), "{}", stdout(&text));

    // A forced sync is refused while silent, and contacts nothing.
    let out = env.pm(&up, &["sync", "--wait"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(stderr(&out).contains("silent"), "{}", stderr(&out));
    assert_eq!(ref_of(&env, &mirror, "refs/heads/main"), Some(c1));

    // Lifted: a sync delivers all of it.
    env.write_server_config("");
    let out = env.pm(&up, &["sync", "--wait"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    env.wait_mirrored(&up, &mirror);
    assert_eq!(ref_of(&env, &mirror, "refs/heads/main"), Some(c2));
    let doc = settle(&env, &up);
    assert_eq!(doc["silent_mode"], false, "{doc}");
    assert_eq!(doc["mirrors"][0]["pending_updates"], 0, "{doc}");
    assert_eq!(doc["mirrors"][0]["update_status"], "finished", "{doc}");
}

/// Silent mode lifted, the next ordinary push also delivers what accumulated.
#[test]
fn silent_mode_lifted_next_push_delivers_the_backlog() {
    let env = Env::new();
    let up = env.upstream("up.git");
    let mirror = env.bare("mirror.git", &[]);
    env.write_server_config("silent: true\n");
    add(&env, &up, "m", s(&mirror), &[]);

    let wc = env.clone(&up, "wc");
    env.commit(&wc, "one");
    env.git(&wc, &["branch", "held"]);
    env.push(&wc, &["main", "held"]);
    std::thread::sleep(Duration::from_secs(2));
    assert!(env.heads_and_tags(&mirror).is_empty(), "silent mode pushed");
    assert!(
        env.mirror_status(&up, "m")["pending_updates"]
            .as_u64()
            .unwrap()
            > 0
    );

    env.write_server_config("");
    env.commit(&wc, "two");
    env.push(&wc, &["main"]);
    env.wait_mirrored(&up, &mirror);
    assert!(env.refs(&mirror).contains_key("refs/heads/held"));
    settle(&env, &up);
}

/// SHA-256 repositories: 64-hex ids through hook, spool, plan and push, including ancestry
/// (keep_divergent_refs fast-forwards) and deletions.
#[test]
fn sha256_upstream_and_mirror_are_mirrored() {
    let env = Env::new();
    let up = env.bare("up.git", &["--object-format=sha256"]);
    env.pm_ok(&up, &["install"]);
    let mirror = env.bare("mirror.git", &["--object-format=sha256"]);
    let keep = env.bare("keep.git", &["--object-format=sha256"]);
    add(&env, &up, "m", s(&mirror), &[]);
    add(&env, &up, "keep", s(&keep), &["--keep-divergent-refs"]);

    let wc = env.clone(&up, "wc");
    assert_eq!(
        env.git(&wc, &["rev-parse", "--show-object-format"]),
        "sha256"
    );
    let c1 = env.commit(&wc, "one");
    assert_eq!(c1.len(), 64);
    env.git(&wc, &["branch", "topic"]);
    env.git(&wc, &["tag", "-a", "-m", "v1", "v1"]);
    env.push(&wc, &["main", "topic", "v1"]);
    env.wait_mirrored(&up, &mirror);
    env.wait_mirrored(&up, &keep);
    settle(&env, &up);

    // A fast-forward (ancestry on sha256 objects), a merged branch deleted, a new tag.
    env.commit(&wc, "two");
    env.git(&wc, &["tag", "v2"]);
    env.push(&wc, &["main", "v2", ":refs/heads/topic"]);
    env.wait_mirrored(&up, &mirror);
    let want_main = ref_of(&env, &up, "refs/heads/main");
    wait_refs(&env, &up, &keep, "keep: main fast-forwarded, v2", |r| {
        r.get("refs/heads/main") == want_main.as_ref() && r.contains_key("refs/tags/v2")
    });
    let doc = settle(&env, &up);
    for m in doc["mirrors"].as_array().unwrap() {
        assert_eq!(m["update_status"], "finished", "{doc}");
        assert!(m["last_error"].is_null(), "{doc}");
        assert!(strings(&m["divergent_refs"]).is_empty(), "{doc}");
    }
    assert!(env.refs(&mirror).values().all(|v| v.len() == 64));
    assert!(!env.refs(&mirror).contains_key("refs/heads/topic"));
    // Under keep_divergent_refs refs that exist only on the mirror are left alone (§5.5).
    assert_eq!(ref_of(&env, &keep, "refs/heads/topic"), Some(c1));
    let mut up_refs = env.heads_and_tags(&up);
    up_refs.insert(
        "refs/heads/topic".into(),
        ref_of(&env, &keep, "refs/heads/topic").unwrap(),
    );
    assert_eq!(env.heads_and_tags(&keep), up_refs);
}

/// Spec §2.5: `-o pushmirror.skip` spools nothing; `-o pushmirror.sync` skips the debounce.
#[test]
fn push_options_skip_and_sync() {
    let env = Env::new();
    let up = env.upstream("up.git");
    env.git(&up, &["config", "receive.advertisePushOptions", "true"]);
    let mirror = env.bare("mirror.git", &[]);
    add(&env, &up, "m", s(&mirror), &[]);

    let wc = env.clone(&up, "wc");
    let c1 = env.commit(&wc, "one");
    env.push(&wc, &["main"]);
    env.wait_mirrored(&up, &mirror);
    settle(&env, &up);

    // skip: nothing spooled, nothing started, the pusher is told.
    let c2 = env.commit(&wc, "two");
    let out = env.git_out(&wc, &["push", "-o", "pushmirror.skip", "origin", "main"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.lines()
            .any(|l| l.starts_with("remote:") && l.contains("pushmirror.skip")),
        "no remote: line about the skip: {err}"
    );
    assert_eq!(ref_of(&env, &up, "refs/heads/main"), Some(c2.clone()));
    std::thread::sleep(Duration::from_secs(1));
    let m = env.mirror_status(&up, "m");
    assert_eq!(m["pending_updates"], 0, "{m}");
    assert_eq!(ref_of(&env, &mirror, "refs/heads/main"), Some(c1));
    assert!(env.wait_flushers_gone());

    // sync: a 30 s debounce is bypassed. (A behavioural check, not a timing one: without the
    // option nothing would happen before 30 s.)
    env.pm_ok(&up, &["set", "m", "debounce=30s"]);
    let c3 = env.commit(&wc, "three");
    let out = env.git_out(
        &wc,
        &["push", "-q", "-o", "pushmirror.sync", "origin", "main"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let ok = wait_until(Duration::from_secs(20), || {
        ref_of(&env, &mirror, "refs/heads/main").as_deref() == Some(c3.as_str())
    });
    assert!(
        ok,
        "pushmirror.sync did not bypass the debounce\nstatus: {}\nlog:\n{}",
        env.status_json(&up),
        env.log(&up)
    );
    settle(&env, &up);

    // And without the option the 30 s debounce is honoured (the update stays scheduled).
    let c4 = env.commit(&wc, "four");
    env.push(&wc, &["main"]);
    std::thread::sleep(Duration::from_secs(2));
    let m = env.mirror_status(&up, "m");
    assert_eq!(m["update_status"], "scheduled", "{m}");
    assert!(m["pending_updates"].as_u64().unwrap() > 0, "{m}");
    assert_eq!(ref_of(&env, &mirror, "refs/heads/main"), Some(c3));
    let _ = c4;
}

/// Spec §4.5, §5.8, §7: `sync --wait` against unreachable mirrors fails with one line per
/// mirror; status says failed with the error; after max_attempts the flusher gives up and exits.
#[test]
fn unreachable_mirrors_fail_visibly_and_the_flusher_gives_up() {
    let env = Env::new();
    env.write_server_config(
        "defaults:\n  max_attempts: 2\n  backoff_initial: 100ms\n  backoff_max: 200ms\n",
    );
    let up = env.upstream("up.git");
    let ok_mirror = env.bare("fine.git", &[]);
    let missing: PathBuf = env.path("does-not-exist.git");
    let port = free_port();
    let refused = format!("git://127.0.0.1:{port}/x.git");
    add(&env, &up, "healthy", s(&ok_mirror), &[]);
    add(&env, &up, "missing-path", s(&missing), &["--timeout", "2s"]);
    add(&env, &up, "refused-port", &refused, &["--timeout", "2s"]);

    let wc = env.clone(&up, "wc");
    env.commit(&wc, "one");
    env.push(&wc, &["main"]);
    // A failing mirror delays no other.
    env.wait_mirrored(&up, &ok_mirror);

    let out = env.pm(&up, &["sync", "--wait"]);
    assert_ne!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    for name in ["missing-path", "refused-port"] {
        let named: Vec<&&str> = lines.iter().filter(|l| l.contains(name)).collect();
        assert_eq!(named.len(), 1, "want one line naming {name}: {err}");
        assert!(named[0].starts_with("git-pushmirror: "), "{err}");
    }
    assert!(!err.contains("healthy"), "{err}");
    assert!(!missing.exists());

    // The flusher gives up after max_attempts and exits.
    assert!(
        env.wait_flushers_gone(),
        "the flusher never gave up\nlog:\n{}",
        env.log(&up)
    );
    let doc = env.status_json(&up);
    for name in ["missing-path", "refused-port"] {
        let m = env.mirror_status(&up, name);
        assert_eq!(m["update_status"], "failed", "{doc}");
        let e = m["last_error"].as_str().unwrap_or_else(|| panic!("{doc}"));
        assert!(!e.is_empty() && !e.contains('\n'), "{doc}");
        assert!(m["last_successful_update_at"].is_null(), "{doc}");
        assert_eq!(m["healthy"], false, "{doc}");
        assert_eq!(m["gave_up"], true, "{doc}");
    }
    assert!(env.mirror_status(&up, "missing-path")["last_error"]
        .as_str()
        .unwrap()
        .contains("does-not-exist.git"));
    assert_eq!(
        env.mirror_status(&up, "healthy")["update_status"],
        "finished"
    );
    assert_eq!(doc["flusher_running"], false, "{doc}");
    assert_eq!(env.pm(&up, &["status"]).status.code(), Some(1));

    // Once the mirror exists, `sync` brings it back.
    std::fs::rename(env.bare("tmp.git", &[]), &missing).unwrap();
    let out = env.pm(&up, &["sync", "missing-path", "--wait"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    env.wait_mirrored(&up, &missing);
    assert_eq!(
        env.mirror_status(&up, "missing-path")["update_status"],
        "finished"
    );
}

/// The real `git` the tests use (the wrapper below must not find itself).
fn real_git() -> String {
    let out = std::process::Command::new("sh")
        .args(["-c", "command -v git"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Spec §5.4/§5.5 hold even when someone pushes to the mirror while a sync runs: here another
/// pusher changes a mirror branch right after the sync listed the mirror's refs (a `git`
/// wrapper in the flusher's PATH does it deterministically). Work that lands on the mirror in
/// that window must not be overwritten under keep_divergent_refs, nor deleted as "merged".
#[test]
fn a_push_to_the_mirror_during_a_sync_is_not_lost() {
    let env = Env::new();
    let up = env.upstream("up.git");
    let keep = env.bare("keep.git", &[]);
    let plain = env.bare("plain.git", &[]);
    add(&env, &up, "keep", s(&keep), &["--keep-divergent-refs"]);
    add(&env, &up, "plain", s(&plain), &[]);

    let wc = env.clone(&up, "wc");
    let c1 = env.commit(&wc, "one");
    env.git(&wc, &["branch", "feature"]);
    env.git(&wc, &["branch", "old"]);
    env.push(&wc, &["main", "feature", "old"]);
    env.wait_mirrored(&up, &keep);
    env.wait_mirrored(&up, &plain);
    settle(&env, &up);

    // The racing pusher's commits: on top of feature (keep) and of old (plain), unknown upstream.
    env.git(&wc, &["checkout", "-q", "-b", "race-feature", &c1]);
    let z = env.commit(&wc, "pushed to keep's feature during the sync");
    env.git(&wc, &["checkout", "-q", "-b", "race-old", &c1]);
    let u = env.commit(&wc, "pushed to plain's old during the sync");
    env.git(&wc, &["checkout", "-q", "main"]);

    // Upstream (behind the hook's back, so that only our `sync` runs a flusher): feature moves
    // forward, old is deleted (merged: its value is main's).
    env.git(&wc, &["checkout", "-q", "feature"]);
    let y = env.commit(&wc, "feature upstream");
    env.git(&wc, &["checkout", "-q", "main"]);
    env.git(&up, &["fetch", "-q", s(&wc), "feature:refs/heads/feature"]);
    env.git(&up, &["update-ref", "-d", "refs/heads/old"]);
    assert_eq!(ref_of(&env, &up, "refs/heads/feature"), Some(y.clone()));

    let wrap = env.path("wrap");
    std::fs::create_dir_all(&wrap).unwrap();
    let real = real_git();
    write_exec(
        &wrap.join("git"),
        &format!(
            "#!/bin/sh\n\
             # After the first listing of each mirror, someone else pushes to it.\n\
             if [ \"$3\" = ls-remote ]; then\n\
             \tfor a; do url=$a; done\n\
             \tcase \"$url\" in\n\
             \t*/keep.git) marker={wrap}/keep.done; spec=race-feature:refs/heads/feature ;;\n\
             \t*/plain.git) marker={wrap}/plain.done; spec=race-old:refs/heads/old ;;\n\
             \t*) exec {real} \"$@\" ;;\n\
             \tesac\n\
             \tif [ ! -e \"$marker\" ]; then\n\
             \t\t: > \"$marker\"\n\
             \t\t{real} \"$@\"; rc=$?\n\
             \t\t{real} -C {wc} push -q --force \"$url\" \"$spec\" >/dev/null 2>&1 </dev/null\n\
             \t\texit $rc\n\
             \tfi\n\
             fi\n\
             exec {real} \"$@\"\n",
            wrap = s(&wrap),
            real = real,
            wc = s(&wc),
        ),
    );
    let path = format!("{}:{}", s(&wrap), std::env::var("PATH").unwrap_or_default());
    // Without the last sync's record of the mirror's refs, the sync lists first and pushes
    // after, the window this test opens. (With it, the sync pushes from that record while it
    // lists, leased on the recorded values, so the racing push lands after ours or is refused.)
    for name in ["keep", "plain"] {
        let _ = std::fs::remove_file(up.join(format!("pushmirror/state/{name}.listing")));
    }
    let out = env
        .cmd(bin())
        .env("PATH", &path)
        .arg("--repo")
        .arg(&up)
        .args(["sync", "--wait"])
        .output()
        .unwrap();
    let doc = settle(&env, &up);
    assert!(wrap.join("keep.done").exists() && wrap.join("plain.done").exists());

    // keep_divergent_refs: the racing commit is kept and the branch reported divergent.
    assert_eq!(
        ref_of(&env, &keep, "refs/heads/feature"),
        Some(z.clone()),
        "keep_divergent_refs overwrote a commit pushed to the mirror during the sync\n\
         sync: {}{}\nstatus: {doc}\nlog:\n{}",
        stdout(&out),
        stderr(&out),
        env.log(&up)
    );
    // Default mode: a branch that is no longer merged is not deleted.
    assert_eq!(
        ref_of(&env, &plain, "refs/heads/old"),
        Some(u.clone()),
        "an unmerged branch was deleted from the mirror\nsync: {}{}\nstatus: {doc}\nlog:\n{}",
        stdout(&out),
        stderr(&out),
        env.log(&up)
    );
    let k = env.mirror_status(&up, "keep");
    assert_eq!(k["update_status"], "failed", "{doc}");
    assert_eq!(
        strings(&k["divergent_refs"]),
        vec!["refs/heads/feature"],
        "{doc}"
    );
    let p = env.mirror_status(&up, "plain");
    assert_eq!(p["update_status"], "finished", "{doc}");
    assert_eq!(ref_of(&env, &plain, "refs/heads/feature"), Some(y));
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
}

/// A push of thousands of refs (a first sync of a big repository, or every branch moved): the
/// sync splits its `git push` into batches that fit on a command line (unit-tested in plan.rs),
/// leases included, and every ref arrives. 6,000 branches moved at once make about 900 KB of
/// arguments, several batches.
#[test]
fn thousands_of_refs_go_out_in_batches_and_all_arrive() {
    let env = Env::new();
    let up = env.upstream("up.git");
    let mirror = env.bare("mirror.git", &[]);
    add(&env, &up, "m", s(&mirror), &[]);
    let wc = env.clone(&up, "wc");
    let set_all = |commit: &str| {
        let mut input = String::new();
        for i in 0..6000 {
            input.push_str(&format!("update refs/heads/b-{i:04} {commit}\n"));
        }
        let mut c = env.cmd("git");
        c.arg("-C").arg(&wc).args(["update-ref", "--stdin"]);
        let out = output_with_stdin(c, input.as_bytes());
        assert!(out.status.success(), "{}", stderr(&out));
    };
    let c1 = env.commit(&wc, "one");
    set_all(&c1);
    env.push(&wc, &["--all"]);
    env.wait_mirrored(&up, &mirror);
    settle(&env, &up);
    assert_eq!(env.heads_and_tags(&mirror).len(), 6001);

    let c2 = env.commit(&wc, "two");
    set_all(&c2);
    env.push(&wc, &["--all"]);
    env.wait_mirrored(&up, &mirror);
    let doc = settle(&env, &up);
    let refs = env.heads_and_tags(&mirror);
    assert_eq!(refs.len(), 6001);
    assert!(refs.values().all(|v| *v == c2));
    let m = &doc["mirrors"][0];
    assert_eq!(m["update_status"], "finished", "{doc}");
    assert!(m["last_error"].is_null(), "{doc}");
}

/// `branch_regex` (GitLab's mirror_branch_regex): matching branches and every tag arrive; other
/// branches never do; a mirror-only branch is never deleted, even one merged upstream and deleted
/// there; `set` and `add` refuse it next to only_protected_branches, and refuse a bad regex.
#[test]
fn branch_regex_mirrors_matching_branches_and_all_tags_and_never_deletes_branches() {
    let env = Env::new();
    let up = env.upstream("up.git");
    let mirror = env.bare("mirror.git", &[]);
    add(
        &env,
        &up,
        "rx",
        s(&mirror),
        &["--branch-regex", "^(main|release/[0-9]+)$"],
    );
    let shown = env.pm_ok(&up, &["show", "rx", "--json"]);
    let shown: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["branch_regex"], "^(main|release/[0-9]+)$", "{shown}");

    let wc = env.clone(&up, "wc");
    let c1 = env.commit(&wc, "one");
    for b in ["feature", "release/1", "release/x", "topic"] {
        env.git(&wc, &["branch", b]);
    }
    env.git(&wc, &["tag", "-a", "-m", "v1", "v1"]);
    env.push(
        &wc,
        &["main", "feature", "release/1", "release/x", "topic", "v1"],
    );
    wait_refs(&env, &up, &mirror, "matching branches and tags", |r| {
        r.contains_key("refs/heads/main")
            && r.contains_key("refs/heads/release/1")
            && r.contains_key("refs/tags/v1")
    });
    let doc = settle(&env, &up);
    let got: Vec<String> = env.heads_and_tags(&mirror).into_keys().collect();
    assert_eq!(
        got,
        vec!["refs/heads/main", "refs/heads/release/1", "refs/tags/v1"]
    );
    assert_eq!(doc["mirrors"][0]["update_status"], "finished", "{doc}");

    // release/1 is merged (it is main) and deleted upstream: without a filter it would go
    // from the mirror; with one it stays. A tag deleted upstream still goes.
    let c2 = env.commit(&wc, "two");
    env.git(&wc, &["tag", "v2"]);
    env.push(
        &wc,
        &["main", "v2", ":refs/heads/release/1", ":refs/tags/v1"],
    );
    wait_refs(&env, &up, &mirror, "main moved, v2 in, v1 out", |r| {
        r.get("refs/heads/main") == Some(&c2)
            && r.contains_key("refs/tags/v2")
            && !r.contains_key("refs/tags/v1")
    });
    settle(&env, &up);
    assert_eq!(
        ref_of(&env, &mirror, "refs/heads/release/1"),
        Some(c1),
        "a mirror-only branch must never be deleted while branch_regex is set"
    );

    // Refusals: both filters at once, a bad regex, one over 255 characters.
    let o = env.pm(
        &up,
        &[
            "set",
            "rx",
            "only_protected_branches=true",
            "protected=main",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("branch_regex and only_protected_branches"),
        "{}",
        stderr(&o)
    );
    let o = env.pm(&up, &["set", "rx", "branch_regex=release/("]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("not a valid RE2 regex"),
        "{}",
        stderr(&o)
    );
    let long = format!("branch_regex={}", "a".repeat(256));
    let o = env.pm(&up, &["set", "rx", &long]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("255"), "{}", stderr(&o));
    let other = env.bare("other.git", &[]);
    let o = env.pm(
        &up,
        &[
            "add",
            "both",
            s(&other),
            "--branch-regex",
            "main",
            "--only-protected-branches",
            "--protected",
            "main",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    // Unsetting the filter: the key goes, the mirror goes back to mirroring every branch.
    env.pm_ok(&up, &["set", "rx", "branch_regex="]);
    env.pm_ok(&up, &["sync", "rx", "--wait"]);
    wait_refs(
        &env,
        &up,
        &mirror,
        "every branch once the filter is gone",
        |r| r.contains_key("refs/heads/feature") && r.contains_key("refs/heads/topic"),
    );
}
