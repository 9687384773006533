//! The LFS batch API client (https://github.com/git-lfs/git-lfs/blob/main/docs/api/batch.md),
//! in-process with ureq + rustls: no child process, so no secret in argv, and the binary stays
//! static. Objects are streamed from disk; every socket read and write has the activity timeout,
//! so a stalled transfer is cut while a slow but moving one of any size goes through.

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const LFS_JSON: &str = "application/vnd.git-lfs+json";
/// Objects per batch request (GitHub and GitLab cap a batch at 100).
pub const BATCH_MAX: usize = 100;

/// Where the batch API is and how to authenticate there.
pub struct Endpoint {
    /// `.../info/lfs`, no credentials in it.
    pub href: String,
    /// Headers the endpoint gave us (git-lfs-authenticate); empty for HTTPS mirrors.
    pub headers: Vec<(String, String)>,
    /// The Authorization value: `Basic ...` from the mirror's own password/token, or what
    /// git-lfs-authenticate gave. Sent only to `pinned` (scheme, host, port), and only where
    /// the server's action brings no Authorization of its own.
    pub authorization: Option<String>,
    pub pinned: Option<Origin>,
}

/// The host pinning shared with git's askpass (mirror/origin.rs): scheme, host and port.
pub use crate::mirror::origin::Origin;

/// The origin of an http(s) URL; None for anything else (which then gets no credentials).
pub fn origin_of(url: &str) -> Option<Origin> {
    Origin::parse(url).map(|(o, _)| o)
}

/// What the server wants done for one object.
#[derive(Debug, Clone)]
pub struct Action {
    pub href: String,
    pub headers: Vec<(String, String)>,
    /// When the action stops working, if the server said.
    pub expires: Option<Instant>,
}

#[derive(Debug, Clone)]
pub enum Need {
    /// The server has it.
    Nothing,
    Upload {
        upload: Action,
        verify: Option<Action>,
    },
    /// The server refused the object: its code and message.
    Refused(String),
}

pub struct Client {
    agent: ureq::Agent,
    pub endpoint: Endpoint,
}

pub use crate::url::show_href as show;

fn tls_config(
    ca_file: Option<&std::path::Path>,
) -> Result<Option<Arc<rustls::ClientConfig>>, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;
    // ca_file replaces the trusted CAs, as GIT_SSL_CAINFO does for git; otherwise the system's
    // bundle (as git's), and ureq's built-in Mozilla roots where there is none.
    let bundle = match ca_file {
        Some(p) => p.to_path_buf(),
        None => match [
            "/etc/ssl/certs/ca-certificates.crt",
            "/etc/pki/tls/certs/ca-bundle.crt",
            "/etc/ssl/cert.pem",
        ]
        .iter()
        .map(std::path::Path::new)
        .find(|p| p.is_file())
        {
            Some(p) => p.to_path_buf(),
            None => return Ok(None),
        },
    };
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(&bundle)
        .map_err(|e| format!("ca_file {}: {e}", bundle.display()))?;
    for c in certs {
        let c = c.map_err(|e| format!("ca_file {}: {e}", bundle.display()))?;
        let _ = roots.add(c);
    }
    if roots.is_empty() {
        return Err(format!(
            "ca_file {}: no certificate in it",
            bundle.display()
        ));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Some(Arc::new(cfg)))
}

/// The HTTP agent of a sync's in-process requests (LFS, forge APIs): every socket operation
/// bounded by `activity_timeout`, no redirect followed (it could carry our credentials
/// elsewhere; the configured URL must be the final one), git's proxy for the mirror, and
/// `ca_file` (else the system's CAs) as git trusts them.
pub fn agent(
    ca_file: Option<&std::path::Path>,
    proxy: &str,
    activity_timeout: Duration,
) -> Result<ureq::Agent, String> {
    let mut b = ureq::AgentBuilder::new()
        .timeout_connect(activity_timeout)
        .timeout_read(activity_timeout)
        .timeout_write(activity_timeout)
        .redirects(0)
        .user_agent(concat!("git-pushmirror/", env!("CARGO_PKG_VERSION")));
    if !proxy.is_empty() {
        let p = ureq::Proxy::new(proxy).map_err(|_| {
            format!(
                "cannot use the proxy {} (http.proxy) for in-process requests",
                crate::url::mask(proxy)
            )
        })?;
        b = b.proxy(p);
    }
    if let Some(tls) = tls_config(ca_file)? {
        b = b.tls_config(tls);
    }
    Ok(b.build())
}

