//! Grouping: which incident an alert belongs to. `[[group]]` rules (first match wins) and the
//! `[grouping]` default say which fields make the key and how long a window is; the incident id
//! is a pure function of the rule, the key's values and the window the alert time falls in, so
//! order, threads, processes and crashes cannot change it.
//!
//! The id is `INC-` and the first 20 hex digits of the SHA-256 of the group id, the window in
//! seconds, each `field=value` of the key and the window number (`floor(time / window)`), each
//! part ended by a unit separator. The incident of the same key in the window before is its
//! predecessor ([`IncidentKey::previous`]): a burst crossing a window boundary is two incidents,
//! the second continuing the first.

use crate::bucket::Bucket;
use crate::matcher::{Clause, Subject};
use crate::value::{canonical_number, push_quoted};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::fmt::Write as _;

/// The group id of alerts no `[[group]]` rule matches.
pub const DEFAULT_GROUP: &str = "default";
/// `[grouping] window` when the policy says nothing: one hour.
pub const DEFAULT_WINDOW_SECS: u64 = 3600;
/// The longest window a policy may ask for (a year: an incident is a burst, not a history).
pub const MAX_WINDOW_SECS: u64 = 366 * 86_400;
/// At most this many fields in a `by` list.
pub const MAX_BY_FIELDS: usize = 8;

/// A field of a group key: the canonical agent, or a dotted path into the alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ByField {
    /// `agent`: the canonical agent (after aliases).
    Agent,
    /// A dotted path (`rule.id`, `data.srcip`).
    Path(Box<[Box<str>]>),
}

impl ByField {
    pub(crate) fn parse(s: &str) -> Option<ByField> {
        if s == "agent" {
            return Some(ByField::Agent);
        }
        if s.is_empty() || s.split('.').any(|seg| seg.trim().is_empty()) {
            return None;
        }
        Some(ByField::Path(s.split('.').map(Box::from).collect()))
    }

    fn name(&self) -> String {
        match self {
            ByField::Agent => "agent".to_string(),
            ByField::Path(p) => p.join("."),
        }
    }
}

/// One way of grouping: a `[[group]]` rule, or the `[grouping]` default.
#[derive(Debug, Clone)]
pub(crate) struct GroupRule {
    pub(crate) id: String,
    pub(crate) by: Vec<ByField>,
    pub(crate) window_secs: u64,
    /// Empty: every alert (within `buckets`).
    pub(crate) clauses: Vec<Clause>,
    /// `None`: every bucket.
    pub(crate) buckets: Option<Vec<Bucket>>,
}

impl GroupRule {
    /// The default: `by = ["rule.id", "agent"]`, `window = "1h"`.
    pub(crate) fn default_rule() -> GroupRule {
        GroupRule {
            id: DEFAULT_GROUP.to_string(),
            by: vec![
                ByField::Path(vec![Box::from("rule"), Box::from("id")].into_boxed_slice()),
                ByField::Agent,
            ],
            window_secs: DEFAULT_WINDOW_SECS,
            clauses: Vec::new(),
            buckets: None,
        }
    }

    /// `None` when the rule applies, else why not (a trace line).
    fn miss(&self, subject: &Subject<'_>, bucket: Bucket) -> Option<String> {
        if let Some(buckets) = &self.buckets {
            if !buckets.contains(&bucket) {
                return Some(format!(
                    "group {}: bucket {bucket} is not one of its buckets",
                    self.id
                ));
            }
        }
        self.clauses.iter().find_map(|c| match c.check(subject) {
            Ok(()) => None,
            Err(true) => Some(format!("group {}: {} does not hold", self.id, c.desc)),
            Err(false) => Some(format!("group {}: {} (field missing)", self.id, c.desc)),
        })
    }
}

/// The `[[group]]` rules, in file order, and the `[grouping]` default.
#[derive(Debug, Clone)]
pub(crate) struct Grouping {
    pub(crate) rules: Vec<GroupRule>,
    pub(crate) default: GroupRule,
}

impl Default for Grouping {
    fn default() -> Self {
        Grouping {
            rules: Vec::new(),
            default: GroupRule::default_rule(),
        }
    }
}

/// One field of an incident's key and the alert's value of it (`None`: missing or null; such
/// alerts group together, as Elastic's `suppress` strategy does).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyField {
    pub field: String,
    pub value: Option<String>,
}

/// An alert's incident: which group, the key, the window, and the ids. Stored with the intent,
/// so a retry never re-groups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentKey {
    /// `INC-` and 20 hex digits.
    pub id: String,
    /// The `[[group]]` rule's id, or [`DEFAULT_GROUP`].
    pub group: String,
    pub key: Vec<KeyField>,
    pub window_secs: u64,
    /// The window's start (UTC, a multiple of the window since the epoch).
    pub window_start: DateTime<Utc>,
    /// The id of the same key's incident in the window before (it continues that one when that
    /// one has members).
    pub previous: String,
}

