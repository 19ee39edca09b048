//! The decision for one claimed file, pure: given the alert's row as read, what was read from the
//! file, the policy, `now` and the file's canonical name, [`plan`] says what becomes of it: a
//! case (the decision reused from the intent or made now, the case id and path, the alert
//! time, a new row when there was none), a quarantine (the reason, the row that records it, the
//! `Q-` pack it owes), misnamed, a second copy of a published key, or vanished. No IO, no ledger,
//! no clock: [`super::batch`] gathers the inputs (claims, reads) and applies the outcome (intent
//! rows, quarantine, temp cases).
//!
//! Design constraints:
//! - A retry never re-decides: the intent row (state `triaging`) fixes bucket, case id, case
//!   path and the whole decision before any file moves; a later claim of the key reuses it, even
//!   under a policy reloaded since.
//! - Quarantine only for what cannot be triaged (unreadable, not a regular file, over the size
//!   limit, invalid JSON or UTF-8, duplicated keys, fields the decision needs missing or of the
//!   wrong type); never for content. A quarantined alert whose level reads at or above `high`
//!   owes a `Q-<entry>` pack.
//! - The key in a file's name is a claim, not a fact: a file whose content's key is not its
//!   name's is misnamed (it goes back to `incoming/`, where admission keys it afresh).

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::quarantine::QRow;
use crate::model::alert;
use crate::model::cases::{self, CaseId, StoredDecision};
use crate::store::fsx::ReadOutcome;
use crate::store::ledger::{NewRow, State};
use crate::store::names::Canonical;

/// The stored parts of a row triage reads back.
pub(super) struct RowInfo {
    pub(super) id: i64,
    pub(super) state: String,
    pub(super) alert_key: String,
    pub(super) index_name: Option<String>,
    pub(super) doc_id: Option<String>,
    pub(super) alert_time: String,
    pub(super) case_path: Option<String>,
    /// The intent's stored decision (JSON), when an intent row fixed one.
    pub(super) decision: Option<String>,
}

/// What the plan of one claimed file is given.
pub(super) struct Input<'a> {
    /// The alert's row as read (none: a rowless canonical file).
    pub(super) row: Option<&'a RowInfo>,
    /// What was read from the claimed file.
    pub(super) content: ReadOutcome,
    /// The size limit the read used (for the reason of a file over it).
    pub(super) max_alert_bytes: u64,
    pub(super) policy: &'a sf_policy::Policy,
    pub(super) now: DateTime<Utc>,
    /// The file's canonical name: the key hash it claims, its priority (and, for a new row,
    /// the name itself: a parsed canonical name prints back as the name it was parsed from).
    pub(super) name: &'a Canonical,
}

/// What becomes of one claimed file.
pub(super) enum Outcome {
    /// Triaged: a case.
    Case(Box<Case>),
    /// Cannot be triaged: quarantined.
    Quarantine(Quarantined),
    /// The content's key is not the one its name carries: back to `incoming/`.
    Misnamed,
    /// A file of a key whose case is published (a copy planted under another canonical name):
    /// never a second case, never a change to the row; quarantined with an entry row of its own.
    SecondCopy { reason: String },
    /// The file was gone when it was read.
    Vanished,
}

/// The case a claimed file becomes.
pub(super) struct Case {
    pub(super) decision: StoredDecision,
    /// The decision is the intent's (a retry), not made now.
    pub(super) reused: bool,
    /// Deciding it showed, for the first time, an id alias without `manager` choosing the agent
    /// of alerts from two managers (`sf_policy::Policy::note_manager`): batch logs it.
    pub(super) manager_span: Option<sf_policy::ManagerSpan>,
    pub(super) case_id: CaseId,
    /// `bucket/YYYY/MM/DD/case-id`: the intent row's when it fixed one.
    pub(super) case_path: String,
    pub(super) alert_time: DateTime<Utc>,
    pub(super) alert_key: String,
    pub(super) index_id: Option<(String, String)>,
    /// No row existed (a rowless canonical file): inserted with the intent.
    pub(super) new_row: Option<NewRow>,
    /// The alert, parsed.
    pub(super) value: Value,
    /// The alert as read.
    pub(super) bytes: Vec<u8>,
}

/// A quarantine a claimed file gets.
pub(super) struct Quarantined {
    pub(super) reason: String,
    /// Which row records it.
    pub(super) row: QRow,
    /// The alert, when it was read and parsed (a `Q-` pack is built from it).
    pub(super) alert: Option<Map<String, Value>>,
    /// The level of the `Q-<entry>` pack it owes: its alert was read and its level reads at or
    /// above the policy's `high` threshold.
    pub(super) pack: Option<u32>,
}

