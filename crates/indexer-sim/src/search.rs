//! Executing a parsed request against a view of the store, and writing the response bytes.
//!
//! Design constraints:
//! - A view is (store, snapshot time, matched indices, excluded shard): a plain search uses
//!   "now", a point in time its creation time, so both read the same immutable store.
//! - Fast path: when the sort is a prefix of `timestamp`, `manager.name`, `id` ascending (the
//!   poller's sort), `range` on `timestamp` and `search_after` are binary searches in the
//!   primary order and a page costs O(log n + page + counted hits).
//! - Anything else takes the generic path (filter, sort, skip), correct but O(n log n).
//! - `hits.total` counts the query's matches regardless of `search_after`, capped as
//!   `track_total_hits` says (10,000 by default, `relation: "gte"` past it).

use std::cmp::Ordering;
use std::fmt::Write as _;

use serde_json::{json, Map, Value};

use crate::opensearch::{OsError, NODE_ID};
use crate::query::{Clause, Field, SearchRequest, SortField, SortKey, SourceFilter, TrackTotal};
use crate::store::{lookup, Doc, Store, SHARDS_PER_INDEX};
use crate::time::parse_date;

/// `index.max_result_window`.
pub const MAX_RESULT_WINDOW: usize = 10_000;

/// The documents a request can see.
pub struct View<'a> {
    pub store: &'a Store,
    /// Milliseconds after start; documents with `visible_at_ms <= snapshot_ms` are searchable.
    pub snapshot_ms: u64,
    /// Per index of the store: named by the request's pattern (or the PIT's).
    pub indices: Vec<bool>,
    /// A shard missing from every index (a partially created PIT, or a partial fault).
    pub excluded_shard: Option<u8>,
}

/// How a response is degraded on purpose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Degrade {
    None,
    /// Shard `n` of every matched index failed: its hits are missing and `_shards` says so.
    ShardFailed(u8),
    /// The search timed out: `timed_out: true` and only part of the page.
    TimedOut,
}

impl View<'_> {
    fn visible(&self, d: &Doc) -> bool {
        d.visible_at_ms <= self.snapshot_ms
            && self.indices[d.index as usize]
            && self.excluded_shard != Some(d.shard)
    }

    /// Matched indices that exist at the snapshot.
    pub fn existing_indices(&self) -> Vec<usize> {
        (0..self.store.indices.len())
            .filter(|&i| self.indices[i] && self.store.index_visible_at_ms[i] <= self.snapshot_ms)
            .collect()
    }

    fn shard_total(&self) -> u64 {
        let per = u64::from(SHARDS_PER_INDEX) - u64::from(self.excluded_shard.is_some());
        self.existing_indices().len() as u64 * per
    }
}

fn keyword<'a>(d: &'a Doc, f: &Field, store: &'a Store) -> Option<&'a str> {
    match f {
        Field::Id => Some(&d.id),
        Field::Index => Some(&store.indices[d.index as usize]),
        Field::Manager => d.manager.as_deref(),
        Field::AlertId => d.alert_id.as_deref(),
        _ => None,
    }
}

fn numeric(d: &Doc, f: &Field) -> Option<i64> {
    match f {
        Field::Ts => d.ts,
        Field::AtTs => d.at_ts,
        Field::Level => d.level,
        _ => None,
    }
}

fn source_value(d: &Doc, cache: &mut Option<Value>) -> Value {
    cache
        .get_or_insert_with(|| serde_json::from_str(&d.source).unwrap_or(Value::Null))
        .clone()
}

