//! The `incidents` table: one row per incident, its member counts kept by triggers (migration
//! 5) in the transactions that move member rows, and the revision its files show. Reads here
//! are what the incident rebuilder, reconcile and the `incidents` commands ask.
//!
//! Design constraints:
//! - A row's incident is written with its intent, in the same transaction as the incident's row
//!   ([`Tx::ensure_incident`]), so a member never points at a missing incident.
//! - Member order is `(alert_time, case_id)`: a total order that no processing order changes.

use rusqlite::{params, OptionalExtension};

use super::{Ledger, LedgerError, Tx};

/// The member states (a row's case is published).
pub const MEMBER_STATES: &str = "('triaged', 'escalated')";

/// Meta key: set while rows triaged before incidents existed still lack one.
pub const BACKFILL_META: &str = "incident_backfill";

/// An incident's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentRow {
    pub id: String,
    pub group_id: String,
    /// The key fields, as JSON (`[{"field":..,"value":..}]`).
    pub key: String,
    pub window_secs: u64,
    pub window_start: String,
    pub window_end: String,
    pub previous: String,
    pub members: u64,
    pub suppressed: u64,
    pub low: u64,
    pub medium: u64,
    pub high: u64,
    pub critical: u64,
    pub max_level: Option<u32>,
    pub first_time: Option<String>,
    pub last_time: Option<String>,
    pub rev: i64,
    pub built_rev: i64,
    pub built_status: Option<String>,
}

/// One member row, as the timeline and the case lists read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRow {
    pub case_id: String,
    pub case_path: String,
    pub alert_time: String,
    pub bucket: String,
    pub level: Option<u32>,
    pub rule_id: Option<String>,
    pub description: Option<String>,
    pub agent: String,
    pub packed: bool,
}

/// The ledger's own count of one incident's members (from the rows), beside the table's.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CountedMembers {
    pub members: u64,
    pub suppressed: u64,
    pub low: u64,
    pub medium: u64,
    pub high: u64,
    pub critical: u64,
}

/// An incident id, the table's counts and its rows' counts (which differ).
pub type Disagreement = (String, CountedMembers, CountedMembers);

/// What reconcile reads of the incidents.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IncidentTotals {
    /// Incidents with at least one member.
    pub incidents: u64,
    /// Of those, the ones whose files say `open`.
    pub open: u64,
    /// Their members (the table's counts).
    pub members: u64,
}

pub(super) const INCIDENT_COLUMNS: &str =
    "id, group_id, key, window_secs, window_start, window_end, previous,
    members, suppressed, low, medium, high, critical, max_level, first_time, last_time, rev,
    built_rev, built_status";

pub(super) fn incident_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<IncidentRow> {
    let n = |i: usize| -> rusqlite::Result<u64> { Ok(r.get::<_, i64>(i)?.max(0) as u64) };
    Ok(IncidentRow {
        id: r.get(0)?,
        group_id: r.get(1)?,
        key: r.get(2)?,
        window_secs: n(3)?,
        window_start: r.get(4)?,
        window_end: r.get(5)?,
        previous: r.get(6)?,
        members: n(7)?,
        suppressed: n(8)?,
        low: n(9)?,
        medium: n(10)?,
        high: n(11)?,
        critical: n(12)?,
        max_level: r.get(13)?,
        first_time: r.get(14)?,
        last_time: r.get(15)?,
        rev: r.get(16)?,
        built_rev: r.get(17)?,
        built_status: r.get(18)?,
    })
}

fn member_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<MemberRow> {
    Ok(MemberRow {
        case_id: r.get(0)?,
        case_path: r.get(1)?,
        alert_time: r.get(2)?,
        bucket: r.get(3)?,
        level: r.get(4)?,
        rule_id: r.get(5)?,
        description: r.get(6)?,
        agent: r.get::<_, Option<String>>(7)?.unwrap_or_default(),
        packed: r.get::<_, String>(8)? == "escalated",
    })
}

