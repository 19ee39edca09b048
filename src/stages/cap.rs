//! Stage 2, cap: keep `queue/` at or under its capacity by deferring the tail of the priority
//! order into `overflow/`, and refill from the head of the overflow's order when there is room.
//!
//! Design constraints:
//! - Ordering comes from names alone (see `spool`): one `readdir` per directory, no `stat`.
//! - Nothing at or above `protect_level` is ever deferred; the queue may then stay over the cap,
//!   and the report says by how many (`protected_over_cap`).
//! - Every move is one no-replace rename; a name that vanished is counted (`vanished`), never an
//!   error. Nothing is deleted. Rows follow their files in one transaction per batch; a file
//!   without a row is adopted.
//! - A large deferral into an empty `overflow/` is done by exchanging the two directories and
//!   renaming back what stays (see [`defer_by_exchange`]): the same outcome and accounting for
//!   a fraction of the renames.

use chrono::{DateTime, Utc};

use crate::model::alert::KeyHash;
use crate::store::fsx::{DirFd, Durability, Moved};
use crate::store::ledger::{Ledger, State};
use crate::store::names;
use crate::store::names::Canonical;
use crate::store::spool::{AdmitCounts, Notice, Spool, SpoolError, BATCH};

/// What one cap pass decided, from names alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CapPlan {
    /// Queue names to defer, from the tail of the order (lowest priority, newest first).
    pub defer: Vec<Vec<u8>>,
    /// Overflow names to refill, from the head of the overflow's order.
    pub refill: Vec<Vec<u8>>,
    /// How many alerts the queue holds over the cap because they are protected.
    pub protected_over_cap: u64,
}

/// Decides the cap's moves. `queue` and `overflow` are sorted canonical names.
pub fn plan(queue: &[Vec<u8>], overflow: &[Vec<u8>], cap: u64, protect_level: u32) -> CapPlan {
    let cap = cap as usize;
    let mut out = CapPlan::default();
    // Protected alerts are never deferred; one found in overflow/ (left there by a crash
    // during a deferral by exchange) goes back whatever the queue holds. They head the order.
    let protected = overflow
        .iter()
        .take_while(|n| Canonical::parse(n).is_some_and(|c| c.priority >= protect_level))
        .count();
    if queue.len() > cap {
        let need = queue.len() - cap;
        for name in queue.iter().rev() {
            if out.defer.len() == need {
                break;
            }
            let protected = Canonical::parse(name).is_none_or(|c| c.priority >= protect_level);
            if !protected {
                out.defer.push(name.clone());
            }
        }
        out.protected_over_cap = (need - out.defer.len()) as u64;
    }
    let room = cap.saturating_sub(queue.len()).max(protected);
    out.refill = overflow.iter().take(room).cloned().collect();
    out
}

/// The cap's report: its figures ([`crate::stages::Report`]) are its summary line, its heartbeat
/// counters and its metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CapReport {
    pub deferred: u64,
    pub refilled: u64,
    pub vanished: u64,
    /// A target name already taken (the same alert in both places); the file stays.
    pub collisions: u64,
    pub protected_over_cap: u64,
    pub adopted: u64,
    pub admission: AdmitCounts,
    pub queue_depth: u64,
    pub overflow_depth: u64,
}

impl CapReport {
    pub fn add(&mut self, o: &CapReport) {
        self.deferred += o.deferred;
        self.refilled += o.refilled;
        self.vanished += o.vanished;
        self.collisions += o.collisions;
        self.adopted += o.adopted;
        self.admission.add(&o.admission);
        self.protected_over_cap = o.protected_over_cap;
        self.queue_depth = o.queue_depth;
        self.overflow_depth = o.overflow_depth;
    }
}

impl crate::stages::Report for CapReport {
    const NAME: &'static str = "cap";

