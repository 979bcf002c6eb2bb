//! Host facts: what preflight needs to know about a machine, parsed by pure functions from the
//! output of one probe script (see [`probe`]).

mod clock;
mod listeners;
pub mod probe;
mod reach;

use std::collections::BTreeMap;

use serde::Serialize;

pub use clock::{ClockSkew, ProbeTimes, ReadingTimes};
pub use listeners::{Listener, ListeningProcess};
pub use reach::{ConnectOutcome, PortReach};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CgroupVersion {
    V1,
    V2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Privilege {
    Root,
    /// A non-root login with passwordless sudo.
    SudoNoPassword,
    /// A non-root login whose sudo asks for a password.
    SudoPassword,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EtcdDir {
    pub exists: bool,
    /// Up to 20 entries, enough to tell "empty", "kinit's own" (only `member`) or "something else".
    pub entries: Vec<String>,
    pub free_kib: Option<u64>,
    /// The data dir named by the etcd config kinit writes (etcd.mode: systemd), when the host
    /// has that file.
    pub kinit_config_names: Option<String>,
}

/// Commands a node needs on the host (kubeadm's FileExisting checks, as far as kinit's node
/// layer calls them): `ip` and `iptables`/`ip6tables` for kinit's pod network and kube-proxy,
/// `mount` and `nsenter` for the kubelet's volumes and port-forward.
pub const NODE_COMMANDS: &[&str] = &["ip", "iptables", "ip6tables", "mount", "nsenter"];

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HostFacts {
    pub hostname: String,
    pub machine_id: Option<String>,
    pub product_uuid: Option<String>,
    /// Interface name → MAC address (loopback excluded).
    pub macs: BTreeMap<String, String>,
    pub cpus: u32,
    pub mem_total_kib: u64,
    /// Active swap areas (lines of /proc/swaps after its header).
    pub swap_areas: Vec<String>,
    pub kernel: String,
    /// /etc/os-release fields (ID, VERSION_ID, PRETTY_NAME, ...).
    pub os: BTreeMap<String, String>,
    pub ip_forward: Option<bool>,
    /// Which of the node layer's commands ([`NODE_COMMANDS`]) the host has in its PATH (with
    /// the sbin directories); None when the probe did not look.
    pub commands: Option<Vec<String>>,
    pub modules: Vec<String>,
    pub cgroup: Option<CgroupVersion>,
    pub systemd: bool,
    /// The container technology the host runs in (`systemd-nspawn`, `lxc`, ...), if any.
    pub container: Option<String>,
    pub privilege: Option<Privilege>,
    pub listeners: Vec<Listener>,
    /// The processes holding those listeners, by pid.
    pub processes: BTreeMap<u32, ListeningProcess>,
    /// Time services that are active (chrony, systemd-timesyncd, ...).
    pub time_services: Vec<String>,
    /// Time services installed on the host, running or not.
    pub time_services_installed: Vec<String>,
    pub ntp_synchronized: Option<bool>,
    /// Interface → addresses in CIDR form.
    pub addresses: Vec<(String, String)>,
    pub etcd_dir: EtcdDir,
    /// From this host, connects to the ports of other hosts the cluster will use.
    pub reach: Vec<PortReach>,
    /// The host's clock, in seconds since the epoch, read as the first thing the probe did (see
    /// [`HostFacts::clock_skew`]).
    pub clock: Option<f64>,
    /// Whether that reading came right after the operator's answer to the probe's marker.
    pub clock_after_answer: bool,
}

/// Why the probe's output gave no facts.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProbeParseError {
    /// The output did not have the shape the parser expects.
    #[error("unexpected probe output: {0}")]
    Malformed(String),
    /// The host has no bash, which the probe runs in.
    #[error("bash is not installed on the host")]
    NoBash,
}

impl HostFacts {
    /// Parse the output of [`probe::script`].
    pub fn parse(output: &str) -> Result<HostFacts, ProbeParseError> {
        let s = Sections(probe::sections(output));
        if s.has("no-bash") {
            return Err(ProbeParseError::NoBash);
        }
        if !s.has("end") {
            return Err(ProbeParseError::Malformed(
                "the probe did not run to its end (output truncated?)".into(),
            ));
        }
        let (time_services, time_services_installed) = time_services(&s.lines("time-services"));
        Ok(HostFacts {
            hostname: s
                .first("hostname")
                .ok_or_else(|| ProbeParseError::Malformed("no hostname".into()))?
                .to_string(),
            machine_id: s.first("machine-id").map(str::to_string),
            product_uuid: s.first("product-uuid").map(|u| u.to_ascii_lowercase()),
            macs: macs(&s.lines("macs")),
            // The CPUs the probe may run on (what `nproc` counts); older probes ran `nproc`.
            cpus: s
                .first("cpu-list")
                .and_then(count_cpus)
                .or_else(|| s.first("nproc").and_then(|n| n.parse().ok()))
                .ok_or_else(|| ProbeParseError::Malformed("no CPU count".into()))?,
            mem_total_kib: mem_total_kib(&s.lines("meminfo")),
            swap_areas: swap_areas(&s.lines("swaps")),
            kernel: s.first("kernel").unwrap_or_default().to_string(),
            os: os_release(&s.lines("os-release")),
            ip_forward: s.first("ip-forward").map(|v| v == "1"),
            commands: s.has("commands").then(|| trimmed(&s.lines("commands"))),
            modules: {
                let mut modules = trimmed(&s.lines("modules"));
                modules.sort();
                modules.dedup();
                modules
            },
            cgroup: s.first("cgroup").map(|t| {
                if t == "cgroup2fs" {
                    CgroupVersion::V2
                } else {
                    CgroupVersion::V1
                }
            }),
            systemd: s.first("systemd") == Some("yes"),
            container: s
                .first("container")
                .filter(|c| *c != "none")
                .map(str::to_string),
            privilege: match s.first("sudo") {
                Some("root") => Some(Privilege::Root),
                Some("nopasswd") => Some(Privilege::SudoNoPassword),
                Some("password") => Some(Privilege::SudoPassword),
                _ => None,
            },
            listeners: listening(&s),
            processes: listeners::parse_processes(&s.lines("processes")),
            time_services,
            time_services_installed,
            ntp_synchronized: s.first("ntp-synchronized").map(|v| v == "yes"),
            addresses: addresses(&s.lines("ip-addr"), &s.lines("addresses")),
            etcd_dir: etcd_dir(&s),
            reach: reach::parse_reach(&s.lines("reach")),
            // Older probes read the clock at the start (`clock-start`) and at the end (`clock`).
            clock: s
                .first("clock-start")
                .or_else(|| s.first("clock"))
                .and_then(|c| c.replace(',', ".").parse().ok()),
            clock_after_answer: s.lines("clock").iter().any(|l| l.trim() == "replied"),
        })
    }

    /// Host clock minus operator clock, with its error bound, from the operator's times around
    /// the probe (see [`clock`](self::clock) for the reasoning).
    pub fn clock_skew(&self, times: &ProbeTimes) -> Option<ClockSkew> {
        let window = ReadingTimes::of(times, self.clock_after_answer);
        Some(clock::estimate(self.clock?, &window))
    }

    /// Listeners on `port` (any address).
    pub fn listeners_on(&self, port: u16) -> impl Iterator<Item = &Listener> {
        self.listeners.iter().filter(move |l| l.port == port)
    }

    /// The processes holding `listener` that the probe looked at (none when `ss` could not
    /// tell, e.g. without root).
    pub fn holders<'a>(
        &'a self,
        listener: &'a Listener,
    ) -> impl Iterator<Item = &'a ListeningProcess> {
        listener
            .pids
            .iter()
            .filter_map(|pid| self.processes.get(pid))
    }
}

