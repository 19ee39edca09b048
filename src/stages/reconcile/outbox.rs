//! Reconcile's delivery checks: every incident that matches a route has that route's opening
//! message in some state (missing is a mismatch), and the messages per route and state.
//!
//! Design constraints:
//! - Judged by the ledger alone, except a route's `match`, which needs the first member's
//!   `alert.json` (read only for the incidents the SQL finds without an opening message).
//! - An incident counts from when its route was first seen by a round (`notify_routes`): a
//!   route added to the configuration does not owe messages for older incidents.
//! - What a round never planned (the incident was built by a process without the route) is
//!   repaired before it is judged: the incident is marked behind, and reconcile's round plans
//!   it; only what is still missing after that round is a mismatch.

use serde::Serialize;

use crate::stages::deliver::due::RouteSpec;
use crate::store::fsx::ReadOutcome;
use crate::store::ledger::outbox::MsgState;
use crate::store::ledger::{Ledger, LedgerError};
use crate::store::state::StateDir;

/// Incidents named per route in a mismatch.
const NAMED: usize = 5;

/// One route's messages by state.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, Default)]
pub struct OutboxCount {
    pub route: String,
    pub pending: u64,
    pub sent: u64,
    pub dead: u64,
    /// The route is no longer configured (its messages are kept, not sent).
    pub orphaned: bool,
}

/// Incidents that match a route and have no opening message for it.
pub fn missing(
    state: &StateDir,
    ledger: &Ledger,
    routes: &[RouteSpec],
) -> Result<Vec<(String, u64, Vec<String>)>, LedgerError> {
    let mut out = Vec::new();
    for r in routes {
        let Some(first_seen) = ledger.notify_route_first_seen(&r.name)? else {
            continue;
        };
        let (_, ids) =
            ledger.incidents_missing_opening(&r.name, r.min_bucket, &first_seen, 10_000)?;
        let mut owed = Vec::new();
        for id in ids {
            if matches_first(state, ledger, r, &id)? {
                owed.push(id);
            }
        }
        if !owed.is_empty() {
            out.push((r.name.clone(), owed.len() as u64, owed));
        }
    }
    Ok(out)
}

/// The route's `match` holds for the incident's first member (no `match`: true; a first member
/// whose case cannot be read: false, reconcile's case checks speak for it).
fn matches_first(
    state: &StateDir,
    ledger: &Ledger,
    r: &RouteSpec,
    id: &str,
) -> Result<bool, LedgerError> {
    let Some(m) = &r.matcher else {
        return Ok(true);
    };
    let Some(first) = ledger.incident_members(id, 1, false)?.into_iter().next() else {
        return Ok(false);
    };
    let Ok(Some(dir)) = state.cases.open_path_opt(&first.case_path) else {
        return Ok(false);
    };
    let Ok(ReadOutcome::Bytes(b)) = dir.read_regular(b"alert.json", 4 << 20) else {
        return Ok(false);
    };
    Ok(serde_json::from_slice::<serde_json::Value>(&b)
        .is_ok_and(|doc| m.matches(&doc, &first.agent)))
}

/// Messages per route and state (configured routes first, all states, zeros included).
pub fn counts(ledger: &Ledger, routes: &[RouteSpec]) -> Result<Vec<OutboxCount>, LedgerError> {
    let mut out: Vec<OutboxCount> = routes
        .iter()
        .map(|r| OutboxCount {
            route: r.name.clone(),
            ..OutboxCount::default()
        })
        .collect();
    for (route, st, n) in ledger.outbox_counts()? {
        let i = match out.iter().position(|c| c.route == route) {
            Some(i) => i,
            None => {
                out.push(OutboxCount {
                    route: route.clone(),
                    orphaned: true,
                    ..OutboxCount::default()
                });
                out.len() - 1
            }
        };
        let c = &mut out[i];
        match st {
            MsgState::Pending => c.pending += n,
            MsgState::Sent => c.sent += n,
            MsgState::Dead => c.dead += n,
        }
    }
    Ok(out)
}

/// The mismatch line of one route's missing opening messages.
pub fn mismatch(route: &str, n: u64, ids: &[String]) -> String {
    let named: Vec<&str> = ids.iter().take(NAMED).map(String::as_str).collect();
    format!(
        "route {route}: {n} incident(s) match it without an opening message ({}{})",
        named.join(", "),
        if ids.len() > NAMED { ", ..." } else { "" }
    )
}
