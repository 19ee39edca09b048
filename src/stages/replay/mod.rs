//! `policy replay`: the stored alerts of a period decided again with a candidate policy, and
//! what would change, without writing anything.
//!
//! Design constraints:
//! - **Nothing is written.** The state directory is opened by descriptor without creating,
//!   tightening or locking anything, the ledger on a connection that cannot write
//!   ([`ReadOnlyLedger`]), and cases are only read (`cases/<path>/alert.json` and `case.json`,
//!   through [`DirFd::read_regular`]: no link is followed).
//! - **The baseline is what is stored** (the rows and the cases), not the current policy
//!   re-deciding: see [`compare`]. Alerts are decided as triage decides them: the strict
//!   parse of `alert.json`, the whole document, the row's alert time for the incident; the
//!   clock's "now" for expiry.
//! - **Only published cases are replayed**: `triaged` and `escalated` rows. Every other row of
//!   the period (quarantined, lost, still in the queue, any state a later version adds) is
//!   counted by state as skipped; a case that cannot be read or decided is counted unreadable
//!   with its reason (a listed case may vanish under a concurrent command: it is a hint).
//! - **In parallel.** A few threads read and decide cases in chunks of the rows' case-path
//!   order (a day's cases together, one directory opened per day and thread).
//!
//! Layout: this file gathers (rows, reads, decisions); [`compare`] folds them (pure);
//! [`report`] prints them.

pub mod compare;
pub mod report;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use sf_policy::{Bucket, MatchedKind, Policy};

use crate::model::alert;
use crate::store::fsx::{DirFd, FsError, ReadOutcome};
use crate::store::ledger::readonly::{ReadOnlyLedger, StoredRow};
use crate::store::ledger::LedgerError;
use compare::{Guard, Replayed, Rule, Side};
pub use report::ReplayReport;

/// How a replay runs.
pub struct ReplayOptions<'a> {
    pub candidate: &'a Policy,
    /// The configured policy, asked too so that the report can say how many stored decisions
    /// it would itself decide otherwise (none: not asked).
    pub current: Option<&'a Policy>,
    /// Alerts whose alert time is at or after this.
    pub since: DateTime<Utc>,
    /// Only alerts stored in this bucket.
    pub bucket: Option<Bucket>,
    pub guard: &'a Guard,
    /// The decision time (expiry): the clock, for a replay.
    pub now: DateTime<Utc>,
    /// Larger `alert.json` files are unreadable (`[triage] max_alert_bytes`).
    pub max_alert_bytes: u64,
    pub threads: usize,
}

/// `case.json` as replay reads it: the stored decision's parts the row does not hold.
#[derive(Debug, Deserialize)]
struct CaseFile {
    #[serde(default)]
    decision: CaseDecision,
    #[serde(default)]
    policy_version: Option<String>,
    #[serde(default)]
    incident: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct CaseDecision {
    #[serde(default)]
    matched: Option<String>,
    #[serde(default)]
    matched_kind: Option<MatchedKind>,
    #[serde(default)]
    held_back: Vec<String>,
}

/// `case.json` is ours and small; anything larger than this is not one.
const MAX_CASE_BYTES: u64 = 16 << 20;

/// Rows per chunk a thread takes at a time.
const CHUNK: usize = 256;

/// Threads that read cases: two per core (reads wait on the disk), from 2 to 8.
pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(2, |n| n.get() * 2)
        .clamp(2, 8)
}

/// Why a replay could not run (a case that cannot be read is in the report instead).
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Fs(#[from] FsError),
}

/// Replays the period: reads the rows and cases, decides, compares, and returns the report.
/// `Err` only when the ledger or `cases/` cannot be read at all.
pub fn run(
    root: &DirFd,
    ledger: &ReadOnlyLedger,
    opts: &ReplayOptions<'_>,
) -> Result<ReplayReport, ReplayError> {
    let since = opts
        .since
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let bucket = opts.bucket.map(Bucket::as_str);
    let rows = ledger.rows_since(&since, bucket)?;
    let before_period = ledger.count_before(&since, bucket)?;
    let mut skipped: BTreeMap<String, u64> = BTreeMap::new();
    let mut replayable: Vec<&StoredRow> = Vec::with_capacity(rows.len());
    for r in &rows {
        if matches!(r.state.as_str(), "triaged" | "escalated") {
            replayable.push(r);
        } else {
            *skipped.entry(r.state.clone()).or_default() += 1;
        }
    }
    let cases = root.open_subdir_opt(b"cases")?;
    let (items, unreadable) = decide_all(cases.as_ref(), &replayable, opts);
    let diff = compare::fold(items, opts.guard);
    Ok(ReplayReport {
        since,
        bucket: opts.bucket,
        candidate_version: opts.candidate.version().to_string(),
        rows: rows.len() as u64,
        before_period,
        skipped,
        unreadable,
        guard_entries: opts.guard.len() as u64,
        diff,
    })
}

/// One row read and decided: the replayed alert, or why it could not be.
type Decided = Result<Replayed, (String, String)>;

