//! Every visible write, rename and removal of the pipeline: directory handles, no-follow opens,
//! `renameat2(RENAME_NOREPLACE)` publishes and the durability modes.
//!
//! Design constraints:
//! - A name seen in a listing is a hint. Every open, move and removal of a listed name reports
//!   "not found" as [`Moved::Vanished`] / [`Opened::Vanished`], never as an error.
//! - Nothing is ever renamed over an existing name: publishing uses `RENAME_NOREPLACE` and a clash
//!   is reported as [`Moved::Exists`] for the caller to decide. No link+unlink (a crash between
//!   them would leave one file under two names).
//! - Names are opened relative to a held directory descriptor with `O_NOFOLLOW`, so a symlink is
//!   never followed and a file is judged by `fstat` on the descriptor that will be read.
//! - Writers write a dot-named temp file (`.tmp-*`, never ending in `.json`), make it durable as
//!   [`Durability`] says, then rename it into place.
//! - Nothing read from disk or from an alert reaches a terminal or a log as itself: names go
//!   through [`escape_name`], other text (alert keys, origins, heartbeat reasons) through
//!   [`escape_text`]; both turn C0, DEL, C1, bidi controls and zero-width characters into
//!   visible `\u{..}` escapes ([`must_escape`]). [`FsError`] shows its paths escaped.
//!
//! Layout: this file holds the handles, opens, writes, renames and removals; [`escape`] the
//! display escaping (re-exported here); [`exchange`] the cap's `RENAME_EXCHANGE` of two
//! subdirectories.

// The one module allowed the renames, removals and directory creations clippy.toml bans
// elsewhere: it is where the no-replace, vanished-is-counted and no-follow rules are kept.
#![allow(clippy::disallowed_methods)]

use std::ffi::{CStr, CString, OsStr};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock, RwLockReadGuard};

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, RenameFlags};
use rustix::io::Errno;

mod escape;
mod exchange;

pub use escape::{escape_name, escape_text, must_escape, shown};
pub use exchange::exchange_subdirs;

/// How hard writes are pushed to stable storage (`[durability] fsync`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// Every file and directory is fsynced as it is written; SQLite `synchronous=FULL`.
    Strict,
    /// One `syncfs` round per batch, before publishing and before the ledger commit.
    Batch,
    /// No syncing at all. For tests and benchmarks only: voids the durability promises.
    Off,
}

/// A filesystem operation that failed for a reason other than "not found" on a listed name.
#[derive(Debug, thiserror::Error)]
#[error("{op} {}: {}", shown(path), describe(io))]
pub struct FsError {
    pub op: &'static str,
    pub path: PathBuf,
    /// Described in the message already, so not exposed as `source()` (no doubled text; a
    /// field named `source` would be one, to thiserror).
    pub io: io::Error,
}

impl FsError {
    pub fn new(op: &'static str, path: impl Into<PathBuf>, source: impl Into<io::Error>) -> Self {
        FsError {
            op,
            path: path.into(),
            io: source.into(),
        }
    }

    /// True when the filesystem does not offer the operation (`EINVAL`, `ENOSYS`,
    /// `EOPNOTSUPP`): e.g. `RENAME_EXCHANGE` on a filesystem without it.
    pub fn is_unsupported(&self) -> bool {
        [Errno::INVAL, Errno::NOSYS, Errno::OPNOTSUPP]
            .iter()
            .any(|e| self.io.raw_os_error() == Some(e.raw_os_error()))
    }

    /// True when the device is out of space or inodes.
    pub fn is_disk_full(&self) -> bool {
        self.io.raw_os_error() == Some(Errno::NOSPC.raw_os_error())
    }
}

