//! The mirror commands: add, set, remove, enable, disable, list, show.

use super::*;

/// A mirror named on the command line that does not exist is a usage error (exit 2), like an
/// unknown option: the caller has to change the command, not the server.
pub(super) fn no_such_mirror(paths: &RepoPaths, name: &str) -> Fail {
    usage(format!(
        "no mirror named `{name}` in {} (see `git-pushmirror list`)",
        paths.git_dir.display()
    ))
}

/// The mirror `name` as this repository sees it (its own, or a server rule's).
pub(super) fn find_mirror<'a>(
    paths: &RepoPaths,
    loaded: &'a config::Loaded,
    name: &str,
) -> Result<&'a config::Effective, Fail> {
    loaded
        .mirrors
        .iter()
        .find(|e| e.mirror.name == name)
        .ok_or_else(|| no_such_mirror(paths, name))
}

pub(super) fn from_rule(loaded: &config::Loaded, e: &config::Effective) -> bool {
    e.source == loaded.server_path
}

/// Read-modify-write of the repository config under the spool lock, so two admins editing at
/// once do not lose each other's change. A mirror that comes from a server rule is first
/// copied into the repository config (`${name}` resolved): that copy overrides the rule here.
pub(super) fn edit(
    paths: &RepoPaths,
    name: &str,
    f: impl FnOnce(&mut RepoConfig) -> Result<(), Fail>,
) -> Result<(), Fail> {
    let loaded = config::load(paths)?;
    let rule = loaded
        .mirrors
        .iter()
        .find(|e| e.mirror.name == name && from_rule(&loaded, e))
        .map(|e| e.mirror.clone());
    paths
        .ensure()
        .map_err(|e| Fail(1, format!("{}: {e}", paths.dir.display())))?;
    let _lock = Spool::new(&paths.dir).lock()?;
    let mut cfg = load_repo_config(paths)?;
    let mut copied = false;
    if cfg.find(name).is_none() {
        let Some(mut m) = rule else {
            return Err(no_such_mirror(paths, name));
        };
        if matches!(
            m.auth,
            Auth::Password {
                password: Some(_),
                ..
            }
        ) {
            return Err(Fail(
                1,
                format!(
                    "mirror `{name}` comes from a server rule with an inline password, which is not copied into {}; add an override there by hand",
                    paths.config().display()
                ),
            ));
        }
        m.repos.clear();
        cfg.mirrors.push(m);
        copied = true;
    }
    let before = cfg.find(name).cloned();
    f(&mut cfg)?;
    cfg.save(&paths.config())?;
    drop(_lock);
    if closes_connections(before.as_ref(), cfg.find(name)) {
        close_connections(paths, &loaded, name);
    }
    if copied {
        eprintln!(
            "git-pushmirror: note: mirror `{name}` came from a server rule in {}; {} now holds this repository's own copy (`git-pushmirror remove {name}` follows the rule again)",
            crate::text::one_line(&crate::text::path_text(&loaded.server_path)),
            crate::text::one_line(&crate::text::path_text(&paths.config()))
        );
    }
    Ok(())
}

/// Whether an edit of a mirror ends its lasting SSH connections (see mirror/mux.rs): it is
/// gone or disabled, or pushes elsewhere or otherwise (URL, key, host key). A connection made
/// with an old key or host key would not be reused anyway (the master is found by them), but
/// it would live on until `ssh_persist` ran out.
fn closes_connections(before: Option<&MirrorConfig>, after: Option<&MirrorConfig>) -> bool {
    match (before, after) {
        (Some(b), Some(a)) => !a.enabled || !crate::flusher::same_target(b, a),
        (None, _) => false,
        (Some(_), None) => true,
    }
}

/// Tells the lasting SSH connection masters of mirror `name` to exit.
pub(super) fn close_connections(paths: &RepoPaths, loaded: &config::Loaded, name: &str) {
    let runtime = crate::paths::runtime_dir(loaded.server.runtime_dir.as_deref());
    crate::mirror::mux::close_mirror(&runtime, &paths.git_dir, name);
}

