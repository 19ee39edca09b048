//! Who may read the console: a bearer token (`[serve] token_file`) or users with argon2
//! password hashes (`users_file`), sessions in memory, and the login rate limit.
//!
//! Design constraints:
//! - Every comparison with a secret is constant-time (the token) or argon2's (a password).
//! - Sessions live in this process only: a restart logs everyone out; nothing is written.
//! - A client with `MAX_FAILURES` refused logins within `FAILURE_WINDOW` is answered 429
//!   until the oldest of them leaves the window, whatever it sends.

use std::collections::HashMap;
use std::io::Read;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordVerifier};

use crate::secret::{read_secret_file, Secret};

/// Refused logins a client may have within [`FAILURE_WINDOW`].
pub const MAX_FAILURES: usize = 5;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// How long a session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// The session cookie's name.
pub const COOKIE: &str = "sf_session";

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(transparent)]
    Secret(#[from] crate::secret::SecretError),
    #[error("users file {path}, line {line}: {problem}")]
    Users {
        path: String,
        line: usize,
        problem: String,
    },
}

/// The configured credentials.
pub struct Credentials {
    token: Option<Secret>,
    /// User name and PHC hash string (`$argon2id$...`).
    users: Vec<(String, String)>,
}

impl Credentials {
    pub fn load(token_file: Option<&Path>, users_file: Option<&Path>) -> Result<Self, AuthError> {
        let token = token_file
            .map(|p| read_secret_file("serve token", p))
            .transpose()?;
        let mut users = Vec::new();
        if let Some(p) = users_file {
            let text = read_secret_file("serve users", p)?;
            for (i, line) in text.expose().lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let bad = |problem: &str| AuthError::Users {
                    path: crate::store::fsx::shown(p),
                    line: i + 1,
                    problem: problem.to_string(),
                };
                let (name, hash) = line
                    .split_once(':')
                    .ok_or_else(|| bad("expected name:$argon2id$..."))?;
                PasswordHash::new(hash).map_err(|_| bad("the hash is not a PHC string"))?;
                if !hash.starts_with("$argon2") {
                    return Err(bad("the hash is not an argon2 hash"));
                }
                users.push((name.to_string(), hash.to_string()));
            }
        }
        Ok(Credentials { token, users })
    }

    /// Whether `presented` is the bearer token.
    pub fn token_ok(&self, presented: &str) -> bool {
        self.token
            .as_ref()
            .is_some_and(|t| constant_time_eq(t.expose().trim().as_bytes(), presented.as_bytes()))
    }

    /// Whether the login form's user and password are good: a configured user's password, or
    /// (with a token file) the token as the password, whatever the user. Slow by design
    /// (argon2): call it off the async threads.
    pub fn login_ok(&self, user: &str, password: &str) -> bool {
        if self.token_ok(password) {
            return true;
        }
        let Some((_, hash)) = self.users.iter().find(|(n, _)| n == user) else {
            return false;
        };
        PasswordHash::new(hash).is_ok_and(|h| {
            argon2::Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() || a.is_empty() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Sessions and the refused-login record.
#[derive(Default)]
pub struct Sessions {
    live: Mutex<HashMap<String, (String, Instant)>>,
    failures: Mutex<HashMap<IpAddr, Vec<Instant>>>,
}

impl Sessions {
    /// A new session for `user`: its cookie value (256 random bits, hex).
    pub fn create(&self, user: &str) -> std::io::Result<String> {
        let mut b = [0u8; 32];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
        let id = hex::encode(b);
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        live.retain(|_, (_, t)| now.duration_since(*t) < SESSION_TTL);
        live.insert(id.clone(), (user.to_string(), now));
        Ok(id)
    }

    pub fn valid(&self, id: &str) -> bool {
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.get(id).is_some_and(|(_, t)| t.elapsed() < SESSION_TTL)
    }

    pub fn end(&self, id: &str) {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.remove(id);
    }

    /// `Some(wait)` when `ip` has used up its refused logins.
    pub fn limited(&self, ip: IpAddr) -> Option<Duration> {
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let list = f.entry(ip).or_default();
        list.retain(|t| t.elapsed() < FAILURE_WINDOW);
        (list.len() >= MAX_FAILURES).then(|| FAILURE_WINDOW.saturating_sub(list[0].elapsed()))
    }

    pub fn refused(&self, ip: IpAddr) {
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        // Addresses whose refusals have all left the window are forgotten (bounded memory).
        if f.len() > 10_000 {
            f.retain(|_, l| l.iter().any(|t| t.elapsed() < FAILURE_WINDOW));
        }
        f.entry(ip).or_default().push(Instant::now());
    }
}

/// The cookie value named [`COOKIE`] in a `Cookie` header.
pub fn cookie_value(header: &str) -> Option<&str> {
    header.split(';').find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == COOKIE).then_some(v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_holds_after_max_failures_within_the_window() {
        let s = Sessions::default();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        for _ in 0..MAX_FAILURES {
            assert!(s.limited(ip).is_none());
            s.refused(ip);
        }
        assert!(s.limited(ip).is_some());
        assert!(s.limited("127.0.0.2".parse().unwrap()).is_none());
    }

    #[test]
    fn cookie_is_found_among_others_and_tokens_compare_whole() {
        assert_eq!(cookie_value("a=1; sf_session=abc; b=2"), Some("abc"));
        assert_eq!(cookie_value("sf_sessionx=abc"), None);
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"", b""));
    }
}
