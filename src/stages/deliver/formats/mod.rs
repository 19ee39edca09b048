//! Each kind's wire format, rendered from an `Event` (pure: no IO, no clock).
//!
//! Design constraints:
//! - Pure: every renderer takes the [`Event`] and its kind's small `Options` and returns the
//!   body to send (JSON, or an e-mail's subject and parts). No IO, no clock, no randomness:
//!   the same event renders the same bytes on every retry. Secrets never enter a rendered
//!   body: the sender adds PagerDuty's `routing_key` ([`pagerduty::with_routing_key`]) and
//!   signs the webhook ([`webhook::sign`]) at send time.
//! - Alert text is hostile. Every string that came from an alert (the title, the summary,
//!   agents, key values, observables, fields) is first made [`inert`] for display: control
//!   characters, bidi overrides and zero-width characters escaped (`\u{1b}`, `\n`), URLs,
//!   domains, IPs and e-mail addresses defanged (`hxxp://`, `[.]`, `[@]`), both by the helpers
//!   `summary.md` uses (`escalate::markdown`), and `<`/`>` turned into `‹`/`›`, `](` and `]:`
//!   broken by a space, so that neither HTML, an autolink, a Slack link or mention, nor a
//!   Markdown link or image can come out of it whatever renders it (a receiver's own
//!   renderer, a bridge to a chat). Then it is escaped for its medium:
//!   - Slack: `&`, `<`, `>` as entities, in `plain_text` objects (no mrkdwn formatting); the
//!     mrkdwn fallback also loses `*_~` and backticks and `@` (see [`slack`]).
//!   - Teams (Adaptive Card Markdown subset): Markdown punctuation backslash-escaped, `&<>` as
//!     entities, a leading list marker escaped (see [`teams`]).
//!   - TheHive and IRIS descriptions (Markdown): each value in one code span or fenced block
//!     it cannot close (`escalate::markdown::escape_inline`, `fence_escaped`).
//!   - E-mail HTML: `& < > " '` as entities; the only `<a>` is the configured console link.
//!   - Plain-text fields (the webhook's title and summary, an e-mail's subject and text part,
//!     PagerDuty's summary and details, the case tools' titles, tags and context): as they
//!     are, inert.
//!
//!   Only this module's own words, numbers and times are unescaped. Machine fields keep the
//!   raw values with only their control characters escaped, because receivers match on them:
//!   the webhook's `incident`, `observables` and `pack`, IRIS's `alert_source_content` and
//!   asset names, the case tools' observable values ([`escape_strings`], [`case_value`]).
//! - Bounded: every text is cut to its vendor's limit (counted in UTF-16 code units, which is
//!   never fewer than characters), at a character boundary and never inside an escape, and
//!   marked with `…`; lists are cut and say how many more there were. Renderers whose limit is
//!   on the whole body (webhook 20 KB, Teams 28 KB) try [`Budget::LEVELS`] from the most
//!   generous down until the body fits; the last level fits whatever the event holds.
//! - Sources: `/work/shared/research/wave2-peers.md` sections 2 and 3 (Slack Block Kit, Teams
//!   Workflows cards, Standard Webhooks 1.0, lettre, PagerDuty Events API v2, TheHive 5
//!   `POST /api/v1/alert`, DFIR-IRIS `POST /alerts/add`); each module names what it relies on.
//!
//! Layout: this file holds what the formats share (the severity [`Level`], the incident's
//! [`facts`], text helpers, the Markdown description of the case tools, the thinned incident);
//! one module a kind.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

use super::event::{Event, MessageType};
use crate::stages::escalate::markdown::{
    columns, escape_controls, escape_inline, escape_plain, fence_escaped, must_escape,
    truncate_chars,
};
use crate::stages::incidents::view::{IncidentView, Status};
use sf_policy::Bucket;

pub mod digest;
pub mod email;
pub mod iris;
pub mod pagerduty;
pub mod slack;
pub mod teams;
pub mod thehive;
pub mod webhook;

/// Marks a cut text or list.
pub const CUT: char = '…';

