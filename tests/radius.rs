//! The RADIUS server against the real `radclient` (freeradius-utils): the daemon in-process on
//! a temp database, a UDP listener standing in for the NAS's RFC 5176 port, and hand-built
//! packets (our own codec) where radclient cannot do it: another source address, exact
//! retransmissions, garbage.
#![cfg(feature = "radius")]

mod common;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use hotspot_edge::clock::{Clock, SystemClock};
use hotspot_edge::config;
use hotspot_edge::daemon::{Daemon, RadiusInfo};
use hotspot_edge::engine::command::*;
use hotspot_edge::engine::Command;
use hotspot_edge::radius::packet::{self, attr, vendor, Builder, Packet};
use serde_json::Value;
use tokio::net::UdpSocket;

const SECRET: &str = "radius-test-secret-0123";
const COOVA_SECRET: &str = "coova-test-secret-4567";

struct Rig {
    daemon: Daemon,
    running: common::daemon::Running,
    radius: RadiusInfo,
    _dir: tempfile::TempDir,
}

/// The daemon as `[router] kind = "radius"`: radclient's 127.0.0.1 is a MikroTik whose
/// disconnect port is `dm_port`, 127.0.0.2 a CoovaChilli.
async fn rig(dm_port: u16, extra: &str) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("secret"), format!("{SECRET}\n")).unwrap();
    std::fs::write(dir.path().join("coova"), format!("{COOVA_SECRET}\n")).unwrap();
    let text = format!(
        r#"
[site]
id = "r1"
[store]
path = "{db}"
[log]
level = "warn"
{extra}
[router]
kind = "radius"
[radius]
auth-listen = "127.0.0.1:0"
accounting-listen = "127.0.0.1:0"
disconnect-timeout = "300ms"
disconnect-tries = 2
[[radius.clients]]
address = "127.0.0.1"
secret-file = "{dir}/secret"
kind = "mikrotik"
disconnect-port = {dm_port}
[[radius.clients]]
address = "127.0.0.2"
secret-file = "{dir}/coova"
kind = "coova"
[[plans]]
id = "hour"
name = "1 hour"
price = 1000
currency = "KES"
time = "1h"
data = "10MB"
rate-limit = "2M/5M"
idle-timeout = "15m"
"#,
        db = dir.path().join("h.db").display(),
        dir = dir.path().display(),
    );
    let config = config::parse(&text, "rig.toml")
        .unwrap_or_else(|e| panic!("{e}\n{text}"))
        .config;
    let running = common::daemon::start(config, Arc::new(SystemClock) as Arc<dyn Clock>).await;
    Rig {
        daemon: running.daemon.clone(),
        radius: running.daemon.radius.clone().expect("RADIUS server"),
        running,
        _dir: dir,
    }
}

impl Rig {
    /// Stops the daemon (our handle on its store goes first, or it would wait for it).
    async fn stop(self) {
        let Rig {
            daemon, running, ..
        } = self;
        drop(daemon);
        running.stop().await;
    }

    async fn apply(&self, cmd: Command) -> Result<Value, String> {
        common::daemon::apply(&self.daemon.site, cmd).await
    }

    /// A cash sale of the hour plan: (user, password).
    async fn sale(&self, reference: &str, mac: Option<&str>) -> (String, String) {
        let r = self
            .apply(Command::PaymentConfirmed(PaymentArgs {
                provider: "cash".into(),
                reference: reference.into(),
                plan: "hour".into(),
                mac: mac.map(str::to_string),
                ..Default::default()
            }))
            .await
            .unwrap();
        (
            r["user"].as_str().unwrap().to_string(),
            r["password"].as_str().unwrap().to_string(),
        )
    }

    async fn user(&self, name: &str) -> Value {
        common::daemon::user(&self.daemon.site, name).await
    }

    fn stat(
        &self,
        f: impl Fn(&hotspot_edge::radius::RadiusStats) -> &std::sync::atomic::AtomicU32,
    ) -> u32 {
        f(&self.radius.stats).load(Ordering::Relaxed)
    }
}

