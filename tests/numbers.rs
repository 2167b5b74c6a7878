//! Property tests for every parser of numbers that come from outside: durations and sizes
//! (config, CLI, MQTT args), RFC 3339 times (commands, the CLI), openNDS's and RouterOS's byte
//! counters, and the numbers in a signed MQTT command. Each runs thousands of generated inputs,
//! valid and hostile, from a fixed seed (a failure names its input and is repeatable): nothing
//! panics, nothing wraps, and what is accepted is exactly the number written.

use hotspot_edge::clock::{parse_rfc3339, rfc3339, Now};
use hotspot_edge::engine::Command;
use hotspot_edge::units::{parse_bytes, parse_span, SPAN_MAX_MS};
use hotspot_edge::uplink::mqtt::remote::{self, Checks, RequestKind};

/// xorshift64*: small, fast, and the same sequence on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }
    /// A decimal number of 1 to `max_digits` digits, sometimes with leading zeros.
    fn digits(&mut self, max_digits: u64) -> String {
        let n = 1 + self.below(max_digits);
        (0..n)
            .map(|_| char::from(b'0' + self.below(10) as u8))
            .collect()
    }
    /// A byte counter as a NAS might print it: mostly up to 25 digits (past u64::MAX), one in
    /// four a short run of signs, dots, spaces and letters.
    fn counter_text(&mut self) -> String {
        if self.below(4) == 0 {
            let len = 1 + self.below(8);
            self.text("0123456789-+. xe", len)
        } else {
            self.digits(25)
        }
    }

    /// A string of `len` characters drawn from `alphabet`.
    fn text(&mut self, alphabet: &str, len: u64) -> String {
        let a: Vec<char> = alphabet.chars().collect();
        (0..len)
            .map(|_| a[self.below(a.len() as u64) as usize])
            .collect()
    }
}

#[test]
fn spans_are_exact_or_refused_never_wrapped() {
    let mut r = Rng(0x5EED_0001);
    let units: [(&str, i128); 5] = [
        ("ms", 1),
        ("s", 1000),
        ("m", 60_000),
        ("h", 3_600_000),
        ("d", 86_400_000),
    ];
    for _ in 0..20_000 {
        let n = r.digits(22);
        let (unit, mult) = units[r.below(5) as usize];
        let text = format!("{n}{unit}");
        let want = n.parse::<i128>().unwrap() * mult;
        match parse_span(&text) {
            Ok(s) => assert_eq!(i128::from(s.ms()), want, "{text}"),
            Err(e) => assert!(
                want > i128::from(SPAN_MAX_MS),
                "{text} refused although in range: {e}"
            ),
        }
    }
    for _ in 0..20_000 {
        let len = r.below(24);
        let text = r.text("0123456789 .+-_eEdhmsuµx\u{0}9", len);
        if let Ok(s) = parse_span(&text) {
            assert!(
                (0..=SPAN_MAX_MS).contains(&s.ms()),
                "{text:?} -> {}",
                s.ms()
            );
        }
    }
}

#[test]
fn sizes_are_in_range_or_refused() {
    let mut r = Rng(0x5EED_0002);
    let units = [
        "", "B", "KB", "MB", "GB", "TB", "KiB", "MiB", "GiB", "TiB", "kb", "XB",
    ];
    for _ in 0..20_000 {
        let whole = r.digits(21);
        let frac = if r.below(3) == 0 {
            format!(".{}", r.digits(4))
        } else {
            String::new()
        };
        let text = format!("{whole}{frac}{}", r.pick(&units));
        if let Ok(b) = parse_bytes(&text) {
            assert!(
                b.0 >= 1 && b.0 < 9_000_000_000_000_000_000,
                "{text} -> {}",
                b.0
            );
        }
    }
    for _ in 0..20_000 {
        let len = r.below(20);
        let text = r.text("0123456789.eE+-KMGTiBb x", len);
        if let Ok(b) = parse_bytes(&text) {
            assert!(b.0 < 9_000_000_000_000_000_000, "{text:?} -> {}", b.0);
        }
    }
    // Exact for whole numbers of a unit, at the edge of the range too.
    assert_eq!(parse_bytes("8EiB").ok().map(|b| b.0), None, "out of range");
    assert_eq!(
        parse_bytes("8000000TB").unwrap().0,
        8_000_000_000_000_000_000
    );
}

