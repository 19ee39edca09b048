//! Claims: a worker's folder under `processing/`, claiming a queued file by renaming it in, and
//! putting a dead worker's claims back in `queue/`.
//!
//! Design constraints:
//! - A claim folder is created and locked (flock on its `.lock`) under a temp name, then renamed
//!   into place as `processing/w-<pid>-<rand>/`. So every `w-*` folder whose lock is free belongs
//!   to a dead worker, and a live worker's claims are never taken.
//! - A claim is one no-replace rename; exactly one claimer wins, the others see "not found" and
//!   count it as `vanished`.
//! - Recovery holds the dead worker's lock while it moves the claims back, so two recoverers
//!   never work on the same folder.

use std::fs::File;
use std::os::fd::AsFd;

use chrono::{DateTime, Utc};
use rustix::fs::{self as rfs, FlockOperation, Mode, OFlags};

use crate::model::alert;
use crate::store::fsx::{escape_name, DirFd, FsError, Moved, ReadOutcome};
use crate::store::ledger::{Ledger, State};
use crate::store::names;
use crate::store::names::Canonical;
use crate::store::quarantine::Quarantine;
use crate::store::spool::{self, Notice, Spool, SpoolError};
use crate::store::state::StateDir;

const LOCK: &str = ".lock";

/// What a look at a worker folder's lock found.
pub enum Liveness {
    /// Another process holds the lock exclusively: the worker is alive (or being recovered).
    Live,
    /// Nobody holds it: the worker is gone. The descriptor holds a shared lock on it for as
    /// long as it is kept, so no recoverer can move the dead worker's files meanwhile (an
    /// accountant that lists the folder and then judges what it saw keeps it till it is done).
    Dead(Option<rustix::fd::OwnedFd>),
}

impl Liveness {
    pub fn is_live(&self) -> bool {
        matches!(self, Liveness::Live)
    }
}

/// Looks at the lock of the worker folder `wdir` (a folder without a lock is dead).
pub fn probe_worker(wdir: &DirFd) -> Result<Liveness, FsError> {
    let fd = match rfs::openat(
        &*wdir.fd(),
        LOCK,
        OFlags::RDWR | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(_) => return Ok(Liveness::Dead(None)),
    };
    match rfs::flock(&fd, FlockOperation::NonBlockingLockShared) {
        Ok(()) => Ok(Liveness::Dead(Some(fd))),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(Liveness::Live),
        Err(e) => Err(FsError::new("lock", wdir.path_of(LOCK.as_bytes()), e)),
    }
}

/// True when the worker owning `wdir` holds its lock (it is alive).
pub fn worker_is_live(wdir: &DirFd) -> Result<bool, FsError> {
    Ok(probe_worker(wdir)?.is_live())
}

/// A live worker: its claim folder and the lock that says it is alive.
pub struct Worker {
    id: String,
    dir: DirFd,
    _lock: File,
}

