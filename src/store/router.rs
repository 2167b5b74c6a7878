//! What the router workers read and write: the job queue, the desired state of a user on the
//! router, and our open NAS sessions.

use rusqlite::{params, OptionalExtension};

use super::ledger::{grant_row, plan_row, GRANT_COLS, PLAN_COLS};
use super::{Store, StoreError};
use crate::clock::Now;
use crate::engine::grants;
use crate::engine::model::{StoredPlan, UserState};
use crate::engine::Job;

/// A pending router job.
#[derive(Debug, Clone)]
pub struct JobRow {
    pub id: i64,
    pub job: Job,
    pub attempts: i64,
    pub max_attempts: i64,
}

/// An open session as the NAS knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenSession {
    pub nas_session_id: String,
    pub user: String,
    pub mac: Option<String>,
    pub ip: Option<String>,
    /// The counters last written for the session.
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Data left on the user's current grant as last written (`None`: no data cap).
    pub data_left: Option<u64>,
    /// When the user's running grant ends by time (timeline ms), if that is fixed.
    pub grant_deadline: Option<i64>,
}

/// A user as a RADIUS Access-Request sees it.
#[derive(Debug, Clone)]
pub struct AccessView {
    pub user: RouterUser,
    pub user_id: i64,
    /// The running grant (or the next queued one) while there is time left.
    pub grant_id: Option<i64>,
    /// Data left on that grant (`None`: no data cap).
    pub grant_data_left: Option<u64>,
    /// The plan of that grant, for the rate limit, idle timeout and devices.
    pub plan: Option<crate::domain::Plan>,
    /// Sessions open now.
    pub sessions: u32,
    /// Why the last grant ended (`time`, `data`, ...), when none is in use.
    pub last_end_reason: Option<String>,
}

/// A user as the router should have it, derived from our state at the moment of the job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterUser {
    pub name: String,
    pub password: String,
    pub state: UserState,
    /// Plan (profile) of the running or next grant, else of the last one.
    pub plan: Option<String>,
    pub time_left_ms: i64,
    pub data_left: Option<u64>,
    pub mac: Option<String>,
}

/// Open sessions with the data left and the deadline of their user's current grant (the running
/// one, else the first queued, as `entitlement`). Both subqueries say `state != 'ended'` so that
/// SQLite uses the partial index grants_open (it cannot tell that 'running' implies it): without
/// it, every poll read every grant once per open session.
const OPEN_SESSIONS_SQL: &str =
    "SELECT s.nas_session_id, u.username, s.mac, s.ip, s.bytes_in, s.bytes_out,
        (SELECT max(g.data_bytes - g.bytes_used, 0) FROM grants g
         WHERE g.user_id = s.user_id AND g.state != 'ended'
         ORDER BY g.state != 'running', g.id LIMIT 1),
        (SELECT min(g.deadline) FROM grants g
         WHERE g.user_id = s.user_id AND g.state != 'ended' AND g.state = 'running')
     FROM sessions s JOIN users u ON u.id = s.user_id
     WHERE s.ended_at IS NULL AND (?1 IS NULL OR u.username = ?1)
       AND (?2 IS NULL OR s.nas_session_id = ?2)
     ORDER BY s.id";