#[test]
fn rfc3339_times_round_trip_and_junk_is_refused_without_panicking() {
    let mut r = Rng(0x5EED_0003);
    // Year 9999's last millisecond.
    let max = 253_402_300_799_999u64;
    for _ in 0..50_000 {
        let ms = i64::try_from(r.below(max + 1)).unwrap();
        let text = rfc3339(ms);
        assert_eq!(parse_rfc3339(&text), Some(ms), "{text}");
    }
    for _ in 0..50_000 {
        let base = rfc3339(i64::try_from(r.below(max)).unwrap());
        let mut b = base.into_bytes();
        let at = r.below(b.len() as u64) as usize;
        b[at] = r
            .pick(&["0", "9", "-", ":", "T", "Z", "+", ".", "x", "\u{7f}"])
            .as_bytes()[0];
        let text = String::from_utf8(b).unwrap();
        if let Some(ms) = parse_rfc3339(&text) {
            // A mutation can make another valid time (a digit changed), within years 0 to
            // 9999 (a day either side for offsets), never a wrapped one.
            assert!(
                (-62_167_219_200_000 - 86_400_000..=max as i64 + 86_400_000).contains(&ms),
                "{text} -> {ms}"
            );
        }
    }
}

#[cfg(feature = "opennds")]
#[test]
fn opennds_counters_are_exact_saturated_or_refused() {
    use hotspot_edge::opennds::ndsctl::parse_clients;
    let mut r = Rng(0x5EED_0004);
    for _ in 0..10_000 {
        let up = r.counter_text();
        let unit = if r.below(2) == 0 { 1000 } else { 1024 };
        let text = serde_json::json!({"clients": {"aa:bb:cc:dd:ee:01": {
            "mac": "aa:bb:cc:dd:ee:01", "ip": "10.0.0.2", "token": "t", "state": "Authenticated",
            "upload_this_session": up, "download_this_session": "7"}}})
        .to_string();
        // An empty counter is 0 (openNDS prints one before the first traffic).
        let as_u64 = match up.trim() {
            "" => Ok(0),
            t => t.parse::<u64>(),
        };
        match (parse_clients(&text, unit), as_u64) {
            (Ok(c), Ok(n)) => {
                assert_eq!(c[0].upload_bytes, n.saturating_mul(unit), "{up}");
                assert_eq!(c[0].download_bytes, 7 * unit);
            }
            (Err(e), Err(_)) => assert!(e.contains("upload_this_session"), "{e}"),
            (got, want) => panic!("{up:?}: parsed {got:?}, as u64 {want:?}"),
        }
    }
}

#[test]
fn routeros_counters_are_exact_or_zero() {
    use hotspot_edge::routeros::backend::active_session;
    let mut r = Rng(0x5EED_0005);
    for _ in 0..10_000 {
        let v = r.counter_text();
        let row: hotspot_edge::routeros::client::Row = [
            (".id", "*1"),
            ("user", "u1"),
            ("bytes-in", v.as_str()),
            ("bytes-out", "5"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let s = active_session(&row).unwrap();
        assert_eq!(s.bytes_in, v.parse::<u64>().unwrap_or(0), "{v:?}");
        assert_eq!(s.bytes_out, 5);
    }
}

#[test]
fn numbers_in_signed_commands_are_taken_exactly_or_refused() {
    let mut r = Rng(0x5EED_0006);
    let key = b"numbers-test-key-0123456789";
    let now = Now {
        timeline_ms: 0,
        wall_ms: parse_rfc3339("2026-12-03T10:00:00Z").unwrap(),
        trusted: true,
    };
    let checks = Checks {
        key,
        site: "s1",
        max_bytes: 65_536,
        max_age_ms: 3_600_000,
    };
    let amounts = [
        "0",
        "1",
        "-1",
        "1.5",
        "1e3",
        "9223372036854775807",
        "9223372036854775808",
        "18446744073709551615",
        "18446744073709551616",
        "340282366920938463463374607431768211456",
        "-9223372036854775809",
    ];
    for i in 0..5_000 {
        let amount = if i < amounts.len() {
            amounts[i].to_string()
        } else {
            let sign = if r.below(5) == 0 { "-" } else { "" };
            // A JSON number: no leading zeros.
            let d = r.digits(24);
            let d = d.trim_start_matches('0');
            format!("{sign}{}", if d.is_empty() { "0" } else { d })
        };
        let body = format!(
            r#"{{"id":"c-{i}","site":"s1","issued-at":"2026-12-03T10:00:00Z","type":"payment.confirmed","args":{{"provider":"mpesa","reference":"R{i}","plan":"1h","amount":{amount}}}}}"#
        );
        let env = remote::envelope(key, &body);
        let want: Option<u64> = amount.parse().ok();
        match remote::check(env.as_bytes(), &checks, &now) {
            Ok(req) => match req.kind {
                RequestKind::Apply(Command::PaymentConfirmed(p)) => {
                    assert_eq!(p.amount, want, "{amount}");
                    assert!(want.is_some(), "{amount} accepted");
                }
                other => panic!("{amount}: {other:?}"),
            },
            Err(refusal) => {
                assert_eq!(refusal.code, "bad-args", "{amount}: {refusal:?}");
                assert!(want.is_none(), "{amount} refused: {}", refusal.message);
            }
        }
    }
}
