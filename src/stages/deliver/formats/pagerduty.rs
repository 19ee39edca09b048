//! PagerDuty Events API v2: the `POST /v2/enqueue` body, without its `routing_key`.
//!
//! Design constraints:
//! - Source: PagerDuty/developer-docs `docs/events-API-v2/02-Trigger-Events.md` and
//!   `01-Overview.md` (research §2.5): `event_action` trigger or resolve, `dedup_key` ≤ 255
//!   characters, `payload.summary` ≤ 1024, `payload.source`, `payload.severity` ∈ critical,
//!   error, warning, info; optional `timestamp`, `component`, `group`, `class`,
//!   `custom_details`, `client`, `client_url`; bodies ≤ 512 KB.
//! - The routing key is a secret and never part of a rendered body: the body is stored and
//!   rendered without it, and the sender adds it with [`with_routing_key`] at send time.
//! - `dedup_key` is the incident id, so every message of an incident lands on one PagerDuty
//!   alert; `Closed` resolves it (a resolve carries only `event_action` and `dedup_key`).
//! - Every string from an alert is [`super::inert`]: PagerDuty shows the summary and details
//!   in its web and mobile apps and in the e-mails and chat messages it sends on.
//!
//! Mappings: severity from [`Level`] (critical → critical, high → error, medium → warning,
//! low and suppressed → info); `source` the incident's host (the agent, `N hosts`, or
//! `SignalFoundry` when none is known); `component` `wazuh`; `group` the route; `class` the
//! incident's grouping rule; `timestamp` when SignalFoundry made the message.

use serde_json::{json, Map, Value};

use super::{
    console_url, facts, headline, inert, kind_words, more, neutralise, observable_rows, rfc3339,
    summary_lines, Budget, Level,
};
use crate::stages::deliver::event::{Event, MessageType};

pub const SUMMARY_MAX: usize = 1_024;
pub const DEDUP_KEY_MAX: usize = 255;
/// The longest `source`, `component`, `group` and `class` sent (PagerDuty sets no limit;
/// they are labels).
pub const LABEL_MAX: usize = 255;
/// PagerDuty refuses bodies over 512 KB; these stay far below.
pub const BODY_MAX_BYTES: usize = 512 * 1024;

/// A PagerDuty route's options (the routing key is not one: it is a secret the sender adds).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// The console's base URL, sent as `client_url`.
    pub base_url: Option<String>,
}

/// PagerDuty's severity for a level.
pub fn severity(level: Level) -> &'static str {
    match level {
        Level::Critical => "critical",
        Level::High => "error",
        Level::Medium => "warning",
        Level::Low | Level::Suppressed => "info",
    }
}

/// The body, without `routing_key`.
pub fn render(event: &Event, opts: &Options) -> Value {
    let dedup_key = super::clip(&event.incident.id, DEDUP_KEY_MAX);
    if event.kind == MessageType::Closed {
        return json!({ "event_action": "resolve", "dedup_key": dedup_key });
    }
    let budget = Budget::full();
    let view = &event.incident;
    let source = match view.agents.as_slice() {
        [] => "SignalFoundry".to_string(),
        [one] => inert(one, LABEL_MAX),
        many => format!("{} hosts", many.len()),
    };
    let mut details = Map::new();
    details.insert("message".into(), json!(kind_words(event.kind)));
    for f in facts(event, budget) {
        details.insert(f.label.to_string(), json!(f.value));
    }
    if view.agents.len() > 1 {
        let agents: Vec<String> = view
            .agents
            .iter()
            .take(budget.items)
            .map(|a| inert(a, budget.value_chars))
            .collect();
        details.insert("Agents".into(), json!(agents));
    }
    let (lines, omitted) = summary_lines(event, budget);
    let mut summary: Vec<String> = lines.iter().map(|l| neutralise(l)).collect();
    summary.extend(more(omitted, "lines"));
    details.insert("Summary".into(), json!(summary));
    let (rows, omitted) = observable_rows(event, budget);
    let mut observables: Vec<String> = rows
        .iter()
        .map(|[k, v, f]| format!("{k}: {} (from {})", neutralise(v), neutralise(f)))
        .collect();
    observables.extend(more(omitted, "observables"));
    details.insert("Observables (defanged)".into(), json!(observables));
    let mut packs: Vec<String> = event
        .packs
        .iter()
        .take(budget.items)
        .map(|p| inert(p, budget.value_chars))
        .collect();
    packs.extend(more(
        event.packs.len().saturating_sub(budget.items),
        "files",
    ));
    details.insert("Files".into(), json!(packs));
    details.insert(
        "SignalFoundry message".into(),
        json!(format!(
            "{} ({}, route {})",
            inert(&event.id, 200),
            event.kind.as_str(),
            inert(&event.route, 200)
        )),
    );

    let mut body = json!({
        "event_action": "trigger",
        "dedup_key": dedup_key,
        "payload": {
            "summary": headline(event, SUMMARY_MAX),
            "source": source,
            "severity": severity(Level::of(view)),
            "timestamp": rfc3339(event.created_at),
            "component": "wazuh",
            "group": inert(&event.route, LABEL_MAX),
            "class": inert(&view.group, LABEL_MAX),
            "custom_details": details,
        },
        "client": "SignalFoundry",
    });
    if let Some(url) = console_url(opts.base_url.as_deref(), &view.id) {
        body["client_url"] = json!(url);
    }
    body
}

