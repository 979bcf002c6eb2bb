//! `kinit drill`: take one piece of the control plane down for real and measure (see
//! `crate::drill`).

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::Duration;

use super::{CommandError, CommandResult, Outcome, remote};
use crate::drill::{self, DrillError, DrillKind, DrillSettings, Thresholds};
use crate::engine::cluster_lock::LockRequest;
use crate::engine::lock::LockOwner;
use crate::fanout::DEFAULT_CONCURRENCY;
use crate::status::GatherOptions;
use crate::ui::confirm::{self, Answer};
use crate::ui::drill as view;
use crate::ui::{GlobalOptions, OutputFormat};

#[derive(Debug, Clone)]
pub struct DrillOptions {
    pub kind: DrillKind,
    pub duration: Duration,
    pub yes: bool,
    pub thresholds: Thresholds,
    pub break_lock: bool,
}

const NOT_CONFIRMED: &str = "kinit drill takes a piece of the cluster down for real: pass --yes \
                             to confirm (no terminal to ask on)";

pub fn run(global: &GlobalOptions, opts: &DrillOptions) -> CommandResult {
    // Nobody to ask: refused before any host is contacted.
    if !opts.yes && !std::io::stdin().is_terminal() {
        return Err(CommandError::NotConfirmed(NOT_CONFIRMED.into()));
    }
    let inventory = remote::load_inventory(global)?;
    let hosts: Vec<_> = inventory.hosts.iter().collect();
    // Unknown host keys are refused, as for `status`: a drill is no time to learn them.
    let (targets, ssh) = remote::connect_options(&inventory, &hosts, false, false)?;
    let targets: BTreeMap<_, _> = targets.into_iter().map(|t| (t.name.clone(), t)).collect();
    let settings = DrillSettings {
        kind: opts.kind.clone(),
        duration: opts.duration,
        thresholds: opts.thresholds.clone(),
        gather: GatherOptions::default(),
        lock: LockRequest {
            owner: LockOwner::current("drill"),
            break_lock: opts.break_lock,
            concurrency: DEFAULT_CONCURRENCY,
        },
    };
    let (inventory, targets, settings) = (&inventory, &targets, &settings);

    let prepared = remote::with_remote(ssh.clone(), |pool, cancel| async move {
        drill::prepare(inventory, &pool, targets, settings, &cancel).await
    })?;
    if prepared.interrupted {
        return Ok(Outcome::Interrupted);
    }
    let prepared = prepared.value?;
    if !opts.yes {
        let text = view::plan_text(&opts.kind, &prepared.target, opts.duration);
        match confirm::ask(&text, "Run this drill?").map_err(CommandError::io("asking"))? {
            Answer::Yes => {}
            Answer::No => return Err(CommandError::Declined),
            Answer::NoTerminal => {
                return Err(CommandError::NotConfirmed(NOT_CONFIRMED.into()));
            }
        }
    }
    let finished = remote::with_remote(ssh, |pool, cancel| async move {
        drill::execute(inventory, &pool, targets, settings, &cancel).await
    })?;
    let report = match finished.value {
        Err(DrillError::Interrupted) if finished.interrupted => {
            eprintln!("{}", DrillError::Interrupted);
            return Ok(Outcome::Interrupted);
        }
        other => other?,
    };
    match global.output {
        OutputFormat::Json => println!("{}", view::render_json(&report)),
        OutputFormat::Text => print!("{}", view::render_text(&report)),
    }
    Ok(if report.interrupted || finished.interrupted {
        Outcome::Interrupted
    } else {
        Outcome::failed_if(!report.passed())
    })
}
