//! The state directory: adoption (create 0700, tighten a looser one, refuse a symlink or another
//! user's), its subdirectories held open by descriptor, the run lock and the daemon's lock.
//!
//! Design constraints:
//! - The run lock is `run.lock` (flock), never the database. A command that cannot take it
//!   fails at once and writes nothing: the lock is taken before any subdirectory, ledger or
//!   permission change is made.
//! - A daemon holds `daemon.lock` for its life (one daemon per state directory, refused the
//!   same way) and the run lock only for each run ([`StateDir::take_run_lock`]), so maintenance
//!   commands run between its runs.
//! - Every subdirectory is opened once, without following symlinks, and every later operation
//!   is relative to those descriptors.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, FileType, Mode, OFlags};

use crate::store::fsx::{DirFd, FsError};

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state directory {} is a symbolic link; refusing it (point --state at the real directory)", crate::store::fsx::shown(.0))]
    Symlink(PathBuf),
    #[error("state directory {} is not a directory", crate::store::fsx::shown(.0))]
    NotDir(PathBuf),
    #[error("state directory {} is owned by uid {owner}, not by the running user (uid {me}); refusing it", crate::store::fsx::shown(path))]
    Owner { path: PathBuf, owner: u32, me: u32 },
    #[error("another signalfoundry process holds the run lock {}; nothing was done", crate::store::fsx::shown(.0))]
    Locked(PathBuf),
    #[error("another signalfoundry daemon holds {} (one daemon per state directory); nothing was done", crate::store::fsx::shown(.0))]
    DaemonRunning(PathBuf),
    #[error("state directory {} spans filesystems: {sub}/ is on another filesystem (a mount point); durability barriers sync one filesystem, so keep the whole state directory on one (move {sub}/ back, or mount the volume at the state directory itself)", crate::store::fsx::shown(path))]
    SpansFilesystems { path: PathBuf, sub: &'static str },
    #[error(transparent)]
    Fs(#[from] FsError),
}

/// The subdirectories of a state directory.
pub const SUBDIRS: [&str; 8] = [
    "incoming",
    "queue",
    "overflow",
    "processing",
    "quarantine",
    "cases",
    "escalations",
    "incidents",
];

/// A state directory opened for work.
#[derive(Debug)]
pub struct StateDir {
    pub root: DirFd,
    pub incoming: DirFd,
    pub queue: DirFd,
    pub overflow: DirFd,
    pub processing: DirFd,
    pub quarantine: DirFd,
    pub cases: DirFd,
    pub escalations: DirFd,
    /// `incidents/<YYYY>/<MM>/<DD>/<id>/`: views of the ledger's incidents.
    pub incidents: DirFd,
    /// Held for the life of the value when the command takes the run lock (or a daemon's
    /// lock).
    _lock: Option<Held>,
}

/// Which lock the command takes when it opens the state directory, held as long as the
/// [`StateDir`] lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lock {
    /// The run lock.
    Run,
    /// `daemon.lock`, not the run lock: the daemon takes that for each run
    /// ([`StateDir::take_run_lock`]).
    Daemon,
    None,
}

/// A lock file's flock, held while the value lives: dropped (at the end of a run, on an error
/// or by a panic's unwinding), the lock is free. A process that dies frees it too.
#[derive(Debug)]
pub struct Held {
    _file: File,
}

impl StateDir {
    /// Points `queue` and `overflow` at the directories of those names again when another
    /// process's cap exchanged them since they were opened (a command without the run lock,
    /// such as `triage`, calls this between passes).
    pub fn follow_spool_names(&self) -> Result<(), FsError> {
        self.queue.follow_name(&self.root, "queue")?;
        self.overflow.follow_name(&self.root, "overflow")?;
        Ok(())
    }

    /// Takes the run lock now, without waiting, for a command that opened the directory
    /// without it (the daemon, for each run): `Locked` when another process holds it. Held
    /// until the returned value is dropped.
    pub fn take_run_lock(&self) -> Result<Held, StateError> {
        take_run_lock(&self.root)
    }

    /// Adopts (or creates) the state directory at `path`, takes the lock asked for, then
    /// creates the subdirectories.
    pub fn open(path: &Path, lock: Lock) -> Result<StateDir, StateError> {
        let root = adopt_root(path)?;
        let held = match lock {
            Lock::Run => Some(take_run_lock(&root)?),
            Lock::Daemon => Some(
                flock_now(&root, "daemon.lock")?
                    .ok_or_else(|| StateError::DaemonRunning(root.path().join("daemon.lock")))?,
            ),
            Lock::None => None,
        };
        tighten(&root)?;
        let sub = |n: &str| root.ensure_subdir(n);
        let st = StateDir {
            incoming: sub("incoming")?,
            queue: sub("queue")?,
            overflow: sub("overflow")?,
            processing: sub("processing")?,
            quarantine: sub("quarantine")?,
            cases: sub("cases")?,
            escalations: sub("escalations")?,
            incidents: sub("incidents")?,
            root,
            _lock: held,
        };
        st.one_filesystem()?;
        Ok(st)
    }

