use std::io::ErrorKind;
use std::path::PathBuf;

use super::{CommandError, CommandResult, Outcome};
use crate::config;
use crate::config::template::{self, InitShape};
use crate::fsutil::{Existing, write_atomic};
use crate::ui::{GlobalOptions, OutputFormat};

#[derive(Debug, Clone)]
pub struct InitOptions {
    pub shape: InitShape,
    pub file: PathBuf,
    pub force: bool,
}

pub fn run(global: &GlobalOptions, opts: &InitOptions) -> CommandResult {
    let text = template::render(opts.shape)?;
    // The example must validate as written; if it does not, that is kinit's bug, not the user's.
    let (_, report) = config::check(&opts.file, text.clone());
    if report.has_errors() {
        return Err(CommandError::Internal(format!(
            "the generated config does not validate ({}); please report this",
            report
                .errors()
                .map(|p| p.message.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        )));
    }
    let existing = if opts.force {
        Existing::Replace
    } else {
        Existing::Keep
    };
    write_atomic(&opts.file, text.as_bytes(), 0o644, existing).map_err(|e| match e.kind() {
        ErrorKind::AlreadyExists => CommandError::Exists(opts.file.clone()),
        _ => CommandError::WriteFile {
            path: opts.file.clone(),
            source: e,
        },
    })?;
    let s = opts.shape;
    match global.output {
        OutputFormat::Json => println!(
            "{}",
            serde_json::json!({
                "written": opts.file,
                "topology": s.topology,
                "controlPlanes": s.control_planes,
                "workers": s.workers,
                "etcdHosts": if s.topology == config::Topology::External { s.etcd_hosts } else { 0 },
            })
        ),
        OutputFormat::Text if global.verbosity >= 0 => {
            println!(
                "wrote {} ({} topology, {} control-plane host(s), {} worker(s))",
                opts.file.display(),
                s.topology,
                s.control_planes,
                s.workers
            );
            println!("next: set the hosts' names and addresses, then run `kinit config validate`");
        }
        OutputFormat::Text => {}
    }
    Ok(Outcome::Success)
}
