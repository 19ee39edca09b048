use std::collections::BTreeSet;

use chrono::{Duration, TimeZone};
use pulldown_cmark::{Event, LinkType, Options, Parser, Tag};
use sf_policy::{Bucket, KeyField};

use super::*;
use crate::stages::escalate::markdown::must_escape;
use crate::stages::incidents::view::{CaseList, MemberCounts, Window};

/// Markdown links, an image, raw HTML, an autolink, a bare URL, control and bidi characters,
/// backtick runs, a newline, pipes and a link reference definition.
const HOSTILE: &str = "Evil](javascript:alert(1)) ![x](http://evil.example/a.png) \
    <script>alert(1)</script> <http://evil.example/x> http://evil.example/x \u{1b}[31m\u{7}\u{202e} \
    ``` `` ` |a|b|\n[ref]: http://evil.example/r 10.66.6.6";

const HOSTILE_ALERTS: [&str; 5] = [
    include_str!("../../../../tests/data/hostile/fim-traversal-bidi-diff.json"),
    include_str!("../../../../tests/data/hostile/generic-hostile-keys.json"),
    include_str!("../../../../tests/data/hostile/sshd-agent-name-control-chars.json"),
    include_str!("../../../../tests/data/hostile/sshd-ipv6-backslash-urls.json"),
    include_str!("../../../../tests/data/hostile/sysmon-markdown-html-escapes.json"),
];

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 7, 20, 3, 0, 0).unwrap()
}

fn view(total: u64) -> IncidentView {
    IncidentView {
        id: "INC-0123456789abcdef0123".into(),
        group: "ssh-bruteforce".into(),
        key: vec![
            KeyField {
                field: "rule.id".into(),
                value: Some("5712".into()),
            },
            KeyField {
                field: "agent".into(),
                value: Some("web01".into()),
            },
        ],
        window: Window {
            start: t0(),
            end: t0() + Duration::seconds(3600),
            secs: 3600,
        },
        continues: None,
        first_alert_time: Some(t0()),
        last_alert_time: Some(t0()),
        bucket: Some(Bucket::High),
        highest_level: Some(12),
        critical: false,
        members: MemberCounts {
            total,
            high: total,
            ..MemberCounts::default()
        },
        escalated_at: None,
        escalated_by: None,
        status: Status::Closed,
        closes_at: t0() + Duration::seconds(7200),
        cases: CaseList {
            count: total,
            ids: None,
            first: None,
            last: None,
        },
        agents: vec!["web01".into()],
        summary: true,
    }
}

