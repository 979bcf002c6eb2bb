//! Which etcd hosts of cluster.yaml join a running etcd cluster, in which order, and what each
//! join needs first: pure, over the inventory and the live member list, so it is tested without
//! a cluster. `kinit up` carries it out ([`crate::engine::etcd_join`]).

use serde::Serialize;

use crate::config::Role;
use crate::etcd::Member;
use crate::inventory::{EtcdMember, Inventory};

/// One inventory host that is not yet a voting member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Joiner {
    pub host: String,
    pub peer_url: String,
    /// A member of ours for this host that never started (added by a run that failed before
    /// the host's etcd came up): removed first, then added again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stale: Option<u64>,
    /// A learner for this host that already runs (a run stopped before promoting it): only
    /// started and promoted, never added again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub learner: Option<u64>,
}

/// What `kinit up` does with etcd membership on a running cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinPlan {
    /// Hosts whose member votes already.
    pub members: Vec<String>,
    /// Hosts that join, one at a time in this order (config order).
    pub joiners: Vec<Joiner>,
    /// Live members no etcd host of cluster.yaml accounts for: reported, never removed by `up`.
    pub strangers: Vec<Stranger>,
}

/// A live member that is not in cluster.yaml.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stranger {
    /// Hex, as etcdctl prints it.
    pub id: String,
    pub name: String,
    pub peer_urls: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinRefusal {
    #[error(
        "etcd host {host} ({peer_url}) is already etcd member {member} ({id}) under another \
         name: give the host its member's name in cluster.yaml, or remove that member first \
         (`kinit remove`)"
    )]
    AddressTaken {
        host: String,
        peer_url: String,
        member: String,
        id: String,
    },
    #[error(
        "etcd member {host} ({id}) has peer URL(s) {live}, but cluster.yaml puts {host} at \
         {peer_url}: a host's address cannot change in place; remove the member first \
         (`kinit remove`), then add the host again"
    )]
    AddressChanged {
        host: String,
        id: String,
        live: String,
        peer_url: String,
    },
}

impl Stranger {
    fn of(m: &Member) -> Stranger {
        Stranger {
            id: format!("{:x}", m.id),
            name: if m.name.is_empty() {
                "(not started)".into()
            } else {
                m.name.clone()
            },
            peer_urls: m.peer_urls.clone(),
        }
    }
}

impl JoinPlan {
    /// Whether the run changes nothing in etcd's membership.
    pub fn is_settled(&self) -> bool {
        self.joiners.is_empty()
    }

    /// `initial-cluster` for `joiner`, from the member list that already holds it (as
    /// `etcdctl member add` prints it): etcd checks that a joining member lists exactly the
    /// cluster's peer URLs, so members that have not started (no name yet) are listed too.
    pub fn initial_cluster(live: &[Member], joiner: &Joiner) -> String {
        live.iter()
            .flat_map(|m| {
                let name = if m.peer_urls.contains(&joiner.peer_url) {
                    joiner.host.as_str()
                } else {
                    m.name.as_str()
                };
                m.peer_urls.iter().map(move |u| format!("{name}={u}"))
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Plan the joins of the inventory's etcd hosts into the cluster whose members are `live`.
pub fn plan(inv: &Inventory, live: &[Member]) -> Result<JoinPlan, JoinRefusal> {
    let mut plan = JoinPlan {
        members: Vec::new(),
        joiners: Vec::new(),
        strangers: Vec::new(),
    };
    let mut accounted: Vec<u64> = Vec::new();
    for host in inv.with_role(Role::Etcd) {
        let peer_url = EtcdMember {
            name: host.name.clone(),
            address: host.address,
        }
        .peer_url();
        let by_name = live.iter().find(|m| m.name == host.name);
        let by_peer = live
            .iter()
            .find(|m| m.peer_urls.iter().any(|u| u == &peer_url));
        if let Some(m) = by_peer
            && !m.name.is_empty()
            && m.name != host.name
        {
            return Err(JoinRefusal::AddressTaken {
                host: host.name.clone(),
                peer_url,
                member: m.name.clone(),
                id: format!("{:x}", m.id),
            });
        }
        if let Some(m) = by_name
            && !m.peer_urls.iter().any(|u| u == &peer_url)
        {
            return Err(JoinRefusal::AddressChanged {
                host: host.name.clone(),
                id: format!("{:x}", m.id),
                live: m.peer_urls.join(", "),
                peer_url,
            });
        }
        let joiner = |stale, learner| Joiner {
            host: host.name.clone(),
            peer_url: peer_url.clone(),
            stale,
            learner,
        };
        match by_name.or(by_peer) {
            // Started under this name: it serves data and is never removed.
            Some(m) if !m.name.is_empty() => {
                accounted.push(m.id);
                if m.is_learner {
                    plan.joiners.push(joiner(None, Some(m.id)));
                } else {
                    plan.members.push(host.name.clone());
                }
            }
            // Added with this host's peer URL and never started.
            Some(m) => {
                accounted.push(m.id);
                plan.joiners.push(joiner(Some(m.id), None));
            }
            None => plan.joiners.push(joiner(None, None)),
        }
    }
    plan.strangers = live
        .iter()
        .filter(|m| !accounted.contains(&m.id))
        .map(Stranger::of)
        .collect();
    Ok(plan)
}

#[cfg(test)]
mod tests;
