//! Operating a fleet (issue 13): `status --root`, `metrics` (checked by promtool and scraped
//! through a real prometheus-node-exporter), the `notify` command, the man page and the shipped
//! systemd units.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::servers::*;
use common::*;
use serde_json::Value;

/// Three repositories under `srv/`: `a.git` mirrored fine, `b/c.git` with a mirror that cannot
/// be reached, `empty.git` with no mirror. Returns (root, mirror of a).
fn small_fleet(env: &Env) -> PathBuf {
    let root = env.path("srv");
    std::fs::create_dir_all(root.join("b")).unwrap();
    env.write_server_config("defaults:\n  max_attempts: 1\n");
    let a = env.upstream("srv/a.git");
    let c = env.upstream("srv/b/c.git");
    env.bare("srv/empty.git", &[]);
    let good = env.bare("mirrors/a.git", &[]);
    env.pm_ok(&a, &["add", "backup", good.to_str().unwrap()]);
    let missing = env.path("mirrors/missing.git");
    env.pm_ok(&c, &["add", "gone", missing.to_str().unwrap()]);
    let ok = wait_until(Duration::from_secs(60), || {
        env.mirror_status(&a, "backup")["update_status"] == "finished"
            && env.mirror_status(&c, "gone")["gave_up"] == true
    });
    assert!(
        ok,
        "first syncs never settled:\n{}\n{}",
        env.log(&a),
        env.log(&c)
    );
    assert!(env.wait_flushers_gone());
    root
}

fn pm_root(env: &Env, args: &[&str]) -> std::process::Output {
    env.cmd(bin())
        .args(args)
        .output()
        .expect("run git-pushmirror")
}

