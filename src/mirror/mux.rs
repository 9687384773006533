//! One SSH connection per sync instead of two: a sync runs `git ls-remote` and then `git push`,
//! and without help each opens its own SSH connection, paying the whole handshake (key exchange,
//! host key check, public key authentication) twice. An OpenSSH connection master
//! (`ControlMaster=auto`) started by the first command carries the second as a new session.
//!
//! The master belongs to this one sync only: its socket is private to the flusher's process and
//! the sync (`<runtime_dir>/ssh-<pid>-<n>`), so two mirrors on the same host with different keys
//! never share an authenticated connection, and a retry never reuses a connection that went bad.
//! When the sync ends, however it ends, the master is told to exit (`ssh -O exit`); should the
//! flusher be killed before that, `ControlPersist` ends it once it is idle.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How long a master outlives its last session when nobody tells it to exit.
const PERSIST_SECS: u64 = 30;

/// A unix socket path is at most 107 bytes; ssh binds `<path>.<16 random chars>` first.
const MAX_SOCKET_PATH: usize = 107 - 17;

static NEXT: AtomicU64 = AtomicU64::new(0);

/// The connection master of one sync; dropping it stops the master.
pub struct Mux {
    socket: PathBuf,
    /// What the sync's git children do not get (`ChildEnv::remove`: every configured
    /// `password_env` variable among them): the `ssh -O exit` that ends the master neither.
    remove: Vec<String>,
}

impl Mux {
    /// Makes the `GIT_SSH_COMMAND` in `env` share one connection, returning the guard that ends it.
    /// None (and `env` unchanged) when the runtime directory's path cannot carry a socket: too
    /// long, or with characters ssh would expand or split on.
    pub fn share(
        runtime_dir: &Path,
        env: &mut [(String, String)],
        remove: &[String],
    ) -> Option<Mux> {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let socket = runtime_dir.join(format!("ssh-{}-{n}", std::process::id()));
        let text = socket.to_str()?;
        let unsafe_char = |c: char| c.is_whitespace() || c.is_control() || "'\"\\%$~".contains(c);
        if text.len() > MAX_SOCKET_PATH || text.chars().any(unsafe_char) || !socket.is_absolute() {
            return None;
        }
        let cmd = env.iter_mut().find(|(k, _)| k == "GIT_SSH_COMMAND")?;
        // ssh gives up (exit 255) when it cannot create the socket, e.g. on a file system
        // without unix sockets: try once here and go without a master then.
        let _ = std::fs::remove_file(&socket); // a socket left by a killed flusher of this pid
        drop(std::os::unix::net::UnixListener::bind(&socket).ok()?);
        std::fs::remove_file(&socket).ok()?;
        cmd.1.push_str(&format!(
            " -o ControlMaster=auto -o ControlPath='{text}' -o ControlPersist={PERSIST_SECS}"
        ));
        Some(Mux {
            socket,
            remove: remove.to_vec(),
        })
    }
}

impl Drop for Mux {
    fn drop(&mut self) {
        if std::fs::symlink_metadata(&self.socket).is_err() {
            return; // no master was started (no ssh ran, or it could not bind the socket)
        }
        // `-O exit` only talks to the master over its socket; the destination is not used.
        let mut cmd = Command::new("ssh");
        cmd.args(["-F", "/dev/null", "-o", "BatchMode=yes", "-o"])
            .arg(format!("ControlPath={}", self.socket.display()))
            .args(["-O", "exit", "pushmirror-mux"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        crate::paths::drop_git_env(&mut cmd);
        for k in &self.remove {
            cmd.env_remove(k);
        }
        if let Ok(child) = cmd.spawn() {
            let _ = super::git::wait_deadline(child, Duration::from_secs(5), |pid, sig| unsafe {
                libc::kill(pid, sig);
            });
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_ssh_command_gains_a_private_control_path() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let mut env = vec![
            ("GIT_ASKPASS".to_string(), "/bin/x".to_string()),
            (
                "GIT_SSH_COMMAND".to_string(),
                "ssh -o BatchMode=yes".to_string(),
            ),
        ];
        let a = Mux::share(dir, &mut env, &[]).expect("a short, plain runtime dir");
        assert_eq!(env[0].1, "/bin/x");
        let cmd = &env[1].1;
        assert!(cmd.starts_with("ssh -o BatchMode=yes -o ControlMaster=auto -o ControlPath='"));
        let prefix = format!("{}/ssh-{}-", dir.display(), std::process::id());
        assert!(cmd.contains(&prefix), "{cmd}");
        // Probed and removed: ssh creates the socket itself.
        assert!(!a.socket.exists());
        // Every sync gets its own master.
        let mut env2 = vec![("GIT_SSH_COMMAND".to_string(), "ssh".to_string())];
        let b = Mux::share(dir, &mut env2, &[]).unwrap();
        assert_ne!(a.socket, b.socket);
    }

    #[test]
    fn runtime_dirs_a_socket_cannot_use_leave_ssh_alone() {
        for dir in [
            format!("/{}", "d".repeat(100)),
            "/tmp/with blank".to_string(),
            "/tmp/%h".to_string(),
            "relative".to_string(),
        ] {
            let mut env = vec![("GIT_SSH_COMMAND".to_string(), "ssh".to_string())];
            assert!(
                Mux::share(Path::new(&dir), &mut env, &[]).is_none(),
                "{dir}"
            );
            assert_eq!(env[0].1, "ssh");
        }
        let mut no_ssh = vec![("GIT_ASKPASS".to_string(), "x".to_string())];
        assert!(Mux::share(Path::new("/tmp"), &mut no_ssh, &[]).is_none());
        // A directory where no socket can be made (it does not exist): no master either.
        let mut env = vec![("GIT_SSH_COMMAND".to_string(), "ssh".to_string())];
        assert!(Mux::share(Path::new("/nonexistent/pushmirror"), &mut env, &[]).is_none());
        assert_eq!(env[0].1, "ssh");
    }
}
