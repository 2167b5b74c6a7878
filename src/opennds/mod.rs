//! openNDS (OpenWrt's captive portal) as the NAS: `[router] kind = "opennds"`. openNDS has no
//! user database, only clients (devices) that are pre-authenticated or authenticated, so:
//!
//! - a login is `ndsctl auth MAC minutes rates quotas he=<user>`: the plan's rate limit and what
//!   is left of time and data become openNDS's own limits, a safety net behind our timer;
//! - the `custom` string (`he=<user>`) is how a client is known as ours after a restart;
//! - a disconnect is `ndsctl deauth` of every authenticated client of the user, confirmed by
//!   reading the list again; the poll reads `ndsctl json` as the RouterOS poll reads
//!   `/ip/hotspot/active`, so enforcement and reconcile are the same code (`enforce`).
//!
//! Plans and users are remembered here (the enforcer sends them before every login), since
//! openNDS cannot hold them.
//!
//! openNDS forgets its clients when it stops or restarts, and ends a session on its own timer
//! or idle timeout: such a device is back at the portal (`Preauthenticated`) when it next tries
//! to browse. The poll hands those to the enforcer ([`Nas::returning_devices`]), which logs in
//! the ones whose user still has time.
//!
//! More time bought while online: openNDS authenticates only a client at the portal, so its
//! session end can be moved only by deauthenticating and authenticating again, which needs
//! `allow_preemptive_authentication 1` (10.x's default; 0 in 9.x): the device is then no longer
//! listed after the deauth. Without it the device keeps openNDS's old end and is let back in
//! when it returns to the portal after it; the log says which option to set.

pub mod ndsctl;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio::time::Instant;

use crate::nas::{
    ActiveSession, DesiredProfile, DesiredUser, Health, Nas, NasError as E, NasLink, NasStatus,
    WaitingDevice,
};
pub use ndsctl::{AuthArgs, NdsClient, Ndsctl, NdsctlSettings};

#[derive(Default)]
struct Desired {
    profiles: HashMap<String, DesiredProfile>,
    users: HashMap<String, DesiredUser>,
}

#[derive(Clone)]
pub struct OpenNdsNas {
    ctl: Arc<Ndsctl>,
    desired: Arc<Mutex<Desired>>,
    /// What the last `ndsctl status` said of `allow_preemptive_authentication`.
    preemptive: Arc<Mutex<Option<bool>>>,
    /// Clients at the portal in the last list read.
    waiting: Arc<Mutex<Vec<WaitingDevice>>>,
    /// Held across a deauth-then-auth (an extension, a login taking a device over) and by the
    /// poll's list read: the job worker and the poll run at once, and a list read between the
    /// two halves shows a paid device at the portal (the poll then logged it in a second time,
    /// or closed its session as lost).
    switching: Arc<tokio::sync::Mutex<()>>,
}

/// The minutes given to openNDS for a user without a time limit: 0 would mean openNDS's global
/// `sessiontimeout` (1440 by default), not unlimited (src/ndsctl_thread.c `ndsctl_auth`: a
/// duration that is not > 0 keeps the global one). A year.
const NO_TIME_LIMIT_MINUTES: u64 = 525_600;
/// Said in the log, `status` and the heartbeat while openNDS runs without preemptive
/// authentication.
const PREEMPTIVE_OFF: &str = "openNDS has allow_preemptive_authentication 0: a customer who buys more time while online keeps the old session end and is let back in from the portal after it. Set option allow_preemptive_authentication '1' in /etc/config/opennds";

/// The quota (KiB) given to openNDS for a user without a data limit: 1 PiB.
const NO_QUOTA_KIB: u64 = 1 << 40;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic elsewhere while holding the lock leaves plain data: keep using it.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// openNDS matches MACs as it stores them: lower case.
fn target(mac: &str) -> String {
    mac.to_ascii_lowercase()
}

impl OpenNdsNas {
    pub fn new(settings: NdsctlSettings) -> Self {
        OpenNdsNas {
            ctl: Arc::new(Ndsctl { settings }),
            desired: Default::default(),
            preemptive: Default::default(),
            waiting: Default::default(),
            switching: Default::default(),
        }
    }

