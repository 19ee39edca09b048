//! Which messages an incident round makes due, per route, and recording them in the outbox
//! in the round's commit.
//!
//! Design constraints:
//! - `decide` is pure: (route, the incident as the round built it, whether its first member
//!   matches, the route's progress) → what is due. Tested beside it.
//! - An incident opens for a route when its highest member first reaches the route's
//!   `min_bucket` and its first member matches the route's `match`: `incident.opened`, or
//!   `incident.escalated` when the first member was below `min_bucket` (it started low and a
//!   later member raised it). New members after that are one `incident.updated` at most every
//!   `update_every`: while an update is pending and unattempted, newer members refresh it
//!   instead of adding another (case tools get no updates). A route that resolves (PagerDuty)
//!   gets `incident.closed` when an incident it opened while open closes; one opened already
//!   closed (a backlog triaged late) still pages, and is left for a person to resolve.
//! - Reads (the route's progress, member files) happen before the round's write transaction;
//!   only rounds write progress and they hold `incidents/.lock`, so what was read is what the
//!   transaction sees.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sf_policy::{Bucket, MatchTable};
use sha2::{Digest, Sha256};

use super::event::{Event, MessageType};
use crate::config::{NotifyConfig, NotifyKind};
use crate::stages::escalate::observables::{observables, Observable};
use crate::stages::incidents::view::{IncidentView, Status};
use crate::store::ledger::incidents::{time_text, MemberRow};
use crate::store::ledger::outbox::Progress;
use crate::store::ledger::Tx;

/// Observables carried by one message at most.
pub const OBSERVABLES_MAX: usize = 50;
/// Pack paths carried by one message at most.
pub const PACKS_MAX: usize = 20;

/// What the round needs of a route (no secrets).
#[derive(Debug, Clone)]
pub struct RouteSpec {
    pub name: String,
    pub kind: NotifyKind,
    pub min_bucket: Bucket,
    pub matcher: Option<MatchTable>,
    pub update_every: Duration,
}

impl RouteSpec {
    /// The configured routes (their `match` tables compiled; the configuration was validated
    /// when read, so a table that fails here is said and the route matches nothing).
    pub fn all(cfg: &[NotifyConfig]) -> Vec<RouteSpec> {
        cfg.iter()
            .map(|r| RouteSpec {
                name: r.name.clone(),
                kind: r.kind,
                min_bucket: r.min_bucket,
                matcher: r.match_table.as_ref().and_then(|t| {
                    crate::config::notify::compile_match(&r.name, t)
                        .map_err(|e| tracing::error!("[[notify]] {}: {e}", r.name))
                        .ok()
                }),
                update_every: r.update_every,
            })
            .collect()
    }
}

/// What is due for one route and one incident.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Due {
    Nothing,
    /// The opening message (`Opened` or `Escalated`).
    Open(MessageType),
    Update,
    Close,
}

/// Decides what one route owes one incident (pure).
pub fn decide(
    route: &RouteSpec,
    view: &IncidentView,
    first_bucket: Option<Bucket>,
    first_matches: bool,
    progress: Option<&Progress>,
) -> Due {
    let Some(highest) = view.bucket else {
        return Due::Nothing;
    };
    match progress {
        None => {
            if highest < route.min_bucket || !first_matches {
                return Due::Nothing;
            }
            if first_bucket.is_some_and(|b| b < route.min_bucket) {
                Due::Open(MessageType::Escalated)
            } else {
                Due::Open(MessageType::Opened)
            }
        }
        Some(p) => {
            if p.closed {
                return Due::Nothing;
            }
            if view.status == Status::Closed && route.kind.resolves() {
                return Due::Close;
            }
            if view.members.total > p.members && route.kind.updates() {
                Due::Update
            } else {
                Due::Nothing
            }
        }
    }
}

/// A message id: deterministic from (route, incident, sequence); `msg_` and 32 hex digits.
pub fn message_id(route: &str, incident: &str, seq: u32) -> String {
    let mut h = Sha256::new();
    h.update(route.as_bytes());
    h.update([0]);
    h.update(incident.as_bytes());
    h.update([0]);
    h.update(seq.to_be_bytes());
    format!("msg_{}", &hex::encode(h.finalize())[..32])
}

