//! Conformance with RouterOS as it really answers. `tests/fixtures/routeros/replies.txt` holds
//! reply sentences of real routers quoted from public sources (each with its source); the daemon's
//! parsers and comparisons are tested on them, and the simulator's replies are checked against
//! the same shapes (same fields, values in the same forms), so that the simulator cannot drift
//! from reality again unnoticed. docs/routeros-simulator.md has the table of sources.
#![cfg(feature = "demo")]

use std::collections::{BTreeMap, BTreeSet};

use hotspot_edge::routeros::backend::{active_session, health, DesiredUser, RouterOsNas};
use hotspot_edge::routeros::client::{Call, Row};
use hotspot_edge::routeros::format::parse_duration;
use hotspot_edge::routeros::meaning::{self, kind_of, Kind, Verdict};
use hotspot_edge::routeros::sim::model::PrintForms;
use hotspot_edge::routeros::sim::Simulator;

mod common;

/// One quoted reply sentence.
#[derive(Debug, Clone)]
struct Reply {
    menu: String,
    source: String,
    recorded: bool,
    forms: PrintForms,
    row: Row,
}

fn replies() -> Vec<Reply> {
    let text = include_str!("fixtures/routeros/replies.txt");
    let mut out = Vec::new();
    let mut cur: Option<Reply> = None;
    for (n, line) in text.lines().enumerate() {
        let at = || format!("replies.txt:{}", n + 1);
        if line.starts_with('#') {
            continue;
        }
        if let Some(menu) = line.strip_prefix("@ ") {
            out.extend(cur.take());
            cur = Some(Reply {
                menu: menu.trim().into(),
                source: String::new(),
                recorded: false,
                forms: PrintForms::V7,
                row: Row::new(),
            });
            continue;
        }
        let Some(r) = cur.as_mut() else {
            assert!(line.is_empty(), "{}: text before the first @", at());
            continue;
        };
        if let Some(s) = line.strip_prefix("source: ") {
            r.source = s.into();
        } else if let Some(k) = line.strip_prefix("kind: ") {
            r.recorded = match k {
                "recorded" => true,
                "documented" => false,
                _ => panic!("{}: kind {k:?}", at()),
            };
        } else if let Some(f) = line.strip_prefix("forms: ") {
            r.forms = PrintForms::parse(f).unwrap_or_else(|| panic!("{}: forms {f:?}", at()));
        } else if let Some(word) = line.strip_prefix('=') {
            let (k, v) = word
                .split_once('=')
                .unwrap_or_else(|| panic!("{}: {line:?}", at()));
            r.row.insert(k.into(), v.into());
        } else {
            assert!(line == "!re" || line.is_empty(), "{}: {line:?}", at());
        }
    }
    out.extend(cur);
    for r in &out {
        assert!(!r.source.is_empty() && !r.row.is_empty(), "{r:?}");
    }
    out
}

fn of<'a>(all: &'a [Reply], menu: &str, forms: PrintForms) -> Vec<&'a Reply> {
    all.iter()
        .filter(|r| r.menu == menu && r.forms == forms)
        .collect()
}

/// Read-only fields that hold a duration or a counter (the others' types come from
/// `meaning::kind_of`).
const DURATIONS: &[&str] = &[
    "uptime",
    "session-time-left",
    "idle-time",
    "keepalive-timeout",
    "expires-in",
];
const COUNTERS: &[&str] = &[
    "bytes-in",
    "bytes-out",
    "packets-in",
    "packets-out",
    "cpu-load",
    "cpu-count",
    "free-memory",
    "total-memory",
    "free-hdd-space",
    "total-hdd-space",
    "port",
];

#[test]
fn every_quoted_value_reads_as_its_field_type() {
    let all = replies();
    assert!(all.len() >= 12, "{}", all.len());
    for r in &all {
        for (k, v) in &r.row {
            let ctx = format!("{} {k}={v:?} ({})", r.menu, r.source);
            if DURATIONS.contains(&k.as_str()) {
                assert!(parse_duration(v).is_ok(), "{ctx}");
            } else if COUNTERS.contains(&k.as_str()) {
                assert!(v.parse::<u64>().is_ok(), "{ctx}");
            } else {
                // The value read back against itself: it must parse as its type.
                let verdict = meaning::compare(&r.menu, k, v, Some(v));
                assert_eq!(verdict, Ok(Verdict::Same), "{ctx}");
            }
        }
    }
}

