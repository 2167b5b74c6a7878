//! The daemon enforcing on openNDS: the real `ndsctl` calls (child processes, exit codes, JSON)
//! against `tests/fixtures/fake-ndsctl`, a stand-in that keeps state like openNDS (clients,
//! authentication, timeouts, quotas, the busy lock), the real store on a temp file.
#![cfg(feature = "opennds")]

mod common;

// Waits are bounds, not timings: 30 s. Each check starts a Python process (the fake ndsctl),
// and the test runs on the daemon's own runtime: looked at every 25 ms by seven tests at once,
// the checks took the two CPUs from the daemons they waited for, and on CI an extension missed a
// 10 s and then a 30 s bound. They look every 250 ms.
async fn until(what: &str, secs: u64, f: impl FnMut() -> bool) {
    common::until_every(what, secs, Duration::from_millis(250), f).await
}

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hotspot_edge::clock::SystemClock;
use hotspot_edge::config;
use hotspot_edge::daemon::Daemon;
use serde_json::Value;

struct Rig {
    daemon: Daemon,
    running: common::daemon::Running,
    state: PathBuf,
    dir: tempfile::TempDir,
}

const PLANS: &str = r#"
[[plans]]
id = "short"
name = "3 seconds"
price = 100
currency = "KES"
time = "3s"
rate-limit = "512k/2M"

[[plans]]
id = "hour"
name = "1 hour, 1 MB"
price = 1000
currency = "KES"
time = "1h"
data = "1MB"
"#;

fn fake() -> String {
    format!("{}/tests/fixtures/fake-ndsctl", env!("CARGO_MANIFEST_DIR"))
}

async fn rig() -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("nds.json");
    // The daemon runs `ndsctl ARGS`: a wrapper gives the fake its state file.
    let ndsctl = dir.path().join("ndsctl");
    std::fs::write(
        &ndsctl,
        format!(
            "#!/bin/sh\nexec python3 {} --state {} \"$@\"\n",
            fake(),
            state.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&ndsctl, std::fs::Permissions::from_mode(0o755)).unwrap();
    let text = format!(
        r#"[site]
id = "nds"
[store]
path = "{}"
[log]
level = "warn"
[enforcement]
usage-poll = "1s"
[router]
kind = "opennds"
command-timeout = "5s"
[opennds]
ndsctl = "{}"
busy-wait = "50ms"
{PLANS}"#,
        dir.path().join("h.db").display(),
        ndsctl.display()
    );
    let config = config::parse(&text, "nds.toml").unwrap().config;
    let running = common::daemon::start(config, Arc::new(SystemClock)).await;
    Rig {
        daemon: running.daemon.clone(),
        running,
        state,
        dir,
    }
}

impl Rig {
    /// Runs the fake ndsctl on the rig's state (a device joining, traffic, faults).
    fn nds(&self, args: &[&str]) -> String {
        let o = std::process::Command::new("python3")
            .arg(fake())
            .arg("--state")
            .arg(&self.state)
            .args(args)
            .output()
            .unwrap();
        String::from_utf8(o.stdout).unwrap()
    }

    /// The fake's record of a client (raw state: bytes, limits), or None.
    fn client(&self, mac: &str) -> Option<Value> {
        let v: Value = serde_json::from_str(&self.nds(&["_get", mac])).unwrap();
        (!v.is_null()).then_some(v)
    }

    fn authenticated_as(&self, mac: &str) -> Option<String> {
        self.client(mac)
            .filter(|c| c["state"] == "Authenticated")
            .map(|c| c["custom"].as_str().unwrap_or("").to_string())
    }

    async fn pay(&self, reference: &str, phone: &str, plan: &str, mac: Option<&str>) -> String {
        let device = mac.map(|m| (m, "192.168.8.10"));
        common::daemon::pay(&self.daemon.site, reference, phone, plan, device).await
    }

    async fn user(&self, name: &str) -> Value {
        common::daemon::user(&self.daemon.site, name).await
    }

    async fn events(&self, ty: &str) -> Vec<Value> {
        common::daemon::events(&self.daemon.site, "nds", ty).await
    }

    async fn stop(self) {
        let Rig {
            daemon,
            running,
            dir,
            ..
        } = self;
        drop(daemon);
        running.stop().await;
        drop(dir);
    }
}

