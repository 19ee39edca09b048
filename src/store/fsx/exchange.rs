//! The cap's directory exchange: [`exchange_subdirs`] swaps two subdirectories in one
//! `renameat2(RENAME_EXCHANGE)` and this process's handles with them, and
//! [`DirFd::follow_name`] lets another handle follow a name that now points elsewhere. The one
//! rename of the pipeline that is not `RENAME_NOREPLACE` (ARCHITECTURE.md, "Every hand-off is
//! one no-replace rename"); it never refuses silently: a handle that no longer names its
//! directory, or one in use, is an error and nothing moves.

use std::io;

use rustix::fs::{self as rfs, AtFlags, RenameFlags};

use super::{two_path_error, DirFd, FsError, Result};

impl DirFd {
    /// Re-opens this handle on `parent/name` when that name now points at another directory
    /// (another process's cap exchanged `queue/` and `overflow/`); `true` when it did. Needs no
    /// other user of the handle in this process at that moment (else it leaves it as it is).
    pub fn follow_name(&self, parent: &DirFd, name: &str) -> Result<bool> {
        if self.is_named(parent, name)? {
            return Ok(false);
        }
        let fresh = parent.open_subdir(name.as_bytes())?;
        let Ok(mut guard) = self.fd.try_write() else {
            return Ok(false);
        };
        let Ok(new_fd) = fresh.fd.into_inner() else {
            return Ok(false);
        };
        *guard = new_fd;
        Ok(true)
    }

    /// True when `parent/name` is the directory this handle holds (same device and inode).
    fn is_named(&self, parent: &DirFd, name: &str) -> Result<bool> {
        let held = rfs::fstat(&*self.fd()).map_err(|e| FsError::new("stat", &self.path, e))?;
        let named = rfs::statat(&*parent.fd(), name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| FsError::new("stat", parent.path_of(name.as_bytes()), e))?;
        Ok((held.st_dev, held.st_ino) == (named.st_dev, named.st_ino))
    }
}

/// Exchanges the subdirectories `a_name` and `b_name` of `parent` in one step
/// (`renameat2(RENAME_EXCHANGE)`), and the handles `a` and `b` with them: afterwards `a` still
/// holds the directory named `a_name` (the one `b` held before) and `b` the one named `b_name`.
///
/// Each handle must hold the directory its name points at (checked by inode first). The swap of
/// the handles needs no other user of either handle in this process at that moment; a handle
/// in use is an error, never a wait. Other processes' handles follow the directories, not the
/// names: whatever they write through them lands under the other name.
pub fn exchange_subdirs(
    parent: &DirFd,
    a_name: &str,
    a: &DirFd,
    b_name: &str,
    b: &DirFd,
) -> Result<()> {
    for (name, dir) in [(a_name, a), (b_name, b)] {
        if !dir.is_named(parent, name)? {
            return Err(FsError::new(
                "exchange",
                parent.path_of(name.as_bytes()),
                io::Error::other("no longer the directory this process opened"),
            ));
        }
    }
    let (Ok(mut ga), Ok(mut gb)) = (a.fd.try_write(), b.fd.try_write()) else {
        return Err(FsError::new(
            "exchange",
            parent.path_of(a_name.as_bytes()),
            io::Error::other("a handle of the directory is in use"),
        ));
    };
    rfs::renameat_with(
        &*parent.fd(),
        a_name,
        &*parent.fd(),
        b_name,
        RenameFlags::EXCHANGE,
    )
    .map_err(|e| {
        two_path_error(
            "exchange",
            parent.path_of(a_name.as_bytes()),
            e,
            "with",
            &parent.path_of(b_name.as_bytes()),
        )
    })?;
    std::mem::swap(&mut *ga, &mut *gb);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::fsx::Durability;

    fn holds(dir: &DirFd, file: &str) -> bool {
        dir.has_entry(file).expect("stat")
    }

    #[test]
    fn an_exchange_swaps_the_directories_and_this_processs_handles_follow_the_names() {
        let t = tempfile::tempdir().expect("tempdir");
        let root = DirFd::open(t.path()).expect("root");
        root.create_dir("a").expect("a");
        root.create_dir("b").expect("b");
        let a = root.open_subdir(b"a").expect("open a");
        let b = root.open_subdir(b"b").expect("open b");
        a.create_file("in-a", b"1", Durability::Off).expect("file");
        // Another process's handle on `a`, opened before the exchange.
        let other = root.open_subdir(b"a").expect("other");
        exchange_subdirs(&root, "a", &a, "b", &b).expect("exchange");
        assert!(root
            .open_subdir(b"b")
            .map(|d| holds(&d, "in-a"))
            .expect("b"));
        assert!(!holds(&a, "in-a"), "a names the empty directory now");
        assert!(holds(&b, "in-a"));
        // The other handle followed the directory; told to, it follows the name.
        assert!(holds(&other, "in-a"));
        assert!(other.follow_name(&root, "a").expect("follow"));
        assert!(!holds(&other, "in-a"));
        assert!(!other.follow_name(&root, "a").expect("follow again"));
        // A handle that no longer names its directory is refused, and nothing moves.
        let err = exchange_subdirs(&root, "a", &b, "b", &a).expect_err("wrong handles");
        assert_eq!(err.op, "exchange");
        assert!(holds(&b, "in-a"));
    }
}
