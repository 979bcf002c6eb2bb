//! Certificate authorities: loading an existing one (kinit's own, or brought from cfssl, kubeasz
//! or kubeadm), or creating one. An existing CA is never replaced.

use std::time::SystemTime;

use rcgen::{Issuer, KeyPair, PublicKeyData};
use time::OffsetDateTime;
use x509_parser::pem::parse_x509_pem;

use super::PkiError;
use super::store::Store;
use super::table::CaId;

/// A CA ready to sign.
pub struct Authority {
    pub id: CaId,
    pub cert_pem: String,
    /// DER of the CA's SubjectPublicKeyInfo, to check leaf signatures against.
    pub spki_der: Vec<u8>,
    pub not_after: OffsetDateTime,
    pub issuer: Issuer<'static, KeyPair>,
}

/// `etcd/ca.crt`, `etcd/ca.key`.
pub fn files(id: CaId) -> (String, String) {
    (format!("{}.crt", id.stem()), format!("{}.key", id.stem()))
}

/// Load `id` from the store: `None` when neither file exists. Half a CA, a key that does not
/// match, a certificate that is not a CA or has expired: errors, with what to do.
pub fn load(store: &Store, id: CaId, now: SystemTime) -> Result<Option<Authority>, PkiError> {
    let (crt, key) = files(id);
    let (cert_pem, key_pem) = match (store.read_text(&crt)?, store.read_text(&key)?) {
        (None, None) => return Ok(None),
        (Some(c), Some(k)) => (c, k),
        (Some(_), None) => {
            return Err(PkiError::Refused(format!(
                "{} exists but {} does not: kinit signs with the CA key, so it needs both (an externally held CA key is not supported)",
                store.path(&crt).display(),
                store.path(&key).display()
            )));
        }
        (None, Some(_)) => {
            return Err(PkiError::Refused(format!(
                "{} exists but {} does not: restore the certificate, or move the key away to create a new CA",
                store.path(&key).display(),
                store.path(&crt).display()
            )));
        }
    };
    from_pem(store, id, cert_pem, &key_pem, now).map(Some)
}

fn from_pem(
    store: &Store,
    id: CaId,
    cert_pem: String,
    key_pem: &str,
    now: SystemTime,
) -> Result<Authority, PkiError> {
    let (crt, key) = files(id);
    let crt_path = store.path(&crt);
    let (_, pem) = parse_x509_pem(cert_pem.as_bytes())
        .map_err(|e| PkiError::invalid(&crt_path, format!("not a PEM certificate: {e}")))?;
    let x509 = pem
        .parse_x509()
        .map_err(|e| PkiError::invalid(&crt_path, format!("not an X.509 certificate: {e}")))?;
    if !x509.is_ca() {
        return Err(PkiError::invalid(
            &crt_path,
            "is not a CA certificate (basicConstraints CA:FALSE or missing)",
        ));
    }
    let not_after = x509.validity().not_after.to_datetime();
    if OffsetDateTime::from(now) >= not_after {
        return Err(PkiError::Refused(format!(
            "CA {} expired on {not_after}; kinit never replaces a CA by itself: move {} and {} away to create a new one (every certificate will then be re-issued)",
            id,
            crt_path.display(),
            store.path(&key).display()
        )));
    }
    // The error from rcgen says nothing about the key's contents.
    let key_pair = KeyPair::from_pem(key_pem).map_err(|_| {
        PkiError::invalid(
            store.path(&key),
            "not a private key kinit can read (PKCS#8, PKCS#1 RSA or SEC1 EC in PEM)",
        )
    })?;
    let spki_der = x509.public_key().raw.to_vec();
    if key_pair.subject_public_key_info() != spki_der {
        return Err(PkiError::invalid(
            store.path(&key),
            format!("does not belong to {}", crt_path.display()),
        ));
    }
    let issuer = Issuer::from_ca_cert_pem(&cert_pem, key_pair)
        .map_err(PkiError::crypto(format!("CA {}", crt_path.display())))?;
    Ok(Authority {
        id,
        cert_pem,
        spki_der,
        not_after,
        issuer,
    })
}

/// Build an `Authority` from freshly created PEM (before it is written).
pub fn from_pem_parts(
    store: &Store,
    id: CaId,
    cert_pem: String,
    key_pem: &str,
) -> Result<Authority, PkiError> {
    from_pem(store, id, cert_pem, key_pem, SystemTime::now())
}
