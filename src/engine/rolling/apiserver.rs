//! An apiserver restart that no client sees. Before it restarts, every haproxy drains it
//! through the runtime API (`set server apiserver/<host> state drain` on the admin socket,
//! reached over the SSH connection): no new request goes to it, while the requests in flight
//! finish (it keeps serving for its `--shutdown-delay-duration` after SIGTERM). It is back when
//! its own `/readyz` passes (verified against the cluster CA, from this machine); then every
//! haproxy is told it is ready again, and the next host goes only once every haproxy has it
//! UP. Where the login cannot reach the admin socket (a non-root user outside the haproxy
//! group), haproxy's `/readyz` check alone takes it out while it fails readiness during its
//! shutdown delay, and the run says so.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::super::event::RestartKind;
use super::super::playbook::Phase;
use super::super::run_context::{Engine, RunOptions, RunState};
use super::super::verify::{self, WaitError};
use super::node;
use crate::components::{self, ComponentId, Healthy};
use crate::engine::host_ops::run_script;
use crate::host_paths;
use crate::inventory::ports;
use crate::ssh::{HostTarget, Pool};

/// The PIDs of the kube-apiserver processes on a host, one per line, in order.
const PROCESSES: &str = r#"pgrep -x "$1" | sort -n || true"#;

/// Another process runs than `old` (both [`PROCESSES`]'s output): none of the old PIDs is
/// left, and some process is.
pub(super) fn replaced(old: &str, now: &str) -> bool {
    let old: Vec<&str> = old.lines().collect();
    now.lines().next().is_some() && now.lines().all(|pid| !old.contains(&pid))
}

/// How long a restarted apiserver may take to be ready and back in every haproxy.
const APISERVER_BACK: Duration = Duration::from_secs(180);
/// One runtime API command.
const ADMIN_COMMAND: Duration = Duration::from_secs(5);
/// How long every haproxy may take to show the server drained.
const DRAINED: Duration = Duration::from_secs(10);
/// `/readyz` passes in a row before an apiserver whose etcd member restarted is put back.
const STEADY_PASSES: u32 = 5;

/// A server state the runtime API sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerState {
    Drain,
    Ready,
}

/// The runtime API command putting `server` of the apiserver backend in `state`. Host names are
/// validated names (letters, digits, `-`, `.`), never a second command.
pub fn set_server_state(server: &str, state: ServerState) -> String {
    let state = match state {
        ServerState::Drain => "drain",
        ServerState::Ready => "ready",
    };
    format!("set server apiserver/{server} state {state}\n")
}

/// Some haproxy did not take a runtime API command, or did not show the state it asked for.
#[derive(Debug, thiserror::Error)]
#[error("{}", .failures.join("; "))]
pub struct BackendStateError {
    /// One entry per haproxy host: `cp1: haproxy said ...`.
    pub failures: Vec<String>,
}

