//! The incident rebuilder: brings `incidents/<YYYY>/<MM>/<DD>/<id>/` up to the ledger for every
//! incident whose files are behind it (changed since built, or shown open past its close).
//!
//! Design constraints:
//! - The files are views: everything in them is read from the ledger in one read transaction
//!   (one snapshot, so counts, lists and the revision agree), plus the member cases'
//!   `alert.json` for the summary's observables.
//! - The one place a visible file is replaced: a temp file, then an atomic rename over the old
//!   one. A reader sees the old view or the new one, never a mix.
//! - A round holds `incidents/.lock` (flock), so two processes never write one incident's files
//!   from different snapshots; a round that finds it held is skipped (the holder does the work),
//!   unless it must finish (the end of a triage), then it waits.
//! - The revision a round built is recorded after its files are durable (one `syncfs` for the
//!   round under batch durability); a crash before that leaves the incident dirty, and the next
//!   round writes it again. An incident whose members all left has its directory removed.

use std::os::fd::AsFd;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rustix::fs::{self as rfs, FlockOperation, Mode, OFlags};
use serde_json::{Map, Value};

use super::summary::{self, SummaryInput, SAMPLE_MAX, TIMELINE_MAX};
use super::view::{
    CaseList, IncidentView, MemberCounts, MemberRef, Status, Window, CASES_LISTED_MAX,
};
use crate::stages::deliver::due::{self, RouteSpec};
use crate::store::fsx::{DirFd, Durability, FsError, ReadOutcome};
use crate::store::ledger::incidents::{time_text, IncidentRow, MemberRow};
use crate::store::ledger::{Ledger, LedgerError};
use crate::store::state::StateDir;

/// Incidents handled per read of the dirty set (and per commit of their built revisions).
const ROUND_CHUNK: usize = 256;
/// Largest `alert.json` read for a summary's sample.
const SAMPLE_FILE_MAX: u64 = 4 << 20;
/// Agents listed in `incident.json`.
const AGENTS_MAX: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum IncidentError {
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("incident {id}: {message}")]
    Bad { id: String, message: String },
}

/// What one round did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoundReport {
    /// Incidents whose files were written.
    pub built: u64,
    /// Incidents without members whose directory was removed (or never written).
    pub emptied: u64,
    /// The round did not run: another process holds the lock.
    pub skipped: bool,
    /// Incidents whose files could not be written (they stay dirty; the reason is logged).
    pub failed: u64,
    /// Outbox messages made due (or refreshed) for delivery routes.
    pub messages: u64,
}

/// How a round runs.
#[derive(Debug, Clone, Copy)]
pub struct RoundOptions {
    /// `[incidents] close_after`.
    pub close_after: Duration,
    pub durability: Durability,
    /// Wait for the lock instead of skipping.
    pub wait: bool,
}

/// `t - d`, or the earliest time when that is out of range (never a panic).
pub fn minus(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| t.checked_sub_signed(d))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// `incidents/<YYYY>/<MM>/<DD>` of a window start (UTC).
pub fn day_rel(window_start: DateTime<Utc>) -> String {
    window_start.format("%Y/%m/%d").to_string()
}

