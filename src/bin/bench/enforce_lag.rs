//! `enforce-lag`: N customers pay at once, each with a device; the daemon (a process of its
//! own, this build's `hotspot-edge`) creates their users on the RouterOS simulator (another
//! process) and logs every device in — the provisioning curve — then their grants all end at the
//! same instant and the burst is cut off: from each grant's deadline to the moment the simulator
//! removed the device's active row. The daemon's RSS is sampled from /proc throughout.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use hotspot_edge::clock::SystemClock;
use hotspot_edge::engine::command::Source;
use hotspot_edge::engine::{Command, OsEntropy};

use super::{cpu_ms, percentile, rss_kib, spawn_daemon, work_dir, RouterSim};

pub fn run(sessions: usize, plan_secs: u64, dir: Option<PathBuf>) {
    let d = work_dir(dir);
    let sim = RouterSim::start(0);
    let db = d.join("lag.db");
    let cfg = d.join("config.toml");
    std::fs::write(
        &cfg,
        format!(
            "[site]\nid = \"bench\"\n[store]\npath = \"{}\"\n[log]\nlevel = \"{}\"\n{}\n[[plans]]\nid = \"burst\"\nname = \"burst\"\nprice = 10\ncurrency = \"KES\"\ntime = \"{plan_secs}s\"\n",
            db.display(),
            std::env::var("BENCH_LOG").unwrap_or_else(|_| "warn".into()),
            sim.router_config(&d),
        ),
    )
    .expect("config");
    // BENCH_DAEMON: another daemon binary; BENCH_RUNNER: a command to run it under (a profiler,
    // or qemu-user for a foreign binary).
    let daemon = spawn_daemon(
        std::env::var_os("BENCH_DAEMON")
            .map(PathBuf::from)
            .as_deref(),
        std::env::var("BENCH_RUNNER").ok().as_deref(),
        &cfg,
        &d.join("daemon.log"),
    );
    let pid = daemon.0.id().to_string();
    let query = |sql: &str| -> i64 {
        rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .and_then(|c| c.query_row(sql, [], |r| r.get(0)))
            .unwrap_or(-1)
    };
    let t = Instant::now();
    while query("SELECT count(*) FROM plans WHERE id = 'burst'") != 1 {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the daemon did not start (see {}/daemon.log)",
            d.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let rss_idle = rss_kib(&pid, "VmRSS:");

    // Everyone pays at once, as the cloud's relay or a crowd at the portal would deliver them.
    let t_pay = Instant::now();
    {
        let mut store = super::open(&db, false);
        let engine = super::engine();
        let cmds: Vec<Command> = (0..sessions)
            .map(|i| super::device_payment("L", i, "burst", true))
            .collect();
        // One transaction: every grant ends at the same instant, the burst the benchmark is for.
        let refs: Vec<_> = cmds.iter().map(|c| (None, c)).collect();
        store
            .apply_many(&engine, &SystemClock, &mut OsEntropy, Source::Cli, &refs)
            .expect("payments");
        store.close().expect("close");
    }
    let paid = t_pay.elapsed();
    let mut peak_provisioning = 0;
    let mut marks: Vec<(usize, f64)> = Vec::new();
    let steps: Vec<usize> = [1000, 3000, 5000, 10_000, 20_000]
        .into_iter()
        .filter(|n| *n < sessions)
        .chain([sessions])
        .collect();
    let mut last_report = Instant::now();
    loop {
        let n = sim.logged_in();
        while marks.len() < steps.len() && n >= steps[marks.len()] {
            marks.push((steps[marks.len()], t_pay.elapsed().as_secs_f64()));
        }
        if n >= sessions {
            break;
        }
        assert!(
            t_pay.elapsed() < Duration::from_secs(plan_secs),
            "only {n} of {sessions} devices logged in before the deadline: raise --plan-secs"
        );
        peak_provisioning = peak_provisioning.max(rss_kib(&pid, "VmRSS:"));
        if last_report.elapsed() >= Duration::from_secs(5) {
            eprintln!(
                "provisioning: {n} of {sessions} logged in after {:.1} s",
                t_pay.elapsed().as_secs_f64()
            );
            last_report = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let provisioned = t_pay.elapsed();

    // Each grant's deadline as a wall-clock instant (the store's timeline, mapped as it maps it).
    let (now, deadlines) = {
        let store = super::open(&db, false);
        let now = store.now(&SystemClock).expect("now");
        let conn = rusqlite::Connection::open(&db).expect("db");
        let mut st = conn
            .prepare("SELECT u.username, g.deadline FROM grants g JOIN users u ON u.id = g.user_id WHERE g.state = 'running'")
            .expect("query");
        let rows: Vec<(String, i64)> = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("rows");
        (now, rows)
    };
    let rss_before = rss_kib(&pid, "VmRSS:");
    let cpu0 = cpu_ms(&pid);
    let t0 = Instant::now();
    let mut peak_burst = rss_before;
    let gone = || {
        sim.seen
            .lock()
            .unwrap()
            .values()
            .filter(|v| v.1 > 0)
            .count()
    };
    while gone() < sessions {
        peak_burst = peak_burst.max(rss_kib(&pid, "VmRSS:"));
        assert!(
            t0.elapsed() < Duration::from_secs(plan_secs + 300),
            "only {} of {sessions} cut off",
            gone()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let cpu = cpu_ms(&pid) - cpu0;
    let hwm = rss_kib(&pid, "VmHWM:");
    let seen = sim.seen.lock().unwrap().clone();
    let mut lags: Vec<i64> = deadlines
        .iter()
        .filter_map(|(u, dl)| seen.get(u).map(|v| v.1 - now.wall_at(*dl)))
        .collect();
    lags.sort_unstable();
    let curve: Vec<String> = marks
        .iter()
        .map(|(n, s)| format!("{n} in {s:.1} s"))
        .collect();
    println!(
        "enforce-lag: {sessions} devices; payments recorded in {:.1} s; provisioned and logged in: {} (all in {:.1} s)",
        paid.as_secs_f64(),
        curve.join(", "),
        provisioned.as_secs_f64()
    );
    println!(
        "lag from deadline to active row gone on the router: p50 {} ms, p99 {} ms, max {} ms, min {} ms",
        percentile(&lags, 0.5),
        percentile(&lags, 0.99),
        lags.last().copied().unwrap_or(0),
        lags.first().copied().unwrap_or(0)
    );
    println!(
        "daemon process RSS: idle {rss_idle} KiB, peak while provisioning {peak_provisioning} KiB, before the burst {rss_before} KiB, peak in the burst {peak_burst} KiB, VmHWM {hwm} KiB; CPU {cpu} ms from waiting for the deadline to the last cut-off"
    );
    drop(daemon);
    drop(sim);
    if std::env::var_os("BENCH_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&d);
    } else {
        println!("kept {}", d.display());
    }
}
