//! `hotspot-edge demo`: a self-contained tour. It starts the bundled RouterOS simulator and the
//! daemon on a temporary database, sells a time plan for cash and a data plan by voucher to
//! simulated devices, shows them counting down and using data, shows both cut off on time on the
//! router, and prints the outbox the cloud would receive. No router, no cloud, under a minute.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::exit::*;
use super::run_args;
use crate::clock::SystemClock;
use crate::config;
use crate::routeros::sim::{Model, Simulator};

pub fn demo(seconds: u32) -> i32 {
    let seconds = seconds.clamp(3, 600);
    let mut rnd = [0u8; 4];
    crate::engine::Entropy::fill(&mut crate::engine::OsEntropy, &mut rnd);
    let dir = std::env::temp_dir().join(format!(
        "hotspot-edge-demo-{}",
        rnd.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("error: cannot create {}: {e}", dir.display());
        return EXIT_CANT_CREATE;
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_OS_ERROR;
        }
    };
    let code = rt.block_on(demo_in(&dir, seconds));
    let _ = std::fs::remove_dir_all(&dir);
    code
}

fn step(title: &str) {
    println!("\n=== {title}");
}

const MAC_A: &str = "AA:BB:CC:00:00:0A";
const MAC_B1: &str = "AA:BB:CC:00:00:B1";
const MAC_B2: &str = "AA:BB:CC:00:00:B2";

async fn cli(cfg: &Path, args: &[&str]) -> i32 {
    let cfg = cfg.to_path_buf();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        run_args(&cfg, &a)
    })
    .await
    .unwrap_or(70)
}

