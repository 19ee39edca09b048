//! E-mail: the subject and the text and HTML parts of one notification (the sender builds the
//! message with `lettre`, research §2.4, and sets its `Message-ID` from [`message_id`]).
//!
//! Design constraints:
//! - The subject is one line (no CR or LF: control characters are escaped), at most
//!   [`SUBJECT_MAX`] characters, [`super::inert`].
//! - The text part is plain text of inert values (see [`super`]): mail clients link URLs and
//!   addresses they find in plain text, and defanging leaves them none.
//! - The HTML part has a fixed set of tags, all this module's; every alert-derived string is
//!   HTML-escaped (`& < > " '`) after its control characters are escaped and its IOCs
//!   defanged, so no tag, attribute, `<a>` or `<img>` can come from an alert. The only `<a>` is
//!   the configured console link ([`super::console_url`]).
//! - [`message_id`] is derived from the message id (stable across retries, so a re-sent mail
//!   is recognisably the same).

use super::{
    console_url, facts, headline, inert, kind_words, more, neutralise, observable_rows, plain,
    summary_lines, Budget,
};
use crate::stages::deliver::event::Event;

pub const SUBJECT_MAX: usize = 200;

/// An e-mail route's options. `from` and `to` are the envelope, which the sender uses; the
/// renderer uses the prefix and the console link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub from: String,
    pub to: Vec<String>,
    /// Put before the headline in the subject (`[SignalFoundry]`).
    pub subject_prefix: String,
    /// The console's base URL, for a link to the incident.
    pub base_url: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            from: String::new(),
            to: Vec::new(),
            subject_prefix: "[SignalFoundry]".to_string(),
            base_url: None,
        }
    }
}

/// One notification's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// `<event-id@domain>`: the id and domain reduced to the characters a `Message-ID` allows
/// (`[A-Za-z0-9._-]`, others as `_`; a domain of `[A-Za-z0-9.-]`, `signalfoundry.invalid` when
/// nothing is left).
pub fn message_id(event_id: &str, domain: &str) -> String {
    format!("<{}@{}>", id_part(event_id), domain_part(domain))
}

fn id_part(s: &str) -> String {
    let s: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let s = s.trim_matches('.').to_string();
    if s.is_empty() {
        "message".to_string()
    } else {
        s
    }
}

fn domain_part(s: &str) -> String {
    let d: String = s
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || ".-".contains(*c))
        .collect::<String>()
        .trim_matches('.')
        .to_ascii_lowercase();
    if d.is_empty() {
        "signalfoundry.invalid".to_string()
    } else {
        d
    }
}

