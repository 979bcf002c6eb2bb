//! Output of `kinit certs`: what generate/renew did, and the expiry table.

use std::fmt::Write as _;

use crate::pki::expiry::{ExpiryReport, ExpiryRow, ExpiryState};
use crate::pki::{Action, GenerateReport};

/// One line per change (and per kept item when `verbose`), then a summary line.
pub fn generate_text(report: &GenerateReport, verbose: bool) -> String {
    let mut out = String::new();
    let (mut created, mut reissued, mut rewritten, mut kept) = (0, 0, 0, 0);
    for e in &report.events {
        match &e.action {
            Action::Created => {
                created += 1;
                let _ = writeln!(out, "  created    {}", e.item);
            }
            Action::Reissued(why) => {
                reissued += 1;
                let _ = writeln!(out, "  re-issued  {} ({why})", e.item);
            }
            Action::Rewritten(why) => {
                rewritten += 1;
                let _ = writeln!(out, "  rewritten  {} ({why})", e.item);
            }
            Action::Kept => {
                kept += 1;
                if verbose {
                    let _ = writeln!(out, "  kept       {}", e.item);
                }
            }
        }
    }
    for host in &report.stale_hosts {
        let _ = writeln!(
            out,
            "  warning    hosts/{host} belongs to no host in the config (left in place; remove it if the host is gone)"
        );
    }
    let _ = writeln!(
        out,
        "{}: {created} created, {reissued} re-issued, {rewritten} rewritten, {kept} kept; {} file{} written",
        report.dir.display(),
        report.files_written,
        if report.files_written == 1 { "" } else { "s" }
    );
    out
}

pub fn generate_json(report: &GenerateReport) -> String {
    serde_json::to_string_pretty(report).expect("serializable")
}

/// kubeadm's `ShortHumanDuration`: `45s`, `12m`, `5h`, `364d`, `9y`.
pub fn residual(seconds: i64) -> String {
    if seconds <= 0 {
        return "expired".into();
    }
    let (m, h, d) = (seconds / 60, seconds / 3600, seconds / 86400);
    if seconds < 60 {
        format!("{seconds}s")
    } else if m < 60 {
        format!("{m}m")
    } else if h < 24 {
        format!("{h}h")
    } else if d < 365 {
        format!("{d}d")
    } else {
        format!("{}y", d / 365)
    }
}

fn expires(r: &ExpiryRow) -> String {
    let format =
        time::macros::format_description!("[month repr:short] [day], [year] [hour]:[minute] UTC");
    match (r.state, r.not_after) {
        (ExpiryState::Missing, _) => "missing".into(),
        (ExpiryState::Unreadable, _) => "unreadable".into(),
        (_, Some(t)) => t
            .to_offset(time::UtcOffset::UTC)
            .format(format)
            .unwrap_or_default(),
        (_, None) => String::new(),
    }
}

fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<String>| {
        let mut l = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                l.push_str(cell);
            } else {
                let _ = write!(l, "{cell:<w$}   ");
            }
        }
        let _ = writeln!(out, "{}", l.trim_end());
    };
    line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        line(row);
    }
    out
}

/// The two tables of `kubeadm certs check-expiration`, with a HOST column for per-host certs.
pub fn expiry_text(report: &ExpiryReport) -> String {
    let certs = report
        .certificates
        .iter()
        .map(|r| {
            vec![
                r.name.clone(),
                r.host.clone().unwrap_or_else(|| "(shared)".into()),
                expires(r),
                r.residual_seconds.map(residual).unwrap_or_default(),
                r.ca.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let cas = report
        .authorities
        .iter()
        .map(|r| {
            vec![
                r.name.clone(),
                expires(r),
                r.residual_seconds.map(residual).unwrap_or_default(),
            ]
        })
        .collect();
    let mut out = table(
        &[
            "CERTIFICATE",
            "HOST",
            "EXPIRES",
            "RESIDUAL TIME",
            "CERTIFICATE AUTHORITY",
        ],
        certs,
    );
    out.push('\n');
    out.push_str(&table(
        &["CERTIFICATE AUTHORITY", "EXPIRES", "RESIDUAL TIME"],
        cas,
    ));
    out
}

pub fn expiry_json(report: &ExpiryReport) -> String {
    serde_json::to_string_pretty(report).expect("serializable")
}

#[cfg(test)]
mod tests {
    use super::residual;

    #[test]
    fn residual_like_kubeadm() {
        assert_eq!(residual(-5), "expired");
        assert_eq!(residual(59), "59s");
        assert_eq!(residual(3599), "59m");
        assert_eq!(residual(364 * 86400 + 3600), "364d");
        assert_eq!(residual(10 * 365 * 86400 - 600), "9y");
    }
}
