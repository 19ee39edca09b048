//! Stage 3, triage (with stages 4 and 5 inside each batch): admission, recovery of dead workers
//! and unfinished intents, then batches of claim, read, parse, decide, intent rows, build cases
//! in the claim folder, make the batch durable, publish, escalate, commit.
//!
//! Design constraints:
//! - A retry never re-decides: the intent row (state `triaging`) fixes bucket, case id, case
//!   path and the whole decision before any file moves; a later claim of the key reuses it.
//! - The queued file itself moves into its case as `alert.json` (no copy): the claim renames it
//!   from `queue/` (or `overflow/`) into its temp case directory
//!   `processing/<w>/.tmp-case-<canonical stem>/`, and one rename publishes that directory into
//!   `cases/`. One key has at most one claim in flight per process; a file of a key whose case
//!   is published is a second copy and goes to quarantine (never a second case).
//! - Durability per batch (`batch`): build every temp case and pack, one `syncfs`, publish every
//!   one, one `syncfs`, then one ledger commit.
//! - Quarantine only for what cannot be triaged (unreadable, not a regular file, over the size
//!   limit, invalid JSON or UTF-8, duplicated keys, fields the decision needs missing or of the
//!   wrong type); never for content. A quarantined alert whose level reads as high still gets a
//!   `Q-<entry>` pack, owed from the transaction that records the quarantine on
//!   ([`crate::store::ledger::PACK_OWED`]): a crash between the move and the pack leaves the row owing,
//!   and the next triage rebuilds the pack from the quarantine entry.
//! - A write, rename or ledger commit of a batch that fails because the disk is full is tried
//!   again after a pause ([`DISK_FULL_TRIES`] tries in all, 100 ms then 400 ms apart: space can
//!   come back when a log rotates or another job ends), then the stage FAILS with the path and
//!   "no space left on device"; the next run finishes from the intent rows. Each retried step is
//!   idempotent (a temp directory is rebuilt from scratch, a rename that failed changed nothing,
//!   a transaction that failed rolled back). Durability barriers (`syncfs`, `fsync`) are never
//!   retried: after a failed sync the kernel may have dropped the dirty pages and marked them
//!   clean, so a second sync can report success for data that never reached the disk. The batch
//!   fails at once there and the next run redoes it from the intent rows.
//! - Several threads, each its own worker (claim folder and lock), sharing one ledger connection
//!   (held only around ledger calls) whose commits never checkpoint; a checkpointer thread does,
//!   every 6 commits, holding that connection's lock. Each worker pipelines its batches: batch
//!   N+1 is built before the barrier that also precedes batch N's commit. Other `triage`
//!   processes may work on the same state directory at the same time.

mod report;
pub use report::TriageReport;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use chrono::{DateTime, Utc};
use rusqlite::OptionalExtension;
use serde_json::{Map, Value};

use crate::model::alert::{self, KeyHash};
use crate::model::cases::{self, CaseId, CaseInput, StoredDecision};
use crate::stages::escalate::{self, PackInput, RelatedRef};
use crate::store::claim::{self, Worker};
use crate::store::fsx::{self, DirFd, Durability, FsError, Moved, ReadOutcome};
use crate::store::ledger::{
    Ledger, LedgerError, NewRow, State, Tx, PACK_DONE, PACK_NONE, PACK_OWED,
};
use crate::store::names;
use crate::store::names::Canonical;
use crate::store::quarantine;
use crate::store::quarantine::Quarantine;
use crate::store::spool::{Notice, Spool, SpoolError};

#[derive(Debug, thiserror::Error)]
pub enum TriageError {
    #[error(transparent)]
    Spool(#[from] SpoolError),
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("a triage thread panicked; its batch is recovered by the next run")]
    Panicked,
    /// SQLite's "database or disk is full", said the way every other full-disk error is.
    #[error(
        "ledger {}: no space left on device ({source})",
        crate::store::fsx::shown(path)
    )]
    LedgerFull {
        path: std::path::PathBuf,
        source: rusqlite::Error,
    },
}

impl TriageError {
    /// True when the device holding a file or the ledger is out of space or inodes.
    pub fn is_disk_full(&self) -> bool {
        match self {
            TriageError::Fs(e) | TriageError::Spool(SpoolError::Fs(e)) => e.is_disk_full(),
            TriageError::Ledger(LedgerError::Sql { source, .. })
            | TriageError::Spool(SpoolError::Ledger(LedgerError::Sql { source, .. })) => {
                source.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull)
            }
            TriageError::LedgerFull { .. } => true,
            _ => false,
        }
    }

    /// Names a full ledger as "no space left on device", like a full disk under a file.
    fn named(self) -> TriageError {
        match self {
            TriageError::Ledger(LedgerError::Sql { path, source })
            | TriageError::Spool(SpoolError::Ledger(LedgerError::Sql { path, source }))
                if source.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull) =>
            {
                TriageError::LedgerFull { path, source }
            }
            e => e,
        }
    }
}

/// How long one drain pass claims from one listing before listing again.
const PASS: std::time::Duration = std::time::Duration::from_secs(20);

/// Tries in all for a batch step that fails because the disk is full.
pub const DISK_FULL_TRIES: u32 = 3;

/// Runs `op`; when it fails because the disk is full, runs it again after a pause (100 ms, then
/// four times longer each time), [`DISK_FULL_TRIES`] times in all; then returns the last error.
/// `op` must be idempotent.
fn retry_full<T>(
    what: &str,
    mut op: impl FnMut() -> Result<T, TriageError>,
) -> Result<T, TriageError> {
    let mut pause = std::time::Duration::from_millis(100);
    let mut tries = 1;
    loop {
        match op() {
            Err(e) if e.is_disk_full() && tries < DISK_FULL_TRIES => {
                tracing::warn!(
                    "{what}: {}; trying again in {} ms (try {tries} of {DISK_FULL_TRIES} failed)",
                    e.named(),
                    pause.as_millis()
                );
                std::thread::sleep(pause);
                pause *= 4;
                tries += 1;
            }
            r => return r.map_err(TriageError::named),
        }
    }
}

impl From<rusqlite::Error> for TriageError {
    fn from(e: rusqlite::Error) -> Self {
        TriageError::Ledger(LedgerError::Sql {
            path: "ledger.db".into(),
            source: e,
        })
    }
}

/// How triage runs.
#[derive(Debug, Clone)]
pub struct TriageOptions {
    pub threads: usize,
    pub batch: usize,
    /// Stop claiming new batches after this instant.
    pub deadline: Option<Instant>,
    pub dashboard_url: Option<String>,
    pub related_window: chrono::Duration,
    /// Set by a signal: finish the batch in hand, claim no more.
    pub stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

impl TriageOptions {
    /// True once the deadline has passed or a stop was asked for.
    pub fn should_stop(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
            || self
                .stop
                .as_ref()
                .is_some_and(|s| s.load(std::sync::atomic::Ordering::SeqCst))
    }
}

impl Default for TriageOptions {
    fn default() -> Self {
        TriageOptions {
            threads: std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 8)),
            batch: 2048,
            deadline: None,
            dashboard_url: None,
            related_window: chrono::Duration::minutes(30),
            stop: None,
        }
    }
}

/// Everything a triage batch needs, shared by its threads.
pub struct Triage<'a> {
    pub sp: &'a Spool<'a>,
    pub policy: &'a sf_policy::Policy,
    pub opts: &'a TriageOptions,
}

/// The intent a batch fixes for one alert.
struct Item {
    /// The temp case in the claim folder (`.tmp-case-<canonical name>`), holding `alert.json`.
    tmp: String,
    key_hash: KeyHash,
    alert_key: String,
    index_id: Option<(String, String)>,
    value: Value,
    bytes: Vec<u8>,
    decision: StoredDecision,
    case_id: CaseId,
    case_path: String,
    alert_time: DateTime<Utc>,
    /// No row existed (a rowless canonical file): inserted with the intent.
    new_row: Option<NewRow>,
    /// The row's id (rows are updated by id: no index walk), once known.
    row_id: Option<i64>,
}

/// A batch whose cases and packs are built in their temp directories.
struct Built {
    /// Every key this batch claimed (held in flight until its commit).
    keys: Vec<KeyHash>,
    items: Vec<Item>,
    /// (item, temp pack directory in `escalations/`)
    packs: Vec<(usize, String)>,
    /// Files whose quarantine the intent rows recorded: moved after the barrier that makes
    /// those rows durable (after a power loss a file in `quarantine/` always has its row).
    quarantined: Vec<PendingQuarantine>,
    now: DateTime<Utc>,
}

