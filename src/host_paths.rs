//! Where things live on a cluster host. One table, read by render (the templates see it as
//! `paths.<key>`), the PKI (where each certificate lands) and deploy (what to upload where).
//!
//! The layout is kubeadm's (`/etc/kubernetes`, `pki/`, `manifests/`), so tools and runbooks
//! written for kubeadm clusters work unchanged. A systemd-run etcd uses the same
//! `/etc/kubernetes/pki/etcd/` certificates as a static-pod etcd: switching `etcd.mode` never
//! moves a certificate.

/// Defines each path once, as a constant and as a row of [`ALL`] (key, path).
macro_rules! host_paths {
    ($( $(#[$doc:meta])* $name:ident = $key:literal => $path:literal; )*) => {
        $( $(#[$doc])* pub const $name: &str = $path; )*
        /// Every path, keyed by the name templates use (`{{ paths.ca_crt }}`).
        pub const ALL: &[(&str, &str)] = &[ $( ($key, $path) ),* ];
    };
}

host_paths! {
    KUBERNETES_DIR = "kubernetes_dir" => "/etc/kubernetes";
    /// Static pod manifests the kubelet runs.
    MANIFESTS_DIR = "manifests_dir" => "/etc/kubernetes/manifests";
    /// Where `kinit etcd snapshot restore` holds the control-plane manifests meanwhile.
    MANIFESTS_ASIDE_DIR = "manifests_aside_dir" => "/etc/kubernetes/manifests.kinit-restore";
    PKI_DIR = "pki_dir" => "/etc/kubernetes/pki";

    CA_CRT = "ca_crt" => "/etc/kubernetes/pki/ca.crt";
    CA_KEY = "ca_key" => "/etc/kubernetes/pki/ca.key";
    APISERVER_CRT = "apiserver_crt" => "/etc/kubernetes/pki/apiserver.crt";
    APISERVER_KEY = "apiserver_key" => "/etc/kubernetes/pki/apiserver.key";
    APISERVER_KUBELET_CLIENT_CRT = "apiserver_kubelet_client_crt" => "/etc/kubernetes/pki/apiserver-kubelet-client.crt";
    APISERVER_KUBELET_CLIENT_KEY = "apiserver_kubelet_client_key" => "/etc/kubernetes/pki/apiserver-kubelet-client.key";
    FRONT_PROXY_CA_CRT = "front_proxy_ca_crt" => "/etc/kubernetes/pki/front-proxy-ca.crt";
    FRONT_PROXY_CA_KEY = "front_proxy_ca_key" => "/etc/kubernetes/pki/front-proxy-ca.key";
    FRONT_PROXY_CLIENT_CRT = "front_proxy_client_crt" => "/etc/kubernetes/pki/front-proxy-client.crt";
    FRONT_PROXY_CLIENT_KEY = "front_proxy_client_key" => "/etc/kubernetes/pki/front-proxy-client.key";
    /// The service-account signing key pair (a key pair, not a certificate).
    SA_KEY = "sa_key" => "/etc/kubernetes/pki/sa.key";
    SA_PUB = "sa_pub" => "/etc/kubernetes/pki/sa.pub";
    APISERVER_ETCD_CLIENT_CRT = "apiserver_etcd_client_crt" => "/etc/kubernetes/pki/apiserver-etcd-client.crt";
    APISERVER_ETCD_CLIENT_KEY = "apiserver_etcd_client_key" => "/etc/kubernetes/pki/apiserver-etcd-client.key";

    ETCD_PKI_DIR = "etcd_pki_dir" => "/etc/kubernetes/pki/etcd";
    ETCD_CA_CRT = "etcd_ca_crt" => "/etc/kubernetes/pki/etcd/ca.crt";
    ETCD_CA_KEY = "etcd_ca_key" => "/etc/kubernetes/pki/etcd/ca.key";
    ETCD_SERVER_CRT = "etcd_server_crt" => "/etc/kubernetes/pki/etcd/server.crt";
    ETCD_SERVER_KEY = "etcd_server_key" => "/etc/kubernetes/pki/etcd/server.key";
    ETCD_PEER_CRT = "etcd_peer_crt" => "/etc/kubernetes/pki/etcd/peer.crt";
    ETCD_PEER_KEY = "etcd_peer_key" => "/etc/kubernetes/pki/etcd/peer.key";
    ETCD_HEALTHCHECK_CLIENT_CRT = "etcd_healthcheck_client_crt" => "/etc/kubernetes/pki/etcd/healthcheck-client.crt";
    ETCD_HEALTHCHECK_CLIENT_KEY = "etcd_healthcheck_client_key" => "/etc/kubernetes/pki/etcd/healthcheck-client.key";

    ADMIN_CONF = "admin_conf" => "/etc/kubernetes/admin.conf";
    /// Written on the first control-plane host only (kubeadm >= 1.29).
    SUPER_ADMIN_CONF = "super_admin_conf" => "/etc/kubernetes/super-admin.conf";
    CONTROLLER_MANAGER_CONF = "controller_manager_conf" => "/etc/kubernetes/controller-manager.conf";
    SCHEDULER_CONF = "scheduler_conf" => "/etc/kubernetes/scheduler.conf";
    KUBELET_CONF = "kubelet_conf" => "/etc/kubernetes/kubelet.conf";
    KUBE_PROXY_CONF = "kube_proxy_conf" => "/etc/kubernetes/kube-proxy.conf";

    KUBE_APISERVER_MANIFEST = "kube_apiserver_manifest" => "/etc/kubernetes/manifests/kube-apiserver.yaml";
    KUBE_CONTROLLER_MANAGER_MANIFEST = "kube_controller_manager_manifest" => "/etc/kubernetes/manifests/kube-controller-manager.yaml";
    KUBE_SCHEDULER_MANIFEST = "kube_scheduler_manifest" => "/etc/kubernetes/manifests/kube-scheduler.yaml";
    ETCD_MANIFEST = "etcd_manifest" => "/etc/kubernetes/manifests/etcd.yaml";

    /// etcd run by systemd: the binary (from the artifacts bundle), its unit and its config file.
    ETCD_BINARY = "etcd_binary" => "/usr/local/bin/etcd";
    ETCD_UNIT = "etcd_unit" => "/etc/systemd/system/etcd.service";
    ETCD_CONFIG = "etcd_config" => "/etc/etcd/etcd.conf.yml";

    /// Scheduled etcd snapshots (spec.etcd.snapshots): the script, and the oneshot service
    /// running it that the timer starts.
    ETCD_SNAPSHOT_SCRIPT = "etcd_snapshot_script" => "/usr/local/lib/kinit/etcd-snapshot.sh";
    ETCD_SNAPSHOT_SERVICE = "etcd_snapshot_service" => "/etc/systemd/system/kinit-etcd-snapshot.service";
    ETCD_SNAPSHOT_TIMER = "etcd_snapshot_timer" => "/etc/systemd/system/kinit-etcd-snapshot.timer";

    /// The control plane run by systemd (controlPlane.mode: systemd): the bundle's binaries and
    /// their units.
    KUBE_APISERVER_BINARY = "kube_apiserver_binary" => "/usr/local/bin/kube-apiserver";
    KUBE_CONTROLLER_MANAGER_BINARY = "kube_controller_manager_binary" => "/usr/local/bin/kube-controller-manager";
    KUBE_SCHEDULER_BINARY = "kube_scheduler_binary" => "/usr/local/bin/kube-scheduler";
    KUBE_APISERVER_UNIT = "kube_apiserver_unit" => "/etc/systemd/system/kube-apiserver.service";
    KUBE_CONTROLLER_MANAGER_UNIT = "kube_controller_manager_unit" => "/etc/systemd/system/kube-controller-manager.service";
    KUBE_SCHEDULER_UNIT = "kube_scheduler_unit" => "/etc/systemd/system/kube-scheduler.service";
    /// The bundle's kubectl, on control-plane hosts (operators' runbooks expect it there).
    KUBECTL_BINARY = "kubectl_binary" => "/usr/local/bin/kubectl";

    KUBELET_CONFIG = "kubelet_config" => "/var/lib/kubelet/config.yaml";
    /// The kubelet from the artifacts bundle and its unit (only when the bundle holds one).
    KUBELET_BINARY = "kubelet_binary" => "/usr/local/bin/kubelet";
    KUBELET_UNIT = "kubelet_unit" => "/etc/systemd/system/kubelet.service";
    KUBE_PROXY_BINARY = "kube_proxy_binary" => "/usr/local/bin/kube-proxy";
    KUBE_PROXY_UNIT = "kube_proxy_unit" => "/etc/systemd/system/kube-proxy.service";
    /// kubeadm's place for it (its DaemonSet mounts a ConfigMap there).
    KUBE_PROXY_CONFIG = "kube_proxy_config" => "/var/lib/kube-proxy/config.conf";
    KUBELET_PKI_DIR = "kubelet_pki_dir" => "/var/lib/kubelet/pki";
    CONTAINERD_SOCKET = "containerd_socket" => "/run/containerd/containerd.sock";
    /// The container runtime from the artifacts bundle: containerd, its runc shim, ctr, runc
    /// and crictl, containerd's unit and configuration, crictl's configuration.
    CONTAINERD_BINARY = "containerd_binary" => "/usr/local/bin/containerd";
    CONTAINERD_SHIM_BINARY = "containerd_shim_binary" => "/usr/local/bin/containerd-shim-runc-v2";
    CTR_BINARY = "ctr_binary" => "/usr/local/bin/ctr";
    RUNC_BINARY = "runc_binary" => "/usr/local/sbin/runc";
    CRICTL_BINARY = "crictl_binary" => "/usr/local/bin/crictl";
    CONTAINERD_UNIT = "containerd_unit" => "/etc/systemd/system/containerd.service";
    CONTAINERD_CONFIG = "containerd_config" => "/etc/containerd/config.toml";
    CONTAINERD_ROOT = "containerd_root" => "/var/lib/containerd";
    /// containerd's registry hosts (`config_path`): `<registry>/hosts.toml` and its `ca.crt`
    /// for each of `spec.registries`.
    CONTAINERD_CERTS_DIR = "containerd_certs_dir" => "/etc/containerd/certs.d";
    CONTAINERD_REGISTRY_HOSTS = "containerd_registry_hosts" => "/etc/containerd/certs.d/{registry}/hosts.toml";
    CONTAINERD_REGISTRY_CA = "containerd_registry_ca" => "/etc/containerd/certs.d/{registry}/ca.crt";
    CRICTL_CONFIG = "crictl_config" => "/etc/crictl.yaml";
    /// The CNI plugins from the bundle (`cni/<plugin>`), and the pod network kinit writes.
    CNI_BIN_DIR = "cni_bin_dir" => "/opt/cni/bin";
    CNI_BRIDGE_PLUGIN = "cni_bridge_plugin" => "/opt/cni/bin/bridge";
    CNI_HOST_LOCAL_PLUGIN = "cni_host_local_plugin" => "/opt/cni/bin/host-local";
    CNI_LOOPBACK_PLUGIN = "cni_loopback_plugin" => "/opt/cni/bin/loopback";
    CNI_PORTMAP_PLUGIN = "cni_portmap_plugin" => "/opt/cni/bin/portmap";
    CNI_CONF_DIR = "cni_conf_dir" => "/etc/cni/net.d";
    CNI_CONFLIST = "cni_conflist" => "/etc/cni/net.d/10-kinit-bridge.conflist";
    /// The routes to the other nodes' pod slices and the masquerade of what leaves the pod
    /// network, set by a script its oneshot unit runs (and takes off when stopped).
    POD_NETWORK_SCRIPT = "pod_network_script" => "/usr/local/lib/kinit/pod-network.sh";
    POD_NETWORK_UNIT = "pod_network_unit" => "/etc/systemd/system/kinit-pod-network.service";
    /// Images built from the bundle's binaries, every archive of the directory imported into
    /// containerd before the kubelet starts (no registry needed).
    IMAGE_ARCHIVES_DIR = "image_archives_dir" => "/var/lib/kinit/images";
    PAUSE_IMAGE_ARCHIVE = "pause_image_archive" => "/var/lib/kinit/images/pause.tar";
    COREDNS_IMAGE_ARCHIVE = "coredns_image_archive" => "/var/lib/kinit/images/coredns.tar";
    KUBE_APISERVER_IMAGE_ARCHIVE = "kube_apiserver_image_archive" => "/var/lib/kinit/images/kube-apiserver.tar";
    KUBE_CONTROLLER_MANAGER_IMAGE_ARCHIVE = "kube_controller_manager_image_archive" => "/var/lib/kinit/images/kube-controller-manager.tar";
    KUBE_SCHEDULER_IMAGE_ARCHIVE = "kube_scheduler_image_archive" => "/var/lib/kinit/images/kube-scheduler.tar";
    ETCD_IMAGE_ARCHIVE = "etcd_image_archive" => "/var/lib/kinit/images/etcd.tar";

    HAPROXY_CFG = "haproxy_cfg" => "/etc/haproxy/haproxy.cfg";
    /// haproxy's runtime API (root and the haproxy group): kinit drains an apiserver here before
    /// it restarts.
    HAPROXY_ADMIN_SOCKET = "haproxy_admin_socket" => "/run/haproxy/admin.sock";
    KEEPALIVED_CONF = "keepalived_conf" => "/etc/keepalived/keepalived.conf";
    CHECK_APISERVER_SH = "check_apiserver_sh" => "/etc/keepalived/check_apiserver.sh";

    SYSCTL_CONF = "sysctl_conf" => "/etc/sysctl.d/99-kubernetes.conf";
    MODULES_LOAD_CONF = "modules_load_conf" => "/etc/modules-load.d/kubernetes.conf";
    /// Debian's location (RHEL-family hosts read /etc/chrony.conf).
    CHRONY_CONF = "chrony_conf" => "/etc/chrony/chrony.conf";
}

/// kinit's own state on a host: restart notes ([`PENDING_DIR`]) and the snapshot scratch dir
/// ([`SNAPSHOT_WORK_DIR`]).
pub const KINIT_STATE_DIR: &str = "/var/lib/kinit";
/// Restart notes that survive a failed run (see `engine::host_ops`).
pub const PENDING_DIR: &str = "/var/lib/kinit/pending";
/// What kinit knows of the large files it wrote (each a `<hash of the path>.stamp`: the
/// file's identity and sha256), so a run compares them without reading them (see
/// `engine::host_ops`). root's, 0700.
pub const UPLOAD_STAMP_DIR: &str = "/var/lib/kinit/stamps";
/// Where a snapshot lies on a member while it is taken or restored from: root's, 0700.
pub const SNAPSHOT_WORK_DIR: &str = "/var/lib/kinit/snapshot";
/// The cluster lock one run holds on every host (see `engine::lock`): under /run, so a rebooted
/// host drops it.
pub const LOCK_DIR: &str = "/run/kinit/up.lock";

/// What etcd keeps in its data directory: one `member` directory (its WAL and snapshots). A data
/// dir holding anything else is not one kinit may move or delete (preflight's `DirAvailable`
/// rule and reset's and restore's scripts read this).
pub const ETCD_DATA_ENTRY: &str = "member";

/// Directories of the operating system and its packages. etcd's data dir may be none of these
/// nor above one (reset moves it aside or deletes it); reset never removes one, even empty.
pub const SYSTEM_DIRS: &[&str] = &[
    "/",
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/etc/chrony",
    "/etc/haproxy",
    "/etc/keepalived",
    "/etc/modules-load.d",
    "/etc/sysctl.d",
    "/etc/systemd",
    "/etc/systemd/system",
    "/home",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/lost+found",
    "/media",
    "/mnt",
    "/opt",
    "/proc",
    "/root",
    "/run",
    "/sbin",
    "/srv",
    "/sys",
    "/tmp",
    "/usr",
    "/usr/bin",
    "/usr/include",
    "/usr/lib",
    "/usr/lib64",
    "/usr/libexec",
    "/usr/local",
    "/usr/local/bin",
    "/usr/local/lib",
    "/usr/local/sbin",
    "/usr/local/share",
    "/usr/sbin",
    "/usr/share",
    "/usr/src",
    "/var",
    "/var/backups",
    "/var/cache",
    "/var/lib",
    "/var/local",
    "/var/lock",
    "/var/log",
    "/var/mail",
    "/var/opt",
    "/var/run",
    "/var/spool",
    "/var/tmp",
];

/// The directories kinit keeps its own files in on a host (every directory above a path of
/// [`ALL`], kinit's state and its lock, short of the system's): `/etc/kubernetes`, `/etc/etcd`,
/// `/var/lib/kinit`, ... Sorted, without duplicates.
pub fn kinit_dirs() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    let paths = ALL
        .iter()
        .map(|(_, p)| *p)
        .chain([PENDING_DIR, SNAPSHOT_WORK_DIR, LOCK_DIR]);
    for p in paths {
        let mut dir = std::path::Path::new(p).parent();
        while let Some(d) = dir.and_then(std::path::Path::to_str) {
            if SYSTEM_DIRS.contains(&d) {
                break;
            }
            out.push(d);
            dir = std::path::Path::new(d).parent();
        }
    }
    // The directories themselves among the paths (kinit's state, the PKI dirs).
    for d in [
        PENDING_DIR,
        SNAPSHOT_WORK_DIR,
        MANIFESTS_ASIDE_DIR,
        MANIFESTS_DIR,
        KUBELET_PKI_DIR,
    ] {
        out.push(d);
    }
    out.sort_unstable();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_paths_are_unique_and_absolute() {
        let mut keys: Vec<_> = ALL.iter().map(|(k, _)| *k).collect();
        let mut paths: Vec<_> = ALL.iter().map(|(_, p)| *p).collect();
        keys.sort_unstable();
        paths.sort_unstable();
        let (nk, np) = (keys.len(), paths.len());
        keys.dedup();
        paths.dedup();
        assert_eq!((keys.len(), paths.len()), (nk, np), "duplicate key or path");
        assert!(paths.iter().all(|p| p.starts_with('/')));
    }

    #[test]
    fn kinit_dirs_are_its_own_and_no_system_dir() {
        let dirs = kinit_dirs();
        for want in [
            KUBERNETES_DIR,
            MANIFESTS_ASIDE_DIR,
            KINIT_STATE_DIR,
            PENDING_DIR,
            SNAPSHOT_WORK_DIR,
            "/etc/etcd",
            "/usr/local/lib/kinit",
            "/run/kinit",
        ] {
            assert!(dirs.contains(&want), "{want}: {dirs:?}");
        }
        for d in &dirs {
            assert!(!SYSTEM_DIRS.contains(d), "{d}");
        }
    }
}
