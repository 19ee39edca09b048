//! Stage 6, reconcile: the ledger against the disk, per state, per bucket, high cases against
//! packs; with `--deep`, by key (every orphan and ghost named). Prints a block ending in
//! `VERDICT=PASS` or `VERDICT=FAIL`.
//!
//! Design constraints:
//! - Conservation at a quiescent point: for every state the ledger's count equals what is on
//!   disk, and the states sum to the rows. Live workers' claims are reported as in flight, not
//!   as mismatches.
//! - A row whose file is nowhere is recorded as `lost` with its key the first time (FAIL, loud
//!   once); later runs count it in the ledger and do not fail again for it. A row whose file is
//!   in another place than its state says follows the file (location wins).
//! - Read transactions are short (paged by key), so WAL checkpoints keep up on a large ledger.
//! - Names read from disk are printed escaped; so are alert keys (attacker text: bidi, C1 and
//!   zero-width characters pass JSON escaping), in the report's strings themselves.

mod incidents;
mod outbox;
mod report;
mod scan;
pub use report::{BucketCount, ReconcileReport, StateCount};
use scan::{claims_in_temp_cases, requeued_in_incoming, scan, Disk};

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::stages::deliver::due::RouteSpec;
use crate::stages::incidents::build::RoundOptions;
use crate::store::fsx::{escape_name, escape_text, DirFd, FsError};
use crate::store::ledger::{Ledger, LedgerError, State};
use crate::store::state::StateDir;

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("ledger query: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("incident files: {0}")]
    Incidents(String),
    #[error("finishing an interrupted expire: {0}")]
    Expire(String),
}

pub const BUCKETS: [&str; 4] = ["suppressed", "low", "medium", "high"];

