//! RFC 5176 Disconnect-Requests, and [`RadiusNas`]: the `Nas` the enforcer drives when the
//! router is a RADIUS NAS. Users, plans and limits live in our database and reach the NAS in
//! each Access-Accept, so the only thing to *do* on the NAS is to log sessions out.
//!
//! One Disconnect-Request is sent up to `disconnect-tries` times with the same Identifier and
//! bytes; an ACK, or a NAK saying the session is already gone (Error-Cause 503), confirms it.
//! Any other NAK, or no answer, fails the job attempt, and the jobs table retries it later.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use tokio::net::UdpSocket;
use tokio::sync::watch;

use super::packet::{attr, Builder, Packet, DISCONNECT_ACK, DISCONNECT_NAK, DISCONNECT_REQUEST};
use super::{RadiusClient, RadiusSettings};
use crate::config::NasKind;
use crate::nas::{
    ActiveSession, DesiredProfile, DesiredUser, Health, Nas, NasError, NasLink, NasStatus,
};
use crate::store::StoreHandle;

/// RFC 5176 §3.5 Error-Cause 503: Session Context Not Found.
const SESSION_NOT_FOUND: u32 = 503;

/// A session as the NAS knows it, enough to name it in a Disconnect-Request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DmTarget {
    pub nas: IpAddr,
    pub acct_session_id: String,
    pub user: String,
    pub mac: Option<String>,
    pub ip: Option<String>,
}

/// Our session key for a RADIUS session: the NAS's address and its Acct-Session-Id (unique per
/// NAS only).
pub fn session_key(nas: IpAddr, acct_session_id: &str) -> String {
    format!("{}/{acct_session_id}", nas.to_canonical())
}

/// The NAS and Acct-Session-Id of a session key.
pub fn split_key(key: &str) -> Option<(IpAddr, &str)> {
    let (ip, id) = key.split_once('/')?;
    Some((ip.parse().ok()?, id))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmOutcome {
    /// Disconnect-ACK: the NAS logged the session out.
    Acked,
    /// Disconnect-NAK 503: the NAS had no such session (already gone).
    Gone,
}

#[derive(Clone)]
pub struct RadiusNas {
    settings: Arc<RadiusSettings>,
    store: StoreHandle,
}

impl RadiusNas {
    pub fn new(settings: Arc<RadiusSettings>, store: StoreHandle) -> RadiusNas {
        RadiusNas { settings, store }
    }

    fn client(&self, ip: IpAddr) -> Result<&RadiusClient, NasError> {
        self.settings.client(ip).ok_or_else(|| {
            NasError::Unconfirmed(format!(
                "session on NAS {ip}, which is no longer among [[radius.clients]]"
            ))
        })
    }

    /// Sends one Disconnect-Request and waits for its answer, retransmitting on silence.
    pub async fn disconnect_session(&self, t: &DmTarget) -> Result<DmOutcome, NasError> {
        let client = self.client(t.nas)?;
        let secret = client.secret.expose().as_bytes();
        let mut id = [0u8; 1];
        let _ = getrandom::fill(&mut id);
        let mut b = Builder::with_message_authenticator(DISCONNECT_REQUEST, id[0]);
        b.add(attr::USER_NAME, t.user.as_bytes());
        b.add(attr::ACCT_SESSION_ID, t.acct_session_id.as_bytes());
        if let Some(std::net::IpAddr::V4(v4)) = t.ip.as_deref().and_then(|i| i.parse().ok()) {
            b.add(attr::FRAMED_IP_ADDRESS, &v4.octets());
        }
        if let Some(mac) = &t.mac {
            // CoovaChilli writes MACs with dashes, MikroTik with colons.
            let m = match client.kind {
                NasKind::Coova => mac.replace(':', "-"),
                _ => mac.clone(),
            };
            b.add(attr::CALLING_STATION_ID, m.as_bytes());
        }
        let request = b.finish_request(secret);
        let request_auth: [u8; 16] = request[4..20].try_into().expect("16-byte authenticator");
        let peer = SocketAddr::new(t.nas, client.disconnect_port);
        let unreachable = |e: std::io::Error| {
            NasError::Unconfirmed(format!(
                "Disconnect-Request to {} ({peer}): {e}",
                client.name
            ))
        };
        let local: SocketAddr = if peer.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let sock = UdpSocket::bind(local).await.map_err(unreachable)?;
        sock.connect(peer).await.map_err(unreachable)?;
        let mut buf = vec![0u8; super::packet::MAX_LEN];
        for _ in 0..self.settings.disconnect_tries {
            sock.send(&request).await.map_err(unreachable)?;
            let deadline = tokio::time::Instant::now() + self.settings.disconnect_timeout;
            loop {
                let n = match tokio::time::timeout_at(deadline, sock.recv(&mut buf)).await {
                    Err(_) => break,
                    // ICMP port unreachable: the NAS is up but not listening; try again later.
                    Ok(Err(e)) => return Err(unreachable(e)),
                    Ok(Ok(n)) => n,
                };
                let Ok(reply) = Packet::parse(&buf[..n]) else {
                    continue;
                };
                if reply.id() != id[0] || !reply.response_ok(&request_auth, secret) {
                    tracing::warn!(nas = %client.name, "reply to a Disconnect-Request failed its authenticator check; ignored");
                    continue;
                }
                match reply.code() {
                    DISCONNECT_ACK => return Ok(DmOutcome::Acked),
                    DISCONNECT_NAK => {
                        let cause = reply.u32(attr::ERROR_CAUSE);
                        if cause == Some(SESSION_NOT_FOUND) {
                            return Ok(DmOutcome::Gone);
                        }
                        return Err(NasError::Trap {
                            command: "Disconnect-Request".into(),
                            message: format!(
                                "NAS {} answered NAK for {} session {} (Error-Cause {})",
                                client.name,
                                t.user,
                                t.acct_session_id,
                                cause.map_or("none".into(), |c| c.to_string())
                            ),
                        });
                    }
                    _ => continue,
                }
            }
        }
        Err(NasError::Unconfirmed(format!(
            "NAS {} did not answer the Disconnect-Request for {} session {} ({} tries, {} ms apart)",
            client.name,
            t.user,
            t.acct_session_id,
            self.settings.disconnect_tries,
            self.settings.disconnect_timeout.as_millis()
        )))
    }

    async fn targets(
        &self,
        user: Option<String>,
        key: Option<String>,
    ) -> Result<Vec<DmTarget>, NasError> {
        let rows = self
            .store
            .call(move |s| s.open_sessions_for(user.as_deref(), key.as_deref()))
            .await
            .map_err(|e| NasError::Unconfirmed(e.to_string()))?
            .map_err(|e| NasError::Unconfirmed(e.to_string()))?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                let (nas, id) = split_key(&r.nas_session_id)?;
                Some(DmTarget {
                    nas,
                    acct_session_id: id.to_string(),
                    user: r.user,
                    mac: r.mac,
                    ip: r.ip,
                })
            })
            .collect())
    }

    /// Logs out every listed session at once; per user, the sessions the NAS logged out (a
    /// session it no longer had is not counted), or the first failure.
    async fn disconnect_all(
        &self,
        targets: Vec<DmTarget>,
    ) -> Result<HashMap<String, u32>, NasError> {
        let mut set = tokio::task::JoinSet::new();
        for t in targets {
            let me = self.clone();
            set.spawn(async move { (me.disconnect_session(&t).await, t.user) });
        }
        let (mut acked, mut failure) = (HashMap::new(), None);
        while let Some(r) = set.join_next().await {
            match r {
                Ok((Ok(outcome), user)) => {
                    *acked.entry(user).or_insert(0) += u32::from(outcome == DmOutcome::Acked)
                }
                Ok((Err(e), _)) => failure = failure.or(Some(e)),
                Err(e) => failure = failure.or(Some(NasError::Unconfirmed(e.to_string()))),
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(acked),
        }
    }
}

