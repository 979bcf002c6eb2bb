//! The live cluster looked at before a removal: the hosts reachable, the etcd members, their
//! health and leader, judged by the quorum guard (`remove_plan`).

use std::collections::{BTreeMap, BTreeSet};

use super::super::remove_plan::{self, MemberRemoval, MemberView};
use super::scope::{files_to_update, hosts_to_update, join, without};
use super::{RemoveError, RemovePlan, RemoveSettings};
use crate::config::Role;
use crate::engine::etcd_members::{self, MembershipError};
use crate::etcd::{self, ClientTls};
use crate::inventory::{Host, Inventory};
use crate::planning::membership;
use crate::ssh::{HostTarget, Pool};

/// Look at the cluster and decide: SSH to every host that will be reset (an unreachable one
/// is an error naming `--unreachable`), the live members and their health, the quorum guard.
pub async fn plan(
    inv: &Inventory,
    tls: Option<&ClientTls>,
    hosts: &[&Host],
    targets: &BTreeMap<String, HostTarget>,
    pool: &Pool,
    settings: &RemoveSettings,
) -> Result<RemovePlan, RemoveError> {
    let going: BTreeSet<String> = hosts.iter().map(|h| h.name.clone()).collect();
    let rest = without(inv, &going);
    if !settings.unreachable {
        for h in hosts {
            let Some(target) = targets.get(&h.name) else {
                continue;
            };
            if let Err(e) = pool.get(target).await {
                return Err(RemoveError::Unreachable {
                    host: h.name.clone(),
                    error: e.to_string(),
                });
            }
        }
    }
    let etcd = etcd_part(inv, tls, hosts, settings).await?;
    Ok(RemovePlan {
        hosts: going.iter().cloned().collect(),
        unreachable: settings.unreachable,
        etcd: etcd.removal,
        via_url: etcd.via_url,
        client_urls: etcd.client_urls,
        reset: if settings.unreachable {
            Vec::new()
        } else {
            hosts.iter().map(|h| h.name.clone()).collect()
        },
        update: hosts_to_update(&rest),
        files: files_to_update(&rest),
    })
}

/// The etcd side of a removal plan.
struct EtcdPart {
    removal: Option<MemberRemoval>,
    via_url: String,
    client_urls: BTreeMap<u64, Vec<String>>,
}

/// The live members read and judged: which leave, in which order, through which member. Fails
/// closed: without a client certificate or a member that answers, nothing is removed.
async fn etcd_part(
    inv: &Inventory,
    tls: Option<&ClientTls>,
    hosts: &[&Host],
    settings: &RemoveSettings,
) -> Result<EtcdPart, RemoveError> {
    let going: BTreeSet<String> = hosts.iter().map(|h| h.name.clone()).collect();
    let rest = without(inv, &going);
    let etcd_going: Vec<&str> = hosts
        .iter()
        .filter(|h| h.has(Role::Etcd))
        .map(|h| h.name.as_str())
        .collect();
    let mut part = EtcdPart {
        removal: None,
        via_url: String::new(),
        client_urls: BTreeMap::new(),
    };
    if etcd_going.is_empty() {
        return Ok(part);
    }
    let tls = tls.ok_or_else(|| RemoveError::NoClient {
        hosts: join(etcd_going.iter()),
    })?;
    // Asked of the members that stay first: a removed host is never needed for this.
    let mut answer = etcd_members::live_members(&rest, tls, settings.etcd_timeout).await;
    if answer.is_none() && !settings.unreachable {
        answer = etcd_members::live_members(inv, tls, settings.etcd_timeout).await;
    }
    let Some((_, members)) = answer else {
        return Err(RemoveError::NoMemberAnswers {
            endpoints: join(membership::client_endpoints(inv).iter().map(|(_, e)| e)),
            hosts: join(etcd_going.iter()),
        });
    };
    let views = member_views(inv, tls, &members, &going, settings).await?;
    part.removal = remove_plan::plan(&views, &going, settings.force)?;
    if let Some(r) = &part.removal {
        part.via_url = members
            .iter()
            .find(|m| m.id == r.via.raw_id)
            .and_then(|m| m.client_urls.first().cloned())
            .unwrap_or_default();
    }
    part.client_urls = members.into_iter().map(|m| (m.id, m.client_urls)).collect();
    Ok(part)
}

/// After the confirmation: the members read and judged again, since the answer may have come
/// long after the plan was shown. Refused when the guard refuses now, or when other members
/// would leave than the plan showed; otherwise the plan with today's carrier and health.
pub(super) async fn recheck(
    inv: &Inventory,
    tls: Option<&ClientTls>,
    hosts: &[&Host],
    settings: &RemoveSettings,
    shown: RemovePlan,
) -> Result<RemovePlan, RemoveError> {
    let now = etcd_part(inv, tls, hosts, settings).await?;
    let ids = |r: &Option<MemberRemoval>| -> Vec<String> {
        let mut v: Vec<String> = r
            .iter()
            .flat_map(|r| r.members.iter().map(|m| m.id.clone()))
            .collect();
        v.sort();
        v
    };
    if ids(&now.removal) != ids(&shown.etcd) {
        let list = |v: Vec<String>| {
            if v.is_empty() {
                "none".to_string()
            } else {
                v.join(", ")
            }
        };
        return Err(RemoveError::Changed {
            shown: list(ids(&shown.etcd)),
            now: list(ids(&now.removal)),
        });
    }
    Ok(RemovePlan {
        etcd: now.removal,
        via_url: now.via_url,
        client_urls: now.client_urls,
        ..shown
    })
}

/// The live members with their host, health and who leads. Members of hosts gone for good
/// count as unhealthy without being asked.
async fn member_views(
    inv: &Inventory,
    tls: &ClientTls,
    members: &[etcd::Member],
    going: &BTreeSet<String>,
    settings: &RemoveSettings,
) -> Result<Vec<MemberView>, RemoveError> {
    let mut views = Vec::new();
    let mut leader = 0;
    for m in members {
        let host = membership::host_of(inv, m)
            .map_err(MembershipError::from)?
            .map(|h| h.name.clone());
        let gone = settings.unreachable && host.as_ref().is_some_and(|h| going.contains(h));
        let mut healthy = false;
        if !gone {
            for url in &m.client_urls {
                if let Ok(true) = etcd::health(tls, url, settings.etcd_timeout).await {
                    healthy = true;
                    if leader == 0
                        && let Ok(s) = etcd::status(tls, url, settings.etcd_timeout).await
                    {
                        leader = s.leader;
                    }
                    break;
                }
            }
        }
        views.push(MemberView {
            raw_id: m.id,
            id: format!("{:x}", m.id),
            name: if m.name.is_empty() {
                host.clone().unwrap_or_default()
            } else {
                m.name.clone()
            },
            host,
            healthy,
            leader: false,
            learner: m.is_learner,
        });
    }
    for v in &mut views {
        v.leader = v.raw_id == leader;
    }
    Ok(views)
}
