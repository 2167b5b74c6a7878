//! MikroTik RouterOS: the API client (over mikrotik-rs) and hotspot operations, value formats,
//! the wire format, and the simulator used by tests, the demo and benchmarks.

pub mod backend;
pub mod client;
pub mod format;
pub mod link;
pub mod meaning;
pub mod setup;
#[cfg(feature = "demo")]
pub mod sim;
#[cfg(feature = "demo")]
pub mod wire;

use crate::config::RouterConfig;
use crate::secret::Secret;

/// The router API password, from `password-file` (or inline `password`).
pub fn password(r: &RouterConfig) -> Result<Secret, String> {
    crate::secret::resolve(
        "[router] password",
        r.password.as_ref(),
        r.password_file.as_deref(),
    )?
    .0
    .ok_or_else(|| "[router] needs password-file (or password)".to_string())
}

/// API-SSL settings for the router (CA file read, certificate pin parsed), or `None` for the
/// plain API.
pub fn tls_target(r: &RouterConfig) -> Result<Option<client::TlsTarget>, String> {
    use crate::tls;
    let Some(trust) = tls::Trust::from_config(
        r.tls_ca_file.as_deref(),
        r.tls_certificate_sha256.as_deref(),
    )?
    else {
        return Ok(None);
    };
    let host = r
        .tls_server_name
        .clone()
        .unwrap_or_else(|| r.host().to_string());
    Ok(Some(client::TlsTarget {
        config: tls::client_config(&trust)?,
        server_name: tls::server_name(&host)?,
    }))
}
