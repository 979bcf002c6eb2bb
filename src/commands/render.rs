use std::process::ExitCode;

use super::{CommandError, CommandResult};
use crate::cli::{GlobalOptions, RenderOptions};
use crate::config::{self, ConfigError};
use crate::inventory::Inventory;
use crate::render::{self, RenderError, Templates, write};
use crate::ui::{self, OutputFormat, config_report};

pub fn run(global: &GlobalOptions, opts: &RenderOptions) -> CommandResult {
    let path = &global.config_path;
    let loaded = config::load(path).map_err(|e| match e {
        ConfigError::Read { .. } => CommandError::Usage(e.to_string()),
        ConfigError::Invalid(report) => {
            eprint!(
                "{}",
                config_report::render_problems(&report, global.color.enabled_for_stderr())
            );
            CommandError::Failed(format!(
                "{}; nothing rendered",
                config_report::problem_counts(&report)
            ))
        }
    })?;
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    let mut inv = Inventory::from_config(&loaded.config, dir, home.as_deref())
        .map_err(|e| CommandError::Failed(e.to_string()))?;
    // What `kinit up` will deploy: the cluster's own etcd token once the PKI has one.
    inv.etcd_cluster_token = crate::pki::cluster_token::load(&inv.pki_dir)
        .map_err(|e| CommandError::Failed(e.to_string()))?;
    let templates = match &opts.templates {
        Some(dir) => Templates::with_overrides(dir),
        None => Templates::embedded(),
    }
    .map_err(failed)?;
    let rendered = match &opts.host {
        Some(name) => {
            let host = inv.host(name).ok_or_else(|| {
                CommandError::Usage(RenderError::UnknownHost(name.clone()).to_string())
            })?;
            vec![(
                host.name.clone(),
                render::render_host(&inv, host, &templates).map_err(failed)?,
            )]
        }
        None => render::render_all(&inv, &templates).map_err(failed)?,
    };
    let mut manifests = Vec::with_capacity(rendered.len());
    for (host, files) in &rendered {
        manifests.push(
            write::write_host(&opts.out, host, files)
                .map_err(|e| CommandError::Failed(e.to_string()))?,
        );
    }
    match global.output {
        OutputFormat::Json => println!("{}", ui::render::json(&opts.out, &manifests)),
        OutputFormat::Text if global.verbosity >= 0 => {
            let overridden: Vec<_> = templates.overridden().collect();
            print!(
                "{}",
                ui::render::summary(&opts.out, &manifests, &overridden)
            );
        }
        OutputFormat::Text => {}
    }
    Ok(ExitCode::SUCCESS)
}

fn failed(e: RenderError) -> CommandError {
    CommandError::Failed(e.to_string())
}
