//! Watching the cluster route around the piece a drill took down: the VIP on another host, a
//! new etcd leader, a Node marked NotReady (and Ready again). Each watcher returns the first
//! change it sees, or `None` when told to stop.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::engine::verify;
use crate::etcd::{self, ClientTls};
use crate::kube::{ApiClient, nodes};
use crate::ssh::{HostTarget, Pool};

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

async fn pause(stop: &CancellationToken) -> bool {
    tokio::select! {
        _ = stop.cancelled() => false,
        _ = tokio::time::sleep(EVERY) => true,
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
    loop {
        if stop.is_cancelled() {
            return None;
        }
        if let Ok(holders) = verify::vip_holders(&pool, &others, vip).await
            && let Some(to) = holders.into_iter().next()
        {
            return Some(Moved {
                to,
                at: clock.elapsed(),
            });
        }
        if !pause(&stop).await {
            return None;
        }
    }
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
    loop {
        if stop.is_cancelled() {
            return None;
        }
        for endpoint in members.values() {
            if let Ok(s) = etcd::status(&tls, endpoint, ASK_TIMEOUT).await
                && s.leader != 0
                && s.leader != old
            {
                return Some(Moved {
                    to: ids
                        .get(&s.leader)
                        .cloned()
                        .unwrap_or_else(|| format!("{:x}", s.leader)),
                    at: clock.elapsed(),
                });
            }
        }
        if !pause(&stop).await {
            return None;
        }
    }
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
    loop {
        if stop.is_cancelled() {
            return None;
        }
        if let Ok(node) = nodes::get(&api, &name, ASK_TIMEOUT * 2).await
            && node.ready == ready
        {
            return Some(Moved {
                to: if ready { "Ready".to_string() } else { node.why },
                at: clock.elapsed(),
            });
        }
        if !pause(&stop).await {
            return None;
        }
    }
}
