//! The SQLite ledger (`ledger.db`): one row per alert key with its lifecycle state, plus
//! key-value metadata (the poll cursor and the like).
//!
//! Design constraints (DESIGN.md, "SQLite rules"):
//! - WAL, `busy_timeout` set, every writer starts with `BEGIN IMMEDIATE`.
//! - No file IO inside a write transaction: callers move files first, then commit one
//!   transaction per batch describing what moved.
//! - Schema changes are numbered migrations applied in order (`PRAGMA user_version`).
//! - The run lock is a separate file; the database is never used as a lock.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::model::alert::KeyHash;
use crate::store::fsx::Durability;

pub mod console;
pub mod incidents;
mod lifecycle;
pub mod outbox;
pub mod retention;
pub use lifecycle::Intent;
pub mod noise;
mod queries;
pub mod readonly;

/// Where an alert is in its lifecycle. The filesystem says where the file is; this says what
/// state the alert is in; reconcile checks that they agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    Queued,
    Overflow,
    Processing,
    Triaging,
    Triaged,
    Escalated,
    Quarantined,
    Lost,
    /// Removed by retention: the row (key, bucket, incident, case id, times) is kept, the case
    /// and its pack are gone. Terminal; a re-polled or re-ingested key is a duplicate.
    Expired,
}

impl State {
    pub const ALL: [State; 9] = [
        State::Queued,
        State::Overflow,
        State::Processing,
        State::Triaging,
        State::Triaged,
        State::Escalated,
        State::Quarantined,
        State::Lost,
        State::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Queued => "queued",
            State::Overflow => "overflow",
            State::Processing => "processing",
            State::Triaging => "triaging",
            State::Triaged => "triaged",
            State::Escalated => "escalated",
            State::Quarantined => "quarantined",
            State::Lost => "lost",
            State::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        State::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger {}: {}", crate::store::fsx::shown(path), describe_sql(source))]
    Sql {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("ledger {}: schema version {found} is newer than this build understands ({known}); upgrade signalfoundry", crate::store::fsx::shown(path))]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("ledger {}: schema version {found} is older than {needed}, which this command reads; run `signalfoundry status` once to migrate it", crate::store::fsx::shown(path))]
    TooOld {
        path: PathBuf,
        found: i64,
        needed: i64,
    },
}

/// SQLite's message, with a full disk said the way every other stage says it.
fn describe_sql(e: &rusqlite::Error) -> String {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DiskFull) => format!("no space left on device ({e})"),
        _ => e.to_string(),
    }
}

