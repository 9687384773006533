//! Mirror URL policy: which URLs git may be handed, how they are shown, and how
//! credentials are taken out of them before git sees them.
//!
//! `gix-url` reads a remote string the way git does (`transport.c`, `connect.c`):
//! `<name>::<address>` runs the helper `git-remote-<name>`; `scheme://` is a URL; a `:` with
//! no `/` before it is scp-like ssh (`host:path`); anything else is a local path. The policy
//! is ours, applied to the parsed parts, so a URL is judged by what git would do with it.
//!
//! Masking, scrubbing and taking credentials out stay textual on purpose: they must hand back
//! the URL as it was written (gix-url re-serializes: lowercased host, added `/`, re-escaped
//! userinfo), an scp-like URL unchanged, and they also work on free text from git's stderr.

/// How git will reach a mirror.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Https,
    Http,
    /// `ssh://` (and git's aliases `git+ssh://`, `ssh+git://`) and scp-like `user@host:path`.
    Ssh,
    Git,
    /// An absolute or relative path, or `file://`.
    Local,
}

/// Why a mirror URL was refused. Messages never quote the URL: it may carry a password.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UrlError {
    #[error("mirror URL refused: it is empty; give an https://, ssh://, git:// URL or a path")]
    Empty,
    #[error("mirror URL refused: ext:: transport runs arbitrary commands")]
    ExtTransport,
    #[error("mirror URL refused: fd:: transport talks to inherited file descriptors; give an https://, ssh:// or git:// URL")]
    FdTransport,
    #[error("mirror URL refused: '{name}::' runs the remote helper git-remote-{name}; give an https://, ssh:// or git:// URL")]
    TransportHelper { name: String },
    #[error("mirror URL refused: it contains a NUL byte")]
    Nul,
    #[error("mirror URL refused: it contains whitespace or a control character (percent-encode a space as %20)")]
    ControlOrWhitespace,
    #[error("mirror URL refused: a percent-encoded control character (%00-%1F, %7F) in its user, host or path")]
    EncodedControl,
    #[error("mirror URL refused: it starts with '-' and would be read as a git option")]
    LeadingDash,
    #[error("mirror URL refused: host starts with '-' and would be read as an ssh option")]
    HostLeadingDash,
    #[error("mirror URL refused: user name starts with '-' and would be read as an ssh option")]
    UserLeadingDash,
    #[error("mirror URL refused: path starts with '-' and would be read as an option")]
    PathLeadingDash,
    #[error("mirror URL refused: unknown scheme '{scheme}://'; use https://, ssh://, git://, file:// or a path (schemes are lowercase)")]
    UnknownScheme { scheme: String },
    #[error("mirror URL refused: http:// sends credentials and code in clear text; use https:// or set allow_insecure_http: true")]
    InsecureHttp,
    #[error("mirror URL refused: no host name; write scheme://host/path or user@host:path")]
    MissingHost,
    #[error("mirror URL refused: '[' in the host is not closed by ']'")]
    UnclosedBracket,
    #[error("mirror URL refused: port must be a number")]
    BadPort,
    #[error("mirror URL refused: a password in a {scheme}:// URL would reach the command line; remove it (use auth: ssh_key for ssh)")]
    PasswordInUrl { scheme: String },
    #[error("mirror URL refused: git cannot read it as a URL; write scheme://host[:port]/path or user@host:path (percent-escapes must decode to UTF-8)")]
    Unparsable,
    #[error("mirror URL refused: file:// must be followed by an absolute path, as in file:///srv/mirror.git")]
    FileUrlHost,
    #[error("mirror URL refused: '{scheme}:' without '//' would be read as an ssh host named {scheme}; write {scheme}://host/path")]
    MissingSlashes { scheme: String },
    #[error("mirror URL refused: a '?' or '#' before the '@' makes its host ambiguous (git takes the host before it, other readers the one after the '@'); in a user name or password write them as %3F and %23")]
    AmbiguousAuthority,
    #[error("mirror URL refused: scp-like URLs cannot carry a password (git would take the user name for the host and show the password as the path, or hand it to ssh on its command line); use ssh://user@host/path with an ssh key")]
    ScpPassword,
}

