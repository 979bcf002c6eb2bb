//! Reading an existing certificate and deciding whether it still matches its table row: kept
//! when it does, re-issued (with the reason) when it does not.

use std::collections::BTreeSet;
use std::time::SystemTime;

use rcgen::{ExtendedKeyUsagePurpose, KeyUsagePurpose};
use time::OffsetDateTime;
use x509_parser::extensions::GeneralName;
use x509_parser::pem::parse_x509_pem;
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

use super::algorithm;
use super::issue::Subject;
use super::profiles::Usages;
use super::table::San;
use crate::config::KeyAlgorithm;

/// What matters about a certificate, read from its PEM.
#[derive(Debug, Clone)]
pub struct CertInfo {
    pub common_name: String,
    pub organizations: Vec<String>,
    pub sans: BTreeSet<San>,
    pub key_usages: BTreeSet<String>,
    pub extended_key_usages: BTreeSet<String>,
    pub is_ca: bool,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub algorithm: Option<KeyAlgorithm>,
    pub spki_der: Vec<u8>,
    /// Whether the signature verifies with the CA key given to `read`.
    pub signed_by_ca: bool,
}

fn key_usage_name(k: &KeyUsagePurpose) -> &'static str {
    match k {
        KeyUsagePurpose::DigitalSignature => "digital signature",
        KeyUsagePurpose::ContentCommitment => "content commitment",
        KeyUsagePurpose::KeyEncipherment => "key encipherment",
        KeyUsagePurpose::DataEncipherment => "data encipherment",
        KeyUsagePurpose::KeyAgreement => "key agreement",
        KeyUsagePurpose::KeyCertSign => "cert sign",
        KeyUsagePurpose::CrlSign => "crl sign",
        KeyUsagePurpose::EncipherOnly => "encipher only",
        KeyUsagePurpose::DecipherOnly => "decipher only",
    }
}

fn extended_name(k: &ExtendedKeyUsagePurpose) -> &'static str {
    match k {
        ExtendedKeyUsagePurpose::ServerAuth => "server auth",
        ExtendedKeyUsagePurpose::ClientAuth => "client auth",
        _ => "other",
    }
}

/// Parse a PEM certificate; `ca_spki` (DER) checks who signed it.
pub fn read(pem: &[u8], ca_spki: Option<&[u8]>) -> Result<CertInfo, String> {
    let (_, pem) = parse_x509_pem(pem).map_err(|e| format!("not a PEM certificate: {e}"))?;
    let x = pem
        .parse_x509()
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let subject = x.subject();
    let common_name = subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or_default()
        .to_string();
    let organizations = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_string))
        .collect();
    let mut sans = BTreeSet::new();
    if let Ok(Some(ext)) = x.subject_alternative_name() {
        for name in &ext.value.general_names {
            match name {
                GeneralName::DNSName(d) => {
                    sans.insert(San::Dns(d.to_string()));
                }
                GeneralName::IPAddress(bytes) => {
                    let ip = match bytes.len() {
                        4 => <[u8; 4]>::try_from(*bytes).ok().map(std::net::IpAddr::from),
                        16 => <[u8; 16]>::try_from(*bytes)
                            .ok()
                            .map(std::net::IpAddr::from),
                        _ => None,
                    };
                    if let Some(ip) = ip {
                        sans.insert(San::Ip(ip));
                    }
                }
                _ => {}
            }
        }
    }
    let mut key_usages = BTreeSet::new();
    if let Ok(Some(ku)) = x.key_usage() {
        let ku = ku.value;
        for (on, name) in [
            (ku.digital_signature(), KeyUsagePurpose::DigitalSignature),
            (ku.key_encipherment(), KeyUsagePurpose::KeyEncipherment),
            (ku.key_cert_sign(), KeyUsagePurpose::KeyCertSign),
            (ku.crl_sign(), KeyUsagePurpose::CrlSign),
        ] {
            if on {
                key_usages.insert(key_usage_name(&name).to_string());
            }
        }
    }
    let mut extended_key_usages = BTreeSet::new();
    if let Ok(Some(eku)) = x.extended_key_usage() {
        if eku.value.server_auth {
            extended_key_usages.insert("server auth".to_string());
        }
        if eku.value.client_auth {
            extended_key_usages.insert("client auth".to_string());
        }
    }
    let signed_by_ca = match ca_spki {
        Some(der) => match SubjectPublicKeyInfo::from_der(der) {
            Ok((_, spki)) => x.verify_signature(Some(&spki)).is_ok(),
            Err(_) => false,
        },
        None => false,
    };
    Ok(CertInfo {
        common_name,
        organizations,
        sans,
        key_usages,
        extended_key_usages,
        is_ca: x.is_ca(),
        not_before: x.validity().not_before.to_datetime(),
        not_after: x.validity().not_after.to_datetime(),
        algorithm: algorithm::of_public_key(x.public_key()),
        spki_der: x.public_key().raw.to_vec(),
        signed_by_ca,
    })
}

/// Why `info` no longer fits the row, or `None` when it can be kept.
pub fn reissue_reason(
    info: &CertInfo,
    key_spki: Option<&[u8]>,
    want: &Subject<'_>,
    usages: &Usages,
    want_algorithm: KeyAlgorithm,
    now: SystemTime,
) -> Option<String> {
    let now = OffsetDateTime::from(now);
    if !info.signed_by_ca {
        return Some("not signed by the current CA".into());
    }
    if key_spki != Some(info.spki_der.as_slice()) {
        return Some("its key is missing or does not match it".into());
    }
    if info.not_after <= now {
        return Some(format!("expired on {}", info.not_after.date()));
    }
    if info.not_before > now {
        return Some("not valid yet".into());
    }
    if info.common_name != want.common_name {
        return Some(format!(
            "CN is `{}`, the table says `{}`",
            info.common_name, want.common_name
        ));
    }
    if info.organizations != want.organizations {
        return Some(format!(
            "O is [{}], the table says [{}]",
            info.organizations.join(", "),
            want.organizations.join(", ")
        ));
    }
    let wanted: BTreeSet<San> = want.sans.iter().cloned().collect();
    if info.sans != wanted {
        let added: Vec<String> = wanted
            .difference(&info.sans)
            .map(|s| format!("+{s}"))
            .collect();
        let removed: Vec<String> = info
            .sans
            .difference(&wanted)
            .map(|s| format!("-{s}"))
            .collect();
        return Some(format!(
            "SANs changed ({})",
            [added, removed].concat().join(", ")
        ));
    }
    let ku: BTreeSet<String> = usages
        .key
        .iter()
        .map(|k| key_usage_name(k).to_string())
        .collect();
    let eku: BTreeSet<String> = usages
        .extended
        .iter()
        .map(|k| extended_name(k).to_string())
        .collect();
    if info.key_usages != ku || info.extended_key_usages != eku {
        return Some("usages differ from its profile".into());
    }
    match info.algorithm {
        Some(a) if a == want_algorithm => None,
        Some(a) => Some(format!("its key is {a}, the config says {want_algorithm}")),
        None => Some(format!("its key is not {want_algorithm}")),
    }
}
