//! Requests to change something. The CLI, the cloud (MQTT), the portal, a RADIUS server and the
//! deadline timer all express what they want as a [`Command`]; the JSON form is
//! `{"type": "...", "args": {...}}` (docs/events.md).

use serde::{Deserialize, Serialize};

use crate::domain::{Currency, Plan, PlanId, PlanSource, Validity};
use crate::units::{Bytes, Span};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "args", rename_all = "kebab-case")]
pub enum Command {
    /// Money received for a plan (M-Pesa callback via the cloud, a cash sale at the counter).
    #[serde(rename = "payment.confirmed")]
    PaymentConfirmed(PaymentArgs),
    #[serde(rename = "vouchers.generate")]
    VouchersGenerate(GenerateArgs),
    #[serde(rename = "voucher.redeem")]
    VoucherRedeem(RedeemArgs),
    #[serde(rename = "vouchers.revoke")]
    VouchersRevoke(RevokeArgs),
    #[serde(rename = "user.extend")]
    UserExtend(ExtendArgs),
    #[serde(rename = "user.suspend")]
    UserSuspend(SuspendArgs),
    #[serde(rename = "user.resume")]
    UserResume(UserArg),
    /// A named account made by the cloud or an operator, optionally with time to start with.
    #[serde(rename = "user.create")]
    UserCreate(CreateUserArgs),
    /// Log every device of a user out now (the account stays usable).
    #[serde(rename = "user.disconnect")]
    UserDisconnect(SuspendArgs),
    /// Voucher codes made elsewhere (the cloud's shop) become redeemable here.
    #[serde(rename = "vouchers.import")]
    VouchersImport(ImportArgs),
    #[serde(rename = "plans.upsert")]
    PlansUpsert(PlanArgs),
    #[serde(rename = "plans.remove")]
    PlansRemove(PlanIdArg),
    /// A device logged in on the NAS.
    #[serde(rename = "session.started")]
    SessionStarted(SessionStartArgs),
    /// Counters of active sessions (absolute, as the NAS reports them), in one batch.
    #[serde(rename = "session.usage")]
    SessionUsage(UsageArgs),
    #[serde(rename = "session.ended")]
    SessionEnded(SessionEndArgs),
    /// The NAS confirmed that every device of a user is logged out (after expiry, suspension,
    /// a quota): ends our sessions of that user and writes the audit row.
    #[serde(rename = "user.disconnected")]
    UserDisconnected(DisconnectedArgs),
    /// Deadlines have passed: end grants, expire users and vouchers.
    #[serde(rename = "tick")]
    Tick,
}

