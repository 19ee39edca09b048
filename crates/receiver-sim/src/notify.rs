//! The notification receivers: Standard Webhooks 1.0, Slack incoming webhooks, Teams
//! Workflows webhooks. Contracts from wave2-peers.md §2.1–2.3 and the sources it cites.
//!
//! Design constraints:
//! - Standard Webhooks (standard-webhooks/standard-webhooks:spec/standard-webhooks.md): the
//!   signed content is `"{webhook-id}.{webhook-timestamp}.{raw body}"`, exactly as sent; the
//!   key is the base64 part of the `whsec_` secret; `webhook-signature` is a space-separated
//!   list where any `v1,<base64 HMAC-SHA256>` may match (key rotation), other versions are
//!   ignored; compared in constant time (`Mac::verify_slice`); a timestamp more than 5
//!   minutes from now is refused (replay); `webhook-id` is the idempotency key, so a repeat
//!   is answered 204 like the first and recorded `duplicate`. Missing headers → 400, a bad
//!   signature or stale timestamp → 401. The body is SignalFoundry's event: a JSON object
//!   with `type` and `id` strings and an `incident` object.
//! - Slack (api.slack.com/changelog/2016-05-17-changes-to-errors-for-incoming-webhooks,
//!   Block Kit reference): success is 200 with the text body `ok`; a bad payload is 400
//!   `invalid_payload`. `text` is required (the notification fallback); at most 50 blocks;
//!   a header's `plain_text` ≤ 150 chars; a section's text ≤ 3000, fields ≤ 10 of ≤ 2000;
//!   `block_id` ≤ 255; every text object is `plain_text` or `mrkdwn`. About one message a
//!   second per webhook with short bursts (a token bucket of 5, refilled at 1/s), else 429
//!   with `Retry-After: 1`. No idempotency key: every accepted request is a delivery.
//! - Teams Workflows (learn.microsoft.com "Create incoming webhooks"; the zammad example
//!   payload): `{"type":"message","attachments":[{"contentType":
//!   "application/vnd.microsoft.card.adaptive","content":{"type":"AdaptiveCard",…}}]}`;
//!   over 28 KB → 413; more than 4 requests a second → 429; accepted → 202, because the flow
//!   runs asynchronously. A body that is not JSON is refused 400; a JSON body that is not a
//!   valid card message is still answered 202, as the real endpoint does, but recorded as a
//!   rejection ("the flow would fail") and not as a delivery (louislam/uptime-kuma#4922).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Map, Value};
use sha2::Sha256;

use crate::record::Kind;
use crate::server::Shared;
use crate::wire::{type_name, Bucket, Out, Req};

/// Largest accepted distance between `webhook-timestamp` and now.
const WEBHOOK_TOLERANCE_SECS: i64 = 5 * 60;
/// Teams' message size limit.
pub const TEAMS_MAX_BYTES: usize = 28 * 1024;

