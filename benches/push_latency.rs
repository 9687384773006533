//! The performance figures of spec §8, measured against the real release binary with real `git`
//! processes, and printed as one markdown table side by side with the references they are judged
//! against (no hook, the naive `git push --mirror` hook, the spec's targets).
//!
//! Run with `cargo bench --bench push_latency`. Progress goes to stderr; only the table goes to
//! stdout. `BENCH_PUSHES` sets the number of pushes per push-latency scenario (default 200);
//! `GIT_PUSHMIRROR_BIN` names a binary to measure instead of building `target/release`;
//! `BENCH_ONLY=lfs` runs only the Git LFS rows, `BENCH_ONLY=throttle` only those of issue 12,
//! `BENCH_ONLY=hotpath` the hook and push → SSH mirror rows (`BENCH_BASELINE_BIN` adds a
//! baseline binary's rows in the same run; see `push_latency/hotpath.rs`), `BENCH_ONLY=many_refs`
//! only the 10,000-ref rows, `BENCH_ONLY=ssh` only push → idle SSH mirror (warm and cold
//! connection, next to a local mirror), `BENCH_ONLY=spacing` only pushes 0.3 s and 0.7 s apart,
//! `BENCH_ONLY=batch` only the push_batch_bytes / push_batch_refs rows, `BENCH_ONLY=nodes` the
//! CPU of `sweep` and `sync --all` against the `git push --mirror` loop.
//!
//! This file holds the run sizes and the order of the table; the harness (the binary, the temp
//! world, timing, statistics, the table) is in `push_latency/harness.rs`, and each group of rows
//! in its own module under `push_latency/`.
//!
//! Nothing here asserts on a timing: the numbers depend on the machine, and a benchmark that
//! fails on a slow CI runner teaches nobody anything. Correctness problems it runs into (a mirror
//! that never gets the commit) are reported in the table and on stderr.

use std::time::{Duration, Instant};

// The test harness's real sshd (the SSH mirror on loopback), shared rather than copied.
#[path = "../tests/common/servers.rs"]
mod servers;

use servers::SshServer;

#[path = "push_latency/harness.rs"]
mod harness;

use harness::*;

// One module per group of rows; `main` calls them in the order of the table.
#[path = "push_latency/batch.rs"]
mod batch;
#[path = "push_latency/coalescing.rs"]
mod coalescing;
// Server-wide `status --root` and `metrics` over large fleets.
#[path = "push_latency/fleet.rs"]
mod fleet;
#[path = "push_latency/footprint.rs"]
mod footprint;
#[path = "push_latency/hook.rs"]
mod hook;
// BENCH_ONLY=hotpath: the hook and push → SSH mirror rows, optionally against a baseline binary.
#[path = "push_latency/hotpath.rs"]
mod hotpath;
#[path = "push_latency/lfs.rs"]
mod lfs;
#[path = "push_latency/many_refs.rs"]
mod many_refs;
#[path = "push_latency/mirror.rs"]
mod mirror;
// BENCH_ONLY=nodes: CPU of sweep and sync --all against the `git push --mirror` loop.
#[path = "push_latency/nodes.rs"]
mod nodes;
#[path = "push_latency/noop.rs"]
mod noop;
#[path = "push_latency/throttle.rs"]
mod throttle;
// Issue 23: pushes 0.3 s and 0.7 s apart, adaptive against a strict interval.
#[path = "push_latency/spacing.rs"]
mod spacing;

const HOOK_RUNS: usize = 500;
const COLD_HOOK_RUNS: usize = 50;
const P2M_RUNS: usize = 20;
const P2M_SSH_RUNS: usize = 10;
const BURST: usize = 100;
const STARTUP_RUNS: usize = 200;
const MANY_MIRRORS: usize = 10;
const NOOP_RUNS: usize = 20;
const MANY_REFS_RUNS: usize = 10;
/// First full copies of [`MANY_REFS`] refs, ours and naive each.
const FIRST_COPY_RUNS: usize = 3;
/// Branches and tags of the many-refs upstream (half each).
const MANY_REFS: usize = 10_000;
/// The upstream holding [`MANY_REFS`] refs; its flusher's memory is reported on its own.
const MANY_REFS_REPO: &str = "refs10k.git";
/// Bound on our first full copy of [`MANY_REFS`] refs (the `--timeout` of that mirror).
const FIRST_COPY_TIMEOUT: &str = "30s";
/// The default minimum interval between two syncs of one mirror (`debounce`), plus a margin: a
/// push-to-mirror sample waits this long after the previous one so the mirror is idle.
const IDLE_GAP: Duration = Duration::from_millis(1100);

