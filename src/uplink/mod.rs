//! The cloud link: events out and commands in over MQTT, and the HTTPS fallback that drains
//! the outbox while MQTT is unreachable.

#[cfg(feature = "http-uplink")]
pub mod http;
pub mod mqtt;
