//! The man pages (`docs/man/`) and shell completions (`docs/completions/`) are generated from
//! the clap definitions in `args.rs` and checked in, so `install.sh` needs no build step for
//! them and a reviewer sees their diff. This test fails when they are stale; to refresh them:
//! `GIT_PUSHMIRROR_REGENERATE=1 cargo test --bin git-pushmirror generated`.

use std::collections::BTreeMap;
use std::path::Path;

use clap::CommandFactory;

use super::args::Cli;

/// File name -> content of every generated file, relative to `docs/`.
fn generate() -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    fn pages(cmd: &clap::Command, out: &mut BTreeMap<String, Vec<u8>>) {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            pages(sub, out);
        }
        let man = clap_mangen::Man::new(cmd.clone()).manual("git-pushmirror manual");
        let mut bytes = Vec::new();
        man.render(&mut bytes).expect("render man page");
        out.insert(format!("man/{}", man.get_filename()), bytes);
    }
    pages(&cmd, &mut out);
    use clap_complete::Shell;
    for (shell, file) in [
        (Shell::Bash, "git-pushmirror.bash"),
        (Shell::Zsh, "_git-pushmirror"),
        (Shell::Fish, "git-pushmirror.fish"),
    ] {
        let mut bytes = Vec::new();
        clap_complete::generate(shell, &mut cmd.clone(), "git-pushmirror", &mut bytes);
        out.insert(format!("completions/{file}"), bytes);
    }
    out
}

fn on_disk(docs: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for sub in ["man", "completions"] {
        let Ok(rd) = std::fs::read_dir(docs.join(sub)) else {
            continue;
        };
        for e in rd.flatten() {
            let name = format!("{sub}/{}", e.file_name().to_string_lossy());
            out.insert(name, std::fs::read(e.path()).unwrap());
        }
    }
    out
}

#[test]
fn generated_man_pages_and_completions_are_up_to_date() {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
    let want = generate();
    assert!(want.contains_key("man/git-pushmirror.1"));
    assert!(want.contains_key("man/git-pushmirror-status.1"));
    if std::env::var_os("GIT_PUSHMIRROR_REGENERATE").is_some() {
        for sub in ["man", "completions"] {
            let _ = std::fs::remove_dir_all(docs.join(sub));
            std::fs::create_dir_all(docs.join(sub)).unwrap();
        }
        for (name, bytes) in &want {
            std::fs::write(docs.join(name), bytes).unwrap();
        }
    }
    let have = on_disk(&docs);
    let stale: std::collections::BTreeSet<&String> = want
        .keys()
        .chain(have.keys())
        .filter(|k| want.get(*k) != have.get(*k))
        .collect();
    assert!(
        stale.is_empty(),
        "docs/{stale:?} differ from what args.rs generates: run \
         `GIT_PUSHMIRROR_REGENERATE=1 cargo test --bin git-pushmirror generated` and commit them"
    );
}
