//! Adversarial review of issue 22: variants of push batching, `sync --all`, nodes and the
//! latency histograms, against the built binary.

mod common;
use common::*;

use std::path::{Path, PathBuf};

/// A bare mirror whose pre-receive hook refuses pushes of more than `max_refs` ref updates,
/// and logs the ref count of every push it sees.
fn strict_mirror(m: &Path, max_refs: usize) {
    write_exec(
        &m.join("hooks/pre-receive"),
        &format!(
            "#!/bin/sh\nrefs=0\nwhile read old new ref; do refs=$((refs+1)); done\n\
             echo \"$refs\" >> pushes.log\n\
             if [ \"$refs\" -gt {max_refs} ]; then echo \"policy: at most {max_refs} ref updates per push\"; exit 1; fi\n"
        ),
    );
}

fn pushes(m: &Path) -> Vec<usize> {
    std::fs::read_to_string(m.join("pushes.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect()
}

/// A mirror populated from an older state of `up`, plus mirror-only refs.
fn populated(env: &Env, up: &Path, name: &str) -> PathBuf {
    let m = env.bare(name, &[]);
    env.git(up, &["push", "-q", "--mirror", m.to_str().unwrap()]);
    let main = env.git(&m, &["rev-parse", "main"]);
    for i in 0..4 {
        env.git(&m, &["update-ref", &format!("refs/heads/only{i}"), &main]);
        env.git(&m, &["update-ref", &format!("refs/tags/mt{i}"), &main]);
    }
    m
}

#[test]
fn first_sync_to_a_populated_mirror_respects_push_batch_refs_one() {
    let env = Env::new();
    env.write_server_config("defaults:\n  max_attempts: 1\n");
    let up = env.upstream("up.git");
    let wc = env.clone(&up, "wc");
    env.commit(&wc, "one");
    for i in 0..6 {
        env.git(&wc, &["branch", &format!("b{i}")]);
        env.git(&wc, &["tag", "-a", "-m", "t", &format!("t{i}")]);
    }
    env.push(&wc, &["--all"]);
    env.push(&wc, &["--tags"]);
    let plain = populated(&env, &up, "plain.git");
    let batched = populated(&env, &up, "batched.git");
    strict_mirror(&batched, 1);
    // Upstream moves on: new commits, new branches, deleted branches, a moved tag.
    env.commit(&wc, "two");
    for i in 0..3 {
        env.git(&wc, &["branch", "-f", &format!("b{i}")]);
        env.git(&wc, &["branch", &format!("n{i}")]);
    }
    env.git(&wc, &["tag", "-f", "-a", "-m", "t2", "t0"]);
    env.push(&wc, &["--all", "-f"]);
    env.push(&wc, &["--tags", "-f"]);
    env.push(&wc, &["--delete", "b4", "b5"]);
    std::fs::create_dir_all(up.join("pushmirror")).unwrap();
    std::fs::write(
        up.join("pushmirror/config.yaml"),
        format!(
            "mirrors:\n  - name: plain\n    url: {}\n  - name: batched\n    url: {}\n    push_batch_refs: 1\n",
            plain.display(),
            batched.display()
        ),
    )
    .unwrap();
    let out = env.pm(&up, &["sync", "--wait"]);
    assert!(out.status.success(), "{}\n{}", text(&out), env.log(&up));
    let seen = pushes(&batched);
    assert!(seen.iter().all(|r| *r <= 1), "{seen:?}");
    assert_eq!(env.heads_and_tags(&batched), env.heads_and_tags(&plain));
    let (a, b) = (
        env.mirror_status(&up, "plain"),
        env.mirror_status(&up, "batched"),
    );
    for k in ["refs_pushed_last", "refs_deleted_last"] {
        assert_eq!(a[k], b[k], "{k}: {a:#}\n{b:#}");
    }
}

#[test]
fn a_first_sync_to_an_equal_mirror_counts_nothing() {
    let env = Env::new();
    let up = env.upstream("up.git");
    let wc = env.clone(&up, "wc");
    env.commit(&wc, "one");
    for i in 0..3 {
        env.git(&wc, &["branch", &format!("b{i}")]);
        env.git(&wc, &["tag", "-a", "-m", "t", &format!("t{i}")]);
    }
    env.push(&wc, &["--all"]);
    env.push(&wc, &["--tags"]);
    let m = env.bare("m.git", &[]);
    env.git(&up, &["push", "-q", "--mirror", m.to_str().unwrap()]);
    std::fs::create_dir_all(up.join("pushmirror")).unwrap();
    std::fs::write(
        up.join("pushmirror/config.yaml"),
        format!("mirrors:\n  - name: m\n    url: {}\n", m.display()),
    )
    .unwrap();
    let out = env.pm(&up, &["sync", "--wait"]);
    assert!(out.status.success(), "{}", text(&out));
    let st = env.mirror_status(&up, "m");
    assert_eq!(st["refs_pushed_last"], 0, "{st:#}");
    assert_eq!(st["pushes"], 0, "{st:#}");
}

#[test]
fn push_batch_bytes_smaller_than_one_commit_steps_and_ends_equal() {
    let env = Env::new();
    env.write_server_config("defaults:\n  max_attempts: 1\n");
    let up = env.upstream("up.git");
    let mut s: Vec<u8> = Vec::new();
    for i in 1..=5u64 {
        let data = random_bytes(40 << 10, i * 31);
        s.extend_from_slice(
            format!(
                "commit refs/heads/main\nmark :{i}\ncommitter T <t@e> {} +0000\ndata 2\nc\n",
                1_700_000_000 + i * 60
            )
            .as_bytes(),
        );
        if i > 1 {
            s.extend_from_slice(format!("from :{}\n", i - 1).as_bytes());
        }
        s.extend_from_slice(format!("M 100644 inline f{i}.bin\ndata {}\n", data.len()).as_bytes());
        s.extend_from_slice(&data);
        s.push(b'\n');
    }
    // A blob only a tag reaches, bigger than the limit.
    let data = random_bytes(60 << 10, 999);
    s.extend_from_slice(format!("blob\nmark :100\ndata {}\n", data.len()).as_bytes());
    s.extend_from_slice(&data);
    s.extend_from_slice(
        b"\ntag blobtag\nfrom :100\ntagger T <t@e> 1700000000 +0000\ndata 2\nt\n\n",
    );
    for b in 0..4 {
        s.extend_from_slice(format!("reset refs/heads/x{b}\nfrom :{}\n\n", b + 1).as_bytes());
    }
    let mut c = env.cmd("git");
    c.arg("-C").arg(&up).args(["fast-import", "--quiet"]);
    assert!(output_with_stdin(c, &s).status.success());
    let m = env.bare("m.git", &[]);
    write_exec(
        &m.join("hooks/pre-receive"),
        "#!/bin/sh\nrefs=0\nwhile read old new ref; do refs=$((refs+1)); done\necho \"$refs\" >> pushes.log\n",
    );
    std::fs::create_dir_all(up.join("pushmirror")).unwrap();
    std::fs::write(
        up.join("pushmirror/config.yaml"),
        format!("mirrors:\n  - name: m\n    url: {}\n    push_batch_bytes: 10KiB\n    push_batch_refs: 2\n", m.display()),
    )
    .unwrap();
    let out = env.pm(&up, &["sync", "--wait"]);
    assert!(out.status.success(), "{}\n{}", text(&out), env.log(&up));
    assert!(pushes(&m).iter().all(|r| *r <= 2));
    assert_eq!(env.heads_and_tags(&m), env.heads_and_tags(&up));
    let st = env.mirror_status(&up, "m");
    assert_eq!(st["refs_pushed_last"], 6);
}

#[test]
fn histograms_with_odd_repository_names_pass_promtool() {
    let env = Env::new();
    let root = env.path("srv");
    env.write_server_config(&format!("root: {}\n", root.display()));
    let mut ups = Vec::new();
    for name in ["srv/q\"uo\\te.git", "srv/new\nline.git", "srv/plain.git"] {
        let up = env.upstream(name);
        let m = env.bare(&format!("m{}.git", ups.len()), &[]);
        env.pm_ok(&up, &["add", "m", m.to_str().unwrap()]);
        let wc = env.clone(&up, &format!("wc{}", ups.len()));
        env.commit(&wc, "one");
        env.push(&wc, &["main"]);
        env.wait_mirrored(&up, &m);
        wait_finished(&env, &up, "m");
        ups.push(up);
    }
    assert!(env.wait_flushers_gone());
    let out = env
        .cmd(bin())
        .args(["metrics", "--root", root.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let metrics = String::from_utf8(out.stdout).unwrap();
    assert!(
        metrics.contains("git_pushmirror_mirror_sync_duration_seconds_count{repository=\"q\\\"uo"),
        "{metrics}"
    );
    if !servers::have("promtool") && skip("promtool") {
        return;
    }
    let prom = env.path("metrics.prom");
    std::fs::write(&prom, &metrics).unwrap();
    let check = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&prom).unwrap())
        .output()
        .unwrap();
    assert!(
        check.status.success() && check.stderr.is_empty(),
        "promtool: {}",
        text(&check)
    );
}

/// `slots_dir:` that is a symlink to a directory (shared storage mounted elsewhere) is
/// followed: before the fix every sync failed on it with a message naming `runtime_dir`. A
/// `slots_dir` that is a file fails the sync with one line naming `slots_dir`.
#[test]
fn a_symlinked_slots_dir_is_followed_and_a_file_is_named() {
    let env = Env::new();
    let real = env.path("shared/slots-real");
    std::fs::create_dir_all(&real).unwrap();
    let link = env.path("shared/slots");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    env.write_server_config(&format!(
        "slots_dir: {}\ndefaults:\n  max_attempts: 1\n",
        link.display()
    ));
    let up = env.upstream("up.git");
    let m = env.bare("m.git", &[]);
    env.pm_ok(&up, &["add", "m", m.to_str().unwrap()]);
    let wc = env.clone(&up, "wc");
    env.commit(&wc, "one");
    env.push(&wc, &["main"]);
    env.wait_mirrored(&up, &m);
    wait_finished(&env, &up, "m");
    let slots = std::fs::read_dir(&real)
        .unwrap()
        .filter(|e| {
            let n = e.as_ref().unwrap().file_name();
            n.to_string_lossy().starts_with("slot-")
        })
        .count();
    assert!(slots > 0, "the slots are in the link's target");
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());

    let f = env.path("afile");
    std::fs::write(&f, "").unwrap();
    env.write_server_config(&format!(
        "slots_dir: {}\ndefaults:\n  max_attempts: 1\n",
        f.display()
    ));
    env.commit(&wc, "two");
    env.push(&wc, &["main"]);
    let st = wait_gave_up(&env, &up, "m");
    let err = st["last_error"].as_str().unwrap_or_default();
    assert!(err.contains("slots_dir is not a directory"), "{st:#}");
    assert!(!err.contains('\n'), "{err}");
}

/// `sync --all` over a root where one mirror's state file is corrupt: that mirror is named and
/// counted as failed, and every other one is still synced and reported (before the fix the
/// whole command stopped at the corrupt file, without its summary).
#[test]
fn sync_all_reports_the_others_when_one_state_file_is_corrupt() {
    let env = Env::new();
    let root = env.path("srv");
    env.write_server_config(&format!(
        "root: {}\ndefaults:\n  max_attempts: 1\n",
        root.display()
    ));
    let mut ups = Vec::new();
    for i in 0..3 {
        let up = env.upstream(&format!("srv/r{i}.git"));
        let m = env.bare(&format!("m{i}.git"), &[]);
        env.pm_ok(&up, &["add", "m", m.to_str().unwrap()]);
        assert!(env.wait_flushers_gone());
        ups.push((up, m));
    }
    for (i, (up, m)) in ups.iter().enumerate() {
        let wc = env.clone(up, &format!("wc{i}"));
        env.commit(&wc, "one");
        env.push(&wc, &["main"]);
        env.wait_mirrored(up, m);
        wait_finished(&env, up, "m");
    }
    assert!(env.wait_flushers_gone());
    std::fs::write(ups[1].0.join("pushmirror/state/m.json"), "{ not json").unwrap();
    let out = env
        .cmd(bin())
        .args(["sync", "--all", "--root", root.to_str().unwrap(), "--wait"])
        .output()
        .unwrap();
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        stderr(&out).contains("r1.git: m (") && stderr(&out).contains("corrupt state file"),
        "{all}"
    );
    assert!(
        all.contains("sync --all: 2 mirror(s) synced, 1 failed"),
        "{all}"
    );
}

