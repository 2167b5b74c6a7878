//! `ndsctl`, openNDS's control program, run as a child process: every call has a timeout, a busy
//! openNDS (exit code 4: another ndsctl holds the lock) is retried, and the exit codes become
//! typed errors. `ndsctl json` is parsed here; openNDS prints every value as a string, and
//! `custom` is printed unescaped (src/util.c: `fprintf(fp, "\"custom\":\"%s\",\n", ..., client->custom)`,
//! v9.10.0 to v10.3.1), which is why only plain text goes into ours (`custom_for`) and why a
//! list broken by someone else's is repaired before it is read (`repair_custom`).

use std::path::PathBuf;
use std::time::Duration;

use crate::nas::{Health, NasError as E};

#[derive(Debug, Clone)]
pub struct NdsctlSettings {
    pub program: PathBuf,
    /// Every call is abandoned (and the child killed) after this long.
    pub timeout: Duration,
    /// Exit code 4 (busy) is retried this many times, `busy_wait` times the attempt apart.
    pub busy_retries: u32,
    pub busy_wait: Duration,
    /// Bytes per unit of `upload_this_session` / `download_this_session`: 1024 in every openNDS
    /// from 9.6.0 through 10.x (src/util.c `download_bytes / 1024`); 1000 only in 9.4-9.5.
    pub counter_unit: u64,
}

/// One client of `ndsctl json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NdsClient {
    pub mac: String,
    pub ip: Option<String>,
    pub token: String,
    /// `Preauthenticated`, `Authenticated`, ...
    pub state: String,
    /// Who we authenticated it as (from `custom`); `None` when not ours.
    pub user: Option<String>,
    /// When openNDS will end the session by itself (Unix seconds), if it will.
    pub session_end: Option<i64>,
    pub upload_bytes: u64,
    pub download_bytes: u64,
}

impl NdsClient {
    /// Let through: `Authenticated`, or 10.x's `AuthBlocked` (its quota is used up and a
    /// throttle rate applies; src/fw.c of 10.x): still a session of this user.
    pub fn authenticated(&self) -> bool {
        self.state == "Authenticated" || self.state == "AuthBlocked"
    }

    /// At the portal, not let through yet: what a device is after openNDS restarted, or its
    /// session ended on openNDS's own timer or idle timeout, once it shows up again.
    pub fn waiting(&self) -> bool {
        self.state == "Preauthenticated"
    }
}

/// What ndsctl's exit code says (src/ndsctl.c).
#[derive(Debug, PartialEq, Eq)]
enum Exit {
    Ok,
    /// 1: "Client not found" / "Failed to authenticate".
    No,
    /// 4: the lock is held by another ndsctl: retry.
    Busy,
    /// 126/127, the shell's "not executable" and "not found": also what a failed exec looks like
    /// where the spawn cannot report it (qemu-user, a wrapper script).
    CannotRun(i32),
    /// 2 (abnormal reply), 3 (openNDS not running), 5-6 (lock file), anything else.
    Broken(i32),
}

fn exit_of(code: Option<i32>) -> Exit {
    match code {
        Some(0) => Exit::Ok,
        Some(1) => Exit::No,
        Some(4) => Exit::Busy,
        Some(c @ (126 | 127)) => Exit::CannotRun(c),
        Some(c) => Exit::Broken(c),
        None => Exit::Broken(-1),
    }
}

/// The `custom` string that marks a client as ours: `he=<user>` for names of plain characters,
/// `hex=<hex>` otherwise (ndsctl joins its arguments with commas, and openNDS prints `custom`
/// inside JSON quotes without escaping).
pub fn custom_for(user: &str) -> String {
    let plain = !user.is_empty()
        && user.len() <= 64
        && user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '-'));
    if plain {
        format!("he={user}")
    } else {
        format!("hex={}", hex::encode(user))
    }
}

/// The user a `custom` string names, if it is one of ours.
pub fn user_of(custom: &str) -> Option<String> {
    if let Some(u) = custom.strip_prefix("he=") {
        return (!u.is_empty()).then(|| u.to_string());
    }
    let bytes = hex::decode(custom.strip_prefix("hex=")?).ok()?;
    String::from_utf8(bytes).ok().filter(|u| !u.is_empty())
}

