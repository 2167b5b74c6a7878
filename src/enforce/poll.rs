//! The poll: every `usage-poll` and after every reconnect, read the NAS's active list,
//! let [`reconcile`](super::reconcile::reconcile) decide, apply its commands in one
//! transaction, log out whom it says, and let paid devices back at the portal in again.

use super::reconcile::{reconcile, refused_starts, session_key, PollInput};
use super::*;

impl<L: NasLink> Enforcer<L> {
    pub async fn run_poll(self: Arc<Self>, mut stop: Shutdown) {
        let mut generation = self.link.generation();
        let mut last = tokio::time::Instant::now();
        let mut took = Duration::ZERO;
        // What `status` was last told about the NAS's settings.
        let mut warned: Option<Vec<String>> = None;
        loop {
            let reconnected = tokio::select! {
                _ = stop.requested() => return,
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
            let Ok(nas) = self.link.get().await else {
                continue;
            };
            let polled = {
                let _pass = self.router_pass.lock().await;
                self.poll_once(&nas).await
            };
            took = last.elapsed();
            match polled {
                Ok(()) => {
                    let now = nas.warnings();
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

    /// One look at the NAS's active list: read, reconcile, apply, log out.
    pub async fn poll_once(&self, nas: &impl Nas) -> Result<(), StepError> {
        let server = self.settings.hotspot_server.clone();
        let rows = nas.active(Some(&server)).await?;
        let on_nas_users: Vec<String> = rows.iter().map(|a| a.user.clone()).collect();
        let (ours, barred, pending, timeline_ms) = self
            .site
            .read(move |s, now| {
                Ok((
                    s.open_sessions_for(None, None)?,
                    s.barred_among(&on_nas_users)?,
                    s.pending_disconnects()?,
                    now.timeline_ms,
                ))
            })
            .await?;
        let now = tokio::time::Instant::now();
        let decided = {
            let mut memory = self.usage.lock().unwrap_or_else(|e| e.into_inner());
            let since_saved = memory.saved_at.map_or(Duration::MAX, |t| now - t);
            reconcile(
                &PollInput {
                    rows: &rows,
                    ours: &ours,
                    barred: &barred,
                    pending: &pending,
                    timeline_ms,
                    since_saved,
                    usage_save: self.settings.usage_save,
                    usage_poll: self.settings.usage_poll,
                },
                &mut memory,
            )
        };
        let (cmds, starts, mut kick) = (decided.cmds, decided.starts, decided.kicks);
        // The disconnect jobs queued as of this write: a user whose login the store refused
        // because the tick expired it after the read above has one, and that job cuts it off.
        let (results, pending) = if cmds.is_empty() {
            (Vec::new(), pending)
        } else {
            self.apply_then(Source::Router, cmds, |s| s.pending_disconnects())
                .await?
        };
        if decided.save_all {
            self.usage
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .saved_at = Some(now);
        }
        kick.extend(refused_starts(&starts, &results, &pending));
        for (a, why) in kick {
            nas.kick(&a.id).await?;
            tracing::warn!(user = %a.user, mac = ?a.mac, reason = %why, "device logged in without entitlement: disconnected");
            let _ = self
                .apply(
                    Source::Router,
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
        self.let_returning_devices_in(nas).await?;
        self.site.wakeups().jobs().notify_one();
        Ok(())
    }

    /// Devices back at the portal whose user still has time (openNDS restarted, or ended the
    /// session on its own timer or idle timeout) are logged in again, as a payment's device is.
    async fn let_returning_devices_in(&self, nas: &impl Nas) -> Result<(), StepError> {
        let returning = nas.returning_devices();
        if returning.is_empty() {
            return Ok(());
        }
        let macs: Vec<String> = returning.iter().map(|d| d.mac.clone()).collect();
        let owners = self
            .site
            .store()
            .run(move |s| -> Result<Vec<Option<String>>, StoreError> {
                macs.iter()
                    .map(|m| s.owner_of_returning_device(m))
                    .collect()
            })
            .await?;
        for (crate::nas::WaitingDevice { mac, ip }, owner) in returning.into_iter().zip(owners) {
            let Some(username) = owner else { continue };
            let job = Job::LoginDevice {
                username: username.clone(),
                mac: mac.clone(),
                ip,
            };
            match self.execute(nas, &job, false).await {
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
