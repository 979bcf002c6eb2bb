//! `kinit etcd snapshot save|status|restore` (see `lifecycle::snapshot`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::{CommandError, CommandResult, Outcome, remote};
use crate::config::Role;
use crate::engine::cluster_lock::LockRequest;
use crate::engine::lock::LockOwner;
use crate::etcd::ClientTls;
use crate::etcd::snapshot_file::{self, Integrity};
use crate::lifecycle::snapshot::restore::{self, RestoreSettings};
use crate::lifecycle::snapshot::{SnapshotError, save as saving, utc_stamp};
use crate::render::Templates;
use crate::ui::confirm::{self, Answer};
use crate::ui::lifecycle as view;
use crate::ui::run_progress::RunProgress;
use crate::ui::{GlobalOptions, OutputFormat};

#[derive(Debug, Clone)]
pub struct SaveOptions {
    pub output: Option<PathBuf>,
    pub accept_new_host_keys: bool,
    /// Find the member and say what a save would do; write nothing.
    pub dry_run: bool,
}

#[derive(Debug, Clone)]
pub struct RestoreOptions {
    pub file: PathBuf,
    pub yes: bool,
    /// Check everything a restore checks and say what it would do; change nothing.
    pub dry_run: bool,
    pub wait: Duration,
    /// Remove any lock, not only stale ones of this machine.
    pub break_lock: bool,
    pub accept_new_host_keys: bool,
    pub concurrency: usize,
    /// The template overrides `up` was given (`--templates`).
    pub templates: Option<PathBuf>,
}

/// What `save` did, or with `--dry-run` would do.
enum SaveResult {
    Saved(saving::SavedSnapshot),
    Planned(saving::SavePlan),
}

fn print_json(value: &impl serde::Serialize) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("serializable")
    );
}

fn etcd_client(inventory: &crate::inventory::Inventory) -> Result<ClientTls, CommandError> {
    ClientTls::from_pki_dir(&inventory.pki_dir).map_err(|e| {
        CommandError::Usage(format!(
            "{e}: the operator's etcd client certificate is needed (kinit certs generate)"
        ))
    })
}

pub fn save(global: &GlobalOptions, opts: &SaveOptions) -> CommandResult {
    let inventory = remote::load_inventory(global)?;
    let etcd_hosts: Vec<_> = inventory.with_role(Role::Etcd).collect();
    if etcd_hosts.is_empty() {
        return Err(SnapshotError::NoEtcdHosts.into());
    }
    let output = match &opts.output {
        Some(p) => p.clone(),
        None => {
            let dir = global.config_path.parent().unwrap_or(Path::new("."));
            saving::default_path(dir, &inventory.name, &utc_stamp(SystemTime::now()))
        }
    };
    // A name the operator chose is refused early when taken; kinit's own gives way to the
    // next free one. Either way the file lands with a no-replace rename.
    let numbered = opts.output.is_none();
    if !numbered && output.exists() {
        return Err(CommandError::Exists(output));
    }
    let tls = etcd_client(&inventory)?;
    let (targets, ssh) =
        remote::connect_options(&inventory, &etcd_hosts, opts.accept_new_host_keys, false)?;
    let targets: Vec<_> = etcd_hosts
        .iter()
        .map(|h| h.name.clone())
        .zip(targets)
        .collect();
    // The reporter `kinit up` uses: the save's phases as lines, bars or JSON events.
    let progress = RunProgress::new(global, false);
    let observer = &progress;
    let remote::Finished { value, interrupted } =
        remote::with_remote(ssh, |pool, cancel| async move {
            let request = saving::SaveRequest {
                inv: &inventory,
                tls: &tls,
                pool,
                targets: &targets,
                output: &output,
                numbered,
                timeout: Duration::from_secs(5),
                cancel: &cancel,
            };
            if opts.dry_run {
                saving::plan(request, observer)
                    .await
                    .map(SaveResult::Planned)
            } else {
                saving::save(request, observer).await.map(SaveResult::Saved)
            }
        })?;
    progress.finish();
    if interrupted {
        return Ok(Outcome::Interrupted);
    }
    match (value?, global.output) {
        (SaveResult::Saved(saved), OutputFormat::Json) => progress.last_event("saved", &saved),
        (SaveResult::Saved(saved), OutputFormat::Text) => print!("{}", view::saved_text(&saved)),
        (SaveResult::Planned(plan), OutputFormat::Json) => progress.last_event("save-plan", &plan),
        (SaveResult::Planned(plan), OutputFormat::Text) => {
            print!("{}", view::save_plan_text(&plan))
        }
    }
    Ok(Outcome::Success)
}

pub fn status(global: &GlobalOptions, file: &Path) -> CommandResult {
    if !file.exists() {
        return Err(CommandError::Usage(format!(
            "{}: no such snapshot file",
            file.display()
        )));
    }
    let status = snapshot_file::inspect(file).map_err(SnapshotError::from)?;
    match global.output {
        OutputFormat::Json => print_json(&status),
        OutputFormat::Text => print!("{}", view::snapshot_status_text(&status)),
    }
    Ok(Outcome::Success)
}

