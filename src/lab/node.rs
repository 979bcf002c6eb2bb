//! One node: its identity written into its overlay's upper layer, the overlay mount, the
//! systemd-nspawn process that boots it, and taking all of that down again.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use super::LabError;
use super::keys;
use super::plan::{LabPlan, PlannedNode};
use super::process::{RecordedProcess, spawn_detached};
use super::state::NodeRecord;
use super::{bridge, cgroup, mounts};

/// How long systemd in the node gets to power off cleanly before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// A fresh record for a node of a lab whose directory is `lab_dir`.
pub fn record(lab_dir: &Path, node: &PlannedNode, runtime: bool) -> Result<NodeRecord, LabError> {
    let dir = lab_dir.join("nodes").join(&node.name);
    Ok(NodeRecord {
        name: node.name.clone(),
        machine_id: random_machine_id()?,
        root: dir.join("root"),
        upper: dir.join("upper"),
        work: dir.join("work"),
        log: dir.join("console.log"),
        nspawn: None,
        leader: None,
        cgroups: cgroup::node_cgroups(&node.machine, runtime),
    })
}

fn random_machine_id() -> Result<String, LabError> {
    let mut bytes = [0u8; 16];
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| LabError::io("/dev/urandom", "reading", e))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The machine id as a UUID, for nspawn's `--uuid`.
fn uuid(machine_id: &str) -> String {
    let m = machine_id;
    format!(
        "{}-{}-{}-{}-{}",
        &m[0..8],
        &m[8..12],
        &m[12..16],
        &m[16..20],
        &m[20..32]
    )
}

fn host_key_path(rec: &NodeRecord) -> PathBuf {
    rec.upper.join("etc/ssh/ssh_host_ed25519_key")
}

/// The node's public host key (exists once `write_identity` ran).
pub fn host_public_key(rec: &NodeRecord) -> Result<String, LabError> {
    keys::read_public(&keys::pub_path(&host_key_path(rec)))
}

fn mkdir(path: &Path, mode: u32) -> Result<(), LabError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
        .map_err(|e| LabError::io(path, "creating", e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| LabError::io(path, "setting mode", e))
}

fn write(path: &Path, contents: &str, mode: u32) -> Result<(), LabError> {
    crate::fsutil::write_atomic(
        path,
        contents.as_bytes(),
        mode,
        crate::fsutil::Existing::Replace,
    )
    .map_err(|e| LabError::io(path, "writing", e))
}

/// Write what makes this node itself into its upper layer, before its first boot: hostname,
/// machine-id, static address, host key, the lab key in root's authorized_keys. Directories get
/// the modes they have in the image, since the upper layer's win in the merged view.
pub fn write_identity(
    rec: &NodeRecord,
    plan: &LabPlan,
    node: &PlannedNode,
    lab_public_key: &str,
) -> Result<(), LabError> {
    let up = &rec.upper;
    mkdir(up, 0o755)?;
    mkdir(&rec.work, 0o700)?;
    mkdir(&rec.root, 0o755)?;
    for dir in [
        "etc",
        "etc/ssh",
        "etc/systemd",
        "etc/systemd/network",
        "etc/sysctl.d",
    ] {
        mkdir(&up.join(dir), 0o755)?;
    }
    mkdir(&up.join("root"), 0o700)?;
    mkdir(&up.join("root/.ssh"), 0o700)?;
    write(&up.join("etc/hostname"), &format!("{}\n", node.name), 0o644)?;
    write(
        &up.join("etc/machine-id"),
        &format!("{}\n", rec.machine_id),
        0o444,
    )?;
    let mut hosts = format!("127.0.0.1\tlocalhost\n127.0.1.1\t{}\n", node.name);
    for n in &plan.nodes {
        hosts.push_str(&format!("{}\t{}\n", n.address, n.name));
    }
    write(&up.join("etc/hosts"), &hosts, 0o644)?;
    // No Gateway: the node reaches the lab subnet and nothing else.
    let mut network = format!(
        "# kinit lab: this node's static address on bridge {}\n[Match]\nName=host0\n\n[Network]\nAddress={}/{}\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n",
        plan.bridge,
        node.address,
        plan.subnet.prefix_len()
    );
    if plan.runtime {
        // A host's own connections to a ClusterIP need a route before kube-proxy's DNAT picks
        // the pod (a real host's default route is one). On-link: without kube-proxy they go
        // nowhere but unanswered ARP on the lab bridge.
        network.push_str(&format!(
            "\n[Route]\nDestination={}\nScope=link\n",
            super::cluster_file::SERVICE_SUBNET
        ));
    }
    write(
        &up.join("etc/systemd/network/10-host0.network"),
        &network,
        0o644,
    )?;
    // Prepared like a server meant for Kubernetes. The node has its own network namespace, so
    // this forwards nothing on this machine (and the node has no route out anyway).
    write(
        &up.join("etc/sysctl.d/90-kinit-lab.conf"),
        "# kinit lab: nodes come prepared for Kubernetes\nnet.ipv4.ip_forward = 1\n",
        0o644,
    )?;
    write(
        &up.join("root/.ssh/authorized_keys"),
        &format!("{lab_public_key}\n"),
        0o600,
    )?;
    keys::generate(&host_key_path(rec), &format!("root@{}", node.name))
        .map_err(|e| e.for_node(&node.name))?;
    if plan.runtime {
        write_runtime_init(rec)?;
    }
    Ok(())
}

