//! Each kind's protocol: one attempt of one message, and what the answer means.
//!
//! Design constraints:
//! - 2xx is delivered (Slack's `ok`, Teams' `202`, PagerDuty's `202`, TheHive's `201`, IRIS's
//!   `200` with `status: success`); so is TheHive's answer to a duplicate `(type, source,
//!   sourceRef)` (HTTP 400 `CreateError`/`ConflictError` "already exist"), and an IRIS alert
//!   the lookup (`GET /alerts/filter?source_reference=`) finds before the create (IRIS does not
//!   deduplicate; with one writer per route, look-then-create makes a retry after a lost
//!   answer create nothing twice).
//! - 408, 429, 5xx, timeouts and connection errors are retried (`Retry-After` honoured);
//!   other 4xx and 3xx (redirects are not followed) can never succeed as sent: dead at once,
//!   with what to fix.
//! - Errors carry the status and at most [`ANSWER_SHOWN`] characters of the answer, escaped;
//!   reqwest's errors without their URL (a Slack or Teams URL is a secret); the caller scrubs
//!   the route's secrets from them besides.

use std::time::Duration;

use reqwest::blocking::{RequestBuilder, Response};
use reqwest::header::{HeaderValue, RETRY_AFTER};

use super::event::{Digest, Event};
use super::formats;
use super::routes::Endpoint;
use crate::config::NotifyKind;

/// Characters of a receiver's answer kept in an error.
pub const ANSWER_SHOWN: usize = 200;
/// Bytes of a receiver's answer read.
const ANSWER_MAX: u64 = 1 << 20;

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    Retry {
        after: Option<Duration>,
        error: String,
    },
    Permanent {
        error: String,
    },
}

/// One attempt.
pub fn send(ep: &Endpoint, ev: &Event) -> Outcome {
    match ep.cfg.kind {
        NotifyKind::Webhook => webhook(ep, ev),
        NotifyKind::Slack => {
            let body = formats::slack::render(ev, &formats::slack::Options::default());
            post_json(ep, ep.url(), &body, &[])
        }
        NotifyKind::Teams => {
            let body = formats::teams::render(ev, &formats::teams::Options::default());
            post_json(ep, ep.url(), &body, &[])
        }
        NotifyKind::Pagerduty => {
            let key = ep.secret.as_ref().map_or("", |s| s.expose());
            let body = formats::pagerduty::render(ev, &formats::pagerduty::Options::default());
            let body = formats::pagerduty::with_routing_key(&body, key);
            post_json(ep, ep.url(), &body, &[])
        }
        NotifyKind::Thehive => thehive(ep, ev),
        NotifyKind::Iris => iris(ep, ev),
        NotifyKind::Email => email(ep, ev),
    }
}

/// One attempt of a digest (notification kinds only).
pub fn send_digest(ep: &Endpoint, d: &Digest) -> Outcome {
    match ep.cfg.kind {
        NotifyKind::Webhook => signed(ep, &d.id, formats::digest::webhook(d)),
        NotifyKind::Slack => post_json(ep, ep.url(), &formats::digest::slack(d), &[]),
        NotifyKind::Teams => post_json(ep, ep.url(), &formats::digest::teams(d), &[]),
        NotifyKind::Email => mail(ep, &d.id, formats::digest::email(d)),
        _ => Outcome::Permanent {
            error: "this kind takes no digest".into(),
        },
    }
}

fn client(ep: &Endpoint) -> &reqwest::blocking::Client {
    ep.http
        .as_ref()
        .expect("every HTTP kind's endpoint has a client")
}

fn bearer(ep: &Endpoint, rb: RequestBuilder) -> RequestBuilder {
    match &ep.secret {
        Some(s) => rb.bearer_auth(s.expose()),
        None => rb,
    }
}

/// An answer's text for an error: at most [`ANSWER_SHOWN`] characters, escaped.
fn shown_answer(body: &str) -> String {
    let cut: String = body.chars().take(ANSWER_SHOWN).collect();
    crate::store::fsx::escape_text(cut.trim())
}

fn retry_after(r: &Response) -> Option<Duration> {
    let v: &HeaderValue = r.headers().get(RETRY_AFTER)?;
    let s = v.to_str().ok()?.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Some(Duration::from_secs(secs.min(86_400)));
    }
    let at = chrono::DateTime::parse_from_rfc2822(s).ok()?;
    (at.with_timezone(&chrono::Utc) - chrono::Utc::now())
        .to_std()
        .ok()
        .map(|d| d.min(Duration::from_secs(86_400)))
}

