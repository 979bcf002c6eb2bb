//! The hosts that stay, after a removal: the removed apiservers drained from every haproxy
//! first, then each staying host's files that named the removed ones rendered anew, with the
//! reloads the component table asks, one host at a time.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{HostUpdate, Removal, RemoveError, RemovePlan};
use crate::components::{self, ComponentId, OnChange};
use crate::config::Role;
use crate::engine::host_job::HostJob;
use crate::engine::host_ops::{SshHost, run_script};
use crate::engine::outcome::StepOutcome;
use crate::engine::plan::{Content, PendingNote, PutFile, PutKind, Step};
use crate::engine::rolling::apiserver;
use crate::engine::verify;
use crate::host_paths;
use crate::inventory::{Host, Inventory};
use crate::render;
use crate::ssh::{HostTarget, Pool};

/// How long the requests a drained apiserver still serves get to finish before its etcd
/// member leaves and its host is reset.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// The haproxy hosts a removal drains the leaving apiservers from (a host gone for good is not
/// asked), and the leaving hosts that run an apiserver.
fn balancers_and_apiservers<'p>(
    r: &Removal<'_>,
    plan: &'p RemovePlan,
) -> (Vec<(String, HostTarget)>, Vec<&'p String>) {
    let (inv, targets) = (r.inv, r.targets);
    let unreachable = r.settings.unreachable;
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
    (balancers, apiservers)
}

/// Before a removed control plane's etcd member leaves (its apiserver reads that member) and
/// its host is reset: every haproxy stops sending its apiserver new requests. One line per
/// host; the caller gives the requests in flight [`DRAIN_GRACE`].
pub(super) async fn drain_apiservers(r: &Removal<'_>, plan: &RemovePlan) -> Vec<String> {
    let (balancers, apiservers) = balancers_and_apiservers(r, plan);
    if balancers.is_empty() {
        return Vec::new();
    }
    let mut notes = Vec::new();
    for host in apiservers {
        notes.push(match apiserver::drain(&r.pool, &balancers, host, r.cancel).await {
            Ok(()) => format!("{host}: its apiserver was drained from every haproxy"),
            Err(e) => format!(
                "{host}: its apiserver could not be drained through haproxy's runtime API ({e}); \
                 haproxy's /readyz check takes it out once it stops answering"
            ),
        });
    }
    notes
}

/// The requests a drained apiserver still serves finish (a cancel cuts the wait short: the
/// caller stops before the next step).
pub(super) async fn drain_grace(cancel: &CancellationToken) {
    verify::or_cancelled(cancel, (), tokio::time::sleep(DRAIN_GRACE)).await;
}

/// The leaving apiservers back in every haproxy, when the removal stops before their hosts
/// are reset: haproxy's `/readyz` check decides again whether each gets requests (one whose
/// etcd member already left fails it and stays out). One line per host.
pub(super) async fn put_back_apiservers(r: &Removal<'_>, plan: &RemovePlan) -> Vec<String> {
    let (balancers, apiservers) = balancers_and_apiservers(r, plan);
    let mut lines = Vec::new();
    for host in apiservers.into_iter().filter(|_| !balancers.is_empty()) {
        let state = apiserver::ServerState::Ready;
        lines.push(
            match apiserver::set_backend_state(&r.pool, &balancers, host, state).await {
                Ok(()) => format!(
                    "{host}: stopped before the host was reset: its apiserver is back in every \
                     haproxy"
                ),
                Err(e) => format!("{host}: its apiserver stays drained: {e}"),
            },
        );
    }
    lines
}

/// The hosts that stay and name the removed ones updated in the plan's order, one at a time;
/// a host whose reload failed stops the rest (its error is in its entry).
pub(super) async fn update_rest(
    r: &Removal<'_>,
    rest: &Inventory,
    plan: &RemovePlan,
) -> Result<Vec<HostUpdate>, RemoveError> {
    let mut updates = Vec::new();
    for name in &plan.update {
        if r.cancel.is_cancelled() {
            break;
        }
        let Some(host) = rest.host(name) else {
            continue;
        };
        let update = update_host(r, rest, host, &plan.files).await?;
        let failed = update.error.is_some();
        updates.push(update);
        if failed {
            break;
        }
    }
    Ok(updates)
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

/// One staying host: its files that named the removed hosts written again (rendered without
/// them, with the operator's templates), its units reloaded, its apiserver drained around a
/// restart and put back once ready.
async fn update_host(
    r: &Removal<'_>,
    rest: &Inventory,
    host: &Host,
    paths: &[&'static str],
) -> Result<HostUpdate, RemoveError> {
    let (targets, pool, templates, settings, cancel) =
        (r.targets, &r.pool, r.templates, r.settings, r.cancel);
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
        phase: super::phases::RemovePhase::Update.id().into(),
        host: host.name.clone(),
        steps,
        dry_run: settings.dry_run,
        hold_restarts: false,
        dry_notes: Default::default(),
        observer: r.observer.clone(),
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