#[test]
fn status_root_lists_every_repository_unhealthy_first() {
    let env = Env::new();
    let root = small_fleet(&env);
    let out = pm_root(
        &env,
        &["status", "--root", root.to_str().unwrap(), "--json"],
    );
    assert_eq!(out.status.code(), Some(1), "an unhealthy mirror exits 1");
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["repositories_scanned"], 3, "{doc:#}");
    assert_eq!(doc["mirrors"], 2);
    assert_eq!(doc["unhealthy"], 1);
    let repos = doc["repositories"].as_array().unwrap();
    assert_eq!(
        repos.len(),
        2,
        "the repository without mirrors is not listed"
    );
    // Unhealthy first, although b/c.git sorts after a.git.
    assert!(repos[0]["repository"]
        .as_str()
        .unwrap()
        .ends_with("srv/b/c.git"));
    let gone = &repos[0]["mirrors"][0];
    assert_eq!(gone["name"], "gone");
    assert_eq!(gone["healthy"], false);
    assert_eq!(gone["gave_up"], true);
    assert_eq!(gone["repository"], repos[0]["repository"]);
    // Same fields as `status --json` in the repository itself.
    let own = env.mirror_status(&root.join("b/c.git"), "gone");
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.retain(|k| k != "repository");
        k
    };
    assert_eq!(keys(gone), keys(&own));
    assert_eq!(repos[1]["mirrors"][0]["name"], "backup");
    assert_eq!(repos[1]["mirrors"][0]["healthy"], true);
    assert_eq!(repos[0]["hook_installed"], true, "{:#}", repos[0]);

    // A repository whose hook went away is named (the hook is found from files, no git run).
    env.pm_ok(&root.join("a.git"), &["uninstall"]);
    let out = pm_root(
        &env,
        &["status", "--root", root.to_str().unwrap(), "--json"],
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let a = &doc["repositories"][1];
    assert_eq!(a["hook_installed"], false, "{a:#}");
    assert!(a["hook_problem"]
        .as_str()
        .unwrap()
        .contains("not installed"));
    // A core.hooksPath in the repository's config: only `status` in it can tell.
    env.git(
        &root.join("a.git"),
        &["config", "core.hooksPath", "/nonexistent/hooks"],
    );
    let out = pm_root(
        &env,
        &["status", "--root", root.to_str().unwrap(), "--json"],
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(doc["repositories"][1]["hook_installed"].is_null());
    env.git(
        &root.join("a.git"),
        &["config", "--unset", "core.hooksPath"],
    );
    env.pm_ok(&root.join("a.git"), &["install"]);

    // Text, and the root taken from the server file.
    std::fs::write(
        &env.server_config,
        format!("defaults:\n  max_attempts: 1\nroot: {}\n", root.display()),
    )
    .unwrap();
    let out = pm_root(&env, &["status", "--root"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let (gone_at, backup_at) = (text.find("gone ").unwrap(), text.find("backup ").unwrap());
    assert!(gone_at < backup_at, "unhealthy first:\n{text}");
    assert!(
        text.contains("3 repositories, 2 with mirrors; 2 mirrors, 1 unhealthy"),
        "{text}"
    );

    // A name filter keeps the healthy mirror only: exit 0.
    let out = pm_root(&env, &["status", "--root", "--json", "backup"]);
    assert_eq!(out.status.code(), Some(0));

    // A broken repository config is reported and makes the fleet unhealthy.
    std::fs::write(
        root.join("empty.git/pushmirror/config.yaml"),
        "mirrors: [oops\n",
    )
    .or_else(|_| {
        std::fs::create_dir_all(root.join("empty.git/pushmirror"))?;
        std::fs::write(
            root.join("empty.git/pushmirror/config.yaml"),
            "mirrors: [oops\n",
        )
    })
    .unwrap();
    let out = pm_root(&env, &["status", "--root", "--json", "backup"]);
    assert_eq!(out.status.code(), Some(1));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(doc["repositories"][0]["error"]
        .as_str()
        .unwrap()
        .contains("config.yaml"));

    // No root anywhere: a usage error naming the fix.
    env.write_server_config("");
    let out = pm_root(&env, &["status", "--root"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs --root DIR"));
}

/// A server process listening on a free loopback port, in its own process group, killed (the
/// whole group) on drop.
struct Listener {
    child: Child,
    port: u16,
}

impl Listener {
    /// Runs `command(port)` (stdin null; its output wherever the command sends it) on a free
    /// port until it listens there; another port when it was taken meanwhile or the server died.
    /// `what` and the text of `err_log` name it when it never starts.
    fn start(what: &str, err_log: &Path, command: impl Fn(u16) -> Command) -> Listener {
        for _ in 0..5 {
            let port = free_port();
            let child = command(port)
                .stdin(Stdio::null())
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| panic!("start {what}: {e}"));
            let mut l = Listener { child, port };
            if wait_until(Duration::from_secs(60), || {
                port_open(port) || !matches!(l.child.try_wait(), Ok(None))
            }) && matches!(l.child.try_wait(), Ok(None))
            {
                return l;
            }
            drop(l);
        }
        panic!(
            "{what} did not start: {}",
            std::fs::read_to_string(err_log).unwrap_or_default()
        );
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        unsafe_kill_group(self.child.id());
        let _ = self.child.wait();
    }
}

/// A real `prometheus-node-exporter` serving only the textfile collector on a free loopback
/// port.
struct NodeExporter {
    server: Listener,
}

impl NodeExporter {
    fn start(textfile_dir: &Path, log: &Path) -> NodeExporter {
        let server = Listener::start("prometheus-node-exporter", log, |port| {
            let mut c = Command::new(find_program("prometheus-node-exporter").unwrap());
            c.arg("--collector.disable-defaults")
                .arg("--collector.textfile")
                .arg(format!(
                    "--collector.textfile.directory={}",
                    textfile_dir.display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(log).unwrap());
            c
        });
        NodeExporter { server }
    }

    fn scrape(&self) -> String {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.server.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        s.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).unwrap();
        body
    }
}

use std::os::unix::process::CommandExt;

fn unsafe_kill_group(pid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pid}")])
        .status();
}

#[test]
fn metrics_pass_promtool_and_node_exporter_serves_them() {
    if !have_all(&["promtool", "prometheus-node-exporter"]) {
        eprintln!("SKIPPED: promtool / prometheus-node-exporter missing");
        return;
    }
    let env = Env::new();
    let root = small_fleet(&env);
    let a = root.join("a.git");
    // One push mirrored: one push→mirror delay observed (the first sync carried no update).
    let wc = env.clone(&a, "wc");
    env.commit(&wc, "one");
    env.push(&wc, &["main"]);
    wait_finished(&env, &a, "backup");
    assert!(env.wait_flushers_gone());
    // A mirror whose URL carries a user name: it must not reach any label.
    env.pm_ok(
        &a,
        &[
            "add",
            "hub",
            "https://deploy-user@127.0.0.1:9/acme/app.git",
            "--username",
            "deploy-user",
            "--password-env",
            "HUB_TOKEN",
            "--disabled",
        ],
    );
    let textdir = env.path("textfile");
    std::fs::create_dir_all(&textdir).unwrap();
    let prom = textdir.join("git-pushmirror.prom");
    let out = pm_root(
        &env,
        &[
            "metrics",
            "--root",
            root.to_str().unwrap(),
            "--output",
            prom.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
    let text = std::fs::read_to_string(&prom).unwrap();
    assert!(
        !text.contains("deploy-user") && !text.contains("https://"),
        "{text}"
    );
    // No temp file left next to it (node_exporter would read a half-written one).
    let names: Vec<_> = std::fs::read_dir(&textdir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");

    let check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&prom).unwrap())
        .output()
        .unwrap();
    assert!(
        check.status.success() && check.stdout.is_empty() && check.stderr.is_empty(),
        "promtool: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );

    let ne = NodeExporter::start(&textdir, &env.path("node-exporter.log"));
    let body = ne.scrape();
    for want in [
        "node_textfile_scrape_error 0",
        "git_pushmirror_repositories 3",
        "git_pushmirror_mirrors 3",
        "git_pushmirror_mirrors_unhealthy 1",
        r#"git_pushmirror_mirror_healthy{mirror="gone",repository="b/c.git"} 0"#,
        r#"git_pushmirror_mirror_healthy{mirror="backup",repository="a.git"} 1"#,
        r#"git_pushmirror_mirror_enabled{mirror="hub",repository="a.git"} 0"#,
        r#"git_pushmirror_mirror_gave_up{mirror="gone",repository="b/c.git"} 1"#,
        r#"git_pushmirror_mirror_update_status{mirror="gone",repository="b/c.git",status="failed"} 1"#,
        r#"git_pushmirror_mirror_syncs_total{mirror="backup",repository="a.git"} 2"#,
        r#"git_pushmirror_repository_hook_installed{repository="b/c.git"} 1"#,
        "# TYPE git_pushmirror_mirror_syncs_total counter",
        "git_pushmirror_mirror_last_success_timestamp_seconds{mirror=\"backup\"",
        "# TYPE git_pushmirror_mirror_replication_delay_seconds histogram",
        "# TYPE git_pushmirror_mirror_sync_duration_seconds histogram",
        r#"git_pushmirror_mirror_replication_delay_seconds_count{mirror="backup",repository="a.git"} 1"#,
        r#"git_pushmirror_mirror_replication_delay_seconds_bucket{mirror="backup",repository="a.git",le="+Inf"} 1"#,
        r#"git_pushmirror_mirror_replication_delay_seconds_bucket{mirror="backup",repository="a.git",le="86400"} 1"#,
        // Both syncs of the good mirror and the failed one of the other are timed.
        r#"git_pushmirror_mirror_sync_duration_seconds_count{mirror="backup",repository="a.git"} 2"#,
        r#"git_pushmirror_mirror_sync_duration_seconds_count{mirror="gone",repository="b/c.git"} 1"#,
        r#"git_pushmirror_mirror_sync_duration_seconds_bucket{mirror="gone",repository="b/c.git",le="+Inf"} 1"#,
    ] {
        assert!(
            body.contains(want),
            "missing `{want}` in the scrape:\n{body}"
        );
    }
    // No delay for a mirror that never got its updates, nor for one that never synced.
    assert!(!body.contains(r#"replication_delay_seconds_count{mirror="gone""#));
    assert!(!body.contains(r#"sync_duration_seconds_count{mirror="hub""#));
    // The delay fell in one bucket, and every bucket from there on counts it.
    let buckets: Vec<u64> = body
        .lines()
        .filter(|l| {
            l.starts_with("git_pushmirror_mirror_replication_delay_seconds_bucket{")
                && l.contains(r#"mirror="backup""#)
        })
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(buckets.len(), 11, "{body}");
    assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");
    assert!(!body.contains("deploy-user"));

    // A second write replaces the file in place of the first; node_exporter sees the change.
    let out = pm_root(
        &env,
        &[
            "metrics",
            "--root",
            root.to_str().unwrap(),
            "--output",
            prom.to_str().unwrap(),
        ],
    );
    assert!(out.status.success());
    assert!(ne.scrape().contains("git_pushmirror_repositories 3"));
}

/// A notify command that records what it got: stdin, argv and environment, one file each.
fn recorder(env: &Env) -> (PathBuf, PathBuf) {
    let dir = env.path("notified");
    std::fs::create_dir_all(&dir).unwrap();
    let script = env.path("record-notify.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nd='{}'\nn=$(date +%s%N)\ncat > \"$d/tmp.$n\"\nenv > \"$d/env.$n\"\necho \"$0 $*\" > \"$d/argv.$n\"\nmv \"$d/tmp.$n\" \"$d/doc.$n.json\"\n",
            dir.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    (dir, script)
}

fn docs(dir: &Path) -> Vec<Value> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    names.sort();
    names
        .iter()
        .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
        .collect()
}

#[test]
fn notify_tells_failed_gave_up_recovered_and_divergent() {
    let env = Env::new();
    let (dir, script) = recorder(&env);
    env.write_server_config(&format!(
        "defaults:\n  max_attempts: 2\n  backoff_initial: 100ms\n  backoff_max: 200ms\nnotify:\n  command: {}\n  timeout: 30s\n",
        script.display()
    ));
    let up = env.upstream("up.git");
    let wc = env.clone(&up, "wc");
    env.commit(&wc, "one");
    env.push(&wc, &["main"]);
    let later = env.path("later.git");
    // The flusher gets a secret in its environment (as with auth.password_env): the notify
    // command must not.
    let out = env
        .cmd(bin())
        .env("PM_TEST_SECRET", "s3cret-in-env")
        .arg("--repo")
        .arg(&up)
        .args(["add", "m", later.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        wait_until(Duration::from_secs(60), || docs(&dir).len() >= 2),
        "no failed/gave_up notifications: {:?}\nlog:\n{}",
        docs(&dir),
        env.log(&up)
    );
    let d = docs(&dir);
    assert_eq!(d[0]["event"], "failed", "{d:#?}");
    assert_eq!(d[0]["mirror"], "m");
    assert_eq!(d[0]["repository"], up.to_str().unwrap());
    assert_eq!(d[0]["url"], later.to_str().unwrap());
    assert!(d[0]["last_error"].as_str().unwrap().contains("later.git"));
    assert_eq!(d[0]["consecutive_failures"], 1);
    assert_eq!(d[1]["event"], "gave_up");
    assert_eq!(d[1]["gave_up"], true);

    // The mirror appears; an admin's sync recovers it.
    env.bare("later.git", &[]);
    env.pm_ok(&up, &["sync", "m", "--wait"]);
    assert!(wait_until(Duration::from_secs(60), || docs(&dir).len() >= 3));
    let d = docs(&dir);
    assert_eq!(d[2]["event"], "recovered", "{d:#?}");
    assert_eq!(d[2]["healthy"], true);
    assert!(d[2]["previous_error"].is_string());

    // A mirror whose main diverged, with keep_divergent_refs.
    let div = env.bare("diverged.git", &[]);
    let other = env.path("other");
    env.git(
        env.dir.path(),
        &["init", "-q", "-b", "main", other.to_str().unwrap()],
    );
    env.commit(&other, "unrelated");
    env.git(&other, &["push", "-q", div.to_str().unwrap(), "main"]);
    env.pm_ok(
        &up,
        &["add", "d", div.to_str().unwrap(), "--keep-divergent-refs"],
    );
    assert!(wait_until(Duration::from_secs(60), || docs(&dir).len() >= 4));
    let d = docs(&dir);
    assert_eq!(d[3]["mirror"], "d");
    assert!(
        d[3]["events"]
            .as_array()
            .unwrap()
            .contains(&"divergent".into()),
        "{d:#?}"
    );
    assert_eq!(d[3]["new_divergent_refs"][0], "refs/heads/main");
    assert!(env.wait_flushers_gone());
    assert_eq!(docs(&dir).len(), 4, "one notification per transition");

    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(!text.contains("s3cret-in-env"), "{}: {text}", p.display());
        if p.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("argv.")
        {
            assert_eq!(text.trim(), script.to_str().unwrap(), "nothing in argv");
        }
    }
    assert!(
        env.log(&up).contains("notify m (gave_up): done in"),
        "{}",
        env.log(&up)
    );
}

#[test]
fn notify_is_overridden_per_repository_and_bounded_by_its_timeout() {
    let env = Env::new();
    let (dir, script) = recorder(&env);
    env.write_server_config(&format!(
        "defaults:\n  max_attempts: 1\nnotify:\n  command: {}\n",
        script.display()
    ));
    let up = env.upstream("up.git");
    std::fs::create_dir_all(up.join("pushmirror")).unwrap();
    std::fs::write(
        up.join("pushmirror/config.yaml"),
        "notify:\n  command: echo started >&2; sleep 3613\n  timeout: 1s\n",
    )
    .unwrap();
    let missing = env.path("missing.git");
    env.pm_ok(&up, &["add", "m", missing.to_str().unwrap()]);
    assert!(
        wait_until(Duration::from_secs(60), || env
            .log(&up)
            .contains("notify m (gave_up, failed): timed out after 1s; killed")),
        "{}",
        env.log(&up)
    );
    assert!(
        env.wait_flushers_gone(),
        "the flusher waits for its notification, then exits"
    );
    assert!(
        docs(&dir).is_empty(),
        "the repository's command replaced the server's"
    );
    // `add` kept the repository's notify setting when it rewrote the file.
    let cfg = std::fs::read_to_string(up.join("pushmirror/config.yaml")).unwrap();
    assert!(cfg.contains("sleep 3613"), "{cfg}");
    // The sleep was killed with its group.
    let ps = Command::new("ps").args(["-eo", "args"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&ps.stdout).contains("sleep 3613"));
}

#[test]
fn install_sh_installs_man_pages_completions_and_systemd_units() {
    if !have_all(&["man", "systemd-analyze"]) {
        eprintln!("SKIPPED: man / systemd-analyze missing");
        return;
    }
    let env = Env::new();
    let prefix = env.path("prefix");
    let units = env.path("units");
    let out = env
        .cmd("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("install.sh"))
        .arg("--prefix")
        .arg(&prefix)
        .arg("--binary")
        .arg(bin())
        .args(["--systemd", "--systemd-dir"])
        .arg(&units)
        .args(["--user", current_user()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "install.sh: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let man = prefix.join("share/man");
    let path = format!(
        "{}:{}",
        prefix.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // git's own way to ask for help: `git pushmirror --help` runs `man git-pushmirror`.
    let help = env
        .cmd("git")
        .args(["pushmirror", "--help"])
        .env("PATH", &path)
        .env("MANPATH", &man)
        .env("MANPAGER", "cat")
        .env("PAGER", "cat")
        .env("MANWIDTH", "100")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.status.success()
            && text.contains("git-pushmirror-status(1)")
            && text.contains("SYNOPSIS"),
        "git pushmirror --help: {text}{}",
        String::from_utf8_lossy(&help.stderr)
    );
    let page = env
        .cmd("man")
        .arg("git-pushmirror-metrics")
        .env("MANPATH", &man)
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "100")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&page.stdout).contains("--output"));
    // Completions: bash loads them.
    let comp = env
        .cmd("bash")
        .arg("-c")
        .arg(format!(
            "source {} && complete -p git-pushmirror",
            prefix
                .join("share/bash-completion/completions/git-pushmirror")
                .display()
        ))
        .output()
        .unwrap();
    assert!(
        comp.status.success(),
        "{}",
        String::from_utf8_lossy(&comp.stderr)
    );
    // The units point at the installed binary and pass systemd's own check (which also looks
    // the Documentation= man pages up).
    let sweep = std::fs::read_to_string(units.join("git-pushmirror-sweep.service")).unwrap();
    assert!(sweep.contains(&format!(
        "ExecStart={} sweep",
        prefix.join("bin/git-pushmirror").display()
    )));
    assert!(sweep.contains(&format!("User={}", current_user())));
    let mut verify = env.cmd("systemd-analyze");
    verify.arg("verify").env("MANPATH", &man);
    for u in [
        "git-pushmirror-sweep.service",
        "git-pushmirror-sweep.timer",
        "git-pushmirror-metrics.service",
        "git-pushmirror-metrics.timer",
    ] {
        verify.arg(units.join(u));
    }
    let v = verify.output().unwrap();
    let errs = String::from_utf8_lossy(&v.stderr);
    assert!(v.status.success(), "systemd-analyze verify: {errs}");
    assert!(
        !errs.contains("git-pushmirror-"),
        "systemd-analyze verify warns: {errs}"
    );
}

#[test]
fn documented_alert_rules_pass_promtool() {
    if !have("promtool") {
        eprintln!("SKIPPED: promtool missing");
        return;
    }
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/operations.md"))
            .unwrap();
    let after = doc.split("### Example alert rules").nth(1).unwrap();
    let rules = after
        .split("```yaml\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .unwrap();
    let env = Env::new();
    let file = env.path("rules.yml");
    std::fs::write(&file, rules).unwrap();
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("3 rules found"));

    // The delay alert fires for a mirror whose pushes arrive 5 to 15 minutes late, and not for
    // one they reach within a second (`promtool test rules`, one sync a minute for 2 hours).
    let bucket = |mirror: &str, le: &str, series: &str| {
        format!(
            "      - series: 'git_pushmirror_mirror_replication_delay_seconds_bucket{{repository=\"a.git\",mirror=\"{mirror}\",le=\"{le}\"}}'\n        values: '{series}'\n"
        )
    };
    let mut series = String::new();
    for (le, slow, fast) in [
        ("1", "0+0x120", "0+1x120"),
        ("300", "0+0x120", "0+1x120"),
        ("900", "0+1x120", "0+1x120"),
        ("+Inf", "0+1x120", "0+1x120"),
    ] {
        series.push_str(&bucket("slow", le, slow));
        series.push_str(&bucket("fast", le, fast));
    }
    let test = env.path("rules_test.yml");
    std::fs::write(
        &test,
        format!(
            "rule_files: [{}]\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n{series}    alert_rule_test:\n      - eval_time: 2h\n        alertname: PushMirrorSlow\n        exp_alerts:\n          - exp_labels: {{ severity: warning, repository: a.git, mirror: slow }}\n            exp_annotations:\n              summary: \"git-pushmirror: pushes to a.git reach slow late (p95 14m 29s)\"\n",
            file.display()
        ),
    )
    .unwrap();
    let out = Command::new("promtool")
        .args(["test", "rules"])
        .arg(&test)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A real SMTP server (aiosmtpd, Debian's python3-aiosmtpd) on a free loopback port that
/// delivers every message into a Maildir.
struct SmtpServer {
    server: Listener,
    maildir: PathBuf,
}

/// The first python3 that can import aiosmtpd (a pyenv `python3` in PATH may not see Debian's
/// packages, `/usr/bin/python3` does).
fn python_with_aiosmtpd() -> Option<PathBuf> {
    ["python3", "/usr/bin/python3"]
        .iter()
        .filter_map(|p| find_program(p))
        .find(|p| {
            Command::new(p)
                .args(["-c", "import aiosmtpd"])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
}

impl SmtpServer {
    fn start(python: &Path, maildir: &Path, log: &Path) -> SmtpServer {
        let err_log = log.with_extension("err");
        let server = Listener::start("aiosmtpd", &err_log, |port| {
            let mut c = Command::new(python);
            c.args(["-m", "aiosmtpd", "-n", "-l"])
                .arg(format!("127.0.0.1:{port}"))
                .args(["-c", "aiosmtpd.handlers.Mailbox"])
                .arg(maildir)
                .stdout(std::fs::File::create(log).unwrap())
                .stderr(std::fs::File::create(&err_log).unwrap());
            c
        });
        SmtpServer {
            server,
            maildir: maildir.to_path_buf(),
        }
    }

    /// The delivered messages, oldest first.
    fn messages(&self) -> Vec<String> {
        let Ok(rd) = std::fs::read_dir(self.maildir.join("new")) else {
            return Vec::new();
        };
        let mut m: Vec<(std::time::SystemTime, String)> = rd
            .flatten()
            .map(|e| {
                (
                    e.metadata().and_then(|m| m.modified()).unwrap(),
                    std::fs::read_to_string(e.path()).unwrap(),
                )
            })
            .collect();
        m.sort();
        m.into_iter().map(|(_, t)| t).collect()
    }
}

/// The mail example of docs/operations.md, as written there, with only its `sendmail` line
/// pointed at a real sendmail-compatible client (msmtp) talking to a real SMTP server: a mirror
/// that gives up arrives as a mail in the admins' mailbox, with the masked URL and no password.
#[test]
fn notify_mail_example_from_the_docs_reaches_a_real_mailbox() {
    if !have_all(&["msmtp", "jq"]) {
        return;
    }
    let Some(python) = python_with_aiosmtpd() else {
        assert!(
            !running_in_ci(),
            "CI=true but python3-aiosmtpd is not installed: tests/install-deps.sh must install it"
        );
        eprintln!("*** WARNING: no python3 with aiosmtpd; test SKIPPED ***");
        return;
    };
    let env = Env::new();
    let smtp = SmtpServer::start(&python, &env.path("maildir"), &env.path("smtp.log"));

    // The script exactly as docs/operations.md shows it, but for where sendmail lives.
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/operations.md"))
            .unwrap();
    let section = doc
        .split("### Mail through sendmail")
        .nth(1)
        .expect("docs/operations.md lost its mail example");
    let script_text = section
        .split("```sh\n")
        .nth(1)
        .and_then(|s| s.split("```").next())
        .expect("no ```sh block in the mail example");
    assert!(
        script_text.contains("/usr/sbin/sendmail -t"),
        "{script_text}"
    );
    let msmtp = find_program("msmtp").unwrap();
    let script_text = script_text.replace(
        "/usr/sbin/sendmail -t",
        &format!(
            "{} --host=127.0.0.1 --port={} --auth=off --tls=off --from=git@localhost -t",
            msmtp.display(),
            smtp.server.port
        ),
    );
    let script = env.path("pushmirror-mail");
    std::fs::write(&script, script_text).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();

    env.write_server_config(&format!(
        "defaults:\n  max_attempts: 1\nnotify:\n  command: {}\n  timeout: 60s\n",
        script.display()
    ));
    let up = env.upstream("up.git");
    let wc = env.clone(&up, "wc");
    env.commit(&wc, "one");
    env.push(&wc, &["main"]);
    // An HTTPS mirror with a password that nobody answers: the sync fails and gives up.
    let port = free_port();
    env.pm_ok(
        &up,
        &[
            "add",
            "offsite",
            &format!("https://mirror-user:Sup3rS3cret@127.0.0.1:{port}/x.git"),
        ],
    );
    let ok = wait_until(Duration::from_secs(120), || !smtp.messages().is_empty());
    assert!(
        ok,
        "no mail arrived\nlog:\n{}\nsmtp:\n{}",
        env.log(&up),
        std::fs::read_to_string(env.path("smtp.err")).unwrap_or_default()
    );
    assert!(env.wait_flushers_gone());
    let mails = smtp.messages();
    let first = &mails[0];
    assert!(first.contains("To: git-admins@example.com"), "{first}");
    assert!(
        first.contains(&format!(
            "Subject: [git-pushmirror] gave_up: {} -> offsite",
            up.display()
        )),
        "{first}"
    );
    assert!(first.contains("\"mirror\": \"offsite\""), "{first}");
    assert!(first.contains("\"event\": \"gave_up\""), "{first}");
    assert!(first.contains("https://*****:*****@127.0.0.1:"), "{first}");
    for m in &mails {
        assert!(!m.contains("Sup3rS3cret"), "password in a mail: {m}");
        assert!(!m.contains("mirror-user"), "user name in a mail: {m}");
    }
}

/// Two repositories whose names are not UTF-8 (`\xff.git`, `\xfe.git`: both `\u{FFFD}.git`
/// under a lossy conversion) and `ok.git`, each with a mirror that synced. Returns the root.
fn non_utf8_fleet(env: &Env) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    let root = env.path("srv");
    std::fs::create_dir_all(&root).unwrap();
    let mut repos = vec![root.join("ok.git")];
    for b in [b"\xff.git", b"\xfe.git"] {
        repos.push(root.join(std::ffi::OsStr::from_bytes(b)));
    }
    for (i, repo) in repos.iter().enumerate() {
        let o = env
            .cmd("git")
            .args(["init", "-q", "--bare", "-b", "main"])
            .arg(repo)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
        env.pm_ok(repo, &["install"]);
        let mirror = env.bare(&format!("mirrors/{i}.git"), &[]);
        env.pm_ok(repo, &["add", "m", mirror.to_str().unwrap()]);
    }
    let settled = wait_until(Duration::from_secs(60), || {
        repos
            .iter()
            .all(|r| env.mirror_status(r, "m")["update_status"] == "finished")
    });
    assert!(settled, "first syncs never finished");
    assert!(env.wait_flushers_gone());
    root
}

#[test]
fn status_reports_repositories_whose_path_is_not_utf8() {
    let env = Env::new();
    let root = non_utf8_fleet(&env);
    let out = pm_root(
        &env,
        &["status", "--root", root.to_str().unwrap(), "--json"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["repositories_scanned"], 3, "{doc:#}");
    let repos = doc["repositories"].as_array().unwrap();
    assert_eq!(repos.len(), 3, "{doc:#}");
    let root_s = root.to_str().unwrap();
    // Unhealthy (their path is an error) first, in path order; each one named apart.
    for (r, name) in repos.iter().zip(["\\xfe.git", "\\xff.git", "ok.git"]) {
        assert_eq!(r["repository"], format!("{root_s}/{name}"), "{doc:#}");
        assert_eq!(r["mirrors"][0]["name"], "m");
        assert_eq!(r["mirrors"][0]["update_status"], "finished");
    }
    for r in &repos[..2] {
        let e = r["error"].as_str().unwrap();
        assert!(e.contains("not UTF-8") && e.contains("\\x"), "{e}");
    }
    assert!(repos[2].get("error").is_none(), "{doc:#}");
    assert_eq!(doc["unhealthy"], 2);

    let out = pm_root(&env, &["status", "--root", root_s]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let t = stdout(&out);
    assert!(
        t.contains(&format!("repository: {root_s}/\\xff.git\nERROR: ")),
        "{t}"
    );
    // The status of the repository itself too.
    let bad = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_str().is_none())
        .unwrap();
    let one = env.pm(&bad, &["status", "--json"]);
    assert!(one.status.success(), "{}", text(&one));
    let one: Value = serde_json::from_slice(&one.stdout).unwrap();
    assert!(
        one["repository"].as_str().unwrap().contains("\\x"),
        "{one:#}"
    );
    let shown = env.pm(&bad, &["show", "m", "--json"]);
    assert!(shown.status.success(), "{}", text(&shown));
    let shown: Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert!(
        shown["effective"]["source"]
            .as_str()
            .unwrap()
            .ends_with("pushmirror/config.yaml"),
        "{shown:#}"
    );
}

#[test]
fn metrics_label_each_non_utf8_repository_apart() {
    let env = Env::new();
    let root = non_utf8_fleet(&env);
    let textdir = env.path("textfile");
    std::fs::create_dir_all(&textdir).unwrap();
    let prom = textdir.join("git-pushmirror.prom");
    let out = pm_root(
        &env,
        &[
            "metrics",
            "--root",
            root.to_str().unwrap(),
            "--output",
            prom.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let body = std::fs::read_to_string(&prom).unwrap();
    let series: std::collections::BTreeSet<&str> = body
        .lines()
        .filter(|l| l.starts_with("git_pushmirror_mirror_enabled{"))
        .collect();
    assert_eq!(
        series.into_iter().collect::<Vec<_>>(),
        [
            r#"git_pushmirror_mirror_enabled{repository="\\xfe.git",mirror="m"} 1"#,
            r#"git_pushmirror_mirror_enabled{repository="\\xff.git",mirror="m"} 1"#,
            r#"git_pushmirror_mirror_enabled{repository="ok.git",mirror="m"} 1"#,
        ],
        "{body}"
    );
    if !have_all(&["promtool", "prometheus-node-exporter"]) {
        eprintln!("SKIPPED (node_exporter part): promtool / prometheus-node-exporter missing");
        return;
    }
    let check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&prom).unwrap())
        .output()
        .unwrap();
    assert!(check.status.success(), "promtool: {}", text(&check));
    let ne = NodeExporter::start(&textdir, &env.path("node-exporter.log"));
    let body = ne.scrape();
    assert!(body.contains("node_textfile_scrape_error 0"), "{body}");
    for repo in ["\\\\xfe.git", "\\\\xff.git", "ok.git"] {
        let want = format!(r#"git_pushmirror_mirror_enabled{{mirror="m",repository="{repo}"}} 1"#);
        assert!(
            body.contains(&want),
            "missing `{want}` in the scrape:\n{body}"
        );
    }
}

/// Runs git-pushmirror with `args` as a user who cannot read a mode-000 directory: the test
/// user itself, or `nobody` (with the tree handed to it) when the test runs as root, whom no
/// permission stops.
fn pm_unprivileged(env: &Env, args: &[&str]) -> std::process::Output {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return pm_root(env, args);
    }
    env.cmd("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(bin())
        .args(args)
        .output()
        .expect("run setpriv")
}

#[test]
fn an_unreadable_directory_under_the_root_is_reported_and_exits_1() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    let root = env.path("srv");
    std::fs::create_dir_all(root.join("locked")).unwrap();
    for r in ["srv/ok.git", "srv/locked/hidden.git"] {
        env.bare(r, &[]);
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        // `nobody` walks the tree: it must reach the root, and own what it may read.
        chown_r("65534:65534", &root);
        std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let locked = root.join("locked");
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    let r = root.to_str().unwrap();
    let json = pm_unprivileged(&env, &["status", "--root", r, "--json"]);
    let plain = pm_unprivileged(&env, &["status", "--root", r]);
    let metrics = pm_unprivileged(&env, &["metrics", "--root", r]);
    let sweep = pm_unprivileged(&env, &["sweep", "--root", r]);
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();

    let named = |s: &str| s.contains(locked.to_str().unwrap()) && s.contains("ermission denied");
    assert_eq!(json.status.code(), Some(1), "{}", text(&json));
    let doc: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(doc["repositories_scanned"], 1, "{doc:#}");
    let unreadable = doc["unreadable_directories"].as_array().unwrap();
    assert_eq!(unreadable.len(), 1, "{doc:#}");
    assert!(named(unreadable[0].as_str().unwrap()), "{doc:#}");

    assert_eq!(plain.status.code(), Some(1), "{}", text(&plain));
    assert!(named(&stdout(&plain)), "{}", text(&plain));

    assert_eq!(metrics.status.code(), Some(1), "{}", text(&metrics));
    assert!(named(&stderr(&metrics)), "{}", text(&metrics));
    assert!(
        stdout(&metrics).contains("\ngit_pushmirror_unreadable_directories 1\n"),
        "{}",
        text(&metrics)
    );

    assert_eq!(sweep.status.code(), Some(1), "{}", text(&sweep));
    assert!(named(&stderr(&sweep)), "{}", text(&sweep));
}

#[test]
fn notify_commands_are_bounded_server_wide() {
    let env = Env::new();
    let dir = env.path("notified");
    std::fs::create_dir_all(&dir).unwrap();
    // Each command counts the commands running with it (its own included) while it runs.
    let script = env.path("count-notify.sh");
    write_exec(
        &script,
        &format!(
            "#!/bin/sh\nd='{}'\ncat >/dev/null\ntouch \"$d/run.$$\"\nls \"$d\" | grep -c '^run\\.' >> \"$d/counts\"\nsleep 1\nrm \"$d/run.$$\"\necho done >> \"$d/finished\"\n",
            dir.display()
        ),
    );
    env.write_server_config(&format!(
        "concurrency: 2\ndefaults:\n  max_attempts: 1\nnotify:\n  command: {}\n",
        script.display()
    ));
    // Six repositories whose mirror fails at once: six notifications.
    let missing = env.path("missing.git");
    for i in 0..6 {
        let up = env.upstream(&format!("up{i}.git"));
        env.pm_ok(&up, &["add", "m", missing.to_str().unwrap()]);
    }
    let finished = || {
        std::fs::read_to_string(dir.join("finished"))
            .unwrap_or_default()
            .lines()
            .count()
    };
    assert!(
        wait_until(Duration::from_secs(90), || finished() >= 6),
        "{} of 6 notifications ran",
        finished()
    );
    assert!(env.wait_flushers_gone());
    let counts: Vec<u32> = std::fs::read_to_string(dir.join("counts"))
        .unwrap()
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    assert_eq!(counts.len(), 6, "{counts:?}");
    assert!(
        counts.iter().all(|n| *n <= 2),
        "more notify commands ran at once than `concurrency: 2`: {counts:?}"
    );
}

#[test]
fn notify_events_of_one_mirror_arrive_in_order() {
    let env = Env::new();
    let order = env.path("order");
    // `failed` takes its time; the `gave_up` that follows it must still come second.
    let script = env.path("slow-failed.sh");
    write_exec(
        &script,
        &format!(
            "#!/bin/sh\ndoc=$(cat)\ncase \"$doc\" in *'\"event\": \"failed\"'*) sleep 2;; esac\nprintf '%s\\n' \"$doc\" | grep '\"event\"' | tr -d ' ,' >> '{}'\n",
            order.display()
        ),
    );
    env.write_server_config(&format!(
        "defaults:\n  max_attempts: 2\n  backoff_initial: 100ms\n  backoff_max: 200ms\nnotify:\n  command: {}\n",
        script.display()
    ));
    let up = env.upstream("up.git");
    let missing = env.path("missing.git");
    env.pm_ok(&up, &["add", "m", missing.to_str().unwrap()]);
    let events = || {
        std::fs::read_to_string(&order)
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect::<Vec<_>>()
    };
    assert!(
        wait_until(Duration::from_secs(60), || events().len() >= 2),
        "{:?}\n{}",
        events(),
        env.log(&up)
    );
    assert!(env.wait_flushers_gone());
    assert_eq!(
        events(),
        ["\"event\":\"failed\"", "\"event\":\"gave_up\""],
        "{}",
        env.log(&up)
    );
}