impl Quarantined {
    /// A quarantine recorded by a row of its own keyed by entry: nothing of the file's alert
    /// can be trusted, and it owes no pack.
    pub(super) fn entry(reason: String) -> Quarantined {
        Quarantined {
            reason,
            row: QRow::Entry,
            alert: None,
            pack: None,
        }
    }
}

/// What the row alone decides, before the file is read: a published key's file is a second
/// copy whatever it holds (so it is not read). `None`: [`plan`] needs the content.
pub(super) fn before_read(row: Option<&RowInfo>) -> Option<Outcome> {
    let done = row.filter(|i| matches!(i.state.as_str(), "triaged" | "escalated"))?;
    Some(Outcome::SecondCopy {
        reason: format!(
            "key conflict: another copy of this alert is already case {}",
            done.case_path.as_deref().unwrap_or("(unknown)")
        ),
    })
}

/// What becomes of one claimed file (see the module's docs).
pub(super) fn plan(input: Input<'_>) -> Outcome {
    let Input {
        row,
        content,
        max_alert_bytes: max,
        policy,
        now,
        name,
    } = input;
    if let Some(o) = before_read(row) {
        return o;
    }
    // What cannot be read or parsed goes to quarantine with the reason.
    let read = match content {
        ReadOutcome::Vanished => return Outcome::Vanished,
        ReadOutcome::Refused(r) => Err(format!("not read: {r}")),
        ReadOutcome::TooLarge(n) => Err(format!("{n} bytes is over max_alert_bytes ({max})")),
        ReadOutcome::Bytes(b) => match alert::parse_strict(&b) {
            Ok(m) => Ok((b, m)),
            Err(e) => Err(e.to_string()),
        },
    };
    let (bytes, map) = match read {
        Ok(x) => x,
        Err(reason) => {
            return Outcome::Quarantine(Quarantined {
                reason,
                row: if row.is_some() {
                    QRow::Own
                } else {
                    QRow::Entry
                },
                alert: None,
                pack: None,
            })
        }
    };
    // The key in a file's name is a claim, not a fact (B's bytes under A's name): the content's
    // key must be the name's, as admission and adoption check.
    let index_of = row.and_then(|i| i.index_name.as_deref().zip(i.doc_id.as_deref()));
    let meta = alert::meta(&map, index_of, now);
    // Only a key the content carries (its manager and id) can contradict the name: a rowless
    // file keyed by its indexer `_index/_id` (a poll that crashed before its commit) cannot
    // be re-keyed from its bytes, and its name is all there is.
    let verifiable = index_of.is_some() || meta.key.as_str().starts_with("manager:");
    if verifiable && meta.key_hash != name.key_hash {
        return Outcome::Misnamed;
    }
    let stored = row
        .and_then(|i| i.decision.as_deref())
        .and_then(|d| serde_json::from_str::<StoredDecision>(d).ok());
    let value = Value::Object(map);
    let (decision, reused, manager_span) = match stored {
        Some(d) => (d, true, None),
        None => match policy.decide(&value, now) {
            Ok(d) => (
                StoredDecision::from_policy(&d, policy.version(), now),
                false,
                policy.note_manager(&value, &d),
            ),
            Err(e) => {
                let m = match value {
                    Value::Object(m) => m,
                    _ => Map::new(),
                };
                let level = alert::level_of(&m).rank();
                let row = if row.is_some() {
                    QRow::Own
                } else {
                    QRow::Alert(Box::new(NewRow {
                        key_hash: name.key_hash.clone(),
                        alert_key: meta.key.as_str().to_string(),
                        state: State::Quarantined,
                        name: String::new(),
                        content_hash: meta.content_hash.clone(),
                        level: meta.level,
                        priority: name.priority,
                        alert_time: meta
                            .time
                            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                        index_name: None,
                        doc_id: None,
                        source: "adopted",
                    }))
                };
                let high = policy.thresholds().high;
                return Outcome::Quarantine(Quarantined {
                    reason: e.to_string(),
                    row,
                    alert: Some(m),
                    pack: level.filter(|l| *l >= high),
                });
            }
        },
    };
    let (alert_key, index_id, alert_time, new_row) = match row {
        Some(i) => (
            i.alert_key.clone(),
            i.index_name.clone().zip(i.doc_id.clone()),
            parse_rfc3339(&i.alert_time).unwrap_or(meta.time),
            None,
        ),
        None => {
            let row = NewRow {
                key_hash: name.key_hash.clone(),
                alert_key: meta.key.as_str().to_string(),
                state: State::Triaging,
                name: name.name(),
                content_hash: meta.content_hash.clone(),
                level: meta.level,
                priority: name.priority,
                alert_time: meta
                    .time
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                index_name: None,
                doc_id: None,
                source: "adopted",
            };
            (meta.key.as_str().to_string(), None, meta.time, Some(row))
        }
    };
    // The incident is fixed with the decision (an intent stored before incidents existed
    // gets it now, from the same alert, agent, bucket and time).
    let mut decision = decision;
    if decision.incident.is_none() {
        decision.incident =
            Some(policy.incident(&value, &decision.agent, decision.bucket, alert_time));
    }
    let case_id = CaseId::for_key(&name.key_hash);
    let case_path = row
        .and_then(|i| i.case_path.clone())
        .unwrap_or_else(|| cases::case_path(decision.bucket.as_str(), alert_time, &case_id));
    Outcome::Case(Box::new(Case {
        decision,
        reused,
        manager_span,
        case_id,
        case_path,
        alert_time,
        alert_key,
        index_id,
        new_row,
        value,
        bytes,
    }))
}

