//! Credentials to a git child without leaking them.
//!
//! Secrets travel only through the child's environment: a password is handed to git by our
//! own binary acting as `GIT_ASKPASS` (and only for the mirror's own scheme, host and port, see
//! `askpass_answer` and `origin.rs`), and ssh gets a key path and strict host checking
//! through `GIT_SSH_COMMAND`. Nothing secret is put in argv (visible in `ps`), and every type
//! here that can hold a secret has a `Debug` that hides it.

use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

const MASK: &str = "*****";

use crate::config::Auth;

/// Why credentials could not be prepared. Variants carry paths and variable names, never a
/// secret's value. Messages have no "auth:" prefix; the sync that reports them adds it.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("password needs one of password, password_file or password_env")]
    NoPasswordSource,
    #[error("give only one of password, password_file or password_env")]
    ManyPasswordSources,
    #[error("username is empty or contains a control character")]
    BadUsername,
    #[error("inline password is empty")]
    EmptyInlinePassword,
    #[error("inline password (password: or in the URL) refused: {} has group/other permissions (mode {mode:04o}); run chmod 600 {} or use password_file / password_env", config.display(), config.display())]
    InlinePasswordInOpenConfig { config: PathBuf, mode: u32 },
    #[error("cannot check the mode of {} for its inline password: {source}", config.display())]
    ConfigStat { config: PathBuf, source: io::Error },
    #[error("cannot read password_file {}: {source}", path.display())]
    PasswordFileRead { path: PathBuf, source: io::Error },
    #[error("password_file {} has group/other permissions (mode {mode:04o}); run chmod 600 {}", path.display(), path.display())]
    PasswordFileMode { path: PathBuf, mode: u32 },
    #[error("password_file {} is empty", path.display())]
    PasswordFileEmpty { path: PathBuf },
    #[error("password_env is an empty variable name")]
    EmptyPasswordEnvName,
    #[error("password_env {var} is not set, empty or not UTF-8")]
    PasswordEnvUnset { var: String },
    #[error(
        "auth: the password from {origin} contains a line break or NUL; git would cut it there"
    )]
    PasswordHasLineBreak { origin: String },
    #[error("cannot read ssh key_file {}: {source}", path.display())]
    KeyFileRead { path: PathBuf, source: io::Error },
    #[error("ssh key_file {} is not a regular file", path.display())]
    KeyFileNotFile { path: PathBuf },
    #[error("ssh key_file {} has group/other permissions (mode {mode:04o}); run chmod 600 {}", path.display(), path.display())]
    KeyFileMode { path: PathBuf, mode: u32 },
    #[error("ssh key_file {} is protected by a passphrase, which the flusher cannot type (ssh runs without a terminal or agent); use a key without one (ssh-keygen -p -N '' -f {} removes it)", path.display(), path.display())]
    KeyHasPassphrase { path: PathBuf },
    #[error("ssh key_file {} is a public key; give the private key (the file without .pub)", path.display())]
    KeyIsPublic { path: PathBuf },
    #[error("cannot read known_hosts {}: {source}", path.display())]
    KnownHostsRead { path: PathBuf, source: io::Error },
    #[error("known_hosts {} is writable by group/others (mode {mode:04o}), so anyone could add a host key; run chmod 644 {}", path.display(), path.display())]
    KnownHostsWritable { path: PathBuf, mode: u32 },
    #[error("give known_hosts or host_key, not both")]
    KnownHostsAndHostKey,
    #[error("host_key must be one line 'KEYTYPE BASE64' as in 'ssh-ed25519 AAAA...', without a host name")]
    BadHostKey,
    #[error("{what} {} contains a character ssh would expand or split (whitespace, quote, backslash, '%' or '$'); use a plain path", path.display())]
    PathUnsafeForSsh { what: &'static str, path: PathBuf },
    #[error("{what} {} is not valid UTF-8; use a UTF-8 path", path.display())]
    PathNotUtf8 { what: &'static str, path: PathBuf },
    #[error("cannot resolve {what} {}: {source}", path.display())]
    PathResolve {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("cannot write a temporary known_hosts in runtime dir {}: {source}", dir.display())]
    TempKnownHosts { dir: PathBuf, source: io::Error },
}

/// What a git child needs: extra env vars (name, value) and the secrets to scrub from its
/// output. `temp_files` are the caller's to delete once the child is done.
pub struct GitAuth {
    pub env: Vec<(String, String)>,
    pub secrets: Vec<String>,
    pub temp_files: Vec<PathBuf>,
}

impl fmt::Debug for GitAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(name, value)| {
                let secret = self
                    .secrets
                    .iter()
                    .any(|s| !s.is_empty() && value.contains(s.as_str()));
                (name.as_str(), if secret { MASK } else { value.as_str() })
            })
            .collect();
        f.debug_struct("GitAuth")
            .field("env", &env)
            .field("secrets", &format_args!("[{} hidden]", self.secrets.len()))
            .field("temp_files", &self.temp_files)
            .finish()
    }
}

/// Resolves secrets. `config_file` is the config the auth came from; an inline `password` is
/// only accepted when that file's mode has no group/other bits (0600), a password_file must
/// not be group/world readable, password_env must be set and non-empty. Exactly one of
/// password/password_file/password_env must be given. Relative paths are taken relative to
/// the directory of `config_file`.
///
/// `askpass_exe` is the path of our own binary: for Password auth it becomes GIT_ASKPASS and
/// answers from GIT_PUSHMIRROR_USERNAME/GIT_PUSHMIRROR_PASSWORD (env only, never argv), and
/// credential.helper is emptied through GIT_CONFIG_COUNT so no stored helper answers instead.
///
/// Every variant sets GIT_SSH_COMMAND with `-F /dev/null` (no ssh_config of the flusher's user
/// or the system), BatchMode=yes and StrictHostKeyChecking=yes: the
/// URL is not known here, git ignores the variable for non-ssh URLs, and an ssh mirror must
/// never prompt. SshKey adds the key, IdentitiesOnly, no agent and the known_hosts file; a
/// pinned host_key is written to a temporary known_hosts (mode 0600) in `runtime_dir`.
/// `timeout_secs` becomes ssh's ConnectTimeout.
pub fn prepare(
    auth: &Auth,
    config_file: &Path,
    askpass_exe: &Path,
    runtime_dir: &Path,
    timeout_secs: u64,
) -> Result<GitAuth, AuthError> {
    prepare_with_env(
        auth,
        config_file,
        askpass_exe,
        runtime_dir,
        timeout_secs,
        &|name| std::env::var(name).ok(),
    )
}

