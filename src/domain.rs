//! Plain data of the business: identifiers with their rules, plans, validity modes.
//! No I/O and no policy here; the engine decides, the store keeps.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::units::{Bytes, Span};

/// A plan id. It becomes a RouterOS profile name and part of MQTT payloads, so it is kept to
/// `a-z 0-9 - _ .`, 1 to 32 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PlanId(String);

impl PlanId {
    pub fn parse(s: &str) -> Result<Self, String> {
        let ok = !s.is_empty()
            && s.len() <= 32
            && s.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_' || b == b'.'
            });
        if ok {
            Ok(PlanId(s.to_string()))
        } else {
            Err(format!(
                "bad plan id {s:?}: use 1-32 characters of a-z, 0-9, '-', '_' or '.'"
            ))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PlanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for PlanId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        PlanId::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl Serialize for PlanId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// How a plan's time allowance is consumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Validity {
    /// Runs in real time from first use, whether or not a device is connected.
    Wall,
    /// Counts only the time at least one of the user's devices is connected.
    Uptime,
}

impl Validity {
    pub fn as_str(self) -> &'static str {
        match self {
            Validity::Wall => "wall",
            Validity::Uptime => "uptime",
        }
    }
}

impl FromStr for Validity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "wall" => Ok(Validity::Wall),
            "uptime" => Ok(Validity::Uptime),
            _ => Err(format!(
                "bad validity mode {s:?}: use \"wall\" or \"uptime\""
            )),
        }
    }
}

/// The largest amount of money (minor units) the store holds: SQLite's INTEGER is an i64, and a
/// larger `u64` wrapped to a negative number (a plan then failed the store's CHECK on every
/// delivery of the command, forever; a payment was stored negative while its event said
/// otherwise).
pub const MAX_MONEY: u64 = i64::MAX as u64;

/// The largest byte counter the store holds (an i64, like money).
pub const MAX_COUNTER: u64 = i64::MAX as u64;

/// Who owns a plan: plans of the config file are replaced at every start, the cloud's and the
/// CLI's are left alone by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PlanSource {
    Config,
    Cloud,
    Cli,
}

impl PlanSource {
    pub fn as_str(self) -> &'static str {
        match self {
            PlanSource::Config => "config",
            PlanSource::Cloud => "cloud",
            PlanSource::Cli => "cli",
        }
    }
}

/// A three-letter ISO 4217 currency code such as `KES`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Currency(heapless::String<3>);

impl Currency {
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.len() == 3 && s.bytes().all(|b| b.is_ascii_uppercase()) {
            let mut h = heapless::String::new();
            // Cannot fail: exactly 3 bytes checked above.
            let _ = h.push_str(s);
            Ok(Currency(h))
        } else {
            Err(format!(
                "bad currency {s:?}: use a 3-letter upper-case code such as \"KES\""
            ))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Currency::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A MAC address, normalised to upper case `AA:BB:CC:DD:EE:FF` (the form RouterOS and
/// RADIUS Calling-Station-Id use). Exactly 17 bytes, so it lives inline.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Mac(heapless::String<17>);

impl Mac {
    pub fn parse(s: &str) -> Result<Self, String> {
        let hex: String = s
            .chars()
            .filter(|c| !matches!(c, ':' | '-' | '.'))
            .collect();
        if hex.len() != 12 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!(
                "bad MAC address {s:?}: expected six hex pairs such as AA:BB:CC:DD:EE:FF"
            ));
        }
        let mut out = heapless::String::<17>::new();
        for (i, pair) in hex.as_bytes().chunks(2).enumerate() {
            if i > 0 {
                let _ = out.push(':');
            }
            for b in pair {
                let _ = out.push(b.to_ascii_uppercase() as char);
            }
        }
        Ok(Mac(out))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Voucher codes use an alphabet without look-alikes (no 0/O, 1/I/L), so a code read aloud or
/// copied from paper is typed right.
pub const VOUCHER_ALPHABET: &[u8] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";
pub const VOUCHER_MAX_LEN: usize = 16;
pub const VOUCHER_MIN_LEN: usize = 6;

/// A voucher code, at most 16 characters of [`VOUCHER_ALPHABET`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VoucherCode(heapless::String<VOUCHER_MAX_LEN>);

impl VoucherCode {
    /// Accepts what a customer types: case, spaces and dashes do not matter.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut out = heapless::String::<VOUCHER_MAX_LEN>::new();
        for c in s.chars().filter(|c| !matches!(c, ' ' | '-')) {
            let u = c.to_ascii_uppercase();
            if !u.is_ascii() || !VOUCHER_ALPHABET.contains(&(u as u8)) {
                return Err(format!(
                    "bad voucher code {s:?}: {c:?} is not used in voucher codes"
                ));
            }
            out.push(u)
                .map_err(|_| format!("bad voucher code {s:?}: longer than {VOUCHER_MAX_LEN}"))?;
        }
        if out.len() < VOUCHER_MIN_LEN {
            return Err(format!("bad voucher code {s:?}: too short"));
        }
        Ok(VoucherCode(out))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for VoucherCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A package for sale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Plan {
    pub id: PlanId,
    pub name: String,
    /// Price in minor units (cents) of `currency`.
    pub price: u64,
    pub currency: Currency,
    pub time: Span,
    pub validity: Validity,
    pub data: Option<Bytes>,
    pub rate_limit: Option<String>,
    /// Devices that may be logged in at once (RouterOS `shared-users`).
    pub devices: u32,
    /// A session idle this long is logged out by the NAS (RADIUS Idle-Timeout).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<Span>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_is_normalised() {
        assert_eq!(
            Mac::parse("aa-bb-cc-dd-ee-0f").unwrap().as_str(),
            "AA:BB:CC:DD:EE:0F"
        );
        assert_eq!(
            Mac::parse("aabb.ccdd.ee0f").unwrap().as_str(),
            "AA:BB:CC:DD:EE:0F"
        );
        assert!(Mac::parse("aa:bb:cc").is_err());
        assert!(Mac::parse("zz:bb:cc:dd:ee:ff").is_err());
    }

    #[test]
    fn voucher_code_accepts_what_people_type() {
        assert_eq!(
            VoucherCode::parse("abcd-efgh").unwrap().as_str(),
            "ABCDEFGH"
        );
        assert!(VoucherCode::parse("ABCD0EFG").unwrap_err().contains("'0'"));
        assert!(VoucherCode::parse("ABC").is_err());
        assert!(VoucherCode::parse("ABCDEFGHJKMNPQRST").is_err());
    }

    #[test]
    fn plan_ids_are_safe_names() {
        assert!(PlanId::parse("1h-basic").is_ok());
        assert!(PlanId::parse("Bad Id").is_err());
        assert!(PlanId::parse("").is_err());
    }
}

/// How the user created by a payment is named (`[users] payment-username`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PaymentUsername {
    /// A short random name such as `k7m2qp`.
    Generated,
    /// The payer's phone number (one account per phone).
    Phone,
}

/// How the user created by a redeemed voucher is named (`[users] voucher-username`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VoucherUsername {
    /// The voucher code is both user name and password (what customers type at the portal).
    Code,
    /// A random user name and password, handed out after redemption.
    Generated,
}
