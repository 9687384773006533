//! LFS servers that misbehave (issue 20): a mirror must never get refs without their objects,
//! a server must not hang the flusher, and nothing a server sends reaches a message raw. The
//! refs go to a real git server (the suite's nginx + git-http-backend over HTTPS); the LFS
//! endpoint (`lfs_url`) is a small hostile HTTPS server in this process
//! (tests/common/servers/hostile_lfs.rs) whose handler each test writes.

mod common;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use common::servers::hostile_lfs::{batch_answer, Head, HostileLfs, Reply};
use common::servers::*;
use common::*;
use serde_json::json;

const PASSWORD: &str = "hostile-S3cret-pw";
/// The mirror's timeout where nothing is meant to stall (git's ls-remote and push have it too).
const TIMEOUT: &str = "30s";

/// An upstream with the hook, a mirror `lfs` on a real HTTPS git server whose `lfs_url` is a
/// hostile server (another port: another origin), and a commit with an LFS pointer whose object
/// is in the upstream's store. Syncs run only through `sync lfs --wait` (debounce 1h), one
/// attempt each (`max_attempts: 1`), with the mirror's `timeout` (the LFS activity timeout).
struct Setup {
    // Dropped first: the servers, then the test's directory.
    lfs: HostileLfs,
    _https: HttpsServer,
    env: Env,
    up: PathBuf,
    dst: PathBuf,
    /// The pointer's oid.
    oid: String,
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Setup {
    fn new(
        size: usize,
        timeout: &str,
        extra: &[&str],
        handler: impl Fn(&Head, Option<&[u8]>) -> Reply + Send + Sync + 'static,
    ) -> Setup {
        let env = Env::new();
        env.write_server_config("defaults:\n  max_attempts: 1\n");
        let up = env.upstream("up.git");
        let (dst, https) = https_target(&env, "srv", "mirror", PASSWORD);
        let lfs = HostileLfs::start(&https, handler);
        let mut args = vec!["--debounce", "1h", "--lfs", "on"];
        args.extend_from_slice(extra);
        add_password_mirror(
            &env,
            &up,
            "lfs",
            &https.url("dst.git"),
            "mirror",
            PASSWORD,
            &https.ca_file,
            &args,
        );
        env.pm_ok(
            &up,
            &[
                "set",
                "lfs",
                &format!("lfs_url={}", lfs.url("/dst.git/info/lfs")),
            ],
        );
        env.pm_ok(&up, &["set", "lfs", &format!("timeout={timeout}")]);
        // A pointer in a commit, its object in the upstream's store.
        let data: Vec<u8> = random_bytes(size, 7);
        let oid = sha256_hex(&data);
        let store = up.join("lfs/objects").join(&oid[0..2]).join(&oid[2..4]);
        std::fs::create_dir_all(&store).unwrap();
        std::fs::write(store.join(&oid), &data).unwrap();
        let wc = env.clone(&up, "wc");
        std::fs::write(
            wc.join("a.bin"),
            format!("version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n"),
        )
        .unwrap();
        env.git(&wc, &["add", "a.bin"]);
        env.git(&wc, &["commit", "-q", "-m", "pointer"]);
        env.push(&wc, &["main"]);
        Setup {
            env,
            up,
            dst,
            oid,
            lfs,
            _https: https,
        }
    }

    /// One `sync lfs --wait`; the mirror's status after it.
    fn sync(&self) -> serde_json::Value {
        let _ = self.env.pm(&self.up, &["sync", "lfs", "--wait"]);
        self.env.mirror_status(&self.up, "lfs")
    }

    /// One sync that must fail before any ref is pushed: its `last_error`.
    fn sync_fails(&self) -> String {
        let m = self.sync();
        let log = self.env.log(&self.up);
        assert_eq!(m["update_status"], "failed", "{m:#}\nlog:\n{log}");
        assert!(
            self.env.heads_and_tags(&self.dst).is_empty(),
            "a ref reached the mirror without its LFS object: {m:#}"
        );
        let e = m["last_error"].as_str().unwrap_or_default().to_string();
        assert!(
            !e.contains(PASSWORD) && !log.contains(PASSWORD),
            "{e}\n{log}"
        );
        assert!(!e.chars().any(char::is_control), "{e:?}");
        e
    }
}

fn no_servers() -> bool {
    no_https()
}

/// An upload action to `/put/<oid>` on `port`, with a verify action when `verify`.
fn put_actions(port: u16, oid: &str, verify: bool) -> serde_json::Value {
    let mut a = json!({"upload": {"href": format!("https://127.0.0.1:{port}/put/{oid}")}});
    if verify {
        a["verify"] = json!({"href": format!("https://127.0.0.1:{port}/verify")});
    }
    a
}

fn ok_empty() -> Reply {
    Reply::Answer(200, Vec::new(), Vec::new())
}

/// The port is only known once the server listens: handlers read it from here.
type Port = Arc<Mutex<u16>>;

/// Item 1: a verify the server never answers, on a connection that already carried the batch
/// or the upload (ureq 2 had cleared its socket timeouts when it pooled it), is cut by the
/// mirror's timeout; the sync fails before any ref is pushed. So is one whose answer trickles
/// in a byte at a time (a batch or verify must end within the timeout).
#[test]
fn a_verify_never_answered_on_a_reused_connection_is_cut_by_the_timeout() {
    if no_servers() {
        return;
    }
    let port: Port = Arc::default();
    let p = port.clone();
    let trickle: Arc<Mutex<bool>> = Arc::default();
    let t = trickle.clone();
    let f = Setup::new(1000, "3s", &[], move |h, body| {
        match (h.method.as_str(), body) {
            ("POST", Some(_)) if h.path == "/verify" && *t.lock().unwrap() => Reply::Trickle,
            ("POST", None) if *t.lock().unwrap() => Reply::ReadBody,
            ("POST", None) | ("PUT", None) if !h.path.starts_with("/verify") => Reply::ReadBody,
            ("POST", Some(b)) => {
                let port = *p.lock().unwrap();
                Reply::Answer(
                    200,
                    Vec::new(),
                    batch_answer(b, |oid, _| put_actions(port, oid, true)),
                )
            }
            ("PUT", Some(_)) => ok_empty(),
            _ => Reply::Stall,
        }
    });
    *port.lock().unwrap() = f.lfs.port;
    let e = f.sync_fails();
    assert!(
        e.contains("did not verify") && e.contains(&f.oid) && e.contains("activity timeout"),
        "{e}"
    );
    let seen = f.lfs.seen();
    let verify = seen
        .iter()
        .find(|s| s.path == "/verify")
        .unwrap_or_else(|| panic!("no verify request: {seen:?}"));
    assert!(
        verify.nth_on_connection > 0,
        "the verify should have reused a kept-alive connection: {seen:?}"
    );
    *trickle.lock().unwrap() = true;
    let e = f.sync_fails();
    assert!(
        e.contains("did not verify") && e.contains("did not end within the timeout"),
        "{e}"
    );
}

/// Item 1: a server that takes the PUT's head and never reads its body (nor answers) is cut by
/// the mirror's timeout, on a kept-alive connection too.
#[test]
fn an_upload_whose_body_is_never_read_is_cut_by_the_timeout() {
    if no_servers() {
        return;
    }
    let port: Port = Arc::default();
    let p = port.clone();
    let f = Setup::new(8 << 20, "3s", &[], move |h, body| {
        match (h.method.as_str(), body) {
            ("POST", None) => Reply::ReadBody,
            ("POST", Some(b)) => {
                let port = *p.lock().unwrap();
                Reply::Answer(
                    200,
                    Vec::new(),
                    batch_answer(b, |oid, _| put_actions(port, oid, false)),
                )
            }
            _ => Reply::StallUnread,
        }
    });
    *port.lock().unwrap() = f.lfs.port;
    let e = f.sync_fails();
    assert!(
        e.contains("upload of") && e.contains(&f.oid) && e.contains("activity timeout"),
        "{e}"
    );
    let seen = f.lfs.seen();
    assert!(
        seen.iter()
            .any(|s| s.method == "PUT" && s.nth_on_connection > 0),
        "the PUT should have reused the batch's connection: {seen:?}"
    );
}

/// Items 2 and 3: a redirect or another non-2xx answer to the upload or the verify, a redirect
/// of the batch request, and an upload action whose href is not a string each fail the sync
/// before any ref is pushed, with one line naming what happened; then a good server delivers.
#[test]
fn non_2xx_answers_and_malformed_actions_fail_the_sync_before_the_refs() {
    if no_servers() {
        return;
    }
    let mode: Arc<Mutex<&'static str>> = Arc::new(Mutex::new("put-307"));
    let port: Port = Arc::default();
    let (m, p) = (mode.clone(), port.clone());
    let stored = Arc::new(Mutex::new(false));
    let st = stored.clone();
    let f = Setup::new(1000, TIMEOUT, &[], move |h, body| {
        let mode = *m.lock().unwrap();
        let port = *p.lock().unwrap();
        let redirect = |code| {
            Reply::Answer(
                code,
                vec![(
                    "Location".into(),
                    format!("https://127.0.0.1:{port}/elsewhere"),
                )],
                Vec::new(),
            )
        };
        match (h.method.as_str(), h.path.as_str(), body) {
            (_, _, None) => Reply::ReadBody,
            ("POST", "/dst.git/info/lfs/objects/batch", Some(_)) if mode == "batch-301" => {
                redirect(301)
            }
            ("POST", "/dst.git/info/lfs/objects/batch", Some(b)) => {
                let answer = batch_answer(b, |oid, _| match mode {
                    "href-not-string" => json!({"upload": {"href": 12345}}),
                    _ if *st.lock().unwrap() => serde_json::Value::Null,
                    _ => put_actions(port, oid, true),
                });
                Reply::Answer(200, Vec::new(), answer)
            }
            ("PUT", _, Some(_)) => match mode {
                "put-307" => redirect(307),
                "put-500" => {
                    Reply::Answer(500, Vec::new(), b"{\"message\":\"disk full\"}".to_vec())
                }
                _ => ok_empty(),
            },
            ("POST", "/verify", Some(_)) => match mode {
                "verify-302" => redirect(302),
                _ => {
                    *st.lock().unwrap() = true;
                    ok_empty()
                }
            },
            _ => Reply::Answer(404, Vec::new(), Vec::new()),
        }
    });
    *port.lock().unwrap() = f.lfs.port;
    let set = |m: &'static str| *mode.lock().unwrap() = m;

    let e = f.sync_fails();
    assert!(
        e.contains("upload of") && e.contains(&f.oid) && e.contains("HTTP 307"),
        "{e}"
    );
    set("put-500");
    let e = f.sync_fails();
    assert!(e.contains("HTTP 500") && e.contains("disk full"), "{e}");
    set("verify-302");
    let e = f.sync_fails();
    assert!(
        e.contains("did not verify") && e.contains(&f.oid) && e.contains("HTTP 302"),
        "{e}"
    );
    set("batch-301");
    let e = f.sync_fails();
    assert!(
        e.contains("batch request")
            && e.contains("HTTP 301")
            && e.contains("final URL")
            && !e.contains("not JSON"),
        "{e}"
    );
    set("href-not-string");
    let e = f.sync_fails();
    assert!(
        e.contains("malformed upload action") && e.contains(&f.oid),
        "{e}"
    );
    // A server that behaves: the object is verified, then the refs go.
    set("good");
    let m = f.sync();
    assert_eq!(
        m["update_status"],
        "finished",
        "{m:#}\n{}",
        f.env.log(&f.up)
    );
    assert!(*stored.lock().unwrap());
    f.env.wait_mirrored(&f.up, &f.dst);
}

/// Item 4: a 429 with `Retry-After` sets the next retry that far out (bounded by the mirror's
/// max_delay) instead of the usual 1-2 s first backoff.
#[test]
fn retry_after_sets_the_next_retry_within_max_delay() {
    if no_servers() {
        return;
    }
    let asked: Arc<Mutex<&'static str>> = Arc::new(Mutex::new("30"));
    let a = asked.clone();
    let f = Setup::new(1000, TIMEOUT, &["--max-delay", "45s"], move |_, _| {
        Reply::Answer(
            429,
            vec![("Retry-After".into(), a.lock().unwrap().to_string())],
            b"{\"message\":\"slow down\"}".to_vec(),
        )
    });
    // max_attempts 1 would give up at once: let the mirror retry.
    f.env.write_server_config("defaults:\n  max_attempts: 5\n");
    let e = f.sync_fails();
    assert!(e.contains("HTTP 429") && e.contains("slow down"), "{e}");
    let log = f.env.log(&f.up);
    assert!(log.contains("retry in 30s"), "{log}");
    *asked.lock().unwrap() = "86400";
    f.sync_fails();
    let log = f.env.log(&f.up);
    assert!(log.contains("retry in 45s"), "{log}");
    // The flusher would wait for that retry: not past this test.
    for pid in flusher_pids(f.env.dir.path()) {
        unsafe_kill(pid);
    }
}

/// Item 5: what a server sends never reaches a message raw: an action header value with CR/LF
/// (a token in it) is never shown, and ESC/BEL in a server's message are escaped in
/// `last_error`, the log and `status`.
#[test]
fn server_text_is_escaped_and_header_values_are_never_shown() {
    if no_servers() {
        return;
    }
    let evil: Arc<Mutex<bool>> = Arc::default();
    let port: Port = Arc::default();
    let (ev, p) = (evil.clone(), port.clone());
    let f = Setup::new(1000, TIMEOUT, &[], move |h, body| {
        match (h.method.as_str(), body) {
            (_, None) => Reply::ReadBody,
            ("POST", Some(_)) if *ev.lock().unwrap() => Reply::Answer(
                500,
                Vec::new(),
                b"{\"message\":\"\\u001b]0;pwned\\u0007\\u001b[2Jgone\"}".to_vec(),
            ),
            ("POST", Some(b)) => {
                let port = *p.lock().unwrap();
                Reply::Answer(
                    200,
                    Vec::new(),
                    batch_answer(b, |oid, _| {
                        let mut a = put_actions(port, oid, false);
                        a["upload"]["header"] =
                            json!({"Authorization": "Bearer T0ken-l3ak\r\nX-Injected: 1"});
                        a
                    }),
                )
            }
            _ => ok_empty(),
        }
    });
    *port.lock().unwrap() = f.lfs.port;
    let e = f.sync_fails();
    assert!(
        e.contains("malformed upload action") && e.contains("Authorization"),
        "{e}"
    );
    assert!(
        !f.lfs.seen().iter().any(|s| s.method == "PUT"),
        "{:?}",
        f.lfs.seen()
    );
    *evil.lock().unwrap() = true;
    let e = f.sync_fails();
    assert!(e.contains("\\x1b]0;pwned\\x07"), "{e}");
    let log = f.env.log(&f.up);
    let status = stdout(&f.env.pm(&f.up, &["status"]));
    for text in [&e, &log, &status] {
        assert!(!text.contains("T0ken-l3ak"), "{text}");
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{7}'),
            "{text:?}"
        );
    }
}

