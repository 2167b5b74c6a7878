//! `[radius]` and `[[radius.clients]]`: the local RADIUS server (docs/radius.md).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use crate::secret::Secret;
use crate::units::Span;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct RadiusConfig {
    /// Where Access-Requests arrive (UDP).
    pub auth_listen: SocketAddr,
    /// Where Accounting-Requests arrive (UDP).
    pub accounting_listen: SocketAddr,
    /// Sent in every Access-Accept: how often the NAS reports usage (Interim-Update).
    pub acct_interim_interval: Span,
    /// How long to wait for a Disconnect-ACK/NAK before sending the request again.
    pub disconnect_timeout: Span,
    /// Sends of one Disconnect-Request (same Identifier) before the attempt counts as failed
    /// and the job is retried later.
    pub disconnect_tries: u32,
    pub clients: Vec<RadiusClientConfig>,
}

impl Default for RadiusConfig {
    fn default() -> Self {
        RadiusConfig {
            auth_listen: SocketAddr::from(([0, 0, 0, 0], 1812)),
            accounting_listen: SocketAddr::from(([0, 0, 0, 0], 1813)),
            acct_interim_interval: Span::from_secs(300),
            disconnect_timeout: Span::from_secs(2),
            disconnect_tries: 3,
            clients: Vec::new(),
        }
    }
}

/// What kind of NAS a client is: which vendor attributes its Access-Accepts carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NasKind {
    /// MikroTik hotspot in RADIUS mode: Mikrotik-Rate-Limit, Mikrotik-Total-Limit(-Gigawords).
    Mikrotik,
    /// CoovaChilli (OpenWrt): WISPr-Bandwidth-Max-Up/Down, ChilliSpot-Max-Total-Octets.
    Coova,
    /// Standard attributes only.
    Generic,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RadiusClientConfig {
    /// The NAS's source address, or a network of them (`10.5.0.0/16`).
    pub address: Spanned<ClientNetwork>,
    pub secret: Option<Secret>,
    pub secret_file: Option<PathBuf>,
    pub kind: NasKind,
    /// The NAS's RFC 5176 port for Disconnect-Requests.
    #[serde(default = "default_disconnect_port")]
    pub disconnect_port: u16,
    /// A name for logs (default: the address).
    #[serde(default)]
    pub name: Option<String>,
}

fn default_disconnect_port() -> u16 {
    3799
}

/// An address or network a client's packets may come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientNetwork {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl ClientNetwork {
    pub fn parse(text: &str) -> Result<ClientNetwork, String> {
        let bad = |why: &str| {
            format!("bad client address {text:?}: {why}; write an address (192.168.88.1) or a network (10.5.0.0/16)")
        };
        let (a, p) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = a.trim().parse().map_err(|_| bad("not an IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| bad("bad prefix length"))?,
        };
        let net = ClientNetwork { addr, prefix };
        if net.masked(addr) != addr {
            return Err(bad("host bits are set after the prefix"));
        }
        Ok(net)
    }

    fn masked(&self, ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(v) => {
                let bits = u32::from(v);
                let mask = u32::MAX.checked_shl(32 - self.prefix as u32).unwrap_or(0);
                IpAddr::V4((bits & mask).into())
            }
            IpAddr::V6(v) => {
                let bits = u128::from(v);
                let mask = u128::MAX.checked_shl(128 - self.prefix as u32).unwrap_or(0);
                IpAddr::V6((bits & mask).into())
            }
        }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.addr.is_ipv4() && self.masked(ip) == self.addr
    }
}

impl std::fmt::Display for ClientNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let max = if self.addr.is_ipv4() { 32 } else { 128 };
        if self.prefix == max {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.prefix)
        }
    }
}