/// Judges an HTTP answer by its status (the body already read).
fn judge(kind: NotifyKind, status: u16, retry: Option<Duration>, body: &str) -> Outcome {
    match status {
        200..=299 => Outcome::Delivered,
        408 | 429 | 500..=599 => Outcome::Retry {
            after: retry,
            error: format!("HTTP {status}: {}", shown_answer(body)),
        },
        300..=399 => Outcome::Permanent {
            error: format!(
                "HTTP {status} (a redirect; not followed): point the route's url at the final address"
            ),
        },
        401 | 403 => Outcome::Permanent {
            error: format!(
                "HTTP {status}: the receiver refused our credentials ({}): check the route's {}",
                shown_answer(body),
                match kind {
                    NotifyKind::Webhook => "signing secret",
                    NotifyKind::Pagerduty => "routing key",
                    NotifyKind::Thehive | NotifyKind::Iris => "API key (and its permissions)",
                    _ => "URL",
                }
            ),
        },
        404 | 410 => Outcome::Permanent {
            error: format!(
                "HTTP {status}: the endpoint is gone ({}): fix or remove the route",
                shown_answer(body)
            ),
        },
        413 => Outcome::Permanent {
            error: format!("HTTP 413: the message is too large for the receiver ({})", shown_answer(body)),
        },
        _ => Outcome::Permanent {
            error: format!(
                "HTTP {status}: the receiver refused the message ({}); it will not accept it as sent",
                shown_answer(body)
            ),
        },
    }
}

/// Sends a request; the status, `Retry-After` and body, or the transport's outcome.
fn exchange(rb: RequestBuilder) -> Result<(u16, Option<Duration>, String), Outcome> {
    let resp = rb.send().map_err(transport_error_chain)?;
    let status = resp.status().as_u16();
    let retry = retry_after(&resp);
    // An answer is read up to ANSWER_MAX bytes (what we judge is in its first bytes).
    let mut buf = Vec::new();
    let read = std::io::Read::read_to_end(&mut std::io::Read::take(resp, ANSWER_MAX), &mut buf);
    if let Err(e) = read {
        return Err(Outcome::Retry {
            after: None,
            error: format!("reading the answer failed: {}", e.kind()),
        });
    }
    Ok((status, retry, String::from_utf8_lossy(&buf).into_owned()))
}