/// An RFC 3339 time as the ledger stores it.
pub(super) fn parse_rfc3339(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::alert::KeyHash;
    use crate::store::fsx::Refusal;
    use chrono::TimeZone;

    /// 2026-03-04T05:06:07Z, the planning time of every test.
    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 4, 5, 6, 7)
            .single()
            .expect("now")
    }

    /// A policy with these `[severity]` thresholds and, when `suppress` names a `rule.id`, one
    /// signature suppressing it.
    fn policy(medium: u32, high: u32, suppress: Option<&str>) -> sf_policy::Policy {
        let mut src = format!("[severity]\nmedium = {medium}\nhigh = {high}\n");
        if let Some(rule) = suppress {
            src.push_str(&format!(
                "\n[[suppress]]\nid = \"fp-test\"\nreason = \"noise\"\nowner = \"soc\"\nmatch = {{ \"rule.id\" = \"{rule}\" }}\n"
            ));
        }
        sf_policy::Policy::parse(&src).expect("policy").0
    }

    /// An alert with a manager and an id (so its key is its own), at 2026-01-02T03:04:05Z;
    /// `level` is `rule.level` as JSON text (`None` leaves it out).
    fn alert(id: &str, level: Option<&str>) -> Vec<u8> {
        let level = level.map_or(String::new(), |l| format!(r#", "level": {l}"#));
        format!(
            r#"{{"id": "{id}", "timestamp": "2026-01-02T03:04:05.000+0000", "manager": {{"name": "wazuh-1"}}, "agent": {{"id": "001", "name": "web-1"}}, "rule": {{"id": "5716", "description": "sshd: authentication failed"{level}}}}}"#
        )
        .into_bytes()
    }

    /// The key hash of the content of `alert(id, ..)`.
    fn key_of(id: &str) -> KeyHash {
        let m = alert::parse_strict(&alert(id, None)).expect("alert");
        alert::meta(&m, None, now()).key_hash
    }

    /// The canonical name of the alert `id` (the name's key is the content's).
    fn name_of(id: &str) -> Canonical {
        let t = Utc
            .with_ymd_and_hms(2026, 1, 2, 3, 4, 5)
            .single()
            .expect("t");
        Canonical::new(3, t, key_of(id))
    }

    /// A row as triage reads it back: its state, and the intent's decision and case path when
    /// it has them.
    fn row(state: &str, decision: Option<&StoredDecision>, case_path: Option<&str>) -> RowInfo {
        RowInfo {
            id: 7,
            state: state.into(),
            alert_key: "manager:\"wazuh-1\"/id:\"a\"".into(),
            index_name: None,
            doc_id: None,
            alert_time: "2026-01-02T03:04:05.000Z".into(),
            case_path: case_path.map(str::to_string),
            decision: decision.map(|d| serde_json::to_string(d).expect("decision")),
        }
    }

    /// The case path of the alert `id` in `bucket`.
    fn path(bucket: &str, id: &str) -> String {
        format!("{bucket}/2026/01/02/SF-{}", key_of(id))
    }

    /// The plan's input (a size limit of 1000 bytes, planned at [`now`]).
    fn input<'a>(
        row: Option<&'a RowInfo>,
        content: ReadOutcome,
        policy: &'a sf_policy::Policy,
        name: &'a Canonical,
    ) -> Input<'a> {
        Input {
            row,
            content,
            max_alert_bytes: 1000,
            policy,
            now: now(),
            name,
        }
    }

    /// What a test says about an outcome.
    #[derive(Debug, PartialEq, Eq)]
    enum Expect {
        Case {
            bucket: String,
            reused: bool,
            case_id: String,
            case_path: String,
            /// The state of the new row, when there was no row.
            new_row: Option<State>,
        },
        Quarantine {
            reason: String,
            /// `own`, `alert` (a new row of the alert) or `entry`.
            row: &'static str,
            pack: Option<u32>,
        },
        Misnamed,
        SecondCopy(String),
        Vanished,
    }

    impl Expect {
        /// A case of the alert `id`, in `bucket`, at its case path there.
        fn case(id: &str, bucket: &str, reused: bool, new_row: Option<State>) -> Expect {
            Expect::Case {
                bucket: bucket.into(),
                reused,
                case_id: format!("SF-{}", key_of(id)),
                case_path: path(bucket, id),
                new_row,
            }
        }

        fn quarantine(reason: &str, row: &'static str, pack: Option<u32>) -> Expect {
            Expect::Quarantine {
                reason: reason.into(),
                row,
                pack,
            }
        }

        fn of(o: &Outcome) -> Expect {
            match o {
                Outcome::Case(c) => Expect::Case {
                    bucket: c.decision.bucket.as_str().into(),
                    reused: c.reused,
                    case_id: c.case_id.as_str().into(),
                    case_path: c.case_path.clone(),
                    new_row: c.new_row.as_ref().map(|r| r.state),
                },
                Outcome::Quarantine(q) => Expect::Quarantine {
                    reason: q.reason.clone(),
                    row: match &q.row {
                        QRow::Own => "own",
                        QRow::Alert(r) => {
                            assert_eq!(r.state, State::Quarantined, "the new row's state");
                            "alert"
                        }
                        QRow::Entry => "entry",
                    },
                    pack: q.pack,
                },
                Outcome::Misnamed => Expect::Misnamed,
                Outcome::SecondCopy { reason } => Expect::SecondCopy(reason.clone()),
                Outcome::Vanished => Expect::Vanished,
            }
        }
    }

    /// One data-driven check: the plan's input in, what becomes of the file out. When the row
    /// alone decides ([`before_read`]), it must decide what [`plan`] does.
    fn check(input: Input<'_>, expected: Expect) {
        let early = before_read(input.row).map(|o| Expect::of(&o));
        let got = Expect::of(&plan(input));
        if let Some(early) = early {
            assert_eq!(early, got, "before_read and plan disagree");
        }
        assert_eq!(got, expected);
    }

    #[test]
    fn a_fresh_decision_per_bucket() {
        let p = policy(7, 12, Some("5716"));
        let plain = policy(7, 12, None);
        let name = name_of("a");
        let queued = row("queued", None, None);
        // (policy, rule.level, bucket): the signature suppresses below `high` only.
        let cases = [
            (&p, "3", "suppressed"),
            (&plain, "3", "low"),
            (&plain, "8", "medium"),
            (&plain, "13", "high"),
            (&p, "13", "high"),
        ];
        for (policy, level, bucket) in cases {
            let a = alert("a", Some(level));
            check(
                input(None, ReadOutcome::Bytes(a.clone()), policy, &name),
                Expect::case("a", bucket, false, Some(State::Triaging)),
            );
            check(
                input(Some(&queued), ReadOutcome::Bytes(a), policy, &name),
                Expect::case("a", bucket, false, None),
            );
        }
    }

    #[test]
    fn the_retry_after_a_policy_reload_keeps_the_first_decision() {
        // Decided medium under thresholds 7/12 (level 8); the policy was reloaded with 5/8,
        // under which level 8 is high: the retry reuses the intent's decision and case path.
        let first = policy(7, 12, None);
        let m = alert::parse_strict(&alert("a", Some("8"))).expect("alert");
        let d = first.decide(&Value::Object(m), now()).expect("decided");
        let stored = StoredDecision::from_policy(&d, first.version(), now());
        let intent = row("triaging", Some(&stored), Some(&path("medium", "a")));
        let reloaded = policy(5, 8, None);
        let name = name_of("a");
        check(
            input(
                Some(&intent),
                ReadOutcome::Bytes(alert("a", Some("8"))),
                &reloaded,
                &name,
            ),
            Expect::case("a", "medium", true, None),
        );
    }

    #[test]
    fn what_cannot_be_read_is_quarantined_on_its_row_or_an_entry_row() {
        let p = policy(7, 12, None);
        let name = name_of("a");
        let queued = row("queued", None, None);
        let cases: [(ReadOutcome, &str); 5] = [
            (
                ReadOutcome::Refused(Refusal::Symlink),
                "not read: a symbolic link (never followed)",
            ),
            (
                ReadOutcome::TooLarge(5000),
                "5000 bytes is over max_alert_bytes (1000)",
            ),
            (
                ReadOutcome::Bytes(b"{\"id\": ".to_vec()),
                "invalid JSON: EOF while parsing a value at line 1 column 7",
            ),
            (
                ReadOutcome::Bytes(b"{\"a\": 1, \"a\": 2}".to_vec()),
                "duplicated key \"a\" in a JSON object",
            ),
            (
                ReadOutcome::Bytes(b"[1]".to_vec()),
                "the top-level JSON value is an array, not an object",
            ),
        ];
        for (content, reason) in cases {
            let again = match &content {
                ReadOutcome::Bytes(b) => ReadOutcome::Bytes(b.clone()),
                ReadOutcome::Refused(r) => ReadOutcome::Refused(*r),
                ReadOutcome::TooLarge(n) => ReadOutcome::TooLarge(*n),
                ReadOutcome::Vanished => ReadOutcome::Vanished,
            };
            check(
                input(Some(&queued), content, &p, &name),
                Expect::quarantine(reason, "own", None),
            );
            check(
                input(None, again, &p, &name),
                Expect::quarantine(reason, "entry", None),
            );
        }
    }

    #[test]
    fn an_undecidable_alert_is_quarantined_and_a_high_level_owes_a_pack() {
        let p = policy(7, 12, None);
        let name = name_of("a");
        let queued = row("queued", None, None);
        // (rule.level, reason, the Q- pack owed: the level as it ranks, at or above high)
        let cases: [(Option<&str>, &str, Option<u32>); 5] = [
            (None, "rule.level is missing", None),
            (
                Some("\"high\""),
                "rule.level is a string that is not a whole number, expected a number such as 12",
                None,
            ),
            (
                Some("3.5"),
                "rule.level is not a whole number, expected a whole number such as 12",
                None,
            ),
            (
                Some("12.5"),
                "rule.level is not a whole number, expected a whole number such as 12",
                Some(12),
            ),
            (Some("17"), "rule.level is out of range (0 to 16)", Some(17)),
        ];
        for (level, reason, pack) in cases {
            check(
                input(
                    Some(&queued),
                    ReadOutcome::Bytes(alert("a", level)),
                    &p,
                    &name,
                ),
                Expect::quarantine(reason, "own", pack),
            );
            check(
                input(None, ReadOutcome::Bytes(alert("a", level)), &p, &name),
                Expect::quarantine(reason, "alert", pack),
            );
        }
    }

    #[test]
    fn content_whose_key_is_not_its_names_is_misnamed() {
        let p = policy(7, 12, None);
        let name = name_of("a");
        let queued = row("queued", None, None);
        for r in [None, Some(&queued)] {
            check(
                input(r, ReadOutcome::Bytes(alert("b", Some("3"))), &p, &name),
                Expect::Misnamed,
            );
        }
    }

    #[test]
    fn a_second_copy_of_a_published_key_is_never_a_second_case() {
        let p = policy(7, 12, None);
        let name = name_of("a");
        let published = path("low", "a");
        let said = format!("key conflict: another copy of this alert is already case {published}");
        for state in ["triaged", "escalated"] {
            let done = row(state, None, Some(&published));
            check(
                input(
                    Some(&done),
                    ReadOutcome::Bytes(alert("a", Some("3"))),
                    &p,
                    &name,
                ),
                Expect::SecondCopy(said.clone()),
            );
        }
        let unknown = row("triaged", None, None);
        check(
            input(Some(&unknown), ReadOutcome::Vanished, &p, &name),
            Expect::SecondCopy(
                "key conflict: another copy of this alert is already case (unknown)".into(),
            ),
        );
    }

    #[test]
    fn a_file_gone_when_read_vanished() {
        let p = policy(7, 12, None);
        let name = name_of("a");
        let queued = row("queued", None, None);
        for r in [None, Some(&queued)] {
            check(input(r, ReadOutcome::Vanished, &p, &name), Expect::Vanished);
        }
    }
}
