//! Plans: upserted from the config, the cloud or the CLI, and taken off sale.

use super::decision::*;
use super::*;

/// The plan `a` describes, or why it cannot be sold. Pure: `check-config` runs it on every
/// `[[plans]]`, so a config it accepts is never refused at start.
pub fn plan_from_args(a: &command::PlanArgs) -> Result<Plan, EngineError> {
    let id = a.id.clone();
    if id.as_str() == "manual" {
        return Err(bad("plan id \"manual\" is reserved for manual extensions"));
    }
    if let Some(r) = &a.rate_limit {
        check_rate_limit(r).map_err(bad)?;
    }
    let time = a.time;
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
        currency: a.currency.clone(),
        time,
        validity: a.validity.unwrap_or(Validity::Wall),
        data: a.data,
        rate_limit: a.rate_limit.clone(),
        devices,
        idle_timeout: match a.idle_timeout {
            Some(s) if s.ms() < 1000 => return Err(bad("idle-timeout must be at least 1s")),
            t => t,
        },
    };
    Ok(plan)
}

impl Cx<'_> {
    pub(super) fn upsert_plan(&mut self, a: &command::PlanArgs) -> Result<Value, EngineError> {
        let plan = plan_from_args(a)?;
        let source = a.source.unwrap_or(PlanSource::Cli).as_str();
        let changed = match self.ledger.plan(plan.id.as_str())? {
            Some(old) => !(old.active && old.plan == plan && old.source == source),
            None => true,
        };
        if changed {
            self.ledger.put_plan(&plan, source, true)?;
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
