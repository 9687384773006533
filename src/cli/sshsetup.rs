//! Setting an SSH mirror up, GitLab style: a generated key pair per mirror (the public key is
//! printed for a deploy key) and host-key detection (`ssh-keyscan`, SHA256 fingerprints, pinned
//! in a known_hosts file next to the key).
//!
//! Files, all under `pushmirror/keys/` (mode 0700) of the repository, or under `keys/` next to
//! the server-wide config for a rule's shared key:
//! `NAME` (private key, 0600, never printed), `NAME.pub` (0644), `NAME.known_hosts` (0644).
//! The config refers to them relative to its own directory (`keys/NAME`), so a repository can
//! be moved with its keys.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use base64::Engine;
use sha2::{Digest, Sha256};

use super::*;

/// Where generated files live, relative to the directory of the config that names them.
pub(super) const KEYS_DIR: &str = "keys";

pub(super) const DEPLOY_KEY_HINT: &str =
    "add it as a deploy key with write access on the mirror's host (GitHub/GitLab/Gitea: repository settings > Deploy keys)";

/// `keys/NAME`, `keys/NAME.pub`, `keys/NAME.known_hosts` relative to the config's directory.
pub(super) fn key_rel(name: &str) -> PathBuf {
    Path::new(KEYS_DIR).join(name)
}
fn known_hosts_rel(name: &str) -> PathBuf {
    Path::new(KEYS_DIR).join(format!("{name}.known_hosts"))
}
fn pub_of(key: &Path) -> PathBuf {
    let mut s = key.as_os_str().to_owned();
    s.push(".pub");
    PathBuf::from(s)
}

/// A name whose files would be another mirror's: `keys/a.pub` is mirror `a`'s public key and
/// would be mirror `a.pub`'s private key (likewise `.known_hosts`).
fn refuse_colliding_name(name: &str) -> Result<(), Fail> {
    if name.ends_with(".pub") || name.ends_with(".known_hosts") {
        return Err(usage(format!(
            "mirror `{name}`: a name ending in .pub or .known_hosts would share files under keys/ with mirror `{}`; rename it (remove and add) to generate a key or pin host keys",
            name.trim_end_matches(".pub").trim_end_matches(".known_hosts")
        )));
    }
    Ok(())
}

/// `base/keys`, created 0700.
fn ensure_keys_dir(base: &Path) -> Result<PathBuf, Fail> {
    let dir = base.join(KEYS_DIR);
    // A symlinked keys/ would put the private key wherever it points.
    crate::paths::refuse_symlink(&dir).map_err(|e| Fail(1, e.to_string()))?;
    fs::create_dir_all(&dir).map_err(|e| Fail(1, format!("{}: {e}", dir.display())))?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
        .map_err(|e| Fail(1, format!("{}: {e}", dir.display())))?;
    Ok(dir)
}

fn program_fail(program: &str, e: std::io::Error) -> Fail {
    if e.kind() == std::io::ErrorKind::NotFound {
        Fail(
            1,
            format!("{program} not found in PATH (install openssh-client)"),
        )
    } else {
        Fail(1, format!("{program}: {e}"))
    }
}

