//! Versions read from the real etcd and Kubernetes programs of `hack/build-upstream.sh` (the test
//! fails, saying how to build them, when they are missing), and `up`/`preflight` refusing such a
//! bundle for a cluster of another release before any host is contacted.

mod support;

use std::path::Path;
use std::process::Output;

use assert_cmd::Command;
use support::bundle::*;

fn kinit(args: &[&str]) -> Output {
    Command::cargo_bin("kinit")
        .unwrap()
        .args(args)
        .env_remove("KINIT_CONFIG")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn import(dir: &Path, names: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "-o".to_string(),
        "json".into(),
        "bundle".into(),
        "import".into(),
        dir.display().to_string(),
    ];
    args.extend(names.iter().map(|n| built(n).display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = kinit(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn real_etcd_and_kubernetes_binaries_report_their_release() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bundle");
    let names = [
        "etcd",
        "etcdctl",
        "etcdutl",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kubelet",
        "kube-proxy",
        "kubectl",
        // Importing the static pause also lands the sandbox image kinit builds from it.
        "pause",
    ];
    let entries = import(&dir, &names);
    let image = entries
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "images/pause.tar")
        .unwrap_or_else(|| panic!("no pause image among {entries}"));
    assert_eq!(image["component"], "kubernetes", "{image}");
    // An OCI archive naming the image as kubeadm does, whose layer is the imported pause.
    let index = index_of(&dir.join("images/pause.tar"));
    assert!(
        index.contains(r#""io.containerd.image.name":"registry.k8s.io/pause:3.10.1""#),
        "{index}"
    );
    // etcd's, tagged with its release as kubeadm tags etcd's images.
    let etcd_index = index_of(&dir.join("images/etcd.tar"));
    let etcd_name = format!(
        r#""io.containerd.image.name":"registry.k8s.io/etcd:{}-0""#,
        ETCD.trim_start_matches('v')
    );
    assert!(etcd_index.contains(&etcd_name), "{etcd_index}");
    // The control plane's static pods' images, of the release of their binaries.
    assert!(
        entries
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "images/kube-apiserver.tar" && e["version"] == KUBERNETES),
        "no kube-apiserver image among {entries}"
    );
    for e in entries.as_array().unwrap() {
        let want = if e["component"] == "etcd" {
            ETCD
        } else {
            KUBERNETES
        };
        assert_eq!(e["version"], want, "{e}");
        assert_eq!(e["versionFrom"], "binary");
        assert_eq!(e["arch"], "amd64");
    }
    let v = kinit(&["bundle", "verify", dir.to_str().unwrap()]);
    assert!(v.status.success(), "{}", text(&v.stdout));
    assert!(
        text(&v.stdout).contains("15 files match SHA256SUMS and bundle.yaml"),
        "{}",
        text(&v.stdout)
    );
    // What `import` refuses: a name kinit cannot place.
    let odd = tmp.path().join("kube-thing");
    std::fs::copy(built("kubectl"), &odd).unwrap();
    let out = kinit(&[
        "bundle",
        "import",
        dir.to_str().unwrap(),
        odd.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("kinit does not know which component this is"),
        "{}",
        text(&out.stderr)
    );
}

/// A cluster.yaml (from `kinit init`) using `bundle` at `version`; its hosts do not exist.
/// The CNI plugins the node layer installs, imported by their upstream names as an operator
/// lists them in the directory they were built in (`kinit bundle import DIR bridge ...`): each
/// lands under `cni/` with the CNI release it reports. `bridge` is also iproute2's program on
/// PATH: the version must come from the file named, not from that.
#[test]
fn cni_plugins_are_imported_under_cni_by_their_bare_names() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bundle");
    let plugins = ["bridge", "host-local", "loopback", "portmap"];
    let built_in = built("bridge").parent().unwrap().to_path_buf();
    let mut args = vec!["-o", "json", "bundle", "import", dir.to_str().unwrap()];
    args.extend(plugins);
    let out = Command::cargo_bin("kinit")
        .unwrap()
        .args(&args)
        .current_dir(&built_in)
        .env_remove("KINIT_CONFIG")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let entries: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let got: Vec<(String, String, String)> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_string(),
                e["component"].as_str().unwrap().to_string(),
                e["version"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let version = &got[0].2;
    assert!(version.starts_with("v1."), "{got:?}");
    let want: Vec<(String, String, String)> = plugins
        .iter()
        .map(|p| (format!("cni/{p}"), "cni".to_string(), version.clone()))
        .collect();
    assert_eq!(got, want);
    for p in plugins {
        assert!(dir.join("cni").join(p).is_file(), "{p}");
    }
    let verify = kinit(&["bundle", "verify", dir.to_str().unwrap()]);
    assert!(verify.status.success(), "{}", text(&verify.stdout));
}

fn cluster(dir: &Path, bundle: &Path, version: &str) -> std::path::PathBuf {
    let config = dir.join("cluster.yaml");
    let out = kinit(&["init", "--force", "-f", config.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace(
            "kubernetesVersion: v1.31.4",
            &format!("kubernetesVersion: {version}"),
        )
        .replace("bundle: ./bundle", &format!("bundle: {}", bundle.display()));
    std::fs::write(&config, text).unwrap();
    config
}

#[test]
fn up_and_preflight_refuse_a_bundle_of_another_release_before_any_host() {
    let tmp = tempfile::tempdir().unwrap();
    let bundle = tmp.path().join("bundle");
    import(&bundle, &["etcd", "etcdctl", "kube-apiserver", "kubelet"]);

    // The cluster's Kubernetes differs from the bundle's, and this etcd is too new for it.
    let config = cluster(tmp.path(), &bundle, "v1.33.4");
    for cmd in ["preflight", "up"] {
        let started = std::time::Instant::now();
        let out = kinit(&["-c", config.to_str().unwrap(), cmd]);
        assert_eq!(out.status.code(), Some(1), "{cmd}: {}", text(&out.stderr));
        let err = text(&out.stderr);
        for want in [
            "cannot install this cluster (nothing was done on any host)",
            "kube-apiserver in the bundle is v1.37.2, but kubernetesVersion is v1.33.4",
            "kubelet in the bundle is v1.37.2, but kubernetesVersion is v1.33.4",
        ] {
            assert!(err.contains(want), "{cmd}: {want}\n{err}");
        }
        assert!(
            started.elapsed().as_secs() < 10,
            "{cmd} tried the hosts first"
        );
    }

    // Without an apiserver in the bundle, the cluster's release decides which etcd it takes.
    let etcd_only = tmp.path().join("etcd-only");
    import(&etcd_only, &["etcd", "etcdctl"]);
    let config = cluster(tmp.path(), &etcd_only, "v1.33.4");
    let out = kinit(&["-c", config.to_str().unwrap(), "up", "--dry-run"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains(
            "etcd v3.6.16 is not an etcd Kubernetes v1.33 supports (it takes etcd 3.5.x)"
        ),
        "{}",
        text(&out.stderr)
    );

    // The matching release passes this check (and the run goes on to the hosts, which do not
    // exist: preflight reports them, it does not refuse the bundle).
    let config = cluster(tmp.path(), &bundle, KUBERNETES);
    let out = kinit(&["-c", config.to_str().unwrap(), "preflight"]);
    assert!(
        !text(&out.stderr).contains("cannot install this cluster"),
        "{}",
        text(&out.stderr)
    );
}

/// The `index.json` of an OCI archive.
fn index_of(archive: &std::path::Path) -> String {
    let archive = std::fs::read(archive).unwrap();
    let mut tar = tar::Archive::new(&archive[..]);
    let mut index = String::new();
    for e in tar.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap().to_str() == Some("index.json") {
            std::io::Read::read_to_string(&mut e, &mut index).unwrap();
        }
    }
    index
}
