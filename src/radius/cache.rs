//! Replies kept for retransmitted requests (RFC 5080 §2.2.2): a NAS that did not hear our answer
//! sends the same packet again (same source, identifier and authenticator). It gets the same
//! reply, and an accounting update is not applied twice. Pure: the caller passes `now`.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a reply is kept: longer than any NAS retransmits (MikroTik: 3 tries over ~3 s;
/// FreeRADIUS keeps them 30 s by default too).
pub const KEEP: Duration = Duration::from_secs(30);

/// Beyond this many remembered requests the oldest are forgotten first (memory stays bounded
/// under a flood: ~300 bytes each with the reply; 10,000 cover 30 s at 330 requests a second).
pub const MAX_ENTRIES: usize = 10_000;

pub type Key = (SocketAddr, u8, [u8; 16]);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// A new request: handle it, then `complete` it.
    New,
    /// Being handled now: drop the duplicate, the reply is on its way.
    InProgress,
    /// Answered already: send this again.
    Answered(Arc<[u8]>),
}

type Entry = (Instant, Option<Arc<[u8]>>);

#[derive(Default)]
pub struct ReplyCache {
    /// When each request was first seen, and its reply once sent.
    entries: HashMap<Key, Entry>,
    order: VecDeque<(Instant, Key)>,
}

impl ReplyCache {
    pub fn check(&mut self, key: Key, now: Instant) -> Seen {
        self.expire(now);
        match self.entries.get(&key) {
            Some((_, Some(reply))) => Seen::Answered(reply.clone()),
            Some((_, None)) => Seen::InProgress,
            None => {
                if self.entries.len() >= MAX_ENTRIES {
                    if let Some((at, k)) = self.order.pop_front() {
                        if self.entries.get(&k).is_some_and(|(t, _)| *t == at) {
                            self.entries.remove(&k);
                        }
                    }
                }
                self.entries.insert(key, (now, None));
                self.order.push_back((now, key));
                Seen::New
            }
        }
    }

    /// The reply to remember for `key`.
    pub fn complete(&mut self, key: &Key, reply: Arc<[u8]>) {
        if let Some(slot) = self.entries.get_mut(key) {
            slot.1 = Some(reply);
        }
    }

    /// Forgets a request that got no reply (a store failure): the NAS's retry is handled anew.
    pub fn forget(&mut self, key: &Key) {
        self.entries.remove(key);
    }

    fn expire(&mut self, now: Instant) {
        while let Some((at, k)) = self.order.front() {
            if now.duration_since(*at) < KEEP {
                break;
            }
            // A key forgotten and seen again has a newer entry: keep that one.
            let (at, k) = (*at, *k);
            self.order.pop_front();
            if self.entries.get(&k).is_some_and(|(t, _)| *t == at) {
                self.entries.remove(&k);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_within_the_window_get_the_same_reply() {
        let mut c = ReplyCache::default();
        let t0 = Instant::now();
        let key: Key = ("10.0.0.1:4000".parse().unwrap(), 7, [1; 16]);
        assert_eq!(c.check(key, t0), Seen::New);
        assert_eq!(c.check(key, t0), Seen::InProgress);
        c.complete(&key, Arc::from(&b"reply"[..]));
        assert_eq!(
            c.check(key, t0 + Duration::from_secs(29)),
            Seen::Answered(Arc::from(&b"reply"[..]))
        );
        // Another authenticator with the same identifier is a new request.
        assert_eq!(c.check((key.0, 7, [2; 16]), t0), Seen::New);
        assert_eq!(c.check(key, t0 + KEEP), Seen::New);
        c.forget(&key);
        assert_eq!(c.check(key, t0 + KEEP), Seen::New);
    }

    #[test]
    fn access_reads_are_kept_until_a_write_or_a_second() {
        use crate::engine::model::UserState;
        use crate::store::router::{AccessView, RouterUser};
        let view = AccessView {
            user: RouterUser {
                name: "a".into(),
                password: "p".into(),
                state: UserState::Active,
                plan: None,
                time_left_ms: 1_500,
                data_left: None,
                mac: None,
            },
            user_id: 1,
            grant_id: Some(1),
            grant_data_left: None,
            plan: None,
            sessions: 0,
            last_end_reason: None,
        };
        let mut c = AccessCache::default();
        let t0 = Instant::now();
        c.put("a".into(), 7, t0, Some(view));
        c.put("ghost".into(), 7, t0, None);
        let at = |ms| t0 + Duration::from_millis(ms);
        let v = c.get("a", 7, at(400)).unwrap().unwrap();
        assert_eq!(v.user.time_left_ms, 1_100);
        assert!(matches!(c.get("ghost", 7, at(400)), Some(None)));
        assert!(c.get("a", 8, at(1)).is_none(), "a write empties it");
        assert!(c.get("a", 7, at(1000)).is_none(), "kept at most a second");
        c.put("a".into(), 7, t0, c.get("a", 7, t0).unwrap());
        let mut short = c.get("a", 7, t0).unwrap().unwrap();
        short.user.time_left_ms = 300;
        c.put("a".into(), 7, t0, Some(short));
        assert!(
            c.get("a", 7, at(400)).is_none(),
            "a grant ending meanwhile is read again"
        );
    }
}

/// Access-Request reads, kept while nothing was written (the store's write counter has not
/// moved) and for at most [`ACCESS_KEEP`], which bounds how long a change made by another
/// process (the CLI) goes unseen. A login burst then costs one store read per user.
pub const ACCESS_KEEP: Duration = Duration::from_secs(1);
const ACCESS_MAX: usize = 20_000;

#[derive(Default)]
pub struct AccessCache {
    entries: HashMap<String, (u32, Instant, Option<crate::store::router::AccessView>)>,
}

impl AccessCache {
    /// The view of `user` as of now, if a fresh one is kept: time left is reduced by the time
    /// since it was read. `None` when it must be read again.
    pub fn get(
        &self,
        user: &str,
        writes: u32,
        now: Instant,
    ) -> Option<Option<crate::store::router::AccessView>> {
        let (w, at, view) = self.entries.get(user)?;
        let age = now.saturating_duration_since(*at);
        if *w != writes || age >= ACCESS_KEEP {
            return None;
        }
        match view {
            None => Some(None),
            Some(v) => {
                let mut v = v.clone();
                v.user.time_left_ms -= age.as_millis() as i64;
                // A grant ending within the second is read again, not guessed.
                (v.user.time_left_ms > 0 || v.grant_id.is_none()).then_some(Some(v))
            }
        }
    }

    pub fn put(
        &mut self,
        user: String,
        writes: u32,
        at: Instant,
        view: Option<crate::store::router::AccessView>,
    ) {
        if self.entries.len() >= ACCESS_MAX {
            self.entries.clear();
        }
        self.entries.insert(user, (writes, at, view));
    }
}
