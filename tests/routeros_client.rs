//! The real client (mikrotik-rs) against the simulator over real TCP, with the reply tag in both
//! positions real routers may use.
#![cfg(feature = "demo")]

use std::time::Duration;

use hotspot_edge::routeros::backend::{DesiredUser, RouterOsNas};
use hotspot_edge::routeros::client::{ApiClient, RouterError};
use hotspot_edge::routeros::sim::model::PrintForms;
use hotspot_edge::routeros::sim::{Model, Simulator};

mod common;

async fn sim_and_backend(tag_first: bool) -> (Simulator, RouterOsNas) {
    let (sim, api) = common::sim::sim_and_api(PrintForms::V7, tag_first).await;
    (sim, RouterOsNas::new(api))
}

fn alice(disabled: bool) -> DesiredUser {
    DesiredUser {
        name: "alice".into(),
        password: "pw1".into(),
        profile: "1h".into(),
        disabled,
        limit_uptime_ms: Some(61 * 60_000),
        limit_bytes_total: None,
        mac: None,
    }
}

async fn lifecycle(tag_first: bool) {
    let (sim, b) = sim_and_backend(tag_first).await;
    common::sim::hour_profile(&b, Some("2M/5M")).await;
    b.upsert_user(&alice(false)).await.unwrap();
    b.upsert_user(&alice(false)).await.unwrap(); // idempotent
    assert_eq!(sim.model().users.rows.len(), 1);
    b.login("alice", "pw1", "AA:BB:CC:DD:EE:01", Some("10.5.50.9"))
        .await
        .unwrap();
    let active = b.active(Some("hotspot1")).await.unwrap();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].user, "alice");
    sim.model().traffic("AA:BB:CC:DD:EE:01", 1000, 5000);
    let active = b.active(None).await.unwrap();
    assert_eq!((active[0].bytes_in, active[0].bytes_out), (1000, 5000));
    b.upsert_user(&alice(true)).await.unwrap();
    assert_eq!(b.remove_cookies("alice").await.unwrap(), 1);
    assert_eq!(b.disconnect("alice").await.unwrap(), 1);
    assert!(b.active(None).await.unwrap().is_empty());
    assert_eq!(
        sim.model().device_returns("AA:BB:CC:DD:EE:01", "10.5.50.9"),
        None
    );
    let h = b.health().await.unwrap();
    assert_eq!(h.identity, "sim-router");
    assert!(h.version.starts_with("7."));
}

#[tokio::test]
async fn operations_with_the_tag_last_as_real_routers_send_it() {
    lifecycle(false).await;
}

#[tokio::test]
async fn operations_with_the_tag_first() {
    lifecycle(true).await;
}

#[tokio::test]
async fn a_wrong_password_is_a_login_error() {
    let sim = Simulator::start("127.0.0.1:0", Model::default())
        .await
        .unwrap();
    let e = ApiClient::connect_plain(
        &sim.addr.to_string(),
        "admin",
        "nope",
        Duration::from_secs(2),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, RouterError::Login { .. }), "{e:?}");
}

#[tokio::test]
async fn slow_replies_are_waited_for_up_to_the_command_timeout() {
    let (sim, b) = sim_and_backend(false).await;
    sim.set_delay(Duration::from_millis(300));
    assert_eq!(
        b.health().await.unwrap().identity,
        "sim-router",
        "slow but within 2 s"
    );
    sim.set_delay(Duration::from_secs(3));
    let e = b.health().await.unwrap_err();
    assert!(matches!(e, RouterError::Timeout { .. }), "{e:?}");
}

/// The command timeout is on silence: a long print that a slow router streams for longer than
/// the timeout completes, and so does a command answered after it; a router that stops
/// answering mid-print times out.
#[tokio::test]
async fn a_print_that_streams_past_the_timeout_completes_and_silence_times_out() {
    use hotspot_edge::routeros::client::Call;
    let (sim, api) = common::sim::sim_and_api(PrintForms::V7, true).await;
    many_users(&api, 40).await;
    let api = ApiClient::with_timeout(api, Duration::from_millis(300));
    let print = Call::new("/ip/hotspot/user/print").props(&["name"]);
    sim.set_row_gap(Duration::from_millis(50));
    let started = std::time::Instant::now();
    // The identity is asked just after the print: the router answers it after the print's
    // last row, more than the timeout later, and it is still waited for.
    let (names, identity) =
        tokio::join!(api.run_map(&print, |mut row| row.remove("name")), async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            api.run(&Call::new("/system/identity/print")).await
        });
    assert_eq!(names.unwrap().len(), 40);
    assert_eq!(identity.unwrap()[0]["name"], "sim-router");
    assert!(
        started.elapsed() >= Duration::from_millis(1_500),
        "the rows came 50 ms apart, 40 of them: longer than the 300 ms timeout"
    );
    sim.set_row_gap(Duration::from_millis(500));
    let e = api.run(&print).await.unwrap_err();
    assert!(matches!(e, RouterError::Timeout { .. }), "{e:?}");
}

