//! Secrets: a type that never prints its value, and reading one from a file that only its owner
//! can read (the indexer password, a route's signing secret, API key, routing key, secret URL,
//! SMTP password).
//!
//! Design constraints:
//! - `Debug` and `Display` print `<redacted>`; nothing else formats the value. It is handed to
//!   the client that uses it (basic auth, a signature, a header) and nowhere else.
//! - A secret file is judged by `fstat` on the opened descriptor (no check-then-open race):
//!   a regular file, owned by the running user, no group or other permission bits (0600 or
//!   0400). Anything else is refused with the path and the command that fixes it; the refusal
//!   never holds the file's content.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// A secret file that was refused: its path and what to fix (never its content).
#[derive(Debug, thiserror::Error)]
#[error("{what} file {}: {problem}", crate::store::fsx::shown(path))]
pub struct SecretError {
    pub what: String,
    pub path: PathBuf,
    pub problem: String,
}

/// Largest secret file read (a secret, not a document).
const MAX_SECRET_BYTES: u64 = 4096;

/// A secret: never printed, logged or serialized.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: String) -> Secret {
        Secret(s)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        // Best effort: overwrite the bytes before the allocation is freed.
        let mut bytes = std::mem::take(&mut self.0).into_bytes();
        bytes.iter_mut().for_each(|b| *b = 0);
        std::hint::black_box(&bytes);
    }
}

fn refuse(what: &str, path: &Path, problem: String) -> SecretError {
    SecretError {
        what: what.to_string(),
        path: path.to_path_buf(),
        problem,
    }
}

/// Reads a secret file, judged on the opened descriptor. `what` names the secret in refusals
/// (`the indexer password`, `[[notify]] soc-webhook secret`).
pub fn read_secret_file(what: &str, path: &Path) -> Result<Secret, SecretError> {
    let f = File::options()
        .read(true)
        // A FIFO must not hang the open; the fstat below refuses it.
        .custom_flags(libc_o_nonblock())
        .open(path)
        .map_err(|e| {
            refuse(
                what,
                path,
                format!("cannot open it ({e}); create it with {what} and chmod 600 it"),
            )
        })?;
    let md = f
        .metadata()
        .map_err(|e| refuse(what, path, format!("cannot stat it ({e})")))?;
    if !md.file_type().is_file() {
        return Err(refuse(
            what,
            path,
            "is not a regular file; point the setting at a regular file of mode 0600".into(),
        ));
    }
    let me = rustix::process::geteuid().as_raw();
    if md.uid() != me {
        return Err(refuse(what, path,
            format!(
                "is owned by uid {}, not by the user running signalfoundry (uid {me}); chown it to that user and chmod 600 it",
                md.uid()
            ),
        ));
    }
    let mode = md.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(refuse(
            what,
            path,
            format!("is accessible by group or others (mode {mode:04o}); chmod 600 it"),
        ));
    }
    if md.len() > MAX_SECRET_BYTES {
        return Err(refuse(
            what,
            path,
            format!("is {} bytes, too large for a secret file", md.len()),
        ));
    }
    let mut raw = String::new();
    f.take(MAX_SECRET_BYTES)
        .read_to_string(&mut raw)
        .map_err(|e| {
            refuse(
                what,
                path,
                format!("cannot read it as UTF-8 text ({})", e.kind()),
            )
        })?;
    let pw = raw
        .strip_suffix('\n')
        .map(|s| s.strip_suffix('\r').unwrap_or(s))
        .unwrap_or(&raw)
        .to_string();
    // Overwrite the buffer that held the newline-terminated copy.
    let mut bytes = raw.into_bytes();
    bytes.iter_mut().for_each(|b| *b = 0);
    std::hint::black_box(&bytes);
    if pw.is_empty() {
        return Err(refuse(
            what,
            path,
            format!("is empty; write {what} into it"),
        ));
    }
    Ok(Secret::new(pw))
}

fn libc_o_nonblock() -> i32 {
    rustix::fs::OFlags::NONBLOCK.bits() as i32
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn file_with(mode: u32, content: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("pw");
        std::io::Write::write_all(&mut File::create(&p).expect("create"), content.as_bytes())
            .expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
        (d, p)
    }

    #[test]
    fn a_0600_or_0400_file_is_read_without_its_newline() {
        for mode in [0o600, 0o400] {
            let (_d, p) = file_with(mode, "canary-S3cret\n");
            assert_eq!(
                read_secret_file("the test secret", &p)
                    .expect("read")
                    .expose(),
                "canary-S3cret"
            );
        }
    }

    #[test]
    fn a_file_readable_by_others_is_refused_with_chmod_600_and_no_content() {
        let (_d, p) = file_with(0o644, "canary-S3cret\n");
        let e = read_secret_file("the test secret", &p)
            .expect_err("refused")
            .to_string();
        assert!(e.contains("chmod 600 it"), "{e}");
        assert!(e.contains("0644"), "{e}");
        assert!(e.contains(&p.display().to_string()), "{e}");
        assert!(!e.contains("canary"), "{e}");
    }

    #[test]
    fn a_directory_an_empty_file_and_a_missing_file_are_refused() {
        let d = tempfile::tempdir().expect("tempdir");
        assert!(read_secret_file("the test secret", d.path()).is_err());
        let (_d2, p) = file_with(0o600, "");
        assert!(read_secret_file("the test secret", &p)
            .expect_err("empty")
            .to_string()
            .contains("empty"));
        assert!(read_secret_file("the test secret", &d.path().join("nope")).is_err());
    }

    #[test]
    fn secrets_print_redacted() {
        let s = Secret::new("canary-S3cret".into());
        assert_eq!(format!("{s}"), "<redacted>");
        assert!(!format!("{s:?}").contains("canary"));
    }
}
