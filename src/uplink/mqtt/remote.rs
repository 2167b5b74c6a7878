//! Remote commands on the wire (docs/mqtt.md): a signed envelope
//! `{"body": "<command JSON>", "sig": "<hex HMAC-SHA256(key, body)>"}`. Checking one is pure: bytes,
//! key, site and `now` in; a [`Request`] or a [`Refusal`] out. Nothing here touches state.

use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::Sha256;

use crate::clock::{rfc3339, Now};
use crate::engine::Command;

type HmacSha256 = Hmac<Sha256>;

/// A command that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub id: String,
    pub kind: RequestKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RequestKind {
    /// Changes state: goes through the engine, recorded in the inbox under its id.
    Apply(Command),
    /// Reads state: answered from the store, changes nothing.
    StatusGet,
    SessionsList(SessionsQuery),
    /// Trust the site's wall clock as it is now (docs/time.md); not an engine command: it
    /// changes the clock state, with an event. Repeating it is harmless.
    ClockResetHighWater,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SessionsQuery {
    #[serde(default)]
    pub user: Option<String>,
    /// Ended sessions too (default: active only).
    #[serde(default)]
    pub all: bool,
    #[serde(default = "default_limit")]
    pub limit: usize,
}

fn default_limit() -> usize {
    100
}

/// Why a command was refused before it reached the engine; nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The command id, when the body could be read far enough to know it (never trusted for
    /// deduplication: an unsigned id is the sender's word only).
    pub id: Option<String>,
    pub code: &'static str,
    pub message: String,
    /// The signature checked out: the refusal answers our own cloud, not a stranger.
    pub signed: bool,
}

impl Refusal {
    fn new(id: Option<&str>, code: &'static str, message: impl Into<String>) -> Self {
        Refusal {
            id: id.map(str::to_string),
            code,
            message: message.into(),
            signed: true,
        }
    }

    /// Refused before the signature was verified: anyone with access to the topic can cause
    /// these, so they are answered within a budget (`RefusalBudget`).
    fn unsigned(code: &'static str, message: impl Into<String>) -> Self {
        Refusal {
            signed: false,
            ..Refusal::new(None, code, message)
        }
    }
}

/// What a check needs besides the bytes.
pub struct Checks<'a> {
    pub key: &'a [u8],
    pub site: &'a str,
    pub max_bytes: usize,
    pub max_age_ms: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    body: String,
    sig: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Body {
    id: String,
    site: String,
    issued_at: String,
    #[serde(rename = "type")]
    ty: String,
    #[serde(default)]
    args: Option<Value>,
}

/// Types accepted over MQTT: the engine's commands an operator may send, plus the queries.
/// (`session.*`, `user.disconnected` and `tick` come from the NAS and the timer only.)
pub const TYPES: &[&str] = &[
    "payment.confirmed",
    "user.create",
    "user.extend",
    "user.suspend",
    "user.resume",
    "user.disconnect",
    "plans.upsert",
    "plans.remove",
    "vouchers.generate",
    "vouchers.import",
    "vouchers.revoke",
    "voucher.redeem",
    "status.get",
    "sessions.list",
    "clock.reset-high-water",
];