/// `ndsctl json` with every client's `custom` line escaped as JSON: openNDS prints the field
/// raw, one per line (`"custom":"...",`), so a `"` or `\` that another writer (a FAS, BinAuth,
/// a technician's `ndsctl auth`) put in one client's string breaks the whole list otherwise.
pub fn repair_custom(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        let indent = &body[..body.len() - body.trim_start().len()];
        let raw = body
            .trim_start()
            .strip_prefix("\"custom\":\"")
            .and_then(|r| r.strip_suffix("\","));
        match raw {
            Some(raw) => {
                out.push_str(indent);
                out.push_str("\"custom\":");
                out.push_str(&serde_json::Value::String(raw.to_string()).to_string());
                out.push(',');
                out.push_str(&line[body.len()..]);
            }
            None => out.push_str(line),
        }
    }
    out
}

/// Parses `ndsctl json` (all clients). Unknown fields are ignored; a missing MAC or a counter
/// that is not a number is an error (the output is not what we think it is).
pub fn parse_clients(text: &str, unit: u64) -> Result<Vec<NdsClient>, String> {
    let v: serde_json::Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            serde_json::from_str(&repair_custom(text)).map_err(|_| format!("not JSON: {e}"))?
        }
    };
    let Some(clients) = v.get("clients") else {
        return Err("no \"clients\" object".into());
    };
    let Some(clients) = clients.as_object() else {
        return Err("\"clients\" is not an object".into());
    };
    let mut out = Vec::with_capacity(clients.len());
    for (key, c) in clients {
        let field = |name: &str| c.get(name).and_then(|x| x.as_str()).map(str::trim);
        let mac = crate::domain::Mac::parse(field("mac").unwrap_or(key))
            .map_err(|e| format!("client {key}: {e}"))?;
        let counter = |name: &str| -> Result<u64, String> {
            match field(name) {
                None | Some("") | Some("null") => Ok(0),
                Some(n) => n
                    .parse::<u64>()
                    .map(|n| n.saturating_mul(unit))
                    .map_err(|_| format!("client {key}: {name} {n:?} is not a number")),
            }
        };
        out.push(NdsClient {
            mac: mac.as_str().to_string(),
            ip: field("ip").filter(|s| !s.is_empty()).map(str::to_string),
            token: field("token").unwrap_or("none").to_string(),
            state: field("state").unwrap_or("").to_string(),
            user: field("custom").and_then(user_of),
            session_end: field("session_end").and_then(|t| t.parse().ok()),
            upload_bytes: counter("upload_this_session")?,
            download_bytes: counter("download_this_session")?,
        });
    }
    Ok(out)
}

/// What `ndsctl status` says: health, and whether openNDS authenticates a client it does not
/// list (`Preemptive Authentication is Enabled`/`Disabled`; src/util.c, 9.10.0 and 10.3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NdsStatus {
    pub health: Health,
    pub preemptive: Option<bool>,
}

/// `ndsctl status` is text (`Version: 10.2.0`, `Uptime: 3d 4h ...`, `Gateway Name: ...`).
pub fn parse_status(text: &str) -> NdsStatus {
    let preemptive = text.lines().find_map(|l| {
        let l = l.trim();
        let rest = l.strip_prefix("Preemptive Authentication is ")?;
        match rest.trim() {
            "Enabled" => Some(true),
            "Disabled" => Some(false),
            _ => None,
        }
    });
    NdsStatus {
        health: parse_health(text),
        preemptive,
    }
}

fn parse_health(text: &str) -> Health {
    let get = |key: &str| {
        text.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim().eq_ignore_ascii_case(key)).then(|| v.trim().to_string())
        })
    };
    // 9.10 prints the name in brackets with the node id: `[ rig Node:0ade527c6648  ]`.
    let identity = get("Gateway Name").unwrap_or_default();
    let identity = identity
        .strip_prefix('[')
        .and_then(|i| i.strip_suffix(']'))
        .map_or(identity.as_str(), str::trim)
        .to_string();
    Health {
        identity,
        version: get("Version").unwrap_or_default(),
        board: "openNDS".into(),
        cpu_load: None,
        free_memory: None,
        total_memory: None,
        uptime: get("Uptime"),
    }
}

pub struct Ndsctl {
    pub settings: NdsctlSettings,
}

