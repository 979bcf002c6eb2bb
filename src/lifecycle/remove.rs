//! `kinit remove HOST...`: take control-plane and etcd hosts out of a running cluster. Their
//! etcd members leave first (the leader hands over to a healthy member that stays; refused when
//! the rest could not keep a majority), then the hosts are reset (unless gone for good:
//! `--unreachable` never contacts them), then the control planes that stay get haproxy
//! backends, keepalived peers and (external etcd) the apiserver's `--etcd-servers` rendered
//! without the removed hosts, with the reloads the component table asks, one host at a time.
//! All of it under the cluster lock on every host it contacts, the lock `kinit up` takes: a
//! removal never runs beside another operator's `up`, `remove` or restore.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::remove_plan::{self, MemberRemoval, MemberView, RemovalRefused};
use super::reset::{self, ResetReport, ResetSettings};
use super::reset_plan;
use crate::components::{self, ComponentId, OnChange};
use crate::config::{ControlPlaneMode, Role, Topology};
use crate::engine::cluster_lock::{LockFailure, LockRequest};
use crate::engine::etcd_members::{self, MembershipError};
use crate::engine::event::{Observer, Quiet};
use crate::engine::host_job::HostJob;
use crate::engine::host_ops::{SshHost, run_script};
use crate::engine::outcome::StepOutcome;
use crate::engine::plan::{Content, PendingNote, PutFile, PutKind, Step};
use crate::engine::rolling::apiserver;
use crate::engine::verify;
use crate::etcd::{self, ClientTls};
use crate::host_paths;
use crate::inventory::{Host, Inventory};
use crate::planning::membership::{self, LiveMember};
use crate::render::{self, RenderError, Templates};
use crate::ssh::{HostTarget, Pool};

/// How a removal runs.
#[derive(Debug, Clone)]
pub struct RemoveSettings {
    pub dry_run: bool,
    /// Go on when the quorum guard refuses (with a warning).
    pub force: bool,
    /// The hosts are gone for good: never contacted, not reset.
    pub unreachable: bool,
    pub concurrency: usize,
    /// UTC `YYYYMMDDTHHMMSSZ`: names the removed hosts' moved-aside etcd data dir.
    pub stamp: String,
    pub etcd_timeout: Duration,
    /// Who takes the cluster lock (not taken for a dry run).
    pub lock: LockRequest,
}

#[derive(Debug, thiserror::Error)]
pub enum RemoveError {
    #[error(
        "{host} is not a host of the cluster's config; `kinit remove` takes hosts listed there \
         (a live etcd member or haproxy backend whose host was deleted from cluster.yaml: put \
         the host back, run `kinit remove {host}` (with `--unreachable` if it is gone), then \
         delete it)"
    )]
    UnknownHost { host: String },
    #[error(
        "removing {hosts} would leave no control-plane host; use `kinit reset` to take the whole \
         cluster down"
    )]
    EveryControlPlane { hosts: String },
    #[error(
        "cannot reach {host} over SSH ({error}); if it is gone for good, remove it without \
         contacting it: `kinit remove {host} --unreachable`"
    )]
    Unreachable { host: String, error: String },
    #[error(
        "the etcd members of {hosts} must leave etcd, but there is no etcd client certificate in \
         the PKI dir to ask etcd with"
    )]
    NoClient { hosts: String },
    #[error(
        "etcd answers on none of its members ({endpoints}), so the members of {hosts} cannot be \
         removed; bring etcd back first"
    )]
    NoMemberAnswers { endpoints: String, hosts: String },
    #[error(
        "the etcd members have changed since the plan was shown: it removed {shown}, now it \
         would remove {now}; nothing was changed, run `kinit remove` again to see the new plan"
    )]
    Changed { shown: String, now: String },
    #[error(transparent)]
    Refused(#[from] RemovalRefused),
    #[error(transparent)]
    Membership(#[from] MembershipError),
    #[error(transparent)]
    Reset(#[from] reset::ResetError),
    #[error("rendering the files of {host} without the removed hosts: {source}")]
    Render {
        host: String,
        #[source]
        source: RenderError,
    },
    /// Another run holds the cluster lock (named), or a host did not answer while it was taken.
    #[error(transparent)]
    Locked(LockFailure),
    #[error("interrupted before any host was changed")]
    Interrupted,
    #[error(
        "interrupted while {step}; run `kinit remove` again to finish (each step is re-run \
         safely)"
    )]
    InterruptedDuring { step: &'static str },
}

impl From<LockFailure> for RemoveError {
    fn from(e: LockFailure) -> Self {
        match e {
            LockFailure::Interrupted => RemoveError::Interrupted,
            e => RemoveError::Locked(e),
        }
    }
}

/// What `kinit remove` will do (shown before the confirmation, and by `--dry-run`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RemovePlan {
    pub hosts: Vec<String>,
    pub unreachable: bool,
    /// The etcd members that leave (none: no removed host runs a live member).
    pub etcd: Option<MemberRemoval>,
    /// The healthy member's client URL the removals go through.
    #[serde(skip)]
    via_url: String,
    #[serde(skip)]
    client_urls: BTreeMap<u64, Vec<String>>,
    /// Hosts reset afterwards (not those gone for good).
    pub reset: Vec<String>,
    /// Hosts that stay whose files name the removed ones (control planes, then the other
    /// nodes), updated one at a time in this order.
    pub update: Vec<String>,
    /// The files rendered anew there (only those that differ are written).
    pub files: Vec<&'static str>,
}

