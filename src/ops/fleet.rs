//! A server-wide scan: every repository under a root, its resolved mirrors, its spool and
//! whether a flusher runs there. Read-only and cheap enough for 10,000 repositories: the server
//! file is parsed once, each repository costs a few stats and small file reads, no lock is waited
//! for and no file is created (a reader must not create files, as `root` running it would leave
//! root-owned lock files behind; the flusher probe only tries an existing one) and no process is
//! started.

use std::path::{Path, PathBuf};

use crate::config::{self, Loaded, ServerConfig};
use crate::paths::RepoPaths;
use crate::spool::Contents;

/// One repository as the scan found it.
pub struct RepoScan {
    pub paths: RepoPaths,
    /// Its configuration resolved against the server file, or why that failed (one line).
    pub loaded: Result<Loaded, String>,
    pub contents: Contents,
    pub spool_error: Option<String>,
    pub flusher_running: bool,
    /// `install::check` of the hook, from files only; None when a `core.hooksPath` may apply
    /// (see `hook_file`) or the repository has no mirror.
    pub hook: Option<Result<(), String>>,
}

/// The repositories under a root, read one at a time by `each` (holding every repository's
/// configuration and spool at once would cost memory in proportion to the fleet).
pub struct Fleet {
    pub root: PathBuf,
    pub server: ServerConfig,
    server_path: PathBuf,
    pub dirs: Vec<PathBuf>,
    /// Directories under the root that could not be read (one line each): the repositories in
    /// them are missing from the scan.
    pub unreadable: Vec<String>,
    /// The scanning user's global or system git config sets `core.hooksPath`.
    global_hooks_path: bool,
}

/// The root to scan: `given`, else `root` of the server file. The error is a usage message.
pub fn resolve_root(
    given: Option<&Path>,
    server: &ServerConfig,
    server_path: &Path,
    what: &str,
) -> Result<PathBuf, String> {
    let Some(root) = given.map(Path::to_path_buf).or_else(|| server.root.clone()) else {
        return Err(format!(
            "{what} needs --root DIR (or `root:` in {})",
            server_path.display()
        ));
    };
    if !root.is_dir() {
        return Err(format!("--root {}: not a directory", root.display()));
    }
    Ok(root)
}

/// Finds every repository under `root` (see `find_repos`) and which flushers run.
pub fn scan(root: &Path, server: ServerConfig, server_path: PathBuf) -> Fleet {
    let (dirs, unreadable) = find_all(root);
    Fleet {
        root: root.to_path_buf(),
        server,
        server_path,
        dirs,
        unreadable,
        global_hooks_path: global_hooks_path(),
    }
}

/// Whether `core.hooksPath` is set outside any repository (system or global config): one `git
/// config` for the whole scan.
fn global_hooks_path() -> bool {
    std::process::Command::new("git")
        .args(["config", "--get", "core.hooksPath"])
        .current_dir("/")
        .env_remove("GIT_DIR")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success() && !o.stdout.trim_ascii().is_empty())
}

/// The hook file git runs for `git_dir`, found from files only (`install::hook_path` asks git,
/// one process per repository): GitLab's `custom_hooks/`, else the `hooks/` directory. None
/// when a `core.hooksPath` may point elsewhere: set in the repository's `config`, or in the
/// global or system config.
pub fn hook_file(git_dir: &Path, global_hooks_path: bool) -> Option<PathBuf> {
    let custom = git_dir.join("custom_hooks");
    if custom.is_dir() {
        return Some(custom.join("post-receive.d").join("git-pushmirror"));
    }
    let config = std::fs::read_to_string(git_dir.join("config")).unwrap_or_default();
    let local = config.lines().any(|l| {
        l.trim_start()
            .to_ascii_lowercase()
            .strip_prefix("hookspath")
            .is_some_and(|r| r.trim_start().starts_with('='))
    });
    if global_hooks_path || local {
        return None;
    }
    Some(crate::install::hook_in_dir(&git_dir.join("hooks")))
}

impl Fleet {
    /// Reads each repository in path order and hands it to `f`.
    pub fn each(&self, mut f: impl FnMut(RepoScan)) {
        for d in &self.dirs {
            let mut repo = scan_repo(d, &self.server, &self.server_path);
            if repo.loaded.as_ref().is_ok_and(|l| !l.mirrors.is_empty()) {
                repo.hook =
                    hook_file(d, self.global_hooks_path).map(|h| crate::install::check_at(&h));
            }
            f(repo);
        }
    }

