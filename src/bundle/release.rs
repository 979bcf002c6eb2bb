//! Whether a bundle's binaries make one installable release: Kubernetes binaries at the
//! cluster's `kubernetesVersion`, each component's files from one release, upstream's
//! version-skew policy (kubernetes.io/releases/version-skew-policy) and an etcd the Kubernetes
//! release supports. Pure: the manifest in, the problems out.

use std::collections::BTreeSet;
use std::fmt;

use super::manifest::Manifest;
use super::sources::{CNI_DIR, CONTAINERD_FILES, Component, ETCD_FILES};
use super::version::Version;

const APISERVER: &str = "kube-apiserver";
/// Whether a bundle file belongs to a group.
type Pick = fn(&str) -> bool;

/// Files that must come from one release: (what they are, how to pick them).
const ONE_RELEASE: &[(&str, Pick)] = &[
    ("the Kubernetes control plane", |f| {
        matches!(
            f,
            "kube-apiserver" | "kube-controller-manager" | "kube-scheduler"
        )
    }),
    ("etcd", |f| ETCD_FILES.contains(&f)),
    ("containerd", |f| CONTAINERD_FILES.contains(&f)),
    ("the CNI plugins", |f| f.starts_with(CNI_DIR)),
];

/// The etcd minor lines a Kubernetes minor supports (kubeadm's SupportedEtcdVersion: 3.5 up to
/// v1.33, 3.6 from v1.34, where 3.5 is still accepted for upgrades).
pub fn supported_etcd(kubernetes: &Version) -> &'static [(u64, u64)] {
    match kubernetes.minor {
        ..=33 => &[(3, 5)],
        _ => &[(3, 5), (3, 6)],
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReleaseProblem {
    /// A manifest version that is not `vX.Y.Z`.
    BadVersion {
        file: String,
        version: String,
    },
    NotKubernetesVersion {
        file: String,
        bundle: String,
        config: String,
    },
    MixedReleases {
        what: &'static str,
        versions: Vec<(String, String)>,
    },
    NewerThanApiserver {
        file: String,
        version: String,
        apiserver: String,
    },
    TooOldForApiserver {
        file: String,
        version: String,
        apiserver: String,
        minors: u64,
    },
    EtcdUnsupported {
        etcd: String,
        kubernetes: String,
        supported: String,
    },
    MixedArch {
        arches: Vec<(String, String)>,
    },
}

impl fmt::Display for ReleaseProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReleaseProblem::BadVersion { file, version } => {
                write!(f, "{file}: version `{version}` is not vX.Y.Z")
            }
            ReleaseProblem::NotKubernetesVersion {
                file,
                bundle,
                config,
            } => write!(
                f,
                "{file} in the bundle is {bundle}, but kubernetesVersion is {config}: fetch the \
                 {config} binaries (`kinit bundle fetch DIR --kubernetes {config}`) or set \
                 kubernetesVersion: {bundle}"
            ),
            ReleaseProblem::MixedReleases { what, versions } => {
                let list: Vec<_> = versions.iter().map(|(f, v)| format!("{f} {v}")).collect();
                write!(
                    f,
                    "{what} mixes releases: {}; its files must come from one release",
                    list.join(", ")
                )
            }
            ReleaseProblem::NewerThanApiserver {
                file,
                version,
                apiserver,
            } => write!(
                f,
                "{file} {version} is newer than kube-apiserver {apiserver}: upstream's skew policy \
                 never allows a {file} newer than the apiserver"
            ),
            ReleaseProblem::TooOldForApiserver {
                file,
                version,
                apiserver,
                minors,
            } => write!(
                f,
                "{file} {version} is {minors} minor versions older than kube-apiserver \
                 {apiserver}: upstream's skew policy allows at most {}",
                max_older(file)
            ),
            ReleaseProblem::EtcdUnsupported {
                etcd,
                kubernetes,
                supported,
            } => write!(
                f,
                "etcd {etcd} is not an etcd Kubernetes {kubernetes} supports (it takes etcd \
                 {supported})"
            ),
            ReleaseProblem::MixedArch { arches } => {
                let list: Vec<_> = arches.iter().map(|(f, a)| format!("{f} {a}")).collect();
                write!(f, "the bundle mixes CPU architectures: {}", list.join(", "))
            }
        }
    }
}

