//! A ledger connection that cannot write, for commands that promise to change nothing
//! (`policy replay`, the console), and the rows replay reads.
//!
//! Design constraints:
//! - **Nothing is written.** No migration, no `journal_mode` change, no write statement
//!   (`PRAGMA query_only` refuses them on the connection), no checkpoint of someone else's WAL
//!   into `ledger.db`. [`Ledger::open`] does all of these, which is why this is a separate
//!   opener.
//! - **No litter.** A plain `SQLITE_OPEN_READ_ONLY` connection to a WAL database creates
//!   `ledger.db-wal` and `ledger.db-shm` when they are absent and cannot remove them at close.
//!   So when they are absent (no other connection is open and the WAL was checkpointed away)
//!   the connection opens read-write with `query_only` on: the WAL files it creates are empty,
//!   and the last connection to close removes them, leaving `ledger.db` byte for byte as it
//!   was. When they exist (another process has the ledger open, or a crash left its WAL) the
//!   connection opens read-only and uses them as they are.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::{LedgerError, MIGRATIONS};

/// The first schema version with every column replay reads (`incident`: migration 5).
const REPLAY_SCHEMA: i64 = 5;

/// A read-only view of `ledger.db`.
pub struct ReadOnlyLedger {
    conn: Connection,
    path: PathBuf,
}

/// A row as replay reads it: what was stored for one alert when it was triaged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRow {
    pub alert_key: String,
    /// The lifecycle state as stored (a state this build does not know stays as written).
    pub state: String,
    pub bucket: Option<String>,
    pub case_id: Option<String>,
    /// `bucket/YYYY/MM/DD/case-id` under `cases/`.
    pub case_path: Option<String>,
    /// RFC 3339, UTC, as the ledger stores it.
    pub alert_time: String,
    pub agent: Option<String>,
    pub rule_id: Option<String>,
    pub level: Option<i64>,
    pub description: Option<String>,
    pub incident: Option<String>,
}

impl ReadOnlyLedger {
    /// Opens the ledger at `path` for reading only (see the module's docs). A missing ledger
    /// is an error (nothing is created); so is one older than migration 5 (any other command
    /// migrates it) or newer than this build.
    pub fn open(path: &Path) -> Result<ReadOnlyLedger, LedgerError> {
        let (conn, found) = connect(path, Duration::from_secs(60))?;
        if found < REPLAY_SCHEMA {
            return Err(LedgerError::TooOld {
                path: path.to_path_buf(),
                found,
                needed: REPLAY_SCHEMA,
            });
        }
        Ok(ReadOnlyLedger {
            conn,
            path: path.to_path_buf(),
        })
    }

    fn err(&self, source: rusqlite::Error) -> LedgerError {
        LedgerError::Sql {
            path: self.path.clone(),
            source,
        }
    }