    /// The repository's path relative to the root (`.git` kept), as the metrics label it: bytes
    /// that are not printable UTF-8 as `\xNN` and a backslash doubled, so that two
    /// repositories never share a label (a lossy conversion makes every invalid byte `\u{FFFD}`).
    pub fn relative(&self, git_dir: &Path) -> String {
        use std::os::unix::ffi::OsStrExt;
        let rel = git_dir.strip_prefix(&self.root).unwrap_or(git_dir);
        crate::text::escape_bytes(rel.as_os_str().as_bytes())
    }
}

fn scan_repo(git_dir: &Path, server: &ServerConfig, server_path: &Path) -> RepoScan {
    let paths = RepoPaths::new(git_dir);
    let has_dir = paths.dir.is_dir();
    let loaded = if !has_dir && server.rules.is_empty() {
        // Nothing configured here and no rule could reach it: skip the config machinery.
        Ok(Loaded {
            server: server.clone(),
            server_path: server_path.to_path_buf(),
            mirrors: Vec::new(),
            notify: None,
        })
    } else {
        config::load_with(server.clone(), server_path.to_path_buf(), &paths)
            .map_err(|e| e.to_string())
    };
    let (contents, spool_error) = if has_dir {
        match read_spool(&paths) {
            Ok(c) => (c, None),
            Err(e) => (Contents::default(), Some(e)),
        }
    } else {
        (Contents::default(), None)
    };
    let flusher_running = has_dir && flusher_running(&paths);
    RepoScan {
        paths,
        loaded,
        contents,
        spool_error,
        flusher_running,
        hook: None,
    }
}

/// The spool without its lock: an append in progress can only be a line without its newline
/// at the end, which is left out (it is not damage); compaction replaces the file by rename, so
/// the file read is a whole old or a whole new journal.
pub fn read_spool(paths: &RepoPaths) -> Result<Contents, String> {
    let path = paths.dir.join("spool");
    match std::fs::read(&path) {
        Ok(mut bytes) => {
            let end = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
            bytes.truncate(end);
            Ok(crate::spool::parse(&bytes))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Contents::default()),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Whether a flusher runs for the repository: the lock it holds for its life, probed (see
/// `locks::held`: nothing is created, and the probe cannot make a starting flusher leave).
/// Unlike the local `/proc/locks`, this sees a flusher on another node sharing the storage.
pub fn flusher_running(paths: &RepoPaths) -> bool {
    crate::locks::held(&paths.flusher_alive())
}

/// Every repository under `root` (not descending into one, nor following symlinks, at most 9
/// levels deep), sorted by path, and the directories that could not be read (one line each,
/// naming the directory and why): the repositories in those are not in the list, and every
/// caller reports them and exits 1 rather than show a fleet with holes in it.
/// How deep under the root repositories are looked for: a repository at this depth is found,
/// a directory there that is none is reported (`find_all`), not searched.
const MAX_DEPTH: usize = 9;

pub fn find_all(root: &Path) -> (Vec<PathBuf>, Vec<String>) {
    let (mut dirs, mut unreadable) = (Vec::new(), Vec::new());
    walk(root, 0, &mut dirs, &mut unreadable);
    (dirs, unreadable)
}

fn walk(dir: &Path, depth: usize, out: &mut Vec<PathBuf>, unreadable: &mut Vec<String>) {
    if dir.join("HEAD").is_file() && dir.join("objects").is_dir() && dir.join("refs").is_dir() {
        out.push(dir.to_path_buf());
        return;
    }
    if depth >= MAX_DEPTH {
        // Not searched: said, like a directory that cannot be read, not a silent hole.
        unreadable.push(format!(
            "{}: more than {MAX_DEPTH} levels below the root, not searched: repositories in it are missing",
            crate::text::path_text(dir)
        ));
        return;
    }
    let cannot = |e: std::io::Error| {
        format!(
            "{}: cannot read the directory ({e}): repositories in it are missing",
            crate::text::path_text(dir)
        )
    };
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) => {
            unreadable.push(cannot(e));
            return;
        }
    };
    let mut entries = Vec::new();
    for e in rd {
        match e.and_then(|e| Ok((e.file_type()?, e.path()))) {
            Ok((t, path)) if t.is_dir() => entries.push(path),
            Ok(_) => {}
            Err(e) => unreadable.push(cannot(e)),
        }
    }
    entries.sort();
    for e in entries {
        walk(&e, depth + 1, out, unreadable);
    }
}
