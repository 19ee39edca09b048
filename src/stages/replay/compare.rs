//! The deciding part of a replay, pure: each replayed alert's stored decision beside the
//! candidate's, folded into what would change ([`fold`] → [`Diff`]). No IO, no clock.
//!
//! Design constraints:
//! - **The baseline is what is stored**: the row's bucket and incident, the case's signature
//!   and held-back signatures, as triage fixed them (whatever policy, and whatever day's
//!   expiry, decided them). Nothing here re-decides with the current policy; the current
//!   policy's own opinion is only counted, as drift ([`Replayed::current`]).
//! - "Lowered" is the candidate's bucket ranking below the stored one (`suppressed` < `low` <
//!   `medium` < `high`); a guarded alert that would be lowered is a guard hit.
//! - A signature *matches* an alert when it decides it or is held back on it; the two are
//!   counted apart, so a signature gaining `allow_high` shows as held-back alerts it now
//!   decides.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use sf_policy::{Bucket, MatchedKind};

use crate::store::ledger::readonly::StoredRow;

/// The override or signature that decided an alert: kind and id (`suppress:fp-x`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rule {
    pub kind: &'static str,
    pub id: String,
}

impl Rule {
    pub fn new(kind: MatchedKind, id: &str) -> Rule {
        Rule {
            kind: kind.as_str(),
            id: id.to_string(),
        }
    }

    /// A held-back signature.
    pub fn signature(id: &str) -> Rule {
        Rule::new(MatchedKind::Suppress, id)
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.kind, self.id)
    }
}

/// One side of the comparison: a decision as stored, or as the candidate makes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Side {
    pub bucket: Bucket,
    /// The override or signature that decided, if one did.
    pub matched: Option<Rule>,
    /// Signatures that matched but could not suppress a high alert.
    pub held_back: Vec<String>,
    /// The incident id (none: a case stored without one).
    pub incident: Option<String>,
}

/// One replayed alert.
#[derive(Debug, Clone)]
pub struct Replayed {
    pub row: StoredRow,
    /// The case id (allow-listed).
    pub case_id: String,
    pub stored: Side,
    pub candidate: Side,
    /// Expired signatures of the candidate that would have matched.
    pub candidate_expired: Vec<String>,
    pub candidate_critical: bool,
    /// The policy version `case.json` names (the policy that decided it).
    pub stored_policy: Option<String>,
    /// The bucket the current policy would decide (none: no current policy to ask).
    pub current: Option<Bucket>,
}

impl Replayed {
    pub fn lowered(&self) -> bool {
        self.candidate.bucket < self.stored.bucket
    }

    fn changed(&self) -> bool {
        fn held(s: &Side) -> BTreeSet<&String> {
            s.held_back.iter().collect()
        }
        self.stored.bucket != self.candidate.bucket
            || self.stored.matched != self.candidate.matched
            || held(&self.stored) != held(&self.candidate)
            || self.stored.incident != self.candidate.incident
    }
}

/// The alerts of a `--guard` file: alert keys and case ids known to be true positives.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    entries: HashSet<String>,
}

impl Guard {
    /// One alert key or case id per line; blank lines and lines starting with `#` (after
    /// leading blanks) are ignored; each line is trimmed.
    pub fn parse(text: &str) -> Guard {
        Guard {
            entries: text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string)
                .collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry naming this alert (its key or its case id), if one does.
    fn names(&self, alert_key: &str, case_id: &str) -> Option<&str> {
        self.entries
            .get(alert_key)
            .or_else(|| self.entries.get(case_id))
            .map(String::as_str)
    }
}

/// What one signature (or override) would decide or hold back differently: case ids.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleDiff {
    pub decides_added: Vec<String>,
    pub decides_removed: Vec<String>,
    pub held_back_added: Vec<String>,
    pub held_back_removed: Vec<String>,
}

