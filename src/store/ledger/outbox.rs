//! The delivery outbox (migration 6): one row per message (route, incident, sequence), its
//! state and attempts; each route's progress per incident; the routes seen.
//!
//! Design constraints:
//! - A message row is written in the transaction that records the incident revision it
//!   describes (the incident round's commit): a crash before it leaves the incident dirty, so
//!   the next round writes it; a crash after it leaves it pending. Ids are deterministic, so a
//!   repeated round inserts nothing twice (`INSERT OR IGNORE`).
//! - States: `pending` (due at `not_before`, possibly retried), `sent`, `dead` (kept, counted,
//!   brought back by `outbox retry`). A message of a route no longer configured is reported
//!   `orphaned` by the readers; its row keeps its state.
//! - The event is frozen before its first attempt (`frozen`, set with the event read back in
//!   one transaction, so what is sent is what is stored): only an unfrozen `incident.updated`
//!   is refreshed (coalescing), so every attempt sends the same bytes.

use rusqlite::{params, OptionalExtension};

use super::{Ledger, LedgerError, Tx};

/// A message's state in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MsgState {
    Pending,
    Sent,
    Dead,
}

impl MsgState {
    pub const ALL: [MsgState; 3] = [MsgState::Pending, MsgState::Sent, MsgState::Dead];

    pub fn as_str(self) -> &'static str {
        match self {
            MsgState::Pending => "pending",
            MsgState::Sent => "sent",
            MsgState::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<MsgState> {
        MsgState::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

/// One outbox row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRow {
    pub id: String,
    pub route: String,
    pub incident: String,
    pub seq: u32,
    /// `incident.opened`, ...
    pub kind: String,
    pub state: MsgState,
    /// The event, JSON (`stages::deliver::event::Event`).
    pub event: String,
    pub attempts: u32,
    pub not_before: String,
    pub created_at: String,
    pub first_attempt_at: Option<String>,
    pub sent_at: Option<String>,
    pub last_error: Option<String>,
}

/// A route's progress on one incident.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub route: String,
    pub incident: String,
    /// The next message's sequence number.
    pub next_seq: u32,
    /// Members the last message made due described.
    pub members: u64,
    /// When the last message was due (`not_before`), for `update_every`.
    pub last_due: String,
    /// `incident.closed` is made due.
    pub closed: bool,
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempted {
    Sent,
    /// Failed; try again at `next` (the reason is what the receiver said, without secrets).
    Retry {
        next: String,
        error: String,
    },
    /// Failed for good (a permanent answer, or out of attempts or age).
    Dead {
        error: String,
    },
}

const COLUMNS: &str = "id, route, incident, seq, type, state, event, attempts, not_before, \
     created_at, first_attempt_at, sent_at, last_error";

fn message(r: &rusqlite::Row<'_>) -> rusqlite::Result<MessageRow> {
    let state: String = r.get(5)?;
    Ok(MessageRow {
        id: r.get(0)?,
        route: r.get(1)?,
        incident: r.get(2)?,
        seq: r.get(3)?,
        kind: r.get(4)?,
        state: MsgState::parse(&state).unwrap_or(MsgState::Pending),
        event: r.get(6)?,
        attempts: r.get(7)?,
        not_before: r.get(8)?,
        created_at: r.get(9)?,
        first_attempt_at: r.get(10)?,
        sent_at: r.get(11)?,
        last_error: r.get(12)?,
    })
}

fn progress(r: &rusqlite::Row<'_>) -> rusqlite::Result<Progress> {
    Ok(Progress {
        route: r.get(0)?,
        incident: r.get(1)?,
        next_seq: r.get(2)?,
        members: r.get(3)?,
        last_due: r.get(4)?,
        closed: r.get::<_, i64>(5)? != 0,
    })
}

/// The SQL test "the incident's highest member is at least `bucket`" on `incidents` columns.
pub fn bucket_at_least(bucket: sf_policy::Bucket) -> &'static str {
    match bucket {
        sf_policy::Bucket::High => "high > 0",
        sf_policy::Bucket::Medium => "high + medium > 0",
        sf_policy::Bucket::Low => "high + medium + low > 0",
        sf_policy::Bucket::Suppressed => "members > 0",
    }
}

impl Tx<'_> {
    /// Records a route as seen (first time only); returns when it was first seen.
    pub fn notify_route_seen(
        &mut self,
        name: &str,
        kind: &str,
        now: &str,
    ) -> Result<String, rusqlite::Error> {
        self.tx.execute(
            "INSERT OR IGNORE INTO notify_routes (name, kind, first_seen) VALUES (?1, ?2, ?3)",
            params![name, kind, now],
        )?;
        self.tx.query_row(
            "SELECT first_seen FROM notify_routes WHERE name = ?1",
            [name],
            |r| r.get(0),
        )
    }

