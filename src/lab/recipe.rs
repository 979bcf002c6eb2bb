//! The image recipe: what goes into the base root filesystem every node starts from. Its hash
//! names the cached image, so changing anything here builds a new image on the next `lab up`.

use serde::Serialize;
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Serialize)]
pub struct Recipe {
    pub suite: &'static str,
    pub variant: &'static str,
    pub mirror: &'static str,
    pub packages: &'static [&'static str],
    /// Enabled in the image: nodes get their address from networkd and are reached over ssh.
    pub enable: &'static [&'static str],
    /// Disabled: the packaged etcd unit fails at boot, and kinit configures all three itself.
    pub disable: &'static [&'static str],
    /// Files written into the image (path, contents).
    pub files: &'static [(&'static str, &'static str)],
    /// Removed from the image: host keys and the machine id are per node.
    pub remove: &'static [&'static str],
}

pub const BOOKWORM: Recipe = Recipe {
    suite: "bookworm",
    variant: "minbase",
    mirror: "http://deb.debian.org/debian",
    packages: &[
        "systemd",
        "systemd-sysv",
        "dbus",
        "openssh-server",
        "iproute2",
        "procps",
        "chrony",
        "haproxy",
        "keepalived",
        "etcd-server",
        "etcd-client",
        // keepalived's check_apiserver.sh uses curl; openssl reads a node's certificates
        // by hand (`openssl x509`, `openssl s_client`).
        "curl",
        "openssl",
        // kinit-pod-network masquerades what leaves the pod network, and kube-proxy writes its
        // Service rules, with iptables.
        "iptables",
    ],
    enable: &["systemd-networkd.service", "ssh.service"],
    disable: &["etcd.service", "haproxy.service", "keepalived.service"],
    files: &[
        (
            "etc/ssh/sshd_config.d/kinit-lab.conf",
            "# kinit lab: each node has its own ed25519 host key, written before its first boot.\n\
             HostKey /etc/ssh/ssh_host_ed25519_key\n",
        ),
        ("etc/hostname", "localhost\n"),
        // chrony refuses to start without CAP_SYS_TIME, which a container lacks. With -x it runs
        // without touching the clock (the host kernel keeps it), so a node looks like a server:
        // chronyd active, and stopping it is a real preflight finding.
        (
            "etc/systemd/system/chrony.service.d/kinit-lab.conf",
            "[Unit]\nConditionCapability=\n",
        ),
        ("etc/default/chrony", "DAEMON_OPTS=\"-x\"\n"),
        // No time sources: the lab must not send traffic beyond its own bridge.
        (
            "etc/chrony/chrony.conf",
            "# kinit lab: no time sources; nodes read the host kernel's clock.\n\
             driftfile /var/lib/chrony/chrony.drift\n",
        ),
        ("etc/machine-id", ""),
    ],
    remove: &[
        "etc/ssh/ssh_host_rsa_key",
        "etc/ssh/ssh_host_rsa_key.pub",
        "etc/ssh/ssh_host_ecdsa_key",
        "etc/ssh/ssh_host_ecdsa_key.pub",
        "etc/ssh/ssh_host_ed25519_key",
        "etc/ssh/ssh_host_ed25519_key.pub",
        "var/lib/dbus/machine-id",
    ],
};

impl Recipe {
    /// sha256 over the whole recipe, hex: the image's directory name.
    pub fn hash(&self) -> String {
        let text = serde_json::to_vec(self).expect("recipe serializes");
        let digest = Sha256::digest(&text);
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_changes_with_the_recipe_and_only_then() {
        let a = BOOKWORM.hash();
        assert_eq!(a.len(), 64);
        assert_eq!(a, BOOKWORM.hash());
        let mut other = BOOKWORM.clone();
        other.packages = &["systemd"];
        assert_ne!(a, other.hash());
        let mut other = BOOKWORM.clone();
        other.mirror = "http://example.invalid/debian";
        assert_ne!(a, other.hash());
    }
}
