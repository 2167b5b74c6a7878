//! The heartbeat: what the cloud sees of a site on `{prefix}/{site}/status` (retained), and the
//! answer to `status.get`. Built from the store's `status` plus what only the daemon knows: its
//! uptime, memory, the NAS link.

use std::time::Instant;

use serde_json::{json, Value};

use crate::site::Site;

/// Resident memory of this process, from /proc (Linux and OpenWrt).
pub fn rss_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// `{"state": "online", ...}`: the store's status plus daemon facts.
pub async fn heartbeat(site: &Site, site_id: &str, started: Instant) -> Result<Value, String> {
    let site_id = site_id.to_string();
    let mut v = site
        .read(move |s, now| s.status(&site_id, now))
        .await
        .map_err(|e| e.to_string())?;
    // Whichever NAS runs (RouterOS, openNDS, RADIUS) fills the same block.
    let router = match site.nas_status().await {
        Some(st) => json!({
            "configured": true,
            "kind": st.kind,
            "reachable": st.reachable,
            "health": st.health,
            "last-error": st.last_error,
            "reconnects": st.reconnects,
        }),
        None => json!({"configured": false, "reachable": Value::Null}),
    };
    v["state"] = json!("online");
    v["uptime-s"] = json!(started.elapsed().as_secs());
    v["rss-bytes"] = json!(rss_bytes());
    v["router"] = router;
    Ok(v)
}

/// The last will: what the broker publishes for us when we vanish.
pub fn offline(site: &str) -> String {
    json!({"site": site, "state": "offline"}).to_string()
}
