//! `kinit up`: the playbook for the cluster's topology, run against its hosts.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use super::{CommandError, CommandResult, Outcome, remote};
use crate::config::Topology;
use crate::engine::{self, Engine, RunError, RunOptions};
use crate::render::Templates;
use crate::ui::GlobalOptions;
use crate::ui::run_progress::RunProgress;

#[derive(Debug, Clone)]
pub struct UpOptions {
    pub topology: Option<Topology>,
    pub run: RunOptions,
    pub accept_new_host_keys: bool,
    pub playbooks: Option<PathBuf>,
    pub templates: Option<PathBuf>,
}

pub fn run(global: &GlobalOptions, opts: &UpOptions) -> CommandResult {
    run_with(global, opts, None)
}

/// `kinit up`, with certificates renewed as its first phase (see
/// [`engine::up_phase::Renewal`]).
pub fn run_with(
    global: &GlobalOptions,
    opts: &UpOptions,
    renew: Option<engine::up_phase::Renewal>,
) -> CommandResult {
    let inventory = remote::load_inventory(global)?;
    remote::check_bundle(&inventory)?;
    if let Some(t) = opts.topology
        && t != inventory.topology
    {
        return Err(CommandError::Usage(format!(
            "--topology {t} does not match {}: spec.topology is {}",
            global.config_path.display(),
            inventory.topology
        )));
    }
    let playbook = engine::playbook::load(opts.playbooks.as_deref())?;
    let templates = Templates::load(opts.templates.as_deref())
        .map_err(|e| CommandError::Usage(e.to_string()))?;
    let hosts: Vec<_> = inventory.hosts.iter().collect();
    let (targets, ssh) =
        remote::connect_options(&inventory, &hosts, opts.accept_new_host_keys, false)?;
    let targets: BTreeMap<_, _> = inventory
        .hosts
        .iter()
        .map(|h| h.name.clone())
        .zip(targets)
        .collect();

    let progress = Arc::new(RunProgress::new(global, opts.run.dry_run));
    let observer = progress.clone();
    let result = remote::with_remote(ssh, |pool, cancel| async move {
        let mut engine = Engine {
            inventory,
            playbook,
            templates,
            pool,
            targets,
            observer,
            cancel,
            renew,
        };
        engine.run(&opts.run).await
    })?
    .value;
    progress.finish();
    match result {
        Ok(summary) => {
            progress.summary(&summary);
            Ok(Outcome::Success)
        }
        Err(RunError::Interrupted) => {
            progress.interrupted();
            Ok(Outcome::Interrupted)
        }
        Err(RunError::UnknownPhase(e)) => Err(CommandError::Usage(e.to_string())),
        Err(e) => {
            progress.failure(&e, &resume_command(global, &e));
            Ok(Outcome::Failed)
        }
    }
}

/// The command that picks up where a failed run stopped.
fn resume_command(global: &GlobalOptions, e: &RunError) -> Option<String> {
    let phase = e.phase()?;
    let config = global.config_path.display().to_string();
    let quoted = shlex::try_quote(&config)
        .map(|c| c.into_owned())
        .unwrap_or(config);
    Some(match phase {
        // Renewing failed: no host changed; the command to repeat is the operator's own.
        engine::up_phase::RENEW_PHASE => return None,
        "lock" | "preflight" => format!("kinit -c {quoted} up"),
        p => format!("kinit -c {quoted} up --from-phase {p}"),
    })
}