/// Lowercase, errno-style description ("no space left on device").
fn describe(e: &io::Error) -> String {
    let text = e.to_string();
    let text = match text.find(" (os error") {
        Some(i) => &text[..i],
        None => text.as_str(),
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

pub type Result<T, E = FsError> = std::result::Result<T, E>;

/// A directory held open by descriptor; every operation on its entries is relative to it.
#[derive(Debug)]
pub struct DirFd {
    /// Behind a lock only so that [`exchange_subdirs`] can swap two handles with the
    /// directories they name; every other use takes a shared guard for one call.
    fd: RwLock<OwnedFd>,
    path: PathBuf,
}

/// One listed entry: a name and the type `readdir` reported (no `stat`).
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: Vec<u8>,
    pub kind: EntryKind,
}

impl Entry {
    /// The name as UTF-8 when it is (our own names always are).
    pub fn name_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.name).ok()
    }
    /// Dot-named entries are temp files or hidden: never alerts.
    pub fn is_dot(&self) -> bool {
        self.name.first() == Some(&b'.')
    }
}

/// What `readdir`'s `d_type` says about an entry. A hint, like the name itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    Other,
    Unknown,
}

/// The outcome of a rename of a listed name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moved {
    Moved,
    /// The source was not there: someone else moved or removed it first.
    Vanished,
    /// The target name is taken; nothing was changed.
    Exists,
}

/// What was found when opening a listed name for reading.
#[derive(Debug)]
pub enum Opened {
    /// A regular file with exactly one link, opened read-only.
    Regular {
        file: File,
        size: u64,
    },
    Vanished,
    /// Not read: a symlink, FIFO, directory, device, socket, or a file with more than one link.
    Refused(Refusal),
}

/// Why an entry was not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Symlink,
    Directory,
    Fifo,
    Socket,
    Device,
    MultiLink(u64),
    /// The open was refused by permissions (`EACCES`, `EPERM`): a file we may not read stops
    /// nothing, it is quarantined like any other file that cannot be triaged.
    Unreadable(Errno),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Symlink => f.write_str("a symbolic link (never followed)"),
            Refusal::Directory => f.write_str("a directory, not a regular file"),
            Refusal::Fifo => f.write_str("a FIFO, not a regular file"),
            Refusal::Socket => f.write_str("a socket, not a regular file"),
            Refusal::Device => f.write_str("a device node, not a regular file"),
            Refusal::MultiLink(n) => write!(f, "a regular file with {n} links (hard link refused)"),
            Refusal::Unreadable(e) => write!(
                f,
                "not readable by this user ({}); fix its owner or mode, then requeue it",
                io::Error::from(*e)
            ),
        }
    }
}

fn cstr(name: &[u8]) -> io::Result<CString> {
    CString::new(name).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "name contains NUL"))
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh dot-named temp name: `.tmp-<tag>-<pid>-<counter>-<random>`; never ends in `.json`.
pub fn temp_name(tag: &str) -> String {
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(".tmp-{tag}-{}-{n}-{:08x}", std::process::id(), rand_u32())
}

/// The process id in a temp name written by [`temp_name`] (`.tmp-<tag>-<pid>-<n>-<random>`,
/// one of the tags this crate writes), or `None` for any other name: a name someone else chose
/// is never judged by it.
pub fn temp_owner(name: &[u8]) -> Option<i32> {
    let s = std::str::from_utf8(name).ok()?;
    let mut parts = s.strip_prefix(".tmp-")?.split('-');
    let tag = parts.next()?;
    if !matches!(tag, "q" | "w" | "r") {
        return None;
    }
    let pid = parts.next()?.parse::<i32>().ok()?;
    let n = parts.next()?;
    let rand = parts.next()?;
    let ok = !n.is_empty()
        && n.bytes().all(|b| b.is_ascii_digit())
        && rand.len() == 8
        && rand.bytes().all(|b| b.is_ascii_hexdigit())
        && parts.next().is_none();
    ok.then_some(pid)
}

/// True when no process has this id (so a temp file it wrote is litter). A live process with a
/// reused id keeps its name's files a while longer: never the other way round.
pub fn process_is_gone(pid: i32) -> bool {
    rustix::process::Pid::from_raw(pid)
        .is_some_and(|p| rustix::process::test_kill_process(p) == Err(Errno::SRCH))
}

