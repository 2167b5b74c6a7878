//! The two UDP sockets of the RADIUS server. Every datagram is checked in this order, and
//! dropped (and counted) at the first failure: a known source address, a well-formed packet of
//! the right code, a valid authenticator (for an Access-Request: a valid Message-Authenticator,
//! against BlastRADIUS), not a retransmission of one already answered. Only then is the store
//! consulted: a read for an Access-Request, one transaction for an Accounting-Request.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::net::UdpSocket;
use tokio::sync::Semaphore;

use super::cache::{AccessCache, ReplyCache, Seen};
use super::disconnect::{session_key, split_key, RadiusNas};
use super::packet::{
    attr, pap_password, Builder, MaCheck, Packet, ACCESS_REQUEST, ACCOUNTING_REQUEST,
    ACCOUNTING_RESPONSE,
};
use super::reply::{self, Answer, Credentials};
use super::RadiusSettings;
use crate::domain::Mac;
use crate::engine::command::Source;
use crate::engine::command::{SessionCounters, SessionEndArgs, SessionStartArgs, UsageArgs};
use crate::engine::{Command, RejectCode};
use crate::nas::Nas;
use crate::shutdown::Shutdown;
use crate::site::Site;
use crate::store::router::AccessView;
use crate::store::StoreError;

/// Requests handled at once; more wait in the socket buffer (and the NAS retransmits).
const MAX_IN_FLIGHT: usize = 256;

/// What the server has done since it started (`status`, the heartbeat, tests).
#[derive(Debug, Default)]
pub struct RadiusStats {
    pub accepted: AtomicU32,
    pub rejected: AtomicU32,
    pub accounting: AtomicU32,
    /// Answered again from the reply cache, or dropped while the first copy was in hand.
    pub retransmits: AtomicU32,
    pub unknown_source: AtomicU32,
    /// A missing or wrong Message-Authenticator or Request Authenticator.
    pub bad_authenticator: AtomicU32,
    pub malformed: AtomicU32,
    /// The store failed: no answer, so the NAS sends the request again.
    pub unanswered: AtomicU32,
}

fn bump(c: &AtomicU32) -> u32 {
    c.fetch_add(1, Ordering::Relaxed) + 1
}

/// Logs the 1st, 2nd, 4th, 8th ... occurrence: a flood does not flood the log.
fn worth_logging(n: u32) -> bool {
    n.is_power_of_two()
}

impl RadiusStats {
    pub fn snapshot(&self) -> serde_json::Value {
        let g = |c: &AtomicU32| c.load(Ordering::Relaxed);
        serde_json::json!({
            "accepted": g(&self.accepted),
            "rejected": g(&self.rejected),
            "accounting": g(&self.accounting),
            "retransmits": g(&self.retransmits),
            "dropped-unknown-source": g(&self.unknown_source),
            "dropped-bad-authenticator": g(&self.bad_authenticator),
            "dropped-malformed": g(&self.malformed),
            "unanswered": g(&self.unanswered),
        })
    }
}

pub struct RadiusServer {
    settings: Arc<RadiusSettings>,
    site: Site,
    nas: RadiusNas,
    pub stats: Arc<RadiusStats>,
    cache: Mutex<ReplyCache>,
    access_cache: Mutex<AccessCache>,
    /// The store's write counter: the access cache is valid while it has not moved.
    writes: Arc<AtomicU32>,
    in_flight: Arc<Semaphore>,
}

/// Binds the authentication and accounting sockets.
pub async fn bind(s: &RadiusSettings) -> Result<(UdpSocket, UdpSocket), String> {
    let bind = |a: SocketAddr, what: &'static str| async move {
        UdpSocket::bind(a)
            .await
            .map_err(|e| format!("[radius] {what} {a}: cannot listen: {e}"))
    };
    Ok((
        bind(s.auth_listen, "auth-listen").await?,
        bind(s.accounting_listen, "accounting-listen").await?,
    ))
}

impl RadiusServer {
    pub fn new(settings: Arc<RadiusSettings>, site: Site) -> Self {
        RadiusServer {
            nas: RadiusNas::new(settings.clone(), site.store().clone()),
            writes: site.store().writes(),
            settings,
            site,
            stats: Arc::default(),
            cache: Mutex::default(),
            access_cache: Mutex::default(),
            in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
        }
    }

