use std::process::ExitCode;

use clap::CommandFactory;

use super::{CommandError, CommandResult};
use crate::cli::Cli;

/// The man page, generated from the same clap definitions as `--help`.
pub fn run() -> CommandResult {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut out)
        .map_err(|e| CommandError::Failed(format!("rendering the man page: {e}")))?;
    use std::io::Write;
    std::io::stdout()
        .write_all(&out)
        .map_err(|e| CommandError::Failed(format!("writing the man page: {e}")))?;
    Ok(ExitCode::SUCCESS)
}
