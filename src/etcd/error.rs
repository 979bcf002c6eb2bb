//! What went wrong talking to an etcd member (or any HTTPS endpoint), always naming it.

use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    #[error("cannot read {}: {source}; run `kinit certs generate` to create it", path.display())]
    MissingFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: {message}")]
    BadPem { what: String, message: String },
    #[error("{endpoint}: not a usable endpoint: {reason}")]
    BadEndpoint { endpoint: String, reason: String },
    #[error("{endpoint}: cannot connect: {source}")]
    Connect {
        endpoint: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{endpoint}: the server's certificate is not trusted: {message}")]
    ServerNotTrusted { endpoint: String, message: String },
    #[error(
        "{endpoint}: the server refused our client certificate ({message}); is it signed by this cluster's etcd CA?"
    )]
    ClientRefused { endpoint: String, message: String },
    #[error("{endpoint}: TLS failed: {message}")]
    Tls { endpoint: String, message: String },
    #[error("{endpoint}: no answer within {}s", after.as_secs_f32())]
    Timeout { endpoint: String, after: Duration },
    #[error("{endpoint}: connection failed: {source}")]
    Io {
        endpoint: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{endpoint}: HTTP {status}: {body}")]
    Http {
        endpoint: String,
        status: u16,
        /// The start of the response body.
        body: String,
    },
    #[error("{endpoint}: unexpected answer: {message}")]
    Protocol { endpoint: String, message: String },
}

impl EtcdError {
    /// Which endpoint the error is about, when it is about one.
    pub fn endpoint(&self) -> Option<&str> {
        match self {
            EtcdError::MissingFile { .. } | EtcdError::BadPem { .. } => None,
            EtcdError::BadEndpoint { endpoint, .. }
            | EtcdError::Connect { endpoint, .. }
            | EtcdError::ServerNotTrusted { endpoint, .. }
            | EtcdError::ClientRefused { endpoint, .. }
            | EtcdError::Tls { endpoint, .. }
            | EtcdError::Timeout { endpoint, .. }
            | EtcdError::Io { endpoint, .. }
            | EtcdError::Http { endpoint, .. }
            | EtcdError::Protocol { endpoint, .. } => Some(endpoint),
        }
    }

    /// etcd refused to promote a learner because it lags the leader (retry later).
    pub fn is_learner_not_in_sync(&self) -> bool {
        matches!(self, EtcdError::Http { body, .. } if body.contains("in sync with leader"))
    }

    /// etcd refused a membership change because the cluster looks unhealthy right now (members
    /// that just started); it accepts it a few seconds later.
    pub fn is_unhealthy_cluster(&self) -> bool {
        matches!(self, EtcdError::Http { body, .. } if body.contains("unhealthy cluster"))
    }

    /// An I/O error from a TLS stream, sorted into what the operator can act on.
    pub(crate) fn from_tls_io(endpoint: &str, e: std::io::Error) -> EtcdError {
        let endpoint = endpoint.to_string();
        let Some(tls) = e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        else {
            return EtcdError::Io {
                endpoint,
                source: e,
            };
        };
        let message = tls.to_string();
        match tls {
            rustls::Error::InvalidCertificate(_) => {
                EtcdError::ServerNotTrusted { endpoint, message }
            }
            rustls::Error::AlertReceived(alert) if is_client_cert_alert(*alert) => {
                EtcdError::ClientRefused { endpoint, message }
            }
            _ => EtcdError::Tls { endpoint, message },
        }
    }
}

/// Alerts a server sends when it rejects the client's certificate (Go's crypto/tls sends
/// bad_certificate; TLS 1.3 servers may send certificate_required or unknown_ca).
fn is_client_cert_alert(alert: rustls::AlertDescription) -> bool {
    use rustls::AlertDescription as A;
    matches!(
        alert,
        A::BadCertificate
            | A::UnknownCA
            | A::CertificateRequired
            | A::CertificateUnknown
            | A::UnsupportedCertificate
            | A::AccessDenied
    )
}
