//! Adversarial variants of issue 20's fixes: what a second pass broke.

mod common;

use std::fs;

use common::*;

const FAST_RETRIES: &str =
    "defaults:\n  max_attempts: 3\n  backoff_initial: 200ms\n  backoff_max: 1s\n";

/// Control characters a terminal would act on (ESC, BEL, CR...), other than the line feeds
/// that end our own lines.
fn raw_controls(text: &str) -> Vec<char> {
    text.chars()
        .filter(|c| c.is_control() && *c != '\n')
        .collect()
}

/// A mirror's pre-receive hook that writes terminal escapes (colour, a window-title OSC ended
/// by BEL, a carriage return) and rejects: `status` (text, also `--root`), `sync --wait` and
/// the log show them escaped, never raw.
#[test]
fn status_and_log_never_print_a_mirrors_terminal_escapes() {
    let env = Env::new();
    let mirror = env.bare("m.git", &[]);
    let (up, _, wc) = synced_pair(&env, mirror.clone());
    write_exec(
        &mirror.join("hooks/pre-receive"),
        "#!/bin/sh\nprintf 'error: \\033[31mred\\033[0m \\033]0;title\\007 policy\\rback\\n' >&2\nexit 1\n",
    );
    env.commit(&wc, "second");
    env.push(&wc, &["main"]);
    wait_mirror(&env, &up, "m", "failed", |m| {
        m["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("policy"))
    });
    let m = env.mirror_status(&up, "m");
    let err = m["last_error"].as_str().unwrap();
    assert!(raw_controls(err).is_empty(), "{err:?}");
    assert!(
        err.contains("\\x1b[31mred"),
        "escaped, not dropped: {err:?}"
    );
    for args in [
        vec!["status"],
        vec!["status", "--root", env.dir.path().to_str().unwrap()],
        vec!["sync", "m", "--wait"],
    ] {
        let out = env.pm(&up, &args);
        let all = text(&out);
        assert!(all.contains("policy"), "{args:?}: {all}");
        assert!(raw_controls(&all).is_empty(), "{args:?}: {all:?}");
    }
    let log = fs::read_to_string(up.join("pushmirror/log")).unwrap();
    assert!(log.contains("policy"), "{log}");
    assert!(raw_controls(&log).is_empty(), "{log:?}");
    // A state file that holds raw escapes (written by an older version, or by hand): `status`
    // still shows them escaped.
    assert!(env.wait_flushers_gone());
    let state = up.join("pushmirror/state/m.json");
    let mut doc: serde_json::Value = serde_json::from_slice(&fs::read(&state).unwrap()).unwrap();
    doc["last_error"] = "old \u{1b}[2J\u{7} clear".into();
    fs::write(&state, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    let all = text(&env.pm(&up, &["status"]));
    assert!(all.contains("\\x1b[2J\\x07 clear"), "{all}");
    assert!(raw_controls(&all).is_empty(), "{all:?}");
}

/// Repository directories whose names hold terminal escapes or a line break (valid UTF-8, so
/// not escaped as non-UTF-8 paths are), one with a configuration that cannot be read: `status
/// --root` shows every path and error escaped, each on its own line.
#[test]
fn status_root_never_prints_a_paths_control_characters() {
    let env = Env::new();
    let root = env.path("srv");
    fs::create_dir_all(&root).unwrap();
    let mirror = env.bare("m.git", &[]);
    let good = env.bare("srv/ok\x1b[2J\x07.git", &[]);
    add_mirror(&env, &good, "m", &mirror);
    let nl = env.bare("srv/two\nlines.git", &[]);
    add_mirror(&env, &nl, "m", &mirror);
    let bad = env.bare("srv/bad\x1b]0;title\x07.git", &[]);
    fs::create_dir_all(bad.join("pushmirror")).unwrap();
    fs::write(bad.join("pushmirror/config.yaml"), "mirrors: [\n").unwrap();
    let out = env.pm(&good, &["status", "--root", root.to_str().unwrap()]);
    let all = text(&out);
    assert!(raw_controls(&all).is_empty(), "{all:?}");
    for shown in [
        "repository: ".to_string() + root.to_str().unwrap() + "/ok\\x1b[2J\\x07.git",
        "repository: ".to_string() + root.to_str().unwrap() + "/two\\nlines.git",
        "repository: ".to_string() + root.to_str().unwrap() + "/bad\\x1b]0;title\\x07.git",
    ] {
        assert!(all.lines().any(|l| l == shown), "{shown:?} in\n{all}");
    }
}

/// Every `ssh` a sync of an ssh mirror starts (git's, through `GIT_SSH_COMMAND`, and the `ssh
/// -O exit` that ends the connection master) records its arguments and environment: no
/// configured `password_env` variable (here a server rule's, for other repositories) reaches
/// any of them.
#[test]
fn no_password_env_token_reaches_any_ssh_of_a_sync() {
    if no_ssh() {
        return;
    }
    const SECRET: &str = "Rule-Token-For-Ssh-Children-83";
    let env = Env::new();
    env.write_server_config(&format!(
        "{FAST_RETRIES}rules:\n  - name: elsewhere\n    url: https://127.0.0.1:1/${{name}}.git\n    repos: [no-such-repo]\n    auth:\n      method: password\n      username: bot\n      password_env: PM_RULE_TOKEN\n"
    ));
    let up = upstream_with_commit(&env);
    let (dst, ssh) = ssh_target(&env);
    let real_ssh = String::from_utf8(
        std::process::Command::new("sh")
            .args(["-c", "command -v ssh"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let wrappers = env.path("wrappers");
    let records = env.path("records");
    fs::create_dir_all(&wrappers).unwrap();
    fs::create_dir_all(&records).unwrap();
    write_exec(
        &wrappers.join("ssh"),
        &format!(
            "#!/bin/sh\necho \"$*\" > '{r}/args.'$$\nenv > '{r}/env.'$$\nexec '{ssh}' \"$@\"\n",
            r = records.display(),
            ssh = real_ssh.trim()
        ),
    );
    let path = format!(
        "{}:{}",
        wrappers.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let vars = [("PATH", path.as_str()), ("PM_RULE_TOKEN", SECRET)];
    let url = ssh.url("dst.git");
    let mut args = ssh_add_args("s", &url, &ssh.client_key, ["--host-key", &ssh.host_pubkey]);
    args.push("--disabled");
    let out = pm_with(&env, &up, &args, &vars);
    assert!(out.status.success(), "add: {}", text(&out));
    // A master kept for the next syncs (ssh_persist) is not told to exit at the end of the
    // sync: one that ends with it is what this test looks at.
    for args in [
        &["set", "s", "ssh_persist=0"][..],
        &["enable", "s"],
        &["sync", "--wait"],
    ] {
        let out = pm_with(&env, &up, args, &vars);
        assert!(out.status.success(), "{args:?}: {}", text(&out));
    }
    env.wait_mirrored(&up, &dst);
    assert!(env.wait_flushers_gone());
    let mut all_args = String::new();
    let mut envs = 0;
    for e in fs::read_dir(&records).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let body = fs::read_to_string(e.path()).unwrap();
        if name.starts_with("args.") {
            all_args.push_str(&body);
            continue;
        }
        envs += 1;
        assert!(
            body.contains("PATH="),
            "{name}: the wrapper recorded nothing:\n{body}"
        );
        assert!(
            !body.contains(SECRET) && !body.contains("PM_RULE_TOKEN"),
            "the rule's token reached an ssh ({name}):\n{body}\nargs:\n{all_args}"
        );
    }
    assert!(envs >= 2, "{all_args}");
    assert!(
        all_args.contains("-O exit"),
        "the master was never told to exit: {all_args}"
    );
}

/// Values that may hold control characters (a path: `lfs_store`, `install --hooks-dir`) are
/// shown by `show` and `install` on one line, escaped.
#[test]
fn show_and_install_print_a_paths_control_characters_escaped() {
    let env = Env::new();
    let mirror = env.bare("m.git", &[]);
    let up = env.upstream("up.git");
    env.pm_ok(&up, &["add", "m", s(&mirror), "--disabled"]);
    let store = env.path("store\n\x1b[31m\x07");
    env.pm_ok(
        &up,
        &["set", "m", &format!("lfs_store={}", store.display())],
    );
    let shown = env.pm_ok(&up, &["show", "m"]);
    assert!(raw_controls(&shown).is_empty(), "{shown:?}");
    let line = format!(
        "lfs_store: {}",
        env.path("store\\n\\x1b[31m\\x07").display()
    );
    assert!(shown.lines().any(|l| l == line), "{line:?} in\n{shown}");
    let hooks = env.path("hooks\n\x1b]0;t\x07");
    fs::create_dir_all(&hooks).unwrap();
    let out = env.pm(&up, &["install", "--hooks-dir", s(&hooks)]);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert_eq!(all.matches('\n').count(), 1, "{all:?}");
    assert!(raw_controls(&all).is_empty(), "{all:?}");
    assert!(
        all.contains("hooks\\n\\x1b]0;t\\x07/post-receive"),
        "{all:?}"
    );
}

/// A repository deeper than the scan goes is not a silent hole either: the directory that was
/// not searched is reported (exit 1) by `status --root`, `metrics` and `sweep`; a repository
/// at the deepest level searched is found.
#[test]
fn a_directory_too_deep_to_search_is_reported_not_skipped() {
    let env = Env::new();
    let root = env.path("srv");
    let nine = "srv/1/2/3/4/5/6/7/8";
    env.bare(&format!("{nine}/found.git"), &[]);
    env.bare(&format!("{nine}/9/hidden.git"), &[]);
    let r = root.to_str().unwrap();
    let json = env.pm(&root, &["status", "--root", r, "--json"]);
    assert_eq!(json.status.code(), Some(1), "{}", text(&json));
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(doc["repositories_scanned"], 1, "{doc:#}");
    let deep = env.path(&format!("{nine}/9"));
    let named =
        |s: &str| s.contains(&format!("{}: ", deep.display())) && s.contains("not searched");
    let problems = doc["unreadable_directories"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{doc:#}");
    assert!(named(problems[0].as_str().unwrap()), "{doc:#}");
    let metrics = env.pm(&root, &["metrics", "--root", r]);
    assert_eq!(metrics.status.code(), Some(1), "{}", text(&metrics));
    assert!(named(&stderr(&metrics)), "{}", text(&metrics));
    let sweep = env.pm(&root, &["sweep", "--root", r]);
    assert_eq!(sweep.status.code(), Some(1), "{}", text(&sweep));
    assert!(named(&stderr(&sweep)), "{}", text(&sweep));
}

/// One mirror's notifications stay in order across flushers: a flusher that gave up on a
/// mirror does not leave (and let the next push's flusher notify about the same mirror) while
/// its own slow `gave_up` notification still runs; the `recovered` that follows comes after it.
#[test]
fn a_mirrors_notifications_stay_in_order_across_flushers() {
    let env = Env::new();
    let record = env.path("events");
    let cmd = env.path("notify.sh");
    write_exec(
        &cmd,
        &format!(
            "#!/bin/sh\nev=$(tr -d ' \\n' | sed 's/.*\"events\":\\[\\([^]]*\\)\\].*/\\1/')\ncase \"$ev\" in *gave_up*) sleep 3;; esac\necho \"$ev\" >> '{}'\n",
            record.display()
        ),
    );
    let mirror = env.bare("m.git", &[]);
    let (up, _, wc) = synced_pair(&env, mirror.clone());
    env.write_server_config(&format!(
        "concurrency: 4\ndefaults:\n  max_attempts: 1\nnotify:\n  command: {}\n  timeout: 30s\n",
        cmd.display()
    ));
    // The mirror goes away: the sync cannot run, and with max_attempts 1 it gives up at once.
    let away = env.path("m.git.away");
    fs::rename(&mirror, &away).unwrap();
    env.commit(&wc, "refused");
    env.push(&wc, &["main"]);
    wait_mirror(&env, &up, "m", "gave up", |m| m["gave_up"] == true);
    // The `gave_up` notification is running (3 s): the mirror comes back meanwhile.
    fs::rename(&away, &mirror).unwrap();
    env.commit(&wc, "accepted");
    env.push(&wc, &["main"]);
    env.wait_mirrored(&up, &mirror);
    let got = wait_until(std::time::Duration::from_secs(60), || {
        fs::read_to_string(&record).is_ok_and(|t| t.contains("recovered") && t.contains("gave_up"))
    });
    let events = fs::read_to_string(&record).unwrap_or_default();
    assert!(got, "{events}\nlog:\n{}", env.log(&up));
    let lines: Vec<&str> = events.lines().filter(|l| !l.is_empty()).collect();
    let pos = |e: &str| lines.iter().position(|l| l.contains(e)).unwrap();
    assert!(
        pos("gave_up") < pos("recovered"),
        "out of order:\n{events}\nlog:\n{}",
        env.log(&up)
    );
    assert!(env.wait_flushers_gone());
}

/// A state file restored or edited with a cursor no spool can reach (u64::MAX): no panic in the
/// hook (the push's `remote:` lines) or in `sync`; the mirror reports its state file as corrupt,
/// naming it and the fix, and deleting that file brings it back with a full sync.
#[test]
fn a_cursor_beyond_any_sequence_number_is_reported_not_a_panic() {
    let env = Env::new();
    let (up, mirror, wc) = synced_pair(&env, env.bare("m.git", &[]));
    let state = up.join("pushmirror/state/m.json");
    let mut doc: serde_json::Value = serde_json::from_slice(&fs::read(&state).unwrap()).unwrap();
    doc["cursor"] = u64::MAX.into();
    fs::write(&state, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    env.commit(&wc, "after the restore");
    let out = env.push(&wc, &["main"]);
    let pushed = text(&out);
    assert!(!pushed.contains("panicked"), "{pushed}");
    let out = env.pm(&up, &["sync", "m", "--wait"]);
    let all = text(&out);
    assert!(!all.contains("panicked"), "{all}");
    let m = wait_mirror(&env, &up, "m", "its state file named", |m| {
        m["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("m.json") && e.contains("delete it"))
    });
    assert!(!m["healthy"].as_bool().unwrap_or(true), "{m:#}");
    assert!(env.wait_flushers_gone());
    fs::remove_file(&state).unwrap();
    let out = env.pm(&up, &["sync", "m", "--wait"]);
    assert!(out.status.success(), "{}", text(&out));
    env.wait_mirrored(&up, &mirror);
}

/// `add`'s warning about the repository (its path in the suggested command) and `sweep`'s
/// line per repository flushed show a path with control characters escaped, on one line.
#[test]
fn add_and_sweep_print_a_paths_control_characters_escaped() {
    let env = Env::new();
    let root = env.path("srv");
    let mirror = env.bare("m.git", &[]);
    // HEAD names a branch that does not exist (main does), which `add` warns about.
    let up = env.bare("srv/up\x1b[2J\n.git", &[]);
    let tree = env.git(&up, &["hash-object", "-w", "-t", "tree", "/dev/null"]);
    let commit = env.git(&up, &["commit-tree", &tree, "-m", "one"]);
    env.git(&up, &["update-ref", "refs/heads/main", &commit]);
    env.git(&up, &["symbolic-ref", "HEAD", "refs/heads/gone"]);
    let out = env.pm(&up, &["add", "m", s(&mirror), "--disabled"]);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(all.contains("warning: upstream HEAD"), "{all}");
    assert!(raw_controls(&all).is_empty(), "{all:?}");
    assert!(all.contains("up\\x1b[2J\\n.git"), "{all:?}");
    env.pm_ok(
        &up,
        &["add", "k", "ssh://git@127.0.0.1:1/x.git", "--disabled"],
    );
    let out = env.pm(&up, &["keygen", "k"]);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(all.contains("generated a new ed25519 key pair"), "{all}");
    assert!(raw_controls(&all).is_empty(), "{all:?}");
    // Written by hand, so nothing synced it yet: sweep has work there.
    let other = env.bare("srv/new\x07\r.git", &[]);
    fs::create_dir_all(other.join("pushmirror")).unwrap();
    fs::write(
        other.join("pushmirror/config.yaml"),
        format!("mirrors:\n  - name: m\n    url: {}\n", s(&mirror)),
    )
    .unwrap();
    let out = env.pm(&root, &["sweep", "--root", s(&root)]);
    let all = text(&out);
    assert!(all.contains("new\\x07\\r.git: flushing ("), "{all:?}");
    assert!(raw_controls(&all).is_empty(), "{all:?}");
    assert!(env.wait_flushers_gone());
}

/// A repository whose path holds a line break and terminal escapes: its log (`flusher started
/// for <path>`, ...) keeps one line per entry, with them escaped.
#[test]
fn the_log_keeps_one_line_per_entry_whatever_the_path() {
    let env = Env::new();
    let mirror = env.bare("m.git", &[]);
    let up = env.upstream("up\n\x1b[2J.git");
    add_mirror(&env, &up, "m", &mirror);
    let wc = env.clone(&up, "wc");
    env.commit(&wc, "one");
    env.push(&wc, &["main"]);
    env.wait_mirrored(&up, &mirror);
    assert!(env.wait_flushers_gone());
    let log = fs::read_to_string(up.join("pushmirror/log")).unwrap();
    assert!(log.contains("up\\n\\x1b[2J.git"), "{log}");
    assert!(raw_controls(&log).is_empty(), "{log:?}");
    for line in log.lines() {
        assert!(
            line.starts_with("20"),
            "an entry split in two: {line:?}\n{log}"
        );
    }
}

/// A FIFO (or a device) in place of `config.yaml` is refused in one line, not read: before,
/// opening it blocked `status`, `status --root` and `sweep` for ever.
#[test]
fn a_fifo_in_place_of_the_config_is_refused_not_waited_on() {
    let env = Env::new();
    let root = env.path("srv");
    let up = env.bare("srv/up.git", &[]);
    fs::create_dir_all(up.join("pushmirror")).unwrap();
    let config = up.join("pushmirror/config.yaml");
    assert!(run_quiet("mkfifo", &[s(&config)]));
    for args in [
        vec!["status"],
        vec!["status", "--root", s(&root)],
        vec!["sweep", "--root", s(&root)],
    ] {
        let mut c = env.cmd(bin());
        c.arg("--repo")
            .arg(&up)
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = c.spawn().unwrap();
        let done = wait_until(std::time::Duration::from_secs(30), || {
            child.try_wait().unwrap().is_some()
        });
        if !done {
            let _ = child.kill();
        }
        let out = child.wait_with_output().unwrap();
        assert!(done, "{args:?} blocked on the FIFO");
        let all = text(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {all}");
        assert!(
            all.contains("config.yaml: not a regular file"),
            "{args:?}: {all}"
        );
    }
}

/// A server rule's URL holds the repository's path (`${name}`): `list` in a repository whose
/// name holds a line break and an escape shows the rule's mirror on one line, escaped.
#[test]
fn list_shows_a_rules_url_on_one_line_whatever_the_repository_name() {
    let env = Env::new();
    let root = env.path("srv");
    let up = env.bare("srv/x\n\x1b[31my.git", &[]);
    env.write_server_config(&format!(
        "root: {}\nrules:\n  - name: r\n    url: {}/mirrors/${{name}}.git\n",
        root.display(),
        env.dir.path().display()
    ));
    let out = env.pm(&up, &["list"]);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert_eq!(all.lines().count(), 1, "{all:?}");
    assert!(raw_controls(&all.replace('\t', "")).is_empty(), "{all:?}");
    assert!(
        all.contains("mirrors/x\\n\\x1b[31my.git\tenabled"),
        "{all:?}"
    );
}
