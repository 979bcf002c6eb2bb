//! Where each etcd host's old data went, so that a restore failing half way can say so.

use std::collections::BTreeMap;

use crate::lifecycle::snapshot::SnapshotError;

/// What became of a host's old data dir.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum OldData {
    /// Not moved: still at the data dir (or there was none).
    Untouched,
    Moved(String),
    /// The step failed on this host; if the data was moved, it is here.
    Unknown(String),
}

/// Where every etcd host's old data is, for an error after the restore began.
fn old_data_text(data_dir: &str, old: &BTreeMap<String, OldData>) -> Vec<String> {
    old.iter()
        .map(|(host, o)| match o {
            OldData::Untouched => {
                format!("{host}: not moved (still at {data_dir}, if there was any)")
            }
            OldData::Moved(p) => format!("{host}: moved to {p}"),
            OldData::Unknown(p) => format!(
                "{host}: at {data_dir}, or moved to {p} (the step failed there; look at both)"
            ),
        })
        .collect()
}

/// A failure after the stop step began, with where every host's old data went.
pub(super) fn half_way(
    error: SnapshotError,
    data_dir: &str,
    old: &BTreeMap<String, OldData>,
) -> SnapshotError {
    if matches!(error, SnapshotError::Interrupted) {
        return error;
    }
    SnapshotError::HalfWay {
        error: Box::new(error),
        old_data: old_data_text(data_dir, old),
    }
}