/// `prepare` with the environment passed in, so tests need not mutate the process env.
fn prepare_with_env(
    auth: &Auth,
    config_file: &Path,
    askpass_exe: &Path,
    runtime_dir: &Path,
    timeout_secs: u64,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<GitAuth, AuthError> {
    let connect_timeout = timeout_secs.max(1);
    match auth {
        Auth::None => Ok(GitAuth {
            env: vec![ssh_command_env(None, None, connect_timeout)],
            secrets: Vec::new(),
            temp_files: Vec::new(),
        }),
        Auth::Password {
            username,
            password,
            password_file,
            password_env,
        } => {
            if username.is_empty() || username.chars().any(char::is_control) {
                return Err(AuthError::BadUsername);
            }
            let secret = resolve_password(
                config_file,
                password.as_deref(),
                password_file.as_deref(),
                password_env.as_deref(),
                env,
            )?;
            let askpass = utf8(askpass_exe, "askpass program")?;
            let pairs = [
                ("GIT_ASKPASS", askpass),
                ("GIT_PUSHMIRROR_ASKPASS", "1"),
                ("GIT_PUSHMIRROR_USERNAME", username.as_str()),
                ("GIT_PUSHMIRROR_PASSWORD", secret.as_str()),
                // An empty value resets git's list of helpers, so a helper configured for
                // the server user cannot answer with other credentials or store ours.
                ("GIT_CONFIG_COUNT", "1"),
                ("GIT_CONFIG_KEY_0", "credential.helper"),
                ("GIT_CONFIG_VALUE_0", ""),
            ];
            let mut vars: Vec<(String, String)> = pairs
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect();
            vars.push(ssh_command_env(None, None, connect_timeout));
            Ok(GitAuth {
                env: vars,
                secrets: vec![secret],
                temp_files: Vec::new(),
            })
        }
        Auth::SshKey {
            key_file,
            known_hosts,
            host_key,
        } => {
            let key = absolute(config_file, key_file, "ssh key_file")?;
            ssh_safe(&key, "ssh key_file")?;
            check_key_file(&key)?;
            let (known_hosts, temp_files) = match (known_hosts, host_key) {
                (Some(_), Some(_)) => return Err(AuthError::KnownHostsAndHostKey),
                (Some(path), None) => {
                    let path = absolute(config_file, path, "known_hosts")?;
                    ssh_safe(&path, "known_hosts")?;
                    check_known_hosts(&path)?;
                    (Some(path), Vec::new())
                }
                (None, Some(line)) => {
                    let path = write_pinned_known_hosts(runtime_dir, line)?;
                    (Some(path.clone()), vec![path])
                }
                // ssh's own ~/.ssh/known_hosts and /etc/ssh/ssh_known_hosts, still strict.
                (None, None) => (None, Vec::new()),
            };
            let command = ssh_command_env(Some(&key), known_hosts.as_deref(), connect_timeout);
            Ok(GitAuth {
                env: vec![command],
                secrets: Vec::new(),
                temp_files,
            })
        }
    }
}

fn resolve_password(
    config_file: &Path,
    inline: Option<&str>,
    file: Option<&Path>,
    env_name: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, AuthError> {
    let given = [inline.is_some(), file.is_some(), env_name.is_some()];
    match given.iter().filter(|g| **g).count() {
        0 => return Err(AuthError::NoPasswordSource),
        1 => {}
        _ => return Err(AuthError::ManyPasswordSources),
    }
    let (secret, origin) = if let Some(secret) = inline {
        if secret.is_empty() {
            return Err(AuthError::EmptyInlinePassword);
        }
        let mode = fs::metadata(config_file)
            .map_err(|source| AuthError::ConfigStat {
                config: config_file.to_path_buf(),
                source,
            })?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(AuthError::InlinePasswordInOpenConfig {
                config: config_file.to_path_buf(),
                mode: mode & 0o7777,
            });
        }
        (secret.to_string(), "the inline password".to_string())
    } else if let Some(path) = file {
        let path = absolute(config_file, path, "password_file")?;
        let secret = read_password_file(&path)?;
        (secret, format!("password_file {}", path.display()))
    } else if let Some(name) = env_name {
        if name.is_empty() {
            return Err(AuthError::EmptyPasswordEnvName);
        }
        let secret =
            env(name)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| AuthError::PasswordEnvUnset {
                    var: name.to_string(),
                })?;
        (secret, format!("password_env {name}"))
    } else {
        return Err(AuthError::NoPasswordSource);
    };
    // git keeps only the first line of what askpass prints, and env values cannot hold NUL.
    if secret.contains(['\n', '\r', '\0']) {
        return Err(AuthError::PasswordHasLineBreak { origin });
    }
    Ok(secret)
}

fn read_password_file(path: &Path) -> Result<String, AuthError> {
    let read_err = |source| AuthError::PasswordFileRead {
        path: path.to_path_buf(),
        source,
    };
    let mut file = fs::File::open(path).map_err(read_err)?;
    // The mode is taken from the open file, so it is the file that is then read.
    let mode = file.metadata().map_err(read_err)?.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(AuthError::PasswordFileMode {
            path: path.to_path_buf(),
            mode: mode & 0o7777,
        });
    }
    let mut secret = String::new();
    file.read_to_string(&mut secret).map_err(read_err)?;
    // `echo token > file` leaves a newline that is not part of the token.
    let secret = secret.trim_end_matches(['\n', '\r']).to_string();
    if secret.is_empty() {
        return Err(AuthError::PasswordFileEmpty {
            path: path.to_path_buf(),
        });
    }
    Ok(secret)
}

/// What `add` and `set` check before they write a mirror: every file and value its sync would
/// refuse, without reading a secret. A missing or group/other-readable key or password file, a
/// passphrase-protected key, a missing or writable known_hosts file and a malformed host_key
/// are refused here, with the same message the sync would give. Not checked: an inline
/// password's config mode (the file is written afterwards) and `password_env` (the admin's
/// shell is not the flusher's environment). A key the admin cannot read (it belongs to the
/// flusher's user) is not opened for the passphrase check.
pub fn check_files(auth: &Auth, config_file: &Path) -> Result<(), AuthError> {
    match auth {
        Auth::None => Ok(()),
        Auth::Password {
            username,
            password,
            password_file,
            password_env,
        } => {
            if username.is_empty() || username.chars().any(char::is_control) {
                return Err(AuthError::BadUsername);
            }
            let given = [
                password.is_some(),
                password_file.is_some(),
                password_env.is_some(),
            ];
            match given.iter().filter(|g| **g).count() {
                0 => return Err(AuthError::NoPasswordSource),
                1 => {}
                _ => return Err(AuthError::ManyPasswordSources),
            }
            if password_env.as_deref().is_some_and(str::is_empty) {
                return Err(AuthError::EmptyPasswordEnvName);
            }
            let Some(file) = password_file else {
                return Ok(());
            };
            let path = absolute(config_file, file, "password_file")?;
            let meta = fs::metadata(&path).map_err(|source| AuthError::PasswordFileRead {
                path: path.clone(),
                source,
            })?;
            let mode = meta.permissions().mode();
            if mode & 0o077 != 0 {
                return Err(AuthError::PasswordFileMode {
                    path,
                    mode: mode & 0o7777,
                });
            }
            if !meta.is_file() {
                return Err(AuthError::PasswordFileRead {
                    path,
                    source: io::Error::other("not a regular file"),
                });
            }
            if meta.len() == 0 {
                return Err(AuthError::PasswordFileEmpty { path });
            }
            Ok(())
        }
        Auth::SshKey {
            key_file,
            known_hosts,
            host_key,
        } => {
            let key = absolute(config_file, key_file, "ssh key_file")?;
            ssh_safe(&key, "ssh key_file")?;
            check_not_public(&key)?;
            check_key_mode(&key)?;
            match check_key_passphrase(&key) {
                Err(AuthError::KeyFileRead { source, .. })
                    if source.kind() == io::ErrorKind::PermissionDenied => {}
                other => other?,
            }
            match (known_hosts, host_key) {
                (Some(_), Some(_)) => Err(AuthError::KnownHostsAndHostKey),
                (Some(path), None) => {
                    let path = absolute(config_file, path, "known_hosts")?;
                    ssh_safe(&path, "known_hosts")?;
                    check_known_hosts(&path)
                }
                (None, Some(line)) => pinned_line(line).map(|_| ()),
                (None, None) => Ok(()),
            }
        }
    }
}