/// Removes a repository's mirror and its state. A server rule's mirror cannot be removed from
/// one repository (disable it there instead); removing a repository's override of a rule
/// brings the rule back, with a full sync.
pub(super) fn remove(paths: &RepoPaths, name: &str) -> Result<i32, Fail> {
    let loaded = config::load(paths)?;
    let e = find_mirror(paths, &loaded, name)?;
    if from_rule(&loaded, e) {
        return Err(usage(format!(
            "mirror `{name}` comes from a server rule in {}: it cannot be removed from one repository; `git-pushmirror disable {name}` stops it here",
            loaded.server_path.display()
        )));
    }
    // The state goes under the same lock as the config, so an in-flight sync cannot write it
    // back (see `Flusher::record`).
    edit(paths, name, |cfg| {
        cfg.mirrors.retain(|m| m.name != name);
        state::remove(&paths.state_dir(), name).map_err(|e| Fail(1, e.to_string()))?;
        remove_files(&paths.dir, name);
        // The push shadow a killed flusher left (with its packet trace): the mirror's next
        // sync would have cleared it, and there is none now. Not through a symlinked push/.
        let push = paths.dir.join("push");
        if crate::paths::refuse_symlink(&push).is_ok() {
            let _ = std::fs::remove_dir_all(push.join(name));
        }
        Ok(())
    })?;
    let rule_back = config::load(paths)
        .ok()
        .and_then(|l| l.mirrors.into_iter().find(|e| e.mirror.name == name))
        .map(|e| e.mirror.enabled);
    match rule_back {
        Some(enabled) => {
            println!("removed mirror {name}; the server rule `{name}` applies again");
            if enabled {
                crate::hook::spool_and_wake_forced(paths, &[name.to_string()])
                    .map_err(|e| Fail(1, e))?;
            }
        }
        None => println!("removed mirror {name}"),
    }
    Ok(0)
}

