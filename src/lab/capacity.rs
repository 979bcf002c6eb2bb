//! Whether a new lab fits this machine: the memory, disk and CPU that N nodes need, against what
//! this machine has free, checked before anything is created. The decision ([`check`]) is pure;
//! [`measure`] reads the machine with sysinfo.
//!
//! What a node costs was measured on this project's 2-core, 24 GiB Debian 12 VM, on a lab of
//! 3 control-plane nodes and 1 worker, 60 s after `kinit up` (etcd, haproxy and keepalived
//! running on the control planes; no kubelet, which the lab's bundle lacks):
//!
//! - Memory, as PSS (the sum of `Pss:` in `/proc/PID/smaps_rollup` over every process in the
//!   node's PID namespace, and its systemd-nspawn): a control-plane node 61.6 to 64.1 MiB in
//!   13 processes (etcd 35.4, haproxy 8.3, keepalived 3.5, the rest systemd, journald, networkd,
//!   logind, dbus, sshd, agetty, chronyd) plus 2.2 MiB for its systemd-nspawn; a worker 15.4 to
//!   16.2 MiB in 8 processes plus 2.2 MiB. The kernel's share (unreclaimable slab, kernel stacks,
//!   page tables) fell by 11.6 MiB when the 4 nodes were removed: about 3 MiB a node. So about
//!   69 MiB per control plane and 21 MiB per worker. (The nodes' memory cgroups cannot be read
//!   here: this machine's memory controller is cgroup v1 and the nodes' cgroups are not in it.)
//! - Disk: each node's overlay upper directory (`du -sk`): 8.2 MiB after boot; after `kinit up`
//!   167.4 MiB on a control plane (`/var/lib/etcd` 123 MiB, most of it a preallocated 64 MiB WAL
//!   segment; etcd and etcdctl in `/usr/local/bin` 37 MiB) and 8.2 MiB on a worker. The lab's
//!   `bundle/` (etcd and etcdctl) 36.9 MiB. The image: 341 MiB on disk (`du -sh`), plus 74 MiB of
//!   downloaded packages that exist only while debootstrap runs (the `Size:` of its 170 packages
//!   in the Debian index it used): 415 MiB at the peak of the build.
//! - CPU: utime + stime + cutime + cstime from `/proc/PID/stat` of the same processes, over 60 s:
//!   21.8 to 24.8 millicores per control plane (etcd heartbeats, keepalived's check script),
//!   0.2 per worker. Booting a node took 0.3 CPU-seconds.
//!
//! A lab whose bundle carries the Kubernetes control plane (`lab up --bundle DIR`: kube-apiserver,
//! kube-controller-manager and kube-scheduler v1.37 and etcd 3.6 as systemd units) costs much
//! more per control-plane node. Measured on the same machine with benches/control_plane.sh (PSS
//! per process after `kinit up`): kube-apiserver about 288 MiB, kube-controller-manager 74 MiB
//! (115 MiB on the lease holder), kube-scheduler 66 MiB, etcd 3.6 61 MiB, haproxy 4 MiB,
//! keepalived 2 MiB, plus the node's own processes as above: about 570 MiB. Disk: the binaries
//! uploaded to each node (kube-apiserver 114 MiB, kube-controller-manager 100, kube-scheduler 77,
//! etcd, etcdctl and etcdutl 60) and etcd's data: about 480 MiB; the lab's own copy of the
//! bundle (every binary built, kubectl and the node programs too) about 700 MiB.
//!
//! The constants below round those up: etcd's memory and WAL grow with its data and time, and
//! journals grow on every node.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::LabError;
use super::plan::{CONTROL_PLANES, MAX_NODES};

pub const MIB: u64 = 1 << 20;
pub const GIB: u64 = 1 << 30;

/// What the lab's nodes run, which decides what a control-plane node costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LabWorkload {
    /// etcd, haproxy and keepalived (the image's bundle: no Kubernetes binaries).
    Etcd,
    /// The real control plane too: kube-apiserver, kube-controller-manager, kube-scheduler.
    Kubernetes,
}

impl LabWorkload {
    pub fn control_plane_memory(self) -> u64 {
        match self {
            LabWorkload::Etcd => CONTROL_PLANE_MEMORY,
            LabWorkload::Kubernetes => KUBERNETES_CONTROL_PLANE_MEMORY,
        }
    }
    pub fn control_plane_disk(self) -> u64 {
        match self {
            LabWorkload::Etcd => CONTROL_PLANE_DISK,
            LabWorkload::Kubernetes => KUBERNETES_CONTROL_PLANE_DISK,
        }
    }
    pub fn control_plane_millicpus(self) -> u64 {
        match self {
            LabWorkload::Etcd => CONTROL_PLANE_MILLICPUS,
            LabWorkload::Kubernetes => KUBERNETES_CONTROL_PLANE_MILLICPUS,
        }
    }
    pub fn lab_disk(self) -> u64 {
        match self {
            LabWorkload::Etcd => LAB_DISK,
            LabWorkload::Kubernetes => KUBERNETES_LAB_DISK,
        }
    }
}

