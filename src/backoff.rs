//! How long to wait before retrying something that failed `failures` times in a row: `first`,
//! doubling, at most `max`. One rule for the router link, MQTT and the HTTPS uplink.

use std::time::Duration;

/// Reconnecting to a NAS on the LAN or on this machine: 0.5 s doubling to 30 s (come back fast).
pub fn nas_link(failures: u32) -> Duration {
    backoff(
        failures,
        Duration::from_millis(500),
        Duration::from_secs(30),
    )
}

pub fn backoff(failures: u32, first: Duration, max: Duration) -> Duration {
    first
        .saturating_mul(1 << failures.saturating_sub(1).min(16))
        .min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_first_and_caps() {
        let (first, max) = (Duration::from_millis(500), Duration::from_secs(30));
        assert_eq!(backoff(0, first, max), first);
        assert_eq!(backoff(1, first, max), first);
        assert_eq!(backoff(2, first, max), Duration::from_secs(1));
        assert_eq!(backoff(3, first, max), Duration::from_secs(2));
        assert_eq!(backoff(7, first, max), Duration::from_secs(30));
        assert_eq!(backoff(u32::MAX, first, max), Duration::from_secs(30));
        let (first, max) = (Duration::from_secs(1), Duration::from_secs(300));
        assert_eq!(backoff(9, first, max), Duration::from_secs(256));
        assert_eq!(backoff(10, first, max), Duration::from_secs(300));
    }
}
