//! Every change of `alerts.state`, as a typed method of [`Tx`]: the lifecycle table of
//! ARCHITECTURE.md names these methods. Stages never write `alerts.state` in SQL of their own,
//! so each transition says, in one place, which states it moves a row from (a row another
//! process moved on since it was read keeps its state) and what else it sets with it
//! (`updated_at` always).

use rusqlite::params;

use super::{now_text, NewRow, State, Tx, PACK_DONE};

/// What a triage intent fixes on its row before any file moves (the whole decision is stored
/// beside it, in `intents`).
pub struct Intent<'a> {
    pub id: i64,
    pub worker: &'a str,
    pub bucket: &'a str,
    pub critical: bool,
    pub case_id: &'a str,
    pub case_path: &'a str,
    pub agent: &'a str,
    pub rule_id: Option<&'a str>,
    pub description: Option<&'a str>,
    pub level: u32,
    /// The incident (its row exists: [`Tx::ensure_incident`] in the same transaction).
    pub incident: Option<&'a str>,
    pub at: &'a str,
}

impl Tx<'_> {
    /// The intent: the row `id` becomes `triaging` by its worker, with the bucket, case id and
    /// case path the decision fixed (a retry reuses them, never re-decides).
    pub fn intend(&mut self, i: &Intent<'_>) -> Result<(), rusqlite::Error> {
        self.tx
            .prepare_cached(
                "UPDATE alerts SET state = 'triaging', worker = ?2, bucket = ?3, critical = ?4, case_id = ?5,
                   case_path = ?6, agent = ?7, rule_id = ?8, description = ?9, level = ?10,
                   updated_at = ?11, incident = ?12 WHERE id = ?1",
            )?
            .execute(params![
                i.id,
                i.worker,
                i.bucket,
                i.critical,
                i.case_id,
                i.case_path,
                i.agent,
                i.rule_id,
                i.description,
                i.level,
                i.at,
                i.incident,
            ])?;
        Ok(())
    }

    /// A batch's published case: its row `id` becomes `state` (`triaged`, or `escalated` when
    /// `packed`), its file is the case's `alert.json`.
    pub fn published(
        &mut self,
        id: Option<i64>,
        state: State,
        packed: bool,
        at: &str,
    ) -> Result<(), rusqlite::Error> {
        self.tx
            .prepare_cached(
                "UPDATE alerts SET state = ?2, pack = ?3, worker = NULL, name = 'alert.json', updated_at = ?4
                 WHERE id = ?1",
            )?
            .execute(params![id, state.as_str(), packed, at])?;
        Ok(())
    }

    /// A dead worker's intent whose case is published: `triaged`, only if it is still the same
    /// unfinished intent (its worker may have committed `escalated` since it was read).
    pub fn finish_dead_intent(
        &mut self,
        key_hash: &str,
        worker: Option<&str>,
        at: &str,
    ) -> Result<bool, rusqlite::Error> {
        let n = self.tx.execute(
            "UPDATE alerts SET state = 'triaged', worker = NULL, name = 'alert.json', updated_at = ?2
             WHERE key_hash = ?1 AND state = 'triaging' AND worker IS ?3",
            params![key_hash, at, worker],
        )?;
        Ok(n == 1)
    }

    /// A `triaged` high case whose pack recovery built: `escalated`.
    pub fn repacked(&mut self, key_hash: &str) -> Result<bool, rusqlite::Error> {
        let n = self.tx.execute(
            "UPDATE alerts SET state = 'escalated', pack = ?2, updated_at = ?3
             WHERE key_hash = ?1 AND state = 'triaged'",
            params![key_hash, PACK_DONE, now_text()],
        )?;
        Ok(n == 1)
    }

    /// An alert's own row records its quarantine as the entry file `entry_name` (intent first:
    /// before the file moves).
    pub fn quarantined_as(
        &mut self,
        key_hash: &str,
        entry_name: &str,
    ) -> Result<bool, rusqlite::Error> {
        self.set_state(key_hash, State::Quarantined, entry_name, None)
    }

    /// Replaces a `lost` row with a fresh one (a new poll or ingest brings the key back).
    pub fn revive(&mut self, row: &NewRow) -> Result<bool, rusqlite::Error> {
        self.revive_where(row, "state = 'lost'", None)
    }

    /// Replaces the `quarantined` row of an alert whose entry `entry_name` (`q-....json`) an
    /// operator requeued (it came back through `incoming/` under that name) with a fresh one:
    /// the alert is admitted again, edited or not, and decided afresh.
    pub fn revive_requeued(
        &mut self,
        row: &NewRow,
        entry_name: &str,
    ) -> Result<bool, rusqlite::Error> {
        self.revive_where(
            row,
            "state = 'quarantined' AND name = ?10",
            Some(entry_name),
        )
    }

    /// Retires the entry row (`quarantine:<entry>`) of a requeued quarantine entry: the file
    /// went back through admission, which gave it a row of its own (or counted it as a
    /// duplicate of one). Its rows point at a quarantine entry that is no longer there.
    pub fn retire_entry_row(&mut self, entry: &str) -> Result<bool, rusqlite::Error> {
        let key = format!("quarantine:{entry}");
        let kh = crate::model::alert::KeyHash::of(key.as_bytes());
        Ok(self.tx.execute(
            "DELETE FROM alerts WHERE key_hash = ?1 AND state = 'quarantined'",
            [kh.as_str()],
        )? == 1)
    }

    /// Points the alert row quarantined as `old` (a requeued entry that admission quarantined
    /// again) at its new entry `new`; `false` when no alert row names `old` (the entry had a
    /// row of its own, keyed by entry).
    pub fn requarantine(&mut self, old: &str, new: &str) -> Result<bool, rusqlite::Error> {
        let n = self.tx.execute(
            "UPDATE alerts SET name = ?2, pack = 0, updated_at = ?3
             WHERE state = 'quarantined' AND name = ?1 AND alert_key NOT LIKE 'quarantine:%'",
            params![old, new, now_text()],
        )?;
        Ok(n == 1)
    }

    fn revive_where(
        &mut self,
        row: &NewRow,
        cond: &str,
        entry_name: Option<&str>,
    ) -> Result<bool, rusqlite::Error> {
        let sql = format!(
            "UPDATE alerts SET state = ?2, name = ?3, content_hash = ?4, level = ?5, priority = ?6,
               alert_time = ?7, worker = NULL, source = ?8, updated_at = ?9, bucket = NULL,
               critical = NULL, case_id = NULL, case_path = NULL, pack = 0, incident = NULL
             WHERE key_hash = ?1 AND {cond}"
        );
        let mut st = self.tx.prepare_cached(&sql)?;
        let now = now_text();
        let base = params![
            row.key_hash.as_str(),
            row.state.as_str(),
            row.name,
            row.content_hash,
            row.level,
            row.priority,
            row.alert_time,
            row.source,
            now,
        ];
        let n = match entry_name {
            None => st.execute(base)?,
            Some(e) => {
                let mut all: Vec<&dyn rusqlite::ToSql> = base.to_vec();
                all.push(&e);
                st.execute(all.as_slice())?
            }
        };
        drop(st);
        if n == 1 {
            // A revived key is decided afresh: its old decision may not fit its new content.
            self.tx.execute(
                "DELETE FROM intents WHERE key_hash = ?1",
                [row.key_hash.as_str()],
            )?;
        }
        Ok(n == 1)
    }

    /// Moves a row to `state` (with its file `name` and claiming `worker`); `false` when there
    /// is no such row (a canonical file without a row: to be adopted).
    pub(super) fn set_state(
        &mut self,
        key_hash: &str,
        state: State,
        name: &str,
        worker: Option<&str>,
    ) -> Result<bool, rusqlite::Error> {
        let mut st = self.tx.prepare_cached(
            "UPDATE alerts SET state = ?2, name = ?3, worker = ?4, updated_at = ?5 WHERE key_hash = ?1",
        )?;
        Ok(st.execute(params![key_hash, state.as_str(), name, worker, now_text()])? == 1)
    }

    /// Moves the row with this id to `state`, keeping its name (a move between queue/ and
    /// overflow/ keeps the file's name).
    pub fn set_state_by_id(
        &mut self,
        id: i64,
        state: State,
        now: &str,
    ) -> Result<bool, rusqlite::Error> {
        // Only a row still waiting (queued or deferred) follows a cap move: a row another
        // process has claimed or finished since the listing keeps its state.
        let mut st = self.tx.prepare_cached(
            "UPDATE alerts SET state = ?2, worker = NULL, updated_at = ?3
             WHERE id = ?1 AND state IN ('queued', 'overflow')",
        )?;
        Ok(st.execute(params![id, state.as_str(), now])? == 1)
    }

    /// A dead worker's row whose file recovery put back in `queue/` under `name`.
    pub fn back_in_queue(&mut self, key_hash: &str, name: &str) -> Result<bool, rusqlite::Error> {
        self.set_state(key_hash, State::Queued, name, None)
    }

    /// A claimed file: the row is `processing` in `worker`'s folder under `name`.
    pub fn claimed(
        &mut self,
        key_hash: &str,
        name: &str,
        worker: &str,
    ) -> Result<bool, rusqlite::Error> {
        self.set_state(key_hash, State::Processing, name, Some(worker))
    }

    /// Location wins: a row whose file reconcile found in another place (`to`, under `name`)
    /// than its state `was` says follows the file.
    pub fn relocate(
        &mut self,
        key_hash: &str,
        to: State,
        name: &str,
        was: State,
    ) -> Result<bool, rusqlite::Error> {
        let n = self.tx.execute(
            "UPDATE alerts SET state = ?2, name = ?3, worker = NULL, updated_at = ?5
             WHERE key_hash = ?1 AND state = ?4",
            params![key_hash, to.as_str(), name, was.as_str(), now_text()],
        )?;
        Ok(n == 1)
    }

    /// A row whose file is nowhere (reconcile, at a quiescent point): `lost`, if it is still
    /// in the state `was` it was read in. Its intent goes with it (a revived key is decided
    /// afresh).
    pub fn mark_lost(&mut self, key_hash: &str, was: State) -> Result<bool, rusqlite::Error> {
        let n = self.tx.execute(
            "UPDATE alerts SET state = 'lost', worker = NULL, updated_at = ?2
             WHERE key_hash = ?1 AND state = ?3",
            params![key_hash, now_text(), was.as_str()],
        )?;
        if n == 1 {
            self.tx
                .execute("DELETE FROM intents WHERE key_hash = ?1", [key_hash])?;
        }
        Ok(n == 1)
    }

    /// A `triaging` row whose case is published (its commit was lost to a crash): `triaged`,
    /// or `escalated` with its pack when `packed`; the intent is done with.
    pub fn finish_published(
        &mut self,
        key_hash: &str,
        packed: bool,
    ) -> Result<bool, rusqlite::Error> {
        let to = if packed {
            State::Escalated
        } else {
            State::Triaged
        };
        let n = self.tx.execute(
            "UPDATE alerts SET state = ?2, pack = ?3, worker = NULL, name = 'alert.json', updated_at = ?4
             WHERE key_hash = ?1 AND state = 'triaging'",
            params![key_hash, to.as_str(), if packed { PACK_DONE } else { 0 }, now_text()],
        )?;
        self.tx
            .execute("DELETE FROM intents WHERE key_hash = ?1", [key_hash])?;
        Ok(n == 1)
    }
}