#[tokio::test]
async fn a_stalled_router_times_out_and_a_dropped_one_is_unreachable() {
    let (sim, b) = sim_and_backend(false).await;
    sim.stall_for(Duration::from_secs(5));
    let e = b.health().await.unwrap_err();
    assert!(matches!(e, RouterError::Timeout { .. }), "{e:?}");
    let (sim, b) = sim_and_backend(false).await;
    sim.drop_connections();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let e = b.health().await.unwrap_err();
    assert!(e.is_link(), "{e:?}");
}

#[tokio::test]
async fn remove_user_removes_ours_and_leaves_a_technicians_own() {
    let (sim, b) = sim_and_backend(false).await;
    common::sim::hour_profile(&b, None).await;
    b.upsert_user(&alice(false)).await.unwrap();
    assert!(b.remove_user("alice").await.unwrap());
    assert!(sim.model().users.by("name", "alice").is_none());
    assert!(!b.remove_user("alice").await.unwrap(), "already gone");
    {
        let mut m = sim.model();
        let req = hotspot_edge::routeros::sim::model::Request::parse(&[
            "/ip/hotspot/user/add".to_string(),
            "=name=staff".into(),
            "=password=x".into(),
        ]);
        m.handle(&req);
    }
    let e = b.remove_user("staff").await.unwrap_err();
    assert!(e.to_string().contains("not managed"), "{e}");
    assert!(sim.model().users.by("name", "staff").is_some());
}

/// A RouterOS `print` does not echo what was written (booleans, defaults, MAC case, rate-limit
/// units): compared as strings, a freshly written user never looks "as written" (the customer
/// was never logged in, nor cut off). Compared by meaning, it does, in both print forms, and a
/// second sync of the same user writes nothing.
#[tokio::test]
async fn printed_values_differ_from_written_ones_and_are_compared_by_meaning() {
    use hotspot_edge::routeros::client::Call;
    use hotspot_edge::routeros::meaning;
    for forms in [PrintForms::V7, PrintForms::V6] {
        let (sim, api) = common::sim::sim_and_api(forms, false).await;
        let b = RouterOsNas::new(api.clone());
        common::sim::hour_profile(&b, Some("2000k/5M")).await;
        let user = DesiredUser {
            mac: Some("aa:bb:cc:dd:ee:0f".into()),
            limit_uptime_ms: Some(86_400_000),
            ..alice(false)
        };
        b.upsert_user(&user).await.unwrap();
        // What the daemon writes, and what the router printed back.
        let written = [
            ("/ip/hotspot/user", "disabled", "no"),
            ("/ip/hotspot/user", "limit-uptime", "1d"),
            ("/ip/hotspot/user", "limit-bytes-total", "0"),
            ("/ip/hotspot/user", "mac-address", "aa:bb:cc:dd:ee:0f"),
            ("/ip/hotspot/user/profile", "rate-limit", "2000k/5M"),
        ];
        let mut as_strings_differ = Vec::new();
        for (menu, field, value) in written {
            let rows = api
                .run(&Call::new(&format!("{menu}/print")).query(
                    "name",
                    if menu.ends_with("profile") {
                        "1h"
                    } else {
                        "alice"
                    },
                ))
                .await
                .unwrap();
            let printed = rows[0].get(field).map(String::as_str);
            if printed != Some(value) {
                as_strings_differ.push(format!("{field}: wrote {value:?}, printed {printed:?}"));
            }
            assert!(
                meaning::same(menu, field, value, printed).unwrap(),
                "{forms:?} {field}: {value:?} vs {printed:?}"
            );
        }
        assert!(
            as_strings_differ.len() >= 3,
            "{forms:?}: the old string comparison would have passed: {as_strings_differ:?}"
        );
        let before = sim.commands();
        b.upsert_user(&user).await.unwrap();
        // One print: the limits are unchanged (counters kept) and nothing differs.
        assert_eq!(sim.commands() - before, 1, "{forms:?}");
    }
}