/// The time text the ledger stores (RFC 3339, milliseconds, `Z`): compares as it sorts.
pub fn time_text(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Tx<'_> {
    /// The incident's row, created when this is its first intent (nothing changes otherwise).
    pub fn ensure_incident(
        &mut self,
        k: &sf_policy::IncidentKey,
        at: &str,
    ) -> Result<(), rusqlite::Error> {
        let key = serde_json::to_string(&k.key).unwrap_or_else(|_| "[]".into());
        self.tx
            .prepare_cached(
                "INSERT OR IGNORE INTO incidents (id, group_id, key, window_secs, window_start,
                   window_end, previous, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                k.id,
                k.group,
                key,
                i64::try_from(k.window_secs).unwrap_or(i64::MAX),
                time_text(k.window_start),
                time_text(k.window_end()),
                k.previous,
                at,
            ])?;
        Ok(())
    }

    /// The incident's files show revision `rev` with status `status` (`None`: it has no
    /// members and no files). A later change keeps it dirty (`rev` moved on).
    pub fn incident_built(
        &mut self,
        id: &str,
        rev: i64,
        status: Option<&str>,
    ) -> Result<(), rusqlite::Error> {
        self.tx
            .prepare_cached("UPDATE incidents SET built_rev = ?2, built_status = ?3 WHERE id = ?1")?
            .execute(params![id, rev, status])?;
        Ok(())
    }

    /// Clears a meta value.
    pub fn meta_clear(&mut self, k: &str) -> Result<(), rusqlite::Error> {
        self.tx.execute("DELETE FROM meta WHERE k = ?1", [k])?;
        Ok(())
    }

    /// Marks every incident dirty (its files are rebuilt by the next round): reconcile found
    /// files that do not show the ledger.
    pub fn incidents_dirty(&mut self, ids: &[String]) -> Result<(), rusqlite::Error> {
        let mut st = self
            .tx
            .prepare_cached("UPDATE incidents SET built_rev = -1 WHERE id = ?1")?;
        for id in ids {
            st.execute([id])?;
        }
        Ok(())
    }

    /// Assigns `incident` to the member row `key_hash` that has none (the backfill of rows
    /// triaged before incidents existed); `false` when the row has one or is no member.
    pub fn backfill_incident(
        &mut self,
        key_hash: &str,
        incident: &str,
    ) -> Result<bool, rusqlite::Error> {
        let n = self
            .tx
            .prepare_cached(&format!(
                "UPDATE alerts SET incident = ?2 WHERE key_hash = ?1 AND incident IS NULL
                   AND state IN {MEMBER_STATES}"
            ))?
            .execute(params![key_hash, incident])?;
        Ok(n == 1)
    }
}