    /// Serves one socket until `stop`.
    pub async fn serve(self: Arc<Self>, socket: UdpSocket, accounting: bool, mut stop: Shutdown) {
        let socket = Arc::new(socket);
        let mut buf = vec![0u8; super::packet::MAX_LEN];
        loop {
            let (n, src) = tokio::select! {
                _ = stop.requested() => return,
                r = socket.recv_from(&mut buf) => match r {
                    Ok(x) => x,
                    Err(e) => {
                        // ICMP errors from earlier sends surface here on some systems.
                        tracing::debug!(error = %e, "RADIUS socket");
                        continue;
                    }
                },
            };
            let Some(ci) = self.settings.client_index(src.ip()) else {
                let n = bump(&self.stats.unknown_source);
                if worth_logging(n) {
                    tracing::warn!(source = %src, dropped = n, "RADIUS packet from an address not in [[radius.clients]]: dropped");
                }
                continue;
            };
            let client = &self.settings.clients[ci];
            let pkt = match Packet::parse(&buf[..n]) {
                Ok(p) => p,
                Err(e) => {
                    let n = bump(&self.stats.malformed);
                    if worth_logging(n) {
                        tracing::warn!(nas = %client.name, source = %src, error = %e, dropped = n, "malformed RADIUS packet: dropped");
                    }
                    continue;
                }
            };
            let want = if accounting {
                ACCOUNTING_REQUEST
            } else {
                ACCESS_REQUEST
            };
            if pkt.code() != want {
                let n = bump(&self.stats.malformed);
                if worth_logging(n) {
                    tracing::warn!(nas = %client.name, code = pkt.code(), dropped = n, "RADIUS packet of a code this port does not serve: dropped");
                }
                continue;
            }
            let secret = client.secret.expose().as_bytes();
            let authentic = if accounting {
                pkt.request_authenticator_ok(secret)
                    && pkt.message_authenticator(secret) != MaCheck::Invalid
            } else {
                pkt.message_authenticator(secret) == MaCheck::Valid
            };
            if !authentic {
                let n = bump(&self.stats.bad_authenticator);
                if worth_logging(n) {
                    tracing::warn!(nas = %client.name, source = %src, dropped = n,
                        "RADIUS request without a valid {}: dropped (wrong secret, or a forgery)",
                        if accounting { "Request Authenticator" } else { "Message-Authenticator" });
                }
                continue;
            }
            let key = (src, pkt.id(), pkt.authenticator());
            let seen = self
                .cache
                .lock()
                .map(|mut c| c.check(key, Instant::now()))
                .unwrap_or(Seen::New);
            match seen {
                Seen::New => {}
                Seen::InProgress => {
                    bump(&self.stats.retransmits);
                    continue;
                }
                Seen::Answered(reply) => {
                    bump(&self.stats.retransmits);
                    let _ = socket.send_to(&reply, src).await;
                    continue;
                }
            }
            let Ok(permit) = self.in_flight.clone().acquire_owned().await else {
                return;
            };
            let (me, socket, request) = (self.clone(), socket.clone(), buf[..n].to_vec());
            tokio::spawn(async move {
                let reply = if accounting {
                    me.accounting(&request, src, ci).await
                } else {
                    me.access(&request, ci).await
                };
                match reply {
                    Some(bytes) => {
                        // Cached before it is sent: a retransmission that crosses the reply
                        // gets it again rather than being dropped as in progress.
                        let bytes: Arc<[u8]> = bytes.into();
                        if let Ok(mut c) = me.cache.lock() {
                            c.complete(&key, bytes.clone());
                        }
                        if let Err(e) = socket.send_to(&bytes, src).await {
                            tracing::warn!(to = %src, error = %e, "sending a RADIUS reply");
                        }
                    }
                    None => {
                        bump(&me.stats.unanswered);
                        if let Ok(mut c) = me.cache.lock() {
                            c.forget(&key);
                        }
                    }
                }
                drop(permit);
            });
        }
    }