fn member(case_id: &str, secs: i64, bucket: Bucket, packed: bool) -> MemberRef {
    MemberRef {
        case_id: case_id.into(),
        case_path: format!("high/2025/07/20/{case_id}"),
        alert_time: t0() + Duration::seconds(secs),
        bucket,
        level: Some(12),
        rule_id: Some("5712".into()),
        description: Some("sshd: brute force".into()),
        agent: "web01".into(),
        packed,
    }
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

/// The checks every incident summary must pass: no control or format character, no line that
/// starts with alert text outside a fenced block, and under CommonMark and every extension no
/// image, no HTML, no footnote and no link but inline links to the packs of `linked`.
fn assert_inert(md: &str, linked: &[&str]) {
    for (i, c) in md.char_indices() {
        assert!(
            c == '\n' || !must_escape(c),
            "control/format character U+{:04X} at byte {i}: {:?}",
            c as u32,
            &md[i.saturating_sub(40)..(i + 40).min(md.len())]
        );
    }
    let mut open_fence: Option<usize> = None;
    for line in md.lines() {
        let ticks = line.len() - line.trim_start_matches('`').len();
        let is_fence = ticks >= 3 && ticks == line.len();
        match open_fence {
            Some(n) => {
                if is_fence && ticks >= n {
                    open_fence = None;
                }
                continue;
            }
            None if is_fence => {
                open_fence = Some(ticks);
                continue;
            }
            None => {}
        }
        let body = line.trim_start_matches(' ');
        let body = body.strip_prefix("- ").unwrap_or(body);
        let body = body.trim_start_matches(|c: char| c.is_ascii_digit());
        let body = body.strip_prefix(". ").unwrap_or(body);
        assert!(
            !body.starts_with('`'),
            "a line starts with alert text: {line:?}"
        );
    }
    assert_eq!(open_fence, None, "a fenced block is left open");
    let expected: BTreeSet<String> = linked
        .iter()
        .map(|id| format!("../../../../../escalations/{id}/summary.md"))
        .collect();
    for opts in [Options::empty(), Options::all()] {
        let mut links = BTreeSet::new();
        for ev in Parser::new_ext(md, opts) {
            match ev {
                Event::Start(Tag::Link {
                    link_type,
                    dest_url,
                    ..
                }) => {
                    assert_eq!(link_type, LinkType::Inline, "{dest_url}");
                    assert!(
                        expected.contains(dest_url.as_ref()),
                        "unexpected link {dest_url:?}"
                    );
                    links.insert(dest_url.to_string());
                }
                Event::Start(Tag::Image { dest_url, .. }) => panic!("image {dest_url}"),
                Event::Html(h) | Event::InlineHtml(h) => panic!("HTML {h:?}"),
                Event::FootnoteReference(f) => panic!("footnote {f:?}"),
                _ => {}
            }
        }
        assert_eq!(links, expected, "pack links under {opts:?}");
    }
}

#[test]
fn pack_ids_are_allow_listed() {
    for ok in ["SF-0123abcd", "SF-a-b-C", "SF-1"] {
        assert!(is_pack_id(ok), "{ok}");
        assert_eq!(
            pack_href(ok).as_deref(),
            Some(format!("../../../../../escalations/{ok}/summary.md").as_str())
        );
    }
    for bad in [
        "",
        "SF-",
        "sf-abc",
        "SF_abc",
        "C-0123",
        "SF-../x",
        "SF-a/b",
        "SF-a.b",
        "SF-a b",
        "SF-a)b",
        "SF-a]b",
        "SF-é",
        "SF-a\u{202e}",
        "SF-a\n",
        " SF-a",
        "SF-a%2e",
    ] {
        assert!(!is_pack_id(bad), "{bad:?}");
        assert_eq!(pack_href(bad), None, "{bad:?}");
    }
}

#[test]
fn hostile_view_members_and_alerts_render_inert() {
    let mut v = view(12);
    v.id = format!("INC-{HOSTILE}");
    v.group = HOSTILE.into();
    v.key = vec![
        KeyField {
            field: HOSTILE.into(),
            value: Some(HOSTILE.into()),
        },
        KeyField {
            field: "rule.id".into(),
            value: None,
        },
    ];
    v.continues = Some(HOSTILE.into());
    v.escalated_at = Some(t0() + Duration::seconds(5));
    v.escalated_by = Some(format!("SF-x]({HOSTILE})"));
    v.agents = vec![HOSTILE.into()];
    v.status = Status::Open;
    v.last_alert_time = Some(t0() + Duration::seconds(90));
    v.highest_level = Some(15);
    v.critical = true;
    let hostile_ids = [
        "SF-x](http://evil.example/x)".to_string(),
        "SF-../../etc".to_string(),
        "SF-a\u{202e}b".to_string(),
        "SF-".to_string(),
        "sf-abc".to_string(),
        "SF-ok\n[x](http://evil.example)".to_string(),
        HOSTILE.to_string(),
        "SF-`` `x` ``".to_string(),
    ];
    let mut timeline = vec![
        member("SF-0001", 0, Bucket::Medium, true),
        member("SF-0002", 1, Bucket::High, false),
    ];
    for (i, id) in hostile_ids.iter().enumerate() {
        let mut m = member(id, 2 + i as i64, Bucket::High, true);
        m.agent = HOSTILE.into();
        m.description = Some(HOSTILE.into());
        m.rule_id = Some(HOSTILE.into());
        timeline.push(m);
    }
    let mut m = member("SF-0003", 30, Bucket::High, true);
    m.agent = HOSTILE.into();
    m.rule_id = Some(HOSTILE.into());
    m.description = None;
    m.level = None;
    timeline.push(m);

    let mut sample: Vec<Map<String, Value>> = HOSTILE_ALERTS
        .iter()
        .map(|s| serde_json::from_str(s).expect("fixture is a JSON object"))
        .collect();
    sample.push(obj(serde_json::json!({"rule": 5, "data": [1, 2]})));
    sample.push(obj(serde_json::json!({
        "rule": {"id": {"x": 1}, "description": ["a"], "mitre": {
            "id": "T1059](javascript:alert(1))", "technique": {"x": 1}, "tactic": [null, 3, HOSTILE]
        }},
        "data": {"srcip": HOSTILE, "srcuser": HOSTILE, "url": HOSTILE}
    })));
    let aliases = vec![HOSTILE.to_string(), "](javascript:alert(1))".to_string()];
    let md = render(&SummaryInput {
        incident: &v,
        timeline: &timeline,
        sample: &sample,
        aliases: &aliases,
    });
    assert_inert(&md, &["SF-0001", "SF-0003"]);
    for raw in [
        "http://evil.example",
        "https://evil.example",
        "www.evil.example",
        "user@evil.example",
        "evil.example",
        "10.66.6.6",
        "javascript:",
        "<http",
    ] {
        assert!(
            !md.contains(raw),
            "{raw:?} undefanged or outside code in\n{md}"
        );
    }
    // Visible, escaped and defanged, not dropped.
    for needle in [
        "hxxp://evil[.]example/x",
        "\\u{1b}[31m",
        "\\u{7}",
        "\\u{202e}",
        "\\n[ref]",
        "**CRITICAL**",
        "- **Escalation:** raised to high at 2025-07-20 03:00:05.000 UTC by case ",
        "- **Continues:** incident ",
        "- **Also known as:** ",
        "- **Key field** ",
        "(missing)",
        "T1110",
    ] {
        assert!(md.contains(needle), "missing {needle:?} in\n{md}");
    }
    // A packed member with a hostile id is named, as code, but never linked.
    let hostile_lines = md
        .lines()
        .filter(|l| l.starts_with("- case ") && l.contains("not linked"))
        .count();
    assert_eq!(hostile_lines, hostile_ids.len(), "{md}");
    assert!(md.contains(&format!(
        "- case {} — high, level 12",
        escape_inline(&hostile_ids[0])
    )));
    assert!(!md.contains("escalations/SF-x"), "{md}");
    // The unpacked SF- member is in the timeline but has no pack line.
    assert!(md.contains("SF-0002"));
    assert!(!md.contains("[SF-0002]"));
    // Deterministic.
    assert_eq!(
        md,
        render(&SummaryInput {
            incident: &v,
            timeline: &timeline,
            sample: &sample,
            aliases: &aliases,
        })
    );
}

fn burst_alert(i: usize) -> Map<String, Value> {
    obj(serde_json::json!({
        "timestamp": format!("2025-07-20T03:{:02}:{:02}.000+0000", i * 2 / 60, i * 2 % 60),
        "rule": {
            "id": "5712",
            "level": 12,
            "description": "sshd: brute force trying to get access to the system",
            "groups": ["syslog", "sshd", "authentication_failures"],
            "mitre": {"id": ["T1110"], "technique": ["Brute Force"], "tactic": ["Credential Access"]}
        },
        "agent": {"id": "001", "name": "web01"},
        "data": {
            "srcip": "203.0.113.7",
            "dstip": format!("198.51.100.{}", i + 100),
            "srcuser": format!("user{}", i % 3)
        }
    }))
}

#[test]
fn a_burst_of_sixty_shows_fifty_rows_counts_rate_and_shared_observables() {
    let mut v = view(60);
    v.members.medium = 5;
    v.members.high = 55;
    v.last_alert_time = Some(t0() + Duration::seconds(118));
    v.escalated_at = Some(t0() + Duration::seconds(10));
    v.escalated_by = Some("SF-burst-05".into());
    let members: Vec<MemberRef> = (0..60)
        .map(|i| {
            let b = if i < 5 { Bucket::Medium } else { Bucket::High };
            member(&format!("SF-burst-{i:02}"), 2 * i as i64, b, i >= 5)
        })
        .collect();
    let sample: Vec<Map<String, Value>> = (0..60).map(burst_alert).collect();
    for timeline in [&members[..TIMELINE_MAX], &members[..]] {
        let md = render(&SummaryInput {
            incident: &v,
            timeline,
            sample: &sample,
            aliases: &[],
        });
        let linked: Vec<String> = (5..50).map(|i| format!("SF-burst-{i:02}")).collect();
        let linked: Vec<&str> = linked.iter().map(String::as_str).collect();
        assert_inert(&md, &linked);
        let rows = md.lines().filter(|l| l.starts_with("2025-07-20 ")).count();
        assert_eq!(rows, 50, "{md}");
        assert!(md.contains("SF-burst-49") && !md.contains("SF-burst-50"));
        assert!(md.contains("The first 50 members by alert time (10 more not shown;"));
        assert!(md.contains("… and 10 more members."));
        assert!(md.contains("- **Total:** 60: high 55, medium 5, low 0, suppressed 0"));
        assert!(md.contains("- **Critical:** none"));
        assert!(
            md.contains("- **Span:** 1 min 58 s; **rate:** 30.5 alerts per minute"),
            "{md}"
        );
        assert!(md.contains(
            "- **Escalation:** raised to high at 2025-07-20 03:00:10.000 UTC by case \
             `SF-burst-05`"
        ));
        assert!(md.contains(
            "- **Rule:** `5712` — `sshd: brute force trying to get access to the system` \
             (in 60 of the 60 sampled alerts)"
        ));
        assert!(md.contains("- **Technique:** `T1110` `Brute Force` (in 60 alerts)"));
        assert!(md.contains("- **Tactics:** `Credential Access` (60)"));
        assert!(md.contains("- **Kind:** authentication"));
        // Field paths are ours: readable, never `rule[.]id` (alert values are still defanged).
        assert!(md.contains("- **Key field** `rule.id`: `5712`"), "{md}");
        assert!(!md.contains("[.]id") && !md.contains("data[.]"), "{md}");
        // 1 srcip + 60 dstips + 3 users distinct; 40 shown, the most frequent first.
        assert!(
            md.contains("64 distinct in the first 60 member alerts"),
            "{md}"
        );
        let srcip = "- ip `203[.]0[.]113[.]7` in 60 alerts (first from `data.srcip`)";
        assert!(md.contains(srcip), "{md}");
        for u in 0..3 {
            assert!(
                md.contains(&format!("- user `user{u}` in 20 alerts")),
                "{md}"
            );
        }
        assert!(md.contains("- … and 24 more (less frequent)"), "{md}");
        let shown = md
            .lines()
            .filter(|l| l.starts_with("- ip ") || l.starts_with("- user "))
            .collect::<Vec<_>>();
        assert_eq!(shown.len(), 40);
        assert_eq!(shown[0], srcip, "the most frequent ip first");
        assert!(shown[1].starts_with("- ip `198[.]51[.]100[.]100` in 1 alert "));
        assert!(shown[36].starts_with("- ip "), "grouped by kind: {shown:?}");
        assert!(
            shown[37].starts_with("- user "),
            "grouped by kind: {shown:?}"
        );
        // The kind's next steps follow the incident's own.
        assert!(md.contains("For alerts of this kind, authentication (sshd"));
        assert!(md.contains("Did a login from this source"));
    }
}

#[test]
fn a_single_member_has_no_rate_and_no_escalation_line() {
    let v = view(1);
    let timeline = [member("SF-only1", 0, Bucket::High, true)];
    let sample = [burst_alert(0)];
    let md = render(&SummaryInput {
        incident: &v,
        timeline: &timeline,
        sample: &sample,
        aliases: &[],
    });
    assert_inert(&md, &["SF-only1"]);
    assert!(
        md.contains("- **Span:** 0 s; no rate (a single alert)"),
        "{md}"
    );
    assert!(md.contains("- **Total:** 1: high 1, medium 0"));
    assert!(md.contains("The first 1 member by alert time:"));
    for absent in [
        "Escalation:",
        "raised to high",
        "NaN",
        "inf ",
        "more not shown",
        "Continues",
    ] {
        assert!(!md.contains(absent), "{absent:?} in\n{md}");
    }
    assert!(md.contains("- ip `203[.]0[.]113[.]7` in 1 alert (first from `data.srcip`)"));
    assert!(md.contains("[SF-only1](../../../../../escalations/SF-only1/summary.md)"));

    // Several members at one instant, and unknown times: still no division.
    let mut v = view(3);
    let md = render(&SummaryInput {
        incident: &v,
        timeline: &[],
        sample: &[],
        aliases: &[],
    });
    assert!(md.contains("no rate (all at one instant)"), "{md}");
    assert!(md.contains("No member is known yet."));
    v.first_alert_time = None;
    v.bucket = None;
    v.highest_level = None;
    let md = render(&SummaryInput {
        incident: &v,
        timeline: &[],
        sample: &[],
        aliases: &[],
    });
    assert_inert(&md, &[]);
    assert!(md.contains("- **Span:** not known; no rate"), "{md}");
    assert!(md.starts_with("# Incident `INC-0123456789abcdef0123` — high\n"));
}

#[test]
fn more_alerts_than_the_sample_holds_are_not_tallied() {
    let v = view(250);
    let sample: Vec<Map<String, Value>> = (0..250).map(burst_alert).collect();
    let md = render(&SummaryInput {
        incident: &v,
        timeline: &[],
        sample: &sample,
        aliases: &[],
    });
    assert!(
        md.contains("- ip `203[.]0[.]113[.]7` in 200 alerts"),
        "{md}"
    );
    assert!(md.contains("(in 200 of the 200 sampled alerts)"), "{md}");
}
