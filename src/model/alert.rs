//! What the spool needs to know about one alert: strict parsing, the alert key, the level, the
//! alert time and the content hash that tells a duplicate from a conflict.
//!
//! Design constraints:
//! - Alert content is attacker-influenced. Nothing here builds a path; the key is only ever
//!   stored in the ledger and hashed into file names ([`KeyHash`]).
//! - A JSON object with a duplicated key is refused (a way to show one value and be decided on
//!   another), as are invalid UTF-8 and anything but an object at the top.
//! - One reading of `rule.level`: sf-policy's [`Level::read`], the one the policy decides with,
//!   so that queue priority, the ledger, the decision and a quarantine's pack agree on it.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use sf_policy::Level;
use sha2::{Digest, Sha256};

/// An alert's identity: its manager with its `id`, else the indexer's `_index/_id`, else a hash
/// of its content. Attacker-influenced text: never used in a path.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AlertKey(String);

impl AlertKey {
    pub fn from_stored(s: String) -> Self {
        AlertKey(s)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn hash(&self) -> KeyHash {
        KeyHash::of(self.0.as_bytes())
    }
}

impl fmt::Display for AlertKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A fixed-width hash of an alert key (32 lowercase hex digits): the part of file names and
/// case ids that identifies the alert.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyHash(String);

impl KeyHash {
    pub const LEN: usize = 32;

    pub fn of(bytes: &[u8]) -> Self {
        let d = Sha256::digest(bytes);
        KeyHash(hex::encode(&d[..Self::LEN / 2]))
    }

