//! One sync of one mirror: list the mirror's refs, read upstream's, plan, push, report.

pub mod auth;
pub mod create;
pub mod forge;
pub mod git;
pub mod lfs;
pub mod listing;
pub mod mux;
pub mod origin;
pub mod packsize;
pub mod plan;
pub mod progress;
pub mod source;
use crate::url;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::config::Effective;

/// What a sync achieved. A sync "fails" when it could not run, or ran but left refs behind
/// (rejected by the mirror, or divergent under keep_divergent_refs).
#[derive(Debug, Default)]
pub struct SyncReport {
    pub pushed: usize,
    pub deleted: usize,
    pub divergent: Vec<String>,
    /// `ref: reason` for every ref the mirror refused.
    pub rejected: Vec<String>,
    /// One masked line when the sync failed.
    pub error: Option<String>,
    /// Where the time went, for the log line of a sync that ran.
    pub timings: Timings,
    /// Branches kept on the mirror only because upstream's HEAD names no existing branch, so
    /// none can be shown to be merged (see `health::dangling_head`).
    pub kept_by_dangling_head: Vec<String>,
    /// What the LFS step sent and found missing.
    pub lfs: lfs::Outcome,
    /// Bytes of the packs the sync's pushes sent (as `git push --progress` reports them).
    pub pack_bytes: u64,
    /// How long a server that failed the sync asked us to wait (`Retry-After` of an LFS 429 or
    /// 503): the flusher's next attempt waits that long instead of its backoff.
    pub retry_after: Option<std::time::Duration>,
    /// What `create_missing` did when the sync found the target missing.
    pub created: Option<String>,
}

/// Wall time per phase of a sync, summed over its attempts and push batches.
#[derive(Debug, Default, Clone, Copy)]
pub struct Timings {
    /// `git ls-remote` of the mirror.
    pub list: std::time::Duration,
    /// Reading upstream's refs and making the plan.
    pub plan: std::time::Duration,
    /// `git push` runs, with their shadow repository.
    pub push: std::time::Duration,
    /// LFS objects and bytes sent and the time it took, when the LFS step ran.
    pub lfs: Option<(u64, u64, std::time::Duration)>,
    /// The mirror's refs came from the ref advertisement of a push made from the last sync's
    /// record of them (no `git ls-remote`; see listing.rs).
    pub listed_by_push: bool,
}

impl std::fmt::Display for Timings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |d: std::time::Duration| d.as_millis();
        write!(
            f,
            "ls-remote {} ms, plan {} ms, push {} ms",
            ms(self.list),
            ms(self.plan),
            ms(self.push)
        )?;
        if self.listed_by_push {
            write!(f, ", mirror listed by the push")?;
        }
        if let Some((objects, bytes, took)) = self.lfs {
            write!(
                f,
                ", lfs {objects} objects / {} MiB in {} ms",
                bytes.div_ceil(1 << 20),
                ms(took)
            )?;
        }
        Ok(())
    }
}

/// Settings that come from the server rather than the mirror.
pub struct SyncContext<'a> {
    pub git_dir: &'a Path,
    pub runtime_dir: &'a Path,
    /// Our own executable, used as GIT_ASKPASS.
    pub exe: &'a Path,
    /// LFS objects an earlier sync found missing upstream: looked for again (and sent if they
    /// have arrived) even when no commit is pushed.
    pub lfs_recheck: &'a [lfs::scan::Pointer],
    /// Every `password_env` variable the configuration names (`Loaded::password_env_names`):
    /// removed from every child of the sync, the owning mirror's included (its askpass gets
    /// the password through `GIT_PUSHMIRROR_PASSWORD`).
    pub password_env_names: &'a [String],
}

/// Runs one full sync. `deleted_upstream` lists refs whose latest pending spool record is a
/// deletion (the only evidence that a mirror-only tag was deleted upstream).
pub fn sync(
    ctx: &SyncContext<'_>,
    m: &Effective,
    deleted_upstream: &BTreeSet<String>,
) -> SyncReport {
    let mut secrets: Vec<String> = Vec::new();
    // Packs sent count even when a later step fails the sync.
    let mut pack_bytes = 0u64;
    let mut retry_after = None;
    let mut report = match run_sync(
        ctx,
        m,
        deleted_upstream,
        &mut secrets,
        &mut pack_bytes,
        &mut retry_after,
    ) {
        Ok(r) => r,
        Err(msg) => {
            // A sync that broke off leaves the record as it was: what it may have changed on
            // the mirror makes the next sync's leases refuse, and that sync plans again from
            // the mirror's real refs. (Deleting it here would also free disk space behind the
            // back of a full-disk condition the status should report.)
            let refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
            SyncReport {
                error: Some(one_line(&url::scrub(&msg, &refs))),
                retry_after,
                ..SyncReport::default()
            }
        }
    };
    report.pack_bytes = pack_bytes;
    report
}