/// One line for a failed request: never the URL's query or userinfo, never a header.
pub fn describe(e: ureq::Error) -> (Option<u16>, String) {
    match e {
        ureq::Error::Status(code, resp) => {
            let body = resp.into_string().unwrap_or_default();
            (Some(code), format!("HTTP {code}{}", server_message(&body)))
        }
        ureq::Error::Transport(t) => {
            let mut s = t.kind().to_string();
            if let Some(m) = t.message() {
                s.push_str(": ");
                s.push_str(m);
            }
            if let Some(src) = std::error::Error::source(&t) {
                let src = src.to_string();
                if src.contains("timed out") || src.contains("WouldBlock") {
                    s.push_str(": no data moved within the activity timeout");
                } else {
                    s.push_str(": ");
                    s.push_str(&src);
                }
            }
            (None, s)
        }
    }
}

/// `: <message>` from an LFS error body (`{"message": ...}`), or the start of a plain one.
fn server_message(body: &str) -> String {
    let msg = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| body.chars().take(200).collect());
    let msg = msg.split_whitespace().collect::<Vec<_>>().join(" ");
    if msg.is_empty() {
        String::new()
    } else {
        format!(" (server said: {msg})")
    }
}

fn header_list(v: &Value) -> Vec<(String, String)> {
    v.as_object()
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

fn action(v: &Value, now: Instant) -> Option<Action> {
    let href = v["href"].as_str()?.to_string();
    let in_secs = v["expires_in"]
        .as_i64()
        .filter(|s| *s > 0)
        .map(|s| now + Duration::from_secs(s as u64));
    let at = v["expires_at"]
        .as_str()
        .and_then(parse_rfc3339_ms)
        .map(|ms| {
            let left = ms.saturating_sub(crate::time::now_ms());
            now + Duration::from_millis(left)
        });
    Some(Action {
        href,
        headers: header_list(&v["header"]),
        expires: match (in_secs, at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        },
    })
}

/// Milliseconds since the epoch of `2026-11-30T22:30:00Z` / `...00.123+01:00`.
pub fn parse_rfc3339_ms(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = &s[19..];
    let mut frac_ms = 0i64;
    if let Some(r) = rest.strip_prefix('.') {
        let digits = r.bytes().take_while(u8::is_ascii_digit).count();
        let f = &r[..digits];
        frac_ms = format!("{:0<3}", &f[..f.len().min(3)]).parse().ok()?;
        rest = &r[digits..];
    }
    let offset_s = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && (rest.starts_with('+') || rest.starts_with('-')) => {
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            sign * (rest[1..3].parse::<i64>().ok()? * 3600 + rest[4..6].parse::<i64>().ok()? * 60)
        }
        _ => return None,
    };
    // Days from civil (Howard Hinnant).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + se - offset_s;
    u64::try_from(secs * 1000 + frac_ms).ok()
}

