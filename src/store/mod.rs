//! SQLite persistence: one file, WAL, `synchronous=FULL`, versioned migrations, checks at open.
//! No business rules: the engine decides, [`Store::apply`] commits its decision atomically.
//!
//! Durability choice: `synchronous=FULL` for the whole database. Nearly every transaction carries
//! money (a payment, a grant, a voucher) or the outbox events that report it, and in WAL mode
//! `NORMAL` may lose the last commits on power loss, which routers see daily. The cost is one
//! fsync per commit, so frequent low-value writes (usage counters) are batched by the callers.

mod apply;
mod handle;
mod ledger;
mod lock;
mod outbox;
pub mod router;
pub mod schema;
pub mod views;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};
use serde_json::Value;

use crate::clock::{Clock, ClockState, Now, TimePolicy};
use crate::engine::{Entropy, Rejection};
pub use handle::StoreHandle;
pub use lock::DaemonLock;
pub use outbox::{json_array, OutboxEvent, Trimmed};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: cannot open the database: {source}")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error("{path}: not a hotspot-edge database (not SQLite, or another program's database); move it aside or fix [store] path")]
    Foreign { path: String },
    #[error("{path}: the database is damaged ({detail}); restore a backup, or move the file aside to start empty")]
    Corrupt { path: String, detail: String },
    #[error("{path}: database schema version {found} is newer than this build supports ({supported}); install a newer hotspot-edge or restore a backup")]
    TooNew {
        path: String,
        found: i64,
        supported: i64,
    },
    #[error("{path}: migrating the database to schema version {version} failed: {source}")]
    Migration {
        path: String,
        version: i64,
        source: rusqlite::Error,
    },
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("database: bad stored value: {0}")]
    Data(String),
    #[error("the store thread has stopped")]
    Gone,
    #[error("{path}: {message}")]
    Lock { path: String, message: String },
}

impl StoreError {
    /// Whether trying the same thing again later may succeed: the database busy or locked by
    /// another process, the disk full or failing, the store thread stopping. A constraint that
    /// fails, a value the store cannot hold, a damaged or foreign file fail the same way every
    /// time: a command that meets one is answered with the error, not retried forever.
    /// The database could not be opened because nothing can be written (disk full, or an I/O
    /// error creating the WAL): reading a snapshot may still work.
    pub fn is_unwritable_open(&self) -> bool {
        use rusqlite::ErrorCode as C;
        matches!(self, StoreError::Open { source: rusqlite::Error::SqliteFailure(f, _), .. }
            if matches!(f.code, C::DiskFull | C::SystemIoFailure | C::CannotOpen | C::ReadOnly))
    }

    pub fn is_transient(&self) -> bool {
        use rusqlite::ErrorCode as C;
        match self {
            StoreError::Gone => true,
            StoreError::Sql(rusqlite::Error::SqliteFailure(f, _)) => matches!(
                f.code,
                C::DatabaseBusy
                    | C::DatabaseLocked
                    | C::DiskFull
                    | C::SystemIoFailure
                    | C::OutOfMemory
                    | C::CannotOpen
                    | C::FileLockingProtocolFailed
            ),
            _ => false,
        }
    }
}

/// What `reset_clock_high_water` did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct HighWaterReset {
    /// The old and new high-water marks (RFC 3339).
    pub from: String,
    pub to: String,
    /// The wall clock was trusted already (the mark was not ahead of it).
    pub was_trusted: bool,
}

/// Why a command was not applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("{}: {}", .0.code.as_str(), .0.message)]
    Rejected(Rejection),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What applying a command did.
#[derive(Debug, Clone)]
pub struct Applied {
    pub result: Value,
    /// Events written to the outbox (their seqs), in order.
    pub seqs: Vec<i64>,
    pub jobs: usize,
    /// The command id had been applied before: nothing was done, this is the stored result.
    pub replayed: bool,
    pub now: Now,
}

