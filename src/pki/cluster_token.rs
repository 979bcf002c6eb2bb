//! etcd's initial-cluster-token: a random value made once per cluster and kept beside the etcd
//! CA, so members of two clusters on one network never join each other, and every later render
//! gives the same config (a re-run restarts nothing).

use std::path::Path;

use super::PkiError;
use crate::fsutil::{Existing, write_atomic};

/// Relative to the PKI dir.
pub const FILE: &str = "etcd/cluster-token";

/// The stored token, if there is one.
pub fn load(pki_dir: &Path) -> Result<Option<String>, PkiError> {
    let path = pki_dir.join(FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let token = text.trim().to_string();
            if token.is_empty() || !token.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                return Err(PkiError::invalid(
                    path,
                    "not a cluster token (letters, digits and `-` only)",
                ));
            }
            Ok(Some(token))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(PkiError::io(path)(e)),
    }
}

/// The stored token, made now (`<cluster>-<16 random bytes in hex>`) when there is none.
pub fn load_or_create(pki_dir: &Path, cluster: &str) -> Result<String, PkiError> {
    if let Some(token) = load(pki_dir)? {
        return Ok(token);
    }
    let token = fresh(pki_dir, cluster)?;
    let path = pki_dir.join(FILE);
    if let Some(dir) = path.parent() {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(super::table::DIR_MODE)
            .create(dir)
            .map_err(PkiError::io(dir))?;
    }
    match write_atomic(
        &path,
        format!("{token}\n").as_bytes(),
        0o600,
        Existing::Keep,
    ) {
        Ok(()) => Ok(token),
        // Another run made it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            load(pki_dir)?.ok_or_else(|| PkiError::invalid(path, "vanished after being created"))
        }
        Err(e) => Err(PkiError::io(path)(e)),
    }
}

/// A new random token (`<cluster>-<16 random bytes in hex>`).
fn fresh(pki_dir: &Path, cluster: &str) -> Result<String, PkiError> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes)
        .map_err(|_| PkiError::invalid(pki_dir.join(FILE), "no randomness available"))?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("{cluster}-{hex}"))
}

/// A new token for a restored cluster (it must never meet its old members: a new token gives
/// it a new cluster ID), not yet stored: [`store`] keeps it once the restore has started, so a
/// restore that stops before touching a host leaves the cluster's token as it was.
pub fn new_token(pki_dir: &Path, cluster: &str) -> Result<String, PkiError> {
    fresh(pki_dir, cluster)
}

/// Replace the stored token with `token` (atomically, 0600).
pub fn store(pki_dir: &Path, token: &str) -> Result<(), PkiError> {
    let path = pki_dir.join(FILE);
    if let Some(dir) = path.parent() {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(super::table::DIR_MODE)
            .create(dir)
            .map_err(PkiError::io(dir))?;
    }
    write_atomic(
        &path,
        format!("{token}\n").as_bytes(),
        0o600,
        Existing::Replace,
    )
    .map_err(PkiError::io(&path))
}
