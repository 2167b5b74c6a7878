//! The RADIUS wire format (RFC 2865, 2866, 3579, 5176), sans I/O: a checked view of a received
//! packet, a builder for replies and requests, and every authenticator we compute or verify.
//!
//! A packet is parsed once: the header length and every attribute length are checked before
//! anything is read, so walking the attributes afterwards cannot go out of bounds.

use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use subtle::ConstantTimeEq;

pub const ACCESS_REQUEST: u8 = 1;
pub const ACCESS_ACCEPT: u8 = 2;
pub const ACCESS_REJECT: u8 = 3;
pub const ACCOUNTING_REQUEST: u8 = 4;
pub const ACCOUNTING_RESPONSE: u8 = 5;
pub const DISCONNECT_REQUEST: u8 = 40;
pub const DISCONNECT_ACK: u8 = 41;
pub const DISCONNECT_NAK: u8 = 42;

/// Attribute types we read or write (RFC 2865, 2866, 2869, 3576/5176).
pub mod attr {
    pub const USER_NAME: u8 = 1;
    pub const USER_PASSWORD: u8 = 2;
    pub const CHAP_PASSWORD: u8 = 3;
    pub const NAS_IP_ADDRESS: u8 = 4;
    pub const FRAMED_IP_ADDRESS: u8 = 8;
    pub const REPLY_MESSAGE: u8 = 18;
    pub const CLASS: u8 = 25;
    pub const VENDOR_SPECIFIC: u8 = 26;
    pub const SESSION_TIMEOUT: u8 = 27;
    pub const IDLE_TIMEOUT: u8 = 28;
    pub const CALLED_STATION_ID: u8 = 30;
    pub const CALLING_STATION_ID: u8 = 31;
    pub const NAS_IDENTIFIER: u8 = 32;
    pub const ACCT_STATUS_TYPE: u8 = 40;
    pub const ACCT_INPUT_OCTETS: u8 = 42;
    pub const ACCT_OUTPUT_OCTETS: u8 = 43;
    pub const ACCT_SESSION_ID: u8 = 44;
    pub const ACCT_SESSION_TIME: u8 = 46;
    pub const ACCT_TERMINATE_CAUSE: u8 = 49;
    pub const ACCT_INPUT_GIGAWORDS: u8 = 52;
    pub const ACCT_OUTPUT_GIGAWORDS: u8 = 53;
    pub const CHAP_CHALLENGE: u8 = 60;
    pub const MESSAGE_AUTHENTICATOR: u8 = 80;
    pub const ACCT_INTERIM_INTERVAL: u8 = 85;
    pub const ERROR_CAUSE: u8 = 101;
}

/// Vendor ids and their attribute types.
pub mod vendor {
    pub const MIKROTIK: u32 = 14988;
    pub const MIKROTIK_RATE_LIMIT: u8 = 8;
    pub const MIKROTIK_TOTAL_LIMIT: u8 = 17;
    pub const MIKROTIK_TOTAL_LIMIT_GIGAWORDS: u8 = 18;
    pub const WISPR: u32 = 14122;
    pub const WISPR_BANDWIDTH_MAX_UP: u8 = 7;
    pub const WISPR_BANDWIDTH_MAX_DOWN: u8 = 8;
    pub const CHILLISPOT: u32 = 14559;
    pub const CHILLISPOT_MAX_TOTAL_OCTETS: u8 = 3;
    /// CoovaChilli's dictionary (not FreeRADIUS's copy of ChilliSpot's).
    pub const CHILLISPOT_MAX_TOTAL_GIGAWORDS: u8 = 23;
}

pub const HEADER_LEN: usize = 20;
/// RFC 2865 §3: the largest packet.
pub const MAX_LEN: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    #[error("packet of {0} bytes is shorter than the 20-byte header")]
    Short(usize),
    #[error("header says {said} bytes, but {got} arrived (or more than 4096)")]
    Length { said: usize, got: usize },
    #[error("attribute at offset {at} has length {len}, which does not fit the packet")]
    Attribute { at: usize, len: usize },
}

/// A received packet whose lengths have been checked.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    raw: &'a [u8],
}

