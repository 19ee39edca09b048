//! `summary.md`: the page a person reads at 3 a.m. — what happened, where, when, which rule and
//! ATT&CK techniques, the key fields for the alert's kind, related alerts on the host, what to
//! check next, and the dashboard link.
//!
//! Design constraints:
//! - Every string from the alert, from `case.json` and from the related references goes through
//!   [`escape_inline`] (one code span), [`escape_block`] (one fenced block) or, inside the related
//!   table's fenced block, [`escape_plain`]. That includes field names (alert keys are attacker
//!   text too). Only this module's own words, numbers it parsed and times it formatted are plain
//!   Markdown.
//! - The only link is the dashboard link, and only when `dashboard_url` is configured: built from
//!   that base (and from `case.json`'s `dashboard_link` when it starts with the base), scheme
//!   http or https, every byte outside a conservative URL alphabet percent-encoded. No alert text
//!   is ever put into it beyond what `cases::dashboard_link` already percent-encoded (the
//!   indexer's `_index`/`_id`).
//! - Windows eventchannel fields are shown with Wazuh's escaping undone (`\\` → `\`, `\"` →
//!   `"`), so paths read as on Windows; the raw values are in `alert.json` and
//!   `observables.json`.
//! - Nothing here panics on a strange alert: every field is optional and any JSON type is
//!   accepted.
//!
//! Layout: this file renders the page (the sections every alert gets, the related table, the
//! dashboard link); [`kinds`] classifies the alert and says what its kind shows.

use std::fmt::Write as _;

use serde_json::{Map, Value};

use super::markdown::{
    columns, escape_block, escape_inline, escape_inline_fields, escape_inline_readable,
    escape_name, escape_plain, fence_escaped, truncate_chars,
};
use super::observables::{get, is_win_escaped, win_unescape, Observable, REFERENCE_FIELDS};
use super::PackInput;

mod kinds;

use kinds::key_fields;
pub use kinds::{kind_of, next_steps, AlertKind};

/// Related references shown in the summary (all of them, up to 50, are in `related.jsonl`).
const RELATED_SHOWN: usize = 20;
/// Observables listed in the summary (all of them are in `observables.json`).
const OBSERVABLES_SHOWN: usize = 40;
/// Items shown of a list-valued field.
const LIST_SHOWN: usize = 20;
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Fields that name our own hosts and addresses: shown as they are, not defanged.
const OWN_FIELDS: &[&str] = &[
    "agent.id",
    "agent.name",
    "agent.ip",
    "manager.name",
    "cluster.name",
    "cluster.node",
    "data.win.system.computer",
    "predecoder.hostname",
];

/// A field's value as Markdown: one code span, or a list of them; `None` when absent or empty.
/// Alert text is defanged, except in our own fields and vendor references ([`OWN_FIELDS`],
/// [`REFERENCE_FIELDS`]), which an analyst reads or opens as they are.
fn value_md(path: &str, v: &Value) -> Option<String> {
    let own = OWN_FIELDS.contains(&path);
    let reference = REFERENCE_FIELDS.contains(&path);
    let show = |s: &str| {
        let s = if is_win_escaped(path) {
            std::borrow::Cow::Owned(win_unescape(s))
        } else {
            std::borrow::Cow::Borrowed(s)
        };
        if own {
            escape_name(&s)
        } else if reference {
            escape_inline_readable(&s)
        } else {
            escape_inline(&s)
        }
    };
    match v {
        Value::Array(items) => {
            let vals: Vec<String> = items.iter().filter_map(scalar).collect();
            if vals.is_empty() {
                return None;
            }
            let mut parts: Vec<String> = vals.iter().take(LIST_SHOWN).map(|s| show(s)).collect();
            if vals.len() > LIST_SHOWN {
                parts.push(format!("and {} more", vals.len() - LIST_SHOWN));
            }
            Some(parts.join(", "))
        }
        other => {
            let s = scalar(other)?;
            (!s.is_empty()).then(|| show(&s))
        }
    }
}

struct Page<'a> {
    out: String,
    alert: &'a Map<String, Value>,
}

