//! The daemon: opens the store, then wakes exactly at the next deadline to end grants and
//! expire users, until told to stop.
//!
//! The deadline queue is the `grants_deadline` index: after every wake the daemon asks the store
//! for the earliest deadline and sleeps until then. Commands applied in this process wake it at
//! once ([`Daemon::wake`]); commands applied by another process (the CLI) are noticed within
//! `EXTERNAL_CHANGE_CHECK`, a read-only look that writes nothing to flash.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use tokio::sync::watch;

use crate::app;
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, RouterKind};
use crate::enforce::{EnforceSettings, Enforcer};
use crate::engine::{Command, OsEntropy};
use crate::routeros::link::{LinkSettings, RouterLink};
use crate::store::{ApplyError, StoreError, StoreGone, StoreHandle};

/// How often the daemon looks for deadlines changed by other processes.
pub const EXTERNAL_CHANGE_CHECK: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Apply(#[from] ApplyError),
    #[error(transparent)]
    Gone(#[from] StoreGone),
    #[error("cannot start the store thread: {0}")]
    Thread(std::io::Error),
    #[error("{0}")]
    Config(String),
}

/// The RADIUS server's bound addresses (a port 0 in the config becomes a real one) and counters.
#[cfg(feature = "radius")]
#[derive(Clone)]
pub struct RadiusInfo {
    pub auth: std::net::SocketAddr,
    pub accounting: std::net::SocketAddr,
    pub stats: Arc<crate::radius::RadiusStats>,
}

/// A handle on a running daemon, for in-process callers (tests, the demo, later the MQTT and
/// portal adapters).
#[derive(Clone)]
pub struct Daemon {
    pub store: StoreHandle,
    pub clock: Arc<dyn Clock>,
    /// The router connection, when a router backend is configured.
    pub link: Option<Arc<RouterLink>>,
    /// The RADIUS server, when `[radius]` is configured.
    #[cfg(feature = "radius")]
    pub radius: Option<RadiusInfo>,
    wake: Arc<Notify>,
    jobs_wake: Arc<Notify>,
    poll_wake: Arc<Notify>,
    /// True while a shared deadline is being settled slice by slice (see `Enforcer::settling`).
    settling: Arc<std::sync::atomic::AtomicBool>,
}

impl Daemon {
    /// Re-reads the deadline queue and the job queue now (call after applying a command
    /// in-process, or after moving a fake clock).
    pub fn wake(&self) {
        self.wake.notify_one();
        self.jobs_wake.notify_one();
    }

    /// Reads the router's active list now instead of at the next `usage-poll`.
    pub fn poll_router(&self) {
        self.poll_wake.notify_one();
    }
}

/// Runs the daemon with the system clock until `shutdown` completes.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), RunError> {
    run_with(config, Arc::new(SystemClock), shutdown, |_| {}).await
}