/// Tell every haproxy of `balancers` to put `host`'s apiserver in `state` (the caller decides
/// whether to go on without it).
pub async fn set_backend_state(
    pool: &Pool,
    balancers: &[(String, HostTarget)],
    host: &str,
    state: ServerState,
) -> Result<(), BackendStateError> {
    let command = set_server_state(host, state);
    let mut failed = Vec::new();
    for (name, target) in balancers {
        let answer = match pool.get(target).await {
            Ok(session) => session
                .unix_socket_exchange(
                    host_paths::HAPROXY_ADMIN_SOCKET,
                    command.as_bytes(),
                    ADMIN_COMMAND,
                )
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match answer {
            // haproxy answers a command it carried out with nothing but a blank line.
            Ok(text) if String::from_utf8_lossy(&text).trim().is_empty() => {}
            Ok(text) => failed.push(format!(
                "{name}: haproxy said {:?}",
                String::from_utf8_lossy(&text).trim()
            )),
            Err(e) => failed.push(format!("{name}: {e}")),
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(BackendStateError { failures: failed })
    }
}

/// Every haproxy of `balancers` stops sending new requests to `host`'s apiserver (those in
/// flight finish), and shows it drained.
pub async fn drain(
    pool: &Arc<Pool>,
    balancers: &[(String, HostTarget)],
    host: &str,
    cancel: &CancellationToken,
) -> Result<(), BackendStateError> {
    set_backend_state(pool, balancers, host, ServerState::Drain).await?;
    verify::haproxy_backend_state(
        pool,
        balancers,
        ports::HAPROXY_STATS,
        host,
        "DRAIN",
        DRAINED,
        cancel,
    )
    .await
    .map(|_| ())
    .map_err(|e| BackendStateError {
        failures: vec![e.to_string()],
    })
}

impl Engine {
    /// Before `host` restarts: its apiserver out of every haproxy's rotation where the restart
    /// takes it away (the apiserver itself; the only etcd member it reads; the kubelet that
    /// runs it as a static pod, which may re-create its container).
    pub(super) async fn drain_before_restart(
        &self,
        phase: &Phase,
        healthy: Healthy,
        host: &str,
        kind: RestartKind,
        node_roll: bool,
        state: &RunState,
    ) -> HostDrains {
        let restart = kind == RestartKind::Restart;
        let own = healthy == Healthy::ApiserverReady && restart;
        if own {
            self.drain_apiserver(phase, host, "kube-apiserver restarts")
                .await;
        }
        let reads_this_member = healthy == Healthy::EtcdMember
            && restart
            && self.apiserver_reads_only_local_etcd(host, state).await;
        if reads_this_member {
            self.drain_apiserver(
                phase,
                host,
                "its etcd member restarts (its apiserver reads only that member)",
            )
            .await;
        }
        let static_apiserver = node_roll
            && restart
            && self.inventory.host(host).is_some_and(|h| {
                components::component(ComponentId::ControlPlane).runs_on(&self.inventory, h)
            });
        let pods_before = if static_apiserver {
            let before = self.static_pod_processes(host).await;
            self.drain_apiserver(
                phase,
                host,
                "its kubelet restarts (a kubelet may re-create its static pods)",
            )
            .await;
            before
        } else {
            None
        };
        HostDrains {
            own,
            reads_this_member,
            static_apiserver,
            pods_before,
        }
    }

    /// After `host`'s restart: its node Ready again (a node roll) or the unit serving, then
    /// the apiserver a drain took away settled and ready again.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn healthy_after_restart(
        &self,
        phase: &Phase,
        healthy: Healthy,
        host: &str,
        visit: Option<&node::NodeVisit>,
        drains: &HostDrains,
        opts: &RunOptions,
        state: &mut RunState,
    ) -> Result<String, WaitError> {
        let mut back = match visit {
            Some(v) => self.node_back(v).await,
            None => self.serving_again(phase, host, healthy, opts, state).await,
        };
        if drains.static_apiserver
            && let Ok(node) = &back
        {
            back = self
                .static_pods_settled_after_kubelet(host, drains.pods_before.clone())
                .await
                .map(|b| format!("{node}; {b}"));
        }
        if drains.reads_this_member
            && let Ok(member) = &back
        {
            back = self
                .apiserver_back_after_etcd(host)
                .await
                .map(|b| format!("{member}; {b}"));
        }
        back
    }

    /// Before `host`'s apiserver restarts (or stops serving for a while: `before` says why):
    /// every haproxy stops sending it new requests.
    pub(super) async fn drain_apiserver(&self, phase: &Phase, host: &str, before: &str) {
        let balancers = self.targets_of(ComponentId::Haproxy);
        if balancers.is_empty() {
            return;
        }
        match drain(&self.pool, &balancers, host, &self.cancel).await {
            Ok(_) => self.note(
                phase,
                format!("{host}: drained from every haproxy before {before}"),
            ),
            Err(e) => self.note(
                phase,
                format!(
                    "{host}: could not drain it through haproxy's runtime API ({e}) before \
                     {before}; haproxy's /readyz check takes it out once it fails instead"
                ),
            ),
        }
    }

    /// After a failed step under `host`'s drained apiserver (the node would not drain, the
    /// restart failed, or the host did not come back healthy): every haproxy is told at once
    /// that the apiserver is ready again, without waiting on its `/readyz`, since the run stops
    /// here. haproxy's own `/readyz` check still keeps it out until it answers; left drained, it
    /// would take no requests until the next `up`.
    pub(super) async fn undrain_after_failure(&self, phase: &Phase, host: &str) {
        let balancers = self.targets_of(ComponentId::Haproxy);
        if balancers.is_empty() {
            return;
        }
        let said = match set_backend_state(&self.pool, &balancers, host, ServerState::Ready).await {
            Ok(()) => format!(
                "{host}: the step failed; its apiserver is no longer drained (haproxy's /readyz \
                 check decides when it takes requests)"
            ),
            Err(e) => format!(
                "{host}: the step failed and its apiserver could not be put back ({e}); the \
                 next `up` puts it back"
            ),
        };
        self.note(phase, said);
    }

    /// After `host`'s etcd member restarted under its drained apiserver: the apiserver's own
    /// etcd check may still report the connection from before the restart (and fail a moment
    /// later, while its client reconnects), so it is put back only once `/readyz` passed
    /// [`STEADY_PASSES`] times in a row, a second apart.
    pub(super) async fn apiserver_back_after_etcd(&self, host: &str) -> Result<String, WaitError> {
        let address = self
            .inventory
            .host(host)
            .expect("an inventory host")
            .address;
        let ca = self.cluster_ca()?;
        let steady = verify::https_steady(
            host,
            address,
            ports::APISERVER,
            "/readyz",
            &ca,
            STEADY_PASSES,
            Duration::from_secs(1),
            APISERVER_BACK,
            &self.cancel,
        )
        .await?;
        let back = self.apiserver_back(host, address).await?;
        Ok(format!("{steady}; {back}"))
    }

    /// The kube-apiserver processes running on `host` (their PIDs): a static pod's apiserver is
    /// replaced by the kubelet some time after its manifest changed, and this tells the new one
    /// from the old. None when none runs or the host does not answer.
    pub(super) async fn apiserver_processes(&self, host: &str) -> Option<String> {
        self.processes(host, "kube-apiserver").await
    }

    /// The PIDs of the processes named `program` on `host` (a static pod's: see
    /// [`Self::apiserver_processes`]).
    pub(super) async fn processes(&self, host: &str, program: &str) -> Option<String> {
        let session = self.pool.get(&self.targets[host]).await.ok()?;
        let out = run_script(&session, PROCESSES, &[program], ADMIN_COMMAND)
            .await
            .ok()?;
        Some(out.stdout_text().trim().to_string()).filter(|p| !p.is_empty())
    }

    /// After `host`'s kube-apiserver manifest changed under its drained apiserver: the kubelet
    /// replaced the apiserver that ran (`before`: its processes), then the new one is ready and
    /// back in every haproxy, as after a unit's restart.
    pub(super) async fn static_apiserver_back(
        &self,
        host: &str,
        before: Option<String>,
    ) -> Result<String, WaitError> {
        let replaced = self
            .static_pod_replaced(host, "kube-apiserver", before)
            .await?;
        let back = self.apiserver_back_named(host).await?;
        Ok(format!("{replaced}; {back}"))
    }

    /// After a static pod's manifest changed on `host`: the kubelet replaced the `program` that
    /// ran (`before`: its processes).
    pub(super) async fn static_pod_replaced(
        &self,
        host: &str,
        program: &str,
        before: Option<String>,
    ) -> Result<String, WaitError> {
        match before {
            Some(old) => {
                verify::until(APISERVER_BACK, &self.cancel, || async {
                    match self.processes(host, program).await {
                        Some(now) if replaced(&old, &now) => {
                            Ok(format!("the kubelet replaced {host}'s {program}"))
                        }
                        _ => Err(format!(
                            "the kubelet has not replaced {host}'s {program} (pid {old}) yet"
                        )),
                    }
                })
                .await
            }
            None => Ok(format!("no {program} ran on {host} before")),
        }
    }

    /// [`Self::apiserver_back`] for an inventory host, by name.
    pub(super) async fn apiserver_back_named(&self, host: &str) -> Result<String, WaitError> {
        let address = self
            .inventory
            .host(host)
            .expect("an inventory host")
            .address;
        self.apiserver_back(host, address).await
    }

    fn cluster_ca(&self) -> Result<Vec<u8>, WaitError> {
        let ca_path = self.inventory.pki_dir.join("ca.crt");
        std::fs::read(&ca_path).map_err(|e| {
            WaitError::Invalid(format!("reading the cluster CA {}: {e}", ca_path.display()))
        })
    }

    pub(super) async fn apiserver_back(
        &self,
        host: &str,
        address: IpAddr,
    ) -> Result<String, WaitError> {
        let ca = self.cluster_ca()?;
        back(
            &self.pool,
            &self.targets_of(ComponentId::Haproxy),
            &ca,
            host,
            address,
            &self.cancel,
        )
        .await
    }
}

/// After `host`'s apiserver restarted (or was left as it was): its own `/readyz` passes
/// (verified against `ca_pem`, from this machine), then every haproxy of `balancers` is told it
/// is ready again and shows it UP.
pub async fn back(
    pool: &Arc<Pool>,
    balancers: &[(String, HostTarget)],
    ca_pem: &[u8],
    host: &str,
    address: IpAddr,
    cancel: &CancellationToken,
) -> Result<String, WaitError> {
    let ready = verify::https(
        vec![(host.to_string(), address)],
        ports::APISERVER,
        "/readyz",
        ca_pem,
        APISERVER_BACK,
        cancel,
    )
    .await?;
    if balancers.is_empty() {
        return Ok(ready);
    }
    // Undo the drain (a no-op where it did not take); a failure shows in the wait below.
    let _ = set_backend_state(pool, balancers, host, ServerState::Ready).await;
    let back = verify::haproxy_backend_state(
        pool,
        balancers,
        ports::HAPROXY_STATS,
        host,
        "UP",
        APISERVER_BACK,
        cancel,
    )
    .await?;
    Ok(format!("{ready}; {back}"))
}

/// Apiservers a kinit run drained and did not put back (it was killed, or its machine lost
/// power, between the drain and the restart's end): each shown `DRAIN` by some haproxy of
/// `balancers` is put back once its own `/readyz` passes, as [`back`] does after a restart.
/// A server in `MAINT` is an operator's choice and stays. What was put back, one line per host.
pub async fn undrain_left_over(
    pool: &Arc<Pool>,
    balancers: &[(String, HostTarget)],
    ca_pem: &[u8],
    apiservers: &[(String, IpAddr)],
    cancel: &CancellationToken,
) -> Result<Vec<String>, WaitError> {
    let mut drained = std::collections::BTreeSet::new();
    for balancer in balancers {
        let servers = verify::haproxy_servers(pool, balancer, ports::HAPROXY_STATS)
            .await
            .map_err(WaitError::Invalid)?;
        drained.extend(
            servers
                .into_iter()
                .filter(|s| s.backend == "apiserver" && s.status == "DRAIN")
                .map(|s| s.server),
        );
    }
    let mut put_back = Vec::new();
    for (host, address) in apiservers.iter().filter(|(h, _)| drained.contains(h)) {
        back(pool, balancers, ca_pem, host, *address, cancel).await?;
        put_back.push(format!(
            "{host}: left drained by an interrupted run; back in every haproxy"
        ));
    }
    Ok(put_back)
}

/// What a host's restart took out of haproxy's rotation before it began.
pub(super) struct HostDrains {
    /// The restarting unit is its apiserver.
    own: bool,
    /// Its apiserver reads only the etcd member that restarts.
    reads_this_member: bool,
    /// Its kubelet, which runs the apiserver as a static pod, restarts.
    static_apiserver: bool,
    /// The static pods' processes before the kubelet's restart (to tell re-created ones).
    pods_before: Option<super::kubelet_settle::StaticPodProcesses>,
}

impl HostDrains {
    /// Whether anything was drained: whatever fails from here must put it back.
    pub(super) fn any(&self) -> bool {
        self.own || self.reads_this_member || self.static_apiserver
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_api_commands_are_one_line() {
        assert_eq!(
            set_server_state("cp1", ServerState::Drain),
            "set server apiserver/cp1 state drain\n"
        );
        assert_eq!(
            set_server_state("cp-2.example", ServerState::Ready),
            "set server apiserver/cp-2.example state ready\n"
        );
    }

    #[test]
    fn a_static_pods_apiserver_is_replaced_once_none_of_its_processes_is_left() {
        assert!(replaced("101", "202"));
        assert!(!replaced("101", "101"), "the same process");
        assert!(
            !replaced("101", "101\n202"),
            "the old one still shutting down"
        );
        assert!(
            !replaced("101", ""),
            "none yet: the new one has not started"
        );
        assert!(replaced("101\n102", "203"));
    }
}
