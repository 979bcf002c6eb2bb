//! etcd membership seen from kinit's side: which member belongs to which host, which are healthy,
//! and whether taking some away keeps a quorum. Talks to etcd over mutual TLS only (no SSH).

use std::collections::BTreeSet;
use std::time::Duration;

use serde::Serialize;

use crate::config::Role;
use crate::etcd::{self, ClientTls, Member};
use crate::inventory::{Host, Inventory};
use crate::lifecycle::quorum::{self, AmbiguousMember, Fate, Seat};

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
    /// A learner: no voter, counted in no majority.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub learner: bool,
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
        "removing the members of {hosts} would leave {remaining} voting member(s) of which \
         {healthy} healthy{learners}; etcd needs {needed} healthy of {remaining} to stay \
         writable. Bring the unhealthy members back first (`kinit status` shows them), or reset \
         every etcd host"
    )]
    Quorum {
        hosts: String,
        remaining: usize,
        healthy: usize,
        needed: usize,
        /// ` (learners cp4 not counted)`, or empty.
        learners: String,
    },
    #[error(transparent)]
    Ambiguous(#[from] AmbiguousMember),
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

/// The inventory host a member belongs to: same name, or its peer URL is the host's. A member
/// that one host claims by name and another by peer URL is refused: counting it as either could
/// let a guard count the wrong member.
pub fn host_of<'a>(inv: &'a Inventory, m: &Member) -> Result<Option<&'a Host>, AmbiguousMember> {
    let by_name = inv.with_role(Role::Etcd).find(|h| h.name == m.name);
    let peer_of = |h: &Host| {
        crate::inventory::EtcdMember {
            name: h.name.clone(),
            address: h.address,
        }
        .peer_url()
    };
    let by_peer = inv
        .with_role(Role::Etcd)
        .find(|h| m.peer_urls.iter().any(|u| *u == peer_of(h)));
    match (by_name, by_peer) {
        (Some(a), Some(b)) if a.name != b.name => Err(AmbiguousMember {
            member: if m.name.is_empty() {
                "(not started)".into()
            } else {
                m.name.clone()
            },
            id: format!("{:x}", m.id),
            by_name: a.name.clone(),
            by_peer: b.name.clone(),
            peer_url: peer_of(b),
        }),
        (a, b) => Ok(a.or(b)),
    }
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
    let mut lives = Vec::new();
    for m in &members {
        let host = host_of(inv, m)?.map(|h| h.name.clone());
        lives.push(LiveMember {
            id: format!("{:x}", m.id),
            raw_id: m.id,
            client_urls: m.client_urls.clone(),
            name: m.name.clone(),
            healthy: member_healthy(tls, m, timeout).await,
            host,
            learner: m.is_learner,
        });
    }
    judge_reset(lives, selected).map_err(|tally| MembershipError::Quorum {
        hosts: chosen.join(", "),
        remaining: tally.voters_after,
        healthy: tally.healthy_after,
        needed: tally.needed,
        learners: if tally.learners.is_empty() {
            String::new()
        } else {
            format!(" (learners {} not counted)", tally.learners.join(", "))
        },
    })
}