/// The number of CPUs in a kernel CPU list (`0-3,8,10-11`, /proc/self/status's
/// Cpus_allowed_list).
fn count_cpus(list: &str) -> Option<u32> {
    let mut n: u32 = 0;
    for part in list.trim().split(',') {
        let count = match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.parse().ok()?, b.parse().ok()?);
                b.checked_sub(a)?.checked_add(1)?
            }
            None => part.parse::<u32>().map(|_| 1).ok()?,
        };
        n = n.checked_add(count)?;
    }
    Some(n)
}

/// The probe's output by section.
struct Sections<'a>(std::collections::HashMap<&'a str, Vec<&'a str>>);

impl<'a> Sections<'a> {
    fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// The section's first non-empty line, trimmed.
    fn first(&self, name: &str) -> Option<&'a str> {
        self.0
            .get(name)
            .and_then(|l| l.iter().map(|x| x.trim()).find(|x| !x.is_empty()))
    }

    fn lines(&self, name: &str) -> Vec<&'a str> {
        self.0.get(name).cloned().unwrap_or_default()
    }
}

/// The non-empty lines, trimmed.
fn trimmed(lines: &[&str]) -> Vec<String> {
    lines
        .iter()
        .map(|l| l.trim())
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// `IFACE MAC` lines; interfaces without a MAC (all zeros) left out.
fn macs(lines: &[&str]) -> BTreeMap<String, String> {
    lines
        .iter()
        .filter_map(|l| l.split_once(' '))
        .map(|(iface, mac)| (iface.to_string(), mac.trim().to_ascii_lowercase()))
        .filter(|(_, mac)| !mac.is_empty() && mac != "00:00:00:00:00:00")
        .collect()
}

/// /proc/meminfo's `MemTotal:` in KiB (0 when missing).
fn mem_total_kib(lines: &[&str]) -> u64 {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix("MemTotal:"))
        .map(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .unwrap_or(0)
        })
        .next_back()
        .unwrap_or(0)
}

