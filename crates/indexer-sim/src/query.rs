//! Parsing a `_search`/`_count` request body into a [`SearchRequest`]: the subset of the
//! OpenSearch query DSL a poller uses (`bool` filter/must/must_not/should, `range` on dates and
//! numbers, `term`/`terms`/`ids`, `exists`, `match_all`), `sort`, `search_after`, `size`,
//! `from`, `track_total_hits`, `_source` and `pit`.
//!
//! Promise: anything outside that subset is refused with an OpenSearch-shaped 400, never
//! silently ignored, so a poller cannot pass its tests on a query a real indexer would treat
//! differently.

use std::time::Duration;

use chrono::FixedOffset;
use serde_json::{Map, Value};

use crate::opensearch::OsError;
use crate::time::{parse_date, parse_duration, parse_offset};

/// A field the simulator indexes, or any other field (looked up in `_source`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Field {
    /// `timestamp` (date).
    Ts,
    /// `@timestamp` (date).
    AtTs,
    /// `rule.level` (long).
    Level,
    /// `_id`.
    Id,
    /// `_index`.
    Index,
    /// `manager.name` (keyword).
    Manager,
    /// `id`, the alert id (keyword).
    AlertId,
    /// Any other field, read from `_source` (keyword semantics).
    Other(String),
}

impl Field {
    fn parse(name: &str) -> Field {
        match name {
            "timestamp" => Field::Ts,
            "@timestamp" => Field::AtTs,
            "rule.level" => Field::Level,
            "_id" => Field::Id,
            "_index" => Field::Index,
            "manager.name" => Field::Manager,
            "id" => Field::AlertId,
            other => Field::Other(other.to_string()),
        }
    }
    pub fn is_date(&self) -> bool {
        matches!(self, Field::Ts | Field::AtTs)
    }
}

/// A query clause.
#[derive(Clone, Debug)]
pub enum Clause {
    All,
    Nothing,
    /// Inclusive bounds in epoch millis (dates) or integers.
    Range {
        field: Field,
        lo: i64,
        hi: i64,
    },
    Terms {
        field: Field,
        values: Vec<String>,
    },
    Exists(Field),
    Bool {
        must: Vec<Clause>,
        not: Vec<Clause>,
        should: Vec<Clause>,
        min_should: usize,
    },
}

/// One sort key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SortField {
    Field(Field),
    Doc,
    Score,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SortKey {
    pub field: SortField,
    pub desc: bool,
}

/// `track_total_hits`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrackTotal {
    Off,
    UpTo(u64),
    All,
}

/// `_source`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceFilter {
    All,
    None,
    Includes(Vec<String>),
}

/// A parsed search or count request.
#[derive(Clone, Debug)]
pub struct SearchRequest {
    pub query: Clause,
    pub is_match_all: bool,
    pub size: usize,
    pub from: usize,
    pub sort: Vec<SortKey>,
    pub search_after: Option<Vec<Value>>,
    pub track_total: TrackTotal,
    pub source: SourceFilter,
    pub pit: Option<(String, Option<Duration>)>,
}

fn parsing(reason: impl Into<String>) -> OsError {
    OsError::bad_request("parsing_exception", reason)
}

fn illegal(reason: impl Into<String>) -> OsError {
    OsError::bad_request("illegal_argument_exception", reason)
}

