//! What a RouterOS value means, so that a value hotspot-edge wrote is compared with the value the
//! router prints by meaning, never as a string. A `print` does not echo what was written
//! (docs/routeros-simulator.md cites each form): booleans written `yes` print `true`, `24h` prints
//! `1d` (or `1d00:00:00` in older forms), MACs print in upper case, rate limits are re-formatted,
//! and a field at its "no limit" default (`0`, `0s`, `none`, `00:00:00:00:00:00`) may be left out
//! of the reply altogether.
//!
//! One table ([`kind_of`]) knows each hotspot field's type; [`same`] compares a written value with
//! a printed one (or with its absence). A value that cannot be read is a [`ReadBackError`] naming
//! the menu, the field and both values: the caller fails the job with it instead of retrying in a
//! loop, since a router that prints something we cannot read will print it again.

use super::format::parse_duration;

/// The type of a field, as far as comparing it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `yes`/`true`, `no`/`false`; absent is the default `false` (`disabled`).
    Bool,
    /// A limit of time: `0`, `0s`, `none` and absent all mean "no limit".
    LimitDuration,
    /// A limit in bytes: `0` and absent mean "no limit".
    LimitBytes,
    /// A count that may be `unlimited` (`shared-users`).
    Count,
    /// A MAC address in any case and with `:` or `-`; `00:00:00:00:00:00` and absent mean "any".
    Mac,
    /// `rx[/tx] [burst-rx[/burst-tx] [threshold-rx[/tx] [time-rx[/tx] [priority [limit-at]]]]]`
    /// with `k`/`M`/`G` units.
    RateLimit,
    /// Comma-separated `*HEX` ids, in any order and hex case.
    IdList,
    /// Shown only to an API user with the `sensitive` policy (RouterOS hides passwords from
    /// others): compared when printed, unknown when not.
    Secret,
    /// Compared exactly; absent is the empty string.
    Text,
}

/// The kind of `field` in `menu` (`/ip/hotspot/user`, `/ip/hotspot/user/profile`, ...).
pub fn kind_of(menu: &str, field: &str) -> Kind {
    match (menu, field) {
        (_, ".id" | "numbers") => Kind::IdList,
        (_, "disabled" | "add-mac-cookie" | "transparent-proxy" | "radius" | "dynamic") => {
            Kind::Bool
        }
        (
            _,
            "limit-uptime" | "session-timeout" | "idle-timeout" | "keepalive-timeout"
            | "mac-cookie-timeout" | "status-autorefresh",
        ) => Kind::LimitDuration,
        (_, "limit-bytes-in" | "limit-bytes-out" | "limit-bytes-total") => Kind::LimitBytes,
        (_, "shared-users") => Kind::Count,
        (_, "mac-address") => Kind::Mac,
        (_, "rate-limit") => Kind::RateLimit,
        ("/ip/hotspot/user", "password") => Kind::Secret,
        _ => Kind::Text,
    }
}

/// A value that cannot be compared: the router printed (or we were about to write) something
/// that does not read as the field's type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{menu} {field}: cannot compare written {written:?} with printed {printed}: {why}")]
pub struct ReadBackError {
    pub menu: String,
    pub field: String,
    pub written: String,
    /// The printed value quoted, or `(absent)`.
    pub printed: String,
    pub why: String,
}

/// What a value means, for comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Meaning {
    Bool(bool),
    /// Milliseconds; `None` is "no limit".
    Limit(Option<i64>),
    Bytes(Option<u64>),
    Count(Option<u32>),
    /// `None` is "any MAC".
    Mac(Option<[u8; 6]>),
    Rate(RateLimit),
    Ids(Vec<u32>),
    Text(String),
}

/// The outcome of comparing a written value with a printed one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Same,
    Differs,
    /// The router does not show this field to us (a password without the `sensitive` policy):
    /// write it to be sure, and take the write's `!done` as the confirmation.
    Hidden,
}

