//! The simulator's responses have the shapes of real OpenSearch responses
//! (`tests/data/opensearch/`, sources in its README).

use std::time::Duration;

use indexer_sim::{FaultKind, SimConfig};
use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{cfg, poll_sort, Sim, INDEX};

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/data/opensearch/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Differences in shape between a real body and the simulator's: keys and JSON types,
/// recursively. `_source` is opaque. `optional` names paths (`a.b`, `[]` for array elements)
/// the real body has and the simulator may omit; `extra` names paths only the simulator has.
fn shape_diff(
    real: &Value,
    sim: &Value,
    path: &str,
    optional: &[&str],
    extra: &[&str],
    out: &mut Vec<String>,
) {
    if kind(real) != kind(sim) {
        out.push(format!(
            "{path}: real is {}, simulator sends {}",
            kind(real),
            kind(sim)
        ));
        return;
    }
    match (real, sim) {
        (Value::Object(r), Value::Object(s)) => {
            if path.ends_with("_source") {
                return;
            }
            let join = |k: &str| {
                if path.is_empty() {
                    k.to_string()
                } else {
                    format!("{path}.{k}")
                }
            };
            for (k, rv) in r {
                match s.get(k) {
                    Some(sv) => shape_diff(rv, sv, &join(k), optional, extra, out),
                    None if optional.contains(&join(k).as_str()) => {}
                    None => out.push(format!("{}: missing in the simulator", join(k))),
                }
            }
            for k in s.keys() {
                if !r.contains_key(k) && !extra.contains(&join(k).as_str()) {
                    out.push(format!(
                        "{}: the simulator sends a key real responses do not have",
                        join(k)
                    ));
                }
            }
        }
        (Value::Array(r), Value::Array(s)) => {
            if r.is_empty() || s.is_empty() {
                return;
            }
            for sv in s {
                match r.iter().find(|rv| kind(rv) == kind(sv)) {
                    Some(rv) => shape_diff(rv, sv, &format!("{path}[]"), optional, extra, out),
                    None => out.push(format!(
                        "{path}[]: the simulator sends a {} element; real elements are {:?}",
                        kind(sv),
                        r.iter().map(kind).collect::<Vec<_>>()
                    )),
                }
            }
        }
        _ => {}
    }
}

fn check(name: &str, sim: &Value, optional: &[&str], extra: &[&str]) {
    let mut diffs = Vec::new();
    shape_diff(&fixture(name), sim, "", optional, extra, &mut diffs);
    assert!(
        diffs.is_empty(),
        "{name}:\n  {}\nsimulator body: {sim}",
        diffs.join("\n  ")
    );
}

#[test]
fn the_shape_check_catches_missing_extra_and_mistyped_keys() {
    let real = json!({"a": 1, "b": {"c": "x"}, "l": [1, "s"]});
    let mut d = Vec::new();
    shape_diff(
        &real,
        &json!({"a": "1", "b": {}, "l": [true], "z": 0}),
        "",
        &[],
        &[],
        &mut d,
    );
    assert_eq!(d.len(), 4, "{d:?}");
}

#[test]
fn simulator_responses_have_the_shapes_of_real_opensearch_bodies() {
    let sim = Sim::start(cfg(300));
    let (s, v) = sim.post(
        &format!("/{INDEX}/_search"),
        &json!({"size": 3, "sort": poll_sort(), "track_total_hits": true}),
    );
    assert_eq!(s, 200);
    check("search-sorted-hits.json", &v, &[], &[]);

    let (_, v) = sim.post(
        &format!("/{INDEX}/_count"),
        &json!({"query": {"range": {"rule.level": {"gte": 3}}}}),
    );
    check("count.json", &v, &[], &[]);

    let (s, v) = sim.post(
        &format!("/{INDEX}/_search/point_in_time?keep_alive=1m"),
        &json!({}),
    );
    assert_eq!(s, 200);
    check("pit-create.json", &v, &[], &[]);
    let pit = v["pit_id"].as_str().unwrap().to_string();
    let (_, v) = sim.post(
        "/_search",
        &json!({"size": 2, "sort": poll_sort(), "pit": {"id": pit}}),
    );
    check("search-sorted-hits.json", &v, &[], &["pit_id"]);

    let (_, v) = sim.call(
        Method::DELETE,
        "/_search/point_in_time",
        Some(&json!({"pit_id": [pit, "bm9uZQ=="]})),
    );
    check("pit-delete.json", &v, &[], &[]);

    let (s, v) = sim.post(
        &format!("/{INDEX}/_search/point_in_time?keep_alive=100ms"),
        &json!({}),
    );
    assert_eq!(s, 200);
    std::thread::sleep(Duration::from_millis(200));
    let (s, v) = sim.post("/_search", &json!({"pit": {"id": v["pit_id"]}}));
    assert_eq!(s, 404);
    check("search-context-missing-404.json", &v, &[], &[]);

    let (s, v) = sim.post(
        &format!("/{INDEX}/_search"),
        &json!({"from": 10_000, "size": 1}),
    );
    assert_eq!(s, 400);
    check("result-window-400.json", &v, &[], &[]);

    let (_, v) = sim.call(Method::GET, "/", None);
    check("cluster-info-opensearch-distribution.json", &v, &[], &[]);
    let compat = Sim::start(SimConfig {
        wazuh_compat: true,
        ..cfg(1)
    });
    let (_, v) = compat.call(Method::GET, "/", None);
    check("cluster-info-wazuh-4.13.json", &v, &[], &[]);

    let r = sim
        .client
        .post(format!("{}/{INDEX}/_search", sim.base))
        .basic_auth("admin", Some("admin"))
        .body("{}")
        .send()
        .unwrap();
    let want = fixture("security-401.json");
    assert_eq!(r.status().as_u16(), want["status"]);
    for (h, val) in want["headers"].as_object().unwrap() {
        assert_eq!(r.headers()[h.as_str()], val.as_str().unwrap(), "{h}");
    }
    assert_eq!(r.text().unwrap(), want["body"]);

    // Partial results: a shard failure with `failures[]` (the real reason object carries more
    // keys for a query_shard_exception than for the node failure the simulator reports).
    let partial = Sim::start(SimConfig {
        fault_rate: 1.0,
        faults: Some(vec![FaultKind::Partial]),
        ..cfg(300)
    });
    let optional = [
        "_shards.failures[].reason.index",
        "_shards.failures[].reason.index_uuid",
    ];
    let mut checked = false;
    for _ in 0..20 {
        let body = json!({"size": 3, "sort": [{"timestamp": "asc"}], "track_total_hits": true});
        let (_, v) = partial.post(&format!("/{INDEX}/_search"), &body);
        if v["_shards"]["failed"].as_u64().unwrap() > 0 {
            check("search-shard-failure.json", &v, &optional, &[]);
            checked = true;
            break;
        }
    }
    assert!(checked, "no shard-failure response in 20 tries");
}
