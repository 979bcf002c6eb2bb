//! The `wait` checks of a phase, made from the operator machine after every host finished its
//! actions: each polls until it holds or its timeout passes, and says what it saw last. Each
//! also stops as soon as the run is cancelled (Ctrl-C, SIGTERM), in the middle of an attempt.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::etcd::{ClientTls, health, member_list};
use crate::inventory::Inventory;
use crate::ssh::{ExecOptions, HostTarget, Pool};

const POLL: Duration = Duration::from_millis(250);
const ATTEMPT: Duration = Duration::from_secs(2);

/// Why a wait gave up.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WaitError {
    #[error("not after {:.0} s: {last}", waited.as_secs_f64())]
    TimedOut { waited: Duration, last: String },
    #[error("{0}")]
    Invalid(String),
    /// The run was cancelled while it waited.
    #[error("interrupted")]
    Cancelled,
}

/// Poll `probe` until it returns Ok or `timeout` passes; the error is the last one seen.
/// `cancel` stops it at once, during an attempt or between two.
pub(crate) async fn until<F, Fut>(
    timeout: Duration,
    cancel: &CancellationToken,
    mut probe: F,
) -> Result<String, WaitError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<String, String>>,
{
    let start = Instant::now();
    loop {
        let attempt = tokio::select! {
            biased;
            () = cancel.cancelled() => return Err(WaitError::Cancelled),
            attempt = probe() => attempt,
        };
        match attempt {
            Ok(detail) => return Ok(detail),
            Err(last) if start.elapsed() >= timeout => {
                return Err(WaitError::TimedOut {
                    waited: timeout,
                    last,
                });
            }
            Err(_) => tokio::select! {
                biased;
                () = cancel.cancelled() => return Err(WaitError::Cancelled),
                () = tokio::time::sleep(POLL) => {}
            },
        }
    }
}

/// `work`, or `cancelled` as soon as `cancel` fires (the work is dropped where it is): for a
/// wait that is not one of this module's.
pub async fn or_cancelled<T>(
    cancel: &CancellationToken,
    cancelled: T,
    work: impl std::future::Future<Output = T>,
) -> T {
    tokio::select! {
        biased;
        () = cancel.cancelled() => cancelled,
        done = work => done,
    }
}

async fn tcp_open(addr: SocketAddr) -> Result<(), String> {
    match tokio::time::timeout(ATTEMPT, TcpStream::connect(addr)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("{addr}: {e}")),
        Err(_) => Err(format!("{addr}: no answer")),
    }
}

/// Every address accepts TCP connections.
pub async fn tcp(
    addrs: Vec<(String, SocketAddr)>,
    timeout: Duration,
    cancel: &CancellationToken,
) -> Result<String, WaitError> {
    let n = addrs.len();
    until(timeout, cancel, || {
        let addrs = addrs.clone();
        async move {
            let results = in_turn(
                addrs
                    .iter()
                    .map(|(h, a)| async move { (h, tcp_open(*a).await) }),
            )
            .await;
            let down: Vec<String> = results
                .into_iter()
                .filter_map(|(h, r)| r.err().map(|e| format!("{h} ({e})")))
                .collect();
            if down.is_empty() {
                Ok(format!("{n} host(s) answer"))
            } else {
                Err(format!("not answering: {}", down.join(", ")))
            }
        }
    })
    .await
}

/// Await each in turn: hosts are few and every attempt is bounded by ATTEMPT.
async fn in_turn<F: std::future::Future>(futs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut out = Vec::new();
    for f in futs {
        out.push(f.await);
    }
    out
}

