//! One file per subcommand: each is a short function wiring library modules to the ui.
//!
//! Layering: `main` -> `cli` (clap only) -> `commands` -> `ui` and the library modules. The option
//! structs the commands take are defined here, next to the commands, so that nothing below `cli`
//! knows about clap.

pub mod bundle;
pub mod certs;
pub mod completion;
pub mod config_validate;
pub mod drill;
mod error;
pub mod etcd_snapshot;
pub mod exec;
pub mod init;
pub mod kubeconfig;
pub mod lab;
pub mod man;
pub mod preflight;
pub mod remote;
pub mod remove;
pub mod render;
pub mod reset;
pub mod status;
pub mod stop_signal;
pub mod up;

pub use error::CommandError;

/// Exit codes kinit uses deliberately.
pub mod exit {
    /// Everything asked for was done (warnings allowed).
    pub const OK: u8 = 0;
    /// The command ran and found a failure (invalid config, failed check, failed step).
    pub const FAILURE: u8 = 1;
    /// The command could not run as invoked (bad flags, unreadable files).
    pub const USAGE: u8 = 2;
    /// Interrupted by Ctrl-C; SIGTERM and SIGHUP stop a command the same way and exit 143 and
    /// 129 (128 + the signal's number, see `stop_signal`).
    pub const INTERRUPTED: u8 = 130;
}

/// How a command that ran to its end turned out. Whatever went wrong has already been shown;
/// errors that still need showing are a `CommandError` instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// A check failed, a host failed, a step failed: reported by the command itself.
    Failed,
    /// Ctrl-C, SIGTERM or SIGHUP: the command stopped early.
    Interrupted,
}

impl Outcome {
    pub fn failed_if(failed: bool) -> Outcome {
        if failed {
            Outcome::Failed
        } else {
            Outcome::Success
        }
    }
}

/// What a command hands back to `main`: its outcome, or an error for `main` to show once.
pub type CommandResult = Result<Outcome, CommandError>;

/// The process exit code for a command's result: the one place that decides them.
pub fn exit_code(result: &CommandResult) -> u8 {
    use crate::bundle::OpError;
    use crate::drill::DrillError;
    use crate::kubeconfig::KubeconfigError;
    use crate::lab::LabError;
    use crate::lifecycle::remove::RemoveError;
    use crate::lifecycle::snapshot::SnapshotError;
    use crate::render::RenderError;
    match result {
        Ok(Outcome::Success) => exit::OK,
        Ok(Outcome::Failed) => exit::FAILURE,
        Ok(Outcome::Interrupted) => stop_signal::exit_code(),
        Err(e) => match e {
            CommandError::Usage(_)
            | CommandError::ConfigUnreadable { .. }
            | CommandError::UnknownSelector(_)
            | CommandError::Playbook(_)
            | CommandError::InitShape(_)
            | CommandError::SshConfig(_)
            | CommandError::Bastion(_)
            | CommandError::Passphrase(_)
            | CommandError::SudoPassword(_)
            // Exit 1 means "found a problem" for these commands, so not loading is a usage error.
            | CommandError::CannotCheck(_) => exit::USAGE,
            CommandError::Render(RenderError::UnknownHost(_)) => exit::USAGE,
            CommandError::NotConfirmed(_) => exit::USAGE,
            // No PKI yet, or nowhere to merge into: the command cannot run as invoked.
            CommandError::Kubeconfig(KubeconfigError::NoPki { .. } | KubeconfigError::NoTarget) => {
                exit::USAGE
            }
            CommandError::Kubeconfig(_) => exit::FAILURE,
            CommandError::Snapshot(e) if matches!(**e, SnapshotError::NoEtcdHosts) => exit::USAGE,
            CommandError::Remove(e)
                if matches!(
                    **e,
                    RemoveError::UnknownHost { .. }
                ) =>
            {
                exit::USAGE
            }
            CommandError::Drill(e)
                if matches!(
                    **e,
                    DrillError::UnknownHost { .. } | DrillError::NotApplicable { .. }
                ) =>
            {
                exit::USAGE
            }
            CommandError::Declined
            | CommandError::Drill(_)
            | CommandError::Snapshot(_)
            | CommandError::Reset(_)
            | CommandError::Remove(_) => exit::FAILURE,
            // Problems with the invocation or this machine are usage errors; failed steps are not.
            CommandError::Lab(
                LabError::NotRoot
                | LabError::MissingTools { .. }
                | LabError::Invalid(_)
                | LabError::SubnetInUse { .. }
                | LabError::NoRoom { .. }
                | LabError::NoSuchLab(_)
                | LabError::NoSuchNode { .. }
                | LabError::ShapeMismatch { .. },
            ) => exit::USAGE,
            CommandError::Lab(LabError::Io { .. } | LabError::Step { .. })
            | CommandError::InvalidConfig(_)
            | CommandError::Inventory(_)
            | CommandError::Pki(_)
            | CommandError::Render(_)
            | CommandError::RenderWrite(_)
            | CommandError::Exists(_)
            | CommandError::WriteFile { .. }
            | CommandError::Io { .. }
            | CommandError::Runtime(_)
            | CommandError::BundleRelease(_)
            | CommandError::Internal(_) => exit::FAILURE,
            // A bundle directory that is not one, or a file kinit cannot place, is the
            // invocation's problem; a failed download or check is a failure.
            CommandError::Bundle(e) => match **e {
                OpError::UnknownFile { .. } | OpError::Inconsistent { .. } => exit::USAGE,
                _ => exit::FAILURE,
            },
        },
    }
}