/// A runtime node's init (`--runtime`), run by nspawn instead of systemd: it gives the node
/// what a real host has and a container does not, then becomes systemd.
const RUNTIME_INIT: &str = "usr/local/sbin/kinit-lab-init";
/// Where containerd keeps its images and snapshots, and the kubelet its pods' volumes, on a
/// runtime node: a tmpfs of this machine bound into the node (overlayfs refuses an upper dir
/// on the node's overlay). Not this machine's disk: every node would see the one disk all
/// nodes, builds and tests share, and its kubelet would evict pods for DiskPressure whenever
/// that disk runs low (kind turns disk eviction off for the same reason). Mounted while the
/// lab exists (across `lab stop`/`start`), unmounted by `lab down`.
const RUNTIME_STORES: &[(&str, &str)] = &[
    ("containerd", crate::host_paths::CONTAINERD_ROOT),
    ("kubelet", "/var/lib/kubelet"),
];
/// Each store's tmpfs limit (pages are used only as written).
const STORE_SIZE: &str = "size=8g,mode=0700";

/// Mount each runtime store's tmpfs under `node_dir` (if not mounted yet).
fn mount_stores(name: &str, node_dir: &Path) -> Result<(), LabError> {
    for (dir, _) in RUNTIME_STORES {
        let at = node_dir.join(dir);
        mkdir(&at, 0o700)?;
        if mounts::is_mounted(&at) {
            continue;
        }
        let target = cstr(&at);
        let data = CString::new(STORE_SIZE).expect("no NUL");
        // SAFETY: all pointers are valid NUL-terminated strings for the duration of the call.
        let rc = unsafe {
            libc::mount(
                c"kinit-lab".as_ptr(),
                target.as_ptr(),
                c"tmpfs".as_ptr(),
                libc::MS_NODEV,
                data.as_ptr().cast(),
            )
        };
        if rc != 0 {
            return Err(LabError::node_step(
                name,
                "mounting its runtime store",
                format!("{}: {}", at.display(), std::io::Error::last_os_error()),
            ));
        }
    }
    Ok(())
}

/// Unmount the runtime stores under `node_dir` (lab down; a stopped node's are idle).
pub fn unmount_stores(node_dir: &Path) -> Result<(), LabError> {
    for (dir, _) in RUNTIME_STORES {
        let at = node_dir.join(dir);
        if !mounts::is_mounted(&at) {
            continue;
        }
        // SAFETY: a valid NUL-terminated path.
        if unsafe { libc::umount2(cstr(&at).as_ptr(), libc::MNT_DETACH) } != 0 {
            return Err(LabError::io(
                &at,
                "unmounting",
                std::io::Error::last_os_error(),
            ));
        }
    }
    Ok(())
}