#[test]
fn what_the_daemon_writes_matches_recorded_replies_by_meaning() {
    let all = replies();
    let user = &of(&all, "/ip/hotspot/user", PrintForms::V7)[0].row;
    let printed = |k: &str| user.get(k).map(String::as_str);
    for (field, written) in [
        ("disabled", "no"),
        ("limit-uptime", "60s"),
        ("limit-bytes-total", "500"),
        ("mac-address", "11:00:00:00:00:00"),
        ("password", "123"),
        ("profile", "default"),
    ] {
        assert!(
            meaning::same("/ip/hotspot/user", field, written, printed(field)).unwrap(),
            "{field}"
        );
    }
    // Fields left out of the reply are at their defaults: no comment, no limit.
    assert!(meaning::same("/ip/hotspot/user", "comment", "", printed("comment")).unwrap());
    assert!(!meaning::same("/ip/hotspot/user", "disabled", "yes", printed("disabled")).unwrap());
    let profile = &of(&all, "/ip/hotspot/user/profile", PrintForms::V7)[0].row;
    let p = "/ip/hotspot/user/profile";
    assert!(meaning::same(
        p,
        "idle-timeout",
        "0s",
        profile.get("idle-timeout").map(String::as_str)
    )
    .unwrap());
    assert!(meaning::same(
        p,
        "add-mac-cookie",
        "yes",
        profile.get("add-mac-cookie").map(String::as_str)
    )
    .unwrap());
    assert!(meaning::same(
        p,
        "mac-cookie-timeout",
        "72h",
        profile.get("mac-cookie-timeout").map(String::as_str)
    )
    .unwrap());
    assert!(meaning::same(
        p,
        "shared-users",
        "1",
        profile.get("shared-users").map(String::as_str)
    )
    .unwrap());
    // The older documented form: `disabled=no`, read as false too.
    let legacy = &of(&all, "/user", PrintForms::V6)[0].row;
    assert_eq!(
        meaning::printed_bool(legacy.get("disabled").map(String::as_str)),
        Ok(false)
    );
}

#[test]
fn the_daemon_parses_active_rows_and_router_health_from_quoted_replies() {
    let all = replies();
    let active = active_session(&of(&all, "/ip/hotspot/active", PrintForms::V7)[0].row).unwrap();
    assert_eq!(active.id, "*5");
    assert_eq!(active.user, "alice");
    assert_eq!(active.server, "hotspot1");
    assert_eq!(active.mac.as_deref(), Some("AA:BB:CC:DD:EE:01"));
    assert_eq!((active.bytes_in, active.bytes_out), (123_456, 7_654_321));
    let identity = &of(&all, "/system/identity", PrintForms::V7)[0].row;
    let resource = &of(&all, "/system/resource", PrintForms::V7)[0].row;
    let h = health(Some(identity), Some(resource));
    assert_eq!(h.identity, "MikroTik");
    assert_eq!(h.version, "7.1beta4 (development)");
    assert_eq!(h.board, "CCR1016-12S-1S+");
    assert_eq!(h.cpu_load, Some(1));
    assert_eq!(h.free_memory, Some(1_503_133_696));
    assert_eq!(h.total_memory, Some(2_046_820_352));
    assert_eq!(
        parse_duration(h.uptime.as_deref().unwrap()).unwrap(),
        Some(((2 * 24 + 20) * 3600 + 12 * 60 + 20) * 1000)
    );
    let old = &of(&all, "/system/resource", PrintForms::V6)[0].row;
    assert_eq!(
        parse_duration(old.get("uptime").unwrap()).unwrap(),
        Some((3600 + 22 * 60 + 53) * 1000)
    );
    let cookie = &of(&all, "/ip/hotspot/cookie", PrintForms::V7)[0].row;
    assert!(meaning::same(
        "/ip/hotspot/cookie",
        "mac-address",
        "aa:bb:cc:dd:ee:01",
        cookie.get("mac-address").map(String::as_str)
    )
    .unwrap());
}

/// The form a printed value takes, to compare the simulator's replies with real ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    Id,
    TrueFalse,
    YesNo,
    /// `1d2h3m4s`
    DurationUnits,
    /// `01:22:53`, `1d00:00:00`
    DurationClock,
    Integer,
    MacUpper,
    /// Anything else: compared by the field's type, not by form.
    Other,
}

fn form(k: &str, v: &str) -> Form {
    let is_duration_field =
        DURATIONS.contains(&k) || kind_of("/ip/hotspot/user", k) == Kind::LimitDuration;
    if k == ".id" && v.starts_with('*') {
        Form::Id
    } else if v == "true" || v == "false" {
        Form::TrueFalse
    } else if v == "yes" || v == "no" {
        Form::YesNo
    } else if is_duration_field && v.contains(':') {
        Form::DurationClock
    } else if is_duration_field && parse_duration(v).is_ok() && v != "none" {
        Form::DurationUnits
    } else if v.parse::<u64>().is_ok() {
        Form::Integer
    } else if meaning::parse_mac(v).is_some() && !v.chars().any(|c| c.is_ascii_lowercase()) {
        Form::MacUpper
    } else {
        Form::Other
    }
}

/// Fields the simulator prints that the quoted replies of a menu do not show, each documented
/// by MikroTik (wiki Manual:IP/Hotspot/User and help.mikrotik.com HotSpot): a user's `comment`
/// and `server`, a profile's `comment`, an active row's `comment`.
const DOCUMENTED_EXTRA: &[(&str, &str)] = &[
    ("/ip/hotspot/user", "comment"),
    ("/ip/hotspot/user", "server"),
    ("/ip/hotspot/user/profile", "comment"),
];