/// /proc/swaps after its header: each area's path.
fn swap_areas(lines: &[&str]) -> Vec<String> {
    lines
        .iter()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().next().unwrap_or_default().to_string())
        .collect()
}

/// /etc/os-release's `KEY=value` lines, quotes taken off.
fn os_release(lines: &[&str]) -> BTreeMap<String, String> {
    lines
        .iter()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
        .collect()
}

/// `ss -Hltnp` lines when the probe looked for holders, /proc/net/tcp's otherwise.
fn listening(s: &Sections) -> Vec<Listener> {
    let listeners: Vec<Listener> = s
        .lines("listeners")
        .into_iter()
        .filter_map(listeners::parse_listener)
        .collect();
    if !listeners.is_empty() {
        return listeners;
    }
    s.lines("tcp-listen")
        .into_iter()
        .filter_map(listeners::parse_proc_net_tcp)
        .collect()
}

/// (active, installed) time services, from `systemctl show` blocks (Id=, LoadState=,
/// ActiveState=); older probes printed `<unit> <state>` lines.
fn time_services(lines: &[&str]) -> (Vec<String>, Vec<String>) {
    let (mut active, mut installed) = (Vec::new(), Vec::new());
    let add = |list: &mut Vec<String>, name: &str| {
        if !list.iter().any(|u| u == name) {
            list.push(name.to_string());
        }
    };
    let mut unit = String::new();
    for l in lines {
        if let Some((key, value)) = l.split_once('=') {
            match key {
                "Id" => unit = value.trim().trim_end_matches(".service").to_string(),
                "LoadState" if value.trim() == "loaded" => add(&mut installed, &unit),
                "ActiveState" if value.trim() == "active" => add(&mut active, &unit),
                _ => {}
            }
        } else if let Some((name, state)) = l.split_once(' ')
            && state.trim() == "active"
        {
            add(&mut active, name);
            add(&mut installed, name);
        }
    }
    (active, installed)
}

/// `ip -o addr show` lines (`2: eth0    inet 10.0.0.5/24 brd ...`), then older probes'
/// `IFACE ADDR` lines.
fn addresses(ip_addr: &[&str], older: &[&str]) -> Vec<(String, String)> {
    let mut addresses = Vec::new();
    for l in ip_addr {
        let cols: Vec<&str> = l.split_whitespace().collect();
        if let [_, iface, "inet" | "inet6", addr, ..] = cols[..] {
            addresses.push((iface.to_string(), addr.to_string()));
        }
    }
    for l in older {
        if let Some((iface, addr)) = l.split_once(' ') {
            addresses.push((iface.to_string(), addr.trim().to_string()));
        }
    }
    addresses
}

