//! The LFS batch API client (https://github.com/git-lfs/git-lfs/blob/main/docs/api/batch.md),
//! in-process with ureq + rustls: no child process, so no secret in argv, and the binary stays
//! static. Objects are streamed from disk; every socket read and write has the activity timeout,
//! so a stalled transfer is cut while a slow but moving one of any size goes through. That holds
//! on a kept-alive connection too: ureq 2 clears a socket's timeouts when it puts the connection
//! back in its pool, so HTTPS connections go through our own TLS stream ([`TimedTls`]), which
//! arms both timeouts before every read and write, and plain-HTTP requests get a fresh
//! connection each (ureq sets the timeouts on a new socket).

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const LFS_JSON: &str = "application/vnd.git-lfs+json";
/// Objects per batch request (GitHub and GitLab cap a batch at 100).
pub const BATCH_MAX: usize = 100;
/// The most of an error answer's body read, in bytes.
const ERROR_BODY_MAX: u64 = 64 << 10;
/// The largest batch answer read, in bytes.
const BATCH_ANSWER_MAX: u64 = 2 << 20;

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

/// A failed LFS step: one line for the sync's error, and how long the server asked us to wait
/// before trying again (`Retry-After` on a 429 or 503), which the flusher takes instead of its
/// backoff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub msg: String,
    pub retry_after: Option<Duration>,
}

impl From<String> for Failure {
    fn from(msg: String) -> Failure {
        Failure {
            msg,
            retry_after: None,
        }
    }
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
    /// HTTPS, kept-alive connections through [`TimedTls`].
    agent: ureq::Agent,
    /// Plain HTTP (and HTTPS when no CA bundle could be loaded for [`TimedTls`]): a fresh
    /// connection per request, so ureq's timeouts are set on its socket.
    fresh: ureq::Agent,
    pub endpoint: Endpoint,
    /// The mirror's `timeout`: the activity timeout of every request, and the whole-request
    /// bound of the small ones (batch, verify), so a server that trickles cannot hold them.
    timeout: Duration,
}

/// rustls for ureq, with the activity timeout armed on the socket before every read and write:
/// ureq clears a pooled socket's timeouts (and does not set them again when it reuses it), so
/// without this a request on a kept-alive connection that the server never answers would wait
/// for ever.
struct TimedTls {
    config: Arc<rustls::ClientConfig>,
    timeout: Duration,
}

struct TimedStream {
    tls: rustls::StreamOwned<rustls::ClientConnection, Box<dyn ureq::ReadWrite>>,
    timeout: Duration,
}

impl TimedStream {
    /// Sets the activity timeout on the socket where it has none (ureq cleared it) or a longer
    /// one; a shorter one is what is left of a whole-request deadline (`Request::timeout`), and
    /// stays.
    fn arm(&self) -> std::io::Result<()> {
        if let Some(by) = ANSWER_BY.get() {
            // An upload's body has gone: its answer has what is left of the timeout.
            let left = by.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "no whole answer within the timeout",
                ));
            }
            if let Some(s) = self.tls.get_ref().socket() {
                s.set_read_timeout(Some(left.min(self.timeout)))?;
                s.set_write_timeout(Some(left.min(self.timeout)))?;
            }
            return Ok(());
        }
        if let Some(s) = self.tls.get_ref().socket() {
            let keep = |t: Option<Duration>| t.is_some_and(|t| t <= self.timeout);
            if !keep(s.read_timeout()?) {
                s.set_read_timeout(Some(self.timeout))?;
            }
            if !keep(s.write_timeout()?) {
                s.set_write_timeout(Some(self.timeout))?;
            }
        }
        Ok(())
    }
}

impl std::fmt::Debug for TimedStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TimedStream")
    }
}

impl Read for TimedStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.arm()?;
        match self.tls.read(buf) {
            // A peer's close_notify is the end of the stream (as ureq's own rustls stream).
            Err(e)
                if e.kind() == std::io::ErrorKind::ConnectionAborted
                    && e.to_string().contains("CloseNotify") =>
            {
                Ok(0)
            }
            r => r,
        }
    }
}

impl std::io::Write for TimedStream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.arm()?;
        self.tls.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.arm()?;
        self.tls.flush()
    }
}

impl ureq::ReadWrite for TimedStream {
    fn socket(&self) -> Option<&std::net::TcpStream> {
        self.tls.get_ref().socket()
    }
}