/// `POST /webhook/…`.
pub fn webhook(sh: &Shared, req: &Req) -> Out {
    let reject = |status: u16, reason: String| {
        sh.records()
            .reject(Kind::Webhook, &req.path, status, reason);
        Out::empty(status)
    };
    let (Some(id), Some(ts), Some(sigs)) = (
        req.header("webhook-id"),
        req.header("webhook-timestamp"),
        req.header("webhook-signature"),
    ) else {
        return reject(
            400,
            "missing webhook-id, webhook-timestamp or webhook-signature".into(),
        );
    };
    if id.is_empty() || id.contains('.') {
        return reject(400, format!("webhook-id {id:?} is empty or contains '.'"));
    }
    let Ok(t) = ts.parse::<i64>() else {
        return reject(
            400,
            format!("webhook-timestamp {ts:?} is not integer seconds"),
        );
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    if (now - t).abs() > WEBHOOK_TOLERANCE_SECS {
        return reject(
            401,
            format!("webhook-timestamp {t} is more than 5 minutes from now ({now})"),
        );
    }
    if !signature_ok(&sh.webhook_key, id, ts, &req.body, sigs) {
        return reject(401, "no v1 signature in webhook-signature matches".into());
    }
    let body: Value = match serde_json::from_slice(&req.body) {
        Ok(v) => v,
        Err(e) => return reject(400, format!("body is not JSON: {e}")),
    };
    let shape = (|| {
        let o = body.as_object().ok_or("body is not a JSON object")?;
        for f in ["type", "id"] {
            if !o.get(f).is_some_and(Value::is_string) {
                return Err(format!("body field {f} is not a string"));
            }
        }
        // A digest stands for several messages: their ids, types and incidents.
        if o.get("type").and_then(Value::as_str) == Some("incident.digest") {
            let ok = o
                .get("messages")
                .and_then(Value::as_array)
                .is_some_and(|ms| {
                    !ms.is_empty()
                        && ms.iter().all(|m| {
                            ["id", "type", "incident"]
                                .iter()
                                .all(|f| m.get(f).is_some_and(Value::is_string))
                        })
                });
            if !ok {
                return Err("a digest's messages are not a list of {id, type, incident}".into());
            }
        } else if !o.get("incident").is_some_and(Value::is_object) {
            return Err("body field incident is not an object".into());
        }
        Ok(())
    })();
    if let Err(reason) = shape {
        return reject(400, reason.to_string());
    }
    let mut r = sh.records();
    let duplicate = !r.webhook_ids.insert(id.to_string());
    r.deliver(
        Kind::Webhook,
        &req.path,
        Some(id.to_string()),
        req.headers.clone(),
        body,
        duplicate,
    );
    Out::empty(204)
}

/// Whether any `v1` signature of the list is the HMAC-SHA256 of `id.ts.body`.
pub fn signature_ok(key: &[u8], id: &str, ts: &str, body: &[u8], sigs: &str) -> bool {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return false;
    };
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(ts.as_bytes());
    mac.update(b".");
    mac.update(body);
    sigs.split(' ')
        .filter_map(|s| s.split_once(','))
        .filter(|(v, _)| *v == "v1")
        .filter_map(|(_, b64)| base64::engine::general_purpose::STANDARD.decode(b64).ok())
        .any(|raw| mac.clone().verify_slice(&raw).is_ok())
}

/// `POST /slack/…`.
pub fn slack(sh: &Shared, req: &Req) -> Out {
    if sh.cfg.vendor_rate_limits {
        let mut l = sh.limits();
        let b = l
            .slack
            .entry(req.path.clone())
            .or_insert_with(|| Bucket::new(5.0));
        if !b.take(5.0, 1.0) {
            return Out::text(429, "rate_limited").retry_after(1);
        }
    }
    let checked = serde_json::from_slice::<Value>(&req.body)
        .map_err(|e| format!("body is not JSON: {e}"))
        .and_then(|v| slack_payload(&v).map(|()| v));
    match checked {
        Ok(v) => {
            sh.records()
                .deliver(Kind::Slack, &req.path, None, req.headers.clone(), v, false);
            Out::text(200, "ok")
        }
        Err(reason) => {
            sh.records().reject(Kind::Slack, &req.path, 400, reason);
            Out::text(400, "invalid_payload")
        }
    }
}

fn chars(s: &str) -> usize {
    s.chars().count()
}

/// A Block Kit text object: `{"type": "plain_text"|"mrkdwn", "text": non-empty}`.
fn text_object(v: &Value, max: usize, plain_only: bool, at: &str) -> Result<(), String> {
    let o = v.as_object().ok_or(format!("{at} is not a text object"))?;
    let ty = o.get("type").and_then(Value::as_str).unwrap_or("");
    match ty {
        "plain_text" => {}
        "mrkdwn" if !plain_only => {}
        _ if plain_only => return Err(format!("{at}.type must be plain_text, got {ty:?}")),
        _ => {
            return Err(format!(
                "{at}.type must be plain_text or mrkdwn, got {ty:?}"
            ))
        }
    }
    let text = o
        .get("text")
        .and_then(Value::as_str)
        .ok_or(format!("{at}.text is not a string"))?;
    if text.is_empty() || chars(text) > max {
        return Err(format!(
            "{at}.text has {} chars, must be 1 to {max}",
            chars(text)
        ));
    }
    Ok(())
}