/// Item 8: an `lfs_url` on another scheme, host or port than the mirror's URL gets none of the
/// mirror's credentials (the batch request carries no Authorization), and a 401 there says so.
#[test]
fn an_lfs_url_on_another_origin_gets_no_credentials() {
    if no_servers() {
        return;
    }
    let f = Setup::new(1000, TIMEOUT, &[], |h, _| {
        let code = if h.header("authorization").is_some() {
            200
        } else {
            401
        };
        Reply::Answer(
            code,
            Vec::new(),
            b"{\"message\":\"credentials needed\"}".to_vec(),
        )
    });
    let e = f.sync_fails();
    assert!(
        e.contains("HTTP 401") && e.contains("not sent to this endpoint"),
        "{e}"
    );
    let seen = f.lfs.seen();
    assert!(
        !seen.is_empty() && seen.iter().all(|s| !s.authorization),
        "{seen:?}"
    );
    // The admin's explicit opt-in sends them there.
    f.env.pm_ok(&f.up, &["set", "lfs", "lfs_auth=true"]);
    let shown: serde_json::Value =
        serde_json::from_str(&f.env.pm_ok(&f.up, &["show", "lfs", "--json"])).unwrap();
    assert_eq!(shown["lfs_auth"], true, "{shown:#}");
    f.sync();
    let seen = f.lfs.seen();
    assert!(seen.last().is_some_and(|s| s.authorization), "{seen:?}");
    // Without an lfs_url it means nothing: refused with one line.
    let out = f.env.pm(&f.up, &["set", "lfs", "lfs_url="]);
    assert!(
        !out.status.success() && text(&out).contains("lfs_auth"),
        "{}",
        text(&out)
    );
}

