//! Creating (and deleting) a repository through a forge's REST API, for `create_missing` on an
//! HTTPS mirror (`forge: github|gitlab|gitea`; Forgejo is `gitea`). The mirror's own token
//! goes only to the API of the mirror's origin (see `api_allowed`); no redirect is followed;
//! creations are serialised per API host across every flusher of the server (a lock file in
//! the runtime directory), and a 403/429 with `Retry-After` (or an exhausted rate limit) is
//! waited out a bounded number of times.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use crate::config::{Forge, Visibility};
use crate::mirror::origin::Origin;

/// Everything one forge request needs.
pub struct ForgeTarget<'a> {
    pub forge: Forge,
    /// The mirror's URL without credentials (`https://host/owner/repo.git`).
    pub url: &'a str,
    pub forge_api: Option<&'a str>,
    pub owner: Option<&'a str>,
    pub visibility: Visibility,
    /// The mirror's password or token (auth.method: password).
    pub token: Option<&'a str>,
    pub ca_file: Option<&'a Path>,
    pub proxy: &'a str,
    pub timeout: Duration,
    pub runtime_dir: &'a Path,
}

/// One planned request: method, URL and JSON body (pure; see `plan_create`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub method: &'static str,
    pub url: String,
    pub body: Option<Value>,
}

/// The API base of `forge` for the mirror `url`: `forge_api` when given, else derived from the
/// URL's origin (github.com's API is api.github.com; GitHub Enterprise's `/api/v3`, GitLab's
/// `/api/v4`, Gitea's and Forgejo's `/api/v1`).
pub fn api_base(forge: Forge, url: &str, forge_api: Option<&str>) -> Result<String, String> {
    if let Some(api) = forge_api {
        return Ok(api.trim_end_matches('/').to_string());
    }
    let (o, _) = Origin::parse(url).ok_or("the mirror url is not an http(s) url")?;
    let base = if o.port == default_port(&o.scheme) {
        format!("{}://{}", o.scheme, o.host)
    } else {
        format!("{}://{}:{}", o.scheme, o.host, o.port)
    };
    Ok(match forge {
        Forge::Github if o.host == "github.com" => "https://api.github.com".to_string(),
        Forge::Github => format!("{base}/api/v3"),
        Forge::Gitlab => format!("{base}/api/v4"),
        Forge::Gitea => format!("{base}/api/v1"),
    })
}

fn default_port(scheme: &str) -> u16 {
    if scheme == "http" {
        80
    } else {
        443
    }
}

/// Whether the mirror's token may go to `api`: only to the mirror's own scheme, host and port
/// (the pinning the askpass applies), or, for a github.com mirror, to api.github.com.
pub fn api_allowed(url: &str, api: &str) -> bool {
    let (Some((mirror, _)), Some((to, _))) = (Origin::parse(url), Origin::parse(api)) else {
        return false;
    };
    mirror == to
        || (mirror.host == "github.com"
            && mirror.scheme == "https"
            && to.scheme == "https"
            && to.host == "api.github.com"
            && to.port == 443)
}

/// The owner (user, organisation, GitLab group path) and repository name of the mirror's URL:
/// `create_owner` when given (the name is then the last path component), else every path
/// component but the last.
pub fn owner_and_name(url: &str, owner: Option<&str>) -> Result<(String, String), String> {
    let whatwg = url::Url::parse(url).map_err(|e| format!("url: {e}"))?;
    let path = whatwg.path().trim_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
    // `create_owner` must be what the url names (after a base path, such as a GitLab under
    // `/gitlab/`): the repository made or deleted is the one git pushes to, never `owner/name`
    // elsewhere (`org/team/app` is not `org/app`).
    if let Some(o) = owner {
        let (d, o) = (
            dir.to_ascii_lowercase(),
            o.trim_matches('/').to_ascii_lowercase(),
        );
        if d != o && !d.ends_with(&format!("/{o}")) {
            return Err(format!(
                "the url path `/{path}` is not `{o}/{name}`: create_owner must be the url's owner (nested names need a name_style other than slash)"
            ));
        }
    }
    let owner = owner.map(|o| o.trim_matches('/')).unwrap_or(dir);
    if owner.is_empty() || name.is_empty() {
        return Err(format!(
            "cannot tell owner and repository from the url path `/{path}`; set create_owner"
        ));
    }
    Ok((owner.to_string(), name.to_string()))
}

