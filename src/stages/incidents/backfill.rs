//! The backfill: rows triaged before incidents existed get theirs, from their stored alert and
//! the policy in force, in batches, resumable after a crash (each batch is one transaction; a
//! row that has an incident is never assigned again). The ledger migration sets
//! [`BACKFILL_META`] when it found such rows; the next triage runs this before its batches and
//! clears it when no row is left.
//!
//! Design constraints:
//! - A row's alert is its case's `alert.json`. A case that cannot be read still gets an
//!   incident: from what its row recorded (rule id, level, description, agent, time), so every
//!   member row belongs to exactly one incident whatever the disk holds (reconcile speaks for
//!   the missing case).
//! - The agent and bucket are the row's (what triage decided then), not decided again.

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use crate::store::fsx::{FsError, ReadOutcome};
use crate::store::ledger::incidents::{BackfillRow, BACKFILL_META};
use crate::store::ledger::{Ledger, LedgerError};
use crate::store::state::StateDir;

/// Rows per transaction.
pub const BACKFILL_BATCH: usize = 2_000;
const ALERT_MAX: u64 = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// What a backfill did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackfillReport {
    /// Rows given an incident.
    pub assigned: u64,
    /// Of those, rows whose case could not be read (grouped from the row alone).
    pub from_row: u64,
}

/// Whether the ledger says a backfill is owed.
pub fn pending(ledger: &Ledger) -> Result<bool, LedgerError> {
    Ok(ledger.meta_get(BACKFILL_META)?.is_some())
}

/// Assigns an incident to every member row without one.
pub fn run(
    state: &StateDir,
    ledger: &mut Ledger,
    policy: &sf_policy::Policy,
    now: DateTime<Utc>,
) -> Result<BackfillReport, BackfillError> {
    let mut report = BackfillReport::default();
    let mut after = i64::MIN;
    let at = crate::store::ledger::incidents::time_text(now);
    loop {
        let rows = ledger.rows_without_incident(after, BACKFILL_BATCH)?;
        let Some(last) = rows.last() else {
            break;
        };
        after = last.id;
        let mut assigned = Vec::with_capacity(rows.len());
        for row in &rows {
            let (alert, from_case) = alert_of(state, row)?;
            if !from_case {
                report.from_row += 1;
            }
            let bucket = row
                .bucket
                .as_deref()
                .and_then(sf_policy::Bucket::parse)
                .unwrap_or(sf_policy::Bucket::Low);
            let agent = row.agent.clone().unwrap_or_else(|| "unknown".into());
            let time = DateTime::parse_from_rfc3339(&row.alert_time)
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or(now);
            assigned.push((
                row.key_hash.clone(),
                policy.incident(&alert, &agent, bucket, time),
            ));
        }
        let n = ledger.write(|tx| {
            let mut n = 0;
            for (key_hash, k) in &assigned {
                tx.ensure_incident(k, &at)?;
                n += u64::from(tx.backfill_incident(key_hash, &k.id)?);
            }
            Ok(n)
        })?;
        report.assigned += n;
        crate::failpoint::crash_point("incident-backfill");
    }
    // Rows moved in by another process meanwhile were triaged with their incident.
    if ledger.members_without_incident()? == 0 {
        ledger.write(|tx| tx.meta_clear(BACKFILL_META))?;
    }
    Ok(report)
}

/// The row's alert: its case's `alert.json`, else one rebuilt from the row (`false`).
/// Any error reading the case (not a directory, a link, unreadable) falls back to the row.
fn alert_of(state: &StateDir, row: &BackfillRow) -> Result<(Value, bool), FsError> {
    if let Some(path) = &row.case_path {
        if let Ok(Some(dir)) = state.cases.open_path_opt(path) {
            if let Ok(ReadOutcome::Bytes(b)) = dir.read_regular(b"alert.json", ALERT_MAX) {
                if let Ok(v @ Value::Object(_)) = serde_json::from_slice::<Value>(&b) {
                    return Ok((v, true));
                }
            }
        }
    }
    let mut rule = Map::new();
    if let Some(id) = &row.rule_id {
        rule.insert("id".into(), Value::String(id.clone()));
    }
    if let Some(l) = row.level {
        rule.insert("level".into(), json!(l));
    }
    if let Some(d) = &row.description {
        rule.insert("description".into(), Value::String(d.clone()));
    }
    Ok((
        json!({
            "timestamp": row.alert_time,
            "rule": rule,
            "agent": { "name": row.agent },
        }),
        false,
    ))
}