impl ureq::TlsConnector for TimedTls {
    fn connect(
        &self,
        dns_name: &str,
        mut io: Box<dyn ureq::ReadWrite>,
    ) -> Result<Box<dyn ureq::ReadWrite>, ureq::Error> {
        let io_error =
            |e: String| ureq::Error::from(std::io::Error::new(std::io::ErrorKind::InvalidInput, e));
        // rustls takes an IPv6 address without its brackets.
        let name = dns_name
            .strip_prefix('[')
            .and_then(|n| n.strip_suffix(']'))
            .unwrap_or(dns_name);
        let sni = rustls_pki_types::ServerName::try_from(name)
            .map_err(|e| io_error(format!("TLS server name: {e}")))?
            .to_owned();
        let mut conn = rustls::ClientConnection::new(self.config.clone(), sni)
            .map_err(|e| io_error(format!("TLS: {e}")))?;
        // The handshake ends within the timeout as a whole: a server trickling its handshake
        // a byte at a time (each read within the activity timeout) must not hold the request.
        let deadline = Instant::now() + self.timeout;
        while conn.is_handshaking() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the TLS handshake did not end within the timeout",
                )
                .into());
            }
            if let Some(s) = io.socket() {
                s.set_read_timeout(Some(left.min(self.timeout)))?;
                s.set_write_timeout(Some(left.min(self.timeout)))?;
            }
            if conn.wants_write() {
                conn.write_tls(&mut io)?;
            } else if conn.read_tls(&mut io)? == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the server closed the connection during the TLS handshake",
                )
                .into());
            } else {
                conn.process_new_packets().map_err(|e| {
                    ureq::Error::from(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("TLS: {e}"),
                    ))
                })?;
            }
        }
        while conn.wants_write() {
            conn.write_tls(&mut io)?;
        }
        if let Some(s) = io.socket() {
            s.set_read_timeout(Some(self.timeout))?;
            s.set_write_timeout(Some(self.timeout))?;
        }
        Ok(Box::new(TimedStream {
            tls: rustls::StreamOwned::new(conn, io),
            timeout: self.timeout,
        }))
    }
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

/// A request that did not get a 2xx answer.
struct Described {
    code: Option<u16>,
    /// One line: never the URL's query or userinfo, never a header value, no control character.
    msg: String,
    /// `Retry-After` of a 429 or 503, if the server gave one we can read.
    retry_after: Option<Duration>,
}

/// The answer to a request when it is a 2xx; anything else (an error status, a redirect, which
/// is never followed, a transport failure) is described. A 3xx counts as a failure: an upload
/// or verify answered with a redirect has not stored the object.
fn answered(result: Result<ureq::Response, ureq::Error>) -> Result<ureq::Response, Described> {
    match result {
        Ok(resp) if (200..300).contains(&resp.status()) => Ok(resp),
        Ok(resp) => Err(status_failure(resp.status(), resp)),
        Err(ureq::Error::Status(code, resp)) => Err(status_failure(code, resp)),
        Err(ureq::Error::Transport(t)) => Err(transport_failure(t)),
    }
}

fn status_failure(code: u16, resp: ureq::Response) -> Described {
    let retry_after = match code {
        429 | 503 => resp
            .header("Retry-After")
            .and_then(|v| parse_retry_after(v, crate::time::now_ms())),
        _ => None,
    };
    // Only the start of an error body is read: it is shown cut to 200 characters anyway, and
    // a JSON tree of megabytes takes many times that in memory.
    let mut raw = Vec::new();
    let _ = resp
        .into_reader()
        .take(ERROR_BODY_MAX)
        .read_to_end(&mut raw);
    let body = String::from_utf8_lossy(&raw);
    let what = if (300..400).contains(&code) {
        " (a redirect, not followed)"
    } else {
        ""
    };
    Described {
        code: Some(code),
        msg: format!(
            "HTTP {code}{what}{}{}",
            server_message(&body),
            retry_after.map_or(String::new(), |d| format!(
                " (asked to retry after {})",
                crate::time::human(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            ))
        ),
        retry_after,
    }
}

fn transport_failure(t: ureq::Transport) -> Described {
    let mut s = t.kind().to_string();
    // ureq's message for a header it could not parse or send quotes the whole header line (an
    // Authorization value with it): never shown.
    if t.kind() == ureq::ErrorKind::BadHeader {
        s.push_str(": a header that is not valid HTTP (not shown)");
    } else if let Some(m) = t.message() {
        s.push_str(": ");
        s.push_str(m);
    }
    if let Some(src) = std::error::Error::source(&t) {
        // A socket timeout shows as EAGAIN (a write) or a timed-out read.
        let stalled = src.downcast_ref::<std::io::Error>().is_some_and(|e| {
            matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            )
        });
        let src = src.to_string();
        if stalled || src.contains("timed out") || src.contains("WouldBlock") {
            s.push_str(
                ": timed out (no data moved within the activity timeout, or no whole answer within the timeout)",
            );
        } else {
            s.push_str(": ");
            s.push_str(&src);
        }
    }
    Described {
        code: None,
        msg: crate::url::escape_control(&s.split_whitespace().collect::<Vec<_>>().join(" ")),
        retry_after: None,
    }
}

