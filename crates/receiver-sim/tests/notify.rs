//! Standard Webhooks, Slack and Teams receivers over real HTTPS.

mod common;

use common::{client, now_secs, sign, start, start_with};
use receiver_sim::{Kind, ReceiverConfig, ThrottleCause};
use serde_json::{json, Value};

fn post_webhook(
    c: &reqwest::blocking::Client,
    url: &str,
    id: &str,
    ts: i64,
    body: &str,
    sig: &str,
) -> reqwest::blocking::Response {
    c.post(url)
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", sig)
        .body(body.to_string())
        .send()
        .unwrap()
}

#[test]
fn a_signed_webhook_is_delivered_and_a_repeat_is_flagged_duplicate() {
    let h = start();
    let c = client(&h);
    let url = format!("{}/webhook/soc", h.https_url());
    let secret = ReceiverConfig::default().webhook_secret;
    let body =
        json!({"type": "incident.opened", "id": "n-1", "incident": {"id": "inc-1"}}).to_string();
    let ts = now_secs();
    // A rotated list: an old signature first, the current one second.
    let sig = format!("v1,b2xk {}", sign(&secret, "msg_1", ts, &body));
    let r = post_webhook(&c, &url, "msg_1", ts, &body, &sig);
    assert_eq!(r.status(), 204);
    // The retry of the same message (a new attempt timestamp, re-signed).
    let ts2 = ts + 1;
    let r = post_webhook(
        &c,
        &url,
        "msg_1",
        ts2,
        &body,
        &sign(&secret, "msg_1", ts2, &body),
    );
    assert_eq!(r.status(), 204);
    let d = h.deliveries();
    assert_eq!(d.len(), 2);
    assert_eq!(d[0].kind, Kind::Webhook);
    assert_eq!(d[0].path, "/webhook/soc");
    assert_eq!(d[0].id.as_deref(), Some("msg_1"));
    assert_eq!(d[0].body["incident"]["id"], "inc-1");
    assert!(!d[0].duplicate);
    assert!(d[1].duplicate);
    assert!(d[0]
        .headers
        .iter()
        .any(|(k, v)| k == "webhook-id" && v == "msg_1"));
    assert!(h.rejected().is_empty(), "{:?}", h.rejected());
}

#[test]
fn a_wrong_secret_a_stale_timestamp_or_a_bad_body_is_refused() {
    let h = start();
    let c = client(&h);
    let url = format!("{}/webhook/soc", h.https_url());
    let secret = ReceiverConfig::default().webhook_secret;
    let body = json!({"type": "incident.opened", "id": "n-1", "incident": {}}).to_string();
    let ts = now_secs();
    let other = "whsec_QUJDREVGR0hJSktMTU5PUFFSU1RVVldY";
    let r = post_webhook(&c, &url, "m", ts, &body, &sign(other, "m", ts, &body));
    assert_eq!(r.status(), 401);
    // Signed over a different body (the receiver signs the raw bytes, not re-serialized JSON).
    let spaced = body.replace(':', ": ");
    let r = post_webhook(&c, &url, "m", ts, &spaced, &sign(&secret, "m", ts, &body));
    assert_eq!(r.status(), 401);
    let old = ts - 301;
    let r = post_webhook(&c, &url, "m", old, &body, &sign(&secret, "m", old, &body));
    assert_eq!(r.status(), 401);
    let bad = json!({"type": "x", "id": "n"}).to_string();
    let r = post_webhook(&c, &url, "m", ts, &bad, &sign(&secret, "m", ts, &bad));
    assert_eq!(r.status(), 400);
    let r = c.post(&url).body(body.clone()).send().unwrap();
    assert_eq!(r.status(), 400);
    assert!(h.deliveries().is_empty());
    let rej = h.rejected();
    assert_eq!(
        rej.iter().map(|r| r.status).collect::<Vec<_>>(),
        [401, 401, 401, 400, 400]
    );
    assert!(rej.iter().all(|r| r.kind == Some(Kind::Webhook)));
    assert!(rej[2].reason.contains("5 minutes"), "{}", rej[2].reason);
}

#[test]
fn slack_accepts_block_kit_and_answers_ok() {
    let h = start();
    let c = client(&h);
    let url = format!("{}/slack/T0/B0/x", h.https_url());
    let msg = json!({"text": "Incident inc-1 opened", "blocks": [
        {"type": "header", "text": {"type": "plain_text", "text": "Incident inc-1"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "*level* 12"},
         "fields": [{"type": "mrkdwn", "text": "*agent*\nweb-01"}]}
    ]});
    let r = c.post(&url).json(&msg).send().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().unwrap(), "ok");
    let r = c.post(&url).json(&msg).send().unwrap();
    assert_eq!(r.status(), 200);
    let d = h.deliveries_of(Kind::Slack);
    assert_eq!(d.len(), 2, "no idempotency: both are deliveries");
    assert!(d.iter().all(|d| !d.duplicate && d.id.is_none()));
    assert_eq!(d[0].body, msg);
    assert!(h.rejected().is_empty());
}

