//! Benchmarks and the crash-safety child process. Not shipped to devices.
//!
//! - `apply-rate`: durable command apply rate against a raw rusqlite insert loop, same pragmas.
//! - `startup`: start-up time and RSS with many users and a large outbox.
//! - `crash-child`: applies payments and reports each commit, for the SIGKILL test.
//! - `mqtt-drain`: outbox drain to a local mosquitto against a raw rumqttc publisher.
//! - `mqtt-burst`: a burst of commands with junk among them: link drops, event delay, RSS.
//! - `footprint`: the daemon's memory and storage writes as a process of its own.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};

#[path = "bench/apply_rate.rs"]
mod apply_rate;
#[path = "bench/crash.rs"]
mod crash;
#[path = "bench/enforce_lag.rs"]
mod enforce_lag;
#[path = "bench/footprint.rs"]
mod footprint;
#[path = "bench/mqtt_burst.rs"]
mod mqtt_burst;
#[path = "bench/mqtt_drain.rs"]
mod mqtt_drain;
#[path = "bench/radius_load.rs"]
mod radius_load;
#[path = "bench/startup.rs"]
mod startup;
use hotspot_edge::clock::{SystemClock, TimePolicy};
use hotspot_edge::engine::command::Source;
use hotspot_edge::engine::command::{PaymentArgs, PlanArgs};
use hotspot_edge::engine::{Command, Engine, OsEntropy, Settings};
use hotspot_edge::store::{OpenOptions, Store};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Payments/s through the engine (one transaction each, and batched) against raw inserts.
    ApplyRate {
        #[arg(long, default_value_t = 2000)]
        count: usize,
        #[arg(long, default_value_t = 100)]
        batch: usize,
        /// Directory for the databases (a real disk, not tmpfs, for honest fsync figures).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Builds a database with many users and outbox rows, then times opening it in a new process.
    Startup {
        #[arg(long, default_value_t = 100_000)]
        users: usize,
        #[arg(long, default_value_t = 1_000_000)]
        outbox: usize,
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Enforcement lag: N devices logged in on the simulator (a separate process) expire in one
    /// burst; from each grant's deadline to its active row being gone on the router.
    EnforceLag {
        #[arg(long, default_value_t = 1000)]
        sessions: usize,
        /// Length of the plan: long enough to provision and log in every device first.
        #[arg(long, default_value_t = 30)]
        plan_secs: u64,
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Drain of an outbox backlog to a local mosquitto by the daemon, against a raw rumqttc
    /// QoS 1 publisher with the same payloads; peak RSS of the daemon during the drain.
    MqttDrain {
        #[arg(long, default_value_t = 100_000)]
        events: usize,
        /// Events per message for the batched run.
        #[arg(long, default_value_t = 50)]
        batch: usize,
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// A burst of signed payments published at once, alone and with junk among them: time to
    /// answer, event delay to the cloud meanwhile, the link's drops, the daemon's RSS.
    MqttBurst {
        #[arg(long, default_value_t = 1000)]
        valid: usize,
        #[arg(long, default_value_t = 5000)]
        junk: usize,
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Access-Request throughput and latency of the daemon's RADIUS server against FreeRADIUS
    /// 3.2 holding the same users (Debian `freeradius`); peak RSS of both.
    RadiusLoad {
        #[arg(long, default_value_t = 10_000)]
        users: usize,
        /// Closed-loop clients (each one request at a time).
        #[arg(long, default_value_t = 32)]
        clients: usize,
        /// Seconds per run (each server is run twice, alternately).
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// The daemon as its own process (optionally under qemu-user) against the simulator and a
    /// local mosquitto: RSS idle and with many users and sessions, and storage writes per hour
    /// at a steady number of sessions.
    Footprint {
        #[arg(long, default_value_t = 10_000)]
        users: usize,
        /// Of the users, how many have a device online.
        #[arg(long, default_value_t = 2_000)]
        sessions: usize,
        /// Sessions online while the writes are measured.
        #[arg(long, default_value_t = 200)]
        steady: usize,
        /// How long the writes are measured, per plan (0: memory only).
        #[arg(long, default_value_t = 10.0)]
        minutes: f64,
        /// The daemon binary to measure (default: hotspot-edge beside this one).
        #[arg(long)]
        daemon: Option<PathBuf>,
        /// Run the daemon under this command, e.g. "qemu-mipsel -cpu 24Kc".
        #[arg(long)]
        runner: Option<String>,
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// (internal) Opens a database as the daemon does and reports time and RSS.
    StartupProbe {
        #[arg(long)]
        db: PathBuf,
    },
    /// (internal) Applies payments P<start>..P<count>, printing `committed P<i>` after each.
    CrashChild {
        #[arg(long)]
        db: PathBuf,
        #[arg(long)]
        count: usize,
        #[arg(long, default_value_t = 0)]
        start: usize,
    },
}

fn options(check: bool) -> OpenOptions {
    OpenOptions {
        busy_timeout: Duration::from_secs(5),
        check,
        policy: TimePolicy::new(7 * 86_400_000),
    }
}

fn plan_cmd() -> Command {
    Command::PlansUpsert(PlanArgs {
        id: hotspot_edge::domain::PlanId::parse("bench").unwrap(),
        name: "bench plan".into(),
        price: 1000,
        currency: hotspot_edge::domain::Currency::parse("KES").unwrap(),
        time: hotspot_edge::units::parse_span("1h").unwrap(),
        validity: Some(hotspot_edge::domain::Validity::Wall),
        data: None,
        rate_limit: None,
        devices: Some(1),
        idle_timeout: None,
        source: Some(hotspot_edge::domain::PlanSource::Cli),
    })
}

/// Payment number `i`. With `repeat_buyers`, every tenth customer buys again (an extension
/// rather than a new user), as at a real site.
fn payment(i: usize, repeat_buyers: bool) -> Command {
    let customer = if repeat_buyers && i % 10 == 9 {
        i - 9
    } else {
        i
    };
    Command::PaymentConfirmed(PaymentArgs {
        provider: "mpesa".into(),
        reference: format!("P{i:07}"),
        phone: Some(format!("2547{customer:08}")),
        plan: "bench".into(),
        ..Default::default()
    })
}

fn open(path: &Path, check: bool) -> Store {
    match Store::open(path, &options(check)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(74);
        }
    }
}

/// The database at `path`, opened as the CLI does, with the bench plan on sale.
fn open_with_plan(path: &Path) -> (Store, Engine) {
    let mut store = open(path, false);
    let engine = engine();
    store
        .apply(
            &engine,
            &SystemClock,
            &mut OsEntropy,
            Source::Cli,
            None,
            &plan_cmd(),
        )
        .expect("plan");
    (store, engine)
}

fn engine() -> Engine {
    Engine::new(Settings::default())
}

/// A number from a `/proc/PID/FILE` line `FIELD value ...` of a process (`self` or a pid); 0
/// if the process or the field is gone.
fn proc_figure(pid: &str, file: &str, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/{file}"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// A memory figure of a process (`self` or a pid) from /proc, in KiB: `VmRSS:` now, `VmHWM:`
/// the peak.
fn rss_kib(pid: &str, field: &str) -> u64 {
    proc_figure(pid, "status", field)
}

/// Bytes a process (`self` or a pid) has caused to be written to storage (what wears flash):
/// every page it dirtied, from `/proc/PID/io`.
fn written_bytes(pid: &str) -> u64 {
    proc_figure(pid, "io", "write_bytes:")
}

/// Customer `i`'s payment (reference `{prefix}{i}`) for `plan`; with `device`, from simulated
/// device `i` (a MAC and an IP, up to 2^24 of them), which the daemon then logs in.
fn device_payment(prefix: &str, i: usize, plan: &str, device: bool) -> Command {
    Command::PaymentConfirmed(PaymentArgs {
        provider: "mpesa".into(),
        reference: format!("{prefix}{i:06}"),
        phone: Some(format!("2547{i:08}")),
        plan: plan.into(),
        mac: device.then(|| {
            format!(
                "02:00:00:{:02X}:{:02X}:{:02X}",
                i >> 16,
                (i >> 8) & 255,
                i & 255
            )
        }),
        ip: device.then(|| format!("10.{}.{}.{}", 5 + (i >> 16), (i >> 8) & 255, i & 255)),
        ..Default::default()
    })
}

/// A child process (mosquitto, the daemon, FreeRADIUS, the simulator) killed when the bench is
/// done with it, and also when the bench panics: release builds abort on panic, so `Drop` never
/// runs then, and a panic hook kills what is still registered.
struct Killed(std::process::Child);

/// Pids of the children alive, for the panic hook.
static CHILDREN: std::sync::Mutex<Vec<u32>> = std::sync::Mutex::new(Vec::new());

impl Killed {
    fn new(child: std::process::Child) -> Killed {
        static HOOK: std::sync::Once = std::sync::Once::new();
        HOOK.call_once(|| {
            let default = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                let pids = CHILDREN.lock().map(|p| p.clone()).unwrap_or_default();
                let groups = GROUPS.lock().map(|g| g.clone()).unwrap_or_default();
                for pid in pids {
                    let target = if groups.contains(&pid) {
                        format!("-{pid}")
                    } else {
                        pid.to_string()
                    };
                    let _ = std::process::Command::new("kill")
                        .args(["-9", "--", &target])
                        .status();
                }
                default(info);
            }));
        });
        if let Ok(mut p) = CHILDREN.lock() {
            p.push(child.id());
        }
        Killed(child)
    }
}

impl Killed {
    /// A child started in a process group of its own (`process_group(0)`): the whole group is
    /// killed, so a daemon under a runner (heaptrack's script, qemu) goes with it.
    fn group(child: std::process::Child) -> Killed {
        let k = Killed::new(child);
        if let Ok(mut g) = GROUPS.lock() {
            g.push(k.0.id());
        }
        k
    }
}

/// Children that lead a process group of their own.
static GROUPS: std::sync::Mutex<Vec<u32>> = std::sync::Mutex::new(Vec::new());

impl Drop for Killed {
    fn drop(&mut self) {
        let id = self.0.id();
        let grouped = GROUPS.lock().map(|g| g.contains(&id)).unwrap_or(false);
        if grouped {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{id}")])
                .status();
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
        if let Ok(mut p) = CHILDREN.lock() {
            p.retain(|pid| *pid != self.0.id());
        }
    }
}

/// `hotspot-edge run -c CONFIG` as a child process: `daemon` (default: this build's, beside the
/// bench) under `runner` (e.g. "qemu-mipsel -cpu 24Kc", or a profiler), its stderr in `log`.
fn spawn_daemon(daemon: Option<&Path>, runner: Option<&str>, config: &Path, log: &Path) -> Killed {
    let bin = daemon.map(Path::to_path_buf).unwrap_or_else(|| {
        std::env::current_exe()
            .expect("exe")
            .with_file_name("hotspot-edge")
    });
    let mut argv: Vec<String> = runner
        .unwrap_or("")
        .split_whitespace()
        .map(String::from)
        .collect();
    argv.push(bin.display().to_string());
    let log = std::fs::File::create(log).expect("daemon log");
    let mut cmd = std::process::Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .args(["run", "-c"])
        .arg(config)
        .stdout(std::process::Stdio::null())
        .stderr(log);
    if runner.is_some() {
        // The runner's children (the daemon itself) are killed with it.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    }
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("start {argv:?}: {e} (cargo build --release --bins)"));
    if runner.is_some() {
        Killed::group(child)
    } else {
        Killed::new(child)
    }
}

fn work_dir(dir: Option<PathBuf>) -> PathBuf {
    let base = dir.unwrap_or_else(|| PathBuf::from("target/bench-data"));
    let d = base.join(format!("run-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("create bench directory");
    d
}

fn main() {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::ApplyRate { count, batch, dir } => apply_rate::apply_rate(count, batch.max(1), dir),
        Cmd::Startup { users, outbox, dir } => startup::startup(users, outbox, dir),
        Cmd::StartupProbe { db } => startup::startup_probe(&db),
        Cmd::MqttDrain { events, batch, dir } => mqtt_drain::run(events, batch.max(1), dir),
        Cmd::MqttBurst { valid, junk, dir } => mqtt_burst::run(valid.max(1), junk, dir),
        Cmd::RadiusLoad {
            users,
            clients,
            seconds,
            dir,
        } => radius_load::run(users.max(1), clients.max(1), seconds.max(1), dir),
        Cmd::Footprint {
            users,
            sessions,
            steady,
            minutes,
            daemon,
            runner,
            dir,
        } => footprint::run(footprint::Args {
            users,
            sessions: sessions.min(users),
            steady,
            minutes,
            daemon,
            runner,
            dir,
        }),
        Cmd::CrashChild { db, count, start } => crash::crash_child(&db, count, start),
        Cmd::EnforceLag {
            sessions,
            plan_secs,
            dir,
        } => enforce_lag::run(sessions, plan_secs, dir),
    }
}

/// CPU time (user + system, all threads) a process (`self` or a pid) has used, in ms.
fn cpu_ms(pid: &str) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = after
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    // After the command name: state is field 3; utime and stime are fields 14 and 15.
    let ticks = f.get(10).copied().unwrap_or(0) + f.get(11).copied().unwrap_or(0);
    ticks * 10
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// Wall-clock ms of each user's last login and logout on the simulator, by user name.
type RouterEvents = std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, (i64, i64)>>>;

/// The RouterOS simulator as a separate process (API user `hotspot-edge`, password
/// `bench-router-pass`), every logged-in device downloading `traffic_kbps`; its login and logout
/// events are collected in `seen`. Killed when dropped, however the benchmark ends.
struct RouterSim {
    _child: Killed,
    addr: String,
    seen: RouterEvents,
}

impl RouterSim {
    fn start(traffic_kbps: u64) -> Self {
        use std::io::BufRead;
        let sim_bin = std::env::current_exe()
            .expect("exe")
            .with_file_name("hotspot-edge-routeros-sim");
        let mut child = std::process::Command::new(&sim_bin)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--password",
                "bench-router-pass",
                "--log-events",
            ])
            .arg(format!("--traffic-kbps={traffic_kbps}"))
            // The simulator exits when this pipe closes: however the bench ends.
            .arg("--exit-with-stdin")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "start {}: {e} (cargo build --release --bins)",
                    sim_bin.display()
                )
            });
        let mut err = std::io::BufReader::new(child.stderr.take().expect("stderr"));
        let mut first = String::new();
        err.read_line(&mut first).expect("simulator banner");
        let addr = first
            .split_whitespace()
            .nth(3)
            .expect("simulator address")
            .to_string();
        let seen = RouterEvents::default();
        let out = child.stdout.take().expect("stdout");
        let events = seen.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                let p: Vec<&str> = line.split_whitespace().collect();
                if let [kind, user, ms] = p[..] {
                    let ms: i64 = ms.parse().unwrap_or(0);
                    let mut m = events.lock().unwrap();
                    let e = m.entry(user.to_string()).or_insert((0, 0));
                    if kind == "login" {
                        e.0 = ms
                    } else {
                        e.1 = ms
                    }
                }
            }
        });
        RouterSim {
            _child: Killed::new(child),
            addr,
            seen,
        }
    }

    /// Users logged in at least once.
    fn logged_in(&self) -> usize {
        self.seen
            .lock()
            .unwrap()
            .values()
            .filter(|v| v.0 > 0)
            .count()
    }

    /// The `[router]` section that points the daemon at this simulator (`dir` gets the password
    /// file).
    fn router_config(&self, dir: &Path) -> String {
        let pw = dir.join("router.pass");
        std::fs::write(&pw, "bench-router-pass\n").expect("password file");
        format!(
            "[router]\nkind = \"routeros\"\naddress = \"{}\"\nusername = \"hotspot-edge\"\npassword-file = \"{}\"\nallow-plaintext = true\n",
            self.addr,
            pw.display()
        )
    }
}