/// The guess for a mirror that has never finished a sync and has no record (a new mirror, a
/// server rule backfilling a fleet, a changed URL): empty, as a new mirror usually is. Its plan
/// is pushed at once with every ref leased as absent, and the push's own ref advertisement
/// replaces a `git ls-remote` first (a mirror that already has refs refuses those leases, and
/// the plan made from the advertisement pushes them: one more push, no harm). A mirror whose
/// sync ever finished, failed ones included, is listed first as before.
fn first_sync_guess(state_dir: &Path, mirror: &str) -> Option<BTreeMap<String, String>> {
    crate::state::load(state_dir, mirror)
        .ok()
        .filter(|st| st.last_update_at.is_none())
        .map(|_| BTreeMap::new())
}

/// Argument text per `git push` run: well under Linux's 2 MiB for argv and environment together
/// (at the default 8 MiB stack), and still about 2,500 refs per push.
const PUSH_ARGS_MAX: usize = 256 << 10;

/// A refusal that means the mirror changed after we listed it: our lease no longer held
/// (`stale info`), or a ref we meant to create appeared meanwhile (`fetch first`,
/// `non-fast-forward`). Planning again from a fresh listing is the cure.
fn is_stale_listing(summary: &str) -> bool {
    summary.contains("stale info")
        || summary.contains("fetch first")
        || summary.contains("non-fast-forward")
}

/// The server's own messages from a push's stderr (`remote: ...` lines), without blank lines
/// and progress meters, at most a few of them.
fn remote_messages(stderr: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in stderr.split(['\n', '\r']) {
        let Some(msg) = line.strip_prefix("remote:") else {
            continue;
        };
        let msg = msg.trim();
        let progress = msg.contains("% (") || msg.ends_with(", done.");
        if msg.is_empty() || progress || out.iter().any(|m| m == msg) {
            continue;
        }
        out.push(msg.to_string());
        if out.len() == 5 {
            break;
        }
    }
    out
}

/// `s` as one line for `last_error`, the log and notify: blanks collapsed, and every other
/// control character (ESC, BEL... from a mirror's hook or server) escaped, never raw.
fn one_line(s: &str) -> String {
    let s: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    let s = crate::text::one_line(&s);
    if s.chars().count() > 500 {
        s.chars().take(500).collect::<String>() + "…"
    } else {
        s
    }
}

