//! Creating a mirror's target repository when a sync finds it missing (`create_missing`,
//! spec §13): `git init --bare` for a local path, the same over the mirror's own ssh setup for
//! an SSH URL, and a forge's REST API for HTTPS (see forge.rs). A sync creates at most once;
//! a creation that fails fails the sync with one line saying what to do.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::git::{self, ChildEnv};
use crate::url::Scheme;

/// Whether a failed `git ls-remote`/`git push` says that the repository does not exist (not
/// that we may not read it, nor that the host is unreachable). Pure; what each transport and
/// host says is in the table test below.
pub fn is_missing(stderr: &str) -> bool {
    stderr.lines().any(|l| {
        let l = l.trim().to_ascii_lowercase();
        // git over a local path, ssh to a plain git host, git daemon
        l.contains("does not appear to be a git repository")
            // git over http(s): a 404 from the server
            || (l.contains("fatal: repository '") && l.ends_with("' not found"))
            // GitHub (ssh and https), Gitea/Forgejo, GitLab over ssh
            || l.contains("error: repository not found")
            || (l.starts_with("remote: repository not found"))
            || l.contains("the project you were looking for could not be found")
            || (l.contains("repository") && l.contains("does not exist"))
            // a git daemon that does not export a path: it says no more than this
            || l.contains("no such repository")
            // Gitolite: missing, or not readable (create() tells which permission is lacking)
            || l.contains("mis-spelled the reponame")
    })
}

/// What the host said when a listing created the repository for us: Gitolite creates a wild
/// repository at the first access of a user with the C permission, and tells so on stderr.
pub fn created_by_host(stderr: &str) -> Option<String> {
    stderr
        .lines()
        .any(|l| {
            l.trim_start()
                .starts_with("Initialized empty Git repository in ")
        })
        .then(|| "created by the host at the first access (a Gitolite wild repository)".into())
}

/// Gitolite refuses a repository that does not exist, when the user may not create it, as it
/// refuses one the user may not read: "DENIED by fallthru (or you mis-spelled the reponame)".
fn gitolite_refused(stderr: &str) -> bool {
    stderr.contains("DENIED") && stderr.contains("mis-spelled the reponame")
}

/// The target of one creation, with what the sync prepared for its git children.
pub struct Target<'a> {
    pub scheme: Scheme,
    /// The URL without credentials (a local path already made absolute).
    pub url: &'a str,
    pub git_dir: &'a Path,
    /// The environment of the sync's git children (GIT_SSH_COMMAND with the key, the pinned
    /// host key and the connection master).
    pub env: &'a ChildEnv,
    pub timeout: Duration,
    /// Upstream's default branch (`refs/heads/main`), the new repository's HEAD.
    pub default_branch: Option<&'a str>,
    /// An HTTPS mirror's forge (`forge:`), which creates it through its API.
    pub forge: Option<super::forge::ForgeTarget<'a>>,
}

/// Creates the missing repository of `t`, whose listing failed with `stderr`; returns what it
/// did, in words for the log and `status`.
pub fn create(t: &Target<'_>, stderr: &str) -> Result<super::forge::Made, String> {
    if gitolite_refused(stderr) {
        return Err(GITOLITE_NO_C.into());
    }
    match (&t.forge, t.scheme) {
        (Some(f), Scheme::Https | Scheme::Http) => super::forge::create(f),
        _ => create_with_git(t).map(super::forge::Made::Created),
    }
}

const GITOLITE_NO_C: &str = "create_missing: the target is a Gitolite server, which creates a wild repository at the first access of a user with the C permission, and this key has none for that name: grant it in gitolite.conf (`C = USER` under a matching `repo` pattern), or create the repository there";