impl IncidentKey {
    /// The window's end (exclusive).
    pub fn window_end(&self) -> DateTime<Utc> {
        self.window_start + chrono::Duration::seconds(secs_i64(self.window_secs))
    }

    /// One readable line: `incident INC-..: group default by rule.id="5716", agent="web-1", window 1h from ..`.
    pub fn trace_line(&self) -> String {
        let mut s = format!("incident {}: group {} by ", self.id, self.group);
        for (i, f) in self.key.iter().enumerate() {
            if i > 0 {
                s.push_str(", ");
            }
            s.push_str(&f.field);
            s.push('=');
            match &f.value {
                Some(v) => push_quoted(&mut s, v),
                None => s.push_str("(missing)"),
            }
        }
        let _ = write!(
            s,
            ", window {} from {}",
            format_duration(self.window_secs),
            self.window_start
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
        s
    }
}

fn secs_i64(s: u64) -> i64 {
    i64::try_from(s).unwrap_or(i64::MAX)
}

/// The id of a key's incident in window number `n`.
fn incident_id(group: &str, window_secs: u64, key: &[KeyField], n: i64) -> String {
    let mut h = Sha256::new();
    h.update(group.as_bytes());
    h.update([0x1f]);
    h.update(window_secs.to_string().as_bytes());
    h.update([0x1f]);
    for f in key {
        h.update(f.field.as_bytes());
        match &f.value {
            Some(v) => {
                h.update(b"=");
                h.update(v.as_bytes());
            }
            // Missing is not the empty string.
            None => h.update(b"\x00"),
        }
        h.update([0x1f]);
    }
    h.update(n.to_string().as_bytes());
    let digest = h.finalize();
    let mut id = String::with_capacity(24);
    id.push_str("INC-");
    for b in &digest[..10] {
        let _ = write!(id, "{b:02x}");
    }
    id
}

/// The key's text for one value: strings as they are, numbers as the policy's matchers write
/// them (`5716` and `"5716"` are one key), booleans, and arrays and objects as compact JSON;
/// `None` for missing or null.
fn value_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.as_f64().map_or_else(|| n.to_string(), canonical_number)),
        Value::Bool(b) => Some(b.to_string()),
        other => Some(other.to_string()),
    }
}

fn value_at<'a>(alert: &'a Value, path: &[Box<str>]) -> Option<&'a Value> {
    path.iter()
        .try_fold(alert, |cur, seg| cur.as_object()?.get(&**seg))
}

impl Grouping {
    /// The rule that groups this alert, and the trace lines of the rules tried before it.
    fn rule_for(&self, subject: &Subject<'_>, bucket: Bucket) -> (&GroupRule, Vec<String>) {
        let mut tried = Vec::new();
        for rule in &self.rules {
            match rule.miss(subject, bucket) {
                None => return (rule, tried),
                Some(line) => tried.push(line),
            }
        }
        (&self.default, tried)
    }

    /// The alert's incident (see the module's docs), with the trace lines that explain it.
    pub(crate) fn incident(
        &self,
        alert: &Value,
        agent: &str,
        bucket: Bucket,
        time: DateTime<Utc>,
    ) -> (IncidentKey, Vec<String>) {
        let subject = Subject::new(alert, agent);
        let (rule, mut trace) = self.rule_for(&subject, bucket);
        let key: Vec<KeyField> = rule
            .by
            .iter()
            .map(|f| KeyField {
                field: f.name(),
                value: match f {
                    ByField::Agent => Some(agent.to_string()),
                    ByField::Path(p) => value_text(value_at(alert, p)),
                },
            })
            .collect();
        let w = secs_i64(rule.window_secs.max(1));
        let n = time.timestamp().div_euclid(w);
        let start = DateTime::from_timestamp(n.saturating_mul(w), 0).unwrap_or(time);
        let k = IncidentKey {
            id: incident_id(&rule.id, rule.window_secs, &key, n),
            previous: incident_id(&rule.id, rule.window_secs, &key, n - 1),
            group: rule.id.clone(),
            key,
            window_secs: rule.window_secs,
            window_start: start,
        };
        trace.push(k.trace_line());
        (k, trace)
    }
}

