//! Configuration: the repository's `pushmirror/config.yaml` and the server-wide file
//! (`/etc/git-pushmirror/config.yaml`, or `GIT_PUSHMIRROR_CONFIG`). Parsing is strict: an unknown
//! key or a bad value is an error naming the file, line and key, because a typo silently ignored
//! is a mirror silently stale.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

mod auth;
mod batch;
mod edit;
mod lfs;
mod notify;
pub use auth::Auth;
pub use batch::{Bytes, RefCount};
pub use lfs::check_lfs_url;
pub use notify::NotifyConfig;

pub const SERVER_CONFIG: &str = "/etc/git-pushmirror/config.yaml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {msg}")]
    Invalid { path: PathBuf, msg: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn invalid(path: &Path, msg: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

/// A duration written for humans: `500ms`, `1s`, `5m`, `1h30m`, `2d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dur(pub Duration);

impl Dur {
    /// Parses with humantime, held to the compact form this project has always documented
    /// (`<number><unit>` runs, units ms, s, m, h, d; a day is 24 hours): the spelled-out forms
    /// humantime also knows (`5 minutes`, `2 hrs`, `1h 30m`) are refused, as they always were,
    /// so that a config has one spelling.
    pub fn parse(s: &str) -> Result<Dur, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("empty duration".into());
        }
        let compact = s.bytes().next().is_some_and(|b| b.is_ascii_digit())
            && s.bytes()
                .all(|b| b.is_ascii_digit() || matches!(b, b'm' | b's' | b'h' | b'd'));
        match humantime::parse_duration(s) {
            Ok(d) if compact => u64::try_from(d.as_millis())
                .map(|ms| Dur(Duration::from_millis(ms)))
                .map_err(|_| format!("duration `{s}` is too large")),
            Err(humantime::DurationError::NumberOverflow) if compact => {
                Err(format!("duration `{s}` is too large"))
            }
            _ => Err(format!(
                "invalid duration `{s}` (use e.g. 500ms, 1s, 5m, 1h30m, 2d)"
            )),
        }
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms == 0 {
            return f.write_str("0s");
        }
        for (unit, len) in [
            ("d", 86_400_000u128),
            ("h", 3_600_000),
            ("m", 60_000),
            ("s", 1000),
        ] {
            if ms.is_multiple_of(len) {
                return write!(f, "{}{unit}", ms / len);
            }
        }
        write!(f, "{ms}ms")
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Dur, D::Error> {
        let s = String::deserialize(d)?;
        Dur::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

fn yes() -> bool {
    true
}
fn is_true(b: &bool) -> bool {
    *b
}
fn is_false(b: &bool) -> bool {
    !*b
}

/// One mirror as written in a config file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MirrorConfig {
    pub name: String,
    pub url: String,
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "is_none_auth")]
    pub auth: Auth,
    #[serde(default, skip_serializing_if = "is_false")]
    pub only_protected_branches: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub protected: Vec<String>,
    /// GitLab's `mirror_branch_regex`: mirror only the branches it matches (RE2 syntax).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch_regex: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub keep_divergent_refs: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debounce: Option<Dur>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_delay: Option<Dur>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Dur>,
    /// How long an SSH connection master outlives a sync for the next one (default 60s; 0: one
    /// connection per sync). See docs/security.md.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_persist: Option<Dur>,
    /// Extra ref prefixes to mirror besides branches and tags, e.g. `refs/notes/`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refs: Vec<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub allow_insecure_http: bool,
    /// A CA bundle for a mirror behind a private CA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Server rules only: git wildcard patterns on `${name}`; empty means every repository.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repos: Vec<String>,
    /// Git LFS objects: `off`, `on`, or `auto` (the default: on when the upstream has LFS objects
    /// or a configured store). See docs/lfs.md.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lfs: Option<LfsMode>,
    /// Where the upstream's LFS objects are kept (default `$GIT_DIR/lfs/objects`); `${name}` works.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lfs_store: Option<String>,
    /// How files are named in `lfs_store`: `default`, `gitea` or `gitlab`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lfs_layout: Option<LfsLayout>,
    /// The mirror's LFS endpoint when it is not `<url>/info/lfs` (as git's `lfs.url`; HTTP(S)
    /// mirrors only); `${name}` works in a server rule. See docs/lfs.md.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lfs_url: Option<String>,
    /// Pin the mirror's LFS credentials to the origin of its `lfs_url` instead of its URL's, so
    /// an `lfs_url` on another scheme, host or port gets them (off: it gets none). See
    /// docs/security.md.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub lfs_auth: bool,
    /// At most this many ref updates (creations, updates and deletions) per `git push`: for
    /// hosts whose push policy refuses more (see docs/administration.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push_batch_refs: Option<RefCount>,
    /// Packs of at most about this size per `git push`: a first push of a big history goes in
    /// several steps (for hosts that refuse bigger pushes, e.g. GitHub's 2 GiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push_batch_bytes: Option<Bytes>,
    /// Create the target repository when a sync finds it missing (see docs/administration.md,
    /// "Creating missing targets"); None: the defaults' setting, else off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_missing: Option<bool>,
    /// The forge an HTTPS target is created on through its REST API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forge: Option<Forge>,
    /// The forge's API base when it is not derived from the URL (e.g. `https://host/api/v3`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forge_api: Option<String>,
    /// The user, organisation or group (GitLab: its full path) a forge repository is created in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_owner: Option<String>,
    /// The visibility of a repository created on a forge (default private).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_visibility: Option<Visibility>,
    /// Server rules only: how `${name}` is written in the URL (Gerrit's remoteNameStyle).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_style: Option<NameStyle>,
    /// Server rules only: git wildcard patterns on `${name}` the rule does not mirror.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// Server rules only: `sweep` deletes a target this rule created (recorded under the
    /// server's `state_dir`) once its repository is gone.
    #[serde(default, skip_serializing_if = "is_false")]
    pub propagate_deletion: bool,
}

/// A forge whose REST API creates repositories (Forgejo is `gitea`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Forge {
    Github,
    Gitlab,
    Gitea,
}

impl Forge {
    pub fn as_str(self) -> &'static str {
        match self {
            Forge::Github => "github",
            Forge::Gitlab => "gitlab",
            Forge::Gitea => "gitea",
        }
    }
}

/// The visibility of a repository a forge creates for us.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    #[default]
    Private,
    Internal,
    Public,
}

