//! `mqtt-burst`: a burst of signed commands, with and without junk among them, published at once
//! into a local mosquitto for the daemon (a child process). Measures how long the burst takes to
//! be answered, how late the events reach the cloud meanwhile (from each event's `occurred-at`
//! to its arrival at a subscriber), the link's drops (connections in the broker's log) and the
//! daemon's RSS. The run without junk is the baseline of the same run.

use std::path::Path;
use std::process::{Command as Proc, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hotspot_edge::uplink::mqtt::remote;
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use serde_json::{json, Value};

const KEY: &str = "bench-command-key-0123456789";

fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

struct Outcome {
    answered_s: f64,
    delays_ms: Vec<i64>,
    events: usize,
    junk_replies: usize,
    connections: usize,
    rss_idle_kib: u64,
    rss_peak_kib: u64,
}

/// The cloud: every message on events and replies with its arrival (wall ms).
type Got = Arc<Mutex<Vec<(String, String, i64)>>>;

fn cloud(port: u16) -> (Got, std::thread::JoinHandle<()>) {
    let got: Got = Arc::default();
    let g = got.clone();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let mut o = MqttOptions::new("bench-cloud", "127.0.0.1", port);
            o.set_keep_alive(Duration::from_secs(60));
            o.set_max_packet_size(Some(16 << 20));
            let (client, mut el) = AsyncClient::new(o, 100);
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        for t in ["hotspot/bench/events", "hotspot/bench/replies"] {
                            client
                                .subscribe(t, QoS::AtLeastOnce)
                                .await
                                .expect("subscribe");
                        }
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        let _ = ready_tx.send(());
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => g.lock().expect("lock").push((
                        String::from_utf8_lossy(&p.topic).into_owned(),
                        String::from_utf8_lossy(&p.payload).into_owned(),
                        wall_ms(),
                    )),
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        });
    });
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("cloud subscriber");
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("cloud subscriber");
    (got, thread)
}

fn signed(n: usize) -> String {
    let body = json!({"id": format!("burst-{n}"), "site": "bench",
        "issued-at": hotspot_edge::clock::rfc3339(wall_ms()),
        "type": "payment.confirmed",
        "args": {"provider": "mpesa", "reference": format!("B{n:06}"), "plan": "bench"}})
    .to_string();
    remote::envelope(KEY.as_bytes(), &body)
}

