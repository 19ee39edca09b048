//! One worker's batches: claim each file straight into its temp case, read the rows, plan each
//! file ([`super::plan`]), write the intent rows, build the cases and packs in their temp
//! directories, then (after a barrier) publish them and (after another) commit. Promises: a
//! claimed file moves on (into `cases/`, to quarantine, back to `incoming/`) only after the
//! batch's intent transaction, which records where it goes (a quarantine keyed by entry gets its
//! row right after the move instead); a case and its pack are published whole, by one rename
//! each; a row says `triaged` or `escalated` only after its publishes are durable.
//!
//! Design constraints:
//! - The queued file itself moves into its case as `alert.json` (no copy): the claim renames it
//!   from `queue/` (or `overflow/`) into its temp case directory
//!   `processing/<w>/.tmp-case-<canonical stem>/`, and one rename publishes that directory into
//!   `cases/`. One key has at most one claim in flight per process; a file of a key whose case
//!   is published is a second copy and goes to quarantine (never a second case).
//! - Durability per batch (`batch`): build every temp case and pack, one `syncfs`, publish every
//!   one, one `syncfs`, then one ledger commit. Each worker pipelines its batches (batch N+1 is
//!   built before the barrier that also precedes batch N's commit), so each barrier serves two.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use rusqlite::OptionalExtension;
use serde_json::{Map, Value};
use sf_policy::{Bucket, MatchedKind};

use super::plan::{self, Outcome, Quarantined, RowInfo};
use super::quarantine::{quarantine_claim, record_quarantine, PendingQuarantine};
use super::workers::{bump_signature, Pass, Shared};
use super::{retry_full, Triage, TriageError, TriageReport};
use crate::model::alert::KeyHash;
use crate::model::cases::{self, CaseId, CaseInput};
use crate::stages::escalate::{self, PackInput, RelatedRef};
use crate::store::claim::{self, Worker};
use crate::store::fsx::{self, DirFd, Durability, FsError, Moved};
use crate::store::ledger::noise::NoiseBatch;
use crate::store::ledger::{Intent, Ledger, State, Tx};
use crate::store::names::Canonical;
use crate::store::quarantine::Quarantine;
use crate::store::spool::Notice;