/// A batch whose cases and packs are published, waiting for its commit.
struct Published {
    keys: Vec<KeyHash>,
    items: Vec<Item>,
    published: Vec<bool>,
    packed: Vec<bool>,
    now: DateTime<Utc>,
}

/// Which row records a quarantine from triage.
enum QRow {
    /// The alert's own row: it becomes `quarantined` with the batch's intent rows (intent
    /// first: a crash before the move leaves the file in its temp case, and recovery puts it
    /// back in the queue and its row with it).
    Own,
    /// A rowless file whose content was read and whose key matches its name: its own row is
    /// inserted as `quarantined` with the intent rows (as `Own`), so the alert keeps one row
    /// whatever a crash interrupts.
    Alert(Box<NewRow>),
    /// No alert key can be trusted (unreadable or unparseable content, or a second copy of a
    /// published key): a row of its own keyed by entry, inserted after the move (row after:
    /// a crash in between leaves an entry without a row, which reconcile adopts; a crash
    /// before the move leaves no row at all, and the file goes back to the queue).
    Entry,
}

/// A claimed file on its way to quarantine: its row changes with the batch's intent rows, the
/// file moves after the barrier that makes them durable.
struct PendingQuarantine {
    /// The temp case holding the claimed file as `alert.json`.
    tmp: String,
    key_hash: KeyHash,
    entry: String,
    reason: String,
    level: Option<u32>,
    alert: Option<Map<String, Value>>,
    row: QRow,
}

impl PendingQuarantine {
    /// The key hash of the row that records this quarantine's pack: the alert's (an entry row
    /// never owes a pack: nothing of its alert can be trusted).
    fn row_key(&self) -> Option<KeyHash> {
        match &self.row {
            QRow::Own | QRow::Alert(_) => Some(self.key_hash.clone()),
            QRow::Entry => None,
        }
    }

    /// The level of the `Q-<entry>` pack this quarantine owes: its alert was read and its level
    /// reads at or above the policy's `high` threshold.
    fn owed_pack(&self, high: u32) -> Option<u32> {
        self.alert.as_ref()?;
        self.level.filter(|l| *l >= high)
    }
}

/// Records on a quarantined row whether its `Q-<entry>` pack is owed ([`PACK_OWED`], with the
/// pack's level and the worker that owes it) or not ([`PACK_NONE`]). Inside the transaction
/// that records the quarantine.
fn record_owed_pack(
    tx: &mut Tx<'_>,
    key_hash: &KeyHash,
    owed: Option<u32>,
    worker: &str,
) -> Result<(), rusqlite::Error> {
    tx.conn()
        .prepare_cached(
            "UPDATE alerts SET pack = ?2, level = COALESCE(?3, level), worker = ?4 WHERE key_hash = ?1",
        )?
        .execute(rusqlite::params![
            key_hash.as_str(),
            if owed.is_some() { PACK_OWED } else { PACK_NONE },
            owed,
            owed.map(|_| worker),
        ])?;
    Ok(())
}

/// Marks a quarantined row's owed `Q-<entry>` pack as published.
fn record_pack_done(tx: &mut Tx<'_>, key_hash: &str) -> Result<(), rusqlite::Error> {
    tx.conn()
        .prepare_cached(
            "UPDATE alerts SET pack = ?2, worker = NULL
             WHERE key_hash = ?1 AND state = 'quarantined' AND pack = ?3",
        )?
        .execute(rusqlite::params![key_hash, PACK_DONE, PACK_OWED])?;
    Ok(())
}

/// The stored parts of a row triage reads back.
struct RowInfo {
    id: i64,
    state: String,
    alert_key: String,
    index_name: Option<String>,
    doc_id: Option<String>,
    alert_time: String,
    case_path: Option<String>,
    decision: Option<String>,
}

fn row_info(ledger: &Ledger, kh: &KeyHash) -> Result<Option<RowInfo>, rusqlite::Error> {
    ledger
        .conn()
        .prepare_cached(
            "SELECT a.alert_key, a.index_name, a.doc_id, a.alert_time, a.case_path, i.decision, a.id, a.state
             FROM alerts a LEFT JOIN intents i ON i.key_hash = a.key_hash WHERE a.key_hash = ?1",
        )?
        .query_row([kh.as_str()], |r| {
            Ok(RowInfo {
                alert_key: r.get(0)?,
                index_name: r.get(1)?,
                doc_id: r.get(2)?,
                alert_time: r.get(3)?,
                case_path: r.get(4)?,
                decision: r.get(5)?,
                id: r.get(6)?,
                state: r.get(7)?,
            })
        })
        .optional()
}

