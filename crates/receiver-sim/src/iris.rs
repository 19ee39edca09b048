//! DFIR-IRIS alerts: `POST /alerts/add` and `GET /alerts/filter`. Contract from
//! wave2-peers.md §3.2 (iris-web 2.5 `blueprints/rest/alerts_routes.py`, `models/alerts.py`,
//! `responses.py`, `post_init.py`).
//!
//! Design constraints:
//! - Auth: `Authorization: Bearer <api key>`, else 401.
//! - Envelope: success is 200 `{"status":"success","message":"","data":…}`; an error is
//!   `{"status":"error","message":…,"data":…}`; a schema error is 400 "Data error" with
//!   `data` mapping each field to its messages (marshmallow's shape).
//! - Not null: `alert_title` (string), `alert_severity_id` (1–6: Unspecified, Informational,
//!   Low, Medium, High, Critical), `alert_status_id` (1–8: Unspecified, New, Assigned, In
//!   progress, Pending, Closed, Merged, Escalated), `alert_customer_id` (the only customer
//!   is 1, "IrisInitialClient"; any other is 400 "User not entitled to create alerts for the
//!   client"). Optional: the description, source, source ref, link, event time and note
//!   strings, `alert_source_content` and `alert_context` objects, `alert_tags` a
//!   comma-separated string, `alert_iocs[]` (`ioc_value`, `ioc_type_id`, `ioc_tlp_id`,
//!   `ioc_description`, `ioc_tags`), `alert_assets[]` (`asset_name`, `asset_type_id`,
//!   `asset_ip`, `asset_description`).
//! - No deduplication: `alert_source_ref` is plain text, so a second create with the same
//!   ref makes a second alert; the delivery is recorded `duplicate` so a test can assert
//!   the sender's check-first (`/alerts/filter`) worked.
//! - Filter: `source_reference` and `alert_customer_id` (and `page`, `per_page`) → 200
//!   `{"status":"success","message":"","data":{"total","alerts","last_page","current_page",
//!   "next_page"}}`. A read: never a delivery.

use std::time::SystemTime;

use serde_json::{json, Map, Value};

use crate::record::Kind;
use crate::server::Shared;
use crate::wire::{secret_eq, type_name, Out, Req};

const SEVERITIES: [&str; 6] = [
    "Unspecified",
    "Informational",
    "Low",
    "Medium",
    "High",
    "Critical",
];
const STATUSES: [&str; 8] = [
    "Unspecified",
    "New",
    "Assigned",
    "In progress",
    "Pending",
    "Closed",
    "Merged",
    "Escalated",
];

fn error(sh: &Shared, req: &Req, status: u16, message: &str, data: Value, reason: String) -> Out {
    sh.records().reject(Kind::Iris, &req.path, status, reason);
    Out::json(
        status,
        &json!({"status": "error", "message": message, "data": data}),
    )
}

fn authenticate(sh: &Shared, req: &Req) -> Result<(), Out> {
    match req.bearer() {
        Some(k) if secret_eq(k, &sh.cfg.iris_api_key) => Ok(()),
        _ => Err(error(
            sh,
            req,
            401,
            "Authentication required",
            json!([]),
            "missing or wrong Bearer API key".into(),
        )),
    }
}

