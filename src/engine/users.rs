//! Users an operator or the cloud manages by name: created, extended, suspended, resumed,
//! disconnected.

use super::decision::*;
use super::*;

impl Cx<'_> {
    /// Adds what `user.extend` and `user.create` give (see [`Cx::grant_spec`]) as a manual
    /// grant: no device is known to be online.
    fn add_manual_grant(
        &mut self,
        user: &mut User,
        (plan_id, validity, time_ms, data): (PlanId, Validity, i64, Option<u64>),
    ) -> LResult<GrantId> {
        self.add_grant(
            user,
            &plan_id,
            validity,
            time_ms,
            data,
            "manual".into(),
            false,
        )
    }

    /// What `user.extend` and `user.create` add: a plan's worth, or a time (and data).
    pub(super) fn grant_spec(
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

    pub(super) fn extend(&mut self, a: &command::ExtendArgs) -> Result<Value, EngineError> {
        let mut user = self.user(&a.user)?;
        let spec = self.grant_spec(&a.plan, &a.time, &a.data)?;
        let grant = self.add_manual_grant(&mut user, spec)?;
        let mut r = self.user_summary(&user)?;
        r["grant"] = json!(grant);
        Ok(r)
    }

    pub(super) fn create_named_user(
        &mut self,
        a: &command::CreateUserArgs,
    ) -> Result<Value, EngineError> {
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
                if self.ledger.user_by_name(n)?.is_some() {
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
            Some(spec) => Some(self.add_manual_grant(&mut user, spec)?),
            None => {
                // No time yet: the account exists but cannot log in until extended.
                user.state = UserState::Expired;
                self.ledger.update_user(&user)?;
                None
            }
        };
        let mut r = self.user_summary(&user)?;
        r["password"] = json!(user.password);
        r["grant"] = json!(grant);
        Ok(r)
    }

    pub(super) fn disconnect(&mut self, a: &command::SuspendArgs) -> Result<Value, EngineError> {
        let user = self.user(&a.user)?;
        let reason = a.reason.clone().unwrap_or_else(|| "operator".into());
        self.job(Job::DisconnectUser {
            username: user.username.clone(),
            reason: reason.clone(),
        });
        self.ledger.audit(&AuditEntry {
            user_id: Some(user.id),
            username: Some(user.username.clone()),
            action: "disconnect-request".into(),
            reason,
            detail: None,
        })?;
        let sessions = self.ledger.active_sessions(user.id)?.len();
        Ok(json!({"user": user.username, "active-sessions": sessions, "disconnecting": true}))
    }

    pub(super) fn suspend(&mut self, a: &command::SuspendArgs) -> Result<Value, EngineError> {
        let mut user = self.user(&a.user)?;
        if user.state == UserState::Suspended {
            return Ok(json!({"user": user.username, "state": "suspended", "changed": false}));
        }
        let reason = a.reason.clone().unwrap_or_else(|| "operator".into());
        user.state = UserState::Suspended;
        self.ledger.update_user(&user)?;
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
        self.ledger.audit(&AuditEntry {
            user_id: Some(user.id),
            username: Some(user.username.clone()),
            action: "suspend".into(),
            reason,
            detail: None,
        })?;
        Ok(json!({"user": user.username, "state": "suspended", "changed": true}))
    }

    pub(super) fn resume(&mut self, a: &command::UserArg) -> Result<Value, EngineError> {
        let mut user = self.user(&a.user)?;
        if user.state != UserState::Suspended {
            return Ok(
                json!({"user": user.username, "state": user.state.as_str(), "changed": false}),
            );
        }
        user.state = if self.ledger.open_grants(user.id)?.is_empty() {
            UserState::Expired
        } else {
            UserState::Active
        };
        self.ledger.update_user(&user)?;
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
}