    pub fn set_notify_progress(&mut self, p: &Progress) -> Result<(), rusqlite::Error> {
        self.tx.execute(
            "INSERT INTO notify_progress (route, incident, next_seq, members, last_due, closed)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (route, incident) DO UPDATE SET next_seq = excluded.next_seq,
               members = excluded.members, last_due = excluded.last_due, closed = excluded.closed",
            params![
                p.route,
                p.incident,
                p.next_seq,
                p.members,
                p.last_due,
                i64::from(p.closed)
            ],
        )?;
        Ok(())
    }

    /// Inserts a pending message (nothing when its id is there already); true when inserted.
    #[allow(clippy::too_many_arguments)]
    pub fn outbox_insert(
        &mut self,
        id: &str,
        route: &str,
        incident: &str,
        seq: u32,
        kind: &str,
        event: &str,
        not_before: &str,
        now: &str,
    ) -> Result<bool, rusqlite::Error> {
        let n = self.tx.execute(
            "INSERT OR IGNORE INTO outbox (id, route, incident, seq, type, state, event,
               not_before, created_at) VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6, ?7, ?8)",
            params![id, route, incident, seq, kind, event, not_before, now],
        )?;
        Ok(n == 1)
    }

    /// The route's unattempted pending `incident.updated` for the incident (coalescing).
    pub fn outbox_unattempted_update(
        &self,
        route: &str,
        incident: &str,
    ) -> Result<Option<MessageRow>, rusqlite::Error> {
        self.tx
            .query_row(
                &format!(
                    "SELECT {COLUMNS} FROM outbox WHERE route = ?1 AND incident = ?2
                     AND state = 'pending' AND frozen = 0 AND type = 'incident.updated'
                     ORDER BY seq DESC LIMIT 1"
                ),
                params![route, incident],
                message,
            )
            .optional()
    }

    /// Replaces an unfrozen message's event (coalescing); false when a deliver pass froze it
    /// meanwhile (then it keeps its bytes).
    pub fn outbox_refresh(&mut self, id: &str, event: &str) -> Result<bool, rusqlite::Error> {
        let n = self.tx.execute(
            "UPDATE outbox SET event = ?2 WHERE id = ?1 AND state = 'pending' AND frozen = 0",
            params![id, event],
        )?;
        Ok(n == 1)
    }

    /// Freezes pending messages before their attempt and returns their events as stored now
    /// (a round may have refreshed one since it was listed): what is sent is what is kept.
    pub fn outbox_freeze(
        &mut self,
        ids: &[String],
    ) -> Result<Vec<(String, String)>, rusqlite::Error> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            self.tx.execute(
                "UPDATE outbox SET frozen = 1 WHERE id = ?1 AND state = 'pending'",
                [id],
            )?;
            if let Some(ev) = self
                .tx
                .query_row(
                    "SELECT event FROM outbox WHERE id = ?1 AND state = 'pending'",
                    [id],
                    |r| r.get::<_, String>(0),
                )
                .optional()?
            {
                out.push((id.clone(), ev));
            }
        }
        Ok(out)
    }

    /// Puts a pending message off until `until` (no attempt: `update_every` since the last
    /// message of its incident has not passed).
    pub fn outbox_postpone(&mut self, id: &str, until: &str) -> Result<(), rusqlite::Error> {
        self.tx.execute(
            "UPDATE outbox SET not_before = ?2 WHERE id = ?1 AND state = 'pending'",
            params![id, until],
        )?;
        Ok(())
    }

    /// Records one attempt of a pending message.
    pub fn outbox_attempted(
        &mut self,
        id: &str,
        outcome: &Attempted,
        now: &str,
    ) -> Result<(), rusqlite::Error> {
        let (state, next, error, sent) = match outcome {
            Attempted::Sent => ("sent", None, None, Some(now)),
            Attempted::Retry { next, error } => ("pending", Some(next.as_str()), Some(error), None),
            Attempted::Dead { error } => ("dead", None, Some(error), None),
        };
        self.tx.execute(
            "UPDATE outbox SET state = ?2, attempts = attempts + 1,
               not_before = COALESCE(?3, not_before),
               first_attempt_at = COALESCE(first_attempt_at, ?5),
               last_error = COALESCE(?4, last_error), sent_at = COALESCE(?6, sent_at)
             WHERE id = ?1 AND state = 'pending'",
            params![id, state, next, error, now, sent],
        )?;
        Ok(())
    }

    /// Messages a delivered digest stood for: sent, under the digest's id.
    pub fn outbox_digested(
        &mut self,
        ids: &[String],
        digest: &str,
        now: &str,
    ) -> Result<(), rusqlite::Error> {
        let mut st = self.tx.prepare_cached(
            "UPDATE outbox SET state = 'sent', attempts = attempts + 1, sent_at = ?3,
               first_attempt_at = COALESCE(first_attempt_at, ?3), digest = ?2
             WHERE id = ?1 AND state = 'pending'",
        )?;
        for id in ids {
            st.execute(params![id, digest, now])?;
        }
        Ok(())
    }

    /// A route that answered again: its messages backing off after failed attempts are due now.
    pub fn outbox_due_now(&mut self, route: &str, now: &str) -> Result<usize, rusqlite::Error> {
        self.tx.execute(
            "UPDATE outbox SET not_before = ?2 WHERE route = ?1 AND state = 'pending'
               AND attempts > 0 AND not_before > ?2",
            params![route, now],
        )
    }

    /// Brings dead messages back to pending, due now, with fresh attempts: one id, or every
    /// dead one (of one route when given). Returns how many.
    pub fn outbox_revive(
        &mut self,
        id: Option<&str>,
        route: Option<&str>,
        now: &str,
    ) -> Result<usize, rusqlite::Error> {
        self.tx.execute(
            "UPDATE outbox SET state = 'pending', attempts = 0, first_attempt_at = NULL,
               not_before = ?3
             WHERE state = 'dead' AND (?1 IS NULL OR id = ?1) AND (?2 IS NULL OR route = ?2)",
            params![id, route, now],
        )
    }
}