/// Field errors, marshmallow style: field → messages.
fn check(o: &Map<String, Value>) -> Map<String, Value> {
    let mut errs = Map::new();
    let mut add = |k: &str, m: String| {
        errs.insert(k.to_string(), json!([m]));
    };
    match o.get("alert_title") {
        Some(Value::String(s)) if !s.is_empty() => {}
        None | Some(Value::Null) => add("alert_title", "Missing data for required field.".into()),
        Some(v) => add(
            "alert_title",
            format!("Not a valid string: {}.", type_name(v)),
        ),
    }
    for (k, hi) in [("alert_severity_id", 6), ("alert_status_id", 8)] {
        match o.get(k) {
            None | Some(Value::Null) => add(k, "Missing data for required field.".into()),
            Some(v) => match v.as_i64() {
                Some(n) if (1..=hi).contains(&n) => {}
                Some(n) => add(k, format!("Invalid {k} {n}: 1 to {hi}.")),
                None => add(k, "Not a valid integer.".into()),
            },
        }
    }
    match o.get("alert_customer_id") {
        None | Some(Value::Null) => add(
            "alert_customer_id",
            "Missing data for required field.".into(),
        ),
        Some(v) if v.as_i64().is_none() => add("alert_customer_id", "Not a valid integer.".into()),
        Some(_) => {}
    }
    for k in [
        "alert_description",
        "alert_source",
        "alert_source_ref",
        "alert_source_link",
        "alert_source_event_time",
        "alert_note",
        "alert_tags",
    ] {
        if let Some(v) = o.get(k).filter(|v| !v.is_null() && !v.is_string()) {
            add(k, format!("Not a valid string: {}.", type_name(v)));
        }
    }
    for k in ["alert_source_content", "alert_context"] {
        if let Some(v) = o.get(k).filter(|v| !v.is_null() && !v.is_object()) {
            add(k, format!("Not a valid object: {}.", type_name(v)));
        }
    }
    let items = |k: &str, required: &[(&str, bool)], add: &mut dyn FnMut(&str, String)| {
        let Some(v) = o.get(k).filter(|v| !v.is_null()) else {
            return;
        };
        let Some(a) = v.as_array() else {
            add(k, "Not a valid list.".into());
            return;
        };
        for (i, x) in a.iter().enumerate() {
            let Some(x) = x.as_object() else {
                add(k, format!("Item {i} is not an object."));
                return;
            };
            for (f, is_int) in required {
                let ok = match x.get(*f) {
                    Some(Value::String(s)) if !is_int => !s.is_empty(),
                    Some(v) if *is_int => v.as_i64().is_some(),
                    _ => false,
                };
                if !ok {
                    add(
                        k,
                        format!(
                            "Item {i}: {f} is missing or not a valid {}.",
                            if *is_int { "integer" } else { "string" }
                        ),
                    );
                    return;
                }
            }
        }
    };
    items(
        "alert_iocs",
        &[
            ("ioc_value", false),
            ("ioc_type_id", true),
            ("ioc_tlp_id", true),
        ],
        &mut add,
    );
    items(
        "alert_assets",
        &[("asset_name", false), ("asset_type_id", true)],
        &mut add,
    );
    errs
}

fn now_iso() -> String {
    let d = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_micros()
    )
}

