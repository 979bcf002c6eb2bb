//! `kinit certs generate | check-expiration | renew`.

use std::collections::BTreeSet;
use std::time::SystemTime;

use super::up::UpOptions;
use super::{CommandError, CommandResult, Outcome};
use crate::config::{self, ConfigError};
use crate::inventory::Inventory;
use crate::pki::{self, Mode};
use crate::ui::{GlobalOptions, OutputFormat, certs as ui};

/// `kinit certs renew`: the certificates to renew; empty means all.
#[derive(Debug, Clone)]
pub struct RenewOptions {
    pub names: BTreeSet<String>,
    /// `--rollout`: the `kinit up` run right after the renewal.
    pub rollout: Option<UpOptions>,
}

/// The validated inventory of `-c FILE`, or an error that says how to find out what is wrong.
pub fn load_inventory(global: &GlobalOptions) -> Result<Inventory, CommandError> {
    let path = &global.config_path;
    let loaded = config::load(path).map_err(|e| match e {
        ConfigError::Read { path, source } => CommandError::ConfigUnreadable {
            path,
            source,
            hint: true,
        },
        ConfigError::Invalid(_) => CommandError::InvalidConfig(format!(
            "{e}; run `kinit -c {} config validate` to see them",
            path.display()
        )),
    })?;
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    Ok(Inventory::from_config(
        &loaded.config,
        dir,
        home.as_deref(),
    )?)
}

fn run(global: &GlobalOptions, mode: Mode) -> CommandResult {
    let inv = load_inventory(global)?;
    let report = pki::generate(&inv, &mode, SystemTime::now())?;
    show(global, &report);
    Ok(Outcome::Success)
}

fn show(global: &GlobalOptions, report: &pki::GenerateReport) {
    match global.output {
        OutputFormat::Json => println!("{}", ui::generate_json(report)),
        OutputFormat::Text if global.verbosity >= 0 => {
            print!("{}", ui::generate_text(report, global.verbosity > 0))
        }
        OutputFormat::Text => {}
    }
}

pub fn generate(global: &GlobalOptions) -> CommandResult {
    run(global, Mode::Generate)
}

/// Renew; with `--rollout`, as the first phase of `kinit up` (run once up's lock is held on
/// every host and its checks passed: a renewal never happens while another run holds the
/// cluster, nor when up stops before any host changes), then the rest of up as it would run on
/// its own. With `-o json` the renewal is up's `certificates-renewed` event; up's outcome is the
/// command's.
pub fn renew(global: &GlobalOptions, opts: &RenewOptions) -> CommandResult {
    let Some(up) = &opts.rollout else {
        return run(global, Mode::Renew(opts.names.clone()));
    };
    let renewal = crate::engine::up_phase::Renewal {
        names: opts.names.clone(),
    };
    super::up::run_with(global, up, Some(renewal))
}

pub fn check_expiration(global: &GlobalOptions) -> CommandResult {
    let inv = load_inventory(global)?;
    let report = pki::expiry::check(&inv, SystemTime::now())?;
    match global.output {
        OutputFormat::Json => println!("{}", ui::expiry_json(&report)),
        OutputFormat::Text => print!("{}", ui::expiry_text(&report)),
    }
    Ok(Outcome::failed_if(report.has_problems()))
}
