//! How `kinit lab up` and `kinit lab status` show a lab.

use std::fmt::Write;

use crate::lab::{LabStatus, NodeStatus, UpOutcome};

pub fn node_table(nodes: &[NodeStatus]) -> String {
    let mut out = format!(
        "  {:<6} {:<15} {:<9} {:<5} {:<20} {}\n",
        "NODE", "ADDRESS", "STATE", "SSH", "ROLES", "MACHINE-ID"
    );
    for n in nodes {
        let _ = writeln!(
            out,
            "  {:<6} {:<15} {:<9} {:<5} {:<20} {}",
            n.name,
            n.address,
            if n.running { "running" } else { "stopped" },
            if n.ssh { "yes" } else { "no" },
            n.roles.join(","),
            n.machine_id
        );
    }
    out
}

pub fn up_summary(up: &UpOutcome) -> String {
    let mut out = String::new();
    if up.started.is_empty() {
        let _ = writeln!(
            out,
            "lab {} is already up ({} on {})",
            up.name, up.subnet, up.bridge
        );
    } else {
        let _ = writeln!(
            out,
            "lab {} is up: {} on bridge {}, VIP {} (started {})",
            up.name,
            up.subnet,
            up.bridge,
            up.vip,
            up.started.join(", ")
        );
    }
    out.push_str(&node_table(&up.nodes));
    let _ = writeln!(out, "  ssh key:     {}", up.identity_file.display());
    let _ = writeln!(out, "  known_hosts: {}", up.known_hosts.display());
    let _ = writeln!(out, "  cluster:     {}", up.cluster_file.display());
    let name_flag = if up.name == crate::lab::plan::DEFAULT_NAME {
        String::new()
    } else {
        format!("--name {} ", up.name)
    };
    let _ = writeln!(
        out,
        "log in with:  kinit lab ssh {name_flag}{}",
        up.nodes.first().map_or("cp1", |n| n.name.as_str())
    );
    let _ = writeln!(
        out,
        "next:         kinit -c {} config validate",
        up.cluster_file.display()
    );
    out
}

pub fn status(labs: &[LabStatus]) -> String {
    if labs.is_empty() {
        return "no labs (start one with `kinit lab up`)\n".to_string();
    }
    let mut out = String::new();
    for lab in labs {
        let _ = writeln!(
            out,
            "lab {}: {} on bridge {}{} ({})",
            lab.name,
            lab.subnet,
            lab.bridge,
            if lab.bridge_present {
                ""
            } else {
                " (missing: run `kinit lab up` to repair)"
            },
            lab.lab_dir.display()
        );
        out.push_str(&node_table(&lab.nodes));
    }
    out
}
