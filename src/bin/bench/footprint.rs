//! `footprint`: the daemon as a process of its own (optionally under a runner such as qemu-user,
//! to run a foreign-architecture release binary) against the RouterOS simulator and a local
//! mosquitto, as on a router: its memory idle and with N users and M sessions, and what it writes
//! to storage per hour at a steady S sessions (`/proc/PID/io`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hotspot_edge::clock::SystemClock;
use hotspot_edge::engine::command::Source;
use hotspot_edge::engine::{Command, OsEntropy};

use super::{rss_kib, Killed, RouterSim};

pub struct Args {
    pub users: usize,
    pub sessions: usize,
    pub steady: usize,
    pub minutes: f64,
    /// The daemon binary (default: `hotspot-edge` beside this one).
    pub daemon: Option<PathBuf>,
    /// A command the daemon runs under, e.g. "qemu-mipsel -cpu 24Kc".
    pub runner: Option<String>,
    pub dir: Option<PathBuf>,
}

/// Each logged-in device's download rate on the simulator, so every poll moves every counter.
const TRAFFIC_KBPS: u64 = 20;

/// A running site: simulator, broker, and the daemon under test.
struct Site {
    db: PathBuf,
    sim: RouterSim,
    daemon: Killed,
    _broker: Killed,
}

impl Site {
    fn start(dir: &Path, args: &Args) -> Site {
        std::fs::create_dir_all(dir).expect("site directory");
        let sim = RouterSim::start(TRAFFIC_KBPS);
        let (broker, port) = super::mqtt_drain::mosquitto(dir);
        let db = dir.join("field.db");
        let cfg = dir.join("config.toml");
        std::fs::write(
            &cfg,
            format!(
                "[site]\nid = \"field\"\n[store]\npath = \"{}\"\n[log]\nlevel = \"warn\"\n[mqtt]\nurl = \"mqtt://127.0.0.1:{port}\"\n{}\n[[plans]]\nid = \"day\"\nname = \"1 day\"\nprice = 50\ncurrency = \"KES\"\ntime = \"24h\"\n\n[[plans]]\nid = \"day-5gb\"\nname = \"1 day, 5 GB\"\nprice = 80\ncurrency = \"KES\"\ntime = \"24h\"\ndata = \"5GB\"\n",
                db.display(),
                sim.router_config(dir)
            ),
        )
        .expect("config");
        let daemon = super::spawn_daemon(
            args.daemon.as_deref(),
            args.runner.as_deref(),
            &cfg,
            &dir.join("daemon.log"),
        );
        let site = Site {
            db,
            sim,
            daemon,
            _broker: broker,
        };
        // Ready: the store is open (plans synced) and the MQTT uplink is connected.
        site.wait("the daemon to start and connect", 120, |s| {
            s.query("SELECT count(*) FROM meta WHERE key = 'uplink' AND value LIKE '%\"up\"%'") == 1
        });
        site
    }

    fn pid(&self) -> String {
        self.daemon.0.id().to_string()
    }