/// Runs radclient; returns whether it got the reply it expects (Accept for auth) and its
/// output (`-x` prints every attribute received, in order).
async fn radclient(to: SocketAddr, kind: &str, input: &str) -> (bool, String) {
    let (kind, input) = (kind.to_string(), input.to_string());
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = std::process::Command::new("radclient")
            .args(["-x", "-r", "1", "-t", "1"])
            .arg(to.to_string())
            .arg(&kind)
            .arg(SECRET)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("radclient (Debian freeradius-utils) is installed");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    })
    .await
    .unwrap()
}

/// radclient input for a PAP Access-Request with a Message-Authenticator (radclient computes it
/// from the 0x00 placeholder).
fn pap(user: &str, password: &str) -> String {
    format!("User-Name = \"{user}\", User-Password = \"{password}\", Message-Authenticator = 0x00")
}

/// The reply attributes radclient printed, in order: (name, value).
fn reply_attrs(out: &str) -> Vec<(String, String)> {
    let Some(at) = out.find("Received ") else {
        return vec![];
    };
    out[at..]
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with('\t'))
        .filter_map(|l| l.trim().split_once(" = "))
        .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
        .collect()
}

fn attr_of<'a>(attrs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

/// Sends `bytes` from `from` and waits up to `wait` for one reply.
async fn exchange(
    from: &UdpSocket,
    to: SocketAddr,
    bytes: &[u8],
    wait: Duration,
) -> Option<Vec<u8>> {
    from.send_to(bytes, to).await.unwrap();
    let mut buf = vec![0u8; 4096];
    match tokio::time::timeout(wait, from.recv_from(&mut buf)).await {
        Ok(Ok((n, _))) => Some(buf[..n].to_vec()),
        _ => None,
    }
}