/// How the replayed alerts' incidents would change. An incident is judged by the alerts it
/// holds among the replayed ones (members outside the period are not read).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IncidentDiff {
    /// Distinct incidents of the replayed alerts: stored, and as the candidate groups them.
    pub before: u64,
    pub after: u64,
    /// Alerts the candidate puts in another incident.
    pub regrouped: u64,
    /// Stored incidents whose alerts' highest bucket would change: (from, to) → count.
    pub highest: BTreeMap<(Bucket, Bucket), u64>,
    /// Stored incidents whose highest bucket would fall from `high` or `medium`: id, from, to.
    pub leaving_high_or_medium: Vec<(String, Bucket, Bucket)>,
}

/// What the candidate would change, over every replayed alert.
#[derive(Debug, Clone, Default)]
pub struct Diff {
    pub replayed: u64,
    /// `transitions[stored][candidate]`, buckets in [`Bucket::ALL`] order.
    pub transitions: [[u64; 4]; 4],
    /// Every alert whose bucket, deciding rule, held-back signatures or incident would change:
    /// the stored bucket high first, then alert time, then case id.
    pub changed: Vec<Replayed>,
    pub lowered: u64,
    pub raised: u64,
    /// Per rule, in rule order.
    pub rules: BTreeMap<Rule, RuleDiff>,
    pub incidents: IncidentDiff,
    /// Indexes into `changed` of the alerts leaving `high` or `medium` for a lower bucket.
    pub leaving_high_or_medium: Vec<usize>,
    /// Indexes into `changed` of guarded alerts that would be lowered.
    pub guard_hits: Vec<usize>,
    /// Guard entries that name a replayed alert.
    pub guard_checked: u64,
    /// Alerts the current policy would itself put in another bucket than the stored one (none:
    /// no current policy was asked).
    pub current_differs: Option<u64>,
}

fn rank(b: Bucket) -> usize {
    Bucket::ALL.iter().position(|x| *x == b).unwrap_or(0)
}

