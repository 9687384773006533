//! Git LFS objects reach the mirror: a real LFS server (giftless behind the suite's nginx, TLS and
//! basic auth, at `<repo>.git/info/lfs`), real git-lfs on both ends. The result is checked as a
//! user would: a git-lfs clone of the mirror has the files' contents, not pointers.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use common::servers::lfs::LfsServer;
use common::servers::*;
use common::*;

const DEADLINE: Duration = Duration::from_secs(120);
const PASSWORD: &str = "lfs-S3cret-pw";

fn no_lfs() -> bool {
    if have_all(LfsServer::REQUIRES) && giftless_installed() {
        return false;
    }
    if running_in_ci() {
        panic!("git-lfs, python3 or giftless missing in CI (tests/install-deps.sh installs them)");
    }
    eprintln!("\n*** SKIPPED: git-lfs/giftless not installed (run tests/install-deps.sh) ***\n");
    true
}

fn giftless_installed() -> bool {
    std::process::Command::new("python3")
        .args(["-c", "import giftless"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Bytes that differ per file and per seed, without a random number crate.
fn content(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn sha256_hex(path: &Path) -> String {
    let out = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// An upstream with the hook, a working clone with git-lfs, a mirror repository behind an LFS
/// server, and the mirror `lfs` added with password auth.
struct Fixture {
    env: Env,
    up: PathBuf,
    wc: PathBuf,
    server: LfsServer,
}

impl Fixture {
    fn new(lfs_password: Option<&str>, server_yaml: &str) -> Fixture {
        let env = Env::new();
        env.write_server_config(server_yaml);
        let up = env.upstream("up.git");
        let srv = env.path("srv");
        fs::create_dir_all(&srv).unwrap();
        env.bare("srv/dst.git", &[]);
        let server = LfsServer::start(&srv, "mirror", PASSWORD, lfs_password);
        let pwfile = env.path("mirror.password");
        fs::write(&pwfile, format!("{PASSWORD}\n")).unwrap();
        fs::set_permissions(&pwfile, fs::Permissions::from_mode(0o600)).unwrap();
        let wc = env.clone(&up, "wc");
        env.git(&wc, &["lfs", "install", "--local"]);
        env.git(&wc, &["lfs", "track", "*.bin"]);
        env.git(&wc, &["add", ".gitattributes"]);
        env.git(&wc, &["commit", "-q", "-m", "track *.bin"]);
        let f = Fixture {
            env,
            up,
            wc,
            server,
        };
        f.env.pm_ok(
            &f.up,
            &[
                "add",
                "lfs",
                &f.server.https.url("dst.git"),
                "--username",
                "mirror",
                "--password-file",
                s(&pwfile),
                "--ca-file",
                s(&f.server.https.ca_file),
                "--debounce",
                "100ms",
                "--timeout",
                "20s",
            ],
        );
        f
    }

    /// Writes `files` (name, bytes) in the working clone and commits them.
    fn commit(&self, msg: &str, files: &[(&str, Vec<u8>)]) {
        for (name, data) in files {
            fs::write(self.wc.join(name), data).unwrap();
            self.env.git(&self.wc, &["add", name]);
        }
        self.env.git(&self.wc, &["commit", "-q", "-m", msg]);
    }

    fn status(&self) -> serde_json::Value {
        self.env.mirror_status(&self.up, "lfs")
    }

    /// Waits until the mirror finished a sync that left nothing pending.
    fn wait_finished(&self) -> serde_json::Value {
        let ok = wait_until(DEADLINE, || {
            let m = self.status();
            m["update_status"] == "finished" && m["pending_updates"] == 0
        });
        let m = self.status();
        assert!(
            ok,
            "never finished: {m:#}\nlog:\n{}\nserver:\n{}",
            self.env.log(&self.up),
            self.server.log()
        );
        m
    }

    /// A git-lfs clone of the mirror, over HTTPS with the mirror's credentials.
    fn clone_mirror(&self, name: &str) -> PathBuf {
        let askpass = self.env.path("askpass.sh");
        write_askpass(&askpass, "mirror", PASSWORD);
        let dest = self.env.path(name);
        let out = self
            .env
            .cmd("git")
            .env("GIT_ASKPASS", &askpass)
            .env("GIT_SSL_CAINFO", &self.server.https.ca_file)
            .args(["-c", "filter.lfs.smudge=git-lfs smudge -- %f"])
            .args(["-c", "filter.lfs.process=git-lfs filter-process"])
            .args(["-c", "filter.lfs.required=true"])
            .args(["clone", "-q", &self.server.https.url("dst.git")])
            .arg(&dest)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git-lfs clone of the mirror failed: {}\nserver:\n{}",
            text(&out),
            self.server.log()
        );
        dest
    }
}

/// New LFS objects reach the mirror before its refs; a clone has the real contents; a second
/// sync sends nothing again (nginx's log shows no new batch request or upload).
#[test]
fn new_objects_reach_the_mirror_and_are_sent_once() {
    if no_lfs() {
        return;
    }
    let f = Fixture::new(None, "");
    let a = content(1, 300_000);
    let b = content(2, 1_000_000);
    f.commit("two objects", &[("a.bin", a.clone()), ("b.bin", b.clone())]);
    f.env.push(&f.wc, &["main"]);
    assert!(
        f.up.join("lfs/objects").is_dir(),
        "git-lfs did not store objects upstream"
    );
    let m = f.wait_finished();
    assert_eq!(m["lfs"], "auto", "{m:#}");
    assert_eq!(m["lfs_objects_sent_last"], 2, "{m:#}");
    assert_eq!(
        m["lfs_bytes_sent_last"],
        (a.len() + b.len()) as u64,
        "{m:#}"
    );
    assert_eq!(m["lfs_missing_count"], 0, "{m:#}");
    assert_eq!(f.server.requests(&["PUT ", "/objects/storage/", "\" 200 "]), 2);
    let log = f.env.log(&f.up);
    assert!(
        log.contains("lfs 2 objects / 2 MiB in "),
        "sync log line lacks the lfs part:\n{log}"
    );

    let clone = f.clone_mirror("clone1");
    assert_eq!(fs::read(clone.join("a.bin")).unwrap(), a);
    assert_eq!(fs::read(clone.join("b.bin")).unwrap(), b);

    // A push without new LFS content, and a `sync` with nothing new: no LFS request at all.
    let batches = f.server.requests(&["POST ", "/objects/batch"]);
    f.env.commit(&f.wc, "no lfs here");
    f.env.push(&f.wc, &["main"]);
    let before = f.status()["syncs"].as_u64().unwrap();
    assert!(wait_until(DEADLINE, || f.status()["syncs"].as_u64().unwrap() > before
        && f.status()["pending_updates"] == 0));
    f.wait_finished();
    f.env.pm_ok(&f.up, &["sync", "lfs", "--wait"]);
    assert_eq!(f.server.requests(&["POST ", "/objects/batch"]), batches);
    assert_eq!(f.server.requests(&["PUT "]), 2);

    // One more object: one more upload, only it.
    let c = content(3, 5_000);
    f.commit("third", &[("c.bin", c.clone())]);
    f.env.push(&f.wc, &["main"]);
    let ok = wait_until(DEADLINE, || f.status()["lfs_objects_sent_last"] == 1);
    assert!(ok, "{:#}\n{}", f.status(), f.env.log(&f.up));
    f.wait_finished();
    assert_eq!(f.server.requests(&["PUT ", "\" 200 "]), 3);
    let clone = f.clone_mirror("clone2");
    assert_eq!(fs::read(clone.join("c.bin")).unwrap(), c);
    assert_eq!(fs::read(clone.join("a.bin")).unwrap(), a);
    let _ = sha256_hex;
}