/// Runs the daemon with a given clock; `started` receives a [`Daemon`] handle once the store is
/// open. Returns after `shutdown` with the WAL checkpointed and the database closed.
pub async fn run_with(
    config: Config,
    clock: Arc<dyn Clock>,
    shutdown: impl Future<Output = ()>,
    started: impl FnOnce(Daemon),
) -> Result<(), RunError> {
    let store = app::open_store(&config, clock.as_ref(), true)?;
    tracing::info!(
        site = config.site_id(),
        database = %store.path().display(),
        schema = store.schema_version()?,
        "hotspot-edge started"
    );
    // Password and API-SSL settings, read before anything starts: a bad one stops the daemon.
    let router = match config.router.kind {
        RouterKind::Routeros => Some((
            config.router_password().map_err(RunError::Config)?,
            config.router_tls().map_err(RunError::Config)?,
        )),
        RouterKind::None | RouterKind::Radius | RouterKind::Opennds => None,
    };
    #[cfg(feature = "radius")]
    let radius = match &config.radius {
        Some(r) => {
            let s = crate::radius::RadiusSettings::resolve(
                r.get_ref(),
                config.router.kind != RouterKind::Routeros,
            )
            .map_err(RunError::Config)?;
            let sockets = crate::radius::server::bind(&s)
                .await
                .map_err(RunError::Config)?;
            Some((Arc::new(s), sockets))
        }
        None => None,
    };
    let mqtt = crate::mqtt::MqttSettings::from_config(&config).map_err(RunError::Config)?;
    let (handle, thread) = StoreHandle::spawn(store).map_err(RunError::Thread)?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut daemon = Daemon {
        store: handle.clone(),
        clock: clock.clone(),
        link: None,
        #[cfg(feature = "radius")]
        radius: None,
        wake: Arc::new(Notify::new()),
        jobs_wake: Arc::new(Notify::new()),
        poll_wake: Arc::new(Notify::new()),
        settling: Default::default(),
    };
    // One engine (pure decisions and settings) for every task.
    let engine = Arc::new(app::engine(&config));
    let mut tasks = Vec::new();
    if let Some((password, router_tls)) = router {
        let r = &config.router;
        if router_tls.is_none() {
            tracing::warn!(router = %r.address, "plain RouterOS API: the password crosses the network in clear");
        }
        let link = RouterLink::new(LinkSettings {
            tls: router_tls,
            address: r.address.clone(),
            username: r.username.clone(),
            password,
            connect_timeout: r.connect_timeout.duration(),
            command_timeout: r.command_timeout.duration(),
            probe_interval: r.probe_interval.duration(),
        });
        let enforcer = enforcer(
            &daemon,
            engine.clone(),
            link.clone(),
            polled(&config, &r.hotspot_server),
        );
        tasks.push(tokio::spawn(link.clone().probe_loop(stop_rx.clone())));
        tasks.push(tokio::spawn(enforcer.clone().run_jobs(stop_rx.clone())));
        tasks.push(tokio::spawn(enforcer.run_poll(stop_rx.clone())));
        daemon.link = Some(link);
    }
    #[cfg(feature = "opennds")]
    if config.router.kind == RouterKind::Opennds {
        let o = &config.opennds;
        let link = crate::opennds::OpenNdsLink::new(crate::opennds::OpenNdsNas::new(
            crate::opennds::NdsctlSettings {
                program: o.ndsctl.clone(),
                timeout: config.router.command_timeout.duration(),
                busy_retries: o.busy_retries,
                busy_wait: o.busy_wait.duration(),
                counter_unit: o.counter_unit,
            },
        ));
        tracing::info!(ndsctl = %o.ndsctl.display(), "openNDS backend");
        let enforcer = enforcer(&daemon, engine.clone(), link, polled(&config, "all"));
        tasks.push(tokio::spawn(enforcer.clone().run_jobs(stop_rx.clone())));
        tasks.push(tokio::spawn(enforcer.run_poll(stop_rx.clone())));
    }
    #[cfg(feature = "radius")]
    if let Some((settings, (auth, acct))) = radius {
        if config.router.kind == RouterKind::Radius {
            let link = crate::radius::RadiusLink::new(crate::radius::RadiusNas::new(
                settings.clone(),
                handle.clone(),
            ));
            // Only the job worker: no poll (sessions and usage arrive as accounting), and nothing
            // is kept on the NAS that a safety margin would apply to.
            let settings = EnforceSettings {
                hotspot_server: String::new(),
                usage_poll: Duration::MAX,
                usage_save: Duration::MAX,
                safety_margin_ms: 0,
            };
            let enforcer = enforcer(&daemon, engine.clone(), link, settings);
            tasks.push(tokio::spawn(enforcer.run_jobs(stop_rx.clone())));
        }
        let server = Arc::new(crate::radius::RadiusServer::new(
            settings.clone(),
            daemon.clone(),
            engine.clone(),
        ));
        let info = RadiusInfo {
            auth: auth.local_addr().unwrap_or(settings.auth_listen),
            accounting: acct.local_addr().unwrap_or(settings.accounting_listen),
            stats: server.stats.clone(),
        };
        tracing::info!(
            auth = %info.auth,
            accounting = %info.accounting,
            clients = settings.clients.len(),
            accounting_applied = settings.apply_accounting,
            "RADIUS server listening"
        );
        daemon.radius = Some(info);
        tasks.push(tokio::spawn(server.clone().serve(
            auth,
            false,
            stop_rx.clone(),
        )));
        tasks.push(tokio::spawn(server.serve(acct, true, stop_rx.clone())));
    }
    let (down_tx, down_rx) = watch::channel(Some(std::time::Instant::now()));
    if let Some(m) = mqtt {
        tasks.push(tokio::spawn(crate::mqtt::run(
            Arc::new(m),
            daemon.clone(),
            engine.clone(),
            down_tx,
            stop_rx.clone(),
        )));
    }
    if let Some(h) = &config.uplink.http {
        #[cfg(feature = "http-uplink")]
        {
            let s = crate::uplink_http::HttpSettings::resolve(h, config.site_id())
                .map_err(RunError::Config)?;
            tasks.push(tokio::spawn(crate::uplink_http::run(
                Arc::new(s),
                daemon.clone(),
                down_rx,
                stop_rx.clone(),
            )));
        }
        #[cfg(not(feature = "http-uplink"))]
        {
            let _ = (h, down_rx);
            return Err(RunError::Config(
                "[uplink.http]: this build has no HTTPS uplink (cargo feature http-uplink)".into(),
            ));
        }
    }
    tasks.push(tokio::spawn(outbox_keeper(
        daemon.clone(),
        config.store.outbox_max_events,
        stop_rx.clone(),
    )));
    started(daemon.clone());
    let result = deadline_loop(&config, &daemon, engine, shutdown).await;
    let _ = stop_tx.send(true);
    let all = async {
        for t in tasks {
            let _ = t.await;
        }
    };
    if tokio::time::timeout(Duration::from_secs(5), all)
        .await
        .is_err()
    {
        tracing::warn!("router tasks did not stop within 5 s");
    }
    // Final checkpoint of the clock, then close: the store thread ends when the last handle goes.
    let c = clock.clone();
    let _ = handle
        .call(move |s| s.checkpoint_clock(c.as_ref()).map(|_| ()))
        .await;
    drop(daemon);
    drop(handle);
    let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    tracing::info!("hotspot-edge stopped");
    result
}

