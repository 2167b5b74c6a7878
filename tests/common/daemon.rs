//! The daemon in-process for a test: `run_with` on its own task, stopped by [`Running::stop`].
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use hotspot_edge::clock::Clock;
use hotspot_edge::config::Config;
use hotspot_edge::engine::{Command, Engine, OsEntropy};
use hotspot_edge::runtime::{run_with, Daemon};
use serde_json::Value;

pub struct Running {
    pub daemon: Daemon,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

pub async fn start(config: Config, clock: Arc<dyn Clock>) -> Running {
    // HOTSPOT_EDGE_TEST_LOG=1 prints the daemon's log (info and up) to the test's output: how a
    // race seen only under qemu in CI is read back.
    if std::env::var_os("HOTSPOT_EDGE_TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_test_writer()
            .try_init();
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        run_with(
            config,
            clock,
            async {
                let _ = stopped.await;
            },
            move |d| {
                let _ = tx.send(d);
            },
        )
        .await
        .unwrap();
    });
    Running {
        daemon: rx.await.unwrap(),
        stop,
        task,
    }
}

impl Running {
    /// Stops the daemon and waits for it (the store closes once the last handle is gone).
    pub async fn stop(self) {
        let Running { daemon, stop, task } = self;
        drop(daemon);
        let _ = stop.send(());
        tokio::time::timeout(Duration::from_secs(15), task)
            .await
            .expect("the daemon stops within 15 s")
            .unwrap();
    }
}

/// Applies a command to the running daemon's store, as the CLI would, and wakes the daemon.
/// `engine` carries the site's settings (`app::engine(&config)`), or the defaults.
pub async fn apply(d: &Daemon, engine: Option<Arc<Engine>>, cmd: Command) -> Result<Value, String> {
    let clock = d.clock.clone();
    let engine = engine.unwrap_or_else(|| Arc::new(Engine::new(Default::default())));
    let r = d
        .store
        .call(move |s| s.apply(&engine, clock.as_ref(), &mut OsEntropy, "test", None, &cmd))
        .await
        .unwrap()
        .map(|a| a.result)
        .map_err(|e| e.to_string());
    d.wake();
    r
}

/// A confirmed M-Pesa payment, with the paying device (MAC, IP) if any; returns the user it
/// created or extended (the same phone extends the same user).
pub async fn pay(
    d: &Daemon,
    reference: &str,
    phone: &str,
    plan: &str,
    device: Option<(&str, &str)>,
) -> String {
    let cmd = Command::PaymentConfirmed(hotspot_edge::engine::command::PaymentArgs {
        provider: "mpesa".into(),
        reference: reference.into(),
        phone: Some(phone.into()),
        plan: plan.into(),
        mac: device.map(|(m, _)| m.to_string()),
        ip: device.map(|(_, ip)| ip.to_string()),
        ..Default::default()
    });
    let r = apply(d, None, cmd).await.unwrap();
    r["user"].as_str().unwrap().to_string()
}

/// `users show NAME --json`, read from the running daemon.
pub async fn user(d: &Daemon, name: &str) -> Value {
    let (clock, name) = (d.clock.clone(), name.to_string());
    d.store
        .call(move |s| {
            let now = s.now(clock.as_ref()).unwrap();
            s.view_user(&now, &name).unwrap().unwrap()
        })
        .await
        .unwrap()
}

/// The outbox events of type `ty`, oldest first, as the cloud will receive them.
pub async fn events(d: &Daemon, site: &str, ty: &str) -> Vec<Value> {
    let (site, ty) = (site.to_string(), ty.to_string());
    d.store
        .call(move |s| s.view_outbox(&site, 0, 0).unwrap())
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e["type"] == ty)
        .collect()
}
