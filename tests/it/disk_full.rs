//! Disk full (DESIGN.md, "Reliability figures": Disk full): `run` on a state directory on a
//! small tmpfs that fills up while triage works. The stage fails after its bounded retries with
//! the path and "no space left on device" (exit 1), nothing half-written is visible (every case
//! directory and every pack is whole), the same run's reconcile records nothing as lost, and once
//! space is back the next run resumes exactly: reconcile PASS, every alert a case exactly once.
//!
//! Two ways to fill: bytes (a ballast file leaves a little room) and inodes (a remount leaves a
//! few). Mounting needs root; without it the tests say why on stderr and return.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::crash::{
    alerts, assert_drained_exactly_once, assert_nothing_half_written, case_dirs, config,
};
use crate::support::{num, summary, Env};

/// A tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs at `path`; `Err` says why it could not be mounted.
    fn mount(path: &Path, opts: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(path).map_err(|e| e.to_string())?;
        let o = Command::new("mount")
            .args(["-t", "tmpfs", "-o", opts, "tmpfs"])
            .arg(path)
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if !o.status.success() {
            return Err(format!(
                "mount -t tmpfs -o {opts}: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ));
        }
        Ok(Tmpfs {
            path: path.to_path_buf(),
        })
    }

    fn remount(&self, opts: &str) {
        let st = Command::new("mount")
            .args(["-o", &format!("remount,{opts}")])
            .arg(&self.path)
            .status()
            .expect("mount -o remount");
        assert!(st.success(), "remount {opts}");
    }

    fn statvfs(&self) -> rustix::fs::StatVfs {
        rustix::fs::statvfs(&self.path).expect("statvfs")
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

/// How the disk fills up.
enum Fill {
    /// A ballast file leaves this many bytes free.
    Bytes(u64),
    /// A remount leaves this many inodes free.
    Inodes(u64),
}

const ALERTS: usize = 600;

fn fill_mid_run_then_free(fill: Fill) {
    // Declared in this order so that, on a panic too, the tmpfs is unmounted before the
    // directory holding its mount point is removed.
    let base = tempfile::tempdir().expect("tempdir");
    let mnt = base.path().join("mnt");
    let fs = match Tmpfs::mount(&mnt, "size=64m,nr_inodes=20000,mode=0700") {
        Ok(fs) => fs,
        Err(why) => {
            eprintln!(
                "disk_full: SKIPPED: a small tmpfs is needed to fill a disk safely and could not be mounted ({why}); run the tests as root to include it"
            );
            return;
        }
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let config_path = dir.path().join("signalfoundry.toml");
    std::fs::write(&config_path, config("batch", 2000)).expect("config");
    let env = Env {
        state: mnt.join("state"),
        config: config_path,
        dir,
    };
    let (lines, levels) = alerts(ALERTS);
    let s = summary(&env.ingest_lines(&lines), "ingest:");
    assert_eq!(num(&s, "queued"), ALERTS as u64);
    let ballast = mnt.join("ballast");
    match fill {
        Fill::Bytes(room) => {
            let v = fs.statvfs();
            let free = v.f_bavail * v.f_frsize;
            let mut f = std::fs::File::create(&ballast).expect("ballast");
            let chunk = vec![0u8; 1 << 20];
            let mut left = free.saturating_sub(room);
            while left > 0 {
                let n = left.min(chunk.len() as u64) as usize;
                f.write_all(&chunk[..n]).expect("write ballast");
                left -= n as u64;
            }
            f.sync_all().expect("sync ballast");
        }
        Fill::Inodes(room) => {
            let v = fs.statvfs();
            let used = v.f_files - v.f_ffree;
            fs.remount(&format!("nr_inodes={}", used + room));
        }
    }
    // The run that meets the full disk.
    let o = env.run(&["run"]);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    let ctx = format!("stdout:\n{out}\nstderr:\n{err}");
    assert_eq!(o.status.code(), Some(1), "{ctx}");
    assert!(out.contains("triage: status=FAILED"), "{ctx}");
    let failure = err
        .lines()
        .find(|l| l.contains("triage failed:"))
        .unwrap_or_else(|| panic!("no triage failure logged:\n{ctx}"));
    assert!(
        failure.contains("no space left on device")
            && failure.contains(&env.state.display().to_string()),
        "the error names the path and the cause: {failure}"
    );
    // The write was retried a bounded number of times before the stage failed.
    assert!(
        err.contains("(try 1 of 3 failed)") && err.contains("(try 2 of 3 failed)"),
        "{ctx}"
    );
    assert!(!err.contains("(try 3 of 3 failed)"), "{ctx}");
    let published = assert_nothing_half_written(&env.state, "after the disk filled up");
    assert!(published < ALERTS, "the disk filled up before the end");
    // Nothing was recorded as lost by the failed run's own reconcile.
    assert_eq!(env.states().get("lost"), None, "{:?}", env.states());
    eprintln!(
        "disk_full: {published} of {ALERTS} cases published before the disk filled up; {}",
        failure
    );
    // Space comes back; the next run resumes exactly.
    match fill {
        Fill::Bytes(_) => std::fs::remove_file(&ballast).expect("remove ballast"),
        Fill::Inodes(_) => fs.remount("nr_inodes=20000"),
    }
    let out = env.ok(&["run"]);
    assert_eq!(out.lines().last(), Some("VERDICT=PASS"), "{out}");
    let t = summary(&out, "triage:");
    // What the failed run left depends on where the disk filled: claims and intents (put
    // back or finished), or only the empty temp cases it had made before the claims (the
    // disk filled at a `mkdir`), which are removed as litter.
    assert!(
        num(&t, "recovered") + num(&t, "finished_intents") + num(&t, "temps_removed") > 0,
        "the run resumed from what the failed one left: {t:?}"
    );
    assert_eq!(
        case_dirs(&env.state).len(),
        ALERTS,
        "every alert is a case once"
    );
    assert_drained_exactly_once(&env, &levels, "after space came back");
    drop(env);
    drop(fs);
}

#[test]
fn a_disk_that_fills_up_fails_triage_with_the_path_leaves_nothing_half_written_and_the_next_run_resumes_exactly(
) {
    fill_mid_run_then_free(Fill::Bytes(2_500_000));
}

#[test]
fn running_out_of_inodes_mid_run_fails_triage_cleanly_and_the_run_after_a_remount_finishes_every_alert_once(
) {
    fill_mid_run_then_free(Fill::Inodes(300));
}