fn other_strings(v: Option<&Value>) -> Vec<String> {
    match v {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a.iter().flat_map(|x| other_strings(Some(x))).collect(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(other) => vec![other.to_string()],
    }
}

fn matches(d: &Doc, c: &Clause, store: &Store, cache: &mut Option<Value>) -> bool {
    match c {
        Clause::All => true,
        Clause::Nothing => false,
        Clause::Range { field, lo, hi } => match field {
            Field::Ts | Field::AtTs | Field::Level => {
                numeric(d, field).is_some_and(|v| *lo <= v && v <= *hi)
            }
            Field::Other(path) => {
                let src = source_value(d, cache);
                let v = lookup(&src, path);
                other_strings(v).iter().any(|s| {
                    s.parse::<f64>()
                        .is_ok_and(|x| (*lo as f64) <= x && x <= (*hi as f64))
                })
            }
            _ => false,
        },
        Clause::Terms { field, values } => match field {
            Field::Ts | Field::AtTs | Field::Level => numeric(d, field).is_some_and(|v| {
                values.iter().any(|s| {
                    if field.is_date() {
                        parse_date(&Value::String(s.clone()), None, 0)
                            .is_ok_and(|span| span.lo <= v && v <= span.hi)
                    } else {
                        s.parse::<i64>() == Ok(v)
                    }
                })
            }),
            Field::Other(path) => {
                let src = source_value(d, cache);
                let have = other_strings(lookup(&src, path));
                have.iter().any(|h| values.contains(h))
            }
            _ => keyword(d, field, store).is_some_and(|k| values.iter().any(|v| v == k)),
        },
        Clause::Exists(field) => match field {
            Field::Ts | Field::AtTs | Field::Level => numeric(d, field).is_some(),
            Field::Other(path) => {
                let src = source_value(d, cache);
                !other_strings(lookup(&src, path)).is_empty()
            }
            _ => keyword(d, field, store).is_some(),
        },
        Clause::Bool {
            must,
            not,
            should,
            min_should,
        } => {
            must.iter().all(|c| matches(d, c, store, cache))
                && !not.iter().any(|c| matches(d, c, store, cache))
                && (*min_should == 0
                    || should
                        .iter()
                        .filter(|c| matches(d, c, store, cache))
                        .count()
                        >= *min_should)
        }
    }
}

/// The `timestamp` bounds every match must satisfy (from top-level ANDed ranges).
fn ts_bounds(c: &Clause) -> (i64, i64) {
    match c {
        Clause::Range {
            field: Field::Ts,
            lo,
            hi,
        } => (*lo, *hi),
        Clause::Bool { must, .. } => must
            .iter()
            .map(ts_bounds)
            .fold((i64::MIN, i64::MAX), |a, b| (a.0.max(b.0), a.1.min(b.1))),
        _ => (i64::MIN, i64::MAX),
    }
}

/// A sort value of one document.
#[derive(Clone, Debug, PartialEq)]
enum SortVal {
    Num(i64),
    Str(String),
    Missing,
}

fn is_numeric_sort(f: &SortField) -> bool {
    matches!(
        f,
        SortField::Doc
            | SortField::Score
            | SortField::Field(Field::Ts | Field::AtTs | Field::Level)
    )
}

fn sort_val(d: &Doc, k: &SortKey, store: &Store, cache: &mut Option<Value>) -> SortVal {
    match &k.field {
        SortField::Doc => SortVal::Num(i64::from(d.seq)),
        SortField::Score => SortVal::Num(0),
        SortField::Field(f @ (Field::Ts | Field::AtTs | Field::Level)) => {
            numeric(d, f).map_or(SortVal::Missing, SortVal::Num)
        }
        SortField::Field(Field::Other(path)) => {
            let src = source_value(d, cache);
            match lookup(&src, path) {
                Some(Value::Number(n)) => n.as_i64().map_or(SortVal::Missing, SortVal::Num),
                Some(Value::String(s)) => SortVal::Str(s.clone()),
                _ => SortVal::Missing,
            }
        }
        SortField::Field(f) => {
            keyword(d, f, store).map_or(SortVal::Missing, |s| SortVal::Str(s.to_string()))
        }
    }
}

fn cmp_val(a: &SortVal, b: &SortVal, desc: bool) -> Ordering {
    match (a, b) {
        (SortVal::Missing, SortVal::Missing) => Ordering::Equal,
        (SortVal::Missing, _) => Ordering::Greater,
        (_, SortVal::Missing) => Ordering::Less,
        (SortVal::Num(x), SortVal::Num(y)) => {
            if desc {
                y.cmp(x)
            } else {
                x.cmp(y)
            }
        }
        (SortVal::Str(x), SortVal::Str(y)) => {
            if desc {
                y.cmp(x)
            } else {
                x.cmp(y)
            }
        }
        (SortVal::Num(_), SortVal::Str(_)) => Ordering::Less,
        (SortVal::Str(_), SortVal::Num(_)) => Ordering::Greater,
    }
}

fn cmp_keys(a: &[SortVal], b: &[SortVal], sort: &[SortKey]) -> Ordering {
    for ((x, y), k) in a.iter().zip(b).zip(sort) {
        let o = cmp_val(x, y, k.desc);
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

/// Parses `search_after` values into sort values for the given keys.
fn parse_after(after: &[Value], sort: &[SortKey]) -> Result<Vec<SortVal>, OsError> {
    after
        .iter()
        .zip(sort)
        .map(|(v, k)| {
            let numeric = is_numeric_sort(&k.field);
            match v {
                Value::Null => Ok(SortVal::Missing),
                Value::Number(n) if numeric => {
                    let x = n
                        .as_i64()
                        .or_else(|| n.as_f64().map(|f| f as i64))
                        .unwrap_or(0);
                    Ok(if x == i64::MAX || x == i64::MIN {
                        SortVal::Missing
                    } else {
                        SortVal::Num(x)
                    })
                }
                Value::String(s) if numeric => {
                    let date = matches!(k.field, SortField::Field(Field::Ts | Field::AtTs));
                    if let Ok(x) = s.parse::<i64>() {
                        Ok(if x == i64::MAX || x == i64::MIN {
                            SortVal::Missing
                        } else {
                            SortVal::Num(x)
                        })
                    } else if date {
                        parse_date(v, None, 0)
                            .map(|span| SortVal::Num(span.lo))
                            .map_err(|e| OsError::bad_request("parse_exception", e))
                    } else {
                        Err(OsError::bad_request(
                            "number_format_exception",
                            format!("For input string: \"{s}\""),
                        ))
                    }
                }
                Value::String(s) => Ok(SortVal::Str(s.clone())),
                Value::Number(n) => Ok(SortVal::Str(n.to_string())),
                other => Err(OsError::bad_request(
                    "illegal_argument_exception",
                    format!("search_after value {other} is not a sort value"),
                )),
            }
        })
        .collect()
}

fn primary_prefix(sort: &[SortKey]) -> bool {
    let primary = [Field::Ts, Field::Manager, Field::AlertId];
    !sort.is_empty()
        && sort.len() <= 3
        && sort
            .iter()
            .zip(primary.iter())
            .all(|(k, f)| !k.desc && k.field == SortField::Field(f.clone()))
}

fn primary_vals(d: &Doc, n: usize) -> [SortVal; 3] {
    let mut out = [SortVal::Missing, SortVal::Missing, SortVal::Missing];
    if n > 0 {
        out[0] = d.ts.map_or(SortVal::Missing, SortVal::Num);
    }
    if n > 1 {
        out[1] = d
            .manager
            .as_deref()
            .map_or(SortVal::Missing, |s| SortVal::Str(s.to_string()));
    }
    if n > 2 {
        out[2] = d
            .alert_id
            .as_deref()
            .map_or(SortVal::Missing, |s| SortVal::Str(s.to_string()));
    }
    out
}

fn cmp_primary_after(d: &Doc, after: &[SortVal]) -> Ordering {
    let n = after.len();
    for (i, a) in after.iter().enumerate().take(n) {
        let o = match (i, a) {
            (0, _) => cmp_val(&d.ts.map_or(SortVal::Missing, SortVal::Num), a, false),
            (1, SortVal::Str(s)) => match d.manager.as_deref() {
                Some(m) => m.cmp(s.as_str()),
                None => Ordering::Greater,
            },
            (2, SortVal::Str(s)) => match d.alert_id.as_deref() {
                Some(m) => m.cmp(s.as_str()),
                None => Ordering::Greater,
            },
            (_, SortVal::Missing) => {
                let present = if i == 1 {
                    d.manager.is_some()
                } else {
                    d.alert_id.is_some()
                };
                if present {
                    Ordering::Less
                } else {
                    Ordering::Equal
                }
            }
            (_, SortVal::Num(_)) | (_, SortVal::Str(_)) => Ordering::Less,
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

/// The selected documents of a page and the total.
struct Page<'a> {
    hits: Vec<(&'a Doc, Vec<SortVal>)>,
    total: u64,
}

fn total_limit(t: TrackTotal) -> u64 {
    match t {
        TrackTotal::Off => 0,
        TrackTotal::UpTo(n) => n.saturating_add(1),
        TrackTotal::All => u64::MAX,
    }
}

fn select<'a>(view: &View<'a>, req: &SearchRequest) -> Result<Page<'a>, OsError> {
    let store = view.store;
    let docs = &store.docs;
    let (lo, hi) = ts_bounds(&req.query);
    let start = if lo == i64::MIN {
        0
    } else {
        docs.partition_point(|d| d.ts.is_some_and(|t| t < lo))
    };
    let end = if hi == i64::MAX && lo == i64::MIN {
        docs.len()
    } else {
        docs.partition_point(|d| d.ts.is_some_and(|t| t <= hi))
            .max(start)
    };
    let range = &docs[start..end];
    let limit = total_limit(req.track_total);
    let want = req.from + req.size;
    let mut cache = None;
    let mut ok = |d: &Doc| {
        cache = None;
        view.visible(d) && matches(d, &req.query, store, &mut cache)
    };

    if primary_prefix(&req.sort) {
        let n = req.sort.len();
        let pos = match &req.search_after {
            Some(after) => {
                let after = parse_after(after, &req.sort)?;
                range.partition_point(|d| cmp_primary_after(d, &after) != Ordering::Greater)
            }
            None => 0,
        };
        let mut hits = Vec::new();
        let mut skipped = 0;
        for d in &range[pos..] {
            if hits.len() >= req.size {
                break;
            }
            if ok(d) {
                if skipped < req.from {
                    skipped += 1;
                } else {
                    hits.push((d, primary_vals(d, n)[..n].to_vec()));
                }
            }
        }
        let mut total = 0u64;
        if limit > 0 {
            for d in range {
                if ok(d) {
                    total += 1;
                    if total >= limit {
                        break;
                    }
                }
            }
        }
        return Ok(Page { hits, total });
    }

    // Generic path.
    let mut cands: Vec<(&Doc, Vec<SortVal>)> = Vec::new();
    for d in range {
        if ok(d) {
            let mut c = None;
            let key = req
                .sort
                .iter()
                .map(|k| sort_val(d, k, store, &mut c))
                .collect();
            cands.push((d, key));
        }
    }
    let total = (cands.len() as u64).min(limit);
    if req.sort.is_empty() {
        cands.sort_by_key(|(d, _)| d.seq);
    } else {
        cands.sort_by(|a, b| cmp_keys(&a.1, &b.1, &req.sort).then_with(|| a.0.seq.cmp(&b.0.seq)));
    }
    if let Some(after) = &req.search_after {
        let after = parse_after(after, &req.sort)?;
        cands.retain(|(_, key)| cmp_keys(key, &after, &req.sort) == Ordering::Greater);
    }
    let hits = cands
        .into_iter()
        .skip(req.from)
        .take(want - req.from)
        .collect();
    Ok(Page { hits, total })
}

fn write_json_str(out: &mut String, s: &str) {
    out.push_str(&serde_json::to_string(s).expect("a string serializes"));
}

fn filter_source(src: &str, includes: &[String]) -> String {
    let v: Value = serde_json::from_str(src).unwrap_or(Value::Null);
    let mut out = Map::new();
    for inc in includes {
        if inc == "*" {
            return src.to_string();
        }
        if let Some(found) = lookup(&v, inc) {
            // Rebuild the nesting of a dotted path.
            let parts: Vec<&str> = inc.split('.').collect();
            let mut cur = &mut out;
            for p in &parts[..parts.len() - 1] {
                let entry = cur
                    .entry(p.to_string())
                    .or_insert_with(|| Value::Object(Map::new()));
                if !entry.is_object() {
                    *entry = Value::Object(Map::new());
                }
                cur = entry.as_object_mut().expect("just made an object");
            }
            cur.insert(parts[parts.len() - 1].to_string(), found.clone());
        }
    }
    Value::Object(out).to_string()
}

fn shards_json(total: u64, failed_shard: Option<(u8, &[usize], &Store)>) -> String {
    match failed_shard {
        None => format!(r#"{{"total":{total},"successful":{total},"skipped":0,"failed":0}}"#),
        Some((shard, indices, store)) => {
            let failed = indices.len() as u64;
            let failures: Vec<Value> = indices
                .iter()
                .map(|&i| {
                    json!({
                        "shard": shard,
                        "index": &*store.indices[i],
                        "node": NODE_ID,
                        "reason": {
                            "type": "node_not_connected_exception",
                            "reason": format!("[node-2][127.0.0.1:9300] Node not connected"),
                        }
                    })
                })
                .collect();
            format!(
                r#"{{"total":{total},"successful":{},"skipped":0,"failed":{failed},"failures":{}}}"#,
                total.saturating_sub(failed),
                Value::Array(failures)
            )
        }
    }
}

/// Runs a search and returns the response body.
pub fn search(
    view: &View<'_>,
    req: &SearchRequest,
    pit_id: Option<&str>,
    degrade: Degrade,
    took: u64,
) -> Result<Vec<u8>, OsError> {
    if req.from + req.size > MAX_RESULT_WINDOW {
        let existing = view.existing_indices();
        let name = existing
            .first()
            .map_or("wazuh-alerts-4.x", |&i| &view.store.indices[i]);
        return Err(OsError::result_window(req.from + req.size, name));
    }
    let degraded_view;
    let view = if let Degrade::ShardFailed(s) = degrade {
        degraded_view = View {
            store: view.store,
            snapshot_ms: view.snapshot_ms,
            indices: view.indices.clone(),
            excluded_shard: Some(s),
        };
        &degraded_view
    } else {
        view
    };
    let mut page = select(view, req)?;
    let timed_out = degrade == Degrade::TimedOut;
    if timed_out {
        let keep = page.hits.len() / 2;
        page.hits.truncate(keep);
    }
    let sorted = !req.sort.is_empty() && !req.sort.iter().all(|k| k.field == SortField::Score);
    let score = if sorted {
        "null"
    } else if req.is_match_all {
        "1.0"
    } else {
        "0.0"
    };
    let max_score = if sorted || page.hits.is_empty() {
        "null"
    } else {
        score
    };
    let mut out = String::with_capacity(256 + page.hits.len() * 1200);
    out.push('{');
    if let Some(id) = pit_id {
        out.push_str("\"pit_id\":");
        write_json_str(&mut out, id);
        out.push(',');
    }
    let existing = view.existing_indices();
    let shards = match degrade {
        Degrade::ShardFailed(s) => shards_json(
            existing.len() as u64 * u64::from(SHARDS_PER_INDEX),
            Some((s, &existing, view.store)),
        ),
        _ => shards_json(view.shard_total(), None),
    };
    let _ = write!(
        out,
        r#""took":{took},"timed_out":{timed_out},"_shards":{shards},"hits":{{"#
    );
    match req.track_total {
        TrackTotal::Off => {}
        TrackTotal::All => {
            let _ = write!(
                out,
                r#""total":{{"value":{},"relation":"eq"}},"#,
                page.total
            );
        }
        TrackTotal::UpTo(n) => {
            let (value, rel) = if page.total > n {
                (n, "gte")
            } else {
                (page.total, "eq")
            };
            let _ = write!(out, r#""total":{{"value":{value},"relation":"{rel}"}},"#);
        }
    }
    let _ = write!(out, r#""max_score":{max_score},"hits":["#);
    for (i, (d, key)) in page.hits.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"_index\":");
        write_json_str(&mut out, &view.store.indices[d.index as usize]);
        out.push_str(",\"_id\":");
        write_json_str(&mut out, &d.id);
        let _ = write!(out, ",\"_score\":{score}");
        match &req.source {
            SourceFilter::All => {
                out.push_str(",\"_source\":");
                out.push_str(&d.source);
            }
            SourceFilter::None => {}
            SourceFilter::Includes(list) => {
                out.push_str(",\"_source\":");
                out.push_str(&filter_source(&d.source, list));
            }
        }
        if sorted {
            out.push_str(",\"sort\":[");
            for (j, (v, k)) in key.iter().zip(&req.sort).enumerate() {
                if j > 0 {
                    out.push(',');
                }
                match v {
                    SortVal::Num(n) => {
                        let _ = write!(out, "{n}");
                    }
                    SortVal::Str(s) => write_json_str(&mut out, s),
                    SortVal::Missing if is_numeric_sort(&k.field) => {
                        let _ = write!(out, "{}", if k.desc { i64::MIN } else { i64::MAX });
                    }
                    SortVal::Missing => out.push_str("null"),
                }
            }
            out.push(']');
        }
        out.push('}');
    }
    out.push_str("]}}");
    Ok(out.into_bytes())
}

/// Runs a count and returns the response body.
pub fn count(view: &View<'_>, req: &SearchRequest, degrade: Degrade) -> Vec<u8> {
    let degraded_view;
    let view = if let Degrade::ShardFailed(s) = degrade {
        degraded_view = View {
            store: view.store,
            snapshot_ms: view.snapshot_ms,
            indices: view.indices.clone(),
            excluded_shard: Some(s),
        };
        &degraded_view
    } else {
        view
    };
    let mut cache = None;
    let (lo, hi) = ts_bounds(&req.query);
    let n = view
        .store
        .docs
        .iter()
        .filter(|d| lo == i64::MIN || d.ts.is_some_and(|t| t >= lo && t <= hi))
        .filter(|d| {
            cache = None;
            view.visible(d) && matches(d, &req.query, view.store, &mut cache)
        })
        .count();
    let existing = view.existing_indices();
    let shards = match degrade {
        Degrade::ShardFailed(s) => shards_json(
            existing.len() as u64 * u64::from(SHARDS_PER_INDEX),
            Some((s, &existing, view.store)),
        ),
        _ => shards_json(view.shard_total(), None),
    };
    format!(r#"{{"count":{n},"_shards":{shards}}}"#).into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::parse_search;
    use crate::store::RawDoc;

    fn store() -> Store {
        let mut raw = Vec::new();
        for i in 0..50i64 {
            let mgr = if i % 2 == 0 { "m-a" } else { "m-b" };
            raw.push(RawDoc {
                index: "wazuh-alerts-4.x-2025.09.12".into(),
                id: format!("doc{i:03}"),
                source: json!({"timestamp": format!("2025-09-12T08:00:{:02}.000+0000", i / 2), "manager": {"name": mgr}, "id": format!("{}.{}", i / 2, i), "rule": {"level": i % 16}}),
                visible_at_ms: if i == 7 { 1_000 } else { 0 },
            });
        }
        Store::new(raw)
    }

    fn run(store: &Store, body: Value, snapshot: u64) -> Value {
        let req = parse_search(body.to_string().as_bytes(), &[], 0, false).unwrap();
        let view = View {
            store,
            snapshot_ms: snapshot,
            indices: vec![true; store.indices.len()],
            excluded_shard: None,
        };
        serde_json::from_slice(&search(&view, &req, None, Degrade::None, 1).unwrap()).unwrap()
    }

    fn ids(v: &Value) -> Vec<String> {
        v["hits"]["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["_id"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn fast_and_generic_paths_agree_on_pages() {
        let s = store();
        let sort_fast = json!([{"timestamp": "asc"}, {"manager.name": "asc"}, {"id": "asc"}]);
        let mut after: Option<Value> = None;
        let mut seen = Vec::new();
        loop {
            let mut body = json!({"size": 7, "sort": sort_fast, "query": {"range": {"rule.level": {"gte": 2}}}});
            if let Some(a) = &after {
                body["search_after"] = a.clone();
            }
            let r = run(&s, body, 10);
            let page = ids(&r);
            if page.is_empty() {
                break;
            }
            after = Some(r["hits"]["hits"].as_array().unwrap().last().unwrap()["sort"].clone());
            seen.extend(page);
        }
        // Generic path: sort by _id (same order here since doc ids grow with time).
        let all = run(
            &s,
            json!({"size": 100, "sort": ["_id"], "query": {"range": {"rule.level": {"gte": 2}}}}),
            10,
        );
        let mut generic = ids(&all);
        let mut fast = seen.clone();
        generic.sort();
        fast.sort();
        assert_eq!(fast, generic);
        assert!(
            !seen.contains(&"doc007".to_string()),
            "doc007 is not yet visible"
        );
    }

    #[test]
    fn total_is_capped_as_track_total_hits_says() {
        let s = store();
        let r = run(&s, json!({"size": 1, "track_total_hits": 5}), 10_000);
        assert_eq!(r["hits"]["total"], json!({"value": 5, "relation": "gte"}));
        let r = run(&s, json!({"size": 1, "track_total_hits": true}), 10_000);
        assert_eq!(r["hits"]["total"], json!({"value": 50, "relation": "eq"}));
        let r = run(&s, json!({"size": 1, "track_total_hits": false}), 10_000);
        assert!(r["hits"].get("total").is_none());
    }
}
