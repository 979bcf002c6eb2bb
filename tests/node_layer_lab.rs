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
//! worker's pod keeps its container. Runs as root; the lab is removed when the test ends
//! however it ends.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

mod hang_guard;
mod lab_support;
use lab_support::*;

const NODES: [&str; 5] = ["cp1", "cp2", "cp3", "w1", "w2"];
const SUBNET: &str = "10.213.234.0/24";
/// The test registry: the lab bridge's address (the subnet's first), a port of its own.
const REGISTRY: &str = "10.213.234.1:5234";
/// The test image as only the registry serves it.
const PULLED_IMAGE: &str = "10.213.234.1:5234/kinit-test/busybox:1";

/// A pod of the bundle's pause image pinned to `node`, never pulled.
fn pause_pod(name: &str, node: &str) -> String {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "nodeName": node,
            "containers": [{
                "name": "pause",
                "image": "registry.k8s.io/pause:3.10.1",
                "imagePullPolicy": "Never",
                "resources": {"limits": {"cpu": "50m", "memory": "32Mi"}},
            }],
        },
    })
    .to_string()
}

/// The test image: Debian's static busybox (an HTTP server and client in one binary), packed
/// by the bundle's image code and imported on `nodes` the way kinit imports the pause image.
const WEB_IMAGE: &str = "kinit.test/busybox:1";

fn import_web_image(lab: &Lab, nodes: &[&str]) {
    let archive = web_image_archive(WEB_IMAGE);
    for node in nodes {
        let inside = "/var/tmp/kinit-test-busybox.tar";
        let path = lab
            .dir()
            .join("nodes")
            .join(node)
            .join("root")
            .join(&inside[1..]);
        std::fs::write(&path, &archive).unwrap();
        lab.on(
            node,
            &format!("ctr --namespace k8s.io images import {inside} >/dev/null"),
        );
    }
}

/// The test image built as `import_web_image` builds it, under `reference`.
fn web_image_archive(reference: &str) -> Vec<u8> {
    let binary = std::fs::read("/bin/busybox").expect("/bin/busybox (Debian's busybox-static)");
    kinit::bundle::image::oci_archive(&kinit::bundle::image::StaticImage {
        reference,
        binary_name: "busybox",
        binary: &binary,
        user: "65534:65534",
        arch: "amd64",
    })
    .unwrap()
    .0
}

