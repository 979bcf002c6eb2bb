#!/usr/bin/env bash
# Builds the box set the Vagrantfile boots, locally and without downloading a box:
#   - a Debian bookworm root filesystem from debootstrap (the lab's image recipe, src/lab/recipe.rs,
#     plus a kernel, udev and kmod, because these are real machines), packed with
#     `mke2fs -d` into an ext4 image (no loop device or nbd needed) and converted to a qcow2 libvirt box;
#   - the kernel and initrd next to it: the VMs boot them directly (root=/dev/vda), no bootloader;
#   - an SSH key pair for this box set (root's only authorized key; Vagrant's insecure key is never
#     authorized), one ed25519 host key per VM and a known_hosts file listing them, all written
#     before any VM first boots, so kinit's strict host-key checking holds from the first connection;
#   - a cluster.yaml for the VMs (vagrant/cluster.yaml); its bundle (etcd and the control plane,
#     from hack/build-upstream.sh's output) is imported by tests/vm/run.sh.
#
# Usage: vagrant/build-box.sh [--check]       (root; KINIT_VMS=N for N VMs, default 3, at most 9)
#   --check  only checks the box set's pure parts (identities, cluster.yaml, known_hosts) in a
#            temporary directory: no debootstrap, no root needed. CI runs it.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=vagrant/box-set.sh
. "$here/box-set.sh"

check_only=false
[ "${1:-}" = --check ] && check_only=true

vms="${KINIT_VMS:-3}"
case "$vms" in [1-9]) ;; *) echo "build-box.sh: KINIT_VMS must be 1..9, got '$vms'" >&2; exit 2 ;; esac