impl Ledger {
    /// Every row `sql` returns with `p`, each mapped by `f`.
    pub(super) fn all<T, P: rusqlite::Params>(
        &self,
        sql: &str,
        p: P,
        f: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>, LedgerError> {
        let mut st = self.conn.prepare_cached(sql).map_err(|e| self.err(e))?;
        let rows = st
            .query_map(p, f)
            .and_then(|r| r.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    /// Incidents whose files are behind the ledger: changed since built, or shown `open`
    /// though their window closed before `cutoff` (the window's end plus `close_after` has
    /// passed). At most `limit`, by id, after `after` (a round pages through them, so
    /// incidents that commits keep dirtying cannot hide the others).
    pub fn dirty_incidents(
        &self,
        cutoff: &str,
        after: &str,
        limit: usize,
    ) -> Result<Vec<String>, LedgerError> {
        self.all(
            "SELECT id FROM (SELECT id FROM incidents WHERE rev != built_rev
               UNION SELECT id FROM incidents WHERE built_status = 'open' AND window_end <= ?1)
             WHERE id > ?2 ORDER BY id LIMIT ?3",
            params![cutoff, after, limit as i64],
            |r| r.get(0),
        )
    }

    /// One incident's row.
    pub fn incident(&self, id: &str) -> Result<Option<IncidentRow>, LedgerError> {
        self.conn
            .prepare_cached(&format!(
                "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = ?1"
            ))
            .and_then(|mut st| st.query_row([id], incident_row).optional())
            .map_err(|e| self.err(e))
    }

    /// Incidents with members, newest window first, then id; those whose window starts at or
    /// after `since` when given. At most `limit`, after `offset`.
    pub fn incidents_newest(
        &self,
        since: Option<&str>,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<IncidentRow>, LedgerError> {
        self.all(
            &format!(
                "SELECT {INCIDENT_COLUMNS} FROM incidents
                 WHERE members > 0 AND window_start >= ?1
                 ORDER BY window_start DESC, id LIMIT ?2 OFFSET ?3"
            ),
            params![since.unwrap_or(""), limit as i64, offset as i64],
            incident_row,
        )
    }

    /// Every incident (with or without members), by id, a page at a time.
    pub fn incidents_all(
        &self,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<IncidentRow>, LedgerError> {
        self.all(
            &format!("SELECT {INCIDENT_COLUMNS} FROM incidents ORDER BY id LIMIT ?1 OFFSET ?2"),
            params![limit as i64, offset as i64],
            incident_row,
        )
    }

    /// Up to `limit` members in `(alert_time, case_id)` order, or the last `limit` in reverse
    /// order when `from_end`.
    pub fn incident_members(
        &self,
        id: &str,
        limit: usize,
        from_end: bool,
    ) -> Result<Vec<MemberRow>, LedgerError> {
        let order = if from_end { "DESC" } else { "ASC" };
        self.all(
            &format!(
                "SELECT case_id, case_path, alert_time, bucket, level, rule_id, description, agent,
                   state FROM alerts
                 WHERE incident = ?1 AND state IN {MEMBER_STATES}
                 ORDER BY alert_time {order}, case_id {order} LIMIT ?2"
            ),
            params![id, limit as i64],
            member_row,
        )
    }

    /// The first member in `(alert_time, case_id)` order of the bucket `bucket`.
    pub fn first_member_in(
        &self,
        id: &str,
        bucket: &str,
    ) -> Result<Option<MemberRow>, LedgerError> {
        self.conn
            .prepare_cached(&format!(
                "SELECT case_id, case_path, alert_time, bucket, level, rule_id, description, agent,
                   state FROM alerts
                 WHERE incident = ?1 AND state IN {MEMBER_STATES} AND bucket = ?2
                 ORDER BY alert_time, case_id LIMIT 1"
            ))
            .and_then(|mut st| st.query_row(params![id, bucket], member_row).optional())
            .map_err(|e| self.err(e))
    }

    /// The distinct canonical agents of an incident's members (at most `limit`, sorted).
    pub fn incident_agents(&self, id: &str, limit: usize) -> Result<Vec<String>, LedgerError> {
        self.all(
            &format!(
                "SELECT DISTINCT agent FROM alerts
                 WHERE incident = ?1 AND state IN {MEMBER_STATES} AND agent IS NOT NULL
                 ORDER BY agent LIMIT ?2"
            ),
            params![id, limit as i64],
            |r| r.get(0),
        )
    }

    /// The totals reconcile prints.
    pub fn incident_totals(&self) -> Result<IncidentTotals, LedgerError> {
        self.conn
            .query_row(
                "SELECT COUNT(*), COALESCE(SUM(built_status = 'open'), 0), COALESCE(SUM(members), 0)
                 FROM incidents WHERE members > 0",
                [],
                |r| {
                    Ok(IncidentTotals {
                        incidents: r.get::<_, i64>(0)?.max(0) as u64,
                        open: r.get::<_, i64>(1)?.max(0) as u64,
                        members: r.get::<_, i64>(2)?.max(0) as u64,
                    })
                },
            )
            .map_err(|e| self.err(e))
    }

    /// Every incident whose table counts differ from its member rows, with both counts
    /// (`table`, `rows`). One pass over the member rows.
    pub fn incident_count_disagreements(&self) -> Result<Vec<Disagreement>, LedgerError> {
        let sql = format!(
            "WITH counted AS (
               SELECT incident AS id, COUNT(*) AS members,
                 SUM(bucket IS 'suppressed') AS suppressed, SUM(bucket IS 'low') AS low,
                 SUM(bucket IS 'medium') AS medium, SUM(bucket IS 'high') AS high,
                 SUM(COALESCE(critical, 0) != 0) AS critical
               FROM alerts WHERE incident IS NOT NULL AND state IN {MEMBER_STATES}
               GROUP BY incident)
             SELECT i.id, i.members, i.suppressed, i.low, i.medium, i.high, i.critical,
               COALESCE(c.members, 0), COALESCE(c.suppressed, 0), COALESCE(c.low, 0),
               COALESCE(c.medium, 0), COALESCE(c.high, 0), COALESCE(c.critical, 0)
             FROM incidents i LEFT JOIN counted c ON c.id = i.id
             WHERE i.members != COALESCE(c.members, 0) OR i.suppressed != COALESCE(c.suppressed, 0)
               OR i.low != COALESCE(c.low, 0) OR i.medium != COALESCE(c.medium, 0)
               OR i.high != COALESCE(c.high, 0) OR i.critical != COALESCE(c.critical, 0)
             UNION ALL
             SELECT c.id, 0, 0, 0, 0, 0, 0, c.members, c.suppressed, c.low, c.medium, c.high,
               c.critical
             FROM counted c WHERE NOT EXISTS (SELECT 1 FROM incidents i WHERE i.id = c.id)"
        );
        self.all(&sql, [], |r| {
            let n = |i: usize| -> rusqlite::Result<u64> { Ok(r.get::<_, i64>(i)?.max(0) as u64) };
            let counts = |o: usize| -> rusqlite::Result<CountedMembers> {
                Ok(CountedMembers {
                    members: n(o)?,
                    suppressed: n(o + 1)?,
                    low: n(o + 2)?,
                    medium: n(o + 3)?,
                    high: n(o + 4)?,
                    critical: n(o + 5)?,
                })
            };
            Ok((r.get(0)?, counts(1)?, counts(7)?))
        })
    }

    /// Member rows (triaged or escalated) without an incident.
    pub fn members_without_incident(&self) -> Result<u64, LedgerError> {
        self.conn
            .query_row(
                &format!(
                    "SELECT COUNT(*) FROM alerts WHERE incident IS NULL AND state IN {MEMBER_STATES}"
                ),
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n.max(0) as u64)
            .map_err(|e| self.err(e))
    }

    /// Up to `limit` member rows without an incident, after row id `after`, by row id.
    pub fn rows_without_incident(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<BackfillRow>, LedgerError> {
        self.all(&format!(
                "SELECT id, key_hash, case_path, agent, bucket, alert_time, rule_id, level, description
                 FROM alerts WHERE id > ?1 AND incident IS NULL AND state IN {MEMBER_STATES}
                 ORDER BY id LIMIT ?2"
            ), params![after, limit as i64], |r| {
                Ok(BackfillRow {
                    id: r.get(0)?,
                    key_hash: r.get(1)?,
                    case_path: r.get(2)?,
                    agent: r.get(3)?,
                    bucket: r.get(4)?,
                    alert_time: r.get(5)?,
                    rule_id: r.get(6)?,
                    level: r.get(7)?,
                    description: r.get(8)?,
                })
            })
    }
}

/// Which incidents `signalfoundry incidents` lists.
#[derive(Debug, Clone, Default)]
pub struct IncidentFilter<'a> {
    /// Only those whose window ends after this time (open: the window's end plus
    /// `close_after` is still ahead).
    pub window_ends_after: Option<String>,
    /// Only those whose highest member is in this bucket.
    pub bucket: Option<&'a str>,
    /// Only those with a member at or after this alert time.
    pub active_since: Option<String>,
    /// Only those with a member of this canonical agent.
    pub agent: Option<&'a str>,
    pub limit: usize,
}

/// The highest member's bucket of an `incidents` row, in SQL.
pub const HIGHEST_BUCKET_SQL: &str = "CASE WHEN high > 0 THEN 'high' WHEN medium > 0 THEN 'medium'
    WHEN low > 0 THEN 'low' ELSE 'suppressed' END";

impl Ledger {
    /// Incidents with members that pass `f`, the latest alert first (then id).
    pub fn incidents_filtered(
        &self,
        f: &IncidentFilter<'_>,
    ) -> Result<Vec<IncidentRow>, LedgerError> {
        let sql = format!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents i
             WHERE members > 0
               AND (?1 IS NULL OR window_end > ?1)
               AND (?2 IS NULL OR {HIGHEST_BUCKET_SQL} = ?2)
               AND (?3 IS NULL OR last_time >= ?3)
               AND (?4 IS NULL OR EXISTS (SELECT 1 FROM alerts a WHERE a.agent = ?4
                      AND a.incident = i.id AND a.state IN {MEMBER_STATES}))
             ORDER BY last_time DESC, id LIMIT ?5"
        );
        self.all(
            &sql,
            params![
                f.window_ends_after,
                f.bucket,
                f.active_since,
                f.agent,
                f.limit.min(i64::MAX as usize) as i64
            ],
            incident_row,
        )
    }

    /// Open incidents (window end after `window_ends_after`) by their highest bucket.
    pub fn open_incidents_by_bucket(
        &self,
        window_ends_after: &str,
    ) -> Result<Vec<(String, u64)>, LedgerError> {
        let sql = format!(
            "SELECT {HIGHEST_BUCKET_SQL} AS b, COUNT(*) FROM incidents
             WHERE members > 0 AND window_end > ?1 GROUP BY b"
        );
        self.all(&sql, [window_ends_after], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?.max(0) as u64))
        })
    }
}

