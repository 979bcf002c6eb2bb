//! The Node objects of reset hosts: drained before the hosts are reset, deleted after.

use super::*;

/// A reset host's Node object: drained before the host is reset, deleted after.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeLeaving {
    pub host: String,
    pub drained: Option<crate::kube::drain::Drained>,
    pub deleted: bool,
    /// Why it was not drained or deleted (or, in a dry run, what would happen).
    pub note: Option<String>,
}

/// How long one API request of a drain may take, and the whole drain of one node.
const NODE_REQUEST: std::time::Duration = std::time::Duration::from_secs(5);
const DRAIN_DEADLINE: std::time::Duration = std::time::Duration::from_secs(90);

/// The selected hosts whose Nodes are in the API: kubelet hosts, with a kubelet in the bundle,
/// while some control plane stays (a reset of every control plane takes the API and its Node
/// objects with it). None when there is nothing to do.
fn nodes_among(
    inv: &crate::inventory::Inventory,
    selected: &BTreeSet<String>,
) -> Option<Vec<String>> {
    use crate::components::{ComponentId, component};
    let kubelet = component(ComponentId::Kubelet);
    let hosts: Vec<String> = kubelet
        .hosts(inv)
        .into_iter()
        .filter(|h| selected.contains(&h.name))
        .map(|h| h.name.clone())
        .collect();
    let no_kubelet = crate::bundle::Bundle::open(inv.bundle.as_deref())
        .map(|b| !kubelet.lacking(&b).is_empty())
        .unwrap_or(true);
    let api_goes = inv.control_plane().all(|h| selected.contains(&h.name));
    (!hosts.is_empty() && !no_kubelet && !api_goes).then_some(hosts)
}

/// Each host's Node, with `note` said about it.
fn noted(hosts: &[String], note: &str) -> Vec<NodeLeaving> {
    hosts
        .iter()
        .map(|h| NodeLeaving {
            host: h.clone(),
            note: Some(note.to_string()),
            ..Default::default()
        })
        .collect()
}

/// Drain the Nodes of the selected kubelet hosts while the API answers; the client to delete
/// them with once their hosts are reset.
pub(crate) async fn drain_nodes(
    inv: &crate::inventory::Inventory,
    selected: &BTreeSet<String>,
    dry_run: bool,
    cancel: &CancellationToken,
) -> (Option<crate::kube::ApiClient>, Vec<NodeLeaving>) {
    let Some(hosts) = nodes_among(inv, selected) else {
        return (None, Vec::new());
    };
    if dry_run {
        return (
            None,
            noted(
                &hosts,
                "would drain the Node, and delete it once the host is reset",
            ),
        );
    }
    let client = match crate::kube::ApiClient::from_pki_kubeconfig(&inv.pki_dir, "admin.conf") {
        Ok(c) => c,
        Err(e) => return (None, noted(&hosts, &format!("Node left in the API: {e}"))),
    };
    let mut out = Vec::new();
    for host in hosts {
        let mut n = NodeLeaving {
            host: host.clone(),
            ..Default::default()
        };
        let drained = crate::kube::drain::drain(
            &client,
            &host,
            crate::kube::drain::Leaving::ForGood,
            (NODE_REQUEST, DRAIN_DEADLINE),
            cancel,
        )
        .await;
        match drained {
            Ok(d) => n.drained = Some(d),
            Err(e) => n.note = Some(format!("not drained: {e}")),
        }
        out.push(n);
        if cancel.is_cancelled() {
            break;
        }
    }
    (Some(client), out)
}

/// The Nodes a drain cordoned, put back when the run stops before their hosts are reset:
/// kinit's cordon lifted (an operator's own cordon stays); the pods the drain evicted stay
/// where their controllers placed them. One line per Node.
pub(crate) async fn uncordon_nodes(
    api: &crate::kube::ApiClient,
    nodes: &[NodeLeaving],
) -> Vec<String> {
    use crate::kube::drain::{Cordon, set_unschedulable};
    let mut lines = Vec::new();
    for n in nodes {
        lines.push(
            match set_unschedulable(api, &n.host, Cordon::OffIfKinits, NODE_REQUEST).await {
                Ok(()) => format!(
                    "{}: stopped before the host was reset: kinit's cordon on its Node lifted",
                    n.host
                ),
                Err(e) => format!("{}: its Node stays cordoned: {e}", n.host),
            },
        );
    }
    lines
}

/// Delete the Nodes of hosts gone for good (never contacted, so neither drained nor reset):
/// without its Node, the pods bound to it are deleted and their controllers place them
/// elsewhere; a NotReady Node would keep them there.
pub(crate) async fn delete_gone_nodes(
    inv: &crate::inventory::Inventory,
    gone: &BTreeSet<String>,
    dry_run: bool,
) -> Vec<NodeLeaving> {
    let Some(hosts) = nodes_among(inv, gone) else {
        return Vec::new();
    };
    if dry_run {
        return noted(&hosts, "would delete the Node (its host is gone)");
    }
    let api = match crate::kube::ApiClient::from_pki_kubeconfig(&inv.pki_dir, "admin.conf") {
        Ok(c) => c,
        Err(e) => return noted(&hosts, &format!("Node left in the API: {e}")),
    };
    let mut out = Vec::new();
    for host in hosts {
        let mut n = NodeLeaving {
            host: host.clone(),
            ..Default::default()
        };
        match crate::kube::drain::delete_node(&api, &host, NODE_REQUEST).await {
            Ok(()) => n.deleted = true,
            Err(e) => n.note = Some(format!("Node left in the API: {e}")),
        }
        out.push(n);
    }
    out
}

/// Delete the Node of every drained host whose reset succeeded.
pub(crate) async fn delete_nodes(
    api: &crate::kube::ApiClient,
    nodes: &mut [NodeLeaving],
    hosts: &[HostResetOutcome],
) {
    for n in nodes {
        if !hosts.iter().any(|h| h.host == n.host && h.ok()) {
            n.note
                .get_or_insert_with(|| "Node left in the API: the host's reset failed".into());
            continue;
        }
        match crate::kube::drain::delete_node(api, &n.host, NODE_REQUEST).await {
            Ok(()) => n.deleted = true,
            Err(e) => n.note = Some(format!("Node left in the API: {e}")),
        }
    }
}
