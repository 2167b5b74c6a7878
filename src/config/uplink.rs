//! `[mqtt]` and `[uplink.http]`: how the site reaches the cloud. Defaults live in the `Default`
//! impls here; `check` turns a bad combination into a message naming the key.

use std::path::PathBuf;

use serde::Deserialize;

use crate::secret::Secret;
use crate::units::{Bytes, Span};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct MqttConfig {
    /// `mqtts://host:8883` (TLS) or `mqtt://host:1883` (plain: loopback or `allow-plaintext`).
    pub url: String,
    /// Default: the site id. Must be unique on the broker: a second client with the same id
    /// disconnects the first.
    pub client_id: Option<String>,
    pub username: Option<String>,
    /// Prefer `password-file`; an inline password is accepted with a warning.
    pub password: Option<Secret>,
    pub password_file: Option<PathBuf>,
    /// TLS client authentication (AWS IoT Core and many EMQX setups): PEM certificate and key.
    pub client_certificate_file: Option<PathBuf>,
    pub client_key_file: Option<PathBuf>,
    /// The CA that signed the broker's certificate (PEM). Default: the system bundle at
    /// /etc/ssl/certs/ca-certificates.crt, which bare OpenWrt does not have.
    pub ca_file: Option<PathBuf>,
    /// Send the MQTT password and every event in clear to a broker that is not on loopback.
    pub allow_plaintext: bool,
    pub keepalive: Span,
    pub connect_timeout: Span,
    /// Topics are `{topic-prefix}/{site}/events|commands|replies|status`.
    pub topic_prefix: String,
    /// The HMAC-SHA256 key remote commands are signed with. Without it, remote commands are off
    /// (the daemon does not subscribe) and events are still published.
    pub command_key_file: Option<PathBuf>,
    /// A command issued longer ago than this is refused (only while the clock is trusted).
    pub command_max_age: Span,
    /// A command payload larger than this is refused.
    pub command_max_bytes: Bytes,
    /// How often the retained status (heartbeat) is published.
    pub heartbeat: Span,
    /// Events per message: 1 publishes each event alone (a JSON object); more publishes a JSON
    /// array of up to this many events.
    pub batch: usize,
    /// A batch message stays under this size (one event larger than it is sent alone).
    pub batch_bytes: Bytes,
    /// Messages published but not yet acknowledged by the broker, at most.
    pub inflight: u16,
    /// How long the broker keeps our session (and the commands queued for us) while we are away.
    pub session_expiry: Span,
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            url: String::new(),
            client_id: None,
            username: None,
            password: None,
            password_file: None,
            client_certificate_file: None,
            client_key_file: None,
            ca_file: None,
            allow_plaintext: false,
            keepalive: Span::from_secs(60),
            connect_timeout: Span::from_secs(10),
            topic_prefix: "hotspot".into(),
            command_key_file: None,
            command_max_age: Span::from_secs(3600),
            command_max_bytes: Bytes(64 * 1024),
            heartbeat: Span::from_secs(60),
            batch: 1,
            batch_bytes: Bytes(64 * 1024),
            inflight: 100,
            session_expiry: Span::from_secs(7 * 86_400),
        }
    }
}

/// Where an MQTT url points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    pub tls: bool,
    pub host: String,
    pub port: u16,
}

impl BrokerUrl {
    pub fn parse(url: &str) -> Result<BrokerUrl, String> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("mqtts://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("mqtt://") {
            (false, r)
        } else {
            return Err(format!(
                "url {url:?}: write mqtts://host:8883 (TLS) or mqtt://host:1883"
            ));
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || rest.starts_with('[') => {
                let port = p
                    .parse::<u16>()
                    .map_err(|_| format!("url {url:?}: bad port {p:?}"))?;
                (h, port)
            }
            _ => (rest, if tls { 8883 } else { 1883 }),
        };
        let host = host.trim_matches(['[', ']']);
        if host.is_empty() || host.contains('/') {
            return Err(format!("url {url:?}: no host"));
        }
        Ok(BrokerUrl {
            tls,
            host: host.to_string(),
            port,
        })
    }

    pub fn is_loopback(&self) -> bool {
        self.host == "localhost"
            || self
                .host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct UplinkConfig {
    pub http: Option<HttpUplinkConfig>,
}

/// The HTTPS fallback: when MQTT has been unreachable for `after`, outbox batches are POSTed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct HttpUplinkConfig {
    /// `https://...` (plain `http://` only to loopback).
    pub url: String,
    /// The bearer token, in a file readable only by the daemon.
    pub token_file: Option<PathBuf>,
    /// The CA that signed the server's certificate (PEM); default: the system bundle.
    pub ca_file: Option<PathBuf>,
    /// MQTT unreachable this long before the fallback starts.
    pub after: Span,
    /// Events per POST.
    pub batch: usize,
    /// Wait between POSTs while the fallback is active and the outbox is empty.
    pub interval: Span,
    pub timeout: Span,
}

impl Default for HttpUplinkConfig {
    fn default() -> Self {
        HttpUplinkConfig {
            url: String::new(),
            token_file: None,
            ca_file: None,
            after: Span::from_secs(600),
            batch: 500,
            interval: Span::from_secs(30),
            timeout: Span::from_secs(30),
        }
    }
}

