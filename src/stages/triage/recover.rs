//! What crashed runs left, finished at the start of a triage: temp files and temp packs of
//! writers that are gone, intent rows whose case a dead worker published (finished as
//! `triaged`), high cases without a pack (packed now), and quarantined rows still owing their
//! `Q-<entry>` pack (rebuilt from the quarantine entry). Promises: nothing of a live worker or
//! process is touched; a row says a case or pack is done only after it is there (and, for a
//! published case, after a barrier); what cannot be rebuilt is reported and stays owing.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::batch::{agent_aliases, forget_intent};
use super::plan::parse_rfc3339;
use super::quarantine::record_pack_done;
use super::{Triage, TriageError, TriageReport};
use crate::model::alert;
use crate::model::cases::CaseId;
use crate::stages::escalate::{self, PackInput};
use crate::store::fsx::{self, ReadOutcome};
use crate::store::ledger::{Ledger, State, Tx, PACK_OWED};
use crate::store::spool::Notice;

impl Triage<'_> {
    /// Removes the temp files of writers that are gone (a killed ingest, poll or admission) from
    /// `queue/`, `overflow/`, `quarantine/` and the state directory; how many.
    pub(super) fn sweep_dead_temps(&self) -> Result<u64, TriageError> {
        let st = self.sp.state;
        let mut removed = 0;
        for d in [&st.queue, &st.overflow, &st.quarantine, &st.root] {
            removed += fsx::sweep_dead_temps(d)?;
        }
        Ok(removed)
    }

    /// Finishes what crashed runs left: intent rows whose worker is gone (published: triaged;
    /// queued again: nothing to do), temp packs of dead workers, high cases without a pack,
    /// quarantined alerts whose `Q-<entry>` pack is owed (rebuilt from the entry).
    pub(super) fn recover_intents(
        &self,
        ledger: &mut Ledger,
        report: &mut TriageReport,
        notices: &mut Vec<Notice>,
    ) -> Result<(), TriageError> {
        let now = Utc::now();
        let state = self.sp.state;
        self.sweep_dead_packs()?;
        // One scan for both: unfinished intents, and quarantined rows owing a Q- pack.
        let (stuck, owed) = unfinished(ledger)?;
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
            let at = now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            ledger.write(|tx| {
                for (kh, worker) in &finished {
                    finish_published(tx, kh, worker.as_deref(), &at)?;
                    forget_intent(tx, kh)?;
                }
                Ok(())
            })?;
            report.finished_intents += finished.len() as u64;
        }
        // High cases without a pack get it.
        for (kh, case_path) in unpacked_high_cases(ledger)? {
            match self.repack(ledger, &case_path)? {
                true => {
                    ledger.write(|tx| mark_escalated(tx, &kh))?;
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

    /// Removes the temp packs in `escalations/` whose owner is gone.
    fn sweep_dead_packs(&self) -> Result<(), TriageError> {
        let state = self.sp.state;
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

/// An intent row whose case may be published: (key hash, case path, worker).
type Stuck = (String, String, Option<String>);

/// One scan for both: intent rows not finished (`triaging` with a case path), and quarantined
/// rows owing a `Q-` pack.
fn unfinished(ledger: &Ledger) -> Result<(Vec<Stuck>, Vec<OwedPack>), rusqlite::Error> {
    let mut stuck: Vec<Stuck> = Vec::new();
    let mut owed: Vec<OwedPack> = Vec::new();
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
    Ok((stuck, owed))
}

/// Finishes a dead worker's intent row whose case is published as `triaged`, only if it is
/// still the same unfinished intent (its worker may have committed `escalated` since it was
/// read).
fn finish_published(
    tx: &mut Tx<'_>,
    key_hash: &str,
    worker: Option<&str>,
    at: &str,
) -> Result<(), rusqlite::Error> {
    tx.finish_dead_intent(key_hash, worker, at)?;
    Ok(())
}

/// The published high cases without a pack: (key hash, case path).
fn unpacked_high_cases(ledger: &Ledger) -> Result<Vec<(String, String)>, rusqlite::Error> {
    let mut st = ledger.conn().prepare(
        "SELECT key_hash, case_path FROM alerts WHERE state = 'triaged' AND bucket = 'high' AND pack = 0",
    )?;
    let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

/// A high case whose pack was built at recovery becomes `escalated`.
fn mark_escalated(tx: &mut Tx<'_>, key_hash: &str) -> Result<(), rusqlite::Error> {
    tx.repacked(key_hash)?;
    Ok(())
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