impl Worker {
    /// Creates, locks and publishes a new claim folder.
    pub fn start(state: &StateDir) -> Result<Worker, FsError> {
        loop {
            let id = format!(
                "w-{}-{:08x}",
                std::process::id(),
                crate::store::fsx::rand_u32()
            );
            let tmp = format!(".tmp-{id}");
            if !state.processing.create_dir(&tmp)? {
                continue;
            }
            let tdir = state.processing.open_subdir(tmp.as_bytes())?;
            let fd = rfs::openat(
                &*tdir.fd(),
                LOCK,
                OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::RUSR | Mode::WUSR,
            )
            .map_err(|e| FsError::new("create", tdir.path_of(LOCK.as_bytes()), e))?;
            rfs::flock(fd.as_fd(), FlockOperation::NonBlockingLockExclusive)
                .map_err(|e| FsError::new("lock", tdir.path_of(LOCK.as_bytes()), e))?;
            match state
                .processing
                .rename_to(tmp.as_bytes(), &state.processing, id.as_bytes())?
            {
                Moved::Moved => {
                    state.processing.sync()?;
                    let dir = state.processing.open_subdir(id.as_bytes())?;
                    return Ok(Worker {
                        id,
                        dir,
                        _lock: File::from(fd),
                    });
                }
                Moved::Exists | Moved::Vanished => {
                    let _ = tdir.remove_file(LOCK.as_bytes());
                    let _ = state.processing.remove_dir(tmp.as_bytes());
                }
            }
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn dir(&self) -> &DirFd {
        &self.dir
    }

    /// Ends a worker whose folder is empty: removes its lock and folder (the flock goes with
    /// the descriptor). A folder that still holds claims is left for recovery.
    pub fn finish(self, state: &StateDir) -> Result<(), FsError> {
        let leftovers = self
            .dir
            .list()?
            .into_iter()
            .filter(|e| e.name != LOCK.as_bytes())
            .count();
        if leftovers == 0 {
            self.dir.remove_file(LOCK.as_bytes())?;
            state.processing.remove_dir(self.id.as_bytes())?;
        }
        Ok(())
    }

    /// Claims `name` from `from` by renaming it into this worker's folder.
    pub fn claim(&self, from: &DirFd, name: &[u8]) -> Result<Moved, FsError> {
        from.rename_to(name, &self.dir, name)
    }

    /// Claims `name` from `from` by renaming it into the temp case `tmp` of this worker's
    /// folder (made by the caller, see [`temp_case_name`]) as `alert.json`.
    pub fn claim_into(&self, from: &DirFd, name: &[u8], tmp: &str) -> Result<Moved, FsError> {
        from.rename_to(name, &self.dir, format!("{tmp}/alert.json").as_bytes())
    }
}

const TEMP_CASE: &str = ".tmp-case-";

/// The temp case a triage worker claims the canonical file `name` into:
/// `.tmp-case-<name without .json>`. The name is kept so that recovery can put the alert back
/// in `queue/` without asking the ledger; the case id follows from its key hash.
pub fn temp_case_name(name: &[u8]) -> String {
    let stem = name.strip_suffix(b".json").unwrap_or(name);
    format!("{TEMP_CASE}{}", String::from_utf8_lossy(stem))
}

/// The canonical name a temp case was claimed from, when `tmp` is one of
/// [`temp_case_name`]'s (earlier versions named temp cases by case id: `None`).
pub fn temp_case_claimed(tmp: &[u8]) -> Option<Vec<u8>> {
    let stem = tmp.strip_prefix(TEMP_CASE.as_bytes())?;
    let mut name = stem.to_vec();
    name.extend_from_slice(b".json");
    names::is_canonical(&name).then_some(name)
}

/// What recovery of dead workers did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    pub dead_workers: u64,
    pub live_workers: u64,
    pub requeued: u64,
    pub duplicates: u64,
    pub quarantined: u64,
    pub temps_removed: u64,
    pub vanished: u64,
}

/// Puts the claims of every dead worker (a `w-*` folder whose lock is free) back in `queue/`,
/// with their rows. `own` is the caller's worker id, never touched.
pub fn recover_dead(
    sp: &Spool<'_>,
    ledger: &mut Ledger,
    own: Option<&str>,
    now: DateTime<Utc>,
    notices: &mut Vec<Notice>,
) -> Result<RecoveryReport, SpoolError> {
    let state = sp.state;
    let mut report = RecoveryReport::default();
    for entry in state.processing.list()? {
        let Some(name) = entry.name_str() else {
            continue;
        };
        if Some(name) == own {
            continue;
        }
        let stale_temp = name.starts_with(".tmp-w-");
        if !name.starts_with("w-") && !stale_temp {
            continue;
        }
        let Some(wdir) = state.processing.open_subdir_opt(&entry.name)? else {
            report.vanished += 1;
            continue;
        };
        let lock = match rfs::openat(
            &*wdir.fd(),
            LOCK,
            OFlags::RDWR | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            // Being torn down by another recoverer, or not yet locked by a starting worker; or
            // left behind by a worker killed between removing its lock and its folder.
            Err(rustix::io::Errno::NOENT) => {
                if stale_temp {
                    // `.tmp-w-<pid>-...`: a starting worker's, unless that process is gone.
                    let pid = name.split('-').nth(2).and_then(|p| p.parse::<i32>().ok());
                    let gone = pid
                        .and_then(rustix::process::Pid::from_raw)
                        .is_some_and(|p| {
                            rustix::process::test_kill_process(p) == Err(rustix::io::Errno::SRCH)
                        });
                    if gone {
                        state.processing.remove_flat_dir(&entry.name)?;
                    }
                } else {
                    // Only an empty folder can be removed: one still holding claims is not ours.
                    let _ = state.processing.remove_dir(&entry.name);
                }
                continue;
            }
            Err(e) => return Err(FsError::new("open", wdir.path_of(LOCK.as_bytes()), e).into()),
        };
        match rfs::flock(lock.as_fd(), FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => {
                report.live_workers += 1;
                continue;
            }
            Err(e) => return Err(FsError::new("lock", wdir.path_of(LOCK.as_bytes()), e).into()),
        }
        if stale_temp {
            // A worker that died between creating and publishing its folder: it never claimed.
            // Its lock is free, so it is not starting right now.
            wdir.remove_file(LOCK.as_bytes())?;
            state.processing.remove_dir(&entry.name)?;
            continue;
        }
        report.dead_workers += 1;
        requeue_claims(sp, ledger, &wdir, now, notices, &mut report)?;
        // Remove the lock last, then the (now empty) folder; the flock dies with `lock`.
        wdir.remove_file(LOCK.as_bytes())?;
        if let Err(e) = state.processing.remove_dir(&entry.name) {
            notices.push(Notice {
                what: format!("processing/{}", escape_name(&entry.name)),
                reason: format!("dead worker folder not removed: {e}"),
            });
        }
        drop(lock);
    }
    Ok(report)
}

fn requeue_claims(
    sp: &Spool<'_>,
    ledger: &mut Ledger,
    wdir: &DirFd,
    now: DateTime<Utc>,
    notices: &mut Vec<Notice>,
    report: &mut RecoveryReport,
) -> Result<(), SpoolError> {
    let state = sp.state;
    let mut back = Vec::new();
    for e in wdir.list()? {
        if e.name == LOCK.as_bytes() {
            continue;
        }
        if names::is_canonical(&e.name) {
            match wdir.rename_to(&e.name, &state.queue, &e.name)? {
                Moved::Moved => back.push(e.name),
                Moved::Vanished => report.vanished += 1,
                Moved::Exists => {
                    // The same alert is queued again already: a duplicate if identical.
                    if same_bytes(sp, wdir, &state.queue, &e.name)? {
                        wdir.remove_file(&e.name)?;
                        report.duplicates += 1;
                    } else {
                        let q = Quarantine {
                            state,
                            durability: sp.durability,
                        };
                        let shown = format!(
                            "{}/{}",
                            crate::store::fsx::shown(wdir.path()),
                            escape_name(&e.name)
                        );
                        if let Some(row) = q.move_in(
                            wdir,
                            &e.name,
                            &shown,
                            "key conflict: a claimed copy differs from the queued one",
                            now,
                        )? {
                            ledger.write(|tx| tx.insert(&row).map(|_| ()))?;
                            report.quarantined += 1;
                        }
                    }
                }
            }
        } else if e.kind == crate::store::fsx::EntryKind::Dir
            && e.name.starts_with(TEMP_CASE.as_bytes())
        {
            // A claim, or a case being built, when the worker died: its alert goes back to the
            // queue under its canonical name (an intent row is reused by the next claim).
            unwind_case(sp, ledger, wdir, &e.name, now, notices, &mut back, report)?;
        } else if e.is_dot() && e.kind != crate::store::fsx::EntryKind::Dir {
            // A temp file is a copy: removed.
            if wdir.remove_file(&e.name)? {
                report.temps_removed += 1;
            }
        } else {
            notices.push(Notice {
                what: format!(
                    "{}/{}",
                    crate::store::fsx::shown(wdir.path()),
                    escape_name(&e.name)
                ),
                reason: "left in a dead worker's folder: not a claim this version recovers".into(),
            });
        }
    }
    if sp.durability != crate::store::fsx::Durability::Off && !back.is_empty() {
        state.queue.sync()?;
        wdir.sync()?;
    }
    let mut rowless = Vec::new();
    for chunk in back.chunks(spool::BATCH) {
        let missing = ledger.write(|tx| {
            let mut missing = Vec::new();
            for name in chunk {
                let Some(c) = Canonical::parse(name) else {
                    continue;
                };
                if !tx.back_in_queue(
                    c.key_hash.as_str(),
                    std::str::from_utf8(name).unwrap_or_default(),
                )? {
                    missing.push(name.clone());
                }
            }
            Ok(missing)
        })?;
        rowless.extend(missing);
    }
    report.requeued += back.len() as u64;
    sp.adopt(
        ledger,
        &state.queue,
        "queue",
        &rowless,
        State::Queued,
        now,
        notices,
    )?;
    Ok(())
}

fn same_bytes(sp: &Spool<'_>, a: &DirFd, b: &DirFd, name: &[u8]) -> Result<bool, SpoolError> {
    same_content(sp, a, name, b, name)
}

/// Whether `a/an` and `b/bn` hold the same alert content.
fn same_content(
    sp: &Spool<'_>,
    a: &DirFd,
    an: &[u8],
    b: &DirFd,
    bn: &[u8],
) -> Result<bool, SpoolError> {
    let read = |d: &DirFd, name: &[u8]| -> Result<Option<String>, SpoolError> {
        Ok(match d.read_regular(name, sp.max_alert_bytes)? {
            ReadOutcome::Bytes(x) => alert::parse_strict(&x)
                .ok()
                .map(|m| alert::meta(&m, None, Utc::now()).content_hash),
            _ => None,
        })
    };
    Ok(matches!((read(a, an)?, read(b, bn)?), (Some(x), Some(y)) if x == y))
}

/// Claims queued files in order for `worker`, committing each batch's rows as `processing`.
/// Returns the names this worker won and how many vanished under it.
pub fn claim_batch(
    sp: &Spool<'_>,
    ledger: &mut Ledger,
    worker: &Worker,
    names: &[Vec<u8>],
) -> Result<(Vec<Vec<u8>>, u64), SpoolError> {
    let mut won = Vec::with_capacity(names.len());
    let mut vanished = 0;
    for name in names {
        match worker.claim(&sp.state.queue, name)? {
            Moved::Moved => won.push(name.clone()),
            Moved::Vanished => vanished += 1,
            Moved::Exists => {
                // Our own folder already holds this name: we claimed it before. Keep it.
                won.push(name.clone());
            }
        }
    }
    if sp.durability != crate::store::fsx::Durability::Off && !won.is_empty() {
        worker.dir().sync()?;
        sp.state.queue.sync()?;
    }
    ledger.write(|tx| {
        for name in &won {
            if let Some(c) = Canonical::parse(name) {
                tx.claimed(
                    c.key_hash.as_str(),
                    std::str::from_utf8(name).unwrap_or_default(),
                    worker.id(),
                )?;
            }
        }
        Ok(())
    })?;
    Ok((won, vanished))
}

#[allow(clippy::too_many_arguments)]
fn unwind_case(
    sp: &Spool<'_>,
    ledger: &mut Ledger,
    wdir: &DirFd,
    tmp: &[u8],
    now: DateTime<Utc>,
    notices: &mut Vec<Notice>,
    back: &mut Vec<Vec<u8>>,
    report: &mut RecoveryReport,
) -> Result<(), SpoolError> {
    let state = sp.state;
    let case_id = String::from_utf8_lossy(&tmp[TEMP_CASE.len()..]).into_owned();
    let Some(tdir) = wdir.open_subdir_opt(tmp)? else {
        return Ok(());
    };
    // The canonical name it was claimed under: kept in the temp name, or (temp cases of
    // earlier versions, named by case id `SF-<key hash>`) the name its row keeps.
    let name: Option<String> = match temp_case_claimed(tmp) {
        Some(n) => Some(String::from_utf8_lossy(&n).into_owned()),
        None => ledger
            .conn()
            .query_row(
                "SELECT name FROM alerts WHERE key_hash = ?1",
                [case_id.strip_prefix("SF-").unwrap_or(&case_id)],
                |r| r.get(0),
            )
            .ok()
            .filter(|n: &String| names::is_canonical(n.as_bytes())),
    };
    match name {
        Some(n) => match tdir.rename_to(b"alert.json", &state.queue, n.as_bytes())? {
            Moved::Moved => back.push(n.into_bytes()),
            Moved::Vanished => {}
            Moved::Exists => {
                if same_content(sp, &tdir, b"alert.json", &state.queue, n.as_bytes())? {
                    tdir.remove_file(b"alert.json")?;
                    report.duplicates += 1;
                } else {
                    // Same name, other content: the copy goes to quarantine, never lost.
                    let q = Quarantine {
                        state,
                        durability: sp.durability,
                    };
                    let shown = format!(
                        "{}/{}/alert.json",
                        crate::store::fsx::shown(wdir.path()),
                        escape_name(tmp)
                    );
                    if let Some(row) = q.move_in(
                        &tdir,
                        b"alert.json",
                        &shown,
                        "key conflict: a temp case's alert differs from the queued one",
                        now,
                    )? {
                        ledger.write(|tx| tx.insert(&row).map(|_| ()))?;
                        report.quarantined += 1;
                    }
                }
            }
        },
        None => {
            // No intent row names it: let admission key it afresh.
            let foreign = format!("recovered-{case_id}.json");
            if tdir.rename_to(b"alert.json", &state.incoming, foreign.as_bytes())? == Moved::Moved {
                notices.push(Notice {
                    what: format!("processing/.../{}", escape_name(tmp)),
                    reason:
                        "temp case without an intent row; its alert went to incoming/ for admission"
                            .into(),
                });
            }
        }
    }
    if tdir.list()?.iter().any(|e| e.name == b"alert.json") {
        notices.push(Notice {
            what: format!("processing/.../{}", escape_name(tmp)),
            reason: "temp case kept: its alert.json could not be put back".into(),
        });
        return Ok(());
    }
    let _ = now;
    wdir.remove_flat_dir(tmp)?;
    report.temps_removed += 1;
    Ok(())
}