/// Parses a duration: one or more `<whole number><unit>` parts, units `s`, `m`, `h`, `d`, `w`
/// (`"90s"`, `"1h"`, `"1h30m"`). Zero is not a duration.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let text = s.trim();
    if text.is_empty() {
        return Err("is empty".into());
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit: u64 = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            _ => {
                return Err(format!(
                    "has {c:?}, which is not a digit or a unit (s, m, h, d, w)"
                ))
            }
        };
        if digits.is_empty() {
            return Err(format!("has the unit {c:?} without a number before it"));
        }
        let n: u64 = digits.parse().map_err(|_| "is too long".to_string())?;
        total = n
            .checked_mul(unit)
            .and_then(|x| total.checked_add(x))
            .ok_or_else(|| "is too long".to_string())?;
        digits.clear();
    }
    if !digits.is_empty() {
        return Err(format!("ends in {digits:?} without a unit (s, m, h, d, w)"));
    }
    if total == 0 {
        return Err("is zero".into());
    }
    Ok(total)
}

/// A duration as the policy would write it (`3600` → `1h`, `5400` → `1h30m`).
pub fn format_duration(secs: u64) -> String {
    if secs == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    let mut rest = secs;
    for (unit, n) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
        if rest >= n {
            let _ = write!(out, "{}{unit}", rest / n);
            rest %= n;
        }
    }
    out
}

/// An alert's time as the pipeline reads it: `timestamp`, else `@timestamp` (RFC 3339, Wazuh's
/// `2023-01-23T14:57:51.437+0000`, or epoch milliseconds), a year outside 0-9999 refused. `None`:
/// neither reads (the pipeline then uses the time the alert entered its spool).
pub fn alert_time(alert: &serde_json::Map<String, Value>) -> Option<DateTime<Utc>> {
    let in_range = |t: &DateTime<Utc>| (0..=9999).contains(&chrono::Datelike::year(t));
    ["timestamp", "@timestamp"]
        .iter()
        .find_map(|k| alert.get(*k).and_then(parse_time).filter(in_range))
}

/// Parses a Wazuh or indexer timestamp: RFC 3339, `2023-01-23T14:57:51.437+0000`, or epoch millis.
pub fn parse_time(v: &Value) -> Option<DateTime<Utc>> {
    use chrono::{NaiveDateTime, TimeZone};
    match v {
        Value::String(s) => {
            let s = s.trim();
            if let Ok(t) = DateTime::parse_from_rfc3339(s) {
                return Some(t.with_timezone(&Utc));
            }
            if let Ok(t) = DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z") {
                return Some(t.with_timezone(&Utc));
            }
            if let Ok(t) = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f") {
                return Some(Utc.from_utc_datetime(&t));
            }
            None
        }
        Value::Number(n) => n.as_i64().and_then(DateTime::from_timestamp_millis),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 4, h, m, s)
            .single()
            .expect("time")
    }

    fn alert(rule: &str) -> Value {
        serde_json::json!({"rule": {"id": rule, "level": 5}, "agent": {"name": "web-1"}})
    }

    #[test]
    fn durations_parse_and_print_back() {
        for (text, secs) in [("90s", 90), ("1h", 3600), ("1h30m", 5400), ("2d", 172_800)] {
            assert_eq!(parse_duration(text), Ok(secs), "{text}");
        }
        assert_eq!(format_duration(5400), "1h30m");
        assert_eq!(format_duration(3600), "1h");
        for bad in ["", "0s", "1", "h", "1x", "-1h", "99999999999999999999s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_id_depends_on_key_and_window_only() {
        let g = Grouping::default();
        let (a, _) = g.incident(&alert("5716"), "web-1", Bucket::Low, at(10, 0, 1));
        let (b, _) = g.incident(&alert("5716"), "web-1", Bucket::High, at(10, 59, 59));
        let (c, _) = g.incident(&alert("5716"), "web-1", Bucket::Low, at(11, 0, 0));
        let (d, _) = g.incident(&alert("5716"), "web-2", Bucket::Low, at(10, 0, 1));
        assert_eq!(a.id, b.id, "one window, one key: one incident");
        assert_ne!(a.id, c.id, "the next window is the next incident");
        assert_eq!(c.previous, a.id, "and it continues the one before");
        assert_ne!(a.id, d.id, "another agent is another incident");
        assert_eq!(a.window_start, at(10, 0, 0));
        assert_eq!(a.window_end(), at(11, 0, 0));
        assert!(a.id.starts_with("INC-") && a.id.len() == 24);
        assert!(a.id[4..].bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn numbers_and_numeric_strings_are_one_key_and_missing_is_not_empty() {
        let g = Grouping::default();
        let num = serde_json::json!({"rule": {"id": 5716}});
        let text = serde_json::json!({"rule": {"id": "5716"}});
        let empty = serde_json::json!({"rule": {"id": ""}});
        let missing = serde_json::json!({"rule": {}});
        let t = at(1, 0, 0);
        let id = |v: &Value| g.incident(v, "a", Bucket::Low, t).0.id;
        assert_eq!(id(&num), id(&text));
        assert_ne!(id(&empty), id(&missing));
    }
}
