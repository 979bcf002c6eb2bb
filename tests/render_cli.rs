//! `kinit render` end to end: files under `<out>/<host>/<path>`, modes, the manifest, --host,
//! re-rendering after a config change.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use assert_cmd::Command as Kinit;

fn kinit() -> Kinit {
    let mut c = Kinit::cargo_bin("kinit").unwrap();
    c.env_remove("KINIT_CONFIG").env("NO_COLOR", "1");
    c
}

/// The example's config in `dir`, with the registry CA file it names (relative to it).
fn config_copy(dir: &Path, example: &str) -> std::path::PathBuf {
    let path = dir.join("cluster.yaml");
    let fixture = support::render::fixture(example);
    std::fs::copy(&fixture, &path).unwrap();
    let ca = fixture.with_file_name("registry-ca.pem");
    std::fs::copy(&ca, dir.join("registry-ca.pem")).unwrap();
    path
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn render_writes_every_host_next_to_the_config_with_a_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_copy(dir.path(), "stacked");
    kinit()
        .arg("-c")
        .arg(&config)
        .arg("render")
        .assert()
        .success()
        .stdout(predicates::str::contains("cp1 (20 files)"))
        .stdout(predicates::str::contains("nothing was sent to any host"));
    let out = dir.path().join("rendered");
    for host in ["cp1", "cp2", "cp3", "worker1"] {
        assert!(out.join(host).join("MANIFEST.yaml").is_file(), "{host}");
    }
    let apiserver = out.join("cp2/etc/kubernetes/manifests/kube-apiserver.yaml");
    assert_eq!(mode(&apiserver), 0o600);
    assert_eq!(
        mode(&out.join("cp2/etc/keepalived/check_apiserver.sh")),
        0o755
    );
    assert_eq!(mode(&out.join("cp2/etc/haproxy/haproxy.cfg")), 0o644);

    // The manifest's sha256 is the file's, as sha256sum computes it.
    let manifest: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(out.join("cp2/MANIFEST.yaml")).unwrap())
            .unwrap();
    let entries = manifest["files"].as_sequence().unwrap();
    assert_eq!(entries.len(), 20);
    let entry = entries
        .iter()
        .find(|e| e["path"] == "/etc/kubernetes/manifests/kube-apiserver.yaml")
        .unwrap();
    let sum = Command::new("sha256sum").arg(&apiserver).output().unwrap();
    let sum = String::from_utf8(sum.stdout).unwrap();
    assert_eq!(entry["sha256"].as_str().unwrap(), &sum[..64]);
    assert_eq!(entry["mode"], "0600");
    assert_eq!(entry["owner"], "root:root");
    let haproxy = entries
        .iter()
        .find(|e| e["path"] == "/etc/haproxy/haproxy.cfg")
        .unwrap();
    // A new haproxy.cfg is reloaded (open connections kept), not restarted.
    assert_eq!(haproxy["reload"], "haproxy");
    assert!(haproxy["restart"].is_null());
}

#[test]
fn render_one_host_and_refuse_an_unknown_one() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_copy(dir.path(), "external");
    let out = dir.path().join("out");
    let assert = kinit()
        .args(["-o", "json", "-c"])
        .arg(&config)
        .args(["render", "--host", "etcd2", "--out"])
        .arg(&out)
        .assert()
        .success();
    let json: serde_json::Value = serde_json::from_slice(&assert.get_output().stdout).unwrap();
    assert_eq!(json["hosts"].as_array().unwrap().len(), 1);
    assert_eq!(json["hosts"][0]["host"], "etcd2");
    let hosts: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(hosts, vec!["etcd2"]);
    assert!(out.join("etcd2/etc/systemd/system/etcd.service").is_file());
    // Scheduled snapshots (the example sets `snapshots: {}`): the script is executable, a new
    // timer restarts the timer, and nothing starts the service (its timer does).
    assert_eq!(
        mode(&out.join("etcd2/usr/local/lib/kinit/etcd-snapshot.sh")),
        0o755
    );
    let manifest: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(out.join("etcd2/MANIFEST.yaml")).unwrap())
            .unwrap();
    let entry = |path: &str| {
        manifest["files"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|e| e["path"] == path)
            .unwrap_or_else(|| panic!("{path} not in the manifest"))
            .clone()
    };
    let timer = entry("/etc/systemd/system/kinit-etcd-snapshot.timer");
    assert_eq!(timer["restart"], "kinit-etcd-snapshot.timer");
    assert_eq!(timer["mode"], "0644");
    let service = entry("/etc/systemd/system/kinit-etcd-snapshot.service");
    assert!(service["restart"].is_null() && service["reload"].is_null());
    assert!(entry("/usr/local/lib/kinit/etcd-snapshot.sh")["restart"].is_null());

    kinit()
        .arg("-c")
        .arg(&config)
        .args(["render", "--host", "etcd9", "--out"])
        .arg(&out)
        .assert()
        .code(2)
        .stderr(predicates::str::contains("no host named `etcd9`"));
}

#[test]
fn rerendering_after_a_mode_change_removes_files_no_longer_rendered() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_copy(dir.path(), "stacked");
    let render = || {
        kinit()
            .arg("-q")
            .arg("-c")
            .arg(&config)
            .arg("render")
            .assert()
            .success();
    };
    render();
    let cp1 = dir.path().join("rendered/cp1");
    assert!(cp1.join("etc/kubernetes/manifests/etcd.yaml").is_file());
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("mode: static-pod", "mode: systemd");
    std::fs::write(&config, text).unwrap();
    render();
    assert!(!cp1.join("etc/kubernetes/manifests/etcd.yaml").exists());
    assert!(cp1.join("etc/systemd/system/etcd.service").is_file());
    assert!(cp1.join("etc/etcd/etcd.conf.yml").is_file());
}

#[test]
fn an_invalid_config_renders_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_copy(dir.path(), "stacked");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("kubernetesVersion: v1.31.4", "kubernetesVersion: 1.31");
    std::fs::write(&config, text).unwrap();
    kinit()
        .arg("-c")
        .arg(&config)
        .arg("render")
        .assert()
        .code(1)
        .stderr(predicates::str::contains("kubernetesVersion"))
        .stderr(predicates::str::contains("nothing rendered"));
    assert!(!dir.path().join("rendered").exists());
}

#[test]
fn a_registry_ca_that_is_missing_or_no_certificate_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_copy(dir.path(), "external");
    let ca = dir.path().join("registry-ca.pem");
    for (content, why) in [
        (None, "No such file"),
        (Some("not a certificate\n"), "holds no PEM certificate"),
    ] {
        match content {
            None => std::fs::remove_file(&ca).unwrap(),
            Some(text) => std::fs::write(&ca, text).unwrap(),
        }
        let out = kinit()
            .arg("-c")
            .arg(&config)
            .args(["render", "--out"])
            .arg(dir.path().join("out"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&out.stderr);
        for part in [
            "spec.registries",
            "registry.k8s.io",
            &ca.display().to_string(),
            why,
        ] {
            assert!(stderr.contains(part), "{part} not in: {stderr}");
        }
        assert!(!dir.path().join("out").exists(), "nothing is written");
    }
}
