//! Delivery: incidents' messages to people and case tools, from the ledger's outbox.
//!
//! The incident round records each due message (`event::Event`) in the outbox in the
//! transaction that records the incident's built revision (`due`); this stage sends what is
//! due, per route, and records every attempt. `formats` renders an event for each kind (pure);
//! `send` speaks each kind's protocol; `routes` reads a route's secrets.
//!
//! Design constraints:
//! - At least once, never lost: a message leaves `pending` only when the receiver accepted it
//!   (or answered that it has it: TheHive's duplicate, IRIS's lookup) or when it is `dead`
//!   (kept, counted, `outbox retry` brings it back). A crash between the answer and the
//!   record sends it again under the same id (the receiver's idempotency key).
//! - One thread per route; within a route at most `concurrency` requests at once, spaced by
//!   the vendor's limit (`NotifyKind::min_interval`), and at most `max_per_hour` sent in any
//!   hour: beyond it messages are held (pending, due, counted `held`), never dropped.
//! - Failures are rescheduled (`not_before`): exponential backoff from `[delivery]
//!   retry_base` with jitter, at least what `Retry-After` said; a route's pass waits for
//!   retries due soon, [`WAIT_FOR_RETRY`] in all, so a short hiccup does not wait a run. A
//!   pass first probes the route with its first message backing off: accepted, the route is
//!   back and its backlog is due at once.
//! - An answer that can never succeed (4xx other than 408 and 429) is dead at once, with what
//!   to fix. After `max_attempts` attempts or `max_age` since it was due, a message is dead.

pub mod due;
pub mod event;
pub mod formats;
pub mod routes;
pub mod send;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::config::{DeliveryConfig, NotifyConfig};
use crate::stages::{Counters, Report};
use crate::store::fsx::Durability;
use crate::store::ledger::incidents::time_text;
use crate::store::ledger::outbox::{Attempted, MessageRow, MsgState};
use crate::store::ledger::{Ledger, LedgerError};
use event::Event;
use routes::Endpoint;
use send::Outcome;

/// Retries due soon are waited for within one route's pass, this long in all (inside the
/// stage's `max_duration`); later ones are the next pass's.
pub const WAIT_FOR_RETRY: Duration = Duration::from_secs(10);
/// The longest backoff between two attempts.
const BACKOFF_MAX: Duration = Duration::from_secs(3600);
/// The longest a receiver's `Retry-After` puts a message off.
const RETRY_AFTER_MAX: Duration = Duration::from_secs(6 * 3600);

/// One route's figures.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RouteFigures {
    pub sent: u64,
    pub retried: u64,
    pub held: u64,
    pub dead: u64,
    /// Messages now pending (due or not yet due).
    pub pending: u64,
    /// The route could not be loaded (its messages wait): what to fix.
    pub error: Option<String>,
}

/// What the deliver stage did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliverReport {
    /// Accepted by the receiver this run.
    pub sent: u64,
    /// Attempts that failed and were rescheduled this run.
    pub retried: u64,
    /// Due but beyond the route's `max_per_hour` (they wait).
    pub held: u64,
    /// Messages dead in the outbox (all routes, now).
    pub dead: u64,
    /// Messages pending in the outbox (all routes, now).
    pub pending: u64,
    /// Messages of routes no longer configured (kept, reported, not sent).
    pub orphaned: u64,
    pub routes: BTreeMap<String, RouteFigures>,
}

impl DeliverReport {
    /// `OK`, `DEGRADED` (an attempt failed, or a message is dead) or `FAILED` (a route could
    /// not be used at all).
    pub fn status(&self) -> &'static str {
        if self.routes.values().any(|r| r.error.is_some()) {
            "FAILED"
        } else if self.dead > 0 || self.retried > 0 {
            "DEGRADED"
        } else {
            "OK"
        }
    }
}

impl Report for DeliverReport {
    const NAME: &'static str = "deliver";

    fn counters(&self) -> Counters {
        Counters::from([
            ("sent", self.sent),
            ("retried", self.retried),
            ("held", self.held),
            ("dead", self.dead),
            ("pending", self.pending),
            ("orphaned", self.orphaned),
        ])
    }
}

