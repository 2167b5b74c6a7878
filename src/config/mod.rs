//! The one TOML file a site technician edits. Every section has `deny_unknown_fields` and
//! kebab-case keys; every default lives in the section's `Default` impl below, and nowhere else.
//! `load` turns any mistake into a [`ConfigError`] that names the file, line and column.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::domain::{
    Currency, PaymentUsername, Plan, PlanId, PlanSource, Validity, VoucherUsername,
    VOUCHER_MAX_LEN, VOUCHER_MIN_LEN,
};
use crate::engine::command::PlanArgs;
use crate::engine::plan_from_args;
use crate::secret::Secret;
use crate::units::{check_rate_limit, Bytes, Span};

mod radius;
pub use radius::error_span as radius_error_span;
mod uplink;
pub use radius::{check_secret, ClientNetwork, NasKind, RadiusClientConfig, RadiusConfig};
pub use uplink::{BrokerUrl, HttpUplinkConfig, MqttConfig, UplinkConfig, SYSTEM_CA_BUNDLE};

pub const DEFAULT_PATH: &str = "/etc/hotspot-edge/config.toml";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    pub site: SiteConfig,
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub enforcement: EnforcementConfig,
    #[serde(default)]
    pub users: UsersConfig,
    #[serde(default)]
    pub vouchers: VouchersConfig,
    #[serde(default)]
    pub plans: Vec<PlanConfig>,
    #[serde(default)]
    pub router: RouterConfig,
    #[serde(default)]
    pub mqtt: Option<Spanned<MqttConfig>>,
    #[serde(default)]
    pub uplink: UplinkConfig,
    #[serde(default)]
    pub radius: Option<Spanned<RadiusConfig>>,
    #[serde(default)]
    pub opennds: OpenNdsConfig,
}

/// `[opennds]`: how to reach openNDS for `[router] kind = "opennds"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct OpenNdsConfig {
    /// The ndsctl program.
    pub ndsctl: PathBuf,
    /// Bytes per unit of ndsctl's session counters: 1024 (openNDS 9.6.0 through 10.x), 1000
    /// (9.4-9.5).
    pub counter_unit: u64,
    /// ndsctl exit code 4 (busy) is retried this many times ...
    pub busy_retries: u32,
    /// ... waiting this long times the attempt between tries.
    pub busy_wait: Span,
}

