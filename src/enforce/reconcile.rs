//! The poll's decision, pure: the NAS's active list and our open sessions in, the commands for
//! the store and the devices to log out. No I/O and no clock: the caller gives the time since
//! the counters were last written, so every rule is table-tested here.
//!
//! - A session of ours no longer on the NAS is closed (`nas-lost`) with the traffic the NAS
//!   last showed for it, unless a disconnect job of its user is queued (that job closes it, with
//!   its reason).
//! - Sessions gone are closed before new ones are admitted: a device back under a new NAS
//!   session id (openNDS gives a re-authenticated client a new token) must not count twice
//!   against the plan's devices.
//! - A NAS session that is new to us is started; a user the store bars (unknown, expired,
//!   suspended) is logged out at once unless a disconnect job of theirs is queued.
//! - Counters are written when [`save_usage_now`] says so, and always with a new session.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use crate::engine::command::{SessionCounters, SessionEndArgs, SessionStartArgs, UsageArgs};
use crate::engine::{counter_delta, Command};
use crate::nas::ActiveSession;
use crate::store::router::OpenSession;

/// Counters seen on the NAS but not necessarily written (user, bytes in, bytes out per
/// session key), and when every session's counters were last written.
#[derive(Debug, Default)]
pub struct UsageMemory {
    pub(super) seen: HashMap<String, (String, u64, u64)>,
    pub(super) saved_at: Option<tokio::time::Instant>,
}

/// What the poll knows of a user's counters when it decides whether to write them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnsavedUsage {
    /// Traffic of the user's sessions since their counters were last written.
    pub bytes: u64,
    /// Data the user had left at that write (`None`: no data cap).
    pub data_left: Option<u64>,
    /// Time until the running grant ends by time (negative: overdue), if that is fixed.
    pub grant_ends_in_ms: Option<i64>,
}

/// Whether a user's session counters are written now. They wait up to `usage_save` (the router
/// keeps them, so waiting loses nothing but freshness), except that they are written
/// - before the unwritten traffic is half of the data left: the engine then ends a data grant
///   within a poll or two of the quota running out;
/// - at the last poll before the grant ends by time, so `grant.ended` counts its traffic.
pub fn save_usage_now(
    u: UnsavedUsage,
    since_saved: Duration,
    usage_save: Duration,
    usage_poll: Duration,
) -> bool {
    let poll_ms = i64::try_from(usage_poll.as_millis()).unwrap_or(i64::MAX);
    u.bytes > 0
        && (since_saved >= usage_save
            || u.data_left
                .is_some_and(|left| u.bytes.saturating_mul(2) >= left)
            || u.grant_ends_in_ms.is_some_and(|ms| ms <= poll_ms))
}

/// Our id for a NAS session: RouterOS reuses its `.id` after a reboot.
pub fn session_key(a: &ActiveSession) -> String {
    format!("{}/{}/{}", a.id, a.user, a.mac.as_deref().unwrap_or("-"))
}

/// One look at the NAS, as read. What is decided borrows the NAS's rows (`'a`) only.
pub struct PollInput<'a, 'b> {
    /// The NAS's active list.
    pub rows: &'a [ActiveSession],
    /// Our open sessions.
    pub ours: &'b [OpenSession],
    /// Users on the NAS that may not be online, with why (`expired`, `suspended`, `unknown`).
    pub barred: &'b HashMap<String, &'static str>,
    /// Users with a queued disconnect job.
    pub pending: &'b HashSet<String>,
    pub timeline_ms: i64,
    /// Since every session's counters were last written (`Duration::MAX`: never).
    pub since_saved: Duration,
    pub usage_save: Duration,
    pub usage_poll: Duration,
}

/// What the poll does about it.
#[derive(Debug)]
pub struct Reconciled<'a> {
    /// For the store, in one transaction.
    pub cmds: Vec<Command>,
    /// Beside each command: the NAS row whose session it starts, to log out if the store
    /// refuses the start.
    pub starts: Vec<Option<&'a ActiveSession>>,
    /// Devices to log out now, with why.
    pub kicks: Vec<(&'a ActiveSession, String)>,
    /// Every session's counters were due: the time of this poll becomes the last write.
    pub save_all: bool,
}