/// Creates the missing repository of `t` (local path or SSH; HTTPS goes to forge.rs).
fn create_with_git(t: &Target<'_>) -> Result<String, String> {
    let format = match crate::update::object_format(t.git_dir) {
        crate::update::ObjectFormat::Sha1 => "sha1",
        crate::update::ObjectFormat::Sha256 => "sha256",
    };
    let branch = t
        .default_branch
        .and_then(|b| b.strip_prefix("refs/heads/"))
        .filter(|b| is_plain_branch(b));
    let mut init: Vec<String> = vec![
        "init".into(),
        "--bare".into(),
        "--quiet".into(),
        format!("--object-format={format}"),
    ];
    if let Some(b) = branch {
        init.push(format!("--initial-branch={b}"));
    }
    match t.scheme {
        Scheme::Local => {
            let path = t.url.strip_prefix("file://").unwrap_or(t.url);
            if path.contains('%') {
                return Err(format!(
                    "create_missing: cannot create {path}: write the local url as a plain path"
                ));
            }
            // git says "does not appear to be a git repository" of any directory that is not
            // one: only a missing path or an empty directory becomes a repository (never a
            // symlink, never a directory holding something else).
            match std::fs::symlink_metadata(path) {
                Err(_) => {}
                Ok(meta)
                    if meta.is_dir()
                        && std::fs::read_dir(path).is_ok_and(|mut d| d.next().is_none()) => {}
                Ok(_) => {
                    return Err(format!(
                        "create_missing: {path} exists and is not an empty directory (or is a symlink); not creating a repository there: fix the url or move it away"
                    ))
                }
            }
            // A parent that is missing is made by git init, as an admin expects of a server
            // rule whose names have directories.
            init.push("--".into());
            init.push(path.to_string());
            let out = git::run(t.git_dir, &init, t.env, t.timeout, "init")
                .map_err(|e| format!("create_missing: git init --bare {path}: {e}"))?;
            if !out.status_ok {
                return Err(format!(
                    "create_missing: git init --bare {path}: {} (create it by hand, or fix the url)",
                    git::last_line(&out.stderr)
                ));
            }
            Ok(format!("created {path} with git init --bare ({format})"))
        }
        Scheme::Ssh => create_over_ssh(t, &init, format),
        _ => Err(format!(
            "create_missing: {} targets cannot be created here; create it on the server",
            match t.scheme {
                Scheme::Git => "git://",
                _ => "http(s):// targets without `forge:`",
            }
        )),
    }
}

/// An SSH URL's parts: `[user@]host`, port, and the path as the remote shell should see it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct SshTarget {
    pub destination: String,
    pub port: Option<u16>,
    /// Shell text for the path: single-quoted, a leading `~/` or `~user/` left outside the
    /// quotes so that the remote shell expands it as git does.
    pub quoted_path: String,
}

pub(crate) fn ssh_target(url: &str) -> Result<SshTarget, String> {
    let parsed = gix::url::parse(url.as_bytes()).map_err(|e| format!("url: {e}"))?;
    let host = parsed.host().ok_or("url: no host")?.to_string();
    if host.starts_with('-') || host.is_empty() {
        return Err("url: bad host".into());
    }
    let destination = match parsed.user() {
        Some(u) if !u.is_empty() => {
            if u.starts_with('-') || u.contains(|c: char| c.is_whitespace() || c.is_control()) {
                return Err("url: bad user".into());
            }
            format!("{u}@{host}")
        }
        _ => host,
    };
    let path = parsed.path.to_string();
    // `ssh://host/~user/x` means `~user/x`, as git reads it.
    let path = match path.strip_prefix("/~") {
        Some(rest) => format!("~{rest}"),
        None => path,
    };
    if path.is_empty() || path.chars().any(char::is_control) {
        return Err("url: bad path".into());
    }
    let quoted_path = match path.strip_prefix('~') {
        Some(rest) => {
            let (user, rest) = rest.split_once('/').unwrap_or((rest, ""));
            if !user
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            {
                return Err("url: bad ~user in the path".into());
            }
            format!("~{user}/{}", sq(rest))
        }
        None => sq(&path),
    };
    Ok(SshTarget {
        destination,
        port: parsed.port,
        quoted_path,
    })
}