impl Nas for RadiusNas {
    // The Access-Accept carries the plan's limits: nothing is kept on the NAS.
    async fn ensure_profile(&self, _p: &DesiredProfile) -> Result<(), NasError> {
        Ok(())
    }
    // The NAS asks us at every login, so our database is the user list.
    async fn upsert_user(&self, _u: &DesiredUser) -> Result<(), NasError> {
        Ok(())
    }
    async fn remove_user(&self, _name: &str) -> Result<bool, NasError> {
        Ok(false)
    }
    // A RADIUS NAS has no cookie that logs a device in without asking us.
    async fn remove_cookies(&self, _user: &str) -> Result<usize, NasError> {
        Ok(0)
    }
    async fn disconnect(&self, user: &str) -> Result<usize, NasError> {
        let targets = self.targets(Some(user.to_string()), None).await?;
        Ok(self
            .disconnect_all(targets)
            .await?
            .into_values()
            .sum::<u32>() as usize)
    }
    async fn bulk_disconnect(
        &self,
        users: &HashSet<String>,
        _disable: &HashSet<String>,
    ) -> Result<HashMap<String, (u32, u32)>, NasError> {
        let targets = self.targets(None, None).await?;
        let targets: Vec<DmTarget> = targets
            .into_iter()
            .filter(|t| users.contains(&t.user))
            .collect();
        let acked = self.disconnect_all(targets).await?;
        // No cookies on a RADIUS NAS: the second count is always 0.
        Ok(users
            .iter()
            .map(|u| (u.clone(), (acked.get(u).copied().unwrap_or(0), 0)))
            .collect())
    }
    async fn kick(&self, session_id: &str) -> Result<(), NasError> {
        let targets = self.targets(None, Some(session_id.to_string())).await?;
        self.disconnect_all(targets).await.map(|_| ())
    }
    // Sessions come from accounting, not from polling the NAS.
    async fn active(&self, _server: Option<&str>) -> Result<Vec<ActiveSession>, NasError> {
        Ok(Vec::new())
    }
    // The device logs in at the NAS's portal, which asks us: nothing to push.
    async fn login(
        &self,
        _user: &str,
        _password: &str,
        _mac: &str,
        _ip: Option<&str>,
    ) -> Result<(), NasError> {
        Ok(())
    }
    async fn health(&self) -> Result<Health, NasError> {
        Ok(Health {
            identity: "radius".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            board: format!("{} RADIUS client(s)", self.settings.clients.len()),
            cpu_load: None,
            free_memory: None,
            total_memory: None,
            uptime: None,
        })
    }
}

/// The enforcer's view of RADIUS NASes: always "connected" (UDP has no connection).
pub struct RadiusLink {
    nas: RadiusNas,
    generation: watch::Sender<u64>,
}

impl RadiusLink {
    pub fn new(nas: RadiusNas) -> Arc<RadiusLink> {
        Arc::new(RadiusLink {
            nas,
            generation: watch::channel(0).0,
        })
    }
}

impl NasLink for RadiusLink {
    type Nas = RadiusNas;
    fn generation(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }
    async fn get(&self) -> Result<RadiusNas, NasError> {
        Ok(self.nas.clone())
    }
    async fn broken(&self, _e: &NasError) {}
    async fn status(&self) -> NasStatus {
        // No connection to report on: the NASes speak to us packet by packet, and a
        // Disconnect-Request that fails is a job's error, shown with the jobs.
        NasStatus {
            kind: "radius",
            reachable: None,
            health: None,
            last_error: None,
            reconnects: 0,
        }
    }
}
