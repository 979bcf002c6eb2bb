//! Where each upstream publishes its Linux binaries, and which bundle files each release gives.
//! The layouts are upstream's own: a `--mirror NAME=URL` base must hold the same paths.
//!
//! Bundle file names agree with the component table (`components::table`): `etcd`, `etcdctl`,
//! `kubelet`, `containerd`, ... are the names its binary rows and bundle gates use.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An upstream release that puts files in the bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Component {
    Kubernetes,
    Etcd,
    Containerd,
    Runc,
    Cni,
    Crictl,
    Coredns,
}

impl Component {
    pub const ALL: [Component; 7] = [
        Component::Kubernetes,
        Component::Etcd,
        Component::Containerd,
        Component::Runc,
        Component::Cni,
        Component::Crictl,
        Component::Coredns,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Component::Kubernetes => "kubernetes",
            Component::Etcd => "etcd",
            Component::Containerd => "containerd",
            Component::Runc => "runc",
            Component::Cni => "cni",
            Component::Crictl => "crictl",
            Component::Coredns => "coredns",
        }
    }

    /// The release kinit is tested with.
    pub fn default_version(self) -> &'static str {
        match self {
            Component::Kubernetes => "v1.37.2",
            Component::Etcd => "v3.6.16",
            Component::Containerd => "v2.4.2",
            Component::Runc => "v1.5.3",
            Component::Cni => "v1.10.0",
            Component::Crictl => "v1.37.0",
            Component::Coredns => super::image::COREDNS_TAG,
        }
    }

    /// Upstream's download base: `<base>/<tag>/<asset>`.
    pub fn upstream_base(self) -> &'static str {
        match self {
            Component::Kubernetes => "https://dl.k8s.io/release",
            Component::Etcd => "https://github.com/etcd-io/etcd/releases/download",
            Component::Containerd => "https://github.com/containerd/containerd/releases/download",
            Component::Runc => "https://github.com/opencontainers/runc/releases/download",
            Component::Cni => "https://github.com/containernetworking/plugins/releases/download",
            Component::Crictl => "https://github.com/kubernetes-sigs/cri-tools/releases/download",
            Component::Coredns => "https://github.com/coredns/coredns/releases/download",
        }
    }

    /// The component a bundle file belongs to, by its name (for `bundle import`).
    pub fn of_file(name: &str) -> Option<Component> {
        if let Some(image) = super::image::BUNDLE_IMAGES
            .iter()
            .find(|i| i.archive == name)
        {
            // An image kinit builds belongs to the release of its binary.
            return Component::of_file(image.binary);
        }
        if KUBERNETES_FILES.contains(&name) {
            Some(Component::Kubernetes)
        } else if ETCD_FILES.contains(&name) {
            Some(Component::Etcd)
        } else if CONTAINERD_FILES.contains(&name) {
            Some(Component::Containerd)
        } else if name == "runc" {
            Some(Component::Runc)
        } else if name == "crictl" {
            Some(Component::Crictl)
        } else if name.starts_with(CNI_DIR) {
            Some(Component::Cni)
        } else if name == super::image::COREDNS_BINARY {
            // The DNS add-on's static binary.
            Some(Component::Coredns)
        } else if name == super::image::PAUSE_BINARY {
            // The Kubernetes release's own static pause (not on dl.k8s.io: built from the
            // release's module, see hack/build-upstream.sh).
            Some(Component::Kubernetes)
        } else {
            None
        }
    }
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Component {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Component::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Component::ALL.iter().map(|c| c.name()).collect();
                format!("unknown component `{s}` (one of {})", names.join(", "))
            })
    }
}

/// The Kubernetes binaries a bundle carries from dl.k8s.io.
pub const KUBERNETES_FILES: &[&str] = &[
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
    "kubectl",
];
pub const ETCD_FILES: &[&str] = &["etcd", "etcdctl", "etcdutl"];
pub const CONTAINERD_FILES: &[&str] = &["containerd", "containerd-shim-runc-v2", "ctr"];
/// CNI plugins go under `cni/` in the bundle (`cni/bridge`, `cni/host-local`, ...).
pub const CNI_DIR: &str = "cni/";

/// The CNI plugins the node layer installs, as upstream names them: `bundle import` files a
/// binary of one of these names under [`CNI_DIR`]. The component table's `cni/` binary rows
/// are these (components/tests.rs compares them).
pub const CNI_PLUGINS: &[&str] = &["bridge", "host-local", "loopback", "portmap"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    Amd64,
    Arm64,
}

