//! What a restore reads from its members: the check's verdict before anything changes, where
//! each member's old data went, and the wait for one healthy cluster.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::RestoreSettings;
use super::old_data::OldData;
use crate::engine::lifecycle_step::HostAction;
use crate::etcd::{self, ClientTls};
use crate::inventory::Inventory;
use crate::lifecycle::reset::ForeignData;
use crate::lifecycle::snapshot::SnapshotError;

/// Step 0's verdict on one etcd host (what its check step found): whether its data dir is a
/// mount point, or why it cannot be restored.
pub(super) fn checked_host(host: &str, found: &[HostAction]) -> Result<bool, SnapshotError> {
    let mut mount = false;
    for a in found {
        match a {
            HostAction::ForeignData { dir, found } => {
                return Err(SnapshotError::ForeignData {
                    host: host.to_string(),
                    data: ForeignData {
                        dir: dir.clone(),
                        found: found.clone(),
                    },
                });
            }
            HostAction::Failed(what) => {
                return Err(SnapshotError::host(
                    host,
                    "check",
                    format!("could not {what}; nothing was changed on any host"),
                ));
            }
            HostAction::MountPoint(_) => mount = true,
            _ => {}
        }
    }
    Ok(mount)
}

/// Where one member's old data is after its restore step: `done` is what the step did, or
/// (when it stopped) whether it stopped before etcd's data dir was reached.
pub(super) fn old_data_after(done: Result<&[HostAction], bool>, aside: &str) -> OldData {
    match done {
        Ok(done) => done
            .iter()
            .find_map(|a| match a {
                HostAction::Move { to, .. } => Some(OldData::Moved(to.clone())),
                _ => None,
            })
            .unwrap_or(OldData::Untouched),
        Err(true) => OldData::Untouched,
        Err(false) => OldData::Unknown(aside.to_string()),
    }
}

/// Poll every member until all are healthy, in one cluster, following one leader.
pub(super) async fn wait_healthy(
    inv: &Inventory,
    tls: &ClientTls,
    settings: &RestoreSettings,
    cancel: &CancellationToken,
) -> Result<(u64, BTreeMap<String, etcd::MemberStatus>), SnapshotError> {
    let deadline = Instant::now() + settings.wait;
    let members = inv.etcd_members();
    loop {
        let mut statuses = BTreeMap::new();
        let mut problems = Vec::new();
        for m in &members {
            let ep = m.client_url();
            match (
                etcd::health(tls, &ep, settings.etcd_timeout).await,
                etcd::status(tls, &ep, settings.etcd_timeout).await,
            ) {
                (Ok(true), Ok(s)) => {
                    statuses.insert(m.name.clone(), s);
                }
                (Ok(false), _) => problems.push(format!("{}: not healthy yet", m.name)),
                (Err(e), _) | (_, Err(e)) => problems.push(format!("{}: {e}", m.name)),
            }
        }
        if problems.is_empty() {
            let first = statuses.values().next().expect("members");
            let (cluster, leader) = (first.cluster_id, first.leader);
            let one_cluster = statuses
                .values()
                .all(|s| s.cluster_id == cluster && s.leader == leader && leader != 0);
            if one_cluster {
                return Ok((cluster, statuses));
            }
            problems.push("members do not agree on the cluster and its leader yet".into());
        }
        if Instant::now() >= deadline {
            return Err(SnapshotError::host(
                "etcd",
                "wait for the restored cluster",
                format!(
                    "not healthy within {}s: {}",
                    settings.wait.as_secs(),
                    problems.join("; ")
                ),
            ));
        }
        tokio::select! {
            () = cancel.cancelled() => return Err(SnapshotError::Interrupted),
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}