/// A TCP server that takes the client's first flight and then answers with a TLS handshake
/// record trickled a byte every 200 ms: each read moves within the activity timeout, the
/// handshake never ends. It gives up after 15 s (so a client without a whole-handshake bound
/// fails with something else instead of hanging the test). Stops with its guard.
struct TrickleTls {
    port: u16,
    stop: Arc<std::sync::atomic::AtomicBool>,
    accept: Option<std::thread::JoinHandle<()>>,
}

impl TrickleTls {
    fn start() -> TrickleTls {
        use std::io::{Read, Write};
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s = stop.clone();
        let accept = std::thread::spawn(move || {
            let mut conns = Vec::new();
            while !s.load(Ordering::Relaxed) {
                let Ok((mut c, _)) = listener.accept() else {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    continue;
                };
                let s = s.clone();
                conns.push(std::thread::spawn(move || {
                    c.set_nonblocking(false).unwrap();
                    let mut hello = [0u8; 4096];
                    let _ = c.read(&mut hello);
                    // A handshake record of 16 KiB, sent a byte at a time.
                    let mut out = vec![0x16, 0x03, 0x03, 0x40, 0x00];
                    out.resize(5 + 0x4000, 0);
                    let t0 = std::time::Instant::now();
                    for b in out {
                        if s.load(Ordering::Relaxed)
                            || t0.elapsed() > std::time::Duration::from_secs(15)
                            || c.write_all(&[b]).is_err()
                        {
                            break;
                        }
                        std::thread::sleep(std::time::Duration::from_millis(200));
                    }
                }));
            }
            for c in conns {
                let _ = c.join();
            }
        });
        TrickleTls {
            port,
            stop,
            accept: Some(accept),
        }
    }
}

