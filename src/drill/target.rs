//! What a drill takes down, chosen from the live status, and the guards that refuse a drill
//! before anything changes: a degraded cluster, etcd's quorum, nobody left to take over (for a
//! node: no other node for its pods).
//! Pure: the inventory and a status report in, a target or a refusal out.

use serde::Serialize;

use super::error::DrillError;
use super::kind::DrillKind;
use crate::components::{ComponentId, component};
use crate::inventory::Inventory;
use crate::planning::quorum::{Fate, Seat, tally};
use crate::status::StatusReport;

/// The unit a drill stops on one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    pub host: String,
    /// The component table's name for it (`keepalived`, `etcd`, `kube-apiserver`).
    pub component: &'static str,
    pub unit: &'static str,
    /// Start it without waiting for it to report ready (the table's `no_block`).
    #[serde(skip)]
    pub no_block: bool,
}

fn component_id(kind: &DrillKind) -> ComponentId {
    match kind {
        DrillKind::VipHolder => ComponentId::Keepalived,
        DrillKind::EtcdLeader => ComponentId::Etcd,
        DrillKind::Apiserver(_) => ComponentId::KubeApiserver,
        DrillKind::Node(_) => ComponentId::Kubelet,
    }
}

/// Refuse when `status` lists any problem: a drill on a degraded cluster proves nothing and
/// may take down its last good piece.
pub fn healthy_enough(status: &StatusReport) -> Result<(), DrillError> {
    let problems = status.problems();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(DrillError::Degraded { problems })
    }
}

/// The target of `kind` in this cluster as `status` found it, after every guard.
pub fn choose(
    inv: &Inventory,
    kind: &DrillKind,
    status: &StatusReport,
) -> Result<Target, DrillError> {
    let drill = kind.name().to_string();
    let row = component(component_id(kind));
    let hosts = row.hosts(inv);
    let Some(unit) = row.units.first() else {
        return Err(DrillError::NotApplicable {
            drill,
            needs: format!("{} as a systemd unit", row.name),
        });
    };
    if hosts.is_empty() {
        let needs = match row.when {
            Some(c) => format!("{} as a systemd unit, and {}", row.name, c.unmet()),
            None => format!("{} on some host", row.name),
        };
        return Err(DrillError::NotApplicable { drill, needs });
    }
    let host = match kind {
        DrillKind::VipHolder => {
            let holders = status
                .vip
                .as_ref()
                .map(|v| v.holders.clone())
                .unwrap_or_default();
            single(&drill, "VIP holder", holders)?
        }
        DrillKind::EtcdLeader => single(&drill, "etcd leader", status.etcd.leaders.clone())?,
        DrillKind::Apiserver(h) | DrillKind::Node(h) => {
            if !hosts.iter().any(|x| &x.name == h) {
                return Err(DrillError::UnknownHost {
                    host: h.clone(),
                    runs: row.name,
                    known: hosts
                        .iter()
                        .map(|x| x.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
            h.clone()
        }
    };
    if hosts.len() < 2 {
        return Err(DrillError::NoStandby {
            drill,
            what: format!("{} host", row.name),
            target: host,
        });
    }
    if !hosts.iter().any(|x| x.name == host) {
        return Err(DrillError::NoTarget {
            drill,
            what: row.name.to_string(),
            found: format!("{host} is not a {} host of cluster.yaml", row.name),
        });
    }
    keeps_quorum(kind, &host, status)?;
    Ok(Target {
        host,
        component: row.name,
        unit: unit.name,
        no_block: unit.no_block,
    })
}

fn single(drill: &str, what: &str, found: Vec<String>) -> Result<String, DrillError> {
    match <[String; 1]>::try_from(found) {
        Ok([one]) => Ok(one),
        Err(found) => Err(DrillError::NoTarget {
            drill: drill.to_string(),
            what: what.to_string(),
            found: if found.is_empty() {
                "none".to_string()
            } else {
                found.join(", ")
            },
        }),
    }
}

/// The quorum guard's arithmetic (`planning::quorum`): the drill's host pauses when the drill
/// stops etcd; every other member serves as healthy as it is now.
pub fn keeps_quorum(kind: &DrillKind, host: &str, status: &StatusReport) -> Result<(), DrillError> {
    let stops_etcd = matches!(kind, DrillKind::EtcdLeader);
    let seats: Vec<Seat> = status
        .etcd
        .members
        .iter()
        .map(|m| Seat {
            name: m.name.clone(),
            healthy: m.healthy,
            learner: m.learner,
            fate: if stops_etcd && m.name == host {
                Fate::Pauses
            } else {
                Fate::Stays
            },
        })
        .collect();
    if seats.is_empty() {
        return Ok(());
    }
    let t = tally(&seats);
    if t.keeps_majority() {
        Ok(())
    } else {
        Err(DrillError::WouldLoseQuorum {
            drill: kind.name().to_string(),
            target: host.to_string(),
            tally: Box::new(t),
        })
    }
}

#[cfg(test)]
mod tests;
