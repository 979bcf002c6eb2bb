//! etcd membership changes and the reads they rest on, over mutual TLS only (no SSH): the live
//! member list, each member's health, and removals that hand leadership over first. What they
//! may do is judged in [`crate::planning::membership`].

use std::collections::BTreeSet;
use std::time::Duration;

use crate::config::Role;
use crate::etcd::{self, ClientTls, Member};
use crate::inventory::{Host, Inventory};
use crate::planning::membership::{
    LiveMember, NoClient, ResetMembership, client_endpoints, host_of, judge_reset,
};
use crate::planning::quorum::AmbiguousMember;

/// How long a removal etcd refuses as unsafe for now is retried.
const RECONFIG_WAIT: Duration = Duration::from_secs(30);

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
    #[error(transparent)]
    NoClient(#[from] NoClient),
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
