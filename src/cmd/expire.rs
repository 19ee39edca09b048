//! `signalfoundry expire [--dry-run] [--json]`: the expire step alone (retention).

use chrono::Utc;
use serde_json::json;

use crate::cmd::{stdout_line, Context, Failure, EXIT_OK};
use crate::stages::expire::{ExpireOptions, ExpireReport};
use crate::stages::Report;
use crate::store::fsx::escape_text;
use crate::store::state::Lock;

/// The step's options from the configuration.
pub fn options<'a>(
    ctx: &'a Context,
    routes: &'a [crate::stages::deliver::due::RouteSpec],
    dry_run: bool,
) -> ExpireOptions<'a> {
    ExpireOptions {
        retention: &ctx.config.retention,
        now: Utc::now(),
        durability: ctx.durability(),
        dry_run,
        rounds: ctx.incident_rounds(),
        routes,
    }
}

/// The summary line's status: `SKIPPED` when no bucket has a retention and nothing was done.
pub fn status(ctx: &Context, r: &ExpireReport, dry_run: bool) -> &'static str {
    if dry_run {
        "DRY-RUN"
    } else if ctx.config.retention.buckets().is_empty() && r.finished == 0 && r.compacted == 0 {
        "SKIPPED"
    } else {
        "OK"
    }
}

pub fn command(ctx: &Context, dry_run: bool, json: bool) -> Result<u8, Failure> {
    // A dry run reads only: it needs no lock and writes nothing.
    let lock = if dry_run { Lock::None } else { Lock::Run };
    let (state, mut ledger) = ctx.open(lock)?;
    let routes = ctx.routes();
    let opts = options(ctx, &routes, dry_run);
    let r = crate::stages::expire::run(&state, &mut ledger, &opts).map_err(Failure::failed)?;
    let status = status(ctx, &r, dry_run);
    if json {
        for c in &r.listed {
            let mut v = serde_json::to_value(c).unwrap_or_default();
            v["action"] = json!(if dry_run { "due" } else { "expired" });
            stdout_line(&v.to_string());
        }
        let mut totals = serde_json::to_value(r.counters().to_map()).unwrap_or_default();
        totals["status"] = json!(status);
        stdout_line(&json!({ "totals": totals }).to_string());
    } else {
        let verb = if dry_run { "due" } else { "expired" };
        for c in &r.listed {
            stdout_line(&format!(
                "{verb}: {} bucket={} alert_time={} case=cases/{}{}",
                escape_text(&c.case_id),
                escape_text(&c.bucket),
                escape_text(&c.alert_time),
                escape_text(&c.case_path),
                if c.pack {
                    format!(" pack=escalations/{}", escape_text(&c.case_id))
                } else {
                    String::new()
                }
            ));
        }
        if status == "SKIPPED" {
            stdout_line("expire: status=SKIPPED reason=no-retention-configured");
        } else {
            stdout_line(&r.summary(status));
        }
    }
    Ok(EXIT_OK)
}