impl<'a> Packet<'a> {
    /// Checks the header length and every attribute; octets after the header's length are
    /// padding and ignored (RFC 2865 §3).
    pub fn parse(buf: &'a [u8]) -> Result<Packet<'a>, PacketError> {
        if buf.len() < HEADER_LEN {
            return Err(PacketError::Short(buf.len()));
        }
        let said = u16::from_be_bytes([buf[2], buf[3]]) as usize;
        if !(HEADER_LEN..=MAX_LEN).contains(&said) || said > buf.len() {
            return Err(PacketError::Length {
                said,
                got: buf.len(),
            });
        }
        let raw = &buf[..said];
        let mut at = HEADER_LEN;
        while at < raw.len() {
            let len = raw.get(at + 1).copied().unwrap_or(0) as usize;
            if len < 2 || at + len > raw.len() {
                return Err(PacketError::Attribute { at, len });
            }
            at += len;
        }
        Ok(Packet { raw })
    }

    pub fn code(&self) -> u8 {
        self.raw[0]
    }
    pub fn id(&self) -> u8 {
        self.raw[1]
    }
    pub fn authenticator(&self) -> [u8; 16] {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.raw[4..20]);
        a
    }
    pub fn bytes(&self) -> &'a [u8] {
        self.raw
    }

    /// Every attribute as (type, value, offset of the value in the packet).
    pub fn attrs(&self) -> impl Iterator<Item = (u8, &'a [u8], usize)> + 'a {
        let raw = self.raw;
        let mut at = HEADER_LEN;
        std::iter::from_fn(move || {
            if at >= raw.len() {
                return None;
            }
            // Lengths were checked by `parse`.
            let (t, len) = (raw[at], raw[at + 1] as usize);
            let item = (t, &raw[at + 2..at + len], at + 2);
            at += len;
            Some(item)
        })
    }

    pub fn attr(&self, t: u8) -> Option<&'a [u8]> {
        self.attrs().find(|(a, _, _)| *a == t).map(|(_, v, _)| v)
    }

    pub fn count(&self, t: u8) -> usize {
        self.attrs().filter(|(a, _, _)| *a == t).count()
    }

    pub fn text(&self, t: u8) -> Option<&'a str> {
        self.attr(t).and_then(|v| std::str::from_utf8(v).ok())
    }

    pub fn u32(&self, t: u8) -> Option<u32> {
        self.attr(t)
            .and_then(|v| <[u8; 4]>::try_from(v).ok())
            .map(u32::from_be_bytes)
    }

    pub fn ipv4(&self, t: u8) -> Option<std::net::Ipv4Addr> {
        self.attr(t)
            .and_then(|v| <[u8; 4]>::try_from(v).ok())
            .map(std::net::Ipv4Addr::from)
    }

    /// A vendor-specific attribute in the RFC 2865 §5.26 layout (vendor id, type, length, value).
    pub fn vsa(&self, vendor: u32, t: u8) -> Option<&'a [u8]> {
        self.attrs()
            .filter(|(a, v, _)| *a == attr::VENDOR_SPECIFIC && v.len() >= 6)
            .filter(|(_, v, _)| u32::from_be_bytes([v[0], v[1], v[2], v[3]]) == vendor)
            .find_map(|(_, v, _)| {
                let inner = &v[4..];
                let len = inner[1] as usize;
                (inner[0] == t && len >= 2 && len <= inner.len()).then(|| &inner[2..len])
            })
    }

    pub fn vsa_u32(&self, vendor: u32, t: u8) -> Option<u32> {
        self.vsa(vendor, t)
            .and_then(|v| <[u8; 4]>::try_from(v).ok())
            .map(u32::from_be_bytes)
    }

    /// Checks the Message-Authenticator of a request (RFC 3579 §3.2, RFC 5176 §3.1): for an
    /// Access-Request over the packet as it is, for other requests with the authenticator zeroed.
    pub fn message_authenticator(&self, secret: &[u8]) -> MaCheck {
        let vector = if self.code() == ACCESS_REQUEST {
            self.authenticator()
        } else {
            [0; 16]
        };
        self.check_ma(&vector, secret)
    }

    /// The Request Authenticator of an Accounting-Request or Disconnect-Request (RFC 2866
    /// §3, RFC 5176 §3.5): MD5 of the packet with a zero authenticator, then the secret.
    pub fn request_authenticator_ok(&self, secret: &[u8]) -> bool {
        let want = digest_with(self.raw, &[0u8; 16], secret);
        bool::from(want.ct_eq(&self.raw[4..20]))
    }

    /// Checks a reply to a request we sent: its Response Authenticator, and its
    /// Message-Authenticator if it carries one.
    pub fn response_ok(&self, request_auth: &[u8; 16], secret: &[u8]) -> bool {
        let want = digest_with(self.raw, request_auth, secret);
        bool::from(want.ct_eq(&self.raw[4..20]))
            && self.check_ma(&ma_vector(self.code(), request_auth), secret) != MaCheck::Invalid
    }

    /// HMAC-MD5 over the packet with `vector` in the authenticator field and the
    /// Message-Authenticator zeroed, compared in constant time. Two of them, or one that is not
    /// 16 bytes, is invalid.
    fn check_ma(&self, vector: &[u8; 16], secret: &[u8]) -> MaCheck {
        let mut found = None;
        for (t, v, at) in self.attrs() {
            if t == attr::MESSAGE_AUTHENTICATOR {
                if found.is_some() || v.len() != 16 {
                    return MaCheck::Invalid;
                }
                found = Some(at);
            }
        }
        let Some(at) = found else {
            return MaCheck::Missing;
        };
        let mut copy = self.raw.to_vec();
        copy[4..20].copy_from_slice(vector);
        copy[at..at + 16].fill(0);
        let mut mac = hmac_md5(secret);
        mac.update(&copy);
        match mac.verify_slice(&self.raw[at..at + 16]) {
            Ok(()) => MaCheck::Valid,
            Err(_) => MaCheck::Invalid,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaCheck {
    Missing,
    Valid,
    Invalid,
}

/// What sits in the authenticator field while a reply's Message-Authenticator is computed: the
/// request authenticator, except in an Accounting-Response, where it is zero (as FreeRADIUS
/// computes and checks it; RFC 5080 §2.2.3 leaves accounting out).
fn ma_vector(code: u8, request_auth: &[u8; 16]) -> [u8; 16] {
    if code == ACCOUNTING_RESPONSE {
        [0; 16]
    } else {
        *request_auth
    }
}

fn hmac_md5(secret: &[u8]) -> Hmac<Md5> {
    // HMAC takes a key of any length.
    Hmac::<Md5>::new_from_slice(secret).expect("HMAC accepts any key length")
}

/// MD5(code ‖ id ‖ length ‖ `auth` ‖ attributes ‖ secret).
fn digest_with(raw: &[u8], auth: &[u8; 16], secret: &[u8]) -> [u8; 16] {
    let mut h = Md5::new();
    h.update(&raw[..4]);
    h.update(auth);
    h.update(&raw[20..]);
    h.update(secret);
    h.finalize().into()
}

/// The User-Password of an Access-Request (RFC 2865 §5.2), without its NUL padding; `None` when
/// the attribute is not a whole number of 16-byte blocks (at most 128 bytes).
pub fn pap_password(hidden: &[u8], request_auth: &[u8; 16], secret: &[u8]) -> Option<Vec<u8>> {
    if hidden.is_empty() || !hidden.len().is_multiple_of(16) || hidden.len() > 128 {
        return None;
    }
    let mut out = Vec::with_capacity(hidden.len());
    let mut prev: &[u8] = request_auth;
    for block in hidden.chunks(16) {
        let mut h = Md5::new();
        h.update(secret);
        h.update(prev);
        let b: [u8; 16] = h.finalize().into();
        out.extend(block.iter().zip(b).map(|(c, k)| c ^ k));
        prev = block;
    }
    while out.last() == Some(&0) {
        out.pop();
    }
    Some(out)
}

/// Hides a User-Password (for our load generator and tests).
pub fn pap_hide(password: &[u8], request_auth: &[u8; 16], secret: &[u8]) -> Vec<u8> {
    let mut padded = password.to_vec();
    padded.resize(password.len().div_ceil(16).max(1) * 16, 0);
    let mut out: Vec<u8> = Vec::with_capacity(padded.len());
    for (i, block) in padded.chunks(16).enumerate() {
        let mut h = Md5::new();
        h.update(secret);
        if i == 0 {
            h.update(request_auth);
        } else {
            h.update(&out[(i - 1) * 16..i * 16]);
        }
        let b: [u8; 16] = h.finalize().into();
        out.extend(block.iter().zip(b).map(|(c, k)| c ^ k));
    }
    out
}

/// CHAP (RFC 1994 via RFC 2865 §5.3): CHAP-Password is the CHAP id then MD5(id ‖ password ‖
/// challenge); the challenge is CHAP-Challenge, or the request authenticator when absent.
pub fn chap_ok(chap_password: &[u8], challenge: &[u8], password: &[u8]) -> bool {
    if chap_password.len() != 17 {
        return false;
    }
    let mut h = Md5::new();
    h.update(&chap_password[..1]);
    h.update(password);
    h.update(challenge);
    let want: [u8; 16] = h.finalize().into();
    bool::from(want.ct_eq(&chap_password[1..]))
}

/// A packet being written. Replies start with a Message-Authenticator placeholder, so it is the
/// first attribute (the BlastRADIUS mitigation); `finish_*` fills in the authenticators.
#[derive(Debug, Clone)]
pub struct Builder {
    buf: Vec<u8>,
    ma_at: Option<usize>,
}

impl Builder {
    pub fn new(code: u8, id: u8) -> Builder {
        let mut buf = Vec::with_capacity(256);
        buf.extend([code, id, 0, 0]);
        buf.extend([0u8; 16]);
        Builder { buf, ma_at: None }
    }

    /// A packet whose first attribute is a Message-Authenticator.
    pub fn with_message_authenticator(code: u8, id: u8) -> Builder {
        let mut b = Builder::new(code, id);
        b.ma_at = Some(b.buf.len() + 2);
        b.buf.extend([attr::MESSAGE_AUTHENTICATOR, 18]);
        b.buf.extend([0u8; 16]);
        b
    }

    /// Adds an attribute; values longer than 253 bytes are cut (RFC 2865 §5: no attribute is
    /// longer), and nothing is added past 4096 bytes.
    pub fn add(&mut self, t: u8, value: &[u8]) -> &mut Self {
        let value = &value[..value.len().min(253)];
        if self.buf.len() + 2 + value.len() <= MAX_LEN {
            self.buf.push(t);
            self.buf.push(value.len() as u8 + 2);
            self.buf.extend_from_slice(value);
        }
        self
    }

    pub fn add_u32(&mut self, t: u8, v: u32) -> &mut Self {
        self.add(t, &v.to_be_bytes())
    }

    pub fn add_vsa(&mut self, vendor: u32, t: u8, value: &[u8]) -> &mut Self {
        let value = &value[..value.len().min(247)];
        let mut v = Vec::with_capacity(6 + value.len());
        v.extend(vendor.to_be_bytes());
        v.push(t);
        v.push(value.len() as u8 + 2);
        v.extend_from_slice(value);
        self.add(attr::VENDOR_SPECIFIC, &v)
    }

    pub fn add_vsa_u32(&mut self, vendor: u32, t: u8, v: u32) -> &mut Self {
        self.add_vsa(vendor, t, &v.to_be_bytes())
    }

    fn set_length(&mut self) {
        let len = self.buf.len() as u16;
        self.buf[2..4].copy_from_slice(&len.to_be_bytes());
    }

    fn write_ma(&mut self, secret: &[u8]) {
        if let Some(at) = self.ma_at {
            self.buf[at..at + 16].fill(0);
            let mut mac = hmac_md5(secret);
            mac.update(&self.buf);
            let tag = mac.finalize().into_bytes();
            self.buf[at..at + 16].copy_from_slice(&tag);
        }
    }

    /// A reply (Accept, Reject, Accounting-Response, ACK, NAK): the Message-Authenticator is
    /// computed with the request authenticator in place, then the Response Authenticator.
    pub fn finish_response(mut self, request_auth: &[u8; 16], secret: &[u8]) -> Vec<u8> {
        self.set_length();
        let vector = ma_vector(self.buf[0], request_auth);
        self.buf[4..20].copy_from_slice(&vector);
        self.write_ma(secret);
        let auth = digest_with(&self.buf, request_auth, secret);
        self.buf[4..20].copy_from_slice(&auth);
        self.buf
    }

    /// An Accounting-Request or Disconnect-Request: the Message-Authenticator over the packet
    /// with a zero authenticator, then the Request Authenticator.
    pub fn finish_request(mut self, secret: &[u8]) -> Vec<u8> {
        self.set_length();
        self.buf[4..20].fill(0);
        self.write_ma(secret);
        let auth = digest_with(&self.buf, &[0u8; 16], secret);
        self.buf[4..20].copy_from_slice(&auth);
        self.buf
    }

    /// An Access-Request with the given random authenticator.
    pub fn finish_access_request(mut self, authenticator: &[u8; 16], secret: &[u8]) -> Vec<u8> {
        self.set_length();
        self.buf[4..20].copy_from_slice(authenticator);
        self.write_ma(secret);
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"a-long-shared-secret";

    #[test]
    fn rfc2865_pap_example_round_trips() {
        // RFC 2865 §7.1: user "nemo", password "arctangent", secret "xyzzy5461".
        let auth: [u8; 16] = hex::decode("0f403f9473978057bd83d5cb98f4227a")
            .unwrap()
            .try_into()
            .unwrap();
        let hidden = hex::decode("0dbe708d93d413ce3196e43f782a0aee").unwrap();
        assert_eq!(
            pap_password(&hidden, &auth, b"xyzzy5461").unwrap(),
            b"arctangent"
        );
        assert_eq!(pap_hide(b"arctangent", &auth, b"xyzzy5461"), hidden);
        let long = b"a password longer than sixteen bytes";
        let h = pap_hide(long, &auth, SECRET);
        assert_eq!(h.len(), 48);
        assert_eq!(pap_password(&h, &auth, SECRET).unwrap(), long);
        assert_eq!(pap_password(&h[..47], &auth, SECRET), None);
    }

    #[test]
    fn rfc2865_accept_example_response_authenticator() {
        // RFC 2865 §7.1: the Access-Accept to the request above.
        let req_auth: [u8; 16] = hex::decode("0f403f9473978057bd83d5cb98f4227a")
            .unwrap()
            .try_into()
            .unwrap();
        let reply = hex::decode(
            "0200002686fe220e7624ba2a1005f6bf9b55e0b20606000000010f06000000000e06c0a80103",
        )
        .unwrap();
        let p = Packet::parse(&reply).unwrap();
        assert!(p.response_ok(&req_auth, b"xyzzy5461"));
        assert!(!p.response_ok(&req_auth, b"xyzzy5462"));
    }

    #[test]
    fn replies_carry_the_message_authenticator_first_and_verify() {
        let req_auth = [7u8; 16];
        let mut b = Builder::with_message_authenticator(ACCESS_ACCEPT, 9);
        b.add_u32(attr::SESSION_TIMEOUT, 3600).add_vsa(
            vendor::MIKROTIK,
            vendor::MIKROTIK_RATE_LIMIT,
            b"2M/4M",
        );
        let bytes = b.finish_response(&req_auth, SECRET);
        let p = Packet::parse(&bytes).unwrap();
        assert_eq!(p.attrs().next().unwrap().0, attr::MESSAGE_AUTHENTICATOR);
        assert!(p.response_ok(&req_auth, SECRET));
        assert_eq!(p.u32(attr::SESSION_TIMEOUT), Some(3600));
        assert_eq!(
            p.vsa(vendor::MIKROTIK, vendor::MIKROTIK_RATE_LIMIT),
            Some(&b"2M/4M"[..])
        );
        let mut bad = bytes.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(!Packet::parse(&bad).unwrap().response_ok(&req_auth, SECRET));
    }

    #[test]
    fn request_message_authenticators() {
        let auth = [3u8; 16];
        let mut b = Builder::with_message_authenticator(ACCESS_REQUEST, 1);
        b.add(attr::USER_NAME, b"alice");
        let bytes = b.finish_access_request(&auth, SECRET);
        let p = Packet::parse(&bytes).unwrap();
        assert_eq!(p.message_authenticator(SECRET), MaCheck::Valid);
        assert_eq!(p.message_authenticator(b"other-secret"), MaCheck::Invalid);
        let mut plain = Builder::new(ACCESS_REQUEST, 1);
        plain.add(attr::USER_NAME, b"alice");
        let bytes = plain.finish_access_request(&auth, SECRET);
        assert_eq!(
            Packet::parse(&bytes).unwrap().message_authenticator(SECRET),
            MaCheck::Missing
        );
        let mut dm = Builder::with_message_authenticator(DISCONNECT_REQUEST, 2);
        dm.add(attr::ACCT_SESSION_ID, b"81000001");
        let bytes = dm.finish_request(SECRET);
        let p = Packet::parse(&bytes).unwrap();
        assert!(p.request_authenticator_ok(SECRET));
        assert!(!p.request_authenticator_ok(b"other-secret"));
        assert_eq!(p.message_authenticator(SECRET), MaCheck::Valid);
    }

    #[test]
    fn chap() {
        let challenge = [5u8; 16];
        let mut h = Md5::new();
        h.update([42u8]);
        h.update(b"secret-pw");
        h.update(challenge);
        let mut cp = vec![42u8];
        cp.extend_from_slice(&h.finalize());
        assert!(chap_ok(&cp, &challenge, b"secret-pw"));
        assert!(!chap_ok(&cp, &challenge, b"secret-px"));
        assert!(!chap_ok(&cp[..16], &challenge, b"secret-pw"));
    }

    #[test]
    fn bad_lengths_are_errors() {
        assert_eq!(Packet::parse(&[1; 19]).unwrap_err(), PacketError::Short(19));
        let mut p = vec![1, 1, 0, 30];
        p.extend([0u8; 16]);
        assert!(matches!(
            Packet::parse(&p),
            Err(PacketError::Length { said: 30, got: 20 })
        ));
        p[3] = 20;
        p.extend([1, 1]); // padding after the length: ignored
        assert_eq!(Packet::parse(&p).unwrap().attrs().count(), 0);
        p[3] = 22;
        assert!(matches!(
            Packet::parse(&p),
            Err(PacketError::Attribute { at: 20, len: 1 })
        ));
        p[21] = 3;
        assert!(matches!(
            Packet::parse(&p),
            Err(PacketError::Attribute { at: 20, len: 3 })
        ));
    }

    /// Random and mutated packets never panic the decoder or anything that reads through it.
    #[test]
    fn random_bytes_never_panic() {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut valid = Builder::with_message_authenticator(ACCESS_REQUEST, 1);
        valid
            .add(attr::USER_NAME, b"alice")
            .add(attr::CHAP_PASSWORD, &[1u8; 17])
            .add_vsa(vendor::MIKROTIK, 8, b"1M/1M");
        let valid = valid.finish_access_request(&[1; 16], SECRET);
        for i in 0..200_000 {
            let mut buf = if i % 2 == 0 {
                let len = (next() % 300) as usize;
                (0..len).map(|_| next() as u8).collect::<Vec<u8>>()
            } else {
                let mut b = valid.clone();
                for _ in 0..1 + next() % 4 {
                    let at = (next() as usize) % b.len();
                    b[at] = next() as u8;
                }
                b
            };
            if i % 3 == 0 && buf.len() >= 4 {
                let len = buf.len() as u16;
                buf[2..4].copy_from_slice(&len.to_be_bytes());
            }
            if let Ok(p) = Packet::parse(&buf) {
                let _ = p.attrs().count();
                let _ = p.message_authenticator(SECRET);
                let _ = p.request_authenticator_ok(SECRET);
                let _ = p.response_ok(&[0; 16], SECRET);
                let _ = p.vsa(vendor::MIKROTIK, 8);
                let _ = (p.u32(27), p.ipv4(8), p.text(1));
                if let Some(v) = p.attr(attr::USER_PASSWORD) {
                    let _ = pap_password(v, &p.authenticator(), SECRET);
                }
                if let Some(v) = p.attr(attr::CHAP_PASSWORD) {
                    let _ = chap_ok(v, &p.authenticator(), b"pw");
                }
            }
        }
    }
}
