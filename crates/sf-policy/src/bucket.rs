//! Buckets, the kind of rule that decided, and the severity thresholds: the vocabulary a decision
//! is written in.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Level at or above which a `high` alert is also marked critical (fixed, as in DESIGN.md).
pub const CRITICAL_LEVEL: u32 = 15;

/// Where a triaged alert goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Bucket {
    /// Matched a false-positive signature (or an override forced it here).
    Suppressed,
    /// Below the `medium` threshold (Wazuh levels 0-6 by default).
    Low,
    /// From `medium` up to below `high` (7-11 by default).
    Medium,
    /// At or above `high` (12+ by default): escalated.
    High,
}

impl Bucket {
    /// All buckets, in the order they are listed in reports.
    pub const ALL: [Bucket; 4] = [
        Bucket::Suppressed,
        Bucket::Low,
        Bucket::Medium,
        Bucket::High,
    ];

    /// The bucket's name as used in paths, JSON and the policy file.
    pub fn as_str(self) -> &'static str {
        match self {
            Bucket::Suppressed => "suppressed",
            Bucket::Low => "low",
            Bucket::Medium => "medium",
            Bucket::High => "high",
        }
    }

    /// Parses a bucket name (`"suppressed"`, `"low"`, `"medium"`, `"high"`).
    pub fn parse(s: &str) -> Option<Bucket> {
        Bucket::ALL.into_iter().find(|b| b.as_str() == s)
    }
}

impl fmt::Display for Bucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which list the deciding rule came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MatchedKind {
    /// An `[[override]]`: it forced the bucket.
    Override,
    /// A `[[suppress]]` false-positive signature.
    Suppress,
}

impl MatchedKind {
    /// `"override"` or `"suppress"`.
    pub fn as_str(self) -> &'static str {
        match self {
            MatchedKind::Override => "override",
            MatchedKind::Suppress => "suppress",
        }
    }
}

impl fmt::Display for MatchedKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `[severity]` thresholds on `rule.level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Thresholds {
    /// Lowest level of the `medium` bucket (default 7).
    pub medium: u32,
    /// Lowest level of the `high` bucket (default 12).
    pub high: u32,
}

impl Thresholds {
    /// Wazuh's dashboard levels: medium 7, high 12.
    pub const WAZUH: Thresholds = Thresholds {
        medium: 7,
        high: 12,
    };

    /// The bucket a level falls in by severity alone.
    pub fn bucket_for(self, level: u32) -> Bucket {
        if level >= self.high {
            Bucket::High
        } else if level >= self.medium {
            Bucket::Medium
        } else {
            Bucket::Low
        }
    }
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds::WAZUH
    }
}