impl Page<'_> {
    fn line(&mut self, s: &str) {
        self.out.push_str(s);
        self.out.push('\n');
    }

    fn h2(&mut self, title: &str) {
        self.out.push('\n');
        self.line(&format!("## {title}"));
        self.out.push('\n');
    }

    /// `- **label:** value` when the field is there.
    fn field(&mut self, label: &str, path: &str) -> bool {
        match get(self.alert, path).and_then(|v| value_md(path, v)) {
            Some(md) => {
                self.line(&format!("- **{label}:** {md}"));
                true
            }
            None => false,
        }
    }

    fn fields(&mut self, list: &[(&str, &str)]) -> usize {
        list.iter().filter(|(l, p)| self.field(l, p)).count()
    }

    /// `- **label:** before → after` for a pair of fields (either may be missing).
    fn pair(&mut self, label: &str, before: &str, after: &str) -> bool {
        let b = get(self.alert, before).and_then(|v| value_md(before, v));
        let a = get(self.alert, after).and_then(|v| value_md(after, v));
        match (b, a) {
            (Some(b), Some(a)) if b == a => self.line(&format!("- **{label}:** {a} (unchanged)")),
            (Some(b), Some(a)) => self.line(&format!("- **{label}:** {b} → {a}")),
            (None, Some(a)) => self.line(&format!("- **{label}:** {a}")),
            (Some(b), None) => self.line(&format!("- **{label} (before):** {b}")),
            (None, None) => return false,
        }
        true
    }

    fn block(&mut self, title: &str, path: &str) -> bool {
        let Some(text) = get(self.alert, path).and_then(scalar) else {
            return false;
        };
        if text.trim().is_empty() {
            return false;
        }
        let text = if is_win_escaped(path) {
            win_unescape(&text)
        } else {
            text
        };
        self.out.push('\n');
        self.line(&format!(
            "**{title}** (from {}):",
            escape_inline_fields(path)
        ));
        self.out.push('\n');
        self.out.push_str(&escape_block(&text));
        true
    }
}

fn case_str<'a>(case: &'a Value, path: &str) -> Option<&'a str> {
    let mut v = case;
    for p in path.split('.') {
        v = v.get(p)?;
    }
    v.as_str().filter(|s| !s.is_empty())
}

