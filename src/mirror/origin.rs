//! Which host a mirror's credentials belong to.
//!
//! A mirror's password or token is for the scheme, host and port of its URL and nobody else:
//! not for a host an HTTP redirect points at, not for a proxy that asks for a password, not
//! for a storage host an LFS batch answer names. Everything that hands out credentials (the
//! askpass face, the LFS client) asks [`Origin::same`] / [`belongs_to_mirror`] first.

/// The scheme, host and port of an `http`/`https` URL, normalised for comparison: scheme and
/// host lowercased, the port made explicit (80/443 when absent), IPv6 hosts kept in brackets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub scheme: String,
    pub host: String,
    pub port: u16,
}

impl Origin {
    /// The origin of `url` and the user named in it (as written, before any `:password`).
    /// None for anything that is not a well-formed `http://` or `https://` URL: callers treat
    /// that as "not the mirror", so an odd form fails closed.
    ///
    /// Scheme, host and port are read by `gix-url`, as git reads the mirror's URL. Two things
    /// stay by hand, for concrete reasons:
    /// - The user is split off as written: `url` may be git's own description of a URL in a
    ///   credential prompt (`https://user@host`), where the user is already decoded, so a
    ///   user such as `50%off` is no percent-escape (gix-url would decode or refuse it).
    /// - The URL must also read as the same origin to the `url` crate (WHATWG), which the LFS
    ///   client (ureq) sends its requests with: where the two readings differ (a `\` in the
    ///   authority is a path separator to WHATWG, an escaped host is decoded by it only), the
    ///   request would go elsewhere than the check saw, so no credentials go at all.
    pub fn parse(url: &str) -> Option<(Origin, Option<String>)> {
        let (scheme, rest) = url.split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "https" => 443,
            "http" => 80,
            _ => return None,
        };
        // As git and WHATWG do, '?' and '#' end the authority too: `https://h?@evil/` is h.
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (user, hostpart) = match rest[..end].rfind('@') {
            Some(at) => {
                let userinfo = &rest[..at];
                let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
                (Some(user.to_string()), &rest[at + 1..])
            }
            None => (None, rest),
        };
        // gix-url knows scheme names in lowercase only (`HTTP://` would be a remote helper).
        let bare = format!("{scheme}://{hostpart}");
        let parsed = gix::url::parse(bare.as_bytes()).ok()?;
        // gix-url keeps the ':' of an empty port (`https://h:/x`), which means the default.
        let host = parsed.host()?;
        let host = host.strip_suffix(':').unwrap_or(host).to_ascii_lowercase();
        if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return None;
        }
        let port = parsed.port.unwrap_or(default_port);
        let whatwg = url::Url::parse(url).ok()?;
        let same_for_ureq = whatwg.scheme() == scheme
            && whatwg.host_str().map(str::to_ascii_lowercase).as_deref() == Some(host.as_str())
            && whatwg.port_or_known_default() == Some(port);
        if !same_for_ureq {
            return None;
        }
        Some((Origin { scheme, host, port }, user))
    }

    /// True when `url` is an http(s) URL for exactly this scheme, host and port (user and path
    /// do not matter).
    pub fn same(&self, url: &str) -> bool {
        Origin::parse(url).is_some_and(|(o, _)| &o == self)
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
    }
}

/// Whether a request to `url` may carry the credentials of the mirror at `mirror_url`: both
/// must be http(s) URLs with the same scheme, host and port. An HTTPS mirror's credentials
/// never go to `http://` on the same host, to another port, or to another host, whatever a
/// redirect or an API answer says.
pub fn belongs_to_mirror(mirror_url: &str, url: &str) -> bool {
    Origin::parse(mirror_url).is_some_and(|(o, _)| o.same(url))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(url: &str) -> Origin {
        Origin::parse(url).unwrap().0
    }

    #[test]
    fn parses_and_normalises() {
        assert_eq!(
            Origin::parse("https://oauth2@GitLab.Example.com/g/r.git"),
            Some((
                Origin {
                    scheme: "https".into(),
                    host: "gitlab.example.com".into(),
                    port: 443
                },
                Some("oauth2".into())
            ))
        );
        assert_eq!(origin("HTTP://h:8080").port, 8080);
        assert_eq!(origin("http://h").port, 80);
        assert_eq!(origin("https://h:").port, 443);
        assert_eq!(origin("https://[::1]:8443/x").host, "[::1]");
        assert_eq!(origin("https://[::1]:8443/x").port, 8443);
        assert_eq!(origin("https://[::1]/x").port, 443);
        // A user that is itself an e-mail address: the host is after the last '@'.
        let (o, user) = Origin::parse("https://me@example.org@h:1/p").unwrap();
        assert_eq!(
            (o.host.as_str(), user.as_deref()),
            ("h", Some("me@example.org"))
        );
        let (_, user) = Origin::parse("https://u:secret@h/p").unwrap();
        assert_eq!(user.as_deref(), Some("u"));
        // A user in git's credential prompt is already decoded: taken as written.
        let (o, user) = Origin::parse("https://50%off@h").unwrap();
        assert_eq!((o.host.as_str(), user.as_deref()), ("h", Some("50%off")));
        assert_eq!(origin("https://h?@evil.test/x").host, "h");
        for bad in [
            "ssh://h/x",
            "git://h/x",
            "/srv/x.git",
            "h:x",
            "https://",
            "https://h:99999/",
            "https://h:x/",
            "https://[::1/x",
            "https://[::1]x/",
            "https://h h/",
            // Read differently by git (gix-url) and by the LFS client's url crate.
            "https://git.example.com%2Eevil.test/",
        ] {
            assert!(Origin::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn only_the_same_scheme_host_and_port_belong_to_the_mirror() {
        let m = "https://git.example.com/group/repo.git";
        for ok in [
            "https://git.example.com/group/repo.git/info/lfs/objects/batch",
            "https://GIT.example.com:443/other",
            "https://user@git.example.com",
            "https://git.example.com?x",
        ] {
            assert!(belongs_to_mirror(m, ok), "{ok}");
        }
        for other in [
            "http://git.example.com/group/repo.git",
            "https://git.example.com:8443/group/repo.git",
            "https://git.example.com.evil.test/group/repo.git",
            "https://evil.test/git.example.com/",
            "https://evil.test#@git.example.com",
            "https://git.example.com@evil.test/",
            "https://git.example.com\\@evil.test/",
            "https://evil.test\\@git.example.com/",
            "ssh://git.example.com/group/repo.git",
            "",
        ] {
            assert!(!belongs_to_mirror(m, other), "{other}");
        }
        assert!(!belongs_to_mirror("/srv/m.git", "/srv/m.git"));
    }
}