    /// An Access-Request whose source and Message-Authenticator were checked.
    async fn access(&self, request: &[u8], ci: usize) -> Option<Vec<u8>> {
        // Parsed (and checked) once already: this only walks the attributes again.
        let pkt = Packet::parse(request).ok()?;
        let client = &self.settings.clients[ci];
        let secret = client.secret.expose().as_bytes();
        let auth = pkt.authenticator();
        let user = pkt.text(attr::USER_NAME).unwrap_or("").to_string();
        let creds = if let Some(hidden) = pkt.attr(attr::USER_PASSWORD) {
            pap_password(hidden, &auth, secret).map_or(Credentials::None, Credentials::Pap)
        } else if let Some(response) = pkt.attr(attr::CHAP_PASSWORD) {
            Credentials::Chap {
                response,
                challenge: pkt.attr(attr::CHAP_CHALLENGE).unwrap_or(&auth),
            }
        } else {
            Credentials::None
        };
        let mac = pkt
            .text(attr::CALLING_STATION_ID)
            .and_then(|m| Mac::parse(m).ok());
        let answer = if user.is_empty() {
            Answer::Reject {
                code: "no-user-name",
                message: "enter your user name or voucher code".into(),
            }
        } else {
            let view = self.access_view(&user).await;
            match view {
                Ok(v) => reply::decide(
                    v.as_ref(),
                    &creds,
                    mac.as_ref(),
                    self.settings.interim_interval_s,
                ),
                Err(StoreError::Gone) => return None,
                Err(e) => {
                    tracing::error!(error = %e, user = %user, "RADIUS: reading the user");
                    return None;
                }
            }
        };
        match &answer {
            Answer::Accept(a) => {
                bump(&self.stats.accepted);
                tracing::debug!(nas = %client.name, user = %user, mac = ?mac, session_timeout = a.session_timeout, "Access-Accept");
            }
            Answer::Reject { code, message } => {
                bump(&self.stats.rejected);
                tracing::info!(nas = %client.name, user = %user, mac = ?mac, reason = code, message = %message, "Access-Reject");
            }
        }
        Some(reply::encode(&answer, client.kind, pkt.id()).finish_response(&auth, secret))
    }

    /// The user as of now: from the access cache while nothing was written, else one store read.
    async fn access_view(&self, user: &str) -> Result<Option<AccessView>, StoreError> {
        let writes = self.writes.clone();
        let now = Instant::now();
        let seen = writes.load(Ordering::Acquire);
        if let Some(v) = self
            .access_cache
            .lock()
            .ok()
            .and_then(|c| c.get(user, seen, now))
        {
            return Ok(v);
        }
        let name = user.to_string();
        let (at, v) = self
            .site
            .read(move |s, now| {
                // Taken on the store thread: exactly the state this read sees.
                let at = writes.load(Ordering::Acquire);
                s.access_view(now, &name).map(|v| (at, v))
            })
            .await?;
        if let Ok(mut c) = self.access_cache.lock() {
            c.put(user.to_string(), at, now, v.clone());
        }
        Ok(v)
    }

    /// An Accounting-Request whose source and Request Authenticator were checked. Answered
    /// only once what it says is committed, so that a NAS whose answer is lost sends it again.
    async fn accounting(&self, request: &[u8], src: SocketAddr, ci: usize) -> Option<Vec<u8>> {
        let pkt = Packet::parse(request).ok()?;
        let client = &self.settings.clients[ci];
        let secret = client.secret.expose().as_bytes();
        bump(&self.stats.accounting);
        let Some(status) = pkt.u32(attr::ACCT_STATUS_TYPE) else {
            let n = bump(&self.stats.malformed);
            if worth_logging(n) {
                tracing::warn!(nas = %client.name, "Accounting-Request without Acct-Status-Type: dropped");
            }
            return None;
        };
        if self.settings.apply_accounting {
            let cmds = match status {
                // Accounting-On/Off: the NAS (re)started, so none of its sessions is open.
                7 | 8 => self.nas_restarted(src).await?,
                _ => accounting_commands(&pkt, src, status),
            };
            if !cmds.is_empty() && !self.apply(&pkt, src, cmds).await {
                return None;
            }
        }
        Some(
            Builder::with_message_authenticator(ACCOUNTING_RESPONSE, pkt.id())
                .finish_response(&pkt.authenticator(), secret),
        )
    }

    /// Ends every session we hold open on the NAS at `src`.
    async fn nas_restarted(&self, src: SocketAddr) -> Option<Vec<Command>> {
        let open = match self
            .site
            .store()
            .run(|s| s.open_sessions_for(None, None))
            .await
        {
            Ok(o) => o,
            Err(StoreError::Gone) => return None,
            Err(e) => {
                tracing::error!(error = %e, "RADIUS accounting: store");
                return None;
            }
        };
        let nas = src.ip().to_canonical();
        let cmds: Vec<Command> = open
            .into_iter()
            .filter(|o| split_key(&o.nas_session_id).is_some_and(|(ip, _)| ip == nas))
            .map(|o| {
                Command::SessionEnded(SessionEndArgs {
                    nas_session_id: o.nas_session_id,
                    reason: "nas-restart".into(),
                    bytes_in: None,
                    bytes_out: None,
                })
            })
            .collect();
        tracing::info!(nas = %nas, sessions = cmds.len(), "RADIUS Accounting-On/Off: the NAS restarted; its sessions are closed");
        Some(cmds)
    }