pub(super) fn add(paths: &RepoPaths, a: AddArgs) -> Result<i32, Fail> {
    if let Some(host) = host_like_missing_path(&a.url) {
        let u = &a.url;
        return Err(usage(format!(
            "mirror URL `{u}` has no scheme and is not an existing path, so git would take it for a directory `{host}` here; write https://{u} or ssh://git@{u}"
        )));
    }
    let mut m = MirrorConfig::new(&a.name, &absolutize_local(&a.url));
    m.enabled = !a.disabled;
    m.debounce = a.debounce;
    m.max_delay = a.max_delay;
    m.timeout = a.timeout;
    m.keep_divergent_refs = a.keep_divergent_refs;
    m.only_protected_branches = a.only_protected_branches;
    m.protected = a.protected;
    m.branch_regex = a.branch_regex;
    m.refs = a.refs;
    m.allow_insecure_http = a.allow_insecure_http;
    m.ca_file = a.ca_file.map(|p| crate::absolute(&p));
    m.lfs = a.lfs.as_deref().map(|v| match v {
        "on" => crate::config::LfsMode::On,
        "off" => crate::config::LfsMode::Off,
        _ => crate::config::LfsMode::Auto,
    });
    let generate = a.generate_ssh_key;
    let detect = a.detect_host_key || !a.host_key_fingerprints.is_empty();
    if generate && (a.ssh_key.is_some() || a.username.is_some()) {
        return Err(usage(
            "--generate-ssh-key makes the mirror's key: give neither --ssh-key nor --username",
        ));
    }
    if detect && (a.known_hosts.is_some() || a.host_key.is_some()) {
        return Err(usage(
            "--detect-host-key pins the host keys itself: give neither --known-hosts nor --host-key",
        ));
    }
    if detect && !generate && a.ssh_key.is_none() {
        return Err(usage(
            "--detect-host-key needs an SSH key: add --generate-ssh-key or --ssh-key FILE",
        ));
    }
    let ssh_key = if generate {
        Some(key_rel(&a.name))
    } else {
        a.ssh_key.map(|p| crate::absolute(&p))
    };
    m.auth = match (a.username, ssh_key) {
        (Some(_), Some(_)) => return Err(usage("--username and --ssh-key are exclusive")),
        (Some(username), None) => {
            let given = [a.password_file.is_some(), a.password_env.is_some()]
                .iter()
                .filter(|x| **x)
                .count();
            if given != 1 {
                return Err(usage(
                    "--username needs exactly one of --password-file FILE or --password-env VAR",
                ));
            }
            Auth::Password {
                username,
                password: None,
                password_file: a.password_file.map(|p| crate::absolute(&p)),
                password_env: a.password_env,
            }
        }
        (None, Some(key)) => Auth::SshKey {
            key_file: key,
            known_hosts: a.known_hosts.map(|p| crate::absolute(&p)),
            host_key: a.host_key,
        },
        (None, None) => {
            if a.password_file.is_some() || a.password_env.is_some() {
                return Err(usage("--password-file/--password-env need --username"));
            }
            Auth::None
        }
    };
    m.validate().map_err(usage)?;
    if generate || detect {
        check_ssh_url(&m.url, &a.name)?;
    }
    // A generated key and a detected pin do not exist yet: they are checked once made.
    if !generate {
        check_auth_files(&m, paths)?;
    }
    // A rule's mirror of the same name is replaced here, not refused: that is the override.
    let overrides = config::load(paths).is_ok_and(|l| {
        l.mirrors
            .iter()
            .any(|e| e.mirror.name == a.name && e.source != paths.config())
    });
    paths
        .ensure()
        .map_err(|e| Fail(1, format!("{}: {e}", paths.dir.display())))?;
    // Keys and host keys are made before the config names them, outside the spool lock (a
    // host scan may take seconds and the hook must not wait for it), and only for a name
    // that is free, so an existing mirror's files are never replaced.
    let mut public = None;
    if generate || detect {
        if load_repo_config(paths)?.find(&a.name).is_some() {
            return Err(usage(format!(
                "a mirror named `{}` already exists (use `set` to change it)",
                a.name
            )));
        }
        if detect {
            let rel = detect_and_pin(&paths.dir, &a.name, &m.url, &a.host_key_fingerprints)?;
            if let Auth::SshKey { known_hosts, .. } = &mut m.auth {
                *known_hosts = Some(rel);
            }
        }
        if generate {
            public = Some(generate_key(
                &paths.dir,
                &a.name,
                &key_comment(paths, &a.name),
            )?);
        }
        check_auth_files(&m, paths)?;
    }
    {
        let _lock = Spool::new(&paths.dir).lock()?;
        let mut cfg = load_repo_config(paths)?;
        if cfg.find(&a.name).is_some() {
            return Err(usage(format!(
                "a mirror named `{}` already exists (use `set` to change it)",
                a.name
            )));
        }
        // A fresh state: a mirror re-added under an old name (or replacing a rule's) must not
        // inherit the old cursor. Under the lock, like `remove`.
        state::remove(&paths.state_dir(), &a.name).map_err(|e| Fail(1, e.to_string()))?;
        cfg.mirrors.push(m.clone());
        cfg.save(&paths.config())?;
    }
    println!(
        "added mirror {} -> {}{}",
        a.name,
        url::mask(&m.url),
        if overrides {
            " (overrides the server rule of the same name here)"
        } else {
            ""
        }
    );
    if let Some(h) = crate::health::dangling_head(&paths.git_dir) {
        eprintln!(
            "git-pushmirror: warning: {}",
            crate::text::one_line(&h.message())
        );
    }
    if let Some(public) = public {
        print_public_key(&public);
        if matches!(
            &m.auth,
            Auth::SshKey {
                known_hosts: None,
                host_key: None,
                ..
            }
        ) {
            println!(
                "hint: no host key is pinned (ssh's own known_hosts files apply); `git-pushmirror detect-host-key {}` fetches and pins it",
                a.name
            );
        }
        println!(
            "then run `git-pushmirror sync {}` (the first sync waits for it or for the next push)",
            a.name
        );
        return Ok(0);
    }
    if m.enabled {
        // The first sync sends everything; it goes out now rather than at the next push.
        crate::hook::spool_and_wake_forced(paths, std::slice::from_ref(&a.name))
            .map_err(|e| Fail(1, e))?;
    }
    Ok(0)
}

/// The auth files and values a sync of `m` would refuse are refused before anything is
/// written (see `auth::check_files`).
fn check_auth_files(m: &MirrorConfig, paths: &RepoPaths) -> Result<(), Fail> {
    crate::mirror::auth::check_files(&m.auth, &paths.config())
        .map_err(|e| Fail(1, format!("mirror `{}`: auth: {e}", m.name)))?;
    check_ca_file(m, paths)
}

