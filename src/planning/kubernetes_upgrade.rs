//! Whether the cluster may move to its `kubernetesVersion`, judged before any host changes, by
//! upstream's version-skew policy (kubernetes.io/releases/version-skew-policy) and kubeadm's
//! upgrade rules: one minor version at a time, no downgrade, the bundle holding the target
//! release, no kubelet newer than an apiserver nor more than three minor versions older, and an
//! etcd the target supports. Pure: the versions read from the running cluster in, a decision
//! (with every rule's verdict, for the plan) out.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::bundle::release::supported_etcd;
use crate::bundle::version::Version;

/// What one host (an apiserver) or node (a kubelet) runs; `None`: it did not answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningVersion {
    pub host: String,
    pub version: Option<Version>,
}

/// What the decision is made from.
#[derive(Debug, Clone)]
pub struct UpgradeInputs<'a> {
    /// `kubernetesVersion` of cluster.yaml.
    pub target: &'a Version,
    /// The bundle's kube-apiserver (`None`: its release could not be told).
    pub bundle: Option<&'a Version>,
    /// Each control-plane host's apiserver, as `/version` answers.
    pub apiservers: &'a [RunningVersion],
    /// Each registered node's kubelet (empty: no node, or the node list could not be read).
    pub kubelets: &'a [RunningVersion],
    /// The etcd the cluster runs once the etcd phase is done (the bundle's), `(major, minor)`.
    pub etcd: Option<(u64, u64, String)>,
}

/// One rule of the skew policy and how this change fares under it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkewVerdict {
    pub rule: String,
    pub allowed: bool,
    pub detail: String,
}

/// Patch releases within a minor, or the next minor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpgradeKind {
    Patch,
    Minor,
}

/// A change of release the run carries out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KubernetesUpgrade {
    pub to: String,
    pub kind: UpgradeKind,
    /// From each older release, the hosts whose apiserver runs it.
    pub from: Vec<(String, Vec<String>)>,
    /// Hosts that run the target already (a run that stopped half way).
    pub done: Vec<String>,
    /// Hosts whose apiserver did not answer.
    pub unknown: Vec<String>,
    pub skew: Vec<SkewVerdict>,
}