impl Store {
    /// The due jobs in id order, as one batch: at most `limit` in all, and at most `heavy` logins
    /// and plan syncs. An expiry burst (a `disconnect-user` and a `sync-user` per user) is cut
    /// off in bulk, so it comes in one batch; a rush of payments (a `sync-user` and a
    /// `login-device` per device) is carried out device by device and comes in slices.
    pub fn due_jobs(
        &self,
        now_timeline: i64,
        limit: usize,
        heavy: usize,
    ) -> Result<Vec<JobRow>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, args, attempts, max_attempts, kind FROM jobs
             WHERE state = 'pending' AND next_attempt_at <= ?1 ORDER BY id LIMIT ?2",
        )?;
        let mut others = 0;
        let rows = stmt
            .query_map(params![now_timeline, crate::units::sql_count(limit)], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get::<_, String>(4)?,
                ))
            })?
            .take_while(|r| {
                let light = r
                    .as_ref()
                    .is_ok_and(|r| r.4 == "disconnect-user" || r.4 == "sync-user");
                others += usize::from(!light);
                others <= heavy
            })
            .map(|r| r.map(|(id, args, attempts, max, _)| (id, args, attempts, max)));
        // Sized once: a 10,000-job burst grown by doubling held ~1.6x the rows, and both the old
        // and the new block at each step.
        let due: i64 = self
            .conn
            .prepare_cached(
                "SELECT count(*) FROM jobs WHERE state = 'pending' AND next_attempt_at <= ?1",
            )?
            .query_row(params![now_timeline], |r| r.get(0))?;
        let mut out = Vec::with_capacity(usize::try_from(due).unwrap_or(0).min(limit));
        for r in rows {
            let (id, args, attempts, max_attempts) = r?;
            match serde_json::from_str::<Job>(&args) {
                Ok(job) => out.push(JobRow {
                    id,
                    job,
                    attempts,
                    max_attempts,
                }),
                Err(e) => {
                    // A job this build cannot read is parked as failed, never retried in a loop.
                    self.conn.execute(
                        "UPDATE jobs SET state = 'failed', last_error = ?2 WHERE id = ?1",
                        params![id, format!("unreadable job: {e}")],
                    )?;
                }
            }
        }
        Ok(out)
    }

    /// When the next pending job falls due (timeline ms).
    pub fn next_job_at(&self) -> Result<Option<i64>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT min(next_attempt_at) FROM jobs WHERE state = 'pending'")?
            .query_row([], |r| r.get(0))?)
    }

    /// Removes finished jobs, all in one transaction (one flash write for a whole batch; jobs
    /// are idempotent, so a crash before this only repeats them).
    pub fn jobs_done(&mut self, ids: &[i64]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        {
            let mut stmt = tx.prepare_cached("DELETE FROM jobs WHERE id = ?1")?;
            for id in ids {
                stmt.execute(params![id])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Records a failed attempt. `counted` is false when the router could not be reached (it did
    /// not refuse anything): such attempts never exhaust a job. Returns true when the job is now
    /// marked failed.
    pub fn job_failed(
        &mut self,
        id: i64,
        error: &str,
        counted: bool,
        retry_at_timeline: i64,
        now: &Now,
    ) -> Result<bool, StoreError> {
        let add = i64::from(counted);
        let failed: Option<String> = self
            .conn
            .prepare_cached(
                "UPDATE jobs SET attempts = attempts + ?2, last_error = ?3, next_attempt_at = ?4,
                        updated_at = ?5,
                        state = CASE WHEN attempts + ?2 >= max_attempts THEN 'failed' ELSE 'pending' END
                 WHERE id = ?1 RETURNING state",
            )?
            .query_row(params![id, add, error, retry_at_timeline, now.wall_ms], |r| r.get(0))
            .optional()?;
        Ok(failed.as_deref() == Some("failed"))
    }

    /// Ids of the plans on sale that the config owns.
    pub fn config_plan_ids(&self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id FROM plans WHERE source = 'config' AND active = 1")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn plan_row(&self, id: &str) -> Result<Option<StoredPlan>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(&format!("SELECT {PLAN_COLS} FROM plans WHERE id = ?1"))?
            .query_row(params![id], plan_row)
            .optional()?)
    }

    pub fn router_user(&self, now: &Now, username: &str) -> Result<Option<RouterUser>, StoreError> {
        Ok(self.user_now(now, username)?.map(|(u, _, _)| u))
    }

    /// What a RADIUS server needs to answer an Access-Request for `username` at `now`; a read.
    pub fn access_view(&self, now: &Now, username: &str) -> Result<Option<AccessView>, StoreError> {
        let Some((user, user_id, grant)) = self.user_now(now, username)? else {
            return Ok(None);
        };
        let plan = match &user.plan {
            Some(p) => self.plan_row(p)?.map(|p| p.plan),
            None => None,
        };
        let sessions: u32 = self
            .conn
            .prepare_cached(
                "SELECT count(*) FROM sessions WHERE user_id = ?1 AND ended_at IS NULL",
            )?
            .query_row(params![user_id], |r| r.get(0))?;
        let last_end_reason = match grant {
            Some(_) => None,
            None => self
                .conn
                .prepare_cached(
                    "SELECT end_reason FROM grants WHERE user_id = ?1 AND state = 'ended'
                     ORDER BY id DESC LIMIT 1",
                )?
                .query_row(params![user_id], |r| r.get(0))
                .optional()?
                .flatten(),
        };
        Ok(Some(AccessView {
            last_end_reason,
            user,
            user_id,
            grant_id: grant.as_ref().map(|g| g.id),
            grant_data_left: grant.as_ref().and_then(grants::data_left),
            plan,
            sessions,
        }))
    }

    /// The user at `now` (entitlement computed, nothing written), its id and the grant in use.
    fn user_now(
        &self,
        now: &Now,
        username: &str,
    ) -> Result<Option<(RouterUser, i64, Option<crate::engine::model::Grant>)>, StoreError> {
        let user = self
            .conn
            .prepare_cached("SELECT id, password, state, mac FROM users WHERE username = ?1")?
            .query_row(params![username], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?,
                ))
            })
            .optional()?;
        let Some((id, password, state, mac)) = user else {
            return Ok(None);
        };
        let open = self
            .conn
            .prepare_cached(&format!(
                "SELECT {GRANT_COLS} FROM grants WHERE user_id = ?1 AND state != 'ended' ORDER BY id"
            ))?
            .query_map(params![id], grant_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let e = grants::entitlement(&open, now.timeline_ms);
        let current = open
            .iter()
            .find(|g| g.state == crate::engine::model::GrantState::Running)
            .or_else(|| open.first());
        let plan = match current {
            Some(g) => Some(g.plan_id.to_string()),
            None => self
                .conn
                .prepare_cached(
                    "SELECT plan_id FROM grants WHERE user_id = ?1 ORDER BY id DESC LIMIT 1",
                )?
                .query_row(params![id], |r| r.get(0))
                .optional()?,
        };
        let in_use = current.filter(|_| e.time_left_ms > 0).cloned();
        let user = RouterUser {
            name: username.to_string(),
            password,
            state: UserState::parse(&state)
                .ok_or_else(|| StoreError::Data(format!("user state {state:?}")))?,
            plan,
            time_left_ms: e.time_left_ms,
            data_left: e.data_left,
            mac,
        };
        Ok(Some((user, id, in_use)))
    }

    /// Of `names`, the users we know and whether each is entitled now (active with an open
    /// grant): one query for a whole expiry burst.
    pub fn entitled(
        &self,
        names: &[String],
    ) -> Result<std::collections::HashMap<String, bool>, StoreError> {
        let wanted: std::collections::HashSet<&str> = names.iter().map(String::as_str).collect();
        let mut stmt = self.conn.prepare_cached(
            "SELECT u.username, u.state = 'active'
                    AND EXISTS (SELECT 1 FROM grants g WHERE g.user_id = u.id AND g.state != 'ended')
             FROM users u",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, bool>(1)?)))?;
        let mut out = std::collections::HashMap::new();
        for r in rows {
            let (name, ok) = r?;
            if wanted.contains(name.as_str()) {
                out.insert(name, ok);
            }
        }
        Ok(out)
    }

    /// The user a device that came back to the portal belongs to: the one of its latest
    /// session, while that user is active with a grant not ended and the device has no open
    /// session. `None` for a device nobody paid for (or whose user has run out).
    pub fn owner_of_returning_device(&self, mac: &str) -> Result<Option<String>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT u.username, u.state = 'active'
                    AND EXISTS (SELECT 1 FROM grants g WHERE g.user_id = u.id AND g.state != 'ended')
                    AND NOT EXISTS (SELECT 1 FROM sessions o WHERE o.mac = ?1 AND o.ended_at IS NULL)
             FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE s.mac = ?1 ORDER BY s.id DESC LIMIT 1",
        )?;
        let row: Option<(String, bool)> = stmt
            .query_row([mac], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        Ok(row.and_then(|(user, ok)| ok.then_some(user)))
    }

    /// Our open sessions with what a NAS knows them by: all of them, or of one user, or the one
    /// with this NAS session id.
    pub fn open_sessions_for(
        &self,
        user: Option<&str>,
        nas_session_id: Option<&str>,
    ) -> Result<Vec<OpenSession>, StoreError> {
        let mut stmt = self.conn.prepare_cached(OPEN_SESSIONS_SQL)?;
        let rows = stmt.query_map(params![user, nas_session_id], |r| {
            Ok(OpenSession {
                nas_session_id: r.get(0)?,
                user: r.get(1)?,
                mac: r.get(2)?,
                ip: r.get(3)?,
                bytes_in: r.get(4)?,
                bytes_out: r.get(5)?,
                data_left: r.get(6)?,
                grant_deadline: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Users with a pending `disconnect-user` job (the job, not the reconcile, handles them).
    pub fn pending_disconnects(&self) -> Result<std::collections::HashSet<String>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT target FROM jobs WHERE state = 'pending' AND kind = 'disconnect-user'",
        )?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Users of this state (to find devices that must not be online).
    /// Of `names`, those expired or suspended, with that state. Only they are kept: a site's
    /// expired users grow with its whole history, the names on the router do not.
    pub fn barred_among(
        &self,
        names: &[String],
    ) -> Result<std::collections::HashMap<String, &'static str>, StoreError> {
        let wanted: std::collections::HashSet<&str> = names.iter().map(String::as_str).collect();
        let mut stmt = self.conn.prepare_cached(
            "SELECT username, state FROM users WHERE state IN ('expired', 'suspended')",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        let mut out = std::collections::HashMap::new();
        for r in rows {
            let (name, state) = r?;
            if let Some(state) = UserState::parse(&state).filter(|_| wanted.contains(name.as_str()))
            {
                out.insert(name, state.as_str());
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every table the poll's query reads is read through an index: a plan without one reads
    /// every grant once per open session, and at 5,000 devices that starved the job worker.
    #[test]
    fn the_open_sessions_query_reads_through_indexes() {
        let dir = std::env::temp_dir().join(format!("he-plan-{}", std::process::id()));
        let store = Store::open(
            &dir.join("h.db"),
            &crate::store::OpenOptions {
                busy_timeout: std::time::Duration::from_secs(1),
                check: false,
                policy: crate::clock::TimePolicy::new(86_400_000),
            },
        )
        .unwrap();
        let mut stmt = store
            .conn
            .prepare(&format!("EXPLAIN QUERY PLAN {OPEN_SESSIONS_SQL}"))
            .unwrap();
        let plan: Vec<String> = stmt
            .query_map(params![None::<String>, None::<String>], |r| r.get(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        drop(stmt);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
        for step in &plan {
            let bare_scan = step.starts_with("SCAN") && !step.contains("USING");
            let bare_search = step.starts_with("SEARCH") && !step.contains("USING");
            assert!(!bare_scan && !bare_search, "{step}: {plan:?}");
        }
    }
}