fn transport_error_chain(e: reqwest::Error) -> Outcome {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    let mut msg = what.to_string();
    let mut src: Option<&dyn std::error::Error> = std::error::Error::source(&e);
    while let Some(s) = src {
        let text = s.to_string();
        if !msg.ends_with(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        src = s.source();
    }
    Outcome::Retry {
        after: None,
        error: msg,
    }
}

fn post_json(
    ep: &Endpoint,
    url: &str,
    body: &serde_json::Value,
    headers: &[(&str, String)],
) -> Outcome {
    let bytes = match serde_json::to_vec(body) {
        Ok(b) => b,
        Err(e) => {
            return Outcome::Permanent {
                error: format!("cannot serialize the message ({e}); report a bug"),
            }
        }
    };
    post_bytes(ep, url, bytes, headers)
}

fn post_bytes(ep: &Endpoint, url: &str, bytes: Vec<u8>, headers: &[(&str, String)]) -> Outcome {
    let mut rb = client(ep)
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(bytes);
    for (k, v) in headers {
        rb = rb.header(*k, v);
    }
    match exchange(rb) {
        Ok((status, retry, body)) => judge(ep.cfg.kind, status, retry, &body),
        Err(o) => o,
    }
}

/// The generic webhook, signed per Standard Webhooks 1.0.
fn webhook(ep: &Endpoint, ev: &Event) -> Outcome {
    signed(ep, &ev.id, formats::webhook::render(ev))
}

/// POSTs a body signed per Standard Webhooks 1.0 under `id`.
fn signed(ep: &Endpoint, id: &str, body: Vec<u8>) -> Outcome {
    let secret = match formats::webhook::parse_secret(ep.secret.as_ref().map_or("", |s| s.expose()))
    {
        Ok(s) => s,
        Err(e) => {
            return Outcome::Permanent {
                error: format!("the signing secret: {e}"),
            }
        }
    };
    let ts = chrono::Utc::now().timestamp();
    let sig = formats::webhook::sign(&secret, id, ts, &body);
    post_bytes(
        ep,
        ep.url(),
        body,
        &[
            ("webhook-id", id.to_string()),
            ("webhook-timestamp", ts.to_string()),
            ("webhook-signature", sig),
        ],
    )
}

fn base(ep: &Endpoint) -> String {
    ep.url().trim_end_matches('/').to_string()
}

/// TheHive 5: `POST /api/v1/alert`; a duplicate `sourceRef` answer is delivered.
fn thehive(ep: &Endpoint, ev: &Event) -> Outcome {
    if !ev.kind.is_opening() {
        // Case tools get the incident once; its updates are in SignalFoundry's files.
        return Outcome::Delivered;
    }
    let opts = formats::thehive::Options {
        source: ep.cfg.source.clone(),
        alert_type: ep.cfg.alert_type.clone(),
        tlp: ep.cfg.tlp,
        pap: ep.cfg.pap,
        tags: ep.cfg.tags.clone(),
        ..formats::thehive::Options::default()
    };
    let body = formats::thehive::render(ev, &opts);
    let mut rb = bearer(ep, client(ep).post(format!("{}/api/v1/alert", base(ep)))).json(&body);
    if let Some(org) = &ep.cfg.organisation {
        rb = rb.header("X-Organisation", org);
    }
    match exchange(rb) {
        Ok((status, _, answer)) if formats::thehive::is_duplicate_answer(status, &answer) => {
            tracing::info!(
                "deliver {}: TheHive already has the alert for {} (a duplicate sourceRef): delivered",
                ep.name(),
                ev.incident.id
            );
            Outcome::Delivered
        }
        Ok((status, retry, answer)) => judge(ep.cfg.kind, status, retry, &answer),
        Err(o) => o,
    }
}

/// DFIR-IRIS: look the reference up, create only when it is not there.
fn iris(ep: &Endpoint, ev: &Event) -> Outcome {
    if !ev.kind.is_opening() {
        return Outcome::Delivered;
    }
    let q = formats::iris::filter_query(&ev.incident.id, ep.cfg.customer_id);
    match exchange(bearer(
        ep,
        client(ep).get(format!("{}/alerts/filter?{q}", base(ep))),
    )) {
        Ok((200, _, answer)) => match formats::iris::parse_filter_total(&answer) {
            Ok(0) => {}
            Ok(_) => {
                tracing::info!(
                    "deliver {}: IRIS already has the alert for {}: delivered",
                    ep.name(),
                    ev.incident.id
                );
                return Outcome::Delivered;
            }
            Err(e) => {
                return Outcome::Retry {
                    after: None,
                    error: format!("the alerts filter answered what we cannot read: {e}"),
                }
            }
        },
        Ok((status, retry, answer)) => {
            return match judge(ep.cfg.kind, status, retry, &answer) {
                // A 2xx that is not 200 is not the documented answer.
                Outcome::Delivered => Outcome::Retry {
                    after: None,
                    error: format!("the alerts filter answered HTTP {status}"),
                },
                o => o,
            };
        }
        Err(o) => return o,
    }
    let opts = formats::iris::Options {
        customer_id: ep.cfg.customer_id,
        status_id: ep.cfg.status_id,
        ..formats::iris::Options::default()
    };
    let body = formats::iris::render(ev, &opts);
    match exchange(bearer(ep, client(ep).post(format!("{}/alerts/add", base(ep)))).json(&body)) {
        Ok((status @ 200..=299, _, answer)) => {
            let ok = serde_json::from_str::<serde_json::Value>(&answer)
                .ok()
                .is_some_and(|v| v["status"] == "success");
            if ok {
                Outcome::Delivered
            } else {
                Outcome::Retry {
                    after: None,
                    error: format!(
                        "HTTP {status} without status success: {}",
                        shown_answer(&answer)
                    ),
                }
            }
        }
        Ok((status, retry, answer)) => judge(ep.cfg.kind, status, retry, &answer),
        Err(o) => o,
    }
}

/// Email over SMTP (STARTTLS unless to loopback and configured off), a plain-text and an HTML
/// part, `Message-ID` from the message id.
fn email(ep: &Endpoint, ev: &Event) -> Outcome {
    let c = &ep.cfg;
    let r = formats::email::render(
        ev,
        &formats::email::Options {
            from: c.from.clone().unwrap_or_default(),
            to: c.to.clone(),
            subject_prefix: "[SignalFoundry]".into(),
            base_url: None,
        },
    );
    mail(ep, &ev.id, r)
}

/// Sends one rendered mail under `Message-ID` `<id@signalfoundry.invalid>`.
fn mail(ep: &Endpoint, id: &str, r: formats::email::Rendered) -> Outcome {
    use lettre::message::{header::ContentType, Mailbox, MultiPart, SinglePart};
    use lettre::transport::smtp::authentication::Credentials;
    use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
    use lettre::{SmtpTransport, Transport};

    let c = &ep.cfg;
    let host = c.smtp_host.clone().unwrap_or_default();
    let permanent = |error: String| Outcome::Permanent { error };
    let from: Mailbox = match c.from.as_deref().unwrap_or("").parse() {
        Ok(m) => m,
        Err(e) => return permanent(format!("from is not an address ({e})")),
    };
    let mut b = lettre::Message::builder()
        .from(from)
        .subject(r.subject)
        .message_id(Some(formats::email::message_id(
            id,
            "signalfoundry.invalid",
        )));
    for to in &c.to {
        match to.parse::<Mailbox>() {
            Ok(m) => b = b.to(m),
            Err(e) => return permanent(format!("to {to:?} is not an address ({e})")),
        }
    }
    let msg = match b.multipart(
        MultiPart::alternative()
            .singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_PLAIN)
                    .body(r.text),
            )
            .singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_HTML)
                    .body(r.html),
            ),
    ) {
        Ok(m) => m,
        Err(e) => return permanent(format!("cannot build the mail ({e})")),
    };
    let tls = if c.starttls {
        let mut p = TlsParameters::builder(host.clone());
        if let Some(pem) = &ep.ca_pem {
            match Certificate::from_pem(pem) {
                Ok(cert) => p = p.add_root_certificate(cert),
                Err(e) => return permanent(format!("ca_file: {e}")),
            }
        }
        match p.build_rustls() {
            Ok(p) => Tls::Required(p),
            Err(e) => return permanent(format!("TLS parameters: {e}")),
        }
    } else {
        Tls::None
    };
    let mut t = SmtpTransport::builder_dangerous(host)
        .port(c.smtp_port)
        .tls(tls)
        .timeout(Some(c.timeout));
    if let (Some(user), Some(pw)) = (&c.username, &ep.password) {
        t = t.credentials(Credentials::new(user.clone(), pw.expose().to_string()));
    }
    match t.build().send(&msg) {
        Ok(_) => Outcome::Delivered,
        Err(e) if e.is_permanent() => permanent(format!("the mail server refused it: {e}")),
        Err(e) => Outcome::Retry {
            after: None,
            error: format!("SMTP: {e}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_judged_as_the_vendors_document() {
        let k = NotifyKind::Webhook;
        assert_eq!(judge(k, 204, None, ""), Outcome::Delivered);
        assert!(
            matches!(judge(k, 429, Some(Duration::from_secs(3)), ""), Outcome::Retry { after: Some(d), .. } if d == Duration::from_secs(3))
        );
        assert!(matches!(judge(k, 503, None, ""), Outcome::Retry { .. }));
        assert!(matches!(judge(k, 408, None, ""), Outcome::Retry { .. }));
        assert!(
            matches!(judge(k, 400, None, "invalid_payload"), Outcome::Permanent { error } if error.contains("invalid_payload"))
        );
        assert!(
            matches!(judge(k, 410, None, ""), Outcome::Permanent { error } if error.contains("gone"))
        );
        assert!(
            matches!(judge(k, 302, None, ""), Outcome::Permanent { error } if error.contains("redirect"))
        );
    }

    #[test]
    fn an_answer_is_cut_and_escaped() {
        let long = format!("\u{1b}[31m{}", "x".repeat(1000));
        let s = shown_answer(&long);
        assert!(!s.contains('\u{1b}'));
        assert!(s.chars().count() < 260);
    }

    #[test]
    fn opening_messages_are_the_case_tools_only_ones() {
        use crate::stages::deliver::event::MessageType;
        assert!(MessageType::Opened.is_opening() && MessageType::Escalated.is_opening());
        assert!(!MessageType::Updated.is_opening());
    }
}
