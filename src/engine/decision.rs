//! One decision in progress ([`Cx`]): the ledger, `now`, the entropy and the outcome being
//! built, with the steps every command family shares (users, grants, settling, expiry).

use super::*;

/// One decision in progress.
pub(super) struct Cx<'a> {
    pub(super) settings: &'a Settings,
    pub(super) ledger: &'a mut dyn Ledger,
    pub(super) now: Now,
    pub(super) rng: &'a mut dyn Entropy,
    pub(super) out: Outcome,
    pub(super) job_set: std::collections::HashSet<Job>,
}

pub(super) fn bad(message: impl Into<String>) -> EngineError {
    EngineError::Rejected(Rejection {
        code: RejectCode::BadArgs,
        message: message.into(),
    })
}

pub(super) fn parse_mac(m: &Option<String>) -> Result<Option<Mac>, EngineError> {
    m.as_deref().map(Mac::parse).transpose().map_err(bad)
}

pub(super) fn check_ip(ip: &Option<String>) -> Result<(), EngineError> {
    match ip {
        Some(ip) if ip.parse::<std::net::IpAddr>().is_err() => {
            Err(bad(format!("bad IP address {ip:?}")))
        }
        _ => Ok(()),
    }
}

/// Phone numbers as M-Pesa sends them: digits, optionally with a leading `+`, 7 to 15 digits.
pub(super) fn normalise_phone(p: &str) -> Result<String, EngineError> {
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
    pub(super) fn emit(&mut self, e: Event) {
        self.out.events.push(e);
    }

    pub(super) fn job(&mut self, j: Job) {
        // A set, not a scan: a tick that expires 10,000 users queues 20,000 jobs.
        if self.job_set.insert(j.clone()) {
            self.out.jobs.push(j);
        }
    }

    pub(super) fn random_string(&mut self, alphabet: &[u8], len: usize) -> String {
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

    pub(super) fn fresh_username(&mut self) -> Result<String, EngineError> {
        for _ in 0..50 {
            let name = self.random_string(NAME_ALPHABET, 6);
            if self.ledger.user_by_name(&name)?.is_none() {
                return Ok(name);
            }
        }
        Err(LedgerError("could not find a free user name in 50 tries".into()).into())
    }

    pub(super) fn password(&mut self) -> String {
        self.random_string(NAME_ALPHABET, self.settings.password_length)
    }

    pub(super) fn plan(&mut self, id: &str) -> Result<StoredPlan, EngineError> {
        match self.ledger.plan(id)? {
            Some(p) => Ok(p),
            None => reject(RejectCode::NotFound, format!("unknown plan {id:?}")),
        }
    }

    pub(super) fn user(&mut self, name: &str) -> Result<User, EngineError> {
        match self.ledger.user_by_name(name)? {
            Some(u) => Ok(u),
            None => reject(RejectCode::NotFound, format!("unknown user {name:?}")),
        }
    }

    pub(super) fn create_user(
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
            mac: if self.settings.bind_mac { mac } else { None },
            state: UserState::Active,
            created_at: self.now.wall_ms,
        };
        u.id = self.ledger.insert_user(&u)?;
        self.emit(Event::UserCreated {
            user: u.username.clone(),
            phone: u.phone.clone(),
            mac: u.mac.as_ref().map(|m| m.to_string()),
        });
        Ok(u)
    }

    // ----- grant lifecycle -------------------------------------------------------------------

    pub(super) fn start_grant(
        &mut self,
        user: &User,
        g: &mut Grant,
        at: i64,
        metering: bool,
    ) -> LResult<()> {
        g.state = GrantState::Running;
        g.started_at = Some(at);
        if g.validity == Validity::Uptime && metering {
            g.meter_since = Some(at);
        }
        g.deadline = grants::deadline(g);
        self.ledger.update_grant(g)?;
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

    pub(super) fn end_grant(
        &mut self,
        user: &User,
        g: &mut Grant,
        at: i64,
        reason: &str,
    ) -> LResult<()> {
        if let Some(m) = g.meter_since.take() {
            g.used_ms = (g.used_ms + (at - m).max(0)).min(g.time_ms);
        }
        g.state = GrantState::Ended;
        g.ended_at = Some(at);
        g.end_reason = Some(reason.to_string());
        g.deadline = None;
        self.ledger.update_grant(g)?;
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
    pub(super) fn settle(&mut self, user: &mut User) -> LResult<()> {
        let metering = !self.ledger.active_sessions(user.id)?.is_empty();
        let mut ended_any = false;
        loop {
            let open = self.ledger.open_grants(user.id)?;
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
        if ended_any
            && user.state == UserState::Active
            && self.ledger.open_grants(user.id)?.is_empty()
        {
            self.expire(user, "time")?;
        }
        Ok(())
    }

    pub(super) fn expire(&mut self, user: &mut User, why: &str) -> LResult<()> {
        user.state = UserState::Expired;
        self.ledger.update_user(user)?;
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
        self.ledger.audit(&AuditEntry {
            user_id: Some(user.id),
            username: Some(user.username.clone()),
            action: "expire".into(),
            reason: why.into(),
            detail: None,
        })
    }

    /// Sells `plan` to `user` (a payment, a voucher): a grant of what the plan gives, and the
    /// paying device, if known, logged in (its grant starts now).
    pub(super) fn sell_plan(
        &mut self,
        user: &mut User,
        plan: &Plan,
        source: String,
        device: Option<(&Mac, &Option<String>)>,
    ) -> LResult<GrantId> {
        let grant = self.add_grant(
            user,
            &plan.id,
            plan.validity,
            plan.time.ms(),
            plan.data.map(|d| d.0),
            source,
            device.is_some(),
        )?;
        if let Some((mac, ip)) = device {
            self.job(Job::LoginDevice {
                username: user.username.clone(),
                mac: mac.to_string(),
                ip: ip.clone(),
            });
        }
        Ok(grant)
    }

    /// The reply to a sale: the user as it is now, the grant, and the password of a user the
    /// sale created (the only time it is shown).
    pub(super) fn sale_reply(
        &mut self,
        user: &User,
        grant: GrantId,
        created: bool,
    ) -> Result<Value, EngineError> {
        let mut r = self.user_summary(user)?;
        r["grant"] = json!(grant);
        r["created"] = json!(created);
        if created {
            r["password"] = json!(user.password);
        }
        Ok(r)
    }

    /// Adds what was bought to a user. It starts now when the device is present (or a session
    /// is active) and nothing is running; behind a running grant it waits, which extends the
    /// user from the current end.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn add_grant(
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
        let id = self.ledger.insert_grant(&NewGrant {
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
            self.ledger.update_user(user)?;
        }
        let open = self.ledger.open_grants(user.id)?;
        let metering = !self.ledger.active_sessions(user.id)?.is_empty();
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

    pub(super) fn user_summary(&mut self, user: &User) -> Result<Value, EngineError> {
        let open = self.ledger.open_grants(user.id)?;
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
}
