//! `incident.digest`: the held messages of a route in one request, for the notification kinds
//! (webhook, Slack, Teams, email). One line per message: what happened, the title (inert), the
//! incident id; at most [`LISTED`] lines, then how many more.

use serde_json::{json, Value};

use super::email::{html_escape, Rendered};
use super::slack::entity;
use super::teams::md_line;
use super::{escape_strings, escape_within, inert, kind_words, more, rfc3339};
use crate::stages::deliver::event::{Digest, DIGEST_TYPE};

/// Lines a digest lists; the rest are counted.
pub const LISTED: usize = 40;
/// Characters of one line's title.
const TITLE_MAX: usize = 200;

/// `<what> <title> (<incident>)` per message, inert, and the count of the rest.
pub fn lines(d: &Digest) -> (Vec<String>, Option<String>) {
    let shown: Vec<String> = d
        .messages
        .iter()
        .take(LISTED)
        .map(|m| {
            format!(
                "{}: {} ({})",
                kind_words(m.kind),
                inert(&m.title, TITLE_MAX),
                inert(&m.incident, 64)
            )
        })
        .collect();
    (
        shown,
        more(d.messages.len().saturating_sub(LISTED), "messages"),
    )
}

fn heading(d: &Digest) -> String {
    format!(
        "SignalFoundry: {} held message(s) on route {} (max_per_hour reached)",
        d.messages.len(),
        inert(&d.route, 64)
    )
}

/// The generic webhook's body: `type` = `incident.digest`, every message's id, type and
/// incident (a receiver deduplicating on message ids can account for each).
pub fn webhook(d: &Digest) -> Vec<u8> {
    let messages: Vec<Value> = d
        .messages
        .iter()
        .map(|m| {
            json!({
                "id": m.id,
                "type": m.kind.as_str(),
                "incident": m.incident,
                "title": inert(&m.title, TITLE_MAX),
            })
        })
        .collect();
    let mut body = json!({
        "type": DIGEST_TYPE,
        "id": d.id,
        "timestamp": rfc3339(d.created_at),
        "route": d.route,
        "summary": heading(d),
        "messages": messages,
    });
    escape_strings(&mut body);
    serde_json::to_vec(&body).unwrap_or_default()
}

/// Slack: a header and the lines as plain text.
pub fn slack(d: &Digest) -> Value {
    let (mut ls, rest) = lines(d);
    ls.extend(rest);
    json!({
        "text": escape_within(&heading(d), 300, entity),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": escape_within(&heading(d), 150, entity), "emoji": false}},
            {"type": "section", "text": {"type": "plain_text", "text": escape_within(&ls.join("\n"), 3_000, entity), "emoji": false}},
        ]
    })
}

/// Teams: an Adaptive Card with one text block per line.
pub fn teams(d: &Digest) -> Value {
    let (mut ls, rest) = lines(d);
    ls.extend(rest);
    let mut body = vec![
        json!({"type": "TextBlock", "text": md_line(&heading(d), 500), "wrap": true, "weight": "Bolder"}),
    ];
    body.extend(
        ls.iter()
            .map(|l| json!({"type": "TextBlock", "text": md_line(l, 500), "wrap": true})),
    );
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": body,
            }
        }]
    })
}

/// Email: the subject, the lines as text, and the same lines HTML-escaped.
pub fn email(d: &Digest) -> Rendered {
    let (mut ls, rest) = lines(d);
    ls.extend(rest);
    let head = heading(d);
    let mut text = format!("{head}\n\n");
    let mut html = format!("<html><body><h3>{}</h3><ul>", html_escape(&head));
    for l in &ls {
        text.push_str(&format!("- {l}\n"));
        html.push_str(&format!("<li>{}</li>", html_escape(l)));
    }
    html.push_str("</ul></body></html>");
    Rendered {
        subject: super::clip(
            &format!("[SignalFoundry] {head}"),
            super::email::SUBJECT_MAX,
        ),
        text,
        html,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stages::deliver::event::{DigestItem, MessageType};

    fn digest(n: usize, title: &str) -> Digest {
        Digest {
            id: "dig_x".into(),
            route: "soc".into(),
            created_at: chrono::Utc::now(),
            messages: (0..n)
                .map(|i| DigestItem {
                    id: format!("msg_{i}"),
                    kind: MessageType::Opened,
                    incident: format!("INC-{i}"),
                    title: title.into(),
                })
                .collect(),
        }
    }

    #[test]
    fn a_digest_lists_each_message_and_counts_the_rest() {
        let d = digest(LISTED + 5, "sshd brute force");
        let v: Value = serde_json::from_slice(&webhook(&d)).unwrap();
        assert_eq!(v["type"], DIGEST_TYPE);
        assert_eq!(v["messages"].as_array().unwrap().len(), LISTED + 5);
        let (ls, rest) = lines(&d);
        assert_eq!(ls.len(), LISTED);
        assert!(rest.unwrap().contains('5'));
    }

    #[test]
    fn hostile_titles_stay_inert_in_every_digest() {
        let d = digest(2, "<http://evil.example|click> <!channel> <script>x</script> [a](http://e) \u{1b}[31m\u{202e}");
        let s = slack(&d).to_string();
        assert!(!s.contains("<http") && !s.contains("<!channel"), "{s}");
        let t = teams(&d).to_string();
        assert!(!t.contains("](http"), "{t}");
        let e = email(&d);
        assert!(
            !e.html.contains("<script") && !e.html.contains("<http"),
            "{}",
            e.html
        );
        for out in [
            s,
            t,
            e.text.clone(),
            String::from_utf8(webhook(&d)).unwrap(),
        ] {
            assert!(
                !out.contains('\u{1b}') && !out.contains('\u{202e}'),
                "{out}"
            );
        }
    }
}
