//! Retention's ledger side: which cases are due, the move to `expired` with the directories
//! still to remove (`expiring`), and the compaction of old expired rows.
//!
//! Design constraints:
//! - A row moves to `expired` in the same transaction that records its case directory (and
//!   pack) in `expiring`; the directories are removed after that commit and forgotten by a
//!   later one. A crash anywhere leaves either a live row with its files, or an `expired` row
//!   whose leftover directories `expiring` still names: never a file without its record.
//! - Only `triaged` and `escalated` rows expire (quarantine never does), and a `high` row only
//!   once its pack is published (`escalated`): triage still owes a `triaged` high row its pack.
//! - Queries are bounded (`LIMIT`) and use the partial indexes of migration 7.

use rusqlite::params;

use super::{now_text, Ledger, LedgerError, Tx};

/// A case due for removal (or being removed).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DueCase {
    #[serde(skip)]
    pub key_hash: String,
    pub case_id: String,
    /// `bucket/YYYY/MM/DD/<case id>`, under `cases/`.
    pub case_path: String,
    pub bucket: String,
    /// `escalations/<case id>/` exists (an `escalated` row).
    pub pack: bool,
    pub alert_time: String,
}

impl Ledger {
    /// At most `limit` cases of `bucket` whose alert time is before `before` (RFC 3339), oldest
    /// first.
    pub fn due_cases(
        &self,
        bucket: &str,
        before: &str,
        limit: u64,
    ) -> Result<Vec<DueCase>, LedgerError> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT key_hash, case_id, case_path, bucket, state, alert_time FROM alerts
                 WHERE state IN ('triaged', 'escalated') AND bucket = ?1 AND alert_time < ?2
                   AND case_id IS NOT NULL AND case_path IS NOT NULL
                   AND NOT (bucket = 'high' AND state = 'triaged')
                 ORDER BY alert_time LIMIT ?3",
            )
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map(params![bucket, before, limit as i64], |r| {
                Ok(DueCase {
                    key_hash: r.get(0)?,
                    case_id: r.get(1)?,
                    case_path: r.get(2)?,
                    bucket: r.get(3)?,
                    pack: r.get::<_, String>(4)? == "escalated",
                    alert_time: r.get(5)?,
                })
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    /// How many cases of `bucket` are due (for the report of a bounded run).
    pub fn due_count(&self, bucket: &str, before: &str) -> Result<u64, LedgerError> {
        self.conn
            .query_row(
                "SELECT COUNT(*) FROM alerts
                 WHERE state IN ('triaged', 'escalated') AND bucket = ?1 AND alert_time < ?2
                   AND case_id IS NOT NULL AND case_path IS NOT NULL
                   AND NOT (bucket = 'high' AND state = 'triaged')",
                params![bucket, before],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }

    /// At most `limit` expired rows whose directories may still be on disk.
    pub fn expiring(&self, limit: u64) -> Result<Vec<DueCase>, LedgerError> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT e.key_hash, e.case_id, e.case_path, COALESCE(a.bucket, ''), e.pack,
                        COALESCE(a.alert_time, '')
                 FROM expiring e LEFT JOIN alerts a ON a.key_hash = e.key_hash
                 ORDER BY e.key_hash LIMIT ?1",
            )
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([limit as i64], |r| {
                Ok(DueCase {
                    key_hash: r.get(0)?,
                    case_id: r.get(1)?,
                    case_path: r.get(2)?,
                    bucket: r.get(3)?,
                    pack: r.get(4)?,
                    alert_time: r.get(5)?,
                })
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    /// Expired rows per bucket.
    pub fn expired_per_bucket(&self) -> Result<Vec<(String, u64)>, LedgerError> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT COALESCE(bucket, ''), COUNT(*) FROM alerts WHERE state = 'expired'
                 GROUP BY bucket ORDER BY bucket",
            )
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }
}

impl Tx<'_> {
    /// Moves each case's row to `expired` and records its directories in `expiring`; a row no
    /// longer in `triaged` or `escalated` (changed since it was read) is left alone. Whether
    /// each case's row expired, in order: only those cases' directories may go.
    pub fn expire(&mut self, cases: &[DueCase]) -> Result<Vec<bool>, rusqlite::Error> {
        let now = now_text();
        let mut done = Vec::with_capacity(cases.len());
        let mut up = self.tx.prepare_cached(
            "UPDATE alerts SET state = 'expired', worker = NULL, updated_at = ?2
             WHERE key_hash = ?1 AND state IN ('triaged', 'escalated')",
        )?;
        let mut ins = self.tx.prepare_cached(
            "INSERT OR REPLACE INTO expiring (key_hash, case_id, case_path, pack)
             VALUES (?1, ?2, ?3, ?4)",
        )?;
        for c in cases {
            let expired = up.execute(params![c.key_hash, now])? == 1;
            if expired {
                ins.execute(params![c.key_hash, c.case_id, c.case_path, c.pack])?;
            }
            done.push(expired);
        }
        Ok(done)
    }

    /// Forgets the `expiring` records of cases whose directories are gone (and durably so).
    pub fn expiring_done(&mut self, keys: &[String]) -> Result<(), rusqlite::Error> {
        let mut st = self
            .tx
            .prepare_cached("DELETE FROM expiring WHERE key_hash = ?1")?;
        for k in keys {
            st.execute([k])?;
        }
        Ok(())
    }

    /// Deletes at most `limit` expired rows whose alert time is before `before`, with no
    /// directory left to remove: their keys are forgotten (a key seen again is a new alert).
    pub fn compact_expired(&mut self, before: &str, limit: u64) -> Result<u64, rusqlite::Error> {
        Ok(self.tx.execute(
            "DELETE FROM alerts WHERE key_hash IN (
               SELECT key_hash FROM alerts WHERE state = 'expired' AND alert_time < ?1
                 AND key_hash NOT IN (SELECT key_hash FROM expiring)
               ORDER BY alert_time LIMIT ?2)",
            params![before, limit as i64],
        )? as u64)
    }
}
