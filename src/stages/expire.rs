//! The expire step: retention. Cases older than their bucket's `[retention]` setting (by the
//! alert's own time) are removed with their escalation packs; their rows stay, in the terminal
//! state `expired`, so the books still add up and a key seen again is a duplicate. Incidents
//! whose members are all gone lose their files (the incident round removes the files of an
//! incident without members). Expired rows are deleted after `[retention] rows`.
//!
//! Design constraints:
//! - Crash-safe in two steps per chunk: a transaction moves the rows to `expired` and records
//!   their directories in `expiring`; a barrier makes it durable; the directories are removed;
//!   a barrier makes that durable; a transaction forgets them. A crash leaves `expiring` rows
//!   whose directories [`finish`] removes, at the next expire or reconcile. A directory is
//!   never removed before its row says so, so a crash never leaves a live row without its case.
//! - Bounded: at most `[retention] max_per_run` cases per run; the rest wait (said as `left`).
//! - Never follows a link and never leaves the state directory: paths come from the ledger, are
//!   checked against the case path's shape, and are removed through the directory descriptors
//!   (`fsx`), entries unlinked, not opened.
//! - A dry run reads only: it lists what is due and writes nothing (not even a finished
//!   leftover).
//! - Quarantine never expires; a `high` case expires only with its pack published.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::RetentionConfig;
use crate::model::cases::CaseId;
use crate::stages::deliver::due::RouteSpec;
use crate::stages::incidents::build::{self, RoundOptions};
use crate::stages::{Counters, Report};
use crate::store::fsx::{Durability, FsError};
use crate::store::ledger::retention::DueCase;
use crate::store::ledger::{Ledger, LedgerError};
use crate::store::state::StateDir;

/// Cases moved to `expired` per transaction (and per pair of barriers).
const CHUNK: u64 = 1_000;
/// Expired rows deleted per transaction by compaction.
const COMPACT_CHUNK: u64 = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum ExpireError {
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("the ledger names case directory {path:?} for case {case_id:?}, which is not a case path (bucket/YYYY/MM/DD/<case id>); nothing of it was removed")]
    BadPath { case_id: String, path: String },
    #[error("incident files: {0}")]
    Incidents(String),
}

/// How an expire step runs.
#[derive(Debug, Clone, Copy)]
pub struct ExpireOptions<'a> {
    pub retention: &'a RetentionConfig,
    pub now: DateTime<Utc>,
    pub durability: Durability,
    pub dry_run: bool,
    pub rounds: RoundOptions,
    pub routes: &'a [RouteSpec],
}

/// What one expire step did (or, dry, would do).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ExpireReport {
    /// Cases due at the start of the step (every bucket with a retention).
    pub due: u64,
    /// Cases removed by this step (their rows now `expired`).
    pub expired: u64,
    pub suppressed: u64,
    pub low: u64,
    pub medium: u64,
    pub high: u64,
    /// Escalation packs removed with their cases.
    pub packs: u64,
    /// Cases an interrupted expire had left half removed, finished now.
    pub finished: u64,
    /// Due cases left for the next run (`[retention] max_per_run`).
    pub left: u64,
    /// Expired rows deleted (older than `[retention] rows`).
    pub compacted: u64,
    /// Incidents whose files were rebuilt or removed after their members expired.
    pub incidents: u64,
    /// The due cases of a dry run, or the cases this step removed (oldest first per bucket).
    #[serde(skip)]
    pub listed: Vec<DueCase>,
}

impl Report for ExpireReport {
    const NAME: &'static str = "expire";

