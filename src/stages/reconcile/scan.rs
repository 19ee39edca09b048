//! What is on disk, by place: one pass over the state directory (workers first, holding a
//! shared lock on each dead one), without `stat` on any listed alert.

use std::collections::{HashMap, HashSet};
use std::io::IsTerminal;

use super::{ReconcileError, BUCKETS};
use crate::store::fsx::{escape_name, DirFd, EntryKind};
use crate::store::ledger::{Ledger, State};
use crate::store::names::{self, Canonical};
use crate::store::state::StateDir;

/// What is on disk, by place.
#[derive(Default)]
pub(super) struct Disk {
    pub(super) queue: Vec<Vec<u8>>,
    pub(super) overflow: Vec<Vec<u8>>,
    /// Claimed canonical files of dead (or no) workers, and of live ones.
    pub(super) processing: Vec<Vec<u8>>,
    /// Temp cases (`.tmp-case-<id>/`) that hold their `alert.json`: a `triaging` alert is
    /// there until it is published, or, for a dead worker, until recovery puts it back.
    pub(super) temp_cases: u64,
    pub(super) temp_case_ids: HashSet<String>,
    /// Temp cases named by the canonical file claimed into them: (canonical name, case id,
    /// worker live). Until its intent row is `triaging`, such an alert is a claim.
    pub(super) temp_claims: Vec<(Vec<u8>, String, bool)>,
    pub(super) live_processing: u64,
    pub(super) live_workers: u64,
    /// case id → (bucket, path below cases/)
    pub(super) cases: HashMap<String, (String, String)>,
    /// entries under cases/ that are not case directories
    pub(super) case_strays: Vec<String>,
    pub(super) packs: HashSet<String>,
    pub(super) quarantine_packs: u64,
    /// `Q-<entry>` packs, by entry.
    pub(super) qpacks: HashSet<String>,
    /// Entries under `escalations/` that are neither a case's pack nor a `Q-` pack.
    pub(super) pack_strays: Vec<String>,
    /// Quarantine entries (`q-*.json`): in `quarantine/`, and requeued ones that wait in
    /// `incoming/` while a quarantined row still names them.
    pub(super) quarantine: HashSet<String>,
    /// Those of `quarantine` that are in `quarantine/` itself.
    pub(super) quarantine_here: HashSet<String>,
    /// Entries an operator requeued (`<entry>.requeued` kept).
    pub(super) requeued: HashSet<String>,
    /// `incoming/q-*.json` names: requeued entries, until admission takes them.
    pub(super) requeued_waiting: Vec<String>,
    pub(super) awaiting: Vec<String>,
    pub(super) strays: Vec<String>,
    /// Shared locks on dead workers' folders, held until reconcile ends: no recoverer moves
    /// their files between our listing and our judgement.
    pub(super) _held: Vec<rustix::fd::OwnedFd>,
}