/// How one deliver stage runs.
#[derive(Debug, Clone)]
pub struct DeliverOptions {
    pub durability: Durability,
    /// Stop starting new attempts after this.
    pub deadline: Instant,
    pub stop: Option<std::sync::Arc<AtomicBool>>,
    /// Try the route's first message that is backing off before anything else: when it is
    /// accepted, the route answers again and its backlog is due now. A failed probe records
    /// nothing (it is not one of the message's attempts). `run` and `deliver` probe; the
    /// daemon's passes between runs do not (they would probe a dead receiver every few
    /// seconds).
    pub probe: bool,
}

/// Routes with a pass running in this process.
static BUSY: Mutex<std::collections::BTreeSet<String>> =
    Mutex::new(std::collections::BTreeSet::new());

/// A route's pass under way; dropped (even by a panic), the route is free.
struct Busy(String);

impl Busy {
    fn take(route: &str) -> Option<Busy> {
        let mut b = BUSY
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        b.insert(route.to_string()).then(|| Busy(route.to_string()))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        BUSY.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&self.0);
    }
}

/// Sends what is due on every configured route.
///
/// Each route's client is built here, one after the other, then each route runs on a thread
/// of its own; a route that has not reported by the deadline plus its timeout (a receiver that
/// holds a connection past every timeout) is said FAILED and left behind: the stage ends on
/// time, and its messages stay pending for the next pass.
pub fn run(
    ledger_path: &Path,
    routes: &[NotifyConfig],
    cfg: &DeliveryConfig,
    opts: &DeliverOptions,
) -> Result<DeliverReport, LedgerError> {
    let mut report = DeliverReport::default();
    let (tx, rx) = std::sync::mpsc::channel();
    let mut waiting = std::collections::BTreeSet::new();
    let mut grace = Duration::from_secs(5);
    for r in routes {
        let ep = match routes::load(r) {
            Ok(ep) => ep,
            Err(e) => {
                tracing::error!("{e}");
                let fig = RouteFigures {
                    error: Some(e.problem),
                    ..RouteFigures::default()
                };
                report.routes.insert(r.name.clone(), fig);
                continue;
            }
        };
        // One pass per route at a time in this process: a pass left behind at an earlier
        // deadline (a receiver holding a connection) still owns its route.
        let Some(busy) = Busy::take(&r.name) else {
            tracing::warn!(
                "deliver {}: an earlier pass is still running (a slow receiver); this pass skips the route",
                r.name
            );
            report
                .routes
                .insert(r.name.clone(), RouteFigures::default());
            continue;
        };
        grace = grace.max(r.timeout.saturating_mul(2) + Duration::from_secs(5));
        let (tx, path, cfg, opts) = (
            tx.clone(),
            ledger_path.to_path_buf(),
            cfg.clone(),
            opts.clone(),
        );
        let name = r.name.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("deliver-{name}"))
            .spawn(move || {
                let _busy = busy;
                let out = route_pass(&path, &ep, &cfg, &opts);
                let _ = tx.send((name, out));
            });
        match spawned {
            Ok(_) => {
                waiting.insert(r.name.clone());
            }
            Err(e) => {
                report.routes.insert(
                    r.name.clone(),
                    RouteFigures {
                        error: Some(format!("cannot start its thread: {e}")),
                        ..RouteFigures::default()
                    },
                );
            }
        }
    }
    drop(tx);
    let give_up = opts.deadline.checked_add(grace).unwrap_or(opts.deadline);
    let mut failure = None;
    while !waiting.is_empty() {
        let left = give_up.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((name, out)) => {
                waiting.remove(&name);
                match out {
                    Ok(fig) => {
                        report.sent += fig.sent;
                        report.retried += fig.retried;
                        report.held += fig.held;
                        report.routes.insert(name, fig);
                    }
                    Err(e) => failure = Some(e),
                }
            }
            Err(_) => break,
        }
    }
    for name in waiting {
        tracing::error!("deliver {name}: the route did not finish in time (a receiver holding a connection?); its messages stay pending");
        report.routes.insert(
            name,
            RouteFigures {
                error: Some(
                    "did not finish by the deadline (a receiver holding a connection open?)".into(),
                ),
                ..RouteFigures::default()
            },
        );
    }
    if let Some(e) = failure {
        return Err(e);
    }
    let ledger = Ledger::open(ledger_path, opts.durability)?;
    for (route, state, n) in ledger.outbox_counts()? {
        match report.routes.get_mut(&route) {
            Some(fig) => match state {
                MsgState::Pending => fig.pending += n,
                MsgState::Dead => fig.dead += n,
                MsgState::Sent => {}
            },
            None if state != MsgState::Sent => report.orphaned += n,
            None => {}
        }
        match state {
            MsgState::Pending => report.pending += n,
            MsgState::Dead => report.dead += n,
            MsgState::Sent => {}
        }
    }
    Ok(report)
}

