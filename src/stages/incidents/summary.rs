//! An incident's `summary.md` (for an incident with a high member): the page an analyst reads
//! first — what the repeated alerts are (rules, ATT&CK, the group and its key), on which host,
//! over what span and at what rate, how many members per bucket, when it was raised to high, the
//! timeline of the first members, the observables they share, links to the members' escalation
//! packs and what to check next.
//!
//! Design constraints:
//! - Pure: [`render`] takes the view, the first members and the alerts of the first members
//!   (the caller reads them) and returns the text; no IO, no clock.
//! - The same escaping as a pack's `summary.md` (`escalate::summary`): every string from the
//!   alerts, the ledger or the view (ids, group, key fields and values, agents, aliases, rule
//!   ids, descriptions, case ids, observable values and fields) goes through [`escape_inline`]
//!   (one code span) or, inside the timeline's fenced block, [`escape_plain`]; both escape
//!   control characters and defang URLs, domains, IPs and e-mail addresses. Only this module's
//!   own words, numbers and times it formatted are plain Markdown, and no line starts with alert
//!   text.
//! - The only links are to the members' packs: `../../../../../escalations/<case id>/summary.md`
//!   (the incident's directory is `incidents/YYYY/MM/DD/<id>/`, five levels below the state
//!   root), and only for a member whose pack is published (`packed`) and whose case id passes
//!   an allow-list ([`is_pack_id`]: `SF-` then ASCII letters, digits and `-`). Any other case id
//!   is shown as a code span, never linked.
//! - Bounded: at most [`TIMELINE_MAX`] members in the timeline and [`SAMPLE_MAX`] alerts
//!   tallied, whatever the caller passes; lists are cut and say how many more there are.
//! - Nothing panics on strange input: every alert field is optional, any JSON type is accepted,
//!   a zero or unknown time span gives no rate rather than a division by zero.
//!
//! Layout: this file renders the page; [`tally`] counts what the sampled alerts share.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::view::{IncidentView, MemberRef, Status};
use crate::stages::escalate::markdown::{
    columns, escape_inline, escape_inline_fields, escape_name, escape_plain, fence_escaped,
    truncate_chars,
};
use crate::stages::escalate::summary::{kind_of, next_steps, AlertKind};

mod tally;

/// Members shown in the timeline.
pub const TIMELINE_MAX: usize = 50;
/// Alerts of the first members tallied for rules, ATT&CK and observables.
pub const SAMPLE_MAX: usize = 200;

/// Rules listed under "What happened".
const RULES_SHOWN: usize = 10;
/// Observables listed.
const OBSERVABLES_SHOWN: usize = 40;
/// Items shown of a list (agents, aliases, key fields, techniques, tactics).
const LIST_SHOWN: usize = 20;
/// From the incident's directory (`incidents/YYYY/MM/DD/<id>/`) to the state root.
const TO_STATE_ROOT: &str = "../../../../..";

/// Everything an incident's `summary.md` is built from. The caller does the lookups.
#[derive(Debug, Clone, Copy)]
pub struct SummaryInput<'a> {
    pub incident: &'a IncidentView,
    /// The first members by (alert_time, case_id), at most [`TIMELINE_MAX`] (more are ignored).
    pub timeline: &'a [MemberRef],
    /// The alerts (`alert.json` objects) of the first members, at most [`SAMPLE_MAX`] (more
    /// are ignored), for observables, rules and ATT&CK.
    pub sample: &'a [Map<String, Value>],
    /// Other agent names that map to the canonical host (policy aliases), may be empty.
    pub aliases: &'a [String],
}

/// True when `case_id` may be put into a link: `SF-` then one or more ASCII letters, digits
/// and `-` (the shape of every case id SignalFoundry makes). An allow-list, so no path
/// separator, dot, space, bracket, parenthesis or control character can reach a destination.
pub fn is_pack_id(case_id: &str) -> bool {
    case_id.strip_prefix("SF-").is_some_and(|rest| {
        !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    })
}

/// The link destination of a member's pack summary, relative to the incident's `summary.md`;
/// `None` unless [`is_pack_id`].
pub fn pack_href(case_id: &str) -> Option<String> {
    is_pack_id(case_id).then(|| format!("{TO_STATE_ROOT}/escalations/{case_id}/summary.md"))
}

fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string()
}

