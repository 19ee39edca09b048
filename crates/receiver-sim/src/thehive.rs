//! TheHive 5 alerts: `POST /api/v1/alert` and `POST /api/v1/query`. Contract from
//! wave2-peers.md §3.1 (TheHive-Project/TheHive4py thehive4py/types/alert.py and
//! observable.py; TheHive issues #1094, #1302, #1514, #1963; the SEKOIA-IO TheHiveV5
//! OutputAlert fixture).
//!
//! Design constraints:
//! - Auth: `Authorization: Bearer <api key>`, else 401
//!   `{"type":"AuthenticationError","message":"Authentication failure"}`.
//! - Input: `type`, `source`, `sourceRef`, `title`, `description` are required strings;
//!   `severity` 1–4 (low, medium, high, critical), `tlp` 0–4 (TLP 2.0: clear, green, amber,
//!   amber+strict, red), `pap` 0–3, `date` epoch ms, `tags` strings; `observables[]` each
//!   with a `dataType` among TheHive's default types and a `data` string. A bad attribute is
//!   400 `AttributeCheckingError`.
//! - Uniqueness: (type, source, sourceRef) is unique in the organisation. A repeat is 400
//!   (not 409) `{"type":"CreateError","message":"Alert t:s:r already exist in organisation
//!   O"}`; it is recorded as a delivery with `duplicate` (the sender's retry after a lost
//!   answer lands here and must treat it as success). A duplicate (dataType, data) inside one
//!   alert fails the whole create with 400 CreateError "Observable already exists" and stores
//!   nothing.
//! - Created: 201 with the OutputAlert (`_id` `~<number>`, `_type` `Alert`, `status` and
//!   `stage` `New`, `observableCount`, `newDate`, `timeToDetect`, …).
//! - Query: `{"query":[{"_name":"listAlert"},{"_name":"filter","_field":F,"_value":V}]}`, or
//!   the filter as `{"_name":"filter","_eq":{"_field":F,"_value":V}}`, or an `_and` of them;
//!   `sort` is accepted, `page` (`from`, `to`) applied. 200 with a JSON array of
//!   OutputAlerts. A query is a read: never a delivery.

use std::collections::HashSet;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use crate::record::{Kind, TheHiveAlert};
use crate::server::Shared;
use crate::wire::{secret_eq, Out, Req};

/// TheHive's default observable data types.
pub const DATA_TYPES: [&str; 14] = [
    "ip",
    "domain",
    "url",
    "hash",
    "filename",
    "fqdn",
    "hostname",
    "mail",
    "other",
    "registry",
    "user-agent",
    "uri_path",
    "autonomous-system",
    "mail-subject",
];

const SEVERITY: [&str; 4] = ["LOW", "MEDIUM", "HIGH", "CRITICAL"];
const TLP: [&str; 5] = ["CLEAR", "GREEN", "AMBER", "AMBER+STRICT", "RED"];
const PAP: [&str; 4] = ["CLEAR", "GREEN", "AMBER", "RED"];

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn error(sh: &Shared, req: &Req, status: u16, ty: &str, message: String) -> Out {
    sh.records()
        .reject(Kind::TheHive, &req.path, status, message.clone());
    Out::json(status, &json!({"type": ty, "message": message}))
}

fn authenticate(sh: &Shared, req: &Req) -> Result<(), Out> {
    match req.bearer() {
        Some(k) if secret_eq(k, &sh.cfg.thehive_api_key) => Ok(()),
        _ => {
            sh.records().reject(
                Kind::TheHive,
                &req.path,
                401,
                "missing or wrong Bearer API key",
            );
            Err(Out::json(
                401,
                &json!({"type": "AuthenticationError", "message": "Authentication failure"}),
            ))
        }
    }
}

fn body_object(sh: &Shared, req: &Req) -> Result<Map<String, Value>, Out> {
    match serde_json::from_slice::<Value>(&req.body) {
        Ok(Value::Object(o)) => Ok(o),
        Ok(_) => Err(error(
            sh,
            req,
            400,
            "BadRequest",
            "Invalid JSON: not an object".into(),
        )),
        Err(e) => Err(error(
            sh,
            req,
            400,
            "BadRequest",
            format!("Invalid JSON: {e}"),
        )),
    }
}

fn int_in(o: &Map<String, Value>, k: &str, lo: i64, hi: i64) -> Result<Option<i64>, String> {
    match o.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_i64() {
            Some(n) if (lo..=hi).contains(&n) => Ok(Some(n)),
            _ => Err(format!(
                "Invalid value for {k}: {v}, must be an integer {lo} to {hi}"
            )),
        },
    }
}

