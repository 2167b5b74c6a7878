//! The config resolved for the daemon: every file it needs (passwords, keys, secrets, CA
//! bundles) read and every TLS config built, once, before any task is spawned. `run` and
//! `check-config` resolve; no other command does (`users list` reads no secret file).
//!
//! Errors carry the span of the config section at fault, so the CLI reports them as
//! `file:line:col` through [`crate::config::Loaded::locate`].

use std::ops::Range;
use std::sync::Arc;

use crate::config::{Config, RouterKind};
use crate::routeros::link::LinkSettings;

/// Why the config cannot run: the message, and the span of the section it is about (none for
/// a section without one, such as `[router]`).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct SettingsError {
    pub span: Option<Range<usize>>,
    pub message: String,
}

impl SettingsError {
    fn whole(message: String) -> Self {
        SettingsError {
            span: None,
            message,
        }
    }
}

pub struct Settings {
    pub config: Config,
    /// The RouterOS connection, with its password read and API-SSL built.
    pub router: Option<LinkSettings>,
    #[cfg(feature = "radius")]
    pub radius: Option<Arc<crate::radius::RadiusSettings>>,
    pub mqtt: Option<Arc<crate::uplink::mqtt::MqttSettings>>,
    #[cfg(feature = "http-uplink")]
    pub http: Option<Arc<crate::uplink::http::HttpSettings>>,
    /// What a technician should look at but that does not stop the daemon.
    pub warnings: Vec<String>,
}