fn parse_rfc3339(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Other names of the host, from the alert's own fields, for the pack's "aliases" line.
fn agent_aliases(alert: &Map<String, Value>, canonical: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let paths: [&[&str]; 3] = [
        &["agent", "name"],
        &["data", "win", "system", "computer"],
        &["predecoder", "hostname"],
    ];
    for p in paths {
        let mut v = Some(alert.get(p[0]));
        for k in &p[1..] {
            v = v.flatten().and_then(|x| x.as_object()).map(|o| o.get(*k));
        }
        if let Some(Some(Value::String(s))) = v {
            if s != canonical && !out.contains(s) {
                out.push(s.clone());
            }
        }
    }
    out
}

impl Triage<'_> {
    fn durability(&self) -> Durability {
        self.sp.durability
    }

    /// Runs triage until `queue/` and `overflow/` are empty or the deadline passes.
    pub fn run(
        &self,
        ledger: &mut Ledger,
        notices: &mut Vec<Notice>,
    ) -> Result<TriageReport, TriageError> {
        self.run_inner(ledger, notices).map_err(TriageError::named)
    }

    fn run_inner(
        &self,
        ledger: &mut Ledger,
        notices: &mut Vec<Notice>,
    ) -> Result<TriageReport, TriageError> {
        let now = Utc::now();
        let mut report = TriageReport {
            admission: self.sp.admit(ledger, now, notices)?,
            recovery: claim::recover_dead(self.sp, ledger, None, now, notices)?,
            ..TriageReport::default()
        };
        // Temp files of writers that are gone (a killed ingest, poll or admission).
        let st = self.sp.state;
        for d in [&st.queue, &st.overflow, &st.quarantine, &st.root] {
            report.recovery.temps_removed += fsx::sweep_dead_temps(d)?;
        }
        self.recover_intents(ledger, &mut report, notices)?;
        let threads = self.opts.threads.max(1);
        let mut workers = Vec::with_capacity(threads);
        for _ in 0..threads {
            workers.push(Worker::start(self.sp.state)?);
        }
        let shared = Ledger::open(ledger.path(), self.durability())?;
        // The batches' commits do not checkpoint: a thread checkpointing (copying the WAL into
        // the database and waiting for two fsyncs) while holding the shared connection stalled
        // the other thread (measured: the largest single cause of waiting). A checkpointer
        // thread of its own does it beside them.
        shared.manual_checkpoints()?;
        let shared = Shared {
            ledger: Mutex::new(shared),
            commits: AtomicU64::new(0),
            in_flight: Mutex::new(std::collections::HashSet::new()),
            renames: Mutex::new(()),
        };
        let checkpointer = Ledger::open(ledger.path(), self.durability())?;
        let done = AtomicBool::new(false);
        let result = std::thread::scope(|s| {
            let shared = &shared;
            let done_ref = &done;
            s.spawn(move || checkpoints(&checkpointer, shared, done_ref));
            // `done` is set however drain ends (a panic included), so the scope can end.
            let _stop = SetOnDrop(&done);
            self.drain(&mut workers, shared, &mut report, notices)
        });
        // Leave the WAL small for the next command.
        let last = shared.lock().checkpoint_truncate();
        if let Err(e) = last {
            tracing::debug!("ledger checkpoint: {e}");
        }
        for w in workers {
            if let Err(e) = w.finish(self.sp.state) {
                notices.push(Notice {
                    what: "processing".into(),
                    reason: format!("worker folder not removed: {e}"),
                });
            }
        }
        result.map(|()| report)
    }

    fn drain(
        &self,
        workers: &mut [Worker],
        shared: &Shared,
        report: &mut TriageReport,
        notices: &mut Vec<Notice>,
    ) -> Result<(), TriageError> {
        loop {
            if self.opts.should_stop() {
                let left = !names::list_sorted(&self.sp.state.queue)?.is_empty()
                    || !names::list_sorted(&self.sp.state.overflow)?.is_empty();
                report.stopped_by_deadline = left;
                return Ok(());
            }
            // Another process's cap may have exchanged queue/ and overflow/ since the last
            // pass (this command does not hold the run lock): follow the names.
            self.sp.state.follow_spool_names()?;
            // The queue first; once it is empty, claim straight from overflow/ in priority
            // order (a logical refill).
            let mut source = &self.sp.state.queue;
            let mut names = names::list_sorted(source)?;
            let from_overflow = names.is_empty();
            if from_overflow {
                source = &self.sp.state.overflow;
                names = names::list_sorted(source)?;
            }
            if names.is_empty() {
                return Ok(());
            }
            // One pass claims from this listing for at most PASS, then lists again (new
            // arrivals of higher priority go first), unless it claims from overflow/ and
            // queue/ is still empty (`Pass::next`); the deadline is looked at every batch.
            let pass = Pass {
                chunks: Mutex::new(names.chunks(self.opts.batch).collect()),
                end: Mutex::new(Instant::now() + PASS),
                from_overflow,
            };
            let before = report.claimed + report.vanished;
            let results: Vec<Result<(TriageReport, Vec<Notice>), TriageError>> =
                std::thread::scope(|s| {
                    let handles: Vec<_> = workers
                        .iter_mut()
                        .map(|w| {
                            let pass = &pass;
                            s.spawn(move || {
                                let mut r = TriageReport::default();
                                let mut n = Vec::new();
                                self.batches(shared, w, source, pass, &mut r, &mut n)?;
                                Ok((r, n))
                            })
                        })
                        .collect();
                    handles
                        .into_iter()
                        .map(|h| h.join().unwrap_or(Err(TriageError::Panicked)))
                        .collect()
                });
            for r in results {
                let (r, n) = r?;
                report.add(&r);
                notices.extend(n);
            }
            if report.claimed + report.vanished == before {
                // Nothing could be claimed or even found: do not spin.
                return Ok(());
            }
        }
    }

    /// Records that a claimed file must go to quarantine. The move happens after the batch's
    /// intent transaction has recorded where it goes (intent first): a crash in between leaves
    /// the file in its temp case, and recovery puts it back in the queue with its row.
    #[allow(clippy::too_many_arguments)]
    fn quarantine_claim(
        &self,
        row: QRow,
        canon: &Canonical,
        tmp: &str,
        reason: &str,
        level: Option<u32>,
        alert: Option<Map<String, Value>>,
        now: DateTime<Utc>,
        out: &mut Vec<PendingQuarantine>,
    ) {
        let entry = quarantine::entry_name(now);
        let row = match row {
            QRow::Alert(mut r) => {
                r.name = format!("{entry}.json");
                QRow::Alert(r)
            }
            other => other,
        };
        out.push(PendingQuarantine {
            tmp: tmp.to_string(),
            key_hash: canon.key_hash.clone(),
            entry,
            reason: reason.to_string(),
            level,
            alert,
            row,
        });
    }

    /// Moves the batch's pending quarantines (their rows are committed already).
    fn apply_quarantines(
        &self,
        ledger: &mut Ledger,
        worker: &Worker,
        pending: Vec<PendingQuarantine>,
        now: DateTime<Utc>,
        report: &mut TriageReport,
    ) -> Result<(), TriageError> {
        let q = Quarantine {
            state: self.sp.state,
            durability: self.durability(),
        };
        let high = self.policy.thresholds().high;
        for mut p in pending {
            crate::failpoint::crash_point("triage-quarantine-move");
            let inner = format!("{}/alert.json", p.tmp);
            let shown = format!("processing/{}/{inner}", worker.id());
            loop {
                match q.move_in_as(
                    worker.dir(),
                    inner.as_bytes(),
                    &p.entry,
                    &shown,
                    &p.reason,
                    now,
                )? {
                    Moved::Moved => {
                        if let QRow::Entry = p.row {
                            crate::failpoint::crash_point("quarantine-entry-row");
                            // Row after the move (see `QRow::Entry`).
                            let row = Quarantine::entry_row(&p.entry, now);
                            ledger.write(|tx| tx.insert(&row).map(|_| ()))?;
                        }
                        break;
                    }
                    Moved::Vanished => {
                        report.vanished += 1;
                        break;
                    }
                    Moved::Exists => {
                        // The entry name is taken (a random collision): record another one.
                        p.entry = quarantine::entry_name(now);
                        let new = format!("{}.json", p.entry);
                        let owed = p.owed_pack(high);
                        if let Some(kh) = p.row_key() {
                            ledger.write(|tx| {
                                tx.set_state(kh.as_str(), State::Quarantined, &new, None)?;
                                record_owed_pack(tx, &kh, owed, worker.id())
                            })?;
                        }
                    }
                }
            }
            worker.dir().remove_flat_dir(p.tmp.as_bytes())?;
            report.quarantined += 1;
            if let (Some(level), Some(alert)) = (p.owed_pack(high), &p.alert) {
                self.quarantine_pack(&p.entry, level, alert, &p.reason, now)?;
                if let Some(kh) = p.row_key() {
                    ledger.write(|tx| record_pack_done(tx, kh.as_str()))?;
                }
                report.quarantine_packs += 1;
            }
        }
        Ok(())
    }

    /// `escalations/Q-<entry>/` for a quarantined alert whose level reads as high.
    fn quarantine_pack(
        &self,
        entry: &str,
        level: u32,
        alert: &Map<String, Value>,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(), TriageError> {
        let id = CaseId::from_stored(&format!("Q-{entry}"))
            .unwrap_or_else(|| CaseId::for_key(&KeyHash::of(entry.as_bytes())));
        let agent = alert
            .get("agent")
            .and_then(|a| a.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("unknown")
            .to_string();
        let decision = StoredDecision {
            bucket: "high".into(),
            critical: level >= sf_policy::CRITICAL_LEVEL,
            agent: agent.clone(),
            alias: None,
            matched: None,
            matched_kind: None,
            held_back: vec![],
            expired: vec![],
            trace: vec![format!("quarantined: {reason}")],
            level,
            policy_version: self.policy.version().to_string(),
            decided_at: now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        };
        let alert_time = alert::meta(alert, None, now).time;
        let case = cases::case_json(&CaseInput {
            case_id: &id,
            alert_key: &format!("quarantine:{entry}"),
            index_id: None,
            decision: &decision,
            alert,
            alert_time,
            triage_time: now,
            dashboard_url: None,
            quarantine_entry: Some(entry),
        });
        let bytes = serde_json::to_vec(alert).unwrap_or_default();
        let files = escalate::render_pack(&PackInput {
            case_id: id.as_str(),
            case_json: &case,
            alert_bytes: &bytes,
            alert,
            canonical_agent: &agent,
            agent_aliases: &[],
            related: &[],
            dashboard_url: None,
            quarantine_entry: Some(entry),
        });
        let tmp = format!(".tmp-pack-q-{}-{}", std::process::id(), id.as_str());
        if !self.publish_pack(&tmp, &id, &files)? {
            return Err(TriageError::Fs(FsError::new(
                "publish escalation pack",
                self.sp.state.escalations.path_of(tmp.as_bytes()),
                std::io::Error::other("the temp pack vanished before it was published"),
            )));
        }
        Ok(())
    }

    /// Writes a pack into the temp directory `tmp` of `escalations/`, makes it durable, and
    /// publishes it as `escalations/<id>`. `true` when the pack is there (ours, or one
    /// published before).
    fn publish_pack(
        &self,
        tmp: &str,
        id: &CaseId,
        files: &[escalate::PackFile],
    ) -> Result<bool, TriageError> {
        let esc = &self.sp.state.escalations;
        self.write_pack_dir(tmp, files)?;
        esc.barrier(self.durability())?;
        match esc.rename_to(tmp.as_bytes(), esc, id.as_str().as_bytes())? {
            Moved::Moved => Ok(true),
            Moved::Exists => {
                esc.remove_flat_dir(tmp.as_bytes())?;
                Ok(true)
            }
            Moved::Vanished => Ok(false),
        }
    }

    /// Writes a temp pack directory from scratch (an existing one is removed first), retried
    /// when the disk is full.
    fn write_pack_dir(&self, tmp: &str, files: &[escalate::PackFile]) -> Result<(), TriageError> {
        retry_full("write escalation pack", || {
            self.write_pack_dir_once(tmp, files)
        })
    }

    fn write_pack_dir_once(
        &self,
        tmp: &str,
        files: &[escalate::PackFile],
    ) -> Result<(), TriageError> {
        let esc = &self.sp.state.escalations;
        if !esc.create_dir(tmp)? {
            esc.remove_flat_dir(tmp.as_bytes())?;
            esc.create_dir(tmp)?;
        }
        let d = esc.open_subdir(tmp.as_bytes())?;
        for f in files {
            d.create_file(f.path, &f.bytes, self.durability())?;
        }
        if self.durability() == Durability::Strict {
            d.sync()?;
        }
        Ok(())
    }

    /// One batch for one worker: claim, decide, intent, build, publish, escalate, commit.
    /// One worker's batches, pipelined: batch N+1 is claimed, decided and built before the
    /// barrier that also makes batch N's publishes durable, so one `syncfs` serves as N+1's
    /// "before publish" and N's "before commit" (half the barriers, each batch still has both).
    fn batches(
        &self,
        shared: &Shared,
        worker: &Worker,
        source: &DirFd,
        pass: &Pass<'_>,
        report: &mut TriageReport,
        notices: &mut Vec<Notice>,
    ) -> Result<(), TriageError> {
        let mut pending: Option<Published> = None;
        loop {
            let next = if self.opts.should_stop() {
                None
            } else {
                pass.next(&self.sp.state.queue)
            };
            let Some(names) = next else { break };
            let built = self.build(shared, worker, source, names, report)?;
            worker.dir().barrier(self.durability())?;
            if let Some(p) = pending.take() {
                self.commit(shared, p, report)?;
            }
            pending = Some(self.publish(shared, worker, built, report, notices)?);
        }
        if let Some(p) = pending {
            self.sp.state.cases.barrier(self.durability())?;
            self.commit(shared, p, report)?;
        }
        Ok(())
    }

    /// Claims, reads, decides (or reuses the intent), commits the intent rows, moves what must
    /// be quarantined, and builds each case (and each high case's pack) in its temp directory.
    fn build(
        &self,
        shared: &Shared,
        worker: &Worker,
        source: &DirFd,
        names: &[Vec<u8>],
        report: &mut TriageReport,
    ) -> Result<Built, TriageError> {
        let now = Utc::now();
        report.batches += 1;
        // 1. Claim each file straight into its temp case: `processing/<w>/.tmp-case-<name>/`
        //    is created, then the queued file is renamed into it as `alert.json` (one rename
        //    across directories per claim; the temp name keeps the canonical name, so recovery
        //    can put the alert back without the ledger).
        let mut ready: Vec<(&Vec<u8>, Canonical, String)> = Vec::with_capacity(names.len());
        for name in names {
            let Some(canon) = Canonical::parse(name) else {
                continue;
            };
            // One key, one claim in flight in this process: a second name of the same key (a
            // planted or adopted copy) stays queued until the first is committed; its claim
            // then finds the case published and quarantines itself as a second copy.
            if !shared.claim_key(&canon.key_hash) {
                continue;
            }
            let tmp = claim::temp_case_name(name);
            let made = retry_full("claim", || Ok(worker.dir().create_dir(&tmp)?))?;
            if !made {
                // The same name twice in one listing cannot happen; a leftover of ours is
                // recovered by the next run: leave this name queued.
                shared.release_keys(std::iter::once(&canon.key_hash));
                continue;
            }
            ready.push((name, canon, tmp));
        }
        let mut won: Vec<(Vec<u8>, Canonical, String)> = Vec::with_capacity(ready.len());
        let mut lost: Vec<(Canonical, String)> = Vec::new();
        {
            let _renaming = shared.renaming(self.durability());
            for (name, canon, tmp) in ready {
                match worker.claim_into(source, name, &tmp)? {
                    Moved::Moved => won.push((name.clone(), canon, tmp)),
                    Moved::Vanished => lost.push((canon, tmp)),
                    Moved::Exists => {
                        return Err(TriageError::Fs(FsError::new(
                            "claim",
                            worker.dir().path_of(tmp.as_bytes()),
                            std::io::Error::other("a fresh temp case already holds an alert.json"),
                        )))
                    }
                }
            }
        }
        for (canon, tmp) in lost {
            report.vanished += 1;
            shared.release_keys(std::iter::once(&canon.key_hash));
            worker.dir().remove_dir(tmp.as_bytes())?;
        }
        report.claimed += won.len() as u64;
        let keys: Vec<KeyHash> = won.iter().map(|(_, c, _)| c.key_hash.clone()).collect();
        // The rows of the claimed keys, read in one transaction.
        let infos: Vec<Option<RowInfo>> = {
            let l = shared.lock();
            let tx = l.conn().unchecked_transaction()?;
            let r = won
                .iter()
                .map(|(_, c, _)| row_info(&l, &c.key_hash))
                .collect::<Result<_, _>>()?;
            tx.commit()?;
            r
        };
        // 2. Read, parse, decide (or reuse the intent).
        let max = self.sp.max_alert_bytes;
        let mut items: Vec<Item> = Vec::with_capacity(won.len());
        let mut quarantined: Vec<PendingQuarantine> = Vec::new();
        let mut misnamed: Vec<(Vec<u8>, Canonical, String)> = Vec::new();
        for ((name, canon, tmp), info) in won.into_iter().zip(infos) {
            let inner = format!("{tmp}/alert.json");
            let has_row = info.is_some();
            if let Some(done) = info
                .as_ref()
                .filter(|i| matches!(i.state.as_str(), "triaged" | "escalated"))
            {
                // A second file of a key whose case is published (a copy planted under another
                // canonical name): never a second case, never a change to the row; kept in
                // quarantine with an entry row of its own.
                let reason = format!(
                    "key conflict: another copy of this alert is already case {}",
                    done.case_path.as_deref().unwrap_or("(unknown)")
                );
                self.quarantine_claim(
                    QRow::Entry,
                    &canon,
                    &tmp,
                    &reason,
                    None,
                    None,
                    now,
                    &mut quarantined,
                );
                continue;
            }
            // What cannot be read or parsed goes to quarantine with the reason.
            let read = match worker.dir().read_regular(inner.as_bytes(), max)? {
                ReadOutcome::Vanished => {
                    report.vanished += 1;
                    worker.dir().remove_flat_dir(tmp.as_bytes())?;
                    continue;
                }
                ReadOutcome::Refused(r) => Err(format!("not read: {r}")),
                ReadOutcome::TooLarge(n) => {
                    Err(format!("{n} bytes is over max_alert_bytes ({max})"))
                }
                ReadOutcome::Bytes(b) => match alert::parse_strict(&b) {
                    Ok(m) => Ok((b, m)),
                    Err(e) => Err(e.to_string()),
                },
            };
            let (bytes, map) = match read {
                Ok(x) => x,
                Err(reason) => {
                    self.quarantine_claim(
                        if has_row { QRow::Own } else { QRow::Entry },
                        &canon,
                        &tmp,
                        &reason,
                        None,
                        None,
                        now,
                        &mut quarantined,
                    );
                    continue;
                }
            };
            // The key in a file's name is a claim, not a fact (B's bytes under A's name): the
            // content's key must be the name's, as admission and adoption check. A file that
            // is not what its name says goes to incoming/, where admission keys it afresh.
            let index_of = info
                .as_ref()
                .and_then(|i| i.index_name.as_deref().zip(i.doc_id.as_deref()));
            let meta = alert::meta(&map, index_of, now);
            if meta.key_hash != canon.key_hash {
                misnamed.push((name, canon, tmp));
                continue;
            }
            let stored = info
                .as_ref()
                .and_then(|i| i.decision.as_deref())
                .and_then(|d| serde_json::from_str::<StoredDecision>(d).ok());
            let value = Value::Object(map);
            let decision = match stored {
                Some(d) => {
                    report.reused_intents += 1;
                    d
                }
                None => match self.policy.decide(&value, now) {
                    Ok(d) => StoredDecision::from_policy(&d, self.policy.version(), now),
                    Err(e) => {
                        let m = value.as_object().cloned().unwrap_or_default();
                        let level = alert::level_of(&m).rank();
                        let row = if has_row {
                            QRow::Own
                        } else {
                            QRow::Alert(Box::new(NewRow {
                                key_hash: canon.key_hash.clone(),
                                alert_key: meta.key.as_str().to_string(),
                                state: State::Quarantined,
                                name: String::new(),
                                content_hash: meta.content_hash.clone(),
                                level: meta.level,
                                priority: canon.priority,
                                alert_time: meta
                                    .time
                                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                                index_name: None,
                                doc_id: None,
                                source: "adopted",
                            }))
                        };
                        self.quarantine_claim(
                            row,
                            &canon,
                            &tmp,
                            &e.to_string(),
                            level,
                            Some(m),
                            now,
                            &mut quarantined,
                        );
                        continue;
                    }
                },
            };
            let (alert_key, index_id, alert_time, new_row) = match &info {
                Some(i) => (
                    i.alert_key.clone(),
                    i.index_name.clone().zip(i.doc_id.clone()),
                    parse_rfc3339(&i.alert_time).unwrap_or(meta.time),
                    None,
                ),
                None => {
                    let row = NewRow {
                        key_hash: canon.key_hash.clone(),
                        alert_key: meta.key.as_str().to_string(),
                        state: State::Triaging,
                        name: String::from_utf8_lossy(&name).into_owned(),
                        content_hash: meta.content_hash.clone(),
                        level: meta.level,
                        priority: canon.priority,
                        alert_time: meta
                            .time
                            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                        index_name: None,
                        doc_id: None,
                        source: "adopted",
                    };
                    (meta.key.as_str().to_string(), None, meta.time, Some(row))
                }
            };
            let case_id = CaseId::for_key(&canon.key_hash);
            let case_path = info
                .as_ref()
                .and_then(|i| i.case_path.clone())
                .unwrap_or_else(|| cases::case_path(&decision.bucket, alert_time, &case_id));
            items.push(Item {
                tmp,
                key_hash: canon.key_hash,
                alert_key,
                index_id,
                value,
                bytes,
                decision,
                case_id,
                case_path,
                alert_time,
                new_row,
                row_id: info.as_ref().map(|i| i.id),
            });
        }
        // 3. Intent rows (and the rows of what was quarantined), one transaction.
        // Everything the intent rows need is computed before the shared connection is taken.
        let at = now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let high = self.policy.thresholds().high;
        let stored: Vec<(String, Option<String>)> = items
            .iter()
            .map(|it| {
                let rule_id = it
                    .value
                    .get("rule")
                    .and_then(|r| r.get("id"))
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string));
                (
                    serde_json::to_string(&it.decision).unwrap_or_default(),
                    rule_id,
                )
            })
            .collect();
        let ids = retry_full("commit intent rows", || {
            Ok(shared.lock().write(|tx| {
            let mut ids = Vec::with_capacity(items.len());
            for (it, (decision, rule_id)) in items.iter().zip(&stored) {
                let id = match it.row_id {
                    Some(id) => id,
                    None => {
                        if let Some(r) = &it.new_row {
                            tx.insert(r)?;
                        }
                        tx.conn()
                            .prepare_cached("SELECT id FROM alerts WHERE key_hash = ?1")?
                            .query_row([it.key_hash.as_str()], |r| r.get::<_, i64>(0))?
                    }
                };
                ids.push(id);
                let d = &it.decision;
                tx.conn()
                    .prepare_cached(
                        "UPDATE alerts SET state = 'triaging', worker = ?2, bucket = ?3, critical = ?4, case_id = ?5,
                           case_path = ?6, agent = ?7, rule_id = ?8, description = ?9, level = ?10,
                           updated_at = ?11 WHERE id = ?1",
                    )?
                    .execute(rusqlite::params![
                        id,
                        worker.id(),
                        d.bucket,
                        d.critical,
                        it.case_id.as_str(),
                        it.case_path,
                        d.agent,
                        rule_id,
                        it.value.get("rule").and_then(|r| r.get("description")).and_then(Value::as_str),
                        d.level,
                        at,
                    ])?;
                tx.conn()
                    .prepare_cached("INSERT OR REPLACE INTO intents (key_hash, decision) VALUES (?1, ?2)")?
                    .execute(rusqlite::params![it.key_hash.as_str(), decision])?;
            }
            for p in &quarantined {
                match &p.row {
                    QRow::Alert(r) => {
                        tx.insert(r)?;
                    }
                    QRow::Own => {
                        let kh = p.key_hash.as_str();
                        tx.set_state(kh, State::Quarantined, &format!("{}.json", p.entry), None)?;
                        tx.conn().execute("DELETE FROM intents WHERE key_hash = ?1", [kh])?;
                    }
                    QRow::Entry => {}
                }
                // Whether a Q- pack is owed is recorded with the quarantine (intent first).
                if let Some(kh) = p.row_key() {
                    record_owed_pack(tx, &kh, p.owed_pack(high), worker.id())?;
                }
            }
            Ok(ids)
        })?)
        })?;
        for (it, id) in items.iter_mut().zip(ids) {
            it.row_id = Some(id);
        }
        // Misnamed files go back through admission (their rows, if any, are untouched: the
        // alert their name promised is not here, and reconcile will say so).
        for (name, canon, tmp) in misnamed {
            let inner = format!("{tmp}/alert.json");
            match worker
                .dir()
                .rename_to(inner.as_bytes(), &self.sp.state.incoming, &name)?
            {
                Moved::Moved => {
                    report.misnamed += 1;
                    worker.dir().remove_flat_dir(tmp.as_bytes())?;
                    shared.release_keys(std::iter::once(&canon.key_hash));
                }
                Moved::Vanished => {
                    report.vanished += 1;
                    worker.dir().remove_flat_dir(tmp.as_bytes())?;
                    shared.release_keys(std::iter::once(&canon.key_hash));
                }
                Moved::Exists => {
                    // incoming/ holds that name already: kept in quarantine with the reason.
                    self.quarantine_claim(
                        QRow::Entry,
                        &canon,
                        &tmp,
                        "the alert key in its name is not its content's; incoming/ already holds that name",
                        None,
                        None,
                        now,
                        &mut quarantined,
                    );
                }
            }
        }
        // 4. Build each case in its temp case (the alert is there already); build packs for
        //    high cases, with their related alerts read in one transaction.
        let related: HashMap<usize, Vec<RelatedRef>> = {
            let l = shared.lock();
            let tx = l.conn().unchecked_transaction()?;
            let mut out = HashMap::new();
            for (i, it) in items.iter().enumerate() {
                if it.decision.bucket == "high" {
                    let r = self.related(&l, &it.decision.agent, it.alert_time, &it.case_id)?;
                    out.insert(i, r);
                }
            }
            tx.commit()?;
            out
        };
        let no_alert = Map::new();
        let mut packs: Vec<(usize, String)> = Vec::new();
        for (i, it) in items.iter().enumerate() {
            let alert_obj = it.value.as_object().unwrap_or(&no_alert);
            let case = cases::case_json(&CaseInput {
                case_id: &it.case_id,
                alert_key: &it.alert_key,
                index_id: it.index_id.as_ref().map(|(a, b)| (a.as_str(), b.as_str())),
                decision: &it.decision,
                alert: alert_obj,
                alert_time: it.alert_time,
                triage_time: now,
                dashboard_url: self.opts.dashboard_url.as_deref(),
                quarantine_entry: None,
            });
            let case_bytes = serde_json::to_vec_pretty(&case).unwrap_or_default();
            let case_file = format!("{}/case.json", it.tmp);
            let mut tries = 0;
            retry_full("build case", || {
                tries += 1;
                if tries > 1 {
                    // A try that failed on a full disk may have left a partial file: rebuilt.
                    worker.dir().remove_file(case_file.as_bytes())?;
                }
                worker
                    .dir()
                    .create_file(&case_file, &case_bytes, self.durability())?;
                Ok(())
            })?;
            if self.durability() == Durability::Strict {
                worker.dir().open_subdir(it.tmp.as_bytes())?.sync()?;
            }
            if let Some(related) = related.get(&i) {
                let files = escalate::render_pack(&PackInput {
                    case_id: it.case_id.as_str(),
                    case_json: &case,
                    alert_bytes: &it.bytes,
                    alert: alert_obj,
                    canonical_agent: &it.decision.agent,
                    agent_aliases: &agent_aliases(alert_obj, &it.decision.agent),
                    related,
                    dashboard_url: self.opts.dashboard_url.as_deref(),
                    quarantine_entry: None,
                });
                let ptmp = format!(".tmp-pack-{}-{}", worker.id(), it.case_id.as_str());
                self.write_pack_dir(&ptmp, &files)?;
                packs.push((i, ptmp));
            }
        }
        Ok(Built {
            keys,
            items,
            packs,
            quarantined,
            now,
        })
    }

    /// Publishes a built batch's cases and packs (after a barrier made them durable).
    fn publish(
        &self,
        shared: &Shared,
        worker: &Worker,
        built: Built,
        report: &mut TriageReport,
        notices: &mut Vec<Notice>,
    ) -> Result<Published, TriageError> {
        let Built {
            keys,
            items,
            packs,
            quarantined,
            now,
        } = built;
        crate::failpoint::crash_point("triage-publish");
        // The intent rows recorded where each quarantined file goes, and the barrier before
        // publish made them durable: move the files now.
        self.apply_quarantines(&mut shared.lock(), worker, quarantined, now, report)?;
        let mut day_dirs: HashMap<String, DirFd> = HashMap::new();
        let mut published: Vec<bool> = vec![false; items.len()];
        let renaming = shared.renaming(self.durability());
        for (i, it) in items.iter().enumerate() {
            let tmp = &it.tmp;
            let day = retry_full("create case directory", || {
                self.day_dir(&mut day_dirs, &it.case_path).map(|_| ())
            })
            .and_then(|()| self.day_dir(&mut day_dirs, &it.case_path))?;
            let moved = retry_full("publish case", || {
                Ok(worker
                    .dir()
                    .rename_to(tmp.as_bytes(), day, it.case_id.as_str().as_bytes())?)
            })?;
            match moved {
                Moved::Moved => {
                    published[i] = true;
                    if self.durability() == Durability::Strict {
                        day.sync()?;
                    }
                }
                Moved::Vanished => {}
                Moved::Exists => {
                    // The case exists already (published before a crash). Never overwrite, never
                    // lose: this copy goes to quarantine with the reason.
                    let q = Quarantine {
                        state: self.sp.state,
                        durability: self.durability(),
                    };
                    let reason = format!(
                        "case {} already exists; this second copy was not published",
                        it.case_path
                    );
                    if let Some(row) = q.move_in(worker.dir(), tmp.as_bytes(), tmp, &reason, now)? {
                        shared.lock().write(|tx| tx.insert(&row).map(|_| ()))?;
                        report.quarantined += 1;
                    }
                    notices.push(Notice {
                        what: format!("cases/{}", it.case_path),
                        reason,
                    });
                    // The published case stands: the row is finished as triaged below.
                    published[i] = true;
                }
            }
        }
        drop(renaming);
        let mut packed: Vec<bool> = vec![false; items.len()];
        for (i, ptmp) in &packs {
            if !published[*i] {
                self.sp.state.escalations.remove_flat_dir(ptmp.as_bytes())?;
                continue;
            }
            let id = items[*i].case_id.as_str();
            let moved = retry_full("publish escalation pack", || {
                Ok(self.sp.state.escalations.rename_to(
                    ptmp.as_bytes(),
                    &self.sp.state.escalations,
                    id.as_bytes(),
                )?)
            })?;
            match moved {
                Moved::Moved => packed[*i] = true,
                Moved::Exists => {
                    self.sp.state.escalations.remove_flat_dir(ptmp.as_bytes())?;
                    packed[*i] = true;
                }
                Moved::Vanished => {}
            }
        }
        if self.durability() == Durability::Strict {
            self.sp.state.escalations.sync()?;
        }
        Ok(Published {
            keys,
            items,
            published,
            packed,
            now,
        })
    }

    /// Commits a published batch (after a barrier made its publishes durable): rows
    /// `triaged` or `escalated`, intents deleted, signature hits counted.
    fn commit(
        &self,
        shared: &Shared,
        p: Published,
        report: &mut TriageReport,
    ) -> Result<(), TriageError> {
        let Published {
            keys,
            items,
            published,
            packed,
            now,
        } = p;
        crate::failpoint::crash_point("triage-commit");
        let at = now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        // Signature hits of the batch, one upsert per signature.
        let mut hits: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
        for (i, it) in items.iter().enumerate() {
            if !published[i] {
                continue;
            }
            let d = &it.decision;
            if d.matched_kind.as_deref() == Some("suppress") {
                if let Some(m) = &d.matched {
                    hits.entry(m).or_default().0 += 1;
                }
            }
            for h in &d.held_back {
                hits.entry(h).or_default().1 += 1;
            }
        }
        retry_full("commit triaged rows", || {
            Ok(shared.lock().write(|tx| {
            for (i, it) in items.iter().enumerate() {
                if !published[i] {
                    continue;
                }
                let state = if packed[i] { State::Escalated } else { State::Triaged };
                tx.conn()
                    .prepare_cached("UPDATE alerts SET state = ?2, pack = ?3, worker = NULL, name = 'alert.json', updated_at = ?4 WHERE id = ?1")?
                    .execute(rusqlite::params![it.row_id, state.as_str(), packed[i], at])?;
                tx.conn()
                    .prepare_cached("DELETE FROM intents WHERE key_hash = ?1")?
                    .execute([it.key_hash.as_str()])?;
            }
            for (sig, (n, held)) in &hits {
                bump_signature(tx, sig, *n, *held, now)?;
            }
            Ok(())
        })?)
        })?;
        for (i, it) in items.iter().enumerate() {
            if !published[i] {
                continue;
            }
            report.triaged += 1;
            *report
                .buckets
                .entry(it.decision.bucket.clone())
                .or_default() += 1;
            if it.decision.critical {
                report.critical += 1;
            }
            if packed[i] {
                report.escalated += 1;
            }
            if it.decision.matched_kind.as_deref() == Some("suppress") {
                if let Some(m) = &it.decision.matched {
                    *report.signature_hits.entry(m.clone()).or_default() += 1;
                }
            }
            report.held_back += it.decision.held_back.len() as u64;
        }
        shared.release_keys(keys.iter());
        shared.commits.fetch_add(2, Ordering::Relaxed);
        Ok(())
    }

    /// The day directory `cases/<bucket>/<YYYY>/<MM>/<DD>` of a case path, created as needed.
    fn day_dir<'d>(
        &self,
        cache: &'d mut HashMap<String, DirFd>,
        case_path: &str,
    ) -> Result<&'d DirFd, TriageError> {
        let parent = case_path
            .rsplit_once('/')
            .map_or(case_path, |x| x.0)
            .to_string();
        if !cache.contains_key(&parent) {
            let d = self
                .sp
                .state
                .cases
                .ensure_subdir_chain(&parent, self.durability())?;
            cache.insert(parent.clone(), d);
        }
        cache.get(&parent).ok_or_else(|| {
            TriageError::Fs(FsError::new(
                "open directory",
                parent,
                std::io::Error::other("missing"),
            ))
        })
    }

    /// Alerts on the same canonical agent in the window before `time`, newest first (at most 50).
    fn related(
        &self,
        ledger: &Ledger,
        agent: &str,
        time: DateTime<Utc>,
        own: &CaseId,
    ) -> Result<Vec<RelatedRef>, TriageError> {
        let from =
            (time - self.opts.related_window).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let to = time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let mut st = ledger.conn().prepare_cached(
            "SELECT case_id, alert_time, rule_id, level, description FROM alerts
             WHERE agent = ?1 AND alert_time >= ?2 AND alert_time <= ?3 AND case_id IS NOT NULL AND case_id != ?4
               AND state IN ('triaging', 'triaged', 'escalated')
             ORDER BY alert_time DESC LIMIT 50",
        )?;
        let rows = st.query_map(rusqlite::params![agent, from, to, own.as_str()], |r| {
            Ok(RelatedRef {
                case_id: r.get(0)?,
                time: r.get(1)?,
                rule_id: r.get(2)?,
                level: r.get(3)?,
                description: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Finishes what crashed runs left: intent rows whose worker is gone (published: triaged;
    /// queued again: nothing to do), temp packs of dead workers, high cases without a pack,
    /// quarantined alerts whose `Q-<entry>` pack is owed (rebuilt from the entry).
    fn recover_intents(
        &self,
        ledger: &mut Ledger,
        report: &mut TriageReport,
        notices: &mut Vec<Notice>,
    ) -> Result<(), TriageError> {
        let now = Utc::now();
        let state = self.sp.state;
        // Temp packs of workers that are gone.
        for e in state.escalations.list()? {
            let Some(n) = e.name_str() else { continue };
            let Some(rest) = n.strip_prefix(".tmp-pack-") else {
                continue;
            };
            // `.tmp-pack-w-<pid>-<rand>-<case>` (a worker's), `.tmp-pack-q-<pid>-<entry>` and
            // `.tmp-pack-r-<pid>-<case>` (quarantine and repair packs of a process): removed only
            // when their owner is gone.
            let dead = if rest.starts_with("w-") {
                let owner = rest.split('-').take(3).collect::<Vec<_>>().join("-");
                match state.processing.open_subdir_opt(owner.as_bytes())? {
                    Some(wdir) => !crate::store::claim::worker_is_live(&wdir).unwrap_or(true),
                    None => true,
                }
            } else {
                let pid = rest.split('-').nth(1).and_then(|p| p.parse::<i32>().ok());
                pid.and_then(rustix::process::Pid::from_raw)
                    .is_none_or(|p| {
                        rustix::process::test_kill_process(p) == Err(rustix::io::Errno::SRCH)
                    })
            };
            if dead {
                state.escalations.remove_flat_dir(&e.name)?;
            }
        }
        // One scan for both: unfinished intents, and quarantined rows owing a Q- pack.
        let mut stuck: Vec<(String, String, Option<String>)> = Vec::new();
        let mut owed: Vec<OwedPack> = Vec::new();
        {
            let mut st = ledger.conn().prepare(
                "SELECT state, key_hash, name, case_path, worker, level FROM alerts
                 WHERE (state = 'triaging' AND case_path IS NOT NULL)
                    OR (state = 'quarantined' AND pack = ?1)",
            )?;
            let mut rows = st.query([PACK_OWED])?;
            while let Some(r) = rows.next()? {
                let (st, kh, name, worker): (String, String, String, Option<String>) =
                    (r.get(0)?, r.get(1)?, r.get(2)?, r.get(4)?);
                match r.get::<_, Option<String>>(3)? {
                    Some(case_path) if st == State::Triaging.as_str() => {
                        stuck.push((kh, case_path, worker));
                    }
                    _ => owed.push(OwedPack {
                        key_hash: kh,
                        name,
                        level: r.get(5)?,
                        worker,
                    }),
                }
            }
        }
        // Every row of a dead worker's batch names the same worker: look at each lock once.
        let mut alive: HashMap<Option<String>, bool> = HashMap::new();
        let mut worker_alive = |w: &Option<String>| -> Result<bool, TriageError> {
            if let Some(a) = alive.get(w) {
                return Ok(*a);
            }
            let a = self.worker_alive(w.as_deref())?;
            alive.insert(w.clone(), a);
            Ok(a)
        };
        let mut finished = Vec::new();
        for (kh, case_path, worker) in stuck {
            if worker_alive(&worker)? {
                continue; // a live worker's intent
            }
            if self.case_exists(&case_path)? {
                finished.push((kh, worker));
            }
        }
        if !finished.is_empty() {
            // A batch that failed after publishing may not have had its barrier yet: make the
            // publishes durable before the rows say so.
            state.cases.barrier(self.durability())?;
            ledger.write(|tx| {
                for (kh, worker) in &finished {
                    // Only if still the same unfinished intent: its worker may have committed
                    // `escalated` since it was read.
                    tx.conn().execute(
                        "UPDATE alerts SET state = 'triaged', worker = NULL, name = 'alert.json', updated_at = ?2
                         WHERE key_hash = ?1 AND state = 'triaging' AND worker IS ?3",
                        rusqlite::params![kh, now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true), worker],
                    )?;
                    tx.conn().execute("DELETE FROM intents WHERE key_hash = ?1", [kh])?;
                }
                Ok(())
            })?;
            report.finished_intents += finished.len() as u64;
        }
        // High cases without a pack get it.
        let unpacked: Vec<(String, String)> = {
            let mut st = ledger.conn().prepare("SELECT key_hash, case_path FROM alerts WHERE state = 'triaged' AND bucket = 'high' AND pack = 0")?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<Result<Vec<_>, _>>()?
        };
        for (kh, case_path) in unpacked {
            match self.repack(ledger, &case_path)? {
                true => {
                    ledger.write(|tx| {
                        tx.conn()
                            .execute("UPDATE alerts SET state = 'escalated', pack = 1 WHERE key_hash = ?1", [&kh])
                            .map(|_| ())
                    })?;
                    report.packs_repaired += 1;
                }
                false => notices.push(Notice {
                    what: format!("cases/{case_path}"),
                    reason: "high case without a pack could not be read to build one".into(),
                }),
            }
        }
        // Quarantined alerts whose Q- pack is owed: a crash between the move into quarantine
        // and the pack (a live worker's are its own to finish).
        for o in owed {
            if worker_alive(&o.worker)? {
                continue;
            }
            match self.requarantine_pack(&o, now)? {
                QuarantinePack::Rebuilt => report.quarantine_packs_repaired += 1,
                QuarantinePack::Present => {}
                QuarantinePack::NotRebuilt(reason) => {
                    notices.push(Notice {
                        what: format!("quarantine/{}", fsx::escape_name(o.name.as_bytes())),
                        reason: format!(
                            "its escalation pack is owed and was not rebuilt: {reason}"
                        ),
                    });
                    continue;
                }
            }
            ledger.write(|tx| record_pack_done(tx, &o.key_hash))?;
        }
        Ok(())
    }

    /// True when `worker` names a worker that is alive: holding its lock, not merely having a
    /// folder.
    fn worker_alive(&self, worker: Option<&str>) -> Result<bool, TriageError> {
        let Some(w) = worker else { return Ok(false) };
        Ok(
            match self.sp.state.processing.open_subdir_opt(w.as_bytes())? {
                Some(wdir) => crate::store::claim::worker_is_live(&wdir).unwrap_or(true),
                None => false,
            },
        )
    }

    /// Rebuilds the owed `escalations/Q-<entry>/` of a quarantined row from its entry
    /// (`quarantine/<entry>.json`, read without following a link and parsed leniently: strict
    /// parsing is allowed to fail there, that may be why it is quarantined; the reason from
    /// `<entry>.reason` when it can be read), with [`Triage::quarantine_pack`].
    fn requarantine_pack(
        &self,
        o: &OwedPack,
        now: DateTime<Utc>,
    ) -> Result<QuarantinePack, TriageError> {
        let state = self.sp.state;
        // The entry name comes from the ledger: only one of ours (allow-listed alphabet) is
        // ever used in a path.
        let Some((entry, id)) = o
            .name
            .strip_suffix(".json")
            .filter(|e| !e.is_empty())
            .and_then(|e| Some((e, CaseId::from_stored(&format!("Q-{e}"))?)))
        else {
            return Ok(QuarantinePack::NotRebuilt(
                "not a quarantine entry name".into(),
            ));
        };
        match state.escalations.open_subdir_opt(id.as_str().as_bytes()) {
            Ok(Some(_)) => return Ok(QuarantinePack::Present),
            Ok(None) => {}
            Err(e) => {
                return Ok(QuarantinePack::NotRebuilt(format!(
                    "escalations/{} is there but is not a pack directory ({e})",
                    id.as_str()
                )))
            }
        }
        let max = self.sp.max_alert_bytes;
        let bytes = match state.quarantine.read_regular(o.name.as_bytes(), max)? {
            ReadOutcome::Bytes(b) => b,
            ReadOutcome::Vanished => {
                return Ok(QuarantinePack::NotRebuilt(
                    "the quarantine entry is gone".into(),
                ))
            }
            ReadOutcome::Refused(r) => {
                return Ok(QuarantinePack::NotRebuilt(format!("not read: {r}")))
            }
            ReadOutcome::TooLarge(n) => {
                return Ok(QuarantinePack::NotRebuilt(format!(
                    "{n} bytes is over max_alert_bytes ({max})"
                )))
            }
        };
        let Some(alert) = alert::parse_strict(&bytes)
            .ok()
            .or_else(|| serde_json::from_slice::<Map<String, Value>>(&bytes).ok())
        else {
            return Ok(QuarantinePack::NotRebuilt(
                "the quarantine entry is not a JSON object".into(),
            ));
        };
        let Some(level) = o.level.or_else(|| alert::level_of(&alert).rank()) else {
            return Ok(QuarantinePack::NotRebuilt("no level can be read".into()));
        };
        let reason_file = format!("{entry}.reason");
        let reason = match state.quarantine.read_regular(reason_file.as_bytes(), max)? {
            ReadOutcome::Bytes(b) => quarantine_reason(&String::from_utf8_lossy(&b)),
            _ => None,
        }
        .unwrap_or_else(|| "quarantined (its reason file could not be read)".into());
        self.quarantine_pack(entry, level, &alert, &reason, now)?;
        Ok(QuarantinePack::Rebuilt)
    }

    fn case_exists(&self, case_path: &str) -> Result<bool, TriageError> {
        Ok(self.sp.state.cases.open_path_opt(case_path)?.is_some())
    }

    /// Builds the missing pack of a published high case from its directory.
    fn repack(&self, ledger: &Ledger, case_path: &str) -> Result<bool, TriageError> {
        let Some(dir) = self.sp.state.cases.open_path_opt(case_path)? else {
            return Ok(false);
        };
        let max = self.sp.max_alert_bytes;
        let (ReadOutcome::Bytes(alert_bytes), ReadOutcome::Bytes(case_bytes)) = (
            dir.read_regular(b"alert.json", max)?,
            dir.read_regular(b"case.json", max)?,
        ) else {
            return Ok(false);
        };
        let (Ok(alert), Ok(case)) = (
            alert::parse_strict(&alert_bytes),
            serde_json::from_slice::<Value>(&case_bytes),
        ) else {
            return Ok(false);
        };
        let Some(id) = case
            .get("case_id")
            .and_then(Value::as_str)
            .and_then(CaseId::from_stored)
        else {
            return Ok(false);
        };
        let agent = case
            .pointer("/agent/canonical")
            .and_then(Value::as_str)
            .unwrap_or("unknown")
            .to_string();
        let time = case
            .get("alert_time")
            .and_then(Value::as_str)
            .and_then(parse_rfc3339)
            .unwrap_or_else(Utc::now);
        let related = self.related(ledger, &agent, time, &id)?;
        let files = escalate::render_pack(&PackInput {
            case_id: id.as_str(),
            case_json: &case,
            alert_bytes: &alert_bytes,
            alert: &alert,
            canonical_agent: &agent,
            agent_aliases: &agent_aliases(&alert, &agent),
            related: &related,
            dashboard_url: self.opts.dashboard_url.as_deref(),
            quarantine_entry: None,
        });
        self.publish_pack(
            &format!(".tmp-pack-r-{}-{}", std::process::id(), id.as_str()),
            &id,
            &files,
        )
    }
}

/// A quarantined row whose `Q-<entry>` pack is owed ([`PACK_OWED`]).
struct OwedPack {
    key_hash: String,
    /// `<entry>.json`
    name: String,
    level: Option<u32>,
    worker: Option<String>,
}

/// What became of an owed `Q-<entry>` pack at recovery.
enum QuarantinePack {
    /// Built and published now.
    Rebuilt,
    /// Published before the crash: only the row was behind.
    Present,
    /// Not rebuilt (why): the row keeps owing it.
    NotRebuilt(String),
}

/// The `reason:` of a quarantine reason file (`entry: …\norigin: …\nreason: …\ntime: …\n`).
fn quarantine_reason(text: &str) -> Option<String> {
    let (_, rest) = text.split_once("\nreason: ")?;
    let reason = rest.rsplit_once("\ntime: ").map_or(rest, |x| x.0);
    Some(reason.trim_end().to_string())
}

/// The shared connection of a triage's threads (one per process: its page cache survives the
/// other thread's commits; held only around each ledger call, never across file work), and how
/// many transactions they committed.
struct Shared {
    ledger: Mutex<Ledger>,
    commits: AtomicU64,
    /// Keys claimed by this process and not yet committed (or quarantined).
    in_flight: Mutex<std::collections::HashSet<KeyHash>>,
    /// Held by a thread through its batch's claim renames and through its publish renames.
    renames: Mutex<()>,
}

impl Shared {
    /// The shared connection (a thread that panicked holding it left no transaction open:
    /// `Ledger::write` rolls back on unwind).
    fn lock(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Taken around a batch's run of renames across directories. The kernel serializes those
    /// filesystem-wide (`s_vfs_rename_mutex`): two threads renaming at once spun on it (~8% of
    /// the process's CPU); taking turns by batch, the other thread sleeps or does its
    /// reading, deciding and writing meanwhile. Not with strict durability, whose renames each
    /// wait for an fsync.
    fn renaming(&self, durability: Durability) -> Option<std::sync::MutexGuard<'_, ()>> {
        (durability != Durability::Strict).then(|| {
            self.renames
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        })
    }

    /// `true` when no other claim of this process holds `key`; it is held from now on.
    fn claim_key(&self, key: &KeyHash) -> bool {
        self.in_flight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key.clone())
    }

    fn release_keys<'k>(&self, keys: impl Iterator<Item = &'k KeyHash>) {
        let mut held = self
            .in_flight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for k in keys {
            held.remove(k);
        }
    }
}

/// Commits between two checkpoints (a batch commits twice: 6 are three batches, ~6,000 alerts;
/// the WAL peaks at ~36 MiB for 100,000 alerts since rows sit in the queue's order, and 24 were
/// no faster; with rows in arrival order, 16 let it reach 150 MiB). Every
/// checkpoint fsyncs the WAL and the database, and each fsync commits the filesystem's journal
/// with every directory block the batches changed since the last one: checkpointing every 50 ms
/// tripled the journal commits of a 100,000-alert triage.
const CHECKPOINT_EVERY: u64 = 6;

/// One listing's batches, shared by the worker threads of a pass.
struct Pass<'n> {
    chunks: Mutex<VecDeque<&'n [Vec<u8>]>>,
    end: Mutex<Instant>,
    /// Claiming from `overflow/` (the queue was empty at the listing).
    from_overflow: bool,
}

impl<'n> Pass<'n> {
    /// The next batch of names, or `None` when the listing is used up or the pass is over.
    /// A pass over `overflow/` goes on past its end while `queue/` stays empty: a new listing
    /// would only find the same order, and ending a pass costs both threads' pipelines (each
    /// relisting of a 500,000-name overflow/ cost the incident ~1 s).
    fn next(&self, queue: &DirFd) -> Option<&'n [Vec<u8>]> {
        let mut end = self
            .end
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if Instant::now() >= *end {
            // (A queue/ that cannot be read ends the pass: the next listing reports why.)
            if !self.from_overflow || queue.any_visible_entry().unwrap_or(true) {
                return None;
            }
            *end = Instant::now() + PASS;
        }
        drop(end);
        self.chunks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop_front()
    }
}

