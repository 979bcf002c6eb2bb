//! The cluster's ports: on each host, that the ports its components need are free or held by
//! the component kinit deployed there (`Port-2379`); between hosts, that the paths the cluster
//! will use are open (`PortReachable-2380`).

use std::collections::BTreeMap;

use super::checks::{fail, pass, warn};
use super::{HostObservation, PreflightFinding};
use crate::components::{self, ComponentPort, Holder};
use crate::facts::probe::CONNECT_TIMEOUT_SECS;
use crate::facts::{ConnectOutcome, HostFacts, Listener, ListeningProcess};
use crate::inventory::{Host, Inventory};

/// Commands are cut to this many characters in findings.
const COMMAND_SHOWN: usize = 120;

/// Whether `listener` belongs to the component kinit deploys for `port`: the same program, in
/// the unit (or pod) kinit runs it in, from the binary kinit installs. A listener whose
/// processes the probe could not see is not ours.
pub(super) fn ours(f: &HostFacts, listener: &Listener, port: &ComponentPort) -> bool {
    if listener.process.as_deref() != Some(port.process) || listener.pids.is_empty() {
        return false;
    }
    listener.pids.iter().all(|pid| {
        f.processes.get(pid).is_some_and(|p| match port.holder {
            Holder::Pod => p.in_a_pod(),
            Holder::Unit { unit, exe } => {
                p.unit() == Some(format!("{unit}.service").as_str())
                    && exe.is_none_or(|e| p.exe.as_deref() == Some(e))
            }
        })
    })
}

/// How kinit runs the component, for a message.
fn expected(port: &ComponentPort) -> String {
    match port.holder {
        Holder::Pod => format!("{} as a static pod under the kubelet", port.component),
        Holder::Unit {
            unit,
            exe: Some(exe),
        } => format!("{} as {unit}.service running {exe}", port.component),
        Holder::Unit { unit, exe: None } => format!("{} as {unit}.service", port.component),
    }
}

fn describe(l: &Listener, p: Option<&ListeningProcess>) -> String {
    let name = l.process.as_deref().unwrap_or("an unknown process");
    let Some(p) = p else {
        return format!("{name} on {}", l.address);
    };
    let mut command: String = p.command.trim().chars().take(COMMAND_SHOWN).collect();
    if p.command.trim().chars().count() > COMMAND_SHOWN {
        command.push('…');
    }
    let mut parts = vec![format!("pid {}", p.pid)];
    if let Some(exe) = &p.exe {
        parts.push(exe.clone());
    }
    if !command.is_empty() {
        parts.push(format!("`{command}`"));
    }
    parts.push(match p.unit() {
        Some(unit) if p.run_by_its_unit() || p.in_a_pod() => format!("unit {unit}"),
        Some(unit) if unit.ends_with(".service") => {
            format!("no unit of its own: started from within {unit}")
        }
        Some(unit) => format!("no unit of its own: in {unit}"),
        None => "no systemd unit".to_string(),
    });
    format!("{name} ({}) on {}", parts.join(", "), l.address)
}

/// How to get rid of a stray listener, by what runs it.
fn removal(l: &Listener, p: Option<&ListeningProcess>, port: u16) -> String {
    let Some(p) = p else {
        return format!("stop what listens on {port} (`ss -ltnp 'sport = :{port}'` shows it)");
    };
    if p.in_a_pod() {
        return format!(
            "it runs in a pod ({}): remove its manifest from /etc/kubernetes/manifests or delete the pod, then re-run preflight",
            p.unit().unwrap_or("kubepods")
        );
    }
    match p.unit() {
        Some(unit) if p.run_by_its_unit() => format!(
            "stop it (`systemctl stop {unit}`) and keep it from coming back (`systemctl disable {unit}`, or remove the package that installed {}), then re-run preflight",
            l.process.as_deref().unwrap_or("it")
        ),
        _ => format!(
            "it was started by hand, outside any unit of its own: `kill {}`, then re-run preflight",
            p.pid
        ),
    }
}

pub(super) fn ports(inv: &Inventory, host: &Host, f: &HostFacts, out: &mut Vec<PreflightFinding>) {
    let h = host.name.as_str();
    for p in components::ports_on(inv, host) {
        let check = format!("Port-{}", p.port);
        let holders: Vec<&Listener> = f.listeners_on(p.port).collect();
        let strangers: Vec<(&Listener, Option<&ListeningProcess>)> = holders
            .iter()
            .filter(|l| !ours(f, l, &p))
            .map(|l| (*l, f.holders(l).next()))
            .collect();
        out.push(if holders.is_empty() {
            pass(
                h,
                check,
                format!("port {} is free for {}", p.port, p.component),
            )
        } else if strangers.is_empty() {
            // Held by the component kinit runs there: a re-run on a converged cluster.
            pass(
                h,
                check,
                format!("port {} is held by {}", p.port, expected(&p)),
            )
        } else {
            let who: Vec<String> = strangers.iter().map(|(l, pr)| describe(l, *pr)).collect();
            let (l, pr) = strangers[0];
            fail(
                h,
                check,
                format!(
                    "port {} is in use by {}, not by {}; {} needs it",
                    p.port,
                    who.join(", "),
                    expected(&p),
                    p.component
                ),
                &removal(l, pr, p.port),
            )
        });
    }
}