/// Folds the replayed alerts into what would change.
pub fn fold(items: Vec<Replayed>, guard: &Guard) -> Diff {
    let mut d = Diff {
        replayed: items.len() as u64,
        ..Diff::default()
    };
    // Guard entries are checked against every replayed alert, changed or not: an entry that
    // names none (outside the period, not triaged) protects nothing, and the report says so.
    let mut guard_seen: HashSet<String> = HashSet::new();
    // Stored incident → (highest stored bucket, highest candidate bucket) of its alerts.
    let mut by_incident: BTreeMap<String, (Bucket, Bucket)> = BTreeMap::new();
    let mut after: HashSet<String> = HashSet::new();
    let mut changed: Vec<(Replayed, bool)> = Vec::new();
    for it in items {
        d.transitions[rank(it.stored.bucket)][rank(it.candidate.bucket)] += 1;
        if let Some(c) = it.current {
            *d.current_differs.get_or_insert(0) += u64::from(c != it.stored.bucket);
        }
        if let Some(s) = &it.stored.incident {
            let e = by_incident
                .entry(s.clone())
                .or_insert((it.stored.bucket, it.candidate.bucket));
            e.0 = e.0.max(it.stored.bucket);
            e.1 = e.1.max(it.candidate.bucket);
        }
        if let Some(c) = &it.candidate.incident {
            after.insert(c.clone());
        }
        if it.stored.incident != it.candidate.incident {
            d.incidents.regrouped += 1;
        }
        let guarded = match guard.names(&it.row.alert_key, &it.case_id) {
            Some(e) => {
                guard_seen.insert(e.to_string());
                true
            }
            None => false,
        };
        if it.changed() {
            changed.push((it, guarded));
        }
    }
    d.guard_checked = guard_seen.len() as u64;
    changed.sort_by(|(a, _), (b, _)| {
        b.stored
            .bucket
            .cmp(&a.stored.bucket)
            .then_with(|| a.row.alert_time.cmp(&b.row.alert_time))
            .then_with(|| a.case_id.cmp(&b.case_id))
    });
    for (i, (it, guarded)) in changed.iter().enumerate() {
        if it.lowered() {
            d.lowered += 1;
            if it.stored.bucket >= Bucket::Medium {
                d.leaving_high_or_medium.push(i);
            }
            if *guarded {
                d.guard_hits.push(i);
            }
        } else if it.candidate.bucket > it.stored.bucket {
            d.raised += 1;
        }
        if it.stored.matched != it.candidate.matched {
            if let Some(r) = &it.candidate.matched {
                let e = d.rules.entry(r.clone()).or_default();
                e.decides_added.push(it.case_id.clone());
            }
            if let Some(r) = &it.stored.matched {
                let e = d.rules.entry(r.clone()).or_default();
                e.decides_removed.push(it.case_id.clone());
            }
        }
        for h in &it.candidate.held_back {
            if !it.stored.held_back.contains(h) {
                let e = d.rules.entry(Rule::signature(h)).or_default();
                e.held_back_added.push(it.case_id.clone());
            }
        }
        for h in &it.stored.held_back {
            if !it.candidate.held_back.contains(h) {
                let e = d.rules.entry(Rule::signature(h)).or_default();
                e.held_back_removed.push(it.case_id.clone());
            }
        }
    }
    d.incidents.before = by_incident.len() as u64;
    d.incidents.after = after.len() as u64;
    for (id, (from, to)) in by_incident {
        if from != to {
            *d.incidents.highest.entry((from, to)).or_default() += 1;
            if to < from && from >= Bucket::Medium {
                d.incidents.leaving_high_or_medium.push((id, from, to));
            }
        }
    }
    d.changed = changed.into_iter().map(|(it, _)| it).collect();
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(key: &str, time: &str) -> StoredRow {
        StoredRow {
            alert_key: key.into(),
            state: "triaged".into(),
            bucket: None,
            case_id: None,
            case_path: None,
            alert_time: time.into(),
            agent: None,
            rule_id: None,
            level: None,
            description: None,
            incident: None,
        }
    }

    fn side(bucket: Bucket, matched: Option<&str>, held: &[&str], inc: &str) -> Side {
        Side {
            bucket,
            matched: matched.map(Rule::signature),
            held_back: held.iter().map(|s| s.to_string()).collect(),
            incident: Some(inc.into()),
        }
    }

    fn item(row: &StoredRow, id: &str, stored: Side, candidate: Side) -> Replayed {
        Replayed {
            row: row.clone(),
            case_id: id.into(),
            stored,
            candidate,
            candidate_expired: vec![],
            candidate_critical: false,
            stored_policy: None,
            current: Some(Bucket::Low),
        }
    }

    /// `(stored, candidate)` per alert, a guard file → the fold's figures, checked against
    /// `expected`: transitions that are not zero, changed case ids in order, leaving
    /// high/medium, guard hits.
    fn check(alerts: &[(Side, Side)], guard: &str, expected: &str) {
        let rows: Vec<StoredRow> = (0..alerts.len())
            .map(|i| row(&format!("k{i}"), &format!("2026-01-01T00:00:0{i}.000Z")))
            .collect();
        let items: Vec<Replayed> = alerts
            .iter()
            .enumerate()
            .map(|(i, (s, c))| item(&rows[i], &format!("SF-{i}"), s.clone(), c.clone()))
            .collect();
        let d = fold(items, &Guard::parse(guard));
        let mut got = Vec::new();
        for (i, from) in Bucket::ALL.iter().enumerate() {
            for (j, to) in Bucket::ALL.iter().enumerate() {
                if d.transitions[i][j] > 0 {
                    got.push(format!("{from}->{to}={}", d.transitions[i][j]));
                }
            }
        }
        let ids = |v: &[usize]| {
            v.iter()
                .map(|i| d.changed[*i].case_id.clone())
                .collect::<Vec<_>>()
                .join(",")
        };
        got.push(format!(
            "changed={}",
            d.changed
                .iter()
                .map(|c| c.case_id.as_str())
                .collect::<Vec<_>>()
                .join(",")
        ));
        got.push(format!("lowered={} raised={}", d.lowered, d.raised));
        got.push(format!("leaving={}", ids(&d.leaving_high_or_medium)));
        got.push(format!(
            "guard_hits={} checked={}",
            ids(&d.guard_hits),
            d.guard_checked
        ));
        for (r, x) in &d.rules {
            got.push(format!(
                "{r}: +{:?} -{:?} held+{:?} held-{:?}",
                x.decides_added, x.decides_removed, x.held_back_added, x.held_back_removed
            ));
        }
        got.push(format!(
            "incidents {}->{} regrouped={} highest={:?} leaving={:?}",
            d.incidents.before,
            d.incidents.after,
            d.incidents.regrouped,
            d.incidents.highest,
            d.incidents.leaving_high_or_medium
        ));
        got.push(format!("current_differs={:?}", d.current_differs));
        assert_eq!(got.join("\n"), expected.trim());
    }

    use Bucket::{High, Low, Medium, Suppressed};

    #[test]
    fn a_broad_signature_lowers_alerts_holds_back_the_high_one_and_a_guard_on_a_lowered_one_hits() {
        check(
            &[
                (
                    side(Low, None, &[], "I1"),
                    side(Suppressed, Some("fp-broad"), &[], "I1"),
                ),
                (
                    side(Medium, None, &[], "I2"),
                    side(Suppressed, Some("fp-broad"), &[], "I2"),
                ),
                (
                    side(High, None, &[], "I2"),
                    side(High, None, &["fp-broad"], "I2"),
                ),
                (side(Low, None, &[], "I3"), side(Low, None, &[], "I3")),
            ],
            "# true positives\n  k2  \nSF-1\nnot-replayed\n",
            r#"
low->suppressed=1
low->low=1
medium->suppressed=1
high->high=1
changed=SF-2,SF-1,SF-0
lowered=2 raised=0
leaving=SF-1
guard_hits=SF-1 checked=2
suppress:fp-broad: +["SF-1", "SF-0"] -[] held+["SF-2"] held-[]
incidents 3->3 regrouped=0 highest={(Low, Suppressed): 1} leaving=[]
current_differs=Some(2)
"#,
        );
    }

    #[test]
    fn nothing_changes_when_the_candidate_decides_as_stored() {
        check(
            &[(
                side(Suppressed, Some("fp-x"), &[], "I1"),
                side(Suppressed, Some("fp-x"), &[], "I1"),
            )],
            "",
            r#"
suppressed->suppressed=1
changed=
lowered=0 raised=0
leaving=
guard_hits= checked=0
incidents 1->1 regrouped=0 highest={} leaving=[]
current_differs=Some(1)
"#,
        );
    }

    #[test]
    fn allow_high_turns_a_held_back_signature_into_the_deciding_one_and_regrouping_is_counted() {
        check(
            &[
                (
                    side(High, None, &["fp-broad"], "I1"),
                    side(Suppressed, Some("fp-broad"), &[], "I9"),
                ),
                (
                    side(Suppressed, Some("fp-old"), &[], "I2"),
                    side(Medium, None, &[], "I2"),
                ),
            ],
            "SF-0",
            r#"
suppressed->medium=1
high->suppressed=1
changed=SF-0,SF-1
lowered=1 raised=1
leaving=SF-0
guard_hits=SF-0 checked=1
suppress:fp-broad: +["SF-0"] -[] held+[] held-["SF-0"]
suppress:fp-old: +[] -["SF-1"] held+[] held-[]
incidents 2->2 regrouped=1 highest={(Suppressed, Medium): 1, (High, Suppressed): 1} leaving=[("I1", High, Suppressed)]
current_differs=Some(2)
"#,
        );
    }
}
