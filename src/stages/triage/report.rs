//! What triage did: the report its summary line, the heartbeat and the metrics read (all from
//! [`Report::counters`]).

use std::collections::BTreeMap;

use crate::stages::{Counters, Report};
use crate::store::claim::RecoveryReport;
use crate::store::spool::AdmitCounts;

/// What triage did: its figures ([`Report`]), and the signature hits and
/// held-back matches the heartbeat lists apart.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TriageReport {
    pub admission: AdmitCounts,
    pub recovery: RecoveryReport,
    pub claimed: u64,
    pub triaged: u64,
    pub buckets: BTreeMap<String, u64>,
    pub critical: u64,
    pub escalated: u64,
    pub quarantined: u64,
    pub quarantine_packs: u64,
    pub vanished: u64,
    /// Claims whose intent row already fixed the decision (a retry).
    pub reused_intents: u64,
    /// Intent rows finished at start (their case was published before a crash).
    pub finished_intents: u64,
    /// High cases that got their missing pack at start.
    pub packs_repaired: u64,
    /// Quarantined alerts whose owed `Q-<entry>` pack was rebuilt at start.
    pub quarantine_packs_repaired: u64,
    /// Claimed files whose content's key is not the one their name carries: sent back to
    /// `incoming/` for admission.
    pub misnamed: u64,
    pub signature_hits: BTreeMap<String, u64>,
    /// Per signature, the high alerts it matched but could not suppress (`held_back` in all).
    pub signature_held_back: BTreeMap<String, u64>,
    pub held_back: u64,
    pub batches: u64,
    /// True when the deadline stopped triage with work left.
    pub stopped_by_deadline: bool,
    /// Rows triaged before incidents existed, given theirs by this run.
    pub incidents_backfilled: u64,
    /// Incidents whose files this run wrote (or removed, without members).
    pub incidents_built: u64,
}

impl TriageReport {
    pub fn add(&mut self, o: &TriageReport) {
        self.admission.add(&o.admission);
        self.claimed += o.claimed;
        self.triaged += o.triaged;
        for (k, v) in &o.buckets {
            *self.buckets.entry(k.clone()).or_default() += v;
        }
        self.critical += o.critical;
        self.escalated += o.escalated;
        self.quarantined += o.quarantined;
        self.quarantine_packs += o.quarantine_packs;
        self.vanished += o.vanished;
        self.reused_intents += o.reused_intents;
        self.finished_intents += o.finished_intents;
        self.packs_repaired += o.packs_repaired;
        self.quarantine_packs_repaired += o.quarantine_packs_repaired;
        self.misnamed += o.misnamed;
        for (k, v) in &o.signature_hits {
            *self.signature_hits.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &o.signature_held_back {
            *self.signature_held_back.entry(k.clone()).or_default() += v;
        }
        self.held_back += o.held_back;
        self.batches += o.batches;
        self.stopped_by_deadline |= o.stopped_by_deadline;
        self.incidents_backfilled += o.incidents_backfilled;
        self.incidents_built += o.incidents_built;
        let r = &mut self.recovery;
        r.dead_workers += o.recovery.dead_workers;
        r.requeued += o.recovery.requeued;
        r.duplicates += o.recovery.duplicates;
        r.quarantined += o.recovery.quarantined;
        r.temps_removed += o.recovery.temps_removed;
        r.vanished += o.recovery.vanished;
        r.live_workers = o.recovery.live_workers;
    }

    pub fn bucket(&self, b: &str) -> u64 {
        self.buckets.get(b).copied().unwrap_or(0)
    }
}

impl Report for TriageReport {
    const NAME: &'static str = "triage";

    fn counters(&self) -> Counters {
        Counters::from([
            ("claimed", self.claimed),
            ("triaged", self.triaged),
            ("suppressed", self.bucket("suppressed")),
            ("low", self.bucket("low")),
            ("medium", self.bucket("medium")),
            ("high", self.bucket("high")),
            ("critical", self.critical),
            ("escalated", self.escalated),
            // Triage's own and admission's.
            ("quarantined", self.quarantined + self.admission.quarantined),
            ("quarantine_packs", self.quarantine_packs),
            ("vanished", self.vanished),
            ("admitted", self.admission.queued),
            // Admission's and recovery's.
            (
                "duplicates",
                self.admission.duplicates + self.recovery.duplicates,
            ),
            ("recovered", self.recovery.requeued),
            ("reused_intents", self.reused_intents),
            ("finished_intents", self.finished_intents),
            ("packs_repaired", self.packs_repaired),
            ("quarantine_packs_repaired", self.quarantine_packs_repaired),
            ("misnamed", self.misnamed),
            ("temps_removed", self.recovery.temps_removed),
            ("held_back", self.held_back),
            ("batches", self.batches),
            ("dead_workers", self.recovery.dead_workers),
            ("stopped_by_deadline", u64::from(self.stopped_by_deadline)),
            ("incidents_built", self.incidents_built),
            ("incidents_backfilled", self.incidents_backfilled),
        ])
    }
}
