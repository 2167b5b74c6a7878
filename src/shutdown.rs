//! The daemon's stop signal, as every long-running task sees it: a task selects on
//! [`Shutdown::requested`] beside its work and returns when it completes.

use tokio::sync::watch;

/// Held by the daemon: [`Stopper::stop`] asks every task to return.
pub struct Stopper(watch::Sender<bool>);

/// Held by each task (clone one per task).
#[derive(Clone)]
pub struct Shutdown(watch::Receiver<bool>);

pub fn channel() -> (Stopper, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (Stopper(tx), Shutdown(rx))
}

impl Stopper {
    pub fn stop(&self) {
        self.0.send_replace(true);
    }
}

impl Shutdown {
    /// Completes once the daemon is stopping: at once if it already is, or when the
    /// [`Stopper`] is gone.
    pub async fn requested(&mut self) {
        let _ = self.0.wait_for(|stopping| *stopping).await;
    }

    pub fn is_requested(&self) -> bool {
        *self.0.borrow()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_clone_sees_the_stop_and_a_late_waiter_returns_at_once() {
        let (stopper, mut a) = channel();
        let mut b = a.clone();
        assert!(!a.is_requested());
        let waiting = tokio::spawn(async move { a.requested().await });
        stopper.stop();
        waiting.await.unwrap();
        assert!(b.is_requested());
        b.requested().await;
        // A task started after the stop, and one whose stopper is gone, return too.
        let (stopper, mut c) = channel();
        drop(stopper);
        c.requested().await;
    }
}
