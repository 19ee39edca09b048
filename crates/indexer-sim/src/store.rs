//! The document store: every document that exists or will exist, pre-serialized and sorted by
//! `timestamp`, `manager.name`, `id` (each missing last), then `_index`, `_id`.
//!
//! Design constraints:
//! - Immutable after start: live mode and late indexing are a per-document `visible_at_ms`
//!   (milliseconds after start) compared with the reader's snapshot time, so a search never
//!   takes a lock and a point in time is just a frozen snapshot time.
//! - Each `_source` is serialized once, at load; a hit is written by copying bytes.
//! - The primary order lets the poller's sort (`timestamp`, `manager.name`, `id`, ascending)
//!   and `search_after` be answered by binary search.

use std::cmp::Ordering;
use std::sync::Arc;

use serde_json::Value;

use crate::time::{parse_date, parse_offset};

/// Shards per daily index, as Wazuh's template sets (`number_of_shards: 3`).
pub const SHARDS_PER_INDEX: u8 = 3;

/// One indexed document.
#[derive(Debug)]
pub struct Doc {
    /// Position of its index in `Store::indices`.
    pub index: u16,
    /// The indexer's `_id`.
    pub id: Box<str>,
    /// `timestamp` in epoch millis.
    pub ts: Option<i64>,
    /// `@timestamp` in epoch millis.
    pub at_ts: Option<i64>,
    /// `manager.name`.
    pub manager: Option<Box<str>>,
    /// The alert's `id`.
    pub alert_id: Option<Box<str>>,
    /// `rule.level`.
    pub level: Option<i64>,
    /// Shard within its index.
    pub shard: u8,
    /// Milliseconds after the simulator started when the document becomes searchable.
    pub visible_at_ms: u64,
    /// Insertion order (`_doc`).
    pub seq: u32,
    /// The serialized `_source`.
    pub source: Box<str>,
}

/// A document before it is stored.
pub struct RawDoc {
    pub index: String,
    pub id: String,
    pub source: Value,
    pub visible_at_ms: u64,
}

/// All documents, in primary order.
pub struct Store {
    pub docs: Vec<Doc>,
    pub indices: Vec<Arc<str>>,
    /// Per index, when its first document becomes searchable (an index exists from then on).
    pub index_visible_at_ms: Vec<u64>,
}

/// Looks up a dotted path (`rule.level`) in a JSON document, also accepting literal dotted keys.
pub fn lookup<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    if let Some(found) = v.get(path) {
        return Some(found);
    }
    let (head, rest) = path.split_once('.')?;
    let mut cur = v.get(head)?;
    let mut rest = rest;
    loop {
        if let Some(found) = cur.get(rest) {
            return Some(found);
        }
        let (h, r) = rest.split_once('.')?;
        cur = cur.get(h)?;
        rest = r;
    }
}

fn date_ms(v: Option<&Value>) -> Option<i64> {
    let utc = parse_offset("Z");
    v.and_then(|v| parse_date(v, utc, 0).ok()).map(|s| s.lo)
}

fn fnv(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The daily index Wazuh's ingest pipeline routes an alert to: `timestamp` (else
/// `@timestamp`) as a UTC date.
pub fn daily_index(source: &Value) -> Option<String> {
    let ms = date_ms(source.get("timestamp")).or_else(|| date_ms(source.get("@timestamp")))?;
    let dt = chrono::DateTime::from_timestamp_millis(ms)?;
    Some(format!("wazuh-alerts-4.x-{}", dt.format("%Y.%m.%d")))
}

fn opt_cmp<T: Ord + ?Sized>(a: Option<&T>, b: Option<&T>) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) => a.cmp(b),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

impl Doc {
    /// Compares by the primary order's first three keys.
    pub fn primary_cmp(&self, other: &Doc) -> Ordering {
        opt_cmp(self.ts.as_ref(), other.ts.as_ref())
            .then_with(|| opt_cmp(self.manager.as_deref(), other.manager.as_deref()))
            .then_with(|| opt_cmp(self.alert_id.as_deref(), other.alert_id.as_deref()))
    }
}