impl<'de> Deserialize<'de> for ClientNetwork {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ClientNetwork::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Secrets that ship in examples and default configs: an attacker tries these first.
const KNOWN_SECRETS: &[&str] = &[
    "testing123",
    "secret",
    "radius",
    "radsecret",
    "sharedsecret",
    "mikrotik",
    "coova",
    "chillispot",
    "password",
    "changeme",
];

/// At least 16 characters, and not built from a well-known default such as `testing123`.
pub fn check_secret(secret: &str) -> Result<(), String> {
    let lower = secret.to_ascii_lowercase();
    if let Some(k) = KNOWN_SECRETS
        .iter()
        .find(|k| lower == **k || (k.len() >= 8 && lower.contains(**k)))
    {
        return Err(format!(
            "is built from the well-known default {k:?}; generate one, e.g. `head -c 18 /dev/urandom | base64`"
        ));
    }
    if secret.chars().count() < 16 {
        return Err(format!(
            "is {} characters; use at least 16 (RADIUS hides passwords with MD5 of the secret)",
            secret.chars().count()
        ));
    }
    Ok(())
}

/// Where an error about `[radius]` is in the file: the N-th client's `address` for
/// `[[radius.clients]] N ...`; for `[radius] key ...` nothing, so that the key is found by name
/// in the text (`config::Loaded::locate`); else the section.
pub fn error_span(r: &Spanned<RadiusConfig>, message: &str) -> std::ops::Range<usize> {
    if let Some(rest) = message.strip_prefix("[[radius.clients]] ") {
        let client = rest
            .split_whitespace()
            .next()
            .and_then(|n| n.parse::<usize>().ok())
            .and_then(|n| r.get_ref().clients.get(n.checked_sub(1)?));
        if let Some(c) = client {
            return c.address.span();
        }
    }
    if message.starts_with("[radius] ") {
        return 0..0;
    }
    r.span()
}

pub(super) fn check_radius(r: &RadiusConfig) -> Result<Vec<String>, String> {
    let mut warnings = Vec::new();
    if r.clients.is_empty() {
        return Err("[radius] has no [[radius.clients]]: every request would be dropped".into());
    }
    if r.auth_listen == r.accounting_listen && r.auth_listen.port() != 0 {
        return Err("[radius] auth-listen and accounting-listen must differ".into());
    }
    if r.disconnect_tries == 0 || r.disconnect_tries > 10 {
        return Err("[radius] disconnect-tries must be 1 to 10".into());
    }
    if r.disconnect_timeout.ms() < 100 {
        return Err("[radius] disconnect-timeout must be at least 100ms".into());
    }
    if r.acct_interim_interval.ms() < 60_000 {
        return Err("[radius] acct-interim-interval must be at least 1m (RFC 2869 §5.16)".into());
    }
    let mut seen = std::collections::HashSet::new();
    for (i, c) in r.clients.iter().enumerate() {
        let label = format!("[[radius.clients]] {} ({})", i + 1, c.address.get_ref());
        if !seen.insert(*c.address.get_ref()) {
            return Err(format!("{label}: the same address is listed twice"));
        }
        // Secret files are read and checked by `RadiusSettings::resolve`, which
        // `daemon::Settings::resolve` calls: one read, one set of errors. Inline secrets only warn here.
        if c.secret.is_some() {
            let (_, w) =
                crate::secret::resolve("secret", c.secret.as_ref(), c.secret_file.as_deref())
                    .map_err(|e| format!("{label}: {e}"))?;
            warnings.extend(w.map(|w| format!("{label}: {w}")));
        }
        if c.disconnect_port == 0 {
            return Err(format!("{label}: disconnect-port must not be 0"));
        }
    }
    Ok(warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks() {
        let n = ClientNetwork::parse("10.5.0.0/16").unwrap();
        assert!(n.contains("10.5.200.1".parse().unwrap()));
        assert!(!n.contains("10.6.0.1".parse().unwrap()));
        assert!(n.contains("::ffff:10.5.0.9".parse().unwrap()));
        let one = ClientNetwork::parse("192.168.88.1").unwrap();
        assert_eq!(one.prefix, 32);
        assert!(one.contains("192.168.88.1".parse().unwrap()));
        assert!(!one.contains("192.168.88.2".parse().unwrap()));
        assert!(ClientNetwork::parse("0.0.0.0/0")
            .unwrap()
            .contains("1.2.3.4".parse().unwrap()));
        assert!(ClientNetwork::parse("10.5.0.1/16")
            .unwrap_err()
            .contains("host bits"));
        assert!(ClientNetwork::parse("10.5.0.0/33").is_err());
        assert!(ClientNetwork::parse("router").is_err());
        assert!(ClientNetwork::parse("fd00::/8")
            .unwrap()
            .contains("fd12::1".parse().unwrap()));
    }

    #[test]
    fn secrets() {
        assert!(check_secret("testing123")
            .unwrap_err()
            .contains("well-known"));
        assert!(check_secret("Testing123Testing123")
            .unwrap_err()
            .contains("well-known"));
        assert!(check_secret("short-secret").unwrap_err().contains("16"));
        assert!(check_secret("k3J9-vq2L-x8Pz-0aTm").is_ok());
    }
}
