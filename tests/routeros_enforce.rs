//! The daemon enforcing on a RouterOS hotspot: the real client over real TCP against the
//! simulator, the real store on a temp file, the daemon in-process.
#![cfg(feature = "demo")]

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::until;
use hotspot_edge::clock::{Clock, FakeClock, SystemClock};
use hotspot_edge::config;
use hotspot_edge::daemon::Daemon;
use hotspot_edge::engine::command::*;
use hotspot_edge::engine::{Command, OsEntropy};
use hotspot_edge::routeros::meaning;
use hotspot_edge::routeros::sim::model::PrintForms;
use hotspot_edge::routeros::sim::{Model, Simulator};
use serde_json::Value;

const NOW_MS: i64 = 1_795_255_200_000;
const MIN: i64 = 60_000;

struct Rig {
    sim: Simulator,
    /// Dropped at `stop`: the store closes once the last handle is gone.
    daemon: Daemon,
    running: common::daemon::Running,
    _dir: tempfile::TempDir,
}

const PLANS: &str = r#"
[[plans]]
id = "short"
name = "3 seconds"
price = 100
currency = "KES"
time = "3s"

[[plans]]
id = "hour"
name = "1 hour"
price = 1000
currency = "KES"
time = "1h"

[[plans]]
id = "up1h"
name = "1 connected hour"
price = 1000
currency = "KES"
time = "1h"
validity = "uptime"

[[plans]]
id = "data"
name = "100 MB"
price = 1000
currency = "KES"
time = "30d"
data = "100MB"
devices = 2
"#;

async fn rig(clock: Arc<dyn Clock>) -> Rig {
    rig_with(clock, "").await
}

/// The rig with more `[enforcement]` settings.
async fn rig_with(clock: Arc<dyn Clock>, enforcement: &str) -> Rig {
    rig_full(clock, enforcement, PrintForms::V7).await
}

/// The rig against a router that prints values in `forms`.
async fn rig_full(clock: Arc<dyn Clock>, enforcement: &str, forms: PrintForms) -> Rig {
    let mut model = Model::with_forms(forms);
    model.add_api_user("edge", "router-secret-1", "hotspot-edge");
    let sim = Simulator::start("127.0.0.1:0", model).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("router.pass");
    std::fs::write(&pw, "router-secret-1\n").unwrap();
    let text = format!(
        r#"[site]
id = "rig"
[store]
path = "{}"
[log]
level = "warn"
[enforcement]
usage-poll = "1s"
{enforcement}
[router]
kind = "routeros"
address = "{}"
username = "edge"
password-file = "{}"
hotspot-server = "hotspot1"
allow-plaintext = true
command-timeout = "1s"
connect-timeout = "1s"
probe-interval = "1s"
{PLANS}"#,
        dir.path().join("h.db").display(),
        sim.addr,
        pw.display()
    );
    let config = config::parse(&text, "rig.toml").unwrap().config;
    let running = common::daemon::start(config, clock).await;
    let daemon = running.daemon.clone();
    Rig {
        sim,
        daemon,
        running,
        _dir: dir,
    }
}

impl Rig {
    async fn apply(&self, cmd: Command) -> Result<Value, String> {
        common::daemon::apply(&self.daemon.site, cmd).await
    }

    async fn pay(&self, reference: &str, plan: &str, mac: &str, ip: &str) -> String {
        let phone = format!("2547000{}", &reference[1..]);
        common::daemon::pay(&self.daemon.site, reference, &phone, plan, Some((mac, ip))).await
    }

    /// The site's status, as `status` and the heartbeat show it.
    async fn status(&self) -> Value {
        self.daemon
            .site
            .store()
            .call(|s| {
                let now = s.now(&SystemClock).unwrap();
                s.status("rig", &now).unwrap()
            })
            .await
            .unwrap()
    }

    async fn user(&self, name: &str) -> Value {
        common::daemon::user(&self.daemon.site, name).await
    }

    async fn events(&self, ty: &str) -> Vec<Value> {
        common::daemon::events(&self.daemon.site, "rig", ty).await
    }