/// The objects of a batch response. Only the (oid, size) pairs that were asked about are taken:
/// a server's oid becomes a path in the upstream's store, so "../../..", an absolute path or a
/// short string must never get that far, nor a size other than the pointer's.
fn parse_batch(
    text: &str,
    asked: &[(String, u64)],
    now: Instant,
) -> Result<Vec<(String, u64, Need)>, String> {
    let v: Value = serde_json::from_str(text)
        .map_err(|e| format!("answered a batch request with something that is not JSON: {e}"))?;
    if let Some(t) = v["transfer"].as_str() {
        if t != "basic" {
            return Err(format!("chose transfer '{t}'; only 'basic' is supported"));
        }
    }
    let mut out = Vec::new();
    for o in v["objects"].as_array().into_iter().flatten() {
        let (Some(oid), Some(size)) = (o["oid"].as_str(), o["size"].as_u64()) else {
            continue;
        };
        if !asked.iter().any(|(a, s)| a == oid && *s == size) {
            continue;
        }
        let need = if !o["error"].is_null() {
            Need::Refused(format!(
                "{} {}",
                o["error"]["code"],
                o["error"]["message"].as_str().unwrap_or("")
            ))
        } else {
            match action(&o["actions"]["upload"], now) {
                None => Need::Nothing,
                Some(upload) => Need::Upload {
                    upload,
                    verify: action(&o["actions"]["verify"], now),
                },
            }
        };
        out.push((oid.to_string(), size, need));
    }
    // An object left out is not one the server has: taking silence for "have it" would push
    // refs whose objects the mirror never got (a proxy answering `{}` would do it for all).
    if let Some((oid, size)) = asked
        .iter()
        .find(|(a, s)| !out.iter().any(|(o, z, _)| o == a && z == s))
    {
        return Err(format!(
            "left {oid} ({size} bytes) out of its batch response (an LFS server answers for every object)"
        ));
    }
    Ok(out)
}

/// Counts bytes as they are read from disk, for progress and the sync's totals.
struct Counting<R> {
    inner: R,
    sent: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sent.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Checks a stored object against its pointer while it is read: when the read that completes
/// `size` bytes brings a sha256 other than the oid, it fails instead of handing those last bytes
/// on, so a corrupt store object never reaches the mirror whole (the request is cut short of its
/// Content-Length) and never lands under that oid.
pub struct HashCheck<R> {
    inner: R,
    oid: String,
    left: u64,
    hasher: sha2::Sha256,
    pub corrupt: Arc<std::sync::atomic::AtomicBool>,
}

impl<R: Read> HashCheck<R> {
    pub fn new(inner: R, oid: &str, size: u64) -> HashCheck<R> {
        HashCheck {
            inner,
            oid: oid.to_string(),
            left: size,
            hasher: sha2::Digest::new(),
            corrupt: Arc::default(),
        }
    }

    fn finish(&mut self) -> std::io::Result<()> {
        let digest = sha2::Digest::finalize_reset(&mut self.hasher);
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        if hex == self.oid {
            Ok(())
        } else {
            self.corrupt.store(true, Ordering::Relaxed);
            Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("its content's sha256 is {hex}, not the pointer's oid"),
            ))
        }
    }
}

impl<R: Read> Read for HashCheck<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            self.corrupt.store(true, Ordering::Relaxed);
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("it ended {} bytes short of the pointer's size", self.left),
            ));
        }
        sha2::Digest::update(&mut self.hasher, &buf[..n]);
        self.left -= n as u64;
        if self.left == 0 {
            self.finish()?;
        }
        Ok(n)
    }
}

/// An upload that failed; `Corrupt` when the stored object does not match its pointer (it was
/// not sent whole; waiting does not fix it).
pub enum UploadError {
    Corrupt(String),
    Failed(String),
}

impl Client {
    pub fn new(
        endpoint: Endpoint,
        ca_file: Option<&std::path::Path>,
        proxy: &str,
        activity_timeout: Duration,
    ) -> Result<Client, String> {
        Ok(Client {
            agent: agent(ca_file, proxy, activity_timeout).map_err(|e| format!("lfs: {e}"))?,
            endpoint,
        })
    }

    /// The request with `headers`; our Basic credentials are added only when none of the headers
    /// authorizes and the URL is on the mirror's own scheme/host/port.
    fn request(&self, method: &str, href: &str, headers: &[(String, String)]) -> ureq::Request {
        let mut req = self.agent.request(method, href);
        let mut authorized = false;
        for (k, v) in headers {
            authorized |= k.eq_ignore_ascii_case("authorization");
            req = req.set(k, v);
        }
        if !authorized {
            if let (Some(auth), Some(pinned)) =
                (&self.endpoint.authorization, &self.endpoint.pinned)
            {
                if pinned.same(href) {
                    req = req.set("Authorization", auth);
                }
            }
        }
        req
    }