/// Parses a request body (empty means `match_all`) plus URI parameters.
pub fn parse_search(
    body: &[u8],
    params: &[(String, String)],
    now_ms: i64,
    for_count: bool,
) -> Result<SearchRequest, OsError> {
    let v: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Map::new())
    } else {
        serde_json::from_slice(body).map_err(|e| {
            OsError::bad_request(
                "parsing_exception",
                format!("Failed to parse request body: {e}"),
            )
        })?
    };
    let obj = v
        .as_object()
        .ok_or_else(|| parsing("request body must be an object"))?;
    let mut req = SearchRequest {
        query: Clause::All,
        is_match_all: true,
        size: 10,
        from: 0,
        sort: Vec::new(),
        search_after: None,
        track_total: TrackTotal::UpTo(10_000),
        source: SourceFilter::All,
        pit: None,
    };
    for (k, val) in obj {
        match k.as_str() {
            "query" => {
                req.query = parse_clause(val, now_ms)?;
                req.is_match_all = matches!(req.query, Clause::All);
            }
            _ if for_count => {
                return Err(parsing(format!("request does not support [{k}]")));
            }
            "size" => req.size = as_usize(val, "size")?,
            "from" => req.from = as_usize(val, "from")?,
            "sort" => req.sort = parse_sort(val)?,
            "search_after" => {
                let arr = val
                    .as_array()
                    .ok_or_else(|| parsing("[search_after] must be an array"))?;
                req.search_after = Some(arr.clone());
            }
            "track_total_hits" => req.track_total = parse_track(val)?,
            "_source" => req.source = parse_source(val)?,
            "pit" => {
                let id = val
                    .get("id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| parsing("[pit] requires [id]"))?;
                let ka = match val.get("keep_alive") {
                    None => None,
                    Some(Value::String(s)) => Some(parse_duration(s).ok_or_else(|| {
                        OsError::bad_request("illegal_argument_exception", format!("failed to parse setting [keep_alive] with value [{s}] as a time value: unit is missing or unrecognized"))
                    })?),
                    Some(other) => return Err(parsing(format!("[pit] keep_alive must be a string, got {other}"))),
                };
                req.pit = Some((id.to_string(), ka));
            }
            "timeout"
            | "terminate_after"
            | "allow_partial_search_results"
            | "version"
            | "seq_no_primary_term"
            | "track_scores"
            | "explain"
            | "stored_fields"
            | "docvalue_fields" => {}
            other => {
                return Err(parsing(format!(
                    "Unknown key for a {} in [{other}].",
                    token_name(val)
                )))
            }
        }
    }
    for (k, val) in params {
        match k.as_str() {
            "size" => {
                req.size = val.parse().map_err(|_| {
                    illegal(format!(
                        "Failed to parse int parameter [size] with value [{val}]"
                    ))
                })?
            }
            "from" => {
                req.from = val.parse().map_err(|_| {
                    illegal(format!(
                        "Failed to parse int parameter [from] with value [{val}]"
                    ))
                })?
            }
            "track_total_hits" => {
                req.track_total = match val.as_str() {
                    "true" => TrackTotal::All,
                    "false" => TrackTotal::Off,
                    n => TrackTotal::UpTo(n.parse().map_err(|_| {
                        illegal(format!(
                            "Failed to parse [track_total_hits] with value [{n}]"
                        ))
                    })?),
                }
            }
            "_source" => {
                req.source = match val.as_str() {
                    "false" => SourceFilter::None,
                    "true" => SourceFilter::All,
                    list => SourceFilter::Includes(list.split(',').map(str::to_string).collect()),
                }
            }
            _ => {}
        }
    }
    if let Some(after) = &req.search_after {
        if req.sort.is_empty() {
            return Err(illegal("Sort must contain at least one field."));
        }
        if after.len() != req.sort.len() {
            return Err(illegal(format!(
                "search_after has {} value(s) but sort has {}.",
                after.len(),
                req.sort.len()
            )));
        }
        if req.from > 0 {
            return Err(illegal(
                "[from] parameter must be set to 0 when [search_after] is used.",
            ));
        }
    }
    Ok(req)
}

fn token_name(v: &Value) -> &'static str {
    match v {
        Value::Object(_) => "START_OBJECT",
        Value::Array(_) => "START_ARRAY",
        _ => "VALUE",
    }
}

fn as_usize(v: &Value, name: &str) -> Result<usize, OsError> {
    match v.as_i64() {
        Some(n) if n >= 0 => Ok(n as usize),
        Some(n) => Err(illegal(format!(
            "[{name}] parameter cannot be negative, found [{n}]"
        ))),
        None => Err(parsing(format!("[{name}] must be a number"))),
    }
}

fn parse_track(v: &Value) -> Result<TrackTotal, OsError> {
    match v {
        Value::Bool(true) => Ok(TrackTotal::All),
        Value::Bool(false) => Ok(TrackTotal::Off),
        Value::Number(n) => match n.as_i64() {
            Some(n) if n >= 0 => Ok(TrackTotal::UpTo(n as u64)),
            _ => Err(illegal("[track_total_hits] must be positive")),
        },
        other => Err(parsing(format!(
            "[track_total_hits] must be a boolean or a number, got {other}"
        ))),
    }
}

