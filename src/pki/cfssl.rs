//! The table's rows written back as cfssl input: a filled-in `*-csr.json` per certificate (no
//! placeholders left), so real `cfssl gencert` can issue the same set from the same profiles. Used
//! by the comparison test and the benchmark against cfssl.

use serde_json::json;

use super::table::San;
use crate::config::KeyAlgorithm;

/// cfssl's `key` object for an algorithm.
pub fn key(algorithm: KeyAlgorithm) -> serde_json::Value {
    let (algo, size) = match algorithm {
        KeyAlgorithm::EcdsaP256 => ("ecdsa", 256),
        KeyAlgorithm::EcdsaP384 => ("ecdsa", 384),
        KeyAlgorithm::Rsa2048 => ("rsa", 2048),
        KeyAlgorithm::Rsa3072 => ("rsa", 3072),
        KeyAlgorithm::Rsa4096 => ("rsa", 4096),
    };
    json!({"algo": algo, "size": size})
}

/// A complete CSR JSON for cfssl. `ca_expiry` (e.g. `87600h`) makes it a CA request for
/// `cfssl gencert -initca`.
pub fn csr_json(
    common_name: &str,
    organizations: &[String],
    sans: &[San],
    algorithm: KeyAlgorithm,
    ca_expiry: Option<&str>,
) -> String {
    let mut doc = json!({
        "CN": common_name,
        "hosts": sans.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        "key": key(algorithm),
    });
    if !organizations.is_empty() {
        doc["names"] = organizations.iter().map(|o| json!({"O": o})).collect();
    }
    if let Some(expiry) = ca_expiry {
        doc["ca"] = json!({"expiry": expiry});
    }
    serde_json::to_string_pretty(&doc).expect("serializable")
}
