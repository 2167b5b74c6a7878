//! Router operations the engine asks for. They are stored in the `jobs` table in the same
//! transaction as the decision and carried out (and retried) by a router backend.
//!
//! Jobs name a *target* and carry little: a worker reads the desired state from the store when it
//! runs, so a pending job for the same target is replaced rather than queued twice.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Job {
    /// Make the router's hotspot user match ours (create, update limits, enable or disable).
    SyncUser { username: String },
    /// Remove every active session and cookie of the user on the router, then confirm.
    DisconnectUser { username: String, reason: String },
    /// Log a device in on the router after a purchase.
    LoginDevice {
        username: String,
        mac: String,
        ip: Option<String>,
    },
    /// Make the router's hotspot user profile for a plan match it.
    SyncPlan { plan: String },
}

impl Job {
    pub fn kind(&self) -> &'static str {
        match self {
            Job::SyncUser { .. } => "sync-user",
            Job::DisconnectUser { .. } => "disconnect-user",
            Job::LoginDevice { .. } => "login-device",
            Job::SyncPlan { .. } => "sync-plan",
        }
    }
    pub fn target(&self) -> String {
        match self {
            Job::SyncUser { username }
            | Job::DisconnectUser { username, .. }
            | Job::LoginDevice { username, .. } => username.clone(),
            Job::SyncPlan { plan } => plan.clone(),
        }
    }
}
