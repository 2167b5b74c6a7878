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
pub mod domain;
pub mod enforce;
pub mod engine;
pub mod logging;
pub mod mqtt;
pub mod nas;
#[cfg(feature = "opennds")]
pub mod opennds;
#[cfg(feature = "radius")]
pub mod radius;
pub mod routeros;
pub mod runtime;
pub mod secret;
pub mod store;
pub mod units;
#[cfg(feature = "http-uplink")]
pub mod uplink_http;

pub use runtime::run;