/// Validates a mirror URL against the policy; returns its scheme. Refuses: empty, ext::, fd::,
/// any other `<transport>::` form, unknown schemes (ftp, rsync...), http without
/// `allow_insecure_http`, a URL/host/user/path starting with '-', control characters or
/// whitespace/newlines, NUL.
///
/// The URL is taken apart by gitoxide's `gix-url`, which reads a remote string the way git does
/// (`<helper>::`, `scheme://`, scp-like `host:path`, local path); the policy is applied to the
/// parts. gix-url's own errors are never shown: they quote the URL, which may carry a password.
pub fn validate(url: &str, allow_insecure_http: bool) -> Result<Scheme, UrlError> {
    if url.is_empty() {
        return Err(UrlError::Empty);
    }
    // The dash and helper checks come before the character checks because the hostile
    // forms usually also contain spaces, and naming the real danger is the better message.
    if url.starts_with('-') {
        return Err(UrlError::LeadingDash);
    }
    let parsed = gix::url::parse(url.as_bytes());
    match parsed.as_ref().map(|u| &u.scheme) {
        Ok(gix::url::Scheme::Ext) => return Err(UrlError::ExtTransport),
        Ok(gix::url::Scheme::Helper(name)) => {
            return Err(match name.to_ascii_lowercase().as_str() {
                "ext" => UrlError::ExtTransport,
                "fd" => UrlError::FdTransport,
                _ => UrlError::TransportHelper { name: name.clone() },
            })
        }
        _ => {}
    }
    if url.contains('\0') {
        return Err(UrlError::Nul);
    }
    if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(UrlError::ControlOrWhitespace);
    }
    if let Some((scheme, rest)) = split_scheme(url) {
        let kind = url_scheme(scheme, allow_insecure_http)?;
        // `https://good.example?@evil.test/x`: git (and WHATWG) end the host at the '?', while
        // a reader that takes the last '@' before the first '/' (older git's credential code,
        // many scripts, our own masking) sees evil.test. An admin pasting it means
        // good.example; a raw '?' or '#' in a password is broken for git anyway.
        let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
        if let Some(at) = authority.rfind('@') {
            if authority[..at].contains(['?', '#']) {
                return Err(UrlError::AmbiguousAuthority);
            }
        }
        return match parsed {
            Ok(parsed) => check_url_parts(kind, scheme, &parsed),
            Err(_) => Err(why_unparsable(kind, url)),
        };
    }
    if scp_password_at(url).is_some() || scp_bracket_password_at(url).is_some() {
        return Err(UrlError::ScpPassword);
    }
    match parsed {
        Ok(parsed) if parsed.scheme == gix::url::Scheme::File => Ok(Scheme::Local),
        // gix-url does not know git's bracketed scp-like forms `[user@host:port]:path` and
        // `user@[v6]:path` (it splits at the first ':'); they are handed to it as ssh:// URLs.
        _ if url.starts_with('[') || url.contains("@[") => {
            let colon = scp_colon(url).ok_or(UrlError::UnclosedBracket)?;
            let (host, path) = (&url[..colon], &url[colon + 1..]);
            let host = host
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or(host);
            match gix::url::parse(format!("ssh://{host}/{path}").as_bytes()) {
                Ok(u) => check_scp_like_parts(&u, path),
                Err(_) => Err(why_unparsable(Scheme::Ssh, &format!("ssh://{host}/"))),
            }
        }
        Ok(parsed) => check_scp_like_parts(&parsed, &parsed.path.to_string()),
        // gix-url takes any "://" for a URL; git only one after a valid scheme name, and then
        // reads a '/' before the first ':' as a local path ("./a://b").
        Err(_)
            if url
                .find('/')
                .is_some_and(|slash| Some(slash) < url.find(':')) =>
        {
            Ok(Scheme::Local)
        }
        Err(_) => {
            let host = url.split(':').next().unwrap_or_default();
            Err(why_unparsable(Scheme::Ssh, &format!("ssh://{host}/")))
        }
    }
}

/// The scheme of a `scheme://` URL, or why it is refused.
fn url_scheme(scheme: &str, allow_http: bool) -> Result<Scheme, UrlError> {
    Ok(match scheme {
        "https" => Scheme::Https,
        "http" if allow_http => Scheme::Http,
        "http" => return Err(UrlError::InsecureHttp),
        "ssh" | "git+ssh" | "ssh+git" => Scheme::Ssh,
        "git" => Scheme::Git,
        "file" => Scheme::Local,
        // "ext://" is the ext transport too.
        s if s.eq_ignore_ascii_case("ext") => return Err(UrlError::ExtTransport),
        _ => {
            return Err(UrlError::UnknownScheme {
                scheme: scheme.to_string(),
            })
        }
    })
}

fn check_url_parts(kind: Scheme, scheme: &str, url: &gix::url::Url) -> Result<Scheme, UrlError> {
    if kind == Scheme::Local {
        // git takes everything after file:// as the path, so "file://host/x" would silently
        // become the relative path "host/x".
        if url.host().is_some() {
            return Err(UrlError::FileUrlHost);
        }
        if has_control(&percent_decode(&url.path.to_string())) {
            return Err(UrlError::EncodedControl);
        }
        return Ok(kind);
    }
    // gix-url has percent-decoded the user, and the host and path of ssh and git URLs: git
    // hands those decoded to ssh, so the decoded form is what must not look like an option.
    if let Some(user) = url.user() {
        if user.starts_with('-') {
            return Err(UrlError::UserLeadingDash);
        }
        if has_control(user.as_bytes()) {
            return Err(UrlError::EncodedControl);
        }
    }
    if url.password().is_some() && !matches!(kind, Scheme::Https | Scheme::Http) {
        return Err(UrlError::PasswordInUrl {
            scheme: scheme.to_string(),
        });
    }
    let host = url.host().unwrap_or_default();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.split(']').next())
        .unwrap_or(host);
    if host.is_empty() {
        return Err(UrlError::MissingHost);
    }
    // An http(s) host keeps its escapes in gix-url (those of ssh and git are decoded already).
    let host = percent_decode(host);
    if host.first() == Some(&b'-') {
        return Err(UrlError::HostLeadingDash);
    }
    if has_control(&host) || has_control(&url.path) {
        return Err(UrlError::EncodedControl);
    }
    Ok(kind)
}

fn check_scp_like_parts(url: &gix::url::Url, path: &str) -> Result<Scheme, UrlError> {
    if path.starts_with('-') {
        return Err(UrlError::PathLeadingDash);
    }
    if url.user().is_some_and(|u| u.starts_with('-')) {
        return Err(UrlError::UserLeadingDash);
    }
    let host = url.host().unwrap_or_default();
    if host.is_empty() {
        return Err(UrlError::MissingHost);
    }
    if host.starts_with('-') {
        return Err(UrlError::HostLeadingDash);
    }
    // "https:host/x" is scp-like ssh to a host called "https" for git; it is a typo.
    // "git" is left alone: it is a plausible ssh config Host alias.
    if url.user().is_none() && matches!(host, "https" | "http" | "ssh" | "file") {
        return Err(UrlError::MissingSlashes {
            scheme: host.to_string(),
        });
    }
    Ok(Scheme::Ssh)
}

