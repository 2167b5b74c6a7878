//! Engine behaviour on a fake clock, through the real schema: money, vouchers, grants, expiry,
//! quotas and clock jumps.

mod common;

use common::*;
use hotspot_edge::engine::command::*;
use hotspot_edge::engine::{Command, RejectCode};
use hotspot_edge::store::ApplyError;

fn refused(r: Result<serde_json::Value, ApplyError>) -> (RejectCode, String) {
    match r {
        Err(ApplyError::Rejected(r)) => (r.code, r.message),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn duplicate_receipt_buys_once() {
    let mut s = Site::new(NOW_MS);
    s.plan("1h", "1h", "wall", None, 1);
    let first = s.pay("QK12ABC345", "254712345678", "1h", None);
    let events_after_first = s.events().len();
    let again = s.pay("QK12ABC345", "254712345678", "1h", None);
    assert_eq!(first["duplicate"], false);
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["payment"], first["payment"]);
    assert_eq!(again["grant"], first["grant"]);
    assert_eq!(
        s.events().len(),
        events_after_first,
        "a duplicate writes no event"
    );
    let user = first["user"].as_str().unwrap();
    assert_eq!(s.user(user)["grants"].as_array().unwrap().len(), 1);
    assert_eq!(s.events_of("payment.recorded").len(), 1);
    // The same reference from another provider is another payment.
    let other = s.ok(Command::PaymentConfirmed(PaymentArgs {
        provider: "cash".into(),
        reference: "QK12ABC345".into(),
        plan: "1h".into(),
        ..Default::default()
    }));
    assert_eq!(other["duplicate"], false);
}

#[test]
fn command_id_applies_once_and_replays_the_result() {
    let mut s = Site::new(NOW_MS);
    s.plan("1h", "1h", "wall", None, 1);
    let cmd = Command::PaymentConfirmed(PaymentArgs {
        provider: "mpesa".into(),
        reference: "R1".into(),
        phone: Some("254700000001".into()),
        plan: "1h".into(),
        ..Default::default()
    });
    let a = s.apply_id(Some("cmd-1"), cmd.clone()).unwrap();
    let b = s.apply_id(Some("cmd-1"), cmd).unwrap();
    assert!(!a.replayed && b.replayed);
    assert_eq!(a.result, b.result);
    assert!(b.seqs.is_empty());
}

#[test]
fn second_purchase_extends_from_the_current_end() {
    let mut s = Site::new(NOW_MS);
    s.plan("1h", "1h", "wall", None, 1);
    let r = s.pay("R1", "254700000001", "1h", Some("AA:BB:CC:DD:EE:01"));
    let user = r["user"].as_str().unwrap().to_string();
    s.clock.advance(30 * MIN);
    let r2 = s.pay("R2", "254700000001", "1h", None);
    assert_eq!(r2["user"], user.as_str(), "same phone, same user");
    assert_eq!(r2["created"], false);
    assert_eq!(s.time_left(&user), 90 * MIN);
    // The first grant ends at 1h; the second starts at that exact instant.
    s.clock.advance(30 * MIN);
    s.tick();
    let u = s.user(&user);
    let grants = u["grants"].as_array().unwrap();
    assert_eq!(grants[0]["state"], "ended");
    assert_eq!(grants[1]["state"], "running");
    assert_eq!(u["state"], "active");
    assert_eq!(s.time_left(&user), HOUR);
    assert_eq!(s.events_of("user.expired").len(), 0);
    s.clock.advance(HOUR - 1);
    s.tick();
    assert_eq!(s.state(&user), "active");
    s.clock.advance(1);
    s.tick();
    assert_eq!(s.state(&user), "expired");
}

#[test]
fn expiry_happens_at_the_exact_millisecond() {
    let mut s = Site::new(NOW_MS);
    s.plan("1h", "1h", "wall", None, 1);
    let r = s.pay("R1", "254700000001", "1h", Some("AA:BB:CC:DD:EE:01"));
    let user = r["user"].as_str().unwrap().to_string();
    let deadline = s.store.next_deadline().unwrap().unwrap();
    let start = s.store.now(&s.clock).unwrap().timeline_ms;
    assert_eq!(deadline - start, HOUR);
    s.clock.advance(HOUR - 1);
    s.tick();
    assert_eq!(s.state(&user), "active");
    assert_eq!(s.time_left(&user), 1);
    s.clock.advance(1);
    let t = s.tick();
    assert_eq!(t["users-expired"], 1);
    assert_eq!(s.state(&user), "expired");
    let ended = s.events_of("grant.ended");
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0]["payload"]["reason"], "time");
    // A late tick still ends the grant at its deadline, not at the tick.
    assert_eq!(s.store.next_deadline().unwrap(), None);
    let grant = &s.user(&user)["grants"][0];
    assert_eq!(grant["time-left"], "0s");
}

