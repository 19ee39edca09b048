//! The generic webhook: the JSON body (serialized once, signed exactly as sent), its
//! Standard Webhooks 1.0 signature and the `whsec_` secret.
//!
//! Design constraints:
//! - Source: standard-webhooks/standard-webhooks `spec/standard-webhooks.md` (research
//!   §2.3): the signed content is `"{webhook-id}.{webhook-timestamp}.{body}"`, the signature
//!   `v1,<base64 HMAC-SHA256>` (one secret per route: we send one signature); secrets are
//!   `whsec_` + base64 of 24 to 64 bytes; payloads under 20 KB.
//! - The body is bytes, rendered once: the sender signs and sends exactly these bytes, and a
//!   retry renders the same bytes (only `webhook-timestamp` and so the signature change).
//! - Under [`BODY_MAX_BYTES`]: `incident` is `incident.json` thinned
//!   ([`super::thin_incident`]: the case ids dropped, `cases.count` kept, long lists cut), and
//!   the summary and observables shrink through [`Budget::LEVELS`] until the body fits.
//! - `title` and `summary` are display text, [`super::inert`] (control characters escaped,
//!   IOCs defanged, no HTML, Slack or Markdown link syntax), because receivers paste them into
//!   chats and pages. `incident` and `observables` are data: raw values as the alert and
//!   `incident.json` have them (cut when long), for receivers that match on them, with only
//!   their control characters escaped ([`super::escape_strings`]).
//! - No secret in any error: [`parse_secret`] says what is wrong, never the value.
//!
//! HMAC-SHA256 is written here over `sha2` (RFC 2104, a dozen lines, checked against RFC
//! 4231's vectors and the Standard Webhooks example): the `hmac` crate is not available
//! offline to this build, and `sha2` already is.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{inert, neutralise, rfc3339, summary_lines, thin_incident, Budget};
use crate::stages::deliver::event::Event;
use crate::stages::escalate::markdown::truncate_chars;

/// The body stays below this (Standard Webhooks: "under 20 KB").
pub const BODY_MAX_BYTES: usize = 20 * 1024;
/// The prefix of a Standard Webhooks symmetric secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// Bytes of a secret, as the spec asks.
pub const SECRET_BYTES: std::ops::RangeInclusive<usize> = 24..=64;

/// The body to POST (`Content-Type: application/json`), under [`BODY_MAX_BYTES`].
pub fn render(event: &Event) -> Vec<u8> {
    let mut bytes = Vec::new();
    for budget in Budget::LEVELS {
        bytes = serde_json::to_vec(&body(event, budget)).expect("a JSON value always serializes");
        if bytes.len() < BODY_MAX_BYTES {
            break;
        }
    }
    bytes
}

fn body(event: &Event, budget: Budget) -> Value {
    let (lines, omitted) = summary_lines(event, budget);
    let mut summary: Vec<String> = lines.iter().map(|l| neutralise(l)).collect();
    summary.extend(super::more(omitted, "lines"));
    let cut = |s: &str| {
        super::clip(
            truncate_chars(s, budget.value_chars + 1).0,
            budget.value_chars,
        )
    };
    let observables: Vec<Value> = event
        .observables
        .iter()
        .take(budget.observables)
        .map(|o| json!({ "kind": o.kind.as_str(), "value": cut(&o.value), "field": cut(&o.field) }))
        .collect();
    let packs: Vec<String> = event
        .packs
        .iter()
        .take(budget.items)
        .map(|p| cut(p))
        .collect();
    let mut body = json!({
        "type": event.kind.as_str(),
        "id": event.id,
        "timestamp": rfc3339(event.created_at),
        "route": event.route,
        "seq": event.seq,
        "title": inert(&event.title, budget.value_chars),
        "incident": thin_incident(&event.incident, budget),
        "summary": summary.join("\n"),
        "pack": packs,
        "packs_count": event.packs.len(),
        "observables": observables,
        "observables_count": event.observables.len(),
        "new_members": event.new_members,
    });
    super::escape_strings(&mut body);
    body
}

/// The `webhook-signature` value for one secret: `v1,<base64 HMAC-SHA256 of
/// "<id>.<timestamp>.<body>">`. `id` and `timestamp` must not contain `.` (an event id is
/// `[a-z0-9_]`); `timestamp` is this attempt's unix seconds, as sent in `webhook-timestamp`.
pub fn sign(secret: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let ts = timestamp.to_string();
    let mac = hmac_sha256(secret, &[id.as_bytes(), b".", ts.as_bytes(), b".", body]);
    format!("v1,{}", STANDARD.encode(mac))
}

