//! The engine's view of the database, inside one write transaction.

use rusqlite::{params, OptionalExtension, Row, Transaction};

use crate::clock::Now;
use crate::domain::{Currency, Mac, Plan, PlanId, Validity};
use crate::engine::model::*;
use crate::engine::{LResult, Ledger, LedgerError};
use crate::units::{Bytes, Span};

pub(super) struct TxLedger<'t> {
    tx: &'t Transaction<'t>,
    now: Now,
    wrote: bool,
}

impl<'t> TxLedger<'t> {
    pub(super) fn new(tx: &'t Transaction<'t>, now: Now) -> Self {
        TxLedger {
            tx,
            now,
            wrote: false,
        }
    }
    pub(super) fn wrote(&self) -> bool {
        self.wrote
    }
    fn exec(&mut self, sql: &str, p: impl rusqlite::Params) -> LResult<usize> {
        self.wrote = true;
        self.tx
            .prepare_cached(sql)
            .and_then(|mut s| s.execute(p))
            .map_err(err)
    }
    fn insert(&mut self, sql: &str, p: impl rusqlite::Params) -> LResult<i64> {
        self.exec(sql, p)?;
        Ok(self.tx.last_insert_rowid())
    }
    fn one<T>(
        &self,
        sql: &str,
        p: impl rusqlite::Params,
        f: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    ) -> LResult<Option<T>> {
        self.tx
            .prepare_cached(sql)
            .and_then(|mut s| s.query_row(p, f).optional())
            .map_err(err)
    }
    fn many<T>(
        &self,
        sql: &str,
        p: impl rusqlite::Params,
        f: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
    ) -> LResult<Vec<T>> {
        self.tx
            .prepare_cached(sql)
            .and_then(|mut s| s.query_map(p, f)?.collect())
            .map_err(err)
    }
}

fn err(e: rusqlite::Error) -> LedgerError {
    LedgerError(e.to_string())
}

fn bad(what: &str, v: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        0,
        rusqlite::types::Type::Text,
        format!("bad stored {what}: {v:?}").into(),
    )
}

pub(crate) fn plan_id(s: String) -> rusqlite::Result<PlanId> {
    PlanId::parse(&s).map_err(|_| bad("plan id", &s))
}

fn validity(s: String) -> rusqlite::Result<Validity> {
    s.parse().map_err(|_| bad("validity", &s))
}

fn opt_mac(s: Option<String>) -> rusqlite::Result<Option<Mac>> {
    s.map(|m| Mac::parse(&m).map_err(|_| bad("mac", &m)))
        .transpose()
}

const USER_COLS: &str = "id, username, password, phone, mac, state, created_at";
fn user_row(r: &Row<'_>) -> rusqlite::Result<User> {
    let state: String = r.get(5)?;
    Ok(User {
        id: r.get(0)?,
        username: r.get(1)?,
        password: r.get(2)?,
        phone: r.get(3)?,
        mac: opt_mac(r.get(4)?)?,
        state: UserState::parse(&state).ok_or_else(|| bad("user state", &state))?,
        created_at: r.get(6)?,
    })
}

pub(crate) const GRANT_COLS: &str =
    "id, user_id, plan_id, source, validity, time_ms, data_bytes, state, \
     started_at, meter_since, used_ms, bytes_used, deadline, ended_at, end_reason";
pub(crate) fn grant_row(r: &Row<'_>) -> rusqlite::Result<Grant> {
    let state: String = r.get(7)?;
    Ok(Grant {
        id: r.get(0)?,
        user_id: r.get(1)?,
        plan_id: plan_id(r.get(2)?)?,
        source: r.get(3)?,
        validity: validity(r.get(4)?)?,
        time_ms: r.get(5)?,
        data_bytes: r.get::<_, Option<u64>>(6)?,
        state: GrantState::parse(&state).ok_or_else(|| bad("grant state", &state))?,
        started_at: r.get(8)?,
        meter_since: r.get(9)?,
        used_ms: r.get(10)?,
        bytes_used: r.get::<_, u64>(11)?,
        deadline: r.get(12)?,
        ended_at: r.get(13)?,
        end_reason: r.get(14)?,
    })
}

