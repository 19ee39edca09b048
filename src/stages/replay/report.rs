//! The replay report: the readable block (its last line the summary, [`Report::counters`]) and
//! the `--json` lines (one per changed alert, then the totals). Text from alerts and from the
//! ledger is escaped for a terminal here, in both forms (JSON escaping lets C1, bidi and
//! zero-width characters through).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;
use sf_policy::Bucket;

use super::compare::{Diff, Replayed, Rule, Side};
use crate::stages::{Counters, Report};
use crate::store::fsx::escape_text;

/// What a replay found.
#[derive(Debug, Clone, Default)]
pub struct ReplayReport {
    /// The period's start, RFC 3339 as the ledger writes it.
    pub since: String,
    pub bucket: Option<Bucket>,
    pub candidate_version: String,
    /// Rows of the period, every state.
    pub rows: u64,
    /// Rows before the period (left out).
    pub before_period: u64,
    /// Rows of the period that are not published cases, by state (not replayed).
    pub skipped: BTreeMap<String, u64>,
    /// Cases that could not be read or decided: case id, reason.
    pub unreadable: Vec<(String, String)>,
    pub guard_entries: u64,
    pub diff: Diff,
}

/// Which policies the report names.
pub struct Labels<'a> {
    /// The candidate policy file, as given.
    pub candidate: &'a str,
    /// The current policy (file and version, or "severity thresholds only"), when it was
    /// asked.
    pub current: Option<&'a str>,
    /// The guard file, when one was given.
    pub guard: Option<&'a str>,
}

/// How many case ids a readable list shows (`--json` has every alert).
const LISTED: usize = 20;

impl Report for ReplayReport {
    const NAME: &'static str = "replay";

    fn counters(&self) -> Counters {
        let d = &self.diff;
        let held_back = d
            .changed
            .iter()
            .filter(|c| {
                c.candidate
                    .held_back
                    .iter()
                    .any(|h| !c.stored.held_back.contains(h))
            })
            .count();
        Counters::from([
            ("replayed", d.replayed),
            ("changed", d.changed.len() as u64),
            ("lowered", d.lowered),
            ("raised", d.raised),
            ("left_high_or_medium", d.leaving_high_or_medium.len() as u64),
            ("newly_held_back", held_back as u64),
            ("regrouped", d.incidents.regrouped),
            ("skipped", self.skipped.values().sum()),
            ("unreadable", self.unreadable.len() as u64),
            ("guard_hits", d.guard_hits.len() as u64),
        ])
    }
}

/// `1 alert`, `2 alerts`.
fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn e(s: &str) -> String {
    escape_text(s)
}

fn opt(s: Option<&str>) -> String {
    s.map_or_else(|| "-".to_string(), e)
}

fn rule_of(s: &Side) -> String {
    s.matched
        .as_ref()
        .map_or_else(|| "severity".to_string(), |r| e(&r.to_string()))
}

/// Case ids, at most [`LISTED`] of them.
fn some_ids(ids: &[String]) -> String {
    let mut s = ids
        .iter()
        .take(LISTED)
        .map(|i| e(i))
        .collect::<Vec<_>>()
        .join(" ");
    if ids.len() > LISTED {
        let _ = write!(
            s,
            " ... and {} more (--json lists every alert)",
            ids.len() - LISTED
        );
    }
    s
}

impl ReplayReport {
    pub fn guard_hit(&self) -> bool {
        !self.diff.guard_hits.is_empty()
    }

