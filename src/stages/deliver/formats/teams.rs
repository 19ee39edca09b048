//! Microsoft Teams through a Workflows ("Send webhook alerts to a channel") webhook: one
//! Adaptive Card 1.4 in a `message` envelope.
//!
//! Design constraints:
//! - Sources (research §2.2): O365 connectors are retired and MessageCard is not accepted; the
//!   envelope is `{"type":"message","attachments":[{"contentType":
//!   "application/vnd.microsoft.card.adaptive","contentUrl":null,"content":{card}}]}`;
//!   messages over 28 KB are refused (HTTP 413), so the body is kept under
//!   [`BODY_MAX_BYTES`] = 27 KB (as elementary-data does), shrinking through
//!   [`Budget::LEVELS`].
//! - `TextBlock.text`, `Fact.title` and `Fact.value` are read as a Markdown subset (bold,
//!   italics, lists, links; learn.microsoft.com "Format cards in Teams"). Alert text is
//!   escaped with [`md`]: the Markdown punctuation backslash-escaped (CommonMark), `&<>` as
//!   entities (Teams reads entities: no tag, `<at>` mention or entity can form), and a line
//!   that would start a list (`-`, `+`, `1.`) escaped; line breaks are ours (`\n\n`). It is
//!   also [`super::inert`] as everywhere (control characters escaped, IOCs defanged, no `<>`
//!   or `](`), so even a renderer that ignored backslash escapes would find no URL to link.
//! - The only link is the `Action.OpenUrl` to the console ([`super::console_url`]).

use serde_json::{json, Value};

use super::{
    console_url, escape_within, facts, headline, kind_words, more, neutralise, observable_rows,
    plain, summary_lines, Budget,
};
use crate::stages::deliver::event::Event;

/// Below Teams' 28 KB limit, with room for the envelope Power Automate adds.
pub const BODY_MAX_BYTES: usize = 27 * 1024;
/// The most characters of one text block or fact value.
pub const TEXT_MAX: usize = 6_000;

/// A Teams route's options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// The console's base URL, for an "Open incident" action.
    pub base_url: Option<String>,
}

/// One character of alert text for a Teams Markdown text.
pub fn md(c: char, out: &mut String) {
    match c {
        '&' => out.push_str("&amp;"),
        '<' => out.push_str("&lt;"),
        '>' => out.push_str("&gt;"),
        '\\' | '*' | '_' | '[' | ']' | '(' | ')' | '~' | '`' | '!' | '#' | '|' | '{' | '}' => {
            out.push('\\');
            out.push(c);
        }
        c => out.push(c),
    }
}

/// One line of (already plain) text escaped with [`md`] into at most `max` units, a leading
/// list or setext marker escaped too.
pub fn md_line(text: &str, max: usize) -> String {
    let mut s = escape_within(text, max.saturating_sub(1), md);
    if s.starts_with(['-', '+', '=']) {
        s.insert(0, '\\');
    } else {
        let digits = s.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 && s[digits..].starts_with(['.', ')']) {
            s.insert(digits, '\\');
        }
    }
    s
}

fn text_block(text: String) -> Value {
    json!({ "type": "TextBlock", "text": text, "wrap": true })
}

/// The body to POST to the Workflows URL, under [`BODY_MAX_BYTES`].
pub fn render(event: &Event, opts: &Options) -> Value {
    let mut body = Value::Null;
    for budget in Budget::LEVELS {
        body = card(event, opts, budget);
        let size = serde_json::to_vec(&body).map_or(usize::MAX, |b| b.len());
        if size < BODY_MAX_BYTES {
            break;
        }
    }
    body
}

