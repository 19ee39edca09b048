//! PagerDuty, TheHive and DFIR-IRIS receivers over real HTTPS.

mod common;

use common::{client, start};
use receiver_sim::{Kind, ReceiverConfig};
use serde_json::{json, Value};

fn pd_event(action: &str, key: &str) -> Value {
    json!({
        "routing_key": ReceiverConfig::default().pagerduty_routing_key,
        "event_action": action,
        "dedup_key": key,
        "payload": {"summary": "Incident inc-1: brute force on web-01", "source": "web-01", "severity": "critical",
            "custom_details": {"rule": 5712}},
        "links": [{"href": "https://soc.example/inc-1", "text": "Incident"}]
    })
}

#[test]
fn pagerduty_tracks_alerts_by_dedup_key() {
    let h = start();
    let c = client(&h);
    let url = format!("{}/v2/enqueue", h.https_url());
    let send = |v: &Value| {
        let r = c.post(&url).json(v).send().unwrap();
        (r.status().as_u16(), r.json::<Value>().unwrap())
    };
    let (s, b) = send(&pd_event("trigger", "inc-1"));
    assert_eq!(s, 202);
    assert_eq!(
        b,
        json!({"status": "success", "message": "Event processed", "dedup_key": "inc-1"})
    );
    assert_eq!(send(&pd_event("trigger", "inc-1")).0, 202);
    assert_eq!(send(&pd_event("acknowledge", "inc-1")).0, 202);
    assert_eq!(send(&pd_event("resolve", "inc-1")).0, 202);
    // Resolved: a repeat resolve is dropped, a new trigger opens a new alert.
    assert_eq!(send(&pd_event("resolve", "inc-1")).0, 202);
    assert_eq!(send(&pd_event("resolve", "never")).0, 202);
    assert_eq!(send(&pd_event("trigger", "inc-1")).0, 202);
    // A trigger without a dedup_key gets one.
    let mut no_key = pd_event("trigger", "");
    no_key.as_object_mut().unwrap().remove("dedup_key");
    let (s, b) = send(&no_key);
    assert_eq!(s, 202);
    let generated = b["dedup_key"].as_str().unwrap().to_string();
    assert!(!generated.is_empty());

    let alerts = h.pagerduty_alerts();
    let a = &alerts["inc-1"];
    assert!(a.open);
    assert!(!a.acknowledged);
    assert_eq!((a.alerts_opened, a.triggers, a.dropped), (2, 3, 1));
    assert_eq!(a.severity, "critical");
    assert!(!alerts["never"].open);
    assert_eq!(alerts["never"].dropped, 1);
    assert!(alerts[&generated].open);
    let dup: Vec<bool> = h
        .deliveries_of(Kind::PagerDuty)
        .iter()
        .map(|d| d.duplicate)
        .collect();
    assert_eq!(dup, [false, true, false, false, true, true, false, false]);
    assert!(h.rejected().is_empty(), "{:?}", h.rejected());
}

#[test]
fn pagerduty_refuses_invalid_events_with_its_error_body() {
    let h = start();
    let c = client(&h);
    let url = format!("{}/v2/enqueue", h.https_url());
    let mut wrong_key = pd_event("trigger", "k");
    wrong_key["routing_key"] = json!("x".repeat(32));
    let mut short_key = pd_event("trigger", "k");
    short_key["routing_key"] = json!("abc");
    let mut bad_sev = pd_event("trigger", "k");
    bad_sev["payload"]["severity"] = json!("high");
    let mut long_summary = pd_event("trigger", "k");
    long_summary["payload"]["summary"] = json!("s".repeat(1025));
    let mut no_source = pd_event("trigger", "k");
    no_source["payload"]
        .as_object_mut()
        .unwrap()
        .remove("source");
    let long_key = pd_event("trigger", &"k".repeat(256));
    let bad_action = pd_event("escalate", "k");
    let mut resolve_no_key = pd_event("resolve", "");
    resolve_no_key.as_object_mut().unwrap().remove("dedup_key");
    for v in [
        &wrong_key,
        &short_key,
        &bad_sev,
        &long_summary,
        &no_source,
        &long_key,
        &bad_action,
        &resolve_no_key,
    ] {
        let r = c.post(&url).json(v).send().unwrap();
        assert_eq!(r.status(), 400, "{v}");
        let b: Value = r.json().unwrap();
        assert_eq!(b["status"], "invalid event");
        assert_eq!(b["message"], "Event object is invalid");
        assert!(!b["errors"].as_array().unwrap().is_empty());
    }
    let mut huge = pd_event("trigger", "k");
    huge["payload"]["custom_details"] = json!({"blob": "z".repeat(512 * 1024)});
    assert_eq!(c.post(&url).json(&huge).send().unwrap().status(), 400);
    assert!(h.deliveries().is_empty());
    assert_eq!(h.rejected().len(), 9);
    assert!(h.pagerduty_alerts().is_empty());
}