#[test]
fn slack_refuses_invalid_payloads_with_invalid_payload() {
    let h = start();
    let c = client(&h);
    let url = format!("{}/slack/hook", h.https_url());
    let bad = [
        json!({"blocks": [{"type": "divider"}]}),
        json!({"text": "x", "blocks": [{"type": "header", "text": {"type": "plain_text", "text": "h".repeat(151)}}]}),
        json!({"text": "x", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "s".repeat(3001)}}]}),
    ];
    for b in &bad {
        let r = c.post(&url).json(b).send().unwrap();
        assert_eq!(r.status(), 400);
        assert_eq!(r.text().unwrap(), "invalid_payload");
    }
    let r = c.post(&url).body("not json").send().unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(h.rejected().len(), 4);
    assert!(h.deliveries().is_empty());
}

#[test]
fn slack_rate_limits_a_burst_with_retry_after() {
    let h = start();
    let c = client(&h);
    let url = format!("{}/slack/burst", h.https_url());
    let statuses: Vec<u16> = (0..8)
        .map(|i| {
            let r = c
                .post(&url)
                .json(&json!({"text": format!("m{i}")}))
                .send()
                .unwrap();
            if r.status() == 429 {
                assert_eq!(r.headers()["retry-after"], "1");
            }
            r.status().as_u16()
        })
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(&statuses[5..], [429, 429, 429]);
    let t = h.throttled();
    assert_eq!(t.len(), 3);
    assert!(t.iter().all(|t| t.cause == ThrottleCause::RateLimit));
    // Another webhook has its own bucket.
    let other = format!("{}/slack/other", h.https_url());
    let r = c.post(&other).json(&json!({"text": "x"})).send().unwrap();
    assert_eq!(r.status(), 200);
    // With the limits off, nothing is throttled.
    let h = start_with(ReceiverConfig {
        vendor_rate_limits: false,
        ..Default::default()
    });
    let c = client(&h);
    let url = format!("{}/slack/burst", h.https_url());
    for i in 0..8 {
        let r = c
            .post(&url)
            .json(&json!({"text": format!("m{i}")}))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
    }
}

fn card(text: &str) -> Value {
    json!({"type": "message", "attachments": [{
        "contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": null,
        "content": {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "type": "AdaptiveCard", "version": "1.4",
            "body": [{"type": "TextBlock", "text": text, "wrap": true}],
            "actions": [{"type": "Action.OpenUrl", "title": "Open case", "url": "https://soc.example/case/1"}]}}]})
}

#[test]
fn teams_accepts_an_adaptive_card_with_202() {
    let h = start();
    let c = client(&h);
    let url = format!("{}/teams/workflows/abc", h.https_url());
    let r = c.post(&url).json(&card("Incident inc-1")).send().unwrap();
    assert_eq!(r.status(), 202);
    let d = h.deliveries_of(Kind::Teams);
    assert_eq!(d.len(), 1);
    assert_eq!(
        d[0].body["attachments"][0]["content"]["body"][0]["text"],
        "Incident inc-1"
    );
    assert!(h.rejected().is_empty());
}

#[test]
fn teams_refuses_over_28_kb_and_records_a_card_the_flow_would_fail() {
    let h = start();
    let c = client(&h);
    let url = format!("{}/teams/workflows/abc", h.https_url());
    let big = card(&"x".repeat(28 * 1024));
    let r = c.post(&url).json(&big).send().unwrap();
    assert_eq!(r.status(), 413);
    // Just under the limit is fine.
    let base = serde_json::to_vec(&card("")).unwrap().len();
    let fits = card(&"y".repeat(receiver_sim::TEAMS_MAX_BYTES - base));
    assert_eq!(
        serde_json::to_vec(&fits).unwrap().len(),
        receiver_sim::TEAMS_MAX_BYTES
    );
    let r = c.post(&url).json(&fits).send().unwrap();
    assert_eq!(r.status(), 202);
    // A MessageCard (the retired connectors' format) is accepted and then fails in the flow.
    let legacy = json!({"@type": "MessageCard", "text": "x"});
    let r = c.post(&url).json(&legacy).send().unwrap();
    assert_eq!(r.status(), 202);
    let r = c.post(&url).body("{").send().unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(h.deliveries_of(Kind::Teams).len(), 1);
    let rej = h.rejected();
    assert_eq!(
        rej.iter().map(|r| r.status).collect::<Vec<_>>(),
        [413, 202, 400]
    );
    assert!(
        rej[1].reason.contains("flow would fail"),
        "{}",
        rej[1].reason
    );
}

#[test]
fn teams_throttles_more_than_4_requests_a_second() {
    let h = start();
    let c = client(&h);
    let url = format!("{}/teams/fast", h.https_url());
    let statuses: Vec<u16> = (0..6)
        .map(|_| {
            c.post(&url)
                .json(&card("x"))
                .send()
                .unwrap()
                .status()
                .as_u16()
        })
        .collect();
    assert_eq!(statuses, [202, 202, 202, 202, 429, 429]);
}

#[test]
fn unknown_paths_and_methods_are_rejected() {
    let h = start();
    let c = client(&h);
    let r = c.post(format!("{}/nowhere", h.https_url())).send().unwrap();
    assert_eq!(r.status(), 404);
    let r = c.get(format!("{}/slack/x", h.https_url())).send().unwrap();
    assert_eq!(r.status(), 405);
    let rej = h.rejected();
    assert_eq!(rej[0].kind, None);
    assert_eq!(rej[1].kind, Some(Kind::Slack));
}
