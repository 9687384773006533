//! Runs the `git` CLI for the network side (gix cannot push): `ls-remote` and
//! `push --porcelain`, each bounded by a timeout, with output parsed into per-ref results.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("could not run git: {0}")]
    Spawn(std::io::Error),
    #[error("git {what} timed out after {secs}s")]
    Timeout { what: &'static str, secs: u64 },
    /// `stderr` is raw: callers scrub it before it goes anywhere.
    #[error("git {what} failed: {stderr}")]
    Failed { what: &'static str, stderr: String },
}

/// The environment of one git child: what to set and what to remove from ours.
#[derive(Debug, Default, Clone)]
pub struct ChildEnv {
    pub set: Vec<(String, String)>,
    pub remove: Vec<String>,
}

pub struct Output {
    pub status_ok: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `git -C <git_dir> <args>` with `env`, killing its whole process group (ssh included) at
/// the deadline. Nothing secret is ever in `args`.
pub fn run(
    git_dir: &Path,
    args: &[String],
    env: &ChildEnv,
    timeout: Duration,
    what: &'static str,
) -> Result<Output, GitError> {
    let mut cmd = Command::new("git");
    cmd.arg("-C").arg(git_dir).args(args);
    run_command(cmd, env, timeout, what)
}

/// Runs `cmd` (git, or the `sh -c` of a GIT_SSH_COMMAND) as `run` runs git: our git variables
/// dropped, `env` applied, in its own process group that dies with us and is killed at the
/// deadline, stdout and stderr captured (progress meters' intermediate updates dropped).
pub fn run_command(
    mut cmd: Command,
    env: &ChildEnv,
    timeout: Duration,
    what: &'static str,
) -> Result<Output, GitError> {
    use std::os::unix::process::CommandExt;
    crate::paths::drop_git_env(&mut cmd);
    for k in &env.remove {
        cmd.env_remove(k);
    }
    for (k, v) in &env.set {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    unsafe {
        cmd.pre_exec(|| {
            libc::setpgid(0, 0);
            // A flusher killed mid-sync must not leave its push running on (holding the
            // mirror's ref locks against the next flusher's retry). The spawning thread waits
            // for this child, so the signal only fires when the flusher itself dies.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(GitError::Spawn)?;
    let mut out_pipe = child.stdout.take();
    let mut err_pipe = child.stderr.take();
    let out_t = std::thread::spawn(move || {
        let mut s = Vec::new();
        if let Some(p) = out_pipe.as_mut() {
            let _ = p.read_to_end(&mut s);
        }
        s
    });
    let err_t = std::thread::spawn(move || {
        // Read to the end (closing the pipe early would fail git's next write), progress
        // meters' intermediate updates dropped, at most 1 MiB kept.
        err_pipe
            .as_mut()
            .map(|p| super::progress::read_stderr(p, 1 << 20))
            .unwrap_or_default()
    });
    let pid = child.id() as i32;
    let (status, timed_out) = wait_deadline(child, timeout, |pid, sig| unsafe {
        libc::kill(-pid, sig);
    });
    if timed_out {
        return Err(GitError::Timeout {
            what,
            secs: timeout.as_secs().max(1),
        });
    }
    let status = status.map_err(GitError::Spawn)?;
    // A grandchild (ssh) that kept the pipes open must not hold us past the deadline.
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
    }
    let stdout = String::from_utf8_lossy(&out_t.join().unwrap_or_default()).into_owned();
    let mut stderr = String::from_utf8_lossy(&err_t.join().unwrap_or_default()).into_owned();
    if let Some(sig) = std::os::unix::process::ExitStatusExt::signal(&status) {
        // Killed from outside (the OOM killer, an operator): git's last words are progress,
        // which says nothing of it.
        stderr.push_str(&format!("\n{}\n", killed_by(sig)));
    }
    Ok(Output {
        status_ok: status.success(),
        stdout,
        stderr,
    })
}

/// The line a git killed by signal `sig` gets in its stderr.
fn killed_by(sig: i32) -> String {
    let name = match sig {
        libc::SIGHUP => " (SIGHUP)",
        libc::SIGINT => " (SIGINT)",
        libc::SIGABRT => " (SIGABRT)",
        libc::SIGKILL => " (SIGKILL)",
        libc::SIGSEGV => " (SIGSEGV)",
        libc::SIGPIPE => " (SIGPIPE)",
        libc::SIGTERM => " (SIGTERM)",
        _ => "",
    };
    format!("killed by signal {sig}{name}")
}

/// How long a git run past its timeout gets between SIGTERM and SIGKILL: enough for git (and a
/// local mirror's receive-pack in the same process group) to remove its `*.lock` files, which a
/// SIGKILL would leave behind to fail every later push with "cannot lock ref".
pub const KILL_GRACE: Duration = Duration::from_secs(5);

/// Waits for `child` for at most `timeout`, on a thread, so that its exit is seen the moment it
/// happens (polling with a growing sleep cost up to 50 ms per git run, a fifth of a 10,000-ref
/// sync). At the deadline `kill` gets the child's pid and SIGTERM while the child is not yet
/// reaped (so the pid, and a process group of that id, are still its own), then SIGKILL if it
/// is still there `KILL_GRACE` later; the child is reaped either way. Returns its exit status
/// and whether the deadline passed.
pub fn wait_deadline(
    mut child: Child,
    timeout: Duration,
    kill: impl Fn(i32, i32),
) -> (std::io::Result<ExitStatus>, bool) {
    let pid = child.id() as i32;
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let st = child.wait();
        let _ = tx.send(());
        st
    });
    let timed_out = matches!(
        rx.recv_timeout(timeout),
        Err(std::sync::mpsc::RecvTimeoutError::Timeout)
    );
    if timed_out {
        kill(pid, libc::SIGTERM);
        if matches!(
            rx.recv_timeout(KILL_GRACE),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout)
        ) {
            kill(pid, libc::SIGKILL);
        }
    }
    let status = waiter
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("waiter thread panicked")));
    (status, timed_out)
}