    /// Opens an existing state directory to read only (the console, `serve`): no adoption,
    /// no lock, nothing created or tightened; a missing subdirectory is an error.
    pub fn open_read_only(path: &Path) -> Result<StateDir, StateError> {
        let root = DirFd::open(path)?;
        let sub = |n: &str| root.open_subdir(n.as_bytes());
        Ok(StateDir {
            incoming: sub("incoming")?,
            queue: sub("queue")?,
            overflow: sub("overflow")?,
            processing: sub("processing")?,
            quarantine: sub("quarantine")?,
            cases: sub("cases")?,
            escalations: sub("escalations")?,
            incidents: sub("incidents")?,
            root,
            _lock: None,
        })
    }

    /// Refuses a state directory with a mount point among its subdirectories: one `syncfs`
    /// barrier makes one filesystem durable, and renames between filesystems are not atomic.
    fn one_filesystem(&self) -> Result<(), StateError> {
        let dev = |d: &DirFd| {
            rfs::fstat(&*d.fd())
                .map(|s| s.st_dev)
                .map_err(|e| FsError::new("stat", d.path(), e))
        };
        let root = dev(&self.root)?;
        for (name, d) in [
            ("incoming", &self.incoming),
            ("queue", &self.queue),
            ("overflow", &self.overflow),
            ("processing", &self.processing),
            ("quarantine", &self.quarantine),
            ("cases", &self.cases),
            ("escalations", &self.escalations),
            ("incidents", &self.incidents),
        ] {
            if dev(d)? != root {
                return Err(StateError::SpansFilesystems {
                    path: self.root.path().to_path_buf(),
                    sub: name,
                });
            }
        }
        Ok(())
    }

    /// Canonical names in one of its spool directories (one `readdir`, no `stat`).
    pub fn depth_of(&self, dir: &DirFd) -> u64 {
        let mut n = 0;
        let _ = dir.for_each_entry(|e| n += u64::from(crate::store::names::is_canonical(&e.name)));
        n
    }

    /// Files in each place of the state directory (for the heartbeat and `status`).
    pub fn depths(&self) -> std::collections::BTreeMap<String, u64> {
        let state = self;
        let mut d = std::collections::BTreeMap::new();
        d.insert("queue".into(), self.depth_of(&state.queue));
        d.insert("overflow".into(), self.depth_of(&state.overflow));
        let mut incoming = 0;
        let _ = state
            .incoming
            .for_each_entry(|e| incoming += u64::from(!e.is_dot()));
        d.insert("incoming".into(), incoming);
        let mut quarantine = 0;
        let _ = state.quarantine.for_each_entry(|e| {
            quarantine += u64::from(e.name.starts_with(b"q-") && e.name.ends_with(b".json"))
        });
        d.insert("quarantine".into(), quarantine);
        let mut processing = 0;
        if let Ok(list) = state.processing.list() {
            for w in list.iter().filter(|w| w.name.starts_with(b"w-")) {
                if let Ok(Some(wd)) = state.processing.open_subdir_opt(&w.name) {
                    processing += self.depth_of(&wd);
                }
            }
        }
        d.insert("processing".into(), processing);
        d
    }

    pub fn path(&self) -> &Path {
        self.root.path()
    }

    pub fn ledger_path(&self) -> PathBuf {
        self.root.path().join("ledger.db")
    }
}

fn adopt_root(path: &Path) -> Result<DirFd, StateError> {
    match rfs::lstat(path) {
        Ok(st) => {
            let ft = FileType::from_raw_mode(st.st_mode);
            if ft == FileType::Symlink {
                return Err(StateError::Symlink(path.to_path_buf()));
            }
            if ft != FileType::Directory {
                return Err(StateError::NotDir(path.to_path_buf()));
            }
        }
        Err(rustix::io::Errno::NOENT) => crate::store::fsx::create_dir_path(path)?,
        Err(e) => return Err(FsError::new("inspect", path, e).into()),
    }
    let root = DirFd::open(path).map_err(|e| {
        if e.io.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
            StateError::Symlink(path.to_path_buf())
        } else {
            e.into()
        }
    })?;
    let st = rfs::fstat(&*root.fd()).map_err(|e| FsError::new("inspect", path, e))?;
    let me = rustix::process::geteuid().as_raw();
    if st.st_uid != me {
        return Err(StateError::Owner {
            path: path.to_path_buf(),
            owner: st.st_uid,
            me,
        });
    }
    Ok(root)
}

