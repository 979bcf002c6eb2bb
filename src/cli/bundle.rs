//! `kinit bundle ...`: clap definitions, converted to `BundleOptions`.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use crate::bundle::fetch::FetchOptions;
use crate::bundle::sources::{Arch, Component};
use crate::commands::bundle::BundleOptions;

#[derive(Debug, Subcommand)]
pub enum BundleCommand {
    /// Download binaries from upstream's releases (or mirrors), each checked against its
    /// published sha256 before it lands
    Fetch(FetchArgs),
    /// Add binaries built elsewhere, named as in the bundle (kubelet, etcd, ...); the version is
    /// read from each binary
    Import {
        /// The bundle directory (made if missing)
        dir: PathBuf,
        /// The binaries
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Hash every file against SHA256SUMS and bundle.yaml, and check the release rules; exit 1
    /// on a problem
    Verify {
        /// The bundle directory
        dir: PathBuf,
    },
    /// What the bundle holds: component, version, arch and sha256 of each file (-o json too)
    List {
        /// The bundle directory
        dir: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ArchArg {
    Amd64,
    Arm64,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Layouts (BASE is upstream's unless --mirror NAME=BASE replaces it):\n  \
kubernetes  BASE/vX.Y.Z/bin/linux/ARCH/NAME + NAME.sha256         (https://dl.k8s.io/release)\n  \
etcd        BASE/vV/etcd-vV-linux-ARCH.tar.gz + BASE/vV/SHA256SUMS\n  \
containerd  BASE/vV/containerd-V-linux-ARCH.tar.gz + .sha256sum\n  \
runc        BASE/vV/runc.ARCH + BASE/vV/runc.sha256sum\n  \
cni         BASE/vV/cni-plugins-linux-ARCH-vV.tgz + .sha256          (lands under cni/)\n  \
crictl      BASE/vV/crictl-vV-linux-ARCH.tar.gz + .sha256\n  \
coredns     BASE/vV/coredns_V_linux_ARCH.tgz + .sha256               (kinit builds its image)\n\
Downloads wait in DIR/.partial/ until their checksum matches; an interrupted one is resumed \
(HTTP Range) by the next try or the next run. Files already in the bundle unchanged are not \
fetched again.\n\n\
Example:\n  kinit bundle fetch ./bundle --kubernetes v1.37.2 --mirror kubernetes=https://mirror.example/kubernetes-release/release"
)]
pub struct FetchArgs {
    /// The bundle directory (made if missing)
    pub dir: PathBuf,
    /// Kubernetes release (kube-apiserver, kube-controller-manager, kube-scheduler, kubelet,
    /// kube-proxy, kubectl)
    #[arg(long, value_name = "vX.Y.Z")]
    pub kubernetes: String,
    /// etcd release (etcd, etcdctl, etcdutl)
    #[arg(long, value_name = "V", default_value = Component::Etcd.default_version())]
    pub etcd: String,
    /// containerd release (containerd, containerd-shim-runc-v2, ctr)
    #[arg(long, value_name = "V", default_value = Component::Containerd.default_version())]
    pub containerd: String,
    /// runc release
    #[arg(long, value_name = "V", default_value = Component::Runc.default_version())]
    pub runc: String,
    /// CNI plugins release
    #[arg(long, value_name = "V", default_value = Component::Cni.default_version())]
    pub cni: String,
    /// crictl release
    #[arg(long, value_name = "V", default_value = Component::Crictl.default_version())]
    pub crictl: String,
    /// CoreDNS release (the cluster DNS add-on; kinit builds its image from the binary)
    #[arg(long, value_name = "V", default_value = Component::Coredns.default_version())]
    pub coredns: String,
    /// CPU architecture [default: this machine's]
    #[arg(long, value_enum)]
    pub arch: Option<ArchArg>,
    /// Another base URL with upstream's layout for a component (kubernetes, etcd, containerd,
    /// runc, cni, crictl, coredns); repeat for several
    #[arg(long, value_name = "NAME=URL", value_parser = parse_mirror)]
    pub mirror: Vec<(Component, String)>,
    /// Retries of a failed or cut request (each resumes where the last stopped)
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub retries: u32,
}

fn parse_mirror(s: &str) -> Result<(Component, String), String> {
    let (name, url) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not NAME=URL"))?;
    let component: Component = name.parse()?;
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(format!("`{url}` is not an http:// or https:// URL"));
    }
    Ok((component, url.trim_end_matches('/').to_string()))
}

fn version(s: &str) -> String {
    if s.starts_with('v') {
        s.to_string()
    } else {
        format!("v{s}")
    }
}

impl BundleCommand {
    pub fn options(&self) -> Result<BundleOptions, String> {
        Ok(match self {
            BundleCommand::Fetch(a) => {
                let arch = match a.arch {
                    Some(ArchArg::Amd64) => Arch::Amd64,
                    Some(ArchArg::Arm64) => Arch::Arm64,
                    None => Arch::host().ok_or_else(|| {
                        format!(
                            "this machine's CPU ({}) is neither amd64 nor arm64: pass --arch",
                            std::env::consts::ARCH
                        )
                    })?,
                };
                let mut opts = FetchOptions::new(a.dir.clone(), arch);
                for (c, v) in [
                    (Component::Kubernetes, &a.kubernetes),
                    (Component::Etcd, &a.etcd),
                    (Component::Containerd, &a.containerd),
                    (Component::Runc, &a.runc),
                    (Component::Cni, &a.cni),
                    (Component::Crictl, &a.crictl),
                    (Component::Coredns, &a.coredns),
                ] {
                    let v = version(v);
                    if crate::bundle::version::Version::parse(&v).is_none() {
                        return Err(format!("--{c} {v}: not a version vX.Y.Z"));
                    }
                    opts.releases.insert(c, v);
                }
                opts.mirrors = a.mirror.iter().cloned().collect();
                opts.retries = a.retries;
                BundleOptions::Fetch(opts)
            }
            BundleCommand::Import { dir, files } => BundleOptions::Import {
                dir: dir.clone(),
                files: files.clone(),
            },
            BundleCommand::Verify { dir } => BundleOptions::Verify { dir: dir.clone() },
            BundleCommand::List { dir } => BundleOptions::List { dir: dir.clone() },
        })
    }
}