/// The HTTP agent of a sync's other in-process requests (the forge APIs): every socket
/// operation bounded by `activity_timeout` and the whole request by twice that, a fresh
/// connection for each request (ureq 2 clears the socket timeouts of a connection it keeps for
/// reuse), no redirect followed (it could carry our credentials elsewhere; the configured URL
/// must be the final one), git's proxy for the mirror, and `ca_file` (else the system's CAs) as
/// git trusts them.
pub fn agent(
    ca_file: Option<&std::path::Path>,
    proxy: &str,
    activity_timeout: Duration,
) -> Result<ureq::Agent, String> {
    let mut b = ureq::AgentBuilder::new()
        .timeout_connect(activity_timeout)
        .timeout_read(activity_timeout)
        .timeout_write(activity_timeout)
        .timeout(activity_timeout.saturating_mul(2))
        .max_idle_connections(0)
        .max_idle_connections_per_host(0)
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

/// One line for a failed request: never the URL's query or userinfo, never a header value, no
/// control character.
pub fn describe(e: ureq::Error) -> (Option<u16>, String) {
    let d = match e {
        ureq::Error::Status(code, resp) => status_failure(code, resp),
        ureq::Error::Transport(t) => transport_failure(t),
    };
    (d.code, d.msg)
}

/// Reads the body of a 2xx answer to its end (at most 1 MiB), within `timeout` from now: an
/// answer that never finishes (a server trickling a byte at a time) fails the request instead of
/// holding it. A connection whose answer was read whole can be used again.
fn drain(resp: ureq::Response, timeout: Duration) -> Result<(), String> {
    let start = Instant::now();
    let mut body = resp.into_reader().take(1 << 20);
    let mut buf = [0u8; 8192];
    loop {
        match body.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(_) if start.elapsed() <= timeout => {}
            Ok(_) => return Err("its answer did not end within the timeout".into()),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err("its answer did not end within the timeout".into())
            }
            Err(e) => {
                return Err(format!(
                    "its answer broke off: {}",
                    crate::url::escape_control(&e.to_string())
                ))
            }
        }
    }
}

/// `Retry-After` (RFC 9110): delay-seconds, or an HTTP-date (`Sun, 06 Nov 1994 08:49:37 GMT`)
/// taken relative to `now_ms`. None for anything else.
pub fn parse_retry_after(v: &str, now_ms: u64) -> Option<Duration> {
    let v = v.trim();
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        return Some(Duration::from_secs(v.parse::<u64>().unwrap_or(u64::MAX)));
    }
    // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT".
    let p: Vec<&str> = v.split_whitespace().collect();
    let [_, day, mon, year, time, "GMT"] = p.as_slice() else {
        return None;
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let mon = MONTHS.iter().position(|m| m == mon)? + 1;
    if day.len() != 2 || year.len() != 4 || time.len() != 8 {
        return None;
    }
    let at = parse_rfc3339_ms(&format!("{year}-{mon:02}-{day}T{time}Z"))?;
    Some(Duration::from_millis(at.saturating_sub(now_ms)))
}

/// `: <message>` from an LFS error body (`{"message": ...}`), or the start of a plain one; one
/// line, control characters escaped.
pub(crate) fn server_message(body: &str) -> String {
    let msg = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| body.chars().take(200).collect());
    let msg = msg.split_whitespace().collect::<Vec<_>>().join(" ");
    let msg: String = msg.chars().take(200).collect();
    if msg.is_empty() {
        String::new()
    } else {
        format!(" (server said: {})", crate::url::escape_control(&msg))
    }
}

