//! Grant arithmetic: pure functions of a grant and a timeline instant.

use super::model::{Grant, GrantState};
use crate::domain::Validity;

/// When the grant ends by time if nothing changes, or `None` while it cannot (queued, ended,
/// or an `uptime` grant with no device connected).
pub fn deadline(g: &Grant) -> Option<i64> {
    match (g.state, g.validity) {
        (GrantState::Running, Validity::Wall) => g.started_at.map(|s| s + g.time_ms),
        (GrantState::Running, Validity::Uptime) => g.meter_since.map(|m| m + g.time_ms - g.used_ms),
        _ => None,
    }
}

/// Time the grant still gives at `now` (timeline ms), never negative.
pub fn time_left(g: &Grant, now: i64) -> i64 {
    let left = match (g.state, g.validity) {
        (GrantState::Queued, _) => g.time_ms,
        (GrantState::Running, Validity::Wall) => {
            g.started_at.map_or(g.time_ms, |s| s + g.time_ms - now)
        }
        (GrantState::Running, Validity::Uptime) => {
            g.time_ms - g.used_ms - g.meter_since.map_or(0, |m| (now - m).max(0))
        }
        (GrantState::Ended, _) => 0,
    };
    left.max(0)
}

/// Data the grant still gives, or `None` when it has no data allowance.
pub fn data_left(g: &Grant) -> Option<u64> {
    g.data_bytes.map(|d| d.saturating_sub(g.bytes_used))
}

/// What a user's open grants (queued and running, oldest first) add up to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entitlement {
    pub time_left_ms: i64,
    /// Data left in the current grant; `None` when it is unlimited (or there is no grant).
    pub data_left: Option<u64>,
    /// Timeline instant at which all time runs out, when that is fixed (every open grant is
    /// `wall` and one is running).
    pub ends_at: Option<i64>,
}

pub fn entitlement(open: &[Grant], now: i64) -> Entitlement {
    let time_left_ms = open.iter().map(|g| time_left(g, now)).sum();
    let current = open
        .iter()
        .find(|g| g.state == GrantState::Running)
        .or_else(|| open.first());
    let all_wall = open.iter().all(|g| g.validity == Validity::Wall);
    let running = open.iter().any(|g| g.state == GrantState::Running);
    Entitlement {
        time_left_ms,
        data_left: current.and_then(data_left),
        ends_at: (all_wall && running).then_some(now + time_left_ms),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::PlanId;

    fn grant(validity: Validity, state: GrantState) -> Grant {
        Grant {
            id: 1,
            user_id: 1,
            plan_id: PlanId::parse("p").unwrap(),
            source: "manual".into(),
            validity,
            time_ms: 60_000,
            data_bytes: Some(1000),
            state,
            started_at: None,
            meter_since: None,
            used_ms: 0,
            bytes_used: 0,
            deadline: None,
            ended_at: None,
            end_reason: None,
        }
    }

    #[test]
    fn wall_grant_runs_from_start() {
        let mut g = grant(Validity::Wall, GrantState::Running);
        g.started_at = Some(1_000);
        assert_eq!(deadline(&g), Some(61_000));
        assert_eq!(time_left(&g, 31_000), 30_000);
        assert_eq!(time_left(&g, 100_000), 0);
    }

    #[test]
    fn uptime_grant_counts_only_metered_time() {
        let mut g = grant(Validity::Uptime, GrantState::Running);
        g.started_at = Some(0);
        g.used_ms = 20_000;
        assert_eq!(deadline(&g), None, "paused: cannot end by time");
        assert_eq!(time_left(&g, 999_999), 40_000);
        g.meter_since = Some(100_000);
        assert_eq!(deadline(&g), Some(140_000));
        assert_eq!(time_left(&g, 110_000), 30_000);
    }

    #[test]
    fn entitlement_sums_queued_time() {
        let mut a = grant(Validity::Wall, GrantState::Running);
        a.started_at = Some(0);
        let b = grant(Validity::Wall, GrantState::Queued);
        let e = entitlement(&[a, b], 10_000);
        assert_eq!(e.time_left_ms, 110_000);
        assert_eq!(e.ends_at, Some(120_000));
        assert_eq!(e.data_left, Some(1000));
    }
}
