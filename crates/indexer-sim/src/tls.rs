//! The throwaway CA and the server certificate (naming `localhost`, `127.0.0.1`, `::1`), and
//! rustls server configurations for it. `receiver-sim` (the delivery tests' receivers) uses
//! the same [`Pki`].
//!
//! Promise: a client that pins the returned CA PEM and checks the host name verifies the
//! server as it would a real Wazuh indexer with its `root-ca.pem`.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::error::SimError;

/// The CA PEM and a ready server configuration.
pub struct Tls {
    pub ca_pem: String,
    pub server: Arc<rustls::ServerConfig>,
}

/// A throwaway CA and a leaf certificate it signed, for servers on loopback.
pub struct Pki {
    ca: Certificate,
    leaf: Certificate,
    leaf_key: KeyPair,
}

impl Pki {
    /// A new CA (its names say `who`) and a leaf for `localhost`, `127.0.0.1` and `::1`.
    pub fn new(who: &str) -> Result<Pki, String> {
        let err = |e: rcgen::Error| e.to_string();
        let ca_key = KeyPair::generate().map_err(err)?;
        let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, format!("SignalFoundry {who}"));
        dn.push(DnType::CommonName, format!("{who} throwaway root CA"));
        ca.distinguished_name = dn;
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca.self_signed(&ca_key).map_err(err)?;

        let leaf_key = KeyPair::generate().map_err(err)?;
        let mut leaf = CertificateParams::new(vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            "::1".to_string(),
        ])
        .map_err(err)?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "localhost");
        leaf.distinguished_name = dn;
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        leaf.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        let leaf_cert = leaf.signed_by(&leaf_key, &ca_cert, &ca_key).map_err(err)?;
        Ok(Pki {
            ca: ca_cert,
            leaf: leaf_cert,
            leaf_key,
        })
    }

    /// The CA certificate, PEM (what a client pins).
    pub fn ca_pem(&self) -> String {
        self.ca.pem()
    }

    /// The leaf certificate then the CA, PEM: a server's certificate file (the console's test).
    pub fn chain_pem(&self) -> String {
        format!("{}{}", self.leaf.pem(), self.ca.pem())
    }

    /// The leaf's private key, PKCS#8 PEM.
    pub fn key_pem(&self) -> String {
        self.leaf_key.serialize_pem()
    }

    /// A server configuration presenting the leaf (and the CA), offering `alpn`.
    pub fn server_config(&self, alpn: &[&[u8]]) -> Result<Arc<rustls::ServerConfig>, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_single_cert(
                vec![self.leaf.der().clone(), self.ca.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.leaf_key.serialize_der())),
            )
            .map_err(|e| e.to_string())?;
        server.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(server))
    }
}

/// Makes a new CA and a leaf certificate signed by it, and the HTTPS configuration.
pub fn make() -> Result<Tls, SimError> {
    let pki = Pki::new("indexer-sim").map_err(SimError::Tls)?;
    Ok(Tls {
        ca_pem: pki.ca_pem(),
        server: pki.server_config(&[b"http/1.1"]).map_err(SimError::Tls)?,
    })
}