    /// The readable report; its last line is the summary.
    pub fn block(&self, labels: &Labels<'_>) -> String {
        let d = &self.diff;
        let mut o = String::new();
        let scope = self.bucket.map_or_else(
            || "every bucket".to_string(),
            |b| format!("stored {b} only"),
        );
        let _ = writeln!(
            o,
            "replay: candidate {} (version {}) against the stored decisions of {}, alert time {} or later, {scope}",
            e(labels.candidate),
            self.candidate_version,
            count(d.replayed, "alert", "alerts"),
            self.since
        );
        let _ = writeln!(
            o,
            "  baseline: what is stored (each case's bucket, deciding rule and incident, as triage fixed them), not the current policy deciding again"
        );
        if let (Some(cur), Some(n)) = (labels.current, d.current_differs) {
            let _ = writeln!(
                o,
                "  the current policy ({}) would itself put {n} of these {} in another bucket than stored",
                e(cur),
                d.replayed
            );
        }
        let skipped: Vec<String> = self
            .skipped
            .iter()
            .map(|(k, v)| format!("{}={v}", e(k)))
            .collect();
        let _ = writeln!(
            o,
            "  not replayed: {} before the period; not published cases: {}; unreadable: {}",
            self.before_period,
            if skipped.is_empty() {
                "none".to_string()
            } else {
                skipped.join(" ")
            },
            self.unreadable.len()
        );
        for (id, why) in self.unreadable.iter().take(LISTED) {
            let _ = writeln!(o, "    unreadable {}: {}", opt(Some(id)), e(why));
        }
        o.push('\n');
        let _ = writeln!(o, "bucket transitions (rows: stored; columns: candidate):");
        let _ = write!(o, "  {:<12}", "");
        for b in Bucket::ALL {
            let _ = write!(o, " {:>10}", b.as_str());
        }
        o.push('\n');
        for (i, from) in Bucket::ALL.iter().enumerate() {
            let _ = write!(o, "  {:<12}", from.as_str());
            for n in d.transitions[i] {
                let _ = write!(o, " {n:>10}");
            }
            o.push('\n');
        }
        let _ = writeln!(
            o,
            "  changed: {} ({} lowered, {} raised, {} in rule or incident only)",
            count(d.changed.len() as u64, "alert", "alerts"),
            d.lowered,
            d.raised,
            d.changed.len() as u64 - d.lowered - d.raised
        );
        o.push('\n');
        if d.rules.is_empty() {
            let _ = writeln!(
                o,
                "rules: no override or signature would decide or hold back anything differently"
            );
        } else {
            let _ = writeln!(
                o,
                "rules (alerts each would decide or hold back, against the stored decisions):"
            );
        }
        for (r, x) in &d.rules {
            let _ = writeln!(
                o,
                "  {}  decides +{} -{}  held back +{} -{}",
                e(&r.to_string()),
                x.decides_added.len(),
                x.decides_removed.len(),
                x.held_back_added.len(),
                x.held_back_removed.len()
            );
            for (what, ids) in [
                ("+ decides", &x.decides_added),
                ("- decides", &x.decides_removed),
                ("+ held back", &x.held_back_added),
                ("- held back", &x.held_back_removed),
            ] {
                if !ids.is_empty() {
                    let _ = writeln!(o, "    {what:<11} {}", some_ids(ids));
                }
            }
        }
        o.push('\n');
        let _ = writeln!(
            o,
            "leaving high or medium: {}",
            count(d.leaving_high_or_medium.len() as u64, "alert", "alerts")
        );
        for i in &d.leaving_high_or_medium {
            let _ = writeln!(o, "  {}", alert_line(&d.changed[*i]));
        }
        o.push('\n');
        let i = &d.incidents;
        let _ = writeln!(
            o,
            "incidents (of the replayed alerts): {} stored, {} with the candidate; {} regrouped",
            i.before,
            i.after,
            count(i.regrouped, "alert", "alerts")
        );
        for ((from, to), n) in &i.highest {
            let _ = writeln!(
                o,
                "  highest bucket {from} -> {to}: {}",
                count(*n, "incident", "incidents")
            );
        }
        for (id, from, to) in &i.leaving_high_or_medium {
            let _ = writeln!(o, "  leaving high or medium: {} {from} -> {to}", e(id));
        }
        if let Some(g) = labels.guard {
            o.push('\n');
            let _ = writeln!(
                o,
                "guard {}: {}, {} of them among the replayed alerts (the others are not checked: outside the period or bucket, not triaged, or unknown)",
                e(g),
                count(self.guard_entries, "entry", "entries"),
                d.guard_checked
            );
            for i in &d.guard_hits {
                let c = &d.changed[*i];
                let _ = writeln!(
                    o,
                    "  GUARD HIT: {} ({}) would go {} -> {} by {}",
                    e(&c.case_id),
                    e(&c.row.alert_key),
                    c.stored.bucket,
                    c.candidate.bucket,
                    rule_of(&c.candidate)
                );
            }
        }
        o.push_str(&self.summary("OK"));
        o.push('\n');
        o
    }

