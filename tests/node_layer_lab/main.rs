//! The node layer on lab nodes that run containers (`kinit lab up --runtime`): `kinit up`
//! installs the bundle's containerd, runc and CNI plugins beside the real control plane
//! (systemd mode), imports the pause image kinit built from the bundle's static pause, and
//! starts a kubelet on every node with a client certificate kinit issued. Every node must
//! register and turn Ready (first on the previous minor release, then upgraded under a
//! client writing through the VIP: the control planes' kubelets one at a time, then the two
//! workers' together as `spec.rollout.maxUnavailableWorkers: 2` allows, each node drained
//! first, a budget honoured, a bare pod left running), a pod must run on the worker with an address from the worker's
//! own slice of the pod subnet, pods on different nodes must reach each other without NAT
//! (kinit's routes between the nodes' slices), control planes carry kubeadm's labels and
//! taint, and a second `up` must change nothing. `drill node w1` stops the worker's kubelet:
//! the Node goes NotReady and Ready again, the control plane's clients see no failure and the
//! worker's pod keeps its container. A `remove w2` cut short while its drain waits on a budget
//! puts w2's Node back. Runs as root; the lab is removed when the test ends
//! however it ends.

#[path = "../support/mod.rs"]
mod support;

use support::lab::*;

mod day2;
mod network;
mod nodes;
mod pods;
mod registry;
mod upgrade;

use pods::web_image_archive;
use registry::LocalRegistry;

pub const NODES: [&str; 5] = ["cp1", "cp2", "cp3", "w1", "w2"];
pub const SUBNET: &str = "10.213.234.0/24";
/// The test registry: the lab bridge's address (the subnet's first), a port of its own.
pub const REGISTRY: &str = "10.213.234.1:5234";
/// The test image as only the registry serves it.
pub const PULLED_IMAGE: &str = "10.213.234.1:5234/kinit-test/busybox:1";

#[test]
fn nodes_register_ready_and_run_pods_from_the_bundle_alone() {
    let lab = lab_up_runtime("knode", SUBNET, "5");

    // A private plain-HTTP registry on the lab network, named in spec.registries: the nodes
    // pull the test image from it later (the dns pod on cp2).
    let registry = LocalRegistry::start(REGISTRY);
    registry.push(&web_image_archive(PULLED_IMAGE), "kinit-test/busybox", "1");
    let config = std::fs::read_to_string(&lab.config).unwrap();
    let with_registry = config.replacen(
        "\n  hosts:\n",
        &format!(
            "\n  registries:\n    - {{name: \"{REGISTRY}\", mirrors: [\"http://{REGISTRY}\"], insecure: true}}\n  rollout:\n    maxUnavailableWorkers: 2\n  hosts:\n"
        ),
        1,
    );
    assert_ne!(
        with_registry,
        config,
        "no hosts list in {}",
        lab.config.display()
    );
    std::fs::write(&lab.config, with_registry).unwrap();
    // The cluster starts on the previous minor release, upgraded to the bundle's below.
    let (old, new) = start_on_previous_release(&lab);

    let (code, summary, all) = lab.up(&[]);
    assert_eq!(code, 0, "up: {all}");
    // The playbook's last step waited for every kubelet host to be a Ready node.
    assert!(
        all.contains("5 node(s) Ready: cp1, cp2, cp3, w1, w2"),
        "no nodes-ready note: {all}"
    );
    assert_eq!(summary["event"], "summary", "{all}");
    // Then CoreDNS, from the image kinit built from the bundle's CoreDNS binary, rolled out.
    assert!(
        all.contains("CoreDNS answers at 10.96.0.10"),
        "no cluster-dns note: {all}"
    );

    let kubeconfig = lab.admin_kubeconfig();
    upgrade::upgrade_nodes_under_load(&lab, &kubeconfig, &old, &new);
    nodes::every_node_ready(&lab, &kubeconfig);
    nodes::a_pod_on_the_worker(&lab, &kubeconfig);
    nodes::control_planes_labelled_and_tainted(&lab, &kubeconfig);
    let cluster_ip = network::pods_reach_each_other(&lab, &kubeconfig);
    network::names_resolve_through_coredns(&lab, &kubeconfig, &registry, &cluster_ip);

    // A second run finds everything as it should be.
    lab.assert_up_is_a_no_op(&[]);

    registry::leaves_the_nodes_with_cluster_yaml(&lab);
    day2::drill_node_w1(&lab, &kubeconfig);
    day2::an_interrupted_removal_puts_the_node_back(&lab, &kubeconfig);
    day2::remove_worker_w1(&lab, &kubeconfig);
    day2::remove_unreachable_cp3(&lab, &kubeconfig);
}
