//! `kinit certs check-expiration`: when each certificate of the table and each CA expires.

use std::time::SystemTime;

use serde::Serialize;
use time::OffsetDateTime;

use super::PkiError;
use super::authority;
use super::inspect;
use super::kubeconfig;
use super::profiles::Profiles;
use super::store::Store;
use super::table::{self, CaId, Output};
use crate::inventory::Inventory;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExpiryRow {
    /// kubeadm's name: `apiserver`, `admin.conf`, `ca`.
    pub name: String,
    pub host: Option<String>,
    /// The signing CA (`ca`, `etcd-ca`, `front-proxy-ca`); none for a CA itself.
    pub ca: Option<String>,
    /// Relative to the PKI dir.
    pub file: String,
    pub state: ExpiryState,
    #[serde(skip)]
    pub not_after: Option<OffsetDateTime>,
    /// `notAfter` in RFC 3339, when the certificate could be read.
    pub expires: Option<String>,
    /// Seconds left (negative once expired).
    pub residual_seconds: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExpiryState {
    Valid,
    Expired,
    Missing,
    Unreadable,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExpiryReport {
    pub certificates: Vec<ExpiryRow>,
    pub authorities: Vec<ExpiryRow>,
}

impl ExpiryReport {
    /// Whether anything is missing, unreadable or expired.
    pub fn has_problems(&self) -> bool {
        self.certificates
            .iter()
            .chain(&self.authorities)
            .any(|r| r.state != ExpiryState::Valid)
    }
}

fn row(
    name: &str,
    host: Option<&str>,
    ca: Option<CaId>,
    file: String,
    pem: Option<Result<String, String>>,
    now: SystemTime,
) -> ExpiryRow {
    let now = OffsetDateTime::from(now);
    let mut r = ExpiryRow {
        name: name.to_string(),
        host: host.map(str::to_string),
        ca: ca.map(|c| c.name().to_string()),
        file,
        state: ExpiryState::Missing,
        not_after: None,
        expires: None,
        residual_seconds: None,
    };
    match pem {
        None => {}
        Some(Err(_)) => r.state = ExpiryState::Unreadable,
        Some(Ok(pem)) => match inspect::read(pem.as_bytes(), None) {
            Err(_) => r.state = ExpiryState::Unreadable,
            Ok(info) => {
                let left = (info.not_after - now).whole_seconds();
                r.state = if left > 0 {
                    ExpiryState::Valid
                } else {
                    ExpiryState::Expired
                };
                r.not_after = Some(info.not_after);
                r.expires = info
                    .not_after
                    .format(&time::format_description::well_known::Rfc3339)
                    .ok();
                r.residual_seconds = Some(left);
            }
        },
    }
    r
}

/// Read every certificate of the table and every CA from the PKI dir.
pub fn check(inv: &Inventory, now: SystemTime) -> Result<ExpiryReport, PkiError> {
    let profiles = Profiles::embedded()?;
    let specs = table::certificates(inv, &profiles)?;
    let store = Store::new(&inv.pki_dir);
    let mut certificates = Vec::new();
    for spec in &specs {
        let file = match spec.output {
            Output::Pair { .. } => spec.stored("crt"),
            Output::Kubeconfig { .. } => spec.stored(""),
        };
        let pem = store
            .read_text(&file)
            .ok()
            .flatten()
            .map(|text| match spec.output {
                Output::Pair { .. } => Ok(text),
                Output::Kubeconfig { .. } => kubeconfig::parse(&text).map(|k| k.cert_pem),
            });
        certificates.push(row(
            spec.name,
            spec.host.as_deref(),
            Some(spec.ca),
            file,
            pem,
            now,
        ));
    }
    let authorities = CaId::ALL
        .iter()
        .map(|&id| {
            let (crt, _) = authority::files(id);
            let pem = store.read_text(&crt).ok().flatten().map(Ok);
            row(id.name(), None, None, crt, pem, now)
        })
        .collect();
    Ok(ExpiryReport {
        certificates,
        authorities,
    })
}