impl Command {
    pub fn type_name(&self) -> &'static str {
        match self {
            Command::PaymentConfirmed(_) => "payment.confirmed",
            Command::VouchersGenerate(_) => "vouchers.generate",
            Command::VoucherRedeem(_) => "voucher.redeem",
            Command::VouchersRevoke(_) => "vouchers.revoke",
            Command::UserExtend(_) => "user.extend",
            Command::UserSuspend(_) => "user.suspend",
            Command::UserResume(_) => "user.resume",
            Command::UserCreate(_) => "user.create",
            Command::UserDisconnect(_) => "user.disconnect",
            Command::VouchersImport(_) => "vouchers.import",
            Command::PlansUpsert(_) => "plans.upsert",
            Command::PlansRemove(_) => "plans.remove",
            Command::SessionStarted(_) => "session.started",
            Command::SessionUsage(_) => "session.usage",
            Command::SessionEnded(_) => "session.ended",
            Command::UserDisconnected(_) => "user.disconnected",
            Command::Tick => "tick",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PaymentArgs {
    /// `mpesa`, `cash`, ... (lower case).
    pub provider: String,
    /// The provider's receipt, e.g. an M-Pesa receipt `QK12ABC345`; unique per provider.
    pub reference: String,
    #[serde(default)]
    pub phone: Option<String>,
    /// Minor units; defaults to the plan's price.
    #[serde(default)]
    pub amount: Option<u64>,
    pub plan: String,
    /// The paying device, when known: the grant starts now and the device is logged in.
    #[serde(default)]
    pub mac: Option<String>,
    #[serde(default)]
    pub ip: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct GenerateArgs {
    pub plan: String,
    pub count: u32,
    /// Code length; defaults to `[vouchers] length`.
    #[serde(default)]
    pub length: Option<usize>,
    /// Overrides `[vouchers] unredeemed-expiry`, e.g. `"30d"`.
    #[serde(default)]
    pub expires_in: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RedeemArgs {
    pub code: String,
    #[serde(default)]
    pub mac: Option<String>,
    #[serde(default)]
    pub ip: Option<String>,
    /// Top up this existing user instead of creating one.
    #[serde(default)]
    pub user: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RevokeArgs {
    pub codes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ExtendArgs {
    pub user: String,
    /// Add what this plan gives ...
    #[serde(default)]
    pub plan: Option<String>,
    /// ... or this much time (e.g. `"1h"`, as a `wall` grant) and optionally data.
    #[serde(default)]
    pub time: Option<String>,
    #[serde(default)]
    pub data: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CreateUserArgs {
    /// Default: a generated name.
    #[serde(default)]
    pub user: Option<String>,
    /// Default: a generated password.
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub mac: Option<String>,
    /// Time to start with, as for `user.extend`: a plan, or a time (and data).
    #[serde(default)]
    pub plan: Option<String>,
    #[serde(default)]
    pub time: Option<String>,
    #[serde(default)]
    pub data: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ImportArgs {
    pub plan: String,
    pub codes: Vec<String>,
    /// The cloud's batch name (default: generated).
    #[serde(default)]
    pub batch: Option<String>,
    /// Unredeemed codes expire this long after import, e.g. `"30d"` (default `[vouchers]`).
    #[serde(default)]
    pub expires_in: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SuspendArgs {
    pub user: String,
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct UserArg {
    pub user: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PlanArgs {
    pub id: PlanId,
    pub name: String,
    pub price: u64,
    pub currency: Currency,
    /// e.g. `"1h"`.
    pub time: Span,
    /// `wall` (the default) or `uptime`.
    #[serde(default)]
    pub validity: Option<Validity>,
    /// e.g. `"500MB"`.
    #[serde(default)]
    pub data: Option<Bytes>,
    #[serde(default)]
    pub rate_limit: Option<String>,
    #[serde(default)]
    pub devices: Option<u32>,
    /// A session idle this long is logged out (RADIUS Idle-Timeout), e.g. `15m`.
    #[serde(default)]
    pub idle_timeout: Option<Span>,
    /// Who owns the plan (default `cli`).
    #[serde(default)]
    pub source: Option<PlanSource>,
}

impl PlanArgs {
    /// The command that upserts `p` as `source` owns it.
    pub fn from_plan(p: &Plan, source: PlanSource) -> PlanArgs {
        PlanArgs {
            id: p.id.clone(),
            name: p.name.clone(),
            price: p.price,
            currency: p.currency.clone(),
            time: p.time,
            validity: Some(p.validity),
            data: p.data,
            rate_limit: p.rate_limit.clone(),
            devices: Some(p.devices),
            idle_timeout: p.idle_timeout,
            source: Some(source),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PlanIdArg {
    pub id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SessionStartArgs {
    pub user: String,
    pub nas_session_id: String,
    #[serde(default)]
    pub mac: Option<String>,
    #[serde(default)]
    pub ip: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct UsageArgs {
    pub sessions: Vec<SessionCounters>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SessionCounters {
    pub nas_session_id: String,
    /// From the client (upload), as RouterOS `bytes-in`.
    pub bytes_in: u64,
    pub bytes_out: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SessionEndArgs {
    pub nas_session_id: String,
    /// `user-request`, `idle-timeout`, `expired`, `nas-lost`, ...
    pub reason: String,
    #[serde(default)]
    pub bytes_in: Option<u64>,
    #[serde(default)]
    pub bytes_out: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DisconnectedArgs {
    pub user: String,
    /// Why: `expired`, `suspended`, `data`, `unknown-user`, ...
    pub reason: String,
    /// Active rows the NAS removed.
    #[serde(default)]
    pub removed_sessions: u32,
    /// MAC cookies the NAS removed.
    #[serde(default)]
    pub removed_cookies: u32,
    /// Only these NAS sessions were removed; empty means every session of the user.
    #[serde(default)]
    pub sessions: Vec<String>,
}

/// Where a command came from, kept in the inbox beside its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The `hotspot-edge` command line (and in-process tests acting as it).
    Cli,
    /// `[[plans]]` of the config file, brought in at every start.
    Config,
    /// A signed command from the cloud.
    Mqtt,
    /// RADIUS accounting.
    Radius,
    /// What the enforcer learnt from the NAS (sessions, usage, disconnects).
    Router,
    /// The deadline timer.
    Timer,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Cli => "cli",
            Source::Config => "config",
            Source::Mqtt => "mqtt",
            Source::Radius => "radius",
            Source::Router => "router",
            Source::Timer => "timer",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The cloud's `plans.upsert` is read into typed fields once: the same JSON as before, and a
    /// bad value is refused where it is read, naming what is wrong.
    #[test]
    fn plan_args_keep_their_wire_form_and_refuse_bad_values_when_read() {
        let wire = json!({"type": "plans.upsert", "args": {
            "id": "1h", "name": "One hour", "price": 1000, "currency": "KES", "time": "1h",
            "validity": "uptime", "data": "500MB", "idle-timeout": "15m", "source": "cloud"}});
        let cmd: Command = serde_json::from_value(wire.clone()).unwrap();
        let Command::PlansUpsert(a) = &cmd else {
            panic!("{cmd:?}")
        };
        assert_eq!(a.time, Span::from_secs(3600));
        assert_eq!(a.data, Some(Bytes(500_000_000)));
        assert_eq!(a.validity, Some(Validity::Uptime));
        assert_eq!(a.source, Some(PlanSource::Cloud));
        let mut back = serde_json::to_value(&cmd).unwrap();
        back["args"]
            .as_object_mut()
            .unwrap()
            .retain(|_, v| !v.is_null());
        assert_eq!(back, wire);
        for (field, value, says) in [
            ("time", "an hour", "bad duration"),
            ("data", "lots", "bad size"),
            ("id", "One Hour", "bad plan id"),
            ("currency", "ksh", "bad currency"),
            ("validity", "forever", "unknown variant"),
            ("source", "shop", "unknown variant"),
        ] {
            let mut bad = wire.clone();
            bad["args"][field] = json!(value);
            let e = serde_json::from_value::<Command>(bad)
                .unwrap_err()
                .to_string();
            assert!(e.contains(says), "{field}: {e}");
        }
    }
}