/// How a rule writes `${name}` (a repository's path under the root) into its URL, for targets
/// without nested names: `team/sub/app` stays `team/sub/app` (slash), or becomes
/// `team-sub-app` (dash), `team_sub_app` (underscore) or `app` (basename).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NameStyle {
    #[default]
    Slash,
    Dash,
    Underscore,
    Basename,
}

impl NameStyle {
    pub fn apply(self, name: &str) -> String {
        match self {
            NameStyle::Slash => name.to_string(),
            NameStyle::Dash => name.replace('/', "-"),
            NameStyle::Underscore => name.replace('/', "_"),
            NameStyle::Basename => name.rsplit('/').next().unwrap_or(name).to_string(),
        }
    }
}

/// Whether a mirror gets the upstream's Git LFS objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LfsMode {
    Off,
    On,
    Auto,
}

/// How an LFS store names the object of `oid`: `ab/cd/<oid>` (git-lfs, the default), or
/// `ab/cd/<oid without its first 4 characters>` (Gitea's LFS_CONTENT_PATH, GitLab's
/// shared/lfs-objects).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LfsLayout {
    #[default]
    Default,
    Gitea,
    Gitlab,
}

impl LfsSettings {
    pub fn mode_name(&self) -> &'static str {
        match self.mode {
            LfsMode::Off => "off",
            LfsMode::On => "on",
            LfsMode::Auto => "auto",
        }
    }
}

/// The LFS settings of one mirror, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LfsSettings {
    pub mode: LfsMode,
    /// None: `$GIT_DIR/lfs/objects`.
    pub store: Option<PathBuf>,
    pub layout: LfsLayout,
    /// Objects uploaded at the same time.
    pub concurrency: usize,
}

fn is_none_auth(a: &Auth) -> bool {
    *a == Auth::None
}

impl MirrorConfig {
    pub fn new(name: &str, url: &str) -> MirrorConfig {
        MirrorConfig {
            name: name.into(),
            url: url.into(),
            enabled: true,
            auth: Auth::None,
            only_protected_branches: false,
            protected: Vec::new(),
            branch_regex: None,
            keep_divergent_refs: false,
            debounce: None,
            max_delay: None,
            timeout: None,
            ssh_persist: None,
            refs: Vec::new(),
            allow_insecure_http: false,
            ca_file: None,
            repos: Vec::new(),
            lfs: None,
            lfs_store: None,
            lfs_layout: None,
            lfs_url: None,
            lfs_auth: false,
            push_batch_refs: None,
            push_batch_bytes: None,
            create_missing: None,
            forge: None,
            forge_api: None,
            create_owner: None,
            create_visibility: None,
            name_style: None,
            exclude: Vec::new(),
            propagate_deletion: false,
        }
    }

    /// Checks what serde cannot: names usable as file names, the URL policy, patterns, prefixes.
    pub fn validate(&self) -> Result<(), String> {
        validate_name(&self.name)?;
        let scheme = crate::url::validate(&self.url, self.allow_insecure_http)
            .map_err(|e| format!("mirror `{}`: url: {e}", self.name))?;
        if let Some(why) = password_auth_refused(&self.auth, scheme) {
            return Err(format!("mirror `{}`: {why}", self.name));
        }
        // A user name alone in the URL that is auth's own user is redundant but harmless
        // (`https://deploy@host/...`, as GitLab shows it); a password there, or another user,
        // would be silently ignored in favour of the auth section.
        if let (Auth::Password { username, .. }, (_, user, password)) =
            (&self.auth, crate::url::split_credentials(&self.url))
        {
            if password.is_some() || user.as_ref().is_some_and(|u| u != username) {
                return Err(format!(
                    "mirror `{}`: the url carries credentials (user[:password]@) that differ from auth's and auth.method is password; keep one: remove them from the url or remove the auth section",
                    self.name
                ));
            }
        }
        for p in &self.protected {
            if p.is_empty() || p.starts_with("refs/") {
                return Err(format!(
                    "mirror `{}`: protected: pattern `{p}` must be a branch name pattern like `main` or `release/*`, without refs/heads/",
                    self.name
                ));
            }
            if p.matches('[').count() != p.matches(']').count() {
                return Err(format!(
                    "mirror `{}`: protected: unbalanced brackets in pattern `{p}`",
                    self.name
                ));
            }
        }
        for r in &self.refs {
            if !r.starts_with("refs/") || !r.ends_with('/') || r.contains("..") || r.len() < 6 {
                return Err(format!(
                    "mirror `{}`: refs: `{r}` must be a ref prefix like `refs/notes/` (starting with refs/, ending with /)",
                    self.name
                ));
            }
        }
        if let Some(r) = &self.branch_regex {
            if self.only_protected_branches {
                return Err(format!(
                    "mirror `{}`: branch_regex and only_protected_branches cannot be combined (as in GitLab); keep one",
                    self.name
                ));
            }
            crate::pattern::BranchRegex::new(r)
                .map_err(|e| format!("mirror `{}`: {e}", self.name))?;
        }
        if self.only_protected_branches && self.protected.is_empty() {
            return Err(format!(
                "mirror `{}`: only_protected_branches needs at least one `protected` pattern",
                self.name
            ));
        }
        for (k, d) in [
            ("debounce", self.debounce),
            ("timeout", self.timeout),
            ("max_delay", self.max_delay),
        ] {
            if d.is_some_and(|d| k != "debounce" && d.0.is_zero()) {
                return Err(format!(
                    "mirror `{}`: {k} must be greater than 0",
                    self.name
                ));
            }
        }
        if self.lfs_store.as_deref().is_some_and(str::is_empty) {
            return Err(format!("mirror `{}`: lfs_store is empty", self.name));
        }
        if let Some(u) = &self.lfs_url {
            check_lfs_url(&self.url, u)
                .map_err(|e| format!("mirror `{}`: lfs_url {e}", self.name))?;
        } else if self.lfs_auth {
            return Err(format!(
                "mirror `{}`: lfs_auth is for an lfs_url on another host; set lfs_url too, or remove lfs_auth",
                self.name
            ));
        }
        self.validate_creation()
    }

