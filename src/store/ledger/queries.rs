//! Read queries over the ledger that stages ask: row lookups, row ids, counts, names by
//! state. Each reads in one statement or one short read transaction (checkpoints keep up).

use rusqlite::OptionalExtension;

use super::{Ledger, LedgerError, RowLite, State};
use crate::model::alert::KeyHash;

/// How many rows are in a state, with a bucket, with or without a pack.
pub type StateCount = (State, Option<String>, bool, u64);

/// An alert's own row, as admission of its requeued entry reads it.
pub struct OwnRow {
    pub key_hash: KeyHash,
    pub alert_key: String,
    pub index_name: Option<String>,
    pub doc_id: Option<String>,
}

/// A row as reconcile's keyed pass reads it.
pub struct RowView {
    pub key_hash: String,
    pub alert_key: String,
    pub state: State,
    pub name: String,
    pub bucket: Option<String>,
    pub case_id: Option<String>,
    pub case_path: Option<String>,
    /// `pack` is not [`super::PACK_NONE`]: published or owed.
    pub pack: bool,
}

impl Ledger {
    /// Calls `f` with every row, in pages of 20,000 in table order (row id: a sequential
    /// read of the table, where paging by key hash fetched each row through the index, ~3 s
    /// for 505,836 rows). Each page is one short read, so checkpoints keep up.
    pub fn for_each_row(&self, mut f: impl FnMut(RowView)) -> Result<(), LedgerError> {
        let mut last = i64::MIN;
        loop {
            let mut st = self
                .conn
                .prepare_cached(
                    "SELECT id, key_hash, alert_key, state, name, bucket, case_id, pack, case_path FROM alerts
                     WHERE id > ?1 ORDER BY id LIMIT 20000",
                )
                .map_err(|e| self.err(e))?;
            let rows: Vec<(i64, RowView)> = st
                .query_map([last], |r| {
                    let s: String = r.get(3)?;
                    Ok((
                        r.get(0)?,
                        RowView {
                            key_hash: r.get(1)?,
                            alert_key: r.get(2)?,
                            state: State::parse(&s).unwrap_or(State::Lost),
                            name: r.get(4)?,
                            bucket: r.get(5)?,
                            case_id: r.get(6)?,
                            pack: r.get::<_, Option<bool>>(7)?.unwrap_or(false),
                            case_path: r.get(8)?,
                        },
                    ))
                })
                .and_then(|rows| rows.collect::<Result<_, _>>())
                .map_err(|e| self.err(e))?;
            let Some((tail, _)) = rows.last() else {
                return Ok(());
            };
            last = *tail;
            for (_, r) in rows {
                f(r);
            }
        }
    }

