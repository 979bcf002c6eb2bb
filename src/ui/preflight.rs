//! Preflight findings for people: grouped by host, problems first, one summary line.

use std::fmt::Write as _;

use crate::preflight::{PreflightReport, Status};

/// `verbose` also lists the checks that passed.
pub fn render(report: &PreflightReport, verbose: bool) -> String {
    let mut out = String::new();
    let width = report
        .findings
        .iter()
        .map(|f| f.check.len())
        .max()
        .unwrap_or(0);
    for (host, findings) in report.by_host() {
        let count = |s: Status| findings.iter().filter(|f| f.status == s).count();
        let _ = writeln!(
            out,
            "{host}: {} passed, {} warning(s), {} failure(s)",
            count(Status::Pass),
            count(Status::Warn),
            count(Status::Fail)
        );
        let mut shown: Vec<_> = findings
            .iter()
            .filter(|f| verbose || f.status != Status::Pass)
            .collect();
        shown.sort_by_key(|f| std::cmp::Reverse(f.status));
        for f in shown {
            let mark = match (f.status, f.ignored) {
                (Status::Fail, _) => "FAIL",
                (Status::Warn, true) => "warn (ignored failure)",
                (Status::Warn, false) => "warn",
                (Status::Pass, _) => "ok",
            };
            let _ = writeln!(out, "  {mark:<4} {:<width$}  {}", f.check, f.message);
            if let Some(fix) = &f.fix {
                let _ = writeln!(out, "       {:<width$}  fix: {fix}", "");
            }
        }
    }
    let hosts = report.by_host().len();
    let _ = writeln!(
        out,
        "preflight: {hosts} host(s), {} passed, {} warning(s), {} failure(s)",
        report.count(Status::Pass),
        report.count(Status::Warn),
        report.count(Status::Fail)
    );
    out
}