    /// The creation keys: a forge only for an HTTP(S) URL, an API base of the same kind, an
    /// owner that is a plain path.
    fn validate_creation(&self) -> Result<(), String> {
        let http = self.url.starts_with("https://") || self.url.starts_with("http://");
        if self.forge.is_some() && !http {
            return Err(format!(
                "mirror `{}`: forge is for https:// mirrors (ssh and local targets are created with git init --bare)",
                self.name
            ));
        }
        if self.create_missing == Some(true) && http && self.forge.is_none() {
            return Err(format!(
                "mirror `{}`: create_missing on an https:// mirror needs `forge: github|gitlab|gitea` (the API that creates it)",
                self.name
            ));
        }
        for (k, v) in [
            ("forge_api", &self.forge_api),
            ("create_owner", &self.create_owner),
        ] {
            if v.is_some() && self.forge.is_none() {
                return Err(format!("mirror `{}`: {k} needs `forge:`", self.name));
            }
        }
        if let Some(api) = &self.forge_api {
            crate::url::validate(api, self.allow_insecure_http)
                .ok()
                .filter(|s| matches!(s, crate::url::Scheme::Https | crate::url::Scheme::Http))
                .ok_or_else(|| {
                    format!(
                        "mirror `{}`: forge_api must be an https:// URL like https://host/api/v3",
                        self.name
                    )
                })?;
        }
        if let Some(o) = &self.create_owner {
            let ok = !o.is_empty()
                && !o.starts_with(['/', '-', '.'])
                && !o.ends_with('/')
                && !o.split('/').any(|c| c.is_empty() || c == "." || c == "..")
                && o.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/'));
            if !ok {
                return Err(format!(
                    "mirror `{}`: create_owner `{o}` must be a user, organisation or group path of [A-Za-z0-9._-/]",
                    self.name
                ));
            }
        }
        Ok(())
    }
}

/// Why `auth` cannot be used with a mirror reached by `scheme`, if it cannot: a password is
/// asked for by git over http(s) only. A local, `ssh://` or `git://` mirror never asks, so the
/// password would only travel in the environment of its git children (and of a local mirror's
/// hooks).
pub fn password_auth_refused(auth: &Auth, scheme: crate::url::Scheme) -> Option<String> {
    use crate::url::Scheme;
    let what = match scheme {
        _ if !matches!(auth, Auth::Password { .. }) => return None,
        Scheme::Https | Scheme::Http => return None,
        Scheme::Local => "a local mirror",
        Scheme::Ssh => "an ssh mirror",
        Scheme::Git => "a git:// mirror",
    };
    Some(format!(
        "auth.method password is for https:// (and http://) mirrors only; {what} never asks for a password, which would only reach its git children's environment; use auth.method ssh_key for ssh, or remove the auth section (auth=)"
    ))
}

/// Every `password_env` variable named in `rules` and `mirrors`: none of them may reach a
/// process we start (a local mirror's hooks, ssh, a notify command), not even the owning
/// mirror's git, whose askpass gets the password on its own.
pub fn password_env_names<'a>(
    rules: impl IntoIterator<Item = &'a MirrorConfig>,
    mirrors: impl IntoIterator<Item = &'a MirrorConfig>,
) -> Vec<String> {
    let mut names: BTreeSet<String> = BTreeSet::new();
    for m in rules.into_iter().chain(mirrors) {
        if let Auth::Password {
            password_env: Some(var),
            ..
        } = &m.auth
        {
            if !var.is_empty() {
                names.insert(var.clone());
            }
        }
    }
    names.into_iter().collect()
}

/// Mirror names become file names under `pushmirror/state/`, so they are kept plain.
pub fn validate_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && !name.starts_with(['.', '-'])
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "mirror name `{name}` must be 1-100 of [A-Za-z0-9._-], not starting with `.` or `-`"
        ))
    }
}

/// Timing and retry settings; every field optional so files can override one another.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debounce: Option<Dur>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_delay: Option<Dur>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_delay_protected: Option<Dur>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Dur>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_persist: Option<Dur>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_initial: Option<Dur>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_max: Option<Dur>,
    /// LFS defaults for every mirror (see MirrorConfig).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lfs: Option<LfsMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lfs_store: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lfs_layout: Option<LfsLayout>,
    /// LFS objects uploaded at the same time per sync (default 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lfs_concurrency: Option<usize>,
    /// `create_missing` for every mirror that does not set it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_missing: Option<bool>,
}

impl Defaults {
    fn overlay(&self, over: &Defaults) -> Defaults {
        Defaults {
            debounce: over.debounce.or(self.debounce),
            max_delay: over.max_delay.or(self.max_delay),
            max_delay_protected: over.max_delay_protected.or(self.max_delay_protected),
            timeout: over.timeout.or(self.timeout),
            ssh_persist: over.ssh_persist.or(self.ssh_persist),
            max_attempts: over.max_attempts.or(self.max_attempts),
            backoff_initial: over.backoff_initial.or(self.backoff_initial),
            backoff_max: over.backoff_max.or(self.backoff_max),
            lfs: over.lfs.or(self.lfs),
            lfs_store: over.lfs_store.clone().or(self.lfs_store.clone()),
            lfs_layout: over.lfs_layout.or(self.lfs_layout),
            lfs_concurrency: over.lfs_concurrency.or(self.lfs_concurrency),
            create_missing: over.create_missing.or(self.create_missing),
        }
    }
}

/// `pushmirror/config.yaml`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepoConfig {
    #[serde(default, skip_serializing_if = "is_default_defaults")]
    pub defaults: Defaults,
    #[serde(default)]
    pub mirrors: Vec<MirrorConfig>,
    /// Overrides the server file's `notify` for this repository (an empty command turns it off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<NotifyConfig>,
}

fn is_default_defaults(d: &Defaults) -> bool {
    *d == Defaults::default()
}

/// A mirror for many repositories at once, Gerrit style: `${name}` in the URL is the repository's
/// path relative to `root`, without a trailing `.git`; `repos` patterns pick the repositories.
pub type Rule = MirrorConfig;