/// Every etcd member reports healthy over mTLS, and the member list names every inventory etcd
/// host as a voting member (any other member is named in the answer).
pub async fn etcd_healthy(
    inv: &Inventory,
    tls: &ClientTls,
    timeout: Duration,
    cancel: &CancellationToken,
) -> Result<String, WaitError> {
    let members = inv.etcd_members();
    let mut want: Vec<String> = members.iter().map(|m| m.name.clone()).collect();
    want.sort();
    until(timeout, cancel, || {
        let members = members.clone();
        let want = want.clone();
        async move {
            let checks = members.iter().map(|m| async move {
                let url = m.client_url();
                match health(tls, &url, ATTEMPT).await {
                    Ok(true) => Ok(()),
                    Ok(false) => Err(format!("{}: unhealthy", m.name)),
                    Err(e) => Err(format!("{}: {e}", m.name)),
                }
            });
            let results = in_turn(checks).await;
            let bad: Vec<String> = results.into_iter().filter_map(Result::err).collect();
            if !bad.is_empty() {
                return Err(bad.join("; "));
            }
            let first = members.first().map(|m| m.client_url()).unwrap_or_default();
            let list = member_list(tls, &first, ATTEMPT)
                .await
                .map_err(|e| e.to_string())?;
            let mut names: Vec<String> = list
                .iter()
                .filter(|m| !m.is_learner)
                .map(|m| m.name.clone())
                .collect();
            names.sort();
            if !want.iter().all(|w| names.contains(w)) {
                return Err(format!(
                    "voting members are [{}], the inventory says [{}]",
                    names.join(", "),
                    want.join(", ")
                ));
            }
            // Members cluster.yaml does not name are reported, never removed by `up`.
            let strangers: Vec<String> = list
                .iter()
                .filter(|m| !want.contains(&m.name))
                .map(|m| format!("{} ({:x})", m.name, m.id))
                .collect();
            let extra = if strangers.is_empty() {
                String::new()
            } else {
                format!(
                    "; also members, not in cluster.yaml: {}",
                    strangers.join(", ")
                )
            };
            Ok(format!(
                "{} member(s) healthy: {}{extra}",
                want.len(),
                want.join(", ")
            ))
        }
    })
    .await
}

/// The member behind `endpoint` is healthy again and has caught up with its leader: its
/// revision reached the leader's, as read once the member answered.
pub async fn etcd_member_caught_up(
    tls: &ClientTls,
    endpoint: &str,
    timeout: Duration,
    cancel: &CancellationToken,
) -> Result<String, WaitError> {
    let target = std::sync::Mutex::new(None::<i64>);
    let target = &target;
    until(timeout, cancel, || async move {
        if !health(tls, endpoint, ATTEMPT)
            .await
            .map_err(|e| e.to_string())?
        {
            return Err(format!("{endpoint}: unhealthy"));
        }
        let own = crate::etcd::status(tls, endpoint, ATTEMPT)
            .await
            .map_err(|e| e.to_string())?;
        if own.leader == 0 {
            return Err(format!("{endpoint}: no leader yet"));
        }
        let known = *target.lock().expect("not poisoned");
        let wanted = match known {
            Some(r) => r,
            None => {
                let members = member_list(tls, endpoint, ATTEMPT)
                    .await
                    .map_err(|e| e.to_string())?;
                let leader = members
                    .iter()
                    .find(|m| m.id == own.leader)
                    .and_then(|m| m.client_urls.first())
                    .ok_or_else(|| format!("leader {:x} has no client URL", own.leader))?;
                crate::etcd::status(tls, leader, ATTEMPT)
                    .await
                    .map_err(|e| e.to_string())?
                    .revision
            }
        };
        *target.lock().expect("not poisoned") = Some(wanted);
        if own.revision >= wanted {
            Ok(format!("healthy, at the leader's revision {wanted}"))
        } else {
            Err(format!(
                "{endpoint}: at revision {}, the leader was at {wanted}",
                own.revision
            ))
        }
    })
    .await
}

/// Exactly one control-plane host holds the VIP, and VIP:port accepts connections.
pub async fn vip(
    inv: &Inventory,
    pool: &Arc<Pool>,
    hosts: &[(String, HostTarget)],
    timeout: Duration,
    cancel: &CancellationToken,
) -> Result<String, WaitError> {
    let vip: IpAddr = inv.endpoint.address.parse().map_err(|_| {
        WaitError::Invalid(format!(
            "the endpoint {} is not an IP address",
            inv.endpoint.address
        ))
    })?;
    let port = inv.endpoint.port;
    until(timeout, cancel, || async move {
        let holders = vip_holders(pool, hosts, vip).await?;
        match holders.as_slice() {
            [one] => {
                tcp_open(SocketAddr::new(vip, port)).await?;
                Ok(format!("{vip} is on {one}; {vip}:{port} answers"))
            }
            [] => Err(format!("no host holds {vip}")),
            many => Err(format!(
                "{vip} is on {} hosts: {}",
                many.len(),
                many.join(", ")
            )),
        }
    })
    .await
}