/// What a round read of one incident, for its messages.
pub struct Material<'a> {
    pub view: &'a IncidentView,
    /// Members in order (the first is the incident's first member).
    pub members: &'a [MemberRow],
    /// The first members' `alert.json`.
    pub sample: &'a [Map<String, Value>],
    /// The first member's own `alert.json` (`None`: unreadable), for `match`.
    pub first_doc: Option<&'a Map<String, Value>>,
    /// `incidents/<day>/<id>` (relative to the state directory).
    pub dir: String,
    /// The summary's plain-text lines.
    pub summary: Vec<String>,
}

/// One message the round will record.
#[derive(Debug, Clone)]
pub struct Planned {
    pub route: String,
    pub due: Due,
    pub event: Event,
    pub not_before: DateTime<Utc>,
    pub progress: Progress,
}

/// The first member's canonical agent and document, for `match`.
pub fn first_matches(route: &RouteSpec, m: &Material<'_>) -> bool {
    let Some(matcher) = &route.matcher else {
        return true;
    };
    let (Some(first), Some(doc)) = (m.members.first(), m.first_doc) else {
        tracing::warn!(
            "[[notify]] {}: incident {}: its first member's alert.json cannot be read, so `match` cannot be judged; not sent on this route (reconcile names the case)",
            route.name,
            m.view.id
        );
        return false;
    };
    matcher.matches(&Value::Object(doc.clone()), &first.agent)
}

/// Plans one incident's messages for every route (reads done by the caller; pure otherwise).
pub fn plan(
    routes: &[RouteSpec],
    m: &Material<'_>,
    progress: &[Option<Progress>],
    now: DateTime<Utc>,
) -> Vec<Planned> {
    let first_bucket = m.members.first().and_then(|f| Bucket::parse(&f.bucket));
    let mut out = Vec::new();
    for (route, prog) in routes.iter().zip(progress) {
        let due = decide(
            route,
            m.view,
            first_bucket,
            prog.is_some() || first_matches(route, m),
            prog.as_ref(),
        );
        let (kind, seq, not_before, new_members) = match (&due, prog) {
            (Due::Nothing, _) => continue,
            (Due::Open(k), _) => (*k, 0, now, 0),
            (Due::Update, Some(p)) => {
                let last = DateTime::parse_from_rfc3339(&p.last_due)
                    .map(|t| t.with_timezone(&Utc))
                    .unwrap_or(now);
                let next = chrono::Duration::from_std(route.update_every)
                    .ok()
                    .and_then(|d| last.checked_add_signed(d))
                    .unwrap_or(now);
                (
                    MessageType::Updated,
                    p.next_seq,
                    next.max(now),
                    m.view.members.total.saturating_sub(p.members),
                )
            }
            (Due::Close, Some(p)) => (MessageType::Closed, p.next_seq, now, 0),
            _ => continue,
        };
        let event = event(route, m, kind, seq, new_members, now);
        // An incident opened after it closed (a backlog triaged late) is never resolved by
        // us: a person resolves what was paged.
        let opened_closed = matches!(due, Due::Open(_)) && m.view.status == Status::Closed;
        let progress = Progress {
            route: route.name.clone(),
            incident: m.view.id.clone(),
            next_seq: seq + 1,
            members: m.view.members.total,
            last_due: time_text(not_before),
            closed: due == Due::Close || (opened_closed && route.kind.resolves()),
        };
        out.push(Planned {
            route: route.name.clone(),
            due,
            event,
            not_before,
            progress,
        });
    }
    out
}

/// The event of one message.
fn event(
    route: &RouteSpec,
    m: &Material<'_>,
    kind: MessageType,
    seq: u32,
    new_members: u64,
    now: DateTime<Utc>,
) -> Event {
    let v = m.view;
    let mut packs = vec![format!("{}/incident.json", m.dir)];
    if v.summary {
        packs.push(format!("{}/summary.md", m.dir));
    }
    packs.extend(
        m.members
            .iter()
            .filter(|r| r.packed)
            .take(PACKS_MAX)
            .map(|r| format!("escalations/{}/", r.case_id)),
    );
    let mut seen = std::collections::BTreeSet::new();
    let obs: Vec<Observable> = m
        .sample
        .iter()
        .flat_map(observables)
        // Context (the agent's own address, vendor references) is not sent as observables.
        .filter(|o| o.is_indicator() && seen.insert((o.kind, o.value.clone())))
        .take(OBSERVABLES_MAX)
        .collect();
    Event {
        id: message_id(&route.name, &v.id, seq),
        kind,
        route: route.name.clone(),
        seq,
        created_at: now,
        incident: v.clone(),
        title: title(v, m.members.first()),
        summary: m.summary.clone(),
        packs,
        observables: obs,
        new_members,
    }
}