/// An API user without the `sensitive` policy (the least-privilege group `routeros-script`
/// makes) is not shown passwords: a user is still confirmed, and its password is written on every
/// sync since it cannot be read back.
#[tokio::test]
async fn users_are_confirmed_when_the_router_hides_passwords() {
    let (sim, api) = common::sim::sim_and_api(PrintForms::V7, false).await;
    sim.model().hide_secrets = true;
    let b = RouterOsNas::new(api);
    common::sim::hour_profile(&b, None).await;
    b.upsert_user(&alice(false)).await.unwrap();
    // What the router holds, which it does not print to this API user.
    let stored = || {
        sim.model()
            .users
            .by("name", "alice")
            .and_then(|u| u.get("password").map(String::from))
    };
    assert_eq!(stored().as_deref(), Some("pw1"));
    let before = sim.commands();
    b.upsert_user(&DesiredUser {
        password: "pw2".into(),
        ..alice(false)
    })
    .await
    .unwrap();
    // print, set (the password, unseen), print.
    assert_eq!(sim.commands() - before, 3);
    assert_eq!(stored().as_deref(), Some("pw2"));
}

/// Adds `n` hotspot users named u00000.. through the API (the simulator must send the tag
/// first: with the tag last, mikrotik-rs reports a successful `add` as a trap).
async fn many_users(api: &ApiClient, n: usize) {
    use hotspot_edge::routeros::client::Call;
    for i in 0..n {
        api.run(
            &Call::new("/ip/hotspot/user/add")
                .attr("name", format!("u{i:05}"))
                .attr("password", "pw"),
        )
        .await
        .unwrap();
    }
}

/// Replies are flow-controlled per command (a reader holds at most a few rows it has not
/// read): a reader that falls behind and then gives up must not wedge the connection; the
/// command is cancelled and the next one is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_gives_up_mid_print_leaves_the_connection_usable() {
    use hotspot_edge::routeros::client::Call;
    let (_sim, api) = common::sim::sim_and_api(PrintForms::V7, true).await;
    many_users(&api, 2_000).await;
    let print = Call::new("/ip/hotspot/user/print").props(&["name"]);
    // A reader slower than the router (2,000 rows take at least 2 s) gives up once it has read
    // 50 rows: by rows read, not by a time, which under qemu passed before the first row came.
    let read = std::sync::atomic::AtomicUsize::new(0);
    let reading = api.run_map(&print, |row| {
        std::thread::sleep(Duration::from_millis(1));
        read.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Some(row)
    });
    let gave_up = tokio::select! {
        _ = reading => false,
        _ = async {
            while read.load(std::sync::atomic::Ordering::Relaxed) < 50 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        } => true,
    };
    let read = read.load(std::sync::atomic::Ordering::Relaxed);
    assert!(gave_up, "the reader gave up mid-print");
    assert!(
        (50..2_000).contains(&read),
        "{read} rows read before giving up"
    );
    let identity = api.run(&Call::new("/system/identity/print")).await.unwrap();
    assert_eq!(identity[0]["name"], "sim-router");
    let names = api
        .run_map(&print, |mut row| row.remove("name"))
        .await
        .unwrap();
    let expected: Vec<String> = (0..2_000).map(|i| format!("u{i:05}")).collect();
    assert_eq!(
        names, expected,
        "every row, in order, after the cancelled one"
    );
}

/// A long print and short commands share one connection: while the print's reader works
/// through its rows, the others are answered too, each with its own replies.
#[tokio::test]
async fn a_long_print_and_short_commands_interleave_on_one_connection() {
    use hotspot_edge::routeros::client::Call;
    let (_sim, api) = common::sim::sim_and_api(PrintForms::V7, true).await;
    many_users(&api, 1_500).await;
    let long = async {
        api.run_map(
            &Call::new("/ip/hotspot/user/print").props(&["name"]),
            |mut row| row.remove("name"),
        )
        .await
        .unwrap()
    };
    let short = async {
        let mut identities = Vec::new();
        for _ in 0..20 {
            let rows = api.run(&Call::new("/system/identity/print")).await.unwrap();
            identities.push(rows[0]["name"].clone());
        }
        identities
    };
    let (names, identities) = tokio::join!(long, short);
    assert_eq!(names.len(), 1_500);
    assert_eq!(names.first().map(String::as_str), Some("u00000"));
    assert_eq!(names.last().map(String::as_str), Some("u01499"));
    assert!(
        identities.iter().all(|n| n == "sim-router"),
        "{identities:?}"
    );
}
