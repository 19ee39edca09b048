//! PagerDuty Events API v2: `POST /v2/enqueue`. Contract from wave2-peers.md §2.5
//! (PagerDuty/developer-docs: docs/events-API-v2/01-Overview.md, 02-Trigger-Events.md,
//! 05-Rate-Limits.md).
//!
//! Design constraints:
//! - Validation: `routing_key` is the configured 32-character integration key;
//!   `event_action` is `trigger`, `acknowledge` or `resolve`; `dedup_key` ≤ 255 chars, and
//!   required for acknowledge and resolve; a trigger needs `payload.summary` (≤ 1024),
//!   `payload.source` and `payload.severity` ∈ critical|error|warning|info; the body is at
//!   most 512 KB. Refusals are 400 `{"status":"invalid event","message":"Event object is
//!   invalid","errors":[…]}`; success is 202 `{"status":"success","message":"Event
//!   processed","dedup_key":…}`.
//! - Rate: about 120 calls a minute per integration key over a 60 s look-back, else 429
//!   ("429 - Request Limit Exceeded"; the event is not ingested).
//! - Alert semantics: a trigger to an open `dedup_key` adds to that alert; after a resolve,
//!   a trigger opens a new alert and acknowledge or resolve events are dropped (still 202);
//!   a trigger without `dedup_key` gets a generated one. A delivery is `duplicate` when the
//!   event changed no alert's open/closed state: a trigger to an open alert, an acknowledge
//!   or resolve that was dropped.

use std::time::Duration;

use serde_json::{json, Value};

use crate::record::Kind;
use crate::server::Shared;
use crate::wire::{secret_eq, Out, Req};

const MAX_BODY: usize = 512 * 1024;
const SEVERITIES: [&str; 4] = ["critical", "error", "warning", "info"];

/// The answer to a key over its rate.
pub fn throttled() -> Out {
    Out::json(
        429,
        &json!({"status": "throttle event", "message": "Requests for this service are arriving too quickly. Please retry later."}),
    )
}

fn invalid(sh: &Shared, req: &Req, errors: Vec<String>) -> Out {
    sh.records()
        .reject(Kind::PagerDuty, &req.path, 400, errors.join("; "));
    Out::json(
        400,
        &json!({"status": "invalid event", "message": "Event object is invalid", "errors": errors}),
    )
}

fn str_field<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str)
}

/// `POST /v2/enqueue`.
pub fn enqueue(sh: &Shared, req: &Req) -> Out {
    if req.body.len() > MAX_BODY {
        let e = format!("Event is {} bytes, over the 512 KB limit", req.body.len());
        return invalid(sh, req, vec![e]);
    }
    let v: Value = match serde_json::from_slice(&req.body) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => return invalid(sh, req, vec!["Event is not a JSON object".into()]),
        Err(e) => return invalid(sh, req, vec![format!("Could not parse JSON: {e}")]),
    };
    let key = str_field(&v, "routing_key").unwrap_or("");
    if key.chars().count() != 32 {
        return invalid(
            sh,
            req,
            vec!["Length of 'routing_key' is incorrect (should be 32 characters)".into()],
        );
    }
    if !secret_eq(key, &sh.cfg.pagerduty_routing_key) {
        return invalid(sh, req, vec!["Invalid routing key".into()]);
    }
    if sh.cfg.vendor_rate_limits {
        let mut l = sh.limits();
        let w = l.pagerduty.entry(key.to_string()).or_default();
        if !w.admit(120, Duration::from_secs(60)) {
            return throttled();
        }
    }
    let mut errors = Vec::new();
    let action = str_field(&v, "event_action").unwrap_or("");
    if !["trigger", "acknowledge", "resolve"].contains(&action) {
        errors.push(format!(
            "'event_action' must be trigger, acknowledge or resolve, got {action:?}"
        ));
    }
    let dedup = match v.get("dedup_key") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.chars().count() <= 255 && !s.is_empty() => Some(s.clone()),
        Some(_) => {
            errors.push("'dedup_key' must be a string of 1 to 255 characters".into());
            None
        }
    };
    if action != "trigger" && dedup.is_none() && !action.is_empty() {
        errors.push(format!("'dedup_key' is required for {action} events"));
    }
    if action == "trigger" {
        trigger_payload(&v, &mut errors);
    }
    if !errors.is_empty() {
        return invalid(sh, req, errors);
    }

    let mut r = sh.records();
    let key = dedup.unwrap_or_else(|| format!("{:032x}", r.deliveries.len() as u128 + 1));
    let st = r.pd.entry(key.clone()).or_default();
    let duplicate = match action {
        "trigger" => {
            st.triggers += 1;
            st.summary = str_field(&v["payload"], "summary").unwrap_or("").into();
            st.severity = str_field(&v["payload"], "severity").unwrap_or("").into();
            if st.open {
                true
            } else {
                st.open = true;
                st.acknowledged = false;
                st.alerts_opened += 1;
                false
            }
        }
        _ if !st.open => {
            st.dropped += 1;
            true
        }
        "acknowledge" => {
            st.acknowledged = true;
            false
        }
        _ => {
            st.open = false;
            false
        }
    };
    r.deliver(
        Kind::PagerDuty,
        &req.path,
        Some(key.clone()),
        req.headers.clone(),
        v,
        duplicate,
    );
    Out::json(
        202,
        &json!({"status": "success", "message": "Event processed", "dedup_key": key}),
    )
}

fn trigger_payload(v: &Value, errors: &mut Vec<String>) {
    let Some(p) = v.get("payload").filter(|p| p.is_object()) else {
        errors.push("'payload' is missing or not an object".into());
        return;
    };
    match str_field(p, "summary") {
        Some(s) if !s.is_empty() && s.chars().count() <= 1024 => {}
        _ => errors.push("'payload.summary' must be a string of 1 to 1024 characters".into()),
    }
    match str_field(p, "source") {
        Some(s) if !s.is_empty() => {}
        _ => errors.push("'payload.source' is missing or blank".into()),
    }
    let sev = str_field(p, "severity").unwrap_or("");
    if !SEVERITIES.contains(&sev) {
        errors.push(format!(
            "'payload.severity' must be critical, error, warning or info, got {sev:?}"
        ));
    }
    for k in ["timestamp", "component", "group", "class"] {
        if p.get(k).is_some_and(|x| !x.is_string()) {
            errors.push(format!("'payload.{k}' must be a string"));
        }
    }
    for k in ["images", "links"] {
        if v.get(k).is_some_and(|x| !x.is_array()) {
            errors.push(format!("'{k}' must be an array"));
        }
    }
}
