//! What `kinit remove` shows: the plan before a confirmation (and for `--dry-run`), and the
//! report.

use std::fmt::Write;

use crate::lifecycle::remove::{RemovePlan, RemoveReport};
use crate::ui::lifecycle::reset_report_text;

/// The plan, step by step, in the order it is carried out.
pub fn plan_text(p: &RemovePlan) -> String {
    let mut out = format!("kinit remove will take out {}:\n", p.hosts.join(", "));
    match &p.etcd {
        Some(e) => {
            if let Some(leader) = &e.hand_over {
                let _ = writeln!(
                    out,
                    "  etcd: {leader} leads; leadership moves to {} first",
                    e.via.name
                );
            }
            for m in &e.members {
                let _ = writeln!(
                    out,
                    "  etcd: remove member {} ({}{}) through {}",
                    m.name,
                    m.id,
                    if m.healthy { "" } else { ", unhealthy" },
                    e.via.name
                );
            }
            let _ = writeln!(out, "  etcd quorum: {}", e.quorum.arithmetic());
            for f in &e.forced {
                let _ = writeln!(out, "  WARNING (--force): {f}");
            }
        }
        None => out.push_str("  etcd: no live member belongs to these hosts\n"),
    }
    if p.reset.is_empty() {
        let _ = writeln!(
            out,
            "  no reset: {} gone for good (--unreachable), never contacted",
            p.hosts.join(", ")
        );
    } else {
        let _ = writeln!(
            out,
            "  reset {} (services stopped, kinit's files removed, etcd data moved aside)",
            p.reset.join(", ")
        );
    }
    if !p.update.is_empty() {
        let _ = writeln!(
            out,
            "  then, one host at a time, {}: {} rendered without them (what changed reloads or \
             restarts what it feeds)",
            p.update.join(", "),
            p.files.join(", ")
        );
    }
    out
}

pub fn report_text(r: &RemoveReport, config: &str) -> String {
    let mut out = String::new();
    for d in &r.drained {
        let _ = writeln!(out, "haproxy: {d}");
    }
    if r.dry_run {
        out.push_str(&plan_text(&r.plan));
    } else if let Some(e) = &r.plan.etcd {
        if let Some(leader) = &e.hand_over {
            let _ = writeln!(
                out,
                "etcd: leadership moved from {leader} to {}",
                e.via.name
            );
        }
        for m in &e.members {
            let _ = writeln!(out, "etcd: removed member {} ({})", m.name, m.id);
        }
    }
    if let Some(reset) = &r.reset {
        out.push_str(&reset_report_text(reset));
    }
    for n in &r.gone_nodes {
        let _ = writeln!(out, "{}: {}", n.host, super::lifecycle::node_text(n));
    }
    for u in &r.updates {
        let verb = if r.dry_run { "would write" } else { "wrote" };
        let files = if u.written.is_empty() {
            "nothing to change".to_string()
        } else {
            format!("{verb} {}", u.written.join(", "))
        };
        let units = if u.units.is_empty() {
            String::new()
        } else {
            format!("; {}", u.units.join(", "))
        };
        match &u.error {
            Some(e) => {
                let _ = writeln!(out, "{}: FAILED: {e}", u.host);
            }
            None => {
                let _ = writeln!(out, "{}: {files}{units}", u.host);
            }
        }
    }
    if r.dry_run {
        out.push_str("dry run: nothing was changed\n");
    } else if r.ok() {
        let _ = writeln!(
            out,
            "Now delete {} from the hosts of {config}.",
            r.delete_from_config.join(", ")
        );
    }
    out
}
