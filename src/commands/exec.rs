//! `kinit exec [--hosts SELECTOR] -- CMD`: run one command on the selected hosts, as root.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{CommandError, CommandResult, exit};
use crate::cli::GlobalOptions;
use crate::config;
use crate::fanout::{self, FanoutError};
use crate::inventory::Inventory;
use crate::selector;
use crate::ssh::keyring::is_encrypted;
use crate::ssh::ssh_config::SshConfig;
use crate::ssh::targets::{bastion_target, host_target};
use crate::ssh::{
    ExecOptions, ExecOutput, HostKeyPolicy, HostTarget, KeyRing, KnownHostsFile, Pool, Secret,
    SshError, SshOptions,
};
use crate::ui::exec::{HostRun, render_json, render_text, summary};
use crate::ui::{OutputFormat, config_report, secret_prompt};

/// Environment variables that carry secrets (never flags: flags end up in shell history and `ps`).
pub const PASSPHRASE_ENV: &str = "KINIT_SSH_PASSPHRASE";
pub const SUDO_PASSWORD_ENV: &str = "KINIT_SUDO_PASSWORD";

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
    let inventory = load_inventory(global)?;
    let hosts = selector::select(&inventory, opts.selector.as_deref())
        .map_err(|e| CommandError::Usage(e.to_string()))?;
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let user_config = match &home {
        Some(h) => SshConfig::load(&h.join(".ssh/config"))
            .map_err(|e| CommandError::Usage(format!("cannot read ~/.ssh/config: {e}")))?,
        None => SshConfig::default(),
    };
    let targets: Vec<HostTarget> = hosts
        .iter()
        .map(|h| host_target(h, &user_config, home.as_deref()))
        .collect();
    let bastion = bastion_target(&inventory, &hosts, &user_config, home.as_deref())
        .map_err(|e| CommandError::Usage(e.to_string()))?;

    let key_files: Vec<&Path> = targets
        .iter()
        .chain(bastion.iter())
        .flat_map(|t| t.identity_files.iter().map(PathBuf::as_path))
        .collect();
    let passphrase = passphrase_for(&key_files)?;
    let sudo_password = sudo_password(opts.ask_sudo_password)?;

    let mut ssh = SshOptions::new(
        Arc::new(KnownHostsFile::new(&inventory.known_hosts)),
        Arc::new(KeyRing::new(passphrase)),
    );
    if opts.accept_new_host_keys {
        ssh.host_key_policy = HostKeyPolicy::AcceptNew;
    }
    ssh.sudo_password = sudo_password;
    ssh.bastion = bastion;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CommandError::Failed(format!("cannot start the async runtime: {e}")))?;
    let (results, interrupted) = runtime.block_on(run_everywhere(targets, ssh, opts));

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
        ExitCode::from(exit::INTERRUPTED)
    } else if runs.iter().all(HostRun::succeeded) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::FAILURE)
    })
}

type HostResult = (String, Result<ExecOutput, FanoutError<SshError>>);

async fn run_everywhere(
    targets: Vec<HostTarget>,
    ssh: SshOptions,
    opts: &ExecCommandOptions,
) -> (Vec<HostResult>, bool) {
    let cancel = CancellationToken::new();
    let on_ctrl_c = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_ctrl_c.cancel();
        }
    });
    let pool = Arc::new(Pool::new(ssh));
    let command = Arc::new(opts.command.clone());
    let exec = ExecOptions {
        timeout: opts.timeout,
        sudo: opts.as_root,
        cancel: Some(cancel.clone()),
    };
    let items = targets.into_iter().map(|t| (t.name.clone(), t)).collect();
    let worker_pool = pool.clone();
    let results = fanout::run(items, opts.concurrency, &cancel, move |target| {
        let (pool, command, exec) = (worker_pool.clone(), command.clone(), exec.clone());
        async move {
            let session = pool.get(&target).await?;
            session.exec(&command, &exec).await
        }
    })
    .await;
    pool.close_all().await;
    (results, cancel.is_cancelled())
}

fn load_inventory(global: &GlobalOptions) -> Result<Inventory, CommandError> {
    let path = &global.config_path;
    let loaded = config::load(path).map_err(|e| match e {
        config::ConfigError::Read { .. } => CommandError::Usage(format!(
            "{e}; create one with `kinit init`, or point at it with -c FILE"
        )),
        config::ConfigError::Invalid(report) => CommandError::Failed(format!(
            "{}{}",
            config_report::render_problems(&report, global.color.enabled_for_stderr()),
            config_report::problem_counts(&report)
        )),
    })?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let home = std::env::var_os("HOME").map(PathBuf::from);
    Inventory::from_config(&loaded.config, dir, home.as_deref())
        .map_err(|e| CommandError::Failed(e.to_string()))
}

/// KINIT_SSH_PASSPHRASE, or one prompt when a key kinit will offer is encrypted.
fn passphrase_for(key_files: &[&Path]) -> Result<Option<Secret>, CommandError> {
    if let Ok(p) = std::env::var(PASSPHRASE_ENV) {
        return Ok(Some(Secret::new(p)));
    }
    let Some(encrypted) = key_files.iter().find(|p| is_encrypted(p)) else {
        return Ok(None);
    };
    let prompt = format!("Passphrase for {}: ", encrypted.display());
    secret_prompt::ask(&prompt)
        .map(|p| p.map(Secret::new))
        .map_err(|e| CommandError::Usage(format!("cannot read the passphrase: {e}")))
}

fn sudo_password(ask: bool) -> Result<Option<Secret>, CommandError> {
    if let Ok(p) = std::env::var(SUDO_PASSWORD_ENV) {
        return Ok(Some(Secret::new(p)));
    }
    if !ask {
        return Ok(None);
    }
    match secret_prompt::ask("sudo password: ") {
        Ok(Some(p)) => Ok(Some(Secret::new(p))),
        Ok(None) => Err(CommandError::Usage(format!(
            "--ask-sudo-password needs a terminal; set {SUDO_PASSWORD_ENV} instead"
        ))),
        Err(e) => Err(CommandError::Usage(format!(
            "cannot read the sudo password: {e}"
        ))),
    }
}
