//! The paths between hosts: from each host, a TCP connect to each port of another host the
//! cluster will use (etcd between its members, the apiserver and the frontend from every host to
//! the control planes). Before `kinit up` nothing listens there, so what matters is how the
//! connect fails: refused means the SYN got there; anything else is a firewall or a missing route.

use serde::Serialize;

/// How one connect from this host ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "outcome", content = "detail")]
pub enum ConnectOutcome {
    /// Something accepted the connection.
    Open,
    /// ECONNREFUSED: the host answered with a reset: the path is open, nothing listens yet.
    Refused,
    /// EHOSTUNREACH: an ICMP host-unreachable or admin-prohibited came back (a firewall that
    /// rejects), or the neighbour did not answer ARP.
    HostUnreachable,
    /// ENETUNREACH: this host has no route to the address.
    NetworkUnreachable,
    /// EACCES / EPERM: this host's own policy refused to send (a `prohibit` route, an output
    /// firewall rule that rejects).
    Prohibited,
    /// No answer before the probe's connect timeout: something drops the packets.
    Timeout,
    /// Any other error, as the host's C library words it (`Invalid argument`: a blackhole route).
    Other(String),
}

impl ConnectOutcome {
    /// From the probe's word for it: `open`, `timeout`, or bash's strerror text.
    pub fn from_probe(text: &str) -> ConnectOutcome {
        match text.trim() {
            "open" => ConnectOutcome::Open,
            "timeout" => ConnectOutcome::Timeout,
            "Connection refused" => ConnectOutcome::Refused,
            "No route to host" => ConnectOutcome::HostUnreachable,
            "Network is unreachable" => ConnectOutcome::NetworkUnreachable,
            "Permission denied" | "Operation not permitted" => ConnectOutcome::Prohibited,
            other => ConnectOutcome::Other(other.to_string()),
        }
    }

    /// Whether the packets got to the host (open or refused: the path works).
    pub fn arrived(&self) -> bool {
        matches!(self, ConnectOutcome::Open | ConnectOutcome::Refused)
    }
}

/// One connect the probe made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortReach {
    /// The other host's address, as Rust prints an `IpAddr` (the probe was given it so).
    pub address: String,
    pub port: u16,
    pub outcome: ConnectOutcome,
}

/// The `reach` section: `ADDR PORT timeout` for every connect first, `ADDR PORT open` for one
/// that connected, and bash's own words for one that failed
/// (`bash: line 1: /dev/tcp/ADDR/PORT: Connection refused`). The last line about an address
/// and port wins.
pub(super) fn parse_reach(lines: &[&str]) -> Vec<PortReach> {
    let mut out: Vec<PortReach> = Vec::new();
    for line in lines {
        let parsed = match line.split_once("/dev/tcp/") {
            Some((_, rest)) => rest.split_once(": ").and_then(|(target, text)| {
                let (address, port) = target.rsplit_once('/')?;
                Some((address, port, text))
            }),
            None => {
                let mut words = line.splitn(3, ' ');
                match (words.next(), words.next(), words.next()) {
                    (Some(a), Some(p), Some(w)) if !line.starts_with("bash:") => Some((a, p, w)),
                    _ => None,
                }
            }
        };
        let Some((address, port, text)) = parsed else {
            continue;
        };
        let Ok(port) = port.parse() else {
            continue;
        };
        let outcome = ConnectOutcome::from_probe(text);
        match out
            .iter_mut()
            .find(|r| r.address == address && r.port == port)
        {
            Some(r) => r.outcome = outcome,
            None => out.push(PortReach {
                address: address.to_string(),
                port,
                outcome,
            }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_line_wins_and_each_errno_has_its_case() {
        let r = parse_reach(&[
            "10.0.0.12 2379 timeout",
            "10.0.0.12 2380 timeout",
            "10.0.0.13 6443 timeout",
            "10.0.0.14 6443 timeout",
            "10.0.0.15 6443 timeout",
            "fd00::16 6443 timeout",
            "10.0.0.17 6443 timeout",
            "bash: connect: Connection refused",
            "bash: line 1: /dev/tcp/10.0.0.12/2379: Connection refused",
            "bash: /dev/tcp/10.0.0.13/6443: No route to host",
            "bash: line 1: /dev/tcp/10.0.0.14/6443: Permission denied",
            "bash: line 1: /dev/tcp/10.0.0.15/6443: Invalid argument",
            "bash: line 1: /dev/tcp/fd00::16/6443: Connection refused",
            "10.0.0.17 6443 open",
            "garbage",
        ]);
        let outcome = |address: &str, port: u16| {
            r.iter()
                .find(|x| x.address == address && x.port == port)
                .map(|x| x.outcome.clone())
        };
        assert_eq!(outcome("10.0.0.12", 2379), Some(ConnectOutcome::Refused));
        assert_eq!(outcome("10.0.0.12", 2380), Some(ConnectOutcome::Timeout));
        assert_eq!(
            outcome("10.0.0.13", 6443),
            Some(ConnectOutcome::HostUnreachable)
        );
        assert_eq!(outcome("10.0.0.14", 6443), Some(ConnectOutcome::Prohibited));
        assert_eq!(
            outcome("10.0.0.15", 6443),
            Some(ConnectOutcome::Other("Invalid argument".into()))
        );
        assert_eq!(outcome("fd00::16", 6443), Some(ConnectOutcome::Refused));
        assert_eq!(outcome("10.0.0.17", 6443), Some(ConnectOutcome::Open));
        assert_eq!(r.len(), 7);
    }
}
