//! `signalfoundry poll [--audit]`: stage 1 alone, under the run lock. The stage returns its
//! report or its error; this command prints the summary line and maps the error to an exit
//! code (a configuration problem is 2, anything else 1).

use std::io::Write;

use super::{Context, Failure, EXIT_FAILED, EXIT_OK, EXIT_USAGE};
use crate::stages::poll;

/// `signalfoundry poll [--audit]` (run lock; one summary line; exit 0, 1, or 2).
pub fn command(
    ctx: &Context,
    prio: &crate::store::spool::Prioritizer,
    audit: bool,
) -> Result<u8, Failure> {
    let (state, mut ledger) = ctx.open(crate::store::state::Lock::Run)?;
    let line = |l: &str| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{l}");
    };
    let Some(ix) = &ctx.config.indexer else {
        line("poll: status=SKIPPED reason=no-indexer-configured");
        return Ok(EXIT_OK);
    };
    let sp = super::spool(ctx, &state, prio);
    match poll::run(
        ix,
        &sp,
        &mut ledger,
        ctx.config.queue.backlog_limit,
        None,
        audit,
    ) {
        Ok(r) => {
            line(&r.summary("OK"));
            Ok(EXIT_OK)
        }
        Err(e) => {
            line("poll: status=FAILED");
            let code = if e.is_config() {
                EXIT_USAGE
            } else {
                EXIT_FAILED
            };
            Err(Failure {
                code,
                error: e.into(),
            })
        }
    }
}
