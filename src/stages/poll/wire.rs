//! The OpenSearch wire shapes the poller writes (query bodies) and reads (cluster info, search
//! hits, counts, point-in-time create and delete, error bodies).
//!
//! Design constraints:
//! - Every response type here is parsed from the real OpenSearch bodies in
//!   `crates/indexer-sim/tests/data/opensearch/` by `tests/it/poll.rs`, so the poller and the
//!   simulator cannot agree on a shape a real indexer does not send.
//! - A hit's `_source` is kept as the indexer's bytes ([`RawValue`]): each alert is then parsed
//!   strictly on its own, so one hostile alert (a duplicated key) is quarantined instead of
//!   failing its whole page, and the queued file is what the indexer stored.
//! - Unknown fields are ignored (OpenSearch adds fields between versions); the fields the
//!   poller decides on (`_shards.failed`, `timed_out`, `hits.hits`, `sort`) are required.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

/// `GET /`.
#[derive(Debug, Clone, Deserialize)]
pub struct ClusterInfo {
    #[serde(default)]
    pub cluster_name: Option<String>,
    pub version: VersionInfo,
}

#[derive(Debug, Clone, Deserialize)]
pub struct VersionInfo {
    pub number: String,
    /// `opensearch` on an indexer that reports its own version; absent on a Wazuh 4.x indexer
    /// in its Filebeat-compatibility mode (which reports `7.10.2`).
    #[serde(default)]
    pub distribution: Option<String>,
}

