//! The one read-only command `kinit status` runs on each host, and the pure parser of its output:
//! the host's addresses (who holds the VIP), `systemctl is-active` for its services, and haproxy's
//! `show stat` from the loopback stats socket through bash's /dev/tcp (no socat on the nodes).

use std::net::IpAddr;

use super::haproxy_stats;
use super::report::{BackendServer, ServiceStatus, UnitVersion};
use crate::ssh::SshError;
use crate::ssh::quote::quote as q;

/// What to ask one host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProbeRequest {
    /// systemd units whose state to report.
    pub units: Vec<String>,
    /// haproxy's loopback stats port, when the host runs kinit's haproxy.
    pub haproxy_stats_port: Option<u16>,
    /// Units running a binary kinit installed: (unit, binary path, its version arguments).
    pub versions: Vec<VersionAsk>,
}

/// Which release a unit's binary is, and whether the unit still runs an older one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionAsk {
    pub unit: String,
    pub binary: String,
    pub args: Vec<String>,
}

/// What one host answered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostProbe {
    pub addresses: Vec<IpAddr>,
    pub services: Vec<ServiceStatus>,
    /// `None` when not asked; `Err` when the stats could not be read.
    pub haproxy: Option<Result<Vec<BackendServer>, String>>,
    pub versions: Vec<UnitVersion>,
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
    if !req.versions.is_empty() {
        s.push_str(&format!("echo '{MARK}versions=='\n"));
        // All at once (a Go program takes a moment to start); one short line each, so the
        // lines do not interleave. The installed binary is the one the unit runs unless the
        // process started before the file was written (a restart still to come); `ps` counts
        // whole seconds, hence the second of slack.
        for ask in &req.versions {
            let args = ask
                .args
                .iter()
                .map(|a| q(a))
                .collect::<Result<Vec<_>, _>>()?
                .join(" ");
            let (unit, binary) = (q(&ask.unit)?, q(&ask.binary)?);
            s.push_str(&format!(
                "( v=$({binary} {args} 2>/dev/null | head -n 1 | tr -d '\t'); p=running; \
                 pid=$(systemctl show -p MainPID --value {unit} 2>/dev/null); \
                 if [ \"${{pid:-0}}\" -gt 0 ] 2>/dev/null; then \
                 up=$(ps -o etimes= -p \"$pid\" | tr -d ' '); m=$(stat -c %Y {binary}); \
                 [ $(( $(date +%s) - ${{up:-0}} + 1 )) -lt \"${{m:-0}}\" ] && p=pending; \
                 else p=stopped; fi; \
                 printf '%s\\t%s\\t%s\\n' {unit} \"$p\" \"$v\" ) &\n"
            ));
        }
        s.push_str("wait\n");
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
            "versions" => probe.versions = unit_versions(req, &body),
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

/// `unit<TAB>running|pending|stopped<TAB>first line of --version`, in the request's order.
fn unit_versions(req: &ProbeRequest, text: &str) -> Vec<UnitVersion> {
    req.versions
        .iter()
        .map(|ask| {
            let line = text.lines().find_map(|l| {
                let mut parts = l.splitn(3, '\t');
                (parts.next()? == ask.unit).then(|| {
                    (
                        parts.next().unwrap_or_default().to_string(),
                        parts.next().unwrap_or_default().to_string(),
                    )
                })
            });
            let (state, said) = line.unwrap_or_default();
            UnitVersion {
                unit: ask.unit.clone(),
                version: crate::bundle::version::from_output(&said).map(|v| v.to_string()),
                restart_pending: state == "pending",
            }
        })
        .collect()
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
            versions: Vec::new(),
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
    fn each_units_binary_says_its_release_when_the_script_runs() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("kube-apiserver");
        std::fs::write(
            &bin,
            "#!/bin/sh\n[ \"$1\" = --version ] && echo 'Kubernetes v1.37.2'\n",
        )
        .unwrap();
        std::fs::set_permissions(&bin, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let req = ProbeRequest {
            versions: vec![
                VersionAsk {
                    unit: "kube-apiserver".into(),
                    binary: bin.display().to_string(),
                    args: vec!["--version".into()],
                },
                VersionAsk {
                    unit: "kube-scheduler".into(),
                    binary: dir.path().join("missing").display().to_string(),
                    args: vec!["--version".into()],
                },
            ],
            ..ProbeRequest::default()
        };
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(script(&req).unwrap())
            .output()
            .unwrap();
        let probe = parse(&req, &String::from_utf8_lossy(&out.stdout));
        assert_eq!(probe.versions.len(), 2);
        assert_eq!(probe.versions[0].version.as_deref(), Some("v1.37.2"));
        assert!(!probe.versions[0].restart_pending);
        assert_eq!(probe.versions[1].version, None);
        // The pending mark is read from the line.
        let text = "==kinit-status:versions==\nkube-apiserver\tpending\tKubernetes v1.36.3\n";
        let p = parse(&req, text);
        assert!(p.versions[0].restart_pending);
        assert_eq!(p.versions[0].version.as_deref(), Some("v1.36.3"));
    }

    #[test]
    fn script_quotes_units() {
        let s = script(&req()).unwrap();
        assert!(s.contains("systemctl is-active etcd haproxy keepalived"));
        assert!(s.contains("/dev/tcp/127.0.0.1/8404"));
    }
}