/// How many minors older than the apiserver a file may be.
fn max_older(file: &str) -> u64 {
    match file {
        "kubectl" => 1,
        _ => 3,
    }
}

/// Every problem of `manifest` as a release, against `kubernetes_version` when a cluster's is
/// given.
pub fn check(manifest: &Manifest, kubernetes_version: Option<&Version>) -> Vec<ReleaseProblem> {
    let mut problems = Vec::new();
    let mut parsed = Vec::new();
    for f in &manifest.files {
        match Version::parse(&f.version) {
            Some(v) => parsed.push((f, v)),
            None => problems.push(ReleaseProblem::BadVersion {
                file: f.name.clone(),
                version: f.version.clone(),
            }),
        }
    }
    let arches: BTreeSet<_> = manifest.files.iter().map(|f| f.arch).collect();
    if arches.len() > 1 {
        problems.push(ReleaseProblem::MixedArch {
            arches: manifest
                .files
                .iter()
                .map(|f| (f.name.clone(), f.arch.to_string()))
                .collect(),
        });
    }
    for (what, pick) in ONE_RELEASE {
        let group: Vec<_> = parsed.iter().filter(|(f, _)| pick(&f.name)).collect();
        let distinct: BTreeSet<_> = group.iter().map(|(_, v)| v).collect();
        if distinct.len() > 1 {
            problems.push(ReleaseProblem::MixedReleases {
                what,
                versions: group
                    .iter()
                    .map(|(f, v)| (f.name.clone(), v.to_string()))
                    .collect(),
            });
        }
    }
    if let Some(want) = kubernetes_version {
        for (f, v) in &parsed {
            if f.component == Component::Kubernetes && v != want {
                problems.push(ReleaseProblem::NotKubernetesVersion {
                    file: f.name.clone(),
                    bundle: v.to_string(),
                    config: want.to_string(),
                });
            }
        }
    }
    let apiserver = parsed
        .iter()
        .find(|(f, _)| f.name == APISERVER)
        .map(|(_, v)| v);
    if let Some(api) = apiserver {
        for (f, v) in &parsed {
            if !matches!(f.name.as_str(), "kubelet" | "kube-proxy" | "kubectl") {
                continue;
            }
            let newer = if f.name == "kubectl" {
                v.minor > api.minor + 1 || v.major != api.major
            } else {
                v > api
            };
            if newer {
                problems.push(ReleaseProblem::NewerThanApiserver {
                    file: f.name.clone(),
                    version: v.to_string(),
                    apiserver: api.to_string(),
                });
            } else if v.major == api.major && api.minor > v.minor + max_older(&f.name) {
                problems.push(ReleaseProblem::TooOldForApiserver {
                    file: f.name.clone(),
                    version: v.to_string(),
                    apiserver: api.to_string(),
                    minors: api.minor - v.minor,
                });
            }
        }
    }
    if let Some(kube) = apiserver.or(kubernetes_version)
        && let Some((_, etcd)) = parsed.iter().find(|(f, _)| f.name == "etcd")
    {
        let lines = supported_etcd(kube);
        if !lines.contains(&(etcd.major, etcd.minor)) {
            let supported: Vec<_> = lines.iter().map(|(a, b)| format!("{a}.{b}.x")).collect();
            problems.push(ReleaseProblem::EtcdUnsupported {
                etcd: etcd.to_string(),
                kubernetes: kube.minor_line(),
                supported: supported.join(" or "),
            });
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::manifest::{FileEntry, VersionFrom};
    use crate::bundle::sources::Arch;

    fn manifest(files: &[(&str, &str)]) -> Manifest {
        let mut m = Manifest::default();
        for (name, version) in files {
            m.put(FileEntry {
                name: name.to_string(),
                component: Component::of_file(name).unwrap(),
                version: version.to_string(),
                arch: Arch::Amd64,
                sha256: "0".repeat(64),
                version_from: VersionFrom::Binary,
                source: None,
            });
        }
        m
    }

    fn messages(m: &Manifest, k: Option<&str>) -> Vec<String> {
        let k = k.map(|k| Version::parse(k).unwrap());
        check(m, k.as_ref())
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn a_whole_release_passes() {
        let m = manifest(&[
            ("kube-apiserver", "v1.37.2"),
            ("kube-controller-manager", "v1.37.2"),
            ("kube-scheduler", "v1.37.2"),
            ("kubelet", "v1.37.2"),
            ("kubectl", "v1.37.2"),
            ("etcd", "v3.6.16"),
            ("etcdctl", "v3.6.16"),
            ("containerd", "v2.4.2"),
            ("ctr", "v2.4.2"),
        ]);
        assert_eq!(messages(&m, Some("v1.37.2")), Vec::<String>::new());
        // An older kubelet is within upstream's skew, but not the cluster's version.
        let m = manifest(&[("kube-apiserver", "v1.37.2"), ("kubelet", "v1.35.0")]);
        assert_eq!(messages(&m, None), Vec::<String>::new());
        assert_eq!(
            messages(&m, Some("v1.37.2")),
            [
                "kubelet in the bundle is v1.35.0, but kubernetesVersion is v1.37.2: fetch the \
              v1.37.2 binaries (`kinit bundle fetch DIR --kubernetes v1.37.2`) or set \
              kubernetesVersion: v1.35.0"
            ]
        );
    }

    #[test]
    fn skew_rules_name_both_versions() {
        let m = manifest(&[
            ("kube-apiserver", "v1.36.3"),
            ("kubelet", "v1.37.2"),
            ("kube-proxy", "v1.32.0"),
            ("kubectl", "v1.38.0"),
        ]);
        assert_eq!(
            messages(&m, None),
            [
                "kube-proxy v1.32.0 is 4 minor versions older than kube-apiserver v1.36.3: \
                 upstream's skew policy allows at most 3",
                "kubectl v1.38.0 is newer than kube-apiserver v1.36.3: upstream's skew policy \
                 never allows a kubectl newer than the apiserver",
                "kubelet v1.37.2 is newer than kube-apiserver v1.36.3: upstream's skew policy \
                 never allows a kubelet newer than the apiserver",
            ]
        );
    }

    #[test]
    fn mixed_releases_and_unsupported_etcd() {
        let m = manifest(&[
            ("kube-apiserver", "v1.33.4"),
            ("kube-scheduler", "v1.32.0"),
            ("etcd", "v3.6.16"),
            ("etcdctl", "v3.5.21"),
        ]);
        assert_eq!(
            messages(&m, None),
            [
                "the Kubernetes control plane mixes releases: kube-apiserver v1.33.4, \
                 kube-scheduler v1.32.0; its files must come from one release",
                "etcd mixes releases: etcd v3.6.16, etcdctl v3.5.21; its files must come from \
                 one release",
                "etcd v3.6.16 is not an etcd Kubernetes v1.33 supports (it takes etcd 3.5.x)",
            ]
        );
        // Without an apiserver in the bundle, the cluster's version decides.
        let m = manifest(&[("etcd", "v3.7.0")]);
        assert_eq!(
            messages(&m, Some("v1.37.2")),
            ["etcd v3.7.0 is not an etcd Kubernetes v1.37 supports (it takes etcd 3.5.x or 3.6.x)"]
        );
    }
}
