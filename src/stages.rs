//! The stages of a run, in order: [`poll`], [`cap`], [`triage`] (cases and escalation packs
//! are built inside each triage batch, with [`escalate`]), [`deliver`] (incidents' messages, from
//! the outbox), [`reconcile`], [`heartbeat`]. Each has
//! one entry point and a typed report. Stages use `store` and `model`, never `cmd`.
//!
//! Every report speaks one contract, [`Report`]: its name and its figures ([`Counters`], in
//! order). The summary line on stdout, the heartbeat's `stages[].counters` and the
//! `signalfoundry_stage_count` samples of `metrics.prom` are all derived from `counters()`, so
//! a figure a summary line shows is by construction a figure the heartbeat and the metrics show.

pub mod cap;
pub mod deliver;
pub mod escalate;
pub mod expire;
pub mod heartbeat;
pub mod incidents;
pub mod poll;
pub mod reconcile;
pub mod replay;
pub mod triage;

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// What a stage (or a command) did, as named figures.
pub trait Report {
    /// The stage's name: the prefix of its summary line and its `name` in `heartbeat.json`.
    const NAME: &'static str;

    /// Every figure of the report, in the order the summary line prints them.
    fn counters(&self) -> Counters;

    /// `<NAME>: status=<status> k=v k=v ...`, every counter in order. Derived, never written by
    /// hand: no report overrides it (`every_summary_line_is_its_counters_in_order` checks).
    fn summary(&self, status: &str) -> String {
        let mut s = format!("{}: status={status}", Self::NAME);
        for (k, v) in self.counters().iter() {
            let _ = write!(s, " {k}={v}");
        }
        s
    }
}

/// A report's figures: `(key, value)` in summary order, every key once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters(Vec<(&'static str, u64)>);

impl Counters {
    /// The figure named `key`.
    pub fn get(&self, key: &str) -> Option<u64> {
        self.0.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }

    /// Keyed by name (the heartbeat's `counters` object).
    pub fn to_map(&self) -> BTreeMap<String, u64> {
        self.0.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }
}

impl<const N: usize> From<[(&'static str, u64); N]> for Counters {
    fn from(pairs: [(&'static str, u64); N]) -> Counters {
        Counters::from(Vec::from(pairs))
    }
}

impl From<Vec<(&'static str, u64)>> for Counters {
    fn from(pairs: Vec<(&'static str, u64)>) -> Counters {
        debug_assert!(
            pairs
                .iter()
                .enumerate()
                .all(|(i, (k, _))| pairs[..i].iter().all(|(j, _)| j != k)),
            "a counter key twice: {pairs:?}"
        );
        Counters(pairs)
    }
}

impl std::ops::Deref for Counters {
    type Target = [(&'static str, u64)];
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::Index<&str> for Counters {
    type Output = u64;
    fn index(&self, key: &str) -> &u64 {
        self.0
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("no counter {key:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::ingest::IngestReport;
    use crate::cmd::requeue::RequeueReport;
    use crate::stages::cap::CapReport;
    use crate::stages::poll::PollReport;
    use crate::stages::reconcile::ReconcileReport;
    use crate::stages::triage::TriageReport;

    /// The contract: every key once, `status` none of them, and the summary line is
    /// `<NAME>: status=OK` then exactly the counters, in order.
    fn check<R: Report>(r: &R) {
        let c = r.counters();
        assert!(!c.is_empty(), "{}: no counters", R::NAME);
        let keys: std::collections::BTreeSet<&str> = c.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys.len(), c.len(), "{}: a key twice in {c:?}", R::NAME);
        assert!(
            !keys.contains("status"),
            "{}: status is not a counter",
            R::NAME
        );
        let line = r.summary("OK");
        let mut words = line.split(' ');
        assert_eq!(
            words.next(),
            Some(format!("{}:", R::NAME).as_str()),
            "{line}"
        );
        assert_eq!(words.next(), Some("status=OK"), "{line}");
        let printed: Vec<(String, u64)> = words
            .map(|w| {
                let (k, v) = w.split_once('=').expect("key=value");
                (k.to_string(), v.parse().expect("a count"))
            })
            .collect();
        let want: Vec<(String, u64)> = c.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        assert_eq!(printed, want, "{}: the line is not its counters", R::NAME);
    }

    #[test]
    fn every_summary_line_is_its_counters_in_order() {
        check(&PollReport {
            fetched: 5,
            audit_queued: 19,
            ..PollReport::default()
        });
        let mut cap = CapReport {
            deferred: 1,
            collisions: 2,
            overflow_depth: 4,
            ..CapReport::default()
        };
        cap.admission.duplicates = 3;
        check(&cap);
        let mut tri = TriageReport {
            reused_intents: 8,
            stopped_by_deadline: true,
            ..TriageReport::default()
        };
        tri.buckets.insert("high".into(), 7);
        tri.recovery.temps_removed = 9;
        check(&tri);
        let rec = ReconcileReport {
            rows: 3,
            mismatches: vec!["m".into()],
            awaiting_admission: vec!["a".into(), "b".into()],
            ..ReconcileReport::default()
        };
        check(&rec);
        check(&RequeueReport::default());
        check(&IngestReport::default());
    }

    #[test]
    fn the_figures_of_each_summary_keep_their_keys_and_meaning() {
        let mut cap = CapReport {
            queue_depth: 10,
            ..CapReport::default()
        };
        cap.admission.queued = 2;
        assert_eq!(
            cap.summary("OK"),
            "cap: status=OK deferred=0 refilled=0 vanished=0 protected_over_cap=0 collisions=0 \
             adopted=0 admitted=2 duplicates=0 quarantined=0 queue=10 overflow=0"
        );
        let mut tri = TriageReport {
            quarantined: 1,
            ..TriageReport::default()
        };
        tri.admission.quarantined = 2;
        tri.admission.duplicates = 3;
        tri.recovery.duplicates = 4;
        let c = tri.counters();
        assert_eq!((c["quarantined"], c["duplicates"]), (3, 7));
        let rec = ReconcileReport {
            rows: 3,
            newly_lost: vec!["k".into()],
            in_flight: 2,
            live_workers: 1,
            ..ReconcileReport::default()
        };
        assert!(
            rec.block().starts_with(
                "reconcile: status=OK rows=3 mismatches=0 newly_lost=1 in_flight=2 live_workers=1 "
            ),
            "{}",
            rec.block()
        );
    }

    #[test]
    fn counters_are_looked_up_by_name() {
        let c = Counters::from([("a", 1), ("b", 2)]);
        assert_eq!((c["b"], c.get("a"), c.get("z")), (2, Some(1), None));
        assert_eq!(c.to_map().into_iter().collect::<Vec<_>>().len(), 2);
    }
}