/// The server-wide file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Silent mode: no mirror is contacted; updates accumulate until it is lifted.
    #[serde(default)]
    pub silent: bool,
    /// Server-wide limit on concurrent mirror pushes (default: number of CPUs).
    #[serde(default)]
    pub concurrency: Option<usize>,
    #[serde(default)]
    pub runtime_dir: Option<PathBuf>,
    /// Where the `concurrency` slot files live (default: `runtime_dir`). On storage several
    /// nodes share, the limit holds for all of them together instead of per node.
    #[serde(default)]
    pub slots_dir: Option<PathBuf>,
    /// `RUST_LOG`-style filter for the flusher's log, e.g. `info` or `debug`.
    #[serde(default)]
    pub log_level: Option<String>,
    #[serde(default)]
    pub log_max_bytes: Option<u64>,
    #[serde(default)]
    pub defaults: Defaults,
    #[serde(default)]
    pub root: Option<PathBuf>,
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// A command run when a mirror changes state (see `ops::notify`).
    #[serde(default)]
    pub notify: Option<NotifyConfig>,
    /// A durable directory of the server's own (not inside any repository) where the targets
    /// server rules created are recorded, for `propagate_deletion`.
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
}

impl ServerConfig {
    /// The server-wide file, or built-in defaults when it does not exist.
    pub fn load() -> Result<(ServerConfig, PathBuf), ConfigError> {
        let path = std::env::var_os("GIT_PUSHMIRROR_CONFIG")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(SERVER_CONFIG));
        ServerConfig::load_from(path)
    }

    /// `load` of the file at `path`.
    fn load_from(path: PathBuf) -> Result<(ServerConfig, PathBuf), ConfigError> {
        let Some(text) = read_text(&path)? else {
            return Ok((ServerConfig::default(), path));
        };
        let cfg: ServerConfig = parse_yaml(&text, &path)?;
        if let Some(d) = cfg.slots_dir.as_ref().filter(|d| !d.is_absolute()) {
            return Err(invalid(
                &path,
                format!(
                    "{}slots_dir: `{}` must be an absolute path",
                    line_of(&text, "slots_dir"),
                    d.display()
                ),
            ));
        }
        let mut names = BTreeSet::new();
        for r in &cfg.rules {
            if !names.insert(r.name.clone()) {
                return Err(invalid(
                    &path,
                    format!(
                        "{}duplicate rule name `{}`",
                        line_of(&text, &r.name),
                        r.name
                    ),
                ));
            }
            // Validate with a sample name so the template itself is checked.
            let mut sample = r.clone();
            sample.url = sample.url.replace("${name}", "sample");
            sample.lfs_url = sample.lfs_url.map(|u| u.replace("${name}", "sample"));
            sample
                .validate()
                .map_err(|m| invalid(&path, format!("{}{m}", line_of(&text, &r.name))))?;
            if r.propagate_deletion {
                let why = if r.create_missing.or(cfg.defaults.create_missing) != Some(true) {
                    Some("it deletes only targets the rule created: it needs create_missing: true")
                } else if cfg.state_dir.as_ref().is_none_or(|d| !d.is_absolute()) {
                    Some("it needs `state_dir:` (an absolute directory of the server's own) where the targets the rule creates are recorded")
                } else {
                    None
                };
                if let Some(why) = why {
                    return Err(invalid(
                        &path,
                        format!(
                            "{}rule `{}`: propagate_deletion: {why}",
                            line_of(&text, &r.name),
                            r.name
                        ),
                    ));
                }
            }
        }
        Ok((cfg, path))
    }

    pub fn concurrency(&self) -> usize {
        self.concurrency.filter(|n| *n > 0).unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        })
    }
}

/// The largest config file read (the server file or a repository's): a real one is a few KiB,
/// even with hundreds of mirrors or rules. Anything bigger is refused before it is read, as
/// every `status`, `metrics` and `sweep` would otherwise hold it whole in memory (and parse it).
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// A config file's text, None when it does not exist; one over `MAX_CONFIG_BYTES` is an error
/// naming the file and the limit (at most the limit and one byte are read).
fn read_text(path: &Path) -> Result<Option<String>, ConfigError> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    };
    // Non-blocking, so that a FIFO put in its place cannot hang every `status` and `sweep`
    // (which read it without anyone writing); refused below unless it is a regular file.
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    if !file.metadata().map_err(io)?.is_file() {
        return Err(invalid(
            path,
            "not a regular file (a FIFO, device or directory is never read as a config file); replace it with a file".to_string(),
        ));
    }
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(invalid(
            path,
            format!(
                "the file is larger than {} KiB, the most a config file may be; refused (a mirroring config is a few KiB: is this the right file?)",
                MAX_CONFIG_BYTES >> 10
            ),
        ));
    }
    String::from_utf8(bytes).map(Some).map_err(|_| {
        io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "stream did not contain valid UTF-8",
        ))
    })
}

fn parse_yaml<T: serde::de::DeserializeOwned + Default>(
    text: &str,
    path: &Path,
) -> Result<T, ConfigError> {
    if text.trim().is_empty() {
        return Ok(T::default());
    }
    serde_yaml::from_str(text).map_err(|e| {
        let msg = name_bad_value(text, &e.to_string());
        invalid(path, hide_inline_passwords(text, &msg))
    })
}

/// `msg` without the value of any inline `password:` in `text`: serde quotes a value of the
/// wrong type (`password: 987654321` is an integer), and a config error reaches every pusher,
/// the log and `status`.
pub(crate) fn hide_inline_passwords(text: &str, msg: &str) -> String {
    let mut msg = msg.to_string();
    let mut hide = |v: &str| {
        let v = v.split(" #").next().unwrap_or("").trim();
        let v = v.trim_matches(|c| c == '"' || c == '\'');
        // serde quotes a value as `v` or "v"; a longer value is hidden wherever it appears
        // (a short one only where quoted, so that "line 7: key `password`" stays readable).
        if !v.is_empty() {
            msg = msg
                .replace(&format!("`{v}`"), "`*****`")
                .replace(&format!("\"{v}\""), "\"*****\"");
            if v.len() >= 4 {
                msg = msg.replace(v, "*****");
            }
        }
    };
    for l in text.lines() {
        let l = l.trim().trim_start_matches("- ").trim_start();
        if let Some(v) = l.strip_prefix("password:") {
            // Block style: the rest of the line.
            hide(v);
        }
        // Flow style (`auth: {method: password, password: x}`): up to the next `,` or `}`.
        for (i, _) in l.match_indices("password:") {
            if i > 0 && matches!(l.as_bytes()[i - 1], b' ' | b'{' | b',') {
                hide(
                    l[i + "password:".len()..]
                        .split([',', '}'])
                        .next()
                        .unwrap_or(""),
                );
            }
        }
    }
    msg
}

