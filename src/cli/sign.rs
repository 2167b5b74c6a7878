//! `hotspot-edge sign-command`: a signed remote command, as the cloud would send it (for
//! operators testing the MQTT command path, and for scripts).

use serde_json::{json, Value};

use super::args::SignArgs;
use super::dispatch::random_id;
use super::exit::*;
use crate::config::Config;

pub(super) fn sign_command(a: &SignArgs, config: Option<&Config>) -> i32 {
    let site = a
        .site
        .clone()
        .or_else(|| config.map(|c| c.site_id().to_string()));
    let key_file = a.key_file.clone().or_else(|| {
        config
            .and_then(|c| c.mqtt.as_ref())
            .and_then(|m| m.get_ref().command_key_file.clone())
    });
    let (Some(site), Some(key_file)) = (site, key_file) else {
        eprintln!("error: give --site and --key-file, or a config with [mqtt] command-key-file");
        return EXIT_USAGE;
    };
    let key = match crate::secret::read_secret_file(&key_file) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let args: Value = match serde_json::from_str(&a.args) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => {
            eprintln!("error: ARGS must be a JSON object, e.g. '{{\"user\": \"k7m2qp\"}}'");
            return EXIT_USAGE;
        }
        Err(e) => {
            eprintln!("error: ARGS is not JSON: {e}");
            return EXIT_USAGE;
        }
    };
    let issued_at = match &a.issued_at {
        Some(t) if crate::clock::parse_rfc3339(t).is_none() => {
            eprintln!("error: --issued-at {t:?} is not RFC 3339");
            return EXIT_USAGE;
        }
        Some(t) => t.clone(),
        None => crate::clock::rfc3339(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0),
        ),
    };
    let body = json!({
        "id": a.id.clone().unwrap_or_else(|| random_id("cmd")),
        "site": site,
        "issued-at": issued_at,
        "type": a.ty,
        "args": args,
    })
    .to_string();
    println!(
        "{}",
        crate::uplink::mqtt::remote::envelope(key.expose().as_bytes(), &body)
    );
    EXIT_OK
}
