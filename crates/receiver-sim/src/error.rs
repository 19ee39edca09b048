//! `Error`: why the receivers could not start or a setting was refused.

/// What went wrong starting the receivers or changing their settings.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot make the throwaway TLS certificates: {0}")]
    Tls(String),
    #[error("cannot start the receivers' runtime: {0}")]
    Runtime(std::io::Error),
    #[error("invalid configuration: {0}")]
    Config(String),
}