/// One route's pass: send what is due until nothing is, the hour's budget is spent or the
/// deadline passes.
fn route_pass(
    ledger_path: &Path,
    ep: &Endpoint,
    cfg: &DeliveryConfig,
    opts: &DeliverOptions,
) -> Result<RouteFigures, LedgerError> {
    let mut fig = RouteFigures::default();
    let route = &ep.cfg;
    let mut ledger = Ledger::open(ledger_path, opts.durability)?;
    let slot = Mutex::new(Instant::now());
    if opts.probe {
        probe(&mut ledger, ep, cfg, &slot, &mut fig)?;
    }
    let mut waited = Duration::ZERO;
    loop {
        let stopping = opts.stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst));
        if stopping || Instant::now() >= opts.deadline {
            break;
        }
        let now = Utc::now();
        let now_s = time_text(now);
        let hour_ago = time_text(now - chrono::Duration::hours(1));
        let sent = ledger.outbox_sent_since(&route.name, &hour_ago)?;
        let budget = u64::from(route.max_per_hour).saturating_sub(sent);
        if budget == 0 {
            // Every pending message waits for the budget now, due or retrying.
            fig.held = ledger.outbox_due_count(&route.name, ANY_TIME)?;
            if fig.held > 0 {
                tracing::warn!(
                    "deliver {}: {} message(s) held: {} sent in the last hour (max_per_hour)",
                    route.name,
                    fig.held,
                    sent
                );
            }
            break;
        }
        // The hour's last request, with more than one waiting (due, or retrying): one digest
        // stands for them all; a failed digest is tried again a few times within the pass.
        if budget == 1
            && route.kind.digests()
            && ledger.outbox_due_count(&route.name, ANY_TIME)? > 1
        {
            let mut sent = None;
            for i in 0..DIGEST_TRIES {
                sent = digest(&mut ledger, ep)?;
                let pause = cfg.retry_base.saturating_mul(1 << i);
                if sent.is_some() || Instant::now() + pause >= opts.deadline {
                    break;
                }
                std::thread::sleep(pause);
            }
            match sent {
                Some(n) => {
                    fig.sent += n;
                    continue;
                }
                None => {
                    fig.held = ledger.outbox_due_count(&route.name, ANY_TIME)?;
                    break;
                }
            }
        }
        let limit = (route.concurrency as u64 * 4).min(budget) as usize;
        let due = ledger.outbox_due(&route.name, &now_s, limit)?;
        if due.is_empty() {
            // A retry due soon is waited for; anything later is the next run's.
            match ledger.outbox_next_due(&route.name, &now_s)? {
                Some(next) if wait_for(&next, opts.deadline, &mut waited) => continue,
                _ => break,
            }
        }
        let due = spaced_updates(&mut ledger, route, due, now)?;
        let mut throttled = false;
        for chunk in due.chunks(route.concurrency) {
            // Each chunk starts only in time to end by the deadline.
            if Instant::now() + route.timeout >= opts.deadline {
                break;
            }
            // Frozen first, the events read back in the same transaction: what is sent is
            // what is stored, and a round can no longer refresh it.
            let ids: Vec<String> = chunk.iter().map(|m| m.id.clone()).collect();
            let events = ledger.write(|tx| tx.outbox_freeze(&ids))?;
            let frozen: Vec<MessageRow> = chunk
                .iter()
                .filter_map(|m| {
                    events
                        .iter()
                        .find(|(id, _)| *id == m.id)
                        .map(|(_, ev)| MessageRow {
                            event: ev.clone(),
                            ..m.clone()
                        })
                })
                .collect();
            let outcomes: Vec<(String, Attempted, Option<Duration>)> = std::thread::scope(|s| {
                let hs: Vec<_> = frozen
                    .iter()
                    .map(|m| {
                        let slot = &slot;
                        (m.id.clone(), s.spawn(move || attempt(ep, m, cfg, slot)))
                    })
                    .collect();
                hs.into_iter()
                    .map(|(id, h)| match h.join() {
                        Ok((a, after)) => (id, a, after),
                        Err(_) => (
                            id,
                            Attempted::Retry {
                                next: time_text(Utc::now() + chrono::Duration::minutes(5)),
                                error: "the attempt failed unexpectedly (a bug: please report it)"
                                    .into(),
                            },
                            None,
                        ),
                    })
                    .collect()
            });
            let now_s = time_text(Utc::now());
            ledger.write(|tx| {
                for (id, a, _) in &outcomes {
                    tx.outbox_attempted(id, a, &now_s)?;
                }
                Ok(())
            })?;
            for (_, a, after) in &outcomes {
                match a {
                    Attempted::Sent => fig.sent += 1,
                    Attempted::Retry { .. } => fig.retried += 1,
                    Attempted::Dead { .. } => {}
                }
                // The receiver asked the route to slow down (429, 503 with Retry-After): the
                // rest waits for the next pass rather than spend attempts on refusals.
                if let Some(after) = after {
                    throttled = true;
                    let mut next = slot
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    *next = (*next).max(Instant::now() + *after);
                }
            }
            if throttled {
                break;
            }
        }
        if throttled {
            break;
        }
    }
    Ok(fig)
}

