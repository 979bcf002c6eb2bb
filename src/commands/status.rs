//! `kinit status`: gather the cluster's live health and show it; exit 1 when degraded.

use std::time::{Duration, SystemTime};

use super::{CommandError, CommandResult, Outcome, remote};
use crate::status::{self, GatherOptions};
use crate::ui::{GlobalOptions, OutputFormat};

#[derive(Debug, Clone)]
pub struct StatusOptions {
    pub concurrency: usize,
    pub timeout: Duration,
}

pub fn run(global: &GlobalOptions, opts: &StatusOptions) -> CommandResult {
    let inventory =
        remote::load_inventory(global).map_err(|e| CommandError::CannotCheck(Box::new(e)))?;
    let hosts: Vec<_> = inventory.hosts.iter().collect();
    // Read-only: unknown host keys are refused, and nothing needs sudo.
    let (targets, ssh) = remote::connect_options(&inventory, &hosts, false, false)?;
    let gather_opts = GatherOptions {
        concurrency: opts.concurrency,
        timeout: opts.timeout,
    };
    let remote::Finished {
        value: report,
        interrupted,
    } = remote::with_remote(ssh, |pool, cancel| async move {
        status::gather(
            &inventory,
            pool,
            targets,
            &gather_opts,
            &cancel,
            SystemTime::now(),
        )
        .await
    })?;
    if interrupted {
        return Ok(Outcome::Interrupted);
    }
    match global.output {
        OutputFormat::Json => println!("{}", crate::ui::status::render_json(&report)),
        OutputFormat::Text => print!("{}", crate::ui::status::render_text(&report)),
    }
    Ok(Outcome::failed_if(!report.healthy()))
}
