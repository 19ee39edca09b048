//! Slack incoming webhooks: a Block Kit message (`{"text": fallback, "blocks": [...]}`).
//!
//! Design constraints:
//! - Sources (research §2.1): a header block's `plain_text` is at most 150 characters, a
//!   section's `text` 3000, its `fields` at most 10 of 2000 each, at most 50 blocks; `text` is
//!   the notification's fallback when `blocks` is present. Slack's "escaping text" rule: `&`,
//!   `<` and `>` are written `&amp;`, `&lt;`, `&gt;` (which is what kills `<url|text>` links
//!   and `<!channel>`-style mentions).
//! - Alert text only ever goes into `plain_text` objects (`emoji: false`), which Slack does not
//!   format: no mrkdwn bold, italics, code or links can come from it, and it is also
//!   entity-escaped and (as everywhere, see [`super`]) [`super::inert`]: control-escaped,
//!   defanged, no Markdown link syntax left for a client that would read it.
//! - The fallback `text` is read as mrkdwn by Slack, and mrkdwn has no backslash escape: there
//!   `*`, `_`, `~` and the backtick become look-alikes (`∗`, `＿`, `∼`, `ˋ`) and `@` becomes
//!   `＠`, so no formatting and no `@channel` can form.
//! - The only link is the console button ([`super::console_url`]), when a base URL is set.

use serde_json::{json, Value};

use super::{
    console_url, escape_within, facts, headline, kind_words, more, neutralise, observable_rows,
    plain, summary_lines, Budget,
};
use crate::stages::deliver::event::Event;

pub const HEADER_MAX: usize = 150;
pub const SECTION_TEXT_MAX: usize = 3_000;
pub const FIELDS_MAX: usize = 10;
pub const FIELD_TEXT_MAX: usize = 2_000;
pub const BLOCKS_MAX: usize = 50;
/// The fallback is a notification line; Slack allows far more.
pub const FALLBACK_MAX: usize = 300;
/// A context element's text.
pub const CONTEXT_TEXT_MAX: usize = 2_000;

/// A Slack route's options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// The console's base URL, for an "Open incident" button.
    pub base_url: Option<String>,
}

/// Slack's escaping of `&`, `<` and `>`.
pub fn entity(c: char, out: &mut String) {
    match c {
        '&' => out.push_str("&amp;"),
        '<' => out.push_str("&lt;"),
        '>' => out.push_str("&gt;"),
        c => out.push(c),
    }
}

/// [`entity`], and for mrkdwn: formatting characters and `@` as look-alikes.
pub fn mrkdwn(c: char, out: &mut String) {
    match c {
        '*' => out.push('∗'),
        '_' => out.push('＿'),
        '~' => out.push('∼'),
        '`' => out.push('ˋ'),
        '@' => out.push('＠'),
        c => entity(c, out),
    }
}

fn plain_text(text: String) -> Value {
    json!({ "type": "plain_text", "text": text, "emoji": false })
}

