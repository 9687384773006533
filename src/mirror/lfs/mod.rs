//! Git LFS objects to the mirror: the pointers in the commits a sync pushes (scan.rs), read from
//! the upstream's store (default, Gitea or GitLab layout), sent through the mirror's LFS batch
//! API (client.rs) before the refs that need them. See docs/lfs.md.

pub mod client;
pub mod scan;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use log::{info, warn};

use crate::config::{LfsLayout, LfsMode, LfsSettings};
use crate::url::Scheme;

/// How many missing oids status keeps.
pub const MISSING_CAP: usize = 20;
/// How many missing objects the mirror's state remembers to look for again (the rest are
/// counted, and looked for again only when a sync sends their commits).
pub const REMEMBER_CAP: usize = 1000;

/// What the LFS part of a sync did.
#[derive(Debug, Default, Clone)]
pub struct Outcome {
    pub objects: u64,
    pub bytes: u64,
    pub took: Duration,
    /// `oid (size bytes)` of objects the mirror needs and the upstream does not have either.
    pub missing: Vec<String>,
    pub missing_count: usize,
    /// The missing (or corrupt) objects themselves, up to REMEMBER_CAP: later syncs look for
    /// them again.
    pub missing_objects: Vec<scan::Pointer>,
}

/// The store's file for `oid`.
pub fn object_path(store: &Path, layout: LfsLayout, oid: &str) -> PathBuf {
    let dir = store.join(&oid[0..2]).join(&oid[2..4]);
    match layout {
        LfsLayout::Default => dir.join(oid),
        LfsLayout::Gitea | LfsLayout::Gitlab => dir.join(&oid[4..]),
    }
}

/// The store of a repository: the configured one (relative to the repository), or git-lfs's.
pub fn store_dir(git_dir: &Path, s: &LfsSettings) -> PathBuf {
    match &s.store {
        Some(p) => git_dir.join(p),
        None => git_dir.join("lfs").join("objects"),
    }
}

/// `auto` is on when the upstream has an LFS store (git-lfs's, or a configured one). A store
/// that cannot be looked at (permission denied) counts as one, so the sync says so.
pub fn enabled(git_dir: &Path, s: &LfsSettings) -> bool {
    match s.mode {
        LfsMode::Off => false,
        LfsMode::On => true,
        LfsMode::Auto => {
            s.store.is_some()
                || match std::fs::metadata(store_dir(git_dir, s)) {
                    Ok(m) => m.is_dir(),
                    Err(e) => !absent(&e),
                }
        }
    }
}

/// Not there (rather than there but out of reach).
fn absent(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR)
}

/// The store's file for an object of `size` bytes: Some when it is there with that size, None
/// when it is not (missing upstream). A store that cannot be looked into is neither: Err names
/// the directory that stops us, and the sync fails (rather than listing objects as missing
/// that may well be there).
fn stored_object(path: &Path, size: u64) -> Result<Option<PathBuf>, String> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() && m.len() == size => Ok(Some(path.to_path_buf())),
        Ok(_) => Ok(None),
        Err(e) if absent(&e) => Ok(None),
        Err(e) => {
            // The deepest directory we can still stat is the one we may not look into.
            let blocked = path
                .ancestors()
                .skip(1)
                .find(|a| std::fs::metadata(a).is_ok())
                .unwrap_or(path);
            let uid = unsafe { libc::geteuid() };
            Err(format!(
                "lfs: cannot read the upstream's LFS store: {}: {e}; give the user the flusher runs as (uid {uid}) read and search permission there",
                blocked.display()
            ))
        }
    }
}

/// What the LFS step needs from the sync.
pub struct Job<'a> {
    pub mirror: &'a str,
    pub git_dir: &'a Path,
    pub settings: &'a LfsSettings,
    pub scheme: Scheme,
    /// The mirror's URL without credentials (a local path already made absolute).
    pub url: &'a str,
    /// The mirror's username and password/token, if it has them.
    pub credentials: Option<(String, String)>,
    pub ca_file: Option<&'a Path>,
    /// The proxy git uses for the mirror (`http.proxy`), "" for none.
    pub proxy: &'a str,
    pub timeout: Duration,
    /// The git child environment (GIT_SSH_COMMAND for ssh mirrors).
    pub env: &'a crate::mirror::git::ChildEnv,
    /// The mirror's `allow_insecure_http`: lets an SSH mirror's LFS endpoint be http://.
    pub allow_insecure_http: bool,
    /// The mirror's `lfs_url`: its LFS endpoint when that is not `<url>/info/lfs`.
    pub lfs_url: Option<&'a str>,
    /// The mirror's `lfs_auth`: its credentials are pinned to `lfs_url`'s origin instead of
    /// the URL's.
    pub lfs_auth: bool,
}