    fn query(&self, sql: &str) -> i64 {
        rusqlite::Connection::open_with_flags(&self.db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .and_then(|c| c.query_row(sql, [], |r| r.get(0)))
            .unwrap_or(-1)
    }

    fn wait(&self, what: &str, secs: u64, ready: impl Fn(&Site) -> bool) -> Duration {
        let t = Instant::now();
        while !ready(self) {
            assert!(
                t.elapsed() < Duration::from_secs(secs),
                "waited {secs} s for {what}; the daemon's log is daemon.log in the kept directory"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        t.elapsed()
    }

    /// `users` payments for `plan`, the first `devices` of them with a device to log in; applied
    /// by this process, as the CLI or a payment webhook would.
    fn pay(&self, plan: &str, users: usize, devices: usize) {
        let mut store = super::open(&self.db, false);
        let engine = super::engine();
        let cmds: Vec<Command> = (0..users)
            .map(|i| super::device_payment("F", i, plan, i < devices))
            .collect();
        for chunk in cmds.chunks(1000) {
            let refs: Vec<_> = chunk.iter().map(|c| (None, c)).collect();
            store
                .apply_many(&engine, &SystemClock, &mut OsEntropy, Source::Cli, &refs)
                .expect("payments");
        }
        store.close().expect("close");
    }

    /// Waits until `n` devices are logged in on the router and their sessions open in the store.
    fn online(&self, n: usize) -> Duration {
        self.wait("every device to be logged in", 900, |s| {
            s.sim.logged_in() >= n
                && s.query("SELECT count(*) FROM sessions WHERE ended_at IS NULL") == n as i64
        })
    }

    /// (VmRSS now, highest VmRSS seen) over `secs` seconds, sampled every 100 ms.
    fn rss_over(&self, secs: u64) -> (u64, u64) {
        let pid = self.pid();
        let t = Instant::now();
        let mut peak = 0;
        while t.elapsed() < Duration::from_secs(secs) {
            peak = peak.max(rss_kib(&pid, "VmRSS:"));
            std::thread::sleep(Duration::from_millis(100));
        }
        (rss_kib(&pid, "VmRSS:"), peak.max(rss_kib(&pid, "VmHWM:")))
    }

    /// (write_bytes, cancelled_write_bytes) of the daemon from /proc/PID/io.
    fn written(&self) -> (u64, u64) {
        let pid = self.pid();
        (
            super::written_bytes(&pid),
            super::proc_figure(&pid, "io", "cancelled_write_bytes:"),
        )
    }
}

pub fn run(args: Args) {
    let d = super::work_dir(args.dir.clone());
    println!(
        "footprint: daemon {} {}",
        args.runner.as_deref().unwrap_or("(native)"),
        args.daemon
            .as_deref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "hotspot-edge (this build)".into())
    );

    let site = Site::start(&d.join("memory"), &args);
    let (idle, idle_peak) = site.rss_over(20);
    println!("idle (router and broker connected, no users): RSS {idle} KiB, peak {idle_peak} KiB");
    let t = Instant::now();
    site.pay("day", args.users, args.sessions);
    let paid = t.elapsed();
    let online = site.online(args.sessions);
    let (loaded, loaded_peak) = site.rss_over(30);
    println!(
        "{} users, {} sessions (paid in {:.1} s, all online {:.1} s later; then 30 s of polls): RSS {loaded} KiB, peak {loaded_peak} KiB",
        args.users,
        args.sessions,
        paid.as_secs_f64(),
        online.as_secs_f64()
    );
    drop(site);

    // --minutes 0: memory only.
    let plans = if args.minutes > 0.0 {
        &[("day", "a time plan"), ("day-5gb", "a 5 GB data plan")][..]
    } else {
        &[]
    };
    for &(plan, what) in plans {
        let site = Site::start(&d.join(plan), &args);
        site.pay(plan, args.steady, args.steady);
        site.online(args.steady);
        // One poll interval (10 s by default) so the logins' own writes are behind us.
        std::thread::sleep(Duration::from_secs(12));
        let (w0, c0) = site.written();
        let t = Instant::now();
        std::thread::sleep(Duration::from_secs_f64(args.minutes * 60.0));
        let (w1, c1) = site.written();
        let hours = t.elapsed().as_secs_f64() / 3600.0;
        let open = site.query("SELECT count(*) FROM sessions WHERE ended_at IS NULL");
        let per_hour = (w1 - w0) as f64 / hours;
        let net_per_hour = (w1 - w0).saturating_sub(c1 - c0) as f64 / hours;
        println!(
            "flash writes, {} sessions on {what} ({open} open at the end, {TRAFFIC_KBPS} kB/s each), over {:.1} min: write_bytes {:.2} MB/hour = {:.1} MB/day (budget 50); less cancelled writes {:.2} MB/hour",
            args.steady,
            hours * 60.0,
            per_hour / 1e6,
            per_hour * 24.0 / 1e6,
            net_per_hour / 1e6
        );
    }
    if std::env::var_os("BENCH_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&d);
    } else {
        println!("kept {}", d.display());
    }
}
