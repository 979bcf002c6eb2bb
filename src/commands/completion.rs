use clap_complete::Shell;

use super::{CommandResult, Outcome};

/// `cli` is the clap definition, handed down so that commands need not know the `cli` module.
pub fn run(shell: Shell, mut cli: clap::Command) -> CommandResult {
    clap_complete::generate(shell, &mut cli, "kinit", &mut std::io::stdout());
    Ok(Outcome::Success)
}