/// Brings every dirty incident's files up to the ledger.
pub fn round(
    state: &StateDir,
    ledger: &mut Ledger,
    opts: RoundOptions,
    routes: &[RouteSpec],
    now: DateTime<Utc>,
) -> Result<RoundReport, IncidentError> {
    let mut report = RoundReport::default();
    let Some(_lock) = lock(&state.incidents, opts.wait)? else {
        report.skipped = true;
        return Ok(report);
    };
    let cutoff = time_text(minus(now, opts.close_after));
    // One pass over the dirty set by id: an incident that commits dirty again meanwhile is met
    // by the next round, so a writer that keeps touching one cannot hold a round forever.
    let mut after = String::new();
    loop {
        let fresh = ledger.dirty_incidents(&cutoff, &after, ROUND_CHUNK)?;
        let Some(last) = fresh.last() else {
            return Ok(report);
        };
        after = last.clone();
        let mut built = Vec::with_capacity(fresh.len());
        let mut planned = Vec::new();
        for id in &fresh {
            // One incident that cannot be built (a case or a directory replaced by something
            // else) stays dirty and is said once per round; the others go on.
            let done = snapshot(ledger, id).and_then(|snap| match snap {
                Some(snap) => write_files(state, &snap, opts, now).map(|v| Some((snap, v))),
                None => Ok(None),
            });
            match done {
                Ok(Some((snap, view))) => {
                    match &view {
                        Some(v) => {
                            report.built += 1;
                            planned.extend(messages(state, ledger, routes, &snap, v, now)?);
                        }
                        None => report.emptied += 1,
                    }
                    built.push((id.clone(), snap.row.rev, view.map(|v| v.status)));
                }
                Ok(None) => {}
                Err(e) => {
                    report.failed += 1;
                    tracing::warn!("incident files not rebuilt: {e}");
                }
            }
        }
        crate::failpoint::crash_point("incident-rebuild");
        // The files are durable before the ledger says they show these revisions.
        state.incidents.barrier(opts.durability)?;
        let now_s = time_text(now);
        ledger.write(|tx| {
            for r in routes {
                tx.notify_route_seen(&r.name, r.kind.as_str(), &now_s)?;
            }
            for (id, rev, status) in &built {
                tx.incident_built(id, *rev, status.map(Status::as_str))?;
            }
            // The messages these revisions make due, in the same commit (a crash before it
            // leaves the incidents dirty; the next round plans them again, under the same ids).
            due::record(tx, &planned, now)
        })?;
        report.messages += planned.len() as u64;
    }
}

/// Takes `incidents/.lock`; `None` when another process holds it and `wait` is false.
fn lock(dir: &DirFd, wait: bool) -> Result<Option<std::fs::File>, IncidentError> {
    let path = dir.path().join(".lock");
    let fd = rfs::openat(
        &*dir.fd(),
        ".lock",
        OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::RUSR | Mode::WUSR,
    )
    .map_err(|e| FsError::new("open", &path, e))?;
    let op = if wait {
        FlockOperation::LockExclusive
    } else {
        FlockOperation::NonBlockingLockExclusive
    };
    match rfs::flock(fd.as_fd(), op) {
        Ok(()) => Ok(Some(std::fs::File::from(fd))),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
        Err(e) => Err(FsError::new("lock", &path, e).into()),
    }
}

/// One incident as one read transaction saw it.
pub struct Snapshot {
    pub row: IncidentRow,
    /// Members from the start, in `(alert_time, case_id)` order: all of them up to
    /// [`CASES_LISTED_MAX`], else the first half.
    pub first: Vec<MemberRow>,
    /// The last half, in the same order (empty when `first` holds them all).
    pub last: Vec<MemberRow>,
    /// The first high member, when an earlier member was of a lower bucket.
    pub raised_by: Option<MemberRow>,
    /// The predecessor has members.
    pub continues: bool,
    pub agents: Vec<String>,
}

/// Reads one incident in one read transaction (`None`: no such incident).
pub fn snapshot(ledger: &Ledger, id: &str) -> Result<Option<Snapshot>, IncidentError> {
    let conn = ledger.conn();
    let tx = conn
        .unchecked_transaction()
        .map_err(|e| bad(id, format!("cannot start a read: {e}")))?;
    let Some(row) = ledger.incident(id)? else {
        return Ok(None);
    };
    let all = row.members as usize <= CASES_LISTED_MAX;
    let half = CASES_LISTED_MAX / 2;
    let first = ledger.incident_members(id, if all { CASES_LISTED_MAX } else { half }, false)?;
    let mut last = if all {
        Vec::new()
    } else {
        ledger.incident_members(id, half, true)?
    };
    last.reverse();
    let raised_by = match first.first() {
        Some(m) if row.high > 0 && m.bucket != "high" => ledger.first_member_in(id, "high")?,
        _ => None,
    };
    let continues = ledger
        .incident(&row.previous)?
        .is_some_and(|p| p.members > 0);
    let agents = ledger.incident_agents(id, AGENTS_MAX)?;
    drop(tx);
    Ok(Some(Snapshot {
        row,
        first,
        last,
        raised_by,
        continues,
        agents,
    }))
}

