//! SSH connection masters: an OpenSSH `ControlMaster` carries a sync's `git ls-remote` and
//! `git push` as sessions of one connection, and (with `ssh_persist`, the default) the next
//! syncs of the same mirror too, so that a burst of pushes pays one handshake (key exchange,
//! host key check, public key authentication) instead of one per sync.
//!
//! A lasting master's socket is `<runtime_dir>/mux-<owner>-<connection>`: `owner` is a hash of
//! the repository and the mirror's name, so every mirror of every repository has its own
//! masters and `remove`/`set` can close them (`close_mirror`); `connection` is a hash of
//! everything that decides where ssh connects and as whom (the URL, the whole ssh command, the
//! contents of the key and known_hosts files or the pinned host key), so a changed URL, key or
//! host key never reuses a connection made with the old one. The master ends itself after
//! `ssh_persist` without a session (`ControlPersist`), and a sync that fails closes it, so a
//! retry never reuses a connection that went bad.
//!
//! With `ssh_persist: 0` (or a password in the child's environment, which a lasting master
//! would keep) the master serves one sync only: `<runtime_dir>/ssh-<pid>-<n>`, told to exit
//! (`ssh -O exit`) when the sync ends, however it ends.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sha2::{Digest, Sha256};

/// How long a one-sync master outlives its last session when nobody tells it to exit (a
/// flusher killed mid-sync).
const PERSIST_SECS: u64 = 30;

/// Lasting masters one server keeps at most (a `sweep` over many repositories would otherwise
/// leave one idle SSH connection per mirror for `ssh_persist`); beyond, a sync's master serves
/// that sync only.
const MAX_LASTING: usize = 32;

/// A unix socket path is at most 107 bytes; ssh binds `<path>.<16 random chars>` first.
const MAX_SOCKET_PATH: usize = 107 - 17;

static NEXT: AtomicU64 = AtomicU64::new(0);

/// What decides an SSH connection of one mirror: the master of a lasting connection is found
/// by it (see the module comment).
pub struct Identity<'a> {
    pub git_dir: &'a Path,
    pub mirror: &'a str,
    /// The URL git connects to (user, host, port, path), without a password.
    pub url: &'a str,
    /// The mirror's auth, with relative files read from `config_file`'s directory.
    pub auth: &'a crate::config::Auth,
    pub config_file: &'a Path,
    /// Files of this sync only (a pinned host key's temporary known_hosts): their names change
    /// with every sync and are left out of the ssh command's hash (their contents count).
    pub temp_files: &'a [PathBuf],
}

/// The connection master of one sync; dropping it stops the master unless it is a lasting one
/// and the sync `keep`s it.
pub struct Mux {
    socket: PathBuf,
    lasting: bool,
    keep: Cell<bool>,
    /// What the sync's git children do not get (`ChildEnv::remove`: every configured
    /// `password_env` variable among them): the `ssh -O exit` that ends the master neither.
    remove: Vec<String>,
}

impl Mux {
    /// Makes the `GIT_SSH_COMMAND` in `env` share one connection, returning the guard that ends
    /// it. A lasting master (reused by later syncs of the same mirror) when `persist` is not
    /// zero. None (and `env` unchanged) when the runtime directory's path cannot carry a
    /// socket: too long, or with characters ssh would expand or split on.
    pub fn share(
        runtime_dir: &Path,
        env: &mut [(String, String)],
        persist: Duration,
        id: &Identity<'_>,
        remove: &[String],
    ) -> Option<Mux> {
        let has_password = env.iter().any(|(k, _)| k == "GIT_PUSHMIRROR_PASSWORD");
        let cmd = env.iter_mut().find(|(k, _)| k == "GIT_SSH_COMMAND")?;
        let lasting_name = (!persist.is_zero() && !has_password).then(|| {
            format!(
                "mux-{}-{}",
                owner_tag(id.git_dir, id.mirror),
                connection_tag(id, &cmd.1)
            )
        });
        // A new lasting master only while the server keeps fewer than MAX_LASTING.
        let lasting_name = lasting_name
            .filter(|n| is_socket(&runtime_dir.join(n)) || room_for_one_more(runtime_dir));
        let lasting = lasting_name.is_some();
        let name = lasting_name.unwrap_or_else(|| {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            format!("ssh-{}-{n}", std::process::id())
        });
        let socket = runtime_dir.join(name);
        let text = socket.to_str()?;
        let unsafe_char = |c: char| c.is_whitespace() || c.is_control() || "'\"\\%$~".contains(c);
        if text.len() > MAX_SOCKET_PATH || text.chars().any(unsafe_char) || !socket.is_absolute() {
            return None;
        }
        let live = lasting && is_socket(&socket);
        if !live {
            // ssh gives up (exit 255) when it cannot create the socket, e.g. on a file system
            // without unix sockets: try once here and go without a master then.
            let _ = std::fs::remove_file(&socket); // left by a killed flusher
            drop(std::os::unix::net::UnixListener::bind(&socket).ok()?);
            std::fs::remove_file(&socket).ok()?;
        }
        // A lasting master waits `persist` for its next session; ssh takes whole seconds.
        let secs = if lasting {
            persist.as_millis().div_ceil(1000).max(1) as u64
        } else {
            PERSIST_SECS
        };
        cmd.1.push_str(&format!(
            " -o ControlMaster=auto -o ControlPath='{text}' -o ControlPersist={secs}"
        ));
        Some(Mux {
            socket,
            lasting,
            keep: Cell::new(false),
            remove: remove.to_vec(),
        })
    }