/// Sets its flag when dropped.
struct SetOnDrop<'a>(&'a AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Checkpoints the WAL after every [`CHECKPOINT_EVERY`] commits, looking every 50 ms until
/// `done`. The checkpoint holds the shared connection's lock, so no commit of this process runs
/// beside it and the next commit starts the WAL over (passive checkpoints beside running
/// commits seldom could, and the WAL grew to 158 MB for 100,000 alerts). A failure costs only
/// WAL size: the next checkpoint copies what this one did not.
fn checkpoints(ledger: &Ledger, shared: &Shared, done: &AtomicBool) {
    let mut last = 0;
    while !done.load(Ordering::SeqCst) {
        std::thread::sleep(std::time::Duration::from_millis(50));
        let now = shared.commits.load(Ordering::Relaxed);
        if now - last >= CHECKPOINT_EVERY {
            last = now;
            let _held = shared.lock();
            if let Err(e) = ledger.checkpoint() {
                tracing::debug!("ledger checkpoint: {e}");
            }
        }
    }
}

fn bump_signature(
    tx: &mut crate::store::ledger::Tx<'_>,
    id: &str,
    hits: u64,
    held: u64,
    now: DateTime<Utc>,
) -> Result<(), rusqlite::Error> {
    tx.conn()
        .prepare_cached(
            "INSERT INTO signature_hits (id, hits, held_back, last_hit) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(id) DO UPDATE SET hits = hits + excluded.hits, held_back = held_back + excluded.held_back, last_hit = excluded.last_hit",
        )?
        .execute(rusqlite::params![id, hits, held, now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)])?;
    Ok(())
}
