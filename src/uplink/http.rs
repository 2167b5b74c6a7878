//! The HTTPS fallback (`[uplink.http]`): when MQTT has been unreachable for `after`, the outbox
//! is POSTed in batches, oldest first: a JSON array of the same event envelopes, with the same
//! ids, so the cloud deduplicates across both paths. A batch leaves the outbox on a 2xx only.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::config::{HttpUplinkConfig, SYSTEM_CA_BUNDLE};
use crate::secret::Secret;
use crate::shutdown::Shutdown;
use crate::site::Site;

#[derive(Clone)]
pub struct HttpSettings {
    pub site: String,
    pub url: String,
    pub token: Secret,
    pub after: Duration,
    pub batch: usize,
    pub interval: Duration,
    pub client: reqwest::Client,
}

impl HttpSettings {
    pub fn resolve(h: &HttpUplinkConfig, site: &str) -> Result<HttpSettings, String> {
        // Checked here, not at the first POST: this build's URL parser takes ASCII host names only
        // (Cargo.toml, idna_adapter).
        reqwest::Url::parse(&h.url).map_err(|e| {
            format!(
                "[uplink.http] url {:?}: {e} (a host name in another script must be written in its ASCII xn-- form)",
                h.url
            )
        })?;
        let token_file = h
            .token_file
            .as_deref()
            .ok_or("[uplink.http] needs token-file")?;
        let token = crate::secret::read_secret_file(token_file)
            .map_err(|e| format!("[uplink.http] token-file: {e}"))?;
        let mut builder = reqwest::Client::builder()
            .timeout(h.timeout.duration())
            .connect_timeout(h.timeout.duration())
            .user_agent(concat!("hotspot-edge/", env!("CARGO_PKG_VERSION")));
        // reqwest needs a TLS config even for http:// (loopback tests); ours uses ring.
        let tls = if h.url.starts_with("https://") {
            let ca = h.ca_file.clone().unwrap_or_else(|| SYSTEM_CA_BUNDLE.into());
            (*crate::tls::ca_client_config(&ca, None).map_err(|e| format!("[uplink.http] {e}"))?)
                .clone()
        } else {
            crate::tls::trusts_nothing().map_err(|e| format!("[uplink.http] {e}"))?
        };
        builder = builder.use_preconfigured_tls(tls);
        let client = builder
            .build()
            .map_err(|e| format!("[uplink.http] client: {e}"))?;
        Ok(HttpSettings {
            site: site.to_string(),
            url: h.url.clone(),
            token,
            after: h.after.duration(),
            batch: h.batch.max(1),
            interval: h.interval.duration(),
            client,
        })
    }
}

/// Waits for MQTT to be down for `after`, then drains the outbox over HTTPS until MQTT is back.
pub async fn run(
    s: Arc<HttpSettings>,
    site: Site,
    mut down: watch::Receiver<Option<Instant>>,
    mut stop: Shutdown,
) {
    let mut failures = 0u32;
    let mut active = false;
    loop {
        let since = *down.borrow();
        let wait = since.map(|t| s.after.saturating_sub(t.elapsed()));
        match wait {
            Some(w) if w.is_zero() => {}
            other => {
                if active {
                    tracing::info!("MQTT is back: HTTPS fallback stops");
                    active = false;
                }
                tokio::select! {
                    _ = stop.requested() => return,
                    r = down.changed() => if r.is_err() { return },
                    _ = tokio::time::sleep(other.unwrap_or(Duration::from_secs(3600))) => {}
                }
                continue;
            }
        }
        if !active {
            tracing::warn!(url = %s.url, "MQTT unreachable for {} s: sending events over HTTPS", s.after.as_secs());
            active = true;
        }
        let pause = match post_once(&s, &site).await {
            Ok(0) => {
                failures = 0;
                s.interval
            }
            Ok(_) => {
                failures = 0;
                Duration::ZERO
            }
            Err(e) => {
                failures += 1;
                let wait = crate::uplink::mqtt::backoff(failures);
                tracing::warn!(error = %e, retry_in_s = wait.as_secs(), "HTTPS uplink");
                crate::uplink::mqtt::record_state(&site, "https", "down", &e).await;
                wait
            }
        };
        if !pause.is_zero() {
            tokio::select! {
                _ = stop.requested() => return,
                _ = down.changed() => {}
                _ = tokio::time::sleep(pause) => {}
            }
        } else if stop.is_requested() {
            return;
        }
    }
}

/// POSTs the oldest batch; returns how many events left the outbox.
async fn post_once(s: &HttpSettings, site: &Site) -> Result<usize, String> {
    let (site_id, limit) = (s.site.clone(), crate::units::sql_count(s.batch));
    let rows = site
        .store()
        .run(move |st| st.outbox_after(&site_id, 0, limit))
        .await
        .map_err(|e| format!("reading the outbox: {e}"))?;
    if rows.is_empty() {
        return Ok(0);
    }
    let body = crate::store::json_array(&rows);
    let resp = s
        .client
        .post(&s.url)
        .bearer_auth(s.token.expose())
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| format!("POST {}: {e}", s.url))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(format!(
            "POST {}: HTTP {status}; the batch stays in the outbox",
            s.url
        ));
    }
    // Rows are read in seq order and only ever appended after: the range is exactly them.
    let range = (rows[0].seq, rows[rows.len() - 1].seq);
    let n = rows.len();
    site.store()
        .run(move |st| st.outbox_remove(&[range]))
        .await
        .map_err(|e| format!("removing sent events: {e}"))?;
    crate::uplink::mqtt::record_state(site, "https", "up", "").await;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str) -> Result<HttpSettings, String> {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "a-bearer-token\n").unwrap();
        let h = HttpUplinkConfig {
            url: url.into(),
            token_file: Some(token),
            ..HttpUplinkConfig::default()
        };
        HttpSettings::resolve(&h, "site")
    }

    #[test]
    fn host_names_must_be_ascii_and_the_error_says_how() {
        let e = settings("http://café.example/events").err().unwrap();
        assert!(e.contains("[uplink.http] url") && e.contains("xn--"), "{e}");
        // The same host in its ASCII form, and an address, are accepted.
        assert!(settings("http://xn--caf-dma.example/events").is_ok());
        assert!(settings("http://127.0.0.1:8080/events").is_ok());
    }
}
