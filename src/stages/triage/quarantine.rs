//! Claimed files that cannot be triaged, and escalation packs outside a batch's own: the
//! quarantine a batch records ([`PendingQuarantine`], [`QRow`]) and applies after its barrier,
//! the `Q-<entry>` pack of a quarantined alert whose level reads as high, and the writing and
//! publishing of a pack directory. Promises: a quarantined file's row is durable before the file
//! moves (or, for a row keyed by entry, is inserted right after it); a `Q-` pack a quarantine owes
//! is recorded as owed with the quarantine and marked done only once it is published.
//!
//! Design constraints:
//! - Quarantine only for what cannot be triaged (unreadable, not a regular file, over the size
//!   limit, invalid JSON or UTF-8, duplicated keys, fields the decision needs missing or of the
//!   wrong type); never for content. A quarantined alert whose level reads as high still gets a
//!   `Q-<entry>` pack, owed from the transaction that records the quarantine on
//!   ([`crate::store::ledger::PACK_OWED`]): a crash between the move and the pack leaves the row owing,
//!   and the next triage rebuilds the pack from the quarantine entry.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::batch::forget_intent;
use super::plan::Quarantined;
use super::{retry_full, Triage, TriageError, TriageReport};
use crate::model::alert::{self, KeyHash};
use crate::model::cases::{self, CaseId, CaseInput, StoredDecision};
use crate::stages::escalate::{self, PackInput};
use crate::store::claim::Worker;
use crate::store::fsx::{self, Durability, FsError, Moved};
use crate::store::ledger::{Ledger, NewRow, Tx, PACK_DONE, PACK_NONE, PACK_OWED};
use crate::store::names::Canonical;
use crate::store::quarantine::{self as spool_quarantine, Quarantine};

/// Which row records a quarantine from triage.
pub(super) enum QRow {
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
pub(super) struct PendingQuarantine {
    /// The temp case holding the claimed file as `alert.json`.
    pub(super) tmp: String,
    pub(super) key_hash: KeyHash,
    pub(super) entry: String,
    pub(super) reason: String,
    /// The level of the `Q-<entry>` pack this quarantine owes ([`super::plan`] decides it).
    pub(super) pack: Option<u32>,
    /// The alert, when it was read and parsed (the `Q-` pack is built from it).
    pub(super) alert: Option<Map<String, Value>>,
    pub(super) row: QRow,
}

impl PendingQuarantine {
    /// The key hash of the row that records this quarantine's pack: the alert's (an entry row
    /// never owes a pack: nothing of its alert can be trusted).
    pub(super) fn row_key(&self) -> Option<KeyHash> {
        match &self.row {
            QRow::Own | QRow::Alert(_) => Some(self.key_hash.clone()),
            QRow::Entry => None,
        }
    }
}

/// Records a pending quarantine with the batch's intent rows (intent first): the alert's own
/// row becomes `quarantined` (its intent forgotten), or a rowless alert's row is inserted as
/// `quarantined`, and whether its `Q-` pack is owed is recorded with it. An entry row is
/// inserted after the move instead (see [`QRow::Entry`]).
pub(super) fn record_quarantine(
    tx: &mut Tx<'_>,
    p: &PendingQuarantine,
    worker: &str,
) -> Result<(), rusqlite::Error> {
    match &p.row {
        QRow::Alert(r) => {
            tx.insert(r)?;
        }
        QRow::Own => {
            let kh = p.key_hash.as_str();
            tx.quarantined_as(kh, &format!("{}.json", p.entry))?;
            forget_intent(tx, kh)?;
        }
        QRow::Entry => {}
    }
    if let Some(kh) = p.row_key() {
        record_owed_pack(tx, &kh, p.pack, worker)?;
    }
    Ok(())
}

/// Records on a quarantined row whether its `Q-<entry>` pack is owed ([`PACK_OWED`], with the
/// pack's level and the worker that owes it) or not ([`PACK_NONE`]). Inside the transaction
/// that records the quarantine.
pub(super) fn record_owed_pack(
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
pub(super) fn record_pack_done(tx: &mut Tx<'_>, key_hash: &str) -> Result<(), rusqlite::Error> {
    tx.conn()
        .prepare_cached(
            "UPDATE alerts SET pack = ?2, worker = NULL
             WHERE key_hash = ?1 AND state = 'quarantined' AND pack = ?3",
        )?
        .execute(rusqlite::params![key_hash, PACK_DONE, PACK_OWED])?;
    Ok(())
}

/// Records that a claimed file (in the temp case `tmp`) must go to quarantine as its plan `q`
/// says, under a new entry name. The move happens after the batch's intent transaction has
/// recorded where it goes (intent first): a crash in between leaves the file in its temp case,
/// and recovery puts it back in the queue with its row.
pub(super) fn quarantine_claim(
    q: Quarantined,
    canon: &Canonical,
    tmp: &str,
    now: DateTime<Utc>,
) -> PendingQuarantine {
    let Quarantined {
        reason,
        row,
        alert,
        pack,
    } = q;
    let entry = spool_quarantine::entry_name(now);
    let row = match row {
        QRow::Alert(mut r) => {
            r.name = format!("{entry}.json");
            QRow::Alert(r)
        }
        other => other,
    };
    PendingQuarantine {
        tmp: tmp.to_string(),
        key_hash: canon.key_hash.clone(),
        entry,
        reason,
        pack,
        alert,
        row,
    }
}

impl Triage<'_> {
    /// Moves the batch's pending quarantines (their rows are committed already).
    pub(super) fn apply_quarantines(
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
                        p.entry = spool_quarantine::entry_name(now);
                        let new = format!("{}.json", p.entry);
                        let owed = p.pack;
                        if let Some(kh) = p.row_key() {
                            ledger.write(|tx| {
                                tx.quarantined_as(kh.as_str(), &new)?;
                                record_owed_pack(tx, &kh, owed, worker.id())
                            })?;
                        }
                    }
                }
            }
            worker.dir().remove_flat_dir(p.tmp.as_bytes())?;
            report.quarantined += 1;
            if let (Some(level), Some(alert)) = (p.pack, &p.alert) {
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
    pub(super) fn quarantine_pack(
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
            bucket: sf_policy::Bucket::High,
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
            // A quarantined alert belongs to no incident: it is not triaged.
            incident: None,
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
        let bytes = serde_json::to_vec(alert).map_err(|source| TriageError::Serialize {
            what: format!(
                "the alert of quarantine/{}.json, for its escalation pack",
                fsx::escape_text(entry)
            ),
            source,
        })?;
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
    pub(super) fn publish_pack(
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
    pub(super) fn write_pack_dir(
        &self,
        tmp: &str,
        files: &[escalate::PackFile],
    ) -> Result<(), TriageError> {
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
}