/// How serious an incident is, on the scale every vendor mapping starts from: the incident's
/// bucket, or `Critical` when a member is critical. An incident without a known bucket counts
/// as `Low`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Suppressed,
    Low,
    Medium,
    High,
    Critical,
}

impl Level {
    pub fn of(view: &IncidentView) -> Level {
        if view.critical || view.members.critical > 0 {
            return Level::Critical;
        }
        match view.bucket.or_else(|| view.members.highest()) {
            Some(Bucket::Suppressed) => Level::Suppressed,
            Some(Bucket::Low) | None => Level::Low,
            Some(Bucket::Medium) => Level::Medium,
            Some(Bucket::High) => Level::High,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Suppressed => "suppressed",
            Level::Low => "low",
            Level::Medium => "medium",
            Level::High => "high",
            Level::Critical => "critical",
        }
    }

    /// Upper case, for headlines.
    pub fn shout(self) -> &'static str {
        match self {
            Level::Suppressed => "SUPPRESSED",
            Level::Low => "LOW",
            Level::Medium => "MEDIUM",
            Level::High => "HIGH",
            Level::Critical => "CRITICAL",
        }
    }
}

/// How much of the event a body shows. Renderers with a limit on the whole body try
/// [`Budget::LEVELS`] in order; the others use the first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Characters of the summary, all lines together.
    pub summary_chars: usize,
    /// Lines of the summary.
    pub summary_lines: usize,
    /// Observables listed.
    pub observables: usize,
    /// Items of a list (agents, key fields, packs).
    pub items: usize,
    /// Characters of one value (a title, an agent, a key value, an observable).
    pub value_chars: usize,
}

impl Budget {
    pub const LEVELS: [Budget; 4] = [
        Budget {
            summary_chars: 6_000,
            summary_lines: 60,
            observables: 50,
            items: 20,
            value_chars: 300,
        },
        Budget {
            summary_chars: 3_000,
            summary_lines: 30,
            observables: 20,
            items: 10,
            value_chars: 200,
        },
        Budget {
            summary_chars: 1_000,
            summary_lines: 10,
            observables: 5,
            items: 5,
            value_chars: 100,
        },
        Budget {
            summary_chars: 200,
            summary_lines: 3,
            observables: 0,
            items: 2,
            value_chars: 60,
        },
    ];

    pub fn full() -> Budget {
        Budget::LEVELS[0]
    }
}

/// Length as vendors count it, in UTF-16 code units (never fewer than characters).
pub fn units(s: &str) -> usize {
    s.chars().map(char::len_utf16).sum()
}

/// Already escaped text cut to at most `max` UTF-16 units, ending in [`CUT`] when cut.
pub fn clip(s: &str, max: usize) -> String {
    if units(s) <= max {
        return s.to_string();
    }
    let mut out = String::with_capacity(max.min(s.len()) + 3);
    let mut used = 0;
    for c in s.chars() {
        if used + c.len_utf16() + 1 > max {
            break;
        }
        used += c.len_utf16();
        out.push(c);
    }
    if max > 0 {
        out.push(CUT);
    }
    out
}

/// Escapes `text` one character at a time with `esc` (which appends the escaped form), into at
/// most `max` UTF-16 units: a cut never splits an escape, and ends in [`CUT`].
pub fn escape_within(text: &str, max: usize, esc: impl Fn(char, &mut String)) -> String {
    let mut out = String::with_capacity(text.len().min(max.saturating_mul(2)) + 8);
    let mut piece = String::new();
    let mut used = 0;
    // The length of `out` at the last point where a [`CUT`] still fits after it.
    let mut safe_len = 0;
    for c in text.chars() {
        piece.clear();
        esc(c, &mut piece);
        let n = units(&piece);
        if used + n > max {
            out.truncate(safe_len);
            if max > 0 {
                out.push(CUT);
            }
            return out;
        }
        used += n;
        out.push_str(&piece);
        if used < max {
            safe_len = out.len();
        }
    }
    out
}

/// Raw alert text as one line of inert plain text: control characters escaped, IOCs
/// defanged (`escape_plain`), at most `max` UTF-16 units. A huge input is cut before it is
/// escaped (escaping never shortens text, so the cut is still seen).
pub fn plain(s: &str, max: usize) -> String {
    let (raw, _) = truncate_chars(s, max.saturating_add(1));
    clip(&escape_plain(raw), max)
}

