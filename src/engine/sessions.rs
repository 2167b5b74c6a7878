//! Sessions as the NAS reports them: started (who may log in), usage (data quotas), ended,
//! and a user's devices confirmed disconnected.

use super::decision::*;
use super::*;

impl Cx<'_> {
    pub(super) fn session_started(
        &mut self,
        a: &command::SessionStartArgs,
    ) -> Result<Value, EngineError> {
        let mac = parse_mac(&a.mac)?;
        check_ip(&a.ip)?;
        if a.nas_session_id.is_empty() {
            return Err(bad("nas-session-id must not be empty"));
        }
        if let Some(s) = self.ledger.session_by_nas_id(&a.nas_session_id)? {
            return Ok(json!({"session": s.id, "duplicate": true}));
        }
        let mut user = self.user(&a.user)?;
        // Time and data left as of now: a grant that ended a moment ago is not an entitlement.
        if user.state == UserState::Active {
            self.settle(&mut user)?;
        }
        let open = self.ledger.open_grants(user.id)?;
        let current = open
            .iter()
            .find(|g| g.state == GrantState::Running)
            .or_else(|| open.first())
            .cloned();
        let devices = match &current {
            Some(g) => self
                .ledger
                .plan(g.plan_id.as_str())?
                .map_or(1, |p| p.plan.devices),
            None => 1,
        };
        let facts = access::Facts {
            state: user.state,
            bound_mac: user.mac.as_ref(),
            has_grant: current.is_some(),
            data_left: current.as_ref().and_then(grants::data_left),
            sessions: self.ledger.active_sessions(user.id)?.len() as u32,
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
        session.id = self.ledger.insert_session(&session)?;
        let at = self.now.timeline_ms;
        let mut current = current;
        match current.state {
            GrantState::Queued => self.start_grant(&user, &mut current, at, true)?,
            GrantState::Running
                if current.validity == Validity::Uptime && current.meter_since.is_none() =>
            {
                current.meter_since = Some(at);
                current.deadline = grants::deadline(&current);
                self.ledger.update_grant(&current)?;
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
    pub(super) fn consume_data(&mut self, user: &mut User, mut delta: u64) -> LResult<()> {
        let metering = !self.ledger.active_sessions(user.id)?.is_empty();
        while delta > 0 {
            let open = self.ledger.open_grants(user.id)?;
            let Some(mut g) = open
                .iter()
                .find(|g| g.state == GrantState::Running)
                .cloned()
            else {
                return Ok(());
            };
            match g.data_bytes {
                Some(cap) if g.bytes_used.saturating_add(delta) >= cap => {
                    delta = g.bytes_used.saturating_add(delta) - cap;
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
                    g.bytes_used = g.bytes_used.saturating_add(delta).min(MAX_COUNTER);
                    self.ledger.update_grant(&g)?;
                    delta = 0;
                }
            }
        }
        Ok(())
    }

    pub(super) fn session_usage(&mut self, a: &command::UsageArgs) -> Result<Value, EngineError> {
        let mut per_user: Vec<(UserId, u64)> = Vec::new();
        let mut unknown = 0;
        let mut out_of_range = 0;
        for c in &a.sessions {
            // No NAS counts 9.2 EB in a session: such a counter is garbage (a RADIUS
            // Gigawords of 2^31 and up, a counter about to wrap). Kept out, it cannot be stored
            // negative or wrap the sums; the other sessions of the batch are still counted.
            if c.bytes_in > MAX_COUNTER || c.bytes_out > MAX_COUNTER {
                out_of_range += 1;
                continue;
            }
            let Some(mut s) = self.ledger.session_by_nas_id(&c.nas_session_id)? else {
                unknown += 1;
                continue;
            };
            let delta = counter_delta(s.bytes_in, c.bytes_in)
                .saturating_add(counter_delta(s.bytes_out, c.bytes_out));
            if delta == 0 {
                continue;
            }
            s.bytes_in = c.bytes_in;
            s.bytes_out = c.bytes_out;
            self.ledger.update_session(&s)?;
            match per_user.iter_mut().find(|(u, _)| *u == s.user_id) {
                Some((_, d)) => *d = d.saturating_add(delta),
                None => per_user.push((s.user_id, delta)),
            }
        }
        for (uid, delta) in &per_user {
            if let Some(mut user) = self.ledger.user_by_id(*uid)? {
                self.settle(&mut user)?;
                self.consume_data(&mut user, *delta)?;
            }
        }
        Ok(
            json!({"users": per_user.len(), "unknown-sessions": unknown, "out-of-range": out_of_range}),
        )
    }

    pub(super) fn session_ended(
        &mut self,
        a: &command::SessionEndArgs,
    ) -> Result<Value, EngineError> {
        let Some(mut s) = self.ledger.session_by_nas_id(&a.nas_session_id)? else {
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
            s = self
                .ledger
                .session_by_nas_id(&a.nas_session_id)?
                .unwrap_or(s);
        }
        let Some(mut user) = self.ledger.user_by_id(s.user_id)? else {
            return Err(LedgerError(format!("session {} has no user", s.id)).into());
        };
        self.end_session(&mut user, s.clone(), &a.reason)?;
        Ok(json!({"session": s.id, "changed": true}))
    }

    /// Closes one session; when it was the user's last, an `uptime` grant stops counting.
    pub(super) fn end_session(
        &mut self,
        user: &mut User,
        mut s: Session,
        reason: &str,
    ) -> LResult<()> {
        self.settle(user)?;
        s.ended_at = Some(self.now.wall_ms);
        s.end_reason = Some(reason.to_string());
        self.ledger.update_session(&s)?;
        self.emit(Event::SessionEnded {
            session: s.id,
            user: user.username.clone(),
            reason: reason.to_string(),
            bytes_in: s.bytes_in,
            bytes_out: s.bytes_out,
            duration_ms: self.now.wall_ms - s.started_at,
        });
        if self.ledger.active_sessions(user.id)?.is_empty() {
            let open = self.ledger.open_grants(user.id)?;
            if let Some(mut g) = open.into_iter().find(|g| g.state == GrantState::Running) {
                if let Some(m) = g.meter_since.take() {
                    g.used_ms = (g.used_ms + (self.now.timeline_ms - m).max(0)).min(g.time_ms);
                    g.deadline = None;
                    self.ledger.update_grant(&g)?;
                }
            }
        }
        Ok(())
    }

    pub(super) fn user_disconnected(
        &mut self,
        a: &command::DisconnectedArgs,
    ) -> Result<Value, EngineError> {
        let Some(mut user) = self.ledger.user_by_name(&a.user)? else {
            // A device logged in as a user we do not know: the audit trail still says so.
            self.ledger.audit(&AuditEntry {
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
            .ledger
            .active_sessions(user.id)?
            .into_iter()
            .filter(|s| a.sessions.is_empty() || a.sessions.contains(&s.nas_session_id))
            .collect();
        let closed = sessions.len();
        for s in sessions {
            self.end_session(&mut user, s, &a.reason)?;
        }
        self.ledger.audit(&AuditEntry {
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
}