/// A CA bundle the sync could not read fails every sync (curl's "error setting certificate
/// file"): refused where it is given instead.
fn check_ca_file(m: &MirrorConfig, paths: &RepoPaths) -> Result<(), Fail> {
    let Some(ca) = &m.ca_file else {
        return Ok(());
    };
    // Relative to the config's directory, as the sync takes it.
    let ca = &paths.dir.join(ca);
    let readable = std::fs::metadata(ca).and_then(|meta| {
        if meta.is_file() {
            std::fs::File::open(ca).map(|_| ())
        } else {
            Err(std::io::Error::other("not a regular file"))
        }
    });
    readable.map_err(|e| {
        Fail(
            1,
            format!("mirror `{}`: ca_file {}: {e}", m.name, ca.display()),
        )
    })
}

/// `github.com/acme/app.git`: a relative path whose first part looks like a host name (has a
/// dot) and that does not exist. git would read it as a local directory and fail at every sync.
fn host_like_missing_path(u: &str) -> Option<&str> {
    if url::validate(u, true) != Ok(url::Scheme::Local) || u.starts_with(['/', '.', '~']) {
        return None;
    }
    if u.starts_with("file:") || u.contains('@') || Path::new(u).exists() {
        return None;
    }
    let first = u.split('/').next()?;
    let host_like = first.contains('.')
        && first
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'))
        && !first.ends_with(".git")
        && !Path::new(first).exists();
    host_like.then_some(first)
}

/// A relative local path means relative to where the admin stands, not to the repository the
/// flusher runs git in.
pub(super) fn absolutize_local(u: &str) -> String {
    if url::validate(u, true) == Ok(url::Scheme::Local)
        && !u.starts_with('/')
        && !u.starts_with("file:")
    {
        return crate::absolute(Path::new(u)).display().to_string();
    }
    u.to_string()
}

pub(super) fn toggle(paths: &RepoPaths, name: &str, on: bool) -> Result<i32, Fail> {
    let loaded = config::load(paths)?;
    let e = find_mirror(paths, &loaded, name)?;
    let word = if on { "enabled" } else { "disabled" };
    if from_rule(&loaded, e) && e.mirror.enabled == on {
        // Nothing to override: the rule already says so.
        println!("mirror {name} is already {word}");
    } else {
        edit(paths, name, |cfg| {
            for m in cfg.mirrors.iter_mut().filter(|m| m.name == name) {
                m.enabled = on;
            }
            Ok(())
        })?;
        println!("{word} mirror {name}");
    }
    if on {
        crate::hook::spool_and_wake_forced(paths, &[name.to_string()]).map_err(|e| Fail(1, e))?;
    }
    Ok(0)
}