#[test]
fn late_tick_ends_grant_at_its_deadline_and_chains_the_next_from_there() {
    let mut s = Site::new(NOW_MS);
    s.plan("1h", "1h", "wall", None, 1);
    let r = s.pay("R1", "254700000001", "1h", Some("AA:BB:CC:DD:EE:01"));
    let user = r["user"].as_str().unwrap().to_string();
    s.pay("R2", "254700000001", "1h", None);
    // The daemon was stopped and ticks 20 minutes late: the second hour started at 1h.
    s.clock.advance(HOUR + 20 * MIN);
    s.tick();
    assert_eq!(s.time_left(&user), 40 * MIN);
}

#[test]
fn voucher_redeemed_twice_is_refused() {
    let mut s = Site::new(NOW_MS);
    s.plan("day", "24h", "wall", None, 1);
    let g = s.ok(Command::VouchersGenerate(GenerateArgs {
        plan: "day".into(),
        count: 3,
        length: None,
        expires_in: None,
    }));
    let codes: Vec<String> = g["codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert_eq!(codes.len(), 3);
    assert!(codes.iter().all(|c| c.len() == 8));
    let redeem = |code: &str| {
        Command::VoucherRedeem(RedeemArgs {
            code: code.into(),
            mac: None,
            ip: None,
            user: None,
        })
    };
    // What a customer types: lower case, with a dash.
    let typed = format!("{}-{}", &codes[0][..4], &codes[0][4..]).to_lowercase();
    let r = s.ok(redeem(&typed));
    assert_eq!(r["user"], codes[0].as_str());
    assert_eq!(r["password"], codes[0].as_str());
    let before = s.events().len();
    let (code, msg) = refused(s.apply(redeem(&codes[0])));
    assert_eq!(code, RejectCode::Conflict);
    assert!(msg.contains("already redeemed"), "{msg}");
    assert_eq!(s.events().len(), before, "a refusal changes nothing");
    // Revoked codes cannot be redeemed; unknown codes are not found.
    s.ok(Command::VouchersRevoke(RevokeArgs {
        codes: vec![codes[1].clone()],
    }));
    assert_eq!(refused(s.apply(redeem(&codes[1]))).0, RejectCode::Conflict);
    assert_eq!(refused(s.apply(redeem("ZZZZZZZZ"))).0, RejectCode::NotFound);
    assert_eq!(refused(s.apply(redeem("O0O0O0O0"))).0, RejectCode::BadArgs);
}

#[test]
fn unredeemed_vouchers_expire_on_the_timeline() {
    let mut s = Site::new(NOW_MS);
    s.plan("day", "24h", "wall", None, 1);
    let g = s.ok(Command::VouchersGenerate(GenerateArgs {
        plan: "day".into(),
        count: 1,
        length: Some(10),
        expires_in: Some("7d".into()),
    }));
    let code = g["codes"][0].as_str().unwrap().to_string();
    assert_eq!(code.len(), 10);
    // A wall clock step of +30 days does not expire it: only real time does.
    s.clock.set_wall(NOW_MS + 30 * 24 * HOUR);
    s.tick();
    assert!(s.events_of("voucher.expired").is_empty());
    s.clock.advance(7 * 24 * HOUR);
    s.tick();
    assert_eq!(s.events_of("voucher.expired").len(), 1);
    let r = s.apply(Command::VoucherRedeem(RedeemArgs {
        code,
        mac: None,
        ip: None,
        user: None,
    }));
    assert_eq!(refused(r).0, RejectCode::Expired);
}

#[test]
fn wall_grant_runs_whether_connected_or_not() {
    let mut s = Site::new(NOW_MS);
    s.plan("1h", "1h", "wall", None, 1);
    let r = s.pay("R1", "254700000001", "1h", None);
    let user = r["user"].as_str().unwrap().to_string();
    // Bought at the counter, no device yet: it waits for first use.
    s.clock.advance(3 * HOUR);
    s.tick();
    assert_eq!(s.time_left(&user), HOUR);
    s.login(&user, "s1", "AA:BB:CC:DD:EE:01").unwrap();
    s.clock.advance(10 * MIN);
    s.logout("s1");
    s.clock.advance(20 * MIN);
    s.tick();
    assert_eq!(
        s.time_left(&user),
        30 * MIN,
        "offline time counts for a wall grant"
    );
    s.clock.advance(30 * MIN);
    s.tick();
    assert_eq!(s.state(&user), "expired");
}

#[test]
fn uptime_grant_pauses_while_no_device_is_connected() {
    let mut s = Site::new(NOW_MS);
    s.plan("up1h", "1h", "uptime", None, 2);
    let r = s.pay("R1", "254700000001", "up1h", Some("AA:BB:CC:DD:EE:01"));
    let user = r["user"].as_str().unwrap().to_string();
    s.clock.advance(2 * HOUR);
    s.tick();
    assert_eq!(s.time_left(&user), HOUR, "nothing counted before a login");
    s.login(&user, "s1", "AA:BB:CC:DD:EE:01").unwrap();
    s.clock.advance(20 * MIN);
    s.logout("s1");
    s.clock.advance(5 * HOUR);
    s.tick();
    assert_eq!(s.time_left(&user), 40 * MIN);
    assert_eq!(
        s.store.next_deadline().unwrap(),
        None,
        "paused: no deadline"
    );
    // Two devices at once count once.
    s.login(&user, "s2", "AA:BB:CC:DD:EE:01").unwrap();
    s.login(&user, "s3", "AA:BB:CC:DD:EE:02").unwrap();
    s.clock.advance(40 * MIN - 1);
    s.tick();
    assert_eq!(s.state(&user), "active");
    s.clock.advance(1);
    s.tick();
    assert_eq!(s.state(&user), "expired");
}

#[test]
fn data_allowance_is_shared_by_two_devices() {
    let mut s = Site::new(NOW_MS);
    s.plan("data", "30d", "wall", Some("100MB"), 2);
    let r = s.pay("R1", "254700000001", "data", Some("AA:BB:CC:DD:EE:01"));
    let user = r["user"].as_str().unwrap().to_string();
    s.login(&user, "s1", "AA:BB:CC:DD:EE:01").unwrap();
    s.login(&user, "s2", "AA:BB:CC:DD:EE:02").unwrap();
    let (code, _) = refused(s.login(&user, "s3", "AA:BB:CC:DD:EE:03"));
    assert_eq!(code, RejectCode::TooManyDevices);
    s.usage(&[
        ("s1", 10_000_000, 50_000_000),
        ("s2", 5_000_000, 25_000_000),
    ]);
    assert_eq!(s.state(&user), "active");
    assert_eq!(s.user(&user)["data-left"], 10_000_000);
    // Counters are absolute: only the growth counts.
    s.usage(&[("s1", 10_000_000, 50_000_000)]);
    assert_eq!(s.user(&user)["data-left"], 10_000_000);
    s.usage(&[("s2", 5_000_000, 35_000_000)]);
    assert_eq!(s.state(&user), "expired");
    let ended = s.events_of("grant.ended");
    assert_eq!(ended[0]["payload"]["reason"], "data");
    assert_eq!(ended[0]["payload"]["bytes-used"], 100_000_000);
    let expired = s.events_of("user.expired");
    assert_eq!(expired.len(), 1);
    let (code, _) = refused(s.login(&user, "s4", "AA:BB:CC:DD:EE:01"));
    assert_eq!(code, RejectCode::Expired);
}

#[test]
fn data_overflow_moves_to_the_next_grant() {
    let mut s = Site::new(NOW_MS);
    s.plan("data", "30d", "wall", Some("100MB"), 1);
    let r = s.pay("R1", "254700000001", "data", Some("AA:BB:CC:DD:EE:01"));
    let user = r["user"].as_str().unwrap().to_string();
    s.pay("R2", "254700000001", "data", None);
    s.login(&user, "s1", "AA:BB:CC:DD:EE:01").unwrap();
    s.usage(&[("s1", 0, 130_000_000)]);
    assert_eq!(s.state(&user), "active");
    assert_eq!(s.user(&user)["data-left"], 70_000_000);
}

#[test]
fn refused_commands_change_nothing() {
    let mut s = Site::new(NOW_MS);
    s.plan("1h", "1h", "wall", None, 1);
    let before = s.events().len();
    let bad = |plan: &str, phone: &str, amount: Option<u64>, mac: Option<&str>| {
        Command::PaymentConfirmed(PaymentArgs {
            provider: "mpesa".into(),
            reference: "R9".into(),
            phone: Some(phone.into()),
            amount,
            plan: plan.into(),
            mac: mac.map(String::from),
            ..Default::default()
        })
    };
    assert_eq!(
        refused(s.apply(bad("nope", "254700000001", None, None))).0,
        RejectCode::NotFound
    );
    assert_eq!(
        refused(s.apply(bad("1h", "12", None, None))).0,
        RejectCode::BadArgs
    );
    assert_eq!(
        refused(s.apply(bad("1h", "254700000001", Some(1), None))).0,
        RejectCode::BadArgs
    );
    assert_eq!(
        refused(s.apply(bad("1h", "254700000001", None, Some("xx")))).0,
        RejectCode::BadArgs
    );
    assert_eq!(s.events().len(), before);
    let now = s.store.now(&s.clock).unwrap();
    assert!(s.store.view_users(&now, None, 0).unwrap().rows.is_empty());
    assert!(s.store.view_payments(0).unwrap().rows.is_empty());
}

#[test]
fn suspend_and_resume() {
    let mut s = Site::new(NOW_MS);
    s.plan("1h", "1h", "wall", None, 1);
    let r = s.pay("R1", "254700000001", "1h", Some("AA:BB:CC:DD:EE:01"));
    let user = r["user"].as_str().unwrap().to_string();
    s.ok(Command::UserSuspend(SuspendArgs {
        user: user.clone(),
        reason: Some("abuse".into()),
    }));
    assert_eq!(s.state(&user), "suspended");
    assert_eq!(
        refused(s.login(&user, "s1", "AA:BB:CC:DD:EE:01")).0,
        RejectCode::Suspended
    );
    s.ok(Command::UserResume(UserArg { user: user.clone() }));
    assert_eq!(s.state(&user), "active");
    assert!(s.login(&user, "s1", "AA:BB:CC:DD:EE:01").is_ok());
    assert_eq!(s.events_of("user.suspended").len(), 1);
    assert_eq!(s.events_of("user.resumed").len(), 1);
}

#[test]
fn mac_binding_refuses_other_devices() {
    let settings = hotspot_edge::engine::Settings {
        bind_mac: true,
        ..Default::default()
    };
    let mut s = Site::with_settings(NOW_MS, settings);
    s.plan("1h", "1h", "wall", None, 1);
    let r = s.pay("R1", "254700000001", "1h", Some("aa-bb-cc-dd-ee-01"));
    let user = r["user"].as_str().unwrap().to_string();
    assert_eq!(s.user(&user)["mac"], "AA:BB:CC:DD:EE:01");
    assert_eq!(
        refused(s.login(&user, "s1", "AA:BB:CC:DD:EE:02")).0,
        RejectCode::MacNotAllowed
    );
    assert!(s.login(&user, "s1", "AA:BB:CC:DD:EE:01").is_ok());
}

/// The router boots at 1970, a customer pays, NTP then steps the clock to now, later -1 h and
/// +2 h: the paid hour is honoured within 2 s, never doubled, never lost.
#[test]
fn clock_steps_neither_steal_nor_give_time() {
    let mut s = Site::new(0);
    s.plan("1h", "1h", "wall", None, 1);
    let r = s.pay("R1", "254700000001", "1h", Some("AA:BB:CC:DD:EE:01"));
    let user = r["user"].as_str().unwrap().to_string();
    assert_eq!(s.events()[0]["time-trusted"], false);
    s.clock.advance(10 * MIN);
    s.clock.set_wall(NOW_MS); // NTP sync: +56 years
    s.tick();
    assert_eq!(s.state(&user), "active", "the jump expired nobody");
    assert_eq!(s.time_left(&user), 50 * MIN);
    s.clock.advance(10 * MIN);
    s.clock.set_wall(NOW_MS + 10 * MIN - HOUR); // -1 h
    s.tick();
    assert_eq!(s.time_left(&user), 40 * MIN, "the step back gave no time");
    s.clock.advance(10 * MIN);
    s.clock.set_wall(NOW_MS + 20 * MIN + 2 * HOUR); // +2 h
    s.tick();
    assert_eq!(
        s.time_left(&user),
        30 * MIN,
        "the step forward took no time"
    );
    let waited = s.run_until_expired(&user, 500, HOUR);
    assert!(
        (30 * MIN..=30 * MIN + 2 * SEC).contains(&waited),
        "expired after {waited} ms"
    );
    assert_eq!(s.events_of("grant.ended").len(), 1, "ended once");
    assert_eq!(s.events_of("user.expired").len(), 1);
}

/// A power cut in the middle of a grant, and the router comes back at 1970: nothing is charged
/// while the clock is wrong; once NTP syncs, the downtime is charged (wall grants run in real
/// time), so the customer gets exactly the hour paid for.
#[test]
fn reboot_with_a_1970_clock_charges_downtime_once_the_clock_is_trusted() {
    let mut s = Site::new(NOW_MS);
    s.plan("1h", "1h", "wall", None, 1);
    let r = s.pay("R1", "254700000001", "1h", Some("AA:BB:CC:DD:EE:01"));
    let user = r["user"].as_str().unwrap().to_string();
    s.clock.advance(20 * MIN);
    s.tick();
    s.store.checkpoint_clock(&s.clock).unwrap();
    // Off for 10 minutes; boots at 1970.
    s.clock.reboot(0);
    s.store.refresh_clock(&s.clock).unwrap();
    s.tick();
    assert_eq!(s.state(&user), "active");
    assert_eq!(
        s.time_left(&user),
        40 * MIN,
        "downtime not charged while the clock is wrong"
    );
    s.clock.advance(5 * MIN);
    s.tick();
    // NTP: real time is 20 + 10 + 5 minutes after the purchase.
    s.clock.set_wall(NOW_MS + 35 * MIN);
    s.store.refresh_clock(&s.clock).unwrap();
    s.tick();
    assert_eq!(s.time_left(&user), 25 * MIN);
    let waited = s.run_until_expired(&user, 500, HOUR);
    assert!(
        (25 * MIN..=25 * MIN + 2 * SEC).contains(&waited),
        "expired after {waited} ms"
    );
}

#[test]
fn a_tick_with_nothing_due_writes_nothing() {
    let mut s = Site::new(NOW_MS);
    s.plan("1h", "1h", "wall", None, 1);
    s.store.checkpoint_clock(&s.clock).unwrap();
    let r = s.pay("R1", "254700000001", "1h", Some("AA:BB:CC:DD:EE:01"));
    let before = s.store.total_changes();
    s.clock.advance(HOUR - 1);
    let a = s.apply_id(None, Command::Tick).unwrap();
    assert!(a.seqs.is_empty());
    assert_eq!(a.result["users-checked"], 0);
    assert_eq!(
        s.store.total_changes(),
        before,
        "an idle tick wrote to the database"
    );
    s.clock.advance(1);
    s.tick();
    assert!(s.store.total_changes() > before);
    assert_eq!(s.state(r["user"].as_str().unwrap()), "expired");
}

#[test]
fn extend_adds_time_or_a_plan() {
    let mut s = Site::new(NOW_MS);
    s.plan("1h", "1h", "wall", None, 1);
    let r = s.pay("R1", "254700000001", "1h", Some("AA:BB:CC:DD:EE:01"));
    let user = r["user"].as_str().unwrap().to_string();
    s.ok(Command::UserExtend(ExtendArgs {
        user: user.clone(),
        plan: None,
        time: Some("30m".into()),
        data: None,
    }));
    assert_eq!(s.time_left(&user), 90 * MIN);
    s.ok(Command::UserExtend(ExtendArgs {
        user: user.clone(),
        plan: Some("1h".into()),
        time: None,
        data: None,
    }));
    assert_eq!(s.time_left(&user), 150 * MIN);
    let r = s.apply(Command::UserExtend(ExtendArgs {
        user: user.clone(),
        plan: None,
        time: None,
        data: None,
    }));
    assert_eq!(refused(r).0, RejectCode::BadArgs);
    // An expired user comes back to life with a new grant.
    s.clock.advance(150 * MIN);
    s.tick();
    assert_eq!(s.state(&user), "expired");
    s.ok(Command::UserExtend(ExtendArgs {
        user: user.clone(),
        plan: None,
        time: Some("10m".into()),
        data: None,
    }));
    assert_eq!(s.state(&user), "active");
}

#[test]
fn events_carry_the_documented_envelope_in_seq_order() {
    let mut s = Site::new(NOW_MS);
    s.plan("1h", "1h", "wall", None, 1);
    s.pay("R1", "254700000001", "1h", Some("AA:BB:CC:DD:EE:01"));
    let ev = s.events();
    for (i, e) in ev.iter().enumerate() {
        assert_eq!(e["seq"], i as i64 + 1);
        assert_eq!(e["site"], "test-site");
        let id = e["id"].as_str().unwrap();
        assert!(id.ends_with(&format!("-{}", i + 1)), "{id}");
        assert!(e["occurred-at"]
            .as_str()
            .unwrap()
            .starts_with("2026-11-21T10:00:00"));
        assert_eq!(e["time-trusted"], true);
        assert!(e["payload"].is_object());
    }
    let types: Vec<&str> = ev.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "plan.upserted",
            "user.created",
            "grant.added",
            "grant.started",
            "payment.recorded"
        ]
    );
}