/// Measured about 69 MiB (PSS 64 + nspawn 2.2 + kernel 3) after `kinit up`.
pub const CONTROL_PLANE_MEMORY: u64 = 96 * MIB;
/// Measured about 570 MiB with the Kubernetes control plane (see the module's notes).
pub const KUBERNETES_CONTROL_PLANE_MEMORY: u64 = 768 * MIB;
/// Measured about 21 MiB (PSS 16 + nspawn 2.2 + kernel 3).
pub const WORKER_MEMORY: u64 = 32 * MIB;
/// Left to the rest of this machine: kinit itself, ssh, debootstrap and dpkg during a build.
pub const MEMORY_KEPT_FREE: u64 = 512 * MIB;

/// Measured 415 MiB at the peak of a build (341 MiB image + 74 MiB of packages); counted only
/// when the image is not built yet.
pub const IMAGE_DISK: u64 = 512 * MIB;
/// The lab's bundle (etcd, etcdctl: 36.9 MiB), keys, known_hosts, cluster.yaml.
pub const LAB_DISK: u64 = 48 * MIB;
/// The lab's copy of a Kubernetes bundle (about 700 MiB), keys, known_hosts, cluster.yaml.
pub const KUBERNETES_LAB_DISK: u64 = 768 * MIB;
/// Measured 167.4 MiB of overlay after `kinit up` (etcd's data and binaries).
pub const CONTROL_PLANE_DISK: u64 = 256 * MIB;
/// About 480 MiB with the Kubernetes control plane's binaries and etcd's data.
pub const KUBERNETES_CONTROL_PLANE_DISK: u64 = 640 * MIB;
/// Measured 8.2 MiB of overlay.
pub const WORKER_DISK: u64 = 32 * MIB;
/// Never fill the filesystem: this much stays free.
pub const DISK_KEPT_FREE: u64 = GIB;

/// Measured 21.8 to 24.8 millicores at rest after `kinit up`.
pub const CONTROL_PLANE_MILLICPUS: u64 = 50;
/// With the Kubernetes control plane (lease renewals, controllers' resyncs, etcd's writes).
pub const KUBERNETES_CONTROL_PLANE_MILLICPUS: u64 = 200;
/// Measured 0.2 millicores at rest; kinit's SSH sessions during `kinit up` add short bursts.
pub const WORKER_MILLICPUS: u64 = 5;
/// The share of this machine's CPUs that lab nodes may take at rest (the rest is the
/// operator's, and absorbs boots and `kinit up`).
pub const CPU_SHARE_PERCENT: u64 = 50;

/// What this machine has free, as [`measure`] reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MachineCapacity {
    /// Bytes of memory available (`MemAvailable`: free plus reclaimable caches).
    pub available_memory: u64,
    /// Bytes free (for unprivileged users, as `df` shows) on the filesystem of the lab state.
    pub free_disk: u64,
    /// Logical CPUs.
    pub cpus: u32,
}

impl MachineCapacity {
    /// The millicores lab nodes may take at rest.
    pub fn lab_millicpus(&self) -> u64 {
        u64::from(self.cpus) * 1000 * CPU_SHARE_PERCENT / 100
    }
}

/// What a new lab of N nodes needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Need {
    pub control_planes: u32,
    pub workers: u32,
    pub image_built: bool,
    pub workload: LabWorkload,
    /// Bytes, including [`MEMORY_KEPT_FREE`].
    pub memory: u64,
    /// Bytes, including [`DISK_KEPT_FREE`].
    pub disk: u64,
    pub millicpus: u64,
}

impl Need {
    pub fn new(nodes: u32, image_built: bool, workload: LabWorkload) -> Need {
        let control_planes = nodes.min(CONTROL_PLANES);
        let workers = nodes - control_planes;
        let (cp, w) = (u64::from(control_planes), u64::from(workers));
        let image = if image_built { 0 } else { IMAGE_DISK };
        Need {
            control_planes,
            workers,
            image_built,
            workload,
            memory: cp * workload.control_plane_memory() + w * WORKER_MEMORY + MEMORY_KEPT_FREE,
            disk: image
                + workload.lab_disk()
                + cp * workload.control_plane_disk()
                + w * WORKER_DISK
                + DISK_KEPT_FREE,
            millicpus: cp * workload.control_plane_millicpus() + w * WORKER_MILLICPUS,
        }
    }