/// The key bytes of a `whsec_<base64>` secret. The error says what is wrong, never the
/// secret.
pub fn parse_secret(s: &str) -> Result<Vec<u8>, String> {
    let Some(b64) = s.trim().strip_prefix(SECRET_PREFIX) else {
        return Err(format!(
            "the webhook secret does not start with {SECRET_PREFIX} (a Standard Webhooks \
             secret is {SECRET_PREFIX} and base64)"
        ));
    };
    let key = STANDARD
        .decode(b64)
        .map_err(|_| format!("the webhook secret is not valid base64 after {SECRET_PREFIX}"))?;
    if !SECRET_BYTES.contains(&key.len()) {
        return Err(format!(
            "the webhook secret has {} bytes; Standard Webhooks secrets have {} to {}",
            key.len(),
            SECRET_BYTES.start(),
            SECRET_BYTES.end()
        ));
    }
    Ok(key)
}

/// HMAC-SHA256 (RFC 2104) of the concatenated `parts`.
fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    for p in parts {
        inner.update(p);
    }
    let inner = inner.finalize();
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner);
    outer.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    fn parsed(e: &Event) -> Value {
        serde_json::from_slice(&render(e)).expect("the body is JSON")
    }

    #[test]
    fn hmac_sha256_matches_rfc_4231() {
        let check = |key: &[u8], data: &[u8], hex_mac: &str| {
            assert_eq!(hex::encode(hmac_sha256(key, &[data])), hex_mac);
        };
        check(
            &[0x0b; 20],
            b"Hi There",
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
        );
        check(
            b"Jefe",
            b"what do ya want for nothing?",
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        );
        // A key longer than the block is hashed first (RFC 4231 test case 6).
        check(
            &[0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First",
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
        );
    }

    #[test]
    fn sign_matches_the_standard_webhooks_example_and_python_hmac() {
        // The Standard Webhooks / svix example; recomputed with python3's hmac module.
        let key = parse_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("valid");
        assert_eq!(
            sign(
                &key,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        // python3: base64(hmac.new(bytes(range(100)), b'evt_1.1700000000.{"a":1}', sha256))
        let long: Vec<u8> = (0..100).collect();
        assert_eq!(
            sign(&long, "evt_1", 1_700_000_000, br#"{"a":1}"#),
            "v1,jF2LWAUXgcNhMCJvkfG5vIUwQxd5dz3VctThs8smrD4="
        );
    }

    #[test]
    fn parse_secret_reads_whsec_and_never_repeats_the_secret() {
        assert_eq!(
            parse_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").map(|k| k.len()),
            Ok(24)
        );
        for bad in [
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "whsec_not*base64*at*all*SECRETSECRET",
            "whsec_c2hvcnQ=",
            "whsk_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        ] {
            let err = parse_secret(bad).expect_err(bad);
            let tail = bad.trim_start_matches("whsec_").trim_start_matches("whsk_");
            assert!(!err.contains(tail), "{err}");
            assert!(!err.contains("SECRET"), "{err}");
        }
    }

    #[test]
    fn body_has_the_documented_fields_and_types() {
        let e = event();
        let v = parsed(&e);
        assert_eq!(v["type"], "incident.opened");
        assert_eq!(v["id"], e.id.as_str());
        assert_eq!(v["timestamp"], "2024-05-01T12:02:10.000Z");
        assert_eq!(v["route"], "soc-slack");
        assert_eq!(v["incident"]["id"], e.incident.id.as_str());
        assert_eq!(v["incident"]["cases"], json!({ "count": 2 }));
        assert_eq!(v["incident"]["bucket"], "high");
        for s in strings(&v) {
            assert_no_controls(s);
        }
        assert!(v["summary"]
            .as_str()
            .is_some_and(|s| s.contains("rule 5710")));
        assert_eq!(v["pack"].as_array().map(Vec::len), Some(2));
        assert_eq!(v["observables"][0]["kind"], "ip");
        assert_eq!(v["observables"][0]["value"], "10.0.0.5");
        assert_eq!(v["new_members"], 0);
        assert_eq!(
            render(&e),
            render(&e),
            "the same event renders the same bytes"
        );
    }

    #[test]
    fn body_stays_under_20_kb_for_a_huge_event() {
        let e = huge_event();
        let bytes = render(&e);
        assert!(bytes.len() < BODY_MAX_BYTES, "{}", bytes.len());
        let v: Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(v["incident"]["cases"], json!({ "count": 1_000_000 }));
        assert_eq!(v["observables_count"], 10_000);
        assert!(v["incident"]["agents_count"] == 1_000);
    }

    #[test]
    fn hostile_title_and_summary_are_inert_text() {
        let v = parsed(&hostile_event());
        for field in ["title", "summary"] {
            let s = v[field].as_str().expect("a string");
            assert_plain_inert(s);
            assert!(s.contains("click here"), "{s}");
        }
        for s in strings(&v) {
            assert_no_controls(s);
        }
        assert!(v["summary"]
            .as_str()
            .is_some_and(|s| s.contains("\\u{1b}[31m") && s.contains("\\u{202e}")));
    }
}
