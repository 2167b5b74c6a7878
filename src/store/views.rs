//! Read-only views for people and scripts (`list`, `show`, `status`). Each returns a [`Table`]
//! or a JSON value; the CLI renders it as a text table or as `--json`.

use rusqlite::{params, OptionalExtension};
use serde_json::{json, Map, Value};

use super::ledger::{grant_row, plan_row, GRANT_COLS, PLAN_COLS};
use super::{Store, StoreError};
use crate::clock::{rfc3339, Now};
use crate::engine::grants;
use crate::units::{format_bytes, format_span, Span};

/// Rows with named columns: a text table for people, an array of objects for `--json`.
#[derive(Debug, Clone, Default)]
pub struct Table {
    pub columns: Vec<&'static str>,
    pub rows: Vec<Vec<Value>>,
}

impl Table {
    pub fn new(columns: &[&'static str]) -> Self {
        Table {
            columns: columns.to_vec(),
            rows: Vec::new(),
        }
    }

    pub fn to_json(&self) -> Value {
        Value::Array(
            self.rows
                .iter()
                .map(|r| {
                    let mut m = Map::new();
                    for (c, v) in self.columns.iter().zip(r) {
                        m.insert((*c).to_string(), v.clone());
                    }
                    Value::Object(m)
                })
                .collect(),
        )
    }
}

fn time(ms: Option<i64>) -> Value {
    ms.map(|m| Value::String(rfc3339(m))).unwrap_or(Value::Null)
}

/// An optional SQL limit: 0 means all.
pub(super) fn lim(n: usize) -> i64 {
    if n == 0 {
        -1
    } else {
        crate::units::sql_count(n)
    }
}

impl Store {
    pub fn view_plans(&self) -> Result<Table, StoreError> {
        let mut t = Table::new(&[
            "id",
            "name",
            "price",
            "currency",
            "time",
            "validity",
            "data",
            "rate-limit",
            "devices",
            "on-sale",
            "source",
        ]);
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {PLAN_COLS} FROM plans ORDER BY active DESC, price, id"
        ))?;
        for p in stmt.query_map([], plan_row)? {
            let p = p?;
            let plan = p.plan;
            t.rows.push(vec![
                json!(plan.id.as_str()),
                json!(plan.name),
                json!(plan.price),
                json!(plan.currency.as_str()),
                json!(format_span(plan.time)),
                json!(plan.validity.as_str()),
                json!(plan.data.map(|d| format_bytes(d.0))),
                json!(plan.rate_limit),
                json!(plan.devices),
                json!(p.active),
                json!(p.source),
            ]);
        }
        Ok(t)
    }

    pub fn view_vouchers(
        &self,
        now: &Now,
        state: Option<&str>,
        batch: Option<&str>,
        limit: usize,
    ) -> Result<Table, StoreError> {
        let mut t = Table::new(&[
            "code", "plan", "batch", "state", "created", "expires", "redeemed", "user",
        ]);
        let mut stmt = self.conn.prepare(
            "SELECT v.code, v.plan_id, v.batch, v.state, v.created_at, v.expires_at, v.redeemed_at,
                    u.username
             FROM vouchers v LEFT JOIN users u ON u.id = v.user_id
             WHERE (?1 IS NULL OR v.state = ?1) AND (?2 IS NULL OR v.batch = ?2)
             ORDER BY v.created_at DESC, v.code LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![state, batch, lim(limit)], |r| {
            Ok(vec![
                json!(r.get::<_, String>(0)?),
                json!(r.get::<_, String>(1)?),
                json!(r.get::<_, String>(2)?),
                json!(r.get::<_, String>(3)?),
                time(r.get(4)?),
                time(r.get::<_, Option<i64>>(5)?.map(|t| now.wall_at(t))),
                time(r.get(6)?),
                json!(r.get::<_, Option<String>>(7)?),
            ])
        })?;
        for r in rows {
            t.rows.push(r?);
        }
        Ok(t)
    }

    pub fn view_payments(&self, limit: usize) -> Result<Table, StoreError> {
        let mut t = Table::new(&[
            "id",
            "provider",
            "reference",
            "phone",
            "amount",
            "currency",
            "plan",
            "user",
            "received",
            "time-trusted",
        ]);
        let mut stmt = self.conn.prepare(
            "SELECT p.id, p.provider, p.reference, p.phone, p.amount, p.currency, p.plan_id,
                    u.username, p.received_at, p.time_trusted
             FROM payments p JOIN users u ON u.id = p.user_id
             ORDER BY p.id DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map(params![lim(limit)], |r| {
            Ok(vec![
                json!(r.get::<_, i64>(0)?),
                json!(r.get::<_, String>(1)?),
                json!(r.get::<_, String>(2)?),
                json!(r.get::<_, Option<String>>(3)?),
                json!(r.get::<_, i64>(4)?),
                json!(r.get::<_, String>(5)?),
                json!(r.get::<_, String>(6)?),
                json!(r.get::<_, String>(7)?),
                time(r.get(8)?),
                json!(r.get::<_, bool>(9)?),
            ])
        })?;
        for r in rows {
            t.rows.push(r?);
        }
        Ok(t)
    }

    fn entitlement_of(&self, user_id: i64, now: &Now) -> Result<grants::Entitlement, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {GRANT_COLS} FROM grants WHERE user_id = ?1 AND state != 'ended' ORDER BY id"
        ))?;
        let open = stmt
            .query_map(params![user_id], grant_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(grants::entitlement(&open, now.timeline_ms))
    }

    pub fn view_users(
        &self,
        now: &Now,
        state: Option<&str>,
        limit: usize,
    ) -> Result<Table, StoreError> {
        let mut t = Table::new(&[
            "user",
            "state",
            "phone",
            "mac",
            "time-left",
            "data-left",
            "ends",
            "sessions",
        ]);
        let mut stmt = self.conn.prepare(
            "SELECT u.id, u.username, u.state, u.phone, u.mac,
                    (SELECT count(*) FROM sessions s WHERE s.user_id = u.id AND s.ended_at IS NULL)
             FROM users u WHERE (?1 IS NULL OR u.state = ?1) ORDER BY u.id DESC LIMIT ?2",
        )?;
        let rows = stmt
            .query_map(params![state, lim(limit)], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, i64>(5)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        for (id, name, st, phone, mac, sessions) in rows {
            let e = self.entitlement_of(id, now)?;
            t.rows.push(vec![
                json!(name),
                json!(st),
                json!(phone),
                json!(mac),
                json!(format_span(Span(e.time_left_ms))),
                json!(e.data_left.map(format_bytes)),
                time(e.ends_at.map(|t| now.wall_at(t))),
                json!(sessions),
            ]);
        }
        Ok(t)
    }

    pub fn view_user(&self, now: &Now, username: &str) -> Result<Option<Value>, StoreError> {
        let user = self
            .conn
            .query_row(
                "SELECT id, username, password, phone, mac, state, created_at FROM users
                 WHERE username = ?1",
                params![username],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        json!({
                            "user": r.get::<_, String>(1)?,
                            "password": r.get::<_, String>(2)?,
                            "phone": r.get::<_, Option<String>>(3)?,
                            "mac": r.get::<_, Option<String>>(4)?,
                            "state": r.get::<_, String>(5)?,
                            "created": time(r.get(6)?),
                        }),
                    ))
                },
            )
            .optional()?;
        let Some((id, mut v)) = user else {
            return Ok(None);
        };
        let e = self.entitlement_of(id, now)?;
        v["time-left-ms"] = json!(e.time_left_ms);
        v["time-left"] = json!(format_span(Span(e.time_left_ms)));
        v["data-left"] = json!(e.data_left);
        v["ends"] = time(e.ends_at.map(|t| now.wall_at(t)));
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {GRANT_COLS} FROM grants WHERE user_id = ?1 ORDER BY id"
        ))?;
        let grants: Vec<Value> = stmt
            .query_map(params![id], grant_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?
            .into_iter()
            .map(|g| {
                json!({
                    "grant": g.id, "plan": g.plan_id.as_str(), "source": g.source,
                    "validity": g.validity.as_str(), "state": g.state.as_str(),
                    "time": format_span(Span(g.time_ms)),
                    "time-left": format_span(Span(grants::time_left(&g, now.timeline_ms))),
                    "data": g.data_bytes, "bytes-used": g.bytes_used,
                    "started": time(g.started_at.map(|t| now.wall_at(t))),
                    "ends": time(g.deadline.map(|t| now.wall_at(t))),
                    "end-reason": g.end_reason,
                })
            })
            .collect();
        v["grants"] = Value::Array(grants);
        v["sessions"] = self.view_sessions(Some(id), false, 20)?.to_json();
        Ok(Some(v))
    }

    pub fn user_id(&self, username: &str) -> Result<Option<i64>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT id FROM users WHERE username = ?1",
                params![username],
                |r| r.get(0),
            )
            .optional()?)
    }

    pub fn view_sessions(
        &self,
        user_id: Option<i64>,
        active_only: bool,
        limit: usize,
    ) -> Result<Table, StoreError> {
        let mut t = Table::new(&[
            "session",
            "user",
            "nas-session",
            "mac",
            "ip",
            "started",
            "ended",
            "bytes-in",
            "bytes-out",
            "end-reason",
        ]);
        let mut stmt = self.conn.prepare(
            "SELECT s.id, u.username, s.nas_session_id, s.mac, s.ip, s.started_at, s.ended_at,
                    s.bytes_in, s.bytes_out, s.end_reason
             FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE (?1 IS NULL OR s.user_id = ?1) AND (?2 = 0 OR s.ended_at IS NULL)
             ORDER BY s.id DESC LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![user_id, active_only, lim(limit)], |r| {
            Ok(vec![
                json!(r.get::<_, i64>(0)?),
                json!(r.get::<_, String>(1)?),
                json!(r.get::<_, String>(2)?),
                json!(r.get::<_, Option<String>>(3)?),
                json!(r.get::<_, Option<String>>(4)?),
                time(r.get(5)?),
                time(r.get(6)?),
                json!(r.get::<_, i64>(7)?),
                json!(r.get::<_, i64>(8)?),
                json!(r.get::<_, Option<String>>(9)?),
            ])
        })?;
        for r in rows {
            t.rows.push(r?);
        }
        Ok(t)
    }

    /// Outbox rows as the cloud will receive them (docs/events.md), oldest first.
    pub fn view_outbox(
        &self,
        site: &str,
        after_seq: i64,
        limit: usize,
    ) -> Result<Vec<Value>, StoreError> {
        self.outbox_after(site, after_seq, lim(limit))?
            .into_iter()
            .map(|e| serde_json::from_str(&e.json).map_err(|e| StoreError::Data(e.to_string())))
            .collect()
    }

    pub fn outbox_stats(&self, now: &Now) -> Result<Value, StoreError> {
        let (depth, money, oldest_seq, newest_seq, oldest_at): (i64, i64, Option<i64>, Option<i64>, Option<i64>) =
            self.conn.query_row(
                "SELECT count(*), coalesce(sum(money), 0), min(seq), max(seq), min(occurred_at) FROM outbox",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )?;
        let last_seq: i64 = self
            .conn
            .query_row(
                "SELECT seq FROM sqlite_sequence WHERE name = 'outbox'",
                [],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(0);
        let mut by_type = Map::new();
        let mut stmt = self
            .conn
            .prepare("SELECT type, count(*) FROM outbox GROUP BY type ORDER BY type")?;
        for r in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
            let (ty, n) = r?;
            by_type.insert(ty, json!(n));
        }
        Ok(json!({
            "depth": depth,
            "money-events": money,
            "oldest-seq": oldest_seq,
            "newest-seq": newest_seq,
            "last-seq": last_seq,
            "oldest-age-ms": oldest_at.map(|t| (now.wall_ms - t).max(0)),
            "by-type": by_type,
        }))
    }

    pub fn view_jobs(
        &self,
        now: &Now,
        state: Option<&str>,
        limit: usize,
    ) -> Result<Table, StoreError> {
        let mut t = Table::new(&[
            "id",
            "kind",
            "target",
            "state",
            "attempts",
            "next-attempt",
            "last-error",
            "updated",
        ]);
        let mut stmt = self.conn.prepare(
            "SELECT id, kind, target, state, attempts, max_attempts, next_attempt_at, last_error,
                    updated_at
             FROM jobs WHERE (?1 IS NULL OR state = ?1) ORDER BY id DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![state, lim(limit)], |r| {
            let st: String = r.get(3)?;
            let next: i64 = r.get(6)?;
            Ok(vec![
                json!(r.get::<_, i64>(0)?),
                json!(r.get::<_, String>(1)?),
                json!(r.get::<_, String>(2)?),
                json!(st.clone()),
                json!(format!("{}/{}", r.get::<_, i64>(4)?, r.get::<_, i64>(5)?)),
                if st == "pending" {
                    time(Some(now.wall_at(next)))
                } else {
                    Value::Null
                },
                json!(r.get::<_, Option<String>>(7)?),
                time(r.get(8)?),
            ])
        })?;
        for r in rows {
            t.rows.push(r?);
        }
        Ok(t)
    }

    /// The most recently failed job, so that an operator sees why without a second command.
    fn last_failed_job(&self) -> Result<Value, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT id, kind, target, attempts, last_error, updated_at FROM jobs
                 WHERE state = 'failed' ORDER BY updated_at DESC, id DESC LIMIT 1",
            )?
            .query_row([], |r| {
                Ok(json!({
                    "id": r.get::<_, i64>(0)?,
                    "kind": r.get::<_, String>(1)?,
                    "target": r.get::<_, String>(2)?,
                    "attempts": r.get::<_, i64>(3)?,
                    "error": r.get::<_, Option<String>>(4)?,
                    "at": time(r.get(5)?),
                }))
            })
            .optional()?
            .unwrap_or(Value::Null))
    }

    pub fn status(&self, site: &str, now: &Now) -> Result<Value, StoreError> {
        let count = |sql: &str| -> Result<i64, StoreError> {
            Ok(self.conn.query_row(sql, [], |r| r.get(0))?)
        };
        let mut users = Map::new();
        let mut stmt = self
            .conn
            .prepare("SELECT state, count(*) FROM users GROUP BY state")?;
        for r in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
            let (s, n) = r?;
            users.insert(s, json!(n));
        }
        let size = std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0)
            + std::fs::metadata(format!("{}-wal", self.path.display()))
                .map(|m| m.len())
                .unwrap_or(0);
        let next = self.next_deadline()?;
        Ok(json!({
            "site": site,
            "version": env!("CARGO_PKG_VERSION"),
            "database": {
                "path": self.path.display().to_string(),
                "schema-version": self.schema_version()?,
                "instance": self.instance,
                "size-bytes": size,
            },
            "clock": {
                "now": rfc3339(now.wall_ms),
                "trusted": now.trusted,
                "timeline-ms": now.timeline_ms,
                "high-water": Self::clock_state(&self.conn)?
                    .map(|c| rfc3339(c.hwm_wall_ms)),
            },
            "users": users,
            "active-sessions": count("SELECT count(*) FROM sessions WHERE ended_at IS NULL")?,
            "running-grants": count("SELECT count(*) FROM grants WHERE state = 'running'")?,
            "unused-vouchers": count("SELECT count(*) FROM vouchers WHERE state = 'unused'")?,
            "payments": count("SELECT count(*) FROM payments")?,
            "next-deadline": time(next.map(|t| now.wall_at(t))),
            "outbox": self.outbox_stats(now)?,
            "uplink": self.uplink_state()?,
            "nas-warnings": self.nas_warnings()?,
            "jobs": {
                "pending": count("SELECT count(*) FROM jobs WHERE state = 'pending'")?,
                "failed": count("SELECT count(*) FROM jobs WHERE state = 'failed'")?,
                "last-failed": self.last_failed_job()?,
            },
        }))
    }
}
