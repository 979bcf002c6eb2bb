//! `kinit preflight`: probe every host at once and report what must be fixed before `kinit up`.

use std::collections::BTreeMap;
use std::path::Path;

use super::{CommandError, CommandResult, Outcome, remote};
use crate::config::Role;
use crate::config::template::{InitShape, render};
use crate::config::{self, Topology};
use crate::facts::probe::{ProbeRequest, script};
use crate::facts::{HostFacts, ProbeParseError};
use crate::inventory::Inventory;
use crate::preflight::{HostObservation, IgnoreSet, OperatorView, evaluate, gather};
use crate::ui::{GlobalOptions, OutputFormat};

#[derive(Debug, Clone)]
pub struct PreflightOptions {
    /// Check this machine instead of the hosts in the config.
    pub local: bool,
    pub ignore: IgnoreSet,
    pub accept_new_host_keys: bool,
    pub concurrency: usize,
    /// How long each host's probe may take.
    pub probe_timeout: std::time::Duration,
}

pub fn run(global: &GlobalOptions, opts: &PreflightOptions) -> CommandResult {
    let (inventory, observations, operator) = if opts.local {
        local(global)?
    } else {
        let inventory =
            remote::load_inventory(global).map_err(|e| CommandError::CannotCheck(Box::new(e)))?;
        remote::check_bundle(&inventory)?;
        let hosts: Vec<_> = inventory.hosts.iter().collect();
        let (targets, ssh) =
            remote::connect_options(&inventory, &hosts, opts.accept_new_host_keys, false)?;
        let finished = remote::with_remote(ssh, |pool, cancel| {
            let inventory = &inventory;
            async move {
                gather::gather(
                    inventory,
                    pool,
                    targets,
                    opts.concurrency,
                    opts.probe_timeout,
                    &cancel,
                )
                .await
            }
        })?;
        if finished.interrupted {
            return Ok(Outcome::Interrupted);
        }
        let (observations, operator) = finished.value;
        (inventory, observations, operator)
    };

    let report = evaluate(&inventory, &observations, &operator, &opts.ignore);
    match global.output {
        OutputFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("serializable")
        ),
        OutputFormat::Text => print!(
            "{}",
            crate::ui::preflight::render(&report, global.verbosity > 0)
        ),
    }
    Ok(Outcome::failed_if(report.failed()))
}

type Gathered = (Inventory, BTreeMap<String, HostObservation>, OperatorView);

/// This machine, probed with the same script through the local shell. When the config names
/// this machine (by hostname), it is checked for that host's roles; otherwise as a stacked
/// control-plane host, which is what `kubeadm init` checks.
fn local(global: &GlobalOptions) -> Result<Gathered, CommandError> {
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .map_err(CommandError::io("cannot read this machine's hostname"))?;
    let from_config = config::load(&global.config_path).ok().and_then(|loaded| {
        let dir = global.config_path.parent().unwrap_or(Path::new("."));
        let mut inv = Inventory::from_config(&loaded.config, dir, None).ok()?;
        inv.hosts.retain(|h| h.name == hostname);
        (!inv.hosts.is_empty()).then_some(inv)
    });
    let mut inventory = match from_config {
        Some(inv) => inv,
        None => {
            let text = render(InitShape {
                topology: Topology::Stacked,
                control_planes: 1,
                workers: 0,
                etcd_hosts: 0,
            })
            .map_err(|e| CommandError::Internal(e.to_string()))?;
            let (cfg, _) = config::check(Path::new("built-in"), text);
            let cfg = cfg.ok_or_else(|| {
                CommandError::Internal("the built-in config does not parse".into())
            })?;
            let mut inv = Inventory::from_config(&cfg, Path::new("."), None)?;
            inv.hosts[0].name = hostname.clone();
            // No VIP of ours exists here to look at.
            inv.endpoint.load_balancer = config::LoadBalancerKind::External;
            inv
        }
    };
    inventory.hosts.truncate(1);
    let req = ProbeRequest {
        etcd_data_dir: inventory.hosts[0]
            .has(Role::Etcd)
            .then(|| inventory.etcd.data_dir.clone()),
        connects: Vec::new(),
        ports: crate::components::ports_on(&inventory, &inventory.hosts[0])
            .iter()
            .map(|p| p.port)
            .collect(),
    };
    let script = script(&req).map_err(|e| CommandError::Usage(e.to_string()))?;
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(&script)
        .output()
        .map_err(CommandError::io("cannot run the probe"))?;
    let observation = match HostFacts::parse(&String::from_utf8_lossy(&out.stdout)) {
        Ok(facts) => HostObservation::Reached {
            facts: Box::new(facts),
            clock_skew: None,
        },
        Err(ProbeParseError::NoBash) => HostObservation::NoBash,
        Err(e) => HostObservation::Unreachable {
            reason: e.to_string(),
        },
    };
    let name = inventory.hosts[0].name.clone();
    Ok((
        inventory,
        BTreeMap::from([(name, observation)]),
        OperatorView::default(),
    ))
}