    fn desired(&self) -> std::sync::MutexGuard<'_, Desired> {
        lock(&self.desired)
    }

    /// The limits of `ndsctl auth` for a user as last synchronised.
    fn auth_args(&self, user: &str) -> Result<AuthArgs, E> {
        let d = self.desired();
        let Some(u) = d.users.get(user) else {
            return Err(E::Trap {
                command: "ndsctl auth".into(),
                message: format!("user {user} was not synchronised before the login"),
            });
        };
        let minutes = u.limit_uptime_ms.map_or(NO_TIME_LIMIT_MINUTES, |ms| {
            u64::try_from(ms)
                .unwrap_or(0)
                .div_ceil(60_000)
                .clamp(1, NO_TIME_LIMIT_MINUTES)
        });
        let (up_bps, down_bps) = d
            .profiles
            .get(&u.profile)
            .and_then(|p| p.rate_limit.as_deref())
            .and_then(crate::units::rate_limit_bps)
            .unwrap_or((0, 0));
        // openNDS has a quota per direction, not a total: each direction gets the whole total.
        // In KiB: openNDS compares it with its byte counters / 1024 (src/auth.c of 9.10.0).
        // 0 would be openNDS's global quota, not "unlimited" (src/auth.c of 9.10.0: a quota or
        // rate of 0 takes the config's): no data limit is a quota nobody reaches. A rate of 0
        // (a plan without one) does take the global rate: the operator's default for the site.
        let quota_kb = u
            .limit_bytes_total
            .map_or(NO_QUOTA_KIB, |b| b.div_ceil(1024).min(NO_QUOTA_KIB));
        Ok(AuthArgs {
            minutes,
            upload_kbps: up_bps.div_ceil(1000),
            download_kbps: down_bps.div_ceil(1000),
            upload_quota_kb: quota_kb,
            download_quota_kb: quota_kb,
            custom: ndsctl::custom_for(user),
        })
    }

    fn theirs<'a>(clients: &'a [NdsClient], user: &str) -> Vec<&'a NdsClient> {
        clients
            .iter()
            .filter(|c| c.authenticated() && c.user.as_deref() == Some(user))
            .collect()
    }

    /// Authenticates the user's online devices again with `a` (preemptive authentication:
    /// deauth, then auth by MAC), where openNDS's end is short of the new one; each is read back.
    async fn extend_online(&self, user: &str, a: &AuthArgs) -> Result<(), E> {
        // openNDS's session_end is Unix seconds by this machine's clock.
        let now = crate::clock::Clock::read(&crate::clock::SystemClock).wall_ms / 1000;
        let wanted_end = now + i64::try_from(a.minutes).unwrap_or(i64::MAX / 120) * 60;
        let _switching = self.switching.lock().await;
        let clients = self.ctl.clients().await?;
        for c in Self::theirs(&clients, user) {
            if c.session_end.is_some_and(|end| end + 60 < wanted_end) {
                self.ctl.deauth(&target(&c.mac)).await?;
                // Preemptive authentication: the device is no longer in the list after the
                // deauth, and openNDS finds it by MAC.
                self.ctl.auth(&target(&c.mac), a).await?;
                self.confirm_authenticated(user, &c.mac).await?;
                tracing::info!(%user, mac = %c.mac, minutes = a.minutes, "openNDS session extended (authenticated again)");
            }
        }
        Ok(())
    }

    /// Reads the list back: `mac` must be let through as `user`.
    async fn confirm_authenticated(&self, user: &str, mac: &str) -> Result<(), E> {
        let clients = self.ctl.clients().await?;
        match clients.iter().find(|c| c.mac == mac) {
            Some(c) if c.authenticated() && c.user.as_deref() == Some(user) => Ok(()),
            other => Err(E::Unconfirmed(format!(
                "openNDS answered yes to ndsctl auth {mac} for {user}, but lists it as {}",
                other.map_or("absent".to_string(), |c| format!(
                    "{} ({})",
                    c.state,
                    c.user.as_deref().unwrap_or("not ours")
                ))
            ))),
        }
    }

    /// Deauthenticates these clients, then reads the list again: any still authenticated is an
    /// error (the disconnect job is retried).
    async fn deauth_confirmed(&self, macs: &[String]) -> Result<(), E> {
        for m in macs {
            self.ctl.deauth(&target(m)).await?;
        }
        if macs.is_empty() {
            return Ok(());
        }
        let left: Vec<String> = self
            .ctl
            .clients()
            .await?
            .into_iter()
            .filter(|c| c.authenticated() && macs.contains(&c.mac))
            .map(|c| c.mac)
            .collect();
        if left.is_empty() {
            Ok(())
        } else {
            Err(E::Unconfirmed(format!(
                "openNDS still has {} authenticated after ndsctl deauth",
                left.join(", ")
            )))
        }
    }
}

