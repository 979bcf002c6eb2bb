//! Every certificate kinit generates, checked against kubeadm's reference table (kubeadm.md §2-3)
//! with openssl (chains, purposes, key/cert pairs) and x509-parser (CN, O, SANs, usages).

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::SystemTime;

use base64::Engine as _;
use x509_parser::extensions::GeneralName;
use x509_parser::pem::parse_x509_pem;

use kinit::pki::{Mode, generate};
use support::pki::{STACKED, cluster, inventory, openssl};

/// kubeadm's table: file under /etc/kubernetes, CA cert under pki/, CN, O, EKU, SANs.
struct Expected {
    file: &'static str,
    ca: &'static str,
    cn: String,
    o: Vec<&'static str>,
    server: bool,
    client: bool,
    sans: BTreeSet<String>,
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn expected_for(host: &str, address: &str, roles: &str) -> Vec<Expected> {
    let mut out = Vec::new();
    let cp = roles.contains("control-plane");
    let client = |file, ca, cn: &str, o: Vec<&'static str>| Expected {
        file,
        ca,
        cn: cn.to_string(),
        o,
        server: false,
        client: true,
        sans: BTreeSet::new(),
    };
    if cp {
        out.push(Expected {
            file: "pki/apiserver.crt",
            ca: "ca.crt",
            cn: "kube-apiserver".into(),
            o: vec![],
            server: true,
            client: false,
            sans: set(&[
                host,
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
                "10.96.0.1",
                address,
                "192.168.9.100",
                "api.example.com",
                "10.0.0.99",
            ]),
        });
        out.push(client(
            "pki/apiserver-kubelet-client.crt",
            "ca.crt",
            "kube-apiserver-kubelet-client",
            vec!["kubeadm:cluster-admins"],
        ));
        out.push(client(
            "pki/front-proxy-client.crt",
            "front-proxy-ca.crt",
            "front-proxy-client",
            vec![],
        ));
        out.push(client(
            "pki/apiserver-etcd-client.crt",
            "etcd/ca.crt",
            "kube-apiserver-etcd-client",
            vec![],
        ));
        out.push(client(
            "admin.conf",
            "ca.crt",
            "kubernetes-admin",
            vec!["kubeadm:cluster-admins"],
        ));
        out.push(client(
            "controller-manager.conf",
            "ca.crt",
            "system:kube-controller-manager",
            vec![],
        ));
        out.push(client(
            "scheduler.conf",
            "ca.crt",
            "system:kube-scheduler",
            vec![],
        ));
        if host == "cp1" {
            out.push(client(
                "super-admin.conf",
                "ca.crt",
                "kubernetes-super-admin",
                vec!["system:masters"],
            ));
        }
    }
    if roles.contains("etcd") {
        for file in ["pki/etcd/server.crt", "pki/etcd/peer.crt"] {
            out.push(Expected {
                file,
                ca: "etcd/ca.crt",
                cn: host.into(),
                o: vec![],
                server: true,
                client: true,
                sans: set(&[host, "localhost", address, "127.0.0.1", "::1"]),
            });
        }
        out.push(client(
            "pki/etcd/healthcheck-client.crt",
            "etcd/ca.crt",
            "kube-etcd-healthcheck-client",
            vec![],
        ));
    }
    if cp || roles.contains("worker") {
        out.push(client(
            "kubelet.conf",
            "ca.crt",
            &format!("system:node:{host}"),
            vec!["system:nodes"],
        ));
        out.push(client(
            "kube-proxy.conf",
            "ca.crt",
            "system:kube-proxy",
            vec![],
        ));
    }
    out
}