impl Arch {
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::Amd64 => "amd64",
            Arch::Arm64 => "arm64",
        }
    }

    /// This machine's, when it is one kinit bundles for.
    pub fn host() -> Option<Arch> {
        match std::env::consts::ARCH {
            "x86_64" => Some(Arch::Amd64),
            "aarch64" => Some(Arch::Arm64),
            _ => None,
        }
    }

    /// The CPU an ELF executable is built for (`None`: not an ELF file kinit knows).
    pub fn of_elf(header: &[u8]) -> Option<Arch> {
        if header.len() < 20 || &header[..4] != b"\x7fELF" {
            return None;
        }
        // e_machine, little-endian for both.
        match u16::from_le_bytes([header[18], header[19]]) {
            0x3e => Some(Arch::Amd64),
            0xb7 => Some(Arch::Arm64),
            _ => None,
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Arch {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "amd64" => Ok(Arch::Amd64),
            "arm64" => Ok(Arch::Arm64),
            _ => Err(format!("unknown arch `{s}` (amd64 or arm64)")),
        }
    }
}

/// How a download's published checksum is found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checksum {
    pub url: String,
    /// The asset's name in a `sha256sum`-style file (a file holding only the hex digest also
    /// does).
    pub asset: String,
}

/// What becomes of a downloaded asset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unpack {
    /// The asset is the binary: it lands as this bundle file.
    Plain { file: String },
    /// Take these members (path in the archive, bundle file) from a .tar.gz.
    Members { members: Vec<(String, String)> },
    /// Every regular file at the archive's top level, under this bundle directory.
    All { under: String },
}

/// One asset to fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Download {
    pub component: Component,
    /// The release tag (`v1.37.2`).
    pub version: String,
    pub url: String,
    pub checksum: Checksum,
    pub unpack: Unpack,
}

impl Download {
    /// The asset's file name (the last URL segment).
    pub fn asset(&self) -> &str {
        self.url.rsplit('/').next().unwrap_or(&self.url)
    }
}

/// Kubernetes' binaries: one plain file each, with its own `.sha256` beside it (dl.k8s.io).
fn kubernetes_downloads(base: &str, tag: &str, arch: &str) -> Vec<Download> {
    KUBERNETES_FILES
        .iter()
        .map(|name| {
            let url = format!("{base}/{tag}/bin/linux/{arch}/{name}");
            Download {
                component: Component::Kubernetes,
                version: tag.to_string(),
                checksum: Checksum {
                    url: format!("{url}.sha256"),
                    asset: name.to_string(),
                },
                url,
                unpack: Unpack::Plain {
                    file: name.to_string(),
                },
            }
        })
        .collect()
}

/// The downloads of one release from `base` (upstream's or a mirror's).
pub fn downloads(component: Component, version: &str, arch: Arch, base: &str) -> Vec<Download> {
    let base = base.trim_end_matches('/');
    let tag = if version.starts_with('v') {
        version.to_string()
    } else {
        format!("v{version}")
    };
    let bare = tag.trim_start_matches('v');
    let a = arch.as_str();
    let one = |asset: String, checksum_url: String, unpack: Unpack| Download {
        component,
        version: tag.clone(),
        url: format!("{base}/{tag}/{asset}"),
        checksum: Checksum {
            url: checksum_url,
            asset,
        },
        unpack,
    };
    match component {
        Component::Kubernetes => kubernetes_downloads(base, &tag, a),
        Component::Etcd => {
            let dir = format!("etcd-{tag}-linux-{a}");
            vec![one(
                format!("{dir}.tar.gz"),
                format!("{base}/{tag}/SHA256SUMS"),
                Unpack::Members {
                    members: ETCD_FILES
                        .iter()
                        .map(|f| (format!("{dir}/{f}"), f.to_string()))
                        .collect(),
                },
            )]
        }
        Component::Containerd => {
            let asset = format!("containerd-{bare}-linux-{a}.tar.gz");
            vec![one(
                asset.clone(),
                format!("{base}/{tag}/{asset}.sha256sum"),
                Unpack::Members {
                    members: CONTAINERD_FILES
                        .iter()
                        .map(|f| (format!("bin/{f}"), f.to_string()))
                        .collect(),
                },
            )]
        }
        Component::Runc => vec![one(
            format!("runc.{a}"),
            format!("{base}/{tag}/runc.sha256sum"),
            Unpack::Plain {
                file: "runc".into(),
            },
        )],
        Component::Cni => {
            let asset = format!("cni-plugins-linux-{a}-{tag}.tgz");
            vec![one(
                asset.clone(),
                format!("{base}/{tag}/{asset}.sha256"),
                Unpack::All {
                    under: CNI_DIR.trim_end_matches('/').into(),
                },
            )]
        }
        Component::Crictl => {
            let asset = format!("crictl-{tag}-linux-{a}.tar.gz");
            vec![one(
                asset.clone(),
                format!("{base}/{tag}/{asset}.sha256"),
                Unpack::Members {
                    members: vec![("crictl".into(), "crictl".into())],
                },
            )]
        }
        Component::Coredns => {
            let asset = format!("coredns_{bare}_linux_{a}.tgz");
            vec![one(
                asset.clone(),
                format!("{base}/{tag}/{asset}.sha256"),
                Unpack::Members {
                    members: vec![("coredns".into(), super::image::COREDNS_BINARY.into())],
                },
            )]
        }
    }
}

