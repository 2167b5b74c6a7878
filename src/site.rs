//! The one handle every adapter (the enforcer, MQTT, RADIUS, the HTTPS uplink, later the portal)
//! and every in-process test gets on the running site: the store behind its thread, the engine,
//! the clock, the wake-ups of the daemon's timers, and what the NAS link says about itself.
//!
//! It exists so that "apply a command the way the daemon does" is written once: the engine and
//! clock go with the command into one store call, and the deadline timer and job worker are
//! woken after it.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use tokio::sync::Notify;

use crate::clock::{Clock, Now};
use crate::engine::command::Source;
use crate::engine::{Command, Engine, OsEntropy, Rejection};
use crate::nas::{NasLink, NasStatus};
use crate::store::{Applied, ApplyError, Store, StoreError, StoreHandle};

/// What the daemon's timers wait on.
#[derive(Default)]
pub struct Wakeups {
    /// The deadline timer: re-read the next deadline.
    deadlines: Notify,
    /// The job worker: jobs may be due.
    jobs: Notify,
    /// The NAS poll: read the active list now.
    poll: Notify,
    /// Set while the deadline timer settles a shared deadline slice by slice: the job worker
    /// then waits for the last slice, so that one bulk pass cuts them all off.
    settling: AtomicBool,
}

/// A NAS link seen without its type, for the heartbeat and `status`.
pub trait ReportsNas: Send + Sync {
    fn report(&self) -> Pin<Box<dyn Future<Output = NasStatus> + Send + '_>>;
}

impl<L: NasLink> ReportsNas for L {
    fn report(&self) -> Pin<Box<dyn Future<Output = NasStatus> + Send + '_>> {
        Box::pin(self.status())
    }
}

#[derive(Clone)]
pub struct Site {
    store: StoreHandle,
    engine: Arc<Engine>,
    clock: Arc<dyn Clock>,
    wakeups: Arc<Wakeups>,
    nas: Arc<OnceLock<Arc<dyn ReportsNas>>>,
}

impl Site {
    pub fn new(store: StoreHandle, engine: Arc<Engine>, clock: Arc<dyn Clock>) -> Site {
        Site {
            store,
            engine,
            clock,
            wakeups: Default::default(),
            nas: Default::default(),
        }
    }

    pub fn store(&self) -> &StoreHandle {
        &self.store
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Applies one command (idempotent under `id`) and wakes the timers.
    pub async fn apply(
        &self,
        source: Source,
        id: Option<String>,
        cmd: Command,
    ) -> Result<Applied, ApplyError> {
        let (engine, clock) = (self.engine.clone(), self.clock.clone());
        let applied = self
            .store
            .call(move |s| {
                s.apply(
                    &engine,
                    clock.as_ref(),
                    &mut OsEntropy,
                    source,
                    id.as_deref(),
                    &cmd,
                )
            })
            .await?;
        self.wake();
        applied
    }

    /// Applies commands in one transaction (each refused one is refused alone), then reads
    /// `after` in the same store call, so nothing (a tick) comes between. Wakes the deadline
    /// timer only (a first login may start a grant's clock): the NAS poll uses it, and waking
    /// the job worker then would end its wait for a deadline's last slice early.
    pub async fn apply_many_then<T: Send + 'static>(
        &self,
        source: Source,
        cmds: Vec<(Option<String>, Command)>,
        after: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<(Vec<Result<Applied, Rejection>>, T), StoreError> {
        let (engine, clock) = (self.engine.clone(), self.clock.clone());
        let out = self
            .store
            .run(move |s| -> Result<_, StoreError> {
                let refs: Vec<(Option<&str>, &Command)> =
                    cmds.iter().map(|(id, c)| (id.as_deref(), c)).collect();
                let results =
                    s.apply_many(&engine, clock.as_ref(), &mut OsEntropy, source, &refs)?;
                Ok((results, after(s)?))
            })
            .await?;
        self.wakeups.deadlines.notify_one();
        Ok(out)
    }

    /// Applies commands in one transaction (each refused one is refused alone) and wakes the
    /// timers.
    pub async fn apply_many(
        &self,
        source: Source,
        cmds: Vec<(Option<String>, Command)>,
    ) -> Result<Vec<Result<Applied, Rejection>>, StoreError> {
        let results = self.apply_many_then(source, cmds, |_| Ok(())).await?.0;
        self.wake();
        Ok(results)
    }

    /// Reads (or writes outside the engine) as of the store's `now`.
    pub async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Store, &Now) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let clock = self.clock.clone();
        self.store
            .call(move |s| {
                let now = s.now(clock.as_ref())?;
                f(s, &now)
            })
            .await?
    }

    /// Re-reads the deadline queue and the job queue now (after a change made in-process, or
    /// after moving a fake clock).
    pub fn wake(&self) {
        self.wakeups.deadlines.notify_one();
        self.wakeups.jobs.notify_one();
    }

    /// Reads the NAS's active list now instead of at the next `usage-poll`.
    pub fn poll_nas(&self) {
        self.wakeups.poll.notify_one();
    }

    pub(crate) fn wakeups(&self) -> &Wakeups {
        &self.wakeups
    }

    /// Says which link reports the NAS's status (once: one NAS per daemon).
    pub fn set_nas(&self, link: Arc<dyn ReportsNas>) {
        if self.nas.set(link).is_err() {
            tracing::warn!("a second NAS link was given to the site; the first one reports");
        }
    }

    /// What the NAS link says about itself, or none when no NAS is configured.
    pub async fn nas_status(&self) -> Option<NasStatus> {
        match self.nas.get() {
            Some(link) => Some(link.report().await),
            None => None,
        }
    }
}

impl Wakeups {
    pub(crate) fn deadlines(&self) -> &Notify {
        &self.deadlines
    }
    pub(crate) fn jobs(&self) -> &Notify {
        &self.jobs
    }
    pub(crate) fn poll(&self) -> &Notify {
        &self.poll
    }
    pub(crate) fn is_settling(&self) -> bool {
        self.settling.load(Ordering::Acquire)
    }
    pub(crate) fn set_settling(&self, on: bool) {
        self.settling.store(on, Ordering::Release)
    }
}