/// [`plain`], and safe in any renderer: `<` and `>` become `‹` and `›` (no HTML, autolink,
/// Slack link or mention), `](` becomes `] (` and `]:` becomes `] :` (no Markdown link, image
/// or link definition). For plain-text fields whose receiver may render them.
pub fn inert(s: &str, max: usize) -> String {
    let (raw, _) = truncate_chars(s, max.saturating_add(1));
    clip(&neutralise(&escape_plain(raw)), max)
}

/// What [`inert`] adds to [`plain`] text: `<>` as `‹›`, `](` and `]:` broken by a space.
pub fn neutralise(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    let mut prev_bracket = false;
    for c in s.chars() {
        match c {
            '<' => out.push('‹'),
            '>' => out.push('›'),
            '(' | ':' if prev_bracket => {
                out.push(' ');
                out.push(c);
            }
            c => out.push(c),
        }
        prev_bracket = c == ']';
    }
    out
}

/// A time as the formats show it: `2024-05-01 12:00:00 UTC`.
pub fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// A time as JSON bodies carry it: RFC 3339 with milliseconds, `Z`.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `1 h 2 min`, `58 s`.
pub fn duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3_600 % 24, secs / 60 % 60, secs % 60);
    let parts: Vec<String> = [(d, "d"), (h, "h"), (m, "min"), (s, "s")]
        .into_iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, u)| format!("{n} {u}"))
        .collect();
    if parts.is_empty() {
        "0 s".to_string()
    } else {
        parts.join(" ")
    }
}

/// What the message says happened, in words.
pub fn kind_words(kind: MessageType) -> &'static str {
    match kind {
        MessageType::Opened => "New incident",
        MessageType::Escalated => "Incident escalated",
        MessageType::Updated => "Incident updated",
        MessageType::Closed => "Incident closed",
    }
}

/// The one-line headline, inert: `HIGH · New incident: <title>`.
pub fn headline(event: &Event, max: usize) -> String {
    let level = Level::of(&event.incident).shout();
    let head = format!("{level} · {}: ", kind_words(event.kind));
    let room = max.saturating_sub(units(&head));
    let title = if event.title.trim().is_empty() {
        inert(&event.incident.id, room)
    } else {
        inert(&event.title, room)
    };
    clip(&format!("{head}{title}"), max)
}

/// One fact about the incident: a label (this module's words) and a value (inert plain
/// text: alert text in it is escaped and defanged, not yet escaped for a medium).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fact {
    pub label: &'static str,
    pub value: String,
}

/// A list of raw items as inert text: at most `budget.items`, then `and N more`.
fn list(items: &[String], budget: Budget) -> String {
    let mut parts: Vec<String> = items
        .iter()
        .take(budget.items)
        .map(|s| inert(s, budget.value_chars))
        .collect();
    if items.len() > budget.items {
        parts.push(format!("and {} more", items.len() - budget.items));
    }
    parts.join(", ")
}

/// The host(s) in a few words: the agent, `3 hosts: a, b, c`, or `unknown host`.
pub fn hosts(view: &IncidentView, budget: Budget) -> String {
    match view.agents.as_slice() {
        [] => "unknown host".to_string(),
        [one] => inert(one, budget.value_chars),
        many => format!("{} hosts: {}", many.len(), list(many, budget)),
    }
}