/// The pure part of [`plan_reset`]: the members of `selected` hosts go, the rest must keep a
/// healthy majority of voters ([`quorum::tally`]; learners count nowhere). When no voter would
/// stay the whole cluster goes with the hosts (a learner cannot carry it).
pub fn judge_reset(
    members: Vec<LiveMember>,
    selected: &BTreeSet<String>,
) -> Result<ResetMembership, quorum::Tally> {
    let goes = |l: &LiveMember| l.host.as_ref().is_some_and(|h| selected.contains(h));
    let seats: Vec<Seat> = members
        .iter()
        .map(|l| Seat {
            name: l.host.clone().unwrap_or_else(|| l.name.clone()),
            healthy: l.healthy,
            learner: l.learner,
            fate: if goes(l) { Fate::Leaves } else { Fate::Stays },
        })
        .collect();
    let (going, staying): (Vec<LiveMember>, Vec<LiveMember>) =
        members.into_iter().partition(|l| goes(l));
    if staying.iter().all(|l| l.learner) {
        return Ok(ResetMembership::WholeCluster);
    }
    if going.is_empty() {
        return Ok(ResetMembership::Untouched);
    }
    let tally = quorum::tally(&seats);
    if !tally.keeps_majority() {
        return Err(tally);
    }
    let via = staying
        .iter()
        .find(|l| l.healthy && !l.learner)
        .and_then(|l| l.client_urls.first().cloned())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn live(n: u64, healthy: bool, learner: bool) -> LiveMember {
        LiveMember {
            id: format!("{n:x}"),
            raw_id: n,
            client_urls: vec![format!("https://10.0.0.{n}:2379")],
            name: format!("cp{n}"),
            host: Some(format!("cp{n}")),
            healthy,
            learner,
        }
    }

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    /// Three voters with cp2 down plus a healthy learner: resetting the healthy voter cp3
    /// leaves 1 healthy of 2 voters. Counting the learner said 2 of 3.
    #[test]
    fn reset_counts_voters_only() {
        let members = vec![
            live(1, true, false),
            live(2, false, false),
            live(3, true, false),
            live(4, true, true),
        ];
        let tally = judge_reset(members.clone(), &set(&["cp3"])).unwrap_err();
        assert_eq!(
            (tally.voters_after, tally.healthy_after, tally.needed),
            (2, 1, 2)
        );
        assert_eq!(tally.learners, ["cp4"]);
        // The down member may go, through a healthy voter.
        let Ok(ResetMembership::Remove {
            members: going,
            via,
        }) = judge_reset(members.clone(), &set(&["cp2"]))
        else {
            panic!()
        };
        assert_eq!(going.len(), 1);
        assert_eq!(via, "https://10.0.0.1:2379");
        // A learner never carries the removal, even listed first.
        let mut first_learner = members.clone();
        first_learner.rotate_right(1);
        let Ok(ResetMembership::Remove { via, .. }) = judge_reset(first_learner, &set(&["cp2"]))
        else {
            panic!()
        };
        assert_eq!(via, "https://10.0.0.1:2379");
        // Every voter going: the whole cluster, whatever learner is left.
        assert_eq!(
            judge_reset(members.clone(), &set(&["cp1", "cp2", "cp3"])),
            Ok(ResetMembership::WholeCluster)
        );
        assert_eq!(
            judge_reset(members, &set(&["w1"])),
            Ok(ResetMembership::Untouched)
        );
    }

    fn inventory() -> Inventory {
        let text = "apiVersion: kinit.io/v1alpha1\nkind: Cluster\nmetadata: {name: demo}\nspec:\n  \
             kubernetesVersion: v1.31.4\n  controlPlaneEndpoint: {address: 192.168.9.100}\n  \
             hosts:\n    - {name: cp1, address: 192.168.9.11, roles: [control-plane, etcd]}\n    \
             - {name: cp2, address: 192.168.9.12, roles: [control-plane, etcd]}\n    \
             - {name: cp3, address: 192.168.9.13, roles: [control-plane, etcd]}\n";
        let (cfg, report) = crate::config::check(std::path::Path::new("c.yaml"), text.into());
        let cfg = cfg.unwrap_or_else(|| panic!("{report:?}"));
        Inventory::from_config(&cfg, std::path::Path::new("."), None).unwrap()
    }

    fn member(name: &str, peer: &str) -> Member {
        Member {
            id: 0xabc,
            name: name.into(),
            peer_urls: vec![peer.into()],
            client_urls: vec![],
            is_learner: false,
        }
    }

    /// A member named like one host with another host's peer URL cannot be placed.
    #[test]
    fn a_member_two_hosts_claim_is_refused() {
        let inv = inventory();
        let peer = |h: &str| {
            let host = inv.host(h).unwrap();
            crate::inventory::EtcdMember {
                name: host.name.clone(),
                address: host.address,
            }
            .peer_url()
        };
        let err = host_of(&inv, &member("cp1", &peer("cp2"))).unwrap_err();
        assert_eq!((err.by_name.as_str(), err.by_peer.as_str()), ("cp1", "cp2"));
        assert!(
            err.to_string().contains("cp1 by its name but host cp2"),
            "{err}"
        );
        // Name and peer URL agreeing, or either alone, place it.
        let h = |m: &Member| host_of(&inv, m).unwrap().map(|h| h.name.clone());
        assert_eq!(h(&member("cp2", &peer("cp2"))).as_deref(), Some("cp2"));
        assert_eq!(h(&member("", &peer("cp3"))).as_deref(), Some("cp3"));
        assert_eq!(
            h(&member("cp1", "https://10.9.9.9:2380")).as_deref(),
            Some("cp1")
        );
        assert_eq!(h(&member("x", "https://10.9.9.9:2380")), None);
    }
}
