//! `signalfoundry outbox [--route R] [--status pending|sent|dead|orphaned] [--json] [--limit N]`
//! lists delivery messages; `signalfoundry outbox retry ID|--dead [--route R]` brings dead ones
//! back (pending, due now, attempts from zero). `deliver` sends what is due.
//!
//! Listing takes no lock and changes nothing; `retry` is one ledger transaction (no lock needed:
//! it only moves `dead` rows to `pending`, which a running deliver stage picks up).

use std::collections::BTreeMap;
use std::io::Write;

use serde::Serialize;

use crate::cmd::{Context, Failure, EXIT_OK};
use crate::config::NotifyConfig;
use crate::stages::deliver::event::Event;
use crate::store::fsx::escape_text;
use crate::store::ledger::incidents::time_text;
use crate::store::ledger::outbox::{MessageRow, MsgState};
use crate::store::ledger::Ledger;
use crate::store::state::Lock;

/// The state a listing shows: the row's, or `orphaned` for a route no longer configured.
pub fn shown_state(m: &MessageRow, routes: &[NotifyConfig]) -> &'static str {
    if m.state != MsgState::Sent && !routes.iter().any(|r| r.name == m.route) {
        "orphaned"
    } else {
        m.state.as_str()
    }
}

/// Messages per route and state, as the heartbeat and metrics show them (a route no longer
/// configured: its unsent messages are `orphaned`).
pub fn by_route(
    ledger: &Ledger,
    routes: &[NotifyConfig],
) -> BTreeMap<String, BTreeMap<String, u64>> {
    let mut out: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for r in routes {
        let e = out.entry(r.name.clone()).or_default();
        for s in MsgState::ALL {
            e.insert(s.as_str().to_string(), 0);
        }
    }
    match ledger.outbox_counts() {
        Ok(rows) => {
            for (route, state, n) in rows {
                let configured = routes.iter().any(|r| r.name == route);
                let st = if !configured && state != MsgState::Sent {
                    "orphaned"
                } else {
                    state.as_str()
                };
                *out.entry(route)
                    .or_default()
                    .entry(st.to_string())
                    .or_default() += n;
            }
        }
        Err(e) => tracing::warn!("outbox counts not read: {e}"),
    }
    out
}

#[derive(Serialize)]
struct Listed<'a> {
    id: &'a str,
    route: &'a str,
    incident: &'a str,
    seq: u32,
    #[serde(rename = "type")]
    kind: &'a str,
    state: &'a str,
    attempts: u32,
    due: &'a str,
    created_at: &'a str,
    sent_at: Option<&'a str>,
    last_error: Option<String>,
    title: Option<String>,
}

/// What `outbox` lists.
pub struct ListArgs<'a> {
    pub route: Option<&'a str>,
    pub state: Option<&'a str>,
    pub json: bool,
    pub limit: usize,
}

/// `--state dead` meant as a message state would name a state directory `dead`: refused before
/// anything is opened (or created).
fn refuse_state_word(ctx: &Context) -> Result<(), Failure> {
    let word = ctx
        .state_path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("");
    if ["pending", "sent", "dead", "orphaned"].contains(&word) && !ctx.state_path.exists() {
        return Err(Failure::usage(anyhow::anyhow!(
            "--state is the state directory (there is no {word:?}); to list {word} messages: \
             signalfoundry outbox --status {word}"
        )));
    }
    Ok(())
}

/// `signalfoundry outbox`.
pub fn list(ctx: &Context, args: &ListArgs<'_>) -> Result<u8, Failure> {
    refuse_state_word(ctx)?;
    let (_state, ledger) = ctx.open(Lock::None)?;
    let routes = &ctx.config.notify;
    let db_state = match args.state {
        None | Some("orphaned") => None,
        Some(s) => Some(MsgState::parse(s).ok_or_else(|| {
            Failure::usage(anyhow::anyhow!(
                "--status {:?}: one of pending, sent, dead, orphaned",
                escape_text(s)
            ))
        })?),
    };
    let rows = ledger
        .outbox_list(args.route, db_state, args.limit)
        .map_err(Failure::failed)?;
    let mut out = std::io::stdout().lock();
    let mut shown = 0usize;
    for m in &rows {
        let st = shown_state(m, routes);
        if args.state.is_some_and(|want| want != st) {
            continue;
        }
        shown += 1;
        let title = serde_json::from_str::<Event>(&m.event)
            .ok()
            .map(|e| e.title);
        if args.json {
            let l = Listed {
                id: &m.id,
                route: &m.route,
                incident: &m.incident,
                seq: m.seq,
                kind: &m.kind,
                state: st,
                attempts: m.attempts,
                due: &m.not_before,
                created_at: &m.created_at,
                sent_at: m.sent_at.as_deref(),
                last_error: m.last_error.as_deref().map(escape_text),
                title: title.as_deref().map(escape_text),
            };
            let _ = writeln!(
                out,
                "{}",
                serde_json::to_string(&l).map_err(Failure::failed)?
            );
        } else {
            let when = m.sent_at.as_deref().unwrap_or(&m.not_before);
            let _ = writeln!(
                out,
                "{}  {:<8} {:<12} {:<19} {} attempts={} at={}{}",
                m.id,
                st,
                escape_text(&m.route),
                m.kind,
                m.incident,
                m.attempts,
                when,
                m.last_error
                    .as_deref()
                    .map(|e| format!(" error={}", escape_text(e)))
                    .unwrap_or_default()
            );
        }
    }
    if shown == 0 && !args.json {
        let _ = writeln!(out, "no messages match");
    }
    Ok(EXIT_OK)
}

/// `signalfoundry outbox retry ID|--dead [--route R]`.
pub fn retry(
    ctx: &Context,
    id: Option<&str>,
    all_dead: bool,
    route: Option<&str>,
) -> Result<u8, Failure> {
    if id.is_none() && !all_dead {
        return Err(Failure::usage(anyhow::anyhow!(
            "outbox retry needs a message id or --dead"
        )));
    }
    refuse_state_word(ctx)?;
    let (_state, mut ledger) = ctx.open(Lock::None)?;
    if let Some(id) = id {
        match ledger.outbox_message(id).map_err(Failure::failed)? {
            None => {
                return Err(Failure::failed(anyhow::anyhow!(
                    "no message {:?} in the outbox (signalfoundry outbox lists them)",
                    escape_text(id)
                )))
            }
            Some(m) if m.state != MsgState::Dead => {
                return Err(Failure::failed(anyhow::anyhow!(
                    "message {} is {}, not dead: nothing to retry",
                    m.id,
                    m.state.as_str()
                )))
            }
            Some(_) => {}
        }
    }
    let now = time_text(chrono::Utc::now());
    let n = ledger
        .write(|tx| tx.outbox_revive(id, route, &now))
        .map_err(Failure::failed)?;
    crate::cmd::stdout_line(&format!(
        "outbox retry: {n} message(s) pending again; the next deliver sends them"
    ));
    Ok(EXIT_OK)
}
