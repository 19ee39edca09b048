//! TheHive 5: the `POST /api/v1/alert` body, the answer that means "already exported", and
//! the query that finds the alert again.
//!
//! Design constraints:
//! - Sources (research §3.1): the input fields of TheHive-Project/TheHive4py
//!   `thehive4py/types/alert.py` (required `type`, `source`, `sourceRef`, `title`,
//!   `description`; `date` in epoch ms, `severity` 1 low … 4 critical, `tags`, `tlp` 0-4 and
//!   `pap` 0-3 in TheHive 5, `externalLink`, `observables[]`) and `types/observable.py`
//!   (`dataType`, `data`, `message`, `tags`).
//! - Idempotent: `sourceRef` is the incident id, and TheHive refuses a second alert with the
//!   same (`type`, `source`, `sourceRef`) with HTTP 400 (not 409; TheHive#1094): that answer
//!   ([`is_duplicate_answer`]) means the export is done.
//! - Observables are deduplicated by (`dataType`, `data`) after mapping: one duplicate fails
//!   the whole create with 400 "Observable already exists" (TheHive#1514, #1963). Their values
//!   are raw, for TheHive's similarity and analyzers, with only control characters escaped
//!   ([`super::case_value`]); at most [`OBSERVABLES_MAX`].
//! - `description` is Markdown in TheHive's UI: [`super::markdown_description`] (alert text in
//!   code spans and fenced blocks, inert); `title` is [`super::inert`] plain text.
//!
//! Mappings ([`data_type`]): ip → `ip`, domain → `domain`, url → `url`, md5/sha1/sha256 →
//! `hash`, user → `other`, file → `filename`, process → `filename` (an image path),
//! command-line → `other`, registry-key → `registry`, cve → `other`; every observable is
//! tagged with its SignalFoundry kind (`user`, `sha256`, `process`, …), so `other` and `hash`
//! still say what they are. Severity ([`severity`]): low and suppressed 1, medium 2, high 3,
//! critical 4.

use std::collections::HashMap;

use serde_json::{json, Value};

use super::{
    case_value, console_url, inert, markdown_description, plain, title_text, Budget, Level,
};
use crate::stages::deliver::event::Event;
use crate::stages::escalate::observables::ObservableKind;

/// Observables sent with one alert.
pub const OBSERVABLES_MAX: usize = 500;
/// The longest title sent (TheHive sets none; its lists show about a line).
pub const TITLE_MAX: usize = 512;
/// Tags: at most this many, each at most [`TAG_MAX`] characters.
pub const TAGS_MAX: usize = 50;
pub const TAG_MAX: usize = 128;

/// A TheHive route's options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// `source` (part of TheHive's uniqueness key, with `type` and `sourceRef`).
    pub source: String,
    /// `type`.
    pub alert_type: String,
    /// TLP 2.0 in TheHive 5: 0 CLEAR, 1 GREEN, 2 AMBER, 3 AMBER+STRICT, 4 RED.
    pub tlp: u8,
    /// PAP 0 CLEAR … 3 RED.
    pub pap: u8,
    /// Tags added to every alert.
    pub tags: Vec<String>,
    /// The console's base URL, sent as `externalLink`.
    pub base_url: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            source: "SignalFoundry".to_string(),
            alert_type: "wazuh-incident".to_string(),
            tlp: 2,
            pap: 2,
            tags: Vec::new(),
            base_url: None,
        }
    }
}

/// TheHive's severity for a level.
pub fn severity(level: Level) -> u8 {
    match level {
        Level::Suppressed | Level::Low => 1,
        Level::Medium => 2,
        Level::High => 3,
        Level::Critical => 4,
    }
}

/// TheHive's `dataType` for an observable kind.
pub fn data_type(kind: ObservableKind) -> &'static str {
    use ObservableKind as K;
    match kind {
        K::Ip => "ip",
        K::Domain => "domain",
        K::Url => "url",
        K::Md5 | K::Sha1 | K::Sha256 => "hash",
        K::File | K::Process => "filename",
        K::RegistryKey => "registry",
        K::User | K::CommandLine | K::Cve => "other",
    }
}