# The box set's identities: keys, known_hosts, the table the VMs read their name from, cluster.yaml.
write_identities() {
  local dir="$1" n="$2"
  mkdir -p "$dir/host-keys"
  chmod 755 "$dir"   # qemu (user libvirt-qemu) reads the kernel and initrd here
  chmod 700 "$dir/host-keys"
  [ -f "$dir/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C "kinit-vm box set" -f "$dir/id_ed25519"
  : > "$dir/known_hosts.tmp"
  : > "$dir/identities.tmp"
  local i
  for i in $(seq 1 "$n"); do
    local name; name="$(vm_name "$i")"
    local key="$dir/host-keys/$name/ssh_host_ed25519_key"
    mkdir -p "$dir/host-keys/$name"
    [ -f "$key" ] || ssh-keygen -q -t ed25519 -N '' -C "root@$name" -f "$key"
    printf '%s %s\n' "$(vm_address "$i")" "$(cut -d' ' -f1,2 "$key.pub")" >> "$dir/known_hosts.tmp"
    printf '%s %s %s/%s\n' "$(vm_cluster_mac "$i")" "$name" "$(vm_address "$i")" "$CLUSTER_PREFIX" >> "$dir/identities.tmp"
  done
  # Each VM's SMBIOS system uuid, random per box set and kept across rebuilds.
  touch "$dir/smbios-uuids"
  for i in $(seq 1 "$n"); do
    grep -q "^$(vm_name "$i") " "$dir/smbios-uuids" ||
      echo "$(vm_name "$i") $(cat /proc/sys/kernel/random/uuid)" >> "$dir/smbios-uuids"
  done
  mv "$dir/known_hosts.tmp" "$dir/known_hosts"
  mv "$dir/identities.tmp" "$dir/identities"
  write_cluster_yaml "$dir" "$n" > "$here/cluster.yaml.tmp"
  mv "$here/cluster.yaml.tmp" "$here/cluster.yaml"
}

if $check_only; then
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  here_saved="$here"
  here="$tmp"  # cluster.yaml lands in the temporary directory
  write_identities "$tmp/box-set" 5
  here="$here_saved"
  fail() { echo "build-box.sh --check: $*" >&2; exit 1; }
  [ "$(wc -l < "$tmp/box-set/known_hosts")" = 5 ] || fail "known_hosts should list 5 VMs"
  [ "$(cut -d' ' -f1 "$tmp/box-set/known_hosts" | sort -u | wc -l)" = 5 ] || fail "addresses not distinct"
  [ "$(cut -d' ' -f3 "$tmp/box-set/known_hosts" | sort -u | wc -l)" = 5 ] || fail "host keys not distinct"
  [ "$(cut -d' ' -f1 "$tmp/box-set/identities" | sort -u | wc -l)" = 5 ] || fail "MACs not distinct"
  [ "$(cut -d' ' -f2 "$tmp/box-set/smbios-uuids" | sort -u | wc -l)" = 5 ] || fail "SMBIOS uuids not distinct"
  grep -q "^10.213.241.131 ssh-ed25519 " "$tmp/box-set/known_hosts" || fail "vm1's known_hosts line"
  grep -q "^$(vm_cluster_mac 2) vm2 10.213.241.132/25$" "$tmp/box-set/identities" || fail "vm2's identity line"
  [ "$(grep -c 'roles: \[control-plane, etcd\]' "$tmp/cluster.yaml")" = 3 ] || fail "3 control-plane hosts"
  [ "$(grep -c 'roles: \[worker\]' "$tmp/cluster.yaml")" = 2 ] || fail "2 workers"
  if command -v kinit >/dev/null 2>&1 || [ -n "${KINIT:-}" ]; then
    "${KINIT:-kinit}" -c "$tmp/cluster.yaml" config validate >/dev/null || fail "kinit rejects cluster.yaml"
  fi
  # The Vagrantfile against these identities, 5 VMs: Vagrant loads it, and each VM's config
  # (networks, providers) validates. Skipped, and said, where Vagrant is not installed;
  # KINIT_REQUIRE_VAGRANT=1 (CI) makes that an error.
  if command -v vagrant >/dev/null 2>&1; then
    # Vagrant keeps its state in VAGRANT_HOME and .vagrant/: both temporary here, so a check
    # never touches the operator's machines or boxes. No checkpoint: Vagrant would otherwise ask
    # HashiCorp's server about new versions, traffic a check has no business sending.
    export VAGRANT_CHECKPOINT_DISABLE=1
    out="$(cd "$here/.." && VAGRANT_HOME="$tmp/vagrant.d" VAGRANT_DOTFILE_PATH="$tmp/dot-vagrant" \
      KINIT_VM_BOX_SET="$tmp/box-set" KINIT_VMS=5 vagrant validate 2>&1)" ||
      fail "vagrant validate: $out"
    case "$out" in *"Vagrantfile validated successfully"*) ;; *) fail "vagrant validate said: $out" ;; esac
    # And it refuses a box set with fewer identities than KINIT_VMS, naming the box set.
    if out="$(cd "$here/.." && VAGRANT_HOME="$tmp/vagrant.d" VAGRANT_DOTFILE_PATH="$tmp/dot-vagrant" \
      KINIT_VM_BOX_SET="$tmp/box-set" KINIT_VMS=6 vagrant validate 2>&1)"; then
      fail "vagrant validate accepted KINIT_VMS=6 with 5 identities"
    fi
    case "$out" in *"$tmp/box-set holds 5 VM identities, KINIT_VMS=6"*) ;; *) fail "KINIT_VMS=6 refused with: $out" ;; esac
    echo "build-box.sh --check: vagrant validate: ok (5 VMs)"
  elif [ "${KINIT_REQUIRE_VAGRANT:-0}" = 1 ]; then
    fail "vagrant is not installed (KINIT_REQUIRE_VAGRANT=1)"
  else
    echo "build-box.sh --check: vagrant not installed, Vagrantfile not validated"
  fi
  echo "build-box.sh --check: ok"
  exit 0
fi

[ "$(id -u)" = 0 ] || { echo "build-box.sh: debootstrap needs root" >&2; exit 1; }
mkdir -p "$BOX_SET"
write_identities "$BOX_SET" "$vms"

if [ -f "$BOX_SET/$BOX_FILE" ] && [ "$(cat "$BOX_SET/recipe" 2>/dev/null)" = "$(box_recipe_id)" ]; then
  echo "box set up to date: $BOX_SET/$BOX_FILE"
  exit 0
fi

build="$BOX_SET/build"
rootfs="$build/rootfs"
cleanup_build() {
  for m in proc sys dev/pts dev; do umount "$rootfs/$m" 2>/dev/null || true; done
  rm -rf "$build"
}
trap cleanup_build EXIT
cleanup_build
mkdir -p "$build"

echo "debootstrap bookworm (log: $build/debootstrap.log)"
if ! debootstrap --variant=minbase --include="$(IFS=,; echo "${BOX_PACKAGES[*]}")" \
     bookworm "$rootfs" "$MIRROR" > "$build/debootstrap.log" 2>&1; then
  tail -20 "$build/debootstrap.log" >&2
  echo "build-box.sh: debootstrap failed" >&2
  exit 1
fi

