//! `kinit etcd snapshot restore --dry-run`: every host answered, the templates rendered and
//! step 0's checks passed (each its own verdict, as a real restore would give it), then what a
//! restore would do per host. Takes no lock, keeps no token and changes nothing.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use super::manifests_to_move;
use super::steps::{EtcdConfig, Restoring};
use crate::components;
use crate::config::Role;
use crate::host_paths;
use crate::inventory::EtcdMember;
use crate::lifecycle::reset::aside_path;

/// What a restore would do.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RestorePlan {
    pub snapshot: PathBuf,
    pub revision: i64,
    pub total_keys: u64,
    /// In the order a restore works through them: every etcd and control-plane host.
    pub hosts: Vec<PlannedHost>,
}

/// One host's part in a restore.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedHost {
    pub host: String,
    /// Units stopped before etcd, started again once it is healthy.
    pub units_stopped: Vec<String>,
    /// Static-pod manifests held in `aside` meanwhile.
    pub manifests_aside: Vec<String>,
    pub aside: String,
    /// Its etcd member, when it has one.
    pub member: Option<PlannedMember>,
}

/// What happens to one etcd member.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedMember {
    pub data_dir: String,
    /// The data dir is a mount point: only its contents move, the directory stays.
    pub mount_point: bool,
    /// Where the current data goes (kept).
    pub moved_to: String,
    pub peer_url: String,
    /// etcd's config, written again with the new cluster token.
    pub config: String,
}

impl Restoring<'_> {
    /// The plan, once the templates rendered (`configs`) and every etcd host passed step 0's
    /// checks (`mounts`: whether each data dir is a mount point).
    pub(super) fn plan(
        &self,
        configs: &BTreeMap<String, EtcdConfig>,
        mounts: &BTreeMap<String, bool>,
    ) -> RestorePlan {
        let data_dir = self.inv.etcd.data_dir.as_str();
        let moved_to = aside_path(data_dir, &self.settings.stamp, "restore");
        let hosts = self
            .involved
            .iter()
            .map(|h| {
                let (units, _) = components::stopped_for_restore(self.inv, h);
                let member = h.has(Role::Etcd).then(|| PlannedMember {
                    data_dir: data_dir.to_string(),
                    mount_point: mounts.get(&h.name).copied().unwrap_or(false),
                    moved_to: moved_to.clone(),
                    peer_url: EtcdMember {
                        name: h.name.clone(),
                        address: h.address,
                    }
                    .peer_url(),
                    config: configs
                        .get(&h.name)
                        .map(|(path, _, _)| path.clone())
                        .unwrap_or_default(),
                });
                PlannedHost {
                    host: h.name.clone(),
                    units_stopped: units.into_iter().map(str::to_string).collect(),
                    manifests_aside: manifests_to_move(self.inv, h)
                        .into_iter()
                        .map(str::to_string)
                        .collect(),
                    aside: host_paths::MANIFESTS_ASIDE_DIR.to_string(),
                    member,
                }
            })
            .collect();
        RestorePlan {
            snapshot: self.file.to_path_buf(),
            revision: self.status.revision,
            total_keys: self.status.total_keys,
            hosts,
        }
    }
}
