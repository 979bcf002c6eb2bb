//! What can stop a command before it has an outcome to report. `main` shows these (once) and
//! `super::exit_code` turns them into the exit status; the variants keep the library's error
//! so that the exit code follows from what went wrong rather than from where it was noticed.

use std::io;
use std::path::PathBuf;

use crate::config::template::InitError;
use crate::engine::playbook::PlaybookError;
use crate::inventory::IncompleteConfig;
use crate::lab::LabError;
use crate::pki::PkiError;
use crate::render::RenderError;
use crate::render::write::WriteError;
use crate::selector::UnknownSelector;
use crate::ssh::targets::JumpHostError;

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The invocation contradicts itself or the config, or needs what this session lacks.
    #[error("{0}")]
    Usage(String),

    #[error("cannot read {}: {source}{}", path.display(), if *hint { NO_CONFIG_HINT } else { "" })]
    ConfigUnreadable {
        path: PathBuf,
        #[source]
        source: io::Error,
        /// Whether to suggest `kinit init` and `-c`: not every command words it this way.
        hint: bool,
    },

    /// The config does not validate; the problems are worded by the command that found them.
    #[error("{0}")]
    InvalidConfig(String),

    #[error(transparent)]
    Inventory(#[from] IncompleteConfig),

    /// A config that does not load, for a command whose exit 1 means "found a problem".
    #[error(transparent)]
    CannotCheck(Box<CommandError>),

    #[error(transparent)]
    UnknownSelector(#[from] UnknownSelector),

    #[error(transparent)]
    Playbook(#[from] PlaybookError),

    #[error(transparent)]
    InitShape(#[from] InitError),

    #[error("cannot read ~/.ssh/config: {0}")]
    SshConfig(#[source] io::Error),

    #[error(transparent)]
    Bastion(#[from] JumpHostError),

    #[error("cannot read the passphrase: {0}")]
    Passphrase(#[source] io::Error),

    #[error("cannot read the sudo password: {0}")]
    SudoPassword(#[source] io::Error),

    #[error(transparent)]
    Pki(#[from] PkiError),

    #[error(transparent)]
    Render(#[from] RenderError),

    #[error(transparent)]
    Kubeconfig(#[from] crate::kubeconfig::KubeconfigError),

    #[error(transparent)]
    RenderWrite(#[from] WriteError),

    #[error(transparent)]
    Lab(#[from] LabError),

    #[error("{} already exists; pass --force to overwrite it", .0.display())]
    Exists(PathBuf),

    #[error("cannot write {}: {source}", path.display())]
    WriteFile {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// Any other I/O on this machine; `doing` reads as the start of the message.
    #[error("{doing}: {source}")]
    Io {
        doing: &'static str,
        #[source]
        source: io::Error,
    },

    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] io::Error),

    /// A destructive command without --yes and without a terminal to ask on.
    #[error("{0}")]
    NotConfirmed(String),

    /// The operator answered no.
    #[error("nothing was changed (not confirmed)")]
    Declined,

    #[error(transparent)]
    Reset(Box<crate::lifecycle::reset::ResetError>),

    #[error(transparent)]
    Snapshot(Box<crate::lifecycle::snapshot::SnapshotError>),

    #[error(transparent)]
    Remove(Box<crate::lifecycle::remove::RemoveError>),

    #[error(transparent)]
    Drill(Box<crate::drill::DrillError>),

    /// kinit's own bug (its built-in config or example does not validate).
    #[error(transparent)]
    Bundle(Box<crate::bundle::OpError>),

    /// The artifacts bundle cannot install the configured cluster (found before any host).
    #[error(transparent)]
    BundleRelease(#[from] crate::bundle::verify::NotInstallable),

    #[error("internal error: {0}")]
    Internal(String),
}

const NO_CONFIG_HINT: &str = "; create one with `kinit init`, or point at it with -c FILE";

impl CommandError {
    /// For `map_err`: an I/O error on this machine, with what kinit was doing.
    pub fn io(doing: &'static str) -> impl FnOnce(io::Error) -> CommandError {
        move |source| CommandError::Io { doing, source }
    }
}

impl From<crate::lifecycle::reset::ResetError> for CommandError {
    fn from(e: crate::lifecycle::reset::ResetError) -> Self {
        CommandError::Reset(Box::new(e))
    }
}

impl From<crate::lifecycle::snapshot::SnapshotError> for CommandError {
    fn from(e: crate::lifecycle::snapshot::SnapshotError) -> Self {
        CommandError::Snapshot(Box::new(e))
    }
}

impl From<crate::lifecycle::remove::RemoveError> for CommandError {
    fn from(e: crate::lifecycle::remove::RemoveError) -> Self {
        CommandError::Remove(Box::new(e))
    }
}

impl From<crate::drill::DrillError> for CommandError {
    fn from(e: crate::drill::DrillError) -> Self {
        CommandError::Drill(Box::new(e))
    }
}