/// Path-segment escaping (everything but unreserved characters), as GitLab wants a project or
/// namespace path in one segment.
pub fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The creation request. `user` is the token's own login (GitHub, Gitea: a repository of the
/// token's user goes to `/user/repos`, one of an organisation to `/orgs/{org}/repos`);
/// `namespace_id` is GitLab's id of the owner path.
pub fn plan_create(
    forge: Forge,
    api: &str,
    owner: &str,
    name: &str,
    visibility: Visibility,
    user: Option<&str>,
    namespace_id: Option<u64>,
) -> Call {
    let private = visibility != Visibility::Public;
    match forge {
        Forge::Github | Forge::Gitea => {
            let url = if user == Some(owner) {
                format!("{api}/user/repos")
            } else {
                format!("{api}/orgs/{}/repos", encode(owner))
            };
            let mut body = json!({"name": name, "private": private});
            if forge == Forge::Github && visibility == Visibility::Internal {
                body["visibility"] = json!("internal");
            }
            Call {
                method: "POST",
                url,
                body: Some(body),
            }
        }
        Forge::Gitlab => Call {
            method: "POST",
            url: format!("{api}/projects"),
            body: Some(json!({
                "name": name,
                "path": name,
                "namespace_id": namespace_id,
                "visibility": match visibility {
                    Visibility::Private => "private",
                    Visibility::Internal => "internal",
                    Visibility::Public => "public",
                },
            })),
        },
    }
}

/// The deletion request of `owner/name`.
pub fn plan_delete(forge: Forge, api: &str, owner: &str, name: &str) -> Call {
    let url = match forge {
        Forge::Github => format!("{api}/repos/{}/{}", encode(owner), encode(name)),
        Forge::Gitea => format!("{api}/repos/{}/{}", encode(owner), encode(name)),
        Forge::Gitlab => format!("{api}/projects/{}", encode(&format!("{owner}/{name}"))),
    };
    Call {
        method: "DELETE",
        url,
        body: None,
    }
}

/// How long to wait before retrying a refused request, when the forge said it is a rate limit
/// (429, or 403 with `Retry-After` or an exhausted `X-RateLimit-Remaining`); None when the
/// refusal is not one waiting cures. Capped at `cap`.
pub fn retry_after(
    status: u16,
    retry_after: Option<&str>,
    remaining: Option<&str>,
    reset_epoch: Option<&str>,
    now_epoch: u64,
    cap: Duration,
) -> Option<Duration> {
    if status != 429 && status != 403 {
        return None;
    }
    let secs = if let Some(s) = retry_after.and_then(|v| v.trim().parse::<u64>().ok()) {
        Some(s)
    } else if remaining.map(str::trim) == Some("0") {
        reset_epoch
            .and_then(|r| r.trim().parse::<u64>().ok())
            .map(|r| r.saturating_sub(now_epoch))
    } else if status == 429 {
        Some(1)
    } else {
        None
    }?;
    Some(Duration::from_secs(secs.max(1)).min(cap))
}

/// Creates the mirror's repository on its forge; returns what it did, in words.
pub fn create(t: &ForgeTarget<'_>) -> Result<Made, String> {
    let api = api_base(t.forge, t.url, t.forge_api)?;
    let which = format!("{} API {}", t.forge.as_str(), crate::url::show_href(&api));
    if !api_allowed(t.url, &api) {
        return Err(format!(
            "create_missing: the {which} is not on the mirror's own host, so the mirror's token is not sent there; use the mirror's origin in forge_api"
        ));
    }
    let token = t.token.ok_or_else(|| {
        format!("create_missing: the {which} needs the mirror's token (auth.method: password with the token as password)")
    })?;
    let (owner, name) =
        owner_and_name(t.url, t.owner).map_err(|e| format!("create_missing: {e}"))?;
    let agent = crate::mirror::lfs::client::agent(t.ca_file, t.proxy, t.timeout)
        .map_err(|e| format!("create_missing: {e}"))?;
    let client = Api {
        agent,
        forge: t.forge,
        token,
        which: &which,
        cap: t.timeout,
    };
    // One creation at a time per API host, across every flusher of this server.
    let _lock = host_lock(t.runtime_dir, &api)?;
    let call = match t.forge {
        Forge::Github | Forge::Gitea => {
            let me = client.send(&Call {
                method: "GET",
                url: format!("{api}/user"),
                body: None,
            })?;
            let login = me["login"].as_str().map(str::to_string);
            plan_create(
                t.forge,
                &api,
                &owner,
                &name,
                t.visibility,
                login.as_deref(),
                None,
            )
        }
        Forge::Gitlab => {
            let ns = client.send(&Call {
                method: "GET",
                url: format!("{api}/namespaces/{}", encode(&owner)),
                body: None,
            })?;
            let id = ns["id"].as_u64().ok_or_else(|| {
                format!("create_missing: the {which} gave no id for the namespace `{owner}`")
            })?;
            plan_create(t.forge, &api, &owner, &name, t.visibility, None, Some(id))
        }
    };
    if client.send(&call)?[EXISTS_ALREADY] == true {
        // Made by someone else meanwhile (another flusher, a person): not ours, so never
        // recorded for propagate_deletion; the sync pushes into it.
        return Ok(Made::Existed(format!(
            "{owner}/{name} exists already on the {which} (not created by us)"
        )));
    }
    Ok(Made::Created(format!(
        "created {owner}/{name} ({}) through the {which}",
        match t.visibility {
            Visibility::Private => "private",
            Visibility::Internal => "internal",
            Visibility::Public => "public",
        }
    )))
}

