//! `kinit certs generate | check-expiration | renew`.

use std::process::ExitCode;
use std::time::SystemTime;

use super::{CommandError, CommandResult, exit};
use crate::cli::{GlobalOptions, RenewOptions};
use crate::config::{self, ConfigError};
use crate::inventory::Inventory;
use crate::pki::{self, Mode, PkiError};
use crate::ui::{OutputFormat, certs as ui};

/// The validated inventory of `-c FILE`, or an error that says how to find out what is wrong.
pub fn load_inventory(global: &GlobalOptions) -> Result<Inventory, CommandError> {
    let path = &global.config_path;
    let loaded = config::load(path).map_err(|e| match e {
        ConfigError::Read { .. } => CommandError::Usage(format!(
            "{e}; create one with `kinit init`, or point at it with -c FILE"
        )),
        ConfigError::Invalid(_) => CommandError::Failed(format!(
            "{e}; run `kinit -c {} config validate` to see them",
            path.display()
        )),
    })?;
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    Inventory::from_config(&loaded.config, dir, home.as_deref())
        .map_err(|e| CommandError::Failed(e.to_string()))
}

fn failed(e: PkiError) -> CommandError {
    CommandError::Failed(e.to_string())
}

fn run(global: &GlobalOptions, mode: Mode) -> CommandResult {
    let inv = load_inventory(global)?;
    let report = pki::generate(&inv, &mode, SystemTime::now()).map_err(failed)?;
    match global.output {
        OutputFormat::Json => println!("{}", ui::generate_json(&report)),
        OutputFormat::Text if global.verbosity >= 0 => {
            print!("{}", ui::generate_text(&report, global.verbosity > 0))
        }
        OutputFormat::Text => {}
    }
    Ok(ExitCode::SUCCESS)
}

pub fn generate(global: &GlobalOptions) -> CommandResult {
    run(global, Mode::Generate)
}

pub fn renew(global: &GlobalOptions, opts: &RenewOptions) -> CommandResult {
    run(global, Mode::Renew(opts.names.clone()))
}

pub fn check_expiration(global: &GlobalOptions) -> CommandResult {
    let inv = load_inventory(global)?;
    let report = pki::expiry::check(&inv, SystemTime::now()).map_err(failed)?;
    match global.output {
        OutputFormat::Json => println!("{}", ui::expiry_json(&report)),
        OutputFormat::Text => print!("{}", ui::expiry_text(&report)),
    }
    Ok(if report.has_problems() {
        ExitCode::from(exit::FAILURE)
    } else {
        ExitCode::SUCCESS
    })
}