/// `[HIGH] <first member's description> on <agent> (<n> alerts)`.
pub fn title(v: &IncidentView, first: Option<&MemberRow>) -> String {
    let bucket = v.bucket.map_or("none", Bucket::as_str).to_ascii_uppercase();
    let what = first
        .and_then(|f| f.description.clone())
        .or_else(|| first.and_then(|f| f.rule_id.as_ref().map(|r| format!("rule {r}"))))
        .unwrap_or_else(|| v.group.clone());
    let agents = match v.agents.as_slice() {
        [] => String::new(),
        [one] => format!(" on {one}"),
        [one, rest @ ..] => format!(" on {one} and {} more", rest.len()),
    };
    let n = v.members.total;
    let s = if n == 1 { "" } else { "s" };
    format!("[{bucket}] {what}{agents} ({n} alert{s})")
}

/// The incident's facts as plain-text lines (raw alert text: formats escape it).
pub fn summary_lines(v: &IncidentView, first: Option<&MemberRow>) -> Vec<String> {
    let c = &v.members;
    let mut out = vec![format!(
        "Incident {}: {} alert{} ({} high, {} medium, {} low, {} suppressed){}",
        v.id,
        c.total,
        if c.total == 1 { "" } else { "s" },
        c.high,
        c.medium,
        c.low,
        c.suppressed,
        if v.critical { ", critical" } else { "" }
    )];
    if let Some(f) = first {
        out.push(format!(
            "Rule {} (level {}): {}",
            f.rule_id.as_deref().unwrap_or("?"),
            f.level.map_or("?".into(), |l| l.to_string()),
            f.description.as_deref().unwrap_or("")
        ));
    }
    if !v.agents.is_empty() {
        out.push(format!("Agents: {}", v.agents.join(", ")));
    }
    let key: Vec<String> = v
        .key
        .iter()
        .map(|k| format!("{}={}", k.field, k.value.as_deref().unwrap_or("-")))
        .collect();
    out.push(format!("Group {}: {}", v.group, key.join(", ")));
    if let (Some(a), Some(b)) = (v.first_alert_time, v.last_alert_time) {
        out.push(format!(
            "Alerts from {} to {}",
            a.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            b.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ));
    }
    out.push(format!(
        "Status {} (closes {})",
        v.status.as_str(),
        v.closes_at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    ));
    out
}

