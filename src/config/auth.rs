//! `auth:` of a mirror as the config holds it. The network side (`mirror::auth`) turns it into
//! what git needs; it lives here so that loading the config does not depend on that side.

use std::fmt;
use std::path::PathBuf;

const MASK: &str = "*****";

/// How a mirror authenticates. `Debug` hides the inline password so a logged config is safe.
#[derive(Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(
    tag = "method",
    rename_all = "snake_case",
    deny_unknown_fields,
    from = "AuthRepr"
)]
pub enum Auth {
    #[default]
    None,
    Password {
        username: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        password: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        password_file: Option<PathBuf>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        password_env: Option<String>,
    },
    SshKey {
        key_file: PathBuf,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        known_hosts: Option<PathBuf>,
        /// A pinned "ssh-ed25519 AAAA..." line.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        host_key: Option<String>,
    },
}

/// What `Auth` is read through. serde lets a unit variant of an internally tagged enum
/// swallow any other keys, so `method: none` next to a forgotten `password:` would be
/// accepted silently; an empty struct variant with `deny_unknown_fields` refuses it.
#[derive(serde::Deserialize)]
#[serde(tag = "method", rename_all = "snake_case", deny_unknown_fields)]
enum AuthRepr {
    None {},
    Password {
        username: String,
        #[serde(default)]
        password: Option<String>,
        #[serde(default)]
        password_file: Option<PathBuf>,
        #[serde(default)]
        password_env: Option<String>,
    },
    SshKey {
        key_file: PathBuf,
        #[serde(default)]
        known_hosts: Option<PathBuf>,
        #[serde(default)]
        host_key: Option<String>,
    },
}

impl From<AuthRepr> for Auth {
    fn from(repr: AuthRepr) -> Self {
        match repr {
            AuthRepr::None {} => Auth::None,
            AuthRepr::Password {
                username,
                password,
                password_file,
                password_env,
            } => Auth::Password {
                username,
                password,
                password_file,
                password_env,
            },
            AuthRepr::SshKey {
                key_file,
                known_hosts,
                host_key,
            } => Auth::SshKey {
                key_file,
                known_hosts,
                host_key,
            },
        }
    }
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::None => f.write_str("None"),
            Auth::Password {
                username,
                password,
                password_file,
                password_env,
            } => f
                .debug_struct("Password")
                .field("username", username)
                .field("password", &password.as_ref().map(|_| MASK))
                .field("password_file", password_file)
                .field("password_env", password_env)
                .finish(),
            Auth::SshKey {
                key_file,
                known_hosts,
                host_key,
            } => f
                .debug_struct("SshKey")
                .field("key_file", key_file)
                .field("known_hosts", known_hosts)
                .field("host_key", host_key)
                .finish(),
        }
    }
}
