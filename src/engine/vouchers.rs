//! Vouchers: generated, imported, redeemed (a plan sold to a user) and revoked.

use super::decision::*;
use super::*;

impl Cx<'_> {
    pub(super) fn insert_unused_voucher(
        &mut self,
        code: String,
        plan: &PlanId,
        batch: &str,
        expires_at: Option<i64>,
    ) -> LResult<()> {
        self.ledger.insert_voucher(&Voucher {
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

    pub(super) fn generate(&mut self, a: &command::GenerateArgs) -> Result<Value, EngineError> {
        if a.count == 0 || a.count > MAX_VOUCHER_BATCH {
            return Err(bad(format!(
                "count must be 1 to {MAX_VOUCHER_BATCH}, not {}",
                a.count
            )));
        }
        let length = a.length.unwrap_or(self.settings.voucher_length);
        if !(VOUCHER_MIN_LEN..=VOUCHER_MAX_LEN).contains(&length) {
            return Err(bad(format!(
                "length must be {VOUCHER_MIN_LEN} to {VOUCHER_MAX_LEN}, not {length}"
            )));
        }
        let expiry = match &a.expires_in {
            Some(t) => Some(parse_span(t).map_err(bad)?),
            None => self.settings.voucher_expiry,
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
            if seen.contains(&code) || self.ledger.voucher(&code)?.is_some() {
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

    pub(super) fn redeem(&mut self, a: &command::RedeemArgs) -> Result<Value, EngineError> {
        let code = VoucherCode::parse(&a.code).map_err(bad)?;
        let mac = parse_mac(&a.mac)?;
        check_ip(&a.ip)?;
        let Some(mut v) = self.ledger.voucher(code.as_str())? else {
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
                let (username, password) = match self.settings.voucher_username {
                    VoucherUsername::Code => (code.to_string(), code.to_string()),
                    VoucherUsername::Generated => (self.fresh_username()?, self.password()),
                };
                if self.ledger.user_by_name(&username)?.is_some() {
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
        let grant = self.sell_plan(
            &mut user,
            &plan,
            format!("voucher:{code}"),
            mac.as_ref().map(|m| (m, &a.ip)),
        )?;
        v.state = VoucherState::Redeemed;
        v.redeemed_at = Some(self.now.wall_ms);
        v.user_id = Some(user.id);
        v.grant_id = Some(grant);
        self.ledger.update_voucher(&v)?;
        self.emit(Event::VoucherRedeemed {
            code: code.to_string(),
            user: user.username.clone(),
            grant,
        });
        self.sale_reply(&user, grant, created)
    }

    pub(super) fn revoke(&mut self, a: &command::RevokeArgs) -> Result<Value, EngineError> {
        if a.codes.is_empty() {
            return Err(bad("no voucher codes given"));
        }
        let mut revoked = Vec::new();
        for raw in &a.codes {
            let code = VoucherCode::parse(raw).map_err(bad)?;
            let Some(mut v) = self.ledger.voucher(code.as_str())? else {
                return reject(RejectCode::NotFound, format!("unknown voucher code {code}"));
            };
            match v.state {
                VoucherState::Unused => {
                    v.state = VoucherState::Revoked;
                    self.ledger.update_voucher(&v)?;
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

    pub(super) fn import_vouchers(
        &mut self,
        a: &command::ImportArgs,
    ) -> Result<Value, EngineError> {
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
            None => self.settings.voucher_expiry,
        };
        let expires_at = expiry.map(|e| self.now.timeline_ms + e.ms());
        let mut seen = std::collections::HashSet::new();
        for (i, raw) in a.codes.iter().enumerate() {
            let code = VoucherCode::parse(raw).map_err(|e| bad(format!("codes[{i}]: {e}")))?;
            if !seen.insert(code.to_string()) {
                return Err(bad(format!("codes[{i}]: {code} is given twice")));
            }
            if self.ledger.voucher(code.as_str())?.is_some() {
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
}
