//! What one poll did: the report its summary line, the heartbeat and the metrics read (all
//! from [`Report::counters`]).

use crate::stages::{Counters, Report};

/// What one poll did. Every figure the summary line, the heartbeat and the metrics show.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PollReport {
    /// Hits received (duplicates included).
    pub fetched: u64,
    /// New alerts queued.
    pub queued: u64,
    /// Hits whose key was already queued or seen (the overlap re-reads these).
    pub duplicates: u64,
    /// Same key, other content: quarantined.
    pub conflicts: u64,
    /// Quarantined (conflicts, alerts that are not strict JSON objects, oversized).
    pub quarantined: u64,
    pub vanished: u64,
    /// Search pages committed.
    pub pages: u64,
    /// Requests retried (every cause).
    pub retries: u64,
    /// Of which: partial answers (`_shards.failed`, `timed_out`).
    pub partial_retries: u64,
    /// HTTP requests sent.
    pub requests: u64,
    /// 1 when the poll deferred because the backlog is over `backlog_limit`.
    pub deferred: u64,
    /// `queue/` + `overflow/` canonical files at the start.
    pub backlog: u64,
    /// 1 when the cycle paged inside a point in time.
    pub pit: u64,
    /// 1 when `max_per_run` stopped the cycle (the next poll continues from the cursor).
    pub limited: u64,
    /// 1 when the audit ran.
    pub audit: u64,
    pub audit_days: u64,
    pub audit_differing: u64,
    /// Unseen ids the audit found and polled.
    pub audit_unseen: u64,
    /// Of those, newly queued.
    pub audit_queued: u64,
}

impl PollReport {
    pub(super) const FIELDS: [&'static str; 19] = [
        "fetched",
        "queued",
        "duplicates",
        "conflicts",
        "quarantined",
        "vanished",
        "pages",
        "retries",
        "partial_retries",
        "requests",
        "deferred",
        "backlog",
        "pit",
        "limited",
        "audit",
        "audit_days",
        "audit_differing",
        "audit_unseen",
        "audit_queued",
    ];

    fn values(&self) -> [u64; 19] {
        [
            self.fetched,
            self.queued,
            self.duplicates,
            self.conflicts,
            self.quarantined,
            self.vanished,
            self.pages,
            self.retries,
            self.partial_retries,
            self.requests,
            self.deferred,
            self.backlog,
            self.pit,
            self.limited,
            self.audit,
            self.audit_days,
            self.audit_differing,
            self.audit_unseen,
            self.audit_queued,
        ]
    }

    /// `poll: status=OK fetched=.. queued=.. duplicates=.. ...` ([`Report::summary`], here for
    /// callers that do not import the trait).
    pub fn summary(&self, status: &str) -> String {
        Report::summary(self, status)
    }

    /// [`Report::counters`], here for callers that do not import the trait.
    pub fn counters(&self) -> Counters {
        Report::counters(self)
    }

    pub(super) fn add_counts(&mut self, c: &crate::store::spool::AdmitCounts) {
        self.queued += c.queued;
        self.duplicates += c.duplicates;
        self.conflicts += c.conflicts;
        self.quarantined += c.quarantined;
        self.vanished += c.vanished;
    }
}

impl Report for PollReport {
    const NAME: &'static str = "poll";

    fn counters(&self) -> Counters {
        Counters::from(
            Self::FIELDS
                .into_iter()
                .zip(self.values())
                .collect::<Vec<_>>(),
        )
    }
}
