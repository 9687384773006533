//! TEMPORARY stand-in until the real module lands (same API).
use std::path::{Path, PathBuf};
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(tag = "method", rename_all = "snake_case", deny_unknown_fields)]
pub enum Auth {
    #[default]
    None,
    Password { username: String, #[serde(default)] password: Option<String>, #[serde(default)] password_file: Option<PathBuf>, #[serde(default)] password_env: Option<String> },
    SshKey { key_file: PathBuf, #[serde(default)] known_hosts: Option<PathBuf>, #[serde(default)] host_key: Option<String> },
}
#[derive(Debug, thiserror::Error)]
pub enum AuthError { #[error("unsupported")] Unsupported }
pub struct GitAuth { pub env: Vec<(String, String)>, pub secrets: Vec<String>, pub temp_files: Vec<PathBuf> }
pub fn prepare(auth: &Auth, _c: &Path, _a: &Path, _r: &Path, _t: u64) -> Result<GitAuth, AuthError> {
    match auth { Auth::None => Ok(GitAuth { env: vec![], secrets: vec![], temp_files: vec![] }), _ => Err(AuthError::Unsupported) }
}
pub fn askpass_answer(_p: &str, _e: &dyn Fn(&str) -> Option<String>) -> Option<String> { None }
pub fn base_env(_h: bool, _t: u64) -> (Vec<(String, String)>, Vec<String>) {
    (vec![("GIT_TERMINAL_PROMPT".into(), "0".into()), ("GIT_ALLOW_PROTOCOL".into(), "https:ssh:git:file".into())], vec![])
}