/// A later sync that deletes and moves more refs than `push_batch_refs`, with
/// `push_batch_bytes` small enough that the plan is split by size too: every push within the
/// host's ref limit, and the mirror ends equal.
#[test]
fn later_deletions_and_tag_moves_beyond_the_limit_are_batched() {
    let env = Env::new();
    env.write_server_config("defaults:\n  max_attempts: 1\n");
    let up = env.upstream("up.git");
    let wc = env.clone(&up, "wc");
    env.commit(&wc, "one");
    for i in 0..5 {
        env.git(&wc, &["branch", &format!("b{i}")]);
        env.git(&wc, &["tag", &format!("t{i}")]);
    }
    env.push(&wc, &["--all"]);
    env.push(&wc, &["--tags"]);
    let m = env.bare("m.git", &[]);
    strict_mirror(&m, 2);
    std::fs::create_dir_all(up.join("pushmirror")).unwrap();
    std::fs::write(
        up.join("pushmirror/config.yaml"),
        format!(
            "mirrors:\n  - name: m\n    url: {}\n    push_batch_refs: 2\n    push_batch_bytes: 1KiB\n",
            m.display()
        ),
    )
    .unwrap();
    let out = env.pm(&up, &["sync", "--wait"]);
    assert!(out.status.success(), "{}\n{}", text(&out), env.log(&up));
    assert_eq!(env.heads_and_tags(&m), env.heads_and_tags(&up));
    for i in 0..4 {
        env.commit(&wc, &format!("c{i}"));
    }
    for i in 0..5 {
        env.git(&wc, &["tag", "-f", &format!("t{i}")]);
    }
    env.push(&wc, &["--tags", "-f"]);
    env.push(&wc, &["--delete", "b0", "b1", "b2", "b3", "b4"]);
    env.push(&wc, &["main"]);
    env.wait_mirrored(&up, &m);
    let st = wait_finished(&env, &up, "m");
    let seen = pushes(&m);
    assert!(seen.iter().all(|r| *r <= 2), "{seen:?}");
    assert_eq!(env.heads_and_tags(&m), env.heads_and_tags(&up));
    env.git(&m, &["fsck", "--connectivity-only"]);
    assert!(st["rejected_refs"].as_array().unwrap().is_empty(), "{st:#}");
}