/// Records a round's planned messages (inside its commit). An update that finds an unattempted
/// pending update of the same route and incident refreshes it instead (coalescing).
pub fn record(tx: &mut Tx<'_>, planned: &[Planned], now: DateTime<Utc>) -> rusqlite::Result<()> {
    let now_s = time_text(now);
    for p in planned {
        if p.due == Due::Update {
            if let Some(pending) = tx.outbox_unattempted_update(&p.route, &p.event.incident.id)? {
                let mut ev = p.event.clone();
                ev.id = pending.id.clone();
                ev.seq = pending.seq;
                let before = serde_json::from_str::<Event>(&pending.event)
                    .map(|e| e.new_members)
                    .unwrap_or(0);
                ev.new_members += before;
                let json = serde_json::to_string(&ev)
                    .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
                if tx.outbox_refresh(&pending.id, &json)? {
                    let mut prog = p.progress.clone();
                    prog.next_seq = pending.seq + 1;
                    prog.last_due = pending.not_before.clone();
                    tx.set_notify_progress(&prog)?;
                    continue;
                }
            }
        }
        let json = serde_json::to_string(&p.event)
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        tx.outbox_insert(
            &p.event.id,
            &p.route,
            &p.event.incident.id,
            p.event.seq,
            p.event.kind.as_str(),
            &json,
            &time_text(p.not_before),
            &now_s,
        )?;
        tx.set_notify_progress(&p.progress)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stages::incidents::view::{CaseList, MemberCounts, Window};

    pub(crate) fn view(high: u64, low: u64, status: Status) -> IncidentView {
        let t = DateTime::parse_from_rfc3339("2026-12-01T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let members = MemberCounts {
            total: high + low,
            suppressed: 0,
            low,
            medium: 0,
            high,
            critical: 0,
        };
        IncidentView {
            id: "INC-test".into(),
            group: "default".into(),
            key: Vec::new(),
            window: Window {
                start: t,
                end: t,
                secs: 3600,
            },
            continues: None,
            first_alert_time: Some(t),
            last_alert_time: Some(t),
            bucket: members.highest(),
            highest_level: Some(12),
            critical: false,
            escalated_at: None,
            escalated_by: None,
            status,
            closes_at: t,
            cases: CaseList {
                count: high + low,
                ids: Some(Vec::new()),
                first: None,
                last: None,
            },
            agents: vec!["web-01".into()],
            summary: high > 0,
            members,
        }
    }

    fn route(kind: NotifyKind) -> RouteSpec {
        RouteSpec {
            name: "r".into(),
            kind,
            min_bucket: Bucket::High,
            matcher: None,
            update_every: Duration::from_secs(600),
        }
    }

    fn prog(members: u64, closed: bool) -> Progress {
        Progress {
            route: "r".into(),
            incident: "INC-test".into(),
            next_seq: 1,
            members,
            last_due: "2026-12-01T10:00:00.000Z".into(),
            closed,
        }
    }

    #[test]
    fn an_incident_opens_when_it_reaches_min_bucket_and_matches() {
        let r = route(NotifyKind::Webhook);
        let v = view(1, 0, Status::Open);
        assert_eq!(
            decide(&r, &v, Some(Bucket::High), true, None),
            Due::Open(MessageType::Opened)
        );
        assert_eq!(
            decide(&r, &v, Some(Bucket::High), false, None),
            Due::Nothing
        );
        assert_eq!(
            decide(&r, &view(0, 5, Status::Open), Some(Bucket::Low), true, None),
            Due::Nothing
        );
    }

    #[test]
    fn an_incident_that_started_low_is_escalated_for_the_route() {
        let r = route(NotifyKind::Slack);
        assert_eq!(
            decide(&r, &view(1, 4, Status::Open), Some(Bucket::Low), true, None),
            Due::Open(MessageType::Escalated)
        );
    }

    #[test]
    fn new_members_are_an_update_and_a_resolving_route_gets_closed_once() {
        let r = route(NotifyKind::Pagerduty);
        assert_eq!(
            decide(
                &r,
                &view(3, 0, Status::Open),
                None,
                true,
                Some(&prog(1, false))
            ),
            Due::Update
        );
        assert_eq!(
            decide(
                &r,
                &view(1, 0, Status::Open),
                None,
                true,
                Some(&prog(1, false))
            ),
            Due::Nothing
        );
        assert_eq!(
            decide(
                &r,
                &view(1, 0, Status::Closed),
                None,
                true,
                Some(&prog(1, false))
            ),
            Due::Close
        );
        assert_eq!(
            decide(
                &r,
                &view(2, 0, Status::Closed),
                None,
                true,
                Some(&prog(1, true))
            ),
            Due::Nothing
        );
        let w = route(NotifyKind::Webhook);
        assert_eq!(
            decide(
                &w,
                &view(1, 0, Status::Closed),
                None,
                true,
                Some(&prog(1, false))
            ),
            Due::Nothing
        );
    }

    #[test]
    fn updates_wait_for_update_every_after_the_last_message() {
        let r = route(NotifyKind::Webhook);
        let v = view(5, 0, Status::Open);
        let m = Material {
            view: &v,
            members: &[],
            sample: &[],
            first_doc: None,
            dir: "incidents/2026/12/01/INC-test".into(),
            summary: Vec::new(),
        };
        let now = DateTime::parse_from_rfc3339("2026-12-01T10:01:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let p = plan(&[r], &m, &[Some(prog(1, false))], now);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].event.kind, MessageType::Updated);
        assert_eq!(p[0].event.new_members, 4);
        assert_eq!(time_text(p[0].not_before), "2026-12-01T10:10:00.000Z");
        assert_eq!(p[0].event.id, message_id("r", "INC-test", 1));
    }

    #[test]
    fn message_ids_are_deterministic_and_have_no_dot() {
        let a = message_id("soc", "INC-1", 0);
        assert_eq!(a, message_id("soc", "INC-1", 0));
        assert_ne!(a, message_id("soc", "INC-1", 1));
        assert_ne!(a, message_id("so", "cINC-1", 0));
        assert!(a.starts_with("msg_") && !a.contains('.') && a.len() == 36);
    }
}
