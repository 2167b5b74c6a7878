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
//!   when they matter ([`save_usage_now`]): every `usage-save`, and sooner for a data quota
//!   running low or a grant about to end. A poll that changes nothing writes nothing.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::engine::command::{
    DisconnectedArgs, SessionCounters, SessionEndArgs, SessionStartArgs, UsageArgs,
};
use crate::engine::model::UserState;
use crate::engine::{counter_delta, Command, Job};
use crate::nas::{ActiveSession, DesiredProfile, DesiredUser, Nas, NasError, NasLink};
use crate::site::Site;
use crate::store::StoreError;

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

/// Counters seen on the router but not necessarily written (user, bytes in, bytes out per
/// session key), and when every session's counters were last written.
#[derive(Debug, Default)]
pub struct UsageMemory {
    seen: HashMap<String, (String, u64, u64)>,
    saved_at: Option<tokio::time::Instant>,
}

/// What the poll knows of a user's counters when it decides whether to write them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnsavedUsage {
    /// Traffic of the user's sessions since their counters were last written.
    pub bytes: u64,
    /// Data the user had left at that write (`None`: no data cap).
    pub data_left: Option<u64>,
    /// Time until the running grant ends by time (negative: overdue), if that is fixed.
    pub grant_ends_in_ms: Option<i64>,
}

/// Whether a user's session counters are written now. They wait up to `usage_save` (the router
/// keeps them, so waiting loses nothing but freshness), except that they are written
/// - before the unwritten traffic is half of the data left: the engine then ends a data grant
///   within a poll or two of the quota running out;
/// - at the last poll before the grant ends by time, so `grant.ended` counts its traffic.
pub fn save_usage_now(
    u: UnsavedUsage,
    since_saved: Duration,
    usage_save: Duration,
    usage_poll: Duration,
) -> bool {
    let poll_ms = i64::try_from(usage_poll.as_millis()).unwrap_or(i64::MAX);
    u.bytes > 0
        && (since_saved >= usage_save
            || u.data_left
                .is_some_and(|left| u.bytes.saturating_mul(2) >= left)
            || u.grant_ends_in_ms.is_some_and(|ms| ms <= poll_ms))
}