    fn fits(&self, cap: &MachineCapacity) -> bool {
        self.memory <= cap.available_memory
            && self.disk <= cap.free_disk
            && self.millicpus <= cap.lab_millicpus()
    }
}

/// The most nodes (up to a lab's limit) a new lab may have here; 0 when not even one fits.
pub fn largest_fit(cap: &MachineCapacity, image_built: bool, workload: LabWorkload) -> u32 {
    // Needs grow with N, so the first N that does not fit ends the search.
    (1..=MAX_NODES)
        .take_while(|&n| Need::new(n, image_built, workload).fits(cap))
        .last()
        .unwrap_or(0)
}

/// Whether a new lab of `nodes` nodes fits `cap`; when not, what it needs against what there is,
/// and the largest lab that fits.
pub fn check(
    cap: &MachineCapacity,
    nodes: u32,
    image_built: bool,
    workload: LabWorkload,
) -> Result<(), NoRoom> {
    let need = Need::new(nodes, image_built, workload);
    if nodes <= MAX_NODES && need.fits(cap) {
        return Ok(());
    }
    Err(NoRoom {
        nodes,
        need,
        capacity: *cap,
        largest: largest_fit(cap, image_built, workload),
        disk_dir: PathBuf::new(),
    })
}

/// A lab that does not fit: the numbers, for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoRoom {
    pub nodes: u32,
    pub need: Need,
    pub capacity: MachineCapacity,
    /// The largest number of nodes that fits (at most [`MAX_NODES`]); 0 when none does.
    pub largest: u32,
    /// Where the disk was measured (set by the caller; empty in the pure check).
    pub disk_dir: PathBuf,
}

fn size(bytes: u64) -> String {
    if bytes >= GIB {
        format!("{:.2} GiB", bytes as f64 / GIB as f64)
    } else {
        format!("{} MiB", bytes.div_ceil(MIB))
    }
}

fn cpus(millicpus: u64) -> String {
    format!("{:.2}", millicpus as f64 / 1000.0)
}

impl fmt::Display for NoRoom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (need, cap) = (&self.need, &self.capacity);
        let short = |s: bool| if s { " (short)" } else { "" };
        let nodes = format!(
            "{} control-plane node(s) and {} worker(s)",
            need.control_planes, need.workers
        );
        write!(f, "{} node(s) do not fit this machine: ", self.nodes)?;
        if self.nodes > MAX_NODES {
            write!(f, "a lab has at most {MAX_NODES} nodes; ")?;
        }
        write!(
            f,
            "memory: {} needed ({nodes} at {} and {}, plus {} kept free), {} available{}; ",
            size(need.memory),
            size(need.workload.control_plane_memory()),
            size(WORKER_MEMORY),
            size(MEMORY_KEPT_FREE),
            size(cap.available_memory),
            short(need.memory > cap.available_memory)
        )?;
        let image = if need.image_built {
            String::new()
        } else {
            format!("the image (not built yet) {}, ", size(IMAGE_DISK))
        };
        let dir = if self.disk_dir.as_os_str().is_empty() {
            String::new()
        } else {
            format!(" in {}", self.disk_dir.display())
        };
        write!(
            f,
            "disk{dir}: {} needed ({image}the lab {}, nodes at {} and {}, plus {} kept free), {} free{}; ",
            size(need.disk),
            size(need.workload.lab_disk()),
            size(need.workload.control_plane_disk()),
            size(WORKER_DISK),
            size(DISK_KEPT_FREE),
            size(cap.free_disk),
            short(need.disk > cap.free_disk)
        )?;
        write!(
            f,
            "CPU: {} needed at rest ({}m per control plane, {}m per worker), {} allowed ({CPU_SHARE_PERCENT}% of {} CPUs){}. ",
            cpus(need.millicpus),
            need.workload.control_plane_millicpus(),
            WORKER_MILLICPUS,
            cpus(cap.lab_millicpus()),
            cap.cpus,
            short(need.millicpus > cap.lab_millicpus())
        )?;
        if self.largest == 0 {
            write!(
                f,
                "Not even 1 node fits: free some memory or disk, or set KINIT_LAB_SKIP_CAPACITY=1 to skip this check"
            )
        } else {
            write!(
                f,
                "The largest lab that fits is --nodes {} (KINIT_LAB_SKIP_CAPACITY=1 skips this check)",
                self.largest
            )
        }
    }
}

