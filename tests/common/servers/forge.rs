//! A stand-in forge for the `create_missing` tests: no real GitHub, GitLab or Gitea can be
//! installed here, so a small Python server implements exactly the documented endpoints a
//! creation and a deletion use, with their documented success and error shapes, behind
//! HttpsServer's nginx (TLS with the test CA; git itself under /git/ with basic auth):
//! - GitHub (`/api/v3`, `Authorization: Bearer TOKEN`): `GET /user`, `POST /user/repos`,
//!   `POST /orgs/{org}/repos` (201; 422 when it exists), `DELETE /repos/{owner}/{repo}` (204);
//! - GitLab (`/api/v4`, `PRIVATE-TOKEN: TOKEN`): `GET /namespaces/{url-encoded path}`,
//!   `POST /projects` (201; 400 "has already been taken"), `DELETE /projects/{url-encoded
//!   path}` (202);
//! - Gitea/Forgejo (`/api/v1`, `Authorization: token TOKEN`): `GET /user`,
//!   `POST /user/repos`, `POST /orgs/{org}/repos` (201; 409 when it exists),
//!   `DELETE /repos/{owner}/{repo}` (204).
//!
//! A wrong or missing token gets 401. A created repository is a real bare repository under the
//! root git-http-backend serves, so the sync's push lands in it. Every request is logged as
//! one JSON line (method, path, the token headers, body) to `requests()`. `rate_limit(n)`
//! makes the next n creations answer 429 (GitHub: 403) with `Retry-After: 1`; `race()` makes
//! the next creation lose a race (the repository appears, the answer is "already exists").

use super::*;

const FORGE_PY: &str = r#"
import json, os, shutil, subprocess, sys, threading
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
from urllib.parse import unquote

ROOT, TOKEN, LOG, LIMIT, PORT = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
LOGIN = "mirror"
lock = threading.Lock()
namespaces = {}

def limited():
    with lock:
        try:
            n = int(open(LIMIT).read().strip() or "0")
        except FileNotFoundError:
            return False
        if n <= 0:
            return False
        open(LIMIT, "w").write(str(n - 1))
        return True

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a):
        pass
    def reply(self, code, obj=None, headers=()):
        body = b"" if obj is None else json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def create(self, owner, name, exists_code, exists_body):
        d = os.path.join(ROOT, owner, name + ".git")
        if os.path.exists(LIMIT + "-race"):
            # Someone else creates it just before us (see race()).
            os.remove(LIMIT + "-race")
            subprocess.run(["git", "init", "-q", "--bare", "-b", "main", d], check=True)
        if os.path.exists(d):
            return self.reply(exists_code, exists_body)
        subprocess.run(["git", "init", "-q", "--bare", "-b", "main", d], check=True)
        self.reply(201, {"full_name": owner + "/" + name, "name": name})
    def delete(self, owner, name, code, body=None):
        d = os.path.join(ROOT, owner, name + ".git")
        if not os.path.isdir(d):
            return self.reply(404, {"message": "Not Found"})
        shutil.rmtree(d)
        self.reply(code, body)
    def any(self, method):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        body = json.loads(raw) if raw else None
        auth = self.headers.get("Authorization")
        pt = self.headers.get("PRIVATE-TOKEN")
        with lock:
            with open(LOG, "a") as f:
                f.write(json.dumps({"method": method, "path": self.path, "authorization": auth,
                                    "private_token": pt, "body": body}) + "\n")
        p = self.path.split("?")[0]
        if p.startswith("/api/v3/"):
            if auth != "Bearer " + TOKEN:
                return self.reply(401, {"message": "Bad credentials"})
            rest, exists = p[len("/api/v3"):], (422, {"message": "Repository creation failed.",
                "errors": [{"resource": "Repository", "code": "custom", "field": "name",
                            "message": "name already exists on this account"}]})
            forge = "github"
        elif p.startswith("/api/v1/"):
            if auth != "token " + TOKEN:
                return self.reply(401, {"message": "token is required"})
            rest, exists = p[len("/api/v1"):], (409, {"message": "The repository with the same name already exists."})
            forge = "gitea"
        elif p.startswith("/api/v4/"):
            if pt != TOKEN:
                return self.reply(401, {"message": "401 Unauthorized"})
            rest = p[len("/api/v4"):]
            forge = "gitlab"
        else:
            return self.reply(404, {"message": "Not Found"})
        parts = rest.strip("/").split("/")
        if forge in ("github", "gitea"):
            if method == "GET" and rest == "/user":
                return self.reply(200, {"login": LOGIN, "id": 1})
            if method == "POST" and (rest == "/user/repos" or (len(parts) == 3 and parts[0] == "orgs" and parts[2] == "repos")):
                if limited():
                    return self.reply(403 if forge == "github" else 429,
                                      {"message": "You have exceeded a secondary rate limit."},
                                      [("Retry-After", "1")])
                owner = LOGIN if rest == "/user/repos" else unquote(parts[1])
                return self.create(owner, body["name"], *exists)
            if method == "DELETE" and len(parts) == 3 and parts[0] == "repos":
                return self.delete(unquote(parts[1]), unquote(parts[2]), 204)
        else:
            if method == "GET" and len(parts) == 2 and parts[0] == "namespaces":
                path = unquote(parts[1])
                with lock:
                    nid = namespaces.setdefault(path, len(namespaces) + 10)
                return self.reply(200, {"id": nid, "full_path": path, "kind": "group"})
            if method == "POST" and rest == "/projects":
                if limited():
                    return self.reply(429, {"message": "Retry later"}, [("Retry-After", "1")])
                path = {v: k for k, v in namespaces.items()}.get(body.get("namespace_id"))
                if path is None:
                    return self.reply(404, {"message": "404 Namespace Not Found"})
                return self.create(path, body["path"], 400,
                                   {"message": {"name": ["has already been taken"], "path": ["has already been taken"]}})
            if method == "DELETE" and len(parts) == 2 and parts[0] == "projects":
                owner, _, name = unquote(parts[1]).rpartition("/")
                return self.delete(owner, name, 202, {"message": "202 Accepted"})
        self.reply(404, {"message": "Not Found"})
    def do_GET(self): self.any("GET")
    def do_POST(self): self.any("POST")
    def do_DELETE(self): self.any("DELETE")

