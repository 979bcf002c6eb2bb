//! Key generation for the configured algorithm, and recognising the algorithm of an existing key.

use rcgen::{KeyPair, RsaKeySize};
use x509_parser::public_key::PublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::config::KeyAlgorithm;

/// A fresh key pair. RSA generation needs aws-lc-rs (rcgen's ring backend cannot).
pub fn generate(algorithm: KeyAlgorithm) -> Result<KeyPair, rcgen::Error> {
    match algorithm {
        KeyAlgorithm::EcdsaP256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
        KeyAlgorithm::EcdsaP384 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384),
        KeyAlgorithm::Rsa2048 => {
            KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_2048)
        }
        KeyAlgorithm::Rsa3072 => {
            KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_3072)
        }
        KeyAlgorithm::Rsa4096 => {
            KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_4096)
        }
    }
}

const OID_EC_P256: &str = "1.2.840.10045.3.1.7";
const OID_EC_P384: &str = "1.3.132.0.34";

/// The algorithm of a certificate's public key, if it is one kinit issues.
pub fn of_public_key(spki: &SubjectPublicKeyInfo<'_>) -> Option<KeyAlgorithm> {
    match spki.parsed().ok()? {
        PublicKey::RSA(rsa) => match rsa.key_size() {
            2048 => Some(KeyAlgorithm::Rsa2048),
            3072 => Some(KeyAlgorithm::Rsa3072),
            4096 => Some(KeyAlgorithm::Rsa4096),
            _ => None,
        },
        PublicKey::EC(_) => {
            let curve = spki.algorithm.parameters.as_ref()?.as_oid().ok()?;
            match curve.to_id_string().as_str() {
                OID_EC_P256 => Some(KeyAlgorithm::EcdsaP256),
                OID_EC_P384 => Some(KeyAlgorithm::EcdsaP384),
                _ => None,
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every configurable algorithm generates, signs, and is recognised again from the
    /// certificate (a wrong answer here would re-issue certificates on every run).
    #[test]
    fn every_algorithm_round_trips_through_a_certificate() {
        for algorithm in [
            KeyAlgorithm::EcdsaP256,
            KeyAlgorithm::EcdsaP384,
            KeyAlgorithm::Rsa2048,
            KeyAlgorithm::Rsa3072,
            KeyAlgorithm::Rsa4096,
        ] {
            let key = generate(algorithm).unwrap();
            let cert = rcgen::CertificateParams::new(vec!["x".into()])
                .unwrap()
                .self_signed(&key)
                .unwrap();
            let (_, x) = x509_parser::parse_x509_certificate(cert.der()).unwrap();
            assert_eq!(of_public_key(x.public_key()), Some(algorithm));
            // The PEM kinit writes reads back (rcgen writes PKCS#8).
            assert!(KeyPair::from_pem(&key.serialize_pem()).is_ok());
        }
    }
}