/// The observables to send, mapped and deduplicated by (`dataType`, `data`) (a duplicate's
/// kind tag joins the first's), and how many were left out (over the limit, empty or too
/// long).
fn observables(event: &Event) -> (Vec<Value>, usize) {
    let mut out: Vec<Value> = Vec::new();
    let mut seen: HashMap<(&'static str, String), usize> = HashMap::new();
    let mut left_out = 0;
    for o in &event.observables {
        let Some(data) = case_value(&o.value) else {
            left_out += 1;
            continue;
        };
        let dt = data_type(o.kind);
        let tag = o.kind.as_str();
        match seen.get(&(dt, data.clone())) {
            Some(&i) => {
                if let Some(tags) = out[i]["tags"].as_array_mut() {
                    if !tags.iter().any(|t| t == tag) {
                        tags.push(json!(tag));
                    }
                }
            }
            None if out.len() >= OBSERVABLES_MAX => left_out += 1,
            None => {
                seen.insert((dt, data.clone()), out.len());
                out.push(json!({
                    "dataType": dt,
                    "data": data,
                    "message": format!("{tag} from field {}", inert(&o.field, 200)),
                    "tags": [tag],
                }));
            }
        }
    }
    (out, left_out)
}

/// The tags: the route's, then `signalfoundry`, the severity and the grouping rule; inert,
/// without duplicates, at most [`TAGS_MAX`].
fn tags(event: &Event, opts: &Options) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let own = [
        "signalfoundry".to_string(),
        format!("severity:{}", Level::of(&event.incident).as_str()),
        format!("group:{}", event.incident.group),
    ];
    for t in opts.tags.iter().chain(own.iter()) {
        let t = inert(t.trim(), TAG_MAX);
        if !t.is_empty() && !out.contains(&t) && out.len() < TAGS_MAX {
            out.push(t);
        }
    }
    out
}

/// The body to POST to `/api/v1/alert`.
pub fn render(event: &Event, opts: &Options) -> Value {
    let view = &event.incident;
    let (observables, left_out) = observables(event);
    let mut description = markdown_description(event, opts.base_url.as_deref(), Budget::full());
    if left_out > 0 {
        description.push_str(&format!(
            "\n_{left_out} observables were not sent (over {OBSERVABLES_MAX}, empty, or \
             longer than {} characters)._\n",
            super::CASE_VALUE_MAX
        ));
    }
    let mut body = json!({
        "type": plain(&opts.alert_type, 128),
        "source": plain(&opts.source, 128),
        "sourceRef": view.id,
        "title": title_text(event, TITLE_MAX),
        "description": description,
        "severity": severity(Level::of(view)),
        "date": view.first_alert_time.unwrap_or(event.created_at).timestamp_millis(),
        "tags": tags(event, opts),
        "tlp": opts.tlp.min(4),
        "pap": opts.pap.min(3),
        "observables": observables,
    });
    if let Some(url) = console_url(opts.base_url.as_deref(), &view.id) {
        body["externalLink"] = json!(url);
    }
    body
}

