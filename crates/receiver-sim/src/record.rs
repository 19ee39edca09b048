//! What the receivers saw: deliveries, rejections, throttled requests, injected faults, and
//! each vendor's stored state (PagerDuty alerts, TheHive alerts, IRIS alerts).
//!
//! Design constraints:
//! - One `Mutex<Records>` holds everything, and a route validates, deduplicates and records
//!   under one lock, so two concurrent retries of the same request cannot both be "first".
//! - A delivery is a request the vendor would have accepted and acted on (2xx, or the
//!   vendor's duplicate answer); a rejection is a request the vendor would refuse as invalid
//!   (bad credentials, signature, shape); a throttled request is neither (the sender was too
//!   fast or a fault was injected) and is only counted.
//! - The handle's getters clone; nothing outside holds the lock.

use std::collections::{BTreeMap, HashSet};
use std::time::SystemTime;

use serde_json::Value;

/// Which receiver took a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Webhook,
    Slack,
    Teams,
    PagerDuty,
    TheHive,
    Iris,
    Email,
}

/// A request accepted as valid and answered with success (or the vendor's duplicate answer).
#[derive(Clone, Debug, PartialEq)]
pub struct Delivery {
    pub kind: Kind,
    /// The request path (`smtp` for email).
    pub path: String,
    pub at: SystemTime,
    /// The sender's idempotency key: `webhook-id`, PagerDuty `dedup_key`, TheHive
    /// `sourceRef`, IRIS `alert_source_ref`, the mail's `Message-ID`. None for Slack and Teams,
    /// which have none.
    pub id: Option<String>,
    /// Request headers, names lower-cased, in arrival order. For email: `mail-from` and one
    /// `rcpt-to` per recipient (the envelope).
    pub headers: Vec<(String, String)>,
    /// The JSON body; for email the raw message (dot-unstuffed, CRLF line ends) as a string.
    pub body: Value,
    /// The id was delivered before (webhook, IRIS, email), the TheHive create was refused as
    /// an existing alert, or the PagerDuty event changed nothing (a trigger to an open alert,
    /// an acknowledge or resolve of a missing or resolved one).
    pub duplicate: bool,
}

/// A request refused as invalid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// None for a path no receiver serves.
    pub kind: Option<Kind>,
    pub path: String,
    pub at: SystemTime,
    /// The status answered (for SMTP, the reply code).
    pub status: u16,
    pub reason: String,
}

/// Why a request was refused as "too fast" rather than invalid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThrottleCause {
    /// The vendor's own rate limit (Slack, Teams, PagerDuty).
    RateLimit,
    /// An injected 429 fault.
    Fault,
}

/// A request answered 429.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Throttled {
    pub kind: Kind,
    pub path: String,
    pub at: SystemTime,
    pub cause: ThrottleCause,
}

/// How many faults were injected, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultCounts {
    pub too_many: u64,
    pub internal: u64,
    pub slow: u64,
    pub lost: u64,
}

/// A PagerDuty alert, by `dedup_key`, as the Events API v2 semantics leave it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PdState {
    /// Triggered and not resolved.
    pub open: bool,
    /// Acknowledged while open (cleared when a new alert opens under the key).
    pub acknowledged: bool,
    /// Alerts opened under this key (a trigger after a resolve opens a new one).
    pub alerts_opened: u32,
    /// Triggers received (those to an open alert add to it).
    pub triggers: u32,
    /// Acknowledge or resolve events dropped because no alert was open.
    pub dropped: u32,
    /// The summary of the latest trigger.
    pub summary: String,
    /// The severity of the latest trigger.
    pub severity: String,
}

/// A stored TheHive alert.
#[derive(Clone, Debug, PartialEq)]
pub struct TheHiveAlert {
    /// The OutputAlert answered on create (and by `/api/v1/query`).
    pub output: Value,
    /// The observables created with it, as sent.
    pub observables: Vec<Value>,
}

/// A stored DFIR-IRIS alert (the `data` object answered on create).
pub type IrisAlert = Value;

/// Everything recorded, behind the handle's lock.
#[derive(Default)]
pub(crate) struct Records {
    pub deliveries: Vec<Delivery>,
    pub rejected: Vec<Rejection>,
    pub throttled: Vec<Throttled>,
    pub faults: FaultCounts,
    pub webhook_ids: HashSet<String>,
    pub email_ids: HashSet<String>,
    pub pd: BTreeMap<String, PdState>,
    pub thehive: Vec<TheHiveAlert>,
    pub iris: Vec<IrisAlert>,
}

impl Records {
    pub fn deliver(
        &mut self,
        kind: Kind,
        path: &str,
        id: Option<String>,
        headers: Vec<(String, String)>,
        body: Value,
        duplicate: bool,
    ) {
        self.deliveries.push(Delivery {
            kind,
            path: path.to_string(),
            at: SystemTime::now(),
            id,
            headers,
            body,
            duplicate,
        });
    }

    pub fn reject(&mut self, kind: Kind, path: &str, status: u16, reason: impl Into<String>) {
        self.rejected.push(Rejection {
            kind: Some(kind),
            path: path.to_string(),
            at: SystemTime::now(),
            status,
            reason: reason.into(),
        });
    }

    pub fn reject_unrouted(&mut self, path: &str, status: u16, reason: &str) {
        self.rejected.push(Rejection {
            kind: None,
            path: path.to_string(),
            at: SystemTime::now(),
            status,
            reason: reason.to_string(),
        });
    }

    pub fn throttle(&mut self, kind: Kind, path: &str, cause: ThrottleCause) {
        self.throttled.push(Throttled {
            kind,
            path: path.to_string(),
            at: SystemTime::now(),
            cause,
        });
    }
}
