//! The store on real files: migrations, reopening, and clear errors for bad files.

mod common;

use std::time::Duration;

use common::*;
use hotspot_edge::engine::command::PaymentArgs;
use hotspot_edge::engine::command::Source;
use hotspot_edge::engine::{Command, Engine, SeededEntropy, Settings};
use hotspot_edge::store::schema::{latest_version, APPLICATION_ID, MIGRATIONS};
use hotspot_edge::store::{OpenOptions, Store, StoreError};

fn opts() -> OpenOptions {
    OpenOptions {
        busy_timeout: Duration::from_secs(2),
        check: true,
        policy: policy(),
    }
}

fn site_on(path: &std::path::Path) -> Site {
    Site {
        store: Store::open(path, &opts()).unwrap(),
        clock: hotspot_edge::clock::FakeClock::new(NOW_MS),
        engine: Engine::new(Settings::default()),
        rng: SeededEntropy(7),
    }
}

#[test]
fn migrates_an_empty_file_to_the_latest_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/dir/h.db");
    let store = Store::open(&path, &opts()).unwrap();
    assert_eq!(store.schema_version().unwrap(), latest_version());
    drop(store);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let app: i32 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .unwrap();
    assert_eq!(app, APPLICATION_ID);
    for table in [
        "plans", "payments", "vouchers", "users", "grants", "sessions", "outbox", "inbox", "jobs",
        "audit", "meta",
    ] {
        let n: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [table],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 1, "table {table} missing");
    }
}

#[test]
fn migrates_a_database_of_the_previous_version_keeping_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        // What version 1 of hotspot-edge left behind.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.execute_batch(&format!(
            "PRAGMA user_version = 1; PRAGMA application_id = {APPLICATION_ID};"
        ))
        .unwrap();
        conn.execute_batch(
            "INSERT INTO plans VALUES ('1h','One hour',1000,'KES',3600000,'wall',NULL,NULL,1,'config',1,0);
             INSERT INTO users VALUES (1,'alice','pw','254700000001',NULL,'active',0,0);
             INSERT INTO grants (id,user_id,plan_id,source,validity,time_ms,state,created_at)
                 VALUES (1,1,'1h','payment:mpesa:R1','wall',3600000,'queued',0);
             INSERT INTO payments VALUES (1,'mpesa','R1','254700000001',1000,'KES','1h',1,1,0,1);",
        )
        .unwrap();
    }
    let mut s = site_on(&path);
    assert_eq!(s.store.schema_version().unwrap(), latest_version());
    // The old data is there and works with the new tables: alice can log in.
    let again = s.pay("R1", "254700000001", "1h", None);
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["user"], "alice");
    s.login("alice", "s1", "AA:BB:CC:DD:EE:01").unwrap();
    assert_eq!(s.user("alice")["grants"][0]["state"], "running");
}

#[test]
fn reopening_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.db");
    let (user, events) = {
        let mut s = site_on(&path);
        s.plan("1h", "1h", "wall", None, 1);
        let r = s.pay("R1", "254700000001", "1h", Some("AA:BB:CC:DD:EE:01"));
        let user = r["user"].as_str().unwrap().to_string();
        (user, s.events())
    };
    let s = site_on(&path);
    assert_eq!(s.events(), events);
    assert_eq!(s.state(&user), "active");
    assert_eq!(s.time_left(&user), HOUR);
    assert_eq!(s.store.view_payments(0).unwrap().rows.len(), 1);
}

#[test]
fn two_connections_on_one_file_take_turns() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.db");
    let mut a = site_on(&path);
    a.plan("1h", "1h", "wall", None, 1);
    let mut b = site_on(&path);
    let threads: Vec<_> = [0, 1]
        .into_iter()
        .map(|k| {
            let path = path.clone();
            std::thread::spawn(move || {
                let mut s = site_on(&path);
                s.rng = SeededEntropy(100 + k);
                for i in 0..50 {
                    s.pay(
                        &format!("T{k}-{i}"),
                        &format!("25470000{k}{i:03}"),
                        "1h",
                        None,
                    );
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    b.pay("B-1", "254711111111", "1h", None);
    assert_eq!(a.store.view_payments(0).unwrap().rows.len(), 101);
    let seqs: Vec<i64> = a
        .events()
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
}

#[test]
fn a_file_that_is_not_sqlite_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.db");
    std::fs::write(&path, b"these are not the bytes you are looking for, not a database at all, honestly; some more text to pass a page header").unwrap();
    let e = Store::open(&path, &opts()).err().expect("refused");
    assert!(matches!(e, StoreError::Foreign { .. }), "{e:?}");
    assert!(e.to_string().contains("not a hotspot-edge database"), "{e}");
}

#[test]
fn another_programs_sqlite_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("CREATE TABLE contacts (name TEXT); INSERT INTO contacts VALUES ('x');")
        .unwrap();
    drop(conn);
    let e = Store::open(&path, &opts()).err().expect("refused");
    assert!(matches!(e, StoreError::Foreign { .. }), "{e:?}");
}

#[test]
fn a_newer_schema_is_refused_with_versions_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.db");
    drop(Store::open(&path, &opts()).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("PRAGMA user_version = 99").unwrap();
    drop(conn);
    let e = Store::open(&path, &opts()).err().expect("refused");
    let msg = e.to_string();
    assert!(matches!(e, StoreError::TooNew { found: 99, .. }), "{e:?}");
    assert!(
        msg.contains(&format!(
            "version 99 is newer than this build supports ({})",
            latest_version()
        )),
        "{msg}"
    );
}

#[test]
fn a_damaged_file_is_refused_without_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.db");
    {
        let mut s = site_on(&path);
        s.plan("1h", "1h", "wall", None, 1);
        let cmds: Vec<Command> = (0..300)
            .map(|i| {
                Command::PaymentConfirmed(PaymentArgs {
                    provider: "mpesa".into(),
                    reference: format!("R{i}"),
                    phone: Some(format!("2547000{i:05}")),
                    plan: "1h".into(),
                    ..Default::default()
                })
            })
            .collect();
        let refs: Vec<_> = cmds.iter().map(|c| (None, c)).collect();
        s.store
            .apply_many(&s.engine, &s.clock, &mut s.rng, Source::Cli, &refs)
            .unwrap();
        let st = s.store;
        st.close().unwrap();
    }
    // Scribble over the middle of the file, as a failing flash chip might.
    let mut bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() > 64 * 1024, "file too small: {}", bytes.len());
    for b in &mut bytes[20 * 1024..40 * 1024] {
        *b = 0x5a;
    }
    std::fs::write(&path, &bytes).unwrap();
    let e = Store::open(&path, &opts()).err().expect("refused");
    assert!(matches!(e, StoreError::Corrupt { .. }), "{e:?}");
    assert!(e.to_string().contains("damaged"), "{e}");
}

/// The daemon and a CLI command often open a new database at the same moment (procd starts the
/// daemon while a technician types): none of them may mistake the other's half-made file for a
/// foreign one.
#[test]
fn processes_opening_a_new_database_together_all_succeed() {
    for round in 0..30 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new.db");
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(6));
        let threads: Vec<_> = (0..6)
            .map(|_| {
                let (path, barrier) = (path.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    Store::open(&path, &opts()).map(|_| ())
                })
            })
            .collect();
        for t in threads {
            if let Err(e) = t.join().unwrap() {
                panic!("round {round}: {e}");
            }
        }
    }
}