/// The most telling stderr line, which is where git says what went wrong.
///
/// Not simply the last line: git often ends with a consequence that hides the cause. When the
/// transport (ssh) failed, git ends with the same advice whatever the cause ("fatal: Could not
/// read from remote repository." / "Please make sure you have the correct access rights" /
/// "and the repository exists."); the cause is the line before it, e.g. "Host key verification
/// failed." or "user@host: Permission denied (publickey).". A mirror that breaks off ends with
/// "fatal: the remote end hung up unexpectedly" after (or, the two processes' lines
/// interleaving, before) the reason, e.g. "fatal: the receiving end does not support this
/// repository's hash algorithm". So: consequences like those (`CONSEQUENCES`) and progress
/// lines ("Delta compression using up to 2 threads", meters) are never picked while anything
/// else was said; of the rest, the last `fatal:`/`error:` line (the mirror's own `remote:
/// error:` included) wins, else the last line. A consequence is kept only when it is all
/// there is (its `fatal:` line first).
pub fn last_line(stderr: &str) -> String {
    let meaningful = || {
        stderr
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("hint:") && !is_progress(l))
    };
    // Our askpass refusing a prompt that was not for the mirror says more than git's
    // "could not read Username ...: terminal prompts disabled" after it.
    if let Some(refused) = meaningful().find(|l| l.starts_with(super::auth::ASKPASS_REFUSED)) {
        return refused.to_string();
    }
    if let Some(changed) = host_key_changed(stderr) {
        return changed;
    }
    // "No ED25519 host key is known for [h]:p and you have requested strict checking." says
    // which host:port the pin lacks; "Host key verification failed." alone does not.
    if let Some(unknown) = meaningful().find(|l| {
        l.starts_with("No ") && l.contains(" host key is known for ") && l.ends_with("checking.")
    }) {
        return format!("{unknown} Host key verification failed.");
    }
    let causes = || meaningful().filter(|l| !is_consequence(l));
    causes()
        .rfind(|l| is_error(l))
        .or_else(|| causes().next_back())
        .or_else(|| meaningful().find(|l| l.starts_with("fatal:")))
        .or_else(|| meaningful().next_back())
        .unwrap_or("(no message)")
        .to_string()
}