/// Creates an ed25519 key pair (no passphrase) at `base/keys/NAME` and returns the public key
/// line. The pair is made under temporary names and renamed into place, so an existing pair is
/// replaced only by a complete new one, and ssh-keygen never asks "Overwrite?".
pub(super) fn generate_key(base: &Path, name: &str, comment: &str) -> Result<String, Fail> {
    refuse_colliding_name(name)?;
    let dir = ensure_keys_dir(base)?;
    let key = dir.join(name);
    let tmp = dir.join(format!(".{name}.new.{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    let _ = fs::remove_file(pub_of(&tmp));
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(&tmp)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| program_fail("ssh-keygen", e))?;
    let cleanup = || {
        let _ = fs::remove_file(&tmp);
        let _ = fs::remove_file(pub_of(&tmp));
    };
    if !out.status.success() {
        cleanup();
        return Err(Fail(
            1,
            format!(
                "ssh-keygen failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ));
    }
    let result = (|| -> std::io::Result<String> {
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600))?;
        fs::set_permissions(pub_of(&tmp), fs::Permissions::from_mode(0o644))?;
        let public = fs::read_to_string(pub_of(&tmp))?.trim().to_string();
        fs::rename(pub_of(&tmp), pub_of(&key))?;
        fs::rename(&tmp, &key)?;
        Ok(public)
    })();
    cleanup();
    result.map_err(|e| Fail(1, format!("{}: {e}", key.display())))
}

/// Deletes what `generate_key` and `pin` made for `name` (absent files are fine).
pub(super) fn remove_files(base: &Path, name: &str) {
    // `keys/a.pub` of a mirror named `a.pub` is mirror `a`'s public key: never made for it.
    if refuse_colliding_name(name).is_err() {
        return;
    }
    // Nothing is deleted through a symlinked keys/.
    if crate::paths::refuse_symlink(&base.join(KEYS_DIR)).is_err() {
        return;
    }
    for rel in [key_rel(name), pub_of(&key_rel(name)), known_hosts_rel(name)] {
        let _ = fs::remove_file(base.join(rel));
    }
}

pub(super) fn key_comment(paths: &RepoPaths, name: &str) -> String {
    format!("git-pushmirror {name} {}", paths.git_dir.display())
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// The auth of a mirror after `keygen`: the generated key, keeping a host-key pin it had.
pub(super) fn auth_with_key(old: &Auth, name: &str) -> Auth {
    let (known_hosts, host_key) = match old {
        Auth::SshKey {
            known_hosts,
            host_key,
            ..
        } => (known_hosts.clone(), host_key.clone()),
        _ => (None, None),
    };
    Auth::SshKey {
        key_file: key_rel(name),
        known_hosts,
        host_key,
    }
}

/// Prints the public key and what to do with it (the private key is never printed).
pub(super) fn print_public_key(public: &str) {
    println!("{public}");
    println!("hint: {DEPLOY_KEY_HINT}");
}

/// `keygen NAME`: a new key pair for a repository's mirror (an existing one is replaced: key
/// rotation), and `auth` switched to it. `keygen --rule NAME`: a key shared by every
/// repository a server rule applies to, next to the server-wide config; the rule is edited by
/// hand, so the line to add is printed.
pub(super) fn keygen(paths: Option<&RepoPaths>, name: &str, rule: bool) -> Result<i32, Fail> {
    if rule {
        config::validate_name(name).map_err(usage)?;
        let (server, server_path) = config::ServerConfig::load()?;
        let base = server_path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        if !server.rules.iter().any(|r| r.name == name) {
            eprintln!(
                "git-pushmirror: note: {} has no rule `{name}` yet",
                server_path.display()
            );
        }
        let public = generate_key(&base, name, &format!("git-pushmirror rule {name}"))?;
        eprintln!(
            "generated {} for rule {name}; in {}, give the rule:\n  auth: {{method: ssh_key, key_file: {}}}",
            base.join(key_rel(name)).display(),
            server_path.display(),
            key_rel(name).display()
        );
        print_public_key(&public);
        return Ok(0);
    }
    let paths = paths.ok_or_else(|| usage("keygen needs a repository (or --rule)"))?;
    let loaded = config::load(paths)?;
    let e = find_mirror(paths, &loaded, name)?;
    if from_rule(&loaded, e) {
        return Err(usage(format!(
            "mirror `{name}` comes from a server rule: its key is shared by the rule (`git-pushmirror keygen --rule {name}`)"
        )));
    }
    check_ssh_url(&e.mirror.url, name)?;
    let public = generate_key(&paths.dir, name, &key_comment(paths, name))?;
    edit(paths, name, |cfg| {
        for m in cfg.mirrors.iter_mut().filter(|m| m.name == name) {
            m.auth = auth_with_key(&m.auth, name);
        }
        Ok(())
    })?;
    // The key file was replaced in place: a connection made with the old key goes.
    close_connections(paths, &loaded, name);
    eprintln!(
        "generated a new ed25519 key pair for mirror {name} ({})",
        crate::text::one_line(&crate::text::path_text(&paths.dir.join(key_rel(name))))
    );
    print_public_key(&public);
    Ok(0)
}

pub(super) fn check_ssh_url(u: &str, name: &str) -> Result<(), Fail> {
    if ssh_host_port(u).is_none() {
        return Err(usage(format!(
            "mirror `{name}`: an SSH key needs an ssh:// or user@host:path URL"
        )));
    }
    Ok(())
}

/// Host and port of an SSH URL (`ssh://[user@]host[:port]/path`, git's `git+ssh://` and
/// `ssh+git://`, or scp-like `[user@]host:path`), as ssh-keyscan and known_hosts want them.
pub(super) fn ssh_host_port(u: &str) -> Option<(String, Option<u16>)> {
    let rest = ["ssh://", "git+ssh://", "ssh+git://"]
        .iter()
        .find_map(|p| u.strip_prefix(p));
    let (hostport, scp) = match rest {
        Some(rest) => {
            let authority = rest.split('/').next()?;
            let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            (hostport.to_string(), false)
        }
        None => {
            if url::validate(u, false) != Ok(url::Scheme::Ssh) {
                return None;
            }
            // scp-like: everything before the first ':' outside brackets, without the user.
            let mut depth = 0;
            let colon = u.char_indices().find(|(_, c)| {
                match c {
                    '[' => depth += 1,
                    ']' => depth -= 1,
                    ':' if depth == 0 => return true,
                    _ => {}
                }
                false
            })?;
            let head = &u[..colon.0];
            let head = head.trim_start_matches('[').trim_end_matches(']');
            let host = head.rsplit_once('@').map_or(head, |(_, h)| h);
            // `[user@host:port]:path` carries a port.
            match host.rsplit_once(':') {
                Some((h, p)) if !h.contains(':') => {
                    return Some((h.to_string(), p.parse().ok()));
                }
                _ => (host.to_string(), true),
            }
        }
    };
    if scp {
        return Some((hostport.trim_matches(['[', ']']).to_string(), None));
    }
    if let Some(v6) = hostport.strip_prefix('[') {
        let (h, after) = v6.split_once(']')?;
        let port = after.strip_prefix(':').and_then(|p| p.parse().ok());
        return Some((h.to_string(), port));
    }
    match hostport.rsplit_once(':') {
        Some((h, p)) => Some((h.to_string(), p.parse().ok())),
        None => Some((hostport, None)),
    }
    .filter(|(h, _)| !h.is_empty())
}

/// One host key as fetched or pinned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct HostKey {
    /// The known_hosts line: `host keytype base64`.
    pub line: String,
    pub key_type: String,
    /// `SHA256:...`, as `ssh-keygen -l` and GitHub's published fingerprints write it.
    pub fingerprint: String,
}

/// Parses known_hosts text (`ssh-keyscan` output, or a pinned file); comments, markers
/// (`@cert-authority`) and lines it cannot read are left out.
pub(super) fn parse_known_hosts(text: &str) -> Vec<HostKey> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            if l.is_empty() || l.starts_with('#') || l.starts_with('@') {
                return None;
            }
            let mut f = l.split_whitespace();
            let (_host, key_type, blob) = (f.next()?, f.next()?, f.next()?);
            Some(HostKey {
                line: l.to_string(),
                key_type: key_type.to_string(),
                fingerprint: fingerprint(blob)?,
            })
        })
        .collect()
}

