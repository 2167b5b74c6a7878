//! The daemon in-process for a test: `run_with` on its own task, stopped by [`Running::stop`].
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use hotspot_edge::clock::Clock;
use hotspot_edge::config::Config;
use hotspot_edge::runtime::{run_with, Daemon};

pub struct Running {
    pub daemon: Daemon,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

pub async fn start(config: Config, clock: Arc<dyn Clock>) -> Running {
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
