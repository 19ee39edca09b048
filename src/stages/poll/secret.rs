//! The indexer password: `[indexer] password_file`, or the environment.

use super::PollError;
use crate::config::IndexerConfig;
pub use crate::secret::Secret;
use crate::secret::SecretError;

/// The environment variable read when no `password_file` is configured.
pub const PASSWORD_ENV: &str = "SIGNALFOUNDRY_INDEXER_PASSWORD";

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

/// Reads the indexer password file (`crate::secret::read_secret_file`).
pub fn read_password_file(path: &std::path::Path) -> Result<Secret, PollError> {
    crate::secret::read_secret_file("the indexer password", path)
        .map_err(|SecretError { path, problem, .. }| PollError::Password { path, problem })
}
