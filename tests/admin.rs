//! Administration, end to end with the real binary and real git: every command's happy path and
//! error path, `--json` parsed back, server rules with `${name}`, `sweep`, and installation into
//! every layout we support (plain, chained foreign hook, core.hooksPath, Gitea and GitLab
//! `post-receive.d`, and a real Gitolite reached over a real sshd). Timing is never asserted.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;

/// Asserts exit `code` and exactly one `git-pushmirror: ...` line on stderr containing every
/// `needles`; returns that line.
fn assert_fails(o: &Output, code: i32, needles: &[&str]) -> String {
    let err = stderr(o);
    assert_eq!(
        o.status.code(),
        Some(code),
        "expected exit {code}\nstdout: {}\nstderr: {err}",
        stdout(o)
    );
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "error is not one line: {err:?}");
    assert!(lines[0].starts_with("git-pushmirror: "), "{err}");
    for n in needles {
        assert!(lines[0].contains(n), "error {err:?} does not name {n:?}");
    }
    lines[0].to_string()
}

fn json_of(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}{}", stdout(o), stderr(o)))
}

fn pm_json(env: &Env, repo: &Path, args: &[&str]) -> Value {
    let o = env.pm(repo, args);
    assert!(o.status.success(), "{args:?}: {}{}", stdout(&o), stderr(&o));
    json_of(&o)
}

fn mirrors_of(doc: &Value) -> Vec<Value> {
    doc["mirrors"].as_array().expect("mirrors array").clone()
}

fn find<'a>(list: &'a [Value], name: &str) -> &'a Value {
    list.iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("no mirror {name} in {list:?}"))
}

/// `git-pushmirror <args>` without `--repo`, from `cwd`.
fn pm_in(env: &Env, cwd: &Path, args: &[&str]) -> Output {
    env.cmd(bin())
        .current_dir(cwd)
        .args(args)
        .output()
        .expect("run git-pushmirror")
}

/// A foreign post-receive hook that appends its stdin to `log` and says hello to the pusher.
fn recording_hook(log: &Path) -> String {
    format!(
        "#!/bin/sh\n# someone else's hook\ncat >> '{}'\necho 'foreign hook ran'\n",
        log.display()
    )
}

#[test]
fn help_has_examples_and_usage_errors_are_one_line_with_exit_2() {
    let env = Env::new();
    let o = env.cmd(bin()).arg("--help").output().unwrap();
    assert_eq!(o.status.code(), Some(0));
    let help = stdout(&o);
    for want in [
        "Examples:",
        "install --hooks-dir",
        "sweep --root",
        "Exit status",
    ] {
        assert!(help.contains(want), "--help lacks {want}: {help}");
    }
    let o = env.cmd(bin()).args(["set", "--help"]).output().unwrap();
    assert!(stdout(&o).contains("Keys:") && stdout(&o).contains("Examples:"));
    let o = env.cmd(bin()).args(["install", "--help"]).output().unwrap();
    assert!(stdout(&o).contains("post-receive.d") && stdout(&o).contains("--chain"));

    let repo = env.bare("r.git", &[]);
    assert_fails(&env.pm(&repo, &["list", "--bogus"]), 2, &["--bogus"]);
    assert_fails(&env.pm(&repo, &["lst"]), 2, &["lst", "list"]);
    assert_fails(&env.pm(&repo, &["add", "only-a-name"]), 2, &["URL"]);
    assert_fails(&env.pm(&repo, &["set", "m"]), 2, &["KEY=VALUE"]);
    assert_fails(
        &env.pm(&repo, &["add", "m", "/tmp/x.git", "--debounce", "soon"]),
        2,
        &["soon"],
    );
    assert_fails(
        &env.pm(&repo, &["hook", "pre-receive"]),
        2,
        &["pre-receive"],
    );
    // Not a repository.
    let not_repo = env.path("plain-dir");
    std::fs::create_dir_all(&not_repo).unwrap();
    assert_fails(&env.pm(&not_repo, &["list"]), 2, &["not a git repository"]);
    assert_fails(
        &pm_in(&env, &not_repo, &["status"]),
        2,
        &["not a git repository"],
    );
}