    /// The `--json` lines: one object per changed alert (in the block's order), then the
    /// totals.
    pub fn json_lines(&self, labels: &Labels<'_>) -> Result<String, serde_json::Error> {
        let d = &self.diff;
        let guarded: std::collections::HashSet<usize> = d.guard_hits.iter().copied().collect();
        let mut o = String::new();
        for (i, c) in d.changed.iter().enumerate() {
            o.push_str(&serde_json::to_string(&ChangeLine::new(
                c,
                guarded.contains(&i),
            ))?);
            o.push('\n');
        }
        o.push_str(&serde_json::to_string(&self.totals(labels))?);
        o.push('\n');
        Ok(o)
    }

    fn totals(&self, labels: &Labels<'_>) -> TotalsLine {
        let d = &self.diff;
        let mut transitions = Vec::new();
        for (i, from) in Bucket::ALL.iter().enumerate() {
            for (j, to) in Bucket::ALL.iter().enumerate() {
                if d.transitions[i][j] > 0 {
                    transitions.push(Transition {
                        from: *from,
                        to: *to,
                        count: d.transitions[i][j],
                    });
                }
            }
        }
        let counters = self.counters().to_map();
        TotalsLine {
            kind: "totals",
            candidate: PolicyLine {
                file: e(labels.candidate),
                version: self.candidate_version.clone(),
            },
            baseline: "stored decisions",
            current_policy: labels.current.map(e),
            current_differs: d.current_differs,
            since: self.since.clone(),
            bucket: self.bucket,
            rows: self.rows,
            before_period: self.before_period,
            skipped: self.skipped.iter().map(|(k, v)| (e(k), *v)).collect(),
            unreadable: self
                .unreadable
                .iter()
                .map(|(id, why)| Unreadable {
                    case_id: e(id),
                    reason: e(why),
                })
                .collect(),
            counters,
            transitions,
            rules: d
                .rules
                .iter()
                .map(|(r, x)| RuleLine {
                    kind: r.kind,
                    id: e(&r.id),
                    decides_added: x.decides_added.len() as u64,
                    decides_removed: x.decides_removed.len() as u64,
                    held_back_added: x.held_back_added.len() as u64,
                    held_back_removed: x.held_back_removed.len() as u64,
                })
                .collect(),
            leaving_high_or_medium: d
                .leaving_high_or_medium
                .iter()
                .map(|i| e(&d.changed[*i].case_id))
                .collect(),
            incidents: IncidentsLine {
                stored: d.incidents.before,
                candidate: d.incidents.after,
                regrouped: d.incidents.regrouped,
                highest: d
                    .incidents
                    .highest
                    .iter()
                    .map(|((from, to), n)| Transition {
                        from: *from,
                        to: *to,
                        count: *n,
                    })
                    .collect(),
                leaving_high_or_medium: d
                    .incidents
                    .leaving_high_or_medium
                    .iter()
                    .map(|(id, ..)| e(id))
                    .collect(),
            },
            guard: labels.guard.map(|g| GuardLine {
                file: e(g),
                entries: self.guard_entries,
                checked: d.guard_checked,
                hits: d
                    .guard_hits
                    .iter()
                    .map(|i| e(&d.changed[*i].case_id))
                    .collect(),
            }),
        }
    }
}

/// One readable line for a changed alert.
fn alert_line(c: &Replayed) -> String {
    let mut s = format!(
        "{}  {} -> {}  level {}  rule {}  agent {}  by {}",
        e(&c.case_id),
        c.stored.bucket,
        c.candidate.bucket,
        c.row
            .level
            .map_or_else(|| "-".to_string(), |l| l.to_string()),
        opt(c.row.rule_id.as_deref()),
        opt(c.row.agent.as_deref()),
        rule_of(&c.candidate)
    );
    if !c.candidate.held_back.is_empty() {
        let _ = write!(s, " (held back: {})", e(&c.candidate.held_back.join(", ")));
    }
    if let Some(desc) = &c.row.description {
        let _ = write!(s, "  \"{}\"", e(desc));
    }
    s
}

