//! `[serve]`: the console's listen address, how it authenticates (a bearer token file or a
//! users file of argon2 hashes) and its TLS certificate, which any address but loopback needs.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeConfig {
    /// `host:port`; `--listen` overrides it.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// A file (0600) holding one bearer token: `Authorization: Bearer <token>`, or the login
    /// form's password.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// A file (0600) of `name:$argon2id$...` lines: the login form's users.
    #[serde(default)]
    pub users_file: Option<PathBuf>,
    /// PEM certificate chain and key: HTTPS. Required for an address that is not loopback.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    #[serde(default)]
    pub key_file: Option<PathBuf>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            listen: default_listen(),
            token_file: None,
            users_file: None,
            cert_file: None,
            key_file: None,
        }
    }
}

fn default_listen() -> String {
    "127.0.0.1:8600".to_string()
}

impl ServeConfig {
    /// The address to bind, checked: TLS set as a pair, and set for anything but loopback;
    /// some way to authenticate.
    pub fn checked_listen(&self, listen: Option<&str>) -> Result<SocketAddr, String> {
        let text = listen.unwrap_or(&self.listen);
        let addr: SocketAddr = text
            .parse()
            .map_err(|e| format!("serve listen address {text:?} is not host:port ({e})"))?;
        if self.cert_file.is_some() != self.key_file.is_some() {
            return Err(
                "serve.cert_file and serve.key_file go together: set both or neither".into(),
            );
        }
        if !addr.ip().is_loopback() && self.cert_file.is_none() {
            return Err(format!(
                "serve would listen on {addr}, which is not loopback, without TLS; set \
                 serve.cert_file and serve.key_file, or listen on 127.0.0.1 behind a reverse proxy"
            ));
        }
        if self.token_file.is_none() && self.users_file.is_none() {
            return Err(
                "serve needs a way to authenticate: set serve.token_file or serve.users_file"
                    .into(),
            );
        }
        Ok(addr)
    }

    pub fn tls(&self) -> bool {
        self.cert_file.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(toml_text: &str) -> ServeConfig {
        toml::from_str(toml_text).expect("serve config")
    }

    #[test]
    fn non_loopback_without_tls_is_refused_and_loopback_is_not() {
        let c = cfg("token_file = \"/t\"");
        assert_eq!(
            c.checked_listen(None).expect("default"),
            "127.0.0.1:8600".parse().unwrap()
        );
        assert!(c
            .checked_listen(Some("0.0.0.0:8600"))
            .unwrap_err()
            .contains("not loopback"));
        let t = cfg("token_file = \"/t\"\ncert_file = \"/c\"\nkey_file = \"/k\"");
        assert!(t.checked_listen(Some("0.0.0.0:8600")).is_ok());
        let half = cfg("token_file = \"/t\"\ncert_file = \"/c\"");
        assert!(half.checked_listen(None).unwrap_err().contains("together"));
        assert!(cfg("")
            .checked_listen(None)
            .unwrap_err()
            .contains("authenticate"));
    }
}