/// Renders `summary.md`.
pub fn render(input: &PackInput<'_>, obs: &[Observable]) -> String {
    let alert = input.alert;
    let case = input.case_json;
    let mut p = Page {
        out: String::with_capacity(8 * 1024),
        alert,
    };
    let kind = kind_of(alert);
    let level = crate::model::alert::level_of(alert).rank().or_else(|| {
        case.pointer("/rule/level")
            .and_then(Value::as_u64)
            .and_then(|l| u32::try_from(l).ok())
    });
    let level_txt = level.map_or_else(|| "unknown".to_string(), |l| l.to_string());
    let critical = case
        .get("critical")
        .and_then(Value::as_bool)
        .unwrap_or(level.is_some_and(|l| l >= 15));
    let bucket = case_str(case, "bucket").unwrap_or("high");
    let description = get(alert, "rule.description").and_then(scalar);
    let rule_id = get(alert, "rule.id").and_then(scalar);
    let alert_time = ["timestamp", "@timestamp"]
        .iter()
        .find_map(|k| alert.get(*k).and_then(crate::model::alert::parse_time));
    let alert_time_txt = alert_time.map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string());

    // Title and the one-paragraph gist.
    p.line(&format!("# Escalation {}", escape_inline(input.case_id)));
    p.out.push('\n');
    let quarantined = input.quarantine_entry.is_some()
        || case.get("quarantined").and_then(Value::as_bool) == Some(true);
    if quarantined {
        let entry = input
            .quarantine_entry
            .or_else(|| case_str(case, "quarantine_entry"))
            .unwrap_or("");
        p.line(&format!(
            "> **Quarantined alert.** It could not be triaged normally and is kept as quarantine \
             entry {} (`quarantine/<entry>.json` with its `.reason` beside it). Its level reads \
             as high, so it is escalated all the same; fields below may be missing or odd.",
            escape_inline(entry)
        ));
        p.out.push('\n');
    }
    // "Critical" here is Wazuh's level 15+; a finding's own severity (a CVE's) is said beside
    // it, so a Critical CVE never reads as "not critical".
    let finding = finding_severity(alert);
    let severity = if critical {
        format!(
            "**CRITICAL** (level {level_txt}, bucket {}){finding}",
            escape_inline(bucket)
        )
    } else {
        format!(
            "**{}** (level {level_txt}, under Wazuh's critical level 15){finding}",
            escape_inline(bucket)
        )
    };
    p.line(&format!(
        "**What:** {} — {severity}, on host {}{}.",
        description
            .as_deref()
            .map_or_else(|| "An alert".to_string(), escape_inline),
        escape_name(input.canonical_agent),
        alert_time_txt
            .as_deref()
            .map_or_else(String::new, |t| format!(", at {t}")),
    ));

    // What.
    p.h2("What happened");
    p.line(&format!(
        "- **Rule:** {} level {level_txt}{}",
        rule_id
            .as_deref()
            .map_or_else(|| "(no rule id)".to_string(), escape_inline),
        description
            .as_deref()
            .map_or_else(String::new, |d| format!(" — {}", escape_inline(d)))
    ));
    p.line(&format!(
        "- **Severity:** bucket {}, {}",
        escape_inline(bucket),
        if critical {
            "**critical** (level 15 or more)".to_string()
        } else {
            format!("level under 15 (Wazuh's critical){finding}")
        }
    ));
    p.line(&format!("- **Kind:** {}", kind.title()));
    p.fields(&[
        ("Groups", "rule.groups"),
        ("Times fired (this manager run)", "rule.firedtimes"),
        ("Events correlated", "rule.frequency"),
        ("Decoder", "decoder.name"),
        ("Log location", "location"),
        ("Alert id", "id"),
    ]);
    if let Some(m) = case.pointer("/decision/matched").and_then(Value::as_str) {
        p.line(&format!(
            "- **Decided by policy entry:** {}",
            escape_inline_fields(m)
        ));
    }
    if let Some(held) = case
        .pointer("/decision/held_back")
        .and_then(Value::as_array)
    {
        let names: Vec<String> = held
            .iter()
            .filter_map(Value::as_str)
            .take(LIST_SHOWN)
            .map(escape_inline_fields)
            .collect();
        if !names.is_empty() {
            p.line(&format!(
                "- **False-positive signatures held back** (they never suppress a high alert \
                 without `allow_high`): {}",
                names.join(", ")
            ));
        }
    }

    // Where.
    p.h2("Where");
    p.line(&format!(
        "- **Host (canonical name):** {}",
        escape_name(input.canonical_agent)
    ));
    if !input.agent_aliases.is_empty() {
        let names: Vec<String> = input
            .agent_aliases
            .iter()
            .take(LIST_SHOWN)
            .map(|a| escape_name(a))
            .collect();
        p.line(&format!("- **Also known as:** {}", names.join(", ")));
    }
    if let Some(a) = case_str(case, "agent.alias") {
        p.line(&format!("- **Alias rule:** {}", escape_name(a)));
    }
    p.fields(&[
        ("Agent id", "agent.id"),
        ("Agent name", "agent.name"),
        ("Agent IP", "agent.ip"),
        ("Computer (from the event)", "data.win.system.computer"),
        ("Hostname (from the log line)", "predecoder.hostname"),
        ("Wazuh manager", "manager.name"),
        ("Cluster node", "cluster.node"),
    ]);

    // When.
    p.h2("When");
    match &alert_time_txt {
        Some(t) => p.line(&format!("- **Alert time (UTC):** {t}")),
        None => p.line(&format!(
            "- **Alert time (UTC):** not readable from the alert; the case says {}",
            escape_inline(case_str(case, "alert_time").unwrap_or("nothing"))
        )),
    }
    p.fields(&[
        ("Original timestamp (manager's offset)", "timestamp"),
        ("Indexer timestamp", "@timestamp"),
        ("Event time (Windows)", "data.win.system.systemTime"),
        ("Event time (Sysmon, UTC)", "data.win.eventdata.utcTime"),
        ("Log line time", "predecoder.timestamp"),
    ]);
    if let Some(t) = case_str(case, "triage_time") {
        p.line(&format!("- **Triaged at:** {}", escape_inline(t)));
    }

    // MITRE.
    p.h2("Rule and MITRE ATT&CK");
    let ids: Vec<String> = get(alert, "rule.mitre.id")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(scalar).collect())
        .unwrap_or_default();
    let names: Vec<String> = get(alert, "rule.mitre.technique")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(scalar).collect())
        .unwrap_or_default();
    if ids.is_empty() && names.is_empty() {
        p.line("- No ATT&CK technique on this rule.");
    }
    for i in 0..ids.len().max(names.len()).min(LIST_SHOWN) {
        let id = ids.get(i).map(|s| escape_inline(s));
        let name = names.get(i).map(|s| escape_inline(s));
        match (id, name) {
            (Some(id), Some(name)) => p.line(&format!("- **Technique:** {id} {name}")),
            (Some(x), None) | (None, Some(x)) => p.line(&format!("- **Technique:** {x}")),
            (None, None) => {}
        }
    }
    p.field("Tactics", "rule.mitre.tactic");
    p.fields(&[
        ("PCI DSS", "rule.pci_dss"),
        ("NIST 800-53", "rule.nist_800_53"),
        ("GDPR", "rule.gdpr"),
        ("HIPAA", "rule.hipaa"),
    ]);

    // Key fields.
    p.h2(&format!("Key fields: {}", kind.title()));
    let shown = key_fields(&mut p, kind);
    if shown == 0 {
        p.line("- (none of the usual fields for this kind are in the alert; see `alert.json`)");
    }
    if path_is_windows_event(alert) {
        p.out.push('\n');
        p.line(
            "Windows event fields are shown with Wazuh's doubled backslashes undone (as in \
             `observables.json`, which keeps the alert's text as `raw`); the original is in \
             `alert.json`.",
        );
    }

    // Raw text.
    let has_log = p.block("Log", "full_log");
    p.block("Earlier matching log lines", "previous_output");
    p.block("What changed (diff)", "syscheck.diff");
    if !has_log {
        p.block("Event message", "data.win.system.message");
    }

    // Indicators, then the context an analyst does not hunt for.
    let (indicators, context): (Vec<&Observable>, Vec<&Observable>) =
        obs.iter().partition(|o| o.is_indicator());
    p.h2("Indicators (defanged; all observables in observables.json)");
    if indicators.is_empty() {
        p.line("- None found.");
    }
    for o in indicators.iter().take(OBSERVABLES_SHOWN) {
        p.line(&format!(
            "- {} {} from {}",
            o.kind.as_str(),
            escape_inline(&o.value),
            escape_inline_fields(&o.field)
        ));
    }
    if indicators.len() > OBSERVABLES_SHOWN {
        p.line(&format!(
            "- … and {} more in `observables.json`.",
            indicators.len() - OBSERVABLES_SHOWN
        ));
    }
    if obs.iter().any(|o| o.raw.is_some()) {
        p.out.push('\n');
        p.line(
            "Values from Windows events are shown, here and in `observables.json`, with Wazuh's \
             doubled backslashes undone, ready to paste into a search; `observables.json` keeps \
             the alert's text beside each as `raw`.",
        );
    }
    if !context.is_empty() {
        p.out.push('\n');
        p.line("**Context, not indicators** (ours or a vendor's; shown as they are):");
        p.out.push('\n');
        for o in context.iter().take(OBSERVABLES_SHOWN) {
            p.line(&format!(
                "- {} {} from {}: {}",
                o.kind.as_str(),
                escape_inline_readable(&o.value),
                escape_inline_fields(&o.field),
                o.note.as_deref().unwrap_or("context")
            ));
        }
        if context.len() > OBSERVABLES_SHOWN {
            p.line(&format!(
                "- … and {} more in `observables.json`.",
                context.len() - OBSERVABLES_SHOWN
            ));
        }
    }

    // Related.
    p.h2("Related alerts on this host");
    related_table(&mut p, input);

    // Next steps.
    p.h2("What to check next");
    for (i, step) in next_steps(kind).iter().enumerate() {
        p.line(&format!("{}. {step}", i + 1));
    }

    // Dashboard.
    p.h2("Dashboard");
    match input
        .dashboard_url
        .and_then(|base| dashboard_href(base, case))
    {
        Some((href, exact)) => {
            p.line(&format!("- [Open in the Wazuh dashboard]({href})"));
            if !exact {
                p.line(&format!(
                    "- The indexer id of this alert is not known: search the dashboard for \
                     alert id {}.",
                    get(alert, "id")
                        .and_then(scalar)
                        .as_deref()
                        .map_or_else(|| "(none)".to_string(), escape_inline)
                ));
            }
        }
        None if input.dashboard_url.is_some() => {
            p.line("- `dashboard_url` is configured but is not an http(s) URL; no link.")
        }
        None => p.line("- Not configured (`[indexer] dashboard_url`)."),
    }

    // About.
    p.h2("About this pack");
    p.line(&format!(
        "- **Case:** {}{}",
        escape_inline(input.case_id),
        case_str(case, "policy_version").map_or_else(String::new, |v| format!(
            ", policy version {}",
            escape_inline(v)
        ))
    ));
    if let Some(trace) = case.pointer("/decision/trace").and_then(Value::as_array) {
        let steps: Vec<String> = trace
            .iter()
            .filter_map(|s| {
                s.as_str()
                    .map(str::to_string)
                    .or_else(|| Some(s.to_string()))
            })
            .take(LIST_SHOWN)
            .collect();
        if !steps.is_empty() {
            p.line("- **Decision trace:**");
            for s in steps {
                p.line(&format!("  - step {}", escape_inline_fields(&s)));
            }
        }
    }
    p.line(
        "- **Files:** `alert.json` (the original alert, byte for byte), `case.json`, \
         `observables.json` (typed, never defanged, indicators and context), `related.jsonl` \
         (references, high ones first), \
         `manifest.json` (SHA-256 of each file; check with `signalfoundry verify-pack DIR`).",
    );
    p.line(
        "- Text from the alert is shown inside code, with control characters escaped (`\\u{..}`) \
         and URLs, domains, IPs and e-mail addresses defanged (`hxxp://`, also \
         `hxxp:\\\\` for the backslash forms browsers open, `[.]`, `[:]` in IPv6, `[@]`); \
         re-fang by hand only what you mean to open. Our own names (field paths, the policy's \
         words, this host's names and addresses) and vendor references are not defanged, and \
         are never links either.",
    );
    p.out
}

