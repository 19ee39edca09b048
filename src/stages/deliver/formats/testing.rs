//! Test events for the formats (a plain one, a hostile one, a huge one) and the checks every
//! format's tests share: no control character, no live link, no HTML, no Markdown link.

use chrono::{DateTime, TimeZone, Utc};
use pulldown_cmark::{Event as Md, Options, Parser, Tag};
use serde_json::Value;
use sf_policy::{Bucket, KeyField};

use crate::stages::deliver::event::{Event, MessageType};
use crate::stages::escalate::markdown::must_escape;
use crate::stages::escalate::observables::{Observable, ObservableKind};
use crate::stages::incidents::view::{CaseList, IncidentView, MemberCounts, Status, Window};

/// Everything the brief calls hostile, in one line.
pub const HOSTILE: &str = "<http://evil.example|click here> <!channel> @channel \
     <script>alert(1)</script> ![x](http://evil/img.png) [link](http://evil) \u{1b}[31m \u{202e}";

pub fn t(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_714_564_800 + secs, 0)
        .single()
        .expect("a valid test time")
}

pub fn obs(kind: ObservableKind, value: &str, field: &str) -> Observable {
    Observable {
        kind,
        value: value.to_string(),
        field: field.to_string(),
        role: Default::default(),
        note: None,
        raw: None,
    }
}

/// An ordinary opening message of a high incident with two members on one host.
pub fn event() -> Event {
    let incident = IncidentView {
        id: "INC-0123456789abcdef0123".to_string(),
        group: "ssh-bruteforce".to_string(),
        key: vec![KeyField {
            field: "data.srcip".to_string(),
            value: Some("10.0.0.5".to_string()),
        }],
        window: Window {
            start: t(0),
            end: t(3_600),
            secs: 3_600,
        },
        continues: None,
        first_alert_time: Some(t(60)),
        last_alert_time: Some(t(120)),
        bucket: Some(Bucket::High),
        highest_level: Some(12),
        critical: false,
        members: MemberCounts {
            total: 2,
            suppressed: 0,
            low: 0,
            medium: 1,
            high: 1,
            critical: 0,
        },
        escalated_at: Some(t(120)),
        escalated_by: Some("SF-abc-2".to_string()),
        status: Status::Open,
        closes_at: t(7_200),
        cases: CaseList {
            count: 2,
            ids: Some(vec!["SF-abc-1".to_string(), "SF-abc-2".to_string()]),
            first: None,
            last: None,
        },
        agents: vec!["web01".to_string()],
        summary: true,
    };
    Event {
        id: "msg_0123456789abcdef".to_string(),
        kind: MessageType::Opened,
        route: "soc-slack".to_string(),
        seq: 0,
        created_at: t(130),
        incident,
        title: "sshd: authentication failed on web01 (2 alerts)".to_string(),
        summary: vec![
            "2 alerts of rule 5710 on web01 from 10.0.0.5".to_string(),
            "Raised to high at 12:02".to_string(),
        ],
        packs: vec![
            "incidents/2024/05/01/INC-0123456789abcdef0123/incident.json".to_string(),
            "escalations/SF-abc-2/".to_string(),
        ],
        observables: vec![
            obs(ObservableKind::Ip, "10.0.0.5", "data.srcip"),
            obs(ObservableKind::User, "root", "data.dstuser"),
            obs(
                ObservableKind::Sha256,
                &"ab".repeat(32),
                "syscheck.sha256_after",
            ),
        ],
        new_members: 0,
    }
}

/// Hostile text in the title, the summary and every alert-derived incident field.
pub fn hostile_event() -> Event {
    let mut e = event();
    e.title = HOSTILE.to_string();
    e.summary = vec![
        HOSTILE.to_string(),
        "line\nbreak\r\nand <b>bold</b> **strong** _em_ ~strike~ `code`".to_string(),
        "- a list item\n1. numbered # heading > quote".to_string(),
        "[ref]: http://evil.example/ref".to_string(),
        "see www.evil.example and user@evil.example and 10.66.6.7".to_string(),
        "&amp; &lt;b&gt; entity".to_string(),
    ];
    e.incident.agents = vec![HOSTILE.to_string(), "evil.example".to_string()];
    e.incident.key = vec![KeyField {
        field: "data.url".to_string(),
        value: Some(HOSTILE.to_string()),
    }];
    e.incident.group = HOSTILE.to_string();
    e.incident.escalated_by = Some(HOSTILE.to_string());
    e.incident.continues = Some(HOSTILE.to_string());
    e.observables = vec![
        obs(ObservableKind::Url, "http://evil.example/x", "data.url"),
        obs(ObservableKind::CommandLine, HOSTILE, "data.command"),
        obs(ObservableKind::Domain, "evil.example", HOSTILE),
    ];
    e.packs.push(HOSTILE.to_string());
    e
}

