//! clap definitions of the day-two commands: `reset`, `remove` and `etcd snapshot`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::RemoteArgs;
use crate::commands::etcd_snapshot::{RestoreOptions, SaveOptions};
use crate::commands::remove::RemoveOptions;
use crate::commands::reset::ResetOptions;

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  kinit reset --dry-run\n  kinit reset --hosts cp3 --yes\n\n\
Resetting some etcd hosts of a running cluster removes their members first (refused when the \
rest could not keep a quorum). etcd's data dir is moved aside to DATADIR.reset-<UTC time>, \
never deleted unless --purge. Packages stay installed; the PKI on this machine is not touched. \
The cluster lock `kinit up` takes is held on every selected host from before any member is \
removed to the end: another operator's run is refused by name, nothing changed."
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

    /// Remove another run's lock on the hosts (only when no kinit up, remove, restore or reset
    /// is running)
    #[arg(long)]
    pub break_lock: bool,

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
            break_lock: self.break_lock,
            accept_new_host_keys: self.remote.accept_new_host_keys,
            concurrency: self.remote.concurrency.get(),
        }
    }
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  kinit remove cp3 --dry-run\n  kinit remove cp3 --yes\n  \
kinit remove cp2 --unreachable --yes\n\n\
For each host: its etcd member leaves first (a leader hands over to a healthy member that \
stays), then the host is reset, then the control planes that stay get haproxy backends, \
keepalived peers and (external etcd) --etcd-servers without it, reloaded one host at a time. \
Refused when etcd could not keep a majority given the members unhealthy now, or when one \
member would be left (--force goes anyway). The cluster lock `kinit up` takes is held on every \
host kinit contacts meanwhile: another operator's run is refused by name. Delete the hosts from \
cluster.yaml afterwards."
)]
pub struct RemoveArgs {
    /// The hosts to take out, as named in cluster.yaml
    #[arg(value_name = "HOST", required = true)]
    pub hosts: Vec<String>,

    /// Do not ask (needed when not on a terminal)
    #[arg(long, short = 'y')]
    pub yes: bool,

    /// The hosts are gone for good: remove their etcd members by ID without contacting them
    /// (no SSH, no reset), and update the others
    #[arg(long)]
    pub unreachable: bool,

    /// Remove even when etcd would be left without a majority, or with a single member
    #[arg(long)]
    pub force: bool,

    /// Show the plan and what would change on each host; change nothing
    #[arg(long)]
    pub dry_run: bool,

    /// Remove another run's lock on the hosts (only when no kinit up, remove or restore is
    /// running)
    #[arg(long)]
    pub break_lock: bool,

    /// Read templates from DIR first, as `kinit up --templates DIR` did (the files rendered
    /// again must keep the same overrides)
    #[arg(long, value_name = "DIR")]
    pub templates: Option<PathBuf>,

    #[command(flatten)]
    pub remote: RemoteArgs,
}

impl RemoveArgs {
    pub fn options(&self) -> RemoveOptions {
        RemoveOptions {
            hosts: self.hosts.clone(),
            yes: self.yes,
            unreachable: self.unreachable,
            force: self.force,
            dry_run: self.dry_run,
            break_lock: self.break_lock,
            accept_new_host_keys: self.remote.accept_new_host_keys,
            concurrency: self.remote.concurrency.get(),
            templates: self.templates.clone(),
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

    /// Connect, find the healthy member a save would stream from and say where the file would
    /// go; write nothing
    #[arg(long)]
    pub dry_run: bool,

    #[command(flatten)]
    pub remote: RemoteArgs,
}

impl SaveArgs {
    pub fn options(&self) -> SaveOptions {
        SaveOptions {
            output: self.file.clone(),
            accept_new_host_keys: self.remote.accept_new_host_keys,
            dry_run: self.dry_run,
        }
    }
}

#[derive(Debug, Args)]
#[command(
    after_help = "On every etcd member: the control-plane manifests are moved aside, etcd \
stopped, its data dir moved aside (kept), the snapshot restored with a new cluster token, all \
members started together; once one healthy cluster answers, the manifests go back. The cluster \
lock `kinit up` takes is held on every etcd and control-plane host meanwhile: another operator's \
run is refused by name."
)]
pub struct RestoreArgs {
    /// The snapshot file (from `kinit etcd snapshot save` or `etcdctl snapshot save`)
    pub file: PathBuf,

    /// Do not ask (needed when not on a terminal)
    #[arg(long, short = 'y')]
    pub yes: bool,

    /// Connect, run the checks a restore runs first and print what it would do on each host;
    /// change nothing (no confirmation needed)
    #[arg(long)]
    pub dry_run: bool,

    /// Seconds the restored cluster may take to become healthy
    #[arg(long, value_name = "SECONDS", default_value_t = 120)]
    pub wait: u64,

    /// Remove another run's lock on the hosts (only when no kinit up, remove or restore is
    /// running)
    #[arg(long)]
    pub break_lock: bool,

    /// Read templates from DIR first, as `kinit up --templates DIR` did (the files rendered
    /// again must keep the same overrides)
    #[arg(long, value_name = "DIR")]
    pub templates: Option<PathBuf>,

    #[command(flatten)]
    pub remote: RemoteArgs,
}

impl RestoreArgs {
    pub fn options(&self) -> RestoreOptions {
        RestoreOptions {
            file: self.file.clone(),
            yes: self.yes,
            dry_run: self.dry_run,
            wait: std::time::Duration::from_secs(self.wait.max(1)),
            break_lock: self.break_lock,
            accept_new_host_keys: self.remote.accept_new_host_keys,
            concurrency: self.remote.concurrency.get(),
            templates: self.templates.clone(),
        }
    }
}
