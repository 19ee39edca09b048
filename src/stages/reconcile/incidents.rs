//! Reconcile's incident checks: every member row (triaged or escalated) belongs to exactly one
//! incident, the `incidents` table's counts equal the member rows', and every incident's files
//! show the ledger. Files behind the ledger (missing, stale, of an incident without members)
//! are rebuilt and counted as repaired, not as mismatches; a count the ledger contradicts
//! after the repair is a mismatch.
//!
//! Without `--deep` the files are checked by presence (one listing per day directory); with
//! `--deep` every `incident.json` is read and its counts compared, and every disagreement is
//! named.

use std::collections::{BTreeMap, BTreeSet};

use chrono::Utc;

use super::ReconcileError;
use crate::stages::deliver::due::RouteSpec;
use crate::stages::incidents::build::{self, RoundOptions};
use crate::stages::incidents::view::IncidentView;
use crate::store::fsx::{escape_name, escape_text, DirFd, ReadOutcome};
use crate::store::ledger::incidents::{IncidentRow, BACKFILL_META};
use crate::store::ledger::Ledger;
use crate::store::state::StateDir;

const VIEW_MAX: u64 = 16 << 20;

/// What the incident checks found.
#[derive(Debug, Clone, Default)]
pub(super) struct IncidentCheck {
    pub incidents: u64,
    pub open: u64,
    pub members: u64,
    pub repaired: u64,
    /// Member rows from before incidents that the next triage's backfill assigns.
    pub awaiting_backfill: u64,
    pub mismatches: Vec<String>,
    /// Entries under `incidents/` that are not an incident's directory.
    pub strays: Vec<String>,
}

/// Runs the checks. `member_rows`: the triaged and escalated rows the state pass counted.
pub(super) fn check(
    state: &StateDir,
    ledger: &mut Ledger,
    deep: bool,
    quiescent: bool,
    member_rows: u64,
    opts: RoundOptions,
    routes: &[RouteSpec],
) -> Result<IncidentCheck, ReconcileError> {
    let mut out = IncidentCheck::default();
    let orphans = ledger.members_without_incident()?;
    let pending = ledger.meta_get(BACKFILL_META)?.is_some();
    if orphans > 0 && pending {
        out.awaiting_backfill = orphans;
    } else if orphans > 0 {
        out.mismatches.push(format!(
            "{orphans} triaged or escalated rows belong to no incident (the next triage assigns them)"
        ));
        ledger.write(|tx| {
            tx.conn().execute(
                "INSERT OR IGNORE INTO meta (k, v) VALUES (?1, 'pending')",
                [BACKFILL_META],
            )?;
            Ok(())
        })?;
    }
    for (id, table, rows) in ledger.incident_count_disagreements()? {
        out.mismatches.push(format!(
            "incident {}: the incidents table counts {} members ({} high), its rows {} ({} high)",
            escape_text(&id),
            table.members,
            table.high,
            rows.members,
            rows.high
        ));
    }
    // The files: what is on disk against the ledger's incidents with members.
    let known = ledger_incidents(ledger)?;
    let (on_disk, strays) = listed(&state.incidents)?;
    out.strays = strays;
    let mut stale: BTreeSet<String> = BTreeSet::new();
    for (id, row) in &known {
        let day = build::day_rel(parse(&row.window_start));
        if row.members > 0 && on_disk.get(id) != Some(&day) {
            stale.insert(id.clone());
        }
    }
    for id in on_disk.keys() {
        if known.get(id).is_none_or(|r| r.members == 0) {
            match ledger.incident(id)? {
                // Its members left: the rebuild removes its directory.
                Some(_) => {
                    stale.insert(id.clone());
                }
                None => out.strays.push(format!(
                    "incidents/{} (no such incident)",
                    escape_name(id.as_bytes())
                )),
            }
        }
    }
    if deep {
        for (id, row) in known.iter().filter(|(_, r)| r.members > 0) {
            if !stale.contains(id) && read_view(state, row)?.is_none_or(|v| !agrees(&v, row)) {
                stale.insert(id.clone());
            }
        }
    }
    if !stale.is_empty() {
        let ids: Vec<String> = stale.iter().cloned().collect();
        ledger.write(|tx| tx.incidents_dirty(&ids))?;
    }
    let round = build::round(
        state,
        ledger,
        RoundOptions { wait: true, ..opts },
        routes,
        Utc::now(),
    )
    .map_err(|e| ReconcileError::Incidents(e.to_string()))?;
    // Incidents a triage left behind (a crash before its round) are repaired too.
    out.repaired = (stale.len() as u64).max(round.built + round.emptied);
    // After the repair, what the files say must be what the ledger says (at a quiescent
    // point: a live triage's commits move the ledger on between the round and this read).
    let check_ids: Vec<&String> = if !quiescent {
        Vec::new()
    } else if deep {
        known.keys().collect()
    } else {
        stale.iter().collect()
    };
    for id in check_ids {
        let Some(row) = ledger.incident(id)? else {
            continue;
        };
        if row.members == 0 {
            continue;
        }
        match read_view(state, &row)? {
            Some(v) if agrees(&v, &row) => {}
            Some(v) => out.mismatches.push(format!(
                "incident {}: incident.json counts {} members, the ledger {}",
                escape_text(id),
                v.members.total,
                row.members
            )),
            None => out.mismatches.push(format!(
                "incident {}: incident.json missing or unreadable after its rebuild",
                escape_text(id)
            )),
        }
    }
    if !out.strays.is_empty() {
        out.mismatches.push(format!(
            "{} entries under incidents/ that are not incident directories",
            out.strays.len()
        ));
    }
    let totals = ledger.incident_totals()?;
    out.incidents = totals.incidents;
    out.open = totals.open;
    out.members = totals.members;
    if quiescent && totals.members + out.awaiting_backfill != member_rows {
        out.mismatches.push(format!(
            "incident members: {} in incidents, {} triaged or escalated rows",
            totals.members, member_rows
        ));
    }
    Ok(out)
}

