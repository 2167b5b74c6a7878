//! What a NAS (the router that enforces access) must do for hotspot-edge. The enforcer speaks
//! only to this trait; RouterOS (`routeros::backend`), RADIUS NASes (Disconnect-Request,
//! `radius::disconnect`) and openNDS (`ndsctl`, `opennds`) implement it. Implementations know *how*;
//! the engine and the enforcer decide *when*.

use std::collections::{HashMap, HashSet};
use std::future::Future;

use NasError as E;

/// Why a NAS call failed. The text names the NAS's own command (`/ip/hotspot/user/add`,
/// `ndsctl auth`, `Disconnect-Request`), so an operator knows which NAS said it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NasError {
    #[error("NAS unreachable: {0}")]
    Unreachable(String),
    #[error("NAS went silent on {command} for {ms} ms")]
    Timeout { command: String, ms: u64 },
    #[error("NAS refused {command}: {message}")]
    Trap { command: String, message: String },
    #[error("NAS closed the session (!fatal {0})")]
    Fatal(String),
    #[error("NAS login refused for {user}: {message}")]
    Login { user: String, message: String },
    #[error("{0}")]
    Unconfirmed(String),
}

impl NasError {
    /// Errors that mean the connection is gone or stuck: rebuild it, and do not count the
    /// attempt against a job (the NAS did not say no).
    pub fn is_link(&self) -> bool {
        matches!(
            self,
            NasError::Unreachable(_) | NasError::Timeout { .. } | NasError::Fatal(_)
        )
    }
}

/// A hotspot user as it should be on the router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredUser {
    pub name: String,
    pub password: String,
    pub profile: String,
    pub disabled: bool,
    /// Milliseconds of connected time the NAS may allow by itself (time left plus the safety
    /// margin), or none for unlimited. A safety net behind our own timer.
    pub limit_uptime_ms: Option<i64>,
    pub limit_bytes_total: Option<u64>,
    pub mac: Option<String>,
}

/// A hotspot user profile for one plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredProfile {
    pub name: String,
    pub rate_limit: Option<String>,
    pub shared_users: u32,
}

/// One row of `/ip/hotspot/active`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveSession {
    pub id: String,
    pub user: String,
    pub server: String,
    pub mac: Option<String>,
    pub address: Option<String>,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// A device at the NAS's portal, not logged in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitingDevice {
    pub mac: String,
    pub ip: Option<String>,
}

/// What the router says about itself.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Health {
    pub identity: String,
    pub version: String,
    pub board: String,
    pub cpu_load: Option<u32>,
    pub free_memory: Option<u64>,
    pub total_memory: Option<u64>,
    pub uptime: Option<String>,
}

/// What the NAS link says about itself (the heartbeat's and `status`'s `router` block), the
/// same shape whichever NAS runs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct NasStatus {
    /// `routeros`, `opennds` or `radius`.
    pub kind: &'static str,
    /// Whether the last call reached it; none where there is no connection to speak of
    /// (RADIUS NASes are reached over UDP, packet by packet).
    pub reachable: Option<bool>,
    pub health: Option<Health>,
    pub last_error: Option<String>,
    /// How many times the link came (back) up.
    pub reconnects: u64,
}

pub trait Nas: Send + Sync {
    /// One user profile per plan (rate limit, devices), marked as ours.
    fn ensure_profile(&self, p: &DesiredProfile) -> impl Future<Output = Result<(), E>> + Send;
    /// Create or update a user (password, profile, limits as a safety net, MAC, enabled).
    fn upsert_user(&self, u: &DesiredUser) -> impl Future<Output = Result<(), E>> + Send;
    /// Remove a user we manage; true when it was there.
    fn remove_user(&self, name: &str) -> impl Future<Output = Result<bool, E>> + Send;
    /// Remove what would log the user back in by itself (RouterOS MAC cookies).
    fn remove_cookies(&self, user: &str) -> impl Future<Output = Result<usize, E>> + Send;
    /// Log every device of the user out and confirm none is left.
    fn disconnect(&self, user: &str) -> impl Future<Output = Result<usize, E>> + Send;
    /// The same for many users at once (an expiry burst); per user: sessions and cookies removed.
    fn bulk_disconnect(
        &self,
        users: &HashSet<String>,
        disable: &HashSet<String>,
    ) -> impl Future<Output = Result<HashMap<String, (u32, u32)>, E>> + Send;
    /// Log one session out by the NAS's id.
    fn kick(&self, session_id: &str) -> impl Future<Output = Result<(), E>> + Send;
    /// Active sessions with their counters.
    fn active(
        &self,
        server: Option<&str>,
    ) -> impl Future<Output = Result<Vec<ActiveSession>, E>> + Send;
    /// Log a device in after a payment.
    fn login(
        &self,
        user: &str,
        password: &str,
        mac: &str,
        ip: Option<&str>,
    ) -> impl Future<Output = Result<(), E>> + Send;
    fn health(&self) -> impl Future<Output = Result<Health, E>> + Send;
    /// Devices the last [`Nas::active`] saw at the portal, not logged in: after a NAS restart
    /// or a session it ended by itself, a paid device comes back here. Empty for a NAS that
    /// lets such devices back in itself (RouterOS MAC cookies).
    fn returning_devices(&self) -> Vec<WaitingDevice> {
        Vec::new()
    }
    /// What is wrong with the NAS's own settings for our use, in words an operator acts on
    /// (shown by `status` and the heartbeat).
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }
}

/// How the enforcer reaches its NAS: a RouterOS API connection that may drop and come back, or
/// RADIUS NASes reached over UDP (always "up").
pub trait NasLink: Send + Sync + 'static {
    type Nas: Nas;
    /// Changes after every reconnect (the enforcer then re-reads the NAS).
    fn generation(&self) -> tokio::sync::watch::Receiver<u64>;
    /// The NAS, connected; fails while it is unreachable.
    fn get(&self) -> impl Future<Output = Result<Self::Nas, E>> + Send;
    /// Tells the link that `e` broke it.
    fn broken(&self, e: &E) -> impl Future<Output = ()> + Send;
    /// What the link knows of the NAS now (no call to the NAS is made).
    fn status(&self) -> impl Future<Output = NasStatus> + Send;
}