const VOUCHER_COLS: &str =
    "code, plan_id, batch, state, created_at, expires_at, redeemed_at, user_id, grant_id";
fn voucher_row(r: &Row<'_>) -> rusqlite::Result<Voucher> {
    let state: String = r.get(3)?;
    Ok(Voucher {
        code: r.get(0)?,
        plan_id: plan_id(r.get(1)?)?,
        batch: r.get(2)?,
        state: VoucherState::parse(&state).ok_or_else(|| bad("voucher state", &state))?,
        created_at: r.get(4)?,
        expires_at: r.get(5)?,
        redeemed_at: r.get(6)?,
        user_id: r.get(7)?,
        grant_id: r.get(8)?,
    })
}

const SESSION_COLS: &str =
    "id, user_id, nas_session_id, mac, ip, started_at, ended_at, bytes_in, bytes_out, end_reason";
fn session_row(r: &Row<'_>) -> rusqlite::Result<Session> {
    Ok(Session {
        id: r.get(0)?,
        user_id: r.get(1)?,
        nas_session_id: r.get(2)?,
        mac: opt_mac(r.get(3)?)?,
        ip: r.get(4)?,
        started_at: r.get(5)?,
        ended_at: r.get(6)?,
        bytes_in: r.get::<_, u64>(7)?,
        bytes_out: r.get::<_, u64>(8)?,
        end_reason: r.get(9)?,
    })
}

pub(crate) const PLAN_COLS: &str =
    "id, name, price, currency, time_ms, validity, data_bytes, rate_limit, devices, active, source,
     idle_timeout_ms";
pub(crate) fn plan_row(r: &Row<'_>) -> rusqlite::Result<StoredPlan> {
    let currency: String = r.get(3)?;
    Ok(StoredPlan {
        plan: Plan {
            id: plan_id(r.get(0)?)?,
            name: r.get(1)?,
            price: r.get::<_, u64>(2)?,
            currency: Currency::parse(&currency).map_err(|_| bad("currency", &currency))?,
            time: Span(r.get(4)?),
            validity: validity(r.get(5)?)?,
            data: r.get::<_, Option<u64>>(6)?.map(Bytes),
            rate_limit: r.get(7)?,
            devices: r.get(8)?,
            idle_timeout: r.get::<_, Option<i64>>(11)?.map(Span),
        },
        active: r.get(9)?,
        source: r.get(10)?,
    })
}