async fn demo_in(dir: &Path, seconds: u32) -> i32 {
    let mut model = Model::default();
    model.add_api_user("hotspot-edge", "demo-router-password", "hotspot-edge");
    let sim = match Simulator::start("127.0.0.1:0", model).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot start the router simulator: {e}");
            return EXIT_OS_ERROR;
        }
    };
    let cfg_path = dir.join("config.toml");
    let pw_path = dir.join("router.pass");
    let text = format!(
        r#"[site]
id = "demo-site"
name = "Demo kiosk"

[store]
path = "{db}"

[log]
level = "info"

[enforcement]
usage-poll = "1s"

[router]
kind = "routeros"
address = "{addr}"
username = "hotspot-edge"
password-file = "{pw}"
hotspot-server = "hotspot1"
allow-plaintext = true

[[plans]]
id = "quick"
name = "{s} seconds (demo)"
price = 1000
currency = "KES"
time = "{s}s"

[[plans]]
id = "data"
name = "30 MB for 10 minutes, 2 devices (demo)"
price = 5000
currency = "KES"
time = "10m"
data = "30MB"
devices = 2
rate-limit = "2M/5M"
"#,
        db = dir.join("demo.db").display(),
        addr = sim.addr,
        pw = pw_path.display(),
        s = seconds,
    );
    if std::fs::write(&cfg_path, text).is_err()
        || std::fs::write(&pw_path, "demo-router-password\n").is_err()
    {
        eprintln!("error: cannot write the demo config in {}", dir.display());
        return EXIT_CANT_CREATE;
    }
    println!(
        "hotspot-edge demo: a RouterOS simulator on {} and a temporary site in {}",
        sim.addr,
        dir.display()
    );
    step("check-config");
    cli(&cfg_path, &["check-config"]).await;
    let (config, settings) = match config::load(&cfg_path).and_then(|l| {
        crate::daemon::Settings::resolve(l.config.clone())
            .map(|s| (l.config.clone(), s))
            .map_err(|e| l.locate(e.span, e.message))
    }) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("{e}");
            return EXIT_BAD_CONFIG;
        }
    };
    crate::logging::init(&config::LogConfig {
        level: config::LogLevel::Warn,
        format: config::LogFormat::Pretty,
    });
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let daemon = tokio::spawn(async move {
        crate::daemon::run_with(
            settings,
            Arc::new(SystemClock),
            async {
                let _ = stop_rx.await;
            },
            |_| {},
        )
        .await
    });
    step("the daemon runs and connects to the router; plans become hotspot user profiles");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    cli(&cfg_path, &["plans", "list"]).await;
    step(&format!("customer A pays KES 10 cash for {seconds} s on device {MAC_A}: created and logged in on the router"));
    cli(
        &cfg_path,
        &[
            "payments",
            "record",
            "--provider",
            "cash",
            "--reference",
            "CASH-0001",
            "--phone",
            "254700000001",
            "--plan",
            "quick",
            "--mac",
            MAC_A,
            "--ip",
            "10.5.50.10",
        ],
    )
    .await;
    step("the same receipt arrives again (M-Pesa repeats callbacks): it buys nothing");
    cli(
        &cfg_path,
        &[
            "payments",
            "record",
            "--provider",
            "cash",
            "--reference",
            "CASH-0001",
            "--plan",
            "quick",
        ],
    )
    .await;
    step("customer B buys a 30 MB voucher and types it on two devices at the portal");
    let code = {
        let out = tokio::task::spawn_blocking({
            let cfg = cfg_path.clone();
            move || {
                let config = config::load(&cfg).ok()?.config;
                let mut store = crate::app::open_store(&config, &SystemClock, false).ok()?;
                let engine = crate::app::engine(&config);
                let cmd = crate::engine::Command::VouchersGenerate(
                    crate::engine::command::GenerateArgs {
                        plan: "data".into(),
                        count: 1,
                        length: None,
                        expires_in: None,
                    },
                );
                let r = store
                    .apply(
                        &engine,
                        &SystemClock,
                        &mut crate::engine::OsEntropy,
                        crate::engine::command::Source::Cli,
                        None,
                        &cmd,
                    )
                    .ok()?;
                r.result["codes"][0].as_str().map(String::from)
            }
        })
        .await;
        match out {
            Ok(Some(c)) => c,
            _ => {
                eprintln!("error: could not generate the demo voucher");
                return EXIT_STORE;
            }
        }
    };
    println!("voucher {code}");
    cli(&cfg_path, &["vouchers", "redeem", &code]).await;
    // The customer types the code at the captive portal on both devices.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let ok = {
            let mut m = sim.model();
            m.portal_login(&code, &code, MAC_B1, "10.5.50.21").is_ok()
        };
        if ok || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = sim.model().portal_login(&code, &code, MAC_B2, "10.5.50.22");
    step("devices browse; every second: time and data left, and who is online on the router");
    let started = Instant::now();
    let limit = Duration::from_secs(u64::from(seconds) + 20);
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        {
            let mut m = sim.model();
            m.advance(1000);
            m.traffic(MAC_A, 20_000, 300_000);
            m.traffic(MAC_B1, 100_000, 1_400_000);
            m.traffic(MAC_B2, 50_000, 900_000);
        }
        let online: Vec<String> = sim
            .model()
            .active
            .rows
            .iter()
            .map(|r| {
                format!(
                    "{}@{}",
                    r.get("user").unwrap_or(""),
                    r.get("mac-address").unwrap_or("")
                )
            })
            .collect();
        let users = tokio::task::spawn_blocking({
            let config = config.clone();
            move || {
                let store = crate::app::open_store(&config, &SystemClock, false).ok()?;
                let now = store.now(&SystemClock).ok()?;
                store.view_users(&now, None, 0).ok()
            }
        })
        .await
        .ok()
        .flatten();
        let line: Vec<String> = users
            .map(|t| {
                t.rows
                    .iter()
                    .map(|r| {
                        format!(
                            "{} {} time {} data {}",
                            r[0].as_str().unwrap_or(""),
                            r[1].as_str().unwrap_or(""),
                            r[4].as_str().unwrap_or(""),
                            r[5].as_str().unwrap_or("-")
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        println!(
            "  t+{:>2}s | {} | on the router: {}",
            started.elapsed().as_secs(),
            line.join(" | "),
            if online.is_empty() {
                "nobody".to_string()
            } else {
                online.join(", ")
            }
        );
        let all_done = online.is_empty() && started.elapsed() > Duration::from_secs(3);
        if all_done || started.elapsed() > limit {
            break;
        }
    }
    step(
        "both customers were cut off on the router: user disabled, cookies removed, sessions gone",
    );
    {
        let m = sim.model();
        for u in &m.users.rows {
            println!(
                "  router user {:<10} profile {:<6} disabled {}",
                u.get("name").unwrap_or(""),
                u.get("profile").unwrap_or(""),
                u.get("disabled").unwrap_or("")
            );
        }
        println!(
            "  active sessions {}, cookies {}",
            m.active.rows.len(),
            m.cookies.rows.len()
        );
    }
    let _ = stop_tx.send(());
    match daemon.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => eprintln!("daemon: {e}"),
        Err(e) => eprintln!("daemon: {e}"),
    }
    step("sessions");
    cli(&cfg_path, &["sessions", "list"]).await;
    step("outbox: the events the cloud will receive, in order");
    cli(&cfg_path, &["outbox", "list"]).await;
    0
}
