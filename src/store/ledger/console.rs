//! The console's reads (`signalfoundry serve`): a read-only connection and the list queries
//! its pages and `/api/v1` answer from.
//!
//! Design constraints:
//! - Never writes: the connection is opened `SQLITE_OPEN_READ_ONLY` with `query_only` on, and
//!   never migrates (a ledger older than this build's schema is said, not upgraded).
//! - Every list is one indexed query with a bounded `LIMIT`: incidents newest first walk
//!   `incidents_by_start`, an agent's incidents come through `alerts_by_agent_time`, a member
//!   list walks `alerts_by_incident`, the cases list walks the rowid (arrival order) from its
//!   cursor; a rule's incidents come through `alerts_by_rule` and the sort by level walks
//!   `incidents_by_level` (migration 9); a text in the description matches the small table of
//!   distinct descriptions, whose alerts come through `alerts_by_description` (migration 10).
//!   The time budget stays as a guard for a text that matches a huge share of the alerts.

use std::path::Path;
use std::time::Duration;

use rusqlite::{params, OptionalExtension};

use super::incidents::{
    incident_row, IncidentRow, MemberRow, HIGHEST_BUCKET_SQL, INCIDENT_COLUMNS, MEMBER_STATES,
};
use super::{Ledger, LedgerError};

/// How the incidents list is sorted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncidentSort {
    /// The newest window first (then id).
    #[default]
    Newest,
    /// The highest member level first, then the newest.
    Level,
}

/// The console's incident filters (every one optional).
#[derive(Debug, Clone, Default)]
pub struct ConsoleIncidentFilter {
    /// Some(true): open (window end after `open_cutoff`); Some(false): closed.
    pub open: Option<bool>,
    /// The time a window must end after to be open (now minus `close_after`).
    pub open_cutoff: String,
    pub bucket: Option<String>,
    pub agent: Option<String>,
    pub rule: Option<String>,
    pub group: Option<String>,
    /// Members at or after this alert time (ledger time text).
    pub from: Option<String>,
    /// Members at or before this alert time.
    pub to: Option<String>,
    /// Text in a member's rule description (case-insensitive for ASCII).
    pub text: Option<String>,
    pub sort: IncidentSort,
    pub offset: u64,
    pub limit: u64,
    /// How long a scan for the text filter may take before it stops with what it has.
    pub budget: Option<Duration>,
}

/// One case row for the cases list and the case page.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CaseRow {
    /// The row id: arrival order, the list's cursor.
    pub row: i64,
    pub case_id: String,
    pub case_path: String,
    pub state: String,
    pub alert_time: String,
    pub bucket: Option<String>,
    pub level: Option<u32>,
    pub rule_id: Option<String>,
    pub description: Option<String>,
    pub agent: Option<String>,
    pub incident: Option<String>,
    pub packed: bool,
}

/// The console's case filters.
#[derive(Debug, Clone, Default)]
pub struct ConsoleCaseFilter {
    pub bucket: Option<String>,
    pub agent: Option<String>,
    pub rule: Option<String>,
    /// Only rows before this row id (the next page's cursor).
    pub before: Option<i64>,
    pub limit: u64,
}

/// A signature's hit counts (`signature_hits`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct SignatureHits {
    pub id: String,
    pub hits: u64,
    pub held_back: u64,
    pub last_hit: Option<String>,
}