/// A 100 KB title and summary line, 5,000 more lines, 10,000 observables, 1,000 agents.
pub fn huge_event() -> Event {
    let mut e = event();
    let big = "A&<b>é😀".repeat(100 * 1024 / 10);
    e.title = big.clone();
    e.summary = std::iter::once(big.clone())
        .chain((0..5_000).map(|i| format!("line {i} {}", "x".repeat(100))))
        .collect();
    e.observables = (0..10_000)
        .map(|i| {
            let kind = [
                ObservableKind::Ip,
                ObservableKind::Domain,
                ObservableKind::Url,
                ObservableKind::Md5,
                ObservableKind::Sha1,
                ObservableKind::Sha256,
                ObservableKind::User,
                ObservableKind::File,
                ObservableKind::Process,
                ObservableKind::CommandLine,
                ObservableKind::RegistryKey,
                ObservableKind::Cve,
            ][i % 12];
            obs(kind, &format!("value-{i}-{}", "v".repeat(200)), "data.x")
        })
        .collect();
    e.incident.agents = (0..1_000)
        .map(|i| format!("agent-{i}-{}", "a".repeat(100)))
        .collect();
    e.incident.key = (0..100)
        .map(|i| KeyField {
            field: format!("data.f{i}"),
            value: Some(big.chars().take(1_000).collect()),
        })
        .collect();
    e.incident.members.total = 1_000_000;
    e.incident.cases = CaseList {
        count: 1_000_000,
        ids: None,
        first: Some((0..500).map(|i| format!("SF-first-{i}")).collect()),
        last: Some((0..500).map(|i| format!("SF-last-{i}")).collect()),
    };
    e.packs = (0..1_000).map(|i| format!("escalations/SF-{i}/")).collect();
    e
}

/// No control, bidi or zero-width character (a line break is allowed: the formats' own).
pub fn assert_no_controls(s: &str) {
    if let Some(c) = s.chars().find(|&c| c != '\n' && must_escape(c)) {
        panic!("control character {c:?} in {s:?}");
    }
}

/// No control character, no live URL or host, no `<` or `>` at all (so no HTML tag, no
/// Slack link or mention, no autolink).
pub fn assert_no_live_text(s: &str) {
    assert_no_controls(s);
    for bad in ["<", ">", "http://", "evil.example", "user@"] {
        assert!(!s.contains(bad), "{bad:?} in {s:?}");
    }
}

/// [`assert_no_live_text`], and no Markdown link or image syntax either.
pub fn assert_plain_inert(s: &str) {
    assert_no_live_text(s);
    for bad in ["](", "]:"] {
        assert!(!s.contains(bad), "{bad:?} in {s:?}");
    }
}

/// Parsed as CommonMark (and with every extension): no HTML, no image, exactly `links`
/// links, no control character and no live URL in the text.
pub fn assert_markdown_inert(md: &str, links: usize) {
    assert_no_controls(md);
    assert!(!md.contains("http://"), "{md}");
    for opts in [Options::empty(), Options::all()] {
        let mut n = 0;
        for ev in Parser::new_ext(md, opts) {
            match ev {
                Md::Html(h) | Md::InlineHtml(h) => panic!("HTML {h:?} in {md}"),
                Md::Start(Tag::Image { .. }) => panic!("image in {md}"),
                Md::Start(Tag::Link { dest_url, .. }) => {
                    assert!(dest_url.starts_with("https://soc.example/"), "{dest_url}");
                    n += 1;
                }
                Md::Text(t) => assert!(!t.contains("evil.example"), "{t:?} in {md}"),
                _ => {}
            }
        }
        assert_eq!(n, links, "links in {md}");
    }
}

/// Every string in a JSON value (keys excluded).
pub fn strings(v: &Value) -> Vec<&str> {
    let mut out = Vec::new();
    fn walk<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::String(s) => out.push(s),
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            Value::Object(o) => o.values().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    walk(v, &mut out);
    out
}

/// Parsed as CommonMark (and with every extension): only paragraphs, text and line breaks —
/// no emphasis, code, list, heading, quote, table, link, image or HTML at all.
pub fn assert_markdown_unformatted(md: &str) {
    assert_no_controls(md);
    for opts in [Options::empty(), Options::all()] {
        for ev in Parser::new_ext(md, opts) {
            match ev {
                Md::Start(Tag::Paragraph)
                | Md::End(pulldown_cmark::TagEnd::Paragraph)
                | Md::SoftBreak
                | Md::HardBreak => {}
                Md::Text(t) => assert!(!t.contains("evil.example"), "{t:?} in {md}"),
                other => panic!("{other:?} in {md:?}"),
            }
        }
    }
}