impl Drop for TrickleTls {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(a) = self.accept.take() {
            let _ = a.join();
        }
    }
}

/// A server that trickles its TLS handshake (every read moves, the handshake never ends) is cut
/// by the mirror's timeout like any other stalled request: the handshake has the whole-request
/// bound too, not only the activity timeout per read.
#[test]
fn a_tls_handshake_trickled_a_byte_at_a_time_is_cut_by_the_timeout() {
    if no_servers() {
        return;
    }
    let trickle = TrickleTls::start();
    let f = Setup::new(1000, "2s", &[], |_, _| Reply::Stall);
    f.env.pm_ok(
        &f.up,
        &[
            "set",
            "lfs",
            &format!(
                "lfs_url=https://127.0.0.1:{}/dst.git/info/lfs",
                trickle.port
            ),
        ],
    );
    let e = f.sync_fails();
    assert!(
        e.contains("batch request") && e.contains("timed out"),
        "{e}"
    );
}

/// A batch answer is read up to 2 MiB, an error answer's body up to 64 KiB: a server's 9 MiB
/// of valid JSON made of tiny values (a JSON tree takes many times its text in memory) neither
/// blows up the flusher's memory nor is parsed, as a batch answer (the sync fails saying so) or
/// as the body of a 503.
#[test]
fn a_huge_batch_answer_is_not_read_into_memory() {
    if no_servers() {
        return;
    }
    let mut body = b"{\"message\":\"busy\",\"objects\":[".to_vec();
    while body.len() < 9 << 20 {
        body.extend_from_slice(b"0,");
    }
    body.extend_from_slice(b"0]}");
    let body = Arc::new(body);
    let status = Arc::new(Mutex::new(200u16));
    let st = status.clone();
    let f = Setup::new(1000, TIMEOUT, &[], move |h, b| {
        match (h.method.as_str(), b) {
            ("POST", None) => Reply::ReadBody,
            ("POST", Some(_)) => Reply::Answer(*st.lock().unwrap(), Vec::new(), body.to_vec()),
            _ => Reply::Stall,
        }
    });
    let e = f.sync_fails();
    assert!(e.contains("over 2 MiB"), "{e}");
    assert!(f.env.wait_flushers_gone());
    *status.lock().unwrap() = 503;
    let e = f.sync_fails();
    assert!(e.contains("HTTP 503"), "{e}");
    assert!(f.env.wait_flushers_gone());
    let log = f.env.log(&f.up);
    let peak: Vec<u64> = log
        .lines()
        .filter_map(|l| l.split("peak RSS ").nth(1))
        .filter_map(|r| r.split_whitespace().next()?.parse().ok())
        .collect();
    assert!(
        peak.len() >= 2,
        "no peak RSS of both syncs in the log:\n{log}"
    );
    assert!(
        peak.iter().all(|kib| *kib < 100 * 1024),
        "peak RSS {peak:?} KiB\n{log}"
    );
}

