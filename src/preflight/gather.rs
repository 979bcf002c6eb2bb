//! Gathering facts: the probe on every host at once (one SSH round trip each), plus the
//! operator-side look at the VIP. Failures become observations, never early returns: an
//! unreachable host is a finding for that host and the others are still checked.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;

use super::{HostObservation, OperatorView};
use crate::config::{LoadBalancerKind, Role};
use crate::facts::probe::READY;
use crate::facts::probe::{ProbeRequest, script};
use crate::facts::{HostFacts, ProbeParseError, ProbeTimes};
use crate::fanout::{self, FanoutError};
use crate::inventory::Inventory;
use crate::ssh::{ExecOptions, ExecOutput, Handshake, HostTarget, Pool};

/// A live address on the hosts' network answers a SYN in well under a millisecond.
const VIP_CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

fn secs(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The operator's times around one probe run.
fn probe_times(out: &ExecOutput, finished: SystemTime) -> ProbeTimes {
    let t = &out.timing;
    ProbeTimes {
        sent: secs(t.sent),
        finished: secs(finished),
        exchange: t.replied.zip(t.answered).map(|(r, a)| (secs(r), secs(a))),
    }
}

/// Probe `targets` (hosts of `inv`, in any order) over `pool`, at most `limit` at a time, each
/// probe stopped after `probe_timeout` (the probe only reads: 30 s by default is a host in
/// trouble, but hosts under emulation, QEMU without KVM, take 20-30 s).
pub async fn gather(
    inv: &Inventory,
    pool: Arc<Pool>,
    targets: Vec<HostTarget>,
    limit: usize,
    probe_timeout: Duration,
    cancel: &CancellationToken,
) -> (BTreeMap<String, HostObservation>, OperatorView) {
    let mut items = Vec::with_capacity(targets.len());
    let mut scripts = BTreeMap::new();
    for t in targets {
        let Some(host) = inv.host(&t.name) else {
            continue;
        };
        let req = ProbeRequest {
            etcd_data_dir: host.has(Role::Etcd).then(|| inv.etcd.data_dir.clone()),
            connects: crate::components::connects_from(inv, host)
                .into_iter()
                .map(|(o, p)| SocketAddr::new(o.address, p.port))
                .collect(),
            ports: crate::components::ports_on(inv, host)
                .iter()
                .map(|p| p.port)
                .collect(),
        };
        scripts.insert(t.name.clone(), script(&req));
        items.push((t.name.clone(), t));
    }
    let scripts = Arc::new(scripts);
    let handshake = Arc::new(Handshake {
        marker: READY.as_bytes().to_vec(),
        reply: b"\n".to_vec(),
    });
    let exec = ExecOptions {
        timeout: Some(probe_timeout),
        sudo: true,
        cancel: Some(cancel.clone()),
    };
    let probes = fanout::run(items, limit, cancel, move |target: HostTarget| {
        let (pool, scripts, exec, handshake) = (
            pool.clone(),
            scripts.clone(),
            exec.clone(),
            handshake.clone(),
        );
        async move {
            let script = match &scripts[&target.name] {
                Ok(s) => s.clone(),
                Err(e) => return Err(e.to_string()),
            };
            let session = pool.get(&target).await.map_err(|e| e.to_string())?;
            let out = session
                .exec_with_handshake(&script, &exec, &handshake)
                .await
                .map_err(|e| e.to_string())?;
            let finished = SystemTime::now();
            if !out.success() {
                return Err(format!(
                    "the probe exited with {:?}: {}",
                    out.status,
                    out.stderr_text().trim()
                ));
            }
            let facts = HostFacts::parse(&out.stdout_text());
            Ok(facts.map(|f| {
                let times = probe_times(&out, finished);
                tracing::debug!(host = %target.name, ?times, clock = ?f.clock, after_answer = f.clock_after_answer, "probe clock");
                let skew = f.clock_skew(&times);
                (f, skew)
            }))
        }
    });
    let vip = vip_answers(inv);
    let (results, vip_answers) = tokio::join!(probes, vip);

    let observations = results
        .into_iter()
        .map(|(name, r)| {
            let obs = match r {
                Ok(Ok((facts, clock_skew))) => HostObservation::Reached {
                    facts: Box::new(facts),
                    clock_skew,
                },
                Ok(Err(ProbeParseError::NoBash)) => HostObservation::NoBash,
                Ok(Err(e)) => HostObservation::Unreachable {
                    reason: e.to_string(),
                },
                Err(FanoutError::Failed(reason)) => HostObservation::Unreachable { reason },
                Err(e) => HostObservation::Unreachable {
                    reason: e.to_string(),
                },
            };
            (name, obs)
        })
        .collect();
    (observations, OperatorView { vip_answers })
}

/// Whether something already accepts connections on VIP:port (only for a VIP kinit manages).
async fn vip_answers(inv: &Inventory) -> Option<bool> {
    if inv.endpoint.load_balancer != LoadBalancerKind::HaproxyKeepalived {
        return None;
    }
    let ip = inv.endpoint.address.parse().ok()?;
    let addr = SocketAddr::new(ip, inv.endpoint.port);
    Some(matches!(
        tokio::time::timeout(VIP_CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr)).await,
        Ok(Ok(_))
    ))
}
