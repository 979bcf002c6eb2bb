//! `spec.kubernetesVersion`: the releases kinit renders right. The flags of the control plane
//! and the kubelet configuration kinit writes are those of v1.31 to v1.37 (unchanged between
//! them); v1.37 is what `hack/build-upstream.sh` builds and the lab tests run.

use super::super::model::*;
use super::super::problem::ConfigProblem;

/// The minor releases of Kubernetes 1 kinit supports.
pub const SUPPORTED_MINORS: std::ops::RangeInclusive<u32> = 31..=37;

pub(super) fn kubernetes_version(spec: &ClusterSpec, out: &mut Vec<ConfigProblem>) {
    let Some(v) = &spec.kubernetes_version else {
        return;
    };
    if v.major == 1 && SUPPORTED_MINORS.contains(&v.minor) {
        return;
    }
    out.push(
        ConfigProblem::error(
            "config::unsupported-kubernetes-version",
            "spec.kubernetesVersion",
            format!(
                "kinit does not deploy Kubernetes {v}: its flags and configuration are written for \
                 v1.{} to v1.{}",
                SUPPORTED_MINORS.start(),
                SUPPORTED_MINORS.end()
            ),
        )
        .help(format!(
            "use a v1.{}.x to v1.{}.x release (v1.37.2 is the one hack/build-upstream.sh builds)",
            SUPPORTED_MINORS.start(),
            SUPPORTED_MINORS.end()
        )),
    );
}
