use super::{CommandError, CommandResult, Outcome};

/// The man page, generated from the same clap definitions as `--help` (`cli`, handed down so
/// that commands need not know the `cli` module).
pub fn run(cli: clap::Command) -> CommandResult {
    let mut out = Vec::new();
    clap_mangen::Man::new(cli)
        .render(&mut out)
        .map_err(CommandError::io("rendering the man page"))?;
    use std::io::Write;
    std::io::stdout()
        .write_all(&out)
        .map_err(CommandError::io("writing the man page"))?;
    Ok(Outcome::Success)
}