impl Nas for OpenNdsNas {
    async fn ensure_profile(&self, p: &DesiredProfile) -> Result<(), E> {
        self.desired().profiles.insert(p.name.clone(), p.clone());
        Ok(())
    }

    async fn upsert_user(&self, u: &DesiredUser) -> Result<(), E> {
        let previous = self.desired().users.insert(u.name.clone(), u.clone());
        if u.disabled {
            // A disconnect job follows; nothing logs a device in by itself on openNDS.
            return Ok(());
        }
        // More time bought while online: openNDS would still end the session at the old
        // timeout, so the devices are authenticated again with the new limits. The limit only
        // counts down between syncs, so openNDS is asked only when it grew (or is new to this
        // process: time may have been bought while it was not running).
        let grew = previous
            .as_ref()
            .is_none_or(|p| p.disabled || u.limit_uptime_ms > p.limit_uptime_ms);
        let a = self.auth_args(&u.name)?;
        if !grew {
            return Ok(());
        }
        if *lock(&self.preemptive) != Some(true) {
            // Without preemptive authentication a deauthenticated device cannot be authenticated
            // again until it returns to the portal: it keeps openNDS's old session end instead,
            // and is let back in after it (the poll's returning devices).
            let theirs = self.ctl.clients().await?;
            if !Self::theirs(&theirs, &u.name).is_empty() {
                tracing::warn!(user = %u.name, "more time bought while online: openNDS keeps the old session end (allow_preemptive_authentication is 0), so the device is cut off then until it comes back to the portal, where it is let in again. Set option allow_preemptive_authentication '1' in /etc/config/opennds to extend sessions in place");
            }
            return Ok(());
        }
        let extended = self.extend_online(&u.name, &a).await;
        if extended.is_err() {
            // Not done: the retry must see the limit as grown again, or it does nothing.
            let mut d = self.desired();
            match previous {
                Some(p) => d.users.insert(u.name.clone(), p),
                None => d.users.remove(&u.name),
            };
        }
        extended
    }

    async fn remove_user(&self, name: &str) -> Result<bool, E> {
        Ok(self.desired().users.remove(name).is_some())
    }

    async fn remove_cookies(&self, _user: &str) -> Result<usize, E> {
        Ok(0)
    }

    async fn disconnect(&self, user: &str) -> Result<usize, E> {
        let clients = self.ctl.clients().await?;
        let macs: Vec<String> = Self::theirs(&clients, user)
            .into_iter()
            .map(|c| c.mac.clone())
            .collect();
        self.deauth_confirmed(&macs).await?;
        Ok(macs.len())
    }

    async fn bulk_disconnect(
        &self,
        users: &HashSet<String>,
        disable: &HashSet<String>,
    ) -> Result<HashMap<String, (u32, u32)>, E> {
        {
            let mut d = self.desired();
            for u in disable {
                if let Some(x) = d.users.get_mut(u) {
                    x.disabled = true;
                }
            }
        }
        let clients = self.ctl.clients().await?;
        let mut out: HashMap<String, (u32, u32)> =
            users.iter().map(|u| (u.clone(), (0, 0))).collect();
        let mut macs = Vec::new();
        for c in clients.iter().filter(|c| c.authenticated()) {
            if let Some(n) = c.user.as_ref().and_then(|u| out.get_mut(u)) {
                n.0 += 1;
                macs.push(c.mac.clone());
            }
        }
        self.deauth_confirmed(&macs).await?;
        Ok(out)
    }

