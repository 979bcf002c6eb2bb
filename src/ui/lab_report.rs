//! How `kinit lab up` and `kinit lab status` show a lab.

use std::fmt::Write;

use crate::lab::{LabStatus, NodeStatus, SubnetPick, UpOutcome};

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
    if let Some(pick) = &up.subnet_picked {
        out.push_str(&subnet_picked(pick));
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

/// Which subnet a new lab was given when none was asked for, and why not the ones before it.
pub fn subnet_picked(pick: &SubnetPick) -> String {
    const SHOWN: usize = 3;
    let mut out = format!("  subnet {} picked (no --subnet given", pick.subnet);
    if !pick.skipped.is_empty() {
        let named: Vec<String> = pick
            .skipped
            .iter()
            .take(SHOWN)
            .map(|s| format!("{} is used by {}", s.subnet, s.used_by))
            .collect();
        let _ = write!(out, "; {}", named.join("; "));
        if pick.skipped.len() > SHOWN {
            let _ = write!(out, "; and {} more", pick.skipped.len() - SHOWN);
        }
    }
    out.push_str(")\n");
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::plan::SkippedSubnet;

    #[test]
    fn a_picked_subnet_is_shown_with_what_holds_the_ones_before_it() {
        let skipped = |third: u8, by: &str| SkippedSubnet {
            subnet: format!("10.213.{third}.0/24").parse().unwrap(),
            used_by: by.to_string(),
        };
        let free = SubnetPick {
            subnet: "10.213.0.0/24".parse().unwrap(),
            skipped: vec![],
        };
        assert_eq!(
            subnet_picked(&free),
            "  subnet 10.213.0.0/24 picked (no --subnet given)\n"
        );
        let pick = SubnetPick {
            subnet: "10.213.4.0/24".parse().unwrap(),
            skipped: vec![
                skipped(0, "lab default"),
                skipped(1, "address 10.213.1.1/24 on eth1"),
                skipped(2, "lab b"),
                skipped(3, "lab c"),
            ],
        };
        assert_eq!(
            subnet_picked(&pick),
            "  subnet 10.213.4.0/24 picked (no --subnet given; 10.213.0.0/24 is used by lab default; \
             10.213.1.0/24 is used by address 10.213.1.1/24 on eth1; 10.213.2.0/24 is used by lab b; \
             and 1 more)\n"
        );
    }
}