fn access_request(user: &str, password: &str, secret: &str, with_ma: bool) -> (Vec<u8>, [u8; 16]) {
    let mut auth = [0u8; 16];
    getrandom::fill(&mut auth).unwrap();
    let mut b = if with_ma {
        Builder::with_message_authenticator(packet::ACCESS_REQUEST, 7)
    } else {
        Builder::new(packet::ACCESS_REQUEST, 7)
    };
    b.add(attr::USER_NAME, user.as_bytes()).add(
        attr::USER_PASSWORD,
        &packet::pap_hide(password.as_bytes(), &auth, secret.as_bytes()),
    );
    (b.finish_access_request(&auth, secret.as_bytes()), auth)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pap_and_chap_accept_with_the_plan_attributes_and_reject_with_a_reason() {
    let rig = rig(3799, "[users]\nbind-mac = true").await;
    let (user, pw) = rig.sale("R1", None).await;
    let auth = rig.radius.auth;

    // PAP: the Accept says how long, how fast and how much, Message-Authenticator first.
    let (ok, out) = radclient(auth, "auth", &pap(&user, &pw)).await;
    assert!(ok, "{out}");
    let a = reply_attrs(&out);
    assert_eq!(a[0].0, "Message-Authenticator", "{out}");
    let timeout: u32 = attr_of(&a, "Session-Timeout").unwrap().parse().unwrap();
    assert!((3590..=3600).contains(&timeout), "{out}");
    assert_eq!(attr_of(&a, "Idle-Timeout"), Some("900"), "{out}");
    assert_eq!(attr_of(&a, "Acct-Interim-Interval"), Some("300"), "{out}");
    let class = attr_of(&a, "Class").unwrap();
    let id = rig.user(&user).await;
    let grant = id["grants"][0]["grant"].as_i64().unwrap();
    assert!(
        class.ends_with(&hex(&format!("grant={grant}"))),
        "{class} {id}"
    );
    assert_eq!(attr_of(&a, "Mikrotik-Rate-Limit"), Some("2M/5M"), "{out}");
    assert_eq!(
        attr_of(&a, "Mikrotik-Total-Limit"),
        Some("10000000"),
        "{out}"
    );
    assert_eq!(
        attr_of(&a, "Mikrotik-Total-Limit-Gigawords"),
        Some("0"),
        "{out}"
    );

    // CHAP with a CHAP-Challenge, and with the request authenticator as the challenge.
    for challenge in ["CHAP-Challenge = 0x0102030405060708090a0b0c0d0e0f10, ", ""] {
        let (ok, out) = radclient(
            auth,
            "auth",
            &format!("User-Name = \"{user}\", CHAP-Password = \"{pw}\", {challenge}Message-Authenticator = 0x00"),
        )
        .await;
        assert!(ok, "{challenge}: {out}");
        assert!(out.contains("Mikrotik-Rate-Limit = \"2M/5M\""), "{out}");
        let (ok, out) = radclient(
            auth,
            "auth",
            &format!("User-Name = \"{user}\", CHAP-Password = \"nope\", {challenge}Message-Authenticator = 0x00"),
        )
        .await;
        assert!(
            !ok && out.contains("Reply-Message = \"wrong password\""),
            "{out}"
        );
    }

    // Rejections a customer can understand.
    let reject = |input: String| async move {
        let (ok, out) = radclient(auth, "auth", &input).await;
        assert!(!ok && out.contains("Received Access-Reject"), "{out}");
        let a = reply_attrs(&out);
        assert_eq!(a[0].0, "Message-Authenticator", "{out}");
        attr_of(&a, "Reply-Message").unwrap().to_string()
    };
    assert_eq!(reject(pap(&user, "wrong")).await, "wrong password");
    assert_eq!(
        reject(pap("nobody", "x")).await,
        "unknown user name or voucher code"
    );
    rig.apply(Command::UserSuspend(SuspendArgs {
        user: user.clone(),
        reason: Some("test".into()),
    }))
    .await
    .unwrap();
    assert_eq!(reject(pap(&user, &pw)).await, "this account is suspended");

    // A user bought on one phone does not log in from another.
    let (bound, bpw) = rig.sale("R2", Some("AA:BB:CC:00:00:01")).await;
    let other = format!(
        "{}, Calling-Station-Id = \"AA:BB:CC:00:00:02\"",
        pap(&bound, &bpw)
    );
    assert_eq!(
        reject(other).await,
        "this account is tied to another device"
    );
    let same = format!(
        "{}, Calling-Station-Id = \"AA:BB:CC:00:00:01\"",
        pap(&bound, &bpw)
    );
    assert!(radclient(auth, "auth", &same).await.0);

    // One device at a time: with a session open, a second login is refused.
    let start = format!(
        "User-Name = \"{bound}\", Acct-Status-Type = Start, Acct-Session-Id = \"s-1\", Calling-Station-Id = \"AA:BB:CC:00:00:01\""
    );
    let (ok, out) = radclient(rig.radius.accounting, "acct", &start).await;
    assert!(ok, "{out}");
    assert_eq!(
        reject(same.clone()).await,
        "this account is already in use on 1 device(s)"
    );

    // A CoovaChilli gets WISPr and ChilliSpot attributes (our codec from 127.0.0.2, its
    // secret).
    let (cu, cpw) = rig.sale("R4", None).await;
    let sock = UdpSocket::bind("127.0.0.2:0").await.unwrap();
    let (req, req_auth) = access_request(&cu, &cpw, COOVA_SECRET, true);
    let reply = exchange(&sock, auth, &req, Duration::from_secs(2))
        .await
        .unwrap();
    let p = Packet::parse(&reply).unwrap();
    assert_eq!(p.code(), packet::ACCESS_ACCEPT);
    assert!(p.response_ok(&req_auth, COOVA_SECRET.as_bytes()));
    assert_eq!(
        p.vsa_u32(vendor::WISPR, vendor::WISPR_BANDWIDTH_MAX_UP)
            .unwrap(),
        2_000_000
    );
    assert_eq!(
        p.vsa_u32(vendor::WISPR, vendor::WISPR_BANDWIDTH_MAX_DOWN)
            .unwrap(),
        5_000_000
    );
    assert_eq!(
        p.vsa_u32(vendor::CHILLISPOT, vendor::CHILLISPOT_MAX_TOTAL_OCTETS)
            .unwrap(),
        10_000_000
    );
    assert_eq!(p.vsa(vendor::MIKROTIK, vendor::MIKROTIK_RATE_LIMIT), None);
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_a_valid_authenticator_or_from_unknown_sources_are_dropped() {
    let rig = rig(3799, "").await;
    let (user, pw) = rig.sale("R1", None).await;
    let auth = rig.radius.auth;
    let no_ma = format!("User-Name = \"{user}\", User-Password = \"{pw}\"");

    // BlastRADIUS: no Message-Authenticator, no answer.
    let (ok, out) = radclient(auth, "auth", &no_ma).await;
    assert!(!ok && out.contains("No reply"), "{out}");
    assert_eq!(rig.stat(|s| &s.bad_authenticator), 1);
    // With one (radclient computes it from 0x00), an answer.
    let (ok, out) = radclient(auth, "auth", &pap(&user, &pw)).await;
    assert!(ok, "{out}");

    // A valid request signed with another secret, and one from an unknown address.
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (req, _) = access_request(&user, &pw, "another-secret-of-20-chars", true);
    assert_eq!(
        exchange(&sock, auth, &req, Duration::from_millis(500)).await,
        None
    );
    assert_eq!(rig.stat(|s| &s.bad_authenticator), 2);
    let stranger = UdpSocket::bind("127.0.0.3:0").await.unwrap();
    let (req, _) = access_request(&user, &pw, SECRET, true);
    assert_eq!(
        exchange(&stranger, auth, &req, Duration::from_millis(500)).await,
        None
    );
    assert_eq!(rig.stat(|s| &s.unknown_source), 1);

    // Garbage and mutated packets: dropped, counted, and the server still answers.
    let (good, _) = access_request(&user, &pw, SECRET, true);
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for i in 0..2000 {
        let bytes: Vec<u8> = if i % 2 == 0 {
            (0..next() % 200).map(|_| next() as u8).collect()
        } else {
            let mut b = good.clone();
            let at = next() as usize % b.len();
            b[at] ^= 1 + (next() % 255) as u8;
            b
        };
        sock.send_to(&bytes, auth).await.unwrap();
        sock.send_to(&bytes, rig.radius.accounting).await.unwrap();
        if i % 50 == 0 {
            // Paced, so that the kernel's socket buffer does not drop them before we count.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let dropped = rig.stat(|s| &s.malformed) + rig.stat(|s| &s.bad_authenticator);
    // 4000 sent; UDP on a loaded machine may still lose a few before they reach us.
    assert!(dropped >= 3000, "dropped {dropped}");
    assert_eq!(rig.stat(|s| &s.accepted), 1);
    let (ok, out) = radclient(auth, "auth", &pap(&user, &pw)).await;
    assert!(ok, "{out}");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retransmissions_are_answered_from_the_cache_and_applied_once() {
    let rig = rig(3799, "").await;
    let (user, pw) = rig.sale("R1", None).await;
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();

    // The same Access-Request twice: the same reply, byte for byte.
    let (req, _) = access_request(&user, &pw, SECRET, true);
    let first = exchange(&sock, rig.radius.auth, &req, Duration::from_secs(2))
        .await
        .unwrap();
    let again = exchange(&sock, rig.radius.auth, &req, Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(first, again);
    assert_eq!(rig.stat(|s| &s.accepted), 1);
    assert_eq!(rig.stat(|s| &s.retransmits), 1);

    // An Interim-Update sent twice counts its bytes once.
    let acct = |status: u32, input: u32, id: u8| {
        let mut b = Builder::new(packet::ACCOUNTING_REQUEST, id);
        b.add(attr::USER_NAME, user.as_bytes())
            .add_u32(attr::ACCT_STATUS_TYPE, status)
            .add(attr::ACCT_SESSION_ID, b"80000001")
            .add_u32(attr::ACCT_INPUT_OCTETS, input)
            .add_u32(attr::ACCT_OUTPUT_OCTETS, 0);
        b.finish_request(SECRET.as_bytes())
    };
    let to = rig.radius.accounting;
    let start = acct(1, 0, 1);
    let r = exchange(&sock, to, &start, Duration::from_secs(2))
        .await
        .unwrap();
    let p = Packet::parse(&r).unwrap();
    assert_eq!(p.code(), packet::ACCOUNTING_RESPONSE);
    assert!(p.response_ok(&start[4..20].try_into().unwrap(), SECRET.as_bytes()));
    let interim = acct(3, 1_000_000, 2);
    let a = exchange(&sock, to, &interim, Duration::from_secs(2))
        .await
        .unwrap();
    let b = exchange(&sock, to, &interim, Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(a, b);
    let u = rig.user(&user).await;
    assert_eq!(u["data-left"], 9_000_000, "{u}");
    assert_eq!(u["sessions"][0]["bytes-in"], 1_000_000, "{u}");
    assert_eq!(rig.stat(|s| &s.retransmits), 2);
    // A new Interim (new identifier and authenticator) with a higher counter counts the rest.
    let later = acct(3, 1_500_000, 3);
    exchange(&sock, to, &later, Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(rig.user(&user).await["data-left"], 8_500_000);
    rig.stop().await;
}

/// The NAS's RFC 5176 port: checks each Disconnect-Request and answers as `script` says, one
/// entry per datagram: Some(code) answers, None stays silent.
async fn nas_listener(script: Vec<Option<u8>>) -> (u16, tokio::task::JoinHandle<Vec<Vec<u8>>>) {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = sock.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let mut got = Vec::new();
        let mut buf = vec![0u8; 4096];
        for step in script {
            let Ok(Ok((n, from))) =
                tokio::time::timeout(Duration::from_secs(20), sock.recv_from(&mut buf)).await
            else {
                break;
            };
            let req = buf[..n].to_vec();
            let p = Packet::parse(&req).unwrap();
            assert_eq!(p.code(), packet::DISCONNECT_REQUEST);
            assert!(
                p.request_authenticator_ok(SECRET.as_bytes()),
                "DM authenticator"
            );
            assert_eq!(
                p.message_authenticator(SECRET.as_bytes()),
                packet::MaCheck::Valid
            );
            if let Some(code) = step {
                let mut b = Builder::with_message_authenticator(code, p.id());
                if code == packet::DISCONNECT_NAK {
                    b.add_u32(attr::ERROR_CAUSE, 506);
                }
                let reply = b.finish_response(&p.authenticator(), SECRET.as_bytes());
                sock.send_to(&reply, from).await.unwrap();
            }
            got.push(req);
        }
        got
    });
    (port, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_used_up_sends_a_disconnect_retried_through_nak_and_timeout_until_acked() {
    // Attempt 1: NAK. Attempt 2: silent twice (2 tries). Attempt 3: silent, then ACK to the
    // retransmission.
    let (dm_port, nas) = nas_listener(vec![
        Some(packet::DISCONNECT_NAK),
        None,
        None,
        None,
        Some(packet::DISCONNECT_ACK),
    ])
    .await;
    let rig = rig(dm_port, "").await;
    let (user, pw) = rig.sale("R1", None).await;
    let acct = rig.radius.accounting;
    let (ok, out) = radclient(rig.radius.auth, "auth", &pap(&user, &pw)).await;
    assert!(ok, "{out}");
    let session = format!(
        "User-Name = \"{user}\", Acct-Session-Id = \"81a00001\", Framed-IP-Address = 10.5.50.7, Calling-Station-Id = \"AA:BB:CC:DD:EE:07\""
    );
    let (ok, out) = radclient(
        acct,
        "acct",
        &format!("{session}, Acct-Status-Type = Start"),
    )
    .await;
    assert!(ok && out.contains("Accounting-Response"), "{out}");
    let u = rig.user(&user).await;
    assert_eq!(u["sessions"][0]["nas-session"], "127.0.0.1/81a00001", "{u}");
    assert_eq!(u["sessions"][0]["ip"], "10.5.50.7");
    assert_eq!(u["sessions"][0]["mac"], "AA:BB:CC:DD:EE:07");

    // 4 GB + 2 MB down (Gigawords) and 3 MB up: far past the 10 MB.
    let (ok, out) = radclient(
        acct,
        "acct",
        &format!("{session}, Acct-Status-Type = Interim-Update, Acct-Input-Octets = 3000000, Acct-Output-Octets = 2000000, Acct-Output-Gigawords = 1, Acct-Session-Time = 60"),
    )
    .await;
    assert!(ok, "{out}");
    let u = rig.user(&user).await;
    assert_eq!(u["state"], "expired", "{u}");
    assert_eq!(
        u["sessions"][0]["bytes-out"],
        4_294_967_296u64 + 2_000_000,
        "{u}"
    );

    let got = tokio::time::timeout(Duration::from_secs(30), nas)
        .await
        .expect("the NAS hears the Disconnect-Requests")
        .unwrap();
    assert_eq!(got.len(), 5);
    // Every datagram names the session; a retransmission is the same packet, same Identifier.
    for g in &got {
        let p = Packet::parse(g).unwrap();
        assert_eq!(p.text(attr::USER_NAME), Some(user.as_str()));
        assert_eq!(p.text(attr::ACCT_SESSION_ID), Some("81a00001"));
        assert_eq!(p.ipv4(attr::FRAMED_IP_ADDRESS), Some([10, 5, 50, 7].into()));
        assert_eq!(p.text(attr::CALLING_STATION_ID), Some("AA:BB:CC:DD:EE:07"));
    }
    assert_eq!(got[1], got[2], "a retransmission is byte-identical");
    assert_eq!(got[3], got[4]);
    assert_ne!(got[0], got[1], "a new attempt is a new request");

    // Closed once, when the NAS confirmed; the job is done.
    let mut closed = false;
    for _ in 0..50 {
        let u = rig.user(&user).await;
        if !u["sessions"][0]["ended"].is_null() {
            assert_eq!(u["sessions"][0]["end-reason"], "expired", "{u}");
            assert_eq!(u["grants"][0]["end-reason"], "data", "{u}");
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(closed, "the session is closed after the ACK");
    // The NAS's Stop that follows is answered and changes nothing.
    let (ok, out) = radclient(
        acct,
        "acct",
        &format!("{session}, Acct-Status-Type = Stop, Acct-Terminate-Cause = Admin-Reset, Acct-Input-Octets = 3000000, Acct-Output-Octets = 2500000, Acct-Output-Gigawords = 1"),
    )
    .await;
    assert!(ok, "{out}");
    let ended = common::daemon::events(&rig.daemon.site, "r1", "session.ended").await;
    assert_eq!(ended.len(), 1, "{ended:?}");
    // And the customer is told why at the next login.
    let (ok, out) = radclient(rig.radius.auth, "auth", &pap(&user, &pw)).await;
    assert!(
        !ok && out.contains("Reply-Message = \"your data has run out\""),
        "{out}"
    );
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounting_stop_closes_the_session_and_accounting_on_closes_all_of_a_nas() {
    let rig = rig(3799, "").await;
    let acct = rig.radius.accounting;
    let (a, _) = rig.sale("R1", None).await;
    let (b, _) = rig.sale("R2", None).await;
    for (u, sid) in [(&a, "s-a"), (&b, "s-b")] {
        let (ok, out) = radclient(
            acct,
            "acct",
            &format!("User-Name = \"{u}\", Acct-Session-Id = \"{sid}\", Acct-Status-Type = Start"),
        )
        .await;
        assert!(ok, "{out}");
    }
    let (ok, out) = radclient(
        acct,
        "acct",
        &format!("User-Name = \"{a}\", Acct-Session-Id = \"s-a\", Acct-Status-Type = Stop, Acct-Terminate-Cause = Idle-Timeout, Acct-Input-Octets = 1000, Acct-Output-Octets = 2000"),
    )
    .await;
    assert!(ok, "{out}");
    let u = rig.user(&a).await;
    assert_eq!(u["sessions"][0]["end-reason"], "idle-timeout", "{u}");
    assert_eq!(u["data-left"], 10_000_000 - 3000, "{u}");
    assert!(rig.user(&b).await["sessions"][0]["ended"].is_null());
    let (ok, out) = radclient(
        acct,
        "acct",
        "Acct-Status-Type = Accounting-On, NAS-Identifier = \"r1\"",
    )
    .await;
    assert!(ok, "{out}");
    let u = rig.user(&b).await;
    assert_eq!(u["sessions"][0]["end-reason"], "nas-restart", "{u}");
    rig.stop().await;
}

/// With `kind = "radius"` the heartbeat's `router` block says a RADIUS NAS is configured (it
/// used to say "configured: false"); there is no connection whose reachability it could claim.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_heartbeat_reports_radius_as_the_router() {
    let rig = rig(3797, "").await;
    let v = hotspot_edge::uplink::mqtt::status::heartbeat(
        &rig.daemon.site,
        "r1",
        std::time::Instant::now(),
    )
    .await
    .unwrap();
    let router = &v["router"];
    assert_eq!(router["configured"], true, "{v}");
    assert_eq!(router["kind"], "radius", "{v}");
    assert!(router["reachable"].is_null(), "{v}");
    rig.stop().await;
}