fn strings(o: &Map<String, Value>, k: &str) -> Result<(), String> {
    match o.get(k) {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => Ok(()),
        Some(_) => Err(format!(
            "Invalid value for {k}: must be an array of strings"
        )),
    }
}

/// Checks an InputAlert; returns its observables.
fn check(o: &Map<String, Value>) -> Result<Vec<Value>, String> {
    for k in ["type", "source", "sourceRef", "title", "description"] {
        match o.get(k) {
            Some(Value::String(s)) if !s.is_empty() => {}
            Some(Value::String(_)) | None | Some(Value::Null) => {
                return Err(format!("Attribute {k} is missing"))
            }
            Some(_) => return Err(format!("Invalid format for {k}: must be a string")),
        }
    }
    int_in(o, "severity", 1, 4)?;
    int_in(o, "tlp", 0, 4)?;
    int_in(o, "pap", 0, 3)?;
    if o.get("date").is_some_and(|d| d.as_i64().is_none()) {
        return Err("Invalid format for date: must be epoch milliseconds".into());
    }
    strings(o, "tags")?;
    for k in ["externalLink", "summary", "status", "caseTemplate"] {
        if o.get(k).is_some_and(|v| !v.is_string() && !v.is_null()) {
            return Err(format!("Invalid format for {k}: must be a string"));
        }
    }
    if o.get("flag").is_some_and(|v| !v.is_boolean()) {
        return Err("Invalid format for flag: must be a boolean".into());
    }
    let obs = match o.get("observables") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(a)) => a,
        Some(_) => return Err("Invalid format for observables: must be an array".into()),
    };
    for (i, x) in obs.iter().enumerate() {
        let ob = x
            .as_object()
            .ok_or(format!("observables[{i}] is not an object"))?;
        let dt = ob.get("dataType").and_then(Value::as_str).unwrap_or("");
        if dt.is_empty() {
            return Err(format!("Attribute observables[{i}].dataType is missing"));
        }
        if !DATA_TYPES.contains(&dt) {
            return Err(format!("ObservableType {dt} not found"));
        }
        match ob.get("data") {
            Some(Value::String(s)) if !s.is_empty() => {}
            _ => return Err(format!("Attribute observables[{i}].data is missing")),
        }
        int_in(ob, "tlp", 0, 4).map_err(|e| format!("observables[{i}]: {e}"))?;
        int_in(ob, "pap", 0, 3).map_err(|e| format!("observables[{i}]: {e}"))?;
        strings(ob, "tags").map_err(|e| format!("observables[{i}]: {e}"))?;
        for k in ["ioc", "sighted", "ignoreSimilarity"] {
            if ob.get(k).is_some_and(|v| !v.is_boolean()) {
                return Err(format!("Invalid format for observables[{i}].{k}"));
            }
        }
    }
    Ok(obs.clone())
}

/// `POST /api/v1/alert`.
pub fn create(sh: &Shared, req: &Req) -> Out {
    if let Err(out) = authenticate(sh, req) {
        return out;
    }
    let o = match body_object(sh, req) {
        Ok(o) => o,
        Err(out) => return out,
    };
    let observables = match check(&o) {
        Ok(obs) => obs,
        Err(m) => return error(sh, req, 400, "AttributeCheckingError", m),
    };
    let s = |k: &str| o.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let (ty, source, source_ref) = (s("type"), s("source"), s("sourceRef"));
    let mut r = sh.records();
    let exists = r.thehive.iter().any(|a| {
        a.output["type"] == ty.as_str()
            && a.output["source"] == source.as_str()
            && a.output["sourceRef"] == source_ref.as_str()
    });
    let body = Value::Object(o.clone());
    if exists {
        let message = format!(
            "Alert {ty}:{source}:{source_ref} already exist in organisation {}",
            sh.cfg.thehive_org
        );
        r.deliver(
            Kind::TheHive,
            &req.path,
            Some(source_ref),
            req.headers.clone(),
            body,
            true,
        );
        return Out::json(400, &json!({"type": "CreateError", "message": message}));
    }
    let mut seen = HashSet::new();
    for ob in &observables {
        if !seen.insert((ob["dataType"].to_string(), ob["data"].to_string())) {
            r.reject(
                Kind::TheHive,
                &req.path,
                400,
                format!(
                    "Observable already exists: {}:{}",
                    ob["dataType"], ob["data"]
                ),
            );
            return Out::json(
                400,
                &json!({"type": "CreateError", "message": "Observable already exists"}),
            );
        }
    }
    let now = now_ms();
    let date = o.get("date").and_then(Value::as_i64).unwrap_or(now);
    let severity = o.get("severity").and_then(Value::as_i64).unwrap_or(2);
    let tlp = o.get("tlp").and_then(Value::as_i64).unwrap_or(2);
    let pap = o.get("pap").and_then(Value::as_i64).unwrap_or(2);
    let n = r.thehive.len() as u64;
    let mut out = json!({
        "_id": format!("~{}", 40_964_112 + 4096 * n),
        "_type": "Alert",
        "_createdBy": "signalfoundry@thehive.local",
        "_createdAt": now,
        "type": ty,
        "source": source,
        "sourceRef": source_ref,
        "title": s("title"),
        "description": s("description"),
        "severity": severity,
        "severityLabel": SEVERITY[(severity - 1) as usize],
        "date": date,
        "tags": o.get("tags").cloned().unwrap_or(json!([])),
        "tlp": tlp,
        "tlpLabel": TLP[tlp as usize],
        "pap": pap,
        "papLabel": PAP[pap as usize],
        "follow": o.get("follow").cloned().unwrap_or(json!(true)),
        "customFields": [],
        "observableCount": observables.len(),
        "status": "New",
        "stage": "New",
        "extraData": {},
        "newDate": now,
        "timeToDetect": (now - date).max(0),
    });
    for k in ["externalLink", "summary"] {
        if let Some(v) = o.get(k).filter(|v| v.is_string()) {
            out[k] = v.clone();
        }
    }
    r.thehive.push(TheHiveAlert {
        output: out.clone(),
        observables,
    });
    r.deliver(
        Kind::TheHive,
        &req.path,
        Some(out["sourceRef"].as_str().unwrap_or("").to_string()),
        req.headers.clone(),
        body,
        false,
    );
    Out::json(201, &out)
}

