//! The throwaway CA and the server certificate (naming `localhost`, `127.0.0.1`, `::1`) of
//! `indexer_sim::tls::Pki`, and the rustls configurations of the HTTPS listener and of SMTP's
//! STARTTLS (one certificate for both).
//!
//! Promise: a client that pins the returned CA PEM and checks the host name verifies the
//! receivers as it would the real services with their public certificates.

use std::sync::Arc;

use indexer_sim::tls::Pki;

use crate::error::Error;

/// The CA PEM and the two server configurations (same certificate).
pub struct Tls {
    pub ca_pem: String,
    /// Offers ALPN `http/1.1`.
    pub https: Arc<rustls::ServerConfig>,
    /// No ALPN (SMTP clients send none).
    pub smtp: Arc<rustls::ServerConfig>,
}

/// Makes a new CA and a leaf certificate signed by it.
pub fn make() -> Result<Tls, Error> {
    let pki = Pki::new("receiver-sim").map_err(Error::Tls)?;
    Ok(Tls {
        ca_pem: pki.ca_pem(),
        https: pki.server_config(&[b"http/1.1"]).map_err(Error::Tls)?,
        smtp: pki.server_config(&[]).map_err(Error::Tls)?,
    })
}