#[test]
fn a_refused_command_id_gets_the_same_refusal_even_once_it_would_succeed() {
    let mut s = Site::new(NOW_MS);
    let cmd = Command::PaymentConfirmed(PaymentArgs {
        provider: "mpesa".into(),
        reference: "EARLY".into(),
        plan: "1h".into(),
        ..Default::default()
    });
    let (code, _) = refused(s.apply_id(Some("c-1"), cmd.clone()).map(|a| a.result));
    assert_eq!(code, RejectCode::NotFound);
    s.plan("1h", "1h", "wall", None, 1);
    let (code, msg) = refused(s.apply_id(Some("c-1"), cmd.clone()).map(|a| a.result));
    assert_eq!(
        code,
        RejectCode::NotFound,
        "the id's answer is final: {msg}"
    );
    assert!(s.events_of("payment.recorded").is_empty());
    // A new id is a new attempt.
    assert_eq!(
        s.apply_id(Some("c-2"), cmd).unwrap().result["duplicate"],
        false
    );
}

#[test]
fn user_create_with_and_without_time() {
    let mut s = Site::new(NOW_MS);
    s.plan("1h", "1h", "wall", None, 1);
    let r = s.ok(Command::UserCreate(CreateUserArgs {
        user: Some("front-desk".into()),
        password: Some("s3cret-pw".into()),
        plan: Some("1h".into()),
        ..Default::default()
    }));
    assert_eq!(r["user"], "front-desk");
    assert_eq!(r["password"], "s3cret-pw");
    assert_eq!(r["state"], "active");
    assert_eq!(r["time-left-ms"], HOUR);
    let bare = s.ok(Command::UserCreate(CreateUserArgs {
        phone: Some("0712345678".into()),
        ..Default::default()
    }));
    assert_eq!(bare["state"], "expired", "no time yet: cannot log in");
    assert_eq!(bare["password"].as_str().unwrap().len(), 6);
    let (code, _) = refused(s.apply(Command::UserCreate(CreateUserArgs {
        user: Some("front-desk".into()),
        time: Some("1h".into()),
        ..Default::default()
    })));
    assert_eq!(code, RejectCode::Conflict);
    let (code, _) = refused(s.apply(Command::UserCreate(CreateUserArgs {
        user: Some("bad name/".into()),
        ..Default::default()
    })));
    assert_eq!(code, RejectCode::BadArgs);
    assert_eq!(s.events_of("user.created").len(), 2);
}

