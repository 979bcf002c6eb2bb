//! `kinit exec [--hosts SELECTOR] -- CMD`: run one command on the selected hosts, as root.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{CommandResult, Outcome, remote};
use crate::fanout::{self, FanoutError};
use crate::selector;
use crate::ssh::{ExecOptions, ExecOutput, HostTarget, Pool, SshError};
use crate::ui::exec::{HostRun, render_json, render_text, summary};
use crate::ui::{GlobalOptions, OutputFormat};

pub use remote::{PASSPHRASE_ENV, SUDO_PASSWORD_ENV};

#[derive(Debug, Clone)]
pub struct ExecCommandOptions {
    pub selector: Option<String>,
    pub accept_new_host_keys: bool,
    pub concurrency: usize,
    pub timeout: Option<Duration>,
    pub ask_sudo_password: bool,
    /// Run as root (sudo for non-root logins); false runs as the login user.
    pub as_root: bool,
    pub command: String,
}

pub fn run(global: &GlobalOptions, opts: &ExecCommandOptions) -> CommandResult {
    let inventory = remote::load_inventory(global)?;
    let hosts = selector::select(&inventory, opts.selector.as_deref())?;
    let (targets, ssh) = remote::connect_options(
        &inventory,
        &hosts,
        opts.accept_new_host_keys,
        opts.ask_sudo_password,
    )?;

    let remote::Finished {
        value: results,
        interrupted,
    } = remote::with_remote(ssh, |pool, cancel| {
        run_everywhere(pool, cancel, targets, opts)
    })?;

    let runs: Vec<HostRun> = hosts
        .iter()
        .zip(&results)
        .map(|(host, (_, result))| HostRun {
            name: &host.name,
            address: host.address.to_string(),
            result: match result {
                Ok(out) => Ok(out),
                Err(e) => Err(e.to_string()),
            },
        })
        .collect();
    match global.output {
        OutputFormat::Json => println!("{}", render_json(&runs, interrupted)),
        OutputFormat::Text => {
            print!("{}", render_text(&runs));
            if global.verbosity >= 0 || runs.iter().any(|r| !r.succeeded()) {
                eprintln!("{}", summary(&runs, interrupted));
            }
        }
    }
    Ok(if interrupted {
        Outcome::Interrupted
    } else {
        Outcome::failed_if(!runs.iter().all(HostRun::succeeded))
    })
}

type HostResult = (String, Result<ExecOutput, FanoutError<SshError>>);

async fn run_everywhere(
    pool: Arc<Pool>,
    cancel: CancellationToken,
    targets: Vec<HostTarget>,
    opts: &ExecCommandOptions,
) -> Vec<HostResult> {
    let command = Arc::new(opts.command.clone());
    let exec = ExecOptions {
        timeout: opts.timeout,
        sudo: opts.as_root,
        cancel: Some(cancel.clone()),
    };
    let items = targets.into_iter().map(|t| (t.name.clone(), t)).collect();
    fanout::run(items, opts.concurrency, &cancel, move |target| {
        let (pool, command, exec) = (pool.clone(), command.clone(), exec.clone());
        async move {
            let session = pool.get(&target).await?;
            session.exec(&command, &exec).await
        }
    })
    .await
}
