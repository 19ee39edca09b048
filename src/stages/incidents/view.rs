//! What an incident's files say: [`IncidentView`] is `incident.json` (and one line of
//! `signalfoundry incidents --json`), built from the ledger's `incidents` row and the
//! members' rows; [`MemberRef`] is one member as the timeline of `summary.md` shows it.
//! Pure data, no IO.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sf_policy::{Bucket, KeyField};

/// Member case ids listed in full up to this many; above, the first and last half.
pub const CASES_LISTED_MAX: usize = 1_000;

/// Member counts, per bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberCounts {
    pub total: u64,
    pub suppressed: u64,
    pub low: u64,
    pub medium: u64,
    pub high: u64,
    /// Members the policy marked critical.
    pub critical: u64,
}

impl MemberCounts {
    /// The highest bucket with a member (`None`: no member).
    pub fn highest(&self) -> Option<Bucket> {
        [
            (self.high, Bucket::High),
            (self.medium, Bucket::Medium),
            (self.low, Bucket::Low),
            (self.suppressed, Bucket::Suppressed),
        ]
        .into_iter()
        .find_map(|(n, b)| (n > 0).then_some(b))
    }
}

/// The incident's window: `[start, end)`, `secs` long.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub secs: u64,
}

/// The member case ids: all of them (`ids`) when at most [`CASES_LISTED_MAX`], else the
/// first and last half by alert time (`first`, `last`); `count` always.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseList {
    pub count: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ids: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<Vec<String>>,
}

/// `open` while the window has not passed plus `[incidents] close_after`, then `closed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Open,
    Closed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Closed => "closed",
        }
    }
}

/// `incident.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentView {
    pub id: String,
    /// The `[[group]]` rule's id, or `default`.
    pub group: String,
    pub key: Vec<KeyField>,
    pub window: Window,
    /// The same key's incident in the window before, when it has members.
    pub continues: Option<String>,
    pub first_alert_time: Option<DateTime<Utc>>,
    pub last_alert_time: Option<DateTime<Utc>>,
    /// The highest member's bucket.
    pub bucket: Option<Bucket>,
    pub highest_level: Option<u32>,
    /// Some member is critical.
    pub critical: bool,
    pub members: MemberCounts,
    /// The alert time of the first high member, when members of a lower bucket came before it
    /// (the incident was raised to high), and that member's case id.
    pub escalated_at: Option<DateTime<Utc>>,
    pub escalated_by: Option<String>,
    pub status: Status,
    /// When it closes (or closed): the window's end plus `close_after`.
    pub closes_at: DateTime<Utc>,
    pub cases: CaseList,
    /// The canonical agents of the members (one, for a key that has `agent`).
    pub agents: Vec<String>,
    /// `summary.md` beside it (an incident with a high member).
    pub summary: bool,
}

/// One member as the timeline shows it (from its ledger row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRef {
    pub case_id: String,
    /// `bucket/YYYY/MM/DD/case-id` below `cases/`.
    pub case_path: String,
    pub alert_time: DateTime<Utc>,
    pub bucket: Bucket,
    pub level: Option<u32>,
    pub rule_id: Option<String>,
    pub description: Option<String>,
    pub agent: String,
    /// The member's escalation pack is published (`escalations/<case id>/`).
    pub packed: bool,
}
