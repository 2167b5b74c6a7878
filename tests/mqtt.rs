//! Cloud sync against a real mosquitto: the daemon in-process (or as a process, for SIGKILL),
//! the real store on a temp file, a test subscriber on the broker.
#![cfg(feature = "demo")]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::mosquitto::{Broker, BrokerOptions, Watcher};
use hotspot_edge::clock::{Clock, SystemClock};
use hotspot_edge::config;
use hotspot_edge::daemon::Daemon;
use hotspot_edge::engine::command::*;
use hotspot_edge::engine::{Command, OsEntropy};
use hotspot_edge::routeros::sim::{Model, Simulator};
use hotspot_edge::uplink::mqtt::remote;
use serde_json::{json, Value};

const KEY: &str = "test-command-key-0123456789";
const SITE: &str = "s1";

const PLANS: &str = r#"
[[plans]]
id = "hour"
name = "1 hour"
price = 1000
currency = "KES"
time = "1h"
"#;

struct Rig {
    daemon: Daemon,
    running: common::daemon::Running,
    dir: tempfile::TempDir,
    sim: Option<Simulator>,
}

/// A payment for the hour plan; with a phone, repeat payments extend that phone's user.
fn payment(reference: &str, phone: Option<&str>) -> Command {
    Command::PaymentConfirmed(PaymentArgs {
        provider: "mpesa".into(),
        reference: reference.into(),
        phone: phone.map(str::to_string),
        plan: "hour".into(),
        ..Default::default()
    })
}

fn topic(leaf: &str) -> String {
    format!("hotspot/{SITE}/{leaf}")
}

/// The daemon with `[mqtt]` pointing at `url`; `extra` is appended to the `[mqtt]` section.
async fn rig(url: &str, extra: &str, router: bool) -> Rig {
    rig_with_store(url, extra, router, "").await
}

/// As `rig`, with `store` appended to the `[store]` section.
async fn rig_with_store(url: &str, extra: &str, router: bool, store: &str) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("command.key"), format!("{KEY}\n")).unwrap();
    let sim = if router {
        let mut model = Model::default();
        model.add_api_user("edge", "router-secret-1", "hotspot-edge");
        std::fs::write(dir.path().join("router.pass"), "router-secret-1\n").unwrap();
        Some(Simulator::start("127.0.0.1:0", model).await.unwrap())
    } else {
        None
    };
    let router_section = match &sim {
        Some(sim) => format!(
            "[router]\nkind = \"routeros\"\naddress = \"{}\"\nusername = \"edge\"\npassword-file = \"{}\"\nhotspot-server = \"hotspot1\"\nallow-plaintext = true\ncommand-timeout = \"1s\"\nconnect-timeout = \"1s\"\nprobe-interval = \"1s\"\n",
            sim.addr,
            dir.path().join("router.pass").display()
        ),
        None => String::new(),
    };
    let text = format!(
        "[site]\nid = \"{SITE}\"\n[store]\npath = \"{}\"\n{store}\n[log]\nlevel = \"warn\"\n{router_section}[mqtt]\nurl = \"{url}\"\ncommand-key-file = \"{}\"\nheartbeat = \"1s\"\nkeepalive = \"5s\"\n{extra}\n{PLANS}",
        dir.path().join("h.db").display(),
        dir.path().join("command.key").display(),
    );
    let config = config::parse(&text, "rig.toml")
        .unwrap_or_else(|e| panic!("{e}\n{text}"))
        .config;
    let running = common::daemon::start(config, Arc::new(SystemClock) as Arc<dyn Clock>).await;
    let daemon = running.daemon.clone();
    Rig {
        daemon,
        running,
        dir,
        sim,
    }
}

impl Rig {
    async fn apply(&self, cmd: Command) -> Result<Value, String> {
        common::daemon::apply(&self.daemon.site, cmd).await
    }

    async fn pay(&self, reference: &str) -> Value {
        self.apply(payment(reference, Some("254700000001")))
            .await
            .unwrap()
    }

    async fn pay_many(&self, n: usize) {
        let clock = self.daemon.site.clock().clone();
        let engine = Arc::new(hotspot_edge::engine::Engine::new(Default::default()));
        self.daemon
            .site
            .store()
            .call(move |s| {
                let cmds: Vec<Command> = (0..n).map(|i| payment(&format!("M{i}"), None)).collect();
                let refs: Vec<(Option<&str>, &Command)> = cmds.iter().map(|c| (None, c)).collect();
                s.apply_many(&engine, clock.as_ref(), &mut OsEntropy, Source::Cli, &refs)
                    .unwrap();
            })
            .await
            .unwrap();
    }

    async fn status(&self) -> Value {
        let clock = self.daemon.site.clock().clone();
        self.daemon
            .site
            .store()
            .call(move |s| {
                let now = s.now(clock.as_ref()).unwrap();
                s.status(SITE, &now).unwrap()
            })
            .await
            .unwrap()
    }

    async fn depth(&self) -> i64 {
        self.status().await["outbox"]["depth"].as_i64().unwrap()
    }

    async fn last_seq(&self) -> i64 {
        self.status().await["outbox"]["last-seq"].as_i64().unwrap()
    }

    /// What a command may change, for "state unchanged" checks.
    async fn snapshot(&self) -> Value {
        let mut s = self.status().await;
        for k in ["clock", "uplink", "database", "next-deadline"] {
            s.as_object_mut().unwrap().remove(k);
        }
        // Publishing drains the outbox meanwhile: only new events would be a change.
        s["outbox"] = s["outbox"]["last-seq"].clone();
        s
    }

    async fn stop(self) {
        let Rig {
            daemon,
            running,
            dir,
            sim,
        } = self;
        drop(daemon);
        running.stop().await;
        drop((dir, sim));
    }
}