/// Due `incident.updated` messages whose incident had a message sent less than
/// `update_every` ago are put off until then (no attempt); the rest, in order.
fn spaced_updates(
    ledger: &mut Ledger,
    route: &NotifyConfig,
    due: Vec<MessageRow>,
    now: DateTime<Utc>,
) -> Result<Vec<MessageRow>, LedgerError> {
    let every =
        chrono::Duration::from_std(route.update_every).unwrap_or(chrono::Duration::days(30));
    let mut keep = Vec::with_capacity(due.len());
    let mut later = Vec::new();
    for m in due {
        if m.kind == event::MessageType::Updated.as_str() {
            let last = ledger
                .outbox_last_sent(&route.name, &m.incident)?
                .and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
                .map(|t| t.with_timezone(&Utc));
            if let Some(at) = last
                .and_then(|l| l.checked_add_signed(every))
                .filter(|at| *at > now)
            {
                later.push((m.id.clone(), time_text(at)));
                continue;
            }
        }
        keep.push(m);
    }
    if !later.is_empty() {
        ledger.write(|tx| {
            for (id, until) in &later {
                tx.outbox_postpone(id, until)?;
            }
            Ok(())
        })?;
    }
    Ok(keep)
}

/// Most messages one digest stands for.
const DIGEST_MAX: usize = 1_000;
/// Tries of one digest within a pass.
const DIGEST_TRIES: u32 = 4;
/// A `not_before` bound later than any: every pending message (due or backing off).
const ANY_TIME: &str = "9999";

/// Sends the route's pending messages (first of each incident; due or backing off) as one
/// `incident.digest`; how many it stood for, or `None` when it was not accepted (they stay
/// pending, held).
fn digest(ledger: &mut Ledger, ep: &Endpoint) -> Result<Option<u64>, LedgerError> {
    let due = ledger.outbox_due(ep.name(), ANY_TIME, DIGEST_MAX)?;
    let messages: Vec<event::DigestItem> = due
        .iter()
        .map(|m| event::DigestItem {
            id: m.id.clone(),
            kind: event::MessageType::parse(&m.kind).unwrap_or(event::MessageType::Updated),
            incident: m.incident.clone(),
            title: serde_json::from_str::<Event>(&m.event)
                .map(|e| e.title)
                .unwrap_or_default(),
        })
        .collect();
    let ids: Vec<String> = due.iter().map(|m| m.id.clone()).collect();
    let d = event::Digest {
        id: digest_id(ep.name(), &ids),
        route: ep.name().to_string(),
        created_at: Utc::now(),
        messages,
    };
    match send::send_digest(ep, &d) {
        Outcome::Delivered => {
            let now_s = time_text(Utc::now());
            ledger.write(|tx| tx.outbox_digested(&ids, &d.id, &now_s))?;
            tracing::warn!(
                "deliver {}: max_per_hour reached; {} held message(s) sent as digest {}",
                ep.name(),
                ids.len(),
                d.id
            );
            Ok(Some(ids.len() as u64))
        }
        Outcome::Retry { error, .. } | Outcome::Permanent { error } => {
            tracing::warn!(
                "deliver {}: digest of {} held message(s) not sent: {}",
                ep.name(),
                ids.len(),
                ep.scrub(&error)
            );
            Ok(None)
        }
    }
}