/// The simulator's rows of `menu` after a user, a profile and a logged-in device were made.
async fn simulated(forms: PrintForms) -> (Simulator, BTreeMap<&'static str, Vec<Row>>) {
    let (sim, api) = common::sim::sim_and_api(forms, false).await;
    let b = RouterOsNas::new(api.clone());
    common::sim::hour_profile(&b, Some("2M/5M")).await;
    b.upsert_user(&DesiredUser {
        name: "alice".into(),
        password: "pw1".into(),
        profile: "1h".into(),
        disabled: false,
        limit_uptime_ms: Some(3_660_000),
        limit_bytes_total: Some(5_000_000),
        mac: Some("aa:bb:cc:dd:ee:01".into()),
    })
    .await
    .unwrap();
    b.login("alice", "pw1", "AA:BB:CC:DD:EE:01", Some("10.5.50.9"))
        .await
        .unwrap();
    sim.model().traffic("AA:BB:CC:DD:EE:01", 1000, 5000);
    sim.model().advance(3_000);
    let mut rows = BTreeMap::new();
    for menu in [
        "/ip/hotspot/user",
        "/ip/hotspot/user/profile",
        "/ip/hotspot/active",
        "/ip/hotspot/host",
        "/ip/hotspot/cookie",
        "/system/resource",
        "/system/identity",
        "/ip/service",
    ] {
        let got = api.run(&Call::new(&format!("{menu}/print"))).await.unwrap();
        assert!(!got.is_empty(), "{menu}: no rows");
        rows.insert(menu, got);
    }
    (sim, rows)
}

#[tokio::test]
async fn the_simulator_prints_the_fields_and_forms_of_real_replies() {
    let all = replies();
    let (_sim, rows) = simulated(PrintForms::V7).await;
    for (menu, sim_rows) in &rows {
        let real = of(&all, menu, PrintForms::V7);
        assert!(!real.is_empty(), "no quoted reply for {menu}");
        let real_fields: BTreeSet<&str> = real
            .iter()
            .flat_map(|r| r.row.keys().map(String::as_str))
            .collect();
        for row in sim_rows {
            for (k, v) in row {
                let documented = DOCUMENTED_EXTRA.contains(&(menu, k.as_str()));
                assert!(
                    real_fields.contains(k.as_str()) || documented,
                    "{menu}: the simulator prints {k}={v:?}, which no quoted reply has"
                );
                let Some(real_v) = real.iter().find_map(|r| r.row.get(k)) else {
                    continue;
                };
                let (f_sim, f_real) = (form(k, v), form(k, real_v));
                if f_real != Form::Other && f_sim != Form::Other {
                    assert_eq!(
                        f_sim, f_real,
                        "{menu} {k}: the simulator prints {v:?}, a real router {real_v:?} ({})",
                        real[0].source
                    );
                }
            }
            // Fields every recorded reply of the menu carries are printed by the simulator too.
            for r in real.iter().filter(|r| r.recorded) {
                for k in r.row.keys() {
                    let always = [
                        ".id",
                        "name",
                        "disabled",
                        "dynamic",
                        "uptime",
                        "bytes-in",
                        "bytes-out",
                        "packets-in",
                        "packets-out",
                        "version",
                        "board-name",
                        "cpu-load",
                        "free-memory",
                        "total-memory",
                        "port",
                        "invalid",
                        "add-mac-cookie",
                        "shared-users",
                        "mac-cookie-timeout",
                        "idle-timeout",
                        "keepalive-timeout",
                    ];
                    if always.contains(&k.as_str()) {
                        assert!(
                            row.contains_key(k),
                            "{menu}: a real router prints {k}; the simulator does not ({})",
                            r.source
                        );
                    }
                }
            }
        }
    }
}

#[tokio::test]
async fn the_simulator_in_older_forms_prints_as_the_documented_examples() {
    let all = replies();
    let (_sim, rows) = simulated(PrintForms::V6).await;
    let user = &rows["/ip/hotspot/user"][0];
    let legacy_user = &of(&all, "/user", PrintForms::V6)[0].row;
    assert_eq!(
        form("disabled", &user["disabled"]),
        form("disabled", &legacy_user["disabled"])
    );
    let legacy_resource = &of(&all, "/system/resource", PrintForms::V6)[0].row;
    let resource = &rows["/system/resource"][0];
    assert_eq!(
        form("uptime", &resource["uptime"]),
        form("uptime", &legacy_resource["uptime"])
    );
    assert_eq!(form("uptime", &user["uptime"]), Form::DurationClock);
    // Defaults are printed in the older forms, left out in RouterOS 7.
    let (_sim7, rows7) = simulated(PrintForms::V7).await;
    let u7 = &rows7["/ip/hotspot/user"][0];
    assert_eq!(u7.get("limit-uptime").map(String::as_str), Some("1h1m"));
    assert_eq!(
        user.get("limit-uptime").map(String::as_str),
        Some("01:01:00")
    );
}
