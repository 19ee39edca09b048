//! What one outbox message says, kind-neutral: the event the incident round records in the
//! outbox (as JSON) and every format renders from.
//!
//! Design constraints:
//! - Frozen once a message has been attempted: a retry renders the same bytes from the same
//!   event (only per-attempt headers such as `webhook-timestamp` change).
//! - Holds no secret: routes' URLs, keys and passwords live in the configuration, never here.
//! - Alert text in it is raw (as the alert said it); every format escapes it for its medium.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::stages::escalate::observables::Observable;
use crate::stages::incidents::view::IncidentView;

/// The message types, serialized as the generic webhook's `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum MessageType {
    /// The incident first matched the route.
    #[serde(rename = "incident.opened")]
    Opened,
    /// A new member raised the incident's bucket into the route's `min_bucket` (for that route,
    /// this is the incident's opening message).
    #[serde(rename = "incident.escalated")]
    Escalated,
    /// New members since the last message (coalesced, at most one per `update_every`).
    #[serde(rename = "incident.updated")]
    Updated,
    /// The incident closed (sent to kinds that resolve: PagerDuty).
    #[serde(rename = "incident.closed")]
    Closed,
}

impl MessageType {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::Opened => "incident.opened",
            MessageType::Escalated => "incident.escalated",
            MessageType::Updated => "incident.updated",
            MessageType::Closed => "incident.closed",
        }
    }

    pub fn parse(s: &str) -> Option<MessageType> {
        [
            MessageType::Opened,
            MessageType::Escalated,
            MessageType::Updated,
            MessageType::Closed,
        ]
        .into_iter()
        .find(|t| t.as_str() == s)
    }

    /// The message that opens an incident for a route.
    pub fn is_opening(self) -> bool {
        matches!(self, MessageType::Opened | MessageType::Escalated)
    }
}

/// One message's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// The message id: deterministic from (route, incident, sequence); `[a-z0-9_]`, no `.`.
    pub id: String,
    #[serde(rename = "type")]
    pub kind: MessageType,
    /// The route's name.
    pub route: String,
    /// The message's sequence number for (route, incident): 0 opens.
    pub seq: u32,
    /// When the round that made it due ran.
    pub created_at: DateTime<Utc>,
    /// The incident as `incident.json` showed it then.
    pub incident: IncidentView,
    /// A one-line title, raw alert text (the first member's rule description, the host, the
    /// count); formats escape it.
    pub title: String,
    /// The incident's summary as plain text lines (raw alert text; formats escape and defang).
    pub summary: Vec<String>,
    /// Paths of the incident's files and its members' packs, relative to the state directory
    /// (`incidents/…/incident.json`, `escalations/<case id>/`).
    pub packs: Vec<String>,
    /// Observables of the sampled members, deduplicated by (kind, value), raw values.
    pub observables: Vec<Observable>,
    /// Members since the previous message for this route (0 for an opening message).
    pub new_members: u64,
}

/// One message a digest stands for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigestItem {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: MessageType,
    pub incident: String,
    /// The message's title (raw alert text; formats escape it).
    pub title: String,
}

/// `incident.digest`: the messages a route held beyond `max_per_hour`, summarised in the
/// hour's last request (notification kinds only; case tools and PagerDuty need each incident
/// as its own object, so theirs wait).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digest {
    /// `dig_` and 32 hex digits, deterministic from the route and the ids it stands for.
    pub id: String,
    pub route: String,
    pub created_at: DateTime<Utc>,
    pub messages: Vec<DigestItem>,
}

/// The `type` of a digest, as the webhook says it.
pub const DIGEST_TYPE: &str = "incident.digest";
