//! Stage 4, cases: the case id, the case directory's place, and `case.json`.
//!
//! Design constraints:
//! - Case ids are deterministic from the alert key (`SF-<key hash>`) and match `[A-Za-z0-9-]+`.
//! - The case path is `cases/<bucket>/<YYYY>/<MM>/<DD>/<case-id>/`, the date being the alert
//!   time in UTC. Both are fixed in the intent row before any file moves, so a retry (or a
//!   policy reload, or midnight) can never produce a second case.
//! - `case.json` holds alert text as JSON strings only; nothing in it is interpreted.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::model::alert::KeyHash;

/// A case id: `SF-` and the alert key's hash.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CaseId(String);

impl CaseId {
    pub fn for_key(hash: &KeyHash) -> CaseId {
        CaseId(format!("SF-{hash}"))
    }
    /// Accepts a stored id only when it is in the allow-listed alphabet.
    pub fn from_stored(s: &str) -> Option<CaseId> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
            .then(|| CaseId(s.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The decision as the intent row stores it: a retry reuses it and never re-decides. Typed
/// (`Bucket`, `MatchedKind`); stored as the same lowercase strings as before.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StoredDecision {
    pub bucket: sf_policy::Bucket,
    pub critical: bool,
    pub agent: String,
    pub alias: Option<String>,
    pub matched: Option<String>,
    pub matched_kind: Option<sf_policy::MatchedKind>,
    pub held_back: Vec<String>,
    pub expired: Vec<String>,
    pub trace: Vec<String>,
    pub level: u32,
    pub policy_version: String,
    pub decided_at: String,
    /// The alert's incident, fixed with the rest (absent from intents stored before incidents
    /// existed: planning fills it in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<sf_policy::IncidentKey>,
}

impl StoredDecision {
    pub fn from_policy(
        d: &sf_policy::Decision,
        policy_version: &str,
        now: DateTime<Utc>,
    ) -> StoredDecision {
        StoredDecision {
            bucket: d.bucket,
            critical: d.critical,
            agent: d.agent.clone(),
            alias: d.alias.clone(),
            matched: d.matched.clone(),
            matched_kind: d.matched_kind,
            held_back: d.held_back.clone(),
            expired: d.expired.clone(),
            trace: d.trace.clone(),
            level: d.level,
            policy_version: policy_version.to_string(),
            decided_at: now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            incident: None,
        }
    }
}

/// The directory of a case below `cases/`: `[bucket, YYYY, MM, DD]` and the case id.
pub fn case_dirs(bucket: &str, alert_time: DateTime<Utc>) -> [String; 4] {
    [
        bucket.to_string(),
        alert_time.format("%Y").to_string(),
        alert_time.format("%m").to_string(),
        alert_time.format("%d").to_string(),
    ]
}

/// `bucket/YYYY/MM/DD/case-id`, as the intent row stores it.
pub fn case_path(bucket: &str, alert_time: DateTime<Utc>, id: &CaseId) -> String {
    let [b, y, m, d] = case_dirs(bucket, alert_time);
    format!("{b}/{y}/{m}/{d}/{}", id.as_str())
}

fn at<'a>(alert: &'a Map<String, Value>, path: &[&str]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let mut v = alert.get(*first)?;
    for p in rest {
        v = v.as_object()?.get(*p)?;
    }
    Some(v)
}

fn pick(alert: &Map<String, Value>, path: &[&str]) -> Value {
    at(alert, path).cloned().unwrap_or(Value::Null)
}

/// Percent-encodes everything outside `[A-Za-z0-9._-]` (for ids placed in a dashboard URL).
fn url_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A link to the alert in the Wazuh dashboard, when the dashboard URL is configured and the
/// indexer's `_index`/`_id` are known.
pub fn dashboard_link(base: Option<&str>, index_id: Option<(&str, &str)>) -> Option<String> {
    let base = base?.trim_end_matches('/');
    let (index, id) = index_id?;
    Some(format!(
        "{base}/app/discover#/doc/wazuh-alerts/{}?id={}",
        url_component(index),
        url_component(id)
    ))
}

/// What `case.json` is built from.
pub struct CaseInput<'a> {
    pub case_id: &'a CaseId,
    pub alert_key: &'a str,
    pub index_id: Option<(&'a str, &'a str)>,
    pub decision: &'a StoredDecision,
    pub alert: &'a Map<String, Value>,
    pub alert_time: DateTime<Utc>,
    pub triage_time: DateTime<Utc>,
    pub dashboard_url: Option<&'a str>,
    pub quarantine_entry: Option<&'a str>,
}

/// Builds `case.json`.
pub fn case_json(c: &CaseInput<'_>) -> Value {
    let a = c.alert;
    let d = c.decision;
    let mut v = json!({
        "case_id": c.case_id.as_str(),
        "alert_key": c.alert_key,
        "index": c.index_id.map(|x| x.0),
        "id": c.index_id.map(|x| x.1),
        "bucket": d.bucket,
        "critical": d.critical,
        "agent": {
            "canonical": d.agent,
            "alias": d.alias,
            "id": pick(a, &["agent", "id"]),
            "name": pick(a, &["agent", "name"]),
            "ip": pick(a, &["agent", "ip"]),
            "computer": pick(a, &["data", "win", "system", "computer"]),
            "hostname": pick(a, &["predecoder", "hostname"]),
        },
        "rule": {
            "id": pick(a, &["rule", "id"]),
            "level": d.level,
            "description": pick(a, &["rule", "description"]),
            "groups": pick(a, &["rule", "groups"]),
            "mitre": pick(a, &["rule", "mitre"]),
        },
        "alert_time": c.alert_time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "triage_time": c.triage_time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "policy_version": d.policy_version,
        "decision": {
            "matched": d.matched,
            "matched_kind": d.matched_kind,
            "held_back": d.held_back,
            "expired": d.expired,
            "trace": d.trace,
        },
        "dashboard_link": dashboard_link(c.dashboard_url, c.index_id),
        "incident": d.incident.as_ref().map(|k| k.id.as_str()),
    });
    if let (Some(entry), Some(obj)) = (c.quarantine_entry, v.as_object_mut()) {
        obj.insert("quarantined".into(), Value::Bool(true));
        obj.insert("quarantine_entry".into(), Value::String(entry.to_string()));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn case_ids_are_deterministic_and_allow_listed() {
        let h = KeyHash::of(b"manager:\"m\"/id:\"../../etc\"");
        let a = CaseId::for_key(&h);
        assert_eq!(a, CaseId::for_key(&h));
        assert!(a
            .as_str()
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-'));
        assert!(CaseId::from_stored("../x").is_none());
    }

    #[test]
    fn case_paths_use_the_alert_date_in_utc() {
        let t = Utc
            .with_ymd_and_hms(2026, 3, 9, 23, 59, 0)
            .single()
            .expect("t");
        let id = CaseId::for_key(&KeyHash::of(b"k"));
        assert_eq!(
            case_path("high", t, &id),
            format!("high/2026/03/09/{}", id.as_str())
        );
    }

    #[test]
    fn dashboard_links_encode_ids_and_need_both() {
        assert_eq!(dashboard_link(Some("https://d/"), None), None);
        assert_eq!(
            dashboard_link(
                Some("https://d/"),
                Some(("wazuh-alerts-4.x-2026.01.01", "a/b?c"))
            )
            .as_deref(),
            Some(
                "https://d/app/discover#/doc/wazuh-alerts/wazuh-alerts-4.x-2026.01.01?id=a%2Fb%3Fc"
            )
        );
    }
}
