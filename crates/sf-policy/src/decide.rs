//! The decision: a compiled [`Policy`] applied to one alert. Aliases, then overrides, then
//! false-positive signatures, then severity; first match wins in each list. Pure: no IO, and "now"
//! is an argument.

use crate::alias::{lowercase, scalar_text, Aliases, ManagerSpan};
use crate::bucket::{Bucket, MatchedKind, Thresholds, CRITICAL_LEVEL};
use crate::diagnostic::Diagnostic;
use crate::level::Level;
use crate::matcher::{Clause, Subject};
use crate::value::{any_at, get, index_key, json_type, push_quoted, FxMap};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use serde_json::Value;
use std::borrow::Cow;
use std::fmt;

/// A compiled policy. Built once ([`Policy::parse`]); shared by every triage thread.
#[derive(Debug, Clone)]
pub struct Policy {
    pub(crate) version: String,
    pub(crate) thresholds: Thresholds,
    pub(crate) aliases: Aliases,
    pub(crate) grouping: crate::group::Grouping,
    pub(crate) overrides: RuleSet,
    pub(crate) signatures: RuleSet,
}

/// An `[[override]]` or a `[[suppress]]` signature.
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    pub(crate) id: String,
    /// The bucket it decides: the override's, or `Suppressed`.
    pub(crate) bucket: Bucket,
    /// Evaluated in this order; the clause the rule is indexed by comes last (the index already
    /// as good as checked it).
    pub(crate) clauses: Vec<Clause>,
    /// Per clause, the trace line when it fails: `[field present, field missing]`, written once
    /// at compile time so that explaining a miss costs one copy.
    pub(crate) fail_lines: Vec<[Box<str>; 2]>,
    pub(crate) allow_high: bool,
    pub(crate) expires: Option<NaiveDate>,
    /// Where `expires` is written (line, column), for expiry warnings.
    pub(crate) expires_at: (usize, usize),
}

impl Rule {
    /// `None` when the rule matches, else the trace line of the first clause that fails.
    fn miss(&self, subject: &Subject<'_>) -> Option<&str> {
        self.clauses
            .iter()
            .zip(&self.fail_lines)
            .find_map(|(clause, lines)| match clause.check(subject) {
                Ok(()) => None,
                Err(present) => Some(&*lines[usize::from(!present)]),
            })
    }

    fn expired(&self, today: NaiveDate) -> bool {
        self.expires.is_some_and(|d| today > d)
    }
}

/// An index of rules by the value one field must equal.
#[derive(Debug, Clone, Default)]
pub(crate) struct FieldIndex {
    pub(crate) path: Box<[Box<str>]>,
    /// Index key of a value → the rules requiring it, in file order.
    pub(crate) rules: FxMap<String, Vec<u32>>,
}

impl FieldIndex {
    /// Calls `f` with the list of every key the alert's values of this field hit.
    fn hits<'s>(&'s self, alert: &Value, f: &mut impl FnMut(&'s [u32])) {
        any_at(alert, &self.path, &mut |v| {
            if let Some(list) = index_key(v).and_then(|k| self.rules.get(&*k)) {
                f(list);
            }
            false
        });
    }
}

/// Rules of one list, indexed so that an alert meets only the rules it can match: by the
/// `rule.id` they pin (most do), else by another field they require to equal a value, and the
/// few that pin nothing.
#[derive(Debug, Clone, Default)]
pub(crate) struct RuleSet {
    pub(crate) rules: Vec<Rule>,
    /// rule.id key → the rules pinning it, merged with `unindexed`, in file order.
    pub(crate) by_rule_id: FieldIndex,
    /// Rules that pin no rule.id, by another field they require.
    pub(crate) by_field: Vec<FieldIndex>,
    /// Rules no index holds: every alert meets them.
    pub(crate) unindexed: Vec<u32>,
}