fn scenario(dir: &Path, name: &str, valid: usize, junk: usize) -> Outcome {
    let d = dir.join(name);
    std::fs::create_dir_all(&d).expect("dir");
    let (_broker, port) = super::mqtt_drain::mosquitto_with(
        &d,
        "max_queued_messages 1000000\nlog_dest stderr\nlog_type notice\n",
    );
    let (got, _cloud) = cloud(port);
    std::fs::write(d.join("command.key"), KEY).expect("key");
    let db = d.join("h.db");
    let cfg = d.join("bench.toml");
    std::fs::write(
        &cfg,
        format!(
            "[site]\nid = \"bench\"\n[store]\npath = \"{}\"\n[log]\nlevel = \"error\"\n[mqtt]\nurl = \"mqtt://127.0.0.1:{port}\"\ncommand-key-file = \"{}\"\n[[plans]]\nid = \"bench\"\nname = \"bench\"\nprice = 1000\ncurrency = \"KES\"\ntime = \"1h\"\n",
            db.display(),
            d.join("command.key").display()
        ),
    )
    .expect("config");
    let daemon = super::spawn_daemon(None, None, &cfg, &d.join("daemon.log"));
    let pid = daemon.0.id().to_string();
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let up = rusqlite::Connection::open(&db).ok().and_then(|c| {
            c.query_row("SELECT value FROM meta WHERE key = 'uplink'", [], |r| {
                r.get::<_, String>(0)
            })
            .ok()
        });
        if up.is_some_and(|v| v.contains("\"up\"")) {
            break;
        }
        assert!(Instant::now() < end, "the daemon did not connect");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
    let rss_idle_kib = super::rss_kib(&pid, "VmRSS:");

    // The valid commands spread evenly among the junk.
    let total = valid + junk;
    let lines: Vec<String> = (0..total)
        .map(|i| {
            if (i + 1) * valid / total > i * valid / total {
                signed(i * valid / total)
            } else {
                match i % 3 {
                    0 => format!("junk {i}"),
                    1 => json!({"body": "{}", "sig": "00".repeat(32)}).to_string(),
                    _ => json!({"body": format!("{{\"id\":\"x{i}\"}}")}).to_string(),
                }
            }
        })
        .collect();
    let file = d.join("burst.txt");
    std::fs::write(&file, lines.join("\n") + "\n").expect("burst file");
    let started = Instant::now();
    let publisher = Proc::new("mosquitto_pub")
        .args(["-V", "mqttv5", "-q", "1", "-h", "127.0.0.1", "-i", "flood"])
        .args([
            "-p",
            &port.to_string(),
            "-t",
            "hotspot/bench/commands",
            "-l",
        ])
        .stdin(std::fs::File::open(&file).expect("burst file"))
        .stdout(Stdio::null())
        .spawn()
        .expect("mosquitto_pub (Debian package mosquitto-clients)");
    let mut rss_peak_kib = rss_idle_kib;
    let mut answered: Option<f64> = None;
    let watch = rusqlite::Connection::open(&db).expect("watch");
    loop {
        rss_peak_kib = rss_peak_kib.max(super::rss_kib(&pid, "VmRSS:"));
        if answered.is_none() {
            let ok = got
                .lock()
                .expect("lock")
                .iter()
                .filter(|(t, p, _)| t.ends_with("/replies") && p.contains("\"ok\":true"))
                .count();
            if ok >= valid {
                answered = Some(started.elapsed().as_secs_f64());
            }
        } else {
            let empty: bool = watch
                .query_row("SELECT NOT EXISTS (SELECT 1 FROM outbox)", [], |r| r.get(0))
                .unwrap_or(false);
            if empty {
                break;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "the burst was not answered in 15 minutes"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(publisher);
    std::thread::sleep(Duration::from_millis(300));
    let got = got.lock().expect("lock").clone();
    let mut delays_ms = Vec::new();
    let mut junk_replies = 0;
    for (topic, payload, at) in &got {
        if topic.ends_with("/replies") {
            junk_replies += usize::from(payload.contains("\"ok\":false"));
            continue;
        }
        let v: Value = serde_json::from_str(payload).unwrap_or(Value::Null);
        let evs = match v {
            Value::Array(a) => a,
            v => vec![v],
        };
        for e in evs {
            if let Some(t) = e["occurred-at"]
                .as_str()
                .and_then(hotspot_edge::clock::parse_rfc3339)
            {
                delays_ms.push(at - t);
            }
        }
    }
    delays_ms.sort_unstable();
    let log = std::fs::read_to_string(d.join("mosquitto.log")).unwrap_or_default();
    let _ = Proc::new("kill").arg("-TERM").arg(&pid).status();
    Outcome {
        answered_s: answered.unwrap_or(0.0),
        events: delays_ms.len(),
        delays_ms,
        junk_replies,
        connections: log.matches(" as bench (").count(),
        rss_idle_kib,
        rss_peak_kib,
    }
}

pub fn run(valid: usize, junk: usize, dir: Option<std::path::PathBuf>) {
    let d = super::work_dir(dir);
    println!(
        "mqtt-burst: {valid} signed payments, alone and with {junk} junk messages among them, published at once (mosquitto_pub -l, QoS 1) to a local mosquitto; batch 1, inflight 100"
    );
    let base = scenario(&d, "valid-only", valid, 0);
    let burst = scenario(&d, "with-junk", valid, junk);
    for (name, o) in [("valid only", &base), ("with junk", &burst)] {
        println!(
            "{name:<11} answered in {:>6.2} s  events {:>5}  delay p50 {:>5} ms  p99 {:>5} ms  max {:>5} ms  junk replies {:>4}  connections {}  RSS idle {} KiB peak {} KiB",
            o.answered_s,
            o.events,
            super::percentile(&o.delays_ms, 0.5),
            super::percentile(&o.delays_ms, 0.99),
            o.delays_ms.last().copied().unwrap_or(0),
            o.junk_replies,
            o.connections,
            o.rss_idle_kib,
            o.rss_peak_kib,
        );
    }
    println!(
        "with junk / valid only: answered {:.2}x, event delay p50 {:.2}x, max {:.2}x, peak RSS {:.2}x",
        burst.answered_s / base.answered_s.max(1e-9),
        super::percentile(&burst.delays_ms, 0.5) as f64
            / (super::percentile(&base.delays_ms, 0.5) as f64).max(1.0),
        burst.delays_ms.last().copied().unwrap_or(0) as f64
            / (base.delays_ms.last().copied().unwrap_or(0) as f64).max(1.0),
        burst.rss_peak_kib as f64 / base.rss_peak_kib.max(1) as f64,
    );
    if std::env::var_os("BENCH_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&d);
    } else {
        println!("kept {}", d.display());
    }
}