fn write_runtime_init(rec: &NodeRecord) -> Result<(), LabError> {
    let up = &rec.upper;
    for dir in ["usr", "usr/local", "usr/local/sbin", "usr/local/share"] {
        mkdir(&up.join(dir), 0o755)?;
    }
    mkdir(&up.join("usr/local/share/kinit-lab"), 0o755)?;
    // The kubelet insists on these kernel settings and would write them; they are this
    // machine's, read-only in the node. It is shown the values it wants, in the node's own
    // mount namespace (this machine keeps its own).
    let sysctls = [
        ("vm/overcommit_memory", "1"),
        ("kernel/panic", "10"),
        ("kernel/panic_on_oops", "1"),
    ];
    let mut script = String::from(
        "#!/bin/sh\n\
         # kinit lab (--runtime): what a real host gives the kubelet and runc, then systemd.\n\
         # The node's cgroup v1 controllers (its own cgroups, see kinit's lab/cgroup.rs), writable.\n\
         for c in /sys/fs/cgroup/*; do\n\
         \x20 case \"$c\" in */unified|*/systemd) ;; *) [ -d \"$c\" ] && [ ! -L \"$c\" ] && mount -o remount,bind,rw \"$c\" ;; esac\n\
         done\n\
         # The kubelet reads the kernel log; the node has none of its own.\n\
         [ -e /dev/kmsg ] || ln -s /dev/console /dev/kmsg\n",
    );
    for (key, value) in sysctls {
        let file = format!("usr/local/share/kinit-lab/sysctl-{}", key.replace('/', "-"));
        write(&up.join(&file), &format!("{value}\n"), 0o644)?;
        script.push_str(&format!("mount --bind /{file} /proc/sys/{key}\n"));
    }
    script.push_str("exec /lib/systemd/systemd \"$@\"\n");
    write(&up.join(RUNTIME_INIT), &script, 0o755)
}

pub fn identity_written(rec: &NodeRecord) -> bool {
    keys::pub_path(&host_key_path(rec)).exists() && rec.upper.join("etc/machine-id").exists()
}

fn cstr(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).expect("lab paths contain no NUL")
}

pub fn mount_overlay(rec: &NodeRecord, image: &Path) -> Result<(), LabError> {
    if mounts::is_mounted(&rec.root) {
        return Ok(());
    }
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        image.display(),
        rec.upper.display(),
        rec.work.display()
    );
    let (src, fstype) = (c"overlay", c"overlay");
    let target = cstr(&rec.root);
    let data = CString::new(opts).expect("no NUL");
    // SAFETY: all pointers are valid NUL-terminated strings for the duration of the call.
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            data.as_ptr().cast(),
        )
    };
    if rc != 0 {
        return Err(LabError::node_step(
            &rec.name,
            "mounting its overlay",
            format!(
                "{}: {}",
                rec.root.display(),
                std::io::Error::last_os_error()
            ),
        ));
    }
    Ok(())
}