#[derive(Debug, Clone)]
pub struct OpenOptions {
    pub busy_timeout: Duration,
    /// Run `PRAGMA quick_check` (the daemon does at start; the CLI skips it for speed).
    pub check: bool,
    pub policy: TimePolicy,
}

pub struct Store {
    conn: Connection,
    path: PathBuf,
    policy: TimePolicy,
    instance: String,
}

fn is_not_a_database(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.code == rusqlite::ErrorCode::NotADatabase)
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if matches!(f.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked))
}

fn is_corrupt(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.code == rusqlite::ErrorCode::DatabaseCorrupt)
}

impl Store {
    pub fn open(path: &Path, opts: &OpenOptions) -> Result<Store, StoreError> {
        let shown = path.display().to_string();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Open {
                path: shown.clone(),
                source: rusqlite::Error::InvalidPath(PathBuf::from(format!(
                    "{}: {e}",
                    dir.display()
                ))),
            })?;
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|source| StoreError::Open {
            path: shown.clone(),
            source,
        })?;
        Self::init(conn, path, opts)
    }

    /// The database file as it is, read-only and without its write-ahead log (SQLite's
    /// `immutable=1`): for reading when the normal open fails because nothing can be written
    /// (a full disk: the WAL and its index cannot be created). Complete only when no WAL holds
    /// newer pages, i.e. no daemon is writing; callers say so.
    pub fn open_snapshot(path: &Path, policy: TimePolicy) -> Result<Store, StoreError> {
        let shown = path.display().to_string();
        let mut uri = String::from("file:");
        for c in path.to_string_lossy().chars() {
            match c {
                '%' => uri.push_str("%25"),
                '?' => uri.push_str("%3f"),
                '#' => uri.push_str("%23"),
                c => uri.push(c),
            }
        }
        uri.push_str("?immutable=1");
        let open_err = |source| StoreError::Open {
            path: shown.clone(),
            source,
        };
        let conn = Connection::open_with_flags(
            &uri,
            OpenFlags::SQLITE_OPEN_READ_ONLY
                | OpenFlags::SQLITE_OPEN_URI
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(open_err)?;
        let (app_id, version): (i32, i64) = conn
            .query_row(
                "SELECT (SELECT application_id FROM pragma_application_id),
                        (SELECT user_version FROM pragma_user_version)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(open_err)?;
        if app_id != schema::APPLICATION_ID {
            return Err(StoreError::Foreign { path: shown });
        }
        if version != schema::latest_version() {
            return Err(StoreError::Data(format!(
                "{shown}: schema version {version}, this build reads {}: it cannot be migrated read-only",
                schema::latest_version()
            )));
        }
        let instance: String = conn
            .query_row("SELECT value FROM meta WHERE key = 'instance'", [], |r| {
                r.get(0)
            })
            .map_err(open_err)?;
        Ok(Store {
            conn,
            path: path.to_path_buf(),
            policy,
            instance,
        })
    }

    /// An in-memory database, for tests of the engine through the real schema.
    pub fn open_in_memory(policy: TimePolicy) -> Result<Store, StoreError> {
        let conn = Connection::open_in_memory()?;
        let opts = OpenOptions {
            busy_timeout: Duration::from_secs(1),
            check: false,
            policy,
        };
        Self::init(conn, Path::new(":memory:"), &opts)
    }

    fn init(conn: Connection, path: &Path, opts: &OpenOptions) -> Result<Store, StoreError> {
        let shown = path.display().to_string();
        let classify = |e: rusqlite::Error| {
            if is_not_a_database(&e) {
                StoreError::Foreign {
                    path: shown.clone(),
                }
            } else if is_corrupt(&e) {
                StoreError::Corrupt {
                    path: shown.clone(),
                    detail: e.to_string(),
                }
            } else {
                StoreError::Open {
                    path: shown.clone(),
                    source: e,
                }
            }
        };
        conn.busy_timeout(opts.busy_timeout).map_err(classify)?;
        // The engine uses a few dozen distinct statements; rusqlite's default cache of 16 would
        // re-parse them on every command (15 % of a payment's CPU before this was raised).
        conn.set_prepared_statement_cache_capacity(128);
        // A first read tells a file that is not SQLite at all (NotADatabase). Whether it is *our*
        // database is decided in `migrate`, inside a write transaction: another process (the
        // daemon and the CLI start together) may be creating the schema right now.
        let _: i32 = conn
            .query_row("PRAGMA application_id", [], |r| r.get(0))
            .map_err(classify)?;
        if opts.check {
            let verdict: String = conn
                .query_row("PRAGMA quick_check", [], |r| r.get(0))
                .map_err(classify)?;
            if verdict != "ok" {
                return Err(StoreError::Corrupt {
                    path: shown,
                    detail: verdict,
                });
            }
        }
        let tables: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
            .map_err(classify)?;
        if tables == 0 {
            // A new database: small pages, because each transaction appends every page it
            // touches to the WAL, and router flash wears with every byte written. Only takes
            // effect before the first table exists (and before WAL mode).
            conn.execute_batch("PRAGMA page_size = 1024")
                .map_err(classify)?;
        }
        // Switching to WAL needs an exclusive lock and SQLite answers BUSY at once rather than
        // waiting (another process may be creating this database): retry within busy-timeout.
        let deadline = std::time::Instant::now() + opts.busy_timeout;
        let mode: String = loop {
            match conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0)) {
                Err(e) if is_busy(&e) && std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                r => break r.map_err(classify)?,
            }
        };
        if mode != "wal" && mode != "memory" {
            tracing::warn!(%mode, "the database could not switch to WAL mode");
        }
        conn.execute_batch(
            "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; PRAGMA journal_size_limit=4194304;",
        )
        .map_err(classify)?;
        let mut store = Store {
            conn,
            path: path.to_path_buf(),
            policy: opts.policy,
            instance: String::new(),
        };
        store.migrate(schema::latest_version())?;
        store.instance = store.instance_id()?;
        Ok(store)
    }

    /// Applies migrations up to `target` (tests use a lower target to build an old database).
    pub fn migrate(&mut self, target: i64) -> Result<(), StoreError> {
        let shown = self.path.display().to_string();
        let supported = schema::latest_version();
        loop {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            // One snapshot, serialised with every other writer: ours, empty, or foreign.
            let (app_id, tables, version): (i32, i64, i64) = tx.query_row(
                "SELECT (SELECT application_id FROM pragma_application_id),
                        (SELECT count(*) FROM sqlite_master),
                        (SELECT user_version FROM pragma_user_version)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?;
            if app_id != schema::APPLICATION_ID && (app_id != 0 || tables > 0) {
                return Err(StoreError::Foreign { path: shown });
            }
            if version > supported {
                return Err(StoreError::TooNew {
                    path: shown,
                    found: version,
                    supported,
                });
            }
            if version >= target {
                return Ok(());
            }
            let next = version + 1;
            // A negative user_version (set by hand or damage) is not one of ours.
            let Some(sql) = usize::try_from(version)
                .ok()
                .and_then(|v| schema::MIGRATIONS.get(v))
            else {
                return Err(StoreError::Foreign { path: shown });
            };
            tx.execute_batch(sql)
                .and_then(|_| {
                    tx.execute_batch(&format!(
                        "PRAGMA user_version = {next}; PRAGMA application_id = {};",
                        schema::APPLICATION_ID
                    ))
                })
                .map_err(|source| StoreError::Migration {
                    path: shown.clone(),
                    version: next,
                    source,
                })?;
            tx.commit()?;
            tracing::info!(version = next, "database migrated");
        }
    }

    fn instance_id(&mut self) -> Result<String, StoreError> {
        let got: Option<String> = self
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'instance'", [], |r| {
                r.get(0)
            })
            .optional()?;
        if let Some(id) = got {
            return Ok(id);
        }
        let mut b = [0u8; 8];
        crate::engine::OsEntropy.fill(&mut b);
        let id: String = b.iter().map(|x| format!("{x:02x}")).collect();
        self.conn.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('instance', ?1)",
            params![id],
        )?;
        let id = self
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'instance'", [], |r| {
                r.get(0)
            })?;
        Ok(id)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A unique id for this database, the prefix of every event id.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    pub fn schema_version(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }

    fn clock_state(conn: &Connection) -> Result<Option<ClockState>, StoreError> {
        let text: Option<String> = conn
            .prepare_cached("SELECT value FROM meta WHERE key = 'clock'")?
            .query_row([], |r| r.get(0))
            .optional()?;
        match text {
            None => Ok(None),
            Some(t) => serde_json::from_str(&t)
                .map(Some)
                .map_err(|e| StoreError::Data(format!("clock state: {e}"))),
        }
    }

    fn save_clock_state(conn: &Connection, s: &ClockState) -> Result<(), StoreError> {
        let text = serde_json::to_string(s).map_err(|e| StoreError::Data(e.to_string()))?;
        conn.prepare_cached(
            "INSERT INTO meta (key, value) VALUES ('clock', ?1)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )?
        .execute(params![text])?;
        Ok(())
    }

    /// The current instant, without writing anything.
    pub fn now(&self, clock: &dyn Clock) -> Result<Now, StoreError> {
        let state = Self::clock_state(&self.conn)?;
        Ok(self.policy.observe(state, &clock.read()).0)
    }

    /// Saves the clock checkpoint and high-water mark (one small write).
    pub fn checkpoint_clock(&mut self, clock: &dyn Clock) -> Result<Now, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let state = Self::clock_state(&tx)?;
        let (now, mut s, _) = self.policy.observe(state, &clock.read());
        self.policy.checkpoint(&mut s, &now);
        Self::save_clock_state(&tx, &s)?;
        tx.commit()?;
        Ok(now)
    }

    /// `clock reset-high-water` (CLI, signed command): trusts the wall clock as it is now,
    /// bringing the high-water mark down to it, with a `clock.high-water-reset` event, in one
    /// transaction. `Ok(Err)` says why it was refused (nothing changed).
    pub fn reset_clock_high_water(
        &mut self,
        clock: &dyn Clock,
        by: &str,
    ) -> Result<Result<HighWaterReset, String>, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let state = Self::clock_state(&tx)?;
        let (now, mut s, _) = self.policy.observe(state, &clock.read());
        let old = match self.policy.reset_high_water(&mut s, now.wall_ms) {
            Ok(old) => old,
            Err(why) => return Ok(Err(why)),
        };
        let now = Now {
            trusted: true,
            ..now
        };
        self.policy.checkpoint(&mut s, &now);
        Self::save_clock_state(&tx, &s)?;
        let reset = HighWaterReset {
            from: crate::clock::rfc3339(old),
            to: crate::clock::rfc3339(now.wall_ms),
            was_trusted: old <= now.wall_ms,
        };
        let outcome = crate::engine::Outcome {
            result: serde_json::Value::Null,
            events: vec![crate::engine::Event::ClockHighWaterReset {
                from: reset.from.clone(),
                to: reset.to.clone(),
                by: by.to_string(),
            }],
            jobs: vec![],
        };
        apply::write_events(&tx, &self.instance, &outcome, &now)?;
        tx.commit()?;
        Ok(Ok(reset))
    }

    /// Saves the clock only if it must be (a reboot or a catch-up was detected).
    pub fn refresh_clock(&mut self, clock: &dyn Clock) -> Result<Now, StoreError> {
        let state = Self::clock_state(&self.conn)?;
        let (now, _, changed) = self.policy.observe(state, &clock.read());
        if changed {
            return self.checkpoint_clock(clock);
        }
        Ok(now)
    }

    /// The earliest grant deadline (timeline ms), or unused-voucher expiry, if any.
    pub fn next_deadline(&self) -> Result<Option<i64>, StoreError> {
        Ok(self.conn.query_row(
            "SELECT min(t) FROM (
                 SELECT min(deadline) AS t FROM grants WHERE deadline IS NOT NULL
                 UNION ALL
                 SELECT min(expires_at) FROM vouchers WHERE state = 'unused' AND expires_at IS NOT NULL)",
            [],
            |r| r.get(0),
        )?)
    }

    /// Rows this connection has inserted, updated or deleted since it opened (tests use it to
    /// prove that an idle tick writes nothing to flash).
    pub fn total_changes(&self) -> u64 {
        self.conn.total_changes()
    }

    /// Puts failed (or all pending) jobs back in the queue for an immediate retry.
    pub fn retry_jobs(&mut self, clock: &dyn Clock, id: Option<i64>) -> Result<usize, StoreError> {
        let now = self.now(clock)?;
        let n = self.conn.execute(
            "UPDATE jobs SET state = 'pending', attempts = 0, next_attempt_at = ?1, updated_at = ?2
             WHERE state = 'failed' AND (?3 IS NULL OR id = ?3)
               AND NOT EXISTS (SELECT 1 FROM jobs j2 WHERE j2.state = 'pending'
                               AND j2.kind = jobs.kind AND j2.target = jobs.target)",
            params![now.timeline_ms, now.wall_ms, id],
        )?;
        Ok(n)
    }

    /// Checkpoints the WAL into the main file and truncates it (clean shutdown).
    pub fn close(self) -> Result<(), StoreError> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        self.conn.close().map_err(|(_, e)| StoreError::Sql(e))
    }
}

