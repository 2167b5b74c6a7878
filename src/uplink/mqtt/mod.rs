//! Cloud sync over MQTT v5 (docs/mqtt.md): the outbox is published in seq order and removed only
//! once the broker acknowledged it; signed commands are received, stored and answered; a retained
//! status says whether the site is alive.
//!
//! MQTT v5, not 3.1.1, because a v5 broker tells a refused publish apart (PUBACK reason code,
//! e.g. "not authorized" from an ACL); a 3.1.1 broker acknowledges it as if it were delivered,
//! and the outbox would drop events the cloud never got.

mod budget;
pub mod remote;
mod session;
pub mod status;
pub mod tracker;

use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttc::v5::mqttbytes::v5::LastWill;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::MqttOptions;
use rumqttc::{TlsConfiguration, Transport};
use rustls::ClientConfig;
use tokio::sync::watch;

use crate::config::{BrokerUrl, MqttConfig, SYSTEM_CA_BUNDLE};
use crate::secret::Secret;
use crate::shutdown::Shutdown;
use crate::site::Site;

/// Backoff resets once a connection stayed up this long.
const HEALTHY_RESET: Duration = Duration::from_secs(60);
/// How often events written by another process (the CLI) are looked for.
const EXTERNAL_CHANGE_CHECK: Duration = Duration::from_secs(2);
/// Commands the broker may send us before we acknowledge (MQTT v5 Receive Maximum). This is
/// the inbound flow control: a burst waits at the broker, not in our memory (at most this many
/// commands of at most the maximum packet size are held), and the event loop is never starved.
pub const RECEIVE_MAXIMUM: u16 = 16;

#[derive(Debug, Clone)]
pub struct Topics {
    pub events: String,
    pub commands: String,
    pub replies: String,
    pub status: String,
}

impl Topics {
    pub fn new(prefix: &str, site: &str) -> Topics {
        let t = |leaf: &str| format!("{prefix}/{site}/{leaf}");
        Topics {
            events: t("events"),
            commands: t("commands"),
            replies: t("replies"),
            status: t("status"),
        }
    }
}

/// `[mqtt]` resolved: files read, TLS built. Made once at start; a bad one stops the daemon.
#[derive(Clone)]
pub struct MqttSettings {
    pub site: String,
    pub broker: BrokerUrl,
    pub client_id: String,
    pub credentials: Option<(String, Secret)>,
    pub tls: Option<Arc<ClientConfig>>,
    pub keepalive: Duration,
    pub connect_timeout: Duration,
    pub topics: Topics,
    pub command_key: Option<Secret>,
    pub command_max_age_ms: i64,
    pub command_max_bytes: usize,
    pub heartbeat: Duration,
    pub batch: usize,
    pub batch_bytes: usize,
    pub inflight: u16,
    pub session_expiry_s: u32,
}

impl MqttSettings {
    pub fn resolve(m: &MqttConfig, site: &str) -> Result<MqttSettings, String> {
        let broker = BrokerUrl::parse(&m.url).map_err(|e| format!("[mqtt] {e}"))?;
        let password = crate::secret::resolve(
            "[mqtt] password",
            m.password.as_ref(),
            m.password_file.as_deref(),
        )?
        .0;
        let credentials = match (&m.username, password) {
            (Some(u), p) => Some((u.clone(), p.unwrap_or_else(|| Secret::new("")))),
            (None, Some(_)) => return Err("[mqtt] a password needs a username".into()),
            (None, None) => None,
        };
        let tls = if broker.tls {
            let ca = m.ca_file.clone().unwrap_or_else(|| SYSTEM_CA_BUNDLE.into());
            let client = match (&m.client_certificate_file, &m.client_key_file) {
                (Some(c), Some(k)) => Some((c.as_path(), k.as_path())),
                _ => None,
            };
            Some(crate::tls::ca_client_config(&ca, client).map_err(|e| format!("[mqtt] {e}"))?)
        } else {
            None
        };
        let command_key = m
            .command_key_file
            .as_deref()
            .map(crate::secret::read_secret_file)
            .transpose()
            .map_err(|e| format!("[mqtt] command-key-file: {e}"))?;
        if command_key.as_ref().is_some_and(|k| k.expose().len() < 16) {
            return Err("[mqtt] command-key-file: the key is shorter than 16 characters".into());
        }
        Ok(MqttSettings {
            site: site.to_string(),
            client_id: m.client_id.clone().unwrap_or_else(|| site.to_string()),
            broker,
            credentials,
            tls,
            keepalive: m.keepalive.duration(),
            connect_timeout: m.connect_timeout.duration(),
            topics: Topics::new(&m.topic_prefix, site),
            command_key,
            command_max_age_ms: m.command_max_age.ms(),
            command_max_bytes: m.command_max_bytes.0 as usize,
            heartbeat: m.heartbeat.duration(),
            batch: m.batch.max(1),
            batch_bytes: m.batch_bytes.0 as usize,
            inflight: m.inflight.max(1),
            session_expiry_s: u32::try_from(crate::units::non_negative(
                m.session_expiry.ms() / 1000,
            ))
            .unwrap_or(u32::MAX),
        })
    }

