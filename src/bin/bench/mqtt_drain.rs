//! `mqtt-drain`: a backlog of N events drained by the daemon (a child process) to a local
//! mosquitto, against a raw rumqttc QoS 1 publisher sending the same payloads in the same run.

use std::path::{Path, PathBuf};
use std::process::{Command as Proc, Stdio};
use std::time::{Duration, Instant};

use super::Killed;

use hotspot_edge::clock::SystemClock;
use hotspot_edge::engine::command::Source;
use hotspot_edge::engine::OsEntropy;
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

pub(super) fn mosquitto(dir: &Path) -> (Killed, u16) {
    mosquitto_with(dir, "max_inflight_messages 0\nlog_dest none\n")
}

/// A local mosquitto with `extra` config lines; its stderr (the log, with `log_dest stderr`)
/// goes to `dir/mosquitto.log`.
pub(super) fn mosquitto_with(dir: &Path, extra: &str) -> (Killed, u16) {
    let port = free_port();
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n{extra}"),
    )
    .expect("mosquitto.conf");
    let bin = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("mosquitto is not installed (apt-get install mosquitto)");
    let child = Proc::new(bin)
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("mosquitto.log")).expect("mosquitto.log"))
        .spawn()
        .expect("start mosquitto");
    let end = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < end, "mosquitto did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    (Killed::new(child), port)
}

/// A database whose outbox holds at least `events` events (payments: 3 events each).
fn backlog(db: &Path, events: usize) -> Vec<String> {
    let (mut store, engine) = super::open_with_plan(db);
    let payments = events.div_ceil(3);
    for chunk in (0..payments).collect::<Vec<_>>().chunks(1000) {
        let cmds: Vec<_> = chunk.iter().map(|i| super::payment(*i, false)).collect();
        let refs: Vec<_> = cmds.iter().map(|c| (None, c)).collect();
        store
            .apply_many(&engine, &SystemClock, &mut OsEntropy, Source::Cli, &refs)
            .expect("backlog");
    }
    let rows = store.outbox_after("bench", 0, -1).expect("outbox");
    store.close().expect("close");
    rows.into_iter().map(|r| r.json).collect()
}

/// The baseline: the same payloads, QoS 1, the same window, straight through rumqttc.
fn raw(port: u16, payloads: &[String], inflight: u16) -> f64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut o = MqttOptions::new("raw-bench", "127.0.0.1", port);
        o.set_outgoing_inflight_upper_limit(inflight);
        o.set_keep_alive(Duration::from_secs(60));
        let (client, mut el) = AsyncClient::new(o, inflight as usize + 64);
        let started = Instant::now();
        let sender = {
            let payloads = payloads.to_vec();
            tokio::spawn(async move {
                for p in payloads {
                    client
                        .publish("hotspot/bench/events", QoS::AtLeastOnce, false, p)
                        .await
                        .expect("publish");
                }
            })
        };
        let mut acked = 0;
        while acked < payloads.len() {
            if let Event::Incoming(Packet::PubAck(_)) = el.poll().await.expect("raw connection") {
                acked += 1;
            }
        }
        sender.await.expect("sender");
        payloads.len() as f64 / started.elapsed().as_secs_f64()
    })
}

/// The daemon as a child process draining `db`; returns (events/s, peak RSS KiB).
fn daemon(dir: &Path, db: &Path, port: u16, batch: usize, events: usize) -> (f64, u64) {
    let cfg = dir.join(format!("drain-{batch}.toml"));
    std::fs::write(
        &cfg,
        format!(
            "[site]\nid = \"bench\"\n[store]\npath = \"{}\"\noutbox-max-events = 10000000\n[log]\nlevel = \"error\"\n[mqtt]\nurl = \"mqtt://127.0.0.1:{port}\"\nbatch = {batch}\n",
            db.display()
        ),
    )
    .expect("config");
    let watch = rusqlite::Connection::open(db).expect("watch connection");
    let started = Instant::now();
    let child = super::spawn_daemon(None, None, &cfg, &dir.join(format!("drain-{batch}.log")));
    let pid = child.0.id().to_string();
    let mut peak = 0;
    // The drain is timed from the connection (written by the daemon on CONNACK), so the
    // database check at start-up is not counted.
    let mut connected: Option<Instant> = None;
    loop {
        peak = peak.max(super::rss_kib(&pid, "VmRSS:"));
        if connected.is_none() {
            let up: Option<String> = watch
                .query_row("SELECT value FROM meta WHERE key = 'uplink'", [], |r| {
                    r.get(0)
                })
                .ok();
            if up.is_some_and(|v| v.contains("\"up\"")) {
                connected = Some(Instant::now());
            }
        }
        let any: bool = watch
            .query_row("SELECT EXISTS (SELECT 1 FROM outbox)", [], |r| r.get(0))
            .unwrap_or(true);
        if !any {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "drain took over 10 minutes"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let from = connected.unwrap_or(started);
    let rate = events as f64 / from.elapsed().as_secs_f64();
    let _ = Proc::new("kill")
        .arg("-TERM")
        .arg(child.0.id().to_string())
        .status();
    (rate, peak)
}

pub fn run(events: usize, batch: usize, dir: Option<PathBuf>) {
    let d = super::work_dir(dir);
    let (_broker, port) = mosquitto(&d);
    let master = d.join("backlog.db");
    let payloads = backlog(&master, events);
    let n = payloads.len();
    println!(
        "mqtt-drain: {n} events, {} bytes each on average, local mosquitto, window 100",
        payloads.iter().map(String::len).sum::<usize>() / n.max(1)
    );
    let copy = |name: &str| -> PathBuf {
        let p = d.join(name);
        std::fs::copy(&master, &p).expect("copy backlog");
        p
    };
    let raw1 = raw(port, &payloads, 100);
    let (one, rss_one) = daemon(&d, &copy("one.db"), port, 1, n);
    let (batched, rss_batched) = daemon(&d, &copy("batched.db"), port, batch, n);
    let raw2 = raw(port, &payloads, 100);
    let base = (raw1 + raw2) / 2.0;
    println!("raw rumqttc QoS 1      {raw1:>9.0} / {raw2:.0} events/s (mean {base:.0})");
    println!(
        "daemon, batch 1        {one:>9.0} events/s  = {:.2}x raw   peak RSS {} KiB",
        one / base,
        rss_one
    );
    println!(
        "daemon, batch {batch:<4}     {batched:>9.0} events/s  = {:.2}x raw   peak RSS {} KiB",
        batched / base,
        rss_batched
    );
    if std::env::var_os("BENCH_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&d);
    } else {
        println!("kept {}", d.display());
    }
}
