//! One source of truth for every figure (issue 12): every `key=value` a stage's summary line
//! prints in a `run` is a counter of that stage in `heartbeat.json` and a sample of
//! `signalfoundry_stage_count` in `metrics.prom`, with the same value.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;

use indexer_sim::{SimConfig, Simulator};
use serde_json::Value;

use crate::support::{alert_line, summary, Env};

const USER: &str = "sf-reports";
const PASSWORD: &str = "reports-Pw-16180339";

/// `signalfoundry_stage_count` samples of a metrics file: (stage, counter) -> value, parsed
/// with `prometheus-parse`.
fn stage_counts(prom: &str) -> BTreeMap<(String, String), f64> {
    let scrape =
        prometheus_parse::Scrape::parse(prom.lines().map(|l| Ok(l.to_string()))).expect("parse");
    scrape
        .samples
        .into_iter()
        .filter(|s| s.metric == "signalfoundry_stage_count")
        .map(|s| {
            let v = match s.value {
                prometheus_parse::Value::Gauge(v) => v,
                other => panic!("not a gauge: {other:?}"),
            };
            let label = |k: &str| s.labels.get(k).expect("label").to_string();
            ((label("stage"), label("counter")), v)
        })
        .collect()
}

#[test]
fn every_figure_a_stage_line_prints_is_a_heartbeat_counter_and_a_metric_of_the_same_value() {
    // The simulator, so that poll runs (and has figures) too.
    let sim = Simulator::start(SimConfig {
        alerts: 120,
        seed: 12,
        end_time: Some(chrono::Utc::now() - chrono::Duration::minutes(2)),
        username: USER.into(),
        password: PASSWORD.into(),
        ..SimConfig::default()
    })
    .expect("start the simulator");
    let env = Env::new("");
    let ca = env.dir.path().join("root-ca.pem");
    std::fs::write(&ca, sim.ca_pem()).expect("write ca");
    let pw = env.dir.path().join("indexer.password");
    std::fs::write(&pw, format!("{PASSWORD}\n")).expect("write password");
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let policy = env.dir.path().join("policy.toml");
    std::fs::write(&policy, sf_policy::DEFAULT_POLICY_TOML).expect("policy");
    std::fs::write(
        &env.config,
        format!(
            "[indexer]\nurl = \"https://localhost:{}\"\nusername = \"{USER}\"\npassword_file = {:?}\nca_file = {:?}\nstart_at = \"3h\"\npage_size = 50\ntimeout = \"5s\"\n[policy]\nfile = {:?}\n[queue]\ncap = 20\n[durability]\nfsync = \"off\"\n",
            sim.addr().port(),
            pw.display().to_string(),
            ca.display().to_string(),
            policy.display().to_string(),
        ),
    )
    .expect("config");

    // Ingested alerts of every level, one bad line (quarantined), and files waiting in
    // incoming/ for admission (one new alert, one copy of an ingested one).
    let mut lines: Vec<String> = (0..60)
        .map(|i| alert_line(i, [3, 8, 12][i % 3], i as u64))
        .collect();
    lines.push("{\"not\": \"closed\"".into());
    env.ingest_lines(&lines);
    std::fs::write(
        env.path("incoming").join("new.json"),
        alert_line(1000, 12, 1000),
    )
    .expect("incoming");
    std::fs::write(env.path("incoming").join("copy.json"), &lines[0]).expect("incoming");

    let out = env.ok(&["run"]);
    sim.shutdown();
    let hb: Value =
        serde_json::from_slice(&std::fs::read(env.path("heartbeat.json")).expect("heartbeat"))
            .expect("heartbeat.json");
    let prom = std::fs::read_to_string(env.path("metrics.prom")).expect("metrics.prom");
    let metrics = stage_counts(&prom);
    let ctx = format!("stdout:\n{out}\nheartbeat.json:\n{hb:#}\nmetrics.prom:\n{prom}");

    for stage in ["poll", "cap", "triage", "reconcile"] {
        let line = summary(&out, &format!("{stage}:"));
        assert_eq!(line["status"], "OK", "{stage}: {ctx}");
        let hb_stage = hb["stages"]
            .as_array()
            .expect("stages")
            .iter()
            .find(|s| s["name"] == stage)
            .unwrap_or_else(|| panic!("no stage {stage} in heartbeat.json: {ctx}"));
        let counters = hb_stage["counters"].as_object().expect("counters");
        let keys: Vec<&String> = line.keys().filter(|k| *k != "status").collect();
        assert!(keys.len() >= 5, "{stage}: a line of figures: {ctx}");
        for k in keys {
            let printed: u64 = line[k]
                .parse()
                .unwrap_or_else(|_| panic!("{stage} {k}={} is not a count: {ctx}", line[k]));
            let beat = counters.get(k).and_then(Value::as_u64).unwrap_or_else(|| {
                panic!("{stage}: {k}={printed} is on stdout, not in heartbeat.json: {ctx}")
            });
            assert_eq!(
                beat, printed,
                "{stage} {k}: heartbeat.json vs stdout: {ctx}"
            );
            let sample = metrics
                .get(&(stage.to_string(), k.clone()))
                .unwrap_or_else(|| {
                    panic!("{stage}: {k}={printed} is on stdout, not in metrics.prom: {ctx}")
                });
            assert_eq!(
                *sample, printed as f64,
                "{stage} {k}: metrics.prom vs stdout: {ctx}"
            );
        }
    }
    // The run did something in every stage (so the figures above are not all zeros).
    let n = |stage: &str, k: &str| -> u64 {
        summary(&out, &format!("{stage}:"))[k]
            .parse()
            .expect("a count")
    };
    assert!(n("poll", "queued") > 0, "{ctx}");
    assert!(n("cap", "deferred") > 0, "{ctx}");
    assert!(n("cap", "admitted") > 0, "{ctx}");
    assert!(n("cap", "duplicates") > 0, "{ctx}");
    assert!(n("triage", "triaged") > 0, "{ctx}");
    assert!(n("triage", "escalated") > 0, "{ctx}");
    assert!(n("reconcile", "rows") > 0, "{ctx}");
    assert_eq!(out.lines().last(), Some("VERDICT=PASS"), "{ctx}");
}