/// Compares what was written to `field` of `menu` with what `print` shows (`None`: the field
/// was left out of the reply).
pub fn compare(
    menu: &str,
    field: &str,
    written: &str,
    printed: Option<&str>,
) -> Result<Verdict, ReadBackError> {
    let kind = kind_of(menu, field);
    let err = |why: String| ReadBackError {
        menu: menu.to_string(),
        field: field.to_string(),
        written: written.to_string(),
        printed: printed.map_or_else(|| "(absent)".to_string(), |p| format!("{p:?}")),
        why,
    };
    if kind == Kind::Secret {
        // Left out or printed empty: which one a router does for a user without `sensitive` is
        // not recorded, and hotspot-edge never writes an empty password.
        return Ok(match printed {
            None | Some("") => Verdict::Hidden,
            Some(p) if p == written => Verdict::Same,
            Some(_) => Verdict::Differs,
        });
    }
    let w = meaning(kind, Some(written)).map_err(|e| err(format!("written value: {e}")))?;
    let p = meaning(kind, printed).map_err(|e| err(format!("printed value: {e}")))?;
    Ok(if w == p {
        Verdict::Same
    } else {
        Verdict::Differs
    })
}

/// True when written and printed mean the same (a hidden value counts as the same: see
/// [`Verdict::Hidden`]).
pub fn same(
    menu: &str,
    field: &str,
    written: &str,
    printed: Option<&str>,
) -> Result<bool, ReadBackError> {
    compare(menu, field, written, printed).map(|v| v != Verdict::Differs)
}

/// Reads a printed boolean (`true`/`yes`, `false`/`no`; absent is false).
pub fn printed_bool(v: Option<&str>) -> Result<bool, String> {
    match meaning(Kind::Bool, v)? {
        Meaning::Bool(b) => Ok(b),
        _ => Err("not a boolean".into()),
    }
}

fn meaning(kind: Kind, v: Option<&str>) -> Result<Meaning, String> {
    let v = v.map(str::trim);
    Ok(match kind {
        Kind::Bool => Meaning::Bool(match v {
            None | Some("") => false,
            Some(t) if t.eq_ignore_ascii_case("yes") || t.eq_ignore_ascii_case("true") => true,
            Some(t) if t.eq_ignore_ascii_case("no") || t.eq_ignore_ascii_case("false") => false,
            Some(t) => return Err(format!("{t:?} is not yes/no/true/false")),
        }),
        Kind::LimitDuration => Meaning::Limit(match v {
            None | Some("") | Some("none") | Some("0") => None,
            Some(t) => match parse_duration(t)? {
                None | Some(0) => None,
                Some(ms) => Some(ms),
            },
        }),
        Kind::LimitBytes => Meaning::Bytes(match v {
            None | Some("") => None,
            Some(t) => match t
                .parse::<u64>()
                .map_err(|_| format!("{t:?} is not a byte count"))?
            {
                0 => None,
                n => Some(n),
            },
        }),
        Kind::Count => Meaning::Count(match v {
            None | Some("") => Some(1),
            Some("unlimited") => None,
            Some(t) => Some(t.parse().map_err(|_| format!("{t:?} is not a count"))?),
        }),
        Kind::Mac => Meaning::Mac(match v {
            None | Some("") => None,
            Some(t) => {
                let mac = parse_mac(t).ok_or_else(|| format!("{t:?} is not a MAC address"))?;
                (mac != [0; 6]).then_some(mac)
            }
        }),
        Kind::RateLimit => Meaning::Rate(match v {
            None | Some("") => RateLimit::default(),
            Some(t) => RateLimit::parse(t)?,
        }),
        Kind::IdList => {
            let mut ids = Vec::new();
            for part in v.unwrap_or("").split(',').filter(|p| !p.is_empty()) {
                let hex = part
                    .strip_prefix('*')
                    .ok_or_else(|| format!("{part:?} is not a *HEX id"))?;
                ids.push(
                    u32::from_str_radix(hex, 16)
                        .map_err(|_| format!("{part:?} is not a *HEX id"))?,
                );
            }
            ids.sort_unstable();
            Meaning::Ids(ids)
        }
        Kind::Text | Kind::Secret => Meaning::Text(v.unwrap_or("").to_string()),
    })
}