    /// Accepts exactly 32 lowercase hex digits.
    pub fn parse(s: &str) -> Option<Self> {
        (s.len() == Self::LEN
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        .then(|| KeyHash(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why an alert's bytes could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("not valid UTF-8 (first bad byte at offset {0})")]
    Utf8(usize),
    #[error("invalid JSON: {0}")]
    Json(String),
    #[error("duplicated key {0:?} in a JSON object")]
    DuplicateKey(String),
    #[error("the top-level JSON value is {0}, not an object")]
    NotObject(&'static str),
    #[error("empty input")]
    Empty,
}

/// Parses bytes as one JSON object, refusing invalid UTF-8, duplicated keys and non-objects.
/// Nesting deeper than serde_json's recursion limit (128) is refused as invalid JSON.
pub fn parse_strict(bytes: &[u8]) -> Result<Map<String, Value>, ParseError> {
    let text = std::str::from_utf8(bytes).map_err(|e| ParseError::Utf8(e.valid_up_to()))?;
    if text.trim().is_empty() {
        return Err(ParseError::Empty);
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let value = StrictSeed.deserialize(&mut de).map_err(|e| {
        let msg = e.to_string();
        match msg.strip_prefix(DUP_PREFIX) {
            Some(rest) => {
                ParseError::DuplicateKey(rest.split(" at line").next().unwrap_or(rest).to_string())
            }
            None => ParseError::Json(msg),
        }
    })?;
    de.end().map_err(|e| ParseError::Json(e.to_string()))?;
    match value {
        Value::Object(m) => Ok(m),
        Value::Array(_) => Err(ParseError::NotObject("an array")),
        Value::String(_) => Err(ParseError::NotObject("a string")),
        Value::Number(_) => Err(ParseError::NotObject("a number")),
        Value::Bool(_) => Err(ParseError::NotObject("a boolean")),
        Value::Null => Err(ParseError::NotObject("null")),
    }
}

const DUP_PREFIX: &str = "\u{0}dup:";

struct StrictSeed;

impl<'de> DeserializeSeed<'de> for StrictSeed {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut v = Vec::new();
        while let Some(x) = seq.next_element_seed(StrictSeed)? {
            v.push(x);
        }
        Ok(Value::Array(v))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut m = Map::new();
        while let Some(k) = map.next_key::<String>()? {
            if m.contains_key(&k) {
                return Err(de::Error::custom(format!("{DUP_PREFIX}{k}")));
            }
            let v = map.next_value_seed(StrictSeed)?;
            m.insert(k, v);
        }
        Ok(Value::Object(m))
    }
}

/// Where the alert time came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeSource {
    Timestamp,
    AtTimestamp,
    /// Neither parsed: the time the alert entered the spool.
    Admission,
}

/// What the spool derives from one alert.
#[derive(Debug, Clone)]
pub struct AlertMeta {
    pub key: AlertKey,
    pub key_hash: KeyHash,
    /// `rule.level` as it ranks the alert ([`Level::rank`]): the level, or for a number that
    /// is not one (`12.5`, `1e3`) its whole part, so that the alert keeps its queue priority
    /// and, quarantined, its escalation pack; none when it does not read as a number (or is
    /// negative).
    pub level: Option<u32>,
    pub time: DateTime<Utc>,
    pub time_source: TimeSource,
    /// Hash of the alert without what the indexer adds (`@timestamp`, `input`, `GeoLocation`):
    /// same key and same content hash is a duplicate; same key, other hash, a conflict.
    pub content_hash: String,
}

/// Fields the indexer adds to an `alerts.json` line; ignored when comparing two copies.
const INDEXER_ADDED: [&str; 3] = ["@timestamp", "input", "GeoLocation"];

/// Derives key, level, time and content hash. `index_id` is the indexer's `(_index, _id)` when
/// the alert came from a search hit; `now` is the admission time.
pub fn meta(
    alert: &Map<String, Value>,
    index_id: Option<(&str, &str)>,
    now: DateTime<Utc>,
) -> AlertMeta {
    let content_hash = content_hash(alert);
    let key = alert_key(alert, index_id, &content_hash);
    let key_hash = key.hash();
    let level = level_of(alert).rank();
    let (time, time_source) = time_of(alert, now);
    AlertMeta {
        key,
        key_hash,
        level,
        time,
        time_source,
        content_hash,
    }
}

fn content_hash(alert: &Map<String, Value>) -> String {
    /// Feeds serialized JSON straight into the hash: no string per field.
    struct HashWriter(Sha256);
    impl std::io::Write for HashWriter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.update(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut w = HashWriter(Sha256::new());
    // serde_json's Map is ordered by key, so equal content serializes to equal bytes.
    for (k, v) in alert {
        if INDEXER_ADDED.contains(&k.as_str()) {
            continue;
        }
        // Writing to a hasher cannot fail.
        let _ = serde_json::to_writer(&mut w, k);
        w.0.update(b":");
        let _ = serde_json::to_writer(&mut w, v);
        w.0.update(b",");
    }
    hex::encode(w.0.finalize())
}

fn scalar_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn field<'a>(alert: &'a Map<String, Value>, path: &[&str]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let mut v = alert.get(*first)?;
    for p in rest {
        v = v.as_object()?.get(*p)?;
    }
    Some(v)
}

/// The alert key as DESIGN.md defines it.
pub fn alert_key(
    alert: &Map<String, Value>,
    index_id: Option<(&str, &str)>,
    content_hash: &str,
) -> AlertKey {
    let manager = scalar_text(field(alert, &["manager", "name"]))
        .or_else(|| scalar_text(field(alert, &["cluster", "node"])));
    let id = scalar_text(alert.get("id"));
    if let (Some(m), Some(i)) = (manager, id) {
        return AlertKey(format!("manager:{}/id:{}", json_str(&m), json_str(&i)));
    }
    if let Some((index, doc)) = index_id {
        return AlertKey(format!("index:{}/_id:{}", json_str(index), json_str(doc)));
    }
    AlertKey(format!("sha256:{content_hash}"))
}

/// `s` as a JSON string literal (quoted, escaped as `serde_json` escapes): how alert keys and
/// poll origins quote their parts. A string always serializes, so there is no error to pass
/// on: this is `Value`'s `Display`, with no `Result` to drop.
pub fn json_str(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// `rule.level` as the policy reads it ([`Level::read`], the one reading of a level): its
/// [`rank`](Level::rank) orders and escalates the alert, its
/// [`decidable`](Level::decidable) level is what the policy decides on. A string level counts
/// when it holds a decimal integer, ASCII whitespace around it ignored (`" 12"`); `"+12"` does
/// not read as a number.
pub fn level_of(alert: &Map<String, Value>) -> Level {
    Level::read(field(alert, &["rule", "level"]))
}

/// Parses a Wazuh or indexer timestamp: RFC 3339, `2023-01-23T14:57:51.437+0000`, or epoch
/// millis (the policy engine's reading: one reading of an alert time for triage, grouping and
/// `policy test`).
pub use sf_policy::group::parse_time;

fn time_of(alert: &Map<String, Value>, now: DateTime<Utc>) -> (DateTime<Utc>, TimeSource) {
    match sf_policy::alert_time(alert) {
        Some(t) if alert.get("timestamp").and_then(parse_time) == Some(t) => {
            (t, TimeSource::Timestamp)
        }
        Some(t) => (t, TimeSource::AtTimestamp),
        None => (now, TimeSource::Admission),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn json_str_quotes_exactly_as_serde_json_serializes_a_string() {
        let every_ascii: String = (0u8..=0x7f).map(char::from).collect();
        for s in [
            "",
            "m1",
            "1764000000.1",
            every_ascii.as_str(),
            "quote \" backslash \\ slash /",
            "Grüße \u{80}\u{85}\u{2028}\u{2029}\u{202e}\u{feff} \u{1f600}",
        ] {
            assert_eq!(
                json_str(s),
                serde_json::to_string(s).expect("a string"),
                "{s:?}"
            );
        }
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0)
            .single()
            .expect("valid")
    }

    #[test]
    fn duplicated_keys_are_refused_at_any_depth() {
        assert_eq!(
            parse_strict(br#"{"rule":{"level":3,"level":15}}"#),
            Err(ParseError::DuplicateKey("level".into()))
        );
        assert!(parse_strict(br#"{"a":[{"b":1},{"b":2}]}"#).is_ok());
    }

    #[test]
    fn non_objects_invalid_utf8_truncation_and_deep_nesting_are_refused() {
        assert_eq!(parse_strict(b"[1]"), Err(ParseError::NotObject("an array")));
        assert_eq!(parse_strict(b"  "), Err(ParseError::Empty));
        assert_eq!(parse_strict(b"{\"a\":\"\xff\"}"), Err(ParseError::Utf8(6)));
        assert!(matches!(
            parse_strict(br#"{"a": "#),
            Err(ParseError::Json(_))
        ));
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(5000), "]".repeat(5000));
        assert!(matches!(
            parse_strict(deep.as_bytes()),
            Err(ParseError::Json(_))
        ));
        assert!(matches!(
            parse_strict(br#"{"a":1} {"b":2}"#),
            Err(ParseError::Json(_))
        ));
    }

    #[test]
    fn key_is_manager_and_id_then_index_id_then_content() {
        let a =
            parse_strict(br#"{"manager":{"name":"c3"},"id":"1674485871.513836"}"#).expect("parse");
        assert_eq!(
            meta(&a, None, now()).key.as_str(),
            r#"manager:"c3"/id:"1674485871.513836""#
        );
        let b = parse_strict(br#"{"cluster":{"node":"n1"},"id":"1.2"}"#).expect("parse");
        assert_eq!(
            meta(&b, None, now()).key.as_str(),
            r#"manager:"n1"/id:"1.2""#
        );
        let c = parse_strict(br#"{"rule":{"level":3}}"#).expect("parse");
        assert_eq!(
            meta(&c, Some(("wazuh-alerts-4.x-2026.11.27", "AbC")), now())
                .key
                .as_str(),
            r#"index:"wazuh-alerts-4.x-2026.11.27"/_id:"AbC""#
        );
        assert!(meta(&c, None, now()).key.as_str().starts_with("sha256:"));
    }

    #[test]
    fn indexer_added_fields_do_not_change_the_content_hash() {
        let a = parse_strict(br#"{"id":"1","manager":{"name":"m"},"rule":{"level":5}}"#)
            .expect("parse");
        let b = parse_strict(
            br#"{"rule":{"level":5},"@timestamp":"2026-01-01T00:00:00Z","input":{"type":"log"},"id":"1","manager":{"name":"m"},"GeoLocation":{}}"#,
        )
        .expect("parse");
        let c = parse_strict(br#"{"id":"1","manager":{"name":"m"},"rule":{"level":6}}"#)
            .expect("parse");
        assert_eq!(
            meta(&a, None, now()).content_hash,
            meta(&b, None, now()).content_hash
        );
        assert_ne!(
            meta(&a, None, now()).content_hash,
            meta(&c, None, now()).content_hash
        );
    }

    #[test]
    fn key_order_does_not_change_the_content_hash() {
        // Guards against serde_json's `preserve_order` being switched on by a dependency:
        // the hash relies on maps iterating in key order.
        let a = parse_strict(br#"{"a":1,"b":{"x":1,"y":2}}"#).expect("parse");
        let b = parse_strict(br#"{"b":{"y":2,"x":1},"a":1}"#).expect("parse");
        assert_eq!(
            meta(&a, None, now()).content_hash,
            meta(&b, None, now()).content_hash
        );
    }

    #[test]
    fn times_with_offsets_fall_back_to_at_timestamp_then_admission() {
        let a = parse_strict(br#"{"timestamp":"2023-01-23T14:57:51.437-0300"}"#).expect("parse");
        let m = meta(&a, None, now());
        assert_eq!(m.time.to_rfc3339(), "2023-01-23T17:57:51.437+00:00");
        assert_eq!(m.time_source, TimeSource::Timestamp);
        let b = parse_strict(br#"{"timestamp":"garbage","@timestamp":"2019-03-01T10:00:00.000Z"}"#)
            .expect("parse");
        assert_eq!(meta(&b, None, now()).time_source, TimeSource::AtTimestamp);
        let c = parse_strict(br#"{"timestamp":17}"#).expect("parse");
        assert_eq!(meta(&c, None, now()).time_source, TimeSource::Timestamp);
        let d = parse_strict(br#"{"timestamp":{"x":1}}"#).expect("parse");
        assert_eq!(meta(&d, None, now()).time, now());
    }

    /// `rule.level` as JSON text (`None`: no `level` key) → (the level the policy decides on,
    /// the level the spool ranks the alert by: queue priority, the ledger, a quarantine's pack).
    #[track_caller]
    fn check_level(level: Option<&str>, decided: Option<u32>, ranked: Option<u32>) {
        let text = match level {
            Some(l) => format!(r#"{{"rule":{{"id":"5","level":{l}}}}}"#),
            None => r#"{"rule":{"id":"5"}}"#.to_string(),
        };
        let alert = parse_strict(text.as_bytes()).expect("parse");
        let policy = sf_policy::Policy::severity_only()
            .decide(&Value::Object(alert.clone()), now())
            .ok()
            .map(|d| d.level);
        assert_eq!(
            (policy, meta(&alert, None, now()).level),
            (decided, ranked),
            "{text}"
        );
    }

    #[test]
    fn the_spool_and_the_policy_read_a_level_the_same_way() {
        check_level(Some("12"), Some(12), Some(12));
        check_level(Some("12.0"), Some(12), Some(12));
        check_level(Some("1e1"), Some(10), Some(10));
        check_level(Some("0"), Some(0), Some(0));
        check_level(Some("16"), Some(16), Some(16));
        // Numbers that are not levels: not decidable, but they keep their rank.
        check_level(Some("12.5"), None, Some(12));
        check_level(Some("11.9"), None, Some(11));
        check_level(Some("1e3"), None, Some(1000));
        check_level(Some("17"), None, Some(17));
        check_level(Some("1e300"), None, Some(u32::MAX));
        check_level(Some("-1"), None, None);
        check_level(Some("-0.5"), None, None);
        // Strings: a decimal integer, ASCII whitespace around it ignored; nothing else.
        check_level(Some(r#""12""#), Some(12), Some(12));
        check_level(Some(r#"" 12""#), Some(12), Some(12));
        check_level(Some(r#""1000""#), None, Some(1000));
        check_level(Some(r#""+12""#), None, None);
        check_level(Some(r#""-1""#), None, None);
        check_level(Some(r#""12.0""#), None, None);
        check_level(Some(r#""high""#), None, None);
        check_level(Some("true"), None, None);
        check_level(Some("[12]"), None, None);
        check_level(Some("null"), None, None);
        check_level(None, None, None);
    }
}
