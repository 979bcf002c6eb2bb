//! The cluster.yaml a lab hands to `kinit up`: the lab's nodes, its VIP and subnet, and its own
//! SSH key and known_hosts.

use std::path::Path;

use super::plan::LabPlan;

/// The release a lab without Kubernetes binaries names (its manifests are rendered, nothing
/// runs them).
pub const KUBERNETES_VERSION: &str = "v1.31.4";
/// The lab cluster's Service addresses (runtime nodes route them onto their link).
pub const SERVICE_SUBNET: &str = "10.96.0.0/12";

pub fn render(plan: &LabPlan, identity_file: &Path, known_hosts: &Path) -> String {
    let mut y = String::new();
    y.push_str(&format!(
        "# Written by `kinit lab up --name {name}` for the lab's nodes. Check it with\n\
         #   kinit -c <this file> config validate\n\
         apiVersion: kinit.io/v1alpha1\n\
         kind: Cluster\n\
         metadata:\n  name: {name}\n\
         spec:\n\
         \x20 topology: stacked\n\
         \x20 kubernetesVersion: {version}\n\
         {control_plane}\
         \x20 controlPlaneEndpoint:\n\
         \x20   address: {vip}                # keepalived's VIP, inside the lab subnet\n\
         \x20   port: 8443\n\
         \x20   loadBalancer: haproxy-keepalived\n\
         \x20   interface: host0              # nspawn's name for a node's end of the veth\n\
         \x20 etcd:\n\
         \x20   mode: systemd\n\
         \x20 networking:\n\
         \x20   podSubnet: 10.244.0.0/16\n\
         \x20   serviceSubnet: {service_subnet}\n\
         \x20   dnsDomain: cluster.local\n\
         \x20   nodeSubnet: {subnet}\n\
         \x20   dnsUpstreams: []              # the lab answers its own names only: nothing leaves it\n\
         \x20 pki:\n\
         \x20   dir: ./pki\n\
         \x20 artifacts:\n\
         \x20   bundle: ./bundle               # {bundle_says}\n\
         \x20 ssh:\n\
         \x20   user: root\n\
         \x20   port: 22\n\
         \x20   identityFile: {key}\n\
         \x20   knownHosts: {kh}\n\
         \x20 hosts:\n",
        name = plan.name,
        version = plan.kubernetes.as_deref().unwrap_or(KUBERNETES_VERSION),
        control_plane = if plan.kubernetes.is_some() {
            // A kubelet cannot run containers inside these nodes: the control plane runs as
            // systemd units.
            "  controlPlane:\n    mode: systemd\n"
        } else {
            ""
        },
        bundle_says = if plan.kubernetes.is_some() {
            "etcd and the control plane, built by hack/build-upstream.sh"
        } else {
            "etcd and etcdctl from the image's Debian packages"
        },
        vip = plan.vip,
        service_subnet = SERVICE_SUBNET,
        subnet = plan.subnet,
        key = identity_file.display(),
        kh = known_hosts.display(),
    ));
    for n in &plan.nodes {
        let roles = if n.control_plane {
            "[control-plane, etcd]"
        } else {
            "[worker]"
        };
        y.push_str(&format!(
            "    - {{name: {}, address: {}, roles: {roles}}}\n",
            n.name, n.address
        ));
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::plan::LabRequest;

    fn check(req: LabRequest) -> crate::inventory::Inventory {
        check_plan(LabPlan::new(&req).unwrap())
    }

    fn check_plan(plan: LabPlan) -> crate::inventory::Inventory {
        let text = render(
            &plan,
            Path::new("/var/lib/kinit/labs/x/id_ed25519"),
            Path::new("/var/lib/kinit/labs/x/known_hosts"),
        );
        let (cfg, report) = crate::config::check(Path::new("cluster.yaml"), text.clone());
        assert!(!report.has_errors(), "{text}\n{report:?}");
        let cfg = cfg.unwrap();
        let inv = crate::inventory::Inventory::from_config(&cfg, Path::new("/tmp"), None).unwrap();
        assert_eq!(inv.hosts.len(), plan.nodes.len());
        assert_eq!(inv.endpoint.address, plan.vip.to_string());
        assert_eq!(
            inv.endpoint.interface, "host0",
            "keepalived binds the VIP to the node's veth end"
        );
        inv
    }

    #[test]
    fn a_lab_with_kubernetes_binaries_runs_the_control_plane_as_units_of_their_release() {
        let mut plan = LabPlan::new(&LabRequest::default()).unwrap();
        let inv = check_plan(plan.clone());
        assert_eq!(
            inv.control_plane_mode,
            crate::config::ControlPlaneMode::StaticPod
        );
        assert_eq!(inv.kubernetes_version.to_string(), KUBERNETES_VERSION);
        plan.kubernetes = Some("v1.37.2".into());
        let inv = check_plan(plan);
        assert_eq!(
            inv.control_plane_mode,
            crate::config::ControlPlaneMode::Systemd
        );
        assert_eq!(inv.kubernetes_version.to_string(), "v1.37.2");
    }

    #[test]
    fn the_rendered_cluster_validates_for_lab_shapes() {
        check(LabRequest::default());
        check(LabRequest {
            name: Some("big".into()),
            nodes: Some(7),
            subnet: Some("192.168.77.0/24".parse().unwrap()),
            ..Default::default()
        });
        check(LabRequest {
            nodes: Some(1),
            ..Default::default()
        });
    }
}
