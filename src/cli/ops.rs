//! `status --root` and `metrics`: the server-wide views (the work is in `crate::ops`).

use super::*;
use crate::ops::{fleet, metrics as prom};

/// Loads the server file and scans the root (`given`, else the server's `root`).
fn scan_root(given: Option<&Path>, what: &str) -> Result<fleet::Fleet, Fail> {
    let (server, server_path) = config::ServerConfig::load()?;
    let root = fleet::resolve_root(given, &server, &server_path, what).map_err(usage)?;
    Ok(fleet::scan(&crate::absolute(&root), server, server_path))
}

/// `status --root`: every repository's status document (as `status --json` in it prints, the
/// hook check left out), repositories with an unhealthy mirror first, and within one the
/// unhealthy mirrors first.
pub(super) fn status_root(
    root: Option<&Path>,
    name: Option<&str>,
    json_out: bool,
) -> Result<i32, Fail> {
    let f = scan_root(root, "status --root")?;
    let now = crate::time::now_ms();
    // Each repository's document as compact JSON: a tenth of the memory of a `Value`.
    let mut docs: Vec<(bool, String)> = Vec::new();
    let (mut mirrors_total, mut unhealthy_total) = (0usize, 0usize);
    f.each(|repo| {
        // A path that is not UTF-8 is shown escaped (JSON holds only UTF-8), and reported: no
        // server rule can name it (`${name}`), so it is an error entry of its own.
        let repository = crate::text::path_text(&repo.paths.git_dir);
        let path_error = crate::text::not_utf8(&repo.paths.git_dir)
            .map(|m| format!("{m}; server rules cannot reach it (rename it)"));
        let loaded = match &repo.loaded {
            Ok(l) => l,
            Err(e) => {
                unhealthy_total += 1;
                let e = path_error.map_or(e.clone(), |p| format!("{p}; {e}"));
                docs.push((
                    true,
                    json!({"repository": repository, "error": e, "mirrors": []}).to_string(),
                ));
                return;
            }
        };
        let mut mirrors: Vec<(bool, Value)> = loaded
            .mirrors
            .iter()
            .filter(|e| name.is_none_or(|n| e.mirror.name == n))
            .map(|e| {
                let (mut v, bad) = mirror_status(&repo.paths, e, &repo.contents, now);
                v["from_rule"] = json!(from_rule(loaded, e));
                v["repository"] = json!(repository);
                (bad, v)
            })
            .collect();
        if mirrors.is_empty() && (path_error.is_none() || f.server.rules.is_empty()) {
            return;
        }
        mirrors.sort_by_key(|(bad, _)| !bad);
        let bad = mirrors.iter().filter(|(b, _)| *b).count();
        mirrors_total += mirrors.len();
        unhealthy_total += bad + path_error.is_some() as usize;
        let mut doc = json!({
            "repository": repository,
            "silent_mode": f.server.silent,
            "hook_installed": repo.hook.as_ref().map(|h| h.is_ok()),
            "hook_problem": repo.hook.as_ref().and_then(|h| h.clone().err()),
            "flusher_running": repo.flusher_running,
            "spool_damaged_records": repo.contents.damage.len(),
            "spool_error": repo.spool_error,
            "mirrors": mirrors.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
        });
        if let Some(e) = &path_error {
            doc["error"] = json!(e);
        }
        docs.push((
            bad > 0 || repo.spool_error.is_some() || path_error.is_some(),
            doc.to_string(),
        ));
    });
    // Stable: within each group, the scan's path order.
    docs.sort_by_key(|(bad, _)| !bad);
    let head = json!({
        "root": crate::text::path_text(&f.root),
        "silent_mode": f.server.silent,
        "repositories_scanned": f.dirs.len(),
        "mirrors": mirrors_total,
        "unhealthy": unhealthy_total,
        "unreadable_directories": f.unreadable,
        // Read-only: only the mount table is checked here (`sweep` also tries the locks).
        "lock_warnings": crate::locks::nfs_local_lock(&f.root).into_iter().collect::<Vec<_>>(),
    });
    let unreadable = !f.unreadable.is_empty();
    drop(f);
    let docs = docs.into_iter().map(|(_, d)| d);
    if json_out {
        print_root_json(&head, docs)?;
    } else {
        print_root(&head, docs);
    }
    Ok(if unhealthy_total > 0 || unreadable {
        1
    } else {
        0
    })
}