    /// The sync went through: a lasting master stays for the next sync.
    pub fn keep(&self) {
        self.keep.set(true);
    }
}

impl Drop for Mux {
    fn drop(&mut self) {
        if self.lasting && self.keep.get() {
            return; // ends itself after `ssh_persist` without a session
        }
        if std::fs::symlink_metadata(&self.socket).is_err() {
            return; // no master was started (no ssh ran, or it could not bind the socket)
        }
        exit_master(&self.socket, &self.remove);
    }
}

/// Closes the lasting masters of mirror `name` of the repository at `git_dir` (its URL, key or
/// host key changed, or it was removed). Returns how many were told to exit.
pub fn close_mirror(runtime_dir: &Path, git_dir: &Path, name: &str) -> usize {
    let prefix = format!("mux-{}-", owner_tag(git_dir, name));
    // Only in our own private directory (as the flusher checks before it makes a master): in
    // one somebody else made or pointed elsewhere with a symlink, the sockets are not ours to
    // talk to or remove.
    let ours = std::fs::symlink_metadata(runtime_dir).is_ok_and(|m| {
        use std::os::unix::fs::MetadataExt;
        m.is_dir() && m.uid() == unsafe { libc::geteuid() }
    });
    if !ours {
        return 0;
    }
    let Ok(dir) = std::fs::read_dir(runtime_dir) else {
        return 0;
    };
    let mut n = 0;
    for entry in dir.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            exit_master(&entry.path(), &[]);
            n += 1;
        }
    }
    n
}