fn parse_source(v: &Value) -> Result<SourceFilter, OsError> {
    let strings = |a: &Vec<Value>| -> Result<Vec<String>, OsError> {
        a.iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| parsing("[_source] entries must be strings"))
            })
            .collect()
    };
    match v {
        Value::Bool(true) => Ok(SourceFilter::All),
        Value::Bool(false) => Ok(SourceFilter::None),
        Value::String(s) => Ok(SourceFilter::Includes(vec![s.clone()])),
        Value::Array(a) => Ok(SourceFilter::Includes(strings(a)?)),
        Value::Object(o) => match o.get("includes").or_else(|| o.get("include")) {
            Some(Value::Array(a)) => Ok(SourceFilter::Includes(strings(a)?)),
            Some(Value::String(s)) => Ok(SourceFilter::Includes(vec![s.clone()])),
            _ => Ok(SourceFilter::All),
        },
        other => Err(parsing(format!("[_source] cannot be {other}"))),
    }
}

fn parse_sort(v: &Value) -> Result<Vec<SortKey>, OsError> {
    let items: Vec<&Value> = match v {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    let mut out = Vec::new();
    for item in items {
        let (name, order) = match item {
            Value::String(s) => (s.as_str(), None),
            Value::Object(o) if o.len() == 1 => {
                let (name, spec) = o.iter().next().expect("one entry");
                let order = match spec {
                    Value::String(s) => Some(s.as_str()),
                    Value::Object(so) => match so.get("order") {
                        Some(Value::String(s)) => Some(s.as_str()),
                        None => None,
                        Some(other) => {
                            return Err(parsing(format!("[order] must be a string, got {other}")))
                        }
                    },
                    other => return Err(parsing(format!("malformed sort for [{name}]: {other}"))),
                };
                (name.as_str(), order)
            }
            other => return Err(parsing(format!("malformed sort: {other}"))),
        };
        let field = match name {
            "_doc" => SortField::Doc,
            "_score" => SortField::Score,
            other => SortField::Field(Field::parse(other)),
        };
        let desc = match order {
            None => field == SortField::Score,
            Some("asc") | Some("ASC") => false,
            Some("desc") | Some("DESC") => true,
            Some(o) => return Err(illegal(format!("Unknown SortOrder [{o}]"))),
        };
        out.push(SortKey { field, desc });
    }
    Ok(out)
}

fn single_field<'a>(v: &'a Value, query: &str) -> Result<(&'a String, &'a Value), OsError> {
    let o = v.as_object().ok_or_else(|| {
        parsing(format!(
            "[{query}] query malformed, no start_object after query name"
        ))
    })?;
    let mut it = o
        .iter()
        .filter(|(k, _)| k.as_str() != "boost" && k.as_str() != "_name");
    let first = it
        .next()
        .ok_or_else(|| parsing(format!("[{query}] query malformed, no field")))?;
    if it.next().is_some() {
        return Err(parsing(format!(
            "[{query}] query doesn't support multiple fields, found [{}] and more",
            first.0
        )));
    }
    Ok(first)
}

fn scalar_string(v: &Value) -> Result<String, OsError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(parsing(format!("term value must be a scalar, got {other}"))),
    }
}