impl VersionInfo {
    /// `(major, minor)` of `number`; unparsable parts are 0.
    pub fn major_minor(&self) -> (u32, u32) {
        let mut parts = self
            .number
            .split(['.', '-'])
            .map(|p| p.parse::<u32>().unwrap_or(0));
        (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
    }

    pub fn is_opensearch(&self) -> bool {
        self.distribution.as_deref() == Some("opensearch")
    }
}

/// `_shards` of a search, count or point-in-time answer.
#[derive(Debug, Clone, Deserialize)]
pub struct Shards {
    pub total: u64,
    pub successful: u64,
    #[serde(default)]
    pub skipped: u64,
    pub failed: u64,
    #[serde(default)]
    pub failures: Vec<Value>,
}

impl Shards {
    /// The first failure's reason, for messages.
    pub fn first_reason(&self) -> String {
        self.failures
            .first()
            .and_then(|f| f.get("reason"))
            .map(|r| match r.get("reason").and_then(Value::as_str) {
                Some(s) => s.to_string(),
                None => r.to_string(),
            })
            .unwrap_or_default()
    }
}

/// `_search`.
#[derive(Debug, Deserialize)]
pub struct SearchResponse {
    /// Present on a search inside a point in time: the id to use next.
    #[serde(default)]
    pub pit_id: Option<String>,
    #[serde(default)]
    pub took: u64,
    pub timed_out: bool,
    #[serde(rename = "_shards")]
    pub shards: Shards,
    pub hits: Hits,
}

impl SearchResponse {
    /// `Some(why)` when the answer is partial (some shards failed, or the search timed out):
    /// such a page is retried, never committed.
    pub fn partial(&self) -> Option<String> {
        if self.shards.failed > 0 {
            return Some(format!(
                "partial results: {} of {} shards failed ({})",
                self.shards.failed,
                self.shards.total,
                self.shards.first_reason()
            ));
        }
        if self.timed_out {
            return Some("partial results: the search timed out on the indexer".into());
        }
        None
    }
}

#[derive(Debug, Deserialize)]
pub struct Hits {
    /// Absent with `track_total_hits: false`.
    #[serde(default)]
    pub total: Option<Total>,
    pub hits: Vec<Hit>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Total {
    pub value: u64,
    pub relation: String,
}

/// One hit. `_source` is absent with `_source: false`.
#[derive(Debug, Deserialize)]
pub struct Hit {
    #[serde(rename = "_index")]
    pub index: String,
    #[serde(rename = "_id")]
    pub id: String,
    #[serde(rename = "_source", default)]
    pub source: Option<Box<RawValue>>,
    /// The hit's sort values (dates as epoch millis), fed back as `search_after`.
    #[serde(default)]
    pub sort: Vec<Value>,
}

impl Hit {
    /// The first sort value (`timestamp`, epoch millis) as a time.
    pub fn sort_time(&self) -> Option<DateTime<Utc>> {
        let ms = match self.sort.first()? {
            Value::Number(n) => n.as_i64()?,
            Value::String(s) => s.parse().ok()?,
            _ => return None,
        };
        // OpenSearch sorts a missing date as Long.MAX_VALUE.
        if ms == i64::MAX || ms == i64::MIN {
            return None;
        }
        DateTime::from_timestamp_millis(ms)
    }
}

/// `_count`.
#[derive(Debug, Deserialize)]
pub struct CountResponse {
    pub count: u64,
    #[serde(rename = "_shards")]
    pub shards: Shards,
}

impl CountResponse {
    pub fn partial(&self) -> Option<String> {
        (self.shards.failed > 0).then(|| {
            format!(
                "partial count: {} of {} shards failed ({})",
                self.shards.failed,
                self.shards.total,
                self.shards.first_reason()
            )
        })
    }
}

/// `POST /<index>/_search/point_in_time`.
#[derive(Debug, Deserialize)]
pub struct PitCreated {
    pub pit_id: String,
    #[serde(rename = "_shards")]
    pub shards: Shards,
    #[serde(default)]
    pub creation_time: Option<i64>,
}

/// `DELETE /_search/point_in_time`.
#[derive(Debug, Deserialize)]
pub struct PitDeleted {
    pub pits: Vec<PitDeletedItem>,
}

#[derive(Debug, Deserialize)]
pub struct PitDeletedItem {
    pub successful: bool,
    pub pit_id: String,
}

/// An error body: `{"error": {...}, "status": N}`, or `{"error": "no handler found ..."}`.
#[derive(Debug, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorField,
    #[serde(default)]
    pub status: Option<u16>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum ErrorField {
    Text(String),
    Object(ErrorObject),
}

#[derive(Debug, Deserialize)]
pub struct ErrorObject {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub root_cause: Vec<Cause>,
}

#[derive(Debug, Deserialize)]
pub struct Cause {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub reason: Option<String>,
}

impl ErrorBody {
    /// `(type, reason)`: the root cause when there is one (it names the real problem; the
    /// outer type is often `search_phase_execution_exception`).
    pub fn kind_reason(&self) -> (String, String) {
        match &self.error {
            ErrorField::Text(t) => {
                let kind = if t.starts_with("no handler found") {
                    "no_handler"
                } else {
                    "error"
                };
                (kind.to_string(), t.clone())
            }
            ErrorField::Object(o) => match o.root_cause.first() {
                Some(c) => (c.kind.clone(), c.reason.clone().unwrap_or_default()),
                None => (o.kind.clone(), o.reason.clone().unwrap_or_default()),
            },
        }
    }
}

/// Formats a time for a `range` bound: RFC 3339, milliseconds, `Z`.
pub fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The poll's filter (filter context, no scoring): `timestamp` in `[lo, hi]` and, when
/// `min_level > 0`, `rule.level >= min_level`. The audit's `_count` uses the same filter.
pub fn filter(lo: DateTime<Utc>, hi: DateTime<Utc>, min_level: u32) -> Value {
    let mut f = vec![json!({"range": {"timestamp": {"gte": time(lo), "lte": time(hi)}}})];
    if min_level > 0 {
        f.push(json!({"range": {"rule.level": {"gte": min_level}}}));
    }
    json!({"bool": {"filter": f}})
}

/// The poll's sort: `timestamp`, then `manager.name`, then `id` (unique per manager).
pub fn sort() -> Value {
    json!([{"timestamp": "asc"}, {"manager.name": "asc"}, {"id": "asc"}])
}

/// A search body: the query, the sort, `size`, `search_after`, no total, and the point in
/// time when there is one (its search goes to `/_search`, with no index in the path).
pub fn search_body(
    query: &Value,
    size: u32,
    after: Option<&[Value]>,
    pit: Option<(&str, &str)>,
    source: bool,
) -> Value {
    let mut b = json!({
        "size": size,
        "query": query,
        "sort": sort(),
        "track_total_hits": false,
    });
    if let Some(a) = after {
        b["search_after"] = Value::Array(a.to_vec());
    }
    if let Some((id, keep_alive)) = pit {
        b["pit"] = json!({"id": id, "keep_alive": keep_alive});
    }
    if !source {
        b["_source"] = Value::Bool(false);
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_bounds_time_and_level_in_filter_context() {
        let lo = DateTime::from_timestamp_millis(1_757_664_600_000).expect("time");
        let hi = DateTime::from_timestamp_millis(1_757_665_200_000).expect("time");
        let f = filter(lo, hi, 7);
        assert_eq!(
            f["bool"]["filter"][0]["range"]["timestamp"]["gte"],
            "2025-09-12T08:10:00.000Z"
        );
        assert_eq!(
            f["bool"]["filter"][0]["range"]["timestamp"]["lte"],
            "2025-09-12T08:20:00.000Z"
        );
        assert_eq!(f["bool"]["filter"][1]["range"]["rule.level"]["gte"], 7);
        assert_eq!(
            filter(lo, hi, 0)["bool"]["filter"].as_array().map(Vec::len),
            Some(1)
        );
    }

    #[test]
    fn a_search_body_carries_search_after_and_the_point_in_time() {
        let after = [json!(1_757_664_600_000_i64), json!("m1"), json!("17.5")];
        let b = search_body(
            &json!({"match_all": {}}),
            500,
            Some(&after),
            Some(("p1", "5m")),
            false,
        );
        assert_eq!(b["size"], 500);
        assert_eq!(b["track_total_hits"], false);
        assert_eq!(b["search_after"][2], "17.5");
        assert_eq!(b["pit"]["id"], "p1");
        assert_eq!(b["_source"], false);
        assert_eq!(b["sort"][1]["manager.name"], "asc");
    }

    #[test]
    fn a_missing_timestamp_sort_value_is_no_time() {
        let h: Hit = serde_json::from_str(
            r#"{"_index":"i","_id":"a","_source":{"x":1},"sort":[9223372036854775807,"m","1"]}"#,
        )
        .expect("hit");
        assert_eq!(h.sort_time(), None);
        assert_eq!(h.source.as_deref().map(RawValue::get), Some(r#"{"x":1}"#));
    }
}
