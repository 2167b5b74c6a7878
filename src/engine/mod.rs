//! The engine: business decisions, and nothing else.
//!
//! [`Engine::decide`] takes a command, the instant `now` and a [`Ledger`] (the state, read and
//! written inside the caller's transaction) and returns an [`Outcome`]: a reply, the events for
//! the outbox and the router jobs. It never touches a socket, a file or the system clock, so
//! expiry, quotas and clock jumps are tested with a fake clock to the millisecond.

pub mod access;
pub mod command;
mod decision;
pub mod event;
pub mod grants;
pub mod job;
pub mod model;
mod plans;
mod sales;
mod sessions;
mod timer;
mod users;
mod vouchers;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::clock::{rfc3339, Now};
use crate::domain::{
    Mac, PaymentUsername, Plan, PlanId, PlanSource, Validity, VoucherCode, VoucherUsername,
    VOUCHER_ALPHABET, VOUCHER_MAX_LEN, VOUCHER_MIN_LEN,
};
use crate::units::{check_rate_limit, parse_bytes, parse_span, Span};
pub use command::Command;
use decision::Cx;
pub use event::Event;
pub use job::Job;
use model::*;

/// A storage failure seen through the ledger. The transaction is rolled back.
#[derive(Debug, thiserror::Error)]
#[error("store: {0}")]
pub struct LedgerError(pub String);

pub type LResult<T> = Result<T, LedgerError>;

/// The state the engine decides over. Implemented by the store on an open write transaction.
pub trait Ledger {
    fn plan(&mut self, id: &str) -> LResult<Option<StoredPlan>>;
    fn put_plan(&mut self, plan: &Plan, source: &str, active: bool) -> LResult<()>;
    fn payment_by_ref(&mut self, provider: &str, reference: &str) -> LResult<Option<Payment>>;
    fn insert_payment(&mut self, p: &NewPayment) -> LResult<i64>;
    fn user_by_name(&mut self, username: &str) -> LResult<Option<User>>;
    fn user_by_phone(&mut self, phone: &str) -> LResult<Option<User>>;
    fn user_by_id(&mut self, id: UserId) -> LResult<Option<User>>;
    /// Inserts a user (its `id` is ignored) and returns the new id.
    fn insert_user(&mut self, u: &User) -> LResult<UserId>;
    fn update_user(&mut self, u: &User) -> LResult<()>;
    /// Queued and running grants of a user, oldest first.
    fn open_grants(&mut self, user: UserId) -> LResult<Vec<Grant>>;
    fn insert_grant(&mut self, g: &NewGrant) -> LResult<GrantId>;
    fn update_grant(&mut self, g: &Grant) -> LResult<()>;
    /// Users with a running grant whose deadline is at or before `timeline_ms`, lowest id first,
    /// at most `limit`.
    fn users_with_due_grants(&mut self, timeline_ms: i64, limit: usize) -> LResult<Vec<UserId>>;
    fn voucher(&mut self, code: &str) -> LResult<Option<Voucher>>;
    fn insert_voucher(&mut self, v: &Voucher) -> LResult<()>;
    fn update_voucher(&mut self, v: &Voucher) -> LResult<()>;
    /// Unused vouchers whose expiry (timeline ms) is at or before `timeline_ms`, at most `limit`.
    fn vouchers_due(&mut self, timeline_ms: i64, limit: usize) -> LResult<Vec<Voucher>>;
    fn active_sessions(&mut self, user: UserId) -> LResult<Vec<Session>>;
    /// The active session with this NAS session id.
    fn session_by_nas_id(&mut self, nas_session_id: &str) -> LResult<Option<Session>>;
    fn insert_session(&mut self, s: &Session) -> LResult<SessionId>;
    fn update_session(&mut self, s: &Session) -> LResult<()>;
    fn audit(&mut self, e: &AuditEntry) -> LResult<()>;
}

/// Randomness for codes and passwords; the OS in production, a seed in tests.
pub trait Entropy {
    fn fill(&mut self, buf: &mut [u8]);
}

pub struct OsEntropy;

impl Entropy for OsEntropy {
    fn fill(&mut self, buf: &mut [u8]) {
        if getrandom::fill(buf).is_err() {
            // No OS randomness is a broken device; refuse to hand out guessable codes.
            panic!("the operating system gave no random bytes");
        }
    }
}

/// Deterministic randomness (xorshift64*) for tests and benchmarks.
pub struct SeededEntropy(pub u64);

impl Entropy for SeededEntropy {
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            *b = (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8;
        }
    }
}

/// Why a command was refused. Nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct Rejection {
    pub code: RejectCode,
    pub message: String,
}

pub use crate::domain::{MAX_COUNTER, MAX_MONEY};
pub use plans::plan_from_args;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RejectCode {
    BadArgs,
    NotFound,
    Conflict,
    Expired,
    Suspended,
    NoEntitlement,
    TooManyDevices,
    MacNotAllowed,
}

