//! The local RADIUS server (docs/radius.md): answers Access-Requests from our own users, turns
//! accounting into sessions and usage, and logs users out with RFC 5176 Disconnect-Requests.
//!
//! - `packet`: the wire format and every authenticator (sans I/O).
//! - `reply`: what an Access-Request gets: the decision and the Accept's attributes (pure).
//! - `cache`: replies kept ~30 s for retransmitted requests.
//! - `server`: the two UDP sockets, source and authenticator checks, the store calls.
//! - `disconnect`: Disconnect-Requests, and `RadiusNas`, the `Nas` the enforcer drives.

pub mod cache;
pub mod disconnect;
pub mod packet;
pub mod reply;
pub mod server;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::config::{ClientNetwork, NasKind, RadiusConfig};
use crate::secret::Secret;

pub use disconnect::{RadiusLink, RadiusNas};
pub use server::{RadiusServer, RadiusStats};

/// One NAS (or network of NASes) allowed to talk to us.
#[derive(Debug, Clone)]
pub struct RadiusClient {
    pub network: ClientNetwork,
    pub secret: Secret,
    pub kind: NasKind,
    pub disconnect_port: u16,
    pub name: String,
}

/// `[radius]` with its secrets read and checked.
#[derive(Debug, Clone)]
pub struct RadiusSettings {
    pub auth_listen: SocketAddr,
    pub accounting_listen: SocketAddr,
    pub interim_interval_s: u32,
    pub disconnect_timeout: Duration,
    pub disconnect_tries: u32,
    /// Most specific network first, so a host entry wins over its network's.
    pub clients: Vec<RadiusClient>,
    /// Accounting becomes sessions and usage. Off beside a RouterOS backend, whose poll of the
    /// active list already counts the same sessions (they would be counted twice).
    pub apply_accounting: bool,
}

impl RadiusSettings {
    pub fn resolve(r: &RadiusConfig, apply_accounting: bool) -> Result<RadiusSettings, String> {
        let mut clients = Vec::with_capacity(r.clients.len());
        for (i, c) in r.clients.iter().enumerate() {
            let net = *c.address.get_ref();
            let label = format!("[[radius.clients]] {} ({net})", i + 1);
            let secret =
                crate::secret::resolve("secret", c.secret.as_ref(), c.secret_file.as_deref())
                    .map_err(|e| format!("{label}: {e}"))?
                    .0
                    .ok_or_else(|| format!("{label}: needs secret-file (or secret)"))?;
            crate::config::check_secret(secret.expose())
                .map_err(|e| format!("{label}: the secret {e}"))?;
            clients.push(RadiusClient {
                network: net,
                secret,
                kind: c.kind,
                disconnect_port: c.disconnect_port,
                name: c.name.clone().unwrap_or_else(|| net.to_string()),
            });
        }
        clients.sort_by_key(|c| std::cmp::Reverse(c.network.prefix));
        Ok(RadiusSettings {
            auth_listen: r.auth_listen,
            accounting_listen: r.accounting_listen,
            interim_interval_s: u32::try_from(crate::units::non_negative(
                r.acct_interim_interval.ms() / 1000,
            ))
            .unwrap_or(u32::MAX)
            .max(60),
            disconnect_timeout: r.disconnect_timeout.duration(),
            disconnect_tries: r.disconnect_tries,
            clients,
            apply_accounting,
        })
    }

    /// The client a packet from `ip` belongs to.
    pub fn client(&self, ip: IpAddr) -> Option<&RadiusClient> {
        self.client_index(ip).map(|i| &self.clients[i])
    }

    /// Its index in `clients`, for a task that outlives the borrow.
    pub fn client_index(&self, ip: IpAddr) -> Option<usize> {
        self.clients.iter().position(|c| c.network.contains(ip))
    }
}