/// serde_yaml points a bad value at its enclosing mapping; find the `key: value` line that holds
/// the quoted value so the message names the line and key to fix.
fn name_bad_value(text: &str, msg: &str) -> String {
    let Some(value) = first_quoted(msg) else {
        return msg.to_string();
    };
    let hit = text.lines().enumerate().find(|(_, l)| {
        let l = l.trim_end();
        l.contains(':')
            && (l.ends_with(value)
                || l.ends_with(&format!("\"{value}\""))
                || l.ends_with(&format!("'{value}'")))
    });
    match hit {
        Some((i, l)) => {
            let key = l
                .trim()
                .trim_start_matches("- ")
                .split(':')
                .next()
                .unwrap_or("")
                .trim();
            format!("line {}: key `{key}`: {msg}", i + 1)
        }
        None => msg.to_string(),
    }
}

/// "line N: " for the first line mentioning `needle`, to point at the offending entry.
fn line_of(text: &str, needle: &str) -> String {
    text.lines()
        .position(|l| l.contains(needle))
        .map(|i| format!("line {}: ", i + 1))
        .unwrap_or_default()
}

impl RepoConfig {
    /// Reads and validates `path`; a missing file is an empty configuration.
    pub fn load(path: &Path) -> Result<RepoConfig, ConfigError> {
        let Some(text) = read_text(path)? else {
            return Ok(RepoConfig::default());
        };
        let cfg: RepoConfig = parse_yaml(&text, path)?;
        cfg.check().map_err(|m| {
            invalid(
                path,
                format!(
                    "{}{m}",
                    first_quoted(&m)
                        .map(|n| line_of(&text, n))
                        .unwrap_or_default()
                ),
            )
        })?;
        Ok(cfg)
    }

    pub fn check(&self) -> Result<(), String> {
        let mut names = BTreeSet::new();
        for m in &self.mirrors {
            if !names.insert(m.name.as_str()) {
                return Err(format!("duplicate mirror name `{}`", m.name));
            }
            if !m.repos.is_empty()
                || !m.exclude.is_empty()
                || m.name_style.is_some()
                || m.propagate_deletion
            {
                let key = if !m.repos.is_empty() {
                    "repos"
                } else if !m.exclude.is_empty() {
                    "exclude"
                } else if m.name_style.is_some() {
                    "name_style"
                } else {
                    "propagate_deletion"
                };
                return Err(format!(
                    "mirror `{}`: `{key}` belongs in server-wide rules only",
                    m.name
                ));
            }
            m.validate()?;
        }
        Ok(())
    }

