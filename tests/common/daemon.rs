//! The daemon in-process for a test: `run_with` on its own task, stopped by [`Running::stop`].
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use hotspot_edge::clock::Clock;
use hotspot_edge::config::Config;
use hotspot_edge::daemon::{run_with, Daemon, Settings};
use hotspot_edge::engine::command::Source;
use hotspot_edge::engine::Command;
use hotspot_edge::site::Site;
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
            Settings::resolve(config).unwrap_or_else(|e| panic!("{e}")),
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

/// Applies a command to the running daemon's store, as an adapter would, and wakes the daemon.
pub async fn apply(site: &Site, cmd: Command) -> Result<Value, String> {
    site.apply(Source::Cli, None, cmd)
        .await
        .map(|a| a.result)
        .map_err(|e| e.to_string())
}

/// A confirmed M-Pesa payment, with the paying device (MAC, IP) if any; returns the user it
/// created or extended (the same phone extends the same user).
pub async fn pay(
    site: &Site,
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
    let r = apply(site, cmd).await.unwrap();
    r["user"].as_str().unwrap().to_string()
}

/// `users show NAME --json`, read from the running daemon.
pub async fn user(site: &Site, name: &str) -> Value {
    let name = name.to_string();
    site.read(move |s, now| s.view_user(now, &name))
        .await
        .unwrap()
        .unwrap()
}

/// The outbox events of type `ty`, oldest first, as the cloud will receive them.
pub async fn events(site: &Site, site_id: &str, ty: &str) -> Vec<Value> {
    let (site_id, ty) = (site_id.to_string(), ty.to_string());
    site.store()
        .call(move |s| s.view_outbox(&site_id, 0, 0).unwrap())
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e["type"] == ty)
        .collect()
}