/// Names what is wrong with a `scheme://` URL that gix-url could not parse (its own error quotes
/// the URL). Only the authority can be at fault once the scheme and characters have passed.
fn why_unparsable(kind: Scheme, url: &str) -> UrlError {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    if kind == Scheme::Local {
        return UrlError::FileUrlHost;
    }
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    match split_host_port(hostport) {
        Err(e) => e,
        Ok("") => UrlError::MissingHost,
        Ok(host) if percent_decode(host).first() == Some(&b'-') => UrlError::HostLeadingDash,
        Ok(_) => UrlError::Unparsable,
    }
}

/// Returns the host of `host[:port]` or `[v6][:port]`, brackets removed.
fn split_host_port(hostport: &str) -> Result<&str, UrlError> {
    let (host, after) = if let Some(inner) = hostport.strip_prefix('[') {
        let close = inner.find(']').ok_or(UrlError::UnclosedBracket)?;
        (&inner[..close], &inner[close + 1..])
    } else {
        match hostport.find(':') {
            Some(colon) => (&hostport[..colon], &hostport[colon..]),
            None => (hostport, ""),
        }
    };
    match after.strip_prefix(':') {
        Some(port) if port.bytes().all(|b| b.is_ascii_digit()) => Ok(host),
        None if after.is_empty() => Ok(host),
        _ => Err(UrlError::BadPort),
    }
}

/// The `:` that ends the host of an scp-like address, skipping colons inside `[...]`.
fn scp_colon(url: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in url.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            ':' if depth == 0 => return Some(i),
            _ => {}
        }
    }
    None
}

/// For an scp-like address typed as `user:password@host:path` (git reads `user` as the host and
/// `password@host:path` as the path): the index of the '@' that ends the password. None for a
/// local path (a '/' before the colon), a `scheme://` URL, ordinary `user@host:path`, and a
/// path that merely contains '@'.
///
/// git's rule for scp syntax: the host (and `user@`) is what stands before the first ':', if no
/// '/' comes before it. So `git@host:team@x.git` and `host:a@b.git` are paths with an '@' in
/// them, like `ssh://host/a@b.git`. Only where the text after the colon reads as
/// `password@host:path` (or `password@host/path`, `password@[v6]:path`) was a password meant:
/// the part before the colon carries no '@' (that would already be the user), and after an '@'
/// comes a host name (no '@' in it) followed by ':' or '/'. The first such '@' ends the
/// password (a password may hold a raw '@': `user:p@ss@host:x`).
fn scp_password_at(url: &str) -> Option<usize> {
    if split_scheme(url).is_some() {
        return None;
    }
    let colon = scp_colon(url)?;
    let head = &url[..colon];
    if head.contains('/') || head.contains('@') {
        return None;
    }
    let after = &url[colon + 1..];
    // The password and host end at the first '/' after the colon at the latest.
    let segment = &after[..after.find('/').map_or(after.len(), |slash| slash + 1)];
    segment
        .match_indices('@')
        .map(|(at, _)| at)
        .find(|&at| {
            let host = &after[at + 1..];
            if host.starts_with('[') {
                return true;
            }
            match host.find([':', '/']) {
                Some(end) => end > 0 && !host[..end].contains('@'),
                None => false,
            }
        })
        .map(|at| colon + 1 + at)
}

/// For git's bracketed scp-like form typed with a password, `[user:password@host:port]:path`
/// (git strips the brackets and hands `user:password@host:port` to ssh as its host argument,
/// so the password would be on ssh's command line and in ours): the index of the last '@'
/// inside the brackets, which ends the password. None when the brackets hold no `user:`
/// before an '@' (`[git@host:22]:x.git`, `[host:22]:x.git`).
fn scp_bracket_password_at(url: &str) -> Option<usize> {
    if split_scheme(url).is_some() {
        return None;
    }
    let head = &url[..scp_colon(url).unwrap_or(url.len())];
    let inner = head.strip_prefix('[')?;
    let inner = inner.strip_suffix(']').unwrap_or(inner);
    let at = inner.rfind('@')?;
    inner[..at].contains(':').then_some(1 + at)
}

/// git's `is_urlschemechar`.
fn is_scheme_char(first: bool, c: char) -> bool {
    c.is_ascii_alphabetic() || (!first && (c.is_ascii_digit() || matches!(c, '+' | '-' | '.')))
}

/// `("https", "host/x")` for `"https://host/x"`.
fn split_scheme(url: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let mut chars = scheme.chars();
    let valid = chars.next().is_some_and(|c| is_scheme_char(true, c))
        && chars.all(|c| is_scheme_char(false, c));
    valid.then_some((scheme, rest))
}

fn percent_decode(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).and_then(|h| {
                let h = std::str::from_utf8(h).ok()?;
                u8::from_str_radix(h, 16).ok()
            });
            if let Some(b) = hex {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

fn has_control(bytes: &[u8]) -> bool {
    bytes.iter().any(|&b| b < 0x20 || b == 0x7f)
}

const MASK: &str = "*****";

/// An href for messages: no userinfo, no query (presigned URLs carry tokens there).
pub fn show_href(href: &str) -> String {
    match url::Url::parse(href) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.set_fragment(None);
            let shown = u.to_string();
            // A server's href may be megabytes long: a message shows its start.
            if shown.chars().count() > SHOWN_HREF_MAX {
                let start: String = shown.chars().take(SHOWN_HREF_MAX).collect();
                format!("{start}...")
            } else {
                shown
            }
        }
        Err(_) => "<unparsable URL>".to_string(),
    }
}

/// The most characters of a URL a message shows (`show_href`).
const SHOWN_HREF_MAX: usize = 200;