    async fn audit(&self) -> Vec<(Option<String>, String, String)> {
        self.daemon
            .site
            .store()
            .call(|s| {
                let conn = rusqlite::Connection::open(s.path()).unwrap();
                let mut st = conn
                    .prepare("SELECT username, action, reason FROM audit ORDER BY id")
                    .unwrap();
                st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .unwrap()
                    .collect::<Result<Vec<_>, _>>()
                    .unwrap()
            })
            .await
            .unwrap()
    }

    fn active_users(&self) -> Vec<String> {
        self.sim
            .model()
            .active
            .rows
            .iter()
            .map(|r| r.get("user").unwrap_or("").to_string())
            .collect()
    }

    fn router_user(&self, name: &str) -> Option<std::collections::BTreeMap<String, String>> {
        self.sim
            .model()
            .users
            .by("name", name)
            .map(|r| r.fields.clone())
    }

    /// (bytes in, bytes out) of the user's sessions as written in the store, oldest first.
    async fn stored_counters(&self, user: &str) -> Vec<(i64, i64)> {
        let user = user.to_string();
        self.daemon
            .site
            .store()
            .call(move |s| {
                let conn = rusqlite::Connection::open(s.path()).unwrap();
                let mut st = conn
                    .prepare(
                        "SELECT s.bytes_in, s.bytes_out FROM sessions s JOIN users u
                         ON u.id = s.user_id WHERE u.username = ?1 ORDER BY s.id",
                    )
                    .unwrap();
                st.query_map([user], |r| Ok((r.get(0)?, r.get(1)?)))
                    .unwrap()
                    .collect::<Result<Vec<_>, _>>()
                    .unwrap()
            })
            .await
            .unwrap()
    }

