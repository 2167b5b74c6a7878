//! Crash safety: a child process applying 10,000 payments is killed with SIGKILL at random
//! points. After every kill the database passes `integrity_check`, every payment the child
//! reported committed is there exactly once, and the outbox seq has no gap.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

const TOTAL: usize = 10_000;
const KILLS: usize = 24;

fn check(db: &std::path::Path, reported: &BTreeSet<usize>) -> usize {
    let conn = rusqlite::Connection::open(db).unwrap();
    let verdict: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(verdict, "ok");
    // A kill that lands before the first migration commits leaves no tables (a slow machine):
    // then nothing can have been reported committed.
    let initialised: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'payments'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    if initialised == 0 {
        assert!(
            reported.is_empty(),
            "commits reported before the schema existed"
        );
        return 0;
    }
    let refs: Vec<String> = conn
        .prepare("SELECT reference FROM payments ORDER BY reference")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let present: BTreeSet<usize> = refs.iter().map(|r| r[1..].parse().unwrap()).collect();
    assert_eq!(present.len(), refs.len(), "a payment is stored twice");
    for r in reported {
        assert!(
            present.contains(r),
            "payment P{r:07} was reported committed but is missing"
        );
    }
    // Payments are applied in order: what is stored is exactly P1..Pn.
    let n = present.len();
    assert_eq!(
        present.iter().next_back().copied().unwrap_or(0),
        n,
        "a hole in the payments"
    );
    let grants: i64 = conn
        .query_row("SELECT count(*) FROM grants", [], |r| r.get(0))
        .unwrap();
    assert_eq!(grants as usize, n, "one grant per payment");
    let (count, min, max): (i64, Option<i64>, Option<i64>) = conn
        .query_row("SELECT count(*), min(seq), max(seq) FROM outbox", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    if count > 0 {
        assert_eq!(min, Some(1));
        assert_eq!(max, Some(count), "a gap in the outbox seq");
    }
    let paid_events: i64 = conn
        .query_row(
            "SELECT count(*) FROM outbox WHERE type = 'payment.recorded'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        paid_events as usize, n,
        "one payment.recorded event per payment"
    );
    n
}

#[test]
fn sigkill_during_payments_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crash.db");
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    println!("kill-time seed {seed}");
    let mut rng = seed;
    let mut next_delay = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        // Short windows: a run must not finish the 10,000 before the kills are done.
        Duration::from_millis(5 + rng % 120)
    };
    let mut reported = BTreeSet::new();
    let mut kills = 0;
    let mut stored = 0;
    let mut runs = 0;
    while stored < TOTAL {
        runs += 1;
        assert!(runs < 200, "no progress");
        let mut child = Command::new(env!("CARGO_BIN_EXE_hotspot-edge-bench"))
            .args(["crash-child", "--count", &TOTAL.to_string(), "--start"])
            .arg(stored.to_string())
            .arg("--db")
            .arg(&db)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .filter_map(|l| l.strip_prefix("committed P").and_then(|n| n.parse().ok()))
                .collect::<Vec<usize>>()
        });
        if kills < KILLS {
            std::thread::sleep(next_delay());
            child.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        // A child that finished before its kill landed is fine: nothing was cut.
        child.wait().unwrap();
        reported.extend(reader.join().unwrap());
        stored = check(&db, &reported);
    }
    assert!(kills >= 20, "only {kills} kills");
    assert_eq!(stored, TOTAL);
    println!(
        "{kills} kills, {runs} runs, {} reported commits",
        reported.len()
    );
}
