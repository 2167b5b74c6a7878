//! Enforcement on the router: carries out the engine's jobs, reads session counters, and
//! reconciles the router's active list with ours. It decides nothing about money or time; what
//! it learns from the router goes back through the engine as commands.
//!
//! - Job worker: runs due jobs in order (sync a plan's profile, sync a user, disconnect a user
//!   and confirm, log a device in). A link failure does not count as an attempt; a refusal does,
//!   with backoff, until `job-max-attempts`, then the job is failed (`jobs list`, `jobs retry`).
//! - Poll: every `usage-poll` and after every reconnect, the active list becomes
//!   `session.started` / `session.usage` / `session.ended (nas-lost)` commands in one
//!   transaction; a device logged in as a user who is unknown, expired or suspended (or beyond
//!   the plan's devices) is disconnected. The store lives on flash, so counters are written only
//!   when they matter ([`reconcile::save_usage_now`]): every `usage-save`, and sooner for a data quota
//!   running low or a grant about to end. A poll that changes nothing writes nothing.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use crate::engine::command::Source;
use crate::engine::command::{DisconnectedArgs, SessionCounters, UsageArgs};
use crate::engine::model::UserState;
use crate::engine::{Command, Job};
use crate::nas::{DesiredProfile, DesiredUser, Nas, NasError, NasLink};
use crate::shutdown::Shutdown;
use crate::site::Site;

mod jobs;
mod poll;
pub mod reconcile;

use crate::store::StoreError;
use reconcile::UsageMemory;

#[derive(Debug, Clone)]
pub struct EnforceSettings {
    pub hotspot_server: String,
    pub usage_poll: Duration,
    /// Counters of sessions without a data quota running low are written this often.
    pub usage_save: Duration,
    pub safety_margin_ms: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error(transparent)]
    Router(#[from] NasError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct Enforcer<L: NasLink> {
    /// The store, engine, clock and wake-ups. While the deadline timer settles a shared
    /// deadline slice by slice, the job worker waits for the last slice (or
    /// [`SETTLING_WAIT`]) so that one bulk pass, which reads the router's whole active list,
    /// cuts them all off.
    site: Site,
    link: Arc<L>,
    settings: EnforceSettings,
    /// Held by a poll and by a bulk disconnect (until its jobs are recorded done): each reads
    /// the router and then the store, and must not see the other half done.
    router_pass: tokio::sync::Mutex<()>,
    /// Profiles already ensured on the current connection (generation, plan): a user sync then
    /// skips the profile check. Cleared by a reconnect or a `sync-plan` job.
    profiles_ok: std::sync::Mutex<HashSet<(u64, String)>>,
    /// What the poll remembers between looks at the router.
    usage: std::sync::Mutex<UsageMemory>,
}

impl<L: NasLink> Enforcer<L> {
    pub fn new(site: Site, link: Arc<L>, settings: EnforceSettings) -> Arc<Self> {
        Arc::new(Enforcer {
            site,
            link,
            settings,
            router_pass: Default::default(),
            profiles_ok: Default::default(),
            usage: Default::default(),
        })
    }
}

/// The router-side byte limit for `left` bytes of allowance: 10 % plus 10 MB above it, more
/// than the traffic of one usage poll at hotspot speeds.
pub fn data_safety_limit(left: u64) -> u64 {
    left.saturating_add(left / 10).saturating_add(10_000_000)
}

/// Jobs per batch: an expiry burst of this many users is cut off in one bulk pass.
const JOB_BATCH: usize = 20_000;
/// Logins and plan syncs per batch: bounds what a rush of payments holds at once.
const JOB_BATCH_HEAVY: usize = 1_000;

/// How long the worker waits for the deadline timer's last slice before it takes what is due.
pub const SETTLING_WAIT: Duration = Duration::from_secs(1);

/// Polls requested on demand come at most this often.
const MIN_POLL_GAP: Duration = Duration::from_secs(1);

impl<L: NasLink> Enforcer<L> {
    /// `cmds`, after the counters last seen on the router for the sessions of the users they
    /// disconnect: written before those sessions are closed, since the router forgets them.
    fn with_last_usage(&self, mut cmds: Vec<Command>) -> Vec<Command> {
        let users: HashSet<&str> = cmds
            .iter()
            .filter_map(|c| match c {
                Command::UserDisconnected(a) => Some(a.user.as_str()),
                _ => None,
            })
            .collect();
        let memory = self.usage.lock().unwrap_or_else(|e| e.into_inner());
        let sessions: Vec<SessionCounters> = memory
            .seen
            .iter()
            .filter(|(_, (user, _, _))| users.contains(user.as_str()))
            .map(|(key, (_, bytes_in, bytes_out))| SessionCounters {
                nas_session_id: key.clone(),
                bytes_in: *bytes_in,
                bytes_out: *bytes_out,
            })
            .collect();
        drop(memory);
        if !sessions.is_empty() {
            cmds.insert(0, Command::SessionUsage(UsageArgs { sessions }));
        }
        cmds
    }

    async fn apply(
        &self,
        source: Source,
        cmds: Vec<Command>,
    ) -> Result<Vec<Result<serde_json::Value, String>>, StepError> {
        Ok(self.apply_then(source, cmds, |_| Ok(())).await?.0)
    }

    /// Applies `cmds`, then reads `after` in the same store call (no tick comes between).
    async fn apply_then<T: Send + 'static>(
        &self,
        source: Source,
        cmds: Vec<Command>,
        after: impl FnOnce(&crate::store::Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<(Vec<Result<serde_json::Value, String>>, T), StepError> {
        let cmds = cmds.into_iter().map(|c| (None, c)).collect();
        let (results, read) = self.site.apply_many_then(source, cmds, after).await?;
        let results = results
            .into_iter()
            .map(|r| {
                r.map(|a| a.result)
                    .map_err(|e| format!("{}: {}", e.code.as_str(), e.message))
            })
            .collect();
        Ok((results, read))
    }
}