/// One control plane that stays, after its update.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HostUpdate {
    pub host: String,
    pub written: Vec<String>,
    /// `reload haproxy`, ...: what the changed files asked of the units.
    pub units: Vec<String>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RemoveReport {
    pub dry_run: bool,
    pub plan: RemovePlan,
    /// Per removed control plane, how its apiserver left the load balancer before anything
    /// stopped: drained from every haproxy, or why not (haproxy's health check then takes it
    /// out once it stops answering).
    pub drained: Vec<String>,
    /// The member IDs removed (hex).
    pub removed_members: Vec<String>,
    pub reset: Option<ResetReport>,
    /// The Nodes of hosts gone for good (`--unreachable`), deleted without a drain.
    pub gone_nodes: Vec<reset::NodeLeaving>,
    pub updates: Vec<HostUpdate>,
    /// What the operator deletes from cluster.yaml now.
    pub delete_from_config: Vec<String>,
}

impl RemoveReport {
    pub fn ok(&self) -> bool {
        self.reset.as_ref().is_none_or(ResetReport::ok)
            && self.updates.iter().all(|u| u.error.is_none())
    }
}

/// The hosts named, checked against the inventory: each must be there (a control plane, an
/// etcd member or a worker: every role is something removal takes out), and a control plane
/// must stay.
pub fn chosen<'a>(inv: &'a Inventory, names: &[String]) -> Result<Vec<&'a Host>, RemoveError> {
    let mut out: Vec<&Host> = Vec::new();
    for name in names {
        let host = inv
            .host(name)
            .ok_or_else(|| RemoveError::UnknownHost { host: name.clone() })?;
        if !out.iter().any(|h| h.name == host.name) {
            out.push(host);
        }
    }
    let names: BTreeSet<&str> = out.iter().map(|h| h.name.as_str()).collect();
    if out.iter().any(|h| h.has(Role::ControlPlane))
        && inv.control_plane().all(|h| names.contains(h.name.as_str()))
    {
        return Err(RemoveError::EveryControlPlane {
            hosts: join(names.iter()),
        });
    }
    Ok(out)
}

/// The inventory as it is once `names` are deleted from the config.
pub fn without(inv: &Inventory, names: &BTreeSet<String>) -> Inventory {
    let mut rest = inv.clone();
    rest.hosts.retain(|h| !names.contains(&h.name));
    rest
}

