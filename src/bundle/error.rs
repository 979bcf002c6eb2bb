//! What can stop `kinit bundle fetch|import|verify|list`.

use std::path::PathBuf;

use super::BundleError;
use super::manifest::ManifestError;

#[derive(Debug, thiserror::Error)]
pub enum OpError {
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// A request that kept failing (after the retries).
    #[error("GET {url}: {reason} (tried {attempts} times)")]
    Http {
        url: String,
        reason: String,
        attempts: u32,
    },
    #[error("GET {url}: the server answered {status}{}", if *status == 404 {
        "; check the version and, with --mirror, that the mirror has upstream's layout"
    } else { "" })]
    Status { url: String, status: u16 },
    #[error(
        "GET {url}: the connection was cut after {got} of {} bytes (tried {attempts} times); \
         run the same command again to resume from {}",
        total.map(|t| t.to_string()).unwrap_or_else(|| "?".into()),
        part.display()
    )]
    Cut {
        url: String,
        got: u64,
        total: Option<u64>,
        attempts: u32,
        part: PathBuf,
    },
    #[error(
        "{file}: sha256 is {actual}, but {checksum_url} says {expected}: the download is damaged \
         or the checksum file is wrong; nothing was added to the bundle"
    )]
    Mismatch {
        file: String,
        expected: String,
        actual: String,
        checksum_url: String,
    },
    #[error("{url} is not a checksum file for {asset}: {reason}")]
    BadChecksumFile {
        url: String,
        asset: String,
        reason: String,
    },
    #[error("{archive}: {reason}")]
    Archive { archive: String, reason: String },
    #[error("{file}: cannot tell its version: {reason}")]
    Version { file: String, reason: String },
    #[error("{file} is built for {found}, but the bundle is for {expected}")]
    WrongArch {
        file: String,
        expected: String,
        found: String,
    },
    #[error("{file} says it is {found}, but it came from the {component} {expected} release")]
    NotTheRelease {
        file: String,
        component: String,
        expected: String,
        found: String,
    },
    #[error("{file}: kinit does not know which component this is (it takes {known})")]
    UnknownFile { file: String, known: String },
    #[error("{}: {reason}", dir.display())]
    Inconsistent { dir: PathBuf, reason: String },
    #[error("cannot start the HTTP client: {0}")]
    Client(String),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Bundle(#[from] BundleError),
}

impl OpError {
    pub fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| OpError::Io {
            action,
            path,
            source,
        }
    }
}
