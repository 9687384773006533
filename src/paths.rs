//! Where things live, and the careful file operations everything under `pushmirror/` goes through:
//! private modes, no following of symlinks planted in the directory, atomic replacement.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The files of one repository's mirroring.
#[derive(Debug, Clone)]
pub struct RepoPaths {
    pub git_dir: PathBuf,
    pub dir: PathBuf,
}

impl RepoPaths {
    pub fn new(git_dir: &Path) -> RepoPaths {
        RepoPaths {
            git_dir: git_dir.to_path_buf(),
            dir: git_dir.join("pushmirror"),
        }
    }
    pub fn config(&self) -> PathBuf {
        self.dir.join("config.yaml")
    }
    pub fn state_dir(&self) -> PathBuf {
        self.dir.join("state")
    }
    pub fn log(&self) -> PathBuf {
        self.dir.join("log")
    }
    pub fn flusher_lock(&self) -> PathBuf {
        self.dir.join("flusher.lock")
    }
    /// Held exclusively by the running flusher for its life, for probes that must not disturb
    /// `flusher.lock` (see `locks::held`).
    pub fn flusher_alive(&self) -> PathBuf {
        self.dir.join("flusher.alive")
    }

    /// Creates `pushmirror/` (mode 0700, or what `core.sharedRepository` asks for) if needed;
    /// refuses a symlink in its place, since following it would let whoever planted it choose
    /// where we write.
    pub fn ensure(&self) -> io::Result<()> {
        ensure_dir_mode(&self.dir, shared_dir_mode(&self.git_dir))
    }

    /// `ensure` with the mode `shared_dir_mode` gave (the hook reads git's config only once).
    pub fn ensure_mode(&self, mode: u32) -> io::Result<()> {
        ensure_dir_mode(&self.dir, mode)
    }
}

/// Fails when `path` is a symlink (a missing path is fine): nothing under `pushmirror/` is
/// reached through a link somebody planted.
pub fn refuse_symlink(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(io::Error::other(format!(
            "{} is a symlink; refusing to follow it (remove it)",
            path.display()
        ))),
        _ => Ok(()),
    }
}

/// Creates the directory `path` (not its parents) with the mode its parent implies: 0700, or
/// the parent's group/other bits and setgid in a shared repository. An existing symlink or
/// non-directory there is refused.
pub fn ensure_dir(path: &Path) -> io::Result<()> {
    let parent = path.parent().unwrap_or(Path::new("."));
    let mode = match fs::symlink_metadata(parent) {
        Ok(m) if m.permissions().mode() & 0o2000 != 0 => m.permissions().mode() & 0o2777,
        _ => 0o700,
    };
    ensure_dir_mode(path, mode)
}

fn ensure_dir_mode(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => refuse_symlink(path),
        Ok(m) if m.is_dir() => {
            // A repository switched to sharing after we made the directory: widen it if it is
            // ours (somebody else's we cannot change; git has the same limit).
            if m.permissions().mode() & 0o7777 != mode
                && mode != 0o700
                && m.uid() == unsafe { libc::geteuid() }
            {
                let _ = fs::set_permissions(path, fs::Permissions::from_mode(mode));
            }
            Ok(())
        }
        Ok(_) => Err(io::Error::other(format!(
            "{} is not a directory",
            path.display()
        ))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::DirBuilder::new()
                .mode(mode & 0o777)
                .create(path)
                .or_else(|e| {
                    if e.kind() == io::ErrorKind::AlreadyExists {
                        Ok(())
                    } else {
                        Err(e)
                    }
                })?;
            refuse_symlink(path)?;
            // The umask may have narrowed the mode; setgid is not taken by mkdir at all.
            fs::set_permissions(path, fs::Permissions::from_mode(mode))
        }
        Err(e) => Err(e),
    }
}

/// What `core.sharedRepository` asks of the files git makes, as the permission bits of a
/// directory (0700 when the repository is not shared). Read with a plain scan of the config,
/// like the object format, to keep the hook lean.
pub fn shared_dir_mode(git_dir: &Path) -> u32 {
    shared_dir_mode_in(fs::read_to_string(git_dir.join("config")).ok().as_deref())
}

/// `shared_dir_mode` from the text of the repository's `config` (`None`: unreadable).
pub fn shared_dir_mode_in(git_config: Option<&str>) -> u32 {
    let file = match git_config.and_then(core_shared_repository) {
        Some(v) => match v.as_str() {
            "group" | "true" | "1" => 0o660,
            "all" | "world" | "everybody" | "2" => 0o664,
            "umask" | "false" | "0" | "" => 0o600,
            octal if octal.starts_with('0') => match u32::from_str_radix(octal, 8) {
                Ok(m) => (m & 0o666) | 0o600,
                Err(_) => 0o600,
            },
            _ => 0o600,
        },
        None => 0o600,
    };
    if file == 0o600 {
        0o700
    } else {
        // Read bits give search bits, as git does for its own directories, plus setgid so
        // everything made inside keeps the repository's group.
        file | ((file & 0o444) >> 2) | 0o2000
    }
}

