//! Adversarial checks of `propagate_deletion` (issue 21 review): `sweep` never deletes a
//! target another repository still uses, one a hand-edited record points outside the
//! targets' directory, or one reached through a symlink swapped in.

mod common;

use std::path::PathBuf;

use common::*;

fn upstream_pushed(env: &Env, name: &str) -> PathBuf {
    let up = env.bare(name, &[]);
    env.pm_ok(&up, &["install"]);
    let wc = env.clone(&up, &format!("wc-{}", name.replace('/', "_")));
    env.commit(&wc, "one");
    env.push(&wc, &["main"]);
    up
}

fn server_config(env: &Env, style: &str) {
    env.write_server_config(&format!(
        "root: {srv}\nstate_dir: {state}\ndefaults:\n  debounce: 100ms\nrules:\n  - name: backup\n    url: {targets}/${{name}}.git\n    name_style: {style}\n    create_missing: true\n    propagate_deletion: true\n",
        srv = env.path("srv").display(),
        state = env.path("state").display(),
        targets = env.path("targets").display(),
    ));
}

fn sweep(env: &Env) -> String {
    let out = env.cmd(bin()).arg("sweep").output().unwrap();
    text(&out)
}

/// A repository moved to another directory keeps its target under `name_style: basename`:
/// `sweep` sees `a/app` gone, but `b/app` maps to the same target, so it is kept.
#[test]
fn sweep_keeps_the_target_of_a_moved_repository_that_still_maps_to_it() {
    let env = Env::new();
    server_config(&env, "basename");
    let up = upstream_pushed(&env, "srv/a/app.git");
    wait_mirror(&env, &up, "backup", "created", |m| {
        m["update_status"] == "finished" && m["created"].is_string()
    });
    assert!(env.wait_flushers_gone());
    let target = env.path("targets/app.git");
    assert!(target.join("HEAD").is_file());
    std::fs::create_dir_all(env.path("srv/b")).unwrap();
    std::fs::rename(&up, env.path("srv/b/app.git")).unwrap();
    let out = sweep(&env);
    assert!(!out.contains("sweep: deleted"), "{out}");
    assert!(target.join("HEAD").is_file(), "{out}");
    assert!(out.contains("kept") && out.contains("a/app"), "{out}");
}

/// Two repositories a rule's `name_style` maps to one target (`team/app` and `team-app` under
/// `dash`) do not overwrite each other's refs there: the sync fails with one line naming both.
#[test]
fn names_mapped_to_one_target_are_refused_not_mixed() {
    let env = Env::new();
    server_config(&env, "dash");
    let first = upstream_pushed(&env, "srv/team/app.git");
    wait_mirror(&env, &first, "backup", "created", |m| {
        m["update_status"] == "finished" && m["created"].is_string()
    });
    let target = env.path("targets/team-app.git");
    let head = env.git(&first, &["rev-parse", "refs/heads/main"]);
    assert_eq!(env.git(&target, &["rev-parse", "refs/heads/main"]), head);
    let second = env.bare("srv/team-app.git", &[]);
    env.pm_ok(&second, &["install"]);
    let wc = env.clone(&second, "wc-second");
    env.commit(&wc, "another history");
    env.commit(&wc, "and more");
    env.push(&wc, &["main"]);
    let m = wait_mirror(&env, &second, "backup", "failed", |m| {
        m["update_status"] == "failed"
    });
    let err = m["last_error"].as_str().unwrap_or_default();
    assert!(
        err.contains("team/app") && err.contains("team-app") && err.contains("name_style"),
        "{m:#}"
    );
    assert_eq!(env.git(&target, &["rev-parse", "refs/heads/main"]), head);
}

/// A created target, a second repository (so the root does not look unmounted), and the
/// first one removed: (env, the removed upstream's target).
fn created_then_removed() -> (Env, PathBuf) {
    let env = Env::new();
    server_config(&env, "slash");
    let up = upstream_pushed(&env, "srv/team/app.git");
    wait_mirror(&env, &up, "backup", "created", |m| {
        m["update_status"] == "finished" && m["created"].is_string()
    });
    let keep = upstream_pushed(&env, "srv/keep.git");
    wait_finished(&env, &keep, "backup");
    assert!(env.wait_flushers_gone());
    std::fs::remove_dir_all(&up).unwrap();
    let target = env.path("targets/team/app.git");
    (env, target)
}

#[test]
fn sweep_ignores_a_record_edited_to_reach_outside_the_targets() {
    let (env, _) = created_then_removed();
    // `x/../../victim` is gone from the root (srv/x does not exist), and its URL
    // targets/x/../../victim.git is the victim (targets/x exists).
    std::fs::create_dir_all(env.path("targets/x")).unwrap();
    let victim = env.bare("victim.git", &[]);
    let name = "x/../../victim";
    let hex: String = name.bytes().map(|b| format!("{b:02x}")).collect();
    std::fs::write(
        env.path(&format!("state/created/backup--{hex}.json")),
        serde_json::json!({
            "rule": "backup",
            "name": name,
            "url": format!("{}/{name}.git", env.path("targets").display()),
            "created_at": 0,
            "how": "x",
        })
        .to_string(),
    )
    .unwrap();
    let out = sweep(&env);
    assert!(victim.join("HEAD").is_file(), "{out}");
    assert!(out.contains("not a plain path"), "{out}");
}