    fn options(&self) -> MqttOptions {
        let mut o = MqttOptions::new(
            self.client_id.clone(),
            self.broker.host.clone(),
            self.broker.port,
        );
        o.set_keep_alive(self.keepalive);
        o.set_connection_timeout(self.connect_timeout.as_secs().max(1));
        // A persistent session: commands sent while we are offline wait at the broker.
        o.set_clean_start(false);
        o.set_session_expiry_interval(Some(self.session_expiry_s));
        o.set_manual_acks(true);
        o.set_receive_maximum(Some(RECEIVE_MAXIMUM));
        o.set_outgoing_inflight_upper_limit(self.inflight);
        o.set_max_packet_size(Some(max_packet_size(
            self.batch_bytes.max(self.command_max_bytes),
        )));
        o.set_request_channel_capacity(request_capacity(self.inflight));
        // rumqttc flushes every packet; with Nagle on, a publish written while earlier ones
        // are unacknowledged waits for the peer's delayed ACK (tens of ms) whenever the
        // window runs dry: measured 5x slower drains (docs/benchmarks.md).
        let mut net = rumqttc::NetworkOptions::new();
        net.set_tcp_nodelay(true);
        net.set_connection_timeout(self.connect_timeout.as_secs().max(1));
        o.set_network_options(net);
        o.set_last_will(LastWill::new(
            self.topics.status.clone(),
            status::offline(&self.site),
            QoS::AtLeastOnce,
            true,
            None,
        ));
        if let Some((u, p)) = &self.credentials {
            o.set_credentials(u.clone(), p.expose().to_string());
        }
        if let Some(tls) = &self.tls {
            o.set_transport(Transport::Tls(TlsConfiguration::Rustls(tls.clone())));
        }
        o
    }
}

/// The largest packet we accept, announced in CONNECT. Room for a full batch, and for any
/// message a broker limited to 1 MiB of payload (docs/mqtt.md) may pass on, plus its topic and
/// headers: an oversize command is then read and refused with a `too-large` reply rather than
/// dropped unanswered by the broker (or, over rumqttc's own limit, breaking the connection and
/// being redelivered forever).
fn max_packet_size(largest_payload: usize) -> u32 {
    let payload = largest_payload.max(1 << 20);
    u32::try_from(payload)
        .unwrap_or(u32::MAX)
        .saturating_add(64 * 1024)
}

/// Room in rumqttc's request channel: a window of events (twice the in-flight limit), a reply
/// and an ack per command we may hold, and the status. The session awaits room when it is full
/// (the event loop drains it as the broker acknowledges), so this sizes the common case only.
fn request_capacity(inflight: u16) -> usize {
    2 * inflight as usize + 2 * RECEIVE_MAXIMUM as usize + 32
}

/// Reconnect waits: 1 s doubling to 5 minutes (a broker across the internet may be down long).
pub fn backoff(failures: u32) -> Duration {
    crate::backoff::backoff(failures, Duration::from_secs(1), Duration::from_secs(300))
}

/// Keeps one MQTT connection up until `stop`: connect, sync, and after any failure wait and
/// connect again with a fresh session state (everything unacknowledged is sent again).
pub async fn run(
    settings: Arc<MqttSettings>,
    site: Site,
    down: watch::Sender<Option<Instant>>,
    mut stop: Shutdown,
) {
    let started = Instant::now();
    let mut failures = 0u32;
    tracing::info!(
        broker = %format!("{}:{}", settings.broker.host, settings.broker.port),
        tls = settings.tls.is_some(),
        client_id = %settings.client_id,
        commands = settings.command_key.is_some(),
        "cloud sync over MQTT"
    );
    loop {
        if stop.is_requested() {
            return;
        }
        let attempt = Instant::now();
        let mut s = session::Session::new(&settings, &site, started, &down);
        let outcome = s.run(&mut stop).await;
        let up_for = s.connected_at.map(|t| t.elapsed());
        drop(s);
        let error = match outcome {
            Ok(()) => {
                // So that `status` does not show a stopped daemon as connected.
                record_state(&site, "mqtt", "stopped", "").await;
                return;
            }
            Err(e) => e,
        };
        if up_for.is_some_and(|t| t >= HEALTHY_RESET) || attempt.elapsed() >= HEALTHY_RESET * 5 {
            failures = 0;
        }
        failures += 1;
        let wait = backoff(failures);
        tracing::warn!(error = %error, retry_in_s = wait.as_secs(), "cloud link (MQTT) down");
        down.send_if_modified(|d| {
            if d.is_none() {
                *d = Some(Instant::now());
                true
            } else {
                false
            }
        });
        record_state(&site, "mqtt", "down", &error).await;
        tokio::select! {
            _ = stop.requested() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// What `status` shows about the cloud link (kept in the database: status runs in another
/// process). Failures to record are not worth stopping the uplink for.
pub(crate) async fn record_state(site: &Site, via: &'static str, state: &'static str, error: &str) {
    let error = (!error.is_empty()).then(|| error.to_string());
    let _ = site
        .read(move |s, now| s.set_uplink_state(via, state, error.as_deref(), now))
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mebibyte_message_and_its_headers_fit_the_announced_packet_size() {
        assert_eq!(max_packet_size(64 * 1024), (1 << 20) + 64 * 1024);
        assert_eq!(max_packet_size(4 << 20), (4 << 20) + 64 * 1024);
        assert_eq!(max_packet_size(usize::MAX), u32::MAX);
    }

    #[test]
    fn topics_are_under_prefix_and_site() {
        let t = Topics::new("hotspot", "s1");
        assert_eq!(t.events, "hotspot/s1/events");
        assert_eq!(t.commands, "hotspot/s1/commands");
        assert_eq!(t.replies, "hotspot/s1/replies");
        assert_eq!(t.status, "hotspot/s1/status");
    }
}
