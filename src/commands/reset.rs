//! `kinit reset`: take kinit's cluster off the selected hosts (see `lifecycle::reset`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::{CommandError, CommandResult, Outcome, remote};
use crate::engine::event::Observer;
use crate::etcd::ClientTls;
use crate::lifecycle::reset::{self, ResetSettings};
use crate::lifecycle::reset_plan;
use crate::lifecycle::snapshot::utc_stamp;
use crate::selector;
use crate::ui::confirm::{self, Answer};
use crate::ui::lifecycle as view;
use crate::ui::run_progress::RunProgress;
use crate::ui::{GlobalOptions, OutputFormat};

#[derive(Debug, Clone)]
pub struct ResetOptions {
    pub selector: Option<String>,
    pub yes: bool,
    pub purge: bool,
    pub dry_run: bool,
    pub break_lock: bool,
    pub accept_new_host_keys: bool,
    pub concurrency: usize,
}

pub fn run(global: &GlobalOptions, opts: &ResetOptions) -> CommandResult {
    let inventory = remote::load_inventory(global)?;
    let hosts = selector::select(&inventory, opts.selector.as_deref())?;
    let plans: Vec<_> = hosts
        .iter()
        .map(|h| reset_plan::for_host(&inventory, h, &inventory.pki_dir))
        .collect();
    if !opts.dry_run && !opts.yes {
        let plan = view::reset_plan_text(&plans, opts.purge);
        match confirm::ask(&plan, "Reset these hosts?").map_err(CommandError::io("asking"))? {
            Answer::Yes => {}
            Answer::No => return Err(CommandError::Declined),
            Answer::NoTerminal => {
                return Err(CommandError::NotConfirmed(
                    "kinit reset removes the cluster from hosts: pass --yes to confirm \
                     (no terminal to ask on), or --dry-run to see what would go"
                        .into(),
                ));
            }
        }
    }
    let (targets, ssh) =
        remote::connect_options(&inventory, &hosts, opts.accept_new_host_keys, false)?;
    let targets: BTreeMap<_, _> = hosts.iter().map(|h| h.name.clone()).zip(targets).collect();
    // Without the operator's etcd client certificate no member can be removed: a reset of
    // part of etcd then refuses (a whole reset needs none).
    let tls = ClientTls::from_pki_dir(&inventory.pki_dir).ok();
    let settings = ResetSettings {
        dry_run: opts.dry_run,
        purge: opts.purge,
        concurrency: opts.concurrency,
        stamp: utc_stamp(SystemTime::now()),
        etcd_timeout: Duration::from_secs(5),
        locked_by_caller: false,
        break_lock: opts.break_lock,
    };
    // The reporter `kinit up` uses: the reset's phases as lines, bars or JSON events.
    let progress = Arc::new(RunProgress::new(global, opts.dry_run));
    let observer: Arc<dyn Observer> = progress.clone();
    let remote::Finished { value, interrupted } =
        remote::with_remote(ssh, |pool, cancel| async move {
            let request = reset::ResetRequest {
                inv: &inventory,
                tls: tls.as_ref(),
                plans,
                targets: &targets,
                pool,
                settings: &settings,
                cancel: &cancel,
            };
            reset::run(request, observer).await
        })?;
    progress.finish();
    // Ctrl-C/SIGTERM exits 143 like every other command's, also when it stopped the reset
    // before any host changed (and put back what the drain took).
    let report = match value {
        Err(e @ reset::ResetError::Interrupted) if interrupted => {
            eprintln!("{e}");
            return Ok(Outcome::Interrupted);
        }
        other => other?,
    };
    match global.output {
        OutputFormat::Json => progress.last_event("reset", &report),
        OutputFormat::Text => print!("{}", view::reset_report_text(&report)),
    }
    Ok(if interrupted {
        Outcome::Interrupted
    } else {
        Outcome::failed_if(!report.ok())
    })
}