    fn counters(&self) -> Counters {
        Counters::from([
            ("due", self.due),
            ("expired", self.expired),
            ("suppressed", self.suppressed),
            ("low", self.low),
            ("medium", self.medium),
            ("high", self.high),
            ("packs", self.packs),
            ("finished", self.finished),
            ("left", self.left),
            ("compacted", self.compacted),
            ("incidents", self.incidents),
        ])
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn before(now: DateTime<Utc>, keep: Duration) -> String {
    rfc3339(build::minus(now, keep))
}

/// The case path's parent (`bucket/YYYY/MM/DD`) and name, when it has a case path's shape and
/// names the case.
fn split_case_path(c: &DueCase) -> Result<(&str, &str), ExpireError> {
    let bad = || ExpireError::BadPath {
        case_id: c.case_id.clone(),
        path: c.case_path.clone(),
    };
    let (parent, name) = c.case_path.rsplit_once('/').ok_or_else(bad)?;
    let parts: Vec<&str> = parent.split('/').collect();
    let shaped = parts.len() == 4
        && crate::stages::reconcile::BUCKETS.contains(&parts[0])
        && parts[1..]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if !shaped || name != c.case_id || CaseId::from_stored(name).is_none() {
        return Err(bad());
    }
    Ok((parent, name))
}

/// Removes a case's directories (its pack first, then the case); what is already gone is fine.
/// Whether a pack was removed.
fn remove_dirs(state: &StateDir, c: &DueCase) -> Result<bool, ExpireError> {
    let (parent, name) = split_case_path(c)?;
    let pack = state.escalations.remove_flat_dir(name.as_bytes())?;
    if let Some(day) = state.cases.open_path_opt(parent)? {
        day.remove_flat_dir(name.as_bytes())?;
    }
    Ok(pack)
}

fn durable(state: &StateDir, durability: Durability) -> Result<(), ExpireError> {
    if durability != Durability::Off {
        state.root.sync_filesystem()?;
    }
    Ok(())
}

/// Removes the directories of expired rows that an interrupted expire left (`expiring`), and
/// forgets them. Returns how many.
pub fn finish(
    state: &StateDir,
    ledger: &mut Ledger,
    durability: Durability,
) -> Result<u64, ExpireError> {
    let mut done = 0;
    loop {
        let left = ledger.expiring(CHUNK)?;
        if left.is_empty() {
            return Ok(done);
        }
        for c in &left {
            remove_dirs(state, c)?;
        }
        durable(state, durability)?;
        let keys: Vec<String> = left.iter().map(|c| c.key_hash.clone()).collect();
        ledger.write(|tx| tx.expiring_done(&keys))?;
        done += left.len() as u64;
    }
}

/// Runs one expire step.
pub fn run(
    state: &StateDir,
    ledger: &mut Ledger,
    opts: &ExpireOptions<'_>,
) -> Result<ExpireReport, ExpireError> {
    let mut report = ExpireReport::default();
    let buckets = opts.retention.buckets();
    for (bucket, keep) in &buckets {
        report.due += ledger.due_count(bucket, &before(opts.now, *keep))?;
    }
    if opts.dry_run {
        for (bucket, keep) in &buckets {
            let due = ledger.due_cases(bucket, &before(opts.now, *keep), u64::MAX >> 1)?;
            report.listed.extend(due);
        }
        report.finished = ledger.expiring(u64::MAX >> 1)?.len() as u64;
        report.left = report.due;
        return Ok(report);
    }
    report.finished = finish(state, ledger, opts.durability)?;
    let mut budget = opts.retention.max_per_run;
    for (bucket, keep) in &buckets {
        let cutoff = before(opts.now, *keep);
        while budget > 0 {
            let due = ledger.due_cases(bucket, &cutoff, budget.min(CHUNK))?;
            if due.is_empty() {
                break;
            }
            // 1. The rows say expired, and which directories go, durably, before any goes.
            let marked = ledger.write(|tx| tx.expire(&due))?;
            durable(state, opts.durability)?;
            crate::failpoint::crash_point("expire-marked");
            budget = budget.saturating_sub(due.len() as u64);
            // A row another process changed since it was read keeps its case.
            let due: Vec<DueCase> = due
                .into_iter()
                .zip(marked)
                .filter_map(|(c, m)| m.then_some(c))
                .collect();
            let n = due.len() as u64;
            // 2. The directories go, durably.
            let mut packs = 0;
            for c in &due {
                if remove_dirs(state, c)? {
                    packs += 1;
                }
            }
            durable(state, opts.durability)?;
            crate::failpoint::crash_point("expire-removed");
            // 3. Forgotten: nothing left to finish.
            let keys: Vec<String> = due.iter().map(|c| c.key_hash.clone()).collect();
            ledger.write(|tx| tx.expiring_done(&keys))?;
            report.expired += n;
            report.packs += packs;
            report.listed.extend(due);
            match *bucket {
                "suppressed" => report.suppressed += n,
                "low" => report.low += n,
                "medium" => report.medium += n,
                _ => report.high += n,
            }
        }
    }
    report.left = report.due.saturating_sub(report.expired);
    // Rows of cases removed long ago: their keys are forgotten.
    let cutoff = before(opts.now, opts.retention.rows);
    loop {
        let n = ledger.write(|tx| tx.compact_expired(&cutoff, COMPACT_CHUNK))?;
        report.compacted += n;
        if n < COMPACT_CHUNK {
            break;
        }
    }
    // The incidents that lost members show it (or lose their files when none is left).
    if report.expired > 0 || report.finished > 0 {
        let r = build::round(state, ledger, opts.rounds, opts.routes, opts.now)
            .map_err(|e| ExpireError::Incidents(e.to_string()))?;
        report.incidents = r.built + r.emptied;
    }
    Ok(report)
}
