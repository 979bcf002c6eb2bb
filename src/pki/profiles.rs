//! The cfssl-style JSON under `certs/`, embedded at build time: signing profiles
//! (`ca-config.json`) and one CSR template per certificate (`<name>-csr.json`). The same files are
//! valid input for `cfssl gencert` once the `${...}` placeholders are filled in.

use std::collections::BTreeMap;

use rcgen::{ExtendedKeyUsagePurpose, KeyUsagePurpose};
use serde::Deserialize;

use super::PkiError;

/// `(file name, contents)` of every embedded JSON file.
pub const FILES: &[(&str, &str)] = &[
    ("ca-config.json", include_str!("../../certs/ca-config.json")),
    ("ca-csr.json", include_str!("../../certs/ca-csr.json")),
    (
        "front-proxy-ca-csr.json",
        include_str!("../../certs/front-proxy-ca-csr.json"),
    ),
    (
        "etcd-ca-csr.json",
        include_str!("../../certs/etcd-ca-csr.json"),
    ),
    (
        "apiserver-csr.json",
        include_str!("../../certs/apiserver-csr.json"),
    ),
    (
        "apiserver-kubelet-client-csr.json",
        include_str!("../../certs/apiserver-kubelet-client-csr.json"),
    ),
    (
        "front-proxy-client-csr.json",
        include_str!("../../certs/front-proxy-client-csr.json"),
    ),
    (
        "apiserver-etcd-client-csr.json",
        include_str!("../../certs/apiserver-etcd-client-csr.json"),
    ),
    (
        "etcd-server-csr.json",
        include_str!("../../certs/etcd-server-csr.json"),
    ),
    (
        "etcd-peer-csr.json",
        include_str!("../../certs/etcd-peer-csr.json"),
    ),
    (
        "etcd-healthcheck-client-csr.json",
        include_str!("../../certs/etcd-healthcheck-client-csr.json"),
    ),
    ("admin-csr.json", include_str!("../../certs/admin-csr.json")),
    (
        "super-admin-csr.json",
        include_str!("../../certs/super-admin-csr.json"),
    ),
    (
        "controller-manager-csr.json",
        include_str!("../../certs/controller-manager-csr.json"),
    ),
    (
        "scheduler-csr.json",
        include_str!("../../certs/scheduler-csr.json"),
    ),
    (
        "kubelet-csr.json",
        include_str!("../../certs/kubelet-csr.json"),
    ),
    (
        "kube-proxy-csr.json",
        include_str!("../../certs/kube-proxy-csr.json"),
    ),
];

/// `ca-config.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct CaConfig {
    pub signing: Signing,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Signing {
    pub profiles: BTreeMap<String, Profile>,
}

/// One signing profile: what a certificate may be used for.
#[derive(Debug, Clone, Deserialize)]
pub struct Profile {
    pub usages: Vec<String>,
    pub expiry: String,
}

/// A `*-csr.json` template: subject, key and SANs (with placeholders).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub struct CsrTemplate {
    pub cn: String,
    #[serde(rename = "hosts", default)]
    pub hosts: Vec<String>,
    #[serde(rename = "names", default)]
    pub names: Vec<BTreeMap<String, String>>,
    #[serde(rename = "key")]
    pub key: CsrKey,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CsrKey {
    pub algo: String,
    pub size: u32,
}

impl CsrTemplate {
    /// The `O` entries of `names`, in order.
    pub fn organizations(&self) -> Vec<String> {
        self.names
            .iter()
            .filter_map(|n| n.get("O").cloned())
            .collect()
    }
}

/// Key usages of a profile, split the way X.509 splits them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usages {
    pub key: Vec<KeyUsagePurpose>,
    pub extended: Vec<ExtendedKeyUsagePurpose>,
}

/// Parsed profiles and templates.
#[derive(Debug, Clone)]
pub struct Profiles {
    pub config: CaConfig,
    pub csrs: BTreeMap<String, CsrTemplate>,
}

fn embedded(name: &str) -> Result<&'static str, PkiError> {
    FILES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, text)| *text)
        .ok_or_else(|| PkiError::Profile {
            file: name.to_string(),
            message: "no such embedded file".into(),
        })
}

impl Profiles {
    /// Parse every embedded file; an error names the file.
    pub fn embedded() -> Result<Self, PkiError> {
        let parse_err = |file: &str, e: serde_json::Error| PkiError::Profile {
            file: format!("certs/{file}"),
            message: format!("line {} column {}: {e}", e.line(), e.column()),
        };
        let config: CaConfig = serde_json::from_str(embedded("ca-config.json")?)
            .map_err(|e| parse_err("ca-config.json", e))?;
        let mut csrs = BTreeMap::new();
        for (file, text) in FILES {
            if let Some(stem) = file.strip_suffix("-csr.json") {
                let csr: CsrTemplate =
                    serde_json::from_str(text).map_err(|e| parse_err(file, e))?;
                csrs.insert(stem.to_string(), csr);
            }
        }
        let profiles = Profiles { config, csrs };
        for name in profiles.config.signing.profiles.keys() {
            profiles.usages(name)?;
        }
        Ok(profiles)
    }

    pub fn csr(&self, stem: &str) -> Result<&CsrTemplate, PkiError> {
        self.csrs.get(stem).ok_or_else(|| PkiError::Profile {
            file: format!("certs/{stem}-csr.json"),
            message: "missing".into(),
        })
    }

    /// The usages of profile `name`, mapped from cfssl's words.
    pub fn usages(&self, name: &str) -> Result<Usages, PkiError> {
        let err = |message: String| PkiError::Profile {
            file: "certs/ca-config.json".into(),
            message,
        };
        let profile = self
            .config
            .signing
            .profiles
            .get(name)
            .ok_or_else(|| err(format!("no signing profile `{name}`")))?;
        let mut usages = Usages {
            key: Vec::new(),
            extended: Vec::new(),
        };
        for word in &profile.usages {
            match word.as_str() {
                "signing" | "digital signature" => {
                    usages.key.push(KeyUsagePurpose::DigitalSignature)
                }
                "key encipherment" => usages.key.push(KeyUsagePurpose::KeyEncipherment),
                "cert sign" => usages.key.push(KeyUsagePurpose::KeyCertSign),
                "crl sign" => usages.key.push(KeyUsagePurpose::CrlSign),
                "server auth" => usages.extended.push(ExtendedKeyUsagePurpose::ServerAuth),
                "client auth" => usages.extended.push(ExtendedKeyUsagePurpose::ClientAuth),
                other => {
                    return Err(err(format!(
                        "profile `{name}`: usage `{other}` is not one kinit issues (signing, digital signature, key encipherment, cert sign, crl sign, server auth, client auth)"
                    )));
                }
            }
        }
        Ok(usages)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_file_parses_and_maps() {
        let p = Profiles::embedded().unwrap();
        assert_eq!(p.csrs.len(), FILES.len() - 1);
        let server = p.usages("server").unwrap();
        assert_eq!(server.extended, vec![ExtendedKeyUsagePurpose::ServerAuth]);
        let peer = p.usages("peer").unwrap();
        assert_eq!(peer.extended.len(), 2);
        assert!(
            p.usages("ca")
                .unwrap()
                .key
                .contains(&KeyUsagePurpose::KeyCertSign)
        );
        assert!(p.usages("nope").is_err());
        assert_eq!(
            p.csr("kubelet").unwrap().organizations(),
            vec!["system:nodes"]
        );
    }
}