    /// Every row whose alert time is at or after `since` (RFC 3339 as the ledger writes it:
    /// UTC, milliseconds, `Z`, so that text order is time order), whatever its state, and,
    /// with `bucket`, only rows stored in that bucket; in case path order (a day's cases
    /// together), rows without a case path last. One read transaction.
    pub fn rows_since(
        &self,
        since: &str,
        bucket: Option<&str>,
    ) -> Result<Vec<StoredRow>, LedgerError> {
        let mut st = self
            .conn
            .prepare(
                "SELECT alert_key, state, bucket, case_id, case_path, alert_time, agent, rule_id,
                        level, description, incident
                 FROM alerts
                 WHERE alert_time >= ?1 AND (?2 IS NULL OR bucket = ?2)
                 ORDER BY case_path IS NULL, case_path, alert_key",
            )
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map(rusqlite::params![since, bucket], |r| {
                Ok(StoredRow {
                    alert_key: r.get(0)?,
                    state: r.get(1)?,
                    bucket: r.get(2)?,
                    case_id: r.get(3)?,
                    case_path: r.get(4)?,
                    alert_time: r.get(5)?,
                    agent: r.get(6)?,
                    rule_id: r.get(7)?,
                    level: r.get(8)?,
                    description: r.get(9)?,
                    incident: r.get(10)?,
                })
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    /// How many rows have an alert time before `since` (and, with `bucket`, that bucket): the
    /// alerts a replay of the period leaves out.
    pub fn count_before(&self, since: &str, bucket: Option<&str>) -> Result<u64, LedgerError> {
        self.conn
            .query_row(
                "SELECT COUNT(*) FROM alerts WHERE alert_time < ?1 AND (?2 IS NULL OR bucket = ?2)",
                rusqlite::params![since, bucket],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }
}

/// A connection to the ledger at `path` that cannot write and leaves no litter (see the
/// module's docs), and the schema version it found: a missing ledger is an error (nothing is
/// created), so is one newer than this build. Every read-only opener goes through here
/// ([`ReadOnlyLedger::open`], the console's `Ledger::open_read_only`).
pub(super) fn connect(path: &Path, busy: Duration) -> Result<(Connection, i64), LedgerError> {
    let wrap = |source| LedgerError::Sql {
        path: path.to_path_buf(),
        source,
    };
    let wal_present = wal_file(path, "-wal").exists() || wal_file(path, "-shm").exists();
    let base = OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    let flags = if wal_present {
        base | OpenFlags::SQLITE_OPEN_READ_ONLY
    } else {
        // Read-write without CREATE: a missing file is an error, not a new ledger.
        base | OpenFlags::SQLITE_OPEN_READ_WRITE
    };
    let conn = Connection::open_with_flags(path, flags).map_err(wrap)?;
    conn.busy_timeout(busy).map_err(wrap)?;
    conn.pragma_update(None, "query_only", true).map_err(wrap)?;
    let found: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(wrap)?;
    let known = MIGRATIONS.len() as i64;
    if found > known {
        return Err(LedgerError::TooNew {
            path: path.to_path_buf(),
            found,
            known,
        });
    }
    Ok((conn, found))
}

fn wal_file(db: &Path, suffix: &str) -> PathBuf {
    let mut s = db.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // the test reads its fixture files with std::fs
mod tests {
    use super::*;
    use crate::store::fsx::Durability;
    use crate::store::ledger::Ledger;

    /// Every file of a directory: name → (bytes, mtime).
    fn snapshot(
        dir: &Path,
    ) -> std::collections::BTreeMap<String, (Vec<u8>, std::time::SystemTime)> {
        std::fs::read_dir(dir)
            .expect("list")
            .map(|e| {
                let e = e.expect("entry");
                let m = e.metadata().expect("metadata");
                (
                    e.file_name().to_string_lossy().into_owned(),
                    (
                        std::fs::read(e.path()).expect("read"),
                        m.modified().expect("mtime"),
                    ),
                )
            })
            .collect()
    }

    fn ledger_with_a_row(dir: &Path) -> PathBuf {
        let p = dir.join("ledger.db");
        let mut l = Ledger::open(&p, Durability::Off).expect("open");
        let r = super::super::tests::row("k1");
        l.write(|t| t.insert(&r)).expect("insert");
        p
    }

    #[test]
    fn reading_leaves_the_ledger_and_its_directory_as_they_were() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = ledger_with_a_row(dir.path());
        let before = snapshot(dir.path());
        assert_eq!(before.len(), 1, "the last connection removed the WAL files");
        let ro = ReadOnlyLedger::open(&p).expect("open read-only");
        let rows = ro
            .rows_since("2000-01-01T00:00:00.000Z", None)
            .expect("rows");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].alert_key, "k1");
        assert!(
            ro.conn.execute("DELETE FROM alerts", []).is_err(),
            "the connection refuses writes"
        );
        drop(ro);
        assert_eq!(snapshot(dir.path()), before);
    }

    #[test]
    fn beside_a_live_writer_it_reads_the_wal_and_leaves_the_writers_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = ledger_with_a_row(dir.path());
        let mut writer = Ledger::open(&p, Durability::Off).expect("writer");
        let r = super::super::tests::row("k2");
        writer.write(|t| t.insert(&r)).expect("insert");
        let ro = ReadOnlyLedger::open(&p).expect("open read-only");
        assert_eq!(ro.rows_since("2000", None).expect("rows").len(), 2);
        assert_eq!(ro.count_before("2000", None).expect("count"), 0);
        assert_eq!(ro.count_before("2027", None).expect("count"), 2);
        drop(ro);
        drop(writer);
        assert_eq!(
            snapshot(dir.path()).len(),
            1,
            "the writer's close cleaned up"
        );
    }

    #[test]
    fn a_missing_ledger_is_an_error_and_is_not_created() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(ReadOnlyLedger::open(&dir.path().join("ledger.db")).is_err());
        assert_eq!(snapshot(dir.path()).len(), 0);
    }
}