fn parse_clause(v: &Value, now_ms: i64) -> Result<Clause, OsError> {
    let o = v
        .as_object()
        .ok_or_else(|| parsing("query malformed, must start with start_object"))?;
    if o.len() != 1 {
        return Err(parsing(
            "[_na] query malformed, must start with start_object",
        ));
    }
    let (name, body) = o.iter().next().expect("one entry");
    match name.as_str() {
        "match_all" => Ok(Clause::All),
        "match_none" => Ok(Clause::Nothing),
        "bool" => {
            let b = body
                .as_object()
                .ok_or_else(|| parsing("[bool] query malformed"))?;
            let mut must = Vec::new();
            let mut not = Vec::new();
            let mut should = Vec::new();
            let mut min_should = None;
            for (k, val) in b {
                let list = |val: &Value| -> Result<Vec<Clause>, OsError> {
                    match val {
                        Value::Array(a) => a.iter().map(|c| parse_clause(c, now_ms)).collect(),
                        other => Ok(vec![parse_clause(other, now_ms)?]),
                    }
                };
                match k.as_str() {
                    "filter" | "must" => must.extend(list(val)?),
                    "must_not" => not.extend(list(val)?),
                    "should" => should.extend(list(val)?),
                    "minimum_should_match" => {
                        min_should = Some(
                            val.as_u64()
                                .or_else(|| val.as_str().and_then(|s| s.parse().ok()))
                                .ok_or_else(|| parsing("[minimum_should_match] must be a number"))?
                                as usize,
                        )
                    }
                    "boost" | "_name" | "adjust_pure_negative" => {}
                    other => {
                        return Err(parsing(format!("[bool] query does not support [{other}]")))
                    }
                }
            }
            let min_should = min_should.unwrap_or(if should.is_empty() || !must.is_empty() {
                0
            } else {
                1
            });
            Ok(Clause::Bool {
                must,
                not,
                should,
                min_should,
            })
        }
        "range" => {
            let (fname, spec) = single_field(body, "range")?;
            let field = Field::parse(fname);
            let spec = spec
                .as_object()
                .ok_or_else(|| parsing(format!("[range] query malformed for [{fname}]")))?;
            let tz: Option<FixedOffset> = match spec.get("time_zone") {
                Some(Value::String(s)) => Some(
                    parse_offset(s).ok_or_else(|| illegal(format!("Unknown time-zone ID: {s}")))?,
                ),
                _ => None,
            };
            let mut lo = i64::MIN;
            let mut hi = i64::MAX;
            let mut include_lower = true;
            let mut include_upper = true;
            let mut pending: Vec<(&str, &Value)> = Vec::new();
            for (k, val) in spec {
                match k.as_str() {
                    "gte" | "gt" | "lte" | "lt" | "from" | "to" => pending.push((k.as_str(), val)),
                    "include_lower" => include_lower = val.as_bool().unwrap_or(true),
                    "include_upper" => include_upper = val.as_bool().unwrap_or(true),
                    "format" | "time_zone" | "boost" | "relation" | "_name" => {}
                    other => {
                        return Err(parsing(format!("[range] query does not support [{other}]")))
                    }
                }
            }
            for (k, val) in pending {
                if val.is_null() {
                    continue;
                }
                let op = match k {
                    "from" => {
                        if include_lower {
                            "gte"
                        } else {
                            "gt"
                        }
                    }
                    "to" => {
                        if include_upper {
                            "lte"
                        } else {
                            "lt"
                        }
                    }
                    o => o,
                };
                let (l, h) = if field.is_date() {
                    let span = parse_date(val, tz, now_ms)
                        .map_err(|reason| OsError::bad_request("parse_exception", reason))?;
                    (span.lo, span.hi)
                } else {
                    let f = val
                        .as_f64()
                        .or_else(|| val.as_str().and_then(|s| s.parse::<f64>().ok()))
                        .ok_or_else(|| {
                            OsError::bad_request(
                                "number_format_exception",
                                format!(
                                    "For input string: \"{}\"",
                                    val.as_str().unwrap_or_default()
                                ),
                            )
                        })?;
                    (f.ceil() as i64, f.floor() as i64)
                };
                match op {
                    "gte" => lo = lo.max(l),
                    "gt" => lo = lo.max(h.saturating_add(1)),
                    "lte" => hi = hi.min(h),
                    _ => hi = hi.min(l.saturating_sub(1)),
                }
            }
            Ok(Clause::Range { field, lo, hi })
        }
        "term" => {
            let (fname, spec) = single_field(body, "term")?;
            let value = match spec {
                Value::Object(so) => so
                    .get("value")
                    .ok_or_else(|| parsing("[term] query requires [value]"))?,
                other => other,
            };
            Ok(Clause::Terms {
                field: Field::parse(fname),
                values: vec![scalar_string(value)?],
            })
        }
        "terms" => {
            let (fname, spec) = single_field(body, "terms")?;
            let arr = spec
                .as_array()
                .ok_or_else(|| parsing("[terms] query requires an array of values"))?;
            let values = arr
                .iter()
                .map(scalar_string)
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Clause::Terms {
                field: Field::parse(fname),
                values,
            })
        }
        "ids" => {
            let arr = body
                .get("values")
                .and_then(Value::as_array)
                .ok_or_else(|| parsing("[ids] query requires [values]"))?;
            let values = arr
                .iter()
                .map(scalar_string)
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Clause::Terms {
                field: Field::Id,
                values,
            })
        }
        "exists" => {
            let f = body
                .get("field")
                .and_then(Value::as_str)
                .ok_or_else(|| parsing("[exists] must be provided with a [field]"))?;
            Ok(Clause::Exists(Field::parse(f)))
        }
        other => Err(OsError::bad_request(
            "parsing_exception",
            format!("unknown query [{other}]"),
        )),
    }
}