/// True when TheHive's answer to a create says the alert exists already: HTTP 400 with a
/// `CreateError` (TheHive 4 and 5: "Alert t:s:r already exist in organisation O") or
/// `ConflictError` (TheHive 3: "…document already exists") whose message says "already
/// exist". A duplicate *observable* ("Observable already exists") is not: that create
/// failed.
pub fn is_duplicate_answer(status: u16, body: &str) -> bool {
    if status != 400 {
        return false;
    }
    let Ok(v) = serde_json::from_str::<Value>(body) else {
        return false;
    };
    let kind = v["type"].as_str().unwrap_or_default();
    let message = v["message"].as_str().unwrap_or_default().to_lowercase();
    matches!(kind, "CreateError" | "ConflictError")
        && message.contains("already exist")
        && !message.contains("observable")
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use crate::stages::escalate::observables::ObservableKind as K;

    #[test]
    fn alert_has_the_documented_input_fields_and_types() {
        let v = render(&event(), &Options::default());
        for field in ["type", "source", "sourceRef", "title", "description"] {
            assert!(v[field].as_str().is_some_and(|s| !s.is_empty()), "{field}");
        }
        assert_eq!(v["type"], "wazuh-incident");
        assert_eq!(v["source"], "SignalFoundry");
        assert_eq!(v["sourceRef"], "INC-0123456789abcdef0123");
        assert_eq!(v["severity"], 3);
        assert_eq!(v["date"], 1_714_564_860_000_i64);
        assert_eq!(v["tlp"], 2);
        assert_eq!(v["pap"], 2);
        assert!(v["tags"]
            .as_array()
            .is_some_and(|t| t.iter().all(Value::is_string)));
        assert!(v["tags"]
            .as_array()
            .is_some_and(|t| t.contains(&json!("severity:high"))));
        let obs = v["observables"].as_array().expect("observables");
        assert_eq!(obs.len(), 3);
        assert_eq!(obs[0]["dataType"], "ip");
        assert_eq!(obs[0]["data"], "10.0.0.5");
        assert_eq!(obs[0]["tags"], json!(["ip"]));
        assert_eq!(obs[1]["dataType"], "other");
        assert_eq!(obs[1]["tags"], json!(["user"]));
        assert_eq!(obs[2]["dataType"], "hash");
        assert!(v.get("externalLink").is_none());
    }

    #[test]
    fn every_kind_maps_to_a_thehive_data_type() {
        for (kind, dt) in [
            (K::Ip, "ip"),
            (K::Domain, "domain"),
            (K::Url, "url"),
            (K::Md5, "hash"),
            (K::Sha1, "hash"),
            (K::Sha256, "hash"),
            (K::User, "other"),
            (K::File, "filename"),
            (K::Process, "filename"),
            (K::CommandLine, "other"),
            (K::RegistryKey, "registry"),
            (K::Cve, "other"),
        ] {
            assert_eq!(data_type(kind), dt, "{kind:?}");
        }
    }

    #[test]
    fn observables_that_map_to_the_same_data_type_and_value_are_sent_once() {
        let mut e = event();
        e.observables = vec![
            obs(K::File, "C:\\Windows\\cmd.exe", "syscheck.path"),
            obs(
                K::Process,
                "C:\\Windows\\cmd.exe",
                "data.win.eventdata.image",
            ),
            obs(K::User, "CVE-2024-1", "data.srcuser"),
            obs(K::Cve, "CVE-2024-1", "data.vulnerability.cve"),
            obs(K::Ip, "", "data.srcip"),
        ];
        let v = render(&e, &Options::default());
        let obs = v["observables"].as_array().expect("observables");
        assert_eq!(obs.len(), 2, "{obs:?}");
        assert_eq!(obs[0]["tags"], json!(["file", "process"]));
        assert_eq!(obs[1]["tags"], json!(["user", "cve"]));
        let mut pairs: Vec<(String, String)> = obs
            .iter()
            .map(|o| (o["dataType"].to_string(), o["data"].to_string()))
            .collect();
        pairs.dedup();
        assert_eq!(pairs.len(), obs.len());
        assert!(v["description"]
            .as_str()
            .is_some_and(|d| d.contains("1 observables were not sent")));
    }

    #[test]
    fn limits_hold_for_a_huge_event() {
        let v = render(&huge_event(), &Options::default());
        assert_eq!(
            v["observables"].as_array().map(Vec::len),
            Some(OBSERVABLES_MAX)
        );
        assert!(super::super::units(v["title"].as_str().expect("title")) <= TITLE_MAX);
        let d = v["description"].as_str().expect("description");
        assert!(d.len() < 40_000, "{}", d.len());
        assert!(d.contains("9500 observables were not sent"));
        assert!(serde_json::to_vec(&v).expect("json").len() < 1024 * 1024);
    }

    #[test]
    fn hostile_text_renders_no_link_image_tag_or_control_character() {
        let v = render(&hostile_event(), &Options::default());
        assert_plain_inert(v["title"].as_str().expect("title"));
        let d = v["description"].as_str().expect("description");
        assert_markdown_inert(d, 0);
        assert!(!d.contains('<') && !d.contains('>'), "{d}");
        for s in strings(&v) {
            assert_no_controls(s);
        }
        for t in v["tags"].as_array().expect("tags") {
            assert_plain_inert(t.as_str().expect("a tag"));
        }
        for o in v["observables"].as_array().expect("observables") {
            assert_plain_inert(o["message"].as_str().expect("message"));
        }
    }

    #[test]
    fn a_duplicate_alert_answer_is_recognised_and_a_duplicate_observable_is_not() {
        let dup4 = r#"{"type":"CreateError","message":"Alert wazuh-incident:SignalFoundry:INC-1 already exist in organisation soc"}"#;
        let dup3 = r#"{"type":"ConflictError","message":"Alert already exists","object":{}}"#;
        assert!(is_duplicate_answer(400, dup4));
        assert!(is_duplicate_answer(400, dup3));
        assert!(!is_duplicate_answer(201, dup4));
        assert!(!is_duplicate_answer(409, dup4));
        assert!(!is_duplicate_answer(
            400,
            r#"{"type":"CreateError","message":"Observable already exists"}"#
        ));
        assert!(!is_duplicate_answer(
            400,
            r#"{"type":"AuthorizationError","message":"already exists"}"#
        ));
        assert!(!is_duplicate_answer(400, "already exist"));
    }
}
