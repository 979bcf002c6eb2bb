//! clap definitions of `kinit certs`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::RemoteArgs;
use crate::commands::certs::RenewOptions;
use crate::commands::up::UpOptions;

#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Create or complete the PKI under spec.pki.dir, laid out per host as /etc/kubernetes
    ///
    /// Valid existing certificates are kept; certificates the config no longer matches (new
    /// host, address, VIP or SAN) are re-issued; CAs are created when missing and never replaced.
    /// An existing ca.crt/ca.key (from cfssl, kubeasz or kubeadm) is used to sign.
    Generate,
    /// Show when each certificate and CA expires (exit 1 if one is missing or expired)
    CheckExpiration,
    /// Re-issue certificates from the existing CAs, SANs recomputed from the config
    Renew(RenewArgs),
}

#[derive(Debug, Args)]
#[command(
    mut_args(rollout_only),
    after_help = "Examples:\n  kinit certs renew all\n  kinit certs renew apiserver etcd-server\n  \
kinit certs renew all --rollout\n\n\
Renewing changes only the PKI on this machine; `kinit up` then ships the new files, re-creates \
the static pods whose certificates changed (their manifests carry a hash of them) and restarts \
the services that read them. --rollout runs that `kinit up` right after the renewal (same config, \
same exit status); every flag but NAME and --rollout is one of `kinit up`'s and needs --rollout. CAs are never renewed here."
)]
pub struct RenewArgs {
    /// Certificates as kubeadm names them (apiserver, etcd-server, admin.conf, ...), or `all`
    #[arg(required = true, value_name = "NAME")]
    pub names: Vec<String>,

    /// Then run `kinit up` to roll the renewed certificates out to the hosts
    #[arg(long)]
    pub rollout: bool,

    /// With --rollout: preflight checks whose failures only warn, comma separated, or `all`
    #[arg(long, value_name = "NAME,...", value_delimiter = ',')]
    pub ignore_preflight_errors: Vec<String>,

    #[command(flatten)]
    pub remote: RemoteArgs,

    /// With --rollout: remove another run's lock on the hosts (only when no kinit up is running)
    #[arg(long)]
    pub break_lock: bool,

    /// With --rollout: restart etcd members even when the quorum guard refuses
    #[arg(long)]
    pub force: bool,

    /// With --rollout: read the playbook from DIR/up.yaml instead of the built-in one
    #[arg(long, value_name = "DIR")]
    pub playbooks: Option<PathBuf>,

    /// With --rollout: read templates from DIR first (as `kinit up --templates`)
    #[arg(long, value_name = "DIR")]
    pub templates: Option<PathBuf>,
}

/// Every flag but the names and `--rollout` itself is one of `kinit up`'s, meaningless without
/// a rollout: refused rather than ignored.
fn rollout_only(arg: clap::Arg) -> clap::Arg {
    match arg.get_id().as_str() {
        "names" | "rollout" => arg,
        _ => arg.requires("rollout"),
    }
}

impl RenewArgs {
    pub fn options(&self) -> RenewOptions {
        RenewOptions {
            names: if self.names.iter().any(|n| n == "all") {
                Default::default()
            } else {
                self.names.iter().cloned().collect()
            },
            rollout: self.rollout.then(|| UpOptions {
                topology: None,
                run: crate::engine::RunOptions {
                    selection: crate::engine::PhaseSelection::default(),
                    dry_run: false,
                    concurrency: self.remote.concurrency.get(),
                    ignore_preflight: crate::preflight::IgnoreSet::parse(
                        &self.ignore_preflight_errors,
                    ),
                    break_lock: self.break_lock,
                    force: self.force,
                    // up's default; a slow host's limit is set with `kinit up --probe-timeout`.
                    probe_timeout: std::time::Duration::from_secs(30),
                },
                accept_new_host_keys: self.remote.accept_new_host_keys,
                playbooks: self.playbooks.clone(),
                templates: self.templates.clone(),
            }),
        }
    }
}
