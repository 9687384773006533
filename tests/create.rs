//! Creating missing targets, naming them and leaving repositories out (spec §13, issue 21):
//! real upstreams with the hook, real local and sshd targets.

mod common;

use std::path::PathBuf;

use common::fixtures::*;
use common::*;

/// A hooked upstream (`extra`: `git init` options) with a clone whose first commit is pushed:
/// (upstream, that commit).
fn upstream_pushed(env: &Env, name: &str, extra: &[&str]) -> (PathBuf, String) {
    let up = env.bare(name, extra);
    env.pm_ok(&up, &["install"]);
    let wc = env.clone(&up, &format!("wc-{}", name.replace('/', "-")));
    let head = env.commit(&wc, "one");
    env.push(&wc, &["main"]);
    (up, head)
}

#[test]
fn missing_local_target_is_created_with_the_upstreams_object_format() {
    let env = Env::new();
    for (name, extra, format) in [
        ("up.git", &[][..], "sha1"),
        ("up256.git", &["--object-format=sha256"][..], "sha256"),
    ] {
        let dst = env.path(&format!("targets/deep/{name}"));
        let up = env.bare(name, extra);
        env.pm_ok(&up, &["install"]);
        env.pm_ok(
            &up,
            &["add", "m", dst.to_str().unwrap(), "--debounce", "100ms"],
        );
        env.pm_ok(&up, &["set", "m", "create_missing=true"]);
        let wc = env.clone(&up, &format!("{name}-wc"));
        let head = env.commit(&wc, "one");
        env.push(&wc, &["main"]);
        let m = wait_finished(&env, &up, "m");
        assert!(
            m["created"]
                .as_str()
                .is_some_and(|c| c.contains("git init --bare") && c.contains(format)),
            "{m:#}"
        );
        assert!(m["created_at"].is_string(), "{m:#}");
        let created_at = m["created_at"].clone();
        assert_eq!(env.git(&dst, &["rev-parse", "refs/heads/main"]), head);
        assert_eq!(
            env.git(&dst, &["rev-parse", "--show-object-format"]),
            format
        );
        assert_eq!(env.git(&dst, &["symbolic-ref", "HEAD"]), "refs/heads/main");
        let text = stdout(&env.pm(&up, &["status", "m"]));
        assert!(text.contains("created:"), "{text}");
        // The next sync creates nothing and says so.
        env.commit(&wc, "two");
        env.push(&wc, &["main"]);
        let m = wait_mirror(&env, &up, "m", "the second commit mirrored", |m| {
            m["update_status"] == "finished" && m["pending_updates"] == 0
        });
        assert_eq!(m["created_at"], created_at, "{m:#}");
        assert_eq!(m["created_in_last_sync"], false, "{m:#}");
        assert_eq!(env.log(&up).matches("git init --bare").count(), 1);
        // Deleted by hand after a sync: the next sync's push (from the record of the mirror's
        // refs) fails, and the same sync creates it again and pushes.
        assert!(env.wait_flushers_gone());
        std::fs::remove_dir_all(&dst).unwrap();
        let syncs = m["syncs"].as_u64().unwrap();
        let head = env.commit(&wc, "three");
        env.push(&wc, &["main"]);
        let m = wait_mirror(&env, &up, "m", "re-created", |m| {
            m["update_status"] == "finished" && m["created_at"] != created_at
        });
        assert_eq!(m["syncs"].as_u64(), Some(syncs + 1), "{m:#}");
        assert_eq!(m["created_in_last_sync"], true, "{m:#}");
        assert_eq!(env.git(&dst, &["rev-parse", "refs/heads/main"]), head);
    }
}