/// Runs reconcile. `record_lost`: mark rows whose file is nowhere as `lost` (only when no
/// worker is live).
pub fn run(
    state: &StateDir,
    ledger: &mut Ledger,
    deep: bool,
    record_lost: bool,
    incident_files: RoundOptions,
    routes: &[RouteSpec],
) -> Result<ReconcileReport, ReconcileError> {
    // Cases an interrupted expire left half removed (their rows already `expired`) go first,
    // so that the scan sees the disk the ledger describes.
    let finished = crate::stages::expire::finish(state, ledger, incident_files.durability)
        .map_err(|e| ReconcileError::Expire(e.to_string()))?;
    if finished > 0 {
        tracing::info!(
            cases = finished,
            "finished removing cases that an interrupted expire left"
        );
    }
    let mut disk = scan(state)?;
    crate::failpoint::pause_point("SIGNALFOUNDRY_DEBUG_RECONCILE_PAUSE_MS");
    claims_in_temp_cases(ledger, &mut disk)?;
    requeued_in_incoming(ledger, &mut disk)?;
    let mut counts: BTreeMap<State, u64> = BTreeMap::new();
    let mut bucket_rows: BTreeMap<String, u64> = BTreeMap::new();
    let mut high_cases = 0u64;
    let mut high_packed = 0u64;
    let mut rows = 0u64;
    {
        for (s, b, pack, n) in ledger.state_bucket_pack_counts()? {
            rows += n;
            *counts.entry(s).or_default() += n;
            if matches!(s, State::Triaged | State::Escalated) {
                if let Some(b) = b {
                    if b == "high" {
                        high_cases += n;
                        if pack {
                            high_packed += n;
                        }
                    }
                    *bucket_rows.entry(b).or_default() += n;
                }
            }
        }
    }
    let quiescent = disk.live_workers == 0;
    let mut report = ReconcileReport {
        rows,
        high_cases,
        packs: disk.packs.len() as u64,
        quarantine_packs: disk.quarantine_packs,
        live_workers: disk.live_workers,
        in_flight: disk.live_processing + if quiescent { 0 } else { disk.temp_cases },
        deep,
        awaiting_admission: disk.awaiting.clone(),
        strays: disk
            .pack_strays
            .iter()
            .chain(&disk.strays)
            .cloned()
            .collect(),
        ..ReconcileReport::default()
    };
    let c = |s: State| counts.get(&s).copied().unwrap_or(0);
    let disk_cases = disk.cases.len() as u64;
    let disk_packed = disk
        .cases
        .keys()
        .filter(|id| disk.packs.contains(*id))
        .count() as u64;
    let disk_for = |s: State| -> Option<u64> {
        Some(match s {
            State::Queued => disk.queue.len() as u64,
            State::Overflow => disk.overflow.len() as u64,
            State::Processing => disk.processing.len() as u64 + disk.live_processing,
            State::Triaging => disk.temp_cases,
            State::Triaged => disk_cases - disk_packed,
            State::Escalated => disk_packed,
            State::Quarantined => disk.quarantine.len() as u64,
            // Lost: nowhere by definition; expired: removed by retention.
            State::Lost | State::Expired => return None,
        })
    };
    for s in State::ALL {
        report.states.push(StateCount {
            state: s.as_str(),
            ledger: c(s),
            disk: disk_for(s),
        });
    }
    for b in BUCKETS {
        report.buckets.push(BucketCount {
            bucket: b,
            ledger: bucket_rows.get(b).copied().unwrap_or(0),
            disk: disk.cases.values().filter(|(bb, _)| bb == b).count() as u64,
        });
    }
    // Count checks. With live workers, queue/processing/triaging move under our feet: their
    // sum is compared instead, and claims are in flight.
    let mut mismatches = Vec::new();
    let strict_states: &[State] = if quiescent {
        &[
            State::Queued,
            State::Overflow,
            State::Processing,
            State::Triaging,
            State::Quarantined,
        ]
    } else {
        // Live workers move files between every place while we count: what they hold is in
        // flight, and exact accounting waits for a quiescent point.
        &[]
    };
    for &s in strict_states {
        let (l, d) = (c(s), disk_for(s).unwrap_or(0));
        if l != d {
            mismatches.push(format!("{}: ledger {} disk {}", s.as_str(), l, d));
        }
    }
    for b in report.buckets.iter().filter(|_| quiescent) {
        if b.ledger != b.disk {
            mismatches.push(format!(
                "cases {}: ledger {} disk {}",
                b.bucket, b.ledger, b.disk
            ));
        }
    }
    // A pack counts when its case is on disk: a stray entry with a case id's shape cannot
    // stand in for a deleted pack.
    if quiescent
        && (c(State::Escalated) != disk_packed
            || high_packed != c(State::Escalated)
            || disk.packs.len() as u64 != disk_packed)
    {
        mismatches.push(format!(
            "escalation packs: ledger {} disk {} (of {} entries)",
            c(State::Escalated),
            disk_packed,
            disk.packs.len()
        ));
    }
    if quiescent && high_cases != high_packed {
        mismatches.push(format!(
            "high cases without a pack: {}",
            high_cases - high_packed
        ));
    }
    if !disk.case_strays.is_empty() {
        mismatches.push(format!(
            "{} entries under cases/ that are not case directories",
            disk.case_strays.len()
        ));
    }
    if !disk.pack_strays.is_empty() {
        mismatches.push(format!(
            "{} entries under escalations/ that are not packs",
            disk.pack_strays.len()
        ));
    }
    let mut recounted = false;
    // Keyed pass: at every quiescent point (equal counts can hide a lost file and a rowless
    // one in the same state: the count pass never passes what `--deep` fails), and for
    // --deep. `--deep` names every orphan and ghost; the count pass too (they fail it).
    if deep || quiescent {
        keyed(state, ledger, &disk, quiescent && record_lost, &mut report)?;
        if !report.newly_lost.is_empty()
            || report.relocated > 0
            || report.finished > 0
            || report.adopted > 0
        {
            // Recount after recording: what remains is a real mismatch.
            let again = run(state, ledger, deep, false, incident_files, routes)?;
            let mut m = again.mismatches;
            m.extend(
                report
                    .newly_lost
                    .iter()
                    .map(|k| format!("lost (recorded now): {k}")),
            );
            report.mismatches = m;
            report.states = again.states;
            report.buckets = again.buckets;
            report.rows = again.rows;
            report.orphans = again.orphans;
            report.ghosts = again.ghosts;
            report.awaiting_admission = again.awaiting_admission;
            report.strays = again.strays;
            report.incidents = again.incidents;
            report.open_incidents = again.open_incidents;
            report.incident_members = again.incident_members;
            report.incidents_repaired = again.incidents_repaired;
            report.awaiting_incident_backfill = again.awaiting_incident_backfill;
            recounted = true;
        } else {
            report.mismatches = mismatches;
        }
    } else {
        report.mismatches = mismatches;
    }
    // The recount (above) checked the incidents against the rows as they are now.
    if !recounted {
        // Incidents no round planned for a route are planned by the round below.
        let owed = outbox::missing(state, ledger, routes)?;
        if !owed.is_empty() {
            let ids: Vec<String> = owed.iter().flat_map(|(_, _, ids)| ids.clone()).collect();
            report.outbox_repaired = ids.len() as u64;
            ledger.write(|tx| tx.incidents_dirty(&ids))?;
        }
        let inc = incidents::check(
            state,
            ledger,
            deep,
            quiescent,
            c(State::Triaged) + c(State::Escalated),
            incident_files,
            routes,
        )?;
        report.incidents = inc.incidents;
        report.open_incidents = inc.open;
        report.incident_members = inc.members;
        report.incidents_repaired = inc.repaired;
        report.awaiting_incident_backfill = inc.awaiting_backfill;
        report.mismatches.extend(inc.mismatches);
        report.strays.extend(inc.strays);
        for (route, n, ids) in outbox::missing(state, ledger, routes)? {
            report.mismatches.push(outbox::mismatch(&route, n, &ids));
        }
        report.outbox = outbox::counts(ledger, routes)?;
    }
    if deep {
        for s in &disk.case_strays {
            if !report.orphans.contains(s) {
                report.orphans.push(s.clone());
            }
        }
    }
    let fail =
        !report.mismatches.is_empty() || !report.orphans.is_empty() || !report.ghosts.is_empty();
    report.verdict = if fail { "FAIL" } else { "PASS" };
    Ok(report)
}