/// The message to POST to the webhook URL.
pub fn render(event: &Event, opts: &Options) -> Value {
    let budget = Budget::full();
    let head = headline(event, 1_000);
    let mut blocks = vec![json!({
        "type": "header",
        "text": plain_text(escape_within(&head, HEADER_MAX, entity)),
    })];

    let (lines, omitted) = summary_lines(event, budget);
    let mut summary: Vec<String> = lines.iter().map(|l| neutralise(l)).collect();
    summary.extend(more(omitted, "lines"));
    if !summary.is_empty() {
        blocks.push(json!({
            "type": "section",
            "text": plain_text(escape_within(&summary.join("\n"), SECTION_TEXT_MAX, entity)),
        }));
    }

    let fields: Vec<Value> = facts(event, budget)
        .into_iter()
        .take(FIELDS_MAX)
        .map(|f| {
            let text = format!("{}: {}", f.label, f.value);
            plain_text(escape_within(&text, FIELD_TEXT_MAX, entity))
        })
        .collect();
    blocks.push(json!({ "type": "section", "fields": fields }));

    let (rows, omitted) = observable_rows(event, budget);
    if !rows.is_empty() {
        let mut text: Vec<String> = std::iter::once("Observables (defanged):".to_string())
            .chain(
                rows.iter()
                    .map(|[k, v, f]| neutralise(&format!("{k}: {v} (from {f})"))),
            )
            .collect();
        text.extend(more(omitted, "observables"));
        blocks.push(json!({
            "type": "section",
            "text": plain_text(escape_within(&text.join("\n"), SECTION_TEXT_MAX, entity)),
        }));
    }

    let mut context = vec![plain_text(escape_within(
        &format!(
            "SignalFoundry · {} · route {} · message {}",
            kind_words(event.kind),
            plain(&event.route, 200),
            plain(&event.id, 200),
        ),
        CONTEXT_TEXT_MAX,
        entity,
    ))];
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
        context.push(plain_text(escape_within(
            &format!("Files: {}", packs.join(", ")),
            CONTEXT_TEXT_MAX,
            entity,
        )));
    }
    blocks.push(json!({ "type": "context", "elements": context }));

    if let Some(url) = console_url(opts.base_url.as_deref(), &event.incident.id) {
        blocks.push(json!({
            "type": "actions",
            "elements": [{
                "type": "button",
                "text": plain_text("Open incident".to_string()),
                "url": url,
            }],
        }));
    }
    blocks.truncate(BLOCKS_MAX);

    json!({
        "text": escape_within(&head, FALLBACK_MAX, mrkdwn),
        "blocks": blocks,
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::units;
    use super::*;

    fn text_objects(v: &Value) -> Vec<&Value> {
        let mut out = Vec::new();
        fn walk<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
            match v {
                Value::Object(o) => {
                    if o.contains_key("type") && o.contains_key("text") && o["text"].is_string() {
                        out.push(v);
                    }
                    o.values().for_each(|x| walk(x, out));
                }
                Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
                _ => {}
            }
        }
        walk(v, &mut out);
        out
    }

    #[test]
    fn message_has_the_block_kit_shape() {
        let v = render(&event(), &Options::default());
        assert!(v["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("HIGH · New incident")));
        let blocks = v["blocks"].as_array().expect("blocks");
        assert_eq!(blocks[0]["type"], "header");
        assert_eq!(blocks[0]["text"]["type"], "plain_text");
        let fields = blocks
            .iter()
            .find_map(|b| b["fields"].as_array())
            .expect("a section with fields");
        assert!(!fields.is_empty() && fields.len() <= FIELDS_MAX);
        assert!(fields.iter().any(|f| f["text"] == "Hosts: web01"));
        assert!(blocks.iter().any(|b| b["type"] == "context"));
        for t in text_objects(&v) {
            assert_eq!(t["type"], "plain_text", "{t}");
            assert!(!t["text"].as_str().unwrap_or("").is_empty());
        }
        assert!(!blocks.iter().any(|b| b["type"] == "actions"));
    }

    #[test]
    fn a_console_base_url_adds_one_button_and_nothing_else_links() {
        let opts = Options {
            base_url: Some("https://soc.example".to_string()),
        };
        let v = render(&event(), &opts);
        let blocks = v["blocks"].as_array().expect("blocks");
        let actions = blocks
            .iter()
            .find(|b| b["type"] == "actions")
            .expect("actions");
        assert_eq!(
            actions["elements"][0]["url"],
            "https://soc.example/incidents/INC-0123456789abcdef0123"
        );
    }

    #[test]
    fn limits_hold_for_a_huge_event() {
        let v = render(&huge_event(), &Options::default());
        let blocks = v["blocks"].as_array().expect("blocks");
        assert!(blocks.len() <= BLOCKS_MAX);
        assert!(units(blocks[0]["text"]["text"].as_str().expect("header")) <= HEADER_MAX);
        assert!(units(v["text"].as_str().expect("fallback")) <= FALLBACK_MAX);
        for b in blocks {
            if let Some(t) = b["text"]["text"].as_str() {
                assert!(units(t) <= SECTION_TEXT_MAX, "{}", units(t));
            }
            if let Some(fields) = b["fields"].as_array() {
                assert!(fields.len() <= FIELDS_MAX);
                for f in fields {
                    assert!(units(f["text"].as_str().expect("field")) <= FIELD_TEXT_MAX);
                }
            }
            if let Some(els) = b["elements"].as_array() {
                assert!(els.len() <= 10);
            }
        }
        let section = blocks[1]["text"]["text"].as_str().expect("summary");
        assert!(section.ends_with('…'), "a cut text says so");
        assert!(serde_json::to_vec(&v).expect("json").len() < 40_000);
    }

    #[test]
    fn hostile_text_renders_no_link_mention_tag_or_control_character() {
        let v = render(&hostile_event(), &Options::default());
        for s in strings(&v) {
            assert_no_live_text(s);
        }
        let fallback = v["text"].as_str().expect("fallback");
        for bad in ['*', '_', '~', '`', '@'] {
            assert!(!fallback.contains(bad), "{bad:?} in {fallback}");
        }
        let header = v["blocks"][0]["text"]["text"].as_str().expect("header");
        assert!(
            header.contains("‹!channel›") || header.contains("&lt;!channel"),
            "{header}"
        );
        let all = serde_json::to_string(&v).expect("json");
        assert!(
            all.contains("\\\\u{1b}[31m"),
            "escaped controls are shown: {all}"
        );
    }
}