/// The numbered schema migrations. Never edit one that has shipped: append a new one.
const MIGRATIONS: &[&str] = &[
    // 1: alerts and metadata.
    "CREATE TABLE alerts (
        key_hash     TEXT PRIMARY KEY,
        alert_key    TEXT NOT NULL,
        state        TEXT NOT NULL,
        name         TEXT NOT NULL,
        content_hash TEXT NOT NULL,
        level        INTEGER,
        priority     INTEGER NOT NULL,
        alert_time   TEXT NOT NULL,
        index_name   TEXT,
        doc_id       TEXT,
        worker       TEXT,
        source       TEXT NOT NULL,
        created_at   TEXT NOT NULL,
        updated_at   TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX alerts_by_state ON alerts(state);
    CREATE TABLE meta (k TEXT PRIMARY KEY, v TEXT NOT NULL) WITHOUT ROWID;",
    // 2: triage intent and outcome columns, related-alert index, the poller's seen ids,
    //    signature hit counts and run history.
    "ALTER TABLE alerts ADD COLUMN bucket TEXT;
    ALTER TABLE alerts ADD COLUMN critical INTEGER;
    ALTER TABLE alerts ADD COLUMN case_id TEXT;
    ALTER TABLE alerts ADD COLUMN case_path TEXT;
    ALTER TABLE alerts ADD COLUMN agent TEXT;
    ALTER TABLE alerts ADD COLUMN rule_id TEXT;
    ALTER TABLE alerts ADD COLUMN description TEXT;
    ALTER TABLE alerts ADD COLUMN decision TEXT;
    ALTER TABLE alerts ADD COLUMN pack INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX alerts_by_agent_time ON alerts(agent, alert_time);
    CREATE UNIQUE INDEX alerts_by_case ON alerts(case_id) WHERE case_id IS NOT NULL;
    CREATE TABLE seen_ids (
        index_name TEXT NOT NULL,
        doc_id     TEXT NOT NULL,
        key_hash   TEXT NOT NULL,
        PRIMARY KEY (index_name, doc_id)
    ) WITHOUT ROWID;
    CREATE TABLE signature_hits (
        id        TEXT PRIMARY KEY,
        hits      INTEGER NOT NULL DEFAULT 0,
        held_back INTEGER NOT NULL DEFAULT 0,
        last_hit  TEXT
    ) WITHOUT ROWID;
    CREATE TABLE runs (
        run_id      TEXT PRIMARY KEY,
        started_at  TEXT NOT NULL,
        finished_at TEXT,
        status      TEXT,
        report      TEXT
    ) WITHOUT ROWID;",
    // 3: alerts become a rowid table (rows sit in arrival order, so a batch's updates touch
    //    neighbouring pages instead of one random page per row), keyed uniquely by key_hash;
    //    the per-state index goes (reconcile scans, and every state change paid for it), and so
    //    does the case-id index (a case id is `SF-<key hash>`: look rows up by key hash).
    "CREATE TABLE alerts_v3 (
        id           INTEGER PRIMARY KEY,
        key_hash     TEXT NOT NULL UNIQUE,
        alert_key    TEXT NOT NULL,
        state        TEXT NOT NULL,
        name         TEXT NOT NULL,
        content_hash TEXT NOT NULL,
        level        INTEGER,
        priority     INTEGER NOT NULL,
        alert_time   TEXT NOT NULL,
        index_name   TEXT,
        doc_id       TEXT,
        worker       TEXT,
        source       TEXT NOT NULL,
        created_at   TEXT NOT NULL,
        updated_at   TEXT NOT NULL,
        bucket       TEXT,
        critical     INTEGER,
        case_id      TEXT,
        case_path    TEXT,
        agent        TEXT,
        rule_id      TEXT,
        description  TEXT,
        decision     TEXT,
        pack         INTEGER NOT NULL DEFAULT 0
    );
    INSERT INTO alerts_v3 (key_hash, alert_key, state, name, content_hash, level, priority, alert_time,
        index_name, doc_id, worker, source, created_at, updated_at, bucket, critical, case_id, case_path,
        agent, rule_id, description, decision, pack)
      SELECT key_hash, alert_key, state, name, content_hash, level, priority, alert_time,
        index_name, doc_id, worker, source, created_at, updated_at, bucket, critical, case_id, case_path,
        agent, rule_id, description, decision, pack
      FROM alerts ORDER BY created_at;
    DROP TABLE alerts;
    ALTER TABLE alerts_v3 RENAME TO alerts;
    CREATE INDEX alerts_by_agent_time ON alerts(agent, alert_time);",
    // 4: the decision of an alert being triaged lives in `intents` only while it is in flight
    //    (a retry reuses it; the commit deletes it), so alert rows stay small.
    "CREATE TABLE intents (key_hash TEXT PRIMARY KEY, decision TEXT NOT NULL) WITHOUT ROWID;
    INSERT INTO intents (key_hash, decision)
      SELECT key_hash, decision FROM alerts
      WHERE decision IS NOT NULL AND state IN ('queued', 'overflow', 'processing', 'triaging');
    UPDATE alerts SET decision = NULL WHERE decision IS NOT NULL;",
    // 5: incidents. A row's incident is fixed with its intent; `incidents` keeps each
    //    incident's member counts (a member is a `triaged` or `escalated` row), maintained by
    //    the triggers below in the transaction that moves the row, so the counts can never
    //    drift from the rows. `rev` counts changes, `built_rev` the change its files show.
    //    The row index holds only what never changes after the intent (a state change does
    //    not touch it).
    "ALTER TABLE alerts ADD COLUMN incident TEXT;
    CREATE INDEX alerts_by_incident ON alerts(incident, alert_time, case_id)
      WHERE incident IS NOT NULL;
    CREATE TABLE incidents (
        id           TEXT PRIMARY KEY,
        group_id     TEXT NOT NULL,
        key          TEXT NOT NULL,
        window_secs  INTEGER NOT NULL,
        window_start TEXT NOT NULL,
        window_end   TEXT NOT NULL,
        previous     TEXT NOT NULL,
        members      INTEGER NOT NULL DEFAULT 0,
        suppressed   INTEGER NOT NULL DEFAULT 0,
        low          INTEGER NOT NULL DEFAULT 0,
        medium       INTEGER NOT NULL DEFAULT 0,
        high         INTEGER NOT NULL DEFAULT 0,
        critical     INTEGER NOT NULL DEFAULT 0,
        max_level    INTEGER,
        first_time   TEXT,
        last_time    TEXT,
        rev          INTEGER NOT NULL DEFAULT 1,
        built_rev    INTEGER NOT NULL DEFAULT 0,
        built_status TEXT,
        created_at   TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX incidents_dirty ON incidents(id) WHERE rev != built_rev;
    CREATE INDEX incidents_open ON incidents(window_end) WHERE built_status = 'open';
    CREATE INDEX incidents_by_start ON incidents(window_start);
    CREATE INDEX incidents_by_previous ON incidents(previous);
    CREATE TRIGGER incident_member_in AFTER UPDATE OF state, incident ON alerts
    WHEN NEW.incident IS NOT NULL AND NEW.state IN ('triaged', 'escalated')
      AND NOT (OLD.incident IS NEW.incident AND OLD.state IN ('triaged', 'escalated'))
    BEGIN
      UPDATE incidents SET members = members + 1,
        suppressed = suppressed + (NEW.bucket IS 'suppressed'),
        low = low + (NEW.bucket IS 'low'),
        medium = medium + (NEW.bucket IS 'medium'),
        high = high + (NEW.bucket IS 'high'),
        critical = critical + (COALESCE(NEW.critical, 0) != 0),
        max_level = CASE WHEN max_level IS NULL OR NEW.level > max_level THEN NEW.level ELSE max_level END,
        first_time = CASE WHEN first_time IS NULL OR NEW.alert_time < first_time THEN NEW.alert_time ELSE first_time END,
        last_time = CASE WHEN last_time IS NULL OR NEW.alert_time > last_time THEN NEW.alert_time ELSE last_time END,
        rev = rev + 1
      WHERE id = NEW.incident;
      -- The incident's first member: the next window's incident now continues it.
      UPDATE incidents SET rev = rev + 1 WHERE previous = NEW.incident
        AND (SELECT members FROM incidents WHERE id = NEW.incident) = 1;
    END;
    CREATE TRIGGER incident_member_out AFTER UPDATE OF state, incident ON alerts
    WHEN OLD.incident IS NOT NULL AND OLD.state IN ('triaged', 'escalated')
      AND NOT (OLD.incident IS NEW.incident AND NEW.state IN ('triaged', 'escalated'))
    BEGIN
      UPDATE incidents SET members = members - 1,
        suppressed = suppressed - (OLD.bucket IS 'suppressed'),
        low = low - (OLD.bucket IS 'low'),
        medium = medium - (OLD.bucket IS 'medium'),
        high = high - (OLD.bucket IS 'high'),
        critical = critical - (COALESCE(OLD.critical, 0) != 0),
        rev = rev + 1
      WHERE id = OLD.incident;
      UPDATE incidents SET
        max_level = (SELECT MAX(level) FROM alerts WHERE incident = OLD.incident AND state IN ('triaged', 'escalated')),
        first_time = (SELECT MIN(alert_time) FROM alerts WHERE incident = OLD.incident AND state IN ('triaged', 'escalated')),
        last_time = (SELECT MAX(alert_time) FROM alerts WHERE incident = OLD.incident AND state IN ('triaged', 'escalated'))
      WHERE id = OLD.incident;
      UPDATE incidents SET rev = rev + 1 WHERE previous = OLD.incident
        AND (SELECT members FROM incidents WHERE id = OLD.incident) = 0;
    END;
    -- A member moving between member states (triaged -> escalated: its pack published)
    -- changes what the files show (the pack link), not the counts.
    CREATE TRIGGER incident_member_moves AFTER UPDATE OF state ON alerts
    WHEN NEW.incident IS NOT NULL AND OLD.incident IS NEW.incident AND OLD.state != NEW.state
      AND OLD.state IN ('triaged', 'escalated') AND NEW.state IN ('triaged', 'escalated')
    BEGIN
      UPDATE incidents SET rev = rev + 1 WHERE id = NEW.incident;
    END;
    -- No insert trigger: a row is inserted without an incident (its intent sets it).
    CREATE TRIGGER incident_member_delete AFTER DELETE ON alerts
    WHEN OLD.incident IS NOT NULL AND OLD.state IN ('triaged', 'escalated')
    BEGIN
      UPDATE incidents SET members = members - 1,
        suppressed = suppressed - (OLD.bucket IS 'suppressed'),
        low = low - (OLD.bucket IS 'low'),
        medium = medium - (OLD.bucket IS 'medium'),
        high = high - (OLD.bucket IS 'high'),
        critical = critical - (COALESCE(OLD.critical, 0) != 0),
        rev = rev + 1
      WHERE id = OLD.incident;
      UPDATE incidents SET
        max_level = (SELECT MAX(level) FROM alerts WHERE incident = OLD.incident AND state IN ('triaged', 'escalated')),
        first_time = (SELECT MIN(alert_time) FROM alerts WHERE incident = OLD.incident AND state IN ('triaged', 'escalated')),
        last_time = (SELECT MAX(alert_time) FROM alerts WHERE incident = OLD.incident AND state IN ('triaged', 'escalated'))
      WHERE id = OLD.incident;
      UPDATE incidents SET rev = rev + 1 WHERE previous = OLD.incident
        AND (SELECT members FROM incidents WHERE id = OLD.incident) = 0;
    END;
    -- Rows triaged before incidents existed get theirs from the next triage (the backfill).
    INSERT INTO meta (k, v) SELECT 'incident_backfill', 'pending'
      WHERE EXISTS (SELECT 1 FROM alerts WHERE state IN ('triaged', 'escalated', 'triaging'));",
    // 6: the delivery outbox (messages per route and incident), each route's progress per
    //    incident, and the routes seen.
    "CREATE TABLE outbox (
        id          TEXT NOT NULL UNIQUE,
        route       TEXT NOT NULL,
        incident    TEXT NOT NULL,
        seq         INTEGER NOT NULL,
        type        TEXT NOT NULL,
        state       TEXT NOT NULL,
        event       TEXT NOT NULL,
        attempts    INTEGER NOT NULL DEFAULT 0,
        not_before  TEXT NOT NULL,
        created_at  TEXT NOT NULL,
        first_attempt_at TEXT,
        sent_at     TEXT,
        last_error  TEXT,
        digest      TEXT,
        frozen      INTEGER NOT NULL DEFAULT 0,
        UNIQUE (route, incident, seq)
    );
    CREATE INDEX outbox_by_created ON outbox(created_at);
    CREATE INDEX outbox_pending ON outbox(route, not_before) WHERE state = 'pending';
    CREATE INDEX outbox_sent ON outbox(route, sent_at) WHERE state = 'sent';
    CREATE INDEX outbox_by_state ON outbox(route, state);
    CREATE TABLE notify_progress (
        route     TEXT NOT NULL,
        incident  TEXT NOT NULL,
        next_seq  INTEGER NOT NULL,
        members   INTEGER NOT NULL,
        last_due  TEXT NOT NULL,
        closed    INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (route, incident)
    ) WITHOUT ROWID;
    CREATE TABLE notify_routes (
        name       TEXT PRIMARY KEY,
        kind       TEXT NOT NULL,
        first_seen TEXT NOT NULL
    ) WITHOUT ROWID;",
    // 7: retention. A row expires in two steps: one transaction moves it to `expired` and
    //    records its directories in `expiring`; the directories are removed (and made
    //    durable); a second transaction forgets them. A crash in between leaves `expiring`
    //    rows that the next expire or reconcile finishes. The partial indexes keep the due
    //    scan and the compaction of old expired rows off the whole table.
    "CREATE TABLE expiring (
        key_hash  TEXT PRIMARY KEY,
        case_id   TEXT NOT NULL,
        case_path TEXT NOT NULL,
        pack      INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX alerts_retention ON alerts(bucket, alert_time)
      WHERE state IN ('triaged', 'escalated');
    CREATE INDEX alerts_expired ON alerts(alert_time) WHERE state = 'expired';",
    // 8: noise figures per day (`policy stats`, the heartbeat's `signatures`; `noise.rs`): per
    //    UTC day of the alerts' times and signature, its suppressions (`hits`), the high alerts
    //    it matched but could not suppress (`held_back`) and its latest suppressed alert's time;
    //    per day, every suppressed alert (by a signature or an override: the share's
    //    denominator). Upserted in each triage batch's commit, beside `signature_hits`; days
    //    past the retention are pruned there. A ledger that already held triaged alerts says
    //    from when the days count (`signature_days_since`): earlier alerts are not in them.
    "CREATE TABLE signature_days (
        day       TEXT NOT NULL,
        id        TEXT NOT NULL,
        hits      INTEGER NOT NULL DEFAULT 0,
        held_back INTEGER NOT NULL DEFAULT 0,
        last_hit  TEXT,
        PRIMARY KEY (day, id)
    ) WITHOUT ROWID;
    CREATE TABLE suppressed_days (
        day    TEXT PRIMARY KEY,
        alerts INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
    INSERT INTO meta (k, v) SELECT 'signature_days_since', strftime('%Y-%m-%dT%H:%M:%SZ', 'now')
      WHERE EXISTS (SELECT 1 FROM alerts WHERE state IN ('triaged', 'escalated', 'triaging'));",
    // 9: the console's lists as index lookups: incidents by a member's rule, and by highest
    //    level (its sort). Both change only with the intent (rule, incident) or the members'
    //    triggers (max_level).
    "CREATE INDEX alerts_by_rule ON alerts(rule_id, incident) WHERE incident IS NOT NULL;
    CREATE INDEX incidents_by_level ON incidents(max_level, window_start);",
    // 10: the console's description search as index lookups: every distinct description (a
    //    few thousand: Wazuh's rules' texts) in `descriptions`, kept by triggers as rows get
    //    theirs, and the members of each by `alerts_by_description`. A search matches the
    //    small table with LIKE, then looks its alerts up by index.
    "CREATE TABLE descriptions (text TEXT PRIMARY KEY) WITHOUT ROWID;
    INSERT OR IGNORE INTO descriptions (text)
      SELECT DISTINCT description FROM alerts WHERE description IS NOT NULL;
    CREATE INDEX alerts_by_description ON alerts(description, incident)
      WHERE incident IS NOT NULL;
    CREATE TRIGGER description_seen AFTER UPDATE OF description ON alerts
    WHEN NEW.description IS NOT NULL
    BEGIN
      INSERT OR IGNORE INTO descriptions (text) VALUES (NEW.description);
    END;
    CREATE TRIGGER description_inserted AFTER INSERT ON alerts
    WHEN NEW.description IS NOT NULL
    BEGIN
      INSERT OR IGNORE INTO descriptions (text) VALUES (NEW.description);
    END;",
    // 11: a pack's related alerts, high ones first, as a bounded index walk: the high alerts of
    //    an agent by time (a partial index: one entry per high alert only).
    "CREATE INDEX alerts_high_by_agent_time ON alerts(agent, alert_time) WHERE bucket = 'high';",
];