/// Checks a Slack message payload.
pub fn slack_payload(v: &Value) -> Result<(), String> {
    let o = v.as_object().ok_or("body is not a JSON object")?;
    match o.get("text") {
        Some(Value::String(t)) if !t.trim().is_empty() => {}
        _ => return Err("text is missing, empty or not a string".into()),
    }
    let Some(blocks) = o.get("blocks") else {
        return Ok(());
    };
    let blocks = blocks.as_array().ok_or("blocks is not an array")?;
    if blocks.len() > 50 {
        return Err(format!("{} blocks, at most 50", blocks.len()));
    }
    for (i, b) in blocks.iter().enumerate() {
        slack_block(b, &format!("blocks[{i}]"))?;
    }
    Ok(())
}

fn slack_block(b: &Value, at: &str) -> Result<(), String> {
    let o = b.as_object().ok_or(format!("{at} is not an object"))?;
    if let Some(id) = o.get("block_id") {
        let id = id
            .as_str()
            .ok_or(format!("{at}.block_id is not a string"))?;
        if chars(id) > 255 {
            return Err(format!("{at}.block_id is over 255 chars"));
        }
    }
    let ty = o.get("type").and_then(Value::as_str).unwrap_or("");
    match ty {
        "header" => text_object(
            o.get("text").unwrap_or(&Value::Null),
            150,
            true,
            &format!("{at}.text"),
        ),
        "section" => {
            let (text, fields) = (o.get("text"), o.get("fields"));
            if text.is_none() && fields.is_none() {
                return Err(format!("{at}: a section needs text or fields"));
            }
            if let Some(t) = text {
                text_object(t, 3000, false, &format!("{at}.text"))?;
            }
            if let Some(f) = fields {
                let f = f.as_array().ok_or(format!("{at}.fields is not an array"))?;
                if f.is_empty() || f.len() > 10 {
                    return Err(format!("{at}.fields has {} items, 1 to 10", f.len()));
                }
                for (j, x) in f.iter().enumerate() {
                    text_object(x, 2000, false, &format!("{at}.fields[{j}]"))?;
                }
            }
            Ok(())
        }
        "context" => {
            let e = o
                .get("elements")
                .and_then(Value::as_array)
                .ok_or(format!("{at}.elements is not an array"))?;
            if e.is_empty() || e.len() > 10 {
                return Err(format!("{at}.elements has {} items, 1 to 10", e.len()));
            }
            for (j, x) in e.iter().enumerate() {
                let at = format!("{at}.elements[{j}]");
                if x.get("type").and_then(Value::as_str) == Some("image") {
                    continue;
                }
                text_object(x, 3000, false, &at)?;
            }
            Ok(())
        }
        "actions" => {
            let e = o
                .get("elements")
                .and_then(Value::as_array)
                .ok_or(format!("{at}.elements is not an array"))?;
            if e.is_empty() || e.len() > 25 {
                return Err(format!("{at}.elements has {} items, 1 to 25", e.len()));
            }
            Ok(())
        }
        "divider" | "image" | "rich_text" | "input" | "file" | "video" | "markdown" => Ok(()),
        _ => Err(format!("{at}.type {ty:?} is not a block type")),
    }
}

/// The answer to a Teams request over the rate.
pub fn teams_throttled() -> Out {
    Out::json(
        429,
        &json!({"error": {"code": "TooManyRequests", "message": "Rate limit is exceeded. Try again in 1 seconds."}}),
    )
    .retry_after(1)
}

/// `POST /teams/…`.
pub fn teams(sh: &Shared, req: &Req) -> Out {
    if sh.cfg.vendor_rate_limits {
        let mut l = sh.limits();
        let w = l.teams.entry(req.path.clone()).or_default();
        if !w.admit(4, Duration::from_secs(1)) {
            return teams_throttled();
        }
    }
    if req.body.len() > TEAMS_MAX_BYTES {
        sh.records().reject(
            Kind::Teams,
            &req.path,
            413,
            format!("message is {} bytes, over 28 KB", req.body.len()),
        );
        return Out::json(
            413,
            &json!({"error": {"code": "MessageSizeExceeded", "message": "Message size exceeded the limit of 28 KB"}}),
        );
    }
    let v: Value = match serde_json::from_slice(&req.body) {
        Ok(v) => v,
        Err(e) => {
            sh.records().reject(
                Kind::Teams,
                &req.path,
                400,
                format!("body is not JSON: {e}"),
            );
            return Out::json(
                400,
                &json!({"error": {"code": "InvalidRequestContent", "message": "The input body for trigger 'manual' of type 'Request' must be of type JSON, but was of type 'application/octet-stream'."}}),
            );
        }
    };
    match teams_message(&v) {
        Ok(()) => sh
            .records()
            .deliver(Kind::Teams, &req.path, None, req.headers.clone(), v, false),
        Err(reason) => sh.records().reject(
            Kind::Teams,
            &req.path,
            202,
            format!("accepted, but the flow would fail: {reason}"),
        ),
    }
    Out::empty(202)
}

