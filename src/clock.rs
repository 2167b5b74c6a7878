//! Time, for a router that may have no real-time clock.
//!
//! Paid time is measured on the **timeline**: a millisecond count that only moves forward, at the
//! rate of the kernel's boot clock (CLOCK_BOOTTIME, shared by every process on the device), and is
//! persisted in the database so it survives restarts. Wall-clock steps (1970 -> now when NTP
//! syncs, -1 h, +2 h) do not move it. Across a reboot the downtime is charged to the timeline only
//! when it can be measured with a trusted wall clock, possibly later, once NTP has synced
//! (the *catch-up*). docs/time.md is the full policy; `TimePolicy::observe` is all of it in code.

use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

/// One look at the clocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading {
    /// Changes at every boot of the device (Linux: /proc/sys/kernel/random/boot_id).
    pub boot_id: String,
    /// Milliseconds since boot; never jumps.
    pub boot_ms: i64,
    /// Wall-clock milliseconds since the Unix epoch; may be anything.
    pub wall_ms: i64,
}

pub trait Clock: Send + Sync {
    fn read(&self) -> Reading;
}

/// The device's clocks.
///
/// Boot time comes from `/proc/uptime` (CLOCK_BOOTTIME, 10 ms resolution, the same for every
/// process) read once per process, then advanced with `Instant` for millisecond precision. A
/// direct `clock_gettime` through a syscall crate was tried first and read garbage on 32-bit MIPS
/// musl (a 64-bit time_t mismatch); std's `Instant` and this file are right on every target.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn read(&self) -> Reading {
        static BASE: std::sync::OnceLock<(i64, std::time::Instant)> = std::sync::OnceLock::new();
        let (base_ms, base) = BASE.get_or_init(|| (uptime_ms(), std::time::Instant::now()));
        let boot_ms = base_ms + base.elapsed().as_millis() as i64;
        let wall_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        Reading {
            boot_id: boot_id(),
            boot_ms,
            wall_ms,
        }
    }
}

/// Milliseconds since boot from `/proc/uptime` ("849.73 1119.08"); 0 where there is none.
fn uptime_ms() -> i64 {
    std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|s| parse_uptime_ms(&s))
        .unwrap_or(0)
}

fn parse_uptime_ms(text: &str) -> Option<i64> {
    let first = text.split_whitespace().next()?;
    let (secs, frac) = first.split_once('.').unwrap_or((first, "0"));
    let secs: i64 = secs.parse().ok()?;
    let frac = format!("{frac:0<3}");
    let ms: i64 = frac.get(..3)?.parse().ok()?;
    Some(secs * 1000 + ms)
}

fn boot_id() -> String {
    static BOOT_ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BOOT_ID
        .get_or_init(|| {
            std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "no-boot-id".to_string())
        })
        .clone()
}

/// A clock for tests: boot time and wall time are set by hand, separately.
#[derive(Debug, Clone)]
pub struct FakeClock(Arc<Mutex<Reading>>);

impl FakeClock {
    pub fn new(wall_ms: i64) -> Self {
        FakeClock(Arc::new(Mutex::new(Reading {
            boot_id: "boot-1".into(),
            boot_ms: 10_000,
            wall_ms,
        })))
    }
    fn with<R>(&self, f: impl FnOnce(&mut Reading) -> R) -> R {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
    /// Real time passes: both clocks move.
    pub fn advance(&self, ms: i64) {
        self.with(|r| {
            r.boot_ms += ms;
            r.wall_ms += ms;
        })
    }
    /// The wall clock is stepped (NTP sync, an operator); boot time does not move.
    pub fn set_wall(&self, wall_ms: i64) {
        self.with(|r| r.wall_ms = wall_ms)
    }
    /// The device reboots and comes up with wall clock `wall_ms` (the time it was off shows only
    /// in the wall clock, as on a real device).
    pub fn reboot(&self, wall_ms: i64) {
        self.with(|r| {
            let n: u32 = r.boot_id.trim_start_matches("boot-").parse().unwrap_or(1);
            r.boot_id = format!("boot-{}", n + 1);
            r.boot_ms = 5_000;
            r.wall_ms = wall_ms;
        })
    }
}

impl Clock for FakeClock {
    fn read(&self) -> Reading {
        self.with(|r| r.clone())
    }
}

/// The instant the engine decides at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Now {
    /// Position on the timeline (ms); what grants are measured on.
    pub timeline_ms: i64,
    /// Wall clock (ms since epoch), reported with events.
    pub wall_ms: i64,
    /// Whether `wall_ms` can be believed (see [`TimePolicy::trusted`]).
    pub trusted: bool,
}