/// `alerts.pack` when a row has no escalation pack: a `triaged` row (a `high` one gets its pack
/// at the next triage), or a `quarantined` row whose level did not read as high.
pub const PACK_NONE: i64 = 0;
/// `alerts.pack` when the row's escalation pack is published: `escalations/<case id>/` for an
/// `escalated` row, `escalations/Q-<entry>/` for a `quarantined` one.
pub const PACK_DONE: i64 = 1;
/// `alerts.pack` of a `quarantined` row whose `escalations/Q-<entry>/` is owed: written in the
/// transaction that records the quarantine (with the level the pack shows in `level`, and the
/// quarantining worker in `worker`), before the file moves; [`PACK_DONE`] once the pack is
/// published. A row still owing at the next triage (a crash between the move and the pack) gets
/// its pack rebuilt from `quarantine/<entry>.json`. Never used on other states.
pub const PACK_OWED: i64 = 2;

/// Write transactions of one process are serialized here, so its threads queue on a mutex
/// instead of polling SQLite's busy handler (other processes still meet `busy_timeout`).
static WRITE_GATE: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A new row: what admission, ingest and poll know about an alert entering the spool.
#[derive(Debug, Clone)]
pub struct NewRow {
    pub key_hash: KeyHash,
    pub alert_key: String,
    pub state: State,
    pub name: String,
    pub content_hash: String,
    pub level: Option<u32>,
    pub priority: u32,
    pub alert_time: String,
    pub index_name: Option<String>,
    pub doc_id: Option<String>,
    pub source: &'static str,
}