/// `SHA256:` + unpadded base64 of the SHA-256 of the key blob.
pub(super) fn fingerprint(blob_b64: &str) -> Option<String> {
    let blob = base64_decode(blob_b64)?;
    Some(format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(Sha256::digest(&blob))
    ))
}

/// Standard base64 with or without `=` padding (known_hosts blobs have it, fingerprints as
/// `ssh-keygen -l` prints them do not).
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    use base64::engine::{general_purpose, DecodePaddingMode, GeneralPurpose};
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        general_purpose::NO_PAD.with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    LENIENT.decode(s).ok()
}

/// Normalises an admin's `SHA256:...` (padding and the prefix's case do not matter).
fn normalise_fingerprint(fp: &str) -> Result<String, Fail> {
    let fp = fp.trim();
    let body = fp
        .strip_prefix("SHA256:")
        .or_else(|| fp.strip_prefix("sha256:"))
        .ok_or_else(|| {
            usage(format!(
                "--host-key-fingerprint `{fp}` must be SHA256:... as `ssh-keygen -lf` prints it (MD5 fingerprints are not accepted)"
            ))
        })?
        .trim_end_matches('=');
    if body.len() != 43 || base64_decode(body).is_none() {
        return Err(usage(format!(
            "--host-key-fingerprint `{fp}` is not a SHA256 fingerprint (43 base64 characters after SHA256:)"
        )));
    }
    Ok(format!("SHA256:{body}"))
}

