//! Gather the whole status: etcd over mutual TLS and one read-only SSH probe per host, at the
//! same time; then put the answers together. Unreachable hosts are reported, not fatal.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use super::certificates;
use super::etcd::{self as etcd_status, ExpectedMember};
use super::probe::{self, HostProbe, ProbeRequest, VersionAsk};
use super::report::{
    EtcdStatus, HaproxyStatus, HostStatus, KeepalivedState, StatusReport, VipStatus,
};
use crate::bundle::Bundle;
use crate::bundle::version::version_args;
use crate::components::{ComponentId, binaries_running_on, component, units_running_on};
use crate::etcd::ClientTls;
use crate::fanout;
use crate::inventory::{Host, Inventory, ports};
use crate::ssh::{ExecOptions, HostTarget, Pool};

#[derive(Debug, Clone)]
pub struct GatherOptions {
    /// Hosts probed over SSH at once.
    pub concurrency: usize,
    /// Per etcd request, and per host probe command.
    pub timeout: Duration,
}

impl Default for GatherOptions {
    fn default() -> Self {
        GatherOptions {
            concurrency: fanout::DEFAULT_CONCURRENCY,
            timeout: Duration::from_secs(5),
        }
    }
}

/// The systemd units `host` should have active (from the component table, with the bundle that
/// decides whether `kinit up` starts the kubelet), and whether to read haproxy's stats there.
pub fn probe_request(inv: &Inventory, host: &Host) -> ProbeRequest {
    // An unreadable bundle starts nothing gated; `kinit up` would refuse it anyway.
    let bundle = Bundle::open(inv.bundle.as_deref()).unwrap_or_default();
    let runs_haproxy = component(ComponentId::Haproxy).runs_on(inv, host);
    ProbeRequest {
        units: units_running_on(inv, host, &bundle)
            .into_iter()
            .map(str::to_string)
            .collect(),
        haproxy_stats_port: runs_haproxy.then_some(ports::HAPROXY_STATS),
        versions: binaries_running_on(inv, host, &bundle)
            .into_iter()
            .map(|(unit, binary, file)| VersionAsk {
                unit: unit.to_string(),
                binary: binary.to_string(),
                args: version_args(file).iter().map(|a| a.to_string()).collect(),
            })
            .collect(),
    }
}

/// The inventory's etcd members and their client URLs.
pub fn expected_members(inv: &Inventory) -> Vec<ExpectedMember> {
    inv.etcd_members()
        .iter()
        .map(|m| ExpectedMember {
            name: m.name.clone(),
            endpoint: m.client_url(),
        })
        .collect()
}

/// Gather everything. `targets` are the SSH targets of `inv.hosts` (matched by name).
pub async fn gather(
    inv: &Inventory,
    pool: Arc<Pool>,
    targets: Vec<HostTarget>,
    opts: &GatherOptions,
    cancel: &CancellationToken,
    now: SystemTime,
) -> StatusReport {
    let tls = ClientTls::from_pki_dir(&inv.pki_dir).map_err(|e| e.to_string());
    let expected = expected_members(inv);
    let etcd = etcd_status::gather(&expected, tls.as_ref().map_err(Clone::clone), opts.timeout);

    let mut requests = BTreeMap::new();
    for host in &inv.hosts {
        requests.insert(host.name.clone(), probe_request(inv, host));
    }
    let requests = Arc::new(requests);
    let exec = ExecOptions {
        timeout: Some(opts.timeout),
        sudo: false,
        cancel: Some(cancel.clone()),
    };
    let items = targets.into_iter().map(|t| (t.name.clone(), t)).collect();
    let worker_pool = pool.clone();
    let hosts = fanout::run(
        items,
        opts.concurrency,
        cancel,
        move |target: HostTarget| {
            let (pool, requests, exec) = (worker_pool.clone(), requests.clone(), exec.clone());
            async move {
                let req = requests.get(&target.name).cloned().unwrap_or_default();
                let script = probe::script(&req).map_err(|e| e.to_string())?;
                let session = pool.get(&target).await.map_err(|e| e.to_string())?;
                let out = session
                    .exec(&script, &exec)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok::<_, String>(probe::parse(&req, &out.stdout_text()))
            }
        },
    );
    let control_plane = super::control_plane::gather(inv, opts.timeout);
    let (etcd, hosts, control_plane) = tokio::join!(etcd, hosts, control_plane);
    let probes = hosts
        .into_iter()
        .map(|(name, r)| (name, r.map_err(|e| e.to_string())))
        .collect();
    let mut report = assemble(inv, etcd, probes, certificates::check(inv, now));
    report.control_plane = control_plane;
    report
}