    /// Validates, then writes atomically, keeping the file's mode (0600 for a new file, since it
    /// may hold an inline secret).
    pub fn save(&self, path: &Path) -> Result<(), ConfigError> {
        self.check().map_err(|m| invalid(path, m))?;
        // `set` must not replace a symlinked config.yaml by a file (nor write where it points).
        crate::paths::refuse_symlink(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let full = || -> Result<String, ConfigError> {
            let text = serde_yaml::to_string(self).map_err(|e| invalid(path, e.to_string()))?;
            let header = "# git-pushmirror mirrors of this repository; edit with `git-pushmirror add/set/remove`.\n";
            Ok(format!("{header}{text}"))
        };
        // The admin's comments, key order and blank lines survive: only what changed is
        // edited (see config/edit.rs), and the result must mean exactly `self` to the strict
        // loader before it replaces the file.
        let text = match std::fs::read_to_string(path) {
            Ok(old_text) if !old_text.trim().is_empty() => {
                match self.edit_in_place(&old_text, path) {
                    Ok(t) => t,
                    Err(why) => {
                        eprintln!(
                        "git-pushmirror: note: {}: cannot edit it in place ({}); it is rewritten in full, without its comments",
                        crate::text::one_line(&crate::text::path_text(path)),
                        crate::text::one_line(&why.to_string())
                    );
                        full()?
                    }
                }
            }
            _ => full()?,
        };
        // A new file: private, or group-readable in a shared repository (never to others: it
        // may hold an inline password).
        let mode = crate::paths::mode_of(path).unwrap_or_else(|| {
            crate::paths::file_mode_in(path.parent().unwrap_or(Path::new("."))) & 0o660
        });
        crate::paths::write_atomic(path, text.as_bytes(), mode).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    /// `old_text` edited to mean `self`, checked by the strict loader.
    fn edit_in_place(&self, old_text: &str, path: &Path) -> Result<String, String> {
        let old: RepoConfig = parse_yaml(old_text, path).map_err(|e| e.to_string())?;
        let text = edit::edit_text(old_text, &old, self)?;
        let back: RepoConfig = parse_yaml(&text, path).map_err(|e| e.to_string())?;
        back.check()?;
        if back != *self {
            return Err("the edited text would not mean the new configuration".into());
        }
        Ok(text)
    }

    pub fn find(&self, name: &str) -> Option<&MirrorConfig> {
        self.mirrors.iter().find(|m| m.name == name)
    }
}

fn first_quoted(msg: &str) -> Option<&str> {
    let start = msg.find('`')? + 1;
    let len = msg[start..].find('`')?;
    Some(&msg[start..start + len])
}

/// How long an SSH connection master outlives a sync by default.
pub const DEFAULT_SSH_PERSIST: Duration = Duration::from_secs(60);

/// A mirror with every setting resolved: mirror, then repository defaults, then server defaults,
/// then built-ins.
#[derive(Debug, Clone)]
pub struct Effective {
    pub mirror: MirrorConfig,
    /// The file the mirror came from (auth checks the mode of the file holding an inline secret).
    pub source: PathBuf,
    pub debounce: Duration,
    /// No `debounce` is configured (mirror, repository or server): the built-in interval is
    /// adaptive (see `flusher::interval_end`); a configured one is a strict minimum interval.
    pub debounce_adaptive: bool,
    pub max_delay: Duration,
    pub timeout: Duration,
    /// How long an SSH connection master waits for the next sync (zero: one per sync).
    pub ssh_persist: Duration,
    pub max_attempts: u32,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    pub lfs: LfsSettings,
    /// Create the target when a sync finds it missing (the mirror's, else the defaults').
    pub create_missing: bool,
    /// `${name}` of the repository when a server rule made this mirror (the record of a
    /// target it creates is kept under that name; see `ops::created`).
    pub rule_name: Option<String>,
}

/// Everything one repository needs to run: its mirrors resolved, plus the server-wide settings.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub server: ServerConfig,
    pub server_path: PathBuf,
    pub mirrors: Vec<Effective>,
    /// The repository's `notify`, else the server file's.
    pub notify: Option<NotifyConfig>,
}

impl Loaded {
    /// Every `password_env` variable the server file's rules (all of them, not only this
    /// repository's) and this repository's mirrors name; see [`password_env_names`].
    pub fn password_env_names(&self) -> Vec<String> {
        password_env_names(&self.server.rules, self.mirrors.iter().map(|e| &e.mirror))
    }
}

pub fn load(paths: &crate::paths::RepoPaths) -> Result<Loaded, ConfigError> {
    let (server, server_path) = ServerConfig::load()?;
    load_with(server, server_path, paths)
}

/// `load` with the server-wide file already read (a server-wide scan reads it once).
pub fn load_with(
    server: ServerConfig,
    server_path: PathBuf,
    paths: &crate::paths::RepoPaths,
) -> Result<Loaded, ConfigError> {
    let repo = RepoConfig::load(&paths.config())?;
    let d = server.defaults.overlay(&repo.defaults);
    let mut list: Vec<(MirrorConfig, PathBuf, bool)> = Vec::new();
    let repo_name = rule_name(&server, &paths.git_dir);
    if let Some(name) = &repo_name {
        for r in &server.rules {
            if let Some(m) = r.for_repo(name) {
                list.push((m, server_path.clone(), true));
            }
        }
    }
    for m in &repo.mirrors {
        // A repository's own mirror of the same name overrides the server rule.
        list.retain(|(x, _, _)| x.name != m.name);
        list.push((m.clone(), paths.config(), false));
    }
    let mirrors = list
        .into_iter()
        .map(|(m, source, from_rule)| {
            let max_delay_default = if m.only_protected_branches {
                d.max_delay_protected
                    .map_or(Duration::from_secs(60), |x| x.0)
            } else {
                d.max_delay.map_or(Duration::from_secs(300), |x| x.0)
            };
            Effective {
                debounce: m
                    .debounce
                    .or(d.debounce)
                    .map_or(Duration::from_secs(1), |x| x.0),
                debounce_adaptive: m.debounce.or(d.debounce).is_none(),
                max_delay: m.max_delay.map_or(max_delay_default, |x| x.0),
                timeout: m
                    .timeout
                    .or(d.timeout)
                    .map_or(Duration::from_secs(120), |x| x.0),
                ssh_persist: m
                    .ssh_persist
                    .or(d.ssh_persist)
                    .map_or(DEFAULT_SSH_PERSIST, |x| x.0),
                max_attempts: d.max_attempts.unwrap_or(8).max(1),
                backoff_initial: d.backoff_initial.map_or(Duration::from_secs(2), |x| x.0),
                backoff_max: d.backoff_max.map_or(Duration::from_secs(300), |x| x.0),
                lfs: lfs_settings(&m, &d, repo_name.as_deref()),
                create_missing: m.create_missing.or(d.create_missing).unwrap_or(false),
                rule_name: repo_name.clone().filter(|_| from_rule),
                mirror: m,
                source,
            }
        })
        .collect();
    let notify = repo.notify.clone().or_else(|| server.notify.clone());
    Ok(Loaded {
        server,
        server_path,
        mirrors,
        notify,
    })
}

/// A mirror's LFS settings: its own, then the repository's defaults, then the server's.
/// `${name}` in a default's `lfs_store` is the repository's name under the server's root.
fn lfs_settings(m: &MirrorConfig, d: &Defaults, name: Option<&str>) -> LfsSettings {
    let store = m.lfs_store.clone().or_else(|| {
        d.lfs_store
            .as_ref()
            .map(|s| s.replace("${name}", name.unwrap_or("${name}")))
    });
    LfsSettings {
        mode: m.lfs.or(d.lfs).unwrap_or(LfsMode::Auto),
        store: store.map(PathBuf::from),
        layout: m.lfs_layout.or(d.lfs_layout).unwrap_or_default(),
        concurrency: d.lfs_concurrency.unwrap_or(4).clamp(1, 64),
    }
}

impl Rule {
    /// This rule as the mirror of the repository `name` (its path under the root), or None when
    /// its `repos` patterns do not pick it or an `exclude` pattern does. `${name}` in the URL and
    /// the LFS keys is written in the rule's `name_style` (the LFS store, on this server, keeps
    /// the repository's own path).
    pub fn for_repo(&self, name: &str) -> Option<MirrorConfig> {
        let picked = self.repos.is_empty()
            || self
                .repos
                .iter()
                .any(|p| crate::pattern::wildmatch(p, name));
        // An exclusion written with the directory's `.git` (`secret.git`, `*/attic.git`) still
        // excludes: leaving a repository out is the safe side of a near miss.
        let with_git = format!("{name}.git");
        if !picked
            || self.exclude.iter().any(|p| {
                crate::pattern::wildmatch(p, name) || crate::pattern::wildmatch(p, &with_git)
            })
        {
            return None;
        }
        let target = self.name_style.unwrap_or_default().apply(name);
        let mut m = self.clone();
        m.url = m.url.replace("${name}", &target);
        m.lfs_store = m.lfs_store.map(|s| s.replace("${name}", name));
        m.lfs_url = m.lfs_url.map(|s| s.replace("${name}", &target));
        Some(m)
    }
}

/// `${name}` for a repository under the server's root: its relative path without `.git`.
pub fn rule_name(server: &ServerConfig, git_dir: &Path) -> Option<String> {
    let root = std::fs::canonicalize(server.root.as_ref()?).ok()?;
    let dir = std::fs::canonicalize(git_dir).ok()?;
    let rel = dir.strip_prefix(&root).ok()?.to_str()?.to_string();
    let rel = rel
        .strip_suffix(".git")
        .unwrap_or(&rel)
        .trim_end_matches('/')
        .to_string();
    (!rel.is_empty()).then_some(rel)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(Dur::parse("1s").unwrap().0, Duration::from_secs(1));
        assert_eq!(Dur::parse("1h30m").unwrap().0, Duration::from_secs(5400));
        assert_eq!(Dur::parse("250ms").unwrap().0, Duration::from_millis(250));
        assert_eq!(Dur::parse("2d").unwrap().0, Duration::from_secs(2 * 86_400));
        assert_eq!(Dur::parse(" 0s ").unwrap().0, Duration::ZERO);
        assert_eq!(
            Dur::parse("1d2h3m4s5ms").unwrap().0,
            Duration::from_millis(93_784_005)
        );
        for bad in [
            "",
            "5",
            "s",
            "5 minutes",
            "1.5s",
            "-1s",
            "5x",
            "5mins",
            "PT1H",
            "1s ago",
        ] {
            assert!(Dur::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Dur::parse("90s").unwrap().to_string(), "90s");
        assert_eq!(Dur::parse("5m").unwrap().to_string(), "5m");
    }

    fn load_text(text: &str) -> Result<RepoConfig, String> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.yaml");
        std::fs::write(&p, text).unwrap();
        RepoConfig::load(&p).map_err(|e| e.to_string())
    }