/// `ssh -O exit` over the socket (the destination is not used), then the socket goes.
fn exit_master(socket: &Path, remove: &[String]) {
    let mut cmd = Command::new("ssh");
    cmd.args(["-F", "/dev/null", "-o", "BatchMode=yes", "-o"])
        .arg(format!("ControlPath={}", socket.display()))
        .args(["-O", "exit", "pushmirror-mux"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    crate::paths::drop_git_env(&mut cmd);
    for k in remove {
        cmd.env_remove(k);
    }
    if let Ok(child) = cmd.spawn() {
        let _ = super::git::wait_deadline(child, Duration::from_secs(5), |pid, sig| unsafe {
            libc::kill(pid, sig);
        });
    }
    let _ = std::fs::remove_file(socket);
}

/// Whether the runtime dir holds fewer than MAX_LASTING lasting masters; the sockets of masters
/// that are gone (killed: nobody answers) are removed on the way.
fn room_for_one_more(runtime_dir: &Path) -> bool {
    let sockets = || -> Vec<PathBuf> {
        std::fs::read_dir(runtime_dir)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.path())
                    .filter(|p| {
                        p.file_name()
                            .is_some_and(|n| n.to_string_lossy().starts_with("mux-"))
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let all = sockets();
    if all.len() < MAX_LASTING {
        return true;
    }
    let mut live = 0;
    for s in all {
        if std::os::unix::net::UnixStream::connect(&s).is_ok() {
            live += 1;
        } else {
            let _ = std::fs::remove_file(&s);
        }
    }
    live < MAX_LASTING
}

fn is_socket(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket())
}

fn hex(bytes: &[u8], chars: usize) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
        .chars()
        .take(chars)
        .collect()
}

/// The repository (as its canonical path) and the mirror's name.
fn owner_tag(git_dir: &Path, name: &str) -> String {
    let dir = std::fs::canonicalize(git_dir).unwrap_or_else(|_| git_dir.to_path_buf());
    let mut h = Sha256::new();
    h.update(dir.as_os_str().as_encoded_bytes());
    h.update(b"\0");
    h.update(name.as_bytes());
    hex(&h.finalize(), 12)
}

/// Everything that decides where ssh connects and as whom: the URL, the ssh command (but the
/// names of this sync's temporary files), and the contents of every file ssh reads a key or a
/// host key from. A key or known_hosts file changed in place gives another tag.
fn connection_tag(id: &Identity<'_>, ssh_command: &str) -> String {
    let mut command = ssh_command.to_string();
    for t in id.temp_files {
        command = command.replace(&*t.to_string_lossy(), "<temp>");
    }
    let mut h = Sha256::new();
    for part in [id.url, command.as_str()] {
        h.update(part.as_bytes());
        h.update(b"\0");
    }
    for path in ssh_files(id) {
        if !id.temp_files.contains(&path) {
            h.update(path.as_os_str().as_encoded_bytes());
        }
        match std::fs::read(&path) {
            Ok(content) => {
                h.update(b"\0=");
                h.update(&content);
            }
            Err(_) => h.update(b"\0-"),
        }
        h.update(b"\0");
    }
    hex(&h.finalize(), 16)
}

/// The files ssh takes the mirror's identity and the host keys it trusts from.
fn ssh_files(id: &Identity<'_>) -> Vec<PathBuf> {
    let rel = |p: &Path| match id.config_file.parent() {
        Some(dir) if p.is_relative() => dir.join(p),
        _ => p.to_path_buf(),
    };
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let mut files = Vec::new();
    let default_known_hosts = |files: &mut Vec<PathBuf>| {
        if let Some(h) = &home {
            files.extend(["known_hosts", "known_hosts2"].map(|f| h.join(".ssh").join(f)));
        }
        files
            .extend(["ssh_known_hosts", "ssh_known_hosts2"].map(|f| Path::new("/etc/ssh").join(f)));
    };
    match id.auth {
        crate::config::Auth::SshKey {
            key_file,
            known_hosts,
            ..
        } => {
            files.push(rel(key_file));
            match known_hosts {
                Some(k) => files.push(rel(k)),
                // A pinned host key is in the temporary known_hosts; none: ssh's own files.
                None if !id.temp_files.is_empty() => files.extend(id.temp_files.iter().cloned()),
                None => default_known_hosts(&mut files),
            }
        }
        // ssh's default keys (and the agent, named by its socket).
        _ => {
            if let Some(h) = &home {
                for k in [
                    "id_rsa",
                    "id_ecdsa",
                    "id_ecdsa_sk",
                    "id_ed25519",
                    "id_ed25519_sk",
                    "id_dsa",
                ] {
                    files.push(h.join(".ssh").join(k));
                }
            }
            if let Some(agent) = std::env::var_os("SSH_AUTH_SOCK") {
                files.push(PathBuf::from(agent));
            }
            default_known_hosts(&mut files);
        }
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Auth;

    fn id<'a>(dir: &'a Path, auth: &'a Auth, url: &'a str, temp: &'a [PathBuf]) -> Identity<'a> {
        Identity {
            git_dir: dir,
            mirror: "m",
            url,
            auth,
            config_file: Path::new("/nonexistent/config.yaml"),
            temp_files: temp,
        }
    }

    fn ssh_env(cmd: &str) -> Vec<(String, String)> {
        vec![("GIT_SSH_COMMAND".to_string(), cmd.to_string())]
    }

    /// The socket a `share` made `GIT_SSH_COMMAND` use.
    fn socket_of(env: &[(String, String)]) -> String {
        let cmd = &env.iter().find(|(k, _)| k == "GIT_SSH_COMMAND").unwrap().1;
        let start = cmd.find("ControlPath='").unwrap() + "ControlPath='".len();
        cmd[start..start + cmd[start..].find('\'').unwrap()].to_string()
    }

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
        let auth = Auth::None;
        let i = id(dir, &auth, "ssh://h/r", &[]);
        let a =
            Mux::share(dir, &mut env, Duration::ZERO, &i, &[]).expect("a short, plain runtime dir");
        assert_eq!(env[0].1, "/bin/x");
        let cmd = &env[1].1;
        assert!(cmd.starts_with("ssh -o BatchMode=yes -o ControlMaster=auto -o ControlPath='"));
        let prefix = format!("{}/ssh-{}-", dir.display(), std::process::id());
        assert!(cmd.contains(&prefix), "{cmd}");
        assert!(
            cmd.ends_with(&format!("ControlPersist={PERSIST_SECS}")),
            "{cmd}"
        );
        // Probed and removed: ssh creates the socket itself.
        assert!(!a.socket.exists());
        // Without ssh_persist every sync gets its own master.
        let mut env2 = ssh_env("ssh");
        let b = Mux::share(dir, &mut env2, Duration::ZERO, &i, &[]).unwrap();
        assert_ne!(a.socket, b.socket);
    }

    #[test]
    fn a_lasting_master_is_found_again_by_the_same_connection_only() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let key = dir.join("key");
        let kh = dir.join("known_hosts");
        std::fs::write(&key, "KEY 1").unwrap();
        std::fs::write(&kh, "* ssh-ed25519 AAAA1").unwrap();
        let auth = Auth::SshKey {
            key_file: key.clone(),
            known_hosts: Some(kh.clone()),
            host_key: None,
        };
        let persist = Duration::from_millis(1500);
        let share = |auth: &Auth, url: &str, cmd: &str, temp: &[PathBuf]| {
            let mut env = ssh_env(cmd);
            let m = Mux::share(dir, &mut env, persist, &id(dir, auth, url, temp), &[]).unwrap();
            assert!(m.lasting);
            assert!(env[0].1.ends_with("ControlPersist=2"), "{}", env[0].1);
            socket_of(&env)
        };
        let first = share(&auth, "ssh://git@h:22/r", "ssh -i k", &[]);
        let name = Path::new(&first)
            .file_name()
            .unwrap()
            .to_string_lossy()
            .to_string();
        let owner = format!("mux-{}-", owner_tag(dir, "m"));
        assert!(
            name.starts_with(&owner) && name.len() == owner.len() + 16,
            "{name}"
        );
        // Same connection: same master.
        assert_eq!(share(&auth, "ssh://git@h:22/r", "ssh -i k", &[]), first);
        // Another user, host or port, another ssh command: another master.
        assert_ne!(share(&auth, "ssh://other@h:22/r", "ssh -i k", &[]), first);
        assert_ne!(share(&auth, "ssh://git@h:2222/r", "ssh -i k", &[]), first);
        assert_ne!(share(&auth, "ssh://git@h:22/r", "ssh -i k2", &[]), first);
        // A key or a host key changed in place: another master.
        std::fs::write(&key, "KEY 2").unwrap();
        let new_key = share(&auth, "ssh://git@h:22/r", "ssh -i k", &[]);
        assert_ne!(new_key, first);
        std::fs::write(&kh, "* ssh-ed25519 AAAA2").unwrap();
        assert_ne!(share(&auth, "ssh://git@h:22/r", "ssh -i k", &[]), new_key);
        // A pinned host key: its temporary file's name changes with every sync, its content
        // decides.
        let pinned = Auth::SshKey {
            key_file: key.clone(),
            known_hosts: None,
            host_key: Some("ssh-ed25519 AAAA".into()),
        };
        let (t1, t2) = (dir.join("known_hosts.1"), dir.join("known_hosts.2"));
        std::fs::write(&t1, "* ssh-ed25519 AAAA\n").unwrap();
        std::fs::write(&t2, "* ssh-ed25519 AAAA\n").unwrap();
        let cmd = |t: &Path| format!("ssh -o UserKnownHostsFile='{}'", t.display());
        let a = share(&pinned, "ssh://h/r", &cmd(&t1), std::slice::from_ref(&t1));
        assert_eq!(
            share(&pinned, "ssh://h/r", &cmd(&t2), std::slice::from_ref(&t2)),
            a
        );
        std::fs::write(&t2, "* ssh-ed25519 BBBB\n").unwrap();
        assert_ne!(
            share(&pinned, "ssh://h/r", &cmd(&t2), std::slice::from_ref(&t2)),
            a
        );
        // Another mirror or repository: another owner.
        assert_ne!(owner_tag(dir, "m"), owner_tag(dir, "n"));
        assert_ne!(owner_tag(dir, "m"), owner_tag(&dir.join("x"), "m"));
    }

    #[test]
    fn a_server_keeps_a_bounded_number_of_lasting_masters() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let auth = Auth::None;
        let persist = Duration::from_secs(60);
        // MAX_LASTING live masters (sockets something listens on): no room for another.
        let live: Vec<_> = (0..MAX_LASTING)
            .map(|n| {
                std::os::unix::net::UnixListener::bind(dir.join(format!("mux-x-{n}"))).unwrap()
            })
            .collect();
        let mut env = ssh_env("ssh");
        let m = Mux::share(
            dir,
            &mut env,
            persist,
            &id(dir, &auth, "ssh://h/r", &[]),
            &[],
        )
        .unwrap();
        assert!(!m.lasting, "{}", env[0].1);
        drop(m);
        // Masters that are gone leave room (and their sockets are removed).
        drop(live);
        let mut env = ssh_env("ssh");
        let m = Mux::share(
            dir,
            &mut env,
            persist,
            &id(dir, &auth, "ssh://h/r", &[]),
            &[],
        )
        .unwrap();
        assert!(m.lasting);
        assert!(!dir.join("mux-x-0").exists());
    }

    #[test]
    fn a_password_in_the_environment_never_outlives_the_sync() {
        let tmp = tempfile::tempdir().unwrap();
        let mut env = ssh_env("ssh");
        env.push(("GIT_PUSHMIRROR_PASSWORD".into(), "secret".into()));
        let auth = Auth::None;
        let m = Mux::share(
            tmp.path(),
            &mut env,
            Duration::from_secs(60),
            &id(tmp.path(), &auth, "ssh://h/r", &[]),
            &[],
        )
        .unwrap();
        assert!(!m.lasting);
        assert!(socket_of(&env).contains("/ssh-"));
    }

    #[test]
    fn close_mirror_ends_that_mirrors_masters_only() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let mine = dir.join(format!("mux-{}-0123456789abcdef", owner_tag(dir, "m")));
        let other = dir.join(format!("mux-{}-0123456789abcdef", owner_tag(dir, "n")));
        for s in [&mine, &other] {
            drop(std::os::unix::net::UnixListener::bind(s).unwrap());
        }
        assert_eq!(close_mirror(dir, dir, "m"), 1);
        assert!(!mine.exists() && other.exists());
        assert_eq!(close_mirror(&dir.join("absent"), dir, "m"), 0);
        // A runtime dir that is a symlink (to sockets of somebody else's) is not touched.
        drop(std::os::unix::net::UnixListener::bind(&mine).unwrap());
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(dir, &link).unwrap();
        let theirs = link.join(mine.file_name().unwrap());
        assert_eq!(close_mirror(&link, dir, "m"), 0);
        assert!(theirs.exists());
    }

    #[test]
    fn runtime_dirs_a_socket_cannot_use_leave_ssh_alone() {
        let auth = Auth::None;
        let i = id(Path::new("/tmp"), &auth, "ssh://h/r", &[]);
        for persist in [Duration::ZERO, Duration::from_secs(60)] {
            for dir in [
                format!("/{}", "d".repeat(100)),
                "/tmp/with blank".to_string(),
                "/tmp/%h".to_string(),
                "relative".to_string(),
            ] {
                let mut env = ssh_env("ssh");
                assert!(
                    Mux::share(Path::new(&dir), &mut env, persist, &i, &[]).is_none(),
                    "{dir}"
                );
                assert_eq!(env[0].1, "ssh");
            }
            let mut no_ssh = vec![("GIT_ASKPASS".to_string(), "x".to_string())];
            assert!(Mux::share(Path::new("/tmp"), &mut no_ssh, persist, &i, &[]).is_none());
            // A directory where no socket can be made (it does not exist): no master either.
            let mut env = ssh_env("ssh");
            assert!(Mux::share(
                Path::new("/nonexistent/pushmirror"),
                &mut env,
                persist,
                &i,
                &[]
            )
            .is_none());
            assert_eq!(env[0].1, "ssh");
        }
    }
}