impl Settings {
    pub fn resolve(config: Config) -> Result<Settings, SettingsError> {
        let mut warnings = Vec::new();
        let router = match config.router.kind {
            RouterKind::Routeros => {
                let r = &config.router;
                let password = crate::routeros::password(r).map_err(SettingsError::whole)?;
                let tls = crate::routeros::tls_target(r)
                    .map_err(|m| SettingsError::whole(format!("[router] {m}")))?;
                Some(LinkSettings {
                    tls,
                    address: r.address.clone(),
                    username: r.username.clone(),
                    password,
                    connect_timeout: r.connect_timeout.duration(),
                    command_timeout: r.command_timeout.duration(),
                    probe_interval: r.probe_interval.duration(),
                })
            }
            RouterKind::Opennds => {
                let o = &config.opennds;
                if !o.ndsctl.exists() {
                    warnings.push(format!(
                        "[opennds] ndsctl {} does not exist here: is openNDS installed (opkg install opennds)?",
                        o.ndsctl.display()
                    ));
                }
                None
            }
            RouterKind::None | RouterKind::Radius => None,
        };
        #[cfg(feature = "radius")]
        let radius = match &config.radius {
            Some(r) => Some(Arc::new(
                crate::radius::RadiusSettings::resolve(
                    r.get_ref(),
                    config.router.kind != RouterKind::Routeros,
                )
                .map_err(|message| SettingsError {
                    span: Some(crate::config::radius_error_span(r, &message)),
                    message,
                })?,
            )),
            None => None,
        };
        let mqtt = match &config.mqtt {
            Some(m) => Some(Arc::new(
                crate::uplink::mqtt::MqttSettings::resolve(m.get_ref(), config.site_id()).map_err(
                    |message| SettingsError {
                        span: Some(m.span()),
                        message,
                    },
                )?,
            )),
            None => None,
        };
        #[cfg(feature = "http-uplink")]
        let http = match &config.uplink.http {
            Some(h) => Some(Arc::new(
                crate::uplink::http::HttpSettings::resolve(h, config.site_id())
                    .map_err(SettingsError::whole)?,
            )),
            None => None,
        };
        Ok(Settings {
            router,
            #[cfg(feature = "radius")]
            radius,
            mqtt,
            #[cfg(feature = "http-uplink")]
            http,
            warnings,
            config,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;

    const GOOD: &str = r#"
[site]
id = "test-site"
"#;

    /// Loads and resolves as `check-config` does; the located error.
    fn err(text: &str) -> String {
        let loaded = parse(text, "c.toml").unwrap_or_else(|e| panic!("{e}"));
        match Settings::resolve(loaded.config.clone()) {
            Ok(_) => panic!("resolved:\n{text}"),
            Err(e) => loaded.locate(e.span, e.message).to_string(),
        }
    }

    #[test]
    fn mqtt_files_are_read_once_and_errors_point_at_the_section() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key");
        let mqtt = |extra: &str| {
            format!(
                "{GOOD}\n[mqtt]\nurl = \"mqtt://127.0.0.1:1883\"\ncommand-key-file = \"{}\"\n{extra}\n",
                key.display()
            )
        };
        std::fs::write(&key, "short\n").unwrap();
        let e = err(&mqtt(""));
        assert!(e.contains("shorter than 16"), "{e}");
        assert!(e.starts_with("c.toml:5:1: "), "{e}");
        std::fs::write(&key, "a-long-enough-command-key\n").unwrap();
        let l = parse(
            &mqtt("password = \"inline-pw\"\nusername = \"u\""),
            "c.toml",
        )
        .unwrap();
        assert!(
            l.warnings.iter().any(|w| w.contains("password-file")),
            "{:?}",
            l.warnings
        );
        let s = Settings::resolve(l.config).unwrap();
        let m = s.mqtt.unwrap();
        assert_eq!(
            m.command_key.as_ref().unwrap().expose(),
            "a-long-enough-command-key"
        );
        let e = err(&mqtt(
            "password-file = \"/nonexistent/pw\"\nusername = \"u\"",
        ));
        assert!(e.contains("/nonexistent/pw"), "{e}");
    }

    #[cfg(feature = "radius")]
    #[test]
    fn radius_secrets_are_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        let good = dir.path().join("good");
        std::fs::write(&good, "x7Hq-2mPw-9LzK-4vRt\n").unwrap();
        // The bad secret is the second client's: the error points at that client.
        let text = format!(
            "{GOOD}\n[radius]\n[[radius.clients]]\naddress = \"10.6.0.0/16\"\nsecret-file = \"{}\"\nkind = \"mikrotik\"\n[[radius.clients]]\naddress = \"10.5.0.0/16\"\nsecret-file = \"{}\"\nkind = \"coova\"\n",
            good.display(),
            secret.display()
        );
        let line = 1 + text
            .lines()
            .position(|l| l.contains("10.5.0.0/16"))
            .unwrap();
        std::fs::write(&secret, "testing123\n").unwrap();
        let e = err(&text);
        assert!(e.contains("well-known default"), "{e}");
        assert!(
            e.starts_with(&format!("c.toml:{line}:11: [[radius.clients]] 2 ")),
            "{e}"
        );
        std::fs::write(&secret, "short-one\n").unwrap();
        assert!(err(&text).contains("at least 16"));
        std::fs::remove_file(&secret).unwrap();
        assert!(
            err(&text).contains("secret-file: cannot read"),
            "{}",
            err(&text)
        );
        std::fs::write(&secret, "k3J9-vq2L-x8Pz-0aTm\n").unwrap();
        let s = Settings::resolve(parse(&text, "c.toml").unwrap().config).unwrap();
        assert_eq!(s.radius.unwrap().clients.len(), 2);
    }

    #[test]
    fn the_router_password_file_is_read_here_not_at_load() {
        let text = format!(
            "{GOOD}\n[router]\nkind = \"routeros\"\naddress = \"192.168.88.1:8728\"\nallow-plaintext = true\npassword-file = \"/nonexistent/router.pass\"\n"
        );
        // Loading (every CLI command) reads no file ...
        assert!(parse(&text, "c.toml").is_ok());
        // ... running does, and says which key of which section, on its line.
        let e = err(&text);
        assert!(
            e.starts_with(
                "c.toml:9:1: [router] password-file: cannot read /nonexistent/router.pass"
            ),
            "{e}"
        );
    }
}