/// Whether `name` is a regular file in `dir` now.
fn present_now(dir: &DirFd, name: &str) -> bool {
    matches!(
        dir.open_regular(name.as_bytes()),
        Ok(crate::store::fsx::Opened::Regular { .. })
    )
}

/// A row whose file or case was not found by the scan.
struct Ghost {
    key_hash: String,
    key: String,
    what: String,
    state: State,
    name: String,
    case_path: Option<String>,
}

/// Whether the canonical file `name` was claimed, since the scan, into a temp case of some
/// worker (`processing/<w>/.tmp-case-<stem>/alert.json`).
fn in_a_temp_case(st: &StateDir, name: &str) -> bool {
    let inner = format!(
        "{}/alert.json",
        crate::store::claim::temp_case_name(name.as_bytes())
    );
    let Ok(workers) = st.processing.list() else {
        return false;
    };
    workers.iter().any(|w| {
        w.name.starts_with(b"w-")
            && matches!(
                st.processing.open_subdir_opt(&w.name),
                Ok(Some(d)) if present_now(&d, &inner)
            )
    })
}

/// Looks again, now, for a ghost's file: the scan ran before the ledger was read, and a
/// `triage` or `ingest` process (which take no run lock) may have moved it since.
fn still_missing(
    st: &StateDir,
    disk: &Disk,
    g: &Ghost,
    keys_now: &mut Option<HashSet<String>>,
) -> Result<bool, ReconcileError> {
    let present = present_now;
    let case_there = || {
        g.case_path
            .as_deref()
            .is_some_and(|p| matches!(st.cases.open_path_opt(p), Ok(Some(_))))
    };
    Ok(match g.state {
        State::Queued | State::Overflow | State::Processing => {
            !(present(&st.queue, &g.name)
                || present(&st.overflow, &g.name)
                || case_there()
                || in_a_temp_case(st, &g.name))
        }
        // A triaging row's file is in its temp case until published; a recovery of its dead
        // worker puts it back in queue/ under the row's name.
        State::Triaging => {
            !(case_there()
                || present(&st.queue, &g.name)
                || present(&st.overflow, &g.name)
                || in_a_temp_case(st, &g.name))
        }
        State::Triaged | State::Escalated => !case_there(),
        State::Quarantined => {
            // Intent first: the row may name its entry while the file still waits, under its
            // canonical name, in a (dead) worker's claim folder; or an admission or recovery
            // may have put it back in the queue since the listing.
            let claimed = disk
                .processing
                .iter()
                .any(|n| n.get(22..54) == Some(g.key_hash.as_bytes()));
            !(present(&st.quarantine, &g.name) || present(&st.incoming, &g.name) || claimed || {
                if keys_now.is_none() {
                    *keys_now = Some(scan::keys_present_now(st)?);
                }
                keys_now.as_ref().is_some_and(|k| k.contains(&g.key_hash))
            })
        }
        State::Lost | State::Expired => false,
    })
}