const MAC: &str = "AA:BB:CC:00:00:01";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payment_authenticates_usage_is_read_and_expiry_deauthenticates() {
    let r = rig().await;
    r.nds(&["_connect", MAC, "192.168.8.10"]);
    let paid = Instant::now();
    let user = r.pay("R1", "254700000001", "short", Some(MAC)).await;
    until("openNDS authenticates the device", 30, || {
        r.authenticated_as(MAC) == Some(format!("he={user}"))
    })
    .await;
    let c = r.client(MAC).unwrap();
    // The plan's rate limit in kb/s; 3 s plus the 60 s safety margin, in whole minutes.
    assert_eq!(
        (c["up_rate"].as_u64(), c["down_rate"].as_u64()),
        (Some(512), Some(2000))
    );
    assert_eq!(
        c["session_end"].as_i64().unwrap() - c["session_start"].as_i64().unwrap(),
        120
    );
    r.nds(&["_traffic", MAC, "40960", "921600"]);
    // The counters a session ends with are those the last poll read: wait for a poll after the
    // traffic (asked for now), as on a loaded machine the next one may come after the expiry.
    let calls_before = r.nds(&["_log"]).lines().count();
    r.daemon.site.poll_nas();
    until("a poll after the traffic", 30, || {
        r.nds(&["_log"])
            .lines()
            .skip(calls_before)
            .any(|l| l.starts_with("json"))
    })
    .await;
    until("the device is deauthenticated at expiry", 30, || {
        r.client(MAC).is_none()
    })
    .await;
    let took = paid.elapsed();
    assert!(
        took >= Duration::from_millis(2500),
        "cut off early, after {took:?}"
    );
    // The deauth is confirmed, then recorded: wait for the record (a loaded machine is slow).
    let mut ended = Vec::new();
    for _ in 0..50 {
        ended = r.events("session.ended").await;
        if !ended.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ended.len(), 1, "{ended:?}");
    let u = r.user(&user).await;
    assert_eq!(u["state"], "expired", "{u}");
    assert_eq!(r.events("session.started").await.len(), 1);
    assert_eq!(ended[0]["payload"]["reason"], "expired");
    // ndsctl counters are KiB (x1024): 40 KiB up, 900 KiB down reached the store.
    let used = &ended[0]["payload"];
    assert_eq!(
        (used["bytes-in"].as_u64(), used["bytes-out"].as_u64()),
        (Some(40_960), Some(921_600)),
        "{used}"
    );
    let log = r.nds(&["_log"]);
    assert!(
        // No data limit: a quota nobody reaches (0 would be openNDS's global quota).
        log.contains(&format!(
            "auth aa:bb:cc:00:00:01 2 512 2000 1099511627776 1099511627776 he={user}"
        )),
        "{log}"
    );
    assert!(log.contains("deauth aa:bb:cc:00:00:01"), "{log}");
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_or_busy_opennds_delays_a_login_but_does_not_lose_it() {
    let r = rig().await;
    r.nds(&["_connect", MAC, "192.168.8.10"]);
    r.nds(&["_stop"]);
    let user = r.pay("R1", "254700000001", "hour", Some(MAC)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(r.authenticated_as(MAC), None);
    // Back, but busy for the next few calls (another ndsctl holds the lock, then its socket's
    // queue is full): retried.
    r.nds(&["_busy", "3"]);
    r.nds(&["_refuse", "2"]);
    r.nds(&["_start"]);
    until("the login is carried out once openNDS answers", 30, || {
        r.authenticated_as(MAC) == Some(format!("he={user}"))
    })
    .await;
    // 1 MB of data: openNDS's own quota is the safety net above it (kB, per direction).
    let c = r.client(MAC).unwrap();
    assert!(c["down_quota"].as_u64().unwrap() > 1000, "{c}");
    assert_eq!(r.user(&user).await["state"], "active");
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_logins_are_cut_and_garbage_output_is_survived() {
    let r = rig().await;
    let other = "AA:BB:CC:00:00:99";
    r.nds(&["_connect", other, "192.168.8.99"]);
    r.nds(&["_garbage", "2"]);
    r.nds(&["_authother", other]);
    until("the device nobody paid for is deauthenticated", 30, || {
        r.client(other).is_none()
    })
    .await;
    // After broken JSON the daemon still works: a payment logs a device in.
    r.nds(&["_connect", MAC, "192.168.8.10"]);
    let user = r.pay("R1", "254700000001", "hour", Some(MAC)).await;
    until("logged in", 30, || {
        r.authenticated_as(MAC) == Some(format!("he={user}"))
    })
    .await;
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paying_again_while_online_extends_openndss_own_timeout() {
    let r = rig().await;
    r.nds(&["_connect", MAC, "192.168.8.10"]);
    let user = r.pay("R1", "254700000001", "hour", Some(MAC)).await;
    until("logged in", 30, || r.authenticated_as(MAC).is_some()).await;
    let first = r.client(MAC).unwrap();
    let minutes = |c: &Value| {
        (c["session_end"].as_i64().unwrap() - c["session_start"].as_i64().unwrap()) / 60
    };
    assert_eq!(minutes(&first), 61);
    let again = r.pay("R2", "254700000001", "hour", None).await;
    assert_eq!(again, user);
    until("openNDS's timeout covers both hours", 30, || {
        r.client(MAC).is_some_and(|c| minutes(&c) >= 120)
    })
    .await;
    assert_eq!(r.authenticated_as(MAC), Some(format!("he={user}")));
    r.stop().await;
}

/// openNDS 10 (the stand-in): a client throttled at its quota (`AuthBlocked`) is still the
/// user's session, neither cut off as a stranger nor closed as lost; a stop forgets every client,
/// and the paid device is let in again when it comes back to the portal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_client_stays_and_a_restart_lets_the_paid_device_back_in() {
    let r = rig().await;
    r.nds(&["_connect", MAC, "192.168.8.10"]);
    let user = r.pay("R1", "254700000001", "hour", Some(MAC)).await;
    until("logged in", 30, || {
        r.authenticated_as(MAC) == Some(format!("he={user}"))
    })
    .await;
    r.nds(&["_authblock", MAC]);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(r.client(MAC).unwrap()["state"], "AuthBlocked");
    assert!(r.events("session.ended").await.is_empty());
    r.nds(&["_stop"]);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    r.nds(&["_start"]);
    assert_eq!(r.client(MAC), None, "openNDS forgot its clients");
    r.nds(&["_connect", MAC, "192.168.8.10"]);
    until("the paid device is let back in", 30, || {
        r.authenticated_as(MAC) == Some(format!("he={user}"))
    })
    .await;
    assert_eq!(r.user(&user).await["state"], "active");
    r.stop().await;
}

/// openNDS without preemptive authentication (9.x's default): `status` (and so the heartbeat)
/// says which option to set, read from `ndsctl status` when the daemon connects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_names_the_opennds_option_when_preemptive_authentication_is_off() {
    let r = rig().await;
    let warnings = || async {
        r.daemon
            .site
            .read(|s, now| s.status("nds", now))
            .await
            .unwrap()["nas-warnings"]
            .clone()
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        warnings().await,
        serde_json::json!([]),
        "10.x's default: on"
    );
    // The operator's openNDS restarts with the option off: the daemon reconnects and reads it.
    r.nds(&["_preemptive", "0"]);
    r.nds(&["_stop"]);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    r.nds(&["_start"]);
    let end = Instant::now() + Duration::from_secs(15);
    loop {
        let w = warnings().await;
        if w.to_string()
            .contains("allow_preemptive_authentication '1'")
        {
            break;
        }
        assert!(Instant::now() < end, "status never said it: {w}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    r.stop().await;
}

/// The heartbeat's `router` block is the NAS's, whichever NAS runs: for openNDS it says
/// reachable while ndsctl answers, with the version `ndsctl status` gave, and unreachable with
/// the error once openNDS is gone (it used to say "configured: false" for every NAS but
/// RouterOS).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_heartbeat_reports_opennds_as_the_router() {
    let r = rig().await;
    let router = || async {
        hotspot_edge::uplink::mqtt::status::heartbeat(&r.daemon.site, "nds", Instant::now())
            .await
            .unwrap()["router"]
            .clone()
    };
    let end = Instant::now() + Duration::from_secs(10);
    let up = loop {
        let b = router().await;
        if b["reachable"] == true {
            break b;
        }
        assert!(
            Instant::now() < end,
            "openNDS never reported reachable: {b}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(up["configured"], true, "{up}");
    assert_eq!(up["kind"], "opennds", "{up}");
    assert_eq!(up["health"]["version"], "10.2.0", "{up}");
    assert!(up["last-error"].is_null(), "{up}");
    r.nds(&["_stop"]);
    let end = Instant::now() + Duration::from_secs(10);
    let down = loop {
        let b = router().await;
        if b["reachable"] == false {
            break b;
        }
        assert!(Instant::now() < end, "openNDS never reported gone: {b}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        down["last-error"].as_str().is_some_and(|e| !e.is_empty()),
        "{down}"
    );
    r.stop().await;
}
