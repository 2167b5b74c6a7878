//! `startup`: start-up time and RSS with many users and a large outbox (`startup-probe` is the
//! measured child).

use super::*;

pub fn startup(users: usize, outbox: usize, dir: Option<PathBuf>) {
    let d = work_dir(dir);
    let path = d.join("big.db");
    let t = Instant::now();
    {
        let (mut store, engine) = open_with_plan(&path);
        let cmds: Vec<Command> = (1..=users).map(|i| payment(i, false)).collect();
        for chunk in cmds.chunks(2000) {
            let refs: Vec<(Option<&str>, &Command)> = chunk.iter().map(|c| (None, c)).collect();
            store
                .apply_many(&engine, &SystemClock, &mut OsEntropy, Source::Cli, &refs)
                .expect("apply");
        }
        store.close().expect("close");
    }
    // Top the outbox up to `outbox` rows with the payload size of a real event.
    let conn = rusqlite::Connection::open(&path).expect("open");
    let have: i64 = conn
        .query_row("SELECT count(*) FROM outbox", [], |r| r.get(0))
        .expect("count");
    conn.execute_batch("BEGIN").expect("begin");
    {
        let mut stmt = conn
            .prepare(
                "INSERT INTO outbox (event_id, type, payload, occurred_at, time_trusted, money)
                 VALUES ('bench-' || ?1, 'session.ended', ?2, ?1, 1, 0)",
            )
            .expect("prepare");
        let payload = r#"{"session":12345,"user":"k7m2qp","reason":"user-request","bytes-in":123456789,"bytes-out":987654321,"duration-ms":3600000}"#;
        for i in have..outbox as i64 {
            stmt.execute(rusqlite::params![i, payload]).expect("insert");
        }
    }
    conn.execute_batch("COMMIT; PRAGMA wal_checkpoint(TRUNCATE);")
        .expect("commit");
    drop(conn);
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    println!(
        "startup: built {users} users, {outbox} outbox rows, {:.1} MB, in {:.1} s",
        size as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    let me = std::env::current_exe().expect("current exe");
    for _ in 0..3 {
        let out = std::process::Command::new(&me)
            .args(["startup-probe", "--db"])
            .arg(&path)
            .output()
            .expect("run probe");
        print!("{}", String::from_utf8_lossy(&out.stdout));
    }
    let _ = std::fs::remove_dir_all(&d);
}

pub fn startup_probe(db: &Path) {
    // What `run` does before it serves: open with quick_check, then find the next deadline.
    let rss0 = rss_kib("self", "VmRSS:");
    let t = Instant::now();
    let mut store = open(db, true);
    let t_open = t.elapsed();
    store.refresh_clock(&SystemClock).expect("clock");
    let next = store.next_deadline().expect("deadline");
    let t_ready = t.elapsed();
    let rss_ready = rss_kib("self", "VmRSS:");
    let now = store.now(&SystemClock).expect("now");
    let t = Instant::now();
    let status = store.status("bench", &now).expect("status");
    let t_status = t.elapsed();
    println!(
        "probe: open+quick_check {:.0} ms, ready to serve {:.0} ms (next deadline found: {}), RSS {} KiB before, {} KiB ready; `status` {:.0} ms, peak RSS {} KiB; users {}",
        t_open.as_secs_f64() * 1e3,
        t_ready.as_secs_f64() * 1e3,
        next.is_some(),
        rss0,
        rss_ready,
        t_status.as_secs_f64() * 1e3,
        rss_kib("self", "VmHWM:"),
        status["users"]
    );
}