impl RejectCode {
    pub fn as_str(self) -> &'static str {
        match self {
            RejectCode::BadArgs => "bad-args",
            RejectCode::NotFound => "not-found",
            RejectCode::Conflict => "conflict",
            RejectCode::Expired => "expired",
            RejectCode::Suspended => "suspended",
            RejectCode::NoEntitlement => "no-entitlement",
            RejectCode::TooManyDevices => "too-many-devices",
            RejectCode::MacNotAllowed => "mac-not-allowed",
        }
    }
}

fn reject<T>(code: RejectCode, message: impl Into<String>) -> Result<T, EngineError> {
    Err(EngineError::Rejected(Rejection {
        code,
        message: message.into(),
    }))
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    Rejected(Rejection),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// What a decision produced: the caller commits it all in one transaction.
#[derive(Debug, Default)]
pub struct Outcome {
    pub result: Value,
    pub events: Vec<Event>,
    pub jobs: Vec<Job>,
}

/// The engine's settings (`app::engine_settings` takes them from the config).
#[derive(Debug, Clone)]
pub struct Settings {
    pub payment_username: PaymentUsername,
    pub voucher_username: VoucherUsername,
    pub password_length: usize,
    pub bind_mac: bool,
    pub voucher_length: usize,
    pub voucher_expiry: Option<Span>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            payment_username: PaymentUsername::Generated,
            voucher_username: VoucherUsername::Code,
            password_length: 6,
            bind_mac: false,
            voucher_length: 8,
            voucher_expiry: None,
        }
    }
}

/// Most vouchers one command may generate (one event carries them all).
pub const MAX_VOUCHER_BATCH: u32 = 5000;
const NAME_ALPHABET: &[u8] = b"23456789abcdefghjkmnpqrstuvwxyz";

#[derive(Debug, Clone)]
pub struct Engine {
    pub settings: Settings,
}

impl Engine {
    pub fn new(settings: Settings) -> Self {
        Engine { settings }
    }

    pub fn decide(
        &self,
        cmd: &Command,
        ledger: &mut dyn Ledger,
        now: Now,
        rng: &mut dyn Entropy,
    ) -> Result<Outcome, EngineError> {
        let mut cx = Cx {
            settings: &self.settings,
            ledger,
            now,
            rng,
            out: Outcome::default(),
            job_set: Default::default(),
        };
        let result = match cmd {
            Command::PaymentConfirmed(a) => cx.payment(a)?,
            Command::VouchersGenerate(a) => cx.generate(a)?,
            Command::VoucherRedeem(a) => cx.redeem(a)?,
            Command::VouchersRevoke(a) => cx.revoke(a)?,
            Command::UserExtend(a) => cx.extend(a)?,
            Command::UserSuspend(a) => cx.suspend(a)?,
            Command::UserResume(a) => cx.resume(a)?,
            Command::UserCreate(a) => cx.create_named_user(a)?,
            Command::UserDisconnect(a) => cx.disconnect(a)?,
            Command::VouchersImport(a) => cx.import_vouchers(a)?,
            Command::PlansUpsert(a) => cx.upsert_plan(a)?,
            Command::PlansRemove(a) => cx.remove_plan(a)?,
            Command::SessionStarted(a) => cx.session_started(a)?,
            Command::SessionUsage(a) => cx.session_usage(a)?,
            Command::SessionEnded(a) => cx.session_ended(a)?,
            Command::UserDisconnected(a) => cx.user_disconnected(a)?,
            Command::Tick => cx.tick()?,
        };
        let mut out = cx.out;
        out.result = result;
        Ok(out)
    }
}

/// New traffic between two readings of a NAS byte counter. A counter that went down was reset
/// by the NAS (a reboot, a new session under the same id): all of it is new.
pub fn counter_delta(before: u64, now: u64) -> u64 {
    now.checked_sub(before).unwrap_or(now)
}

/// Users (and vouchers) one tick settles at most. A deadline shared by 10,000 customers is
/// settled in slices, one transaction each (`"more": true` asks for the next at once): the
/// events, jobs and rows of one transaction are held in memory until it commits, ~0.8 kB a
/// user, so one 10,000-user transaction was 8 MB of a 64 MB router's RAM. (1,000 a slice cost
/// the 10,000 burst ~15 % more time than 2,000.)
pub const TICK_SLICE: usize = 2_000;

#[cfg(test)]
mod tests {
    use super::counter_delta;

    #[test]
    fn a_counter_that_went_down_was_reset_and_all_of_it_is_new() {
        assert_eq!(counter_delta(100, 150), 50);
        assert_eq!(counter_delta(100, 100), 0);
        assert_eq!(counter_delta(100, 30), 30);
        assert_eq!(counter_delta(u64::MAX, 0), 0);
    }
}