pub use crate::config::check_lfs_url;
pub use client::Failure;

/// Whether an href the LFS server gave (the endpoint of git-lfs-authenticate, an upload or
/// verify action) may be followed for a mirror reached over `scheme`: an http:// one would send
/// the objects (and the headers the server put in the action) in clear, so only an http://
/// mirror follows it, or an SSH mirror with `allow_insecure_http`. Err is the one line naming
/// the mirror and the href's host.
pub fn check_href(
    mirror: &str,
    scheme: Scheme,
    allow_insecure_http: bool,
    what: &str,
    href: &str,
) -> Result<(), String> {
    let parsed = url::Url::parse(href).ok();
    let insecure = parsed.as_ref().is_none_or(|u| u.scheme() != "https");
    let allowed = match scheme {
        Scheme::Http => true,
        Scheme::Ssh => allow_insecure_http,
        _ => false,
    };
    if !insecure || allowed {
        return Ok(());
    }
    let shown = parsed.map_or_else(
        || "an unparsable URL".to_string(),
        |u| {
            let host = u.host_str().unwrap_or("");
            match u.port() {
                Some(p) => format!("{}://{host}:{p}", u.scheme()),
                None => format!("{}://{host}", u.scheme()),
            }
        },
    );
    let (mirror_kind, fix) = match scheme {
        Scheme::Ssh => (
            "an ssh:// mirror",
            "fix the server's LFS URL, or set allow_insecure_http: true on the mirror",
        ),
        _ => (
            "an https:// mirror",
            "fix the LFS server's external URL (behind a proxy: X-Forwarded-Proto https)",
        ),
    };
    Err(format!(
        "lfs: mirror {mirror}: the LFS server gave {what} on {shown}, not https, for {mirror_kind}; refusing to send objects in clear ({fix})"
    ))
}

/// Sends the LFS objects of the commits reachable from `tips` and not from `have` that the
/// mirror lacks, and those of `recheck` (objects an earlier sync found missing upstream) that
/// have arrived since. Err fails the sync (it is retried); objects missing upstream too do not.
pub fn send(
    job: &Job<'_>,
    tips: &[String],
    have: &[String],
    recheck: &[scan::Pointer],
) -> Result<Outcome, Failure> {
    let start = Instant::now();
    let mut pointers = scan::pointers(job.git_dir, tips, have).map_err(|e| format!("lfs: {e}"))?;
    if !recheck.is_empty() {
        let mut all: std::collections::BTreeSet<scan::Pointer> = pointers.into_iter().collect();
        all.extend(recheck.iter().cloned());
        pointers = all.into_iter().collect();
    }
    let mut out = Outcome::default();
    if pointers.is_empty() {
        return Ok(out);
    }
    let store = store_dir(job.git_dir, job.settings);
    let local = |p: &scan::Pointer| -> Result<Option<PathBuf>, String> {
        let path = object_path(&store, job.settings.layout, &p.oid);
        stored_object(&path, p.size)
    };
    match job.scheme {
        Scheme::Local => copy_local(job, &pointers, &local, &mut out)?,
        Scheme::Git => {
            if job.settings.mode == LfsMode::On {
                return Err(Failure::from(format!(
                    "lfs: on, but git:// has no LFS API to send {} object(s) to; use an https:// or ssh:// mirror URL, or set lfs: off",
                    pointers.len()
                )));
            }
            warn!(
                "sync {}: {} LFS object(s) not sent: git:// has no LFS API",
                job.mirror,
                pointers.len()
            );
            return Ok(out);
        }
        Scheme::Https | Scheme::Http | Scheme::Ssh => {
            let endpoint = endpoint(job)?;
            check_href(
                job.mirror,
                job.scheme,
                job.allow_insecure_http,
                "its endpoint",
                &endpoint.href,
            )?;
            // The SSH mirror's endpoint is reached directly (no git config names a proxy for it).
            let proxy = if job.scheme == Scheme::Ssh {
                ""
            } else {
                job.proxy
            };
            let client = client::Client::new(endpoint, job.ca_file, proxy, job.timeout)?;
            upload_all(job, &client, &pointers, &local, &mut out)?;
        }
    }
    out.took = start.elapsed();
    if out.missing_count > 0 {
        warn!(
            "sync {}: {} LFS object(s) are missing upstream too (pointers pushed without their objects), refs pushed anyway: {}",
            job.mirror,
            out.missing_count,
            out.missing.join(", ")
        );
    }
    Ok(out)
}

