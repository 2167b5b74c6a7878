//! The outbox seen from the uplinks: read the oldest events in their wire form, remove what the
//! cloud acknowledged, and keep the table within its size limit (docs/mqtt.md, "Outbox size").

use rusqlite::{params, TransactionBehavior};
use serde_json::{json, Value};

use super::{Store, StoreError};
use crate::clock::{rfc3339, Now};

/// One event, ready to publish: the JSON envelope of docs/events.md.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEvent {
    pub seq: i64,
    pub json: String,
}

/// What [`Store::outbox_trim`] dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trimmed {
    pub dropped: i64,
    pub first_seq: i64,
    pub last_seq: i64,
}

/// The envelope, written by hand: the payload is stored as JSON text and goes out as it is,
/// with no parse and re-serialise per event.
fn envelope(
    site: &str,
    seq: i64,
    event_id: &str,
    ty: &str,
    occurred_at: i64,
    trusted: bool,
    payload: &str,
) -> String {
    let q = |s: &str| Value::String(s.to_string()).to_string();
    format!(
        "{{\"id\":{},\"site\":{},\"seq\":{seq},\"type\":{},\"occurred-at\":\"{}\",\"time-trusted\":{trusted},\"payload\":{payload}}}",
        q(event_id),
        q(site),
        q(ty),
        rfc3339(occurred_at)
    )
}

/// Several events as one JSON array (a batch message, an HTTPS POST body).
pub fn json_array(events: &[OutboxEvent]) -> String {
    let mut out = String::with_capacity(events.iter().map(|e| e.json.len() + 1).sum::<usize>() + 2);
    out.push('[');
    for (i, e) in events.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&e.json);
    }
    out.push(']');
    out
}

impl Store {
    /// Up to `limit` events after `after_seq` (all with -1), oldest first, in their wire form.
    pub fn outbox_after(
        &self,
        site: &str,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<OutboxEvent>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT seq, event_id, type, payload, occurred_at, time_trusted FROM outbox
             WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![after_seq, limit], |r| {
            let seq: i64 = r.get(0)?;
            let id: String = r.get(1)?;
            let ty: String = r.get(2)?;
            let payload: String = r.get(3)?;
            Ok(OutboxEvent {
                seq,
                json: envelope(site, seq, &id, &ty, r.get(4)?, r.get(5)?, &payload),
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Removes acknowledged events (inclusive seq ranges) in one transaction.
    pub fn outbox_remove(&mut self, ranges: &[(i64, i64)]) -> Result<usize, StoreError> {
        if ranges.is_empty() {
            return Ok(0);
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut n = 0;
        {
            let mut stmt = tx.prepare_cached("DELETE FROM outbox WHERE seq BETWEEN ?1 AND ?2")?;
            for (lo, hi) in ranges {
                n += stmt.execute(params![lo, hi])?;
            }
        }
        tx.commit()?;
        Ok(n)
    }

    /// Keeps the outbox within `max_events`: when it holds more, the oldest telemetry events are
    /// dropped down to 90 % of the limit, and an `outbox.dropped` event says which. Money events
    /// (payments, grants, vouchers) are never dropped, even if they alone exceed the limit.
    pub fn outbox_trim(
        &mut self,
        max_events: u64,
        now: &Now,
    ) -> Result<Option<Trimmed>, StoreError> {
        let depth: i64 = self
            .conn
            .query_row("SELECT count(*) FROM outbox", [], |r| r.get(0))?;
        if crate::units::non_negative(depth) <= max_events {
            return Ok(None);
        }
        let excess = depth - i64::try_from(max_events / 10 * 9).unwrap_or(i64::MAX);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let (dropped, first, last): (i64, Option<i64>, Option<i64>) = tx.query_row(
            "SELECT count(*), min(seq), max(seq) FROM
               (SELECT seq FROM outbox WHERE money = 0 ORDER BY seq LIMIT ?1)",
            params![excess],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        let (Some(first), Some(last)) = (first, last) else {
            return Ok(None);
        };
        tx.execute(
            "DELETE FROM outbox WHERE seq IN
               (SELECT seq FROM outbox WHERE money = 0 ORDER BY seq LIMIT ?1)",
            params![excess],
        )?;
        let event = crate::engine::Event::OutboxDropped {
            count: crate::units::non_negative(dropped),
            first_seq: first,
            last_seq: last,
        };
        let outcome = crate::engine::Outcome {
            result: Value::Null,
            events: vec![event],
            jobs: vec![],
        };
        super::apply::write_events(&tx, &self.instance, &outcome, now)?;
        tx.commit()?;
        Ok(Some(Trimmed {
            dropped,
            first_seq: first,
            last_seq: last,
        }))
    }

    /// The uplink's state, kept in `meta` so `status` in another process can show it. Written
    /// only when via, state or error change (a flash write each time); `since` is when they did.
    pub fn set_uplink_state(
        &mut self,
        via: &str,
        state: &str,
        error: Option<&str>,
        now: &Now,
    ) -> Result<(), StoreError> {
        let old = self.uplink_state()?;
        let same = old.get("via").and_then(Value::as_str) == Some(via)
            && old.get("state").and_then(Value::as_str) == Some(state)
            && old.get("error").and_then(Value::as_str) == error;
        if !same {
            let v =
                json!({"via": via, "state": state, "since": rfc3339(now.wall_ms), "error": error});
            self.set_meta("uplink", &v.to_string())?;
        }
        Ok(())
    }

    pub fn uplink_state(&self) -> Result<Value, StoreError> {
        Ok(self
            .meta("uplink")?
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Value::Null))
    }
}