impl RuleSet {
    /// The rules an alert can match, in file order.
    fn candidates<'s>(&'s self, alert: &Value) -> Cow<'s, [u32]> {
        let mut first: Option<&'s [u32]> = None;
        let mut merged: Option<Vec<u32>> = None;
        let mut add = |list: &'s [u32]| match (&mut merged, first) {
            (None, None) => first = Some(list),
            (None, Some(f)) => {
                let mut m: Vec<u32> = f.iter().chain(list).copied().collect();
                m.sort_unstable();
                m.dedup();
                merged = Some(m);
            }
            (Some(m), _) => {
                m.extend_from_slice(list);
                m.sort_unstable();
                m.dedup();
            }
        };
        // rule.id lists already hold the unindexed rules; without a rule.id hit, add them.
        let mut rule_id_hit = false;
        if !self.by_rule_id.rules.is_empty() {
            self.by_rule_id.hits(alert, &mut |list| {
                rule_id_hit = true;
                add(list);
            });
        }
        for index in &self.by_field {
            index.hits(alert, &mut add);
        }
        if !rule_id_hit {
            add(&self.unindexed);
        }
        match (merged, first) {
            (Some(m), _) => Cow::Owned(m),
            (None, Some(f)) => Cow::Borrowed(f),
            (None, None) => Cow::Borrowed(&[]),
        }
    }

    fn ids(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|r| r.id.as_str())
    }
}

/// What the policy decided for one alert, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// The bucket the alert goes to.
    pub bucket: Bucket,
    /// `high` and `rule.level` 15 or more.
    pub critical: bool,
    /// The canonical agent: the alias's canonical name, else `agent.name`, else `"unknown"`.
    pub agent: String,
    /// The canonical name of the alias that applied, if one did.
    pub alias: Option<String>,
    /// The id of the override or signature that decided, if one did.
    pub matched: Option<String>,
    /// Whether `matched` is an override or a signature.
    pub matched_kind: Option<MatchedKind>,
    /// Signatures that matched but could not suppress an alert at or above `high`.
    pub held_back: Vec<String>,
    /// Expired signatures that would have matched this alert (they match nothing).
    pub expired: Vec<String>,
    /// The steps, readable: alias, candidates tried and why each did or did not match, bucket.
    pub trace: Vec<String>,
    /// `rule.level`.
    pub level: u32,
    /// The span slot of the id alias without `manager` that applied by `agent.id`, if one did:
    /// what [`Policy::note_manager`] records the alert's manager under.
    #[serde(skip)]
    span: Option<u32>,
}

/// Why an alert cannot be decided (it is quarantined): a field the decision needs is missing or
/// of the wrong type. Displays as e.g. `rule.level is missing`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {problem}")]
pub struct DecideError {
    field: &'static str,
    problem: String,
}

impl DecideError {
    fn new(field: &'static str, problem: impl Into<String>) -> Self {
        DecideError {
            field,
            problem: problem.into(),
        }
    }

    /// The field that is wrong (`rule.level`, `rule`, or `alert` for the document itself).
    pub fn field(&self) -> &str {
        self.field
    }
}

/// The alert document inside an indexer hit (`{"_index": .., "_id": .., "_source": {..}}`), or
/// the value itself when it is a bare alert.
pub fn alert_document(v: &Value) -> &Value {
    match v.get("_source") {
        Some(source @ Value::Object(_)) => source,
        _ => v,
    }
}

/// Reads `rule.level` as [`Level::read`] does (the pipeline's reading too): the level, or why
/// the alert cannot be decided (`rule` or the alert itself not an object included).
fn read_level(alert: &Value) -> Result<u32, DecideError> {
    let rule = match alert {
        Value::Object(map) => map.get("rule"),
        other => {
            return Err(DecideError::new(
                "alert",
                format!("is {}, expected an object", json_type(other)),
            ))
        }
    };
    let level = match rule {
        None | Some(Value::Null) => return Err(DecideError::new("rule.level", "is missing")),
        Some(Value::Object(map)) => Level::read(map.get("level")),
        Some(other) => {
            return Err(DecideError::new(
                "rule",
                format!("is {}, expected an object", json_type(other)),
            ))
        }
    };
    level
        .decidable()
        .map_err(|problem| DecideError::new("rule.level", problem))
}

