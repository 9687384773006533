//! `install` / `uninstall`: what was put in place or removed, as one line each.

use super::*;

/// A path as one line (control characters and bytes that are not UTF-8 escaped).
fn shown(p: &Path) -> String {
    crate::text::one_line(&crate::text::path_text(p))
}

pub(super) fn install_report(r: Result<crate::install::Installed, String>) -> Result<i32, Fail> {
    use crate::install::Installed;
    match r.map_err(|e| Fail(1, e))? {
        Installed::Fresh(p) => println!("installed {}", shown(&p)),
        Installed::Unchanged(p) => println!("already installed: {}", shown(&p)),
        Installed::Upgraded(p) => println!("updated {}", shown(&p)),
        Installed::Chained { hook, chained } => println!(
            "installed {} (runs {} first, with the same input)",
            shown(&hook),
            shown(&chained)
        ),
    }
    Ok(0)
}

pub(super) fn uninstall_report(removed: Vec<PathBuf>, place: &Path) -> Result<i32, Fail> {
    if removed.is_empty() {
        println!("git-pushmirror hook not installed in {}", shown(place));
    }
    for p in removed {
        println!("removed git-pushmirror from {}", shown(&p));
    }
    Ok(0)
}