/// The incident's facts worth showing, at most 10 (Slack's field limit): id, severity,
/// members, hosts, grouping, alert times, window, status, and the escalation or the incident
/// it continues when there is one. The same facts `summary.md` opens with.
pub fn facts(event: &Event, budget: Budget) -> Vec<Fact> {
    let v = &event.incident;
    let m = &v.members;
    let level = Level::of(v);
    let mut out = Vec::with_capacity(10);
    let mut add = |label: &'static str, value: String| out.push(Fact { label, value });
    add("Incident", inert(&v.id, budget.value_chars));
    let bucket = v
        .bucket
        .or_else(|| m.highest())
        .map_or("unknown", |b| b.as_str());
    let lvl = v
        .highest_level
        .map_or_else(|| "unknown".to_string(), |l| l.to_string());
    add(
        "Severity",
        if level == Level::Critical {
            format!("critical (bucket {bucket}, highest level {lvl})")
        } else {
            format!("{bucket} (highest level {lvl})")
        },
    );
    let new = if event.new_members > 0 {
        format!("; {} new since the last message", event.new_members)
    } else {
        String::new()
    };
    add(
        "Members",
        format!(
            "{}: high {}, medium {}, low {}, suppressed {}, critical {}{new}",
            m.total, m.high, m.medium, m.low, m.suppressed, m.critical
        ),
    );
    add("Hosts", hosts(v, budget));
    let key: Vec<String> = v
        .key
        .iter()
        .map(|k| format!("{}={}", k.field, k.value.as_deref().unwrap_or("(missing)")))
        .collect();
    add(
        "Grouped by",
        format!(
            "rule {}{}",
            inert(&v.group, budget.value_chars),
            if key.is_empty() {
                String::new()
            } else {
                format!(" on {}", list(&key, budget))
            }
        ),
    );
    add(
        "Alert times",
        match (v.first_alert_time, v.last_alert_time) {
            (Some(f), Some(l)) if f == l => time(f),
            (Some(f), Some(l)) => format!("{} to {}", time(f), time(l)),
            (Some(t), None) | (None, Some(t)) => time(t),
            (None, None) => "not known".to_string(),
        },
    );
    add(
        "Window",
        format!(
            "{} to {} ({})",
            time(v.window.start),
            time(v.window.end),
            duration(v.window.secs)
        ),
    );
    add(
        "Status",
        match v.status {
            Status::Open => format!("open until {}", time(v.closes_at)),
            Status::Closed => format!("closed at {}", time(v.closes_at)),
        },
    );
    let mut history = Vec::new();
    match (v.escalated_at, v.escalated_by.as_deref()) {
        (Some(t), Some(by)) => history.push(format!(
            "raised to high at {} by case {}",
            time(t),
            inert(by, budget.value_chars)
        )),
        (Some(t), None) => history.push(format!("raised to high at {}", time(t))),
        (None, Some(by)) => history.push(format!(
            "raised to high by case {}",
            inert(by, budget.value_chars)
        )),
        (None, None) => {}
    }
    if let Some(prev) = &v.continues {
        history.push(format!(
            "continues incident {}",
            inert(prev, budget.value_chars)
        ));
    }
    if !history.is_empty() {
        add("History", history.join("; "));
    }
    out
}

/// The summary's lines as [`plain`] text within `budget` (lines and characters), and how
/// many lines were left out. A last line saying so is the caller's to add.
pub fn summary_lines(event: &Event, budget: Budget) -> (Vec<String>, usize) {
    let mut out = Vec::new();
    let mut left = budget.summary_chars;
    for (i, line) in event.summary.iter().enumerate() {
        if out.len() >= budget.summary_lines || left == 0 {
            return (out, event.summary.len() - i);
        }
        let shown = plain(line, left);
        left = left.saturating_sub(units(&shown) + 1);
        out.push(shown);
    }
    (out, 0)
}

/// The observables as `(kind, value, field)` of [`plain`] text, at most `budget.observables`,
/// and how many were left out.
pub fn observable_rows(event: &Event, budget: Budget) -> (Vec<[String; 3]>, usize) {
    let rows = event
        .observables
        .iter()
        .take(budget.observables)
        .map(|o| {
            [
                o.kind.as_str().to_string(),
                plain(&o.value, budget.value_chars),
                plain(&o.field, budget.value_chars),
            ]
        })
        .collect();
    let omitted = event.observables.len().saturating_sub(budget.observables);
    (rows, omitted)
}

/// `and N more …` when `n > 0`.
pub fn more(n: usize, what: &str) -> Option<String> {
    (n > 0).then(|| format!("{CUT} and {n} more {what}"))
}

