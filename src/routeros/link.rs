//! The supervised connection to the router. mikrotik-rs never reconnects and a half-open socket
//! hangs, so this owns the connection: connect with a timeout, log in, probe while idle, drop the
//! connection on any link error and reconnect with backoff (reset after healthy uptime). Every
//! new connection bumps a generation counter so the workers resynchronise.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Mutex};
use tokio::time::Instant;

use super::backend::{Health, RouterOsNas};
use super::client::{ApiClient, RouterError};
use crate::nas::NasStatus;
use crate::secret::Secret;
use crate::shutdown::Shutdown;

#[derive(Debug, Clone)]
pub struct LinkSettings {
    /// API-SSL; `None` is the plain API (only with `allow-plaintext`).
    pub tls: Option<super::client::TlsTarget>,
    pub address: String,
    pub username: String,
    pub password: Secret,
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
    pub probe_interval: Duration,
}

/// After this long connected, the failure count starts again from zero.
const HEALTHY_RESET: Duration = Duration::from_secs(60);

#[derive(Default)]
struct LinkState {
    backend: Option<RouterOsNas>,
    failures: u32,
    retry_at: Option<Instant>,
    up_since: Option<Instant>,
    last_error: Option<String>,
    health: Option<Health>,
}

pub struct RouterOsLink {
    settings: LinkSettings,
    state: Mutex<LinkState>,
    generation: watch::Sender<u64>,
}

impl RouterOsLink {
    pub fn new(settings: LinkSettings) -> Arc<RouterOsLink> {
        Arc::new(RouterOsLink {
            settings,
            state: Mutex::new(LinkState::default()),
            generation: watch::channel(0).0,
        })
    }

    /// Changes every time a new connection is up: resynchronise when it does.
    pub fn generation(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// The connected backend, connecting first if the backoff allows.
    pub async fn get(&self) -> Result<RouterOsNas, RouterError> {
        let mut st = self.state.lock().await;
        if let Some(b) = &st.backend {
            return Ok(b.clone());
        }
        if st.retry_at.is_some_and(|t| Instant::now() < t) {
            return Err(RouterError::Unreachable(
                st.last_error
                    .clone()
                    .unwrap_or_else(|| "waiting to reconnect".into()),
            ));
        }
        let s = &self.settings;
        let attempt = async {
            let api = ApiClient::connect_plain(
                &s.address,
                &s.username,
                s.password.expose(),
                s.connect_timeout,
            )
            .await?;
            let api = ApiClient::with_timeout(api, s.command_timeout);
            let backend = RouterOsNas::new(api);
            let health = backend.health().await?;
            Ok::<_, RouterError>((backend, health))
        };
        match attempt.await {
            Ok((backend, health)) => {
                tracing::info!(
                    router = %s.address,
                    identity = %health.identity,
                    version = %health.version,
                    board = %health.board,
                    "router connected"
                );
                if let Ok(Some(group)) = backend.api_user_group(&s.username).await {
                    if group == "full" {
                        tracing::warn!(
                            user = %s.username,
                            "the router API user is in the `full` group; give it a group with only api, read and write (hotspot-edge routeros-script)"
                        );
                    }
                }
                st.backend = Some(backend.clone());
                st.up_since = Some(Instant::now());
                st.retry_at = None;
                st.last_error = None;
                st.health = Some(health);
                self.generation.send_modify(|g| *g += 1);
                Ok(backend)
            }
            Err(e) => {
                st.failures += 1;
                let wait = crate::backoff::nas_link(st.failures);
                st.retry_at = Some(Instant::now() + wait);
                st.last_error = Some(e.to_string());
                tracing::warn!(router = %s.address, error = %e, retry_in_ms = wait.as_millis() as u64, "router connection failed");
                Err(e)
            }
        }
    }

    /// A command failed on the link: drop the connection so the next use reconnects.
    pub async fn broken(&self, e: &RouterError) {
        let mut st = self.state.lock().await;
        if st.backend.take().is_some() {
            if st.up_since.is_some_and(|t| t.elapsed() >= HEALTHY_RESET) {
                st.failures = 0;
            }
            st.failures += 1;
            let wait = crate::backoff::nas_link(st.failures);
            st.retry_at = Some(Instant::now() + wait);
            st.last_error = Some(e.to_string());
            tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "router connection lost");
        }
    }

    /// Probes the router every `probe-interval` (a half-open socket is found by the timeout).
    pub async fn probe_loop(self: Arc<Self>, mut stop: Shutdown) {
        loop {
            tokio::select! {
                _ = stop.requested() => return,
                _ = tokio::time::sleep(self.settings.probe_interval) => {}
            }
            if let Ok(b) = self.get().await {
                match b.health().await {
                    Ok(h) => self.state.lock().await.health = Some(h),
                    Err(e) => self.broken(&e).await,
                }
            }
        }
    }

    pub async fn status(&self) -> NasStatus {
        let st = self.state.lock().await;
        NasStatus {
            kind: "routeros",
            reachable: Some(st.backend.is_some()),
            health: st.health.clone(),
            last_error: st.last_error.clone(),
            reconnects: *self.generation.borrow(),
        }
    }
}

impl crate::nas::NasLink for RouterOsLink {
    type Nas = RouterOsNas;
    fn generation(&self) -> watch::Receiver<u64> {
        RouterOsLink::generation(self)
    }
    async fn get(&self) -> Result<RouterOsNas, RouterError> {
        RouterOsLink::get(self).await
    }
    async fn broken(&self, e: &RouterError) {
        RouterOsLink::broken(self, e).await
    }
    async fn status(&self) -> NasStatus {
        RouterOsLink::status(self).await
    }
}
