//! What an Access-Request gets, decided from a store read and the request's credentials (pure),
//! and how the answer is written for each kind of NAS.

use subtle::ConstantTimeEq;

use super::packet::{attr, vendor, Builder, ACCESS_ACCEPT, ACCESS_REJECT};
use crate::config::NasKind;
use crate::domain::Mac;
use crate::engine::access::{admit, Facts};
use crate::store::router::AccessView;
use crate::units::rate_limit_bps;

/// How the device proved it knows the password.
#[derive(Debug, Clone)]
pub enum Credentials<'a> {
    /// User-Password, already decrypted.
    Pap(Vec<u8>),
    /// CHAP-Password (id ‖ hash) and the challenge it answers.
    Chap {
        response: &'a [u8],
        challenge: &'a [u8],
    },
    None,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accept {
    /// Whole seconds, rounded up, so a grant is never cut short by rounding.
    pub session_timeout: u32,
    pub idle_timeout: Option<u32>,
    pub interim_interval: u32,
    pub class: String,
    pub rate_limit: Option<String>,
    /// Data left for the whole entitlement; `None` for no cap.
    pub data_left: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Accept(Accept),
    /// Why, for the customer (Reply-Message), and a short code for logs and counters.
    Reject {
        code: &'static str,
        message: String,
    },
}

fn password_ok(creds: &Credentials<'_>, password: &str) -> bool {
    match creds {
        Credentials::Pap(given) => bool::from(given.as_slice().ct_eq(password.as_bytes())),
        Credentials::Chap {
            response,
            challenge,
        } => super::packet::chap_ok(response, challenge, password.as_bytes()),
        Credentials::None => false,
    }
}

pub fn decide(
    view: Option<&AccessView>,
    creds: &Credentials<'_>,
    mac: Option<&Mac>,
    interim_interval: u32,
) -> Answer {
    let Some(v) = view else {
        return Answer::Reject {
            code: "unknown-user",
            message: "unknown user name or voucher code".into(),
        };
    };
    if !password_ok(creds, &v.user.password) {
        return Answer::Reject {
            code: "wrong-password",
            message: "wrong password".into(),
        };
    }
    let bound = v.user.mac.as_deref().and_then(|m| Mac::parse(m).ok());
    let facts = Facts {
        state: v.user.state,
        bound_mac: bound.as_ref(),
        has_grant: v.grant_id.is_some() && v.user.time_left_ms > 0,
        data_left: v.grant_data_left,
        sessions: v.sessions,
        devices: v.plan.as_ref().map_or(1, |p| p.devices),
    };
    if let Err(r) = admit(&facts, mac) {
        let data_gone = r.code == crate::engine::RejectCode::Expired
            && v.last_end_reason.as_deref() == Some("data");
        return Answer::Reject {
            code: r.code.as_str(),
            message: if data_gone {
                "your data has run out".into()
            } else {
                r.message
            },
        };
    }
    let secs = |ms: i64| {
        u32::try_from(crate::units::non_negative(ms).div_ceil(1000))
            .unwrap_or(u32::MAX)
            .max(1)
    };
    Answer::Accept(Accept {
        session_timeout: secs(v.user.time_left_ms),
        idle_timeout: v
            .plan
            .as_ref()
            .and_then(|p| p.idle_timeout)
            .map(|s| secs(s.ms())),
        interim_interval,
        class: format!(
            "hotspot-edge user={} grant={}",
            v.user_id,
            v.grant_id.unwrap_or(0)
        ),
        rate_limit: v.plan.as_ref().and_then(|p| p.rate_limit.clone()),
        data_left: v.user.data_left,
    })
}

