//! Host facts: what preflight needs to know about a machine, parsed by pure functions from the
//! output of one probe script (see [`probe`]).

mod listeners;
pub mod probe;
mod reach;

use std::collections::BTreeMap;

use serde::Serialize;

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
}

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
    /// The host's clock when the probe started and finished, in seconds since the epoch (with
    /// the operator's send and receive times they give the offset as NTP computes it).
    pub clock_start: Option<f64>,
    pub clock: Option<f64>,
}

/// The probe's output did not have the shape the parser expects.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unexpected probe output: {0}")]
pub struct ProbeParseError(pub String);

impl HostFacts {
    /// Parse the output of [`probe::script`].
    pub fn parse(output: &str) -> Result<HostFacts, ProbeParseError> {
        let s = probe::sections(output);
        if !s.contains_key("end") {
            return Err(ProbeParseError(
                "the probe did not run to its end (output truncated?)".into(),
            ));
        }
        let first = |name: &str| -> Option<&str> {
            s.get(name)
                .and_then(|l| l.iter().map(|x| x.trim()).find(|x| !x.is_empty()))
        };
        let lines = |name: &str| -> Vec<&str> { s.get(name).cloned().unwrap_or_default() };

        let mut f = HostFacts {
            hostname: first("hostname")
                .ok_or_else(|| ProbeParseError("no hostname".into()))?
                .to_string(),
            machine_id: first("machine-id").map(str::to_string),
            product_uuid: first("product-uuid").map(|u| u.to_ascii_lowercase()),
            cpus: first("nproc")
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| ProbeParseError("no CPU count".into()))?,
            kernel: first("kernel").unwrap_or_default().to_string(),
            ip_forward: first("ip-forward").map(|v| v == "1"),
            systemd: first("systemd") == Some("yes"),
            container: first("container")
                .filter(|c| *c != "none")
                .map(str::to_string),
            cgroup: first("cgroup").map(|t| {
                if t == "cgroup2fs" {
                    CgroupVersion::V2
                } else {
                    CgroupVersion::V1
                }
            }),
            privilege: match first("sudo") {
                Some("root") => Some(Privilege::Root),
                Some("nopasswd") => Some(Privilege::SudoNoPassword),
                Some("password") => Some(Privilege::SudoPassword),
                _ => None,
            },
            ntp_synchronized: first("ntp-synchronized").map(|v| v == "yes"),
            clock_start: first("clock-start").and_then(|c| c.parse().ok()),
            clock: first("clock").and_then(|c| c.parse().ok()),
            ..HostFacts::default()
        };
        for l in lines("macs") {
            if let Some((iface, mac)) = l.split_once(' ') {
                let mac = mac.trim().to_ascii_lowercase();
                if !mac.is_empty() && mac != "00:00:00:00:00:00" {
                    f.macs.insert(iface.to_string(), mac);
                }
            }
        }
        for l in lines("meminfo") {
            if let Some(rest) = l.strip_prefix("MemTotal:") {
                f.mem_total_kib = rest
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse()
                    .unwrap_or(0);
            }
        }
        f.swap_areas = lines("swaps")
            .into_iter()
            .skip(1)
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.split_whitespace().next().unwrap_or_default().to_string())
            .collect();
        for l in lines("os-release") {
            if let Some((k, v)) = l.split_once('=') {
                f.os.insert(k.to_string(), v.trim_matches('"').to_string());
            }
        }
        f.modules = lines("modules").into_iter().map(str::to_string).collect();
        f.modules.sort();
        f.modules.dedup();
        f.listeners = lines("listeners")
            .into_iter()
            .filter_map(listeners::parse_listener)
            .collect();
        f.processes = listeners::parse_processes(&lines("processes"));
        // `systemctl show` blocks (Id=, LoadState=, ActiveState=); older probes printed
        // `<unit> <state>` lines.
        let mut unit = String::new();
        for l in lines("time-services") {
            let add = |list: &mut Vec<String>, name: &str| {
                if !list.iter().any(|u| u == name) {
                    list.push(name.to_string());
                }
            };
            if let Some((key, value)) = l.split_once('=') {
                match key {
                    "Id" => unit = value.trim().trim_end_matches(".service").to_string(),
                    "LoadState" if value.trim() == "loaded" => {
                        add(&mut f.time_services_installed, &unit)
                    }
                    "ActiveState" if value.trim() == "active" => add(&mut f.time_services, &unit),
                    _ => {}
                }
            } else if let Some((name, state)) = l.split_once(' ')
                && state.trim() == "active"
            {
                add(&mut f.time_services, name);
                add(&mut f.time_services_installed, name);
            }
        }
        for l in lines("addresses") {
            if let Some((iface, addr)) = l.split_once(' ') {
                f.addresses
                    .push((iface.to_string(), addr.trim().to_string()));
            }
        }
        let etcd = lines("etcd-dir");
        f.etcd_dir.exists = etcd.first().is_some_and(|l| l.trim() == "exists");
        f.etcd_dir.entries = etcd.iter().skip(1).map(|l| l.to_string()).collect();
        f.etcd_dir.free_kib =
            first("etcd-df").and_then(|l| l.split_whitespace().nth(3)?.parse().ok());
        f.reach = reach::parse_reach(&lines("reach"));
        Ok(f)
    }

    /// Host clock minus operator clock, from the operator's send (`t0`) and receive (`t1`) times
    /// of the probe, NTP-style: ((start - t0) + (end - t1)) / 2. The time the script itself took
    /// cancels out; what remains is half the asymmetry of the two network paths.
    pub fn clock_offset(&self, t0: f64, t1: f64) -> Option<f64> {
        Some(((self.clock_start? - t0) + (self.clock? - t1)) / 2.0)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_offset_cancels_the_scripts_own_run_time() {
        // The host is 2 s ahead; the request takes 10 ms each way; the script runs 300 ms.
        let f = HostFacts {
            clock_start: Some(1002.010),
            clock: Some(1002.310),
            ..HostFacts::default()
        };
        let offset = f.clock_offset(1000.0, 1000.320).unwrap();
        assert!((offset - 2.0).abs() < 1e-9, "{offset}");
    }

    #[test]
    fn truncated_output_is_an_error() {
        let err = HostFacts::parse("==kinit:hostname==\ncp1\n").unwrap_err();
        assert!(err.0.contains("truncated"));
    }
}