impl KubernetesUpgrade {
    /// `Kubernetes v1.36.3 → v1.37.2 on cp1, cp2, cp3 (minor release)`, then what else is worth knowing.
    pub fn describe(&self) -> String {
        let steps: Vec<String> = self
            .from
            .iter()
            .map(|(v, hosts)| format!("{v} → {} on {}", self.to, hosts.join(", ")))
            .collect();
        let kind = match self.kind {
            UpgradeKind::Patch => "patch release",
            UpgradeKind::Minor => "minor release",
        };
        let mut text = format!("Kubernetes {} ({kind})", steps.join("; "));
        if !self.done.is_empty() {
            text.push_str(&format!(
                " ({} run(s) {} already)",
                self.done.join(", "),
                self.to
            ));
        }
        if !self.unknown.is_empty() {
            text.push_str(&format!(
                " ({} did not answer: release not known)",
                self.unknown.join(", ")
            ));
        }
        text
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KubernetesDecision {
    /// Nothing answered: a new cluster (or one that is down); nothing to compare with.
    NothingRuns,
    /// Every apiserver that answered runs the target.
    Current,
    Upgrade(KubernetesUpgrade),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KubernetesRefusal {
    #[error(
        "kubernetesVersion is {target} but the bundle's kube-apiserver is {bundle}: the bundle \
         must hold the release the cluster moves to. Put {target}'s binaries in \
         spec.artifacts.bundle (or set kubernetesVersion to {bundle})"
    )]
    BundleNotTarget { target: Version, bundle: Version },
    #[error(
        "the cluster runs Kubernetes {running} on {hosts} and kubernetesVersion is {target}, but \
         the release of the bundle's kube-apiserver cannot be told ({why}); kinit does not \
         change a running control plane to a release it cannot check. Give the bundle a \
         bundle.yaml (`kinit bundle import`) or run kinit where the bundle's binaries run",
        hosts = hosts.join(", ")
    )]
    BundleUnknown {
        target: Version,
        running: Version,
        hosts: Vec<String>,
        why: String,
    },
    #[error(
        "kubernetesVersion {target} is older than Kubernetes {running} on {hosts}: that is a \
         downgrade, which kinit does not do (upstream supports no control-plane downgrade). \
         Set kubernetesVersion to {running} or newer",
        hosts = hosts.join(", ")
    )]
    Downgrade {
        target: Version,
        running: Version,
        hosts: Vec<String>,
    },
    #[error(
        "kubernetesVersion {target} is more than one minor version ahead of Kubernetes \
         {running} on {hosts}: Kubernetes upgrades one minor version at a time. Upgrade to the \
         latest {next}.x first, then to {target}",
        hosts = hosts.join(", ")
    )]
    SkipsMinor {
        target: Version,
        running: Version,
        next: String,
        hosts: Vec<String>,
    },
    #[error(
        "kubernetesVersion {target} is another major version than Kubernetes {running} on \
         {hosts}; kinit does not change major versions",
        hosts = hosts.join(", ")
    )]
    MajorChange {
        target: Version,
        running: Version,
        hosts: Vec<String>,
    },
    #[error(
        "the kubelet {kubelet} on {nodes} is newer than kubernetesVersion {target}: a kubelet \
         must never be newer than the apiservers it talks to. Set kubernetesVersion to \
         {kubelet} or newer",
        nodes = nodes.join(", ")
    )]
    KubeletNewer {
        target: Version,
        kubelet: Version,
        nodes: Vec<String>,
    },
    #[error(
        "the kubelet {kubelet} on {nodes} is more than three minor versions older than \
         kubernetesVersion {target}: once the apiservers run {target} those nodes would be \
         unsupported until their kubelets move. Upgrade the cluster to {min_line}.x first",
        nodes = nodes.join(", ")
    )]
    KubeletTooOld {
        target: Version,
        kubelet: Version,
        min_line: String,
        nodes: Vec<String>,
    },
    #[error(
        "the cluster's etcd {etcd} is not one Kubernetes {target} supports (etcd {supported}); \
         put a supported etcd in the bundle first"
    )]
    EtcdUnsupported {
        target: Version,
        etcd: String,
        supported: String,
    },
}

/// Releases compared by major, minor and patch only (a pre-release runs as its release).
fn core(v: &Version) -> (u64, u64, u64) {
    (v.major, v.minor, v.patch)
}

/// The oldest kubelet minor an apiserver supports (n-3, upstream's policy since v1.28).
const KUBELET_MINORS_BEHIND: u64 = 3;

type Refusal = Box<KubernetesRefusal>;
/// Releases running somewhere, each with its hosts.
type Running = Vec<(Version, Vec<String>)>;

/// Decide, or refuse naming both versions and the hosts.
pub fn decide(input: &UpgradeInputs) -> Result<KubernetesDecision, Refusal> {
    let target = input.target;
    let mut by_version: BTreeMap<(u64, u64, u64), (Version, Vec<String>)> = BTreeMap::new();
    let mut unknown = Vec::new();
    for a in input.apiservers {
        match &a.version {
            Some(v) => by_version
                .entry(core(v))
                .or_insert_with(|| (v.clone(), Vec::new()))
                .1
                .push(a.host.clone()),
            None => unknown.push(a.host.clone()),
        }
    }
    // Kubelets first: they bind whatever the control plane does.
    let mut skew = kubelet_verdicts(input.kubelets, target)?;
    if by_version.is_empty() {
        return Ok(KubernetesDecision::NothingRuns);
    }
    let older: Running = by_version
        .values()
        .filter(|(v, _)| core(v) != core(target))
        .cloned()
        .collect();
    if older.is_empty() {
        return Ok(KubernetesDecision::Current);
    }
    check_steps(&older, target)?;
    check_bundle(input.bundle, &older, target)?;
    if let Some(etcd) = &input.etcd {
        skew.push(etcd_verdict(etcd, target)?);
    }
    let kind = if older.iter().all(|(v, _)| v.minor == target.minor) {
        UpgradeKind::Patch
    } else {
        UpgradeKind::Minor
    };
    skew.extend(control_plane_verdicts(&older, target));
    let done = by_version
        .get(&core(target))
        .map(|(_, h)| h.clone())
        .unwrap_or_default();
    Ok(KubernetesDecision::Upgrade(KubernetesUpgrade {
        to: target.to_string(),
        kind,
        from: older.into_iter().map(|(v, h)| (v.to_string(), h)).collect(),
        done,
        unknown,
        skew,
    }))
}