fn etcd_dir(s: &Sections) -> EtcdDir {
    let listing = s.lines("etcd-dir");
    EtcdDir {
        exists: listing.first().is_some_and(|l| l.trim() == "exists"),
        entries: listing.iter().skip(1).map(|l| l.to_string()).collect(),
        // `df -Pk` output: the last line is the filesystem's (older probes printed only that).
        free_kib: s
            .lines("etcd-df")
            .iter()
            .rev()
            .find(|l| !l.trim().is_empty())
            .and_then(|l| l.split_whitespace().nth(3)?.parse().ok()),
        // The value as kinit wrote it: YAML (quoted when it had to be).
        kinit_config_names: s
            .first("etcd-config")
            .and_then(|v| serde_yaml::from_str::<String>(v.trim()).ok()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_output_is_an_error() {
        let err = HostFacts::parse("==kinit:hostname==\ncp1\n").unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
    }

    #[test]
    fn a_host_without_bash_says_so() {
        let err = HostFacts::parse("==kinit:no-bash==\n==kinit:end==\n").unwrap_err();
        assert_eq!(err, ProbeParseError::NoBash);
    }

    #[test]
    fn cpu_lists_count_ranges_and_single_cpus() {
        assert_eq!(count_cpus("0-1"), Some(2));
        assert_eq!(count_cpus("0,2-5,7"), Some(6));
        assert_eq!(count_cpus("3"), Some(1));
        assert_eq!(count_cpus(""), None);
        assert_eq!(count_cpus("5-2"), None);
        assert_eq!(count_cpus("x"), None);
        assert_eq!(count_cpus("0-4294967295"), None);
    }

    #[test]
    fn this_probes_sections_parse() {
        let out = "==kinit:ready==\n==kinit:clock==\n1795801779,083952\nreplied\n==kinit:hostname==\nh1\n\
                   ==kinit:cpu-list==\n0-3\n==kinit:tcp-listen==\n0100007F:0016\n\
                   ==kinit:ip-addr==\n1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever\n\
                   2: eth0    inet6 fd00::2/64 scope global \\       valid_lft forever\n\
                   ==kinit:etcd-df==\nFilesystem     1024-blocks     Used Available Capacity Mounted on\n\
                   /dev/vda         264212084 49150420  46135468      52% /\n==kinit:end==\n";
        let f = HostFacts::parse(out).unwrap();
        assert_eq!(f.clock, Some(1795801779.083952));
        assert!(f.clock_after_answer);
        assert_eq!(f.cpus, 4);
        assert_eq!(f.listeners.len(), 1);
        assert_eq!(
            (f.listeners[0].address.as_str(), f.listeners[0].port),
            ("127.0.0.1", 22)
        );
        assert_eq!(
            f.addresses,
            [
                ("lo".to_string(), "127.0.0.1/8".to_string()),
                ("eth0".to_string(), "fd00::2/64".to_string())
            ]
        );
        assert_eq!(f.etcd_dir.free_kib, Some(46135468));
        assert_eq!(f.etcd_dir.kinit_config_names, None);
        // The data-dir line of kinit's etcd config, plain or quoted as the yaml filter writes it.
        for (line, dir) in [
            (" /var/lib/etcd", "/var/lib/etcd"),
            (" '/srv/etcd data'", "/srv/etcd data"),
        ] {
            let out = format!(
                "==kinit:hostname==\nh1\n==kinit:cpu-list==\n0\n==kinit:etcd-config==\n{line}\n==kinit:end==\n"
            );
            let f = HostFacts::parse(&out).unwrap();
            assert_eq!(f.etcd_dir.kinit_config_names.as_deref(), Some(dir));
        }
    }
}