fn remember(out: &mut Outcome, oid: &str, size: u64) {
    if out.missing_objects.len() < REMEMBER_CAP {
        out.missing_objects.push(scan::Pointer {
            oid: oid.to_string(),
            size,
        });
    }
}

fn note_missing(out: &mut Outcome, oid: &str, size: u64) {
    remember(out, oid, size);
    out.missing_count += 1;
    if out.missing.len() < MISSING_CAP {
        out.missing.push(format!("{oid} ({size} bytes)"));
    }
}

/// An object whose stored file does not match its pointer counts as missing (it was not sent,
/// and waiting does not fix it); status names it as corrupt.
fn note_corrupt(out: &mut Outcome, mirror: &str, oid: &str, size: u64, why: &str) {
    log::error!("sync {mirror}: {why}");
    remember(out, oid, size);
    out.missing_count += 1;
    if out.missing.len() < MISSING_CAP {
        out.missing.push(format!(
            "{oid} ({size} bytes, corrupt in the upstream store)"
        ));
    }
}

/// The batch endpoint: `<url>[.git]/info/lfs` for HTTP(S) with the mirror's own credentials
/// pinned to its origin; for SSH what `git-lfs-authenticate <path> upload` answers.
fn endpoint(job: &Job<'_>) -> Result<client::Endpoint, String> {
    use base64::Engine;
    match job.scheme {
        Scheme::Ssh => ssh_authenticate(job),
        _ => {
            let base = job.url.trim_end_matches('/');
            let href = if let Some(u) = job.lfs_url {
                check_lfs_url(job.url, u).map_err(|e| format!("lfs: lfs_url {e}"))?;
                u.trim_end_matches('/').to_string()
            } else if base.ends_with(".git") {
                format!("{base}/info/lfs")
            } else {
                format!("{base}.git/info/lfs")
            };
            let basic = job.credentials.as_ref().map(|(u, p)| {
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
                )
            });
            // The mirror's credentials stay pinned to the origin of its URL: an lfs_url on the
            // same scheme, host and port gets them, one elsewhere only with lfs_auth
            // (docs/security.md).
            let pinned_to = if job.lfs_auth && job.lfs_url.is_some() {
                href.as_str()
            } else {
                job.url
            };
            Ok(client::Endpoint {
                pinned: client::origin_of(pinned_to),
                href,
                headers: Vec::new(),
                authorization: basic,
            })
        }
    }
}

/// `[user@]host`, port and path of an ssh:// or scp-like URL.
fn ssh_target(url: &str) -> Option<(String, Option<String>, String)> {
    if let Some(rest) = url
        .strip_prefix("ssh://")
        .or_else(|| url.strip_prefix("git+ssh://"))
    {
        let (auth, path) = rest.split_at(rest.find('/')?);
        let (userhost, port) = match auth.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || auth.starts_with('[') => (h, Some(p.to_string())),
            _ => (auth, None),
        };
        let userhost = userhost.replace(['[', ']'], "");
        let path = path
            .strip_prefix("/~")
            .map_or(path.to_string(), |p| format!("~{p}"));
        Some((userhost, port.filter(|p| !p.is_empty()), path))
    } else {
        let (host, path) = url.split_once(':')?;
        Some((host.to_string(), None, path.to_string()))
    }
}

