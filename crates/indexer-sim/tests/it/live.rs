//! Live mode and late indexing.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use indexer_sim::SimConfig;
use serde_json::json;

use crate::common::{cfg, Sim, INDEX};

#[test]
fn late_docs_become_searchable_later() {
    let sim = Sim::start(SimConfig {
        late_rate: 0.3,
        ..cfg(400)
    });
    let now = sim.count(INDEX, &json!({"match_all": {}}));
    assert!(now > 200 && now < 360, "{now} searchable at start");
    assert_eq!(
        sim.handle.corpus().len(),
        400,
        "the corpus names late documents too"
    );
    let stats = sim.handle.stats();
    assert_eq!(stats.docs_total, 400);
    assert!(stats.docs_searchable < 400);
    std::thread::sleep(sim.handle.all_searchable_after() + Duration::from_millis(50));
    assert_eq!(sim.count(INDEX, &json!({"match_all": {}})), 400);
    assert!(sim.handle.fully_indexed());
}

#[test]
fn a_live_stream_with_late_indexing_has_docs_later_than_a_2_minute_overlap() {
    let sim = Sim::start(SimConfig {
        rate: Some(1500.0),
        late_rate: 0.1,
        ..cfg(2000)
    });
    let mut seen: HashMap<String, i64> = HashMap::new();
    let mut max_seen = i64::MIN;
    let mut beyond_overlap = 0;
    let mut within_overlap = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let done = sim.handle.fully_indexed();
        let mut round_max = max_seen;
        for h in sim.page_all(INDEX, &json!({"match_all": {}}), 1000, None) {
            let id = h["_id"].as_str().unwrap().to_string();
            let ts = h["sort"][0].as_i64().unwrap();
            if seen.insert(id, ts).is_none() && max_seen != i64::MIN {
                if max_seen - ts > 120_000 {
                    beyond_overlap += 1;
                } else if max_seen > ts {
                    within_overlap += 1;
                }
            }
            round_max = round_max.max(ts);
        }
        max_seen = round_max;
        if done || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(60));
    }
    assert_eq!(
        seen.len(),
        2000,
        "the stream ends with every alert searchable"
    );
    assert!(
        beyond_overlap > 0,
        "some alerts became searchable more than 2 minutes (in alert time) behind newer ones"
    );
    assert!(within_overlap > 0, "and some within the overlap");
}