pub fn unmount_overlay(rec: &NodeRecord) -> Result<(), LabError> {
    let target = cstr(&rec.root);
    let deadline = Instant::now() + Duration::from_secs(5);
    while mounts::is_mounted(&rec.root) {
        // SAFETY: target is a valid NUL-terminated path.
        if unsafe { libc::umount2(target.as_ptr(), 0) } == 0 {
            continue;
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EBUSY) || Instant::now() >= deadline {
            return Err(LabError::node_step(
                &rec.name,
                "unmounting its overlay",
                format!("{}: {err}", rec.root.display()),
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// Boot the node: systemd-nspawn in a session of its own, console to the node's log.
pub fn spawn(rec: &NodeRecord, plan: &LabPlan, node: &PlannedNode) -> Result<Child, LabError> {
    let mut cmd = Command::new("systemd-nspawn");
    cmd.arg("--directory")
        .arg(&rec.root)
        .arg(format!("--machine={}", node.machine))
        .arg(format!("--hostname={}", node.name))
        .arg(format!("--uuid={}", uuid(&rec.machine_id)))
        // No machined or system D-Bus here: do not register, stay in kinit's own cgroup.
        .arg("--register=no")
        .arg("--keep-unit")
        .arg("--link-journal=no")
        .arg(format!("--network-bridge={}", plan.bridge));
    if plan.runtime {
        let node_dir = rec.upper.parent().expect("a node dir");
        mount_stores(&node.name, node_dir)?;
        for (dir, inside) in RUNTIME_STORES {
            cmd.arg(format!("--bind={}:{inside}", node_dir.join(dir).display()));
        }
        // runc joins a session keyring for each container; nspawn's filter refuses the calls.
        cmd.arg("--system-call-filter=add_key keyctl")
            // What --boot would set: systemd halts on SIGRTMIN+3 (it re-executes on SIGTERM).
            .arg("--kill-signal=SIGRTMIN+3")
            .arg(format!("/{RUNTIME_INIT}"));
    } else {
        cmd.arg("--boot");
    }
    cgroup::create(&rec.cgroups).map_err(|e| e.for_node(&node.name))?;
    spawn_detached(&mut cmd, &rec.log, cgroup::procs_files(&rec.cgroups))
        .map_err(|e| LabError::node_step(&node.name, "starting systemd-nspawn", e.to_string()))
}

/// The last lines of the node's console log, for error messages.
pub fn log_tail(rec: &NodeRecord, lines: usize) -> String {
    let text = std::fs::read_to_string(&rec.log).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Power the node off (nspawn turns SIGTERM into an orderly shutdown of the node's systemd),
/// kill it if that takes too long, then remove its mount and veth. Also stops a node whose
/// systemd-nspawn died but whose systemd lives on. Safe to repeat.
pub fn stop(rec: &mut NodeRecord, node: &PlannedNode) -> Result<(), LabError> {
    if let Some(p) = rec.nspawn
        && p.signal(libc::SIGTERM)
    {
        p.wait_gone(STOP_TIMEOUT);
    }
    if let Some(leader) = rec.leader
        && leader.is_alive()
    {
        // No nspawn to ask (or it did not manage): SIGRTMIN+4 asks systemd itself to power off.
        leader.signal(libc::SIGRTMIN() + 4);
        if !leader.wait_gone(STOP_TIMEOUT) {
            // PID 1 of a PID namespace takes every process in it along when it dies.
            leader.signal(libc::SIGKILL);
            leader.wait_gone(Duration::from_secs(5));
        }
    }
    if let Some(p) = rec.nspawn
        && p.is_alive()
    {
        for child in p.children() {
            child.signal(libc::SIGKILL);
        }
        p.signal(libc::SIGKILL);
        p.wait_gone(Duration::from_secs(5));
    }
    for (what, proc) in [
        ("systemd-nspawn", rec.nspawn),
        ("the node's systemd", rec.leader),
    ] {
        if let Some(p) = proc.filter(|p| p.is_alive()) {
            return Err(LabError::node_step(
                &node.name,
                "stopping",
                format!("{what} (pid {}) survived SIGKILL", p.pid),
            ));
        }
    }
    rec.nspawn = None;
    rec.leader = None;
    release(rec, node)
}

/// The node's init: the child of systemd-nspawn that lives in a PID namespace of its own.
pub fn find_leader(nspawn: &RecordedProcess) -> Option<RecordedProcess> {
    let ns = |pid: i32| std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
    let own = ns(nspawn.pid)?;
    let children = nspawn.children();
    let mut inner = children
        .into_iter()
        .filter(|c| ns(c.pid).is_some_and(|n| n != own));
    match (inner.next(), inner.next()) {
        (Some(leader), None) => Some(leader),
        _ => None,
    }
}

/// Remove what a node that is not running may have left: its overlay mount, its cgroups and
/// its veth.
pub fn release(rec: &NodeRecord, node: &PlannedNode) -> Result<(), LabError> {
    unmount_overlay(rec)?;
    cgroup::remove(&rec.cgroups).map_err(|e| e.for_node(&node.name))?;
    // nspawn's veth dies with the node's network namespace; delete it if it somehow did not.
    bridge::delete_link(&node.veth).map_err(|e| e.for_node(&node.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_ids_are_random_hex_and_map_to_uuids() {
        let a = random_machine_id().unwrap();
        let b = random_machine_id().unwrap();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        let u = uuid("0123456789abcdef0123456789abcdef");
        assert_eq!(u, "01234567-89ab-cdef-0123-456789abcdef");
    }
}