/// Our id for a router session: its `.id` alone is reused after a router reboot.
fn session_key(a: &ActiveSession) -> String {
    format!("{}/{}/{}", a.id, a.user, a.mac.as_deref().unwrap_or("-"))
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

/// Retry delay for a job the router refused `attempts` times.
fn job_backoff_ms(attempts: i64) -> i64 {
    (1000i64 << attempts.clamp(0, 8)).min(300_000)
}

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
        source: &'static str,
        cmds: Vec<Command>,
    ) -> Result<Vec<Result<serde_json::Value, String>>, StepError> {
        Ok(self.apply_then(source, cmds, |_| Ok(())).await?.0)
    }

    /// Applies `cmds`, then reads `after` in the same store call (no tick comes between).
    async fn apply_then<T: Send + 'static>(
        &self,
        source: &'static str,
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

    pub async fn run_jobs(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut generation = self.link.generation();
        loop {
            if *stop.borrow() {
                return;
            }
            if self.site.wakeups().is_settling() {
                tokio::select! {
                    _ = stop.changed() => return,
                    _ = self.site.wakeups().jobs().notified() => {}
                    _ = tokio::time::sleep(SETTLING_WAIT) => {}
                }
            }
            let due = self
                .site
                .read(|s, now| {
                    Ok((
                        *now,
                        s.due_jobs(now.timeline_ms, JOB_BATCH, JOB_BATCH_HEAVY)?,
                        s.next_job_at()?,
                    ))
                })
                .await;
            let (now, jobs, next) = match due {
                Ok(x) => x,
                Err(StoreError::Gone) => return,
                Err(e) => {
                    tracing::error!(error = %e, "reading router jobs");
                    (Default::default(), vec![], None)
                }
            };
            let wait = if jobs.is_empty() {
                next.map(|t| Duration::from_millis((t - now.timeline_ms).clamp(0, 1000) as u64))
                    .unwrap_or(Duration::from_secs(1))
            } else {
                match self.link.get().await {
                    Ok(b) => {
                        self.run_batch(&b, jobs).await;
                        continue;
                    }
                    // Router down: the jobs wait, unspent, until it is back.
                    Err(_) => Duration::from_secs(1),
                }
            };
            tokio::select! {
                _ = stop.changed() => return,
                _ = self.site.wakeups().jobs().notified() => {}
                _ = generation.changed() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Removes finished jobs from the queue (one transaction).
    async fn jobs_done(&self, ids: Vec<i64>) {
        if let Ok(Err(e)) = self.site.store().call(move |s| s.jobs_done(&ids)).await {
            tracing::error!(error = %e, "recording finished router jobs");
        }
    }

    async fn run_batch(&self, b: &impl Nas, mut jobs: Vec<crate::store::router::JobRow>) {
        let disconnects = jobs
            .iter()
            .filter(|j| matches!(j.job, Job::DisconnectUser { .. }))
            .count();
        if disconnects >= 2 {
            // Not while a poll reads the router: a poll that printed the active list before this
            // pass and read the store after its jobs were done would take the users for
            // barred devices still online and cut them off again (a second audit row each).
            let pass = self.router_pass.lock().await;
            let bulk = self.bulk_disconnect(b, &jobs).await;
            if let Ok(handled) = &bulk {
                self.jobs_done(handled.clone()).await;
            }
            drop(pass);
            match bulk {
                Ok(handled) => {
                    jobs.retain(|j| !handled.contains(&j.id));
                }
                Err(e) => {
                    if let StepError::Router(r) = &e {
                        if r.is_link() {
                            self.link.broken(r).await;
                            return;
                        }
                    }
                    // Fall back to one at a time, which records each failure.
                    tracing::warn!(error = %e, "bulk disconnect failed; disconnecting one by one");
                }
            }
        }
        // One user's jobs run in order; different users' run side by side in eight lanes (the API
        // connection multiplexes commands; its task queues 16), so a rush of payments does not
        // wait on one round trip at a time.
        // Keyed by (not a plan, target): the sort puts plans first (their users' syncs then find
        // the profile ensured) and keeps users in the order of their first job.
        let mut groups: Vec<((bool, String), Vec<crate::store::router::JobRow>)> = Vec::new();
        let mut index: HashMap<(bool, String), usize> = HashMap::new();
        for j in jobs {
            let key = (!matches!(j.job, Job::SyncPlan { .. }), j.job.target());
            match index.get(&key) {
                Some(i) => groups[*i].1.push(j),
                None => {
                    index.insert(key.clone(), groups.len());
                    groups.push((key, vec![j]));
                }
            }
        }
        groups.sort_by_key(|(key, _)| key.0);
        let queue = std::sync::Mutex::new(
            groups
                .into_iter()
                .map(|(_, g)| g)
                .collect::<std::collections::VecDeque<_>>(),
        );
        let done = std::sync::Mutex::new(Vec::new());
        let link_down = std::sync::atomic::AtomicBool::new(false);
        let lane = || async {
            loop {
                if link_down.load(std::sync::atomic::Ordering::Relaxed) {
                    return;
                }
                let Some(group) = queue.lock().unwrap_or_else(|e| e.into_inner()).pop_front()
                else {
                    return;
                };
                let mut synced = false;
                for j in group {
                    if link_down.load(std::sync::atomic::Ordering::Relaxed) {
                        return;
                    }
                    match self.execute(b, &j.job, synced).await {
                        Ok(()) => {
                            synced = true;
                            done.lock().unwrap_or_else(|e| e.into_inner()).push(j.id);
                        }
                        Err(e) => {
                            if !self.job_failed(&j, e).await {
                                link_down.store(true, std::sync::atomic::Ordering::Relaxed);
                                return;
                            }
                            // The rest of this user's jobs wait for the next batch.
                            break;
                        }
                    }
                }
            }
        };
        tokio::join!(
            lane(),
            lane(),
            lane(),
            lane(),
            lane(),
            lane(),
            lane(),
            lane()
        );
        self.jobs_done(done.into_inner().unwrap_or_else(|e| e.into_inner()))
            .await;
    }

    /// Records a failed job (backoff, or failed for good). False when the batch must stop: the
    /// link is down (the attempt is not spent) or the store is gone.
    async fn job_failed(&self, j: &crate::store::router::JobRow, e: StepError) -> bool {
        let link = matches!(&e, StepError::Router(r) if r.is_link());
        if let StepError::Router(r) = &e {
            if r.is_link() {
                self.link.broken(r).await;
            }
        }
        let (msg, attempts, id) = (e.to_string(), j.attempts, j.id);
        let recorded = self
            .site
            .read(move |s, now| {
                // A link failure is not the router saying no: retry soon, attempt not spent.
                let retry = if link { 1000 } else { job_backoff_ms(attempts) };
                s.job_failed(id, &msg, !link, now.timeline_ms + retry, now)
            })
            .await;
        match recorded {
            Ok(true) => {
                tracing::error!(job = j.id, kind = j.job.kind(), target = %j.job.target(), error = %e, "router job failed for good; see `jobs list`, retry with `jobs retry`")
            }
            Ok(false) => {
                tracing::warn!(job = j.id, kind = j.job.kind(), target = %j.job.target(), error = %e, "router job will be retried")
            }
            Err(StoreError::Gone) => return false,
            Err(se) => tracing::error!(error = %se, "recording a failed router job"),
        }
        !link
    }

    /// An expiry burst: every `disconnect-user` job of the batch in a few API calls and one store
    /// transaction; `sync-user` jobs of the same users that only disable them are done by it too.
    /// Returns the ids of the jobs it carried out.
    async fn bulk_disconnect(
        &self,
        b: &impl Nas,
        jobs: &[crate::store::router::JobRow],
    ) -> Result<Vec<i64>, StepError> {
        // Borrowed from the jobs, and each name copied once (to ask the store): a 10,000-user
        // burst holds these sets at once.
        let mut reasons: HashMap<&str, &str> = HashMap::new();
        for j in jobs {
            if let Job::DisconnectUser { username, reason } = &j.job {
                reasons.insert(username, reason);
            }
        }
        let t_start = std::time::Instant::now();
        let names: Vec<String> = reasons.keys().map(|u| u.to_string()).collect();
        let (names, states) = self
            .site
            .store()
            .call(move |s| s.entitled(&names).map(|st| (names, st)))
            .await??;
        let mut users: HashSet<String> = HashSet::new();
        let mut disable: HashSet<String> = HashSet::new();
        for u in names {
            match states.get(&u) {
                Some(true) => {}
                Some(false) => {
                    disable.insert(u.clone());
                    users.insert(u);
                }
                None => {
                    users.insert(u);
                }
            }
        }
        drop(states);
        let t0 = std::time::Instant::now();
        let removed = b.bulk_disconnect(&users, &disable).await?;
        let router_ms = t0.elapsed().as_millis() as u64;
        // Made slice by slice, as the tick's: one transaction's events are held until it commits.
        let to_record: Vec<(&str, &str)> = reasons
            .iter()
            .filter(|(u, _)| users.contains(**u))
            .map(|(u, why)| (*u, *why))
            .collect();
        for slice in to_record.chunks(crate::engine::TICK_SLICE) {
            let cmds = slice
                .iter()
                .map(|(u, why)| {
                    let (sessions, cookies) = removed.get(*u).copied().unwrap_or_default();
                    Command::UserDisconnected(DisconnectedArgs {
                        user: u.to_string(),
                        reason: why.to_string(),
                        removed_sessions: sessions,
                        removed_cookies: cookies,
                        sessions: vec![],
                    })
                })
                .collect();
            self.apply("router", self.with_last_usage(cmds)).await?;
        }
        tracing::info!(
            users = users.len(),
            router_ms,
            total_ms = t_start.elapsed().as_millis() as u64,
            "users disconnected on the router (bulk)"
        );
        Ok(jobs
            .iter()
            .filter(|j| match &j.job {
                Job::DisconnectUser { .. } => true,
                Job::SyncUser { username } => disable.contains(username),
                _ => false,
            })
            .map(|j| j.id)
            .collect())
    }

    async fn sync_profile(&self, b: &impl Nas, plan: &str) -> Result<(), StepError> {
        let id = plan.to_string();
        let Some(p) = self.site.store().call(move |s| s.plan_row(&id)).await?? else {
            return Ok(());
        };
        b.ensure_profile(&DesiredProfile {
            name: p.plan.id.to_string(),
            rate_limit: p.plan.rate_limit.clone(),
            shared_users: p.plan.devices,
        })
        .await?;
        Ok(())
    }

    /// What the store says the router should have for `username`.
    async fn router_user(
        &self,
        username: &str,
    ) -> Result<Option<crate::store::router::RouterUser>, StepError> {
        let name = username.to_string();
        Ok(self
            .site
            .read(move |s, now| s.router_user(now, &name))
            .await?)
    }

    async fn sync_user(
        &self,
        b: &impl Nas,
        username: &str,
    ) -> Result<Option<crate::store::router::RouterUser>, StepError> {
        let Some(u) = self.router_user(username).await? else {
            return Ok(None);
        };
        let profile = match &u.plan {
            Some(p) if p != "manual" => {
                let key = (*self.link.generation().borrow(), p.clone());
                let known = self
                    .profiles_ok
                    .lock()
                    .map(|s| s.contains(&key))
                    .unwrap_or(false);
                if !known {
                    self.sync_profile(b, p).await?;
                    if let Ok(mut s) = self.profiles_ok.lock() {
                        s.insert(key);
                    }
                }
                p.clone()
            }
            _ => "default".to_string(),
        };
        let live = u.state == UserState::Active && u.time_left_ms > 0;
        b.upsert_user(&DesiredUser {
            name: u.name.clone(),
            password: u.password.clone(),
            profile,
            disabled: !live,
            limit_uptime_ms: live.then(|| u.time_left_ms + self.settings.safety_margin_ms),
            // The router's own limit is a safety net for when the daemon is not running: set above
            // ours, so that normally we see the traffic and cut off first.
            limit_bytes_total: u.data_left.filter(|_| live).map(data_safety_limit),
            mac: u.mac.clone(),
        })
        .await?;
        Ok(Some(u))
    }

    /// Carries out one job. `synced`: the user was just written to the router by the job before
    /// it in the same batch, so a login need not write it again.
    async fn execute(&self, b: &impl Nas, job: &Job, synced: bool) -> Result<(), StepError> {
        match job {
            Job::SyncPlan { plan } => {
                if let Ok(mut s) = self.profiles_ok.lock() {
                    s.retain(|(_, p)| p != plan);
                }
                self.sync_profile(b, plan).await
            }
            Job::SyncUser { username } => self.sync_user(b, username).await.map(|_| ()),
            Job::DisconnectUser { username, reason } => {
                // Disable first, so neither a cookie nor a retrying device gets back in.
                let u = self.sync_user(b, username).await?;
                if u.as_ref()
                    .is_some_and(|u| u.state == UserState::Active && u.time_left_ms > 0)
                {
                    // Paid again since the job was queued (the router was down, say): keep them on.
                    return Ok(());
                }
                let cookies = b.remove_cookies(username).await?;
                let sessions = b.disconnect(username).await?;
                let r = self
                    .apply(
                        "router",
                        self.with_last_usage(vec![Command::UserDisconnected(DisconnectedArgs {
                            user: username.clone(),
                            reason: reason.clone(),
                            removed_sessions: sessions as u32,
                            removed_cookies: cookies as u32,
                            sessions: vec![],
                        })]),
                    )
                    .await?;
                tracing::info!(user = %username, %reason, sessions, cookies, result = ?r, "user disconnected on the router");
                Ok(())
            }
            Job::LoginDevice { username, mac, ip } => {
                let u = if synced {
                    self.router_user(username).await?
                } else {
                    self.sync_user(b, username).await?
                };
                let Some(u) = u else {
                    return Ok(());
                };
                if u.state == UserState::Active && u.time_left_ms > 0 {
                    b.login(&u.name, &u.password, mac, ip.as_deref()).await?;
                    self.site.poll_nas();
                }
                Ok(())
            }
        }
    }

    pub async fn run_poll(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut generation = self.link.generation();
        let mut last = tokio::time::Instant::now();
        let mut took = Duration::ZERO;
        // What `status` was last told about the NAS's settings.
        let mut warned: Option<Vec<String>> = None;
        loop {
            let reconnected = tokio::select! {
                _ = stop.changed() => return,
                _ = generation.changed() => true,
                _ = self.site.wakeups().poll().notified() => false,
                _ = tokio::time::sleep(self.settings.usage_poll) => false,
            };
            // A poll reads every active session: when asked to poll often (a login after each
            // payment of a rush), do it at most once a second, and never more than a third of
            // the time (10,000 sessions take a while to read, and the jobs share the router).
            let since = last.elapsed();
            let gap = MIN_POLL_GAP.max(took * 2);
            if !reconnected && since < gap {
                tokio::time::sleep(gap - since).await;
            }
            last = tokio::time::Instant::now();
            let Ok(b) = self.link.get().await else {
                continue;
            };
            let polled = {
                let _pass = self.router_pass.lock().await;
                self.poll_once(&b).await
            };
            took = last.elapsed();
            match polled {
                Ok(()) => {
                    let now = b.warnings();
                    if warned.as_ref() != Some(&now) {
                        let w = now.clone();
                        if let Ok(Err(e)) = self
                            .site
                            .store()
                            .call(move |s| s.set_nas_warnings(&w))
                            .await
                        {
                            tracing::warn!(error = %e, "recording the NAS's warnings");
                        }
                        warned = Some(now);
                    }
                }
                Err(StepError::Router(e)) if e.is_link() => self.link.broken(&e).await,
                Err(StepError::Store(StoreError::Gone)) => return,
                Err(e) => tracing::warn!(error = %e, "router poll"),
            }
        }
    }

    /// One look at the router's active list: sessions and usage in, intruders out.
    pub async fn poll_once(&self, b: &impl Nas) -> Result<(), StepError> {
        let server = self.settings.hotspot_server.clone();
        let rows = b.active(Some(&server)).await?;
        let on_router_users: Vec<String> = rows.iter().map(|a| a.user.clone()).collect();
        let (ours, barred, pending, timeline_ms) = self
            .site
            .read(move |s, now| {
                Ok((
                    s.open_sessions_for(None, None)?,
                    s.barred_among(&on_router_users)?,
                    s.pending_disconnects()?,
                    now.timeline_ms,
                ))
            })
            .await?;
        // Each router row with our key for it, made once.
        let keyed: Vec<(String, &ActiveSession)> =
            rows.iter().map(|a| (session_key(a), a)).collect();
        let on_router: HashSet<&str> = keyed.iter().map(|(k, _)| k.as_str()).collect();
        let now = tokio::time::Instant::now();
        // The memory is updated in place (not rebuilt beside the old one): at 10,000 sessions
        // each copy is ~1.5 MB. What it held for sessions now gone is kept aside to close them.
        let (lost, since) = {
            let mut memory = self.usage.lock().unwrap_or_else(|e| e.into_inner());
            let since = memory.saved_at.map_or(Duration::MAX, |t| now - t);
            let lost: HashMap<String, (u64, u64)> = ours
                .iter()
                .filter(|o| !on_router.contains(o.nas_session_id.as_str()))
                .filter_map(|o| {
                    let (_, i, out) = memory.seen.get(&o.nas_session_id)?;
                    Some((o.nas_session_id.clone(), (*i, *out)))
                })
                .collect();
            memory.seen.retain(|k, _| on_router.contains(k.as_str()));
            for (k, a) in &keyed {
                match memory.seen.get_mut(k.as_str()) {
                    Some(c) => (c.1, c.2) = (a.bytes_in, a.bytes_out),
                    None => {
                        memory
                            .seen
                            .insert(k.clone(), (a.user.clone(), a.bytes_in, a.bytes_out));
                    }
                }
            }
            // Given back after a burst empties it, not re-fitted on every poll.
            if memory.seen.capacity() > 4 * memory.seen.len().max(256) {
                memory.seen.shrink_to_fit();
            }
            (lost, since)
        };
        let save_all = since >= self.settings.usage_save;
        // Per user: traffic since the counters were last written, and what decides a write.
        let mut unsaved: HashMap<&str, UnsavedUsage> = HashMap::new();
        let written: HashMap<&str, (u64, u64)> = ours
            .iter()
            .map(|o| (o.nas_session_id.as_str(), (o.bytes_in, o.bytes_out)))
            .collect();
        for o in &ours {
            unsaved.entry(&o.user).or_insert(UnsavedUsage {
                bytes: 0,
                data_left: o.data_left,
                grant_ends_in_ms: o.grant_deadline.map(|d| d - timeline_ms),
            });
        }
        for (k, a) in &keyed {
            if let (Some(w), Some(u)) = (written.get(k.as_str()), unsaved.get_mut(a.user.as_str()))
            {
                // Counted as the engine will count it when the counters are written.
                u.bytes += counter_delta(w.0, a.bytes_in) + counter_delta(w.1, a.bytes_out);
            }
        }
        let save_user = |user: &str| {
            unsaved.get(user).is_some_and(|u| {
                let s = &self.settings;
                save_usage_now(*u, since, s.usage_save, s.usage_poll)
            })
        };
        let mut cmds = Vec::new();
        let mut started: Vec<Option<&ActiveSession>> = Vec::new();
        let mut kick: Vec<(&ActiveSession, String)> = Vec::new();
        // Sessions gone from the router are closed before new ones are admitted: a device that
        // came back under a new NAS session id (openNDS gives a re-authenticated client a new
        // token) must not count twice against the plan's devices.
        for o in &ours {
            // Sessions of a user being disconnected are closed by that job, with its reason: a
            // poll between the NAS dropping them and the job recording it must not call them lost.
            if on_router.contains(o.nas_session_id.as_str()) || pending.contains(&o.user) {
                continue;
            }
            // Gone from the router: closed with the traffic it last showed.
            let last = lost.get(&o.nas_session_id);
            cmds.push(Command::SessionEnded(SessionEndArgs {
                nas_session_id: o.nas_session_id.clone(),
                reason: "nas-lost".into(),
                bytes_in: last.map(|c| c.0),
                bytes_out: last.map(|c| c.1),
            }));
            started.push(None);
        }
        for (k, a) in &keyed {
            if let Some(state) = barred.get(&a.user) {
                // A queued disconnect job handles it (with its reason and one audit row).
                if !pending.contains(&a.user) {
                    kick.push((a, (*state).to_string()));
                }
                continue;
            }
            if !written.contains_key(k.as_str()) {
                cmds.push(Command::SessionStarted(SessionStartArgs {
                    user: a.user.clone(),
                    nas_session_id: k.clone(),
                    mac: a.mac.clone(),
                    ip: a.address.clone(),
                }));
                started.push(Some(a));
            }
        }
        // A session started in this poll is new to the store: its counters are written with it.
        let due: Vec<SessionCounters> = keyed
            .iter()
            .filter(|(k, a)| !written.contains_key(k.as_str()) || save_user(&a.user))
            .map(|(k, a)| SessionCounters {
                nas_session_id: k.clone(),
                bytes_in: a.bytes_in,
                bytes_out: a.bytes_out,
            })
            .collect();
        if !due.is_empty() {
            cmds.push(Command::SessionUsage(UsageArgs { sessions: due }));
            started.push(None);
        }
        // The disconnect jobs queued as of this write: a user whose login the store refused
        // because the tick expired it after the read above has one, and that job cuts it off.
        let (results, pending) = if cmds.is_empty() {
            (Vec::new(), pending)
        } else {
            self.apply_then("router", cmds, |s| s.pending_disconnects())
                .await?
        };
        if save_all {
            self.usage
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .saved_at = Some(now);
        }
        for (a, r) in started.iter().zip(&results) {
            if let (Some(a), Err(why)) = (a, r) {
                if !pending.contains(&a.user) {
                    kick.push((a, why.clone()));
                }
            }
        }
        for (a, why) in kick {
            b.kick(&a.id).await?;
            tracing::warn!(user = %a.user, mac = ?a.mac, reason = %why, "device logged in without entitlement: disconnected");
            let _ = self
                .apply(
                    "router",
                    self.with_last_usage(vec![Command::UserDisconnected(DisconnectedArgs {
                        user: a.user.clone(),
                        reason: why.clone(),
                        removed_sessions: 1,
                        removed_cookies: 0,
                        sessions: vec![session_key(a)],
                    })]),
                )
                .await?;
        }
        self.let_returning_devices_in(b).await?;
        self.site.wakeups().jobs().notify_one();
        Ok(())
    }

    /// Devices back at the portal whose user still has time (openNDS restarted, or ended the
    /// session on its own timer or idle timeout) are logged in again, as a payment's device is.
    async fn let_returning_devices_in(&self, b: &impl Nas) -> Result<(), StepError> {
        let returning = b.returning_devices();
        if returning.is_empty() {
            return Ok(());
        }
        let macs: Vec<String> = returning.iter().map(|d| d.mac.clone()).collect();
        let owners = self
            .site
            .store()
            .call(move |s| -> Result<Vec<Option<String>>, StoreError> {
                macs.iter()
                    .map(|m| s.owner_of_returning_device(m))
                    .collect()
            })
            .await??;
        for (crate::nas::WaitingDevice { mac, ip }, owner) in returning.into_iter().zip(owners) {
            let Some(username) = owner else { continue };
            let job = Job::LoginDevice {
                username: username.clone(),
                mac: mac.clone(),
                ip,
            };
            match self.execute(b, &job, false).await {
                Ok(()) => {
                    tracing::info!(user = %username, %mac, "a paid device back at the portal was let in again");
                }
                Err(StepError::Router(e)) if e.is_link() => return Err(StepError::Router(e)),
                Err(e) => {
                    tracing::warn!(user = %username, %mac, error = %e, "a paid device back at the portal could not be let in again");
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAVE: Duration = Duration::from_secs(300);

    const POLL: Duration = Duration::from_secs(10);

    fn unsaved(bytes: u64, data_left: Option<u64>, grant_ends_in_ms: Option<i64>) -> UnsavedUsage {
        UnsavedUsage {
            bytes,
            data_left,
            grant_ends_in_ms,
        }
    }

    #[test]
    fn counters_wait_for_usage_save_unless_a_quota_runs_low_or_the_grant_ends() {
        let secs = Duration::from_secs;
        let now = |u| save_usage_now(u, secs(10), SAVE, POLL);
        // Nothing new: never written.
        assert!(!save_usage_now(
            unsaved(0, None, None),
            Duration::MAX,
            SAVE,
            POLL
        ));
        assert!(!now(unsaved(0, Some(0), Some(0))));
        // No data cap, no end in sight: only once usage-save has passed, to the millisecond.
        let plain = unsaved(50_000_000, None, Some(3_600_000));
        assert!(!save_usage_now(
            plain,
            SAVE - Duration::from_millis(1),
            SAVE,
            POLL
        ));
        assert!(save_usage_now(plain, SAVE, SAVE, POLL));
        // A quota: written once the unwritten traffic is half of what was left.
        assert!(!now(unsaved(49_999_999, Some(100_000_000), None)));
        assert!(now(unsaved(50_000_000, Some(100_000_000), None)));
        assert!(now(unsaved(1, Some(0), None)));
        assert!(now(unsaved(u64::MAX, Some(u64::MAX), None)));
        // The grant ends before the next poll (or is overdue): written now.
        assert!(!now(unsaved(1, None, Some(10_001))));
        assert!(now(unsaved(1, None, Some(10_000))));
        assert!(now(unsaved(1, None, Some(-5))));
    }
}