/// An upload has no whole-request bound (a big object takes its time), but its answer has: a
/// server that takes the whole PUT and then trickles the answer's head a byte at a time (every
/// read moves) is cut by the mirror's timeout after the body went.
#[test]
fn an_upload_answer_whose_head_trickles_is_cut_by_the_timeout() {
    if no_servers() {
        return;
    }
    let port: Port = Arc::default();
    let p = port.clone();
    let f = Setup::new(1000, "2s", &[], move |h, body| {
        match (h.method.as_str(), body) {
            ("POST", None) => Reply::ReadBody,
            ("POST", Some(b)) => {
                let port = *p.lock().unwrap();
                Reply::Answer(
                    200,
                    Vec::new(),
                    batch_answer(b, |oid, _| put_actions(port, oid, false)),
                )
            }
            ("PUT", _) => Reply::TrickleHead,
            _ => Reply::Stall,
        }
    });
    *port.lock().unwrap() = f.lfs.port;
    let e = f.sync_fails();
    assert!(
        e.contains("upload of") && e.contains(&f.oid) && e.contains("timed out"),
        "{e}"
    );
    // Cut by the client, not by the server giving up after 15 s (then it never sees the
    // client hang up: it has stopped writing).
    let hung_up = || f.lfs.seen().iter().any(|s| s.method == "(client hung up)");
    assert!(
        wait_until(std::time::Duration::from_secs(10), hung_up),
        "the client waited for the trickling answer until the server gave up: {:?}",
        f.lfs.seen()
    );
}