/// Text from a server (a response body, an error message, a git-lfs-authenticate line) made
/// safe for a message, the log and a terminal: every control character (ESC, BEL, CR, LF, C1
/// controls) is written as a visible escape, `\x1b` or `\u{9b}`, so it cannot move the cursor,
/// recolour a terminal or forge a log line.
pub fn escape_control(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if !c.is_control() {
            out.push(c);
        } else if (c as u32) < 0x80 {
            out.push_str(&format!("\\x{:02x}", c as u32));
        } else {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        }
    }
    out
}

/// For display everywhere: userinfo replaced, e.g. "https://user:tok@host/a.git" ->
/// "https://*****:*****@host/a.git", "https://tok@host/x" -> "https://*****@host/x"; URLs
/// without userinfo unchanged; scp-like "git@host:x" unchanged (user is not secret there);
/// ssh://user@host/x unchanged; ssh://user:pw@host -> masked password and user.
pub fn mask(url: &str) -> String {
    // `user:password@host:path` (refused by `validate`, but a file may be edited by hand).
    if let Some(at) = scp_password_at(url) {
        return format!("{MASK}:{MASK}{}", &url[at..]);
    }
    // `[user:password@host:port]:path`, the same in git's bracketed form.
    if let Some(at) = scp_bracket_password_at(url) {
        return format!("[{MASK}:{MASK}{}", &url[at..]);
    }
    // Only '/' and blanks end the authority here: a raw '#', '?' or quote in a password is
    // invalid but happens, and stopping early there would print the rest of the password.
    mask_userinfo(url, |c| c == '/' || c.is_whitespace() || c.is_control())
}

/// Removes secrets from text that came back from git (stderr) before it is stored or
/// printed: every occurrence of each given secret (non-empty ones) becomes "*****", and any
/// URL userinfo "scheme://user:pass@" in the text is masked as in `mask`.
pub fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut needles: Vec<String> = Vec::new();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        needles.push((*secret).to_string());
        // git may echo a URL the way it was written, with the password percent-encoded.
        let upper = percent_encode(secret, false);
        let lower = percent_encode(secret, true);
        if upper != *secret {
            needles.push(upper);
        }
        if lower != *secret {
            needles.push(lower);
        }
    }
    // Longest first, so a secret that contains another is not left half-replaced.
    needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
    needles.dedup();
    let mut out = text.to_string();
    for needle in &needles {
        out = out.replace(needle.as_str(), MASK);
    }
    // In free text a URL is usually quoted ('https://...') or followed by a blank; stopping
    // there keeps an unrelated '@' later in the line from being taken for userinfo.
    mask_userinfo(&out, |c| {
        c == '/' || c.is_whitespace() || c.is_control() || matches!(c, '\'' | '"' | '`' | '<' | '>')
    })
}