/// `POST /alerts/add`.
pub fn add(sh: &Shared, req: &Req) -> Out {
    if let Err(out) = authenticate(sh, req) {
        return out;
    }
    let o = match serde_json::from_slice::<Value>(&req.body) {
        Ok(Value::Object(o)) => o,
        _ => {
            return error(
                sh,
                req,
                400,
                "Data error",
                json!({"_schema": ["Invalid input type."]}),
                "body is not a JSON object".into(),
            )
        }
    };
    let errs = check(&o);
    if !errs.is_empty() {
        let reason = Value::Object(errs.clone()).to_string();
        return error(sh, req, 400, "Data error", Value::Object(errs), reason);
    }
    if o["alert_customer_id"].as_i64() != Some(1) {
        return error(
            sh,
            req,
            400,
            "User not entitled to create alerts for the client",
            Value::Null,
            format!(
                "alert_customer_id {} is not customer 1",
                o["alert_customer_id"]
            ),
        );
    }
    let mut r = sh.records();
    let id = r.iris.len() as i64 + 1;
    let source_ref = o
        .get("alert_source_ref")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let duplicate = source_ref.as_deref().is_some_and(|sr| {
        r.iris
            .iter()
            .any(|a| a["alert_source_ref"].as_str() == Some(sr))
    });
    let now = now_iso();
    let mut data = o.clone();
    let sev = o["alert_severity_id"].as_i64().unwrap_or(1);
    let st = o["alert_status_id"].as_i64().unwrap_or(1);
    let defaults = [
        ("alert_id", json!(id)),
        (
            "alert_uuid",
            json!(format!("00000000-0000-4000-8000-{id:012x}")),
        ),
        ("alert_creation_time", json!(now)),
        ("alert_source_event_time", json!(now)),
        ("alert_owner_id", Value::Null),
        ("alert_classification_id", Value::Null),
        (
            "customer",
            json!({"customer_id": 1, "customer_name": "IrisInitialClient"}),
        ),
        (
            "severity",
            json!({"severity_id": sev, "severity_name": SEVERITIES[(sev - 1) as usize]}),
        ),
        (
            "status",
            json!({"status_id": st, "status_name": STATUSES[(st - 1) as usize]}),
        ),
        ("cases", json!([])),
        ("comments", json!([])),
        ("modification_history", json!({})),
    ];
    for (k, v) in defaults {
        if !(k == "alert_source_event_time" && data.get(k).is_some_and(Value::is_string)) {
            data.insert(k.to_string(), v);
        }
    }
    for k in ["alert_iocs", "alert_assets"] {
        data.entry(k).or_insert_with(|| json!([]));
    }
    let data = Value::Object(data);
    r.iris.push(data.clone());
    r.deliver(
        Kind::Iris,
        &req.path,
        source_ref,
        req.headers.clone(),
        Value::Object(o),
        duplicate,
    );
    Out::json(
        200,
        &json!({"status": "success", "message": "", "data": data}),
    )
}

/// `GET /alerts/filter`.
pub fn filter(sh: &Shared, req: &Req) -> Out {
    if let Err(out) = authenticate(sh, req) {
        return out;
    }
    let params = req.params();
    let get = |k: &str| params.iter().find(|(p, _)| p == k).map(|(_, v)| v.as_str());
    let customer = match get("alert_customer_id").map(str::parse::<i64>) {
        None => None,
        Some(Ok(n)) => Some(n),
        Some(Err(_)) => {
            return error(
                sh,
                req,
                400,
                "Data error",
                json!({"alert_customer_id": ["Not a valid integer."]}),
                "alert_customer_id is not an integer".into(),
            )
        }
    };
    let page = get("page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let per_page = get("per_page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(10)
        .max(1);
    let sref = get("source_reference");
    let r = sh.records();
    let all: Vec<&Value> = r
        .iris
        .iter()
        .filter(|a| sref.is_none_or(|s| a["alert_source_ref"].as_str() == Some(s)))
        .filter(|a| customer.is_none_or(|c| a["alert_customer_id"].as_i64() == Some(c)))
        .collect();
    let total = all.len();
    let last_page = total.div_ceil(per_page).max(1);
    let alerts: Vec<Value> = all
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .cloned()
        .collect();
    let next = if page < last_page {
        json!(page + 1)
    } else {
        Value::Null
    };
    Out::json(
        200,
        &json!({"status": "success", "message": "", "data": {
            "total": total, "alerts": alerts, "last_page": last_page,
            "current_page": page, "next_page": next,
        }}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_dates_are_civil() {
        let s = now_iso();
        assert_eq!(s.len(), 26, "{s}");
        assert!(s.starts_with("20"), "{s}");
    }

    #[test]
    fn required_fields_are_reported_per_field() {
        let o = json!({"alert_title": "t", "alert_severity_id": 9, "alert_tags": ["a"],
            "alert_iocs": [{"ioc_value": "1.2.3.4", "ioc_type_id": 76}]});
        let e = check(o.as_object().unwrap());
        let mut keys: Vec<&str> = e.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "alert_customer_id",
                "alert_iocs",
                "alert_severity_id",
                "alert_status_id",
                "alert_tags"
            ]
        );
    }
}