/// Lines git prints because something else went wrong, which say nothing of what.
const CONSEQUENCES: [&str; 7] = [
    "fatal: Could not read from remote repository.",
    "Please make sure you have the correct access rights",
    "and the repository exists.",
    "fatal: the remote end hung up unexpectedly",
    "send-pack: unexpected disconnect while reading sideband packet",
    "error: failed to push some refs to ",
    "Everything up-to-date",
];

fn is_consequence(line: &str) -> bool {
    CONSEQUENCES
        .iter()
        .any(|c| line == *c || (c.ends_with(' ') && line.starts_with(c)))
}

/// A line in which git, or the mirror (`remote: error: ...`), reports an error.
fn is_error(line: &str) -> bool {
    let l = line.strip_prefix("remote:").map_or(line, str::trim_start);
    ["fatal:", "error:", "ERROR:", "FATAL:"]
        .iter()
        .any(|p| l.starts_with(p))
}

/// Progress that git prints on the way (a meter's final line, "Delta compression using up to
/// N threads"): never what went wrong, even when it is the last thing a killed push said.
fn is_progress(line: &str) -> bool {
    let l = line.strip_prefix("remote:").map_or(line, str::trim_start);
    super::progress::is_meter(l) || l.starts_with("Delta compression using up to ")
}

/// ssh's answer to a host presenting another key than the pinned one: "Host key verification
/// failed." alone reads like an unknown host, but this may be a man-in-the-middle, so ssh's
/// own warning, its "Host key for ... has changed" line and the fingerprint it was shown are
/// kept.
fn host_key_changed(stderr: &str) -> Option<String> {
    let lines: Vec<&str> = stderr.lines().map(str::trim).collect();
    let warning = lines
        .iter()
        .find(|l| l.contains("REMOTE HOST IDENTIFICATION HAS CHANGED"))?;
    let warning = warning.trim_matches(|c: char| c == '@' || c.is_whitespace());
    let mut parts = vec![warning.to_string()];
    // "The fingerprint for the ED25519 key sent by the remote host is" / "SHA256:....".
    if let Some(i) = lines
        .iter()
        .position(|l| l.starts_with("The fingerprint for the ") && l.ends_with(" is"))
    {
        if let Some(fp) = lines.get(i + 1).filter(|f| f.starts_with("SHA256:")) {
            parts.push(format!("{} {}", lines[i], fp));
        }
    }
    if let Some(l) = lines
        .iter()
        .find(|l| l.starts_with("Host key for ") && l.contains(" has changed"))
    {
        parts.push(l.to_string());
    }
    parts.push("Host key verification failed.".to_string());
    Some(parts.join(" "))
}

/// Parses `git ls-remote` output: `<oid> TAB <ref>` lines; peeled `^{}` entries and HEAD dropped.
pub fn parse_ls_remote(out: &str) -> BTreeMap<String, String> {
    out.lines()
        .filter_map(|l| l.split_once('\t'))
        .filter(|(_, r)| r.starts_with("refs/") && !r.ends_with("^{}"))
        .map(|(o, r)| (r.to_string(), o.to_string()))
        .collect()
}

/// One line of `git push --porcelain`: `<flag> TAB <from>:<to> TAB <summary>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefResult {
    pub flag: char,
    pub to: String,
    pub summary: String,
}

impl RefResult {
    pub fn ok(&self) -> bool {
        matches!(self.flag, ' ' | '+' | '-' | '*' | '=')
    }

    /// The mirror already had it: nothing was sent for this ref.
    pub fn up_to_date(&self) -> bool {
        self.flag == '='
    }
}

