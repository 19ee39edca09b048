//! Injected faults on the HTTP routes, and PagerDuty's per-key rate limit.

mod common;

use std::time::{Duration, Instant};

use common::{client, start, start_with};
use receiver_sim::{Faults, Kind, ReceiverConfig, ThrottleCause};
use serde_json::{json, Value};

fn slack(c: &reqwest::blocking::Client, base: &str, i: usize) -> reqwest::Result<u16> {
    c.post(format!("{base}/slack/faults"))
        .json(&json!({"text": format!("m{i}")}))
        .send()
        .map(|r| r.status().as_u16())
}

fn no_limits(faults: Faults, seed: u64) -> ReceiverConfig {
    ReceiverConfig {
        seed,
        faults,
        vendor_rate_limits: false,
        ..Default::default()
    }
}

#[test]
fn a_lost_answer_is_recorded_and_the_retry_is_a_duplicate() {
    let h = start_with(no_limits(
        Faults {
            p_lost: 1.0,
            ..Default::default()
        },
        1,
    ));
    let c = client(&h);
    let key = ReceiverConfig::default().thehive_api_key;
    let url = format!("{}/api/v1/alert", h.https_url());
    let alert = json!({"type": "wazuh", "source": "sf", "sourceRef": "inc-9", "title": "t", "description": "d"});
    let e = c.post(&url).bearer_auth(&key).json(&alert).send();
    assert!(e.is_err(), "the connection closes without an answer");
    assert_eq!(h.thehive_alerts().len(), 1, "processed before the loss");
    h.set_faults(Faults::none()).unwrap();
    let r = c.post(&url).bearer_auth(&key).json(&alert).send().unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().unwrap()["type"], "CreateError");
    let d = h.deliveries();
    assert_eq!(d.len(), 2);
    assert!(!d[0].duplicate && d[1].duplicate);
    assert_eq!(h.faults_injected().lost, 1);
    assert!(h.rejected().is_empty());
}

#[test]
fn injected_429_and_500_are_not_processed() {
    let h = start_with(no_limits(
        Faults {
            p429: 1.0,
            retry_after_secs: 3,
            ..Default::default()
        },
        2,
    ));
    let c = client(&h);
    let r = c
        .post(format!("{}/slack/x", h.https_url()))
        .json(&json!({"text": "a"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "3");
    h.set_faults(Faults {
        p500: 1.0,
        ..Default::default()
    })
    .unwrap();
    let r = c
        .post(format!("{}/slack/x", h.https_url()))
        .json(&json!({"text": "a"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 500);
    assert_eq!(r.text().unwrap(), "rollup_error");
    assert!(h.deliveries().is_empty());
    let f = h.faults_injected();
    assert_eq!((f.too_many, f.internal), (1, 1));
    assert_eq!(h.throttled()[0].cause, ThrottleCause::Fault);
    assert!(h
        .set_faults(Faults {
            p429: 0.7,
            p_lost: 0.7,
            ..Default::default()
        })
        .is_err());
}

#[test]
fn a_slow_answer_arrives_late_and_normal() {
    let h = start_with(no_limits(
        Faults {
            p_slow: 1.0,
            slow: Duration::from_millis(300),
            ..Default::default()
        },
        3,
    ));
    let c = client(&h);
    let t = Instant::now();
    assert_eq!(slack(&c, &h.https_url(), 0).unwrap(), 200);
    assert!(t.elapsed() >= Duration::from_millis(300));
    assert_eq!(h.deliveries_of(Kind::Slack).len(), 1);
}

#[test]
fn the_fault_sequence_is_a_function_of_the_seed() {
    let run = |seed| {
        let h = start_with(no_limits(
            Faults {
                p429: 0.3,
                p500: 0.3,
                ..Default::default()
            },
            seed,
        ));
        let c = client(&h);
        (0..30)
            .map(|i| slack(&c, &h.https_url(), i).unwrap())
            .collect::<Vec<_>>()
    };
    let a = run(42);
    assert_eq!(a, run(42));
    assert!(
        a.contains(&200) && a.contains(&429) && a.contains(&500),
        "{a:?}"
    );
    assert_ne!(a, run(43));
}

#[test]
fn pagerduty_throttles_over_120_events_a_minute_per_key() {
    let h = start();
    let c = client(&h);
    let url = format!("{}/v2/enqueue", h.https_url());
    let ev = json!({"routing_key": ReceiverConfig::default().pagerduty_routing_key,
        "event_action": "trigger", "dedup_key": "k",
        "payload": {"summary": "s", "source": "h", "severity": "info"}});
    for _ in 0..120 {
        assert_eq!(c.post(&url).json(&ev).send().unwrap().status(), 202);
    }
    let r = c.post(&url).json(&ev).send().unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(h.deliveries().len(), 120);
    assert_eq!(h.throttled().len(), 1);
}

#[test]
fn a_sender_that_times_out_on_a_slow_answer_was_still_delivered() {
    let h = start_with(no_limits(
        Faults {
            p_slow: 1.0,
            slow: Duration::from_millis(600),
            ..Default::default()
        },
        4,
    ));
    let impatient = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(h.ca_pem().as_bytes()).unwrap())
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    assert!(slack(&impatient, &h.https_url(), 0).is_err());
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(h.deliveries_of(Kind::Slack).len(), 1);
}