/// The fields an alias's `names` are compared with that the event's own text supplies (the
/// Windows event, the syslog line): anyone who can write to a log chooses them, so they pick an
/// alias only when no alias matches `agent.id` or `agent.name`, which the Wazuh manager vouches
/// for.
const EVENT_NAME_FIELDS: [(&str, &[&str]); 2] = [
    (
        "data.win.system.computer",
        &["data", "win", "system", "computer"],
    ),
    ("predecoder.hostname", &["predecoder", "hostname"]),
];

impl Policy {
    /// The policy with no file: severity thresholds 7 and 12, nothing else.
    pub fn severity_only() -> Policy {
        Policy {
            version: "severity-only".to_string(),
            thresholds: Thresholds::WAZUH,
            aliases: Aliases::default(),
            grouping: crate::group::Grouping::default(),
            overrides: RuleSet::default(),
            signatures: RuleSet::default(),
        }
    }

    /// The default policy ([`crate::DEFAULT_POLICY_TOML`]), compiled.
    pub fn default_policy() -> Policy {
        Policy::parse(crate::DEFAULT_POLICY_TOML)
            .map(|(policy, _warnings)| policy)
            .expect("the shipped default policy compiles (the crate's tests check it)")
    }

    /// Compiles a policy file. `Ok` carries the warnings; `Err` carries every error (and the
    /// warnings), in file order.
    pub fn parse(src: &str) -> Result<(Policy, Vec<Diagnostic>), Vec<Diagnostic>> {
        crate::compile::compile(src)
    }

    /// A short, stable hash of the policy's source text (recorded in every case).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The incident of a decided alert: a pure function of the alert, its canonical agent and
    /// bucket (a `[[group]]` rule may ask for either), its time and this policy's grouping
    /// (see [`crate::group`]).
    pub fn incident(
        &self,
        alert: &Value,
        agent: &str,
        bucket: Bucket,
        time: DateTime<Utc>,
    ) -> crate::group::IncidentKey {
        self.grouping.incident(alert, agent, bucket, time).0
    }

    /// [`Policy::incident`] with the trace lines that explain it: each `[[group]]` rule tried
    /// before the one that applied, and the incident's id, key and window.
    pub fn incident_traced(
        &self,
        alert: &Value,
        agent: &str,
        bucket: Bucket,
        time: DateTime<Utc>,
    ) -> (crate::group::IncidentKey, Vec<String>) {
        self.grouping.incident(alert, agent, bucket, time)
    }

    /// The ids of the `[[group]]` rules, in file order.
    pub fn group_ids(&self) -> Vec<String> {
        self.grouping.rules.iter().map(|r| r.id.clone()).collect()
    }

    /// The `[severity]` thresholds.
    pub fn thresholds(&self) -> Thresholds {
        self.thresholds
    }

    /// Every override and signature id, overrides first, each list in file order: the keys of
    /// the hit counters (`Decision::matched` is always one of them).
    pub fn signature_ids(&self) -> Vec<String> {
        self.overrides
            .ids()
            .chain(self.signatures.ids())
            .map(str::to_string)
            .collect()
    }

    /// Signatures that are still active but expire within `days` days of `now` (UTC dates),
    /// soonest first.
    pub fn expiring_within(&self, now: DateTime<Utc>, days: u32) -> Vec<(String, NaiveDate)> {
        let today = now.date_naive();
        let horizon = today + chrono::Days::new(u64::from(days));
        let mut out: Vec<(String, NaiveDate)> = self
            .signatures
            .rules
            .iter()
            .filter_map(|r| Some((r.id.clone(), r.expires?)))
            .filter(|(_, d)| *d >= today && *d <= horizon)
            .collect();
        out.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
        out
    }

