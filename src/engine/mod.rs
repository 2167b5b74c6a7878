//! The engine: business decisions, and nothing else.
//!
//! [`Engine::decide`] takes a command, the instant `now` and a [`Ledger`] (the state, read and
//! written inside the caller's transaction) and returns an [`Outcome`]: a reply, the events for
//! the outbox and the router jobs. It never touches a socket, a file or the system clock, so
//! expiry, quotas and clock jumps are tested with a fake clock to the millisecond.

pub mod access;
pub mod command;
pub mod event;
pub mod grants;
pub mod job;
pub mod model;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::clock::{rfc3339, Now};
use crate::domain::{
    Currency, Mac, PaymentUsername, Plan, PlanId, Validity, VoucherCode, VoucherUsername,
    VOUCHER_ALPHABET, VOUCHER_MAX_LEN, VOUCHER_MIN_LEN,
};
use crate::units::{check_rate_limit, parse_bytes, parse_span, Span};
pub use command::Command;
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

/// The largest amount of money (minor units) the store holds: SQLite's INTEGER is an i64, and a
/// larger `u64` wrapped to a negative number (a plan then failed the store's CHECK on every
/// delivery of the command, forever; a payment was stored negative while its event said
/// otherwise).
pub const MAX_MONEY: u64 = i64::MAX as u64;

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
            s: &self.settings,
            l: ledger,
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

/// One decision in progress.
struct Cx<'a> {
    s: &'a Settings,
    l: &'a mut dyn Ledger,
    now: Now,
    rng: &'a mut dyn Entropy,
    out: Outcome,
    job_set: std::collections::HashSet<Job>,
}

/// New traffic between two readings of a NAS byte counter. A counter that went down was reset
/// by the NAS (a reboot, a new session under the same id): all of it is new.
pub fn counter_delta(before: u64, now: u64) -> u64 {
    now.checked_sub(before).unwrap_or(now)
}

fn bad(message: impl Into<String>) -> EngineError {
    EngineError::Rejected(Rejection {
        code: RejectCode::BadArgs,
        message: message.into(),
    })
}

fn parse_mac(m: &Option<String>) -> Result<Option<Mac>, EngineError> {
    m.as_deref().map(Mac::parse).transpose().map_err(bad)
}

fn check_ip(ip: &Option<String>) -> Result<(), EngineError> {
    match ip {
        Some(ip) if ip.parse::<std::net::IpAddr>().is_err() => {
            Err(bad(format!("bad IP address {ip:?}")))
        }
        _ => Ok(()),
    }
}

/// Phone numbers as M-Pesa sends them: digits, optionally with a leading `+`, 7 to 15 digits.
fn normalise_phone(p: &str) -> Result<String, EngineError> {
    let t: String = p.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    let digits = t.strip_prefix('+').unwrap_or(&t);
    if (7..=15).contains(&digits.len()) && digits.chars().all(|c| c.is_ascii_digit()) {
        Ok(t)
    } else {
        Err(bad(format!(
            "bad phone number {p:?}: use 7 to 15 digits, e.g. 254712345678"
        )))
    }
}