fn path_is_windows_event(alert: &Map<String, Value>) -> bool {
    get(alert, "data.win").is_some()
}

fn related_table(p: &mut Page<'_>, input: &PackInput<'_>) {
    let related = &input.related[..input.related.len().min(super::RELATED_MAX)];
    if related.is_empty() {
        p.line(&format!(
            "None known on {} in the related window before or after this alert.",
            escape_name(input.canonical_agent)
        ));
        return;
    }
    let highs = related
        .iter()
        .filter(|r| r.bucket.as_deref() == Some("high"))
        .count();
    p.line(&format!(
        "{} alert(s) on {} in the related window before and after this one, as known when this \
         pack was built: {highs} high (listed first), then the others, newest first{}:",
        related.len(),
        escape_name(input.canonical_agent),
        if related.len() > RELATED_SHOWN {
            format!(" ({RELATED_SHOWN} shown; all in `related.jsonl`)")
        } else {
            String::new()
        }
    ));
    p.out.push('\n');
    let cell = |s: &str, max: usize| {
        let (cut, truncated) = truncate_chars(s, max);
        let mut c = escape_plain(cut);
        if truncated {
            c.push('…');
        }
        c
    };
    let parse = |t: &str| chrono::DateTime::parse_from_rfc3339(t).ok();
    let this = case_str(input.case_json, "alert_time").and_then(parse);
    let mut rows: Vec<[String; 7]> = vec![[
        "time".into(),
        "when".into(),
        "bucket".into(),
        "level".into(),
        "rule".into(),
        "description".into(),
        "case".into(),
    ]];
    for r in related.iter().take(RELATED_SHOWN) {
        let when = match (parse(&r.time), this) {
            (Some(t), Some(a)) if t < a => "before",
            (Some(t), Some(a)) if t > a => "after",
            (Some(_), Some(_)) => "same time",
            _ => "-",
        };
        let bucket = match r.bucket.as_deref() {
            Some("high") => "HIGH".to_string(),
            Some(b) => cell(b, 12),
            None => "-".into(),
        };
        rows.push([
            cell(&r.time, 40),
            when.into(),
            bucket,
            r.level.map_or_else(|| "-".into(), |l| l.to_string()),
            r.rule_id
                .as_deref()
                .map_or_else(|| "-".into(), |x| cell(x, 12)),
            r.description
                .as_deref()
                .map_or_else(|| "-".into(), |x| cell(x, 70)),
            cell(&r.case_id, 48),
        ]);
    }
    p.out.push_str(&fence_escaped(&columns(&rows)));
}