fn like_pattern(text: &str) -> String {
    let mut p = String::from("%");
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

const CASE_COLUMNS: &str = "id, case_id, case_path, state, alert_time, bucket, level, rule_id,
    description, agent, incident";

fn case(r: &rusqlite::Row<'_>) -> rusqlite::Result<CaseRow> {
    let state: String = r.get(3)?;
    Ok(CaseRow {
        row: r.get(0)?,
        case_id: r.get(1)?,
        case_path: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
        packed: state == "escalated",
        state,
        alert_time: r.get(4)?,
        bucket: r.get(5)?,
        level: r.get(6)?,
        rule_id: r.get(7)?,
        description: r.get(8)?,
        agent: r.get(9)?,
        incident: r.get(10)?,
    })
}

impl Ledger {
    /// Opens the ledger at `path` for reading only: no migration, no pragma that writes, no
    /// WAL files left behind (`readonly::connect`).
    pub fn open_read_only(path: &Path) -> Result<Ledger, LedgerError> {
        let (conn, _) = super::readonly::connect(path, Duration::from_secs(5))?;
        Ok(Ledger {
            conn,
            path: path.to_path_buf(),
        })
    }

    /// A page of incidents (`limit + 1` asked, so the caller knows whether a next page exists).
    /// The bool: the scan stopped at `f.budget` (the rows are the page so far).
    pub fn console_incidents(
        &self,
        f: &ConsoleIncidentFilter,
    ) -> Result<(Vec<IncidentRow>, bool), LedgerError> {
        let order = match f.sort {
            IncidentSort::Newest => "window_start DESC, id DESC",
            IncidentSort::Level => "max_level DESC, window_start DESC, id DESC",
        };
        // An agent narrows through `alerts_by_agent_time` to its incidents, looked up by id;
        // without one the clause is a constant.
        let agent = if f.agent.is_some() {
            format!(
                "i.id IN (SELECT a.incident FROM alerts a WHERE a.agent = ?4
                   AND a.incident IS NOT NULL AND a.state IN {MEMBER_STATES})"
            )
        } else {
            "?4 IS NULL".to_string()
        };
        // Text in the description: the distinct descriptions that hold it, then their alerts
        // through `alerts_by_description` (migration 10).
        let text = if f.text.is_some() {
            format!(
                "i.id IN (SELECT a.incident FROM alerts a WHERE a.description IN
                   (SELECT d.text FROM descriptions d WHERE d.text LIKE ?9 ESCAPE '\\')
                   AND a.incident IS NOT NULL AND a.state IN {MEMBER_STATES})"
            )
        } else {
            "?9 IS NULL".to_string()
        };
        // A rule the same way, through `alerts_by_rule` (migration 9).
        let rule = if f.rule.is_some() {
            format!(
                "i.id IN (SELECT a.incident FROM alerts a WHERE a.rule_id = ?5
                   AND a.incident IS NOT NULL AND a.state IN {MEMBER_STATES})"
            )
        } else {
            "?5 IS NULL".to_string()
        };
        let sql = format!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents i
             WHERE members > 0
               AND (?1 IS NULL OR (?1 = 1 AND window_end > ?2) OR (?1 = 0 AND window_end <= ?2))
               AND (?3 IS NULL OR {HIGHEST_BUCKET_SQL} = ?3)
               AND {agent}
               AND {rule}
               AND (?6 IS NULL OR group_id = ?6)
               AND (?7 IS NULL OR last_time >= ?7)
               AND (?8 IS NULL OR first_time <= ?8)
               AND {text}
             ORDER BY {order} LIMIT ?10 OFFSET ?11"
        );
        // The one filter without an index (text in the description) scans: past `budget` the
        // scan stops and what it found so far is the answer, said as partial.
        let budget = f.budget.filter(|_| f.text.is_some());
        let stop = budget.map(|b| {
            let handle = self.conn.get_interrupt_handle();
            let (tx, rx) = std::sync::mpsc::channel::<()>();
            let watchdog = std::thread::spawn(move || {
                if rx.recv_timeout(b) == Err(std::sync::mpsc::RecvTimeoutError::Timeout) {
                    handle.interrupt();
                }
            });
            (tx, watchdog)
        });
        let result = (|| {
            let mut st = self.conn.prepare_cached(&sql)?;
            let mut rows = st.query(params![
                f.open.map(i64::from),
                f.open_cutoff,
                f.bucket,
                f.agent,
                f.rule,
                f.group,
                f.from,
                f.to,
                f.text.as_deref().map(like_pattern),
                f.limit.min(i64::MAX as u64) as i64,
                f.offset.min(i64::MAX as u64) as i64,
            ])?;
            let mut out = Vec::new();
            loop {
                match rows.next() {
                    Ok(Some(r)) => out.push(incident_row(r)?),
                    Ok(None) => return Ok((out, false)),
                    Err(e)
                        if e.sqlite_error_code()
                            == Some(rusqlite::ErrorCode::OperationInterrupted) =>
                    {
                        return Ok((out, true))
                    }
                    Err(e) => return Err(e),
                }
            }
        })();
        if let Some((tx, watchdog)) = stop {
            drop(tx);
            let _ = watchdog.join();
        }
        result.map_err(|e| self.err(e))
    }

    /// One incident's row.
    pub fn console_incident(&self, id: &str) -> Result<Option<IncidentRow>, LedgerError> {
        self.conn
            .query_row(
                &format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = ?1"),
                [id],
                incident_row,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// A page of an incident's members in alert time order.
    pub fn console_members(
        &self,
        id: &str,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<MemberRow>, LedgerError> {
        let sql = format!(
            "SELECT case_id, case_path, alert_time, bucket, level, rule_id, description, agent, state
             FROM alerts WHERE incident = ?1 AND state IN {MEMBER_STATES}
             ORDER BY alert_time, case_id LIMIT ?2 OFFSET ?3"
        );
        let mut st = self.conn.prepare_cached(&sql).map_err(|e| self.err(e))?;
        let rows = st
            .query_map(params![id, limit as i64, offset as i64], |r| {
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
            })
            .and_then(|r| r.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    /// A page of cases, newest arrival first (`limit + 1` asked by the caller for paging).
    pub fn console_cases(&self, f: &ConsoleCaseFilter) -> Result<Vec<CaseRow>, LedgerError> {
        // Newest arrival first, walking the rowid from the cursor down (`id < constant` is a
        // range on the rowid); an agent's equality lets the planner take
        // `alerts_by_agent_time` instead when that is fewer rows.
        let agent = if f.agent.is_some() {
            "agent = ?2"
        } else {
            "?2 IS NULL"
        };
        let sql = format!(
            "SELECT {CASE_COLUMNS} FROM alerts
             WHERE id < COALESCE(?4, 9223372036854775807)
               AND case_id IS NOT NULL AND state IN ('triaged', 'escalated')
               AND (?1 IS NULL OR bucket = ?1)
               AND {agent}
               AND (?3 IS NULL OR rule_id = ?3)
             ORDER BY id DESC LIMIT ?5"
        );
        let mut st = self.conn.prepare_cached(&sql).map_err(|e| self.err(e))?;
        let rows = st
            .query_map(
                params![f.bucket, f.agent, f.rule, f.before, f.limit as i64],
                case,
            )
            .and_then(|r| r.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    /// One case's row by its id (`SF-<key hash>`: the unique key-hash index).
    pub fn console_case(&self, case_id: &str) -> Result<Option<CaseRow>, LedgerError> {
        let Some(hash) = case_id.strip_prefix("SF-") else {
            return Ok(None);
        };
        self.conn
            .query_row(
                &format!("SELECT {CASE_COLUMNS} FROM alerts WHERE key_hash = ?1 AND case_id = ?2"),
                [hash, case_id],
                case,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Every signature's hit counts (one row per signature the policy has had hits for).
    pub fn console_signature_hits(&self) -> Result<Vec<SignatureHits>, LedgerError> {
        let mut st = self
            .conn
            .prepare_cached("SELECT id, hits, held_back, last_hit FROM signature_hits ORDER BY id")
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], |r| {
                Ok(SignatureHits {
                    id: r.get(0)?,
                    hits: r.get::<_, i64>(1)?.max(0) as u64,
                    held_back: r.get::<_, i64>(2)?.max(0) as u64,
                    last_hit: r.get(3)?,
                })
            })
            .and_then(|r| r.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    /// Dead delivery messages (0 when the outbox table does not exist yet).
    pub fn console_dead_messages(&self) -> Result<u64, LedgerError> {
        let exists: bool = self
            .conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'outbox')",
                [],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))?;
        if !exists {
            return Ok(0);
        }
        self.conn
            .query_row(
                "SELECT COUNT(*) FROM outbox WHERE state = 'dead'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n.max(0) as u64)
            .map_err(|e| self.err(e))
    }
}