pub fn sign(key: &[u8], body: &str) -> String {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(body.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// The wire form of a command: what `hotspot-edge sign-command` prints.
pub fn envelope(key: &[u8], body: &str) -> String {
    json!({"body": body, "sig": sign(key, body)}).to_string()
}

/// Checks a received payload, in the order that does least work for a forger.
pub fn check(payload: &[u8], c: &Checks<'_>, now: &Now) -> Result<Request, Refusal> {
    if payload.len() > c.max_bytes {
        return Err(Refusal::unsigned(
            "too-large",
            format!(
                "command is {} bytes; the limit is {} ([mqtt] command-max-bytes)",
                payload.len(),
                c.max_bytes
            ),
        ));
    }
    let env: Envelope = serde_json::from_slice(payload).map_err(|e| {
        Refusal::unsigned(
            "bad-json",
            format!("not a command envelope {{\"body\": \"...\", \"sig\": \"...\"}}: {e}"),
        )
    })?;
    let sig = hex::decode(&env.sig)
        .ok()
        .filter(|s| s.len() == 32 && env.sig.bytes().all(|b| !b.is_ascii_uppercase()));
    let Some(sig) = sig else {
        return Err(Refusal::unsigned(
            "bad-signature",
            "sig must be 64 lowercase hex digits (HMAC-SHA256)",
        ));
    };
    let mut mac = HmacSha256::new_from_slice(c.key).expect("HMAC takes keys of any length");
    mac.update(env.body.as_bytes());
    // Constant-time comparison.
    if mac.verify_slice(&sig).is_err() {
        return Err(Refusal::unsigned(
            "bad-signature",
            "signature does not match the body (wrong key, or the body was changed)",
        ));
    }
    let body: Body = serde_json::from_str(&env.body)
        .map_err(|e| Refusal::new(None, "bad-json", format!("body: {e}")))?;
    let id = Some(body.id.as_str());
    if body.id.is_empty() || body.id.len() > 128 || body.id.chars().any(|c| c.is_control()) {
        return Err(Refusal::new(
            None,
            "bad-args",
            "id must be 1 to 128 printable characters",
        ));
    }
    if body.site != c.site {
        return Err(Refusal::new(
            id,
            "wrong-site",
            format!("command is for site {:?}, this is {:?}", body.site, c.site),
        ));
    }
    let issued = crate::clock::parse_rfc3339(&body.issued_at).ok_or_else(|| {
        Refusal::new(
            id,
            "bad-args",
            format!("issued-at {:?} is not RFC 3339", body.issued_at),
        )
    })?;
    if now.trusted {
        let age = now.wall_ms - issued;
        if age > c.max_age_ms {
            return Err(Refusal::new(
                id,
                "too-old",
                format!(
                    "issued at {} , {} s ago; the limit is {} s ([mqtt] command-max-age)",
                    body.issued_at,
                    age / 1000,
                    c.max_age_ms / 1000
                ),
            ));
        }
        if -age > c.max_age_ms {
            return Err(Refusal::new(
                id,
                "too-old",
                format!(
                    "issued at {}, in the future (our clock says {})",
                    body.issued_at,
                    rfc3339(now.wall_ms)
                ),
            ));
        }
    }
    if !TYPES.contains(&body.ty.as_str()) {
        return Err(Refusal::new(
            id,
            "unknown-type",
            format!(
                "unknown command type {:?}; known: {}",
                body.ty,
                TYPES.join(", ")
            ),
        ));
    }
    let args = body.args.unwrap_or(Value::Object(Default::default()));
    let kind = match body.ty.as_str() {
        "status.get" => match &args {
            Value::Object(m) if m.is_empty() => RequestKind::StatusGet,
            _ => return Err(Refusal::new(id, "bad-args", "status.get takes no args")),
        },
        "clock.reset-high-water" => match &args {
            Value::Object(m) if m.is_empty() => RequestKind::ClockResetHighWater,
            _ => {
                return Err(Refusal::new(
                    id,
                    "bad-args",
                    "clock.reset-high-water takes no args",
                ))
            }
        },
        "sessions.list" => RequestKind::SessionsList(
            serde_json::from_value(args)
                .map_err(|e| Refusal::new(id, "bad-args", format!("args: {e}")))?,
        ),
        ty => RequestKind::Apply(
            serde_json::from_value(json!({"type": ty, "args": args}))
                .map_err(|e| Refusal::new(id, "bad-args", format!("args: {e}")))?,
        ),
    };
    Ok(Request { id: body.id, kind })
}

/// `{"id": ..., "ok": true, "result": ...}`
pub fn reply_ok(id: &str, result: &Value) -> String {
    json!({"id": id, "ok": true, "result": result}).to_string()
}

/// `{"id": ..., "ok": false, "error": {"code": ..., "message": ...}}`
pub fn reply_error(id: Option<&str>, code: &str, message: &str) -> String {
    json!({"id": id, "ok": false, "error": {"code": code, "message": message}}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef-site-key";

    fn now() -> Now {
        Now {
            wall_ms: crate::clock::parse_rfc3339("2026-11-21T10:00:00Z").unwrap(),
            timeline_ms: 5_000,
            trusted: true,
        }
    }

    fn checks() -> Checks<'static> {
        Checks {
            key: KEY,
            site: "s1",
            max_bytes: 4096,
            max_age_ms: 3_600_000,
        }
    }

    fn body(ty: &str, args: Value) -> String {
        json!({"id": "c-1", "site": "s1", "issued-at": "2026-11-21T09:59:00Z", "type": ty, "args": args})
            .to_string()
    }

    fn code_of(payload: &str) -> &'static str {
        check(payload.as_bytes(), &checks(), &now())
            .unwrap_err()
            .code
    }

    #[test]
    fn a_signed_command_checks_out() {
        let b = body("user.suspend", json!({"user": "abc"}));
        let r = check(envelope(KEY, &b).as_bytes(), &checks(), &now()).unwrap();
        assert_eq!(r.id, "c-1");
        assert_eq!(
            r.kind,
            RequestKind::Apply(Command::UserSuspend(crate::engine::command::SuspendArgs {
                user: "abc".into(),
                reason: None
            }))
        );
        let q = body("status.get", json!({}));
        assert_eq!(
            check(envelope(KEY, &q).as_bytes(), &checks(), &now())
                .unwrap()
                .kind,
            RequestKind::StatusGet
        );
    }

    #[test]
    fn the_signature_recipe_matches_a_known_vector() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            sign(b"Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn every_kind_of_bad_command_is_refused_with_its_code() {
        let good = body("user.resume", json!({"user": "abc"}));
        assert_eq!(code_of("{not json"), "bad-json");
        assert_eq!(code_of(r#"{"body": "x"}"#), "bad-json");
        let mut sig = sign(KEY, &good);
        assert_eq!(
            code_of(&json!({"body": good, "sig": sig.to_uppercase()}).to_string()),
            "bad-signature"
        );
        sig.replace_range(0..1, if sig.starts_with('0') { "1" } else { "0" });
        assert_eq!(
            code_of(&json!({"body": good, "sig": sig}).to_string()),
            "bad-signature"
        );
        assert_eq!(
            code_of(&envelope(b"another-key-entirely", &good)),
            "bad-signature"
        );
        let wrong_site = good.replace("\"s1\"", "\"s2\"");
        assert_eq!(code_of(&envelope(KEY, &wrong_site)), "wrong-site");
        assert_eq!(
            code_of(&envelope(KEY, &body("user.explode", json!({})))),
            "unknown-type"
        );
        assert_eq!(
            code_of(&envelope(KEY, &body("tick", json!({})))),
            "unknown-type"
        );
        assert_eq!(
            code_of(&envelope(KEY, &body("user.resume", json!({"usr": "x"})))),
            "bad-args"
        );
        let old = good.replace("2026-11-21T09:59:00Z", "2026-11-21T08:59:59Z");
        assert_eq!(code_of(&envelope(KEY, &old)), "too-old");
        let future = good.replace("2026-11-21T09:59:00Z", "2026-11-21T11:00:01Z");
        assert_eq!(code_of(&envelope(KEY, &future)), "too-old");
        let big = envelope(KEY, &body("user.resume", json!({"user": "x".repeat(5000)})));
        assert_eq!(code_of(&big), "too-large");
        let missing = json!({"id": "c-1", "site": "s1", "type": "user.resume"}).to_string();
        assert_eq!(code_of(&envelope(KEY, &missing)), "bad-json");
    }

    #[test]
    fn age_is_not_checked_while_the_clock_is_untrusted() {
        let old = body("user.resume", json!({"user": "abc"}))
            .replace("2026-11-21T09:59:00Z", "2020-01-01T00:00:00Z");
        let mut n = now();
        n.trusted = false;
        assert!(check(envelope(KEY, &old).as_bytes(), &checks(), &n).is_ok());
    }
}
