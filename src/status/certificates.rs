//! The certificate part of the status: `pki::expiry` over the operator's PKI dir, summarized.

use std::time::SystemTime;

use super::report::{CertificateNote, CertificateSummary};
use crate::inventory::Inventory;
use crate::pki::expiry::{self, ExpiryReport, ExpiryRow, ExpiryState};

/// A certificate this close to its end counts as a problem (kubeadm renews within 180 days on
/// upgrade; 30 days leaves an operator time to act).
pub const EXPIRING_WITHIN_DAYS: i64 = 30;

const DAY: i64 = 86_400;

pub fn check(inv: &Inventory, now: SystemTime) -> CertificateSummary {
    match expiry::check(inv, now) {
        Ok(report) => summarize(&report),
        Err(e) => CertificateSummary {
            error: Some(e.to_string()),
            ..CertificateSummary::default()
        },
    }
}

fn note(row: &ExpiryRow) -> CertificateNote {
    CertificateNote {
        name: match &row.host {
            Some(h) => format!("{} ({h})", row.name),
            None => row.name.clone(),
        },
        file: row.file.clone(),
        expires: row.expires.clone(),
        days_left: row.residual_seconds.map(|s| s.div_euclid(DAY)),
    }
}

pub fn summarize(report: &ExpiryReport) -> CertificateSummary {
    let mut s = CertificateSummary::default();
    let rows: Vec<&ExpiryRow> = report
        .certificates
        .iter()
        .chain(&report.authorities)
        .collect();
    s.total = rows.len();
    for row in &rows {
        match row.state {
            ExpiryState::Valid => {
                if row
                    .residual_seconds
                    .is_some_and(|left| left < EXPIRING_WITHIN_DAYS * DAY)
                {
                    s.expiring.push(note(row));
                } else {
                    s.valid += 1;
                }
            }
            ExpiryState::Expired => s.expired.push(note(row)),
            ExpiryState::Missing => s.missing.push(note(row)),
            ExpiryState::Unreadable => s.unreadable.push(note(row)),
        }
    }
    s.soonest = rows
        .iter()
        .filter(|r| r.residual_seconds.is_some())
        .min_by_key(|r| r.residual_seconds)
        .map(|r| note(r));
    s
}
