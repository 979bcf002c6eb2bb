//! Re-running generate changes nothing; a config change re-issues only what it affects (file
//! hashes by sha256sum); CAs are never replaced; renew re-issues only what it is asked to; the
//! CLI reports expiry and never prints key material.

mod support;

use std::collections::BTreeMap;
use std::time::SystemTime;

use assert_cmd::Command;
use kinit::pki::{Action, Mode, generate};
use support::pki::{STACKED, cluster, hashes, inventory, write_config};

fn run(config: &std::path::Path, mode: &Mode) -> kinit::pki::GenerateReport {
    generate(&inventory(config), mode, SystemTime::now()).unwrap()
}

/// Paths whose hash changed, appeared or disappeared.
fn changed(before: &BTreeMap<String, String>, after: &BTreeMap<String, String>) -> Vec<String> {
    let mut out: Vec<String> = after
        .iter()
        .filter(|(p, h)| before.get(*p) != Some(*h))
        .map(|(p, _)| p.clone())
        .collect();
    out.extend(before.keys().filter(|p| !after.contains_key(*p)).cloned());
    out.sort();
    out
}

#[test]
fn rerun_changes_nothing_and_new_hosts_touch_only_their_own_files() {
    let c = cluster("stacked", "ecdsa-p256", STACKED, &[]);
    let pki = c.dir.path().join("pki");
    run(&c.config, &Mode::Generate);
    let h1 = hashes(&pki);
    let again = run(&c.config, &Mode::Generate);
    assert!(!again.changed(), "{:?}", again.events);
    assert!(again.events.iter().all(|e| e.action == Action::Kept));
    assert_eq!(hashes(&pki), h1);

    // A new worker: only its own tree appears.
    let mut hosts = STACKED.to_vec();
    hosts.push(("w2", "192.168.9.22", "worker"));
    write_config(&c.config, "stacked", "ecdsa-p256", &hosts, &[]);
    run(&c.config, &Mode::Generate);
    let h2 = hashes(&pki);
    let diff = changed(&h1, &h2);
    assert_eq!(
        diff,
        vec![
            "hosts/w2/etc/kubernetes/kube-proxy.conf",
            "hosts/w2/etc/kubernetes/kubelet.conf",
            "hosts/w2/etc/kubernetes/pki/ca.crt"
        ]
    );

    // A new control-plane + etcd host: its own tree, nothing else.
    hosts.push(("cp4", "192.168.9.14", "control-plane, etcd"));
    write_config(&c.config, "stacked", "ecdsa-p256", &hosts, &[]);
    let report = run(&c.config, &Mode::Generate);
    let h3 = hashes(&pki);
    let diff = changed(&h2, &h3);
    assert!(!diff.is_empty());
    assert!(diff.iter().all(|p| p.starts_with("hosts/cp4/")), "{diff:?}");
    let created: Vec<&str> = report
        .events
        .iter()
        .filter(|e| e.action == Action::Created)
        .map(|e| e.item.as_str())
        .collect();
    assert_eq!(
        created,
        vec![
            "apiserver (cp4)",
            "etcd-server (cp4)",
            "etcd-peer (cp4)",
            "controller-manager.conf (cp4)",
            "scheduler.conf (cp4)",
            "kubelet.conf (cp4)",
            "kube-proxy.conf (cp4)"
        ]
    );

    // A new extra SAN: exactly the apiserver pairs.
    write_config(
        &c.config,
        "stacked",
        "ecdsa-p256",
        &hosts,
        &["api.example.com"],
    );
    run(&c.config, &Mode::Generate);
    let h4 = hashes(&pki);
    let want: Vec<String> = ["cp1", "cp2", "cp3", "cp4"]
        .iter()
        .flat_map(|h| {
            ["crt", "key"].map(|ext| format!("hosts/{h}/etc/kubernetes/pki/apiserver.{ext}"))
        })
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(changed(&h3, &h4), want);

    // Renew one certificate: its files change everywhere, nothing else does.
    let report = run(
        &c.config,
        &Mode::Renew(["etcd-healthcheck-client".to_string()].into()),
    );
    assert_eq!(
        report
            .events
            .iter()
            .filter(|e| matches!(e.action, Action::Reissued(_)))
            .count(),
        1
    );
    let h5 = hashes(&pki);
    let diff = changed(&h4, &h5);
    assert!(
        diff.iter().all(|p| p.contains("etcd/healthcheck-client.")),
        "{diff:?}"
    );
    // shared pair + copies on the four etcd hosts, crt and key each
    assert_eq!(diff.len(), 2 * 5, "{diff:?}");
    let unknown = generate(
        &inventory(&c.config),
        &Mode::Renew(["etcd-ca".to_string()].into()),
        SystemTime::now(),
    );
    assert!(
        unknown
            .unwrap_err()
            .to_string()
            .contains("not a certificate of this cluster")
    );
    assert_eq!(hashes(&pki), h5);
}