fn card(event: &Event, opts: &Options, budget: Budget) -> Value {
    let max = TEXT_MAX.min(budget.summary_chars.max(budget.value_chars * 2));
    let mut head = text_block(md_line(&headline(event, max), max));
    head["size"] = json!("Medium");
    head["weight"] = json!("Bolder");
    let mut items = vec![head];

    let (lines, omitted) = summary_lines(event, budget);
    let mut summary: Vec<String> = lines.iter().map(|l| md_line(&neutralise(l), max)).collect();
    summary.extend(more(omitted, "lines"));
    if !summary.is_empty() {
        items.push(text_block(summary.join("\n\n")));
    }

    let facts: Vec<Value> = facts(event, budget)
        .into_iter()
        .map(|f| json!({ "title": f.label, "value": md_line(&f.value, max) }))
        .collect();
    items.push(json!({ "type": "FactSet", "facts": facts }));

    let (rows, omitted) = observable_rows(event, budget);
    if !rows.is_empty() {
        let mut text: Vec<String> = std::iter::once("Observables (defanged):".to_string())
            .chain(
                rows.iter()
                    .map(|[k, v, f]| md_line(&neutralise(&format!("{k}: {v} (from {f})")), max)),
            )
            .collect();
        text.extend(more(omitted, "observables"));
        items.push(text_block(text.join("\n\n")));
    }

    let mut context = format!(
        "SignalFoundry · {} · route {} · message {}",
        kind_words(event.kind),
        plain(&event.route, 200),
        plain(&event.id, 200)
    );
    if !event.packs.is_empty() {
        let mut packs: Vec<String> = event
            .packs
            .iter()
            .take(budget.items)
            .map(|p| neutralise(&plain(p, budget.value_chars)))
            .collect();
        packs.extend(more(
            event.packs.len().saturating_sub(budget.items),
            "files",
        ));
        context.push_str(&format!(" · files: {}", packs.join(", ")));
    }
    let mut ctx = text_block(md_line(&context, max));
    ctx["isSubtle"] = json!(true);
    ctx["size"] = json!("Small");
    items.push(ctx);

    let mut content = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "msteams": { "width": "Full" },
        "body": items,
    });
    if let Some(url) = console_url(opts.base_url.as_deref(), &event.incident.id) {
        content["actions"] =
            json!([{ "type": "Action.OpenUrl", "title": "Open incident", "url": url }]);
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": content,
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    /// Every Markdown-read text of the card: text blocks' texts and facts' titles and values.
    fn markdown_texts(v: &Value) -> Vec<String> {
        let body = v["attachments"][0]["content"]["body"]
            .as_array()
            .expect("a card body");
        let mut out = Vec::new();
        for item in body {
            if let Some(t) = item["text"].as_str() {
                out.push(t.to_string());
            }
            for f in item["facts"].as_array().into_iter().flatten() {
                out.push(f["title"].as_str().expect("title").to_string());
                out.push(f["value"].as_str().expect("value").to_string());
            }
        }
        out
    }

    #[test]
    fn message_is_an_adaptive_card_in_a_workflows_envelope() {
        let v = render(&event(), &Options::default());
        assert_eq!(v["type"], "message");
        let a = &v["attachments"][0];
        assert_eq!(a["contentType"], "application/vnd.microsoft.card.adaptive");
        assert!(a["contentUrl"].is_null());
        let c = &a["content"];
        assert_eq!(c["type"], "AdaptiveCard");
        assert_eq!(c["version"], "1.4");
        assert_eq!(
            c["$schema"],
            "http://adaptivecards.io/schemas/adaptive-card.json"
        );
        let body = c["body"].as_array().expect("body");
        assert_eq!(body[0]["type"], "TextBlock");
        let facts = body
            .iter()
            .find(|b| b["type"] == "FactSet")
            .and_then(|b| b["facts"].as_array())
            .expect("a fact set");
        assert!(facts
            .iter()
            .all(|f| f["title"].is_string() && f["value"].is_string()));
        assert!(facts
            .iter()
            .any(|f| f["title"] == "Hosts" && f["value"] == "web01"));
        assert!(c.get("actions").is_none());
        let with = render(
            &event(),
            &Options {
                base_url: Some("https://soc.example".into()),
            },
        );
        assert_eq!(
            with["attachments"][0]["content"]["actions"][0]["url"],
            "https://soc.example/incidents/INC-0123456789abcdef0123"
        );
    }

    #[test]
    fn body_stays_under_27_kb_for_a_huge_event() {
        let v = render(&huge_event(), &Options::default());
        let n = serde_json::to_vec(&v).expect("json").len();
        assert!(n < BODY_MAX_BYTES, "{n}");
        assert!(markdown_texts(&v).iter().any(|t| t.contains('…')));
    }

    #[test]
    fn hostile_text_renders_no_link_image_tag_formatting_or_control_character() {
        let v = render(&hostile_event(), &Options::default());
        for t in markdown_texts(&v) {
            assert_markdown_unformatted(&t);
            assert_no_live_text(&t);
        }
    }

    #[test]
    fn md_line_escapes_list_markers_only_at_the_start() {
        assert_eq!(md_line("- a-b", 100), "\\- a-b");
        assert_eq!(md_line("12. x 3.4", 100), "12\\. x 3.4");
        assert_eq!(md_line("a_b", 100), "a\\_b");
    }
}