/// What a creation came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Made {
    /// Created by us (recorded for `propagate_deletion`), in words.
    Created(String),
    /// The forge says it exists already (a creation that raced ours): pushed into, not ours.
    Existed(String),
}

/// The key `send` answers a creation refused as "already exists" with.
const EXISTS_ALREADY: &str = "pushmirror_exists_already";

/// Whether a refused creation says the repository exists already: GitHub's 422 "name already
/// exists on this account", Gitea's/Forgejo's 409 "... already exists", GitLab's 400 "has
/// already been taken". Pure.
pub fn already_exists(code: u16, body: &str) -> bool {
    let b = body.to_ascii_lowercase();
    matches!(code, 400 | 409 | 422)
        && (b.contains("already exists") || b.contains("has already been taken"))
}

/// Deletes `owner/name` (the mirror of `t`) on its forge.
pub fn delete(t: &ForgeTarget<'_>) -> Result<String, String> {
    let api = api_base(t.forge, t.url, t.forge_api)?;
    let which = format!("{} API {}", t.forge.as_str(), crate::url::show_href(&api));
    if !api_allowed(t.url, &api) {
        return Err(format!(
            "the {which} is not on the mirror's own host; nothing deleted"
        ));
    }
    let token = t
        .token
        .ok_or_else(|| format!("the {which} needs the mirror's token; nothing deleted"))?;
    let (owner, name) = owner_and_name(t.url, t.owner)?;
    let agent = crate::mirror::lfs::client::agent(t.ca_file, t.proxy, t.timeout)?;
    let client = Api {
        agent,
        forge: t.forge,
        token,
        which: &which,
        cap: t.timeout,
    };
    let _lock = host_lock(t.runtime_dir, &api)?;
    client
        .send(&plan_delete(t.forge, &api, &owner, &name))
        .map_err(|e| e.trim_start_matches("create_missing: ").to_string())?;
    Ok(format!("deleted {owner}/{name} through the {which}"))
}

struct Api<'a> {
    agent: ureq::Agent,
    forge: Forge,
    token: &'a str,
    which: &'a str,
    cap: Duration,
}

impl Api<'_> {
    /// Sends `call` with the forge's token header; waits out a rate limit at most 3 times.
    fn send(&self, call: &Call) -> Result<Value, String> {
        const RETRIES: u32 = 3;
        let mut tries = 0;
        loop {
            tries += 1;
            let mut req = self
                .agent
                .request(call.method, &call.url)
                .set("Accept", "application/json");
            req = match self.forge {
                Forge::Github => req
                    .set("Authorization", &format!("Bearer {}", self.token))
                    .set("X-GitHub-Api-Version", "2022-11-28"),
                Forge::Gitlab => req.set("PRIVATE-TOKEN", self.token),
                Forge::Gitea => req.set("Authorization", &format!("token {}", self.token)),
            };
            let res = match &call.body {
                Some(b) => req
                    .set("Content-Type", "application/json")
                    .send_string(&b.to_string()),
                None => req.call(),
            };
            let what = format!(
                "create_missing: {} {} on the {}",
                call.method,
                crate::url::show_href(&call.url),
                self.which
            );
            match res {
                Ok(resp) => {
                    let text = resp.into_string().unwrap_or_default();
                    return Ok(serde_json::from_str(&text).unwrap_or(Value::Null));
                }
                Err(ureq::Error::Status(code, resp))
                    if call.method == "POST" && matches!(code, 400 | 409 | 422) =>
                {
                    use std::io::Read;
                    let mut raw = Vec::new();
                    let _ = resp.into_reader().take(64 * 1024).read_to_end(&mut raw);
                    let body = String::from_utf8_lossy(&raw);
                    if already_exists(code, &body) {
                        return Ok(json!({ EXISTS_ALREADY: true }));
                    }
                    return Err(format!(
                        "{what}: HTTP {code}{}{}",
                        crate::mirror::lfs::client::server_message(&body),
                        hint(code)
                    ));
                }
                Err(ureq::Error::Status(code, resp)) => {
                    let now = crate::time::now_ms() / 1000;
                    let wait = retry_after(
                        code,
                        resp.header("Retry-After"),
                        resp.header("X-RateLimit-Remaining")
                            .or(resp.header("RateLimit-Remaining")),
                        resp.header("X-RateLimit-Reset")
                            .or(resp.header("RateLimit-Reset")),
                        now,
                        self.cap,
                    );
                    if let Some(w) = wait.filter(|_| tries <= RETRIES) {
                        log::warn!("{what}: HTTP {code}, rate limited; retrying in {w:?}");
                        std::thread::sleep(w);
                        continue;
                    }
                    let (_, msg) =
                        crate::mirror::lfs::client::describe(ureq::Error::Status(code, resp));
                    return Err(format!("{what}: {msg}{}", hint(code)));
                }
                Err(e) => {
                    let (_, msg) = crate::mirror::lfs::client::describe(e);
                    return Err(format!("{what}: {msg}"));
                }
            }
        }
    }
}