    /// One batch request (`upload`, `basic` transfer) for up to BATCH_MAX objects.
    pub fn batch(&self, objects: &[(String, u64)]) -> Result<Vec<(String, u64, Need)>, String> {
        let href = format!("{}/objects/batch", self.endpoint.href.trim_end_matches('/'));
        let body = json!({
            "operation": "upload",
            "transfers": ["basic"],
            "objects": objects.iter().map(|(oid, size)| json!({"oid": oid, "size": size})).collect::<Vec<_>>(),
            "hash_algo": "sha256",
        });
        let mut headers = self.endpoint.headers.clone();
        headers.push(("Accept".into(), LFS_JSON.into()));
        headers.push(("Content-Type".into(), LFS_JSON.into()));
        let resp = self
            .request("POST", &href, &headers)
            .send_string(&body.to_string())
            .map_err(|e| {
                let (code, msg) = describe(e);
                let hint = match code {
                    Some(401) | Some(403) => {
                        " (the mirror's credentials were refused for LFS: check its password/token and that it may write LFS objects)"
                    }
                    Some(404) => " (no LFS API there: is LFS enabled on the mirror?)",
                    Some(300..=399) => " (a redirect: give the final URL as the mirror's url)",
                    _ => "",
                };
                format!("lfs: batch request to {}: {msg}{hint}", show(&href))
            })?;
        let now = Instant::now();
        let text = resp
            .into_string()
            .map_err(|e| format!("lfs: batch response from {}: {e}", show(&href)))?;
        parse_batch(&text, objects, now).map_err(|e| format!("lfs: {} {e}", show(&href)))
    }

    /// PUTs the file at `path` (of `size` bytes), then asks the server to verify it when it gave
    /// a verify action.
    pub fn upload(
        &self,
        oid: &str,
        size: u64,
        path: &std::path::Path,
        upload: &Action,
        verify: Option<&Action>,
        sent: &Arc<AtomicU64>,
    ) -> Result<(), UploadError> {
        let file = std::fs::File::open(path).map_err(|e| {
            UploadError::Failed(format!(
                "lfs: reading object {oid} at {}: {e}",
                path.display()
            ))
        })?;
        // Checked whole before any byte goes out: a server that stores what a cut-short request
        // brought (giftless does) would otherwise keep a truncated object under this oid, and
        // answer every later batch that it has it. Checked again while sending (the file may
        // change in between). Streamed: memory stays bounded.
        let mut pre = HashCheck::new(&file, oid, size);
        let corrupt = pre.corrupt.clone();
        let whole = std::io::copy(&mut pre, &mut std::io::sink());
        if corrupt.load(Ordering::Relaxed) || (size == 0 && oid != EMPTY_SHA256) {
            let why = whole.err().map_or_else(
                || "size 0 but the oid is not that of empty content".to_string(),
                |e| e.to_string(),
            );
            return Err(UploadError::Corrupt(format!(
                "lfs: object {oid} ({size} bytes) at {} does not match its pointer, not sent: {why}",
                path.display()
            )));
        }
        whole.map_err(|e| {
            UploadError::Failed(format!(
                "lfs: reading object {oid} at {}: {e}",
                path.display()
            ))
        })?;
        let mut file = file;
        std::io::Seek::rewind(&mut file).map_err(|e| {
            UploadError::Failed(format!(
                "lfs: reading object {oid} at {}: {e}",
                path.display()
            ))
        })?;
        let checked = HashCheck::new(file, oid, size);
        let corrupt = checked.corrupt.clone();
        let mut headers = upload.headers.clone();
        headers.push(("Content-Type".into(), "application/octet-stream".into()));
        headers.push(("Content-Length".into(), size.to_string()));
        let body = Counting {
            inner: checked,
            sent: sent.clone(),
        };
        let result = self.request("PUT", &upload.href, &headers).send(body);
        if corrupt.load(Ordering::Relaxed) {
            let why = match result {
                Err(ureq::Error::Transport(t)) => std::error::Error::source(&t)
                    .map(|e| e.to_string())
                    .unwrap_or_else(|| "it differs".into()),
                _ => "it differs".into(),
            };
            return Err(UploadError::Corrupt(format!(
                "lfs: object {oid} ({size} bytes) at {} does not match its pointer, not sent: {why}",
                path.display()
            )));
        }
        result.map_err(|e| {
            UploadError::Failed(format!(
                "lfs: upload of {oid} ({size} bytes) to {} failed: {}",
                show(&upload.href),
                describe(e).1
            ))
        })?;
        if let Some(v) = verify {
            let mut headers = v.headers.clone();
            headers.push(("Accept".into(), LFS_JSON.into()));
            headers.push(("Content-Type".into(), LFS_JSON.into()));
            self.request("POST", &v.href, &headers)
                .send_string(&json!({"oid": oid, "size": size}).to_string())
                .map_err(|e| {
                    UploadError::Failed(format!(
                        "lfs: the mirror did not verify {oid} ({size} bytes) at {}: {}",
                        show(&v.href),
                        describe(e).1
                    ))
                })?;
        }
        Ok(())
    }
}

