use std::path::PathBuf;

use super::{CommandError, CommandResult, Outcome};
use crate::config::{self, ConfigError};
use crate::inventory::Inventory;
use crate::render::{self, RenderError, Templates, write};
use crate::ui::{self, GlobalOptions, OutputFormat, config_report};

#[derive(Debug, Clone)]
pub struct RenderOptions {
    pub out: PathBuf,
    pub host: Option<String>,
    pub templates: Option<PathBuf>,
}

pub fn run(global: &GlobalOptions, opts: &RenderOptions) -> CommandResult {
    let path = &global.config_path;
    let loaded = config::load(path).map_err(|e| match e {
        ConfigError::Read { path, source } => CommandError::ConfigUnreadable {
            path,
            source,
            hint: false,
        },
        ConfigError::Invalid(report) => {
            eprint!(
                "{}",
                config_report::render_problems(&report, global.color.enabled_for_stderr())
            );
            CommandError::InvalidConfig(format!(
                "{}; nothing rendered",
                config_report::problem_counts(&report)
            ))
        }
    })?;
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    let mut inv = Inventory::from_config(&loaded.config, dir, home.as_deref())?;
    // What `kinit up` will deploy: the cluster's own etcd token once the PKI has one.
    inv.etcd_cluster_token = crate::pki::cluster_token::load(&inv.pki_dir)?;
    // A bad override directory is the operator's input, as in every command that renders.
    let templates = Templates::load(opts.templates.as_deref())
        .map_err(|e| CommandError::Usage(e.to_string()))?;
    let rendered = match &opts.host {
        Some(name) => {
            let host = inv
                .host(name)
                .ok_or_else(|| RenderError::UnknownHost(name.clone()))?;
            vec![(
                host.name.clone(),
                render::render_host(&inv, host, &templates)?,
            )]
        }
        None => render::render_all(&inv, &templates)?,
    };
    let mut manifests = Vec::with_capacity(rendered.len());
    for (host, files) in &rendered {
        manifests.push(write::write_host(&opts.out, host, files)?);
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
    Ok(Outcome::Success)
}