impl Store {
    /// One value of `meta` (small state kept beside the ledger: `status` in another process
    /// reads it).
    pub(crate) fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT value FROM meta WHERE key = ?1")?
            .query_row([key], |r| r.get(0))
            .optional()?)
    }

    pub(crate) fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )?
            .execute(params![key, value])?;
        Ok(())
    }

    /// Records settings the store needs outside a decision (kept in `meta`).
    pub fn set_job_max_attempts(&mut self, n: u32) -> Result<(), StoreError> {
        let n = n.to_string();
        if self.meta("job-max-attempts")?.as_deref() != Some(n.as_str()) {
            self.set_meta("job-max-attempts", &n)?;
        }
        Ok(())
    }

    /// What the NAS adapter found wrong with the NAS's own settings (openNDS without preemptive
    /// authentication, say), for `status` and the heartbeat. The enforcer writes it when it
    /// changes.
    pub fn set_nas_warnings(&mut self, warnings: &[String]) -> Result<(), StoreError> {
        self.set_meta("nas-warnings", &serde_json::json!(warnings).to_string())
    }

    /// The NAS warnings as last written (`[]` when none were).
    pub fn nas_warnings(&self) -> Result<serde_json::Value, StoreError> {
        Ok(self
            .meta("nas-warnings")?
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_else(|| serde_json::json!([])))
    }
}

#[cfg(test)]
mod transient_tests {
    use super::StoreError;

    fn sqlite(code: std::ffi::c_int) -> StoreError {
        StoreError::Sql(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(code),
            None,
        ))
    }

    #[test]
    fn busy_full_and_failing_disks_are_worth_a_retry_and_constraints_are_not() {
        use rusqlite::ffi;
        for code in [
            ffi::SQLITE_BUSY,
            ffi::SQLITE_LOCKED,
            ffi::SQLITE_FULL,
            ffi::SQLITE_IOERR,
        ] {
            assert!(sqlite(code).is_transient(), "{code}");
        }
        assert!(StoreError::Gone.is_transient());
        for code in [
            ffi::SQLITE_CONSTRAINT,
            ffi::SQLITE_MISMATCH,
            ffi::SQLITE_TOOBIG,
        ] {
            assert!(!sqlite(code).is_transient(), "{code}");
        }
        assert!(!StoreError::Data("bad stored value".into()).is_transient());
    }
}
