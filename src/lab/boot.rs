//! Booting lab nodes: a node's overlay mounted and systemd-nspawn started on it, then the wait
//! until its sshd answers.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use super::plan::{LabPlan, PlannedNode};
use super::process::RecordedProcess;
use super::ssh_probe::sshd_answers;
use super::state::{LabState, NodeRecord};
use super::{LabError, Reporter, node};

/// How long a booting node gets until its sshd must answer.
const BOOT_TIMEOUT: Duration = Duration::from_secs(120);

/// A node being booted by this run.
pub(super) struct Booting {
    pub(super) name: String,
    address: Ipv4Addr,
    child: Child,
    started: Instant,
}

/// Clean up after a previous run of this node, write its identity on its first boot, mount its
/// overlay and start systemd-nspawn on it.
pub(super) fn boot(
    rec: &mut NodeRecord,
    plan: &LabPlan,
    planned: &PlannedNode,
    image: &Path,
    lab_key: &str,
    reporter: &dyn Reporter,
) -> Result<Booting, LabError> {
    reporter.step(&format!("{}: booting", planned.name));
    // Whatever a previous run left (a crash, a killed nspawn) goes first.
    node::stop(rec, planned)?;
    if !node::identity_written(rec) {
        node::write_identity(rec, plan, planned, lab_key)?;
    }
    node::mount_overlay(rec, image)?;
    let started = Instant::now();
    let child = match node::spawn(rec, plan, planned) {
        Ok(c) => c,
        Err(e) => {
            let _ = node::unmount_overlay(rec);
            return Err(e);
        }
    };
    rec.nspawn = RecordedProcess::capture(child.id() as i32);
    Ok(Booting {
        name: planned.name.clone(),
        address: planned.address,
        child,
        started,
    })
}

/// Wait until sshd answers on every booting node (each node's systemd found as nspawn's only
/// child), or fail naming the node and its log's tail.
pub(super) fn wait_for_ssh(
    state: &mut LabState,
    plan: &LabPlan,
    booting: &mut [Booting],
    reporter: &dyn Reporter,
) -> Result<(), LabError> {
    let mut pending: Vec<usize> = (0..booting.len()).collect();
    let deadline = Instant::now() + BOOT_TIMEOUT;
    if !pending.is_empty() {
        reporter.step(&format!("waiting for sshd on {} node(s)", pending.len()));
    }
    while !pending.is_empty() {
        let mut still = Vec::new();
        for i in pending {
            let b = &mut booting[i];
            let rec = state.node(&b.name).expect("recorded");
            if let Ok(Some(status)) = b.child.try_wait() {
                return Err(LabError::node_step(
                    &b.name,
                    "booting",
                    format!(
                        "systemd-nspawn exited ({status}); its log {} ends with:\n{}",
                        rec.log.display(),
                        node::log_tail(rec, 15)
                    ),
                ));
            }
            if sshd_answers(
                SocketAddr::from((b.address, 22)),
                Duration::from_millis(500),
            ) {
                let rec = state.node_mut(&b.name).expect("recorded");
                rec.leader = rec.nspawn.as_ref().and_then(node::find_leader);
                if rec.leader.is_none() {
                    return Err(LabError::node_step(
                        &b.name,
                        "booting",
                        "sshd answers, but the node's systemd is not the only child of systemd-nspawn",
                    ));
                }
                reporter.done(
                    &format!("{}: sshd answers on {}", b.name, b.address),
                    b.started.elapsed(),
                );
            } else {
                still.push(i);
            }
        }
        pending = still;
        if pending.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            let b = &booting[pending[0]];
            let rec = state.node(&b.name).expect("recorded");
            return Err(LabError::node_step(
                &b.name,
                "waiting for sshd",
                format!(
                    "no SSH banner from {}:22 after {}s (lab {}); its log {} ends with:\n{}",
                    b.address,
                    BOOT_TIMEOUT.as_secs(),
                    plan.name,
                    rec.log.display(),
                    node::log_tail(rec, 15)
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}
