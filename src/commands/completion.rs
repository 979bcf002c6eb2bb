use std::process::ExitCode;

use clap::CommandFactory;
use clap_complete::Shell;

use super::CommandResult;
use crate::cli::Cli;

pub fn run(shell: Shell) -> CommandResult {
    clap_complete::generate(shell, &mut Cli::command(), "kinit", &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}
