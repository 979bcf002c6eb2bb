//! The phases this machine runs itself: preflight, and the PKI (built in a scratch copy for a
//! dry run, so the plan shows every certificate as it would land while the real PKI dir stays
//! untouched).

use std::sync::Arc;
use std::time::SystemTime;

use tokio_util::sync::CancellationToken;

use super::pki_workspace::PkiWorkspace;
use super::run_context::RunOptions;
use super::run_error::{OperatorError, RunError};
use crate::inventory::Inventory;
use crate::preflight;
use crate::ssh::{HostTarget, Pool};

/// Every preflight check on every host; failures stop a real run. Returns the lines to show.
pub async fn preflight(
    inv: &Inventory,
    pool: &Arc<Pool>,
    targets: Vec<HostTarget>,
    opts: &RunOptions,
    cancel: &CancellationToken,
) -> Result<Vec<String>, RunError> {
    let (obs, op) = preflight::gather::gather(
        inv,
        pool.clone(),
        targets,
        opts.concurrency,
        opts.probe_timeout,
        cancel,
    )
    .await;
    if cancel.is_cancelled() {
        return Err(RunError::Interrupted);
    }
    let report = preflight::evaluate(inv, &obs, &op, &opts.ignore_preflight);
    let mut lines = vec![format!(
        "{} host(s): {} passed, {} warning(s), {} failure(s)",
        inv.hosts.len(),
        report.count(preflight::Status::Pass),
        report.count(preflight::Status::Warn),
        report.count(preflight::Status::Fail)
    )];
    if report.failed() && opts.dry_run {
        let failed: Vec<String> = report
            .findings
            .iter()
            .filter(|f| f.status == preflight::Status::Fail)
            .map(|f| format!("{} on {}", f.check, f.host))
            .collect();
        lines.push(format!("a real run would stop here: {}", failed.join(", ")));
    } else if report.failed() {
        return Err(RunError::Preflight {
            report: Box::new(report),
        });
    }
    Ok(lines)
}

/// `kinit certs generate` into the workspace, and the etcd cluster token made once and kept.
/// Returns the token and the line to show.
pub fn pki(
    inv: &Inventory,
    workspace: &PkiWorkspace,
    dry_run: bool,
) -> Result<(String, String), OperatorError> {
    let mut target = inv.clone();
    target.pki_dir = workspace.dir().to_path_buf();
    let report = crate::pki::generate(&target, &crate::pki::Mode::Generate, SystemTime::now())?;
    let token = crate::pki::cluster_token::load_or_create(workspace.dir(), &inv.name)?;
    let count =
        |f: fn(&crate::pki::Action) -> bool| report.events.iter().filter(|e| f(&e.action)).count();
    let verb = if dry_run { "would be " } else { "" };
    let message = format!(
        "{}: {} {verb}created, {} {verb}re-issued, {} kept; {} file(s) {verb}written",
        inv.pki_dir.display(),
        count(|a| matches!(a, crate::pki::Action::Created)),
        count(|a| matches!(a, crate::pki::Action::Reissued(_))),
        count(|a| matches!(a, crate::pki::Action::Kept)),
        report.files_written
    );
    Ok((token, message))
}

/// How long the API may take to answer the RBAC step's requests.
const API_REQUEST: std::time::Duration = std::time::Duration::from_secs(10);