/// Removes the temp files ([`temp_name`]) of processes that are gone from `dir`: what a killed
/// `ingest`, `poll`, admission or heartbeat left before its rename. A temp file is a copy (the
/// rename never happened, or the original is elsewhere), so removing it loses nothing.
pub fn sweep_dead_temps(dir: &DirFd) -> Result<u64> {
    let mut litter = Vec::new();
    dir.for_each_entry(|e| {
        if e.kind != EntryKind::Dir && temp_owner(&e.name).is_some_and(process_is_gone) {
            litter.push(e.name);
        }
    })?;
    let mut removed = 0;
    for n in litter {
        if dir.remove_file(&n)? {
            removed += 1;
        }
    }
    Ok(removed)
}

/// Random bits from the OS clock and a counter: for unique temp names only (uniqueness is also
/// enforced by `O_EXCL`/`NOREPLACE`), never for anything secret.
pub fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(TEMP_COUNTER.fetch_add(1, Ordering::Relaxed));
    if let Ok(d) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(d.as_nanos());
    }
    h.finish() as u32
}

/// Creates the directory `path` (0700) and its missing parents (mode as the umask leaves it),
/// as `mkdir -p` does; an existing `path` is no error. Only for the directory the operator names
/// (the state directory): every other directory is created relative to a held [`DirFd`]
/// ([`DirFd::ensure_subdir`], [`DirFd::create_dir`]).
pub fn create_dir_path(path: &Path) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| FsError::new("create directory", parent, e))?;
    }
    match rfs::mkdir(path, Mode::RWXU) {
        Ok(()) | Err(Errno::EXIST) => Ok(()),
        Err(e) => Err(FsError::new("create directory", path, e)),
    }
}

