//! The `hotspot-edge` binary as a technician uses it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_hotspot-edge");

struct Env {
    _dir: tempfile::TempDir,
    config: PathBuf,
    db: PathBuf,
}

fn env_with(plans: &str) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state/h.db");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[site]\nid = \"cli-test\"\n\n[store]\npath = \"{}\"\n\n{plans}",
            db.display()
        ),
    )
    .unwrap();
    Env {
        _dir: dir,
        config,
        db,
    }
}

const PLANS: &str = r#"
[[plans]]
id = "1h"
name = "1 hour"
price = 1000
currency = "KES"
time = "1h"

[[plans]]
id = "blink"
name = "2 seconds"
price = 10
currency = "KES"
time = "2s"
"#;

fn run(config: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("-c")
        .arg(config)
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `payments record` of plan 1h for cash, reference C1.
fn cash_sale(config: &Path) -> Value {
    json(
        config,
        &[
            "payments",
            "record",
            "--provider",
            "cash",
            "--reference",
            "C1",
            "--plan",
            "1h",
        ],
    )
}

fn json(config: &Path, args: &[&str]) -> Value {
    let mut a = vec!["--json"];
    a.extend_from_slice(args);
    let o = run(config, &a);
    assert!(o.status.success(), "{args:?} failed: {}", stderr(&o));
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {}", stdout(&o)))
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

#[test]
fn check_config_names_file_line_and_column_and_exits_78() {
    let cases = [
        ("bad-unknown-key.toml", "10:1: unknown field `colour`, expected one of `id`, `name`, `price`, `currency`, `time`, `validity`, `data`, `rate-limit`, `devices`, `idle-timeout`"),
        ("bad-duration.toml", "9:8: bad duration \"one hour\": expected a number at \"one hour\" (units: w d h m s ms)"),
        ("bad-site-id.toml", "2:6: bad site id \"Nairobi/Market\": use 1-64 characters of a-z, 0-9, '-' or '_' (it becomes part of MQTT topics)"),
        ("bad-syntax.toml", "3:21: invalid basic string, expected `\"`"),
        ("bad-duplicate-plan.toml", "12:6: duplicate plan id \"1h\""),
        ("bad-mqtt-plaintext.toml", "4:1: [mqtt] url \"mqtt://broker.example:1883\" is plain MQTT to another host: use mqtts://, or set allow-plaintext = true to send passwords and payments in clear"),
    ];
    for (file, msg) in cases {
        let path = fixture(file);
        // -c is accepted after the subcommand as well as before it.
        let o = Command::new(BIN)
            .args(["check-config", "-c"])
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(78), "{file}");
        assert_eq!(
            stderr(&o).trim(),
            format!("{}:{msg}", path.display()),
            "{file}"
        );
        assert!(stdout(&o).is_empty());
    }
    let missing = fixture("does-not-exist.toml");
    let o = run(&missing, &["check-config"]);
    assert_eq!(o.status.code(), Some(78));
    assert!(stderr(&o).contains("cannot read"), "{}", stderr(&o));
}

#[test]
fn every_shipped_config_is_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let o = run(&path, &["check-config"]);
        assert!(o.status.success(), "{}: {}", path.display(), stderr(&o));
        assert!(stdout(&o).starts_with("ok\n"), "{}", stdout(&o));
        n += 1;
    }
    assert!(n >= 2);
}

#[test]
fn check_config_prints_warnings_after_ok() {
    let e = env_with("");
    let o = run(&e.config, &["check-config"]);
    assert!(o.status.success());
    let text = stdout(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "ok");
    assert!(lines.contains(
        &"warning: no [[plans]]: nothing can be sold until plans are added here or pushed by the cloud"
    ), "{text}");
}