fn field<'a>(o: &'a Map<String, Value>, k: &str, at: &str) -> Result<&'a Value, String> {
    o.get(k).ok_or(format!("{at}.{k} is missing"))
}

/// Checks a Workflows message carrying Adaptive Cards (schema 1.0–1.5, what Teams renders).
pub fn teams_message(v: &Value) -> Result<(), String> {
    let o = v.as_object().ok_or("body is not a JSON object")?;
    if o.get("type").and_then(Value::as_str) != Some("message") {
        return Err("type is not \"message\"".into());
    }
    let atts = field(o, "attachments", "$")?
        .as_array()
        .filter(|a| !a.is_empty())
        .ok_or("attachments is not a non-empty array")?;
    for (i, a) in atts.iter().enumerate() {
        let at = format!("attachments[{i}]");
        let a = a.as_object().ok_or(format!("{at} is not an object"))?;
        let ct = field(a, "contentType", &at)?.as_str().unwrap_or("");
        if ct != "application/vnd.microsoft.card.adaptive" {
            return Err(format!("{at}.contentType {ct:?} is not an Adaptive Card"));
        }
        let c = field(a, "content", &at)?
            .as_object()
            .ok_or(format!("{at}.content is not an object"))?;
        if c.get("type").and_then(Value::as_str) != Some("AdaptiveCard") {
            return Err(format!("{at}.content.type is not \"AdaptiveCard\""));
        }
        let ver = field(c, "version", &format!("{at}.content"))?
            .as_str()
            .unwrap_or("");
        let ok = ver
            .split_once('.')
            .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)))
            .is_some_and(|(maj, min)| maj == 1 && min <= 5);
        if !ok {
            return Err(format!("{at}.content.version {ver:?} is not 1.0 to 1.5"));
        }
        let body = field(c, "body", &format!("{at}.content"))?
            .as_array()
            .ok_or(format!("{at}.content.body is not an array"))?;
        for (j, e) in body.iter().enumerate() {
            card_element(e, &format!("{at}.content.body[{j}]"))?;
        }
        if let Some(actions) = c.get("actions") {
            let actions = actions
                .as_array()
                .ok_or(format!("{at}.content.actions is not an array"))?;
            for (j, x) in actions.iter().enumerate() {
                card_action(x, &format!("{at}.content.actions[{j}]"))?;
            }
        }
    }
    Ok(())
}

fn card_element(e: &Value, at: &str) -> Result<(), String> {
    let o = e.as_object().ok_or(format!("{at} is not an object"))?;
    let ty = o.get("type").and_then(Value::as_str).unwrap_or("");
    let need_str = |k: &str| match o.get(k) {
        Some(Value::String(_)) => Ok(()),
        Some(v) => Err(format!("{at}.{k} is a {}, not a string", type_name(v))),
        None => Err(format!("{at}.{k} is missing")),
    };
    match ty {
        "TextBlock" => need_str("text"),
        "Image" => need_str("url"),
        "FactSet" => {
            let facts = o
                .get("facts")
                .and_then(Value::as_array)
                .ok_or(format!("{at}.facts is not an array"))?;
            for (k, f) in facts.iter().enumerate() {
                let ok = f.get("title").is_some_and(Value::is_string)
                    && f.get("value").is_some_and(Value::is_string);
                if !ok {
                    return Err(format!("{at}.facts[{k}] needs title and value strings"));
                }
            }
            Ok(())
        }
        "Container" => {
            let items = o
                .get("items")
                .and_then(Value::as_array)
                .ok_or(format!("{at}.items is not an array"))?;
            for (k, x) in items.iter().enumerate() {
                card_element(x, &format!("{at}.items[{k}]"))?;
            }
            Ok(())
        }
        "ColumnSet" | "RichTextBlock" | "ImageSet" | "Table" | "Media" => Ok(()),
        "ActionSet" => {
            let actions = o
                .get("actions")
                .and_then(Value::as_array)
                .ok_or(format!("{at}.actions is not an array"))?;
            for (k, x) in actions.iter().enumerate() {
                card_action(x, &format!("{at}.actions[{k}]"))?;
            }
            Ok(())
        }
        _ => Err(format!("{at}.type {ty:?} is not an Adaptive Card element")),
    }
}