/// The digest for `asset` in a published checksum file: a `sha256sum` line naming it, or a file
/// that holds nothing but one digest (dl.k8s.io's `.sha256`).
pub fn find_checksum(text: &str, asset: &str) -> Result<String, String> {
    let is_hex = |s: &str| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit());
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if let [only] = lines.as_slice()
        && is_hex(only)
    {
        return Ok(only.to_ascii_lowercase());
    }
    for line in &lines {
        let mut words = line.split_whitespace();
        let (Some(sum), Some(name)) = (words.next(), words.next()) else {
            continue;
        };
        let name = name.trim_start_matches('*').trim_start_matches("./");
        if name == asset {
            return if is_hex(sum) {
                Ok(sum.to_ascii_lowercase())
            } else {
                Err(format!(
                    "the line for {asset} has no sha256 digest: `{line}`"
                ))
            };
        }
    }
    Err(format!("it lists no sha256 for {asset}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_layouts() {
        let k = downloads(
            Component::Kubernetes,
            "v1.37.2",
            Arch::Amd64,
            Component::Kubernetes.upstream_base(),
        );
        assert_eq!(k.len(), 6);
        assert_eq!(
            k[0].url,
            "https://dl.k8s.io/release/v1.37.2/bin/linux/amd64/kube-apiserver"
        );
        assert_eq!(
            k[0].checksum.url,
            "https://dl.k8s.io/release/v1.37.2/bin/linux/amd64/kube-apiserver.sha256"
        );
        let e = &downloads(Component::Etcd, "3.6.16", Arch::Arm64, "http://m/etcd/")[0];
        assert_eq!(
            e.url,
            "http://m/etcd/v3.6.16/etcd-v3.6.16-linux-arm64.tar.gz"
        );
        assert_eq!(e.checksum.url, "http://m/etcd/v3.6.16/SHA256SUMS");
        let c = &downloads(Component::Containerd, "v2.1.4", Arch::Amd64, "b")[0];
        assert_eq!(c.url, "b/v2.1.4/containerd-2.1.4-linux-amd64.tar.gz");
        assert_eq!(
            c.checksum.url,
            "b/v2.1.4/containerd-2.1.4-linux-amd64.tar.gz.sha256sum"
        );
        let r = &downloads(Component::Runc, "v1.3.0", Arch::Amd64, "b")[0];
        assert_eq!(r.url, "b/v1.3.0/runc.amd64");
        assert_eq!(r.checksum.url, "b/v1.3.0/runc.sha256sum");
        let n = &downloads(Component::Cni, "v1.7.1", Arch::Amd64, "b")[0];
        assert_eq!(n.url, "b/v1.7.1/cni-plugins-linux-amd64-v1.7.1.tgz");
        let t = &downloads(Component::Crictl, "v1.37.0", Arch::Amd64, "b")[0];
        assert_eq!(t.url, "b/v1.37.0/crictl-v1.37.0-linux-amd64.tar.gz");
        assert_eq!(t.checksum.url, format!("{}.sha256", t.url));
    }

    #[test]
    fn checksum_files_of_each_shape() {
        let h = "a".repeat(64);
        assert_eq!(find_checksum(&format!("{h}\n"), "kubelet").unwrap(), h);
        let sums = format!(
            "{}  etcd-v3.6.16-linux-arm64.tar.gz\n{h}  etcd-v3.6.16-linux-amd64.tar.gz\n",
            "b".repeat(64)
        );
        assert_eq!(
            find_checksum(&sums, "etcd-v3.6.16-linux-amd64.tar.gz").unwrap(),
            h
        );
        assert_eq!(
            find_checksum(&format!("{h} *runc.amd64"), "runc.amd64").unwrap(),
            h
        );
        let e = find_checksum(&sums, "etcd-v3.6.16-linux-s390x.tar.gz").unwrap_err();
        assert!(e.contains("no sha256 for etcd-v3.6.16-linux-s390x"), "{e}");
        assert!(find_checksum("<html>not found</html>", "x").is_err());
        assert!(find_checksum("xyz  kubelet", "kubelet").is_err());
    }

    #[test]
    fn the_component_tables_bundle_files_come_from_some_release() {
        for c in crate::components::TABLE {
            for name in c
                .binaries
                .iter()
                .map(|b| b.file)
                .chain(c.bundle_gate.iter().copied())
            {
                assert!(
                    Component::of_file(name).is_some(),
                    "component `{}` needs bundle file `{name}`, which no release gives",
                    c.name
                );
            }
        }
    }

    #[test]
    fn elf_headers() {
        let mut h = vec![0x7f, b'E', b'L', b'F'];
        h.resize(20, 0);
        h[18] = 0x3e;
        assert_eq!(Arch::of_elf(&h), Some(Arch::Amd64));
        h[18] = 0xb7;
        assert_eq!(Arch::of_elf(&h), Some(Arch::Arm64));
        assert_eq!(Arch::of_elf(b"#!/bin/sh\necho hi\n"), None);
    }
}