/// `1 h 2 min 3 s`, `58 s`, `0 s`.
fn duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3_600 % 24, secs / 60 % 60, secs % 60);
    let mut parts = Vec::new();
    if d > 0 {
        parts.push(format!("{d} d"));
    }
    if h > 0 {
        parts.push(format!("{h} h"));
    }
    if m > 0 {
        parts.push(format!("{m} min"));
    }
    if s > 0 || parts.is_empty() {
        parts.push(format!("{s} s"));
    }
    parts.join(" ")
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The members per minute over the span from the first to the last alert time, as text;
/// `None` when there is no span to divide by (one member, times unknown, all at one instant).
fn rate(view: &IncidentView) -> Option<String> {
    let (first, last) = (view.first_alert_time?, view.last_alert_time?);
    let ms = (last - first).num_milliseconds();
    if ms <= 0 || view.members.total < 2 {
        return None;
    }
    let per_min = view.members.total as f64 * 60_000.0 / ms as f64;
    if !per_min.is_finite() {
        return None;
    }
    Some(if per_min >= 10.0 {
        format!("{per_min:.1}")
    } else {
        format!("{per_min:.2}")
    })
}

fn list_md(items: &[String]) -> String {
    let mut parts: Vec<String> = items
        .iter()
        .take(LIST_SHOWN)
        .map(|s| escape_inline(s))
        .collect();
    if items.len() > LIST_SHOWN {
        parts.push(format!("and {} more", items.len() - LIST_SHOWN));
    }
    parts.join(", ")
}

struct Page {
    out: String,
}

impl Page {
    fn line(&mut self, s: &str) {
        self.out.push_str(s);
        self.out.push('\n');
    }

    fn blank(&mut self) {
        self.out.push('\n');
    }

    fn h2(&mut self, title: &str) {
        self.blank();
        self.line(&format!("## {title}"));
        self.blank();
    }
}

/// Renders the incident's `summary.md`.
pub fn render(input: &SummaryInput<'_>) -> String {
    let view = input.incident;
    let timeline = &input.timeline[..input.timeline.len().min(TIMELINE_MAX)];
    let sample = &input.sample[..input.sample.len().min(SAMPLE_MAX)];
    let mut p = Page {
        out: String::with_capacity(16 * 1024),
    };
    let bucket = view
        .bucket
        .or_else(|| view.members.highest())
        .map_or("unknown", |b| b.as_str());
    let level_txt = view
        .highest_level
        .map_or_else(|| "unknown".to_string(), |l| l.to_string());
    let host = match view.agents.as_slice() {
        [] => "an unknown host".to_string(),
        [one] => format!("host {}", escape_name(one)),
        many => format!("{} hosts", many.len()),
    };
    let rules = tally::rules(sample, timeline);

    // Title and the gist.
    p.line(&format!(
        "# Incident {} — {bucket}",
        escape_inline(&view.id)
    ));
    p.blank();
    let severity = if view.critical {
        format!("**CRITICAL** (highest bucket {bucket}, highest level {level_txt})")
    } else {
        format!("**{bucket}** (highest level {level_txt}, under Wazuh's critical level 15)")
    };
    let what = rules
        .first()
        .and_then(|r| r.item.description.as_deref())
        .map_or_else(|| "Repeated alerts".to_string(), escape_inline);
    p.line(&format!(
        "**What:** {what} — {} on {host}{} — {severity}, {}.",
        plural(view.members.total, "alert", "alerts"),
        match (view.first_alert_time, view.last_alert_time) {
            (Some(f), Some(l)) if f == l => format!(", at {}", time(f)),
            (Some(f), Some(l)) => format!(", from {} to {}", time(f), time(l)),
            _ => String::new(),
        },
        view.status.as_str(),
    ));

    what_happened(&mut p, input, sample, &rules);
    where_section(&mut p, input);
    when_section(&mut p, view);
    members_section(&mut p, view);
    timeline_section(&mut p, view, timeline);
    packs_section(&mut p, view, timeline);
    observables_section(&mut p, sample);
    next_section(&mut p, view, sample);

    p.h2("About this page");
    p.line(&format!(
        "- **Files:** `incident.json` beside it (the incident as the ledger has it: counts, \
         window, all member case ids); each member's pack is `escalations/<case id>/` below the \
         state root{}.",
        if view.cases.count > 0 {
            format!(" ({} listed)", plural(view.cases.count, "case", "cases"))
        } else {
            String::new()
        }
    ));
    p.line(
        "- Text from the alerts and the ledger is shown inside code, with control characters \
         escaped (`\\u{..}`) and URLs, domains, IPs and e-mail addresses defanged (`hxxp://`, \
         `[.]`, `[:]` in IPv6, `[@]`); re-fang by hand only what you mean to open. The only \
         links are to the members' packs.",
    );
    p.out
}