/// A decision in a `--json` line.
#[derive(Debug, Serialize)]
struct SideLine {
    bucket: Bucket,
    matched: Option<String>,
    matched_kind: Option<&'static str>,
    held_back: Vec<String>,
    incident: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    policy_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expired: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    critical: Option<bool>,
}

impl SideLine {
    fn new(s: &Side) -> SideLine {
        SideLine {
            bucket: s.bucket,
            matched: s.matched.as_ref().map(|r: &Rule| e(&r.id)),
            matched_kind: s.matched.as_ref().map(|r| r.kind),
            held_back: s.held_back.iter().map(|h| e(h)).collect(),
            incident: s.incident.as_deref().map(e),
            policy_version: None,
            expired: None,
            critical: None,
        }
    }
}

/// One changed alert of `--json`.
#[derive(Debug, Serialize)]
struct ChangeLine {
    kind: &'static str,
    case_id: String,
    alert_key: String,
    alert_time: String,
    rule_id: Option<String>,
    level: Option<i64>,
    agent: Option<String>,
    description: Option<String>,
    lowered: bool,
    guard_hit: bool,
    stored: SideLine,
    candidate: SideLine,
}

impl ChangeLine {
    fn new(c: &Replayed, guard_hit: bool) -> ChangeLine {
        let mut stored = SideLine::new(&c.stored);
        stored.policy_version = c.stored_policy.as_deref().map(e);
        let mut candidate = SideLine::new(&c.candidate);
        candidate.expired = Some(c.candidate_expired.iter().map(|x| e(x)).collect());
        candidate.critical = Some(c.candidate_critical);
        ChangeLine {
            kind: "change",
            case_id: e(&c.case_id),
            alert_key: e(&c.row.alert_key),
            alert_time: e(&c.row.alert_time),
            rule_id: c.row.rule_id.as_deref().map(e),
            level: c.row.level,
            agent: c.row.agent.as_deref().map(e),
            description: c.row.description.as_deref().map(e),
            lowered: c.lowered(),
            guard_hit,
            stored,
            candidate,
        }
    }
}

#[derive(Debug, Serialize)]
struct PolicyLine {
    file: String,
    version: String,
}

#[derive(Debug, Serialize)]
struct Transition {
    from: Bucket,
    to: Bucket,
    count: u64,
}

#[derive(Debug, Serialize)]
struct RuleLine {
    kind: &'static str,
    id: String,
    decides_added: u64,
    decides_removed: u64,
    held_back_added: u64,
    held_back_removed: u64,
}

#[derive(Debug, Serialize)]
struct IncidentsLine {
    stored: u64,
    candidate: u64,
    regrouped: u64,
    highest: Vec<Transition>,
    leaving_high_or_medium: Vec<String>,
}

#[derive(Debug, Serialize)]
struct GuardLine {
    file: String,
    entries: u64,
    checked: u64,
    hits: Vec<String>,
}

#[derive(Debug, Serialize)]
struct Unreadable {
    case_id: String,
    reason: String,
}

/// The last `--json` line.
#[derive(Debug, Serialize)]
struct TotalsLine {
    kind: &'static str,
    candidate: PolicyLine,
    baseline: &'static str,
    current_policy: Option<String>,
    current_differs: Option<u64>,
    since: String,
    bucket: Option<Bucket>,
    rows: u64,
    before_period: u64,
    skipped: BTreeMap<String, u64>,
    unreadable: Vec<Unreadable>,
    counters: BTreeMap<String, u64>,
    transitions: Vec<Transition>,
    rules: Vec<RuleLine>,
    leaving_high_or_medium: Vec<String>,
    incidents: IncidentsLine,
    guard: Option<GuardLine>,
}