/// `dig_` and 32 hex digits of the route and the ids a digest stands for.
fn digest_id(route: &str, ids: &[String]) -> String {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    h.update(route.as_bytes());
    for id in ids {
        h.update([0]);
        h.update(id.as_bytes());
    }
    format!("dig_{}", &hex::encode(h.finalize())[..32])
}

/// Tries the route's first message backing off; when the route accepts it, the rest of its
/// backlog is due now.
fn probe(
    ledger: &mut Ledger,
    ep: &Endpoint,
    cfg: &DeliveryConfig,
    slot: &Mutex<Instant>,
    fig: &mut RouteFigures,
) -> Result<(), LedgerError> {
    let name = ep.name().to_string();
    let now_s = time_text(Utc::now());
    let hour_ago = time_text(Utc::now() - chrono::Duration::hours(1));
    if ledger.outbox_sent_since(&name, &hour_ago)? >= u64::from(ep.cfg.max_per_hour) {
        return Ok(());
    }
    let Some(m) = ledger.outbox_backing_off(&name, &now_s)? else {
        return Ok(());
    };
    // Frozen already (it was attempted); read back as stored.
    let Some((_, event)) = ledger
        .write(|tx| tx.outbox_freeze(std::slice::from_ref(&m.id)))?
        .into_iter()
        .next()
    else {
        return Ok(());
    };
    let m = MessageRow { event, ..m };
    let outcome = match serde_json::from_str::<Event>(&m.event) {
        Ok(ev) => {
            spaced(ep, slot);
            send::send(ep, &ev)
        }
        Err(_) => return Ok(()),
    };
    // Only what the receiver said for good is recorded: a failed probe is not one of the
    // message's attempts.
    match outcome {
        Outcome::Retry { .. } => {
            tracing::info!(
                "deliver {name}: still failing ({} waits for its retry)",
                m.id
            );
        }
        outcome => {
            let a = judged(ep, &m, cfg, outcome);
            let sent = a == Attempted::Sent;
            let now_s = time_text(Utc::now());
            let woken = ledger.write(|tx| {
                tx.outbox_attempted(&m.id, &a, &now_s)?;
                if sent {
                    tx.outbox_due_now(&name, &now_s)
                } else {
                    Ok(0)
                }
            })?;
            if sent {
                fig.sent += 1;
                if woken > 0 {
                    tracing::info!("deliver {name}: the route answers again; {woken} message(s) waiting on a retry are due now");
                }
            }
        }
    }
    Ok(())
}

/// Sleeps until `next` when the pass has waited less than [`WAIT_FOR_RETRY`] in all with it,
/// and before the deadline.
fn wait_for(next: &str, deadline: Instant, waited: &mut Duration) -> bool {
    let Ok(at) = DateTime::parse_from_rfc3339(next) else {
        return false;
    };
    let wait = (at.with_timezone(&Utc) - Utc::now())
        .to_std()
        .unwrap_or(Duration::ZERO);
    // Nothing to wait for (the next one is due already, yet was not sent): the pass ends
    // rather than spin.
    if wait.is_zero() || *waited + wait > WAIT_FOR_RETRY || Instant::now() + wait >= deadline {
        return false;
    }
    *waited += wait;
    std::thread::sleep(wait + Duration::from_millis(5));
    true
}

/// One attempt of one message: what it comes to, and the `Retry-After` the receiver asked
/// for (the route's next request waits for it).
fn attempt(
    ep: &Endpoint,
    m: &MessageRow,
    cfg: &DeliveryConfig,
    slot: &Mutex<Instant>,
) -> (Attempted, Option<Duration>) {
    let outcome = match serde_json::from_str::<Event>(&m.event) {
        Ok(event) => {
            spaced(ep, slot);
            send::send(ep, &event)
        }
        Err(e) => Outcome::Permanent {
            error: format!("the stored event is unreadable ({e}); report a bug"),
        },
    };
    let after = match &outcome {
        Outcome::Retry { after, .. } => *after,
        _ => None,
    };
    (judged(ep, m, cfg, outcome), after)
}