#[test]
fn a_new_endpoint_reissues_apiserver_and_rewrites_kubeconfigs_without_new_keys() {
    let c = cluster("stacked", "ecdsa-p256", STACKED, &[]);
    let pki = c.dir.path().join("pki");
    run(&c.config, &Mode::Generate);
    let h1 = hashes(&pki);
    let text = std::fs::read_to_string(&c.config)
        .unwrap()
        .replace("192.168.9.100", "192.168.9.101");
    std::fs::write(&c.config, text).unwrap();
    let report = run(&c.config, &Mode::Generate);
    let action = |item: &str| {
        report
            .events
            .iter()
            .find(|e| e.item == item)
            .unwrap()
            .action
            .clone()
    };
    assert!(
        matches!(action("apiserver (cp1)"), Action::Reissued(r) if r.contains("+192.168.9.101") && r.contains("-192.168.9.100"))
    );
    assert!(matches!(action("admin.conf"), Action::Rewritten(_)));
    assert!(matches!(action("kubelet.conf (w1)"), Action::Rewritten(_)));
    assert_eq!(
        action("kubelet.conf (cp1)"),
        Action::Kept,
        "control-plane kubelets use the local apiserver"
    );
    assert_eq!(action("ca"), Action::Kept);
    let h2 = hashes(&pki);
    for ca in [
        "ca.crt",
        "ca.key",
        "etcd/ca.key",
        "front-proxy-ca.key",
        "sa.key",
    ] {
        assert_eq!(h1[ca], h2[ca]);
    }
    // The rewritten admin.conf keeps its certificate and key.
    let admin = std::fs::read_to_string(pki.join("admin.conf")).unwrap();
    let doc: serde_yaml::Value = serde_yaml::from_str(&admin).unwrap();
    assert_eq!(
        doc["clusters"][0]["cluster"]["server"].as_str(),
        Some("https://192.168.9.101:8443")
    );
    assert_ne!(h1["admin.conf"], h2["admin.conf"]);
    assert!(
        !changed(&h1, &h2)
            .iter()
            .any(|p| p.ends_with(".key") && !p.ends_with("apiserver.key"))
    );
}

#[test]
fn a_ca_is_never_replaced() {
    let c = cluster("stacked", "ecdsa-p256", STACKED, &[]);
    let pki = c.dir.path().join("pki");
    run(&c.config, &Mode::Generate);
    let h1 = hashes(&pki);
    std::fs::remove_file(pki.join("etcd/ca.key")).unwrap();
    let err = generate(&inventory(&c.config), &Mode::Generate, SystemTime::now()).unwrap_err();
    assert!(err.to_string().contains("etcd/ca.crt exists but"), "{err}");
    std::fs::write(
        pki.join("etcd/ca.key"),
        std::fs::read(pki.join("ca.key")).unwrap(),
    )
    .unwrap();
    let err = generate(&inventory(&c.config), &Mode::Generate, SystemTime::now()).unwrap_err();
    assert!(err.to_string().contains("does not belong to"), "{err}");
    let mut h2 = hashes(&pki);
    h2.remove("etcd/ca.key");
    let mut h1 = h1;
    h1.remove("etcd/ca.key");
    assert_eq!(h1, h2, "nothing was written");
}