fn keyed(
    st: &StateDir,
    ledger: &mut Ledger,
    disk: &Disk,
    record_lost: bool,
    report: &mut ReconcileReport,
) -> Result<(), ReconcileError> {
    let queue: HashSet<&[u8]> = disk.queue.iter().map(Vec::as_slice).collect();
    let overflow: HashSet<&[u8]> = disk.overflow.iter().map(Vec::as_slice).collect();
    let processing: HashSet<&[u8]> = disk.processing.iter().map(Vec::as_slice).collect();
    // Claimed canonical files of dead workers, by key hash (a quarantine's intent row names
    // its entry while the file still waits in the claim).
    let claimed: HashMap<&[u8], &Vec<u8>> = disk
        .processing
        .iter()
        .filter_map(|n| Some((n.get(22..22 + crate::model::alert::KeyHash::LEN)?, n)))
        .collect();
    let mut seen_cases: HashSet<String> = HashSet::new();
    let mut seen_packs: HashSet<String> = HashSet::new();
    let mut seen_names: HashSet<Vec<u8>> = HashSet::new();
    let mut seen_q: HashSet<String> = HashSet::new();
    let mut ghosts: Vec<Ghost> = Vec::new();
    let mut relocate: Vec<(String, State, String, State)> = Vec::new();
    // (key hash, worker, state to finish in): triaging rows whose case is published.
    let mut finish: Vec<(String, State)> = Vec::new();
    let mut seen_qpacks: HashSet<String> = HashSet::new();
    // Waiting canonical files by key hash: a quarantined row whose file is back in the queue
    // (an admission or recovery that died before its commit) follows it.
    let waiting: HashMap<&[u8], (State, &Vec<u8>)> = disk
        .queue
        .iter()
        .map(|n| (State::Queued, n))
        .chain(disk.overflow.iter().map(|n| (State::Overflow, n)))
        .filter_map(|(s, n)| Some((n.get(22..22 + crate::model::alert::KeyHash::LEN)?, (s, n))))
        .collect();
    let live = disk.live_workers > 0;
    ledger.for_each_row(|r| {
        let here = |n: &str| -> Option<State> {
            let b = n.as_bytes();
            if queue.contains(b) {
                Some(State::Queued)
            } else if overflow.contains(b) {
                Some(State::Overflow)
            } else if processing.contains(b) {
                Some(State::Processing)
            } else {
                None
            }
        };
        match r.state {
            State::Queued | State::Overflow | State::Processing => {
                seen_names.insert(r.name.clone().into_bytes());
                match here(&r.name) {
                    Some(s) if s == r.state => {}
                    Some(s) => relocate.push((r.key_hash.clone(), s, r.name.clone(), r.state)),
                    None if live => {} // claimed by a live worker since the listing
                    None => ghosts.push(Ghost {
                        key_hash: r.key_hash.clone(),
                        key: r.alert_key.clone(),
                        what: format!("{} file {}", r.state.as_str(), r.name),
                        state: r.state,
                        name: r.name.clone(),
                        case_path: r.case_path.clone(),
                    }),
                }
            }
            State::Triaging => {
                if let Some(s) = here(&r.name) {
                    seen_names.insert(r.name.clone().into_bytes());
                    relocate.push((r.key_hash.clone(), s, r.name.clone(), r.state));
                } else if !live {
                    // Published (the commit is what is missing), or still in a dead worker's
                    // temp case (recovery unwinds it): either way not lost.
                    let published = r
                        .case_id
                        .as_ref()
                        .is_some_and(|id| disk.cases.contains_key(id));
                    let found = published
                        || r.case_id
                            .as_ref()
                            .is_some_and(|id| disk.temp_case_ids.contains(id));
                    if published {
                        // The crash took the commit: finish it from the disk (the pack, when
                        // the case is high and its pack is there).
                        let id = r.case_id.clone().unwrap_or_default();
                        let packed =
                            r.bucket.as_deref() == Some("high") && disk.packs.contains(&id);
                        if packed {
                            seen_packs.insert(id);
                        }
                        finish.push((
                            r.key_hash.clone(),
                            if packed {
                                State::Escalated
                            } else {
                                State::Triaged
                            },
                        ));
                    }
                    if !found {
                        ghosts.push(Ghost {
                            key_hash: r.key_hash.clone(),
                            key: r.alert_key.clone(),
                            what: format!(
                                "triaging case {}",
                                r.case_id.clone().unwrap_or_default()
                            ),
                            state: r.state,
                            name: r.name.clone(),
                            case_path: r.case_path.clone(),
                        });
                    }
                }
                if let Some(id) = &r.case_id {
                    seen_cases.insert(id.clone());
                }
            }
            State::Triaged | State::Escalated => {
                let id = r.case_id.clone().unwrap_or_default();
                seen_cases.insert(id.clone());
                match disk.cases.get(&id) {
                    Some((b, _)) if Some(b) == r.bucket.as_ref() => {}
                    _ => ghosts.push(Ghost {
                        key_hash: r.key_hash.clone(),
                        key: r.alert_key.clone(),
                        what: format!("case {id}"),
                        state: r.state,
                        name: r.name.clone(),
                        case_path: r.case_path.clone(),
                    }),
                }
                if r.pack {
                    seen_packs.insert(id.clone());
                    if !disk.packs.contains(&id) {
                        report
                            .ghosts
                            .push(format!("pack {id} (key {})", escape_text(&r.alert_key)));
                    }
                }
            }
            State::Quarantined => {
                seen_q.insert(r.name.clone());
                let entry = r.name.trim_end_matches(".json").to_string();
                if r.pack {
                    if !disk.qpacks.contains(&entry) {
                        report
                            .ghosts
                            .push(format!("pack Q-{entry} (key {})", r.alert_key));
                    }
                    seen_qpacks.insert(entry);
                }
                if disk.quarantine.contains(&r.name) {
                } else if let Some(n) = claimed.get(r.key_hash.as_bytes()) {
                    // Intent first: its file never reached quarantine (a crash before the
                    // move); it is a dead worker's claim, and recovery puts it back.
                    let n = String::from_utf8_lossy(n).into_owned();
                    seen_names.insert(n.clone().into_bytes());
                    relocate.push((r.key_hash.clone(), State::Processing, n, r.state));
                } else if let Some((s, n)) = waiting.get(r.key_hash.as_bytes()) {
                    let n = String::from_utf8_lossy(n).into_owned();
                    seen_names.insert(n.clone().into_bytes());
                    relocate.push((r.key_hash.clone(), *s, n, r.state));
                } else {
                    ghosts.push(Ghost {
                        key_hash: r.key_hash.clone(),
                        key: r.alert_key.clone(),
                        what: format!("quarantine entry {}", r.name),
                        state: r.state,
                        name: r.name.clone(),
                        case_path: r.case_path.clone(),
                    });
                }
            }
            State::Lost | State::Expired => {}
        }
    })?;
    // The scan's picture is only as old as its listing: a worker that started since (a
    // triage process admitting, recovering or claiming) makes this no quiescent point, and
    // nothing is written from a picture it may have changed.
    let record_lost = record_lost && !scan::live_worker_now(st)?;
    // Orphans: on disk with no row.
    for (n, place) in disk
        .queue
        .iter()
        .map(|n| (n, "queue"))
        .chain(disk.overflow.iter().map(|n| (n, "overflow")))
        .chain(disk.processing.iter().map(|n| (n, "processing")))
    {
        if !seen_names.contains(n) {
            report.orphans.push(format!("{place}/{}", escape_name(n)));
        }
    }
    for (id, (_, path)) in &disk.cases {
        if !seen_cases.contains(id) {
            report
                .orphans
                .push(format!("cases/{}", escape_name(path.as_bytes())));
        }
    }
    for id in &disk.packs {
        if !seen_packs.contains(id) {
            report
                .orphans
                .push(format!("escalations/{}", escape_name(id.as_bytes())));
        }
    }
    for e in &disk.qpacks {
        // The pack of an entry an operator requeued stays (packs, like quarantine records,
        // are never deleted) while the alert goes on to a row of its own.
        if !seen_qpacks.contains(e) && !disk.requeued.contains(e) {
            report
                .orphans
                .push(format!("escalations/Q-{}", escape_name(e.as_bytes())));
        }
    }
    // Quarantine entries without a row: a crash between the move into quarantine and the
    // commit of the entry's row (rows come after the move). Location wins: they get it.
    let mut adopt: Vec<String> = Vec::new();
    for q in &disk.quarantine {
        if seen_q.contains(q) {
            continue;
        }
        if record_lost && disk.quarantine_here.contains(q) {
            adopt.push(q.clone());
        } else {
            report
                .orphans
                .push(format!("quarantine/{}", escape_name(q.as_bytes())));
        }
    }
    if record_lost && !adopt.is_empty() {
        let now = chrono::Utc::now();
        let n = ledger.write(|tx| {
            let mut n = 0;
            for q in &adopt {
                let entry = q.trim_end_matches(".json");
                if tx.insert(&crate::store::quarantine::Quarantine::entry_row(entry, now))? {
                    n += 1;
                }
            }
            Ok(n)
        })?;
        for q in &adopt {
            tracing::warn!(entry = %escape_name(q.as_bytes()), "quarantine entry without a row: adopted");
        }
        report.adopted = n;
    }
    if record_lost && !finish.is_empty() {
        // The publishes are made durable before the rows say so.
        st.cases.sync_filesystem()?;
        let n = ledger.write(|tx| {
            let mut n = 0;
            for (kh, to) in &finish {
                n += u64::from(tx.finish_published(kh, *to == State::Escalated)?);
            }
            Ok(n)
        })?;
        report.finished = n;
    }
    // Location wins for files that are somewhere else than their state says.
    // Only what is still where the listing saw it: a stale name never moves a row.
    relocate.retain(|(_, to, name, _)| match to {
        State::Queued => present_now(&st.queue, name),
        State::Overflow => present_now(&st.overflow, name),
        _ => true,
    });
    if record_lost && !relocate.is_empty() {
        ledger.write(|tx| {
            for (kh, s, name, was) in &relocate {
                tx.relocate(kh, *s, name, *was)?;
            }
            Ok(())
        })?;
        report.relocated = relocate.len() as u64;
    }
    if record_lost && !ghosts.is_empty() {
        let mut keys_now = None;
        let mut lost: Vec<&Ghost> = Vec::new();
        for g in &ghosts {
            if still_missing(st, disk, g, &mut keys_now)? {
                lost.push(g);
            }
        }
        let recorded = ledger.write(|tx| {
            let mut recorded = Vec::new();
            for g in &lost {
                // Only if the row is still in the state we read: another process may have
                // moved it on since.
                if tx.mark_lost(&g.key_hash, g.state)? {
                    recorded.push(escape_text(&format!("{} ({})", g.key, g.what)));
                }
            }
            Ok(recorded)
        })?;
        for k in &recorded {
            tracing::error!(key = %k, "alert lost: its file is nowhere; recorded as lost");
        }
        report.newly_lost = recorded;
    } else {
        report.ghosts.extend(
            ghosts
                .into_iter()
                .map(|g| escape_text(&format!("{} (key {})", g.what, g.key))),
        );
    }
    Ok(())
}