#[test]
fn user_disconnect_queues_a_disconnect_and_keeps_the_account() {
    let mut s = Site::new(NOW_MS);
    s.plan("1h", "1h", "wall", None, 1);
    let user = s.pay("R1", "254700000001", "1h", Some("AA:BB:CC:00:00:01"))["user"]
        .as_str()
        .unwrap()
        .to_string();
    let r = s.ok(Command::UserDisconnect(SuspendArgs {
        user: user.clone(),
        reason: Some("operator".into()),
    }));
    assert_eq!(r["disconnecting"], true);
    assert_eq!(s.state(&user), "active");
    let (code, _) = refused(s.apply(Command::UserDisconnect(SuspendArgs {
        user: "nobody".into(),
        reason: None,
    })));
    assert_eq!(code, RejectCode::NotFound);
}

#[test]
fn vouchers_import_all_or_nothing_then_redeem() {
    let mut s = Site::new(NOW_MS);
    s.plan("1h", "1h", "wall", None, 1);
    let r = s.ok(Command::VouchersImport(ImportArgs {
        plan: "1h".into(),
        codes: vec!["SHPX2345".into(), "SHPX6789".into()],
        batch: Some("shop-77".into()),
        expires_in: None,
    }));
    assert_eq!(r["imported"], 2);
    assert_eq!(s.events_of("voucher.batch-imported").len(), 1);
    // One code already exists: nothing of this batch is imported.
    let (code, msg) = refused(s.apply(Command::VouchersImport(ImportArgs {
        plan: "1h".into(),
        codes: vec!["NEWC2345".into(), "SHPX2345".into()],
        batch: None,
        expires_in: None,
    })));
    assert_eq!(code, RejectCode::Conflict, "{msg}");
    assert!(msg.contains("codes[1]"), "{msg}");
    let (code, _) = refused(s.apply(Command::VoucherRedeem(RedeemArgs {
        code: "NEWC2345".into(),
        mac: None,
        ip: None,
        user: None,
    })));
    assert_eq!(code, RejectCode::NotFound);
    let (code, _) = refused(s.apply(Command::VouchersImport(ImportArgs {
        plan: "1h".into(),
        codes: vec!["lower-0O".into()],
        batch: None,
        expires_in: None,
    })));
    assert_eq!(code, RejectCode::BadArgs);
    let red = s.ok(Command::VoucherRedeem(RedeemArgs {
        code: "SHPX6789".into(),
        mac: None,
        ip: None,
        user: None,
    }));
    assert_eq!(red["created"], true);
}

