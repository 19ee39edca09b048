//! What the sampled alerts of an incident have in common: their rules ([`rules`]), ATT&CK
//! techniques and tactics ([`mitre`]) and observables ([`observed`]), each distinct value with
//! the number of sampled alerts that carry it. Raw values only (the page escapes them); every
//! field is optional and any JSON type is accepted.

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::stages::escalate::observables::{observables, ObservableKind};

use super::MemberRef;

/// A distinct value and the number of sampled alerts (or members) that carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Counted<T> {
    pub(super) item: T,
    pub(super) count: usize,
}

/// A rule: its id and description, as the alert (or the ledger) has them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Rule {
    pub(super) id: Option<String>,
    pub(super) description: Option<String>,
}

/// A distinct observable: the first raw value seen and the field it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Seen {
    pub(super) kind: ObservableKind,
    pub(super) value: String,
    pub(super) field: String,
}

/// An ATT&CK technique: its id and its name, either may be missing.
pub(super) type Technique = (Option<String>, Option<String>);

/// A dotted field of an alert.
pub(super) fn get<'a>(alert: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let mut v = alert.get(parts.next()?)?;
    for p in parts {
        v = v.as_object()?.get(p)?;
    }
    Some(v)
}

/// A string, number or boolean as text; `None` for anything else.
pub(super) fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A field as a list of texts: the scalars of a list, or the one scalar.
fn texts(alert: &Map<String, Value>, path: &str) -> Vec<String> {
    match get(alert, path) {
        Some(Value::Array(items)) => items.iter().filter_map(scalar).collect(),
        Some(v) => scalar(v).into_iter().collect(),
        None => Vec::new(),
    }
    .into_iter()
    .filter(|s| !s.is_empty())
    .collect()
}

/// Counts items in order of first appearance, then sorts by count, most first (stable: ties
/// keep that order).
fn count_in_order<T: Eq + std::hash::Hash + Clone>(
    items: impl IntoIterator<Item = T>,
) -> Vec<Counted<T>> {
    let mut index: HashMap<T, usize> = HashMap::new();
    let mut out: Vec<Counted<T>> = Vec::new();
    for item in items {
        match index.get(&item) {
            Some(&i) => out[i].count += 1,
            None => {
                index.insert(item.clone(), out.len());
                out.push(Counted { item, count: 1 });
            }
        }
    }
    out.sort_by_key(|c| std::cmp::Reverse(c.count));
    out
}

/// The rules of the sampled alerts, most frequent first; from the timeline's members when the
/// sample is empty.
pub(super) fn rules(sample: &[Map<String, Value>], timeline: &[MemberRef]) -> Vec<Counted<Rule>> {
    if sample.is_empty() {
        return count_in_order(timeline.iter().map(|m| Rule {
            id: m.rule_id.clone().filter(|s| !s.is_empty()),
            description: m.description.clone().filter(|s| !s.is_empty()),
        }));
    }
    count_in_order(sample.iter().map(|a| {
        Rule {
            id: get(a, "rule.id").and_then(scalar).filter(|s| !s.is_empty()),
            description: get(a, "rule.description")
                .and_then(scalar)
                .filter(|s| !s.is_empty()),
        }
    }))
}

/// The ATT&CK techniques (id and name, paired by position as Wazuh lists them) and the tactics
/// of the sampled alerts, most frequent first. Each alert counts once per distinct value.
pub(super) fn mitre(
    sample: &[Map<String, Value>],
) -> (Vec<Counted<Technique>>, Vec<Counted<String>>) {
    let mut techniques = Vec::new();
    let mut tactics = Vec::new();
    for a in sample {
        let ids = texts(a, "rule.mitre.id");
        let names = texts(a, "rule.mitre.technique");
        let mut mine: Vec<Technique> = (0..ids.len().max(names.len()))
            .map(|i| (ids.get(i).cloned(), names.get(i).cloned()))
            .collect();
        mine.dedup();
        let mut seen = std::collections::HashSet::new();
        techniques.extend(mine.into_iter().filter(|t| seen.insert(t.clone())));
        let mut seen = std::collections::HashSet::new();
        tactics.extend(
            texts(a, "rule.mitre.tactic")
                .into_iter()
                .filter(|t| seen.insert(t.clone())),
        );
    }
    (count_in_order(techniques), count_in_order(tactics))
}

/// The distinct observables of the sampled alerts (compared as `observables` compares them:
/// hashes, domains and CVE ids without regard to case), with the number of alerts that carry
/// each, sorted by that count (most first), then kind, then value.
pub(super) fn observed(sample: &[Map<String, Value>]) -> Vec<Counted<Seen>> {
    let mut index: HashMap<(ObservableKind, String), usize> = HashMap::new();
    let mut out: Vec<Counted<Seen>> = Vec::new();
    for alert in sample {
        // `observables` already lists each (kind, value) of one alert once. Context (the
        // agent's own address, vendor references) is not what the burst shares.
        for o in observables(alert).into_iter().filter(|o| o.is_indicator()) {
            let norm = match o.kind {
                ObservableKind::Md5
                | ObservableKind::Sha1
                | ObservableKind::Sha256
                | ObservableKind::Domain
                | ObservableKind::Cve => o.value.to_lowercase(),
                _ => o.value.clone(),
            };
            match index.get(&(o.kind, norm.clone())) {
                Some(&i) => out[i].count += 1,
                None => {
                    index.insert((o.kind, norm), out.len());
                    out.push(Counted {
                        item: Seen {
                            kind: o.kind,
                            value: o.value,
                            field: o.field,
                        },
                        count: 1,
                    });
                }
            }
        }
    }
    out.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then(a.item.kind.cmp(&b.item.kind))
            .then_with(|| a.item.value.cmp(&b.item.value))
    });
    out
}
