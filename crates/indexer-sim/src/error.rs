//! `SimError`: why the simulator could not start or a CLI step failed. Messages name the path.

use std::path::PathBuf;

/// What went wrong starting the simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot read corpus {path}: {source}")]
    CorpusRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("corpus {path} line {line}: {reason}")]
    CorpusLine {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("cannot make the throwaway TLS certificates: {0}")]
    Tls(String),
    #[error("cannot start the simulator runtime: {0}")]
    Runtime(std::io::Error),
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read password file {path}: {source}")]
    PasswordFile {
        path: PathBuf,
        source: std::io::Error,
    },
}
