//! Adversarial cases found by the session's audit: what a hostile or damaged mirror can make
//! the flusher believe. Real git, real servers on 127.0.0.1; no timing is asserted.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use common::*;

fn pkt(payload: &str) -> Vec<u8> {
    format!("{:04x}{payload}", payload.len() + 4).into_bytes()
}

/// A git:// server on 127.0.0.1 that lists an empty repository to `git ls-remote` and answers
/// every push with an `ERR` packet whose text holds a line of git's own pack meter. Runs until
/// the test process ends.
fn hostile_git_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut c) = conn else { continue };
            let _ = c.set_read_timeout(Some(Duration::from_secs(30)));
            let mut len = [0u8; 4];
            if c.read_exact(&mut len).is_err() {
                continue;
            }
            let n =
                usize::from_str_radix(std::str::from_utf8(&len).unwrap_or("0"), 16).unwrap_or(0);
            let mut req = vec![0u8; n.saturating_sub(4)];
            if c.read_exact(&mut req).is_err() {
                continue;
            }
            let reply = if req.starts_with(b"git-upload-pack") {
                b"0000".to_vec()
            } else {
                pkt("ERR go away\nWriting objects: 100% (3/3), 1000.00 GiB | 1.00 MiB/s, done.\n")
            };
            let _ = c.write_all(&reply);
        }
    });
    port
}

/// The bytes-pushed counter takes the size from git's `Writing objects: ..., done.` line. A
/// mirror must not be able to print that line itself (here inside an `ERR` packet, which git
/// shows with its newlines) and so inflate the counter by any amount.
#[test]
fn a_mirror_cannot_inflate_bytes_pushed() {
    let env = Env::new();
    env.write_server_config("defaults:\n  timeout: 60s\n");
    let up = env.upstream("up.git");
    let port = hostile_git_server();
    let url = format!("git://127.0.0.1:{port}/x.git");
    env.pm_ok(&up, &["add", "evil", &url, "--debounce", "100ms"]);
    let wc = env.clone(&up, "wc");
    env.commit(&wc, "one");
    env.push(&wc, &["main"]);
    let failed = wait_until(Duration::from_secs(180), || {
        !env.mirror_status(&up, "evil")["last_error"].is_null()
    });
    let m = env.mirror_status(&up, "evil");
    assert!(failed, "the push never failed: {m:#}\n{}", env.log(&up));
    assert!(
        m["last_error"].as_str().unwrap().contains("go away"),
        "{m:#}"
    );
    assert_eq!(m["bytes_pushed_total"], 0, "{m:#}\n{}", env.log(&up));
}

/// A git:// server on 127.0.0.1 that lists an empty repository to `git ls-remote`, and to a
/// push advertises an empty repository and then never answers (holding the connection open).
fn silent_after_advertisement_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming() {
            let Ok(mut c) = conn else { continue };
            let mut len = [0u8; 4];
            if c.read_exact(&mut len).is_err() {
                continue;
            }
            let n =
                usize::from_str_radix(std::str::from_utf8(&len).unwrap_or("0"), 16).unwrap_or(0);
            let mut req = vec![0u8; n.saturating_sub(4)];
            if c.read_exact(&mut req).is_err() {
                continue;
            }
            if req.starts_with(b"git-upload-pack") {
                let _ = c.write_all(b"0000");
                continue;
            }
            let zero = "0".repeat(40);
            let mut adv = pkt(&format!(
                "{zero} capabilities^{{}}\0report-status delete-refs ofs-delta\n"
            ));
            adv.extend_from_slice(b"0000");
            let _ = c.write_all(&adv);
            // Never a reply: the push waits for its report until the sync's timeout.
            held.push(c);
        }
    });
    port
}

/// An upstream whose mirror `m` is a `silent_after_advertisement_server`, with one attempt of
/// `timeout` per sync, and a record saying the mirror is empty, so the sync started by the push
/// made here pushes from that record (with the packet trace on) and then hangs. Returns the
/// upstream.
fn push_from_a_record_to_a_silent_mirror(env: &Env, timeout: &str) -> std::path::PathBuf {
    env.write_server_config(&format!(
        "defaults:\n  timeout: {timeout}\n  max_attempts: 1\n"
    ));
    let up = env.upstream("up.git");
    let port = silent_after_advertisement_server();
    let url = format!("git://127.0.0.1:{port}/x.git");
    env.pm_ok(&up, &["add", "m", &url, "--debounce", "100ms"]);
    let state = up.join("pushmirror/state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(
        state.join("m.listing"),
        format!("# git-pushmirror listing v1 {url}\n"),
    )
    .unwrap();
    let wc = env.clone(&up, "wc");
    env.commit(&wc, "one");
    env.push(&wc, &["main"]);
    up
}

/// The packet trace of a push made from the record (the mirror's ref advertisement, read back
/// to list the mirror) is removed even when that push times out, and the sync fails visibly.
#[test]
fn the_packet_trace_is_removed_when_the_push_times_out() {
    let env = Env::new();
    let up = push_from_a_record_to_a_silent_mirror(&env, "3s");
    let failed = wait_until(Duration::from_secs(180), || {
        !env.mirror_status(&up, "m")["last_error"].is_null()
    });
    let m = env.mirror_status(&up, "m");
    assert!(failed, "the push never failed: {m:#}\n{}", env.log(&up));
    assert!(env.wait_flushers_gone(), "{}", env.log(&up));
    let log = env.log(&up);
    assert!(log.contains("timed out"), "{m:#}\n{log}");
    let leftovers: Vec<_> = files_under(&up.join("pushmirror"))
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("packet-trace"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// A flusher killed during a push from the record leaves that push's packet trace in the
/// mirror's shadow (`pushmirror/push/<mirror>/`, private); the mirror's next sync clears it,
/// and so must `remove`, after which there is no next sync.
#[test]
fn remove_clears_a_killed_flushers_packet_trace() {
    let env = Env::new();
    let up = push_from_a_record_to_a_silent_mirror(&env, "600s");
    let trace = up.join("pushmirror/push/m/packet-trace");
    let traced = wait_until(Duration::from_secs(180), || {
        std::fs::read_to_string(&trace).is_ok_and(|t| t.contains("capabilities^{}"))
    });
    assert!(traced, "no push from the record was made\n{}", env.log(&up));
    for pid in flusher_pids(env.dir.path()) {
        unsafe_kill(pid);
    }
    assert!(env.wait_flushers_gone());
    assert!(trace.exists(), "the killed flusher's trace is gone already");
    env.pm_ok(&up, &["remove", "m"]);
    assert!(
        !up.join("pushmirror/push/m").exists(),
        "{:?}",
        files_under(&up.join("pushmirror"))
    );
}