#[test]
fn sweep_does_not_delete_through_a_symlink_swapped_in() {
    let (env, target) = created_then_removed();
    // targets/team swapped for a symlink to someone else's directory holding an app.git.
    let others = env.bare("other/app.git", &[]);
    std::fs::rename(env.path("targets/team"), env.path("team-moved")).unwrap();
    std::os::unix::fs::symlink(env.path("other"), env.path("targets/team")).unwrap();
    let out = sweep(&env);
    assert!(others.join("HEAD").is_file(), "{out}");
    assert!(target.join("HEAD").is_file(), "{out}");
    assert!(!out.contains("sweep: deleted"), "{out}");
    assert!(out.contains("is a symlink"), "{out}");
}

/// A creation that loses a race (the forge answers GitHub's 422, GitLab's 400 "has already been
/// taken", Gitea's 409 "already exists") counts as done: the sync pushes into the repository,
/// and does not call it created by us (so propagate_deletion could never delete it).
#[test]
fn forge_already_exists_answers_count_as_done_and_the_sync_pushes() {
    use common::servers::forge::ForgeServer;
    if !common::servers::have_all(ForgeServer::REQUIRES) {
        eprintln!("SKIPPED: nginx, fcgiwrap or python3 is not installed (tests/install-deps.sh)");
        return;
    }
    let env = Env::new();
    let srv = env.path("forge");
    std::fs::create_dir_all(&srv).unwrap();
    let f = ForgeServer::start(&srv, "mirror", "tok-5be1d09c77");
    let up = upstream_pushed(&env, "up.git");
    let head = env.git(&up, &["rev-parse", "refs/heads/main"]);
    for (forge, owner) in [("github", "acme"), ("gitlab", "grp/sub"), ("gitea", "org")] {
        let name = format!("app-{forge}");
        let url = f.https.url(&format!("{owner}/{name}.git"));
        common::fixtures::add_password_mirror(
            &env,
            &up,
            forge,
            &url,
            "mirror",
            &f.token,
            &f.https.ca_file,
            &["--debounce", "100ms"],
        );
        f.race();
        env.pm_ok(
            &up,
            &[
                "set",
                forge,
                "create_missing=true",
                &format!("forge={forge}"),
                &format!("forge_api={}", f.api(forge)),
                &format!("create_owner={owner}"),
            ],
        );
        env.pm_ok(&up, &["sync", forge]);
        // (A flusher `add` started may fail once before `set`; its retry creates.)
        let m = wait_mirror(&env, &up, forge, "finished", |m| {
            m["update_status"] == "finished"
        });
        assert!(m["created"].is_null(), "{forge}: {m:#}");
        let log = env.log(&up);
        assert!(
            !log.contains("create_missing: POST") && log.contains("exists already"),
            "{forge}: the lost race failed the sync: {log}"
        );
        let dst = env.path(&format!("forge/{owner}/{name}.git"));
        assert_eq!(env.git(&dst, &["rev-parse", "refs/heads/main"]), head);
    }
    let posts = f
        .requests()
        .into_iter()
        .filter(|r| r["method"] == "POST")
        .count();
    assert_eq!(posts, 3);
}

/// `create_owner` never sends a creation elsewhere than the url: a server rule with nested
/// names (`team/app` under `slash`) on a forge with `create_owner: org` would create `org/app`
/// (another repository's target, which propagate_deletion would then delete). It fails with
/// one line instead, and nothing is created.
#[test]
fn create_owner_never_creates_another_repository_than_the_url_names() {
    use common::servers::forge::ForgeServer;
    if !common::servers::have_all(ForgeServer::REQUIRES) {
        eprintln!("SKIPPED: nginx, fcgiwrap or python3 is not installed (tests/install-deps.sh)");
        return;
    }
    let env = Env::new();
    let srv = env.path("forge");
    std::fs::create_dir_all(&srv).unwrap();
    let f = ForgeServer::start(&srv, "mirror", "tok-0c4e8a7713");
    let pwfile = env.path("forge.token");
    common::write_mode(&pwfile, &f.token, 0o600);
    env.write_server_config(&format!(
        "root: {srv}\nstate_dir: {state}\ndefaults:\n  debounce: 100ms\n  timeout: 30s\nrules:\n  - name: gitea\n    url: {forge_url}/${{name}}.git\n    create_missing: true\n    propagate_deletion: true\n    forge: gitea\n    forge_api: {api}\n    create_owner: org\n    ca_file: {ca}\n    auth: {{method: password, username: mirror, password_file: {pw}}}\n",
        srv = env.path("srv").display(),
        state = env.path("state").display(),
        forge_url = f.https.url("org"),
        api = f.api("gitea"),
        ca = f.https.ca_file.display(),
        pw = pwfile.display(),
    ));
    let up = upstream_pushed(&env, "srv/team/app.git");
    let m = wait_mirror(&env, &up, "gitea", "failed", |m| {
        m["update_status"] == "failed"
    });
    let err = m["last_error"].as_str().unwrap_or_default();
    assert!(err.contains("create_owner"), "{m:#}");
    let posts: Vec<_> = f
        .requests()
        .into_iter()
        .filter(|r| r["method"] == "POST")
        .collect();
    assert!(posts.is_empty(), "{posts:#?}");
    assert!(!env.path("forge/org/app.git").exists());
}
