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
    /// The other host's name.
    pub peer: String,
    pub port: u16,
    pub outcome: ConnectOutcome,
}

/// The `reach` section: `<peer> <port> <outcome words>` lines; each connect is first written as
/// `timeout` and again when it finishes, and the last line for a (peer, port) wins.
pub(super) fn parse_reach(lines: &[&str]) -> Vec<PortReach> {
    let mut out: Vec<PortReach> = Vec::new();
    for line in lines {
        let mut words = line.splitn(3, ' ');
        let (Some(peer), Some(port), Some(outcome)) = (words.next(), words.next(), words.next())
        else {
            continue;
        };
        let Ok(port) = port.parse() else {
            continue;
        };
        let outcome = ConnectOutcome::from_probe(outcome);
        match out.iter_mut().find(|r| r.peer == peer && r.port == port) {
            Some(r) => r.outcome = outcome,
            None => out.push(PortReach {
                peer: peer.to_string(),
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
            "cp2 2379 timeout",
            "cp2 2380 timeout",
            "cp3 6443 timeout",
            "cp4 6443 timeout",
            "cp5 6443 timeout",
            "cp2 2379 Connection refused",
            "cp3 6443 No route to host",
            "cp4 6443 Permission denied",
            "cp5 6443 Invalid argument",
            "garbage",
        ]);
        let outcome = |peer: &str, port: u16| {
            r.iter()
                .find(|x| x.peer == peer && x.port == port)
                .map(|x| x.outcome.clone())
        };
        assert_eq!(outcome("cp2", 2379), Some(ConnectOutcome::Refused));
        assert_eq!(outcome("cp2", 2380), Some(ConnectOutcome::Timeout));
        assert_eq!(outcome("cp3", 6443), Some(ConnectOutcome::HostUnreachable));
        assert_eq!(outcome("cp4", 6443), Some(ConnectOutcome::Prohibited));
        assert_eq!(
            outcome("cp5", 6443),
            Some(ConnectOutcome::Other("Invalid argument".into()))
        );
        assert_eq!(r.len(), 5);
    }
}
