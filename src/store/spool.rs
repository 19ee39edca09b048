//! The spool: canonical names, listing without `stat`, writing new alerts into `queue/`
//! (ingest and poll), admission of producers' files, adoption of rowless files, and quarantine.
//!
//! Design constraints:
//! - A canonical name is `PP-YYYYMMDDTHHMMSSmmm-<32 hex>.json`: `PP` is `99 - priority`, then the
//!   alert time in UTC, then the alert key's hash. Sorting names bytewise is the cap's order
//!   (priority descending, then time ascending), so ordering a 500K queue is one `readdir` and
//!   a sort: no `stat`. Nothing in a name comes from alert text.
//! - Files move first, the ledger commits after (one transaction per batch). A crash between
//!   the two leaves a canonical file without a row, which is adopted later; never a row
//!   pointing at nothing that nobody notices (reconcile sees it).
//! - Same key and same content is a duplicate: counted and removed. Same key and other content
//!   is a conflict: the later copy is quarantined. Nothing is ever silently dropped.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::model::alert::{self, AlertMeta, KeyHash};
use crate::store::fsx::{escape_name, DirFd, Durability, FsError, Moved, ReadOutcome};
use crate::store::ledger::{Ledger, LedgerError, NewRow, State};
use crate::store::names::{list_alert_like, list_foreign, requeued_entry, Canonical};
use crate::store::quarantine::Quarantine;
use crate::store::state::StateDir;

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

pub type Result<T, E = SpoolError> = std::result::Result<T, E>;

/// How many files move between two ledger commits.
pub const BATCH: usize = 1024;

/// A policy's "an override forces this alert to high" test.
pub type ForcedHigh = Box<dyn Fn(&Value) -> bool + Send + Sync>;

/// Computes an alert's queue priority: its level, raised to the `high` threshold when a policy
/// override forces it to `high`.
pub struct Prioritizer {
    pub high: u32,
    pub forced_high: Option<ForcedHigh>,
}

impl Prioritizer {
    pub fn levels_only(high: u32) -> Prioritizer {
        Prioritizer {
            high,
            forced_high: None,
        }
    }

    /// The alert is borrowed mutably only to be viewed as a JSON value without a copy.
    pub fn priority(&self, level: Option<u32>, alert: &mut Map<String, Value>) -> u32 {
        let level = level.unwrap_or(0);
        let Some(forced_high) = &self.forced_high else {
            return level;
        };
        let value = Value::Object(std::mem::take(alert));
        let forced = forced_high(&value);
        if let Value::Object(m) = value {
            *alert = m;
        }
        if forced {
            level.max(self.high)
        } else {
            level
        }
    }
}

/// How an admitted alert's row is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Revive {
    /// A new row.
    No,
    /// The key's row was `lost`: replaced.
    Lost,
    /// The key's row is `quarantined` as this very entry (requeued by an operator): replaced.
    Requeued,
}

/// Counters of what admission and enqueueing did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AdmitCounts {
    /// New alerts that entered `queue/` with a row.
    pub queued: u64,
    /// Canonical files that had no row and got one.
    pub adopted: u64,
    pub duplicates: u64,
    /// Same key, other content: quarantined.
    pub conflicts: u64,
    /// Quarantined for any reason (conflicts included).
    pub quarantined: u64,
    /// Entries that could not be read and could not be moved to quarantine either.
    pub unmovable: u64,
    pub vanished: u64,
}

impl AdmitCounts {
    pub fn add(&mut self, o: &AdmitCounts) {
        self.queued += o.queued;
        self.adopted += o.adopted;
        self.duplicates += o.duplicates;
        self.conflicts += o.conflicts;
        self.quarantined += o.quarantined;
        self.unmovable += o.unmovable;
        self.vanished += o.vanished;
    }
}

/// One entry that was quarantined or reported, for the log and the command's output.
#[derive(Debug, Clone)]
pub struct Notice {
    pub what: String,
    pub reason: String,
}

/// An alert parsed and ready to enter the queue.
pub struct Parsed {
    pub bytes: Vec<u8>,
    pub alert: Map<String, Value>,
    pub index_id: Option<(String, String)>,
    /// Where it came from, for messages (`ingest alerts.json line 12`).
    pub origin: String,
}

