//! The pod network: pods on different nodes reach each other without NAT, a Service through
//! kube-proxy, names through CoreDNS.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::pods::*;
use crate::registry::LocalRegistry;
use crate::support::lab::*;
use crate::{NODES, PULLED_IMAGE, REGISTRY};

/// Routes between the nodes' slices; a web pod on w1 answers a client pod on cp1 and cp2's
/// host; a Service in front of it answers on cp3. The Service's cluster IP.
pub fn pods_reach_each_other(lab: &Lab, kubeconfig: &Path) -> String {
    // The pod network between nodes: every node routes each other node's slice through its
    // address (kinit-pod-network.service).
    let routes = lab.on("w1", "ip -4 route show proto 77 | sort");
    assert_eq!(routes.lines().count(), 4, "routes on w1: {routes}");
    for cp in ["cp1", "cp2", "cp3"] {
        // (Its first address: the VIP holder has the VIP beside it.)
        let address = lab.on(
            cp,
            "ip -4 -o addr show host0 | awk '{print $4}' | cut -d/ -f1 | head -1",
        );
        let slice = lab.kubectl_ok(
            kubeconfig,
            &["get", "node", cp, "-o", "jsonpath={.spec.podCIDR}"],
        );
        assert!(
            routes.contains(&format!("{slice} via {address} dev ")),
            "w1 has no route to {cp}'s pods {slice} via {address}: {routes}"
        );
    }
    // A web server on the worker, a client on a control plane: the request crosses nodes,
    // and the server sees the client pod's own address (no NAT between pods).
    apply(
        lab,
        kubeconfig,
        "web",
        busybox_pod(
            "web",
            "w1",
            &["/busybox", "httpd", "-f", "-v", "-p", "8080", "-h", "/etc"],
            "Always",
        ),
    );
    let web = pod_in_phase(lab, kubeconfig, "web", "Running");
    let web_ip = web["status"]["podIP"].as_str().unwrap().to_string();
    let url = format!("http://{web_ip}:8080/hostname");
    apply(
        lab,
        kubeconfig,
        "client",
        busybox_pod(
            "client",
            "cp1",
            &["/busybox", "wget", "-O", "-", &url],
            "Never",
        ),
    );
    let client = pod_in_phase(lab, kubeconfig, "client", "Succeeded");
    let client_ip = client["status"]["podIP"].as_str().unwrap().to_string();
    // (Read through the apiserver from each kubelet: the apiserver reaches them too.)
    let answer = lab.kubectl_ok(kubeconfig, &["logs", "client"]);
    assert!(
        answer.lines().any(|l| l == "web"),
        "client pod got: {answer}"
    );
    let served = lab.kubectl_ok(kubeconfig, &["logs", "web"]);
    assert!(
        // (busybox writes `[::ffff:10.244.11.2]:49108: response:200`.)
        served.contains(&format!(":{client_ip}]:")) || served.starts_with(&format!("{client_ip}:")),
        "the web pod did not see the client pod's address {client_ip}: {served}"
    );
    // A node reaches another node's pods too (cp2's host to the pod on w1).
    let from_node = lab.on(
        "cp2",
        &format!(
            "exec 3<>/dev/tcp/{web_ip}/8080 && printf 'GET /hostname HTTP/1.0\\r\\n\\r\\n' >&3 \
             && tail -n 1 <&3"
        ),
    );
    assert_eq!(from_node, "web");

    // A ClusterIP Service in front of the web pod: kube-proxy on every node (a unit kinit
    // runs) sends the Service's address to the pod, here from cp3's host.
    for node in NODES {
        assert_eq!(
            lab.unit_property(node, "kube-proxy", "ActiveState"),
            "active",
            "{node}"
        );
    }
    apply(
        lab,
        kubeconfig,
        "web-service",
        serde_json::json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
        })
        .to_string(),
    );
    let cluster_ip = lab.kubectl_ok(
        kubeconfig,
        &["get", "service", "web", "-o", "jsonpath={.spec.clusterIP}"],
    );
    let mut via_service = String::new();
    wait_for(
        "the web Service answering on cp3",
        Duration::from_secs(60),
        || {
            let out = lab.ssh(
            "cp3",
            &format!(
                "exec 3<>/dev/tcp/{cluster_ip}/80 && printf 'GET /hostname HTTP/1.0\\r\\n\\r\\n' >&3 \
                 && tail -n 1 <&3"
            ),
        );
            via_service = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if via_service == "web" {
                Ok(())
            } else {
                Err(text(&out))
            }
        },
    );
    cluster_ip
}