fn core_shared_repository(text: &str) -> Option<String> {
    let mut in_core = false;
    let mut found = None;
    for line in text.lines() {
        let l = line.trim();
        if l.starts_with('[') {
            in_core = l.to_ascii_lowercase().starts_with("[core]");
        } else if in_core {
            if let Some((k, v)) = l.split_once('=') {
                if k.trim().eq_ignore_ascii_case("sharedrepository") {
                    let v = v.split(['#', ';']).next().unwrap_or("").trim();
                    found = Some(v.trim_matches('"').to_ascii_lowercase());
                }
            }
        }
    }
    found
}

/// The mode for a file made in `dir`: 0600, or in a shared repository's directory (setgid,
/// see `shared_dir_mode`) the directory's group/other read and write bits as well.
pub fn file_mode_in(dir: &Path) -> u32 {
    match fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() && m.permissions().mode() & 0o2000 != 0 => {
            0o600 | (m.permissions().mode() & 0o066)
        }
        _ => 0o600,
    }
}

/// Opens (creating, mode 0600) a file for reading and writing, refusing to follow a symlink.
pub fn open_private(path: &Path, append: bool) -> io::Result<File> {
    let mode = file_mode_in(path.parent().unwrap_or(Path::new(".")));
    let mut o = OpenOptions::new();
    o.read(true)
        .create(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
    if append {
        o.append(true);
    } else {
        o.write(true);
    }
    let f = o.open(path)?;
    if mode != 0o600 {
        // In a shared repository the next pusher may be another user: the umask must not have
        // taken the group bits away from a file we made.
        use std::os::unix::fs::MetadataExt;
        if let Ok(m) = f.metadata() {
            if m.uid() == unsafe { libc::geteuid() } && m.permissions().mode() & 0o777 != mode {
                let _ = f.set_permissions(fs::Permissions::from_mode(mode));
            }
        }
    }
    Ok(f)
}

/// Replaces `path` by a fully written, fsynced temp file, so a reader sees the old or the new
/// content, never a mix, whatever crashes when.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let open = || {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)
    };
    let result = (|| {
        let mut f = match open() {
            // Left by a killed process that had our pid: nobody else writes under that name.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                fs::remove_file(&tmp)?;
                open()?
            }
            other => other?,
        };
        f.write_all(bytes)?;
        // The umask may have narrowed the mode given to open.
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Removes `dir`'s dot-files named like `write_atomic`'s temporaries (`.NAME.tmp.<pid>`) for
/// which `wanted` holds: what a writer killed between create and rename left behind.
pub fn remove_temp_files(dir: &Path, wanted: impl Fn(&str) -> bool) -> usize {
    let Ok(rd) = fs::read_dir(dir) else {
        return 0;
    };
    let mut n = 0;
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let is_tmp = name.starts_with('.')
            && name
                .rsplit_once(".tmp.")
                .is_some_and(|(_, pid)| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()));
        if is_tmp
            && wanted(&name)
            && e.file_type().is_ok_and(|t| t.is_file())
            && fs::remove_file(e.path()).is_ok()
        {
            n += 1;
        }
    }
    n
}

/// The mode bits of an existing file, to keep them across an atomic rewrite.
pub fn mode_of(path: &Path) -> Option<u32> {
    fs::metadata(path)
        .ok()
        .map(|m| m.permissions().mode() & 0o7777)
}

/// The server-wide runtime directory (concurrency slots, temporary known_hosts files).
pub fn runtime_dir(configured: Option<&Path>) -> PathBuf {
    if let Some(p) = configured {
        return p.to_path_buf();
    }
    if let Ok(p) = std::env::var("GIT_PUSHMIRROR_RUNTIME_DIR") {
        if !p.is_empty() {
            return PathBuf::from(p);
        }
    }
    let uid = unsafe { libc::geteuid() };
    std::env::temp_dir().join(format!("git-pushmirror-{uid}"))
}

/// Creates the runtime directory private to this user; refuses one owned by somebody else,
/// since a shared /tmp lets another user pre-create it.
pub fn ensure_runtime_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    match fs::create_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let m = fs::symlink_metadata(dir)?;
    if m.file_type().is_symlink() || m.uid() != unsafe { libc::geteuid() } {
        return Err(io::Error::other(format!(
            "runtime directory {} is a symlink or owned by another user; set runtime_dir in the server config",
            dir.display()
        )));
    }
    let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
    Ok(())
}

/// Removes git's per-invocation variables (GIT_DIR, push options, quarantine, GIT_SSL_CAINFO...)
/// from a child's environment, keeping our own GIT_PUSHMIRROR_* settings: what a hook or a
/// wrapper handed us must not redirect a child to another repository or change how it connects.
pub fn drop_git_env(cmd: &mut std::process::Command) {
    for (k, _) in std::env::vars_os() {
        let name = k.to_string_lossy();
        if name.starts_with("GIT_") && !name.starts_with("GIT_PUSHMIRROR_") {
            cmd.env_remove(&k);
        }
    }
}

/// Our own executable, resolved now: `/proc/self/exe` still names it if the file is replaced
/// during an upgrade. The hook starts the flusher with it, and the flusher its sync children.
pub fn self_exe() -> io::Result<PathBuf> {
    std::env::current_exe()
}