    fn counters(&self) -> crate::stages::Counters {
        crate::stages::Counters::from([
            ("deferred", self.deferred),
            ("refilled", self.refilled),
            ("vanished", self.vanished),
            ("protected_over_cap", self.protected_over_cap),
            ("collisions", self.collisions),
            ("adopted", self.adopted),
            ("admitted", self.admission.queued),
            ("duplicates", self.admission.duplicates),
            ("quarantined", self.admission.quarantined),
            ("queue", self.queue_depth),
            ("overflow", self.overflow_depth),
        ])
    }
}

/// What [`move_all`] did.
#[derive(Debug, Default)]
pub(crate) struct MoveOutcome {
    pub moved: u64,
    pub vanished: u64,
    pub collisions: u64,
    /// Moved canonical files that had no row (to be adopted).
    pub rowless: Vec<Vec<u8>>,
    /// After a deferral by exchange: the listed alerts renamed back into queue/.
    pub kept: Option<u64>,
}

/// Moves `names` from `from` to `to`, in batches, committing the rows' new state after each
/// batch's renames (see the durability note at the end).
pub(crate) fn move_all(
    sp: &Spool<'_>,
    ledger: &mut Ledger,
    from: &DirFd,
    to: &DirFd,
    names: &[Vec<u8>],
    new_state: State,
) -> Result<MoveOutcome, SpoolError> {
    let (mut moved, mut vanished, mut collisions) = (0u64, 0u64, 0u64);
    let mut rowless = Vec::new();
    // One ledger transaction for the whole move (each row page is then written once), except
    // with strict durability, which commits as it goes. Rows follow their files here (location
    // wins), so a crash between the renames and the commit is repaired by reconcile.
    let chunk = if sp.durability == Durability::Strict {
        BATCH * 4
    } else {
        names.len().max(1)
    };
    for chunk in names.chunks(chunk) {
        let mut done = Vec::with_capacity(chunk.len());
        for name in chunk {
            match from.rename_to(name, to, name)? {
                Moved::Moved => {
                    if sp.durability == Durability::Strict {
                        to.sync()?;
                        from.sync()?;
                    }
                    done.push(name.as_slice());
                }
                Moved::Vanished => vanished += 1,
                Moved::Exists => collisions += 1,
            }
        }
        moved += done.len() as u64;
        rowless.extend(follow_rows(ledger, &done, new_state)?);
    }
    // Batch durability: one round for the whole move.
    if sp.durability == Durability::Batch && moved > 0 {
        to.sync()?;
        from.sync()?;
    }
    Ok(MoveOutcome {
        moved,
        vanished,
        collisions,
        rowless,
        kept: None,
    })
}

/// Sets the rows of moved files to `new_state` in one transaction; returns the moved names that
/// have no row (to be adopted).
fn follow_rows(
    ledger: &mut Ledger,
    done: &[&[u8]],
    new_state: State,
) -> Result<Vec<Vec<u8>>, SpoolError> {
    // Update in table order: look the row ids up first (read-only index walks), then write
    // each table page once, front to back.
    let key_of = |n: &[u8]| Canonical::parse(n).map(|c| c.key_hash);
    let keys: Vec<KeyHash> = done.iter().filter_map(|n| key_of(n)).collect();
    let mut ids = ledger.row_ids(keys.iter().map(KeyHash::as_str))?;
    ids.sort_unstable();
    let found: std::collections::HashSet<&str> = ids.iter().map(|(_, k)| *k).collect();
    let now = crate::store::ledger::now_text();
    ledger.write(|tx| {
        for (id, _) in &ids {
            tx.set_state_by_id(*id, new_state, &now)?;
        }
        Ok(())
    })?;
    Ok(done
        .iter()
        .filter(|n| key_of(n).is_none_or(|k| !found.contains(k.as_str())))
        .map(|n| n.to_vec())
        .collect())
}

/// Whether deferring by exchange pays: it replaces `defer` renames by one exchange and a
/// rename back per alert that stays, so it must move back far fewer than it defers.
fn exchange_pays(queued: usize, defer: usize) -> bool {
    let stay = queued.saturating_sub(defer);
    defer >= EXCHANGE_MIN && defer > 2 * stay
}

/// The smallest deferral done by exchange (below it the rename loop costs little).
const EXCHANGE_MIN: usize = 1000;

