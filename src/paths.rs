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

    /// Creates `pushmirror/` (mode 0700) if needed; refuses a symlink in its place, since
    /// following it would let whoever planted it choose where we write.
    pub fn ensure(&self) -> io::Result<()> {
        match fs::symlink_metadata(&self.dir) {
            Ok(m) if m.file_type().is_symlink() => Err(io::Error::other(format!(
                "{} is a symlink; refusing to follow it (remove it)",
                self.dir.display()
            ))),
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => Err(io::Error::other(format!(
                "{} is not a directory",
                self.dir.display()
            ))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir(&self.dir).or_else(|e| {
                    if e.kind() == io::ErrorKind::AlreadyExists {
                        Ok(())
                    } else {
                        Err(e)
                    }
                })?;
                fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o700))
            }
            Err(e) => Err(e),
        }
    }
}

/// Opens (creating, mode 0600) a file for reading and writing, refusing to follow a symlink.
pub fn open_private(path: &Path, append: bool) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.read(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
    if append {
        o.append(true);
    } else {
        o.write(true);
    }
    o.open(path)
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
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)?;
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
