//! etcd membership seen from kinit's side, as pure judgments: which member belongs to which
//! host, and what taking some hosts away asks of the cluster without costing its quorum. The
//! engine reads the live members over mutual TLS and acts on these judgments
//! (`engine::etcd_members`).

use std::collections::BTreeSet;

use serde::Serialize;

use crate::config::Role;
use crate::etcd::Member;
use crate::inventory::{Host, Inventory};
use crate::planning::quorum::{self, AmbiguousMember, Fate, Seat};

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

/// Resetting some etcd hosts but not all while etcd cannot be asked which members stay.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the members of {hosts} must leave etcd first, but there is no etcd client certificate \
     in the PKI dir to ask etcd with; reset every etcd host together, or restore the PKI"
)]
pub struct NoClient {
    pub hosts: String,
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

/// The judgment of `engine::etcd_members::plan_reset`: the members of `selected` hosts go, the rest must keep a
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
) -> Result<ResetMembership, NoClient> {
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
        Err(NoClient {
            hosts: chosen.join(", "),
        })
    }
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