#[test]
fn mirror_commands_happy_paths_and_error_paths() {
    let env = Env::new();
    let up = env.upstream("up.git");
    let m1 = env.bare("m1.git", &[]);

    // list on a repository without mirrors.
    assert!(mirrors_of(&pm_json(&env, &up, &["list", "--json"])).is_empty());
    assert!(env.pm_ok(&up, &["list"]).contains("no mirrors"));

    let out = env.pm_ok(
        &up,
        &[
            "add",
            "one",
            m1.to_str().unwrap(),
            "--debounce",
            "200ms",
            "--timeout",
            "30s",
        ],
    );
    assert!(out.contains("added mirror one"), "{out}");
    let config = up.join("pushmirror/config.yaml");
    assert_eq!(mode(&config), 0o600);

    // add: errors, each naming what to fix, and nothing written.
    let before = std::fs::read(&config).unwrap();
    assert_fails(
        &env.pm(&up, &["add", "one", "/tmp/elsewhere.git"]),
        2,
        &["`one`", "already exists"],
    );
    assert_fails(&env.pm(&up, &["add", "two", "ext::sh -c id"]), 2, &["url"]);
    assert_fails(
        &env.pm(&up, &["add", "../evil", "/tmp/x.git"]),
        2,
        &["../evil"],
    );
    assert_fails(
        &env.pm(&up, &["add", "two", "http://example.com/a.git"]),
        2,
        &["http"],
    );
    assert_fails(
        &env.pm(
            &up,
            &["add", "two", "/tmp/x.git", "--only-protected-branches"],
        ),
        2,
        &["protected"],
    );
    assert_fails(
        &env.pm(&up, &["add", "two", "/tmp/x.git", "--username", "bot"]),
        2,
        &["--password-file"],
    );
    assert_eq!(
        std::fs::read(&config).unwrap(),
        before,
        "a failed add wrote the config"
    );

    // list / show, as text and JSON.
    let list = env.pm_ok(&up, &["list"]);
    assert!(
        list.starts_with("one\t") && list.contains("enabled"),
        "{list}"
    );
    let doc = pm_json(&env, &up, &["list", "--json"]);
    let l = mirrors_of(&doc);
    assert_eq!(l.len(), 1);
    assert_eq!(l[0]["name"], "one");
    assert_eq!(l[0]["url"], m1.to_str().unwrap());
    assert_eq!(l[0]["enabled"], true);
    assert_eq!(l[0]["from_rule"], false);
    assert_eq!(l[0]["auth"]["method"], "none");
    assert_eq!(l[0]["debounce"], "200ms");
    let show = pm_json(&env, &up, &["show", "one", "--json"]);
    assert_eq!(show["name"], "one");
    assert_eq!(show["timeout"], "30s");
    assert_eq!(show["effective"]["debounce"], "200ms");
    assert_eq!(show["effective"]["max_delay"], "5m");
    assert_eq!(show["effective"]["timeout"], "30s");
    assert!(env.pm_ok(&up, &["show", "one"]).contains("name: one"));
    assert_fails(&env.pm(&up, &["show", "nope"]), 2, &["`nope`"]);
    assert_fails(&env.pm(&up, &["show", "nope", "--json"]), 2, &["`nope`"]);

    // set: several keys at once, lists, nested auth keys, and removal with `key=`.
    env.pm_ok(
        &up,
        &[
            "set",
            "one",
            "debounce=5s",
            "keep_divergent_refs=true",
            "only_protected_branches=true",
            "protected=main,release/*",
            "refs=refs/notes/",
        ],
    );
    let show = pm_json(&env, &up, &["show", "one", "--json"]);
    assert_eq!(show["debounce"], "5s");
    assert_eq!(show["keep_divergent_refs"], true);
    assert_eq!(show["only_protected_branches"], true);
    assert_eq!(show["protected"], serde_json::json!(["main", "release/*"]));
    assert_eq!(show["refs"], serde_json::json!(["refs/notes/"]));
    assert_eq!(
        show["effective"]["max_delay"], "1m",
        "protected-only default max_delay"
    );
    env.pm_ok(
        &up,
        &[
            "set",
            "one",
            // Password auth is for http(s) mirrors only.
            "url=https://127.0.0.1:1/one.git",
            "auth.method=password",
            "auth.username=bot",
            "auth.password_env=PM_TOKEN",
        ],
    );
    let show = pm_json(&env, &up, &["show", "one", "--json"]);
    assert_eq!(show["auth"]["method"], "password");
    assert_eq!(show["auth"]["username"], "bot");
    assert_eq!(show["auth"]["password_env"], "PM_TOKEN");
    env.pm_ok(
        &up,
        &[
            "set",
            "one",
            &format!("url={}", m1.display()),
            "auth=",
            "only_protected_branches=false",
            "protected=",
            "debounce=",
            "refs=",
        ],
    );
    let show = pm_json(&env, &up, &["show", "one", "--json"]);
    assert_eq!(show["auth"]["method"], "none");
    assert!(show["debounce"].is_null());
    assert_eq!(show["effective"]["debounce"], "1s", "built-in default");

    // set: errors (unknown mirror, bad key, bad value), nothing written.
    let before = std::fs::read(&config).unwrap();
    assert_fails(
        &env.pm(&up, &["set", "nope", "debounce=1s"]),
        2,
        &["`nope`"],
    );
    assert_fails(
        &env.pm(&up, &["set", "one", "debounse=1s"]),
        2,
        &["debounse"],
    );
    assert_fails(
        &env.pm(&up, &["set", "one", "auth.colour=red"]),
        2,
        &["colour"],
    );
    assert_fails(&env.pm(&up, &["set", "one", "debounce=soon"]), 2, &["soon"]);
    assert_fails(&env.pm(&up, &["set", "one", "timeout=0s"]), 2, &["timeout"]);
    assert_fails(
        &env.pm(&up, &["set", "one", "enabled=maybe"]),
        2,
        &["maybe"],
    );
    assert_fails(&env.pm(&up, &["set", "one", "url=ext::sh"]), 2, &["url"]);
    assert_fails(
        &env.pm(&up, &["set", "one", "protected=refs/heads/x"]),
        2,
        &["refs/heads/x"],
    );
    assert_fails(&env.pm(&up, &["set", "one", "debounce"]), 2, &["KEY=VALUE"]);
    assert_fails(&env.pm(&up, &["set", "one", "name=other"]), 2, &["renamed"]);
    assert_fails(&env.pm(&up, &["set", "one", "repos=team/*"]), 2, &["repos"]);
    let o = env.pm(&up, &["set", "one", "auth.password=hunter2"]);
    assert!(!stderr(&o).contains("hunter2"));
    assert_fails(&o, 2, &["auth.password_file"]);
    assert_eq!(
        std::fs::read(&config).unwrap(),
        before,
        "a failed set wrote the config"
    );

    // disable / enable.
    assert!(env
        .pm_ok(&up, &["disable", "one"])
        .contains("disabled mirror one"));
    assert_eq!(
        mirrors_of(&pm_json(&env, &up, &["list", "--json"]))[0]["enabled"],
        false
    );
    assert!(env.pm_ok(&up, &["list"]).contains("disabled"));
    assert_fails(&env.pm(&up, &["disable", "nope"]), 2, &["`nope`"]);
    assert_fails(&env.pm(&up, &["enable", "nope"]), 2, &["`nope`"]);
    assert!(env
        .pm_ok(&up, &["enable", "one"])
        .contains("enabled mirror one"));
    assert_eq!(
        mirrors_of(&pm_json(&env, &up, &["list", "--json"]))[0]["enabled"],
        true
    );

    // status of one mirror, and of an unknown one.
    let st = pm_json(&env, &up, &["status", "one", "--json"]);
    assert_eq!(mirrors_of(&st).len(), 1);
    assert_fails(&env.pm(&up, &["status", "nope"]), 2, &["`nope`"]);

    // remove, twice.
    assert!(env
        .pm_ok(&up, &["remove", "one"])
        .contains("removed mirror one"));
    assert!(mirrors_of(&pm_json(&env, &up, &["list", "--json"])).is_empty());
    assert!(!up.join("pushmirror/state/one.json").exists());
    assert_fails(&env.pm(&up, &["remove", "one"]), 2, &["`one`"]);
}