/// A key ssh could not use without someone typing its passphrase: ssh runs with
/// BatchMode=yes and no agent, so it would only say "Permission denied (publickey)".
fn check_key_passphrase(path: &Path) -> Result<(), AuthError> {
    let read_err = |source| AuthError::KeyFileRead {
        path: path.to_path_buf(),
        source,
    };
    let mut text = String::new();
    fs::File::open(path)
        .map_err(read_err)?
        .take(1 << 16)
        .read_to_string(&mut text)
        .map_err(read_err)?;
    if key_is_encrypted(&text) {
        return Err(AuthError::KeyHasPassphrase {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// True for a private key in OpenSSH's format whose cipher is not "none", and for PEM keys
/// marked encrypted (`Proc-Type: 4,ENCRYPTED`, `BEGIN ENCRYPTED PRIVATE KEY`).
fn key_is_encrypted(text: &str) -> bool {
    if text.contains("Proc-Type: 4,ENCRYPTED") || text.contains("BEGIN ENCRYPTED PRIVATE KEY") {
        return true;
    }
    const BEGIN: &str = "-----BEGIN OPENSSH PRIVATE KEY-----";
    let Some(start) = text.find(BEGIN) else {
        return false;
    };
    let body: String = text[start + BEGIN.len()..]
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    // "openssh-key-v1\0", then the cipher name as a u32 length and its bytes.
    let head = base64_prefix(&body, 64);
    const MAGIC: &[u8] = b"openssh-key-v1\0";
    let Some(rest) = head.strip_prefix(MAGIC) else {
        return false;
    };
    let Some(len) = rest.get(..4) else {
        return false;
    };
    let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
    rest.get(4..4 + len).is_some_and(|cipher| cipher != b"none")
}

/// The first bytes (about `max`) that standard base64 `text` decodes to; stops at the first
/// character that is not base64.
fn base64_prefix(text: &str, max: usize) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let Some(v) = value(c) else { break };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
        if out.len() >= max {
            break;
        }
    }
    out
}

/// A public key given as key_file (the `.pub` next to it, an easy slip): ssh would only say
/// "Permission denied (publickey)", and a mode complaint first would send the admin to chmod
/// it. A file that cannot be read is left to the other checks.
fn check_not_public(path: &Path) -> Result<(), AuthError> {
    let mut head = String::new();
    let Ok(f) = fs::File::open(path) else {
        return Ok(());
    };
    if f.take(1 << 16).read_to_string(&mut head).is_err() {
        return Ok(());
    }
    let first = head.lines().map(str::trim).find(|l| !l.is_empty());
    let public = first.is_some_and(|l| {
        let mut f = l.split_whitespace();
        let (t, blob) = (f.next().unwrap_or(""), f.next().unwrap_or(""));
        (t.starts_with("ssh-") || t.starts_with("ecdsa-") || t.starts_with("sk-"))
            && blob.starts_with("AAAA")
    }) || head.contains("-----BEGIN SSH2 PUBLIC KEY-----");
    if public && !head.contains("PRIVATE KEY") {
        return Err(AuthError::KeyIsPublic {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

fn check_key_file(path: &Path) -> Result<(), AuthError> {
    check_not_public(path)?;
    check_key_mode(path)?;
    check_key_passphrase(path)
}

fn check_key_mode(path: &Path) -> Result<(), AuthError> {
    let meta = fs::metadata(path).map_err(|source| AuthError::KeyFileRead {
        path: path.to_path_buf(),
        source,
    })?;
    if !meta.is_file() {
        return Err(AuthError::KeyFileNotFile {
            path: path.to_path_buf(),
        });
    }
    let mode = meta.permissions().mode();
    // The same rule ssh applies before it will use a key; failing here names the fix.
    if mode & 0o077 != 0 {
        return Err(AuthError::KeyFileMode {
            path: path.to_path_buf(),
            mode: mode & 0o7777,
        });
    }
    Ok(())
}

fn check_known_hosts(path: &Path) -> Result<(), AuthError> {
    let meta = fs::metadata(path).map_err(|source| AuthError::KnownHostsRead {
        path: path.to_path_buf(),
        source,
    })?;
    let mode = meta.permissions().mode();
    if mode & 0o022 != 0 {
        return Err(AuthError::KnownHostsWritable {
            path: path.to_path_buf(),
            mode: mode & 0o7777,
        });
    }
    Ok(())
}

/// `* <type> <base64>`: any host the mirror URL names must present exactly this key.
fn write_pinned_known_hosts(runtime_dir: &Path, host_key: &str) -> Result<PathBuf, AuthError> {
    let line = pinned_line(host_key)?;
    // The file name added below is plain, so a safe directory makes a safe path.
    ssh_safe(runtime_dir, "runtime dir")?;
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let path = runtime_dir.join(format!(
        "known_hosts.{}.{}.{}",
        std::process::id(),
        nanos,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let temp_err = |source| AuthError::TempKnownHosts {
        dir: runtime_dir.to_path_buf(),
        source,
    };
    // create_new is O_EXCL: it neither reuses a file nor follows a planted symlink.
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(temp_err)?;
    // No fsync: the file lives for one sync, read by its ssh children through the page cache,
    // and is worthless after a crash.
    if let Err(source) = file.write_all(line.as_bytes()) {
        let _ = fs::remove_file(&path);
        return Err(temp_err(source));
    }
    Ok(path)
}

fn pinned_line(host_key: &str) -> Result<String, AuthError> {
    let host_key = host_key.trim();
    if host_key.chars().any(|c| c.is_control() && c != '\t') {
        return Err(AuthError::BadHostKey);
    }
    let mut fields = host_key.split_whitespace();
    let (Some(key_type), Some(blob)) = (fields.next(), fields.next()) else {
        return Err(AuthError::BadHostKey);
    };
    // Requiring a known key-type prefix also refuses "@cert-authority"/"@revoked" markers
    // and a pasted "host keytype key" known_hosts line.
    let type_ok = ["ssh-", "ecdsa-", "sk-"]
        .iter()
        .any(|p| key_type.starts_with(p))
        && key_type
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '@'));
    let blob_ok = blob
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '='));
    if !type_ok || !blob_ok {
        return Err(AuthError::BadHostKey);
    }
    // The comment, if any, is dropped: it is not needed and is free text.
    Ok(format!("* {key_type} {blob}\n"))
}

fn ssh_command_env(
    key: Option<&Path>,
    known_hosts: Option<&Path>,
    connect_timeout: u64,
) -> (String, String) {
    // `-F /dev/null`: neither ~/.ssh/config of the flusher's user nor /etc/ssh/ssh_config
    // applies (an IdentityFile there would be offered next to ours, a ProxyCommand run), so
    // the mirror's own settings below are all ssh uses.
    let mut cmd = String::from("ssh -F /dev/null");
    if let Some(key) = key {
        cmd.push_str(" -i ");
        cmd.push_str(&sh_quote(&key.to_string_lossy()));
        // Only this key: not ~/.ssh/id_*, not whatever an agent offers.
        cmd.push_str(" -o IdentitiesOnly=yes -o IdentityAgent=none");
    }
    cmd.push_str(" -o BatchMode=yes -o StrictHostKeyChecking=yes");
    if let Some(path) = known_hosts {
        cmd.push_str(" -o UserKnownHostsFile=");
        cmd.push_str(&sh_quote(&path.to_string_lossy()));
    }
    cmd.push_str(&format!(" -o ConnectTimeout={connect_timeout}"));
    ("GIT_SSH_COMMAND".to_string(), cmd)
}

/// Adds `key = value` to the git configuration a child gets through GIT_CONFIG_COUNT /
/// GIT_CONFIG_KEY_n / GIT_CONFIG_VALUE_n (command-line scope: it beats every config file, and
/// it stays out of argv), after the entries already in `env`.
pub fn add_git_config(env: &mut Vec<(String, String)>, key: &str, value: &str) {
    let n: usize = env
        .iter()
        .find(|(k, _)| k == "GIT_CONFIG_COUNT")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    env.retain(|(k, _)| k != "GIT_CONFIG_COUNT");
    env.push((format!("GIT_CONFIG_KEY_{n}"), key.to_string()));
    env.push((format!("GIT_CONFIG_VALUE_{n}"), value.to_string()));
    env.push(("GIT_CONFIG_COUNT".to_string(), (n + 1).to_string()));
}

/// POSIX single quotes: git runs GIT_SSH_COMMAND through `sh -c`.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// ssh expands `%` tokens, `${VAR}` and `~` in -i and UserKnownHostsFile, and splits option
/// values on blanks and quotes, so a path with those would name another file. Shell quoting
/// cannot protect against that; refusing such paths can.
fn ssh_safe<'a>(path: &'a Path, what: &'static str) -> Result<&'a str, AuthError> {
    let s = utf8(path, what)?;
    let bad =
        |c: char| c.is_whitespace() || c.is_control() || matches!(c, '\'' | '"' | '\\' | '%' | '$');
    if s.chars().any(bad) {
        return Err(AuthError::PathUnsafeForSsh {
            what,
            path: path.to_path_buf(),
        });
    }
    Ok(s)
}

fn utf8<'a>(path: &'a Path, what: &'static str) -> Result<&'a str, AuthError> {
    path.to_str().ok_or_else(|| AuthError::PathNotUtf8 {
        what,
        path: path.to_path_buf(),
    })
}

/// Relative paths are read from the config file's directory, and the result is absolute so
/// no path handed to ssh can begin with '-' or '~'.
fn absolute(config_file: &Path, path: &Path, what: &'static str) -> Result<PathBuf, AuthError> {
    let joined = match config_file.parent() {
        Some(dir) if path.is_relative() => dir.join(path),
        _ => path.to_path_buf(),
    };
    std::path::absolute(&joined).map_err(|source| AuthError::PathResolve {
        what,
        path: joined,
        source,
    })
}

/// The first words of every line the askpass face writes when it refuses a prompt: git passes
/// its stderr through, and `git::last_line` prefers this line to git's own "terminal prompts
/// disabled".
pub const ASKPASS_REFUSED: &str = "git-pushmirror: refused to give the mirror's credentials";

/// The askpass face: given the prompt git passes as argv[1] ("Username for 'https://host': "
/// or "Password for 'https://user@host': "), returns what to print from the GIT_PUSHMIRROR_*
/// env vars. Only git's own two prompts are answered, and only for the mirror itself: the
/// URL in the prompt must have the scheme, host and port of GIT_PUSHMIRROR_URL (see
/// `origin::belongs_to_mirror`), and a password prompt must name our user. A redirect to
/// another host or a proxy asking for its password gets `Err` with one line saying why (to
/// stderr, where git's error output shows it); anything else gets `Err("")` (no answer).
pub fn askpass_answer(
    prompt: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    if env("GIT_PUSHMIRROR_ASKPASS").as_deref() != Some("1") {
        return Err(String::new());
    }
    // Anything else (an ssh passphrase or host-key question) gets no answer, so a prompt we
    // did not expect fails instead of receiving the password.
    let (var, described) = if let Some(rest) = prompt.strip_prefix("Username for '") {
        ("GIT_PUSHMIRROR_USERNAME", rest)
    } else if let Some(rest) = prompt.strip_prefix("Password for '") {
        ("GIT_PUSHMIRROR_PASSWORD", rest)
    } else {
        return Err(String::new());
    };
    let Some(described) = described.strip_suffix("': ") else {
        return Err(String::new());
    };
    let mirror = env("GIT_PUSHMIRROR_URL").unwrap_or_default();
    let Some((mirror_origin, _)) = super::origin::Origin::parse(&mirror) else {
        return Err(String::new());
    };
    let refuse = |why: &str| {
        Err(format!(
            "{ASKPASS_REFUSED} to {} ({why}; they go only to {mirror_origin}, the host of the mirror's URL: a redirect to another host or a proxy asked; see docs/security.md)",
            crate::url::mask(described)
        ))
    };
    if !super::origin::belongs_to_mirror(&mirror, described) {
        return refuse("another scheme, host or port");
    }
    let user = super::origin::Origin::parse(described).and_then(|(_, user)| user);
    let username = env("GIT_PUSHMIRROR_USERNAME").unwrap_or_default();
    match (var, user) {
        ("GIT_PUSHMIRROR_USERNAME", Some(_)) => return refuse("a user is already named"),
        ("GIT_PUSHMIRROR_PASSWORD", Some(u)) if u != username => {
            return refuse("another user");
        }
        ("GIT_PUSHMIRROR_PASSWORD", None) => return refuse("no user named"),
        _ => {}
    }
    env(var).filter(|v| !v.is_empty()).ok_or_else(String::new)
}

/// Common env for every git child, applied after removing the returned names: no terminal
/// prompts, only the allowed transports (GIT_ALLOW_PROTOCOL also covers submodules and
/// redirects), no credential manager UI, and a stalled transfer aborted after
/// `timeout_secs` below 1000 bytes/s. Inherited askpass programs and the ssh agent are
/// removed so nothing but `prepare`'s choices can answer.
pub fn base_env(allow_http: bool, timeout_secs: u64) -> (Vec<(String, String)>, Vec<String>) {
    let protocols = if allow_http {
        "https:ssh:git:file:http"
    } else {
        "https:ssh:git:file"
    };
    let set = [
        ("GIT_TERMINAL_PROMPT", "0".to_string()),
        ("GIT_ALLOW_PROTOCOL", protocols.to_string()),
        ("GCM_INTERACTIVE", "never".to_string()),
        ("GIT_HTTP_LOW_SPEED_LIMIT", "1000".to_string()),
        // 0 would disable curl's check altogether.
        ("GIT_HTTP_LOW_SPEED_TIME", timeout_secs.max(1).to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let remove = [
        "SSH_ASKPASS",
        "GIT_ASKPASS",
        "SSH_AUTH_SOCK",
        // Stale answers from an outer environment must not reach a child that did not ask.
        "GIT_PUSHMIRROR_ASKPASS",
        "GIT_PUSHMIRROR_USERNAME",
        "GIT_PUSHMIRROR_PASSWORD",
        "GIT_PUSHMIRROR_URL",
        // Which proxy a sync uses is git's configuration alone (see `proxy_config`), not
        // whatever the process that pushed happened to carry.
        "http_proxy",
        "HTTP_PROXY",
        "https_proxy",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
        "no_proxy",
        "NO_PROXY",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    (set, remove)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::value::{Error as DeError, MapDeserializer};
    use serde::de::{Deserialize, IntoDeserializer};
    use std::collections::HashMap;

    const SECRET: &str = "ghp_S3cretT0ken";

    /// A fresh directory per test; removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> TempDir {
            static N: AtomicU64 = AtomicU64::new(0);
            let dir = std::env::temp_dir().join(format!(
                "pushmirror-auth-test-{}-{}-{tag}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        fn file(&self, name: &str, content: &str, mode: u32) -> PathBuf {
            let path = self.0.join(name);
            fs::write(&path, content).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            path
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn password(inline: Option<&str>, file: Option<&Path>, env: Option<&str>) -> Auth {
        Auth::Password {
            username: "oauth2".into(),
            password: inline.map(String::from),
            password_file: file.map(Path::to_path_buf),
            password_env: env.map(String::from),
        }
    }

    fn run(auth: &Auth, dir: &TempDir, config_mode: u32) -> Result<GitAuth, AuthError> {
        let config = dir.file("config.yaml", "mirrors: []\n", config_mode);
        prepare_with_env(
            auth,
            &config,
            Path::new("/usr/bin/git-pushmirror"),
            &dir.0,
            30,
            &|name| (name == "MIRROR_TOKEN").then(|| SECRET.to_string()),
        )
    }

    fn env_of(git: &GitAuth) -> HashMap<&str, &str> {
        git.env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    fn assert_no_secret(err: &AuthError) {
        assert!(!err.to_string().contains(SECRET), "{err}");
        assert!(!format!("{err:?}").contains(SECRET), "{err:?}");
        assert!(!err.to_string().contains('\n'), "{err}");
    }

    fn de(pairs: &[(&str, &str)]) -> Result<Auth, DeError> {
        let map: MapDeserializer<'_, _, DeError> = MapDeserializer::new(
            pairs
                .iter()
                .map(|&(k, v)| (k.into_deserializer(), v.into_deserializer())),
        );
        Auth::deserialize(map)
    }

    #[test]
    fn inline_password_needs_a_0600_config() {
        let dir = TempDir::new("inline");
        let auth = password(Some(SECRET), None, None);
        let git = run(&auth, &dir, 0o600).unwrap();
        let env = env_of(&git);
        assert_eq!(env["GIT_ASKPASS"], "/usr/bin/git-pushmirror");
        assert_eq!(env["GIT_PUSHMIRROR_ASKPASS"], "1");
        assert_eq!(env["GIT_PUSHMIRROR_USERNAME"], "oauth2");
        assert_eq!(env["GIT_PUSHMIRROR_PASSWORD"], SECRET);
        assert_eq!(env["GIT_CONFIG_COUNT"], "1");
        assert_eq!(env["GIT_CONFIG_KEY_0"], "credential.helper");
        assert_eq!(env["GIT_CONFIG_VALUE_0"], "");
        assert!(env["GIT_SSH_COMMAND"].contains("BatchMode=yes"));
        assert_eq!(git.secrets, vec![SECRET.to_string()]);
        assert!(git.temp_files.is_empty());

        for mode in [0o640, 0o604, 0o644, 0o660, 0o610] {
            let err = run(&auth, &dir, mode).err().unwrap();
            assert!(
                matches!(err, AuthError::InlinePasswordInOpenConfig { .. }),
                "{mode:o}: {err}"
            );
            let msg = err.to_string();
            assert!(
                msg.contains("config.yaml") && msg.contains("chmod 600"),
                "{msg}"
            );
            assert_no_secret(&err);
        }
        assert!(run(&auth, &dir, 0o400).is_ok());
    }

    #[test]
    fn inline_password_with_missing_config_is_refused() {
        let dir = TempDir::new("noconfig");
        let err = prepare_with_env(
            &password(Some(SECRET), None, None),
            &dir.0.join("absent.yaml"),
            Path::new("/bin/x"),
            &dir.0,
            30,
            &no_env,
        )
        .err()
        .unwrap();
        assert!(matches!(err, AuthError::ConfigStat { .. }), "{err}");
        assert_no_secret(&err);
    }

    #[test]
    fn password_file_must_be_private() {
        let dir = TempDir::new("pwfile");
        let file = dir.file("token", &format!("{SECRET}\n"), 0o600);
        let auth = password(None, Some(&file), None);
        let git = run(&auth, &dir, 0o644).unwrap();
        assert_eq!(env_of(&git)["GIT_PUSHMIRROR_PASSWORD"], SECRET);
        assert_eq!(git.secrets, vec![SECRET.to_string()]);

        for mode in [0o640, 0o644, 0o604, 0o660] {
            fs::set_permissions(&file, fs::Permissions::from_mode(mode)).unwrap();
            let err = run(&auth, &dir, 0o600).err().unwrap();
            assert!(matches!(err, AuthError::PasswordFileMode { .. }), "{err}");
            let msg = err.to_string();
            assert!(
                msg.contains(&file.display().to_string()) && msg.contains("chmod 600"),
                "{msg}"
            );
            assert_no_secret(&err);
        }
    }

    #[test]
    fn password_file_relative_to_config_dir() {
        let dir = TempDir::new("pwrel");
        dir.file("token", &format!("{SECRET}\r\n"), 0o600);
        let auth = password(None, Some(Path::new("token")), None);
        let git = run(&auth, &dir, 0o644).unwrap();
        assert_eq!(env_of(&git)["GIT_PUSHMIRROR_PASSWORD"], SECRET);
    }

    #[test]
    fn password_file_problems_are_named() {
        let dir = TempDir::new("pwbad");
        let missing = dir.0.join("missing");
        let err = run(&password(None, Some(&missing), None), &dir, 0o600)
            .err()
            .unwrap();
        assert!(matches!(err, AuthError::PasswordFileRead { .. }), "{err}");
        assert!(err.to_string().contains("missing"));

        let empty = dir.file("empty", "\n", 0o600);
        let err = run(&password(None, Some(&empty), None), &dir, 0o600)
            .err()
            .unwrap();
        assert!(matches!(err, AuthError::PasswordFileEmpty { .. }), "{err}");

        let two_lines = dir.file("two", &format!("{SECRET}\nsecond\n"), 0o600);
        let err = run(&password(None, Some(&two_lines), None), &dir, 0o600)
            .err()
            .unwrap();
        assert!(
            matches!(err, AuthError::PasswordHasLineBreak { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("two"));
        assert_no_secret(&err);
    }

    #[test]
    fn password_env_must_be_set_and_non_empty() {
        let dir = TempDir::new("pwenv");
        let git = run(&password(None, None, Some("MIRROR_TOKEN")), &dir, 0o644).unwrap();
        assert_eq!(env_of(&git)["GIT_PUSHMIRROR_PASSWORD"], SECRET);

        let err = run(&password(None, None, Some("UNSET_TOKEN")), &dir, 0o644)
            .err()
            .unwrap();
        assert!(matches!(err, AuthError::PasswordEnvUnset { .. }), "{err}");
        assert!(err.to_string().contains("UNSET_TOKEN"));

        let config = dir.file("c.yaml", "", 0o644);
        let err = prepare_with_env(
            &password(None, None, Some("EMPTY")),
            &config,
            Path::new("/x"),
            &dir.0,
            30,
            &|_| Some(String::new()),
        )
        .err()
        .unwrap();
        assert!(matches!(err, AuthError::PasswordEnvUnset { .. }), "{err}");

        let err = run(&password(None, None, Some("")), &dir, 0o644)
            .err()
            .unwrap();
        assert!(matches!(err, AuthError::EmptyPasswordEnvName), "{err}");
    }

    #[test]
    fn exactly_one_password_source() {
        let dir = TempDir::new("pwone");
        let file = dir.file("token", SECRET, 0o600);
        let err = run(&password(None, None, None), &dir, 0o600).err().unwrap();
        assert!(matches!(err, AuthError::NoPasswordSource), "{err}");
        for auth in [
            password(Some(SECRET), Some(&file), None),
            password(Some(SECRET), None, Some("MIRROR_TOKEN")),
            password(None, Some(&file), Some("MIRROR_TOKEN")),
            password(Some(SECRET), Some(&file), Some("MIRROR_TOKEN")),
        ] {
            let err = run(&auth, &dir, 0o600).err().unwrap();
            assert!(matches!(err, AuthError::ManyPasswordSources), "{err}");
            assert_no_secret(&err);
        }
    }

    #[test]
    fn bad_usernames_and_passwords_are_refused() {
        let dir = TempDir::new("pwbadval");
        for username in ["", "oauth2\n", "a\0b"] {
            let auth = Auth::Password {
                username: username.into(),
                password: Some(SECRET.into()),
                password_file: None,
                password_env: None,
            };
            let err = run(&auth, &dir, 0o600).err().unwrap();
            assert!(matches!(err, AuthError::BadUsername), "{err}");
        }
        let err = run(&password(Some(""), None, None), &dir, 0o600)
            .err()
            .unwrap();
        assert!(matches!(err, AuthError::EmptyInlinePassword), "{err}");
        let with_newline = format!("{SECRET}\nx");
        let err = run(&password(Some(&with_newline), None, None), &dir, 0o600)
            .err()
            .unwrap();
        assert!(
            matches!(err, AuthError::PasswordHasLineBreak { .. }),
            "{err}"
        );
        assert_no_secret(&err);
    }

    #[test]
    fn ssh_key_with_known_hosts() {
        let dir = TempDir::new("sshkh");
        let key = dir.file("id_ed25519", "KEY", 0o600);
        let kh = dir.file("known_hosts", "host ssh-ed25519 AAAA\n", 0o644);
        let auth = Auth::SshKey {
            key_file: key.clone(),
            known_hosts: Some(kh.clone()),
            host_key: None,
        };
        let git = run(&auth, &dir, 0o644).unwrap();
        assert_eq!(
            env_of(&git)["GIT_SSH_COMMAND"],
            format!(
                "ssh -F /dev/null -i '{}' -o IdentitiesOnly=yes -o IdentityAgent=none -o BatchMode=yes \
                 -o StrictHostKeyChecking=yes -o UserKnownHostsFile='{}' -o ConnectTimeout=30",
                key.display(),
                kh.display()
            )
        );
        assert_eq!(git.env.len(), 1);
        assert!(git.secrets.is_empty());
        assert!(git.temp_files.is_empty());
    }

    #[test]
    fn ssh_key_paths_relative_to_config_dir() {
        let dir = TempDir::new("sshrel");
        dir.file("id", "KEY", 0o400);
        let auth = Auth::SshKey {
            key_file: "id".into(),
            known_hosts: None,
            host_key: None,
        };
        let git = run(&auth, &dir, 0o644).unwrap();
        let cmd = env_of(&git)["GIT_SSH_COMMAND"].to_string();
        assert!(
            cmd.starts_with(&format!(
                "ssh -F /dev/null -i '{}' ",
                dir.0.join("id").display()
            )),
            "{cmd}"
        );
        assert!(!cmd.contains("UserKnownHostsFile"), "{cmd}");
        assert!(cmd.contains("StrictHostKeyChecking=yes"));
    }

    #[test]
    fn ssh_key_must_be_private_and_present() {
        let dir = TempDir::new("sshkey");
        let key = dir.file("id", "KEY", 0o600);
        let auth = Auth::SshKey {
            key_file: key.clone(),
            known_hosts: None,
            host_key: None,
        };
        for mode in [0o640, 0o644, 0o604, 0o700 | 0o010] {
            fs::set_permissions(&key, fs::Permissions::from_mode(mode)).unwrap();
            let err = run(&auth, &dir, 0o644).err().unwrap();
            assert!(matches!(err, AuthError::KeyFileMode { .. }), "{err}");
            let msg = err.to_string();
            assert!(msg.contains("chmod 600") && msg.contains("/id"), "{msg}");
        }
        let auth = Auth::SshKey {
            key_file: dir.0.join("nope"),
            known_hosts: None,
            host_key: None,
        };
        let err = run(&auth, &dir, 0o644).err().unwrap();
        assert!(matches!(err, AuthError::KeyFileRead { .. }), "{err}");
        let auth = Auth::SshKey {
            key_file: dir.0.clone(),
            known_hosts: None,
            host_key: None,
        };
        let err = run(&auth, &dir, 0o644).err().unwrap();
        assert!(matches!(err, AuthError::KeyFileNotFile { .. }), "{err}");
    }

    #[test]
    fn known_hosts_problems() {
        let dir = TempDir::new("khbad");
        let key = dir.file("id", "KEY", 0o600);
        let kh = dir.file("kh", "", 0o666);
        let auth = |known_hosts: PathBuf, host_key: Option<&str>| Auth::SshKey {
            key_file: key.clone(),
            known_hosts: Some(known_hosts),
            host_key: host_key.map(String::from),
        };
        let err = run(&auth(kh.clone(), None), &dir, 0o644).err().unwrap();
        assert!(matches!(err, AuthError::KnownHostsWritable { .. }), "{err}");
        let err = run(&auth(dir.0.join("absent"), None), &dir, 0o644)
            .err()
            .unwrap();
        assert!(matches!(err, AuthError::KnownHostsRead { .. }), "{err}");
        let err = run(&auth(kh, Some("ssh-ed25519 AAAA")), &dir, 0o644)
            .err()
            .unwrap();
        assert!(matches!(err, AuthError::KnownHostsAndHostKey), "{err}");
    }

    #[test]
    fn pinned_host_key_goes_to_a_private_temp_file() {
        let dir = TempDir::new("pin");
        let key = dir.file("id", "KEY", 0o600);
        let auth = Auth::SshKey {
            key_file: key,
            known_hosts: None,
            host_key: Some("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMq user@laptop\n".into()),
        };
        let git = run(&auth, &dir, 0o644).unwrap();
        assert_eq!(git.temp_files.len(), 1);
        let temp = &git.temp_files[0];
        assert!(temp.starts_with(&dir.0));
        assert_eq!(
            fs::read_to_string(temp).unwrap(),
            "* ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMq\n"
        );
        let mode = fs::metadata(temp).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let cmd = env_of(&git)["GIT_SSH_COMMAND"].to_string();
        assert!(
            cmd.contains(&format!("-o UserKnownHostsFile='{}'", temp.display())),
            "{cmd}"
        );

        let again = run(&auth, &dir, 0o644).unwrap();
        assert_ne!(again.temp_files, git.temp_files);

        for path in git.temp_files.iter().chain(&again.temp_files) {
            fs::remove_file(path).unwrap();
        }
    }

    #[test]
    fn pinned_host_key_is_validated() {
        for bad in [
            "",
            "AAAA",
            "github.com ssh-ed25519 AAAA",
            "@cert-authority * ssh-ed25519 AAAA",
            "@revoked ssh-ed25519 AAAA",
            "ssh-ed25519 AAAA\n* ssh-rsa BBBB",
            "ssh-ed25519 AA\"AA",
            "ssh-ed25519 AAAA\0",
            "rsa AAAA",
        ] {
            assert!(
                matches!(pinned_line(bad), Err(AuthError::BadHostKey)),
                "{bad:?}"
            );
        }
        for (good, line) in [
            ("ssh-ed25519 AAAA", "* ssh-ed25519 AAAA\n"),
            ("  ssh-rsa AB+/c==  \r\n", "* ssh-rsa AB+/c==\n"),
            (
                "ecdsa-sha2-nistp256 AAAAE2 comment here",
                "* ecdsa-sha2-nistp256 AAAAE2\n",
            ),
            (
                "sk-ssh-ed25519@openssh.com AAAA",
                "* sk-ssh-ed25519@openssh.com AAAA\n",
            ),
        ] {
            assert_eq!(pinned_line(good).unwrap(), line);
        }
    }

    #[test]
    fn bad_host_key_leaves_no_temp_file() {
        let dir = TempDir::new("pinbad");
        let key = dir.file("id", "KEY", 0o600);
        let auth = Auth::SshKey {
            key_file: key,
            known_hosts: None,
            host_key: Some("github.com ssh-ed25519 AAAA".into()),
        };
        assert!(run(&auth, &dir, 0o644).is_err());
        let left: Vec<_> = fs::read_dir(&dir.0)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with("known_hosts."))
            .collect();
        assert!(left.is_empty());
    }

    #[test]
    fn missing_runtime_dir_is_named() {
        let dir = TempDir::new("nort");
        let key = dir.file("id", "KEY", 0o600);
        let config = dir.file("c.yaml", "", 0o644);
        let auth = Auth::SshKey {
            key_file: key,
            known_hosts: None,
            host_key: Some("ssh-ed25519 AAAA".into()),
        };
        let err = prepare_with_env(
            &auth,
            &config,
            Path::new("/x"),
            &dir.0.join("run"),
            5,
            &no_env,
        )
        .err()
        .unwrap();
        assert!(matches!(err, AuthError::TempKnownHosts { .. }), "{err}");
        assert!(err.to_string().contains("run"));
    }

    #[test]
    fn ssh_hostile_paths_are_refused_before_any_temp_file() {
        let dir = TempDir::new("sshpath");
        for name in ["id key", "id%d", "id$HOME", "id'q", "id\"q", "id\\q"] {
            let key = dir.file(name, "KEY", 0o600);
            let auth = Auth::SshKey {
                key_file: key,
                known_hosts: None,
                host_key: Some("ssh-ed25519 AAAA".into()),
            };
            let err = run(&auth, &dir, 0o644).err().unwrap();
            assert!(
                matches!(err, AuthError::PathUnsafeForSsh { .. }),
                "{name}: {err}"
            );
        }
        let left = fs::read_dir(&dir.0)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with("known_hosts."))
            .count();
        assert_eq!(left, 0);
    }

    #[test]
    fn shell_quoting() {
        assert_eq!(sh_quote("/a/b"), "'/a/b'");
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
        assert_eq!(sh_quote("$(x) `y` ;z"), "'$(x) `y` ;z'");
    }

    #[test]
    fn none_still_refuses_prompts_for_ssh() {
        let dir = TempDir::new("none");
        let git = run(&Auth::None, &dir, 0o644).unwrap();
        assert_eq!(
            git.env,
            vec![(
                "GIT_SSH_COMMAND".to_string(),
                "ssh -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=yes -o ConnectTimeout=30"
                    .to_string()
            )]
        );
        assert!(git.secrets.is_empty() && git.temp_files.is_empty());
    }

    #[test]
    fn zero_timeout_does_not_disable_timeouts() {
        let dir = TempDir::new("zero");
        let config = dir.file("c.yaml", "", 0o644);
        let git =
            prepare_with_env(&Auth::None, &config, Path::new("/x"), &dir.0, 0, &no_env).unwrap();
        assert!(git.env[0].1.ends_with("ConnectTimeout=1"));
        let (set, _) = base_env(false, 0);
        assert!(set.contains(&("GIT_HTTP_LOW_SPEED_TIME".into(), "1".into())));
    }

    #[test]
    fn askpass_answers_git_prompts_only() {
        let vars = |name: &str| match name {
            "GIT_PUSHMIRROR_ASKPASS" => Some("1".to_string()),
            "GIT_PUSHMIRROR_USERNAME" => Some("oauth2".to_string()),
            "GIT_PUSHMIRROR_PASSWORD" => Some(SECRET.to_string()),
            "GIT_PUSHMIRROR_URL" => Some("https://gitlab.example/g/r.git".to_string()),
            _ => None,
        };
        let answer = |prompt: &str| askpass_answer(prompt, &vars);
        assert_eq!(
            answer("Username for 'https://gitlab.example': ").as_deref(),
            Ok("oauth2")
        );
        assert_eq!(
            answer("Password for 'https://oauth2@gitlab.example': ").as_deref(),
            Ok(SECRET)
        );
        // credential.useHttpPath adds the path; an explicit default port is the same port.
        assert_eq!(
            answer("Password for 'https://oauth2@gitlab.example:443/g/r.git': ").as_deref(),
            Ok(SECRET)
        );
        for silent in [
            "Enter passphrase for key '/k': ",
            "Are you sure you want to continue connecting (yes/no)? ",
            "",
            "Password for 'https://oauth2@gitlab.example'",
        ] {
            assert_eq!(answer(silent), Err(String::new()), "{silent}");
        }
        // A proxy with a user but no password, a redirect to another host, port or scheme,
        // another user: refused, with a line that says so and never the secret.
        for foreign in [
            "Password for 'http://proxyuser@127.0.0.1:3128': ",
            "Password for 'https://proxyuser@proxy.example': ",
            "Username for 'https://evil.example': ",
            "Username for 'https://gitlab.example:8443': ",
            "Username for 'http://gitlab.example': ",
            "Password for 'https://oauth2@gitlab.example.evil.test': ",
            "Password for 'https://other@gitlab.example': ",
            "Password for 'https://gitlab.example': ",
            "Username for 'ssh://gitlab.example': ",
        ] {
            let err = answer(foreign).unwrap_err();
            assert!(err.starts_with(ASKPASS_REFUSED), "{foreign}: {err}");
            assert!(err.contains("https://gitlab.example:443"), "{err}");
            assert!(!err.contains(SECRET) && !err.contains('\n'), "{err}");
        }
        // Without the mirror's URL nothing is answered at all.
        let no_url = |name: &str| (name != "GIT_PUSHMIRROR_URL").then(|| vars(name)).flatten();
        assert_eq!(
            askpass_answer("Password for 'https://oauth2@gitlab.example': ", &no_url),
            Err(String::new())
        );
        assert_eq!(
            askpass_answer("Password for 'https://h': ", &no_env),
            Err(String::new())
        );
        let not_ours = |name: &str| {
            (name != "GIT_PUSHMIRROR_ASKPASS")
                .then(|| vars(name))
                .flatten()
        };
        assert_eq!(
            askpass_answer("Password for 'https://oauth2@gitlab.example': ", &not_ours),
            Err(String::new())
        );
        let unset_password = |name: &str| {
            (name != "GIT_PUSHMIRROR_PASSWORD")
                .then(|| vars(name))
                .flatten()
        };
        assert_eq!(
            askpass_answer(
                "Password for 'https://oauth2@gitlab.example': ",
                &unset_password
            ),
            Err(String::new())
        );
    }

    #[test]
    fn passphrase_protected_keys_are_recognised() {
        let openssh = |line: &str| {
            format!("-----BEGIN OPENSSH PRIVATE KEY-----\n{line}\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n")
        };
        // The first line of `ssh-keygen -t ed25519` keys without and with a passphrase.
        let plain =
            openssh("b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW");
        let locked =
            openssh("b3BlbnNzaC1rZXktdjEAAAAACmFlczI1Ni1jdHIAAAAGYmNyeXB0AAAAGAAAABD24W7K1O");
        assert!(!key_is_encrypted(&plain));
        assert!(key_is_encrypted(&locked));
        assert!(key_is_encrypted(
            "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,AB\n"
        ));
        assert!(key_is_encrypted(
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIE\n"
        ));
        assert!(!key_is_encrypted("-----BEGIN RSA PRIVATE KEY-----\nMIIE\n"));
        assert!(!key_is_encrypted("KEY"));

        let dir = TempDir::new("passphrase");
        let key = dir.file("id", &locked, 0o600);
        let auth = Auth::SshKey {
            key_file: key.clone(),
            known_hosts: None,
            host_key: None,
        };
        let err = run(&auth, &dir, 0o644).err().unwrap();
        assert!(matches!(err, AuthError::KeyHasPassphrase { .. }), "{err}");
        assert!(err.to_string().contains("passphrase") && err.to_string().contains("/id"));
        let err = check_files(&auth, &dir.0.join("c.yaml")).unwrap_err();
        assert!(matches!(err, AuthError::KeyHasPassphrase { .. }), "{err}");
        fs::write(&key, &plain).unwrap();
        check_files(&auth, &dir.0.join("c.yaml")).unwrap();
    }

    #[test]
    fn check_files_refuses_what_a_sync_would() {
        let dir = TempDir::new("checkfiles");
        let config = dir.0.join("c.yaml");
        let key = dir.file("id", "KEY", 0o600);
        let kh = dir.file("kh", "", 0o644);
        let ssh =
            |key_file: &Path, known_hosts: Option<&Path>, host_key: Option<&str>| Auth::SshKey {
                key_file: key_file.to_path_buf(),
                known_hosts: known_hosts.map(Path::to_path_buf),
                host_key: host_key.map(String::from),
            };
        check_files(&ssh(&key, Some(&kh), None), &config).unwrap();
        check_files(&ssh(&key, None, Some("ssh-ed25519 AAAA")), &config).unwrap();
        check_files(&Auth::None, &config).unwrap();
        let refused = [
            ssh(&dir.0.join("absent"), None, None),
            ssh(&key, Some(&dir.0.join("absent")), None),
            ssh(&key, None, Some("garbage")),
            ssh(&key, None, Some("ssh-ed25519 AAAA\nssh-rsa BBBB")),
            ssh(&key, Some(&kh), Some("ssh-ed25519 AAAA")),
        ];
        for auth in &refused {
            assert!(check_files(auth, &config).is_err(), "{auth:?}");
        }
        fs::set_permissions(&key, fs::Permissions::from_mode(0o640)).unwrap();
        assert!(matches!(
            check_files(&ssh(&key, None, None), &config),
            Err(AuthError::KeyFileMode { .. })
        ));
        fs::set_permissions(&kh, fs::Permissions::from_mode(0o664)).unwrap();
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(
            check_files(&ssh(&key, Some(&kh), None), &config),
            Err(AuthError::KnownHostsWritable { .. })
        ));

        let pw = dir.file("pw", SECRET, 0o600);
        let by_file = |p: &Path| password(None, Some(p), None);
        check_files(&by_file(&pw), &config).unwrap();
        // The admin's shell is not the flusher's environment: an unset variable is fine here.
        check_files(&password(None, None, Some("NOT_SET_HERE")), &config).unwrap();
        fs::set_permissions(&pw, fs::Permissions::from_mode(0o604)).unwrap();
        let err = check_files(&by_file(&pw), &config).unwrap_err();
        assert!(matches!(err, AuthError::PasswordFileMode { .. }), "{err}");
        assert_no_secret(&err);
        let empty = dir.file("empty", "", 0o600);
        assert!(matches!(
            check_files(&by_file(&empty), &config),
            Err(AuthError::PasswordFileEmpty { .. })
        ));
        assert!(matches!(
            check_files(&by_file(&dir.0.join("absent")), &config),
            Err(AuthError::PasswordFileRead { .. })
        ));
        assert!(matches!(
            check_files(&password(None, None, None), &config),
            Err(AuthError::NoPasswordSource)
        ));
    }

    #[test]
    fn git_config_entries_add_up() {
        let mut env = vec![
            ("GIT_CONFIG_COUNT".to_string(), "1".to_string()),
            (
                "GIT_CONFIG_KEY_0".to_string(),
                "credential.helper".to_string(),
            ),
            ("GIT_CONFIG_VALUE_0".to_string(), String::new()),
        ];
        add_git_config(&mut env, "http.proxy", "");
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        assert_eq!(get("GIT_CONFIG_COUNT").as_deref(), Some("2"));
        assert_eq!(get("GIT_CONFIG_KEY_1").as_deref(), Some("http.proxy"));
        assert_eq!(get("GIT_CONFIG_VALUE_1").as_deref(), Some(""));
        assert_eq!(
            env.iter().filter(|(k, _)| k == "GIT_CONFIG_COUNT").count(),
            1
        );
        let mut fresh = Vec::new();
        add_git_config(&mut fresh, "a.b", "c");
        assert_eq!(fresh.last().unwrap().1, "1");
        assert_eq!(
            fresh[0],
            ("GIT_CONFIG_KEY_0".to_string(), "a.b".to_string())
        );
    }

    #[test]
    fn base_env_locks_git_down() {
        let (set, remove) = base_env(false, 42);
        let get = |k: &str| set.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("GIT_TERMINAL_PROMPT"), Some("0"));
        assert_eq!(get("GIT_ALLOW_PROTOCOL"), Some("https:ssh:git:file"));
        assert_eq!(get("GCM_INTERACTIVE"), Some("never"));
        assert_eq!(get("GIT_HTTP_LOW_SPEED_LIMIT"), Some("1000"));
        assert_eq!(get("GIT_HTTP_LOW_SPEED_TIME"), Some("42"));
        for var in [
            "SSH_ASKPASS",
            "GIT_ASKPASS",
            "SSH_AUTH_SOCK",
            "https_proxy",
            "HTTPS_PROXY",
            "http_proxy",
            "all_proxy",
            "GIT_PUSHMIRROR_URL",
        ] {
            assert!(remove.iter().any(|r| r == var), "{var}");
        }
        let (set, _) = base_env(true, 42);
        assert!(set.contains(&(
            "GIT_ALLOW_PROTOCOL".into(),
            "https:ssh:git:file:http".into()
        )));
    }

    #[test]
    fn debug_never_shows_secrets() {
        let auth = password(Some(SECRET), None, None);
        let shown = format!("{auth:?}");
        assert!(!shown.contains(SECRET), "{shown}");
        assert!(shown.contains("oauth2") && shown.contains(MASK), "{shown}");
        assert!(!format!("{auth:#?}").contains(SECRET));

        let dir = TempDir::new("debug");
        let git = run(&auth, &dir, 0o600).unwrap();
        let shown = format!("{git:?}");
        assert!(!shown.contains(SECRET), "{shown}");
        assert!(shown.contains("GIT_PUSHMIRROR_PASSWORD"), "{shown}");
        assert!(shown.contains("1 hidden"), "{shown}");
    }

    #[test]
    fn errors_are_one_line_without_secrets() {
        let errors = [
            AuthError::NoPasswordSource,
            AuthError::ManyPasswordSources,
            AuthError::BadUsername,
            AuthError::EmptyInlinePassword,
            AuthError::InlinePasswordInOpenConfig {
                config: "/c.yaml".into(),
                mode: 0o644,
            },
            AuthError::PasswordFileMode {
                path: "/t".into(),
                mode: 0o644,
            },
            AuthError::PasswordEnvUnset { var: "V".into() },
            AuthError::PasswordHasLineBreak {
                origin: "password_env V".into(),
            },
            AuthError::BadHostKey,
            AuthError::KnownHostsAndHostKey,
        ];
        for err in &errors {
            assert_no_secret(err);
        }
        assert!(errors[4].to_string().contains("mode 0644"));
    }

    #[test]
    fn deserializes_strictly() {
        assert_eq!(de(&[("method", "none")]).unwrap(), Auth::None);
        assert_eq!(
            de(&[
                ("method", "password"),
                ("username", "oauth2"),
                ("password_env", "TOKEN")
            ])
            .unwrap(),
            password(None, None, Some("TOKEN"))
        );
        assert_eq!(
            de(&[
                ("method", "ssh_key"),
                ("key_file", "/k"),
                ("host_key", "ssh-ed25519 AAAA")
            ])
            .unwrap(),
            Auth::SshKey {
                key_file: "/k".into(),
                known_hosts: None,
                host_key: Some("ssh-ed25519 AAAA".into()),
            }
        );
        // A password left next to `method: none` is a mistake, not something to ignore.
        assert!(de(&[("method", "none"), ("password", "x")]).is_err());
        assert!(de(&[("method", "password"), ("username", "u"), ("pasword", "x")]).is_err());
        assert!(de(&[("method", "ssh_key")]).is_err());
        assert!(de(&[("method", "token")]).is_err());
        assert!(de(&[("username", "u")]).is_err());
    }
}