#[test]
fn vouchers_generate_redeem_and_refuse_a_second_redemption() {
    let e = env_with(PLANS);
    let o = run(
        &e.config,
        &[
            "vouchers", "generate", "--plan", "1h", "--count", "3", "--format", "csv",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("code,plan,batch,expires"));
    let codes: Vec<String> = lines
        .map(|l| l.split(',').next().unwrap().to_string())
        .collect();
    assert_eq!(codes.len(), 3);
    let o = run(
        &e.config,
        &[
            "vouchers",
            "redeem",
            &codes[0],
            "--mac",
            "aa:bb:cc:dd:ee:01",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains(&format!("user: {}", codes[0])));
    let o = run(&e.config, &["vouchers", "redeem", &codes[0]]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("already redeemed"), "{}", stderr(&o));
    let list = json(&e.config, &["vouchers", "list"]);
    let states: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["state"].as_str().unwrap())
        .collect();
    assert_eq!(states.iter().filter(|s| **s == "redeemed").count(), 1);
    assert_eq!(states.iter().filter(|s| **s == "unused").count(), 2);
    let o = run(&e.config, &["vouchers", "revoke", &codes[1]]);
    assert!(o.status.success());
    let o = run(&e.config, &["vouchers", "redeem", &codes[1]]);
    assert!(stderr(&o).contains("revoked"));
}

#[test]
fn a_payment_recorded_twice_buys_one_grant() {
    let e = env_with(PLANS);
    let args = [
        "payments",
        "record",
        "--provider",
        "mpesa",
        "--reference",
        "QK12ABC345",
        "--phone",
        "254712345678",
        "--plan",
        "1h",
    ];
    let first = json(&e.config, &args);
    let second = json(&e.config, &args);
    assert_eq!(first["duplicate"], false);
    assert_eq!(second["duplicate"], true);
    assert_eq!(first["user"], second["user"]);
    let payments = json(&e.config, &["payments", "list"]);
    assert_eq!(payments.as_array().unwrap().len(), 1);
    let user = first["user"].as_str().unwrap();
    let shown = json(&e.config, &["users", "show", user]);
    assert_eq!(shown["grants"].as_array().unwrap().len(), 1);
    assert_eq!(shown["phone"], "254712345678");
    // People get words, not JSON.
    let o = run(&e.config, &args);
    assert!(stdout(&o).starts_with("duplicate: QK12ABC345 was already recorded; nothing changed"));
}

#[test]
fn json_output_parses_for_every_listing() {
    let e = env_with(PLANS);
    cash_sale(&e.config);
    for args in [
        &["status"][..],
        &["plans", "list"],
        &["vouchers", "list"],
        &["payments", "list"],
        &["users", "list"],
        &["sessions", "list", "--active"],
        &["outbox", "list"],
        &["outbox", "stats"],
        &["jobs", "list"],
    ] {
        let v = json(&e.config, args);
        assert!(v.is_array() || v.is_object(), "{args:?}");
    }
    let plans = json(&e.config, &["plans", "list"]);
    assert_eq!(plans.as_array().unwrap().len(), 2);
    let status = json(&e.config, &["status"]);
    assert_eq!(status["site"], "cli-test");
    assert_eq!(status["payments"], 1);
    assert_eq!(status["database"]["schema-version"], 5);
    let outbox = json(&e.config, &["outbox", "list"]);
    assert_eq!(outbox[0]["type"], "plan.upserted");
}

#[test]
fn users_suspend_resume_and_extend() {
    let e = env_with(PLANS);
    let r = cash_sale(&e.config);
    let user = r["user"].as_str().unwrap();
    json(&e.config, &["users", "suspend", user, "--reason", "abuse"]);
    assert_eq!(
        json(&e.config, &["users", "show", user])["state"],
        "suspended"
    );
    json(&e.config, &["users", "resume", user]);
    let r = json(&e.config, &["users", "extend", user, "--time", "30m"]);
    assert_eq!(r["time-left-ms"], 90 * 60 * 1000);
    let o = run(&e.config, &["users", "extend", "nobody", "--time", "30m"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("unknown user \"nobody\""));
    let jobs = json(&e.config, &["jobs", "list"]);
    assert!(jobs
        .as_array()
        .unwrap()
        .iter()
        .any(|j| j["kind"] == "disconnect-user"));
}

#[test]
fn usage_errors_exit_64() {
    let o = Command::new(BIN).arg("frobnicate").output().unwrap();
    assert_eq!(o.status.code(), Some(64));
}

#[test]
fn run_refuses_an_unusable_database_with_a_clear_message() {
    let e = env_with(PLANS);
    std::fs::create_dir_all(e.db.parent().unwrap()).unwrap();
    std::fs::write(&e.db, vec![0x42u8; 8192]).unwrap();
    let o = run(&e.config, &["run"]);
    assert_eq!(o.status.code(), Some(74));
    assert!(
        stderr(&o).contains("not a hotspot-edge database"),
        "{}",
        stderr(&o)
    );
}

/// The daemon expires a grant sold by the CLI in another process, and stops cleanly on SIGTERM
/// with the WAL checkpointed into the database file.
#[test]
fn run_expires_what_the_cli_sold_and_stops_on_sigterm() {
    let e = env_with(PLANS);
    let daemon = Command::new(BIN)
        .arg("-c")
        .arg(&e.config)
        .arg("run")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let r = json(
        &e.config,
        &[
            "payments",
            "record",
            "--provider",
            "cash",
            "--reference",
            "C1",
            "--plan",
            "blink",
            "--mac",
            "AA:BB:CC:DD:EE:01",
        ],
    );
    let user = r["user"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let shown = json(&e.config, &["users", "show", &user]);
        if shown["state"] == "expired" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the daemon did not expire {user}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let outbox = json(&e.config, &["outbox", "list"]);
    assert!(outbox
        .as_array()
        .unwrap()
        .iter()
        .any(|ev| ev["type"] == "user.expired"));
    let ok = Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let out = daemon.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("SIGTERM: stopping") && log.contains("hotspot-edge stopped"),
        "{log}"
    );
    let wal = PathBuf::from(format!("{}-wal", e.db.display()));
    let wal_len = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    assert_eq!(wal_len, 0, "WAL not checkpointed at shutdown");
}

#[test]
fn failed_jobs_can_be_retried() {
    let e = env_with(PLANS);
    let r = cash_sale(&e.config);
    let user = r["user"].as_str().unwrap();
    // What a router worker does after the last failed attempt.
    let conn = rusqlite::Connection::open(&e.db).unwrap();
    let n = conn
        .execute(
            "UPDATE jobs SET state = 'failed', attempts = 10, last_error = 'timeout' WHERE target = ?1",
            [user],
        )
        .unwrap();
    assert!(n >= 1);
    drop(conn);
    let failed = json(&e.config, &["jobs", "list", "--state", "failed"]);
    assert_eq!(failed.as_array().unwrap().len(), n);
    assert_eq!(failed[0]["last-error"], "timeout");
    let r = json(&e.config, &["jobs", "retry"]);
    assert_eq!(r["requeued"], n);
    assert!(json(&e.config, &["jobs", "list", "--state", "failed"])
        .as_array()
        .unwrap()
        .is_empty());
    let pending = json(&e.config, &["jobs", "list", "--state", "pending"]);
    assert!(pending
        .as_array()
        .unwrap()
        .iter()
        .all(|j| j["attempts"] == "0/10"));
    let o = run(&e.config, &["jobs", "retry", "999"]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn sign_command_prints_a_message_the_daemon_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key");
    std::fs::write(&key, "a-site-command-key-42\n").unwrap();
    let o = Command::new(BIN)
        .args(["sign-command", "--site", "s1", "--key-file"])
        .arg(&key)
        .args(["--id", "c-77", "user.suspend", r#"{"user": "k7m2qp"}"#])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let msg = String::from_utf8(o.stdout).unwrap();
    let now = hotspot_edge::clock::Now {
        wall_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64,
        timeline_ms: 0,
        trusted: true,
    };
    let checks = |key: &'static [u8]| hotspot_edge::uplink::mqtt::remote::Checks {
        key,
        site: "s1",
        max_bytes: 65536,
        max_age_ms: 60_000,
    };
    let r = hotspot_edge::uplink::mqtt::remote::check(
        msg.trim().as_bytes(),
        &checks(b"a-site-command-key-42"),
        &now,
    )
    .unwrap();
    assert_eq!(r.id, "c-77");
    let bad = hotspot_edge::uplink::mqtt::remote::check(
        msg.trim().as_bytes(),
        &checks(b"another-key-000000"),
        &now,
    )
    .unwrap_err();
    assert_eq!(bad.code, "bad-signature");
    // Bad ARGS: a usage error, nothing printed.
    let o = Command::new(BIN)
        .args(["sign-command", "--site", "s1", "--key-file"])
        .arg(&key)
        .args(["user.suspend", "not json"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(64));
    assert!(o.stdout.is_empty());
    assert!(String::from_utf8_lossy(&o.stderr).contains("ARGS is not JSON"));
}

/// `check-config` with a FIFO or a device where a file belongs (as `-c`, a secret file or a CA
/// file) says so at once; it used to wait for a writer forever on a FIFO and abort reading
/// `/dev/zero`. A file far larger than such a file can be is refused the same way.
#[test]
fn check_config_refuses_fifos_devices_and_huge_files_at_once() {
    let e = env_with(PLANS);
    let dir = e.config.parent().unwrap().to_path_buf();
    let fifo = dir.join("fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    // Every run is bounded: a hang fails the test instead of stalling the suite.
    let check = |config: &Path| -> Output {
        let mut child = Command::new(BIN)
            .arg("-c")
            .arg(config)
            .arg("check-config")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let end = Instant::now() + Duration::from_secs(20);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > end {
                let _ = child.kill();
                panic!("check-config -c {} hung", config.display());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child.wait_with_output().unwrap()
    };
    let o = check(&fifo);
    assert_eq!(o.status.code(), Some(78), "{}", stderr(&o));
    assert!(stderr(&o).contains("not a regular file"), "{}", stderr(&o));
    let base = std::fs::read_to_string(&e.config).unwrap();
    let with = |name: &str, section: &str| {
        let path = dir.join(name);
        std::fs::write(&path, format!("{base}\n{section}\n")).unwrap();
        path
    };
    let key_fifo = with(
        "mqtt-fifo.toml",
        &format!(
            "[mqtt]\nurl = \"mqtt://127.0.0.1:1883\"\ncommand-key-file = \"{}\"",
            fifo.display()
        ),
    );
    let o = check(&key_fifo);
    assert_eq!(o.status.code(), Some(78), "{}", stderr(&o));
    let msg = stderr(&o);
    assert!(
        msg.contains("not a regular file") && msg.contains("[mqtt]"),
        "{msg}"
    );
    let ca_zero = with(
        "mqtt-zero.toml",
        "[mqtt]\nurl = \"mqtts://127.0.0.1:8883\"\nca-file = \"/dev/zero\"",
    );
    let o = check(&ca_zero);
    assert_eq!(o.status.code(), Some(78), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("/dev/zero is not a regular file"),
        "{}",
        stderr(&o)
    );
    let big = dir.join("big.pem");
    std::fs::write(&big, vec![b'A'; 5 * 1024 * 1024]).unwrap();
    let ca_big = with(
        "mqtt-big.toml",
        &format!(
            "[mqtt]\nurl = \"mqtts://127.0.0.1:8883\"\nca-file = \"{}\"",
            big.display()
        ),
    );
    let o = check(&ca_big);
    assert_eq!(o.status.code(), Some(78), "{}", stderr(&o));
    assert!(stderr(&o).contains("5242880 bytes"), "{}", stderr(&o));
}

/// A second daemon on the same database is refused with a message that says why (before, the
/// two both enforced and knocked each other off the broker); the CLI still works beside the
/// daemon, and once the first is gone a daemon starts again.
#[test]
fn a_second_daemon_on_the_same_database_is_refused() {
    let e = env_with(PLANS);
    let daemon = |config: &Path| {
        Command::new(BIN)
            .arg("-c")
            .arg(config)
            .arg("run")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut first = daemon(&e.config);
    let lock = e.db.with_file_name("h.db.daemon.lock");
    let end = Instant::now() + Duration::from_secs(20);
    while !e.db.exists() || !lock.exists() {
        assert!(Instant::now() < end, "the first daemon did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut second = daemon(&e.config);
    let end = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = second.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > end {
            let _ = second.kill();
            let _ = first.kill();
            panic!("the second daemon kept running");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = second.wait_with_output().unwrap();
    let msg = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(status.code(), Some(74), "{msg}");
    assert!(
        msg.contains("another hotspot-edge daemon is running"),
        "{msg}"
    );
    // The CLI is not a daemon: it reads beside the first one.
    let o = run(&e.config, &["plans", "list"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        first.try_wait().unwrap().is_none(),
        "the first daemon stopped"
    );
    let _ = first.kill();
    let _ = first.wait();
    // SIGKILL released the lock with the process.
    let mut third = daemon(&e.config);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(third.try_wait().unwrap().is_none(), "a daemon starts again");
    let _ = third.kill();
    let _ = third.wait();
}

/// Set the high-water mark a year ahead, as a clock once stepped forward by mistake (and then
/// corrected) leaves it.
fn set_high_water_a_year_ahead(db: &Path) {
    let c = rusqlite::Connection::open(db).unwrap();
    let text: String = c
        .query_row("SELECT value FROM meta WHERE key = 'clock'", [], |r| {
            r.get(0)
        })
        .unwrap();
    let mut v: Value = serde_json::from_str(&text).unwrap();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    v["hwm-wall-ms"] = serde_json::json!(now_ms + 365 * 86_400_000);
    c.execute(
        "UPDATE meta SET value = ?1 WHERE key = 'clock'",
        [v.to_string()],
    )
    .unwrap();
}

/// A wrong high-water mark (a year ahead) leaves the site untrusted; `status` says why and what
/// to do, `clock reset-high-water` brings the mark down to the wall clock (with an event for
/// the cloud), and the site is trusted again. Before, nothing could reset it.
#[test]
fn a_wrong_clock_high_water_mark_can_be_reset() {
    let env = env_with(PLANS);
    cash_sale(&env.config);
    set_high_water_a_year_ahead(&env.db);
    let st = json(&env.config, &["status"]);
    assert_eq!(st["clock"]["trusted"], false, "{st}");
    let text = stdout(&run(&env.config, &["status"]));
    assert!(
        text.contains("behind the high-water mark") && text.contains("clock reset-high-water"),
        "{text}"
    );
    let r = json(&env.config, &["clock", "reset-high-water"]);
    assert_eq!(r["was-trusted"], false, "{r}");
    assert_eq!(
        r["to"],
        json(&env.config, &["status"])["clock"]["high-water"]
    );
    let st = json(&env.config, &["status"]);
    assert_eq!(st["clock"]["trusted"], true, "{st}");
    let events = rusqlite::Connection::open(&env.db)
        .unwrap()
        .query_row(
            "SELECT count(*) FROM outbox WHERE type = 'clock.high-water-reset'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .unwrap();
    assert_eq!(events, 1);
    // Repeating it is harmless: the clock was trusted already.
    let again = json(&env.config, &["clock", "reset-high-water"]);
    assert_eq!(again["was-trusted"], true, "{again}");
}

/// A command that writes checks the database first and refuses a damaged one (exit 74, nothing
/// written), as the daemon does at start. Before, the CLI wrote into a database the daemon then
/// refused to open. Reads still work as far as the damage allows.
#[test]
fn a_writing_command_refuses_a_damaged_database() {
    let env = env_with(PLANS);
    cash_sale(&env.config);
    let (root, page_size): (i64, i64) = {
        let c = rusqlite::Connection::open(&env.db).unwrap();
        let root = c
            .query_row(
                "SELECT rootpage FROM sqlite_master WHERE name = 'sessions_mac'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let size = c.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap();
        (root, size)
    };
    // An index page with a b-tree page type that does not exist: page-level damage.
    let mut bytes = std::fs::read(&env.db).unwrap();
    let at = ((root - 1) * page_size) as usize;
    bytes[at] = 0x07;
    std::fs::write(&env.db, &bytes).unwrap();
    let o = run(
        &env.config,
        &[
            "payments",
            "record",
            "--provider",
            "cash",
            "--reference",
            "C2",
            "--plan",
            "1h",
        ],
    );
    assert_eq!(o.status.code(), Some(74), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("the database is damaged"),
        "{}",
        stderr(&o)
    );
    // Nothing written: the damaged page and the rest of the file are as they were.
    assert_eq!(std::fs::read(&env.db).unwrap(), bytes);
    let st = json(&env.config, &["status"]);
    assert_eq!(st["payments"], 1, "{st}");
}

/// On a full disk (a 2 MiB tmpfs, filled, in a mount namespace of the test's own) the commands
/// that only read still answer, from the database file as it is, with a warning; a command that
/// writes fails with exit 74 and changes nothing. Before, every command failed with "disk I/O
/// error" (the write-ahead log could not be created). Needs `unshare` (util-linux) and either
/// root or unprivileged user namespaces; CI runs it as root.
#[test]
fn reads_still_answer_on_a_full_disk() {
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full");
    std::fs::create_dir(&full).unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[site]\nid = \"full\"\n[store]\npath = \"{}\"\n{PLANS}",
            full.join("h.db").display()
        ),
    )
    .unwrap();
    let script = format!(
        r#"set -e
mount -t tmpfs -o size=2m tmpfs "{full}"
"{bin}" -c "{cfg}" payments record --provider cash --reference C1 --plan 1h >/dev/null
dd if=/dev/zero of="{full}/fill" bs=4k 2>/dev/null || true
set +e
"{bin}" -c "{cfg}" --json status >"{out}/status.json" 2>"{out}/status.err"; echo $? >"{out}/status.rc"
"{bin}" -c "{cfg}" payments record --provider cash --reference C2 --plan 1h >/dev/null 2>"{out}/write.err"; echo $? >"{out}/write.rc"
"{bin}" -c "{cfg}" --json status >"{out}/after.json" 2>/dev/null
"#,
        full = full.display(),
        bin = BIN,
        cfg = config.display(),
        out = dir.path().display()
    );
    let o = Command::new("unshare")
        .args(["-rm", "sh", "-c", &script])
        .output()
        .expect("unshare (util-linux)");
    if !o.status.success() && std::env::var_os("CI").is_none() && !is_root() {
        eprintln!(
            "skipped: no mount namespace here ({}); CI runs it as root",
            String::from_utf8_lossy(&o.stderr).trim()
        );
        return;
    }
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
    assert_eq!(read("status.rc").trim(), "0", "{}", read("status.err"));
    assert!(
        read("status.err").contains("read without the write-ahead log"),
        "{}",
        read("status.err")
    );
    let st: Value = serde_json::from_str(&read("status.json")).unwrap();
    assert_eq!(st["payments"], 1, "{st}");
    assert_eq!(read("write.rc").trim(), "74", "{}", read("write.err"));
    let after: Value = serde_json::from_str(&read("after.json")).unwrap();
    assert_eq!(after["payments"], 1, "nothing was written: {after}");
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}