/// Waits for the route's next free slot (the vendor's spacing).
fn spaced(ep: &Endpoint, slot: &Mutex<Instant>) {
    let wait = {
        let mut next = slot
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        let at = (*next).max(now);
        *next = at + ep.cfg.kind.min_interval();
        at - now
    };
    std::thread::sleep(wait);
}

/// What an attempt's outcome means for the message: sent, retried (when), or dead.
fn judged(ep: &Endpoint, m: &MessageRow, cfg: &DeliveryConfig, outcome: Outcome) -> Attempted {
    let kind = serde_json::from_str::<Event>(&m.event)
        .map(|e| e.kind.as_str())
        .unwrap_or("message");
    let attempts = m.attempts + 1;
    let now = Utc::now();
    // Age from the first attempt (a message held by max_per_hour or update_every has not been
    // failing; `outbox retry` starts it afresh).
    let first = m
        .first_attempt_at
        .as_deref()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map_or(now, |t| t.with_timezone(&Utc));
    let too_old = (now - first).to_std().unwrap_or(Duration::ZERO) >= cfg.max_age;
    match outcome {
        Outcome::Delivered => {
            tracing::info!(
                "deliver {}: {kind} {} sent (attempt {attempts})",
                ep.name(),
                m.id
            );
            Attempted::Sent
        }
        Outcome::Permanent { error } => {
            let error = shown_error(ep, &error);
            tracing::error!("deliver {}: {} dead: {error}", ep.name(), m.id);
            Attempted::Dead { error }
        }
        Outcome::Retry { after, error } => {
            let error = shown_error(ep, &error);
            if attempts >= cfg.max_attempts || too_old {
                let why = if too_old { "max_age" } else { "max_attempts" };
                tracing::error!(
                    "deliver {}: {} dead after {attempts} attempts ({why}): {error}",
                    ep.name(),
                    m.id
                );
                return Attempted::Dead {
                    error: format!("{error} (gave up: {why})"),
                };
            }
            let delay = backoff(cfg.retry_base, attempts, &m.id)
                .max(after.unwrap_or_default())
                .min(RETRY_AFTER_MAX);
            let next =
                now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::hours(1));
            tracing::warn!(
                "deliver {}: {} attempt {attempts} failed: {error}; next in {}",
                ep.name(),
                m.id,
                humantime::format_duration(Duration::from_secs(delay.as_secs().max(1)))
            );
            Attempted::Retry {
                next: time_text(next),
                error,
            }
        }
    }
}

/// An error as it may be kept and logged: the route's secrets scrubbed, escaped, at most
/// 500 characters (an SMTP server's reply is its own text).
fn shown_error(ep: &Endpoint, error: &str) -> String {
    let s = crate::store::fsx::escape_text(&ep.scrub(error));
    match s.char_indices().nth(500) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s,
    }
}

/// `base · 2^(attempts-1)`, at most [`BACKOFF_MAX`], with jitter: between half and all of it
/// (drawn from the message id, the attempt and the clock, so routes do not retry in step).
pub fn backoff(base: Duration, attempts: u32, id: &str) -> Duration {
    let exp = attempts.saturating_sub(1).min(20);
    let full = base.saturating_mul(1u32 << exp).min(BACKOFF_MAX);
    let mut h = std::collections::hash_map::DefaultHasher::new();
    std::hash::Hash::hash(&(id, attempts, Instant::now()), &mut h);
    let r = std::hash::Hasher::finish(&h) % 1000;
    full / 2 + full.mul_f64(r as f64 / 2000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered_within_half_to_all() {
        let base = Duration::from_secs(5);
        for a in 1..=30 {
            let full = base
                .saturating_mul(1u32 << (a - 1).min(20))
                .min(BACKOFF_MAX);
            let d = backoff(base, a, "msg_x");
            assert!(d >= full / 2 && d <= full, "attempt {a}: {d:?} vs {full:?}");
        }
        assert!(backoff(base, 30, "m") <= BACKOFF_MAX);
    }

    #[test]
    fn the_summary_line_is_the_counters() {
        let r = DeliverReport {
            sent: 3,
            retried: 1,
            ..DeliverReport::default()
        };
        assert_eq!(
            r.summary(r.status()),
            "deliver: status=DEGRADED sent=3 retried=1 held=0 dead=0 pending=0 orphaned=0"
        );
    }
}
