//! The daemon against the real openNDS (Debian's `opennds` 9.10, installed by `.ci/run`), run as
//! root in network namespaces made by `tests/rig/opennds-rig.sh`: a gateway with openNDS and
//! dnsmasq, two clients that take DHCP leases and browse with curl, and an "internet" with an
//! HTTP server. The daemon runs in-process and drives openNDS with the real `/usr/bin/ndsctl`.
//!
//! Where root, network namespaces or the packages are missing the tests say so loudly and pass;
//! with `HOTSPOT_EDGE_REAL_OPENNDS=required` (set by `.ci/run`) they fail instead.
#![cfg(feature = "opennds")]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hotspot_edge::clock::SystemClock;
use hotspot_edge::config;
use hotspot_edge::daemon::Daemon;
use serde_json::Value;

/// One openNDS at a time: its control socket (/tmp/ndsctl.sock) is the machine's.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const PLANS: &str = r#"
[[plans]]
id = "short"
name = "8 seconds"
price = 100
currency = "KES"
time = "8s"
rate-limit = "512k/2M"

[[plans]]
id = "hour"
name = "1 hour"
price = 1000
currency = "KES"
time = "1h"
"#;

/// What is missing on this machine for the real openNDS, if anything.
fn missing() -> Option<String> {
    if !nix_is_root() {
        return Some("not root (network namespaces and openNDS need it)".into());
    }
    for tool in [
        "/usr/bin/opennds",
        "/usr/bin/ndsctl",
        "/usr/sbin/nft",
        "/usr/sbin/iptables",
    ] {
        if !Path::new(tool).exists() {
            return Some(format!(
                "{tool} is not installed (apt-get install opennds nftables iptables)"
            ));
        }
    }
    for tool in ["ip", "dnsmasq", "busybox", "curl", "python3"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            return Some(format!("{tool} is not installed"));
        }
    }
    None
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// The namespaces, dnsmasq, the HTTP server and openNDS; torn down on drop, whatever happened.
struct Nds {
    prefix: String,
    dir: tempfile::TempDir,
}

impl Nds {
    /// None (after saying why, loudly) where the real openNDS cannot run here.
    fn up() -> Option<Nds> {
        if let Some(why) = missing() {
            if std::env::var("HOTSPOT_EDGE_REAL_OPENNDS").as_deref() == Ok("required") {
                panic!("the real openNDS tests are required here but cannot run: {why}");
            }
            eprintln!(
                "\n!!! SKIPPED: the real openNDS tests cannot run here: {why}.\n!!! They run in CI (.ci/run, as root).\n"
            );
            return None;
        }
        let nds = Nds {
            prefix: format!("he{}", std::process::id() % 100_000),
            dir: tempfile::tempdir().unwrap(),
        };
        // Left over from a killed run of this same process id: gone first.
        nds.rig(&["down"]);
        nds.rig_ok(&["up", nds.path()]);
        // Something the clients can download once let through: 5,000,000 bytes.
        std::fs::write(nds.dir.path().join("www/big.bin"), vec![b'x'; 5_000_000]).unwrap();
        Some(nds)
    }

    fn path(&self) -> &str {
        self.dir.path().to_str().unwrap()
    }