/// The headers of an action: an object of strings that are valid HTTP (a token name, a value
/// without control characters but tab). Err says what is wrong without the value.
fn header_list(v: &Value) -> Result<Vec<(String, String)>, String> {
    let o = match v {
        Value::Null => return Ok(Vec::new()),
        Value::Object(o) => o,
        _ => return Err("its header is not an object".into()),
    };
    let token = |k: &str| {
        !k.is_empty()
            && k.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    };
    let mut out = Vec::new();
    for (k, v) in o {
        let name = if token(k) {
            k.clone()
        } else {
            "a header name".to_string()
        };
        let v = v
            .as_str()
            .ok_or_else(|| format!("its header {name} is not a string"))?;
        if !token(k) || v.chars().any(|c| c.is_control() && c != '\t') {
            return Err(format!(
                "its header {name} is not valid HTTP (its value is not shown)"
            ));
        }
        // How the request is framed and where it goes are ours (as git-lfs, whose HTTP client
        // ignores these in a header map): an action's `Content-Length` would go out next to
        // ours and let a server store a cut-short object, a `Host` would send our request
        // (credentials and all) to another virtual host, `Transfer-Encoding` would re-frame it.
        if is_framing(k) {
            continue;
        }
        out.push((k.clone(), v.to_string()));
    }
    Ok(out)
}

/// Headers an action may not set: the request's framing and destination are ours.
const FRAMING: [&str; 9] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "upgrade",
    "expect",
];

/// Whether a server may not set header `name` (see [`FRAMING`]; `Proxy-*` too).
fn is_framing(name: &str) -> bool {
    FRAMING.iter().any(|f| name.eq_ignore_ascii_case(f))
        || name
            .get(..6)
            .is_some_and(|p| p.eq_ignore_ascii_case("proxy-"))
}

/// Sets `name` in `headers`, replacing any of that name whatever its case (ureq replaces only
/// the same spelling, and would send both).
fn set_header(headers: &mut Vec<(String, String)>, name: &str, value: &str) {
    headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
    headers.push((name.into(), value.into()));
}

/// An action of a batch answer: None when there is none (null or absent), Err when there is
/// one we cannot follow (an href that is not a string, headers that are not valid HTTP): such
/// an object is never taken as "the server has it".
fn action(v: &Value, now: Instant) -> Result<Option<Action>, String> {
    if v.is_null() {
        return Ok(None);
    }
    if !v.is_object() {
        return Err("it is not an object".into());
    }
    let href = v["href"]
        .as_str()
        .filter(|h| !h.is_empty())
        .ok_or("its href is not a URL string")?
        .to_string();
    let headers = header_list(&v["header"])?;
    // As the batch API says and git-lfs does: `expires_in` is preferred over `expires_at`, 0
    // is none, a negative one has expired already (the action is asked for again). A time too
    // far ahead to represent is no expiry (an absurd `expires_in` must not panic).
    let in_secs = v["expires_in"].as_i64().filter(|s| *s != 0).map(|s| {
        if s < 0 {
            Some(now)
        } else {
            now.checked_add(Duration::from_secs(s as u64))
        }
    });
    let at = v["expires_at"]
        .as_str()
        .and_then(parse_rfc3339_ms)
        .and_then(|ms| {
            let left = ms.saturating_sub(crate::time::now_ms());
            now.checked_add(Duration::from_millis(left))
        });
    Ok(Some(Action {
        href,
        headers,
        expires: in_secs.unwrap_or(at),
    }))
}

