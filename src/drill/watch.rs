//! Watching the cluster route around the piece a drill took down: the VIP on another host, a
//! new etcd leader, a Node marked NotReady (and Ready again). Each watcher returns the first
//! change it sees, or `None` when told to stop.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::kind::DrillKind;
use crate::engine::verify;
use crate::etcd::{self, ClientTls};
use crate::inventory::Inventory;
use crate::kube::{ApiClient, nodes};
use crate::ssh::{HostTarget, Pool};
use crate::status::StatusReport;

/// How often the watchers look.
const EVERY: Duration = Duration::from_millis(100);
const ASK_TIMEOUT: Duration = Duration::from_millis(500);

/// The piece moved: to which host, and when (on the drill's clock).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Moved {
    pub to: String,
    #[serde(skip)]
    pub at: Duration,
}

/// Look every [`EVERY`] until `look` names where the piece went; `None` when told to stop first.
async fn first<F, Fut>(clock: Instant, stop: &CancellationToken, look: F) -> Option<Moved>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Option<String>>,
{
    loop {
        if stop.is_cancelled() {
            return None;
        }
        if let Some(to) = look().await {
            return Some(Moved {
                to,
                at: clock.elapsed(),
            });
        }
        tokio::select! {
            _ = stop.cancelled() => return None,
            _ = tokio::time::sleep(EVERY) => {}
        }
    }
}

/// The first of `others` seen holding `vip`.
pub async fn vip_moved(
    pool: Arc<Pool>,
    others: Vec<(String, HostTarget)>,
    vip: IpAddr,
    clock: Instant,
    stop: CancellationToken,
) -> Option<Moved> {
    let (pool, others) = (&pool, &others);
    first(clock, &stop, move || async move {
        let holders = verify::vip_holders(pool, others, vip).await.ok()?;
        holders.into_iter().next()
    })
    .await
}

/// The first leader other than `old` that a member of `members` (name -> client URL) follows.
pub async fn leader_moved(
    tls: ClientTls,
    members: BTreeMap<String, String>,
    ids: BTreeMap<u64, String>,
    old: u64,
    clock: Instant,
    stop: CancellationToken,
) -> Option<Moved> {
    let (tls, members, ids) = (&tls, &members, &ids);
    first(clock, &stop, move || async move {
        for endpoint in members.values() {
            if let Ok(s) = etcd::status(tls, endpoint, ASK_TIMEOUT).await
                && s.leader != 0
                && s.leader != old
            {
                let name = ids.get(&s.leader).cloned();
                return Some(name.unwrap_or_else(|| format!("{:x}", s.leader)));
            }
        }
        None
    })
    .await
}

/// The first time the API shows Node `name` with its `Ready` condition `ready`; `to` is the
/// condition's reason and message (`NodeStatusUnknown: Kubelet stopped posting node status.`).
pub async fn node_ready_is(
    api: ApiClient,
    name: String,
    ready: bool,
    clock: Instant,
    stop: CancellationToken,
) -> Option<Moved> {
    let (api, name) = (&api, &name);
    first(clock, &stop, move || async move {
        let node = nodes::get(api, name, ASK_TIMEOUT * 2).await.ok()?;
        (node.ready == ready).then(|| if ready { "Ready".to_string() } else { node.why })
    })
    .await
}

/// What a drill's watcher looks at: the drill, the host it takes down, the cluster before.
pub(super) struct Watched<'a> {
    pub status: &'a StatusReport,
    pub host: &'a str,
    pub kind: &'a DrillKind,
}

/// Start the watcher that tells when the piece moved, or (node drill) when the control plane
/// marked the Node NotReady; none for the apiserver drill.
pub(super) fn start(
    inv: &Inventory,
    pool: &Arc<Pool>,
    targets: &BTreeMap<String, HostTarget>,
    on: Watched<'_>,
    clock: Instant,
    stop: &CancellationToken,
) -> Option<tokio::task::JoinHandle<Option<Moved>>> {
    let Watched { status, host, kind } = on;
    match kind {
        DrillKind::VipHolder => {
            let vip: IpAddr = inv.endpoint.address.parse().ok()?;
            let others = inv
                .control_plane()
                .filter(|h| h.name != host)
                .filter_map(|h| targets.get(&h.name).map(|t| (h.name.clone(), t.clone())))
                .collect();
            Some(tokio::spawn(vip_moved(
                pool.clone(),
                others,
                vip,
                clock,
                stop.clone(),
            )))
        }
        DrillKind::EtcdLeader => {
            let tls = ClientTls::from_pki_dir(&inv.pki_dir).ok()?;
            let ids: BTreeMap<u64, String> = status
                .etcd
                .members
                .iter()
                .filter_map(|m| {
                    let id = u64::from_str_radix(m.id.as_deref()?, 16).ok()?;
                    Some((id, m.name.clone()))
                })
                .collect();
            let old = ids.iter().find(|(_, n)| *n == host).map(|(id, _)| *id)?;
            let members = inv
                .etcd_members()
                .into_iter()
                .filter(|m| m.name != host)
                .map(|m| (m.name.clone(), m.client_url()))
                .collect();
            Some(tokio::spawn(leader_moved(
                tls,
                members,
                ids,
                old,
                clock,
                stop.clone(),
            )))
        }
        DrillKind::Node(name) => Some(tokio::spawn(node_ready_is(
            super::probes::admin_client(inv).ok()?,
            name.clone(),
            false,
            clock,
            stop.clone(),
        ))),
        DrillKind::Apiserver(_) => None,
    }
}