/// The intent a batch fixes for one alert.
struct Item {
    /// The temp case in the claim folder (`.tmp-case-<canonical name>`), holding `alert.json`.
    tmp: String,
    key_hash: KeyHash,
    /// The row's id (rows are updated by id: no index walk), once known.
    row_id: Option<i64>,
    /// What the plan fixed: the decision, case id and path, and the alert.
    case: plan::Case,
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

/// The row of a claimed key, with its intent's stored decision, as triage reads it back.
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

/// A file claimed into its temp case.
struct Claimed {
    /// The canonical name it was claimed under.
    name: Vec<u8>,
    canon: Canonical,
    /// Its temp case in the claim folder, holding it as `alert.json`.
    tmp: String,
}

/// The rows of the claimed keys, read in one transaction.
fn read_rows(ledger: &Ledger, won: &[Claimed]) -> Result<Vec<Option<RowInfo>>, TriageError> {
    let tx = ledger.conn().unchecked_transaction()?;
    let r = won
        .iter()
        .map(|c| row_info(ledger, &c.canon.key_hash))
        .collect::<Result<_, _>>()?;
    tx.commit()?;
    Ok(r)
}

/// The id of the row of `key_hash` (just inserted).
fn row_id(tx: &mut Tx<'_>, key_hash: &KeyHash) -> Result<i64, rusqlite::Error> {
    tx.conn()
        .prepare_cached("SELECT id FROM alerts WHERE key_hash = ?1")?
        .query_row([key_hash.as_str()], |r| r.get::<_, i64>(0))
}

/// The intent row: the row `id` becomes `triaging` by `worker`, with what the decision fixed
/// (bucket, case id and path, agent, rule, level).
fn record_intent(
    tx: &mut Tx<'_>,
    id: i64,
    worker: &str,
    it: &Item,
    rule_id: Option<&str>,
    at: &str,
) -> Result<(), rusqlite::Error> {
    let d = &it.case.decision;
    if let Some(k) = &d.incident {
        tx.ensure_incident(k, at)?;
    }
    tx.intend(&Intent {
        id,
        worker,
        bucket: d.bucket.as_str(),
        critical: d.critical,
        case_id: it.case.case_id.as_str(),
        case_path: &it.case.case_path,
        agent: &d.agent,
        rule_id,
        description: it
            .case
            .value
            .get("rule")
            .and_then(|r| r.get("description"))
            .and_then(Value::as_str),
        level: d.level,
        incident: d.incident.as_ref().map(|k| k.id.as_str()),
        at,
    })?;
    Ok(())
}

/// Stores the intent's whole decision (JSON), which a retry reuses.
fn store_intent(
    tx: &mut Tx<'_>,
    key_hash: &KeyHash,
    decision: &str,
) -> Result<(), rusqlite::Error> {
    tx.conn()
        .prepare_cached("INSERT OR REPLACE INTO intents (key_hash, decision) VALUES (?1, ?2)")?
        .execute(rusqlite::params![key_hash.as_str(), decision])?;
    Ok(())
}

/// Deletes the intent's stored decision (its case is published, or it is quarantined).
pub(super) fn forget_intent(tx: &mut Tx<'_>, key_hash: &str) -> Result<(), rusqlite::Error> {
    tx.conn()
        .prepare_cached("DELETE FROM intents WHERE key_hash = ?1")?
        .execute([key_hash])?;
    Ok(())
}

/// A published case's row `id` becomes `state` (`triaged`, or `escalated` when `packed`).
fn finish_row(
    tx: &mut Tx<'_>,
    id: Option<i64>,
    state: State,
    packed: bool,
    at: &str,
) -> Result<(), rusqlite::Error> {
    tx.published(id, state, packed, at)?;
    Ok(())
}

/// Other names of the host, from the alert's own fields, for the pack's "aliases" line.
pub(crate) fn agent_aliases(alert: &Map<String, Value>, canonical: &str) -> Vec<String> {
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
    /// One batch for one worker: claim, decide, intent, build, publish, escalate, commit.
    /// One worker's batches, pipelined: batch N+1 is claimed, decided and built before the
    /// barrier that also makes batch N's publishes durable, so one `syncfs` serves as N+1's
    /// "before publish" and N's "before commit" (half the barriers, each batch still has both).
    pub(super) fn batches(
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

    /// Claims, reads, plans (decides or reuses the intent), commits the intent rows (with the
    /// rows of what must be quarantined), sends misnamed files back to `incoming/`, and builds
    /// each case (and each high case's pack) in its temp directory. The quarantined files move
    /// at publish, after the barrier that makes their rows durable.
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
        // 1. Claim each file straight into its temp case.
        let won = self.claim(shared, worker, source, names, report)?;
        let keys: Vec<KeyHash> = won.iter().map(|c| c.canon.key_hash.clone()).collect();
        let infos = read_rows(&shared.lock(), &won)?;
        // 2. Read each file (unless its row alone decides) and plan it: a case (decided now or
        //    the intent's decision reused), a quarantine, misnamed, a second copy, or vanished.
        let max = self.sp.max_alert_bytes;
        let mut items: Vec<Item> = Vec::with_capacity(won.len());
        let mut quarantined: Vec<PendingQuarantine> = Vec::new();
        let mut misnamed: Vec<Claimed> = Vec::new();
        for (c, info) in won.into_iter().zip(infos) {
            let outcome = match plan::before_read(info.as_ref()) {
                Some(o) => o,
                None => {
                    let inner = format!("{}/alert.json", c.tmp);
                    let content = worker.dir().read_regular(inner.as_bytes(), max)?;
                    plan::plan(plan::Input {
                        row: info.as_ref(),
                        content,
                        max_alert_bytes: max,
                        policy: self.policy,
                        now,
                        name: &c.canon,
                    })
                }
            };
            match outcome {
                Outcome::Case(mut case) => {
                    if case.reused {
                        report.reused_intents += 1;
                    }
                    // Once per policy, alias and id: its Display escapes what the alerts wrote.
                    if let Some(span) = case.manager_span.take() {
                        tracing::warn!("policy: {span}");
                    }
                    items.push(Item {
                        tmp: c.tmp,
                        key_hash: c.canon.key_hash,
                        row_id: info.map(|i| i.id),
                        case: *case,
                    });
                }
                Outcome::Quarantine(q) => {
                    quarantined.push(quarantine_claim(q, &c.canon, &c.tmp, now));
                }
                Outcome::SecondCopy { reason } => {
                    let q = Quarantined::entry(reason);
                    quarantined.push(quarantine_claim(q, &c.canon, &c.tmp, now));
                }
                // Goes back to incoming/ once the intent rows are written (below).
                Outcome::Misnamed => misnamed.push(c),
                Outcome::Vanished => {
                    report.vanished += 1;
                    worker.dir().remove_flat_dir(c.tmp.as_bytes())?;
                }
            }
        }
        // 3. Intent rows (and the rows of what was quarantined), one transaction.
        self.write_intents(shared, worker, &mut items, &quarantined, now)?;
        self.send_back(shared, worker, misnamed, &mut quarantined, now, report)?;
        // 4. Build each case in its temp case (the alert is there already), and the packs of
        //    high cases.
        let packs = self.build_cases(shared, worker, &items, now)?;
        Ok(Built {
            keys,
            items,
            packs,
            quarantined,
            now,
        })
    }

    /// Claims each canonical name of `names` straight into its temp case:
    /// `processing/<w>/.tmp-case-<name>/` is created, then the queued file is renamed into it
    /// as `alert.json` (one rename across directories per claim; the temp name keeps the
    /// canonical name, so recovery can put the alert back without the ledger). The claims won;
    /// their keys are held in flight.
    fn claim(
        &self,
        shared: &Shared,
        worker: &Worker,
        source: &DirFd,
        names: &[Vec<u8>],
        report: &mut TriageReport,
    ) -> Result<Vec<Claimed>, TriageError> {
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
        let mut won: Vec<Claimed> = Vec::with_capacity(ready.len());
        let mut lost: Vec<(Canonical, String)> = Vec::new();
        {
            let _renaming = shared.renaming(self.durability());
            for (name, canon, tmp) in ready {
                match worker.claim_into(source, name, &tmp)? {
                    Moved::Moved => won.push(Claimed {
                        name: name.clone(),
                        canon,
                        tmp,
                    }),
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
        Ok(won)
    }

    /// Commits the batch's intent rows (a new row first for a rowless file) and the rows of
    /// its quarantines, in one transaction; the items learn their row ids.
    fn write_intents(
        &self,
        shared: &Shared,
        worker: &Worker,
        items: &mut [Item],
        quarantined: &[PendingQuarantine],
        now: DateTime<Utc>,
    ) -> Result<(), TriageError> {
        // Everything the intent rows need is computed before the shared connection is taken.
        let at = now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let stored: Vec<(String, Option<String>)> = items
            .iter()
            .map(|it| -> Result<_, TriageError> {
                let rule_id = it
                    .case
                    .value
                    .get("rule")
                    .and_then(|r| r.get("id"))
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string));
                let decision = serde_json::to_string(&it.case.decision).map_err(|source| {
                    TriageError::Serialize {
                        what: format!("the decision of case {}", it.case.case_id.as_str()),
                        source,
                    }
                })?;
                Ok((decision, rule_id))
            })
            .collect::<Result<_, _>>()?;
        let ids = retry_full("commit intent rows", || {
            Ok(shared.lock().write(|tx| {
                let mut ids = Vec::with_capacity(items.len());
                for (it, (decision, rule_id)) in items.iter().zip(&stored) {
                    let id = match it.row_id {
                        Some(id) => id,
                        None => {
                            if let Some(r) = &it.case.new_row {
                                tx.insert(r)?;
                            }
                            row_id(tx, &it.key_hash)?
                        }
                    };
                    ids.push(id);
                    record_intent(tx, id, worker.id(), it, rule_id.as_deref(), &at)?;
                    store_intent(tx, &it.key_hash, decision)?;
                }
                for p in quarantined {
                    record_quarantine(tx, p, worker.id())?;
                }
                Ok(ids)
            })?)
        })?;
        for (it, id) in items.iter_mut().zip(ids) {
            it.row_id = Some(id);
        }
        Ok(())
    }

    /// Sends misnamed files back through admission (their rows, if any, are untouched: the
    /// alert their name promised is not here, and reconcile will say so). One that `incoming/`
    /// already holds a file of that name for is quarantined instead.
    fn send_back(
        &self,
        shared: &Shared,
        worker: &Worker,
        misnamed: Vec<Claimed>,
        quarantined: &mut Vec<PendingQuarantine>,
        now: DateTime<Utc>,
        report: &mut TriageReport,
    ) -> Result<(), TriageError> {
        for Claimed { name, canon, tmp } in misnamed {
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
                    let q = Quarantined::entry(
                        "the alert key in its name is not its content's; incoming/ already holds that name".into(),
                    );
                    quarantined.push(quarantine_claim(q, &canon, &tmp, now));
                }
            }
        }
        Ok(())
    }

