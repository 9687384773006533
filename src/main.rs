//! git-pushmirror: GitLab-style push mirroring for any self-hosted git server.
//!
//! One binary, three faces: the post-receive hook (argv[0] `post-receive`, or `hook
//! post-receive`), the detached flusher (`flush`), and the administration CLI. `main` only picks
//! the face and turns an error into one line and an exit code.

mod cli;
mod config;
mod floor;
mod flusher;
mod health;
mod hook;
mod install;
mod locks;
mod logging;
mod mirror;
mod ops;
mod paths;
mod pattern;
mod repo;
mod slots;
mod spool;
mod state;
mod text;
mod time;
mod update;
mod url;

use std::path::{Path, PathBuf};

fn main() {
    let argv0 = std::env::args_os()
        .next()
        .map(PathBuf::from)
        .unwrap_or_default();
    // Git runs hooks with GIT_DIR set (usually "."); the hook must not need anything else.
    // Installed as a `#!<this binary> post-receive` file, the kernel runs us with `post-receive`
    // as the first argument and the hook file's path after it.
    if argv0.file_name().is_some_and(|n| n == "post-receive")
        || argv0
            .parent()
            .is_some_and(|p| p.ends_with("post-receive.d"))
        || std::env::args_os()
            .nth(1)
            .is_some_and(|a| a == "post-receive")
    {
        std::process::exit(hook::run(&hook_git_dir()));
    }
    // git calls us as GIT_ASKPASS with the prompt as the only argument.
    if std::env::var_os("GIT_PUSHMIRROR_ASKPASS").is_some() {
        let prompt = std::env::args().nth(1).unwrap_or_default();
        let answer = mirror::auth::askpass_answer(&prompt, &|k| std::env::var(k).ok());
        match answer {
            Ok(a) => {
                println!("{a}");
                std::process::exit(0)
            }
            Err(why) => {
                if !why.is_empty() {
                    eprintln!("{}", text::one_line(&why));
                }
                std::process::exit(1)
            }
        }
    }
    std::process::exit(cli::main());
}

/// The repository a hook runs in: `$GIT_DIR`, else the current directory, made absolute so the
/// flusher does not depend on our working directory.
pub fn hook_git_dir() -> PathBuf {
    let dir = std::env::var_os("GIT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    absolute(&dir)
}

pub fn absolute(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| {
        std::env::current_dir()
            .map(|c| c.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    })
}
