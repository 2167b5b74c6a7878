//! Human units a technician writes in the config or on the command line: durations (`"1h"`,
//! `"30d"`, `"1w2d3h"`), byte sizes (`"2GB"`, `"500MiB"`) and RouterOS rate limits (`"2M/5M"`).
//! Parsing is strict: a value that could be read two ways is an error, not a guess.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A length of time in milliseconds, written like RouterOS does: `1w2d3h4m5s`, `90s`, `250ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Span(pub i64);

impl Span {
    pub const fn from_secs(s: i64) -> Self {
        Span(s * 1000)
    }
    pub const fn ms(self) -> i64 {
        self.0
    }
    /// As a `Duration` (a negative span is zero).
    pub fn duration(self) -> std::time::Duration {
        std::time::Duration::from_millis(non_negative(self.0))
    }
}

const UNITS_MS: [(&str, i64); 7] = [
    ("w", 7 * 86_400_000),
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("ms", 1),
    ("m", 60_000),
    ("s", 1000),
    ("us", 0),
];

/// The longest duration we take: 100 years. Deadlines are the timeline's milliseconds plus a
/// duration, in an i64: a plan of `9223372036854775807ms` overflowed it, and its buyer was
/// expired at once.
pub const SPAN_MAX_MS: i64 = 36_500 * 86_400_000;

/// Parses `1w2d3h4m5s`, `30d`, `250ms`. A bare number is refused: "30" could be seconds or days.
/// Parts below a millisecond (`us`, as RouterOS prints them) must be 0: the timeline counts
/// milliseconds, and `1us` meant 0 ms.
/// A difference or count that cannot be below zero where it is used (a deadline already
/// passed, rows counted): negatives are 0. The checked form of `v.max(0) as u64`.
pub fn non_negative(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// A length or count as SQLite's integer; saturates (no count here gets near `i64::MAX`).
pub fn sql_count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub fn parse_span(text: &str) -> Result<Span, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("empty duration; write it like \"1h\", \"30m\" or \"7d\"".into());
    }
    let mut total: i64 = 0;
    let mut rest = t;
    let mut any = false;
    while !rest.is_empty() {
        let digits = rest.chars().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return Err(format!(
                "bad duration {text:?}: expected a number at {rest:?} (units: w d h m s ms)"
            ));
        }
        let n: i64 = rest[..digits]
            .parse()
            .map_err(|_| format!("bad duration {text:?}: number too large"))?;
        rest = &rest[digits..];
        let unit = UNITS_MS
            .iter()
            .find(|(u, _)| rest.starts_with(u) && !(*u == "m" && rest.starts_with("ms")));
        let Some((u, ms)) = unit else {
            return Err(format!(
                "bad duration {text:?}: missing or unknown unit after {n} (units: w d h m s ms)"
            ));
        };
        rest = &rest[u.len()..];
        if *ms == 0 && n > 0 {
            return Err(format!(
                "bad duration {text:?}: {n}{u} is below the millisecond durations are counted in"
            ));
        }
        total = n
            .checked_mul(*ms)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("bad duration {text:?}: too large"))?;
        any = true;
    }
    if !any {
        return Err(format!("bad duration {text:?}"));
    }
    if total > SPAN_MAX_MS {
        return Err(format!(
            "bad duration {text:?}: longer than 100 years (36500d)"
        ));
    }
    Ok(Span(total))
}

/// Formats like RouterOS (`1d2h3m4s`, `0s`), dropping zero parts.
pub fn format_span(span: Span) -> String {
    let mut ms = span.0;
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    if ms < 0 {
        out.push('-');
        ms = -ms;
    }
    for (u, unit_ms) in [
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ] {
        let n = ms / unit_ms;
        if n > 0 {
            out.push_str(&format!("{n}{u}"));
            ms -= n * unit_ms;
        }
    }
    out
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_span(*self))
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_span(&s).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Span {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_span(*self))
    }
}

