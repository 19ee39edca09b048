//! The indexer password: a type that never prints it, and loading it from a file that only its
//! owner can read, or from the environment.
//!
//! Design constraints:
//! - `Debug` and `Display` print `<redacted>`; nothing else formats the value. It is handed to
//!   the HTTP client's basic auth and nowhere else.
//! - A password file is judged by `fstat` on the opened descriptor (no check-then-open race):
//!   a regular file, owned by the running user, no group or other permission bits (0600 or
//!   0400). Anything else is refused with the path and the command that fixes it.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use super::PollError;
use crate::config::IndexerConfig;

/// The environment variable read when no `password_file` is configured.
pub const PASSWORD_ENV: &str = "SIGNALFOUNDRY_INDEXER_PASSWORD";

/// Largest password file read (a password, not a document).
const MAX_PASSWORD_BYTES: u64 = 4096;

/// The indexer password: never printed, logged or serialized.
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

/// The password: `password_file` when configured, else `SIGNALFOUNDRY_INDEXER_PASSWORD`.
pub fn load_password(ix: &IndexerConfig) -> Result<Secret, PollError> {
    if let Some(path) = &ix.password_file {
        return read_password_file(path);
    }
    match std::env::var(PASSWORD_ENV) {
        Ok(v) if !v.is_empty() => Ok(Secret::new(v)),
        Ok(_) => Err(PollError::NoPassword(format!(
            "{PASSWORD_ENV} is set but empty"
        ))),
        Err(_) => Err(PollError::NoPassword(
            "neither [indexer] password_file nor SIGNALFOUNDRY_INDEXER_PASSWORD is set".into(),
        )),
    }
}

fn refuse(path: &Path, problem: String) -> PollError {
    PollError::Password {
        path: path.to_path_buf(),
        problem,
    }
}

/// Reads a password file, judged on the opened descriptor.
pub fn read_password_file(path: &Path) -> Result<Secret, PollError> {
    let f = File::options()
        .read(true)
        // A FIFO must not hang the open; the fstat below refuses it.
        .custom_flags(libc_o_nonblock())
        .open(path)
        .map_err(|e| {
            refuse(
                path,
                format!(
                    "cannot open it ({e}); create it with the indexer password and chmod 600 it"
                ),
            )
        })?;
    let md = f
        .metadata()
        .map_err(|e| refuse(path, format!("cannot stat it ({e})")))?;
    if !md.file_type().is_file() {
        return Err(refuse(
            path,
            "is not a regular file; point [indexer] password_file at a regular file of mode 0600"
                .into(),
        ));
    }
    let me = rustix::process::geteuid().as_raw();
    if md.uid() != me {
        return Err(refuse(
            path,
            format!(
                "is owned by uid {}, not by the user running signalfoundry (uid {me}); chown it to that user and chmod 600 it",
                md.uid()
            ),
        ));
    }
    let mode = md.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(refuse(
            path,
            format!("is accessible by group or others (mode {mode:04o}); chmod 600 it"),
        ));
    }
    if md.len() > MAX_PASSWORD_BYTES {
        return Err(refuse(
            path,
            format!("is {} bytes, too large for a password file", md.len()),
        ));
    }
    let mut raw = String::new();
    f.take(MAX_PASSWORD_BYTES)
        .read_to_string(&mut raw)
        .map_err(|e| refuse(path, format!("cannot read it as UTF-8 text ({})", e.kind())))?;
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
            path,
            "is empty; write the indexer password into it".into(),
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
                read_password_file(&p).expect("read").expose(),
                "canary-S3cret"
            );
        }
    }

    #[test]
    fn a_file_readable_by_others_is_refused_with_chmod_600_and_no_content() {
        let (_d, p) = file_with(0o644, "canary-S3cret\n");
        let e = read_password_file(&p).expect_err("refused").to_string();
        assert!(e.contains("chmod 600 it"), "{e}");
        assert!(e.contains("0644"), "{e}");
        assert!(e.contains(&p.display().to_string()), "{e}");
        assert!(!e.contains("canary"), "{e}");
    }

    #[test]
    fn a_directory_an_empty_file_and_a_missing_file_are_refused() {
        let d = tempfile::tempdir().expect("tempdir");
        assert!(read_password_file(d.path()).is_err());
        let (_d2, p) = file_with(0o600, "");
        assert!(read_password_file(&p)
            .expect_err("empty")
            .to_string()
            .contains("empty"));
        assert!(read_password_file(&d.path().join("nope")).is_err());
    }

    #[test]
    fn secrets_print_redacted() {
        let s = Secret::new("canary-S3cret".into());
        assert_eq!(format!("{s}"), "<redacted>");
        assert!(!format!("{s:?}").contains("canary"));
    }
}