    /// Warnings for signatures already expired at `now`, with the line of their `expires`.
    /// (Separate from [`Policy::parse`], which does not know the time.)
    pub fn expiry_warnings(&self, now: DateTime<Utc>) -> Vec<Diagnostic> {
        let today = now.date_naive();
        self.signatures
            .rules
            .iter()
            .filter(|r| r.expired(today))
            .filter_map(|r| {
                let date = r.expires?;
                Some(Diagnostic {
                    severity: crate::diagnostic::Severity::Warning,
                    line: r.expires_at.0,
                    column: r.expires_at.1,
                    message: format!("signature `{}` expired on {date}: it matches nothing", r.id),
                    hint: Some(
                        "renew `expires` if the noise is still there, or remove the signature"
                            .to_string(),
                    ),
                })
            })
            .collect()
    }

    /// Whether an override forces this alert to `high` (its queue priority is then raised to the
    /// `high` threshold at enqueue). Needs no `rule.level`.
    pub fn forced_high(&self, alert: &Value) -> bool {
        let agent = self.resolve_agent(alert).0;
        let subject = Subject::new(alert, &agent);
        self.overrides
            .candidates(alert)
            .iter()
            .map(|&i| &self.overrides.rules[i as usize])
            .find(|r| r.miss(&subject).is_none())
            .is_some_and(|r| r.bucket == Bucket::High)
    }

    /// Records, for the warning that an id alias spans managers, the `manager.name` of an alert
    /// this policy decided (`decision`, from [`Policy::decide`] of this policy) when an alias
    /// without `manager` chose its agent by `agent.id`. Returns the span the first time
    /// that alias and id are seen from a second manager (once per policy, alias and id), else
    /// `None`. Deciding stays pure: this is the one thing a policy remembers, shared by its
    /// clones and threads; [`Policy::manager_spans`] lists everything seen so far.
    pub fn note_manager(&self, alert: &Value, decision: &Decision) -> Option<ManagerSpan> {
        self.aliases.note_manager(decision.span?, alert)
    }

    /// Every id alias without `manager` that [`Policy::note_manager`] has seen choose the agent
    /// of alerts from two or more managers, with the managers, in file order.
    pub fn manager_spans(&self) -> Vec<ManagerSpan> {
        self.aliases.manager_spans()
    }

