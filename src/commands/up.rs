//! `kinit up`: the playbook for the cluster's topology, run against its hosts.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::{CommandError, CommandResult, exit, remote};
use crate::cli::GlobalOptions;
use crate::config::Topology;
use crate::engine::{self, Engine, RunError, RunOptions};
use crate::render::Templates;
use crate::ssh::Pool;
use crate::ui::up::UpProgress;

#[derive(Debug, Clone)]
pub struct UpOptions {
    pub topology: Option<Topology>,
    pub run: RunOptions,
    pub accept_new_host_keys: bool,
    pub playbooks: Option<PathBuf>,
    pub templates: Option<PathBuf>,
}

pub fn run(global: &GlobalOptions, opts: &UpOptions) -> CommandResult {
    let inventory = remote::load_inventory(global)?;
    if let Some(t) = opts.topology
        && t != inventory.topology
    {
        return Err(CommandError::Usage(format!(
            "--topology {t} does not match {}: spec.topology is {}",
            global.config_path.display(),
            inventory.topology
        )));
    }
    let playbook = engine::playbook::load(opts.playbooks.as_deref())
        .map_err(|e| CommandError::Usage(e.to_string()))?;
    let templates = match &opts.templates {
        Some(dir) => Templates::with_overrides(dir),
        None => Templates::embedded(),
    }
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

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CommandError::Failed(format!("cannot start the async runtime: {e}")))?;
    let progress = Arc::new(UpProgress::new(global, opts.run.dry_run));
    let cancel = CancellationToken::new();
    let result = runtime.block_on(async {
        let on_ctrl_c = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                on_ctrl_c.cancel();
            }
        });
        let pool = Arc::new(Pool::new(ssh));
        let mut engine = Engine {
            inventory,
            playbook,
            templates,
            pool: pool.clone(),
            targets,
            observer: progress.clone(),
            cancel: cancel.clone(),
        };
        let r = engine.run(&opts.run).await;
        pool.close_all().await;
        r
    });
    progress.finish();
    match result {
        Ok(summary) => {
            progress.summary(&summary);
            Ok(ExitCode::SUCCESS)
        }
        Err(RunError::Interrupted) => {
            progress.interrupted();
            Ok(ExitCode::from(exit::INTERRUPTED))
        }
        Err(RunError::UnknownPhase(e)) => Err(CommandError::Usage(e.to_string())),
        Err(e) => {
            progress.failure(&e, &resume_command(global, &e));
            Ok(ExitCode::from(exit::FAILURE))
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
        "lock" | "preflight" => format!("kinit -c {quoted} up"),
        p => format!("kinit -c {quoted} up --from-phase {p}"),
    })
}