/// Which hosts have `vip` on an interface (one `ip` call per host).
pub async fn vip_holders(
    pool: &Arc<Pool>,
    hosts: &[(String, HostTarget)],
    vip: IpAddr,
) -> Result<Vec<String>, String> {
    let mut holders = Vec::new();
    for (name, target) in hosts {
        let session = pool.get(target).await.map_err(|e| format!("{name}: {e}"))?;
        let out = session
            .exec(
                "ip -o addr show",
                &ExecOptions {
                    timeout: Some(ATTEMPT),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| format!("{name}: {e}"))?;
        if holds(&out.stdout_text(), vip) {
            holders.push(name.clone());
        }
    }
    Ok(holders)
}

/// Whether `ip -o addr show` output lists `vip`.
pub fn holds(ip_addr_output: &str, vip: IpAddr) -> bool {
    ip_addr_output.lines().any(|line| {
        let mut words = line.split_whitespace();
        while let Some(w) = words.next() {
            if (w == "inet" || w == "inet6")
                && let Some(cidr) = words.next()
            {
                let addr = cidr.split('/').next().unwrap_or_default();
                if addr.parse::<IpAddr>().ok() == Some(vip) {
                    return true;
                }
            }
        }
        false
    })
}

/// Each target answers GET https://<addr>:<port><path> with 200, verified against the CA for
/// the host's address.
pub async fn https(
    targets: Vec<(String, IpAddr)>,
    port: u16,
    path: &str,
    ca_pem: &[u8],
    timeout: Duration,
    cancel: &CancellationToken,
) -> Result<String, WaitError> {
    let n = targets.len();
    until(timeout, cancel, || {
        let targets = targets.clone();
        async move {
            let mut bad = Vec::new();
            for (name, addr) in &targets {
                let url = format!("https://{}{path}", SocketAddr::new(*addr, port));
                match crate::etcd::https_get(&url, ca_pem, None, None, ATTEMPT).await {
                    Ok((200, _)) => {}
                    Ok((code, _)) => bad.push(format!("{name}: HTTP {code}")),
                    Err(e) => bad.push(format!("{name}: {e}")),
                }
            }
            if bad.is_empty() {
                Ok(format!("{n} host(s) answer {path}"))
            } else {
                Err(bad.join("; "))
            }
        }
    })
    .await
}

/// `name`'s `https://<addr>:<port><path>` answers 200 `passes` times in a row, `spacing` apart
/// (a failure starts the count again): for a server whose own checks may still report the
/// state from before a dependency restarted.
#[allow(clippy::too_many_arguments)]
pub async fn https_steady(
    name: &str,
    addr: IpAddr,
    port: u16,
    path: &str,
    ca_pem: &[u8],
    passes: u32,
    spacing: Duration,
    timeout: Duration,
    cancel: &CancellationToken,
) -> Result<String, WaitError> {
    let url = format!("https://{}{path}", SocketAddr::new(addr, port));
    let start = Instant::now();
    let mut streak = 0;
    let mut last = String::from("no answer yet");
    loop {
        let answer = tokio::select! {
            biased;
            () = cancel.cancelled() => return Err(WaitError::Cancelled),
            answer = crate::etcd::https_get(&url, ca_pem, None, None, ATTEMPT) => answer,
        };
        match answer {
            Ok((200, _)) => streak += 1,
            Ok((code, _)) => {
                streak = 0;
                last = format!("{name}: HTTP {code}");
            }
            Err(e) => {
                streak = 0;
                last = format!("{name}: {e}");
            }
        }
        if streak >= passes {
            return Ok(format!(
                "{name} answers {path} {passes} times in a row, {} ms apart",
                spacing.as_millis()
            ));
        }
        if start.elapsed() >= timeout {
            return Err(WaitError::TimedOut {
                waited: timeout,
                last,
            });
        }
        tokio::select! {
            biased;
            () = cancel.cancelled() => return Err(WaitError::Cancelled),
            () = tokio::time::sleep(spacing) => {}
        }
    }
}

/// `base` (`https://host:port`) answers `path` with 200, verified against the CA.
pub async fn https_url(
    base: &str,
    path: &str,
    ca_pem: &[u8],
    timeout: Duration,
    cancel: &CancellationToken,
) -> Result<String, WaitError> {
    let url = format!("{base}{path}");
    until(timeout, cancel, || {
        let url = url.clone();
        async move {
            match crate::etcd::https_get(&url, ca_pem, None, None, ATTEMPT).await {
                Ok((200, _)) => Ok(format!("{url} answers")),
                Ok((code, _)) => Err(format!("{url}: HTTP {code}")),
                Err(e) => Err(format!("{url}: {e}")),
            }
        }
    })
    .await
}

/// The servers of `balancer`'s haproxy (every backend), read from its loopback stats socket
/// over SSH.
pub async fn haproxy_servers(
    pool: &Arc<Pool>,
    (name, target): &(String, HostTarget),
    stats_port: u16,
) -> Result<Vec<crate::status::report::BackendServer>, String> {
    let req = crate::status::probe::ProbeRequest {
        haproxy_stats_port: Some(stats_port),
        ..Default::default()
    };
    let script = crate::status::probe::script(&req).map_err(|e| e.to_string())?;
    let session = pool.get(target).await.map_err(|e| format!("{name}: {e}"))?;
    let out = session
        .exec(
            &script,
            &ExecOptions {
                timeout: Some(ATTEMPT * 3),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| format!("{name}: {e}"))?;
    match crate::status::probe::parse(&req, &out.stdout_text()).haproxy {
        Some(Ok(servers)) => Ok(servers),
        Some(Err(e)) => Err(format!("{name}: {e}")),
        None => Err(format!("{name}: no haproxy stats")),
    }
}

/// Every haproxy host (`hosts`) shows the server `server` of its `apiserver` backend in `want`
/// (`UP`: it sends that apiserver requests; `DRAIN`: no new ones), read from the loopback stats
/// socket over SSH.
pub async fn haproxy_backend_state(
    pool: &Arc<Pool>,
    hosts: &[(String, HostTarget)],
    stats_port: u16,
    server: &str,
    want: &str,
    timeout: Duration,
    cancel: &CancellationToken,
) -> Result<String, WaitError> {
    let n = hosts.len();
    until(timeout, cancel, || async move {
        let mut bad = Vec::new();
        for balancer in hosts {
            let name = &balancer.0;
            match haproxy_servers(pool, balancer, stats_port).await {
                Ok(servers) => {
                    let state = servers
                        .iter()
                        .find(|s| s.backend == "apiserver" && s.server == server)
                        .map(|s| s.status.clone());
                    match state.as_deref() {
                        Some(s) if s == want => {}
                        Some(other) => bad.push(format!("{name}'s haproxy has {server} {other}")),
                        None => bad.push(format!("{name}'s haproxy has no server {server}")),
                    }
                }
                Err(e) => bad.push(e),
            }
        }
        if bad.is_empty() {
            Ok(format!("{n} haproxy host(s) have {server} {want}"))
        } else {
            Err(bad.join("; "))
        }
    })
    .await
}

/// Each host (name, target, units) reports every one of its units `active` to
/// `systemctl is-active`, all in one poll.
pub async fn units_active(
    pool: &Arc<Pool>,
    hosts: Vec<(String, HostTarget, Vec<String>)>,
    timeout: Duration,
    cancel: &CancellationToken,
) -> Result<String, WaitError> {
    let count: usize = hosts.iter().map(|(_, _, u)| u.len()).sum();
    let n = hosts.len();
    until(timeout, cancel, || {
        let hosts = hosts.clone();
        async move {
            let mut bad = Vec::new();
            for (name, target, units) in &hosts {
                let req = crate::status::probe::ProbeRequest {
                    units: units.clone(),
                    ..Default::default()
                };
                let script = crate::status::probe::script(&req).map_err(|e| e.to_string())?;
                let session = match pool.get(target).await {
                    Ok(s) => s,
                    Err(e) => {
                        bad.push(format!("{name}: {e}"));
                        continue;
                    }
                };
                let options = ExecOptions {
                    timeout: Some(ATTEMPT * 3),
                    ..Default::default()
                };
                match session.exec(&script, &options).await {
                    Ok(out) => {
                        let probe = crate::status::probe::parse(&req, &out.stdout_text());
                        bad.extend(
                            probe
                                .services
                                .iter()
                                .filter(|s| s.state != "active")
                                .map(|s| format!("{name}: {} is {}", s.name, s.state)),
                        );
                    }
                    Err(e) => bad.push(format!("{name}: {e}")),
                }
            }
            if bad.is_empty() {
                Ok(format!("{count} unit(s) active on {n} host(s)"))
            } else {
                Err(bad.join("; "))
            }
        }
    })
    .await
}

#[cfg(test)]
mod tests;