/// Read this machine's free memory, CPUs, and the free space of the filesystem holding `dir`
/// (or its nearest existing ancestor), with sysinfo.
pub fn measure(dir: &Path) -> Result<MachineCapacity, LabError> {
    use sysinfo::{CpuRefreshKind, DiskRefreshKind, Disks, MemoryRefreshKind, RefreshKind, System};
    let step = "checking this machine's capacity";
    let sys = System::new_with_specifics(
        RefreshKind::nothing()
            .with_memory(MemoryRefreshKind::nothing().with_ram())
            .with_cpu(CpuRefreshKind::nothing()),
    );
    let existing = dir
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"));
    let path = existing
        .canonicalize()
        .map_err(|e| LabError::io(existing, "resolving", e))?;
    let dev = device(&path)?;
    let disks = Disks::new_with_refreshed_list_specifics(DiskRefreshKind::nothing().with_storage());
    // The mount that holds `path`: the longest mount point above it on the same device (a
    // mount point may be mounted over; the device number tells the one in effect).
    let disk = disks
        .list()
        .iter()
        .filter(|d| path.starts_with(d.mount_point()))
        .filter(|d| device(d.mount_point()).is_ok_and(|d| d == dev))
        .max_by_key(|d| d.mount_point().as_os_str().len())
        .ok_or_else(|| {
            LabError::step(
                step,
                format!(
                    "cannot find the filesystem holding {} among this machine's mounts \
                     (set KINIT_LAB_SKIP_CAPACITY=1 to skip the check)",
                    path.display()
                ),
            )
        })?;
    Ok(MachineCapacity {
        available_memory: sys.available_memory(),
        free_disk: disk.available_space(),
        cpus: u32::try_from(sys.cpus().len()).unwrap_or(u32::MAX),
    })
}