/// The console's page of the incident, `<base>/incidents/<id>`, when a console base URL is
/// configured, it is `http(s)://` with only URL-safe characters (no quote, angle bracket,
/// parenthesis, space or control character), and the incident id is an allow-listed
/// `[A-Za-z0-9-]+`. Otherwise no link is made.
pub fn console_url(base: Option<&str>, incident_id: &str) -> Option<String> {
    let base = base?.trim_end_matches('/');
    let scheme_ok = base.starts_with("https://") || base.starts_with("http://");
    let chars_ok = base
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~:/?#@!$&*+,;=%".contains(&b));
    let id_ok = !incident_id.is_empty()
        && incident_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
    (scheme_ok && chars_ok && id_ok && base.len() > "https://".len())
        .then(|| format!("{base}/incidents/{incident_id}"))
}

/// `incident.json` for a body with a size limit: the member case ids dropped (`cases` keeps
/// only `count`), at most `budget.items` agents and key fields (with `agents_count` and
/// `key_count` when cut), key values and agents cut to `budget.value_chars`, control
/// characters escaped ([`escape_strings`]). Raw values otherwise, as `incident.json` has
/// them: receivers match on them, and escape them for their medium.
pub fn thin_incident(view: &IncidentView, budget: Budget) -> Value {
    let mut v = serde_json::to_value(view).expect("an IncidentView always serializes to JSON");
    if let Some(obj) = v.as_object_mut() {
        obj.insert("cases".into(), json!({ "count": view.cases.count }));
        let cut = |s: &str| {
            clip(
                truncate_chars(s, budget.value_chars + 1).0,
                budget.value_chars,
            )
        };
        let agents: Vec<String> = view
            .agents
            .iter()
            .take(budget.items)
            .map(|a| cut(a))
            .collect();
        if view.agents.len() > budget.items {
            obj.insert("agents_count".into(), json!(view.agents.len()));
        }
        obj.insert("agents".into(), json!(agents));
        let key: Vec<Value> = view
            .key
            .iter()
            .take(budget.items)
            .map(|k| json!({ "field": cut(&k.field), "value": k.value.as_deref().map(cut) }))
            .collect();
        if view.key.len() > budget.items {
            obj.insert("key_count".into(), json!(view.key.len()));
        }
        obj.insert("key".into(), Value::Array(key));
        for field in ["id", "group", "continues", "escalated_by"] {
            if let Some(Value::String(s)) = obj.get(field) {
                let s = cut(s);
                obj.insert(field.into(), Value::String(s));
            }
        }
    }
    escape_strings(&mut v);
    v
}

/// Escapes the control characters ([`escape_controls`]) of every string in `v`, so that no
/// control, bidi or zero-width character leaves in a data field either.
pub fn escape_strings(v: &mut Value) {
    match v {
        Value::String(s) if s.chars().any(must_escape) => *s = escape_controls(s, false),
        Value::Array(a) => a.iter_mut().for_each(escape_strings),
        Value::Object(o) => o.values_mut().for_each(escape_strings),
        _ => {}
    }
}

