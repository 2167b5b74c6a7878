//! The job worker: runs due jobs in order (sync a plan's profile, sync a user, disconnect a
//! user and confirm, log a device in). A link failure does not count as an attempt; a refusal
//! does, with backoff, until `job-max-attempts`, then the job is failed (`jobs list`,
//! `jobs retry`). An expiry burst is cut off in one bulk pass.

use super::*;

/// Retry delay for a job the router refused `attempts` times.
pub(super) fn job_backoff_ms(attempts: i64) -> i64 {
    (1000i64 << attempts.clamp(0, 8)).min(300_000)
}

impl<L: NasLink> Enforcer<L> {
    pub async fn run_jobs(self: Arc<Self>, mut stop: Shutdown) {
        let mut generation = self.link.generation();
        loop {
            if stop.is_requested() {
                return;
            }
            if self.site.wakeups().is_settling() {
                tokio::select! {
                    _ = stop.requested() => return,
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
                next.map(|t| {
                    Duration::from_millis(crate::units::non_negative(
                        t.saturating_sub(now.timeline_ms).min(1000),
                    ))
                })
                .unwrap_or(Duration::from_secs(1))
            } else {
                match self.link.get().await {
                    Ok(nas) => {
                        self.run_batch(&nas, jobs).await;
                        continue;
                    }
                    // Router down: the jobs wait, unspent, until it is back.
                    Err(_) => Duration::from_secs(1),
                }
            };
            tokio::select! {
                _ = stop.requested() => return,
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

    async fn run_batch(&self, nas: &impl Nas, mut jobs: Vec<crate::store::router::JobRow>) {
        let disconnects = jobs
            .iter()
            .filter(|j| matches!(j.job, Job::DisconnectUser { .. }))
            .count();
        if disconnects >= 2 {
            // Not while a poll reads the router: a poll that printed the active list before this
            // pass and read the store after its jobs were done would take the users for
            // barred devices still online and cut them off again (a second audit row each).
            let pass = self.router_pass.lock().await;
            let bulk = self.bulk_disconnect(nas, &jobs).await;
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
                    match self.execute(nas, &j.job, synced).await {
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
        nas: &impl Nas,
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
            .run(move |s| s.entitled(&names).map(|st| (names, st)))
            .await?;
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
        let removed = nas.bulk_disconnect(&users, &disable).await?;
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
            self.apply(Source::Router, self.with_last_usage(cmds))
                .await?;
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

    async fn sync_profile(&self, nas: &impl Nas, plan: &str) -> Result<(), StepError> {
        let id = plan.to_string();
        let Some(p) = self.site.store().run(move |s| s.plan_row(&id)).await? else {
            return Ok(());
        };
        nas.ensure_profile(&DesiredProfile {
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
        nas: &impl Nas,
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
                    self.sync_profile(nas, p).await?;
                    if let Ok(mut s) = self.profiles_ok.lock() {
                        s.insert(key);
                    }
                }
                p.clone()
            }
            _ => "default".to_string(),
        };
        let live = u.state == UserState::Active && u.time_left_ms > 0;
        nas.upsert_user(&DesiredUser {
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
    pub(super) async fn execute(
        &self,
        nas: &impl Nas,
        job: &Job,
        synced: bool,
    ) -> Result<(), StepError> {
        match job {
            Job::SyncPlan { plan } => {
                if let Ok(mut s) = self.profiles_ok.lock() {
                    s.retain(|(_, p)| p != plan);
                }
                self.sync_profile(nas, plan).await
            }
            Job::SyncUser { username } => self.sync_user(nas, username).await.map(|_| ()),
            Job::DisconnectUser { username, reason } => {
                // Disable first, so neither a cookie nor a retrying device gets back in.
                let u = self.sync_user(nas, username).await?;
                if u.as_ref()
                    .is_some_and(|u| u.state == UserState::Active && u.time_left_ms > 0)
                {
                    // Paid again since the job was queued (the router was down, say): keep them on.
                    return Ok(());
                }
                let cookies = nas.remove_cookies(username).await?;
                let sessions = nas.disconnect(username).await?;
                let r = self
                    .apply(
                        Source::Router,
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
                    self.sync_user(nas, username).await?
                };
                let Some(u) = u else {
                    return Ok(());
                };
                if u.state == UserState::Active && u.time_left_ms > 0 {
                    nas.login(&u.name, &u.password, mac, ip.as_deref()).await?;
                    self.site.poll_nas();
                }
                Ok(())
            }
        }
    }
}