#[test]
fn sync_wait_and_status_json_healthy_and_failed() {
    let env = Env::new();
    env.write_server_config("defaults:\n  max_attempts: 1\n");
    let up = env.upstream("up.git");
    let good = env.bare("good.git", &[]);
    // Pushes are held back by a long debounce, so `sync` is what sends them.
    env.pm_ok(
        &up,
        &["add", "good", good.to_str().unwrap(), "--debounce", "1h"],
    );
    let wc = env.clone(&up, "wc");
    env.commit(&wc, "one");
    env.git(&wc, &["tag", "v1"]);
    env.push(&wc, &["main", "v1"]);

    let o = env.pm(&up, &["sync", "good", "--wait"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("good: synced"));
    assert_eq!(env.heads_and_tags(&good), env.heads_and_tags(&up));

    let doc = env.status_json(&up);
    assert_eq!(
        doc["repository"],
        up.canonicalize().unwrap().to_str().unwrap()
    );
    assert_eq!(doc["silent_mode"], false);
    assert_eq!(doc["hook_installed"], true);
    assert!(doc["flusher_running"].is_boolean());
    assert_eq!(doc["spool_damaged_records"], 0);
    let m = find(&mirrors_of(&doc), "good").clone();
    assert_eq!(m["update_status"], "finished");
    assert_eq!(m["pending_updates"], 0);
    assert!(m["oldest_pending_age_seconds"].is_null());
    assert!(m["last_successful_update_at"].is_string());
    assert!(m["last_update_started_at"].is_string());
    assert!(m["last_error"].is_null());
    assert_eq!(m["divergent_refs"], serde_json::json!([]));
    assert_eq!(m["healthy"], true);
    assert_eq!(m["from_rule"], false);
    assert_eq!(env.pm(&up, &["status"]).status.code(), Some(0));
    assert!(stdout(&env.pm(&up, &["status"])).contains("[finished]"));

    // A mirror that cannot be reached: sync --wait and status both exit 1, naming it.
    let gone = env.path("missing/never.git");
    env.pm_ok(
        &up,
        &["add", "broken", gone.to_str().unwrap(), "--debounce", "1h"],
    );
    let o = env.pm(&up, &["sync", "broken", "--wait"]);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    assert!(stderr(&o).contains("broken: failed"), "{}", stderr(&o));
    let o = env.pm(&up, &["status", "--json"]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "status must flag the failed mirror"
    );
    let m = find(&mirrors_of(&json_of(&o)), "broken").clone();
    assert_eq!(m["update_status"], "failed");
    assert!(m["last_error"].is_string());
    assert_eq!(m["healthy"], false);
    assert_eq!(env.pm(&up, &["status", "good"]).status.code(), Some(0));

    // Error paths of sync.
    assert_fails(&env.pm(&up, &["sync", "nope"]), 2, &["`nope`"]);
    env.pm_ok(&up, &["disable", "broken"]);
    assert_fails(&env.pm(&up, &["sync", "broken"]), 1, &["disabled"]);
    assert_eq!(
        env.pm(&up, &["status"]).status.code(),
        Some(0),
        "a disabled mirror is not unhealthy"
    );
    let plain = env.bare("nomirrors.git", &[]);
    assert_fails(&env.pm(&plain, &["sync"]), 1, &["no enabled mirror"]);

    // Silent mode shows in status and refuses a sync.
    env.write_server_config("silent: true\n");
    assert_eq!(env.status_json(&up)["silent_mode"], true);
    assert!(stdout(&env.pm(&up, &["status"])).contains("SILENT MODE"));
    assert_fails(&env.pm(&up, &["sync", "good"]), 1, &["silent mode"]);
    assert!(env.wait_flushers_gone());
}

#[test]
fn git_pushmirror_runs_as_a_git_subcommand() {
    let env = Env::new();
    let up = env.upstream("up.git");
    let m = env.bare("m.git", &[]);
    env.pm_ok(&up, &["add", "m", m.to_str().unwrap()]);
    let path = format!(
        "{}:{}",
        bin().parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let git = |cwd: &Path, args: &[&str]| {
        env.cmd("git")
            .env("PATH", &path)
            .current_dir(cwd)
            .args(args)
            .output()
            .unwrap()
    };
    let o = git(
        env.dir.path(),
        &["-C", up.to_str().unwrap(), "pushmirror", "status", "--json"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let doc = json_of(&o);
    assert_eq!(find(&mirrors_of(&doc), "m")["url"], m.to_str().unwrap());
    // From a subdirectory of the bare repository, and with --git-dir.
    let o = git(&up.join("refs"), &["pushmirror", "list", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(mirrors_of(&json_of(&o)).len(), 1);
    let o = git(
        env.dir.path(),
        &["--git-dir", up.to_str().unwrap(), "pushmirror", "list"],
    );
    assert!(
        stdout(&o).starts_with("m\t"),
        "{}{}",
        stdout(&o),
        stderr(&o)
    );
    // Outside any repository: a usage error.
    let o = git(env.dir.path(), &["pushmirror", "list"]);
    assert_fails(&o, 2, &["not a git repository"]);
}

/// The server config of the rule tests: `root`, defaults, and one rule for `team/*`.
fn rule_config(env: &Env, root: &Path, extra: &str) -> String {
    format!(
        "root: {root}\nconcurrency: 2\nlog_level: debug\ndefaults:\n  debounce: 100ms\n  max_attempts: 1\n{extra}rules:\n  - name: backup\n    url: {mirrors}/${{name}}.git\n    repos: [\"team/*\"]\n",
        root = root.display(),
        mirrors = env.path("mirrors").display(),
    )
}

#[test]
fn server_rule_mirrors_two_repos_to_two_targets_and_repos_can_override_it() {
    let env = Env::new();
    let root = env.path("srv");
    env.write_server_config(&rule_config(&env, &root, ""));
    let a = env.upstream("srv/team/a.git");
    let b = env.upstream("srv/team/b.git");
    let other = env.upstream("srv/other/c.git");
    let ma = env.bare("mirrors/team/a.git", &[]);
    let mb = env.bare("mirrors/team/b.git", &[]);
    // Reached only by the rule: no pushmirror/ directory until the first push.
    assert!(!a.join("pushmirror").exists());

    let l = mirrors_of(&pm_json(&env, &a, &["list", "--json"]));
    assert_eq!(l.len(), 1);
    assert_eq!(l[0]["name"], "backup");
    assert_eq!(l[0]["url"], ma.to_str().unwrap());
    assert_eq!(l[0]["from_rule"], true);
    assert!(env.pm_ok(&a, &["list"]).contains("(server rule)"));
    let show = pm_json(&env, &b, &["show", "backup", "--json"]);
    assert_eq!(show["url"], mb.to_str().unwrap());
    assert_eq!(
        show["effective"]["debounce"], "100ms",
        "server-wide default"
    );
    assert!(mirrors_of(&pm_json(&env, &other, &["list", "--json"])).is_empty());

    let wa = env.clone(&a, "wa");
    let wb = env.clone(&b, "wb");
    let wc = env.clone(&other, "wc");
    let ca = env.commit(&wa, "in a");
    let cb = env.commit(&wb, "in b");
    env.commit(&wc, "in c");
    env.push(&wa, &["main"]);
    env.push(&wb, &["main"]);
    env.push(&wc, &["main"]);
    env.wait_mirrored(&a, &ma);
    env.wait_mirrored(&b, &mb);
    assert_eq!(env.refs(&ma)["refs/heads/main"], ca);
    assert_eq!(env.refs(&mb)["refs/heads/main"], cb);
    assert!(
        a.join("pushmirror").is_dir(),
        "the hook creates pushmirror/"
    );
    assert_eq!(
        find(&mirrors_of(&env.status_json(&a)), "backup")["from_rule"],
        true
    );

    // A rule's mirror cannot be removed from one repository, but can be disabled there: that
    // writes an override into the repository's config, which `remove` takes away again.
    assert_fails(
        &env.pm(&a, &["remove", "backup"]),
        2,
        &["server rule", "disable"],
    );
    assert!(env
        .pm_ok(&a, &["enable", "backup"])
        .contains("already enabled"));
    assert!(
        !a.join("pushmirror/config.yaml").exists(),
        "a no-op enable wrote an override"
    );
    let o = env.pm(&a, &["disable", "backup"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("server rule"), "{}", stderr(&o));
    let l = mirrors_of(&pm_json(&env, &a, &["list", "--json"]));
    assert_eq!(
        (l[0]["enabled"].clone(), l[0]["from_rule"].clone()),
        (false.into(), false.into())
    );
    assert_eq!(
        l[0]["url"],
        ma.to_str().unwrap(),
        "the override keeps the resolved URL"
    );
    let ca2 = env.commit(&wa, "not mirrored while disabled");
    env.push(&wa, &["main"]);
    let out = env.pm_ok(&a, &["remove", "backup"]);
    assert!(out.contains("server rule `backup` applies again"), "{out}");
    let l = mirrors_of(&pm_json(&env, &a, &["list", "--json"]));
    assert_eq!(
        (l[0]["enabled"].clone(), l[0]["from_rule"].clone()),
        (true.into(), true.into())
    );
    env.wait_mirrored(&a, &ma);
    assert_eq!(env.refs(&ma)["refs/heads/main"], ca2);

    // A repository's own mirror of the same name replaces the rule there (b), not elsewhere (a).
    let elsewhere = env.bare("elsewhere/b.git", &[]);
    let out = env.pm_ok(&b, &["add", "backup", elsewhere.to_str().unwrap()]);
    assert!(out.contains("overrides the server rule"), "{out}");
    let l = mirrors_of(&pm_json(&env, &b, &["list", "--json"]));
    assert_eq!(l.len(), 1);
    assert_eq!(l[0]["url"], elsewhere.to_str().unwrap());
    assert_eq!(
        find(
            &mirrors_of(&pm_json(&env, &a, &["list", "--json"])),
            "backup"
        )["url"],
        ma.to_str().unwrap()
    );
    env.wait_mirrored(&b, &elsewhere);

    // The issue's example, literally: one file, every repository under srv/team/, a GitHub
    // URL template (only resolved here, never contacted).
    env.write_server_config(&format!(
        "root: {}\nrules:\n  - name: github\n    url: https://github.com/team/${{name}}.git\n    enabled: false\n",
        root.join("team").display()
    ));
    for (repo, want) in [
        (&a, "https://github.com/team/a.git"),
        (&b, "https://github.com/team/b.git"),
    ] {
        let l = mirrors_of(&pm_json(&env, repo, &["list", "--json"]));
        assert_eq!(find(&l, "github")["url"], want);
    }
    assert!(mirrors_of(&pm_json(&env, &other, &["list", "--json"])).is_empty());

    // A broken server config is one line naming the file, for every command.
    env.write_server_config("rules:\n  - name: x\n    url: /tmp/${name}.git\n    colour: red\n");
    assert_fails(&env.pm(&a, &["list"]), 1, &["server.yaml", "colour"]);
    assert!(env.wait_flushers_gone());
}

#[test]
fn sweep_backfills_rule_repos_retries_failures_and_respects_silent_mode() {
    let env = Env::new();
    let root = env.path("srv");
    // Repositories with history from before any rule existed, and no hook at all.
    let a = env.bare("srv/team/a.git", &[]);
    let b = env.bare("srv/team/b.git", &[]);
    let other = env.bare("srv/other/c.git", &[]);
    for (repo, wc) in [(&a, "wa"), (&b, "wb"), (&other, "wc")] {
        let w = env.clone(repo, wc);
        env.commit(&w, wc);
        env.git(&w, &["tag", &format!("t-{wc}")]);
        env.push(&w, &["main", "--tags"]);
    }
    let ma = env.bare("mirrors/team/a.git", &[]);

    // Usage errors.
    assert_fails(
        &env.cmd(bin()).arg("sweep").output().unwrap(),
        2,
        &["--root"],
    );
    assert_fails(
        &env.cmd(bin())
            .args(["sweep", "--root", "/nonexistent/dir"])
            .output()
            .unwrap(),
        2,
        &["/nonexistent/dir"],
    );

    // Silent mode: nothing is contacted, nothing is created.
    env.write_server_config(&rule_config(&env, &root, "silent: true\n"));
    let o = env.cmd(bin()).arg("sweep").output().unwrap();
    assert!(
        o.status.success() && stdout(&o).contains("silent mode"),
        "{}",
        stdout(&o)
    );
    assert!(env.heads_and_tags(&ma).is_empty());

    // `root` comes from the config; a and b have never synced to the new rule, b's mirror is
    // missing. Sweep waits for its flushers, so the outcome is there when it returns.
    env.write_server_config(&rule_config(&env, &root, ""));
    let o = env.cmd(bin()).arg("sweep").output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("team/a.git: flushing (first sync)"), "{out}");
    assert!(out.contains("team/b.git: flushing"), "{out}");
    assert!(!out.contains("other/c.git"), "{out}");
    assert!(out.contains("sweep: 2 repositories flushed"), "{out}");
    assert_eq!(env.heads_and_tags(&ma), env.heads_and_tags(&a));
    assert!(
        !other.join("pushmirror").exists(),
        "sweep touched a repository no rule reaches"
    );
    let mb_status = env.mirror_status(&b, "backup");
    assert_eq!(mb_status["update_status"], "failed", "{mb_status}");
    assert_eq!(env.pm(&b, &["status"]).status.code(), Some(1));

    // Nothing new: a is left alone; b's failure is retried (its mirror now exists).
    let mb = env.bare("mirrors/team/b.git", &[]);
    let o = env
        .cmd(bin())
        .args(["sweep", "--root", root.to_str().unwrap()])
        .output()
        .unwrap();
    let out = stdout(&o);
    assert!(o.status.success(), "{out}{}", stderr(&o));
    assert!(out.contains("team/b.git: flushing (retry)"), "{out}");
    assert!(!out.contains("team/a.git"), "{out}");
    assert!(out.contains("sweep: 1 repository flushed"), "{out}");
    assert_eq!(env.heads_and_tags(&mb), env.heads_and_tags(&b));
    assert_eq!(env.mirror_status(&b, "backup")["update_status"], "finished");
    let out = stdout(&env.cmd(bin()).arg("sweep").output().unwrap());
    assert!(out.contains("sweep: 0 repositories flushed"), "{out}");

    // Pending work (a push whose flusher is gone) is flushed by the next sweep.
    std::fs::write(
        a.join("pushmirror/config.yaml"),
        "defaults:\n  debounce: 1h\n",
    )
    .unwrap();
    env.pm_ok(&a, &["install"]);
    let w = env.path("wa");
    env.commit(&w, "later");
    env.push(&w, &["main"]);
    assert!(wait_until(Duration::from_secs(120), || {
        env.mirror_status(&a, "backup")["pending_updates"] == 1
    }));
    for pid in flusher_pids(env.dir.path()) {
        unsafe_kill(pid);
    }
    // Until the kernel has closed the killed flusher's files it still holds the repository's
    // lock, and sweep's flusher would leave the work to it.
    assert!(wait_until(Duration::from_secs(120), || {
        env.status_json(&a)["flusher_running"] == false
    }));
    std::fs::write(a.join("pushmirror/config.yaml"), "").unwrap();
    let out = stdout(&env.cmd(bin()).arg("sweep").output().unwrap());
    assert!(out.contains("team/a.git: flushing (pending)"), "{out}");
    env.wait_mirrored(&a, &ma);

    // A repository whose config cannot be read is named and skipped; sweep exits 1.
    std::fs::write(b.join("pushmirror/config.yaml"), "mirrors: [oops\n").unwrap();
    let o = env.cmd(bin()).arg("sweep").output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("team/b.git") && stderr(&o).contains("skipped"),
        "{}",
        stderr(&o)
    );
    assert!(env.wait_flushers_gone());
}

#[test]
fn install_is_idempotent_upgrades_its_wrapper_and_reports_a_missing_binary() {
    let env = Env::new();
    let up = env.bare("up.git", &[]);
    let hook = up.join("hooks/post-receive");
    assert!(env.pm_ok(&up, &["install"]).contains("installed"));
    let fresh = std::fs::read(&hook).unwrap();
    assert_eq!(mode(&hook), 0o755);
    let text = String::from_utf8_lossy(&fresh).into_owned();
    assert!(text.contains(bin().to_str().unwrap()), "{text}");
    assert!(env.pm_ok(&up, &["install"]).contains("already installed"));
    assert_eq!(std::fs::read(&hook).unwrap(), fresh);
    assert_eq!(env.status_json(&up)["hook_installed"], true);

    // An older wrapper of ours (another version, another binary path) is upgraded in place.
    std::fs::write(
        &hook,
        "#!/bin/sh\n# git-pushmirror post-receive wrapper v0\nexec /opt/old/git-pushmirror hook post-receive\n",
    )
    .unwrap();
    assert!(env.pm_ok(&up, &["install"]).contains("updated"));
    assert_eq!(std::fs::read(&hook).unwrap(), fresh);

    // The usual form has no shell: `#!<binary> post-receive`. A binary gone from there does
    // not fail the push; git says it cannot exec the hook, and status names the missing binary.
    let shebang = format!("#!{} post-receive", bin().display());
    if shebang.len() <= 127 && !shebang.contains(char::is_whitespace) {
        assert!(text.starts_with(&format!("{shebang}\n")), "{text}");
    }
    let gone = |dir: &str| {
        let copy = env.path(dir).join("git-pushmirror");
        std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
        std::fs::copy(bin(), &copy).unwrap();
        // Another test thread that forks while the copy is still open for writing holds that
        // descriptor until its child execs: the kernel then refuses to run the copy (ETXTBSY).
        // That passes in moments; retry, with a generous deadline.
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        let o = loop {
            match env
                .cmd(&copy)
                .arg("--repo")
                .arg(&up)
                .arg("install")
                .output()
            {
                Err(e)
                    if e.kind() == std::io::ErrorKind::ExecutableFileBusy
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(50))
                }
                other => break other.unwrap(),
            }
        };
        assert!(stdout(&o).contains("updated"), "{}", stderr(&o));
        assert_eq!(env.status_json(&up)["hook_installed"], true);
        std::fs::remove_file(&copy).unwrap();
        let st = env.status_json(&up);
        assert_eq!(st["hook_installed"], false);
        let problem = st["hook_problem"].as_str().unwrap_or_default().to_string();
        assert!(
            problem.contains(copy.to_str().unwrap()) && problem.contains("missing"),
            "{problem}"
        );
        let human = stdout(&env.pm(&up, &["status"]));
        assert!(human.contains(&problem), "{human}");
        std::fs::read_to_string(&hook).unwrap()
    };
    let wc = env.clone(&up, "wc");
    let text = gone("bin-copy");
    assert!(text.starts_with("#!"), "{text}");
    let direct = !text.starts_with("#!/bin/sh\n");
    env.commit(&wc, "one");
    let o = env.push(&wc, &["main"]);
    if direct {
        assert!(stderr(&o).contains("cannot exec"), "{}", stderr(&o));
    }

    // A path that cannot stand on a `#!` line (a blank in it) gets the sh wrapper, which says
    // what to do itself when the binary is gone.
    let text = gone("bin copy");
    assert!(text.starts_with("#!/bin/sh\n"), "{text}");
    env.commit(&wc, "two");
    let o = env.push(&wc, &["main"]);
    let err = stderr(&o);
    assert!(
        err.contains("is missing") && err.contains("NOT mirrored"),
        "{err}"
    );
    env.pm_ok(&up, &["install"]);
    assert_eq!(std::fs::read(&hook).unwrap(), fresh);

    // uninstall removes it; a second uninstall finds nothing and changes nothing.
    assert!(env
        .pm_ok(&up, &["uninstall"])
        .contains("removed git-pushmirror"));
    assert!(!hook.exists());
    assert!(env.pm_ok(&up, &["uninstall"]).contains("not installed"));
    assert_eq!(env.status_json(&up)["hook_installed"], false);
    assert!(stdout(&env.pm(&up, &["status"])).contains("hook is not installed"));
    assert!(env.status_json(&up)["hook_problem"]
        .as_str()
        .is_some_and(|p| p.contains("git-pushmirror install")));
}

#[test]
fn install_chains_an_existing_post_receive_and_uninstall_restores_it_byte_identical() {
    let env = Env::new();
    let up = env.bare("up.git", &[]);
    let mirror = env.bare("mirror.git", &[]);
    let hook = up.join("hooks/post-receive");
    let seen = env.path("foreign-hook-stdin");
    let foreign = recording_hook(&seen);
    write_exec(&hook, &foreign);
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o750)).unwrap();

    // Refused without --chain, and the foreign hook is untouched.
    let o = env.pm(&up, &["install"]);
    assert_fails(&o, 1, &["--chain", "post-receive"]);
    assert_eq!(std::fs::read_to_string(&hook).unwrap(), foreign);

    let out = env.pm_ok(&up, &["install", "--chain"]);
    assert!(out.contains("runs") && out.contains("first"), "{out}");
    assert!(env
        .pm_ok(&up, &["install", "--chain"])
        .contains("already installed"));
    assert!(env.pm_ok(&up, &["install"]).contains("already installed"));
    env.pm_ok(
        &up,
        &["add", "m", mirror.to_str().unwrap(), "--debounce", "100ms"],
    );

    // One push of two refs: the foreign hook gets exactly git's stdin, its output still reaches
    // the pusher, and the mirror gets the refs.
    let wc = env.clone(&up, "wc");
    let c1 = env.commit(&wc, "one");
    env.git(&wc, &["branch", "feature"]);
    let o = env.push(&wc, &["main", "feature"]);
    assert!(stderr(&o).contains("foreign hook ran"), "{}", stderr(&o));
    let zero = "0".repeat(40);
    let got = std::fs::read_to_string(&seen).unwrap();
    let mut lines: Vec<&str> = got.lines().collect();
    lines.sort_unstable();
    assert!(got.ends_with('\n'), "{got:?}");
    assert_eq!(
        lines,
        [
            format!("{zero} {c1} refs/heads/feature"),
            format!("{zero} {c1} refs/heads/main")
        ],
        "the chained hook's stdin"
    );
    env.wait_mirrored(&up, &mirror);
    let c2 = env.commit(&wc, "two");
    env.push(&wc, &["main"]);
    assert!(std::fs::read_to_string(&seen)
        .unwrap()
        .ends_with(&format!("{c1} {c2} refs/heads/main\n")));
    env.wait_mirrored(&up, &mirror);

    // uninstall puts the foreign hook back exactly: bytes and mode.
    env.pm_ok(&up, &["uninstall"]);
    assert_eq!(std::fs::read_to_string(&hook).unwrap(), foreign);
    assert_eq!(mode(&hook), 0o750);
    assert!(!up.join("hooks/post-receive.pushmirror-chained").exists());
    assert!(env.pm_ok(&up, &["uninstall"]).contains("not installed"));
    assert_eq!(std::fs::read_to_string(&hook).unwrap(), foreign);
    assert!(env.wait_flushers_gone());
}

#[test]
fn install_follows_core_hooks_path() {
    let env = Env::new();
    let up = env.bare("up.git", &[]);
    let mirror = env.bare("mirror.git", &[]);
    let shared = env.path("shared-hooks");
    std::fs::create_dir_all(&shared).unwrap();
    env.git(&up, &["config", "core.hooksPath", shared.to_str().unwrap()]);
    let out = env.pm_ok(&up, &["install"]);
    assert!(
        out.contains(shared.join("post-receive").to_str().unwrap()),
        "{out}"
    );
    assert!(!up.join("hooks/post-receive").exists());
    assert_eq!(env.status_json(&up)["hook_installed"], true);
    env.pm_ok(
        &up,
        &["add", "m", mirror.to_str().unwrap(), "--debounce", "100ms"],
    );
    let wc = env.clone(&up, "wc");
    env.commit(&wc, "one");
    env.push(&wc, &["main"]);
    env.wait_mirrored(&up, &mirror);
    env.pm_ok(&up, &["uninstall"]);
    assert!(!shared.join("post-receive").exists());

    // A relative core.hooksPath is relative to the bare repository.
    env.git(&up, &["config", "core.hooksPath", "my-hooks"]);
    env.pm_ok(&up, &["install"]);
    assert!(up.join("my-hooks/post-receive").is_file());
    env.pm_ok(&up, &["uninstall"]);
    assert!(!up.join("my-hooks/post-receive").exists());
    assert!(env.wait_flushers_gone());
}

/// Gitea's dispatcher, as it writes it into every repository's hooks/post-receive.
const GITEA_DISPATCHER: &str = r#"#!/usr/bin/env bash
# AUTO GENERATED BY GITEA, DO NOT MODIFY
data=$(cat)
exitcodes=""
hookname=$(basename $0)
GIT_DIR=${GIT_DIR:-$(dirname $0)/..}

for hook in ${GIT_DIR}/hooks/${hookname}.d/*; do
  test -x "${hook}" && test -f "${hook}" || continue
  echo "${data}" | "${hook}"
  exitcodes="${exitcodes} $?"
done

for i in ${exitcodes}; do
  [ ${i} -eq 0 ] || exit ${i}
done
"#;

#[test]
fn install_into_gitea_style_post_receive_d() {
    let env = Env::new();
    let up = env.bare("up.git", &[]);
    let mirror = env.bare("mirror.git", &[]);
    let hooks = up.join("hooks");
    write_exec(&hooks.join("post-receive"), GITEA_DISPATCHER);
    let seen = env.path("gitea-stdin");
    let gitea_hook = recording_hook(&seen);
    write_exec(&hooks.join("post-receive.d/gitea"), &gitea_hook);

    let out = env.pm_ok(&up, &["install"]);
    let ours = hooks.join("post-receive.d/git-pushmirror");
    assert!(out.contains(ours.to_str().unwrap()), "{out}");
    assert!(ours.is_file());
    assert!(env.pm_ok(&up, &["install"]).contains("already installed"));
    assert_eq!(env.status_json(&up)["hook_installed"], true);
    env.pm_ok(
        &up,
        &["add", "m", mirror.to_str().unwrap(), "--debounce", "100ms"],
    );

    let wc = env.clone(&up, "wc");
    let c1 = env.commit(&wc, "one");
    env.push(&wc, &["main"]);
    env.wait_mirrored(&up, &mirror);
    assert!(std::fs::read_to_string(&seen)
        .unwrap()
        .contains(&format!("{c1} refs/heads/main")));

    env.pm_ok(&up, &["uninstall"]);
    assert!(!ours.exists());
    assert_eq!(
        std::fs::read_to_string(hooks.join("post-receive")).unwrap(),
        GITEA_DISPATCHER
    );
    assert_eq!(
        std::fs::read_to_string(hooks.join("post-receive.d/gitea")).unwrap(),
        gitea_hook
    );
    assert!(env.wait_flushers_gone());
}

#[test]
fn install_into_gitlab_custom_hooks_and_a_shared_post_receive_d() {
    let env = Env::new();
    let up = env.bare("up.git", &[]);
    let mirror = env.bare("mirror.git", &[]);
    std::fs::create_dir_all(up.join("custom_hooks")).unwrap();
    let out = env.pm_ok(&up, &["install"]);
    let ours = up.join("custom_hooks/post-receive.d/git-pushmirror");
    assert!(out.contains(ours.to_str().unwrap()), "{out}");
    assert!(!up.join("hooks/post-receive").exists());
    env.pm_ok(
        &up,
        &["add", "m", mirror.to_str().unwrap(), "--debounce", "100ms"],
    );

    // Plain git does not run custom_hooks/ (Gitaly does): push, then run the hook as Gitaly
    // would, from the repository with the push's stdin.
    let wc = env.clone(&up, "wc");
    let c1 = env.commit(&wc, "one");
    env.push(&wc, &["main"]);
    let mut child = env
        .cmd(&ours)
        .current_dir(&up)
        .env("GIT_DIR", &up)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    writeln!(
        child.stdin.take().unwrap(),
        "{} {c1} refs/heads/main",
        "0".repeat(40)
    )
    .unwrap();
    assert!(child.wait().unwrap().success());
    env.wait_mirrored(&up, &mirror);
    env.pm_ok(&up, &["uninstall"]);
    assert!(!ours.exists());

    // --hooks-dir: a post-receive.d/ shared by many repositories (GitLab's global
    // custom_hooks_dir), and a plain shared directory.
    let global = env.path("gitaly-custom-hooks/post-receive.d");
    std::fs::create_dir_all(&global).unwrap();
    let neighbour = global.join("audit");
    write_exec(&neighbour, "#!/bin/sh\ncat >/dev/null\n");
    let o = env
        .cmd(bin())
        .args(["install", "--hooks-dir"])
        .arg(&global)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(global.join("git-pushmirror").is_file());
    let o = env
        .cmd(bin())
        .args(["uninstall", "--hooks-dir"])
        .arg(&global)
        .output()
        .unwrap();
    assert!(stdout(&o).contains("removed"), "{}", stdout(&o));
    assert!(!global.join("git-pushmirror").exists());
    assert_eq!(
        std::fs::read_to_string(&neighbour).unwrap(),
        "#!/bin/sh\ncat >/dev/null\n"
    );
    assert!(env.wait_flushers_gone());
}

/// Runs `gitolite <args>` with `home` as the gitolite user's home.
fn gitolite(env: &Env, home: &Path, args: &[&str]) -> String {
    let out = env
        .cmd("gitolite")
        .env("HOME", home)
        .env("USER", servers::current_user())
        .args(args)
        .output()
        .expect("run gitolite");
    assert!(
        out.status.success(),
        "gitolite {args:?}: {}{}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// A real Gitolite (Debian gitolite3) in a temp HOME, reached through a real sshd whose
/// authorized_keys line is the one `gitolite setup` wrote (forced `gitolite-shell admin`).
/// Our hook goes into Gitolite's common hooks once; Gitolite links it into every repository,
/// including one created later through gitolite-admin, and a server rule mirrors them.
#[test]
fn gitolite_common_hook_mirrors_pushes_through_gitolite() {
    if !servers::have_all(&["gitolite", "git"]) || !servers::have_all(servers::SshServer::REQUIRES)
    {
        eprintln!("SKIPPED: gitolite3 or openssh is not installed (tests/install-deps.sh)");
        return;
    }
    let env = Env::new();
    let home = env.path("gitolite-home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(env.path("unused-ssh-root")).unwrap();
    let ssh = servers::SshServer::start(&env.path("unused-ssh-root"));
    let admin_pub = env.path("admin.pub");
    std::fs::copy(ssh.client_key.with_extension("pub"), &admin_pub).unwrap();
    gitolite(&env, &home, &["setup", "-pk", admin_pub.to_str().unwrap()]);

    // Install once into the common hooks; `gitolite setup --hooks-only` links it everywhere.
    let common = home.join(".gitolite/hooks/common");
    let o = env
        .cmd(bin())
        .args(["install", "--hooks-dir"])
        .arg(&common)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains(common.join("post-receive").to_str().unwrap()));
    gitolite(&env, &home, &["setup", "--hooks-only"]);
    let repos = home.join("repositories");
    assert!(
        std::fs::symlink_metadata(repos.join("testing.git/hooks/post-receive"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    let o = env
        .cmd(bin())
        .args(["install", "--hooks-dir"])
        .arg(&common)
        .output()
        .unwrap();
    assert!(stdout(&o).contains("already installed"), "{}", stdout(&o));

    env.write_server_config(&format!(
        "root: {}\ndefaults:\n  debounce: 100ms\nrules:\n  - name: backup\n    url: {}/${{name}}.git\n    repos: [testing, \"team/*\"]\n",
        repos.display(),
        env.path("mirrors").display()
    ));
    let m_testing = env.bare("mirrors/testing.git", &[]);
    let m_app = env.bare("mirrors/team/app.git", &[]);

    // sshd runs gitolite's forced command with a clean environment: the gitolite user's HOME
    // and our test's server config are given in the command, as a real install sets HOME by
    // the account and finds /etc/git-pushmirror/config.yaml.
    let keys = std::fs::read_to_string(home.join(".ssh/authorized_keys")).unwrap();
    let line = keys
        .lines()
        .find(|l| l.contains("gitolite-shell admin"))
        .unwrap_or_else(|| panic!("no gitolite key line in {keys}"));
    let line = line.replacen(
        "command=\"",
        &format!(
            "command=\"env HOME={} USER={} GIT_PUSHMIRROR_CONFIG={} GIT_PUSHMIRROR_RUNTIME_DIR={} ",
            home.display(),
            servers::current_user(),
            env.server_config.display(),
            env.runtime.display()
        ),
        1,
    );
    let authorized_keys = ssh.client_key.parent().unwrap().join("authorized_keys");
    std::fs::write(&authorized_keys, format!("{line}\n")).unwrap();
    let url = |repo: &str| format!("ssh://{}@127.0.0.1:{}/{repo}", ssh.user, ssh.port);
    let git_ssh = |dir: &Path, args: &[&str]| {
        let out = env
            .cmd("git")
            .env("GIT_SSH_COMMAND", ssh.ssh_command())
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}\nsshd log:\n{}",
            stderr(&out),
            ssh.log()
        );
        out
    };

    // A push to an existing repository through gitolite-shell reaches its mirror.
    let wt = env.path("wt");
    git_ssh(
        env.dir.path(),
        &["clone", "-q", &url("testing"), wt.to_str().unwrap()],
    );
    env.git(&wt, &["checkout", "-q", "-B", "main"]);
    let c1 = env.commit(&wt, "through gitolite");
    git_ssh(&wt, &["push", "-q", "origin", "main"]);
    env.wait_mirrored(&repos.join("testing.git"), &m_testing);
    assert_eq!(env.refs(&m_testing)["refs/heads/main"], c1);
    let st = env.status_json(&repos.join("testing.git"));
    assert_eq!(st["hook_installed"], true);
    assert_eq!(find(&mirrors_of(&st), "backup")["from_rule"], true);

    // A repository created later through gitolite-admin gets the hook from Gitolite.
    let wa = env.path("wadmin");
    git_ssh(
        env.dir.path(),
        &["clone", "-q", &url("gitolite-admin"), wa.to_str().unwrap()],
    );
    let conf = wa.join("conf/gitolite.conf");
    let mut text = std::fs::read_to_string(&conf).unwrap();
    text.push_str("\nrepo team/app\n    RW+     =   admin\n");
    std::fs::write(&conf, text).unwrap();
    env.git(&wa, &["commit", "-q", "-am", "add team/app"]);
    git_ssh(&wa, &["push", "-q", "origin", "HEAD"]);
    assert!(repos.join("team/app.git/hooks/post-receive").exists());
    let wapp = env.path("wapp");
    git_ssh(
        env.dir.path(),
        &["clone", "-q", &url("team/app"), wapp.to_str().unwrap()],
    );
    env.git(&wapp, &["checkout", "-q", "-B", "main"]);
    let c2 = env.commit(&wapp, "new repo");
    env.git(&wapp, &["tag", "v1"]);
    git_ssh(&wapp, &["push", "-q", "origin", "main", "v1"]);
    env.wait_mirrored(&repos.join("team/app.git"), &m_app);
    assert_eq!(env.refs(&m_app)["refs/heads/main"], c2);
    // gitolite-admin matches no rule: nothing mirrored for it.
    assert!(mirrors_of(&pm_json(
        &env,
        &repos.join("gitolite-admin.git"),
        &["list", "--json"]
    ))
    .is_empty());

    // Uninstall from the common hooks removes only our file.
    let update = std::fs::read(common.join("update")).unwrap();
    let o = env
        .cmd(bin())
        .args(["uninstall", "--hooks-dir"])
        .arg(&common)
        .output()
        .unwrap();
    assert!(stdout(&o).contains("removed"), "{}", stdout(&o));
    assert!(!common.join("post-receive").exists());
    assert_eq!(std::fs::read(common.join("update")).unwrap(), update);
    assert!(env.wait_flushers_gone());
}

/// docs/administration.md documents `status --json`; keep the documented top-level and per-mirror fields
/// and `list`/`show` fields present.
#[test]
fn json_documents_have_the_documented_fields() {
    let env = Env::new();
    let up = env.upstream("up.git");
    let m = env.bare("m.git", &[]);
    env.pm_ok(&up, &["add", "m", m.to_str().unwrap(), "--disabled"]);
    let mirror_fields = [
        "name",
        "url",
        "enabled",
        "from_rule",
        "auth",
        "only_protected_branches",
        "protected",
        "keep_divergent_refs",
        "debounce",
        "max_delay",
        "timeout",
        "ssh_persist",
        "refs",
        "allow_insecure_http",
        "ca_file",
    ];
    let list = pm_json(&env, &up, &["list", "--json"]);
    for f in mirror_fields {
        assert!(mirrors_of(&list)[0].get(f).is_some(), "list lacks {f}");
    }
    let show = pm_json(&env, &up, &["show", "m", "--json"]);
    for f in mirror_fields {
        assert!(show.get(f).is_some(), "show lacks {f}");
    }
    for f in ["debounce", "max_delay", "timeout", "ssh_persist", "source"] {
        assert!(
            show["effective"].get(f).is_some(),
            "show.effective lacks {f}"
        );
    }
    let st = env.status_json(&up);
    for f in [
        "repository",
        "silent_mode",
        "hook_installed",
        "hook_problem",
        "flusher_running",
        "spool_damaged_records",
        "mirrors",
    ] {
        assert!(st.get(f).is_some(), "status lacks {f}");
    }
    let sm = &mirrors_of(&st)[0];
    for f in mirror_fields.iter().copied().chain([
        "update_status",
        "last_update_started_at",
        "last_update_at",
        "last_successful_update_at",
        "last_error",
        "divergent_refs",
        "rejected_refs",
        "pending_updates",
        "oldest_pending_age_seconds",
        "behind_max_delay",
        "consecutive_failures",
        "next_retry_at",
        "gave_up",
        "syncs",
        "pushes",
        "healthy",
    ]) {
        assert!(sm.get(f).is_some(), "status mirror lacks {f}");
    }
    assert_eq!(sm["update_status"], "none");
}

/// `status | head -1` (or `list`, `show` piped into a pager that quits early) ends quietly, as
/// `git log | head` does: no panic, no backtrace, no exit 101.
#[test]
fn reports_piped_into_a_closed_reader_end_quietly() {
    let env = Env::new();
    let up = env.upstream("up.git");
    let a = env.bare("a.git", &[]);
    env.pm_ok(&up, &["add", "a", a.to_str().unwrap(), "--disabled"]);
    for args in [
        &["status"][..],
        &["status", "--json"],
        &["list"],
        &["list", "--json"],
        &["show", "a"],
    ] {
        // A pipe whose reader is already gone: the first write gets EPIPE.
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        let o = env
            .cmd(bin())
            .arg("--repo")
            .arg(&up)
            .args(args)
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .expect("run git-pushmirror");
        let err = stderr(&o);
        assert!(
            !err.contains("panicked")
                && !err.contains("Broken pipe")
                && o.status.code() != Some(101),
            "{args:?} with a closed stdout: {:?} {err}",
            o.status
        );
    }
}

/// `sudo git-pushmirror add ...` on a repository that belongs to the git user would make
/// `pushmirror/` root's (0700): every later push by the git user then fails ("Permission
/// denied ... NOT spooled"). Root is told to run it as the owner instead, and nothing is
/// written; a shared repository (group access, as git gives its own files) is fine.
#[test]
fn root_is_refused_on_a_repository_another_user_owns() {
    if skip_unless_root() {
        return;
    }
    let env = Env::new();
    let up = env.upstream("up.git");
    let target = env.bare("target.git", &[]);
    let chown = |p: &Path| chown_r("65534", p);
    chown(&up);
    for args in [
        &["add", "m", target.to_str().unwrap()][..],
        &["sync"],
        &["keygen", "m"],
    ] {
        let o = env.pm(&up, args);
        assert_fails(&o, 1, &["belongs to", "sudo -u"]);
        assert!(
            !up.join("pushmirror").exists(),
            "{args:?} wrote pushmirror/"
        );
    }
    // Reading is fine.
    let o = env.pm(&up, &["status"]);
    assert!(o.status.success(), "{}", stderr(&o));

    let shared = env.bare("shared.git", &["--shared=group"]);
    chown(&shared);
    env.pm_ok(
        &shared,
        &["add", "m", target.to_str().unwrap(), "--disabled"],
    );
}

/// `set NAME auth.key_file=...` on a mirror without auth used to say "missing field `method`":
/// each incomplete auth now names the assignment that completes it, in one line, and the file
/// is left as it was. The completed command then works.
#[test]
fn set_with_an_incomplete_auth_names_the_missing_key() {
    let env = Env::new();
    let up = env.upstream("up.git");
    // An https:// URL: password auth is refused for a local mirror.
    env.pm_ok(
        &up,
        &["add", "m", "https://127.0.0.1:1/target.git", "--disabled"],
    );
    let config = up.join("pushmirror/config.yaml");
    let before = std::fs::read(&config).unwrap();
    let key = env.path("key");
    ssh_keygen(&key, "");
    let pw = env.path("pw");
    write_mode(&pw, "tok\n", 0o600);
    let key_file = format!("auth.key_file={}", key.display());
    let pw_file = format!("auth.password_file={}", pw.display());
    for (args, needles) in [
        (
            vec!["set", "m", key_file.as_str()],
            &["auth.method=ssh_key", "auth.key_file"][..],
        ),
        (
            vec!["set", "m", "auth.username=bot"],
            &["auth.method=password", "auth.username"],
        ),
        (
            vec!["set", "m", "auth.method=ssh_key"],
            &["auth.method=ssh_key", "needs auth.key_file"],
        ),
        (
            vec!["set", "m", "auth.method=password", pw_file.as_str()],
            &["auth.method=password", "needs auth.username"],
        ),
    ] {
        let line = assert_fails(&env.pm(&up, &args), 2, needles);
        assert!(!line.contains("missing field"), "{args:?}: {line}");
        assert_eq!(std::fs::read(&config).unwrap(), before, "{args:?}");
    }
    env.pm_ok(&up, &["set", "m", "auth.method=ssh_key", &key_file]);
    // Switching methods: the old method's keys are named, with how to clear them.
    assert_fails(
        &env.pm(
            &up,
            &[
                "set",
                "m",
                "auth.method=password",
                "auth.username=bot",
                &pw_file,
            ],
        ),
        2,
        &["auth.key_file", "auth.key_file="],
    );
    env.pm_ok(
        &up,
        &[
            "set",
            "m",
            "auth.method=password",
            "auth.username=bot",
            &pw_file,
            "auth.key_file=",
        ],
    );
    let shown = pm_json(&env, &up, &["show", "m", "--json"]);
    assert_eq!(shown["auth"]["method"], "password", "{shown}");
    assert_eq!(shown["auth"]["username"], "bot", "{shown}");
}

/// `sudo git-pushmirror sweep` (or a root cron job) would make the force records, state and
/// log of a repository the git user owns root's, and the owner's next push could not spool.
/// Sweep names such a repository, with `sudo -u OWNER`, skips it (exit 1) and writes nothing
/// there; root's own repositories are still flushed.
#[test]
fn sweep_as_root_skips_a_repository_another_user_owns() {
    if skip_unless_root() {
        return;
    }
    let env = Env::new();
    let root = env.path("srv");
    let theirs = env.bare("srv/team/theirs.git", &[]);
    let mine = env.bare("srv/team/mine.git", &[]);
    for (repo, wc) in [(&theirs, "wt"), (&mine, "wm")] {
        let w = env.clone(repo, wc);
        env.commit(&w, wc);
        env.push(&w, &["main"]);
    }
    // Its pushmirror/ holds only a config (made by hand, or by an `add` before any push).
    std::fs::create_dir(theirs.join("pushmirror")).unwrap();
    std::fs::write(theirs.join("pushmirror/config.yaml"), "").unwrap();
    chown_r("65534", &theirs);
    let mirrors = [
        env.bare("mirrors/team/theirs.git", &[]),
        env.bare("mirrors/team/mine.git", &[]),
    ];
    env.write_server_config(&rule_config(&env, &root, ""));
    let o = env.cmd(bin()).arg("sweep").output().unwrap();
    let (out, err) = (stdout(&o), stderr(&o));
    assert_eq!(o.status.code(), Some(1), "{out}{err}");
    let skipped: Vec<&str> = err.lines().filter(|l| l.contains("skipped")).collect();
    assert_eq!(skipped.len(), 1, "{err}");
    assert!(
        skipped[0].contains("team/theirs.git")
            && skipped[0].contains("you are root")
            && skipped[0].contains("sudo -u")
            && skipped[0].contains("git-pushmirror sweep"),
        "{err}"
    );
    let left: Vec<_> = std::fs::read_dir(theirs.join("pushmirror"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        left,
        ["config.yaml"],
        "sweep wrote under pushmirror/ as root in a repository another user owns"
    );
    assert!(env.heads_and_tags(&mirrors[0]).is_empty());
    assert!(out.contains("team/mine.git: flushing"), "{out}");
    assert!(
        out.contains("sweep: 1 repository flushed, 1 skipped"),
        "{out}"
    );
    assert_eq!(env.heads_and_tags(&mirrors[1]), env.heads_and_tags(&mine));
    assert!(env.wait_flushers_gone());
}

#[test]
fn oversized_config_files_are_refused_with_one_line() {
    let env = Env::new();
    let up = env.upstream("up.git");
    let mirror = env.bare("m.git", &[]);
    env.pm_ok(&up, &["add", "m", mirror.to_str().unwrap(), "--disabled"]);
    let cfg = up.join("pushmirror/config.yaml");
    let valid = std::fs::read_to_string(&cfg).unwrap();
    // Valid YAML (comments) just over the limit: only its size is wrong.
    let padding =
        "# padding padding padding padding padding padding padding padding\n".repeat(17_000);
    std::fs::write(&cfg, format!("{valid}{padding}")).unwrap();
    let o = env.pm(&up, &["status"]);
    assert_fails(&o, 1, &[cfg.to_str().unwrap(), "larger than 1024 KiB"]);
    std::fs::write(&cfg, &valid).unwrap();
    env.pm_ok(&up, &["status"]);

    // The server file too, for every command that reads it.
    std::fs::write(&env.server_config, &padding).unwrap();
    let o = env.pm(&up, &["status"]);
    assert_fails(
        &o,
        1,
        &[env.server_config.to_str().unwrap(), "larger than 1024 KiB"],
    );
    let root = env.path("");
    for args in [
        vec!["status", "--root", root.to_str().unwrap()],
        vec!["metrics", "--root", root.to_str().unwrap()],
        vec!["sweep", "--root", root.to_str().unwrap()],
    ] {
        let o = env.cmd(bin()).args(&args).output().unwrap();
        assert_fails(
            &o,
            1,
            &[env.server_config.to_str().unwrap(), "larger than 1024 KiB"],
        );
    }
}

#[test]
fn errors_with_newlines_from_names_stay_one_line() {
    let env = Env::new();
    let up = env.upstream("up.git");
    let o = env.pm(&up, &["add", "evil\nname", "/tmp/x.git"]);
    assert_fails(&o, 2, &["evil\\nname"]);

    // A hand-written config naming a mirror with a line break: every message about it, from
    // the CLI and from the hook (`remote:` lines of the pusher), is one line.
    std::fs::create_dir_all(up.join("pushmirror")).unwrap();
    std::fs::write(
        up.join("pushmirror/config.yaml"),
        "mirrors:\n- name: \"evil\\nline\\r\\u001b[31m\"\n  url: /tmp/x.git\n",
    )
    .unwrap();
    let o = env.pm(&up, &["status"]);
    assert_fails(&o, 1, &["evil\\nline\\r\\x1b[31m"]);
    let wc = env.clone(&up, "wc");
    env.commit(&wc, "one");
    let o = env.push(&wc, &["main"]);
    let err = stderr(&o);
    let ours: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("evil") || l.contains("line"))
        .collect();
    assert_eq!(ours.len(), 1, "{err}");
    assert!(
        ours[0].starts_with("remote: git-pushmirror: ") && ours[0].contains("evil\\nline\\r\\x1b"),
        "{err}"
    );
}
