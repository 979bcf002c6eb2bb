//! etcd membership seen from kinit's side: which member belongs to which host, which are healthy,
//! and whether taking some away keeps a quorum. Talks to etcd over mutual TLS only (no SSH).

use std::collections::BTreeSet;
use std::time::Duration;

use serde::Serialize;

use crate::config::Role;
use crate::etcd::{self, ClientTls, Member};
use crate::inventory::{Host, Inventory};

/// How long a removal etcd refuses as unsafe for now is retried.
const RECONFIG_WAIT: Duration = Duration::from_secs(30);

/// A member of the live cluster, with the inventory host it belongs to (by name or peer URL).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveMember {
    /// Hex, as etcdctl prints it.
    pub id: String,
    #[serde(skip)]
    pub raw_id: u64,
    #[serde(skip)]
    pub client_urls: Vec<String>,
    pub name: String,
    pub host: Option<String>,
    pub healthy: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    #[error(
        "etcd answers on none of its members ({endpoints}), so the members of {hosts} cannot be \
         removed first; reset every etcd host together, or bring etcd back (`kinit etcd snapshot \
         restore FILE`) and reset then"
    )]
    NoMemberAnswers { endpoints: String, hosts: String },
    #[error(
        "removing the members of {hosts} would leave {remaining} member(s) of which {healthy} \
         healthy; etcd needs {needed} healthy of {remaining} to stay writable. Bring the \
         unhealthy members back first (`kinit status` shows them), or reset every etcd host"
    )]
    Quorum {
        hosts: String,
        remaining: usize,
        healthy: usize,
        needed: usize,
    },
    #[error(
        "the members of {hosts} must leave etcd first, but there is no etcd client certificate \
         in the PKI dir to ask etcd with; reset every etcd host together, or restore the PKI"
    )]
    NoClient { hosts: String },
    #[error("moving etcd's leadership away from {name}: {source}")]
    Leadership {
        name: String,
        #[source]
        source: Box<etcd::EtcdError>,
    },
    #[error("removing member {name} ({id}) through {endpoint}: {source}")]
    Remove {
        name: String,
        id: String,
        endpoint: String,
        #[source]
        source: Box<etcd::EtcdError>,
    },
}

/// What resetting a set of hosts asks of the etcd cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum ResetMembership {
    /// No selected host runs etcd.
    Untouched,
    /// Every member goes: nothing to remove, the cluster ends with its hosts.
    WholeCluster,
    /// These members are removed first, through `via` (a member that stays).
    Remove {
        members: Vec<LiveMember>,
        via: String,
    },
}

/// `https://ADDR:2379` for every etcd host of the inventory.
pub fn client_endpoints(inv: &Inventory) -> Vec<(String, String)> {
    inv.etcd_members()
        .into_iter()
        .map(|m| (m.name.clone(), m.client_url()))
        .collect()
}

/// The live member list from the first etcd host that gives one.
pub async fn live_members(
    inv: &Inventory,
    tls: &ClientTls,
    timeout: Duration,
) -> Option<(String, Vec<Member>)> {
    for (_, ep) in client_endpoints(inv) {
        if let Ok(list) = etcd::member_list(tls, &ep, timeout).await {
            return Some((ep, list));
        }
    }
    None
}

/// The inventory host a member belongs to: same name, or its peer URL is the host's.
pub fn host_of<'a>(inv: &'a Inventory, m: &Member) -> Option<&'a Host> {
    inv.with_role(Role::Etcd).find(|h| {
        h.name == m.name || {
            let peer = crate::inventory::EtcdMember {
                name: h.name.clone(),
                address: h.address,
            }
            .peer_url();
            m.peer_urls.iter().any(|u| u == &peer)
        }
    })
}

pub async fn member_healthy(tls: &ClientTls, m: &Member, timeout: Duration) -> bool {
    for url in &m.client_urls {
        if let Ok(true) = etcd::health(tls, url, timeout).await {
            return true;
        }
    }
    false
}