fn mask_userinfo(text: &str, ends_authority: impl Fn(char) -> bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(sep) = rest.find("://") {
        let scheme_start = rest[..sep]
            .char_indices()
            .rev()
            .take_while(|&(_, c)| is_scheme_char(false, c))
            .last()
            .map_or(sep, |(i, _)| i);
        let scheme = &rest[scheme_start..sep];
        let after = &rest[sep + 3..];
        let authority_len = after.find(&ends_authority).unwrap_or(after.len());
        let authority = &after[..authority_len];
        out.push_str(&rest[..sep + 3]);
        match authority.rfind('@') {
            Some(at) => {
                out.push_str(&masked_userinfo(scheme, &authority[..at]));
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &after[authority_len..];
    }
    out.push_str(rest);
    out
}

fn masked_userinfo(scheme: &str, userinfo: &str) -> String {
    let ssh = matches!(
        scheme.to_ascii_lowercase().as_str(),
        "ssh" | "git+ssh" | "ssh+git"
    );
    if userinfo.is_empty() || (ssh && !userinfo.contains(':')) {
        // An ssh login name is an account, not a credential, and operators need it to debug.
        userinfo.to_string()
    } else if userinfo.contains(':') {
        format!("{MASK}:{MASK}")
    } else {
        // A lone userinfo on https is usually a token (https://TOKEN@host).
        MASK.to_string()
    }
}

fn percent_encode(s: &str, lowercase: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else if lowercase {
            out.push_str(&format!("%{b:02x}"));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The URL git should be given: userinfo stripped from http(s) URLs (credentials go through
/// askpass instead); returns (url_without_credentials, Option<username>, Option<password>) so
/// inline credentials in a URL are not passed in argv. Other URLs come back unchanged.
pub fn split_credentials(url: &str) -> (String, Option<String>, Option<String>) {
    let unchanged = || (url.to_string(), None, None);
    let Some((scheme, rest)) = split_scheme(url) else {
        return unchanged();
    };
    if scheme != "https" && scheme != "http" {
        return unchanged();
    }
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    let Some(at) = authority.rfind('@') else {
        return unchanged();
    };
    let userinfo = &authority[..at];
    let (user, password) = match userinfo.split_once(':') {
        Some((user, password)) => (user, Some(password)),
        None => (userinfo, None),
    };
    (
        format!("{scheme}://{}", &rest[at + 1..]),
        decoded_non_empty(user),
        password.and_then(decoded_non_empty),
    )
}

fn decoded_non_empty(s: &str) -> Option<String> {
    // A credential that does not decode to UTF-8 is kept as written rather than mangled:
    // either way the remote decides, and the written form is what must be scrubbed.
    let decoded = String::from_utf8(percent_decode(s)).unwrap_or_else(|_| s.to_string());
    (!decoded.is_empty()).then_some(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_href_is_shown_cut() {
        let long = format!("https://h.example/{}?sig=s3cr3t", "a".repeat(1 << 20));
        let shown = show_href(&long);
        assert!(shown.starts_with("https://h.example/aaa") && shown.ends_with("..."));
        assert!(shown.len() < 300 && !shown.contains("s3cr3t"), "{shown}");
        assert_eq!(show_href("https://h.example/x"), "https://h.example/x");
    }

    fn ok(url: &str) -> Scheme {
        match validate(url, false) {
            Ok(s) => s,
            Err(e) => panic!("{url:?} refused: {e}"),
        }
    }

    fn refused(url: &str) -> UrlError {
        match validate(url, false) {
            Ok(s) => panic!("{url:?} accepted as {s:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn accepts_the_supported_forms() {
        assert_eq!(ok("https://github.com/acme/repo.git"), Scheme::Https);
        assert_eq!(
            ok("https://user:tok@github.com/acme/repo.git"),
            Scheme::Https
        );
        assert_eq!(
            ok("https://oauth2:glpat%40x@gitlab.example/g/p.git"),
            Scheme::Https
        );
        assert_eq!(ok("https://[::1]:8443/a.git"), Scheme::Https);
        assert_eq!(ok("https://u:p@[fe80::1%25eth0]/a.git"), Scheme::Https);
        assert_eq!(ok("https://host:/a.git"), Scheme::Https);
        assert_eq!(
            ok("https://git-codecommit.eu-west-1.amazonaws.com/v1/repos/r"),
            Scheme::Https
        );
        assert_eq!(ok("ssh://git@host:2222/acme/repo.git"), Scheme::Ssh);
        assert_eq!(ok("ssh://host/~user/repo.git"), Scheme::Ssh);
        assert_eq!(ok("git+ssh://git@host/r.git"), Scheme::Ssh);
        assert_eq!(ok("ssh+git://git@host/r.git"), Scheme::Ssh);
        assert_eq!(ok("git@github.com:acme/repo.git"), Scheme::Ssh);
        // An '@' in an scp-like path (git: the user is only before the first ':').
        assert_eq!(ok("host:a@b.git"), Scheme::Ssh);
        assert_eq!(ok("git@host:team@x.git"), Scheme::Ssh);
        assert_eq!(ok("ssh://host/a@b.git"), Scheme::Ssh);
        assert_eq!(ok("host:repo.git"), Scheme::Ssh);
        assert_eq!(ok("git:repo.git"), Scheme::Ssh);
        assert_eq!(ok("[git@host:22]:repo.git"), Scheme::Ssh);
        assert_eq!(ok("git@[::1]:repo.git"), Scheme::Ssh);
        assert_eq!(ok("git://host/repo.git"), Scheme::Git);
        assert_eq!(ok("git://[::1]:9418/repo.git"), Scheme::Git);
        assert_eq!(ok("/srv/mirrors/repo.git"), Scheme::Local);
        assert_eq!(ok("../mirror.git"), Scheme::Local);
        assert_eq!(ok("./odd:name.git"), Scheme::Local);
        assert_eq!(ok("mirror.git"), Scheme::Local);
        assert_eq!(ok("file:///srv/mirror.git"), Scheme::Local);
        assert_eq!(ok("/srv/my%20repo.git"), Scheme::Local);
        assert_eq!(ok("./a://b.git"), Scheme::Local);
        assert_eq!(ok("[git@host]:repo.git"), Scheme::Ssh);
        assert_eq!(ok("git@[::1]:~user/repo.git"), Scheme::Ssh);
    }

    #[test]
    fn http_needs_the_flag() {
        assert_eq!(refused("http://host/a.git"), UrlError::InsecureHttp);
        assert_eq!(refused("http://u:p@host/a.git"), UrlError::InsecureHttp);
        assert_eq!(validate("http://host/a.git", true), Ok(Scheme::Http));
        assert!(UrlError::InsecureHttp
            .to_string()
            .contains("allow_insecure_http: true"));
    }

    #[test]
    fn refuses_transport_helpers() {
        assert_eq!(
            refused("ext::sh -c touch% /tmp/pwned"),
            UrlError::ExtTransport
        );
        assert_eq!(
            refused("ext::ssh -p 22 host %S repo"),
            UrlError::ExtTransport
        );
        assert_eq!(refused("EXT::sh"), UrlError::ExtTransport);
        assert_eq!(refused("fd::3"), UrlError::FdTransport);
        assert_eq!(refused("fd::3,4/path"), UrlError::FdTransport);
        assert_eq!(
            refused("https::https://host/a.git"),
            UrlError::TransportHelper {
                name: "https".into()
            }
        );
        assert_eq!(
            refused("persistent-https::host"),
            UrlError::TransportHelper {
                name: "persistent-https".into()
            }
        );
        assert_eq!(
            refused("a::b"),
            UrlError::TransportHelper { name: "a".into() }
        );
        assert_eq!(
            UrlError::ExtTransport.to_string(),
            "mirror URL refused: ext:: transport runs arbitrary commands"
        );
    }

    #[test]
    fn refuses_unknown_schemes() {
        for (url, scheme) in [
            ("ftp://host/a.git", "ftp"),
            ("ftps://host/a.git", "ftps"),
            ("rsync://host/a.git", "rsync"),
            ("HTTPS://host/a.git", "HTTPS"),
            ("s3://bucket/a.git", "s3"),
        ] {
            assert_eq!(
                refused(url),
                UrlError::UnknownScheme {
                    scheme: scheme.into()
                },
                "{url}"
            );
        }
    }

    #[test]
    fn refuses_option_injection() {
        assert_eq!(refused("--upload-pack=touch /tmp/x"), UrlError::LeadingDash);
        assert_eq!(refused("-oProxyCommand=x:y"), UrlError::LeadingDash);
        assert_eq!(refused("-"), UrlError::LeadingDash);
        assert_eq!(
            refused("ssh://-oProxyCommand=x/y"),
            UrlError::HostLeadingDash
        );
        assert_eq!(
            refused("ssh://%2doProxyCommand=x/y"),
            UrlError::HostLeadingDash
        );
        assert_eq!(refused("ssh://git@-evil/y"), UrlError::HostLeadingDash);
        assert_eq!(refused("ssh://[-evil]:22/y"), UrlError::HostLeadingDash);
        assert_eq!(
            refused("ssh://-oProxyCommand=x@host/y"),
            UrlError::UserLeadingDash
        );
        assert_eq!(refused("ssh://%2Dl@host/y"), UrlError::UserLeadingDash);
        assert_eq!(refused("git://-evil/y"), UrlError::HostLeadingDash);
        assert_eq!(refused("https://-evil/y"), UrlError::HostLeadingDash);
        assert_eq!(refused("https://%2devil/y"), UrlError::HostLeadingDash);
        assert_eq!(refused("git@-evil:x"), UrlError::HostLeadingDash);
        assert_eq!(refused("git@[-evil]:x"), UrlError::HostLeadingDash);
        assert_eq!(refused("[-evil]:x"), UrlError::HostLeadingDash);
        assert_eq!(refused("-user@host:x"), UrlError::LeadingDash);
        assert_eq!(refused("[-user@host]:x"), UrlError::UserLeadingDash);
        assert_eq!(refused("host:-x"), UrlError::PathLeadingDash);
        assert_eq!(refused("file://-evil/x"), UrlError::FileUrlHost);
    }

    #[test]
    fn refuses_control_characters_and_blanks() {
        assert_eq!(
            refused("https://host/a.git\n"),
            UrlError::ControlOrWhitespace
        );
        assert_eq!(
            refused("https://host/a.git\nssh://evil/x"),
            UrlError::ControlOrWhitespace
        );
        assert_eq!(
            refused("https://host/a\r.git"),
            UrlError::ControlOrWhitespace
        );
        assert_eq!(
            refused("https://host/a .git"),
            UrlError::ControlOrWhitespace
        );
        assert_eq!(
            refused("https://host/a\t.git"),
            UrlError::ControlOrWhitespace
        );
        assert_eq!(
            refused("https://host/a\u{a0}.git"),
            UrlError::ControlOrWhitespace
        );
        assert_eq!(refused("/srv/my repo.git"), UrlError::ControlOrWhitespace);
        assert_eq!(
            refused("https://host/a\u{7f}"),
            UrlError::ControlOrWhitespace
        );
        assert_eq!(refused("https://host/a\0.git"), UrlError::Nul);
        assert_eq!(refused("ssh://host%0a/x"), UrlError::EncodedControl);
        assert_eq!(refused("ssh://host/x%00y"), UrlError::EncodedControl);
        assert_eq!(refused("ssh://u%0d@host/x"), UrlError::EncodedControl);
        assert_eq!(refused("file:///srv/x%0a"), UrlError::EncodedControl);
    }

    #[test]
    fn refuses_malformed_hosts_and_ports() {
        assert_eq!(refused("https:///a.git"), UrlError::MissingHost);
        assert_eq!(refused("https://user@/a.git"), UrlError::MissingHost);
        assert_eq!(refused("ssh://"), UrlError::MissingHost);
        assert_eq!(refused(":repo.git"), UrlError::MissingHost);
        assert_eq!(refused("git@:repo.git"), UrlError::MissingHost);
        assert_eq!(refused("https://host:80x/a"), UrlError::BadPort);
        assert_eq!(refused("ssh://host:-p/a"), UrlError::BadPort);
        assert_eq!(refused("https://[::1/a"), UrlError::UnclosedBracket);
        assert_eq!(refused("https://[::1]x/a"), UrlError::BadPort);
        assert_eq!(refused("file://host/x"), UrlError::FileUrlHost);
        assert_eq!(refused("file://"), UrlError::FileUrlHost);
        assert_eq!(
            refused("https:github.com/a.git"),
            UrlError::MissingSlashes {
                scheme: "https".into()
            }
        );
        assert_eq!(refused("[git@host:x"), UrlError::UnclosedBracket);
        assert_eq!(refused("git@[::1:x"), UrlError::UnclosedBracket);
        // Where gix-url is stricter than git: a port beyond 65535 (git would only fail to
        // connect), a percent-escape that does not decode to UTF-8 in an ssh host or URL path.
        assert_eq!(refused("https://host:65536/a"), UrlError::Unparsable);
        assert_eq!(refused("https://host/%ff.git"), UrlError::Unparsable);
        // ... and a non-ASCII http(s) host name: write it in punycode (xn--...).
        assert_eq!(refused("https://bücher.example/a"), UrlError::Unparsable);
        assert_eq!(ok("https://xn--bcher-kva.example/a"), Scheme::Https);
        assert_eq!(refused("ext://host/x"), UrlError::ExtTransport);
    }

    #[test]
    fn refuses_a_query_or_fragment_mark_before_the_userinfo_at() {
        for url in [
            "https://good.example?@evil.test/x",
            "https://good.example#@evil.test/x",
            "https://user:p#ss@host/x",
            "https://user:a?b@host/x",
            "ssh://good.example?@evil.test/x",
        ] {
            assert_eq!(refused(url), UrlError::AmbiguousAuthority, "{url}");
        }
        let err = refused("https://u:hunter2?@evil.test/x").to_string();
        assert!(!err.contains("hunter2") && !err.contains("evil"), "{err}");
        // Escaped, or after the host: fine.
        assert_eq!(ok("https://user:p%23ss@host/x"), Scheme::Https);
        assert_eq!(ok("https://host/x?y@z"), Scheme::Https);
        assert_eq!(ok("https://user@host/x#a@b"), Scheme::Https);
    }

    #[test]
    fn refuses_passwords_where_only_argv_could_carry_them() {
        assert_eq!(
            refused("ssh://user:pw@host/x"),
            UrlError::PasswordInUrl {
                scheme: "ssh".into()
            }
        );
        assert_eq!(
            refused("git://user:pw@host/x"),
            UrlError::PasswordInUrl {
                scheme: "git".into()
            }
        );
        assert_eq!(ok("ssh://user@host/x"), Scheme::Ssh);
    }

    #[test]
    fn scp_like_urls_with_a_password_are_refused_and_masked() {
        for url in [
            "user:hunter2@host:repo.git",
            "user:hunter2@host:org/repo.git",
            "user:hunter2@host/repo.git",
            "user:hun:ter2@host:x",
            "user:hunter2@[::1]:x",
            "git:hunter2@github.com:acme/app.git",
            "user:p@ss@host:x",
            "user:hunter2@host:a@b.git",
        ] {
            assert_eq!(refused(url), UrlError::ScpPassword, "{url}");
            let shown = mask(url);
            assert!(!shown.contains("hunter2"), "{url} -> {shown}");
            assert!(shown.starts_with("*****:*****@"), "{url} -> {shown}");
            let err = refused(url).to_string();
            assert!(!err.contains("hunter2") && !err.contains('\n'), "{err}");
        }
        assert_eq!(
            mask("user:hunter2@host:org/repo.git"),
            "*****:*****@host:org/repo.git"
        );
        // Ordinary scp-like URLs and paths with '@' are untouched.
        for url in [
            "git@github.com:acme/app.git",
            "git@host:org/a@b.git",
            "host:a@b.git",
            "git@host:team@x.git",
            "git@host:team@x@y.git",
            "host:~/a@b.git",
            "host:org/x.git",
            "./dir:a@b/x",
            "/srv/a:b@c",
            "[git@host:22]:x.git",
            "git@[::1]:x.git",
        ] {
            assert_eq!(mask(url), url);
            assert_ne!(validate(url, false), Err(UrlError::ScpPassword), "{url}");
        }
    }

    #[test]
    fn bracketed_scp_like_urls_with_a_password_are_refused_and_masked() {
        for (url, shown) in [
            (
                "[user:hunter2@host:22]:repo.git",
                "[*****:*****@host:22]:repo.git",
            ),
            (
                "[user:hunter2@host]:org/x.git",
                "[*****:*****@host]:org/x.git",
            ),
            ("[user:p@ss:hunter2@host:22]:x", "[*****:*****@host:22]:x"),
            (
                "[user:hunter2@[::1]:22]:x.git",
                "[*****:*****@[::1]:22]:x.git",
            ),
            (
                "[git:hunter2@127.0.0.1:2222]:/srv/x",
                "[*****:*****@127.0.0.1:2222]:/srv/x",
            ),
            // Unclosed or without a path: still never shown.
            ("[user:hunter2@host:22", "[*****:*****@host:22"),
        ] {
            let err = refused(url);
            assert!(
                matches!(err, UrlError::ScpPassword | UrlError::UnclosedBracket),
                "{url}: {err}"
            );
            assert!(!err.to_string().contains("hunter2"), "{err}");
            assert_eq!(mask(url), shown, "{url}");
        }
        assert_eq!(
            refused("[user:hunter2@host:22]:repo.git"),
            UrlError::ScpPassword
        );
        // Without a password the bracketed forms are ordinary ssh.
        for url in [
            "[git@host:22]:x.git",
            "[host:22]:x.git",
            "[git@[::1]:22]:x.git",
        ] {
            assert_eq!(ok(url), Scheme::Ssh, "{url}");
            assert_eq!(mask(url), url);
        }
    }

    #[test]
    fn refused_messages_never_quote_the_url() {
        let secret = "s3cr3tTOKEN";
        for url in [
            format!("http://u:{secret}@host/a"),
            format!("ssh://u:{secret}@host/a"),
            format!("ftp://u:{secret}@host/a"),
            format!("https://u:{secret}@-host/a"),
            format!("https://u:{secret}@host/a b"),
            format!("https://u:{secret}@host:x/a"),
            format!("https://u:{secret}@host:99999/a"),
            format!("ssh://u@host:99999/{secret}"),
            format!("[git@{secret}:x"),
            format!("ext::sh -c {secret}"),
        ] {
            let err = refused(&url);
            assert!(!err.to_string().contains(secret), "{err}");
            assert!(!format!("{err:?}").contains(secret), "{err:?}");
            assert!(!err.to_string().contains('\n'));
        }
    }

    #[test]
    fn mask_replaces_userinfo() {
        assert_eq!(
            mask("https://user:tok@host/a.git"),
            "https://*****:*****@host/a.git"
        );
        assert_eq!(mask("https://tok@host/x"), "https://*****@host/x");
        assert_eq!(
            mask("https://oauth2:glpat%40abc@gitlab.example/g/p.git"),
            "https://*****:*****@gitlab.example/g/p.git"
        );
        // A raw '@' in the password: the last '@' before the path is the host separator.
        assert_eq!(
            mask("https://user:p@ss@host/a.git"),
            "https://*****:*****@host/a.git"
        );
        assert_eq!(
            mask("https://user:tok@[::1]:8443/a.git"),
            "https://*****:*****@[::1]:8443/a.git"
        );
        assert_eq!(
            mask("https://user:tok@host:8443/a.git"),
            "https://*****:*****@host:8443/a.git"
        );
        assert_eq!(mask("https://user:tok@host"), "https://*****:*****@host");
        assert_eq!(mask("https://user:@host/x"), "https://*****:*****@host/x");
        assert_eq!(
            mask("https://user:a#b?c@host/x"),
            "https://*****:*****@host/x"
        );
        assert_eq!(
            mask("http://user:tok@host/a.git"),
            "http://*****:*****@host/a.git"
        );
        assert_eq!(
            mask("git://user:pw@host/a.git"),
            "git://*****:*****@host/a.git"
        );
        assert_eq!(
            mask("https::https://user:tok@host/x"),
            "https::https://*****:*****@host/x"
        );
    }

    #[test]
    fn mask_keeps_what_is_not_secret() {
        for url in [
            "https://github.com/acme/repo.git",
            "https://[::1]:8443/a.git",
            "https://host/path/with@sign",
            "git@github.com:acme/repo.git",
            "ssh://git@host:22/x.git",
            "ssh://git@[::1]/x.git",
            "git+ssh://git@host/x.git",
            "/srv/mirror.git",
            "file:///srv/mirror.git",
            "",
        ] {
            assert_eq!(mask(url), url);
        }
    }

    #[test]
    fn mask_hides_ssh_passwords_and_their_user() {
        assert_eq!(mask("ssh://user:pw@host/x"), "ssh://*****:*****@host/x");
        assert_eq!(mask("SSH://user:pw@host/x"), "SSH://*****:*****@host/x");
    }

    #[test]
    fn scrub_removes_given_secrets() {
        let text = "fatal: token ghp_abc123 rejected; retry with ghp_abc123";
        assert_eq!(
            scrub(text, &["ghp_abc123"]),
            "fatal: token ***** rejected; retry with *****"
        );
        assert_eq!(scrub("nothing here", &[""]), "nothing here");
        assert_eq!(scrub("abcdef abc", &["abc", "abcdef"]), "***** *****");
        assert_eq!(
            scrub("https://u:p%40ss%2Fw@host/x", &["p@ss/w"]),
            "https://*****:*****@host/x"
        );
        assert_eq!(scrub("bad p%2fw here", &["p/w"]), "bad ***** here");
        assert_eq!(
            scrub("line1\nsecret\nline3", &["secret"]),
            "line1\n*****\nline3"
        );
    }

    #[test]
    fn scrub_masks_urls_in_free_text() {
        assert_eq!(
            scrub(
                "fatal: unable to access 'https://user:tok@host/a.git/': 403",
                &[]
            ),
            "fatal: unable to access 'https://*****:*****@host/a.git/': 403"
        );
        assert_eq!(
            scrub("remote: see https://tok@host and mail me@example.com", &[]),
            "remote: see https://*****@host and mail me@example.com"
        );
        assert_eq!(
            scrub("'https://host' failed for me@example.com", &[]),
            "'https://host' failed for me@example.com"
        );
        assert_eq!(
            scrub("To ssh://git@host/x.git\n ! [rejected]", &[]),
            "To ssh://git@host/x.git\n ! [rejected]"
        );
        assert_eq!(
            scrub("a https://u:p@h1/x b http://u2:p2@h2 c", &[]),
            "a https://*****:*****@h1/x b http://*****:*****@h2 c"
        );
        assert_eq!(scrub("weird :// here", &[]), "weird :// here");
        assert_eq!(scrub("://", &[]), "://");
        assert_eq!(scrub("", &["x"]), "");
    }

    #[test]
    fn split_credentials_takes_userinfo_out_of_http_urls() {
        assert_eq!(
            split_credentials("https://user:tok@host/a.git"),
            (
                "https://host/a.git".to_string(),
                Some("user".to_string()),
                Some("tok".to_string())
            )
        );
        assert_eq!(
            split_credentials("https://tok@host/a.git"),
            (
                "https://host/a.git".to_string(),
                Some("tok".to_string()),
                None
            )
        );
        assert_eq!(
            split_credentials("https://oauth2:p%40ss%3Aw@[::1]:8443/a.git"),
            (
                "https://[::1]:8443/a.git".to_string(),
                Some("oauth2".to_string()),
                Some("p@ss:w".to_string())
            )
        );
        assert_eq!(
            split_credentials("https://user:p@ss@host/a.git"),
            (
                "https://host/a.git".to_string(),
                Some("user".to_string()),
                Some("p@ss".to_string())
            )
        );
        assert_eq!(
            split_credentials("http://:tok@host"),
            ("http://host".to_string(), None, Some("tok".to_string()))
        );
        assert_eq!(
            split_credentials("https://user:@host/x"),
            ("https://host/x".to_string(), Some("user".to_string()), None)
        );
        assert_eq!(
            split_credentials("https://u:%ff@host/x"),
            (
                "https://host/x".to_string(),
                Some("u".to_string()),
                Some("%ff".to_string())
            )
        );
    }

    #[test]
    fn split_credentials_leaves_other_urls_alone() {
        for url in [
            "https://host/a.git",
            "https://host/user@x",
            "ssh://git@host/x.git",
            "git@host:x.git",
            "git://host/x.git",
            "/srv/x.git",
            "file:///srv/x.git",
        ] {
            assert_eq!(split_credentials(url), (url.to_string(), None, None));
        }
    }

    #[test]
    fn split_then_mask_never_shows_the_password() {
        let url = "https://user:hunter2@host/a.git";
        let (bare, _, password) = split_credentials(url);
        assert!(!bare.contains("hunter2"));
        assert!(!mask(url).contains("hunter2"));
        assert_eq!(password.as_deref(), Some("hunter2"));
    }
}
