# The box set's shape, shared by build-box.sh and tests/vm/run.sh (the Vagrantfile reads the files
# build-box.sh writes: identities, smbios-uuids). Sourced, not run.
# shellcheck shell=bash

here="${here:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}"
BOX_SET="$here/box-set"          # generated, git-ignored: keys, kernel, box, bundle
BOX_NAME="kinit-vm/bookworm"
BOX_FILE="kinit-bookworm.box"
BOX_DISK_GB=6   # etcd wants 2 GiB free for its data (preflight EtcdDiskSpace)
MIRROR="${KINIT_VM_MIRROR:-http://deb.debian.org/debian}"
# The lab recipe's packages (src/lab/recipe.rs) plus what a real machine boots with.
BOX_PACKAGES=(
  systemd systemd-sysv dbus openssh-server iproute2 procps chrony haproxy keepalived
  etcd-server etcd-client curl openssl iptables
  linux-image-amd64 initramfs-tools udev kmod util-linux
)
# 10.213.241.0/24, split in two: the Vagrant management network (DHCP, what `vagrant ssh` uses)
# and the cluster network (static addresses kinit uses). Both isolated: no NAT, no route out.
MANAGEMENT_NET="10.213.241.0/25"
CLUSTER_NET="10.213.241.128/25"
CLUSTER_PREFIX=25
HOST_CLUSTER_ADDRESS="10.213.241.129"   # the host's end of the cluster bridge
VIP="10.213.241.140"

# What the VMs run (KINIT_VM_LAYOUT; tests/vm/run.sh, README "Vagrant"):
#   control-plane  3 VMs by default, the first three control plane + etcd, the control plane as
#                  systemd units, no kubelet: HA (failover of the VIP holder) on real machines;
#   nodes          2 VMs by default, vm1 control plane + etcd, the rest workers, with the node
#                  layer: containerd and kubelets, the control plane as static pods, kube-proxy,
#                  CoreDNS. One control plane: under emulation three with kubelets do not fit a
#                  2-core machine; HA is what the other layout and the lab prove.
VM_LAYOUT="${KINIT_VM_LAYOUT:-control-plane}"
case "$VM_LAYOUT" in
  control-plane) VM_CONTROL_PLANES=3; VM_DEFAULT_COUNT=3 ;;
  nodes) VM_CONTROL_PLANES=1; VM_DEFAULT_COUNT=2 ;;
  *) echo "KINIT_VM_LAYOUT must be control-plane or nodes, got '$VM_LAYOUT'" >&2; exit 2 ;;
esac

# The VMs' bundle (control-plane layout): etcd and the control plane's programs as hack/build-upstream.sh builds them
# (README "Building the Kubernetes binaries"), imported by tests/vm/run.sh with `kinit bundle
# import`. No kubelet, containerd or runc: without them kinit runs no kubelet, and the control
# plane runs as systemd units (controlPlane.mode: systemd). The same list as a lab's bundle
# (src/lab/bundle.rs KUBERNETES_BINARIES; a test compares them). The nodes layout imports every
# program hack/build-upstream.sh built.
UPSTREAM_DIR="${KINIT_VM_UPSTREAM:-/var/cache/kinit-test/bundle-bin}"
VM_BUNDLE_FILES=(etcd etcdctl kube-apiserver kube-controller-manager kube-scheduler kubectl etcdutl)
# The Kubernetes release hack/build-upstream.sh builds: its wrapper module's pin.
KUBERNETES_GO_MOD="$here/../hack/upstream/kubernetes/go.mod"
kubernetes_release() {
  sed -n 's#^[[:space:]]*k8s.io/kubernetes \(v[0-9.]*\).*#\1#p' "$KUBERNETES_GO_MOD" | head -1
}

vm_name() { echo "vm$1"; }
vm_address() { echo "10.213.241.$((130 + $1))"; }
vm_cluster_mac() { printf '52:54:00:d5:f1:%02x\n' "$1"; }
vm_management_mac() { printf '52:54:00:d5:f0:%02x\n' "$1"; }

# What the built box depends on: a change to any of these builds a new box (the build steps in
# build-box.sh are not hashed: after changing them, remove vagrant/box-set/recipe).
box_recipe_id() {
  {
    printf '%s\n' "${BOX_PACKAGES[@]}" "$MIRROR" "$BOX_DISK_GB"
    cat "$here"/guest/*
    cat "$BOX_SET/identities"
  } | sha256sum | cut -d' ' -f1
}

# cluster.yaml for the VMs: the first VM_CONTROL_PLANES (or all, if fewer) are control-plane +
# etcd, the rest workers; chrony everywhere syncs to the time server on vm1.
write_cluster_yaml() {
  local dir="$1" n="$2" i roles mode=""
  # Without a kubelet (control-plane layout) the control plane runs as units; with one, as
  # static pods (the default mode, kubeadm's layout).
  if [ "$VM_LAYOUT" = control-plane ]; then
    mode=$'  controlPlane:\n    mode: systemd                     # kube-apiserver, -controller-manager, -scheduler as units\n'
  fi
  cat <<YAML
# Written by vagrant/build-box.sh for the Vagrant VMs (see README "Vagrant"). Check it with
#   kinit -c vagrant/cluster.yaml config validate
apiVersion: kinit.io/v1alpha1
kind: Cluster
metadata:
  name: kinit-vm
spec:
  topology: stacked
  kubernetesVersion: $(kubernetes_release)             # what hack/build-upstream.sh builds
${mode}  controlPlaneEndpoint:
    address: $VIP              # keepalived's VIP, on the cluster network
    port: 8443
    loadBalancer: haproxy-keepalived
    interface: eth1                   # the VMs' cluster NIC (eth0: Vagrant's management network)
  etcd:
    mode: systemd
  networking:
    podSubnet: 10.244.0.0/16
    serviceSubnet: 10.96.0.0/12
    dnsDomain: cluster.local
    nodeSubnet: $CLUSTER_NET
  pki:
    dir: ./pki
  artifacts:
    bundle: $dir/bundle   # etcd and the control plane (tests/vm/run.sh imports them)
  timeSync:
    servers: [$(vm_address 1)]        # the box's time server on vm1 (kinit-vm-timeserver.service)
  ssh:
    user: root
    port: 22
    identityFile: $dir/id_ed25519
    knownHosts: $dir/known_hosts
  hosts:
YAML
  for i in $(seq 1 "$n"); do
    if [ "$i" -le "$VM_CONTROL_PLANES" ]; then roles="[control-plane, etcd]"; else roles="[worker]"; fi
    echo "    - {name: $(vm_name "$i"), address: $(vm_address "$i"), roles: $roles}"
  done
}