    /// The canonical agent, the alias that applied, the trace line that says so (naming the
    /// field that chose the alias), and the span slot of the alias when it applied by an
    /// `agent.id` it claims for every manager.
    ///
    /// Two tiers, whatever the order of aliases in the file: first `agent.id` (against `ids`,
    /// of the alert's manager when the alias names managers) and `agent.name` (against
    /// `names`), the fields the Wazuh manager vouches for; the first alias in file order that
    /// either matches wins (`agent.id` when both point at it). Only when neither matches any
    /// alias may a name from the event's text ([`EVENT_NAME_FIELDS`], in that order) pick one,
    /// again the first in file order: a forged syslog hostname must not move an agent into
    /// another host's signatures.
    fn resolve_agent(&self, alert: &Value) -> (String, Option<usize>, String, Option<u32>) {
        if !self.aliases.canonical.is_empty() {
            let by_name = |path: &[&str]| -> Option<(usize, Cow<'_, str>)> {
                let value = get(alert, path).and_then(scalar_text)?;
                let i = *self.aliases.by_name.get(&*lowercase(&value))?;
                Some((i, value))
            };
            // The vouched tier: agent.id, then agent.name when it names an earlier alias.
            let mut best: Option<(usize, &str, Cow<'_, str>)> = None;
            // The manager.name of a scoped id's match, for the trace.
            let mut manager: Option<Cow<'_, str>> = None;
            // The span slot of an id claimed for every manager, when it chose the alias.
            let mut span: Option<u32> = None;
            if let Some(id) = get(alert, &["agent", "id"]).and_then(scalar_text) {
                if let Some((claim, scoped)) = self.aliases.by_agent_id(alert, &id) {
                    best = Some((claim.alias, "agent.id", id));
                    manager = scoped;
                    span = claim.span;
                }
            }
            if let Some((i, value)) = by_name(&["agent", "name"]) {
                if best.as_ref().is_none_or(|b| i < b.0) {
                    best = Some((i, "agent.name", value));
                    manager = None;
                    span = None;
                }
            }
            let mut from_text = false;
            if best.is_none() {
                for (name, path) in EVENT_NAME_FIELDS {
                    if let Some((i, value)) = by_name(path) {
                        if best.as_ref().is_none_or(|b| i < b.0) {
                            best = Some((i, name, value));
                            from_text = true;
                        }
                    }
                }
            }
            if let Some((i, field, value)) = best {
                let canonical = self.aliases.canonical[i].clone();
                let why = match (from_text, manager) {
                    (true, _) => Cow::Borrowed(
                        " (a name from the event's text: no alias matches agent.id or agent.name)",
                    ),
                    (false, Some(m)) => Cow::Owned(format!(" and manager.name is {m:?}")),
                    (false, None) => Cow::Borrowed(""),
                };
                let line = format!(
                    "agent {canonical:?}: alias {canonical:?} applied, because {field} is {value:?}{why}"
                );
                return (canonical, Some(i), line, span);
            }
        }
        let aliased = if self.aliases.canonical.is_empty() {
            ""
        } else {
            ", no alias applied"
        };
        match get(alert, &["agent", "name"]) {
            Some(v) => match scalar_text(v) {
                Some(name) => {
                    let mut line = String::with_capacity(name.len() + 40);
                    line.push_str("agent ");
                    push_quoted(&mut line, &name);
                    line.push_str(": from agent.name");
                    line.push_str(aliased);
                    (name.into_owned(), None, line, None)
                }
                None => (
                    "unknown".to_string(),
                    None,
                    format!(
                        "agent \"unknown\": agent.name is {}, not a string{aliased}",
                        json_type(v)
                    ),
                    None,
                ),
            },
            None => (
                "unknown".to_string(),
                None,
                format!("agent \"unknown\": agent.name is missing{aliased}"),
                None,
            ),
        }
    }

    /// Decides one alert (a bare alert; see [`alert_document`] for indexer hits). `now` decides
    /// which signatures have expired. Errors when `rule.level` is not a level ([`Level`]).
    pub fn decide(&self, alert: &Value, now: DateTime<Utc>) -> Result<Decision, DecideError> {
        let level = read_level(alert)?;
        let rule_id = get(alert, &["rule", "id"]).and_then(scalar_text);
        let (agent, alias, agent_line, span) = self.resolve_agent(alert);
        let mut trace = Vec::with_capacity(6);
        trace.push(agent_line);
        let mut decision = Decision {
            bucket: Bucket::Low,
            critical: false,
            agent,
            alias: alias.map(|i| self.aliases.canonical[i].clone()),
            matched: None,
            matched_kind: None,
            held_back: Vec::new(),
            expired: Vec::new(),
            trace: Vec::new(),
            level,
            span,
        };
        let subject = Subject::new(alert, &decision.agent);

        // Overrides: the first that matches forces the bucket.
        let overrides = self.overrides.candidates(alert);
        trace.reserve(overrides.len() + 1);
        note_candidates(
            &mut trace,
            "override",
            &self.overrides,
            &overrides,
            rule_id.as_deref(),
        );
        let mut decided: Option<(Bucket, String, MatchedKind)> = None;
        for &i in overrides.iter() {
            let rule = &self.overrides.rules[i as usize];
            match rule.miss(&subject) {
                Some(line) => trace.push(line.to_string()),
                None => {
                    trace.push(format!(
                        "override {}: matched, forcing bucket {}",
                        rule.id, rule.bucket
                    ));
                    decided = Some((rule.bucket, rule.id.clone(), MatchedKind::Override));
                    break;
                }
            }
        }

        // Signatures: the first that matches and may suppress this alert decides.
        if decided.is_none() {
            let today = now.date_naive();
            let high = self.thresholds.high;
            let signatures = self.signatures.candidates(alert);
            // One line per candidate, plus the count and the bucket: allocate once.
            trace.reserve(signatures.len() + 3);
            note_candidates(
                &mut trace,
                "signature",
                &self.signatures,
                &signatures,
                rule_id.as_deref(),
            );
            for &i in signatures.iter() {
                let rule = &self.signatures.rules[i as usize];
                let failing = rule.miss(&subject);
                if rule.expired(today) {
                    let date = rule.expires.map(|d| d.to_string()).unwrap_or_default();
                    if failing.is_none() {
                        trace.push(format!(
                            "signature {}: would match, but it expired on {date} and matches nothing",
                            rule.id
                        ));
                        decision.expired.push(rule.id.clone());
                    } else {
                        trace.push(format!(
                            "signature {}: expired on {date} (and would not match)",
                            rule.id
                        ));
                    }
                    continue;
                }
                if let Some(line) = failing {
                    trace.push(line.to_string());
                    continue;
                }
                if level >= high && !rule.allow_high {
                    trace.push(format!(
                        "signature {}: matched, but held back: level {level} is at or above high ({high}) and it does not set allow_high",
                        rule.id
                    ));
                    decision.held_back.push(rule.id.clone());
                    continue;
                }
                let note = if level >= high {
                    format!(" (level {level} is at or above high ({high}); it sets allow_high)")
                } else {
                    String::new()
                };
                trace.push(format!("signature {}: matched, suppressing{note}", rule.id));
                decided = Some((Bucket::Suppressed, rule.id.clone(), MatchedKind::Suppress));
                break;
            }
        }

        let t = self.thresholds;
        match decided {
            Some((bucket, id, kind)) => {
                let noun = match kind {
                    MatchedKind::Override => "override",
                    MatchedKind::Suppress => "signature",
                };
                trace.push(format!(
                    "bucket {bucket}: decided by {noun} {id} (level {level})"
                ));
                decision.bucket = bucket;
                decision.matched = Some(id);
                decision.matched_kind = Some(kind);
            }
            None => {
                let bucket = t.bucket_for(level);
                let why = match bucket {
                    Bucket::High => format!("level {level} is at or above high ({})", t.high),
                    Bucket::Medium => format!(
                        "level {level} is at or above medium ({}) and below high ({})",
                        t.medium, t.high
                    ),
                    _ => format!("level {level} is below medium ({})", t.medium),
                };
                trace.push(format!("bucket {bucket}: {why}"));
                decision.bucket = bucket;
            }
        }
        decision.critical = decision.bucket == Bucket::High && level >= CRITICAL_LEVEL;
        if decision.critical {
            trace.push(format!(
                "critical: level {level} is {CRITICAL_LEVEL} or more"
            ));
        }
        decision.trace = trace;
        Ok(decision)
    }
}

/// One trace line saying which rules of a list the alert meets (nothing when the list is empty).
fn note_candidates(
    trace: &mut Vec<String>,
    kind: &str,
    set: &RuleSet,
    candidates: &[u32],
    rule_id: Option<&str>,
) {
    let total = set.rules.len();
    if total == 0 {
        return;
    }
    let mut line = format!("{kind}s: {} of {total} are candidates", candidates.len());
    if !set.by_rule_id.rules.is_empty() {
        match rule_id {
            Some(id) => {
                line.push_str(" for rule.id ");
                push_quoted(&mut line, id);
            }
            None => line.push_str(" (the alert has no rule.id)"),
        }
    }
    trace.push(line);
}

impl fmt::Display for Decision {
    /// One line: `bucket=.. critical=.. agent=.. alias=.. matched=..(kind) held_back=[..] expired=[..] level=..`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bucket={}", self.bucket)?;
        if self.critical {
            write!(f, " critical")?;
        }
        write!(f, " agent={}", self.agent)?;
        if let Some(alias) = &self.alias {
            write!(f, " alias={alias}")?;
        }
        match (&self.matched, self.matched_kind) {
            (Some(id), Some(kind)) => write!(f, " matched={id}({kind})")?,
            (Some(id), None) => write!(f, " matched={id}")?,
            _ => write!(f, " matched=-")?,
        }
        write!(
            f,
            " held_back=[{}] expired=[{}] level={}",
            self.held_back.join(","),
            self.expired.join(","),
            self.level
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn a_policy_can_be_shared_across_threads() {
        assert_send_sync::<Policy>();
    }
}