/// The web Service's and the API's names through CoreDNS, from a pod whose image cp2 pulls
/// from the lab's registry.
pub fn names_resolve_through_coredns(
    lab: &Lab,
    kubeconfig: &Path,
    registry: &LocalRegistry,
    cluster_ip: &str,
) {
    // The Service's name through CoreDNS (pods resolve with the kubelets' clusterDNS), from a
    // pod on cp2: the web Service's address and the API's (`kubernetes.default`). busybox's
    // nslookup speaks DNS itself (its static libc could not load a resolver module). The
    // answers are checked, not its exit status.
    // Its image is not on cp2: containerd pulls it from the lab's registry, over plain HTTP
    // as spec.registries allows (kinit's certs.d/<registry>/hosts.toml).
    let mut dns_pod: Value = serde_json::from_str(&busybox_pod(
        "dns",
        "cp2",
        &[
            "/busybox",
            "sh",
            "-c",
            "/busybox nslookup -type=a web.default.svc.cluster.local; \
             /busybox nslookup -type=a kubernetes.default.svc.cluster.local; exit 0",
        ],
        "Never",
    ))
    .unwrap();
    dns_pod["spec"]["containers"][0]["image"] = PULLED_IMAGE.into();
    dns_pod["spec"]["containers"][0]["imagePullPolicy"] = "IfNotPresent".into();
    let hosts_toml = lab.on(
        "cp2",
        &format!("cat /etc/containerd/certs.d/{REGISTRY}/hosts.toml"),
    );
    assert!(
        hosts_toml.contains(&format!("[host.\"http://{REGISTRY}\"]")),
        "cp2's hosts.toml for {REGISTRY}: {hosts_toml}"
    );
    apply(lab, kubeconfig, "dns", dns_pod.to_string());
    pod_in_phase(lab, kubeconfig, "dns", "Succeeded");
    // The registry's request log: cp2's containerd resolved the tag and fetched the layer.
    let pulls = registry.log_text();
    let by_cp2 = |uri: &str| {
        pulls.lines().any(|l| {
            l.contains("http.request.remoteaddr=\"10.213.234.12:")
                && l.contains("useragent=containerd/")
                && l.contains(uri)
                && l.contains("http.response.status=200")
        })
    };
    assert!(
        by_cp2("/v2/kinit-test/busybox/manifests/1 ")
            && by_cp2("/v2/kinit-test/busybox/blobs/sha256:"),
        "cp2 did not pull the image from the registry: {pulls}"
    );
    let images = lab.on("cp2", "ctr --namespace k8s.io images ls -q");
    assert!(images.contains(PULLED_IMAGE), "images on cp2: {images}");
    let answers = lab.kubectl_ok(kubeconfig, &["logs", "dns"]);
    assert!(
        answers.contains("Server:\t\t10.96.0.10")
            || answers.contains("Server:    10.96.0.10")
            || answers.contains("10.96.0.10:53"),
        "not asked of the cluster DNS: {answers}"
    );
    assert!(
        answers.contains(&format!("Address: {cluster_ip}")),
        "web's name did not give {cluster_ip}: {answers}"
    );
    assert!(
        answers.contains("Address: 10.96.0.1\n") || answers.ends_with("Address: 10.96.0.1"),
        "kubernetes.default did not give 10.96.0.1: {answers}"
    );
    let dns_pods = lab.kubectl_ok(
        kubeconfig,
        &[
            "-n",
            "kube-system",
            "get",
            "pods",
            "-l",
            "k8s-app=kube-dns",
            "-o",
            "jsonpath={.items[*].status.phase}",
        ],
    );
    assert_eq!(dns_pods, "Running Running", "CoreDNS pods");
}