/// `keep_divergent_refs` and `only_protected_branches` with both limits, on a first sync to a
/// populated mirror whose main diverged: main is kept and reported divergent, only protected
/// branches are pushed, each push within one ref.
#[test]
fn divergent_and_protected_with_batching_on_a_populated_mirror() {
    let env = Env::new();
    env.write_server_config("defaults:\n  max_attempts: 1\n");
    let up = env.upstream("up.git");
    let wc = env.clone(&up, "wc");
    env.commit(&wc, "one");
    env.push(&wc, &["main"]);
    let m = env.bare("m.git", &[]);
    env.git(&up, &["push", "-q", "--mirror", m.to_str().unwrap()]);
    // The mirror's main gets a commit of its own: it diverges once upstream moves.
    let mwc = env.clone(&m, "mwc");
    env.commit(&mwc, "mirror only");
    env.git(&mwc, &["push", "-q", "origin", "main"]);
    strict_mirror(&m, 1);
    env.commit(&wc, "two");
    for i in 0..4 {
        env.git(&wc, &["branch", &format!("release/{i}")]);
        env.git(&wc, &["branch", &format!("topic{i}")]);
    }
    env.push(&wc, &["--all"]);
    std::fs::create_dir_all(up.join("pushmirror")).unwrap();
    std::fs::write(
        up.join("pushmirror/config.yaml"),
        format!(
            "mirrors:\n  - name: m\n    url: {}\n    keep_divergent_refs: true\n    only_protected_branches: true\n    protected: [main, 'release/*']\n    push_batch_refs: 1\n    push_batch_bytes: 1KiB\n",
            m.display()
        ),
    )
    .unwrap();
    // A divergent ref kept fails the sync (as GitLab reports it); the rest is done.
    let out = env.pm(&up, &["sync", "--wait"]);
    assert!(
        stderr(&out).contains("divergent refs kept on the mirror: refs/heads/main"),
        "{}\n{}",
        text(&out),
        env.log(&up)
    );
    let seen = pushes(&m);
    assert!(seen.iter().all(|r| *r <= 1), "{seen:?}");
    let got = env.heads_and_tags(&m);
    let want = env.heads_and_tags(&up);
    for i in 0..4 {
        let r = format!("refs/heads/release/{i}");
        assert_eq!(got.get(&r), want.get(&r), "{got:?}");
        assert!(
            !got.contains_key(&format!("refs/heads/topic{i}")),
            "{got:?}"
        );
    }
    assert_ne!(got["refs/heads/main"], want["refs/heads/main"]);
    let st = env.mirror_status(&up, "m");
    assert_eq!(
        st["divergent_refs"],
        serde_json::json!(["refs/heads/main"]),
        "{st:#}"
    );
    assert_eq!(st["refs_pushed_last"], 4, "{st:#}");
}

