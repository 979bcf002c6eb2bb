//! Who listens on which TCP port: /proc/net/tcp{,6} or `ss -Hltnp` lines, and for each listening process its
//! executable, cgroup (hence systemd unit) and command line, so preflight can tell the component
//! kinit deployed from a stray install of the same program.

use std::collections::BTreeMap;

use serde::Serialize;

/// A TCP listener and, when `ss` could tell, the processes holding it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Listener {
    pub port: u16,
    pub address: String,
    /// The process name (`comm`) `ss` shows for the first holder.
    pub process: Option<String>,
    /// Every process holding the socket (a forked daemon's workers share it).
    pub pids: Vec<u32>,
}

/// A process holding a listening socket.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ListeningProcess {
    pub pid: u32,
    /// The executable's path (`/proc/PID/exe`), " (deleted)" dropped: a binary replaced on disk
    /// while it runs is still the one installed there.
    pub exe: Option<String>,
    /// The cgroup path (v2, or v1's name=systemd hierarchy), e.g. `/system.slice/etcd.service`.
    pub cgroup: Option<String>,
    /// The command line, arguments joined by spaces (cut at 300 bytes, control characters
    /// shown as `?`).
    pub command: String,
    /// When the cgroup is a service's: the executable of that service's main process. A process
    /// started by hand from a login shell sits in sshd's cgroup when no logind makes a session
    /// scope for it; comparing executables tells "the unit runs it" from "started inside it".
    pub unit_main_exe: Option<String>,
}

impl ListeningProcess {
    /// The systemd unit the process runs in: the innermost `.service` or `.scope` of its
    /// cgroup path (`session-3.scope` for a process started from a login shell).
    pub fn unit(&self) -> Option<&str> {
        self.cgroup
            .as_deref()?
            .rsplit('/')
            .find(|seg| seg.ends_with(".service") || seg.ends_with(".scope"))
    }

    /// Whether its unit (a `.service`) runs this program, rather than it having been started
    /// from inside the unit (a shell under sshd).
    pub fn run_by_its_unit(&self) -> bool {
        self.unit().is_some_and(|u| u.ends_with(".service"))
            && self.exe.is_some()
            && self.unit_main_exe == self.exe
    }

    /// Whether the kubelet runs it (a static pod or any other pod's container).
    pub fn in_a_pod(&self) -> bool {
        self.cgroup
            .as_deref()
            .is_some_and(|c| c.split('/').any(|seg| seg.starts_with("kubepods")))
    }
}