/// The client certificate embedded in a kubeconfig, written out as PEM files.
fn kubeconfig_pair(path: &Path, out: &Path) -> (String, String) {
    let doc: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let user = &doc["users"][0]["user"];
    let decode = |k: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(user[k].as_str().unwrap())
            .unwrap()
    };
    let crt = out.join("embedded.crt");
    let key = out.join("embedded.key");
    std::fs::write(&crt, decode("client-certificate-data")).unwrap();
    std::fs::write(&key, decode("client-key-data")).unwrap();
    let ca = base64::engine::general_purpose::STANDARD
        .decode(
            doc["clusters"][0]["cluster"]["certificate-authority-data"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
    assert!(String::from_utf8(ca).unwrap().contains("BEGIN CERTIFICATE"));
    (crt.display().to_string(), key.display().to_string())
}

fn check_algorithm(algorithm: &str) {
    let c = cluster(
        "stacked",
        algorithm,
        STACKED,
        &["api.example.com", "10.0.0.99"],
    );
    let inv = inventory(&c.config);
    generate(&inv, &Mode::Generate, SystemTime::now()).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for (host, address, roles) in STACKED {
        let root = inv.pki_dir.join(format!("hosts/{host}/etc/kubernetes"));
        for e in expected_for(host, address, roles) {
            let path = root.join(e.file);
            let ca = root.join("pki").join(e.ca);
            let (crt, key) = if e.file.ends_with(".conf") {
                kubeconfig_pair(&path, scratch.path())
            } else {
                let s = path.display().to_string();
                (s.clone(), s.replace(".crt", ".key"))
            };
            let ca = ca.display().to_string();
            // The chain, and the purpose (EKU/KU) as openssl judges it.
            for (wanted, purpose) in [(e.server, "sslserver"), (e.client, "sslclient")] {
                let (ok, out) = openssl(&["verify", "-CAfile", &ca, "-purpose", purpose, &crt]);
                assert_eq!(ok, wanted, "{host} {} as {purpose}: {out}", e.file);
            }
            // The key belongs to the certificate.
            let (ok1, from_key) = openssl(&["pkey", "-in", &key, "-pubout"]);
            let (ok2, from_crt) = openssl(&["x509", "-in", &crt, "-noout", "-pubkey"]);
            assert!(
                ok1 && ok2 && from_key == from_crt,
                "{host} {}: key does not match",
                e.file
            );
            // Subject, SANs and usages.
            let pem_bytes = std::fs::read(&crt).unwrap();
            let (_, pem) = parse_x509_pem(&pem_bytes).unwrap();
            let x = pem.parse_x509().unwrap();
            let cn: Vec<_> = x
                .subject()
                .iter_common_name()
                .map(|a| a.as_str().unwrap().to_string())
                .collect();
            assert_eq!(cn, vec![e.cn.clone()], "{host} {}", e.file);
            let o: Vec<_> = x
                .subject()
                .iter_organization()
                .map(|a| a.as_str().unwrap().to_string())
                .collect();
            assert_eq!(o, e.o, "{host} {}", e.file);
            let mut sans = BTreeSet::new();
            if let Some(ext) = x.subject_alternative_name().unwrap() {
                for n in &ext.value.general_names {
                    match n {
                        GeneralName::DNSName(d) => sans.insert(d.to_string()),
                        GeneralName::IPAddress(b) if b.len() == 4 => sans.insert(
                            std::net::IpAddr::from(<[u8; 4]>::try_from(*b).unwrap()).to_string(),
                        ),
                        GeneralName::IPAddress(b) => sans.insert(
                            std::net::IpAddr::from(<[u8; 16]>::try_from(*b).unwrap()).to_string(),
                        ),
                        other => panic!("unexpected SAN {other:?}"),
                    };
                }
            }
            assert_eq!(sans, e.sans, "{host} {}", e.file);
            let ku = x.key_usage().unwrap().expect("key usage").value;
            assert!(
                ku.digital_signature() && ku.key_encipherment() && !ku.key_cert_sign(),
                "{host} {}",
                e.file
            );
            let eku = x
                .extended_key_usage()
                .unwrap()
                .expect("extended key usage")
                .value;
            assert_eq!(
                (eku.server_auth, eku.client_auth),
                (e.server, e.client),
                "{host} {}",
                e.file
            );
            assert!(!x.is_ca());
            // Backdated like kubeadm; one year by default.
            let v = x.validity();
            let now = time::OffsetDateTime::now_utc();
            assert!(v.not_before.to_datetime() < now - time::Duration::minutes(4));
            let days = (v.not_after.to_datetime() - now).whole_days();
            assert!((364..=365).contains(&days), "{days}");
            checked += 1;
        }
    }
    // Three control-plane+etcd hosts with 12 each, super-admin.conf on cp1, the worker's
    // kubelet.conf and kube-proxy.conf.
    assert_eq!(
        checked,
        3 * 12 + 1 + 2,
        "every expected certificate was checked"
    );
    // The CAs: self-signed, CA:TRUE, cert sign, ten years.
    for (ca, cn) in [
        ("ca", "kubernetes"),
        ("front-proxy-ca", "front-proxy-ca"),
        ("etcd/ca", "etcd-ca"),
    ] {
        let crt = inv.pki_dir.join(format!("{ca}.crt")).display().to_string();
        let (ok, out) = openssl(&["verify", "-CAfile", &crt, &crt]);
        assert!(ok, "{out}");
        let (_, text) = openssl(&["x509", "-in", &crt, "-noout", "-text"]);
        assert!(text.contains(&format!("Subject: CN = {cn}")), "{text}");
        assert!(
            text.contains("CA:TRUE") && text.contains("Certificate Sign"),
            "{text}"
        );
    }
    // sa.pub is the public half of sa.key.
    let sa_key = inv.pki_dir.join("sa.key").display().to_string();
    let (_, derived) = openssl(&["pkey", "-in", &sa_key, "-pubout"]);
    assert_eq!(
        derived,
        std::fs::read_to_string(inv.pki_dir.join("sa.pub")).unwrap()
    );
}

#[test]
fn ecdsa_p256_matches_kubeadm_table() {
    check_algorithm("ecdsa-p256");
}

#[test]
fn ecdsa_p384_matches_kubeadm_table() {
    check_algorithm("ecdsa-p384");
}

#[test]
fn rsa_2048_matches_kubeadm_table() {
    check_algorithm("rsa-2048");
}

#[test]
fn host_trees_hold_exactly_what_each_role_needs() {
    let c = cluster("stacked", "ecdsa-p256", STACKED, &[]);
    let inv = inventory(&c.config);
    generate(&inv, &Mode::Generate, SystemTime::now()).unwrap();
    let files = |host: &str| -> BTreeSet<String> {
        support::pki::hashes(&inv.pki_dir.join(format!("hosts/{host}/etc/kubernetes")))
            .into_keys()
            .collect()
    };
    let worker = files("w1");
    assert_eq!(
        worker,
        set(&["kubelet.conf", "kube-proxy.conf", "pki/ca.crt"])
    );
    let cp2 = files("cp2");
    let want = set(&[
        "admin.conf",
        "controller-manager.conf",
        "kubelet.conf",
        "kube-proxy.conf",
        "scheduler.conf",
        "pki/ca.crt",
        "pki/ca.key",
        "pki/sa.key",
        "pki/sa.pub",
        "pki/front-proxy-ca.crt",
        "pki/apiserver.crt",
        "pki/apiserver.key",
        "pki/apiserver-kubelet-client.crt",
        "pki/apiserver-kubelet-client.key",
        "pki/front-proxy-client.crt",
        "pki/front-proxy-client.key",
        "pki/apiserver-etcd-client.crt",
        "pki/apiserver-etcd-client.key",
        "pki/etcd/ca.crt",
        "pki/etcd/server.crt",
        "pki/etcd/server.key",
        "pki/etcd/peer.crt",
        "pki/etcd/peer.key",
        "pki/etcd/healthcheck-client.crt",
        "pki/etcd/healthcheck-client.key",
    ]);
    assert_eq!(cp2, want);
    let mut cp1_want = want.clone();
    cp1_want.insert("super-admin.conf".into());
    assert_eq!(files("cp1"), cp1_want);
    // Keys 0600, certificates 0644, directories 0700; no CA key but `ca` leaves the PKI dir.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let root = inv.pki_dir.join("hosts/cp1/etc/kubernetes");
    assert_eq!(mode(&root.join("pki/apiserver.key")), 0o600);
    assert_eq!(mode(&root.join("pki/sa.key")), 0o600);
    assert_eq!(mode(&root.join("admin.conf")), 0o600);
    assert_eq!(mode(&root.join("pki/apiserver.crt")), 0o644);
    assert_eq!(mode(&inv.pki_dir.join("etcd/ca.key")), 0o600);
    for d in [
        &inv.pki_dir,
        &inv.pki_dir.join("etcd"),
        &root,
        &root.join("pki/etcd"),
    ] {
        assert_eq!(mode(d), 0o700, "{}", d.display());
    }
}

#[test]
fn external_topology_keeps_etcd_material_on_etcd_hosts() {
    let hosts = [
        ("cp1", "192.168.9.11", "control-plane"),
        ("cp2", "192.168.9.12", "control-plane"),
        ("e1", "192.168.9.31", "etcd"),
        ("e2", "192.168.9.32", "etcd"),
        ("e3", "192.168.9.33", "etcd"),
    ];
    let c = cluster("external", "ecdsa-p256", &hosts, &[]);
    let inv = inventory(&c.config);
    generate(&inv, &Mode::Generate, SystemTime::now()).unwrap();
    let files = |host: &str| -> BTreeSet<String> {
        support::pki::hashes(&inv.pki_dir.join(format!("hosts/{host}/etc/kubernetes")))
            .into_keys()
            .collect()
    };
    assert_eq!(
        files("e2"),
        set(&[
            "pki/etcd/ca.crt",
            "pki/etcd/server.crt",
            "pki/etcd/server.key",
            "pki/etcd/peer.crt",
            "pki/etcd/peer.key",
            "pki/etcd/healthcheck-client.crt",
            "pki/etcd/healthcheck-client.key",
        ])
    );
    let cp2 = files("cp2");
    assert!(cp2.contains("pki/apiserver-etcd-client.key") && cp2.contains("pki/etcd/ca.crt"));
    assert!(
        !cp2.iter()
            .any(|f| f.starts_with("pki/etcd/") && f != "pki/etcd/ca.crt"),
        "{cp2:?}"
    );
    let e1 = inv.pki_dir.join("hosts/e1/etc/kubernetes/pki/etcd");
    let (ok, out) = openssl(&[
        "verify",
        "-CAfile",
        &e1.join("ca.crt").display().to_string(),
        "-purpose",
        "sslserver",
        &e1.join("server.crt").display().to_string(),
    ]);
    assert!(ok, "{out}");
}