    fn script() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rig/opennds-rig.sh")
    }

    fn rig(&self, args: &[&str]) -> std::process::Output {
        let (cmd, rest) = args.split_first().unwrap();
        Command::new("bash")
            .arg(Self::script())
            .arg(cmd)
            .arg(&self.prefix)
            .args(rest)
            .output()
            .unwrap()
    }

    fn rig_ok(&self, args: &[&str]) -> String {
        let o = self.rig(args);
        assert!(
            o.status.success(),
            "opennds-rig.sh {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    /// openNDS started with the rig's config and these extra lines.
    fn start(&self, extra: &[&str]) {
        let mut args = vec!["nds-start", self.path()];
        args.extend_from_slice(extra);
        self.rig_ok(&args);
    }

    /// openNDS stopped as its service stops it (SIGTERM).
    fn stop(&self) {
        self.rig_ok(&["nds-stop", self.path()]);
    }

    /// Client `n` takes a DHCP lease: its MAC (upper case, as the daemon writes MACs) and IP.
    fn lease(&self, n: u8) -> (String, String) {
        let out = self.rig_ok(&["lease", self.path(), &n.to_string()]);
        let (mac, ip) = out.split_once(' ').unwrap();
        (mac.to_ascii_uppercase(), ip.to_string())
    }

    /// Client `n` asks for a page on the "internet": (HTTP status, body). 0 when nothing came.
    fn browse(&self, n: u8, path: &str) -> (u16, Vec<u8>) {
        let ns = format!("{}-c{n}", self.prefix);
        let o = Command::new("ip")
            .args(["netns", "exec", &ns, "curl", "-s", "-m", "5", "-o", "-"])
            .args(["-w", "\n%{http_code}"])
            .arg(format!("http://10.77.0.2/{path}"))
            .output()
            .unwrap();
        let out = o.stdout;
        let cut = out.iter().rposition(|b| *b == b'\n').unwrap_or(0);
        let code = std::str::from_utf8(&out[cut..])
            .unwrap_or("")
            .trim()
            .parse()
            .unwrap_or(0);
        (code, out[..cut].to_vec())
    }

    /// Client `n` reaches the internet (openNDS lets it through).
    fn online(&self, n: u8) -> bool {
        let (code, body) = self.browse(n, "");
        code == 200 && body.starts_with(b"hello from the internet")
    }

    /// `ndsctl` run as a technician would; again while busy: exit 4 (the daemon's ndsctl holds
    /// the lock), or exit 3 with "Connection refused" (openNDS answers one request at a time and
    /// its socket's queue is full).
    fn ndsctl(&self, args: &[&str]) -> std::process::Output {
        for _ in 0..60 {
            let o = Command::new("/usr/bin/ndsctl").args(args).output().unwrap();
            let refused = o.status.code() == Some(3)
                && String::from_utf8_lossy(&o.stderr).contains("Connection refused");
            if o.status.code() != Some(4) && !refused {
                return o;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("ndsctl {args:?} busy for 3 s");
    }

    /// openNDS's record of a client, from `ndsctl json MAC` (one client: valid JSON even when
    /// another client's `custom` breaks the full list).
    fn client(&self, mac: &str) -> Option<Value> {
        let o = self.ndsctl(&["json", &mac.to_ascii_lowercase()]);
        let v: Value = serde_json::from_slice(&o.stdout).ok()?;
        v.get("mac").is_some().then_some(v)
    }

    fn state(&self, mac: &str) -> Option<String> {
        self.client(mac)
            .and_then(|c| c["state"].as_str().map(str::to_string))
    }
}

impl Drop for Nds {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // What openNDS said, for the failure's report.
            let log =
                std::fs::read_to_string(self.dir.path().join("opennds.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().filter(|l| !l.contains("pgrep")).collect();
            eprintln!(
                "--- openNDS log (last 40 lines) ---\n{}",
                tail[tail.len().saturating_sub(40)..].join("\n")
            );
        }
        let _ = self.rig(&["down", self.path()]);
    }
}

/// Waits, checking every 300 ms (each check may run ndsctl or curl).
async fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

struct Site {
    daemon: Daemon,
    running: common::daemon::Running,
    _dir: tempfile::TempDir,
}

impl Site {
    async fn start(extra: &str) -> Site {
        // The daemon's log, shown with a failure (the test harness captures it otherwise).
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_test_writer()
            .try_init();
        let dir = tempfile::tempdir().unwrap();
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
safety-margin = "60s"
[opennds]
ndsctl = "/usr/bin/ndsctl"
busy-wait = "50ms"
{extra}
{PLANS}"#,
            dir.path().join("h.db").display(),
        );
        let config = config::parse(&text, "nds.toml").unwrap().config;
        let running = common::daemon::start(config, Arc::new(SystemClock)).await;
        Site {
            daemon: running.daemon.clone(),
            running,
            _dir: dir,
        }
    }

    async fn pay(&self, reference: &str, plan: &str, device: Option<(&str, &str)>) -> String {
        common::daemon::pay(&self.daemon.site, reference, "254700000001", plan, device).await
    }

    async fn user(&self, name: &str) -> Value {
        common::daemon::user(&self.daemon.site, name).await
    }

    async fn events(&self, ty: &str) -> Vec<Value> {
        common::daemon::events(&self.daemon.site, "nds", ty).await
    }

    /// Sessions the store has open for `user`.
    async fn open_sessions(&self, user: &str) -> usize {
        let started = self.events("session.started").await;
        let ended = self.events("session.ended").await;
        let mine = |e: &Value| e["payload"]["user"] == user;
        started.iter().filter(|e| mine(e)).count() - ended.iter().filter(|e| mine(e)).count()
    }

    /// Client 1 (`mac`, `ip`) pays for an hour: through openNDS, and its session recorded.
    async fn online_for_an_hour(&self, nds: &Nds, mac: &str, ip: &str) -> String {
        let user = self.pay("R1", "hour", Some((mac, ip))).await;
        wait_for("the paying device gets through", 15, || nds.online(1)).await;
        wait_for("the store has its session", 10, || {
            block_on_here(self.open_sessions(&user)) == 1
        })
        .await;
        user
    }

    async fn stop(self) {
        let Site {
            daemon, running, ..
        } = self;
        drop(daemon);
        running.stop().await;
    }
}

/// The rig with openNDS started (its config plus `extra`) and client 1 at the portal with a
/// lease, not let through; None where the real openNDS cannot run. The guard keeps other tests
/// off the machine's one openNDS until the rig is gone.
async fn one_client(
    extra: &[&str],
) -> Option<(tokio::sync::MutexGuard<'static, ()>, Nds, String, String)> {
    let one = ONE_AT_A_TIME.lock().await;
    let nds = Nds::up()?;
    nds.start(extra);
    let (mac, ip) = nds.lease(1);
    assert!(
        !nds.online(1),
        "a device that has not paid is held at the portal"
    );
    Some((one, nds, mac, ip))
}

/// The whole path on the real openNDS: a device on the portal, a payment with its MAC, openNDS
/// lets it through with the plan's limits, traffic is counted in openNDS's real unit (1024), and
/// at the deadline the device is deauthenticated and the internet closes again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paying_device_gets_through_is_counted_and_is_cut_off_at_its_deadline() {
    let Some((_one, nds, mac, ip)) = one_client(&[]).await else {
        return;
    };
    wait_for("openNDS lists the device as preauthenticated", 10, || {
        nds.state(&mac).as_deref() == Some("Preauthenticated")
    })
    .await;
    let site = Site::start("").await;
    let user = site.pay("R1", "short", Some((&mac, &ip))).await;
    wait_for("the paying device gets through", 15, || nds.online(1)).await;
    let paid = Instant::now();
    let c = nds.client(&mac).unwrap();
    assert_eq!(c["custom"], format!("he={user}"), "{c}");
    // 5,000,000 bytes down: openNDS counts them (and the packets' headers) in units of 1024.
    let (code, body) = nds.browse(1, "big.bin");
    assert_eq!((code, body.len()), (200, 5_000_000));
    wait_for("the device is cut off at its deadline", 20, || {
        nds.state(&mac).as_deref() != Some("Authenticated")
    })
    .await;
    let took = paid.elapsed();
    assert!(
        !nds.online(1),
        "the internet is closed again after the deadline"
    );
    assert!(
        took < Duration::from_secs(12),
        "cut off {took:?} after login, plan 8 s"
    );
    let mut ended = Vec::new();
    for _ in 0..50 {
        ended = site.events("session.ended").await;
        if !ended.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ended.len(), 1, "{ended:?}");
    let down = ended[0]["payload"]["bytes-out"].as_u64().unwrap();
    assert!(
        (5_000_000..5_400_000).contains(&down),
        "download counted as {down} bytes for a 5,000,000-byte file (openNDS counts in KiB)"
    );
    assert_eq!(site.user(&user).await["state"], "expired");
    site.stop().await;
}

/// Paying again while online extends the time without cutting the customer off, whether
/// openNDS allows preemptive authentication (10.x's default) or not (9.x's).
async fn extension_keeps_the_device_online(preemptive: bool) {
    let option = format!(
        "allow_preemptive_authentication {}",
        if preemptive { 1 } else { 0 }
    );
    let Some((_one, nds, mac, ip)) = one_client(&[&option]).await else {
        return;
    };
    let site = Site::start("").await;
    let user = site.online_for_an_hour(&nds, &mac, &ip).await;
    let end = |c: Value| {
        c["session_end"]
            .as_str()
            .and_then(|e| e.parse::<i64>().ok())
    };
    let first_end = end(nds.client(&mac).unwrap()).unwrap();
    let again = site.pay("R2", "hour", None).await;
    assert_eq!(again, user);
    if preemptive {
        // openNDS's own end moves to the two hours (a deauth and an auth by MAC: a blink).
        wait_for("openNDS's session end covers both hours", 15, || {
            nds.client(&mac)
                .and_then(end)
                .is_some_and(|e| e >= first_end + 3500)
        })
        .await;
    } else {
        // Without preemptive authentication openNDS keeps its end; the device is not cut off.
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(nds.client(&mac).and_then(end), Some(first_end));
    }
    // Several polls (1 s apart) after the extension: still through, still one session.
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert!(nds.online(1), "the customer who paid again was cut off");
    }
    let u = site.user(&user).await;
    assert_eq!(u["state"], "active", "{u}");
    assert_eq!(site.open_sessions(&user).await, 1);
    assert_eq!(nds.state(&mac).as_deref(), Some("Authenticated"));
    site.stop().await;
}