/// One line of `ss -Hltnp`:
/// `LISTEN 0 4096 127.0.0.1:2379 0.0.0.0:* users:(("etcd",pid=81,fd=7))`
pub(super) fn parse_listener(line: &str) -> Option<Listener> {
    let cols: Vec<&str> = line.split_whitespace().collect();
    let local = cols.get(3)?;
    let (address, port) = local.rsplit_once(':')?;
    let users = line.split_once("users:((").map(|(_, rest)| rest);
    let process = users
        .and_then(|rest| rest.strip_prefix('"'))
        .and_then(|rest| rest.split_once('"'))
        .map(|(name, _)| name.to_string());
    let mut pids: Vec<u32> = users
        .map(|rest| {
            rest.split("pid=")
                .skip(1)
                .filter_map(|p| p.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    pids.dedup();
    Some(Listener {
        port: port.parse().ok()?,
        address: address.to_string(),
        process,
        pids,
    })
}

/// One local address of a listening socket in /proc/net/tcp or /proc/net/tcp6: `0100007F:0016`,
/// `00000000000000000000000000000000:0016`. The kernel prints each 32-bit word of the address
/// in the host's byte order, read here as little-endian (x86_64, arm64, ppc64le, riscv64); on a
/// big-endian host the address, which only findings show, comes out byte-swapped per word, while
/// the port (printed in host order from the network-order value) is right everywhere.
pub(super) fn parse_proc_net_tcp(line: &str) -> Option<Listener> {
    let (hex, port) = line.trim().split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let mut bytes = Vec::with_capacity(16);
    if !matches!(hex.len(), 8 | 32) || !hex.is_ascii() {
        return None;
    }
    for word in 0..hex.len() / 8 {
        let w = u32::from_str_radix(&hex[word * 8..word * 8 + 8], 16).ok()?;
        bytes.extend_from_slice(&w.to_le_bytes());
    }
    let address = match <[u8; 4]>::try_from(bytes.as_slice()) {
        Ok(v4) => std::net::Ipv4Addr::from(v4).to_string(),
        Err(_) => format!(
            "[{}]",
            std::net::Ipv6Addr::from(<[u8; 16]>::try_from(bytes.as_slice()).ok()?)
        ),
    };
    Some(Listener {
        port,
        address,
        process: None,
        pids: Vec::new(),
    })
}

/// The `processes` section: per process, `pid N` then `exe`, `cgroup` and `cmd` lines.
pub(super) fn parse_processes(lines: &[&str]) -> BTreeMap<u32, ListeningProcess> {
    let mut out = BTreeMap::new();
    let mut current: Option<ListeningProcess> = None;
    for line in lines {
        let (key, value) = line.split_once(' ').unwrap_or((line, ""));
        let value = value.trim();
        if key == "pid" {
            if let Some(p) = current.take() {
                out.insert(p.pid, p);
            }
            current = value.parse().ok().map(|pid| ListeningProcess {
                pid,
                ..ListeningProcess::default()
            });
            continue;
        }
        let Some(p) = current.as_mut() else {
            continue;
        };
        let value = (!value.is_empty()).then(|| value.to_string());
        let exe = |v: Option<String>| v.map(|e| e.trim_end_matches(" (deleted)").to_string());
        match key {
            "exe" => p.exe = exe(value),
            "main-exe" => p.unit_main_exe = exe(value),
            "cgroup" => p.cgroup = value,
            "cmd" => {
                p.command = value
                    .unwrap_or_default()
                    .chars()
                    .map(|c| if c.is_control() { '?' } else { c })
                    .collect()
            }
            _ => {}
        }
    }
    if let Some(p) = current {
        out.insert(p.pid, p);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners_with_and_without_process() {
        let l = parse_listener(
            r#"LISTEN 0      4096   127.0.0.1:2379   0.0.0.0:*  users:(("etcd",pid=81,fd=7))"#,
        )
        .unwrap();
        assert_eq!(
            (l.port, l.address.as_str(), l.process.as_deref(), l.pids),
            (2379, "127.0.0.1", Some("etcd"), vec![81])
        );
        let l = parse_listener("LISTEN 0 128 [::]:22 [::]:*").unwrap();
        assert_eq!((l.port, l.address.as_str(), l.process), (22, "[::]", None));
        assert!(parse_listener("garbage").is_none());
        let l = parse_listener(
            r#"LISTEN 0 4096 0.0.0.0:8443 0.0.0.0:* users:(("haproxy",pid=412,fd=7),("haproxy",pid=410,fd=7))"#,
        )
        .unwrap();
        assert_eq!(l.pids, [412, 410]);
    }

    #[test]
    fn proc_net_tcp_addresses() {
        let l = parse_proc_net_tcp("0100007F:0016").unwrap();
        assert_eq!(
            (l.address.as_str(), l.port, l.pids.len()),
            ("127.0.0.1", 22, 0)
        );
        let l = parse_proc_net_tcp("0B00D50A:0953").unwrap();
        assert_eq!((l.address.as_str(), l.port), ("10.213.0.11", 2387));
        let l = parse_proc_net_tcp("00000000000000000000000000000000:1A0B").unwrap();
        assert_eq!((l.address.as_str(), l.port), ("[::]", 6667));
        let l = parse_proc_net_tcp("000080FE00000000FF00FC00010000FE:0016").unwrap();
        assert_eq!(l.address, "[fe80::fc:ff:fe00:1]");
        let l = parse_proc_net_tcp("00000000000000000000000001000000:01BB").unwrap();
        assert_eq!((l.address.as_str(), l.port), ("[::1]", 443));
        for bad in [
            "",
            "0100007F",
            "0100007F:",
            "0100007:0016",
            "0100007F:10000",
            "XX00007F:0016",
            "é1000007F:0016",
        ] {
            assert_eq!(parse_proc_net_tcp(bad), None, "{bad}");
        }
    }

    #[test]
    fn processes_and_their_units() {
        let p = parse_processes(&[
            "pid 81",
            "exe /usr/local/bin/etcd (deleted)",
            "cgroup /system.slice/etcd.service",
            "main-exe /usr/local/bin/etcd",
            "cmd /usr/local/bin/etcd --config-file=/etc/etcd/etcd.conf.yml",
            "pid 90",
            "exe /usr/bin/etcd",
            "cgroup /user.slice/user-0.slice/session-3.scope",
            "cmd etcd \u{1b}[2J",
            "pid 92",
            "exe /usr/bin/etcd",
            "cgroup /system.slice/ssh.service",
            "main-exe /usr/sbin/sshd",
            "cmd etcd",
            "pid 91",
            "exe",
            "cgroup /kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/cri-containerd-ab.scope",
            "cmd",
        ]);
        assert_eq!(p[&81].exe.as_deref(), Some("/usr/local/bin/etcd"));
        assert_eq!(p[&81].unit(), Some("etcd.service"));
        assert!(p[&81].command.ends_with("etcd.conf.yml"));
        assert!(p[&81].run_by_its_unit());
        assert_eq!(p[&90].unit(), Some("session-3.scope"));
        assert!(!p[&90].run_by_its_unit());
        assert_eq!(p[&90].command, "etcd ?[2J");
        assert_eq!(p[&92].unit(), Some("ssh.service"));
        assert!(!p[&92].run_by_its_unit(), "started from a shell under sshd");
        assert!(!p[&90].in_a_pod());
        assert_eq!(p[&91].exe, None);
        assert!(p[&91].in_a_pod());
        assert_eq!(p[&91].unit(), Some("cri-containerd-ab.scope"));
    }
}