/// `set NAME key=value...`: each value is read as YAML and the result goes through the same
/// strict deserialisation and validation as the file, so `set` cannot write what `load` refuses.
pub(super) fn set(paths: &RepoPaths, name: &str, assignments: &[String]) -> Result<i32, Fail> {
    let mut retarget = false;
    // Enabled again, or a wider choice of refs: a sync now, as `enable` does, so what was
    // pushed meanwhile (or is newly selected) does not wait for some later push.
    let mut resync = false;
    edit(paths, name, |cfg| {
        let idx = cfg
            .mirrors
            .iter()
            .position(|m| m.name == name)
            .ok_or_else(|| Fail(1, "vanished".into()))?;
        let mut value = serde_yaml::to_value(&cfg.mirrors[idx])?;
        for a in assignments {
            let (key, raw) = a
                .split_once('=')
                .ok_or_else(|| usage(format!("`{a}` is not KEY=VALUE")))?;
            if key == "name" {
                return Err(usage(
                    "a mirror cannot be renamed with set; remove and add it",
                ));
            }
            if key == "auth.password" {
                return Err(usage(
                    "an inline password on the command line is visible in `ps` and shell history; use auth.password_file=FILE or auth.password_env=VAR",
                ));
            }
            if matches!(
                key,
                "repos" | "exclude" | "name_style" | "propagate_deletion"
            ) {
                return Err(usage(format!(
                    "`{key}` belongs in server-wide rules only (it picks or names the repositories a rule applies to)"
                )));
            }
            let v: serde_yaml::Value = if raw.is_empty() {
                serde_yaml::Value::Null
            } else {
                serde_yaml::from_str(raw).unwrap_or(serde_yaml::Value::String(raw.into()))
            };
            let v = match (key, v) {
                (k, serde_yaml::Value::Number(n)) if !matches!(k, "auth.method") => {
                    serde_yaml::Value::String(n.to_string())
                }
                (_, v) => v,
            };
            let v = if key == "url" {
                serde_yaml::Value::String(absolutize_local(raw))
            } else {
                v
            };
            set_path(&mut value, key, v).map_err(usage)?;
        }
        if let Some(msg) = incomplete_auth(name, &value) {
            return Err(usage(msg));
        }
        let m: MirrorConfig = serde_yaml::from_value(value).map_err(|e| {
            // serde names the field it missed, which may not be one the admin typed (e.g.
            // `auth.colour=red` is reported as a missing `method`): name the assignments too.
            // serde quotes a value of the wrong type, which may be a password in an `auth=`
            // mapping.
            let e = config::hide_inline_passwords(&assignments.join("\n"), &e.to_string());
            let named = assignments.iter().any(|a| {
                let key = a.split_once('=').map_or(a.as_str(), |(k, _)| k);
                key.rsplit('.')
                    .next()
                    .is_some_and(|k| e.contains(&format!("`{k}`")))
            });
            if named {
                usage(format!("mirror `{name}`: {e}"))
            } else {
                // An `auth=` mapping may hold a password: its value is not repeated.
                let shown: Vec<&str> = assignments
                    .iter()
                    .map(|a| {
                        if a.starts_with("auth=") {
                            "auth=…"
                        } else {
                            a
                        }
                    })
                    .collect();
                usage(format!("mirror `{name}`: {e} (in `{}`)", shown.join(" ")))
            }
        })?;
        // `auth.password=` is refused above; the same password inside an `auth=` mapping is
        // just as visible in `ps` and shell history.
        if let Auth::Password {
            password: Some(p), ..
        } = &m.auth
        {
            let old = match &cfg.mirrors[idx].auth {
                Auth::Password { password, .. } => password.as_deref(),
                _ => None,
            };
            if old != Some(p.as_str()) {
                return Err(usage(
                    "an inline password on the command line is visible in `ps` and shell history; use auth.password_file=FILE or auth.password_env=VAR",
                ));
            }
        }
        m.validate().map_err(usage)?;
        // Only a changed auth is checked: `set NAME debounce=1s` must not fail because the key
        // went missing (the sync says so), but a new key or file must be one a sync can use.
        if m.auth != cfg.mirrors[idx].auth {
            check_auth_files(&m, paths)?;
        } else if m.ca_file != cfg.mirrors[idx].ca_file {
            check_ca_file(&m, paths)?;
        }
        // Where or how the mirror pushes changed: what the old target had confirmed says
        // nothing about the new one. Its status starts afresh (like `add`; GitLab resets the
        // status fields when the URL or the credentials change), under the same lock.
        let old = &cfg.mirrors[idx];
        retarget = !crate::flusher::same_target(old, &m);
        resync = (m.enabled && !old.enabled)
            || m.branch_regex != old.branch_regex
            || m.only_protected_branches != old.only_protected_branches
            || m.protected != old.protected
            || m.refs != old.refs;
        if retarget {
            state::remove(&paths.state_dir(), name).map_err(|e| Fail(1, e.to_string()))?;
        }
        cfg.mirrors[idx] = m;
        Ok(())
    })?;
    let enabled = config::load(paths)
        .ok()
        .and_then(|l| l.mirrors.into_iter().find(|e| e.mirror.name == name))
        .is_some_and(|e| e.mirror.enabled);
    if retarget && enabled {
        println!("updated mirror {name}; its status is reset and a full sync to the new target starts now");
        crate::hook::spool_and_wake_forced(paths, &[name.to_string()]).map_err(|e| Fail(1, e))?;
    } else if retarget {
        println!("updated mirror {name}; its status is reset (it is disabled: `git-pushmirror enable {name}` syncs it)");
    } else if resync && enabled {
        println!("updated mirror {name}; a full sync starts now");
        crate::hook::spool_and_wake_forced(paths, &[name.to_string()]).map_err(|e| Fail(1, e))?;
    } else {
        println!("updated mirror {name}");
    }
    Ok(0)
}