/// The files that name other control planes, etcd members or nodes, and so change on the hosts
/// that stay: haproxy's backends, keepalived's peers, with external etcd the apiserver's
/// `--etcd-servers` (stacked, it talks to its local member only), and the pod network's routes
/// to the other nodes' pod slices.
pub fn files_to_update(inv: &Inventory) -> Vec<&'static str> {
    let mut files: Vec<&'static str> = [ComponentId::Haproxy, ComponentId::Keepalived]
        .into_iter()
        .map(components::component)
        .filter(|c| c.when.is_none_or(|w| w.holds(inv)))
        .flat_map(|c| c.files.iter())
        .filter(|f| matches!(f.on_change, OnChange::Reload(_)))
        .map(|f| f.path)
        .collect();
    if inv.topology == Topology::External {
        // Where the apiserver's flags are: its static pod's manifest, or its unit file.
        files.push(match inv.control_plane_mode {
            ControlPlaneMode::StaticPod => host_paths::KUBE_APISERVER_MANIFEST,
            ControlPlaneMode::Systemd => host_paths::KUBE_APISERVER_UNIT,
        });
    }
    if !components::component(ComponentId::Containerd)
        .hosts(inv)
        .is_empty()
    {
        files.push(host_paths::POD_NETWORK_SCRIPT);
    }
    files
}

/// The hosts that stay and hold a file of [`files_to_update`]: the control planes, then the
/// other nodes (the pod network's routes).
pub fn hosts_to_update(rest: &Inventory) -> Vec<String> {
    let mut hosts: Vec<String> = rest.control_plane().map(|h| h.name.clone()).collect();
    for h in components::component(ComponentId::Containerd).hosts(rest) {
        if !hosts.contains(&h.name) {
            hosts.push(h.name.clone());
        }
    }
    hosts
}

