//! One thread owns the SQLite connection; async tasks send it closures and await the answer, so
//! blocking disk I/O never runs on the async runtime.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, Arc};

use std::thread::JoinHandle;
use tokio::sync::Notify;

use super::{Store, StoreError};

type Work = Box<dyn FnOnce(&mut Store) + Send>;

#[derive(Clone)]
pub struct StoreHandle {
    tx: mpsc::Sender<Work>,
    changed: Arc<Notify>,
    writes: Arc<AtomicU32>,
}

impl StoreHandle {
    /// Starts the owner thread. When every handle is dropped, the thread checkpoints the WAL,
    /// closes the database and ends; join the returned handle to wait for that.
    pub fn spawn(store: Store) -> std::io::Result<(StoreHandle, JoinHandle<()>)> {
        let (tx, rx) = mpsc::channel::<Work>();
        let changed = Arc::new(Notify::new());
        let notify = changed.clone();
        let writes = Arc::new(AtomicU32::new(0));
        let counter = writes.clone();
        let thread = std::thread::Builder::new()
            .name("store".into())
            .spawn(move || {
                let mut store = store;
                while let Ok(work) = rx.recv() {
                    let before = store.total_changes();
                    work(&mut store);
                    if store.total_changes() != before {
                        counter.fetch_add(1, Ordering::Release);
                        notify.notify_one();
                    }
                }
                if let Err(e) = store.close() {
                    tracing::warn!(error = %e, "closing the database");
                }
            })?;
        Ok((
            StoreHandle {
                tx,
                changed,
                writes,
            },
            thread,
        ))
    }

    /// Notified after a call changed the database (one waiter: the outbox publisher). Changes
    /// made by other processes are not seen here.
    pub fn changed(&self) -> Arc<Notify> {
        self.changed.clone()
    }

    /// Counts the calls that changed the database (wrapping). Read inside a call, it names the
    /// state that call saw: a cache of reads is valid while it has not moved. Changes made by
    /// other processes are not counted.
    pub fn writes(&self) -> Arc<AtomicU32> {
        self.writes.clone()
    }

    /// Queues work without waiting for it: later calls still run after it (one thread, in
    /// order), so a read queued next sees its effect.
    pub fn enqueue<F>(&self, f: F) -> Result<(), StoreError>
    where
        F: FnOnce(&mut Store) + Send + 'static,
    {
        self.tx.send(Box::new(f)).map_err(|_| StoreError::Gone)
    }

    /// Runs fallible work on the store thread: its error and the thread's end are one error.
    pub async fn run<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Store) -> Result<R, StoreError> + Send + 'static,
    {
        self.call(f).await?
    }

    pub async fn call<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Store) -> R + Send + 'static,
    {
        let (reply_tx, reply_rx) = tokio::sync::oneshot::channel();
        self.tx
            .send(Box::new(move |s: &mut Store| {
                let _ = reply_tx.send(f(s));
            }))
            .map_err(|_| StoreError::Gone)?;
        reply_rx.await.map_err(|_| StoreError::Gone)
    }
}