fn what_happened(
    p: &mut Page,
    input: &SummaryInput<'_>,
    sample: &[Map<String, Value>],
    rules: &[tally::Counted<tally::Rule>],
) {
    let view = input.incident;
    p.h2("What happened");
    let of = if sample.is_empty() {
        let n: usize = rules.iter().map(|r| r.count).sum();
        format!("{n} {} shown", if n == 1 { "member" } else { "members" })
    } else {
        let n = sample.len();
        format!("{n} sampled {}", if n == 1 { "alert" } else { "alerts" })
    };
    if rules.is_empty() {
        p.line("- **Rule:** no member or alert is known yet.");
    }
    for r in rules.iter().take(RULES_SHOWN) {
        p.line(&format!(
            "- **Rule:** {}{} (in {} of the {of})",
            r.item
                .id
                .as_deref()
                .map_or_else(|| "(no rule id)".to_string(), escape_inline),
            r.item
                .description
                .as_deref()
                .map_or_else(String::new, |d| format!(" — {}", escape_inline(d))),
            r.count,
        ));
    }
    if rules.len() > RULES_SHOWN {
        p.line(&format!(
            "- … and {} more rules.",
            rules.len() - RULES_SHOWN
        ));
    }
    let (techniques, tactics) = tally::mitre(sample);
    if techniques.is_empty() && tactics.is_empty() {
        p.line("- **ATT&CK:** no technique on the sampled alerts' rules.");
    }
    for t in techniques.iter().take(LIST_SHOWN) {
        let id = t.item.0.as_deref().map(escape_inline);
        let name = t.item.1.as_deref().map(escape_inline);
        let txt = match (id, name) {
            (Some(id), Some(name)) => format!("{id} {name}"),
            (Some(x), None) | (None, Some(x)) => x,
            (None, None) => continue,
        };
        p.line(&format!(
            "- **Technique:** {txt} (in {})",
            plural(t.count as u64, "alert", "alerts")
        ));
    }
    if techniques.len() > LIST_SHOWN {
        p.line(&format!(
            "- … and {} more techniques.",
            techniques.len() - LIST_SHOWN
        ));
    }
    if !tactics.is_empty() {
        let shown: Vec<String> = tactics
            .iter()
            .take(LIST_SHOWN)
            .map(|t| format!("{} ({})", escape_inline(&t.item), t.count))
            .collect();
        let more = tactics.len().saturating_sub(LIST_SHOWN);
        p.line(&format!(
            "- **Tactics:** {}{}",
            shown.join(", "),
            if more > 0 {
                format!(", and {more} more")
            } else {
                String::new()
            }
        ));
    }
    if let Some(first) = sample.first() {
        let kind = kind_of(first);
        let same = sample.iter().all(|a| kind_of(a) == kind);
        p.line(&format!(
            "- **Kind:** {}{}",
            kind.title(),
            if same {
                ""
            } else {
                " (of the first sampled alert; the others differ)"
            }
        ));
    }
    p.line(&format!(
        "- **Grouped by:** rule {} of the policy's grouping",
        escape_inline(&view.group)
    ));
    if view.key.is_empty() {
        p.line("- **Key:** none (every alert of the group in the window)");
    }
    for k in view.key.iter().take(LIST_SHOWN) {
        p.line(&format!(
            "- **Key field** {}: {}",
            escape_inline_fields(&k.field),
            k.value
                .as_deref()
                .map_or_else(|| "(missing)".to_string(), escape_inline)
        ));
    }
    if view.key.len() > LIST_SHOWN {
        p.line(&format!(
            "- … and {} more key fields.",
            view.key.len() - LIST_SHOWN
        ));
    }
}

fn where_section(p: &mut Page, input: &SummaryInput<'_>) {
    let view = input.incident;
    p.h2("Where");
    match view.agents.as_slice() {
        [] => p.line("- **Host:** not known"),
        [one] => p.line(&format!(
            "- **Host (canonical name):** {}",
            escape_name(one)
        )),
        many => p.line(&format!(
            "- **Hosts (canonical names, {}):** {}",
            many.len(),
            list_md(many)
        )),
    }
    if !input.aliases.is_empty() {
        p.line(&format!("- **Also known as:** {}", list_md(input.aliases)));
    }
}