/// Milliseconds since the epoch of `2026-11-30T22:30:00Z` / `...00.123+01:00`.
pub fn parse_rfc3339_ms(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    // ASCII only: the offset is sliced by bytes (a server's `+1€x` must not panic).
    if !s.is_ascii()
        || b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
    {
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
            let t: String = t.chars().take(40).collect();
            return Err(format!(
                "chose transfer '{}'; only 'basic' is supported",
                crate::url::escape_control(&t)
            ));
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
            let msg = o["error"]["message"].as_str().unwrap_or("");
            let msg: String = msg.split_whitespace().collect::<Vec<_>>().join(" ");
            Need::Refused(crate::url::escape_control(&format!(
                "{} {}",
                o["error"]["code"].as_i64().unwrap_or(0),
                msg.chars().take(200).collect::<String>()
            )))
        } else {
            let malformed = |what: &str, why: String| {
                format!("gave a malformed {what} action for {oid} ({size} bytes): {why}")
            };
            let actions = &o["actions"];
            if !actions.is_null() && !actions.is_object() {
                return Err(format!(
                    "gave malformed actions for {oid} ({size} bytes): not an object"
                ));
            }
            match action(&actions["upload"], now).map_err(|e| malformed("upload", e))? {
                None => Need::Nothing,
                Some(upload) => Need::Upload {
                    upload,
                    verify: action(&actions["verify"], now).map_err(|e| malformed("verify", e))?,
                },
            }
        };
        // One answer per object: a server repeating an object (thousands of times, within the
        // size bound) must not make us upload it as often. Where the answers differ, the one
        // that asks for something (an upload, a refusal) stands over "the server has it".
        match out.iter_mut().find(|(o, z, _)| o == oid && *z == size) {
            Some(seen) if matches!(seen.2, Need::Nothing) => seen.2 = need,
            Some(_) => {}
            None => out.push((oid.to_string(), size, need)),
        }
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

thread_local! {
    /// When the answer to this thread's upload must have come whole: an upload has no
    /// whole-request bound (a big object takes its time, moving), but once its body has gone
    /// the answer has the mirror's timeout, so a server trickling the answer's head a byte at
    /// a time cannot hold it (ureq reads each request on the thread that sends it).
    static ANSWER_BY: std::cell::Cell<Option<Instant>> = const { std::cell::Cell::new(None) };
}

/// Clears [`ANSWER_BY`] when an upload starts and when it is over, however it ends.
struct AnswerBy;

impl AnswerBy {
    fn start() -> AnswerBy {
        ANSWER_BY.set(None);
        AnswerBy
    }
}

impl Drop for AnswerBy {
    fn drop(&mut self) {
        ANSWER_BY.set(None);
    }
}

/// Counts bytes as they are read from disk, for progress and the sync's totals; at the end of
/// the body, starts the answer's deadline ([`ANSWER_BY`]).
struct Counting<R> {
    inner: R,
    sent: Arc<AtomicU64>,
    answer_within: Duration,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sent.fetch_add(n as u64, Ordering::Relaxed);
        if n == 0 && !buf.is_empty() && ANSWER_BY.get().is_none() {
            ANSWER_BY.set(Instant::now().checked_add(self.answer_within));
        }
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
    Failed(Failure),
}

impl From<String> for UploadError {
    fn from(msg: String) -> UploadError {
        UploadError::Failed(msg.into())
    }
}

impl Client {
    pub fn new(
        endpoint: Endpoint,
        ca_file: Option<&std::path::Path>,
        proxy: &str,
        activity_timeout: Duration,
    ) -> Result<Client, String> {
        let proxy = if proxy.is_empty() {
            None
        } else {
            Some(ureq::Proxy::new(proxy).map_err(|_| {
                format!(
                    "lfs: cannot use the proxy {} (http.proxy) for LFS requests",
                    crate::url::mask(proxy)
                )
            })?)
        };
        let builder = || {
            let b = ureq::AgentBuilder::new()
                .timeout_connect(activity_timeout)
                .timeout_read(activity_timeout)
                .timeout_write(activity_timeout)
                // A redirect could carry our credentials elsewhere; the mirror URL must be the
                // final one.
                .redirects(0)
                .user_agent(concat!("git-pushmirror/", env!("CARGO_PKG_VERSION")));
            match &proxy {
                Some(p) => b.proxy(p.clone()),
                None => b,
            }
        };
        let fresh = || {
            builder()
                .max_idle_connections(0)
                .max_idle_connections_per_host(0)
        };
        let (agent, fresh) = match tls_config(ca_file)? {
            Some(tls) => (
                builder().tls_connector(Arc::new(TimedTls {
                    config: tls.clone(),
                    timeout: activity_timeout,
                })),
                fresh().tls_config(tls),
            ),
            // ureq's built-in roots: no connection is kept for reuse.
            None => (fresh(), fresh()),
        };
        Ok(Client {
            agent: agent.build(),
            fresh: fresh.build(),
            endpoint,
            timeout: activity_timeout,
        })
    }

    /// The request with `headers`; our Basic credentials are added only when none of the headers
    /// authorizes and the URL is on the mirror's own scheme/host/port.
    fn request(&self, method: &str, href: &str, headers: &[(String, String)]) -> ureq::Request {
        let https = href
            .get(..8)
            .is_some_and(|p| p.eq_ignore_ascii_case("https://"));
        let agent = if https { &self.agent } else { &self.fresh };
        let mut req = agent.request(method, href);
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
    pub fn batch(&self, objects: &[(String, u64)]) -> Result<Vec<(String, u64, Need)>, Failure> {
        let href = format!("{}/objects/batch", self.endpoint.href.trim_end_matches('/'));
        let body = json!({
            "operation": "upload",
            "transfers": ["basic"],
            "objects": objects.iter().map(|(oid, size)| json!({"oid": oid, "size": size})).collect::<Vec<_>>(),
            "hash_algo": "sha256",
        });
        let mut headers = self.endpoint.headers.clone();
        headers.retain(|(k, _)| !is_framing(k));
        set_header(&mut headers, "Accept", LFS_JSON);
        set_header(&mut headers, "Content-Type", LFS_JSON);
        let resp = answered(
            self.request("POST", &href, &headers)
                .timeout(self.timeout)
                .send_string(&body.to_string()),
        )
        .map_err(|d| {
            let not_sent = self.endpoint.authorization.is_some()
                && !self.endpoint.pinned.as_ref().is_some_and(|p| p.same(&href));
            let hint = match d.code {
                Some(401) | Some(403) if not_sent => {
                    " (the mirror's credentials are not sent to this endpoint: it is not on the mirror's own scheme, host and port; set lfs_auth: true on the mirror to send them there)"
                }
                Some(401) | Some(403) => {
                    " (the mirror's credentials were refused for LFS: check its password/token and that it may write LFS objects)"
                }
                Some(404) => " (no LFS API there: is LFS enabled on the mirror?)",
                Some(300..=399) => " (give the final URL as the mirror's url or lfs_url)",
                _ => "",
            };
            Failure {
                msg: format!("lfs: batch request to {}: {}{hint}", show(&href), d.msg),
                retry_after: d.retry_after,
            }
        })?;
        let now = Instant::now();
        // Bounded: a batch answer for BATCH_MAX objects is a few hundred KiB, and its JSON tree
        // takes up to 16 times its size in memory (ureq's own cap is 10 MiB).
        let mut raw = Vec::new();
        resp.into_reader()
            .take(BATCH_ANSWER_MAX + 1)
            .read_to_end(&mut raw)
            .map_err(|e| {
                format!(
                    "lfs: batch response from {}: {}",
                    show(&href),
                    crate::url::escape_control(&e.to_string())
                )
            })?;
        if raw.len() as u64 > BATCH_ANSWER_MAX {
            return Err(Failure::from(format!(
                "lfs: batch response from {} is over {} MiB; not read",
                show(&href),
                BATCH_ANSWER_MAX >> 20
            )));
        }
        let text = String::from_utf8_lossy(&raw);
        Ok(parse_batch(&text, objects, now).map_err(|e| format!("lfs: {} {e}", show(&href)))?)
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
            UploadError::from(format!(
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
            UploadError::from(format!(
                "lfs: reading object {oid} at {}: {e}",
                path.display()
            ))
        })?;
        let mut file = file;
        std::io::Seek::rewind(&mut file).map_err(|e| {
            UploadError::from(format!(
                "lfs: reading object {oid} at {}: {e}",
                path.display()
            ))
        })?;
        let checked = HashCheck::new(file, oid, size);
        let corrupt = checked.corrupt.clone();
        let mut headers = upload.headers.clone();
        // The action's own Content-Type stays (as git-lfs: a presigned URL may be signed for it).
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            headers.push(("Content-Type".into(), "application/octet-stream".into()));
        }
        set_header(&mut headers, "Content-Length", &size.to_string());
        let body = Counting {
            inner: checked,
            sent: sent.clone(),
            answer_within: self.timeout,
        };
        let _answer_by = AnswerBy::start();
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
        let failed = |msg: String, retry_after| {
            UploadError::Failed(Failure {
                msg: format!(
                    "lfs: upload of {oid} ({size} bytes) to {} failed: {msg}",
                    show(&upload.href),
                ),
                retry_after,
            })
        };
        let resp = answered(result).map_err(|d| failed(d.msg, d.retry_after))?;
        drain(resp, self.timeout).map_err(|e| failed(e, None))?;
        drop(_answer_by);
        if let Some(v) = verify {
            let mut headers = v.headers.clone();
            set_header(&mut headers, "Accept", LFS_JSON);
            set_header(&mut headers, "Content-Type", LFS_JSON);
            let failed = |msg: String, retry_after| {
                UploadError::Failed(Failure {
                    msg: format!(
                        "lfs: the mirror did not verify {oid} ({size} bytes) at {}: {msg}",
                        show(&v.href),
                    ),
                    retry_after,
                })
            };
            let resp = answered(
                self.request("POST", &v.href, &headers)
                    .timeout(self.timeout)
                    .send_string(&json!({"oid": oid, "size": size}).to_string()),
            )
            .map_err(|d| failed(d.msg, d.retry_after))?;
            drain(resp, self.timeout).map_err(|e| failed(e, None))?;
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
        // An object repeated is answered once; "has it" does not win over an upload.
        let mut many: Vec<String> = vec![put(oid, 12); 1000];
        many.insert(0, format!(r#"{{"oid":"{oid}","size":12}}"#));
        let text = format!(r#"{{"objects":[{}]}}"#, many.join(","));
        let got = parse_batch(&text, &asked, Instant::now()).unwrap();
        assert_eq!(got.len(), 1);
        assert!(matches!(got[0].2, Need::Upload { .. }));
        let has = format!(r#"{{"objects":[{{"oid":"{oid}","size":12}}]}}"#);
        let got = parse_batch(&has, &asked, Instant::now()).unwrap();
        assert!(matches!(got[0].2, Need::Nothing));
    }

    #[test]
    fn a_malformed_action_fails_the_batch_naming_the_object() {
        let oid = "4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393";
        let asked = vec![(oid.to_string(), 12)];
        let with = |actions: &str| {
            format!(r#"{{"objects":[{{"oid":"{oid}","size":12,"actions":{actions}}}]}}"#)
        };
        for (actions, says) in [
            (r#"{"upload":{"href":5}}"#, "upload"),
            (r#"{"upload":{"href":["https://h/x"]}}"#, "upload"),
            (r#"{"upload":{"href":""}}"#, "upload"),
            (r#"{"upload":"https://h/x"}"#, "upload"),
            (
                r#"{"upload":{"href":"https://h/x"},"verify":{"href":null,"x":1}}"#,
                "verify",
            ),
            (
                r#"{"upload":{"href":"https://h/x","header":{"Authorization":"Bearer s3cr3t\r\nX-Evil: 1"}}}"#,
                "Authorization",
            ),
            (
                r#"{"upload":{"href":"https://h/x","header":{"Bad Name":"s3cr3t"}}}"#,
                "header",
            ),
            (
                r#"{"upload":{"href":"https://h/x","header":{"A":7}}}"#,
                "header",
            ),
            ("[1]", "actions"),
        ] {
            let e = parse_batch(&with(actions), &asked, Instant::now()).unwrap_err();
            assert!(
                e.contains(oid) && e.contains(says) && !e.contains("s3cr3t") && !e.contains('\n'),
                "{actions}: {e}"
            );
        }
        // No upload action (absent or null), or only a download one: the server has it.
        for actions in [
            "{}",
            r#"{"upload":null}"#,
            r#"{"download":{"href":"https://h/x"}}"#,
        ] {
            let got = parse_batch(&with(actions), &asked, Instant::now()).unwrap();
            assert!(matches!(got[0].2, Need::Nothing), "{actions}");
        }
    }

    #[test]
    fn server_text_is_one_line_without_control_characters() {
        let m = server_message(r#"{"message":"bad\u001b[2J\u0007\r\nthing"}"#);
        assert_eq!(m, " (server said: bad\\x1b[2J\\x07 thing)");
        let oid = "4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393";
        let text = format!(
            r#"{{"objects":[{{"oid":"{oid}","size":1,"error":{{"code":422,"message":"no\u001b]0;pwned\u0007"}}}}]}}"#
        );
        let got = parse_batch(&text, &[(oid.to_string(), 1)], Instant::now()).unwrap();
        let Need::Refused(why) = &got[0].2 else {
            panic!("{:?}", got[0].2)
        };
        assert!(!why.chars().any(char::is_control), "{why}");
        assert_eq!(why, "422 no\\x1b]0;pwned\\x07");
        assert_eq!(crate::url::escape_control("a\u{9b}b"), "a\\u{9b}b");
        let e = parse_batch(r#"{"transfer":"x\u001b"}"#, &[], Instant::now()).unwrap_err();
        assert!(!e.chars().any(char::is_control), "{e}");
    }

    #[test]
    fn retry_after_in_seconds_or_as_an_http_date() {
        let now = parse_rfc3339_ms("2026-12-04T16:00:00Z").unwrap();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Fri, 04 Dec 2026 16:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        // A date in the past: at once (the flusher's floor applies).
        assert_eq!(
            parse_retry_after("Fri, 04 Dec 2026 15:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        for bad in [
            "",
            "-5",
            "1.5",
            "soon",
            "Fri, 04 Foo 2026 16:00:30 GMT",
            "Fri, 4 Dec 2026 16:00:30 GMT",
        ] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad}");
        }
    }

    #[test]
    fn absurd_times_from_a_server_do_not_panic() {
        // Byte-sliced offsets with a multi-byte character in them.
        for t in [
            "2026-11-30T22:30:00+1\u{20ac}x",
            "2026-11-30T22:30:00+\u{e9}\u{e9}x",
            "2026-11-30T22:30:00.\u{e9}Z",
            "2026-11-30T22:30:00+01:\u{e9}",
        ] {
            assert_eq!(parse_rfc3339_ms(t), None, "{t}");
        }
        let now = Instant::now();
        for v in [
            json!({"href": "https://h/x", "expires_in": i64::MAX}),
            json!({"href": "https://h/x", "expires_in": u64::MAX}),
            json!({"href": "https://h/x", "expires_in": -5}),
            json!({"href": "https://h/x", "expires_at": "9999-12-31T23:59:59Z"}),
            json!({"href": "https://h/x", "expires_at": "2026-11-30T22:30:00+1\u{20ac}x"}),
        ] {
            assert!(action(&v, now).is_ok(), "{v}");
        }
        let past = json!({"href": "https://h/x", "expires_at": "2001-01-01T00:00:00Z"});
        let a = action(&past, now).unwrap().unwrap();
        assert!(a.expires.is_some_and(|e| e <= Instant::now()));
        // expires_in is preferred over expires_at; negative: expired already; 0: none.
        let expires = |v| action(&v, now).unwrap().unwrap().expires;
        assert_eq!(
            expires(json!({"href": "https://h/x", "expires_in": -30})),
            Some(now)
        );
        assert_eq!(
            expires(
                json!({"href": "https://h/x", "expires_in": 60, "expires_at": "2001-01-01T00:00:00Z"})
            ),
            Some(now + Duration::from_secs(60))
        );
        assert_eq!(
            expires(json!({"href": "https://h/x", "expires_in": 0})),
            None
        );
    }

    #[test]
    fn an_action_cannot_set_how_the_request_is_framed_or_where_it_goes() {
        let h = header_list(&json!({
            "Authorization": "Bearer t",
            "content-length": "1",
            "Content-Length": "1",
            "HOST": "evil.example.com",
            "Transfer-Encoding": "chunked",
            "Connection": "close",
            "Expect": "100-continue",
            "Proxy-Authorization": "Basic x",
            "X-Amz-Date": "20261204T000000Z",
            "content-type": "image/png",
        }))
        .unwrap();
        let mut names: Vec<&str> = h.iter().map(|(k, _)| k.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["Authorization", "X-Amz-Date", "content-type"]);
        let mut h = h;
        set_header(&mut h, "Content-Type", LFS_JSON);
        assert_eq!(
            h.iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case("content-type"))
                .map(|(_, v)| v.as_str())
                .collect::<Vec<_>>(),
            [LFS_JSON]
        );
    }

    #[test]
    fn an_absurd_retry_after_is_shown_as_asked() {
        // ~584 million years in seconds: in milliseconds it no longer fits 64 bits.
        let resp: ureq::Response =
            "HTTP/1.1 429 Slow Down\r\nRetry-After: 18446744073709552\r\n\r\n"
                .parse()
                .unwrap();
        let d = status_failure(429, resp);
        assert_eq!(
            d.retry_after,
            Some(Duration::from_secs(18_446_744_073_709_552))
        );
        assert!(d.msg.contains("after 5124095576030h"), "{}", d.msg);
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