#[test]
fn the_outbox_limit_drops_oldest_telemetry_and_never_money() {
    let mut s = Site::new(NOW_MS);
    s.plan("1h", "1h", "wall", None, 1);
    for i in 0..20 {
        s.pay(&format!("T{i}"), &format!("2547000000{i:02}"), "1h", None);
    }
    let before = s.events();
    let money = before
        .iter()
        .filter(|e| ["payment.recorded", "grant.added"].contains(&e["type"].as_str().unwrap()))
        .count();
    assert_eq!(money, 40);
    let now = s.store.now(&s.clock).unwrap();
    let t = s
        .store
        .outbox_trim(30, &now)
        .unwrap()
        .expect("over the limit");
    // 61 events (plan + 20 x 3); down to 27: 34 telemetry rows would be needed, 21 exist.
    assert_eq!(
        t.dropped, 21,
        "all telemetry (plan.upserted + user.created) went"
    );
    let after = s.events();
    assert_eq!(
        after
            .iter()
            .filter(|e| ["payment.recorded", "grant.added"].contains(&e["type"].as_str().unwrap()))
            .count(),
        40,
        "money events are never dropped"
    );
    let dropped = s.events_of("outbox.dropped");
    assert_eq!(dropped.len(), 1);
    assert_eq!(dropped[0]["payload"]["count"], 21);
    assert_eq!(dropped[0]["payload"]["first-seq"], t.first_seq);
    assert_eq!(dropped[0]["payload"]["last-seq"], t.last_seq);
    assert!(
        s.store.outbox_trim(100, &now).unwrap().is_none(),
        "under the limit: nothing"
    );
}