impl Ndsctl {
    /// Runs `ndsctl ARGS`: stdout on exit 0, `Ok(None)` on exit 1 (openNDS said no).
    async fn run(&self, args: &[&str]) -> Result<Option<String>, E> {
        let s = &self.settings;
        let command = format!("ndsctl {}", args.first().copied().unwrap_or(""));
        let mut attempt = 0;
        loop {
            let child = tokio::process::Command::new(&s.program)
                .args(args)
                .stdin(std::process::Stdio::null())
                .kill_on_drop(true)
                .output();
            let out = match tokio::time::timeout(s.timeout, child).await {
                Err(_) => {
                    return Err(E::Timeout {
                        command,
                        ms: s.timeout.as_millis() as u64,
                    })
                }
                Ok(Err(e)) => {
                    return Err(E::Unreachable(format!(
                        "cannot run {}: {e}",
                        s.program.display()
                    )))
                }
                Ok(Ok(out)) => out,
            };
            let text = |b: &[u8]| String::from_utf8_lossy(b).trim().to_string();
            let mut exit = exit_of(out.status.code());
            // Exit 3 with "Connection refused": the socket is there but its queue is full
            // (openNDS answers one request at a time, running shell scripts for some): busy.
            if exit == Exit::Broken(3)
                && String::from_utf8_lossy(&out.stderr).contains("Connection refused")
            {
                exit = Exit::Busy;
            }
            match exit {
                Exit::Ok => return Ok(Some(text(&out.stdout))),
                Exit::No => return Ok(None),
                Exit::Busy if attempt < s.busy_retries => {
                    attempt += 1;
                    tokio::time::sleep(s.busy_wait * attempt).await;
                }
                Exit::Busy => {
                    return Err(E::Unreachable(format!(
                        "{command}: openNDS busy (exit {}) after {} tries",
                        out.status.code().unwrap_or(-1),
                        attempt + 1
                    )))
                }
                Exit::CannotRun(code) => {
                    return Err(E::Unreachable(format!(
                        "cannot run {} (exit {code}: not found or not executable)",
                        s.program.display()
                    )))
                }
                Exit::Broken(code) => {
                    let mut why = text(&out.stderr);
                    if why.is_empty() {
                        why = text(&out.stdout);
                    }
                    return Err(E::Unreachable(format!("{command} exited {code}: {why}")));
                }
            }
        }
    }

    pub async fn clients(&self) -> Result<Vec<NdsClient>, E> {
        let text = self.run(&["json"]).await?.unwrap_or_default();
        parse_clients(&text, self.settings.counter_unit)
            .map_err(|e| E::Unconfirmed(format!("ndsctl json: unreadable output: {e}")))
    }

    /// `ndsctl auth TARGET minutes up-kb/s down-kb/s up-KiB down-KiB custom`; 0 is openNDS's
    /// global setting for each (see `auth_args`).
    pub async fn auth(&self, target: &str, a: &AuthArgs) -> Result<(), E> {
        let n = |v: u64| v.to_string();
        let args = [
            "auth",
            target,
            &n(a.minutes),
            &n(a.upload_kbps),
            &n(a.download_kbps),
            &n(a.upload_quota_kb),
            &n(a.download_quota_kb),
            &a.custom,
        ];
        match self.run(&args).await? {
            Some(_) => Ok(()),
            None => Err(E::Trap {
                command: "ndsctl auth".into(),
                message: format!(
                    "openNDS refused to authenticate {target} (is it connected to the portal?)"
                ),
            }),
        }
    }

    /// `ndsctl deauth TARGET`: false when openNDS did not know it.
    pub async fn deauth(&self, target: &str) -> Result<bool, E> {
        Ok(self.run(&["deauth", target]).await?.is_some())
    }

    pub async fn status(&self) -> Result<NdsStatus, E> {
        match self.run(&["status"]).await? {
            Some(t) => Ok(parse_status(&t)),
            None => Err(E::Unreachable("ndsctl status: openNDS said no".into())),
        }
    }
}