fn device(path: &Path) -> Result<u64, LabError> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path)
        .map(|m| m.dev())
        .map_err(|e| LabError::io(path, "reading", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This project's VM, roughly: 22 GiB available, 50 GiB free, 2 CPUs.
    fn vm() -> MachineCapacity {
        MachineCapacity {
            available_memory: 22 * GIB,
            free_disk: 50 * GIB,
            cpus: 2,
        }
    }

    #[test]
    fn the_default_lab_fits_a_small_machine_and_the_need_adds_up() {
        let need = Need::new(3, false, LabWorkload::Etcd);
        assert_eq!(need.control_planes, 3);
        assert_eq!(need.workers, 0);
        assert_eq!(need.memory, 3 * 96 * MIB + 512 * MIB);
        assert_eq!(need.disk, (512 + 48 + 3 * 256) * MIB + GIB);
        assert_eq!(need.millicpus, 150);
        let small = MachineCapacity {
            available_memory: GIB,
            free_disk: 3 * GIB,
            cpus: 1,
        };
        assert_eq!(check(&small, 3, false, LabWorkload::Etcd), Ok(()));
        let five = Need::new(5, true, LabWorkload::Etcd);
        assert_eq!((five.control_planes, five.workers), (3, 2));
        assert_eq!(five.memory, (3 * 96 + 2 * 32 + 512) * MIB);
        assert_eq!(five.disk, (48 + 3 * 256 + 2 * 32) * MIB + GIB);
    }

    /// The real control plane's apiserver, controller-manager and scheduler: a 3-node lab needs
    /// 2 GiB more than etcd alone; a machine with 1.5 GiB available fits 1 such node.
    #[test]
    fn a_kubernetes_lab_counts_the_control_plane_it_runs() {
        let need = Need::new(3, true, LabWorkload::Kubernetes);
        assert_eq!(need.memory, (3 * 768 + 512) * MIB);
        assert_eq!(need.disk, (768 + 3 * 640) * MIB + GIB);
        assert_eq!(need.millicpus, 600);
        let small = MachineCapacity {
            available_memory: 3 * GIB / 2,
            ..vm()
        };
        assert_eq!(check(&small, 3, true, LabWorkload::Etcd), Ok(()));
        let err = check(&small, 3, true, LabWorkload::Kubernetes).unwrap_err();
        assert_eq!(err.largest, 1);
        let text = err.to_string();
        assert!(text.contains("at 768 MiB"), "{text}");
        assert!(text.contains("200m per control plane"), "{text}");
    }

    #[test]
    fn the_image_counts_only_when_it_is_not_built() {
        // Room for the lab and its 3 nodes, but not for building the image as well.
        let cap = MachineCapacity {
            free_disk: Need::new(3, true, LabWorkload::Etcd).disk,
            ..vm()
        };
        assert_eq!(check(&cap, 3, true, LabWorkload::Etcd), Ok(()));
        let err = check(&cap, 3, false, LabWorkload::Etcd).unwrap_err();
        // 512 MiB of image take the room of 2 control planes.
        assert_eq!(err.largest, 1);
        let text = err.to_string();
        assert!(text.contains("the image (not built yet) 512 MiB"), "{text}");
        assert!(text.contains("--nodes 1 "), "{text}");

        let cap = MachineCapacity {
            free_disk: Need::new(1, true, LabWorkload::Etcd).disk,
            ..vm()
        };
        assert_eq!(check(&cap, 1, true, LabWorkload::Etcd), Ok(()));
        let err = check(&cap, 1, false, LabWorkload::Etcd).unwrap_err();
        assert_eq!(err.largest, 0);
        assert!(err.to_string().contains("Not even 1 node fits"), "{err}");
    }

    #[test]
    fn short_memory_names_the_numbers_and_the_largest_lab_that_fits() {
        // 1 GiB available: 512 MiB kept free, 3 control planes take 288 MiB, then 7 workers.
        let cap = MachineCapacity {
            available_memory: GIB,
            ..vm()
        };
        assert_eq!(largest_fit(&cap, true, LabWorkload::Etcd), 10);
        assert_eq!(check(&cap, 10, true, LabWorkload::Etcd), Ok(()));
        let err = check(&cap, 11, true, LabWorkload::Etcd).unwrap_err();
        assert_eq!(err.largest, 10);
        let text = err.to_string();
        assert!(
            text.starts_with("11 node(s) do not fit this machine"),
            "{text}"
        );
        assert!(
            text.contains("memory: 1.03 GiB needed (3 control-plane node(s) and 8 worker(s) at 96 MiB and 32 MiB, plus 512 MiB kept free), 1.00 GiB available (short)"),
            "{text}"
        );
        assert!(text.contains("--nodes 10"), "{text}");
        assert!(!text.contains("at most 20"), "{text}");
        // Disk and CPU are not what is short.
        assert!(!text.contains("free (short)"), "{text}");
        assert!(!text.contains("CPUs) (short)"), "{text}");
    }

    #[test]
    fn short_disk_and_cpu_are_named() {
        let cap = MachineCapacity {
            free_disk: Need::new(4, true, LabWorkload::Etcd).disk,
            ..vm()
        };
        assert_eq!(largest_fit(&cap, true, LabWorkload::Etcd), 4);
        let text = check(&cap, 6, true, LabWorkload::Etcd)
            .unwrap_err()
            .to_string();
        assert!(text.contains("free (short)"), "{text}");
        assert!(text.contains("--nodes 4"), "{text}");

        // 1 CPU: 500 millicores for labs; 3 control planes take 150, each worker 5.
        let one_cpu = MachineCapacity { cpus: 1, ..vm() };
        assert_eq!(one_cpu.lab_millicpus(), 500);
        assert_eq!(largest_fit(&one_cpu, true, LabWorkload::Etcd), MAX_NODES);
        let none = MachineCapacity { cpus: 0, ..vm() };
        let err = check(&none, 1, true, LabWorkload::Etcd).unwrap_err();
        assert_eq!(err.largest, 0);
        assert!(err.to_string().contains("(50% of 0 CPUs) (short)"), "{err}");
    }

    #[test]
    fn more_nodes_than_a_lab_may_have_are_refused_with_the_largest_that_fits() {
        let err = check(&vm(), 500, true, LabWorkload::Etcd).unwrap_err();
        assert_eq!(err.largest, MAX_NODES);
        let text = err.to_string();
        assert!(text.contains("500 node(s) do not fit"), "{text}");
        assert!(text.contains("a lab has at most 20 nodes"), "{text}");
        assert!(text.contains("--nodes 20"), "{text}");
        // 3 × 50m + 497 × 5m = 2.635 CPUs, over the 1.00 of 2 CPUs.
        assert!(text.contains("CPU: 2.63 needed"), "{text}");
        assert!(
            text.contains("1.00 allowed (50% of 2 CPUs) (short)"),
            "{text}"
        );
    }

    #[test]
    fn this_machine_can_be_measured() {
        let cap = measure(Path::new("/nonexistent/kinit/below/root")).unwrap();
        assert!(cap.cpus >= 1, "{cap:?}");
        assert!(cap.available_memory > 0, "{cap:?}");
        assert!(cap.free_disk > 0, "{cap:?}");
    }
}