/// haproxy's servers, and how they differ from the control-plane hosts of cluster.yaml.
fn backends_against_config(
    inv: &Inventory,
    servers: Vec<super::report::BackendServer>,
) -> HaproxyStatus {
    let cps: Vec<&str> = inv.control_plane().map(|h| h.name.as_str()).collect();
    let mut not_in_config: Vec<String> = servers
        .iter()
        .filter(|s| !cps.contains(&s.server.as_str()))
        .map(|s| s.server.clone())
        .collect();
    not_in_config.dedup();
    let missing = cps
        .iter()
        .filter(|c| !servers.iter().any(|s| s.server == **c))
        .map(|c| c.to_string())
        .collect();
    HaproxyStatus {
        servers,
        error: None,
        not_in_config,
        missing,
    }
}

/// Put the answers together: `probes` by host name (a host without one counts as unreachable).
pub fn assemble(
    inv: &Inventory,
    etcd: EtcdStatus,
    probes: Vec<(String, Result<HostProbe, String>)>,
    certificates: super::report::CertificateSummary,
) -> StatusReport {
    let keepalived = component(ComponentId::Keepalived);
    let vip: Option<IpAddr> = keepalived
        .hosts(inv)
        .first()
        .and_then(|_| inv.endpoint.address.parse().ok());
    let mut probes: BTreeMap<String, Result<HostProbe, String>> = probes.into_iter().collect();
    let mut hosts = Vec::new();
    for host in &inv.hosts {
        let req = probe_request(inv, host);
        let mut status = HostStatus {
            name: host.name.clone(),
            address: host.address.to_string(),
            roles: host.roles.iter().map(ToString::to_string).collect(),
            reachable: false,
            error: None,
            services: Vec::new(),
            holds_vip: None,
            keepalived: None,
            haproxy: None,
            versions: Vec::new(),
        };
        match probes.remove(&host.name) {
            None => status.error = Some("not probed".to_string()),
            Some(Err(e)) => status.error = Some(e),
            Some(Ok(p)) => {
                status.reachable = true;
                let vip_host = vip.is_some() && keepalived.runs_on(inv, host);
                if vip_host {
                    let holds = vip.is_some_and(|v| p.addresses.contains(&v));
                    status.holds_vip = Some(holds);
                    let keepalived_active = p
                        .services
                        .iter()
                        .any(|s| s.name == "keepalived" && s.state == "active");
                    status.keepalived = Some(match (keepalived_active, holds) {
                        (true, true) => KeepalivedState::Master,
                        (true, false) => KeepalivedState::Backup,
                        (false, _) => KeepalivedState::Stopped,
                    });
                }
                if req.haproxy_stats_port.is_some() {
                    status.haproxy = Some(match p.haproxy {
                        Some(Ok(servers)) => backends_against_config(inv, servers),
                        Some(Err(e)) => HaproxyStatus {
                            error: Some(e),
                            ..HaproxyStatus::default()
                        },
                        None => HaproxyStatus::default(),
                    });
                }
                status.services = p.services;
                status.versions = p.versions;
            }
        }
        hosts.push(status);
    }
    StatusReport {
        cluster: inv.name.clone(),
        etcd,
        vip: vip.map(|v| VipStatus {
            address: v.to_string(),
            holders: hosts
                .iter()
                .filter(|h| h.holds_vip == Some(true))
                .map(|h| h.name.clone())
                .collect(),
        }),
        hosts,
        certificates,
        control_plane: None,
    }
}
