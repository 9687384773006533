//! Push limits of the target (issue 22 part 1, spec §13): `push_batch_refs` and
//! `push_batch_bytes` split a sync into pushes that each pass a host's push policy, here a
//! mirror's pre-receive hook that refuses more than a few ref updates or bytes per push.

mod common;
use common::*;

use std::path::{Path, PathBuf};

/// A bare mirror whose pre-receive hook refuses pushes of more than `max_refs` ref updates or
/// a pack of more than `max_bytes`, and logs `<refs> <bytes>` of every push it sees.
fn strict_mirror(env: &Env, name: &str, max_refs: usize, max_bytes: u64) -> PathBuf {
    let m = env.bare(name, &[]);
    // The pack is kept as it came (not exploded into loose objects), so the hook sees its size.
    env.git(&m, &["config", "receive.unpackLimit", "1"]);
    write_exec(
        &m.join("hooks/pre-receive"),
        &format!(
            r#"#!/bin/sh
refs=0
while read old new ref; do refs=$((refs+1)); done
bytes=0
if [ -n "$GIT_QUARANTINE_PATH" ]; then
  bytes=$(find "$GIT_QUARANTINE_PATH" -name '*.pack' -exec cat {{}} + | wc -c)
fi
echo "$refs $bytes" >> pushes.log
if [ "$refs" -gt {max_refs} ]; then
  echo "policy: at most {max_refs} ref updates per push, this one has $refs"; exit 1
fi
if [ "$bytes" -gt {max_bytes} ]; then
  echo "policy: at most {max_bytes} bytes per push, this one has $bytes"; exit 1
fi
"#
        ),
    );
    m
}