impl Default for OpenNdsConfig {
    fn default() -> Self {
        OpenNdsConfig {
            ndsctl: PathBuf::from("/usr/bin/ndsctl"),
            counter_unit: 1024,
            busy_retries: 5,
            busy_wait: Span(200),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SiteConfig {
    /// Stable id of this hotspot location; used in MQTT topics, so no `/ + #` or spaces.
    pub id: Spanned<SiteId>,
    #[serde(default)]
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteId(pub String);

impl<'de> Deserialize<'de> for SiteId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if ok {
            Ok(SiteId(s))
        } else {
            Err(serde::de::Error::custom(format!(
                "bad site id {s:?}: use 1-64 characters of a-z, 0-9, '-' or '_' (it becomes part of MQTT topics)"
            )))
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct StoreConfig {
    /// The SQLite database. Keep it on persistent storage: anything under /tmp is lost at reboot.
    pub path: PathBuf,
    /// How long a writer waits for another process (the CLI, the daemon) to finish its write.
    pub busy_timeout: Span,
    /// The outbox keeps at most this many unsent events: beyond it the oldest telemetry events
    /// are dropped (an `outbox.dropped` event says so). Money events are never dropped.
    pub outbox_max_events: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            path: PathBuf::from("/var/lib/hotspot-edge/hotspot-edge.db"),
            busy_timeout: Span::from_secs(5),
            outbox_max_events: 50_000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct LogConfig {
    pub level: LogLevel,
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: LogLevel::Info,
            format: LogFormat::Pretty,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct EnforcementConfig {
    /// How often router session counters are read for data quotas (used with a router backend).
    pub usage_poll: Span,
    /// How often those counters are written to the store when no data quota is running low
    /// (the store is on flash; docs/benchmarks.md has the writes per day).
    pub usage_save: Span,
    /// How often the router's active list is compared with ours (used with a router backend).
    pub reconcile: Span,
    /// How often the daemon saves the clock high-water mark (one small write).
    pub clock_checkpoint: Span,
    /// The longest power cut or downtime charged to running `wall` grants at once. A longer gap is
    /// more likely a wrong clock than a real outage; see docs/time.md.
    pub max_offline_charge: Span,
    /// Router operations that fail this many times are marked failed (see `jobs list`).
    pub job_max_attempts: u32,
}

impl Default for EnforcementConfig {
    fn default() -> Self {
        EnforcementConfig {
            usage_poll: Span::from_secs(10),
            usage_save: Span::from_secs(300),
            reconcile: Span::from_secs(60),
            // Each write costs the flash about 16 kB (docs/benchmarks.md): 60 s was 23 MB a day.
            clock_checkpoint: Span::from_secs(300),
            max_offline_charge: Span::from_secs(7 * 86_400),
            job_max_attempts: 10,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct UsersConfig {
    pub payment_username: PaymentUsername,
    pub voucher_username: VoucherUsername,
    pub password_length: usize,
    /// Bind a user to the MAC address it was bought or redeemed with.
    pub bind_mac: bool,
}

impl Default for UsersConfig {
    fn default() -> Self {
        UsersConfig {
            payment_username: PaymentUsername::Generated,
            voucher_username: VoucherUsername::Code,
            password_length: 6,
            bind_mac: false,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct VouchersConfig {
    pub length: usize,
    /// Unredeemed vouchers expire this long after they were generated (none if absent).
    pub unredeemed_expiry: Option<Span>,
}

impl Default for VouchersConfig {
    fn default() -> Self {
        VouchersConfig {
            length: 8,
            unredeemed_expiry: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PlanConfig {
    pub id: Spanned<PlanId>,
    pub name: String,
    pub price: u64,
    pub currency: Currency,
    pub time: Span,
    #[serde(default = "default_validity")]
    pub validity: Validity,
    pub data: Option<Bytes>,
    pub rate_limit: Option<Spanned<String>>,
    #[serde(default = "default_devices")]
    pub devices: Spanned<u32>,
    /// A session idle this long is logged out by a RADIUS NAS (Idle-Timeout).
    pub idle_timeout: Option<Span>,
}

fn default_validity() -> Validity {
    Validity::Wall
}
fn default_devices() -> Spanned<u32> {
    Spanned::new(0..0, 1)
}

impl PlanConfig {
    pub fn to_plan(&self) -> Plan {
        Plan {
            id: self.id.get_ref().clone(),
            name: self.name.clone(),
            price: self.price,
            currency: self.currency.clone(),
            time: self.time,
            validity: self.validity,
            data: self.data,
            rate_limit: self.rate_limit.as_ref().map(|r| r.get_ref().clone()),
            devices: *self.devices.get_ref(),
            idle_timeout: self.idle_timeout,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RouterKind {
    /// No router: users, grants and expiry are kept and reported, router operations wait in the
    /// jobs table until a router backend is configured.
    None,
    /// A MikroTik RouterOS hotspot, managed over its API.
    Routeros,
    /// Any RADIUS NAS (MikroTik in RADIUS mode, CoovaChilli): it asks our `[radius]` server,
    /// and is told to log users out with RFC 5176 Disconnect-Requests.
    Radius,
    /// openNDS on this OpenWrt router, driven through `ndsctl` (`[opennds]`).
    Opennds,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct RouterConfig {
    pub kind: RouterKind,
    /// `host:port` of the RouterOS API (8729 API-SSL, 8728 plain).
    pub address: String,
    pub username: String,
    /// Prefer `password-file`; an inline password is accepted with a warning.
    pub password: Option<Secret>,
    pub password_file: Option<PathBuf>,
    /// The hotspot server whose sessions are ours (`/ip hotspot` name), or "all".
    pub hotspot_server: String,
    /// API-SSL: trust the router's certificate if a CA in this PEM file signed it ...
    pub tls_ca_file: Option<PathBuf>,
    /// ... or if its SHA-256 fingerprint is this (MikroTik's self-signed certificates).
    pub tls_certificate_sha256: Option<String>,
    /// The name expected in the certificate with `tls-ca-file` (default: the host of `address`).
    pub tls_server_name: Option<String>,
    /// Use the plain API (password in clear on the wire). Off unless set: say so explicitly.
    pub allow_plaintext: bool,
    pub connect_timeout: Span,
    /// Every API command is abandoned after this long (a half-open socket never answers).
    pub command_timeout: Span,
    /// How often the connection is probed while idle.
    pub probe_interval: Span,
    /// Extra time on the router-side `limit-uptime`, so the router cuts off only if we did not.
    pub safety_margin: Span,
}

impl RouterConfig {
    /// The host part of `address` (`[::1]:8729` -> `::1`).
    pub fn host(&self) -> &str {
        self.address
            .rsplit_once(':')
            .map(|(h, _)| h)
            .unwrap_or(&self.address)
            .trim_matches(['[', ']'])
    }
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            kind: RouterKind::None,
            address: String::new(),
            username: "hotspot-edge".into(),
            password: None,
            password_file: None,
            tls_ca_file: None,
            tls_certificate_sha256: None,
            tls_server_name: None,
            hotspot_server: "all".into(),
            allow_plaintext: false,
            connect_timeout: Span::from_secs(5),
            command_timeout: Span::from_secs(5),
            probe_interval: Span::from_secs(5),
            safety_margin: Span::from_secs(60),
        }
    }
}

/// A config that failed to load, with where.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file itself cannot be read (the message names it).
    #[error("{0}")]
    File(String),
    #[error("{path}:{line}:{col}: {message}")]
    At {
        path: String,
        line: usize,
        col: usize,
        message: String,
    },
    #[error("{path}: {message}")]
    Whole { path: String, message: String },
}

/// A loaded config plus what a technician should look at but that does not stop the daemon.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<String>,
    /// The file's name and text, to point at a span found later (`daemon::Settings`).
    path: String,
    text: String,
}

impl Loaded {
    /// An error about the part of the file at `span` (none: the file as a whole).
    pub fn locate(&self, span: Option<std::ops::Range<usize>>, message: String) -> ConfigError {
        at(&self.text, &self.path, span, message)
    }
}

/// `file:line:col: message`, or `file: message` for an empty span.
fn at(
    text: &str,
    path: &str,
    span: Option<std::ops::Range<usize>>,
    message: String,
) -> ConfigError {
    // A check about a whole section has no span from serde: its message starts with the
    // section (`[router] address ...`), which is found in the text, at its key if written.
    let span = match span {
        Some(s) if !(s.start == 0 && s.end == 0) => Some(s),
        _ => section_key_span(text, &message),
    };
    match span {
        Some(span) if !(span.start == 0 && span.end == 0 && !text.is_empty()) => {
            let (line, col) = line_col(text, span.start);
            ConfigError::At {
                path: path.to_string(),
                line,
                col,
                message,
            }
        }
        _ => ConfigError::Whole {
            path: path.to_string(),
            message,
        },
    }
}

impl Config {
    pub fn site_id(&self) -> &str {
        &self.site.id.get_ref().0
    }
    pub fn plans(&self) -> Vec<Plan> {
        self.plans.iter().map(PlanConfig::to_plan).collect()
    }
}

/// Most bytes of a config file (a site with hundreds of plans is ~100 kB).
const CONFIG_FILE_MAX: u64 = 1024 * 1024;

pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
    let bytes = crate::secret::read_bounded(path, CONFIG_FILE_MAX).map_err(ConfigError::File)?;
    let text = String::from_utf8(bytes).map_err(|e| ConfigError::Whole {
        path: path.display().to_string(),
        message: format!(
            "not UTF-8 text (byte {} is not); save the file as UTF-8",
            e.utf8_error().valid_up_to()
        ),
    })?;
    parse(&text, &path.display().to_string())
}

/// Parses and checks config text. `path` is only used in messages. Reads no file: the files
/// a config names (secrets, CA bundles) are read by `daemon::Settings::resolve`.
pub fn parse(text: &str, path: &str) -> Result<Loaded, ConfigError> {
    let config: Config = toml::from_str(text)
        .map_err(|e| at(text, path, e.span(), e.message().trim().to_string()))?;
    let warnings = check(&config).map_err(|(span, message)| at(text, path, Some(span), message))?;
    Ok(Loaded {
        config,
        warnings,
        path: path.to_string(),
        text: text.to_string(),
    })
}

/// Checks that need more than one field. Errors carry the span of the field at fault.
fn check(c: &Config) -> Result<Vec<String>, (std::ops::Range<usize>, String)> {
    let mut warnings = Vec::new();
    let mut seen = HashSet::new();
    for p in &c.plans {
        if !seen.insert(p.id.get_ref().clone()) {
            return Err((
                p.id.span(),
                format!("duplicate plan id {:?}", p.id.get_ref().as_str()),
            ));
        }
        if *p.devices.get_ref() == 0 {
            return Err((p.devices.span(), "devices must be at least 1".to_string()));
        }
        if let Some(r) = &p.rate_limit {
            check_rate_limit(r.get_ref()).map_err(|m| (r.span(), m))?;
        }
        // Every check the daemon runs when it brings the plan in at start (time, price, idle
        // timeout); devices and rate limit were checked above where they have their own span.
        let args = PlanArgs::from_plan(&p.to_plan(), PlanSource::Config);
        if let Err(e) = plan_from_args(&args) {
            return Err((
                p.id.span(),
                format!("plan {:?}: {e}", p.id.get_ref().as_str()),
            ));
        }
    }
    if !(VOUCHER_MIN_LEN..=VOUCHER_MAX_LEN).contains(&c.vouchers.length) {
        return Err((
            0..0,
            format!(
                "[vouchers] length must be {VOUCHER_MIN_LEN} to {VOUCHER_MAX_LEN}, not {}",
                c.vouchers.length
            ),
        ));
    }
    if !(4..=32).contains(&c.users.password_length) {
        return Err((
            0..0,
            format!(
                "[users] password-length must be 4 to 32, not {}",
                c.users.password_length
            ),
        ));
    }
    // SQLite takes the busy timeout as an int of milliseconds: 25 days overflowed it and every
    // command then panicked.
    if !(1..=600_000).contains(&c.store.busy_timeout.ms()) {
        return Err((
            0..0,
            format!(
                "[store] busy-timeout must be 1ms to 10m, not {}",
                c.store.busy_timeout
            ),
        ));
    }
    if c.enforcement.job_max_attempts == 0 {
        return Err((
            0..0,
            "[enforcement] job-max-attempts must be at least 1".into(),
        ));
    }
    for (name, span) in [
        ("usage-poll", c.enforcement.usage_poll),
        ("usage-save", c.enforcement.usage_save),
        ("reconcile", c.enforcement.reconcile),
        ("clock-checkpoint", c.enforcement.clock_checkpoint),
    ] {
        if span.ms() < 1000 {
            return Err((
                0..0,
                format!("[enforcement] {name} must be at least 1s, not {span}"),
            ));
        }
    }
    if c.router.kind == RouterKind::Routeros {
        let r = &c.router;
        if r.address.is_empty() || !r.address.contains(':') {
            return Err((
                0..0,
                format!(
                    "[router] address {:?}: write host:port, e.g. \"192.168.88.1:8729\"",
                    r.address
                ),
            ));
        }
        let tls = r.tls_ca_file.is_some() || r.tls_certificate_sha256.is_some();
        match (tls, r.allow_plaintext) {
            (true, true) => {
                return Err((0..0, "[router] choose API-SSL (tls-ca-file or tls-certificate-sha256) or allow-plaintext, not both".into()))
            }
            (false, false) => {
                return Err((0..0, "[router] API-SSL needs tls-certificate-sha256 (the router certificate's fingerprint) or tls-ca-file; for the plain API (port 8728) set allow-plaintext = true".into()))
            }
            (false, true) => warnings.push("[router] allow-plaintext: the RouterOS password crosses the network in clear; use it only on a link you trust".into()),
            (true, false) => {
                crate::tls::Trust::from_config(
                    r.tls_ca_file.as_deref(),
                    r.tls_certificate_sha256.as_deref(),
                )
                .map_err(|m| (0..0, format!("[router] {m}")))?;
            }
        }
        match (&r.password, &r.password_file) {
            (None, None) => {
                return Err((0..0, "[router] needs password-file (or password)".into()))
            }
            // Inline only: the file is read by `daemon::Settings::resolve`.
            (Some(_), _) => warnings.extend(
                crate::secret::resolve(
                    "[router] password",
                    r.password.as_ref(),
                    r.password_file.as_deref(),
                )
                .map_err(|m| (0..0, m))?
                .1,
            ),
            (None, Some(_)) => {}
        }
        for (name, span) in [
            ("connect-timeout", r.connect_timeout),
            ("command-timeout", r.command_timeout),
            ("probe-interval", r.probe_interval),
        ] {
            if span.ms() < 100 {
                return Err((
                    0..0,
                    format!("[router] {name} must be at least 100ms, not {span}"),
                ));
            }
        }
    }
    if c.router.kind == RouterKind::Opennds {
        if !cfg!(feature = "opennds") {
            return Err((
                0..0,
                "[router] kind = \"opennds\": this build has no openNDS backend (built without the cargo feature opennds)".into(),
            ));
        }
        let o = &c.opennds;
        if !matches!(o.counter_unit, 1000 | 1024) {
            return Err((
                0..0,
                format!(
                    "[opennds] counter-unit must be 1000 or 1024, not {}",
                    o.counter_unit
                ),
            ));
        }
        if o.busy_retries > 50 || o.busy_wait.ms() > 5000 {
            return Err((
                0..0,
                "[opennds] busy-retries at most 50 and busy-wait at most 5s: a busy openNDS must not hold the enforcer for minutes".into(),
            ));
        }
    }
    match (&c.radius, c.router.kind) {
        (Some(r), _kind) => {
            warnings.extend(
                radius::check_radius(r.get_ref()).map_err(|e| (radius::error_span(r, &e), e))?,
            );
            #[cfg(not(feature = "radius"))]
            return Err((
                r.span(),
                "[radius]: this build has no RADIUS server (built without the cargo feature radius)".into(),
            ));
        }
        (None, RouterKind::Radius) => {
            return Err((
                0..0,
                "[router] kind = \"radius\" needs a [radius] section with its [[radius.clients]]"
                    .into(),
            ))
        }
        (None, _) => {}
    }
    if let Some(m) = &c.mqtt {
        warnings.extend(uplink::check_mqtt(m.get_ref()).map_err(|e| (m.span(), e))?);
    }
    if let Some(h) = &c.uplink.http {
        if c.mqtt.is_none() {
            return Err((
                0..0,
                "[uplink.http] is the fallback of [mqtt]: configure [mqtt] too".into(),
            ));
        }
        warnings.extend(uplink::check_http(h).map_err(|e| (0..0, e))?);
        #[cfg(not(feature = "http-uplink"))]
        return Err((
            0..0,
            "[uplink.http]: this build has no HTTPS uplink (cargo feature http-uplink)".into(),
        ));
    }
    if c.store.path.starts_with("/tmp") {
        warnings.push(format!(
            "[store] path {} is under /tmp: payments and users are lost at reboot",
            c.store.path.display()
        ));
    }
    if c.plans.is_empty() {
        warnings.push(
            "no [[plans]]: nothing can be sold until plans are added here or pushed by the cloud"
                .into(),
        );
    }
    if c.users.password_length < 6 {
        warnings.push(format!(
            "[users] password-length {} is easy to guess; 6 or more is advised",
            c.users.password_length
        ));
    }
    Ok(warnings)
}

/// Where `[section] key ...` of a message is written: the key's line inside the section, else
/// the section's header; none when the section is not in the file (its defaults are at fault).
fn section_key_span(text: &str, message: &str) -> Option<std::ops::Range<usize>> {
    let mut words = message.split_whitespace();
    let header = words.next()?;
    if !(header.starts_with('[') && header.ends_with(']')) || header.starts_with("[[") {
        return None;
    }
    let name = &header[1..header.len() - 1];
    let key = words
        .next()
        .map(|k| k.trim_end_matches(':'))
        .filter(|k| k.chars().all(|c| c.is_ascii_lowercase() || c == '-') && !k.is_empty());
    let mut offset = 0;
    let mut found: Option<std::ops::Range<usize>> = None;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let at = offset + (line.len() - trimmed.len());
        offset += line.len();
        let is_header = trimmed.starts_with('[');
        match &found {
            None if is_header
                && trimmed
                    .split(']')
                    .next()
                    .is_some_and(|h| h[1..].trim() == name) =>
            {
                found = Some(at..at + header.len());
                if key.is_none() {
                    break;
                }
            }
            Some(_) if is_header => break,
            Some(_) => {
                if let Some(k) = key {
                    let rest = trimmed.strip_prefix(k).map(str::trim_start);
                    if rest.is_some_and(|r| r.starts_with('=')) {
                        return Some(at..at + k.len());
                    }
                }
            }
            None => {}
        }
    }
    found
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    (line, before[line_start..].chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[site]
id = "test-site"

[[plans]]
id = "1h"
name = "One hour"
price = 1000
currency = "KES"
time = "1h"
"#;

    fn err(text: &str) -> String {
        parse(text, "c.toml").unwrap_err().to_string()
    }

    /// What the daemon would refuse at start is refused by the check: a price beyond what the
    /// store holds (exit 74 at start before), a busy timeout SQLite cannot take (a panic on every
    /// command before), an idle timeout under a second.
    #[test]
    fn what_the_daemon_would_refuse_at_start_fails_the_check() {
        let plan = |extra: &str| {
            format!("{GOOD}\n[[plans]]\nid = \"big\"\nname = \"x\"\ncurrency = \"KES\"\ntime = \"2h\"\n{extra}\n")
        };
        let e = err(&plan("price = 9223372036854775808"));
        assert!(
            e.contains("price 9223372036854775808 is out of range"),
            "{e}"
        );
        assert!(e.starts_with("c.toml:13:6: plan \"big\""), "{e}");
        assert!(parse(&plan("price = 9223372036854775807"), "c.toml").is_ok());
        let e = err(&plan("price = 1\nidle-timeout = \"500ms\""));
        assert!(e.contains("idle-timeout must be at least 1s"), "{e}");
        let e = err(&format!("{GOOD}\n[store]\nbusy-timeout = \"25d\"\n"));
        assert!(
            e.contains("busy-timeout must be 1ms to 10m, not 3w4d"),
            "{e}"
        );
    }

    /// A check about a section points at the key it names, or the section's header; a
    /// section left to its defaults has no line to point at.
    #[test]
    fn section_checks_point_at_their_key_or_header() {
        let e = err(&format!(
            "{GOOD}\n[router]\nkind = \"routeros\"\naddress = \"no-port\"\n"
        ));
        assert!(e.starts_with("c.toml:14:1: [router] address"), "{e}");
        let e = err(&format!(
            "{GOOD}\n[store]\n# comment\nbusy-timeout = \"25d\"\n"
        ));
        assert!(e.starts_with("c.toml:14:1: [store] busy-timeout"), "{e}");
        let e = err(&format!("{GOOD}\n[vouchers]\nlength = 2\n"));
        assert!(e.starts_with("c.toml:13:1: [vouchers] length"), "{e}");
        // The header when the key is not written; the file when the section is not.
        let e = err(&format!("{GOOD}\n[router]\nkind = \"routeros\"\n"));
        assert!(e.starts_with("c.toml:12:1: [router]"), "{e}");
        let e = err(&format!("{GOOD}\n[router]\nkind = \"radius\"\n"));
        assert!(e.starts_with("c.toml:13:1: [router] kind"), "{e}");
        let e = err(&format!("{GOOD}\n[enforcement]\njob-max-attempts = 0\n"));
        assert!(
            e.starts_with("c.toml:13:1: [enforcement] job-max-attempts"),
            "{e}"
        );
    }

    #[test]
    fn good_config_with_defaults() {
        let l = parse(GOOD, "c.toml").unwrap();
        assert_eq!(l.config.site_id(), "test-site");
        assert_eq!(l.config.enforcement.usage_poll, Span::from_secs(10));
        let p = &l.config.plans()[0];
        assert_eq!(p.validity, Validity::Wall);
        assert_eq!(p.devices, 1);
        assert_eq!(p.time.ms(), 3_600_000);
    }

    #[test]
    fn unknown_key_points_at_line_and_column() {
        let text = format!("{GOOD}colour = \"blue\"\n");
        assert_eq!(
            err(&text),
            "c.toml:11:1: unknown field `colour`, expected one of `id`, `name`, `price`, `currency`, `time`, `validity`, `data`, `rate-limit`, `devices`, `idle-timeout`"
        );
    }

    #[test]
    fn bad_values_are_located() {
        let text = GOOD.replace("time = \"1h\"", "time = \"1 hour\"");
        assert!(
            err(&text).starts_with("c.toml:10:8: bad duration"),
            "{}",
            err(&text)
        );
        let text = format!("{GOOD}rate-limit = \"fast\"\n");
        assert!(
            err(&text).starts_with("c.toml:11:14: bad rate limit"),
            "{}",
            err(&text)
        );
        let text = format!("{GOOD}\n[mqtt]\nurl = \"x\"\n");
        assert!(
            err(&text).starts_with("c.toml:12:1: [mqtt] url \"x\": write mqtts://"),
            "{}",
            err(&text)
        );
        let text = format!("{GOOD}\n[radius]\nport = 1812\n");
        assert!(
            err(&text).starts_with("c.toml:13:1: unknown field `port`"),
            "{}",
            err(&text)
        );
    }

    #[test]
    fn radius_section_is_checked_at_load_without_reading_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("s");
        let radius = |secret_text: &str, extra: &str| {
            std::fs::write(&secret, secret_text).unwrap();
            format!(
                "{GOOD}\n[router]\nkind = \"radius\"\n[radius]\n{extra}\n[[radius.clients]]\naddress = \"10.5.0.0/16\"\nsecret-file = \"{}\"\nkind = \"coova\"\n",
                secret.display()
            )
        };
        let l = parse(&radius("k3J9-vq2L-x8Pz-0aTm\n", ""), "c.toml").unwrap();
        let r = l.config.radius.as_ref().unwrap().get_ref();
        assert_eq!(r.clients[0].disconnect_port, 3799);
        assert_eq!(r.auth_listen.port(), 1812);
        // The secret file is not read at load (daemon::settings tests it).
        assert!(parse(&radius("testing123\n", ""), "c.toml").is_ok());
        let text = radius("k3J9-vq2L-x8Pz-0aTm\n", "disconnect-tries = 0");
        let line = 1 + text
            .lines()
            .position(|l| l == "disconnect-tries = 0")
            .unwrap();
        let e = err(&text);
        assert!(
            e.starts_with(&format!("c.toml:{line}:1: [radius] disconnect-tries")),
            "at the key: {e}"
        );
        // An error about the second client points at the second client.
        let text = format!(
            "{}[[radius.clients]]\naddress = \"10.6.0.0/16\"\nsecret-file = \"{}\"\nkind = \"coova\"\ndisconnect-port = 0\n",
            radius("k3J9-vq2L-x8Pz-0aTm\n", ""),
            secret.display()
        );
        let line = 1 + text
            .lines()
            .position(|l| l.contains("10.6.0.0/16"))
            .unwrap();
        let e = err(&text);
        assert!(
            e.starts_with(&format!(
                "c.toml:{line}:11: [[radius.clients]] 2 (10.6.0.0/16): disconnect-port"
            )),
            "{e}"
        );
        let text = format!("{GOOD}\n[router]\nkind = \"radius\"\n");
        assert!(
            err(&text).contains("needs a [radius] section"),
            "{}",
            err(&text)
        );
        let text = radius("k3J9-vq2L-x8Pz-0aTm\n", "").replace("10.5.0.0/16", "10.5.0.1/16");
        assert!(err(&text).contains("host bits"), "{}", err(&text));
    }

    #[test]
    fn duplicate_plan_is_located_at_the_second() {
        let text = format!("{GOOD}\n[[plans]]\nid = \"1h\"\nname = \"x\"\nprice = 1\ncurrency = \"KES\"\ntime = \"2h\"\n");
        assert_eq!(err(&text), "c.toml:13:6: duplicate plan id \"1h\"");
    }

    #[test]
    fn tmp_store_path_warns() {
        let text = format!("{GOOD}\n[store]\npath = \"/tmp/x.db\"\n");
        let l = parse(&text, "c.toml").unwrap();
        assert!(l.warnings.iter().any(|w| w.contains("/tmp")));
    }
}
