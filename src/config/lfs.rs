//! The check of a mirror's `lfs_url` (a pure check on the configured strings; the LFS client in
//! `mirror::lfs` runs it again before it sends anything).

/// Checks a mirror's `lfs_url` against its `url`: an http(s) URL without credentials, query or
/// fragment (the mirror's own auth is what is sent, on the URL's origin or with `lfs_auth`), https unless the mirror itself is http://, and
/// only for an HTTP(S) mirror (an SSH mirror's endpoint comes from git-lfs-authenticate).
pub fn check_lfs_url(mirror_url: &str, lfs_url: &str) -> Result<(), String> {
    let mirror_http = mirror_url.starts_with("http://");
    if !mirror_http && !mirror_url.starts_with("https://") {
        return Err(
            "is for http(s) mirrors only (an SSH mirror's LFS endpoint comes from git-lfs-authenticate; a local mirror gets the objects in its own lfs/objects)"
                .into(),
        );
    }
    let u = url::Url::parse(lfs_url).map_err(|e| {
        let before_query = lfs_url.split(['?', '#']).next().unwrap_or("");
        format!("`{}` is not a URL: {e}", crate::url::mask(before_query))
    })?;
    // Shown without userinfo, query or fragment (where tokens go).
    let shown = crate::url::show_href(lfs_url);
    if !u.username().is_empty() || u.password().is_some() {
        return Err(format!(
            "`{}` has credentials in it: the mirror's own auth is sent there (auth.username, auth.password_file; to another host only with lfs_auth: true)",
            shown
        ));
    }
    if u.query().is_some() || u.fragment().is_some() {
        return Err(format!(
            "`{}` has a query or fragment: give the endpoint itself (like git's lfs.url, e.g. https://lfs.example.com/org/repo.git/info/lfs)",
            shown
        ));
    }
    match u.scheme() {
        "https" => Ok(()),
        "http" if mirror_http => Ok(()),
        "http" => Err(format!(
            "`{}` is http:// for an https:// mirror: the objects would go in clear; use https://",
            shown
        )),
        other => Err(format!("`{}`: scheme {other} is not http(s)", shown)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lfs_url_must_be_a_plain_https_endpoint_of_an_http_mirror() {
        let m = "https://git.example.com/a.git";
        assert!(check_lfs_url(m, "https://lfs.example.com/a.git/info/lfs").is_ok());
        assert!(check_lfs_url("http://git.example.com/a.git", "http://lfs.example.com/x").is_ok());
        for (mirror, bad, says) in [
            (m, "http://lfs.example.com/x", "in clear"),
            (m, "https://u:s3cret@lfs.example.com/x", "credentials"),
            (m, "https://lfs.example.com/x?token=s3cret", "query"),
            (m, "ftp://lfs.example.com/x", "scheme"),
            (m, "lfs.example.com/x", "not a URL"),
            (
                "ssh://git@h/a.git",
                "https://lfs.example.com/x",
                "git-lfs-authenticate",
            ),
            ("/srv/a.git", "https://lfs.example.com/x", "local"),
        ] {
            let e = check_lfs_url(mirror, bad).unwrap_err();
            assert!(e.contains(says) && !e.contains("s3cret"), "{bad}: {e}");
        }
    }
}