/// The context every spool operation needs.
pub struct Spool<'a> {
    pub state: &'a StateDir,
    pub durability: Durability,
    pub prio: &'a Prioritizer,
    pub max_alert_bytes: u64,
}

enum Plan {
    /// No live row: publish and insert (or revive a lost row).
    Publish {
        revive: bool,
    },
    Duplicate,
    Conflict {
        with: String,
    },
}

impl Spool<'_> {
    fn quarantine(&self) -> Quarantine<'_> {
        Quarantine {
            state: self.state,
            durability: self.durability,
        }
    }

    /// Quarantines a new alert's bytes as a key conflict (the earlier copy stands).
    fn quarantine_conflict(
        &self,
        item: &Parsed,
        reason: &str,
        now: DateTime<Utc>,
        rows: &mut Vec<NewRow>,
        counts: &mut AdmitCounts,
    ) -> Result<()> {
        rows.push(
            self.quarantine()
                .write_in(&item.bytes, &item.origin, reason, now)?,
        );
        counts.conflicts += 1;
        counts.quarantined += 1;
        Ok(())
    }

    fn plan(&self, ledger: &Ledger, meta: &AlertMeta) -> Result<Plan> {
        Ok(match ledger.get(&meta.key_hash)? {
            None => Plan::Publish { revive: false },
            Some(r) if r.state == State::Lost => Plan::Publish { revive: true },
            Some(r) if r.content_hash == meta.content_hash => Plan::Duplicate,
            Some(r) => Plan::Conflict {
                with: format!("{} ({})", r.name, r.state.as_str()),
            },
        })
    }

    fn row_for(
        &self,
        meta: &AlertMeta,
        priority: u32,
        name: String,
        index_id: Option<(String, String)>,
        source: &'static str,
    ) -> NewRow {
        NewRow {
            key_hash: meta.key_hash.clone(),
            alert_key: meta.key.as_str().to_string(),
            state: State::Queued,
            name,
            content_hash: meta.content_hash.clone(),
            level: meta.level,
            priority,
            alert_time: meta
                .time
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            index_name: index_id.as_ref().map(|x| x.0.clone()),
            doc_id: index_id.map(|x| x.1),
            source,
        }
    }

    /// Writes new alerts into `queue/` under canonical names and commits their rows, deduplicated
    /// by key against the ledger and within the batch. Files are durable (as [`Durability`]
    /// says) before the rows commit; `extra` runs inside the same transaction (the poll cursor).
    pub fn enqueue(
        &self,
        ledger: &mut Ledger,
        items: Vec<Parsed>,
        now: DateTime<Utc>,
        source: &'static str,
        extra: impl FnOnce(&mut crate::store::ledger::Tx<'_>) -> Result<(), rusqlite::Error>,
    ) -> Result<AdmitCounts> {
        // A cap in another process may have exchanged queue/ and overflow/ since the last
        // batch (`ingest` does not hold the run lock): write into the directory named queue/.
        self.state.follow_spool_names()?;
        let mut counts = AdmitCounts::default();
        let mut rows: Vec<(NewRow, bool)> = Vec::new();
        let mut quarantined: Vec<NewRow> = Vec::new();
        #[allow(clippy::type_complexity)]
        let mut temps: Vec<(String, String, AlertMeta, Parsed, bool, u32)> = Vec::new();
        let mut in_batch: HashMap<KeyHash, String> = HashMap::new();
        for item in items {
            let index_id = item
                .index_id
                .as_ref()
                .map(|(a, b)| (a.as_str(), b.as_str()));
            let meta = alert::meta(&item.alert, index_id, now);
            if let Some(first) = in_batch.get(&meta.key_hash) {
                if *first == meta.content_hash {
                    counts.duplicates += 1;
                } else {
                    let reason = "key conflict: same alert key as an earlier alert of this batch, other content";
                    self.quarantine_conflict(&item, reason, now, &mut quarantined, &mut counts)?;
                }
                continue;
            }
            in_batch.insert(meta.key_hash.clone(), meta.content_hash.clone());
            match self.plan(ledger, &meta)? {
                Plan::Duplicate => counts.duplicates += 1,
                Plan::Conflict { with } => {
                    let reason = format!(
                        "key conflict: alert key {} is already {with} with other content",
                        meta.key
                    );
                    self.quarantine_conflict(&item, &reason, now, &mut quarantined, &mut counts)?;
                }
                Plan::Publish { revive } => {
                    let mut item = item;
                    let priority = self.prio.priority(meta.level, &mut item.alert);
                    let name = Canonical::new(priority, meta.time, meta.key_hash.clone()).name();
                    let tmp = self
                        .state
                        .queue
                        .write_temp("q", &item.bytes, self.durability)?;
                    temps.push((tmp, name, meta, item, revive, priority));
                }
            }
        }
        self.state.queue.barrier(self.durability)?;
        for (tmp, name, meta, item, revive, priority) in temps {
            match self
                .state
                .queue
                .rename_to(tmp.as_bytes(), &self.state.queue, name.as_bytes())?
            {
                Moved::Moved => {
                    if self.durability == Durability::Strict {
                        self.state.queue.sync()?;
                    }
                }
                Moved::Exists => {
                    // A canonical file of this name is already queued without a row (a crash
                    // after publish, before commit): adopt it when it is the same alert.
                    self.state.queue.remove_file(tmp.as_bytes())?;
                    if !self.same_content(&self.state.queue, name.as_bytes(), &meta)? {
                        let reason = format!("key conflict: alert key {} is already queued as {name} with other content", meta.key);
                        self.quarantine_conflict(
                            &item,
                            &reason,
                            now,
                            &mut quarantined,
                            &mut counts,
                        )?;
                        continue;
                    }
                }
                Moved::Vanished => {
                    // Our own temp file vanished: someone removed it. Report, never assume.
                    tracing::warn!(origin = %crate::store::fsx::escape_text(&item.origin), "temp file vanished before publish; alert not queued");
                    counts.vanished += 1;
                    continue;
                }
            }
            rows.push((
                self.row_for(&meta, priority, name, item.index_id, source),
                revive,
            ));
        }
        if self.durability != Durability::Off {
            self.state.queue.sync()?;
        }
        let outcomes = ledger.write(|tx| {
            let mut ok = Vec::with_capacity(rows.len());
            for (row, revive) in &rows {
                ok.push(if *revive {
                    tx.revive(row)?
                } else {
                    tx.insert(row)?
                });
            }
            for q in &quarantined {
                tx.insert(q)?;
            }
            extra(tx)?;
            Ok(ok)
        })?;
        for ((row, _), inserted) in rows.iter().zip(outcomes) {
            if inserted {
                counts.queued += 1;
            } else {
                // Another process committed the same key first: ours is its twin.
                counts.duplicates += 1;
                self.settle_lost_race(ledger, &self.state.queue, row, now, &mut counts)?;
            }
        }
        Ok(counts)
    }

    /// Our published file lost the insert race for its key: remove it when it is a duplicate
    /// of the winner, quarantine it otherwise.
    fn settle_lost_race(
        &self,
        ledger: &mut Ledger,
        dir: &DirFd,
        row: &NewRow,
        now: DateTime<Utc>,
        counts: &mut AdmitCounts,
    ) -> Result<()> {
        let winner = ledger.get(&row.key_hash)?;
        if winner.as_ref().is_some_and(|w| w.name == row.name) {
            return Ok(());
        }
        if winner.is_some_and(|w| w.content_hash == row.content_hash) {
            dir.remove_file(row.name.as_bytes())?;
        } else if let Some(q) = self.quarantine().move_in(
            dir,
            row.name.as_bytes(),
            &row.name,
            "key conflict: another process queued this alert key with other content",
            now,
        )? {
            counts.duplicates -= 1;
            counts.conflicts += 1;
            counts.quarantined += 1;
            ledger.write(|tx| tx.insert(&q).map(|_| ()))?;
        }
        Ok(())
    }

    fn same_content(&self, dir: &DirFd, name: &[u8], meta: &AlertMeta) -> Result<bool> {
        match dir.read_regular(name, self.max_alert_bytes)? {
            ReadOutcome::Bytes(b) => Ok(alert::parse_strict(&b)
                .map(|m| alert::meta(&m, None, Utc::now()).content_hash == meta.content_hash)
                .unwrap_or(false)),
            _ => Ok(false),
        }
    }

    /// Admission: every `*.json` in `incoming/` (canonical-looking names too: cap sends a
    /// rowless file whose name does not fit its content there) and every foreign `*.json` in
    /// `queue/` and `overflow/` is read, keyed and renamed into `queue/` under its canonical
    /// name with its row (or counted as a duplicate, or quarantined). Non-regular entries are
    /// never read: quarantined when they can be moved. Nothing that looks like an alert waits
    /// unseen in a place admission does not list.
    pub fn admit(
        &self,
        ledger: &mut Ledger,
        now: DateTime<Utc>,
        notices: &mut Vec<Notice>,
    ) -> Result<AdmitCounts> {
        let mut counts = AdmitCounts::default();
        for (dir, label) in [
            (&self.state.incoming, "incoming"),
            (&self.state.queue, "queue"),
            (&self.state.overflow, "overflow"),
        ] {
            let names = if label == "incoming" {
                // Requeued entries first: a redelivered copy of the same alert must find the
                // entry's row revived, not take the entry for its duplicate.
                let mut names = list_alert_like(dir)?;
                names.sort_by_key(|n| requeued_entry(n).is_none());
                names
            } else {
                list_foreign(dir)?
            };
            for chunk in names.chunks(BATCH) {
                let c = self.admit_names(ledger, dir, label, chunk, State::Queued, now, notices)?;
                counts.add(&c);
            }
        }
        Ok(counts)
    }

    /// Adopts canonical files found without a row in `dir` (whose files are in `state`):
    /// their rows are inserted; a file whose content does not match its name is re-admitted.
    #[allow(clippy::too_many_arguments)]
    pub fn adopt(
        &self,
        ledger: &mut Ledger,
        dir: &DirFd,
        label: &str,
        names: &[Vec<u8>],
        state: State,
        now: DateTime<Utc>,
        notices: &mut Vec<Notice>,
    ) -> Result<AdmitCounts> {
        let mut counts = AdmitCounts::default();
        for chunk in names.chunks(BATCH) {
            counts.add(&self.admit_names(ledger, dir, label, chunk, state, now, notices)?);
        }
        Ok(counts)
    }

    #[allow(clippy::too_many_arguments)]
    fn admit_names(
        &self,
        ledger: &mut Ledger,
        dir: &DirFd,
        label: &str,
        names: &[Vec<u8>],
        location_state: State,
        now: DateTime<Utc>,
        notices: &mut Vec<Notice>,
    ) -> Result<AdmitCounts> {
        let mut counts = AdmitCounts::default();
        let mut rows: Vec<(NewRow, Revive, Vec<u8>)> = Vec::new();
        // Quarantined here, with the requeued entry (if any) the file came back as.
        let mut qrows: Vec<(NewRow, Option<String>)> = Vec::new();
        // Requeued entries this batch settled (admitted, duplicate or quarantined again):
        // their entry rows are retired in the batch's transaction.
        let mut requeued: Vec<String> = Vec::new();
        // Duplicates of requeued entries are removed after the commit, so that a crash in
        // between never leaves an entry row whose file is gone.
        let mut late_removals: Vec<Vec<u8>> = Vec::new();
        let mut in_batch: HashMap<KeyHash, String> = HashMap::new();
        // Adoption keeps files where they are; admission moves them into queue/.
        let admitting = location_state == State::Queued;
        let target_dir = if admitting { &self.state.queue } else { dir };
        for name in names {
            let shown = format!("{label}/{}", escape_name(name));
            let entry = if admitting && label == "incoming" {
                requeued_entry(name).map(str::to_string)
            } else {
                None
            };
            if let Some(e) = &entry {
                requeued.push(e.clone());
            }
            let mut quarantine = |reason: String, counts: &mut AdmitCounts| -> Result<()> {
                match self.quarantine().move_in(dir, name, &shown, &reason, now) {
                    Ok(Some(row)) => {
                        counts.quarantined += 1;
                        notices.push(Notice {
                            what: shown.clone(),
                            reason,
                        });
                        qrows.push((row, entry.clone()));
                    }
                    Ok(None) => counts.vanished += 1,
                    Err(e) => {
                        counts.unmovable += 1;
                        notices.push(Notice {
                            what: shown.clone(),
                            reason: format!("{reason}; could not be moved to quarantine: {e}"),
                        });
                    }
                }
                Ok(())
            };
            let duplicate = |counts: &mut AdmitCounts, late: &mut Vec<Vec<u8>>| -> Result<()> {
                if entry.is_some() {
                    late.push(name.clone());
                    counts.duplicates += 1;
                } else if dir.remove_file(name)? {
                    counts.duplicates += 1;
                } else {
                    counts.vanished += 1;
                }
                Ok(())
            };
            let bytes = match dir.read_regular(name, self.max_alert_bytes)? {
                ReadOutcome::Vanished => {
                    counts.vanished += 1;
                    continue;
                }
                ReadOutcome::Refused(r) => {
                    quarantine(format!("not read: {r}"), &mut counts)?;
                    continue;
                }
                ReadOutcome::TooLarge(n) => {
                    quarantine(
                        format!(
                            "{n} bytes is over max_alert_bytes ({})",
                            self.max_alert_bytes
                        ),
                        &mut counts,
                    )?;
                    continue;
                }
                ReadOutcome::Bytes(b) => b,
            };
            let mut parsed = match alert::parse_strict(&bytes) {
                Ok(m) => m,
                Err(e) => {
                    quarantine(e.to_string(), &mut counts)?;
                    continue;
                }
            };
            let mut meta = alert::meta(&parsed, None, now);
            // A requeued entry is the alert whose quarantined row names it, whatever key its
            // content gives now (an edit changes a content-hash key; a polled alert is keyed by
            // its `_index/_id`, which its bytes do not carry): it keeps that row's key.
            let mut index_id = None;
            if let Some(own) = entry
                .as_ref()
                .map(|_| ledger.quarantined_row_named(&String::from_utf8_lossy(name)))
                .transpose()?
                .flatten()
            {
                if own.key_hash != meta.key_hash {
                    meta.key = alert::AlertKey::from_stored(own.alert_key);
                    meta.key_hash = own.key_hash;
                }
                index_id = own.index_name.zip(own.doc_id);
            }
            let priority = self.prio.priority(meta.level, &mut parsed);
            let canonical = Canonical::new(priority, meta.time, meta.key_hash.clone()).name();
            // Only a file already in queue/ under its own canonical name is adopted in place.
            let adopting =
                !admitting || (label == "queue" && canonical.as_bytes() == name.as_slice());
            if !admitting && canonical.as_bytes() != name.as_slice() {
                // A canonical-looking name with content that does not belong to it: treat it as
                // a producer's file (admission lists every `*.json` of incoming/).
                match dir.rename_to(name, &self.state.incoming, name)? {
                    Moved::Vanished => counts.vanished += 1,
                    Moved::Moved | Moved::Exists => notices.push(Notice {
                        what: shown,
                        reason: "name does not match its content; moved to incoming/ for admission"
                            .into(),
                    }),
                }
                continue;
            }
            if let Some(first) = in_batch.get(&meta.key_hash) {
                if *first == meta.content_hash {
                    duplicate(&mut counts, &mut late_removals)?;
                } else {
                    quarantine(
                        format!(
                            "key conflict: alert key {} appears twice with other content",
                            meta.key
                        ),
                        &mut counts,
                    )?;
                    counts.conflicts += 1;
                }
                continue;
            }
            in_batch.insert(meta.key_hash.clone(), meta.content_hash.clone());
            let revive = match ledger.get(&meta.key_hash)? {
                Some(r)
                    if adopting
                        && r.name.as_bytes() == name.as_slice()
                        && r.state == location_state =>
                {
                    continue
                }
                None => Revive::No,
                Some(r) if r.state == State::Lost => Revive::Lost,
                // The alert's own row names the entry it was quarantined as: an operator
                // requeued it (fixed or not). It comes back, decided afresh.
                Some(r)
                    if entry.is_some()
                        && r.state == State::Quarantined
                        && r.name.as_bytes() == name.as_slice() =>
                {
                    Revive::Requeued
                }
                Some(r) if r.content_hash == meta.content_hash => {
                    duplicate(&mut counts, &mut late_removals)?;
                    continue;
                }
                Some(r) => {
                    quarantine(
                        format!(
                            "key conflict: alert key {} is already {} ({}) with other content",
                            meta.key,
                            r.name,
                            r.state.as_str()
                        ),
                        &mut counts,
                    )?;
                    counts.conflicts += 1;
                    continue;
                }
            };
            if !adopting {
                match dir.rename_to(name, &self.state.queue, canonical.as_bytes())? {
                    Moved::Moved => {}
                    Moved::Vanished => {
                        counts.vanished += 1;
                        continue;
                    }
                    Moved::Exists => {
                        if self.same_content(&self.state.queue, canonical.as_bytes(), &meta)? {
                            // The twin is a rowless canonical file: it gets the row, ours goes.
                            duplicate(&mut counts, &mut late_removals)?;
                            let mut row = self.row_for(
                                &meta,
                                priority,
                                canonical,
                                index_id.clone(),
                                "admission",
                            );
                            row.state = State::Queued;
                            // A requeued entry keeps its name with the row, so that the
                            // revive finds the row that names it.
                            let original = if revive == Revive::Requeued {
                                name.clone()
                            } else {
                                Vec::new()
                            };
                            rows.push((row, revive, original));
                        } else {
                            quarantine(format!("key conflict: {canonical} is already queued with other content"), &mut counts)?;
                            counts.conflicts += 1;
                        }
                        continue;
                    }
                }
            }
            let mut row = self.row_for(
                &meta,
                priority,
                canonical.clone(),
                index_id,
                if adopting { "adopted" } else { "admission" },
            );
            row.state = location_state;
            rows.push((
                row,
                revive,
                if adopting { Vec::new() } else { name.clone() },
            ));
        }
        if self.durability != Durability::Off && !(rows.is_empty() && qrows.is_empty()) {
            target_dir.sync()?;
            dir.sync()?;
            self.state.quarantine.sync()?;
        }
        crate::failpoint::crash_point("admission-commit");
        let outcomes = ledger.write(|tx| {
            let mut ok = Vec::with_capacity(rows.len());
            for (row, revive, original) in &rows {
                ok.push(match revive {
                    Revive::No => tx.insert(row)?,
                    Revive::Lost => tx.revive(row)?,
                    Revive::Requeued => {
                        let entry_name = String::from_utf8_lossy(original);
                        tx.revive_requeued(row, &entry_name)?
                    }
                });
            }
            for (q, came_back_as) in &qrows {
                // A requeued alert quarantined again: its own row follows it to the new entry.
                let moved = match came_back_as {
                    Some(old) => tx.requarantine(&format!("{old}.json"), &q.name)?,
                    None => false,
                };
                if !moved {
                    tx.insert(q)?;
                }
            }
            for e in &requeued {
                tx.retire_entry_row(e)?;
            }
            Ok(ok)
        })?;
        for name in &late_removals {
            if !dir.remove_file(name)? {
                // Someone else took it in between: it was counted as a duplicate all the same
                // (its twin is accounted for).
                tracing::debug!(name = %escape_name(name), "duplicate vanished before removal");
            }
        }
        for ((row, _, original), inserted) in rows.iter().zip(outcomes) {
            match (inserted, original.is_empty()) {
                (true, true) => counts.adopted += 1,
                (true, false) => counts.queued += 1,
                (false, _) => {
                    counts.duplicates += 1;
                    self.settle_lost_race(ledger, target_dir, row, now, &mut counts)?;
                }
            }
        }
        Ok(counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priority_is_raised_to_high_when_forced() {
        let p = Prioritizer {
            high: 12,
            forced_high: Some(Box::new(|a: &Value| a.get("mimikatz").is_some())),
        };
        let mut a = alert::parse_strict(br#"{"mimikatz":1}"#).expect("parse");
        let mut b = alert::parse_strict(br#"{}"#).expect("parse");
        assert_eq!(p.priority(Some(3), &mut a), 12);
        assert_eq!(p.priority(Some(15), &mut a), 15);
        assert!(a.contains_key("mimikatz"), "the alert is given back whole");
        assert_eq!(p.priority(Some(3), &mut b), 3);
        assert_eq!(p.priority(None, &mut b), 0);
    }
}