/// Tightens a state directory looser than 0700, with a warning.
fn tighten(root: &DirFd) -> Result<(), StateError> {
    let st = rfs::fstat(&*root.fd()).map_err(|e| FsError::new("inspect", root.path(), e))?;
    let perm = st.st_mode & 0o777;
    if perm & 0o077 != 0 {
        tracing::warn!(
            path = %crate::store::fsx::shown(root.path()),
            mode = format!("{perm:04o}"),
            "state directory was readable or writable by others; tightened to 0700"
        );
        rfs::fchmod(&*root.fd(), Mode::RWXU).map_err(|e| FsError::new("chmod", root.path(), e))?;
    }
    Ok(())
}

fn take_run_lock(root: &DirFd) -> Result<Held, StateError> {
    flock_now(root, "run.lock")?.ok_or_else(|| StateError::Locked(root.path().join("run.lock")))
}

/// An exclusive flock on `root/name` (created 0600), without waiting: `None` when another
/// process holds it.
fn flock_now(root: &DirFd, name: &str) -> Result<Option<Held>, FsError> {
    let path = root.path().join(name);
    let fd = rfs::openat(
        &*root.fd(),
        name,
        OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::RUSR | Mode::WUSR,
    )
    .map_err(|e| FsError::new("open", &path, e))?;
    match rfs::flock(fd.as_fd(), rfs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(Some(Held {
            _file: File::from(fd),
        })),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
        Err(e) => Err(FsError::new("lock", &path, e)),
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests build their fixtures with std::fs
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_new_state_directory_is_created_private_with_its_subdirectories() {
        let t = tempfile::tempdir().expect("tempdir");
        let p = t.path().join("a/b/state");
        let s = StateDir::open(&p, Lock::None).expect("open");
        let mode = std::fs::metadata(&p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        for d in SUBDIRS {
            assert!(p.join(d).is_dir(), "{d}");
        }
        drop(s);
    }

    #[test]
    fn a_loose_state_directory_is_tightened_and_a_symlink_refused() {
        let t = tempfile::tempdir().expect("tempdir");
        let p = t.path().join("state");
        std::fs::create_dir(&p).expect("mkdir");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        StateDir::open(&p, Lock::None).expect("open");
        assert_eq!(
            std::fs::metadata(&p).expect("meta").permissions().mode() & 0o777,
            0o700
        );
        let l = t.path().join("link");
        std::os::unix::fs::symlink(&p, &l).expect("symlink");
        assert!(matches!(
            StateDir::open(&l, Lock::None),
            Err(StateError::Symlink(_))
        ));
    }

    #[test]
    fn a_second_run_lock_is_refused_while_the_first_is_held() {
        let t = tempfile::tempdir().expect("tempdir");
        let first = StateDir::open(t.path(), Lock::Run).expect("first");
        assert!(matches!(
            StateDir::open(t.path(), Lock::Run),
            Err(StateError::Locked(_))
        ));
        assert!(StateDir::open(t.path(), Lock::None).is_ok());
        drop(first);
        assert!(StateDir::open(t.path(), Lock::Run).is_ok());
    }

    #[test]
    fn a_daemons_run_lock_is_held_only_while_its_guard_lives_and_a_second_daemon_is_refused() {
        let t = tempfile::tempdir().expect("tempdir");
        let daemon = StateDir::open(t.path(), Lock::Daemon).expect("daemon");
        // Between runs: another command takes the run lock.
        drop(StateDir::open(t.path(), Lock::Run).expect("between runs"));
        let run = daemon.take_run_lock().expect("a run");
        assert!(matches!(
            StateDir::open(t.path(), Lock::Run),
            Err(StateError::Locked(_))
        ));
        assert!(matches!(daemon.take_run_lock(), Err(StateError::Locked(_))));
        drop(run);
        let other = StateDir::open(t.path(), Lock::Run).expect("after the run");
        assert!(matches!(daemon.take_run_lock(), Err(StateError::Locked(_))));
        drop(other);
        assert!(matches!(
            StateDir::open(t.path(), Lock::Daemon),
            Err(StateError::DaemonRunning(_))
        ));
        drop(daemon);
        assert!(StateDir::open(t.path(), Lock::Daemon).is_ok());
    }
}
