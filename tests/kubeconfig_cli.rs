//! `kinit kubeconfig FILE | --merge`, checked with the real kubectl (Debian: kubernetes-client,
//! installed by .ci/run): the admin kubeconfig of a generated PKI, written to a file of its own
//! and merged into an existing ~/.kube/config whose other entries must come through unchanged.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;

use assert_cmd::Command;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use predicates::prelude::*;
use serde_json::{Value, json};

fn kinit() -> Command {
    let mut c = Command::cargo_bin("kinit").unwrap();
    c.env_remove("KINIT_CONFIG")
        .env_remove("KUBECONFIG")
        .env("NO_COLOR", "1");
    c
}

/// kubectl with only the kubeconfig this test chooses: HOME pointed at `home`, KUBECONFIG unset.
/// Fails (never skips) without kubectl: CI installs it.
fn kubectl(home: &Path, args: &[&str]) -> String {
    let out = StdCommand::new("kubectl")
        .args(args)
        .env("HOME", home)
        .env_remove("KUBECONFIG")
        .output()
        .unwrap_or_else(|e| {
            panic!("kubectl is needed for this test (apt-get install kubernetes-client): {e}")
        });
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn view(home: &Path, kubeconfig: Option<&Path>) -> Value {
    let mut args = vec!["config", "view", "--raw", "-o", "json"];
    let path;
    if let Some(k) = kubeconfig {
        path = k.display().to_string();
        args.extend(["--kubeconfig", &path]);
    }
    serde_json::from_str(&kubectl(home, &args)).unwrap()
}

fn named<'a>(doc: &'a Value, list: &str, name: &str) -> Vec<&'a Value> {
    doc[list]
        .as_array()
        .map(|a| a.iter().filter(|e| e["name"] == name).collect())
        .unwrap_or_default()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn decoded(v: &Value) -> String {
    String::from_utf8(STANDARD.decode(v.as_str().unwrap()).unwrap()).unwrap()
}

fn backups(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("config.kinit-backup-")
        })
        .collect();
    found.sort();
    found
}

const VIP_URL: &str = "https://192.168.9.100:8443";

/// An operator's kubeconfig before kinit: another cluster with extensions and options, a token
/// user, a context with a namespace and current, and a stale `demo` cluster kinit must replace.
const EXISTING: &str = r#"apiVersion: v1
kind: Config
preferences: {}
clusters:
- name: prod
  cluster:
    server: https://prod.example.com:6443
    certificate-authority-data: bm90IGEgcmVhbCBDQQ==
    tls-server-name: api.prod.example.com
    extensions:
    - name: client.authentication.k8s.io/exec
      extension: {audience: "0123", region: eu-west-1}
- name: demo
  cluster:
    server: https://old.example.com:8443
users:
- name: prod-admin
  user:
    token: "0123456789"
contexts:
- name: prod
  context: {cluster: prod, user: prod-admin, namespace: team-a}
current-context: prod
"#;

