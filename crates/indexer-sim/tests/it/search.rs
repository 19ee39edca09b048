//! `_search` and `_count`: paging, filters, limits, index patterns, errors.

use std::collections::HashSet;

use chrono::{FixedOffset, TimeZone};
use indexer_sim::SimConfig;
use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{cfg, poll_sort, ts_ms, Sim, INDEX};

#[test]
fn search_after_paging_returns_every_doc_exactly_once_in_sort_order() {
    let sim = Sim::start(cfg(1000));
    let query = json!({"bool": {"filter": [{"range": {"timestamp": {"gte": "2025-09-12T07:00:00.000+0000"}}}]}});
    let hits = sim.page_all(INDEX, &query, 97, None);
    let corpus = sim.handle.corpus();
    let got: Vec<&str> = hits.iter().map(|h| h["_id"].as_str().unwrap()).collect();
    let want: Vec<&str> = corpus.iter().map(|d| d["_id"].as_str().unwrap()).collect();
    assert_eq!(got.len(), 1000);
    assert_eq!(
        got, want,
        "every document once, in timestamp, manager.name, id order"
    );
    assert_eq!(got.iter().collect::<HashSet<_>>().len(), 1000);
    let mut prev: Option<(i64, String, String)> = None;
    for h in &hits {
        let s = &h["_source"];
        let key = (
            ts_ms(s),
            s["manager"]["name"].as_str().unwrap().to_string(),
            s["id"].as_str().unwrap().to_string(),
        );
        assert_eq!(h["sort"], json!([key.0, key.1, key.2]));
        assert!(h["_score"].is_null());
        assert!(h["_index"]
            .as_str()
            .unwrap()
            .starts_with("wazuh-alerts-4.x-2025.09.12"));
        if let Some(p) = &prev {
            assert!(p < &key, "{p:?} !< {key:?}");
        }
        prev = Some(key);
    }
}

#[test]
fn from_plus_size_over_10000_is_refused_with_the_result_window_error() {
    let sim = Sim::start(cfg(50));
    let (s, v) = sim.post(
        "/wazuh-alerts-4.x-*/_search",
        &json!({"from": 9990, "size": 11}),
    );
    assert_eq!(s, 400);
    assert_eq!(v["status"], 400);
    assert_eq!(v["error"]["type"], "search_phase_execution_exception");
    assert_eq!(
        v["error"]["root_cause"][0]["type"],
        "illegal_argument_exception"
    );
    assert!(v["error"]["root_cause"][0]["reason"].as_str().unwrap().starts_with("Result window is too large, from + size must be less than or equal to: [10000] but was [10001]"));
    let (s, _) = sim.post(
        "/wazuh-alerts-4.x-*/_search",
        &json!({"from": 9990, "size": 10}),
    );
    assert_eq!(s, 200);
}

#[test]
fn count_matches_the_filter_and_the_exact_search_total() {
    let sim = Sim::start(cfg(800));
    let lo = "2025-09-12T08:15:00.000+0000";
    let query = json!({"bool": {"filter": [{"range": {"timestamp": {"gte": lo}}}, {"range": {"rule.level": {"gte": 7}}}]}});
    let lo_ms = chrono::DateTime::parse_from_rfc3339("2025-09-12T08:15:00Z")
        .unwrap()
        .timestamp_millis();
    let expected = sim
        .handle
        .corpus()
        .iter()
        .filter(|d| {
            ts_ms(&d["_source"]) >= lo_ms && d["_source"]["rule"]["level"].as_i64().unwrap() >= 7
        })
        .count() as u64;
    assert!(expected > 50);
    assert_eq!(sim.count(INDEX, &query), expected);
    let (_, v) = sim.post(
        "/wazuh-alerts-4.x-*/_search",
        &json!({"size": 0, "query": query, "track_total_hits": true}),
    );
    assert_eq!(
        v["hits"]["total"],
        json!({"value": expected, "relation": "eq"})
    );
    let (_, v) = sim.post("/_count", &json!({}));
    assert_eq!(v["count"], 800);
    assert_eq!(v["_shards"]["failed"], 0);
}

#[test]
fn range_accepts_offsets_and_epoch_millis_for_the_same_instant() {
    let sim = Sim::start(cfg(600));
    let corpus = sim.handle.corpus();
    let t = ts_ms(&corpus[300]["_source"]);
    let expected = corpus.iter().filter(|d| ts_ms(&d["_source"]) >= t).count() as u64;
    let forms: Vec<Value> = {
        let utc = chrono::Utc.timestamp_millis_opt(t).unwrap();
        let sp = utc.with_timezone(&FixedOffset::west_opt(3 * 3600).unwrap());
        let ind = utc.with_timezone(&FixedOffset::east_opt(5 * 3600 + 1800).unwrap());
        vec![
            json!(utc.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()),
            json!(utc.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string()),
            json!(sp.format("%Y-%m-%dT%H:%M:%S%.3f%z").to_string()),
            json!(sp.format("%Y-%m-%dT%H:%M:%S%.3f%:z").to_string()),
            json!(ind.format("%Y-%m-%dT%H:%M:%S%.3f%z").to_string()),
            json!(t),
            json!(t.to_string()),
        ]
    };
    for f in forms {
        let q = json!({"bool": {"filter": [{"range": {"timestamp": {"gte": f, "format": "strict_date_optional_time||epoch_millis"}}}]}});
        assert_eq!(sim.count(INDEX, &q), expected, "gte {f}");
    }
    // gt excludes the instant itself; lt/lte bound the other side.
    let at_t = corpus.iter().filter(|d| ts_ms(&d["_source"]) == t).count() as u64;
    let q = json!({"range": {"timestamp": {"gt": t}}});
    assert_eq!(sim.count(INDEX, &q), expected - at_t);
    let q = json!({"range": {"timestamp": {"lt": t}}});
    assert_eq!(sim.count(INDEX, &q), 600 - expected);
}

