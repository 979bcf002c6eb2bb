//! What every command that talks to hosts needs: the validated inventory, SSH options (known_hosts
//! policy, keys, passphrase, sudo password, bastion) for the selected hosts, and an async runtime
//! with a connection pool that Ctrl-C (or SIGTERM, SIGHUP) cancels.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::CommandError;
use crate::config;
use crate::inventory::{Host, Inventory};
use crate::ssh::keyring::is_encrypted;
use crate::ssh::ssh_config::SshConfig;
use crate::ssh::targets::{bastion_target, host_target};
use crate::ssh::{HostKeyPolicy, HostTarget, KeyRing, KnownHostsFile, Pool, Secret, SshOptions};
use crate::ui::{GlobalOptions, config_report, secret_prompt};

/// Environment variables that carry secrets (never flags: flags end up in shell history and `ps`).
pub const PASSPHRASE_ENV: &str = "KINIT_SSH_PASSPHRASE";
pub const SUDO_PASSWORD_ENV: &str = "KINIT_SUDO_PASSWORD";

/// SSH targets for `hosts` and the options to reach them with.
pub fn connect_options(
    inventory: &Inventory,
    hosts: &[&Host],
    accept_new_host_keys: bool,
    ask_sudo_password: bool,
) -> Result<(Vec<HostTarget>, SshOptions), CommandError> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let user_config = match &home {
        Some(h) => SshConfig::load(&h.join(".ssh/config")).map_err(CommandError::SshConfig)?,
        None => SshConfig::default(),
    };
    let targets: Vec<HostTarget> = hosts
        .iter()
        .map(|h| host_target(h, &user_config, home.as_deref()))
        .collect();
    let bastion = bastion_target(inventory, hosts, &user_config, home.as_deref())?;

    let key_files: Vec<&Path> = targets
        .iter()
        .chain(bastion.iter())
        .flat_map(|t| t.identity_files.iter().map(PathBuf::as_path))
        .collect();
    let passphrase = passphrase_for(&key_files)?;
    let sudo_password = sudo_password(ask_sudo_password)?;

    let mut ssh = SshOptions::new(
        Arc::new(KnownHostsFile::new(&inventory.known_hosts)),
        Arc::new(KeyRing::new(passphrase)),
    );
    if accept_new_host_keys {
        ssh.host_key_policy = HostKeyPolicy::AcceptNew;
    }
    ssh.sudo_password = sudo_password;
    ssh.bastion = bastion;
    Ok((targets, ssh))
}

/// Before any host is touched: a bundle whose bundle.yaml says it holds another Kubernetes
/// release than `kubernetesVersion`, mixes releases or breaks upstream's skew rules is refused.
pub fn check_bundle(inventory: &Inventory) -> Result<(), CommandError> {
    if let Some(dir) = &inventory.bundle {
        crate::bundle::verify::check_for_cluster(dir, &inventory.kubernetes_version.to_string())?;
    }
    Ok(())
}

pub fn load_inventory(global: &GlobalOptions) -> Result<Inventory, CommandError> {
    let path = &global.config_path;
    let loaded = config::load(path).map_err(|e| match e {
        config::ConfigError::Read { path, source } => CommandError::ConfigUnreadable {
            path,
            source,
            hint: true,
        },
        config::ConfigError::Invalid(report) => CommandError::InvalidConfig(format!(
            "{}{}",
            config_report::render_problems(&report, global.color.enabled_for_stderr()),
            config_report::problem_counts(&report)
        )),
    })?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let home = std::env::var_os("HOME").map(PathBuf::from);
    Ok(Inventory::from_config(
        &loaded.config,
        dir,
        home.as_deref(),
    )?)
}

/// What `with_remote` hands back: the work's value, and whether a signal cut it short.
pub struct Finished<T> {
    pub value: T,
    pub interrupted: bool,
}

/// Runs `work` on a multi-thread runtime with a connection pool made from `ssh`, and a token
/// that Ctrl-C, SIGTERM and SIGHUP cancel (the work is expected to stop at the next step and return what it has).
/// The pool's connections are closed before this returns, whatever the work returned.
pub fn with_remote<T, F, Fut>(ssh: SshOptions, work: F) -> Result<Finished<T>, CommandError>
where
    F: FnOnce(Arc<Pool>, CancellationToken) -> Fut,
    Fut: Future<Output = T>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(CommandError::Runtime)?;
    let cancel = CancellationToken::new();
    let value = runtime.block_on(async {
        super::stop_signal::cancel_on_signal(cancel.clone()).map_err(CommandError::Runtime)?;
        let pool = Arc::new(Pool::new(ssh));
        let value = work(pool.clone(), cancel.clone()).await;
        pool.close_all().await;
        Ok::<_, CommandError>(value)
    })?;
    Ok(Finished {
        value,
        interrupted: cancel.is_cancelled(),
    })
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
        .map_err(CommandError::Passphrase)
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
        Err(e) => Err(CommandError::SudoPassword(e)),
    }
}