    /// Applies accounting commands in one transaction; false when the store failed. A session
    /// the engine refuses to start (expired, too many devices ...) is logged out at the NAS.
    async fn apply(&self, pkt: &Packet<'_>, src: SocketAddr, cmds: Vec<Command>) -> bool {
        let starts: Vec<Option<String>> = cmds
            .iter()
            .map(|c| match c {
                Command::SessionStarted(a) => Some(a.nas_session_id.clone()),
                _ => None,
            })
            .collect();
        let cmds = cmds.into_iter().map(|c| (None, c)).collect();
        let results = match self.site.apply_many(Source::Radius, cmds).await {
            Ok(r) => r,
            Err(StoreError::Gone) => return false,
            Err(e) => {
                tracing::error!(error = %e, "RADIUS accounting: store");
                return false;
            }
        };
        for (key, r) in starts.iter().zip(&results) {
            let (Some(key), Err(why)) = (key, r) else {
                continue;
            };
            if matches!(why.code, RejectCode::BadArgs) {
                tracing::warn!(source = %src, error = %why.message, "RADIUS accounting: session not recorded");
                continue;
            }
            tracing::warn!(user = ?pkt.text(attr::USER_NAME), session = %key, reason = why.code.as_str(), "session started without entitlement: disconnecting it");
            let (nas, key) = (self.nas.clone(), key.clone());
            tokio::spawn(async move {
                if let Err(e) = nas.kick(&key).await {
                    tracing::warn!(session = %key, error = %e, "Disconnect-Request");
                }
            });
        }
        true
    }
}

/// Acct-Terminate-Cause (RFC 2866 §5.10) as our session end reason.
fn end_reason(cause: Option<u32>) -> &'static str {
    match cause {
        Some(1) => "user-request",
        Some(2) => "lost-carrier",
        Some(3) => "lost-service",
        Some(4) => "idle-timeout",
        Some(5) => "session-timeout",
        Some(6) => "admin-reset",
        Some(7) => "admin-reboot",
        Some(10) => "nas-request",
        Some(11) => "nas-reboot",
        _ => "nas-stop",
    }
}

/// What an Accounting-Request means for our sessions.
fn accounting_commands(pkt: &Packet<'_>, src: SocketAddr, status: u32) -> Vec<Command> {
    let (Some(user), Some(sid)) = (
        pkt.text(attr::USER_NAME),
        pkt.text(attr::ACCT_SESSION_ID).filter(|s| !s.is_empty()),
    ) else {
        return Vec::new();
    };
    let key = session_key(src.ip(), sid);
    let octets = |low: u8, high: u8| {
        (pkt.u32(low).unwrap_or(0) as u64) | ((pkt.u32(high).unwrap_or(0) as u64) << 32)
    };
    let bytes_in = octets(attr::ACCT_INPUT_OCTETS, attr::ACCT_INPUT_GIGAWORDS);
    let bytes_out = octets(attr::ACCT_OUTPUT_OCTETS, attr::ACCT_OUTPUT_GIGAWORDS);
    let start = Command::SessionStarted(SessionStartArgs {
        user: user.to_string(),
        nas_session_id: key.clone(),
        mac: pkt
            .text(attr::CALLING_STATION_ID)
            .and_then(|m| Mac::parse(m).ok())
            .map(|m| m.to_string()),
        ip: pkt.ipv4(attr::FRAMED_IP_ADDRESS).map(|i| i.to_string()),
    });
    match status {
        1 => vec![start],
        // An Interim for a session we never saw start (we were down): start it, then count.
        3 => vec![
            start,
            Command::SessionUsage(UsageArgs {
                sessions: vec![SessionCounters {
                    nas_session_id: key,
                    bytes_in,
                    bytes_out,
                }],
            }),
        ],
        // A Stop for a session already closed (by a Disconnect-ACK) changes nothing: starting
        // it again would count its traffic twice.
        2 => vec![Command::SessionEnded(SessionEndArgs {
            nas_session_id: key,
            reason: end_reason(pkt.u32(attr::ACCT_TERMINATE_CAUSE)).into(),
            bytes_in: Some(bytes_in),
            bytes_out: Some(bytes_out),
        })],
        _ => Vec::new(),
    }
}