pub const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Checks `[mqtt]`; returns warnings.
pub fn check_mqtt(m: &MqttConfig) -> Result<Vec<String>, String> {
    let mut warnings = Vec::new();
    let url = BrokerUrl::parse(&m.url).map_err(|e| format!("[mqtt] {e}"))?;
    if !url.tls && !url.is_loopback() && !m.allow_plaintext {
        return Err(format!(
            "[mqtt] url {:?} is plain MQTT to another host: use mqtts://, or set allow-plaintext = true to send passwords and payments in clear",
            m.url
        ));
    }
    if !url.tls && m.allow_plaintext && !url.is_loopback() {
        warnings.push("[mqtt] allow-plaintext: events, commands and the MQTT password cross the network in clear".into());
    }
    if url.tls && m.ca_file.is_none() && !std::path::Path::new(SYSTEM_CA_BUNDLE).exists() {
        return Err(format!(
            "[mqtt] ca-file: no CA given and no system bundle at {SYSTEM_CA_BUNDLE}; set ca-file to the broker's CA (PEM)"
        ));
    }
    if m.client_certificate_file.is_some() != m.client_key_file.is_some() {
        return Err("[mqtt] client-certificate-file and client-key-file go together".into());
    }
    if m.client_certificate_file.is_some() && !url.tls {
        return Err("[mqtt] a client certificate needs mqtts://".into());
    }
    // Files (password, command key, CA, client certificate) are read by
    // `MqttSettings::resolve`, which `daemon::Settings::resolve` calls: one read, one set of errors.
    if m.password.is_some() {
        // Inline only: nothing is read here, the warning (or "not both") comes from one place.
        let (_, w) = crate::secret::resolve(
            "[mqtt] password",
            m.password.as_ref(),
            m.password_file.as_deref(),
        )?;
        warnings.extend(w);
    }
    if m.command_key_file.is_none() {
        warnings.push(
            "[mqtt] no command-key-file: remote commands are off (events are still published)"
                .into(),
        );
    }
    if m.topic_prefix.is_empty()
        || m.topic_prefix.contains(['+', '#'])
        || m.topic_prefix.starts_with('/')
        || m.topic_prefix.ends_with('/')
    {
        return Err(format!(
            "[mqtt] topic-prefix {:?}: no '+', '#', and no leading or trailing '/'",
            m.topic_prefix
        ));
    }
    if m.client_id.as_deref() == Some("") {
        return Err("[mqtt] client-id is empty".into());
    }
    if !(1..=1000).contains(&m.batch) {
        return Err(format!("[mqtt] batch must be 1 to 1000, not {}", m.batch));
    }
    if !(1..=1000).contains(&m.inflight) {
        return Err(format!(
            "[mqtt] inflight must be 1 to 1000, not {}",
            m.inflight
        ));
    }
    if m.command_max_bytes.0 < 1024 || m.command_max_bytes.0 > 1024 * 1024 {
        return Err("[mqtt] command-max-bytes must be 1KiB to 1MiB".into());
    }
    for (name, span, min) in [
        ("keepalive", m.keepalive, 5_000),
        ("connect-timeout", m.connect_timeout, 1_000),
        ("heartbeat", m.heartbeat, 1_000),
        ("command-max-age", m.command_max_age, 1_000),
    ] {
        if span.ms() < min {
            return Err(format!(
                "[mqtt] {name} must be at least {}, not {span}",
                Span(min)
            ));
        }
    }
    Ok(warnings)
}

pub fn check_http(h: &HttpUplinkConfig) -> Result<Vec<String>, String> {
    let plain_ok = h.url.starts_with("http://127.0.0.1")
        || h.url.starts_with("http://localhost")
        || h.url.starts_with("http://[::1]");
    if !h.url.starts_with("https://") && !plain_ok {
        return Err(format!(
            "[uplink.http] url {:?}: write https://... (plain http only to loopback)",
            h.url
        ));
    }
    // The token file is read by `HttpSettings::resolve`, which `daemon::Settings::resolve` calls.
    if h.token_file.is_none() {
        return Err("[uplink.http] needs token-file (the bearer token)".into());
    }
    if !(1..=10_000).contains(&h.batch) {
        return Err(format!(
            "[uplink.http] batch must be 1 to 10000, not {}",
            h.batch
        ));
    }
    if h.timeout.ms() < 1000 || h.interval.ms() < 1000 {
        return Err("[uplink.http] timeout and interval must be at least 1s".into());
    }
    Ok(Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls_parse_with_default_ports() {
        let u = BrokerUrl::parse("mqtts://broker.example.com").unwrap();
        assert_eq!(
            (u.tls, u.host.as_str(), u.port),
            (true, "broker.example.com", 8883)
        );
        let u = BrokerUrl::parse("mqtt://127.0.0.1:1884").unwrap();
        assert_eq!((u.tls, u.port), (false, 1884));
        assert!(u.is_loopback());
        let u = BrokerUrl::parse("mqtt://[::1]:1883").unwrap();
        assert_eq!(u.host, "::1");
        assert!(u.is_loopback());
        assert!(BrokerUrl::parse("tcp://x:1")
            .unwrap_err()
            .contains("mqtts://"));
        assert!(BrokerUrl::parse("mqtt://x:99999")
            .unwrap_err()
            .contains("bad port"));
        assert!(BrokerUrl::parse("mqtt://").unwrap_err().contains("no host"));
    }

    #[test]
    fn plain_mqtt_to_another_host_needs_allow_plaintext() {
        let mut m = MqttConfig {
            url: "mqtt://10.0.0.5:1883".into(),
            ..Default::default()
        };
        assert!(check_mqtt(&m).unwrap_err().contains("allow-plaintext"));
        m.allow_plaintext = true;
        let w = check_mqtt(&m).unwrap();
        assert!(w.iter().any(|w| w.contains("in clear")), "{w:?}");
        m.url = "mqtt://localhost:1883".into();
        m.allow_plaintext = false;
        assert!(check_mqtt(&m).is_ok());
    }
}