/// Fetches the host keys of an SSH URL's host with `ssh-keyscan` (the URL's port).
pub(super) fn scan(u: &str, timeout_secs: u64) -> Result<Vec<HostKey>, Fail> {
    let (host, port) = ssh_host_port(u)
        .ok_or_else(|| usage("host-key detection needs an ssh:// or user@host:path URL"))?;
    let mut cmd = Command::new("ssh-keyscan");
    cmd.arg("-T").arg(timeout_secs.max(1).to_string());
    if let Some(p) = port {
        cmd.arg("-p").arg(p.to_string());
    }
    // The URL policy already refuses a host starting with '-'; `--` is belt and braces.
    let out = cmd
        .arg("--")
        .arg(&host)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| program_fail("ssh-keyscan", e))?;
    let keys = parse_known_hosts(&String::from_utf8_lossy(&out.stdout));
    let where_ = match port {
        Some(p) => format!("{host} port {p}"),
        None => host.clone(),
    };
    if keys.is_empty() {
        let err = String::from_utf8_lossy(&out.stderr);
        let why = err
            .lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_string)
            .unwrap_or_else(|| why_no_key(&host, port.unwrap_or(22), timeout_secs.max(1)));
        return Err(Fail(
            1,
            format!("ssh-keyscan got no host key from {where_}: {why}"),
        ));
    }
    Ok(keys)
}

/// ssh-keyscan says nothing when it cannot connect: one TCP connection tells a refused port
/// from a silent one and from a server that answered with no SSH host key.
fn why_no_key(host: &str, port: u16, timeout_secs: u64) -> String {
    use std::net::{TcpStream, ToSocketAddrs};
    let check = "check the host and port in the mirror's URL";
    let addrs: Vec<_> = match (host, port).to_socket_addrs() {
        Ok(a) => a.collect(),
        Err(e) => return format!("cannot resolve {host}: {e}; {check}"),
    };
    let mut last = None;
    for addr in &addrs {
        match TcpStream::connect_timeout(addr, Duration::from_secs(timeout_secs)) {
            Ok(_) => {
                return format!(
                    "port {port} accepts connections but sent no SSH host key (is it an SSH server?); {check}"
                )
            }
            Err(e) => last = Some(e),
        }
    }
    match last {
        Some(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            format!("connection refused: no SSH server listens on port {port}; {check}")
        }
        Some(e) if e.kind() == std::io::ErrorKind::TimedOut => format!(
            "no answer within {timeout_secs} s (a firewall, or the wrong host or port); {check}"
        ),
        Some(e) => format!("cannot connect: {e}; {check}"),
        None => format!("{host} has no address; {check}"),
    }
}

