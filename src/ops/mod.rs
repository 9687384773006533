//! Operating a fleet: what an administrator of a server with thousands of repositories needs
//! besides the per-repository CLI. `fleet` reads every repository's mirroring state under a root
//! (files only: no process, no lock, no git per repository), `metrics` renders it in the
//! Prometheus text exposition format, and `notify` runs the administrator's command when a
//! mirror changes state.

pub mod created;
pub mod fleet;
pub mod metrics;
pub mod notify;
