//! The apiserver certificates checked the way a TLS client checks them (rustls' WebPKI verifier,
//! aws-lc-rs provider): valid for the VIP, its own host, the service names and IP and the extra
//! SANs; not valid for anything else.

mod support;

use std::sync::Arc;
use std::time::SystemTime;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

use kinit::pki::{Mode, generate};
use support::pki::{STACKED, cluster, inventory};

#[test]
fn apiserver_certificate_verifies_for_its_names_only() {
    let c = cluster("stacked", "ecdsa-p256", STACKED, &["api.example.com"]);
    let inv = inventory(&c.config);
    generate(&inv, &Mode::Generate, SystemTime::now()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(inv.pki_dir.join("ca.crt")).unwrap())
        .unwrap();
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .unwrap();
    for (host, address, _) in &STACKED[..3] {
        let crt = inv
            .pki_dir
            .join(format!("hosts/{host}/etc/kubernetes/pki/apiserver.crt"));
        let ee = CertificateDer::from_pem_file(&crt).unwrap();
        let verify = |name: &str| {
            let name = ServerName::try_from(name.to_string()).unwrap();
            verifier.verify_server_cert(&ee, &[], &name, &[], UnixTime::now())
        };
        for good in [
            "192.168.9.100",
            address,
            "kubernetes",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
            "10.96.0.1",
            host,
            "api.example.com",
        ] {
            assert!(
                verify(good).is_ok(),
                "{host}: should verify for {good}: {:?}",
                verify(good)
            );
        }
        let other = if *host == "cp1" {
            "192.168.9.12"
        } else {
            "192.168.9.11"
        };
        for bad in [
            "evil.example.com",
            "127.0.0.1",
            other,
            "kubernetes.default.svc.other.local",
        ] {
            let err = verify(bad).expect_err(bad);
            assert!(
                matches!(
                    err,
                    rustls::Error::InvalidCertificate(
                        rustls::CertificateError::NotValidForNameContext { .. }
                    )
                ),
                "{host} {bad}: {err:?}"
            );
        }
    }
    // A certificate from another cluster's CA does not verify at all.
    let other = cluster("stacked", "ecdsa-p256", STACKED, &[]);
    let other_inv = inventory(&other.config);
    generate(&other_inv, &Mode::Generate, SystemTime::now()).unwrap();
    let foreign = CertificateDer::from_pem_file(
        other_inv
            .pki_dir
            .join("hosts/cp1/etc/kubernetes/pki/apiserver.crt"),
    )
    .unwrap();
    let name = ServerName::try_from("192.168.9.100").unwrap();
    assert!(
        verifier
            .verify_server_cert(&foreign, &[], &name, &[], UnixTime::now())
            .is_err()
    );
}
