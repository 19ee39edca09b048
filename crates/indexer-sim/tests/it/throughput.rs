//! Paging the whole corpus through a PIT, as the poller will, printing alerts/s. Size from
//! `SF_SCALE` (unset: 20,000; `full`: 200,000; a number: that many). No timing assertion:
//! performance is measured by benchmarks (run this with `--release` for the figure).

use std::collections::HashSet;
use std::time::Instant;

use serde_json::json;

use crate::common::{cfg, Sim, INDEX};

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
    let query = json!({"bool": {"filter": [{"range": {"timestamp": {"gte": "2025-09-12T07:59:00Z", "lt": "now"}}}, {"range": {"rule.level": {"gte": 0}}}]}});
    let hits = sim.page_all(INDEX, &query, 1000, Some(&pit));
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(hits.len(), n);
    let ids: HashSet<&str> = hits.iter().map(|h| h["_id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), n);
    println!(
        "indexer-sim: paged {n} alerts in {secs:.2}s = {:.0} alerts/s (client parses every hit)",
        n as f64 / secs
    );
}
