//! `verify-pack`: checks an escalation pack against its `manifest.json`.
//!
//! Design constraints:
//! - Nothing is read through a link: the pack directory and every file in it are opened with
//!   `O_NOFOLLOW` relative to the held directory descriptor (`fsx::DirFd`), and judged by `fstat`
//!   on the opened descriptor; a symlink, directory, FIFO or hard-linked file where a pack file
//!   should be is reported as refused, never read.
//! - The manifest names files, never paths: an entry that is not a plain allow-listed file name
//!   (`/`, `..`, control characters) makes the manifest invalid, so a forged manifest cannot make
//!   verification read outside the pack.
//! - A problem with a pack file is data in the report (mismatched, missing, extra, refused); an
//!   error is only for a pack that cannot be checked at all (no directory, no readable manifest).

use std::collections::BTreeSet;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::store::fsx::{self, DirFd, FsError, Opened, ReadOutcome};

/// The manifest's file name inside a pack.
pub const MANIFEST: &str = "manifest.json";
/// Largest `manifest.json` read.
pub const MANIFEST_MAX_BYTES: u64 = 1024 * 1024;

/// Why a pack could not be checked at all.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("cannot check pack")]
    Fs(#[from] FsError),
    #[error("pack {}: manifest.json is missing; this is not an escalation pack (or it is incomplete)", fsx::shown(.dir))]
    NoManifest { dir: PathBuf },
    #[error("pack {}: manifest.json is {reason}; refusing to read it", fsx::shown(.dir))]
    ManifestRefused { dir: PathBuf, reason: String },
    #[error("pack {}: manifest.json is {size} bytes, over the {max} byte limit", fsx::shown(.dir))]
    ManifestTooLarge { dir: PathBuf, size: u64, max: u64 },
    #[error("pack {}: manifest.json is invalid: {reason}", fsx::shown(.dir))]
    BadManifest { dir: PathBuf, reason: String },
}

/// The outcome of checking a pack. Names are escaped for printing ([`fsx::escape_name`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Listed files whose SHA-256 matches.
    pub ok: Vec<String>,
    /// Listed files whose SHA-256 differs.
    pub mismatched: Vec<String>,
    /// Listed files that are not there.
    pub missing: Vec<String>,
    /// Entries in the pack that the manifest does not list (besides `manifest.json`).
    pub extra: Vec<String>,
    /// Listed names that are not a regular file with one link (symlink, directory, ...): name and
    /// reason. Never read.
    pub refused: Vec<(String, String)>,
}

impl VerifyReport {
    /// True when every listed file matches and nothing else is in the pack.
    pub fn is_ok(&self) -> bool {
        self.mismatched.is_empty()
            && self.missing.is_empty()
            && self.extra.is_empty()
            && self.refused.is_empty()
    }
}

impl fmt::Display for VerifyReport {
    /// One line per file (`ok`, `mismatch`, `missing`, `extra`, `refused`), then a count line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.ok {
            writeln!(f, "ok {p}")?;
        }
        for p in &self.mismatched {
            writeln!(f, "mismatch {p}")?;
        }
        for p in &self.missing {
            writeln!(f, "missing {p}")?;
        }
        for p in &self.extra {
            writeln!(f, "extra {p}")?;
        }
        for (p, why) in &self.refused {
            writeln!(f, "refused {p}: {why}")?;
        }
        write!(
            f,
            "verify-pack: status={} ok={} mismatched={} missing={} extra={} refused={}",
            if self.is_ok() { "OK" } else { "FAILED" },
            self.ok.len(),
            self.mismatched.len(),
            self.missing.len(),
            self.extra.len(),
            self.refused.len()
        )
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    version: u32,
    files: Vec<ManifestEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestEntry {
    path: String,
    sha256: String,
}

/// A pack file name: a plain name from an allow-listed alphabet, never a path.
fn is_plain_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphanumeric())
        && name.len() <= 128
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn parse_manifest(dir: &Path, bytes: &[u8]) -> Result<Vec<(String, String)>, VerifyError> {
    let bad = |reason: String| VerifyError::BadManifest {
        dir: dir.to_path_buf(),
        reason,
    };
    let m: Manifest = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
    if m.version != 1 {
        return Err(bad(format!(
            "version {} (this build reads version 1)",
            m.version
        )));
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(m.files.len());
    for e in m.files {
        if !is_plain_name(&e.path) || e.path == MANIFEST {
            return Err(bad(format!(
                "entry {} is not a plain file name of the pack",
                fsx::escape_name(e.path.as_bytes())
            )));
        }
        if !seen.insert(e.path.clone()) {
            return Err(bad(format!("entry {} is listed twice", e.path)));
        }
        if e.sha256.len() != 64 || !e.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad(format!("entry {} has a malformed sha256", e.path)));
        }
        out.push((e.path, e.sha256.to_ascii_lowercase()));
    }
    Ok(out)
}

