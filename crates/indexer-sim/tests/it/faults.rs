//! Each fault kind, as it looks on the wire.

use std::io::Read;
use std::time::Duration;

use indexer_sim::{FaultKind, SimConfig};
use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{cfg, client, Sim, PASSWORD, USER};

fn faulty(kind: FaultKind) -> Sim {
    Sim::start_with_timeout(
        SimConfig {
            fault_rate: 1.0,
            faults: Some(vec![kind]),
            slow_ms: 700,
            ..cfg(200)
        },
        Duration::from_secs(5),
    )
}

fn search_body() -> Value {
    json!({"size": 200, "query": {"match_all": {}}, "sort": crate::common::poll_sort()})
}

#[test]
fn each_fault_kind_appears_and_is_well_formed() {
    for kind in FaultKind::ALL {
        let sim = faulty(kind);
        // GET / is never faulted.
        assert_eq!(sim.call(Method::GET, "/", None).0, 200, "{kind}");
        match kind {
            FaultKind::TooMany => {
                let r = sim
                    .send(
                        Method::POST,
                        "/wazuh-alerts-4.x-*/_search",
                        Some(&search_body()),
                    )
                    .unwrap();
                assert_eq!(r.status().as_u16(), 429);
                assert_eq!(r.headers()["retry-after"], "1");
                let v: Value = r.json().unwrap();
                assert_eq!(v["status"], 429);
                assert_eq!(v["error"]["type"], "rejected_execution_exception");
            }
            FaultKind::Internal => {
                let (s, v) = sim.post("/wazuh-alerts-4.x-*/_count", &json!({}));
                assert_eq!((s, v["status"].as_u64()), (500, Some(500)));
                assert!(v["error"]["root_cause"].is_array());
            }
            FaultKind::Unavailable => {
                let (s, v) = sim.post("/wazuh-alerts-4.x-*/_search", &search_body());
                assert_eq!(s, 503);
                assert_eq!(v["error"]["type"], "search_phase_execution_exception");
                assert_eq!(v["error"]["reason"], "all shards failed");
            }
            FaultKind::Slow => {
                let short = client(sim.handle.ca_pem(), Duration::from_millis(250));
                let e = short
                    .post(format!("{}/wazuh-alerts-4.x-*/_search", sim.base))
                    .basic_auth(USER, Some(PASSWORD))
                    .body("{}")
                    .send()
                    .unwrap_err();
                assert!(e.is_timeout(), "{e}");
                let t = std::time::Instant::now();
                let (s, v) = sim.post("/wazuh-alerts-4.x-*/_search", &search_body());
                assert_eq!(s, 200);
                assert!(t.elapsed() >= Duration::from_millis(650));
                assert_eq!(
                    v["hits"]["hits"].as_array().unwrap().len(),
                    200,
                    "a slow answer is a right answer"
                );
            }
            FaultKind::Truncated => {
                let mut r = sim
                    .send(
                        Method::POST,
                        "/wazuh-alerts-4.x-*/_search",
                        Some(&search_body()),
                    )
                    .unwrap();
                assert_eq!(r.status().as_u16(), 200);
                let declared: usize = r.headers()["content-length"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!(declared > 1000);
                let mut buf = Vec::new();
                let res = r.read_to_end(&mut buf);
                assert!(
                    res.is_err() || buf.len() < declared,
                    "read {} of {declared}",
                    buf.len()
                );
                assert!(serde_json::from_slice::<Value>(&buf).is_err());
            }
            FaultKind::Malformed => {
                let r = sim
                    .send(
                        Method::POST,
                        "/wazuh-alerts-4.x-*/_search",
                        Some(&search_body()),
                    )
                    .unwrap();
                assert_eq!(r.status().as_u16(), 200);
                assert!(r.headers()["content-type"]
                    .to_str()
                    .unwrap()
                    .starts_with("application/json"));
                let text = r.text().unwrap();
                assert!(!text.is_empty());
                assert!(serde_json::from_str::<Value>(&text).is_err());
            }
            FaultKind::Partial => {
                let (mut shard_failures, mut timeouts) = (0, 0);
                for _ in 0..12 {
                    let (s, v) = sim.post("/wazuh-alerts-4.x-*/_search", &search_body());
                    assert_eq!(s, 200);
                    let n = v["hits"]["hits"].as_array().unwrap().len();
                    assert!(n < 200, "a partial answer misses hits");
                    let sh = &v["_shards"];
                    if sh["failed"].as_u64().unwrap() > 0 {
                        shard_failures += 1;
                        assert!(sh["successful"].as_u64().unwrap() < sh["total"].as_u64().unwrap());
                        let f = &sh["failures"][0];
                        assert!(
                            f["shard"].is_number()
                                && f["index"].is_string()
                                && f["reason"]["type"].is_string()
                        );
                    } else {
                        assert_eq!(v["timed_out"], true);
                        timeouts += 1;
                    }
                }
                assert!(
                    shard_failures > 0 && timeouts > 0,
                    "{shard_failures} {timeouts}"
                );
                let (_, v) = sim.post("/wazuh-alerts-4.x-*/_count", &json!({}));
                assert!(
                    v["_shards"]["failed"].as_u64().unwrap() > 0
                        && v["count"].as_u64().unwrap() < 200
                );
            }
            FaultKind::Unauthorized => {
                let r = sim
                    .send(
                        Method::POST,
                        "/wazuh-alerts-4.x-*/_search",
                        Some(&search_body()),
                    )
                    .unwrap();
                assert_eq!(r.status().as_u16(), 401);
                assert_eq!(
                    r.headers()["www-authenticate"],
                    "Basic realm=\"OpenSearch Security\""
                );
            }
        }
        let stats = sim.handle.stats();
        assert!(
            stats.faults.get(&kind).copied().unwrap_or(0) >= 1,
            "{kind}: {stats:?}"
        );
        assert_eq!(stats.faults.len(), 1, "{kind}: only the named kind");
    }
}

#[test]
fn fault_rate_alone_mixes_every_transient_kind_but_never_401() {
    let sim = Sim::start_with_timeout(
        SimConfig {
            fault_rate: 1.0,
            slow_ms: 5,
            ..cfg(50)
        },
        Duration::from_secs(5),
    );
    for i in 0..140 {
        let path = if i % 3 == 0 {
            "/wazuh-alerts-4.x-*/_count"
        } else {
            "/wazuh-alerts-4.x-*/_search"
        };
        if let Ok(r) = sim.send(Method::POST, path, Some(&json!({}))) {
            let _ = r.bytes();
        }
    }
    let stats = sim.handle.stats();
    for kind in FaultKind::TRANSIENT {
        assert!(
            stats.faults.get(&kind).copied().unwrap_or(0) > 0,
            "{kind} never drawn: {stats:?}"
        );
    }
    assert!(!stats.faults.contains_key(&FaultKind::Unauthorized));
    // At a partial rate, most requests succeed.
    let sim = Sim::start_with_timeout(
        SimConfig {
            fault_rate: 0.1,
            slow_ms: 5,
            ..cfg(50)
        },
        Duration::from_secs(5),
    );
    let ok = (0..100)
        .filter(|_| {
            sim.send(Method::POST, "/_count", Some(&json!({})))
                .map(|r| r.status().as_u16() == 200 && r.json::<Value>().is_ok())
                .unwrap_or(false)
        })
        .count();
    assert!((75..=99).contains(&ok), "{ok} of 100 clean");
}
