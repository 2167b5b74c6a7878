//! How many refusals of unsigned messages are answered. Anyone who can publish on the commands
//! topic can send junk; answering every piece would turn a flood into as many replies (each
//! taking a slot of the publish window the events need) and as many log lines on the router's
//! flash. A token bucket: a burst is answered, a flood is mostly dropped and counted. Pure: the
//! caller passes the time.

use std::time::{Duration, Instant};

/// Replies answered at once before the rate applies.
pub const BURST: u32 = 20;
/// Replies per second once the burst is spent.
pub const PER_SECOND: u32 = 5;
/// How often the dropped count is logged while a flood lasts.
pub const REPORT_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct RefusalBudget {
    /// In thousandths of a reply, so the refill needs no floats.
    milli_tokens: u64,
    refilled: Instant,
    /// Dropped since the last report.
    dropped: u64,
    reported: Instant,
}

/// What to do with one unsigned refusal.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Answer,
    /// Not answered; `report` is the number dropped since the last report when one is due.
    Drop {
        report: Option<u64>,
    },
}

impl RefusalBudget {
    pub fn new(now: Instant) -> Self {
        RefusalBudget {
            milli_tokens: u64::from(BURST) * 1000,
            refilled: now,
            dropped: 0,
            reported: now,
        }
    }

    pub fn take(&mut self, now: Instant) -> Verdict {
        let elapsed_ms = now.saturating_duration_since(self.refilled).as_millis();
        let refill = u64::try_from(elapsed_ms)
            .unwrap_or(u64::MAX)
            .saturating_mul(u64::from(PER_SECOND));
        self.milli_tokens = self
            .milli_tokens
            .saturating_add(refill)
            .min(u64::from(BURST) * 1000);
        self.refilled = now;
        if self.milli_tokens >= 1000 {
            self.milli_tokens -= 1000;
            return Verdict::Answer;
        }
        self.dropped += 1;
        let report = if now.saturating_duration_since(self.reported) >= REPORT_EVERY {
            self.reported = now;
            Some(std::mem::take(&mut self.dropped))
        } else {
            None
        };
        Verdict::Drop { report }
    }

    /// Dropped and not yet reported (logged when the flood ends with the session).
    pub fn unreported(&mut self) -> u64 {
        std::mem::take(&mut self.dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_answered_then_the_rate_applies_and_drops_are_reported() {
        let t0 = Instant::now();
        let mut b = RefusalBudget::new(t0);
        for i in 0..BURST {
            assert_eq!(b.take(t0), Verdict::Answer, "reply {i} of the burst");
        }
        assert_eq!(b.take(t0), Verdict::Drop { report: None });
        // 199 ms refill 0.995 of a reply: still dropped; at 200 ms one is due.
        assert_eq!(
            b.take(t0 + Duration::from_millis(199)),
            Verdict::Drop { report: None }
        );
        assert_eq!(b.take(t0 + Duration::from_millis(200)), Verdict::Answer);
        // A flood at 1,000/s for 10 s: 5/s answered, the rest dropped and reported once.
        let mut answered = 0;
        let mut reports = Vec::new();
        for ms in 201..10_201u64 {
            match b.take(t0 + Duration::from_millis(ms)) {
                Verdict::Answer => answered += 1,
                Verdict::Drop { report: Some(n) } => reports.push(n),
                Verdict::Drop { report: None } => {}
            }
        }
        assert_eq!(answered, 50);
        assert_eq!(reports.len(), 1, "{reports:?}");
        // The report comes with the first drop after 10 s (at 10.001 s: the 10 s message was
        // answered): 2 dropped before the flood, and of the flood's 9,801 messages up to then,
        // all but the 49 answered (one every 200 ms from 0.4 s).
        assert_eq!(reports[0], 2 + 9_801 - 49);
        assert!(b.unreported() > 0);
        assert_eq!(b.unreported(), 0);
        // After a quiet minute the whole burst is back, not more.
        let later = t0 + Duration::from_secs(70);
        for _ in 0..BURST {
            assert_eq!(b.take(later), Verdict::Answer);
        }
        assert!(matches!(b.take(later), Verdict::Drop { .. }));
    }

    #[test]
    fn a_clock_going_backwards_refills_nothing() {
        let t0 = Instant::now() + Duration::from_secs(5);
        let mut b = RefusalBudget::new(t0);
        for _ in 0..BURST {
            b.take(t0);
        }
        assert!(matches!(
            b.take(t0 - Duration::from_secs(1)),
            Verdict::Drop { .. }
        ));
    }
}
