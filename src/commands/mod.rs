//! One file per subcommand: each is a short function wiring library modules to the ui.

pub mod certs;
pub mod completion;
pub mod config_validate;
pub mod exec;
pub mod init;
pub mod lab;
pub mod man;
pub mod preflight;
pub mod remote;
pub mod render;
pub mod status;
pub mod up;

use std::process::ExitCode;

/// Exit codes kinit uses deliberately.
pub mod exit {
    /// Everything asked for was done (warnings allowed).
    pub const OK: u8 = 0;
    /// The command ran and found a failure (invalid config, failed check, failed step).
    pub const FAILURE: u8 = 1;
    /// The command could not run as invoked (bad flags, unreadable files).
    pub const USAGE: u8 = 2;
    /// Interrupted (Ctrl-C).
    pub const INTERRUPTED: u8 = 130;
}

/// What a command hands back to `main`: an exit code, or an error to render once.
pub type CommandResult = Result<ExitCode, CommandError>;

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The invocation or environment is wrong (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The command ran and failed (exit 1).
    #[error("{0}")]
    Failed(String),
}

impl CommandError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CommandError::Usage(_) => exit::USAGE,
            CommandError::Failed(_) => exit::FAILURE,
        }
    }
}