    #[test]
    fn load_refuses_url_secrets_that_would_be_shown_or_ignored() {
        // git reads `user:pass@host:path` as host `user`, path `pass@host:path`.
        let e =
            load_text("mirrors:\n  - name: a\n    url: deploy:hunter2@host:x.git\n").unwrap_err();
        assert!(e.contains("scp-like") && !e.contains("hunter2"), "{e}");
        assert_eq!(e.lines().count(), 1, "{e}");
        // URL credentials next to auth.method: password were silently dropped.
        let e = load_text(
            "mirrors:\n  - name: a\n    url: https://u:hunter2@host/x.git\n    auth:\n      method: password\n      username: u\n      password_env: P\n",
        )
        .unwrap_err();
        assert!(
            e.contains("credentials") && e.contains("auth") && !e.contains("hunter2"),
            "{e}"
        );
        load_text("mirrors:\n  - name: a\n    url: https://u:hunter2@host/x.git\n").unwrap();
        load_text(
            "mirrors:\n  - name: a\n    url: https://host/x.git\n    auth:\n      method: password\n      username: u\n      password_env: P\n",
        )
        .unwrap();
    }

    #[test]
    fn password_auth_is_for_http_mirrors_only() {
        use crate::url::Scheme;
        let password = Auth::Password {
            username: "u".into(),
            password: None,
            password_file: None,
            password_env: Some("P".into()),
        };
        let key = Auth::SshKey {
            key_file: "/k".into(),
            known_hosts: None,
            host_key: None,
        };
        for (auth, scheme, refused) in [
            (&password, Scheme::Https, false),
            (&password, Scheme::Http, false),
            (&password, Scheme::Local, true),
            (&password, Scheme::Ssh, true),
            (&password, Scheme::Git, true),
            (&Auth::None, Scheme::Local, false),
            (&key, Scheme::Ssh, false),
            (&key, Scheme::Local, false),
        ] {
            let why = password_auth_refused(auth, scheme);
            assert_eq!(why.is_some(), refused, "{auth:?} {scheme:?}: {why:?}");
            if let Some(why) = why {
                assert!(why.contains("https://") && !why.contains('\n'), "{why}");
            }
        }
        // At load, with the file, line and key named; for every non-HTTP form of URL.
        for url in [
            "/tmp/m.git",
            "file:///tmp/m.git",
            "ssh://git@host/x.git",
            "git@host:x.git",
            "git://host/x.git",
        ] {
            let e = load_text(&format!(
                "mirrors:\n  - name: local\n    url: {url}\n    auth:\n      method: password\n      username: u\n      password_env: P\n"
            ))
            .unwrap_err();
            assert!(
                e.contains("config.yaml")
                    && e.contains("line 2")
                    && e.contains("`local`")
                    && e.contains("auth.method password"),
                "{url}: {e}"
            );
        }
        // A server rule is refused the same way when the server file loads.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("server.yaml");
        std::fs::write(
            &p,
            "rules:\n  - name: r\n    url: git@host:${name}.git\n    auth:\n      method: password\n      username: u\n      password_file: /pw\n",
        )
        .unwrap();
        let e = ServerConfig::load_from(p).unwrap_err().to_string();
        assert!(
            e.contains("server.yaml") && e.contains("`r`") && e.contains("auth.method password"),
            "{e}"
        );
    }

    #[test]
    fn password_env_names_are_every_mirrors_and_rules() {
        let with_env = |name: &str, var: &str| {
            let mut m = MirrorConfig::new(name, "https://h/x.git");
            m.auth = Auth::Password {
                username: "u".into(),
                password: None,
                password_file: None,
                password_env: Some(var.into()),
            };
            m
        };
        let mut by_file = MirrorConfig::new("f", "https://h/y.git");
        by_file.auth = Auth::Password {
            username: "u".into(),
            password: None,
            password_file: Some("/pw".into()),
            password_env: None,
        };
        let rules = [with_env("r", "RULE_TOKEN"), with_env("r2", "SHARED")];
        let mirrors = [
            with_env("a", "A_TOKEN"),
            with_env("b", "SHARED"),
            with_env("empty", ""),
            by_file,
            MirrorConfig::new("plain", "/tmp/m.git"),
        ];
        assert_eq!(
            password_env_names(&rules, &mirrors),
            ["A_TOKEN", "RULE_TOKEN", "SHARED"]
        );
        assert!(password_env_names(&[], &[]).is_empty());
    }

    #[test]
    fn strict_parsing_names_line_and_key() {
        let e = load_text("mirrors:\n  - name: a\n    url: /tmp/x.git\n    debounse: 1s\n")
            .unwrap_err();
        assert!(
            e.contains("config.yaml") && e.contains("debounse") && e.contains("line 4"),
            "{e}"
        );
        let e = load_text("mirrors:\n  - name: a\n    url: /tmp/x.git\n    debounce: soon\n")
            .unwrap_err();
        assert!(e.contains("debounce") && e.contains("soon"), "{e}");
        let e = load_text(
            "mirrors:\n  - name: a\n    url: /tmp/x.git\n  - name: a\n    url: /tmp/y.git\n",
        )
        .unwrap_err();
        assert!(
            e.contains("duplicate mirror name `a`") && e.contains("line 2"),
            "{e}"
        );
        let e = load_text("mirrors:\n  - name: a\n    url: ext::sh -c id\n").unwrap_err();
        assert!(e.contains("url"), "{e}");
        assert!(load_text("").unwrap().mirrors.is_empty());
        let ok =
            load_text("mirrors:\n  - name: a\n    url: /tmp/x.git\n    max_delay: 2m\n").unwrap();
        assert_eq!(ok.mirrors[0].max_delay, Some(Dur(Duration::from_secs(120))));
    }