#[test]
fn cli_generate_check_expiration_and_renew() {
    let c = cluster("stacked", "ecdsa-p256", STACKED, &[]);
    let cfg = c.config.display().to_string();
    let out = Command::cargo_bin("kinit")
        .unwrap()
        .args(["-c", &cfg, "-v", "certs", "generate"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let json = Command::cargo_bin("kinit")
        .unwrap()
        .args(["-c", &cfg, "-o", "json", "certs", "generate"])
        .output()
        .unwrap();
    for o in [&out, &json] {
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(
            !all.contains("PRIVATE KEY") && !all.contains("BEGIN") && !all.contains("LS0t"),
            "{all}"
        );
    }
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("created    apiserver (cp1)"), "{text}");

    let out = Command::cargo_bin("kinit")
        .unwrap()
        .args(["-c", &cfg, "-o", "json", "certs", "check-expiration"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let certs = doc["certificates"].as_array().unwrap();
    assert_eq!(certs.len(), 29, "one row per table entry");
    assert!(certs.iter().all(|r| r["state"] == "valid"));
    let apiserver = certs
        .iter()
        .find(|r| r["name"] == "apiserver" && r["host"] == "cp2")
        .unwrap();
    assert_eq!(apiserver["ca"], "ca");
    let left = apiserver["residualSeconds"].as_i64().unwrap();
    assert!((364 * 86400..=365 * 86400).contains(&left), "{left}");
    let cas = doc["authorities"].as_array().unwrap();
    assert_eq!(cas.len(), 3);
    assert!(
        cas.iter()
            .all(|r| r["residualSeconds"].as_i64().unwrap() > 9 * 365 * 86400)
    );

    let out = Command::cargo_bin("kinit")
        .unwrap()
        .args(["-c", &cfg, "certs", "check-expiration"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("CERTIFICATE "), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("etcd-server") && l.contains("364d") && l.ends_with("etcd-ca")),
        "{text}"
    );

    let pki = c.dir.path().join("pki");
    std::fs::remove_file(pki.join("hosts/cp3/etc/kubernetes/pki/etcd/peer.crt")).unwrap();
    let out = Command::cargo_bin("kinit")
        .unwrap()
        .args(["-c", &cfg, "certs", "check-expiration"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .any(|l| l.starts_with("etcd-peer") && l.contains("cp3") && l.contains("missing"))
    );

    let before = hashes(&pki);
    let out = Command::cargo_bin("kinit")
        .unwrap()
        .args(["-c", &cfg, "certs", "renew", "admin.conf"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let diff = changed(&before, &hashes(&pki));
    assert_eq!(
        diff,
        vec![
            "admin.conf",
            "hosts/cp1/etc/kubernetes/admin.conf",
            "hosts/cp2/etc/kubernetes/admin.conf",
            "hosts/cp3/etc/kubernetes/admin.conf"
        ]
    );
    let out = Command::cargo_bin("kinit")
        .unwrap()
        .args(["-c", &cfg, "certs", "renew", "bogus"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("renewable: all, apiserver"));
}

#[test]
fn a_ca_moved_away_is_recreated_and_only_its_certificates_follow() {
    let c = cluster("stacked", "ecdsa-p256", STACKED, &[]);
    let pki = c.dir.path().join("pki");
    run(&c.config, &Mode::Generate);
    let h1 = hashes(&pki);
    std::fs::remove_file(pki.join("front-proxy-ca.crt")).unwrap();
    std::fs::remove_file(pki.join("front-proxy-ca.key")).unwrap();
    let report = run(&c.config, &Mode::Generate);
    let action = |item: &str| {
        report
            .events
            .iter()
            .find(|e| e.item == item)
            .unwrap()
            .action
            .clone()
    };
    assert_eq!(action("front-proxy-ca"), Action::Created);
    assert_eq!(
        action("front-proxy-client"),
        Action::Reissued("its CA front-proxy-ca is new".into())
    );
    assert_eq!(action("ca"), Action::Kept);
    let diff = changed(&h1, &hashes(&pki));
    assert!(diff.iter().all(|p| p.contains("front-proxy-")), "{diff:?}");
    // the two CA files, the client pair, and on three hosts the CA cert and the client pair
    assert_eq!(diff.len(), 2 + 2 + 3 * 3, "{diff:?}");
}
