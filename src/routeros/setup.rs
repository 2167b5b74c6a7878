//! `hotspot-edge routeros-script`: the RouterOS v7 commands that prepare a router for the
//! daemon, generated from the config, and a checker for the script's syntax and arguments
//! (used by the tests and by `routeros-script --check FILE`).
//!
//! What it sets up: a least-privilege group (api, read, write: no policy, sensitive, ftp, winbox,
//! password, ...), a dedicated user allowed only from the daemon's address, API-SSL with a
//! self-signed certificate (its fingerprint goes into `tls-certificate-sha256`), the service
//! allow-list, a hotspot user profile per plan, and in RADIUS mode the `/radius` entry with
//! `require-message-auth`, `/radius incoming accept=yes` and RADIUS on the hotspot profiles.
//! Re-running it is safe: what it adds it first removes by name.

use std::fmt::Write;

use crate::config::{Config, RouterKind};

pub struct ScriptOptions {
    /// The daemon's address as the router sees it (allow-lists).
    pub daemon_address: std::net::IpAddr,
    /// Put the real password and RADIUS secrets into the script (else placeholders).
    pub include_secrets: bool,
}

/// The group's policies: exactly these on, every other one off.
const POLICIES_ON: &[&str] = &["api", "read", "write"];
const POLICIES_OFF: &[&str] = &[
    "local",
    "telnet",
    "ssh",
    "ftp",
    "reboot",
    "policy",
    "test",
    "winbox",
    "password",
    "web",
    "sniff",
    "sensitive",
    "romon",
];

/// A RouterOS string literal: quotes, with `\` `"` `$` escaped (`$` starts a variable).
fn quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' | '$' => {
                q.push('\\');
                q.push(c);
            }
            '\n' => q.push_str("\\n"),
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

const TAG: &str = "managed by hotspot-edge";

pub fn script(c: &Config, o: &ScriptOptions) -> Result<String, String> {
    let mut s = String::new();
    let user = &c.router.username;
    let daemon = o.daemon_address;
    let host = match c.router.host() {
        "" => "router",
        h => h,
    };
    let password = if o.include_secrets && c.router.kind == RouterKind::Routeros {
        super::password(&c.router)?.expose().to_string()
    } else {
        "CHANGE-ME-to-the-contents-of-password-file".to_string()
    };
    let w = &mut s;
    let _ = writeln!(
        w,
        "# hotspot-edge {}: prepare this RouterOS v7 router for site {}",
        env!("CARGO_PKG_VERSION"),
        c.site_id()
    );
    let _ = writeln!(
        w,
        "# Paste into a terminal (or /import). Safe to run again."
    );
    let _ = writeln!(
        w,
        "# 1. A group that may use the API, read and write: nothing else."
    );
    let _ = writeln!(w, "/user remove [find name={}]", quote(user));
    let _ = writeln!(w, "/user group remove [find name={}]", quote(user));
    let policy: Vec<String> = POLICIES_ON
        .iter()
        .map(|p| p.to_string())
        .chain(POLICIES_OFF.iter().map(|p| format!("!{p}")))
        .collect();
    let _ = writeln!(
        w,
        "/user group add name={} policy={} comment={}",
        quote(user),
        policy.join(","),
        quote(TAG)
    );
    let _ = writeln!(
        w,
        "# 2. The daemon's user, allowed only from the daemon's address."
    );
    let _ = writeln!(
        w,
        "/user add name={} group={} address={daemon}/{} password={} comment={}",
        quote(user),
        quote(user),
        if daemon.is_ipv4() { 32 } else { 128 },
        quote(&password),
        quote(TAG)
    );
    let _ = writeln!(
        w,
        "# 3. API-SSL with a self-signed certificate; the plain API off."
    );
    let _ = writeln!(w, "/certificate remove [find name=\"hotspot-edge-api\"]");
    let _ = writeln!(w, "/certificate add name=\"hotspot-edge-api\" common-name={} days-valid=3650 key-size=2048 key-usage=digital-signature,key-encipherment,tls-server", quote(host));
    let _ = writeln!(w, "/certificate sign \"hotspot-edge-api\"");
    let _ = writeln!(w, ":delay 10s");
    let _ = writeln!(w, "/ip service set api-ssl disabled=no port=8729 certificate=\"hotspot-edge-api\" address={daemon} tls-version=only-1.2");
    let _ = writeln!(w, "/ip service set api disabled=yes");
    let _ = writeln!(w, "# Put this in [router] tls-certificate-sha256:");
    let _ = writeln!(
        w,
        ":put [/certificate get [find name=\"hotspot-edge-api\"] fingerprint]"
    );
    let _ = writeln!(
        w,
        "# 4. One hotspot user profile per plan (the daemon keeps them in step too)."
    );
    for p in &c.plans {
        let id = p.id.get_ref().to_string();
        let mut line = format!(
            "/ip hotspot user profile add name={} shared-users={}",
            quote(&id),
            p.devices.get_ref()
        );
        if let Some(r) = &p.rate_limit {
            let _ = write!(line, " rate-limit={}", quote(r.get_ref()));
        }
        if let Some(t) = p.idle_timeout {
            let _ = write!(line, " idle-timeout={}", crate::units::format_span(t));
        }
        let _ = writeln!(
            w,
            "/ip hotspot user profile remove [find name={}]",
            quote(&id)
        );
        let _ = writeln!(w, "{line} comment={}", quote(TAG));
    }
    if let Some(r) = &c.radius {
        let r = r.get_ref();
        let secret = match (o.include_secrets, r.clients.first()) {
            (true, Some(cl)) => {
                crate::secret::resolve("secret", cl.secret.as_ref(), cl.secret_file.as_deref())?
                    .0
                    .map(|s| s.expose().to_string())
                    .unwrap_or_default()
            }
            _ => "CHANGE-ME-to-the-radius-secret".to_string(),
        };
        let _ = writeln!(
            w,
            "# 5. RADIUS: this daemon answers the hotspot's logins and accounting."
        );
        let _ = writeln!(w, "/radius remove [find comment={}]", quote(TAG));
        let _ = writeln!(
            w,
            "/radius add service=hotspot address={daemon} secret={} authentication-port={} accounting-port={} timeout=3s require-message-auth=yes-for-request-resp comment={}",
            quote(&secret),
            r.auth_listen.port(),
            r.accounting_listen.port(),
            quote(TAG)
        );
        let port = r.clients.first().map(|c| c.disconnect_port).unwrap_or(3799);
        let _ = writeln!(w, "/radius incoming set accept=yes port={port}");
        let _ = writeln!(
            w,
            "/ip hotspot profile set [find] use-radius=yes radius-accounting=yes radius-interim-update={}",
            crate::units::format_span(r.acct_interim_interval)
        );
    }
    Ok(s)
}