fn main() {
    let pushes: usize = std::env::var("BENCH_PUSHES")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(200);
    let bin = binary();
    let b = Bench::new(bin);
    let ssh = start_sshd(&b);
    let mut table = Table::default();
    let started = Instant::now();
    if std::env::var_os("BENCH_ONLY_FLEET").is_some() {
        fleet::fleet(&b, &mut table);
        drop(b);
        table.print();
        return;
    }

    // BENCH_ONLY=throttle: just the rows of issue 12 (push → mirror, coalescing, sweep).
    if std::env::var("BENCH_ONLY").as_deref() == Ok("throttle") {
        throttle::only(&b, ssh.as_ref(), &mut table);
        drop(b);
        drop(ssh);
        table.print();
        return;
    }
    // BENCH_ONLY=nodes: the CPU rows of sweep and sync --all (issue 22).
    if std::env::var("BENCH_ONLY").as_deref() == Ok("nodes") {
        nodes::rows(&b, &mut table);
        drop(b);
        table.print();
        return;
    }
    // BENCH_ONLY=hotpath: the hook rows and push → idle SSH mirror (see hotpath.rs).
    if std::env::var("BENCH_ONLY").as_deref() == Ok("hotpath") {
        hotpath::only(&b, ssh.as_ref(), pushes, &mut table);
        drop(b);
        drop(ssh);
        table.print();
        return;
    }
    // BENCH_ONLY=ssh: push → idle SSH mirror, warm and cold, next to a local mirror.
    if std::env::var("BENCH_ONLY").as_deref() == Ok("ssh") {
        mirror::push_to_ssh_mirror(&b, ssh.as_ref(), &mut table);
        drop(b);
        drop(ssh);
        table.print();
        return;
    }
    // BENCH_ONLY=spacing: pushes 0.3 s and 0.7 s apart (adaptive and strict interval).
    if std::env::var("BENCH_ONLY").as_deref() == Ok("spacing") {
        spacing::spacing(&b, &mut table);
        drop(b);
        table.print();
        return;
    }
    // BENCH_ONLY=lfs runs only the Git LFS rows.
    if std::env::var("BENCH_ONLY").as_deref() == Ok("lfs") {
        lfs::rows(&b, &mut table);
        drop(b);
        table.print();
        return;
    }
    // BENCH_ONLY=many_refs runs only the 10,000-ref rows.
    if std::env::var("BENCH_ONLY").as_deref() == Ok("many_refs") {
        many_refs::many_refs_sync(&b, &mut table);
        drop(b);
        table.print();
        return;
    }
    // BENCH_ONLY=batch runs only the push_batch_bytes / push_batch_refs rows.
    if std::env::var("BENCH_ONLY").as_deref() == Ok("batch") {
        batch::rows(&b, &mut table);
        drop(b);
        table.print();
        return;
    }
    hook::push_latency(&b, ssh.as_ref(), pushes, &mut table);
    hook::hook_alone(&b, &mut table);
    mirror::push_to_mirror(&b, &mut table);
    mirror::push_to_ssh_mirror(&b, ssh.as_ref(), &mut table);
    coalescing::coalescing(&b, &mut table);
    spacing::spacing(&b, &mut table);
    noop::noop_sync(&b, ssh.as_ref(), &mut table);
    many_refs::many_refs_sync(&b, &mut table);
    batch::rows(&b, &mut table);
    footprint::binary_and_startup(&b, &mut table);
    footprint::flusher_memory(&b, &mut table);
    fleet::fleet(&b, &mut table);
    lfs::rows(&b, &mut table);
    throttle::sweep_rows(&b, &mut table);
    nodes::rows(&b, &mut table);

    eprintln!("bench: done in {:.1} s", started.elapsed().as_secs_f64());
    drop(b); // waits for (or kills) our flushers and removes the temp dir before we print
    drop(ssh); // after the flushers, which may still be talking to it
    table.print();
}