fn run_sync(
    ctx: &SyncContext<'_>,
    m: &Effective,
    deleted_upstream: &BTreeSet<String>,
    secrets: &mut Vec<String>,
    pack_bytes: &mut u64,
    retry_after: &mut Option<std::time::Duration>,
) -> Result<SyncReport, String> {
    let cfg = &m.mirror;
    // Checked again here, not only at `add`: the file may have been edited by hand.
    let scheme = url::validate(&cfg.url, cfg.allow_insecure_http)
        .map_err(|e| format!("url {}: {e}", url::mask(&cfg.url)))?;
    if let Some(why) = crate::config::password_auth_refused(&cfg.auth, scheme) {
        return Err(format!("url {}: {why}", url::mask(&cfg.url)));
    }
    let (bare_url, url_user, url_pass) = url::split_credentials(&cfg.url);
    if let Some(p) = &url_pass {
        secrets.push(p.clone());
    }
    let auth_cfg = match (&cfg.auth, url_user, url_pass) {
        (crate::config::Auth::None, Some(username), Some(password)) => {
            crate::config::Auth::Password {
                username,
                password: Some(password),
                password_file: None,
                password_env: None,
            }
        }
        (a, _, _) => a.clone(),
    };
    let timeout = m.timeout;
    let prepared = auth::prepare(
        &auth_cfg,
        &m.source,
        ctx.exe,
        ctx.runtime_dir,
        timeout.as_secs().max(1),
    )
    .map_err(|e| format!("auth: {e}"))?;
    secrets.extend(prepared.secrets.iter().cloned());
    let _cleanup = TempFiles(prepared.temp_files.clone());
    let (mut set, mut remove) = auth::base_env(cfg.allow_insecure_http, timeout.as_secs().max(1));
    remove.extend(ctx.password_env_names.iter().cloned());
    set.extend(prepared.env.iter().cloned());
    // A relative ca_file is relative to the config file's directory, like the auth files (not
    // to wherever the flusher happens to run).
    let ca_file: Option<std::path::PathBuf> = cfg.ca_file.as_ref().map(|ca| {
        m.source
            .parent()
            .map_or_else(|| ca.clone(), |dir| dir.join(ca))
    });
    if let Some(ca) = &ca_file {
        set.push(("GIT_SSL_CAINFO".into(), ca.display().to_string()));
    }
    // The proxy git uses for the mirror carries its LFS requests too.
    let mut lfs_proxy = String::new();
    if matches!(scheme, url::Scheme::Https | url::Scheme::Http) {
        // The askpass answers only prompts for this URL's scheme, host and port.
        set.push(("GIT_PUSHMIRROR_URL".into(), bare_url.clone()));
        let proxy = proxy_for(ctx, &bare_url, timeout)?;
        if let (_, _, Some(p)) = url::split_credentials(&proxy) {
            secrets.push(p);
        }
        let has_password = matches!(auth_cfg, crate::config::Auth::Password { .. });
        if let Some(why) = cleartext_proxy_refused(scheme, &proxy, has_password) {
            return Err(format!("url {}: {why}", url::mask(&cfg.url)));
        }
        lfs_proxy = proxy.clone();
        auth::add_git_config(&mut set, "http.proxy", &proxy);
        auth::add_git_config(&mut set, &format!("http.{bare_url}.proxy"), &proxy);
    }
    // ls-remote and push share one SSH connection, kept for the next syncs for `ssh_persist`
    // (see mux.rs); dropped last, after both.
    let mux = match scheme {
        url::Scheme::Ssh => {
            let id = mux::Identity {
                git_dir: ctx.git_dir,
                mirror: &cfg.name,
                url: &bare_url,
                auth: &auth_cfg,
                config_file: &m.source,
                temp_files: &prepared.temp_files,
            };
            mux::Mux::share(ctx.runtime_dir, &mut set, m.ssh_persist, &id, &remove)
        }
        _ => None,
    };
    let env = git::ChildEnv { set, remove };
    let lfs_on = lfs::enabled(ctx.git_dir, &m.lfs);
    let lfs_credentials = {
        let var = |k: &str| {
            prepared
                .env
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
        };
        var("GIT_PUSHMIRROR_USERNAME").zip(var("GIT_PUSHMIRROR_PASSWORD"))
    };
    let mut lfs_outcome = lfs::Outcome::default();
    let mut lfs_ran = false;
    let masked = url::mask(&cfg.url);
    let fail = |e: git::GitError| match e {
        git::GitError::Failed { what, stderr } => {
            let last = git::last_line(&stderr);
            // The pin lacks this host:port (a changed URL, the wrong known_hosts): say how to
            // pin it.
            let hint = if last.contains(" host key is known for ") {
                let rule = crate::paths::RepoPaths::new(ctx.git_dir).config() != m.source;
                format!(
                    " (pin it: `git-pushmirror detect-host-key {}{}`, or fix auth.known_hosts)",
                    if rule { "--rule " } else { "" },
                    cfg.name
                )
            } else {
                String::new()
            };
            format!("git {what} {masked}: {last}{hint}")
        }
        other => format!("{other} ({masked})"),
    };

    // The push runs in a shadow repository (see source.rs): a relative path to a local mirror
    // still means relative to the upstream, as git takes it there.
    let push_url = match scheme {
        url::Scheme::Local
            if !bare_url.starts_with("file:") && Path::new(&bare_url).is_relative() =>
        {
            ctx.git_dir.join(&bare_url).display().to_string()
        }
        _ => bare_url.clone(),
    };
    let upstream = crate::repo::Upstream::open(ctx.git_dir).map_err(|e| e.to_string())?;
    let options = plan::PlanOptions {
        keep_divergent_refs: cfg.keep_divergent_refs,
        only_protected_branches: cfg.only_protected_branches,
        protected: cfg.protected.clone(),
        extra_prefixes: cfg.refs.clone(),
        branch_regex: cfg
            .branch_regex
            .as_deref()
            .map(crate::pattern::BranchRegex::new)
            .transpose()?,
    };
    // The plan is made from a listing of the mirror; someone may push to the mirror before our
    // push lands. Every update and deletion is therefore leased on the value we listed, so that
    // such work is never overwritten (keep_divergent_refs) or deleted as "merged" (§5.4); a
    // lease that no longer holds means the listing is stale, and the sync starts over.
    const ATTEMPTS: u32 = 3;
    let mut attempt = 0;
    let mut timings = Timings::default();
    let push_env = {
        let mut e = env.clone();
        e.set.push(("LC_ALL".into(), "C".into()));
        e
    };
    let state_dir = crate::paths::RepoPaths::new(ctx.git_dir).state_dir();
    // What the mirror held after the last sync, as a guess to push from at once, reading the
    // mirror's refs from that push's own ref advertisement instead of a `git ls-remote` first
    // (see listing.rs). Over SSH this saves a whole session: the push opens the connection
    // master, and a repair push (when the record was wrong) rides on it. Not with LFS, whose
    // objects must be on the mirror before any ref that needs them.
    let mut try_guess = !lfs_on;
    // Refs the first, guessed push updated or deleted (they are counted once, at the end).
    let (mut guessed_pushed, mut guessed_deleted) = (0usize, 0usize);
    let mut source: Option<source::PushSource> = None;
    let shadow_dir = crate::paths::RepoPaths::new(ctx.git_dir)
        .dir
        .join("push")
        .join(&cfg.name);
    // Runs the `git push`es of a plan; returns the per-ref results, whether every push
    // succeeded, what the mirror's hooks said about refused refs, and, when `trace` asks for
    // it, the refs the mirror advertised to the first push.
    type Pushed = (
        BTreeMap<String, git::RefResult>,
        bool,
        Vec<String>,
        Option<BTreeMap<String, String>>,
    );
    // Set when git ran a push and refused it as a whole (no per-ref result).
    let refused_outright = std::cell::Cell::new(false);
    // Set when a push broke off (no per-ref result) after earlier pushes of the same plan went
    // through: what they did stands; the rest waits for a retry. Its error line.
    let broke_off: std::cell::Cell<Option<String>> = std::cell::Cell::new(None);
    // What a host that creates the repository at the first access said it did, when a push
    // was that access.
    let created_by_push: std::cell::Cell<Option<String>> = std::cell::Cell::new(None);
    // The host's limit on ref updates per push (`push_batch_refs`).
    let max_refs = cfg.push_batch_refs.map_or(usize::MAX, |n| n.0);
    let mut push_plan = |the_plan: &plan::Plan,
                         mirror_has: &BTreeMap<String, String>,
                         pack_bytes: &mut u64,
                         trace: bool|
     -> Result<Pushed, String> {
        let mut advertised = None;
        let mut results = BTreeMap::new();
        let mut all_ok = true;
        // What the mirror's hooks said (`remote:` lines): the porcelain summary of a refused
        // ref is only "[remote rejected] (hook declined)"; the reason is here.
        let mut remote_said: Vec<String> = Vec::new();
        // Pushes that ran; and refs a push failed to update, whose later steps (each leased
        // on the one before, see `Plan::split_by_size`) are not sent.
        let mut ran = 0usize;
        let mut failed: BTreeSet<String> = BTreeSet::new();
        let parts: Vec<std::borrow::Cow<plan::Plan>> = match cfg.push_batch_bytes {
            Some(max)
                if !the_plan.pushes.is_empty()
                    && packsize::store_bytes(ctx.git_dir).is_none_or(|all| all > max.0) =>
            {
                let t = std::time::Instant::now();
                let haves: Vec<String> = mirror_has.values().cloned().collect();
                let sizes = packsize::RevList {
                    git_dir: ctx.git_dir,
                };
                let parts = the_plan.split_by_size(max.0, max_refs, &sizes, &haves)?;
                log::debug!(
                    "sync {}: {} part(s) of at most {max} planned in {} ms",
                    cfg.name,
                    parts.len(),
                    t.elapsed().as_millis()
                );
                parts.into_iter().map(std::borrow::Cow::Owned).collect()
            }
            _ => vec![std::borrow::Cow::Borrowed(the_plan)],
        };
        // What each ref was last sent as, when a ref may go in steps: a ref whose last step
        // that went through is not its value in the plan (a later push failed) has not arrived.
        let stepped = parts.len() > 1;
        let mut last_sent: BTreeMap<String, String> = BTreeMap::new();
        'parts: for part in parts {
            let part = if failed.is_empty() {
                part
            } else {
                let mut p = part.into_owned();
                p.pushes.retain(|x| !failed.contains(&x.name));
                p.deletions.retain(|x| !failed.contains(&x.name));
                std::borrow::Cow::Owned(p)
            };
            for batch in part.push_batches(PUSH_ARGS_MAX, max_refs) {
                let source = match &source {
                    Some(s) => s,
                    None => source.insert(
                        source::PushSource::create(&shadow_dir, ctx.git_dir)
                            .map_err(|e| format!("preparing the push: {e}"))?,
                    ),
                };
                source
                    .set_refs(&batch.updates)
                    .map_err(|e| format!("preparing the push: {e}"))?;
                // --progress for the pack's size (see progress.rs), read in git's own words.
                let mut args: Vec<String> = vec![
                    "push".into(),
                    "--porcelain".into(),
                    "--progress".into(),
                    "--no-verify".into(),
                ];
                args.extend(batch.leases.iter().cloned());
                args.push(push_url.clone());
                if !batch.updates.is_empty() {
                    args.push("refs/*:refs/*".into());
                }
                args.extend(batch.deletions.iter().map(|d| format!(":{d}")));
                let trace_file = (trace && advertised.is_none())
                    .then(|| std::path::absolute(source.dir().join("packet-trace")).ok())
                    .flatten();
                let out = match &trace_file {
                    Some(f) => {
                        let _ = std::fs::remove_file(f);
                        let mut e = push_env.clone();
                        e.set
                            .push(("GIT_TRACE_PACKET".into(), f.display().to_string()));
                        let mut args = args.clone();
                        if matches!(scheme, url::Scheme::Local) {
                            // A local mirror's receive-pack inherits our environment: it
                            // would trace the same advertisement again, from its side. git
                            // runs the command through `sh -c`, so an empty assignment turns
                            // tracing off without another process (`env -u` cost one exec per
                            // sync).
                            args.insert(
                                1,
                                "--receive-pack=GIT_TRACE_PACKET= git-receive-pack".into(),
                            );
                        }
                        let out = git::run(source.dir(), &args, &e, timeout, "push");
                        let t = std::time::Instant::now();
                        advertised = Some(std::fs::read(f).ok().and_then(|t| {
                            let text = String::from_utf8(t).unwrap_or_else(|e| {
                                String::from_utf8_lossy(e.as_bytes()).into_owned()
                            });
                            listing::parse_advertisement(&text)
                        }));
                        let _ = std::fs::remove_file(f);
                        log::debug!(
                            "sync {}: advertisement read in {} ms",
                            cfg.name,
                            t.elapsed().as_millis()
                        );
                        out
                    }
                    None => git::run(source.dir(), &args, &push_env, timeout, "push"),
                };
                let out = match out {
                    Ok(out) => out,
                    // What earlier pushes of the sync did stands (and is reported); the rest
                    // is not pushed, and the sync fails saying why.
                    Err(e) if ran > 0 => {
                        broke_off.set(Some(fail(e)));
                        all_ok = false;
                        break 'parts;
                    }
                    Err(e) => return Err(fail(e)),
                };
                // A host that creates what is first accessed (Gitolite's wild repositories)
                // did so for this push (a first sync pushes before it lists).
                if let Some(c) = create::created_by_host(&out.stderr) {
                    let first = created_by_push.replace(Some(c));
                    if first.is_none() {
                        log::info!(
                            "sync {}: Gitolite created the repository at this push",
                            cfg.name
                        );
                    }
                }
                let got = git::parse_porcelain(&out.stdout);
                // Summed over batches and attempts: a pack an attempt that is retried sent was sent.
                // Only a push the mirror answered ref by ref (updated or refused by its hooks)
                // sent a pack; the text of a push it broke off (an `ERR` packet, a remote
                // error) is the mirror's own, and may imitate git's meter line.
                if got
                    .values()
                    .any(|r| r.ok() || r.summary.starts_with("[remote rejected]"))
                {
                    *pack_bytes += progress::pack_bytes(&out.stderr);
                }
                if got.is_empty() && !out.status_ok {
                    let e = fail(git::GitError::Failed {
                        what: "push",
                        stderr: out.stderr,
                    });
                    if ran > 0 {
                        broke_off.set(Some(e));
                        all_ok = false;
                        break 'parts;
                    }
                    refused_outright.set(true);
                    return Err(e);
                }
                ran += 1;
                if stepped {
                    last_sent.extend(batch.updates.iter().cloned());
                }
                all_ok &= out.status_ok;
                failed.extend(got.iter().filter(|(_, r)| !r.ok()).map(|(n, _)| n.clone()));
                if got.values().any(|r| !r.ok()) {
                    for m in remote_messages(&out.stderr) {
                        if remote_said.len() < 5 && !remote_said.contains(&m) {
                            remote_said.push(m);
                        }
                    }
                }
                results.extend(got);
            }
        }
        for p in &the_plan.pushes {
            let short = last_sent.get(&p.name).is_some_and(|v| *v != p.new);
            if short && results.get(&p.name).is_some_and(|r| r.ok()) {
                results.remove(&p.name);
            }
        }
        remote_said.truncate(5);
        Ok((results, all_ok, remote_said, advertised.flatten()))
    };
    let mut broke: Option<String>;
    // Set when this sync created the target (at most once).
    let mut created: Option<String> = None;
    // A creation the forge answered "exists already": tried, not ours (never recorded).
    let mut existed: Option<String> = None;
    let (mut report, remote_said, known) = loop {
        attempt += 1;
        // With a guess of the mirror's refs, its plan is pushed at once and the mirror's real
        // refs come from that push's ref advertisement; the plan made from them (with what the
        // push did applied) then repairs whatever the guess missed, so the sync is as full a
        // comparison as one that lists first.
        let mut guessed_run = None;
        // Upstream's refs, when they were read already.
        let mut read_local = None;
        if std::mem::take(&mut try_guess) {
            let t = std::time::Instant::now();
            // The record is read while upstream's refs are.
            let (guess, local) = std::thread::scope(|scope| {
                let g = scope.spawn(|| {
                    listing::load(&state_dir, &cfg.name, &bare_url)
                        .or_else(|| first_sync_guess(&state_dir, &cfg.name))
                });
                let local = upstream.refs();
                (g.join().ok().flatten(), local)
            });
            let local = local.map_err(|e| e.to_string())?;
            log::debug!(
                "sync {}: upstream's refs and {} recorded refs of the mirror read in {} ms",
                cfg.name,
                guess.as_ref().map_or(0, |g| g.len()),
                t.elapsed().as_millis()
            );
            let p = guess.map(|guessed| {
                let default_branch = upstream.default_branch();
                let input = plan::PlanInput {
                    local: &local,
                    remote: &guessed,
                    default_branch: default_branch.as_deref(),
                    deleted_upstream,
                    options: &options,
                };
                (plan::plan(&input, &upstream), guessed)
            });
            timings.plan += t.elapsed();
            match p {
                Some((p, guessed)) if !p.is_empty() => {
                    let t = std::time::Instant::now();
                    // A push from the record that fails outright (not ref by ref) may be the
                    // record's fault: the next sync lists the mirror first.
                    // Only when git itself refused the push: a local failure (no space to
                    // prepare it) says nothing about the record, and deleting the record would
                    // free space and hide a full disk from `status`.
                    refused_outright.set(false);
                    let pushed = push_plan(&p, &guessed, pack_bytes, true).inspect_err(|_| {
                        if refused_outright.get() {
                            listing::remove(&state_dir, &cfg.name)
                        }
                    });
                    // The target is gone since the record was made: the listing finds it
                    // missing and creates it, in this sync.
                    if m.create_missing
                        && refused_outright.get()
                        && pushed.as_ref().is_err_and(|e| create::is_missing(e))
                    {
                        continue;
                    }
                    let (results, all_ok, _, advertised) = pushed?;
                    timings.push += t.elapsed();
                    // A ref the mirror already had ("=", up to date) was not pushed.
                    let done = |name: &str| {
                        results
                            .get(name)
                            .map_or(all_ok, |r| r.ok() && !r.up_to_date())
                    };
                    guessed_pushed += p.pushes.iter().filter(|x| done(&x.name)).count();
                    guessed_deleted += p.deletions.iter().filter(|d| done(&d.name)).count();
                    guessed_run = Some((advertised, p, results, all_ok));
                }
                _ => {}
            }
            read_local = Some(local);
        }
        let (mut remote, local) = match (guessed_run, read_local) {
            (Some((Some(mut remote), pushed, results, all_ok)), Some(local)) => {
                // What the push did is on the mirror now; a ref it could not update (a wrong
                // guess refused by its lease, a hook) is planned again below.
                listing::apply(&mut remote, &pushed, &results, all_ok);
                timings.listed_by_push = true;
                (remote, Ok(local))
            }
            (_, read_local) => {
                // The mirror is listed while upstream's refs are read (the two do not depend
                // on each other; the plan needs both). After a guessed push whose
                // advertisement could not be read, this listing already shows what it did.
                let args = ["ls-remote".into(), "--refs".into(), bare_url.clone()];
                let (listed, local) = std::thread::scope(|scope| {
                    let listing = scope.spawn(|| {
                        let t = std::time::Instant::now();
                        let out = git::run(ctx.git_dir, &args, &env, timeout, "ls-remote");
                        (out, t.elapsed())
                    });
                    let local = match read_local {
                        Some(local) => Ok(local),
                        None => upstream.refs(),
                    };
                    (listing.join(), local)
                });
                let (ls, took) = listed.map_err(|_| "ls-remote: the thread running it panicked")?;
                timings.list += took;
                let ls = ls.map_err(&fail)?;
                if ls.status_ok {
                    // A host that creates what is first accessed (Gitolite's wild
                    // repositories) did so for this listing.
                    if let Some(c) = create::created_by_host(&ls.stderr) {
                        log::info!("sync {}: {c}", cfg.name);
                        created = Some(c);
                    }
                    (git::parse_ls_remote(&ls.stdout), local)
                } else if m.create_missing
                    && created.is_none()
                    && existed.is_none()
                    && create::is_missing(&ls.stderr)
                {
                    // Created once per sync; a creation that fails fails the sync.
                    let head = upstream.default_branch();
                    let target = create::Target {
                        scheme,
                        url: &push_url,
                        git_dir: ctx.git_dir,
                        env: &env,
                        timeout,
                        default_branch: head.as_deref(),
                        forge: cfg.forge.map(|forge| forge::ForgeTarget {
                            forge,
                            url: &bare_url,
                            forge_api: cfg.forge_api.as_deref(),
                            owner: cfg.create_owner.as_deref(),
                            visibility: cfg.create_visibility.unwrap_or_default(),
                            token: lfs_credentials.as_ref().map(|(_, t)| t.as_str()),
                            ca_file: ca_file.as_deref(),
                            proxy: &lfs_proxy,
                            timeout,
                            runtime_dir: ctx.runtime_dir,
                        }),
                    };
                    match create::create(&target, &ls.stderr)? {
                        forge::Made::Created(c) => {
                            log::info!("sync {}: {c}", cfg.name);
                            created = Some(c);
                        }
                        forge::Made::Existed(c) => {
                            log::info!("sync {}: {c}; pushing into it", cfg.name);
                            existed = Some(c);
                        }
                    }
                    continue;
                } else {
                    // Never a second creation: a target created but still not found is a url
                    // that names something else.
                    let hint = match (&created, &existed) {
                        (Some(c), _) if create::is_missing(&ls.stderr) => format!(
                            " (after create_missing {c}: check that the url names what was created)"
                        ),
                        (None, Some(c)) if create::is_missing(&ls.stderr) => format!(
                            " (create_missing: {c}, yet git does not find it: check that the token may read it and that the url names it)"
                        ),
                        _ => String::new(),
                    };
                    let e = fail(git::GitError::Failed {
                        what: "ls-remote",
                        stderr: ls.stderr,
                    });
                    return Err(format!("{e}{hint}"));
                }
            }
        };
        let t = std::time::Instant::now();
        let local = local.map_err(|e| e.to_string())?;
        let default_branch = upstream.default_branch();
        let input = plan::PlanInput {
            local: &local,
            remote: &remote,
            default_branch: default_branch.as_deref(),
            deleted_upstream,
            options: &options,
        };
        let the_plan = plan::plan(&input, &upstream);
        let head_missing = default_branch
            .as_deref()
            .is_none_or(|b| !local.contains_key(b));
        let mut report = SyncReport {
            divergent: the_plan.divergent.clone(),
            kept_by_dangling_head: if head_missing {
                the_plan
                    .skipped
                    .iter()
                    .filter(|(_, r)| *r == plan::SkipReason::UnmergedOnMirror)
                    .map(|(n, _)| n.clone())
                    .collect()
            } else {
                Vec::new()
            },
            ..SyncReport::default()
        };
        timings.plan += t.elapsed();
        // LFS objects go before the refs that need them: an upload failure fails the sync here,
        // before any ref is pushed.
        if lfs_on && (!the_plan.pushes.is_empty() || !ctx.lfs_recheck.is_empty()) {
            let job = lfs::Job {
                mirror: &cfg.name,
                git_dir: ctx.git_dir,
                settings: &m.lfs,
                scheme,
                url: &push_url,
                credentials: lfs_credentials.clone(),
                ca_file: ca_file.as_deref(),
                proxy: &lfs_proxy,
                timeout,
                env: &env,
                allow_insecure_http: cfg.allow_insecure_http,
                lfs_url: cfg.lfs_url.as_deref(),
                lfs_auth: cfg.lfs_auth,
            };
            let tips: Vec<String> = the_plan.pushes.iter().map(|p| p.new.clone()).collect();
            let have: Vec<String> = remote.values().cloned().collect();
            let o = lfs::send(&job, &tips, &have, ctx.lfs_recheck).map_err(|f| {
                *retry_after = f.retry_after;
                f.msg
            })?;
            lfs_ran = true;
            lfs_outcome.objects += o.objects;
            lfs_outcome.bytes += o.bytes;
            lfs_outcome.took += o.took;
            lfs_outcome.missing = o.missing;
            lfs_outcome.missing_count = o.missing_count;
            lfs_outcome.missing_objects = o.missing_objects;
        }
        let t = std::time::Instant::now();
        let mut stale = false;
        let wanted: BTreeMap<&str, bool> = the_plan
            .pushes
            .iter()
            .map(|p| (p.name.as_str(), false))
            .chain(the_plan.deletions.iter().map(|d| (d.name.as_str(), true)))
            .collect();
        broke_off.set(None);
        let (results, all_ok, remote_said, _) = push_plan(&the_plan, &remote, pack_bytes, false)?;
        timings.push += t.elapsed();
        broke = broke_off.take();
        for (name, is_delete) in &wanted {
            match results.get(*name) {
                Some(r) if r.up_to_date() => {}
                Some(r) if r.ok() => {
                    if *is_delete {
                        report.deleted += 1;
                    } else {
                        report.pushed += 1;
                    }
                }
                Some(r) => {
                    stale |= is_stale_listing(&r.summary);
                    report.rejected.push(format!("{name}: {}", r.summary))
                }
                None if all_ok => report.pushed += 1,
                // Not refused: not sent; the sync fails for the retry to send it.
                None if broke.is_some() => {}
                None => report.rejected.push(format!("{name}: not pushed")),
            }
        }
        if stale && attempt < ATTEMPTS {
            continue;
        }
        // The mirror as this sync leaves it: the next sync's guess, when nothing went wrong.
        let known = (!stale && report.rejected.is_empty() && broke.is_none()).then(|| {
            listing::apply(&mut remote, &the_plan, &results, all_ok);
            remote
        });
        break (report, remote_said, known);
    };
    drop(source);
    report.created = created.or_else(|| created_by_push.take());
    report.pushed += guessed_pushed;
    report.deleted += guessed_deleted;
    // Kept only where a later sync may use it; a sync that went wrong forgets it, so the next
    // one lists first.
    match known {
        Some(refs) if !lfs_on => {
            let t = std::time::Instant::now();
            let saved = listing::save(&state_dir, &cfg.name, &bare_url, &refs);
            log::debug!(
                "sync {}: mirror's refs recorded in {} ms",
                cfg.name,
                t.elapsed().as_millis()
            );
            if let Err(e) = saved {
                log::debug!("could not record the mirror's refs: {e}");
                listing::remove(&state_dir, &cfg.name);
            }
        }
        _ => listing::remove(&state_dir, &cfg.name),
    }
    report.timings = timings;
    if lfs_ran {
        report.timings.lfs = Some((lfs_outcome.objects, lfs_outcome.bytes, lfs_outcome.took));
    }
    report.lfs = lfs_outcome;
    let mut problems = Vec::new();
    if !report.rejected.is_empty() {
        // The first few by name, so that what the mirror said still fits in the line.
        let shown = report.rejected.len().min(5);
        let mut p = format!("mirror rejected {}", report.rejected[..shown].join(", "));
        if shown < report.rejected.len() {
            p.push_str(&format!(" and {} more", report.rejected.len() - shown));
        }
        if !remote_said.is_empty() {
            p.push_str(&format!(" (mirror said: {})", remote_said.join(" | ")));
        }
        problems.push(p);
    }
    if let Some(e) = &broke {
        // No rejected ref: the flusher retries this sync (with backoff) as one that could not
        // run, and what arrived before is counted.
        problems.push(format!(
            "a push broke off after {} ref(s) had arrived: {e}",
            report.pushed + report.deleted
        ));
    }
    if !report.divergent.is_empty() {
        problems.push(format!(
            "divergent refs kept on the mirror: {}",
            report.divergent.join(", ")
        ));
    }
    if !problems.is_empty() {
        let refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
        report.error = Some(one_line(&url::scrub(&problems.join("; "), &refs)));
    }
    // The mirror answered every push: its connection is good for the next sync.
    if let Some(mux) = &mux {
        mux.keep();
    }
    Ok(report)
}