#[test]
fn without_create_missing_a_missing_target_fails_and_nothing_is_created() {
    let env = Env::new();
    env.write_server_config("defaults:\n  max_attempts: 1\n");
    let dst = env.path("targets/none.git");
    let (up, _) = upstream_pushed(&env, "up.git", &[]);
    env.pm_ok(
        &up,
        &["add", "m", dst.to_str().unwrap(), "--debounce", "100ms"],
    );
    let m = wait_gave_up(&env, &up, "m");
    assert!(
        m["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("does not appear to be a git repository")),
        "{m:#}"
    );
    assert!(!dst.exists());
}

#[test]
fn a_failed_creation_fails_the_sync_with_one_line_and_no_loop() {
    let env = Env::new();
    env.write_server_config("defaults:\n  max_attempts: 1\n  create_missing: true\n");
    // A file where the target's parent directory would be: git init cannot make it.
    std::fs::write(env.path("blocker"), "").unwrap();
    let dst = env.path("blocker/x.git");
    let (up, _) = upstream_pushed(&env, "up.git", &[]);
    env.pm_ok(
        &up,
        &["add", "m", dst.to_str().unwrap(), "--debounce", "100ms"],
    );
    let m = wait_gave_up(&env, &up, "m");
    let e = m["last_error"].as_str().unwrap_or_default().to_string();
    assert!(
        e.starts_with("create_missing: git init --bare") && e.lines().count() == 1,
        "{m:#}"
    );
    // A directory holding something else is not turned into a repository.
    let data = env.path("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("keep.txt"), "x").unwrap();
    env.pm_ok(
        &up,
        &["add", "d", data.to_str().unwrap(), "--debounce", "100ms"],
    );
    let d = wait_gave_up(&env, &up, "d");
    assert!(
        d["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("not an empty directory")),
        "{d:#}"
    );
    assert!(!data.join("HEAD").exists());
    // One creation attempt per sync, and each failed sync counted: no loop.
    let syncs = m["syncs"].as_u64().unwrap();
    assert_eq!(m["consecutive_failures"].as_u64(), Some(syncs), "{m:#}");
    assert_eq!(
        env.log(&up).matches("create_missing: git init").count() as u64,
        syncs
    );
}

#[test]
fn missing_ssh_target_is_created_over_the_mirrors_own_ssh_setup() {
    if no_ssh() {
        return;
    }
    let env = Env::new();
    let srv = env.path("srv");
    std::fs::create_dir_all(&srv).unwrap();
    let ssh = common::servers::SshServer::start(&srv);
    // A name a shell would split or expand, unless it is quoted.
    let dst = srv.join("team/it's;$(x).git");
    let (up, head) = upstream_pushed(&env, "up.git", &[]);
    let url = ssh.url(dst.to_str().unwrap());
    env.pm_ok(
        &up,
        &ssh_add_args("m", &url, &ssh.client_key, ["--host-key", &ssh.host_pubkey]),
    );
    env.pm_ok(&up, &["set", "m", "create_missing=true", "debounce=100ms"]);
    env.pm_ok(&up, &["sync", "m"]);
    let m = wait_mirror(&env, &up, "m", "created", |m| {
        m["update_status"] == "finished" && m["created"].is_string()
    });
    assert!(
        m["created"]
            .as_str()
            .is_some_and(|c| c.contains("over ssh")),
        "{m:#}"
    );
    assert_eq!(env.git(&dst, &["rev-parse", "refs/heads/main"]), head);
    assert!(!srv.join("x").exists() && !srv.join("team/it").exists());
    // A directory holding something else is not turned into a repository over ssh either.
    let data = srv.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("keep.txt"), "x").unwrap();
    let url = ssh.url(data.to_str().unwrap());
    env.pm_ok(
        &up,
        &ssh_add_args("d", &url, &ssh.client_key, ["--host-key", &ssh.host_pubkey]),
    );
    env.pm_ok(&up, &["set", "d", "create_missing=true", "debounce=100ms"]);
    env.pm_ok(&up, &["sync", "d"]);
    wait_mirror(&env, &up, "d", "refused", |m| {
        m["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("not an empty directory"))
    });
    assert!(!data.join("HEAD").exists());
}

/// Runs `gitolite <args>` with `home` as the gitolite user's home.
fn gitolite(env: &Env, home: &std::path::Path, args: &[&str]) {
    let out = env
        .cmd("gitolite")
        .env("HOME", home)
        .env("USER", common::servers::current_user())
        .args(args)
        .output()
        .expect("run gitolite");
    assert!(out.status.success(), "gitolite {args:?}: {}", text(&out));
}

/// A real Gitolite (Debian gitolite3) as the target, behind a real sshd, with a wild-repo rule
/// the mirror's key may create under: Gitolite creates the wild repository at the sync's first
/// access, and the sync says so. Where the key may not create, the failure says what to grant.
#[test]
fn gitolite_creates_a_wild_target_at_first_access_or_says_what_to_grant() {
    if !common::servers::have_all(&["gitolite", "git"])
        || !common::servers::have_all(common::servers::SshServer::REQUIRES)
    {
        eprintln!("SKIPPED: gitolite3 or openssh is not installed (tests/install-deps.sh)");
        return;
    }
    let env = Env::new();
    let home = env.path("gitolite-home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(env.path("unused-ssh-root")).unwrap();
    let ssh = common::servers::SshServer::start(&env.path("unused-ssh-root"));
    let admin_pub = env.path("admin.pub");
    std::fs::copy(ssh.client_key.with_extension("pub"), &admin_pub).unwrap();
    gitolite(&env, &home, &["setup", "-pk", admin_pub.to_str().unwrap()]);
    let conf = home.join(".gitolite/conf/gitolite.conf");
    let mut c = std::fs::read_to_string(&conf).unwrap();
    c.push_str("\nrepo mirrors/..*\n    C       =   admin\n    RW+     =   CREATOR\n");
    std::fs::write(&conf, c).unwrap();
    gitolite(&env, &home, &["compile"]);
    gitolite(&env, &home, &["trigger", "POST_COMPILE"]);
    let keys = std::fs::read_to_string(home.join(".ssh/authorized_keys")).unwrap();
    let line = keys
        .lines()
        .find(|l| l.contains("gitolite-shell admin"))
        .unwrap_or_else(|| panic!("no gitolite key line in {keys}"));
    let line = line.replacen(
        "command=\"",
        &format!(
            "command=\"env HOME={} USER={} ",
            home.display(),
            common::servers::current_user()
        ),
        1,
    );
    let authorized_keys = ssh.client_key.parent().unwrap().join("authorized_keys");
    std::fs::write(&authorized_keys, format!("{line}\n")).unwrap();

    let (up, head) = upstream_pushed(&env, "up.git", &[]);
    let url = format!("ssh://{}@127.0.0.1:{}/mirrors/app", ssh.user, ssh.port);
    env.pm_ok(
        &up,
        &ssh_add_args("m", &url, &ssh.client_key, ["--host-key", &ssh.host_pubkey]),
    );
    env.pm_ok(&up, &["set", "m", "create_missing=true", "debounce=100ms"]);
    env.pm_ok(&up, &["sync", "m"]);
    let m = wait_mirror(&env, &up, "m", "created", |m| {
        m["update_status"] == "finished" && m["created"].is_string()
    });
    assert!(
        m["created"]
            .as_str()
            .is_some_and(|c| c.contains("Gitolite")),
        "{m:#}\n{}",
        env.log(&up)
    );
    let target = home.join("repositories/mirrors/app.git");
    assert_eq!(env.git(&target, &["rev-parse", "refs/heads/main"]), head);

    let url = format!("ssh://{}@127.0.0.1:{}/elsewhere/app", ssh.user, ssh.port);
    env.write_server_config("defaults:\n  max_attempts: 1\n");
    env.pm_ok(
        &up,
        &ssh_add_args(
            "no-c",
            &url,
            &ssh.client_key,
            ["--host-key", &ssh.host_pubkey],
        ),
    );
    env.pm_ok(
        &up,
        &["set", "no-c", "create_missing=true", "debounce=100ms"],
    );
    env.pm_ok(&up, &["sync", "no-c"]);
    wait_mirror(&env, &up, "no-c", "the Gitolite advice", |m| {
        m["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("Gitolite") && e.contains("C permission"))
    });
}

/// A server rule reaches a whole server: `name_style: dash` flattens `${name}` for a target
/// without nested names, `exclude` leaves repositories out, `create_missing` in `defaults:`
/// creates each target at its first sync.
#[test]
fn a_rule_names_creates_and_excludes_targets() {
    let env = Env::new();
    env.write_server_config(&format!(
        "root: {}\ndefaults:\n  debounce: 100ms\n  create_missing: true\nrules:\n  - name: flat\n    url: {}/${{name}}.git\n    name_style: dash\n    exclude: [\"*/attic\"]\n",
        env.path("srv").display(),
        env.path("targets").display()
    ));
    let (app, head) = upstream_pushed(&env, "srv/team/app.git", &[]);
    let (attic, _) = upstream_pushed(&env, "srv/team/attic.git", &[]);
    let m = wait_mirror(&env, &app, "flat", "created", |m| {
        m["update_status"] == "finished" && m["created"].is_string()
    });
    assert_eq!(m["from_rule"], true, "{m:#}");
    let dst = env.path("targets/team-app.git");
    assert_eq!(env.git(&dst, &["rev-parse", "refs/heads/main"]), head);
    assert!(!env.path("targets/team").exists());
    let st = env.status_json(&attic);
    assert!(
        st.to_string().contains("\"mirrors\":[]"),
        "an excluded repository has no mirror: {st:#}"
    );
    assert!(!env.path("targets/team-attic.git").exists());
}

/// The stand-in forge (see tests/common/servers/forge.rs) with the test's upstream: the
/// server, and the upstream with one commit pushed.
fn forge_fixture(env: &Env) -> Option<(common::servers::forge::ForgeServer, PathBuf, String)> {
    use common::servers::forge::ForgeServer;
    if !common::servers::have_all(ForgeServer::REQUIRES) {
        eprintln!("SKIPPED: nginx, fcgiwrap or python3 is not installed (tests/install-deps.sh)");
        return None;
    }
    let srv = env.path("forge");
    std::fs::create_dir_all(&srv).unwrap();
    let forge = ForgeServer::start(&srv, "mirror", "tok-7f3a9c2e51");
    let (up, head) = upstream_pushed(env, "up.git", &[]);
    Some((forge, up, head))
}

/// `add` a password mirror (the forge token as password) of `owner/name` on the stand-in,
/// with create_missing through `forge`'s API (at `api`, else the stand-in's).
#[allow(clippy::too_many_arguments)]
fn add_forge_mirror(
    env: &Env,
    up: &std::path::Path,
    f: &common::servers::forge::ForgeServer,
    mirror: &str,
    forge: &str,
    owner: &str,
    name: &str,
    api: Option<&str>,
) {
    let url = f.https.url(&format!("{owner}/{name}.git"));
    add_password_mirror(
        env,
        up,
        mirror,
        &url,
        "mirror",
        &f.token,
        &f.https.ca_file,
        &["--debounce", "100ms"],
    );
    let api = format!(
        "forge_api={}",
        api.map_or_else(|| f.api(forge), str::to_string)
    );
    let owner = format!("create_owner={owner}");
    let forge = format!("forge={forge}");
    env.pm_ok(
        up,
        &["set", mirror, "create_missing=true", &forge, &api, &owner],
    );
}

/// Each forge's documented endpoints create the missing target, with the mirror's own token in
/// that forge's header, private by default, and the sync pushes into it.
#[test]
fn forges_create_missing_https_targets_with_the_mirrors_token() {
    let env = Env::new();
    let Some((f, up, head)) = forge_fixture(&env) else {
        return;
    };
    for (forge, owner) in [("github", "acme"), ("gitlab", "grp/sub"), ("gitea", "org")] {
        let name = format!("app-{forge}");
        add_forge_mirror(&env, &up, &f, forge, forge, owner, &name, None);
        env.pm_ok(&up, &["sync", forge]);
        let m = wait_mirror(&env, &up, forge, "created", |m| {
            m["update_status"] == "finished" && m["created"].is_string()
        });
        assert!(
            m["created"]
                .as_str()
                .is_some_and(|c| c.contains(&format!("{owner}/{name} (private)"))),
            "{m:#}"
        );
        let dst = env.path(&format!("forge/{owner}/{name}.git"));
        assert_eq!(env.git(&dst, &["rev-parse", "refs/heads/main"]), head);
    }
    let reqs = f.requests();
    let posts: Vec<_> = reqs.iter().filter(|r| r["method"] == "POST").collect();
    assert_eq!(posts.len(), 3, "{reqs:#?}");
    for r in &reqs {
        let path = r["path"].as_str().unwrap();
        let (header, want) = if path.starts_with("/api/v3/") {
            ("authorization", format!("Bearer {}", f.token))
        } else if path.starts_with("/api/v4/") {
            ("private_token", f.token.clone())
        } else {
            ("authorization", format!("token {}", f.token))
        };
        assert_eq!(r[header], want.as_str(), "{r}");
    }
    assert_eq!(posts[0]["path"], "/api/v3/orgs/acme/repos");
    assert_eq!(posts[0]["body"]["private"], true);
    assert_eq!(posts[1]["path"], "/api/v4/projects");
    assert_eq!(posts[1]["body"]["visibility"], "private");
    assert_eq!(posts[1]["body"]["path"], "app-gitlab");
    assert_eq!(posts[2]["path"], "/api/v1/orgs/org/repos");
    // The token is in no status, log or config output.
    let all = format!(
        "{}{}{}",
        env.status_json(&up),
        env.log(&up),
        stdout(&env.pm(&up, &["show", "github"]))
    );
    assert!(!all.contains(&f.token), "{all}");
}

/// A rate-limited creation (429, and GitHub's 403 with Retry-After) is waited out and retried;
/// a token meant for the mirror's host is never sent to an API on another origin.
#[test]
fn forge_rate_limits_are_waited_out_and_the_token_stays_on_its_origin() {
    let env = Env::new();
    let Some((f, up, head)) = forge_fixture(&env) else {
        return;
    };
    f.rate_limit(2);
    add_forge_mirror(&env, &up, &f, "gh", "github", "mirror", "limited", None);
    env.pm_ok(&up, &["sync", "gh"]);
    wait_mirror(&env, &up, "gh", "created", |m| {
        m["update_status"] == "finished" && m["created"].is_string()
    });
    let dst = env.path("forge/mirror/limited.git");
    assert_eq!(env.git(&dst, &["rev-parse", "refs/heads/main"]), head);
    let posts: Vec<_> = f
        .requests()
        .into_iter()
        .filter(|r| r["method"] == "POST")
        .collect();
    // The token's own login: the user's endpoint, three times (two refused, one created).
    assert_eq!(posts.len(), 3, "{posts:#?}");
    assert!(posts.iter().all(|r| r["path"] == "/api/v3/user/repos"));

    // Another origin (a listener that records whether anyone came) never gets the token.
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    other.set_nonblocking(true).unwrap();
    let port = other.local_addr().unwrap().port();
    env.write_server_config("defaults:\n  max_attempts: 1\n");
    let api = format!("https://127.0.0.1:{port}/api/v1");
    add_forge_mirror(
        &env,
        &up,
        &f,
        "elsewhere",
        "gitea",
        "org",
        "nope",
        Some(&api),
    );
    env.pm_ok(&up, &["sync", "elsewhere"]);
    let m = wait_mirror(&env, &up, "elsewhere", "refused", |m| {
        m["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("not on the mirror's own host"))
    });
    assert!(!m["last_error"].as_str().unwrap().contains(&f.token));
    assert!(
        other.accept().is_err(),
        "something connected to the other origin"
    );
    assert!(!env.path("forge/org/nope.git").exists());

    // An owner that is not the url's: refused before any creation (it would create, and
    // propagate_deletion would later delete, another repository than the url names).
    let url = f.https.url("org/moved.git");
    add_password_mirror(
        &env,
        &up,
        "moved",
        &url,
        "mirror",
        &f.token,
        &f.https.ca_file,
        &[],
    );
    let api = format!("forge_api={}", f.api("gitea"));
    env.pm_ok(
        &up,
        &[
            "set",
            "moved",
            "create_missing=true",
            "forge=gitea",
            &api,
            "create_owner=other",
            "debounce=100ms",
        ],
    );
    env.pm_ok(&up, &["sync", "moved"]);
    wait_mirror(&env, &up, "moved", "the refusal", |m| {
        m["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("create_owner must be the url's owner"))
    });
    let posts = f
        .requests()
        .into_iter()
        .filter(|r| r["method"] == "POST" && r["path"] == "/api/v1/orgs/other/repos")
        .count();
    assert_eq!(posts, 0);
}

/// `propagate_deletion`: once a repository is gone, `sweep` deletes the target its rule
/// created (recorded under `state_dir`), logs it and notifies; a target the rule did not
/// create, and the target of a repository still there, are kept.
#[test]
fn sweep_deletes_only_created_targets_of_removed_repositories() {
    let env = Env::new();
    let notified = env.path("notified.json");
    env.write_server_config(&format!(
        "root: {srv}\nstate_dir: {state}\ndefaults:\n  debounce: 100ms\nnotify:\n  command: cat >> {notified}\nrules:\n  - name: backup\n    url: {targets}/${{name}}.git\n    create_missing: true\n    propagate_deletion: true\n",
        srv = env.path("srv").display(),
        state = env.path("state").display(),
        targets = env.path("targets").display(),
        notified = notified.display(),
    ));
    // A target that exists before: not created by us, never deleted.
    let pre_target = env.bare("targets/pre.git", &[]);
    let (pre, _) = upstream_pushed(&env, "srv/pre.git", &[]);
    wait_finished(&env, &pre, "backup");
    let mut created = Vec::new();
    for name in ["gone", "keep"] {
        let (up, _) = upstream_pushed(&env, &format!("srv/team/{name}.git"), &[]);
        wait_mirror(&env, &up, "backup", "created", |m| {
            m["update_status"] == "finished" && m["created"].is_string()
        });
        created.push(up);
    }
    assert!(env.wait_flushers_gone());
    let gone_target = env.path("targets/team/gone.git");
    let keep_target = env.path("targets/team/keep.git");
    assert!(gone_target.join("HEAD").is_file() && keep_target.join("HEAD").is_file());
    std::fs::remove_dir_all(&created[0]).unwrap();
    std::fs::remove_dir_all(&pre).unwrap();
    let out = env.cmd(bin()).arg("sweep").output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stdout(&out).contains("deleted") && stdout(&out).contains("team/gone"),
        "{}",
        text(&out)
    );
    assert!(!gone_target.exists());
    assert!(keep_target.join("HEAD").is_file());
    assert!(pre_target.join("HEAD").is_file());
    let doc = std::fs::read_to_string(&notified).unwrap();
    assert!(
        doc.contains("\"target_deleted\"") && doc.contains("team/gone"),
        "{doc}"
    );
    // Done once: the record is gone with the target.
    let out = env.cmd(bin()).arg("sweep").output().unwrap();
    assert!(!stdout(&out).contains("deleted"), "{}", text(&out));
}

/// `propagate_deletion` over SSH (a real sshd: `rm -rf` of the bare repository after the
/// check there) and on a forge (the stand-in's documented DELETE, with the token).
#[test]
fn sweep_deletes_created_ssh_and_forge_targets_of_a_removed_repository() {
    if no_ssh() {
        return;
    }
    let env = Env::new();
    let Some((f, _, _)) = forge_fixture(&env) else {
        return;
    };
    let ssh_root = env.path("ssh-targets");
    std::fs::create_dir_all(&ssh_root).unwrap();
    let ssh = common::servers::SshServer::start(&ssh_root);
    let pwfile = env.path("forge.token");
    write_mode(&pwfile, &f.token, 0o600);
    env.write_server_config(&format!(
        "root: {srv}\nstate_dir: {state}\ndefaults:\n  debounce: 100ms\n  timeout: 30s\n  create_missing: true\nrules:\n  - name: ssh\n    url: {ssh_url}/${{name}}.git\n    propagate_deletion: true\n    auth: {{method: ssh_key, key_file: {key}, host_key: \"{host_key}\"}}\n  - name: gitea\n    url: {forge_url}/${{name}}.git\n    propagate_deletion: true\n    forge: gitea\n    forge_api: {api}\n    create_owner: org\n    ca_file: {ca}\n    auth: {{method: password, username: mirror, password_file: {pw}}}\n",
        srv = env.path("srv").display(),
        state = env.path("state").display(),
        ssh_url = ssh.url(ssh_root.to_str().unwrap()),
        key = ssh.client_key.display(),
        host_key = ssh.host_pubkey,
        forge_url = f.https.url("org"),
        api = f.api("gitea"),
        ca = f.https.ca_file.display(),
        pw = pwfile.display(),
    ));
    let (up, head) = upstream_pushed(&env, "srv/app.git", &[]);
    for rule in ["ssh", "gitea"] {
        wait_mirror(&env, &up, rule, "created", |m| {
            m["update_status"] == "finished" && m["created"].is_string()
        });
    }
    let ssh_target = ssh_root.join("app.git");
    let forge_target = env.path("forge/org/app.git");
    assert_eq!(
        env.git(&ssh_target, &["rev-parse", "refs/heads/main"]),
        head
    );
    assert_eq!(
        env.git(&forge_target, &["rev-parse", "refs/heads/main"]),
        head
    );
    assert!(env.wait_flushers_gone());
    // Another repository keeps the root from looking unmounted.
    upstream_pushed(&env, "srv/other.git", &[]);
    std::fs::remove_dir_all(&up).unwrap();
    let out = env.cmd(bin()).arg("sweep").output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        stdout(&out).matches("sweep: deleted").count(),
        2,
        "{}",
        text(&out)
    );
    assert!(!ssh_target.exists() && ssh_root.is_dir());
    assert!(!forge_target.exists());
    let deletes: Vec<_> = f
        .requests()
        .into_iter()
        .filter(|r| r["method"] == "DELETE")
        .collect();
    assert_eq!(deletes.len(), 1, "{deletes:#?}");
    assert_eq!(deletes[0]["path"], "/api/v1/repos/org/app");
    assert_eq!(
        deletes[0]["authorization"],
        format!("token {}", f.token).as_str()
    );
    assert!(!text(&out).contains(&f.token));
}