/// A member row the backfill assigns an incident to.
#[derive(Debug, Clone)]
pub struct BackfillRow {
    pub id: i64,
    pub key_hash: String,
    pub case_path: Option<String>,
    pub agent: Option<String>,
    pub bucket: Option<String>,
    pub alert_time: String,
    pub rule_id: Option<String>,
    pub level: Option<u32>,
    pub description: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::super::{Durability, NewRow, State, MIGRATIONS};
    use super::*;
    use chrono::{TimeZone, Utc};

    /// The ledger tests' row, at 00:10 (inside the first hour's window).
    fn row(k: &str) -> NewRow {
        NewRow {
            alert_time: "2026-01-01T00:10:00.000Z".into(),
            ..super::super::tests::row(k)
        }
    }

    fn key(n: u64) -> sf_policy::IncidentKey {
        let policy = sf_policy::Policy::parse("").expect("policy").0;
        let alert = serde_json::json!({"rule": {"id": format!("{n}")}});
        let t = Utc
            .with_ymd_and_hms(2026, 1, 1, 0, 10, 0)
            .single()
            .expect("t");
        policy.incident(&alert, "web-1", sf_policy::Bucket::Low, t)
    }

    /// Moves the row of `k` to `state` (with `bucket`) the way the lifecycle does.
    fn set(l: &mut Ledger, k: &str, state: &str, bucket: &str, incident: Option<&str>) {
        l.write(|tx| {
            tx.conn().execute(
                "UPDATE alerts SET state = ?2, bucket = ?3, incident = COALESCE(?4, incident)
                 WHERE alert_key = ?1",
                rusqlite::params![k, state, bucket, incident],
            )
        })
        .expect("update");
    }