impl Now {
    /// Best estimate of the wall time at a timeline position.
    pub fn wall_at(&self, timeline_ms: i64) -> i64 {
        self.wall_ms + (timeline_ms - self.timeline_ms)
    }
}

/// What is persisted between runs (the `clock` row of the `meta` table).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ClockState {
    pub boot_id: String,
    /// timeline = anchor_timeline_ms + (boot_ms - anchor_boot_ms) during boot `boot_id`.
    pub anchor_boot_ms: i64,
    pub anchor_timeline_ms: i64,
    /// The last checkpoint: the wall and timeline positions at one moment.
    pub ckpt_wall_ms: i64,
    pub ckpt_timeline_ms: i64,
    pub ckpt_trusted: bool,
    /// Highest trusted wall time seen: a wall clock behind it is not trusted.
    pub hwm_wall_ms: i64,
    /// A trusted (wall, timeline) pair from before a reboot whose downtime is not yet charged,
    /// waiting for the wall clock to be trusted again.
    pub catchup_from: Option<(i64, i64)>,
}

/// The rules. `build_ms` is the build time of the binary: a wall clock before it is wrong.
#[derive(Debug, Clone, Copy)]
pub struct TimePolicy {
    pub build_ms: i64,
    pub max_offline_charge_ms: i64,
}

/// Seconds since the epoch when this binary was built (build.rs), as a floor for the wall clock.
pub const BUILD_UNIX_SECS: i64 = match i64::from_str_radix(env!("HOTSPOT_EDGE_BUILD_UNIX"), 10) {
    Ok(v) => v,
    Err(_) => 0,
};

impl TimePolicy {
    pub fn new(max_offline_charge_ms: i64) -> Self {
        TimePolicy {
            build_ms: BUILD_UNIX_SECS * 1000,
            max_offline_charge_ms,
        }
    }

    pub fn trusted(&self, wall_ms: i64, hwm_wall_ms: i64) -> bool {
        wall_ms >= self.build_ms && wall_ms >= hwm_wall_ms
    }

    /// Brings the persisted state up to date with a reading. Returns the instant and whether the
    /// state changed in a way that must be saved (a new boot, a catch-up applied).
    pub fn observe(&self, state: Option<ClockState>, r: &Reading) -> (Now, ClockState, bool) {
        let mut changed = false;
        let mut s = match state {
            None => {
                changed = true;
                ClockState {
                    boot_id: r.boot_id.clone(),
                    anchor_boot_ms: r.boot_ms,
                    anchor_timeline_ms: 0,
                    ckpt_wall_ms: r.wall_ms,
                    ckpt_timeline_ms: 0,
                    ckpt_trusted: false,
                    hwm_wall_ms: 0,
                    catchup_from: None,
                }
            }
            Some(s) if s.boot_id != r.boot_id => {
                // A reboot: resume the timeline where it was last saved; the downtime is charged
                // by the catch-up below, now or once the wall clock is trusted.
                changed = true;
                let catchup_from = if s.ckpt_trusted {
                    Some((s.ckpt_wall_ms, s.ckpt_timeline_ms))
                } else {
                    s.catchup_from
                };
                ClockState {
                    boot_id: r.boot_id.clone(),
                    anchor_boot_ms: r.boot_ms,
                    anchor_timeline_ms: s.ckpt_timeline_ms,
                    catchup_from,
                    ..s
                }
            }
            Some(s) => s,
        };
        let trusted = self.trusted(r.wall_ms, s.hwm_wall_ms);
        if trusted {
            if let Some((ref_wall, ref_timeline)) = s.catchup_from.take() {
                let timeline = s.anchor_timeline_ms + (r.boot_ms - s.anchor_boot_ms);
                let real_elapsed = r.wall_ms - ref_wall;
                let counted = timeline - ref_timeline;
                let shortfall = (real_elapsed - counted).clamp(0, self.max_offline_charge_ms);
                s.anchor_timeline_ms += shortfall;
                changed = true;
            }
            s.hwm_wall_ms = s.hwm_wall_ms.max(r.wall_ms);
        }
        let now = Now {
            timeline_ms: s.anchor_timeline_ms + (r.boot_ms - s.anchor_boot_ms),
            wall_ms: r.wall_ms,
            trusted,
        };
        (now, s, changed)
    }

