//! The `notify:` setting (what `ops::notify` runs when a mirror changes state).

use serde::{Deserialize, Serialize};

use super::Dur;

/// `notify:` in the server file or a repository's config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// A shell command (`/bin/sh -c`); empty turns notifications off (a repository can so opt
    /// out of the server's command).
    pub command: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Dur>,
}