impl Store {
    /// Builds the store; documents keep their relative order as `seq`.
    pub fn new(raw: Vec<RawDoc>) -> Store {
        let mut names: Vec<Arc<str>> = Vec::new();
        let mut name_ix = std::collections::HashMap::<String, u16>::new();
        let mut docs = Vec::with_capacity(raw.len());
        for (seq, r) in raw.into_iter().enumerate() {
            let index = *name_ix.entry(r.index.clone()).or_insert_with(|| {
                names.push(Arc::from(r.index.as_str()));
                u16::try_from(names.len() - 1).expect("fewer than 65536 daily indices")
            });
            let s = &r.source;
            let doc = Doc {
                index,
                shard: (fnv(&r.id) % u64::from(SHARDS_PER_INDEX)) as u8,
                ts: date_ms(s.get("timestamp")),
                at_ts: date_ms(s.get("@timestamp")),
                manager: lookup(s, "manager.name")
                    .and_then(Value::as_str)
                    .map(Box::from),
                alert_id: s.get("id").and_then(Value::as_str).map(Box::from),
                level: lookup(s, "rule.level").and_then(|v| {
                    v.as_i64()
                        .or_else(|| v.as_str().and_then(|t| t.parse().ok()))
                }),
                visible_at_ms: r.visible_at_ms,
                seq: u32::try_from(seq).expect("fewer than 4 billion documents"),
                id: r.id.into_boxed_str(),
                source: serde_json::to_string(s)
                    .expect("a JSON value serializes")
                    .into_boxed_str(),
            };
            docs.push(doc);
        }
        docs.sort_by(|a, b| {
            a.primary_cmp(b)
                .then_with(|| names[a.index as usize].cmp(&names[b.index as usize]))
                .then_with(|| a.id.cmp(&b.id))
        });
        let mut index_visible_at_ms = vec![u64::MAX; names.len()];
        for d in &docs {
            let v = &mut index_visible_at_ms[d.index as usize];
            *v = (*v).min(d.visible_at_ms);
        }
        Store {
            docs,
            indices: names,
            index_visible_at_ms,
        }
    }

    /// The largest `visible_at_ms`: after this, every document is searchable.
    pub fn all_visible_at_ms(&self) -> u64 {
        self.docs.iter().map(|d| d.visible_at_ms).max().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn daily_index_is_the_utc_date_of_timestamp() {
        // 23:30 at -0300 is 02:30 UTC the next day.
        let a = json!({"timestamp": "2025-09-12T23:30:00.000-0300"});
        assert_eq!(daily_index(&a).unwrap(), "wazuh-alerts-4.x-2025.09.13");
        let b = json!({"@timestamp": "2019-01-02T03:04:05.000Z"});
        assert_eq!(daily_index(&b).unwrap(), "wazuh-alerts-4.x-2019.01.02");
        assert!(daily_index(&json!({"rule": {}})).is_none());
    }

    #[test]
    fn store_sorts_by_timestamp_manager_id_with_missing_last() {
        let mk = |id: &str, src: Value| RawDoc {
            index: "i".into(),
            id: id.into(),
            source: src,
            visible_at_ms: 0,
        };
        let store = Store::new(vec![
            mk("a", json!({"id": "2.1", "manager": {"name": "m1"}})),
            mk(
                "b",
                json!({"timestamp": "2025-01-01T00:00:01Z", "id": "1.9", "manager": {"name": "m2"}}),
            ),
            mk(
                "c",
                json!({"timestamp": "2025-01-01T00:00:01Z", "id": "1.10", "manager": {"name": "m2"}}),
            ),
            mk(
                "d",
                json!({"timestamp": "2025-01-01T00:00:01Z", "id": "1.5", "manager": {"name": "m1"}}),
            ),
            mk(
                "e",
                json!({"timestamp": "2025-01-01T00:00:00Z", "id": "0.1", "rule": {"level": "7"}}),
            ),
        ]);
        let order: Vec<&str> = store.docs.iter().map(|d| &*d.id).collect();
        assert_eq!(order, ["e", "d", "c", "b", "a"]);
        assert_eq!(store.docs[0].level, Some(7));
    }
}
