//! `hotspot-edge demo`: a self-contained tour on a temporary database. It sells a plan for cash,
//! redeems a voucher, runs the daemon and shows both customers expire on time, then prints the
//! outbox the cloud would receive. No router and no cloud are needed.

use std::sync::Arc;
use std::time::Duration;

use crate::cli::run_args;
use crate::clock::SystemClock;
use crate::config;

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
        return 73;
    }
    let code = demo_in(&dir, seconds);
    let _ = std::fs::remove_dir_all(&dir);
    code
}

fn step(title: &str) {
    println!("\n=== {title}");
}

fn demo_in(dir: &std::path::Path, seconds: u32) -> i32 {
    let cfg_path = dir.join("config.toml");
    let text = format!(
        r#"[site]
id = "demo-site"
name = "Demo kiosk"

[store]
path = "{db}"

[log]
level = "info"

[[plans]]
id = "quick"
name = "{s} seconds (demo)"
price = 1000
currency = "KES"
time = "{s}s"

[[plans]]
id = "double"
name = "{d} seconds (demo)"
price = 1500
currency = "KES"
time = "{d}s"
data = "50MB"
devices = 2
"#,
        db = dir.join("demo.db").display(),
        s = seconds,
        d = seconds * 2
    );
    if let Err(e) = std::fs::write(&cfg_path, text) {
        eprintln!("error: cannot write {}: {e}", cfg_path.display());
        return 73;
    }
    println!("hotspot-edge demo: a temporary site in {}", dir.display());
    step("check-config");
    run_args(&cfg_path, &["check-config"]);
    step("plans list");
    run_args(&cfg_path, &["plans", "list"]);
    step("a customer pays KES 10 in cash for the quick plan on device AA:BB:CC:00:00:01");
    run_args(
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
            "AA:BB:CC:00:00:01",
        ],
    );
    step("the same receipt is recorded again (M-Pesa callbacks repeat): it buys nothing");
    run_args(
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
        ],
    );
    step("the attendant prints two vouchers for the double plan; one is redeemed");
    let loaded = match config::load(&cfg_path) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{e}");
            return 78;
        }
    };
    let config = loaded.config;
    let store = match crate::app::open_store(&config, &SystemClock, false) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return 74;
        }
    };
    drop(store);
    run_args(
        &cfg_path,
        &["vouchers", "generate", "--plan", "double", "--count", "2"],
    );
    let code = {
        let store = crate::app::open_store(&config, &SystemClock, false);
        let Ok(store) = store else { return 74 };
        let now = store.now(&SystemClock);
        let Ok(now) = now else { return 74 };
        store
            .view_vouchers(&now, Some("unused"), None, 1)
            .ok()
            .and_then(|t| t.rows.first().and_then(|r| r[0].as_str().map(String::from)))
            .unwrap_or_default()
    };
    run_args(
        &cfg_path,
        &["vouchers", "redeem", &code, "--mac", "AA:BB:CC:00:00:02"],
    );
    step("the same code typed again is refused");
    run_args(&cfg_path, &["vouchers", "redeem", &code]);
    step("users now");
    run_args(&cfg_path, &["users", "list"]);
    step(&format!(
        "the daemon runs; it wakes exactly at each deadline (about {} s)",
        seconds * 2
    ));
    crate::logging::init(&config.log);
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return 71;
        }
    };
    let watch_cfg = config.clone();
    let result = rt.block_on(async move {
        let watcher = async move {
            for _ in 0..(seconds * 2 + 10) {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let Ok(store) = crate::app::open_store(&watch_cfg, &SystemClock, false) else {
                    continue;
                };
                let Ok(now) = store.now(&SystemClock) else {
                    continue;
                };
                let Ok(t) = store.view_users(&now, None, 0) else {
                    continue;
                };
                let line: Vec<String> = t
                    .rows
                    .iter()
                    .map(|r| {
                        format!(
                            "{} {} {}",
                            r[0].as_str().unwrap_or(""),
                            r[1].as_str().unwrap_or(""),
                            r[4].as_str().unwrap_or("")
                        )
                    })
                    .collect();
                println!("  users: {}", line.join(" | "));
                if t.rows.iter().all(|r| r[1] == "expired") {
                    break;
                }
            }
        };
        crate::runtime::run_with(config, Arc::new(SystemClock), watcher, |_| {}).await
    });
    if let Err(e) = result {
        eprintln!("error: {e}");
        return 74;
    }
    step("audit: every user expired on time; router jobs are waiting for a router backend");
    run_args(&cfg_path, &["jobs", "list"]);
    step("outbox: the events the cloud will receive, in order");
    run_args(&cfg_path, &["outbox", "list"]);
    0
}