/// The menus and commands the script may use, with the arguments each takes (from the RouterOS
/// v7 manual). `[find ...]` is accepted where an item is selected.
const KNOWN: &[(&str, &str, &[&str])] = &[
    ("/user", "remove", &[]),
    (
        "/user",
        "add",
        &[
            "name", "group", "address", "password", "comment", "disabled",
        ],
    ),
    ("/user group", "remove", &[]),
    ("/user group", "add", &["name", "policy", "skin", "comment"]),
    ("/certificate", "remove", &[]),
    (
        "/certificate",
        "add",
        &[
            "name",
            "common-name",
            "days-valid",
            "key-size",
            "key-usage",
            "subject-alt-name",
            "country",
            "organization",
        ],
    ),
    ("/certificate", "sign", &["ca", "name"]),
    (
        "/ip service",
        "set",
        &[
            "disabled",
            "port",
            "certificate",
            "address",
            "tls-version",
            "vrf",
        ],
    ),
    ("/ip hotspot user profile", "remove", &[]),
    (
        "/ip hotspot user profile",
        "add",
        &[
            "name",
            "shared-users",
            "rate-limit",
            "idle-timeout",
            "keepalive-timeout",
            "session-timeout",
            "address-pool",
            "comment",
        ],
    ),
    (
        "/ip hotspot profile",
        "set",
        &[
            "use-radius",
            "radius-accounting",
            "radius-interim-update",
            "login-by",
        ],
    ),
    ("/radius", "remove", &[]),
    (
        "/radius",
        "add",
        &[
            "service",
            "address",
            "secret",
            "authentication-port",
            "accounting-port",
            "timeout",
            "require-message-auth",
            "src-address",
            "comment",
        ],
    ),
    ("/radius incoming", "set", &["accept", "port"]),
];