    async fn kick(&self, session_id: &str) -> Result<(), E> {
        // The session id is the client's token; gone already is fine.
        self.ctl.deauth(session_id).await?;
        Ok(())
    }

    async fn active(&self, _server: Option<&str>) -> Result<Vec<ActiveSession>, E> {
        let clients = {
            let _switching = self.switching.lock().await;
            self.ctl.clients().await?
        };
        *lock(&self.waiting) = clients
            .iter()
            .filter(|c| c.waiting())
            .map(|c| WaitingDevice {
                mac: c.mac.clone(),
                ip: c.ip.clone(),
            })
            .collect();
        Ok(clients
            .into_iter()
            .filter(|c| c.authenticated())
            .map(|c| ActiveSession {
                id: c.token,
                // Not ours (authenticated by something else): the poll logs it out.
                user: c.user.unwrap_or_default(),
                server: "opennds".into(),
                mac: Some(c.mac),
                address: c.ip,
                // RouterOS's view: bytes in from the client (upload), out to it (download).
                bytes_in: c.upload_bytes,
                bytes_out: c.download_bytes,
            })
            .collect())
    }

    async fn login(
        &self,
        user: &str,
        _password: &str,
        mac: &str,
        ip: Option<&str>,
    ) -> Result<(), E> {
        let a = self.auth_args(user)?;
        let mac = crate::domain::Mac::parse(mac).map_err(|m| E::Trap {
            command: "ndsctl auth".into(),
            message: m,
        })?;
        let _switching = self.switching.lock().await;
        let clients = self.ctl.clients().await?;
        if let Some(c) = clients
            .iter()
            .find(|c| c.mac == mac.as_str() && c.authenticated())
        {
            if c.user.as_deref() == Some(user) {
                return Ok(());
            }
            // The device was on as someone else: it is now this user's.
            self.ctl.deauth(&target(&c.mac)).await?;
        }
        self.ctl.auth(&target(mac.as_str()), &a).await?;
        self.confirm_authenticated(user, mac.as_str()).await?;
        tracing::info!(%user, mac = %mac.as_str(), ip = ?ip, minutes = a.minutes, "device authenticated on openNDS");
        Ok(())
    }

    async fn health(&self) -> Result<Health, E> {
        let st = self.ctl.status().await?;
        let was = std::mem::replace(&mut *lock(&self.preemptive), st.preemptive);
        if st.preemptive == Some(false) && was != Some(false) {
            tracing::warn!("{PREEMPTIVE_OFF}");
        }
        Ok(st.health)
    }

    fn warnings(&self) -> Vec<String> {
        if *lock(&self.preemptive) == Some(false) {
            vec![PREEMPTIVE_OFF.to_string()]
        } else {
            Vec::new()
        }
    }

    fn returning_devices(&self) -> Vec<WaitingDevice> {
        lock(&self.waiting).clone()
    }
}

#[derive(Default)]
struct LinkState {
    up: bool,
    failures: u32,
    retry_at: Option<Instant>,
    last_error: Option<String>,
    /// From the last `ndsctl status` that answered (kept while openNDS is down).
    health: Option<Health>,
}

/// openNDS is on this machine: "connected" means ndsctl answers. A failed call marks it down;
/// the next use after a backoff asks `ndsctl status` and, if it answers, bumps the generation
/// so the enforcer re-reads the client list.
pub struct OpenNdsLink {
    nas: OpenNdsNas,
    state: tokio::sync::Mutex<LinkState>,
    generation: watch::Sender<u64>,
}

impl OpenNdsLink {
    pub fn new(nas: OpenNdsNas) -> Arc<Self> {
        Arc::new(OpenNdsLink {
            nas,
            state: Default::default(),
            generation: watch::channel(0).0,
        })
    }
}

impl NasLink for OpenNdsLink {
    type Nas = OpenNdsNas;