fn card_action(a: &Value, at: &str) -> Result<(), String> {
    match a.get("type").and_then(Value::as_str).unwrap_or("") {
        "Action.OpenUrl" => match a.get("url").and_then(Value::as_str) {
            Some(u) if !u.is_empty() => Ok(()),
            _ => Err(format!("{at}.url is missing")),
        },
        "Action.ShowCard" | "Action.ToggleVisibility" | "Action.Submit" | "Action.Execute" => {
            Ok(())
        }
        t => Err(format!("{at}.type {t:?} is not an action")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slack_limits_follow_block_kit() {
        let ok = json!({"text": "x", "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": "h"}},
            {"type": "section", "text": {"type": "mrkdwn", "text": "*b*"}, "fields": [{"type": "mrkdwn", "text": "f"}]},
            {"type": "divider"},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": "c"}]}
        ]});
        slack_payload(&ok).unwrap();
        let long_header = json!({"text": "x", "blocks": [{"type": "header", "text": {"type": "plain_text", "text": "h".repeat(151)}}]});
        assert!(slack_payload(&long_header).is_err());
        let mrkdwn_header = json!({"text": "x", "blocks": [{"type": "header", "text": {"type": "mrkdwn", "text": "h"}}]});
        assert!(slack_payload(&mrkdwn_header).is_err());
        let fields: Vec<Value> = (0..11)
            .map(|_| json!({"type": "mrkdwn", "text": "f"}))
            .collect();
        assert!(slack_payload(
            &json!({"text": "x", "blocks": [{"type": "section", "fields": fields}]})
        )
        .is_err());
        let blocks: Vec<Value> = (0..51).map(|_| json!({"type": "divider"})).collect();
        assert!(slack_payload(&json!({"text": "x", "blocks": blocks})).is_err());
        assert!(slack_payload(&json!({"blocks": []})).is_err());
        assert!(slack_payload(&json!({"text": "x", "blocks": [{"type": "section", "text": {"type": "markdown", "text": "a"}}]})).is_err());
    }

    #[test]
    fn teams_cards_are_checked() {
        let ok = json!({"type": "message", "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": null,
            "content": {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "type": "AdaptiveCard", "version": "1.4",
            "body": [{"type": "TextBlock", "text": "t", "wrap": true}, {"type": "FactSet", "facts": [{"title": "a", "value": "b"}]}],
            "actions": [{"type": "Action.OpenUrl", "title": "Open case", "url": "https://x"}]}}]});
        teams_message(&ok).unwrap();
        let mut bad = ok.clone();
        bad["attachments"][0]["contentType"] =
            json!("application/vnd.microsoft.teams.card.o365connector");
        assert!(teams_message(&bad).is_err());
        let mut bad = ok.clone();
        bad["attachments"][0]["content"]["version"] = json!("2.0");
        assert!(teams_message(&bad).is_err());
        let mut bad = ok;
        bad["attachments"][0]["content"]["body"][0] = json!({"type": "TextBlock"});
        assert!(teams_message(&bad).is_err());
    }

    #[test]
    fn any_v1_signature_of_the_list_may_match() {
        let key = b"0123456789abcdef01234567";
        let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
        mac.update(b"msg_1.1700000000.{}");
        let good = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        let list = format!("v1a,AAAA v1,Zm9v v1,{good}");
        assert!(signature_ok(key, "msg_1", "1700000000", b"{}", &list));
        assert!(!signature_ok(key, "msg_1", "1700000001", b"{}", &list));
        assert!(!signature_ok(
            key,
            "msg_1",
            "1700000000",
            b"{}",
            &format!("v2,{good}")
        ));
    }
}