pub fn restore(global: &GlobalOptions, opts: &RestoreOptions) -> CommandResult {
    let mut inventory = remote::load_inventory(global)?;
    // A misspelt override stops the command before the snapshot or any host is read.
    let templates = Templates::load(opts.templates.as_deref())
        .map_err(|e| CommandError::Usage(e.to_string()))?;
    if !opts.file.exists() {
        return Err(CommandError::Usage(format!(
            "{}: no such snapshot file",
            opts.file.display()
        )));
    }
    let etcd_names: Vec<String> = inventory
        .with_role(Role::Etcd)
        .map(|h| h.name.clone())
        .collect();
    if etcd_names.is_empty() {
        return Err(SnapshotError::NoEtcdHosts.into());
    }
    // Checked before anything else happens: a damaged file stops nothing.
    let status = snapshot_file::inspect(&opts.file).map_err(SnapshotError::from)?;
    if status.integrity != Integrity::Verified {
        return Err(SnapshotError::NoIntegrityHash {
            path: opts.file.clone(),
        }
        .into());
    }
    let tls = etcd_client(&inventory)?;
    if !opts.yes && !opts.dry_run {
        confirm_restore(&view::restore_plan_text(&opts.file, &status, &etcd_names))?;
    }
    let hosts: Vec<_> = inventory
        .hosts
        .iter()
        .filter(|h| h.has(Role::Etcd) || h.has(Role::ControlPlane))
        .collect();
    let (targets, ssh) =
        remote::connect_options(&inventory, &hosts, opts.accept_new_host_keys, false)?;
    let targets: BTreeMap<_, _> = hosts.iter().map(|h| h.name.clone()).zip(targets).collect();
    // A new cluster token: no restored member may ever meet a member of the old cluster. The
    // restore keeps it in the PKI dir (so that `kinit up` renders the same config afterwards)
    // once every host answered and passed its checks, just before the first change.
    inventory.etcd_cluster_token = Some(crate::pki::cluster_token::new_token(
        &inventory.pki_dir,
        &inventory.name,
    )?);
    let settings = RestoreSettings {
        stamp: utc_stamp(SystemTime::now()),
        wait: opts.wait,
        etcd_timeout: Duration::from_secs(3),
        concurrency: opts.concurrency,
        lock: LockRequest {
            owner: LockOwner::current("restore"),
            break_lock: opts.break_lock,
            concurrency: opts.concurrency,
        },
    };
    // The reporter `kinit up` uses: the restore's phases as lines, bars or JSON events.
    let progress = std::sync::Arc::new(RunProgress::new(global, opts.dry_run));
    let observer: std::sync::Arc<dyn crate::engine::event::Observer> = progress.clone();
    let (file, dry_run) = (opts.file.clone(), opts.dry_run);
    let remote::Finished { value, interrupted } =
        remote::with_remote(ssh, |pool, cancel| async move {
            let restore = restore::Restore {
                inv: &inventory,
                tls: &tls,
                pool,
                targets: &targets,
                templates: &templates,
                file: &file,
                status: &status,
                settings: &settings,
                cancel: &cancel,
            };
            if dry_run {
                restore.plan(observer).await.map(Restored::Planned)
            } else {
                restore.run(observer).await.map(Restored::Done)
            }
        })?;
    progress.finish();
    if interrupted {
        eprintln!("interrupted");
        return Ok(Outcome::Interrupted);
    }
    match (value?, global.output) {
        (Restored::Done(report), OutputFormat::Json) => progress.last_event("restored", &report),
        (Restored::Done(report), OutputFormat::Text) => print!("{}", view::restored_text(&report)),
        (Restored::Planned(plan), OutputFormat::Json) => progress.last_event("restore-plan", &plan),
        (Restored::Planned(plan), OutputFormat::Text) => {
            print!("{}", view::restore_dry_run_text(&plan))
        }
    }
    Ok(Outcome::Success)
}

/// The operator's yes on a terminal; without one, `--yes` is needed.
fn confirm_restore(plan: &str) -> Result<(), CommandError> {
    match confirm::ask(plan, "Restore?").map_err(CommandError::io("asking"))? {
        Answer::Yes => Ok(()),
        Answer::No => Err(CommandError::Declined),
        Answer::NoTerminal => Err(CommandError::NotConfirmed(
            "kinit etcd snapshot restore replaces etcd's data on every member: pass --yes to \
             confirm, or --dry-run to see the plan (no terminal to ask on)"
                .into(),
        )),
    }
}

/// What `restore` ends with: the report, or with `--dry-run` the plan.
enum Restored {
    Done(restore::RestoreReport),
    Planned(restore::RestorePlan),
}