    fn generation(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    async fn get(&self) -> Result<OpenNdsNas, E> {
        let mut st = self.state.lock().await;
        if st.up {
            return Ok(self.nas.clone());
        }
        if st.retry_at.is_some_and(|t| Instant::now() < t) {
            return Err(E::Unreachable(
                st.last_error
                    .clone()
                    .unwrap_or_else(|| "openNDS not answering".into()),
            ));
        }
        match self.nas.health().await {
            Ok(h) => {
                tracing::info!(version = %h.version, gateway = %h.identity, "openNDS answers");
                *st = LinkState {
                    up: true,
                    health: Some(h),
                    ..Default::default()
                };
                self.generation.send_modify(|g| *g += 1);
                Ok(self.nas.clone())
            }
            Err(e) => {
                st.failures += 1;
                st.retry_at = Some(Instant::now() + crate::backoff::nas_link(st.failures));
                if st.last_error.as_deref() != Some(&e.to_string()) {
                    tracing::warn!(error = %e, "openNDS not answering");
                }
                st.last_error = Some(e.to_string());
                Err(e)
            }
        }
    }

    async fn broken(&self, e: &E) {
        let mut st = self.state.lock().await;
        if st.up {
            tracing::warn!(error = %e, "openNDS stopped answering");
        }
        st.up = false;
        st.failures += 1;
        st.retry_at = Some(Instant::now() + crate::backoff::nas_link(st.failures));
        st.last_error = Some(e.to_string());
    }

    async fn status(&self) -> NasStatus {
        let st = self.state.lock().await;
        NasStatus {
            kind: "opennds",
            reachable: Some(st.up),
            health: st.health.clone(),
            last_error: st.last_error.clone(),
            reconnects: *self.generation.borrow(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn nas() -> OpenNdsNas {
        nas_at("/nonexistent/ndsctl")
    }

    fn nas_at(program: &str) -> OpenNdsNas {
        OpenNdsNas::new(NdsctlSettings {
            program: program.into(),
            timeout: Duration::from_secs(1),
            busy_retries: 0,
            busy_wait: Duration::from_millis(1),
            counter_unit: 1000,
        })
    }

    #[tokio::test]
    async fn auth_args_come_from_the_plan_and_what_is_left() {
        let n = nas();
        n.ensure_profile(&DesiredProfile {
            name: "1h".into(),
            rate_limit: Some("512k/2M".into()),
            shared_users: 1,
        })
        .await
        .unwrap();
        n.desired().users.insert(
            "V1".into(),
            DesiredUser {
                name: "V1".into(),
                password: "p".into(),
                profile: "1h".into(),
                disabled: false,
                limit_uptime_ms: Some(3_601_000),
                limit_bytes_total: Some(1_500_001),
                mac: None,
            },
        );
        let a = n.auth_args("V1").unwrap();
        assert_eq!(
            a,
            AuthArgs {
                minutes: 61,
                upload_kbps: 512,
                download_kbps: 2000,
                upload_quota_kb: 1465,
                download_quota_kb: 1465,
                custom: "he=V1".into(),
            }
        );
        assert!(matches!(n.auth_args("nobody"), Err(E::Trap { .. })));
    }

    #[tokio::test]
    async fn a_missing_ndsctl_is_a_link_error() {
        let e = nas().active(None).await.unwrap_err();
        assert!(e.is_link(), "{e}");
        assert!(e.to_string().contains("/nonexistent/ndsctl"), "{e}");
    }

    #[tokio::test]
    async fn a_wrapper_that_cannot_find_ndsctl_is_a_link_error() {
        let dir = tempfile::tempdir().unwrap();
        let wrapper = dir.path().join("ndsctl");
        std::fs::write(
            &wrapper,
            "#!/bin/sh\necho 'ndsctl: not found' >&2\nexit 127\n",
        )
        .unwrap();
        std::fs::set_permissions(
            &wrapper,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let e = nas_at(wrapper.to_str().unwrap())
            .active(None)
            .await
            .unwrap_err();
        assert!(e.is_link(), "{e}");
        assert!(e.to_string().contains("not found or not executable"), "{e}");
    }
}
