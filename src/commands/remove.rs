//! `kinit remove HOST...`: take control-plane and etcd hosts out of the running cluster (see
//! `lifecycle::remove`).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use super::{CommandError, CommandResult, Outcome, remote};
use crate::engine::cluster_lock::LockRequest;
use crate::engine::lock::LockOwner;
use crate::etcd::ClientTls;
use crate::inventory::{Host, Inventory};
use crate::lifecycle::remove::{self, RemoveError, RemoveSettings};
use crate::lifecycle::snapshot::utc_stamp;
use crate::render::Templates;
use crate::ui::confirm::{self, Answer};
use crate::ui::remove as view;
use crate::ui::run_progress::RunProgress;
use crate::ui::{GlobalOptions, OutputFormat};

#[derive(Debug, Clone)]
pub struct RemoveOptions {
    pub hosts: Vec<String>,
    pub yes: bool,
    pub unreachable: bool,
    pub force: bool,
    pub dry_run: bool,
    /// Remove any lock, not only stale ones of this machine.
    pub break_lock: bool,
    pub accept_new_host_keys: bool,
    pub concurrency: usize,
    /// The template overrides `up` was given (`--templates`).
    pub templates: Option<std::path::PathBuf>,
}

pub fn run(global: &GlobalOptions, opts: &RemoveOptions) -> CommandResult {
    let inventory = remote::load_inventory(global)?;
    // A misspelt override stops the command before any host is asked anything.
    let templates = Templates::load(opts.templates.as_deref())
        .map_err(|e| CommandError::Usage(e.to_string()))?;
    let chosen = remove::chosen(&inventory, &opts.hosts)?;
    let contacted = contacted_hosts(&inventory, &chosen, opts.unreachable);
    let (targets, ssh) =
        remote::connect_options(&inventory, &contacted, opts.accept_new_host_keys, false)?;
    let targets: BTreeMap<_, _> = contacted
        .iter()
        .map(|h| h.name.clone())
        .zip(targets)
        .collect();
    let tls = ClientTls::from_pki_dir(&inventory.pki_dir).ok();
    let settings = settings(opts);
    let planned = remote::with_remote(ssh.clone(), |pool, _| {
        let (inventory, tls, targets, settings) = (&inventory, tls.as_ref(), &targets, &settings);
        let chosen = chosen.clone();
        async move { remove::plan(inventory, tls, &chosen, targets, &pool, settings).await }
    })?;
    if planned.interrupted {
        return Ok(Outcome::Interrupted);
    }
    let plan = planned.value?;
    if global.output == OutputFormat::Text {
        for w in plan.etcd.iter().flat_map(|e| &e.forced) {
            eprintln!("warning (--force): {w}");
        }
    }
    if !opts.dry_run && !opts.yes {
        let text = view::plan_text(&plan);
        match confirm::ask(&text, "Remove these hosts?").map_err(CommandError::io("asking"))? {
            Answer::Yes => {}
            Answer::No => return Err(CommandError::Declined),
            Answer::NoTerminal => {
                return Err(CommandError::NotConfirmed(
                    "kinit remove takes hosts out of the cluster: pass --yes to confirm \
                     (no terminal to ask on), or --dry-run to see the plan"
                        .into(),
                ));
            }
        }
    }
    let (inventory, tls, chosen, targets, templates, settings) = (
        &inventory,
        tls.as_ref(),
        &chosen,
        &targets,
        &templates,
        &settings,
    );
    // The reporter `kinit up` uses: the removal's phases as lines, bars or JSON events.
    let progress = std::sync::Arc::new(RunProgress::new(global, opts.dry_run));
    let observer: std::sync::Arc<dyn crate::engine::event::Observer> = progress.clone();
    // The lock, the members read again (the confirmation may have come long after the plan),
    // the removal, the lock released: all in `remove::run`.
    let remote::Finished { value, interrupted } =
        remote::with_remote(ssh, |pool, cancel| async move {
            let removal = remove::Removal {
                inv: inventory,
                tls,
                targets,
                pool,
                templates,
                settings,
                cancel: &cancel,
                observer,
            };
            remove::run(&removal, chosen, plan).await
        })?;
    progress.finish();
    let report = match value {
        Err(e @ (RemoveError::Interrupted | RemoveError::InterruptedDuring { .. }))
            if interrupted =>
        {
            eprintln!("{e}");
            return Ok(Outcome::Interrupted);
        }
        other => other?,
    };
    match global.output {
        OutputFormat::Json => progress.last_event("removed", &report),
        OutputFormat::Text => print!(
            "{}",
            view::report_text(&report, &global.config_path.display().to_string())
        ),
    }
    Ok(if interrupted {
        Outcome::Interrupted
    } else {
        Outcome::failed_if(!report.ok())
    })
}

/// Hosts kinit talks to: those that stay and hold a file naming the removed ones (the control
/// planes, the other nodes' pod routes), and the removed ones unless they are gone for good.
fn contacted_hosts<'a>(
    inventory: &'a Inventory,
    chosen: &[&Host],
    unreachable: bool,
) -> Vec<&'a Host> {
    let going: std::collections::BTreeSet<String> = chosen.iter().map(|h| h.name.clone()).collect();
    let updated = remove::hosts_to_update(&remove::without(inventory, &going));
    inventory
        .hosts
        .iter()
        .filter(|h| {
            if going.contains(&h.name) {
                !unreachable
            } else {
                updated.contains(&h.name)
            }
        })
        .collect()
}

fn settings(opts: &RemoveOptions) -> RemoveSettings {
    RemoveSettings {
        dry_run: opts.dry_run,
        force: opts.force,
        unreachable: opts.unreachable,
        concurrency: opts.concurrency,
        stamp: utc_stamp(SystemTime::now()),
        etcd_timeout: Duration::from_secs(5),
        lock: LockRequest {
            owner: LockOwner::current("remove"),
            break_lock: opts.break_lock,
            concurrency: opts.concurrency,
        },
    }
}
