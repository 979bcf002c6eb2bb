//! What `reset` and `etcd snapshot` show: the plan before a confirmation, and the reports.

use std::fmt::Write;

use crate::etcd::snapshot_file::{Integrity, SnapshotStatus};
use crate::lifecycle::reset::{HostAction, ResetReport};
use crate::lifecycle::reset_plan::HostReset;
use crate::lifecycle::snapshot::restore::{RestorePlan, RestoreReport};
use crate::lifecycle::snapshot::save::SavedSnapshot;
use crate::planning::membership::ResetMembership;

/// What reset will take off each host, before the operator confirms.
pub fn reset_plan_text(plans: &[HostReset], purge: bool) -> String {
    let mut out = String::from("kinit reset will, on each host:\n");
    for p in plans {
        let _ = writeln!(out, "  {}:", p.host);
        if !p.units.is_empty() {
            let _ = writeln!(out, "    stop and disable: {}", p.units.join(", "));
        }
        let files = p.manifests.len() + p.files.len();
        let _ = writeln!(
            out,
            "    remove kinit's files (up to {files}: manifests, certificates, kubeconfigs, configs, units, binaries)"
        );
        if let Some(d) = &p.data_dir {
            if purge {
                let _ = writeln!(out, "    DELETE etcd's data dir {d} (--purge)");
            } else {
                let _ = writeln!(out, "    move etcd's data dir {d} aside (kept)");
            }
            let _ = writeln!(
                out,
                "      (only when it holds nothing but etcd's `{}`: otherwise nothing on the host is touched)",
                crate::host_paths::ETCD_DATA_ENTRY
            );
        }
    }
    out.push_str(
        "etcd members of hosts reset while others stay are removed from the cluster first.\n",
    );
    out
}

pub(crate) fn action_text(a: &HostAction) -> String {
    match a {
        HostAction::Stop(u) => format!("stopped {u}"),
        HostAction::Disable(u) => format!("disabled {u}"),
        HostAction::Start(u) => format!("started {u}"),
        HostAction::Remove(p) => format!("removed {p}"),
        HostAction::Move { from, to } => format!("moved {from} -> {to}"),
        HostAction::Purge(p) => format!("deleted etcd's data dir {p}"),
        HostAction::Rmdir(d) => format!("removed empty {d}"),
        HostAction::Failed(what) => format!("FAILED: {what}"),
        HostAction::Kept { path, found } => format!(
            "kept {path}: it holds {}, which kinit did not put there (kinit's own entries in it were removed)",
            found.join(", ")
        ),
        HostAction::ForeignData { dir, found } => format!(
            "{dir} holds {}, which is not etcd's: nothing in it was touched",
            found.join(", ")
        ),
        HostAction::MountPoint(dir) => {
            format!("{dir} is a mount point: it stays, what etcd keeps in it moves")
        }
        HostAction::Restored { member, dir } => format!("restored member {member} into {dir}"),
    }
}

pub(crate) fn dry_text(a: &HostAction) -> String {
    match a {
        HostAction::Stop(u) => format!("would stop {u}"),
        HostAction::Disable(u) => format!("would disable {u}"),
        HostAction::Start(u) => format!("would start {u}"),
        HostAction::Remove(p) => format!("would remove {p}"),
        HostAction::Move { from, to } => format!("would move {from} -> {to}"),
        HostAction::Purge(p) => format!("would delete etcd's data dir {p}"),
        HostAction::Restored { member, dir } => format!("would restore member {member} into {dir}"),
        other => action_text(other),
    }
}

/// One line on a reset host's Node object.
pub(crate) fn node_text(n: &crate::lifecycle::reset::NodeLeaving) -> String {
    let mut parts = Vec::new();
    if let Some(d) = &n.drained {
        parts.push(if d.evicted.is_empty() {
            "Node cordoned (no pods to evict)".to_string()
        } else {
            format!("Node drained: evicted {}", d.evicted.join(", "))
        });
        if !d.left.is_empty() {
            parts.push(format!(
                "still there at the deadline: {}",
                d.left.join(", ")
            ));
        }
    }
    if n.deleted {
        parts.push("Node deleted".into());
    }
    if let Some(note) = &n.note {
        parts.push(note.clone());
    }
    parts.join("; ")
}

