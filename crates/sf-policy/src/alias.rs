//! `[[alias]]` tables: names (global) and agent ids (numbered per Wazuh manager), and the record of
//! which managers each id alias without `manager` has been seen from, which says when such an
//! alias merges different hosts.
//!
//! Design constraints:
//! - **An agent id is the manager's number, not the host's.** Every manager counts its agents
//!   from `001`, so in a corpus of several managers `001` is several hosts. An alias's `manager`
//!   scopes its `ids` to the alerts whose `manager.name` it lists (without regard to case); an
//!   alert without `manager.name` matches no scoped id. `names` are the host's own and match on
//!   every manager.
//! - **Backward compatible, but not silent.** An id alias without `manager` matches every
//!   manager, as before; [`Aliases::note_manager`] records the managers it applied for, and says
//!   so once per alias and id when they are two or more (`policy test` reports them all, triage
//!   logs a warning).
//! - **Cheap.** Deciding pays one map lookup per alert for ids, as before; `manager.name` is read
//!   only when the id has a scoped claim. Recording a manager is a lock-free comparison with the
//!   first manager seen; a lock is taken only for alerts of a second manager, which is the
//!   misconfiguration being reported.

use crate::value::{get, FxMap};
use serde_json::Value;
use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};

/// The managers remembered per alias and id: enough to name them in a warning, bounded whatever
/// `manager.name` values the alerts carry.
const MAX_MANAGERS: usize = 32;

/// `[[alias]]` entries and their lookup tables.
#[derive(Debug, Clone, Default)]
pub(crate) struct Aliases {
    pub(crate) canonical: Vec<String>,
    /// Lowercased name → index of the first alias that lists it.
    pub(crate) by_name: FxMap<String, usize>,
    /// Agent id → the aliases claiming it, in file order: the first whose managers hold the
    /// alert's `manager.name` (or that names no manager) applies.
    pub(crate) by_id: FxMap<String, Vec<IdClaim>>,
    /// Per claim without `manager` ([`IdClaim::span`]), the managers it applied for. Shared by a
    /// policy's clones: they are the same policy.
    pub(crate) spans: Arc<Vec<SpanSlot>>,
}

/// One alias's claim on an agent id.
#[derive(Debug, Clone)]
pub(crate) struct IdClaim {
    /// The alias (index into `canonical`).
    pub(crate) alias: usize,
    /// Lowercased `manager.name` values the claim is scoped to; empty: every manager.
    pub(crate) managers: Box<[Box<str>]>,
    /// The claim's slot in `spans`: claims without managers have one.
    pub(crate) span: Option<u32>,
}

/// The managers one id alias without `manager` has applied for.
#[derive(Debug)]
pub(crate) struct SpanSlot {
    pub(crate) alias: usize,
    pub(crate) id: Box<str>,
    /// The first manager seen: (lowercased, as written). Alerts of that manager, nearly all of
    /// them, stop here without a lock.
    first: OnceLock<(Box<str>, Box<str>)>,
    /// Managers seen after the first, (lowercased, as written), in order: [`MAX_MANAGERS`] in
    /// all at most.
    more: Mutex<Vec<(Box<str>, Box<str>)>>,
}

impl SpanSlot {
    pub(crate) fn new(alias: usize, id: &str) -> SpanSlot {
        SpanSlot {
            alias,
            id: id.into(),
            first: OnceLock::new(),
            more: Mutex::new(Vec::new()),
        }
    }

    /// Records one alert's manager; true when it is the second manager this slot has seen (the
    /// moment the alias is known to span managers).
    fn note(&self, manager: &str) -> bool {
        let key = lowercase(manager);
        let (first, _) = self
            .first
            .get_or_init(|| (key.as_ref().into(), manager.into()));
        if **first == *key {
            return false;
        }
        let mut more = self.more.lock().unwrap_or_else(|e| e.into_inner());
        if more.len() + 1 >= MAX_MANAGERS || more.iter().any(|(k, _)| **k == *key) {
            return false;
        }
        more.push((key.as_ref().into(), manager.into()));
        more.len() == 1
    }

    /// Every manager seen, as first written, in the order seen.
    fn managers(&self) -> Vec<String> {
        let Some((_, first)) = self.first.get() else {
            return Vec::new();
        };
        let more = self.more.lock().unwrap_or_else(|e| e.into_inner());
        std::iter::once(first)
            .chain(more.iter().map(|(_, shown)| shown))
            .map(|s| s.to_string())
            .collect()
    }
}

