//! Before any host is changed: the bundle's etcd against the versions the running members
//! report. A downgrade, a jump of more than one minor version or another major version stops
//! the run here; an upgrade is said as a note (`etcd 3.4.23 → 3.5.1 on cp1, cp2, cp3`) and
//! the etcd phase carries it out by installing the new binary.

use std::time::Duration;

use tokio::task::JoinSet;

use super::bundle_etcd_version::{self, ReadOn};
use super::event::Event;
use super::playbook::Phase;
use super::run_context::Engine;
use super::run_error::RunError;
use crate::bundle::Bundle;
use crate::components::{self, ComponentId};
use crate::etcd::version::EtcdVersion;
use crate::etcd::{self, ClientTls};
use crate::inventory::Inventory;
use crate::planning::etcd_upgrade::{self, Decision, MemberVersion};
use crate::planning::membership;

/// One status request (a new cluster: nothing answers).
const PRECHECK: Duration = Duration::from_secs(2);

/// The bundle file whose version is checked.
const ETCD: &str = "etcd";

/// Each etcd host of the inventory with the version its member reports, asked all at once.
async fn member_versions(inv: &Inventory, tls: &ClientTls) -> Vec<MemberVersion> {
    let mut tasks = JoinSet::new();
    let endpoints = membership::client_endpoints(inv);
    for (i, (host, ep)) in endpoints.iter().cloned().enumerate() {
        let tls = tls.clone();
        tasks.spawn(async move {
            let version = etcd::status(&tls, &ep, PRECHECK)
                .await
                .ok()
                .and_then(|s| EtcdVersion::parse(&s.version).ok());
            (i, MemberVersion { host, version })
        });
    }
    let mut out: Vec<Option<MemberVersion>> = endpoints.iter().map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        if let Ok((i, m)) = joined {
            out[i] = Some(m);
        }
    }
    out.into_iter().flatten().collect()
}

impl Engine {
    /// Refuse a bundle whose etcd the running members cannot move to; say an upgrade.
    pub(super) async fn check_etcd_version(
        &self,
        phases: &[Phase],
        bundle: &mut Bundle,
    ) -> Result<(), RunError> {
        let Some(phase) = phases
            .iter()
            .find(|p| p.converge.contains(&ComponentId::Etcd))
        else {
            return Ok(());
        };
        let row = components::component(ComponentId::Etcd);
        let hosts = row.hosts(&self.inventory);
        if hosts.is_empty() || !bundle.has(ETCD) {
            return Ok(());
        }
        let Ok(tls) = ClientTls::from_pki_dir(&self.inventory.pki_dir) else {
            return Ok(());
        };
        let members = member_versions(&self.inventory, &tls).await;
        if members.iter().all(|m| m.version.is_none()) {
            // A new cluster, or one that is down: nothing runs that a binary could not suit.
            return Ok(());
        }
        let artifact = bundle.verify(&phase.name, ETCD)?;
        // Hosts whose member answered first: they are up, so the version is read there soonest.
        let mut order: Vec<_> = hosts
            .iter()
            .map(|h| (h.name.clone(), self.targets[&h.name].clone()))
            .collect();
        order.sort_by_key(|(name, _)| {
            !members
                .iter()
                .any(|m| &m.host == name && m.version.is_some())
        });
        let (version, read_on) = bundle_etcd_version::read(&artifact, &self.pool, &order)
            .await
            .map_err(RunError::BundleEtcdVersion)?;
        match etcd_upgrade::decide(&version, &members)? {
            Decision::Current => Ok(()),
            Decision::Upgrade(upgrade) => {
                let mut message = upgrade.describe();
                if let ReadOn::Host(h) = read_on {
                    message.push_str(&format!(
                        " (the bundle's etcd does not run on this machine: its version was read on {h})"
                    ));
                }
                self.emit(Event::Note {
                    phase: phase.name.clone(),
                    message,
                });
                Ok(())
            }
        }
    }
}