    /// Writes each item's `case.json` into its temp case, and the pack of each high case (with
    /// its related alerts, read in one transaction) into a temp pack directory: the packs'
    /// (item, temp directory).
    fn build_cases(
        &self,
        shared: &Shared,
        worker: &Worker,
        items: &[Item],
        now: DateTime<Utc>,
    ) -> Result<Vec<(usize, String)>, TriageError> {
        let related: HashMap<usize, Vec<RelatedRef>> = {
            let l = shared.lock();
            let tx = l.conn().unchecked_transaction()?;
            let mut out = HashMap::new();
            for (i, it) in items.iter().enumerate() {
                if it.case.decision.bucket == Bucket::High {
                    let r = self.related(
                        &l,
                        &it.case.decision.agent,
                        it.case.alert_time,
                        &it.case.case_id,
                    )?;
                    out.insert(i, r);
                }
            }
            tx.commit()?;
            out
        };
        let no_alert = Map::new();
        let mut packs: Vec<(usize, String)> = Vec::new();
        for (i, it) in items.iter().enumerate() {
            let alert_obj = it.case.value.as_object().unwrap_or(&no_alert);
            let case = cases::case_json(&CaseInput {
                case_id: &it.case.case_id,
                alert_key: &it.case.alert_key,
                index_id: it
                    .case
                    .index_id
                    .as_ref()
                    .map(|(a, b)| (a.as_str(), b.as_str())),
                decision: &it.case.decision,
                alert: alert_obj,
                alert_time: it.case.alert_time,
                triage_time: now,
                dashboard_url: self.opts.dashboard_url.as_deref(),
                quarantine_entry: None,
            });
            let case_bytes =
                serde_json::to_vec_pretty(&case).map_err(|source| TriageError::Serialize {
                    what: format!("cases/{}/case.json", fsx::escape_text(&it.case.case_path)),
                    source,
                })?;
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
                    case_id: it.case.case_id.as_str(),
                    case_json: &case,
                    alert_bytes: &it.case.bytes,
                    alert: alert_obj,
                    canonical_agent: &it.case.decision.agent,
                    agent_aliases: &agent_aliases(alert_obj, &it.case.decision.agent),
                    related,
                    dashboard_url: self.opts.dashboard_url.as_deref(),
                    quarantine_entry: None,
                });
                let ptmp = format!(".tmp-pack-{}-{}", worker.id(), it.case.case_id.as_str());
                self.write_pack_dir(&ptmp, &files)?;
                packs.push((i, ptmp));
            }
        }
        Ok(packs)
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
                self.day_dir(&mut day_dirs, &it.case.case_path).map(|_| ())
            })
            .and_then(|()| self.day_dir(&mut day_dirs, &it.case.case_path))?;
            let moved = retry_full("publish case", || {
                Ok(worker.dir().rename_to(
                    tmp.as_bytes(),
                    day,
                    it.case.case_id.as_str().as_bytes(),
                )?)
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
                        it.case.case_path
                    );
                    if let Some(row) = q.move_in(worker.dir(), tmp.as_bytes(), tmp, &reason, now)? {
                        shared.lock().write(|tx| tx.insert(&row).map(|_| ()))?;
                        report.quarantined += 1;
                    }
                    notices.push(Notice {
                        what: format!("cases/{}", it.case.case_path),
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
            let id = items[*i].case.case_id.as_str();
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
        // Signature hits of the batch, one upsert per signature; the same by alert day.
        let mut hits: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
        let mut noise = NoiseBatch::default();
        for (i, it) in items.iter().enumerate() {
            if !published[i] {
                continue;
            }
            let d = &it.case.decision;
            let by = match (&d.matched, d.matched_kind) {
                (Some(m), Some(MatchedKind::Suppress)) => Some(m.as_str()),
                _ => None,
            };
            if let Some(m) = by {
                hits.entry(m).or_default().0 += 1;
            }
            for h in &d.held_back {
                hits.entry(h).or_default().1 += 1;
            }
            noise.add(
                it.case.alert_time,
                now,
                d.bucket == Bucket::Suppressed,
                by,
                &d.held_back,
            );
        }
        retry_full("commit triaged rows", || {
            Ok(shared.lock().write(|tx| {
                for (i, it) in items.iter().enumerate() {
                    if !published[i] {
                        continue;
                    }
                    let state = if packed[i] {
                        State::Escalated
                    } else {
                        State::Triaged
                    };
                    finish_row(tx, it.row_id, state, packed[i], &at)?;
                    forget_intent(tx, it.key_hash.as_str())?;
                }
                for (sig, (n, held)) in &hits {
                    bump_signature(tx, sig, *n, *held, now)?;
                }
                tx.record_noise(&noise, now)?;
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
                .entry(it.case.decision.bucket.as_str().to_string())
                .or_default() += 1;
            if it.case.decision.critical {
                report.critical += 1;
            }
            if packed[i] {
                report.escalated += 1;
            }
            if it.case.decision.matched_kind == Some(MatchedKind::Suppress) {
                if let Some(m) = &it.case.decision.matched {
                    *report.signature_hits.entry(m.clone()).or_default() += 1;
                }
            }
            report.held_back += it.case.decision.held_back.len() as u64;
            for h in &it.case.decision.held_back {
                *report.signature_held_back.entry(h.clone()).or_default() += 1;
            }
        }
        shared.release_keys(keys.iter());
        shared.count_commits(2);
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

    /// Alerts on the same canonical agent within the related window before and after `time`
    /// (as the ledger knows them now), high ones first, then newest first (at most 50).
    ///
    /// Two bounded index walks, never the whole window (a noisy host has tens of thousands of
    /// alerts in it, and every high alert of a batch asks): the high ones through the partial
    /// `alerts_high_by_agent_time` (migration 11), then the newest others through
    /// `alerts_by_agent_time`, each stopping at its `LIMIT`.
    pub(super) fn related(
        &self,
        ledger: &Ledger,
        agent: &str,
        time: DateTime<Utc>,
        own: &CaseId,
    ) -> Result<Vec<RelatedRef>, TriageError> {
        const MAX: i64 = escalate::RELATED_MAX as i64;
        let fmt = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let from = fmt(time - self.opts.related_window);
        let to = fmt(time + self.opts.related_window);
        let read = |r: &rusqlite::Row<'_>| {
            Ok(RelatedRef {
                case_id: r.get(0)?,
                time: r.get(1)?,
                rule_id: r.get(2)?,
                level: r.get(3)?,
                description: r.get(4)?,
                bucket: r.get(5)?,
            })
        };
        let mut high = ledger.conn().prepare_cached(
            "SELECT case_id, alert_time, rule_id, level, description, bucket FROM alerts
             WHERE agent = ?1 AND bucket = 'high' AND alert_time >= ?2 AND alert_time <= ?3
               AND case_id IS NOT NULL AND case_id != ?4
               AND state IN ('triaging', 'triaged', 'escalated')
             ORDER BY alert_time DESC LIMIT ?5",
        )?;
        let mut out = high
            .query_map(rusqlite::params![agent, from, to, own.as_str(), MAX], read)?
            .collect::<Result<Vec<_>, _>>()?;
        let left = MAX - out.len() as i64;
        if left > 0 {
            let mut others = ledger.conn().prepare_cached(
                "SELECT case_id, alert_time, rule_id, level, description, bucket FROM alerts
                 WHERE agent = ?1 AND alert_time >= ?2 AND alert_time <= ?3
                   AND (bucket IS NULL OR bucket != 'high')
                   AND case_id IS NOT NULL AND case_id != ?4
                   AND state IN ('triaging', 'triaged', 'escalated')
                 ORDER BY alert_time DESC LIMIT ?5",
            )?;
            let rows =
                others.query_map(rusqlite::params![agent, from, to, own.as_str(), left], read)?;
            for r in rows {
                out.push(r?);
            }
        }
        Ok(out)
    }
}