/// The proxy a sync to `url` uses: git's own `http.proxy` / `http.<url>.proxy` as the
/// upstream repository sees it (its config, the flusher user's ~/.gitconfig, /etc/gitconfig),
/// or "" for none. The proxy variables of the flusher's environment are not used (they are
/// whatever the process that pushed carried; `base_env` removes them). The answer is passed to
/// every git child of the sync, so the push (run in a shadow repository that does not read
/// the upstream's config) goes the same way as the listing.
fn proxy_for(
    ctx: &SyncContext<'_>,
    url: &str,
    timeout: std::time::Duration,
) -> Result<String, String> {
    let args = [
        "config".to_string(),
        "--get-urlmatch".to_string(),
        "http.proxy".to_string(),
        url.to_string(),
    ];
    let (set, mut remove) = auth::base_env(false, timeout.as_secs().max(1));
    remove.extend(ctx.password_env_names.iter().cloned());
    let env = git::ChildEnv { set, remove };
    match git::run(ctx.git_dir, &args, &env, timeout, "config") {
        Ok(out) if out.status_ok => Ok(out.stdout.trim_end_matches('\n').to_string()),
        // Exit 1 without a word: no proxy is configured.
        Ok(out) if out.stderr.trim().is_empty() => Ok(String::new()),
        Ok(out) => Err(format!(
            "reading http.proxy for the mirror: {}",
            git::last_line(&out.stderr)
        )),
        Err(e) => Err(format!("reading http.proxy for the mirror: {e}")),
    }
}