/// Fetches, prints and pins the host keys of mirror `name`'s host into
/// `base/keys/NAME.known_hosts`; with `expected` fingerprints, only matching keys are pinned,
/// and none matching is an error (nothing is written). Returns the known_hosts path relative to
/// `base`.
pub(super) fn detect_and_pin(
    base: &Path,
    name: &str,
    u: &str,
    expected: &[String],
) -> Result<PathBuf, Fail> {
    refuse_colliding_name(name)?;
    let expected: Vec<String> = expected
        .iter()
        .map(|f| normalise_fingerprint(f))
        .collect::<Result<_, _>>()?;
    let keys = scan(u, 15)?;
    let (host, port) = ssh_host_port(u).unwrap_or_default();
    let where_ = match port {
        Some(p) => format!("{host} port {p}"),
        None => host,
    };
    println!("host keys of {where_}:");
    for k in &keys {
        println!("  {} {}", k.fingerprint, k.key_type);
    }
    let pinned: Vec<&HostKey> = if expected.is_empty() {
        keys.iter().collect()
    } else {
        keys.iter()
            .filter(|k| expected.contains(&k.fingerprint))
            .collect()
    };
    if pinned.is_empty() {
        return Err(Fail(
            1,
            format!(
                "no host key of {where_} has the fingerprint {}; nothing pinned (check the host and the fingerprint you were given)",
                expected.join(" or ")
            ),
        ));
    }
    let dir = ensure_keys_dir(base)?;
    let path = dir.join(format!("{name}.known_hosts"));
    let text: String = pinned.iter().map(|k| format!("{}\n", k.line)).collect();
    crate::paths::write_atomic(&path, text.as_bytes(), 0o644)
        .map_err(|e| Fail(1, format!("{}: {e}", path.display())))?;
    for k in &pinned {
        println!("pinned {} {}", k.fingerprint, k.key_type);
    }
    if expected.is_empty() {
        println!(
            "hint: compare these with the fingerprints the host publishes (or pass --host-key-fingerprint SHA256:...)"
        );
    }
    Ok(known_hosts_rel(name))
}

/// `detect-host-key NAME [--host-key-fingerprint SHA256:...]`: (re)fetches and pins the host
/// keys of a repository's SSH mirror, and points `auth.known_hosts` at them.
pub(super) fn detect_host_key(
    paths: &RepoPaths,
    name: &str,
    expected: &[String],
) -> Result<i32, Fail> {
    let loaded = config::load(paths)?;
    let e = find_mirror(paths, &loaded, name)?;
    if from_rule(&loaded, e) {
        return Err(usage(format!(
            "mirror `{name}` comes from a server rule in {}: pin its host key there (auth.known_hosts)",
            loaded.server_path.display()
        )));
    }
    if !matches!(e.mirror.auth, Auth::SshKey { .. }) {
        return Err(usage(format!(
            "mirror `{name}` has no SSH key (auth.method ssh_key): give it one first (`git-pushmirror keygen {name}`)"
        )));
    }
    paths
        .ensure()
        .map_err(|e| Fail(1, format!("{}: {e}", paths.dir.display())))?;
    let rel = detect_and_pin(&paths.dir, name, &e.mirror.url, expected)?;
    edit(paths, name, |cfg| {
        for m in cfg.mirrors.iter_mut().filter(|m| m.name == name) {
            if let Auth::SshKey {
                known_hosts,
                host_key,
                ..
            } = &mut m.auth
            {
                *known_hosts = Some(rel.clone());
                *host_key = None;
            }
        }
        Ok(())
    })?;
    // The pin may have been rewritten in place (the config unchanged): a connection made
    // under the old pin goes, as on any host-key change.
    close_connections(paths, &loaded, name);
    Ok(0)
}