/// Waits (real time) until `f` holds, or fails with `what`.
async fn until<F, Fut>(what: &str, secs: u64, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = Instant::now() + Duration::from_secs(secs);
    while !f().await {
        assert!(Instant::now() < end, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Events received, flattened (a message may be one event or a batch), in arrival order.
fn events(w: &Watcher) -> Vec<Value> {
    let mut out = Vec::new();
    for p in w.on(&topic("events")) {
        match serde_json::from_str::<Value>(&p).unwrap() {
            Value::Array(a) => out.extend(a),
            v => out.push(v),
        }
    }
    out
}

/// Every seq from 1 to `last` exactly once after dropping duplicates (same id, same content),
/// and first arrivals in seq order.
fn assert_complete_and_ordered(evs: &[Value], last: i64) {
    let mut first: BTreeMap<i64, &Value> = BTreeMap::new();
    let mut order = Vec::new();
    for e in evs {
        let seq = e["seq"].as_i64().unwrap();
        match first.get(&seq) {
            Some(prev) => assert_eq!(*prev, e, "a resent event differs from the first copy"),
            None => {
                first.insert(seq, e);
                order.push(seq);
            }
        }
    }
    let missing: Vec<i64> = (1..=last).filter(|s| !first.contains_key(s)).collect();
    assert!(missing.is_empty(), "missing seqs: {missing:?}");
    assert_eq!(first.len() as i64, last, "unexpected seqs beyond {last}");
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted, "events first arrived out of seq order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_arrive_in_seq_order_exactly_as_documented() {
    let broker = Broker::start(BrokerOptions::default());
    let w = Watcher::start(broker.port, "cloud", &[&format!("hotspot/{SITE}/#")]).await;
    let r = rig(&format!("mqtt://127.0.0.1:{}", broker.port), "", false).await;
    let paid = r.pay("QK1").await;
    r.pay("QK2").await;
    let last = r.last_seq().await;
    assert!(last >= 6, "two payments make at least 6 events, got {last}");
    until("all events published and acknowledged", 10, || async {
        r.depth().await == 0 && events(&w).len() as i64 >= last
    })
    .await;
    let evs = events(&w);
    assert_complete_and_ordered(&evs, last);
    let instance = r.status().await["database"]["instance"]
        .as_str()
        .unwrap()
        .to_string();
    for e in &evs {
        let keys: Vec<&str> = e.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "id",
                "occurred-at",
                "payload",
                "seq",
                "site",
                "time-trusted",
                "type"
            ],
            "{e}"
        );
        assert_eq!(e["id"], json!(format!("{instance}-{}", e["seq"])));
        assert_eq!(e["site"], json!(SITE));
        assert!(hotspot_edge::clock::parse_rfc3339(e["occurred-at"].as_str().unwrap()).is_some());
    }
    let payment = evs
        .iter()
        .find(|e| e["type"] == "payment.recorded")
        .unwrap();
    assert_eq!(
        payment["payload"],
        json!({"payment": 1, "provider": "mpesa", "reference": "QK1", "phone": "254700000001",
               "amount": 1000, "currency": "KES", "plan": "hour", "user": paid["user"], "grant": 1})
    );
    // The retained status: online, with the heartbeat's fields.
    until("a heartbeat", 5, || async {
        !w.on(&topic("status")).is_empty()
    })
    .await;
    let st: Value = serde_json::from_str(w.on(&topic("status")).last().unwrap()).unwrap();
    assert_eq!(st["state"], "online");
    for k in [
        "version",
        "uptime-s",
        "router",
        "active-sessions",
        "users",
        "outbox",
        "clock",
        "database",
        "rss-bytes",
    ] {
        assert!(!st[k].is_null(), "heartbeat lacks {k}: {st}");
    }
    assert!(st["outbox"]["depth"].is_i64());
    assert_eq!(r.status().await["uplink"]["state"], "up");
    r.stop().await;
    // A clean stop says offline itself (retained).
    until("offline status after stop", 5, || async {
        w.on(&topic("status"))
            .last()
            .is_some_and(|s| s.contains("\"offline\""))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batching_puts_several_events_in_one_message() {
    let broker = Broker::start(BrokerOptions::default());
    let w = Watcher::start(broker.port, "cloud", &[&topic("events")]).await;
    let r = rig(
        &format!("mqtt://127.0.0.1:{}", broker.port),
        "batch = 10",
        false,
    )
    .await;
    // 20 payments in one transaction: 80 events appear at once and go out in batches.
    r.pay_many(20).await;
    let last = r.last_seq().await;
    until("all events", 10, || async {
        r.depth().await == 0 && events(&w).len() as i64 >= last
    })
    .await;
    let msgs = w.on(&topic("events"));
    assert!(
        msgs.iter().any(|m| m.starts_with('[')),
        "no batch among {} messages",
        msgs.len()
    );
    assert!(
        msgs.len() < last as usize,
        "{} messages for {last} events",
        msgs.len()
    );
    for m in &msgs {
        let v: Value = serde_json::from_str(m).unwrap();
        let a = v
            .as_array()
            .expect("with batch > 1 every message is an array");
        assert!(!a.is_empty() && a.len() <= 10, "batch of {}", a.len());
    }
    assert_complete_and_ordered(&events(&w), last);
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_down_during_a_stream_loses_nothing() {
    let mut broker = Broker::start(BrokerOptions::default());
    let w = Watcher::start(broker.port, "cloud", &[&topic("events")]).await;
    let r = Arc::new(rig(&format!("mqtt://127.0.0.1:{}", broker.port), "", false).await);
    let writer = {
        let r = r.clone();
        tokio::spawn(async move {
            for i in 0..150 {
                r.pay(&format!("S{i}")).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(800)).await;
    broker.stop();
    // The stream goes on while the broker is away; the daemon keeps running.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        r.depth().await > 0,
        "events wait in the outbox while the broker is down"
    );
    assert_eq!(r.status().await["uplink"]["state"], "down");
    broker.restart();
    writer.await.unwrap();
    let last = r.last_seq().await;
    // Generous: under qemu-user the reconnect and the drain of 150 events took over 30 s once
    // (CI, armv7, 2026-12-03); the test asserts that nothing is lost, not how fast.
    // Says which side was short when it fails: the daemon's outbox or the cloud's copy.
    let end = Instant::now() + Duration::from_secs(600);
    loop {
        let depth = r.depth().await;
        let seen: std::collections::BTreeSet<i64> = events(&w)
            .iter()
            .map(|e| e["seq"].as_i64().unwrap())
            .collect();
        if depth == 0 && seen.len() as i64 >= last {
            break;
        }
        assert!(
            Instant::now() < end,
            "the backlog did not drain after the broker came back: outbox depth {depth}, the cloud saw {} of {last} events, uplink {}\nbroker log:\n{}",
            seen.len(),
            r.status().await["uplink"],
            broker.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_complete_and_ordered(&events(&w), last);
    Arc::try_unwrap(r).ok().unwrap().stop().await;
}

fn bin(name: &str) -> &'static str {
    match name {
        "hotspot-edge" => env!("CARGO_BIN_EXE_hotspot-edge"),
        _ => unreachable!(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_a_drain_loses_nothing() {
    let broker = Broker::start(BrokerOptions::default());
    let w = Watcher::start(broker.port, "cloud", &[&topic("events")]).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.db");
    let cfg = dir.path().join("c.toml");
    std::fs::write(dir.path().join("command.key"), format!("{KEY}\n")).unwrap();
    // A slow drain: a small window, so the kill lands mid-way.
    std::fs::write(
        &cfg,
        format!(
            "[site]\nid = \"{SITE}\"\n[store]\npath = \"{}\"\n[log]\nlevel = \"warn\"\n[mqtt]\nurl = \"mqtt://127.0.0.1:{}\"\ninflight = 5\n{PLANS}",
            db.display(),
            broker.port
        ),
    )
    .unwrap();
    // A backlog written while no daemon runs: 3000 payments, 12000 events.
    {
        let loaded = config::load(&cfg).unwrap();
        let mut store = hotspot_edge::app::open_store(&loaded.config, &SystemClock, false).unwrap();
        let engine = hotspot_edge::app::engine(&loaded.config);
        for chunk in 0..30 {
            let cmds: Vec<Command> = (0..100)
                .map(|i| payment(&format!("K{chunk}-{i}"), None))
                .collect();
            let refs: Vec<(Option<&str>, &Command)> = cmds.iter().map(|c| (None, c)).collect();
            store
                .apply_many(&engine, &SystemClock, &mut OsEntropy, Source::Cli, &refs)
                .unwrap();
        }
        store.close().unwrap();
    }
    let last: i64 = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("SELECT max(seq) FROM outbox", [], |r| r.get(0))
        .unwrap();
    let start = || {
        common::our_binary(bin("hotspot-edge"))
            .args(["run", "-c"])
            .arg(&cfg)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut child = start();
    until("part of the backlog arrived", 30, || async {
        events(&w).len() > 1000
    })
    .await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let depth: i64 = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("SELECT count(*) FROM outbox", [], |r| r.get(0))
        .unwrap();
    assert!(
        depth > 0,
        "the drain finished before the kill: make the backlog bigger"
    );
    let mut child = start();
    until("the rest of the backlog arrived", 60, || async {
        let seqs: std::collections::BTreeSet<i64> = events(&w)
            .iter()
            .map(|e| e["seq"].as_i64().unwrap())
            .collect();
        seqs.len() as i64 >= last
    })
    .await;
    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    child.wait().unwrap();
    assert_complete_and_ordered(&events(&w), last);
    let depth: i64 = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("SELECT count(*) FROM outbox", [], |r| r.get(0))
        .unwrap();
    assert_eq!(depth, 0, "acknowledged events leave the outbox");
}

fn signed(ty: &str, args: Value, id: &str) -> String {
    let body = json!({"id": id, "site": SITE, "issued-at": hotspot_edge::clock::rfc3339(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64),
        "type": ty, "args": args})
    .to_string();
    remote::envelope(KEY.as_bytes(), &body)
}

fn replies(w: &Watcher) -> Vec<Value> {
    w.on(&topic("replies"))
        .iter()
        .map(|p| serde_json::from_str(p).unwrap())
        .collect()
}

/// A broker, the cloud listening for replies, and the daemon subscribed to its commands.
async fn commands_rig() -> (Broker, Watcher, Rig) {
    let broker = Broker::start(BrokerOptions::default());
    let w = Watcher::start(broker.port, "cloud", &[&topic("replies")]).await;
    let r = rig(&format!("mqtt://127.0.0.1:{}", broker.port), "", false).await;
    until("the daemon subscribed", 10, || async {
        r.status().await["uplink"]["state"] == "up"
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    (broker, w, r)
}

/// As `commands_rig`, with the broker logging connections (`connections` counts the daemon's),
/// the cloud listening on `topics`, and `store` lines in the daemon's `[store]`.
async fn logged_rig(topics: &[&str], store: &str) -> (Broker, Watcher, Rig) {
    let broker = Broker::start(BrokerOptions {
        global_extra: "allow_anonymous true\nlog_type notice\n".into(),
        ..BrokerOptions::default()
    });
    let topics: Vec<String> = topics.iter().map(|t| topic(t)).collect();
    let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
    let w = Watcher::start(broker.port, "cloud", &topics).await;
    let r = rig_with_store(
        &format!("mqtt://127.0.0.1:{}", broker.port),
        "",
        false,
        store,
    )
    .await;
    until("the daemon subscribed", 10, || async {
        r.status().await["uplink"]["state"] == "up"
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    (broker, w, r)
}

/// `mosquitto_pub -l` (Debian package mosquitto-clients) publishing `lines` on the commands
/// topic at QoS 1 as fast as the broker takes them: a burst.
fn flood(broker: &Broker, r: &Rig, lines: &[String]) -> std::process::Command {
    let file = r.dir.path().join("flood.txt");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let mut c = std::process::Command::new("mosquitto_pub");
    c.args([
        "-V",
        "mqttv5",
        "-q",
        "1",
        "-h",
        "127.0.0.1",
        "-i",
        "flood",
        "-l",
    ])
    .args(["-p", &broker.port.to_string(), "-t", &topic("commands")])
    .stdin(std::fs::File::open(&file).unwrap());
    c
}

/// How many times the daemon connected, from the broker's log (`logged_rig`).
fn connections(broker: &Broker) -> usize {
    broker.log().matches(&format!(" as {SITE} (")).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_are_applied_once_and_bad_ones_change_nothing() {
    let (_broker, w, r) = commands_rig().await;
    let pay = signed(
        "payment.confirmed",
        json!({"provider": "mpesa", "reference": "RC1", "phone": "254700000009", "plan": "hour"}),
        "cmd-pay-1",
    );
    // Delivered six times (the broker's redelivery, a cloud retry): applied once.
    for _ in 0..6 {
        w.publish(&topic("commands"), pay.clone()).await;
    }
    until("six replies", 10, || async { replies(&w).len() >= 6 }).await;
    let rs = replies(&w);
    assert_eq!(rs[0]["id"], "cmd-pay-1");
    assert_eq!(rs[0]["ok"], true, "{}", rs[0]);
    let user = rs[0]["result"]["user"].as_str().unwrap().to_string();
    for x in &rs[1..6] {
        assert_eq!(x, &rs[0], "a repeat gets the stored reply");
    }
    let st = r.status().await;
    assert_eq!(st["payments"], 1);
    assert_eq!(st["users"]["active"], 1);

    // Bad commands: each gets an error reply and nothing changes.
    let before = r.snapshot().await;
    let body = json!({"id": "c-x", "site": SITE, "issued-at": "2026-11-21T10:00:00Z",
                      "type": "user.suspend", "args": {"user": user}})
    .to_string();
    let good_sig = remote::sign(KEY.as_bytes(), &body);
    let mut wrong_sig = good_sig.clone();
    wrong_sig.replace_range(
        0..2,
        if good_sig.starts_with("00") {
            "11"
        } else {
            "00"
        },
    );
    let cases: Vec<(String, &str)> = vec![
        (
            json!({"body": body, "sig": wrong_sig}).to_string(),
            "bad-signature",
        ),
        (
            remote::envelope(b"some-other-site-key-123", &body),
            "bad-signature",
        ),
        (
            signed("user.suspend", json!({"user": user}), "c-1").replace(SITE, "s2"),
            "bad-signature",
        ),
        (
            {
                let b = json!({"id": "c-2", "site": "s2", "issued-at": "2026-11-21T10:00:00Z",
                               "type": "user.suspend", "args": {"user": user}})
                .to_string();
                remote::envelope(KEY.as_bytes(), &b)
            },
            "wrong-site",
        ),
        ("{\"body\": ".to_string(), "bad-json"),
        ("plain text".to_string(), "bad-json"),
        (
            signed("user.delete", json!({"user": user}), "c-3"),
            "unknown-type",
        ),
        (
            signed("user.suspend", json!({"username": user}), "c-4"),
            "bad-args",
        ),
        (
            signed("payment.confirmed", json!({"provider": "mpesa"}), "c-5"),
            "bad-args",
        ),
        (
            signed(
                "user.suspend",
                json!({"user": user, "reason": "x".repeat(70_000)}),
                "c-6",
            ),
            "too-large",
        ),
        (
            {
                let b = json!({"id": "c-7", "site": SITE, "issued-at": "2020-01-01T00:00:00Z",
                               "type": "user.suspend", "args": {"user": user}})
                .to_string();
                remote::envelope(KEY.as_bytes(), &b)
            },
            "too-old",
        ),
        (
            signed("user.suspend", json!({"user": "nobody"}), "c-8"),
            "not-found",
        ),
    ];
    let n0 = replies(&w).len();
    for (payload, _) in &cases {
        w.publish(&topic("commands"), payload.clone()).await;
    }
    until("a reply to each bad command", 10, || async {
        replies(&w).len() >= n0 + cases.len()
    })
    .await;
    let rs = replies(&w);
    for (i, (_, code)) in cases.iter().enumerate() {
        let x = &rs[n0 + i];
        assert_eq!(x["ok"], false, "case {i}: {x}");
        assert_eq!(x["error"]["code"], *code, "case {i}: {x}");
        assert!(
            !x["error"]["message"].as_str().unwrap().is_empty(),
            "case {i}"
        );
    }
    assert_eq!(
        rs[n0 + 3]["id"],
        "c-2",
        "the id is echoed once the body is read"
    );
    assert_eq!(r.snapshot().await, before, "bad commands changed state");

    // The queries.
    w.publish(&topic("commands"), signed("status.get", json!({}), "q-1"))
        .await;
    w.publish(
        &topic("commands"),
        signed("sessions.list", json!({"all": true}), "q-2"),
    )
    .await;
    w.publish(
        &topic("commands"),
        signed(
            "user.suspend",
            json!({"user": user, "reason": "fraud"}),
            "c-9",
        ),
    )
    .await;
    until("three more replies", 10, || async {
        replies(&w).len() >= n0 + cases.len() + 3
    })
    .await;
    let rs = replies(&w);
    let k = n0 + cases.len();
    assert_eq!(rs[k]["result"]["payments"], 1);
    assert_eq!(rs[k]["result"]["state"], "online");
    assert_eq!(rs[k + 1]["ok"], true);
    assert!(rs[k + 1]["result"].is_array(), "{}", rs[k + 1]);
    assert_eq!(rs[k + 2]["result"]["state"], "suspended", "{}", rs[k + 2]);
    assert_eq!(r.status().await["users"]["suspended"], 1);
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_refuses_our_publishes_is_reported_and_nothing_is_lost() {
    let mut broker_dir_acl = String::new();
    let acl_dir = tempfile::tempdir().unwrap();
    let acl = acl_dir.path().join("acl");
    // The site may read its commands but not publish anything.
    std::fs::write(
        &acl,
        format!(
            "user cloud\ntopic readwrite #\n\nuser {SITE}\ntopic read hotspot/{SITE}/commands\n"
        ),
    )
    .unwrap();
    broker_dir_acl.push_str(&format!(
        "allow_anonymous true\nacl_file {}\n",
        acl.display()
    ));
    let broker = Broker::start(BrokerOptions {
        global_extra: broker_dir_acl,
        ..Default::default()
    });
    let r = rig(
        &format!("mqtt://127.0.0.1:{}", broker.port),
        &format!("username = \"{SITE}\""),
        false,
    )
    .await;
    r.pay("ACL1").await;
    until("the refusal is reported", 10, || async {
        r.status().await["uplink"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("refused") && e.contains("NotAuthorized"))
    })
    .await;
    // Still running, nothing dropped.
    let last = r.last_seq().await;
    assert!(last >= 4);
    assert_eq!(r.depth().await, last, "refused events stay in the outbox");
    r.pay("ACL2").await;
    assert!(r.last_seq().await > last, "the daemon keeps working");
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_payment_with_a_mac_logs_the_device_in_on_the_router() {
    let broker = Broker::start(BrokerOptions::default());
    let w = Watcher::start(broker.port, "cloud", &[&topic("replies")]).await;
    let r = rig(&format!("mqtt://127.0.0.1:{}", broker.port), "", true).await;
    let sim = r.sim.as_ref().unwrap();
    until("the daemon is connected", 10, || async {
        r.status().await["uplink"]["state"] == "up"
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    w.publish(
        &topic("commands"),
        signed(
            "payment.confirmed",
            json!({"provider": "mpesa", "reference": "MAC1", "phone": "254700000042",
                   "amount": 1000, "plan": "hour", "mac": "AA:BB:CC:00:00:42", "ip": "10.5.50.42"}),
            "cmd-mac-1",
        ),
    )
    .await;
    until("a reply", 10, || async { !replies(&w).is_empty() }).await;
    let reply = &replies(&w)[0];
    assert_eq!(reply["ok"], true, "{reply}");
    let user = reply["result"]["user"].as_str().unwrap().to_string();
    until(
        "the user exists on the router and the device is logged in",
        10,
        || async {
            let m = sim.model();
            m.users.by("name", &user).is_some()
                && m.active.rows.iter().any(|a| {
                    a.get("user") == Some(user.as_str())
                        && a.get("mac-address") == Some("AA:BB:CC:00:00:42")
                })
        },
    )
    .await;
    r.stop().await;
}

/// Files of a test PKI: a CA, the broker's certificate for "localhost", a client certificate.
fn write_pki(dir: &std::path::Path) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(vec![]).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&server_key, &ca, &ca_key)
        .unwrap();
    let client_key = KeyPair::generate().unwrap();
    let mut client_params = CertificateParams::new(vec![]).unwrap();
    client_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, SITE);
    let client = client_params.signed_by(&client_key, &ca, &ca_key).unwrap();
    for (name, text) in [
        ("ca.pem", ca.pem()),
        ("server.pem", server.pem()),
        ("server.key", server_key.serialize_pem()),
        ("client.pem", client.pem()),
        ("client.key", client_key.serialize_pem()),
    ] {
        std::fs::write(dir.join(name), text).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_test_ca_and_a_client_certificate() {
    let pki = tempfile::tempdir().unwrap();
    write_pki(pki.path());
    let p = |f: &str| pki.path().join(f).display().to_string();
    let broker = Broker::start(BrokerOptions {
        listener_extra: format!(
            "cafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate true\nuse_identity_as_username true\n",
            p("ca.pem"),
            p("server.pem"),
            p("server.key")
        ),
        plain_listener: true,
        ..Default::default()
    });
    let w = Watcher::start(broker.plain_port, "cloud", &[&topic("events")]).await;
    let r = rig(
        &format!("mqtts://localhost:{}", broker.port),
        &format!(
            "ca-file = \"{}\"\nclient-certificate-file = \"{}\"\nclient-key-file = \"{}\"",
            p("ca.pem"),
            p("client.pem"),
            p("client.key")
        ),
        false,
    )
    .await;
    r.pay("TLS1").await;
    let last = r.last_seq().await;
    until("events over TLS", 10, || async {
        r.depth().await == 0 && events(&w).len() as i64 >= last
    })
    .await;
    assert_complete_and_ordered(&events(&w), last);
    r.stop().await;

    // A broker certificate from another CA is refused, and said so.
    let other = tempfile::tempdir().unwrap();
    write_pki(other.path());
    let r = rig(
        &format!("mqtts://localhost:{}", broker.port),
        &format!(
            "ca-file = \"{}\"\nclient-certificate-file = \"{}\"\nclient-key-file = \"{}\"",
            other.path().join("ca.pem").display(),
            p("client.pem"),
            p("client.key")
        ),
        false,
    )
    .await;
    r.pay("TLS2").await;
    until("the untrusted broker is reported", 10, || async {
        r.status().await["uplink"]["error"]
            .as_str()
            .is_some_and(|e| e.to_lowercase().contains("certificate"))
    })
    .await;
    assert!(
        r.depth().await > 0,
        "nothing was sent to an untrusted broker"
    );
    r.stop().await;
}

#[cfg(feature = "http-uplink")]
/// A minimal HTTP/1.1 server for the fallback test: records (authorization, body) of each POST
/// and answers with the next status from `statuses` (then 200).
async fn http_sink(statuses: Vec<u16>) -> (u16, Arc<std::sync::Mutex<Vec<(String, String, u16)>>>) {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = Arc::new(std::sync::Mutex::new(Vec::new()));
    let g = got.clone();
    let statuses = Arc::new(std::sync::Mutex::new(statuses.into_iter()));
    tokio::spawn(async move {
        loop {
            let (sock, _) = listener.accept().await.unwrap();
            let (g, statuses) = (g.clone(), statuses.clone());
            tokio::spawn(async move {
                let mut r = BufReader::new(sock);
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let (mut len, mut auth) = (0usize, String::new());
                    loop {
                        let mut h = String::new();
                        r.read_line(&mut h).await.unwrap();
                        let h = h.trim_end();
                        if h.is_empty() {
                            break;
                        }
                        let (k, v) = h.split_once(':').unwrap();
                        match k.to_ascii_lowercase().as_str() {
                            "content-length" => len = v.trim().parse().unwrap(),
                            "authorization" => auth = v.trim().to_string(),
                            _ => {}
                        }
                    }
                    let mut body = vec![0; len];
                    r.read_exact(&mut body).await.unwrap();
                    let status = statuses.lock().unwrap().next().unwrap_or(200);
                    g.lock()
                        .unwrap()
                        .push((auth, String::from_utf8(body).unwrap(), status));
                    let resp = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\n\r\n");
                    r.get_mut().write_all(resp.as_bytes()).await.unwrap();
                }
            });
        }
    });
    (port, got)
}

#[cfg(feature = "http-uplink")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_fallback_posts_the_outbox_when_mqtt_is_unreachable() {
    let (port, got) = http_sink(vec![503]).await;
    let token_dir = tempfile::tempdir().unwrap();
    let token = token_dir.path().join("token");
    std::fs::write(&token, "bearer-token-123\n").unwrap();
    // No broker listens on the MQTT port.
    let dead = common::mosquitto::free_port();
    let r = rig(
        &format!("mqtt://127.0.0.1:{dead}"),
        &format!(
            "[uplink.http]\nurl = \"http://127.0.0.1:{port}/events\"\ntoken-file = \"{}\"\nafter = \"1s\"\nbatch = 4\ninterval = \"1s\"",
            token.display()
        ),
        false,
    )
    .await;
    r.pay("H1").await;
    r.pay("H2").await;
    let last = r.last_seq().await;
    until("the outbox drained over HTTP", 20, || async {
        r.depth().await == 0
    })
    .await;
    let posts = got.lock().unwrap().clone();
    assert_eq!(posts[0].2, 503, "the first POST was refused");
    for (auth, _, _) in &posts {
        assert_eq!(auth, "Bearer bearer-token-123");
    }
    // The refused batch came again, identical; every event arrived with its outbox id.
    assert_eq!(
        posts[0].1, posts[1].1,
        "a refused batch is sent again as it was"
    );
    let mut evs = Vec::new();
    for (_, body, status) in &posts {
        if *status == 200 {
            let a: Vec<Value> = serde_json::from_str(body).unwrap();
            assert!(a.len() <= 4);
            evs.extend(a);
        }
    }
    assert_complete_and_ordered(&evs, last);
    assert_eq!(r.status().await["uplink"]["via"], "https");
    r.stop().await;
}

/// A command whose transaction fails for a reason that will not change (here a trigger that
/// refuses one payment, as a failing CHECK does) is answered with the error and acknowledged:
/// the command behind it is applied and the link stays up. Before, the store error dropped the
/// connection before the PUBACK and the broker redelivered it forever, blocking every command
/// behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_the_store_refuses_for_good_is_answered_and_blocks_nothing() {
    let (_broker, w, r) = commands_rig().await;
    rusqlite::Connection::open(r.dir.path().join("h.db"))
        .unwrap()
        .execute_batch(
            "CREATE TRIGGER poison BEFORE INSERT ON payments WHEN NEW.reference = 'POISON'
             BEGIN SELECT RAISE(ABORT, 'refused for the test'); END;",
        )
        .unwrap();
    let pay = |reference: &str, id: &str| {
        signed(
            "payment.confirmed",
            json!({"provider": "mpesa", "reference": reference, "plan": "hour"}),
            id,
        )
    };
    w.publish(&topic("commands"), pay("POISON", "cmd-poison"))
        .await;
    w.publish(&topic("commands"), pay("GOOD1", "cmd-good"))
        .await;
    until("two replies", 10, || async { replies(&w).len() >= 2 }).await;
    let rs = replies(&w);
    let by_id = |id: &str| rs.iter().find(|x| x["id"] == id).cloned().unwrap();
    let poison = by_id("cmd-poison");
    assert_eq!(poison["ok"], false, "{poison}");
    assert_eq!(poison["error"]["code"], "store-error", "{poison}");
    assert!(
        poison["error"]["message"]
            .as_str()
            .unwrap()
            .contains("refused for the test"),
        "{poison}"
    );
    assert_eq!(by_id("cmd-good")["ok"], true);
    // Acknowledged: not delivered again, and the link never dropped.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(replies(&w).len(), 2, "{:?}", replies(&w));
    let st = r.status().await;
    assert_eq!(st["uplink"]["state"], "up", "{st}");
    assert_eq!(st["payments"], 1, "{st}");
    r.stop().await;
}

/// A burst of 5,000 junk and 1,000 signed commands published at once (as a flood by anyone with
/// the broker password, or a cloud's backlog after an outage) while the site keeps selling
/// locally: the link never drops, every valid command is applied once, junk is refused within
/// the reply budget, and local events reach the cloud during the burst, not after it. Before,
/// the event loop stalled behind the commands, rumqttc's request channel filled, and the link
/// flapped with growing backoff. Figures: `hotspot-edge-bench mqtt-burst` (docs/benchmarks.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_commands_keeps_the_link_up_and_events_flowing() {
    let (broker, w, r) = logged_rig(&["replies", "events"], "").await;
    let up_since = r.status().await["uplink"]["since"].clone();

    let (junk, valid) = (5000usize, 1000usize);
    let mut lines = Vec::with_capacity(junk + valid);
    for i in 0..junk + valid {
        if i % 6 == 5 {
            let n = i / 6;
            lines.push(signed(
                "payment.confirmed",
                json!({"provider": "mpesa", "reference": format!("B{n}"), "plan": "hour"}),
                &format!("burst-{n}"),
            ));
        } else {
            lines.push(match i % 3 {
                0 => format!("junk {i}"),
                1 => json!({"body": "{}", "sig": "00".repeat(32)}).to_string(),
                _ => json!({"body": format!("{{\"id\":\"x{i}\"}}")}).to_string(),
            });
        }
    }
    let publisher = flood(&broker, &r, &lines)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("mosquitto_pub (Debian package mosquitto-clients)");

    // Local sales every 100 ms until every valid command is answered.
    let ok_replies = |w: &Watcher| {
        replies(w)
            .iter()
            .filter(|x| x["ok"] == true && x["id"].as_str().unwrap_or("").starts_with("burst-"))
            .count()
    };
    let mut sold_at: Vec<(String, Instant)> = Vec::new();
    let end = Instant::now() + Duration::from_secs(600);
    while ok_replies(&w) < valid {
        assert!(
            Instant::now() < end,
            "{} of {valid} valid commands answered after 10 minutes; missing {:?}; status {}\n{}",
            ok_replies(&w),
            {
                let got: std::collections::BTreeSet<String> = replies(&w)
                    .iter()
                    .filter_map(|x| x["id"].as_str().map(str::to_string))
                    .collect();
                (0..valid)
                    .map(|n| format!("burst-{n}"))
                    .filter(|id| !got.contains(id))
                    .collect::<Vec<_>>()
            },
            r.status().await,
            broker.log()
        );
        let reference = format!("L{}", sold_at.len());
        r.apply(payment(&reference, None)).await.unwrap();
        sold_at.push((reference, Instant::now()));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let out = publisher.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "mosquitto_pub: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last_reply = w
        .on_timed(&topic("replies"))
        .iter()
        .map(|(at, _)| *at)
        .max()
        .unwrap();

    // Every valid command applied once, with its reply.
    let rs = replies(&w);
    let mut ids: Vec<&str> = rs
        .iter()
        .filter(|x| x["ok"] == true)
        .filter_map(|x| x["id"].as_str())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), valid, "distinct valid commands answered");
    until("all payments and events are out", 60, || async {
        r.status().await["outbox"]["depth"] == 0
    })
    .await;
    let st = r.status().await;
    assert_eq!(st["payments"], (valid + sold_at.len()) as i64, "{st}");

    // Junk: refused, the replies within the budget (a burst, then a few per second).
    let junk_replies = rs.iter().filter(|x| x["ok"] == false).count();
    assert!(junk_replies >= 1, "junk is answered up to the budget");
    assert!(
        junk_replies < junk / 4,
        "{junk_replies} replies to {junk} unsigned messages: the budget did not hold"
    );

    // The link never dropped: one connection at the broker, the same `since`.
    assert_eq!(
        connections(&broker),
        1,
        "the daemon reconnected during the burst:\n{}",
        broker.log()
    );
    assert_eq!(st["uplink"]["state"], "up", "{st}");
    assert_eq!(st["uplink"]["since"], up_since, "{st}");

    // Nothing lost on the way up: every event once, in seq order.
    assert_complete_and_ordered(&events(&w), st["outbox"]["last-seq"].as_i64().unwrap());

    // Events kept flowing during the burst: local sales made while the commands were being
    // answered reached the cloud before the last answer, not behind the whole burst.
    let arrived: BTreeMap<String, Instant> = w
        .on_timed(&topic("events"))
        .into_iter()
        .filter_map(|(at, p)| {
            let e: Value = serde_json::from_str(&p).ok()?;
            let reference = e["payload"]["reference"].as_str()?.to_string();
            (e["type"] == "payment.recorded").then_some((reference, at))
        })
        .collect();
    let during: Vec<&(String, Instant)> = sold_at.iter().filter(|(_, t)| *t < last_reply).collect();
    let mut delays: Vec<Duration> = during
        .iter()
        .map(|(reference, t)| {
            arrived
                .get(reference)
                .unwrap_or_else(|| panic!("no payment.recorded for local sale {reference}"))
                .saturating_duration_since(*t)
        })
        .collect();
    delays.sort();
    let in_time = during
        .iter()
        .filter(|(reference, _)| arrived[reference] < last_reply)
        .count();
    eprintln!(
        "burst: {} local sales while it was answered, {in_time} of their events reached the cloud before its last reply; event delay median {:?}, max {:?}; {junk_replies} replies to junk",
        during.len(),
        delays.get(delays.len() / 2),
        delays.last(),
    );
    assert!(
        during.len() >= 3,
        "the burst was over before local sales could interleave"
    );
    // All but the last two (sold just before the last reply, still on their way).
    assert!(
        in_time + 2 >= during.len(),
        "{} of {} local sales made during the burst reached the cloud only after it",
        during.len() - in_time,
        during.len()
    );
    r.stop().await;
}

/// A command the store cannot take for now (another process holds the write lock longer than
/// `busy-timeout`, as a CLI run or a full disk would) is tried again with backoff, in order with
/// the one behind it, while the link stays up and the status keeps being published. Before, the
/// store error dropped the connection and the broker redelivered after the reconnect backoff.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_the_store_cannot_take_now_is_retried_while_the_link_stays_up() {
    let (broker, w, r) = logged_rig(&["replies", "status"], "busy-timeout = \"20ms\"").await;

    // The write lock, held by another connection as a CLI command would.
    let holder = rusqlite::Connection::open(r.dir.path().join("h.db")).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let pay = |reference: &str, id: &str| {
        signed(
            "payment.confirmed",
            json!({"provider": "mpesa", "reference": reference, "plan": "hour"}),
            id,
        )
    };
    w.publish(&topic("commands"), pay("HELD1", "cmd-held-1"))
        .await;
    w.publish(&topic("commands"), pay("HELD2", "cmd-held-2"))
        .await;
    let statuses_before = w.on(&topic("status")).len();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        replies(&w).is_empty(),
        "applied through a held lock? {:?}",
        replies(&w)
    );
    assert!(
        w.on(&topic("status")).len() > statuses_before,
        "the heartbeat stopped while a command waited for the store"
    );
    holder.execute_batch("ROLLBACK").unwrap();

    until("both replies", 40, || async { replies(&w).len() >= 2 }).await;
    let rs = replies(&w);
    assert_eq!(rs[0]["id"], "cmd-held-1", "in order: {rs:?}");
    assert_eq!(rs[1]["id"], "cmd-held-2", "in order: {rs:?}");
    assert!(rs.iter().all(|x| x["ok"] == true), "{rs:?}");
    let st = r.status().await;
    assert_eq!(st["payments"], 2, "{st}");
    assert_eq!(st["uplink"]["state"], "up", "{st}");
    assert_eq!(connections(&broker), 1, "reconnected:\n{}", broker.log());
    r.stop().await;
}

/// Acknowledged events whose removal from the outbox fails (here a trigger, as ENOSPC or a
/// busy database would) are removed once the store takes writes again, without a restart or a
/// reconnection. Before, they stayed until the next connection and `status` showed a backlog
/// the cloud already had.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_events_whose_removal_failed_are_removed_later() {
    let broker = Broker::start(BrokerOptions::default());
    let w = Watcher::start(broker.port, "cloud", &[&topic("events")]).await;
    let r = rig(&format!("mqtt://127.0.0.1:{}", broker.port), "", false).await;
    until("connected and drained", 10, || async {
        let st = r.status().await;
        st["uplink"]["state"] == "up" && st["outbox"]["depth"] == 0
    })
    .await;
    let db = rusqlite::Connection::open(r.dir.path().join("h.db")).unwrap();
    db.execute_batch(
        "CREATE TABLE refuse_removal (x);
         INSERT INTO refuse_removal VALUES (1);
         CREATE TRIGGER refuse_removal BEFORE DELETE ON outbox
         WHEN EXISTS (SELECT 1 FROM refuse_removal)
         BEGIN SELECT RAISE(ABORT, 'database or disk is full (test)'); END;",
    )
    .unwrap();
    r.pay("R1").await;
    let last = r.last_seq().await;
    until("the cloud got the payment's events", 10, || async {
        events(&w).iter().any(|e| e["seq"] == last)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        r.depth().await > 0,
        "the trigger did not refuse the removal"
    );
    db.execute_batch("DELETE FROM refuse_removal").unwrap();
    until("the acknowledged events are removed", 10, || async {
        r.depth().await == 0
    })
    .await;
    // Not by sending them again: each went out once.
    let copies = events(&w).iter().filter(|e| e["seq"] == last).count();
    assert_eq!(copies, 1);
    r.stop().await;
}

/// A command of 1 MiB (the broker limit docs/mqtt.md recommends) reaches the site and is answered
/// `too-large`. Before, the site announced a maximum packet of exactly 1 MiB, so the broker
/// dropped such a message (payload plus topic and headers) and the cloud never got a reply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mebibyte_command_is_answered_too_large() {
    let (_broker, w, r) = commands_rig().await;
    w.publish(&topic("commands"), "x".repeat(1 << 20)).await;
    until("a reply", 20, || async { !replies(&w).is_empty() }).await;
    let rs = replies(&w);
    assert_eq!(rs[0]["error"]["code"], "too-large", "{rs:?}");
    assert!(
        rs[0]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1048576 bytes"),
        "{rs:?}"
    );
    r.stop().await;
}

/// Commands that pile up behind one waiting for the store (a held write lock), 5 MB of them,
/// are all handled once the store is back: every valid one applied once, in order, none lost.
/// If the broker sends more than the site holds (10,000 commands or 4 MiB: only a broker that
/// ignores the announced Receive Maximum does), the excess is left unacknowledged and comes
/// again after a reconnection; mosquitto 2.0.11 kept to the Receive Maximum here (one
/// connection), so this checks the queue, not the shedding.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_queued_behind_a_store_wait_are_all_applied_once() {
    let (broker, w, r) = logged_rig(&["replies"], "busy-timeout = \"20ms\"").await;
    let holder = rusqlite::Connection::open(r.dir.path().join("h.db")).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let pay = |n: usize| {
        signed(
            "payment.confirmed",
            json!({"provider": "mpesa", "reference": format!("S{n}"), "plan": "hour"}),
            &format!("cmd-shed-{n}"),
        )
    };
    let mut lines = vec![pay(0)];
    lines.extend((0..80).map(|i| format!("{i:x<61440}")));
    lines.extend((1..=10).map(pay));
    let out = flood(&broker, &r, &lines)
        .output()
        .expect("mosquitto_pub (Debian package mosquitto-clients)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    holder.execute_batch("ROLLBACK").unwrap();
    let ok = |w: &Watcher| replies(w).iter().filter(|x| x["ok"] == true).count();
    until("all eleven payments answered", 60, || async {
        ok(&w) >= 11
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let st = r.status().await;
    assert_eq!(st["payments"], 11, "{st}");
    assert_eq!(ok(&w), 11, "each answered once: {:?}", replies(&w));
    let ids: Vec<String> = replies(&w)
        .iter()
        .filter(|x| x["ok"] == true)
        .map(|x| x["id"].as_str().unwrap().to_string())
        .collect();
    let expected: Vec<String> = (0..=10).map(|n| format!("cmd-shed-{n}")).collect();
    assert_eq!(ids, expected, "in order");
    r.stop().await;
}

/// The signed `clock.reset-high-water` brings a wrong high-water mark (a year ahead) down to the
/// site's wall clock: the site is trusted again and the reply says from and to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_command_resets_a_wrong_clock_high_water_mark() {
    let (_broker, w, r) = commands_rig().await;
    let db = rusqlite::Connection::open(r.dir.path().join("h.db")).unwrap();
    let text: String = db
        .query_row("SELECT value FROM meta WHERE key = 'clock'", [], |x| {
            x.get(0)
        })
        .unwrap();
    let mut v: Value = serde_json::from_str(&text).unwrap();
    let ahead = v["hwm-wall-ms"].as_i64().unwrap() + 365 * 86_400_000;
    v["hwm-wall-ms"] = json!(ahead);
    db.execute(
        "UPDATE meta SET value = ?1 WHERE key = 'clock'",
        [v.to_string()],
    )
    .unwrap();
    assert_eq!(r.status().await["clock"]["trusted"], false);
    w.publish(
        &topic("commands"),
        signed("clock.reset-high-water", json!({}), "cmd-clock-1"),
    )
    .await;
    until("a reply", 10, || async { !replies(&w).is_empty() }).await;
    let rs = replies(&w);
    assert_eq!(rs[0]["ok"], true, "{rs:?}");
    assert_eq!(
        rs[0]["result"]["from"],
        hotspot_edge::clock::rfc3339(ahead),
        "{rs:?}"
    );
    assert_eq!(r.status().await["clock"]["trusted"], true);
    r.stop().await;
}