/// Debian's docker-registry, serving plain HTTP on the lab bridge's own address (the subnet's
/// first, which the lab gave the bridge). The nodes reach it only through `spec.registries`:
/// without its hosts.toml, containerd would speak HTTPS to it and fail. Stopped, its storage
/// removed, when dropped.
struct LocalRegistry {
    child: Child,
    /// `10.213.234.1:5234`.
    address: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl LocalRegistry {
    fn start(address: &str) -> LocalRegistry {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
                 http:\n  addr: {address}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let log = dir.path().join("registry.log");
        let child = Command::new("docker-registry")
            .args(["serve", config.to_str().unwrap()])
            .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
            .stderr(Stdio::from(
                std::fs::OpenOptions::new().append(true).open(&log).unwrap(),
            ))
            .spawn()
            .expect("docker-registry (Debian's docker-registry package)");
        let registry = LocalRegistry {
            child,
            address: address.to_string(),
            log,
            _dir: dir,
        };
        wait_for("the registry answers", Duration::from_secs(20), || {
            let out = curl(&["-o", "/dev/null", &format!("http://{address}/v2/")]);
            if out.status.success() {
                Ok(())
            } else {
                Err(format!("{}\n{}", text(&out), registry.log_text()))
            }
        });
        registry
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Push an OCI image archive (as kinit builds them) as `repository:tag`, the registry API
    /// way: each blob uploaded under its digest, then the manifest.
    fn push(&self, archive: &[u8], repository: &str, tag: &str) {
        let mut blobs = std::collections::BTreeMap::new();
        let mut index = Value::Null;
        let mut tar = tar::Archive::new(archive);
        for entry in tar.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().to_string_lossy().to_string();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
            if path == "index.json" {
                index = serde_json::from_slice(&data).unwrap();
            } else if let Some(hex) = path.strip_prefix("blobs/sha256/") {
                blobs.insert(format!("sha256:{hex}"), data);
            }
        }
        let manifest = &index["manifests"][0];
        let manifest_digest = manifest["digest"].as_str().unwrap();
        let scratch = tempfile::tempdir().unwrap();
        let base = format!("http://{}/v2/{repository}", self.address);
        for (digest, data) in blobs.iter().filter(|(d, _)| *d != manifest_digest) {
            let upload = curl(&[
                "-X",
                "POST",
                "-o",
                "/dev/null",
                "-w",
                "%header{location}",
                &format!("{base}/blobs/uploads/"),
            ]);
            assert!(
                upload.status.success(),
                "upload of {digest}: {}",
                text(&upload)
            );
            let location = String::from_utf8(upload.stdout).unwrap();
            let sep = if location.contains('?') { '&' } else { '?' };
            let file = scratch.path().join("blob");
            std::fs::write(&file, data).unwrap();
            let put = curl(&[
                "-X",
                "PUT",
                "-H",
                "Content-Type: application/octet-stream",
                "--data-binary",
                &format!("@{}", file.display()),
                &format!("{location}{sep}digest={digest}"),
            ]);
            assert!(put.status.success(), "blob {digest}: {}", text(&put));
        }
        let file = scratch.path().join("manifest");
        std::fs::write(&file, &blobs[manifest_digest]).unwrap();
        let put = curl(&[
            "-X",
            "PUT",
            "-H",
            &format!("Content-Type: {}", manifest["mediaType"].as_str().unwrap()),
            "--data-binary",
            &format!("@{}", file.display()),
            &format!("{base}/manifests/{tag}"),
        ]);
        assert!(put.status.success(), "manifest: {}", text(&put));
    }
}

impl Drop for LocalRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// curl, failing on an HTTP error, never through a proxy (the registry is on the lab bridge).
fn curl(args: &[&str]) -> std::process::Output {
    Command::new("curl")
        .args(["-fsS", "--noproxy", "*", "--max-time", "30"])
        .args(args)
        .output()
        .expect("curl")
}

/// A pod of the test image on `node` running `command`; control planes are tolerated.
fn busybox_pod(name: &str, node: &str, command: &[&str], restart: &str) -> String {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": name}},
        "spec": {
            "nodeName": node,
            "restartPolicy": restart,
            "tolerations": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}],
            "containers": [{
                "name": name,
                "image": WEB_IMAGE,
                "imagePullPolicy": "Never",
                "command": command,
            }],
        },
    })
    .to_string()
}

/// Two replicas of the web server that may run on any node but cp2, and a budget keeping one
/// of them available: a drain may evict one at a time. (cp2 must pull the test image from the
/// registry later: its layers imported there would leave containerd nothing to fetch.)
fn kept_deployment() -> String {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "kept", "namespace": "default"},
                "spec": {
                    "replicas": 2,
                    "selector": {"matchLabels": {"app": "kept"}},
                    "template": {
                        "metadata": {"labels": {"app": "kept"}},
                        "spec": {
                            "tolerations": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}],
                            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                                "nodeSelectorTerms": [{"matchExpressions": [{
                                    "key": "kubernetes.io/hostname", "operator": "NotIn", "values": ["cp2"],
                                }]}],
                            }}},
                            "terminationGracePeriodSeconds": 2,
                            "containers": [{
                                "name": "web",
                                "image": WEB_IMAGE,
                                "imagePullPolicy": "Never",
                                "command": ["/busybox", "httpd", "-f", "-p", "8080", "-h", "/etc"],
                            }],
                        },
                    },
                },
            },
            {
                "apiVersion": "policy/v1",
                "kind": "PodDisruptionBudget",
                "metadata": {"name": "kept", "namespace": "default"},
                "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "kept"}}},
            },
        ],
    })
    .to_string()
}

/// Pod `name`'s node, container and restart count.
fn container_of(lab: &Lab, kubeconfig: &std::path::Path, name: &str) -> String {
    lab.kubectl_ok(
        kubeconfig,
        &[
            "get",
            "pod",
            name,
            "-o",
            "jsonpath={.spec.nodeName} {.status.containerStatuses[0].containerID} \
             {.status.containerStatuses[0].restartCount}",
        ],
    )
}