/// An id alias without `manager` that applied to alerts of two or more managers (by
/// `manager.name`): agent ids are numbered per manager, so it likely merges different hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagerSpan {
    /// The alias's `canonical` name.
    pub alias: String,
    /// The agent id it matched.
    pub id: String,
    /// The alerts' `manager.name` values, as first written, in the order they were seen.
    pub managers: Vec<String>,
}

impl fmt::Display for ManagerSpan {
    /// One line, control characters escaped (it goes to terminals and logs):
    /// `alias "hfw" matched agent.id "001" from 2 managers ("c3", "vagrant"): ...`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let q = |s: &str| format!("\"{}\"", crate::cli::escape_controls(s));
        let managers: Vec<String> = self.managers.iter().map(|m| q(m)).collect();
        write!(
            f,
            "alias {} matched agent.id {} from {} managers ({}): agent ids are numbered per manager, so these may be different hosts merged into one (hint: name the host's manager in the alias, manager = \"...\", and give each other manager's host an alias of its own; the nodes of one Wazuh cluster share agent ids: list them all, manager = [...])",
            q(&self.alias),
            q(&self.id),
            self.managers.len(),
            managers.join(", "),
        )
    }
}

/// A string's lowercase form, borrowed when it has none to change.
pub(crate) fn lowercase(s: &str) -> Cow<'_, str> {
    if s.bytes().any(|b| b.is_ascii_uppercase() || !b.is_ascii()) {
        Cow::Owned(s.to_lowercase())
    } else {
        Cow::Borrowed(s)
    }
}

/// A string field's text: strings as they are, numbers as JSON writes them.
pub(crate) fn scalar_text(v: &Value) -> Option<Cow<'_, str>> {
    match v {
        Value::String(s) => Some(Cow::Borrowed(s)),
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        _ => None,
    }
}

/// The alert's `manager.name`.
fn manager_name(alert: &Value) -> Option<Cow<'_, str>> {
    get(alert, &["manager", "name"]).and_then(scalar_text)
}

impl Aliases {
    /// The claim that applies to an alert with agent id `id`: the first in file order that names
    /// no manager or names the alert's `manager.name`; with the manager as written when the
    /// claim is scoped (for the trace).
    pub(crate) fn by_agent_id<'a>(
        &self,
        alert: &'a Value,
        id: &str,
    ) -> Option<(&IdClaim, Option<Cow<'a, str>>)> {
        let claims = self.by_id.get(id)?;
        // Read (and lowercased) at most once, and only when a scoped claim needs it.
        let mut manager: Option<Option<(Cow<'a, str>, String)>> = None;
        for claim in claims.iter() {
            if claim.managers.is_empty() {
                return Some((claim, None));
            }
            let seen = manager.get_or_insert_with(|| {
                manager_name(alert).map(|m| {
                    let key = lowercase(&m).into_owned();
                    (m, key)
                })
            });
            if let Some((shown, key)) = seen {
                if claim.managers.iter().any(|m| **m == **key) {
                    return Some((claim, Some(shown.clone())));
                }
            }
        }
        None
    }

    /// Records the alert's `manager.name` for the id alias without `manager` that applied to it
    /// (`span`, from the decision); the span the first time that alias and id are seen from a
    /// second manager, else `None` (also for an alert without `manager.name`).
    pub(crate) fn note_manager(&self, span: u32, alert: &Value) -> Option<ManagerSpan> {
        let slot = self.spans.get(span as usize)?;
        let manager = manager_name(alert)?;
        slot.note(&manager).then(|| self.span_of(slot))
    }

    /// Every id alias without `manager` seen from two or more managers so far, in file order.
    pub(crate) fn manager_spans(&self) -> Vec<ManagerSpan> {
        self.spans
            .iter()
            .filter(|slot| {
                slot.first.get().is_some()
                    && !slot
                        .more
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .is_empty()
            })
            .map(|slot| self.span_of(slot))
            .collect()
    }

    fn span_of(&self, slot: &SpanSlot) -> ManagerSpan {
        ManagerSpan {
            alias: self.canonical[slot.alias].clone(),
            id: slot.id.to_string(),
            managers: slot.managers(),
        }
    }
}