fn when_section(p: &mut Page, view: &IncidentView) {
    p.h2("When");
    let fmt = |t: Option<DateTime<Utc>>| t.map_or_else(|| "not known".to_string(), time);
    p.line(&format!(
        "- **First alert (UTC):** {}",
        fmt(view.first_alert_time)
    ));
    p.line(&format!(
        "- **Last alert (UTC):** {}",
        fmt(view.last_alert_time)
    ));
    let span = match (view.first_alert_time, view.last_alert_time) {
        (Some(f), Some(l)) => {
            let secs = (l - f).num_seconds();
            u64::try_from(secs).ok()
        }
        _ => None,
    };
    match (span, rate(view)) {
        (Some(s), Some(r)) => p.line(&format!(
            "- **Span:** {}; **rate:** {r} alerts per minute",
            duration(s)
        )),
        (Some(s), None) => p.line(&format!(
            "- **Span:** {}; no rate ({})",
            duration(s),
            if view.members.total < 2 {
                "a single alert"
            } else {
                "all at one instant"
            }
        )),
        (None, _) => p.line("- **Span:** not known; no rate"),
    }
    p.line(&format!(
        "- **Window:** {} to {} ({})",
        time(view.window.start),
        time(view.window.end),
        duration(view.window.secs)
    ));
    match view.status {
        Status::Open => p.line(&format!(
            "- **Status:** open; alerts of the same key join it until it closes at {}",
            time(view.closes_at)
        )),
        Status::Closed => p.line(&format!(
            "- **Status:** closed (at {})",
            time(view.closes_at)
        )),
    }
    if let Some(prev) = &view.continues {
        p.line(&format!(
            "- **Continues:** incident {}, the same key in the window before",
            escape_inline(prev)
        ));
    }
}

fn members_section(p: &mut Page, view: &IncidentView) {
    let m = &view.members;
    p.h2("Members");
    p.line(&format!(
        "- **Total:** {}: high {}, medium {}, low {}, suppressed {}",
        m.total, m.high, m.medium, m.low, m.suppressed
    ));
    p.line(&format!(
        "- **Critical:** {}",
        if m.critical > 0 {
            format!(
                "**{}** (level 15 or more, or marked by the policy)",
                m.critical
            )
        } else {
            "none".to_string()
        }
    ));
    match (view.escalated_at, view.escalated_by.as_deref()) {
        (Some(t), Some(by)) => p.line(&format!(
            "- **Escalation:** raised to high at {} by case {}, after members of lower buckets",
            time(t),
            escape_inline(by)
        )),
        (Some(t), None) => p.line(&format!(
            "- **Escalation:** raised to high at {}, after members of lower buckets",
            time(t)
        )),
        (None, Some(by)) => p.line(&format!(
            "- **Escalation:** raised to high by case {}, after members of lower buckets",
            escape_inline(by)
        )),
        (None, None) => {}
    }
}

fn timeline_section(p: &mut Page, view: &IncidentView, timeline: &[MemberRef]) {
    p.h2("Timeline");
    if timeline.is_empty() {
        p.line("No member is known yet.");
        return;
    }
    let more = view.members.total.saturating_sub(timeline.len() as u64);
    p.line(&format!(
        "The first {} by alert time{}:",
        plural(timeline.len() as u64, "member", "members"),
        if more > 0 {
            format!(" ({more} more not shown; all case ids are in `incident.json`)")
        } else {
            String::new()
        }
    ));
    p.blank();
    let cell = |s: &str, max: usize| {
        let (cut, truncated) = truncate_chars(s, max);
        let mut c = escape_plain(cut);
        if truncated {
            c.push('…');
        }
        c
    };
    let mut rows: Vec<[String; 7]> = vec![[
        "time".into(),
        "case".into(),
        "bucket".into(),
        "level".into(),
        "rule".into(),
        "agent".into(),
        "pack".into(),
    ]];
    for m in timeline {
        rows.push([
            time(m.alert_time),
            cell(&m.case_id, 48),
            m.bucket.as_str().into(),
            m.level.map_or_else(|| "-".into(), |l| l.to_string()),
            m.rule_id
                .as_deref()
                .map_or_else(|| "-".into(), |x| cell(x, 12)),
            cell(&m.agent, 40),
            if m.packed { "yes" } else { "-" }.into(),
        ]);
    }
    p.out.push_str(&fence_escaped(&columns(&rows)));
    if more > 0 {
        p.blank();
        p.line(&format!(
            "… and {}.",
            plural(more, "more member", "more members")
        ));
    }
}

