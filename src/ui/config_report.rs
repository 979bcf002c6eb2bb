//! Showing config problems (miette, with the offending lines) and the summary of a valid config.

use std::fmt::Write as _;

use miette::{GraphicalReportHandler, GraphicalTheme};
use serde::Serialize;

use crate::config::Role;
use crate::config::{ConfigProblem, ConfigReport, Severity};
use crate::inventory::Inventory;

/// How many problems are shown with their source lines; the rest are counted. Past this many, a
/// config is better fixed from the top (one mistake, such as a wrong indent, often causes many),
/// and each shown problem costs a read of its part of the file.
pub const MAX_PROBLEMS_SHOWN: usize = 50;

/// The first [`MAX_PROBLEMS_SHOWN`] problems rendered with their source lines, errors first, then
/// how many more there are.
pub fn render_problems(report: &ConfigReport, color: bool) -> String {
    let theme = if color {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let handler = GraphicalReportHandler::new_themed(theme)
        .with_width(100)
        .with_links(false);
    let mut diagnostics = report.diagnostics();
    // Errors before warnings; each group in file order.
    diagnostics.sort_by_key(|d| {
        let pos = d.location.as_ref().map_or((0, 0), |l| (l.line, l.column));
        (d.problem.severity == Severity::Warning, pos)
    });
    let mut out = String::new();
    for d in diagnostics.iter().take(MAX_PROBLEMS_SHOWN) {
        // Rendering into a String cannot fail.
        let _ = handler.render_report(&mut out, d);
        out.push('\n');
    }
    let hidden = &diagnostics[diagnostics.len().min(MAX_PROBLEMS_SHOWN)..];
    if !hidden.is_empty() {
        let errors = hidden
            .iter()
            .filter(|d| d.problem.severity == Severity::Error)
            .count();
        let _ = writeln!(
            out,
            "... and {} more problem(s) not shown ({errors} error(s), {} warning(s)); `-o json` lists them all\n",
            hidden.len(),
            hidden.len() - errors
        );
    }
    out
}

/// One line with the counts, e.g. `cluster.yaml: 3 errors, 1 warning`.
pub fn problem_counts(report: &ConfigReport) -> String {
    let errors = report.errors().count();
    let warnings = report.warnings().count();
    format!(
        "{}: {} error{}, {} warning{}",
        report.file.display(),
        errors,
        if errors == 1 { "" } else { "s" },
        warnings,
        if warnings == 1 { "" } else { "s" }
    )
}

#[derive(Serialize)]
pub struct JsonProblem<'a> {
    pub severity: Severity,
    pub code: &'a str,
    pub path: &'a str,
    pub message: &'a str,
    pub help: Option<&'a str>,
    pub line: Option<usize>,
    pub column: Option<usize>,
}

pub fn json_problems(report: &ConfigReport) -> Vec<JsonProblem<'_>> {
    report
        .problems
        .iter()
        .map(|p: &ConfigProblem| {
            let loc = report.location(p);
            JsonProblem {
                severity: p.severity,
                code: p.code,
                path: &p.path,
                message: &p.message,
                help: p.help.as_deref(),
                line: loc.as_ref().map(|l| l.line),
                column: loc.as_ref().map(|l| l.column),
            }
        })
        .collect()
}

/// The short summary `kinit config validate` prints for a valid config.
pub fn summary(inv: &Inventory) -> String {
    let mut out = String::new();
    let names = |role: Role| -> String {
        let hosts: Vec<String> = inv
            .with_role(role)
            .map(|h| format!("{} ({})", h.name, h.address))
            .collect();
        if hosts.is_empty() {
            "none".to_string()
        } else {
            hosts.join(", ")
        }
    };
    let members = inv.etcd_members().len();
    let _ = writeln!(
        out,
        "  cluster        {} (Kubernetes {})",
        inv.name, inv.kubernetes_version
    );
    let _ = writeln!(out, "  images         {}", inv.image_repository);
    let _ = writeln!(
        out,
        "  topology       {} (etcd as {})",
        inv.topology, inv.etcd.mode
    );
    let _ = writeln!(
        out,
        "  endpoint       {} via {}",
        inv.endpoint.url(),
        inv.endpoint.load_balancer
    );
    let _ = writeln!(out, "  control-plane  {}", names(Role::ControlPlane));
    let _ = writeln!(
        out,
        "  etcd           {} ({members} member{}, tolerates {} failure{})",
        names(Role::Etcd),
        if members == 1 { "" } else { "s" },
        members.saturating_sub(1) / 2,
        if members.saturating_sub(1) / 2 == 1 {
            ""
        } else {
            "s"
        }
    );
    let _ = writeln!(out, "  worker         {}", names(Role::Worker));
    let _ = writeln!(out, "  pod subnet     {}", inv.networking.pod_subnet);
    let _ = writeln!(
        out,
        "  service subnet {} (kubernetes service at {})",
        inv.networking.service_subnet,
        inv.first_service_ip()
    );
    if let Some(snap) = &inv.etcd.snapshots {
        let _ = writeln!(
            out,
            "  etcd snapshots {} on each etcd host, newest {} kept in {}",
            snap.schedule, snap.keep, snap.dir
        );
    }
    out
}
