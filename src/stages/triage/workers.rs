//! The thread runtime of triage: what its worker threads share ([`Shared`]: the one ledger
//! connection, the renaming turns, the keys in flight), how they split one listing
//! ([`Pass`]), and the checkpointer thread beside them. Promises: the shared connection is held
//! only around ledger calls, never across file work; one key has at most one claim in flight per
//! process; no commit of this process runs beside a checkpoint.
//!
//! Design constraints:
//! - Several threads, each its own worker (claim folder and lock), sharing one ledger connection
//!   (held only around ledger calls) whose commits never checkpoint; a checkpointer thread does,
//!   every 6 commits, holding that connection's lock. Each worker pipelines its batches: batch
//!   N+1 is built before the barrier that also precedes batch N's commit. Other `triage`
//!   processes may work on the same state directory at the same time.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::model::alert::KeyHash;
use crate::store::fsx::{DirFd, Durability};
use crate::store::ledger::{Ledger, Tx};

/// How long one drain pass claims from one listing before listing again.
pub(super) const PASS: Duration = Duration::from_secs(20);

/// The shared connection of a triage's threads (one per process: its page cache survives the
/// other thread's commits; held only around each ledger call, never across file work), and how
/// many transactions they committed.
pub(super) struct Shared {
    ledger: Mutex<Ledger>,
    commits: AtomicU64,
    /// Keys claimed by this process and not yet committed (or quarantined).
    in_flight: Mutex<HashSet<KeyHash>>,
    /// Held by a thread through its batch's claim renames and through its publish renames.
    renames: Mutex<()>,
}

impl Shared {
    /// Shares `ledger` (whose commits should not checkpoint: [`checkpoints`] does).
    pub(super) fn new(ledger: Ledger) -> Shared {
        Shared {
            ledger: Mutex::new(ledger),
            commits: AtomicU64::new(0),
            in_flight: Mutex::new(HashSet::new()),
            renames: Mutex::new(()),
        }
    }

    /// The shared connection (a thread that panicked holding it left no transaction open:
    /// `Ledger::write` rolls back on unwind).
    pub(super) fn lock(&self) -> MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts `n` committed transactions (for the checkpointer).
    pub(super) fn count_commits(&self, n: u64) {
        self.commits.fetch_add(n, Ordering::Relaxed);
    }

    /// Taken around a batch's run of renames across directories. The kernel serializes those
    /// filesystem-wide (`s_vfs_rename_mutex`): two threads renaming at once spun on it (~8% of
    /// the process's CPU); taking turns by batch, the other thread sleeps or does its
    /// reading, deciding and writing meanwhile. Not with strict durability, whose renames each
    /// wait for an fsync.
    pub(super) fn renaming(&self, durability: Durability) -> Option<MutexGuard<'_, ()>> {
        (durability != Durability::Strict)
            .then(|| self.renames.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// `true` when no other claim of this process holds `key`; it is held from now on.
    pub(super) fn claim_key(&self, key: &KeyHash) -> bool {
        self.in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.clone())
    }

    pub(super) fn release_keys<'k>(&self, keys: impl Iterator<Item = &'k KeyHash>) {
        let mut held = self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
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
pub(super) struct Pass<'n> {
    chunks: Mutex<VecDeque<&'n [Vec<u8>]>>,
    end: Mutex<Instant>,
    /// Claiming from `overflow/` (the queue was empty at the listing).
    from_overflow: bool,
}

impl<'n> Pass<'n> {
    /// A pass over `chunks` (one listing's batches), ending [`PASS`] from now.
    pub(super) fn new(chunks: VecDeque<&'n [Vec<u8>]>, from_overflow: bool) -> Pass<'n> {
        Pass {
            chunks: Mutex::new(chunks),
            end: Mutex::new(Instant::now() + PASS),
            from_overflow,
        }
    }

    /// The next batch of names, or `None` when the listing is used up or the pass is over.
    /// A pass over `overflow/` goes on past its end while `queue/` stays empty: a new listing
    /// would only find the same order, and ending a pass costs both threads' pipelines (each
    /// relisting of a 500,000-name overflow/ cost the incident ~1 s).
    pub(super) fn next(&self, queue: &DirFd) -> Option<&'n [Vec<u8>]> {
        let mut end = self.end.lock().unwrap_or_else(PoisonError::into_inner);
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
            .unwrap_or_else(PoisonError::into_inner)
            .pop_front()
    }
}

/// Sets its flag when dropped.
pub(super) struct SetOnDrop<'a>(pub(super) &'a AtomicBool);

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
pub(super) fn checkpoints(ledger: &Ledger, shared: &Shared, done: &AtomicBool) {
    let mut last = 0;
    while !done.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(50));
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

/// Adds a batch's hits of one signature (suppressions, and hits held back from a high alert).
pub(super) fn bump_signature(
    tx: &mut Tx<'_>,
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
