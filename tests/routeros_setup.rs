//! `hotspot-edge routeros-script`: the generated script passes the checker (menus, verbs and
//! arguments of RouterOS v7), carries what the config says, and its hotspot profiles, sent over
//! the API to the simulator, are exactly what the daemon's backend expects.
#![cfg(feature = "demo")]

use hotspot_edge::config;
use hotspot_edge::routeros::client::Call;
use hotspot_edge::routeros::setup::{check, script, ScriptOptions};
use hotspot_edge::routeros::sim::model::PrintForms;

mod common;

fn config_with_radius(dir: &std::path::Path) -> config::Config {
    std::fs::write(dir.join("router.pass"), "router-secret-1\n").unwrap();
    std::fs::write(dir.join("radius.secret"), "k3J9-vq2L-x8Pz-0aTm\n").unwrap();
    let text = format!(
        r#"[site]
id = "setup"
[store]
path = "{d}/h.db"
[router]
kind = "routeros"
address = "192.168.88.1:8729"
username = "edge"
password-file = "{d}/router.pass"
tls-certificate-sha256 = "{fp}"
[radius]
auth-listen = "0.0.0.0:1812"
accounting-listen = "0.0.0.0:1813"
[[radius.clients]]
address = "192.168.88.1"
secret-file = "{d}/radius.secret"
kind = "mikrotik"
[[plans]]
id = "1h"
name = "1 hour"
price = 1000
currency = "KES"
time = "1h"
rate-limit = "2M/5M"
devices = 2
idle-timeout = "5m"
[[plans]]
id = "day"
name = "a day \"special\""
price = 5000
currency = "KES"
time = "24h"
"#,
        d = dir.display(),
        fp = "ab".repeat(32)
    );
    config::parse(&text, "setup.toml").unwrap().config
}

/// The API form of a script line: `/ip hotspot user profile add name="x" a=b` becomes the
/// command `/ip/hotspot/user/profile/add` with its attributes unquoted.
fn api_call(line: &str) -> Call {
    let (menu, rest) = line.split_once(" add ").unwrap();
    let mut call = Call::new(&format!("{}/add", menu.replace(' ', "/")));
    let mut rest = rest.trim();
    while !rest.is_empty() {
        let (k, after) = rest.split_once('=').unwrap();
        let (v, next) = if let Some(q) = after.strip_prefix('"') {
            let end = q.find('"').unwrap();
            (&q[..end], &q[end + 1..])
        } else {
            after.split_once(' ').unwrap_or((after, ""))
        };
        call = call.attr(k, v);
        rest = next.trim();
    }
    call
}

#[tokio::test]
async fn the_script_is_valid_and_its_profiles_are_what_the_daemon_expects() {
    let dir = tempfile::tempdir().unwrap();
    let c = config_with_radius(dir.path());
    let opts = ScriptOptions {
        daemon_address: "192.168.88.2".parse().unwrap(),
        include_secrets: true,
    };
    let s = script(&c, &opts).unwrap();
    let commands = check(&s).unwrap_or_else(|e| panic!("{e}\n{s}"));
    assert!(commands >= 15, "{s}");
    // Least privilege: api, read, write on; policy, sensitive, ftp, winbox, password off.
    let group = s
        .lines()
        .find(|l| l.starts_with("/user group add"))
        .unwrap();
    assert!(group.contains("policy=api,read,write,"), "{group}");
    for off in ["!policy", "!sensitive", "!ftp", "!winbox", "!password"] {
        assert!(group.contains(off), "{off} missing: {group}");
    }
    assert!(s.contains(r#"/user add name="edge" group="edge" address=192.168.88.2/32 password="router-secret-1""#), "{s}");
    assert!(s.contains("/ip service set api-ssl disabled=no port=8729 certificate=\"hotspot-edge-api\" address=192.168.88.2"), "{s}");
    assert!(s.contains("common-name=\"192.168.88.1\""), "{s}");
    assert!(
        s.contains(r#"secret="k3J9-vq2L-x8Pz-0aTm" authentication-port=1812 accounting-port=1813"#),
        "{s}"
    );
    assert!(
        s.contains("require-message-auth=yes-for-request-resp"),
        "{s}"
    );
    assert!(
        s.contains("/radius incoming set accept=yes port=3799"),
        "{s}"
    );
    // Without --include-secrets, nothing secret is printed.
    let safe = script(
        &c,
        &ScriptOptions {
            include_secrets: false,
            ..opts
        },
    )
    .unwrap();
    assert!(
        !safe.contains("router-secret-1") && !safe.contains("k3J9"),
        "{safe}"
    );
    check(&safe).unwrap();

    // The profile lines, applied over the API, make the profiles the backend would make.
    let (sim, api) = common::sim::sim_and_api(PrintForms::V7, false).await;
    for line in s
        .lines()
        .filter(|l| l.starts_with("/ip hotspot user profile add"))
    {
        // mikrotik-rs reports a successful `add` as a protocol-error trap (protocols.md §3): the
        // model is what tells.
        let _ = api.run(&api_call(line)).await;
    }
    let m = sim.model();
    let p = m.profiles.by("name", "1h").unwrap();
    assert_eq!(p.get("rate-limit"), Some("2M/5M"));
    assert_eq!(p.get("shared-users"), Some("2"));
    assert_eq!(p.get("idle-timeout"), Some("5m"));
    assert_eq!(p.get("comment"), Some("managed by hotspot-edge"));
    assert_eq!(
        m.profiles.by("name", "day").unwrap().get("shared-users"),
        Some("1")
    );
}

#[test]
fn a_broken_script_is_refused_with_its_line() {
    let e = check(
        "/user group add name=x policy=api\n/ip hotspot user profile add name=\"x shared-users=1\n",
    )
    .unwrap_err();
    assert!(e.starts_with("line 2: unterminated string"), "{e}");
}