/// A deadline shared by more customers than one tick settles (`TICK_SLICE`) is settled in
/// slices: each tick says whether more are due, and after the last every customer is expired
/// once, with one `user.expired` event each.
#[test]
fn a_deadline_shared_by_many_customers_is_settled_in_slices() {
    use hotspot_edge::engine::TICK_SLICE;
    let mut s = Site::new(NOW_MS);
    s.plan("1h", "1h", "wall", None, 1);
    let customers = 2 * TICK_SLICE + 17;
    for i in 0..customers {
        let mac = format!(
            "AA:BB:CC:{:02X}:{:02X}:{:02X}",
            i >> 16,
            (i >> 8) & 0xff,
            i & 0xff
        );
        s.pay(&format!("R{i}"), &format!("2547{i:08}"), "1h", Some(&mac));
    }
    s.clock.advance(HOUR);
    let mut slices = Vec::new();
    loop {
        let r = s.tick();
        slices.push((
            r["users-checked"].as_u64().unwrap(),
            r["users-expired"].as_u64().unwrap(),
        ));
        if r["more"] != true {
            break;
        }
        assert!(
            slices.len() <= 3,
            "ticks go on past the last slice: {slices:?}"
        );
    }
    let full = TICK_SLICE as u64;
    assert_eq!(slices, vec![(full, full), (full, full), (17, 17)]);
    assert_eq!(s.events_of("user.expired").len(), customers);
    assert_eq!(s.tick()["users-checked"], 0, "nothing left due");
}

