//! Stage 3, triage (with stages 4 and 5 inside each batch): admission, recovery of dead workers
//! and unfinished intents, then batches of claim, read, parse, decide, intent rows, build cases
//! in the claim folder, make the batch durable, publish, escalate, commit.
//!
//! This file is the frame: [`Triage`], [`TriageOptions`], [`TriageError`], the run (admission,
//! recovery, the threads) and the drain loop that hands each pass's listing to the workers. It
//! promises that a triage either finishes what `queue/` and `overflow/` held (or stops at the
//! deadline or a signal, saying so in the report) or fails with an error naming the path; in
//! every case what it left is finished from the intent rows by the next run. The rooms:
//!
//! - [`plan`]: the decision for one claimed file (pure: no IO, no ledger, no clock).
//! - [`batch`]: one worker's batches: claim, read, plan, intent rows, build, publish, commit.
//! - [`quarantine`]: claimed files that cannot be triaged, their `Q-` packs, and pack writing.
//! - [`recover`]: what crashed runs left (unfinished intents, packs owed, dead temp files).
//! - [`workers`]: the thread runtime (the shared connection, renaming turns, keys in flight,
//!   passes, the checkpointer).
//!
//! Design constraints:
//! - A write, rename or ledger commit of a batch that fails because the disk is full is tried
//!   again after a pause ([`DISK_FULL_TRIES`] tries in all, 100 ms then 400 ms apart: space can
//!   come back when a log rotates or another job ends), then the stage FAILS with the path and
//!   "no space left on device"; the next run finishes from the intent rows. Each retried step is
//!   idempotent (a temp directory is rebuilt from scratch, a rename that failed changed nothing,
//!   a transaction that failed rolled back). Durability barriers (`syncfs`, `fsync`) are never
//!   retried: after a failed sync the kernel may have dropped the dirty pages and marked them
//!   clean, so a second sync can report success for data that never reached the disk. The batch
//!   fails at once there and the next run redoes it from the intent rows.
//! - Nothing is written from a serialization that failed: a decision, a case or an alert that
//!   cannot be serialized is [`TriageError::Serialize`], never an empty file or stored decision.

mod batch;
mod plan;
mod quarantine;
mod recover;
mod report;
mod workers;
pub(crate) use batch::agent_aliases;
pub use report::TriageReport;

use std::sync::atomic::AtomicBool;
use std::time::Instant;

use chrono::Utc;

use crate::stages::incidents;
use crate::store::claim::{self, Worker};
use crate::store::fsx::{Durability, FsError};
use crate::store::ledger::{Ledger, LedgerError};
use crate::store::names;
use crate::store::spool::{Notice, Spool, SpoolError};
use workers::{checkpoints, Pass, SetOnDrop, Shared};