/// Decides the poll; `memory` (the counters last seen) is updated in place: at 10,000
/// sessions a copy is ~1.5 MB.
pub fn reconcile<'a>(input: &PollInput<'a, '_>, memory: &mut UsageMemory) -> Reconciled<'a> {
    let PollInput {
        rows,
        ours,
        barred,
        pending,
        ..
    } = *input;
    // Each NAS row with our key for it, made once.
    let keyed: Vec<(String, &ActiveSession)> = rows.iter().map(|a| (session_key(a), a)).collect();
    let on_nas: HashSet<&str> = keyed.iter().map(|(k, _)| k.as_str()).collect();
    // What the memory held for sessions now gone is kept aside to close them.
    let lost: HashMap<&str, (u64, u64)> = ours
        .iter()
        .filter(|o| !on_nas.contains(o.nas_session_id.as_str()))
        .filter_map(|o| {
            let (_, i, out) = memory.seen.get(&o.nas_session_id)?;
            Some((o.nas_session_id.as_str(), (*i, *out)))
        })
        .collect();
    memory.seen.retain(|k, _| on_nas.contains(k.as_str()));
    for (k, a) in &keyed {
        match memory.seen.get_mut(k.as_str()) {
            Some(c) => (c.1, c.2) = (a.bytes_in, a.bytes_out),
            None => {
                memory
                    .seen
                    .insert(k.clone(), (a.user.clone(), a.bytes_in, a.bytes_out));
            }
        }
    }
    // Given back after a burst empties it, not re-fitted on every poll.
    if memory.seen.capacity() > 4 * memory.seen.len().max(256) {
        memory.seen.shrink_to_fit();
    }
    let save_all = input.since_saved >= input.usage_save;
    // Per user: traffic since the counters were last written, and what decides a write.
    let mut unsaved: HashMap<&str, UnsavedUsage> = HashMap::new();
    let written: HashMap<&str, (u64, u64)> = ours
        .iter()
        .map(|o| (o.nas_session_id.as_str(), (o.bytes_in, o.bytes_out)))
        .collect();
    for o in ours {
        unsaved.entry(&o.user).or_insert(UnsavedUsage {
            bytes: 0,
            data_left: o.data_left,
            grant_ends_in_ms: o.grant_deadline.map(|d| d - input.timeline_ms),
        });
    }
    for (k, a) in &keyed {
        if let (Some(w), Some(u)) = (written.get(k.as_str()), unsaved.get_mut(a.user.as_str())) {
            // Counted as the engine will count it when the counters are written.
            u.bytes += counter_delta(w.0, a.bytes_in) + counter_delta(w.1, a.bytes_out);
        }
    }
    let save_user = |user: &str| {
        unsaved.get(user).is_some_and(|u| {
            save_usage_now(*u, input.since_saved, input.usage_save, input.usage_poll)
        })
    };
    let mut cmds = Vec::new();
    let mut starts = Vec::new();
    let mut kicks = Vec::new();
    for o in ours {
        if on_nas.contains(o.nas_session_id.as_str()) || pending.contains(&o.user) {
            continue;
        }
        let last = lost.get(o.nas_session_id.as_str());
        cmds.push(Command::SessionEnded(SessionEndArgs {
            nas_session_id: o.nas_session_id.clone(),
            reason: "nas-lost".into(),
            bytes_in: last.map(|c| c.0),
            bytes_out: last.map(|c| c.1),
        }));
        starts.push(None);
    }
    for (k, a) in &keyed {
        if let Some(state) = barred.get(&a.user) {
            // A queued disconnect job handles it (with its reason and one audit row).
            if !pending.contains(&a.user) {
                kicks.push((*a, (*state).to_string()));
            }
            continue;
        }
        if !written.contains_key(k.as_str()) {
            cmds.push(Command::SessionStarted(SessionStartArgs {
                user: a.user.clone(),
                nas_session_id: k.clone(),
                mac: a.mac.clone(),
                ip: a.address.clone(),
            }));
            starts.push(Some(*a));
        }
    }
    // A session started in this poll is new to the store: its counters are written with it.
    // One the store does not know and will not start (a barred user's) has nothing to count.
    let due: Vec<SessionCounters> = keyed
        .iter()
        .filter(|(k, a)| match written.contains_key(k.as_str()) {
            true => save_user(&a.user),
            false => !barred.contains_key(&a.user),
        })
        .map(|(k, a)| SessionCounters {
            nas_session_id: k.clone(),
            bytes_in: a.bytes_in,
            bytes_out: a.bytes_out,
        })
        .collect();
    if !due.is_empty() {
        cmds.push(Command::SessionUsage(UsageArgs { sessions: due }));
        starts.push(None);
    }
    Reconciled {
        cmds,
        starts,
        kicks,
        save_all,
    }
}