/// Money above what the store's integers hold is refused with a clear error, and nothing is
/// stored: before, a plan price of 2^63 or more wrapped negative and failed the store's CHECK on
/// every delivery (a poison command), and a payment amount was stored negative.
#[test]
fn money_beyond_the_stores_range_is_refused_and_nothing_changes() {
    let mut s = Site::new(NOW_MS);
    s.plan("1h", "1h", "wall", None, 1);
    let e = s
        .apply(Command::PlansUpsert(PlanArgs {
            price: 1 << 63,
            ..plan_args("big", "1h", "wall", None, 1)
        }))
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("price 9223372036854775808 is out of range"),
        "{e}"
    );
    let e = s
        .apply(Command::PaymentConfirmed(PaymentArgs {
            amount: Some(u64::MAX),
            ..payment_args("R1", "254700000001", "1h", None)
        }))
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("amount 18446744073709551615 is out of range"),
        "{e}"
    );
    // Refusals are journalled (one row each) but no plan, payment or user is written.
    assert!(s
        .events_of("plan.upserted")
        .iter()
        .all(|e| e["payload"]["plan"]["id"] != "big"));
    assert_eq!(
        s.events_of("plan.upserted")[0]["payload"]["plan"]["id"],
        "1h",
        "the event's shape this test reads"
    );
    assert!(s.events_of("payment.recorded").is_empty());
    // The largest amount that fits is taken.
    let r = s.ok(Command::PaymentConfirmed(PaymentArgs {
        amount: Some(hotspot_edge::engine::MAX_MONEY),
        ..payment_args("R2", "254700000002", "1h", None)
    }));
    assert_eq!(r["duplicate"], false);
    assert_eq!(
        s.events_of("payment.recorded")[0]["payload"]["amount"],
        i64::MAX
    );
}