/// POSIX single quotes (as git's sq_quote): the remote shell sees exactly `s`.
fn sq(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn is_plain_branch(b: &str) -> bool {
    !b.is_empty()
        && !b.starts_with('-')
        && b.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-' | b'/'))
}

fn create_over_ssh(t: &Target<'_>, init: &[String], format: &str) -> Result<String, String> {
    let target = ssh_target(t.url).map_err(|e| format!("create_missing: {e}"))?;
    let ssh = t
        .env
        .set
        .iter()
        .rev()
        .find(|(k, _)| k == "GIT_SSH_COMMAND")
        .map(|(_, v)| v.clone())
        .ok_or("create_missing: no ssh command prepared")?;
    // The options after `init` are ours (no quoting needed); the path is quoted. As for a
    // local target, only a missing path or an empty directory becomes a repository.
    let mut remote = format!(
        "p={}; if [ -L \"$p\" ] || {{ [ -e \"$p\" ] && [ -n \"$(ls -A -- \"$p\" 2>/dev/null)\" ]; }}; then echo \"$p exists and is not an empty directory; not creating a repository there\" >&2; exit 3; fi; git",
        target.quoted_path
    );
    for a in init {
        remote.push(' ');
        remote.push_str(a);
    }
    remote.push_str(" -- \"$p\"");
    let out = run_ssh(&ssh, &target, remote, t.env, t.timeout)
        .map_err(|e| format!("create_missing: ssh {}: {e}", target.destination))?;
    if format!("{}\n{}", out.stdout, out.stderr)
        .to_ascii_lowercase()
        .contains("gitolite")
    {
        // gitolite-shell runs no shell commands; it would have created a wild repository
        // at the listing if this key could.
        return Err(GITOLITE_NO_C.into());
    }
    if !out.status_ok {
        return Err(format!(
            "create_missing: git init --bare over ssh to {}: {} (create it on the server, or let the key run `git init`)",
            target.destination,
            git::last_line(&out.stderr)
        ));
    }
    Ok(format!(
        "created with git init --bare over ssh to {} ({format})",
        target.destination
    ))
}

/// Runs the mirror's ssh command (`ssh`, as git runs GIT_SSH_COMMAND: through `sh -c` with
/// its arguments after it) to `target` with the shell command `remote`, as `git::run_command`
/// runs git: `env`, bounded by `timeout`.
fn run_ssh(
    ssh: &str,
    target: &SshTarget,
    remote: String,
    env: &ChildEnv,
    timeout: Duration,
) -> Result<git::Output, String> {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", &format!("{ssh} \"$@\""), ssh]);
    if let Some(p) = target.port {
        cmd.arg("-p").arg(p.to_string());
    }
    cmd.arg(&target.destination).arg(remote);
    git::run_command(cmd, env, timeout, "ssh").map_err(|e| match e {
        git::GitError::Timeout { secs, .. } => format!("timed out after {secs}s"),
        git::GitError::Spawn(e) => e.to_string(),
        git::GitError::Failed { stderr, .. } => stderr,
    })
}

/// Deletes the target of `m` (a server rule's mirror of a repository that is gone), for
/// `propagate_deletion`: a local bare repository is removed (never through a symlink, never a
/// directory that is not a bare repository), an SSH one with `rm -rf` over the mirror's own ssh
/// setup after the same check there, a forge's through its API. `source` is the file `m` came
/// from. Returns what it did, in words.
pub fn delete_target(
    m: &crate::config::MirrorConfig,
    source: &Path,
    exe: &Path,
    runtime_dir: &Path,
    timeout: Duration,
) -> Result<String, String> {
    let scheme = crate::url::validate(&m.url, m.allow_insecure_http).map_err(|e| e.to_string())?;
    let (bare, _, _) = crate::url::split_credentials(&m.url);
    match scheme {
        Scheme::Local => {
            let path = Path::new(bare.strip_prefix("file://").unwrap_or(&bare));
            if !path.is_absolute() {
                return Err(format!(
                    "{}: not an absolute path; nothing deleted",
                    path.display()
                ));
            }
            let meta = std::fs::symlink_metadata(path)
                .map_err(|e| format!("{}: {e}; nothing deleted", path.display()))?;
            let is_bare = meta.is_dir()
                && path.join("HEAD").is_file()
                && path.join("objects").is_dir()
                && path.join("refs").is_dir();
            if !is_bare {
                return Err(format!(
                    "{}: a symlink or not a bare git repository; nothing deleted",
                    path.display()
                ));
            }
            std::fs::remove_dir_all(path).map_err(|e| format!("{}: {e}", path.display()))?;
            Ok(format!("removed {}", path.display()))
        }
        Scheme::Ssh | Scheme::Https | Scheme::Http => {
            let prepared =
                super::auth::prepare(&m.auth, source, exe, runtime_dir, timeout.as_secs().max(1))
                    .map_err(|e| format!("auth: {e}"))?;
            let done = if scheme == Scheme::Ssh {
                delete_over_ssh(&bare, &prepared, m.allow_insecure_http, timeout)
            } else {
                let forge = m
                    .forge
                    .ok_or("an https target without `forge:` cannot be deleted; nothing deleted")?;
                let token = prepared
                    .env
                    .iter()
                    .find(|(k, _)| k == "GIT_PUSHMIRROR_PASSWORD")
                    .map(|(_, v)| v.clone());
                let ca_file = m
                    .ca_file
                    .as_ref()
                    .map(|ca| source.parent().map_or_else(|| ca.clone(), |d| d.join(ca)));
                super::forge::delete(&super::forge::ForgeTarget {
                    forge,
                    url: &bare,
                    forge_api: m.forge_api.as_deref(),
                    owner: m.create_owner.as_deref(),
                    visibility: m.create_visibility.unwrap_or_default(),
                    token: token.as_deref(),
                    ca_file: ca_file.as_deref(),
                    proxy: "",
                    timeout,
                    runtime_dir,
                })
            };
            for f in &prepared.temp_files {
                let _ = std::fs::remove_file(f);
            }
            let refs: Vec<&str> = prepared.secrets.iter().map(String::as_str).collect();
            done.map_err(|e| crate::url::scrub(&e, &refs))
        }
        Scheme::Git => Err("git:// targets cannot be deleted; nothing deleted".into()),
    }
}

