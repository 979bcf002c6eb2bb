//! The TLS side of talking to etcd: the etcd CA as the only trust root, and (for etcd) the
//! operator's client certificate, on the aws-lc-rs provider.

use std::path::Path;
use std::sync::Arc;

use rustls::ClientConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::error::EtcdError;

/// Where the operator's etcd client credentials live in the PKI dir.
pub const CA_FILE: &str = "etcd/ca.crt";
pub const CLIENT_CERT_FILE: &str = "etcd/healthcheck-client.crt";
pub const CLIENT_KEY_FILE: &str = "etcd/healthcheck-client.key";

/// A ready TLS client configuration: whom to trust, and which certificate to present.
#[derive(Clone)]
pub struct ClientTls {
    pub(crate) config: Arc<ClientConfig>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The config holds a private key: show nothing of it.
        f.write_str("ClientTls { .. }")
    }
}

impl ClientTls {
    /// Trust only `ca_pem`; present `cert_pem` (with `key_pem`) as the client certificate.
    pub fn from_pem(
        ca_pem: &[u8],
        cert_pem: &[u8],
        key_pem: &[u8],
    ) -> Result<ClientTls, EtcdError> {
        client_config(ca_pem, Some((cert_pem, key_pem))).map(|c| ClientTls {
            config: Arc::new(c),
        })
    }

    /// Trust only `ca_pem` and present no client certificate.
    pub fn without_client_cert(ca_pem: &[u8]) -> Result<ClientTls, EtcdError> {
        client_config(ca_pem, None).map(|c| ClientTls {
            config: Arc::new(c),
        })
    }

    /// The operator's etcd client credentials from a kinit PKI dir: `etcd/ca.crt` and
    /// `etcd/healthcheck-client.{crt,key}`.
    pub fn from_pki_dir(pki_dir: &Path) -> Result<ClientTls, EtcdError> {
        let read = |name: &str| {
            let path = pki_dir.join(name);
            std::fs::read(&path).map_err(|source| EtcdError::MissingFile { path, source })
        };
        let ca = read(CA_FILE)?;
        let cert = read(CLIENT_CERT_FILE)?;
        let key = read(CLIENT_KEY_FILE)?;
        ClientTls::from_pem(&ca, &cert, &key)
    }
}

fn bad(what: &str) -> impl FnOnce(String) -> EtcdError + '_ {
    move |message| EtcdError::BadPem {
        what: what.to_string(),
        message,
    }
}

/// A rustls client config trusting exactly the certificates in `ca_pem`.
pub(crate) fn client_config(
    ca_pem: &[u8],
    client: Option<(&[u8], &[u8])>,
) -> Result<ClientConfig, EtcdError> {
    let mut roots = rustls::RootCertStore::empty();
    let mut count = 0;
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        let cert = cert.map_err(|e| bad("the CA certificate")(e.to_string()))?;
        roots
            .add(cert)
            .map_err(|e| bad("the CA certificate")(e.to_string()))?;
        count += 1;
    }
    if count == 0 {
        return Err(bad("the CA certificate")("no PEM certificate found".into()));
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad("TLS setup")(e.to_string()))?
        .with_root_certificates(roots);
    match client {
        None => Ok(builder.with_no_client_auth()),
        Some((cert_pem, key_pem)) => {
            let chain = CertificateDer::pem_slice_iter(cert_pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| bad("the client certificate")(e.to_string()))?;
            if chain.is_empty() {
                return Err(bad("the client certificate")(
                    "no PEM certificate found".into(),
                ));
            }
            // Never echo the key's contents: only say it could not be read.
            let key = PrivateKeyDer::from_pem_slice(key_pem)
                .map_err(|_| bad("the client key")("not a PEM private key".into()))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| bad("the client certificate and key")(e.to_string()))
        }
    }
}