    /// Rows by (state, bucket, pack published or owed).
    pub fn state_bucket_pack_counts(&self) -> Result<Vec<StateCount>, LedgerError> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT state, bucket, pack, COUNT(*) FROM alerts GROUP BY state, bucket, pack",
            )
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, Option<bool>>(2)?.unwrap_or(false),
                    r.get::<_, u64>(3)?,
                ))
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.err(e))?;
        Ok(rows
            .into_iter()
            .filter_map(|(s, b, p, n)| Some((State::parse(&s)?, b, p, n)))
            .collect())
    }

    /// The state of the row of a key, if there is one.
    pub fn state_of(&self, key_hash: &KeyHash) -> Result<Option<State>, LedgerError> {
        self.conn
            .prepare_cached("SELECT state FROM alerts WHERE key_hash = ?1")
            .and_then(|mut st| {
                st.query_row([key_hash.as_str()], |r| r.get::<_, String>(0))
                    .optional()
            })
            .map(|s| s.and_then(|s| State::parse(&s)))
            .map_err(|e| self.err(e))
    }

    /// The case id and case path of the highest (then newest) escalated case.
    pub fn top_escalated(&self) -> Result<Option<(String, String)>, LedgerError> {
        self.conn
            .query_row(
                "SELECT case_id, case_path FROM alerts WHERE state = 'escalated'
                 ORDER BY level DESC, alert_time DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// The lag figures' times: the newest polled alert's time, the oldest waiting (queued or
    /// deferred) alert's time.
    pub fn lag_times(&self) -> Result<(Option<String>, Option<String>), LedgerError> {
        let q = |sql: &str| {
            self.conn
                .query_row(sql, [], |r| r.get::<_, Option<String>>(0))
                .map_err(|e| self.err(e))
        };
        Ok((
            q("SELECT MAX(alert_time) FROM alerts WHERE source = 'poll'")?,
            q("SELECT MIN(alert_time) FROM alerts WHERE state IN ('queued', 'overflow')")?,
        ))
    }

    /// The alert's own `quarantined` row that names the entry file `name` (not an entry's
    /// row of its own, keyed `quarantine:<entry>`).
    pub fn quarantined_row_named(&self, name: &str) -> Result<Option<OwnRow>, LedgerError> {
        self.conn
            .prepare_cached(
                "SELECT key_hash, alert_key, index_name, doc_id FROM alerts
                 WHERE state = 'quarantined' AND name = ?1 AND alert_key NOT LIKE 'quarantine:%'
                 LIMIT 1",
            )
            .and_then(|mut st| {
                st.query_row([name], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Option<String>>(2)?,
                        r.get::<_, Option<String>>(3)?,
                    ))
                })
                .optional()
            })
            .map_err(|e| self.err(e))
            .map(|o| {
                o.and_then(|(kh, alert_key, index_name, doc_id)| {
                    Some(OwnRow {
                        key_hash: KeyHash::parse(&kh)?,
                        alert_key,
                        index_name,
                        doc_id,
                    })
                })
            })
    }

    /// Whether a `quarantined` row names the entry file `name` (`q-....json`).
    pub fn quarantined_as(&self, name: &str) -> Result<bool, LedgerError> {
        self.conn
            .prepare_cached(
                "SELECT 1 FROM alerts WHERE state = 'quarantined' AND name = ?1 LIMIT 1",
            )
            .and_then(|mut st| st.exists([name]))
            .map_err(|e| self.err(e))
    }
    /// Looks up one row by its key hash.
    pub fn get(&self, key_hash: &KeyHash) -> Result<Option<RowLite>, LedgerError> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT state, name, content_hash, alert_key FROM alerts WHERE key_hash = ?1",
            )
            .map_err(|e| self.err(e))?;
        st.query_row([key_hash.as_str()], |r| {
            let state: String = r.get(0)?;
            Ok(RowLite {
                state: State::parse(&state).unwrap_or(State::Lost),
                name: r.get(1)?,
                content_hash: r.get(2)?,
                alert_key: r.get(3)?,
            })
        })
        .optional()
        .map_err(|e| self.err(e))
    }

    /// The row ids of key hashes (absent ones are left out), for updates in table order.
    pub fn row_ids<'k>(
        &self,
        keys: impl Iterator<Item = &'k str>,
    ) -> Result<Vec<(i64, &'k str)>, LedgerError> {
        // One read transaction for all the lookups (alone, each one took and dropped the
        // database's locks: a third of cap's time for 500,000 keys).
        let tx = self.conn.unchecked_transaction().map_err(|e| self.err(e))?;
        let mut st = self
            .conn
            .prepare_cached("SELECT id FROM alerts WHERE key_hash = ?1")
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for k in keys {
            if let Some(id) = st
                .query_row([k], |r| r.get::<_, i64>(0))
                .optional()
                .map_err(|e| self.err(e))?
            {
                out.push((id, k));
            }
        }
        drop(st);
        tx.commit().map_err(|e| self.err(e))?;
        Ok(out)
    }

    /// Rows per state.
    pub fn counts(&self) -> Result<Vec<(State, u64)>, LedgerError> {
        let mut st = self
            .conn
            .prepare_cached("SELECT state, COUNT(*) FROM alerts GROUP BY state")
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u64>(1)?)))
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (s, n) = row.map_err(|e| self.err(e))?;
            if let Some(s) = State::parse(&s) {
                out.push((s, n));
            }
        }
        Ok(out)
    }

    /// Key hashes and names of the rows in one state.
    pub fn names_in(&self, state: State) -> Result<Vec<(String, String)>, LedgerError> {
        let mut st = self
            .conn
            .prepare_cached("SELECT key_hash, name FROM alerts WHERE state = ?1")
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([state.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }
}