/// The upgrade from the previous minor release to the bundle's, under a client reading and
/// writing through the VIP: control planes one at a time, then each kubelet, its node cordoned
/// and drained first (the Deployment's pods evicted one at a time as its budget allows; the
/// bare pod left running), Ready again on the new release and uncordoned.
fn upgrade_nodes_under_load(lab: &Lab, kubeconfig: &std::path::Path, old: &str, new: &str) {
    import_web_image(lab, &["cp1", "cp3", "w1", "w2"]);
    lab.create_probe_configmap(kubeconfig, "n=start");
    apply(lab, kubeconfig, "kept", kept_deployment());
    apply(
        lab,
        kubeconfig,
        "bare",
        busybox_pod(
            "bare",
            "w1",
            &["/busybox", "httpd", "-f", "-p", "8080", "-h", "/etc"],
            "Always",
        ),
    );
    lab.kubectl_ok(
        kubeconfig,
        &["rollout", "status", "deployment/kept", "--timeout=120s"],
    );
    pod_in_phase(lab, kubeconfig, "bare", "Running");
    let bare_before = container_of(lab, kubeconfig, "bare");

    upgrade_to_own_bundle(lab, new);
    // The plan says which nodes will be drained, in their order.
    let (code, _, plan) = lab.up(&["--dry-run"]);
    assert_eq!(code, 0, "dry run: {plan}");
    let expected: Vec<String> = NODES.iter().map(|n| format!("{n} ({old})")).collect();
    assert!(
        plan.contains(&format!("uncordoned once Ready: {}", expected.join(", "))),
        "no drain plan naming {expected:?}: {plan}"
    );
    // spec.rollout.maxUnavailableWorkers: 2: the two workers go together, after the control
    // planes.
    assert!(
        plan.contains("one control plane at a time, then up to 2 workers together"),
        "{plan}"
    );
    let ((code, _, all), took, seen) =
        ApiLoop::around(&lab.dir().join("pki"), PROBE_CONFIGMAP, || lab.up(&[]));
    let events: Vec<Value> = all
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let drains: Vec<&str> = events
        .iter()
        .filter_map(|e| e["message"].as_str())
        .filter(|m| m.contains("for its kubelet's upgrade"))
        .collect();
    println!(
        "figures: upgrade {old} -> {new} (3 control planes, 5 kubelets drained, 2 workers \
         together): \
         up {:.1} s, {} requests (reads and writes through the VIP), {} failed, longest gap {} \
         ms; {drains:?}",
        took.as_secs_f64(),
        seen.requests,
        seen.failed,
        seen.longest_gap.as_millis()
    );
    assert_eq!(code, 0, "the upgrade: {all}");
    assert_eq!(
        seen.failed, 0,
        "failed requests during the upgrade: {seen:?}"
    );
    assert!(seen.requests > 20, "{seen:?}");
    // The kubelets: each control plane alone, then both workers together, each drained first.
    let order = events
        .iter()
        .find(|e| e["event"] == "restart-order" && e["what"] == "kubelet")
        .unwrap_or_else(|| panic!("no kubelet restart order: {all}"));
    assert_eq!(order["hosts"], serde_json::json!(NODES), "{order}");
    assert_eq!(
        order["together"],
        serde_json::json!([["w1", "w2"]]),
        "{order}"
    );
    let kubelet_steps: Vec<&str> = events
        .iter()
        .filter(|e| e["what"] == "kubelet")
        .filter_map(|e| e["event"].as_str())
        .filter(|e| e.starts_with("restart-") && *e != "restart-order")
        .collect();
    let mut expected_steps = ["restart-started", "restart-finished"].repeat(3);
    expected_steps.extend(["restart-started", "restart-started"]);
    expected_steps.extend(["restart-finished", "restart-finished"]);
    assert_eq!(kubelet_steps, expected_steps, "{all}");
    // No kubelet (nor kube-proxy) is ever newer than an apiserver: they move only once every
    // apiserver runs the new release, in the kubelets phase, not the node phase.
    let at = |what: &str, event: &str| event_positions(&events, what, event);
    let apiservers_done = at("kube-apiserver", "restart-finished");
    assert_eq!(apiservers_done.len(), 3, "{all}");
    let node_side_started: Vec<usize> = ["kubelet", "kube-proxy"]
        .iter()
        .flat_map(|w| at(w, "restart-started"))
        .collect();
    assert!(node_side_started.len() >= 4, "{all}");
    assert!(
        node_side_started
            .iter()
            .all(|i| apiservers_done.iter().all(|a| a < i)),
        "a kubelet or kube-proxy restarted before every apiserver ran {new}: {all}"
    );
    assert!(
        events.iter().any(|e| e["phase"] == "node"
            && e["message"].as_str().is_some_and(|m| m.starts_with(
                "kubelet, kube-proxy move to the new Kubernetes release in phase kubelets"
            ))),
        "{all}"
    );
    assert!(
        events
            .iter()
            .filter(|e| e["event"] == "restart-started" && e["what"] == "kubelet")
            .all(|e| e["phase"] == "kubelets"),
        "{all}"
    );
    assert_eq!(drains.len(), 5, "a drain note per node: {all}");
    assert!(
        drains
            .iter()
            .all(|d| d.contains(&format!("({old} -> {new})"))),
        "{drains:?}"
    );
    // Both of the Deployment's pods were evicted from wherever they ran; the bare pod was not.
    let evicted: Vec<&str> = drains
        .iter()
        .filter_map(|d| d.split_once("evicted ").map(|(_, e)| e))
        .flat_map(|e| e.split(", "))
        .collect();
    assert!(
        evicted
            .iter()
            .filter(|p| p.starts_with("default/kept-"))
            .count()
            >= 2,
        "{drains:?}"
    );
    assert!(!evicted.contains(&"default/bare"), "{drains:?}");
    assert_eq!(
        container_of(lab, kubeconfig, "bare"),
        bare_before,
        "the bare pod lost its container"
    );
    // Every node on the new release, schedulable, without kinit's cordon mark.
    let nodes: Value =
        serde_json::from_str(&lab.kubectl_ok(kubeconfig, &["get", "nodes", "-o", "json"])).unwrap();
    for n in nodes["items"].as_array().unwrap() {
        assert_eq!(n["status"]["nodeInfo"]["kubeletVersion"], new, "{n}");
        assert_ne!(n["spec"]["unschedulable"], true, "{n}");
        assert!(
            n["metadata"]["annotations"]
                .get("kinit.io/cordoned-for")
                .is_none(),
            "{n}"
        );
    }
    lab.kubectl_ok(
        kubeconfig,
        &["rollout", "status", "deployment/kept", "--timeout=120s"],
    );
    lab.kubectl_ok(
        kubeconfig,
        &[
            "delete",
            "--cascade=foreground",
            "deployment/kept",
            "pdb/kept",
            "pod/bare",
        ],
    );
}