/// Every kubelet minor line against the target: never newer, at most
/// [`KUBELET_MINORS_BEHIND`] minors older.
fn kubelet_verdicts(
    kubelets: &[RunningVersion],
    target: &Version,
) -> Result<Vec<SkewVerdict>, Refusal> {
    let mut skew = Vec::new();
    for (k, (kubelet, nodes)) in group(kubelets) {
        if core(&kubelet) > core(target) {
            return Err(Box::new(KubernetesRefusal::KubeletNewer {
                target: target.clone(),
                kubelet,
                nodes,
            }));
        }
        if k.0 != target.major || target.minor - k.1 > KUBELET_MINORS_BEHIND {
            return Err(Box::new(KubernetesRefusal::KubeletTooOld {
                target: target.clone(),
                min_line: format!(
                    "v{}.{}",
                    target.major,
                    k.1 + KUBELET_MINORS_BEHIND.min(target.minor - k.1)
                ),
                kubelet,
                nodes,
            }));
        }
        skew.push(SkewVerdict {
            rule: "kubelet: not newer than kube-apiserver, at most 3 minor versions older".into(),
            allowed: true,
            detail: format!(
                "kubelet {kubelet} on {} with kube-apiserver {target}",
                nodes.join(", ")
            ),
        });
    }
    Ok(skew)
}

/// Each running apiserver release to the target: the same major, never down, one minor at a
/// time.
fn check_steps(older: &Running, target: &Version) -> Result<(), Refusal> {
    for (running, hosts) in older {
        if running.major != target.major {
            return Err(Box::new(KubernetesRefusal::MajorChange {
                target: target.clone(),
                running: running.clone(),
                hosts: hosts.clone(),
            }));
        }
        if core(running) > core(target) {
            return Err(Box::new(KubernetesRefusal::Downgrade {
                target: target.clone(),
                running: running.clone(),
                hosts: hosts.clone(),
            }));
        }
        if target.minor > running.minor + 1 {
            return Err(Box::new(KubernetesRefusal::SkipsMinor {
                target: target.clone(),
                running: running.clone(),
                next: format!("v{}.{}", running.major, running.minor + 1),
                hosts: hosts.clone(),
            }));
        }
    }
    Ok(())
}

/// The bundle must hold the target release (known from bundle.yaml or by running the binary).
fn check_bundle(
    bundle: Option<&Version>,
    older: &Running,
    target: &Version,
) -> Result<(), Refusal> {
    match bundle {
        Some(b) if core(b) == core(target) => Ok(()),
        Some(b) => Err(Box::new(KubernetesRefusal::BundleNotTarget {
            target: target.clone(),
            bundle: b.clone(),
        })),
        None => {
            let (first, hosts) = &older[0];
            Err(Box::new(KubernetesRefusal::BundleUnknown {
                target: target.clone(),
                running: first.clone(),
                hosts: hosts.clone(),
                why: "no bundle.yaml and the binary does not run on this machine".into(),
            }))
        }
    }
}

/// The cluster's etcd (major, minor, as shown) must be one the target supports.
fn etcd_verdict(etcd: &(u64, u64, String), target: &Version) -> Result<SkewVerdict, Refusal> {
    let (major, minor, shown) = etcd;
    let supported = supported_etcd(target);
    if !supported.contains(&(*major, *minor)) {
        return Err(Box::new(KubernetesRefusal::EtcdUnsupported {
            target: target.clone(),
            etcd: shown.clone(),
            supported: supported
                .iter()
                .map(|(a, b)| format!("{a}.{b}"))
                .collect::<Vec<_>>()
                .join(" or "),
        }));
    }
    Ok(SkewVerdict {
        rule: "etcd: a release the target supports".into(),
        allowed: true,
        detail: format!("etcd {shown} under Kubernetes {target}"),
    })
}