/// An `auth` that `set` left without its method or the key its method needs (typically
/// `set NAME auth.key_file=...` on a mirror that had no auth): serde would only say "missing
/// field `method`", which names neither the assignment nor the fix.
fn incomplete_auth(name: &str, mirror: &serde_yaml::Value) -> Option<String> {
    let auth = mirror.get("auth")?.as_mapping()?;
    let has = |k: &str| auth.contains_key(serde_yaml::Value::String(k.into()));
    const SSH: [&str; 3] = ["key_file", "known_hosts", "host_key"];
    const PASSWORD: [&str; 4] = ["username", "password", "password_file", "password_env"];
    let (method, needed) = match auth.get("method").and_then(|m| m.as_str()) {
        Some("ssh_key") => ("ssh_key", "key_file"),
        Some("password") => ("password", "username"),
        Some(_) => return None,
        None if auth.is_empty() => return None,
        None => {
            let given = auth.keys().filter_map(|k| k.as_str()).next().unwrap_or("");
            let method = if SSH.contains(&given) {
                "ssh_key"
            } else if PASSWORD.contains(&given) {
                "password"
            } else {
                return None;
            };
            return Some(format!(
                "mirror `{name}` has no auth method yet: give auth.method={method} with auth.{given} (`git-pushmirror set {name} auth.method={method} auth.{given}=...`)"
            ));
        }
    };
    if !has(needed) {
        return Some(format!(
            "mirror `{name}`: auth.method={method} needs auth.{needed} too (`git-pushmirror set {name} auth.method={method} auth.{needed}=...`)"
        ));
    }
    // Switching methods keeps the other method's keys, which the new one does not take.
    let other: &[&str] = if method == "ssh_key" { &PASSWORD } else { &SSH };
    let stale: Vec<String> = other
        .iter()
        .filter(|k| has(k))
        .map(|k| format!("auth.{k}="))
        .collect();
    let other_method = if method == "ssh_key" {
        "password"
    } else {
        "ssh_key"
    };
    (!stale.is_empty()).then(|| {
        format!(
            "mirror `{name}`: auth.method={method} does not take {} (auth.method={other_method} does): give auth.method={other_method}, or clear {} in the same command (`{}`)",
            stale.iter().map(|k| k.trim_end_matches('=')).collect::<Vec<_>>().join(", "),
            if stale.len() == 1 { "it" } else { "them" },
            stale.join(" ")
        )
    })
}

pub(super) fn set_path(
    root: &mut serde_yaml::Value,
    key: &str,
    v: serde_yaml::Value,
) -> Result<(), String> {
    let mut cur = root;
    let parts: Vec<&str> = key.split('.').collect();
    for (i, p) in parts.iter().enumerate() {
        if !cur.is_mapping() {
            *cur = serde_yaml::Value::Mapping(Default::default());
        }
        let map = cur
            .as_mapping_mut()
            .ok_or_else(|| format!("bad key `{key}`"))?;
        let k = serde_yaml::Value::String(p.to_string());
        if i + 1 == parts.len() {
            if v.is_null() {
                map.remove(&k);
            } else if matches!(*p, "protected" | "refs") && !v.is_sequence() {
                let items = v
                    .as_str()
                    .unwrap_or("")
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(|s| serde_yaml::Value::String(s.trim().into()))
                    .collect();
                map.insert(k, serde_yaml::Value::Sequence(items));
            } else {
                map.insert(k, v);
            }
            return Ok(());
        }
        cur = map
            .entry(k)
            .or_insert(serde_yaml::Value::Mapping(Default::default()));
    }
    Ok(())
}

pub(super) fn mirror_json(m: &MirrorConfig) -> Value {
    let auth = match &m.auth {
        Auth::None => json!({"method": "none"}),
        Auth::Password {
            username,
            password_file,
            password_env,
            password,
        } => json!({
            "method": "password", "username": username,
            "password_file": password_file, "password_env": password_env,
            "inline_password": password.is_some(),
        }),
        Auth::SshKey {
            key_file,
            known_hosts,
            host_key,
        } => json!({
            "method": "ssh_key", "key_file": key_file, "known_hosts": known_hosts, "host_key": host_key,
        }),
    };
    json!({
        "name": m.name,
        "url": url::mask(&m.url),
        "enabled": m.enabled,
        "auth": auth,
        "only_protected_branches": m.only_protected_branches,
        "protected": m.protected,
        "branch_regex": m.branch_regex,
        "keep_divergent_refs": m.keep_divergent_refs,
        "debounce": m.debounce.map(|d| d.to_string()),
        "max_delay": m.max_delay.map(|d| d.to_string()),
        "timeout": m.timeout.map(|d| d.to_string()),
        "ssh_persist": m.ssh_persist.map(|d| d.to_string()),
        "refs": m.refs,
        "allow_insecure_http": m.allow_insecure_http,
        "ca_file": m.ca_file,
        "lfs": m.lfs,
        "lfs_store": m.lfs_store,
        "lfs_layout": m.lfs_layout,
        "lfs_url": m.lfs_url.as_deref().map(url::mask),
        "lfs_auth": m.lfs_auth,
        "push_batch_refs": m.push_batch_refs.map(|n| n.0),
        "push_batch_bytes": m.push_batch_bytes.map(|b| b.0),
        "create_missing": m.create_missing,
        "forge": m.forge.map(|f| f.as_str()),
        "forge_api": m.forge_api.as_deref().map(url::mask),
        "create_owner": m.create_owner,
        "create_visibility": m.create_visibility,
        "name_style": m.name_style,
        "exclude": m.exclude,
        "propagate_deletion": m.propagate_deletion,
    })
}