/// The body as sent: `body` with `routing_key` set (the only place the key is added).
pub fn with_routing_key(body: &Value, key: &str) -> Value {
    let mut out = body.clone();
    if let Some(obj) = out.as_object_mut() {
        obj.insert("routing_key".into(), json!(key));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::units;
    use super::*;
    use sf_policy::Bucket;

    #[test]
    fn trigger_has_the_documented_fields_and_no_routing_key() {
        let v = render(&event(), &Options::default());
        assert_eq!(v["event_action"], "trigger");
        assert_eq!(v["dedup_key"], "INC-0123456789abcdef0123");
        assert!(v.get("routing_key").is_none());
        let p = &v["payload"];
        assert!(p["summary"]
            .as_str()
            .is_some_and(|s| s.starts_with("HIGH · ")));
        assert_eq!(p["source"], "web01");
        assert_eq!(p["severity"], "error");
        assert_eq!(p["timestamp"], "2024-05-01T12:02:10.000Z");
        assert_eq!(p["component"], "wazuh");
        assert_eq!(p["group"], "soc-slack");
        assert_eq!(p["class"], "ssh-bruteforce");
        assert!(p["custom_details"].is_object());
        assert_eq!(p["custom_details"]["Incident"], "INC-0123456789abcdef0123");
        assert_eq!(v["client"], "SignalFoundry");
        assert!(v.get("client_url").is_none());
    }

    #[test]
    fn closed_resolves_with_only_the_action_and_the_dedup_key() {
        let mut e = event();
        e.kind = MessageType::Closed;
        let v = render(&e, &Options::default());
        assert_eq!(
            v,
            json!({ "event_action": "resolve", "dedup_key": "INC-0123456789abcdef0123" })
        );
        let sent = with_routing_key(&v, "R0123456789abcdef0123456789abcde");
        assert_eq!(sent["routing_key"], "R0123456789abcdef0123456789abcde");
        assert!(
            v.get("routing_key").is_none(),
            "the stored body is unchanged"
        );
    }

    #[test]
    fn severity_follows_the_bucket() {
        let mut e = event();
        for (bucket, critical, expected) in [
            (Bucket::High, true, "critical"),
            (Bucket::High, false, "error"),
            (Bucket::Medium, false, "warning"),
            (Bucket::Low, false, "info"),
            (Bucket::Suppressed, false, "info"),
        ] {
            e.incident.bucket = Some(bucket);
            e.incident.critical = critical;
            assert_eq!(
                render(&e, &Options::default())["payload"]["severity"],
                expected
            );
        }
    }

    #[test]
    fn limits_hold_for_a_huge_event() {
        let v = render(&huge_event(), &Options::default());
        let p = &v["payload"];
        assert!(units(p["summary"].as_str().expect("summary")) <= SUMMARY_MAX);
        assert_eq!(p["source"], "1000 hosts");
        let n = serde_json::to_vec(&v).expect("json").len();
        assert!(n < 64 * 1024, "{n}");
        assert!(n < BODY_MAX_BYTES);
    }

    #[test]
    fn hostile_text_renders_no_link_tag_mention_or_control_character() {
        let v = render(&hostile_event(), &Options::default());
        for s in strings(&v) {
            assert_plain_inert(s);
        }
    }
}
