//! The hidden test harnesses: `debug-claim` (a triage worker that claims and may hold its
//! claims, for the claim-race tests) and `debug-vanish` (a process that deletes or moves a
//! fraction of a directory's alerts while cap and triage run, for the vanisher tests).

use std::io::Write;

use anyhow::Context as _;
use chrono::Utc;

use super::{print_notices, spool, Context, Failure, EXIT_OK};
use crate::store::spool::Prioritizer;
use crate::store::state::Lock;

pub fn claim(ctx: &Context, prio: &Prioritizer, hold: bool) -> Result<u8, Failure> {
    let (state, mut ledger) = ctx.open(Lock::None)?;
    let sp = spool(ctx, &state, prio);
    let worker = crate::store::claim::Worker::start(&state)
        .context("start worker")
        .map_err(Failure::failed)?;
    let mut notices = Vec::new();
    let rec = crate::store::claim::recover_dead(
        &sp,
        &mut ledger,
        Some(worker.id()),
        Utc::now(),
        &mut notices,
    )
    .map_err(Failure::failed)?;
    print_notices(&notices);
    let names = crate::store::names::list_sorted(&state.queue).map_err(Failure::failed)?;
    let listed = names.len();
    let mut claimed = 0u64;
    let mut vanished = 0u64;
    let mut out = std::io::stdout().lock();
    for chunk in names.chunks(crate::store::spool::BATCH) {
        let (won, v) = crate::store::claim::claim_batch(&sp, &mut ledger, &worker, chunk)
            .map_err(Failure::failed)?;
        vanished += v;
        claimed += won.len() as u64;
        for n in won {
            let _ = writeln!(out, "claimed {}", String::from_utf8_lossy(&n));
        }
    }
    let _ = writeln!(
        out,
        "claim: status=OK worker={} listed={listed} claimed={claimed} vanished={vanished} recovered_workers={} requeued={} live_workers={}",
        worker.id(),
        rec.dead_workers,
        rec.requeued,
        rec.live_workers
    );
    let _ = out.flush();
    drop(out);
    if hold {
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
    Ok(EXIT_OK)
}

pub fn vanish(
    dir: &std::path::Path,
    after: Option<&std::path::Path>,
    after_exchange: bool,
    fraction: f64,
    seed: u64,
) -> Result<u8, Failure> {
    let d = crate::store::fsx::DirFd::open(dir).map_err(Failure::usage)?;
    let names = crate::store::names::list_sorted(&d).map_err(Failure::failed)?;
    if after_exchange {
        use std::os::unix::fs::MetadataExt;
        let held = rustix::fs::fstat(&*d.fd()).map_err(|e| Failure::failed(anyhow::anyhow!(e)))?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        while std::fs::metadata(dir).is_ok_and(|m| m.ino() == held.st_ino)
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
    if let Some(a) = after {
        let a = crate::store::fsx::DirFd::open(a).map_err(Failure::usage)?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        loop {
            let mut found = false;
            a.for_each_entry(|e| found |= crate::store::names::is_canonical(&e.name))
                .map_err(Failure::failed)?;
            if found || std::time::Instant::now() > deadline {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
    // A small deterministic generator (splitmix64): the same seed deletes the same names.
    let mut x = seed;
    let mut next = move || {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let mut out = std::io::stdout().lock();
    let mut deleted = 0u64;
    for n in names {
        if (next() >> 11) as f64 / (1u64 << 53) as f64 >= fraction {
            continue;
        }
        if d.remove_file(&n).map_err(Failure::failed)? {
            deleted += 1;
            let _ = writeln!(out, "deleted {}", String::from_utf8_lossy(&n));
        }
    }
    let _ = writeln!(out, "vanish: status=OK deleted={deleted}");
    Ok(EXIT_OK)
}
