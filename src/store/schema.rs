//! Versioned migrations. `PRAGMA user_version` is the schema version; migration N takes a
//! database from version N-1 to N. Never edit a released migration: add the next one.

/// `PRAGMA application_id`: 'HSEG'. Tells our database apart from any other SQLite file.
pub const APPLICATION_ID: i32 = 0x4853_4547;

pub const MIGRATIONS: &[&str] = &[
    // 1: money and identity.
    r#"
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE plans (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    price      INTEGER NOT NULL CHECK (price >= 0),
    currency   TEXT NOT NULL,
    time_ms    INTEGER NOT NULL CHECK (time_ms > 0),
    validity   TEXT NOT NULL CHECK (validity IN ('wall', 'uptime')),
    data_bytes INTEGER,
    rate_limit TEXT,
    devices    INTEGER NOT NULL CHECK (devices >= 1),
    source     TEXT NOT NULL,
    active     INTEGER NOT NULL DEFAULT 1,
    updated_at INTEGER NOT NULL
);

CREATE TABLE users (
    id         INTEGER PRIMARY KEY,
    username   TEXT NOT NULL UNIQUE,
    password   TEXT NOT NULL,
    phone      TEXT,
    mac        TEXT,
    state      TEXT NOT NULL CHECK (state IN ('active', 'suspended', 'expired')),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX users_phone ON users (phone) WHERE phone IS NOT NULL;

CREATE TABLE grants (
    id          INTEGER PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users (id),
    plan_id     TEXT NOT NULL,
    source      TEXT NOT NULL,
    validity    TEXT NOT NULL CHECK (validity IN ('wall', 'uptime')),
    time_ms     INTEGER NOT NULL,
    data_bytes  INTEGER,
    state       TEXT NOT NULL CHECK (state IN ('queued', 'running', 'ended')),
    started_at  INTEGER,
    meter_since INTEGER,
    used_ms     INTEGER NOT NULL DEFAULT 0,
    bytes_used  INTEGER NOT NULL DEFAULT 0,
    deadline    INTEGER,
    ended_at    INTEGER,
    end_reason  TEXT,
    created_at  INTEGER NOT NULL
);
CREATE INDEX grants_open ON grants (user_id, id) WHERE state != 'ended';
CREATE INDEX grants_deadline ON grants (deadline) WHERE deadline IS NOT NULL;

CREATE TABLE payments (
    id           INTEGER PRIMARY KEY,
    provider     TEXT NOT NULL,
    reference    TEXT NOT NULL,
    phone        TEXT,
    amount       INTEGER NOT NULL,
    currency     TEXT NOT NULL,
    plan_id      TEXT NOT NULL,
    user_id      INTEGER NOT NULL REFERENCES users (id),
    grant_id     INTEGER NOT NULL REFERENCES grants (id),
    received_at  INTEGER NOT NULL,
    time_trusted INTEGER NOT NULL,
    UNIQUE (provider, reference)
);

CREATE TABLE vouchers (
    code        TEXT PRIMARY KEY,
    plan_id     TEXT NOT NULL,
    batch       TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('unused', 'redeemed', 'revoked', 'expired')),
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER,
    redeemed_at INTEGER,
    user_id     INTEGER REFERENCES users (id),
    grant_id    INTEGER REFERENCES grants (id)
) WITHOUT ROWID;
CREATE INDEX vouchers_due ON vouchers (expires_at) WHERE state = 'unused' AND expires_at IS NOT NULL;

CREATE TABLE outbox (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    -- <database instance>-<seq>: unique by construction, so no index of its own.
    event_id     TEXT NOT NULL,
    type         TEXT NOT NULL,
    payload      TEXT NOT NULL,
    occurred_at  INTEGER NOT NULL,
    time_trusted INTEGER NOT NULL,
    money        INTEGER NOT NULL
);

CREATE TABLE inbox (
    id          INTEGER PRIMARY KEY,
    command_id  TEXT NOT NULL UNIQUE,
    source      TEXT NOT NULL,
    type        TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('applied', 'rejected')),
    result      TEXT NOT NULL,
    received_at INTEGER NOT NULL
);
"#,
    // 2: enforcement: sessions, router jobs, audit trail.
    r#"
CREATE TABLE sessions (
    id             INTEGER PRIMARY KEY,
    user_id        INTEGER NOT NULL REFERENCES users (id),
    nas_session_id TEXT NOT NULL,
    mac            TEXT,
    ip             TEXT,
    started_at     INTEGER NOT NULL,
    ended_at       INTEGER,
    bytes_in       INTEGER NOT NULL DEFAULT 0,
    bytes_out      INTEGER NOT NULL DEFAULT 0,
    end_reason     TEXT
);
CREATE INDEX sessions_active_user ON sessions (user_id) WHERE ended_at IS NULL;
CREATE UNIQUE INDEX sessions_active_nas ON sessions (nas_session_id) WHERE ended_at IS NULL;

CREATE TABLE jobs (
    id              INTEGER PRIMARY KEY,
    kind            TEXT NOT NULL,
    target          TEXT NOT NULL,
    args            TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'done', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    max_attempts    INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
-- Also how a worker finds the pending jobs: there are few, so no index on next_attempt_at.
CREATE UNIQUE INDEX jobs_pending_target ON jobs (kind, target) WHERE state = 'pending';

CREATE TABLE audit (
    id           INTEGER PRIMARY KEY,
    at           INTEGER NOT NULL,
    time_trusted INTEGER NOT NULL,
    user_id      INTEGER,
    username     TEXT,
    action       TEXT NOT NULL,
    reason       TEXT NOT NULL,
    detail       TEXT
);
"#,
    // 3: RADIUS: the plan's idle timeout (Idle-Timeout in Access-Accepts).
    r#"
ALTER TABLE plans ADD COLUMN idle_timeout_ms INTEGER CHECK (idle_timeout_ms > 0);
"#,
    // 4: the poll reads open sessions in id order without scanning every session ever held
    // (10,000 devices: the table scan per poll starved the job worker).
    r#"
CREATE INDEX sessions_open ON sessions (id) WHERE ended_at IS NULL;
"#,
    // 5: a device back at an openNDS portal is matched to the user it last had a session as.
    r#"
CREATE INDEX sessions_mac ON sessions (mac, id);
"#,
];

pub fn latest_version() -> i64 {
    crate::units::sql_count(MIGRATIONS.len())
}