fn parse(s: &str) -> chrono::DateTime<Utc> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

/// Whether a view shows the ledger's row.
fn agrees(v: &IncidentView, r: &IncidentRow) -> bool {
    let m = &v.members;
    v.id == r.id
        && m.total == r.members
        && m.suppressed == r.suppressed
        && m.low == r.low
        && m.medium == r.medium
        && m.high == r.high
        && m.critical == r.critical
        && v.cases.count == r.members
}

/// Every incident of the ledger, by id.
fn ledger_incidents(ledger: &Ledger) -> Result<BTreeMap<String, IncidentRow>, ReconcileError> {
    let mut out = BTreeMap::new();
    let mut offset = 0;
    loop {
        let page = ledger.incidents_all(offset, 20_000)?;
        let n = page.len();
        for r in page {
            out.insert(r.id.clone(), r);
        }
        if n < 20_000 {
            return Ok(out);
        }
        offset += n;
    }
}

/// The incident directories on disk (`id` → `YYYY/MM/DD`), and entries that are not one.
fn listed(root: &DirFd) -> Result<(BTreeMap<String, String>, Vec<String>), ReconcileError> {
    let mut ids = BTreeMap::new();
    let mut strays = Vec::new();
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    for y in root.list()? {
        let Some(yn) = y.name_str().map(str::to_string) else {
            strays.push(format!("incidents/{}", escape_name(&y.name)));
            continue;
        };
        if y.is_dot() {
            continue;
        }
        let Some(yd) = root
            .open_subdir_opt(yn.as_bytes())?
            .filter(|_| digits(&yn, 4))
        else {
            strays.push(format!("incidents/{}", escape_name(yn.as_bytes())));
            continue;
        };
        for m in yd.list()?.into_iter().filter(|e| !e.is_dot()) {
            let mn = m.name_str().unwrap_or("").to_string();
            let Some(md) = dir_of(&yd, &m).filter(|_| digits(&mn, 2)) else {
                strays.push(format!("incidents/{yn}/{}", escape_name(&m.name)));
                continue;
            };
            for d in md.list()?.into_iter().filter(|e| !e.is_dot()) {
                let dn = d.name_str().unwrap_or("").to_string();
                let Some(dd) = dir_of(&md, &d).filter(|_| digits(&dn, 2)) else {
                    strays.push(format!("incidents/{yn}/{mn}/{}", escape_name(&d.name)));
                    continue;
                };
                for i in dd.list()?.into_iter().filter(|e| !e.is_dot()) {
                    let name = i.name_str().unwrap_or("");
                    let ok = name.starts_with("INC-")
                        && name[4..]
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
                    if let Some(inc) = dir_of(&dd, &i).filter(|_| ok) {
                        // A directory without its incident.json is not a view (to repair).
                        if inc.has_entry("incident.json")? {
                            ids.insert(name.to_string(), format!("{yn}/{mn}/{dn}"));
                        } else {
                            ids.insert(name.to_string(), String::new());
                        }
                    } else {
                        strays.push(format!("incidents/{yn}/{mn}/{dn}/{}", escape_name(&i.name)));
                    }
                }
            }
        }
    }
    Ok((ids, strays))
}

/// The entry as a directory; `None` when it is not one (a file, a link: a stray) or is gone.
fn dir_of(parent: &DirFd, e: &crate::store::fsx::Entry) -> Option<DirFd> {
    parent.open_subdir_opt(&e.name).ok().flatten()
}

/// The incident's `incident.json`, when it is there and readable.
fn read_view(state: &StateDir, row: &IncidentRow) -> Result<Option<IncidentView>, ReconcileError> {
    let rel = format!("{}/{}", build::day_rel(parse(&row.window_start)), row.id);
    let Some(dir) = state.incidents.open_path_opt(&rel)? else {
        return Ok(None);
    };
    Ok(match dir.read_regular(b"incident.json", VIEW_MAX)? {
        ReadOutcome::Bytes(b) => serde_json::from_slice(&b).ok(),
        _ => None,
    })
}