pub fn parse_porcelain(out: &str) -> BTreeMap<String, RefResult> {
    let mut res = BTreeMap::new();
    for line in out.lines() {
        let mut parts = line.splitn(3, '\t');
        let (Some(flag), Some(spec), summary) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let mut fc = flag.chars();
        let (Some(f), None) = (fc.next(), fc.next()) else {
            continue;
        };
        let Some((_, to)) = spec.rsplit_once(':') else {
            continue;
        };
        res.insert(
            to.to_string(),
            RefResult {
                flag: f,
                to: to.to_string(),
                summary: summary.unwrap_or("").to_string(),
            },
        );
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_porcelain() {
        let out = "To /tmp/m.git\n*\t1111111111111111111111111111111111111111:refs/heads/main\t[new branch]\n\
                   +\t2222222222222222222222222222222222222222:refs/heads/x\t0123456...89abcde (forced update)\n\
                   -\t:refs/heads/old\t[deleted]\n\
                   !\t3333333333333333333333333333333333333333:refs/heads/locked\t[remote rejected] (pre-receive hook declined)\n\
                   =\t4444444444444444444444444444444444444444:refs/heads/same\t[up to date]\nDone\n";
        let r = parse_porcelain(out);
        assert_eq!(r.len(), 5);
        assert!(r["refs/heads/main"].ok());
        assert!(r["refs/heads/old"].ok());
        assert!(r["refs/heads/same"].ok() && r["refs/heads/same"].up_to_date());
        assert!(!r["refs/heads/main"].up_to_date());
        assert!(!r["refs/heads/locked"].ok());
        assert_eq!(
            r["refs/heads/locked"].summary,
            "[remote rejected] (pre-receive hook declined)"
        );
    }

    #[test]
    fn last_line_names_the_cause_not_the_advice() {
        let advice = "fatal: Could not read from remote repository.\n\n\
                      Please make sure you have the correct access rights\n\
                      and the repository exists.\n";
        assert_eq!(
            last_line(&format!("Host key verification failed.\r\n{advice}")),
            "Host key verification failed."
        );
        assert_eq!(
            last_line(&format!(
                "git@host: Permission denied (publickey).\r\n{advice}"
            )),
            "git@host: Permission denied (publickey)."
        );
        assert_eq!(
            last_line(advice),
            "fatal: Could not read from remote repository."
        );
        assert_eq!(
            last_line("remote: x\nfatal: Authentication failed for 'https://h/x/'\n"),
            "fatal: Authentication failed for 'https://h/x/'"
        );
        assert_eq!(last_line("error: x\nhint: y\n\n"), "error: x");
        assert_eq!(last_line(""), "(no message)");
        assert_eq!(
            last_line(&format!(
                "No ED25519 host key is known for [h]:2 and you have requested strict checking.\r\nHost key verification failed.\r\n{advice}"
            )),
            "No ED25519 host key is known for [h]:2 and you have requested strict checking. Host key verification failed."
        );
        let refused = format!(
            "{} to https://127.0.0.1:2 (another scheme, host or port; ...)\n\
             fatal: could not read Username for 'https://127.0.0.1:2': terminal prompts disabled\n",
            crate::mirror::auth::ASKPASS_REFUSED
        );
        assert!(last_line(&refused).starts_with(crate::mirror::auth::ASKPASS_REFUSED));
    }

    /// git 2.47's stderr as `run` keeps it (meter updates dropped by `read_stderr`): captured
    /// on this machine for the hash algorithm, the killed push, the hook's refusal, the
    /// unreachable https and ssh mirrors and the missing repository; the HTTP 413, hosting
    /// service and git daemon samples have the shape git gives them.
    #[test]
    fn the_most_telling_line_is_kept_never_a_consequence_or_progress() {
        let advice = "fatal: Could not read from remote repository.\n\n\
                      Please make sure you have the correct access rights\n\
                      and the repository exists.\n";
        let hash = "fatal: the receiving end does not support this repository's hash algorithm";
        let hung_up = "fatal: the remote end hung up unexpectedly";
        // A sha256 upstream pushing to a sha1 mirror: the two processes' lines come in either
        // order.
        assert_eq!(last_line(&format!("{hash}\n{hung_up}\n")), hash);
        assert_eq!(last_line(&format!("{hung_up}\n{hash}\n")), hash);
        // A push killed from outside: its last words are progress; `run` adds the signal.
        let raw = b"Enumerating objects: 5, done.\nCounting objects:  20% (1/5)\rCounting objects: 100% (5/5), done.\n\
                    Delta compression using up to 2 threads\nCompressing objects:  20% (1/5)\rCompressing objects:  60% (3/5)\r";
        let kept =
            String::from_utf8(super::super::progress::read_stderr(&raw[..], 1 << 20)).unwrap();
        assert_eq!(last_line(&kept), "(no message)", "{kept:?}");
        assert_eq!(
            last_line(&format!("{kept}\n{}\n", killed_by(libc::SIGKILL))),
            "killed by signal 9 (SIGKILL)"
        );
        let remote_progress = "remote: Resolving deltas: 100% (2/2), done.\n";
        assert_eq!(
            last_line(&format!("{remote_progress}{hung_up}\n")),
            hung_up,
            "a consequence is kept when it is all there is"
        );
        for (stderr, want) in [
            // The mirror's pre-receive hook said why, then git's summary.
            (
                "remote: policy: pushes are frozen        \nerror: failed to push some refs to '../hooked.git'\n",
                "remote: policy: pushes are frozen",
            ),
            (
                "remote: error: GH006: Protected branch update failed for refs/heads/main.\n\
                 remote: See https://example.com/protected\n\
                 error: failed to push some refs to 'https://h/x.git'\n",
                "remote: error: GH006: Protected branch update failed for refs/heads/main.",
            ),
            (
                "error: RPC failed; HTTP 413 curl 22 The requested URL returned error: 413\n\
                 send-pack: unexpected disconnect while reading sideband packet\n\
                 Writing objects: 100% (3/3), 2.00 MiB | 9.00 MiB/s, done.\n\
                 Total 3 (delta 0), reused 0 (delta 0), pack-reused 0 (from 0)\n\
                 fatal: the remote end hung up unexpectedly\nEverything up-to-date\n",
                "error: RPC failed; HTTP 413 curl 22 The requested URL returned error: 413",
            ),
            (
                "fatal: unable to access 'https://127.0.0.1:1/x.git/': Failed to connect to 127.0.0.1 port 1 after 0 ms: Couldn't connect to server\n",
                "fatal: unable to access 'https://127.0.0.1:1/x.git/': Failed to connect to 127.0.0.1 port 1 after 0 ms: Couldn't connect to server",
            ),
            (
                "fatal: remote error: access denied or repository not exported: /x.git\n",
                "fatal: remote error: access denied or repository not exported: /x.git",
            ),
        ] {
            assert_eq!(last_line(stderr), want, "{stderr:?}");
        }
        assert_eq!(
            last_line(&format!(
                "ssh: connect to host 127.0.0.1 port 1: Connection refused\r\n{advice}"
            )),
            "ssh: connect to host 127.0.0.1 port 1: Connection refused"
        );
        assert_eq!(
            last_line(&format!(
                "fatal: '/tmp/s/nonexist.git' does not appear to be a git repository\n{advice}"
            )),
            "fatal: '/tmp/s/nonexist.git' does not appear to be a git repository"
        );
    }

    #[test]
    fn a_changed_host_key_is_not_just_a_failed_verification() {
        let stderr = "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n\
@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n\
@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n\
IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!\n\
Someone could be eavesdropping on you right now (man-in-the-middle attack)!\n\
It is also possible that a host key has just been changed.\n\
The fingerprint for the ED25519 key sent by the remote host is\n\
SHA256:AbCdEf0123.\n\
Please contact your system administrator.\n\
Add correct host key in /run/known_hosts.1 to get rid of this message.\n\
Offending ED25519 key in /run/known_hosts.1:1\n\
Host key for [127.0.0.1]:2222 has changed and you have requested strict checking.\n\
Host key verification failed.\n\
fatal: Could not read from remote repository.\n\n\
Please make sure you have the correct access rights\nand the repository exists.\n";
        assert_eq!(
            last_line(stderr),
            "WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! \
             The fingerprint for the ED25519 key sent by the remote host is SHA256:AbCdEf0123. \
             Host key for [127.0.0.1]:2222 has changed and you have requested strict checking. \
             Host key verification failed."
        );
    }

    #[test]
    fn parses_ls_remote() {
        let out = "aaaa\tHEAD\nbbbb\trefs/heads/main\ncccc\trefs/tags/v1\ndddd\trefs/tags/v1^{}\n";
        let r = parse_ls_remote(out);
        assert_eq!(r.len(), 2);
        assert_eq!(r["refs/tags/v1"], "cccc");
    }
}