/// The starts the store refused become logouts, unless a disconnect job of the user was queued
/// by then (the tick expired the user after the NAS was read: that job cuts it off).
pub fn refused_starts<'a>(
    starts: &[Option<&'a ActiveSession>],
    results: &[Result<serde_json::Value, String>],
    pending: &HashSet<String>,
) -> Vec<(&'a ActiveSession, String)> {
    starts
        .iter()
        .zip(results)
        .filter_map(|(a, r)| match (a, r) {
            (Some(a), Err(why)) if !pending.contains(&a.user) => Some((*a, why.clone())),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAVE: Duration = Duration::from_secs(300);
    const POLL: Duration = Duration::from_secs(10);
    const NOW: i64 = 1_000_000;

    fn unsaved(bytes: u64, data_left: Option<u64>, grant_ends_in_ms: Option<i64>) -> UnsavedUsage {
        UnsavedUsage {
            bytes,
            data_left,
            grant_ends_in_ms,
        }
    }

    #[test]
    fn counters_wait_for_usage_save_unless_a_quota_runs_low_or_the_grant_ends() {
        let secs = Duration::from_secs;
        let now = |u| save_usage_now(u, secs(10), SAVE, POLL);
        // Nothing new: never written.
        assert!(!save_usage_now(
            unsaved(0, None, None),
            Duration::MAX,
            SAVE,
            POLL
        ));
        assert!(!now(unsaved(0, Some(0), Some(0))));
        // No data cap, no end in sight: only once usage-save has passed, to the millisecond.
        let plain = unsaved(50_000_000, None, Some(3_600_000));
        assert!(!save_usage_now(
            plain,
            SAVE - Duration::from_millis(1),
            SAVE,
            POLL
        ));
        assert!(save_usage_now(plain, SAVE, SAVE, POLL));
        // A quota: written once the unwritten traffic is half of what was left.
        assert!(!now(unsaved(49_999_999, Some(100_000_000), None)));
        assert!(now(unsaved(50_000_000, Some(100_000_000), None)));
        assert!(now(unsaved(1, Some(0), None)));
        assert!(now(unsaved(u64::MAX, Some(u64::MAX), None)));
        // The grant ends before the next poll (or is overdue): written now.
        assert!(!now(unsaved(1, None, Some(10_001))));
        assert!(now(unsaved(1, None, Some(10_000))));
        assert!(now(unsaved(1, None, Some(-5))));
    }

    fn row(id: &str, user: &str, mac: &str, bytes_in: u64, bytes_out: u64) -> ActiveSession {
        ActiveSession {
            id: id.into(),
            user: user.into(),
            server: "hs1".into(),
            mac: Some(mac.into()),
            address: Some("10.5.50.2".into()),
            bytes_in,
            bytes_out,
        }
    }

    fn ours(row: &ActiveSession, bytes: (u64, u64), data_left: Option<u64>) -> OpenSession {
        OpenSession {
            nas_session_id: session_key(row),
            user: row.user.clone(),
            mac: row.mac.clone(),
            ip: row.address.clone(),
            bytes_in: bytes.0,
            bytes_out: bytes.1,
            data_left,
            grant_deadline: Some(NOW + 3_600_000),
        }
    }

    /// One poll: the commands in short form (`end KEY nas-lost IN/OUT`, `start USER`,
    /// `usage KEY=IN/OUT ...`), and the kicks as `USER: why`.
    fn poll(
        rows: &[ActiveSession],
        ours: &[OpenSession],
        barred: &[(&str, &'static str)],
        pending: &[&str],
        since_saved: Duration,
        memory: &mut UsageMemory,
    ) -> (Vec<String>, Vec<String>, bool) {
        let barred: HashMap<String, &'static str> =
            barred.iter().map(|(u, w)| (u.to_string(), *w)).collect();
        let pending: HashSet<String> = pending.iter().map(|u| u.to_string()).collect();
        let r = reconcile(
            &PollInput {
                rows,
                ours,
                barred: &barred,
                pending: &pending,
                timeline_ms: NOW,
                since_saved,
                usage_save: SAVE,
                usage_poll: POLL,
            },
            memory,
        );
        assert_eq!(r.cmds.len(), r.starts.len());
        let cmds = r
            .cmds
            .iter()
            .map(|c| match c {
                Command::SessionEnded(a) => format!(
                    "end {} {} {:?}/{:?}",
                    a.nas_session_id, a.reason, a.bytes_in, a.bytes_out
                ),
                Command::SessionStarted(a) => format!("start {}", a.user),
                Command::SessionUsage(a) => format!(
                    "usage {}",
                    a.sessions
                        .iter()
                        .map(|s| format!("{}={}/{}", s.nas_session_id, s.bytes_in, s.bytes_out))
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        let kicks = r
            .kicks
            .iter()
            .map(|(a, w)| format!("{}: {w}", a.user))
            .collect();
        (cmds, kicks, r.save_all)
    }

    #[test]
    fn a_new_session_is_started_with_its_counters_and_a_known_one_waits_for_usage_save() {
        let a = row("*1", "alice", "AA:00:00:00:00:01", 100, 200);
        let mut memory = UsageMemory::default();
        // New to us: started, its counters written with it.
        let (cmds, kicks, _) = poll(std::slice::from_ref(&a), &[], &[], &[], SAVE, &mut memory);
        assert_eq!(
            cmds,
            ["start alice", "usage *1/alice/AA:00:00:00:00:01=100/200"]
        );
        assert!(kicks.is_empty());
        // Known, 1 MB more, 10 s after the last write: nothing to do.
        let a2 = row("*1", "alice", "AA:00:00:00:00:01", 1_000_100, 200);
        let known = ours(&a, (100, 200), None);
        let (cmds, _, save_all) = poll(
            std::slice::from_ref(&a2),
            std::slice::from_ref(&known),
            &[],
            &[],
            Duration::from_secs(10),
            &mut memory,
        );
        assert!(cmds.is_empty(), "{cmds:?}");
        assert!(!save_all);
        // At usage-save: written.
        let (cmds, _, save_all) = poll(&[a2], &[known], &[], &[], SAVE, &mut memory);
        assert_eq!(cmds, ["usage *1/alice/AA:00:00:00:00:01=1000100/200"]);
        assert!(save_all);
    }

    #[test]
    fn a_quota_running_low_writes_the_counters_before_usage_save() {
        let a = row("*1", "alice", "AA:00:00:00:00:01", 0, 0);
        let known = ours(&a, (0, 0), Some(10_000_000));
        let mut memory = UsageMemory::default();
        let used = |n| row("*1", "alice", "AA:00:00:00:00:01", n, 0);
        let short = Duration::from_secs(10);
        let (cmds, ..) = poll(
            &[used(4_999_999)],
            std::slice::from_ref(&known),
            &[],
            &[],
            short,
            &mut memory,
        );
        assert!(cmds.is_empty(), "{cmds:?}");
        let (cmds, ..) = poll(&[used(5_000_000)], &[known], &[], &[], short, &mut memory);
        assert_eq!(cmds, ["usage *1/alice/AA:00:00:00:00:01=5000000/0"]);
    }

    #[test]
    fn a_session_gone_from_the_nas_is_closed_with_the_traffic_last_seen_unless_its_user_is_being_cut_off(
    ) {
        let a = row("*1", "alice", "AA:00:00:00:00:01", 100, 200);
        let b = row("*2", "bob", "AA:00:00:00:00:02", 5, 6);
        let (oa, ob) = (ours(&a, (100, 200), None), ours(&b, (5, 6), None));
        let mut memory = UsageMemory::default();
        let short = Duration::from_secs(10);
        let seen = |n| row("*1", "alice", "AA:00:00:00:00:01", n, 300);
        let (cmds, ..) = poll(
            &[seen(150), b.clone()],
            &[oa.clone(), ob.clone()],
            &[],
            &[],
            short,
            &mut memory,
        );
        assert!(cmds.is_empty(), "{cmds:?}");
        // Both gone; bob has a disconnect job queued: only alice is closed here, with what the
        // NAS last showed (never written).
        let (cmds, ..) = poll(&[], &[oa, ob], &[], &["bob"], short, &mut memory);
        assert_eq!(
            cmds,
            ["end *1/alice/AA:00:00:00:00:01 nas-lost Some(150)/Some(300)"]
        );
        assert!(memory.seen.is_empty());
        // A session the memory never saw (daemon restarted) closes without counters.
        let c = row("*3", "carol", "AA:00:00:00:00:03", 1, 1);
        let (cmds, ..) = poll(&[], &[ours(&c, (1, 1), None)], &[], &[], short, &mut memory);
        assert_eq!(cmds, ["end *3/carol/AA:00:00:00:00:03 nas-lost None/None"]);
    }

    #[test]
    fn sessions_gone_are_closed_before_a_device_back_under_a_new_id_is_started() {
        let old = row("tok1", "alice", "AA:00:00:00:00:01", 10, 10);
        let new = row("tok2", "alice", "AA:00:00:00:00:01", 0, 0);
        let mut memory = UsageMemory::default();
        let (cmds, ..) = poll(
            &[new],
            &[ours(&old, (10, 10), None)],
            &[],
            &[],
            Duration::from_secs(10),
            &mut memory,
        );
        assert_eq!(
            cmds,
            [
                "end tok1/alice/AA:00:00:00:00:01 nas-lost None/None",
                "start alice",
                "usage tok2/alice/AA:00:00:00:00:01=0/0",
            ]
        );
    }

    /// (Before the poll was a pure function, the barred rows' counters went to the store in a
    /// usage command every poll, counted there as unknown sessions.)
    #[test]
    fn a_barred_user_is_logged_out_unless_a_disconnect_job_is_queued() {
        let x = row("*7", "intruder", "AA:00:00:00:00:07", 0, 0);
        let e = row("*8", "expired", "AA:00:00:00:00:08", 0, 0);
        let mut memory = UsageMemory::default();
        let (cmds, kicks, _) = poll(
            &[x, e],
            &[],
            &[("intruder", "unknown"), ("expired", "expired")],
            &["expired"],
            Duration::from_secs(10),
            &mut memory,
        );
        assert!(cmds.is_empty(), "{cmds:?}");
        assert_eq!(kicks, ["intruder: unknown"]);
    }

    #[test]
    fn a_refused_start_is_a_logout_unless_a_disconnect_job_came_first() {
        let a = row("*1", "alice", "AA:00:00:00:00:01", 0, 0);
        let b = row("*2", "bob", "AA:00:00:00:00:02", 0, 0);
        let starts = [Some(&a), Some(&b), None];
        let results = [
            Err("expired: no time left".to_string()),
            Err("expired: no time left".to_string()),
            Ok(serde_json::json!({})),
        ];
        let pending: HashSet<String> = ["bob".to_string()].into();
        let kicks = refused_starts(&starts, &results, &pending);
        assert_eq!(kicks.len(), 1);
        assert_eq!(kicks[0].0.user, "alice");
        assert_eq!(kicks[0].1, "expired: no time left");
    }
}