/// Enforcement for a NAS whose active list is polled (RouterOS, openNDS).
fn polled(config: &Config, hotspot_server: &str) -> EnforceSettings {
    EnforceSettings {
        hotspot_server: hotspot_server.to_string(),
        // Every poll also reconciles: poll at least every `reconcile`, even when usage is read
        // less often to spare the router.
        usage_poll: config
            .enforcement
            .usage_poll
            .min(config.enforcement.reconcile)
            .duration(),
        usage_save: config.enforcement.usage_save.duration(),
        safety_margin_ms: config.router.safety_margin.ms(),
    }
}

/// The enforcer for a NAS link, sharing the daemon's store, clock and wake-ups.
fn enforcer<L: crate::nas::NasLink>(
    d: &Daemon,
    engine: Arc<crate::engine::Engine>,
    link: Arc<L>,
    settings: EnforceSettings,
) -> Arc<Enforcer<L>> {
    Arc::new(Enforcer {
        store: d.store.clone(),
        clock: d.clock.clone(),
        engine,
        link,
        settings,
        jobs_wake: d.jobs_wake.clone(),
        poll_wake: d.poll_wake.clone(),
        settling: d.settling.clone(),
        router_pass: Default::default(),
        profiles_ok: Default::default(),
        usage: Default::default(),
    })
}

/// The deadline timer has no more slices to settle: the job worker takes what is due now.
fn settled(d: &Daemon) {
    d.settling.store(false, Ordering::Release);
    d.jobs_wake.notify_one();
}