fn sha256_of(dir: &DirFd, name: &str, mut file: std::fs::File) -> Result<String, FsError> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| FsError::new("read", dir.path_of(name.as_bytes()), e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// Checks the pack in `dir`: every file `manifest.json` lists has its SHA-256, and nothing else is
/// there besides `manifest.json`.
pub fn verify_pack(dir: &Path) -> Result<VerifyReport, VerifyError> {
    let d = DirFd::open(dir)?;
    let bytes = match d.read_regular(MANIFEST.as_bytes(), MANIFEST_MAX_BYTES)? {
        ReadOutcome::Bytes(b) => b,
        ReadOutcome::Vanished => {
            return Err(VerifyError::NoManifest {
                dir: dir.to_path_buf(),
            })
        }
        ReadOutcome::Refused(r) => {
            return Err(VerifyError::ManifestRefused {
                dir: dir.to_path_buf(),
                reason: r.to_string(),
            })
        }
        ReadOutcome::TooLarge(size) => {
            return Err(VerifyError::ManifestTooLarge {
                dir: dir.to_path_buf(),
                size,
                max: MANIFEST_MAX_BYTES,
            })
        }
    };
    let listed = parse_manifest(dir, &bytes)?;
    let mut report = VerifyReport::default();
    for (name, want) in &listed {
        match d.open_regular(name.as_bytes())? {
            Opened::Vanished => report.missing.push(name.clone()),
            Opened::Refused(r) => report.refused.push((name.clone(), r.to_string())),
            Opened::Regular { file, .. } => {
                if sha256_of(&d, name, file)? == *want {
                    report.ok.push(name.clone());
                } else {
                    report.mismatched.push(name.clone());
                }
            }
        }
    }
    let names: BTreeSet<&[u8]> = listed.iter().map(|(n, _)| n.as_bytes()).collect();
    let mut extra: Vec<String> = d
        .list()?
        .into_iter()
        .filter(|e| e.name != MANIFEST.as_bytes() && !names.contains(e.name.as_slice()))
        .map(|e| fsx::escape_name(&e.name))
        .collect();
    extra.sort();
    report.extra = extra;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::fsx::Durability;

    fn manifest(files: &[(&str, &[u8])]) -> Vec<u8> {
        let files: Vec<serde_json::Value> = files
            .iter()
            .map(|(p, b)| serde_json::json!({"path": p, "sha256": hex::encode(Sha256::digest(b))}))
            .collect();
        serde_json::to_vec(&serde_json::json!({"version": 1, "files": files})).expect("json")
    }

    fn pack(files: &[(&str, &[u8])]) -> (tempfile::TempDir, DirFd) {
        let t = tempfile::tempdir().expect("tempdir");
        let d = DirFd::open(t.path()).expect("open");
        for (name, bytes) in files {
            d.write_new(name, bytes, Durability::Off).expect("write");
        }
        d.write_new(MANIFEST, &manifest(files), Durability::Off)
            .expect("write manifest");
        (t, d)
    }

    const FILES: &[(&str, &[u8])] = &[("summary.md", b"# x\n"), ("alert.json", b"{}")];

    #[test]
    fn an_untouched_pack_verifies() {
        let (t, _d) = pack(FILES);
        let r = verify_pack(t.path()).expect("verifies");
        assert!(r.is_ok(), "{r}");
        assert_eq!(r.ok, vec!["summary.md", "alert.json"]);
    }

    #[test]
    fn verify_pack_detects_a_modified_a_missing_and_an_extra_file() {
        let (t, d) = pack(FILES);
        d.replace("summary.md", b"# changed\n", Durability::Off)
            .expect("replace");
        d.remove_file(b"alert.json").expect("remove");
        d.write_new("planted.sh", b"echo", Durability::Off)
            .expect("plant");
        let r = verify_pack(t.path()).expect("checks");
        assert!(!r.is_ok());
        assert_eq!(r.mismatched, vec!["summary.md"]);
        assert_eq!(r.missing, vec!["alert.json"]);
        assert_eq!(r.extra, vec!["planted.sh"]);
        assert!(r
            .to_string()
            .ends_with("status=FAILED ok=0 mismatched=1 missing=1 extra=1 refused=0"));
    }

    #[test]
    fn verify_pack_never_follows_a_symlink_in_place_of_a_pack_file() {
        let (t, d) = pack(FILES);
        let outside = tempfile::NamedTempFile::new().expect("outside file");
        d.remove_file(b"alert.json").expect("remove");
        std::os::unix::fs::symlink(outside.path(), t.path().join("alert.json")).expect("symlink");
        let r = verify_pack(t.path()).expect("checks");
        assert_eq!(r.refused.len(), 1, "{r}");
        assert_eq!(r.refused[0].0, "alert.json");
        assert!(!r.is_ok());
    }

    #[test]
    fn a_manifest_naming_a_path_outside_the_pack_is_invalid() {
        for bad in [
            "../etc/passwd",
            "/etc/passwd",
            "a/b",
            ".hidden",
            "x\ny",
            "manifest.json",
        ] {
            let t = tempfile::tempdir().expect("tempdir");
            let d = DirFd::open(t.path()).expect("open");
            let m = serde_json::json!({"version": 1, "files": [{"path": bad, "sha256": "0".repeat(64)}]});
            d.write_new(MANIFEST, m.to_string().as_bytes(), Durability::Off)
                .expect("write");
            let e = verify_pack(t.path()).expect_err("refused");
            assert!(matches!(e, VerifyError::BadManifest { .. }), "{bad}: {e}");
            assert!(!e.to_string().contains('\n'), "{e}");
        }
    }

    #[test]
    fn a_pack_without_a_manifest_is_an_error_that_names_the_directory() {
        let t = tempfile::tempdir().expect("tempdir");
        let e = verify_pack(t.path()).expect_err("no manifest");
        assert!(matches!(e, VerifyError::NoManifest { .. }));
        assert!(e.to_string().contains(&t.path().display().to_string()));
    }
}