/// Why a sync must not go through `proxy` (git's `http.proxy` for the mirror, "" for none):
/// through a proxy an `http://` URL is no tunnel, the proxy reads every request, so the
/// mirror's password (Basic auth is the password itself, base64) would be handed to it in
/// clear text. An `https://` mirror goes through a CONNECT tunnel that the proxy cannot read.
fn cleartext_proxy_refused(scheme: url::Scheme, proxy: &str, has_password: bool) -> Option<String> {
    if scheme != url::Scheme::Http || proxy.is_empty() || !has_password {
        return None;
    }
    Some(format!(
        "refused to send the mirror's password to an http:// URL through the proxy {} (http.proxy): the proxy would read it in clear text; use https://, or exempt the mirror from the proxy with `git config http.<mirror url>.proxy \"\"`",
        url::mask(proxy)
    ))
}

/// Removes the temporary known_hosts files of a pinned host key when the sync ends, however it ends.
struct TempFiles(Vec<std::path::PathBuf>);

impl Drop for TempFiles {
    fn drop(&mut self) {
        for f in &self.0 {
            let _ = std::fs::remove_file(f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_messages_keep_what_the_server_said() {
        let stderr = "remote: locked is frozen FRZ-42        \n\
                      remote: error: hook declined to update refs/heads/locked        \n\
                      remote: \n\
                      remote: Resolving deltas: 100% (3/3), done.\n\
                      remote: Resolving deltas:  50% (1/2)\rremote: Resolving deltas: 100% (2/2)\n\
                      remote: locked is frozen FRZ-42\n\
                      error: failed to push some refs to '../m.git'\n";
        assert_eq!(
            remote_messages(stderr),
            [
                "locked is frozen FRZ-42",
                "error: hook declined to update refs/heads/locked"
            ]
        );
        assert!(remote_messages("error: failed to push\n").is_empty());
    }

    #[test]
    fn no_password_goes_to_a_proxy_in_clear_text() {
        use crate::url::Scheme;
        let proxy = "http://proxyuser:pr0xy@proxy.example:3128";
        for (scheme, proxy, password, refused) in [
            (Scheme::Http, proxy, true, true),
            (Scheme::Http, "https://proxy.example", true, true),
            (Scheme::Http, "", true, false),
            (Scheme::Http, proxy, false, false),
            (Scheme::Https, proxy, true, false),
            (Scheme::Ssh, proxy, true, false),
        ] {
            let why = cleartext_proxy_refused(scheme, proxy, password);
            assert_eq!(why.is_some(), refused, "{scheme:?} {proxy} {password}");
            if let Some(why) = why {
                assert!(!why.contains("pr0xy") && !why.contains('\n'), "{why}");
                assert!(
                    why.contains("proxy.example") && why.contains("https://"),
                    "{why}"
                );
            }
        }
    }
}