async fn deadline_loop(
    config: &Config,
    d: &Daemon,
    engine: Arc<crate::engine::Engine>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    tokio::pin!(shutdown);
    let checkpoint_every = config.enforcement.clock_checkpoint.ms();
    let mut last_checkpoint = i64::MIN;
    let mut last_due = None;
    loop {
        let clock = d.clock.clone();
        let (now, next) = d
            .store
            .call(move |s| -> Result<_, StoreError> {
                let now = s.refresh_clock(clock.as_ref())?;
                Ok((now, s.next_deadline()?))
            })
            .await??;
        if now.timeline_ms.saturating_sub(last_checkpoint) >= checkpoint_every {
            let clock = d.clock.clone();
            d.store
                .call(move |s| s.checkpoint_clock(clock.as_ref()))
                .await??;
            last_checkpoint = now.timeline_ms;
        }
        if let Some(due) = next.filter(|t| *t <= now.timeline_ms) {
            // After a full slice (`settling` still set) the same deadline is due by design.
            if last_due == Some(due) && !d.settling.load(Ordering::Acquire) {
                // A deadline the engine did not clear: say so, and do not spin on it.
                tracing::error!(deadline = due, "a deadline stayed due after a tick");
                tokio::select! {
                    _ = &mut shutdown => return Ok(()),
                    _ = tokio::time::sleep(EXTERNAL_CHANGE_CHECK) => {}
                }
            }
            last_due = Some(due);
            // Until a tick says none are left, the job worker waits for the rest of the slices.
            d.settling.store(true, Ordering::Release);
            let tick_started = std::time::Instant::now();
            let (e, c) = (engine.clone(), d.clock.clone());
            let applied = d
                .store
                .call(move |s| {
                    s.apply(
                        &e,
                        c.as_ref(),
                        &mut OsEntropy,
                        "timer",
                        None,
                        &Command::Tick,
                    )
                })
                .await?;
            match applied {
                Ok(a) => {
                    let more = a.result["more"] == true;
                    tracing::info!(
                        lag_ms = a.now.timeline_ms - due,
                        took_ms = tick_started.elapsed().as_millis() as u64,
                        result = %a.result,
                        "deadline reached"
                    );
                    if !more {
                        settled(d);
                    }
                }
                Err(ApplyError::Rejected(r)) => {
                    settled(d);
                    tracing::warn!(error = %r, "tick refused")
                }
                Err(e) => return Err(e.into()),
            }
            continue;
        }
        if d.settling.load(Ordering::Acquire) {
            // The last slice was full and nothing is left.
            settled(d);
        }
        last_due = None;
        let until_deadline = next.map(|t| Duration::from_millis((t - now.timeline_ms) as u64));
        let sleep = until_deadline
            .unwrap_or(EXTERNAL_CHANGE_CHECK)
            .min(EXTERNAL_CHANGE_CHECK);
        tokio::select! {
            _ = &mut shutdown => return Ok(()),
            _ = d.wake.notified() => {}
            _ = tokio::time::sleep(sleep) => {}
        }
    }
}

/// How often the outbox size limit is enforced.
const OUTBOX_TRIM_EVERY: Duration = Duration::from_secs(60);

/// Keeps the outbox within `[store] outbox-max-events` while the cloud is out of reach.
async fn outbox_keeper(d: Daemon, max_events: u64, mut stop: watch::Receiver<bool>) {
    loop {
        let clock = d.clock.clone();
        let trimmed = d
            .store
            .call(move |s| {
                let now = s.now(clock.as_ref())?;
                s.outbox_trim(max_events, &now)
            })
            .await;
        match trimmed {
            Ok(Ok(Some(t))) => tracing::warn!(
                dropped = t.dropped,
                first_seq = t.first_seq,
                last_seq = t.last_seq,
                limit = max_events,
                "outbox full: oldest telemetry events dropped unsent (money events are kept)"
            ),
            Ok(Ok(None)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "outbox size check"),
            Err(_) => return,
        }
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(OUTBOX_TRIM_EVERY) => {}
        }
    }
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM: stopping"),
                _ = int.recv() => tracing::info!("SIGINT: stopping"),
            }
        }
        _ => {
            tracing::warn!("cannot install signal handlers; stop with SIGKILL");
            std::future::pending::<()>().await
        }
    }
}
