//! `signalfoundry requeue --from overflow|quarantine [--limit N]`: an operator's way to put
//! deferred alerts back in the queue, or quarantined entries back through admission.
//!
//! A requeued quarantine entry moves to `incoming/` under its entry name and its reason file is
//! kept beside the quarantine as `<entry>.requeued` (quarantine records are never deleted);
//! admission then queues it (the alert's own quarantined row, when triage gave it one, is
//! replaced: edited or not, it is decided afresh), counts it as a duplicate, or quarantines it
//! again with a fresh reason. The ledger changes only in admission's transaction, so a crash
//! between the move and admission leaves a `quarantined` row whose entry waits in `incoming/`
//! (reconcile counts it there).

use chrono::{DateTime, Utc};

use crate::stages::cap::move_all;
use crate::store::fsx::{escape_name, Moved};
use crate::store::ledger::{Ledger, State};
use crate::store::names;
use crate::store::spool::{AdmitCounts, Notice, Spool, SpoolError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum From {
    Overflow,
    Quarantine,
}

/// What requeue did: its summary line is its counters ([`crate::stages::Report`]).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RequeueReport {
    pub moved: u64,
    pub vanished: u64,
    pub collisions: u64,
    pub admission: AdmitCounts,
}

impl crate::stages::Report for RequeueReport {
    const NAME: &'static str = "requeue";

    fn counters(&self) -> crate::stages::Counters {
        crate::stages::Counters::from([
            ("moved", self.moved),
            ("vanished", self.vanished),
            ("collisions", self.collisions),
            ("admitted", self.admission.queued),
            ("duplicates", self.admission.duplicates),
            ("quarantined", self.admission.quarantined),
        ])
    }
}

pub fn run(
    sp: &Spool<'_>,
    ledger: &mut Ledger,
    from: From,
    limit: Option<u64>,
    now: DateTime<Utc>,
    notices: &mut Vec<Notice>,
) -> Result<RequeueReport, SpoolError> {
    let limit = limit.unwrap_or(u64::MAX) as usize;
    let mut r = RequeueReport::default();
    match from {
        From::Overflow => {
            let names: Vec<_> = names::list_sorted(&sp.state.overflow)?
                .into_iter()
                .take(limit)
                .collect();
            let m = move_all(
                sp,
                ledger,
                &sp.state.overflow,
                &sp.state.queue,
                &names,
                State::Queued,
            )?;
            r.admission = sp.adopt(
                ledger,
                &sp.state.queue,
                "queue",
                &m.rowless,
                State::Queued,
                now,
                notices,
            )?;
            r.moved = m.moved;
            r.vanished = m.vanished;
            r.collisions = m.collisions;
        }
        From::Quarantine => {
            let mut entries: Vec<Vec<u8>> = sp
                .state
                .quarantine
                .list()?
                .into_iter()
                .filter(|e| e.name.starts_with(b"q-") && e.name.ends_with(b".json"))
                .map(|e| e.name)
                .collect();
            entries.sort_unstable();
            for name in entries.into_iter().take(limit) {
                match sp
                    .state
                    .quarantine
                    .rename_to(&name, &sp.state.incoming, &name)?
                {
                    Moved::Moved => {}
                    Moved::Vanished => {
                        r.vanished += 1;
                        continue;
                    }
                    Moved::Exists => {
                        r.collisions += 1;
                        continue;
                    }
                }
                r.moved += 1;
                crate::failpoint::crash_point("requeue-move");
                let entry = &name[..name.len() - ".json".len()];
                let reason = [entry, b".reason"].concat();
                let kept = [entry, b".requeued"].concat();
                if sp
                    .state
                    .quarantine
                    .rename_to(&reason, &sp.state.quarantine, &kept)?
                    == Moved::Exists
                {
                    notices.push(Notice {
                        what: format!("quarantine/{}", escape_name(&reason)),
                        reason: "an older .requeued record exists; reason file left in place"
                            .into(),
                    });
                }
                // The entry's rows stay until admission settles the file (it keeps the
                // entry's name in incoming/, where reconcile still counts it as quarantined):
                // admission replaces the alert's own row, or retires the entry's row, in the
                // same transaction as the outcome.
            }
            r.admission = sp.admit(ledger, now, notices)?;
        }
    }
    Ok(r)
}