/// `(refs, bytes)` of every push the strict mirror accepted or refused.
fn pushes(mirror: &Path) -> Vec<(usize, u64)> {
    std::fs::read_to_string(mirror.join("pushes.log"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(r, b)| (r.parse().unwrap(), b.trim().parse().unwrap()))
        .collect()
}

/// Writes into `up` (with `git fast-import`, no hook) a `main` of `commits` commits, each adding
/// a file of `blob` incompressible bytes, `branches` branches each one small commit on a commit
/// of main, and a lightweight and an annotated tag.
fn history(env: &Env, up: &Path, commits: usize, blob: usize, branches: usize) {
    let mut s: Vec<u8> = Vec::new();
    let mut when = 1_700_000_000u64;
    for i in 1..=commits {
        when += 60;
        let data = random_bytes(blob, i as u64 * 7919);
        s.extend_from_slice(format!("commit refs/heads/main\nmark :{i}\n").as_bytes());
        s.extend_from_slice(format!("committer T <t@e> {when} +0000\ndata 3\nc{i}\n").as_bytes());
        if i > 1 {
            s.extend_from_slice(format!("from :{}\n", i - 1).as_bytes());
        }
        s.extend_from_slice(format!("M 100644 inline f{i}.bin\ndata {}\n", data.len()).as_bytes());
        s.extend_from_slice(&data);
        s.push(b'\n');
    }
    for b in 0..branches {
        when += 60;
        let base = 1 + b * (commits - 1) / branches.max(1);
        s.extend_from_slice(
            format!(
                "commit refs/heads/b{b:02}\ncommitter T <t@e> {when} +0000\ndata 3\nb{b:02}\n\
                 from :{base}\nM 100644 inline b{b:02}.txt\ndata 4\nb{b:02}\n\n"
            )
            .as_bytes(),
        );
    }
    let half = commits / 2;
    s.extend_from_slice(format!("reset refs/tags/light\nfrom :{half}\n\n").as_bytes());
    s.extend_from_slice(
        format!("tag annotated\nfrom :{commits}\ntagger T <t@e> {when} +0000\ndata 2\nt\n\n")
            .as_bytes(),
    );
    let mut c = env.cmd("git");
    c.arg("-C").arg(up).args(["fast-import", "--quiet"]);
    let out = output_with_stdin(c, &s);
    assert!(out.status.success(), "fast-import: {}", text(&out));
}

/// Writes `up`'s mirror config: `plain` and `batched` (with `batched_options`, YAML lines) at
/// the two mirrors; no sync starts until asked for.
fn configure(up: &Path, plain: &Path, batched: &Path, batched_options: &str) {
    std::fs::create_dir_all(up.join("pushmirror")).unwrap();
    std::fs::write(
        up.join("pushmirror/config.yaml"),
        format!(
            "mirrors:\n  - name: plain\n    url: {}\n    debounce: 100ms\n  - name: batched\n    url: {}\n    debounce: 100ms\n{batched_options}",
            plain.display(),
            batched.display()
        ),
    )
    .unwrap();
}

/// `git-pushmirror sync --wait` of every mirror; true when all succeeded.
fn sync_all(env: &Env, up: &Path) -> bool {
    env.pm(up, &["sync", "--wait"]).status.success()
}

#[test]
fn first_sync_of_many_branches_goes_in_batches_of_push_batch_refs() {
    let env = Env::new();
    // One attempt: the mirror without the setting fails once and is left failed.
    env.write_server_config("defaults:\n  max_attempts: 1\n");
    let up = env.upstream("up.git");
    history(&env, &up, 10, 100, 40);
    let plain = strict_mirror(&env, "plain.git", 5, u64::MAX / 2);
    let batched = strict_mirror(&env, "batched.git", 5, u64::MAX / 2);
    configure(&up, &plain, &batched, "    push_batch_refs: 5\n");
    assert!(!sync_all(&env, &up), "the plain mirror should have failed");
    // Without the setting the host refuses the one big push and holds nothing.
    let st = env.mirror_status(&up, "plain");
    assert_eq!(st["update_status"], "failed", "{st:#}");
    let err = st["last_error"].as_str().unwrap_or_default();
    assert!(err.contains("at most 5 ref updates"), "{err}");
    // With it: 43 refs (main alone first, as the mirror is empty), then batches of five.
    env.wait_mirrored(&up, &batched);
    let seen = pushes(&batched);
    assert!(seen.iter().all(|(refs, _)| *refs <= 5), "{seen:?}");
    assert_eq!(seen.iter().map(|(r, _)| r).sum::<usize>(), 43, "{seen:?}");
    assert_eq!(seen.len(), 10, "{seen:?}");
    assert_eq!(seen[0].0, 1, "{seen:?}");
    let st = wait_finished(&env, &up, "batched");
    assert!(st["last_error"].is_null(), "{st:#}");

    // A later sync that moves more than five refs is batched too.
    let main = env.git(&up, &["rev-parse", "main"]);
    for b in 4..12 {
        env.git(&up, &["update-ref", &format!("refs/heads/b{b:02}"), &main]);
    }
    sync_all(&env, &up);
    env.wait_mirrored(&up, &batched);
    wait_finished(&env, &up, "batched");
    let later = &pushes(&batched)[seen.len()..];
    assert!(later.iter().all(|(refs, _)| *refs <= 5), "{later:?}");

    // `set` gives the plain mirror the setting; it catches up.
    env.pm_ok(&up, &["set", "plain", "push_batch_refs=5"]);
    let shown = env.pm_ok(&up, &["show", "plain", "--json"]);
    assert!(shown.contains("\"push_batch_refs\": 5"), "{shown}");
    sync_all(&env, &up);
    env.wait_mirrored(&up, &plain);
    wait_finished(&env, &up, "plain");
    assert_eq!(later.iter().map(|(r, _)| r).sum::<usize>(), 8, "{later:?}");
}

#[test]
fn first_sync_of_a_big_history_goes_in_packs_under_push_batch_bytes() {
    let env = Env::new();
    env.write_server_config("defaults:\n  max_attempts: 1\n");
    let up = env.upstream("up.git");
    // About 1.5 MiB of incompressible history on main, 40 branches on it.
    history(&env, &up, 96, 16 << 10, 40);
    const LIMIT: u64 = 400 << 10;
    let plain = strict_mirror(&env, "plain.git", 5, LIMIT);
    let batched = strict_mirror(&env, "batched.git", 5, LIMIT);
    // Some room under the host's limit: the size is an estimate (see docs/administration.md).
    configure(
        &up,
        &plain,
        &batched,
        "    push_batch_refs: 5\n    push_batch_bytes: 350KiB\n",
    );
    env.pm_ok(&up, &["set", "plain", "push_batch_refs=5"]);
    let shown = env.pm_ok(&up, &["show", "batched", "--json"]);
    assert!(
        shown.contains(&format!("\"push_batch_bytes\": {}", 350 << 10)),
        "{shown}"
    );

    // Without the setting the first push (main alone, as the mirror is empty) is over the
    // host's limit and refused. (The branches, each on a commit of main, then carry the history
    // in slices, and the same sync's repair push may still get main there.)
    sync_all(&env, &up);
    let refused = pushes(&plain);
    assert!(
        refused.first().is_some_and(|&(r, b)| r == 1 && b > LIMIT),
        "{refused:?}"
    );

    env.wait_mirrored(&up, &batched);
    wait_finished(&env, &up, "batched");
    let seen = pushes(&batched);
    assert!(
        seen.iter()
            .all(|&(refs, bytes)| refs <= 5 && bytes <= LIMIT),
        "{seen:?}"
    );
    // Main's 1.5 MiB took at least four packs; every ref arrived.
    let big = seen.iter().filter(|(_, b)| *b > 100 << 10).count();
    assert!(big >= 4, "{seen:?}");
    assert_eq!(
        env.git(&batched, &["rev-parse", "main"]),
        env.git(&up, &["rev-parse", "main"])
    );
    // Every object arrived: the mirror's history is whole.
    env.git(&batched, &["fsck", "--connectivity-only"]);

    // A commit bigger than the host's limit cannot be split: the host refuses that ref, the
    // sync fails saying so, and the refs pushed before it count.
    let main = env.git(&up, &["rev-parse", "main"]);
    let data = random_bytes(600 << 10, 4242);
    let mut s = format!(
        "commit refs/heads/huge\ncommitter T <t@e> 1800000000 +0000\ndata 2\nh\nfrom {main}\n\
         M 100644 inline huge.bin\ndata {}\n",
        data.len()
    )
    .into_bytes();
    s.extend_from_slice(&data);
    s.extend_from_slice(b"\n");
    let mut c = env.cmd("git");
    c.arg("-C").arg(&up).args(["fast-import", "--quiet"]);
    assert!(output_with_stdin(c, &s).status.success());
    env.git(&up, &["update-ref", "refs/heads/b05", &main]);
    let out = env.pm(&up, &["sync", "batched", "--wait"]);
    assert!(!out.status.success(), "{}", text(&out));
    let st = env.mirror_status(&up, "batched");
    let err = st["last_error"].as_str().unwrap_or_default();
    assert!(
        err.contains("refs/heads/huge") && err.contains("bytes per push"),
        "{st:#}"
    );
    assert_eq!(st["refs_pushed_last"], 1, "{st:#}");
    assert_eq!(env.git(&batched, &["rev-parse", "b05"]), main);
    assert!(env
        .git_out(&batched, &["rev-parse", "--verify", "-q", "huge"])
        .stdout
        .is_empty());
}

#[test]
fn a_push_that_breaks_off_after_others_is_retried_and_counts_only_what_arrived() {
    let env = Env::new();
    // The retry comes by itself, after its backoff.
    env.write_server_config("defaults:\n  max_attempts: 3\n  backoff_initial: 3s\n");
    let up = env.upstream("up.git");
    // About 750 KiB on main, pushed in steps of at most 200 KiB, then 4 branches.
    history(&env, &up, 48, 16 << 10, 4);
    let m = env.bare("m.git", &[]);
    // The mirror's receive-pack dies during the second push it gets (a host dropping the
    // connection), once. `lfs: on` makes the sync list the mirror first (LFS objects go before
    // any ref), so the break-off ends the sync; without it, see below.
    write_exec(
        &m.join("hooks/pre-receive"),
        "#!/bin/sh\ncat >/dev/null\nn=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count\n\
         if [ $n -eq 2 ]; then kill -9 $PPID; fi\n",
    );
    std::fs::create_dir_all(up.join("pushmirror")).unwrap();
    std::fs::write(
        up.join("pushmirror/config.yaml"),
        format!(
            "mirrors:\n  - name: m\n    url: {}\n    debounce: 100ms\n    push_batch_bytes: 200KiB\n    lfs: on\n",
            m.display()
        ),
    )
    .unwrap();
    let out = env.pm(&up, &["sync", "m", "--wait"]);
    assert!(!out.status.success(), "{}", text(&out));
    let st = env.mirror_status(&up, "m");
    let err = st["last_error"].as_str().unwrap_or_default();
    assert!(
        err.contains("a push broke off after 0 ref(s) had arrived"),
        "{st:#}"
    );
    // Main got its first step only: it has not arrived, and is not counted as pushed; the
    // sync could not finish, so it is retried (not left failed until the next push).
    assert_eq!(st["refs_pushed_last"], 0, "{st:#}");
    assert_eq!(st["consecutive_failures"], 1, "{st:#}");
    assert!(st["rejected_refs"].as_array().unwrap().is_empty(), "{st:#}");
    let on_mirror = env.git(&m, &["rev-parse", "main"]);
    assert_ne!(on_mirror, env.git(&up, &["rev-parse", "main"]));
    env.git(&up, &["merge-base", "--is-ancestor", &on_mirror, "main"]);

    // The retry carries on from there and the mirror ends equal.
    env.wait_mirrored(&up, &m);
    wait_finished(&env, &up, "m");
    env.git(&m, &["fsck", "--connectivity-only"]);

    // A first sync that pushes at once (no LFS: no listing first) reads the mirror's refs from
    // its first push; the same break-off is then repaired within that sync, from what arrived.
    let m2 = env.bare("m2.git", &[]);
    write_exec(
        &m2.join("hooks/pre-receive"),
        "#!/bin/sh\ncat >/dev/null\nn=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count\n\
         if [ $n -eq 2 ]; then kill -9 $PPID; fi\n",
    );
    // Written to the file (not `add`, which would start a sync before the setting).
    let cfg = up.join("pushmirror/config.yaml");
    let mut yaml = std::fs::read_to_string(&cfg).unwrap();
    yaml.push_str(&format!(
        "  - name: m2\n    url: {}\n    push_batch_bytes: 200KiB\n",
        m2.display()
    ));
    std::fs::write(&cfg, yaml).unwrap();
    let out = env.pm(&up, &["sync", "m2", "--wait"]);
    assert!(out.status.success(), "{}\n{}", text(&out), env.log(&up));
    let runs: u32 = std::fs::read_to_string(m2.join("count"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        runs > 2,
        "the push that broke off was not followed by others: {runs}"
    );
    assert_eq!(env.heads_and_tags(&m2), env.heads_and_tags(&up));
    env.git(&m2, &["fsck", "--connectivity-only"]);
}