/// The document `{head..., "repositories": [docs...]}`, pretty-printed as `print_json` would,
/// written one repository at a time (10,000 repositories' documents as one `Value` tree would
/// take ten times the memory).
fn print_root_json(head: &Value, docs: impl Iterator<Item = String>) -> Result<(), Fail> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let Value::Object(fields) = head else {
        unreachable!("head is an object")
    };
    let mut entries: Vec<(&str, Option<String>)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), Some(v.to_string())))
        .collect();
    entries.push(("repositories", None));
    entries.sort_by(|a, b| a.0.cmp(b.0));
    let mut docs = docs.peekable();
    writeln!(out, "{{")?;
    for (i, (k, v)) in entries.iter().enumerate() {
        let comma = if i + 1 < entries.len() { "," } else { "" };
        match v {
            Some(v) => writeln!(out, "  {}: {v}{comma}", json!(k))?,
            None => {
                if docs.peek().is_none() {
                    writeln!(out, "  \"repositories\": []{comma}")?;
                    continue;
                }
                writeln!(out, "  \"repositories\": [")?;
                while let Some(d) = docs.next() {
                    let v: Value = serde_json::from_str(&d)?;
                    let pretty = serde_json::to_string_pretty(&v)?;
                    for (j, line) in pretty.lines().enumerate() {
                        if j > 0 {
                            writeln!(out)?;
                        }
                        write!(out, "    {line}")?;
                    }
                    writeln!(out, "{}", if docs.peek().is_some() { "," } else { "" })?;
                }
                writeln!(out, "  ]{comma}")?;
            }
        }
    }
    writeln!(out, "}}")?;
    out.flush()?;
    Ok(())
}

fn print_root(head: &Value, docs: impl Iterator<Item = String>) {
    let n = |k: &str| head[k].as_u64().unwrap_or(0);
    let docs: Vec<String> = docs.collect();
    println!(
        "root: {}  ({} repositories, {} with mirrors; {} mirrors, {} unhealthy)",
        crate::text::one_line(head["root"].as_str().unwrap_or("-")),
        n("repositories_scanned"),
        docs.len(),
        n("mirrors"),
        n("unhealthy"),
    );
    if head["silent_mode"] == json!(true) {
        println!("SILENT MODE: no mirror is contacted; updates accumulate in the spool");
    }
    for e in head["unreadable_directories"]
        .as_array()
        .into_iter()
        .flatten()
    {
        println!(
            "ERROR: {}",
            crate::text::one_line(e.as_str().unwrap_or("-"))
        );
    }
    for w in head["lock_warnings"].as_array().into_iter().flatten() {
        println!("WARNING: {}", w.as_str().unwrap_or_default());
    }
    for d in docs {
        let Ok(mut r) = serde_json::from_str::<Value>(&d) else {
            continue;
        };
        println!();
        // A repository whose configuration could not be read has only its error.
        if let (Some(e), None) = (r["error"].as_str(), r.get("flusher_running")) {
            let repository = r["repository"].as_str().unwrap_or("-");
            println!("repository: {}", crate::text::one_line(repository));
            println!("ERROR: {}", crate::text::one_line(e));
            continue;
        }
        // The header is printed once for the whole root.
        r["silent_mode"] = json!(false);
        print_status(&r);
        if let Some(e) = r["spool_error"].as_str() {
            println!("  spool: {}", crate::text::one_line(e));
        }
    }
}

/// `metrics`: the exposition on stdout, or written atomically to `--output`.
pub(super) fn metrics(root: Option<&Path>, output: Option<&Path>) -> Result<i32, Fail> {
    let f = scan_root(root, "metrics")?;
    let now = crate::time::now_ms();
    let healthy = |repo: &fleet::RepoScan, e: &config::Effective| {
        !mirror_status(&repo.paths, e, &repo.contents, now).1
    };
    let text = prom::render(&f, now, &healthy);
    // The exposition is still written (it counts them in git_pushmirror_unreadable_directories);
    // each one is named here and the exit status is 1.
    for e in &f.unreadable {
        eprintln!("git-pushmirror: {}", crate::text::one_line(e));
    }
    match output {
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())?;
        }
        Some(path) => {
            // Readable by node_exporter (another user): nothing in it is secret.
            crate::paths::write_atomic(path, text.as_bytes(), 0o644)
                .map_err(|e| Fail(1, format!("--output {}: {e}", path.display())))?;
        }
    }
    Ok(if f.unreadable.is_empty() { 0 } else { 1 })
}
