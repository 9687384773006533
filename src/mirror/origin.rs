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
    pub fn parse(url: &str) -> Option<(Origin, Option<String>)> {
        let (scheme, rest) = url.split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "https" => 443,
            "http" => 80,
            _ => return None,
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..end];
        let (user, hostport) = match authority.rfind('@') {
            Some(at) => {
                let userinfo = &authority[..at];
                let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
                (Some(user.to_string()), &authority[at + 1..])
            }
            None => (None, authority),
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let close = v6.find(']')?;
            let host = &hostport[..close + 2];
            match &v6[close + 1..] {
                "" => (host, None),
                p => (host, Some(p.strip_prefix(':')?)),
            }
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return None;
        }
        let port = match port {
            None | Some("") => default_port,
            Some(p) if p.bytes().all(|b| b.is_ascii_digit()) => p.parse().ok()?,
            Some(_) => return None,
        };
        let origin = Origin {
            scheme,
            host: host.to_ascii_lowercase(),
            port,
        };
        Some((origin, user))
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
            "ssh://git.example.com/group/repo.git",
            "",
        ] {
            assert!(!belongs_to_mirror(m, other), "{other}");
        }
        assert!(!belongs_to_mirror("/srv/m.git", "/srv/m.git"));
    }
}
