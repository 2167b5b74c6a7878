//! The command pipeline's transaction: decide with the engine, then write the state, the
//! outbox events, the router jobs and the inbox record in one `BEGIN IMMEDIATE` transaction, or
//! nothing at all.

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde_json::Value;

use super::ledger::TxLedger;
use super::{Applied, ApplyError, Store, StoreError};
use crate::clock::{Clock, Now};
use crate::engine::command::Source;
use crate::engine::{Command, Engine, EngineError, Entropy, Outcome, Rejection};

impl Store {
    /// Decides and commits one command: the state change, its outbox events, its router jobs and
    /// its inbox record in one `BEGIN IMMEDIATE` transaction, or nothing at all.
    /// With a `command_id` the command is applied at most once; a repeat returns the stored result.
    #[allow(clippy::too_many_arguments)]
    pub fn apply(
        &mut self,
        engine: &Engine,
        clock: &dyn Clock,
        rng: &mut dyn Entropy,
        source: Source,
        command_id: Option<&str>,
        cmd: &Command,
    ) -> Result<Applied, ApplyError> {
        let mut results = self.apply_many(engine, clock, rng, source, &[(command_id, cmd)])?;
        match results.pop() {
            Some(Ok(a)) => Ok(a),
            Some(Err(r)) => Err(ApplyError::Rejected(r)),
            None => Err(StoreError::Data("no result".into()).into()),
        }
    }

    /// Applies several commands in one transaction (one fsync), each inside its own savepoint:
    /// a refused command changes nothing and does not stop the others.
    pub fn apply_many(
        &mut self,
        engine: &Engine,
        clock: &dyn Clock,
        rng: &mut dyn Entropy,
        source: Source,
        cmds: &[(Option<&str>, &Command)],
    ) -> Result<Vec<Result<Applied, Rejection>>, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let state = Self::clock_state(&tx)?;
        let (now, mut clock_state, clock_changed) = self.policy.observe(state, &clock.read());
        let mut results = Vec::with_capacity(cmds.len());
        let mut wrote = false;
        for (command_id, cmd) in cmds {
            if let Some(id) = command_id {
                let stored: Option<(String, String)> = tx
                    .prepare_cached("SELECT status, result FROM inbox WHERE command_id = ?1")?
                    .query_row(params![id], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?;
                if let Some((status, text)) = stored {
                    if status == "rejected" {
                        let r = serde_json::from_str::<Rejection>(&text)
                            .map_err(|e| StoreError::Data(format!("inbox {id}: {e}")))?;
                        results.push(Err(r));
                        continue;
                    }
                    results.push(Ok(Applied {
                        result: serde_json::from_str(&text).unwrap_or(Value::Null),
                        seqs: vec![],
                        jobs: 0,
                        replayed: true,
                        now,
                    }));
                    continue;
                }
            }
            sql(&tx, "SAVEPOINT command")?;
            let mut ledger = TxLedger::new(&tx, now);
            let decided = engine.decide(cmd, &mut ledger, now, rng);
            let ledger_wrote = ledger.wrote();
            let outcome = match decided {
                Ok(o) => o,
                Err(e) => {
                    sql(&tx, "ROLLBACK TO command")?;
                    sql(&tx, "RELEASE command")?;
                    match e {
                        EngineError::Rejected(r) => {
                            // The id's answer is final: a repeat gets the same refusal, even if
                            // it would now succeed (the sender issues a new id to try again).
                            if let Some(id) = command_id {
                                record_inbox(
                                    &tx,
                                    id,
                                    source,
                                    cmd,
                                    "rejected",
                                    &serde_json::json!(r),
                                    &now,
                                )?;
                                wrote = true;
                            }
                            results.push(Err(r));
                            continue;
                        }
                        EngineError::Ledger(e) => return Err(StoreError::Data(e.0)),
                    }
                }
            };
            let seqs = write_events(&tx, &self.instance, &outcome, &now)?;
            write_jobs(&tx, &outcome, &now)?;
            if let Some(id) = command_id {
                record_inbox(&tx, id, source, cmd, "applied", &outcome.result, &now)?;
            }
            sql(&tx, "RELEASE command")?;
            wrote |= ledger_wrote
                || !outcome.events.is_empty()
                || !outcome.jobs.is_empty()
                || command_id.is_some();
            results.push(Ok(Applied {
                result: outcome.result,
                seqs,
                jobs: outcome.jobs.len(),
                replayed: false,
                now,
            }));
        }
        if wrote || clock_changed {
            self.policy.checkpoint(&mut clock_state, &now);
            Self::save_clock_state(&tx, &clock_state)?;
            tx.commit()?;
        }
        // Otherwise dropping `tx` rolls back: nothing to keep, no flash write spent on it.
        Ok(results)
    }
}

