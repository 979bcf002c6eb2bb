//! etcd snapshots: `save` takes one on a healthy member with the tools etcd ships and streams it
//! here (checked on arrival: etcd's own integrity hash, and the sha256 the host computed);
//! `restore` brings every member back from one, even when the cluster is dead.

pub mod restore;
pub mod save;

use std::path::PathBuf;

use crate::etcd::snapshot_file::SnapshotFileError;
use crate::pki::PkiError;
use crate::ssh::SshError;

/// Where the snapshot goes on a member while it is taken or restored from: root's, 0700.
pub const HOST_WORK_DIR: &str = crate::host_paths::SNAPSHOT_WORK_DIR;

/// What `save` and `restore` put in [`HOST_WORK_DIR`] (shell patterns): the uploaded snapshot a
/// restore reads (`restore-<stamp>.db`) and the private directory a save takes one into.
pub const HOST_WORK_NAMES: &[&str] = &["restore-*.db", "save.*"];

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("cluster.yaml has no etcd host: there is no etcd to snapshot or restore")]
    NoEtcdHosts,
    #[error("no etcd member is healthy ({0}); a snapshot needs one that serves reads")]
    NoHealthyMember(String),
    #[error(transparent)]
    File(#[from] SnapshotFileError),
    #[error(
        "{path}: etcd's integrity hash is missing (not a file written by `etcdctl snapshot save` \
         or `kinit etcd snapshot save`, or cut short); refusing to restore from it"
    )]
    NoIntegrityHash { path: PathBuf },
    #[error("host {host}: {step}: {message}")]
    Host {
        host: String,
        step: String,
        message: String,
    },
    #[error("{path}: {source}")]
    Local {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the snapshot arrived changed: sha256 {local} here, {remote} on {host}; nothing was kept"
    )]
    TransferMismatch {
        host: String,
        local: String,
        remote: String,
    },
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error(transparent)]
    Ssh(#[from] SshError),
    #[error("{0}")]
    Render(String),
    #[error("{} already exists; nothing was replaced (choose another name)", path.display())]
    Exists { path: PathBuf },
    #[error("interrupted")]
    Interrupted,
    /// Another run holds the cluster lock (named), or a host did not answer while it was taken.
    #[error(transparent)]
    Locked(crate::engine::cluster_lock::LockFailure),
    /// etcd's data dir on a host holds what etcd does not put there (found before anything
    /// changed).
    #[error(
        "host {host}: {data}: the restore stopped before changing anything on any host; move \
         what is not etcd's out of it (or set spec.etcd.dataDir to etcd's own directory) and \
         restore again"
    )]
    ForeignData {
        host: String,
        data: crate::lifecycle::reset::ForeignData,
    },
    /// A restore that failed after it began changing hosts: where every host's old data is.
    #[error(
        "{error}; etcd's old data: {}; the control plane stays stopped (its units, or its \
         manifests in the restore's waiting dir) until a restore finishes",
        .old_data.join("; ")
    )]
    HalfWay {
        error: Box<SnapshotError>,
        old_data: Vec<String>,
    },
}

impl From<crate::engine::cluster_lock::LockFailure> for SnapshotError {
    fn from(e: crate::engine::cluster_lock::LockFailure) -> Self {
        match e {
            crate::engine::cluster_lock::LockFailure::Interrupted => SnapshotError::Interrupted,
            e => SnapshotError::Locked(e),
        }
    }
}

impl SnapshotError {
    fn host(host: &str, step: &str, message: impl Into<String>) -> SnapshotError {
        SnapshotError::Host {
            host: host.to_string(),
            step: step.to_string(),
            message: message.into(),
        }
    }
}

/// A command's last stderr lines, for an error message.
fn stderr_tail(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.trim_end().lines().collect();
    lines[lines.len().saturating_sub(6)..].join(" / ")
}

/// UTC now as `YYYYMMDDTHHMMSSZ` (sorts by time, fits in a file name).
pub fn utc_stamp(now: std::time::SystemTime) -> String {
    let secs = now
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Howard Hinnant's days-to-civil: the proleptic Gregorian date of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn stamps_are_utc_calendar_times() {
        assert_eq!(utc_stamp(UNIX_EPOCH), "19700101T000000Z");
        // 2026-11-27 12:34:56 UTC
        let t = UNIX_EPOCH + Duration::from_secs(1_795_782_896);
        assert_eq!(utc_stamp(t), "20261127T123456Z");
        // A leap day.
        let t = UNIX_EPOCH + Duration::from_secs(1_709_208_000);
        assert_eq!(utc_stamp(t), "20240229T120000Z");
    }
}
