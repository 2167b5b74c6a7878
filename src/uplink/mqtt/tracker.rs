//! Which publish carried what. rumqttc's `publish` does not return the packet id, so the order
//! does it: the event loop turns our requests into `Outgoing::Publish(pkid)` events in the order
//! we queued them; a `PubAck(pkid)` then tells which message the broker took. Pure bookkeeping,
//! no I/O (protocols.md §6).

use std::collections::{HashMap, VecDeque};

/// What one MQTT message carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carried {
    /// Outbox events `first..=last` (in seq order; rows between them were all in the message).
    Events { first: i64, last: i64, count: usize },
    /// A command reply or the status: nothing to remove once acknowledged.
    Other,
}

#[derive(Debug, Default)]
pub struct Tracker {
    /// Queued to the client, not yet written by the event loop.
    awaiting: VecDeque<Carried>,
    /// Written, waiting for the broker's PubAck.
    inflight: HashMap<u16, Carried>,
    /// A message the event loop held back because its packet id was still in use.
    collided: Option<(u16, Carried)>,
    /// Events queued or in flight (their messages), for the publish window.
    event_messages: usize,
    /// The highest seq handed to the client in this connection.
    pub last_queued_seq: i64,
}

impl Tracker {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn queued(&mut self, c: Carried) {
        if let Carried::Events { last, .. } = c {
            self.event_messages += 1;
            self.last_queued_seq = self.last_queued_seq.max(last);
        }
        self.awaiting.push_back(c);
    }

    /// `Outgoing::Publish(pkid)`: the next queued message (or the collided one) got `pkid`.
    pub fn written(&mut self, pkid: u16) {
        let c = match self.collided.take() {
            Some((p, c)) if p == pkid => c,
            other => {
                self.collided = other;
                match self.awaiting.pop_front() {
                    Some(c) => c,
                    None => return,
                }
            }
        };
        if pkid != 0 {
            self.inflight.insert(pkid, c);
        } else if let Carried::Events { .. } = c {
            // QoS 0 is never used for events; keep the window honest anyway.
            self.event_messages -= 1;
        }
    }

    /// `Outgoing::AwaitAck(pkid)`: the next queued message waits for `pkid` to be acknowledged.
    pub fn collided(&mut self, pkid: u16) {
        if let Some(c) = self.awaiting.pop_front() {
            self.collided = Some((pkid, c));
        }
    }

    /// `Incoming::PubAck(pkid)`: what that message carried, if it was ours.
    pub fn acked(&mut self, pkid: u16) -> Option<Carried> {
        let c = self.inflight.remove(&pkid)?;
        if let Carried::Events { .. } = c {
            self.event_messages -= 1;
        }
        Some(c)
    }

    /// Event messages queued or awaiting acknowledgement.
    pub fn event_messages(&self) -> usize {
        self.event_messages
    }
}

/// Acknowledged seq ranges waiting to be removed from the outbox in one transaction.
#[derive(Debug, Default)]
pub struct AckBuffer {
    ranges: Vec<(i64, i64)>,
    pub events: usize,
}

impl AckBuffer {
    pub fn push(&mut self, first: i64, last: i64, count: usize) {
        // Acks mostly arrive in order: extend the last range instead of adding one.
        match self.ranges.last_mut() {
            Some((_, hi)) if *hi + 1 == first => *hi = last,
            _ => self.ranges.push((first, last)),
        }
        self.events += count;
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    pub fn take(&mut self) -> Vec<(i64, i64)> {
        self.events = 0;
        std::mem::take(&mut self.ranges)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(first: i64, last: i64) -> Carried {
        Carried::Events {
            first,
            last,
            count: usize::try_from(last - first + 1).unwrap(),
        }
    }

    #[test]
    fn publishes_are_matched_to_packet_ids_in_order() {
        let mut t = Tracker::new();
        t.queued(ev(1, 1));
        t.queued(Carried::Other);
        t.queued(ev(2, 4));
        assert_eq!(t.event_messages(), 2);
        assert_eq!(t.last_queued_seq, 4);
        t.written(7);
        t.written(8);
        t.written(9);
        // Acks out of order are still attributed correctly.
        assert_eq!(t.acked(9), Some(ev(2, 4)));
        assert_eq!(t.acked(8), Some(Carried::Other));
        assert_eq!(t.acked(7), Some(ev(1, 1)));
        assert_eq!(t.acked(7), None, "a second ack for one id is not ours");
        assert_eq!(t.event_messages(), 0);
    }

    #[test]
    fn a_collided_publish_keeps_its_cargo() {
        let mut t = Tracker::new();
        t.queued(ev(1, 1));
        t.queued(ev(2, 2));
        t.queued(ev(3, 3));
        t.written(1);
        t.collided(1); // ev(2) waits for pkid 1
        assert_eq!(t.acked(1), Some(ev(1, 1)));
        t.written(1); // the collided message goes out with pkid 1
        t.written(2);
        assert_eq!(t.acked(2), Some(ev(3, 3)));
        assert_eq!(t.acked(1), Some(ev(2, 2)));
    }

    #[test]
    fn ack_ranges_merge_when_contiguous() {
        let mut b = AckBuffer::default();
        b.push(1, 1, 1);
        b.push(2, 5, 4);
        b.push(7, 7, 1);
        assert_eq!(b.events, 6);
        assert_eq!(b.take(), vec![(1, 5), (7, 7)]);
        assert!(b.is_empty());
    }
}