/// Writes the answer to a request with identifier `id`; the Message-Authenticator comes first.
pub fn encode(answer: &Answer, kind: NasKind, id: u8) -> Builder {
    match answer {
        Answer::Reject { message, .. } => {
            let mut b = Builder::with_message_authenticator(ACCESS_REJECT, id);
            b.add(attr::REPLY_MESSAGE, message.as_bytes());
            b
        }
        Answer::Accept(a) => {
            let mut b = Builder::with_message_authenticator(ACCESS_ACCEPT, id);
            b.add_u32(attr::SESSION_TIMEOUT, a.session_timeout);
            if let Some(t) = a.idle_timeout {
                b.add_u32(attr::IDLE_TIMEOUT, t);
            }
            b.add_u32(attr::ACCT_INTERIM_INTERVAL, a.interim_interval);
            b.add(attr::CLASS, a.class.as_bytes());
            // Limits are 32-bit: the low word, and the high word as Gigawords.
            let split = |v: u64| (v as u32, (v >> 32) as u32);
            match kind {
                NasKind::Mikrotik => {
                    if let Some(r) = &a.rate_limit {
                        b.add_vsa(vendor::MIKROTIK, vendor::MIKROTIK_RATE_LIMIT, r.as_bytes());
                    }
                    if let Some(d) = a.data_left {
                        let (low, high) = split(d);
                        b.add_vsa_u32(vendor::MIKROTIK, vendor::MIKROTIK_TOTAL_LIMIT, low);
                        b.add_vsa_u32(
                            vendor::MIKROTIK,
                            vendor::MIKROTIK_TOTAL_LIMIT_GIGAWORDS,
                            high,
                        );
                    }
                }
                NasKind::Coova => {
                    if let Some((up, down)) = a.rate_limit.as_deref().and_then(rate_limit_bps) {
                        let clamp = |v: u64| v.min(u32::MAX as u64) as u32;
                        b.add_vsa_u32(vendor::WISPR, vendor::WISPR_BANDWIDTH_MAX_UP, clamp(up));
                        b.add_vsa_u32(vendor::WISPR, vendor::WISPR_BANDWIDTH_MAX_DOWN, clamp(down));
                    }
                    if let Some(d) = a.data_left {
                        let (low, high) = split(d);
                        b.add_vsa_u32(vendor::CHILLISPOT, vendor::CHILLISPOT_MAX_TOTAL_OCTETS, low);
                        if high > 0 {
                            b.add_vsa_u32(
                                vendor::CHILLISPOT,
                                vendor::CHILLISPOT_MAX_TOTAL_GIGAWORDS,
                                high,
                            );
                        }
                    }
                }
                NasKind::Generic => {}
            }
            b
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Currency, Plan, PlanId, Validity};
    use crate::engine::model::UserState;
    use crate::radius::packet::Packet;
    use crate::store::router::RouterUser;
    use crate::units::{Bytes, Span};

    fn view() -> AccessView {
        AccessView {
            user: RouterUser {
                name: "alice".into(),
                password: "pw1234".into(),
                state: UserState::Active,
                plan: Some("day".into()),
                time_left_ms: 3_599_001,
                data_left: Some(5_000_000_000),
                mac: None,
            },
            user_id: 7,
            grant_id: Some(9),
            grant_data_left: Some(5_000_000_000),
            plan: Some(Plan {
                id: PlanId::parse("day").unwrap(),
                name: "Day".into(),
                price: 100,
                currency: Currency::parse("KES").unwrap(),
                time: Span::from_secs(86_400),
                validity: Validity::Wall,
                data: Some(Bytes(5_000_000_000)),
                rate_limit: Some("512k/2M".into()),
                devices: 2,
                idle_timeout: Some(Span::from_secs(900)),
            }),
            sessions: 1,
            last_end_reason: None,
        }
    }

    #[test]
    fn accept_carries_time_left_rounded_up_and_limits_per_kind() {
        let v = view();
        let a = decide(Some(&v), &Credentials::Pap(b"pw1234".to_vec()), None, 300);
        let Answer::Accept(acc) = &a else {
            panic!("{a:?}")
        };
        assert_eq!(acc.session_timeout, 3600);
        assert_eq!(acc.idle_timeout, Some(900));
        assert_eq!(acc.class, "hotspot-edge user=7 grant=9");
        let bytes = encode(&a, NasKind::Mikrotik, 1).finish_response(&[0; 16], b"s");
        let p = Packet::parse(&bytes).unwrap();
        assert_eq!(
            p.vsa_u32(vendor::MIKROTIK, vendor::MIKROTIK_TOTAL_LIMIT)
                .unwrap() as u64
                + ((p
                    .vsa_u32(vendor::MIKROTIK, vendor::MIKROTIK_TOTAL_LIMIT_GIGAWORDS)
                    .unwrap() as u64)
                    << 32),
            5_000_000_000
        );
        let bytes = encode(&a, NasKind::Coova, 1).finish_response(&[0; 16], b"s");
        let p = Packet::parse(&bytes).unwrap();
        assert_eq!(
            p.vsa_u32(vendor::WISPR, vendor::WISPR_BANDWIDTH_MAX_UP)
                .unwrap(),
            512_000
        );
        assert_eq!(
            p.vsa_u32(vendor::WISPR, vendor::WISPR_BANDWIDTH_MAX_DOWN)
                .unwrap(),
            2_000_000
        );
        assert_eq!(
            p.vsa_u32(vendor::CHILLISPOT, vendor::CHILLISPOT_MAX_TOTAL_OCTETS)
                .unwrap(),
            5_000_000_000u64 as u32
        );
        let bytes = encode(&a, NasKind::Generic, 1).finish_response(&[0; 16], b"s");
        assert_eq!(
            Packet::parse(&bytes).unwrap().count(attr::VENDOR_SPECIFIC),
            0
        );
    }

    #[test]
    fn rejects_say_why() {
        let v = view();
        let msg = |a: Answer| match a {
            Answer::Reject { message, .. } => message,
            a => panic!("{a:?}"),
        };
        assert_eq!(
            msg(decide(None, &Credentials::Pap(b"x".to_vec()), None, 300)),
            "unknown user name or voucher code"
        );
        assert_eq!(
            msg(decide(
                Some(&v),
                &Credentials::Pap(b"pw12345".to_vec()),
                None,
                300
            )),
            "wrong password"
        );
        assert_eq!(
            msg(decide(Some(&v), &Credentials::None, None, 300)),
            "wrong password"
        );
        let mut full = view();
        full.sessions = 2;
        assert!(msg(decide(
            Some(&full),
            &Credentials::Pap(b"pw1234".to_vec()),
            None,
            300
        ))
        .contains("already in use on 2"));
        let mut ended = view();
        ended.grant_id = None;
        ended.user.time_left_ms = 0;
        assert_eq!(
            msg(decide(
                Some(&ended),
                &Credentials::Pap(b"pw1234".to_vec()),
                None,
                300
            )),
            "your time has run out"
        );
    }
}