    fn counts(l: &Ledger, id: &str) -> (u64, u64, u64, i64) {
        let r = l.incident(id).expect("read").expect("incident");
        (r.members, r.low, r.high, r.rev)
    }

    #[test]
    fn the_triggers_keep_member_counts_as_rows_join_and_leave_and_mark_the_successor() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut l = Ledger::open(&dir.path().join("ledger.db"), Durability::Off).expect("open");
        let k = key(7);
        for name in ["a", "b", "c"] {
            assert!(l.write(|tx| tx.insert(&row(name))).expect("insert"));
        }
        l.write(|tx| tx.ensure_incident(&k, "t")).expect("incident");
        assert_eq!(counts(&l, &k.id), (0, 0, 0, 1));
        // The intent (triaging) is no member yet; publishing makes one.
        set(&mut l, "a", "triaging", "low", Some(&k.id));
        assert_eq!(counts(&l, &k.id).0, 0);
        set(&mut l, "a", "triaged", "low", None);
        set(&mut l, "b", "triaging", "high", Some(&k.id));
        set(&mut l, "b", "triaged", "high", None);
        assert_eq!(counts(&l, &k.id), (2, 1, 1, 3));
        // triaged -> escalated keeps the member and its counts; the files change (a pack link).
        set(&mut l, "b", "escalated", "high", None);
        assert_eq!(counts(&l, &k.id), (2, 1, 1, 4));
        let r = l.incident(&k.id).expect("read").expect("row");
        assert_eq!(r.first_time.as_deref(), Some("2026-01-01T00:10:00.000Z"));
        // The next window's incident of the same key names this one as previous; a member
        // joining or the last one leaving here changes what it says (`continues`).
        let next = sf_policy::IncidentKey {
            id: "INC-next".into(),
            previous: k.id.clone(),
            ..k.clone()
        };
        l.write(|tx| tx.ensure_incident(&next, "t")).expect("next");
        let rev_next = l.incident("INC-next").expect("r").expect("row").rev;
        // A member lost leaves; revived (decided afresh), it has no incident until its intent.
        set(&mut l, "a", "lost", "low", None);
        assert_eq!(counts(&l, &k.id).0, 1);
        l.write(|tx| {
            tx.revive(&NewRow {
                state: State::Queued,
                ..row("a")
            })
        })
        .expect("revive");
        set(&mut l, "b", "lost", "high", None);
        assert_eq!(counts(&l, &k.id).0, 0);
        assert_eq!(l.incident(&k.id).expect("r").expect("row").max_level, None);
        let a_incident: Option<String> = l
            .conn()
            .query_row(
                "SELECT incident FROM alerts WHERE alert_key = 'a'",
                [],
                |r| r.get(0),
            )
            .expect("a");
        assert_eq!(a_incident, None);
        assert_eq!(
            l.incident("INC-next").expect("r").expect("row").rev,
            rev_next + 1,
            "its predecessor emptied: the successor is rebuilt"
        );
        assert!(l.incident_count_disagreements().expect("check").is_empty());
    }

    #[test]
    fn a_ledger_from_before_incidents_is_migrated_with_its_backfill_owed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ledger.db");
        {
            // A ledger as version 4 left it, with one triaged row.
            let c = rusqlite::Connection::open(&path).expect("open");
            for m in &MIGRATIONS[..4] {
                c.execute_batch(m).expect("migrate to 4");
            }
            c.pragma_update(None, "user_version", 4).expect("version");
            c.execute(
                "INSERT INTO alerts (key_hash, alert_key, state, name, content_hash, priority,
                   alert_time, source, created_at, updated_at, bucket, case_id)
                 VALUES ('h', 'k', 'triaged', 'n', 'c', 3, '2026-01-01T00:00:00.000Z', 't', 't', 't',
                   'low', 'SF-h')",
                [],
            )
            .expect("row");
        }
        let mut l = Ledger::open(&path, Durability::Off).expect("open migrates");
        assert!(l.meta_get(BACKFILL_META).expect("meta").is_some());
        assert_eq!(l.members_without_incident().expect("count"), 1);
        let k = key(1);
        l.write(|tx| {
            tx.ensure_incident(&k, "t")?;
            tx.backfill_incident("h", &k.id)
        })
        .expect("backfill");
        assert_eq!(l.members_without_incident().expect("count"), 0);
        assert_eq!(
            counts(&l, &k.id).0,
            1,
            "the trigger counted the backfilled row"
        );
        // A row that has one is never assigned again.
        assert!(!l
            .write(|tx| tx.backfill_incident("h", "INC-other"))
            .expect("again"));
        // A fresh ledger owes nothing.
        let fresh = Ledger::open(&dir.path().join("new.db"), Durability::Off).expect("open");
        assert!(fresh.meta_get(BACKFILL_META).expect("meta").is_none());
    }
}
