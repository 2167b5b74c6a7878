//! Payments: a confirmed payment sells a plan to the payer's user (created or extended).

use super::decision::*;
use super::*;

impl Cx<'_> {
    pub(super) fn payment(&mut self, a: &command::PaymentArgs) -> Result<Value, EngineError> {
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
        // It is shown to operators and sent to the cloud: a NUL or a line break in it would cut
        // or forge lines in logs, tables and CSV exports.
        if reference.chars().any(char::is_control) {
            return Err(bad(format!(
                "reference {:?} holds a control character",
                a.reference
            )));
        }
        let mac = parse_mac(&a.mac)?;
        check_ip(&a.ip)?;
        let phone = a.phone.as_deref().map(normalise_phone).transpose()?;
        if let Some(p) = self.ledger.payment_by_ref(&provider, reference)? {
            // M-Pesa repeats callbacks: the same receipt buys once.
            let user = self.ledger.user_by_id(p.user_id)?;
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
            Some(p) => self.ledger.user_by_phone(p)?,
            None => None,
        };
        let (mut user, created) = match existing {
            Some(u) => (u, false),
            None => {
                let username = match (&self.settings.payment_username, &phone) {
                    (PaymentUsername::Phone, Some(p))
                        if self
                            .ledger
                            .user_by_name(p.trim_start_matches('+'))?
                            .is_none() =>
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
        let grant = self.sell_plan(
            &mut user,
            &plan,
            format!("payment:{provider}:{reference}"),
            mac.as_ref().map(|m| (m, &a.ip)),
        )?;
        let payment = self.ledger.insert_payment(&NewPayment {
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
        let mut r = self.sale_reply(&user, grant, created)?;
        r["duplicate"] = json!(false);
        r["payment"] = json!(payment);
        Ok(r)
    }
}