impl Cx<'_> {
    fn emit(&mut self, e: Event) {
        self.out.events.push(e);
    }

    fn job(&mut self, j: Job) {
        // A set, not a scan: a tick that expires 10,000 users queues 20,000 jobs.
        if self.job_set.insert(j.clone()) {
            self.out.jobs.push(j);
        }
    }

    fn random_string(&mut self, alphabet: &[u8], len: usize) -> String {
        let limit = 256 - 256 % alphabet.len();
        let mut out = String::with_capacity(len);
        let mut buf = [0u8; 32];
        while out.len() < len {
            self.rng.fill(&mut buf);
            for &b in &buf {
                if (b as usize) < limit && out.len() < len {
                    out.push(alphabet[b as usize % alphabet.len()] as char);
                }
            }
        }
        out
    }

    fn fresh_username(&mut self) -> Result<String, EngineError> {
        for _ in 0..50 {
            let name = self.random_string(NAME_ALPHABET, 6);
            if self.l.user_by_name(&name)?.is_none() {
                return Ok(name);
            }
        }
        Err(LedgerError("could not find a free user name in 50 tries".into()).into())
    }

    fn password(&mut self) -> String {
        self.random_string(NAME_ALPHABET, self.s.password_length)
    }

    fn plan(&mut self, id: &str) -> Result<StoredPlan, EngineError> {
        match self.l.plan(id)? {
            Some(p) => Ok(p),
            None => reject(RejectCode::NotFound, format!("unknown plan {id:?}")),
        }
    }

    fn user(&mut self, name: &str) -> Result<User, EngineError> {
        match self.l.user_by_name(name)? {
            Some(u) => Ok(u),
            None => reject(RejectCode::NotFound, format!("unknown user {name:?}")),
        }
    }

    fn create_user(
        &mut self,
        username: String,
        password: String,
        phone: Option<String>,
        mac: Option<Mac>,
    ) -> Result<User, EngineError> {
        let mut u = User {
            id: 0,
            username,
            password,
            phone,
            mac: if self.s.bind_mac { mac } else { None },
            state: UserState::Active,
            created_at: self.now.wall_ms,
        };
        u.id = self.l.insert_user(&u)?;
        self.emit(Event::UserCreated {
            user: u.username.clone(),
            phone: u.phone.clone(),
            mac: u.mac.as_ref().map(|m| m.to_string()),
        });
        Ok(u)
    }

    // ----- grant lifecycle -------------------------------------------------------------------

    fn start_grant(&mut self, user: &User, g: &mut Grant, at: i64, metering: bool) -> LResult<()> {
        g.state = GrantState::Running;
        g.started_at = Some(at);
        if g.validity == Validity::Uptime && metering {
            g.meter_since = Some(at);
        }
        g.deadline = grants::deadline(g);
        self.l.update_grant(g)?;
        let ends_at = match g.validity {
            Validity::Wall => g.deadline.map(|d| rfc3339(self.now.wall_at(d))),
            Validity::Uptime => None,
        };
        self.emit(Event::GrantStarted {
            grant: g.id,
            user: user.username.clone(),
            ends_at,
        });
        Ok(())
    }

    fn end_grant(&mut self, user: &User, g: &mut Grant, at: i64, reason: &str) -> LResult<()> {
        if let Some(m) = g.meter_since.take() {
            g.used_ms = (g.used_ms + (at - m).max(0)).min(g.time_ms);
        }
        g.state = GrantState::Ended;
        g.ended_at = Some(at);
        g.end_reason = Some(reason.to_string());
        g.deadline = None;
        self.l.update_grant(g)?;
        self.emit(Event::GrantEnded {
            grant: g.id,
            user: user.username.clone(),
            reason: reason.to_string(),
            bytes_used: g.bytes_used,
        });
        Ok(())
    }

    /// Brings a user's grants up to `now`: ends what ran out (at the exact instant it ran out),
    /// starts the next queued grant at that instant, and expires the user when nothing is left.
    fn settle(&mut self, user: &mut User) -> LResult<()> {
        let metering = !self.l.active_sessions(user.id)?.is_empty();
        let mut ended_any = false;
        loop {
            let open = self.l.open_grants(user.id)?;
            let running = open
                .iter()
                .find(|g| g.state == GrantState::Running)
                .cloned();
            let mut queued = open.into_iter().find(|g| g.state == GrantState::Queued);
            match running {
                Some(mut g) => match grants::deadline(&g) {
                    Some(d) if d <= self.now.timeline_ms => {
                        self.end_grant(user, &mut g, d, "time")?;
                        ended_any = true;
                        match queued.as_mut() {
                            Some(next) => self.start_grant(user, next, d, metering)?,
                            None => break,
                        }
                    }
                    _ => break,
                },
                None => match queued.as_mut() {
                    Some(next) if metering => {
                        let at = self.now.timeline_ms;
                        self.start_grant(user, next, at, true)?
                    }
                    _ => break,
                },
            }
        }
        if ended_any && user.state == UserState::Active && self.l.open_grants(user.id)?.is_empty() {
            self.expire(user, "time")?;
        }
        Ok(())
    }

    fn expire(&mut self, user: &mut User, why: &str) -> LResult<()> {
        user.state = UserState::Expired;
        self.l.update_user(user)?;
        self.emit(Event::UserExpired {
            user: user.username.clone(),
        });
        self.job(Job::DisconnectUser {
            username: user.username.clone(),
            reason: "expired".into(),
        });
        self.job(Job::SyncUser {
            username: user.username.clone(),
        });
        self.l.audit(&AuditEntry {
            user_id: Some(user.id),
            username: Some(user.username.clone()),
            action: "expire".into(),
            reason: why.into(),
            detail: None,
        })
    }

    /// Adds what was bought to a user. It starts now when the device is present (or a session
    /// is active) and nothing is running; behind a running grant it waits, which extends the
    /// user from the current end.
    #[allow(clippy::too_many_arguments)]
    fn add_grant(
        &mut self,
        user: &mut User,
        plan: &PlanId,
        validity: Validity,
        time_ms: i64,
        data_bytes: Option<u64>,
        source: String,
        device_present: bool,
    ) -> LResult<GrantId> {
        self.settle(user)?;
        let id = self.l.insert_grant(&NewGrant {
            user_id: user.id,
            plan_id: plan.clone(),
            source: source.clone(),
            validity,
            time_ms,
            data_bytes,
        })?;
        self.emit(Event::GrantAdded {
            grant: id,
            user: user.username.clone(),
            plan: plan.to_string(),
            source,
            validity: validity.as_str().into(),
            time_ms,
            data_bytes,
        });
        if user.state == UserState::Expired {
            user.state = UserState::Active;
            self.l.update_user(user)?;
        }
        let open = self.l.open_grants(user.id)?;
        let metering = !self.l.active_sessions(user.id)?.is_empty();
        if !open.iter().any(|g| g.state == GrantState::Running) && (device_present || metering) {
            if let Some(mut g) = open.into_iter().find(|g| g.id == id) {
                let at = self.now.timeline_ms;
                self.start_grant(user, &mut g, at, metering)?;
            }
        }
        self.job(Job::SyncUser {
            username: user.username.clone(),
        });
        Ok(id)
    }

    fn user_summary(&mut self, user: &User) -> Result<Value, EngineError> {
        let open = self.l.open_grants(user.id)?;
        let e = grants::entitlement(&open, self.now.timeline_ms);
        Ok(json!({
            "user": user.username,
            "state": user.state.as_str(),
            "time-left-ms": e.time_left_ms,
            "data-left": e.data_left,
            "ends-at": e.ends_at.map(|t| rfc3339(self.now.wall_at(t))),
        }))
    }

    // ----- commands --------------------------------------------------------------------------

    fn payment(&mut self, a: &command::PaymentArgs) -> Result<Value, EngineError> {
        let provider = a.provider.trim().to_ascii_lowercase();
        if provider.is_empty()
            || provider.len() > 16
            || !provider
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(bad(format!(
                "bad provider {:?}: use a short name such as mpesa or cash",
                a.provider
            )));
        }
        let reference = a.reference.trim();
        if reference.is_empty() || reference.len() > 64 {
            return Err(bad("reference must be 1 to 64 characters"));
        }
        let mac = parse_mac(&a.mac)?;
        check_ip(&a.ip)?;
        let phone = a.phone.as_deref().map(normalise_phone).transpose()?;
        if let Some(p) = self.l.payment_by_ref(&provider, reference)? {
            // M-Pesa repeats callbacks: the same receipt buys once.
            let user = self.l.user_by_id(p.user_id)?;
            return Ok(json!({
                "duplicate": true,
                "payment": p.id,
                "user": user.map(|u| u.username),
                "grant": p.grant_id,
            }));
        }
        let plan = self.plan(&a.plan)?.plan;
        let amount = a.amount.unwrap_or(plan.price);
        if amount > MAX_MONEY {
            return reject(
                RejectCode::BadArgs,
                format!("amount {amount} is out of range (at most {MAX_MONEY})"),
            );
        }
        if amount < plan.price {
            return reject(
                RejectCode::BadArgs,
                format!(
                    "amount {amount} is less than the price of plan {:?} ({} {})",
                    plan.id.as_str(),
                    plan.price,
                    plan.currency.as_str()
                ),
            );
        }
        let existing = match &phone {
            Some(p) => self.l.user_by_phone(p)?,
            None => None,
        };
        let (mut user, created) = match existing {
            Some(u) => (u, false),
            None => {
                let username = match (&self.s.payment_username, &phone) {
                    (PaymentUsername::Phone, Some(p))
                        if self.l.user_by_name(p.trim_start_matches('+'))?.is_none() =>
                    {
                        p.trim_start_matches('+').to_string()
                    }
                    _ => self.fresh_username()?,
                };
                let password = self.password();
                (
                    self.create_user(username, password, phone.clone(), mac.clone())?,
                    true,
                )
            }
        };
        let grant = self.add_grant(
            &mut user,
            &plan.id,
            plan.validity,
            plan.time.ms(),
            plan.data.map(|d| d.0),
            format!("payment:{provider}:{reference}"),
            mac.is_some(),
        )?;
        let payment = self.l.insert_payment(&NewPayment {
            provider: provider.clone(),
            reference: reference.to_string(),
            phone: phone.clone(),
            amount,
            currency: plan.currency.as_str().to_string(),
            plan_id: plan.id.clone(),
            user_id: user.id,
            grant_id: grant,
            received_at: self.now.wall_ms,
            time_trusted: self.now.trusted,
        })?;
        self.emit(Event::PaymentRecorded {
            payment,
            provider,
            reference: reference.to_string(),
            phone,
            amount,
            currency: plan.currency.as_str().to_string(),
            plan: plan.id.to_string(),
            user: user.username.clone(),
            grant,
        });
        if let Some(mac) = &mac {
            self.job(Job::LoginDevice {
                username: user.username.clone(),
                mac: mac.to_string(),
                ip: a.ip.clone(),
            });
        }
        let mut r = self.user_summary(&user)?;
        r["duplicate"] = json!(false);
        r["payment"] = json!(payment);
        r["grant"] = json!(grant);
        r["created"] = json!(created);
        if created {
            r["password"] = json!(user.password);
        }
        Ok(r)
    }

    fn insert_unused_voucher(
        &mut self,
        code: String,
        plan: &PlanId,
        batch: &str,
        expires_at: Option<i64>,
    ) -> LResult<()> {
        self.l.insert_voucher(&Voucher {
            code,
            plan_id: plan.clone(),
            batch: batch.to_string(),
            state: VoucherState::Unused,
            created_at: self.now.wall_ms,
            expires_at,
            redeemed_at: None,
            user_id: None,
            grant_id: None,
        })
    }

    fn generate(&mut self, a: &command::GenerateArgs) -> Result<Value, EngineError> {
        if a.count == 0 || a.count > MAX_VOUCHER_BATCH {
            return Err(bad(format!(
                "count must be 1 to {MAX_VOUCHER_BATCH}, not {}",
                a.count
            )));
        }
        let length = a.length.unwrap_or(self.s.voucher_length);
        if !(VOUCHER_MIN_LEN..=VOUCHER_MAX_LEN).contains(&length) {
            return Err(bad(format!(
                "length must be {VOUCHER_MIN_LEN} to {VOUCHER_MAX_LEN}, not {length}"
            )));
        }
        let expiry = match &a.expires_in {
            Some(t) => Some(parse_span(t).map_err(bad)?),
            None => self.s.voucher_expiry,
        };
        let plan = self.plan(&a.plan)?;
        if !plan.active {
            return reject(
                RejectCode::Conflict,
                format!("plan {:?} is no longer on sale", a.plan),
            );
        }
        // Vouchers expire on the timeline, so a wrong wall clock cannot void a batch.
        let expires_at = expiry.map(|e| self.now.timeline_ms + e.ms());
        let batch = format!("B{}", self.random_string(VOUCHER_ALPHABET, 6));
        let mut codes: Vec<String> = Vec::with_capacity(a.count as usize);
        let mut seen = std::collections::HashSet::new();
        while codes.len() < a.count as usize {
            let code = self.random_string(VOUCHER_ALPHABET, length);
            if seen.contains(&code) || self.l.voucher(&code)?.is_some() {
                continue;
            }
            self.insert_unused_voucher(code.clone(), &plan.plan.id, &batch, expires_at)?;
            seen.insert(code.clone());
            codes.push(code);
        }
        let expires_wall = expires_at.map(|t| rfc3339(self.now.wall_at(t)));
        self.emit(Event::VoucherBatchGenerated {
            batch: batch.clone(),
            plan: plan.plan.id.to_string(),
            count: codes.len(),
            codes: codes.clone(),
            expires_at: expires_wall.clone(),
        });
        Ok(
            json!({"batch": batch, "plan": plan.plan.id.as_str(), "codes": codes, "expires-at": expires_wall}),
        )
    }

    fn redeem(&mut self, a: &command::RedeemArgs) -> Result<Value, EngineError> {
        let code = VoucherCode::parse(&a.code).map_err(bad)?;
        let mac = parse_mac(&a.mac)?;
        check_ip(&a.ip)?;
        let Some(mut v) = self.l.voucher(code.as_str())? else {
            return reject(RejectCode::NotFound, format!("unknown voucher code {code}"));
        };
        match v.state {
            VoucherState::Unused => {}
            VoucherState::Redeemed => {
                return reject(
                    RejectCode::Conflict,
                    format!(
                        "voucher {code} was already redeemed{}",
                        v.redeemed_at
                            .map(|t| format!(" at {}", rfc3339(t)))
                            .unwrap_or_default()
                    ),
                )
            }
            VoucherState::Revoked => {
                return reject(RejectCode::Conflict, format!("voucher {code} was revoked"))
            }
            VoucherState::Expired => {
                return reject(RejectCode::Expired, format!("voucher {code} has expired"))
            }
        }
        if v.expires_at.is_some_and(|t| t <= self.now.timeline_ms) {
            return reject(RejectCode::Expired, format!("voucher {code} has expired"));
        }
        let plan = self.plan(v.plan_id.as_str())?.plan;
        let (mut user, created) = match &a.user {
            Some(name) => {
                let u = self.user(name)?;
                if u.state == UserState::Suspended {
                    return reject(RejectCode::Suspended, format!("user {name:?} is suspended"));
                }
                (u, false)
            }
            None => {
                let (username, password) = match self.s.voucher_username {
                    VoucherUsername::Code => (code.to_string(), code.to_string()),
                    VoucherUsername::Generated => (self.fresh_username()?, self.password()),
                };
                if self.l.user_by_name(&username)?.is_some() {
                    return reject(
                        RejectCode::Conflict,
                        format!("a user named {username:?} already exists"),
                    );
                }
                (
                    self.create_user(username, password, None, mac.clone())?,
                    true,
                )
            }
        };
        let grant = self.add_grant(
            &mut user,
            &plan.id,
            plan.validity,
            plan.time.ms(),
            plan.data.map(|d| d.0),
            format!("voucher:{code}"),
            mac.is_some(),
        )?;
        v.state = VoucherState::Redeemed;
        v.redeemed_at = Some(self.now.wall_ms);
        v.user_id = Some(user.id);
        v.grant_id = Some(grant);
        self.l.update_voucher(&v)?;
        self.emit(Event::VoucherRedeemed {
            code: code.to_string(),
            user: user.username.clone(),
            grant,
        });
        if let Some(mac) = &mac {
            self.job(Job::LoginDevice {
                username: user.username.clone(),
                mac: mac.to_string(),
                ip: a.ip.clone(),
            });
        }
        let mut r = self.user_summary(&user)?;
        r["grant"] = json!(grant);
        r["created"] = json!(created);
        if created {
            r["password"] = json!(user.password);
        }
        Ok(r)
    }

    fn revoke(&mut self, a: &command::RevokeArgs) -> Result<Value, EngineError> {
        if a.codes.is_empty() {
            return Err(bad("no voucher codes given"));
        }
        let mut revoked = Vec::new();
        for raw in &a.codes {
            let code = VoucherCode::parse(raw).map_err(bad)?;
            let Some(mut v) = self.l.voucher(code.as_str())? else {
                return reject(RejectCode::NotFound, format!("unknown voucher code {code}"));
            };
            match v.state {
                VoucherState::Unused => {
                    v.state = VoucherState::Revoked;
                    self.l.update_voucher(&v)?;
                    self.emit(Event::VoucherRevoked {
                        code: code.to_string(),
                    });
                    revoked.push(code.to_string());
                }
                VoucherState::Revoked => {}
                VoucherState::Redeemed => {
                    return reject(
                        RejectCode::Conflict,
                        format!("voucher {code} was already redeemed: suspend its user instead"),
                    )
                }
                VoucherState::Expired => {
                    return reject(RejectCode::Conflict, format!("voucher {code} has expired"))
                }
            }
        }
        Ok(json!({"revoked": revoked}))
    }

    /// What `user.extend` and `user.create` add: a plan's worth, or a time (and data).
    fn grant_spec(
        &mut self,
        plan: &Option<String>,
        time: &Option<String>,
        data: &Option<String>,
    ) -> Result<(PlanId, Validity, i64, Option<u64>), EngineError> {
        match (plan, time) {
            (Some(p), None) => {
                if data.is_some() {
                    return Err(bad("give either a plan, or a time (and data), not both"));
                }
                let p = self.plan(p)?.plan;
                Ok((p.id, p.validity, p.time.ms(), p.data.map(|d| d.0)))
            }
            (None, Some(t)) => {
                let span = parse_span(t).map_err(bad)?;
                if span.ms() <= 0 {
                    return Err(bad("time must be more than 0s"));
                }
                let data = data
                    .as_deref()
                    .map(parse_bytes)
                    .transpose()
                    .map_err(bad)?
                    .map(|b| b.0);
                let id = PlanId::parse("manual").map_err(bad)?;
                Ok((id, Validity::Wall, span.ms(), data))
            }
            _ => Err(bad("give either a plan or a time to extend by")),
        }
    }

    fn extend(&mut self, a: &command::ExtendArgs) -> Result<Value, EngineError> {
        let mut user = self.user(&a.user)?;
        let (plan_id, validity, time_ms, data) = self.grant_spec(&a.plan, &a.time, &a.data)?;
        let grant = self.add_grant(
            &mut user,
            &plan_id,
            validity,
            time_ms,
            data,
            "manual".into(),
            false,
        )?;
        let mut r = self.user_summary(&user)?;
        r["grant"] = json!(grant);
        Ok(r)
    }

    fn create_named_user(&mut self, a: &command::CreateUserArgs) -> Result<Value, EngineError> {
        let name = match &a.user {
            Some(n) => {
                let ok = !n.is_empty()
                    && n.len() <= 64
                    && n.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._@+-".contains(&b));
                if !ok {
                    return Err(bad(format!(
                        "bad user name {n:?}: 1-64 characters of A-Z a-z 0-9 . _ @ + -"
                    )));
                }
                if self.l.user_by_name(n)?.is_some() {
                    return reject(RejectCode::Conflict, format!("user {n:?} exists"));
                }
                n.clone()
            }
            None => self.fresh_username()?,
        };
        let password = match &a.password {
            Some(p) if p.len() < 4 || p.len() > 64 || p.chars().any(|c| c.is_control()) => {
                return Err(bad("password must be 4 to 64 printable characters"))
            }
            Some(p) => p.clone(),
            None => self.password(),
        };
        let mac = parse_mac(&a.mac)?;
        let phone = a.phone.as_deref().map(normalise_phone).transpose()?;
        let spec = if a.plan.is_some() || a.time.is_some() {
            Some(self.grant_spec(&a.plan, &a.time, &a.data)?)
        } else if a.data.is_some() {
            return Err(bad("data needs a time"));
        } else {
            None
        };
        let mut user = self.create_user(name, password, phone, mac)?;
        let grant = match spec {
            Some((plan_id, validity, time_ms, data)) => Some(self.add_grant(
                &mut user,
                &plan_id,
                validity,
                time_ms,
                data,
                "manual".into(),
                false,
            )?),
            None => {
                // No time yet: the account exists but cannot log in until extended.
                user.state = UserState::Expired;
                self.l.update_user(&user)?;
                None
            }
        };
        let mut r = self.user_summary(&user)?;
        r["password"] = json!(user.password);
        r["grant"] = json!(grant);
        Ok(r)
    }

    fn disconnect(&mut self, a: &command::SuspendArgs) -> Result<Value, EngineError> {
        let user = self.user(&a.user)?;
        let reason = a.reason.clone().unwrap_or_else(|| "operator".into());
        self.job(Job::DisconnectUser {
            username: user.username.clone(),
            reason: reason.clone(),
        });
        self.l.audit(&AuditEntry {
            user_id: Some(user.id),
            username: Some(user.username.clone()),
            action: "disconnect-request".into(),
            reason,
            detail: None,
        })?;
        let sessions = self.l.active_sessions(user.id)?.len();
        Ok(json!({"user": user.username, "active-sessions": sessions, "disconnecting": true}))
    }

    fn import_vouchers(&mut self, a: &command::ImportArgs) -> Result<Value, EngineError> {
        if a.codes.is_empty() || a.codes.len() > MAX_VOUCHER_BATCH as usize {
            return Err(bad(format!(
                "codes: give 1 to {MAX_VOUCHER_BATCH} codes, not {}",
                a.codes.len()
            )));
        }
        let plan = self.plan(&a.plan)?;
        if !plan.active {
            return reject(
                RejectCode::Conflict,
                format!("plan {:?} is no longer on sale", a.plan),
            );
        }
        let batch = match &a.batch {
            Some(b) if b.is_empty() || b.len() > 32 || b.chars().any(|c| c.is_control()) => {
                return Err(bad("batch must be 1 to 32 printable characters"))
            }
            Some(b) => b.clone(),
            None => format!("B{}", self.random_string(VOUCHER_ALPHABET, 6)),
        };
        let expiry = match &a.expires_in {
            Some(t) => Some(parse_span(t).map_err(bad)?),
            None => self.s.voucher_expiry,
        };
        let expires_at = expiry.map(|e| self.now.timeline_ms + e.ms());
        let mut seen = std::collections::HashSet::new();
        for (i, raw) in a.codes.iter().enumerate() {
            let code = VoucherCode::parse(raw).map_err(|e| bad(format!("codes[{i}]: {e}")))?;
            if !seen.insert(code.to_string()) {
                return Err(bad(format!("codes[{i}]: {code} is given twice")));
            }
            if self.l.voucher(code.as_str())?.is_some() {
                return reject(
                    RejectCode::Conflict,
                    format!("codes[{i}]: voucher {code} exists already; nothing was imported"),
                );
            }
            self.insert_unused_voucher(code.to_string(), &plan.plan.id, &batch, expires_at)?;
        }
        let expires_wall = expires_at.map(|t| rfc3339(self.now.wall_at(t)));
        self.emit(Event::VoucherBatchImported {
            batch: batch.clone(),
            plan: plan.plan.id.to_string(),
            count: seen.len(),
            expires_at: expires_wall.clone(),
        });
        Ok(
            json!({"batch": batch, "plan": plan.plan.id.as_str(), "imported": seen.len(), "expires-at": expires_wall}),
        )
    }

    fn suspend(&mut self, a: &command::SuspendArgs) -> Result<Value, EngineError> {
        let mut user = self.user(&a.user)?;
        if user.state == UserState::Suspended {
            return Ok(json!({"user": user.username, "state": "suspended", "changed": false}));
        }
        let reason = a.reason.clone().unwrap_or_else(|| "operator".into());
        user.state = UserState::Suspended;
        self.l.update_user(&user)?;
        self.emit(Event::UserSuspended {
            user: user.username.clone(),
            reason: reason.clone(),
        });
        self.job(Job::DisconnectUser {
            username: user.username.clone(),
            reason: "suspended".into(),
        });
        self.job(Job::SyncUser {
            username: user.username.clone(),
        });
        self.l.audit(&AuditEntry {
            user_id: Some(user.id),
            username: Some(user.username.clone()),
            action: "suspend".into(),
            reason,
            detail: None,
        })?;
        Ok(json!({"user": user.username, "state": "suspended", "changed": true}))
    }

    fn resume(&mut self, a: &command::UserArg) -> Result<Value, EngineError> {
        let mut user = self.user(&a.user)?;
        if user.state != UserState::Suspended {
            return Ok(
                json!({"user": user.username, "state": user.state.as_str(), "changed": false}),
            );
        }
        user.state = if self.l.open_grants(user.id)?.is_empty() {
            UserState::Expired
        } else {
            UserState::Active
        };
        self.l.update_user(&user)?;
        self.emit(Event::UserResumed {
            user: user.username.clone(),
        });
        self.job(Job::SyncUser {
            username: user.username.clone(),
        });
        self.settle(&mut user)?;
        let mut r = self.user_summary(&user)?;
        r["changed"] = json!(true);
        Ok(r)
    }

    fn upsert_plan(&mut self, a: &command::PlanArgs) -> Result<Value, EngineError> {
        let id = PlanId::parse(&a.id).map_err(bad)?;
        if id.as_str() == "manual" {
            return Err(bad("plan id \"manual\" is reserved for manual extensions"));
        }
        if let Some(r) = &a.rate_limit {
            check_rate_limit(r).map_err(bad)?;
        }
        let time = parse_span(&a.time).map_err(bad)?;
        if time.ms() <= 0 {
            return Err(bad("time must be more than 0s"));
        }
        let devices = a.devices.unwrap_or(1);
        if devices == 0 {
            return Err(bad("devices must be at least 1"));
        }
        if a.price > MAX_MONEY {
            return Err(bad(format!(
                "price {} is out of range (at most {MAX_MONEY})",
                a.price
            )));
        }
        if a.name.trim().is_empty() {
            return Err(bad("name must not be empty"));
        }
        let plan = Plan {
            id,
            name: a.name.clone(),
            price: a.price,
            currency: Currency::parse(&a.currency).map_err(bad)?,
            time,
            validity: a
                .validity
                .as_deref()
                .map(str::parse)
                .transpose()
                .map_err(bad)?
                .unwrap_or(Validity::Wall),
            data: a
                .data
                .as_deref()
                .map(parse_bytes)
                .transpose()
                .map_err(bad)?,
            rate_limit: a.rate_limit.clone(),
            devices,
            idle_timeout: match a.idle_timeout.as_deref().map(parse_span).transpose() {
                Ok(Some(s)) if s.ms() < 1000 => {
                    return Err(bad("idle-timeout must be at least 1s"))
                }
                Ok(t) => t,
                Err(e) => return Err(bad(e)),
            },
        };
        let source = a.source.clone().unwrap_or_else(|| "cli".into());
        if !["config", "cloud", "cli"].contains(&source.as_str()) {
            return Err(bad(format!(
                "bad plan source {source:?}: config, cloud or cli"
            )));
        }
        let changed = match self.l.plan(plan.id.as_str())? {
            Some(old) => !(old.active && old.plan == plan && old.source == source),
            None => true,
        };
        if changed {
            self.l.put_plan(&plan, &source, true)?;
            self.emit(Event::PlanUpserted {
                plan: serde_json::to_value(&plan).unwrap_or_default(),
            });
            self.job(Job::SyncPlan {
                plan: plan.id.to_string(),
            });
        }
        Ok(json!({"plan": plan.id.as_str(), "changed": changed}))
    }

    fn remove_plan(&mut self, a: &command::PlanIdArg) -> Result<Value, EngineError> {
        let p = self.plan(&a.id)?;
        if !p.active {
            return Ok(json!({"plan": a.id, "changed": false}));
        }
        // Kept, not deleted: grants already sold still refer to it.
        self.l.put_plan(&p.plan, &p.source, false)?;
        self.emit(Event::PlanRemoved { plan: a.id.clone() });
        self.job(Job::SyncPlan { plan: a.id.clone() });
        Ok(json!({"plan": a.id, "changed": true}))
    }

    fn session_started(&mut self, a: &command::SessionStartArgs) -> Result<Value, EngineError> {
        let mac = parse_mac(&a.mac)?;
        check_ip(&a.ip)?;
        if a.nas_session_id.is_empty() {
            return Err(bad("nas-session-id must not be empty"));
        }
        if let Some(s) = self.l.session_by_nas_id(&a.nas_session_id)? {
            return Ok(json!({"session": s.id, "duplicate": true}));
        }
        let mut user = self.user(&a.user)?;
        // Time and data left as of now: a grant that ended a moment ago is not an entitlement.
        if user.state == UserState::Active {
            self.settle(&mut user)?;
        }
        let open = self.l.open_grants(user.id)?;
        let current = open
            .iter()
            .find(|g| g.state == GrantState::Running)
            .or_else(|| open.first())
            .cloned();
        let devices = match &current {
            Some(g) => self
                .l
                .plan(g.plan_id.as_str())?
                .map_or(1, |p| p.plan.devices),
            None => 1,
        };
        let facts = access::Facts {
            state: user.state,
            bound_mac: user.mac.as_ref(),
            has_grant: current.is_some(),
            data_left: current.as_ref().and_then(grants::data_left),
            sessions: self.l.active_sessions(user.id)?.len() as u32,
            devices,
        };
        if let Err(r) = access::admit(&facts, mac.as_ref()) {
            return reject(r.code, r.message);
        }
        let Some(current) = current else {
            return reject(RejectCode::NoEntitlement, "your time has run out");
        };
        let mut session = Session {
            id: 0,
            user_id: user.id,
            nas_session_id: a.nas_session_id.clone(),
            mac: mac.clone(),
            ip: a.ip.clone(),
            started_at: self.now.wall_ms,
            ended_at: None,
            bytes_in: 0,
            bytes_out: 0,
            end_reason: None,
        };
        session.id = self.l.insert_session(&session)?;
        let at = self.now.timeline_ms;
        let mut current = current;
        match current.state {
            GrantState::Queued => self.start_grant(&user, &mut current, at, true)?,
            GrantState::Running
                if current.validity == Validity::Uptime && current.meter_since.is_none() =>
            {
                current.meter_since = Some(at);
                current.deadline = grants::deadline(&current);
                self.l.update_grant(&current)?;
            }
            _ => {}
        }
        self.emit(Event::SessionStarted {
            session: session.id,
            user: user.username.clone(),
            nas_session_id: a.nas_session_id.clone(),
            mac: mac.map(|m| m.to_string()),
            ip: a.ip.clone(),
        });
        let mut r = self.user_summary(&user)?;
        r["session"] = json!(session.id);
        Ok(r)
    }

    /// Counts `delta` bytes against the user's running grant(s); a grant whose data runs out
    /// ends and the overflow moves to the next one.
    fn consume_data(&mut self, user: &mut User, mut delta: u64) -> LResult<()> {
        let metering = !self.l.active_sessions(user.id)?.is_empty();
        while delta > 0 {
            let open = self.l.open_grants(user.id)?;
            let Some(mut g) = open
                .iter()
                .find(|g| g.state == GrantState::Running)
                .cloned()
            else {
                return Ok(());
            };
            match g.data_bytes {
                Some(cap) if g.bytes_used + delta >= cap => {
                    delta = g.bytes_used + delta - cap;
                    g.bytes_used = cap;
                    let at = self.now.timeline_ms;
                    self.end_grant(user, &mut g, at, "data")?;
                    match open.into_iter().find(|g| g.state == GrantState::Queued) {
                        Some(mut next) => self.start_grant(user, &mut next, at, metering)?,
                        None => {
                            if user.state == UserState::Active {
                                self.expire(user, "data")?;
                            }
                            return Ok(());
                        }
                    }
                }
                _ => {
                    g.bytes_used += delta;
                    self.l.update_grant(&g)?;
                    delta = 0;
                }
            }
        }
        Ok(())
    }

    fn session_usage(&mut self, a: &command::UsageArgs) -> Result<Value, EngineError> {
        let mut per_user: Vec<(UserId, u64)> = Vec::new();
        let mut unknown = 0;
        for c in &a.sessions {
            let Some(mut s) = self.l.session_by_nas_id(&c.nas_session_id)? else {
                unknown += 1;
                continue;
            };
            let d_in = counter_delta(s.bytes_in, c.bytes_in);
            let d_out = counter_delta(s.bytes_out, c.bytes_out);
            if d_in + d_out == 0 {
                continue;
            }
            s.bytes_in = c.bytes_in;
            s.bytes_out = c.bytes_out;
            self.l.update_session(&s)?;
            match per_user.iter_mut().find(|(u, _)| *u == s.user_id) {
                Some((_, d)) => *d += d_in + d_out,
                None => per_user.push((s.user_id, d_in + d_out)),
            }
        }
        for (uid, delta) in &per_user {
            if let Some(mut user) = self.l.user_by_id(*uid)? {
                self.settle(&mut user)?;
                self.consume_data(&mut user, *delta)?;
            }
        }
        Ok(json!({"users": per_user.len(), "unknown-sessions": unknown}))
    }

    fn session_ended(&mut self, a: &command::SessionEndArgs) -> Result<Value, EngineError> {
        let Some(mut s) = self.l.session_by_nas_id(&a.nas_session_id)? else {
            return Ok(json!({"session": null, "changed": false}));
        };
        if let (Some(i), Some(o)) = (a.bytes_in, a.bytes_out) {
            let usage = command::UsageArgs {
                sessions: vec![command::SessionCounters {
                    nas_session_id: a.nas_session_id.clone(),
                    bytes_in: i,
                    bytes_out: o,
                }],
            };
            self.session_usage(&usage)?;
            s = self.l.session_by_nas_id(&a.nas_session_id)?.unwrap_or(s);
        }
        let Some(mut user) = self.l.user_by_id(s.user_id)? else {
            return Err(LedgerError(format!("session {} has no user", s.id)).into());
        };
        self.end_session(&mut user, s.clone(), &a.reason)?;
        Ok(json!({"session": s.id, "changed": true}))
    }

    /// Closes one session; when it was the user's last, an `uptime` grant stops counting.
    fn end_session(&mut self, user: &mut User, mut s: Session, reason: &str) -> LResult<()> {
        self.settle(user)?;
        s.ended_at = Some(self.now.wall_ms);
        s.end_reason = Some(reason.to_string());
        self.l.update_session(&s)?;
        self.emit(Event::SessionEnded {
            session: s.id,
            user: user.username.clone(),
            reason: reason.to_string(),
            bytes_in: s.bytes_in,
            bytes_out: s.bytes_out,
            duration_ms: self.now.wall_ms - s.started_at,
        });
        if self.l.active_sessions(user.id)?.is_empty() {
            let open = self.l.open_grants(user.id)?;
            if let Some(mut g) = open.into_iter().find(|g| g.state == GrantState::Running) {
                if let Some(m) = g.meter_since.take() {
                    g.used_ms = (g.used_ms + (self.now.timeline_ms - m).max(0)).min(g.time_ms);
                    g.deadline = None;
                    self.l.update_grant(&g)?;
                }
            }
        }
        Ok(())
    }

    fn user_disconnected(&mut self, a: &command::DisconnectedArgs) -> Result<Value, EngineError> {
        let Some(mut user) = self.l.user_by_name(&a.user)? else {
            // A device logged in as a user we do not know: the audit trail still says so.
            self.l.audit(&AuditEntry {
                user_id: None,
                username: Some(a.user.clone()),
                action: "disconnect".into(),
                reason: a.reason.clone(),
                detail: Some(format!(
                    "unknown user; {} session(s) removed on the router",
                    a.removed_sessions
                )),
            })?;
            return Ok(json!({"user": a.user, "known": false, "sessions-closed": 0}));
        };
        let sessions: Vec<Session> = self
            .l
            .active_sessions(user.id)?
            .into_iter()
            .filter(|s| a.sessions.is_empty() || a.sessions.contains(&s.nas_session_id))
            .collect();
        let closed = sessions.len();
        for s in sessions {
            self.end_session(&mut user, s, &a.reason)?;
        }
        self.l.audit(&AuditEntry {
            user_id: Some(user.id),
            username: Some(user.username.clone()),
            action: "disconnect".into(),
            reason: a.reason.clone(),
            detail: Some(format!(
                "router: {} session(s) and {} cookie(s) removed, confirmed gone; {closed} session(s) closed here",
                a.removed_sessions, a.removed_cookies
            )),
        })?;
        Ok(json!({"user": user.username, "sessions-closed": closed}))
    }

    fn tick(&mut self) -> Result<Value, EngineError> {
        let due = self
            .l
            .users_with_due_grants(self.now.timeline_ms, TICK_SLICE)?;
        let before = self.out.events.len();
        for uid in &due {
            if let Some(mut user) = self.l.user_by_id(*uid)? {
                self.settle(&mut user)?;
            }
        }
        let vouchers = self.l.vouchers_due(self.now.timeline_ms, TICK_SLICE)?;
        let expired_vouchers = vouchers.len();
        for mut v in vouchers {
            v.state = VoucherState::Expired;
            self.l.update_voucher(&v)?;
            self.emit(Event::VoucherExpired {
                code: v.code.clone(),
            });
        }
        let users_expired = self.out.events[before..]
            .iter()
            .filter(|e| matches!(e, Event::UserExpired { .. }))
            .count();
        Ok(json!({
            "users-checked": due.len(),
            "users-expired": users_expired,
            "vouchers-expired": expired_vouchers,
            "more": due.len() == TICK_SLICE || expired_vouchers == TICK_SLICE,
        }))
    }
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
