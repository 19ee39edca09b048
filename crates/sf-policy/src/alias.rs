//! `[[alias]]` tables: names (global) and agent ids (numbered per Wazuh manager).
//!
//! Design constraints:
//! - **An agent id is the manager's number, not the host's.** Every manager counts its agents
//!   from `001`, so in a corpus of several managers `001` is several hosts. An alias's `manager`
//!   scopes its `ids` to the alerts whose `manager.name` it lists (without regard to case); an
//!   alert without `manager.name` matches no scoped id. `names` are the host's own and match on
//!   every manager.
//! - **Backward compatible.** An id alias without `manager` matches every manager, as before.
//! - **Cheap.** Deciding pays one map lookup per alert for ids, as before; `manager.name` is read
//!   only when the id has a scoped claim.

use crate::value::{get, FxMap};
use serde_json::Value;
use std::borrow::Cow;

/// `[[alias]]` entries and their lookup tables.
#[derive(Debug, Clone, Default)]
pub(crate) struct Aliases {
    pub(crate) canonical: Vec<String>,
    /// Lowercased name → index of the first alias that lists it.
    pub(crate) by_name: FxMap<String, usize>,
    /// Agent id → the aliases claiming it, in file order: the first whose managers hold the
    /// alert's `manager.name` (or that names no manager) applies.
    pub(crate) by_id: FxMap<String, Vec<IdClaim>>,
}

/// One alias's claim on an agent id.
#[derive(Debug, Clone)]
pub(crate) struct IdClaim {
    /// The alias (index into `canonical`).
    pub(crate) alias: usize,
    /// Lowercased `manager.name` values the claim is scoped to; empty: every manager.
    pub(crate) managers: Box<[Box<str>]>,
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
}