fn join<S: AsRef<str>>(items: impl Iterator<Item = S>) -> String {
    items
        .map(|s| s.as_ref().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

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
async fn recheck(
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

/// Carry out `plan` (shown for `hosts`) under the cluster lock on every host of `targets`:
/// the lock taken (not for a dry run; a holder is refused by name and nothing changes), the
/// members read again (the confirmation may have come long after the plan), then members
/// removed, hosts reset, the control planes that stay updated; the lock released however it
/// ended.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    inv: &Inventory,
    tls: Option<&ClientTls>,
    hosts: &[&Host],
    plan: RemovePlan,
    targets: &BTreeMap<String, HostTarget>,
    pool: Arc<Pool>,
    templates: &Templates,
    settings: &RemoveSettings,
    cancel: &CancellationToken,
    observer: &dyn Observer,
) -> Result<RemoveReport, RemoveError> {
    if cancel.is_cancelled() {
        return Err(RemoveError::Interrupted);
    }
    if settings.dry_run {
        return carry_out(inv, tls, plan, targets, pool, templates, settings, cancel).await;
    }
    let locked = settings.lock.take(&pool, targets, cancel, observer).await?;
    let rechecked = recheck(inv, tls, hosts, settings, plan);
    let interrupted = Err(RemoveError::Interrupted);
    let result = match verify::or_cancelled(cancel, interrupted, rechecked).await {
        Ok(plan) => carry_out(inv, tls, plan, targets, pool, templates, settings, cancel).await,
        Err(e) => Err(e),
    };
    settings.lock.release(&locked).await;
    result
}

/// Carry out `plan`: members removed, hosts reset, the control planes that stay updated.
#[allow(clippy::too_many_arguments)]
async fn carry_out(
    inv: &Inventory,
    tls: Option<&ClientTls>,
    plan: RemovePlan,
    targets: &BTreeMap<String, HostTarget>,
    pool: Arc<Pool>,
    templates: &Templates,
    settings: &RemoveSettings,
    cancel: &CancellationToken,
) -> Result<RemoveReport, RemoveError> {
    let going: BTreeSet<String> = plan.hosts.iter().cloned().collect();
    let rest = without(inv, &going);
    // Their Nodes first, while every apiserver serves: drained (pods evicted), and deleted once
    // their hosts are reset. Hosts gone for good are not reset, and keep theirs.
    let resetting: BTreeSet<String> = plan.reset.iter().cloned().collect();
    let (node_api, nodes) = reset::drain_nodes(inv, &resetting, settings.dry_run).await;
    if cancel.is_cancelled() {
        return Err(RemoveError::Interrupted);
    }
    let drained = if settings.dry_run {
        Vec::new()
    } else {
        drain_apiservers(inv, &plan, targets, &pool, settings.unreachable, cancel).await
    };
    if cancel.is_cancelled() {
        return Err(RemoveError::Interrupted);
    }
    let mut removed_members = Vec::new();
    if let (Some(r), Some(tls), false) = (&plan.etcd, tls, settings.dry_run) {
        let live: Vec<LiveMember> = r
            .members
            .iter()
            .map(|m| LiveMember {
                id: m.id.clone(),
                raw_id: m.raw_id,
                client_urls: plan.client_urls.get(&m.raw_id).cloned().unwrap_or_default(),
                name: m.name.clone(),
                host: m.host.clone(),
                healthy: m.healthy,
                learner: m.learner,
            })
            .collect();
        let interrupted = Err(RemoveError::InterruptedDuring {
            step: "removing etcd members",
        });
        let removing = async {
            etcd_members::remove(tls, &live, &plan.via_url, settings.etcd_timeout)
                .await
                .map_err(RemoveError::from)
        };
        verify::or_cancelled(cancel, interrupted, removing).await?;
        removed_members = live.into_iter().map(|m| m.id).collect();
    }
    let reset = if plan.reset.is_empty() {
        None
    } else {
        let plans = plan
            .reset
            .iter()
            .filter_map(|h| inv.host(h))
            .map(|h| reset_plan::for_host(inv, h, &inv.pki_dir))
            .collect();
        let reset_settings = ResetSettings {
            dry_run: settings.dry_run,
            purge: false,
            concurrency: settings.concurrency,
            stamp: settings.stamp.clone(),
            etcd_timeout: settings.etcd_timeout,
            locked_by_caller: true,
            break_lock: false,
        };
        // Against the inventory without the removed hosts: their members are gone already,
        // so the reset asks nothing more of etcd.
        Some(
            reset::run(
                &rest,
                tls,
                plans,
                targets,
                pool.clone(),
                &reset_settings,
                cancel,
            )
            .await?,
        )
    };
    // (The reset ran against the inventory without these hosts: their Nodes are this step's.)
    let mut reset = reset;
    if let Some(r) = reset.as_mut() {
        r.nodes = nodes;
        if let Some(api) = &node_api {
            reset::delete_nodes(api, &mut r.nodes, &r.hosts).await;
        }
    }
    let gone: BTreeSet<String> = going.difference(&resetting).cloned().collect();
    let gone_nodes = if settings.unreachable && !cancel.is_cancelled() {
        reset::delete_gone_nodes(inv, &gone, settings.dry_run).await
    } else {
        Vec::new()
    };
    let mut updates = Vec::new();
    for name in &plan.update {
        if cancel.is_cancelled() {
            break;
        }
        let Some(host) = rest.host(name) else {
            continue;
        };
        let update = update_host(
            &rest,
            host,
            &plan.files,
            targets,
            &pool,
            templates,
            settings,
            cancel,
        )
        .await?;
        let failed = update.error.is_some();
        updates.push(update);
        // One host at a time: a host whose reload failed stops the rest.
        if failed {
            break;
        }
    }
    Ok(RemoveReport {
        dry_run: settings.dry_run,
        delete_from_config: plan.hosts.clone(),
        plan,
        drained,
        removed_members,
        reset,
        gone_nodes,
        updates,
    })
}

/// How long the requests a drained apiserver still serves get to finish before its etcd
/// member leaves and its host is reset.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// Before a removed control plane's etcd member leaves (its apiserver reads that member) and
/// its host is reset: every haproxy stops sending its apiserver new requests, and those in
/// flight get [`DRAIN_GRACE`] to finish. A host gone for good is not asked. A cancel stops the
/// waits (the caller stops before the next step).
async fn drain_apiservers(
    inv: &Inventory,
    plan: &RemovePlan,
    targets: &BTreeMap<String, HostTarget>,
    pool: &Arc<Pool>,
    unreachable: bool,
    cancel: &CancellationToken,
) -> Vec<String> {
    let balancers: Vec<(String, HostTarget)> = components::component(ComponentId::Haproxy)
        .hosts(inv)
        .into_iter()
        .filter(|h| !(unreachable && plan.hosts.contains(&h.name)))
        .filter_map(|h| Some((h.name.clone(), targets.get(&h.name)?.clone())))
        .collect();
    let apiservers: Vec<&String> = plan
        .hosts
        .iter()
        .filter(|h| inv.host(h).is_some_and(|h| h.has(Role::ControlPlane)))
        .collect();
    if balancers.is_empty() || apiservers.is_empty() {
        return Vec::new();
    }
    let mut notes = Vec::new();
    for host in apiservers {
        notes.push(match apiserver::drain(pool, &balancers, host, cancel).await {
            Ok(()) => format!("{host}: its apiserver was drained from every haproxy"),
            Err(e) => format!(
                "{host}: its apiserver could not be drained through haproxy's runtime API ({e}); \
                 haproxy's /readyz check takes it out once it stops answering"
            ),
        });
    }
    verify::or_cancelled(cancel, (), tokio::time::sleep(DRAIN_GRACE)).await;
    notes
}

/// haproxy and keepalived must be running again after a reload before the next host goes.
const UNITS_ACTIVE: &str = r#"for i in $(seq 1 20); do
  ok=yes
  for u in "$@"; do systemctl is-active -q "$u" || ok=no; done
  [ $ok = yes ] && exit 0
  sleep 0.5
done
for u in "$@"; do echo "$u: $(systemctl is-active "$u")" >&2; done
exit 1"#;

#[allow(clippy::too_many_arguments)]
async fn update_host(
    rest: &Inventory,
    host: &Host,
    paths: &[&'static str],
    targets: &BTreeMap<String, HostTarget>,
    pool: &Arc<Pool>,
    templates: &Templates,
    settings: &RemoveSettings,
    cancel: &CancellationToken,
) -> Result<HostUpdate, RemoveError> {
    let rendered =
        render::render_host(rest, host, templates).map_err(|source| RemoveError::Render {
            host: host.name.clone(),
            source,
        })?;
    let mut files = put_files(&rendered, paths);
    let mut units: Vec<_> = [ComponentId::Haproxy, ComponentId::Keepalived]
        .into_iter()
        .map(components::component)
        .filter(|c| c.runs_on(rest, host))
        .flat_map(|c| c.units.iter().copied())
        .collect();
    let mut update = HostUpdate {
        host: host.name.clone(),
        written: Vec::new(),
        units: Vec::new(),
        error: None,
    };
    let Some(target) = targets.get(&host.name) else {
        update.error = Some("no SSH target".into());
        return Ok(update);
    };
    pod_network_where_it_runs(pool, target, &mut files, &mut units).await;
    // The apiserver as a unit whose flags name the etcd members (external etcd): restarted when
    // they changed, drained from every haproxy before and back in rotation once ready.
    let apiserver = components::component(ComponentId::KubeApiserver);
    let restarts_apiserver =
        apiserver.runs_on(rest, host) && apiserver.files.iter().any(|f| paths.contains(&f.path));
    if restarts_apiserver {
        units.extend(apiserver.units.iter().copied());
    }
    let balancers: Vec<(String, HostTarget)> = components::component(ComponentId::Haproxy)
        .hosts(rest)
        .into_iter()
        .filter_map(|h| Some((h.name.clone(), targets.get(&h.name)?.clone())))
        .collect();
    let session = match pool.get(target).await {
        Ok(s) => s,
        Err(e) => {
            update.error = Some(e.to_string());
            return Ok(update);
        }
    };
    let mut steps = vec![Step::Put {
        kind: PutKind::Files,
        files,
    }];
    steps.extend(units.iter().copied().map(Step::Unit));
    if restarts_apiserver && !settings.dry_run {
        // A failed drain leaves haproxy's /readyz check to take it out while it shuts down.
        let _ = apiserver::drain(pool, &balancers, &host.name, cancel).await;
    }
    let job = HostJob {
        phase: "remove".into(),
        host: host.name.clone(),
        steps,
        dry_run: settings.dry_run,
        hold_restarts: false,
        dry_notes: Default::default(),
        observer: Arc::new(Quiet),
    };
    match job.run(&SshHost(session.clone())).await {
        Ok(outcomes) => update.record(outcomes),
        Err(failure) => {
            update.error = Some(failure.to_string());
            return Ok(update);
        }
    }
    if !settings.dry_run && !units.is_empty() {
        let names: Vec<&str> = units.iter().map(|u| u.name).collect();
        update.error = units_active(&session, &names, cancel).await.err();
    }
    if restarts_apiserver && !settings.dry_run && update.error.is_none() {
        let ca_path = rest.pki_dir.join("ca.crt");
        let back = match std::fs::read(&ca_path) {
            Ok(ca) => apiserver::back(pool, &balancers, &ca, &host.name, host.address, cancel)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(format!("reading the cluster CA {}: {e}", ca_path.display())),
        };
        if let Err(e) = back {
            update.error = Some(format!("kube-apiserver not back: {e}"));
        }
    }
    Ok(update)
}

/// The rendered files among `paths`, as the host job writes them.
fn put_files(rendered: &[render::RenderedFile], paths: &[&str]) -> Vec<PutFile> {
    rendered
        .iter()
        .filter(|r| paths.contains(&r.path.as_str()))
        .map(|r| PutFile {
            path: r.path.to_string(),
            sha256: crate::ssh::sha256_hex(r.content.as_bytes()),
            content: Content::Bytes(Arc::new(r.content.clone().into_bytes())),
            mode: r.mode,
            owner: r.owner.to_string(),
            notes: match r.on_change {
                OnChange::Nothing => Vec::new(),
                OnChange::Restart(u) => vec![PendingNote::Restart(u)],
                OnChange::Reload(u) => vec![PendingNote::Reload(u)],
            },
        })
        .collect()
}

/// The pod network's routes are set again only where they run (a bundle without containerd
/// started no pod network: a new script must not start one).
async fn pod_network_where_it_runs(
    pool: &Arc<Pool>,
    target: &HostTarget,
    files: &mut Vec<PutFile>,
    units: &mut Vec<components::UnitRow>,
) {
    if !files
        .iter()
        .any(|f| f.path == host_paths::POD_NETWORK_SCRIPT)
    {
        return;
    }
    let active = match pool.get(target).await {
        Ok(session) => run_script(
            &session,
            "systemctl is-active -q \"$1\"",
            &[components::table::POD_NETWORK_UNIT],
            Duration::from_secs(10),
        )
        .await
        .is_ok_and(|out| out.success()),
        Err(_) => false,
    };
    if active {
        units.extend(
            components::component(ComponentId::Containerd)
                .units
                .iter()
                .copied()
                .filter(|u| u.name == components::table::POD_NETWORK_UNIT),
        );
    } else {
        files.retain(|f| f.path != host_paths::POD_NETWORK_SCRIPT);
    }
}

/// Every one of `units` active on the host (within [`UNITS_ACTIVE`]'s wait); else why not.
async fn units_active(
    session: &crate::ssh::Session,
    units: &[&str],
    cancel: &CancellationToken,
) -> Result<(), String> {
    let active = run_script(session, UNITS_ACTIVE, units, Duration::from_secs(30));
    match verify::or_cancelled(cancel, None, async { Some(active.await) }).await {
        Some(Ok(out)) if out.success() => Ok(()),
        Some(Ok(out)) => Err(format!("after the reload: {}", out.stderr_text())),
        Some(Err(e)) => Err(e.to_string()),
        None => Err("interrupted while waiting for the units".into()),
    }
}

impl HostUpdate {
    /// What the host job wrote and which units it restarted or reloaded.
    fn record(&mut self, outcomes: Vec<StepOutcome>) {
        for o in outcomes {
            match o {
                StepOutcome::Files { written, .. } => {
                    self.written.extend(written.into_iter().map(|w| w.path))
                }
                StepOutcome::Unit { unit, action, .. } => {
                    let verb = serde_json::to_value(action)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default();
                    if verb != "none" {
                        self.units.push(format!("{verb} {unit}"));
                    }
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests;
