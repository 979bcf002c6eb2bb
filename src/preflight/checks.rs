//! The checks themselves. Each takes facts and returns findings; nothing here touches a host.

use std::collections::BTreeMap;

use super::{HostObservation, IgnoreSet, OperatorView, PreflightFinding, PreflightReport, Status};
use crate::config::Role;
use crate::facts::{CgroupVersion, ClockSkew, HostFacts, Privilege};
use crate::inventory::{Host, Inventory};

/// kubeadm's minimums for a control-plane host.
const MIN_CPUS: u32 = 2;
/// kubeadm counts MemTotal in MB (1024*1024) and wants 1700 of them: a "2 GB" machine passes
/// even though the kernel keeps some memory for itself.
const MIN_MEM_MB: u64 = 1700;
/// etcd's default backend quota is 2 GiB; less free space than that cannot hold a full database.
const MIN_ETCD_FREE_KIB: u64 = 2 * 1024 * 1024;
/// Clock skew (seconds) beyond which certificates issued "now" may not yet be valid on a host and
/// etcd leases misbehave.
const SKEW_FAIL: f64 = 1.0;
const SKEW_WARN: f64 = 0.25;

pub(super) fn finding(
    host: &str,
    check: impl Into<String>,
    status: Status,
    message: impl Into<String>,
    fix: Option<&str>,
) -> PreflightFinding {
    PreflightFinding {
        host: host.to_string(),
        check: check.into(),
        status,
        message: message.into(),
        fix: fix.map(str::to_string),
        ignored: false,
    }
}

pub(super) fn pass(
    host: &str,
    check: impl Into<String>,
    message: impl Into<String>,
) -> PreflightFinding {
    finding(host, check, Status::Pass, message, None)
}

pub(super) fn warn(
    host: &str,
    check: impl Into<String>,
    message: impl Into<String>,
    fix: &str,
) -> PreflightFinding {
    finding(host, check, Status::Warn, message, Some(fix))
}

pub(super) fn fail(
    host: &str,
    check: impl Into<String>,
    message: impl Into<String>,
    fix: &str,
) -> PreflightFinding {
    finding(host, check, Status::Fail, message, Some(fix))
}

/// Every check for every host, then the checks across hosts; `ignore` demotes failures.
pub fn evaluate(
    inv: &Inventory,
    observations: &BTreeMap<String, HostObservation>,
    operator: &OperatorView,
    ignore: &IgnoreSet,
) -> PreflightReport {
    let mut out = Vec::new();
    for host in &inv.hosts {
        match observations.get(&host.name) {
            Some(HostObservation::Reached { facts, clock_skew }) => {
                out.push(pass(&host.name, "Reachable", format!("probed over SSH as {}", host.ssh.user)));
                per_host(inv, host, facts, *clock_skew, &mut out);
            }
            Some(HostObservation::Unreachable { reason }) => out.push(fail(
                &host.name,
                "Reachable",
                format!("cannot probe {} ({}:{}): {reason}", host.name, host.address, host.ssh.port),
                "check that the host is up, sshd listens on that port, and the key and user are right",
            )),
            Some(HostObservation::NoBash) => {
                out.push(pass(&host.name, "Reachable", format!("probed over SSH as {}", host.ssh.user)));
                out.push(fail(
                    &host.name,
                    "Bash",
                    "bash is not installed: kinit's probe runs in bash, so nothing else could be checked",
                    "install bash (`apt-get install bash`, `dnf install bash`, `apk add bash`), then re-run preflight",
                ));
            }
            None => out.push(fail(&host.name, "Reachable", "not probed", "re-run preflight")),
        }
    }
    super::across_hosts::identities(inv, observations, &mut out);
    super::across_hosts::pod_network_l2(inv, observations, &mut out);
    super::ports::paths(inv, observations, &mut out);
    super::across_hosts::vip(inv, observations, operator, &mut out);

    for f in &mut out {
        if f.status == Status::Fail && ignore.ignores(&f.check) {
            f.status = Status::Warn;
            f.ignored = true;
        }
    }
    // Stable order: inventory host order, then the order checks were written in.
    let order: BTreeMap<&str, usize> = inv
        .hosts
        .iter()
        .enumerate()
        .map(|(i, h)| (h.name.as_str(), i))
        .collect();
    out.sort_by_key(|f| order.get(f.host.as_str()).copied().unwrap_or(usize::MAX));
    PreflightReport { findings: out }
}

