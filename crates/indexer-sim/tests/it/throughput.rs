//! Paging the whole corpus through a PIT, as the poller will, printing alerts/s. Size from
//! `SF_SCALE` (unset: 20,000; `full`: 200,000; a number: that many). No timing assertion:
//! performance is measured by benchmarks (run this with `--release` for the figure).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{cfg, poll_sort, Sim, INDEX};

fn scale() -> usize {
    match std::env::var("SF_SCALE").ok().as_deref() {
        None | Some("") => 20_000,
        Some("full") => 200_000,
        Some(n) => n.parse().expect("SF_SCALE is a number or `full`"),
    }
}

#[test]
fn paging_the_whole_corpus_through_a_pit_returns_each_alert_once_and_prints_the_rate() {
    let n = scale();
    let sim = Sim::start(cfg(n));
    let t = Instant::now();
    let (_, v) = sim.post(
        &format!("/{INDEX}/_search/point_in_time?keep_alive=1m"),
        &json!({}),
    );
    let pit = v["pit_id"].as_str().unwrap().to_string();
    let query = json!({"bool": {"filter": [
        {"range": {"timestamp": {"gte": "2025-09-12T07:59:00Z", "lt": "now"}}},
        {"range": {"rule.level": {"gte": 0}}}
    ]}});
    // Time the HTTP exchange (request, server work, TLS, transfer) apart from the client's
    // JSON parsing, which a poller can make cheaper (raw `_source`, borrowed strings).
    let mut http = Duration::ZERO;
    let mut parse = Duration::ZERO;
    let mut ids = HashSet::new();
    let mut after: Option<Value> = None;
    loop {
        let mut body = json!({
            "size": 1000, "query": query, "sort": poll_sort(), "track_total_hits": false,
            "pit": {"id": pit, "keep_alive": "1m"}
        });
        if let Some(a) = after.take() {
            body["search_after"] = a;
        }
        let t0 = Instant::now();
        let bytes = sim
            .send(Method::POST, "/_search", Some(&body))
            .unwrap()
            .bytes()
            .unwrap();
        let t1 = Instant::now();
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        parse += t1.elapsed();
        http += t1 - t0;
        let hits = v["hits"]["hits"].as_array().unwrap();
        if hits.is_empty() {
            break;
        }
        for h in hits {
            assert!(
                ids.insert(h["_id"].as_str().unwrap().to_string()),
                "duplicate hit"
            );
        }
        after = Some(hits[hits.len() - 1]["sort"].clone());
    }
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(ids.len(), n);
    println!(
        "indexer-sim: paged {n} alerts in {secs:.2}s = {:.0} alerts/s end to end; HTTP alone {:.0} alerts/s; client JSON parsing {:.2}s",
        n as f64 / secs,
        n as f64 / http.as_secs_f64(),
        parse.as_secs_f64()
    );
}