pub(super) fn list(paths: &RepoPaths, json_out: bool) -> Result<i32, Fail> {
    let loaded = config::load(paths)?;
    if json_out {
        let v: Vec<Value> = loaded
            .mirrors
            .iter()
            .map(|e| {
                let mut v = mirror_json(&e.mirror);
                v["from_rule"] = json!(from_rule(&loaded, e));
                v
            })
            .collect();
        return print_json(&json!({ "mirrors": v }));
    }
    if loaded.mirrors.is_empty() {
        println!("no mirrors (add one with `git-pushmirror add NAME URL`)");
    }
    for e in &loaded.mirrors {
        let m = &e.mirror;
        println!(
            "{}\t{}\t{}{}",
            m.name,
            // A server rule's URL holds the repository's path (`${name}`), which may hold
            // control characters; a tab would also split the columns.
            crate::text::one_line(&url::mask(&m.url)),
            if m.enabled { "enabled" } else { "disabled" },
            if from_rule(&loaded, e) {
                "\t(server rule)"
            } else {
                ""
            }
        );
    }
    Ok(0)
}

pub(super) fn show(paths: &RepoPaths, name: &str, json_out: bool) -> Result<i32, Fail> {
    let loaded = config::load(paths)?;
    let e = find_mirror(paths, &loaded, name)?;
    let mut v = mirror_json(&e.mirror);
    v["from_rule"] = json!(from_rule(&loaded, e));
    if let (Value::Object(a), Value::Object(b)) = (&mut v, ssh_json(e)) {
        a.extend(b);
    }
    v["effective"] = json!({
        "debounce": Dur(e.debounce).to_string(), "debounce_adaptive": e.debounce_adaptive,
        "max_delay": Dur(e.max_delay).to_string(),
        "timeout": Dur(e.timeout).to_string(), "ssh_persist": Dur(e.ssh_persist).to_string(),
        "source": crate::text::path_text(&e.source),
    });
    if json_out {
        return print_json(&v);
    }
    if let Value::Object(map) = &v {
        for (k, val) in map {
            println!(
                "{k}: {}",
                if let Value::String(s) = val {
                    crate::text::one_line(s)
                } else {
                    val.to_string()
                }
            );
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_that_end_a_mirrors_ssh_connections() {
        let m = MirrorConfig::new("m", "ssh://git@host/app.git");
        let with = |f: &dyn Fn(&mut MirrorConfig)| {
            let mut x = m.clone();
            f(&mut x);
            x
        };
        let moved = with(&|x| x.url = "ssh://git@other/app.git".into());
        let keyed = with(&|x| {
            x.auth = Auth::SshKey {
                key_file: "k".into(),
                known_hosts: None,
                host_key: Some("ssh-ed25519 AAAA".into()),
            }
        });
        let disabled = with(&|x| x.enabled = false);
        let slower = with(&|x| x.debounce = Some(Dur::parse("5s").unwrap()));
        for (before, after, closes) in [
            (Some(&m), None, true),            // removed
            (Some(&m), Some(&moved), true),    // set url=
            (Some(&m), Some(&keyed), true),    // key or host key
            (Some(&m), Some(&disabled), true), // disable
            (Some(&m), Some(&slower), false),  // timing only: an in-flight sync keeps it
            (Some(&m), Some(&m), false),
            (None, Some(&m), false), // added
        ] {
            assert_eq!(closes_connections(before, after), closes, "{after:?}");
        }
    }
}