/// The limits of one `ndsctl auth`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthArgs {
    pub minutes: u64,
    pub upload_kbps: u64,
    pub download_kbps: u64,
    pub upload_quota_kb: u64,
    pub download_quota_kb: u64,
    pub custom: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    const JSON: &str = r#"{
  "client_list_length":"2",
  "clients":{
    "aa:bb:cc:00:00:01":{
      "gatewayname":"Cafe%20Hotspot",
      "mac":"aa:bb:cc:00:00:01",
      "ip":"192.168.1.10",
      "session_start":"1700000000",
      "session_end":"null",
      "token":"9f2c01ab",
      "state":"Authenticated",
      "custom":"he=V-7K2Q",
      "upload_quota":"null",
      "upload_this_session":"12",
      "upload_session_avg":"0.50",
      "download_this_session":"3400",
      "download_session_avg":"1.20"
    },
    "aa:bb:cc:00:00:02":{
      "mac":"aa:bb:cc:00:00:02",
      "ip":"192.168.1.11",
      "token":"77aa",
      "state":"Preauthenticated",
      "custom":"none",
      "upload_this_session":"0",
      "download_this_session":"0"
    }
  }
}"#;

    #[test]
    fn json_clients_parse_with_counters_in_units() {
        let c = parse_clients(JSON, 1000).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].mac, "AA:BB:CC:00:00:01");
        assert_eq!(c[0].user.as_deref(), Some("V-7K2Q"));
        assert_eq!(
            (c[0].upload_bytes, c[0].download_bytes),
            (12_000, 3_400_000)
        );
        assert!(c[0].authenticated());
        assert_eq!(c[1].user, None);
        assert_eq!(c[0].session_end, None);
        assert!(!c[1].authenticated());
        assert_eq!(
            parse_clients(JSON, 1024).unwrap()[0].upload_bytes,
            12 * 1024
        );
    }

    #[test]
    fn bad_json_is_an_error_not_a_panic() {
        assert!(parse_clients("", 1000).unwrap_err().contains("not JSON"));
        assert!(parse_clients("{}", 1000).unwrap_err().contains("clients"));
        let bad = JSON.replace("\"3400\"", "\"lots\"");
        assert!(parse_clients(&bad, 1000)
            .unwrap_err()
            .contains("download_this_session \"lots\""));
        let bad = JSON.replace("aa:bb:cc:00:00:02", "zz");
        assert!(parse_clients(&bad, 1000).unwrap_err().contains("MAC"));
        // An empty client list (openNDS prints the object with nothing in it).
        let empty = "{\n  \"client_list_length\":\"0\",\n  \"clients\":{\n  }\n}\n";
        assert!(parse_clients(empty, 1000).unwrap().is_empty());
    }

    /// openNDS prints `custom` raw: a quote or backslash in one client's string is repaired,
    /// and every client is read with its string as written.
    #[test]
    fn a_raw_quote_in_one_custom_string_is_repaired() {
        let broken = JSON.replace(
            "\"custom\":\"none\"",
            "\"custom\":\"fixed \"by hand\", c:\\temp\"",
        );
        assert!(serde_json::from_str::<serde_json::Value>(&broken).is_err());
        let c = parse_clients(&broken, 1024).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].user.as_deref(), Some("V-7K2Q"));
        assert_eq!(c[1].user, None);
        let v: serde_json::Value = serde_json::from_str(&repair_custom(&broken)).unwrap();
        assert_eq!(
            v["clients"]["aa:bb:cc:00:00:02"]["custom"],
            "fixed \"by hand\", c:\\temp"
        );
        // Valid lines are left alone, byte for byte.
        assert_eq!(repair_custom(JSON), JSON);
    }

    #[test]
    fn custom_strings_round_trip() {
        for u in ["V-7K2Q", "alice@cafe", "a,b", "x\"y", "Ωmega", "with space"] {
            let c = custom_for(u);
            assert!(!c.contains([',', '"', ' ']), "{c}");
            assert_eq!(user_of(&c).as_deref(), Some(u));
        }
        assert_eq!(custom_for("V-7K2Q"), "he=V-7K2Q");
        assert_eq!(user_of("none"), None);
        assert_eq!(user_of("he="), None);
        assert_eq!(user_of("hex=zz"), None);
    }

    #[test]
    fn status_text_gives_health() {
        let st = parse_status(
            "==================\nopenNDS Status\n====\nVersion: 10.2.0\nUptime: 1d 2h 3m 4s\nGateway Name: Cafe Hotspot\n",
        );
        let h = &st.health;
        assert_eq!(h.version, "10.2.0");
        assert_eq!(h.identity, "Cafe Hotspot");
        assert_eq!(h.uptime.as_deref(), Some("1d 2h 3m 4s"));
        assert_eq!(st.preemptive, None);
        // As openNDS 9.10.0 prints it (recorded from Debian 12's package in the test rig).
        let st = parse_status(
            "==================\nopenNDS Status\n====\nVersion: 9.10.0\nUptime: 5s\nGateway Name: [ rig Node:0ade527c6648  ]\nDebug Level: [ 1 ]\nManaged interface: br-lan\nPreemptive Authentication is Disabled\nBinauth: Disabled\n",
        );
        assert_eq!(st.health.identity, "rig Node:0ade527c6648");
        assert_eq!(st.preemptive, Some(false));
        assert_eq!(
            parse_status("Preemptive Authentication is Enabled\n").preemptive,
            Some(true)
        );
    }

    #[test]
    fn exit_codes() {
        assert_eq!(exit_of(Some(0)), Exit::Ok);
        assert_eq!(exit_of(Some(1)), Exit::No);
        assert_eq!(exit_of(Some(4)), Exit::Busy);
        assert_eq!(exit_of(Some(3)), Exit::Broken(3));
        assert_eq!(exit_of(None), Exit::Broken(-1));
        assert_eq!(exit_of(Some(127)), Exit::CannotRun(127));
        assert_eq!(exit_of(Some(126)), Exit::CannotRun(126));
    }
}