srv = ThreadingHTTPServer(("127.0.0.1", PORT), H)
print("forge listening", flush=True)
srv.serve_forever()
"#;

pub struct ForgeServer {
    /// nginx: git-http-backend under /git/ (basic auth), the stand-in API under /api/.
    pub https: HttpsServer,
    pub token: String,
    forge: Proc,
    dir: TempDir,
}

impl ForgeServer {
    pub const REQUIRES: &'static [&'static str] =
        &["git", "openssl", "nginx", "fcgiwrap", "python3"];

    /// The stand-in forge for the repositories under `root`; git over HTTPS takes `user` with
    /// `token` as its password, as the forges take a token.
    pub fn start(root: &Path, user: &str, token: &str) -> ForgeServer {
        let root = absolute_dir(root);
        let dir = tempdir("pm-forge-");
        let d = dir.path().to_path_buf();
        write_file(&d.join("forge.py"), FORGE_PY, 0o600);
        let python = program("python3");
        let (port, forge) = start_with_retries("stand-in forge", |port| {
            let mut cmd = Command::new(&python);
            cmd.arg(d.join("forge.py"))
                .arg(&root)
                .arg(token)
                .arg(d.join("requests.jsonl"))
                .arg(d.join("rate-limit"))
                .arg(port.to_string())
                .current_dir(&d);
            let mut proc = Proc::spawn("forge", cmd, vec![d.join("forge.log")]);
            proc.wait_ready(port, |p| p.log_contains("forge listening"))
                .map_err(|e| {
                    if e.contains("Address already in use") {
                        format!("in use: {e}")
                    } else {
                        e
                    }
                })?;
            Ok((port, proc))
        });
        let extra = format!(
            r#"location /api/ {{
            proxy_pass http://127.0.0.1:{port};
            proxy_http_version 1.1;
            proxy_set_header Host $http_host;
        }}"#
        );
        let https = HttpsServer::start_with(&root, user, token, &extra);
        ForgeServer {
            https,
            token: token.to_string(),
            forge,
            dir,
        }
    }

    /// The API base of `forge` (`github`, `gitlab`, `gitea`) on this server.
    pub fn api(&self, forge: &str) -> String {
        let v = match forge {
            "github" => "v3",
            "gitlab" => "v4",
            _ => "v1",
        };
        format!("https://127.0.0.1:{}/api/{v}", self.https.port)
    }

    /// Every request the API got, in order.
    pub fn requests(&self) -> Vec<serde_json::Value> {
        fs::read_to_string(self.dir.path().join("requests.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("request log line"))
            .collect()
    }

    /// The next `n` creations are refused as rate limited, with `Retry-After: 1`.
    pub fn rate_limit(&self, n: u32) {
        write_file(&self.dir.path().join("rate-limit"), &n.to_string(), 0o600);
    }

    /// The next creation finds that someone else created the repository just before it: the
    /// repository is made, and the creation is answered with the forge's "already exists".
    pub fn race(&self) {
        write_file(&self.dir.path().join("rate-limit-race"), "1", 0o600);
    }

    pub fn log(&self) -> String {
        format!("{}{}", self.forge.log(), self.https.log())
    }
}