/// A filter as (field, value) pairs, all of which must match.
fn filter_terms(op: &Map<String, Value>) -> Result<Vec<(String, Value)>, String> {
    if let (Some(Value::String(f)), Some(v)) = (op.get("_field"), op.get("_value")) {
        return Ok(vec![(f.clone(), v.clone())]);
    }
    if let Some(eq) = op.get("_eq").and_then(Value::as_object) {
        return filter_terms(eq);
    }
    if let Some(all) = op.get("_and").and_then(Value::as_array) {
        let mut out = Vec::new();
        for x in all {
            let x = x.as_object().ok_or("an _and item is not an object")?;
            out.extend(filter_terms(x)?);
        }
        return Ok(out);
    }
    Err(format!("unsupported filter {}", Value::Object(op.clone())))
}

/// `POST /api/v1/query`.
pub fn query(sh: &Shared, req: &Req) -> Out {
    if let Err(out) = authenticate(sh, req) {
        return out;
    }
    let o = match body_object(sh, req) {
        Ok(o) => o,
        Err(out) => return out,
    };
    let Some(ops) = o.get("query").and_then(Value::as_array) else {
        return error(
            sh,
            req,
            400,
            "BadRequest",
            "Invalid query: no query array".into(),
        );
    };
    let name = |op: &Value| {
        op.get("_name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    if ops.first().map(name).as_deref() != Some("listAlert") {
        return error(
            sh,
            req,
            400,
            "BadRequest",
            "Invalid query: this receiver serves listAlert queries".into(),
        );
    }
    let mut terms = Vec::new();
    let mut page: Option<(usize, usize)> = None;
    for op in &ops[1..] {
        let Some(m) = op.as_object() else {
            return error(
                sh,
                req,
                400,
                "BadRequest",
                "Invalid query: an operation is not an object".into(),
            );
        };
        match name(op).as_str() {
            "filter" => match filter_terms(m) {
                Ok(t) => terms.extend(t),
                Err(e) => return error(sh, req, 400, "BadRequest", format!("Invalid query: {e}")),
            },
            "sort" => {}
            "page" => {
                let g = |k: &str| m.get(k).and_then(Value::as_u64).unwrap_or(0) as usize;
                page = Some((g("from"), g("to")));
            }
            other => {
                return error(
                    sh,
                    req,
                    400,
                    "BadRequest",
                    format!("Invalid query: unsupported operation {other:?}"),
                )
            }
        }
    }
    let r = sh.records();
    let mut hits: Vec<Value> = r
        .thehive
        .iter()
        .map(|a| &a.output)
        .filter(|out| terms.iter().all(|(f, v)| out.get(f) == Some(v)))
        .cloned()
        .collect();
    if let Some((from, to)) = page {
        hits = hits
            .into_iter()
            .skip(from)
            .take(to.saturating_sub(from))
            .collect();
    }
    Out::json(200, &Value::Array(hits))
}