/// Whether etcd as kinit deploys it holds its client port on this host.
pub(super) fn own_etcd_running(inv: &Inventory, host: &Host, f: &HostFacts) -> bool {
    components::ports_on(inv, host)
        .iter()
        .filter(|p| p.port == crate::inventory::ports::ETCD_CLIENT)
        .any(|p| {
            let mut holders = f.listeners_on(p.port).peekable();
            holders.peek().is_some() && holders.all(|l| ours(f, l, p))
        })
}

/// The hosts connected to on one port, and how each connect ended.
type Outcomes<'a> = Vec<(&'a Host, &'a ConnectOutcome)>;

fn outcome_text(o: &ConnectOutcome) -> String {
    match o {
        ConnectOutcome::Open | ConnectOutcome::Refused => "reached".into(),
        ConnectOutcome::HostUnreachable => {
            "no route to host (EHOSTUNREACH): a firewall rejects it (ICMP host-prohibited or host-unreachable), or the host is down".into()
        }
        ConnectOutcome::NetworkUnreachable => {
            "network is unreachable: this host has no route to that address".into()
        }
        ConnectOutcome::Prohibited => {
            "refused on this host before it was sent (EACCES/EPERM): a local firewall rule or a prohibit route rejects it".into()
        }
        ConnectOutcome::Timeout => format!(
            "no answer within {CONNECT_TIMEOUT_SECS} s: a firewall drops the packets"
        ),
        ConnectOutcome::Other(text) => format!("the connect failed: {text}"),
    }
}

/// From every host, the ports of the other hosts it will use: a refusal is fine (the packet got
/// there; nothing listens before `kinit up`), a rejection or a drop is a firewall in the way.
/// Paths to a host that could not be probed are not judged: its `Reachable` failure comes first.
pub(super) fn paths(
    inv: &Inventory,
    obs: &BTreeMap<String, HostObservation>,
    out: &mut Vec<PreflightFinding>,
) {
    let reached = |name: &str| matches!(obs.get(name), Some(HostObservation::Reached { .. }));
    for host in &inv.hosts {
        let Some(HostObservation::Reached { facts: f, .. }) = obs.get(&host.name) else {
            continue;
        };
        let h = host.name.as_str();
        let expected: Vec<_> = components::connects_from(inv, host)
            .into_iter()
            .filter(|(t, _)| reached(&t.name))
            .collect();
        if expected.is_empty() {
            continue;
        }
        if f.reach.is_empty() {
            out.push(warn(
                h,
                "PortReachable",
                "could not check the paths to the other hosts (the probe needs bash for its connects)",
                "install bash, or check by hand that the etcd, apiserver and frontend ports are open between the hosts",
            ));
            continue;
        }
        // Per port, in the order the table lists them: its component and each target's outcome.
        let mut by_port: Vec<(u16, &str, Outcomes)> = Vec::new();
        for (target, p) in &expected {
            let address = target.address.to_string();
            let Some(r) = f
                .reach
                .iter()
                .find(|r| r.address == address && r.port == p.port)
            else {
                continue;
            };
            match by_port.iter_mut().find(|(port, _, _)| *port == p.port) {
                Some((_, _, v)) => v.push((target, &r.outcome)),
                None => by_port.push((p.port, p.component, vec![(target, &r.outcome)])),
            }
        }
        for (port, component, results) in by_port {
            let check = format!("PortReachable-{port}");
            let blocked: Vec<String> = results
                .iter()
                .filter(|(_, o)| !o.arrived())
                .map(|(t, o)| format!("{} ({}:{port}): {}", t.name, t.address, outcome_text(o)))
                .collect();
            let peers: Vec<&str> = results.iter().map(|(t, _)| t.name.as_str()).collect();
            out.push(if blocked.is_empty() {
                pass(
                    h,
                    check,
                    format!("reaches {component}'s port {port} on {}", peers.join(", ")),
                )
            } else {
                fail(
                    h,
                    check,
                    format!(
                        "cannot reach {component}'s port {port} on {}",
                        blocked.join("; ")
                    ),
                    &format!(
                        "allow TCP {port} from {h} ({}) to those hosts in the firewalls on both ends and between them: {component} needs it",
                        host.address
                    ),
                )
            });
        }
    }
}