/// The verdicts an allowed control-plane upgrade shows: each step, the apiservers side by
/// side while they roll, controller-manager and scheduler after them.
fn control_plane_verdicts(older: &Running, target: &Version) -> Vec<SkewVerdict> {
    let mut skew: Vec<SkewVerdict> = older
        .iter()
        .map(|(running, hosts)| SkewVerdict {
            rule: "kube-apiserver: one minor version at a time, never down".into(),
            allowed: true,
            detail: format!("{running} → {target} on {}", hosts.join(", ")),
        })
        .collect();
    skew.push(SkewVerdict {
        rule: "kube-apiserver instances: at most one minor version apart".into(),
        allowed: true,
        detail: format!(
            "{} and {target} serve side by side while the apiservers restart one host at a time",
            older
                .iter()
                .map(|(v, _)| v.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    });
    skew.push(SkewVerdict {
        rule: "kube-controller-manager, kube-scheduler: never newer than an apiserver".into(),
        allowed: true,
        detail: format!(
            "restarted on {target} only once every apiserver runs {target} (they talk to \
             their local apiserver)"
        ),
    });
    skew
}

/// Kubelets by minor line (major, minor, patch of the newest in the group).
/// A minor line, the newest release seen on it and the nodes on it.
type MinorGroup = ((u64, u64), (Version, Vec<String>));

fn group(kubelets: &[RunningVersion]) -> Vec<MinorGroup> {
    let mut out: BTreeMap<(u64, u64), (Version, Vec<String>)> = BTreeMap::new();
    for k in kubelets {
        if let Some(v) = &k.version {
            let e = out
                .entry((v.major, v.minor))
                .or_insert_with(|| (v.clone(), Vec::new()));
            if core(v) > core(&e.0) {
                e.0 = v.clone();
            }
            e.1.push(k.host.clone());
        }
    }
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    fn running(pairs: &[(&str, Option<&str>)]) -> Vec<RunningVersion> {
        pairs
            .iter()
            .map(|(h, ver)| RunningVersion {
                host: h.to_string(),
                version: ver.map(v),
            })
            .collect()
    }

    fn decide_with(
        target: &str,
        bundle: Option<&str>,
        apiservers: &[(&str, Option<&str>)],
        kubelets: &[(&str, Option<&str>)],
    ) -> Result<KubernetesDecision, Box<KubernetesRefusal>> {
        let target = v(target);
        let bundle = bundle.map(v);
        let apiservers = running(apiservers);
        let kubelets = running(kubelets);
        decide(&UpgradeInputs {
            target: &target,
            bundle: bundle.as_ref(),
            apiservers: &apiservers,
            kubelets: &kubelets,
            etcd: Some((3, 6, "3.6.16".into())),
        })
    }

    const THREE_ON_36: &[(&str, Option<&str>)] = &[
        ("cp1", Some("v1.36.3")),
        ("cp2", Some("v1.36.3")),
        ("cp3", Some("v1.36.3")),
    ];

    #[test]
    fn a_minor_upgrade_names_every_host_and_each_rule() {
        let d = decide_with("v1.37.2", Some("v1.37.2"), THREE_ON_36, &[]).unwrap();
        let KubernetesDecision::Upgrade(u) = d else {
            panic!("{d:?}")
        };
        assert_eq!(u.kind, UpgradeKind::Minor);
        assert_eq!(
            u.describe(),
            "Kubernetes v1.36.3 → v1.37.2 on cp1, cp2, cp3 (minor release)"
        );
        assert!(u.skew.iter().all(|s| s.allowed));
        assert!(u.skew.iter().any(|s| s.rule.starts_with("etcd")));
        assert!(u.skew.iter().any(|s| s.rule.contains("controller-manager")));
    }

    #[test]
    fn a_patch_upgrade_and_a_run_that_stopped_half_way() {
        let d = decide_with(
            "v1.36.5",
            Some("v1.36.5"),
            &[
                ("cp1", Some("v1.36.5")),
                ("cp2", Some("v1.36.3")),
                ("cp3", None),
            ],
            &[],
        )
        .unwrap();
        let KubernetesDecision::Upgrade(u) = d else {
            panic!("{d:?}")
        };
        assert_eq!(u.kind, UpgradeKind::Patch);
        assert_eq!(u.done, vec!["cp1"]);
        assert_eq!(u.unknown, vec!["cp3"]);
        assert!(u.describe().contains("v1.36.3 → v1.36.5 on cp2"));
    }

    #[test]
    fn nothing_to_do_when_every_apiserver_runs_the_target_or_none_answers() {
        assert_eq!(
            decide_with("v1.36.3", None, THREE_ON_36, &[]).unwrap(),
            KubernetesDecision::Current
        );
        assert_eq!(
            decide_with("v1.37.2", None, &[("cp1", None)], &[]).unwrap(),
            KubernetesDecision::NothingRuns
        );
    }

    #[test]
    fn refusals_name_both_versions_and_the_hosts() {
        let e = decide_with("v1.35.4", Some("v1.35.4"), THREE_ON_36, &[]).unwrap_err();
        assert!(matches!(*e, KubernetesRefusal::Downgrade { .. }), "{e}");
        let e = decide_with("v1.36.1", Some("v1.36.1"), THREE_ON_36, &[]).unwrap_err();
        assert!(matches!(*e, KubernetesRefusal::Downgrade { .. }), "{e}");
        assert!(e.to_string().contains("v1.36.1") && e.to_string().contains("v1.36.3"));
        assert!(e.to_string().contains("cp1, cp2, cp3"), "{e}");

        let e = decide_with("v1.38.0", Some("v1.38.0"), THREE_ON_36, &[]).unwrap_err();
        assert!(e.to_string().contains("latest v1.37.x first"), "{e}");

        let e = decide_with("v1.37.2", Some("v1.36.3"), THREE_ON_36, &[]).unwrap_err();
        assert!(
            matches!(*e, KubernetesRefusal::BundleNotTarget { .. }),
            "{e}"
        );
        let e = decide_with("v1.37.2", None, THREE_ON_36, &[]).unwrap_err();
        assert!(matches!(*e, KubernetesRefusal::BundleUnknown { .. }), "{e}");

        let e = decide_with("v2.0.0", Some("v2.0.0"), THREE_ON_36, &[]).unwrap_err();
        assert!(matches!(*e, KubernetesRefusal::MajorChange { .. }), "{e}");
    }

    #[test]
    fn kubelets_bound_the_target() {
        let newer = [("w1", Some("v1.37.2")), ("w2", Some("v1.36.3"))];
        let e = decide_with("v1.36.3", Some("v1.36.3"), THREE_ON_36, &newer).unwrap_err();
        assert!(
            matches!(*e, KubernetesRefusal::KubeletNewer { ref nodes, .. } if nodes == &["w1"])
        );
        let old = [("w1", Some("v1.33.0"))];
        let e = decide_with(
            "v1.37.2",
            Some("v1.37.2"),
            &[("cp1", Some("v1.36.3"))],
            &old,
        )
        .unwrap_err();
        assert!(e.to_string().contains("v1.36.x first"), "{e}");
        let fine = [("w1", Some("v1.34.0"))];
        let d = decide_with(
            "v1.37.2",
            Some("v1.37.2"),
            &[("cp1", Some("v1.36.3"))],
            &fine,
        );
        assert!(matches!(d, Ok(KubernetesDecision::Upgrade(_))), "{d:?}");
    }

    #[test]
    fn an_etcd_the_target_does_not_support_is_refused() {
        let target = v("v1.33.1");
        let apiservers = running(&[("cp1", Some("v1.32.4"))]);
        let e = decide(&UpgradeInputs {
            target: &target,
            bundle: Some(&target),
            apiservers: &apiservers,
            kubelets: &[],
            etcd: Some((3, 6, "3.6.16".into())),
        })
        .unwrap_err();
        assert!(e.to_string().contains("etcd 3.5"), "{e}");
    }
}
