//! hotspot-edge: the local brain of a pay-per-use WiFi hotspot router.
//!
//! Layers, dependencies pointing down only (docs/architecture.md has the module map):
//! `cli` -> `runtime` -> `app` -> `store` -> `engine` -> `domain`, `units`, `clock`.

pub mod app;
pub mod backoff;
pub mod cli;
#[cfg(feature = "demo")]
mod cli_demo;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod domain;
pub mod enforce;
pub mod engine;
pub mod logging;
pub mod nas;
#[cfg(feature = "opennds")]
pub mod opennds;
#[cfg(feature = "radius")]
pub mod radius;
pub mod routeros;
pub mod secret;
pub mod site;
pub mod store;
pub mod tls;
pub mod units;
pub mod uplink;

pub use daemon::run;