fn delete_over_ssh(
    url: &str,
    prepared: &super::auth::GitAuth,
    allow_http: bool,
    timeout: Duration,
) -> Result<String, String> {
    let target = ssh_target(url)?;
    let (mut set, remove) = super::auth::base_env(allow_http, timeout.as_secs().max(1));
    set.extend(prepared.env.iter().cloned());
    let env = ChildEnv { set, remove };
    let ssh = env
        .set
        .iter()
        .rev()
        .find(|(k, _)| k == "GIT_SSH_COMMAND")
        .map(|(_, v)| v.clone())
        .ok_or("no ssh command prepared")?;
    let p = &target.quoted_path;
    // Only a bare repository is removed.
    let remote = format!(
        "test -f {p}/HEAD && test -d {p}/objects && test -d {p}/refs && test ! -L {p} && rm -rf -- {p}"
    );
    let out = run_ssh(&ssh, &target, remote, &env, timeout)
        .map_err(|e| format!("ssh {}: {e}", target.destination))?;
    if !out.status_ok {
        return Err(format!(
            "ssh {}: not a bare repository there, or it could not be removed: {}",
            target.destination,
            git::last_line(&out.stderr)
        ));
    }
    Ok(format!("removed it over ssh to {}", target.destination))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_repository_is_told_from_other_failures() {
        let advice = "fatal: Could not read from remote repository.\n\nPlease make sure you have the correct access rights\nand the repository exists.\n";
        let missing = [
            // local path, and ssh to a plain git host
            format!("fatal: '/srv/m/x.git' does not appear to be a git repository\n{advice}"),
            // git daemon
            "fatal: remote error: access denied or repository not exported: /x.git\n".replace(
                "access denied or repository not exported",
                "no such repository",
            ),
            // http(s) 404
            "fatal: repository 'https://127.0.0.1:4443/git/x.git/' not found\n".into(),
            // the same, as a failed sync's one line
            "git push https://h/x.git: fatal: repository 'https://h/x.git/' not found".into(),
            // GitHub over ssh and https
            format!("ERROR: Repository not found.\n{advice}"),
            "remote: Repository not found.\nfatal: repository 'https://github.com/a/b.git/' not found\n".into(),
            // GitLab over ssh
            format!("remote: \nremote: ERROR: The project you were looking for could not be found or you don't have permission to view it.\nremote: \n{advice}"),
            // Gitea / Forgejo over ssh
            format!("Gitea: The repository you are trying to reach either does not exist or you are not authorized to view it.\n{advice}"),
            // Gitolite, for a name the key may not create
            format!("FATAL: R any elsewhere/app admin DENIED by fallthru\n(or you mis-spelled the reponame)\n{advice}"),
        ];
        for m in &missing {
            assert!(is_missing(m), "{m}");
        }
        let other = [
            format!("Host key verification failed.\n{advice}"),
            format!("git@h: Permission denied (publickey).\n{advice}"),
            "fatal: Authentication failed for 'https://h/x.git/'\n".into(),
            "fatal: unable to access 'https://h/x.git/': Could not resolve host: h\n".into(),
            "ssh: connect to host 127.0.0.1 port 1: Connection refused\n".into(),
            "fatal: the remote end hung up unexpectedly\n".into(),
            advice.into(),
            String::new(),
        ];
        for o in &other {
            assert!(!is_missing(o), "{o}");
        }
    }

    #[test]
    fn ssh_targets_are_parsed_and_quoted() {
        let t = ssh_target("ssh://git@127.0.0.1:2222/srv/git/a;b'c.git").unwrap();
        assert_eq!(
            t,
            SshTarget {
                destination: "git@127.0.0.1".into(),
                port: Some(2222),
                quoted_path: r"'/srv/git/a;b'\''c.git'".into(),
            }
        );
        let t = ssh_target("git@host:team/app.git").unwrap();
        assert_eq!((t.destination.as_str(), t.port), ("git@host", None));
        assert_eq!(t.quoted_path, "'team/app.git'");
        let t = ssh_target("ssh://host/~/x;rm&.git").unwrap();
        assert_eq!(t.destination, "host");
        assert_eq!(t.quoted_path, "~/'x;rm&.git'");
        let t = ssh_target("ssh://host/~alice/x.git").unwrap();
        assert_eq!(t.quoted_path, "~alice/'x.git'");
        assert!(ssh_target("ssh://host/~a$(id)/x.git").is_err());
    }
}