fn ssh_authenticate(job: &Job<'_>) -> Result<client::Endpoint, String> {
    let (host, port, path) = ssh_target(job.url).ok_or_else(|| {
        format!(
            "lfs: cannot read host and path from {}",
            crate::url::mask(job.url)
        )
    })?;
    let ssh = job
        .env
        .set
        .iter()
        .find(|(k, _)| k == "GIT_SSH_COMMAND")
        .map_or("ssh".to_string(), |(_, v)| v.clone());
    // As git runs GIT_SSH_COMMAND: through sh, with the arguments appended.
    let mut cmd = std::process::Command::new("/bin/sh");
    cmd.arg("-c").arg(format!("{ssh} \"$@\"")).arg("ssh");
    if let Some(p) = &port {
        cmd.arg("-p").arg(p);
    }
    let quoted = format!("'{}'", path.replace('\'', r"'\''"));
    cmd.arg("--")
        .arg(&host)
        .arg(format!("git-lfs-authenticate {quoted} upload"));
    crate::paths::drop_git_env(&mut cmd);
    for k in &job.env.remove {
        cmd.env_remove(k);
    }
    for (k, v) in &job.env.set {
        cmd.env(k, v);
    }
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = cmd
        .spawn()
        .map_err(|e| format!("lfs: cannot run ssh: {e}"))?;
    let out = wait_output(child, job.timeout)?;
    let masked = crate::url::mask(job.url);
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim();
        return Err(format!(
            "lfs: git-lfs-authenticate on {masked} failed: {}",
            crate::url::escape_control(last)
        ));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("lfs: git-lfs-authenticate on {masked} did not answer JSON: {e}"))?;
    let href = v["href"]
        .as_str()
        .ok_or_else(|| format!("lfs: git-lfs-authenticate on {masked} gave no href"))?
        .to_string();
    let mut headers: Vec<(String, String)> = v["header"]
        .as_object()
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    // The token goes to the endpoint's own origin (the batch API and uploads there), never to
    // a storage host elsewhere.
    let authorization = headers
        .iter()
        .position(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        .map(|i| headers.remove(i).1);
    Ok(client::Endpoint {
        pinned: client::origin_of(&href),
        href,
        headers,
        authorization,
    })
}

fn wait_output(
    mut child: std::process::Child,
    timeout: Duration,
) -> Result<std::process::Output, String> {
    use std::io::Read;
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let out_t = std::thread::spawn(move || {
        let mut s = Vec::new();
        if let Some(p) = stdout.as_mut() {
            let _ = p.take(1 << 20).read_to_end(&mut s);
        }
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = Vec::new();
        if let Some(p) = stderr.as_mut() {
            let _ = p.take(1 << 20).read_to_end(&mut s);
        }
        s
    });
    let (status, timed_out) =
        crate::mirror::git::wait_deadline(child, timeout, |pid, sig| unsafe {
            libc::kill(pid, sig);
        });
    if timed_out {
        return Err(format!(
            "lfs: git-lfs-authenticate gave no answer within {}s",
            timeout.as_secs()
        ));
    }
    let status = status.map_err(|e| format!("lfs: ssh: {e}"))?;
    Ok(std::process::Output {
        status,
        stdout: out_t.join().unwrap_or_default(),
        stderr: err_t.join().unwrap_or_default(),
    })
}

/// A local mirror (a path) keeps its objects where git-lfs would: `<mirror>/lfs/objects`.
fn copy_local(
    job: &Job<'_>,
    pointers: &[scan::Pointer],
    local: &dyn Fn(&scan::Pointer) -> Result<Option<PathBuf>, String>,
    out: &mut Outcome,
) -> Result<(), String> {
    let base = job.url.strip_prefix("file://").unwrap_or(job.url);
    let mut dir = PathBuf::from(base);
    if dir.join(".git").is_dir() {
        dir = dir.join(".git");
    }
    let dest_store = dir.join("lfs").join("objects");
    for p in pointers {
        let dest = object_path(&dest_store, LfsLayout::Default, &p.oid);
        if std::fs::metadata(&dest).is_ok_and(|m| m.len() == p.size) {
            continue;
        }
        let Some(src) = local(p)? else {
            note_missing(out, &p.oid, p.size);
            continue;
        };
        let parent = dest.parent().expect("object path has a parent");
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("lfs: creating {}: {e}", parent.display()))?;
        let tmp = parent.join(format!(".{}.tmp{}", p.oid, std::process::id()));
        let mut checked = match std::fs::File::open(&src) {
            Ok(f) => client::HashCheck::new(f, &p.oid, p.size),
            Err(e) => return Err(format!("lfs: reading {}: {e}", src.display())),
        };
        let corrupt = checked.corrupt.clone();
        let copied = std::fs::File::create(&tmp).and_then(|mut f| {
            std::io::copy(&mut checked, &mut f)?;
            f.sync_all()
        });
        if corrupt.load(Ordering::Relaxed) || (p.size == 0 && p.oid != client::EMPTY_SHA256) {
            let _ = std::fs::remove_file(&tmp);
            let why = copied
                .err()
                .map_or_else(|| "it differs".into(), |e| e.to_string());
            note_corrupt(
                out,
                job.mirror,
                &p.oid,
                p.size,
                &format!(
                    "lfs: object {} ({} bytes) at {} does not match its pointer, not copied: {why}",
                    p.oid,
                    p.size,
                    src.display()
                ),
            );
            continue;
        }
        copied
            .and_then(|_| std::fs::rename(&tmp, &dest))
            .map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                format!(
                    "lfs: copying {} ({} bytes) to {}: {e}",
                    p.oid,
                    p.size,
                    dest.display()
                )
            })?;
        out.objects += 1;
        out.bytes += p.size;
    }
    Ok(())
}