impl DirFd {
    /// Opens a directory, refusing a symlink in the last component.
    pub fn open(path: &Path) -> Result<DirFd> {
        let fd = rfs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| FsError::new("open directory", path, e))?;
        Ok(DirFd {
            fd: RwLock::new(fd),
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The descriptor, held for as long as the guard lives (use it within one call).
    pub fn fd(&self) -> RwLockReadGuard<'_, OwnedFd> {
        self.fd.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The path of an entry, for messages only (never used to open anything).
    pub fn path_of(&self, name: &[u8]) -> PathBuf {
        self.path.join(OsStr::from_bytes(name))
    }

    /// Creates (mode 0700) or opens the subdirectory `name`.
    pub fn ensure_subdir(&self, name: &str) -> Result<DirFd> {
        match rfs::mkdirat(&*self.fd(), name, Mode::RWXU) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => {
                return Err(FsError::new(
                    "create directory",
                    self.path_of(name.as_bytes()),
                    e,
                ))
            }
        }
        self.open_subdir(name.as_bytes())
    }

    /// Creates (0700) or opens each component of a relative path (`a/b/c`), never following a
    /// symlink. With [`Durability::Strict`] each parent is fsynced after creating a child.
    pub fn ensure_subdir_chain(&self, rel: &str, durability: Durability) -> Result<DirFd> {
        let mut parts = rel.split('/').filter(|p| !p.is_empty());
        let Some(first) = parts.next() else {
            return self.open_subdir(b".");
        };
        let mut cur = self.ensure_subdir_synced(first, durability)?;
        for p in parts {
            cur = cur.ensure_subdir_synced(p, durability)?;
        }
        Ok(cur)
    }

    fn ensure_subdir_synced(&self, name: &str, durability: Durability) -> Result<DirFd> {
        let created = self.create_dir(name)?;
        if created && durability == Durability::Strict {
            self.sync()?;
        }
        self.open_subdir(name.as_bytes())
    }

    /// Opens a relative path of directories component by component without following links;
    /// `None` when a component does not exist.
    pub fn open_path_opt(&self, rel: &str) -> Result<Option<DirFd>> {
        let mut parts = rel.split('/').filter(|p| !p.is_empty());
        let Some(first) = parts.next() else {
            return Ok(None);
        };
        let Some(mut cur) = self.open_subdir_opt(first.as_bytes())? else {
            return Ok(None);
        };
        for p in parts {
            match cur.open_subdir_opt(p.as_bytes())? {
                Some(d) => cur = d,
                None => return Ok(None),
            }
        }
        Ok(Some(cur))
    }

    /// Opens an existing subdirectory without following a symlink.
    pub fn open_subdir(&self, name: &[u8]) -> Result<DirFd> {
        let c = cstr(name).map_err(|e| FsError::new("open directory", self.path_of(name), e))?;
        let fd = rfs::openat(
            &*self.fd(),
            c.as_c_str(),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| FsError::new("open directory", self.path_of(name), e))?;
        Ok(DirFd {
            fd: RwLock::new(fd),
            path: self.path_of(name),
        })
    }

    /// Opens a subdirectory, `None` when it vanished.
    pub fn open_subdir_opt(&self, name: &[u8]) -> Result<Option<DirFd>> {
        match self.open_subdir(name) {
            Ok(d) => Ok(Some(d)),
            Err(e) if e.io.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Lists the directory in one `readdir` pass: names and `d_type`, no `stat` per entry.
    pub fn list(&self) -> Result<Vec<Entry>> {
        let mut out = Vec::new();
        self.for_each_entry(|e| out.push(e))?;
        Ok(out)
    }

    /// True when `name` exists here (any type; a symlink is not followed).
    pub fn has_entry(&self, name: &str) -> Result<bool> {
        match rfs::statat(&*self.fd(), name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(_) => Ok(true),
            Err(Errno::NOENT) => Ok(false),
            Err(e) => Err(FsError::new("stat", self.path_of(name.as_bytes()), e)),
        }
    }

    /// True when the directory holds an entry whose name does not start with `.` (it stops at
    /// the first one).
    pub fn any_visible_entry(&self) -> Result<bool> {
        let dir =
            rfs::Dir::read_from(&*self.fd()).map_err(|e| FsError::new("list", &self.path, e))?;
        for item in dir {
            let item = item.map_err(|e| FsError::new("list", &self.path, e))?;
            if !item.file_name().to_bytes().starts_with(b".") {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Streams the directory's entries (for listings too large to hold twice).
    pub fn for_each_entry(&self, mut f: impl FnMut(Entry)) -> Result<()> {
        let dir =
            rfs::Dir::read_from(&*self.fd()).map_err(|e| FsError::new("list", &self.path, e))?;
        for item in dir {
            let item = item.map_err(|e| FsError::new("list", &self.path, e))?;
            let name = item.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            let ft = item.file_type();
            let kind = if ft == FileType::RegularFile {
                EntryKind::File
            } else if ft == FileType::Directory {
                EntryKind::Dir
            } else if ft == FileType::Symlink {
                EntryKind::Symlink
            } else if ft == FileType::Unknown {
                EntryKind::Unknown
            } else {
                EntryKind::Other
            };
            f(Entry {
                name: name.to_vec(),
                kind,
            });
        }
        Ok(())
    }

    /// Opens a listed name for reading, judging it by `fstat` on the opened descriptor.
    /// `O_NONBLOCK` keeps a FIFO from hanging the open; `O_NOFOLLOW` refuses symlinks.
    pub fn open_regular(&self, name: &[u8]) -> Result<Opened> {
        let c = cstr(name).map_err(|e| FsError::new("open", self.path_of(name), e))?;
        let fd = match rfs::openat(
            &*self.fd(),
            c.as_c_str(),
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(Opened::Vanished),
            Err(Errno::LOOP) => return Ok(Opened::Refused(Refusal::Symlink)),
            Err(Errno::NXIO) => return Ok(Opened::Refused(Refusal::Socket)),
            Err(e @ (Errno::ACCESS | Errno::PERM)) => {
                return Ok(Opened::Refused(Refusal::Unreadable(e)))
            }
            Err(e) => return Err(FsError::new("open", self.path_of(name), e)),
        };
        let st = rfs::fstat(&fd).map_err(|e| FsError::new("stat", self.path_of(name), e))?;
        let ft = FileType::from_raw_mode(st.st_mode);
        let refusal = match ft {
            FileType::RegularFile if st.st_nlink > 1 => {
                Some(Refusal::MultiLink(st.st_nlink as u64))
            }
            FileType::RegularFile => None,
            FileType::Directory => Some(Refusal::Directory),
            FileType::Fifo => Some(Refusal::Fifo),
            FileType::Socket => Some(Refusal::Socket),
            FileType::Symlink => Some(Refusal::Symlink),
            _ => Some(Refusal::Device),
        };
        if let Some(r) = refusal {
            return Ok(Opened::Refused(r));
        }
        Ok(Opened::Regular {
            file: File::from(fd),
            size: st.st_size as u64,
        })
    }

    /// Reads a listed regular file whole, refusing anything larger than `max` bytes
    /// (`Ok(Read::TooLarge)`), and everything [`DirFd::open_regular`] refuses.
    pub fn read_regular(&self, name: &[u8], max: u64) -> Result<ReadOutcome> {
        match self.open_regular(name)? {
            Opened::Vanished => Ok(ReadOutcome::Vanished),
            Opened::Refused(r) => Ok(ReadOutcome::Refused(r)),
            Opened::Regular { file, size } => {
                if size > max {
                    return Ok(ReadOutcome::TooLarge(size));
                }
                let mut buf = Vec::with_capacity(size as usize);
                // Read one byte past the limit so a file that grew after fstat is still caught.
                file.take(max + 1)
                    .read_to_end(&mut buf)
                    .map_err(|e| FsError::new("read", self.path_of(name), e))?;
                if buf.len() as u64 > max {
                    return Ok(ReadOutcome::TooLarge(buf.len() as u64));
                }
                Ok(ReadOutcome::Bytes(buf))
            }
        }
    }

    /// `renameat2(RENAME_NOREPLACE)` of `from_name` here to `to_name` in `to`.
    pub fn rename_to(&self, from_name: &[u8], to: &DirFd, to_name: &[u8]) -> Result<Moved> {
        let a = cstr(from_name).map_err(|e| FsError::new("rename", self.path_of(from_name), e))?;
        let b = cstr(to_name).map_err(|e| FsError::new("rename", to.path_of(to_name), e))?;
        rename_cstr(self, &a, to, &b)
    }

    /// Removes a listed file; `false` when it had already vanished.
    pub fn remove_file(&self, name: &[u8]) -> Result<bool> {
        let c = cstr(name).map_err(|e| FsError::new("remove", self.path_of(name), e))?;
        match rfs::unlinkat(&*self.fd(), c.as_c_str(), AtFlags::empty()) {
            Ok(()) => Ok(true),
            Err(Errno::NOENT) => Ok(false),
            Err(e) => Err(FsError::new("remove", self.path_of(name), e)),
        }
    }

    /// Removes an empty subdirectory; `false` when it had vanished.
    pub fn remove_dir(&self, name: &[u8]) -> Result<bool> {
        let c = cstr(name).map_err(|e| FsError::new("remove directory", self.path_of(name), e))?;
        match rfs::unlinkat(&*self.fd(), c.as_c_str(), AtFlags::REMOVEDIR) {
            Ok(()) => Ok(true),
            Err(Errno::NOENT) => Ok(false),
            Err(e) => Err(FsError::new("remove directory", self.path_of(name), e)),
        }
    }

    /// Creates a subdirectory (mode 0700); `false` when the name exists.
    pub fn create_dir(&self, name: &str) -> Result<bool> {
        match rfs::mkdirat(&*self.fd(), name, Mode::RWXU) {
            Ok(()) => Ok(true),
            Err(Errno::EXIST) => Ok(false),
            Err(e) => Err(FsError::new(
                "create directory",
                self.path_of(name.as_bytes()),
                e,
            )),
        }
    }

    /// Writes `bytes` to a fresh dot-named temp file here and returns its name. With
    /// [`Durability::Strict`] the file is fsynced before this returns.
    pub fn write_temp(&self, tag: &str, bytes: &[u8], durability: Durability) -> Result<String> {
        loop {
            let name = temp_name(tag);
            let fd = match rfs::openat(
                &*self.fd(),
                name.as_str(),
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::RUSR | Mode::WUSR,
            ) {
                Ok(fd) => fd,
                Err(Errno::EXIST) => continue,
                Err(e) => return Err(FsError::new("create", self.path_of(name.as_bytes()), e)),
            };
            let mut file = File::from(fd);
            let written = file.write_all(bytes).and_then(|()| {
                if durability == Durability::Strict {
                    file.sync_all()
                } else {
                    Ok(())
                }
            });
            if let Err(e) = written {
                let _ = rfs::unlinkat(&*self.fd(), name.as_str(), AtFlags::empty());
                return Err(FsError::new("write", self.path_of(name.as_bytes()), e));
            }
            return Ok(name);
        }
    }

    /// Writes a new file under `name` (temp, durable, no-replace rename, directory durable).
    /// `Moved::Exists` when `name` is taken (the temp is removed, the existing file untouched).
    pub fn write_new(&self, name: &str, bytes: &[u8], durability: Durability) -> Result<Moved> {
        let tmp = self.write_temp("w", bytes, durability)?;
        let moved = self.rename_to(tmp.as_bytes(), self, name.as_bytes());
        match moved {
            Ok(Moved::Moved) => {
                if durability == Durability::Strict {
                    self.sync()?;
                }
                Ok(Moved::Moved)
            }
            other => {
                let _ = self.remove_file(tmp.as_bytes());
                other
            }
        }
    }

    /// Atomically replaces `name` with `bytes` (for files we own outright, such as the
    /// heartbeat): readers see the old or the new content, never a partial one. The file is
    /// 0600, like every file [`DirFd::write_temp`] writes.
    pub fn replace(&self, name: &str, bytes: &[u8], durability: Durability) -> Result<()> {
        self.replace_as(name, bytes, None, durability)
    }

    /// [`DirFd::replace`] with the file's permission bits set to `mode` (e.g. `0o644`) before
    /// it appears under `name`: for a file another user reads, such as the metrics file in
    /// node_exporter's textfile collector directory. Nothing but counts belongs in such a file.
    pub fn replace_with_mode(
        &self,
        name: &str,
        bytes: &[u8],
        mode: u32,
        durability: Durability,
    ) -> Result<()> {
        self.replace_as(name, bytes, Some(Mode::from_raw_mode(mode)), durability)
    }

    fn replace_as(
        &self,
        name: &str,
        bytes: &[u8],
        mode: Option<Mode>,
        durability: Durability,
    ) -> Result<()> {
        let tmp = self.write_temp("r", bytes, durability)?;
        let published = match mode {
            None => Ok(()),
            Some(mode) => rfs::openat(
                &*self.fd(),
                tmp.as_str(),
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .and_then(|fd| rfs::fchmod(&fd, mode))
            .map_err(|e| FsError::new("chmod", self.path_of(tmp.as_bytes()), e)),
        }
        .and_then(|()| {
            rfs::renameat(&*self.fd(), tmp.as_str(), &*self.fd(), name)
                .map_err(|e| FsError::new("replace", self.path_of(name.as_bytes()), e))
        });
        if let Err(e) = published {
            let _ = self.remove_file(tmp.as_bytes());
            return Err(e);
        }
        if durability == Durability::Strict {
            self.sync()?;
        }
        Ok(())
    }

    /// Creates `name` with `bytes` directly (`O_EXCL`). Only for files inside a dot-named temp
    /// directory that is itself published by one rename: nobody can see a partial file there.
    pub fn create_file(&self, name: &str, bytes: &[u8], durability: Durability) -> Result<()> {
        let fd = rfs::openat(
            &*self.fd(),
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::RUSR | Mode::WUSR,
        )
        .map_err(|e| FsError::new("create", self.path_of(name.as_bytes()), e))?;
        let mut file = File::from(fd);
        file.write_all(bytes)
            .and_then(|()| {
                if durability == Durability::Strict {
                    file.sync_all()
                } else {
                    Ok(())
                }
            })
            .map_err(|e| FsError::new("write", self.path_of(name.as_bytes()), e))
    }

    /// Removes a subdirectory that holds only files (a temp case or pack directory); `false`
    /// when it had vanished. Never follows a link: entries are unlinked, not opened.
    pub fn remove_flat_dir(&self, name: &[u8]) -> Result<bool> {
        let Some(sub) = self.open_subdir_opt(name)? else {
            return Ok(false);
        };
        for e in sub.list()? {
            if e.kind == EntryKind::Dir {
                sub.remove_flat_dir(&e.name)?;
            } else {
                sub.remove_file(&e.name)?;
            }
        }
        self.remove_dir(name)
    }

    /// Appends one record to `name` (created 0600 when missing) with a single `write` in
    /// `O_APPEND` mode, so concurrent appenders never interleave within a record.
    pub fn append(&self, name: &str, bytes: &[u8], durability: Durability) -> Result<()> {
        let fd = rfs::openat(
            &*self.fd(),
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::APPEND | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::RUSR | Mode::WUSR,
        )
        .map_err(|e| FsError::new("open", self.path_of(name.as_bytes()), e))?;
        let mut file = File::from(fd);
        file.write_all(bytes)
            .and_then(|()| {
                if durability == Durability::Off {
                    Ok(())
                } else {
                    file.sync_data()
                }
            })
            .map_err(|e| FsError::new("append", self.path_of(name.as_bytes()), e))
    }

    /// fsync of the directory itself (makes its renames durable).
    pub fn sync(&self) -> Result<()> {
        rfs::fsync(&*self.fd()).map_err(|e| FsError::new("sync directory", &self.path, e))
    }

    /// `syncfs` of the filesystem holding this directory: the one-round batch barrier.
    pub fn sync_filesystem(&self) -> Result<()> {
        rfs::syncfs(&*self.fd()).map_err(|e| FsError::new("sync filesystem", &self.path, e))
    }

    /// The barrier a batch needs before it is published or committed.
    pub fn barrier(&self, durability: Durability) -> Result<()> {
        match durability {
            Durability::Batch => self.sync_filesystem(),
            Durability::Strict | Durability::Off => Ok(()),
        }
    }
}

/// The outcome of reading a listed file.
#[derive(Debug)]
pub enum ReadOutcome {
    Bytes(Vec<u8>),
    Vanished,
    Refused(Refusal),
    TooLarge(u64),
}

fn rename_cstr(from: &DirFd, a: &CStr, to: &DirFd, b: &CStr) -> Result<Moved> {
    match rfs::renameat_with(&*from.fd(), a, &*to.fd(), b, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(Moved::Moved),
        Err(Errno::NOENT) => Ok(Moved::Vanished),
        Err(Errno::EXIST) => Ok(Moved::Exists),
        Err(e) => Err(two_path_error(
            "rename",
            from.path_of(a.to_bytes()),
            e,
            "to",
            &to.path_of(b.to_bytes()),
        )),
    }
}

/// An error of an operation on two paths: "<errno text> (<word> <other path>)".
fn two_path_error(op: &'static str, path: PathBuf, e: Errno, word: &str, other: &Path) -> FsError {
    let e = io::Error::from(e);
    let text = format!("{} ({word} {})", describe(&e), shown(other));
    FsError::new(op, path, io::Error::new(e.kind(), text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_fs_errors_message_shows_its_paths_escaped() {
        let e = FsError::new(
            "open",
            "/st\u{1b}]0;x\u{7}/q\u{202e}",
            io::Error::from(Errno::NOTDIR),
        );
        assert_eq!(
            e.to_string(),
            "open /st\\u{1b}]0;x\\u{7}/q\\u{202e}: not a directory"
        );
        let e = two_path_error(
            "rename",
            PathBuf::from("/a\u{9b}"),
            Errno::XDEV,
            "to",
            Path::new("/b\u{1b}[2J"),
        );
        let text = e.to_string();
        assert!(text.starts_with("rename /a\\u{9b}: "), "{text}");
        assert!(text.ends_with("(to /b\\u{1b}[2J)"), "{text}");
    }

    #[test]
    fn write_new_never_replaces_an_existing_name() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let d = DirFd::open(tmp.path()).expect("open");
        assert_eq!(
            d.write_new("a.json", b"one", Durability::Strict)
                .expect("w"),
            Moved::Moved
        );
        assert_eq!(
            d.write_new("a.json", b"two", Durability::Off).expect("w"),
            Moved::Exists
        );
        let back = std::fs::read(tmp.path().join("a.json")).expect("read");
        assert_eq!(back, b"one");
        // The losing temp file was cleaned up.
        assert_eq!(d.list().expect("list").len(), 1);
    }

    #[test]
    fn replace_with_mode_publishes_the_file_with_its_mode_and_leaves_no_temp() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().expect("tempdir");
        let d = DirFd::open(tmp.path()).expect("open");
        let mode = |n: &str| {
            let m = std::fs::metadata(tmp.path().join(n)).expect("meta");
            m.permissions().mode() & 0o777
        };
        d.replace("own.prom", b"a", Durability::Strict)
            .expect("replace");
        assert_eq!(mode("own.prom"), 0o600);
        d.replace_with_mode("shared.prom", b"one", 0o644, Durability::Strict)
            .expect("replace");
        d.replace_with_mode("shared.prom", b"two", 0o644, Durability::Off)
            .expect("replace again");
        assert_eq!(mode("shared.prom"), 0o644);
        let back = std::fs::read(tmp.path().join("shared.prom")).expect("read");
        assert_eq!(back, b"two");
        assert_eq!(d.list().expect("list").len(), 2, "no temp file left");
    }

    #[test]
    fn rename_of_a_vanished_name_is_counted_not_an_error() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let d = DirFd::open(tmp.path()).expect("open");
        assert_eq!(
            d.rename_to(b"gone.json", &d, b"x.json").expect("rename"),
            Moved::Vanished
        );
    }

    #[test]
    fn open_regular_refuses_symlinks_fifos_directories_and_hardlinks() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let p = tmp.path();
        std::fs::File::create(p.join("plain")).expect("create");
        std::os::unix::fs::symlink("/etc/passwd", p.join("link")).expect("symlink");
        std::fs::create_dir(p.join("dir.json")).expect("mkdir");
        std::fs::hard_link(p.join("plain"), p.join("hard")).expect("hardlink");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            p.join("fifo"),
            FileType::Fifo,
            Mode::RUSR | Mode::WUSR,
            0,
        )
        .expect("mkfifo");
        let d = DirFd::open(p).expect("open");
        let refusal = |n: &[u8]| match d.open_regular(n).expect("open") {
            Opened::Refused(r) => Some(r),
            _ => None,
        };
        assert_eq!(refusal(b"link"), Some(Refusal::Symlink));
        assert_eq!(refusal(b"dir.json"), Some(Refusal::Directory));
        assert_eq!(refusal(b"fifo"), Some(Refusal::Fifo));
        assert_eq!(refusal(b"hard"), Some(Refusal::MultiLink(2)));
        assert!(matches!(
            d.open_regular(b"missing").expect("open"),
            Opened::Vanished
        ));
    }
}
