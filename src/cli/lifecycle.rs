//! clap definitions of the day-two commands: `reset` and `etcd snapshot`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::RemoteArgs;
use crate::commands::etcd_snapshot::{RestoreOptions, SaveOptions};
use crate::commands::reset::ResetOptions;

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  kinit reset --dry-run\n  kinit reset --hosts cp3 --yes\n\n\
Resetting some etcd hosts of a running cluster removes their members first (refused when the \
rest could not keep a quorum). etcd's data dir is moved aside to DATADIR.reset-<UTC time>, \
never deleted unless --purge. Packages stay installed; the PKI on this machine is not touched."
)]
pub struct ResetArgs {
    /// Host names and/or roles, comma separated (e.g. cp3,worker) [default: all hosts]
    #[arg(long, value_name = "SELECTOR")]
    pub hosts: Option<String>,

    /// Do not ask (needed when not on a terminal)
    #[arg(long, short = 'y')]
    pub yes: bool,

    /// Delete etcd's data dir instead of moving it aside
    #[arg(long)]
    pub purge: bool,

    /// Show what would be removed on each host; change nothing
    #[arg(long)]
    pub dry_run: bool,

    #[command(flatten)]
    pub remote: RemoteArgs,
}

impl ResetArgs {
    pub fn options(&self) -> ResetOptions {
        ResetOptions {
            selector: self.hosts.clone(),
            yes: self.yes,
            purge: self.purge,
            dry_run: self.dry_run,
            accept_new_host_keys: self.remote.accept_new_host_keys,
            concurrency: self.remote.concurrency.get(),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum EtcdCommand {
    /// Save, check and restore etcd snapshots
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
}

#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Take a snapshot from a healthy member, streamed here and verified (0600)
    Save(SaveArgs),
    /// Check a snapshot file: etcd's integrity hash, revision, keys, size, sha256
    Status {
        /// The snapshot file
        file: PathBuf,
    },
    /// Bring every member back from a snapshot, as a new cluster (works without quorum)
    Restore(RestoreArgs),
}

#[derive(Debug, Args)]
pub struct SaveArgs {
    /// Where to write it (as `etcdctl snapshot save FILE`; `-o` is the output format)
    /// [default: backups/<cluster>-<UTC time>.db next to cluster.yaml]
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,

    #[command(flatten)]
    pub remote: RemoteArgs,
}

impl SaveArgs {
    pub fn options(&self) -> SaveOptions {
        SaveOptions {
            output: self.file.clone(),
            accept_new_host_keys: self.remote.accept_new_host_keys,
        }
    }
}

#[derive(Debug, Args)]
#[command(
    after_help = "On every etcd member: the control-plane manifests are moved aside, etcd \
stopped, its data dir moved aside (kept), the snapshot restored with a new cluster token, all \
members started together; once one healthy cluster answers, the manifests go back."
)]
pub struct RestoreArgs {
    /// The snapshot file (from `kinit etcd snapshot save` or `etcdctl snapshot save`)
    pub file: PathBuf,

    /// Do not ask (needed when not on a terminal)
    #[arg(long, short = 'y')]
    pub yes: bool,

    /// Seconds the restored cluster may take to become healthy
    #[arg(long, value_name = "SECONDS", default_value_t = 120)]
    pub wait: u64,

    #[command(flatten)]
    pub remote: RemoteArgs,
}

impl RestoreArgs {
    pub fn options(&self) -> RestoreOptions {
        RestoreOptions {
            file: self.file.clone(),
            yes: self.yes,
            wait: std::time::Duration::from_secs(self.wait.max(1)),
            accept_new_host_keys: self.remote.accept_new_host_keys,
            concurrency: self.remote.concurrency.get(),
        }
    }
}
