//! Plans: upserted from the config, the cloud or the CLI, and taken off sale.

use super::decision::*;
use super::*;

impl Cx<'_> {
    pub(super) fn upsert_plan(&mut self, a: &command::PlanArgs) -> Result<Value, EngineError> {
        let id = PlanId::parse(&a.id).map_err(bad)?;
        if id.as_str() == "manual" {
            return Err(bad("plan id \"manual\" is reserved for manual extensions"));
        }
        if let Some(r) = &a.rate_limit {
            check_rate_limit(r).map_err(bad)?;
        }
        let time = parse_span(&a.time).map_err(bad)?;
        if time.ms() <= 0 {
            return Err(bad("time must be more than 0s"));
        }
        let devices = a.devices.unwrap_or(1);
        if devices == 0 {
            return Err(bad("devices must be at least 1"));
        }
        if a.price > MAX_MONEY {
            return Err(bad(format!(
                "price {} is out of range (at most {MAX_MONEY})",
                a.price
            )));
        }
        if a.name.trim().is_empty() {
            return Err(bad("name must not be empty"));
        }
        let plan = Plan {
            id,
            name: a.name.clone(),
            price: a.price,
            currency: Currency::parse(&a.currency).map_err(bad)?,
            time,
            validity: a
                .validity
                .as_deref()
                .map(str::parse)
                .transpose()
                .map_err(bad)?
                .unwrap_or(Validity::Wall),
            data: a
                .data
                .as_deref()
                .map(parse_bytes)
                .transpose()
                .map_err(bad)?,
            rate_limit: a.rate_limit.clone(),
            devices,
            idle_timeout: match a.idle_timeout.as_deref().map(parse_span).transpose() {
                Ok(Some(s)) if s.ms() < 1000 => {
                    return Err(bad("idle-timeout must be at least 1s"))
                }
                Ok(t) => t,
                Err(e) => return Err(bad(e)),
            },
        };
        let source = a.source.clone().unwrap_or_else(|| "cli".into());
        if !["config", "cloud", "cli"].contains(&source.as_str()) {
            return Err(bad(format!(
                "bad plan source {source:?}: config, cloud or cli"
            )));
        }
        let changed = match self.ledger.plan(plan.id.as_str())? {
            Some(old) => !(old.active && old.plan == plan && old.source == source),
            None => true,
        };
        if changed {
            self.ledger.put_plan(&plan, &source, true)?;
            self.emit(Event::PlanUpserted {
                plan: serde_json::to_value(&plan).unwrap_or_default(),
            });
            self.job(Job::SyncPlan {
                plan: plan.id.to_string(),
            });
        }
        Ok(json!({"plan": plan.id.as_str(), "changed": changed}))
    }

    pub(super) fn remove_plan(&mut self, a: &command::PlanIdArg) -> Result<Value, EngineError> {
        let p = self.plan(&a.id)?;
        if !p.active {
            return Ok(json!({"plan": a.id, "changed": false}));
        }
        // Kept, not deleted: grants already sold still refer to it.
        self.ledger.put_plan(&p.plan, &p.source, false)?;
        self.emit(Event::PlanRemoved { plan: a.id.clone() });
        self.job(Job::SyncPlan { plan: a.id.clone() });
        Ok(json!({"plan": a.id, "changed": true}))
    }
}