/// Parses a `DELETE /_search/point_in_time` body: `{"pit_id": "..." | [".."]}`.
pub fn parse_pit_ids(body: &[u8]) -> Result<Vec<String>, OsError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| parsing(format!("Failed to parse request body: {e}")))?;
    match v.get("pit_id") {
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| parsing("[pit_id] entries must be strings"))
            })
            .collect(),
        _ => Err(OsError::bad_request(
            "action_request_validation_exception",
            "Validation Failed: 1: no pit ids specified;",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<SearchRequest, OsError> {
        parse_search(v.to_string().as_bytes(), &[], 0, false)
    }

    #[test]
    fn poller_query_parses_into_range_sort_and_search_after() {
        let req = parse(json!({
            "size": 1000,
            "query": {"bool": {"filter": [
                {"range": {"timestamp": {"gte": "2025-09-12T08:10:00.000-03:00", "lt": 1757700000000_i64, "format": "strict_date_optional_time||epoch_millis"}}},
                {"range": {"rule.level": {"gte": 3}}}
            ]}},
            "sort": [{"timestamp": "asc"}, {"manager.name": {"order": "asc"}}, "id"],
            "search_after": [1757675400000_i64, "wazuh-eu-1", "1757675400.123"],
            "track_total_hits": false,
            "_source": false
        }))
        .unwrap();
        assert_eq!(req.size, 1000);
        assert_eq!(req.sort.len(), 3);
        assert!(req.sort.iter().all(|k| !k.desc));
        assert_eq!(req.track_total, TrackTotal::Off);
        assert_eq!(req.source, SourceFilter::None);
        let Clause::Bool { must, .. } = &req.query else {
            panic!("bool")
        };
        match &must[0] {
            Clause::Range {
                field: Field::Ts,
                lo,
                hi,
            } => {
                assert_eq!(*lo, 1_757_675_400_000);
                assert_eq!(*hi, 1_757_699_999_999);
            }
            other => panic!("{other:?}"),
        }
        match &must[1] {
            Clause::Range {
                field: Field::Level,
                lo: 3,
                hi,
            } => assert_eq!(*hi, i64::MAX),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn gt_and_lte_on_a_second_round_to_its_last_millisecond() {
        let req = parse(json!({"query": {"range": {"timestamp": {"gt": "2025-09-12T08:10:00Z", "lte": "2025-09-12T08:20:00Z"}}}})).unwrap();
        match req.query {
            Clause::Range { lo, hi, .. } => {
                assert_eq!(lo, 1_757_664_600_000 + 1000);
                assert_eq!(hi, 1_757_665_200_000 + 999);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unsupported_or_inconsistent_requests_are_refused() {
        assert_eq!(
            parse(json!({"query": {"fuzzy": {"x": "y"}}}))
                .unwrap_err()
                .kind,
            "parsing_exception"
        );
        assert_eq!(
            parse(json!({"aggs": {}})).unwrap_err().kind,
            "parsing_exception"
        );
        let e = parse(json!({"sort": ["timestamp"], "search_after": [1, 2]})).unwrap_err();
        assert_eq!(e.kind, "illegal_argument_exception");
        assert!(parse_search(b"{not json", &[], 0, false).is_err());
        assert!(parse_search(b"{\"size\": 5}", &[], 0, true).is_err());
    }
}
