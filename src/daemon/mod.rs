//! The daemon: opens the store, then wakes exactly at the next deadline to end grants and
//! expire users, until told to stop.
//!
//! The deadline queue is the `grants_deadline` index: after every wake the daemon asks the store
//! for the earliest deadline and sleeps until then. Commands applied in this process wake it at
//! once ([`Site::wake`]); commands applied by another process (the CLI) are noticed within
//! `EXTERNAL_CHANGE_CHECK`, a read-only look that writes nothing to flash.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

mod settings;

use crate::app;
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
#[cfg(any(feature = "opennds", feature = "radius"))]
use crate::config::RouterKind;
use crate::enforce::{EnforceSettings, Enforcer};
use crate::engine::Command;
use crate::routeros::link::RouterOsLink;
use crate::shutdown::Shutdown;
pub use settings::{Settings, SettingsError};

use crate::site::Site;
use crate::store::{ApplyError, DaemonLock, StoreError, StoreHandle};

/// How often the daemon looks for deadlines changed by other processes.
pub const EXTERNAL_CHANGE_CHECK: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Apply(#[from] ApplyError),
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

/// What an in-process caller (tests, the demo) sees of a running daemon: the [`Site`] that
/// every adapter shares, and the adapters' own handles.
#[derive(Clone)]
pub struct Daemon {
    pub site: Site,
    /// The RouterOS connection, when `[router] kind = "routeros"`.
    pub router_link: Option<Arc<RouterOsLink>>,
    /// The RADIUS server, when `[radius]` is configured.
    #[cfg(feature = "radius")]
    pub radius: Option<RadiusInfo>,
}

/// Runs the daemon with the system clock until `shutdown` completes.
pub async fn run(settings: Settings, shutdown: impl Future<Output = ()>) -> Result<(), RunError> {
    run_with(settings, Arc::new(SystemClock), shutdown, |_| {}).await
}

/// Runs the daemon with a given clock; `started` receives a [`Daemon`] handle once the store is
/// open. Returns after `shutdown` with the WAL checkpointed and the database closed.
pub async fn run_with(
    settings: Settings,
    clock: Arc<dyn Clock>,
    shutdown: impl Future<Output = ()>,
    started: impl FnOnce(Daemon),
) -> Result<(), RunError> {
    let Settings {
        config,
        router,
        #[cfg(feature = "radius")]
        radius,
        mqtt,
        #[cfg(feature = "http-uplink")]
        http,
        warnings: _,
    } = settings;
    // Before the store is opened (its plans synced): a second daemon changes nothing.
    let _lock = DaemonLock::acquire(&config.store.path)?;
    let store = app::open_store(&config, clock.as_ref(), true)?;
    tracing::info!(
        site = config.site_id(),
        database = %store.path().display(),
        schema = store.schema_version()?,
        "hotspot-edge started"
    );
    // Files were read and TLS built by `Settings::resolve`; only the sockets are left to fail.
    #[cfg(feature = "radius")]
    let radius = match radius {
        Some(s) => {
            let sockets = crate::radius::server::bind(&s)
                .await
                .map_err(RunError::Config)?;
            Some((s, sockets))
        }
        None => None,
    };
    let (handle, thread) = StoreHandle::spawn(store).map_err(RunError::Thread)?;
    let (stopper, stop_rx) = crate::shutdown::channel();
    // One engine (pure decisions and settings) for every task.
    let engine = Arc::new(app::engine(&config));
    let site = Site::new(handle.clone(), engine, clock.clone());
    let mut daemon = Daemon {
        site: site.clone(),
        router_link: None,
        #[cfg(feature = "radius")]
        radius: None,
    };
    let mut tasks = Vec::new();
    if let Some(link_settings) = router {
        let r = &config.router;
        if link_settings.tls.is_none() {
            tracing::warn!(router = %r.address, "plain RouterOS API: the password crosses the network in clear");
        }
        let link = RouterOsLink::new(link_settings);
        let enforcer = Enforcer::new(
            site.clone(),
            link.clone(),
            polled(&config, &r.hotspot_server),
        );
        site.set_nas(link.clone());
        tasks.push(tokio::spawn(link.clone().probe_loop(stop_rx.clone())));
        tasks.push(tokio::spawn(enforcer.clone().run_jobs(stop_rx.clone())));
        tasks.push(tokio::spawn(enforcer.run_poll(stop_rx.clone())));
        daemon.router_link = Some(link);
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
        site.set_nas(link.clone());
        let enforcer = Enforcer::new(site.clone(), link, polled(&config, "all"));
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
            site.set_nas(link.clone());
            let enforcer = Enforcer::new(site.clone(), link, settings);
            tasks.push(tokio::spawn(enforcer.run_jobs(stop_rx.clone())));
        }
        let server = Arc::new(crate::radius::RadiusServer::new(
            settings.clone(),
            site.clone(),
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
        tasks.push(tokio::spawn(crate::uplink::mqtt::run(
            m,
            site.clone(),
            down_tx,
            stop_rx.clone(),
        )));
    }
    #[cfg(feature = "http-uplink")]
    if let Some(h) = http {
        tasks.push(tokio::spawn(crate::uplink::http::run(
            h,
            site.clone(),
            down_rx,
            stop_rx.clone(),
        )));
    }
    #[cfg(not(feature = "http-uplink"))]
    drop(down_rx);
    tasks.push(tokio::spawn(outbox_keeper(
        site.clone(),
        config.store.outbox_max_events,
        stop_rx.clone(),
    )));
    started(daemon.clone());
    let result = deadline_loop(&config, &site, shutdown).await;
    stopper.stop();
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
    drop(site);
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

/// The deadline timer has no more slices to settle: the job worker takes what is due now.
fn settled(site: &Site) {
    site.wakeups().set_settling(false);
    site.wakeups().jobs().notify_one();
}

async fn deadline_loop(
    config: &Config,
    site: &Site,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    tokio::pin!(shutdown);
    let checkpoint_every = config.enforcement.clock_checkpoint.ms();
    let mut last_checkpoint = i64::MIN;
    let mut last_due = None;
    loop {
        let clock = site.clock().clone();
        let (now, next) = site
            .store()
            .run(move |s| -> Result<_, StoreError> {
                let now = s.refresh_clock(clock.as_ref())?;
                Ok((now, s.next_deadline()?))
            })
            .await?;
        if now.timeline_ms.saturating_sub(last_checkpoint) >= checkpoint_every {
            let clock = site.clock().clone();
            site.store()
                .run(move |s| s.checkpoint_clock(clock.as_ref()))
                .await?;
            last_checkpoint = now.timeline_ms;
        }
        if let Some(due) = next.filter(|t| *t <= now.timeline_ms) {
            // After a full slice (`settling` still set) the same deadline is due by design.
            if last_due == Some(due) && !site.wakeups().is_settling() {
                // A deadline the engine did not clear: say so, and do not spin on it.
                tracing::error!(deadline = due, "a deadline stayed due after a tick");
                tokio::select! {
                    _ = &mut shutdown => return Ok(()),
                    _ = tokio::time::sleep(EXTERNAL_CHANGE_CHECK) => {}
                }
            }
            last_due = Some(due);
            // Until a tick says none are left, the job worker waits for the rest of the slices.
            site.wakeups().set_settling(true);
            let tick_started = std::time::Instant::now();
            // Not `Site::apply`: that wakes the job worker, which must wait for the last slice.
            let (e, c) = (site.engine().clone(), site.clock().clone());
            let applied = site
                .store()
                .call(move |s| {
                    s.apply(
                        &e,
                        c.as_ref(),
                        &mut crate::engine::OsEntropy,
                        crate::engine::command::Source::Timer,
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
                        settled(site);
                    }
                }
                Err(ApplyError::Rejected(r)) => {
                    settled(site);
                    tracing::warn!(error = %r, "tick refused")
                }
                Err(e) => return Err(e.into()),
            }
            continue;
        }
        if site.wakeups().is_settling() {
            // The last slice was full and nothing is left.
            settled(site);
        }
        last_due = None;
        let until_deadline = next.map(|t| {
            Duration::from_millis(crate::units::non_negative(
                t.saturating_sub(now.timeline_ms),
            ))
        });
        let sleep = until_deadline
            .unwrap_or(EXTERNAL_CHANGE_CHECK)
            .min(EXTERNAL_CHANGE_CHECK);
        tokio::select! {
            _ = &mut shutdown => return Ok(()),
            _ = site.wakeups().deadlines().notified() => {}
            _ = tokio::time::sleep(sleep) => {}
        }
    }
}

/// How often the outbox size limit is enforced.
const OUTBOX_TRIM_EVERY: Duration = Duration::from_secs(60);

/// Keeps the outbox within `[store] outbox-max-events` while the cloud is out of reach.
async fn outbox_keeper(site: Site, max_events: u64, mut stop: Shutdown) {
    loop {
        let trimmed = site
            .read(move |s, now| s.outbox_trim(max_events, now))
            .await;
        match trimmed {
            Ok(Some(t)) => tracing::warn!(
                dropped = t.dropped,
                first_seq = t.first_seq,
                last_seq = t.last_seq,
                limit = max_events,
                "outbox full: oldest telemetry events dropped unsent (money events are kept)"
            ),
            Ok(None) => {}
            Err(StoreError::Gone) => return,
            Err(e) => tracing::warn!(error = %e, "outbox size check"),
        }
        tokio::select! {
            _ = stop.requested() => return,
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