/// A payment reference with a NUL, a line break or another control character is refused: it
/// is shown in tables and logs and sent to the cloud, where it would cut or forge lines.
#[test]
fn a_payment_reference_with_control_characters_is_refused() {
    let mut s = Site::new(NOW_MS);
    s.plan("1h", "1h", "wall", None, 1);
    for bad in ["QK1\u{0}ABC", "QK1\nABC", "QK1\u{1b}[31m", "\u{7f}"] {
        let e = s
            .apply(Command::PaymentConfirmed(payment_args(
                bad,
                "254700000001",
                "1h",
                None,
            )))
            .unwrap_err();
        assert!(e.to_string().contains("control character"), "{bad:?}: {e}");
    }
    assert!(s.events_of("payment.recorded").is_empty());
    // Spaces around it are trimmed as before, and other text is fine.
    s.ok(Command::PaymentConfirmed(payment_args(
        " QK1ABC2 ",
        "254700000001",
        "1h",
        None,
    )));
}

/// A byte counter beyond what the store holds (a RADIUS Gigawords of 2^31 and up, a counter
/// about to wrap) is left out, counted as out of range, while the other sessions of the batch
/// are counted: before, it was stored negative or wrapped the sums (60 MB counted as 9 bytes).
#[test]
fn counters_beyond_the_stores_range_are_left_out_and_the_rest_counted() {
    let mut s = Site::new(NOW_MS);
    s.plan("1h", "1h", "wall", Some("1GB"), 2);
    let user = s.pay("R1", "254700000001", "1h", None)["user"]
        .as_str()
        .unwrap()
        .to_string();
    s.login(&user, "a", "AA:00:00:00:00:01").unwrap();
    s.login(&user, "b", "AA:00:00:00:00:02").unwrap();
    let r = s.usage(&[("a", 1_000, 2_000), ("b", 1 << 63, 5)]);
    assert_eq!(r["out-of-range"], 1, "{r}");
    let r = s.usage(&[("a", 1_000, u64::MAX), ("b", 10, 20)]);
    assert_eq!(r["out-of-range"], 1, "{r}");
    let u = s.ok(Command::SessionEnded(SessionEndArgs {
        nas_session_id: "a".into(),
        reason: "user-request".into(),
        bytes_in: Some(u64::MAX),
        bytes_out: Some(u64::MAX),
    }));
    assert_eq!(u["changed"], true, "{u}");
    // Counted: 3,000 bytes of a, 30 of b; nothing negative or wrapped.
    let ended = s.events_of("session.ended");
    assert_eq!(ended[0]["payload"]["bytes-in"], 1_000, "{ended:?}");
    assert_eq!(ended[0]["payload"]["bytes-out"], 2_000, "{ended:?}");
    let shown = s.user(&user);
    assert_eq!(shown["data-left"], 1_000_000_000 - 3_030, "{shown}");
}