/// Reads and decides every row on a few threads; the results in row order, and the
/// unreadable ones (case id, reason).
fn decide_all(
    cases: Option<&DirFd>,
    rows: &[&StoredRow],
    opts: &ReplayOptions<'_>,
) -> (Vec<Replayed>, Vec<(String, String)>) {
    let next = AtomicUsize::new(0);
    let chunks = rows.len().div_ceil(CHUNK);
    let threads = opts.threads.clamp(1, chunks.max(1));
    let mut parts: Vec<(usize, Vec<Decided>)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut out = Vec::new();
                    let mut day: Option<(String, Option<DirFd>)> = None;
                    loop {
                        let c = next.fetch_add(1, Ordering::Relaxed);
                        if c >= chunks {
                            break;
                        }
                        let part: Vec<Decided> = rows[c * CHUNK..((c + 1) * CHUNK).min(rows.len())]
                            .iter()
                            .map(|r| decide_one(cases, &mut day, r, opts))
                            .collect();
                        out.push((c, part));
                    }
                    out
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| {
                // A panic is a bug: it is not a reason to report fewer alerts.
                w.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
            })
            .collect()
    });
    parts.sort_by_key(|(c, _)| *c);
    let mut items = Vec::with_capacity(rows.len());
    let mut unreadable = Vec::new();
    for (_, part) in parts {
        for d in part {
            match d {
                Ok(it) => items.push(it),
                Err(e) => unreadable.push(e),
            }
        }
    }
    (items, unreadable)
}

/// A case path component we wrote: letters, digits and `-` (never `.`, `..` or empty).
fn plain(component: &str) -> bool {
    !component.is_empty()
        && component
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fn read(dir: &DirFd, name: &[u8], max: u64) -> Result<Vec<u8>, String> {
    let what = String::from_utf8_lossy(name).into_owned();
    match dir.read_regular(name, max) {
        Ok(ReadOutcome::Bytes(b)) => Ok(b),
        Ok(ReadOutcome::Vanished) => Err(format!("{what} is gone")),
        Ok(ReadOutcome::Refused(r)) => Err(format!("{what} not read: {r}")),
        Ok(ReadOutcome::TooLarge(n)) => Err(format!("{what} is {n} bytes, over the limit ({max})")),
        Err(e) => Err(e.to_string()),
    }
}

/// Reads one case and decides its alert with the candidate (and the current policy).
fn decide_one(
    cases: Option<&DirFd>,
    day: &mut Option<(String, Option<DirFd>)>,
    row: &StoredRow,
    opts: &ReplayOptions<'_>,
) -> Decided {
    // A published row always has its case id; one without is named by its key.
    let case_id = row
        .case_id
        .clone()
        .unwrap_or_else(|| format!("(no case id; key {})", row.alert_key));
    let fail = |reason: String| Err((case_id.clone(), reason));
    let Some(stored_bucket) = row.bucket.as_deref().and_then(Bucket::parse) else {
        return fail("the row has no bucket".into());
    };
    let Some(path) = row.case_path.as_deref() else {
        return fail("the row has no case path".into());
    };
    let (day_path, name) = path.rsplit_once('/').unwrap_or(("", path));
    if !plain(name) || !day_path.split('/').all(plain) {
        return fail("the case path is not one triage writes".into());
    }
    let Some(cases) = cases else {
        return fail("there is no cases/ directory".into());
    };
    if day.as_ref().is_none_or(|(p, _)| p != day_path) {
        let opened = cases.open_path_opt(day_path).map_err(|e| e.to_string());
        let opened = match opened {
            Ok(d) => d,
            Err(e) => return fail(e),
        };
        *day = Some((day_path.to_string(), opened));
    }
    let Some(Some(day_dir)) = day.as_ref().map(|(_, d)| d.as_ref()) else {
        return fail(format!("cases/{day_path}/ is gone"));
    };
    let dir = match day_dir.open_subdir_opt(name.as_bytes()) {
        Ok(Some(d)) => d,
        Ok(None) => return fail(format!("cases/{path}/ is gone")),
        Err(e) => return fail(e.to_string()),
    };
    let alert_bytes = match read(&dir, b"alert.json", opts.max_alert_bytes) {
        Ok(b) => b,
        Err(e) => return fail(e),
    };
    let case_bytes = match read(&dir, b"case.json", MAX_CASE_BYTES) {
        Ok(b) => b,
        Err(e) => return fail(e),
    };
    let case: CaseFile = match serde_json::from_slice(&case_bytes) {
        Ok(c) => c,
        Err(e) => return fail(format!("case.json is not a case: {e}")),
    };
    let map = match alert::parse_strict(&alert_bytes) {
        Ok(m) => m,
        Err(e) => return fail(format!("alert.json: {e}")),
    };
    let time = DateTime::parse_from_rfc3339(&row.alert_time)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| sf_policy::alert_time(&map))
        .unwrap_or(opts.now);
    let value = Value::Object(map);
    let d = match opts.candidate.decide(&value, opts.now) {
        Ok(d) => d,
        Err(e) => return fail(format!("cannot be decided: {e}")),
    };
    let incident = opts.candidate.incident(&value, &d.agent, d.bucket, time).id;
    let current = opts
        .current
        .and_then(|p| p.decide(&value, opts.now).ok())
        .map(|c| c.bucket);
    let stored_matched = case.decision.matched.as_deref().map(|id| {
        // Cases always name the kind; one that does not was decided by a signature when it is
        // suppressed, by an override otherwise.
        let kind = case
            .decision
            .matched_kind
            .unwrap_or(if stored_bucket == Bucket::Suppressed {
                MatchedKind::Suppress
            } else {
                MatchedKind::Override
            });
        Rule::new(kind, id)
    });
    Ok(Replayed {
        row: row.clone(),
        case_id,
        stored: Side {
            bucket: stored_bucket,
            matched: stored_matched,
            held_back: case.decision.held_back,
            incident: row.incident.clone().or(case.incident),
        },
        candidate: Side {
            bucket: d.bucket,
            matched: d
                .matched
                .as_deref()
                .zip(d.matched_kind)
                .map(|(id, k)| Rule::new(k, id)),
            held_back: d.held_back,
            incident: Some(incident),
        },
        candidate_expired: d.expired,
        candidate_critical: d.critical,
        stored_policy: case.policy_version,
        current,
    })
}
