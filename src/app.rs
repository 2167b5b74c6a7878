//! What every entry point does with a loaded config: open the store and bring the plans of the
//! config into it. Shared by the CLI commands and the daemon.

use crate::clock::{Clock, TimePolicy};
use crate::config::Config;
use crate::domain::PlanSource;
use crate::engine::command::{PlanArgs, PlanIdArg, Source};
use crate::engine::{Command, Engine, OsEntropy, Settings};
use crate::store::{ApplyError, OpenOptions, Store};

pub fn open_options(config: &Config, check: bool) -> OpenOptions {
    OpenOptions {
        busy_timeout: config.store.busy_timeout.duration(),
        check,
        policy: TimePolicy::new(config.enforcement.max_offline_charge.ms()),
    }
}

/// The engine's settings, from `[users]` and `[vouchers]`.
pub fn engine_settings(c: &Config) -> Settings {
    Settings {
        payment_username: c.users.payment_username,
        voucher_username: c.users.voucher_username,
        password_length: c.users.password_length,
        bind_mac: c.users.bind_mac,
        voucher_length: c.vouchers.length,
        voucher_expiry: c.vouchers.unredeemed_expiry,
    }
}

pub fn engine(config: &Config) -> Engine {
    Engine::new(engine_settings(config))
}

/// Opens the store and makes its plans match `[[plans]]` (config-owned plans only: plans pushed
/// by the cloud or added by the CLI are left alone).
pub fn open_store(config: &Config, clock: &dyn Clock, check: bool) -> Result<Store, ApplyError> {
    let mut store = Store::open(&config.store.path, &open_options(config, check))?;
    store.set_job_max_attempts(config.enforcement.job_max_attempts)?;
    sync_config_plans(&mut store, config, clock)?;
    Ok(store)
}

/// Upserts the config's plans and takes config plans no longer in the file off sale, all in one
/// transaction (this runs at every start and every CLI command; unchanged plans write nothing).
pub fn sync_config_plans(
    store: &mut Store,
    config: &Config,
    clock: &dyn Clock,
) -> Result<(), ApplyError> {
    let wanted = config.plans();
    let mut cmds: Vec<Command> = wanted
        .iter()
        .map(|p| Command::PlansUpsert(PlanArgs::from_plan(p, PlanSource::Config)))
        .collect();
    for id in store.config_plan_ids()? {
        if !wanted.iter().any(|p| p.id.as_str() == id) {
            cmds.push(Command::PlansRemove(PlanIdArg { id }));
        }
    }
    let refs: Vec<(Option<&str>, &Command)> = cmds.iter().map(|c| (None, c)).collect();
    let results = store.apply_many(
        &engine(config),
        clock,
        &mut OsEntropy,
        Source::Config,
        &refs,
    )?;
    match results.into_iter().find_map(Result::err) {
        Some(r) => Err(ApplyError::Rejected(r)),
        None => Ok(()),
    }
}