/// The dashboard link as a Markdown destination, and whether it points at this alert (`false`:
/// the dashboard itself, because the indexer id is not known). `None` unless the base is
/// http(s).
fn dashboard_href(base: &str, case: &Value) -> Option<(String, bool)> {
    let base = base.trim().trim_end_matches('/');
    let lower = base.to_ascii_lowercase();
    let scheme_ok = lower.starts_with("https://") || lower.starts_with("http://");
    if !scheme_ok || base.len() <= "https://".len() {
        return None;
    }
    let (link, exact) = match case_str(case, "dashboard_link") {
        Some(l)
            if l.strip_prefix(base)
                .is_some_and(|rest| rest.starts_with('/')) =>
        {
            (l, true)
        }
        _ => (base, false),
    };
    Some((url_for_markdown(link), exact))
}

/// Percent-encodes every byte outside a conservative URL alphabet, so that the link destination
/// cannot end early (`)`, space, `<`, `>`), carry a control character or contain Markdown.
fn url_for_markdown(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    for b in url.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:/?#@!$&'*+,;=%".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// `; the finding's own severity: Critical, CVSS 9.8` for an alert that carries one
/// (`data.vulnerability.severity`, the highest CVSS base score), else nothing.
fn finding_severity(alert: &Map<String, Value>) -> String {
    let sev = get(alert, "data.vulnerability.severity").and_then(scalar);
    let score = ["cvss3", "cvss2"]
        .iter()
        .filter_map(|v| {
            get(alert, &format!("data.vulnerability.cvss.{v}.base_score")).and_then(scalar)
        })
        .filter_map(|s| s.parse::<f64>().ok())
        .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))));
    match (sev, score) {
        (None, None) => String::new(),
        (Some(s), None) => format!("; the finding's own severity: {}", escape_inline(&s)),
        (None, Some(c)) => format!("; the finding's own CVSS: {c}"),
        (Some(s), Some(c)) => format!(
            "; the finding's own severity: {}, CVSS {c}",
            escape_inline(&s)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn win_unescape_undoes_wazuh_doubling_only() {
        assert_eq!(
            win_unescape("C:\\\\Windows\\\\cscript.exe \\\"a\\\" \\x"),
            "C:\\Windows\\cscript.exe \"a\" \\x"
        );
    }

    #[test]
    fn dashboard_links_are_http_only_and_percent_encoded() {
        let case =
            serde_json::json!({"dashboard_link": "https://d.example/app/discover#/doc/x?id=a%2Fb"});
        assert_eq!(
            dashboard_href("https://d.example/", &case),
            Some((
                "https://d.example/app/discover#/doc/x?id=a%2Fb".into(),
                true
            ))
        );
        assert_eq!(dashboard_href("javascript:alert(1)", &case), None);
        let other = serde_json::json!({"dashboard_link": "https://d.example/a b).evil.example/"});
        assert_eq!(
            dashboard_href("https://d.example/a b)", &other),
            Some(("https://d.example/a%20b%29".into(), false))
        );
    }
}
