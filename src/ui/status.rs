//! Output of `kinit status`: a few aligned tables for people, the report as JSON for programs.

use std::fmt::Write as _;

use crate::status::certificates::EXPIRING_WITHIN_DAYS;
use crate::status::{HostStatus, KeepalivedState, StatusReport};

/// The report with its verdict first: `healthy` and the `problems` that make it degraded.
pub fn render_json(report: &StatusReport) -> String {
    #[derive(serde::Serialize)]
    struct Verdict<'a> {
        healthy: bool,
        problems: Vec<String>,
        #[serde(flatten)]
        report: &'a StatusReport,
    }
    let problems = report.problems();
    serde_json::to_string_pretty(&Verdict {
        healthy: problems.is_empty(),
        problems,
        report,
    })
    .expect("serializable")
}

/// Rows padded to the widest cell of each column (the last column is not padded).
fn table(out: &mut String, rows: &[Vec<String>]) {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in rows {
        let mut line = String::from(" ");
        for (c, cell) in row.iter().enumerate() {
            line.push(' ');
            line.push_str(cell);
            if c + 1 < row.len() {
                line.push_str(&" ".repeat(widths[c] - cell.chars().count() + 1));
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
}

fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn etcd_section(out: &mut String, report: &StatusReport) {
    let etcd = &report.etcd;
    let membership = match &etcd.listed_by {
        None => String::new(),
        Some(by) if etcd.missing_from_list.is_empty() && etcd.not_in_inventory.is_empty() => {
            format!(" (member list from {by}: matches the inventory)")
        }
        Some(by) => format!(" (member list from {by}: differs from the inventory)"),
    };
    let _ = writeln!(out, "etcd{membership}");
    if let Some(e) = &etcd.error {
        let _ = writeln!(out, "  error: {e}");
    }
    if !etcd.members.is_empty() {
        let mut rows = vec![
            [
                "NAME", "ENDPOINT", "HEALTH", "LEADER", "DB SIZE", "VERSION", "ID",
            ]
            .map(String::from)
            .to_vec(),
        ];
        let mut errors = Vec::new();
        for m in &etcd.members {
            let name = if m.in_inventory {
                m.name.clone()
            } else {
                format!("{} (not in inventory)", m.name)
            };
            rows.push(vec![
                name,
                m.endpoint.clone(),
                if m.healthy { "healthy" } else { "UNHEALTHY" }.into(),
                if m.leader { "leader" } else { "-" }.into(),
                m.db_size.map(size).unwrap_or_else(|| "-".into()),
                m.version.clone().unwrap_or_else(|| "-".into()),
                m.id.clone().unwrap_or_else(|| "-".into()),
            ]);
            if let Some(e) = &m.error {
                errors.push(format!("{}: {e}", m.name));
            }
        }
        table(out, &rows);
        for e in errors {
            let _ = writeln!(out, "  {e}");
        }
        if let Some(line) = mixed_versions(report) {
            let _ = writeln!(out, "  {line}");
        }
    }
    out.push('\n');
}

/// Members on more than one etcd release: an upgrade under way, or one that stopped half way.
fn mixed_versions(report: &StatusReport) -> Option<String> {
    let mut by_version: Vec<(&str, Vec<&str>)> = Vec::new();
    for m in &report.etcd.members {
        let Some(v) = m.version.as_deref() else {
            continue;
        };
        match by_version.iter_mut().find(|(seen, _)| *seen == v) {
            Some((_, names)) => names.push(&m.name),
            None => by_version.push((v, vec![&m.name])),
        }
    }
    if by_version.len() < 2 {
        return None;
    }
    by_version.sort_by_key(|(v, _)| crate::etcd::version::EtcdVersion::parse(v).ok());
    let groups: Vec<String> = by_version
        .iter()
        .map(|(v, names)| format!("{v} on {}", names.join(", ")))
        .collect();
    Some(format!(
        "members run different etcd releases ({}): an upgrade under way, or one that stopped; \
         `kinit up` with the same bundle finishes it",
        groups.join("; ")
    ))
}

fn services(h: &HostStatus) -> String {
    h.services
        .iter()
        .map(|s| format!("{} {}", s.name, s.state))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `etcd v3.6.16, kube-apiserver v1.37.2 (installed; the unit still runs the one before)`
fn releases(h: &HostStatus) -> String {
    h.versions
        .iter()
        .map(|v| {
            let release = v.version.as_deref().unwrap_or("unknown");
            if v.restart_pending {
                format!(
                    "{} {release} (installed; the unit still runs the one before)",
                    v.unit
                )
            } else {
                format!("{} {release}", v.unit)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn hosts_section(out: &mut String, report: &StatusReport) {
    if let Some(vip) = &report.vip {
        let holders = match vip.holders.as_slice() {
            [] => "held by NO host".to_string(),
            [one] => format!("held by {one}"),
            many => format!("held by MORE THAN ONE host: {}", many.join(", ")),
        };
        let _ = writeln!(out, "VIP {} {holders}\n", vip.address);
    }
    let _ = writeln!(out, "hosts");
    let mut rows = vec![
        ["NAME", "ADDRESS", "ROLES", "KEEPALIVED", "SERVICES"]
            .map(String::from)
            .to_vec(),
    ];
    let mut details = Vec::new();
    for h in &report.hosts {
        if !h.reachable {
            rows.push(vec![
                h.name.clone(),
                h.address.clone(),
                h.roles.join(","),
                "-".into(),
                "UNREACHABLE".into(),
            ]);
            if let Some(e) = &h.error {
                details.push(format!("{}: {e}", h.name));
            }
            continue;
        }
        let keepalived = match h.keepalived {
            None => "-",
            Some(KeepalivedState::Master) => "MASTER (VIP)",
            Some(KeepalivedState::Backup) => "BACKUP",
            Some(KeepalivedState::Stopped) if h.holds_vip == Some(true) => "stopped (VIP!)",
            Some(KeepalivedState::Stopped) => "stopped",
        };
        rows.push(vec![
            h.name.clone(),
            h.address.clone(),
            h.roles.join(","),
            keepalived.into(),
            services(h),
        ]);
        if !h.versions.is_empty() {
            details.push(format!("{}: releases: {}", h.name, releases(h)));
        }
        if let Some(hp) = &h.haproxy {
            if let Some(e) = &hp.error {
                details.push(format!("{}: haproxy stats: {e}", h.name));
            } else {
                let servers: Vec<String> = hp
                    .servers
                    .iter()
                    .map(|s| match &s.check {
                        Some(c) => format!("{} {} ({c})", s.server, s.status),
                        None => format!("{} {}", s.server, s.status),
                    })
                    .collect();
                details.push(format!(
                    "{}: haproxy backends: {}",
                    h.name,
                    servers.join(", ")
                ));
            }
        }
    }
    table(out, &rows);
    for d in details {
        let _ = writeln!(out, "  {d}");
    }
    out.push('\n');
}

fn control_plane_section(out: &mut String, report: &StatusReport) {
    let Some(cp) = &report.control_plane else {
        return;
    };
    let _ = writeln!(out, "control plane");
    let mut rows = vec![
        ["APISERVER", "URL", "VERSION", "READYZ"]
            .map(String::from)
            .to_vec(),
    ];
    for a in &cp.apiservers {
        let readyz = match (&a.error, a.ready) {
            (Some(e), _) => format!("no answer: {e}"),
            (None, true) => "ok".to_string(),
            (None, false) => format!("NOT READY: {}", a.failing.join(", ")),
        };
        rows.push(vec![
            a.host.clone(),
            a.url.clone(),
            a.version.clone().unwrap_or_else(|| "-".into()),
            readyz,
        ]);
    }
    table(out, &rows);
    for l in &cp.leases {
        let holder = match (&l.holder, &l.error) {
            (Some(h), _) => format!("held by {h}"),
            (None, Some(e)) => format!("unknown: {e}"),
            (None, None) => "held by NO host".to_string(),
        };
        let _ = writeln!(out, "  lease {}: {holder}", l.name);
    }
    if !cp.nodes.is_empty() {
        let mut rows = vec![
            ["NODE", "STATUS", "KUBELET", "POD CIDR"]
                .map(String::from)
                .to_vec(),
        ];
        for n in &cp.nodes {
            let (state, version, cidr) = match (&n.node, &n.error) {
                (_, Some(e)) => (format!("unknown: {e}"), "-".into(), "-".into()),
                (None, None) => ("NOT REGISTERED".to_string(), "-".into(), "-".into()),
                (Some(s), None) => (
                    match (s.ready, s.unschedulable) {
                        (true, false) => "Ready".to_string(),
                        (true, true) => "Ready, cordoned".to_string(),
                        (false, _) => format!("NOT READY: {}", s.why),
                    },
                    s.kubelet_version.clone(),
                    if s.pod_cidr.is_empty() {
                        "-".to_string()
                    } else {
                        s.pod_cidr.clone()
                    },
                ),
            };
            rows.push(vec![n.host.clone(), state, version, cidr]);
        }
        out.push('\n');
        table(out, &rows);
    }
    out.push('\n');
}

fn certificates_section(out: &mut String, report: &StatusReport) {
    let c = &report.certificates;
    if let Some(e) = &c.error {
        let _ = writeln!(out, "certificates: cannot read: {e}\n");
        return;
    }
    let _ = write!(
        out,
        "certificates: {} valid, {} expiring within {EXPIRING_WITHIN_DAYS} days, {} expired, {} missing, {} unreadable",
        c.valid,
        c.expiring.len(),
        c.expired.len(),
        c.missing.len(),
        c.unreadable.len()
    );
    if let Some(s) = &c.soonest {
        let _ = write!(
            out,
            "; first to expire: {} in {} days ({})",
            s.name,
            s.days_left.unwrap_or_default(),
            s.expires.as_deref().unwrap_or("?")
        );
    }
    out.push_str("\n\n");
}

pub fn render_text(report: &StatusReport) -> String {
    let mut out = String::new();
    etcd_section(&mut out, report);
    hosts_section(&mut out, report);
    control_plane_section(&mut out, report);
    certificates_section(&mut out, report);
    let problems = report.problems();
    if problems.is_empty() {
        let _ = writeln!(out, "cluster {}: HEALTHY", report.cluster);
    } else {
        let _ = writeln!(
            out,
            "cluster {}: DEGRADED, {} problem(s):",
            report.cluster,
            problems.len()
        );
        for p in problems {
            let _ = writeln!(out, "  - {p}");
        }
    }
    out
}