#[test]
fn writes_the_admin_kubeconfig_and_merges_it_into_the_operators() {
    let cluster = support::pki::cluster("stacked", "ecdsa-p256", support::pki::STACKED, &[]);
    let dir = cluster.dir.path();
    let config = &cluster.config;
    let pki = dir.join("pki");

    // No PKI yet: refused, naming what is missing.
    kinit()
        .arg("-c")
        .arg(config)
        .args(["kubeconfig", "--merge"])
        .env("HOME", dir)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("pki/admin.conf does not exist"))
        .stderr(predicate::str::contains("kinit certs generate"));

    kinit()
        .arg("-c")
        .arg(config)
        .args(["-q", "certs", "generate"])
        .assert()
        .success();
    let ca_pem = std::fs::read_to_string(pki.join("ca.crt")).unwrap();
    let admin = view(dir, Some(&pki.join("admin.conf")));
    let admin_user = &admin["users"][0]["user"];

    // Neither FILE nor --merge, or both: usage errors (the key is never printed instead).
    kinit()
        .arg("-c")
        .arg(config)
        .arg("kubeconfig")
        .assert()
        .code(2)
        .stdout("");
    kinit()
        .arg("-c")
        .arg(config)
        .args(["kubeconfig", "x.conf", "--merge"])
        .assert()
        .code(2);

    // To a file of its own: 0600, the VIP's URL, the cluster CA, the admin certificate.
    let file = dir.join("admin.kubeconfig");
    let out = kinit()
        .arg("-c")
        .arg(config)
        .arg("kubeconfig")
        .arg(&file)
        .assert()
        .success()
        .stdout(predicate::str::contains(VIP_URL))
        .stdout(predicate::str::contains("kubernetes-admin@demo"))
        .get_output()
        .stdout
        .clone();
    assert!(
        !String::from_utf8_lossy(&out).contains("LS0t"),
        "no key material in the output"
    );
    assert_eq!(mode(&file), 0o600);
    let written = view(dir, Some(&file));
    assert_eq!(written["current-context"], "kubernetes-admin@demo");
    let c = named(&written, "clusters", "demo");
    assert_eq!(c.len(), 1);
    assert_eq!(c[0]["cluster"]["server"], VIP_URL);
    assert_eq!(
        decoded(&c[0]["cluster"]["certificate-authority-data"]),
        ca_pem
    );
    let u = named(&written, "users", "kubernetes-admin@demo");
    assert_eq!(u[0]["user"], *admin_user);
    let x = named(&written, "contexts", "kubernetes-admin@demo");
    assert_eq!(
        x[0]["context"],
        json!({"cluster": "demo", "user": "kubernetes-admin@demo"})
    );
    // An existing file is kept unless --force.
    let before = std::fs::read(&file).unwrap();
    kinit()
        .arg("-c")
        .arg(config)
        .arg("kubeconfig")
        .arg(&file)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("pass --force"));
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    kinit()
        .arg("-c")
        .arg(config)
        .args(["-q", "kubeconfig", "--force"])
        .arg(&file)
        .assert()
        .success()
        .stdout("");
    assert_eq!(std::fs::read(&file).unwrap(), before);
    assert_eq!(mode(&file), 0o600);

    // Merged into ~/.kube/config beside another cluster.
    let home = dir.join("home");
    let kube = home.join(".kube");
    std::fs::create_dir_all(&kube).unwrap();
    let target = kube.join("config");
    std::fs::write(&target, EXISTING).unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
    let original = view(&home, None);
    let merge = || {
        kinit()
            .arg("-c")
            .arg(config)
            .args(["kubeconfig", "--merge"])
            .env("HOME", &home)
            .assert()
            .success()
            .get_output()
            .stdout
            .clone()
    };
    let out = String::from_utf8(merge()).unwrap();
    assert!(out.contains("current-context left at prod"), "{out}");
    assert!(out.contains("replaced") && out.contains("added"), "{out}");
    let merged = view(&home, None);
    // kinit's three entries, once each, with the VIP and the cluster CA.
    let c = named(&merged, "clusters", "demo");
    assert_eq!(
        c.len(),
        1,
        "the stale demo cluster is replaced, not duplicated"
    );
    assert_eq!(c[0]["cluster"]["server"], VIP_URL);
    assert_eq!(
        decoded(&c[0]["cluster"]["certificate-authority-data"]),
        ca_pem
    );
    assert_eq!(
        named(&merged, "users", "kubernetes-admin@demo")[0]["user"],
        *admin_user
    );
    assert_eq!(
        named(&merged, "contexts", "kubernetes-admin@demo")[0]["context"],
        json!({"cluster": "demo", "user": "kubernetes-admin@demo"})
    );
    // Everything else as it was: the other entries, the preferences, the current context.
    for (list, name) in [
        ("clusters", "prod"),
        ("users", "prod-admin"),
        ("contexts", "prod"),
    ] {
        assert_eq!(
            named(&merged, list, name),
            named(&original, list, name),
            "{list} {name}"
        );
    }
    assert_eq!(merged["preferences"], original["preferences"]);
    assert_eq!(merged["current-context"], "prod");
    assert_eq!(
        merged["clusters"].as_array().unwrap().len(),
        2,
        "{merged:#}"
    );
    assert_eq!(merged["users"].as_array().unwrap().len(), 2);
    assert_eq!(merged["contexts"].as_array().unwrap().len(), 2);
    let contexts = kubectl(&home, &["config", "get-contexts", "-o", "name"]);
    let mut contexts: Vec<&str> = contexts.lines().collect();
    contexts.sort();
    assert_eq!(contexts, ["kubernetes-admin@demo", "prod"]);
    assert_eq!(
        kubectl(&home, &["config", "current-context"]).trim(),
        "prod"
    );
    assert_eq!(mode(&target), 0o600);
    let saved = backups(&kube);
    assert_eq!(saved.len(), 1, "{saved:?}");
    assert_eq!(std::fs::read_to_string(&saved[0]).unwrap(), EXISTING);
    assert_eq!(mode(&saved[0]), 0o600);
    assert!(!kube.join("config.lock").exists());

    // Twice is once: the same entries, no duplicates, nothing rewritten, no second backup.
    let bytes = std::fs::read(&target).unwrap();
    let out = String::from_utf8(merge()).unwrap();
    assert!(out.contains("nothing was written"), "{out}");
    assert_eq!(view(&home, None), merged);
    assert_eq!(std::fs::read(&target).unwrap(), bytes);
    assert_eq!(backups(&kube).len(), 1);

    // A file without a current-context gets kinit's; KUBECONFIG's first file is the one written.
    let first = dir.join("first.yaml");
    let second = dir.join("second.yaml");
    kinit()
        .arg("-c")
        .arg(config)
        .args(["-o", "json", "kubeconfig", "--merge"])
        .env(
            "KUBECONFIG",
            format!("{}:{}", first.display(), second.display()),
        )
        .env("HOME", &home)
        .assert()
        .success()
        .stdout(predicate::str::contains(r#""currentContextSet":true"#))
        .stdout(predicate::str::contains(r#""created":true"#));
    assert!(!second.exists());
    assert_eq!(mode(&first), 0o600);
    let fresh = view(&home, Some(&first));
    assert_eq!(fresh["current-context"], "kubernetes-admin@demo");
    assert_eq!(
        named(&fresh, "clusters", "demo")[0]["cluster"]["server"],
        VIP_URL
    );
}

#[test]
fn a_pki_that_no_longer_matches_the_config_is_refused() {
    let cluster = support::pki::cluster("stacked", "ecdsa-p256", support::pki::STACKED, &[]);
    let dir = cluster.dir.path();
    let config = &cluster.config;
    kinit()
        .arg("-c")
        .arg(config)
        .args(["-q", "certs", "generate"])
        .assert()
        .success();
    // The VIP moved since the PKI was made: the kubeconfig would point at the old one.
    let text = std::fs::read_to_string(config)
        .unwrap()
        .replace("192.168.9.100", "192.168.9.200");
    std::fs::write(config, text).unwrap();
    let file = dir.join("admin.kubeconfig");
    kinit()
        .arg("-c")
        .arg(config)
        .arg("kubeconfig")
        .arg(&file)
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "its server is https://192.168.9.100:8443 but the config's controlPlaneEndpoint is https://192.168.9.200:8443",
        ))
        .stderr(predicate::str::contains("kinit certs generate"));
    assert!(!file.exists());
    // Regenerated, it goes through with the new VIP.
    kinit()
        .arg("-c")
        .arg(config)
        .args(["-q", "certs", "generate"])
        .assert()
        .success();
    kinit()
        .arg("-c")
        .arg(config)
        .arg("kubeconfig")
        .arg(&file)
        .assert()
        .success()
        .stdout(predicate::str::contains("https://192.168.9.200:8443"));
}

/// kubectl with a `KUBECONFIG` list (HOME pointed at `home`); its output and whether it worked.
fn kubectl_list(home: &Path, list: &str, args: &[&str]) -> (bool, String) {
    let out = StdCommand::new("kubectl")
        .args(args)
        .env("HOME", home)
        .env("KUBECONFIG", list)
        .output()
        .unwrap_or_else(|e| {
            panic!("kubectl is needed for this test (apt-get install kubernetes-client): {e}")
        });
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// `--merge` as kubectl behaves with a KUBECONFIG list: new entries go to the first file that
/// exists (where kubectl puts them too), the current-context another file sets is left alone,
/// kubectl's lock (`<path>.lock`, the link's own name) keeps kinit off, root keeps the owner;
/// devices and links to nothing are refused, never replaced.
#[test]
fn merge_follows_kubectls_list_and_refuses_what_is_not_a_file() {
    let cluster = support::pki::cluster("stacked", "ecdsa-p256", support::pki::STACKED, &[]);
    let dir = cluster.dir.path();
    let config = &cluster.config;
    kinit()
        .arg("-c")
        .arg(config)
        .args(["-q", "certs", "generate"])
        .assert()
        .success();
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();

    // missing : existing (a link to a file) : one that sets the current context.
    let missing = dir.join("missing.yaml");
    let real = dir.join("real.yaml");
    let existing = dir.join("existing.yaml");
    let third = dir.join("third.yaml");
    std::fs::write(&real, "apiVersion: v1\nkind: Config\nclusters: []\n").unwrap();
    std::os::unix::fs::symlink(&real, &existing).unwrap();
    std::fs::write(&third, EXISTING).unwrap();
    let list = format!(
        "{}:{}:{}",
        missing.display(),
        existing.display(),
        third.display()
    );
    let merge = |list: &str| {
        kinit()
            .arg("-c")
            .arg(config)
            .args(["-o", "json", "kubeconfig", "--merge"])
            .env("KUBECONFIG", list)
            .env("HOME", &home)
            .assert()
    };

    // kubectl's lock on the link's own name holds kinit off, and kubectl too.
    let lock = dir.join("existing.yaml.lock");
    std::fs::write(&lock, "").unwrap();
    merge(&list)
        .failure()
        .stderr(predicate::str::contains("existing.yaml.lock"));
    let (ok, said) = kubectl_list(
        &home,
        &list,
        &[
            "config",
            "set-cluster",
            "probe",
            "--server=https://10.0.0.1",
        ],
    );
    assert!(!ok, "kubectl wrote despite its lock: {said}");
    std::fs::remove_file(&lock).unwrap();

    // Root merging into another user's file keeps it theirs.
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if root {
        std::os::unix::fs::chown(&real, Some(4321), Some(8765)).unwrap();
    }
    merge(&list)
        .success()
        .stdout(predicate::str::contains(r#""currentContextSet":false"#))
        .stdout(predicate::str::contains(r#""currentContext":"prod""#));
    assert!(!missing.exists(), "the first file that exists is written");
    assert!(
        std::fs::symlink_metadata(&existing)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(std::fs::read_to_string(&third).unwrap(), EXISTING);
    let written = view(&home, Some(&real));
    assert_eq!(written["current-context"], "", "{written:#}");
    assert_eq!(named(&written, "clusters", "demo").len(), 1);
    if root {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(&real).unwrap();
        assert_eq!((m.uid(), m.gid()), (4321, 8765));
    }
    assert_eq!(mode(&real), 0o600);
    // kubectl, with the same list, puts a new entry in the same file and still uses prod.
    let (ok, said) = kubectl_list(
        &home,
        &list,
        &[
            "config",
            "set-cluster",
            "probe",
            "--server=https://10.0.0.1",
        ],
    );
    assert!(ok, "{said}");
    assert_eq!(
        named(&view(&home, Some(&real)), "clusters", "probe").len(),
        1,
        "kubectl wrote elsewhere"
    );
    assert!(!missing.exists());
    let (ok, said) = kubectl_list(&home, &list, &["config", "current-context"]);
    assert!(ok && said.trim() == "prod", "{said}");
    let (ok, said) = kubectl_list(&home, &list, &["config", "get-contexts", "-o", "name"]);
    assert!(ok && said.contains("kubernetes-admin@demo"), "{said}");

    // Not regular files: refused with or without --force, nothing replaced.
    let dangling = dir.join("dangling.yaml");
    std::os::unix::fs::symlink(dir.join("nowhere.yaml"), &dangling).unwrap();
    for target in [Path::new("/dev/stdout"), Path::new("/dev/null"), &dangling] {
        for force in [false, true] {
            let mut cmd = kinit();
            cmd.arg("-c").arg(config).arg("kubeconfig").arg(target);
            if force {
                cmd.arg("--force");
            }
            cmd.assert()
                .failure()
                .stdout("")
                .stderr(predicate::str::contains("not a regular file"));
        }
    }
    assert!(
        std::fs::symlink_metadata(&dangling)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(!dir.join("nowhere.yaml").exists());
    merge(dangling.to_str().unwrap())
        .failure()
        .stderr(predicate::str::contains("not a regular file"));
}
