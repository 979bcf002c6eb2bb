//! A phase's `wait` checks, made from this machine once every host finished. A wait for
//! something that runs under the kubelet is skipped, and says so, when the kubelet is not
//! started (the component table's bundle gate). A cancelled run stops waiting at once.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::playbook::{Phase, Wait};
use super::run_context::phase_components;
use super::run_error::{OperatorError, RunError};
use super::verify;
use crate::bundle::Bundle;
use crate::components::{ComponentId, StartPolicy, component};
use crate::inventory::Inventory;
use crate::ssh::{HostTarget, Pool};

pub struct WaitContext<'a> {
    pub inventory: &'a Inventory,
    pub pool: &'a Arc<Pool>,
    pub targets: &'a BTreeMap<String, HostTarget>,
    pub bundle: &'a Bundle,
    pub dry_run: bool,
    pub cancel: &'a CancellationToken,
}

/// Wait for `wait` on the phase's `hosts`: the line to show, or the failure.
pub async fn wait(
    phase: &Phase,
    hosts: &[String],
    wait: &Wait,
    ctx: &WaitContext<'_>,
) -> Result<Option<String>, RunError> {
    let inv = ctx.inventory;
    let what = describe(wait, inv, hosts);
    if phase_components(phase).any(|c| c.static_pod) {
        let lacking = component(ComponentId::Kubelet).lacking(ctx.bundle);
        if !lacking.is_empty() {
            return Ok(Some(format!(
                "not waiting for {what}: nothing runs it until a kubelet runs (the bundle lacks {})",
                lacking.join(", ")
            )));
        }
    }
    if ctx.dry_run {
        return Ok(Some(format!("would wait for {what}")));
    }
    let address = |h: &String| inv.host(h).map(|x| x.address).expect("an inventory host");
    let result = match wait {
        Wait::Tcp(t) => {
            let addrs = hosts
                .iter()
                .map(|h| (h.clone(), SocketAddr::new(address(h), t.port)))
                .collect();
            verify::tcp(addrs, t.timeout, ctx.cancel).await
        }
        Wait::EtcdHealthy(t) => {
            let tls = crate::etcd::ClientTls::from_pki_dir(&inv.pki_dir).map_err(|e| {
                RunError::Operator {
                    phase: phase.name.clone(),
                    error: OperatorError::EtcdClient(e),
                }
            })?;
            verify::etcd_healthy(inv, &tls, t.timeout, ctx.cancel).await
        }
        Wait::Vip(t) => {
            let targets: Vec<(String, HostTarget)> = hosts
                .iter()
                .map(|h| (h.clone(), ctx.targets[h].clone()))
                .collect();
            verify::vip(inv, ctx.pool, &targets, t.timeout, ctx.cancel).await
        }
        Wait::Https(w) => {
            let ca = read_ca(phase, inv).map_err(|e| *e)?;
            let targets = hosts.iter().map(|h| (h.clone(), address(h))).collect();
            verify::https(targets, w.port, &w.path, &ca, w.timeout, ctx.cancel).await
        }
        Wait::Endpoint(w) => {
            let ca = read_ca(phase, inv).map_err(|e| *e)?;
            verify::https_url(&inv.endpoint.url(), &w.path, &ca, w.timeout, ctx.cancel).await
        }
        Wait::ApiserversInRotation(t) => {
            let ca = read_ca(phase, inv).map_err(|e| *e)?;
            apiservers_in_rotation(ctx, hosts, &ca, t.timeout).await
        }
        Wait::UnitsActive(t) => {
            let expected = hosts
                .iter()
                .map(|h| {
                    let host = inv.host(h).expect("an inventory host");
                    let units = phase_units_on(phase, inv, host, ctx.bundle);
                    (h.clone(), ctx.targets[h].clone(), units)
                })
                .filter(|(_, _, units)| !units.is_empty())
                .collect();
            verify::units_active(ctx.pool, expected, t.timeout, ctx.cancel).await
        }
    };
    result.map(Some).map_err(|error| match error {
        verify::WaitError::Cancelled => RunError::Interrupted,
        error => RunError::Wait {
            phase: phase.name.clone(),
            what,
            error,
        },
    })
}

/// The cluster CA, read for a wait that checks TLS against it.
fn read_ca(phase: &Phase, inv: &Inventory) -> Result<Vec<u8>, Box<RunError>> {
    let path = inv.pki_dir.join("ca.crt");
    std::fs::read(&path).map_err(|source| {
        Box::new(RunError::Operator {
            phase: phase.name.clone(),
            error: OperatorError::ReadCa { path, source },
        })
    })
}

/// Every apiserver of `hosts` that a run left drained from a haproxy put back once it is ready.
async fn apiservers_in_rotation(
    ctx: &WaitContext<'_>,
    hosts: &[String],
    ca: &[u8],
    timeout: std::time::Duration,
) -> Result<String, verify::WaitError> {
    let inv = ctx.inventory;
    let address = |h: &String| inv.host(h).map(|x| x.address).expect("an inventory host");
    let balancers: Vec<(String, HostTarget)> = component(ComponentId::Haproxy)
        .hosts(inv)
        .into_iter()
        .filter_map(|h| Some((h.name.clone(), ctx.targets.get(&h.name)?.clone())))
        .collect();
    let apiservers: Vec<(String, std::net::IpAddr)> =
        hosts.iter().map(|h| (h.clone(), address(h))).collect();
    let undrain = super::rolling::apiserver::undrain_left_over(
        ctx.pool,
        &balancers,
        ca,
        &apiservers,
        ctx.cancel,
    );
    match tokio::time::timeout(timeout, undrain).await {
        Ok(Ok(put_back)) if put_back.is_empty() => Ok(format!(
            "no apiserver is left drained in {} haproxy host(s)",
            balancers.len()
        )),
        Ok(Ok(put_back)) => Ok(put_back.join("; ")),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(verify::WaitError::TimedOut {
            waited: timeout,
            last: "putting drained apiservers back".to_string(),
        }),
    }
}

/// The units the table starts on `host` for the phase's components (none whose bundle gate
/// holds them back).
fn phase_units_on(
    phase: &Phase,
    inv: &Inventory,
    host: &crate::inventory::Host,
    bundle: &Bundle,
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for c in
        phase_components(phase).filter(|c| c.lacking(bundle).is_empty() && c.runs_on(inv, host))
    {
        for u in c.units.iter().filter(|u| u.start == StartPolicy::Always) {
            if !out.iter().any(|x| x == u.name) {
                out.push(u.name.to_string());
            }
        }
    }
    out
}

fn describe(wait: &Wait, inv: &Inventory, hosts: &[String]) -> String {
    match wait {
        Wait::Tcp(t) => format!("port {} on {}", t.port, hosts.join(", ")),
        Wait::EtcdHealthy(_) => "every etcd member healthy over mTLS".to_string(),
        Wait::Vip(_) => format!(
            "the VIP {} on one host, answering on port {}",
            inv.endpoint.address, inv.endpoint.port
        ),
        Wait::Https(w) => format!(
            "https://<host>:{}{} on {}",
            w.port,
            w.path,
            hosts.join(", ")
        ),
        Wait::Endpoint(w) => format!(
            "{}{} (the control-plane endpoint)",
            inv.endpoint.url(),
            w.path
        ),
        Wait::UnitsActive(_) => format!("the phase's units active on {}", hosts.join(", ")),
        Wait::ApiserversInRotation(_) => {
            format!(
                "no apiserver of {} left drained in haproxy",
                hosts.join(", ")
            )
        }
    }
}
