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
pub mod tls;
#[cfg(feature = "demo")]
pub mod wire;