# Files as in the lab recipe, with what a real machine changes: chrony sets the clock (no -x),
# networkd takes the management address by DHCP and the cluster address from the identity table.
install -d -m 700 "$rootfs/root/.ssh"
install -m 600 "$BOX_SET/id_ed25519.pub" "$rootfs/root/.ssh/authorized_keys"
rm -f "$rootfs"/etc/ssh/ssh_host_*_key "$rootfs"/etc/ssh/ssh_host_*_key.pub "$rootfs/var/lib/dbus/machine-id"
: > "$rootfs/etc/machine-id"  # empty: every VM generates its own at first boot
echo localhost > "$rootfs/etc/hostname"
printf '/dev/vda / ext4 errors=remount-ro 0 1\n' > "$rootfs/etc/fstab"
cat > "$rootfs/etc/ssh/sshd_config.d/kinit-vm.conf" <<'CONF'
# kinit VM: each VM has its own ed25519 host key, generated with the box set before first boot.
HostKey /etc/ssh/ssh_host_ed25519_key
PasswordAuthentication no
CONF
cat > "$rootfs/etc/chrony/chrony.conf" <<'CONF'
# kinit VM, until kinit configures chrony (spec.timeSync.servers): the operator's time server on
# the host's end of the cluster network (tests/vm/run.sh runs one), nothing beyond it. A VM reads
# its RTC to whole seconds at boot (no kvm-clock under QEMU emulation): makestep corrects that.
server 10.213.241.129 iburst
driftfile /var/lib/chrony/chrony.drift
makestep 0.1 3
rtcsync
CONF
rm -f "$rootfs/etc/default/chrony"
cat > "$rootfs/etc/systemd/network/90-management.network" <<'CONF'
# Every interface the identity table does not name (the Vagrant management network): DHCP.
[Match]
Name=eth*
[Network]
DHCP=ipv4
# By MAC: networkd's default client id comes from the machine-id, which a clone with a copied
# SMBIOS uuid shares (systemd derives it from that uuid), and dnsmasq then leases both one address.
[DHCPv4]
ClientIdentifier=mac
CONF
install -d "$rootfs/etc/kinit-vm/host-keys"
install -m 644 "$BOX_SET/identities" "$rootfs/etc/kinit-vm/identities"
cp -a "$BOX_SET/host-keys/." "$rootfs/etc/kinit-vm/host-keys/"
chmod -R go-rwx "$rootfs/etc/kinit-vm/host-keys"
install -m 755 "$here/guest/kinit-vm-identity" "$rootfs/usr/local/sbin/kinit-vm-identity"
install -m 644 "$here/guest/kinit-vm-identity.service" "$rootfs/etc/systemd/system/"
install -m 644 "$here/guest/kinit-vm-timeserver.service" "$rootfs/etc/systemd/system/"
install -m 644 "$here/guest/timeserver.conf" "$rootfs/etc/kinit-vm/timeserver.conf"
systemctl --root="$rootfs" disable etcd.service haproxy.service keepalived.service >/dev/null 2>&1 || true
systemctl --root="$rootfs" enable systemd-networkd.service ssh.service chrony.service \
  kinit-vm-identity.service kinit-vm-timeserver.service >/dev/null 2>&1
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*

# The kernel and initrd the VMs boot directly (the bundle kinit uploads is tests/vm/run.sh's).
cp "$(readlink -f "$rootfs/vmlinuz")" "$build/vmlinuz"
cp "$(readlink -f "$rootfs/initrd.img")" "$build/initrd.img"
# chronyd for the operator's side (tests/vm/run.sh serves this machine's clock to the VMs with
# it, -x: never adjusting this machine's clock) without installing chrony here, whose package
# would start a daemon syncing to Debian's public pool.
cp "$rootfs/usr/sbin/chronyd" "$build/chronyd"

echo "packing the root filesystem"
mke2fs -q -t ext4 -L kinit-root -d "$rootfs" "$build/root.img" "${BOX_DISK_GB}G"
qemu-img convert -O qcow2 "$build/root.img" "$build/box.img"
rm -f "$build/root.img"
printf '{"provider":"libvirt","format":"qcow2","virtual_size":%s}\n' "$BOX_DISK_GB" > "$build/metadata.json"
tar -C "$build" -cf "$build/$BOX_FILE" metadata.json box.img
for f in vmlinuz initrd.img chronyd "$BOX_FILE"; do mv "$build/$f" "$BOX_SET/$f"; done
box_recipe_id > "$BOX_SET/recipe"
echo "box set ready: $BOX_SET ($(du -h "$BOX_SET/$BOX_FILE" | cut -f1) box)"