impl Ledger for TxLedger<'_> {
    fn plan(&mut self, id: &str) -> LResult<Option<StoredPlan>> {
        self.one(
            &format!("SELECT {PLAN_COLS} FROM plans WHERE id = ?1"),
            params![id],
            plan_row,
        )
    }

    fn put_plan(&mut self, p: &Plan, source: &str, active: bool) -> LResult<()> {
        let now = self.now.wall_ms;
        self.exec(
            "INSERT INTO plans (id, name, price, currency, time_ms, validity, data_bytes, rate_limit,
                                devices, source, active, updated_at, idle_timeout_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, price = excluded.price,
                currency = excluded.currency, time_ms = excluded.time_ms,
                validity = excluded.validity, data_bytes = excluded.data_bytes,
                rate_limit = excluded.rate_limit, devices = excluded.devices,
                source = excluded.source, active = excluded.active, updated_at = excluded.updated_at,
                idle_timeout_ms = excluded.idle_timeout_ms",
            params![
                p.id.as_str(),
                p.name,
                p.price,
                p.currency.as_str(),
                p.time.ms(),
                p.validity.as_str(),
                p.data.map(|d| d.0),
                p.rate_limit,
                p.devices,
                source,
                active,
                now,
                p.idle_timeout.map(|s| s.ms())
            ],
        )?;
        Ok(())
    }

    fn payment_by_ref(&mut self, provider: &str, reference: &str) -> LResult<Option<Payment>> {
        self.one(
            "SELECT id, provider, reference, user_id, grant_id FROM payments
             WHERE provider = ?1 AND reference = ?2",
            params![provider, reference],
            |r| {
                Ok(Payment {
                    id: r.get(0)?,
                    provider: r.get(1)?,
                    reference: r.get(2)?,
                    user_id: r.get(3)?,
                    grant_id: r.get(4)?,
                })
            },
        )
    }

    fn insert_payment(&mut self, p: &NewPayment) -> LResult<i64> {
        self.insert(
            "INSERT INTO payments (provider, reference, phone, amount, currency, plan_id, user_id,
                                   grant_id, received_at, time_trusted)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                p.provider,
                p.reference,
                p.phone,
                p.amount,
                p.currency,
                p.plan_id.as_str(),
                p.user_id,
                p.grant_id,
                p.received_at,
                p.time_trusted
            ],
        )
    }

    fn user_by_name(&mut self, username: &str) -> LResult<Option<User>> {
        self.one(
            &format!("SELECT {USER_COLS} FROM users WHERE username = ?1"),
            params![username],
            user_row,
        )
    }

    fn user_by_phone(&mut self, phone: &str) -> LResult<Option<User>> {
        self.one(
            &format!("SELECT {USER_COLS} FROM users WHERE phone = ?1 ORDER BY id DESC LIMIT 1"),
            params![phone],
            user_row,
        )
    }

    fn user_by_id(&mut self, id: UserId) -> LResult<Option<User>> {
        self.one(
            &format!("SELECT {USER_COLS} FROM users WHERE id = ?1"),
            params![id],
            user_row,
        )
    }

    fn insert_user(&mut self, u: &User) -> LResult<UserId> {
        self.insert(
            "INSERT INTO users (username, password, phone, mac, state, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
            params![
                u.username,
                u.password,
                u.phone,
                u.mac.as_ref().map(|m| m.as_str()),
                u.state.as_str(),
                u.created_at
            ],
        )
    }

    fn update_user(&mut self, u: &User) -> LResult<()> {
        let now = self.now.wall_ms;
        self.exec(
            "UPDATE users SET password = ?2, phone = ?3, mac = ?4, state = ?5, updated_at = ?6
             WHERE id = ?1",
            params![
                u.id,
                u.password,
                u.phone,
                u.mac.as_ref().map(|m| m.as_str()),
                u.state.as_str(),
                now
            ],
        )?;
        Ok(())
    }

    fn open_grants(&mut self, user: UserId) -> LResult<Vec<Grant>> {
        self.many(
            &format!(
                "SELECT {GRANT_COLS} FROM grants WHERE user_id = ?1 AND state != 'ended' ORDER BY id"
            ),
            params![user],
            grant_row,
        )
    }

    fn insert_grant(&mut self, g: &NewGrant) -> LResult<GrantId> {
        let now = self.now.wall_ms;
        self.insert(
            "INSERT INTO grants (user_id, plan_id, source, validity, time_ms, data_bytes, state,
                                 created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'queued', ?7)",
            params![
                g.user_id,
                g.plan_id.as_str(),
                g.source,
                g.validity.as_str(),
                g.time_ms,
                g.data_bytes,
                now
            ],
        )
    }

    fn update_grant(&mut self, g: &Grant) -> LResult<()> {
        self.exec(
            "UPDATE grants SET state = ?2, started_at = ?3, meter_since = ?4, used_ms = ?5,
                bytes_used = ?6, deadline = ?7, ended_at = ?8, end_reason = ?9
             WHERE id = ?1",
            params![
                g.id,
                g.state.as_str(),
                g.started_at,
                g.meter_since,
                g.used_ms,
                g.bytes_used,
                g.deadline,
                g.ended_at,
                g.end_reason
            ],
        )?;
        Ok(())
    }

    fn users_with_due_grants(&mut self, timeline_ms: i64, limit: usize) -> LResult<Vec<UserId>> {
        self.many(
            "SELECT DISTINCT user_id FROM grants WHERE deadline IS NOT NULL AND deadline <= ?1
             ORDER BY user_id LIMIT ?2",
            params![timeline_ms, i64::try_from(limit).unwrap_or(i64::MAX)],
            |r| r.get(0),
        )
    }

    fn voucher(&mut self, code: &str) -> LResult<Option<Voucher>> {
        self.one(
            &format!("SELECT {VOUCHER_COLS} FROM vouchers WHERE code = ?1"),
            params![code],
            voucher_row,
        )
    }

    fn insert_voucher(&mut self, v: &Voucher) -> LResult<()> {
        self.exec(
            "INSERT INTO vouchers (code, plan_id, batch, state, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                v.code,
                v.plan_id.as_str(),
                v.batch,
                v.state.as_str(),
                v.created_at,
                v.expires_at
            ],
        )?;
        Ok(())
    }

    fn update_voucher(&mut self, v: &Voucher) -> LResult<()> {
        self.exec(
            "UPDATE vouchers SET state = ?2, redeemed_at = ?3, user_id = ?4, grant_id = ?5
             WHERE code = ?1",
            params![
                v.code,
                v.state.as_str(),
                v.redeemed_at,
                v.user_id,
                v.grant_id
            ],
        )?;
        Ok(())
    }

    fn vouchers_due(&mut self, timeline_ms: i64, limit: usize) -> LResult<Vec<Voucher>> {
        self.many(
            &format!(
                "SELECT {VOUCHER_COLS} FROM vouchers
                 WHERE state = 'unused' AND expires_at IS NOT NULL AND expires_at <= ?1
                 ORDER BY code LIMIT ?2"
            ),
            params![timeline_ms, i64::try_from(limit).unwrap_or(i64::MAX)],
            voucher_row,
        )
    }

    fn active_sessions(&mut self, user: UserId) -> LResult<Vec<Session>> {
        self.many(
            &format!(
                "SELECT {SESSION_COLS} FROM sessions WHERE user_id = ?1 AND ended_at IS NULL ORDER BY id"
            ),
            params![user],
            session_row,
        )
    }

    fn session_by_nas_id(&mut self, nas_session_id: &str) -> LResult<Option<Session>> {
        self.one(
            &format!(
                "SELECT {SESSION_COLS} FROM sessions WHERE nas_session_id = ?1 AND ended_at IS NULL"
            ),
            params![nas_session_id],
            session_row,
        )
    }

    fn insert_session(&mut self, s: &Session) -> LResult<SessionId> {
        self.insert(
            "INSERT INTO sessions (user_id, nas_session_id, mac, ip, started_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                s.user_id,
                s.nas_session_id,
                s.mac.as_ref().map(|m| m.as_str()),
                s.ip,
                s.started_at
            ],
        )
    }

    fn update_session(&mut self, s: &Session) -> LResult<()> {
        self.exec(
            "UPDATE sessions SET ended_at = ?2, bytes_in = ?3, bytes_out = ?4, end_reason = ?5
             WHERE id = ?1",
            params![s.id, s.ended_at, s.bytes_in, s.bytes_out, s.end_reason],
        )?;
        Ok(())
    }

    fn audit(&mut self, e: &AuditEntry) -> LResult<()> {
        let (at, trusted) = (self.now.wall_ms, self.now.trusted);
        self.exec(
            "INSERT INTO audit (at, time_trusted, user_id, username, action, reason, detail)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![at, trusted, e.user_id, e.username, e.action, e.reason, e.detail],
        )?;
        Ok(())
    }
}