/// Times a server gives with its actions cannot break a sync: an `expires_at` with a multi-byte
/// character where its offset is read, an `expires_in` of centuries. The object goes, then the
/// refs.
#[test]
fn absurd_action_times_do_not_break_the_sync() {
    if no_servers() {
        return;
    }
    let port: Port = Arc::default();
    let p = port.clone();
    let stored = Arc::new(Mutex::new(0usize));
    let st = stored.clone();
    let f = Setup::new(1000, TIMEOUT, &[], move |h, body| {
        match (h.method.as_str(), body) {
            (_, None) => Reply::ReadBody,
            ("POST", Some(b)) => {
                let port = *p.lock().unwrap();
                Reply::Answer(
                    200,
                    Vec::new(),
                    batch_answer(b, |oid, _| {
                        let mut a = put_actions(port, oid, false);
                        a["upload"]["expires_at"] = json!("2026-11-30T22:30:00+1\u{20ac}x");
                        a["upload"]["expires_in"] = json!(i64::MAX);
                        a
                    }),
                )
            }
            ("PUT", Some(_)) => {
                *st.lock().unwrap() += 1;
                ok_empty()
            }
            _ => Reply::Answer(404, Vec::new(), Vec::new()),
        }
    });
    *port.lock().unwrap() = f.lfs.port;
    let m = f.sync();
    assert_eq!(
        m["update_status"],
        "finished",
        "{m:#}\n{}",
        f.env.log(&f.up)
    );
    assert_eq!(*stored.lock().unwrap(), 1);
    f.env.wait_mirrored(&f.up, &f.dst);
}
