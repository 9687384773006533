//! `install` / `uninstall`: what was put in place or removed, as one line each.

use super::*;

pub(super) fn install_report(r: Result<crate::install::Installed, String>) -> Result<i32, Fail> {
    use crate::install::Installed;
    match r.map_err(|e| Fail(1, e))? {
        Installed::Fresh(p) => println!("installed {}", p.display()),
        Installed::Unchanged(p) => println!("already installed: {}", p.display()),
        Installed::Upgraded(p) => println!("updated {}", p.display()),
        Installed::Chained { hook, chained } => println!(
            "installed {} (runs {} first, with the same input)",
            hook.display(),
            chained.display()
        ),
    }
    Ok(0)
}

pub(super) fn uninstall_report(removed: Vec<PathBuf>, place: &Path) -> Result<i32, Fail> {
    if removed.is_empty() {
        println!("git-pushmirror hook not installed in {}", place.display());
    }
    for p in removed {
        println!("removed git-pushmirror from {}", p.display());
    }
    Ok(0)
}