fn per_host(
    inv: &Inventory,
    host: &Host,
    f: &HostFacts,
    skew: Option<ClockSkew>,
    out: &mut Vec<PreflightFinding>,
) {
    let h = host.name.as_str();
    out.push(privilege(h, host, f));
    if host.has(Role::ControlPlane) {
        resources(h, f, out);
    }
    out.push(swap(h, f));
    out.push(ip_forward(h, f));
    kernel_modules(h, f, out);
    out.push(kernel(h, &f.kernel));
    // The kubelet's rule: a host the component table gives no kubelet (a control plane run as
    // systemd units, etcd under systemd) runs nothing that minds cgroup v1.
    let kubelet =
        crate::components::component(crate::components::ComponentId::Kubelet).runs_on(inv, host);
    out.push(cgroup(h, f, kubelet));
    if kubelet {
        node_commands(inv, h, f, out);
    }
    out.push(systemd(h, f));
    out.push(os(h, f));
    super::ports::ports(inv, host, f, out);
    time(h, f, skew, out);
    if host.has(Role::Etcd) {
        etcd_dir(inv, host, f, out);
    }
}

fn privilege(h: &str, host: &Host, f: &HostFacts) -> PreflightFinding {
    match f.privilege {
        Some(Privilege::Root) => pass(h, "IsPrivilegedUser", "logged in as root"),
        Some(Privilege::SudoNoPassword) => {
            pass(h, "IsPrivilegedUser", "sudo works without a password")
        }
        Some(Privilege::SudoPassword) => fail(
            h,
            "IsPrivilegedUser",
            format!("{} is not root and sudo asks for a password", host.ssh.user),
            "log in as root, or allow passwordless sudo for this user (a sudoers.d NOPASSWD rule)",
        ),
        None => fail(
            h,
            "IsPrivilegedUser",
            "could not tell whether the login is privileged",
            "log in as root",
        ),
    }
}

/// kubeadm's minimums for a control plane.
fn resources(h: &str, f: &HostFacts, out: &mut Vec<PreflightFinding>) {
    out.push(if f.cpus >= MIN_CPUS {
        pass(h, "NumCPU", format!("{} CPUs", f.cpus))
    } else {
        fail(
            h,
            "NumCPU",
            format!(
                "the number of available CPUs {} is less than the required {MIN_CPUS}",
                f.cpus
            ),
            "give the machine at least 2 CPUs",
        )
    });
    let mb = f.mem_total_kib / 1024;
    out.push(if mb >= MIN_MEM_MB {
        pass(h, "Mem", format!("{mb} MB of memory"))
    } else {
        fail(
            h,
            "Mem",
            format!("the system RAM ({mb} MB) is less than the minimum {MIN_MEM_MB} MB"),
            "give the machine at least 2 GB of memory",
        )
    });
}

fn swap(h: &str, f: &HostFacts) -> PreflightFinding {
    if f.swap_areas.is_empty() {
        pass(h, "Swap", "swap is off")
    } else {
        fail(
            h,
            "Swap",
            format!(
                "swap is on ({}); the kubelet refuses to start with swap by default",
                f.swap_areas.join(", ")
            ),
            "run `swapoff -a` and remove swap entries from /etc/fstab",
        )
    }
}

// kubeadm fails this check because it never sets the value; `kinit up` does (its
// kernel-settings phase runs before anything that forwards), so a fresh host only warns:
// a failure here would stop `up` before the phase that fixes it.
fn ip_forward(h: &str, f: &HostFacts) -> PreflightFinding {
    match f.ip_forward {
        Some(true) => pass(
            h,
            "FileContent--proc-sys-net-ipv4-ip_forward",
            "net.ipv4.ip_forward = 1",
        ),
        Some(false) => warn(
            h,
            "FileContent--proc-sys-net-ipv4-ip_forward",
            "/proc/sys/net/ipv4/ip_forward contents are not set to 1",
            "kinit up sets it and persists it in /etc/sysctl.d/; to set it yourself: `sysctl -w net.ipv4.ip_forward=1`",
        ),
        None => fail(
            h,
            "FileContent--proc-sys-net-ipv4-ip_forward",
            "could not read /proc/sys/net/ipv4/ip_forward",
            "check that /proc is mounted and readable",
        ),
    }
}