    async fn stop(self) {
        let Rig {
            daemon,
            running,
            sim,
            _dir,
        } = self;
        drop(daemon);
        running.stop().await;
        drop((sim, _dir));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_lifecycle_payment_login_expiry_disconnect() {
    lifecycle(PrintForms::V7).await;
}

/// The same against a router that prints `yes`/`no`, `1d00:00:00` and every default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_lifecycle_against_routeros_6_print_forms() {
    lifecycle(PrintForms::V6).await;
}

/// The router user's `disabled`, read by meaning (`true`/`yes`).
fn disabled(u: &std::collections::BTreeMap<String, String>) -> bool {
    meaning::printed_bool(u.get("disabled").map(String::as_str)).unwrap()
}

async fn lifecycle(forms: PrintForms) {
    let r = rig_full(Arc::new(SystemClock), "", forms).await;
    let user = r
        .pay("R1", "short", "AA:BB:CC:00:00:01", "10.5.50.11")
        .await;
    until("the device is logged in on the router", 5, || {
        r.active_users() == [user.clone()]
    })
    .await;
    let ru = r.router_user(&user).unwrap();
    assert_eq!(ru.get("profile").map(String::as_str), Some("short"));
    assert_eq!(
        ru.get("comment").map(String::as_str),
        Some("managed by hotspot-edge")
    );
    assert!(!disabled(&ru), "{ru:?}");
    // RouterOS prints what it stores, not what was written: the daemon wrote `disabled=no`.
    let printed_disabled = match forms {
        PrintForms::V7 => "false",
        PrintForms::V6 => "no",
    };
    assert_eq!(
        ru.get("disabled").map(String::as_str),
        Some(printed_disabled)
    );
    assert_eq!(
        r.sim
            .model()
            .profiles
            .by("name", "short")
            .unwrap()
            .get("comment"),
        Some("managed by hotspot-edge")
    );
    assert_eq!(r.sim.model().cookies.rows.len(), 1);
    let paid_at = Instant::now();
    until("the device is cut off after 3 s", 8, || {
        r.active_users().is_empty()
    })
    .await;
    let took = paid_at.elapsed();
    assert!(
        took >= Duration::from_millis(2500),
        "cut off early, after {took:?}"
    );
    until("the user is disabled and the cookie removed", 3, || {
        disabled(&r.router_user(&user).unwrap()) && r.sim.model().cookies.rows.is_empty()
    })
    .await;
    assert_eq!(
        r.sim
            .model()
            .device_returns("AA:BB:CC:00:00:01", "10.5.50.11"),
        None,
        "no way back in"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let audit = r.audit().await;
    assert!(
        audit.iter().any(|(u, a, why)| u.as_deref() == Some(&user)
            && a == "disconnect"
            && why == "expired"),
        "{audit:?}"
    );
    assert_eq!(r.events("user.expired").await.len(), 1);
    assert_eq!(r.events("session.started").await.len(), 1);
    let ended = r.events("session.ended").await;
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0]["payload"]["reason"], "expired");
    assert_eq!(r.user(&user).await["state"], "expired");
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_with_controlled_time_is_exact() {
    let clock = FakeClock::new(NOW_MS);
    let r = rig(Arc::new(clock.clone())).await;
    let user = r.pay("R1", "hour", "AA:BB:CC:00:00:01", "10.5.50.11").await;
    until("logged in", 5, || r.active_users() == [user.clone()]).await;
    clock.advance(60 * MIN - 1);
    r.daemon.site.wake();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        r.active_users(),
        std::slice::from_ref(&user),
        "1 ms before the end it is still paid for"
    );
    clock.advance(1);
    r.daemon.site.wake();
    until("cut off at the hour", 3, || r.active_users().is_empty()).await;
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uptime_grant_pauses_while_the_device_is_offline() {
    let clock = FakeClock::new(NOW_MS);
    let r = rig(Arc::new(clock.clone())).await;
    let user = r.pay("R1", "up1h", "AA:BB:CC:00:00:01", "10.5.50.11").await;
    until("logged in", 5, || r.active_users() == [user.clone()]).await;
    r.daemon.site.poll_nas();
    let u = user.clone();
    let started = async || r.events("session.started").await.len();
    let t0 = Instant::now();
    while started().await == 0 {
        assert!(t0.elapsed() < Duration::from_secs(5), "no session.started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    clock.advance(20 * MIN);
    // The device walks away: the router logs it out by itself (idle timeout).
    let id = r.sim.model().active.rows[0].id;
    r.sim.model().logout(id);
    r.daemon.site.poll_nas();
    let t0 = Instant::now();
    while r.events("session.ended").await.is_empty() {
        assert!(t0.elapsed() < Duration::from_secs(5), "no session.ended");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        r.events("session.ended").await[0]["payload"]["reason"],
        "nas-lost"
    );
    clock.advance(5 * 60 * MIN);
    r.daemon.site.wake();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let shown = r.user(&u).await;
    assert_eq!(shown["state"], "active");
    assert_eq!(
        shown["time-left-ms"],
        40 * MIN,
        "offline hours were not counted"
    );
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_quota_shared_by_two_devices() {
    let r = rig(Arc::new(SystemClock)).await;
    let g = r
        .apply(Command::VouchersGenerate(GenerateArgs {
            plan: "data".into(),
            count: 1,
            length: None,
            expires_in: None,
        }))
        .await
        .unwrap();
    let code = g["codes"][0].as_str().unwrap().to_string();
    r.apply(Command::VoucherRedeem(RedeemArgs {
        code: code.clone(),
        mac: None,
        ip: None,
        user: None,
    }))
    .await
    .unwrap();
    until("the user is on the router", 5, || {
        r.router_user(&code).is_some()
    })
    .await;
    r.sim
        .model()
        .portal_login(&code, &code, "AA:BB:CC:00:00:01", "10.5.50.11")
        .unwrap();
    r.sim
        .model()
        .portal_login(&code, &code, "AA:BB:CC:00:00:02", "10.5.50.12")
        .unwrap();
    r.sim
        .model()
        .traffic("AA:BB:CC:00:00:01", 10_000_000, 50_000_000);
    r.sim
        .model()
        .traffic("AA:BB:CC:00:00:02", 5_000_000, 20_000_000);
    r.daemon.site.poll_nas();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        r.active_users().len(),
        2,
        "85 MB of 100 MB: both still online"
    );
    assert_eq!(r.user(&code).await["data-left"], 15_000_000);
    r.sim.model().traffic("AA:BB:CC:00:00:02", 0, 16_000_000);
    r.daemon.site.poll_nas();
    until(
        "both devices cut off when the sum crosses 100 MB",
        5,
        || r.active_users().is_empty(),
    )
    .await;
    assert_eq!(r.user(&code).await["state"], "expired");
    let ended = r.events("grant.ended").await;
    assert_eq!(ended[0]["payload"]["reason"], "data");
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_down_for_a_while_then_everything_due_is_enforced_once() {
    let clock = FakeClock::new(NOW_MS);
    let r = rig(Arc::new(clock.clone())).await;
    let user = r.pay("R1", "hour", "AA:BB:CC:00:00:01", "10.5.50.11").await;
    until("logged in", 5, || r.active_users() == [user.clone()]).await;
    // The API goes away (connection dropped mid-session, then refused).
    r.sim.set_refuse(true);
    clock.advance(61 * MIN);
    r.daemon.site.wake();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        r.user(&user).await["state"],
        "expired",
        "expiry happens without the router"
    );
    assert_eq!(
        r.active_users(),
        std::slice::from_ref(&user),
        "the router could not be told yet"
    );
    r.sim.set_refuse(false);
    // Time goes on (retries are scheduled on the timeline, which the fake clock only moves here).
    let t0 = Instant::now();
    while !r.active_users().is_empty() {
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "not disconnected after the router came back"
        );
        clock.advance(1000);
        r.daemon.site.wake();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let disconnects = r
        .audit()
        .await
        .into_iter()
        .filter(|(_, a, _)| a == "disconnect")
        .count();
    assert_eq!(disconnects, 1, "applied once");
    let jobs = r
        .daemon
        .site
        .store()
        .call(|s| {
            let now = s.now(&SystemClock).unwrap();
            s.view_jobs(&now, None, 0).unwrap().to_json()
        })
        .await
        .unwrap();
    assert!(
        jobs.as_array()
            .unwrap()
            .iter()
            .all(|j| j["state"] != "failed"),
        "{jobs}"
    );
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_without_entitlement_are_disconnected_at_reconcile() {
    let r = rig(Arc::new(SystemClock)).await;
    // A user someone added on the router by hand, unknown to us.
    {
        let mut m = r.sim.model();
        let req = hotspot_edge::routeros::sim::model::Request::parse(&[
            "/ip/hotspot/user/add".to_string(),
            "=name=intruder".into(),
            "=password=x".into(),
        ]);
        m.handle(&req);
        m.portal_login("intruder", "x", "AA:BB:CC:00:00:09", "10.5.50.99")
            .unwrap();
    }
    r.daemon.site.poll_nas();
    until("the unknown user is disconnected", 5, || {
        r.active_users().is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let audit = r.audit().await;
    assert!(
        audit
            .iter()
            .any(|(u, a, why)| u.as_deref() == Some("intruder")
                && a == "disconnect"
                && why.contains("not-found")),
        "{audit:?}"
    );
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_fatal_and_stalls_only_cost_a_reconnect() {
    let r = rig(Arc::new(SystemClock)).await;
    let link = r.daemon.router_link.clone().unwrap();
    let user = r.pay("R1", "hour", "AA:BB:CC:00:00:01", "10.5.50.11").await;
    until("logged in", 5, || r.active_users() == [user.clone()]).await;
    let before = link.status().await.reconnects;
    r.sim.send_garbage();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    r.sim.send_fatal("too many sessions");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    r.sim.stall_for(Duration::from_secs(3));
    tokio::time::sleep(Duration::from_secs(4)).await;
    let t0 = Instant::now();
    while link.status().await.reachable != Some(true) {
        assert!(t0.elapsed() < Duration::from_secs(10), "never reconnected");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        link.status().await.reconnects > before,
        "the link was rebuilt"
    );
    // State intact, and the router is still managed: a second customer is served.
    assert_eq!(r.user(&user).await["state"], "active");
    let second = r.pay("R2", "hour", "AA:BB:CC:00:00:02", "10.5.50.12").await;
    until("the second device is logged in", 8, || {
        r.active_users().contains(&second)
    })
    .await;
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_users_and_two_thousand_sessions() {
    let r = rig(Arc::new(SystemClock)).await;
    let mut creds: Vec<(String, String)> = Vec::new();
    for chunk in 0..10u32 {
        let cmds: Vec<Command> = (0..1000u32)
            .map(|i| {
                let n = chunk * 1000 + i;
                Command::PaymentConfirmed(PaymentArgs {
                    provider: "mpesa".into(),
                    reference: format!("P{n:06}"),
                    phone: Some(format!("2547{n:08}")),
                    plan: "hour".into(),
                    ..Default::default()
                })
            })
            .collect();
        let results = r
            .daemon
            .site
            .store()
            .call(move |s| {
                let engine = hotspot_edge::engine::Engine::new(Default::default());
                let refs: Vec<_> = cmds.iter().map(|c| (None, c)).collect();
                s.apply_many(&engine, &SystemClock, &mut OsEntropy, Source::Cli, &refs)
                    .unwrap()
            })
            .await
            .unwrap();
        for res in results {
            let v = res.unwrap().result;
            creds.push((
                v["user"].as_str().unwrap().into(),
                v["password"].as_str().unwrap().into(),
            ));
        }
        r.daemon.site.wake();
    }
    until("10,000 users on the router", 600, || {
        r.sim.model().users.rows.len() == 10_000
    })
    .await;
    for (i, (u, p)) in creds.iter().take(2000).enumerate() {
        let mac = format!("02:00:00:00:{:02X}:{:02X}", i / 256, i % 256);
        r.sim
            .model()
            .portal_login(
                u,
                p,
                &mac,
                &format!("10.5.{}.{}", 50 + i / 250, 1 + i % 250),
            )
            .unwrap();
    }
    r.daemon.site.poll_nas();
    let t0 = Instant::now();
    loop {
        let status = r.status().await;
        if status["active-sessions"] == 2000 {
            assert_eq!(status["users"]["active"], 10_000);
            assert_eq!(status["jobs"]["failed"], 0);
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "sessions not all seen: {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        r.active_users().len(),
        2000,
        "nobody entitled was disconnected"
    );
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_expiries_is_cut_off_together_and_audited_once_each() {
    burst(PrintForms::V7, 40).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_expiries_against_routeros_6_print_forms() {
    burst(PrintForms::V6, 40).await;
}

/// More customers share the deadline than one tick settles: the tick runs in slices, and every
/// one of them is still cut off, disabled and audited once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_larger_than_a_tick_slice_is_cut_off_whole() {
    burst(PrintForms::V7, hotspot_edge::engine::TICK_SLICE + 150).await;
}

async fn burst(forms: PrintForms, n: usize) {
    let clock = FakeClock::new(NOW_MS);
    let r = rig_full(Arc::new(clock.clone()), "", forms).await;
    let mut users = Vec::new();
    for i in 0..n {
        let mac = format!("AA:BB:CC:00:{:02X}:{:02X}", i / 256, i % 256);
        users.push(
            r.pay(
                &format!("R{i}"),
                "hour",
                &mac,
                &format!("10.5.{}.{}", 51 + i / 250, 1 + i % 250),
            )
            .await,
        );
    }
    until(
        &format!("{n} devices logged in"),
        20 + n as u64 / 50,
        || r.active_users().len() == n,
    )
    .await;
    // Every session known to the store before the deadline (a poll records them; under
    // qemu-user one poll of 2,000 sessions takes seconds).
    let t0 = Instant::now();
    while r.events("session.started").await.len() < n {
        assert!(
            t0.elapsed() < Duration::from_secs(20 + n as u64 / 50),
            "the polls did not record {n} sessions"
        );
        r.daemon.site.poll_nas();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = r.sim.commands();
    clock.advance(60 * MIN);
    r.daemon.site.wake();
    until(&format!("all {n} cut off"), 10 + n as u64 / 100, || {
        r.active_users().is_empty()
    })
    .await;
    if n <= 40 {
        let used = r.sim.commands() - before;
        // One at a time this is ~9 commands per user (360); in bulk a handful plus probes.
        assert!(used < 60, "{used} API commands for a burst of {n}");
    }
    until(&format!("all {n} disabled, no cookie left"), 10, || {
        let m = r.sim.model();
        m.cookies.rows.is_empty() && m.users.rows.iter().all(|u| disabled(&u.fields))
    })
    .await;
    // The audit rows are written after the router work, slice by slice: wait for them (under
    // qemu-user a slice takes seconds), then check that each user has exactly one.
    let t0 = Instant::now();
    let disconnects = loop {
        let audit = r.audit().await;
        let mut disconnects: HashMap<String, usize> = HashMap::new();
        for (name, action, _) in audit {
            if let (Some(name), "disconnect") = (name, action.as_str()) {
                *disconnects.entry(name).or_default() += 1;
            }
        }
        if disconnects.len() >= n || t0.elapsed() > Duration::from_secs(10 + n as u64 / 50) {
            break disconnects;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let missing: Vec<&String> = users
        .iter()
        .filter(|u| !disconnects.contains_key(*u))
        .collect();
    let twice: Vec<(&String, &usize)> = disconnects.iter().filter(|(_, c)| **c != 1).collect();
    assert!(
        missing.is_empty() && twice.is_empty(),
        "{} of {n} users have no disconnect audit row (first: {:?}); more than one: {twice:?}",
        missing.len(),
        missing.first()
    );
    assert_eq!(r.events("session.ended").await.len(), n);
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_who_pays_again_while_the_router_is_down_stays_online() {
    let clock = FakeClock::new(NOW_MS);
    let r = rig(Arc::new(clock.clone())).await;
    let user = r.pay("R1", "hour", "AA:BB:CC:00:00:01", "10.5.50.11").await;
    until("logged in", 5, || r.active_users() == [user.clone()]).await;
    r.sim.set_refuse(true);
    clock.advance(61 * MIN);
    r.daemon.site.wake();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(r.user(&user).await["state"], "expired");
    // Same phone pays again: same user, entitled again, before the router heard of the expiry.
    let again = r
        .apply(Command::PaymentConfirmed(PaymentArgs {
            provider: "mpesa".into(),
            reference: "R2".into(),
            phone: Some("25470001".into()),
            plan: "hour".into(),
            ..Default::default()
        }))
        .await
        .unwrap();
    assert_eq!(again["user"], user.as_str());
    r.sim.set_refuse(false);
    until("the router is back and the jobs are done", 10, || {
        r.router_user(&user)
            .is_some_and(|u| u.get("disabled").map(String::as_str) == Some("false"))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(
        r.active_users(),
        std::slice::from_ref(&user),
        "a paying customer was cut off"
    );
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_are_written_every_usage_save_and_a_lost_session_keeps_its_traffic() {
    // The store is on flash: a time plan's counters wait for `usage-save`, and polls that change
    // nothing write nothing at all.
    let r = rig_with(Arc::new(SystemClock), "usage-save = \"1h\"").await;
    let mac = "AA:BB:CC:00:00:07";
    let user = r.pay("R7", "hour", mac, "10.5.50.17").await;
    until("the device is online and its session open", 5, || {
        r.active_users() == vec![user.clone()]
    })
    .await;
    r.daemon.site.poll_nas();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(r.events("session.started").await.len(), 1);
    r.sim.model().traffic(mac, 3_000_000, 40_000_000);
    let writes = r.daemon.site.store().writes();
    let before = writes.load(std::sync::atomic::Ordering::SeqCst);
    for _ in 0..3 {
        r.daemon.site.poll_nas();
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    assert_eq!(
        writes.load(std::sync::atomic::Ordering::SeqCst),
        before,
        "three polls of a time plan wrote to the store"
    );
    assert_eq!(r.stored_counters(&user).await, vec![(0, 0)]);
    // The device leaves (the router logs it out): the session is closed with what the router
    // last showed.
    r.sim.model().traffic(mac, 1_000_000, 2_000_000);
    r.daemon.site.poll_nas();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let id = r.sim.model().active.by("mac-address", mac).unwrap().id;
    r.sim.model().logout(id).unwrap();
    r.daemon.site.poll_nas();
    let mut ended = Vec::new();
    for _ in 0..50 {
        ended = r.events("session.ended").await;
        if !ended.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ended.len(), 1, "the session was not closed within 5 s");
    assert_eq!(ended[0]["payload"]["reason"], "nas-lost");
    assert_eq!(
        (
            ended[0]["payload"]["bytes-in"].as_u64(),
            ended[0]["payload"]["bytes-out"].as_u64()
        ),
        (Some(4_000_000), Some(42_000_000)),
        "{}",
        ended[0]
    );
    assert_eq!(
        r.stored_counters(&user).await,
        vec![(4_000_000, 42_000_000)]
    );
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_that_ends_by_time_counts_its_traffic_although_counters_wait() {
    // usage-save is an hour, but the last poll before the deadline writes the counters, so
    // grant.ended says what the customer used.
    let r = rig_with(Arc::new(SystemClock), "usage-save = \"1h\"").await;
    let mac = "AA:BB:CC:00:00:08";
    let user = r.pay("R8", "short", mac, "10.5.50.18").await;
    until("the device is online", 5, || {
        r.active_users() == vec![user.clone()]
    })
    .await;
    // The traffic comes after the session (and its first counters) was recorded.
    for _ in 0..50 {
        if !r.events("session.started").await.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(r.stored_counters(&user).await, vec![(0, 0)]);
    r.sim.model().traffic(mac, 70_000, 900_000);
    let mut ended = Vec::new();
    for _ in 0..100 {
        ended = r.events("grant.ended").await;
        if !ended.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ended.len(), 1, "the 3 s grant did not end within 10 s");
    assert_eq!(ended[0]["payload"]["reason"], "time");
    assert_eq!(ended[0]["payload"]["bytes-used"], 970_000, "{}", ended[0]);
    r.stop().await;
}

/// A router that prints a value nobody can read: the sync job fails with the menu, the field and
/// both values after `job-max-attempts`, in `jobs list` and in the status the heartbeat carries,
/// instead of retrying forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_that_cannot_be_compared_fails_the_job_with_both_values() {
    let r = rig_with(Arc::new(SystemClock), "job-max-attempts = 2").await;
    r.sim.model().print_override.push((
        "/ip/hotspot/user".into(),
        "limit-uptime".into(),
        "soon".into(),
    ));
    let user = r.pay("R1", "hour", "AA:BB:CC:00:00:01", "10.5.50.11").await;
    let failed = async || {
        r.daemon
            .site
            .store()
            .call(|s| {
                let now = s.now(&SystemClock).unwrap();
                s.view_jobs(&now, Some("failed"), 10).unwrap().rows
            })
            .await
            .unwrap()
    };
    let t0 = Instant::now();
    // Columns: id, kind, target, state, attempts, next-attempt, last-error, updated.
    let sync = loop {
        let rows = failed().await;
        if let Some(row) = rows.into_iter().find(|r| r[1] == "sync-user") {
            break row;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "the job never failed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(sync[2], user.as_str());
    assert_eq!(sync[4], "2/2");
    let error = sync[6].as_str().unwrap().to_string();
    assert!(
        error.contains("/ip/hotspot/user limit-uptime")
            && error.contains("printed \"soon\"")
            && error.contains("written \"1h"),
        "{error}"
    );
    // The device's login job cannot succeed without its user, and fails too.
    let t0 = Instant::now();
    let status = loop {
        let status = r.status().await;
        if status["jobs"]["pending"] == 0 {
            break status;
        }
        assert!(t0.elapsed() < Duration::from_secs(15), "{status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status["jobs"]["failed"], 2, "{status}");
    let last = &status["jobs"]["last-failed"];
    assert!(
        last["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{status}"
    );
    assert!(
        ["sync-user", "login-device"].contains(&last["kind"].as_str().unwrap()),
        "{status}"
    );
    r.stop().await;
}