/// The parts of a row the spool consults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowLite {
    pub state: State,
    pub name: String,
    pub content_hash: String,
    pub alert_key: String,
}

pub struct Ledger {
    conn: Connection,
    path: PathBuf,
}

impl Ledger {
    /// Opens (creating and migrating) the ledger at `path`.
    pub fn open(path: &Path, durability: Durability) -> Result<Ledger, LedgerError> {
        let wrap = |source| LedgerError::Sql {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open(path).map_err(wrap)?;
        conn.busy_timeout(Duration::from_secs(60)).map_err(wrap)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(wrap)?;
        let sync = match durability {
            Durability::Strict => "FULL",
            Durability::Batch => "NORMAL",
            Durability::Off => "OFF",
        };
        conn.pragma_update(None, "synchronous", sync)
            .map_err(wrap)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(wrap)?;
        // SQLite's default page cache is 2 MiB: with 100,000 rows every lookup by key hash
        // re-reads index and table pages from the file (measured: 8 preads per triaged alert).
        conn.pragma_update(None, "cache_size", -65536)
            .map_err(wrap)?;
        let mut ledger = Ledger {
            conn,
            path: path.to_path_buf(),
        };
        ledger.migrate()?;
        Ok(ledger)
    }

    fn err(&self, source: rusqlite::Error) -> LedgerError {
        LedgerError::Sql {
            path: self.path.clone(),
            source,
        }
    }

    fn migrate(&mut self) -> Result<(), LedgerError> {
        let known = MIGRATIONS.len() as i64;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| LedgerError::Sql {
                path: self.path.clone(),
                source: e,
            })?;
        let found: i64 = tx
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| LedgerError::Sql {
                path: self.path.clone(),
                source: e,
            })?;
        if found > known {
            return Err(LedgerError::TooNew {
                path: self.path.clone(),
                found,
                known,
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
            tx.execute_batch(sql)
                .and_then(|()| tx.pragma_update(None, "user_version", (i + 1) as i64))
                .map_err(|e| LedgerError::Sql {
                    path: self.path.clone(),
                    source: e,
                })?;
        }
        tx.commit().map_err(|e| LedgerError::Sql {
            path: self.path.clone(),
            source: e,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` inside one `BEGIN IMMEDIATE` write transaction and commits it.
    pub fn write<T>(
        &mut self,
        f: impl FnOnce(&mut Tx<'_>) -> Result<T, rusqlite::Error>,
    ) -> Result<T, LedgerError> {
        let path = self.path.clone();
        let wrap = |source| LedgerError::Sql {
            path: path.clone(),
            source,
        };
        let _gate = WRITE_GATE
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(wrap)?;
        let mut t = Tx { tx };
        let out = f(&mut t).map_err(wrap)?;
        t.tx.commit().map_err(wrap)?;
        Ok(out)
    }

    /// The connection, for read queries a stage owns. Writes go through [`Ledger::write`].
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Stops this connection from checkpointing the WAL at its commits; a long writer that
    /// leaves checkpoints to [`Ledger::checkpoint`] on another connection (so its commits never
    /// wait for a checkpoint's copy and fsyncs while other threads wait for it).
    pub fn manual_checkpoints(&self) -> Result<(), LedgerError> {
        self.conn
            .pragma_update(None, "wal_autocheckpoint", 0)
            .and_then(|()| {
                // A WAL started over is cut back to 64 MiB, not left at its high-water mark.
                self.conn
                    .query_row("PRAGMA journal_size_limit = 67108864", [], |_| Ok(()))
            })
            .map_err(|e| self.err(e))
    }

    /// A restart checkpoint: copies the WAL into the database (waiting, within the busy
    /// timeout, for other connections' readers) so that the next commit starts the WAL over.
    pub fn checkpoint(&self) -> Result<(), LedgerError> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(()))
            .map_err(|e| self.err(e))
    }

    /// A truncate checkpoint: as [`Ledger::checkpoint`], then the WAL file is cut to zero.
    pub fn checkpoint_truncate(&self) -> Result<(), LedgerError> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .map_err(|e| self.err(e))
    }

    pub fn meta_get(&self, k: &str) -> Result<Option<String>, LedgerError> {
        self.conn
            .query_row("SELECT v FROM meta WHERE k = ?1", [k], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))
    }
}

/// Where a new row goes in the table: the queue's order packed into a positive row id, so
/// that rows are stored as triage takes them (priority descending, then alert time) and a
/// batch's updates touch a few neighbouring pages instead of one page per row (a 2,048-alert
/// batch over a table in arrival order touched ~2,200 pages per commit).
///
/// Bits: `99 - priority` (7) | milliseconds since 2020-01-01 UTC, clamped to 40 bits (to 2054)
/// | the key hash's first 16 bits. Only a placement hint: a taken id moves to one of the next
/// few, else to the end of the table; nothing reads meaning into an id.
fn clustered_id(row: &NewRow) -> i64 {
    const EPOCH_2020_MS: i64 = 1_577_836_800_000;
    let rank = i64::from(99u32.saturating_sub(row.priority.min(99)));
    let ms = chrono::DateTime::parse_from_rfc3339(&row.alert_time)
        .map(|t| t.timestamp_millis() - EPOCH_2020_MS)
        .unwrap_or(0)
        .clamp(0, (1 << 40) - 1);
    let key = row
        .key_hash
        .as_str()
        .get(..4)
        .and_then(|h| i64::from_str_radix(h, 16).ok())
        .unwrap_or(0);
    (rank << 56) | (ms << 16) | key
}

/// How many ids past a taken clustered id an insert tries before letting SQLite choose.
const ID_PROBES: u32 = 8;

/// One write transaction.
pub struct Tx<'c> {
    tx: rusqlite::Transaction<'c>,
}

pub(crate) fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Tx<'_> {
    /// The transaction's connection, for statements a stage owns (its own tables).
    pub fn conn(&self) -> &Connection {
        &self.tx
    }

    /// Inserts a row; `false` when a row with that key hash exists (nothing changed).
    ///
    /// The row id follows the queue's order (see [`clustered_id`]), so the rows a triage batch
    /// updates sit side by side in the table.
    pub fn insert(&mut self, row: &NewRow) -> Result<bool, rusqlite::Error> {
        let now = now_text();
        // A few neighbours of a taken place, then SQLite's own choice (the end of the table):
        // many rows of one priority and millisecond (a file of bad lines quarantined at one
        // admission time, clamped times) must not walk a long occupied run.
        let mut id = Some(clustered_id(row));
        {
            let mut taken = self
                .tx
                .prepare_cached("SELECT 1 FROM alerts WHERE id = ?1")?;
            let mut probes = 0;
            while let Some(i) = id {
                if !taken.exists([i])? {
                    break;
                }
                probes += 1;
                id = (probes < ID_PROBES).then_some(i + 1);
            }
        }
        let mut st = self.tx.prepare_cached(
            "INSERT OR IGNORE INTO alerts (id, key_hash, alert_key, state, name, content_hash, level,
               priority, alert_time, index_name, doc_id, worker, source, created_at, updated_at)
             VALUES (?13, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, NULL, ?11, ?12, ?12)",
        )?;
        let n = st.execute(params![
            row.key_hash.as_str(),
            row.alert_key,
            row.state.as_str(),
            row.name,
            row.content_hash,
            row.level,
            row.priority,
            row.alert_time,
            row.index_name,
            row.doc_id,
            row.source,
            now,
            id,
        ])?;
        Ok(n == 1)
    }

    pub fn delete(&mut self, key_hash: &str) -> Result<bool, rusqlite::Error> {
        Ok(self
            .tx
            .execute("DELETE FROM alerts WHERE key_hash = ?1", [key_hash])?
            == 1)
    }

    /// One row of the run history (`runs`): the run's report, as the heartbeat wrote it.
    /// Records a run and keeps the newest `keep` (run ids sort by their start time).
    pub fn record_run(
        &mut self,
        run_id: &str,
        started_at: &str,
        finished_at: &str,
        status: &str,
        report_json: &str,
        keep: u64,
    ) -> Result<(), rusqlite::Error> {
        self.tx.execute(
            "INSERT OR REPLACE INTO runs (run_id, started_at, finished_at, status, report)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![run_id, started_at, finished_at, status, report_json],
        )?;
        self.tx.execute(
            "DELETE FROM runs WHERE run_id <
               (SELECT run_id FROM runs ORDER BY run_id DESC LIMIT 1 OFFSET ?1)",
            [keep.saturating_sub(1).min(i64::MAX as u64) as i64],
        )?;
        Ok(())
    }

    pub fn meta(&self, k: &str) -> Result<Option<String>, rusqlite::Error> {
        self.tx
            .query_row("SELECT v FROM meta WHERE k = ?1", [k], |r| r.get(0))
            .optional()
    }

    pub fn meta_set(&mut self, k: &str, v: &str) -> Result<(), rusqlite::Error> {
        self.tx.execute(
            "INSERT INTO meta (k, v) VALUES (?1, ?2) ON CONFLICT(k) DO UPDATE SET v = excluded.v",
            [k, v],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn row(k: &str) -> NewRow {
        NewRow {
            key_hash: KeyHash::of(k.as_bytes()),
            alert_key: k.into(),
            state: State::Queued,
            name: format!("{k}.json"),
            content_hash: "c".into(),
            level: Some(3),
            priority: 3,
            alert_time: "2026-01-01T00:00:00Z".into(),
            index_name: None,
            doc_id: None,
            source: "test",
        }
    }

    #[test]
    fn row_ids_follow_the_queue_order_and_a_taken_id_moves_on() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut l = Ledger::open(&dir.path().join("ledger.db"), Durability::Off).expect("open");
        // (key, priority, time): the queue's order is priority descending, then time.
        let spec = [
            ("late-low", 2, "2026-01-02T00:00:00Z"),
            ("early-high", 12, "2026-01-01T00:00:00Z"),
            ("early-low", 2, "2026-01-01T00:00:00.001Z"),
            ("late-high", 12, "2026-03-01T00:00:00Z"),
            ("unparsed", 2, "not a time"),
        ];
        for (k, p, t) in spec {
            let mut r = row(k);
            r.priority = p;
            r.alert_time = t.into();
            assert!(l.write(|tx| tx.insert(&r)).expect("insert"));
        }
        // A taken id (the same priority, time and key-hash prefix as a row already there):
        // the next free one.
        let mut twin = row("twin");
        twin.priority = 1;
        let id = clustered_id(&twin);
        l.conn()
            .execute(
                "INSERT INTO alerts (id, key_hash, alert_key, state, name, content_hash, priority,
                   alert_time, source, created_at, updated_at)
                 VALUES (?1, 'x', 'x', 'queued', 'x', 'c', 3, 't', 'test', 't', 't')",
                [id],
            )
            .expect("occupy");
        assert!(l.write(|tx| tx.insert(&twin)).expect("insert twin"));
        let order: Vec<(i64, String)> = l
            .conn()
            .prepare("SELECT id, alert_key FROM alerts ORDER BY id")
            .expect("prepare")
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        let keys: Vec<&str> = order.iter().map(|(_, k)| k.as_str()).collect();
        assert_eq!(
            keys[..5],
            [
                "early-high",
                "late-high",
                "unparsed",
                "early-low",
                "late-low"
            ],
            "an unreadable time sorts first within its priority"
        );
        assert_eq!(order[5..], [(id, "x".into()), (id + 1, "twin".into())]);
        // A long occupied run: after a few probes the row goes to the end of the table.
        let mut far = row("far");
        far.priority = 1;
        let start = clustered_id(&far);
        for i in (0..i64::from(ID_PROBES)).chain([1000]) {
            l.conn()
                .execute(
                    "INSERT INTO alerts (id, key_hash, alert_key, state, name, content_hash,
                       priority, alert_time, source, created_at, updated_at)
                     VALUES (?1, ?2, 'x', 'queued', 'x', 'c', 1, 't', 'test', 't', 't')",
                    rusqlite::params![start + i, format!("occupied-{i}")],
                )
                .expect("occupy");
        }
        let max: i64 = l
            .conn()
            .query_row("SELECT MAX(id) FROM alerts", [], |r| r.get(0))
            .expect("max");
        assert!(max >= start + 1000);
        assert!(l.write(|tx| tx.insert(&far)).expect("insert far"));
        let far_id: i64 = l
            .conn()
            .query_row("SELECT id FROM alerts WHERE alert_key = 'far'", [], |r| {
                r.get(0)
            })
            .expect("far");
        assert_eq!(far_id, max + 1, "placed at the end, not after a long walk");
    }

    #[test]
    fn insert_is_idempotent_and_states_move() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut l = Ledger::open(&dir.path().join("ledger.db"), Durability::Off).expect("open");
        let r = row("a");
        assert!(l.write(|t| t.insert(&r)).expect("insert"));
        assert!(!l.write(|t| t.insert(&r)).expect("insert again"));
        assert!(l
            .write(|t| t.set_state(r.key_hash.as_str(), State::Overflow, "n.json", None))
            .expect("set"));
        assert_eq!(
            l.get(&r.key_hash).expect("get").map(|x| x.state),
            Some(State::Overflow)
        );
        assert_eq!(l.counts().expect("counts"), vec![(State::Overflow, 1)]);
        assert!(!l
            .write(|t| t.set_state("nope", State::Queued, "x", None))
            .expect("set"));
    }

    #[test]
    fn reopening_keeps_rows_and_schema_version() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("ledger.db");
        {
            let mut l = Ledger::open(&p, Durability::Strict).expect("open");
            l.write(|t| t.insert(&row("b"))).expect("insert");
        }
        let l = Ledger::open(&p, Durability::Batch).expect("reopen");
        assert_eq!(l.counts().expect("counts"), vec![(State::Queued, 1)]);
    }
}
