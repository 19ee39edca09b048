//! The reconcile report and its block (the lines that end in `VERDICT=`); the block's first line
//! is the report's summary ([`Report::counters`]).

use serde::Serialize;

use crate::stages::{Counters, Report};

/// One state's two counts.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct StateCount {
    pub state: &'static str,
    pub ledger: u64,
    /// `None` for `lost` (nowhere on disk by definition).
    pub disk: Option<u64>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct BucketCount {
    pub bucket: &'static str,
    pub ledger: u64,
    pub disk: u64,
}

/// The reconcile report; `verdict` is `PASS` or `FAIL`.
#[derive(Debug, Clone, Serialize, Default)]
pub struct ReconcileReport {
    pub states: Vec<StateCount>,
    pub buckets: Vec<BucketCount>,
    pub rows: u64,
    pub high_cases: u64,
    pub packs: u64,
    pub quarantine_packs: u64,
    pub live_workers: u64,
    pub in_flight: u64,
    pub mismatches: Vec<String>,
    /// Keys recorded as `lost` by this run.
    pub newly_lost: Vec<String>,
    /// Rows that followed their file to another place.
    pub relocated: u64,
    /// Intents of dead workers whose case was published (the commit is what a crash took):
    /// finished from what is on disk (location wins).
    pub finished: u64,
    /// Quarantine entries found without a row (a crash between the move and the commit):
    /// given their row.
    pub adopted: u64,
    /// Alert files waiting for admission: every `*.json` of `incoming/`, foreign `*.json` in
    /// `queue/` and `overflow/` (the next triage admits them). Named, never silent.
    pub awaiting_admission: Vec<String>,
    /// Entries that belong nowhere: in `escalations/` (not a pack: a mismatch), in
    /// `quarantine/` or in a dead worker's folder (reported).
    pub strays: Vec<String>,
    /// Incidents with members, the open ones, and their members (the triaged and escalated
    /// rows, each in exactly one).
    pub incidents: u64,
    pub open_incidents: u64,
    pub incident_members: u64,
    /// Incidents whose files were behind the ledger (missing, stale) and were rebuilt.
    pub incidents_repaired: u64,
    /// Triaged rows from before incidents, waiting for the next triage's backfill.
    pub awaiting_incident_backfill: u64,
    /// Messages per route and state.
    pub outbox: Vec<super::outbox::OutboxCount>,
    /// Incidents that matched a route without its opening message and were planned again.
    pub outbox_repaired: u64,
    pub deep: bool,
    pub orphans: Vec<String>,
    pub ghosts: Vec<String>,
    pub verdict: &'static str,
}