    /// An operator's word that the wall clock is right now: the high-water mark comes down to
    /// it. For a clock once stepped forward by mistake and then corrected: without this the
    /// site stays untrusted (command age checks off, events marked untrusted) until the wall
    /// clock passes the wrong mark, possibly a year later. Returns the old mark.
    pub fn reset_high_water(&self, s: &mut ClockState, wall_ms: i64) -> Result<i64, String> {
        if wall_ms < self.build_ms {
            return Err(format!(
                "the wall clock ({}) is before this build ({}): set it first (NTP), then reset",
                rfc3339(wall_ms),
                rfc3339(self.build_ms)
            ));
        }
        Ok(std::mem::replace(&mut s.hwm_wall_ms, wall_ms))
    }

    /// Records `now` as the latest checkpoint (done inside every write transaction, and by the
    /// daemon every `clock-checkpoint`).
    pub fn checkpoint(&self, s: &mut ClockState, now: &Now) {
        s.ckpt_wall_ms = now.wall_ms;
        s.ckpt_timeline_ms = now.timeline_ms;
        s.ckpt_trusted = now.trusted;
        if now.trusted {
            s.hwm_wall_ms = s.hwm_wall_ms.max(now.wall_ms);
        }
    }
}

/// RFC 3339 UTC with milliseconds, e.g. `2026-11-21T10:04:05.120Z`.
pub fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let milli = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{milli:03}Z",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

/// Parses RFC 3339 (`2026-11-21T10:04:05Z`, fractions and `+03:00` offsets allowed) to ms
/// since the epoch.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut milli = 0i64;
    if b[i] == b'.' {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
        let frac = &s[start..i.min(start + 3)];
        milli = frac.parse::<i64>().ok()? * 10i64.pow(3 - frac.len() as u32);
    }
    let offset_min = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let m = num(i + 1..i + 3)? * 60 + num(i + 4..i + 6)?;
            if *sign == b'-' {
                -m
            } else {
                m
            }
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo, d);
    Some(((days * 86_400 + h * 3600 + mi * 60 + sec - offset_min * 60) * 1000) + milli)
}