/// Decide what resetting `selected` asks of etcd; refuse when it would cost quorum.
pub async fn plan_reset(
    inv: &Inventory,
    tls: &ClientTls,
    selected: &BTreeSet<String>,
    timeout: Duration,
) -> Result<ResetMembership, MembershipError> {
    let etcd_hosts: Vec<&Host> = inv.with_role(Role::Etcd).collect();
    let chosen: Vec<&str> = etcd_hosts
        .iter()
        .filter(|h| selected.contains(&h.name))
        .map(|h| h.name.as_str())
        .collect();
    if chosen.is_empty() {
        return Ok(ResetMembership::Untouched);
    }
    let Some((_, members)) = live_members(inv, tls, timeout).await else {
        if chosen.len() == etcd_hosts.len() {
            return Ok(ResetMembership::WholeCluster);
        }
        return Err(MembershipError::NoMemberAnswers {
            endpoints: client_endpoints(inv)
                .into_iter()
                .map(|(_, e)| e)
                .collect::<Vec<_>>()
                .join(", "),
            hosts: chosen.join(", "),
        });
    };
    let mut going = Vec::new();
    let mut staying = Vec::new();
    for m in &members {
        let host = host_of(inv, m).map(|h| h.name.clone());
        let live = LiveMember {
            id: format!("{:x}", m.id),
            raw_id: m.id,
            client_urls: m.client_urls.clone(),
            name: m.name.clone(),
            healthy: member_healthy(tls, m, timeout).await,
            host: host.clone(),
        };
        if host.is_some_and(|h| selected.contains(&h)) {
            going.push(live);
        } else {
            staying.push((live, m));
        }
    }
    if staying.is_empty() {
        return Ok(ResetMembership::WholeCluster);
    }
    if going.is_empty() {
        return Ok(ResetMembership::Untouched);
    }
    let remaining = staying.len();
    let healthy = staying.iter().filter(|(l, _)| l.healthy).count();
    let needed = remaining / 2 + 1;
    if healthy < needed {
        return Err(MembershipError::Quorum {
            hosts: chosen.join(", "),
            remaining,
            healthy,
            needed,
        });
    }
    let via = staying
        .iter()
        .find(|(l, _)| l.healthy)
        .and_then(|(_, m)| m.client_urls.first().cloned())
        .unwrap_or_default();
    Ok(ResetMembership::Remove {
        members: going,
        via,
    })
}

/// What resetting `selected` asks of etcd when kinit cannot talk to it (no client
/// certificate): fine when no etcd host or every etcd host goes, refused otherwise.
pub fn without_client(
    inv: &Inventory,
    selected: &BTreeSet<String>,
) -> Result<ResetMembership, MembershipError> {
    let etcd: Vec<&str> = inv.with_role(Role::Etcd).map(|h| h.name.as_str()).collect();
    let chosen: Vec<&str> = etcd
        .iter()
        .copied()
        .filter(|h| selected.contains(*h))
        .collect();
    if chosen.is_empty() {
        Ok(ResetMembership::Untouched)
    } else if chosen.len() == etcd.len() {
        Ok(ResetMembership::WholeCluster)
    } else {
        Err(MembershipError::NoClient {
            hosts: chosen.join(", "),
        })
    }
}

/// When `m` leads, make the member behind `via` (one that stays) the leader first: clients
/// then see a planned handover instead of an election after their leader vanished.
async fn hand_over_leadership(
    tls: &ClientTls,
    m: &LiveMember,
    via: &str,
    timeout: Duration,
) -> Result<(), MembershipError> {
    let failed = |source| MembershipError::Leadership {
        name: m.name.clone(),
        source: Box::new(source),
    };
    let here = etcd::status(tls, via, timeout).await.map_err(failed)?;
    if here.leader != m.raw_id {
        return Ok(());
    }
    let Some(leader_url) = m.client_urls.first() else {
        return Ok(());
    };
    etcd::move_leader(tls, leader_url, here.member_id, timeout)
        .await
        .map_err(failed)?;
    let deadline = std::time::Instant::now() + RECONFIG_WAIT;
    while std::time::Instant::now() < deadline {
        if let Ok(s) = etcd::status(tls, via, timeout).await
            && s.leader == here.member_id
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

/// Remove the members one at a time through `via`.
pub async fn remove(
    tls: &ClientTls,
    members: &[LiveMember],
    via: &str,
    timeout: Duration,
) -> Result<(), MembershipError> {
    for m in members {
        hand_over_leadership(tls, m, via, timeout).await?;
        // etcd refuses a removal ("unhealthy cluster") until the members that stay have been
        // connected to the leader for a few seconds, e.g. right after they started.
        let deadline = std::time::Instant::now() + RECONFIG_WAIT;
        loop {
            match etcd::member_remove(tls, via, m.raw_id, timeout).await {
                Ok(()) => break,
                Err(etcd::EtcdError::Http { ref body, .. })
                    if body.contains("unhealthy cluster")
                        && std::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(source) => {
                    return Err(MembershipError::Remove {
                        name: m.name.clone(),
                        id: m.id.clone(),
                        endpoint: via.to_string(),
                        source: Box::new(source),
                    });
                }
            }
        }
    }
    Ok(())
}