pub fn reset_report_text(r: &ResetReport) -> String {
    let mut out = String::new();
    match &r.membership {
        ResetMembership::Remove { members, via } => {
            for m in members {
                let verb = if r.dry_run { "would remove" } else { "removed" };
                let _ = writeln!(
                    out,
                    "etcd: {verb} member {} ({}) through {via}",
                    m.name, m.id
                );
            }
        }
        ResetMembership::WholeCluster => {
            out.push_str("etcd: every member is reset; no member removal needed\n")
        }
        ResetMembership::Untouched => {}
    }
    for h in &r.hosts {
        let state = match (&h.error, h.ok()) {
            (Some(_), _) => "FAILED",
            (None, false) => "partly reset",
            (None, true) if r.dry_run => "dry run",
            (None, true) => "reset",
        };
        let _ = writeln!(out, "{}: {state}", h.host);
        if let Some(e) = &h.error {
            let _ = writeln!(out, "  {e}");
        }
        for a in &h.actions {
            let line = if r.dry_run {
                dry_text(a)
            } else {
                action_text(a)
            };
            let _ = writeln!(out, "  {line}");
        }
        if h.error.is_none() && h.actions.is_empty() {
            out.push_str("  nothing of kinit's was there\n");
        }
        if let Some(n) = r.nodes.iter().find(|n| n.host == h.host) {
            let _ = writeln!(out, "  {}", node_text(n));
        }
        for k in &h.kept {
            let _ = writeln!(out, "  kept: {k}");
        }
    }
    let failed = r.hosts.iter().filter(|h| !h.ok()).count();
    let _ = writeln!(
        out,
        "{} of {} host(s) {}; the PKI on this machine is untouched.",
        r.hosts.len() - failed,
        r.hosts.len(),
        if r.dry_run { "checked" } else { "reset" }
    );
    out
}

pub fn snapshot_status_text(s: &SnapshotStatus) -> String {
    let integrity = match s.integrity {
        Integrity::Verified => "verified (etcd's sha256 trailer matches)",
        Integrity::Absent => "absent (a plain database file: not restorable as a snapshot)",
    };
    format!(
        "integrity: {integrity}\nhash:      {:08x}\nrevision:  {}\nkeys:      {}\nsize:      {} bytes (database {} bytes)\nsha256:    {}\n",
        s.hash, s.revision, s.total_keys, s.file_size, s.total_size, s.sha256
    )
}

pub fn saved_text(s: &SavedSnapshot) -> String {
    format!(
        "saved {} (from {}, mode 0600)\n{}",
        s.path.display(),
        s.member,
        snapshot_status_text(&s.status)
    )
}

pub fn save_plan_text(p: &crate::lifecycle::snapshot::save::SavePlan) -> String {
    format!(
        "would save a snapshot from {} to {} (mode 0600); nothing was written\n",
        p.member,
        p.path.display()
    )
}

pub fn restore_plan_text(
    file: &std::path::Path,
    status: &SnapshotStatus,
    hosts: &[String],
) -> String {
    format!(
        "kinit etcd snapshot restore will bring etcd back from {} (revision {}, {} keys) on {}:\n  \
         control-plane manifests moved aside, etcd stopped, each data dir moved aside (kept),\n  \
         the snapshot restored as a NEW cluster (new cluster token), all members started together,\n  \
         the manifests put back once etcd is healthy. Writes made after the snapshot are lost.\n",
        file.display(),
        status.revision,
        status.total_keys,
        hosts.join(", ")
    )
}

/// `restore --dry-run`: per host, what the restore would stop, move and start.
pub fn restore_dry_run_text(plan: &RestorePlan) -> String {
    let mut out = format!(
        "dry run: kinit etcd snapshot restore would bring etcd back from {} (revision {}, {} \
         keys); every host answered and passed the checks:\n",
        plan.snapshot.display(),
        plan.revision,
        plan.total_keys
    );
    for h in &plan.hosts {
        let _ = writeln!(out, "  {}:", h.host);
        if !h.units_stopped.is_empty() {
            let _ = writeln!(
                out,
                "    stop {} (started again once etcd is healthy)",
                h.units_stopped.join(", ")
            );
        }
        if !h.manifests_aside.is_empty() {
            let _ = writeln!(
                out,
                "    hold {} in {} (put back once etcd is healthy)",
                h.manifests_aside.join(", "),
                h.aside
            );
        }
        if let Some(m) = &h.member {
            let what = if m.mount_point {
                format!("the contents of {} (a mount point)", m.data_dir)
            } else {
                m.data_dir.clone()
            };
            let _ = writeln!(out, "    move {what} to {} (kept)", m.moved_to);
            let _ = writeln!(
                out,
                "    restore the snapshot as member {} ({}) of a new cluster; write {}; start etcd",
                h.host, m.peer_url, m.config
            );
        }
    }
    out.push_str("nothing was changed: no lock taken, the cluster token kept\n");
    out
}

pub fn restored_text(r: &RestoreReport) -> String {
    let mut out = format!(
        "restored {} in {:.1}s: cluster {} with {} member(s)\n",
        r.snapshot.display(),
        r.seconds,
        r.cluster_id,
        r.members.len()
    );
    for m in &r.members {
        let _ = writeln!(
            out,
            "  {}: healthy{}, revision {}; old data dir: {}",
            m.host,
            if m.leader { ", leader" } else { "" },
            m.revision,
            m.old_data_dir.as_deref().unwrap_or("(none was there)")
        );
    }
    for m in &r.manifests_moved {
        let _ = writeln!(
            out,
            "  control-plane manifests were held in {m} and are back"
        );
    }
    for u in &r.units_restarted {
        let _ = writeln!(
            out,
            "  control-plane units stopped for the restore and started again: {u}"
        );
    }
    for k in &r.kept_aside {
        let _ = writeln!(out, "  kept: {k}");
    }
    out
}