/// Runs a parameterless statement through the statement cache (no re-parsing per command).
fn sql(conn: &Connection, text: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(text)?.execute([])?;
    Ok(())
}

pub(super) fn write_events(
    tx: &rusqlite::Transaction<'_>,
    instance: &str,
    outcome: &Outcome,
    now: &Now,
) -> Result<Vec<i64>, StoreError> {
    if outcome.events.is_empty() {
        return Ok(vec![]);
    }
    // AUTOINCREMENT keeps seq monotonic even after acknowledged rows are deleted; the seq is
    // assigned here so the event id (instance-seq) is written with the row, in one statement.
    let last: i64 = tx
        .prepare_cached("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'")?
        .query_row([], |r| r.get(0))
        .optional()?
        .unwrap_or(0);
    let mut stmt = tx.prepare_cached(
        "INSERT INTO outbox (seq, event_id, type, payload, occurred_at, time_trusted, money)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    let mut seqs = Vec::with_capacity(outcome.events.len());
    for (i, e) in outcome.events.iter().enumerate() {
        let seq = last + 1 + crate::units::sql_count(i);
        let (ty, payload) = e.split();
        stmt.execute(params![
            seq,
            format!("{instance}-{seq}"),
            ty,
            payload.to_string(),
            now.wall_ms,
            now.trusted,
            e.is_money()
        ])?;
        seqs.push(seq);
    }
    Ok(seqs)
}

fn record_inbox(
    tx: &rusqlite::Transaction<'_>,
    id: &str,
    source: Source,
    cmd: &Command,
    status: &str,
    result: &Value,
    now: &Now,
) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO inbox (command_id, source, type, status, result, received_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        id,
        source.as_str(),
        cmd.type_name(),
        status,
        result.to_string(),
        now.wall_ms
    ])?;
    Ok(())
}

fn write_jobs(
    tx: &rusqlite::Transaction<'_>,
    outcome: &Outcome,
    now: &Now,
) -> Result<(), StoreError> {
    if outcome.jobs.is_empty() {
        return Ok(());
    }
    let max_attempts: i64 = tx
        .prepare_cached("SELECT value FROM meta WHERE key = 'job-max-attempts'")?
        .query_row([], |r| r.get::<_, String>(0))
        .optional()?
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let mut stmt = tx.prepare_cached(
        "INSERT INTO jobs (kind, target, args, state, attempts, max_attempts, next_attempt_at,
                           created_at, updated_at)
         VALUES (?1, ?2, ?3, 'pending', 0, ?4, ?5, ?6, ?6)
         ON CONFLICT (kind, target) WHERE state = 'pending'
         DO UPDATE SET args = excluded.args, attempts = 0,
                       next_attempt_at = excluded.next_attempt_at, updated_at = excluded.updated_at",
    )?;
    for j in &outcome.jobs {
        let args = serde_json::to_string(j).map_err(|e| StoreError::Data(e.to_string()))?;
        stmt.execute(params![
            j.kind(),
            j.target(),
            args,
            max_attempts,
            now.timeline_ms,
            now.wall_ms
        ])?;
    }
    Ok(())
}
