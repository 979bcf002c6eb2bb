//! Turning a table row into a signed certificate: subject, SANs, usages and dates as kubeadm sets
//! them (NotBefore backdated five minutes), signed with rcgen.

use std::time::Duration;

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType, IsCa, Issuer,
    KeyPair, SanType, string::Ia5String,
};
use time::OffsetDateTime;

use super::PkiError;
use super::profiles::Usages;
use super::table::San;

/// kubeadm's `CertificateBackdate`: tolerates clocks a little behind the operator's.
pub const BACKDATE: Duration = Duration::from_secs(5 * 60);

/// A freshly issued certificate and its key, both PEM.
pub struct Issued {
    pub cert_pem: String,
    /// Never printed or logged; written 0600 only.
    pub key_pem: String,
}

/// What a certificate says about itself, independent of how it is signed.
pub struct Subject<'a> {
    pub common_name: &'a str,
    pub organizations: &'a [String],
    pub sans: &'a [San],
}

/// `t` as a certificate date, or an error when it is beyond what the time types hold
/// (`OffsetDateTime::from` would panic).
fn to_time(t: std::time::SystemTime) -> Result<OffsetDateTime, PkiError> {
    let unix = match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).ok(),
        Err(before) => i64::try_from(before.duration().as_secs()).ok().map(|s| -s),
    };
    unix.and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .ok_or_else(|| PkiError::Refused(format!("{t:?} is not a date a certificate can hold")))
}

/// `now + validity`, refused (not panicking) when it overflows or leaves X.509's range (year
/// 9999). Validation bounds validities to 100 years; this holds for any caller.
fn end_of(now: std::time::SystemTime, validity: Duration) -> Result<OffsetDateTime, PkiError> {
    let too_long = || {
        PkiError::Refused(format!(
            "a validity of {}h from now ends past the year 9999, the last date a certificate can hold",
            validity.as_secs() / 3600
        ))
    };
    let end = now.checked_add(validity).ok_or_else(too_long)?;
    let end = to_time(end).map_err(|_| too_long())?;
    if end.year() > 9999 {
        return Err(too_long());
    }
    Ok(end)
}

fn params(
    subject: &Subject<'_>,
    usages: &Usages,
    now: std::time::SystemTime,
    not_after: OffsetDateTime,
) -> Result<CertificateParams, PkiError> {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    for o in subject.organizations {
        dn.push(DnType::OrganizationName, o.as_str());
    }
    dn.push(DnType::CommonName, subject.common_name);
    p.distinguished_name = dn;
    p.subject_alt_names = subject
        .sans
        .iter()
        .map(|san| match san {
            San::Ip(ip) => Ok(SanType::IpAddress(*ip)),
            San::Dns(name) => Ia5String::try_from(name.as_str())
                .map(SanType::DnsName)
                .map_err(PkiError::crypto(format!("SAN `{name}`"))),
        })
        .collect::<Result<_, _>>()?;
    p.key_usages = usages.key.clone();
    p.extended_key_usages = usages.extended.clone();
    p.not_before = to_time(now.checked_sub(BACKDATE).unwrap_or(now))?;
    p.not_after = not_after;
    Ok(p)
}

/// A self-signed CA (kubeadm: the CN is also its one DNS SAN; no path length limit).
pub fn self_signed_ca(
    subject: &Subject<'_>,
    usages: &Usages,
    key: &KeyPair,
    now: std::time::SystemTime,
    validity: Duration,
) -> Result<String, PkiError> {
    let start = now.checked_sub(BACKDATE).unwrap_or(now);
    let mut p = params(subject, usages, now, end_of(start, validity)?)?;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let cert: Certificate = p
        .self_signed(key)
        .map_err(PkiError::crypto(format!("CA {}", subject.common_name)))?;
    Ok(cert.pem())
}

/// A leaf signed by `issuer`, valid for `validity` but never past its CA.
pub fn signed_leaf(
    subject: &Subject<'_>,
    usages: &Usages,
    key: &KeyPair,
    issuer: &Issuer<'_, KeyPair>,
    ca_not_after: OffsetDateTime,
    now: std::time::SystemTime,
    validity: Duration,
) -> Result<String, PkiError> {
    let not_after = end_of(now, validity)?.min(ca_not_after);
    let mut p = params(subject, usages, now, not_after)?;
    p.is_ca = IsCa::ExplicitNoCa;
    p.use_authority_key_identifier_extension = true;
    let cert = p.signed_by(key, issuer).map_err(PkiError::crypto(format!(
        "certificate {}",
        subject.common_name
    )))?;
    Ok(cert.pem())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validity_ends_are_checked_not_panicking() {
        let now = std::time::SystemTime::now();
        let hundred_years = Duration::from_secs(100 * 365 * 24 * 3600);
        assert!(end_of(now, hundred_years).is_ok());
        for too_long in [
            Duration::from_secs(87_600_000 * 3600),
            Duration::from_secs(u64::MAX / 2),
            Duration::MAX,
        ] {
            let err = end_of(now, too_long).unwrap_err().to_string();
            assert!(err.contains("9999"), "{err}");
        }
    }
}
