//! `kinit preflight`: probe every host at once and report what must be fixed before `kinit up`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::{CommandError, CommandResult, exit, remote};
use crate::cli::GlobalOptions;
use crate::config::template::{InitShape, render};
use crate::config::{self, Topology};
use crate::facts::HostFacts;
use crate::facts::probe::{ProbeRequest, script};
use crate::inventory::Inventory;
use crate::preflight::{HostObservation, IgnoreSet, OperatorView, evaluate, gather};
use crate::ssh::Pool;
use crate::ui::OutputFormat;

#[derive(Debug, Clone)]
pub struct PreflightOptions {
    /// Check this machine instead of the hosts in the config.
    pub local: bool,
    pub ignore: IgnoreSet,
    pub accept_new_host_keys: bool,
    pub concurrency: usize,
}

pub fn run(global: &GlobalOptions, opts: &PreflightOptions) -> CommandResult {
    let (inventory, observations, operator) = if opts.local {
        local(global)?
    } else {
        let inventory = remote::load_inventory(global).map_err(|e| match e {
            // An invalid config is a usage error for preflight (exit 2), not a failed check.
            CommandError::Failed(m) => CommandError::Usage(m),
            other => other,
        })?;
        let hosts: Vec<_> = inventory.hosts.iter().collect();
        let (targets, ssh) =
            remote::connect_options(&inventory, &hosts, opts.accept_new_host_keys, false)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| CommandError::Failed(format!("cannot start the async runtime: {e}")))?;
        let cancel = CancellationToken::new();
        let (observations, operator, interrupted) = runtime.block_on(async {
            let on_ctrl_c = cancel.clone();
            tokio::spawn(async move {
                if tokio::signal::ctrl_c().await.is_ok() {
                    on_ctrl_c.cancel();
                }
            });
            let pool = Arc::new(Pool::new(ssh));
            let (obs, op) =
                gather::gather(&inventory, pool.clone(), targets, opts.concurrency, &cancel).await;
            pool.close_all().await;
            (obs, op, cancel.is_cancelled())
        });
        if interrupted {
            return Ok(ExitCode::from(exit::INTERRUPTED));
        }
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
    Ok(if report.failed() {
        ExitCode::from(exit::FAILURE)
    } else {
        ExitCode::SUCCESS
    })
}

type Gathered = (Inventory, BTreeMap<String, HostObservation>, OperatorView);

/// This machine, probed with the same script through the local shell. When the config names
/// this machine (by hostname), it is checked for that host's roles; otherwise as a stacked
/// control-plane host, which is what `kubeadm init` checks.
fn local(global: &GlobalOptions) -> Result<Gathered, CommandError> {
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .map_err(|e| CommandError::Failed(format!("cannot read this machine's hostname: {e}")))?;
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
            .map_err(|e| CommandError::Failed(e.to_string()))?;
            let (cfg, _) = config::check(Path::new("built-in"), text);
            let cfg = cfg.ok_or_else(|| {
                CommandError::Failed("internal error: the built-in config does not parse".into())
            })?;
            let mut inv = Inventory::from_config(&cfg, Path::new("."), None)
                .map_err(|e| CommandError::Failed(e.to_string()))?;
            inv.hosts[0].name = hostname.clone();
            // No VIP of ours exists here to look at.
            inv.endpoint.load_balancer = config::LoadBalancerKind::External;
            inv
        }
    };
    inventory.hosts.truncate(1);
    let req = ProbeRequest {
        etcd_data_dir: inventory.etcd.data_dir.clone(),
        peers: Vec::new(),
    };
    let script = script(&req).map_err(|e| CommandError::Usage(e.to_string()))?;
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(&script)
        .output()
        .map_err(|e| CommandError::Failed(format!("cannot run the probe: {e}")))?;
    let observation = match HostFacts::parse(&String::from_utf8_lossy(&out.stdout)) {
        Ok(facts) => HostObservation::Reached {
            facts: Box::new(facts),
            clock_skew: None,
        },
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
