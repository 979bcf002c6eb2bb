//! The one read-only command `kinit status` runs on each host, and the pure parser of its output:
//! the host's addresses (who holds the VIP), `systemctl is-active` for its services, and haproxy's
//! `show stat` from the loopback stats socket through bash's /dev/tcp (no socat on the nodes).

use std::net::IpAddr;

use super::haproxy_stats;
use super::report::{BackendServer, ServiceStatus};
use crate::ssh::SshError;
use crate::ssh::quote::quote as q;

/// What to ask one host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProbeRequest {
    /// systemd units whose state to report.
    pub units: Vec<String>,
    /// haproxy's loopback stats port, when the host runs kinit's haproxy.
    pub haproxy_stats_port: Option<u16>,
}

/// What one host answered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostProbe {
    pub addresses: Vec<IpAddr>,
    pub services: Vec<ServiceStatus>,
    /// `None` when not asked; `Err` when the stats could not be read.
    pub haproxy: Option<Result<Vec<BackendServer>, String>>,
}

const MARK: &str = "==kinit-status:";

/// A POSIX sh script (what `Session::exec` runs), reading only.
pub fn script(req: &ProbeRequest) -> Result<String, SshError> {
    let mut s = String::from("export LC_ALL=C\n");
    s.push_str(&format!("echo '{MARK}addresses=='; ip -o addr show 2>&1\n"));
    if !req.units.is_empty() {
        let units = req
            .units
            .iter()
            .map(|u| q(u))
            .collect::<Result<Vec<_>, _>>()?
            .join(" ");
        // One state per unit, in order; nothing at all when systemctl is missing.
        s.push_str(&format!(
            "echo '{MARK}services=='; systemctl is-active {units} 2>/dev/null\n"
        ));
    }
    if let Some(port) = req.haproxy_stats_port {
        // haproxy answers one command and closes the connection; `timeout` bounds a stuck one.
        let read = format!(
            "exec 3<>/dev/tcp/127.0.0.1/{port} || exit 1; printf 'show stat\\n' >&3; timeout 3 cat <&3"
        );
        s.push_str(&format!(
            "echo '{MARK}haproxy=='; bash -c {} 2>&1\n",
            q(&read)?
        ));
    }
    Ok(s)
}

fn sections(output: &str) -> Vec<(&str, String)> {
    let mut out: Vec<(&str, String)> = Vec::new();
    for line in output.lines() {
        if let Some(name) = line.strip_prefix(MARK).and_then(|r| r.strip_suffix("==")) {
            out.push((name, String::new()));
        } else if let Some((_, body)) = out.last_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    out
}

/// The probe's output for the request it answered.
pub fn parse(req: &ProbeRequest, output: &str) -> HostProbe {
    let mut probe = HostProbe::default();
    let mut states: Vec<String> = Vec::new();
    let mut haproxy_text = None;
    for (name, body) in sections(output) {
        match name {
            "addresses" => probe.addresses = addresses(&body),
            "services" => states = body.lines().map(|l| l.trim().to_string()).collect(),
            "haproxy" => haproxy_text = Some(body),
            _ => {}
        }
    }
    probe.services = req
        .units
        .iter()
        .enumerate()
        .map(|(i, unit)| ServiceStatus {
            name: unit.clone(),
            state: states
                .get(i)
                .filter(|s| !s.is_empty())
                .cloned()
                .unwrap_or_else(|| "unknown".to_string()),
        })
        .collect();
    if let Some(port) = req.haproxy_stats_port {
        probe.haproxy = Some(match haproxy_text {
            None => Err("the probe did not reach the haproxy step".to_string()),
            Some(text) if text.lines().any(|l| l.starts_with("# pxname")) => {
                haproxy_stats::parse(&text)
            }
            Some(text) => {
                let said = text.lines().map(str::trim).find(|l| !l.is_empty());
                Err(match said {
                    Some(said) => format!("127.0.0.1:{port}: {said}"),
                    None => format!("no answer from the stats socket at 127.0.0.1:{port}"),
                })
            }
        });
    }
    probe
}

/// Addresses from `ip -o addr show`: `2: eth0    inet 10.0.0.11/24 brd ... scope global eth0`.
fn addresses(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            words.find(|w| *w == "inet" || *w == "inet6")?;
            let cidr = words.next()?;
            cidr.split('/').next()?.parse().ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> ProbeRequest {
        ProbeRequest {
            units: vec!["etcd".into(), "haproxy".into(), "keepalived".into()],
            haproxy_stats_port: Some(8404),
        }
    }

    #[test]
    fn parses_every_section() {
        let out = "==kinit-status:addresses==\n\
            1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever\n\
            2: host0    inet 192.168.9.11/24 brd 192.168.9.255 scope global host0\n\
            2: host0    inet 192.168.9.100/24 scope global secondary host0\n\
            2: host0    inet6 fe80::1/64 scope link\n\
            ==kinit-status:services==\nactive\ninactive\n\
            ==kinit-status:haproxy==\n# pxname,svname,status,check_status,\napiserver,cp1,UP,L7OK,\n";
        let p = parse(&req(), out);
        assert!(p.addresses.contains(&"192.168.9.100".parse().unwrap()));
        assert_eq!(p.addresses.len(), 4);
        assert_eq!(p.services[1].state, "inactive");
        // systemctl said nothing about the third unit.
        assert_eq!(p.services[2].state, "unknown");
        assert_eq!(p.haproxy.unwrap().unwrap()[0].server, "cp1");
    }

    #[test]
    fn a_closed_stats_port_is_an_error_with_bashs_words() {
        let out = "==kinit-status:haproxy==\nbash: connect: Connection refused\nbash: line 1: /dev/tcp/127.0.0.1/8404: Connection refused\n";
        let e = parse(&req(), out).haproxy.unwrap().unwrap_err();
        assert_eq!(e, "127.0.0.1:8404: bash: connect: Connection refused");
    }

    #[test]
    fn script_quotes_units() {
        let s = script(&req()).unwrap();
        assert!(s.contains("systemctl is-active etcd haproxy keepalived"));
        assert!(s.contains("/dev/tcp/127.0.0.1/8404"));
    }
}
