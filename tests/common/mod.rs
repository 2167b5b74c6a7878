//! A site on a fake clock: the real engine and the real SQLite schema, driven command by command.
#![allow(dead_code)]

pub mod daemon;
pub mod mosquitto;
#[cfg(feature = "demo")]
pub mod sim;

/// Waits (real time) until `f` holds, or fails the test with `what`.
pub async fn until(what: &str, secs: u64, f: impl FnMut() -> bool) {
    until_every(what, secs, std::time::Duration::from_millis(25), f).await
}

/// [`until`], looking every `every`: for a check that is itself costly (it starts a process),
/// so that the waiting test does not take the CPU from the daemon it waits for.
pub async fn until_every(
    what: &str,
    secs: u64,
    every: std::time::Duration,
    mut f: impl FnMut() -> bool,
) {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !f() {
        assert!(
            std::time::Instant::now() < end,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(every).await;
    }
}

/// A command that runs one of our binaries. Under qemu-user (scripts/test-qemu.sh) a foreign
/// binary cannot be exec'd directly (no binfmt here): HOTSPOT_EDGE_TEST_RUNNER, e.g.
/// "qemu-mipsel -cpu 24Kc", is put in front of it.
pub fn our_binary(path: &str) -> std::process::Command {
    match std::env::var("HOTSPOT_EDGE_TEST_RUNNER") {
        Ok(r) if !r.trim().is_empty() => {
            let mut words = r.split_whitespace();
            let mut c = std::process::Command::new(words.next().unwrap_or_default());
            c.args(words).arg(path);
            c
        }
        _ => std::process::Command::new(path),
    }
}

use hotspot_edge::clock::{FakeClock, TimePolicy};
use hotspot_edge::engine::command::*;
use hotspot_edge::engine::{Command, Engine, SeededEntropy, Settings};
use hotspot_edge::store::{Applied, ApplyError, Store};
use serde_json::Value;

/// 2026-01-01T00:00:00Z: the "build time" of these tests.
pub const BUILD_MS: i64 = 1_767_225_600_000;
/// 2026-11-21T10:00:00Z
pub const NOW_MS: i64 = 1_795_255_200_000;
pub const SEC: i64 = 1000;
pub const MIN: i64 = 60 * SEC;
pub const HOUR: i64 = 60 * MIN;

pub fn policy() -> TimePolicy {
    TimePolicy {
        build_ms: BUILD_MS,
        max_offline_charge_ms: 7 * 24 * HOUR,
    }
}

pub struct Site {
    pub store: Store,
    pub clock: FakeClock,
    pub engine: Engine,
    pub rng: SeededEntropy,
}

impl Site {
    pub fn new(wall_ms: i64) -> Site {
        Self::with_settings(wall_ms, Settings::default())
    }

    pub fn with_settings(wall_ms: i64, settings: Settings) -> Site {
        Site {
            store: Store::open_in_memory(policy()).expect("in-memory store"),
            clock: FakeClock::new(wall_ms),
            engine: Engine::new(settings),
            rng: SeededEntropy(0x5eed),
        }
    }

    pub fn apply_id(&mut self, id: Option<&str>, cmd: Command) -> Result<Applied, ApplyError> {
        self.store.apply(
            &self.engine,
            &self.clock,
            &mut self.rng,
            Source::Cli,
            id,
            &cmd,
        )
    }

    pub fn apply(&mut self, cmd: Command) -> Result<Value, ApplyError> {
        self.apply_id(None, cmd).map(|a| a.result)
    }

    pub fn ok(&mut self, cmd: Command) -> Value {
        match self.apply(cmd) {
            Ok(v) => v,
            Err(e) => panic!("command refused: {e}"),
        }
    }

    pub fn tick(&mut self) -> Value {
        self.ok(Command::Tick)
    }

    pub fn plan(&mut self, id: &str, time: &str, validity: &str, data: Option<&str>, devices: u32) {
        self.ok(Command::PlansUpsert(plan_args(
            id, time, validity, data, devices,
        )));
    }

    pub fn pay(&mut self, reference: &str, phone: &str, plan: &str, mac: Option<&str>) -> Value {
        self.ok(Command::PaymentConfirmed(payment_args(
            reference, phone, plan, mac,
        )))
    }

    pub fn login(&mut self, user: &str, nas: &str, mac: &str) -> Result<Value, ApplyError> {
        self.apply(Command::SessionStarted(SessionStartArgs {
            user: user.into(),
            nas_session_id: nas.into(),
            mac: Some(mac.into()),
            ip: Some("10.5.50.10".into()),
        }))
    }

    pub fn logout(&mut self, nas: &str) -> Value {
        self.ok(Command::SessionEnded(SessionEndArgs {
            nas_session_id: nas.into(),
            reason: "user-request".into(),
            bytes_in: None,
            bytes_out: None,
        }))
    }

    pub fn usage(&mut self, counters: &[(&str, u64, u64)]) -> Value {
        self.ok(Command::SessionUsage(UsageArgs {
            sessions: counters
                .iter()
                .map(|(n, i, o)| SessionCounters {
                    nas_session_id: (*n).into(),
                    bytes_in: *i,
                    bytes_out: *o,
                })
                .collect(),
        }))
    }

    pub fn user(&self, name: &str) -> Value {
        let now = self.store.now(&self.clock).unwrap();
        self.store
            .view_user(&now, name)
            .unwrap()
            .expect("user exists")
    }

    pub fn state(&self, name: &str) -> String {
        self.user(name)["state"].as_str().unwrap().to_string()
    }

    pub fn time_left(&self, name: &str) -> i64 {
        self.user(name)["time-left-ms"].as_i64().unwrap()
    }

    pub fn events(&self) -> Vec<Value> {
        self.store.view_outbox("test-site", 0, 0).unwrap()
    }

    pub fn events_of(&self, ty: &str) -> Vec<Value> {
        self.events()
            .into_iter()
            .filter(|e| e["type"] == ty)
            .collect()
    }

    /// Advances real time in steps of `step` ms, ticking after each, until `name` expires;
    /// returns the timeline instant (ms after the call) at which the expiry was seen.
    pub fn run_until_expired(&mut self, name: &str, step: i64, limit: i64) -> i64 {
        let mut waited = 0;
        while waited <= limit {
            self.tick();
            if self.state(name) == "expired" {
                return waited;
            }
            self.clock.advance(step);
            waited += step;
        }
        panic!("{name} did not expire within {limit} ms");
    }
}

/// A plan of 1,000 KES (2M/5M) as the CLI would upsert it.
pub fn plan_args(
    id: &str,
    time: &str,
    validity: &str,
    data: Option<&str>,
    devices: u32,
) -> PlanArgs {
    // Through the wire form, as the cloud sends it: the strings are checked where they are read.
    serde_json::from_value(serde_json::json!({
        "id": id,
        "name": format!("plan {id}"),
        "price": 1000,
        "currency": "KES",
        "time": time,
        "validity": validity,
        "data": data,
        "rate-limit": "2M/5M",
        "devices": devices,
        "source": "cli",
    }))
    .unwrap_or_else(|e| panic!("plan {id}: {e}"))
}

/// An M-Pesa payment for `plan` at its price.
pub fn payment_args(reference: &str, phone: &str, plan: &str, mac: Option<&str>) -> PaymentArgs {
    PaymentArgs {
        provider: "mpesa".into(),
        reference: reference.into(),
        phone: Some(phone.into()),
        plan: plan.into(),
        mac: mac.map(String::from),
        ..Default::default()
    }
}
