//! A real Git LFS server for the tests: giftless (PyPI) with its local storage backend, behind
//! HttpsServer's nginx (TLS + basic auth) at the path git-lfs derives from a repository's URL,
//! `https://127.0.0.1:<port>/git/<repo>.git/info/lfs`. nginx's access log is the server-side
//! record of every batch request and upload.

use super::*;

/// giftless on 127.0.0.1:<port> (werkzeug, threaded), reached only through nginx.
pub struct LfsServer {
    /// nginx: git-http-backend under /git/, and giftless under /git/<repo>.git/info/lfs/.
    pub https: HttpsServer,
    /// Where giftless keeps objects: `<storage>/git/<repo without .git>/<oid>`.
    pub storage: PathBuf,
    giftless: Proc,
    dir: TempDir,
}

const GIFTLESS_CONFIG: &str = "\
AUTH_PROVIDERS:
  - pm_trust_nginx:authenticate
PRE_AUTHORIZED_ACTION_PROVIDER: null
LEGACY_ENDPOINTS: false
TRANSFER_ADAPTERS:
  basic:
    factory: giftless.transfer.basic_streaming:factory
    options:
      storage_class: giftless.storage.local_storage:LocalStorage
      storage_options:
        path: STORAGE
      action_lifetime: 900
MIDDLEWARE:
  - class: werkzeug.middleware.proxy_fix:ProxyFix
    kwargs:
      x_proto: 1
      x_host: 1
";

/// nginx has checked the password by the time a request gets here. (giftless's own
/// `allow_anon:read_write` refuses uploads: it looks permissions up per oid.)
const TRUST_NGINX: &str = "\
from giftless.auth.identity import DefaultIdentity


class Trusted(DefaultIdentity):
    def is_authorized(self, organization, repo, permission, oid=None):
        return True


def authenticate(_request):
    return Trusted(name='nginx-authenticated')
";

impl LfsServer {
    pub const REQUIRES: &'static [&'static str] =
        &["git", "openssl", "nginx", "fcgiwrap", "python3", "git-lfs"];

    /// `lfs_password`: the password the LFS location takes (None: the same as git's), so a
    /// test can have git accepted and LFS refused.
    pub fn start(root: &Path, user: &str, password: &str, lfs_password: Option<&str>) -> LfsServer {
        LfsServer::start_with_proto(root, user, password, lfs_password, "https")
    }

    /// `start`, with nginx telling giftless the scheme clients use is `proto`: "http" makes it
    /// answer batch requests with http:// action hrefs (a proxy that forgot
    /// X-Forwarded-Proto), while it is still reached over https.
    pub fn start_with_proto(
        root: &Path,
        user: &str,
        password: &str,
        lfs_password: Option<&str>,
        proto: &str,
    ) -> LfsServer {
        let dir = tempdir("pm-lfs-");
        let d = dir.path().to_path_buf();
        let storage = d.join("storage");
        fs::create_dir_all(&storage).expect("create giftless storage");
        let conf = d.join("giftless.yaml");
        write_file(
            &conf,
            &GIFTLESS_CONFIG.replace("STORAGE", &storage.display().to_string()),
            0o600,
        );
        write_file(&d.join("pm_trust_nginx.py"), TRUST_NGINX, 0o600);
        let python = program("python3");
        let (gport, giftless) = start_with_retries("giftless", |port| {
            let mut cmd = Command::new(&python);
            cmd.args(["-m", "flask", "--app", "giftless.wsgi_entrypoint", "run"])
                .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                .args(["--no-reload", "--no-debugger", "--with-threads"])
                .env("GIFTLESS_CONFIG_FILE", &conf)
                .env("PYTHONWARNINGS", "ignore")
                .env("PYTHONPATH", &d)
                .current_dir(&d);
            let mut proc = Proc::spawn("giftless", cmd, vec![d.join("giftless.log")]);
            proc.wait_ready(port, |p| p.log_contains("Running on"))
                .map_err(|e| {
                    if e.contains("Address already in use") {
                        format!("in use: {e}")
                    } else {
                        e
                    }
                })?;
            Ok((port, proc))
        });
        let htpasswd = match lfs_password {
            None => "{htpasswd}".to_string(),
            Some(pw) => {
                let hash = run_with_input(
                    Command::new(program("openssl")).args(["passwd", "-apr1", "-stdin"]),
                    "openssl passwd",
                    Some(format!("{pw}\n").as_bytes()),
                );
                let f = d.join("lfs.htpasswd");
                write_file(&f, &format!("{user}:{}\n", hash.trim()), 0o600);
                f.display().to_string()
            }
        };
        let extra = format!(
            r#"location ~ ^/git/.+\.git/info/lfs/ {{
            auth_basic "git-pushmirror test lfs";
            auth_basic_user_file "{htpasswd}";
            proxy_pass http://127.0.0.1:{gport};
            proxy_http_version 1.1;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-Host $http_host;
            proxy_set_header X-Forwarded-Proto {proto};
            proxy_request_buffering off;
            proxy_buffering off;
            proxy_read_timeout 600s;
            proxy_send_timeout 600s;
        }}"#
        );
        let https = HttpsServer::start_with(root, user, password, &extra);
        LfsServer {
            https,
            storage,
            giftless,
            dir,
        }
    }

    /// Requests in nginx's access log whose line contains all of `needles`.
    pub fn requests(&self, needles: &[&str]) -> usize {
        self.https
            .access_log()
            .lines()
            .filter(|l| needles.iter().all(|n| l.contains(n)))
            .count()
    }

    /// Stops (SIGSTOP) or resumes (SIGCONT) giftless: a server that accepts connections and
    /// then never answers.
    pub fn pause(&self, paused: bool) {
        let sig = if paused { "STOP" } else { "CONT" };
        let ok = Command::new("kill")
            .args(["-s", sig, "--"])
            .arg(format!("-{}", self.giftless.pid()))
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -s {sig} giftless failed");
    }

    pub fn log(&self) -> String {
        format!(
            "{}{}\n----- access.log -----\n{}",
            self.giftless.log(),
            self.https.log(),
            self.https.access_log()
        )
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}