fn bad(id: &str, message: String) -> IncidentError {
    IncidentError::Bad {
        id: id.to_string(),
        message,
    }
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// A time the incident's row stores.
fn stored_time(r: &IncidentRow, what: &str, s: &str) -> Result<DateTime<Utc>, IncidentError> {
    parse_time(s).ok_or_else(|| bad(&r.id, format!("{what} {s:?} is not a time")))
}

/// The view of a snapshot at `now`.
pub fn view_of(
    snap: &Snapshot,
    close_after: Duration,
    now: DateTime<Utc>,
) -> Result<IncidentView, IncidentError> {
    let r = &snap.row;
    let start = stored_time(r, "window start", &r.window_start)?;
    let end = stored_time(r, "window end", &r.window_end)?;
    let key = serde_json::from_str(&r.key)
        .map_err(|e| bad(&r.id, format!("its key is not readable: {e}")))?;
    let members = MemberCounts {
        total: r.members,
        suppressed: r.suppressed,
        low: r.low,
        medium: r.medium,
        high: r.high,
        critical: r.critical,
    };
    let closes_at = chrono::Duration::from_std(close_after)
        .ok()
        .and_then(|d| end.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    let ids = |v: &[MemberRow]| v.iter().map(|m| m.case_id.clone()).collect::<Vec<_>>();
    let cases = if snap.last.is_empty() {
        CaseList {
            count: r.members,
            ids: Some(ids(&snap.first)),
            first: None,
            last: None,
        }
    } else {
        CaseList {
            count: r.members,
            ids: None,
            first: Some(ids(&snap.first)),
            last: Some(ids(&snap.last)),
        }
    };
    Ok(IncidentView {
        id: r.id.clone(),
        group: r.group_id.clone(),
        key,
        window: Window {
            start,
            end,
            secs: r.window_secs,
        },
        continues: snap.continues.then(|| r.previous.clone()),
        first_alert_time: r.first_time.as_deref().and_then(parse_time),
        last_alert_time: r.last_time.as_deref().and_then(parse_time),
        bucket: members.highest(),
        highest_level: r.max_level,
        critical: r.critical > 0,
        escalated_at: snap
            .raised_by
            .as_ref()
            .and_then(|m| parse_time(&m.alert_time)),
        escalated_by: snap.raised_by.as_ref().map(|m| m.case_id.clone()),
        status: if now < closes_at {
            Status::Open
        } else {
            Status::Closed
        },
        closes_at,
        cases,
        agents: snap.agents.clone(),
        summary: r.high > 0,
        members,
    })
}

/// A member row as the timeline shows it.
pub fn member_ref(m: &MemberRow) -> Option<MemberRef> {
    Some(MemberRef {
        case_id: m.case_id.clone(),
        case_path: m.case_path.clone(),
        alert_time: parse_time(&m.alert_time)?,
        bucket: sf_policy::Bucket::parse(&m.bucket)?,
        level: m.level,
        rule_id: m.rule_id.clone(),
        description: m.description.clone(),
        agent: m.agent.clone(),
        packed: m.packed,
    })
}

/// The members' `alert.json` (the first [`SAMPLE_MAX`]); a case that cannot be read is left
/// out of the sample (reconcile speaks for cases).
fn sample(state: &StateDir, members: &[MemberRow]) -> Result<Vec<Map<String, Value>>, FsError> {
    let mut out = Vec::new();
    for m in members.iter().take(SAMPLE_MAX) {
        let Ok(Some(dir)) = state.cases.open_path_opt(&m.case_path) else {
            continue;
        };
        if let Ok(ReadOutcome::Bytes(b)) = dir.read_regular(b"alert.json", SAMPLE_FILE_MAX) {
            if let Ok(Value::Object(map)) = serde_json::from_slice(&b) {
                out.push(map);
            }
        }
    }
    Ok(out)
}

/// One member's `alert.json` (`None`: no member, or its case cannot be read).
fn sample_of(
    state: &StateDir,
    member: Option<&MemberRow>,
) -> Result<Option<Map<String, Value>>, FsError> {
    Ok(match member {
        Some(m) => sample(state, std::slice::from_ref(m))?.into_iter().next(),
        None => None,
    })
}

/// The names of the host other than its canonical one, over the sample.
fn aliases(sample: &[Map<String, Value>], agents: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for a in sample {
        for canonical in agents {
            for n in crate::stages::triage::agent_aliases(a, canonical) {
                if !out.contains(&n) && !agents.contains(&n) {
                    out.push(n);
                }
            }
        }
    }
    out.sort();
    out
}

/// The incident's `summary.md` (any incident: `incident show` renders one for an incident
/// without a high member too).
pub fn summary_of(
    state: &StateDir,
    snap: &Snapshot,
    view: &IncidentView,
) -> Result<String, FsError> {
    let timeline: Vec<MemberRef> = snap
        .first
        .iter()
        .take(TIMELINE_MAX)
        .filter_map(member_ref)
        .collect();
    let sample = sample(state, &snap.first)?;
    let aliases = aliases(&sample, &view.agents);
    Ok(summary::render(&SummaryInput {
        incident: view,
        timeline: &timeline,
        sample: &sample,
        aliases: &aliases,
    }))
}

/// Writes (or removes) one incident's files; its view, or `None` when it has no members.
fn write_files(
    state: &StateDir,
    snap: &Snapshot,
    opts: RoundOptions,
    now: DateTime<Utc>,
) -> Result<Option<IncidentView>, IncidentError> {
    let r = &snap.row;
    let start = stored_time(r, "window start", &r.window_start)?;
    let day = day_rel(start);
    if r.members == 0 {
        if let Some(d) = state.incidents.open_path_opt(&day)? {
            if let Some(inc) = d.open_subdir_opt(r.id.as_bytes())? {
                crate::store::fsx::sweep_dead_temps(&inc)?;
                inc.remove_file(b"incident.json")?;
                inc.remove_file(b"summary.md")?;
                d.remove_dir(r.id.as_bytes())?;
            }
        }
        return Ok(None);
    }
    let view = view_of(snap, opts.close_after, now)?;
    // Under batch durability the files are written without their own fsync: the round's
    // barrier covers them.
    let file_durability = match opts.durability {
        Durability::Strict => Durability::Strict,
        Durability::Batch | Durability::Off => Durability::Off,
    };
    let dir = state
        .incidents
        .ensure_subdir_chain(&format!("{day}/{}", r.id), opts.durability)?;
    // A round killed while writing here left its temp file; this round rebuilds the incident
    // (the killed one recorded nothing built).
    crate::store::fsx::sweep_dead_temps(&dir)?;
    let mut json = serde_json::to_vec_pretty(&view)
        .map_err(|e| bad(&r.id, format!("cannot serialize its view: {e}")))?;
    json.push(b'\n');
    dir.replace("incident.json", &json, file_durability)?;
    if view.summary {
        let md = summary_of(state, snap, &view)?;
        dir.replace("summary.md", md.as_bytes(), file_durability)?;
    } else {
        dir.remove_file(b"summary.md")?;
    }
    Ok(Some(view))
}

/// The messages one built incident makes due for the routes (reads only: the progress rows,
/// and the sampled members' files when some route may be due).
fn messages(
    state: &StateDir,
    ledger: &Ledger,
    routes: &[RouteSpec],
    snap: &Snapshot,
    view: &IncidentView,
    now: DateTime<Utc>,
) -> Result<Vec<due::Planned>, IncidentError> {
    if routes.is_empty() {
        return Ok(Vec::new());
    }
    let mut progress = Vec::with_capacity(routes.len());
    for r in routes {
        progress.push(ledger.notify_progress_of(&r.name, &view.id)?);
    }
    let first_bucket = snap
        .first
        .first()
        .and_then(|f| sf_policy::Bucket::parse(&f.bucket));
    // Nothing can be due (even if every match held): no file is read.
    if routes
        .iter()
        .zip(&progress)
        .all(|(r, p)| due::decide(r, view, first_bucket, true, p.as_ref()) == due::Due::Nothing)
    {
        return Ok(Vec::new());
    }
    let sample = sample(state, &snap.first)?;
    let first = sample_of(state, snap.first.first())?;
    let start = stored_time(&snap.row, "window start", &snap.row.window_start)?;
    let material = due::Material {
        view,
        members: &snap.first,
        sample: &sample,
        first_doc: first.as_ref(),
        dir: format!("incidents/{}/{}", day_rel(start), view.id),
        summary: due::summary_lines(view, snap.first.first()),
    };
    Ok(due::plan(routes, &material, &progress, now))
}