#[test]
fn terms_and_ids_on_id_fetch_documents_without_source() {
    let sim = Sim::start(cfg(300));
    let corpus = sim.handle.corpus();
    let ids: Vec<&str> = [5, 77, 250]
        .iter()
        .map(|&i| corpus[i]["_id"].as_str().unwrap())
        .collect();
    for query in [
        json!({"terms": {"_id": ids}}),
        json!({"ids": {"values": ids}}),
        json!({"bool": {"filter": [{"terms": {"_id": ids}}]}}),
    ] {
        let (s, v) = sim.post(
            "/wazuh-alerts-4.x-*/_search",
            &json!({"size": 10, "query": query, "_source": false}),
        );
        assert_eq!(s, 200, "{v}");
        let hits = v["hits"]["hits"].as_array().unwrap();
        let got: HashSet<&str> = hits.iter().map(|h| h["_id"].as_str().unwrap()).collect();
        assert_eq!(got, ids.iter().copied().collect::<HashSet<_>>());
        assert!(hits
            .iter()
            .all(|h| h.get("_source").is_none() && h["_index"].is_string()));
    }
    let (_, v) = sim.post(
        "/wazuh-alerts-4.x-*/_search",
        &json!({"query": {"term": {"_id": ids[0]}}, "_source": ["rule.level", "manager"]}),
    );
    let src = &v["hits"]["hits"][0]["_source"];
    assert!(src["rule"]["level"].is_number() && src["manager"]["name"].is_string());
    assert!(src.get("agent").is_none());
}

#[test]
fn daily_indices_are_selected_by_names_lists_and_wildcards() {
    // The hour before 00:30 UTC spans two daily indices.
    let end = chrono::DateTime::parse_from_rfc3339("2025-09-12T00:30:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let sim = Sim::start(SimConfig {
        end_time: Some(end),
        ..cfg(400)
    });
    let all = json!({"match_all": {}});
    let a = sim.count("wazuh-alerts-4.x-2025.09.11", &all);
    let b = sim.count("wazuh-alerts-4.x-2025.09.12", &all);
    assert!(a > 0 && b > 0);
    assert_eq!(a + b, 400);
    assert_eq!(
        sim.count(
            "wazuh-alerts-4.x-2025.09.11,wazuh-alerts-4.x-2025.09.12",
            &all
        ),
        400
    );
    assert_eq!(sim.count("wazuh-alerts-*", &all), 400);
    assert_eq!(
        sim.count("wazuh-alerts-4.x-*,-wazuh-alerts-4.x-2025.09.11", &all),
        b
    );
    assert_eq!(sim.count("wazuh-archives-*", &all), 0);
    let (_, v) = sim.post("/wazuh-alerts-4.x-2025.09.1*/_search", &json!({"size": 0}));
    assert_eq!(v["_shards"]["total"], 6, "3 shards per daily index");
    let (s, v) = sim.post("/wazuh-alerts-4.x-2020.01.01/_count", &json!({}));
    assert_eq!(s, 404);
    assert_eq!(v["error"]["type"], "index_not_found_exception");
    // Every hit's _index is the UTC date of its timestamp.
    for d in sim.handle.corpus() {
        let utc = chrono::Utc
            .timestamp_millis_opt(ts_ms(&d["_source"]))
            .unwrap();
        assert_eq!(
            d["_index"],
            format!("wazuh-alerts-4.x-{}", utc.format("%Y.%m.%d"))
        );
    }
}

#[test]
fn malformed_json_unknown_queries_and_routes_get_opensearch_errors() {
    let sim = Sim::start(cfg(10));
    let r = sim
        .send(Method::POST, "/wazuh-alerts-4.x-*/_search", None)
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "an empty body is match_all");
    let r = sim
        .client
        .post(format!("{}/wazuh-alerts-4.x-*/_search", sim.base))
        .basic_auth(crate::common::USER, Some(crate::common::PASSWORD))
        .header("content-type", "application/json")
        .body("{\"query\": ")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let v: Value = r.json().unwrap();
    assert_eq!(v["error"]["type"], "parsing_exception");
    assert_eq!(v["error"]["root_cause"][0]["type"], "parsing_exception");
    assert_eq!(v["status"], 400);
    let (s, v) = sim.post(
        "/wazuh-alerts-4.x-*/_search",
        &json!({"query": {"fuzzy": {"x": "y"}}}),
    );
    assert_eq!(
        (s, v["error"]["type"].as_str()),
        (400, Some("parsing_exception"))
    );
    let (s, v) = sim.call(Method::GET, "/_cat/indices", None);
    assert_eq!(s, 400);
    assert_eq!(
        v["error"],
        "no handler found for uri [/_cat/indices] and method [GET]"
    );
    let (s, v) = sim.call(Method::PUT, "/_search", None);
    assert_eq!(s, 405);
    assert!(v["error"]
        .as_str()
        .unwrap()
        .starts_with("Incorrect HTTP method"));
    let (s, v) = sim.post(
        "/wazuh-alerts-4.x-*/_search",
        &json!({"sort": poll_sort(), "search_after": [1]}),
    );
    assert_eq!(
        (s, v["error"]["type"].as_str()),
        (400, Some("illegal_argument_exception"))
    );
}