/// Bind admin.conf's group (`kubeadm:cluster-admins`) to cluster-admin with super-admin.conf's
/// credentials, through the endpoint, else any control-plane host's apiserver. Nothing to do
/// where nothing can serve the API yet: static pods without a kubelet to run them.
pub async fn cluster_admins(
    inv: &Inventory,
    bundle: &crate::bundle::Bundle,
    opts: &RunOptions,
) -> Result<String, OperatorError> {
    use crate::components::{self, ComponentId};
    use crate::kube::{ApiClient, CLUSTER_ADMINS_GROUP, rbac};
    let group = CLUSTER_ADMINS_GROUP;
    if inv.control_plane_mode == crate::config::ControlPlaneMode::StaticPod {
        let lacking = components::component(ComponentId::Kubelet).lacking(bundle);
        if !lacking.is_empty() {
            return Ok(format!(
                "skipped: no kubelet runs the control-plane static pods (the bundle lacks {}), so no \
                 apiserver serves to bind {group} to cluster-admin",
                lacking.join(", ")
            ));
        }
    }
    if opts.dry_run {
        return Ok(format!(
            "would bind the group {group} (admin.conf's) to cluster-admin with super-admin.conf, if missing"
        ));
    }
    let client = ApiClient::from_pki_kubeconfig(&inv.pki_dir, "super-admin.conf")?;
    let mut servers = vec![client.server().to_string()];
    servers.extend(inv.control_plane().map(|h| {
        format!(
            "https://{}",
            std::net::SocketAddr::new(h.address, crate::inventory::ports::APISERVER)
        )
    }));
    let mut last = None;
    for server in &servers {
        match rbac::ensure_cluster_admins(&client.at(server), API_REQUEST).await {
            Ok(rbac::Ensured::Created) => {
                return Ok(format!(
                    "bound the group {group} (admin.conf's) to cluster-admin, through {server}"
                ));
            }
            Ok(rbac::Ensured::AlreadyThere) => {
                return Ok(format!("{group} is bound to cluster-admin already"));
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.expect("at least the endpoint was tried").into())
}

/// How long the kubelets get, from the end of the control plane's phase, to register and
/// report Ready.
const NODES_READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// Wait until every host the table gives a kubelet is a `Ready` Node, recording each Node's pod
/// slice as it registers. Nothing to wait for when the bundle holds no kubelet (nothing
/// registers).
pub async fn nodes_ready(
    inv: &Inventory,
    bundle: &crate::bundle::Bundle,
    opts: &RunOptions,
    cancel: &tokio_util::sync::CancellationToken,
) -> Result<String, OperatorError> {
    use crate::components::{self, ComponentId};
    use crate::kube::{ApiClient, nodes};
    let kubelet = components::component(ComponentId::Kubelet);
    let lacking = kubelet.lacking(bundle);
    let hosts: Vec<String> = kubelet.hosts(inv).iter().map(|h| h.name.clone()).collect();
    if !lacking.is_empty() {
        return Ok(format!(
            "skipped: no kubelet runs (the bundle lacks {})",
            lacking.join(", ")
        ));
    }
    if opts.dry_run {
        return Ok(format!(
            "would wait for the Nodes {} to be Ready",
            hosts.join(", ")
        ));
    }
    let client = ApiClient::from_pki_kubeconfig(&inv.pki_dir, "admin.conf")?;
    let started = std::time::Instant::now();
    let mut settled = std::collections::BTreeSet::new();
    let look = async || {
        Ok(match nodes::list(&client, API_REQUEST).await {
            Ok(list) => {
                // A registered Node is given its pod slice (the one its CNI bridge uses) and
                // kubeadm's control-plane labels and taint. A refusal is tried again: right
                // after the cluster-admins binding, an apiserver whose RBAC cache has not seen
                // it yet answers 403.
                let mut refused = Vec::new();
                for h in &hosts {
                    if list.contains_key(h)
                        && !settled.contains(h)
                        && let Some(host) = inv.host(h)
                        && let Ok(cidr) = crate::render::context::pod_cidr(inv, host)
                    {
                        let control_plane = host.has(crate::config::Role::ControlPlane);
                        let settings = nodes::NodeSettings {
                            pod_cidr: cidr.to_string(),
                            control_plane,
                            tainted: control_plane && !host.has(crate::config::Role::Worker),
                        };
                        match nodes::apply_settings(&client, h, &settings, API_REQUEST).await {
                            Ok(()) => {
                                settled.insert(h.clone());
                            }
                            // The Node has another slice: waiting will not change that.
                            Err(e @ crate::kube::KubeApiError::Decode { .. }) => {
                                return Err(e.into());
                            }
                            Err(e) => refused
                                .push(format!("{h}: setting its pod slice, labels and taint: {e}")),
                        }
                    }
                }
                let waiting: Vec<String> = refused
                    .into_iter()
                    .chain(hosts.iter().filter_map(|h| match list.get(h) {
                        Some(n) if n.ready => None,
                        Some(n) => Some(format!("{h} not Ready ({})", n.why)),
                        None => Some(format!("{h} not registered")),
                    }))
                    .collect();
                if waiting.is_empty() {
                    Poll::Done(format!(
                        "{} node(s) Ready: {} ({:.1}s)",
                        hosts.len(),
                        hosts.join(", "),
                        started.elapsed().as_secs_f64()
                    ))
                } else {
                    Poll::Waiting(waiting.join("; "))
                }
            }
            Err(e) => Poll::Waiting(e.to_string()),
        })
    };
    poll_until(
        "the nodes were not all Ready",
        NODES_READY_TIMEOUT,
        cancel,
        look,
    )
    .await
}

/// What one look at a condition an operator step waits for found.
enum Poll<T> {
    Done(T),
    /// Not yet, for this reason.
    Waiting(String),
}

/// Look at a condition once a second until it holds; give up after `timeout` or when `cancel`
/// fires, with `what` did not happen and the last reason. A look's own error ends the wait.
async fn poll_until<T>(
    what: &'static str,
    timeout: std::time::Duration,
    cancel: &tokio_util::sync::CancellationToken,
    mut look: impl AsyncFnMut() -> Result<Poll<T>, OperatorError>,
) -> Result<T, OperatorError> {
    let started = std::time::Instant::now();
    loop {
        let last = match look().await? {
            Poll::Done(value) => return Ok(value),
            Poll::Waiting(why) => why,
        };
        if started.elapsed() >= timeout {
            return Err(OperatorError::NotReady {
                what,
                waited: timeout,
                last,
            });
        }
        tokio::select! {
            _ = cancel.cancelled() => return Err(OperatorError::NotReady {
                what,
                waited: started.elapsed(),
                last: format!("interrupted; {last}"),
            }),
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
        }
    }
}

/// How long CoreDNS's pods get to become ready once its objects are applied: as long as the
/// nodes get ([`NODES_READY_TIMEOUT`]). On an emulated VM one of two pods took over 180 s
/// (its image imported, its sandbox and container started on a node still busy with the
/// control plane's), and `up` failed on a cluster that was coming up fine.
const CLUSTER_DNS_TIMEOUT: std::time::Duration = NODES_READY_TIMEOUT;

/// Apply CoreDNS's objects through the endpoint with admin.conf and wait for its Deployment to
/// roll out. Skipped when no kubelet runs or the bundle has no CoreDNS image to import.
pub async fn cluster_dns(
    inv: &Inventory,
    bundle: &crate::bundle::Bundle,
    opts: &RunOptions,
    cancel: &tokio_util::sync::CancellationToken,
) -> Result<String, OperatorError> {
    use crate::components::{self, ComponentId};
    use crate::kube::{ApiClient, coredns};
    let lacking = components::component(ComponentId::Kubelet).lacking(bundle);
    if !lacking.is_empty() {
        return Ok(format!(
            "skipped: no kubelet runs pods (the bundle lacks {})",
            lacking.join(", ")
        ));
    }
    let archive = crate::bundle::image::COREDNS_ARCHIVE;
    if !bundle.has(archive) {
        return Ok(format!(
            "skipped: the bundle has no CoreDNS image ({archive})"
        ));
    }
    let settings = coredns::CoreDnsSettings {
        image: crate::bundle::image::coredns_reference(
            crate::config::model::DEFAULT_IMAGE_REPOSITORY,
        ),
        cluster_ip: crate::render::context::cluster_dns(inv),
        domain: inv.networking.dns_domain.clone(),
        upstreams: inv.networking.dns_upstreams.clone(),
    };
    let objects = coredns::objects(&settings);
    if opts.dry_run {
        let names: Vec<&str> = objects.iter().map(|o| o.name.as_str()).collect();
        return Ok(format!(
            "would apply {} ({}) and wait for its {} replicas",
            names.join(", "),
            settings.image,
            coredns::REPLICAS
        ));
    }
    let client = ApiClient::from_pki_kubeconfig(&inv.pki_dir, "admin.conf")?;
    let mut changed = Vec::new();
    for o in &objects {
        match coredns::apply(&client, o, API_REQUEST).await? {
            coredns::Applied::Unchanged => {}
            coredns::Applied::Created => changed.push(format!("created {}", o.name)),
            coredns::Applied::Changed => changed.push(format!("changed {}", o.name)),
        }
    }
    let look = async || {
        Ok(match coredns::pending(&client, API_REQUEST).await {
            Ok(None) => {
                let what = if changed.is_empty() {
                    "unchanged".to_string()
                } else {
                    changed.join(", ")
                };
                Poll::Done(format!(
                    "CoreDNS answers at {} ({}): {what}",
                    settings.cluster_ip, settings.image
                ))
            }
            Ok(Some(why)) => Poll::Waiting(why),
            Err(e) => Poll::Waiting(e.to_string()),
        })
    };
    poll_until(
        "CoreDNS was not rolled out",
        CLUSTER_DNS_TIMEOUT,
        cancel,
        look,
    )
    .await
}