/// Six bytes from `AA:BB:CC:DD:EE:FF` or `aa-bb-cc-dd-ee-ff`.
pub fn parse_mac(t: &str) -> Option<[u8; 6]> {
    let parts: Vec<&str> = t.split([':', '-']).collect();
    if parts.len() != 6 {
        return None;
    }
    let mut mac = [0u8; 6];
    for (b, p) in mac.iter_mut().zip(parts) {
        if p.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    Some(mac)
}

/// A MAC address as RouterOS prints it: upper case, colons.
pub fn format_mac(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A hotspot rate limit in bits per second (MikroTik's `rate-limit` syntax: rx is the client's
/// upload as the router sees it). Missing parts take RouterOS's defaults: tx = rx, no burst,
/// priority 8.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RateLimit {
    pub rate: (u64, u64),
    pub burst: (u64, u64),
    pub threshold: (u64, u64),
    /// Seconds.
    pub burst_time: (u64, u64),
    pub priority: u8,
    pub limit_at: (u64, u64),
}

impl RateLimit {
    pub fn parse(t: &str) -> Result<RateLimit, String> {
        let bad = |why: &str| format!("bad rate limit {t:?}: {why}");
        let groups: Vec<&str> = t.split_whitespace().collect();
        if groups.is_empty() || groups.len() > 6 {
            return Err(bad("expected 1 to 6 space-separated parts"));
        }
        let pair =
            |g: Option<&&str>, unit: fn(&str) -> Option<u64>| -> Result<(u64, u64), String> {
                let Some(g) = g else { return Ok((0, 0)) };
                let (a, b) = g.split_once('/').unwrap_or((g, g));
                Ok((
                    unit(a).ok_or_else(|| bad(&format!("{a:?}")))?,
                    unit(b).ok_or_else(|| bad(&format!("{b:?}")))?,
                ))
            };
        let priority = match groups.get(4) {
            None => 8,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| (1..=8).contains(p))
                .ok_or_else(|| bad("priority must be 1 to 8"))?,
        };
        Ok(RateLimit {
            rate: pair(groups.first(), parse_bps)?,
            burst: pair(groups.get(1), parse_bps)?,
            threshold: pair(groups.get(2), parse_bps)?,
            burst_time: pair(groups.get(3), parse_secs)?,
            priority,
            limit_at: pair(groups.get(5), parse_bps)?,
        })
    }

    /// As RouterOS 7 prints it: each rate in the largest unit that holds it exactly, only as
    /// many parts as carry something.
    pub fn format(&self) -> String {
        let pair = |(a, b): (u64, u64), f: fn(u64) -> String| format!("{}/{}", f(a), f(b));
        let mut parts = vec![pair(self.rate, format_bps)];
        let rest = [
            pair(self.burst, format_bps),
            pair(self.threshold, format_bps),
            pair(self.burst_time, |s| format!("{s}")),
            self.priority.to_string(),
            pair(self.limit_at, format_bps),
        ];
        let needed = if self.limit_at != (0, 0) {
            5
        } else if self.priority != 8 {
            4
        } else if self.burst != (0, 0) || self.threshold != (0, 0) || self.burst_time != (0, 0) {
            3
        } else {
            0
        };
        parts.extend(rest.into_iter().take(needed));
        parts.join(" ")
    }
}

fn parse_bps(t: &str) -> Option<u64> {
    let (num, mult) = match t.chars().last()? {
        'k' | 'K' => (&t[..t.len() - 1], 1_000),
        'M' => (&t[..t.len() - 1], 1_000_000),
        'G' => (&t[..t.len() - 1], 1_000_000_000),
        _ => (t, 1),
    };
    num.parse::<u64>().ok()?.checked_mul(mult)
}

fn format_bps(n: u64) -> String {
    if n == 0 {
        return "0".into();
    }
    for (unit, m) in [("G", 1_000_000_000), ("M", 1_000_000), ("k", 1_000)] {
        if n.is_multiple_of(m) {
            return format!("{}{unit}", n / m);
        }
    }
    n.to_string()
}

fn parse_secs(t: &str) -> Option<u64> {
    match parse_duration(t).ok()? {
        None => Some(0),
        Some(ms) => u64::try_from(ms / 1000).ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const U: &str = "/ip/hotspot/user";
    const P: &str = "/ip/hotspot/user/profile";

    #[test]
    fn booleans_by_meaning() {
        assert!(same(U, "disabled", "no", Some("false")).unwrap());
        assert!(same(U, "disabled", "yes", Some("true")).unwrap());
        assert!(same(U, "disabled", "no", None).unwrap());
        assert!(!same(U, "disabled", "no", Some("true")).unwrap());
        let e = same(U, "disabled", "no", Some("maybe")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/ip/hotspot/user disabled: cannot compare written \"no\" with printed \"maybe\": \
             printed value: \"maybe\" is not yes/no/true/false"
        );
    }

    #[test]
    fn durations_by_meaning_and_zero_means_none() {
        for printed in ["1d", "1d00:00:00", "24:00:00", "86400s", "24h"] {
            assert!(
                same(U, "limit-uptime", "24h", Some(printed)).unwrap(),
                "{printed}"
            );
        }
        assert!(same(U, "limit-uptime", "1h30m", Some("01:30:00")).unwrap());
        assert!(!same(U, "limit-uptime", "24h", Some("1d1s")).unwrap());
        for printed in [None, Some("0s"), Some("0"), Some("none"), Some("00:00:00")] {
            assert!(
                same(U, "limit-uptime", "0s", printed).unwrap(),
                "{printed:?}"
            );
            assert!(
                same(P, "idle-timeout", "none", printed).unwrap(),
                "{printed:?}"
            );
        }
        assert!(same(U, "limit-uptime", "1d", Some("garbage")).is_err());
    }

    #[test]
    fn bytes_macs_counts_ids() {
        assert!(same(U, "limit-bytes-total", "0", None).unwrap());
        assert!(same(U, "limit-bytes-total", "5000", Some("5000")).unwrap());
        assert!(!same(U, "limit-bytes-total", "5000", None).unwrap());
        assert!(same(
            U,
            "mac-address",
            "aa:bb:cc:dd:ee:0f",
            Some("AA:BB:CC:DD:EE:0F")
        )
        .unwrap());
        assert!(same(
            U,
            "mac-address",
            "AA-BB-CC-DD-EE-0F",
            Some("AA:BB:CC:DD:EE:0F")
        )
        .unwrap());
        assert!(same(U, "mac-address", "00:00:00:00:00:00", None).unwrap());
        assert!(!same(U, "mac-address", "AA:BB:CC:DD:EE:0F", None).unwrap());
        assert!(same(P, "shared-users", "1", None).unwrap());
        assert!(same(P, "shared-users", "unlimited", Some("unlimited")).unwrap());
        assert!(same(U, ".id", "*a,*1B", Some("*1b,*A")).unwrap());
        assert!(same(U, "comment", "x", Some("x")).unwrap());
        assert!(!same(U, "comment", "x", Some("X")).unwrap());
    }

    #[test]
    fn passwords_hidden_from_a_user_without_the_sensitive_policy() {
        assert_eq!(compare(U, "password", "pw", None).unwrap(), Verdict::Hidden);
        assert_eq!(
            compare(U, "password", "pw", Some("")).unwrap(),
            Verdict::Hidden
        );
        assert_eq!(
            compare(U, "password", "pw", Some("pw")).unwrap(),
            Verdict::Same
        );
        assert_eq!(
            compare(U, "password", "pw", Some("PW")).unwrap(),
            Verdict::Differs
        );
    }

    #[test]
    fn rate_limits_by_meaning() {
        assert!(same(P, "rate-limit", "2M/5M", Some("2M/5M")).unwrap());
        assert!(same(P, "rate-limit", "2000k/5000000", Some("2M/5M")).unwrap());
        assert!(same(P, "rate-limit", "2M", Some("2M/2M")).unwrap());
        assert!(same(
            P,
            "rate-limit",
            "256k/2M 0/0 0/0 0/0 8 1k/1k",
            Some("256k/2M 0/0 0/0 0/0 8 1k/1k")
        )
        .unwrap());
        assert!(!same(P, "rate-limit", "2M/5M", Some("5M/2M")).unwrap());
        assert_eq!(RateLimit::parse("2000k/5000000").unwrap().format(), "2M/5M");
        assert_eq!(RateLimit::parse("2048k").unwrap().format(), "2048k/2048k");
        assert_eq!(
            RateLimit::parse("1M/2M 2M/4M 1500k/3M 10/10")
                .unwrap()
                .format(),
            "1M/2M 2M/4M 1500k/3M 10/10"
        );
        assert!(RateLimit::parse("fast").is_err());
        assert!(RateLimit::parse("1M/2M 0/0 0/0 0/0 9").is_err());
    }
}