fn check_actions(
    job: &Job<'_>,
    upload: &client::Action,
    verify: Option<&client::Action>,
) -> Result<(), String> {
    let check = |what, a: &client::Action| {
        check_href(
            job.mirror,
            job.scheme,
            job.allow_insecure_http,
            what,
            &a.href,
        )
    };
    check("an upload href", upload)?;
    verify.map_or(Ok(()), |v| check("a verify href", v))
}

struct Task {
    oid: String,
    size: u64,
    path: PathBuf,
    upload: client::Action,
    verify: Option<client::Action>,
}

fn upload_all(
    job: &Job<'_>,
    client: &client::Client,
    pointers: &[scan::Pointer],
    local: &dyn Fn(&scan::Pointer) -> Result<Option<PathBuf>, String>,
    out: &mut Outcome,
) -> Result<(), Failure> {
    // Ask about every object, even those we lack: the mirror may have them already.
    let mut tasks = Vec::new();
    for chunk in pointers.chunks(client::BATCH_MAX) {
        let list: Vec<(String, u64)> = chunk.iter().map(|p| (p.oid.clone(), p.size)).collect();
        for (oid, size, need) in client.batch(&list)? {
            if matches!(need, client::Need::Nothing) {
                continue;
            }
            let have = local(&scan::Pointer {
                oid: oid.clone(),
                size,
            })?;
            match need {
                client::Need::Nothing => {}
                // An object we do not have either cannot be sent anyway: it is listed as
                // missing instead of failing (and so blocking the refs) forever.
                client::Need::Refused(_) if have.is_none() => note_missing(out, &oid, size),
                client::Need::Refused(why) => {
                    return Err(Failure::from(format!(
                        "lfs: the mirror refused {oid} ({size} bytes): {why}"
                    )))
                }
                client::Need::Upload { upload, verify } => {
                    check_actions(job, &upload, verify.as_ref())?;
                    match have {
                        Some(path) => tasks.push(Task {
                            oid,
                            size,
                            path,
                            upload,
                            verify,
                        }),
                        None => note_missing(out, &oid, size),
                    }
                }
            }
        }
    }
    if tasks.is_empty() {
        return Ok(());
    }
    let total_objects = tasks.len();
    let total_bytes: u64 = tasks.iter().map(|t| t.size).sum();
    let queue = Mutex::new(tasks);
    let sent = Arc::new(AtomicU64::new(0));
    let done = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let first_error: Mutex<Option<Failure>> = Mutex::new(None);
    let corrupt: Mutex<Vec<(String, u64, String)>> = Mutex::new(Vec::new());
    let workers = job.settings.concurrency.min(total_objects).max(1);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                if failed.load(Ordering::Relaxed) {
                    return;
                }
                let Some(mut t) = queue.lock().map(|mut q| q.pop()).ok().flatten() else {
                    return;
                };
                let result = (|| {
                    // An action that has expired meanwhile is asked for again.
                    let stale = |a: &client::Action| {
                        a.expires
                            .is_some_and(|e| e <= Instant::now() + Duration::from_secs(5))
                    };
                    if stale(&t.upload) || t.verify.as_ref().is_some_and(stale) {
                        match client.batch(&[(t.oid.clone(), t.size)])?.pop() {
                            Some((_, _, client::Need::Upload { upload, verify })) => {
                                check_actions(job, &upload, verify.as_ref())?;
                                t.upload = upload;
                                t.verify = verify;
                            }
                            Some((_, _, client::Need::Refused(why))) => {
                                return Err(Failure::from(format!(
                                    "lfs: the mirror refused {} ({} bytes): {why}",
                                    t.oid, t.size
                                )))
                            }
                            _ => return Ok(()),
                        }
                    }
                    client
                        .upload(&t.oid, t.size, &t.path, &t.upload, t.verify.as_ref(), &sent)
                        .map_err(|e| match e {
                            client::UploadError::Failed(e) => e,
                            client::UploadError::Corrupt(why) => {
                                corrupt.lock().unwrap_or_else(|p| p.into_inner()).push((
                                    t.oid.clone(),
                                    t.size,
                                    why,
                                ));
                                Failure::from(String::new())
                            }
                        })
                })();
                match result {
                    Ok(()) => {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    // A corrupt object was set aside; the others go on.
                    Err(e) if e.msg.is_empty() => {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        failed.store(true, Ordering::Relaxed);
                        let mut slot = first_error.lock().unwrap_or_else(|p| p.into_inner());
                        slot.get_or_insert(e);
                        return;
                    }
                }
            });
        }
        // Long transfers log their progress every 10 s.
        let start = Instant::now();
        let mut next_log = start + Duration::from_secs(10);
        while done.load(Ordering::Relaxed) < total_objects && !failed.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
            if Instant::now() >= next_log {
                next_log += Duration::from_secs(10);
                info!(
                    "sync {}: lfs {}/{} objects, {}/{} MiB sent",
                    job.mirror,
                    done.load(Ordering::Relaxed),
                    total_objects,
                    sent.load(Ordering::Relaxed) >> 20,
                    total_bytes >> 20
                );
            }
        }
    });
    if let Some(e) = first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    let corrupt = corrupt.into_inner().unwrap_or_else(|p| p.into_inner());
    for (oid, size, why) in &corrupt {
        note_corrupt(out, job.mirror, oid, *size, why);
    }
    out.objects += (done.load(Ordering::Relaxed) - corrupt.len()) as u64;
    out.bytes += sent.load(Ordering::Relaxed);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_layouts() {
        let oid = "4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393";
        let s = Path::new("/s");
        assert_eq!(
            object_path(s, LfsLayout::Default, oid),
            Path::new("/s/4d/7a").join(oid)
        );
        for l in [LfsLayout::Gitea, LfsLayout::Gitlab] {
            assert_eq!(
                object_path(s, l, oid),
                Path::new("/s/4d/7a").join(&oid[4..])
            );
        }
    }

    #[test]
    fn http_hrefs_are_followed_only_for_http_mirrors() {
        let href = "http://u:pw@lfs.example.com:8080/objects/abc?X-Amz-Signature=s3cr3t";
        let e = check_href("gh", Scheme::Https, false, "an upload href", href).unwrap_err();
        assert!(
            e.contains("mirror gh")
                && e.contains("http://lfs.example.com:8080")
                && !e.contains("s3cr3t")
                && !e.contains("pw")
                && !e.contains('\n'),
            "{e}"
        );
        // allow_insecure_http does not make an https mirror accept a downgrade.
        assert!(check_href("gh", Scheme::Https, true, "x", href).is_err());
        assert!(check_href("gh", Scheme::Ssh, false, "x", href).is_err());
        assert!(check_href("gh", Scheme::Ssh, true, "x", href).is_ok());
        assert!(check_href("gh", Scheme::Http, false, "x", href).is_ok());
        let good = "https://lfs.example.com/objects/abc";
        for scheme in [Scheme::Https, Scheme::Ssh, Scheme::Http] {
            assert!(check_href("gh", scheme, false, "x", good).is_ok());
        }
        // Not a URL at all, or another scheme: refused for an https mirror too.
        assert!(check_href("gh", Scheme::Https, false, "x", "ftp://h/x").is_err());
        assert!(check_href("gh", Scheme::Https, false, "x", "/relative").is_err());
    }

    #[test]
    fn ssh_targets() {
        assert_eq!(
            ssh_target("ssh://git@h.example:2222/srv/a.git"),
            Some((
                "git@h.example".into(),
                Some("2222".into()),
                "/srv/a.git".into()
            ))
        );
        assert_eq!(
            ssh_target("ssh://h.example/a.git"),
            Some(("h.example".into(), None, "/a.git".into()))
        );
        assert_eq!(
            ssh_target("git@h.example:org/a.git"),
            Some(("git@h.example".into(), None, "org/a.git".into()))
        );
    }
}
