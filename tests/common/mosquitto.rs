//! A real mosquitto broker (Debian package `mosquitto`) on a free loopback port, with its own
//! config, for the MQTT tests; and a test client that records what it receives.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};

pub struct BrokerOptions {
    /// Extra config lines for the main listener (TLS, ACL ...).
    pub listener_extra: String,
    /// Global lines (acl_file, password_file ...).
    pub global_extra: String,
    /// A second plain listener for the test's own clients (when the main one needs TLS).
    pub plain_listener: bool,
}

impl Default for BrokerOptions {
    fn default() -> Self {
        BrokerOptions {
            listener_extra: String::new(),
            global_extra: "allow_anonymous true\n".into(),
            plain_listener: false,
        }
    }
}

pub struct Broker {
    pub port: u16,
    /// The plain listener for test clients (same as `port` without TLS).
    pub plain_port: u16,
    pub dir: tempfile::TempDir,
    conf: PathBuf,
    child: Option<Child>,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn mosquitto_bin() -> PathBuf {
    for p in ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"] {
        if Path::new(p).exists() {
            return p.into();
        }
    }
    panic!("mosquitto is not installed: apt-get install mosquitto (.ci/run does)");
}

impl Broker {
    pub fn start(opts: BrokerOptions) -> Broker {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let plain_port = if opts.plain_listener {
            free_port()
        } else {
            port
        };
        let mut conf = format!(
            "per_listener_settings false\npersistence true\npersistence_location {}/\nautosave_interval 1\nlog_dest stderr\nlog_type error\nlog_type warning\nmax_queued_messages 1000000\nmax_inflight_messages 0\n{}\nlistener {port} 127.0.0.1\n{}\n",
            dir.path().display(),
            opts.global_extra,
            opts.listener_extra
        );
        if opts.plain_listener {
            conf.push_str(&format!("listener {plain_port} 127.0.0.1\n"));
        }
        let path = dir.path().join("mosquitto.conf");
        std::fs::write(&path, conf).unwrap();
        let mut b = Broker {
            port,
            plain_port,
            dir,
            conf: path,
            child: None,
        };
        b.launch();
        b
    }

    fn launch(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("mosquitto.log"))
            .unwrap();
        let child = Command::new(mosquitto_bin())
            .arg("-c")
            .arg(&self.conf)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start mosquitto");
        self.child = Some(child);
        let end = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.plain_port)).is_err() {
            assert!(
                Instant::now() < end,
                "mosquitto did not start: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }

    /// SIGTERM (mosquitto saves its persistent state) and wait.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A test client: subscribes and records every message (topic, payload, retain), reconnecting
/// by itself (persistent session) across broker restarts.
/// Topic, payload, retain, and when it arrived.
pub type Received = (String, String, bool, Instant);

pub struct Watcher {
    pub client: AsyncClient,
    pub got: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Watcher {
    pub async fn start(port: u16, id: &str, topics: &[&str]) -> Watcher {
        let mut o = MqttOptions::new(id, "127.0.0.1", port);
        o.set_clean_start(false);
        o.set_session_expiry_interval(Some(3600));
        o.set_keep_alive(Duration::from_secs(30));
        o.set_max_packet_size(Some(16 * 1024 * 1024));
        let (client, mut el) = AsyncClient::new(o, 1000);
        let got = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let mut ready_tx = Some(ready_tx);
        let topics: Vec<String> = topics.iter().map(|t| t.to_string()).collect();
        let c = client.clone();
        let g = got.clone();
        let task = tokio::spawn(async move {
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        for t in &topics {
                            c.subscribe(t.clone(), QoS::AtLeastOnce).await.unwrap();
                        }
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        if let Some(t) = ready_tx.take() {
                            let _ = t.send(());
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        g.lock().unwrap().push((
                            String::from_utf8_lossy(&p.topic).to_string(),
                            String::from_utf8_lossy(&p.payload).to_string(),
                            p.retain,
                            Instant::now(),
                        ));
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), ready_rx)
            .await
            .expect("test subscriber connects")
            .unwrap();
        Watcher { client, got, task }
    }

    pub fn on(&self, topic: &str) -> Vec<String> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, _, _, _)| t == topic)
            .map(|(_, p, _, _)| p.clone())
            .collect()
    }

    /// As `on`, with each message's arrival time.
    pub fn on_timed(&self, topic: &str) -> Vec<(Instant, String)> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, _, _, _)| t == topic)
            .map(|(_, p, _, at)| (*at, p.clone()))
            .collect()
    }

    pub async fn publish(&self, topic: &str, payload: String) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .unwrap();
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}
