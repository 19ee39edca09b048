//! `signalfoundry incidents [--open] [--bucket B] [--since DURATION] [--agent A] [--json]
//! [--limit N]` and `signalfoundry incident show ID [--json]`: the incidents as the ledger has
//! them (the source of truth; the files under `incidents/` are views of it). Take no lock and
//! change nothing.

use std::io::Write;

use chrono::Utc;

use crate::cmd::{Context, Failure, EXIT_OK};
use crate::stages::incidents::build::{self, Snapshot};
use crate::stages::incidents::view::IncidentView;
use crate::store::fsx::escape_text;
use crate::store::ledger::incidents::{time_text, IncidentFilter};
use crate::store::state::Lock;

/// What `incidents` lists.
#[derive(Debug, Clone, Default)]
pub struct ListArgs {
    pub open: bool,
    pub bucket: Option<sf_policy::Bucket>,
    pub since: Option<std::time::Duration>,
    pub agent: Option<String>,
    pub json: bool,
    pub limit: usize,
}

/// `signalfoundry incidents`.
pub fn list(ctx: &Context, args: &ListArgs) -> Result<u8, Failure> {
    let (_state, ledger) = ctx.open(Lock::None)?;
    let now = Utc::now();
    let close_after = ctx.config.incidents.close_after;
    let filter = IncidentFilter {
        window_ends_after: args.open.then(|| time_text(build::minus(now, close_after))),
        bucket: args.bucket.map(sf_policy::Bucket::as_str),
        active_since: args.since.map(|d| time_text(build::minus(now, d))),
        agent: args.agent.as_deref(),
        limit: args.limit,
    };
    let rows = ledger
        .incidents_filtered(&filter)
        .map_err(Failure::failed)?;
    let mut out = std::io::stdout().lock();
    if rows.is_empty() && !args.json {
        let _ = writeln!(out, "no incidents match");
    }
    for row in rows {
        let Some(snap) = build::snapshot(&ledger, &row.id).map_err(Failure::failed)? else {
            continue;
        };
        let view = build::view_of(&snap, close_after, now).map_err(Failure::failed)?;
        let line = if args.json {
            serde_json::to_string(&for_stdout(view)).map_err(Failure::failed)?
        } else {
            one_line(&view, &snap)
        };
        if writeln!(out, "{line}").is_err() {
            // A closed pipe (`| head`): the reader has what it wanted.
            return Ok(EXIT_OK);
        }
    }
    Ok(EXIT_OK)
}

/// The view with the alert's text in it (key fields and values, agents) escaped for a
/// terminal: JSON escaping lets C1, bidi and zero-width characters through.
fn for_stdout(mut v: IncidentView) -> IncidentView {
    for k in &mut v.key {
        k.field = escape_text(&k.field);
        k.value = k.value.as_deref().map(escape_text);
    }
    for a in &mut v.agents {
        *a = escape_text(a);
    }
    v.group = escape_text(&v.group);
    v
}

/// One readable line: id, bucket, status, counts, window, key, first member's rule.
fn one_line(v: &IncidentView, snap: &Snapshot) -> String {
    let bucket = v.bucket.map_or("-", sf_policy::Bucket::as_str);
    let key: Vec<String> = v
        .key
        .iter()
        .map(|k| {
            format!(
                "{}={}",
                escape_text(&k.field),
                k.value
                    .as_deref()
                    .map_or_else(|| "(missing)".to_string(), escape_text)
            )
        })
        .collect();
    let what = snap
        .first
        .first()
        .and_then(|m| m.description.as_deref())
        .map(|d| format!("  \"{}\"", escape_text(d)))
        .unwrap_or_default();
    format!(
        "{}  {:<10} {:<6} members={} (high {}, medium {}, low {}, suppressed {})  window {} +{}  {}{}",
        v.id,
        bucket,
        v.status.as_str(),
        v.members.total,
        v.members.high,
        v.members.medium,
        v.members.low,
        v.members.suppressed,
        v.window.start.format("%Y-%m-%d %H:%M UTC"),
        sf_policy::format_duration(v.window.secs),
        key.join(" "),
        what
    )
}

/// Whether `id` has an incident id's shape (`INC-` and `[A-Za-z0-9-]`).
fn is_incident_id(id: &str) -> bool {
    id.strip_prefix("INC-").is_some_and(|rest| {
        !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    })
}

/// `signalfoundry incident show ID [--json]`.
pub fn show(ctx: &Context, id: &str, json: bool) -> Result<u8, Failure> {
    if !is_incident_id(id) {
        return Err(Failure::failed(anyhow::anyhow!(
            "{} is not an incident id (INC- and letters, digits or -)",
            escape_text(id)
        )));
    }
    let (state, ledger) = ctx.open(Lock::None)?;
    let now = Utc::now();
    let snap = build::snapshot(&ledger, id)
        .map_err(Failure::failed)?
        .filter(|s| s.row.members > 0)
        .ok_or_else(|| {
            Failure::failed(anyhow::anyhow!("no incident {id} in this state directory"))
        })?;
    let view =
        build::view_of(&snap, ctx.config.incidents.close_after, now).map_err(Failure::failed)?;
    let text = if json {
        let mut s = serde_json::to_string_pretty(&for_stdout(view)).map_err(Failure::failed)?;
        s.push('\n');
        s
    } else {
        build::summary_of(&state, &snap, &view).map_err(Failure::failed)?
    };
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    Ok(EXIT_OK)
}
