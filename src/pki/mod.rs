//! The cluster PKI, built on the operator machine: cfssl-style profiles (`certs/`) turned into
//! kubeadm-compatible certificates with rcgen, kept in an on-disk store laid out per host exactly
//! as each host's `/etc/kubernetes/` must look.
//!
//! Nothing here prints; key material never appears in errors or reports.

pub mod algorithm;
pub mod authority;
pub mod cfssl;
pub mod cluster_token;
pub mod expiry;
pub mod generate;
pub mod inspect;
pub mod issue;
pub mod kubeconfig;
pub mod parallel;
pub mod profiles;
pub mod store;
pub mod table;

use std::path::PathBuf;

pub use generate::{Action, Event, GenerateReport, Mode, generate};
pub use table::{CaId, CertSpec, San, certificates};

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{file}: {message}")]
    Profile { file: String, message: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Crypto {
        what: String,
        #[source]
        source: rcgen::Error,
    },
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
    #[error("{0}")]
    Refused(String),
}

impl PkiError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> PkiError {
        let path = path.into();
        move |source| PkiError::Io { path, source }
    }

    pub(crate) fn crypto(what: impl Into<String>) -> impl FnOnce(rcgen::Error) -> PkiError {
        let what = what.into();
        move |source| PkiError::Crypto { what, source }
    }

    pub(crate) fn invalid(path: impl Into<PathBuf>, message: impl Into<String>) -> PkiError {
        PkiError::Invalid {
            path: path.into(),
            message: message.into(),
        }
    }
}
