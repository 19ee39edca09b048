//! The generated and the loaded corpus.

use std::collections::HashSet;
use std::io::Write;

use indexer_sim::{SimConfig, SimError, Simulator};
use serde_json::{json, Value};

use crate::common::{cfg, Sim, INDEX};

fn data(name: &str) -> Value {
    let path = format!(
        "{}/tests/data/wazuh-alerts/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn the_corpus_is_deterministic_for_seed_and_end_time() {
    let a = Simulator::start(cfg(400)).unwrap();
    let b = Simulator::start(cfg(400)).unwrap();
    let c = Simulator::start(SimConfig {
        seed: 43,
        ..cfg(400)
    })
    .unwrap();
    let later = Simulator::start(SimConfig {
        end_time: Some(crate::common::end_time() + chrono::Duration::minutes(1)),
        ..cfg(400)
    })
    .unwrap();
    assert_eq!(a.corpus(), b.corpus());
    assert_ne!(a.corpus(), c.corpus());
    assert_ne!(a.corpus(), later.corpus());
    let docs = a.corpus();
    assert_eq!(docs.len(), 400);
    let mut keys = HashSet::new();
    let end_ms = crate::common::end_time().timestamp_millis();
    for d in &docs {
        let s = &d["_source"];
        assert!(keys.insert((
            s["manager"]["name"].as_str().unwrap().to_string(),
            s["id"].as_str().unwrap().to_string()
        )));
        let ts = crate::common::ts_ms(s);
        assert!(ts < end_ms && ts >= end_ms - 3_600_000);
        let epoch: i64 = s["id"]
            .as_str()
            .unwrap()
            .split('.')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(
            epoch,
            ts.div_euclid(1000),
            "id starts with the alert's epoch second"
        );
        assert!(s["@timestamp"].as_str().unwrap().ends_with('Z'));
        assert_eq!(d["_id"].as_str().unwrap().len(), 20);
    }
    let managers: HashSet<&str> = docs
        .iter()
        .map(|d| d["_source"]["manager"]["name"].as_str().unwrap())
        .collect();
    assert!(managers.len() >= 3);
}

#[test]
fn a_loaded_corpus_serves_bare_alerts_and_indexer_hits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("corpus.jsonl");
    let mut f = std::fs::File::create(&path).unwrap();
    writeln!(
        f,
        "{}",
        data("linux-rootcheck-510-trojaned-md5sum-alpine.json")
    )
    .unwrap();
    writeln!(
        f,
        "{}",
        data("linux-rootcheck-510-zk-rootkit-3x-indexed.json")
    )
    .unwrap();
    writeln!(f).unwrap();
    writeln!(f, "{}", json!({"_index": "wazuh-alerts-4.x-2025.09.12", "_id": "I1YBPZkBNAigJEvDyhEH", "_source": data("windows-fim-750-registry-value-modified.json")})).unwrap();
    writeln!(f, "{}", json!({"_index": "wazuh-alerts-4.x-2025.09.12", "_id": "b1YWPZkBNAigJEvDRx3e", "_source": data("windows-logon-60106-success-system-type5.json")})).unwrap();
    drop(f);
    let sim = Sim::start(SimConfig {
        corpus: Some(path.clone()),
        ..cfg(0)
    });
    let corpus = sim.handle.corpus();
    assert_eq!(corpus.len(), 4);
    let indices: HashSet<&str> = corpus
        .iter()
        .map(|d| d["_index"].as_str().unwrap())
        .collect();
    assert!(
        indices.contains("wazuh-alerts-4.x-2023.01.23"),
        "routed by timestamp: {indices:?}"
    );
    assert!(indices.contains("wazuh-alerts-4.x-2025.09.12"));
    assert_eq!(sim.count(INDEX, &json!({"match_all": {}})), 4);
    let (_, v) = sim.post(
        "/wazuh-alerts-4.x-*/_search",
        &json!({"query": {"terms": {"_id": ["I1YBPZkBNAigJEvDyhEH"]}}}),
    );
    assert_eq!(v["hits"]["hits"][0]["_source"]["rule"]["id"], "750");
    // The 3.x document has no `timestamp`: it sorts last and a timestamp range never matches it.
    let hits = sim.page_all(INDEX, &json!({"match_all": {}}), 10, None);
    assert_eq!(hits.len(), 4);
    assert_eq!(hits[3]["sort"][0], json!(i64::MAX));
    assert_eq!(
        sim.count(
            INDEX,
            &json!({"range": {"timestamp": {"gte": "2000-01-01"}}})
        ),
        3
    );

    let bad = dir.path().join("bad.jsonl");
    std::fs::File::create(&bad)
        .and_then(|mut f| {
            f.write_all(b"{}\n{\"_source\": {\"timestamp\": \"2025-01-01T00:00:00Z\"}}\nnot json\n")
        })
        .unwrap();
    let err = Simulator::start(SimConfig {
        corpus: Some(bad.clone()),
        ..cfg(0)
    })
    .err()
    .unwrap();
    match &err {
        SimError::CorpusLine { line, .. } => assert_eq!(*line, 1, "{err}"),
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains(&bad.display().to_string()));
}