/// In the state directory while a deferral by exchange is under way (see [`defer_by_exchange`]).
const EXCHANGE_MARKER: &str = ".cap-exchange";

/// Defers most of a queue in one step when `overflow/` holds nothing (dot-named leftovers aside,
/// which then sit in `queue/`, ignored as anywhere): `queue/` and `overflow/` are exchanged
/// (`renameat2(RENAME_EXCHANGE)`, so every queued file is in `overflow/` at once), then
/// everything that was not to be deferred is renamed back: foreign names first (admission
/// looks for them in `queue/`), then the head of the order, the protected alerts and arrivals
/// since the listing, in the queue's order. Dot-named entries stay where they are: a writer
/// holding the old queue's handle finishes its temp file's rename in the same directory (its
/// alert then waits in overflow/, where location wins).
///
/// The same outcome as the rename loop for a fraction of the renames (a 500,000-file queue
/// capped to 2,000: ~13,000 renames instead of ~490,000). Every listed name is accounted for: a
/// planned one not found after the exchange, or one that stays but is gone before its rename
/// back, is counted vanished. `.cap-exchange` in the state directory marks the work under way
/// (created before the exchange, removed after the last rename back; ext4 journals the three in
/// order): a crash in between leaves alerts that should be queued in overflow/, and the next
/// cap, finding the marker, takes the foreign names and every protected alert back (past the
/// cap) before it does anything else. Triage claims from overflow/ in the same order anyway.
///
/// `None` when the filesystem cannot exchange (nothing was changed): the caller uses the loop.
fn defer_by_exchange(
    sp: &Spool<'_>,
    ledger: &mut Ledger,
    listed: &[Vec<u8>],
    defer: &[Vec<u8>],
) -> Result<Option<MoveOutcome>, SpoolError> {
    let st = sp.state;
    let strict = sp.durability == Durability::Strict;
    match st.root.create_file(EXCHANGE_MARKER, b"", sp.durability) {
        Ok(()) => {}
        Err(e) if e.io.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e.into()),
    }
    if strict {
        st.root.sync()?;
    }
    match crate::store::fsx::exchange_subdirs(
        &st.root,
        "queue",
        &st.queue,
        "overflow",
        &st.overflow,
    ) {
        Ok(()) => {}
        Err(e) if e.is_unsupported() => {
            tracing::debug!("cap: {e}; deferring by renames");
            st.root.remove_file(EXCHANGE_MARKER.as_bytes())?;
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    }
    if strict {
        st.root.sync()?;
    }
    // A test hook: hold still between the exchange and the listing, so that a test can make
    // planned alerts vanish in that window.
    if let Some(ms) = std::env::var("SIGNALFOUNDRY_DEBUG_CAP_PAUSE_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
    let planned: std::collections::HashSet<&[u8]> = defer.iter().map(Vec::as_slice).collect();
    let mut present: Vec<Vec<u8>> = Vec::with_capacity(defer.len());
    let mut back: Vec<Vec<u8>> = Vec::new();
    st.overflow.for_each_entry(|e| {
        if planned.contains(e.name.as_slice()) {
            present.push(e.name);
        } else if !e.is_dot() {
            back.push(e.name);
        }
    })?;
    // Foreign names first, then the queue's order (protected and highest first), so a crash
    // part way leaves the most urgent alerts in queue/.
    back.sort_unstable_by(|a, b| {
        names::is_canonical(a)
            .cmp(&names::is_canonical(b))
            .then_with(|| a.cmp(b))
    });
    let (mut kept, mut gone, mut collisions) = (0u64, 0u64, 0u64);
    // Listed alerts that were to stay but were not found after the exchange are gone too.
    let stay_listed = (listed.len() - defer.len()) as u64;
    let mut stay_seen = 0u64;
    for name in &back {
        let was_listed = listed.binary_search(name).is_ok();
        stay_seen += u64::from(was_listed);
        match st.overflow.rename_to(name, &st.queue, name)? {
            Moved::Moved => {
                if strict {
                    st.queue.sync()?;
                    st.overflow.sync()?;
                }
                if was_listed {
                    kept += 1;
                }
            }
            // Claimed or removed by another process since the listing.
            Moved::Vanished if was_listed => gone += 1,
            Moved::Vanished => {}
            Moved::Exists => collisions += 1,
        }
    }
    let done: Vec<&[u8]> = present.iter().map(Vec::as_slice).collect();
    let rowless = follow_rows(ledger, &done, State::Overflow)?;
    if sp.durability == Durability::Batch {
        st.queue.sync()?;
        st.overflow.sync()?;
    }
    st.root.remove_file(EXCHANGE_MARKER.as_bytes())?;
    if sp.durability != Durability::Off {
        st.root.sync()?;
    }
    Ok(Some(MoveOutcome {
        moved: present.len() as u64,
        vanished: (defer.len() - present.len()) as u64
            + gone
            + stay_listed.saturating_sub(stay_seen),
        collisions,
        rowless,
        kept: Some(kept),
    }))
}

/// One cap pass: admission, then defer or refill as [`plan`] says, adopting rowless files.
pub fn run_once(
    sp: &Spool<'_>,
    ledger: &mut Ledger,
    cap: u64,
    protect_level: u32,
    now: DateTime<Utc>,
    notices: &mut Vec<Notice>,
) -> Result<CapReport, SpoolError> {
    // A deferral by exchange that did not finish (see `defer_by_exchange`): what it had not
    // renamed back yet is in overflow/. Foreign names go back before admission looks at the
    // queue; protected alerts come back with this pass's refill (`plan`).
    let unfinished = sp.state.root.has_entry(EXCHANGE_MARKER)?;
    if unfinished {
        for name in names::list_foreign(&sp.state.overflow)? {
            let _ = sp.state.overflow.rename_to(&name, &sp.state.queue, &name)?;
        }
    }
    let mut report = CapReport {
        admission: sp.admit(ledger, now, notices)?,
        ..CapReport::default()
    };
    let queue = names::list_sorted(&sp.state.queue)?;
    let overflow = if unfinished || queue.len() < cap as usize {
        names::list_sorted(&sp.state.overflow)?
    } else {
        Vec::new()
    };
    let p = plan(&queue, &overflow, cap, protect_level);
    let by_exchange =
        if exchange_pays(queue.len(), p.defer.len()) && !sp.state.overflow.any_visible_entry()? {
            defer_by_exchange(sp, ledger, &queue, &p.defer)?
        } else {
            None
        };
    let d = match by_exchange {
        Some(d) => d,
        None => move_all(
            sp,
            ledger,
            &sp.state.queue,
            &sp.state.overflow,
            &p.defer,
            State::Overflow,
        )?,
    };
    let r = move_all(
        sp,
        ledger,
        &sp.state.overflow,
        &sp.state.queue,
        &p.refill,
        State::Queued,
    )?;
    if unfinished {
        sp.state.root.remove_file(EXCHANGE_MARKER.as_bytes())?;
    }
    let a1 = sp.adopt(
        ledger,
        &sp.state.overflow,
        "overflow",
        &d.rowless,
        State::Overflow,
        now,
        notices,
    )?;
    let a2 = sp.adopt(
        ledger,
        &sp.state.queue,
        "queue",
        &r.rowless,
        State::Queued,
        now,
        notices,
    )?;
    let (deferred, refilled) = (d.moved, r.moved);
    report.deferred = deferred;
    report.refilled = refilled;
    report.vanished = d.vanished + r.vanished;
    report.collisions = d.collisions + r.collisions;
    report.adopted = a1.adopted + a2.adopted;
    report.protected_over_cap = p.protected_over_cap;
    report.queue_depth = match d.kept {
        Some(kept) => kept + refilled,
        None => (queue.len() as u64 + refilled).saturating_sub(deferred),
    };
    report.overflow_depth = count_canonical(&sp.state.overflow)?;
    Ok(report)
}

fn count_canonical(dir: &DirFd) -> Result<u64, SpoolError> {
    let mut n = 0;
    dir.for_each_entry(|e| {
        if names::is_canonical(&e.name) {
            n += 1;
        }
    })?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::alert::KeyHash;
    use chrono::TimeZone;

    fn n(prio: u32, sec: u32, k: &str) -> Vec<u8> {
        let t = Utc
            .with_ymd_and_hms(2026, 1, 1, 0, 0, sec)
            .single()
            .expect("t");
        Canonical::new(prio, t, KeyHash::of(k.as_bytes()))
            .name()
            .into_bytes()
    }

    fn sorted(mut v: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
        v.sort();
        v
    }

    /// One data-driven check: queue and overflow contents, cap and protect level in; the
    /// deferred set, refill order and protected count out.
    fn check(
        queue: Vec<Vec<u8>>,
        overflow: Vec<Vec<u8>>,
        cap: u64,
        protect: u32,
        defer: Vec<Vec<u8>>,
        refill: Vec<Vec<u8>>,
        over: u64,
    ) {
        let p = plan(&sorted(queue), &sorted(overflow), cap, protect);
        assert_eq!(sorted(p.defer), sorted(defer), "deferred set");
        assert_eq!(p.refill, refill, "refill order");
        assert_eq!(p.protected_over_cap, over, "protected over cap");
    }

    #[test]
    fn defers_lowest_priority_then_newest_first() {
        let q = vec![
            n(3, 1, "a"),
            n(3, 2, "b"),
            n(5, 9, "c"),
            n(10, 5, "d"),
            n(3, 3, "e"),
        ];
        // Tail of the order: priority 3 newest (e at 3s, then b at 2s).
        check(
            q,
            vec![],
            3,
            12,
            vec![n(3, 3, "e"), n(3, 2, "b")],
            vec![],
            0,
        );
    }

    #[test]
    fn never_defers_at_or_above_protect_level() {
        let q = vec![n(12, 1, "a"), n(15, 2, "b"), n(12, 3, "c"), n(2, 4, "d")];
        check(q, vec![], 1, 12, vec![n(2, 4, "d")], vec![], 2);
    }

    #[test]
    fn refills_from_the_head_of_the_overflow_order() {
        let q = vec![n(7, 1, "a")];
        let o = vec![n(3, 1, "b"), n(9, 8, "c"), n(9, 2, "d"), n(1, 0, "e")];
        check(q, o, 3, 12, vec![], vec![n(9, 2, "d"), n(9, 8, "c")], 0);
    }

    #[test]
    fn a_queue_at_the_cap_moves_nothing() {
        let q = vec![n(1, 1, "a"), n(2, 2, "b")];
        check(q, vec![n(9, 1, "z")], 2, 12, vec![], vec![], 0);
    }

    #[test]
    fn protected_alerts_in_overflow_go_back_even_past_the_cap() {
        let q = vec![n(3, 1, "a")];
        let o = vec![n(13, 1, "b"), n(12, 2, "c"), n(12, 3, "d"), n(5, 1, "e")];
        check(
            q,
            o,
            2,
            12,
            vec![],
            vec![n(13, 1, "b"), n(12, 2, "c"), n(12, 3, "d")],
            0,
        );
    }

    #[test]
    fn protected_alerts_in_overflow_go_back_while_the_queue_is_over_the_cap() {
        let q = vec![n(12, 1, "a"), n(3, 1, "b"), n(3, 2, "c")];
        let o = vec![n(12, 5, "d"), n(5, 1, "e")];
        check(q, o, 2, 12, vec![n(3, 2, "c")], vec![n(12, 5, "d")], 0);
    }

    #[test]
    fn exchange_only_when_it_saves_most_renames() {
        assert!(exchange_pays(500_000, 490_000));
        assert!(!exchange_pays(500_000, 200_000), "300,000 would go back");
        assert!(!exchange_pays(900, 800), "small deferrals use the loop");
    }

    #[test]
    fn protect_level_zero_protects_everything() {
        let q = vec![n(0, 1, "a"), n(0, 2, "b")];
        check(q, vec![], 1, 0, vec![], vec![], 1);
    }
}
