//! `kinit status`: gather the cluster's live health and show it; exit 1 when degraded.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use super::{CommandError, CommandResult, exit, remote};
use crate::cli::GlobalOptions;
use crate::ssh::Pool;
use crate::status::{self, GatherOptions};
use crate::ui::OutputFormat;

#[derive(Debug, Clone)]
pub struct StatusOptions {
    pub concurrency: usize,
    pub timeout: Duration,
}

pub fn run(global: &GlobalOptions, opts: &StatusOptions) -> CommandResult {
    let inventory = remote::load_inventory(global).map_err(|e| match e {
        // A config that does not load is a usage error here (exit 2): 1 means "degraded".
        CommandError::Failed(m) => CommandError::Usage(m),
        other => other,
    })?;
    let hosts: Vec<_> = inventory.hosts.iter().collect();
    // Read-only: unknown host keys are refused, and nothing needs sudo.
    let (targets, ssh) = remote::connect_options(&inventory, &hosts, false, false)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CommandError::Failed(format!("cannot start the async runtime: {e}")))?;
    let cancel = CancellationToken::new();
    let gather_opts = GatherOptions {
        concurrency: opts.concurrency,
        timeout: opts.timeout,
    };
    let (report, interrupted) = runtime.block_on(async {
        let on_ctrl_c = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                on_ctrl_c.cancel();
            }
        });
        let pool = Arc::new(Pool::new(ssh));
        let report = status::gather(
            &inventory,
            pool.clone(),
            targets,
            &gather_opts,
            &cancel,
            SystemTime::now(),
        )
        .await;
        pool.close_all().await;
        (report, cancel.is_cancelled())
    });
    if interrupted {
        return Ok(ExitCode::from(exit::INTERRUPTED));
    }
    match global.output {
        OutputFormat::Json => println!("{}", crate::ui::status::render_json(&report)),
        OutputFormat::Text => print!("{}", crate::ui::status::render_text(&report)),
    }
    Ok(if report.healthy() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::FAILURE)
    })
}
