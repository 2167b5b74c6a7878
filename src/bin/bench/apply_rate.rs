//! `apply-rate`: durable command apply rate against a raw rusqlite insert loop, same pragmas.

use super::*;

/// The baseline: the same durable insert of a payment row, straight through rusqlite.
pub fn raw_inserts(path: &Path, count: usize, batch: usize) -> f64 {
    let conn = rusqlite::Connection::open(path).expect("open raw db");
    conn.execute_batch(
        "PRAGMA page_size=1024; PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;
         CREATE TABLE payments (id INTEGER PRIMARY KEY, provider TEXT NOT NULL,
             reference TEXT NOT NULL, phone TEXT, amount INTEGER NOT NULL, plan_id TEXT NOT NULL,
             received_at INTEGER NOT NULL, UNIQUE (provider, reference));",
    )
    .expect("raw schema");
    let t = Instant::now();
    let mut i = 0;
    while i < count {
        conn.execute_batch("BEGIN IMMEDIATE").expect("begin");
        for _ in 0..batch.min(count - i) {
            conn.execute(
                "INSERT INTO payments (provider, reference, phone, amount, plan_id, received_at)
                 VALUES ('mpesa', ?1, ?2, 1000, 'bench', ?3)",
                rusqlite::params![format!("P{i:07}"), format!("2547{i:08}"), i as i64],
            )
            .expect("insert");
            i += 1;
        }
        conn.execute_batch("COMMIT").expect("commit");
    }
    count as f64 / t.elapsed().as_secs_f64()
}

pub fn engine_applies(path: &Path, count: usize, batch: usize) -> f64 {
    let (mut store, engine) = open_with_plan(path);
    let cmds: Vec<Command> = (1..=count).map(|i| payment(i, true)).collect();
    let t = Instant::now();
    for chunk in cmds.chunks(batch) {
        let refs: Vec<(Option<&str>, &Command)> = chunk.iter().map(|c| (None, c)).collect();
        let results = store
            .apply_many(&engine, &SystemClock, &mut OsEntropy, Source::Cli, &refs)
            .expect("apply");
        assert!(
            results.iter().all(|r| r.is_ok()),
            "a bench payment was refused"
        );
    }
    count as f64 / t.elapsed().as_secs_f64()
}

pub fn apply_rate(count: usize, batch: usize, dir: Option<PathBuf>) {
    let d = work_dir(dir);
    println!(
        "apply-rate: {count} payments, batch {batch}, databases in {}",
        d.display()
    );
    let w0 = written_bytes("self");
    let raw1 = raw_inserts(&d.join("raw1.db"), count, 1);
    let w1 = written_bytes("self");
    let eng1 = engine_applies(&d.join("eng1.db"), count, 1);
    let w2 = written_bytes("self");
    let raw_b = raw_inserts(&d.join("rawb.db"), count, batch);
    let w3 = written_bytes("self");
    let eng_b = engine_applies(&d.join("engb.db"), count, batch);
    let w4 = written_bytes("self");
    let per = |a: u64, b: u64| (b - a) as f64 / count as f64 / 1024.0;
    println!(
        "storage written per payment: engine {:.1} KiB one-each, {:.1} KiB batched; raw {:.1} / {:.1} KiB",
        per(w1, w2),
        per(w3, w4),
        per(w0, w1),
        per(w2, w3)
    );
    println!(
        "one transaction each: engine {eng1:.0}/s, raw rusqlite {raw1:.0}/s, ratio {:.2}",
        eng1 / raw1
    );
    println!(
        "batched ({batch}/txn):   engine {eng_b:.0}/s, raw rusqlite {raw_b:.0}/s, ratio {:.2}",
        eng_b / raw_b
    );
    println!("engine batched vs raw one-each: {:.2}", eng_b / raw1);
    let _ = std::fs::remove_dir_all(&d);
}