impl Ledger {
    /// A route's progress on an incident (rounds, which alone write progress, read it before
    /// their transaction; they hold `incidents/.lock`).
    pub fn notify_progress_of(
        &self,
        route: &str,
        incident: &str,
    ) -> Result<Option<Progress>, LedgerError> {
        self.conn
            .query_row(
                "SELECT route, incident, next_seq, members, last_due, closed FROM notify_progress
                 WHERE route = ?1 AND incident = ?2",
                params![route, incident],
                progress,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// A route's pending messages due at `now`, oldest first, each only when no earlier
    /// message of its incident is still pending (per incident, in order).
    pub fn outbox_due(
        &self,
        route: &str,
        now: &str,
        limit: usize,
    ) -> Result<Vec<MessageRow>, LedgerError> {
        self.all(
            &format!(
                "SELECT {COLUMNS} FROM outbox o WHERE route = ?1 AND state = 'pending'
                 AND not_before <= ?2
                 AND NOT EXISTS (SELECT 1 FROM outbox e WHERE e.route = o.route
                   AND e.incident = o.incident AND e.seq < o.seq AND e.state = 'pending')
                 ORDER BY not_before, id LIMIT ?3"
            ),
            params![route, now, limit as i64],
            message,
        )
    }

    /// The route's first message backing off after a failed attempt (not due yet, first of its
    /// incident): what a deliver pass tries first, to learn whether the route answers again.
    pub fn outbox_backing_off(
        &self,
        route: &str,
        now: &str,
    ) -> Result<Option<MessageRow>, LedgerError> {
        self.conn
            .query_row(
                &format!(
                    "SELECT {COLUMNS} FROM outbox o WHERE route = ?1 AND state = 'pending'
                     AND attempts > 0 AND not_before > ?2
                     AND NOT EXISTS (SELECT 1 FROM outbox e WHERE e.route = o.route
                       AND e.incident = o.incident AND e.seq < o.seq AND e.state = 'pending')
                     ORDER BY not_before, id LIMIT 1"
                ),
                params![route, now],
                message,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// The earliest `not_before` after `now` of a route's pending messages that head their
    /// incident (what the route can send next).
    pub fn outbox_next_due(&self, route: &str, now: &str) -> Result<Option<String>, LedgerError> {
        self.conn
            .query_row(
                "SELECT MIN(not_before) FROM outbox o WHERE route = ?1 AND state = 'pending'
                 AND not_before > ?2
                 AND NOT EXISTS (SELECT 1 FROM outbox e WHERE e.route = o.route
                   AND e.incident = o.incident AND e.seq < o.seq AND e.state = 'pending')",
                params![route, now],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }

    /// Requests of a route sent since `since` (the hourly budget: a digest is one request).
    pub fn outbox_sent_since(&self, route: &str, since: &str) -> Result<u64, LedgerError> {
        self.conn
            .query_row(
                "SELECT COUNT(DISTINCT COALESCE(digest, id)) FROM outbox WHERE route = ?1
                 AND state = 'sent' AND sent_at > ?2",
                params![route, since],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }

    /// When the incident's last message of this route was sent, if any.
    pub fn outbox_last_sent(
        &self,
        route: &str,
        incident: &str,
    ) -> Result<Option<String>, LedgerError> {
        self.conn
            .query_row(
                "SELECT MAX(sent_at) FROM outbox WHERE route = ?1 AND incident = ?2
                 AND state = 'sent'",
                params![route, incident],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }

    /// Message counts per (route, state).
    pub fn outbox_counts(&self) -> Result<Vec<(String, MsgState, u64)>, LedgerError> {
        self.all(
            "SELECT route, state, COUNT(*) FROM outbox GROUP BY route, state ORDER BY route, state",
            [],
            |r| {
                let s: String = r.get(1)?;
                Ok((
                    r.get(0)?,
                    MsgState::parse(&s).unwrap_or(MsgState::Pending),
                    r.get(2)?,
                ))
            },
        )
    }

    /// Pending messages of a route due by `now` (the backlog).
    pub fn outbox_due_count(&self, route: &str, now: &str) -> Result<u64, LedgerError> {
        self.conn
            .query_row(
                "SELECT COUNT(*) FROM outbox WHERE route = ?1 AND state = 'pending'
                 AND not_before <= ?2",
                params![route, now],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }

    /// Messages, newest first: of one route and one state when given.
    pub fn outbox_list(
        &self,
        route: Option<&str>,
        state: Option<MsgState>,
        limit: usize,
    ) -> Result<Vec<MessageRow>, LedgerError> {
        self.all(
            &format!(
                "SELECT {COLUMNS} FROM outbox WHERE (?1 IS NULL OR route = ?1)
                 AND (?2 IS NULL OR state = ?2) ORDER BY created_at DESC, id LIMIT ?3"
            ),
            params![route, state.map(MsgState::as_str), limit as i64],
            message,
        )
    }

    pub fn outbox_message(&self, id: &str) -> Result<Option<MessageRow>, LedgerError> {
        self.conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM outbox WHERE id = ?1"),
                [id],
                message,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// When a route was first seen (`None`: never).
    pub fn notify_route_first_seen(&self, name: &str) -> Result<Option<String>, LedgerError> {
        self.conn
            .query_row(
                "SELECT first_seen FROM notify_routes WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Reconcile: incidents created since the route was first seen, shown by their files
    /// (built), whose highest member is at least `min`, without an opening message for the
    /// route. At most `limit` ids.
    pub fn incidents_missing_opening(
        &self,
        route: &str,
        min: sf_policy::Bucket,
        first_seen: &str,
        limit: usize,
    ) -> Result<(u64, Vec<String>), LedgerError> {
        let sql = format!(
            "SELECT id FROM incidents i WHERE {} AND built_rev = rev AND created_at >= ?2
             AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.route = ?1 AND o.incident = i.id
               AND o.seq = 0)
             ORDER BY id",
            bucket_at_least(min)
        );
        let ids = self.all(&sql, params![route, first_seen], |r| r.get(0))?;
        let n = ids.len() as u64;
        Ok((n, ids.into_iter().take(limit).collect()))
    }
}