/// Whether any worker holds its lock now (a fresh look, after the scan).
pub(super) fn live_worker_now(state: &StateDir) -> Result<bool, ReconcileError> {
    for w in state.processing.list()? {
        if !w.name.starts_with(b"w-") {
            continue;
        }
        if let Some(wdir) = state.processing.open_subdir_opt(&w.name)? {
            if crate::store::claim::probe_worker(&wdir)?.is_live() {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// The key hashes of the canonical files in `queue/`, `overflow/` and every worker's folder
/// (claims, and temp cases by the name they keep), now: one fresh listing, taken only when a
/// quarantined row's file was not found by the scan.
pub(super) fn keys_present_now(state: &StateDir) -> Result<HashSet<String>, ReconcileError> {
    let mut keys = HashSet::new();
    let mut add = |n: &[u8]| {
        let claimed = crate::store::claim::temp_case_claimed(n);
        if let Some(c) = Canonical::parse(claimed.as_deref().unwrap_or(n)) {
            keys.insert(c.key_hash.as_str().to_string());
        }
    };
    for d in [&state.queue, &state.overflow] {
        d.for_each_entry(|e| add(&e.name))?;
    }
    for w in state.processing.list()? {
        if !w.name.starts_with(b"w-") {
            continue;
        }
        if let Some(wdir) = state.processing.open_subdir_opt(&w.name)? {
            wdir.for_each_entry(|e| add(&e.name))?;
        }
    }
    Ok(keys)
}

pub(super) fn scan(state: &StateDir) -> Result<Disk, ReconcileError> {
    // Workers first, holding a shared lock on each dead one: a recovery that moves a dead
    // worker's files into queue/ either finished before (they are listed there) or waits
    // until reconcile is done; one under way shows its worker as live (not quiescent).
    let mut d = Disk::default();
    for w in state.processing.list()? {
        let Some(name) = w.name_str() else { continue };
        if !name.starts_with("w-") {
            continue;
        }
        let Some(wdir) = state.processing.open_subdir_opt(&w.name)? else {
            continue;
        };
        let live = match crate::store::claim::probe_worker(&wdir)? {
            crate::store::claim::Liveness::Live => true,
            crate::store::claim::Liveness::Dead(held) => {
                d._held.extend(held);
                false
            }
        };
        if live {
            d.live_workers += 1;
        }
        for e in wdir.list()? {
            if names::is_canonical(&e.name) {
                if live {
                    d.live_processing += 1;
                } else {
                    d.processing.push(e.name);
                }
            } else if let Some(id) = e.name.strip_prefix(b".tmp-case-") {
                // Only a temp case holding the alert counts: before the alert moves in, its
                // canonical file is still in queue/ or overflow/.
                let holds = match wdir.open_subdir_opt(&e.name)? {
                    Some(t) => t.list()?.iter().any(|x| x.name == b"alert.json"),
                    None => false,
                };
                if holds {
                    let id = match crate::store::claim::temp_case_claimed(&e.name) {
                        Some(name) => {
                            let id = Canonical::parse(&name)
                                .map(|c| crate::model::cases::CaseId::for_key(&c.key_hash))
                                .map(|c| c.as_str().to_string())
                                .unwrap_or_default();
                            d.temp_claims.push((name, id.clone(), live));
                            id
                        }
                        None => String::from_utf8_lossy(id).into_owned(),
                    };
                    d.temp_cases += 1;
                    d.temp_case_ids.insert(id);
                }
            } else if !live && !e.is_dot() {
                d.strays.push(format!(
                    "processing/{}/{}",
                    escape_name(&w.name),
                    escape_name(&e.name)
                ));
            }
        }
    }
    d.queue = names::list_sorted(&state.queue)?;
    d.overflow = names::list_sorted(&state.overflow)?;
    for n in names::list_alert_like(&state.incoming)? {
        if names::requeued_entry(&n).is_some() {
            d.requeued_waiting
                .push(String::from_utf8_lossy(&n).into_owned());
        } else {
            d.awaiting.push(format!("incoming/{}", escape_name(&n)));
        }
    }
    for (dir, label) in [(&state.queue, "queue"), (&state.overflow, "overflow")] {
        for n in names::list_foreign(dir)? {
            d.awaiting.push(format!("{label}/{}", escape_name(&n)));
        }
    }
    let bar = if std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new_spinner().with_message("reconcile: walking cases")
    } else {
        indicatif::ProgressBar::hidden()
    };
    for b in BUCKETS {
        let Some(bdir) = state.cases.open_subdir_opt(b.as_bytes())? else {
            continue;
        };
        walk_cases(&bdir, b, 0, b, &mut d, &bar)?;
    }
    bar.finish_and_clear();
    for e in state.escalations.list()? {
        if e.is_dot() {
            continue;
        }
        let dir = matches!(e.kind, EntryKind::Dir | EntryKind::Unknown);
        let n = e.name_str().filter(|_| dir);
        match n {
            Some(n) if n.starts_with("Q-") && n.len() > 2 => {
                d.quarantine_packs += 1;
                d.qpacks.insert(n[2..].to_string());
            }
            Some(n) if crate::model::cases::CaseId::from_stored(n).is_some() => {
                d.packs.insert(n.to_string());
            }
            _ => d
                .pack_strays
                .push(format!("escalations/{}", escape_name(&e.name))),
        }
    }
    for e in state.quarantine.list()? {
        if e.is_dot() {
            continue;
        }
        match e.name_str() {
            Some(n) if n.starts_with("q-") && n.ends_with(".json") => {
                d.quarantine.insert(n.to_string());
                d.quarantine_here.insert(n.to_string());
            }
            Some(n) if n.starts_with("q-") && n.ends_with(".requeued") => {
                d.requeued
                    .insert(n.trim_end_matches(".requeued").to_string());
            }
            Some(n) if n.starts_with("q-") && n.ends_with(".reason") => {}
            _ => d
                .strays
                .push(format!("quarantine/{}", escape_name(&e.name))),
        }
    }
    Ok(d)
}

fn walk_cases(
    dir: &DirFd,
    rel: &str,
    depth: usize,
    bucket: &str,
    d: &mut Disk,
    bar: &indicatif::ProgressBar,
) -> Result<(), ReconcileError> {
    for e in dir.list()? {
        if e.is_dot() {
            continue;
        }
        let shown = format!("cases/{rel}/{}", escape_name(&e.name));
        if depth == 3 {
            let id = e
                .name_str()
                .filter(|n| crate::model::cases::CaseId::from_stored(n).is_some());
            match (id, e.kind) {
                (Some(id), EntryKind::Dir | EntryKind::Unknown) => {
                    d.cases
                        .insert(id.to_string(), (bucket.to_string(), format!("{rel}/{id}")));
                    bar.inc(1);
                }
                _ => d.case_strays.push(shown),
            }
            continue;
        }
        match e.kind {
            EntryKind::Dir | EntryKind::Unknown => {
                let Some(sub) = dir.open_subdir_opt(&e.name)? else {
                    continue;
                };
                let Some(n) = e.name_str() else {
                    d.case_strays.push(shown);
                    continue;
                };
                walk_cases(&sub, &format!("{rel}/{n}"), depth + 1, bucket, d, bar)?;
            }
            _ => d.case_strays.push(shown),
        }
    }
    Ok(())
}

/// A temp case whose row is not (yet) `triaging` holds a claim: the worker claimed the file
/// into it and died (or is about to write the intent) before the intent row committed. Such
/// an alert is counted as `processing` under its canonical name, like a claimed file.
pub(super) fn claims_in_temp_cases(ledger: &Ledger, disk: &mut Disk) -> Result<(), ReconcileError> {
    let claims = std::mem::take(&mut disk.temp_claims);
    for (name, id, live) in claims {
        let Some(c) = Canonical::parse(&name) else {
            continue;
        };
        if ledger.state_of(&c.key_hash)? == Some(State::Triaging) {
            continue;
        }
        disk.temp_cases -= 1;
        disk.temp_case_ids.remove(&id);
        if live {
            disk.live_processing += 1;
        } else {
            disk.processing.push(name);
        }
    }
    Ok(())
}

/// A requeued entry waiting in `incoming/` is still quarantined while a quarantined row names
/// it (admission settles both in one transaction); one no row names is a producer's file.
pub(super) fn requeued_in_incoming(ledger: &Ledger, disk: &mut Disk) -> Result<(), ReconcileError> {
    let waiting = std::mem::take(&mut disk.requeued_waiting);
    for n in waiting {
        if ledger.quarantined_as(&n)? {
            disk.quarantine.insert(n);
        } else {
            disk.awaiting
                .push(format!("incoming/{}", escape_name(n.as_bytes())));
        }
    }
    Ok(())
}