#[derive(Debug, thiserror::Error)]
pub enum TriageError {
    #[error(transparent)]
    Spool(#[from] SpoolError),
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Backfill(#[from] crate::stages::incidents::backfill::BackfillError),
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
    /// A decision, a case or an alert that could not be serialized: nothing is written from it
    /// (never an empty `case.json` or stored decision).
    #[error("{what}: cannot be serialized ({source})")]
    Serialize {
        what: String,
        source: serde_json::Error,
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

/// How often the rebuilder thread brings incident files up to the ledger during a triage.
const REBUILD_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

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
    /// `[incidents] close_after`.
    pub incidents_close_after: std::time::Duration,
    /// The delivery routes, whose messages incident rounds make due.
    pub notify: Vec<crate::stages::deliver::due::RouteSpec>,
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
            incidents_close_after: std::time::Duration::from_secs(900),
            notify: Vec::new(),
        }
    }
}

/// Everything a triage batch needs, shared by its threads.
pub struct Triage<'a> {
    pub sp: &'a Spool<'a>,
    pub policy: &'a sf_policy::Policy,
    pub opts: &'a TriageOptions,
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
        // The delivery routes are known before any incident this run creates: an incident
        // created since its route was first seen owes the route its messages (reconcile).
        if !self.opts.notify.is_empty() {
            let now_s = crate::store::ledger::incidents::time_text(now);
            ledger.write(|tx| {
                for r in &self.opts.notify {
                    tx.notify_route_seen(&r.name, r.kind.as_str(), &now_s)?;
                }
                Ok(())
            })?;
        }
        // The workers are started (their folders locked) before admission and recovery move
        // anything, so that a reconcile running meanwhile sees a live worker and records no
        // loss from a listing that admission or recovery is changing under it. Recovery
        // never takes them: their locks are held.
        let threads = self.opts.threads.max(1);
        let mut workers = Vec::with_capacity(threads);
        for _ in 0..threads {
            workers.push(Worker::start(self.sp.state)?);
        }
        let mut report = TriageReport {
            admission: self.sp.admit(ledger, now, notices)?,
            recovery: claim::recover_dead(self.sp, ledger, None, now, notices)?,
            ..TriageReport::default()
        };
        // Our own workers are live, not others'.
        report.recovery.live_workers = report
            .recovery
            .live_workers
            .saturating_sub(workers.len() as u64);
        report.recovery.temps_removed += self.sweep_dead_temps()?;
        self.recover_intents(ledger, &mut report, notices)?;
        if incidents::backfill::pending(ledger)? {
            let b = incidents::backfill::run(self.sp.state, ledger, self.policy, now)?;
            report.incidents_backfilled = b.assigned;
        }
        let shared = Ledger::open(ledger.path(), self.durability())?;
        // The batches' commits do not checkpoint: a thread checkpointing (copying the WAL into
        // the database and waiting for two fsyncs) while holding the shared connection stalled
        // the other thread (measured: the largest single cause of waiting). A checkpointer
        // thread of its own does it beside them.
        shared.manual_checkpoints()?;
        let shared = Shared::new(shared);
        let checkpointer = Ledger::open(ledger.path(), self.durability())?;
        let mut rebuilder = Ledger::open(ledger.path(), self.durability())?;
        let done = AtomicBool::new(false);
        let result = std::thread::scope(|s| {
            let shared = &shared;
            let done_ref = &done;
            s.spawn(move || checkpoints(&checkpointer, shared, done_ref));
            let rebuilder = &mut rebuilder;
            s.spawn(move || self.rebuild_incidents(rebuilder, done_ref));
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
        // The files of every incident this run touched (and any an earlier run left behind)
        // show the ledger before the run ends.
        match incidents::build::round(
            self.sp.state,
            ledger,
            self.round_options(true),
            &self.opts.notify,
            Utc::now(),
        ) {
            Ok(r) => report.incidents_built += r.built + r.emptied,
            Err(e) => notices.push(Notice {
                what: "incidents".into(),
                reason: format!("incident files not rebuilt (the next run does): {e}"),
            }),
        }
        result.map(|()| report)
    }

    fn round_options(&self, wait: bool) -> incidents::build::RoundOptions {
        incidents::build::RoundOptions {
            close_after: self.opts.incidents_close_after,
            durability: self.durability(),
            wait,
        }
    }

    /// Beside the batches: brings the files of the incidents their commits touched up to the
    /// ledger, a round every [`REBUILD_EVERY`], so a crash leaves them little behind. A
    /// failed round is retried by the next (and by the final one).
    ///
    /// A round that took long spaces the next out (at least four times its length), so that
    /// rebuilding takes at most about a fifth of a core from the batches.
    fn rebuild_incidents(&self, ledger: &mut Ledger, done: &AtomicBool) {
        let mut since = Instant::now();
        let mut pause = REBUILD_EVERY;
        while !done.load(std::sync::atomic::Ordering::SeqCst) {
            std::thread::sleep(std::time::Duration::from_millis(50));
            if since.elapsed() < pause {
                continue;
            }
            let started = Instant::now();
            if let Err(e) = incidents::build::round(
                self.sp.state,
                ledger,
                self.round_options(false),
                &self.opts.notify,
                Utc::now(),
            ) {
                tracing::debug!("incident rebuild: {e}");
            }
            pause = REBUILD_EVERY.max(started.elapsed() * 4);
            since = Instant::now();
        }
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
            let pass = Pass::new(names.chunks(self.opts.batch).collect(), from_overflow);
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
}