/// What to do about a refused request.
fn hint(code: u16) -> &'static str {
    match code {
        401 => " (the token was refused: check the mirror's password/token)",
        403 => " (the token may not create repositories there: give it the repo/api scope, or create the repository by hand)",
        404 => " (no such owner, or the token cannot see it: check create_owner)",
        409 | 422 => " (check the name and create_owner, or create the repository by hand)",
        429 => " (rate limited; the next retry waits longer)",
        300..=399 => " (a redirect: give the final API url in forge_api)",
        _ => "",
    }
}

/// An exclusive lock on `<runtime>/forge-<host>.lock` for the API host of `api`, held while
/// the guard lives.
fn host_lock(runtime_dir: &Path, api: &str) -> Result<std::fs::File, String> {
    use fs2::FileExt;
    let host = Origin::parse(api)
        .map(|(o, _)| format!("{}-{}", o.host, o.port))
        .unwrap_or_else(|| "unknown".into());
    let safe: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    crate::paths::ensure_runtime_dir(runtime_dir)
        .map_err(|e| format!("create_missing: runtime dir {}: {e}", runtime_dir.display()))?;
    let path = runtime_dir.join(format!("forge-{safe}.lock"));
    let f = crate::paths::open_private(&path, false)
        .map_err(|e| format!("create_missing: {}: {e}", path.display()))?;
    f.lock_exclusive()
        .map_err(|e| format!("create_missing: {}: {e}", path.display()))?;
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn already_exists_answers_are_told_from_other_refusals() {
        let yes = [
            (
                422,
                r#"{"message":"Repository creation failed.","errors":[{"resource":"Repository","code":"custom","field":"name","message":"name already exists on this account"}]}"#,
            ),
            (
                409,
                r#"{"message":"The repository with the same name already exists."}"#,
            ),
            (
                400,
                r#"{"message":{"name":["has already been taken"],"path":["has already been taken"]}}"#,
            ),
        ];
        for (code, body) in yes {
            assert!(already_exists(code, body), "{code} {body}");
        }
        let no = [
            (
                422,
                r#"{"message":"Validation Failed","errors":[{"field":"name","code":"invalid"}]}"#,
            ),
            (400, r#"{"message":{"path":["can contain only letters"]}}"#),
            (403, "already exists"),
            (404, r#"{"message":"Not Found"}"#),
            (409, ""),
        ];
        for (code, body) in no {
            assert!(!already_exists(code, body), "{code} {body}");
        }
    }

    #[test]
    fn api_bases_and_where_the_token_may_go() {
        let cases = [
            (
                Forge::Github,
                "https://github.com/acme/app.git",
                "https://api.github.com",
            ),
            (
                Forge::Github,
                "https://ghe.example.com/acme/app.git",
                "https://ghe.example.com/api/v3",
            ),
            (
                Forge::Gitlab,
                "https://gitlab.example.com:8443/g/sub/app.git",
                "https://gitlab.example.com:8443/api/v4",
            ),
            (
                Forge::Gitea,
                "https://code.example.com/acme/app",
                "https://code.example.com/api/v1",
            ),
        ];
        for (forge, url, want) in cases {
            let api = api_base(forge, url, None).unwrap();
            assert_eq!(api, want);
            assert!(api_allowed(url, &api), "{url} {api}");
        }
        assert_eq!(
            api_base(
                Forge::Gitea,
                "https://h/a/b",
                Some("https://h:8443/api/v1/")
            )
            .unwrap(),
            "https://h:8443/api/v1"
        );
        for (url, api) in [
            ("https://h/a/b.git", "https://h:8443/api/v1"),
            ("https://h/a/b.git", "http://h/api/v1"),
            ("https://h/a/b.git", "https://evil/api/v1"),
            ("https://ghe.example.com/a/b.git", "https://api.github.com"),
            ("https://github.com/a/b.git", "https://api.github.com.evil/"),
        ] {
            assert!(!api_allowed(url, api), "{url} {api}");
        }
    }

    #[test]
    fn owners_names_and_requests() {
        assert_eq!(
            owner_and_name("https://h/g/sub/app.git", None).unwrap(),
            ("g/sub".into(), "app".into())
        );
        assert_eq!(
            owner_and_name("https://h/git/acme/app.git", Some("acme")).unwrap(),
            ("acme".into(), "app".into())
        );
        assert!(owner_and_name("https://h/app.git", None).is_err());
        // create_owner never redirects the creation or deletion to another repository.
        for (url, owner) in [
            ("https://h/org/team/app.git", "org"),
            ("https://h/other/app.git", "org"),
            ("https://h/xorg/app.git", "org"),
            ("https://h/app.git", "org"),
        ] {
            assert!(owner_and_name(url, Some(owner)).is_err(), "{url} {owner}");
        }
        assert_eq!(
            owner_and_name("https://h/gitlab/grp/sub/app.git", Some("grp/sub")).unwrap(),
            ("grp/sub".to_string(), "app".to_string())
        );
        assert!(owner_and_name("https://h/Org/app.git", Some("org")).is_ok());
        assert_eq!(
            plan_delete(Forge::Gitlab, "https://h/api/v4", "g/sub", "app").url,
            "https://h/api/v4/projects/g%2Fsub%2Fapp"
        );
        assert_eq!(
            plan_delete(Forge::Gitea, "https://h/api/v1", "acme", "app").url,
            "https://h/api/v1/repos/acme/app"
        );
        let api = "https://h/api/v3";
        let c = plan_create(
            Forge::Github,
            api,
            "me",
            "app",
            Visibility::Private,
            Some("me"),
            None,
        );
        assert_eq!(c.url, "https://h/api/v3/user/repos");
        assert_eq!(c.body, Some(json!({"name": "app", "private": true})));
        let c = plan_create(
            Forge::Gitea,
            api,
            "acme",
            "app",
            Visibility::Public,
            Some("me"),
            None,
        );
        assert_eq!(c.url, "https://h/api/v3/orgs/acme/repos");
        assert_eq!(c.body, Some(json!({"name": "app", "private": false})));
        let c = plan_create(
            Forge::Gitlab,
            api,
            "g/sub",
            "app",
            Visibility::Internal,
            None,
            Some(7),
        );
        assert_eq!(c.url, "https://h/api/v3/projects");
        assert_eq!(
            c.body,
            Some(
                json!({"name": "app", "path": "app", "namespace_id": 7, "visibility": "internal"})
            )
        );
    }

    #[test]
    fn creations_are_serialised_per_api_host() {
        use fs2::FileExt;
        let tmp = tempfile::tempdir().unwrap();
        let run = tmp.path().join("run");
        let held = host_lock(&run, "https://h.example:8443/api/v1").unwrap();
        let same = std::fs::File::open(run.join("forge-h.example-8443.lock")).unwrap();
        assert!(same.try_lock_exclusive().is_err());
        let other = host_lock(&run, "https://other.example/api/v4").unwrap();
        drop(held);
        assert!(same.try_lock_exclusive().is_ok());
        drop(other);
    }

    #[test]
    fn rate_limits_are_waited_out_other_refusals_are_not() {
        let cap = Duration::from_secs(60);
        let s = |d: u64| Some(Duration::from_secs(d));
        assert_eq!(retry_after(429, Some("7"), None, None, 0, cap), s(7));
        assert_eq!(retry_after(429, None, None, None, 0, cap), s(1));
        assert_eq!(retry_after(403, Some("3"), None, None, 0, cap), s(3));
        assert_eq!(
            retry_after(403, None, Some("0"), Some("1010"), 1000, cap),
            s(10)
        );
        assert_eq!(retry_after(429, Some("86400"), None, None, 0, cap), s(60));
        assert_eq!(retry_after(403, None, Some("12"), None, 0, cap), None);
        assert_eq!(retry_after(403, None, None, None, 0, cap), None);
        assert_eq!(retry_after(404, Some("3"), None, None, 0, cap), None);
    }
}