fn kernel_modules(h: &str, f: &HostFacts, out: &mut Vec<PreflightFinding>) {
    for module in ["br_netfilter", "overlay"] {
        let check = format!("KernelModule-{module}");
        out.push(if f.modules.iter().any(|m| m == module) {
            pass(h, check, format!("{module} is loaded"))
        } else {
            warn(
                h,
                check,
                format!("kernel module {module} is not loaded"),
                &format!("run `modprobe {module}` and list it in /etc/modules-load.d/ (kinit up writes this file)"),
            )
        });
    }
}

fn cgroup(h: &str, f: &HostFacts, kubelet: bool) -> PreflightFinding {
    match f.cgroup {
        Some(CgroupVersion::V2) => pass(h, "CgroupVersion", "cgroup v2"),
        Some(CgroupVersion::V1) if !kubelet => pass(
            h,
            "CgroupVersion",
            "cgroup v1, and no kubelet runs on this host",
        ),
        // kubeadm's rule: v1.35's kubelet refuses cgroup v1 unless its configuration says
        // failCgroupV1: false, which kinit's does; then it is a warning.
        Some(CgroupVersion::V1) => warn(
            h,
            "CgroupVersion",
            "cgroup v1: in maintenance in Kubernetes (the kubelet runs on it only because kinit \
             sets failCgroupV1: false; support will go)",
            "boot with cgroup v2 (systemd.unified_cgroup_hierarchy=1)",
        ),
        None => warn(
            h,
            "CgroupVersion",
            "could not tell the cgroup version",
            "check that /sys/fs/cgroup is mounted",
        ),
    }
}

/// kubeadm's FileExisting checks, for the commands kinit's node layer calls.
fn node_commands(inv: &Inventory, h: &str, f: &HostFacts, out: &mut Vec<PreflightFinding>) {
    let Some(have) = &f.commands else {
        return;
    };
    let ipv6 = matches!(inv.networking.pod_subnet, ipnet::IpNet::V6(_));
    for command in crate::facts::NODE_COMMANDS {
        if *command == if ipv6 { "iptables" } else { "ip6tables" } {
            continue;
        }
        let check = format!("FileExisting-{command}");
        out.push(if have.iter().any(|c| c == command) {
            pass(h, check, format!("{command} is in PATH"))
        } else {
            fail(
                h,
                check,
                format!("{command} not found in PATH (a node needs it)"),
                "install the package that has it (iptables, iproute2 or util-linux)",
            )
        });
    }
}

fn systemd(h: &str, f: &HostFacts) -> PreflightFinding {
    if f.systemd {
        pass(h, "Systemd", "systemd is the init system")
    } else {
        fail(
            h,
            "Systemd",
            "systemd is not running as the init system",
            "kinit manages services with systemd; use a systemd distribution",
        )
    }
}

fn kernel(h: &str, release: &str) -> PreflightFinding {
    let mut parts = release.split(['.', '-']).map(|p| p.parse::<u32>().ok());
    let (major, minor) = (parts.next().flatten(), parts.next().flatten());
    match (major, minor) {
        (Some(m), _) if m >= 6 => pass(h, "KernelVersion", format!("kernel {release}")),
        (Some(5), Some(4 | 10 | 15)) => pass(h, "KernelVersion", format!("kernel {release} (LTS)")),
        _ => warn(
            h,
            "KernelVersion",
            format!(
                "kernel release {release} is unsupported: Kubernetes supports the 5.4, 5.10 and 5.15 LTS series and any 6.x"
            ),
            "upgrade the kernel",
        ),
    }
}

/// Distributions kinit's steps are written for (systemd, apt or dnf).
const SUPPORTED_OS: &[&str] = &[
    "debian",
    "ubuntu",
    "rhel",
    "centos",
    "rocky",
    "almalinux",
    "fedora",
    "ol",
];

fn os(h: &str, f: &HostFacts) -> PreflightFinding {
    let id = f.os.get("ID").map(String::as_str).unwrap_or("unknown");
    let pretty = f.os.get("PRETTY_NAME").map(String::as_str).unwrap_or(id);
    let like = f.os.get("ID_LIKE").map(String::as_str).unwrap_or("");
    if SUPPORTED_OS.contains(&id) || like.split(' ').any(|l| SUPPORTED_OS.contains(&l)) {
        pass(h, "OperatingSystem", pretty.to_string())
    } else {
        warn(
            h,
            "OperatingSystem",
            format!("{pretty} is not a distribution kinit is tested on"),
            "use Debian, Ubuntu or a RHEL derivative",
        )
    }
}

