//! Where documents come from (generated or loaded from JSON lines) and when each becomes
//! searchable (live mode and late indexing).
//!
//! Promises:
//! - Loading accepts bare alerts (routed to their daily index, given a generated `_id`) and
//!   indexer hits (`_index`, `_id`, `_source` kept); a bad line is an error naming the file
//!   and line.
//! - The schedule depends only on (seed, rate, late rate, the documents), never on the clock:
//!   with `rate`, documents become searchable in timestamp order at `rate` per second; a late
//!   document's delay is a lag in timestamp time (half within 2 minutes, half up to 15
//!   minutes) scaled by the stream's compression, so some are late beyond a 2-minute overlap
//!   while the test stays fast. Without `rate`, late documents appear 0.5 to 3 s after start.

use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

use crate::error::SimError;
use crate::store::{daily_index, RawDoc};
use crate::time::{parse_date, parse_offset};

/// Reads a JSON-lines corpus.
pub fn load(path: &Path, seed: u64) -> Result<Vec<RawDoc>, SimError> {
    let text = std::fs::read_to_string(path).map_err(|source| SimError::CorpusRead {
        path: path.to_path_buf(),
        source,
    })?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x00c0_4b05);
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |reason: String| SimError::CorpusLine {
            path: path.to_path_buf(),
            line: i + 1,
            reason,
        };
        let v: Value = serde_json::from_str(line).map_err(|e| bad(format!("not JSON: {e}")))?;
        if !v.is_object() {
            return Err(bad("not a JSON object".into()));
        }
        let (index, id, source) = match v.get("_source") {
            Some(src) if src.is_object() => {
                let index = match v.get("_index").and_then(Value::as_str) {
                    Some(s) => s.to_string(),
                    None => daily_index(src).ok_or_else(|| {
                        bad("hit has no _index and its _source no timestamp or @timestamp".into())
                    })?,
                };
                let id = match v.get("_id").and_then(Value::as_str) {
                    Some(s) => s.to_string(),
                    None => crate::generate::auto_id(&mut rng),
                };
                (index, id, src.clone())
            }
            _ => {
                let index = daily_index(&v).ok_or_else(|| {
                    bad("alert has neither timestamp nor @timestamp, so no daily index".into())
                })?;
                (index, crate::generate::auto_id(&mut rng), v)
            }
        };
        out.push(RawDoc {
            index,
            id,
            source,
            visible_at_ms: 0,
        });
    }
    Ok(out)
}

fn ts_of(d: &RawDoc) -> i64 {
    let utc = parse_offset("Z");
    d.source
        .get("timestamp")
        .or_else(|| d.source.get("@timestamp"))
        .and_then(|v| parse_date(v, utc, 0).ok())
        .map_or(i64::MAX, |s| s.lo)
}

/// Sets every document's `visible_at_ms`.
pub fn schedule(docs: &mut [RawDoc], rate: Option<f64>, late_rate: f64, seed: u64) {
    let n = docs.len();
    let mut order: Vec<(i64, usize)> = docs
        .iter()
        .enumerate()
        .map(|(i, d)| (ts_of(d), i))
        .collect();
    order.sort_unstable();
    let known: Vec<i64> = order
        .iter()
        .map(|(t, _)| *t)
        .filter(|t| *t != i64::MAX)
        .collect();
    let span_ms = match (known.first(), known.last()) {
        (Some(a), Some(b)) if b > a => (b - a) as f64,
        _ => 3_600_000.0,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_1a7e);
    let late_rate = late_rate.clamp(0.0, 1.0);
    for (pos, (_, i)) in order.into_iter().enumerate() {
        let late = rng.gen_bool(late_rate);
        let lag_ts_ms: u64 = if rng.gen_bool(0.5) {
            rng.gen_range(20_000..110_000)
        } else {
            rng.gen_range(150_000..900_000)
        };
        let plain_delay: u64 = rng.gen_range(500..3_000);
        let (base, delay) = match rate {
            Some(r) if r > 0.0 => {
                let base = (pos as f64 / r * 1000.0) as u64;
                let factor = (n as f64 / r * 1000.0) / span_ms;
                (base, (lag_ts_ms as f64 * factor).ceil() as u64)
            }
            _ => (0, plain_delay),
        };
        docs[i].visible_at_ms = if late { base + delay.max(1) } else { base };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn raw(ts: &str) -> RawDoc {
        RawDoc {
            index: "i".into(),
            id: ts.into(),
            source: json!({"timestamp": ts}),
            visible_at_ms: 0,
        }
    }

    #[test]
    fn live_schedule_follows_timestamp_order_at_the_rate() {
        let mut docs: Vec<RawDoc> = (0..10)
            .rev()
            .map(|s| raw(&format!("2025-01-01T00:00:{s:02}Z")))
            .collect();
        schedule(&mut docs, Some(100.0), 0.0, 1);
        // Reversed input: the last document is the earliest.
        assert_eq!(docs[9].visible_at_ms, 0);
        assert_eq!(docs[0].visible_at_ms, 90);
    }

    #[test]
    fn late_documents_become_searchable_after_their_turn() {
        let mut docs: Vec<RawDoc> = (0..1000)
            .map(|i| raw(&format!("2025-01-01T00:{:02}:{:02}Z", i / 60 % 60, i % 60)))
            .collect();
        schedule(&mut docs, Some(1000.0), 0.2, 3);
        let late = docs
            .iter()
            .enumerate()
            .filter(|(i, d)| d.visible_at_ms > *i as u64)
            .count();
        assert!((120..280).contains(&late), "late {late}");
    }
}