/// Wait until pod `name` is in `phase`; its object.
fn pod_in_phase(lab: &Lab, kubeconfig: &std::path::Path, name: &str, phase: &str) -> Value {
    let mut pod = Value::Null;
    wait_for(
        &format!("pod {name} {phase}"),
        Duration::from_secs(120),
        || {
            let (ok, out, all) = lab.kubectl(kubeconfig, &["get", "pod", name, "-o", "json"]);
            if !ok {
                return Err(all);
            }
            pod = serde_json::from_str(&out).map_err(|e| e.to_string())?;
            if pod["status"]["phase"] == phase {
                Ok(())
            } else {
                Err(pod["status"].to_string())
            }
        },
    );
    pod
}

fn apply(lab: &Lab, kubeconfig: &std::path::Path, name: &str, manifest: String) {
    let path = lab.dir().join(format!("{name}.json"));
    std::fs::write(&path, manifest).unwrap();
    lab.kubectl_ok(kubeconfig, &["apply", "-f", path.to_str().unwrap()]);
}

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
    upgrade_nodes_under_load(&lab, &kubeconfig, &old, &new);
    let nodes: Value =
        serde_json::from_str(&lab.kubectl_ok(&kubeconfig, &["get", "nodes", "-o", "json"]))
            .unwrap();
    let items = nodes["items"].as_array().unwrap();
    let mut names: Vec<&str> = items
        .iter()
        .map(|n| n["metadata"]["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, NODES, "{nodes}");
    for n in items {
        let ready = n["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap();
        assert_eq!(ready["status"], "True", "{}", n["metadata"]["name"]);
        // The kubelet runs the bundle's release, with kinit's containerd.
        assert!(
            n["status"]["nodeInfo"]["containerRuntimeVersion"]
                .as_str()
                .unwrap()
                .starts_with("containerd://2."),
            "{}",
            n["status"]["nodeInfo"]
        );
    }
    // `kinit status` shows every node Ready with its slice, and nothing wrong.
    let report = lab.wait_healthy(lab.config.to_str().unwrap());
    let status_nodes = report["controlPlane"]["nodes"].as_array().unwrap();
    assert_eq!(status_nodes.len(), 5, "{report:#}");
    assert!(
        status_nodes.iter().all(|n| n["node"]["ready"] == true
            && n["node"]["podCidr"]
                .as_str()
                .unwrap()
                .starts_with("10.244.")),
        "{report:#}"
    );

    // The node's credentials are the certificate kinit issued for it.
    let subject = lab.on(
        "w1",
        "grep client-certificate-data /etc/kubernetes/kubelet.conf | awk '{print $2}' \
         | base64 -d | openssl x509 -noout -subject -nameopt RFC2253",
    );
    assert_eq!(subject, "subject=CN=system:node:w1,O=system:nodes");
    // containerd holds the pause image kinit built, under the name the config pins.
    let images = lab.on(
        "w1",
        "ctr --namespace k8s.io images ls -q | grep pause; crictl images | grep -c pause",
    );
    assert!(
        images.contains("registry.k8s.io/pause:3.10.1"),
        "images on w1: {images}"
    );

    // A pod on the worker: created through the API, run by its kubelet, addressed from w1's
    // slice of the pod subnet (its address 10.213.234.14: slice 14).
    let manifest = lab.dir().join("probe-pod.json");
    std::fs::write(&manifest, pause_pod("probe", "w1")).unwrap();
    lab.kubectl_ok(&kubeconfig, &["apply", "-f", manifest.to_str().unwrap()]);
    let w1_address = lab.on("w1", "ip -4 -o addr show host0 | awk '{print $4}'");
    let last_octet = w1_address
        .split('/')
        .next()
        .unwrap()
        .rsplit('.')
        .next()
        .unwrap()
        .to_string();
    let mut pod = Value::Null;
    wait_for("the probe pod Running", Duration::from_secs(120), || {
        let (ok, out, all) = lab.kubectl(&kubeconfig, &["get", "pod", "probe", "-o", "json"]);
        if !ok {
            return Err(all);
        }
        pod = serde_json::from_str(&out).map_err(|e| e.to_string())?;
        if pod["status"]["phase"] == "Running" {
            Ok(())
        } else {
            Err(pod["status"].to_string())
        }
    });
    // The Node records the same slice (kinit's, not the controller-manager's).
    let cidr = lab.kubectl_ok(
        &kubeconfig,
        &["get", "node", "w1", "-o", "jsonpath={.spec.podCIDR}"],
    );
    assert_eq!(cidr, format!("10.244.{last_octet}.0/24"));
    let ip = pod["status"]["podIP"].as_str().unwrap();
    assert!(
        ip.starts_with(&format!("10.244.{last_octet}.")),
        "pod IP {ip} is not in w1's slice 10.244.{last_octet}.0/24"
    );
    // The pod's limits are the kernel's: its memory cgroup says 32 MiB.
    let limit = lab.on(
        "w1",
        "cat $(find /sys/fs/cgroup/memory/ -path '*pod*' -name memory.limit_in_bytes \
         | xargs grep -l '^33554432$' | head -1)",
    );
    assert_eq!(limit, "33554432");

    // kubeadm's labels and taint on the control planes, none on the worker.
    let taints = |node: &str| {
        lab.kubectl_ok(
            &kubeconfig,
            &["get", "node", node, "-o", "jsonpath={.spec.taints[*].key}"],
        )
    };
    assert_eq!(taints("cp1"), "node-role.kubernetes.io/control-plane");
    assert_eq!(taints("w1"), "");
    let roles = lab.kubectl_ok(
        &kubeconfig,
        &[
            "get",
            "nodes",
            "-l",
            "node-role.kubernetes.io/control-plane",
            "-o",
            "name",
        ],
    );
    assert_eq!(roles, "node/cp1\nnode/cp2\nnode/cp3");

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
            &kubeconfig,
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
        &lab,
        &kubeconfig,
        "web",
        busybox_pod(
            "web",
            "w1",
            &["/busybox", "httpd", "-f", "-v", "-p", "8080", "-h", "/etc"],
            "Always",
        ),
    );
    let web = pod_in_phase(&lab, &kubeconfig, "web", "Running");
    let web_ip = web["status"]["podIP"].as_str().unwrap().to_string();
    let url = format!("http://{web_ip}:8080/hostname");
    apply(
        &lab,
        &kubeconfig,
        "client",
        busybox_pod(
            "client",
            "cp1",
            &["/busybox", "wget", "-O", "-", &url],
            "Never",
        ),
    );
    let client = pod_in_phase(&lab, &kubeconfig, "client", "Succeeded");
    let client_ip = client["status"]["podIP"].as_str().unwrap().to_string();
    // (Read through the apiserver from each kubelet: the apiserver reaches them too.)
    let answer = lab.kubectl_ok(&kubeconfig, &["logs", "client"]);
    assert!(
        answer.lines().any(|l| l == "web"),
        "client pod got: {answer}"
    );
    let served = lab.kubectl_ok(&kubeconfig, &["logs", "web"]);
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
        &lab,
        &kubeconfig,
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
        &kubeconfig,
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
    apply(&lab, &kubeconfig, "dns", dns_pod.to_string());
    pod_in_phase(&lab, &kubeconfig, "dns", "Succeeded");
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
    let answers = lab.kubectl_ok(&kubeconfig, &["logs", "dns"]);
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
        &kubeconfig,
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

    // A second run finds everything as it should be.
    lab.assert_up_is_a_no_op(&[]);

    // A registry that leaves cluster.yaml leaves the nodes too: `up` removes the certs.d
    // directory it rendered for it; one kinit did not render stays.
    let by_hand = "/etc/containerd/certs.d/by-hand.test";
    lab.on(
        "w1",
        &format!(
            "mkdir -p {by_hand} && echo 'server = \"https://by-hand.test\"' > {by_hand}/hosts.toml"
        ),
    );
    let now = std::fs::read_to_string(&lab.config).unwrap();
    let without_registry = now.replacen(
        &format!(
            "\n  registries:\n    - {{name: \"{REGISTRY}\", mirrors: [\"http://{REGISTRY}\"], insecure: true}}\n"
        ),
        "\n",
        1,
    );
    assert_ne!(
        without_registry,
        now,
        "no registries in {}",
        lab.config.display()
    );
    std::fs::write(&lab.config, without_registry).unwrap();
    let (code, summary, all) = lab.up(&[]);
    assert_eq!(code, 0, "up without the registry: {all}");
    assert_eq!(
        summary["filesRemoved"], 5,
        "one certs.d entry per node: {summary}"
    );
    for node in NODES {
        let left = lab.on(node, "ls /etc/containerd/certs.d");
        assert!(!left.contains(REGISTRY), "{node} keeps {REGISTRY}: {left}");
    }
    assert!(
        lab.on("w1", &format!("cat {by_hand}/hosts.toml"))
            .contains("by-hand.test"),
        "the directory kinit did not render went too"
    );

    // `drill node w1`: w1's kubelet stops for the default 70 s; the control plane marks the
    // Node NotReady after its grace period, and Ready again once the kubelet is back, while
    // the API through the VIP and etcd writes go on unharmed and w1's pod keeps its container.
    let web_container = || {
        lab.kubectl_ok(
            &kubeconfig,
            &[
                "get",
                "pod",
                "web",
                "-o",
                "jsonpath={.spec.nodeName} {.status.containerStatuses[0].containerID} \
                 {.status.containerStatuses[0].restartCount}",
            ],
        )
    };
    let before = web_container();
    assert!(before.starts_with("w1 containerd://"), "web: {before}");
    let out = lab.kinit(&["-o", "json", "drill", "node", "w1", "--yes"]);
    let drill: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    println!(
        "figures: drill node w1: NotReady after {} ms, Ready again {} ms after the kubelet's \
         start, healthy at {} ms; API {} requests {} failed, longest gap {} ms; etcd {} writes \
         {} failed, longest gap {} ms",
        drill["nodeNotReadyAfterMs"],
        drill["recoveredAfterMs"],
        drill["healthyAfterMs"],
        drill["api"]["requests"],
        drill["api"]["failed"],
        drill["api"]["longestGapMs"],
        drill["etcdWrites"]["requests"],
        drill["etcdWrites"]["failed"],
        drill["etcdWrites"]["longestGapMs"],
    );
    assert!(out.status.success(), "drill node w1: {}", text(&out));
    assert_eq!(drill["verdict"]["pass"], true, "{drill}");
    assert_eq!(drill["target"]["unit"], "kubelet", "{drill}");
    assert_eq!(drill["unitStateDuring"], "inactive", "{drill}");
    assert_eq!(drill["unitStateAfter"], "active", "{drill}");
    let not_ready = drill["nodeNotReadyAfterMs"]
        .as_u64()
        .expect("NotReady seen");
    assert!(
        (30_000..=70_000).contains(&not_ready),
        "NotReady {not_ready} ms after the stop: not the grace period's doing? {drill}"
    );
    assert!(drill["recoveredAfterMs"].as_u64().is_some(), "{drill}");
    // Losing a kubelet costs the control plane nothing.
    assert_eq!(drill["api"]["failed"], 0, "{drill}");
    assert_eq!(drill["etcdWrites"]["failed"], 0, "{drill}");
    assert_eq!(web_container(), before, "w1's pod lost its container");

    // SIGTERM while w1's kubelet is stopped by a drill: kinit starts it again before it exits
    // (143), says it was interrupted and frees the lock; the Node is Ready again after.
    let out = lab
        .drill_stopping(&["node", "w1", "--duration", "120"], "w1", "kubelet")
        .terminate();
    assert_eq!(lab.unit_state("w1", "kubelet"), "active", "{}", text(&out));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert_eq!(r["interrupted"], true, "{}", text(&out));
    for node in NODES {
        let lock = kinit::host_paths::LOCK_DIR;
        assert_eq!(
            lab.on(node, &format!("test -e {lock} && echo held || echo free")),
            "free",
            "{node}"
        );
    }
    wait_for(
        "w1 Ready after the interrupted drill",
        Duration::from_secs(60),
        || {
            let ready = lab.kubectl_ok(
                &kubeconfig,
                &[
                    "get",
                    "node",
                    "w1",
                    "-o",
                    "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
                ],
            );
            (ready.trim() == "True").then_some(()).ok_or(ready)
        },
    );

    // `remove w1` takes the worker out: its Node drained and deleted, the host reset (the
    // pod's processes stop, containerd's shims outliving containerd; containerd's store is
    // emptied, a mount point here that stays; the kubelet's directory, the CNI bridge and the
    // binaries go), and the nodes that stay no longer route w1's pod slice.
    let w1_slice = lab
        .kubectl_ok(
            &kubeconfig,
            &["get", "node", "w1", "-o", "jsonpath={.spec.podCIDR}"],
        )
        .trim()
        .to_string();
    assert!(
        lab.on("cp1", "ip route show proto 77").contains(&w1_slice),
        "cp1 had no route to w1's slice {w1_slice}"
    );
    assert_ne!(
        lab.on("w1", "pgrep -c -f '[c]ontainerd-shim-runc-v2' || true"),
        "0",
        "no shim ran before the reset"
    );
    let out = lab.kinit(&["-o", "json", "remove", "w1", "--yes"]);
    assert!(out.status.success(), "remove w1: {}", text(&out));
    // The API answered: the Node was drained first (its pods evicted) and deleted after.
    let report = result_event(&out, "removed");
    let node = &report["reset"]["nodes"][0];
    assert_eq!(node["host"], "w1", "{report}");
    assert_eq!(node["deleted"], true, "{report}");
    // (A CoreDNS replica may have been on w1 too: kube-system's pods are not this test's.)
    let mut evicted: Vec<&str> = node["drained"]["evicted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .filter(|p| p.starts_with("default/"))
        .collect();
    evicted.sort();
    assert_eq!(evicted, ["default/probe", "default/web"], "{report}");
    // Every node that stays was updated one at a time: the pod network's routes set again
    // without w1's slice.
    for node in ["cp1", "cp2", "cp3", "w2"] {
        let routes = lab.on(node, "ip route show proto 77");
        assert!(
            !routes.contains(&w1_slice) && !routes.is_empty(),
            "{node} still routes w1's slice (or nothing): {routes}"
        );
    }
    let updated: Vec<&str> = report["updates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["host"].as_str().unwrap())
        .collect();
    assert_eq!(updated, ["cp1", "cp2", "cp3", "w2"], "{report}");
    let (found, _, all) = lab.kubectl(&kubeconfig, &["get", "node", "w1"]);
    assert!(!found && all.contains("NotFound"), "{all}");
    let (found, _, all) = lab.kubectl(&kubeconfig, &["get", "pod", "web"]);
    assert!(!found && all.contains("NotFound"), "{all}");
    assert_eq!(
        // (Bracketed: the patterns must not match the shell running them.)
        lab.on(
            "w1",
            "pgrep -c -f '[c]ontainerd|[k]ubelet|/[p]ause' || true"
        ),
        "0",
        "processes left on w1: {}",
        lab.on("w1", "ps -eo pid,cmd")
    );
    let left = lab.on(
        "w1",
        "ls -A /var/lib/containerd; ls -A /var/lib/kubelet; for p in /run/containerd /var/lib/cni \
         /usr/local/bin/containerd /usr/local/bin/kubelet /usr/local/sbin/runc /opt/cni/bin/bridge \
         /etc/containerd/config.toml /etc/cni/net.d/10-kinit-bridge.conflist \
         /var/lib/kinit/images/pause.tar /var/lib/kinit/images/coredns.tar /sys/class/net/cni0 /usr/local/lib/kinit/pod-network.sh \
         /usr/local/bin/kube-proxy /etc/kubernetes/kube-proxy.conf /etc/containerd/certs.d; do [ -e \"$p\" ] && echo \"$p\"; done; ip route show proto 77; \
         iptables -w -t nat -S | grep 'kinit-pod-network\\|KUBE-SERVICES'; \
         grep -c ' /var/lib/kubelet/\\| /run/containerd/' /proc/self/mountinfo || true",
    );
    assert_eq!(left, "0", "left behind on w1");

    // As the report says, w1 leaves cluster.yaml.
    let config = std::fs::read_to_string(&lab.config).unwrap();
    let without_w1: String = config
        .lines()
        .filter(|l| !l.contains("{name: w1,"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(without_w1, config, "no w1 in {}", lab.config.display());
    std::fs::write(&lab.config, without_w1).unwrap();

    // cp3 gone for good (powered off): `remove cp3 --unreachable` never contacts it, and
    // deletes its Node (no drain: nothing there answers), so no pod stays bound to a node
    // that will not come back.
    let stop = lab.kinit_lab(&["stop", "cp3"]);
    assert!(stop.status.success(), "{}", text(&stop));
    let out = lab.kinit(&["-o", "json", "remove", "cp3", "--unreachable", "--yes"]);
    assert!(
        out.status.success(),
        "remove cp3 --unreachable: {}",
        text(&out)
    );
    let report = result_event(&out, "removed");
    assert!(
        report["reset"].is_null(),
        "cp3 was not to be reset: {report}"
    );
    let gone = &report["goneNodes"][0];
    assert_eq!(
        (&gone["host"], &gone["deleted"], &gone["drained"]),
        (&Value::from("cp3"), &Value::from(true), &Value::Null),
        "{report}"
    );
    let (found, _, all) = lab.kubectl(&kubeconfig, &["get", "node", "cp3"]);
    assert!(!found && all.contains("NotFound"), "{all}");
}