fn packs_section(p: &mut Page, view: &IncidentView, timeline: &[MemberRef]) {
    p.h2("Escalation packs");
    let packed: Vec<&MemberRef> = timeline.iter().filter(|m| m.packed).collect();
    if packed.is_empty() {
        p.line("- None of the members shown has a published pack.");
    }
    for m in packed {
        let about = format!(
            "{}, level {}, at {}",
            m.bucket.as_str(),
            m.level
                .map_or_else(|| "unknown".to_string(), |l| l.to_string()),
            time(m.alert_time)
        );
        match pack_href(&m.case_id) {
            Some(href) => p.line(&format!("- [{}]({href}) — {about}", m.case_id)),
            None => p.line(&format!(
                "- case {} — {about} (its id is not a plain `SF-` id, so it is not linked: find \
                 its pack under `escalations/` by hand)",
                escape_inline(&m.case_id)
            )),
        }
    }
    if view.members.total > timeline.len() as u64 {
        p.line(
            "- Packs of the members not shown are under `escalations/<case id>/`; the case ids \
             are in `incident.json`.",
        );
    }
}

fn observables_section(p: &mut Page, sample: &[Map<String, Value>]) {
    p.h2("Indicators (defanged; raw values in each member's observables.json)");
    if sample.is_empty() {
        p.line("- No member alert was read for this page.");
        return;
    }
    let all = tally::observed(sample);
    if all.is_empty() {
        p.line(&format!(
            "- None found in the {} sampled.",
            plural(sample.len() as u64, "alert", "alerts")
        ));
        return;
    }
    p.line(&format!(
        "{} distinct in the first {}, each with the number of those alerts that carry it:",
        all.len(),
        plural(sample.len() as u64, "member alert", "member alerts")
    ));
    p.blank();
    // The most frequent, then listed grouped by kind.
    let mut shown: Vec<&tally::Counted<tally::Seen>> = all.iter().take(OBSERVABLES_SHOWN).collect();
    shown.sort_by(|a, b| {
        a.item
            .kind
            .cmp(&b.item.kind)
            .then(b.count.cmp(&a.count))
            .then_with(|| a.item.value.cmp(&b.item.value))
    });
    for o in shown {
        p.line(&format!(
            "- {} {} in {} (first from {})",
            o.item.kind.as_str(),
            escape_inline(&o.item.value),
            plural(o.count as u64, "alert", "alerts"),
            escape_inline_fields(&o.item.field)
        ));
    }
    if all.len() > OBSERVABLES_SHOWN {
        p.line(&format!(
            "- … and {} more (less frequent) in the members' `observables.json`.",
            all.len() - OBSERVABLES_SHOWN
        ));
    }
}

fn next_section(p: &mut Page, view: &IncidentView, sample: &[Map<String, Value>]) {
    p.h2("What to check next");
    let mut steps: Vec<String> = vec![
        "Open the first high member's pack (linked above) and decide whether that alert is a true \
         positive; the other members repeat it, so one verdict usually covers most of them."
            .into(),
        "Is the repetition expected here (a scanner, a backup or deployment job, a monitoring \
         probe)? Compare the rate and the span above with what this host usually produces."
            .into(),
        "Look for the same rule and indicators on other hosts, and for what followed the last \
         member: a success after failures, a new process, a change."
            .into(),
    ];
    if let Some(prev) = &view.continues {
        steps.push(format!(
            "Read incident {} too: the activity began in the window before this one.",
            escape_inline(prev)
        ));
    }
    if view.status == Status::Open {
        steps.push(format!(
            "The incident is still open: new members join it until {}; read this page again then.",
            time(view.closes_at)
        ));
    }
    for (i, s) in steps.iter().enumerate() {
        p.line(&format!("{}. {s}", i + 1));
    }
    let kind = sample.first().map(kind_of);
    match kind {
        Some(k) if k != AlertKind::Other && sample.iter().all(|a| kind_of(a) == k) => {
            p.blank();
            p.line(&format!(
                "For alerts of this kind, {}, as each member's pack says (the sections named are \
                 the pack's):",
                k.title()
            ));
            p.blank();
            for (i, s) in next_steps(k).iter().enumerate() {
                p.line(&format!("{}. {s}", i + 1));
            }
        }
        Some(_) => {
            p.blank();
            p.line(
                "The members are of several kinds, or of no known kind: each pack's own \
                 `summary.md` lists the steps for its alert.",
            );
        }
        None => {}
    }
}

#[cfg(test)]
mod tests;