fn time(h: &str, f: &HostFacts, skew: Option<ClockSkew>, out: &mut Vec<PreflightFinding>) {
    out.push(match (f.time_services.first(), f.ntp_synchronized) {
        (None, _) if !f.time_services_installed.is_empty() => fail(
            h,
            "TimeSync",
            format!(
                "{} is installed but not running",
                f.time_services_installed.join(", ")
            ),
            &format!(
                "start it: `systemctl enable --now {}`",
                f.time_services_installed[0]
            ),
        ),
        // A container without a time service reads the host kernel's clock, which the host
        // keeps in time. What matters then is the skew, checked below.
        (None, _) if f.container.is_some() => pass(
            h,
            "TimeSync",
            format!(
                "runs in a {} container, which uses the host kernel's clock",
                f.container.as_deref().unwrap_or_default()
            ),
        ),
        (None, _) => fail(
            h,
            "TimeSync",
            "no time synchronisation service is active (chrony, systemd-timesyncd, ntpd)",
            "install and start chrony (`apt-get install -y chrony`), or set spec.timeSync.servers and let kinit configure it",
        ),
        (Some(svc), Some(false)) => warn(
            h,
            "TimeSync",
            format!("{svc} is active but the clock is not synchronised yet"),
            "check that the NTP servers are reachable (`chronyc sources`)",
        ),
        (Some(svc), _) => pass(h, "TimeSync", format!("{svc} is active")),
    });
    // Judged on the range the measurement allows: a failure only when even its smallest skew is
    // too much, a pass only when even its largest is small.
    if let Some(skew) = skew {
        let msg = format!(
            "clock is {:.3} s ± {:.3} s {} the operator's",
            skew.offset.abs(),
            skew.uncertainty,
            if skew.offset >= 0.0 {
                "ahead of"
            } else {
                "behind"
            }
        );
        let fix = "synchronise the clocks (chrony on every host and on this machine)";
        out.push(if skew.at_least() >= SKEW_FAIL {
            fail(h, "ClockSkew", msg, fix)
        } else if skew.at_most() >= SKEW_WARN {
            warn(h, "ClockSkew", msg, fix)
        } else {
            pass(h, "ClockSkew", msg)
        });
    }
}

fn etcd_dir(inv: &Inventory, host: &Host, f: &HostFacts, out: &mut Vec<PreflightFinding>) {
    let h = host.name.as_str();
    let dir = &inv.etcd.data_dir;
    let check = format!("DirAvailable-{}", dir.replace('/', "-"));
    let etcd_running = super::ports::own_etcd_running(inv, host, f);
    let d = &f.etcd_dir;
    out.push(if !d.exists || d.entries.is_empty() {
        pass(h, check, format!("{dir} is empty or absent"))
    } else if d.entries == [crate::host_paths::ETCD_DATA_ENTRY] && etcd_running {
        pass(h, check, format!("{dir} holds the running etcd member"))
    } else if d.entries == [crate::host_paths::ETCD_DATA_ENTRY] && d.kinit_config_names.as_deref() == Some(dir.as_str()) {
        // Moving it away would throw away a member the cluster still counts.
        pass(
            h,
            check,
            format!(
                "{dir} holds this host's etcd member (kinit's etcd config names it); etcd is not \
                 running: `kinit up` starts it"
            ),
        )
    } else {
        fail(
            h,
            check,
            format!("{dir} is not empty ({})", d.entries.join(", ")),
            &format!("this looks like data from another etcd: move it away (`mv {dir} {dir}.old`) if it is not needed"),
        )
    });
    if let Some(free) = d.free_kib {
        let gib = free as f64 / 1024.0 / 1024.0;
        out.push(if free >= MIN_ETCD_FREE_KIB {
            pass(h, "EtcdDiskSpace", format!("{gib:.1} GiB free for {dir}"))
        } else {
            fail(
                h,
                "EtcdDiskSpace",
                format!("only {gib:.1} GiB free for {dir}; etcd's database may grow to 2 GiB"),
                "free disk space or put spec.etcd.dataDir on a larger filesystem",
            )
        });
    }
}