/// `sync --all --url`: `*` stops at `/` as in git, `**` crosses it; a pattern that matches
/// nothing says so, with that hint (a host-wide `https://host/*` is the usual slip).
#[test]
fn sync_all_url_patterns_and_the_hint_when_nothing_matches() {
    let env = Env::new();
    let root = env.path("srv");
    env.write_server_config(&format!("root: {}\n", root.display()));
    let up = env.upstream("srv/r.git");
    let m = env.bare("dest/acme/r.git", &[]);
    env.pm_ok(&up, &["add", "m", m.to_str().unwrap()]);
    assert!(env.wait_flushers_gone());
    let dest = env.path("dest");
    let run = |pattern: &str| {
        env.cmd(bin())
            .args(["sync", "--all", "--url", pattern, "--wait"])
            .output()
            .unwrap()
    };
    let out = run(&format!("{}/*", dest.display()));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(stderr(&out).contains("`**` crosses it"), "{}", text(&out));
    for ok in [
        format!("{}/**", dest.display()),
        format!("{}/*/r.git", dest.display()),
    ] {
        let out = run(&ok);
        assert!(out.status.success(), "{ok}: {}", text(&out));
        assert!(
            stdout(&out).contains("1 mirror(s) synced, 0 failed"),
            "{}",
            text(&out)
        );
    }
}