/// Runs a future to completion from a sync closure (the waits check the store too).
fn block_on_here<F: std::future::Future>(f: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paying_again_while_online_keeps_the_device_online_with_preemptive_authentication() {
    extension_keeps_the_device_online(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paying_again_while_online_keeps_the_device_online_without_preemptive_authentication() {
    extension_keeps_the_device_online(false).await;
}

/// openNDS prints `custom` raw: a `"` in one client's string breaks `ndsctl json` for all. The
/// other customers are still logged in and cut off on time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_custom_string_on_one_client_does_not_stop_enforcement() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(nds) = Nds::up() else { return };
    nds.start(&[]);
    let (mac1, ip1) = nds.lease(1);
    let (mac2, _) = nds.lease(2);
    assert!(!nds.online(1) && !nds.online(2));
    // A technician lets client 2 in by hand, with a quote in the custom string.
    let o = nds.ndsctl(&[
        "auth",
        &mac2.to_ascii_lowercase(),
        "30",
        "0",
        "0",
        "0",
        "0",
        "fixed \"by hand\"",
    ]);
    assert!(o.status.success(), "{o:?}");
    let all = nds.ndsctl(&["json"]);
    assert!(
        serde_json::from_slice::<Value>(&all.stdout).is_err(),
        "openNDS 9.10 prints custom unescaped (the failure this test is about)"
    );
    let site = Site::start("").await;
    let user = site.pay("R1", "short", Some((&mac1, &ip1))).await;
    wait_for("the paying device gets through", 15, || nds.online(1)).await;
    assert_eq!(nds.client(&mac1).unwrap()["custom"], format!("he={user}"));
    wait_for("the paying device is cut off at its deadline", 20, || {
        !nds.online(1)
    })
    .await;
    site.stop().await;
}

/// Stopping openNDS deauthenticates every client. When it is back and the device shows up at
/// the portal again, the daemon lets it back in (it paid for an hour).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_opennds_restart_a_paid_device_is_let_back_in() {
    let Some((_one, nds, mac, ip)) = one_client(&[]).await else {
        return;
    };
    let site = Site::start("").await;
    let user = site.online_for_an_hour(&nds, &mac, &ip).await;
    nds.stop();
    nds.start(&[]);
    // The phone notices it is held at the portal again (its captive-portal check).
    assert!(!nds.online(1), "openNDS forgot the client when it stopped");
    // Within a poll once the daemon sees openNDS answer again (its reconnect backoff grows
    // while openNDS restarts, which takes seconds on a loaded machine).
    wait_for("the paid device is let back in", 60, || nds.online(1)).await;
    assert_eq!(nds.client(&mac).unwrap()["custom"], format!("he={user}"));
    let u = site.user(&user).await;
    assert_eq!(u["state"], "active", "{u}");
    wait_for("the store has one open session again", 10, || {
        block_on_here(site.open_sessions(&user)) == 1
    })
    .await;
    site.stop().await;
}