/// How many waiting files and strays the block names (all of them are in `--json`).
const LISTED: usize = 20;

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl ReconcileReport {
    pub fn passed(&self) -> bool {
        self.verdict == "PASS"
    }

    /// The block printed to stdout; its last line is the verdict.
    pub fn block(&self) -> String {
        let mut o = String::new();
        o.push_str(&self.summary("OK"));
        o.push('\n');
        o.push_str(&format!(
            "  {:<12} {:>12} {:>12}\n",
            "state", "ledger", "disk"
        ));
        for s in &self.states {
            let disk = s.disk.map_or_else(|| "-".to_string(), thousands);
            o.push_str(&format!(
                "  {:<12} {:>12} {:>12}\n",
                s.state,
                thousands(s.ledger),
                disk
            ));
        }
        for b in &self.buckets {
            o.push_str(&format!(
                "  cases {:<12} ledger={} disk={}\n",
                b.bucket,
                thousands(b.ledger),
                thousands(b.disk)
            ));
        }
        let parts: Vec<String> = self.buckets.iter().map(|b| thousands(b.disk)).collect();
        let total: u64 = self.buckets.iter().map(|b| b.disk).sum();
        o.push_str(&format!(
            "  sum: {} = {} cases\n",
            parts.join(" + "),
            thousands(total)
        ));
        o.push_str(&format!(
            "  high cases={} packs={} quarantine_packs={}\n",
            thousands(self.high_cases),
            thousands(self.packs),
            thousands(self.quarantine_packs)
        ));
        o.push_str(&format!(
            "  incidents={} open={} members={}\n",
            self.incidents, self.open_incidents, self.incident_members
        ));
        if self.awaiting_incident_backfill > 0 {
            o.push_str(&format!(
                "  awaiting the incident backfill (the next triage): {} rows\n",
                self.awaiting_incident_backfill
            ));
        }
        if self.incidents_repaired > 0 {
            o.push_str(&format!(
                "  incidents repaired (files rebuilt from the ledger): {}\n",
                self.incidents_repaired
            ));
        }
        for c in &self.outbox {
            o.push_str(&format!(
                "  outbox {}: pending={} sent={} dead={}{}\n",
                c.route,
                thousands(c.pending),
                thousands(c.sent),
                thousands(c.dead),
                if c.orphaned {
                    " (orphaned: no such route configured)"
                } else {
                    ""
                }
            ));
        }
        if self.outbox_repaired > 0 {
            o.push_str(&format!(
                "  outbox repaired (incidents planned again for their routes): {}\n",
                self.outbox_repaired
            ));
        }
        let state_sum: u64 = self.states.iter().map(|s| s.ledger).sum();
        o.push_str(&format!(
            "  rows: {} (states sum to {})\n",
            thousands(self.rows),
            thousands(state_sum)
        ));
        if self.relocated > 0 {
            o.push_str(&format!(
                "  relocated rows (followed their file): {}\n",
                self.relocated
            ));
        }
        if self.finished > 0 {
            o.push_str(&format!(
                "  finished intents (case published, commit missing): {}\n",
                self.finished
            ));
        }
        if self.adopted > 0 {
            o.push_str(&format!(
                "  adopted quarantine entries (row missing): {}\n",
                self.adopted
            ));
        }
        if !self.awaiting_admission.is_empty() {
            o.push_str(&format!(
                "  awaiting admission: {}\n",
                self.awaiting_admission.len()
            ));
            for x in self.awaiting_admission.iter().take(LISTED) {
                o.push_str(&format!("  waiting: {x}\n"));
            }
        }
        for x in self.strays.iter().take(LISTED) {
            o.push_str(&format!("  stray: {x}\n"));
        }
        for k in &self.newly_lost {
            o.push_str(&format!("  lost: {k}\n"));
        }
        for m in &self.mismatches {
            o.push_str(&format!("  mismatch: {m}\n"));
        }
        for x in &self.orphans {
            o.push_str(&format!("  orphan: {x}\n"));
        }
        for x in &self.ghosts {
            o.push_str(&format!("  ghost: {x}\n"));
        }
        o.push_str(&format!("VERDICT={}", self.verdict));
        o
    }
}

impl Report for ReconcileReport {
    const NAME: &'static str = "reconcile";

    /// The first five are the block's first line as it always was; lists count their entries.
    fn counters(&self) -> Counters {
        let n = |v: &Vec<String>| v.len() as u64;
        Counters::from([
            ("rows", self.rows),
            ("mismatches", n(&self.mismatches)),
            ("newly_lost", n(&self.newly_lost)),
            ("in_flight", self.in_flight),
            ("live_workers", self.live_workers),
            ("relocated", self.relocated),
            ("finished", self.finished),
            ("adopted", self.adopted),
            ("awaiting_admission", n(&self.awaiting_admission)),
            ("strays", n(&self.strays)),
            ("high_cases", self.high_cases),
            ("packs", self.packs),
            ("quarantine_packs", self.quarantine_packs),
            ("orphans", n(&self.orphans)),
            ("ghosts", n(&self.ghosts)),
            ("incidents", self.incidents),
            ("open_incidents", self.open_incidents),
            ("incident_members", self.incident_members),
            ("incidents_repaired", self.incidents_repaired),
        ])
    }
}
