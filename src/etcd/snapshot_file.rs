// TEMPORARY STUB (replaced by the snapfile branch)
use std::path::{Path, PathBuf};
#[derive(Debug, Clone, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotStatus {
    pub hash: u32,
    pub revision: i64,
    pub total_keys: u64,
    pub total_size: u64,
    pub file_size: u64,
    pub sha256: String,
    pub integrity: Integrity,
}
#[derive(Debug, Clone, Copy, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Integrity {
    Verified,
    Absent,
}
#[derive(Debug, thiserror::Error)]
pub enum SnapshotFileError {
    #[error("{path}")]
    Corrupt { path: PathBuf },
}
pub fn inspect(path: &Path) -> Result<SnapshotStatus, SnapshotFileError> {
    Err(SnapshotFileError::Corrupt { path: path.into() })
}
