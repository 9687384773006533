//! Argument definitions (clap): every command, its options and its help text.

use super::*;

pub(super) const EXAMPLES: &str = "Examples:
  git-pushmirror --repo /srv/git/app.git install
  git-pushmirror --repo /srv/git/app.git add github https://github.com/acme/app.git \\
      --username octocat --password-file /etc/git-pushmirror/github.token
  git-pushmirror --repo /srv/git/app.git add backup /srv/backup/app.git --debounce 5s
  git-pushmirror --repo /srv/git/app.git set github debounce=5s protected=main,release/*
  git-pushmirror --repo /srv/git/app.git disable backup
  git -C /srv/git/app.git pushmirror status
  git-pushmirror --repo /srv/git/app.git status --json
  git-pushmirror --repo /srv/git/app.git sync github --wait
  git-pushmirror install --hooks-dir ~/.gitolite/hooks/common     # Gitolite: every repository
  git-pushmirror sweep --root /srv/git                            # from a systemd timer or cron
  git-pushmirror status --root /srv/git                           # every repository, unhealthy first
  git-pushmirror metrics --output /var/lib/prometheus/node-exporter/git-pushmirror.prom

Exit status: 0 success, 1 failure (or, for status, an unhealthy mirror), 2 usage error
(unknown command, option, mirror or key; bad value; duplicate name; not a repository).
Server-wide settings and mirror rules: /etc/git-pushmirror/config.yaml (GIT_PUSHMIRROR_CONFIG).";

pub(super) const STATUS_HELP: &str = "With --root, every repository under the root: the same \
fields plus each repository's path, repositories with an unhealthy mirror first (a NAME keeps only \
mirrors of that name). Read from the files only (no lock, no git per repository); the hook is \
found without git, so hook_installed is null where a core.hooksPath may apply. Exit 1 when an enabled mirror anywhere is unhealthy or a repository's config is unreadable.

Examples:
  git-pushmirror status --root /srv/git
  git-pushmirror status --root --json | jq '.repositories[].mirrors[] | select(.healthy|not)'";

pub(super) const SYNC_HELP: &str = "With --all, after a destination comes back: every enabled mirror \
under the root (or only those whose masked URL matches --url) gets a full sync, one attempt each, at \
most `concurrency` repositories at a time; a progress line (done/total) is shown when stderr is a \
terminal. A repository whose flusher is already running hands the request to it; --wait waits for \
those syncs too. Exit 1 if any sync failed (each failure is named).

Examples:
  git-pushmirror sync --wait
  git-pushmirror sync --all --url 'https://github.com/acme/*' --wait";

pub(super) const METRICS_HELP: &str = "Labels: repository (path relative to the root) and mirror \
(its name): never a URL. See docs/operations.md for the metric list, a systemd timer and alert rules.

Examples:
  git-pushmirror metrics --root /srv/git --output /var/lib/prometheus/node-exporter/git-pushmirror.prom
  git-pushmirror metrics | less";

pub(super) const SET_HELP: &str =
    "Keys: url, enabled, only_protected_branches, protected (comma-separated \
patterns), branch_regex (RE2 regex on branch names, e.g. '^(main|release/.*)$'), keep_divergent_refs, debounce, max_delay, timeout, ssh_persist (durations: 500ms, 1s, 5m, 1h; ssh_persist=0 closes the SSH connection after each sync), \
refs (comma-separated prefixes, e.g. refs/notes/), allow_insecure_http, ca_file, \
auth.method (none|password|ssh_key), auth.username, auth.password_file, auth.password_env, \
auth.key_file, auth.known_hosts, auth.host_key, lfs (off|on|auto), lfs_store (a directory), \
lfs_layout (default|gitea|gitlab), lfs_url, lfs_auth, push_batch_refs (ref updates per push, e.g. 500), \
push_batch_bytes (pack size per push, e.g. 1800MiB), create_missing (create the target when it is missing), \
forge (github|gitlab|gitea), forge_api (the API base), create_owner, create_visibility \
(private|internal|public). An empty value (key=) removes a setting.
A mirror that comes from a server rule gets its own copy in this repository first (an override;
`remove` it to follow the rule again).

Examples:
  git-pushmirror set github debounce=5s keep_divergent_refs=true
  git-pushmirror set github only_protected_branches=true protected=main,release/*
  git-pushmirror set github auth.method=password auth.username=bot auth.password_env=GH_TOKEN
  git-pushmirror set github lfs=on lfs_store=/var/lib/gitea/data/lfs lfs_layout=gitea";

pub(super) const INSTALL_HELP: &str = "Where the hook goes (the first that applies):
  --hooks-dir DIR           DIR/post-receive, or DIR/git-pushmirror if DIR is a post-receive.d/
                            (Gitolite: ~/.gitolite/hooks/common, then `gitolite setup --hooks-only`)
  custom_hooks/ exists      custom_hooks/post-receive.d/git-pushmirror (GitLab server hooks)
  core.hooksPath            that directory, as below
  hooks/post-receive.d/     hooks/post-receive.d/git-pushmirror when a foreign hooks/post-receive
    + a foreign dispatcher  runs that directory (Gitea)
  otherwise                 hooks/post-receive
Idempotent; upgrades an older git-pushmirror wrapper; never overwrites a foreign post-receive
unless --chain (it is kept, runs first with the same stdin, and `uninstall` puts it back).

Examples:
  git-pushmirror --repo /srv/git/app.git install
  git-pushmirror --repo /srv/git/app.git install --chain
  git-pushmirror install --hooks-dir /home/git/.gitolite/hooks/common";

#[derive(Parser, Debug)]
#[command(name = "git-pushmirror", version, about = "GitLab-style push mirroring for any git server", after_help = EXAMPLES)]
pub(super) struct Cli {
    /// The bare repository (default: $GIT_DIR, else the repository of the current directory)
    #[arg(long, global = true, value_name = "PATH")]
    pub(crate) repo: Option<PathBuf>,
    #[command(subcommand)]
    pub(crate) cmd: Cmd,
}

#[derive(Subcommand, Debug)]
pub(super) enum Cmd {
    /// Add a mirror (validated before it is written; the first full sync starts at once)
    #[command(after_help = "Examples:
  git-pushmirror add github https://github.com/acme/app.git --username x-access-token \\
      --password-file /etc/git-pushmirror/secrets/github.token
  git-pushmirror add gitlab https://gitlab.example.com/acme/app.git --username oauth2 \\
      --password-env GITLAB_TOKEN --only-protected-branches --protected main --protected 'release/*'
  git-pushmirror add backup ssh://git@backup.example.com/srv/git/app.git \\
      --ssh-key /etc/git-pushmirror/secrets/backup_ed25519 --known-hosts /etc/git-pushmirror/known_hosts
  git-pushmirror add backup git@backup.example.com:acme/app.git --generate-ssh-key --detect-host-key
  git-pushmirror add local /srv/backup/app.git --debounce 5s --keep-divergent-refs")]
    Add(Box<AddArgs>),
    /// List the mirrors of the repository
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one mirror's configuration
    Show {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Change mirror settings: `set NAME key=value...` (e.g. debounce=5s keep_divergent_refs=true auth.username=bot)
    #[command(after_help = SET_HELP)]
    Set {
        name: String,
        #[arg(required = true, value_name = "KEY=VALUE")]
        assignments: Vec<String>,
    },
    /// Remove a mirror, its state and its generated key pair
    Remove { name: String },
    /// Generate an ed25519 key pair for an SSH mirror and print the public key (for a deploy
    /// key); an existing generated pair is replaced (key rotation)
    #[command(
        after_help = "The private key goes to pushmirror/keys/NAME (mode 0600) and is never printed; the mirror's auth becomes `{method: ssh_key, key_file: keys/NAME}` (a host-key pin it had is kept). With --rule, the pair is shared by every repository of the server rule NAME and goes to keys/NAME next to the server-wide config; add the printed auth line to the rule by hand.

Examples:
  git-pushmirror keygen backup
  git-pushmirror keygen --rule backup"
    )]
    Keygen {
        name: String,
        /// For a server rule (no repository needed)
        #[arg(long)]
        rule: bool,
    },
    /// Fetch the SSH host keys of a mirror's host (ssh-keyscan), print their SHA256
    /// fingerprints and pin them (pushmirror/keys/NAME.known_hosts)
    #[command(
        after_help = "With --host-key-fingerprint, only keys with that fingerprint are pinned, and none matching is an error (nothing changes): compare with what the host publishes.

With --rule, the pin goes to keys/NAME.known_hosts next to the server-wide config; add the
printed auth line to the rule by hand.

Examples:
  git-pushmirror detect-host-key backup
  git-pushmirror detect-host-key --rule backup
  git-pushmirror detect-host-key github \
      --host-key-fingerprint SHA256:+DiY3wvvV6TuJJhbpZisF/zLDA0zPMSvHdkr4UvCOqU"
    )]
    DetectHostKey {
        name: String,
        /// For a server rule: pin into keys/NAME.known_hosts next to the server-wide config
        #[arg(long)]
        rule: bool,
        /// Pin only a key with this fingerprint (repeatable), e.g. SHA256:+DiY3wvv...
        #[arg(long = "host-key-fingerprint", value_name = "SHA256:...")]
        fingerprints: Vec<String>,
    },
    /// Enable a mirror (it gets a full sync)
    Enable { name: String },
    /// Disable a mirror (nothing is pushed to it; compaction no longer waits for it)
    Disable { name: String },
    /// Force a full sync now, bypassing the minimum interval (debounce) ("Update now")
    #[command(after_help = SYNC_HELP)]
    Sync {
        #[arg(conflicts_with = "all")]
        name: Option<String>,
        /// Wait for the sync and exit non-zero if it failed
        #[arg(long)]
        wait: bool,
        /// Every enabled mirror of every repository under the root, within `concurrency`
        #[arg(long)]
        all: bool,
        /// With --all: the root (default: `root` of the server-wide config)
        #[arg(long, value_name = "DIR", requires = "all")]
        root: Option<PathBuf>,
        /// With --all: only mirrors whose URL (as `status` shows it, credentials masked)
        /// matches this git wildcard, e.g. 'https://github.com/acme/*'
        #[arg(long = "url", value_name = "PATTERN", requires = "all")]
        url_pattern: Option<String>,
    },
    /// Mirror health: exit 0 healthy, 1 when a mirror failed or is behind its max_delay
    #[command(after_help = STATUS_HELP)]
    Status {
        name: Option<String>,
        #[arg(long)]
        json: bool,
        /// Every repository under DIR (default: `root` of the server-wide config), unhealthy first
        #[arg(long, value_name = "DIR")]
        #[allow(clippy::option_option)]
        root: Option<Option<PathBuf>>,
    },
    /// Write Prometheus metrics of every repository under DIR (node_exporter textfile format)
    #[command(after_help = METRICS_HELP)]
    Metrics {
        /// The root (default: `root` of the server-wide config)
        #[arg(long, value_name = "DIR")]
        root: Option<PathBuf>,
        /// Write to FILE atomically (temp file + rename) instead of stdout; name it *.prom in
        /// node_exporter's --collector.textfile.directory
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Flush every repository under DIR with pending work, a due retry or a mirror never synced
    /// yet, within the concurrency limit (for a systemd timer or cron)
    #[command(
        after_help = "DIR defaults to `root` of the server-wide config. Exits 1 when a repository's \
config could not be read (it is skipped; the others are still flushed).\n\nExample:\n  \
git-pushmirror sweep --root /srv/git"
    )]
    Sweep {
        #[arg(long, value_name = "DIR")]
        root: Option<PathBuf>,
    },
    /// Install the post-receive hook into the repository (or a shared hooks directory)
    #[command(after_help = INSTALL_HELP)]
    Install {
        /// Keep an existing foreign post-receive hook and run it first
        #[arg(long)]
        chain: bool,
        /// Install into this hooks directory instead of one repository's (shared by many)
        #[arg(long, value_name = "DIR")]
        hooks_dir: Option<PathBuf>,
    },
    /// Remove the hook installed by `install` (a chained hook is put back)
    Uninstall {
        /// Remove it from this hooks directory instead of one repository's
        #[arg(long, value_name = "DIR")]
        hooks_dir: Option<PathBuf>,
    },
    /// Run as a hook: `hook post-receive` (what the installed wrapper calls)
    Hook { kind: String },
    /// Run the flusher in the foreground (normally started detached by the hook)
    #[command(hide = true)]
    Flush {
        /// One attempt per due mirror, then exit: a failed mirror's backoff is left to the next
        /// sweep or push (what `sweep` runs)
        #[arg(long)]
        once: bool,
    },
}

#[derive(Args, Debug)]
pub(super) struct AddArgs {
    /// Mirror name: 1-100 of [A-Za-z0-9._-]; a server rule of the same name is overridden
    pub(crate) name: String,
    /// https://, ssh:// or user@host:path, git://, or a local path (http:// needs
    /// --allow-insecure-http)
    pub(crate) url: String,
    /// Minimum interval between two syncs of this mirror (default 1s), e.g. 500ms, 5s: a push
    /// to an idle mirror syncs at once, pushes within the interval go out together after it
    #[arg(long, value_parser = Dur::parse)]
    pub(crate) debounce: Option<Dur>,
    /// Sync at most this long after the first pending push (default 5m; 1m protected-only)
    #[arg(long, value_parser = Dur::parse)]
    pub(crate) max_delay: Option<Dur>,
    /// Bound on each ls-remote and push (default 2m)
    #[arg(long, value_parser = Dur::parse)]
    pub(crate) timeout: Option<Dur>,
    /// Leave mirror refs that diverged from upstream alone (and report them)
    #[arg(long)]
    pub(crate) keep_divergent_refs: bool,
    /// Mirror only branches matching --protected (and all tags)
    #[arg(long)]
    pub(crate) only_protected_branches: bool,
    /// Protected branch pattern (repeatable), e.g. main, release/*
    #[arg(long = "protected", value_name = "PATTERN")]
    pub(crate) protected: Vec<String>,
    /// Mirror only branches this regex matches (RE2 syntax, unanchored, at most 255 characters;
    /// all tags are still mirrored and mirror-only branches are never deleted)
    #[arg(long, value_name = "REGEX")]
    pub(crate) branch_regex: Option<String>,
    /// Extra ref prefix to mirror (repeatable), e.g. refs/notes/
    #[arg(long = "refs", value_name = "PREFIX")]
    pub(crate) refs: Vec<String>,
    /// Accept an http:// URL (credentials would travel in clear)
    #[arg(long)]
    pub(crate) allow_insecure_http: bool,
    /// CA bundle for a mirror behind a private CA
    #[arg(long, value_name = "FILE")]
    pub(crate) ca_file: Option<PathBuf>,
    /// Send Git LFS objects: auto (when the upstream has an LFS store), on, off
    #[arg(long, value_name = "MODE", value_parser = ["auto", "on", "off"])]
    pub(crate) lfs: Option<String>,
    /// Add it disabled (no sync until `enable`)
    #[arg(long)]
    pub(crate) disabled: bool,
    /// Username for password/token auth
    #[arg(long)]
    pub(crate) username: Option<String>,
    /// File holding the password or token (must not be group/world readable)
    #[arg(long, value_name = "FILE")]
    pub(crate) password_file: Option<PathBuf>,
    /// Environment variable holding the password or token
    #[arg(long, value_name = "VAR")]
    pub(crate) password_env: Option<String>,
    /// SSH private key for ssh:// mirrors
    #[arg(long, value_name = "FILE")]
    pub(crate) ssh_key: Option<PathBuf>,
    /// known_hosts file for the mirror's host (strict host key checking is always on)
    #[arg(long, value_name = "FILE")]
    pub(crate) known_hosts: Option<PathBuf>,
    /// Pinned host key, e.g. "ssh-ed25519 AAAA..."
    #[arg(long, value_name = "KEY")]
    pub(crate) host_key: Option<String>,
    /// Generate an ed25519 key pair for this mirror (pushmirror/keys/NAME) and print the public
    /// key to add as a deploy key; no sync starts until `sync NAME` or the next push
    #[arg(long)]
    pub(crate) generate_ssh_key: bool,
    /// Fetch the host's SSH keys (ssh-keyscan, the URL's port), print their fingerprints and pin
    /// them
    #[arg(long)]
    pub(crate) detect_host_key: bool,
    /// With --detect-host-key: pin only a key with this fingerprint, fail if none has it
    /// (repeatable)
    #[arg(long = "host-key-fingerprint", value_name = "SHA256:...")]
    pub(crate) host_key_fingerprints: Vec<String>,
}
