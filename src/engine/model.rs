//! Rows the engine reads and writes through the [`super::Ledger`]: plain data, no behaviour.

use serde::Serialize;

use crate::domain::{Mac, Plan, PlanId, Validity};

pub type UserId = i64;
pub type GrantId = i64;
pub type SessionId = i64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum UserState {
    Active,
    Suspended,
    Expired,
}

impl UserState {
    pub fn as_str(self) -> &'static str {
        match self {
            UserState::Active => "active",
            UserState::Suspended => "suspended",
            UserState::Expired => "expired",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(UserState::Active),
            "suspended" => Some(UserState::Suspended),
            "expired" => Some(UserState::Expired),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub username: String,
    pub password: String,
    pub phone: Option<String>,
    pub mac: Option<Mac>,
    pub state: UserState,
    pub created_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum GrantState {
    /// Bought, waiting for first use or for the grant before it to end.
    Queued,
    Running,
    Ended,
}

impl GrantState {
    pub fn as_str(self) -> &'static str {
        match self {
            GrantState::Queued => "queued",
            GrantState::Running => "running",
            GrantState::Ended => "ended",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "queued" => Some(GrantState::Queued),
            "running" => Some(GrantState::Running),
            "ended" => Some(GrantState::Ended),
            _ => None,
        }
    }
}

/// What one payment, voucher or manual extension bought. Times are timeline milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub id: GrantId,
    pub user_id: UserId,
    pub plan_id: PlanId,
    /// `payment:<id>`, `voucher:<code>` or `manual:<command id>`.
    pub source: String,
    pub validity: Validity,
    pub time_ms: i64,
    pub data_bytes: Option<u64>,
    pub state: GrantState,
    pub started_at: Option<i64>,
    /// `uptime` grants: when metering last resumed (a device is connected); `None` while paused.
    pub meter_since: Option<i64>,
    /// `uptime` grants: connected time already counted before `meter_since`.
    pub used_ms: i64,
    pub bytes_used: u64,
    /// When the grant ends if nothing changes; `None` while it cannot end by time.
    pub deadline: Option<i64>,
    pub ended_at: Option<i64>,
    pub end_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewGrant {
    pub user_id: UserId,
    pub plan_id: PlanId,
    pub source: String,
    pub validity: Validity,
    pub time_ms: i64,
    pub data_bytes: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub id: i64,
    pub provider: String,
    pub reference: String,
    pub user_id: i64,
    pub grant_id: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPayment {
    pub provider: String,
    pub reference: String,
    pub phone: Option<String>,
    pub amount: u64,
    pub currency: String,
    pub plan_id: PlanId,
    pub user_id: UserId,
    pub grant_id: GrantId,
    pub received_at: i64,
    pub time_trusted: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum VoucherState {
    Unused,
    Redeemed,
    Revoked,
    Expired,
}

impl VoucherState {
    pub fn as_str(self) -> &'static str {
        match self {
            VoucherState::Unused => "unused",
            VoucherState::Redeemed => "redeemed",
            VoucherState::Revoked => "revoked",
            VoucherState::Expired => "expired",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "unused" => Some(VoucherState::Unused),
            "redeemed" => Some(VoucherState::Redeemed),
            "revoked" => Some(VoucherState::Revoked),
            "expired" => Some(VoucherState::Expired),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voucher {
    pub code: String,
    pub plan_id: PlanId,
    pub batch: String,
    pub state: VoucherState,
    pub created_at: i64,
    /// Wall-clock ms after which an unused voucher is refused (only enforced on a trusted clock).
    pub expires_at: Option<i64>,
    pub redeemed_at: Option<i64>,
    pub user_id: Option<UserId>,
    pub grant_id: Option<GrantId>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: SessionId,
    pub user_id: UserId,
    /// The NAS's id for the session (RouterOS active `.id`, RADIUS Acct-Session-Id).
    pub nas_session_id: String,
    pub mac: Option<Mac>,
    pub ip: Option<String>,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub end_reason: Option<String>,
}

/// A plan as stored: the plan plus whether it is still on sale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPlan {
    pub plan: Plan,
    pub active: bool,
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub user_id: Option<UserId>,
    pub username: Option<String>,
    pub action: String,
    pub reason: String,
    pub detail: Option<String>,
}