/// A byte count. `"2GB"` is 2 * 10^9 (what operators sell), `"2GiB"` is 2 * 2^30.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bytes(pub u64);

pub fn parse_bytes(text: &str) -> Result<Bytes, String> {
    let t = text.trim();
    let digits = t
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .count();
    if digits == 0 {
        return Err(format!(
            "bad size {text:?}: write it like \"500MB\", \"2GB\" or \"1GiB\""
        ));
    }
    let number: f64 = t[..digits]
        .parse()
        .map_err(|_| format!("bad size {text:?}: {:?} is not a number", &t[..digits]))?;
    let mult: f64 = match t[digits..].trim() {
        "B" => 1.0,
        "KB" | "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        "TiB" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(format!(
                "bad size {text:?}: unknown unit {other:?} (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)"
            ))
        }
    };
    let v = number * mult;
    if !(v.is_finite() && (1.0..9.0e18).contains(&v)) {
        return Err(format!("bad size {text:?}: out of range"));
    }
    // In range and finite (checked above): the float-to-integer cast cannot wrap.
    #[allow(clippy::cast_sign_loss, clippy::cast_possible_truncation)]
    Ok(Bytes(v.round() as u64))
}

// `v` is a u64 divided by a positive step: non-negative, and rounding it back cannot wrap.
#[allow(clippy::cast_sign_loss, clippy::cast_possible_truncation)]
pub fn format_bytes(b: u64) -> String {
    const STEPS: [(&str, f64); 4] = [("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)];
    for (u, m) in STEPS {
        if b as f64 >= m {
            let v = b as f64 / m;
            return if (v - v.round()).abs() < 1e-9 {
                format!("{}{u}", v.round() as u64)
            } else {
                format!("{v:.2}{u}")
            };
        }
    }
    format!("{b}B")
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_bytes(&s).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Bytes {
    /// The short form (`"500MB"`) when it reads back exactly, else every byte (`"1234567B"`):
    /// `format_bytes` rounds for people, and a plan's quota must not change on the wire.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let short = format_bytes(self.0);
        if parse_bytes(&short) == Ok(*self) {
            s.serialize_str(&short)
        } else {
            s.serialize_str(&format!("{}B", self.0))
        }
    }
}

/// Checks a RouterOS rate limit: `rx/tx` with optional bursts, e.g. `2M/5M` or
/// `2M/4M 4M/8M 1M/2M 10/10`. Returned unchanged: it is handed to the router as written.
pub fn check_rate_limit(text: &str) -> Result<(), String> {
    let parts: Vec<&str> = text.split_whitespace().collect();
    if parts.is_empty() || parts.len() > 5 {
        return Err(format!(
            "bad rate limit {text:?}: write it like \"2M/5M\" (upload/download, RouterOS form)"
        ));
    }
    for p in parts {
        let halves: Vec<&str> = p.split('/').collect();
        if halves.len() != 2 || !halves.iter().all(|h| is_rate(h)) {
            return Err(format!(
                "bad rate limit {text:?}: {p:?} is not of the form RATE/RATE (e.g. 512k/2M)"
            ));
        }
    }
    Ok(())
}

/// The first (steady) pair of a RouterOS rate limit in bits per second: (upload, download),
/// i.e. the router's rx/tx. `k`, `M`, `G` are powers of 1000, as RouterOS reads them.
pub fn rate_limit_bps(text: &str) -> Option<(u64, u64)> {
    let first = text.split_whitespace().next()?;
    let (up, down) = first.split_once('/')?;
    let rate = |h: &str| -> Option<u64> {
        let (digits, scale) = match h.as_bytes().last()? {
            b'k' | b'K' => (&h[..h.len() - 1], 1_000),
            b'M' => (&h[..h.len() - 1], 1_000_000),
            b'G' => (&h[..h.len() - 1], 1_000_000_000),
            _ => (h, 1),
        };
        digits.parse::<u64>().ok()?.checked_mul(scale)
    };
    Some((rate(up)?, rate(down)?))
}

fn is_rate(h: &str) -> bool {
    let h = h.strip_suffix(['k', 'K', 'M', 'G']).unwrap_or(h);
    !h.is_empty() && h.chars().all(|c| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {

    #[test]
    fn durations_below_a_millisecond_or_beyond_100_years_are_refused() {
        assert!(parse_span("1us")
            .unwrap_err()
            .contains("below the millisecond"));
        assert_eq!(parse_span("1s0us").unwrap(), Span::from_secs(1));
        let e = parse_span("9223372036854775807ms").unwrap_err();
        assert!(e.contains("longer than 100 years"), "{e}");
        assert!(parse_span("36501d").is_err());
        assert_eq!(parse_span("36500d").unwrap().ms(), SPAN_MAX_MS);
        assert!(parse_span("99999999999999999999w")
            .unwrap_err()
            .contains("too large"));
    }

    #[test]
    fn bytes_on_the_wire_read_back_exactly() {
        let wire = |b: u64| serde_json::to_value(Bytes(b)).unwrap();
        assert_eq!(wire(500_000_000), "500MB");
        assert_eq!(wire(1_234_567), "1234567B");
        assert_eq!(wire(999), "999B");
        // (0 is not a size anyone sells: parse_bytes refuses it.)
        for b in [1, 999, 1000, 1_234_567, 10_000_000, 1 << 40, 1_500_000_000] {
            let back: Bytes = serde_json::from_value(wire(b)).unwrap();
            assert_eq!(back, Bytes(b), "{}", wire(b));
        }
    }

    use super::*;

    #[test]
    fn spans_parse_routeros_form() {
        assert_eq!(parse_span("1h").unwrap().ms(), 3_600_000);
        assert_eq!(parse_span("30d").unwrap().ms(), 30 * 86_400_000);
        assert_eq!(parse_span("1w2d3h4m5s").unwrap().ms(), 788_645_000);
        assert_eq!(parse_span("250ms").unwrap().ms(), 250);
        assert_eq!(parse_span("1m30s").unwrap().ms(), 90_000);
        assert!(parse_span("30").unwrap_err().contains("unit"));
        assert!(parse_span("1x").is_err());
        assert!(parse_span("").is_err());
        assert!(parse_span("h").is_err());
        assert_eq!(format_span(Span(788_645_000)), "1w2d3h4m5s");
        assert_eq!(format_span(Span(0)), "0s");
    }

    #[test]
    fn bytes_parse_decimal_and_binary() {
        assert_eq!(parse_bytes("2GB").unwrap().0, 2_000_000_000);
        assert_eq!(parse_bytes("1GiB").unwrap().0, 1 << 30);
        assert_eq!(parse_bytes("1.5MB").unwrap().0, 1_500_000);
        assert!(parse_bytes("2 parsecs").is_err());
        assert!(parse_bytes("GB").is_err());
        assert_eq!(format_bytes(2_000_000_000), "2GB");
        assert_eq!(format_bytes(1_500_000), "1.50MB");
    }

    #[test]
    fn rate_limits_follow_routeros_form() {
        assert!(check_rate_limit("2M/5M").is_ok());
        assert!(check_rate_limit("512k/2M").is_ok());
        assert!(check_rate_limit("2M/4M 4M/8M 1M/2M 10/10").is_ok());
        assert!(check_rate_limit("2M").is_err());
        assert!(check_rate_limit("fast/slow").is_err());
        assert_eq!(rate_limit_bps("512k/2M"), Some((512_000, 2_000_000)));
        assert_eq!(
            rate_limit_bps("2M/4M 4M/8M 1M/2M 10/10"),
            Some((2_000_000, 4_000_000))
        );
        assert_eq!(rate_limit_bps("1G/10"), Some((1_000_000_000, 10)));
        assert_eq!(rate_limit_bps("fast"), None);
    }
}
