//! certs/*.json are real cfssl input: Debian's cfssl creates a CA from `certs/ca-csr.json`, kinit
//! signs with that CA (bring your own CA), and cfssl issues every certificate of the table from
//! `certs/ca-config.json` and the filled-in CSRs. The profiles of the two sets must agree.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::SystemTime;

use kinit::config::KeyAlgorithm;
use kinit::pki::{self, Action, Mode, generate, inspect, profiles::Profiles, table::Output};
use support::pki::{STACKED, cluster, inventory, openssl};

fn certs_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("certs")
}

/// `cfssl gencert ARGS` in `dir`; returns (cert PEM, key PEM) from its JSON output.
fn cfssl(dir: &Path, args: &[&str]) -> (String, String) {
    let out = Command::new("cfssl")
        .arg("gencert")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("cfssl is installed (Debian golang-cfssl)");
    assert!(
        out.status.success(),
        "cfssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    (
        doc["cert"].as_str().unwrap().to_string(),
        doc["key"].as_str().unwrap().to_string(),
    )
}

fn byo_ca_and_compare(algorithm: &str, key: KeyAlgorithm) {
    let c = cluster("stacked", algorithm, STACKED, &["api.example.com"]);
    let pki = c.dir.path().join("pki");
    std::fs::create_dir_all(&pki).unwrap();
    let work = tempfile::tempdir().unwrap();
    // The CA from certs/ca-csr.json as shipped, with the key algorithm under test.
    let mut ca_csr: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(certs_dir().join("ca-csr.json")).unwrap())
            .unwrap();
    ca_csr["key"] = pki::cfssl::key(key);
    std::fs::write(work.path().join("ca-csr.json"), ca_csr.to_string()).unwrap();
    let (ca_pem, ca_key) = cfssl(work.path(), &["-initca", "ca-csr.json"]);
    std::fs::write(pki.join("ca.crt"), &ca_pem).unwrap();
    std::fs::write(pki.join("ca.key"), &ca_key).unwrap();

    let inv = inventory(&c.config);
    let report = generate(&inv, &Mode::Generate, SystemTime::now()).unwrap();
    let ca_event = report.events.iter().find(|e| e.item == "ca").unwrap();
    assert_eq!(
        ca_event.action,
        Action::Kept,
        "the operator's CA is used, not replaced"
    );
    assert_eq!(std::fs::read_to_string(pki.join("ca.crt")).unwrap(), ca_pem);
    let apiserver = pki
        .join("hosts/cp1/etc/kubernetes/pki/apiserver.crt")
        .display()
        .to_string();
    let (ok, out) = openssl(&[
        "verify",
        "-CAfile",
        &pki.join("ca.crt").display().to_string(),
        &apiserver,
    ]);
    assert!(ok, "{out}");

    // cfssl issues the same table from the same profiles; compare each kind once.
    std::fs::copy(
        certs_dir().join("ca-config.json"),
        work.path().join("ca-config.json"),
    )
    .unwrap();
    for id in pki::CaId::ALL {
        let stem = id.stem();
        std::fs::copy(
            pki.join(format!("{stem}.crt")),
            work.path().join(format!("{}.crt", id.name())),
        )
        .unwrap();
        std::fs::copy(
            pki.join(format!("{stem}.key")),
            work.path().join(format!("{}.key", id.name())),
        )
        .unwrap();
    }
    let profiles = Profiles::embedded().unwrap();
    let specs = pki::certificates(&inv, &profiles).unwrap();
    let mut compared = std::collections::BTreeSet::new();
    for spec in &specs {
        if !compared.insert(spec.name) {
            continue;
        }
        let csr = pki::cfssl::csr_json(
            &spec.common_name,
            &spec.organizations,
            &spec.sans,
            key,
            None,
        );
        let csr_file = format!("{}-filled-csr.json", spec.csr);
        std::fs::write(work.path().join(&csr_file), csr).unwrap();
        let ca = spec.ca.name();
        let (theirs, _) = cfssl(
            work.path(),
            &[
                "-ca",
                &format!("{ca}.crt"),
                "-ca-key",
                &format!("{ca}.key"),
                "-config",
                "ca-config.json",
                "-profile",
                spec.profile,
                &csr_file,
            ],
        );
        let ours = match &spec.output {
            Output::Pair { .. } => std::fs::read_to_string(pki.join(spec.stored("crt"))).unwrap(),
            Output::Kubeconfig { .. } => {
                pki::kubeconfig::parse(&std::fs::read_to_string(pki.join(spec.stored(""))).unwrap())
                    .unwrap()
                    .cert_pem
            }
        };
        let ca_spki = {
            let ca_pem = std::fs::read(pki.join(format!("{}.crt", spec.ca.stem()))).unwrap();
            inspect::read(&ca_pem, None).unwrap().spki_der
        };
        let a = inspect::read(ours.as_bytes(), Some(&ca_spki)).unwrap();
        let b = inspect::read(theirs.as_bytes(), Some(&ca_spki)).unwrap();
        let label = spec.label();
        assert!(a.signed_by_ca && b.signed_by_ca, "{label}");
        assert_eq!(a.common_name, b.common_name, "{label}");
        assert_eq!(a.organizations, b.organizations, "{label}");
        assert_eq!(a.sans, b.sans, "{label}");
        assert_eq!(a.key_usages, b.key_usages, "{label}");
        assert_eq!(a.extended_key_usages, b.extended_key_usages, "{label}");
        assert_eq!(a.is_ca, b.is_ca, "{label}");
        assert_eq!(a.algorithm, b.algorithm, "{label}");
        let days = |i: &inspect::CertInfo| (i.not_after - i.not_before).whole_days();
        assert!(
            (days(&a) - days(&b)).abs() <= 1,
            "{label}: {} vs {} days",
            days(&a),
            days(&b)
        );
    }
    assert_eq!(compared.len(), 13, "every kind of certificate was compared");
}

#[test]
fn cfssl_ecdsa_ca_is_used_and_profiles_match_cfssl() {
    byo_ca_and_compare("ecdsa-p256", KeyAlgorithm::EcdsaP256);
}

#[test]
fn cfssl_rsa_ca_is_used_and_profiles_match_cfssl() {
    byo_ca_and_compare("rsa-2048", KeyAlgorithm::Rsa2048);
}
