//! Whether a new lab may be made here: it must fit this machine (memory, disk, CPUs) and have a
//! subnet, bridge and interface names nothing else uses (picking a free /24 when none is given).

use super::plan::{DEFAULT_SUBNET, LabPlan, SubnetPick, pick_subnet};
use super::state::LabState;
use super::{LabError, bridge, capacity, image, labs_dir, recipe};

/// `KINIT_LAB_SKIP_CAPACITY=1`: create a new lab without checking that it fits this machine.
pub const SKIP_CAPACITY_ENV: &str = "KINIT_LAB_SKIP_CAPACITY";
/// Where the automatic subnet pick starts (default [`DEFAULT_SUBNET`]); it walks the /24s from
/// there to the end of that /16.
pub const FIRST_SUBNET_ENV: &str = "KINIT_LAB_FIRST_SUBNET";

/// A new lab of `nodes` nodes must fit this machine's free memory, the free disk where labs
/// (and the image, under the same state directory) are kept, and its CPUs.
pub(super) fn check_capacity(
    name: &str,
    nodes: u32,
    workload: capacity::LabWorkload,
) -> Result<(), LabError> {
    if std::env::var_os(SKIP_CAPACITY_ENV).is_some_and(|v| v == "1") {
        return Ok(());
    }
    let dir = labs_dir();
    let cap = capacity::measure(&dir)?;
    let built = image::is_built(&super::images_dir(), &recipe::BOOKWORM);
    capacity::check(&cap, nodes, built, workload).map_err(|mut room| {
        room.disk_dir = dir;
        LabError::NoRoom {
            lab: name.to_string(),
            room: Box::new(room),
        }
    })
}

/// The first /24 from [`DEFAULT_SUBNET`] (or `KINIT_LAB_FIRST_SUBNET`) that no other lab
/// records and nothing on this machine uses.
pub(super) fn pick_free_subnet(plan: &LabPlan) -> Result<SubnetPick, LabError> {
    let first = match std::env::var(FIRST_SUBNET_ENV) {
        Ok(text) => text
            .parse::<ipnet::Ipv4Net>()
            .ok()
            .filter(|n| n.network().is_private())
            .ok_or_else(|| {
                LabError::Invalid(format!(
                    "{FIRST_SUBNET_ENV}={text}: expected a private IPv4 subnet such as {DEFAULT_SUBNET}"
                ))
            })?,
        Err(_) => DEFAULT_SUBNET.parse().expect("default subnet parses"),
    };
    let mut labs = Vec::new();
    if let Ok(entries) = std::fs::read_dir(labs_dir()) {
        for entry in entries.flatten() {
            let other = entry.file_name().to_string_lossy().into_owned();
            if other == plan.name {
                continue;
            }
            // A lab whose state cannot be read is not one to keep a subnet for; its bridge,
            // if it has one, still shows among this machine's networks.
            if let Ok(Some(state)) = LabState::load(&entry.path()) {
                labs.push((other, state.plan.subnet));
            }
        }
    }
    labs.sort();
    let machine = bridge::machine_networks()?;
    pick_subnet(first, &labs, &machine, &plan.bridge)
}

/// A new lab may not share its subnet, bridge or interface names with anything on the machine.
pub(super) fn check_free(plan: &LabPlan) -> Result<(), LabError> {
    if bridge::link_exists(&plan.bridge) {
        return Err(LabError::Invalid(format!(
            "a network interface named {} already exists, but lab `{}` has no recorded state; \
             if it is a leftover, remove it with `ip link del {}`",
            plan.bridge, plan.name, plan.bridge
        )));
    }
    for n in &plan.nodes {
        if bridge::link_exists(&n.veth) {
            return Err(LabError::Invalid(format!(
                "a network interface named {} (node {}'s) already exists; remove it with `ip link del {}`",
                n.veth, n.name, n.veth
            )));
        }
    }
    let users = bridge::subnet_users(plan.subnet, &plan.bridge)?;
    if !users.is_empty() {
        return Err(LabError::SubnetInUse {
            subnet: plan.subnet.to_string(),
            used_by: users.join(", "),
        });
    }
    Ok(())
}