/// `detect-host-key --rule NAME`: pins the host keys of a server rule's host next to the
/// server-wide config (shared by every repository of the rule) and prints the auth line.
pub(super) fn detect_rule_host_key(name: &str, expected: &[String]) -> Result<i32, Fail> {
    let (server, server_path) = config::ServerConfig::load()?;
    let rule = server
        .rules
        .iter()
        .find(|r| r.name == name)
        .ok_or_else(|| {
            usage(format!(
                "no rule named `{name}` in {}",
                server_path.display()
            ))
        })?;
    let base = server_path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let u = rule.url.replace("${name}", "sample");
    let rel = detect_and_pin(&base, name, &u, expected)?;
    let key = match &rule.auth {
        Auth::SshKey { key_file, .. } => key_file.display().to_string(),
        _ => key_rel(name).display().to_string(),
    };
    eprintln!(
        "in {}, give the rule:\n  auth: {{method: ssh_key, key_file: {key}, known_hosts: {}}}",
        server_path.display(),
        rel.display()
    );
    Ok(0)
}

/// What `show` and `status --json` add for an SSH mirror: the public key of its key pair (when
/// the `.pub` is there) and the fingerprints of its pinned host keys.
pub(super) fn ssh_json(e: &config::Effective) -> Value {
    let Auth::SshKey {
        key_file,
        known_hosts,
        host_key,
    } = &e.mirror.auth
    else {
        return json!({});
    };
    let dir = e.source.parent().unwrap_or(Path::new("/"));
    let public = fs::read_to_string(pub_of(&dir.join(key_file)))
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty() && !t.contains('\n'));
    let pinned: Vec<HostKey> = match (known_hosts, host_key) {
        (Some(kh), _) => fs::read_to_string(dir.join(kh))
            .map(|t| parse_known_hosts(&t))
            .unwrap_or_default(),
        (None, Some(k)) => parse_known_hosts(&format!("* {k}")),
        (None, None) => Vec::new(),
    };
    let fps: Vec<Value> = pinned
        .iter()
        .map(|k| json!({"type": k.key_type, "fingerprint": k.fingerprint}))
        .collect();
    json!({ "public_key": public, "pinned_host_keys": fps })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_port_of_ssh_urls() {
        for (u, host, port) in [
            ("ssh://git@example.com/a/b.git", "example.com", None),
            (
                "ssh://git@example.com:2222/a/b.git",
                "example.com",
                Some(2222),
            ),
            ("ssh://example.com/a.git", "example.com", None),
            ("git+ssh://git@h:22/x", "h", Some(22)),
            ("ssh://git@[::1]:2222/x.git", "::1", Some(2222)),
            ("git@gitlab.com:group/repo.git", "gitlab.com", None),
            ("gitlab.com:group/repo.git", "gitlab.com", None),
            ("git@[::1]:repo.git", "::1", None),
            ("[git@host:2200]:repo.git", "host", Some(2200)),
        ] {
            assert_eq!(ssh_host_port(u), Some((host.to_string(), port)), "{u}");
        }
        for u in ["https://example.com/a.git", "/srv/git/a.git", "git://h/x"] {
            assert_eq!(ssh_host_port(u), None, "{u}");
        }
    }

    #[test]
    fn fingerprints_as_ssh_keygen_prints_them() {
        // `ssh-keygen -lf` of this GitHub host key gives the fingerprint GitHub publishes.
        let github = "github.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";
        let keys = parse_known_hosts(&format!("# comment\n{github}\n\n@revoked * x y\n"));
        assert_eq!(keys.len(), 1);
        assert_eq!(
            keys[0].fingerprint,
            "SHA256:+DiY3wvvV6TuJJhbpZisF/zLDA0zPMSvHdkr4UvCOqU"
        );
        assert_eq!(keys[0].key_type, "ssh-ed25519");
        assert_eq!(base64_decode("YWI=").unwrap(), b"ab");
        assert_eq!(base64_decode("YWI").unwrap(), b"ab");
        assert!(base64_decode("YW!=").is_none());
        assert!(
            normalise_fingerprint("SHA256:+DiY3wvvV6TuJJhbpZisF/zLDA0zPMSvHdkr4UvCOqU=").is_ok()
        );
        assert!(normalise_fingerprint("MD5:aa:bb").is_err());
        assert!(normalise_fingerprint("SHA256:short").is_err());
    }
}