/// HTML-escapes `& < > " '`.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The subject and both parts.
pub fn render(event: &Event, opts: &Options) -> Rendered {
    let budget = Budget::full();
    let prefix = inert(&opts.subject_prefix, 50);
    let head = headline(event, 1_000);
    let subject = super::clip(
        &if prefix.is_empty() {
            head.clone()
        } else {
            format!("{prefix} {head}")
        },
        SUBJECT_MAX,
    );
    let facts = facts(event, budget);
    let (lines, lines_left) = summary_lines(event, budget);
    let (rows, rows_left) = observable_rows(event, budget);
    let packs: Vec<String> = event
        .packs
        .iter()
        .take(budget.items)
        .map(|p| plain(p, budget.value_chars))
        .collect();
    let packs_left = event.packs.len().saturating_sub(budget.items);
    let url = console_url(opts.base_url.as_deref(), &event.incident.id);
    let footer = format!(
        "SignalFoundry message {} ({}, route {}). Alert text is shown with control characters \
         escaped and URLs, domains, IPs and e-mail addresses defanged (hxxp://, [.], [@]).",
        plain(&event.id, 200),
        event.kind.as_str(),
        inert(&event.route, 200),
    );

    // The text part.
    let mut text = format!("{head}\n\n");
    for f in &facts {
        text.push_str(&format!("{}: {}\n", f.label, f.value));
    }
    if !lines.is_empty() {
        text.push_str("\nSummary:\n");
        for l in &lines {
            text.push_str(&format!("  {}\n", neutralise(l)));
        }
        if let Some(m) = more(lines_left, "lines") {
            text.push_str(&format!("  {m}\n"));
        }
    }
    if !rows.is_empty() {
        text.push_str("\nObservables (defanged):\n");
        for [k, v, f] in &rows {
            text.push_str(&format!(
                "  {k}: {} (from {})\n",
                neutralise(v),
                neutralise(f)
            ));
        }
        if let Some(m) = more(rows_left, "observables") {
            text.push_str(&format!("  {m}\n"));
        }
    }
    if !packs.is_empty() {
        text.push_str("\nFiles (below the SignalFoundry state directory):\n");
        for p in &packs {
            text.push_str(&format!("  {}\n", neutralise(p)));
        }
        if let Some(m) = more(packs_left, "files") {
            text.push_str(&format!("  {m}\n"));
        }
    }
    if let Some(u) = &url {
        text.push_str(&format!("\nOpen in the console: {u}\n"));
    }
    text.push_str(&format!("\n-- \n{footer}\n"));

    // The HTML part.
    let e = html_escape;
    let mut html = String::with_capacity(text.len() * 2);
    html.push_str(&format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{}</title></head>\n\
         <body style=\"font-family: sans-serif\">\n<h2>{}</h2>\n<p>{}</p>\n<table>\n",
        e(&subject),
        e(&head),
        e(kind_words(event.kind)),
    ));
    for f in &facts {
        html.push_str(&format!(
            "<tr><th align=\"left\">{}</th><td>{}</td></tr>\n",
            e(f.label),
            e(&f.value)
        ));
    }
    html.push_str("</table>\n");
    if !lines.is_empty() {
        let mut body: Vec<String> = lines.iter().map(|l| e(&neutralise(l))).collect();
        body.extend(more(lines_left, "lines"));
        html.push_str(&format!(
            "<h3>Summary</h3>\n<pre style=\"white-space: pre-wrap\">{}</pre>\n",
            body.join("\n")
        ));
    }
    if !rows.is_empty() {
        html.push_str("<h3>Observables (defanged)</h3>\n<table>\n");
        for [k, v, f] in &rows {
            html.push_str(&format!(
                "<tr><td>{}</td><td><code>{}</code></td><td>{}</td></tr>\n",
                e(k),
                e(&neutralise(v)),
                e(&neutralise(f))
            ));
        }
        html.push_str("</table>\n");
        if let Some(m) = more(rows_left, "observables") {
            html.push_str(&format!("<p>{}</p>\n", e(&m)));
        }
    }
    if !packs.is_empty() {
        html.push_str("<h3>Files (below the SignalFoundry state directory)</h3>\n<ul>\n");
        for p in &packs {
            html.push_str(&format!("<li><code>{}</code></li>\n", e(&neutralise(p))));
        }
        if let Some(m) = more(packs_left, "files") {
            html.push_str(&format!("<li>{}</li>\n", e(&m)));
        }
        html.push_str("</ul>\n");
    }
    if let Some(u) = &url {
        html.push_str(&format!(
            "<p><a href=\"{}\">Open in the SignalFoundry console</a></p>\n",
            e(u)
        ));
    }
    html.push_str(&format!(
        "<p style=\"color: #666; font-size: small\">{}</p>\n</body></html>\n",
        e(&footer)
    ));
    Rendered {
        subject,
        text,
        html,
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::units;
    use super::*;

    const TAGS: &[&str] = &[
        "!DOCTYPE", "html", "head", "meta", "title", "body", "h2", "h3", "p", "table", "tr", "th",
        "td", "pre", "code", "ul", "li", "a",
    ];

    /// The tag names in `html`, in order.
    fn tags(html: &str) -> Vec<String> {
        html.split('<')
            .skip(1)
            .map(|rest| {
                rest.trim_start_matches('/')
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '!')
                    .collect::<String>()
                    .replace("!doctype", "!DOCTYPE")
            })
            .collect()
    }

    #[test]
    fn message_has_a_subject_a_text_part_and_an_html_part() {
        let r = render(&event(), &Options::default());
        assert_eq!(
            r.subject,
            "[SignalFoundry] HIGH · New incident: sshd: authentication failed on web01 (2 alerts)"
        );
        assert!(r.text.contains("Incident: INC-0123456789abcdef0123\n"));
        assert!(r.text.contains("Hosts: web01\n"));
        assert!(r.text.contains("  ip: 10[.]0[.]0[.]5 (from data.srcip)\n"));
        assert!(r.html.starts_with("<!DOCTYPE html>"));
        assert!(r
            .html
            .contains("<tr><th align=\"left\">Hosts</th><td>web01</td></tr>"));
        assert!(tags(&r.html).iter().all(|t| TAGS.contains(&t.as_str())));
        assert!(!r.html.contains("<a "));
        let linked = render(
            &event(),
            &Options {
                base_url: Some("https://soc.example".into()),
                ..Options::default()
            },
        );
        assert!(linked
            .html
            .contains("<a href=\"https://soc.example/incidents/INC-0123456789abcdef0123\">"));
        assert_eq!(linked.html.matches("<a ").count(), 1);
    }

    #[test]
    fn message_id_is_the_event_id_at_the_domain_and_nothing_else() {
        assert_eq!(
            message_id("msg_0123", "Mail.Example.org"),
            "<msg_0123@mail.example.org>"
        );
        assert_eq!(message_id("a b<c>", "x\r\n>Bcc: y"), "<a_b_c_@xbccy>");
        assert_eq!(message_id("", ""), "<message@signalfoundry.invalid>");
    }

    #[test]
    fn limits_hold_for_a_huge_event() {
        let r = render(&huge_event(), &Options::default());
        assert!(units(&r.subject) <= SUBJECT_MAX);
        assert!(!r.subject.contains(['\r', '\n']));
        assert!(r.text.len() < 100_000, "{}", r.text.len());
        assert!(r.html.len() < 150_000, "{}", r.html.len());
        assert!(r.text.contains("more observables"));
    }

    #[test]
    fn hostile_text_renders_no_tag_link_image_or_control_character() {
        let r = render(&hostile_event(), &Options::default());
        assert!(!r.subject.contains(['\r', '\n']));
        assert_plain_inert(&r.subject);
        assert_plain_inert(&r.text);
        assert_no_controls(&r.html);
        let html_tags = tags(&r.html);
        assert!(
            html_tags
                .iter()
                .all(|t| TAGS.contains(&t.as_str()) && t != "a"),
            "{html_tags:?}"
        );
        for bad in [
            "http://evil",
            "evil.example",
            "<script",
            "<img",
            "<b>",
            "<!channel",
        ] {
            assert!(!r.html.contains(bad), "{bad:?}");
        }
        assert!(r.html.contains("&lt;script&gt;") || r.html.contains("‹script›"));
    }
}