fn thehive_alert(source_ref: &str) -> Value {
    json!({
        "type": "wazuh", "source": "signalfoundry", "sourceRef": source_ref,
        "title": "Brute force on web-01", "description": "12 failures in 60 s",
        "severity": 3, "tlp": 2, "pap": 2, "tags": ["wazuh", "rule:5712"],
        "date": 1_700_000_000_000_i64,
        "observables": [
            {"dataType": "ip", "data": "203.0.113.7", "ioc": true},
            {"dataType": "hostname", "data": "web-01"}
        ]
    })
}

#[test]
fn thehive_creates_once_and_answers_a_duplicate_sourceref_with_createerror() {
    let h = start();
    let c = client(&h);
    let key = ReceiverConfig::default().thehive_api_key;
    let url = format!("{}/api/v1/alert", h.https_url());
    let r = c
        .post(&url)
        .bearer_auth(&key)
        .json(&thehive_alert("inc-1"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let out: Value = r.json().unwrap();
    assert!(out["_id"].as_str().unwrap().starts_with('~'));
    assert_eq!(out["_type"], "Alert");
    assert_eq!(out["status"], "New");
    assert_eq!(out["stage"], "New");
    assert_eq!(out["observableCount"], 2);
    assert_eq!(out["sourceRef"], "inc-1");
    assert_eq!(out["severityLabel"], "HIGH");
    assert!(out["timeToDetect"].as_i64().unwrap() > 0);

    let r = c
        .post(&url)
        .bearer_auth(&key)
        .json(&thehive_alert("inc-1"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    let b: Value = r.json().unwrap();
    assert_eq!(b["type"], "CreateError");
    assert_eq!(
        b["message"],
        "Alert wazuh:signalfoundry:inc-1 already exist in organisation SignalFoundry"
    );
    assert_eq!(h.thehive_alerts().len(), 1);
    let d = h.deliveries_of(Kind::TheHive);
    assert_eq!(d.len(), 2);
    assert_eq!(d[1].id.as_deref(), Some("inc-1"));
    assert!(!d[0].duplicate && d[1].duplicate);

    // Look the alert up by sourceRef, in both filter forms.
    let q = format!("{}/api/v1/query", h.https_url());
    for filter in [
        json!({"_name": "filter", "_field": "sourceRef", "_value": "inc-1"}),
        json!({"_name": "filter", "_eq": {"_field": "sourceRef", "_value": "inc-1"}}),
    ] {
        let body = json!({"query": [{"_name": "listAlert"}, filter]});
        let r = c.post(&q).bearer_auth(&key).json(&body).send().unwrap();
        assert_eq!(r.status(), 200);
        let hits: Value = r.json().unwrap();
        assert_eq!(hits.as_array().unwrap().len(), 1);
        assert_eq!(hits[0]["_id"], out["_id"]);
    }
    let body = json!({"query": [{"_name": "listAlert"}, {"_name": "filter", "_field": "sourceRef", "_value": "nope"}]});
    let hits: Value = c
        .post(&q)
        .bearer_auth(&key)
        .json(&body)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(hits, json!([]));
    assert_eq!(
        h.deliveries_of(Kind::TheHive).len(),
        2,
        "a query is not a delivery"
    );
    assert!(h.rejected().is_empty(), "{:?}", h.rejected());
}

#[test]
fn thehive_refuses_bad_auth_bad_attributes_and_duplicate_observables() {
    let h = start();
    let c = client(&h);
    let key = ReceiverConfig::default().thehive_api_key;
    let url = format!("{}/api/v1/alert", h.https_url());
    let r = c
        .post(&url)
        .bearer_auth("wrong")
        .json(&thehive_alert("a"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<Value>().unwrap(),
        json!({"type": "AuthenticationError", "message": "Authentication failure"})
    );
    let r = c.post(&url).json(&thehive_alert("a")).send().unwrap();
    assert_eq!(r.status(), 401);

    let mut dup_obs = thehive_alert("b");
    dup_obs["observables"]
        .as_array_mut()
        .unwrap()
        .push(json!({"dataType": "ip", "data": "203.0.113.7"}));
    let r = c
        .post(&url)
        .bearer_auth(&key)
        .json(&dup_obs)
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().unwrap(),
        json!({"type": "CreateError", "message": "Observable already exists"})
    );
    assert!(h.thehive_alerts().is_empty(), "the whole create failed");

    let mut bads = Vec::new();
    for (k, v) in [
        ("severity", json!(5)),
        ("tlp", json!(5)),
        ("pap", json!(4)),
        ("tags", json!("a,b")),
        ("title", json!("")),
    ] {
        let mut a = thehive_alert("c");
        a[k] = v;
        bads.push(a);
    }
    let mut no_desc = thehive_alert("c");
    no_desc.as_object_mut().unwrap().remove("description");
    bads.push(no_desc);
    let mut bad_type = thehive_alert("c");
    bad_type["observables"][0]["dataType"] = json!("ipv4");
    bads.push(bad_type);
    for a in &bads {
        let r = c.post(&url).bearer_auth(&key).json(a).send().unwrap();
        assert_eq!(r.status(), 400, "{a}");
        assert_eq!(r.json::<Value>().unwrap()["type"], "AttributeCheckingError");
    }
    assert!(h.thehive_alerts().is_empty());
    assert!(h.deliveries().is_empty());
    assert_eq!(h.rejected().len(), 3 + bads.len());
}

fn iris_alert(source_ref: &str) -> Value {
    json!({
        "alert_title": "Brute force on web-01", "alert_description": "12 failures in 60 s",
        "alert_source": "SignalFoundry", "alert_source_ref": source_ref,
        "alert_source_link": "https://soc.example/inc-1",
        "alert_source_content": {"rule": {"id": "5712", "level": 10}},
        "alert_severity_id": 5, "alert_status_id": 2, "alert_customer_id": 1,
        "alert_context": {"incident": "inc-1"}, "alert_tags": "wazuh,rule:5712",
        "alert_source_event_time": "2025-09-12T10:00:00",
        "alert_iocs": [{"ioc_value": "203.0.113.7", "ioc_type_id": 79, "ioc_tlp_id": 2,
            "ioc_description": "source ip", "ioc_tags": "attacker"}],
        "alert_assets": [{"asset_name": "web-01", "asset_type_id": 9, "asset_ip": "10.0.0.5",
            "asset_description": "web server"}]
    })
}

#[test]
fn iris_creates_every_time_and_filters_by_source_reference() {
    let h = start();
    let c = client(&h);
    let key = ReceiverConfig::default().iris_api_key;
    let url = format!("{}/alerts/add", h.https_url());
    let r = c
        .post(&url)
        .bearer_auth(&key)
        .json(&iris_alert("inc-1"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let b: Value = r.json().unwrap();
    assert_eq!(b["status"], "success");
    assert_eq!(b["message"], "");
    assert_eq!(b["data"]["alert_id"], 1);
    assert_eq!(b["data"]["alert_source_ref"], "inc-1");
    assert_eq!(b["data"]["alert_source_event_time"], "2025-09-12T10:00:00");
    // No dedup in IRIS: a second create makes a second alert, flagged for the test.
    let r = c
        .post(&url)
        .bearer_auth(&key)
        .json(&iris_alert("inc-1"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().unwrap()["data"]["alert_id"], 2);
    assert_eq!(h.iris_alerts().len(), 2);
    let d = h.deliveries_of(Kind::Iris);
    assert_eq!(
        d.iter().map(|d| d.duplicate).collect::<Vec<_>>(),
        [false, true]
    );
    assert_eq!(d[0].id.as_deref(), Some("inc-1"));

    let f = format!(
        "{}/alerts/filter?source_reference=inc-1&alert_customer_id=1",
        h.https_url()
    );
    let b: Value = c.get(&f).bearer_auth(&key).send().unwrap().json().unwrap();
    assert_eq!(b["status"], "success");
    assert_eq!(b["data"]["total"], 2);
    assert_eq!(b["data"]["alerts"].as_array().unwrap().len(), 2);
    assert_eq!(b["data"]["current_page"], 1);
    assert_eq!(b["data"]["last_page"], 1);
    assert_eq!(b["data"]["next_page"], Value::Null);
    let none = format!(
        "{}/alerts/filter?source_reference=other&alert_customer_id=1",
        h.https_url()
    );
    let b: Value = c
        .get(&none)
        .bearer_auth(&key)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(b["data"]["total"], 0);
    assert!(h.rejected().is_empty(), "{:?}", h.rejected());
}

#[test]
fn iris_refuses_bad_auth_missing_fields_and_other_customers() {
    let h = start();
    let c = client(&h);
    let key = ReceiverConfig::default().iris_api_key;
    let url = format!("{}/alerts/add", h.https_url());
    let r = c
        .post(&url)
        .bearer_auth("nope")
        .json(&iris_alert("a"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    let f = format!("{}/alerts/filter?source_reference=a", h.https_url());
    assert_eq!(c.get(&f).send().unwrap().status(), 401);

    let mut other = iris_alert("a");
    other["alert_customer_id"] = json!(2);
    let r = c.post(&url).bearer_auth(&key).json(&other).send().unwrap();
    assert_eq!(r.status(), 400);
    let b: Value = r.json().unwrap();
    assert_eq!(b["status"], "error");
    assert_eq!(
        b["message"],
        "User not entitled to create alerts for the client"
    );

    let mut missing = iris_alert("a");
    missing.as_object_mut().unwrap().remove("alert_title");
    missing["alert_severity_id"] = json!(7);
    missing["alert_tags"] = json!(["wazuh"]);
    let r = c
        .post(&url)
        .bearer_auth(&key)
        .json(&missing)
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    let b: Value = r.json().unwrap();
    assert_eq!(b["status"], "error");
    for k in ["alert_title", "alert_severity_id", "alert_tags"] {
        assert!(b["data"][k].is_array(), "{k}: {b}");
    }
    let mut bad_ioc = iris_alert("a");
    bad_ioc["alert_iocs"][0]["ioc_type_id"] = json!("ip");
    assert_eq!(
        c.post(&url)
            .bearer_auth(&key)
            .json(&bad_ioc)
            .send()
            .unwrap()
            .status(),
        400
    );
    assert!(h.iris_alerts().is_empty());
    assert!(h.deliveries().is_empty());
    assert_eq!(h.rejected().len(), 5);
}
