//! Point in time: creation, stable snapshots, expiry, deletion, absence before 2.4.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use indexer_sim::SimConfig;
use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{cfg, poll_sort, Sim, INDEX};

fn create(sim: &Sim, keep_alive: &str) -> String {
    let (s, v) = sim.post(
        &format!("/{INDEX}/_search/point_in_time?keep_alive={keep_alive}"),
        &json!({}),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["_shards"]["failed"], 0);
    assert!(v["creation_time"].as_i64().unwrap() > 1_600_000_000_000);
    v["pit_id"].as_str().unwrap().to_string()
}

#[test]
fn pit_paging_sees_a_stable_snapshot_in_live_mode() {
    // 6,000 alerts arrive at 2,000/s: the stream lasts 3 s.
    let sim = Sim::start(SimConfig {
        rate: Some(2000.0),
        ..cfg(6000)
    });
    std::thread::sleep(Duration::from_millis(300));
    let pit = create(&sim, "1m");
    let first_total = {
        let (_, v) = sim.post(
            "/_search",
            &json!({"size": 0, "pit": {"id": pit}, "track_total_hits": true}),
        );
        assert_eq!(v["pit_id"], pit.as_str());
        v["hits"]["total"]["value"].as_u64().unwrap()
    };
    assert!(first_total > 100 && first_total < 6000, "{first_total}");
    // Page slowly while the stream goes on: the PIT keeps its snapshot.
    let mut seen = Vec::new();
    let mut after: Option<Value> = None;
    loop {
        let mut body =
            json!({"size": 400, "sort": poll_sort(), "pit": {"id": pit, "keep_alive": "1m"}});
        if let Some(a) = &after {
            body["search_after"] = a.clone();
        }
        let (s, v) = sim.post("/_search", &body);
        assert_eq!(s, 200, "{v}");
        let hits = v["hits"]["hits"].as_array().unwrap().clone();
        if hits.is_empty() {
            break;
        }
        after = Some(hits.last().unwrap()["sort"].clone());
        seen.extend(hits.iter().map(|h| h["_id"].as_str().unwrap().to_string()));
        std::thread::sleep(Duration::from_millis(40));
    }
    assert_eq!(seen.len() as u64, first_total);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), seen.len());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sim.handle.fully_indexed() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    // The live index has moved on; the PIT has not.
    assert_eq!(sim.count(INDEX, &json!({"match_all": {}})), 6000);
    let (_, v) = sim.post(
        "/_search",
        &json!({"size": 0, "pit": {"id": pit}, "track_total_hits": true}),
    );
    assert_eq!(v["hits"]["total"]["value"].as_u64().unwrap(), first_total);
    assert_eq!(sim.handle.stats().pits_open, 1);
}

#[test]
fn pit_endpoints_are_absent_below_2_4() {
    let sim = Sim::start(SimConfig {
        server_version: "2.3.0".into(),
        ..cfg(30)
    });
    let (s, v) = sim.post(
        &format!("/{INDEX}/_search/point_in_time?keep_alive=1m"),
        &json!({}),
    );
    assert_eq!(s, 400);
    assert_eq!(
        v["error"],
        format!("no handler found for uri [/{INDEX}/_search/point_in_time] and method [POST]")
    );
    let (s, _) = sim.call(
        Method::DELETE,
        "/_search/point_in_time",
        Some(&json!({"pit_id": ["x"]})),
    );
    assert_eq!(s, 400);
    let (s, v) = sim.post("/_search", &json!({"pit": {"id": "x"}}));
    assert_eq!(
        (s, v["error"]["type"].as_str()),
        (400, Some("parsing_exception"))
    );
    // Plain search_after still works.
    assert_eq!(
        sim.page_all(INDEX, &json!({"match_all": {}}), 7, None)
            .len(),
        30
    );
}

#[test]
fn an_expired_pit_is_a_404_search_context_missing() {
    let sim = Sim::start(cfg(30));
    let pit = create(&sim, "300ms");
    let (s, _) = sim.post("/_search", &json!({"pit": {"id": pit}}));
    assert_eq!(s, 200);
    std::thread::sleep(Duration::from_millis(450));
    let (s, v) = sim.post("/_search", &json!({"pit": {"id": pit}}));
    assert_eq!(s, 404);
    assert_eq!(v["status"], 404);
    assert_eq!(v["error"]["type"], "search_phase_execution_exception");
    assert_eq!(
        v["error"]["root_cause"][0]["type"],
        "search_context_missing_exception"
    );
    assert_eq!(sim.handle.stats().pits_open, 0);
    // A search that names keep_alive extends the PIT's life.
    let pit = create(&sim, "300ms");
    for _ in 0..4 {
        std::thread::sleep(Duration::from_millis(150));
        let (s, _) = sim.post(
            "/_search",
            &json!({"pit": {"id": pit, "keep_alive": "300ms"}}),
        );
        assert_eq!(s, 200);
    }
}

#[test]
fn deleting_pits_reports_each_id_and_keep_alive_is_required() {
    let sim = Sim::start(cfg(30));
    let a = create(&sim, "1m");
    let b = create(&sim, "1m");
    assert_ne!(a, b);
    assert_eq!(sim.handle.stats().pits_open, 2);
    let (s, v) = sim.call(
        Method::DELETE,
        "/_search/point_in_time",
        Some(&json!({"pit_id": [a, "bm90LWEtcGl0"]})),
    );
    assert_eq!(s, 200);
    assert_eq!(
        v["pits"],
        json!([{"successful": true, "pit_id": a}, {"successful": false, "pit_id": "bm90LWEtcGl0"}])
    );
    let (s, v) = sim.call(Method::GET, "/_search/point_in_time/_all", None);
    assert_eq!(s, 200);
    assert_eq!(v["pits"].as_array().unwrap().len(), 1);
    let (s, _) = sim.call(Method::DELETE, "/_search/point_in_time/_all", None);
    assert_eq!(s, 200);
    assert_eq!(sim.handle.stats().pits_open, 0);
    let (s, v) = sim.post(&format!("/{INDEX}/_search/point_in_time"), &json!({}));
    assert_eq!(
        (s, v["error"]["type"].as_str()),
        (400, Some("action_request_validation_exception"))
    );
    let (s, _) = sim.post(
        &format!("/{INDEX}/_search/point_in_time?keep_alive=2d"),
        &json!({}),
    );
    assert_eq!(s, 400);
    // A PIT search must not name an index.
    let c = create(&sim, "1m");
    let (s, v) = sim.post(&format!("/{INDEX}/_search"), &json!({"pit": {"id": c}}));
    assert_eq!(s, 400, "{v}");
}