/// (year, month, day) to days since 1970-01-01; Howard Hinnant's algorithm.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Days since 1970-01-01 to (year, month, day); Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips_and_reads_offsets() {
        for ms in [0, 1_795_000_000_123, 951_782_400_000, 4_102_444_800_999] {
            assert_eq!(parse_rfc3339(&rfc3339(ms)), Some(ms), "{}", rfc3339(ms));
        }
        assert_eq!(
            parse_rfc3339("2026-11-21T13:04:05.5+03:00"),
            parse_rfc3339("2026-11-21T10:04:05.500Z")
        );
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        for bad in [
            "2026-11-21",
            "2026-13-01T00:00:00Z",
            "2026-11-21T10:04:05",
            "2026-11-21T10:04:05Zx",
            "2026-11-21T1a:04:05Z",
            "2026-11-21T10:04:05.Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    const BUILD: i64 = 1_790_000_000_000; // 2026-09-21
    const NOW: i64 = 1_795_000_000_000; // 2026-11-18
    const HOUR: i64 = 3_600_000;

    fn policy() -> TimePolicy {
        TimePolicy {
            build_ms: BUILD,
            max_offline_charge_ms: 7 * 24 * HOUR,
        }
    }

    #[test]
    fn uptime_is_read_to_the_millisecond() {
        assert_eq!(parse_uptime_ms("849.73 1119.08\n"), Some(849_730));
        assert_eq!(parse_uptime_ms("12.5 3.0"), Some(12_500));
        assert_eq!(parse_uptime_ms("7 1"), Some(7_000));
        assert_eq!(parse_uptime_ms("garbage"), None);
    }

    #[test]
    fn system_boot_clock_agrees_with_proc_uptime() {
        let r = SystemClock.read();
        let up = uptime_ms();
        assert!(
            r.boot_ms > 0 && (r.boot_ms - up).abs() < 1000,
            "{} vs {up}",
            r.boot_ms
        );
    }

    #[test]
    fn rfc3339_formats_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_795_000_000_123), "2026-11-18T11:06:40.123Z");
    }

    #[test]
    fn wall_steps_do_not_move_the_timeline() {
        let c = FakeClock::new(NOW);
        let p = policy();
        let (n0, s, _) = p.observe(None, &c.read());
        c.advance(HOUR);
        c.set_wall(NOW - 5 * HOUR);
        let (n1, s, _) = p.observe(Some(s), &c.read());
        assert_eq!(n1.timeline_ms - n0.timeline_ms, HOUR);
        assert!(
            !n1.trusted,
            "a wall clock behind the high-water mark is not trusted"
        );
        c.set_wall(NOW + 100 * HOUR);
        let (n2, _, _) = p.observe(Some(s), &c.read());
        assert_eq!(n2.timeline_ms, n1.timeline_ms);
        assert!(n2.trusted);
    }

    #[test]
    fn a_high_water_mark_left_by_a_wrong_forward_step_can_be_reset() {
        let c = FakeClock::new(NOW);
        let p = policy();
        let (_, s, _) = p.observe(None, &c.read());
        // Stepped a year ahead (trusted: it is after the mark), then corrected.
        c.set_wall(NOW + 365 * 24 * HOUR);
        let (n, mut s, _) = p.observe(Some(s), &c.read());
        p.checkpoint(&mut s, &n);
        c.set_wall(NOW + HOUR);
        let (n, mut s, _) = p.observe(Some(s), &c.read());
        assert!(!n.trusted, "behind the mark: untrusted for a year");
        let timeline = n.timeline_ms;
        assert_eq!(
            p.reset_high_water(&mut s, n.wall_ms),
            Ok(NOW + 365 * 24 * HOUR)
        );
        let (n, s, _) = p.observe(Some(s), &c.read());
        assert!(n.trusted);
        assert_eq!(n.timeline_ms, timeline, "the timeline does not move");
        assert_eq!(s.hwm_wall_ms, NOW + HOUR);
        // A wall clock before the build is never made trusted this way.
        let mut s2 = s.clone();
        let e = p.reset_high_water(&mut s2, BUILD - 1).unwrap_err();
        assert!(e.contains("before this build"), "{e}");
        assert_eq!(s2, s, "nothing changed");
    }

    #[test]
    fn boot_at_1970_is_untrusted_and_later_sync_is_trusted() {
        let c = FakeClock::new(0);
        let p = policy();
        let (n, s, _) = p.observe(None, &c.read());
        assert!(!n.trusted);
        c.set_wall(NOW);
        let (n, _, _) = p.observe(Some(s), &c.read());
        assert!(n.trusted);
    }

    #[test]
    fn downtime_is_charged_at_once_with_a_trusted_clock() {
        let c = FakeClock::new(NOW);
        let p = policy();
        let (n0, mut s, _) = p.observe(None, &c.read());
        p.checkpoint(&mut s, &n0);
        c.reboot(NOW + 2 * HOUR); // off for 2 h
        let (n1, _, changed) = p.observe(Some(s), &c.read());
        assert!(changed);
        assert_eq!(n1.timeline_ms - n0.timeline_ms, 2 * HOUR);
    }

    #[test]
    fn downtime_is_charged_later_when_the_clock_boots_at_1970() {
        let c = FakeClock::new(NOW);
        let p = policy();
        let (n0, mut s, _) = p.observe(None, &c.read());
        p.checkpoint(&mut s, &n0);
        // Off for 3 h, boots at 1970, runs 10 min untrusted, then NTP syncs.
        c.reboot(0); // off for 3 h, back at 1970
        let (n1, mut s, _) = p.observe(Some(s), &c.read());
        assert_eq!(
            n1.timeline_ms, n0.timeline_ms,
            "nothing charged while untrusted"
        );
        p.checkpoint(&mut s, &n1);
        c.advance(10 * 60_000);
        c.set_wall(NOW + 3 * HOUR + 10 * 60_000);
        let (n2, s, changed) = p.observe(Some(s), &c.read());
        assert!(changed && n2.trusted);
        assert_eq!(n2.timeline_ms - n0.timeline_ms, 3 * HOUR + 10 * 60_000);
        assert_eq!(s.catchup_from, None);
    }

    #[test]
    fn offline_charge_is_capped() {
        let c = FakeClock::new(NOW);
        let p = policy();
        let (n0, mut s, _) = p.observe(None, &c.read());
        p.checkpoint(&mut s, &n0);
        c.reboot(NOW + 400 * 24 * HOUR); // a wildly wrong clock
        let (n1, _, _) = p.observe(Some(s), &c.read());
        assert_eq!(n1.timeline_ms - n0.timeline_ms, 7 * 24 * HOUR);
    }
}