    #[test]
    fn shipped_examples_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
        let repo = RepoConfig::load(&dir.join("config.example.yaml")).unwrap();
        assert_eq!(repo.mirrors.len(), 3);
        let p = dir.join("server.example.yaml");
        let server: ServerConfig = parse_yaml(&std::fs::read_to_string(&p).unwrap(), &p).unwrap();
        assert_eq!(server.rules.len(), 1);
        assert_eq!(server.concurrency(), 4);
        assert!(server
            .notify
            .is_some_and(|n| n.command.ends_with("pushmirror-mail")));
    }

    #[test]
    fn config_errors_never_show_an_inline_password() {
        for text in [
            "mirrors:\n- name: h\n  url: https://h/x\n  auth:\n    method: password\n    username: u\n    password: 987654321\n",
            "mirrors:\n- name: h\n  url: https://h/x\n  auth: {method: password, username: u, password: 987654321}\n",
            "mirrors:\n- name: h\n  url: https://h/x\n  auth:\n    method: password\n    username: u\n    password: 987654321 # a PIN\n",
        ] {
            let e = parse_yaml::<RepoConfig>(text, Path::new("c.yaml"))
                .unwrap_err()
                .to_string();
            assert!(!e.contains("987654321") && e.contains("*****"), "{e}");
        }
        let e = parse_yaml::<RepoConfig>(
            "mirrors:\n- name: h\n  url: https://h/x\n  auth:\n    method: password\n    username: u\n    password: 7\n",
            Path::new("c.yaml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("key `password`") && e.contains("`*****`"), "{e}");
    }

    #[test]
    fn save_roundtrips_and_keeps_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.yaml");
        let mut c = RepoConfig::default();
        c.mirrors
            .push(MirrorConfig::new("gh", "https://example.com/a.git"));
        c.save(&p).unwrap();
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        c.save(&p).unwrap();
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o640
        );
        assert_eq!(RepoConfig::load(&p).unwrap(), c);
    }

    #[test]
    fn rules_name_targets_and_leave_repositories_out() {
        for (style, want) in [
            (NameStyle::Slash, "team/sub/app"),
            (NameStyle::Dash, "team-sub-app"),
            (NameStyle::Underscore, "team_sub_app"),
            (NameStyle::Basename, "app"),
        ] {
            assert_eq!(style.apply("team/sub/app"), want);
            assert_eq!(style.apply("app"), "app");
        }
        let mut r = MirrorConfig::new("gh", "https://example.com/acme/${name}.git");
        r.lfs_store = Some("/srv/lfs/${name}".into());
        r.name_style = Some(NameStyle::Dash);
        r.repos = vec!["team/**".into(), "tools".into()];
        r.exclude = vec!["team/private/*".into(), "*/attic".into()];
        let m = r.for_repo("team/web/app").unwrap();
        assert_eq!(m.url, "https://example.com/acme/team-web-app.git");
        // The LFS store is on this server: the repository's own path.
        assert_eq!(m.lfs_store.as_deref(), Some("/srv/lfs/team/web/app"));
        assert!(r.for_repo("tools").is_some());
        for out in ["team/private/x", "team/attic", "other"] {
            assert!(r.for_repo(out).is_none(), "{out}");
        }
        r.repos.clear();
        assert!(r.for_repo("other").is_some());
        assert!(r.for_repo("team/attic").is_none());
        // An exclusion matches the name before name_style, with or without the `.git`.
        r.exclude = vec!["secret.git".into(), "team-web-*".into()];
        assert!(r.for_repo("secret").is_none());
        assert!(r.for_repo("team/web/app").is_some());
        assert!(r.for_repo("team-web-x").is_none());
        // Repository files name their own URLs: the rule keys are refused there.
        for key in ["exclude: [x]", "name_style: dash"] {
            let e = load_text(&format!(
                "mirrors:\n  - name: a\n    url: /tmp/x.git\n    {key}\n"
            ))
            .unwrap_err();
            assert!(e.contains("server-wide rules only"), "{e}");
        }
        let e =
            load_text("mirrors:\n  - name: a\n    url: /tmp/x.git\n    create_missing: maybe\n")
                .unwrap_err();
        assert!(e.contains("create_missing"), "{e}");
    }

    #[test]
    fn lfs_settings_resolve_mirror_then_repository_then_server() {
        let mut server = Defaults {
            lfs_store: Some("/srv/lfs/${name}".into()),
            lfs_layout: Some(LfsLayout::Gitea),
            lfs_concurrency: Some(8),
            ..Defaults::default()
        };
        let repo = Defaults {
            lfs: Some(LfsMode::On),
            ..Defaults::default()
        };
        let d = server.overlay(&repo);
        let m = MirrorConfig::new("gh", "https://example.com/a.git");
        let s = lfs_settings(&m, &d, Some("team/app"));
        assert_eq!(s.mode, LfsMode::On);
        assert_eq!(s.store, Some(PathBuf::from("/srv/lfs/team/app")));
        assert_eq!(s.layout, LfsLayout::Gitea);
        assert_eq!(s.concurrency, 8);
        let mut own = m.clone();
        own.lfs = Some(LfsMode::Off);
        own.lfs_layout = Some(LfsLayout::Default);
        own.lfs_store = Some("/data/lfs".into());
        let s = lfs_settings(&own, &d, Some("team/app"));
        assert_eq!(
            (s.mode, s.store, s.layout),
            (
                LfsMode::Off,
                Some(PathBuf::from("/data/lfs")),
                LfsLayout::Default
            )
        );
        server.lfs_store = None;
        let s = lfs_settings(&m, &Defaults::default(), None);
        assert_eq!(
            (s.mode, s.store, s.layout, s.concurrency),
            (LfsMode::Auto, None, LfsLayout::Default, 4)
        );
        let e =
            load_text("mirrors:\n  - name: a\n    url: /tmp/x.git\n    lfs: maybe\n").unwrap_err();
        assert!(e.contains("lfs") && e.contains("maybe"), "{e}");
        let ok = load_text(
            "mirrors:\n  - name: a\n    url: /tmp/x.git\n    lfs: off\n    lfs_layout: gitlab\n",
        )
        .unwrap();
        assert_eq!(ok.mirrors[0].lfs, Some(LfsMode::Off));
    }
}