/// Checks a script line by line: quoting and brackets balanced, every command a known menu and
/// verb, every argument one that command takes, group policies known. Errors say the line.
pub fn check(text: &str) -> Result<usize, String> {
    let mut commands = 0;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let at = |m: String| format!("line {}: {m}: {line}", i + 1);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let words = tokens(line).map_err(at)?;
        if let Some(cmd) = line.strip_prefix(':') {
            let ok = cmd.starts_with("delay ") || cmd.starts_with("put ");
            if !ok {
                return Err(at("only :delay and :put are expected".into()));
            }
            continue;
        }
        if !line.starts_with('/') {
            return Err(at("a command starts with / (its menu)".into()));
        }
        let verb_at = words
            .iter()
            .position(|w| matches!(w.as_str(), "add" | "set" | "remove" | "sign"))
            .ok_or_else(|| at("no add/set/remove/sign".into()))?;
        let menu = words[..verb_at].join(" ");
        let verb = &words[verb_at];
        let Some((_, _, args)) = KNOWN.iter().find(|(m, v, _)| *m == menu && v == verb) else {
            return Err(at(format!("unknown command {menu} {verb}")));
        };
        for w in &words[verb_at + 1..] {
            if w.starts_with('[') || (w.starts_with('"') && verb == "sign") {
                continue;
            }
            if matches!(menu.as_str(), "/ip service") && !w.contains('=') {
                if !matches!(
                    w.as_str(),
                    "api" | "api-ssl" | "www" | "www-ssl" | "ssh" | "telnet" | "ftp" | "winbox"
                ) {
                    return Err(at(format!("unknown service {w}")));
                }
                continue;
            }
            let Some((k, v)) = w.split_once('=') else {
                return Err(at(format!("{w:?} is not key=value")));
            };
            if !args.contains(&k) {
                return Err(at(format!("{menu} {verb} takes no argument {k}")));
            }
            if v.is_empty() {
                return Err(at(format!("{k} has no value")));
            }
            if k == "policy" {
                for p in v.split(',') {
                    let name = p.trim_start_matches('!');
                    if !POLICIES_ON.contains(&name) && !POLICIES_OFF.contains(&name) {
                        return Err(at(format!("unknown policy {p}")));
                    }
                }
            }
        }
        commands += 1;
    }
    Ok(commands)
}

/// Splits a line into words; quoted strings and `[...]` stay whole. Unbalanced is an error.
fn tokens(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let (mut depth, mut quoted, mut escaped) = (0i32, false, false);
    for c in line.chars() {
        if escaped {
            cur.push(c);
            escaped = false;
            continue;
        }
        match c {
            '\\' if quoted => {
                cur.push(c);
                escaped = true;
            }
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            '[' if !quoted => {
                depth += 1;
                cur.push(c);
            }
            ']' if !quoted => {
                depth -= 1;
                if depth < 0 {
                    return Err("] without [".into());
                }
                cur.push(c);
            }
            ' ' if !quoted && depth == 0 => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if quoted {
        return Err("unterminated string".into());
    }
    if depth != 0 {
        return Err("[ without ]".into());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_quoted_and_escaped() {
        assert_eq!(quote(r#"a"b$c\d"#), r#""a\"b\$c\\d""#);
        assert_eq!(
            tokens(r#"/x add name="a b" y=[find name="c d"]"#).unwrap(),
            ["/x", "add", r#"name="a b""#, r#"y=[find name="c d"]"#]
        );
        assert!(tokens(r#"/x add name="a"#).is_err());
        assert!(tokens("/x remove [find").is_err());
    }

    #[test]
    fn the_checker_refuses_what_routeros_would() {
        assert!(check("/user group add name=x policy=api,read,write,!sensitive").is_ok());
        assert!(check("/user group add name=x policy=api,fly")
            .unwrap_err()
            .contains("unknown policy fly"));
        assert!(check("/user add name=x colour=red")
            .unwrap_err()
            .contains("takes no argument colour"));
        assert!(check("/ip firewall filter add chain=input")
            .unwrap_err()
            .contains("unknown command"));
        assert!(check("user add name=x")
            .unwrap_err()
            .contains("starts with /"));
        assert!(check("# c\n\n:delay 1s\n/radius incoming set accept=yes port=3799").is_ok());
        assert!(check("/radius add address=")
            .unwrap_err()
            .contains("line 1"));
    }
}
