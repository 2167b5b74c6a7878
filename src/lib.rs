//! hotspot-edge: the local brain of a pay-per-use WiFi hotspot router.
//!
//! Layers, top first. A module imports only modules of lower layers, never its own layer's
//! or a higher one; `tests/layers.rs` reads this list and fails the build's tests when the code
//! says otherwise. docs/architecture.md has the module map.
//!
//! 1. `cli`: the binary's edge (arguments, commands, output, exit codes, the demo)
//! 2. `daemon`: the composition root (settings resolved once, tasks started and stopped)
//! 3. `enforce`, `opennds`, `radius`, `routeros`, `uplink`: the adapters
//! 4. `app`, `logging`, `site`: what the entry points and the adapters share
//! 5. `config`, `nas`, `store`: the TOML file, the NAS port, the SQLite store
//! 6. `engine`: pure decisions
//! 7. `clock`, `domain`, `tls`: time, the business's words, TLS for every client we run
//! 8. `backoff`, `secret`, `shutdown`, `units`: small tools with no knowledge of the rest
//!
//! Numbers from outside (config, CLI, MQTT, RADIUS, router counters, the database) are never
//! converted with an `as` that can wrap or lose a sign: `try_from` with a decision, or
//! `units::non_negative` / `units::sql_count`. Clippy holds the library to it.

#![warn(clippy::cast_possible_wrap, clippy::cast_sign_loss)]

pub mod app;
pub mod backoff;
pub mod cli;
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
pub mod shutdown;
pub mod site;
pub mod store;
pub mod tls;
pub mod units;
pub mod uplink;

pub use daemon::run;