/// The Markdown description the case tools (TheHive, IRIS) show: the headline, the facts as a
/// list, the summary in a fenced block, the observables as an aligned table in a fenced
/// block, the packs, and the console link. Every alert-derived value is inside one code span
/// (`escape_inline`) or fenced block (`fence_escaped`) it cannot close, so no link, image,
/// HTML or emphasis can come from an alert; the only link is [`console_url`]. The values are
/// [`inert`] too (no `<`, `>`, `](`), for the case tools' own renderers, which may not be
/// CommonMark.
pub fn markdown_description(event: &Event, base_url: Option<&str>, budget: Budget) -> String {
    let mut md = String::with_capacity(4 * 1024);
    md.push_str(&format!(
        "**{}** · {}: {}\n\n",
        Level::of(&event.incident).shout(),
        kind_words(event.kind),
        escape_inline(&title_text(event, budget.value_chars))
    ));
    for f in facts(event, budget) {
        md.push_str(&format!("- **{}:** {}\n", f.label, escape_inline(&f.value)));
    }
    let (lines, omitted) = summary_lines(event, budget);
    if !lines.is_empty() {
        md.push_str("\n**Summary**\n\n");
        let mut text = neutralise(&lines.join("\n"));
        if let Some(m) = more(omitted, "lines") {
            text.push('\n');
            text.push_str(&m);
        }
        md.push_str(&fence_escaped(&text));
    }
    let (rows, omitted) = observable_rows(event, budget);
    if !rows.is_empty() {
        md.push_str("\n**Observables** (defanged; raw values in the alert's observables)\n\n");
        let rows: Vec<[String; 3]> = rows
            .iter()
            .map(|r| r.each_ref().map(|c| neutralise(c)))
            .collect();
        let mut text = columns(&rows);
        if let Some(m) = more(omitted, "observables") {
            text.push_str(&m);
            text.push('\n');
        }
        md.push_str(&fence_escaped(&text));
    }
    if !event.packs.is_empty() {
        md.push_str("\n**Files** (below the SignalFoundry state directory)\n\n");
        let mut text: Vec<String> = event
            .packs
            .iter()
            .take(budget.items)
            .map(|p| neutralise(&plain(p, budget.value_chars)))
            .collect();
        text.extend(more(
            event.packs.len().saturating_sub(budget.items),
            "files",
        ));
        md.push_str(&fence_escaped(&text.join("\n")));
    }
    if let Some(url) = console_url(base_url, &event.incident.id) {
        md.push_str(&format!("\n[Open in the SignalFoundry console]({url})\n"));
    }
    md.push_str(&format!(
        "\n_SignalFoundry message {} ({}, route {}). Alert text is shown as code, with \
         control characters escaped and URLs, domains, IPs and e-mail addresses defanged._\n",
        escape_inline(&event.id),
        event.kind.as_str(),
        escape_inline(&event.route),
    ));
    md
}

/// The title alone (the event's title, or the incident id when it has none), [`inert`].
pub fn title_text(event: &Event, max: usize) -> String {
    if event.title.trim().is_empty() {
        inert(&event.incident.id, max)
    } else {
        inert(&event.title, max)
    }
}

/// Most characters of an observable's value sent to a case tool. A longer value is left out
/// rather than cut: a cut value would be a different observable.
pub const CASE_VALUE_MAX: usize = 8_192;

/// An observable's value for a case tool (TheHive, IRIS): the raw value, which their
/// correlation and analyzers match on, with only its control characters escaped (so none
/// reaches their UI); `None` for an empty value or one over [`CASE_VALUE_MAX`].
pub fn case_value(raw: &str) -> Option<String> {
    if raw.trim().is_empty() || raw.chars().nth(CASE_VALUE_MAX).is_some() {
        return None;
    }
    Some(escape_controls(raw, false))
}