/// sha256 of no bytes.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_answer_only_yields_the_objects_asked_about() {
        let oid = "4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393";
        let asked = vec![(oid.to_string(), 12)];
        let put = |o: &str, size: u64| {
            format!(
                r#"{{"oid":"{o}","size":{size},"actions":{{"upload":{{"href":"https://h/x"}}}}}}"#
            )
        };
        let text = format!(
            r#"{{"objects":[{},{},{},{},{}]}}"#,
            put("/etc/shadow", 12),
            put("../../../../pushmirror/secret", 12),
            put("a", 1),
            put(oid, 13),
            put(oid, 12)
        );
        let got = parse_batch(&text, &asked, Instant::now()).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].0.as_str(), got[0].1), (oid, 12));
        assert!(matches!(got[0].2, Need::Upload { .. }));
        for garbage in [
            "<html>502 Bad Gateway</html>",
            "",
            "{\"objects\": 5}",
            "[]",
            "{}",
        ] {
            let e = parse_batch(garbage, &asked, Instant::now()).unwrap_err();
            assert!(!e.contains('\n'), "{e}");
        }
        let without = format!(r#"{{"objects":[{}]}}"#, put(oid, 13));
        let e = parse_batch(&without, &asked, Instant::now()).unwrap_err();
        assert!(e.contains(oid) && e.contains("left"), "{e}");
        let has = format!(r#"{{"objects":[{{"oid":"{oid}","size":12}}]}}"#);
        let got = parse_batch(&has, &asked, Instant::now()).unwrap();
        assert!(matches!(got[0].2, Need::Nothing));
    }

    #[test]
    fn rfc3339_instants() {
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339_ms("2026-11-25T09:22:31.123Z"),
            Some(1_795_598_551_123)
        );
        assert_eq!(
            parse_rfc3339_ms("2026-11-25T10:22:31.123+01:00"),
            Some(1_795_598_551_123)
        );
        assert_eq!(parse_rfc3339_ms("yesterday"), None);
    }

    #[test]
    fn git_proxy_values_are_accepted_and_a_bad_one_is_named_masked() {
        let endpoint = || Endpoint {
            href: "https://git.example.com/a.git/info/lfs".into(),
            headers: Vec::new(),
            authorization: None,
            pinned: None,
        };
        for p in [
            "http://proxy.example.com:3128",
            "http://user:pr0xy@127.0.0.1:3128",
            "127.0.0.1:3128",
        ] {
            assert!(
                Client::new(endpoint(), None, p, Duration::from_secs(5)).is_ok(),
                "{p}"
            );
        }
        let e = Client::new(
            endpoint(),
            None,
            "ftp://user:pr0xy@proxy:21",
            Duration::from_secs(5),
        )
        .err()
        .expect("an ftp:// proxy is refused");
        assert!(e.contains("http.proxy") && !e.contains("pr0xy"), "{e}");
    }

    #[test]
    fn credentials_stay_on_the_mirrors_origin() {
        let a = origin_of("https://git.example.com/a.git/info/lfs").unwrap();
        assert!(a.same("https://GIT.example.com:443/x"));
        assert!(!a.same("http://git.example.com/x"));
        assert!(!a.same("https://git.example.com:8443/x"));
        assert!(!a.same("https://s3.example.com/x"));
        assert_eq!(
            show("https://u:p@h.example/o/1?X-Amz-Signature=abc#f"),
            "https://h.example/o/1"
        );
    }
}