#[cfg(test)]
pub(crate) mod testing;

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    /// The brief's check: a title and summary holding a Slack link and mention, HTML, a
    /// Markdown image and link, an ANSI escape and a bidi override render as none of them in
    /// any format (each format's own tests check its other fields).
    #[test]
    fn every_format_renders_a_hostile_title_and_summary_as_inert_text() {
        let mut e = event();
        e.title = HOSTILE.to_string();
        e.summary = vec![HOSTILE.to_string(), format!("again: {HOSTILE}")];
        let check = |format: &str, s: &str| {
            assert_no_controls(s);
            for bad in [
                "<http",
                "<!channel>",
                "<script",
                "</script",
                "<img",
                "![x](",
                "[link](h",
                "](http",
                "http://evil",
            ] {
                assert!(!s.contains(bad), "{format}: {bad:?} in {s:?}");
            }
        };
        let webhook: Value = serde_json::from_slice(&webhook::render(&e)).expect("json");
        let bodies = [
            ("webhook", webhook),
            ("slack", slack::render(&e, &Default::default())),
            ("teams", teams::render(&e, &Default::default())),
            ("pagerduty", pagerduty::render(&e, &Default::default())),
            ("thehive", thehive::render(&e, &Default::default())),
            ("iris", iris::render(&e, &Default::default())),
        ];
        for (format, body) in &bodies {
            for s in strings(body) {
                check(format, s);
            }
        }
        for md in [
            &bodies[4].1["description"],
            &bodies[5].1["alert_description"],
        ] {
            assert_markdown_inert(md.as_str().expect("a description"), 0);
        }
        let mail = email::render(&e, &Default::default());
        for part in [&mail.subject, &mail.text, &mail.html] {
            check("email", part);
        }
    }

    #[test]
    fn clip_cuts_at_the_limit_and_marks_the_cut() {
        assert_eq!(clip("abcdef", 6), "abcdef");
        assert_eq!(clip("abcdefg", 6), "abcde…");
        assert_eq!(units(&clip(&"😀".repeat(10), 7)), 7);
    }

    #[test]
    fn escape_within_never_splits_an_escape() {
        let esc = |c: char, out: &mut String| match c {
            '&' => out.push_str("&amp;"),
            c => out.push(c),
        };
        assert_eq!(escape_within("a&b", 10, esc), "a&amp;b");
        assert_eq!(escape_within("a&b", 7, esc), "a&amp;b");
        assert_eq!(escape_within("a&bc", 7, esc), "a&amp;…");
        assert_eq!(escape_within("a&b", 5, esc), "a…");
    }

    #[test]
    fn inert_breaks_html_links_images_and_mentions_but_keeps_the_words() {
        let s = inert(HOSTILE, 10_000);
        assert_plain_inert(&s);
        assert!(s.contains("click here"), "{s}");
        assert!(s.contains("‹script›alert(1)‹/script›"), "{s}");
        assert!(s.contains("[link] (hxxp://evil)"), "{s}");
    }

    #[test]
    fn level_follows_the_bucket_and_the_critical_flag() {
        let mut e = event();
        assert_eq!(Level::of(&e.incident), Level::High);
        e.incident.critical = true;
        assert_eq!(Level::of(&e.incident), Level::Critical);
        e.incident.critical = false;
        e.incident.members.critical = 0;
        e.incident.bucket = Some(Bucket::Suppressed);
        assert_eq!(Level::of(&e.incident), Level::Suppressed);
        e.incident.bucket = None;
        e.incident.members = Default::default();
        assert_eq!(Level::of(&e.incident), Level::Low);
    }

    #[test]
    fn facts_are_at_most_ten_and_inert_for_a_hostile_incident() {
        let e = hostile_event();
        let f = facts(&e, Budget::full());
        assert!(f.len() <= 10);
        for fact in &f {
            assert_plain_inert(&fact.value);
        }
        assert!(f.iter().any(|x| x.label == "History"));
    }

    #[test]
    fn console_url_is_made_only_from_a_safe_base_and_id() {
        assert_eq!(
            console_url(Some("https://soc.example/"), "INC-00ab").as_deref(),
            Some("https://soc.example/incidents/INC-00ab")
        );
        assert_eq!(console_url(None, "INC-1"), None);
        assert_eq!(console_url(Some("javascript:alert(1)"), "INC-1"), None);
        assert_eq!(console_url(Some("https://x.example/\"><b>"), "INC-1"), None);
        assert_eq!(console_url(Some("https://x.example"), "../../x"), None);
        assert_eq!(console_url(Some("https://x.example"), "INC 1"), None);
    }

    #[test]
    fn thin_incident_keeps_the_count_and_drops_the_case_ids() {
        let e = huge_event();
        let v = thin_incident(&e.incident, Budget::full());
        assert_eq!(v["cases"], json!({ "count": e.incident.cases.count }));
        assert_eq!(v["agents"].as_array().map(Vec::len), Some(20));
        assert_eq!(v["agents_count"], json!(e.incident.agents.len()));
        assert!(serde_json::to_vec(&v).expect("json").len() < 12_000);
    }

    #[test]
    fn markdown_description_renders_no_link_image_or_html_from_alert_text() {
        let md = markdown_description(&hostile_event(), None, Budget::full());
        assert_markdown_inert(&md, 0);
        let md = markdown_description(
            &hostile_event(),
            Some("https://soc.example"),
            Budget::full(),
        );
        assert_markdown_inert(&md, 1);
    }

    #[test]
    fn markdown_description_is_bounded_for_a_huge_event() {
        let md = markdown_description(&huge_event(), None, Budget::full());
        assert!(md.len() < 40_000, "{}", md.len());
        assert!(md.contains("more observables"));
        assert!(md.contains("more lines") || md.contains(CUT));
    }
}
